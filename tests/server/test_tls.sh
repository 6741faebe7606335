#!/usr/bin/env bash
# test_tls.sh - optional TLS in the real `airlock serve` (sandbox on):
# HTTPS with --tls-cert/--tls-key (health and a chat completion, plain HTTP
# to the TLS port fails, the startup line says https://), client
# certificates with --tls-client-ca (none or a foreign one refused, the
# CA's client certificate accepted), TLS off still serves plain HTTP, and
# bad TLS options or files stop the server before it listens (exit 1/2, the
# message names the file).
source "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "FAIL: openssl is needed (scripts/deps.sh installs it)"; exit 1; }
C="$WORK/certs"
mkdir -p "$C" "$WORK/store"
OSSL_LOG="$WORK/openssl.log"
# A CA, a server certificate for 127.0.0.1, a client certificate from the
# same CA, and a client certificate from another CA.
mkcert() { # NAME CA_NAME SUBJECT EXTFILE_CONTENT
    local n="$1" ca="$2" subj="$3" ext="$4"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$C/$n.key" \
        -subj "$subj" -out "$C/$n.csr" >>"$OSSL_LOG" 2>&1
    printf '%s\n' "$ext" >"$C/$n.ext"
    openssl x509 -req -in "$C/$n.csr" -CA "$C/$ca.pem" -CAkey "$C/$ca.key" -CAcreateserial -days 2 \
        -extfile "$C/$n.ext" -out "$C/$n.pem" >>"$OSSL_LOG" 2>&1
}
mkca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$C/$1.key" \
        -subj "/CN=airlock test $1" -days 2 -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign -out "$C/$1.pem" >>"$OSSL_LOG" 2>&1
}
if ! { mkca ca && mkca otherca &&
       mkcert server ca "/CN=127.0.0.1" "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth" &&
       mkcert client ca "/CN=client1" "extendedKeyUsage=clientAuth" &&
       mkcert stranger otherca "/CN=stranger" "extendedKeyUsage=clientAuth"; }; then
    echo "FAIL: could not make test certificates"; cat "$OSSL_LOG"; exit 1
fi

ARGS=(--store "$WORK/store" --model "$STORIES" --default-chat-format chatml --threads 1 --ctx 128 --parallel 1)
CHAT='{"model":"stories260K","messages":[{"role":"user","content":"Hello"}],"max_tokens":4,"temperature":0}'
CURL=(curl -s --max-time 10 --connect-timeout 5)

# get [CURL ARGS...] PATH: sets CODE (000 when no HTTP answer) and BODY
get() {
    local path="${*: -1}" out="$WORK/resp.$$"
    rm -f "$out"
    CODE=$("${CURL[@]}" -o "$out" -w '%{http_code}' "${@:1:$#-1}" "$URL$path" 2>/dev/null || true)
    BODY="$(cat "$out" 2>/dev/null || true)"
}
chat() { # [CURL ARGS...]
    local out="$WORK/resp.$$"
    rm -f "$out"
    CODE=$("${CURL[@]}" -o "$out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$CHAT" "$@" "$URL/v1/chat/completions" 2>/dev/null || true)
    BODY="$(cat "$out" 2>/dev/null || true)"
}

# ---- TLS on
start_server tls "${ARGS[@]}" --tls-cert "$C/server.pem" --tls-key "$C/server.key"
check "the startup line says https:// with TLS on" [ "${URL%%://*}" = https ]
check "the sandbox is on" grep -q "sandbox:" "$WORK/tls.err"
get --cacert "$C/ca.pem" /health
check "GET /health over HTTPS, server certificate verified against the CA -> 200" [ "$CODE" = 200 ]
check "/health says tls enabled, no client certificates" \
    [ "$(jget "$BODY" 'd["tls"]["enabled"], d["tls"]["client_certificates"]')" = "True False" ]
chat --cacert "$C/ca.pem"
check "POST /v1/chat/completions over HTTPS answers (200 with a choice)" \
    [ "$CODE:$(jget "$BODY" 'len(d["choices"])' 2>/dev/null)" = "200:1" ]
get --cacert "$C/otherca.pem" /health
check "a client trusting another CA refuses the server (no HTTP answer)" [ "$CODE" = 000 ]
PLAIN="http://${URL#https://}"
CODE=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$PLAIN/health" 2>/dev/null || true)
check "plain HTTP to the TLS port gets no HTTP answer (got '$CODE')" [ "$CODE" = 000 ]
get --cacert "$C/ca.pem" /health
check "the server still answers over HTTPS after the plain-HTTP attempt" [ "$CODE" = 200 ]
stop_server

