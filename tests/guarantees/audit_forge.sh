#!/usr/bin/env bash
# audit_forge.sh - the real binary against an attacker who can write the
# store but does not have the audit key (issue 20): forged appends (with and
# without a later legitimate append), a made-up record signature, an edited
# and re-hashed record, audit.head deleted or replaced, records cut off with
# the head deleted, checkpoints stripped (and the rest renumbered), audit.pub
# replaced, the whole log re-signed with another key (found with --pub), a
# whole-store rollback (found with the anchor, by verify and by the next
# writer), and logs of the previous format (accepted as a prefix; an unsigned
# record appended to one is found).
set -u
BIN=${AIRLOCK_BIN:?AIRLOCK_BIN not set}
HERE=$(cd "$(dirname "$0")" && pwd)
FORGE="python3 $HERE/audit_forge.py"
W=$(mktemp -d /tmp/al_audit_forge.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
act() { "$BIN" apikey create --name "$2" --store "$1" >/dev/null 2>&1 || fail "apikey create $2 in $1"; }
# expect_bad NAME STORE LINE WORDS [verify args...]: exit 1, "TAMPERED at line LINE", WORDS in the text
expect_bad() {
    local name=$1 s=$2 line=$3 words=$4; shift 4
    local out rc
    out=$("$BIN" audit verify --store "$s" "$@" 2>&1); rc=$?
    echo "  $name: $(echo "$out" | head -1)"
    [ $rc = 1 ] || fail "$name: verify exit $rc, expected 1: $out"
    if [ "$line" = - ]; then
        echo "$out" | grep -q "TAMPERED: " || fail "$name: expected a problem without a line: $out"
    else
        echo "$out" | grep -q "TAMPERED at line $line:" || fail "$name: expected line $line: $out"
    fi
    echo "$out" | grep -qi -- "$words" || fail "$name: expected '$words' in: $out"
}
expect_ok() {
    local name=$1 s=$2; shift 2
    local out rc
    out=$("$BIN" audit verify --store "$s" "$@" 2>&1); rc=$?
    echo "  $name: $(echo "$out" | head -1)"
    [ $rc = 0 ] || fail "$name: verify exit $rc: $out"
    VOUT=$out
}
snap() { rm -rf "$2"; cp -a "$1" "$2"; }

# the reference store: 70 audited actions -> 71 records (checkpoint at 64),
# every head also written to the anchor outside the store
export AIRLOCK_AUDIT_ANCHOR="$W/anchor"
S="$W/ref"
for i in $(seq 1 40); do act "$S" "k$i"; done
snap "$S" "$W/at40"
for i in $(seq 41 70); do act "$S" "k$i"; done
unset AIRLOCK_AUDIT_ANCHOR
cp "$S/audit/audit.pub" "$W/pub.kept"
"$BIN" audit anchor --store "$S" -o "$W/anchor.op" || fail "audit anchor"
cmp -s "$W/anchor" "$W/anchor.op" || fail "the anchor file differs from audit.head"
expect_ok intact "$S" --pub "$W/pub.kept" --anchor "$W/anchor"
echo "$VOUT" | grep -q "intact: 71 records (71 signed, 0 older unsigned), 1 signed checkpoints" || fail "counts: $VOUT"
echo "$VOUT" | grep -q "warning" && fail "warning with --pub"
"$BIN" audit verify --store "$S" 2>&1 >/dev/null | grep -q "warning: verified against the store's own audit.pub" ||
    fail "no warning when verifying against the store's own audit.pub"
grep -c '"rsig":"' "$S/audit/audit.log" | grep -qx 71 || fail "not every record is signed"
L="audit/audit.log"

# 1. a record appended with a valid SHA-256 chain, no key
snap "$S" "$W/t"; $FORGE append "$W/t/$L" apikey.revoke
expect_bad "forged append" "$W/t" 72 "unsigned record after signed ones"
# ... and then a legitimate append: still found
act "$W/t" later
expect_bad "forged append + legitimate append" "$W/t" 72 "unsigned record"
# 2. the same with a made-up per-record signature
snap "$S" "$W/t"; $FORGE append "$W/t/$L" apikey.revoke rsig
expect_bad "forged append with a made-up rsig" "$W/t" 72 "signature does not verify"
# 3. an edited record, hash recomputed
snap "$S" "$W/t"
python3 - "$W/t/$L" <<'EOF'
import hashlib, sys
p = sys.argv[1]; L = open(p).read().split("\n")
l = L[9].replace('"k10"', '"kXX"', 1) if '"k10"' in L[9] else L[9].replace('"status":0', '"status":1', 1)
body = l[:-75]; L[9] = body + ',"hash":"' + hashlib.sha256(body.encode()).hexdigest() + '"}'
open(p, "w").write("\n".join(L))
EOF
expect_bad "edited + re-hashed record" "$W/t" 10 "signature does not verify"
# 4. audit.head deleted
snap "$S" "$W/t"; rm "$W/t/audit/audit.head"
expect_bad "audit.head deleted" "$W/t" 72 "audit.head is missing"
# 5. head deleted, 5 records cut off, then a legitimate writer: it finds the
#    missing head when it opens the log and records that, signed
snap "$S" "$W/t"; rm "$W/t/audit/audit.head"; head -n 66 "$W/t/$L" > "$W/t.log"; mv "$W/t.log" "$W/t/$L"
act "$W/t" later
expect_bad "head deleted + truncated + legitimate append" "$W/t" 67 "audit.head is missing while the log has 66 records"
# 6. audit.head replaced by a made-up one
snap "$S" "$W/t"
printf '71 %s %s\n' "$(sha256sum "$W/t/$L" | cut -c1-64)" "$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$W/t/audit/audit.head"
expect_bad "audit.head replaced" "$W/t" 72 "audit.head: signature does not verify"
# 7. checkpoints stripped
snap "$S" "$W/t"; $FORGE strip "$W/t/$L"
expect_bad "checkpoint removed" "$W/t" 64 "record number 65 where 64 was expected"
snap "$S" "$W/t"; $FORGE strip "$W/t/$L" renumber
expect_bad "checkpoint removed, the rest renumbered and re-chained" "$W/t" 64 "signature does not verify"
# 8. audit.pub replaced by another key
"$BIN" apikey create --name x --store "$W/other" >/dev/null 2>&1 || fail "other store"
snap "$S" "$W/t"; cp "$W/other/audit/audit.pub" "$W/t/audit/audit.pub"
expect_bad "audit.pub replaced" "$W/t" 1 "signature does not verify"
expect_bad "audit.pub replaced, --pub" "$W/t" - "audit.pub is not the key given with --pub" --pub "$W/pub.kept"
# 9. the whole log rewritten and signed with the attacker's key (key and pub
#    replaced): only a key kept outside the store can tell
snap "$S" "$W/t"; rm -rf "$W/t/audit"; cp -a "$W/other/audit" "$W/t/audit"
for i in $(seq 1 5); do act "$W/t" "fake$i"; done
expect_ok "re-signed with the attacker's key, store's audit.pub" "$W/t"
expect_bad "re-signed with the attacker's key, --pub" "$W/t" 1 "signature does not verify" --pub "$W/pub.kept"
# 10. whole-store rollback (log and head as they were after 40 actions)
snap "$W/at40" "$W/t"
expect_ok "rollback without the anchor (cannot be seen)" "$W/t"
expect_bad "rollback, verify --anchor" "$W/t" 41 "rolled back: the anchor" --anchor "$W/anchor"
cp "$W/anchor" "$W/anchor.t"
AIRLOCK_AUDIT_ANCHOR="$W/anchor.t" act "$W/t" later
expect_bad "rollback, then a writer with the anchor" "$W/t" 41 "the audit anchor says record 71 was written but the log ends at record 40"
# 11. --pub that is not a key
echo nonsense > "$W/bad.pub"
"$BIN" audit verify --store "$S" --pub "$W/bad.pub" >/dev/null 2>&1; [ $? = 2 ] || fail "bad --pub not a usage error"

# 12. logs of the previous format (no per-record signature)
if python3 -c "import cryptography" 2>/dev/null; then
    mkdir -p "$W/old"; $FORGE legacy "$W/old/audit" 70
    expect_ok "format-1 log" "$W/old"
    echo "$VOUT" | grep -q "intact: 70 records (0 signed, 70 older unsigned), 1 signed checkpoints" || fail "legacy counts: $VOUT"
    snap "$W/old" "$W/old2"
    act "$W/old" new1; act "$W/old" new2
    expect_ok "format-1 log + 2 signed records" "$W/old"
    echo "$VOUT" | grep -q "intact: 72 records (2 signed, 70 older unsigned)" || fail "legacy + new counts: $VOUT"
    # an unsigned record appended to an old log: not covered by its head
    $FORGE append "$W/old2/$L" apikey.revoke
    expect_bad "format-1 log + forged append" "$W/old2" 71 "unsigned record after the last synced head"
    act "$W/old2" later
    expect_bad "format-1 log + forged append + new writer" "$W/old2" 72 "not signed by this log's key"
else
    echo "  (python3-cryptography missing: format-1 logs not tested)"
fi
echo "audit_forge: PASS"
