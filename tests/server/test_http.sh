#!/usr/bin/env bash
# test_http.sh - the real server on loopback, driven by curl and raw
# sockets: endpoints, response shapes, SSE/NDJSON framing, limits and bad
# input (each a clear 4xx, never a crash), metrics, prefix cache.
source "$(dirname "$0")/lib.sh"

start_server main --model "$STORIES" --model-name stories --chat-format chatml \
    --model "$QWEN" --model-name qwen --prefix-cache --parallel 2 --ctx 256 --batch 32 --threads 1 \
    --max-body 65536 --max-json-depth 16 --max-tokens 200

# ---- operations
req GET /health;  check "GET /health is 200" [ "$CODE" = 200 ]
req GET /ready;   check "GET /ready is 200" [ "$CODE" = 200 ]
req GET /v1/models
check "GET /v1/models lists both models" [ "$(jget "$BODY" '",".join(m["id"] for m in d["data"])')" = "stories,qwen" ]
req GET /v1/models/qwen; check "GET /v1/models/qwen" [ "$(jget "$BODY" 'd["id"], d["object"]')" = "qwen model" ]
req GET /v1/models/nope; check "unknown model id is 404" [ "$CODE" = 404 ]

# ---- completions (greedy; same prompt twice gives the same text)
P='{"model":"stories","prompt":"Once upon a time","max_tokens":24,"temperature":0}'
req POST /v1/completions "$P"
check "completions 200" [ "$CODE" = 200 ]
T1="$(jget "$BODY" 'd["choices"][0]["text"]')"
check "completions text non-empty" [ -n "$T1" ]
check "completions object/finish/usage" [ "$(jget "$BODY" 'd["object"], d["choices"][0]["finish_reason"], d["usage"]["completion_tokens"]')" = "text_completion length 24" ]
req POST /v1/completions "$P"
check "greedy completions are deterministic" [ "$(jget "$BODY" 'd["choices"][0]["text"]')" = "$T1" ]
check "second identical prompt reuses the prefix cache" [ "$(jget "$BODY" 'd["usage"]["prompt_tokens_details"]["cached_tokens"] > 0')" = True ]
echo "     stories: $T1"

# prompt list -> one choice per prompt
req POST /v1/completions '{"model":"stories","prompt":["Once upon a time","The cat"],"max_tokens":5,"temperature":0}'
check "prompt list gives 2 choices" [ "$(jget "$BODY" 'len(d["choices"])')" = 2 ]
check "first of the list equals the single prompt (prefix)" [ "$(jget "$BODY" 'd["choices"][0]["text"]')" = "$(python3 -c 'import sys; print(sys.argv[1][:len(sys.argv[2])])' "$T1" "$(jget "$BODY" 'd["choices"][0]["text"]')")" ]

# a prompt given as token ids; an id outside the vocabulary is refused
req POST /v1/completions '{"model":"stories","prompt":[1,100,200],"max_tokens":3,"temperature":0}'
check "prompt of token ids: 200, 3 prompt tokens" [ "$CODE $(jget "$BODY" 'd["usage"]["prompt_tokens"]')" = "200 3" ]
req POST /v1/completions '{"model":"stories","prompt":[1,99999],"max_tokens":3}'
check "prompt token id outside the vocabulary: 400" [ "$CODE" = 400 ]
# Ollama's way to load a model: /api/generate with an empty prompt
req POST /api/generate '{"model":"stories","prompt":""}'
check "ollama generate with an empty prompt loads the model" [ "$CODE $(jget "$BODY" 'd["done_reason"]')" = "200 load" ]

# stop string
STOPW="$(python3 -c 'import sys; w=sys.argv[1].split(); print(w[2] if len(w)>2 else w[-1])' "$T1")"
req POST /v1/completions "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stop\":[\"$STOPW\"]}"
check "stop string ends the text before it" [ "$(jget "$BODY" 'd["choices"][0]["finish_reason"]')" = stop ]
check "stop string is not in the text" python3 -c 'import sys; sys.exit(sys.argv[2] in sys.argv[1])' "$(jget "$BODY" 'd["choices"][0]["text"]')" "$STOPW"

