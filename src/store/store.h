/*
 * store.h - the airlock store: a content-addressed blob store, OCI image
 * manifests and a SQLite catalogue, with the import / approve / publish flow.
 *
 * Layout of a store directory:
 *   blobs/sha256/<hex>   every blob, named by the SHA-256 of its bytes: model
 *                        files, the bundle manifest and signature, the OCI
 *                        config and the OCI image manifest
 *   catalogue.db         SQLite: models, refs (model -> blobs), approvals,
 *                        trust (pinned publisher keys), policy, journal
 *   tmp/                 imports in flight (one directory per import)
 *   audit/               the audit log (src/audit)
 *   lock                 flock'd while blobs are added or removed
 *   oci-layout           {"imageLayoutVersion": "1.0.0"}
 *
 * Crash safety: a blob is copied to tmp/, fsync'd, its digest recorded in the
 * journal, renamed into blobs/ and the directory fsync'd before the catalogue
 * row that refers to it commits. Removal journals the doomed blobs in the
 * same transaction that drops the row. Every operation that holds the lock
 * first finishes what a killed process left in the journal and tmp/.
 *
 * The store needs nothing of the engine: the import takes a scanner callback
 * (src/scan provides the one the CLI uses).
 *
 * Thread safety: an al_store handle belongs to one thread at a time; any
 * number of processes may use the same directory.
 */
#ifndef AL_STORE_STORE_H
#define AL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "airlock.h"
#include "store/bundle.h"

typedef struct al_store al_store;

/* The default store directory: $AIRLOCK_STORE, else "./var/airlock". */
const char *al_store_default_dir(void);

/* Opens the store in dir, creating it (and the catalogue) if needed.
 * *out is owned by the caller: al_store_close. */
al_status al_store_open(const char *dir, al_store **out, al_error *err);
void al_store_close(al_store *s);
const char *al_store_dir(const al_store *s);

/* ------------------------------------------------------------ trust */

typedef struct al_trust_key {
    char name[65];
    char key_id[65];
    char models[256]; /* fnmatch(3) pattern of model names it may sign */
    char added_at[40];
    char added_by[65];
} al_trust_key;

/* Pins the Ed25519 public key in pub_pem_path under name, allowed to sign
 * models matching models_glob ("*" when NULL). */
al_status al_store_trust_add(al_store *s, const char *pub_pem_path, const char *name, const char *models_glob,
                             const char *actor, al_error *err);
al_status al_store_trust_rm(al_store *s, const char *name, const char *actor, al_error *err);
/* *out is malloc'd (free()), *n entries. */
al_status al_store_trust_list(al_store *s, al_trust_key **out, size_t *n, al_error *err);

/* ------------------------------------------------------------ policy */

typedef struct al_policy {
    int approvals;          /* distinct approvers needed to publish (>= 1) */
    bool separate_importer; /* the importer may not approve */
    int n_approvers;        /* approvers' public keys pinned (policy approvers=FILE); 0: name-only */
} al_policy;

al_status al_store_policy_get(al_store *s, al_policy *out, al_error *err);
/* key "approvals" (1..16), "separate-importer" (true/false) or "approvers"
 * (a file of "NAME PUBLIC-KEY.pem" lines whose keys are pinned; "none"
 * unpins: name-only approvals). */
al_status al_store_policy_set(al_store *s, const char *key, const char *value, const char *actor, al_error *err);

/* ------------------------------------------------------------ scanning */

/* What a scanner writes: one line per check ("ok ..." / "FAIL ..."). */
typedef struct al_scan_report {
    char *text; /* malloc'd, NUL-terminated; owned by the report */
    size_t len, cap;
    int n_fail;
} al_scan_report;

