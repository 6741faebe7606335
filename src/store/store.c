/*
 * store.c - the store and its catalogue (see store.h): opening it (schema,
 * lock, recovery), the catalogue's helpers, model references and queries.
 * The rest of the store is in the files store_int.h lists.
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

/* ------------------------------------------------------------ helpers */

void store_now_rfc3339(char out[40])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *al_store_default_dir(void)
{
    const char *e = getenv("AIRLOCK_STORE");
    return (e && e[0]) ? e : "./var/airlock";
}

const char *al_store_default_actor(void)
{
    static char buf[65];
    const char *e = getenv("AIRLOCK_USER");
    if (!e || !e[0])
        e = getenv("USER");
    if (e && e[0]) {
        snprintf(buf, sizeof(buf), "%s", e);
        return buf;
    }
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name)
        snprintf(buf, sizeof(buf), "%s", pw->pw_name);
    else
        snprintf(buf, sizeof(buf), "uid%ld", (long)getuid());
    return buf;
}

/* Records one store action in the audit log (one call per action). */
void store_audit(al_store *s, const char *actor, const char *action, const char *model, const char *digest,
                 al_status st, const char *detail)
{
    if (!s->audit)
        return;
    al_audit_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.actor = actor;
    ev.client = "cli";
    ev.action = action;
    ev.model = model;
    ev.digest = digest;
    ev.prompt_tokens = -1;
    ev.completion_tokens = -1;
    ev.status = st == AL_OK ? 0 : 1;
    ev.detail = detail;
    al_error e;
    if (al_audit_append(s->audit, &ev, &e))
        fprintf(stderr, "airlock: warning: audit log: %s\n", e.msg);
}

al_status store_db_err(al_store *s, al_error *err, const char *what)
{
    return al_err(err, AL_ERR_DB, "catalogue: %s: %s", what, sqlite3_errmsg(s->db));
}

al_status store_exec(al_store *s, const char *sql, al_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        al_status st = al_err(err, AL_ERR_DB, "catalogue: %s (%s)", msg ? msg : "error", sql);
        sqlite3_free(msg);
        return st;
    }
    return AL_OK;
}

