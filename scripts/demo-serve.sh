#!/bin/bash
# demo-serve.sh AIRLOCK_BIN MODEL.gguf: serves the demo model in the
# foreground (Ctrl-C stops it) and prints how to talk to it.
set -euo pipefail
BIN=$1 MODEL=$2
LISTEN=${AIRLOCK_DEMO_LISTEN:-127.0.0.1:8080}
NAME=$(basename "$MODEL" .gguf)
FMT=()
# stories260K has no chat template: say which format chat uses, explicitly.
"$BIN" info "$MODEL" 2>/dev/null | grep -q 'chat template: *present' || FMT=(--chat-format chatml)
cat <<MSG

== airlock serve: $NAME on http://$LISTEN  (Ctrl-C to stop)
   OpenAI base URL:  http://$LISTEN/v1     (any API key; model "$NAME")
   Ollama host:      http://$LISTEN

   curl http://$LISTEN/v1/completions -H 'Content-Type: application/json' \\
     -d '{"model":"$NAME","prompt":"Once upon a time","max_tokens":60,"temperature":0.8}'

   curl -N http://$LISTEN/v1/chat/completions -H 'Content-Type: application/json' \\
     -d '{"model":"$NAME","messages":[{"role":"user","content":"Tell me a story"}],"stream":true}'

MSG
exec "$BIN" serve --model "$MODEL" --model-name "$NAME" "${FMT[@]}" --listen "$LISTEN"
