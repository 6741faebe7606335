#!/usr/bin/env python3
"""iq_bench_model.py IN.gguf TYPE OUT.gguf

Writes a copy of a GGUF model whose 2-D block weights (blk.*.weight with a
row length that is a multiple of 256) are of the i-quant type TYPE (IQ3_S,
IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M), filled with random blocks
with small finite scales. The weights mean nothing: the file is for
`airlock bench` only (speed does not depend on the values), since
../shared/tools/mkmodel.py does not write i-quants. Metadata, the other
tensors and their types are copied. Standard library only."""
import os
import random
import struct
import sys

TYPES = {"IQ2_XXS": (16, 66), "IQ2_XS": (17, 74), "IQ3_XXS": (18, 98), "IQ1_S": (19, 50),
         "IQ3_S": (21, 110), "IQ2_S": (22, 82), "IQ1_M": (29, 56)}
# bytes per block of the types a source file may hold (elements per block, bytes)
SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 10: (256, 84),
         11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}
for _n, (_id, _b) in TYPES.items():
    SIZES[_id] = (256, _b)
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in TYPES:
        sys.exit(__doc__)
    src, tname, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    tid, bbytes = TYPES[tname]
    f = open(src, "rb")
    data = f.read()
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def skip_str():
        nonlocal pos
        n = rd("Q")
        s = data[pos:pos + n]
        pos += n
        return s

    def skip_val(t):
        nonlocal pos
        if t == 8:
            skip_str()
        elif t == 9:
            at, n = rd("I"), rd("Q")
            if at in SCALAR:
                pos += SCALAR[at] * n
            else:
                for _ in range(n):
                    skip_val(at)
        else:
            pos += SCALAR[t]

    assert data[:4] == b"GGUF"
    pos = 4
    version, n_t, n_kv = rd("I"), rd("Q"), rd("Q")
    kv_start = pos
    align = 32
    for _ in range(n_kv):
        key = skip_str()
        t = rd("I")
        if key == b"general.alignment":
            align = struct.unpack_from("<I", data, pos)[0]
        skip_val(t)
    kv_bytes = data[kv_start:pos]
    infos = []
    for _ in range(n_t):
        name = skip_str()
        nd = rd("I")
        dims = [rd("Q") for _ in range(nd)]
        t, off = rd("I"), rd("Q")
        infos.append([name, dims, t, off])
    data_start = (pos + align - 1) // align * align
    rng = random.Random(1)
    out_infos, blobs, off = [], [], 0
    for name, dims, t, o in infos:
        be, bb = SIZES[t]
        n = 1
        for d in dims:
            n *= d
        nbytes = n // be * bb
        if name.startswith(b"blk.") and name.endswith(b".weight") and len(dims) == 2 and dims[0] % 256 == 0:
            t = tid
            nb = n // 256
            blob = bytearray(rng.randbytes(nb * bbytes))
            for b in range(nb):  # d ~ 2^-10..2^-9 (IQ1_M: in the top nibbles of its scale words)
                h = 0x1400 + rng.randrange(0x400)
                if tid == 29:
                    for w in range(4):
                        i = b * bbytes + 49 + 2 * w
                        blob[i] = (blob[i] & 0x0f) | (((h >> (4 * w)) & 0xf) << 4)
                else:
                    struct.pack_into("<H", blob, b * bbytes, h)
            blob = bytes(blob)
        else:
            blob = data[data_start + o:data_start + o + nbytes]
        out_infos.append((name, dims, t, off))
        blobs.append(blob)
        off += (len(blob) + align - 1) // align * align
    with open(dst + ".tmp", "wb") as w:
        w.write(b"GGUF" + struct.pack("<IQQ", version, n_t, n_kv) + kv_bytes)
        for name, dims, t, o in out_infos:
            w.write(struct.pack("<Q", len(name)) + name + struct.pack("<I", len(dims)))
            w.write(b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", t, o))
        w.write(b"\0" * ((-w.tell()) % align))
        for blob in blobs:
            w.write(blob + b"\0" * ((-len(blob)) % align))
    os.replace(dst + ".tmp", dst)


if __name__ == "__main__":
    main()
