#!/usr/bin/env python3
# moe-spread-router.py MODEL.gguf: centres every row of the F32 MoE routers
# (blk.N.ffn_gate_inp.weight) of a GGUF in place: each row minus its mean.
# mkmodel.py's random quantized weights leave a large constant component in
# every token's hidden state, so routing collapses onto ~15 of 128 experts
# and a decode reads the same few experts at every token; a router whose
# rows sum to zero ignores that component and picks different experts per
# token, as trained models do. For I/O benchmarks only (a model larger than
# memory): the logits mean nothing either way. Standard library only; GGUF
# v3, default alignment of 32. Works on a copy:
#   cp ~/.cache/airlock/models/qwen3moe-bench-q4_k_m.gguf /tmp/spread.gguf
#   scripts/moe-spread-router.py /tmp/spread.gguf
import mmap, struct, sys

f = open(sys.argv[1], 'r+b')
b = mmap.mmap(f.fileno(), 0)
if b[:4] != b'GGUF':
    sys.exit('%s: not a GGUF file' % sys.argv[1])
pos = 8
n_t, n_kv = struct.unpack_from('<QQ', b, pos)
pos += 16
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip(t):
    global pos
    if t == 8:
        n, = struct.unpack_from('<Q', b, pos)
        pos += 8 + n
    elif t == 9:
        et, n = struct.unpack_from('<IQ', b, pos)
        pos += 12
        for _ in range(n):
            skip(et)
    else:
        pos += sizes[t]


for _ in range(n_kv):
    skip(8)
    t, = struct.unpack_from('<I', b, pos)
    pos += 4
    skip(t)
routers = []
for _ in range(n_t):
    n, = struct.unpack_from('<Q', b, pos)
    name = b[pos + 8:pos + 8 + n].decode()
    pos += 8 + n
    nd, = struct.unpack_from('<I', b, pos)
    ne = struct.unpack_from('<%dQ' % nd, b, pos + 4)
    pos += 4 + 8 * nd
    ty, off = struct.unpack_from('<IQ', b, pos)
    pos += 12
    if name.endswith('ffn_gate_inp.weight'):
        if ty != 0 or nd != 2:
            sys.exit('%s: tensor %s is not a 2-D F32 tensor' % (sys.argv[1], name))
        routers.append((name, ne, off))
data = (pos + 31) // 32 * 32
for name, (cols, rows), off in routers:
    for r in range(rows):
        o = data + off + 4 * cols * r
        row = struct.unpack_from('<%df' % cols, b, o)
        mean = sum(row) / cols
        struct.pack_into('<%df' % cols, b, o, *[v - mean for v in row])
b.flush()
print('%s: centred the rows of %d routers' % (sys.argv[1], len(routers)))
