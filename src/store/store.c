/* store.c - catalogue, blobs and the model lifecycle (see store.h). */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "audit/audit.h"
#include "store/sign.h"
#include "store/tar.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

#define COPY_BUF_BYTES (1u << 20)
#define MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_CONFIG "application/vnd.airlock.model.config.v1+json"
#define MEDIA_GGUF "application/vnd.airlock.model.gguf.v1"
#define MEDIA_LICENSE "application/vnd.airlock.license.v1+text"
#define MEDIA_FILE "application/vnd.airlock.file.v1"
#define MEDIA_BUNDLE_MANIFEST "application/vnd.airlock.bundle.manifest.v1+json"
#define MEDIA_BUNDLE_SIG "application/vnd.airlock.bundle.signature.v1+ed25519"

struct al_store {
    char dir[PATH_MAX - 256];
    sqlite3 *db;
    al_audit *audit; /* may be NULL when the log cannot be opened */
    int lock_fd;     /* the store's lock file */
    bool readonly;   /* the store cannot be written here: list, show, verify only */
};

/* ------------------------------------------------------------ helpers */

static void now_rfc3339(char out[40])
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
static void audit(al_store *s, const char *actor, const char *action, const char *model, const char *digest,
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

static al_status db_err(al_store *s, al_error *err, const char *what)
{
    return al_err(err, AL_ERR_DB, "catalogue: %s: %s", what, sqlite3_errmsg(s->db));
}

static al_status exec(al_store *s, const char *sql, al_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        al_status st = al_err(err, AL_ERR_DB, "catalogue: %s (%s)", msg ? msg : "error", sql);
        sqlite3_free(msg);
        return st;
    }
    return AL_OK;
}

static void rollback(al_store *s)
{
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Ends an open transaction: commits when st is AL_OK, rolls back otherwise.
 * Returns st, or the COMMIT's failure. */
static al_status end_tx(al_store *s, al_status st, al_error *err)
{
    if (st) {
        rollback(s);
        return st;
    }
    return exec(s, "COMMIT", err);
}

static void col_text(sqlite3_stmt *q, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void blob_path(const al_store *s, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs/sha256/%s", s->dir, hex);
}

/* Store-wide lock around adding and removing blobs. */
static al_status lock_store(al_store *s, al_error *err)
{
    while (flock(s->lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR)
            return al_err(err, AL_ERR_IO, "%s/lock: flock failed: %s", s->dir, strerror(errno));
    }
    return AL_OK;
}

static void unlock_store(al_store *s)
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
    if ((st = exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err)) ||
        (st = exec(s, k_schema, err)))
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

typedef struct model_ref {
    char name[65];
    char tag[65];
    char digest[65]; /* set for name@sha256:... */
} model_ref;

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
    col_text(q, 1, r->name, sizeof(r->name));
    col_text(q, 2, r->tag, sizeof(r->tag));
    col_text(q, 3, r->state, sizeof(r->state));
    col_text(q, 4, r->digest, sizeof(r->digest));
    col_text(q, 5, r->model_digest, sizeof(r->model_digest));
    r->model_size = (uint64_t)sqlite3_column_int64(q, 6);
    col_text(q, 7, r->signer, sizeof(r->signer));
    col_text(q, 8, r->key_id, sizeof(r->key_id));
    col_text(q, 9, r->source, sizeof(r->source));
    col_text(q, 10, r->created, sizeof(r->created));
    col_text(q, 11, r->importer, sizeof(r->importer));
    col_text(q, 12, r->imported_at, sizeof(r->imported_at));
    col_text(q, 13, r->published_at, sizeof(r->published_at));
    col_text(q, 14, r->rejected_by, sizeof(r->rejected_by));
    col_text(q, 15, r->reasons, sizeof(r->reasons));
    col_text(q, 16, r->approvers, sizeof(r->approvers));
    r->n_approvals = sqlite3_column_int(q, 17);
    return id;
}

/* Finds a model by ref; *id = 0 when absent. */
static al_status find_model(al_store *s, const model_ref *mr, int64_t *id, al_model_row *row, char **scan,
                            al_error *err)
{
    *id = 0;
    sqlite3_stmt *q = NULL;
    const char *sql = mr->digest[0]
                          ? "SELECT " ROW_COLS " FROM models m WHERE m.name = ?1 AND (m.digest = ?2 OR "
                            "m.model_digest = ?2) ORDER BY m.state = 'published' DESC LIMIT 1"
                          : "SELECT " ROW_COLS " FROM models m WHERE m.name = ?1 AND m.tag = ?2";
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
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
        st = db_err(s, err, "lookup");
    }
    sqlite3_finalize(q);
    return st;
}

static al_status need_model(al_store *s, const char *ref, model_ref *mr, int64_t *id, al_model_row *row,
                            al_error *err)
{
    al_status st = parse_ref(ref, mr, err);
    if (st)
        return st;
    if ((st = find_model(s, mr, id, row, NULL, err)))
        return st;
    if (!*id)
        return al_err(err, AL_ERR_NOT_FOUND, "model '%s' is not in the store", ref);
    return AL_OK;
}

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
        now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "INSERT INTO trust(name, key_id, pubkey, models, added_at, added_by) "
                                      "VALUES(?, ?, ?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK) {
            st = db_err(s, err, "prepare");
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
                st = db_err(s, err, "insert trust");
            sqlite3_finalize(q);
        }
    }
    free(pem);
    char detail[512];
    snprintf(detail, sizeof(detail), "key %s id %s models '%s'", name, kid, glob);
    audit(s, actor, "trust add", NULL, kid[0] ? kid : NULL, st, st ? err->msg : detail);
    return st;
}

al_status al_store_trust_rm(al_store *s, const char *name, const char *actor, al_error *err)
{
    sqlite3_stmt *q = NULL;
    al_status st = AL_OK;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM trust WHERE name = ?", -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = db_err(s, err, "delete trust");
    else if (sqlite3_changes(s->db) == 0)
        st = al_err(err, AL_ERR_NOT_FOUND, "no trusted key named '%s'", name);
    sqlite3_finalize(q);
    audit(s, actor, "trust rm", NULL, NULL, st, name);
    return st;
}

