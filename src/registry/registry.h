/* registry.h - a small OCI Distribution client (libcurl): the transport that
 * carries airlock models between enclaves' stores through a private registry
 * (CNCF Distribution, Harbor, Zot, Quay...).
 *
 * A registry is never a source of trust: every byte fetched is checked
 * against a digest before it is kept, and `airlock pull` hands what it
 * fetched to the store's ordinary import (signature against pinned
 * publishers, file digests, scan).
 *
 * Safety rules the client keeps:
 *   - HTTPS unless the reference says http:// ; --ca FILE for a private CA;
 *   - a redirect to another host is refused (credentials never leave the
 *     registry's host), and so is a token realm on another host;
 *   - a manifest is at most AL_REG_MANIFEST_MAX bytes; a blob never more
 *     than its descriptor announced; stalls time out;
 *   - credentials come from a docker config.json (file or environment) and
 *     appear in no message.
 *
 * Thread safety: an al_reg handle belongs to one thread at a time. */
#ifndef AL_REGISTRY_REGISTRY_H
#define AL_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

#define AL_REG_MANIFEST_MAX ((size_t)4 << 20)
#define AL_REG_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define AL_REG_ARTIFACT_TYPE "application/vnd.airlock.model.v1"
#define AL_REG_MT_BUNDLE_MANIFEST "application/vnd.airlock.bundle.manifest.v1+json"
#define AL_REG_MT_BUNDLE_SIG "application/vnd.airlock.bundle.signature.v1"
#define AL_REG_MT_GGUF "application/vnd.airlock.model.gguf.v1"
#define AL_REG_MT_FILE "application/vnd.airlock.bundle.file.v1"
#define AL_REG_MT_EMPTY "application/vnd.oci.empty.v1+json"

/* A parsed reference: [http://|https://]HOST[:PORT]/REPO[:TAG|@sha256:HEX]. */
typedef struct al_reg_ref {
    bool plain_http;  /* only when written as http:// */
    char host[256];   /* host[:port] as written */
    char repo[256];   /* path components [a-z0-9._-/], OCI rules */
    char tag[129];    /* "" when a digest is given or nothing (see below) */
    char digest[65];  /* hex of @sha256:..., else "" */
} al_reg_ref;

/* Parses s. With neither tag nor digest, tag is "" and the caller decides
 * (push: the model's own tag; pull: an error). */
al_status al_reg_ref_parse(const char *s, al_reg_ref *out, al_error *err);
/* "host/repo:tag" or "host/repo@sha256:hex" (with "http://" when plain). */
void al_reg_ref_format(const al_reg_ref *r, char *out, size_t cap);

typedef struct al_reg_opts {
    const char *ca_file;   /* PEM CA bundle for HTTPS, NULL = system CAs */
    const char *auth_file; /* docker config.json; NULL = $AIRLOCK_REGISTRY_AUTH */
    long connect_timeout_s; /* 0 = 15 */
    long stall_timeout_s;   /* no byte for this long aborts; 0 = $AIRLOCK_REGISTRY_STALL_SECONDS or 60 */
} al_reg_opts;

typedef struct al_reg al_reg;

/* Opens a client for ref's registry and repository (no request is made).
 * The credentials for ref's host, if any, are read now. *out: al_reg_close. */
al_status al_reg_open(const al_reg_ref *ref, const al_reg_opts *opts, al_reg **out, al_error *err);
void al_reg_close(al_reg *r);

/* *exists tells whether the repository holds blob sha256:hex (HEAD). */
al_status al_reg_blob_exists(al_reg *r, const char *hex, bool *exists, al_error *err);

/* Uploads size bytes of the file at path as blob sha256:hex (skipped when the
 * registry already holds it: *skipped). chunk_bytes 0 = one monolithic PUT;
 * otherwise PATCH chunks of that size, each retried (from the offset the
 * registry confirms) after a cut connection. The registry checks the digest. */
al_status al_reg_blob_push_file(al_reg *r, const char *path, uint64_t size, const char *hex, uint64_t chunk_bytes,
                                bool *skipped, al_error *err);
al_status al_reg_blob_push_mem(al_reg *r, const void *data, size_t n, const char *hex, al_error *err);

/* PUTs an OCI image manifest under reference (a tag); hex_out (65) receives
 * its digest as the registry confirmed it. */
al_status al_reg_manifest_put(al_reg *r, const char *reference, const char *body, size_t n, char *hex_out,
                              al_error *err);

/* GETs the manifest for reference (tag or "sha256:hex"), at most
 * AL_REG_MANIFEST_MAX bytes; checks its digest against the reference (by
 * digest) and against the Docker-Content-Digest the registry announced.
 * *body malloc'd (NUL-terminated), caller frees; hex_out (65) its digest. */
al_status al_reg_manifest_get(al_reg *r, const char *reference, char **body, size_t *n, char *hex_out,
                              al_error *err);

/* GETs blob sha256:hex, exactly size bytes, into memory (small blobs only,
 * size <= cap). *out malloc'd, caller frees. */
al_status al_reg_blob_get_mem(al_reg *r, const char *hex, uint64_t size, size_t cap, char **out, al_error *err);

/* Streams blob sha256:hex (size bytes) to part_path, hashing as it goes.
 * When part_path already holds bytes from a cut download, they are re-hashed
 * and the rest is asked for with an HTTP Range (*resumed_from receives that
 * offset, 0 when starting afresh). On success the file holds exactly the
 * blob. A wrong digest deletes the file; a cut leaves it for a later resume. */
al_status al_reg_blob_get_file(al_reg *r, const char *hex, uint64_t size, const char *part_path,
                               uint64_t *resumed_from, al_error *err);

/* Lists the repository's tags (GET /v2/REPO/tags/list). *tags is a malloc'd
 * array of malloc'd strings (al_reg_tags_free). */
al_status al_reg_tags_list(al_reg *r, char ***tags, size_t *n, al_error *err);
void al_reg_tags_free(char **tags, size_t n);

#endif
