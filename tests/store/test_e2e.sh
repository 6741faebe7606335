#!/bin/bash
# End to end: keygen -> bundle -> trust -> import -> approve (policy) ->
# list/show -> verify -> export -> re-import elsewhere -> rm -> gc.
. "$(dirname "$0")/lib.sh"
S1=$T/enclave1 S2=$T/enclave2
echo "MIT License (test)" > $T/LICENSE

expect_ok "keygen" A keygen --name acme --out $T/keys
[ "$(stat -c %a $T/keys/acme.pem)" = 600 ] && pass "private key is 0600" || fail "private key mode $(stat -c %a $T/keys/acme.pem)"
expect_ok "openssl reads the private key" openssl pkey -in $T/keys/acme.pem -noout
expect_ok "openssl reads the public key" openssl pkey -pubin -in $T/keys/acme.pub.pem -noout
expect_fail "keygen refuses to overwrite" "overwrite" A keygen --name acme --out $T/keys

expect_ok "bundle stories260K" A bundle $MODELS/stories260K.gguf --name stories --tag 260k \
    --license $T/LICENSE --source "test suite" --sign $T/keys/acme.pem -o $T/stories.airlock
expect_ok "bundle tiny-llama" A bundle $MODELS/tiny-llama-q4_0.gguf --name tinyllama --tag q4_0 \
    --sign $T/keys/acme.pem -o $T/tiny.airlock
tar tf $T/stories.airlock > $T/list.txt
[ "$(tr '\n' ' ' < $T/list.txt)" = "manifest.json manifest.sig stories260K.gguf LICENSE " ] \
    && pass "bundle layout" || fail "bundle layout: $(cat $T/list.txt)"
tar xOf $T/stories.airlock manifest.json > $T/manifest.json
tar xOf $T/stories.airlock manifest.sig > $T/manifest.sig
expect_ok "signature verifies with openssl" openssl pkeyutl -verify -pubin -inkey $T/keys/acme.pub.pem \
    -rawin -in $T/manifest.json -sigfile $T/manifest.sig
want=$(sha256sum < $MODELS/stories260K.gguf | cut -d' ' -f1)
grep -q "$want" $T/manifest.json && pass "manifest holds the model's sha256" || fail "manifest lacks sha256"

expect_fail "import with an empty trust store" "untrusted key" A import $T/stories.airlock --store $S1
expect_ok "trust add" A trust add $T/keys/acme.pub.pem --name acme --models 'stor*' --store $S1
expect_fail "trust add of a private key" "private key" A trust add $T/keys/acme.pem --name x --store $S1
A trust list --store $S1 | grep -q "acme" && pass "trust list" || fail "trust list"
expect_ok "policy set" A policy set approvals=2 separate-importer=true --store $S1
expect_ok "import stories" A import $T/stories.airlock --by ivan --store $S1
expect_ok "import again is idempotent" A import $T/stories.airlock --by ivan --store $S1
expect_fail "key not allowed for tinyllama" "key not allowed.*stor\*.*tinyllama" A import $T/tiny.airlock --store $S1
A show stories:260k --store $S1 > $T/show.txt
grep -q "state: *quarantined" $T/show.txt && pass "quarantined after import" || fail "state: $(cat $T/show.txt)"
grep -q "imported: .* by ivan" $T/show.txt && pass "importer recorded" || fail "importer"
grep -q "GGUF v3 structure valid" $T/show.txt && pass "scan report shown" || fail "scan report"
grep -q "ok   stories260K.gguf: architecture llama, 5 layers" $T/show.txt && pass "scan: architecture runnable" || fail "scan: architecture"
grep -q "ok   stories260K.gguf: tokenizer loads (512 tokens)" $T/show.txt && pass "scan: tokenizer" || fail "scan: tokenizer"
grep -q "ok   LICENSE: UTF-8 text" $T/show.txt && pass "scan: license text" || fail "scan: license"
expect_fail "quarantined model does not export" "only published" A export stories:260k -o $T/x.airlock --store $S1
expect_fail "importer may not approve" "separate-importer" A approve stories:260k --by ivan --store $S1
expect_ok "first approval" A approve stories:260k --by alice --store $S1
A approve stories:260k --by alice --store $S1 >/dev/null 2>&1
A show stories:260k --store $S1 | grep -q "state: *quarantined" && pass "one approver twice is still one" \
    || fail "published after one distinct approver"
expect_ok "second approval" A approve stories:260k --by bob --store $S1
A show stories:260k --store $S1 > $T/show.txt
grep -q "state: *published" $T/show.txt && pass "published after two approvers" || fail "not published: $(cat $T/show.txt)"
grep -q "approvals: *2 of 2: alice, bob" $T/show.txt && pass "approvers listed" || fail "approvers: $(grep approvals $T/show.txt)"
digest=$(awk '/^digest:/ {print $2}' $T/show.txt)
A show "stories@$digest" --store $S1 | grep -q "stories:260k" && pass "show by pinned digest" || fail "show by digest"
A list --store $S1 | grep -qE "stories:260k +published" && pass "list" || fail "list: $(A list --store $S1)"
A list --state quarantined --store $S1 | grep -q stories && fail "state filter" || pass "list --state"
[ -f $S1/blobs/sha256/$want ] && pass "model blob content-addressed" || fail "no blobs/sha256/$want"
m=$(sqlite3 $S1/catalogue.db "select digest from models where name='stories'" 2>/dev/null || true)
if [ -n "$m" ]; then
    grep -q '"application/vnd.oci.image.manifest.v1+json"' $S1/blobs/sha256/$m && pass "OCI image manifest" || fail "OCI manifest"
    grep -q 'application/vnd.airlock.model.config.v1+json' $S1/blobs/sha256/$m && pass "model config media type" || fail "config"
