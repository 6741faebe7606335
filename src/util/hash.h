/* hash.h - hex encoding and SHA-256 helpers shared by the store, the audit
 * log and the API keys (OpenSSL libcrypto underneath). */
#ifndef AL_UTIL_HASH_H
#define AL_UTIL_HASH_H

#include <stdbool.h>
#include <stddef.h>

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void al_hex(const unsigned char *in, size_t n, char *out);

/* SHA-256 of a buffer as 64 lowercase hex digits + NUL. */
void al_sha256_hex(const void *data, size_t n, char hex[65]);

/* Streaming SHA-256. al_sha256_begin gives NULL when it cannot start one;
 * al_sha256_end writes the 64 hex digits + NUL (false if the digest failed)
 * and frees h. al_sha256_free frees h without a result (NULL is fine). */
typedef struct al_sha256 al_sha256;
al_sha256 *al_sha256_begin(void);
void al_sha256_update(al_sha256 *h, const void *data, size_t n);
bool al_sha256_end(al_sha256 *h, char hex[65]);
void al_sha256_free(al_sha256 *h);

#endif
