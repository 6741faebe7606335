#!/usr/bin/env bash
# cli_guard.sh - the real binary: apikey create/list/revoke (secret printed
# once, never stored or audited), audit verify/export/tail, tamper -> exit 1
# with the line, torn tail repaired by the next writer, doctor runs.
set -u
BIN=${AIRLOCK_BIN:?AIRLOCK_BIN not set}
W=$(mktemp -d /tmp/al_cli_guard.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
S="$W/store"

SECRET=$("$BIN" apikey create --name app1 --scope chat,models --models 'qwen3*' --rpm 60 --expires 90d --store "$S" 2>"$W/err") || fail "create"
[[ "$SECRET" =~ ^alk_[0-9a-f]{16}_[0-9a-f]{64}$ ]] || fail "secret shape: $SECRET"
grep -q "shown only once" "$W/err" || fail "no once-only note"
"$BIN" apikey create --name app1 --store "$S" >/dev/null 2>&1 && fail "duplicate name accepted"
"$BIN" apikey create --name bad --scope root --store "$S" >/dev/null 2>&1; [ $? = 2 ] || fail "bad scope not a usage error"
"$BIN" apikey list --store "$S" | grep -q "app1 .*active .*chat,models .*qwen3\*" || fail "list"
grep -q "${SECRET:21}" "$S/keys.db" && fail "secret stored in keys.db"
"$BIN" apikey revoke app1 --store "$S" >/dev/null || fail "revoke"
"$BIN" apikey list --store "$S" | grep -q "app1 .*revoked" || fail "not revoked"
"$BIN" apikey revoke nosuch --store "$S" 2>/dev/null && fail "revoking an unknown key succeeded"

"$BIN" audit verify --store "$S" | grep -q "intact: 2 records" || fail "verify after 2 actions"
grep -q "${SECRET:21}" "$S/audit/audit.log" && fail "secret in the audit log"
"$BIN" audit tail -n 1 --store "$S" | grep -q "apikey.revoke" || fail "tail"
[ "$("$BIN" audit export --store "$S" --since 1h | wc -l)" = 2 ] || fail "export since 1h"
[ "$("$BIN" audit export --store "$S" --until 2000-01-01 | wc -l)" = 0 ] || fail "export until 2000"

# tamper: edit record 1 -> exit 1, names line 1
cp "$S/audit/audit.log" "$W/good.log"
sed -i '1s/apikey.create/apikey.CREATE/' "$S/audit/audit.log"
OUT=$("$BIN" audit verify --store "$S"); RC=$?
echo "$OUT"
[ $RC = 1 ] || fail "edited log verified (rc $RC)"
echo "$OUT" | grep -q "TAMPERED at line 1" || fail "edit not located"
cp "$W/good.log" "$S/audit/audit.log"

# torn tail (what kill -9 mid-write leaves): verify flags it, the next writer repairs it
printf '{"seq":3,"time":"2025' >> "$S/audit/audit.log"
"$BIN" audit verify --store "$S" | grep -q "torn record" || fail "torn tail not reported"
"$BIN" apikey create --name app2 --store "$S" >/dev/null 2>&1 || fail "create after torn tail"
"$BIN" audit verify --store "$S" | grep -q "intact: 4 records" || fail "not repaired"
"$BIN" audit tail -n 2 --store "$S" | head -1 | grep -q "audit.repair" || fail "repair not audited"

"$BIN" doctor --store "$S" > "$W/doctor.out"; RC=$?
cat "$W/doctor.out"
# doctor also judges every `airlock serve` running on the machine: a server
# of another test run in parallel (server_guard starts one with
# --unsafe-no-sandbox) makes it exit 1, which is about that server, not this
# test's store
if [ $RC != 0 ]; then
    { [ $RC = 1 ] && grep -q "^  airlock serve, pid" "$W/doctor.out" && grep -q "egress filter: OFF" "$W/doctor.out"; } ||
        fail "doctor rc $RC"
fi
grep -q "egress blocked" "$W/doctor.out" || fail "doctor: sandbox probe"
grep -q "audit log: intact" "$W/doctor.out" || fail "doctor: audit"
echo "cli_guard: PASS"
