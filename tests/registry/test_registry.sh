#!/bin/bash
# airlock push / pull against a real CNCF Distribution registry on loopback:
# htpasswd auth over http://, then TLS with a test CA. Import checks on pull:
# untrusted publisher, a blob swapped in the registry's storage, a cut pull
# resumed, chunked upload, HTTPS by default.
. "$(dirname "$0")/../store/lib.sh"
REG_BIN=$(command -v docker-registry || command -v registry || true)
if [ -z "$REG_BIN" ]; then
    echo "SKIPPED: no docker-registry binary (scripts/deps.sh installs Debian's docker-registry)"
    exit 77
fi
command -v htpasswd >/dev/null || { echo "SKIPPED: htpasswd (apache2-utils) not installed"; exit 77; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_registry DIR PORT [CERT KEY]: CNCF Distribution with htpasswd auth.
start_registry() {
    local d=$1 port=$2 tls=""
    mkdir -p "$d/storage"
    [ $# -ge 4 ] && tls="  tls:
    certificate: $3
    key: $4"
    cat > "$d/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $d/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$tls
auth:
  htpasswd:
    realm: airlock-test
    path: $T/htpasswd
YML
    "$REG_BIN" serve "$d/config.yml" > "$d/log" 2>&1 &
    PIDS+=($!)
    local scheme=http opt=""
    [ -n "$tls" ] && scheme=https opt="--cacert $T/ca.pem"
    for _ in $(seq 1 200); do
        code=$(curl -s $opt -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" || true)
        [ "$code" = 401 ] && return 0
        sleep 0.1
    done
    echo "registry did not start:"; cat "$d/log"; exit 1
}

htpasswd -Bbn tester 's3cret-pw' > $T/htpasswd 2>/dev/null
P1=$(free_port)
start_registry $T/reg1 $P1
R=127.0.0.1:$P1
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$R" "$(printf 'tester:s3cret-pw' | base64)" > $T/auth.json
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$R" "$(printf 'tester:wrong' | base64)" > $T/badauth.json

# a published model in the first enclave's store
S1=$T/s1
echo "MIT License (test)" > $T/LICENSE
A keygen --name acme --out $T/keys >/dev/null
A keygen --name mallory --out $T/keys >/dev/null
A bundle $MODELS/stories260K.gguf --name stories --tag 260k --license $T/LICENSE --sign $T/keys/acme.pem \
    -o $T/stories.airlock >/dev/null
A bundle $MODELS/stories260K-q8_0.gguf --name stories --tag q8 --sign $T/keys/mallory.pem \
    -o $T/evil.airlock >/dev/null
A trust add $T/keys/acme.pub.pem --name acme --store $S1 >/dev/null
A trust add $T/keys/mallory.pub.pem --name mallory --store $S1 >/dev/null
A import $T/stories.airlock --by ivan --store $S1 >/dev/null
A approve stories:260k --by alice --store $S1 >/dev/null
A import $T/evil.airlock --by ivan --store $S1 >/dev/null
A approve stories:q8 --by alice --store $S1 >/dev/null
GGUF_SHA=$(sha256sum < $MODELS/stories260K.gguf | cut -d' ' -f1)

expect_fail "push without credentials" "asks for credentials" A push stories:260k http://$R/models/stories --store $S1
expect_fail "push with a wrong password" "denied|refused" A push stories:260k http://$R/models/stories \
    --store $S1 --auth-file $T/badauth.json
expect_fail "push of an unpublished model" "not in the store" A push nosuch:1 http://$R/models/x \
    --store $S1 --auth-file $T/auth.json
expect_ok "push (monolithic)" A push stories:260k http://$R/models/stories --store $S1 --auth-file $T/auth.json
grep -q "^digest: sha256:" <<<"$out" && pass "push prints the digest" || fail "push output: $out"
DIGEST=$(sed -n 's/^digest: sha256://p' <<<"$out")
AIRLOCK_REGISTRY_AUTH=$T/auth.json expect_ok "push again from \$AIRLOCK_REGISTRY_AUTH (blobs skipped)" \
    A push stories:260k http://$R/models/stories --store $S1
grep -q "(2 already there), 724 bytes sent" <<<"$out" && pass "existing blobs skipped" \
    || fail "skip: $out"
expect_ok "push chunked (64 KiB PATCHes)" A push stories:260k http://$R/models/chunked:v1 --store $S1 \
    --auth-file $T/auth.json --chunk-size 65536
expect_ok "push the q8 model (other publisher)" A push stories:q8 http://$R/models/stories --store $S1 \
    --auth-file $T/auth.json

# the artifact as the registry holds it
curl -s -u tester:s3cret-pw -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    http://$R/v2/models/stories/manifests/260k > $T/oci.json
python3 - $T/oci.json $GGUF_SHA <<'PY' && pass "OCI manifest: artifactType, layers, annotations" || fail "OCI manifest: $(cat $T/oci.json)"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["artifactType"] == "application/vnd.airlock.model.v1", m
assert m["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
L = m["layers"]
assert [l["annotations"]["org.opencontainers.image.title"] for l in L] == ["manifest.json", "manifest.sig", "stories260K.gguf", "LICENSE"], L
assert L[2]["digest"] == "sha256:" + sys.argv[2] and L[2]["mediaType"] == "application/vnd.airlock.model.gguf.v1"
a = m["annotations"]
assert a["io.airlock.model.name"] == "stories" and a["io.airlock.model.tag"] == "260k"
assert len(a["io.airlock.publisher.key-id"]) == 64 and "passed" in a["io.airlock.scan.summary"], a
PY
grep -q "s3cret" $T/reg1/log && fail "the password appears in the registry log" || pass "no password in logs"

# pull into a second enclave
S2=$T/s2
expect_fail "pull into a store that trusts nobody" "untrusted key" A pull http://$R/models/stories:260k \
    --store $S2 --auth-file $T/auth.json
[ -z "$(A list --store $S2 | tail -n +2)" ] && pass "store unchanged after the refusal" || fail "store: $(A list --store $S2)"
A trust add $T/keys/acme.pub.pem --name acme --store $S2 >/dev/null
expect_fail "pull signed by an untrusted key" "untrusted key" A pull http://$R/models/stories:q8 \
    --store $S2 --auth-file $T/auth.json
expect_fail "pull without a tag or digest" "neither a tag" A pull http://$R/models/stories --store $S2
expect_fail "HTTPS is the default (this registry speaks http)" "failed|SSL|TLS" A pull $R/models/stories:260k \
    --store $S2 --auth-file $T/auth.json
expect_ok "pull" A pull http://$R/models/stories:260k --store $S2 --auth-file $T/auth.json --by bob
grep -q "signed by 'acme': quarantined" <<<"$out" && pass "pulled into quarantine" || fail "pull: $out"
A show stories:260k --store $S2 > $T/show2.txt
grep -q "state: *quarantined" $T/show2.txt && pass "show: quarantined" || fail "show: $(cat $T/show2.txt)"
grep -q "$GGUF_SHA" $T/show2.txt && pass "same GGUF digest in the second store" || fail "digest: $(cat $T/show2.txt)"
grep -q "by bob" $T/show2.txt && pass "--by recorded as importer" || fail "importer: $(cat $T/show2.txt)"
[ ! -e $T/s2/pull/$DIGEST ] && pass "download folder removed after the import" || fail "pull dir left"
expect_ok "pull by digest" A pull "http://$R/models/stories@sha256:$DIGEST" --store $S2 --auth-file $T/auth.json
grep -q "already in the store" <<<"$out" && pass "by digest: already there" || fail "by digest: $out"
expect_fail "pull by a wrong digest" "not found|MANIFEST_UNKNOWN|404" \
    A pull "http://$R/models/stories@sha256:$(printf '%064d' 0)" --store $S2 --auth-file $T/auth.json
A trust add $T/keys/acme.pub.pem --name acme --store $T/s2c >/dev/null
expect_ok "pull the chunked upload (trusted)" A pull http://$R/models/chunked:v1 --store $T/s2c --auth-file $T/auth.json
A show stories:260k --store $T/s2c | grep -q "$GGUF_SHA" && pass "chunked upload intact" || fail "chunked digest"
expect_ok "approve the pulled model, then it serves (resolves)" A approve stories:260k --by alice --store $S2

# a pull cut in the middle: the first half of the GGUF is already on disk
S3=$T/s3
A trust add $T/keys/acme.pub.pem --name acme --store $S3 >/dev/null
mkdir -p $S3/pull/$DIGEST
head -c 600000 $MODELS/stories260K.gguf > $S3/pull/$DIGEST/$GGUF_SHA
expect_ok "resume a cut pull" A pull http://$R/models/stories:260k --store $S3 --auth-file $T/auth.json
grep -q "resumed after 600000 bytes" <<<"$out" && pass "resumed with an HTTP Range at 600000" || fail "resume: $out"
A show stories:260k --store $S3 | grep -q "$GGUF_SHA" && pass "resumed pull ends with the same digest" \
    || fail "resumed digest"
# a partial file with wrong bytes cannot smuggle anything in
S4=$T/s4
A trust add $T/keys/acme.pub.pem --name acme --store $S4 >/dev/null
mkdir -p $S4/pull/$DIGEST
head -c 600000 $MODELS/stories260K-f16.gguf > $S4/pull/$DIGEST/$GGUF_SHA
expect_fail "a corrupt partial download is refused" "hash to" A pull http://$R/models/stories:260k \
    --store $S4 --auth-file $T/auth.json
[ ! -e $S4/pull/$DIGEST/$GGUF_SHA ] && pass "the corrupt partial file is deleted" || fail "corrupt part kept"
expect_ok "and the next pull starts afresh" A pull http://$R/models/stories:260k --store $S4 --auth-file $T/auth.json

# a replica kept in step: serve --sync on the bare repository picks up a new tag
S7=$T/s7
A trust add $T/keys/acme.pub.pem --name acme --store $S7 >/dev/null
"$AIRLOCK_BIN" serve --store $S7 --listen 127.0.0.1:0 --sync http://$R/models/stories --sync-interval 1 \
    --sync-auth-file $T/auth.json --approved-by-policy > $T/serve.log 2>&1 &
SERVE_PID=$!
PIDS+=($SERVE_PID)
for _ in $(seq 1 300); do
    grep -q "listening" $T/serve.log && break
    kill -0 $SERVE_PID 2>/dev/null || break
    sleep 0.1
done
A show stories:260k --store $S7 2>&1 | grep -q "state: *published" && pass "sync: first pass pulled and published (policy)" \
    || fail "sync first pass: $(A show stories:260k --store $S7 2>&1 | head -3); log: $(cat $T/serve.log)"
grep -q "stories:q8.*untrusted key" $T/serve.log && pass "sync: the untrusted tag is refused and logged" \
    || fail "sync log: $(cat $T/serve.log)"
kill -0 $SERVE_PID 2>/dev/null && pass "the replica serves" || fail "serve died: $(cat $T/serve.log)"
A bundle $MODELS/stories260K-q4_0.gguf --name stories --tag q4 --sign $T/keys/acme.pem -o $T/q4.airlock >/dev/null
A import $T/q4.airlock --by ivan --store $S1 >/dev/null
A approve stories:q4 --by alice --store $S1 >/dev/null
expect_ok "push a new tag" A push stories:q4 http://$R/models/stories --store $S1 --auth-file $T/auth.json
for _ in $(seq 1 600); do
    A show stories:q4 --store $S7 2>/dev/null | grep -q "state: *published" && break
    sleep 0.1
done
A show stories:q4 --store $S7 2>&1 | grep -q "state: *published" && pass "sync picked up the new tag" \
    || fail "new tag not synced: $(cat $T/serve.log)"
# hot reload: the running server serves the synced tag without a restart
SURL=$(grep -m1 'listening on' $T/serve.log | grep -o 'http://[0-9.:]*')
served_q4() { curl -s "$SURL/v1/models" | grep -q '"stories:q4"'; }
for _ in $(seq 1 300); do served_q4 && break; sleep 0.1; done
served_q4 && pass "the replica serves the synced tag without a restart" \
    || fail "stories:q4 not served: $(curl -s "$SURL/v1/models"); log: $(cat $T/serve.log)"
CODE=$(curl -s -o $T/q4.json -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model":"stories:q4","prompt":"Once upon a time","max_tokens":4}' "$SURL/v1/completions")
[ "$CODE" = 200 ] && grep -q '"completion_tokens":4' $T/q4.json && pass "  and it answers a completion" \
    || fail "completion on stories:q4: $CODE $(cat $T/q4.json)"
grep -q "model 'stories:q4' (published, sha256:.*now served" $T/serve.log && pass "  the log says so" \
    || fail "no 'now served' line: $(cat $T/serve.log)"
kill $SERVE_PID; wait $SERVE_PID 2>/dev/null

# a blob swapped in the registry's storage (same size, other bytes)
BLOB=$T/reg1/storage/docker/registry/v2/blobs/sha256/${GGUF_SHA:0:2}/$GGUF_SHA/data
if [ -f "$BLOB" ]; then
    python3 - "$BLOB" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0xFF
open(p, "wb").write(bytes(b))
PY
    S5=$T/s5
    A trust add $T/keys/acme.pub.pem --name acme --store $S5 >/dev/null
    expect_fail "a swapped blob is refused" "hash to .*refused" A pull http://$R/models/stories:260k --store $S5 \
        --auth-file $T/auth.json
    [ -z "$(A list --store $S5 | tail -n +2)" ] && pass "store unchanged after the swapped blob" \
        || fail "store: $(A list --store $S5)"
else
    fail "registry storage layout: $BLOB not found"
fi

# a misbehaving registry (tests/registry/fake_registry.py) serving the same artifact
F=$T/fake
mkdir -p $F
cp $T/oci.json $F/manifest.json
for d in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(" ".join(l["digest"][7:] for l in m["layers"]))' $T/oci.json); do
    curl -s -u tester:s3cret-pw -L http://$R/v2/models/stories/blobs/sha256:$d -o $F/$d
done
cp $MODELS/stories260K.gguf $F/$GGUF_SHA # the registry's copy was swapped above
python3 $HERE/../registry/fake_registry.py $F > $T/fake.port 2>$T/fake.log &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s $T/fake.port ] && break; sleep 0.1; done
FR=127.0.0.1:$(cat $T/fake.port)
OCI_HEX=$(sha256sum < $F/manifest.json | cut -d' ' -f1)
S8=$T/s8
A trust add $T/keys/acme.pub.pem --name acme --store $S8 >/dev/null
expect_fail "a wrong Docker-Content-Digest is refused" "announced sha256:0000.*refused" \
    A pull http://$FR/baddigest:260k --store $S8
expect_fail "a 100 MB manifest is refused" "over the 4194304-byte limit" A pull http://$FR/bigmanifest:260k --store $S8
expect_fail "a layer larger than announced is refused" "larger than the .* announced" \
    A pull http://$FR/biglayer:260k --store $S8
[ ! -e $S8/pull/$OCI_HEX/$GGUF_SHA ] && pass "the oversized download is deleted" || fail "oversized part kept"
expect_fail "a redirect to another host is refused" "another host" A pull http://$FR/redirect:260k --store $S8
expect_fail "a token realm on another host is refused" "realm .*evil.invalid.* not on the registry" \
    A pull http://$FR/realm:260k --store $S8 --auth-file $T/auth.json
AIRLOCK_REGISTRY_STALL_SECONDS=2 expect_fail "a registry that stalls mid-blob times out" "timed out" \
    A pull http://$FR/stall:260k --store $S8
[ -z "$(A list --store $S8 | tail -n +2)" ] && pass "store unchanged after every bad registry" || fail "store: $(A list --store $S8)"
sz=$(stat -c %s $S8/pull/$OCI_HEX/$GGUF_SHA 2>/dev/null || echo 0)
[ "$sz" -gt 0 ] && pass "the stalled download is kept for a resume ($sz bytes)" || fail "no partial after the stall"
expect_ok "the stalled pull resumes from a good mirror" A pull http://$FR/ok:260k --store $S8
grep -q "resumed after $sz bytes" <<<"$out" && pass "resumed at $sz bytes" || fail "resume after stall: $out"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$FR" "$(printf 'tester:s3cret-pw' | base64)" > $T/fakeauth.json
S9=$T/s9
A trust add $T/keys/acme.pub.pem --name acme --store $S9 >/dev/null
expect_fail "bearer flow without credentials" "token service refused" A pull http://$FR/bearer:260k --store $S9
expect_ok "bearer-token flow (realm/service/scope)" A pull http://$FR/bearer:260k --store $S9 \
    --auth-file $T/fakeauth.json

# a chunked push whose connection is cut mid-chunk goes on from the offset the
# registry confirms (the fake keeps half of the cut chunk)
expect_ok "chunked push resumes after a cut PATCH" A push stories:260k http://$FR/cutpatch:v1 --store $S1 \
    --chunk-size 262144
grep -q "4 layers (0 already there)" <<<"$out" && pass "every blob uploaded" || fail "cut push: $out"
grep -q "cut PATCH at 262144, kept 131072 bytes" $T/fake.log && pass "the connection was cut mid-chunk" \
    || fail "no cut happened: $(cat $T/fake.log)"
S10=$T/s10
A trust add $T/keys/acme.pub.pem --name acme --store $S10 >/dev/null
expect_ok "and what it pushed pulls back intact" A pull http://$FR/cutpatch:v1 --store $S10
A show stories:260k --store $S10 | grep -q "$GGUF_SHA" && pass "same GGUF digest after the cut push" \
    || fail "cut push digest"

# TLS with a test CA
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=airlock test CA" -keyout $T/ca.key -out $T/ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout $T/srv.key -out $T/srv.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > $T/ext.cnf
openssl x509 -req -in $T/srv.csr -CA $T/ca.pem -CAkey $T/ca.key -CAcreateserial -days 2 -extfile $T/ext.cnf \
    -out $T/srv.pem 2>/dev/null
P2=$(free_port)
start_registry $T/reg2 $P2 $T/srv.pem $T/srv.key
R2=127.0.0.1:$P2
printf '{"auths": {"https://%s": {"username": "tester", "password": "s3cret-pw"}}}\n' "$R2" > $T/auth2.json
expect_fail "TLS: an unknown CA is refused" "certificate|SSL" A push stories:260k $R2/models/stories \
    --store $S1 --auth-file $T/auth2.json
expect_ok "TLS: push with --ca" A push stories:260k $R2/models/stories --store $S1 --auth-file $T/auth2.json \
    --ca $T/ca.pem
expect_fail "TLS: http:// to an https registry fails" "failed|HTTP 400|Empty|reset" \
    A pull http://$R2/models/stories:260k --store $T/s6 --auth-file $T/auth2.json
A trust add $T/keys/acme.pub.pem --name acme --store $T/s6 >/dev/null
expect_ok "TLS: pull with --ca" A pull https://$R2/models/stories:260k --store $T/s6 --auth-file $T/auth2.json \
    --ca $T/ca.pem
A show stories:260k --store $T/s6 | grep -q "state: *quarantined" && pass "TLS pull quarantined" || fail "TLS pull"
finish
