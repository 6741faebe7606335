#!/usr/bin/env python3
"""Writes the tiny GGUF seeds of fuzz/corpus/gguf (a 1-layer llama with a
32-token SentencePiece-style vocabulary, a GPT-2-style BPE vocab-only file,
a WordPiece one, and a few broken variants): python3 fuzz/make_seeds.py DIR.
Each file is a few KB. They are made when needed (the gguf_fuzz_replay test,
make fuzz), not committed: GGUF files stay out of the repository."""
import struct, os, sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "build-fuzz/seeds-gguf"
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)

def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b

def kv(key, typ, val):
    out = s(key) + struct.pack("<I", typ)
    return out + value(typ, val)

def value(typ, val):
    if typ == STR: return s(val)
    if typ == ARR:
        et, items = val
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, v) for v in items)
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q", F64: "d"}[typ]
    return struct.pack("<" + fmt, val)

def gguf(kvs, tensors, align=32):
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    body = b"".join(kv(*k) for k in kvs)
    info, data = b"", b""
    for name, dims, arr in tensors:
        off = len(data)
        info += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        info += struct.pack("<IQ", 0, off)  # F32
        data += struct.pack("<%df" % len(arr), *arr)
        data += b"\0" * ((-len(data)) % align)
    meta = head + body + info
    meta += b"\0" * ((-len(meta)) % align)
    return meta + data

def spm_vocab(n):
    toks = ["<unk>", "<s>", "</s>"] + ["\u2581" + w for w in ["the", "a", "cat", "dog", "sat"]]
    toks += list("abcdefghijklmnopqrstuvwx")
    toks = toks[:n]
    types = [2, 3, 3] + [1] * (n - 3)
    return [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, toks)),
            ("tokenizer.ggml.scores", ARR, (F32, [float(-i) for i in range(n)])),
            ("tokenizer.ggml.token_type", ARR, (I32, types)),
            ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2)]

def bpe_vocab():
    toks = [chr(c) for c in range(0x21, 0x7f)] + ["\u0120", "\u0120t", "he", "\u0120the", "<|endoftext|>"]
    merges = ["\u0120 t", "h e", "\u0120t he"]
    types = [1] * (len(toks) - 1) + [3]
    return [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, "gpt-2"),
            ("tokenizer.ggml.tokens", ARR, (STR, toks)), ("tokenizer.ggml.merges", ARR, (STR, merges)),
            ("tokenizer.ggml.token_type", ARR, (I32, types)), ("tokenizer.ggml.eos_token_id", U32, len(toks) - 1)]

def wpm_vocab():
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "##s", "a", "b", "##c"]
    return [("tokenizer.ggml.model", STR, "bert"), ("tokenizer.ggml.tokens", ARR, (STR, toks)),
            ("tokenizer.ggml.token_type", ARR, (I32, [3, 2, 3, 3] + [1] * 6)),
            ("tokenizer.ggml.unknown_token_id", U32, 1), ("tokenizer.ggml.cls_token_id", U32, 2),
            ("tokenizer.ggml.seperator_token_id", U32, 3)]

def llama(n_vocab=32, d=8, ff=16, heads=2, layers=1, extra=(), drop=None, vocab=None):
    kvs = [("general.architecture", STR, "llama"), ("general.name", STR, "fuzz-tiny"),
           ("llama.context_length", U32, 64), ("llama.embedding_length", U32, d),
           ("llama.block_count", U32, layers), ("llama.feed_forward_length", U32, ff),
           ("llama.attention.head_count", U32, heads), ("llama.attention.head_count_kv", U32, heads),
           ("llama.rope.dimension_count", U32, d // heads),
           ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)] + (vocab or spm_vocab(n_vocab)) + list(extra)
    t = [("token_embd.weight", [d, n_vocab], [0.01 * (i % 7) for i in range(d * n_vocab)]),
         ("output_norm.weight", [d], [1.0] * d)]
    for i in range(layers):
        p = "blk.%d." % i
        t += [(p + "attn_norm.weight", [d], [1.0] * d), (p + "ffn_norm.weight", [d], [1.0] * d)]
        for n in ["attn_q", "attn_k", "attn_v", "attn_output"]:
            t.append((p + n + ".weight", [d, d], [0.02] * (d * d)))
        t += [(p + "ffn_gate.weight", [d, ff], [0.01] * (d * ff)), (p + "ffn_up.weight", [d, ff], [0.01] * (d * ff)),
              (p + "ffn_down.weight", [ff, d], [0.01] * (d * ff))]
    if drop:
        kvs = [k for k in kvs if k[0] != drop]
        t = [x for x in t if x[0] != drop]
    return gguf(kvs, t)

def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "llama-spm.gguf": llama(),
        "llama-2layer-gqa.gguf": llama(layers=2, heads=2),
        "llama-bpe.gguf": llama(n_vocab=len(bpe_vocab()[2][2][1]), vocab=bpe_vocab()),
        "llama-template.gguf": llama(extra=[("tokenizer.chat_template", STR,
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}")]),
        "llama-no-output-norm.gguf": llama(drop="output_norm.weight"),
        "llama-no-block-count.gguf": llama(drop="llama.block_count"),
        "vocab-only-bpe.gguf": gguf([("general.architecture", STR, "llama")] + bpe_vocab(), []),
        "vocab-only-wpm.gguf": gguf([("general.architecture", STR, "bert")] + wpm_vocab(), []),
        "vocab-only-spm.gguf": gguf([("general.architecture", STR, "llama")] + spm_vocab(32), []),
        "empty-v3.gguf": gguf([], []),
        "bad-magic.gguf": b"GGUX" + llama()[4:],
    }
    full = llama()
    seeds["truncated.gguf"] = full[: len(full) // 2]
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(name, len(data))

main()
