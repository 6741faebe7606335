#!/usr/bin/env bash
# test_reload.sh - hot reload of `airlock serve --store`: a model published
# while the server runs is listed and answers; rejected or removed, it is
# 404 (naming it) and gone from /v1/models and /api/tags; approved again
# (reopen, import, approve), it is served again; a stream that started
# before its model was removed ends normally (that the weights stay while a
# request holds them is checked in test_sched_reload.c, without timing). Each change is printed on stdout and
# recorded in the audit log (serve.model_added / serve.model_removed), whose
# chain verifies. A replica (--sync) may start on an empty store and serve
# the first model published. No timing: every wait is a bounded poll.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/store_lib.sh"

publish demo s1 "$STORIES"
start_server rl --store "$ST" --default-chat-format chatml --threads 1 --ctx 256 --parallel 2

# listed NAME: True/False, NAME in /v1/models; tagged NAME: the same for /api/tags
listed() { req GET /v1/models; jget "$BODY" "'$1' in [m['id'] for m in d['data']]"; }
tagged() { req GET /api/tags; jget "$BODY" "'$1' in [m['name'] for m in d['models']]"; }
# wait_for CMD... : runs CMD until it succeeds, at most 300 times 0.1 s apart
wait_for() {
    for _ in $(seq 1 300); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}
is() { [ "$("${@:2}")" = "$1" ]; }
LOG="$ST/audit/audit.log"
rec() { python3 - "$LOG" "$@" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
want = dict(a.split("=", 1) for a in sys.argv[2:])
print(sum(all(str(r.get(k)) == v for k, v in want.items()) for r in recs))
PY
}
COMPL='"prompt":"Once upon a time","max_tokens":6,"temperature":0'

check "before: extra:v1 is not served" [ "$(listed extra:v1)" = False ]
req POST /v1/completions "{\"model\":\"extra:v1\",$COMPL}"
check "  and a request for it is 404" [ "$CODE" = 404 ]

# ---- published while serving
publish extra v1 "$SHARED/models/stories260K-q8_0.gguf"
XB=$(basename "$(blob_of extra:v1)")
XD=$(digest_of extra:v1)
check "a model published while serving appears in /v1/models (no restart)" wait_for is True listed extra:v1
check "  and in /api/tags" [ "$(tagged extra:v1)" = True ]
req GET /v1/models
check "  with its manifest digest" \
    [ "$(jget "$BODY" '[m["digest"] for m in d["data"] if m["id"]=="extra:v1"][0]')" = "sha256:$XD" ]
req POST /v1/completions "{\"model\":\"extra:v1\",$COMPL}"
check "  and answers a completion" [ "$CODE:$(jget "$BODY" 'd["model"], d["usage"]["completion_tokens"]')" = "200:extra:v1 6" ]
req POST /api/generate '{"model":"extra:v1","prompt":"Once","stream":false,"options":{"num_predict":3}}'
check "  and an Ollama generate" [ "$CODE:$(jget "$BODY" 'd["done"]')" = "200:True" ]
req POST /v1/completions "{\"model\":\"demo:s1\",$COMPL}"
check "the model served from the start still answers" [ "$CODE" = 200 ]
check "the log says it is served now" grep -q "model 'extra:v1' (published, sha256:$XD) from the store .*: now served" "$WORK/rl.out"
check "an audit record serve.model_added names it with its blob digest" \
    [ "$(rec action=serve.model_added model=extra:v1 digest="$XB" status=0)" = 1 ]

# ---- rejected while serving (and loaded)
A reject extra:v1 --by bob --reason "recalled by the vendor" --store "$ST" >/dev/null
check "a model rejected while serving leaves /v1/models" wait_for is False listed extra:v1
check "  and /api/tags" [ "$(tagged extra:v1)" = False ]
req POST /v1/completions "{\"model\":\"extra:v1\",$COMPL}"
check "  a new request for it is 404 model_not_found" [ "$CODE:$(jget "$BODY" 'd["error"]["code"]')" = "404:model_not_found" ]
check "  naming the model" grep -q "extra:v1" <<<"$BODY"
req POST /api/chat '{"model":"extra:v1","messages":[{"role":"user","content":"hi"}],"stream":false}'
check "  Ollama: 404 too" [ "$CODE" = 404 ]
check "  naming it" grep -q "extra:v1" <<<"$BODY"
req GET /v1/models/extra:v1
check "  GET /v1/models/extra:v1 is 404" [ "$CODE" = 404 ]
check "the log says why it is no longer served" \
    grep -q "model 'extra:v1' (sha256:$XD) is no longer served: rejected by bob: recalled by the vendor" "$WORK/rl.out"
