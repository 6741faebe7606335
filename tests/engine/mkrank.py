#!/usr/bin/env python3
"""mkrank.py IN.gguf OUT.gguf [--no-dense | --decoder]: a rank (reranker)
model from an embedding model: the same file with {arch}.pooling_type = 4
(rank) and a classifier head of deterministic pseudo-random F32 weights:
cls.weight [n_embd, n_embd] and cls.bias (the dense layer, then tanh; left
out with --no-dense), cls.output.weight [n_embd, 1] and cls.output.bias.
--decoder (Qwen3-Reranker's layout): only cls.output.weight [n_embd, 2] (the
"yes" and "no" rows), no bias, and tokenizer.chat_template.rerank =
RERANK_TEMPLATE. Standard library only."""

RERANK_TEMPLATE = "<q>{query}</q> <d>{document}</d> ({instruction})"
import struct, sys

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def rd_str(b, o):
    n, = struct.unpack_from("<Q", b, o)
    return b[o + 8:o + 8 + n].decode(), o + 8 + n


def skip_val(b, o, t):
    if t == 8:
        return rd_str(b, o)[1]
    if t == 9:
        at, n = struct.unpack_from("<IQ", b, o)
        o += 12
        for _ in range(n):
            o = skip_val(b, o, at)
        return o
    return o + struct.calcsize(SCALAR[t])


def rand_f32(seed, n, scale):
    x, out = seed & 0xFFFFFFFF, []
    for _ in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append((x / 0x7FFFFFFF * 2.0 - 1.0) * scale)
    return struct.pack("<%df" % n, *out)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    decoder = "--decoder" in sys.argv
    dense = "--no-dense" not in sys.argv and not decoder
    b = open(src, "rb").read()
    ver, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
    o, kvs, arch, align, d = 24, [], None, 32, None
    for _ in range(n_kv):
        k0 = o
        k, o = rd_str(b, o)
        t, = struct.unpack_from("<I", b, o)
        v0 = o + 4
        o = skip_val(b, v0, t)
        if k == "general.architecture":
            arch = rd_str(b, v0)[0]
        if k == "general.alignment":
            align, = struct.unpack_from("<I", b, v0)
        kvs.append((k, b[k0:o]))
    infos = []
    for _ in range(n_t):
        name, o = rd_str(b, o)
        nd, = struct.unpack_from("<I", b, o)
        dims = struct.unpack_from("<%dQ" % nd, b, o + 4)
        t, off = struct.unpack_from("<IQ", b, o + 4 + 8 * nd)
        o += 4 + 8 * nd + 12
        infos.append((name, dims, t, off))
        if name == "token_embd.weight":
            d = dims[0]
    data0 = (o + align - 1) // align * align
    data = b[data0:]
    key = arch + ".pooling_type"
    kvs = [(k, raw) for k, raw in kvs if k != key]
    kb = key.encode()
    kvs.append((key, struct.pack("<Q", len(kb)) + kb + struct.pack("<II", 4, 4)))
    if decoder:
        tk, tv = b"tokenizer.chat_template.rerank", RERANK_TEMPLATE.encode()
        kvs.append((tk.decode(), struct.pack("<Q", len(tk)) + tk + struct.pack("<IQ", 8, len(tv)) + tv))
    new = []
    if dense:
        new += [("cls.weight", (d, d), rand_f32(11, d * d, 0.2)), ("cls.bias", (d,), rand_f32(12, d, 0.1))]
    if decoder:
        new += [("cls.output.weight", (d, 2), rand_f32(13, 2 * d, 0.005))]  # logits of O(1) on states of norm ~100
    else:
        new += [("cls.output.weight", (d, 1), rand_f32(13, d, 0.5)), ("cls.output.bias", (1,), struct.pack("<f", 0.25))]
    pad = lambda n: (-n) % align
    end = len(data) + pad(len(data))
    blob = data + b"\0" * pad(len(data))
    for name, dims, raw in new:
        infos.append((name, dims, 0, len(blob)))
        blob += raw + b"\0" * pad(len(raw))
    out = bytearray(b"GGUF" + struct.pack("<IQQ", ver, len(infos), len(kvs)))
    for _, raw in kvs:
        out += raw
    for name, dims, t, off in infos:
        nb = name.encode()
        out += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
        out += struct.pack("<%dQ" % len(dims), *dims) + struct.pack("<IQ", t, off)
    out += b"\0" * pad(len(out))
    out += blob
    open(dst, "wb").write(out)
    del end


if __name__ == "__main__":
    main()
