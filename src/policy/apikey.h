/* apikey.h - API keys: creation, revocation, and per-request authorisation
 * (scope, model, rate and token quotas).
 *
 * Keys live in <store>/keys.db (SQLite, one transaction per change). A
 * secret looks like "alk_<16 hex id>_<64 hex>": 256 random bits after the
 * id. Only a per-key random salt and SHA-256(salt || secret) are stored.
 * A slow KDF (scrypt, PBKDF2) protects low-entropy passwords; these secrets
 * are machine-generated with 256 bits of entropy, so guessing is hopeless
 * either way, and a fast hash keeps authorisation cheap on every request.
 * The comparison is constant-time (CRYPTO_memcmp); an unknown id costs the
 * same hash as a known one.
 *
 * Once any key exists (even revoked), every request needs a valid key:
 * revoking the last key does not silently reopen the server.
 *
 * Thread safety: an al_keyring may be used by any number of threads.
 * Rate windows are in memory, per process (the server is one process).
 */
#ifndef AL_POLICY_APIKEY_H
#define AL_POLICY_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

typedef struct al_keyring al_keyring;

/* Opens (creating) <store_dir>/keys.db. *out: free with al_keyring_close. */
al_status al_keyring_open(const char *store_dir, al_keyring **out, al_error *err);
void al_keyring_close(al_keyring *kr);

#define AL_APIKEY_SCOPES "chat,completions,embeddings,models,admin"
#define AL_APIKEY_DEFAULT_SCOPES "chat,completions,embeddings,models"
#define AL_APIKEY_SECRET_LEN 85 /* "alk_" + 16 + "_" + 64 */

typedef struct al_apikey_spec {
    const char *name;     /* unique, [A-Za-z0-9._-]{1,64} */
    const char *scopes;   /* comma list from AL_APIKEY_SCOPES; NULL = default */
    const char *models;   /* comma list of globs ("qwen3*"); NULL = all */
    int64_t rpm;          /* requests per minute; 0 = unlimited */
    int64_t tpm;          /* tokens per minute; 0 = unlimited */
    int64_t expires_unix; /* 0 = never */
} al_apikey_spec;

/* Creates a key. secret receives the secret (shown once, never stored),
 * id the key id. */
al_status al_keyring_create(al_keyring *kr, const al_apikey_spec *spec,
                            char secret[AL_APIKEY_SECRET_LEN + 1], char id[17], al_error *err);

/* Revokes by name or id. AL_ERR_NOT_FOUND if neither matches. */
al_status al_keyring_revoke(al_keyring *kr, const char *name_or_id, al_error *err);

typedef struct al_apikey_info {
    char id[17];
    char name[65];
    char scopes[128];
    char models[256];
    int64_t rpm, tpm;
    int64_t created_unix, expires_unix;
    bool revoked;
} al_apikey_info;

/* Lists all keys. *out is malloc'd (caller frees with free()). */
al_status al_keyring_list(al_keyring *kr, al_apikey_info **out, size_t *n, al_error *err);

/* Parses "90d", "12h", "30m", "3600s", "never" into seconds (0 = never). */
al_status al_apikey_parse_duration(const char *s, int64_t *seconds, al_error *err);

typedef enum al_auth_decision {
    AL_AUTH_OK = 200,
    AL_AUTH_UNAUTHORIZED = 401, /* no key, unknown, wrong, revoked or expired */
    AL_AUTH_FORBIDDEN = 403,    /* key lacks the scope or the model */
    AL_AUTH_RATE_LIMITED = 429, /* over rpm or tpm: see retry_after_s */
    AL_AUTH_ERROR = 500,        /* the key database failed */
} al_auth_decision;

typedef struct al_auth_result {
    al_auth_decision decision;
    bool open;             /* no keys defined: everything allowed, no actor */
    char key_id[17];       /* the key's id when it was recognised, else "" */
    char key_name[65];
    char models[256];      /* the key's model globs ("" = all), for filtering lists */
    int retry_after_s;     /* for 429 */
    char reason[160];      /* for the error body; never contains the secret */
} al_auth_result;

/* Decides a request. authorization: the Authorization header's value
 * ("Bearer alk_...") or the bare secret, or NULL. scope: "chat",
 * "completions", "embeddings", "models" or "admin" (admin keys have every
 * scope). model: the model asked for, or NULL when the endpoint names none.
 * An allowed request counts against the key's rpm. */
al_auth_decision al_keyring_authorize(al_keyring *kr, const char *authorization, const char *scope,
                                      const char *model, al_auth_result *res);

/* Adds tokens used by a finished request to the key's tpm window. */
void al_keyring_charge(al_keyring *kr, const char *key_id, int64_t tokens);

/* Token quotas enforced before the work: reserves up to want tokens (at
 * least min_tokens) against what the key has left of its tokens per minute
 * (used in the last 60 s + reserved by requests in progress). *granted:
 * tokens reserved (want when the key has no tpm). AL_AUTH_RATE_LIMITED when
 * fewer than min_tokens are left (retry_after_s and why set). Serialised by
 * the keyring's lock, so concurrent requests cannot overrun the quota. A
 * key's tpm is known once al_keyring_authorize has seen the key. */
al_auth_decision al_keyring_reserve(al_keyring *kr, const char *key_id, int64_t min_tokens,
                                    int64_t want, int64_t *granted, int *retry_after_s,
                                    char *why, size_t cap);
/* Ends a reservation: gives back reserved, charges used (now). */
void al_keyring_settle(al_keyring *kr, const char *key_id, int64_t reserved, int64_t used);

/* true if model matches one of the comma-separated globs (empty = all). */
bool al_apikey_model_match(const char *globs, const char *model);

#endif
