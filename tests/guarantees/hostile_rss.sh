#!/usr/bin/env bash
# hostile_rss.sh - bounds before allocation (issue 20): a GGUF whose
# tokenizer.ggml.tokens holds 20 million one-byte strings (181 MB, far more
# tokens than the embedding has rows). `airlock info` and `airlock import`
# must refuse it with a clear error while their peak RSS stays within
# 2 x the file size + 64 MB (a ratio, not a timing).
set -u
BIN=${AIRLOCK_BIN:?AIRLOCK_BIN not set}
SHARED="${AIRLOCK_SHARED:-$(dirname "$0")/../../../shared}"
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$SHARED/models/stories260K.gguf" ] || { echo "SKIP: no $SHARED/models/stories260K.gguf"; exit 77; }
W=$(mktemp -d /tmp/al_hostile_rss.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
FAILS=0
python3 "$HERE/gguf_bigvocab.py" "$SHARED/models/stories260K.gguf" "$W/big.gguf" 20000000 || { echo "FAIL: cannot write the file"; exit 1; }
SIZE=$(stat -c %s "$W/big.gguf")
LIMIT_KB=$(( (2 * SIZE + 64 * 1024 * 1024) / 1024 ))
# peak RSS (KiB) of a command, its exit status and output
peak() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
lines = r.stdout.decode(errors="replace").strip().splitlines()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode, lines[-1] if lines else "")
PY
}
read -r KB RC MSG < <(peak "$BIN" info "$W/big.gguf")
echo "info:   peak ${KB} KiB for a $((SIZE / 1024)) KiB file (limit ${LIMIT_KB} KiB), exit $RC: $MSG"
[ "$RC" != 0 ] || fail "info accepted the file"
[ "$KB" -le "$LIMIT_KB" ] || fail "info peak RSS ${KB} KiB over ${LIMIT_KB} KiB"
echo "$MSG" | grep -q "tokenizer.ggml" || fail "info: the error does not name the tokenizer array: $MSG"

python3 "$HERE/gguf_bigvocab.py" "$SHARED/models/stories260K.gguf" "$W/big2.gguf" 20000000 noscores || fail "cannot write the second file"
read -r KB RC MSG < <(peak "$BIN" info "$W/big2.gguf")
echo "info (no scores): peak ${KB} KiB, exit $RC: $MSG"
[ "$RC" != 0 ] || fail "info accepted the file without scores"
[ "$KB" -le "$LIMIT_KB" ] || fail "info (no scores) peak RSS ${KB} KiB over ${LIMIT_KB} KiB"
echo "$MSG" | grep -q "token_embd.weight has only 512 rows" || fail "info: the error does not compare with the embedding: $MSG"
rm -f "$W/big2.gguf"

"$BIN" keygen --name k --out "$W/keys" >/dev/null || fail keygen
"$BIN" bundle "$W/big.gguf" --name big --tag t --sign "$W/keys/k.pem" -o "$W/big.airlock" >/dev/null || fail bundle
"$BIN" trust add "$W/keys/k.pub.pem" --name k --store "$W/store" >/dev/null || fail trust
read -r KB RC MSG < <(peak "$BIN" import "$W/big.airlock" --store "$W/store")
echo "import: peak ${KB} KiB (limit ${LIMIT_KB} KiB), exit $RC: $MSG"
[ "$RC" != 0 ] || fail "import accepted the file"
[ "$KB" -le "$LIMIT_KB" ] || fail "import peak RSS ${KB} KiB over ${LIMIT_KB} KiB"
[ $FAILS = 0 ] || exit 1
echo "hostile_rss: PASS"
