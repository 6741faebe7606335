# lib.sh - helpers for the store's shell tests (sourced).
set -u
AIRLOCK_BIN=${AIRLOCK_BIN:?AIRLOCK_BIN must name the airlock binary}
SHARED=${AIRLOCK_SHARED:-$(dirname "$0")/../../../shared}
MODELS=$SHARED/models
if [ ! -f "$MODELS/stories260K.gguf" ]; then
    echo "SKIPPED: $MODELS/stories260K.gguf not found (set AIRLOCK_SHARED)"
    exit 77
fi
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/airlock-storetest.XXXXXX)
trap 'rm -rf "$T"' EXIT
unset AIRLOCK_STORE
export AIRLOCK_USER=tester
N_FAIL=0
A() { "$AIRLOCK_BIN" "$@"; }
fail() { echo "FAIL: $*"; N_FAIL=$((N_FAIL + 1)); }
pass() { echo "ok   $*"; }
# expect_ok DESC CMD...: the command must succeed
expect_ok() {
    local d=$1; shift
    if out=$("$@" 2>&1); then pass "$d"; else fail "$d (exit $?): $out"; fi
}
# expect_fail DESC PATTERN CMD...: must fail (exit 1) and say PATTERN
expect_fail() {
    local d=$1 pat=$2; shift 2
    out=$("$@" 2>&1)
    local rc=$?
    if [ $rc -eq 0 ]; then fail "$d: succeeded but should have failed: $out"
    elif ! grep -qE -- "$pat" <<<"$out"; then fail "$d: message does not match /$pat/: $out"
    else pass "$d -> $(grep -E -- "$pat" <<<"$out" | head -1 | cut -c1-150)"; fi
}
finish() {
    if [ $N_FAIL -ne 0 ]; then echo "$N_FAIL check(s) FAILED"; exit 1; fi
    echo "all checks passed"
    exit 0
}