# logprobs (chat format)
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,"logprobs":true,"top_logprobs":3}'
check "chat with logprobs 200" [ "$CODE" = 200 ]
check "logprobs: one entry per token, 3 alternatives, greedy is top-1" [ "$(jget "$BODY" 'len(d["choices"][0]["logprobs"]["content"]), len(d["choices"][0]["logprobs"]["content"][0]["top_logprobs"]), d["choices"][0]["logprobs"]["content"][0]["token"]==d["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["token"]')" = "4 3 True" ]

# chat on the model with its own template; content as a list of parts
req POST /v1/chat/completions '{"model":"qwen","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}]}],"max_tokens":8,"temperature":0}'
check "chat qwen 200" [ "$CODE" = 200 ]
check "chat shape" [ "$(jget "$BODY" 'd["object"], d["choices"][0]["message"]["role"], d["usage"]["completion_tokens"] > 0')" = "chat.completion assistant True" ]

# response_format json_object: output parses as JSON
req POST /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"json please"}],"max_tokens":60,"temperature":0.9,"seed":7,"response_format":{"type":"json_object"}}'
JT="$(jget "$BODY" 'd["choices"][0]["message"]["content"]')"
FR="$(jget "$BODY" 'd["choices"][0]["finish_reason"]')"
echo "     json_object ($FR): $JT"
if [ "$FR" = stop ]; then
    check "json_object output is valid JSON" python3 -c 'import json,sys; json.loads(sys.argv[1])' "$JT"
else
    check "json_object output (cut by max_tokens) is a JSON prefix starting with {" python3 -c 'import sys; sys.exit(not sys.argv[1].lstrip().startswith("{"))' "$JT"
fi

# ---- streaming: SSE chunks shaped like OpenAI's
curl -sN -H 'Content-Type: application/json' -d '{"model":"stories","messages":[{"role":"user","content":"Tell a story"}],"max_tokens":10,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' "$URL/v1/chat/completions" >"$WORK/sse.txt"
check "SSE: role delta first, content deltas, finish chunk, usage chunk, [DONE]" python3 - "$WORK/sse.txt" <<'PY'
import json, sys
raw = open(sys.argv[1]).read()
events = [e for e in raw.split("\n\n") if e.strip()]
assert all(e.startswith("data: ") for e in events), raw
assert events[-1] == "data: [DONE]", events[-1]
chunks = [json.loads(e[6:]) for e in events[:-1]]
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
assert len({c["id"] for c in chunks}) == 1
fin = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
assert len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == "length"
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 10
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
assert text, "no content"
PY

# Ollama NDJSON
curl -sN -d '{"model":"stories","prompt":"Once upon a time","raw":true,"options":{"temperature":0,"num_predict":24}}' "$URL/api/generate" >"$WORK/nd.txt"
check "ollama generate: NDJSON stream ends with done and counts; text equals the OpenAI one" python3 - "$WORK/nd.txt" "$T1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]).read().splitlines() if l.strip()]
assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 24, lines[-1]
assert all(not l["done"] for l in lines[:-1])
text = "".join(l["response"] for l in lines)
assert text == sys.argv[2], (text, sys.argv[2])
PY
req POST /api/chat '{"model":"qwen","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":5}}'
check "ollama chat non-stream" [ "$(jget "$BODY" 'd["done"], d["message"]["role"], d["eval_count"]')" = "True assistant 5" ]
req GET /api/tags;    check "ollama tags" [ "$(jget "$BODY" 'len(d["models"])')" = 2 ]
req POST /api/show '{"model":"qwen"}'; check "ollama show" [ "$(jget "$BODY" 'd["details"]["family"], "im_start" in d["template"]')" = "qwen2 True" ]
req GET /api/ps;      check "ollama ps lists loaded models" [ "$(jget "$BODY" 'len(d["models"]) >= 1')" = True ]
req GET /api/version; check "ollama version" [ "$CODE" = 200 ]
req POST /api/embed '{"model":"qwen","input":["a cat","a dog"]}'
check "ollama embed: 2 unit vectors of n_embd" [ "$(jget "$BODY" 'len(d["embeddings"]), len(d["embeddings"][0]), round(sum(x*x for x in d["embeddings"][1]),3)')" = "2 256 1.0" ]
req POST /v1/embeddings '{"model":"stories","input":"hello world"}'
check "openai embeddings float" [ "$(jget "$BODY" 'd["object"], len(d["data"][0]["embedding"]), d["usage"]["prompt_tokens"] > 0')" = "list 64 True" ]

