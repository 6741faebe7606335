#!/bin/bash
# bench-import.sh [MODEL.gguf] - import throughput of `airlock import` beside
# sha256sum of the same file, in the same run, plus the import's peak RSS.
#
#   AIRLOCK_BIN  the airlock binary (default: build/airlock)
#   MODEL.gguf   default /tmp/bench-1b.gguf, generated with
#                ../shared/tools/mkmodel.py (llama-3.2-1b, q4_k_m) if absent
# Goal: import >= 0.8x sha256sum's speed (hashing while copying, one pass).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${AIRLOCK_SHARED:-$ROOT/../shared}
BIN=${AIRLOCK_BIN:-$ROOT/build/airlock}
MODEL=${1:-/tmp/bench-1b.gguf}
RUNS=${RUNS:-3}
[ -x "$BIN" ] || { echo "no airlock binary at $BIN (make build, or set AIRLOCK_BIN)"; exit 1; }
if [ ! -f "$MODEL" ]; then
    echo "generating $MODEL with mkmodel.py (takes a few minutes)..."
    python3 "$SHARED/tools/mkmodel.py" --preset llama-3.2-1b --quant q4_k_m \
        --vocab "$SHARED/vocab/ggml-vocab-llama-bpe.gguf" -o "$MODEL"
fi
W=$(mktemp -d /tmp/airlock-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$BIN" keygen --name bench --out "$W/keys" >/dev/null
"$BIN" bundle "$MODEL" --name bench --tag 1b --sign "$W/keys/bench.pem" -o "$W/bench.airlock" >/dev/null
bytes=$(stat -c %s "$MODEL")
now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 1e6 / t }'; }
cat "$W/bench.airlock" "$MODEL" > /dev/null # warm the page cache for both
best_sha=0 best_imp=0 rss=0
for r in $(seq 1 "$RUNS"); do
    t0=$(now); sha256sum "$MODEL" > /dev/null; t1=$(now)
    sha=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    rm -rf "$W/store"
    "$BIN" trust add "$W/keys/bench.pub.pem" --name bench --store "$W/store" >/dev/null
    t0=$(now)
    /usr/bin/time -f %M -o "$W/rss" "$BIN" import "$W/bench.airlock" --store "$W/store" >/dev/null
    t1=$(now)
    imp=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    s=$(mbps "$bytes" "$sha") i=$(mbps "$bytes" "$imp")
    printf "run %d: sha256sum %5s MB/s   airlock import %5s MB/s   (peak RSS %s KiB)\n" "$r" "$s" "$i" "$(cat "$W/rss")"
    [ "$s" -gt "$best_sha" ] && best_sha=$s
    [ "$i" -gt "$best_imp" ] && best_imp=$i
    rss=$(cat "$W/rss")
done
"$BIN" verify --store "$W/store" >/dev/null && verified=yes || verified=NO
echo
printf "| %-28s | %12s |\n" "file" "$(basename "$MODEL") ($((bytes / 1000000)) MB)"
printf "| %-28s | %12s |\n" "sha256sum (best of $RUNS)" "$best_sha MB/s"
printf "| %-28s | %12s |\n" "airlock import (best of $RUNS)" "$best_imp MB/s"
printf "| %-28s | %12s |\n" "ratio (goal >= 0.80)" "$(awk -v a="$best_imp" -v b="$best_sha" 'BEGIN { printf "%.2f", a / b }')"
printf "| %-28s | %12s |\n" "import peak RSS" "$((rss / 1024)) MiB"
printf "| %-28s | %12s |\n" "store verifies after import" "$verified"
