/*
 * store_recovery.c - crash recovery: the journal of blob operations,
 * replayed (or rolled back) when the store opens, and the temporary files
 * an interrupted import leaves.
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

/* ------------------------------------------------------------ recovery */

bool store_is_referenced(al_store *s, const char *hex)
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
al_status store_recover(al_store *s, uint64_t *n, al_error *err)
{
    if (s->readonly) /* nothing can be repaired here; reads see committed state */
        return AL_OK;
    sqlite3_stmt *q = NULL;
    uint64_t k = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT digest FROM journal", -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    bool unlinked = false;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char hex[65], p[PATH_MAX];
        store_col_text(q, 0, hex, sizeof(hex));
        k++;
        if (!al_is_hex64(hex) || store_is_referenced(s, hex))
            continue;
        store_blob_path(s, hex, p, sizeof(p));
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
        al_status st = store_exec(s, "DELETE FROM journal", err);
        if (st)
            return st;
    }
    clean_tmp(s);
    if (n)
        *n = k;
    return AL_OK;
}

/* Adds journal rows (op) for digests inside a transaction of its own. */
al_status store_journal_add(al_store *s, const char *const *hex, size_t n, const char *op, al_error *err)
{
    al_status st = store_exec(s, "BEGIN IMMEDIATE", err);
    if (st)
        return st;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO journal(digest, op) VALUES(?, ?)", -1, &q, NULL) !=
        SQLITE_OK) {
        st = store_db_err(s, err, "prepare");
        store_rollback(s);
        return st;
    }
    for (size_t i = 0; i < n && !st; i++) {
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, hex[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, op, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            st = store_db_err(s, err, "journal");
    }
    sqlite3_finalize(q);
    return store_end_tx(s, st, err);
}