al_status al_store_trust_list(al_store *s, al_trust_key **out, size_t *n, al_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT name, key_id, models, added_at, added_by FROM trust ORDER BY name", -1,
                           &q, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
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
        col_text(q, 0, k->name, sizeof(k->name));
        col_text(q, 1, k->key_id, sizeof(k->key_id));
        col_text(q, 2, k->models, sizeof(k->models));
        col_text(q, 3, k->added_at, sizeof(k->added_at));
        col_text(q, 4, k->added_by, sizeof(k->added_by));
    }
    if (!st && rc != SQLITE_DONE)
        st = db_err(s, err, "list trust");
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
        return db_err(s, err, "prepare");
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
    if (exec(s, "BEGIN IMMEDIATE", err))
        return AL_ERR_IO;
    al_status st = exec(s, "DELETE FROM approvers", err);
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
        now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "INSERT INTO approvers(name, key_id, pubkey, added_at) VALUES(?, ?, ?, ?)",
                               -1, &q, NULL) != SQLITE_OK) {
            st = db_err(s, err, "prepare");
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
    return end_tx(s, st, err);
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
        audit(s, actor, "policy set", NULL, NULL, st, detail);
        return st;
    } else {
        st = al_err(err, AL_ERR_ARG, "unknown policy key '%s' (approvals, separate-importer, approvers)", key);
    }
    if (!st) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO policy(key, value) VALUES(?, ?)", -1, &q, NULL) !=
            SQLITE_OK)
            st = db_err(s, err, "prepare");
        else {
            sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 2, v, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = db_err(s, err, "set policy");
            sqlite3_finalize(q);
        }
    }
    char detail[128];
    snprintf(detail, sizeof(detail), "%s=%s", key, value);
    audit(s, actor, "policy set", NULL, NULL, st, detail);
    return st;
}

/* ------------------------------------------------------------ recovery */

static bool is_referenced(al_store *s, const char *hex)
{
    sqlite3_stmt *q = NULL;
    bool yes = true; /* on error, keep the blob */
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM refs WHERE digest = ? LIMIT 1", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, hex, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(q);
        yes = rc == SQLITE_ROW || rc != SQLITE_DONE;
    }
    sqlite3_finalize(q);
    return yes;
}

/* Removes tmp/ directories no live process holds (each import flocks its
 * own directory). */
static void clean_tmp(al_store *s)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/tmp", s->dir);
    DIR *d = opendir(p);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof(sub), "%s/%s", p, e->d_name) >= (int)sizeof(sub))
            continue;
        int fd = open(sub, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            al_fs_rmtree(sub);
        close(fd);
    }
    closedir(d);
}

/* Finishes what a killed process left: journalled blobs that nothing
 * references are deleted, then the journal is emptied. Caller holds the
 * store lock. *n (may be NULL) counts entries handled. */
static al_status recover(al_store *s, uint64_t *n, al_error *err)
{
    if (s->readonly) /* nothing can be repaired here; reads see committed state */
        return AL_OK;
    sqlite3_stmt *q = NULL;
    uint64_t k = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT digest FROM journal", -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    bool unlinked = false;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char hex[65], p[PATH_MAX];
        col_text(q, 0, hex, sizeof(hex));
        k++;
        if (!al_is_hex64(hex) || is_referenced(s, hex))
            continue;
        blob_path(s, hex, p, sizeof(p));
        if (unlink(p) == 0)
            unlinked = true;
    }
    sqlite3_finalize(q);
    if (unlinked) {
        char d[PATH_MAX];
        snprintf(d, sizeof(d), "%s/blobs/sha256", s->dir);
        al_status st = al_fs_sync_dir(d, err);
        if (st)
            return st;
    }
    if (k) {
        al_status st = exec(s, "DELETE FROM journal", err);
        if (st)
            return st;
    }
    clean_tmp(s);
    if (n)
        *n = k;
    return AL_OK;
}

/* Adds journal rows (op) for digests inside a transaction of its own. */
static al_status journal_add(al_store *s, const char *const *hex, size_t n, const char *op, al_error *err)
{
    al_status st = exec(s, "BEGIN IMMEDIATE", err);
    if (st)
        return st;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO journal(digest, op) VALUES(?, ?)", -1, &q, NULL) !=
        SQLITE_OK) {
        st = db_err(s, err, "prepare");
        rollback(s);
        return st;
    }
    for (size_t i = 0; i < n && !st; i++) {
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, hex[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, op, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            st = db_err(s, err, "journal");
    }
    sqlite3_finalize(q);
    return end_tx(s, st, err);
}

/* ------------------------------------------------------------ import */

typedef struct import_file {
    char tmp_path[PATH_MAX];
    bool present;
} import_file;

typedef struct extra_blob {
    char hex[65];
    char tmp_path[PATH_MAX];
    uint64_t size;
} extra_blob;