# ---- bad input: clear 4xx in OpenAI's error shape
err_check() { # DESC EXPECTED_CODE PATH BODY
    req POST "$3" "$4"
    check "$1 -> $2" [ "$CODE" = "$2" ]
    check "$1: error object" python3 -c 'import json,sys; e=json.loads(sys.argv[1])["error"]; assert e["message"] and e["type"]' "$BODY"
}
err_check "malformed JSON" 400 /v1/chat/completions '{"model": "qwen", "messages": ['
err_check "body not an object" 400 /v1/chat/completions '[1,2]'
err_check "empty body" 400 /v1/chat/completions ''
err_check "unknown model" 404 /v1/chat/completions '{"model":"gpt-17","messages":[{"role":"user","content":"x"}]}'
err_check "missing model" 400 /v1/chat/completions '{"messages":[{"role":"user","content":"x"}]}'
err_check "empty message list" 400 /v1/chat/completions '{"model":"qwen","messages":[]}'
err_check "bad role" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"wizard","content":"x"}]}'
err_check "content wrong type" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":5}]}'
err_check "temperature wrong type" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"temperature":"hot"}'
err_check "temperature out of range" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"temperature":7}'
err_check "n=9" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"n":9}'
err_check "logit_bias key not a token id" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"logit_bias":{"abc":1}}'
err_check "logit_bias id beyond the vocab" 400 /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"x"}],"logit_bias":{"512":1}}'
err_check "logit_bias out of range" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"logit_bias":{"5":101}}'
err_check "max_tokens zero" 400 /v1/completions '{"model":"stories","prompt":"x","max_tokens":0}'
err_check "response_format json_schema" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}'
err_check "stop of the wrong type" 400 /v1/chat/completions '{"model":"qwen","messages":[{"role":"user","content":"x"}],"stop":7}'
LONG="$(python3 -c 'print("once upon a time " * 300)')"
err_check "prompt longer than the context" 400 /v1/completions "{\"model\":\"stories\",\"prompt\":\"$LONG\"}"
DEEP="$(python3 -c 'print("{\"model\":\"qwen\",\"x\":" + "["*40 + "]"*40 + "}")')"
err_check "JSON nested too deep" 400 /v1/chat/completions "$DEEP"
BIG="$(python3 -c 'print("{\"model\":\"stories\",\"prompt\":\"" + "a"*70000 + "\"}")')"
printf '%s' "$BIG" >"$WORK/big.json"
CODE=$(curl -s -o "$WORK/big.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/big.json" "$URL/v1/completions")
check "body over --max-body -> 413" [ "$CODE" = 413 ]
printf '{"model":"stories","prompt":"\xff\xfe bad"}' >"$WORK/bad.json"
CODE=$(curl -s -o "$WORK/bad.out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/bad.json" "$URL/v1/completions")
check "invalid UTF-8 -> 400" [ "$CODE" = 400 ]
req GET /v1/chat/completions; check "wrong method -> 405" [ "$CODE" = 405 ]
req GET /nowhere;             check "unknown path -> 404" [ "$CODE" = 404 ]
req POST /api/chat '{"model":"nope","messages":[]}'
check "ollama error shape" [ "$(jget "$BODY" 'type(d["error"]).__name__')" = str ]
HDR="$(python3 -c 'print("a"*20000)')"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $HDR" "$URL/health" || true)
check "headers over the limit -> 431 (or refused)" [ "$CODE" = 431 -o "$CODE" = 413 -o "$CODE" = 000 ]

