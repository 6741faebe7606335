/*
 * store_trust.c - the store's trusted publisher keys and its policy
 * (approvals needed, approvers, scans).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "store/sign.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/tar.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

/* ------------------------------------------------------------ trust */

al_status al_store_trust_add(al_store *s, const char *pub_pem_path, const char *name, const char *models_glob,
                             const char *actor, al_error *err)
{
    char *pem = NULL;
    size_t n = 0;
    char kid[65] = "";
    const char *glob = models_glob && models_glob[0] ? models_glob : "*";
    al_status st = AL_OK;
    if (!al_bundle_valid_tag(name))
        st = al_err(err, AL_ERR_ARG, "key name '%s' is not valid ([A-Za-z0-9][A-Za-z0-9._-]{0,63})", name);
    else if (strlen(glob) > 255)
        st = al_err(err, AL_ERR_ARG, "--models pattern too long");
    if (!st)
        st = al_fs_read_small(pub_pem_path, 64 * 1024, &pem, &n, err);
    if (!st && strstr(pem, "PRIVATE KEY"))
        st = al_err(err, AL_ERR_ARG, "%s is a private key: pin the public key (.pub.pem) only", pub_pem_path);
    if (!st && (st = al_sign_pubkey_id(pem, kid, err)))
        al_err_prefix(err, pub_pem_path);
    if (!st) {
        sqlite3_stmt *q = NULL;
        char at[40];
        store_now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "INSERT INTO trust(name, key_id, pubkey, models, added_at, added_by) "
                                      "VALUES(?, ?, ?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK) {
            st = store_db_err(s, err, "prepare");
        } else {
            sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 2, kid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 3, pem, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 4, glob, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 5, at, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 6, actor, -1, SQLITE_TRANSIENT);
            int rc = sqlite3_step(q);
            if (rc == SQLITE_CONSTRAINT)
                st = al_err(err, AL_ERR_STATE, "a trusted key named '%s' or with key id %.16s... already exists",
                            name, kid);
            else if (rc != SQLITE_DONE)
                st = store_db_err(s, err, "insert trust");
            sqlite3_finalize(q);
        }
    }
    free(pem);
    char detail[512];
    snprintf(detail, sizeof(detail), "key %s id %s models '%s'", name, kid, glob);
    store_audit(s, actor, "trust add", NULL, kid[0] ? kid : NULL, st, st ? err->msg : detail);
    return st;
}

al_status al_store_trust_rm(al_store *s, const char *name, const char *actor, al_error *err)
{
    sqlite3_stmt *q = NULL;
    al_status st = AL_OK;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM trust WHERE name = ?", -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = store_db_err(s, err, "delete trust");
    else if (sqlite3_changes(s->db) == 0)
        st = al_err(err, AL_ERR_NOT_FOUND, "no trusted key named '%s'", name);
    sqlite3_finalize(q);
    store_audit(s, actor, "trust rm", NULL, NULL, st, name);
    return st;
}

al_status al_store_trust_list(al_store *s, al_trust_key **out, size_t *n, al_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT name, key_id, models, added_at, added_by FROM trust ORDER BY name", -1,
                           &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    size_t cap = 0;
    al_status st = AL_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            al_trust_key *t = realloc(*out, cap * sizeof(**out));
            if (!t) {
                st = al_err(err, AL_ERR_NOMEM, "out of memory");
                break;
            }
            *out = t;
        }
        al_trust_key *k = &(*out)[(*n)++];
        store_col_text(q, 0, k->name, sizeof(k->name));
        store_col_text(q, 1, k->key_id, sizeof(k->key_id));
        store_col_text(q, 2, k->models, sizeof(k->models));
        store_col_text(q, 3, k->added_at, sizeof(k->added_at));
        store_col_text(q, 4, k->added_by, sizeof(k->added_by));
    }
    if (!st && rc != SQLITE_DONE)
        st = store_db_err(s, err, "list trust");
    sqlite3_finalize(q);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

/* ------------------------------------------------------------ policy */

al_status al_store_policy_get(al_store *s, al_policy *p, al_error *err)
{
    p->approvals = 1;
    p->separate_importer = false;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT key, value FROM policy", -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(q, 0);
        const char *v = (const char *)sqlite3_column_text(q, 1);
        if (!k || !v)
            continue;
        if (!strcmp(k, "approvals")) {
            int n = atoi(v);
            p->approvals = n >= 1 ? n : 1;
        }
        else if (!strcmp(k, "separate-importer"))
            p->separate_importer = !strcmp(v, "true");
    }
    sqlite3_finalize(q);
    p->n_approvers = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM approvers", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW)
            p->n_approvers = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    return AL_OK;
}

/* policy set approvers=FILE: FILE has one "NAME PUBLIC-KEY.pem" per line
 * (paths relative to FILE's directory; '#' comments). The keys are pinned
 * (copied into the catalogue) at once; "none" unpins them all. */
