#!/usr/bin/env python3
"""gguf_nan.py IN.gguf OUT.gguf [TENSOR]: copies a GGUF and fills one F32
tensor (default: the first F32 one) with NaN; prints its name."""
import struct
import sys

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def main():
    data = bytearray(open(sys.argv[1], "rb").read())
    want = sys.argv[3] if len(sys.argv) > 3 else None
    pos = 4
    version, = struct.unpack_from("<I", data, pos); pos += 4
    n_t, n_kv = struct.unpack_from("<QQ", data, pos); pos += 16
    align = 32

    def rstr(p):
        n, = struct.unpack_from("<Q", data, p)
        return data[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n

    def skip(t, p):
        if t in SCALAR:
            return p + SCALAR[t]
        if t == 8:
            return rstr(p)[1]
        et, n = struct.unpack_from("<IQ", data, p); p += 12
        if et == 8:
            for _ in range(n):
                p = rstr(p)[1]
            return p
        return p + SCALAR[et] * n

    for _ in range(n_kv):
        k, pos = rstr(pos)
        t, = struct.unpack_from("<I", data, pos); pos += 4
        if k == "general.alignment":
            align, = struct.unpack_from("<I", data, pos)
        pos = skip(t, pos)
    tensors = []
    for _ in range(n_t):
        name, pos = rstr(pos)
        nd, = struct.unpack_from("<I", data, pos); pos += 4
        ne = struct.unpack_from("<%dQ" % nd, data, pos); pos += 8 * nd
        typ, off = struct.unpack_from("<IQ", data, pos); pos += 12
        tensors.append((name, ne, typ, off))
    base = (pos + align - 1) // align * align
    for name, ne, typ, off in tensors:
        if typ == 0 and (want is None or name == want):
            n = 1
            for x in ne:
                n *= x
            struct.pack_into("<%df" % n, data, base + off, *([float("nan")] * n))
            open(sys.argv[2], "wb").write(data)
            print(name)
            return
    sys.exit("no F32 tensor found")


main()
