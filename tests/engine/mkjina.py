#!/usr/bin/env python3
"""mkjina.py BERT.gguf OUT.gguf EXPECTED.bin: a tiny jina-bert-v2 model
(ALiBi, LayerNorm on Q and K with biases in layer 0, attn_norm_2 in layer 1,
a fused GEGLU ffn_up with its bias, mean pooling; F32 pseudo-random weights,
the tokenizer of BERT.gguf) and, computed here in double precision straight
from the architecture, its mean-pooled vector for the token ids TOKENS. EXPECTED.bin holds int32
n_tokens, int32 n_embd, the n_tokens ids (int32), then the n_embd floats.
Standard library only: an independent reference for the engine's forward."""
import math, os, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mkrank import rd_str, skip_val  # noqa: E402

TOKENS = [101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 1997, 1996, 2940, 102]
D, L, H, FF, EPS, MAX_BIAS = 32, 2, 4, 64, 1e-12, 8.0
HD = D // H


class Rng:
    def __init__(self, seed):
        self.x = seed

    def vec(self, n, scale, offset=0.0):
        out = []
        for _ in range(n):
            self.x = (1103515245 * self.x + 12345) & 0x7FFFFFFF
            out.append(offset + (self.x / 0x7FFFFFFF * 2.0 - 1.0) * scale)
        # round to F32: the file stores F32
        return list(struct.unpack("<%df" % n, struct.pack("<%df" % n, *out)))


def kv_u32(k, v):
    kb = k.encode()
    return struct.pack("<Q", len(kb)) + kb + struct.pack("<II", 4, v)


def kv_f32(k, v):
    kb = k.encode()
    return struct.pack("<Q", len(kb)) + kb + struct.pack("<If", 6, v)


def kv_bool(k, v):
    kb = k.encode()
    return struct.pack("<Q", len(kb)) + kb + struct.pack("<I?", 7, v)


def kv_str(k, v):
    kb, vb = k.encode(), v.encode()
    return struct.pack("<Q", len(kb)) + kb + struct.pack("<IQ", 8, len(vb)) + vb


def ln(x, w, b):
    m = sum(x) / len(x)
    var = sum((a - m) ** 2 for a in x) / len(x)
    s = 1.0 / math.sqrt(var + EPS)
    return [(a - m) * s * w[i] + b[i] for i, a in enumerate(x)]


def mv(W, x, b, rows):  # W row-major (rows x len(x))
    n = len(x)
    return [sum(W[r * n + k] * x[k] for k in range(n)) + (b[r] if b else 0.0) for r in range(rows)]


def gelu(x):
    return 0.5 * x * (1.0 + math.tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)))


