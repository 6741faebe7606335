/* transfer.h - moving airlock models between a store and an OCI registry.
 *
 * The artifact (artifactType AL_REG_ARTIFACT_TYPE) is an OCI image manifest
 * whose config is the empty descriptor and whose layers are, in order, the
 * bundle manifest (manifest.json, exact signed bytes), its Ed25519
 * signature, and every file of the bundle (the GGUF first), each titled
 * with org.opencontainers.image.title. Annotations carry the model's name,
 * tag, publisher key id and scan summary (informative only: the pull trusts
 * none of them).
 *
 * A pull downloads into STORE/pull/<manifest hex>/ (kept after a cut, so a
 * second pull resumes), then streams the parts as a bundle through the
 * store's ordinary import: the model ends quarantined or rejected exactly
 * as `airlock import` leaves it. */
#ifndef AL_REGISTRY_TRANSFER_H
#define AL_REGISTRY_TRANSFER_H

#include "registry/registry.h"
#include "store/store.h"

typedef struct al_push_result {
    char ref[700];          /* where it went */
    char digest[65];        /* the OCI manifest's digest */
    uint64_t bytes_sent;    /* layer bytes uploaded (skipped blobs excluded) */
    int n_layers, n_skipped;
} al_push_result;

/* Publishes the published model model_ref ("name:tag") of s to dest (a
 * registry reference; its tag defaults to the model's). chunk_bytes: see
 * al_reg_blob_push_file. */
al_status al_push(al_store *s, const char *model_ref, const char *dest, const al_reg_opts *o, uint64_t chunk_bytes,
                  al_push_result *res, al_error *err);

typedef struct al_pull_result {
    al_import_result imp;   /* what the import did (state "" if refused before) */
    char digest[65];        /* the OCI manifest's digest */
    uint64_t bytes_fetched; /* bytes downloaded by this run */
    uint64_t resumed_bytes; /* bytes a previous cut run had left */
} al_pull_result;

/* Fetches src (a registry reference with a tag or digest) into s's
 * quarantine through al_store_import, with importer and scan as import. */
al_status al_pull(al_store *s, const char *src, const al_reg_opts *o, const char *importer, al_store_scan_fn scan,
                  void *scan_user, al_pull_result *res, al_error *err);

/* One sync pass for a replica: for each reference, pulls it (REPO:TAG or
 * @sha256:...) or, for a bare REPO, every tag the repository lists; a model
 * already in the store costs three small requests. approve_as (may be NULL)
 * then records one approval by that actor on each newly quarantined model
 * (`--approved-by-policy`). One line per model and per failure goes to log.
 * Returns the number of failures. */
int al_sync_once(al_store *s, const char *const *refs, size_t n, const al_reg_opts *o, const char *importer,
                 bool approve_by_policy, al_store_scan_fn scan, void *scan_user, FILE *log);

#endif