/* Writes bytes into tmpdir/<hex>, fsync'd. */
static al_status write_tmp_blob(const char *tmpdir, const void *data, size_t n, extra_blob *b, al_error *err)
{
    al_sha256_hex(data, n, b->hex);
    b->size = n;
    snprintf(b->tmp_path, sizeof(b->tmp_path), "%s/%s", tmpdir, b->hex);
    int fd = open(b->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot create: %s", b->tmp_path, strerror(errno));
    al_status st = al_fs_write_all(fd, data, n, b->tmp_path, err);
    if (!st && fsync(fd) != 0)
        st = al_err(err, AL_ERR_IO, "%s: fsync failed: %s", b->tmp_path, strerror(errno));
    close(fd);
    return st;
}

/* Copies the current tar entry into path while hashing it. */
static al_status copy_hashed(al_tar_reader *tr, const char *path, unsigned char *buf, size_t cap, char hex[65],
                             uint64_t *copied, al_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    al_sha256 *md = al_sha256_begin();
    al_status st = md ? AL_OK : al_err(err, AL_ERR_CRYPTO, "cannot start SHA-256");
    for (;;) {
        size_t n = 0;
        if (st || (st = al_tar_read(tr, buf, cap, &n, err)) || n == 0)
            break;
        al_sha256_update(md, buf, n);
        if ((st = al_fs_write_all(fd, buf, n, path, err)))
            break;
        *copied += n;
    }
    if (!st && fsync(fd) != 0)
        st = al_err(err, AL_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (st)
        al_sha256_free(md);
    else
        al_sha256_end(md, hex);
    close(fd);
    return st;
}

static const char *media_of(const char *role)
{
    if (!strcmp(role, "model"))
        return MEDIA_GGUF;
    if (!strcmp(role, "license"))
        return MEDIA_LICENSE;
    return MEDIA_FILE;
}

/* Builds the OCI config and image manifest. *cfg and *oci malloc'd. */
static al_status build_oci(const al_manifest *m, const extra_blob *bman, const extra_blob *bsig,
                           const char *signer_name, char **cfg, size_t *cfg_n, extra_blob *cfg_blob,
                           const char *tmpdir, char **oci, size_t *oci_n, al_error *err)
{
    json_t *files = json_array();
    for (size_t i = 0; i < m->n_files; i++)
        json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "name", m->files[i].name, "role",
                                               m->files[i].role, "size", (json_int_t)m->files[i].size, "digest",
                                               m->files[i].sha256));
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "name", m->name, "tag", m->tag,
                          "format", "gguf", "created", m->created, "source", m->source, "signer", signer_name,
                          "key_id", m->key_id, "bundle_manifest", bman->hex, "files", files);
    char *cs = c ? json_dumps(c, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(c);
    if (!cs)
        return al_err(err, AL_ERR_NOMEM, "cannot build the OCI config");
    *cfg = cs;
    *cfg_n = strlen(cs);
    al_status st = write_tmp_blob(tmpdir, cs, *cfg_n, cfg_blob, err);
    if (st)
        return st;
    json_t *layers = json_array();
    for (size_t i = 0; i < m->n_files; i++)
        json_array_append_new(layers,
                              json_pack("{s:s, s:s, s:I, s:{s:s, s:s}}", "mediaType", media_of(m->files[i].role),
                                        "digest", "", "size", (json_int_t)m->files[i].size, "annotations",
                                        "org.opencontainers.image.title", m->files[i].name,
                                        "org.airlock.role", m->files[i].role));
    for (size_t i = 0; i < m->n_files; i++) {
        char d[80];
        snprintf(d, sizeof(d), "sha256:%s", m->files[i].sha256);
        json_object_set_new(json_array_get(layers, i), "digest", json_string(d));
    }
    char dm[80], ds[80], dc[80];
    snprintf(dm, sizeof(dm), "sha256:%s", bman->hex);
    snprintf(ds, sizeof(ds), "sha256:%s", bsig->hex);
    snprintf(dc, sizeof(dc), "sha256:%s", cfg_blob->hex);
    json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", MEDIA_BUNDLE_MANIFEST, "digest", dm,
                                            "size", (json_int_t)bman->size));
    json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", MEDIA_BUNDLE_SIG, "digest", ds, "size",
                                            (json_int_t)bsig->size));
    char ref[140];
    snprintf(ref, sizeof(ref), "%s:%s", m->name, m->tag);
    json_t *o = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o, s:{s:s, s:s}}", "schemaVersion", 2, "mediaType",
                          MEDIA_OCI_MANIFEST, "config", "mediaType", MEDIA_CONFIG, "digest", dc, "size",
                          (json_int_t)cfg_blob->size, "layers", layers, "annotations",
                          "org.opencontainers.image.ref.name", ref, "org.opencontainers.image.created", m->created);
    char *os = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!os)
        return al_err(err, AL_ERR_NOMEM, "cannot build the OCI manifest");
    *oci = os;
    *oci_n = strlen(os);
    return AL_OK;
}

/* Appends one line to name:tag's history (kept across re-imports and
 * removals; airlock show prints it). Best effort: the audit log is the
 * record of authority. */
static void history_add(al_store *s, const char *name, const char *tag, const char *digest,
                        const char *event, const char *person, const char *detail)
{
    sqlite3_stmt *q = NULL;
    char at[40];
    now_rfc3339(at);
    if (sqlite3_prepare_v2(s->db, "INSERT INTO history(name, tag, digest, at, event, person, detail) "
                                  "VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, tag, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, digest, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, event, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, person, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, detail, -1, SQLITE_TRANSIENT);
    sqlite3_step(q);
    sqlite3_finalize(q);
}

/* Inside a transaction: drops a rejected name:tag row, journalling its blobs
 * for deletion (recover() unlinks the ones nothing else references). */
static bool drop_rejected(al_store *s, const char *name, const char *tag)
{
    static const char *const sql[] = {
        "INSERT OR IGNORE INTO journal(digest, op) SELECT r.digest, 'del' FROM refs r JOIN models m ON "
        "m.id = r.model_id WHERE m.name = ?1 AND m.tag = ?2 AND m.state = 'rejected'",
        "DELETE FROM models WHERE name = ?1 AND tag = ?2 AND state = 'rejected'",
    };
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, sql[i], -1, &q, NULL) != SQLITE_OK)
            return false;
        sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, tag, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(q);
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE)
            return false;
    }
    return true;
}

