#!/usr/bin/env bash
# test_chat_template.sh - a per-model --chat-template file overrides the
# model's own template (and gives one to a model that has none); a template
# that does not parse is refused at start with the file and line.
set -u
BIN="${AIRLOCK_BIN:?}"
SHARED="${AIRLOCK_SHARED:-../shared}"
[ -f "$SHARED/models/stories260K.gguf" ] || { echo "SKIP: shared models not found"; exit 77; }
T=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }

# A template whose output is recognisable: the prompt becomes "MARKER:" + the last user text.
printf '%s' '{%- for m in messages %}{%- if loop.last %}MARKER: {{ m.content }}{% endif %}{%- endfor %}' > "$T/t.jinja"
"$BIN" serve --store "$T/store" --model "$SHARED/models/stories260K.gguf" --model-name s \
    --chat-template "$T/t.jinja" --listen 127.0.0.1:0 >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$T/log" && break; sleep 0.1; done
URL=$(grep -m1 -o 'http://[0-9.:]*' "$T/log")
[ -n "$URL" ] && ok "serve starts with --chat-template" || { bad "serve did not start: $(cat "$T/log")"; echo "$pass passed, $fail failed"; exit 1; }
out=$(curl -s -m 30 "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model":"s","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}')
echo "$out" | grep -q '"prompt_tokens"' && ok "chat answered through the override template" || bad "chat: $out"
# The override's prompt "MARKER: Once upon a time" is longer than the bare text: count tokens.
want=$(printf 'MARKER: Once upon a time' | "$BIN" tokenize "$SHARED/models/stories260K.gguf" | wc -w)
got=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens"])' 2>/dev/null)
[ -n "$got" ] && [ "$got" -ge "$want" ] && ok "prompt rendered by the file ($got tokens >= $want)" || bad "prompt tokens $got < $want"
kill $PID; wait $PID 2>/dev/null; PID=

printf '%s' '{% for m in messages %}{{ m.content }' > "$T/bad.jinja"
"$BIN" serve --store "$T/store" --model "$SHARED/models/stories260K.gguf" --chat-template "$T/bad.jinja" \
    --listen 127.0.0.1:0 >"$T/log2" 2>&1 &
PID=$!
for _ in $(seq 1 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
if kill -0 $PID 2>/dev/null; then bad "a broken template was accepted"; else
  wait $PID; rc=$?; PID=
  [ $rc = 1 ] && grep -q "bad.jinja" "$T/log2" && ok "broken template refused naming the file" || bad "rc=$rc $(cat "$T/log2")"
fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]
