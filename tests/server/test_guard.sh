#!/usr/bin/env bash
# test_guard.sh - the guarantees in the real `airlock serve --store`:
# API keys (401/403/429 with Retry-After, 200 with a good key, token quota
# charged), the audit log (one record per request, chain verifies, no
# prompt on disk by default, its sha256 with --audit-content=digest),
# /health's egress flag, and KV hygiene (no prefix reuse by default).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/store_lib.sh"

publish demo s1 "$STORIES"
publish other o1 "$SHARED/models/stories260K-q8_0.gguf"
BLOB=$(basename "$(blob_of demo:s1)")
SECRET_WORD="zebra-quartz-4711-periwinkle"
ARGS=(--store "$ST" --default-chat-format chatml --threads 1 --ctx 256 --parallel 2)

# reqk KEY METHOD PATH [BODY]: like req, with "Authorization: Bearer KEY" (KEY "-": none); HDRS gets the headers
reqk() {
    local key="$1" method="$2" path="$3" data="${4-}" out="$WORK/resp.$$" auth=()
    [ "$key" != - ] && auth=(-H "Authorization: Bearer $key")
    if [ -n "$data" ]; then
        CODE=$(curl -s -D "$WORK/hdr.$$" -o "$out" -w '%{http_code}' -X "$method" "${auth[@]}" \
            -H 'Content-Type: application/json' --data-binary "$data" "$URL$path" || true)
    else
        CODE=$(curl -s -D "$WORK/hdr.$$" -o "$out" -w '%{http_code}' -X "$method" "${auth[@]}" "$URL$path" || true)
    fi
    BODY="$(cat "$out" 2>/dev/null || true)"
    HDRS="$(cat "$WORK/hdr.$$" 2>/dev/null || true)"
}
absent() { ! grep -rqa -- "$1" "$2"; }

# ---- no key defined: access is open, the actor is "anonymous"
start_server open "${ARGS[@]}"
reqk - GET /health
check "/health is 200 and says egress is blocked (sandbox on by default)" \
    [ "$CODE:$(jget "$BODY" 'd["egress"], d["sandbox"]["seccomp"]')" = "200:blocked True" ]
reqk - POST /v1/completions '{"model":"demo:s1","prompt":"Once upon a time","max_tokens":6,"temperature":0}'
check "no key defined: a request without a key is answered" [ "$CODE" = 200 ]
check "start-up says access is open when no key is defined" grep -q 'none defined: access is open' "$WORK/open.out"
reqk - POST /v1/completions '{"model":"demo:s1","prompt":"Once upon a time","max_tokens":6,"temperature":0}'
check "hygiene: nothing of a finished request is reused by the next one (its KV bytes: server_kv_zero)" \
    [ "$(jget "$BODY" 'd["usage"]["prompt_tokens_details"]["cached_tokens"]')" = 0 ]
stop_server

# ---- keys
key() { "$BIN" apikey create --store "$ST" "$@" | head -1; }
K_CHAT=$(key --name chat1 --scope chat --models 'demo*')
K_COMPL=$(key --name compl1 --scope completions)
K_ADMIN=$(key --name admin1 --scope admin)
K_RPM=$(key --name rpm1 --scope completions --rpm 2)
K_TPM=$(key --name tpm1 --scope completions --tpm 30)
K_GONE=$(key --name gone1 --scope chat)
"$BIN" apikey revoke gone1 --store "$ST" >/dev/null
ID_CHAT=$(cut -d_ -f2 <<<"$K_CHAT")

start_server keys "${ARGS[@]}"
CHAT="{\"model\":\"demo:s1\",\"messages\":[{\"role\":\"user\",\"content\":\"$SECRET_WORD\"}],\"max_tokens\":6,\"temperature\":0}"
reqk - GET /health
check "/health needs no key" [ "$CODE" = 200 ]
check "start-up says keys are required (6 defined, 5 usable), not that access is open" \
    grep -q 'keys.db (6 defined, 5 usable: every request needs one)' "$WORK/keys.out"