/* Records a rejected import (unless a good model holds name:tag). */
static void record_rejected(al_store *s, const al_manifest *m, const char *signer, const char *importer,
                            const char *reasons, const char *scan_report, const char *bundle_manifest)
{
    char at[40];
    now_rfc3339(at);
    if (exec(s, "BEGIN IMMEDIATE", NULL))
        return;
    sqlite3_stmt *q = NULL;
    bool ok = drop_rejected(s, m->name, m->tag);
    if (ok && sqlite3_prepare_v2(s->db,
                                 "INSERT OR IGNORE INTO models(name, tag, state, signer, key_id, source, created, "
                                 "importer, imported_at, rejected_by, rejected_at, reasons, scan_report, "
                                 "bundle_manifest) "
                                 "VALUES(?, ?, 'rejected', ?, ?, ?, ?, ?, ?, 'scanner', ?, ?, ?, ?)",
                                 -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, m->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, m->tag, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, signer, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 4, m->key_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 5, m->source, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 6, m->created, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 7, importer, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 8, at, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 9, at, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 10, reasons, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 11, scan_report ? scan_report : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 12, bundle_manifest, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(q) == SQLITE_DONE;
    } else {
        ok = false;
    }
    sqlite3_finalize(q);
    if (ok)
        exec(s, "COMMIT", NULL);
    else
        rollback(s);
}

/* Looks for a trusted key whose signature verifies; fills key. */
static al_status verify_signature(al_store *s, const char *label, const char *man, size_t man_n,
                                  const unsigned char *sig, size_t sig_n, al_trust_key *key, al_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT name, key_id, models, pubkey FROM trust", -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
    bool found = false;
    size_t n_keys = 0;
    while (!found && sqlite3_step(q) == SQLITE_ROW) {
        n_keys++;
        const char *pem = (const char *)sqlite3_column_text(q, 3);
        if (pem && al_sign_verify(pem, man, man_n, sig, sig_n, NULL) == AL_OK) {
            found = true;
            col_text(q, 0, key->name, sizeof(key->name));
            col_text(q, 1, key->key_id, sizeof(key->key_id));
            col_text(q, 2, key->models, sizeof(key->models));
        }
    }
    sqlite3_finalize(q);
    if (found)
        return AL_OK;
    /* Not verified. Say why, using the (untrusted) key id the manifest
     * claims only to choose the message. */
    char claimed[65] = "";
    json_t *root = json_loadb(man, man_n, 0, NULL);
    json_t *kid = root ? json_object_get(json_object_get(root, "provenance"), "key_id") : NULL;
    if (json_is_string(kid))
        snprintf(claimed, sizeof(claimed), "%s", json_string_value(kid));
    json_decref(root);
    char tname[65] = "";
    if (claimed[0] && sqlite3_prepare_v2(s->db, "SELECT name FROM trust WHERE key_id = ?", -1, &q, NULL) ==
                          SQLITE_OK) {
        sqlite3_bind_text(q, 1, claimed, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(q) == SQLITE_ROW)
            col_text(q, 0, tname, sizeof(tname));
        sqlite3_finalize(q);
    }
    if (sig_n != AL_SIG_BYTES)
        return al_err(err, AL_ERR_CRYPTO, "%s: bad signature: %s is %zu bytes, an Ed25519 signature is %d", label,
                      AL_BUNDLE_SIG_ENTRY, sig_n, AL_SIG_BYTES);
    if (tname[0])
        return al_err(err, AL_ERR_CRYPTO,
                      "%s: bad signature: the manifest's signature does not verify with trusted key '%s' "
                      "(the manifest or the signature was altered)",
                      label, tname);
    if (n_keys == 0)
        return al_err(err, AL_ERR_CRYPTO, "%s: untrusted key: the trust store is empty (airlock trust add)", label);
    return al_err(err, AL_ERR_CRYPTO, "%s: untrusted key: signed by key id %.16s..., which is not in the trust store",
                  label, claimed[0] ? claimed : "(unknown)");
}

/* Publishes the import: blobs into blobs/, then the catalogue row. Caller
 * holds the store lock. */
static al_status finalize_import(al_store *s, const al_manifest *m, const al_trust_key *key,
                                 import_file *files, extra_blob *extras, size_t n_extra, const char *importer,
                                 const char *scan_report, const char *oci_hex, const char *man_hex, bool *already,
                                 al_error *err)
{
    const char *hexes[AL_BUNDLE_MAX_FILES + 8];
    size_t nh = 0;
    for (size_t i = 0; i < m->n_files; i++)
        hexes[nh++] = m->files[i].sha256;
    for (size_t i = 0; i < n_extra; i++)
        hexes[nh++] = extras[i].hex;
    al_status st = journal_add(s, hexes, nh, "add", err);
    if (st)
        return st;
    char dst[PATH_MAX], bdir[PATH_MAX];
    snprintf(bdir, sizeof(bdir), "%s/blobs/sha256", s->dir);
    for (size_t i = 0; i < nh; i++) {
        const char *src = i < m->n_files ? files[i].tmp_path : extras[i - m->n_files].tmp_path;
        blob_path(s, hexes[i], dst, sizeof(dst));
        if (rename(src, dst) != 0)
            return al_err(err, AL_ERR_IO, "%s: cannot move into the store: %s", dst, strerror(errno));
    }
    if ((st = al_fs_sync_dir(bdir, err)))
        return st;
    /* blobs are durable: now the catalogue */
    char at[40];
    now_rfc3339(at);
    if ((st = exec(s, "BEGIN IMMEDIATE", err)))
        return st;
    sqlite3_stmt *q = NULL;
    int64_t id = 0;
    /* a concurrent import of name:tag may have won the race */
    if (sqlite3_prepare_v2(s->db, "SELECT bundle_manifest, state FROM models WHERE name = ? AND tag = ? AND "
                                  "state <> 'rejected'", -1, &q, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(q, 1, m->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, m->tag, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW) {
        char bm[65], state[16];
        col_text(q, 0, bm, sizeof(bm));
        col_text(q, 1, state, sizeof(state));
        sqlite3_finalize(q);
        if (strcmp(bm, man_hex)) {
            rollback(s);
            return al_err(err, AL_ERR_STATE, "%s:%s is already in the store (%s) with other content; airlock rm it first",
                          m->name, m->tag, state);
        }
        *already = true; /* same bundle: its blobs were the same bytes; recover() clears the journal */
        return exec(s, "COMMIT", err);
    }
    sqlite3_finalize(q);
    q = NULL;
    if (!drop_rejected(s, m->name, m->tag))
        goto dberr;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO models(name, tag, state, digest, model_digest, model_size, bundle_manifest, "
                           "bundle_sig, signer, key_id, source, created, importer, imported_at, scan_report, reasons) "
                           "VALUES(?, ?, 'quarantined', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')",
                           -1, &q, NULL) != SQLITE_OK)
        goto dberr;
    const al_manifest_file *mf = NULL;
    for (size_t i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].role, "model"))
            mf = &m->files[i];
    sqlite3_bind_text(q, 1, m->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, m->tag, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, oci_hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, mf->sha256, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)mf->size);
    sqlite3_bind_text(q, 6, extras[0].hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, extras[1].hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 8, key->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 9, key->key_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 10, m->source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 11, m->created, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 12, importer, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 13, at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 14, scan_report ? scan_report : "", -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) != SQLITE_DONE) {
        if (sqlite3_errcode(s->db) == SQLITE_CONSTRAINT) {
            sqlite3_finalize(q);
            rollback(s);
            return al_err(err, AL_ERR_STATE, "%s:%s is already in the store with other content (airlock rm it first)",
                          m->name, m->tag);
        }
        goto dberr;
    }
    sqlite3_finalize(q);
    id = sqlite3_last_insert_rowid(s->db);
    if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO refs(model_id, digest, role, name, size) VALUES(?, ?, ?, ?, ?)",
                           -1, &q, NULL) != SQLITE_OK)
        goto dberr;
    static const char *const extra_roles[] = {"bundle-manifest", "bundle-signature", "oci-config", "oci-manifest"};
    for (size_t i = 0; i < nh; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_text(q, 2, hexes[i], -1, SQLITE_TRANSIENT);
        if (i < m->n_files) {
            sqlite3_bind_text(q, 3, m->files[i].role, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 4, m->files[i].name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(q, 5, (sqlite3_int64)m->files[i].size);
        } else {
            sqlite3_bind_text(q, 3, extra_roles[i - m->n_files], -1, SQLITE_STATIC);
            sqlite3_bind_null(q, 4);
            sqlite3_bind_int64(q, 5, (sqlite3_int64)extras[i - m->n_files].size);
        }
        if (sqlite3_step(q) != SQLITE_DONE)
            goto dberr;
    }
    sqlite3_finalize(q);
    q = NULL;
    /* the journal is settled by recover() once this commits */
    return exec(s, "COMMIT", err);
dberr:
    st = db_err(s, err, "record import");
    sqlite3_finalize(q);
    rollback(s);
    return st;
}

