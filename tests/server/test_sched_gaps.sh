#!/usr/bin/env bash
# test_sched_gaps.sh - a running stream keeps flowing while another model
# loads (issue 18). The real `airlock serve` on loopback with two models: a
# small one that streams, and a big one (a few hundred MB made by mkmodel.py
# in the test's temporary folder) that is first requested while the stream
# runs. The big model is loaded by the Ollama way (an empty prompt), so that
# the window between that request and its answer holds the load only: its
# hashing, mapping and context, no forward pass of its own.
#
# Fails when the stream's largest gap between two chunks inside that window
# exceeds max(100 ms, K x the stream's own median gap): a ratio against the
# stream itself, so a slow or busy host moves both sides. The scheduler used
# to hold its lock across the load: the stream stopped for the whole load.
#
# Slow: writing the big model takes ~2-20 s (I/O; ~2 s of CPU), the rest
# ~10 s.
source "$(dirname "$0")/lib.sh"

MKMODEL="$SHARED/tools/mkmodel.py"
[ -f "$MKMODEL" ] || { echo "SKIP: no $MKMODEL"; exit 77; }
STREAM="$SHARED/models/tiny-llama-q8_0.gguf"
K=10
MIN_MS=100

# The big model: llama-3.2-1b's layer shape (n_embd 2048, FFN 8192) in F16,
# 2 layers, the small stories vocabulary: 245 MB.
BIG="$WORK/big.gguf"
T0=$(date +%s.%N)
python3 "$MKMODEL" --preset llama-3.2-1b --quant f16 --layers 2 --vocab "$STORIES" -o "$BIG" >/dev/null
# on disk before the first load: writeback of 245 MB of dirty pages during
# a load slowed it 5x and made the host stall everything
sync "$BIG"
echo "made $(($(stat -c %s "$BIG") / 1000000)) MB in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$T0" "$(date +%s.%N)") s"

# The client: loads the stream's model, streams from it (one request after
# another until the load is over) while the big model is first requested,
# and judges the gaps. Exit status 0: within the limit.
cat >"$WORK/gaps.py" <<'PY'
import http.client, json, statistics, sys, threading, time
from urllib.parse import urlparse

url = urlparse(sys.argv[1])
K, MIN_MS = float(sys.argv[2]), float(sys.argv[3])

def post(path, body):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return c, c.getresponse()

def fail(msg):
    print("attempt failed: " + msg)
    sys.exit(1)

c, r = post("/v1/completions", {"model": "stream", "prompt": "Once", "max_tokens": 2})
r.read()
if r.status != 200:
    fail(f"warm-up of the stream model: HTTP {r.status}")

# Streams, one after another until the load is over: EOS (id 2) banned so
# that each runs its max_tokens. Gaps count within a stream only.
streams = []
started, load_done = threading.Event(), threading.Event()
def stream():
    while True:
        times = []
        streams.append(times)
        c, r = post("/v1/completions", {"model": "stream", "prompt": "Once upon a time", "max_tokens": 1500,
                                        "stream": True, "logit_bias": {"2": -100}, "temperature": 0})
        for line in r:
            if line.startswith(b"data: {"):
                times.append(time.monotonic())
                if len(times) == 100:
                    started.set()
        c.close()
        if len(times) < 100 or load_done.is_set():
            break
th = threading.Thread(target=stream)
th.start()
if not started.wait(60):
    fail("the stream did not start")

t_load0 = time.monotonic()
c, r = post("/api/generate", {"model": "big", "prompt": ""})
body = r.read()
t_load1 = time.monotonic()
load_done.set()
th.join()
if r.status != 200 or json.loads(body).get("done_reason") != "load":
    fail(f"loading the big model: HTTP {r.status} {body[:200]!r}")

pairs = [(a, b) for times in streams for a, b in zip(times, times[1:])]
if not pairs:
    fail("no stream chunks")
gaps = [(b - a) * 1000 for a, b in pairs]
median = statistics.median(gaps)
# Gaps overlapping the load window: from the last chunk before its start to
# the first chunk after its end.
inside = [(b - a) * 1000 for a, b in pairs if b >= t_load0 and a <= t_load1]
worst = max(inside) if inside else (t_load1 - t_load0) * 1000
limit = max(MIN_MS, K * median)
load_ms = (t_load1 - t_load0) * 1000
print(f"stream: {len(streams)} request(s), {len(gaps) + len(streams)} chunks, median gap {median:.2f} ms, largest overall {max(gaps):.1f} ms")
print(f"big model load: {load_ms:.0f} ms; {len(inside)} gaps overlap it, largest {worst:.1f} ms "
      f"(limit max({MIN_MS:.0f} ms, {K:.0f} x median) = {limit:.1f} ms)")
outside = sorted(((b - a) * 1000 for a, b in pairs if b < t_load0 or a > t_load1), reverse=True)
print("largest gaps during the load: " + ", ".join(f"{g:.1f}" for g in sorted(inside, reverse=True)[:5]) +
      " ms; outside it: " + ", ".join(f"{g:.1f}" for g in outside[:5]) + " ms")
if load_ms < 2 * MIN_MS:
    print(f"note: the load took only {load_ms:.0f} ms; the test is weak on this host")
if worst > limit:
    fail(f"the stream stalled {worst:.1f} ms while another model loaded (limit {limit:.1f} ms)")
print("ok   - the stream kept flowing while another model loaded")
PY

# One attempt: a fresh server, the stream's model loaded, streams while the
# big model is first requested; the verdict of the ratio. A busy host can
# stall any stream for a scheduling slice or a few (tens of ms; at a load
# average of ~20 on 2 cores, single gaps of 100-180 ms during a load in
# about a third of the attempts): the check passes when one of ATTEMPTS is
# within the limit. Before the fix, every attempt stalled for the whole
# load (320-2270 ms here).
ATTEMPTS=5
attempt() {
    start_server "gaps$1" --model "$STREAM" --model-name stream --model "$BIG" --model-name big \
        --parallel 2 --ctx 2048 --threads 1
    python3 "$WORK/gaps.py" "$URL" "$K" "$MIN_MS"
    local rc=$?
    req GET /health
    check "server still answers" [ "$CODE" = 200 ]
    stop_server
    return $rc
}
PASSED=0
for i in $(seq 1 $ATTEMPTS); do
    echo "# attempt $i"
    if attempt "$i"; then PASSED=1; break; fi
done
check "the stream kept flowing while another model loaded (one of $ATTEMPTS attempts)" [ "$PASSED" = 1 ]
finish
