/* apikey.c - API keys in <store>/keys.db and per-request decisions
 * (see apikey.h for the design). */
#include "policy/apikey.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "util/error.h"
#include "util/hash.h"

#define WINDOW_S 60

typedef struct rate_window {
    char id[17];
    int64_t sec[WINDOW_S];     /* the second each bucket holds */
    uint32_t req[WINDOW_S];
    int64_t tok[WINDOW_S];
    int64_t tpm;               /* the key's quota, as last read by authorize */
    int64_t reserved;          /* tokens reserved by requests in progress */
} rate_window;

struct al_keyring {
    pthread_mutex_t mu;
    sqlite3 *db;
    rate_window *win; /* owned, n_win entries */
    size_t n_win;
};

static const char k_schema[] =
    "CREATE TABLE IF NOT EXISTS keys ("
    " id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL,"
    " scopes TEXT NOT NULL, models TEXT NOT NULL DEFAULT '', rpm INTEGER NOT NULL DEFAULT 0,"
    " tpm INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, expires INTEGER NOT NULL DEFAULT 0,"
    " revoked INTEGER NOT NULL DEFAULT 0);";

static void salted_hash(const unsigned char salt[16], const char *secret, size_t len,
                        unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) {
        EVP_DigestUpdate(c, salt, 16);
        EVP_DigestUpdate(c, secret, len);
        EVP_DigestFinal_ex(c, out, &n);
    } else {
        memset(out, 0, 32);
    }
    EVP_MD_CTX_free(c);
}

static int64_t now_unix(void)
{
    return (int64_t)time(NULL);
}

static int64_t now_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

al_status al_keyring_open(const char *store_dir, al_keyring **out, al_error *err)
{
    if (!store_dir || !out)
        return al_err(err, AL_ERR_ARG, "al_keyring_open: NULL argument");
    *out = NULL;
    mkdir(store_dir, 0750);
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/keys.db", store_dir) >= sizeof(path))
        return al_err(err, AL_ERR_ARG, "store path too long");
    al_keyring *kr = calloc(1, sizeof(*kr));
    if (!kr)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&kr->mu, NULL);
    int rc = sqlite3_open_v2(path, &kr->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        al_status st = al_err(err, AL_ERR_DB, "%s: %s", path,
                              kr->db ? sqlite3_errmsg(kr->db) : sqlite3_errstr(rc));
        al_keyring_close(kr);
        return st;
    }
    sqlite3_busy_timeout(kr->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(kr->db, k_schema, NULL, NULL, &msg) != SQLITE_OK) {
        al_status st = al_err(err, AL_ERR_DB, "%s: %s", path, msg ? msg : "schema failed");
        sqlite3_free(msg);
        al_keyring_close(kr);
        return st;
    }
    chmod(path, 0600);
    *out = kr;
    return AL_OK;
}

void al_keyring_close(al_keyring *kr)
{
    if (!kr)
        return;
    sqlite3_close(kr->db);
    free(kr->win);
    pthread_mutex_destroy(&kr->mu);
    free(kr);
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* true if the comma list `list` contains `item` exactly. */
static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    const char *p = list;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, item, n))
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

static al_status check_scopes(const char *scopes, al_error *err)
{
    if (!scopes || !*scopes || strlen(scopes) >= 128)
        return al_err(err, AL_ERR_ARG, "--scope: expected a comma list of %s", AL_APIKEY_SCOPES);
    const char *p = scopes;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char one[32];
        if (len == 0 || len >= sizeof(one))
            return al_err(err, AL_ERR_ARG, "--scope: empty or overlong scope in '%s'", scopes);
        memcpy(one, p, len);
        one[len] = 0;
        if (!list_has(AL_APIKEY_SCOPES, one))
            return al_err(err, AL_ERR_ARG, "--scope: unknown scope '%s' (known: %s)", one,
                          AL_APIKEY_SCOPES);
        p = e ? e + 1 : NULL;
    }
    return AL_OK;
}

bool al_apikey_model_match(const char *globs, const char *model)
{
    if (!globs || !*globs)
        return true;
    if (!model)
        return false;
    char pat[256];
    const char *p = globs;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && len < sizeof(pat)) {
            memcpy(pat, p, len);
            pat[len] = 0;
            if (fnmatch(pat, model, 0) == 0)
                return true;
        }
        p = e ? e + 1 : NULL;
    }
    return false;
}

