#!/usr/bin/env bash
# make bench-serve: N = 1, 4, 16 concurrent streaming clients against
# `airlock serve` with a qwen3-0.6b q4_k_m file (generated into a cache
# outside the repository if missing), 128-token prompts, 128 generated
# tokens. Prints aggregate tok/s, TTFT and inter-token latency p50/p99, and
# a prefix-cache TTFT comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${AIRLOCK_SHARED:-../shared}"
CACHE="${AIRLOCK_BENCH_CACHE:-$HOME/.cache/airlock/models}"
BIN="${AIRLOCK_BIN:-build/airlock}"
CLIENTS="${BENCH_CLIENTS:-1 4 16}"
PROMPT="${BENCH_PROMPT:-128}"
GEN="${BENCH_GEN:-128}"
M="$CACHE/qwen3-0.6b-q4_k_m.gguf"
mkdir -p "$CACHE"
if [ ! -s "$M" ]; then
    echo "bench-serve: generating $M" >&2
    python3 "$SHARED/tools/mkmodel.py" --preset qwen3-0.6b --quant q4_k_m \
        --vocab "$SHARED/vocab/ggml-vocab-qwen2.gguf" -o "$M.tmp" >/dev/null
    mv "$M.tmp" "$M"
fi
LOG="$(mktemp)"
"$BIN" serve --model "$M" --model-name qwen3 --listen 127.0.0.1:0 --parallel 16 --queue 64 --prefix-cache \
    --ctx $((PROMPT + GEN + 64)) ${BENCH_SERVE_ARGS:-} >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
URL="$(grep -m1 -o 'http://[0-9.:]*' "$LOG")"
# warm up: load the model, touch the weights
python3 scripts/bench_serve_load.py "$URL" qwen3 1 16 4 >/dev/null

printf '| clients | generated tok/s | vs 1 client | TTFT p50 (s) | TTFT p99 (s) | ITL p50 (ms) | ITL p99 (ms) |\n|---|---|---|---|---|---|---|\n'
base=""
for n in $CLIENTS; do
    r="$(python3 scripts/bench_serve_load.py "$URL" qwen3 "$n" "$PROMPT" "$GEN")"
    [ -z "$base" ] && base="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tok_s"])' "$r")"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); b=float(sys.argv[2]); print("| %d | %.1f | %.2fx | %.3f | %.3f | %.1f | %.1f |" % (d["clients"], d["tok_s"], d["tok_s"]/b, d["ttft_p50"], d["ttft_p99"], d["itl_p50"]*1e3, d["itl_p99"]*1e3))' "$r" "$base"
done

# Prefix cache: a 200-token prompt, then the same prompt + 2 tokens; the second reuses the KV.
python3 - "$URL" <<'PY'
import http.client, json, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
def ttft(prompt):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.monotonic()
    c.request("POST", "/v1/completions", json.dumps({"model": "qwen3", "prompt": prompt, "max_tokens": 1, "temperature": 0}),
              {"Content-Type": "application/json"})
    d = json.loads(c.getresponse().read())
    return time.monotonic() - t0, d["usage"]["prompt_tokens_details"]["cached_tokens"]
p = list(range(2000, 2000 + 200))
cold, _ = ttft(p)
warm, cached = ttft(p + [5000, 5001])
print("\nprefix cache: 200-token prompt cold TTFT %.3f s; same prefix + 2 tokens %.3f s (%d tokens reused, %.1fx faster)"
      % (cold, warm, cached, cold / warm))
PY