reqk - POST /v1/chat/completions "$CHAT"
check "no key -> 401 (OpenAI shape, invalid_api_key)" [ "$CODE:$(jget "$BODY" 'd["error"]["type"], d["error"]["code"]')" = "401:authentication_error invalid_api_key" ]
check "401 carries WWW-Authenticate: Bearer" grep -qi '^www-authenticate: bearer' <<<"$HDRS"
reqk "alk_0123456789abcdef_$(printf '0%.0s' $(seq 64))" POST /v1/chat/completions "$CHAT"
check "a bad key -> 401" [ "$CODE" = 401 ]
reqk "${K_CHAT%?}x" POST /v1/chat/completions "$CHAT"
check "a key with a wrong secret -> 401" [ "$CODE" = 401 ]
reqk "$K_GONE" POST /v1/chat/completions "$CHAT"
check "a revoked key -> 401" [ "$CODE" = 401 ]
reqk - GET /v1/models
check "model list without a key -> 401" [ "$CODE" = 401 ]
reqk - POST /v1/chat/completions '{not json'
check "bad JSON without a key is still 401 (nothing is said to strangers)" [ "$CODE" = 401 ]
reqk "$K_COMPL" POST /v1/chat/completions "$CHAT"
check "a key without the chat scope -> 403" [ "$CODE:$(jget "$BODY" 'd["error"]["type"]')" = "403:permission_error" ]
reqk "$K_CHAT" POST /v1/chat/completions "${CHAT/demo:s1/other:o1}"
check "a key not allowed that model -> 403" [ "$CODE" = 403 ]
reqk "$K_CHAT" POST /v1/chat/completions "$CHAT"
check "a good key -> 200" [ "$CODE" = 200 ]
reqk "$K_CHAT" POST /api/chat "{\"model\":\"demo:s1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":false,\"options\":{\"num_predict\":3}}"
check "a good key on the Ollama API -> 200" [ "$CODE" = 200 ]
reqk "$K_CHAT" GET /v1/models
check "a chat-only key cannot list models -> 403" [ "$CODE" = 403 ]
reqk "$K_ADMIN" GET /v1/models
check "an admin key lists every model" [ "$CODE:$(jget "$BODY" '",".join(sorted(m["id"] for m in d["data"]))')" = "200:demo:s1,other:o1" ]
reqk - GET /metrics
check "/metrics needs a key" [ "$CODE" = 401 ]
reqk "$K_ADMIN" GET /metrics
check "/metrics with an admin key -> 200" [ "$CODE" = 200 ]
C='{"model":"demo:s1","prompt":"Once","max_tokens":2}'
reqk "$K_RPM" POST /v1/completions "$C"; R1=$CODE
reqk "$K_RPM" POST /v1/completions "$C"; R2=$CODE
reqk "$K_RPM" POST /v1/completions "$C"
check "rpm 2: 200, 200, then 429" [ "$R1 $R2 $CODE" = "200 200 429" ]
check "429 has the rate-limit error shape" [ "$(jget "$BODY" 'd["error"]["type"]')" = rate_limit_error ]
RA=$(grep -i '^retry-after:' <<<"$HDRS" | tr -dc 0-9)
check "429 carries Retry-After (1..60 s): '$RA'" [ -n "$RA" ] && [ "$RA" -ge 1 ] && [ "$RA" -le 60 ]
CODES=""
for _ in 1 2 3 4; do
    reqk "$K_TPM" POST /v1/completions '{"model":"demo:s1","prompt":"Once upon a time","max_tokens":12,"temperature":0}'
    CODES="$CODES $CODE"
done
check "tpm 30: tokens are charged, the quota answers 429 ($CODES)" grep -q '^ 200 200\( 200\)* 429' <<<"$CODES"
stop_server

# ---- the audit log
LOG="$ST/audit/audit.log"
check "airlock audit verify is clean" "$BIN" audit verify --store "$ST"
rec() { python3 - "$LOG" "$@" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
want = dict(a.split("=", 1) for a in sys.argv[2:])
n = sum(all(str(r.get(k)) == v for k, v in want.items()) for r in recs)
print(n)
PY
}
check "a 200 chat record: key id as actor, client, model, blob digest, token counts" \
    [ "$(rec actor="$ID_CHAT" action="POST /v1/chat/completions" status=200 client=127.0.0.1 model=demo:s1 digest="$BLOB" completion_tokens=6)" = 1 ]
check "401s are recorded, actor anonymous" [ "$(rec actor=anonymous action="POST /v1/chat/completions" status=401)" -ge 2 ]
check "the 403 is recorded with the key id" [ "$(rec actor="$ID_CHAT" status=403 action="POST /v1/chat/completions")" = 1 ]
check "the 429 is recorded" [ "$(rec status=429)" -ge 2 ]
check "serve start and stop are recorded" [ "$(rec action=serve.start) $(rec action=serve.stop)" = "2 2" ]
check "default --audit-content=none: the prompt is nowhere under the store" absent "$SECRET_WORD" "$ST"
check "  and no secret either" absent "${K_CHAT#alk_*_}" "$ST"

# ---- --audit-content=digest and full
start_server dig "${ARGS[@]}" --audit-content digest
reqk "$K_COMPL" POST /v1/completions "{\"model\":\"demo:s1\",\"prompt\":\"$SECRET_WORD\",\"max_tokens\":4}"
check "digest mode: request answered" [ "$CODE" = 200 ]
stop_server
H=$(printf '%s' "$SECRET_WORD" | sha256sum | cut -d' ' -f1)
check "digest mode: the prompt's sha256 is recorded" grep -q "\"prompt_sha256\":\"$H\"" "$LOG"
check "digest mode: the completion's sha256 too" grep -q '"completion_sha256":"' "$LOG"
check "digest mode: the prompt text is still nowhere under the store" absent "$SECRET_WORD" "$ST"
start_server full "${ARGS[@]}" --audit-content full
reqk "$K_COMPL" POST /v1/completions "{\"model\":\"demo:s1\",\"prompt\":\"$SECRET_WORD\",\"max_tokens\":4,\"stream\":true}"
stop_server
check "full mode (streamed): the prompt text is recorded" grep -q "\"prompt\":\"$SECRET_WORD\"" "$LOG"
check "full mode (streamed): the completion and its token count" [ "$(rec action="POST /v1/completions" prompt="$SECRET_WORD" completion_tokens=4)" = 1 ]
check "audit verify is clean at the end" "$BIN" audit verify --store "$ST"