# ---- raw sockets: malformed HTTP never crashes the server
python3 - "$URL" <<'PY' && ok "raw malformed requests answered or closed" || bad "raw malformed requests"
import socket, sys
host, port = sys.argv[1][7:].split(":")
cases = [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
         b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
         b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
         b"\x00\x01\x02\x03" * 100, b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n",
         b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\":"]
for c in cases:
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(c)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server already answered and closed (ENOTCONN): still read what it sent
            pass
        data = s.recv(4096)
        assert data == b"" or data.startswith(b"HTTP/1."), data[:50]
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
PY
req GET /health; check "server alive after malformed input" [ "$CODE" = 200 ]

# ---- framing two parsers could read differently (request smuggling) -> 400
python3 - "$URL" <<'PY' && ok "two Content-Lengths, or Content-Length with Transfer-Encoding -> 400" || bad "ambiguous framing accepted"
import socket, sys
host, port = sys.argv[1][7:].split(":")
body = b'{"model":"qwen","prompt":"hi","max_tokens":1}'
cases = [b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(body) + body,
         b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
         % len(body) + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"]
for c in cases:
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(c)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
PY

# ---- cancellation: a client that goes away stops its generation
curl -sN -m 1 -H 'Content-Type: application/json' -d '{"model":"qwen","prompt":"go","max_tokens":200,"stream":true}' "$URL/v1/completions" >/dev/null 2>&1 || true
# metric NAME: its value in the /metrics text in $BODY
metric() { awk -v n="$1" '$1 == n {print $2}' <<<"$BODY"; }
# the scheduler drops the sequence at its next pass: polled for up to 3 s
# (a loaded host under ASan can take longer than one fixed pause)
for _ in $(seq 1 15); do
    sleep 0.2
    req GET /metrics
    [ "$(metric airlock_active_sequences)" = 0 ] && break
done
check "no active sequence after the client disconnected" [ "$(metric airlock_active_sequences)" = 0 ]
check "metrics: requests by endpoint and status" grep -q 'airlock_requests_total{endpoint="/v1/completions",status="200"}' <<<"$BODY"
check "metrics: TTFT histogram" grep -q 'airlock_time_to_first_token_seconds_count' <<<"$BODY"
check "metrics: queue depth" grep -q '^airlock_queue_depth 0' <<<"$BODY"
passes() { metric "airlock_forward_passes_total{kind=\"$1\"}"; }
check "metrics: prompt-only and decode-only passes counted" [ "$(passes prefill)" -gt 0 -a "$(passes decode)" -gt 0 ]
check "metrics: mixed and catch-up passes are listed" [ -n "$(passes mixed)" -a -n "$(passes catch_up)" ]
RC=0; OUT="$(timeout 10 "$BIN" serve --model "$QWEN" --waiting-ratio many 2>&1)" || RC=$?
check "--waiting-ratio takes a number (usage error, exit 2)" [ "$RC" = 2 -a -n "$(grep -F "bad value 'many' for --waiting-ratio" <<<"$OUT")" ]
check "metrics: pass tokens cover the generated tokens" python3 - "$BODY" <<'PY'
import sys
v = {l.split()[0]: float(l.split()[1]) for l in sys.argv[1].splitlines() if l and not l.startswith("#")}
sys.exit(not v["airlock_forward_pass_tokens_total"] >= v["airlock_generated_tokens_total"] > 0)
PY
check "metrics: the passes' and the sampling's wall time, by kind of pass" python3 - "$BODY" <<'PY'
import sys
v = {l.split()[0]: float(l.split()[1]) for l in sys.argv[1].splitlines() if l and not l.startswith("#")}
t = lambda k: v['airlock_forward_pass_seconds_total{kind="%s"}' % k]
# passes happened, so they took time; a kind with no pass took none
sys.exit(not (t("prefill") > 0 and t("decode") > 0 and v["airlock_sampling_seconds_total"] > 0
              and all(t(k) == 0 for k in ("mixed", "catch_up")
                      if v['airlock_forward_passes_total{kind="%s"}' % k] == 0)))
PY

# ---- full queue -> 429 with Retry-After. --batch-wait 3000 holds the first
# request's generation back for 3 s, so that one sequence is busy and one
# request waits, for certain, when the third is sent.
start_server busy --model "$QWEN" --model-name qwen --parallel 1 --queue 1 --ctx 256 --threads 1 --batch-wait 3000
req POST /v1/completions '{"model":"qwen","prompt":"warm","max_tokens":1}'
gauge() { BODY="$(curl -s "$URL/metrics")"; metric "$1"; }
await_gauge() { for _ in $(seq 1 100); do [ "$(gauge "$1")" = "$2" ] && return 0; sleep 0.02; done; return 1; }
LONG='{"model":"qwen","prompt":"go","max_tokens":200,"temperature":0}'
curl -s -o /dev/null -H 'Content-Type: application/json' -d "$LONG" "$URL/v1/completions" &
await_gauge airlock_active_sequences 1 || true
curl -s -o /dev/null -H 'Content-Type: application/json' -d "$LONG" "$URL/v1/completions" &
await_gauge airlock_queue_depth 1 || true
curl -s -D "$WORK/h429" -o "$WORK/b429" -H 'Content-Type: application/json' \
    -d '{"model":"qwen","prompt":"go","max_tokens":5}' "$URL/v1/completions" || true
curl -s "$URL/metrics" | grep -E "^airlock_(queue_depth|active_seq|requests_total)"; check "full queue -> 429" grep -q "^HTTP/1.1 429" "$WORK/h429"
check "429 has Retry-After" grep -qi "^Retry-After:" "$WORK/h429"
wait_jobs() { for j in $(jobs -p); do case " ${SERVER_PIDS[*]} " in *" $j "*) ;; *) wait "$j" || true;; esac; done; }
wait_jobs

