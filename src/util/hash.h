/* hash.h - hex encoding and SHA-256 helpers shared by the store, the audit
 * log and the API keys (OpenSSL libcrypto underneath). */
#ifndef AL_UTIL_HASH_H
#define AL_UTIL_HASH_H

#include <stddef.h>

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void al_hex(const unsigned char *in, size_t n, char *out);

/* SHA-256 of a buffer as 64 lowercase hex digits + NUL. */
void al_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
