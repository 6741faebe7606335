/* bundle.h - the airlock bundle: one POSIX tar holding
 *
 *   manifest.json   JSON: format, format_version, name, tag, created,
 *                   provenance {source, signer, key_id, tool}, and
 *                   files [{name, role, size, sha256}]
 *   manifest.sig    64-byte Ed25519 signature over manifest.json's exact bytes
 *   <file>...       every file of the manifest, in manifest order
 *
 * in that order, so that an importer can check the signature and learn every
 * size and digest before it copies a byte of the payload. */
#ifndef AL_STORE_BUNDLE_H
#define AL_STORE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"
#include "store/tar.h"

#define AL_BUNDLE_FORMAT "airlock-bundle"
#define AL_BUNDLE_FORMAT_VERSION 1
#define AL_BUNDLE_MAX_FILES 16
#define AL_MANIFEST_MAX_BYTES (1u << 20)
/* No single file in a bundle may declare more than this (1 TiB). */
#define AL_BUNDLE_MAX_FILE_BYTES ((uint64_t)1 << 40)
#define AL_BUNDLE_MANIFEST_ENTRY "manifest.json"
#define AL_BUNDLE_SIG_ENTRY "manifest.sig"

/* Roles of files in a bundle: exactly one "model" (a GGUF), at most one
 * "license" (UTF-8 text), and "file"s (more GGUF or UTF-8 text documents;
 * the scanner decides whether each is acceptable). */
typedef struct al_manifest_file {
    char name[AL_TAR_NAME_MAX + 1];
    char role[16];
    uint64_t size;
    char sha256[65];
} al_manifest_file;

typedef struct al_manifest {
    int format_version;
    char name[65];
    char tag[65];
    char created[40];   /* RFC 3339 UTC */
    char source[1024];  /* free-text provenance, may be "" */
    char signer[65];    /* the signer's key name, as the signer called it */
    char key_id[65];    /* sha256 of the raw Ed25519 public key */
    char tool[64];
    size_t n_files;
    al_manifest_file files[AL_BUNDLE_MAX_FILES];
} al_manifest;

/* Model names: [a-z0-9][a-z0-9._-]{0,63}; tags: [A-Za-z0-9][A-Za-z0-9._-]{0,63};
 * file names: [A-Za-z0-9][A-Za-z0-9._-]{0,99} other than the two reserved
 * entry names. */
bool al_bundle_valid_name(const char *s);
bool al_bundle_valid_tag(const char *s);
bool al_bundle_valid_file_name(const char *s);

/* Parses and validates a manifest (untrusted until its signature verified:
 * call only after al_sign_verify). Every field is checked; the message says
 * which and why. */
al_status al_manifest_parse(const char *json, size_t n, al_manifest *out, al_error *err);

/* Serialises m to JSON (the exact bytes that get signed). *out is malloc'd,
 * owned by the caller. */
al_status al_manifest_dump(const al_manifest *m, char **out, size_t *n, al_error *err);

typedef struct al_bundle_input {
    const char *path;  /* file to bundle */
    const char *role;  /* "model", "license" or "file" */
} al_bundle_input;

typedef struct al_bundle_spec {
    const char *name, *tag, *source; /* source may be NULL */
    const char *key_path;            /* private key PEM */
    const al_bundle_input *inputs;
    size_t n_inputs;
} al_bundle_spec;

/* Hashes every input, writes and signs the manifest and writes the bundle
 * to out_path atomically. The manifest's digest (65) goes to manifest_hex
 * when not NULL. */
al_status al_bundle_create(const al_bundle_spec *spec, const char *out_path, char *manifest_hex, al_error *err);

/* Writes a bundle from an existing manifest and signature (export): paths[i]
 * holds the bytes of manifest file i (checked for size on the way). */
al_status al_bundle_write(const char *out_path, const char *manifest, size_t manifest_n,
                          const unsigned char *sig, size_t sig_n, const al_manifest *m,
                          const char *const *paths, al_error *err);

#endif
