/*
 * store_import.c - importing a bundle: read the tar, hash every file into
 * a temporary blob, verify the signature against the trusted keys, scan,
 * then publish blobs, OCI layout and catalogue row in one transaction.
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
void store_history_add(al_store *s, const char *name, const char *tag, const char *digest,
                       const char *event, const char *person, const char *detail)
{
    sqlite3_stmt *q = NULL;
    char at[40];
    store_now_rfc3339(at);
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
 * for deletion (store_recover() unlinks the ones nothing else references). */
bool store_drop_rejected(al_store *s, const char *name, const char *tag)
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
    store_now_rfc3339(at);
    if (store_exec(s, "BEGIN IMMEDIATE", NULL))
        return;
    sqlite3_stmt *q = NULL;
    bool ok = store_drop_rejected(s, m->name, m->tag);
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
        store_exec(s, "COMMIT", NULL);
    else
        store_rollback(s);
}

/* Looks for a trusted key whose signature verifies; fills key. */
static al_status verify_signature(al_store *s, const char *label, const char *man, size_t man_n,
                                  const unsigned char *sig, size_t sig_n, al_trust_key *key, al_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT name, key_id, models, pubkey FROM trust", -1, &q, NULL) != SQLITE_OK)
        return store_db_err(s, err, "prepare");
    bool found = false;
    size_t n_keys = 0;
    while (!found && sqlite3_step(q) == SQLITE_ROW) {
        n_keys++;
        const char *pem = (const char *)sqlite3_column_text(q, 3);
        if (pem && al_sign_verify(pem, man, man_n, sig, sig_n, NULL) == AL_OK) {
            found = true;
            store_col_text(q, 0, key->name, sizeof(key->name));
            store_col_text(q, 1, key->key_id, sizeof(key->key_id));
            store_col_text(q, 2, key->models, sizeof(key->models));
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
            store_col_text(q, 0, tname, sizeof(tname));
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
    al_status st = store_journal_add(s, hexes, nh, "add", err);
    if (st)
        return st;
    char dst[PATH_MAX], bdir[PATH_MAX];
    snprintf(bdir, sizeof(bdir), "%s/blobs/sha256", s->dir);
    for (size_t i = 0; i < nh; i++) {
        const char *src = i < m->n_files ? files[i].tmp_path : extras[i - m->n_files].tmp_path;
        store_blob_path(s, hexes[i], dst, sizeof(dst));
        if (rename(src, dst) != 0)
            return al_err(err, AL_ERR_IO, "%s: cannot move into the store: %s", dst, strerror(errno));
    }
    if ((st = al_fs_sync_dir(bdir, err)))
        return st;
    /* blobs are durable: now the catalogue */
    char at[40];
    store_now_rfc3339(at);
    if ((st = store_exec(s, "BEGIN IMMEDIATE", err)))
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
        store_col_text(q, 0, bm, sizeof(bm));
        store_col_text(q, 1, state, sizeof(state));
        sqlite3_finalize(q);
        if (strcmp(bm, man_hex)) {
            store_rollback(s);
            return al_err(err, AL_ERR_STATE, "%s:%s is already in the store (%s) with other content; airlock rm it first",
                          m->name, m->tag, state);
        }
        *already = true; /* same bundle: its blobs were the same bytes; store_recover() clears the journal */
        return store_exec(s, "COMMIT", err);
    }
    sqlite3_finalize(q);
    q = NULL;
    if (!store_drop_rejected(s, m->name, m->tag))
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
            store_rollback(s);
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
    /* the journal is settled by store_recover() once this commits */
    return store_exec(s, "COMMIT", err);
dberr:
    st = store_db_err(s, err, "record import");
    sqlite3_finalize(q);
    store_rollback(s);
    return st;
}

/* Import steps 1 and 2: the bundle's first two entries, manifest.json
 * (*man malloc'd with a NUL after its *man_n bytes; caller frees) and
 * manifest.sig (into sig[0..sig_cap), *sig_n bytes). */
static al_status read_signed_manifest(al_tar_reader *tr, const char *bundle_path, char **man, size_t *man_n,
                                      unsigned char *sig, size_t sig_cap, size_t *sig_n, al_error *err)
{
    al_status st;
    al_tar_entry e;
    bool end;
    if ((st = al_tar_next(tr, &e, &end, err)))
        return st;
    if (end || strcmp(e.name, AL_BUNDLE_MANIFEST_ENTRY))
        return al_err(err, AL_ERR_FORMAT, "%s: not an airlock bundle: the first entry must be %s (found '%s')",
                      bundle_path, AL_BUNDLE_MANIFEST_ENTRY, end ? "end of archive" : e.name);
    if (e.size > AL_MANIFEST_MAX_BYTES)
        return al_err(err, AL_ERR_LIMIT, "%s: manifest declares %llu bytes, over the %u-byte limit", bundle_path,
                      (unsigned long long)e.size, AL_MANIFEST_MAX_BYTES);
    *man_n = (size_t)e.size;
    *man = malloc(*man_n + 1);
    if (!*man)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    size_t got = 0, k;
    while (got < *man_n) {
        if ((st = al_tar_read(tr, *man + got, *man_n - got, &k, err)))
            return st;
        if (k == 0)
            break;
        got += k;
    }
    (*man)[*man_n] = 0;
    if ((st = al_tar_next(tr, &e, &end, err)))
        return st;
    if (end || strcmp(e.name, AL_BUNDLE_SIG_ENTRY))
        return al_err(err, AL_ERR_CRYPTO, "%s: unsigned bundle: the second entry must be %s (found '%s')",
                      bundle_path, AL_BUNDLE_SIG_ENTRY, end ? "end of archive" : e.name);
    if (e.size > sig_cap)
        return al_err(err, AL_ERR_CRYPTO, "%s: bad signature: %s is %llu bytes, an Ed25519 signature is %d",
                      bundle_path, AL_BUNDLE_SIG_ENTRY, (unsigned long long)e.size, AL_SIG_BYTES);
    while (*sig_n < e.size) {
        if ((st = al_tar_read(tr, sig + *sig_n, (size_t)e.size - *sig_n, &k, err)))
            return st;
        if (k == 0)
            break;
        *sig_n += k;
    }
    return AL_OK;
}

/* Whether name:tag of m is in the store already: res->already when it is,
 * with the same bundle (man_hex); AL_ERR_STATE when it holds other content,
 * or this content was rejected by a person (that decision sticks). */
static al_status check_present(al_store *s, const al_manifest *m, const char *man_hex, al_import_result *res,
                               al_error *err)
{
    al_status st = AL_OK;
    model_ref mr;
    memset(&mr, 0, sizeof(mr));
    snprintf(mr.name, sizeof(mr.name), "%s", m->name);
    snprintf(mr.tag, sizeof(mr.tag), "%s", m->tag);
    int64_t id = 0;
    al_model_row *row = calloc(1, sizeof(*row));
    sqlite3_stmt *q = NULL;
    char bm[65] = "";
    if (row && !store_find_model(s, &mr, &id, row, NULL, NULL) && id &&
        sqlite3_prepare_v2(s->db, "SELECT bundle_manifest FROM models WHERE id = ?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, id);
        if (sqlite3_step(q) == SQLITE_ROW)
            store_col_text(q, 0, bm, sizeof(bm));
        sqlite3_finalize(q);
        if (!strcmp(row->state, "rejected") && !strcmp(bm, man_hex) && strcmp(row->rejected_by, "scanner") != 0) {
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
    return st;
}

/* Import step 4: checks the store's disk has room for m's files, then
 * creates tmpdir (STORE/tmp/import-PID-RANDOM; "" when not created) and
 * holds *tmp_fd, a flock on it that tells recovery this import is alive. */
static al_status make_import_dir(al_store *s, const al_manifest *m, const char *bundle_path, char *tmpdir,
                                 size_t cap, int *tmp_fd, al_error *err)
{
    al_status st;
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_files; i++)
        total += m->files[i].size;
    struct statvfs vf;
    snprintf(tmpdir, cap, "%s/tmp", s->dir);
    if (statvfs(tmpdir, &vf) == 0) {
        uint64_t avail = (uint64_t)vf.f_bavail * (uint64_t)vf.f_frsize;
        if (total > avail) {
            tmpdir[0] = 0;
            return al_err(err, AL_ERR_IO, "%s: not enough disk space: the bundle needs %llu bytes, %llu are free",
                          bundle_path, (unsigned long long)total, (unsigned long long)avail);
        }
    }
    unsigned char rnd[8];
    char rhex[17];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    al_hex(rnd, sizeof(rnd), rhex);
    snprintf(tmpdir, cap, "%s/tmp/import-%ld-%s", s->dir, (long)getpid(), rhex);
    /* Create and flock the directory under the store lock: recovery (which
     * runs under that lock) removes every unlocked tmp directory. */
    if ((st = store_lock(s, err)))
        return st;
    if (mkdir(tmpdir, 0700) != 0) {
        store_unlock(s);
        st = al_err(err, AL_ERR_IO, "%s: cannot create: %s", tmpdir, strerror(errno));
        tmpdir[0] = 0;
        return st;
    }
    *tmp_fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*tmp_fd >= 0)
        flock(*tmp_fd, LOCK_EX); /* tells recovery this import is alive */
    store_unlock(s);
    return AL_OK;
}

/* Import step 5: the bundle's remaining entries, each a file of the signed
 * manifest m (once, its size, its sha256), copied to tmpdir/fNN
 * (files[i].tmp_path); then nothing but zero padding after the end of the
 * archive. buf: COPY_BUF_BYTES of scratch. Adds the bytes to res->bytes. */
static al_status read_payload(al_tar_reader *tr, int fd, const char *bundle_path, al_manifest *m, import_file *files,
                              const char *tmpdir, unsigned char *buf, al_import_result *res, al_error *err)
{
    al_status st;
    al_tar_entry e;
    bool end;
    for (;;) {
        if ((st = al_tar_next(tr, &e, &end, err)))
            return st;
        if (end)
            break;
        size_t i = 0;
        while (i < m->n_files && strcmp(m->files[i].name, e.name))
            i++;
        if (i == m->n_files)
            return al_err(err, AL_ERR_FORMAT, "%s: unexpected file '%s': not in the signed manifest", bundle_path,
                          e.name);
        al_manifest_file *mf = &m->files[i];
        if (files[i].present)
            return al_err(err, AL_ERR_FORMAT, "%s: file '%s' appears twice in the bundle", bundle_path, e.name);
        if (e.size != mf->size)
            return al_err(err, AL_ERR_FORMAT,
                          "%s: file '%s' declares %llu bytes in the tar but the signed manifest says %llu",
                          bundle_path, e.name, (unsigned long long)e.size, (unsigned long long)mf->size);
        char hex[65] = "";
        snprintf(files[i].tmp_path, sizeof(files[i].tmp_path), "%s/f%02u", tmpdir, (unsigned)i);
        if ((st = copy_hashed(tr, files[i].tmp_path, buf, COPY_BUF_BYTES, hex, &res->bytes, err)))
            return st;
        files[i].present = true;
        if (strcmp(hex, mf->sha256))
            return al_err(err, AL_ERR_CRYPTO,
                          "%s: file '%s' is tampered: its sha256 is %s but the signed manifest says %s", bundle_path,
                          e.name, hex, mf->sha256);
    }
    for (size_t i = 0; i < m->n_files; i++)
        if (!files[i].present)
            return al_err(err, AL_ERR_FORMAT,
                          "%s: file '%s' listed in the signed manifest is missing from the bundle", bundle_path,
                          m->files[i].name);
    /* anything after the end-of-archive marker other than zero padding? */
    ssize_t r;
    bool junk = false;
    while ((r = read(fd, buf, COPY_BUF_BYTES)) > 0) {
        for (ssize_t j = 0; j < r && !junk; j++)
            junk = buf[j] != 0;
        if (junk)
            break;
    }
    if (junk)
        return al_err(err, AL_ERR_FORMAT, "%s: data after the end-of-archive marker", bundle_path);
    return AL_OK;
}

/* Import step 6: every file through the scanner (none: each is noted "not
 * scanned") into rep; AL_ERR_FORMAT naming the failures when any failed. */
static al_status scan_files(al_manifest *m, const import_file *files, al_store_scan_fn scan, void *scan_user,
                            const char *bundle_path, al_scan_report *rep, al_error *err)
{
    for (size_t i = 0; i < m->n_files; i++) {
        if (scan)
            scan(scan_user, files[i].tmp_path, &m->files[i], rep);
        else
            al_scan_report_add(rep, true, "%s: not scanned (no scanner)", m->files[i].name);
    }
    if (!rep->n_fail)
        return AL_OK;
    size_t cap = 2048;
    char reasons[2048];
    reasons[0] = 0;
    size_t used = 0;
    for (const char *ln = rep->text; ln && *ln;) {
        const char *nl = strchr(ln, '\n');
        size_t L = nl ? (size_t)(nl - ln) : strlen(ln);
        if (!strncmp(ln, "FAIL ", 5) && used + L + 2 < cap) {
            used += (size_t)snprintf(reasons + used, cap - used, "%s%.*s", used ? "; " : "", (int)(L - 5), ln + 5);
        }
        ln = nl ? nl + 1 : ln + L;
    }
    return al_err(err, AL_ERR_FORMAT, "%s: rejected by the scanner: %s", bundle_path, reasons);
}

/* The import's audit record and, once the bundle named its model, a line
 * of the model's history; st and err: how it ended. */
static void record_import(al_store *s, const char *bundle_path, const char *importer, const al_import_result *res,
                          al_status st, const al_error *err)
{
    char detail[2200], ref[140];
    snprintf(ref, sizeof(ref), "%s:%s", res->name, res->tag);
    snprintf(detail, sizeof(detail), "bundle %s signer %s state %s%s%s", bundle_path,
             res->signer[0] ? res->signer : "-", res->state[0] ? res->state : "refused", st ? ": " : "",
             st && err ? err->msg : "");
    store_audit(s, importer, "import", res->name[0] ? ref : NULL, res->digest[0] ? res->digest : NULL, st, detail);
    if (res->name[0])
        store_history_add(s, res->name, res->tag, res->digest[0] ? res->digest : NULL, "import", importer, detail);
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
    /* 1. manifest.json, 2. manifest.sig */
    if ((st = read_signed_manifest(&tr, bundle_path, &man, &man_n, sig, sizeof(sig), &sig_n, err)))
        goto done;
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
    if ((st = check_present(s, m, man_hex, res, err)) || res->already) {
        signed_ok = false; /* nothing to record as rejected */
        goto done;
    }
    /* 4. room for it? */
    if ((st = make_import_dir(s, m, bundle_path, tmpdir, sizeof(tmpdir), &tmp_fd, err))) {
        signed_ok = false; /* no room, or this host's I/O: not the bundle's fault */
        goto done;
    }
    /* 5. the payload: every entry must be the next file of the manifest */
    if ((st = read_payload(&tr, fd, bundle_path, m, files, tmpdir, buf, res, err)))
        goto done;
    /* 6. scan */
    if ((st = scan_files(m, files, scan, scan_user, bundle_path, &rep, err)))
        goto done;
    /* 7. blobs for the bundle manifest, signature, OCI config and manifest */
    if ((st = write_tmp_blob(tmpdir, man, man_n, &extras[0], err)) ||
        (st = write_tmp_blob(tmpdir, sig, sig_n, &extras[1], err)) ||
        (st = build_oci(m, &extras[0], &extras[1], key.name, &cfg, &cfg_n, &extras[2], tmpdir, &oci, &oci_n, err)) ||
        (st = write_tmp_blob(tmpdir, oci, oci_n, &extras[3], err)))
        goto done;
    if ((st = store_lock(s, err)))
        goto done;
    locked = true;
    if ((st = store_recover(s, NULL, err)))
        goto done;
    if ((st = finalize_import(s, m, &key, files, extras, 4, importer, rep.text, extras[3].hex, man_hex,
                              &res->already, err))) {
        if (st == AL_ERR_STATE)
            signed_ok = false; /* nothing wrong with the bundle: do not record it rejected */
        goto done;
    }
    store_recover(s, NULL, NULL); /* settles the journal: drops the blobs of a replaced rejected row */
    snprintf(res->state, sizeof(res->state), "%s", res->already ? "present" : "quarantined");
    snprintf(res->digest, sizeof(res->digest), "%s", extras[3].hex);
done:
    /* Record a rejection only for faults of the bundle, not of this host
     * (I/O, memory, catalogue): a retry of those may well succeed. */
    if (st && signed_ok &&
        (st == AL_ERR_FORMAT || st == AL_ERR_CRYPTO || st == AL_ERR_LIMIT || st == AL_ERR_UNSUPPORTED)) {
        if (!locked && !store_lock(s, NULL))
            locked = true;
        record_rejected(s, m, key.name, importer, err ? err->msg : "import failed", rep.text, man_hex);
        if (locked)
            store_recover(s, NULL, NULL);
        snprintf(res->state, sizeof(res->state), "rejected");
    }
    if (locked)
        store_unlock(s);
    if (tmpdir[0] && tmp_fd >= 0)
        al_fs_rmtree(tmpdir);
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (fd >= 0)
        close(fd);
    record_import(s, bundle_path, importer, res, st, err);
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
