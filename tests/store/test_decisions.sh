#!/bin/bash
# Decisions that stick (issue 20): a rejected model stays rejected when the
# same bundle is imported again, until `airlock reopen NAME:TAG --by P`
# (audited); `show` keeps the whole history.
. "$(dirname "$0")/lib.sh"
S=$T/store
expect_ok "keygen" A keygen --name acme --out $T/keys
expect_ok "bundle" A bundle $MODELS/stories260K.gguf --name stories --tag 260k --sign $T/keys/acme.pem -o $T/s.airlock
expect_ok "trust" A trust add $T/keys/acme.pub.pem --name acme --store $S
expect_ok "policy" A policy set approvals=2 separate-importer=true --store $S
expect_ok "import" A import $T/s.airlock --by ivan --store $S
expect_ok "reject" A reject stories:260k --by carol --reason "license unclear" --store $S
expect_fail "re-import of the rejected bundle is refused" "rejected by carol: license unclear.*stays rejected.*airlock reopen stories:260k" \
    A import $T/s.airlock --by ivan --store $S
A show stories:260k --store $S > $T/show.txt
grep -q "state: *rejected" $T/show.txt && pass "still rejected after the re-import" || fail "state: $(grep state: $T/show.txt)"
grep -q "rejected by: *carol" $T/show.txt && grep -q "reasons: *license unclear" $T/show.txt &&
    pass "the rejection's person and reason are kept" || fail "rejection lost: $(cat $T/show.txt)"
expect_fail "a rejected model cannot be approved" "rejected" A approve stories:260k --by alice --store $S
expect_fail "reopen needs --by" "usage" A reopen stories:260k --store $S
expect_ok "reopen" A reopen stories:260k --by dave --reason "license clarified" --store $S
A audit tail -n 3 --json --store $S | grep -q '"actor":"dave".*"action":"reopen".*rejection by carol lifted' &&
    pass "reopen is audited with the lifted rejection" || fail "reopen not audited: $(A audit tail -n 3 --store $S)"
expect_fail "reopen of a model that is not rejected" "nothing to reopen|is not in the store" A reopen stories:260k --by dave --store $S
expect_ok "import after reopen" A import $T/s.airlock --by ivan --store $S
A show stories:260k --store $S > $T/show.txt
grep -q "state: *quarantined" $T/show.txt && pass "quarantined again" || fail "state: $(grep state: $T/show.txt)"
sed -n '/^history:/,/^scan report:/p' $T/show.txt > $T/hist.txt
cat $T/hist.txt
for ev in "import .*ivan: .*state quarantined" "reject .*carol: reason: license unclear" \
          "import .*ivan: .*state rejected: .*stays rejected" "reopen .*dave: rejection by carol lifted" ; do
    grep -qE "$ev" $T/hist.txt && pass "history: $ev" || fail "history lacks /$ev/"
done
[ "$(grep -c ' import ' $T/hist.txt)" = 3 ] && pass "history keeps all three imports" || fail "imports in history: $(grep -c ' import ' $T/hist.txt)"
expect_ok "approve alice" A approve stories:260k --by alice --store $S
expect_ok "approve bob" A approve stories:260k --by bob --store $S
A show stories:260k --store $S | grep -q "state: *published" && pass "published after two approvals" || fail "not published"
A show stories:260k --store $S | grep -qE "reject .*carol" && pass "the old rejection is still in the history" || fail "history lost"
expect_ok "audit log intact" A audit verify --store $S
finish
