#!/usr/bin/env bash
# make bench-serve: N = 1, 4, 16 concurrent streaming clients against
# `airlock serve` with a qwen3-0.6b q4_k_m file (generated into a cache
# outside the repository if missing), 128-token prompts, 128 generated
# tokens. Prints aggregate tok/s beside the reference server's (read from
# $AIRLOCK_SHARED/perf/reference.json, measured on this machine kind) and
# their ratio (goal: at least 1.25x), TTFT and inter-token latency p50/p99,
# ITL p99 at 4 clients over the single client's p50 (goal: under 3x), the
# server's CPU time per generated token (user + sys of the server process:
# a figure that a busy shared host disturbs far less than wall time), the
# mean wall time of the server's decode passes (the engine's share of an
# inter-token latency) and its sampling time per token, and a prefix-cache
# TTFT comparison. The runs start once the background weight
# packing has ended, each with prompts no earlier run used.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${AIRLOCK_SHARED:-../shared}"
CACHE="${AIRLOCK_BENCH_CACHE:-$HOME/.cache/airlock/models}"
BIN="${AIRLOCK_BIN:-build/airlock}"
CLIENTS="${BENCH_CLIENTS:-1 4 16}"
PROMPT="${BENCH_PROMPT:-128}"
GEN="${BENCH_GEN:-128}"
REF="$SHARED/perf/reference.json"
M="$CACHE/qwen3-0.6b-q4_k_m.gguf"
mkdir -p "$CACHE"
if [ ! -s "$M" ]; then
    echo "bench-serve: generating $M" >&2
    python3 "$SHARED/tools/mkmodel.py" --preset qwen3-0.6b --quant q4_k_m \
        --vocab "$SHARED/vocab/ggml-vocab-qwen2.gguf" -o "$M.tmp" >/dev/null
    mv "$M.tmp" "$M"
fi
LOG="$(mktemp)"
RES="$(mktemp)"
"$BIN" serve --model "$M" --model-name qwen3 --listen 127.0.0.1:0 --parallel 16 --queue 64 --prefix-cache \
    --ctx $((PROMPT + GEN + 64)) ${BENCH_SERVE_ARGS:-} >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG" "$RES"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
URL="$(grep -m1 -o 'http://[0-9.:]*' "$LOG")"
# warm up: load the model, touch the weights (a prompt of its own: run 0)
python3 scripts/bench_serve_load.py "$URL" qwen3 1 16 4 0 >/dev/null
# The model is packed in the background after loading (pack_background);
# until that ends, a third thread competes for the cores and the matrices
# not packed yet are packed at each use. The runs below measure the served
# speed after it: the time to it is `make bench-start`'s figure.
PACKED="$(python3 - "$URL" <<'PY'
import http.client, json, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
t0 = time.monotonic()
while time.monotonic() - t0 < 300:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", "/api/ps")
    ms = json.loads(c.getresponse().read()).get("models", [])
    if ms and not any(m.get("packing") for m in ms):
        break
    time.sleep(0.1)
print("%.1f" % (time.monotonic() - t0))
PY
)"

# user + sys clock ticks of the server so far
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }
# the server's counters of decode passes, their wall time, the sampling
# time and the generated tokens so far (/metrics), as one word of JSON
snap() {
    python3 - "$URL" <<'PY'
import http.client, json, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
c.request("GET", "/metrics")
v = {}
for l in c.getresponse().read().decode().splitlines():
    if l and not l.startswith("#"):
        k, x = l.rsplit(" ", 1)
        v[k] = float(x)
print(json.dumps([v.get('airlock_forward_passes_total{kind="decode"}', 0),
                  v.get('airlock_forward_pass_seconds_total{kind="decode"}', 0),
                  v.get("airlock_sampling_seconds_total", 0), v.get("airlock_generated_tokens_total", 0)],
                 separators=(",", ":")))
PY
}
run=0
for n in $CLIENTS; do
    run=$((run + 1)) # a fresh prompt per run: no run reuses another's KV
    m0="$(snap)"
    c0="$(cpu_ticks)"
    r="$(python3 scripts/bench_serve_load.py "$URL" qwen3 "$n" "$PROMPT" "$GEN" "$run")"
    c1="$(cpu_ticks)"
    echo "$r $((c1 - c0)) $m0 $(snap)" >> "$RES"
