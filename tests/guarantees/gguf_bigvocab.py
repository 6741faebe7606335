#!/usr/bin/env python3
"""gguf_bigvocab.py IN.gguf OUT.gguf N [noscores]: copies a GGUF with its
tokenizer.ggml.tokens array replaced by N one-byte strings (a hostile file
whose token count does not match its embedding; ~9 bytes per token); with
noscores, tokenizer.ggml.scores and token_type are dropped too (so only the
embedding's row count can refuse it)."""
import struct
import sys

SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def main():
    src = open(sys.argv[1], "rb").read()
    n_new = int(sys.argv[3])
    drop = ("tokenizer.ggml.scores", "tokenizer.ggml.token_type") if len(sys.argv) > 4 else ()
    pos = 8
    n_t, n_kv = struct.unpack_from("<QQ", src, pos); pos += 16
    out = bytearray(src[:pos])
    align = 32

    def rstr(p):
        n, = struct.unpack_from("<Q", src, p)
        return src[p + 8:p + 8 + n].decode(), p + 8 + n

    def skip(t, p):
        if t in SCALAR:
            return p + SCALAR[t]
        if t == 8:
            return rstr(p)[1]
        et, n = struct.unpack_from("<IQ", src, p); p += 12
        if et == 8:
            for _ in range(n):
                p = rstr(p)[1]
            return p
        return p + SCALAR[et] * n

    for _ in range(n_kv):
        start = pos
        k, pos = rstr(pos)
        t, = struct.unpack_from("<I", src, pos); pos += 4
        if k == "general.alignment":
            align, = struct.unpack_from("<I", src, pos)
        end = skip(t, pos)
        if k in drop:
            struct.pack_into("<Q", out, 16, struct.unpack_from("<Q", out, 16)[0] - 1)
        elif k == "tokenizer.ggml.tokens":
            out += src[start:pos] + struct.pack("<IQ", 8, n_new)
            one = struct.pack("<Q", 1) + b"a"
            out += one * n_new
        else:
            out += src[start:end]
        pos = end
    ti_start = pos
    for _ in range(n_t):
        _, pos = rstr(pos)
        nd, = struct.unpack_from("<I", src, pos); pos += 4 + 8 * nd + 12
    out += src[ti_start:pos]
    base = (pos + align - 1) // align * align
    pad = (len(out) + align - 1) // align * align - len(out)
    out += b"\0" * pad
    out += src[base:]
    open(sys.argv[2], "wb").write(out)


main()