fi
expect_ok "verify clean" A verify --store $S1

# the model runs from the store's blob (the server resolves name:tag the same way)
path=$(awk '/^path:/ {print $2}' $T/show.txt)
if [ -n "$path" ] && A run --help >/dev/null 2>&1; then
    if out=$(A run "$path" -p "Once upon a time" -n 8 --seed 1 2>&1) && [ -n "$out" ]; then pass "runs from the store"
    else echo "note: airlock run did not work here: $(echo "$out" | tail -1)"; fi
fi

expect_ok "export" A export stories:260k -o $T/export.airlock --store $S1
tar xOf $T/export.airlock manifest.json | cmp -s - $T/manifest.json && pass "export keeps the manifest bytes" || fail "manifest changed"
tar xOf $T/export.airlock manifest.sig | cmp -s - $T/manifest.sig && pass "export keeps the signature" || fail "signature changed"
expect_ok "trust in enclave 2" A trust add $T/keys/acme.pub.pem --name acme --store $S2
expect_ok "re-import the export elsewhere" A import $T/export.airlock --store $S2
expect_ok "approve in enclave 2" A approve stories:260k --by carol --store $S2
A show stories:260k --store $S2 | grep -q "digest: *$digest" && pass "same digest in both enclaves" || fail "digest differs"
expect_ok "import tinyllama in enclave 2" A import $T/tiny.airlock --store $S2
expect_ok "verify enclave 2" A verify --store $S2
expect_ok "bundle a model with a chat template" A bundle $MODELS/tiny-qwen2-q4_k_m.gguf --name qwen2 --tag tiny \
    --sign $T/keys/acme.pem -o $T/qwen.airlock
expect_ok "import it" A import $T/qwen.airlock --store $S2
A show qwen2:tiny --store $S2 | grep -q "ok   tiny-qwen2-q4_k_m.gguf: chat template parses" && pass "scan: chat template parses" \
    || fail "scan: chat template: $(A show qwen2:tiny --store $S2)"

# tampering at rest
cp $S2/blobs/sha256/$want $T/saved
printf 'X' | dd of=$S2/blobs/sha256/$want bs=1 seek=1000 conv=notrunc 2>/dev/null
expect_fail "verify finds a tampered blob" "tampered: sha256:$want" A verify --store $S2
expect_fail "export refuses a tampered blob" "tampered: its sha256 is" A export stories:260k -o $T/bad-export.airlock --store $S2
[ ! -e $T/bad-export.airlock ] && pass "no bundle written from a tampered blob" || fail "bundle written from a tampered blob"
cp $T/saved $S2/blobs/sha256/$want
echo junk > $S2/blobs/sha256/0000000000000000000000000000000000000000000000000000000000000000
expect_fail "verify finds a stray blob" "stray: +0000" A verify --store $S2
mv $S2/blobs/sha256/$want $T/saved2
expect_fail "verify finds a missing blob" "missing: +sha256:$want" A verify --store $S2
mv $T/saved2 $S2/blobs/sha256/$want
expect_ok "gc removes the stray blob" A gc --store $S2
expect_ok "verify clean again" A verify --store $S2

expect_ok "reject" A reject tinyllama:q4_0 --by dave --reason "licence unclear" --store $S2
A show tinyllama:q4_0 --store $S2 | grep -q "licence unclear" && pass "reject reason recorded" || fail "reject reason"
expect_fail "a rejected model cannot be approved" "rejected" A approve tinyllama:q4_0 --by carol --store $S2
A bundle $MODELS/tiny-llama-q4_k_m.gguf --name tinyllama --tag q4_0 --sign $T/keys/acme.pem -o $T/tiny2.airlock >/dev/null
expect_ok "a new bundle replaces a rejected name:tag" A import $T/tiny2.airlock --store $S2
expect_ok "verify: the rejected model's blobs went with it" A verify --store $S2
expect_ok "rm" A rm tinyllama:q4_0 --store $S2
expect_fail "rm again" "not in the store" A rm tinyllama:q4_0 --store $S2
tiny=$(sha256sum < $MODELS/tiny-llama-q4_0.gguf | cut -d' ' -f1)
[ ! -e $S2/blobs/sha256/$tiny ] && pass "rm deletes its blobs" || fail "blob left after rm"
[ -f $S2/blobs/sha256/$want ] && pass "rm keeps other models' blobs" || fail "rm deleted a shared blob"
expect_ok "verify after rm" A verify --store $S2
expect_ok "trust rm" A trust rm acme --store $S2
expect_fail "import after trust rm" "untrusted key" A import $T/tiny.airlock --store $S2

# the audit log saw every action
n=$(grep -c '"action"' $S1/audit/audit.log || true)
[ "${n:-0}" -ge 10 ] && pass "audit log has $n records" || fail "audit log has ${n:-0} records"
grep -q '"action":"approve"' $S1/audit/audit.log && pass "approvals audited" || fail "approve not audited"
finish