done

host_isa=$(grep -o -w 'avx2\|fma\|f16c\|avx512f\|avx512bw\|avx512vl\|avx512_vnni\|avx_vnni\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')
host_cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
python3 - "$RES" "$REF" "$host_cpu" "$host_isa" "$(getconf CLK_TCK)" "$PROMPT" "$GEN" "$PACKED" <<'PY'
import json, os, sys
res, ref_path, cpu, isa, tck, n_prompt, n_gen, packed = sys.argv[1:9]
rows = []
for line in open(res):
    j, ticks, m0, m1 = line.rsplit(" ", 3)
    d = json.loads(j)
    d["cpu_s"] = int(ticks) / int(tck)
    dm = [b - a for a, b in zip(json.loads(m0), json.loads(m1))]
    d["dec_ms"] = dm[1] / dm[0] * 1e3 if dm[0] else float("nan")
    d["smp_ms"] = dm[2] / dm[3] * 1e3 if dm[3] else float("nan")
    rows.append(d)
ref, note = {}, "no reference figures (%s not found)" % ref_path
if os.path.exists(ref_path):
    R = json.load(open(ref_path))
    sv = R.get("serve")
    if sv:
        same = set(R["host"]["isa"]) == set(isa.split())
        if int(sv["prompt"]) == int(n_prompt) and int(sv["gen"]) == int(n_gen):
            ref = {int(k): v for k, v in sv["clients"].items()}
        note = "reference: %s %s server, measured %s on %s (%s)%s" % (
            R["reference"]["runtime"], R["reference"]["build"], R["host"]["date"], R["host"]["cpu"],
            " ".join(R["host"]["isa"]),
            "" if same else "; **this host's ISA differs: the ratios are indicative only**")
print("host: %s; ISA: %s" % (cpu, isa))
print("weights packed %s s after the warm-up request; the runs below start after that, each with prompts "
      "of its own (no prefix-cache hits)" % packed)
print(note)
print("\n| clients | tok/s | reference | ratio (goal >= 1.25x) | vs 1 client | TTFT p50 (s) | TTFT p99 (s) "
      "| ITL p50 (ms) | ITL p99 (ms) | decode pass (ms) | sampling ms/token | server CPU ms/token |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
base = rows[0]["tok_s"] if rows else 1
for d in rows:
    r = ref.get(d["clients"])
    print("| %d | %.1f | %s | %s | %.2fx | %.3f | %.3f | %.1f | %.1f | %.1f | %.3f | %.1f |" % (
        d["clients"], d["tok_s"], "%.1f" % r if r else "—", "%.2fx" % (d["tok_s"] / r) if r else "—",
        d["tok_s"] / base, d["ttft_p50"], d["ttft_p99"], d["itl_p50"] * 1e3, d["itl_p99"] * 1e3,
        d["dec_ms"], d["smp_ms"], d["cpu_s"] * 1e3 / max(d["tokens"], 1)))
print("\ndecode pass: the mean wall time of the server's decode-only forward passes (al_decode; the engine's "
      "share of an inter-token latency), sampling: the server's sampling time per generated token "
      "(/metrics airlock_forward_pass_seconds_total, airlock_sampling_seconds_total)")
one = [d for d in rows if d["clients"] == 1]
four = [d for d in rows if d["clients"] == 4]
if one and four:
    q = four[0]["itl_p99"] / one[0]["itl_p50"]
    print("\nITL p99 at 4 clients / ITL p50 at 1 client: %.1f / %.1f ms = %.2fx (goal: under 3x: %s)" % (
        four[0]["itl_p99"] * 1e3, one[0]["itl_p50"] * 1e3, q, "met" if q < 3 else "NOT met"))
PY

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