# ---- --audit-stdout: the records also go to stdout (a cluster's log
# pipeline), mixed with serve's own lines; the copy verifies on its own
cp "$ST/audit/audit.pub" "$WORK/audit.pub"
start_server mirror "${ARGS[@]}" --audit-stdout
reqk "$K_COMPL" POST /v1/completions '{"model":"demo:s1","prompt":"Once","max_tokens":3}'
reqk "$K_COMPL" POST /v1/completions '{"model":"demo:s1","prompt":"Upon","max_tokens":3}'
stop_server
COPY="$WORK/mirror.out"
check "--audit-stdout: the request records are on stdout" [ "$(grep -c '"action":"POST /v1/completions"' "$COPY")" = 2 ]
check "--audit-stdout: serve's own lines are there too" grep -q '^airlock serve: listening' "$COPY"
check "--audit-stdout: each copied line is the line in the log" \
    bash -c 'grep "^{\"seq\":" "$1" | while IFS= read -r l; do grep -qxF -- "$l" "$2" || exit 1; done' _ "$COPY" "$LOG"
OUT=$("$BIN" audit verify --from "$COPY" --pub "$WORK/audit.pub"); RC=$?
check "audit verify --from: the copy is intact from its first record" \
    [ "$RC" = 0 -a -n "$(grep -F 'audit copy intact' <<<"$OUT")" -a -n "$(grep -F 'the copy starts at record' <<<"$OUT")" ]
python3 - "$COPY" "$WORK/edited.out" "$WORK/dropped.out" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines(True)
recs = [i for i, l in enumerate(lines) if l.startswith('{"seq":')]
edited = list(lines)
edited[recs[1]] = edited[recs[1]].replace('"status":200', '"status":201', 1)
open(sys.argv[2], "w").write("".join(edited))
dropped = [l for i, l in enumerate(lines) if i != recs[1]]
open(sys.argv[3], "w").write("".join(dropped))
PY
RC=0; OUT=$("$BIN" audit verify --from "$WORK/edited.out" --pub "$WORK/audit.pub") || RC=$?
check "audit verify --from: an edited record in the copy is found (exit 1)" [ "$RC" = 1 -a -n "$(grep -F TAMPERED <<<"$OUT")" ]
RC=0; OUT=$("$BIN" audit verify --from "$WORK/dropped.out" --pub "$WORK/audit.pub") || RC=$?
check "audit verify --from: a record dropped from the copy is found (exit 1)" [ "$RC" = 1 -a -n "$(grep -F TAMPERED <<<"$OUT")" ]
RC=0; "$BIN" audit verify --from "$COPY" >/dev/null 2>&1 || RC=$?
check "audit verify --from without --pub is a usage error" [ "$RC" = 2 ]

# ---- --unsafe-no-sandbox is loud; --mlock locks memory or says why not
start_server unsafe "${ARGS[@]}" --unsafe-no-sandbox
reqk - GET /health
check "--unsafe-no-sandbox: /health says egress is open" [ "$(jget "$BODY" 'd["egress"]')" = open ]
stop_server
check "--unsafe-no-sandbox: a loud warning on stderr" grep -q "WARNING: --unsafe-no-sandbox" "$WORK/unsafe.err"
check "--unsafe-no-sandbox: recorded in the audit log" [ "$(rec action=serve.unsafe-no-sandbox)" = 1 ]
if [ "$(bash -c 'ulimit -H -l')" = unlimited ] && [ "$(id -u)" = 0 ]; then
    start_server mlock "${ARGS[@]}" --mlock
    reqk "$K_COMPL" POST /v1/completions '{"model":"demo:s1","prompt":"Once","max_tokens":2}'
    check "--mlock: serves with all memory locked" [ "$CODE" = 200 ]
    check "--mlock: VmLck is non-zero" [ "$(awk '/^VmLck/ {print $2}' /proc/$LAST_PID/status)" -gt 0 ]
    stop_server
else
    set +e
    OUT=$(bash -c 'ulimit -S -l 64; "$0" serve --mlock --store "$1" --listen 127.0.0.1:0' "$BIN" "$ST" 2>&1)
    RC=$?
    set -e
    check "--mlock with a limited memlock (here): exit 1" [ "$RC" = 1 ]
    check "  with a clear error naming the limit and the fix: $OUT" grep -q "memlock limit is .* KiB.*ulimit -l unlimited" <<<"$OUT"
fi
finish