al_status al_store_import(al_store *s, const char *bundle_path, const char *importer, al_store_scan_fn scan,
                          void *scan_user, al_import_result *res, al_error *err)
{
    memset(res, 0, sizeof(*res));
    al_status st = AL_OK;
    al_manifest *m = calloc(1, sizeof(*m));
    import_file *files = calloc(AL_BUNDLE_MAX_FILES, sizeof(*files));
    extra_blob *extras = calloc(4, sizeof(*extras));
    unsigned char *buf = malloc(COPY_BUF_BYTES);
    char *man = NULL, *cfg = NULL, *oci = NULL;
    size_t man_n = 0, cfg_n = 0, oci_n = 0;
    unsigned char sig[256];
    size_t sig_n = 0;
    al_trust_key key;
    memset(&key, 0, sizeof(key));
    char tmpdir[PATH_MAX - 128] = "";
    int tmp_fd = -1, fd = -1;
    bool signed_ok = false, locked = false;
    al_scan_report rep = {0};
    char man_hex[65] = "";
    if (!m || !files || !extras || !buf) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto done;
    }
    fd = open(bundle_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", bundle_path, strerror(errno));
        goto done;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    al_tar_reader tr;
    al_tar_reader_init(&tr, fd, bundle_path);
    al_tar_entry e;
    bool end;
    /* 1. manifest.json */
    if ((st = al_tar_next(&tr, &e, &end, err)))
        goto done;
    if (end || strcmp(e.name, AL_BUNDLE_MANIFEST_ENTRY)) {
        st = al_err(err, AL_ERR_FORMAT, "%s: not an airlock bundle: the first entry must be %s (found '%s')",
                    bundle_path, AL_BUNDLE_MANIFEST_ENTRY, end ? "end of archive" : e.name);
        goto done;
    }
    if (e.size > AL_MANIFEST_MAX_BYTES) {
        st = al_err(err, AL_ERR_LIMIT, "%s: manifest declares %llu bytes, over the %u-byte limit", bundle_path,
                    (unsigned long long)e.size, AL_MANIFEST_MAX_BYTES);
        goto done;
    }
    man_n = (size_t)e.size;
    man = malloc(man_n + 1);
    if (!man) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t got = 0, k;
    while (got < man_n) {
        if ((st = al_tar_read(&tr, man + got, man_n - got, &k, err)))
            goto done;
        if (k == 0)
            break;
        got += k;
    }
    man[man_n] = 0;
    /* 2. manifest.sig */
    if ((st = al_tar_next(&tr, &e, &end, err)))
        goto done;
    if (end || strcmp(e.name, AL_BUNDLE_SIG_ENTRY)) {
        st = al_err(err, AL_ERR_CRYPTO, "%s: unsigned bundle: the second entry must be %s (found '%s')", bundle_path,
                    AL_BUNDLE_SIG_ENTRY, end ? "end of archive" : e.name);
        goto done;
    }
    if (e.size > sizeof(sig)) {
        st = al_err(err, AL_ERR_CRYPTO, "%s: bad signature: %s is %llu bytes, an Ed25519 signature is %d",
                    bundle_path, AL_BUNDLE_SIG_ENTRY, (unsigned long long)e.size, AL_SIG_BYTES);
        goto done;
    }
    while (sig_n < e.size) {
        if ((st = al_tar_read(&tr, sig + sig_n, (size_t)e.size - sig_n, &k, err)))
            goto done;
        if (k == 0)
            break;
        sig_n += k;
    }
    /* 3. the signature, before anything in the manifest is believed */
    if ((st = verify_signature(s, bundle_path, man, man_n, sig, sig_n, &key, err)))
        goto done;
    if ((st = al_manifest_parse(man, man_n, m, err))) {
        al_err_prefix(err, bundle_path);
        goto done;
    }
    snprintf(res->name, sizeof(res->name), "%s", m->name);
    snprintf(res->tag, sizeof(res->tag), "%s", m->tag);
    snprintf(res->signer, sizeof(res->signer), "%s", key.name);
    if (strcmp(m->key_id, key.key_id)) {
        st = al_err(err, AL_ERR_CRYPTO, "%s: the manifest names key id %.16s... but was signed by '%s' (%.16s...)",
                    bundle_path, m->key_id, key.name, key.key_id);
        goto done;
    }
    if (fnmatch(key.models, m->name, 0) != 0) {
        st = al_err(err, AL_ERR_PERMISSION,
                    "%s: key not allowed: trusted key '%s' may sign models matching '%s', not '%s'", bundle_path,
                    key.name, key.models, m->name);
        goto done;
    }
    signed_ok = true;
    al_sha256_hex(man, man_n, man_hex);
    /* already here? */
    {
        model_ref mr;
        memset(&mr, 0, sizeof(mr));
        snprintf(mr.name, sizeof(mr.name), "%s", m->name);
        snprintf(mr.tag, sizeof(mr.tag), "%s", m->tag);
        int64_t id = 0;
        al_model_row *row = calloc(1, sizeof(*row));
        sqlite3_stmt *q = NULL;
        char bm[65] = "";
        if (row && !find_model(s, &mr, &id, row, NULL, NULL) && id &&
            sqlite3_prepare_v2(s->db, "SELECT bundle_manifest FROM models WHERE id = ?", -1, &q, NULL) ==
                SQLITE_OK) {
            sqlite3_bind_int64(q, 1, id);
            if (sqlite3_step(q) == SQLITE_ROW)
                col_text(q, 0, bm, sizeof(bm));
            sqlite3_finalize(q);
            if (!strcmp(row->state, "rejected") && !strcmp(bm, man_hex) &&
                strcmp(row->rejected_by, "scanner") != 0) {
                /* a person's decision sticks: the same content stays
                 * rejected (a scanner rejection is of the bundle's bytes,
                 * which a re-import scans again) */
                st = al_err(err, AL_ERR_STATE,
                            "%s:%s with this content (bundle sha256:%.16s...) was rejected by %s: %s; "
                            "it stays rejected until 'airlock reopen %s:%s --by PERSON'",
                            m->name, m->tag, man_hex, row->rejected_by, row->reasons, m->name, m->tag);
                snprintf(res->state, sizeof(res->state), "rejected");
            } else if (strcmp(row->state, "rejected")) {
                if (!strcmp(bm, man_hex)) {
                    res->already = true;
                    snprintf(res->state, sizeof(res->state), "%s", row->state);
                    snprintf(res->digest, sizeof(res->digest), "%s", row->digest);
                } else {
                    st = al_err(err, AL_ERR_STATE,
                                "%s:%s is already in the store (%s) with other content; airlock rm it first",
                                m->name, m->tag, row->state);
                }
            }
        }
        free(row);
        if (st || res->already) {
            signed_ok = false; /* nothing to record as rejected */
            goto done;
        }
    }
    /* 4. room for it? */
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_files; i++)
        total += m->files[i].size;
    struct statvfs vf;
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", s->dir);
    if (statvfs(tmpdir, &vf) == 0) {
        uint64_t avail = (uint64_t)vf.f_bavail * (uint64_t)vf.f_frsize;
        if (total > avail) {
            st = al_err(err, AL_ERR_IO, "%s: not enough disk space: the bundle needs %llu bytes, %llu are free",
                        bundle_path, (unsigned long long)total, (unsigned long long)avail);
            signed_ok = false;
            goto done;
        }
    }
    unsigned char rnd[8];
    char rhex[17];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    al_hex(rnd, sizeof(rnd), rhex);
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp/import-%ld-%s", s->dir, (long)getpid(), rhex);
    /* Create and flock the directory under the store lock: recovery (which
     * runs under that lock) removes every unlocked tmp directory. */
    if ((st = lock_store(s, err)))
        goto done;
    if (mkdir(tmpdir, 0700) != 0) {
        unlock_store(s);
        st = al_err(err, AL_ERR_IO, "%s: cannot create: %s", tmpdir, strerror(errno));
        tmpdir[0] = 0;
        goto done;
    }
    tmp_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmp_fd >= 0)
        flock(tmp_fd, LOCK_EX); /* tells recovery this import is alive */
    unlock_store(s);
    /* 5. the payload: every entry must be the next file of the manifest */
    for (;;) {
        if ((st = al_tar_next(&tr, &e, &end, err)))
            goto done;
        if (end)
            break;
        size_t i = 0;
        while (i < m->n_files && strcmp(m->files[i].name, e.name))
            i++;
        if (i == m->n_files) {
            st = al_err(err, AL_ERR_FORMAT, "%s: unexpected file '%s': not in the signed manifest", bundle_path,
                        e.name);
            goto done;
        }
        al_manifest_file *mf = &m->files[i];
        if (files[i].present) {
            st = al_err(err, AL_ERR_FORMAT, "%s: file '%s' appears twice in the bundle", bundle_path, e.name);
            goto done;
        }
        if (e.size != mf->size) {
            st = al_err(err, AL_ERR_FORMAT,
                        "%s: file '%s' declares %llu bytes in the tar but the signed manifest says %llu", bundle_path,
                        e.name, (unsigned long long)e.size, (unsigned long long)mf->size);
            goto done;
        }
        char hex[65] = "";
        snprintf(files[i].tmp_path, sizeof(files[i].tmp_path), "%s/f%02u", tmpdir, (unsigned)i);
        if ((st = copy_hashed(&tr, files[i].tmp_path, buf, COPY_BUF_BYTES, hex, &res->bytes, err)))
            goto done;
        files[i].present = true;
        if (strcmp(hex, mf->sha256)) {
            st = al_err(err, AL_ERR_CRYPTO,
                        "%s: file '%s' is tampered: its sha256 is %s but the signed manifest says %s", bundle_path,
                        e.name, hex, mf->sha256);
            goto done;
        }
    }
    for (size_t i = 0; i < m->n_files; i++)
        if (!files[i].present) {
            st = al_err(err, AL_ERR_FORMAT, "%s: file '%s' listed in the signed manifest is missing from the bundle",
                        bundle_path, m->files[i].name);
            goto done;
        }
    /* anything after the end-of-archive marker other than zero padding? */
    {
        ssize_t r;
        bool junk = false;
        while ((r = read(fd, buf, COPY_BUF_BYTES)) > 0) {
            for (ssize_t j = 0; j < r && !junk; j++)
                junk = buf[j] != 0;
            if (junk)
                break;
        }
        if (junk) {
            st = al_err(err, AL_ERR_FORMAT, "%s: data after the end-of-archive marker", bundle_path);
            goto done;
        }
    }
    /* 6. scan */
    for (size_t i = 0; i < m->n_files; i++) {
        if (scan)
            scan(scan_user, files[i].tmp_path, &m->files[i], &rep);
        else
            al_scan_report_add(&rep, true, "%s: not scanned (no scanner)", m->files[i].name);
    }
    if (rep.n_fail) {
        size_t cap = 2048;
        char reasons[2048];
        reasons[0] = 0;
        size_t used = 0;
        for (const char *ln = rep.text; ln && *ln;) {
            const char *nl = strchr(ln, '\n');
            size_t L = nl ? (size_t)(nl - ln) : strlen(ln);
            if (!strncmp(ln, "FAIL ", 5) && used + L + 2 < cap) {
                used += (size_t)snprintf(reasons + used, cap - used, "%s%.*s", used ? "; " : "", (int)(L - 5), ln + 5);
            }
            ln = nl ? nl + 1 : ln + L;
        }
        st = al_err(err, AL_ERR_FORMAT, "%s: rejected by the scanner: %s", bundle_path, reasons);
        goto done;
    }
    /* 7. blobs for the bundle manifest, signature, OCI config and manifest */
    if ((st = write_tmp_blob(tmpdir, man, man_n, &extras[0], err)) ||
        (st = write_tmp_blob(tmpdir, sig, sig_n, &extras[1], err)) ||
        (st = build_oci(m, &extras[0], &extras[1], key.name, &cfg, &cfg_n, &extras[2], tmpdir, &oci, &oci_n, err)) ||
        (st = write_tmp_blob(tmpdir, oci, oci_n, &extras[3], err)))
        goto done;
    if ((st = lock_store(s, err)))
        goto done;
    locked = true;
    if ((st = recover(s, NULL, err)))
        goto done;
    if ((st = finalize_import(s, m, &key, files, extras, 4, importer, rep.text, extras[3].hex, man_hex,
                              &res->already, err))) {
        if (st == AL_ERR_STATE)
            signed_ok = false; /* nothing wrong with the bundle: do not record it rejected */
        goto done;
    }
    recover(s, NULL, NULL); /* settles the journal: drops the blobs of a replaced rejected row */
    snprintf(res->state, sizeof(res->state), "%s", res->already ? "present" : "quarantined");
    snprintf(res->digest, sizeof(res->digest), "%s", extras[3].hex);
