/* sign.h - Ed25519 keys and detached signatures (OpenSSL libcrypto).
 *
 * Keys are PEM files that `openssl pkey` reads: the private key as PKCS#8
 * ("PRIVATE KEY", written 0600), the public key as SubjectPublicKeyInfo
 * ("PUBLIC KEY"). A key's id is the SHA-256 of its raw 32-byte public key,
 * in hex. */
#ifndef AL_STORE_SIGN_H
#define AL_STORE_SIGN_H

#include <stddef.h>

#include "airlock.h"
#include "util/hash.h" /* al_hex, al_sha256_hex */

#define AL_SIG_BYTES 64

/* Generates a key pair and writes DIR/NAME.pem (0600) and DIR/NAME.pub.pem.
 * Refuses to overwrite existing files. priv_path/pub_path (cap bytes each,
 * may be NULL) receive the paths; key_id (65 bytes, may be NULL) the id. */
al_status al_sign_keygen(const char *dir, const char *name, char *priv_path, char *pub_path, size_t cap,
                         char *key_id, al_error *err);

/* Signs msg with the private key in priv_pem_path: sig receives 64 bytes;
 * key_id (65) the signer's key id. */
al_status al_sign(const char *priv_pem_path, const void *msg, size_t n, unsigned char sig[AL_SIG_BYTES],
                  char key_id[65], al_error *err);

/* Checks that pub_pem (a NUL-terminated PEM public key) is an Ed25519 key;
 * key_id (65) receives its id. */
al_status al_sign_pubkey_id(const char *pub_pem, char key_id[65], al_error *err);

/* Verifies sig over msg with the public key pub_pem. AL_ERR_CRYPTO when it
 * does not verify. */
al_status al_sign_verify(const char *pub_pem, const void *msg, size_t n, const unsigned char *sig, size_t sig_len,
                         al_error *err);

#endif
