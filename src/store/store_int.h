/* store_int.h - what the store's files share (not a public API; store.h is):
 * the store object, the catalogue's SQL helpers and model references.
 * store.c (open, catalogue, queries), store_trust.c (keys and policy),
 * store_recovery.c (crash recovery), store_import.c (the import steps),
 * store_lifecycle.c (approve, reject, rm, gc, verify, export). */
#ifndef AL_STORE_STORE_INT_H
#define AL_STORE_STORE_INT_H

#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "store/store.h"

struct al_store {
    char dir[PATH_MAX - 256];
    sqlite3 *db;
    al_audit *audit; /* may be NULL when the log cannot be opened */
    int lock_fd;     /* the store's lock file */
    bool readonly;   /* the store cannot be written here: list, show, verify only */
};

typedef struct model_ref {
    char name[65];
    char tag[65];
    char digest[65]; /* set for name@sha256:... */
} model_ref;

#define COPY_BUF_BYTES (1u << 20)
#define MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_CONFIG "application/vnd.airlock.model.config.v1+json"
#define MEDIA_GGUF "application/vnd.airlock.model.gguf.v1"
#define MEDIA_LICENSE "application/vnd.airlock.license.v1+text"
#define MEDIA_FILE "application/vnd.airlock.file.v1"
#define MEDIA_BUNDLE_MANIFEST "application/vnd.airlock.bundle.manifest.v1+json"
#define MEDIA_BUNDLE_SIG "application/vnd.airlock.bundle.signature.v1+ed25519"

/* store.c */
/* Records one store action in the audit log (one call per action). */
void store_audit(al_store *s, const char *actor, const char *action, const char *model, const char *digest,
                 al_status st, const char *detail);
void store_blob_path(const al_store *s, const char *hex, char *out, size_t cap);
void store_col_text(sqlite3_stmt *q, int i, char *dst, size_t cap);
al_status store_db_err(al_store *s, al_error *err, const char *what);
/* Ends an open transaction: commits when st is AL_OK, rolls back otherwise.
 * Returns st, or the COMMIT's failure. */
al_status store_end_tx(al_store *s, al_status st, al_error *err);
al_status store_exec(al_store *s, const char *sql, al_error *err);
/* Finds a model by ref; *id = 0 when absent. */
al_status store_find_model(al_store *s, const model_ref *mr, int64_t *id, al_model_row *row, char **scan,
                           al_error *err);
/* Store-wide lock around adding and removing blobs. */
al_status store_lock(al_store *s, al_error *err);
al_status store_need_model(al_store *s, const char *ref, model_ref *mr, int64_t *id, al_model_row *row,
                           al_error *err);
void store_now_rfc3339(char out[40]);
void store_rollback(al_store *s);
void store_unlock(al_store *s);
/* store_recovery.c */
bool store_is_referenced(al_store *s, const char *hex);
/* Adds journal rows (op) for digests inside a transaction of its own. */
al_status store_journal_add(al_store *s, const char *const *hex, size_t n, const char *op, al_error *err);
/* Finishes what a killed process left: journalled blobs that nothing
 * references are deleted, then the journal is emptied. Caller holds the
 * store lock. *n (may be NULL) counts entries handled. */
al_status store_recover(al_store *s, uint64_t *n, al_error *err);
/* store_import.c */
/* Inside a transaction: drops a rejected name:tag row, journalling its blobs
 * for deletion (store_recover() unlinks the ones nothing else references). */
bool store_drop_rejected(al_store *s, const char *name, const char *tag);
/* Appends one line to name:tag's history (kept across re-imports and
 * removals; airlock show prints it). Best effort: the audit log is the
 * record of authority. */
void store_history_add(al_store *s, const char *name, const char *tag, const char *digest,
                       const char *event, const char *person, const char *detail);

#endif