static al_status set_approvers(al_store *s, const char *file, char *summary, size_t cap, al_error *err)
{
    summary[0] = 0;
    if (store_exec(s, "BEGIN IMMEDIATE", err))
        return AL_ERR_IO;
    al_status st = store_exec(s, "DELETE FROM approvers", err);
    FILE *f = NULL;
    if (!st && strcmp(file, "none") != 0) {
        f = fopen(file, "re");
        if (!f)
            st = al_err(err, AL_ERR_IO, "approvers=%s: cannot open: %s", file, strerror(errno));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    char line[1200];
    int lineno = 0, n = 0;
    size_t used = 0;
    while (!st && f && fgets(line, sizeof(line), f)) {
        lineno++;
        char name[65], kp[1024];
        char *h = strchr(line, '#');
        if (h)
            *h = 0;
        int got = sscanf(line, "%64s %1023s", name, kp);
        if (got <= 0)
            continue;
        if (got != 2) {
            st = al_err(err, AL_ERR_FORMAT, "%s line %d: expected NAME PUBLIC-KEY.pem", file, lineno);
            break;
        }
        char path[PATH_MAX + 1100];
        snprintf(path, sizeof(path), "%s%s", kp[0] == '/' ? "" : dir, kp);
        char pem[8192];
        FILE *pf = fopen(path, "re");
        size_t pn = pf ? fread(pem, 1, sizeof(pem) - 1, pf) : 0;
        if (pf)
            fclose(pf);
        pem[pn] = 0;
        char kid[65];
        if (!pn) {
            st = al_err(err, AL_ERR_IO, "%s line %d: cannot read %s", file, lineno, path);
            break;
        }
        if (strstr(pem, "PRIVATE KEY")) {
            st = al_err(err, AL_ERR_ARG, "%s line %d: %s is a private key; pin the public key", file,
                        lineno, path);
            break;
        }
        if ((st = al_sign_pubkey_id(pem, kid, err)))
            break;
        sqlite3_stmt *q = NULL;
        char at[40];
        store_now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "INSERT INTO approvers(name, key_id, pubkey, added_at) VALUES(?, ?, ?, ?)",
                               -1, &q, NULL) != SQLITE_OK) {
            st = store_db_err(s, err, "prepare");
            break;
        }
        sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, kid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, pem, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 4, at, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(q);
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE) {
            st = al_err(err, AL_ERR_ARG, "%s line %d: approver '%s' or its key (%.16s...) is listed twice",
                        file, lineno, name, kid);
            break;
        }
        n++;
        if (used + 100 < cap)
            used += (size_t)snprintf(summary + used, cap - used, "%s%s=%.16s", n > 1 ? ", " : "", name, kid);
    }
    if (f)
        fclose(f);
    if (!st && f && n == 0)
        st = al_err(err, AL_ERR_ARG, "%s: no approver listed (use approvers=none to unpin)", file);
    return store_end_tx(s, st, err);
}

al_status al_store_policy_set(al_store *s, const char *key, const char *value, const char *actor, al_error *err)
{
    al_status st = AL_OK;
    char v[16];
    if (!strcmp(key, "approvals")) {
        char *end = NULL;
        long n = strtol(value, &end, 10);
        if (!value[0] || *end || n < 1 || n > 16)
            st = al_err(err, AL_ERR_ARG, "approvals must be an integer 1..16, not '%s'", value);
        snprintf(v, sizeof(v), "%ld", n);
    } else if (!strcmp(key, "separate-importer")) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            st = al_err(err, AL_ERR_ARG, "separate-importer must be true or false, not '%s'", value);
        snprintf(v, sizeof(v), "%s", value);
    } else if (!strcmp(key, "approvers")) {
        char summary[1024];
        st = set_approvers(s, value, summary, sizeof(summary), err);
        char detail[1400];
        snprintf(detail, sizeof(detail), "approvers=%.200s: %s", value,
                 st ? err->msg : summary[0] ? summary : "none pinned (name-only approvals)");
        store_audit(s, actor, "policy set", NULL, NULL, st, detail);
        return st;
    } else {
        st = al_err(err, AL_ERR_ARG, "unknown policy key '%s' (approvals, separate-importer, approvers)", key);
    }
    if (!st) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO policy(key, value) VALUES(?, ?)", -1, &q, NULL) !=
            SQLITE_OK)
            st = store_db_err(s, err, "prepare");
        else {
            sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 2, v, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = store_db_err(s, err, "set policy");
            sqlite3_finalize(q);
        }
    }
    char detail[128];
    snprintf(detail, sizeof(detail), "%s=%s", key, value);
    store_audit(s, actor, "policy set", NULL, NULL, st, detail);
    return st;
}
