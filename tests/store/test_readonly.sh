#!/bin/bash
# A store this process cannot write (issue 20): list, show and verify work
# (the catalogue is opened read-only, nothing is repaired or audited); a
# change is refused with an error, never a crash.
. "$(dirname "$0")/lib.sh"
S=$T/store
expect_ok "keygen" A keygen --name k --out $T/keys
expect_ok "bundle" A bundle $MODELS/stories260K.gguf --name s --tag t --sign $T/keys/k.pem -o $T/s.airlock
expect_ok "trust" A trust add $T/keys/k.pub.pem --name k --store $S
expect_ok "import" A import $T/s.airlock --store $S
expect_ok "approve" A approve s:t --by a --store $S
chmod -R a+rX $T
chmod -R a-w $S
RUN=()
if [ "$(id -u)" = 0 ]; then
    # root ignores file modes: run as nobody
    command -v setpriv >/dev/null || { echo "SKIPPED: root without setpriv"; exit 77; }
    RUN=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
out=$("${RUN[@]}" "$AIRLOCK_BIN" list --store $S 2>&1); rc=$?
[ $rc = 0 ] && grep -q "s:t .*published" <<<"$out" && pass "list on a read-only store" || fail "list (rc $rc): $out"
out=$("${RUN[@]}" "$AIRLOCK_BIN" verify --store $S 2>&1); rc=$?
[ $rc = 0 ] && grep -q "store is clean" <<<"$out" && pass "verify on a read-only store" || fail "verify (rc $rc): $out"
out=$("${RUN[@]}" "$AIRLOCK_BIN" show s:t --store $S 2>&1); rc=$?
[ $rc = 0 ] && grep -q "state: *published" <<<"$out" && pass "show on a read-only store" || fail "show (rc $rc): $out"
out=$("${RUN[@]}" "$AIRLOCK_BIN" reject s:t --by x --reason y --store $S 2>&1); rc=$?
[ $rc = 1 ] && grep -qi "read-only\|readonly" <<<"$out" && pass "a change is refused: $out" || fail "reject on a read-only store (rc $rc): $out"
chmod -R u+w $S
finish