void al_scan_report_add(al_scan_report *r, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void al_scan_report_free(al_scan_report *r);

/* Scans one file of a bundle (already size- and digest-checked) at path;
 * appends its findings to rep. */
typedef void (*al_store_scan_fn)(void *user, const char *path, const al_manifest_file *file, al_scan_report *rep);

/* ------------------------------------------------------------ import */

typedef struct al_import_result {
    char name[65], tag[65];
    char state[16];       /* "quarantined" or "rejected" ("" if refused before) */
    char digest[65];      /* OCI manifest digest (hex) */
    char signer[65];
    bool already;         /* the same bundle was already in the store */
    uint64_t bytes;       /* payload bytes copied */
} al_import_result;

/* Streams the bundle at path into quarantine: verifies the signature against
 * the trust store, then each file's size and digest while copying (constant
 * memory), then runs scan on every file. Returns AL_OK when the model ends
 * quarantined (or was already there). Every failure message is precise;
 * failures after the signature verified also record the model as rejected
 * with every reason. */
al_status al_store_import(al_store *s, const char *bundle_path, const char *importer, al_store_scan_fn scan,
                          void *scan_user, al_import_result *res, al_error *err);

/* ------------------------------------------------------------ lifecycle */

/* Records person's approval; publishes once the policy is met. *published
 * (may be NULL) tells whether the model is now published, *n_approvals how
 * many distinct approvals it has. */
al_status al_store_approve(al_store *s, const char *ref, const char *person, bool *published, int *n_approvals,
                           al_error *err);
/* Approval bound to a person: signs (model digest, "approve", time) with the
 * private key at priv_pem_path, which must be a pinned approver's; the
 * approver is the pinned name (person_out). With approvers pinned, only such
 * approvals count, one per key, and al_store_approve (a name) is refused. */
al_status al_store_approve_key(al_store *s, const char *ref, const char *priv_pem_path, char person_out[65],
                               bool *published, int *n_approvals, al_error *err);
al_status al_store_reject(al_store *s, const char *ref, const char *person, const char *reason, al_error *err);
/* A rejection sticks: importing the same bundle again is refused. reopen
 * lifts it (audited, kept in the history): the rejected entry and its blobs
 * are dropped, so the bundle can be imported (and approved) afresh. */
al_status al_store_reopen(al_store *s, const char *ref, const char *person, const char *reason, al_error *err);
/* name:tag's whole history (imports, approvals, rejections, reopenings),
 * one line each; *text malloc'd. */
al_status al_store_history(al_store *s, const char *ref, char **text, al_error *err);
/* Removes name:tag from the catalogue and deletes the blobs nothing else
 * references. */
al_status al_store_rm(al_store *s, const char *ref, const char *actor, al_error *err);
/* Deletes unreferenced blobs and leftovers of killed operations. */
al_status al_store_gc(al_store *s, const char *actor, uint64_t *n_blobs, uint64_t *n_bytes, al_error *err);

typedef struct al_verify_counts {
    uint64_t ok, tampered, missing, stray, recovered;
} al_verify_counts;
/* Re-hashes every blob at rest; writes one line per problem to out (may be
 * NULL). Returns AL_ERR_CRYPTO when anything is tampered, missing or stray. */
al_status al_store_verify(al_store *s, FILE *out, al_verify_counts *c, const char *actor, al_error *err);

/* Writes name:tag (published) as a bundle again, with its original manifest
 * and signature. */
al_status al_store_export(al_store *s, const char *ref, const char *out_path, const char *actor, al_error *err);

/* The parts of a published model as the store holds them, for publishing to
 * a registry (src/registry): the bundle manifest's exact bytes (*manifest,
 * malloc'd, caller frees), its signature (sig, *sig_n <= 256 bytes), the
 * parsed manifest, and in paths[i] (PATH_MAX bytes each, AL_BUNDLE_MAX_FILES
 * entries, caller-owned) the blob holding manifest file i. The manifest and
 * signature are re-hashed against the catalogue; the payload blobs are not
 * (the registry checks each upload's digest). */
al_status al_store_published_parts(al_store *s, const char *ref, char **manifest, size_t *manifest_n,
                                   unsigned char *sig, size_t *sig_n, al_manifest *m, char (*paths)[4096],
                                   al_error *err);

/* ------------------------------------------------------------ queries */

typedef struct al_model_row {
    char name[65], tag[65], state[16];
    char digest[65];       /* OCI manifest digest */
    char model_digest[65]; /* the GGUF blob */
    uint64_t model_size;
    char signer[65], key_id[65], source[1024], created[40];
    char importer[65], imported_at[40], published_at[40];
    char approvers[512];   /* "alice, bob" */
    int n_approvals;
    char rejected_by[65];
    char reasons[2048];
} al_model_row;

/* All models (state_filter NULL) or those in one state. *out malloc'd. */
al_status al_store_list(al_store *s, const char *state_filter, al_model_row **out, size_t *n, al_error *err);
al_status al_store_list_published(al_store *s, al_model_row **out, size_t *n, al_error *err);
/* One model by ref; *scan_report (may be NULL) receives a malloc'd copy of
 * its scan report. */
al_status al_store_show(al_store *s, const char *ref, al_model_row *out, char **scan_report, al_error *err);

/* Resolves "name:tag", "name" (tag "latest") or "name@sha256:<hex>" (the OCI
 * manifest digest or the GGUF blob digest) to the published GGUF blob's path
 * (path_out, cap bytes) and its digest (digest_out, 65 bytes). Only
 * published models resolve. */
al_status al_store_resolve(al_store *s, const char *ref, char *path_out, size_t cap, char *digest_out,
                           al_error *err);

/* A number that changes whenever another handle or process commits a change
 * to the catalogue (import, approve, reject, reopen, rm, pull, ...), and
 * only then: SQLite's data_version, read from the WAL index without
 * touching the tables, so it is cheap to poll. Changes committed through s
 * itself do not count, and a read-only store (opened immutable) never
 * changes it. `airlock serve` polls it to notice models published or
 * removed while it runs. */
al_status al_store_generation(al_store *s, uint64_t *out, al_error *err);

/* Re-hashes a file and compares it with hex_digest: AL_ERR_CRYPTO when it
 * differs (a tampered blob must not be loaded). */
al_status al_store_verify_blob(const char *path, const char *hex_digest, al_error *err);

/* The actor to record when none is given: $AIRLOCK_USER, $USER, or uid. */
const char *al_store_default_actor(void);

#endif