void store_rollback(al_store *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Ends an open transaction: commits when st is AL_OK, rolls back otherwise.
 * Returns st, or the COMMIT's failure. */
al_status store_end_tx(al_store *s, al_status st, al_error *err)
{
    if (st) {
        store_rollback(s);
        return st;
    }
    return store_exec(s, "COMMIT", err);
}

void store_col_text(sqlite3_stmt *q, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

void store_blob_path(const al_store *s, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs/sha256/%s", s->dir, hex);
}

/* Store-wide lock around adding and removing blobs. */
al_status store_lock(al_store *s, al_error *err)
{
    while (flock(s->lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR)
            return al_err(err, AL_ERR_IO, "%s/lock: flock failed: %s", s->dir, strerror(errno));
    }
    return AL_OK;
}

void store_unlock(al_store *s)
{
    flock(s->lock_fd, LOCK_UN);
}

void al_scan_report_add(al_scan_report *r, bool ok, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(line, sizeof(line), "%s ", ok ? "ok  " : "FAIL");
    vsnprintf(line + k, sizeof(line) - (size_t)k, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    if (r->len + n + 2 > r->cap) {
        size_t nc = (r->cap ? r->cap * 2 : 1024) + n + 2;
        if (nc > (1u << 22))
            return; /* bounded report; further lines are dropped */
        char *t = realloc(r->text, nc);
        if (!t)
            return;
        r->text = t;
        r->cap = nc;
    }
    memcpy(r->text + r->len, line, n);
    r->text[r->len + n] = '\n';
    r->len += n + 1;
    r->text[r->len] = 0;
    if (!ok)
        r->n_fail++;
}

void al_scan_report_free(al_scan_report *r)
{
    if (!r)
        return;
    free(r->text);
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------ open */

static const char *k_schema =
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS models("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, tag TEXT NOT NULL, state TEXT NOT NULL,"
    " digest TEXT, model_digest TEXT, model_size INTEGER, bundle_manifest TEXT, bundle_sig TEXT,"
    " signer TEXT, key_id TEXT, source TEXT, created TEXT, importer TEXT, imported_at TEXT,"
    " published_at TEXT, rejected_by TEXT, rejected_at TEXT, reasons TEXT, scan_report TEXT,"
    " UNIQUE(name, tag));"
    "CREATE TABLE IF NOT EXISTS refs(model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " digest TEXT NOT NULL, role TEXT NOT NULL, name TEXT, size INTEGER, PRIMARY KEY(model_id, role, digest));"
    "CREATE INDEX IF NOT EXISTS refs_digest ON refs(digest);"
    "CREATE TABLE IF NOT EXISTS approvals(model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " person TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY(model_id, person));"
    "CREATE TABLE IF NOT EXISTS trust(name TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, pubkey TEXT NOT NULL,"
    " models TEXT NOT NULL, added_at TEXT NOT NULL, added_by TEXT);"
    "CREATE TABLE IF NOT EXISTS policy(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal(digest TEXT PRIMARY KEY, op TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS approvers(name TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE,"
    " pubkey TEXT NOT NULL, added_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS signed_approvals(model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " person TEXT NOT NULL, key_id TEXT NOT NULL, msg TEXT NOT NULL, sig TEXT NOT NULL,"
    " PRIMARY KEY(model_id, key_id));"
    "CREATE TABLE IF NOT EXISTS history(seq INTEGER PRIMARY KEY, name TEXT NOT NULL, tag TEXT NOT NULL,"
    " digest TEXT, at TEXT NOT NULL, event TEXT NOT NULL, person TEXT, detail TEXT);";

al_status al_store_open(const char *dir, al_store **out, al_error *err)
{
    *out = NULL;
    al_store *s = calloc(1, sizeof(*s));
    if (!s)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    s->lock_fd = -1;
    al_status st = AL_OK;
    char p[PATH_MAX];
    if (strlen(dir) >= sizeof(s->dir)) {
        st = al_err(err, AL_ERR_ARG, "store path too long");
        goto fail;
    }
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(p, sizeof(p), "%s/catalogue.db", dir);
    /* a store this process cannot write (read-only mount, another owner):
     * open it for reading only, so that list, show and verify work */
    s->readonly = access(p, F_OK) == 0 && (access(dir, W_OK) != 0 || access(p, W_OK) != 0);
    if (s->readonly) {
        snprintf(p, sizeof(p), "%s/lock", dir);
        s->lock_fd = open(p, O_RDONLY | O_CLOEXEC);
        if (s->lock_fd < 0) {
            st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
            goto fail;
        }
        /* immutable=1: no -wal/-shm files can be made in a read-only
         * directory; a writer elsewhere is not expected at the same time */
        char uri[PATH_MAX + 64];
        snprintf(uri, sizeof(uri), "file:%s/catalogue.db?mode=ro&immutable=1", dir);
        if (sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX, NULL) !=
            SQLITE_OK) {
            st = al_err(err, AL_ERR_DB, "%s/catalogue.db: cannot open the catalogue read-only: %s", dir,
                        s->db ? sqlite3_errmsg(s->db) : "?");
            goto fail;
        }
        *out = s;
        return AL_OK;
    }
    snprintf(p, sizeof(p), "%s/blobs/sha256", dir);
    if ((st = al_fs_mkdirs(p, 0755, err)))
        goto fail;
    snprintf(p, sizeof(p), "%s/tmp", dir);
    if ((st = al_fs_mkdirs(p, 0700, err)))
        goto fail;
    snprintf(p, sizeof(p), "%s/oci-layout", dir);
    if (access(p, F_OK) != 0) {
        const char *lay = "{\"imageLayoutVersion\": \"1.0.0\"}\n";
        if ((st = al_fs_write_atomic(p, lay, strlen(lay), 0644, err)))
            goto fail;
    }
    snprintf(p, sizeof(p), "%s/lock", dir);
    s->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
        goto fail;
    }
    snprintf(p, sizeof(p), "%s/catalogue.db", dir);
    if (sqlite3_open_v2(p, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        st = al_err(err, AL_ERR_DB, "%s: cannot open the catalogue: %s", p, s->db ? sqlite3_errmsg(s->db) : "?");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 60000);
    /* WAL + FULL sync: a committed transaction survives a crash. */
    if ((st = store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err)) ||
        (st = store_exec(s, k_schema, err)))
        goto fail;
    snprintf(p, sizeof(p), "%s/audit", dir);
    al_error ae;
    if (al_audit_open(p, &s->audit, &ae)) {
        fprintf(stderr, "airlock: warning: cannot open the audit log: %s\n", ae.msg);
        s->audit = NULL;
    } else if (al_audit_open_problem(s->audit)) {
        fprintf(stderr, "airlock: WARNING: the audit log was tampered with: %s (recorded in the "
                "log; see 'airlock audit verify')\n", al_audit_open_problem(s->audit));
    }
    *out = s;
    return AL_OK;
fail:
    al_store_close(s);
    return st;
}

void al_store_close(al_store *s)
{
    if (!s)
        return;
    if (s->db)
        sqlite3_close(s->db);
    al_audit_close(s->audit);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}

const char *al_store_dir(const al_store *s)
{
    return s->dir;
}

/* ------------------------------------------------------------ refs */

static al_status parse_ref(const char *ref, model_ref *r, al_error *err)
{
    memset(r, 0, sizeof(*r));
    const char *at = strchr(ref, '@');
    const char *colon = strchr(ref, ':');
    size_t nl;
    if (at) {
        nl = (size_t)(at - ref);
        if (strncmp(at + 1, "sha256:", 7) || !al_is_hex64(at + 8))
            return al_err(err, AL_ERR_ARG, "'%s': a pinned reference is name@sha256:<64 hex digits>", ref);
        memcpy(r->digest, at + 8, 65);
    } else if (colon) {
        nl = (size_t)(colon - ref);
        if (strlen(colon + 1) >= sizeof(r->tag))
            return al_err(err, AL_ERR_ARG, "'%s': tag too long", ref);
        snprintf(r->tag, sizeof(r->tag), "%s", colon + 1);
    } else {
        nl = strlen(ref);
        snprintf(r->tag, sizeof(r->tag), "latest");
    }
    if (nl >= sizeof(r->name))
        return al_err(err, AL_ERR_ARG, "'%s': name too long", ref);
    memcpy(r->name, ref, nl);
    r->name[nl] = 0;
    if (!al_bundle_valid_name(r->name))
        return al_err(err, AL_ERR_ARG, "'%s': '%s' is not a valid model name", ref, r->name);
    if (!r->digest[0] && !al_bundle_valid_tag(r->tag))
        return al_err(err, AL_ERR_ARG, "'%s': '%s' is not a valid tag", ref, r->tag);
    return AL_OK;
}

#define ROW_COLS                                                                                              \
    "m.id, m.name, m.tag, m.state, m.digest, m.model_digest, m.model_size, m.signer, m.key_id, m.source,"   \
    " m.created, m.importer, m.imported_at, m.published_at, m.rejected_by, m.reasons,"                       \
    " (SELECT group_concat(person, ', ') FROM (SELECT person FROM approvals a WHERE a.model_id = m.id"       \
    " ORDER BY at, person)), (SELECT count(*) FROM approvals a WHERE a.model_id = m.id), m.scan_report"

static int64_t read_row(sqlite3_stmt *q, al_model_row *r)
{
    memset(r, 0, sizeof(*r));
    int64_t id = sqlite3_column_int64(q, 0);
    store_col_text(q, 1, r->name, sizeof(r->name));
    store_col_text(q, 2, r->tag, sizeof(r->tag));
    store_col_text(q, 3, r->state, sizeof(r->state));
    store_col_text(q, 4, r->digest, sizeof(r->digest));
    store_col_text(q, 5, r->model_digest, sizeof(r->model_digest));
    r->model_size = (uint64_t)sqlite3_column_int64(q, 6);
    store_col_text(q, 7, r->signer, sizeof(r->signer));
    store_col_text(q, 8, r->key_id, sizeof(r->key_id));
    store_col_text(q, 9, r->source, sizeof(r->source));
    store_col_text(q, 10, r->created, sizeof(r->created));
    store_col_text(q, 11, r->importer, sizeof(r->importer));
    store_col_text(q, 12, r->imported_at, sizeof(r->imported_at));
    store_col_text(q, 13, r->published_at, sizeof(r->published_at));
    store_col_text(q, 14, r->rejected_by, sizeof(r->rejected_by));
    store_col_text(q, 15, r->reasons, sizeof(r->reasons));
    store_col_text(q, 16, r->approvers, sizeof(r->approvers));
    r->n_approvals = sqlite3_column_int(q, 17);
    return id;
}

/* Finds a model by ref; *id = 0 when absent. */
al_status store_find_model(al_store *s, const model_ref *mr, int64_t *id, al_model_row *row, char **scan,
                           al_error *err)
{
    *id = 0;
    sqlite3_stmt *q = NULL;
    const char *sql = mr->digest[0]
                          ? "SELECT " ROW_COLS " FROM models m WHERE m.name = ?1 AND (m.digest = ?2 OR "
                            "m.model_digest = ?2) ORDER BY m.state = 'published' DESC LIMIT 1"
                          : "SELECT " ROW_COLS " FROM models m WHERE m.name = ?1 AND m.tag = ?2";
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    sqlite3_bind_text(q, 1, mr->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, mr->digest[0] ? mr->digest : mr->tag, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    al_status st = AL_OK;
    if (rc == SQLITE_ROW) {
        al_model_row tmp;
        *id = read_row(q, row ? row : &tmp);
        if (scan) {
            const unsigned char *t = sqlite3_column_text(q, 18);
            *scan = strdup(t ? (const char *)t : "");
        }
    } else if (rc != SQLITE_DONE) {
        st = store_db_err(s, err, "lookup");
    }
    sqlite3_finalize(q);
    return st;
}

al_status store_need_model(al_store *s, const char *ref, model_ref *mr, int64_t *id, al_model_row *row,
                           al_error *err)
{
    al_status st = parse_ref(ref, mr, err);
    if (st)
        return st;
    if ((st = store_find_model(s, mr, id, row, NULL, err)))
        return st;
    if (!*id)
        return al_err(err, AL_ERR_NOT_FOUND, "model '%s' is not in the store", ref);
    return AL_OK;
}

/* ------------------------------------------------------------ queries */

al_status al_store_list(al_store *s, const char *state_filter, al_model_row **out, size_t *n, al_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    const char *sql = state_filter ? "SELECT " ROW_COLS " FROM models m WHERE m.state = ? ORDER BY m.name, m.tag"
                                   : "SELECT " ROW_COLS " FROM models m ORDER BY m.name, m.tag";
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    if (state_filter)
        sqlite3_bind_text(q, 1, state_filter, -1, SQLITE_TRANSIENT);
    size_t cap = 0;
    al_status st = AL_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            al_model_row *t = realloc(*out, cap * sizeof(**out));
            if (!t) {
                st = al_err(err, AL_ERR_NOMEM, "out of memory");
                break;
            }
            *out = t;
        }
        read_row(q, &(*out)[(*n)++]);
    }
    if (!st && rc != SQLITE_DONE)
        st = store_db_err(s, err, "list");
    sqlite3_finalize(q);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

al_status al_store_list_published(al_store *s, al_model_row **out, size_t *n, al_error *err)
{
    return al_store_list(s, "published", out, n, err);
}

al_status al_store_show(al_store *s, const char *ref, al_model_row *out, char **scan_report, al_error *err)
{
    model_ref mr;
    int64_t id = 0;
    al_status st = parse_ref(ref, &mr, err);
    if (st)
        return st;
    if ((st = store_find_model(s, &mr, &id, out, scan_report, err)))
        return st;
    if (!id)
        return al_err(err, AL_ERR_NOT_FOUND, "model '%s' is not in the store", ref);
    return AL_OK;
}

al_status al_store_resolve(al_store *s, const char *ref, char *path_out, size_t cap, char *digest_out,
                           al_error *err)
{
    al_model_row *row = calloc(1, sizeof(*row));
    if (!row)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    model_ref mr;
    int64_t id = 0;
    al_status st = parse_ref(ref, &mr, err);
    if (!st)
        st = store_find_model(s, &mr, &id, row, NULL, err);
    if (!st && !id)
        st = al_err(err, AL_ERR_NOT_FOUND, "model '%s' is not in the store", ref);
    if (!st && strcmp(row->state, "published"))
        st = al_err(err, AL_ERR_STATE, "model '%s' is %s, not published", ref, row->state);
    if (!st) {
        char p[PATH_MAX];
        store_blob_path(s, row->model_digest, p, sizeof(p));
        if ((size_t)snprintf(path_out, cap, "%s", p) >= cap)
            st = al_err(err, AL_ERR_LIMIT, "path buffer too small");
        if (digest_out)
            memcpy(digest_out, row->model_digest, 65);
    }
    free(row);
    return st;
}
