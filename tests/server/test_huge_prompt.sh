#!/usr/bin/env bash
# test_huge_prompt.sh - an 8 MB prompt is refused before it is tokenized
# (issue 20: it cost 6 s of CPU): 400 context_length_exceeded whose message
# gives the cheap lower bound ("at least N tokens"); an 8 MB chat message is
# 400 too; a prompt that fits is still answered.
source "$(dirname "$0")/lib.sh"
start_server huge --model "$STORIES" --model-name stories --chat-format chatml --threads 1 --ctx 256 \
    --max-body 16777216
PID=$LAST_PID
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
text = "Once upon a time there was a little cat. " * (8 * 1024 * 1024 // 41)
json.dump({"model": "stories", "prompt": text, "max_tokens": 4}, open(w + "/c.json", "w"))
json.dump({"model": "stories", "messages": [{"role": "user", "content": text}], "max_tokens": 4}, open(w + "/m.json", "w"))
PY
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
C0=$(cpu)
CODE=$(curl -s -o "$WORK/r.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$WORK/c.json" "$URL/v1/completions" || true)
C1=$(cpu)
BODY=$(cat "$WORK/r.json")
echo "     /v1/completions: $CODE, server CPU $(( (C1 - C0) * 10 )) ms: $(head -c 200 <<<"$BODY")"
check "8 MB prompt is 400 context_length_exceeded" \
    [ "$CODE:$(jget "$BODY" 'd["error"]["code"]')" = "400:context_length_exceeded" ]
check "refused by the bound, before tokenizing" grep -q "the prompt has at least [0-9]* tokens" <<<"$BODY"
# chat: the rendered conversation hits the template's output limit first (also before tokenizing)
CODE=$(curl -s -o "$WORK/r.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$WORK/m.json" "$URL/v1/chat/completions" || true)
echo "     /v1/chat/completions: $CODE: $(head -c 160 "$WORK/r.json")"
check "8 MB chat message is 400" [ "$CODE" = 400 ]
req POST /v1/completions '{"model":"stories","prompt":"Once upon a time","max_tokens":4}'
check "a prompt that fits is answered" [ "$CODE" = 200 ]
finish