# ---- TLS with client certificates
start_server mtls "${ARGS[@]}" --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-client-ca "$C/ca.pem"
get --cacert "$C/ca.pem" /health
check "--tls-client-ca: no client certificate -> refused (403 client_certificate_required; got $CODE)" \
    [ "$CODE:$(jget "$BODY" 'd["error"]["code"]' 2>/dev/null)" = "403:client_certificate_required" ]
chat --cacert "$C/ca.pem"
check "--tls-client-ca: no client certificate -> chat refused too (got $CODE)" [ "$CODE" = 403 ]
get --cacert "$C/ca.pem" --cert "$C/stranger.pem" --key "$C/stranger.key" /health
check "--tls-client-ca: a certificate from another CA -> refused (got $CODE)" [ "$CODE" != 200 ]
get --cacert "$C/ca.pem" --cert "$C/server.pem" --key "$C/server.key" /health
check "--tls-client-ca: the CA's server-only certificate (EKU serverAuth) -> refused (got $CODE)" [ "$CODE" != 200 ]
get --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key" /health
check "--tls-client-ca: the CA's client certificate -> 200" [ "$CODE" = 200 ]
check "/health says tls enabled with client certificates" \
    [ "$(jget "$BODY" 'd["tls"]["enabled"], d["tls"]["client_certificates"]')" = "True True" ]
chat --cacert "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key"
check "--tls-client-ca: chat with the client certificate -> 200 with a choice" \
    [ "$CODE:$(jget "$BODY" 'len(d["choices"])' 2>/dev/null)" = "200:1" ]
stop_server

# ---- TLS off: plain HTTP as before
start_server plain "${ARGS[@]}"
check "the startup line says http:// with TLS off" [ "${URL%%://*}" = http ]
get /health
check "TLS off: GET /health over plain HTTP -> 200" [ "$CODE" = 200 ]
check "/health says tls not enabled" [ "$(jget "$BODY" 'd["tls"]["enabled"]')" = False ]
chat
check "TLS off: chat over plain HTTP -> 200" [ "$CODE" = 200 ]
stop_server

# ---- bad options and files: exit before listening, the message names the file
# fails_with NAME WANT_RC PATTERN ARGS...: the server exits with WANT_RC, never
# prints "listening on", and its stderr contains PATTERN (fixed string)
fails_with() {
    local name="$1" want="$2" pat="$3"; shift 3
    local rc=0
    timeout 20 "$BIN" serve --listen 127.0.0.1:0 "${ARGS[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    if [ "$rc" = "$want" ] && ! grep -q "listening on" "$WORK/$name.out" && grep -qF -- "$pat" "$WORK/$name.err"; then
        return 0
    fi
    echo "  rc=$rc (want $want), stderr: $(cat "$WORK/$name.err")"
    return 1
}
check "missing --tls-cert file -> exit 1 naming it" \
    fails_with nocert 1 "$C/nope.pem" --tls-cert "$C/nope.pem" --tls-key "$C/server.key"
check "missing --tls-key file -> exit 1 naming it" \
    fails_with nokey 1 "$C/nope.key" --tls-cert "$C/server.pem" --tls-key "$C/nope.key"
check "a directory as --tls-cert -> exit 1 naming it" \
    fails_with dircert 1 "$C" --tls-cert "$C" --tls-key "$C/server.key"
check "a key file as --tls-cert (not a certificate) -> exit 1 naming it" \
    fails_with badcert 1 "$C/client.key: not a PEM certificate" --tls-cert "$C/client.key" --tls-key "$C/server.key"
check "a certificate as --tls-key (not a key) -> exit 1 naming it" \
    fails_with badkey 1 "$C/ca.pem: not an unencrypted PEM private key" --tls-cert "$C/server.pem" --tls-key "$C/ca.pem"
check "a key that does not belong to the certificate -> exit 1 naming both" \
    fails_with mismatch 1 "$C/server.pem and $C/client.key" --tls-cert "$C/server.pem" --tls-key "$C/client.key"
check "a bad --tls-client-ca -> exit 1 naming it" \
    fails_with badca 1 "$C/client.key: not a PEM CA certificate" --tls-cert "$C/server.pem" --tls-key "$C/server.key" \
    --tls-client-ca "$C/client.key"
check "--tls-cert without --tls-key -> usage error (exit 2)" \
    fails_with halfcert 2 "--tls-key" --tls-cert "$C/server.pem"
check "--tls-client-ca alone -> usage error (exit 2)" \
    fails_with onlyca 2 "--tls-client-ca needs" --tls-client-ca "$C/ca.pem"

finish
