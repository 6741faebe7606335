#!/usr/bin/env bash
# make bench: generates the benchmark models of the performance issue (if
# missing) into a cache outside the repository, then runs `airlock bench`
# on each and prints the tables with llama.cpp's figures beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${AIRLOCK_SHARED:-../shared}"
CACHE="${AIRLOCK_BENCH_CACHE:-$HOME/.cache/airlock/models}"
BIN="${AIRLOCK_BIN:-build/airlock}"
REPS="${BENCH_REPS:-3}"
mkdir -p "$CACHE"
# preset quant vocab llama.cpp-pp512 llama.cpp-tg128
ROWS=(
  "qwen3-0.6b q4_k_m qwen2 105 28.8"
  "qwen3-0.6b q8_0 qwen2 99 20.9"
  "qwen3-0.6b q4_0 qwen2 120 30.9"
  "llama-3.2-1b q4_k_m llama-bpe 58 17.4"
  # mixture of experts: Qwen3-30B-A3B's layers (128 experts, 8 used), 6 of them, 2.6 GB;
  # llama.cpp's figures from ../shared/perf/reference.md (native build)
  "qwen3moe-bench q4_k_m qwen2 215.9 57.4"
)
printf '| model | quant | pp512 t/s (median) | llama.cpp | ratio | tg128 t/s (median) | llama.cpp | ratio |\n|---|---|---|---|---|---|---|---|\n' > /tmp/airlock-bench-summary.md
for row in "${ROWS[@]}"; do
  read -r preset quant vocab ref_pp ref_tg <<<"$row"
  f="$CACHE/$preset-$quant.gguf"
  if [ ! -s "$f" ]; then
    echo "bench: generating $f" >&2
    python3 "$SHARED/tools/mkmodel.py" --preset "$preset" --quant "$quant" \
      --vocab "$SHARED/vocab/ggml-vocab-$vocab.gguf" -o "$f.tmp" >/dev/null
    mv "$f.tmp" "$f"
  fi
  out=$("$BIN" bench "$f" -p 512 -n 128 -r "$REPS")
  echo "$out"; echo
  # the ratios use the median of the repetitions (the machine is noisy)
  pp=$(echo "$out" | awk -F'|' '/ pp512 /{gsub(/ /, "", $6); print $6}')
  tg=$(echo "$out" | awk -F'|' '/ tg128 /{gsub(/ /, "", $6); print $6}')
  awk -v p="$preset" -v q="$quant" -v pp="$pp" -v rp="$ref_pp" -v tg="$tg" -v rt="$ref_tg" \
    'BEGIN{printf "| %s | %s | %.1f | %s | %.2f | %.1f | %s | %.2f |\n", p, q, pp, rp, pp/rp, tg, rt, tg/rt}' \
    >> /tmp/airlock-bench-summary.md
done
cat /tmp/airlock-bench-summary.md
