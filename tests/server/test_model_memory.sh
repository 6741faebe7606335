#!/usr/bin/env bash
# test_model_memory.sh - a served model costs its file, its KV cache and
# little more: the real `airlock serve` on a real-width model (qwen3-0.6b
# shapes, 2 layers, Q4_K_M, ~150 MB, made by ../shared/tools/mkmodel.py
# into a temporary folder), after requests and once the background packing
# of its weights has ended, has an RSS of at most file size + KV cache
# (/api/ps's size less the file's) + 64 MiB: a bound, not a timing. The
# packed panels replace the file's rows in the resident set; keeping both
# (about twice the file) breaks the bound.
source "$(dirname "$0")/lib.sh"

MK="$SHARED/tools/mkmodel.py"
VOCAB="$SHARED/vocab/ggml-vocab-qwen2.gguf"
if [ ! -f "$MK" ] || [ ! -f "$VOCAB" ]; then
    echo "SKIP: $MK or $VOCAB not found"
    exit 77
fi
SLACK_MIB=64
# AddressSanitizer's shadow memory and quarantine: a larger allowance
# (still far below the file's size again).
if ldd "$BIN" 2>/dev/null | grep -q libasan; then SLACK_MIB=112; fi
M="$WORK/qwen3-2l-q4_k_m.gguf"
python3 "$MK" --preset qwen3-0.6b --quant q4_k_m --layers 2 --vocab "$VOCAB" -o "$M" >/dev/null
FILE=$(stat -c %s "$M")

start_server mem --model "$M" --model-name m --parallel 4 --ctx 512
PID=$LAST_PID
req POST /v1/completions '{"model":"m","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
check "a completion (200)" [ "$CODE" = 200 ]
# four at once: the batched passes
CURLS=()
for i in 1 2 3 4; do
    curl -s -o /dev/null -H 'Content-Type: application/json' \
        --data-binary "{\"model\":\"m\",\"prompt\":\"Story $i:\",\"max_tokens\":24}" "$URL/v1/completions" &
    CURLS+=($!)
done
wait "${CURLS[@]}"
# the weights are packed by a thread of the model's: wait until it is done
PACKING=true
for _ in $(seq 1 1500); do
    req GET /api/ps
    PACKING=$(jget "$BODY" 'str(d["models"][0].get("packing")).lower()')
    [ "$PACKING" = false ] && break
    sleep 0.1
done
check "the background packing ends (/api/ps packing false)" [ "$PACKING" = false ]
req POST /v1/completions '{"model":"m","prompt":"The end","max_tokens":8,"temperature":0}'
check "a completion once packed (200)" [ "$CODE" = 200 ]

req GET /api/ps
SIZE=$(jget "$BODY" 'd["models"][0]["size"]')
KV=$((SIZE - FILE))
RSS=$(( $(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status") * 1024 ))
LIMIT=$((FILE + KV + SLACK_MIB * 1048576))
MiB() { echo "$(( $1 / 1048576 )) MiB"; }
echo "file $(MiB "$FILE"), KV cache $(MiB "$KV"), RSS $(MiB "$RSS"), limit $(MiB "$LIMIT")"
grep -E '^(VmHWM|RssAnon|RssFile)' "/proc/$PID/status" | tr -s ' \t' ' ' | paste -sd ';'
check "KV cache size known (/api/ps size $SIZE > file $FILE)" [ "$KV" -gt 0 ]
# the bound means something only if the weights are in the resident set
check "the weights are resident (RSS $(MiB "$RSS") >= 90% of the file)" [ "$RSS" -ge $((FILE / 10 * 9)) ]
check "RSS $(MiB "$RSS") <= file + KV cache + $SLACK_MIB MiB = $(MiB "$LIMIT")" [ "$RSS" -le "$LIMIT" ]
finish
