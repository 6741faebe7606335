#!/bin/bash
# bench-registry.sh [MODEL.gguf] - push and pull throughput of a model through
# a CNCF Distribution registry on loopback (http, htpasswd), with the pull's
# peak RSS (streaming: it must not grow with the model), beside sha256sum.
#   AIRLOCK_BIN  the airlock binary (default: build/airlock)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${AIRLOCK_BIN:-$ROOT/build/airlock}
MODEL=${1:-$HOME/.cache/airlock/models/qwen3-0.6b-q4_k_m.gguf}
[ -f "$MODEL" ] || { echo "no model at $MODEL (make bench-serve generates one)"; exit 1; }
REG=$(command -v docker-registry || command -v registry)
T=$(mktemp -d /tmp/airlock-benchreg.XXXXXX)
trap 'kill $RP 2>/dev/null; rm -rf "$T"' EXIT
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
htpasswd -Bbn bench bench-pw > $T/htpasswd 2>/dev/null
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\nauth:\n  htpasswd:\n    realm: bench\n    path: %s\n' \
    "$T/storage" "$P" "$T/htpasswd" > $T/config.yml
"$REG" serve $T/config.yml >$T/reg.log 2>&1 & RP=$!
until curl -s -o /dev/null http://127.0.0.1:$P/v2/; do sleep 0.1; done
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$P" "$(printf bench:bench-pw | base64)" > $T/auth.json
export AIRLOCK_USER=bench
"$BIN" keygen --name pub --out $T/k >/dev/null
"$BIN" bundle "$MODEL" --name bench --tag v1 --sign $T/k/pub.pem -o $T/b.airlock >/dev/null
for s in s1 s2; do "$BIN" trust add $T/k/pub.pub.pem --name pub --store $T/$s >/dev/null; done
"$BIN" import $T/b.airlock --store $T/s1 >/dev/null && "$BIN" approve bench:v1 --by alice --store $T/s1 >/dev/null
rm $T/b.airlock
size=$(stat -c %s "$MODEL")
t0=$(date +%s.%N); sha256sum "$MODEL" >/dev/null; t1=$(date +%s.%N)
echo "model: $MODEL ($size bytes); sha256sum: $(python3 -c "print(f'{$size/1e6/($t1-$t0):.0f}')") MB/s"
"$BIN" push bench:v1 http://127.0.0.1:$P/bench/m --store $T/s1 --auth-file $T/auth.json | tail -1
/usr/bin/time -f "pull peak RSS: %M KiB, wall %e s" "$BIN" pull http://127.0.0.1:$P/bench/m:v1 --store $T/s2 \
    --auth-file $T/auth.json | tail -1
