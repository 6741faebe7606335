/*
 * store_lifecycle.c - a model's life after import: approvals (named or
 * signed), reject, reopen, history, rm, gc, verify and export.
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

/* ------------------------------------------------------------ lifecycle */

/* A signed approval: who (pinned name), with which key, what was signed. */
typedef struct signed_approval {
    char person[65];
    char key_id[65];
    char msg[400];
    char sig_hex[2 * AL_SIG_BYTES + 1];
} signed_approval;

static al_status approve_impl(al_store *s, const char *ref, const char *person, const signed_approval *sa,
                              bool *published, int *n_approvals, al_error *err);

al_status al_store_approve(al_store *s, const char *ref, const char *person, bool *published, int *n_approvals,
                           al_error *err)
{
    return approve_impl(s, ref, person, NULL, published, n_approvals, err);
}

al_status al_store_approve_key(al_store *s, const char *ref, const char *priv_pem_path, char person_out[65],
                               bool *published, int *n_approvals, al_error *err)
{
    person_out[0] = 0;
    model_ref mr;
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    if (!row)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    al_status st = store_need_model(s, ref, &mr, &id, row, err);
    signed_approval sa;
    memset(&sa, 0, sizeof(sa));
    char at[40];
    store_now_rfc3339(at);
    if (!st) {
        /* what the approver signs: the model's content digest, the
         * decision and the time */
        snprintf(sa.msg, sizeof(sa.msg), "airlock-approval:v1:%s:%s:sha256:%s:approve:%s", row->name, row->tag,
                 row->digest, at);
        unsigned char sig[AL_SIG_BYTES];
        st = al_sign(priv_pem_path, sa.msg, strlen(sa.msg), sig, sa.key_id, err);
        if (!st)
            al_hex(sig, AL_SIG_BYTES, sa.sig_hex);
    }
    char pem[8192] = "";
    if (!st) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT name, pubkey FROM approvers WHERE key_id = ?", -1, &q, NULL) !=
            SQLITE_OK)
            st = store_db_err(s, err, "prepare");
        else {
            sqlite3_bind_text(q, 1, sa.key_id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) == SQLITE_ROW) {
                store_col_text(q, 0, sa.person, sizeof(sa.person));
                store_col_text(q, 1, pem, sizeof(pem));
            }
            sqlite3_finalize(q);
            if (!sa.person[0])
                st = al_err(err, AL_ERR_PERMISSION,
                            "%s: key %.16s... is not a pinned approver of this store (policy approvers=FILE)",
                            priv_pem_path, sa.key_id);
        }
    }
    if (!st) {
        unsigned char sig[AL_SIG_BYTES];
        for (int i = 0; i < AL_SIG_BYTES; i++) {
            unsigned v = 0;
            sscanf(sa.sig_hex + 2 * i, "%2x", &v);
            sig[i] = (unsigned char)v;
        }
        st = al_sign_verify(pem, sa.msg, strlen(sa.msg), sig, AL_SIG_BYTES, err);
    }
    free(row);
    if (st) {
        store_audit(s, sa.person[0] ? sa.person : "?", "approve", ref, NULL, st, err->msg);
        return st;
    }
    snprintf(person_out, 65, "%s", sa.person);
    return approve_impl(s, ref, sa.person, &sa, published, n_approvals, err);
}

