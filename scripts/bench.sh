#!/usr/bin/env bash
# make bench: generates the benchmark models (if missing) into a cache
# outside the repository, runs `airlock bench` on each, and prints them
# beside the reference runtime's figures read from
# $AIRLOCK_SHARED/perf/reference.json (llama.cpp, measured on this machine
# kind; the file names its host, ISA, date and build).
#
# On a host with AVX-512 the ratio is against the reference's native build
# (which uses AVX-512); on an AVX2-only host, against its AVX2 build. When
# this host's ISA differs from the reference host's, the ratio is indicative
# only, and the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${AIRLOCK_SHARED:-../shared}"
CACHE="${AIRLOCK_BENCH_CACHE:-$HOME/.cache/airlock/models}"
BIN="${AIRLOCK_BIN:-build/airlock}"
REPS="${BENCH_REPS:-3}"
REF="$SHARED/perf/reference.json"
OUT=/tmp/airlock-bench-summary.md
mkdir -p "$CACHE"

if [ ! -s "$REF" ]; then
  echo "bench: $REF not found: no reference figures to compare with (set AIRLOCK_SHARED)" >&2
  exit 1
fi

host_isa=$(grep -o -w 'avx2\|fma\|f16c\|avx512f\|avx512bw\|avx512vl\|avx512_vnni\|avx_vnni\|avx512_bf16' \
  /proc/cpuinfo | sort -u | tr '\n' ' ')
host_cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
column=avx2
case " $host_isa " in *" avx512f "*) column=native ;; esac
# AIRLOCK_NO_AVX512=1 makes airlock take its AVX2 kernels: compare with the
# reference's AVX2 build then, as on an AVX2-only host.
no512=""
if [ -n "${AIRLOCK_NO_AVX512:-}" ] && [ "${AIRLOCK_NO_AVX512}" != 0 ]; then
  no512=1
  column=avx2
fi

# One line per reference row: preset quant ref_pp ref_tg, plus the header facts.
ref_rows=$(python3 - "$REF" "$column" "$host_isa" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
col, host = sys.argv[2], set(sys.argv[3].split())
h = ref["host"]
same = set(h["isa"]) == host
print("#", h["date"], ref["reference"]["runtime"], ref["reference"]["build"],
      "|".join(h["isa"]), "same" if same else "differs")
for b in ref["bench"]:
    f = b[col]
    print(b["preset"], b["quant"], f["pp512"], f["tg128"])
PY
)
read -r _ ref_date ref_rt ref_build ref_isa ref_same <<<"$(echo "$ref_rows" | head -1)"

vocab_of() {
  case "$1" in
    llama-*) echo llama-bpe ;;
    *) echo qwen2 ;;
  esac
}

{
  echo "Host: $host_cpu; ISA: $host_isa"
  echo "Reference: $ref_rt $ref_build, $column build, measured $ref_date on a host with ${ref_isa//|/ }."
  if [ -n "$no512" ]; then
    echo "AIRLOCK_NO_AVX512 is set: airlock runs its AVX2 kernels, against the reference's AVX2 build."
  fi
  if [ "$ref_same" != same ]; then
    echo "**This host's ISA differs from the reference host's: the ratios are indicative only.**"
  fi
  echo
  printf '| model | quant | kernels | pp512 t/s (median) | reference | ratio | tg128 t/s (median) | reference | ratio | MiB/token | read GB/s | tg bound t/s | of bound |\n'
  printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
} > "$OUT"

# $CACHE/PRESET-QUANT.gguf, generated when missing: by mkmodel.py, or for
# iq4_xs (which mkmodel.py cannot write) by scripts/q4k-to-iq4xs.py from
# the preset's q4_k_m file (its Q4_K tensors rewritten as IQ4_XS blocks,
# for speed only: the values quantize nothing).
make_model() {
  local preset=$1 quant=$2 f="$CACHE/$1-$2.gguf"
  [ -s "$f" ] && return 0
  echo "bench: generating $f" >&2
  if [ "$quant" = iq4_xs ]; then
    make_model "$preset" q4_k_m
    python3 scripts/q4k-to-iq4xs.py "$CACHE/$preset-q4_k_m.gguf" "$f.tmp" >/dev/null
  else
    python3 "$SHARED/tools/mkmodel.py" --preset "$preset" --quant "$quant" \
      --vocab "$SHARED/vocab/ggml-vocab-$(vocab_of "$preset").gguf" -o "$f.tmp" >/dev/null
  fi
  mv "$f.tmp" "$f"
}

# The reference rows, then rows with no reference figure (ratio "—").
rows=$(echo "$ref_rows" | tail -n +2
  for m in "qwen3-0.6b q4_0" "qwen3-0.6b iq4_xs"; do grep -q "^$m " <<<"$ref_rows" || echo "$m - -"; done)
