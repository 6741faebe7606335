#!/bin/bash
# demo-airlock.sh AIRLOCK_BIN MODEL.gguf: the demo model goes through the
# airlock - demo key, signed bundle, trust, import (verify + scan),
# approval - and then runs from the store. Idempotent: run it again freely.
set -euo pipefail
BIN=$1 MODEL=$2
STORE=${AIRLOCK_STORE:-./var/airlock}
KEYS=./var/demo-keys
NAME=demo TAG=$(basename "$MODEL" .gguf | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')
export AIRLOCK_USER=${AIRLOCK_USER:-demo-operator}
step() { echo; echo "== $*"; }
step "1. connected side: a signing key ($KEYS/publisher.pem)"
[ -f $KEYS/publisher.pem ] || "$BIN" keygen --name publisher --out $KEYS
step "2. connected side: bundle $MODEL as $NAME:$TAG, signed"
B=./var/demo-$TAG.airlock
if [ -f "$B" ]; then echo "$B exists (delete it to bundle again)"; else
    "$BIN" bundle "$MODEL" --name $NAME --tag "$TAG" --source "airlock demo" --sign $KEYS/publisher.pem -o "$B"; fi
step "3. inside: pin the publisher's public key in $STORE"
"$BIN" trust list --store "$STORE" | grep -q '^publisher ' ||
    "$BIN" trust add $KEYS/publisher.pub.pem --name publisher --models "$NAME" --store "$STORE"
step "4. inside: import (signature, digests, scan) into quarantine"
"$BIN" import "$B" --store "$STORE"
step "5. inside: approve (policy: $("$BIN" policy show --store "$STORE" | tr '\n' ' '))"
"$BIN" approve $NAME:"$TAG" --by security-officer --store "$STORE"
"$BIN" show $NAME:"$TAG" --store "$STORE"
step "6. published: a story from the store's blob"
path=$("$BIN" show $NAME:"$TAG" --store "$STORE" | awk '/^path:/ {print $2}')
"$BIN" run "$path" -p "Once upon a time" -n 200 --seed 42 --temp 0.8
echo
echo "== serve it from the store: $BIN serve --store $STORE  (model \"$NAME:$TAG\")"