check "an audit record serve.model_removed says it was rejected" \
    [ "$(rec action=serve.model_removed model=extra:v1 digest="$XB" status=0 "detail=rejected by bob: recalled by the vendor")" = 1 ]
req POST /v1/completions "{\"model\":\"demo:s1\",$COMPL}"
check "the other model keeps answering" [ "$CODE" = 200 ]

# ---- approved again: reopen, import the same bundle, approve
A reopen extra:v1 --by bob --reason "vendor fixed it" --store "$ST" >/dev/null
A import "$WORK/extra-v1.airlock" --store "$ST" >/dev/null
A approve extra:v1 --by alice --store "$ST" >/dev/null
check "approved again, it is listed again" wait_for is True listed extra:v1
req POST /v1/completions "{\"model\":\"extra:v1\",$COMPL}"
check "  and answers again" [ "$CODE" = 200 ]
check "  a second serve.model_added record" [ "$(rec action=serve.model_added model=extra:v1 status=0)" = 2 ]

# ---- removed (rm) while a stream on it is open: that stream ends normally
publish big v1 "$SHARED/models/stories260K-f16.gguf"
check "a third model is published while serving" wait_for is True listed big:v1
# A slow reader has read one event of its stream when it says READY, then
# waits for the file GO (at most 120 s) before it reads the rest. HTTP/1.0:
# no chunked framing between the events.
python3 - "$URL" "$WORK/go" >"$WORK/slow.out" 2>&1 <<'PY' &
import json, os, socket, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
body = json.dumps({"model": "big:v1", "prompt": "Once upon a time", "max_tokens": 200, "temperature": 0,
                   "stream": True, "logprobs": 5}).encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((u.hostname, u.port))
s.sendall(b"POST /v1/completions HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body)
f = s.makefile("rb")
while True:
    line = f.readline()
    if not line:
        sys.exit("no event before the end of the response")
    if line.startswith(b"data: "):
        break
print("READY", flush=True)
for _ in range(1200):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
rest = f.read().decode()
events = [l[6:] for l in rest.splitlines() if l.startswith("data: ")]
last = [json.loads(e) for e in events if e != "[DONE]"][-1]
print("END", events[-1], last["choices"][0]["finish_reason"])
PY
SLOW=$!
check "  a streaming request on it has started" wait_for grep -q READY "$WORK/slow.out"
A rm big:v1 --store "$ST" >/dev/null
check "removed with rm, it leaves /v1/models" wait_for is False listed big:v1
req POST /v1/completions "{\"model\":\"big:v1\",$COMPL}"
check "  a new request for it is 404" [ "$CODE" = 404 ]
check "  naming it" grep -q "big:v1" <<<"$BODY"
touch "$WORK/go"
wait "$SLOW" || true
check "  the stream that was open ended normally (its last event, then [DONE])" \
    grep -Eq "^END \[DONE\] (length|stop)$" "$WORK/slow.out"
check "the log says it was removed" grep -q "model 'big:v1' (sha256:.*) is no longer served: removed from the store" "$WORK/rl.out"
check "an audit record serve.model_removed says so" \
    [ "$(rec action=serve.model_removed model=big:v1 "detail=removed from the store")" = 1 ]
req POST /v1/completions "{\"model\":\"extra:v1\",$COMPL}"
check "the other models keep answering" [ "$CODE" = 200 ]

stop_server
check "airlock audit verify is clean" "$BIN" audit verify --store "$ST"

# ---- a replica (--sync) on an empty store whose registry is not reachable:
# it starts with no model (/ready 503) and serves the first one published
EMPTY="$WORK/empty"
A trust add "$WORK/keys/pub.pub.pem" --name pub --store "$EMPTY" >/dev/null
start_server em --store "$EMPTY" --sync http://127.0.0.1:1/models/none:v1 --sync-interval 3600 --threads 1 --ctx 256
check "serve --sync on an empty store starts, saying it serves none yet" grep -q "no published model yet" "$WORK/em.err"
req GET /ready
check "  /ready is 503" [ "$CODE" = 503 ]
req GET /v1/models
check "  /v1/models is empty" [ "$CODE:$(jget "$BODY" 'len(d["data"])')" = "200:0" ]
A import "$WORK/extra-v1.airlock" --store "$EMPTY" >/dev/null
A approve extra:v1 --by alice --store "$EMPTY" >/dev/null
ready() { req GET /ready; [ "$CODE" = 200 ]; }
check "the first model published is served: /ready 200" wait_for ready
req POST /v1/completions "{\"model\":\"extra:v1\",$COMPL}"
check "  and it answers" [ "$CODE" = 200 ]
stop_server
finish