static al_status approve_impl(al_store *s, const char *ref, const char *person, const signed_approval *sa,
                              bool *published, int *n_approvals, al_error *err)
{
    model_ref mr;
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    al_policy pol;
    al_status st = row ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    bool in_tx = false;
    if (!st && (st = store_exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = store_need_model(s, ref, &mr, &id, row, err);
    if (!st)
        st = al_store_policy_get(s, &pol, err);
    if (!st && !person[0])
        st = al_err(err, AL_ERR_ARG, "an approver must be named (--by)");
    if (!st && pol.n_approvers > 0 && !sa)
        st = al_err(err, AL_ERR_PERMISSION,
                    "approvals on this store are bound to keys (%d pinned approvers): approve with --key "
                    "YOUR-KEY.pem, not a name", pol.n_approvers);
    if (!st && !strcmp(row->state, "rejected"))
        st = al_err(err, AL_ERR_STATE, "%s is rejected and cannot be approved (re-import a fixed bundle)", ref);
    if (!st && pol.separate_importer && !strcmp(row->importer, person))
        st = al_err(err, AL_ERR_PERMISSION,
                    "%s imported %s:%s; the policy (separate-importer=true) needs a different approver", person,
                    row->name, row->tag);
    if (!st) {
        sqlite3_stmt *q = NULL;
        char at[40];
        store_now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO approvals(model_id, person, at) VALUES(?, ?, ?)", -1,
                               &q, NULL) != SQLITE_OK)
            st = store_db_err(s, err, "prepare");
        else {
            sqlite3_bind_int64(q, 1, id);
            sqlite3_bind_text(q, 2, person, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 3, at, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = store_db_err(s, err, "approve");
            sqlite3_finalize(q);
        }
        if (!st && sa) {
            if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO signed_approvals(model_id, person, key_id, msg, sig) "
                                          "VALUES(?, ?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK)
                st = store_db_err(s, err, "prepare");
            else {
                sqlite3_bind_int64(q, 1, id);
                sqlite3_bind_text(q, 2, sa->person, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 3, sa->key_id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 4, sa->msg, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 5, sa->sig_hex, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = store_db_err(s, err, "approve");
                sqlite3_finalize(q);
            }
        }
        int n = 0;
        /* with pinned approvers only approvals signed by a pinned key count
         * (one per key); otherwise one per distinct name */
        const char *count_sql = pol.n_approvers > 0
                                    ? "SELECT count(DISTINCT a.key_id) FROM signed_approvals a JOIN approvers p ON "
                                      "p.key_id = a.key_id WHERE a.model_id = ?"
                                    : "SELECT count(*) FROM approvals WHERE model_id = ?";
        if (!st && sqlite3_prepare_v2(s->db, count_sql, -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, id);
            if (sqlite3_step(q) == SQLITE_ROW)
                n = sqlite3_column_int(q, 0);
            sqlite3_finalize(q);
        }
        bool pub = !strcmp(row->state, "published");
        if (!st && !pub && n >= pol.approvals) {
            if (sqlite3_prepare_v2(s->db, "UPDATE models SET state = 'published', published_at = ? WHERE id = ?", -1,
                                   &q, NULL) != SQLITE_OK)
                st = store_db_err(s, err, "prepare");
            else {
                sqlite3_bind_text(q, 1, at, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(q, 2, id);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = store_db_err(s, err, "publish");
                sqlite3_finalize(q);
            }
            pub = true;
        }
        if (published)
            *published = pub;
        if (n_approvals)
            *n_approvals = n;
    }
    if (in_tx)
        st = store_end_tx(s, st, err);
    char r2[140];
    snprintf(r2, sizeof(r2), "%s:%s", row ? row->name : "", row ? row->tag : "");
    char adetail[600];
    if (sa)
        snprintf(adetail, sizeof(adetail), "approved; signed with pinned key %.16s...: %s", sa->key_id, sa->msg);
    else
        snprintf(adetail, sizeof(adetail), "approved (name only)");
    store_audit(s, person, "approve", id ? r2 : ref, id ? row->digest : NULL, st, st ? err->msg : adetail);
    if (!st && id)
        store_history_add(s, row->name, row->tag, row->digest, "approve", person,
                          published && *published ? "approved; published" : "approved");
    free(row);
    return st;
}

al_status al_store_reject(al_store *s, const char *ref, const char *person, const char *reason, al_error *err)
{
    model_ref mr;
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    al_status st = row ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    bool in_tx = false;
    if (!st && (st = store_exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = store_need_model(s, ref, &mr, &id, row, err);
    if (!st && (!reason || !reason[0]))
        st = al_err(err, AL_ERR_ARG, "a reason is needed (--reason)");
    if (!st) {
        sqlite3_stmt *q = NULL;
        char at[40];
        store_now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "UPDATE models SET state = 'rejected', rejected_by = ?, rejected_at = ?, "
                                      "reasons = ? WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
            st = store_db_err(s, err, "prepare");
        else {
            sqlite3_bind_text(q, 1, person, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 2, at, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 3, reason, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(q, 4, id);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = store_db_err(s, err, "reject");
            sqlite3_finalize(q);
        }
    }
    if (in_tx)
        st = store_end_tx(s, st, err);
    char detail[1200];
    snprintf(detail, sizeof(detail), "reason: %s", reason ? reason : "");
    store_audit(s, person, "reject", ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    if (!st && id)
        store_history_add(s, row->name, row->tag, row->digest, "reject", person, detail);
    free(row);
    return st;
}

al_status al_store_reopen(al_store *s, const char *ref, const char *person, const char *reason, al_error *err)
{
    model_ref mr;
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    al_status st = row ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    bool in_tx = false;
    if (!st && (!person || !person[0]))
        st = al_err(err, AL_ERR_ARG, "the person lifting the rejection must be named (--by)");
    if (!st && (st = store_exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = store_need_model(s, ref, &mr, &id, row, err);
    if (!st && strcmp(row->state, "rejected"))
        st = al_err(err, AL_ERR_STATE, "%s is %s, not rejected: nothing to reopen", ref, row->state);
    if (!st && !store_drop_rejected(s, row->name, row->tag))
        st = store_db_err(s, err, "reopen");
    if (in_tx)
        st = store_end_tx(s, st, err);
    if (!st)
        store_recover(s, NULL, NULL); /* deletes the rejected row's blobs nothing else uses */
    char detail[1400];
    snprintf(detail, sizeof(detail), "rejection by %s lifted (%.600s)%s%.500s: the bundle may be "
             "imported again", row ? row->rejected_by : "", row ? row->reasons : "",
             reason ? "; reason: " : "", reason ? reason : "");
    store_audit(s, person, "reopen", ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    if (!st && id)
        store_history_add(s, row->name, row->tag, row->digest, "reopen", person, detail);
    free(row);
    return st;
}

al_status al_store_history(al_store *s, const char *ref, char **text, al_error *err)
{
    *text = NULL;
    model_ref mr;
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    if (!row)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    al_status st = store_need_model(s, ref, &mr, &id, row, err);
    sqlite3_stmt *q = NULL;
    size_t len = 0, cap = 1024;
    char *t = st ? NULL : malloc(cap);
    if (!st && !t)
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
    if (!st && sqlite3_prepare_v2(s->db, "SELECT at, event, person, detail, digest FROM history WHERE "
                                         "name = ? AND tag = ? ORDER BY seq", -1, &q, NULL) != SQLITE_OK)
        st = store_db_err(s, err, "history");
    if (!st) {
        t[0] = 0;
        sqlite3_bind_text(q, 1, row->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, row->tag, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *c[5];
            for (int i = 0; i < 5; i++) {
                c[i] = (const char *)sqlite3_column_text(q, i);
                if (!c[i])
                    c[i] = "-";
            }
            size_t need = strlen(c[0]) + strlen(c[1]) + strlen(c[2]) + strlen(c[3]) + 40;
            if (len + need >= cap) {
                while (len + need >= cap)
                    cap *= 2;
                char *nt = realloc(t, cap);
                if (!nt) {
                    st = al_err(err, AL_ERR_NOMEM, "out of memory");
                    break;
                }
                t = nt;
            }
            bool dg = strcmp(c[4], "-") != 0;
            len += (size_t)snprintf(t + len, cap - len, "%s %-8s %s: %s%s%.12s%s\n", c[0], c[1], c[2],
                                    c[3], dg ? " (sha256:" : "", dg ? c[4] : "", dg ? ")" : "");
        }
        sqlite3_finalize(q);
    }
    free(row);
    if (st) {
        free(t);
        return st;
    }
    *text = t;
    return AL_OK;
}

al_status al_store_rm(al_store *s, const char *ref, const char *actor, al_error *err)
{
    model_ref mr;
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    char (*doomed)[65] = calloc(64, 65);
    size_t n_doomed = 0;
    al_status st = row && doomed ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    bool locked = false, in_tx = false;
    if (!st && (st = store_lock(s, err)) == AL_OK)
        locked = true;
    if (!st)
        st = store_recover(s, NULL, err);
    if (!st && (st = store_exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = store_need_model(s, ref, &mr, &id, row, err);
    if (!st) {
        /* blobs only this model references */
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT digest FROM refs r WHERE r.model_id = ?1 AND NOT EXISTS "
                                      "(SELECT 1 FROM refs o WHERE o.digest = r.digest AND o.model_id <> ?1)",
                               -1, &q, NULL) != SQLITE_OK)
            st = store_db_err(s, err, "prepare");
        else {
            sqlite3_bind_int64(q, 1, id);
            while (sqlite3_step(q) == SQLITE_ROW && n_doomed < 64)
                store_col_text(q, 0, doomed[n_doomed++], 65);
            sqlite3_finalize(q);
        }
        if (!st) {
            if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO journal(digest, op) VALUES(?, 'del')", -1, &q,
                                   NULL) != SQLITE_OK)
                st = store_db_err(s, err, "prepare");
            for (size_t i = 0; i < n_doomed && !st; i++) {
                sqlite3_reset(q);
                sqlite3_bind_text(q, 1, doomed[i], -1, SQLITE_TRANSIENT);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = store_db_err(s, err, "journal");
            }
            sqlite3_finalize(q);
        }
        if (!st) {
            if (sqlite3_prepare_v2(s->db, "DELETE FROM models WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
                st = store_db_err(s, err, "prepare");
            else {
                sqlite3_bind_int64(q, 1, id);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = store_db_err(s, err, "delete");
                sqlite3_finalize(q);
            }
        }
    }
    if (in_tx)
        st = store_end_tx(s, st, err);
    if (!st)
        st = store_recover(s, NULL, err); /* unlinks the journalled blobs */
    if (locked)
        store_unlock(s);
    char r2[140];
    snprintf(r2, sizeof(r2), "%s:%s", row ? row->name : "", row ? row->tag : "");
    char detail[64];
    snprintf(detail, sizeof(detail), "%zu blobs removed", n_doomed);
    store_audit(s, actor, "rm", id ? r2 : ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    free(doomed);
    free(row);
    return st;
}

al_status al_store_gc(al_store *s, const char *actor, uint64_t *n_blobs, uint64_t *n_bytes, al_error *err)
{
    uint64_t nb = 0, by = 0, rec = 0;
    al_status st = store_lock(s, err);
    if (st)
        goto out;
    if ((st = store_recover(s, &rec, err)))
        goto unlock;
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/blobs/sha256", s->dir);
    DIR *dir = opendir(d);
    if (!dir) {
        st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", d, strerror(errno));
        goto unlock;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (al_is_hex64(e->d_name) && store_is_referenced(s, e->d_name))
            continue;
        char p[PATH_MAX];
        struct stat sb;
        if (snprintf(p, sizeof(p), "%s/%s", d, e->d_name) >= (int)sizeof(p))
            continue;
        if (lstat(p, &sb) == 0 && unlink(p) == 0) {
            nb++;
            by += (uint64_t)sb.st_size;
        }
    }
    closedir(dir);
    st = al_fs_sync_dir(d, err);
unlock:
    store_unlock(s);
out:
    if (n_blobs)
        *n_blobs = nb;
    if (n_bytes)
        *n_bytes = by;
    char detail[128];
    snprintf(detail, sizeof(detail), "%llu blobs, %llu bytes removed; %llu journal entries recovered",
             (unsigned long long)nb, (unsigned long long)by, (unsigned long long)rec);
    store_audit(s, actor, "gc", NULL, NULL, st, st ? err->msg : detail);
    return st;
}

al_status al_store_generation(al_store *s, uint64_t *out, al_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "data_version");
    al_status st = AL_OK;
    if (sqlite3_step(q) == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(q, 0);
    else
        st = store_db_err(s, err, "data_version");
    sqlite3_finalize(q);
    return st;
}

al_status al_store_verify_blob(const char *path, const char *hex_digest, al_error *err)
{
    char hex[65];
    al_status st = al_sha256_file(path, hex, err);
    if (st)
        return st;
    if (strcmp(hex, hex_digest))
        return al_err(err, AL_ERR_CRYPTO, "%s: tampered: its sha256 is %s, expected %s", path, hex, hex_digest);
    return AL_OK;
}

al_status al_store_verify(al_store *s, FILE *out, al_verify_counts *c, const char *actor, al_error *err)
{
    memset(c, 0, sizeof(*c));
    al_status st = store_lock(s, err);
    if (st)
        goto out;
    if ((st = store_recover(s, &c->recovered, err)))
        goto unlock;
    if (c->recovered && out)
        fprintf(out, "recovered: %llu journal entries left by an interrupted operation\n",
                (unsigned long long)c->recovered);
    /* every referenced blob: present and intact */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT r.digest, m.name || ':' || m.tag FROM refs r JOIN models m ON "
                                  "m.id = r.model_id ORDER BY r.digest", -1, &q, NULL) != SQLITE_OK) {
        st = store_db_err(s, err, "prepare");
        goto unlock;
    }
    char last[65] = "";
    while (sqlite3_step(q) == SQLITE_ROW) {
        char hex[65], model[140], p[PATH_MAX];
        store_col_text(q, 0, hex, sizeof(hex));
        store_col_text(q, 1, model, sizeof(model));
        if (!strcmp(hex, last))
            continue;
        snprintf(last, sizeof(last), "%s", hex);
        store_blob_path(s, hex, p, sizeof(p));
        struct stat sb;
        if (lstat(p, &sb) != 0) {
            c->missing++;
            if (out)
                fprintf(out, "missing:  sha256:%s (%s)\n", hex, model);
            continue;
        }
        char got[65] = "";
        al_error e2;
        if (!S_ISREG(sb.st_mode) || al_sha256_file(p, got, &e2) || strcmp(got, hex)) {
            c->tampered++;
            if (out)
                fprintf(out, "tampered: sha256:%s (%s): content hashes to %s\n", hex, model,
                        got[0] ? got : "(unreadable)");
            continue;
        }
        c->ok++;
    }
    sqlite3_finalize(q);
    /* every file in blobs/: referenced */
    char d[PATH_MAX];
    snprintf(d, sizeof(d), "%s/blobs/sha256", s->dir);
    DIR *dir = opendir(d);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (al_is_hex64(e->d_name) && store_is_referenced(s, e->d_name))
                continue;
            c->stray++;
            if (out)
                fprintf(out, "stray:    %s (referenced by no model; airlock gc removes it)\n", e->d_name);
        }
        closedir(dir);
    }
    if (c->tampered || c->missing || c->stray)
        st = al_err(err, AL_ERR_CRYPTO, "store not clean: %llu tampered, %llu missing, %llu stray blobs",
                    (unsigned long long)c->tampered, (unsigned long long)c->missing, (unsigned long long)c->stray);
unlock:
    store_unlock(s);
out:;
    char detail[160];
    snprintf(detail, sizeof(detail), "%llu ok, %llu tampered, %llu missing, %llu stray, %llu recovered",
             (unsigned long long)c->ok, (unsigned long long)c->tampered, (unsigned long long)c->missing,
             (unsigned long long)c->stray, (unsigned long long)c->recovered);
    store_audit(s, actor, "verify", NULL, NULL, st, detail);
    return st;
}

/* What export and push share: ref must be a published model (verb says
 * what is refused otherwise); reads its bundle manifest's exact bytes
 * (*man) and its signature (*sig, at most 256 bytes), both re-hashed
 * against the catalogue, and parses the manifest into m. row and *id
 * receive the model's row. *man and *sig are malloc'd and the caller frees
 * them, on failure too. */
static al_status read_published(al_store *s, const char *ref, const char *verb, al_model_row *row, int64_t *id,
                                char **man, size_t *man_n, char **sig, size_t *sig_n, al_manifest *m, al_error *err)
{
    model_ref mr;
    char bm[65] = "", bs[65] = "", p[PATH_MAX];
    *man = *sig = NULL;
    *man_n = *sig_n = 0;
    al_status st = store_need_model(s, ref, &mr, id, row, err);
    if (!st && strcmp(row->state, "published"))
        st = al_err(err, AL_ERR_STATE, "%s is %s: only published models are %s", ref, row->state, verb);
    if (!st) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT bundle_manifest, bundle_sig FROM models WHERE id = ?", -1, &q, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_int64(q, 1, *id);
            if (sqlite3_step(q) == SQLITE_ROW) {
                store_col_text(q, 0, bm, sizeof(bm));
                store_col_text(q, 1, bs, sizeof(bs));
            }
        }
        sqlite3_finalize(q);
        if (!al_is_hex64(bm) || !al_is_hex64(bs))
            st = al_err(err, AL_ERR_DB, "catalogue: %s has no bundle manifest recorded", ref);
    }
    if (!st) {
        store_blob_path(s, bm, p, sizeof(p));
        st = al_fs_read_small(p, AL_MANIFEST_MAX_BYTES, man, man_n, err);
    }
    if (!st) {
        store_blob_path(s, bs, p, sizeof(p));
        st = al_fs_read_small(p, 256, sig, sig_n, err);
    }
    if (!st) {
        char h[65];
        al_sha256_hex(*man, *man_n, h);
        if (strcmp(h, bm))
            st = al_err(err, AL_ERR_CRYPTO, "the stored bundle manifest of %s is tampered", ref);
        al_sha256_hex(*sig, *sig_n, h);
        if (!st && strcmp(h, bs))
            st = al_err(err, AL_ERR_CRYPTO, "the stored signature of %s is tampered", ref);
    }
    if (!st)
        st = al_manifest_parse(*man, *man_n, m, err);
    return st;
}

al_status al_store_export(al_store *s, const char *ref, const char *out_path, const char *actor, al_error *err)
{
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    al_manifest *m = calloc(1, sizeof(*m));
    char *man = NULL, *sig = NULL;
    size_t man_n = 0, sig_n = 0;
    char (*paths)[PATH_MAX] = calloc(AL_BUNDLE_MAX_FILES, PATH_MAX);
    const char *pp[AL_BUNDLE_MAX_FILES];
    al_status st = row && m && paths ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    if (!st)
        st = read_published(s, ref, "exported", row, &id, &man, &man_n, &sig, &sig_n, m, err);
    for (size_t i = 0; !st && i < m->n_files; i++) {
        store_blob_path(s, m->files[i].sha256, paths[i], PATH_MAX);
        pp[i] = paths[i];
    }
    if (!st)
        st = al_bundle_write(out_path, man, man_n, (const unsigned char *)sig, sig_n, m, pp, err);
    char detail[PATH_MAX + 16];
    snprintf(detail, sizeof(detail), "to %s", out_path);
    store_audit(s, actor, "export", ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    free(man);
    free(sig);
    free(paths);
    free(m);
    free(row);
    return st;
}

al_status al_store_published_parts(al_store *s, const char *ref, char **manifest, size_t *manifest_n,
                                   unsigned char *sig, size_t *sig_n, al_manifest *m, char (*paths)[4096],
                                   al_error *err)
{
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    char *man = NULL, *sg = NULL;
    size_t man_n = 0, sg_n = 0;
    *manifest = NULL;
    *manifest_n = *sig_n = 0;
    al_status st = row ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    if (!st)
        st = read_published(s, ref, "pushed", row, &id, &man, &man_n, &sg, &sg_n, m, err);
    for (size_t i = 0; !st && i < m->n_files; i++)
        store_blob_path(s, m->files[i].sha256, paths[i], 4096);
    if (!st) {
        memcpy(sig, sg, sg_n);
        *sig_n = sg_n;
        *manifest = man;
        *manifest_n = man_n;
        man = NULL;
    }
    free(man);
    free(sg);
    free(row);
    return st;
}
