#!/usr/bin/env bash
# test_store.sh - `airlock serve --store`: bundle -> import -> approve ->
# serve. Only published models are served (by name:tag, a bare name for
# :latest, or pinned name@sha256:DIGEST); a quarantined one is 404; a blob
# tampered at rest is refused when it is loaded (503, never mapped) while
# the other models keep working; --model files keep working beside it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/store_lib.sh"

publish demo s1 "$STORIES"
publish demo latest "$SHARED/models/stories260K-q8_0.gguf"
publish victim v1 "$SHARED/models/stories260K-f16.gguf"
publish waiting w1 "$SHARED/models/stories260K-q4_0.gguf" no
D1=$(digest_of demo:s1)
B1=$(basename "$(blob_of demo:s1)")
check "the store has 3 published models and 1 quarantined" \
    [ "$("$BIN" list --store "$ST" | grep -c published) $("$BIN" list --store "$ST" | grep -c quarantined)" = "3 1" ]

start_server st --store "$ST" --default-chat-format chatml --threads 1 --ctx 256 --parallel 2 \
    --model "$QWEN" --model-name qwen-file
grep -q "model 'demo:s1' (published, sha256:$D1)" "$WORK/st.out"; check "start-up names the published models with digests" [ $? = 0 ]

req GET /v1/models
check "/v1/models lists the published models and the file model only" \
    [ "$(jget "$BODY" '",".join(sorted(m["id"] for m in d["data"]))')" = "demo:latest,demo:s1,qwen-file,victim:v1" ]
check "/v1/models carries the digests" \
    [ "$(jget "$BODY" '[m for m in d["data"] if m["id"]=="demo:s1"][0]["digest"]')" = "sha256:$D1" ]
req GET /api/tags
check "/api/tags carries the digest" [ "$(jget "$BODY" '[m["digest"] for m in d["models"] if m["name"]=="demo:s1"][0]')" = "$D1" ]

CHAT='"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":8,"temperature":0'
req POST /v1/chat/completions "{\"model\":\"demo:s1\",$CHAT}"
check "chat on a published model (name:tag) is answered" [ "$CODE:$(jget "$BODY" 'd["model"], d["usage"]["completion_tokens"]')" = "200:demo:s1 8" ]
T1="$(jget "$BODY" 'd["choices"][0]["message"]["content"]')"
req POST /v1/chat/completions "{\"model\":\"demo@sha256:$D1\",$CHAT}"
check "pinned name@sha256:<manifest digest> gives the same model" [ "$CODE:$(jget "$BODY" 'd["choices"][0]["message"]["content"]')" = "200:$T1" ]
req POST /v1/chat/completions "{\"model\":\"demo@sha256:$B1\",$CHAT}"
check "pinned name@sha256:<blob digest> works too" [ "$CODE" = 200 ]
req POST /v1/chat/completions "{\"model\":\"victim@sha256:$D1\",$CHAT}"
check "a digest pinned under another name is 404" [ "$CODE" = 404 ]
req POST /api/generate '{"model":"demo","prompt":"Once upon a time","stream":false,"options":{"num_predict":4}}'
check "a bare name serves its :latest tag (Ollama)" [ "$CODE:$(jget "$BODY" 'd["done"]')" = "200:True" ]
req POST /v1/completions '{"model":"waiting:w1","prompt":"Once","max_tokens":4}'
check "a quarantined (not approved) model is 404" [ "$CODE:$(jget "$BODY" 'd["error"]["code"]')" = "404:model_not_found" ]
req POST /v1/completions '{"model":"qwen-file","prompt":"Hello","max_tokens":4}'
check "--model files keep working beside the store" [ "$CODE" = 200 ]

# Tamper with a published blob at rest, before the server first loads it.
VB=$(blob_of victim:v1)
chmod u+w "$VB" 2>/dev/null || true
python3 - "$VB" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(4096); b = f.read(1); f.seek(4096); f.write(bytes([b[0] ^ 1]))
PY
req POST /v1/completions '{"model":"victim:v1","prompt":"Once","max_tokens":4}'
check "a tampered blob is refused at load (503, OpenAI error shape)" \
    [ "$CODE:$(jget "$BODY" 'd["error"]["code"], d["error"]["type"]')" = "503:model_integrity_failed server_error" ]
check "the refusal says why" grep -q "integrity check" <<<"$BODY"
req POST /v1/completions '{"model":"victim:v1","prompt":"Once","max_tokens":4}'
check "the tampered model stays refused" [ "$CODE" = 503 ]
req GET /v1/models
check "the refused model is no longer listed" [ "$(jget "$BODY" '"victim:v1" in [m["id"] for m in d["data"]]')" = False ]
req POST /v1/chat/completions "{\"model\":\"demo:s1\",$CHAT}"
check "the other models are still served" [ "$CODE" = 200 ]
check "stderr names the refused model" grep -q "victim:v1.*refused" "$WORK/st.err"

# The store gate (is the model still published, with this blob?) is cached
# until the catalogue changes: repeated requests do not query it again.
gate_queries() { curl -s "$URL/metrics" | awk '/^airlock_store_gate_queries_total/ {print $2}'; }
req POST /v1/completions '{"model":"demo:latest","prompt":"Once","max_tokens":2}'
G0=$(gate_queries)
for _ in 1 2 3 4 5; do req POST /v1/completions '{"model":"demo:latest","prompt":"Once","max_tokens":2}'; done
G1=$(gate_queries)
check "5 requests of a loaded store model are answered by the gate's cache ($G0 -> $G1 queries)" [ "${G1:-none}" = "$G0" ]

# Any catalogue change clears the cache (one that leaves demo published, so
# the hot-reload watcher does not race the request).
"$BIN" policy set approvals=1 --store "$ST" >/dev/null
req POST /v1/completions '{"model":"demo:latest","prompt":"Once","max_tokens":2}'
[ "$CODE" = 200 ] || bad "demo:latest still served after a policy change ($CODE)"
check "the catalogue change cleared the gate's cache ($G1 -> $(gate_queries) queries)" [ "$(gate_queries)" -gt "$G1" ]

# A model rejected after the server started (and already loaded) is not served any more.
"$BIN" reject demo:latest --by bob --reason "recalled" --store "$ST" >/dev/null
req POST /v1/completions '{"model":"demo:latest","prompt":"Once","max_tokens":4}'
check "a loaded model rejected after start-up is no longer served (404, at once: the gate)" \
    [ "$CODE:$(jget "$BODY" 'd["error"]["code"]')" = "404:model_not_found" ]
check "  the 404 names the model" grep -q "demo:latest" <<<"$BODY"

# An empty store: a clear error, exit 1.
set +e
OUT=$("$BIN" serve --store "$WORK/empty" --listen 127.0.0.1:0 2>&1); RC=$?
set -e
check "an empty store is a clear error" [ "$RC" = 1 ]
check "  naming what to do" grep -q "no published model" <<<"$OUT"
finish
