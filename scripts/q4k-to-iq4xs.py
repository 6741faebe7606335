#!/usr/bin/env python3
# q4k-to-iq4xs.py IN.gguf OUT.gguf: rewrites a GGUF's Q4_K tensors as
# IQ4_XS blocks of the same shape (other tensors unchanged), so that
# `airlock bench` can compare IQ4_XS with Q4_K_M on the same model
# (mkmodel.py cannot write IQ4_XS). For speed comparisons only: d is kept,
# every sub-block scale is 39 (factor 7, magnitudes near the Q4_K ones) and
# the 128 nibble bytes are the Q4_K's; the values quantize nothing. Reads
# F32/F16/Q8_0/Q4_K/Q5_K/Q6_K files of GGUF v3 with the default alignment of
# 32 (standard library only).
#   python3 ../shared/tools/mkmodel.py --preset qwen3-0.6b --quant q4_k_m \
#       --vocab ../shared/vocab/ggml-vocab-qwen2.gguf -o /tmp/q.gguf
#   scripts/q4k-to-iq4xs.py /tmp/q.gguf /tmp/q-iq4_xs.gguf
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = open(src, 'rb').read()
pos = 8
n_t, n_kv = struct.unpack_from('<QQ', b, pos); pos += 16
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip_str():
    global pos
    n, = struct.unpack_from('<Q', b, pos); pos += 8 + n
def skip_val(t):
    global pos
    if t == 8: skip_str()
    elif t == 9:
        et, n = struct.unpack_from('<IQ', b, pos); pos += 12
        for _ in range(n): skip_val(et)
    else: pos += sizes[t]
for _ in range(n_kv):
    skip_str(); t, = struct.unpack_from('<I', b, pos); pos += 4; skip_val(t)
kv_end = pos
bs = {0: (1, 4), 1: (1, 2), 8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210), 23: (256, 136)}
ts = []
for _ in range(n_t):
    n, = struct.unpack_from('<Q', b, pos); name = b[pos + 8:pos + 8 + n]; pos += 8 + n
    nd, = struct.unpack_from('<I', b, pos); ne = struct.unpack_from('<%dQ' % nd, b, pos + 4); pos += 4 + 8 * nd
    ty, off = struct.unpack_from('<IQ', b, pos); pos += 12
    ts.append([name, ne, ty, off])
data = (pos + 31) // 32 * 32
out = bytearray(b[:kv_end])
blobs = []
for t in ts:
    name, ne, ty, off = t
    nel = 1
    for e in ne: nel *= e
    be, bb = bs[ty]
    raw = b[data + off: data + off + nel // be * bb]
    if ty == 12:
        nb = nel // 256
        head = b'\x77\x77\x77\x77'
        parts = []
        for i in range(nb):
            o = 144 * i
            parts.append(raw[o:o + 2] + b'\xaa\xaa' + head + raw[o + 16:o + 144])
        raw = b''.join(parts)
        t[2] = 23
    blobs.append(raw)
infos = bytearray()
off = 0
offs = []
for t, raw in zip(ts, blobs):
    offs.append(off)
    off = (off + len(raw) + 31) // 32 * 32
for t, o in zip(ts, offs):
    name, ne, ty, _ = t
    infos += struct.pack('<Q', len(name)) + name + struct.pack('<I', len(ne)) + struct.pack('<%dQ' % len(ne), *ne) + struct.pack('<IQ', ty, o)
out += infos
while len(out) % 32: out += b'\0'
for raw, o in zip(blobs, offs):
    out += raw
    while len(out) % 32: out += b'\0'
open(dst, 'wb').write(out)
print(dst, len(out))
