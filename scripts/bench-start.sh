#!/usr/bin/env bash
# make bench-start: cold start of `airlock serve` on a ~1 GB model
# (qwen2.5-1.5b q4_k_m from mkmodel.py, 986 MB; generated into a cache
# outside the repository if missing), page cache warm: time from the
# process's start to listening, to /ready, and to the first token of a
# first request (the model is loaded on first use), the server's CPU time
# at that point, and its RSS after a request beside the budget file size +
# KV cache + 64 MiB. Goals (issue 21): first token under 1 s; RSS within
# the budget. BENCH_RUNS runs (default 3), medians.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${AIRLOCK_SHARED:-../shared}"
CACHE="${AIRLOCK_BENCH_CACHE:-$HOME/.cache/airlock/models}"
BIN="${AIRLOCK_BIN:-build/airlock}"
M="${BENCH_START_MODEL:-$CACHE/qwen2.5-1.5b-q4_k_m.gguf}"
mkdir -p "$CACHE"
if [ ! -s "$M" ]; then
    echo "bench-start: generating $M" >&2
    python3 "$SHARED/tools/mkmodel.py" --preset qwen2.5-1.5b --quant q4_k_m \
        --vocab "$SHARED/vocab/ggml-vocab-qwen2.gguf" -o "$M.tmp" >/dev/null
    mv "$M.tmp" "$M"
fi
echo "host: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo); ISA: $(grep -o -w \
'avx2\|fma\|f16c\|avx512f\|avx512bw\|avx512vl\|avx512_vnni\|avx_vnni\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
exec python3 scripts/bench_start.py "$BIN" "$M" "${BENCH_RUNS:-3}" -- ${BENCH_SERVE_ARGS:-}