done:
    /* Record a rejection only for faults of the bundle, not of this host
     * (I/O, memory, catalogue): a retry of those may well succeed. */
    if (st && signed_ok &&
        (st == AL_ERR_FORMAT || st == AL_ERR_CRYPTO || st == AL_ERR_LIMIT || st == AL_ERR_UNSUPPORTED)) {
        if (!locked && !lock_store(s, NULL))
            locked = true;
        record_rejected(s, m, key.name, importer, err ? err->msg : "import failed", rep.text, man_hex);
        if (locked)
            recover(s, NULL, NULL);
        snprintf(res->state, sizeof(res->state), "rejected");
    }
    if (locked)
        unlock_store(s);
    if (tmpdir[0] && tmp_fd >= 0)
        al_fs_rmtree(tmpdir);
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (fd >= 0)
        close(fd);
    {
        char detail[2200], ref[140];
        snprintf(ref, sizeof(ref), "%s:%s", res->name, res->tag);
        snprintf(detail, sizeof(detail), "bundle %s signer %s state %s%s%s", bundle_path,
                 res->signer[0] ? res->signer : "-", res->state[0] ? res->state : "refused", st ? ": " : "",
                 st && err ? err->msg : "");
        audit(s, importer, "import", res->name[0] ? ref : NULL, res->digest[0] ? res->digest : NULL, st, detail);
        if (res->name[0])
            history_add(s, res->name, res->tag, res->digest[0] ? res->digest : NULL, "import", importer,
                        detail);
    }
    al_scan_report_free(&rep);
    free(man);
    free(cfg);
    free(oci);
    free(buf);
    free(extras);
    free(files);
    free(m);
    return st;
}

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
    al_status st = need_model(s, ref, &mr, &id, row, err);
    signed_approval sa;
    memset(&sa, 0, sizeof(sa));
    char at[40];
    now_rfc3339(at);
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
            st = db_err(s, err, "prepare");
        else {
            sqlite3_bind_text(q, 1, sa.key_id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) == SQLITE_ROW) {
                col_text(q, 0, sa.person, sizeof(sa.person));
                col_text(q, 1, pem, sizeof(pem));
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
        audit(s, sa.person[0] ? sa.person : "?", "approve", ref, NULL, st, err->msg);
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
    if (!st && (st = exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = need_model(s, ref, &mr, &id, row, err);
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
        now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO approvals(model_id, person, at) VALUES(?, ?, ?)", -1,
                               &q, NULL) != SQLITE_OK)
            st = db_err(s, err, "prepare");
        else {
            sqlite3_bind_int64(q, 1, id);
            sqlite3_bind_text(q, 2, person, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 3, at, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = db_err(s, err, "approve");
            sqlite3_finalize(q);
        }
        if (!st && sa) {
            if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO signed_approvals(model_id, person, key_id, msg, sig) "
                                          "VALUES(?, ?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK)
                st = db_err(s, err, "prepare");
            else {
                sqlite3_bind_int64(q, 1, id);
                sqlite3_bind_text(q, 2, sa->person, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 3, sa->key_id, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 4, sa->msg, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(q, 5, sa->sig_hex, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = db_err(s, err, "approve");
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
                st = db_err(s, err, "prepare");
            else {
                sqlite3_bind_text(q, 1, at, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int64(q, 2, id);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = db_err(s, err, "publish");
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
        st = end_tx(s, st, err);
    char r2[140];
    snprintf(r2, sizeof(r2), "%s:%s", row ? row->name : "", row ? row->tag : "");
    char adetail[600];
    if (sa)
        snprintf(adetail, sizeof(adetail), "approved; signed with pinned key %.16s...: %s", sa->key_id, sa->msg);
    else
        snprintf(adetail, sizeof(adetail), "approved (name only)");
    audit(s, person, "approve", id ? r2 : ref, id ? row->digest : NULL, st, st ? err->msg : adetail);
    if (!st && id)
        history_add(s, row->name, row->tag, row->digest, "approve", person,
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
    if (!st && (st = exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = need_model(s, ref, &mr, &id, row, err);
    if (!st && (!reason || !reason[0]))
        st = al_err(err, AL_ERR_ARG, "a reason is needed (--reason)");
    if (!st) {
        sqlite3_stmt *q = NULL;
        char at[40];
        now_rfc3339(at);
        if (sqlite3_prepare_v2(s->db, "UPDATE models SET state = 'rejected', rejected_by = ?, rejected_at = ?, "
                                      "reasons = ? WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
            st = db_err(s, err, "prepare");
        else {
            sqlite3_bind_text(q, 1, person, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 2, at, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(q, 3, reason, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(q, 4, id);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = db_err(s, err, "reject");
            sqlite3_finalize(q);
        }
    }
    if (in_tx)
        st = end_tx(s, st, err);
    char detail[1200];
    snprintf(detail, sizeof(detail), "reason: %s", reason ? reason : "");
    audit(s, person, "reject", ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    if (!st && id)
        history_add(s, row->name, row->tag, row->digest, "reject", person, detail);
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
    if (!st && (st = exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = need_model(s, ref, &mr, &id, row, err);
    if (!st && strcmp(row->state, "rejected"))
        st = al_err(err, AL_ERR_STATE, "%s is %s, not rejected: nothing to reopen", ref, row->state);
    if (!st && !drop_rejected(s, row->name, row->tag))
        st = db_err(s, err, "reopen");
    if (in_tx)
        st = end_tx(s, st, err);
    if (!st)
        recover(s, NULL, NULL); /* deletes the rejected row's blobs nothing else uses */
    char detail[1400];
    snprintf(detail, sizeof(detail), "rejection by %s lifted (%.600s)%s%.500s: the bundle may be "
             "imported again", row ? row->rejected_by : "", row ? row->reasons : "",
             reason ? "; reason: " : "", reason ? reason : "");
    audit(s, person, "reopen", ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    if (!st && id)
        history_add(s, row->name, row->tag, row->digest, "reopen", person, detail);
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
    al_status st = need_model(s, ref, &mr, &id, row, err);
    sqlite3_stmt *q = NULL;
    size_t len = 0, cap = 1024;
    char *t = st ? NULL : malloc(cap);
    if (!st && !t)
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
    if (!st && sqlite3_prepare_v2(s->db, "SELECT at, event, person, detail, digest FROM history WHERE "
                                         "name = ? AND tag = ? ORDER BY seq", -1, &q, NULL) != SQLITE_OK)
        st = db_err(s, err, "history");
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
    if (!st && (st = lock_store(s, err)) == AL_OK)
        locked = true;
    if (!st)
        st = recover(s, NULL, err);
    if (!st && (st = exec(s, "BEGIN IMMEDIATE", err)) == AL_OK)
        in_tx = true;
    if (!st)
        st = need_model(s, ref, &mr, &id, row, err);
    if (!st) {
        /* blobs only this model references */
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT digest FROM refs r WHERE r.model_id = ?1 AND NOT EXISTS "
                                      "(SELECT 1 FROM refs o WHERE o.digest = r.digest AND o.model_id <> ?1)",
                               -1, &q, NULL) != SQLITE_OK)
            st = db_err(s, err, "prepare");
        else {
            sqlite3_bind_int64(q, 1, id);
            while (sqlite3_step(q) == SQLITE_ROW && n_doomed < 64)
                col_text(q, 0, doomed[n_doomed++], 65);
            sqlite3_finalize(q);
        }
        if (!st) {
            if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO journal(digest, op) VALUES(?, 'del')", -1, &q,
                                   NULL) != SQLITE_OK)
                st = db_err(s, err, "prepare");
            for (size_t i = 0; i < n_doomed && !st; i++) {
                sqlite3_reset(q);
                sqlite3_bind_text(q, 1, doomed[i], -1, SQLITE_TRANSIENT);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = db_err(s, err, "journal");
            }
            sqlite3_finalize(q);
        }
        if (!st) {
            if (sqlite3_prepare_v2(s->db, "DELETE FROM models WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
                st = db_err(s, err, "prepare");
            else {
                sqlite3_bind_int64(q, 1, id);
                if (sqlite3_step(q) != SQLITE_DONE)
                    st = db_err(s, err, "delete");
                sqlite3_finalize(q);
            }
        }
    }
    if (in_tx)
        st = end_tx(s, st, err);
    if (!st)
        st = recover(s, NULL, err); /* unlinks the journalled blobs */
    if (locked)
        unlock_store(s);
    char r2[140];
    snprintf(r2, sizeof(r2), "%s:%s", row ? row->name : "", row ? row->tag : "");
    char detail[64];
    snprintf(detail, sizeof(detail), "%zu blobs removed", n_doomed);
    audit(s, actor, "rm", id ? r2 : ref, id ? row->digest : NULL, st, st ? err->msg : detail);
    free(doomed);
    free(row);
    return st;
}

al_status al_store_gc(al_store *s, const char *actor, uint64_t *n_blobs, uint64_t *n_bytes, al_error *err)
{
    uint64_t nb = 0, by = 0, rec = 0;
    al_status st = lock_store(s, err);
    if (st)
        goto out;
    if ((st = recover(s, &rec, err)))
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
        if (al_is_hex64(e->d_name) && is_referenced(s, e->d_name))
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
    unlock_store(s);
out:
    if (n_blobs)
        *n_blobs = nb;
    if (n_bytes)
        *n_bytes = by;
    char detail[128];
    snprintf(detail, sizeof(detail), "%llu blobs, %llu bytes removed; %llu journal entries recovered",
             (unsigned long long)nb, (unsigned long long)by, (unsigned long long)rec);
    audit(s, actor, "gc", NULL, NULL, st, st ? err->msg : detail);
    return st;
}

al_status al_store_generation(al_store *s, uint64_t *out, al_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, "data_version");
    al_status st = AL_OK;
    if (sqlite3_step(q) == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(q, 0);
    else
        st = db_err(s, err, "data_version");
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
    al_status st = lock_store(s, err);
    if (st)
        goto out;
    if ((st = recover(s, &c->recovered, err)))
        goto unlock;
    if (c->recovered && out)
        fprintf(out, "recovered: %llu journal entries left by an interrupted operation\n",
                (unsigned long long)c->recovered);
    /* every referenced blob: present and intact */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT r.digest, m.name || ':' || m.tag FROM refs r JOIN models m ON "
                                  "m.id = r.model_id ORDER BY r.digest", -1, &q, NULL) != SQLITE_OK) {
        st = db_err(s, err, "prepare");
        goto unlock;
    }
    char last[65] = "";
    while (sqlite3_step(q) == SQLITE_ROW) {
        char hex[65], model[140], p[PATH_MAX];
        col_text(q, 0, hex, sizeof(hex));
        col_text(q, 1, model, sizeof(model));
        if (!strcmp(hex, last))
            continue;
        snprintf(last, sizeof(last), "%s", hex);
        blob_path(s, hex, p, sizeof(p));
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
            if (al_is_hex64(e->d_name) && is_referenced(s, e->d_name))
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
    unlock_store(s);
out:;
    char detail[160];
    snprintf(detail, sizeof(detail), "%llu ok, %llu tampered, %llu missing, %llu stray, %llu recovered",
             (unsigned long long)c->ok, (unsigned long long)c->tampered, (unsigned long long)c->missing,
             (unsigned long long)c->stray, (unsigned long long)c->recovered);
    audit(s, actor, "verify", NULL, NULL, st, detail);
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
    al_status st = need_model(s, ref, &mr, id, row, err);
    if (!st && strcmp(row->state, "published"))
        st = al_err(err, AL_ERR_STATE, "%s is %s: only published models are %s", ref, row->state, verb);
    if (!st) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s->db, "SELECT bundle_manifest, bundle_sig FROM models WHERE id = ?", -1, &q, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_int64(q, 1, *id);
            if (sqlite3_step(q) == SQLITE_ROW) {
                col_text(q, 0, bm, sizeof(bm));
                col_text(q, 1, bs, sizeof(bs));
            }
        }
        sqlite3_finalize(q);
        if (!al_is_hex64(bm) || !al_is_hex64(bs))
            st = al_err(err, AL_ERR_DB, "catalogue: %s has no bundle manifest recorded", ref);
    }
    if (!st) {
        blob_path(s, bm, p, sizeof(p));
        st = al_fs_read_small(p, AL_MANIFEST_MAX_BYTES, man, man_n, err);
    }
    if (!st) {
        blob_path(s, bs, p, sizeof(p));
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
        blob_path(s, m->files[i].sha256, paths[i], PATH_MAX);
        pp[i] = paths[i];
    }
    if (!st)
        st = al_bundle_write(out_path, man, man_n, (const unsigned char *)sig, sig_n, m, pp, err);
    char detail[PATH_MAX + 16];
    snprintf(detail, sizeof(detail), "to %s", out_path);
    audit(s, actor, "export", ref, id ? row->digest : NULL, st, st ? err->msg : detail);
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
        blob_path(s, m->files[i].sha256, paths[i], 4096);
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

/* ------------------------------------------------------------ queries */

al_status al_store_list(al_store *s, const char *state_filter, al_model_row **out, size_t *n, al_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    const char *sql = state_filter ? "SELECT " ROW_COLS " FROM models m WHERE m.state = ? ORDER BY m.name, m.tag"
                                   : "SELECT " ROW_COLS " FROM models m ORDER BY m.name, m.tag";
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_err(s, err, "prepare");
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
        st = db_err(s, err, "list");
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
    if ((st = find_model(s, &mr, &id, out, scan_report, err)))
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
        st = find_model(s, &mr, &id, row, NULL, err);
    if (!st && !id)
        st = al_err(err, AL_ERR_NOT_FOUND, "model '%s' is not in the store", ref);
    if (!st && strcmp(row->state, "published"))
        st = al_err(err, AL_ERR_STATE, "model '%s' is %s, not published", ref, row->state);
    if (!st) {
        char p[PATH_MAX];
        blob_path(s, row->model_digest, p, sizeof(p));
        if ((size_t)snprintf(path_out, cap, "%s", p) >= cap)
            st = al_err(err, AL_ERR_LIMIT, "path buffer too small");
        if (digest_out)
            memcpy(digest_out, row->model_digest, 65);
    }
    free(row);
    return st;
}