# ---- a burst on an idle server: --batch-wait gathers its prompts into one pass
start_server burst --model "$QWEN" --model-name qwen --parallel 3 --ctx 256 --batch 128 --threads 1 --batch-wait 1500
req POST /v1/completions '{"model":"qwen","prompt":"warm","max_tokens":1}'
for i in 1 2 3; do
    curl -s -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"model\":\"qwen\",\"prompt\":\"a burst, request $i\",\"max_tokens\":3,\"temperature\":0}" \
        "$URL/v1/completions" &
done
wait_jobs
req GET /metrics
check "a burst of 3 on an idle server shares one prompt pass (2 in all with the warm-up)" \
    [ "$(passes prefill)" = 2 -a "$(passes mixed)" = 0 -a "$(passes catch_up)" = 0 ]
RC=0; OUT="$(timeout 10 "$BIN" serve --model "$QWEN" --batch-wait 20000 2>&1)" || RC=$?
check "--batch-wait is bounded (usage error, exit 2)" [ "$RC" = 2 -a -n "$(grep -F "bad value '20000' for --batch-wait" <<<"$OUT")" ]

# ---- a stalled client times out and does not hold anything
start_server slow --model "$STORIES" --model-name stories --conn-timeout 1 --threads 1
python3 - "$URL" <<'PY' && ok "stalled client is disconnected by the server" || bad "stalled client"
import socket, sys, time
host, port = sys.argv[1][7:].split(":")
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mod")
t = time.time()
data = s.recv(100)
assert time.time() - t < 8 and (data == b"" or data.startswith(b"HTTP/1.1 4")), data
PY
req GET /health; check "server serves after a stalled client" [ "$CODE" = 200 ]
req POST /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"x"}]}'
check "chat on a model without template or --chat-format -> 400" [ "$CODE" = 400 ]
check "  ... and the message says what to do" grep -q -- "--chat-format" <<<"$BODY"

finish
