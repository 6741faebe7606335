#!/usr/bin/env bash
# scripts/bench_tokenize.sh [RUNS]: tokenization speed per tokenizer family on
# the 1,009,073-byte English/C/Chinese text of scripts/mk_bench_text.py, with
# `airlock bench-tokenize` (in process, best of RUNS, default 5). The five
# vocabs the reference figures of ../shared/perf/reference.md use, then one
# vocab per other pre-tokenizer family, written by ../shared/tools/setpre.py
# into a temporary folder.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${AIRLOCK_BIN:-$ROOT/build/airlock}
SHARED=${AIRLOCK_SHARED:-$ROOT/../shared}
RUNS=${1:-5}
V=$SHARED/vocab
[ -d "$V" ] || { echo "SKIP: $V is absent"; exit 0; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 "$ROOT/scripts/mk_bench_text.py" "$TMP/text.txt"
for f in qwen2 llama-bpe llama-spm gpt-2 bert-bge; do
    "$BIN" bench-tokenize "$V/ggml-vocab-$f.gguf" "$TMP/text.txt" --runs "$RUNS"
done
# name base: one per family not covered above
while read -r pre base; do
    python3 "$SHARED/tools/setpre.py" "$V/$base" "$pre" "$TMP/$pre.gguf" >/dev/null
    "$BIN" bench-tokenize "$TMP/$pre.gguf" "$TMP/text.txt" --runs "$RUNS"
    rm -f "$TMP/$pre.gguf"
done <<'LIST'
default ggml-vocab-gpt-neox.gguf
qwen35 ggml-vocab-qwen2.gguf
tekken ggml-vocab-llama-bpe.gguf
gpt-4o ggml-vocab-llama-bpe.gguf
deepseek-v3 ggml-vocab-llama-bpe.gguf
deepseek-llm ggml-vocab-deepseek-llm.gguf
deepseek-coder ggml-vocab-deepseek-coder.gguf
starcoder ggml-vocab-starcoder.gguf
falcon ggml-vocab-falcon.gguf
command-r ggml-vocab-command-r.gguf
bloom ggml-vocab-command-r.gguf
tiny_aya ggml-vocab-command-r.gguf
kimi-k2 ggml-vocab-llama-bpe.gguf
afmoe ggml-vocab-qwen2.gguf
youtu ggml-vocab-qwen2.gguf
superbpe ggml-vocab-llama-bpe.gguf
exaone-moe ggml-vocab-qwen2.gguf
chameleon ggml-vocab-gpt-2.gguf
LIST