al_status al_apikey_parse_duration(const char *s, int64_t *seconds, al_error *err)
{
    if (!s || !*s)
        return al_err(err, AL_ERR_ARG, "--expires: empty");
    if (!strcmp(s, "never")) {
        *seconds = 0;
        return AL_OK;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t mul = 0;
    if (end && !strcmp(end, "d"))
        mul = 86400;
    else if (end && !strcmp(end, "h"))
        mul = 3600;
    else if (end && !strcmp(end, "m"))
        mul = 60;
    else if (end && (!strcmp(end, "s") || !*end))
        mul = 1;
    if (errno || end == s || mul == 0 || v <= 0 || v > 100LL * 365 * 86400 / mul)
        return al_err(err, AL_ERR_ARG, "--expires: expected e.g. 90d, 12h, 30m or never, not '%s'",
                      s);
    *seconds = (int64_t)v * mul;
    return AL_OK;
}

al_status al_keyring_create(al_keyring *kr, const al_apikey_spec *spec,
                            char secret[AL_APIKEY_SECRET_LEN + 1], char id[17], al_error *err)
{
    if (!kr || !spec || !secret || !id)
        return al_err(err, AL_ERR_ARG, "al_keyring_create: NULL argument");
    if (!valid_name(spec->name))
        return al_err(err, AL_ERR_ARG, "--name: 1-64 characters of A-Z a-z 0-9 . _ -");
    const char *scopes = spec->scopes ? spec->scopes : AL_APIKEY_DEFAULT_SCOPES;
    al_status st = check_scopes(scopes, err);
    if (st)
        return st;
    const char *models = spec->models ? spec->models : "";
    if (strlen(models) >= 256)
        return al_err(err, AL_ERR_ARG, "--models: too long");
    if (spec->rpm < 0 || spec->tpm < 0)
        return al_err(err, AL_ERR_ARG, "--rpm/--tpm: must be >= 0");

    unsigned char idb[8], rnd[32], salt[16], hash[32];
    if (RAND_bytes(idb, 8) != 1 || RAND_priv_bytes(rnd, 32) != 1 || RAND_bytes(salt, 16) != 1)
        return al_err(err, AL_ERR_CRYPTO, "no random bytes");
    char rhex[65];
    al_hex(idb, 8, id);
    al_hex(rnd, 32, rhex);
    snprintf(secret, AL_APIKEY_SECRET_LEN + 1, "alk_%s_%s", id, rhex);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_cleanse(rhex, sizeof(rhex));
    salted_hash(salt, secret, strlen(secret), hash);

    pthread_mutex_lock(&kr->mu);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_exec(kr->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kr->db,
                                "INSERT INTO keys(id,name,salt,hash,scopes,models,rpm,tpm,created,"
                                "expires) VALUES(?,?,?,?,?,?,?,?,?,?)",
                                -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, spec->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(s, 3, salt, 16, SQLITE_TRANSIENT);
        sqlite3_bind_blob(s, 4, hash, 32, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 5, scopes, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 6, models, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 7, spec->rpm);
        sqlite3_bind_int64(s, 8, spec->tpm);
        sqlite3_bind_int64(s, 9, now_unix());
        sqlite3_bind_int64(s, 10, spec->expires_unix);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(kr->db);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(kr->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            st = al_err(err, AL_ERR_ARG, "a key named '%s' already exists", spec->name);
        else
            st = al_err(err, AL_ERR_DB, "keys.db: %s", sqlite3_errmsg(kr->db));
        sqlite3_exec(kr->db, "ROLLBACK", NULL, NULL, NULL);
        memset(secret, 0, AL_APIKEY_SECRET_LEN + 1);
    }
    pthread_mutex_unlock(&kr->mu);
    return st;
}

al_status al_keyring_revoke(al_keyring *kr, const char *name_or_id, al_error *err)
{
    if (!kr || !name_or_id)
        return al_err(err, AL_ERR_ARG, "al_keyring_revoke: NULL argument");
    pthread_mutex_lock(&kr->mu);
    sqlite3_stmt *s = NULL;
    al_status st = AL_OK;
    int rc = sqlite3_prepare_v2(kr->db, "UPDATE keys SET revoked=1 WHERE name=?1 OR id=?1", -1,
                                &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, name_or_id, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
        st = al_err(err, AL_ERR_DB, "keys.db: %s", sqlite3_errmsg(kr->db));
    else if (sqlite3_changes(kr->db) == 0)
        st = al_err(err, AL_ERR_NOT_FOUND, "no key named or with id '%s'", name_or_id);
    pthread_mutex_unlock(&kr->mu);
    return st;
}

static void copy_col(sqlite3_stmt *s, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

al_status al_keyring_list(al_keyring *kr, al_apikey_info **out, size_t *n, al_error *err)
{
    if (!kr || !out || !n)
        return al_err(err, AL_ERR_ARG, "al_keyring_list: NULL argument");
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&kr->mu);
    sqlite3_stmt *s = NULL;
    al_status st = AL_OK;
    if (sqlite3_prepare_v2(kr->db,
                           "SELECT id,name,scopes,models,rpm,tpm,created,expires,revoked FROM keys "
                           "ORDER BY created, name",
                           -1, &s, NULL) != SQLITE_OK) {
        st = al_err(err, AL_ERR_DB, "keys.db: %s", sqlite3_errmsg(kr->db));
        goto out;
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            al_apikey_info *v = realloc(*out, cap * sizeof(*v));
            if (!v) {
                st = al_err(err, AL_ERR_NOMEM, "out of memory");
                goto out;
            }
            *out = v;
        }
        al_apikey_info *k = &(*out)[(*n)++];
        memset(k, 0, sizeof(*k));
        copy_col(s, 0, k->id, sizeof(k->id));
        copy_col(s, 1, k->name, sizeof(k->name));
        copy_col(s, 2, k->scopes, sizeof(k->scopes));
        copy_col(s, 3, k->models, sizeof(k->models));
        k->rpm = sqlite3_column_int64(s, 4);
        k->tpm = sqlite3_column_int64(s, 5);
        k->created_unix = sqlite3_column_int64(s, 6);
        k->expires_unix = sqlite3_column_int64(s, 7);
        k->revoked = sqlite3_column_int(s, 8) != 0;
    }
    if (rc != SQLITE_DONE)
        st = al_err(err, AL_ERR_DB, "keys.db: %s", sqlite3_errmsg(kr->db));
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&kr->mu);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

/* ------------------------------------------------------------ rate windows */

/* The window of key id, created on first use. Lock held. */
static rate_window *window_for(al_keyring *kr, const char *id)
{
    for (size_t i = 0; i < kr->n_win; i++)
        if (!strcmp(kr->win[i].id, id))
            return &kr->win[i];
    rate_window *v = realloc(kr->win, (kr->n_win + 1) * sizeof(*v));
    if (!v)
        return NULL;
    kr->win = v;
    rate_window *w = &v[kr->n_win++];
    memset(w, 0, sizeof(*w));
    snprintf(w->id, sizeof(w->id), "%s", id);
    for (int i = 0; i < WINDOW_S; i++)
        w->sec[i] = -1;
    return w;
}

/* Sums the last minute; oldest_* = the oldest second that holds any. */
static void window_sum(const rate_window *w, int64_t now, uint64_t *req, int64_t *tok,
                       int64_t *oldest_req, int64_t *oldest_tok)
{
    *req = 0;
    *tok = 0;
    *oldest_req = *oldest_tok = now;
    for (int i = 0; i < WINDOW_S; i++) {
        if (w->sec[i] < 0 || w->sec[i] <= now - WINDOW_S)
            continue;
        *req += w->req[i];
        *tok += w->tok[i];
        if (w->req[i] && w->sec[i] < *oldest_req)
            *oldest_req = w->sec[i];
        if (w->tok[i] && w->sec[i] < *oldest_tok)
            *oldest_tok = w->sec[i];
    }
}

static int window_slot(rate_window *w, int64_t now)
{
    int i = (int)(now % WINDOW_S);
    if (w->sec[i] != now) {
        w->sec[i] = now;
        w->req[i] = 0;
        w->tok[i] = 0;
    }
    return i;
}

void al_keyring_charge(al_keyring *kr, const char *key_id, int64_t tokens)
{
    if (!kr || !key_id || !*key_id || tokens <= 0)
        return;
    pthread_mutex_lock(&kr->mu);
    rate_window *w = window_for(kr, key_id);
    if (w) {
        int i = window_slot(w, now_mono_s());
        w->tok[i] += tokens;
    }
    pthread_mutex_unlock(&kr->mu);
}

static int retry_after(int64_t oldest_tok, int64_t ntok, int64_t now)
{
    /* charged tokens leave the window 60 s after they were charged; with
     * none charged yet, the blockers are reservations that will be charged
     * when their requests end */
    int r = ntok > 0 ? (int)(oldest_tok + WINDOW_S - now) : WINDOW_S;
    return r < 1 ? 1 : r;
}

al_auth_decision al_keyring_reserve(al_keyring *kr, const char *key_id, int64_t min_tokens,
                                    int64_t want, int64_t *granted, int *retry_after_s,
                                    char *why, size_t cap)
{
    *granted = 0;
    if (!kr || !key_id || !*key_id) {
        *granted = want;
        return AL_AUTH_OK;
    }
    pthread_mutex_lock(&kr->mu);
    rate_window *w = window_for(kr, key_id);
    al_auth_decision d = AL_AUTH_OK;
    if (!w) {
        d = AL_AUTH_ERROR;
        snprintf(why, cap, "out of memory");
    } else if (w->tpm <= 0) {
        *granted = want;
    } else {
        int64_t now = now_mono_s();
        uint64_t nreq;
        int64_t ntok, old_req, old_tok;
        window_sum(w, now, &nreq, &ntok, &old_req, &old_tok);
        int64_t left = w->tpm - ntok - w->reserved;
        if (left < min_tokens) {
            *retry_after_s = retry_after(old_tok, ntok, now);
            snprintf(why, cap, "token quota of this API key reached: %lld tokens per minute, %lld "
                     "used and %lld reserved by requests in progress; this request needs at least "
                     "%lld; retry after %d s", (long long)w->tpm, (long long)ntok,
                     (long long)w->reserved, (long long)min_tokens, *retry_after_s);
            d = AL_AUTH_RATE_LIMITED;
        } else {
            *granted = want < left ? want : left;
            w->reserved += *granted;
        }
    }
    pthread_mutex_unlock(&kr->mu);
    return d;
}

void al_keyring_settle(al_keyring *kr, const char *key_id, int64_t reserved, int64_t used)
{
    if (!kr || !key_id || !*key_id)
        return;
    pthread_mutex_lock(&kr->mu);
    rate_window *w = window_for(kr, key_id);
    if (w) {
        w->reserved -= reserved;
        if (w->reserved < 0)
            w->reserved = 0;
        if (used > 0)
            w->tok[window_slot(w, now_mono_s())] += used;
    }
    pthread_mutex_unlock(&kr->mu);
}

/* ----------------------------------------------------------- authorisation */

static al_auth_decision decide(al_auth_result *res, al_auth_decision d, const char *reason)
{
    res->decision = d;
    snprintf(res->reason, sizeof(res->reason), "%s", reason);
    return d;
}

al_auth_decision al_keyring_authorize(al_keyring *kr, const char *authorization, const char *scope,
                                      const char *model, al_auth_result *res)
{
    al_auth_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    if (!kr)
        return decide(res, AL_AUTH_ERROR, "no key database");

    pthread_mutex_lock(&kr->mu);
    al_auth_decision d = AL_AUTH_OK;
    sqlite3_stmt *s = NULL;
    int any = 0;
    if (sqlite3_prepare_v2(kr->db, "SELECT EXISTS(SELECT 1 FROM keys)", -1, &s, NULL) !=
            SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        d = decide(res, AL_AUTH_ERROR, "key database failed");
        goto out;
    }
    any = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (!any) {
        res->open = true;
        d = decide(res, AL_AUTH_OK, "no API keys defined");
        goto out;
    }

    const char *secret = authorization;
    if (secret && !strncasecmp(secret, "Bearer ", 7))
        secret = secret + 7;
    while (secret && *secret == ' ')
        secret++;
    if (!secret || !*secret) {
        d = decide(res, AL_AUTH_UNAUTHORIZED, "an API key is required (Authorization: Bearer ...)");
        goto out;
    }
    /* alk_<16 hex>_<64 hex> */
    size_t len = strlen(secret);
    char id[17] = "";
    bool shape = len == AL_APIKEY_SECRET_LEN && !strncmp(secret, "alk_", 4) && secret[20] == '_';
    if (shape) {
        memcpy(id, secret + 4, 16);
        id[16] = 0;
    }
    unsigned char salt[16] = {0}, want[32] = {0}, got[32];
    char scopes[128] = "", models[256] = "", name[65] = "";
    int64_t rpm = 0, tpm = 0, expires = 0;
    int revoked = 0;
    bool found = false;
    if (shape && sqlite3_prepare_v2(kr->db,
                                    "SELECT salt,hash,scopes,models,rpm,tpm,expires,revoked,name "
                                    "FROM keys WHERE id=?",
                                    -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 16 &&
            sqlite3_column_bytes(s, 1) == 32) {
            memcpy(salt, sqlite3_column_blob(s, 0), 16);
            memcpy(want, sqlite3_column_blob(s, 1), 32);
            copy_col(s, 2, scopes, sizeof(scopes));
            copy_col(s, 3, models, sizeof(models));
            rpm = sqlite3_column_int64(s, 4);
            tpm = sqlite3_column_int64(s, 5);
            expires = sqlite3_column_int64(s, 6);
            revoked = sqlite3_column_int(s, 7);
            copy_col(s, 8, name, sizeof(name));
            found = true;
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    /* hash even when the id is unknown, so both cost the same */
    salted_hash(salt, secret, len, got);
    bool match = CRYPTO_memcmp(got, want, 32) == 0;
    if (!found || !match) {
        d = decide(res, AL_AUTH_UNAUTHORIZED, "invalid API key");
        goto out;
    }
    snprintf(res->key_id, sizeof(res->key_id), "%s", id);
    snprintf(res->key_name, sizeof(res->key_name), "%s", name);
    snprintf(res->models, sizeof(res->models), "%s", models);
    if (revoked) {
        d = decide(res, AL_AUTH_UNAUTHORIZED, "this API key has been revoked");
        goto out;
    }
    if (expires && now_unix() >= expires) {
        d = decide(res, AL_AUTH_UNAUTHORIZED, "this API key has expired");
        goto out;
    }
    if (scope && !list_has(scopes, scope) && !list_has(scopes, "admin")) {
        char why[160];
        snprintf(why, sizeof(why), "this API key lacks the '%.32s' scope", scope);
        d = decide(res, AL_AUTH_FORBIDDEN, why);
        goto out;
    }
    if (model && !al_apikey_model_match(models, model)) {
        char why[160];
        snprintf(why, sizeof(why), "this API key may not use model '%.64s'", model);
        d = decide(res, AL_AUTH_FORBIDDEN, why);
        goto out;
    }
    rate_window *w = window_for(kr, id);
    if (!w) {
        d = decide(res, AL_AUTH_ERROR, "out of memory");
        goto out;
    }
    int64_t now = now_mono_s();
    uint64_t nreq;
    int64_t ntok, old_req, old_tok;
    window_sum(w, now, &nreq, &ntok, &old_req, &old_tok);
    if (rpm > 0 && nreq >= (uint64_t)rpm) {
        res->retry_after_s = (int)(old_req + WINDOW_S - now);
        if (res->retry_after_s < 1)
            res->retry_after_s = 1;
        d = decide(res, AL_AUTH_RATE_LIMITED, "request rate limit reached for this API key");
        goto out;
    }
    w->tpm = tpm;
    if (tpm > 0 && ntok + w->reserved >= tpm) {
        res->retry_after_s = retry_after(old_tok, ntok, now);
        char why[160];
        snprintf(why, sizeof(why), "token quota reached for this API key (%lld tokens per minute, "
                 "%lld used, %lld reserved)", (long long)tpm, (long long)ntok,
                 (long long)w->reserved);
        d = decide(res, AL_AUTH_RATE_LIMITED, why);
        goto out;
    }
    w->req[window_slot(w, now)]++;
    d = decide(res, AL_AUTH_OK, "ok");
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&kr->mu);
    return d;
}
