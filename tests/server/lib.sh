# lib.sh - helpers for the server tests: start the real `airlock serve` on a
# free loopback port, talk to it with curl, stop it on exit.
set -euo pipefail

SHARED="${AIRLOCK_SHARED:-$(dirname "$0")/../../../shared}"
BIN="${AIRLOCK_BIN:?AIRLOCK_BIN must point at the airlock binary}"
if [ ! -d "$SHARED/models" ]; then
    echo "SKIP: no test data at $SHARED"
    exit 77
fi
STORIES="$SHARED/models/stories260K.gguf"
QWEN="$SHARED/models/tiny-qwen2-q4_k_m.gguf"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/airlock-srv-test.XXXXXX")"
SERVER_PIDS=()
FAILS=0
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_server NAME ARGS... : starts the server, sets URL (http://127.0.0.1:PORT,
# or https:// when the server was given TLS options) and LAST_PID
start_server() {
    local name="$1"; shift
    "$BIN" serve --listen 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!
    SERVER_PIDS+=("$pid")
    LAST_PID=$pid
    for _ in $(seq 1 100); do
        if grep -q "listening on" "$WORK/$name.out" 2>/dev/null; then
            URL="$(grep -m1 -o 'https\?://[0-9.:]*' "$WORK/$name.out")"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "server $name exited early:"; cat "$WORK/$name.err"; exit 1
        fi
        sleep 0.1
    done
    echo "server $name did not start"; cat "$WORK/$name.err"; exit 1
}
# stop_server: stops the server start_server started last
stop_server() { kill "$LAST_PID"; wait "$LAST_PID" 2>/dev/null || true; }

ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }

# check DESC COND...: runs the condition, records the result
check() {
    local desc="$1"; shift
    if "$@"; then ok "$desc"; else bad "$desc"; fi
}

# req METHOD PATH [BODY]: sets CODE and BODY (response)
req() {
    local method="$1" path="$2" data="${3-}"
    local out="$WORK/resp.$$"
    if [ -n "$data" ]; then
        CODE=$(curl -s -o "$out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
            --data-binary "$data" "$URL$path" || true)
    else
        CODE=$(curl -s -o "$out" -w '%{http_code}' -X "$method" "$URL$path" || true)
    fi
    BODY="$(cat "$out" 2>/dev/null || true)"
}

# jq-free JSON field access with python3
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); exec("print(" + sys.argv[2] + ")")' "$1" "$2"; }

finish() {
    if [ "$FAILS" -ne 0 ]; then
        echo "$FAILS check(s) failed"
        echo "--- server stderr:"; cat "$WORK"/*.err 2>/dev/null | tail -30
        exit 1
    fi
    echo "all checks passed"
}