def main():
    src, dst, exp = sys.argv[1], sys.argv[2], sys.argv[3]
    b = open(src, "rb").read()
    _, _, n_kv = struct.unpack_from("<IQQ", b, 4)
    o, tok_kvs, n_vocab = 24, [], 0
    for _ in range(n_kv):
        k0 = o
        k, o = rd_str(b, o)
        t, = struct.unpack_from("<I", b, o)
        if k == "tokenizer.ggml.tokens":
            n_vocab, = struct.unpack_from("<Q", b, o + 8)
        o = skip_val(b, o + 4, t)
        if k.startswith("tokenizer."):
            tok_kvs.append(b[k0:o])
    a = "jina-bert-v2"
    kvs = [kv_str("general.architecture", a), kv_u32("general.alignment", 32), kv_u32(a + ".context_length", 512),
           kv_u32(a + ".embedding_length", D), kv_u32(a + ".block_count", L), kv_u32(a + ".feed_forward_length", FF),
           kv_u32(a + ".attention.head_count", H), kv_u32(a + ".attention.head_count_kv", H),
           kv_f32(a + ".attention.layer_norm_epsilon", EPS), kv_bool(a + ".attention.causal", False),
           kv_u32(a + ".pooling_type", 1)] + tok_kvs
    r = Rng(7)
    T = {}  # name -> (dims (ne0, ne1...), values)
    T["token_embd.weight"] = ((D, n_vocab), r.vec(D * n_vocab, 1.0))
    T["token_types.weight"] = ((D, 2), r.vec(2 * D, 0.5))
    T["token_embd_norm.weight"] = ((D,), r.vec(D, 0.1, 1.0))
    T["token_embd_norm.bias"] = ((D,), r.vec(D, 0.1))
    for i in range(L):
        p = "blk.%d." % i
        for x, g in (("q", 3.0), ("k", 3.0), ("v", 1.0)):
            T[p + "attn_%s.weight" % x] = ((D, D), r.vec(D * D, g / math.sqrt(D)))
            T[p + "attn_%s.bias" % x] = ((D,), r.vec(D, 0.1))
        if i == 0:
            for x in ("q", "k"):
                T[p + "attn_%s_norm.weight" % x] = ((D,), r.vec(D, 0.2, 1.0))
                T[p + "attn_%s_norm.bias" % x] = ((D,), r.vec(D, 0.1))
        T[p + "attn_output.weight"] = ((D, D), r.vec(D * D, 1.0 / math.sqrt(D)))
        T[p + "attn_output.bias"] = ((D,), r.vec(D, 0.1))
        T[p + "attn_output_norm.weight"] = ((D,), r.vec(D, 0.1, 1.0))
        T[p + "attn_output_norm.bias"] = ((D,), r.vec(D, 0.1))
        if i == 1:
            T[p + "attn_norm_2.weight"] = ((D,), r.vec(D, 0.1, 1.0))
            T[p + "attn_norm_2.bias"] = ((D,), r.vec(D, 0.1))
        T[p + "ffn_up.weight"] = ((D, 2 * FF), r.vec(2 * FF * D, 1.5 / math.sqrt(D)))
        T[p + "ffn_up.bias"] = ((2 * FF,), r.vec(2 * FF, 0.1))
        T[p + "ffn_down.weight"] = ((FF, D), r.vec(D * FF, 1.0 / math.sqrt(FF)))
        T[p + "ffn_down.bias"] = ((D,), r.vec(D, 0.1))
        T[p + "layer_output_norm.weight"] = ((D,), r.vec(D, 0.1, 1.0))
        T[p + "layer_output_norm.bias"] = ((D,), r.vec(D, 0.1))

    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(T), len(kvs)))
    for k in kvs:
        out += k
    off, blobs = 0, []
    for name, (dims, vals) in T.items():
        nb = name.encode()
        out += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        out += struct.pack("<IQ", 0, off)
        raw = struct.pack("<%df" % len(vals), *vals)
        raw += b"\0" * ((-len(raw)) % 32)
        blobs.append(raw)
        off += len(raw)
    out += b"\0" * ((-len(out)) % 32)
    with open(dst, "wb") as f:
        f.write(out)
        for raw in blobs:
            f.write(raw)

    # the forward pass, in double precision
    n_log2 = 1
    while n_log2 * 2 <= H:
        n_log2 *= 2
    m0, m1 = 2.0 ** (-MAX_BIAS / n_log2), 2.0 ** (-(MAX_BIAS / 2) / n_log2)
    slope = [m0 ** (h + 1) if h < n_log2 else m1 ** (2 * (h - n_log2) + 1) for h in range(H)]
    E, TT = T["token_embd.weight"][1], T["token_types.weight"][1]
    g = lambda n: T[n][1]
    xs = [ln([E[t * D + k] + TT[k] for k in range(D)], g("token_embd_norm.weight"), g("token_embd_norm.bias"))
          for t in TOKENS]
    n = len(TOKENS)
    for i in range(L):
        p = "blk.%d." % i
        q = [mv(g(p + "attn_q.weight"), x, g(p + "attn_q.bias"), D) for x in xs]
        k = [mv(g(p + "attn_k.weight"), x, g(p + "attn_k.bias"), D) for x in xs]
        v = [mv(g(p + "attn_v.weight"), x, g(p + "attn_v.bias"), D) for x in xs]
        if p + "attn_q_norm.weight" in T:
            q = [ln(a, g(p + "attn_q_norm.weight"), g(p + "attn_q_norm.bias")) for a in q]
            k = [ln(a, g(p + "attn_k_norm.weight"), g(p + "attn_k_norm.bias")) for a in k]
        att = []
        for t in range(n):
            o = [0.0] * D
            for h in range(H):
                s = [sum(q[t][h * HD + c] * k[u][h * HD + c] for c in range(HD)) / math.sqrt(HD) - slope[h] * abs(t - u)
                     for u in range(n)]
                mx = max(s)
                e = [math.exp(a - mx) for a in s]
                z = sum(e)
                for c in range(HD):
                    o[h * HD + c] = sum(e[u] / z * v[u][h * HD + c] for u in range(n))
            att.append(o)
        nx = []
        for t in range(n):
            a_ = mv(g(p + "attn_output.weight"), att[t], g(p + "attn_output.bias"), D)
            x1 = ln([xs[t][c] + a_[c] for c in range(D)], g(p + "attn_output_norm.weight"), g(p + "attn_output_norm.bias"))
            if p + "attn_norm_2.weight" in T:
                x1 = ln([x1[c] + xs[t][c] for c in range(D)], g(p + "attn_norm_2.weight"), g(p + "attn_norm_2.bias"))
            u = mv(g(p + "ffn_up.weight"), x1, g(p + "ffn_up.bias"), 2 * FF)
            hh = [gelu(u[c]) * u[FF + c] for c in range(FF)]
            f = mv(g(p + "ffn_down.weight"), hh, g(p + "ffn_down.bias"), D)
            nx.append(ln([f[c] + x1[c] for c in range(D)], g(p + "layer_output_norm.weight"),
                         g(p + "layer_output_norm.bias")))
        xs = nx
    mean = [sum(x[c] for x in xs) / n for c in range(D)]
    with open(exp, "wb") as f:
        f.write(struct.pack("<ii", n, D) + struct.pack("<%di" % n, *TOKENS) + struct.pack("<%df" % D, *mean))


if __name__ == "__main__":
    main()