while read -r preset quant ref_pp ref_tg; do
  f="$CACHE/$preset-$quant.gguf"
  make_model "$preset" "$quant"
  if ! out=$("$BIN" bench "$f" -p 512 -n 128 -r "$REPS" 2>&1); then
    echo "$out" >&2
    printf '| %s | %s | — | failed | %s | — | failed | %s | — | — | — | — | — |\n' "$preset" "$quant" "$ref_pp" "$ref_tg" >> "$OUT"
    continue
  fi
  echo "$out"; echo
  # the ratios use the median of the repetitions (the machine is noisy)
  pp=$(echo "$out" | awk -F'|' '/ pp512 /{gsub(/ /, "", $6); print $6}')
  tg=$(echo "$out" | awk -F'|' '/ tg128 /{gsub(/ /, "", $6); print $6}')
  isa=$(echo "$out" | awk '/^kernels: /{print $2}')
  # the memory-bandwidth bound of tg: the bench measures the host's read
  # bandwidth and knows the weight bytes one token reads
  mib=$(echo "$out" | sed -n 's/^tg reads \([0-9.]*\) MiB.*/\1/p')
  gbs=$(echo "$out" | sed -n 's/.*read bandwidth \([0-9.]*\) GB\/s.*/\1/p')
  bound=$(echo "$out" | sed -n 's/^tg bound \([0-9.]*\) t\/s.*/\1/p')
  frac=$(echo "$out" | sed -n 's/.* = \([0-9.]*\) % of it$/\1/p')
  awk -v p="$preset" -v q="$quant" -v isa="$isa" -v pp="$pp" -v rp="$ref_pp" -v tg="$tg" -v rt="$ref_tg" \
      -v mib="${mib:-—}" -v gbs="${gbs:-—}" -v bound="${bound:-—}" -v frac="${frac:+$frac %}" '
    function ratio(a, b) { return b == "-" ? "—" : sprintf("%.2f", a / b) }
    BEGIN { printf "| %s | %s | %s | %.1f | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |\n",
            p, q, isa, pp, rp == "-" ? "—" : rp, ratio(pp, rp), tg, rt == "-" ? "—" : rt, ratio(tg, rt),
            mib, gbs, bound, frac == "" ? "—" : frac }' >> "$OUT"
done <<<"$rows"

# Long context (issue 21): a 2,048-token prompt, and generation after a
# 4,096-token prompt already in the cache (`bench --depth`, llama-bench's
# -d). reference.json has no such figures yet: the rows say so unless it
# gains a "long" list ({preset, quant, test, native, avx2}).
long_rows=$(python3 - "$REF" "$column" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
got = {(l["preset"], l["quant"], l["test"]): l.get(sys.argv[2], "-") for l in ref.get("long", [])}
for preset, quant, test in (("qwen3-0.6b", "q4_k_m", "pp2048"), ("qwen3-0.6b", "q4_k_m", "tg128@d4096")):
    print(preset, quant, test, got.get((preset, quant, test), "-"))
PY
)
{
  echo
  printf '| model | quant | kernels | test | t/s (median) | CPU s per run (median) | reference | ratio |\n'
  printf '|---|---|---|---|---|---|---|---|\n'
} >> "$OUT"
while read -r preset quant test ref_ts; do
  f="$CACHE/$preset-$quant.gguf"
  case "$test" in
    pp*) args=(-p "${test#pp}" -n 0); label="$test" ;;
    tg*@d*) n=${test%@*}; args=(-p 0 -n "${n#tg}" --depth "${test#*@d}"); label="${n} @ d${test#*@d}" ;;
  esac
  if [ ! -s "$f" ] || ! out=$("$BIN" bench "$f" "${args[@]}" -r "$REPS" 2>&1); then
    echo "${out:-bench: $f missing}" >&2
    printf '| %s | %s | — | %s | failed | — | %s | — |\n' "$preset" "$quant" "$label" "$ref_ts" >> "$OUT"
    continue
  fi
  echo "$out"; echo
  ts=$(echo "$out" | awk -F'|' -v t=" $label " 'index($0, t) {gsub(/ /, "", $6); print $6}')
  cpu=$(echo "$out" | awk -v t="cpu: $label: " 'index($0, t) == 1 {print $(NF-9)}')
  isa=$(echo "$out" | awk '/^kernels: /{print $2}')
  awk -v p="$preset" -v q="$quant" -v isa="$isa" -v t="$label" -v ts="$ts" -v cpu="$cpu" -v r="$ref_ts" 'BEGIN {
    printf "| %s | %s | %s | %s | %.1f | %.2f | %s | %s |\n", p, q, isa, t, ts, cpu,
           r == "-" ? "no reference figure" : r, r == "-" ? "—" : sprintf("%.2f", ts / r) }' >> "$OUT"
done <<<"$long_rows"

# Embeddings: 1,000 inputs of ~134 tokens on bge-small (F16, CLS pooling),
# whole inputs in passes of 8,192 tokens, against the reference's figure.
emb_ref=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])).get("embeddings") or {}
print(e.get("preset","bge-small"), e.get("quant","f16"), e.get("inputs",1000), e.get("tokens_per_input",134), e.get("inputs_per_s","-"))' "$REF")
read -r e_preset e_quant e_inputs e_tokens e_ref <<<"$emb_ref"
f="$CACHE/$e_preset-$e_quant.gguf"
if [ ! -s "$f" ]; then
  echo "bench: generating $f" >&2
  python3 "$SHARED/tools/mkmodel.py" --preset "$e_preset" --quant "$e_quant" \
    --vocab "$SHARED/vocab/ggml-vocab-bert-bge.gguf" -o "$f.tmp" >/dev/null
  mv "$f.tmp" "$f"
fi
{
  echo
  printf '| embeddings | inputs x tokens | inputs/s | reference | ratio |\n|---|---|---|---|---|\n'
  if out=$("$BIN" embed "$f" --bench "$e_inputs" --bench-tokens "$e_tokens" --batch 8192 2>&1); then
    echo "$out" >&2
    ips=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) inputs\/s.*/\1/p')
    awk -v p="$e_preset $e_quant" -v n="$e_inputs x $e_tokens" -v r="$ips" -v ref="$e_ref" 'BEGIN {
      printf "| %s | %s | %.2f | %s | %s |\n", p, n, r, ref, ref == "-" ? "—" : sprintf("%.2f", r / ref) }'
  else
    echo "$out" >&2
    printf '| %s %s | %s x %s | failed | %s | — |\n' "$e_preset" "$e_quant" "$e_inputs" "$e_tokens" "$e_ref"
  fi
} >> "$OUT"
cat "$OUT"
