#!/bin/bash
# demo-serve.sh AIRLOCK_BIN MODEL.gguf: serves the demo model from the
# airlock store (run scripts/demo-airlock.sh first: it publishes it) in the
# foreground (Ctrl-C stops it), sandboxed, with the audit log on, and prints
# how to talk to it. Safe to re-run.
set -euo pipefail
BIN=$1 MODEL=$2
STORE=${AIRLOCK_STORE:-./var/airlock}
LISTEN=${AIRLOCK_DEMO_LISTEN:-127.0.0.1:8080}
NAME=demo:$(basename "$MODEL" .gguf | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')
if ! "$BIN" show "$NAME" --store "$STORE" 2>/dev/null | grep -q '^state: *published'; then
    echo "demo-serve: $NAME is not published in $STORE; run scripts/demo-airlock.sh first" >&2
    exit 1
fi
DIGEST=$("$BIN" show "$NAME" --store "$STORE" | awk '/^digest:/ {print $2; exit}')
AUTH=() KEYNOTE="no API key defined: access is open ('airlock apikey create --name app1 --store $STORE' closes it)"
if "$BIN" apikey list --store "$STORE" 2>/dev/null | grep -q ' active '; then
    AUTH=(-H "'Authorization: Bearer \$AIRLOCK_KEY'")
    KEYNOTE="API keys are defined in $STORE: export AIRLOCK_KEY=<your key> (any client: api_key=\$AIRLOCK_KEY)"
fi
cat <<MSG

== airlock serve: the published model $NAME ($DIGEST)
   from the store $STORE on http://$LISTEN  (Ctrl-C to stop)
   OpenAI base URL:  http://$LISTEN/v1     (model "$NAME", or pinned "${NAME%%:*}@$DIGEST")
   Ollama host:      http://$LISTEN
   $KEYNOTE
   audit log: $BIN audit tail --store $STORE ; $BIN audit verify --store $STORE

   curl http://$LISTEN/v1/completions ${AUTH[*]} -H 'Content-Type: application/json' \\
     -d '{"model":"$NAME","prompt":"Once upon a time","max_tokens":60,"temperature":0.8}'

   curl -N http://$LISTEN/v1/chat/completions ${AUTH[*]} -H 'Content-Type: application/json' \\
     -d '{"model":"$NAME","messages":[{"role":"user","content":"Tell me a story"}],"stream":true}'

MSG
# Models without a chat template of their own (stories260K) chat in chatml.
exec "$BIN" serve --store "$STORE" --default-chat-format chatml --listen "$LISTEN"
