#!/bin/bash
# Approvals bound to people (issue 20): approvers' public keys pinned with
# `policy set approvers=FILE`; `approve --key` signs (digest, decision, time);
# approvals=2 needs two distinct pinned keys: one operator typing --by alice
# then --by bob, or approving twice with one key, does not publish; doctor
# and policy show say which mode the store is in.
. "$(dirname "$0")/lib.sh"
S=$T/store
expect_ok "keygen publisher" A keygen --name acme --out $T/keys
for p in alice bob mallory; do expect_ok "keygen $p" A keygen --name $p --out $T/keys; done
expect_ok "bundle" A bundle $MODELS/stories260K.gguf --name stories --tag 260k --sign $T/keys/acme.pem -o $T/s.airlock
expect_ok "trust" A trust add $T/keys/acme.pub.pem --name acme --store $S
expect_ok "policy approvals=2" A policy set approvals=2 separate-importer=true --store $S
A doctor --store $S 2>/dev/null | grep -q "approvals: name-only" && pass "doctor reports name-only approvals" || fail "doctor: $(A doctor --store $S 2>/dev/null | grep approvals)"
printf '# approvers of this enclave\nalice alice.pub.pem\nbob %s/keys/bob.pub.pem\n' "$T" > $T/keys/approvers.txt
printf 'eve alice.pem\n' > $T/keys/bad-approvers.txt
expect_fail "a private key cannot be pinned" "private key" A policy set approvers=$T/keys/bad-approvers.txt --store $S
expect_ok "pin approvers" A policy set approvers=$T/keys/approvers.txt --store $S
A policy show --store $S | grep -q "approvers=2 pinned keys" && pass "policy show: 2 pinned keys" || fail "policy show: $(A policy show --store $S)"
A doctor --store $S 2>/dev/null | grep -q "approvals: bound to 2 pinned approver keys" && pass "doctor reports key-bound approvals" || fail "doctor (pinned)"
expect_ok "import" A import $T/s.airlock --by ivan --store $S
expect_fail "name-only approval refused once keys are pinned" "bound to keys.*--key" A approve stories:260k --by alice --store $S
expect_fail "an unpinned key is refused" "not a pinned approver" A approve stories:260k --key $T/keys/mallory.pem --store $S
expect_ok "alice approves with her key" A approve stories:260k --key $T/keys/alice.pem --store $S
expect_ok "alice's key again" A approve stories:260k --key $T/keys/alice.pem --store $S
A show stories:260k --store $S | grep -q "state: *quarantined" && pass "one key twice is one approval: still quarantined" || fail "published by one key"
A show stories:260k --store $S | grep -q "approvals: *1 of 2" && pass "1 of 2" || fail "$(A show stories:260k --store $S | grep approvals)"
expect_ok "bob approves with his key" A approve stories:260k --key $T/keys/bob.pem --store $S
A show stories:260k --store $S > $T/show.txt
grep -q "state: *published" $T/show.txt && pass "published after two distinct pinned keys" || fail "not published: $(grep -E 'state|approvals' $T/show.txt)"
grep -q "approvals: *2 of 2: alice, bob" $T/show.txt && pass "approvers are the pinned names" || fail "$(grep approvals $T/show.txt)"
A audit export --store $S | grep '"action":"approve"' | grep -q 'signed with pinned key .*airlock-approval:v1:stories:260k:sha256:[0-9a-f]\{64\}:approve:20' &&
    pass "the audit record holds what was signed: digest, decision, time" || fail "audit: $(A audit export --store $S | grep approve | tail -1)"
sig=$(sqlite3 $S/catalogue.db "select msg || ' ' || sig from signed_approvals where person='bob'" 2>/dev/null || true)
if [ -n "$sig" ]; then
    msg=${sig% *}; hex=${sig##* }
    printf '%s' "$msg" > $T/msg; printf '%s' "$hex" | xxd -r -p > $T/sig
    expect_ok "bob's stored approval verifies with openssl against his public key" openssl pkeyutl -verify -pubin \
        -inkey $T/keys/bob.pub.pem -rawin -in $T/msg -sigfile $T/sig
fi
expect_ok "unpin (back to name-only)" A policy set approvers=none --store $S
A doctor --store $S 2>/dev/null | grep -q "approvals: name-only" && pass "doctor: name-only again" || fail "doctor after unpin"
expect_ok "audit log intact" A audit verify --store $S
finish
