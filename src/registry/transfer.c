/* transfer.c - push a store's model to a registry, pull one into a store.
 * See transfer.h. */
#include "registry/transfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "store/bundle.h"
#include "store/tar.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

#define EMPTY_JSON "{}"
#define EMPTY_HEX "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define COPY_BUF_BYTES ((size_t)1 << 20)

/* ------------------------------------------------------------ push */

static json_t *descriptor(const char *media_type, const char *hex, uint64_t size, const char *title)
{
    char d[80];
    snprintf(d, sizeof(d), "sha256:%s", hex);
    json_t *j = json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", d, "size", (json_int_t)size);
    if (j && title)
        json_object_set_new(j, "annotations", json_pack("{s:s}", "org.opencontainers.image.title", title));
    return j;
}

al_status al_push(al_store *s, const char *model_ref, const char *dest, const al_reg_opts *o, uint64_t chunk_bytes,
                  al_push_result *res, al_error *err)
{
    memset(res, 0, sizeof(*res));
    al_reg_ref ref;
    al_status st = al_reg_ref_parse(dest, &ref, err);
    if (st)
        return st;
    if (ref.digest[0])
        return al_err(err, AL_ERR_ARG, "push: '%s': push to a tag, not a digest", dest);
    al_manifest *m = calloc(1, sizeof(*m));
    char (*paths)[4096] = calloc(AL_BUNDLE_MAX_FILES, 4096);
    al_model_row *row = calloc(1, sizeof(*row));
    char *man = NULL, *report = NULL, *body = NULL;
    size_t man_n = 0, sig_n = 0;
    unsigned char sig[256];
    al_reg *r = NULL;
    json_t *j = NULL;
    if (!m || !paths || !row) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = al_store_published_parts(s, model_ref, &man, &man_n, sig, &sig_n, m, paths, err)))
        goto done;
    if ((st = al_store_show(s, model_ref, row, &report, err)))
        goto done;
    if (!ref.tag[0])
        snprintf(ref.tag, sizeof(ref.tag), "%s", m->tag);
    al_reg_ref_format(&ref, res->ref, sizeof(res->ref));
    if ((st = al_reg_open(&ref, o, &r, err)))
        goto done;
    /* layers: the config, manifest.json, manifest.sig, the files */
    char man_hex[65], sig_hex[65];
    al_sha256_hex(man, man_n, man_hex);
    al_sha256_hex(sig, sig_n, sig_hex);
    if ((st = al_reg_blob_push_mem(r, EMPTY_JSON, 2, EMPTY_HEX, err)) ||
        (st = al_reg_blob_push_mem(r, man, man_n, man_hex, err)) ||
        (st = al_reg_blob_push_mem(r, sig, sig_n, sig_hex, err)))
        goto done;
    res->n_layers = 2;
    res->bytes_sent = man_n + sig_n;
    for (size_t i = 0; i < m->n_files; i++) {
        bool skipped = false;
        if ((st = al_reg_blob_push_file(r, paths[i], m->files[i].size, m->files[i].sha256, chunk_bytes, &skipped,
                                        err))) {
            al_err_prefix(err, m->files[i].name);
            goto done;
        }
        res->n_layers++;
        if (skipped)
            res->n_skipped++;
        else
            res->bytes_sent += m->files[i].size;
    }
    /* the OCI manifest */
    int n_ok = 0, n_fail = 0;
    for (const char *p = report; p && *p;) {
        if (!strncmp(p, "ok", 2))
            n_ok++;
        else if (!strncmp(p, "FAIL", 4))
            n_fail++;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    char summary[96];
    snprintf(summary, sizeof(summary), "%d checks passed, %d failed", n_ok, n_fail);
    json_t *layers = json_array();
    json_array_append_new(layers, descriptor(AL_REG_MT_BUNDLE_MANIFEST, man_hex, man_n, AL_BUNDLE_MANIFEST_ENTRY));
    json_array_append_new(layers, descriptor(AL_REG_MT_BUNDLE_SIG, sig_hex, sig_n, AL_BUNDLE_SIG_ENTRY));
    for (size_t i = 0; i < m->n_files; i++)
        json_array_append_new(layers, descriptor(!strcmp(m->files[i].role, "model") ? AL_REG_MT_GGUF : AL_REG_MT_FILE,
                                                 m->files[i].sha256, m->files[i].size, m->files[i].name));
    j = json_pack("{s:i, s:s, s:s, s:o, s:o, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s}}", "schemaVersion", 2,
                  "mediaType", AL_REG_OCI_MANIFEST, "artifactType", AL_REG_ARTIFACT_TYPE, "config",
                  descriptor(AL_REG_MT_EMPTY, EMPTY_HEX, 2, NULL), "layers", layers, "annotations",
                  "org.opencontainers.image.title", m->name, "org.opencontainers.image.created", m->created,
                  "io.airlock.model.name", m->name, "io.airlock.model.tag", m->tag, "io.airlock.publisher.key-id",
                  m->key_id, "io.airlock.publisher.name", m->signer, "io.airlock.scan.summary", summary);
    body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!body) {
        st = al_err(err, AL_ERR_NOMEM, "cannot build the OCI manifest");
        goto done;
    }
    st = al_reg_manifest_put(r, ref.tag, body, strlen(body), res->digest, err);
done:
    free(body);
    json_decref(j);
    al_reg_close(r);
    free(report);
    free(man);
    free(row);
    free(paths);
    free(m);
    return st;
}

/* ------------------------------------------------------------ pull */

typedef struct layer {
    char media_type[128];
    char hex[65];
    uint64_t size;
} layer;

static al_status parse_descriptor(json_t *d, const char *where, layer *out, al_error *err)
{
    const char *mt = json_string_value(json_object_get(d, "mediaType"));
    const char *dg = json_string_value(json_object_get(d, "digest"));
    json_t *sz = json_object_get(d, "size");
    if (!mt || !dg || !json_is_integer(sz) || json_integer_value(sz) < 0)
        return al_err(err, AL_ERR_FORMAT, "%s needs mediaType, digest and a size >= 0", where);
    if (strncmp(dg, "sha256:", 7) || !al_is_hex64(dg + 7))
        return al_err(err, AL_ERR_FORMAT, "%s: digest '%.80s' is not sha256:<64 hex>", where, dg);
    snprintf(out->media_type, sizeof(out->media_type), "%s", mt);
    memcpy(out->hex, dg + 7, 65);
    out->size = (uint64_t)json_integer_value(sz);
    return AL_OK;
}

typedef struct tar_feed {
    int fd; /* write end, owned by the thread */
    const char *man;
    size_t man_n;
    const unsigned char *sig;
    size_t sig_n;
    const al_manifest *m;
    char (*paths)[4096];
    al_status st;
    al_error err;
} tar_feed;

static al_status write_all(int fd, const void *p, size_t n, al_error *err)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return al_err(err, AL_ERR_IO, "bundle stream: write: %s", strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return AL_OK;
}

/* Writes the bundle (tar) into the pipe the import reads. */
static void *feed_thread(void *arg)
{
    tar_feed *f = arg;
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGPIPE); /* an import that stops early closes its end: EPIPE, not a signal */
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    al_error *err = &f->err;
    unsigned char *buf = malloc(COPY_BUF_BYTES);
    al_status st = buf ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    if (!st && !(st = al_tar_write_header(f->fd, AL_BUNDLE_MANIFEST_ENTRY, f->man_n, 0, err)) &&
        !(st = write_all(f->fd, f->man, f->man_n, err)))
        st = al_tar_write_pad(f->fd, f->man_n, err);
    if (!st && !(st = al_tar_write_header(f->fd, AL_BUNDLE_SIG_ENTRY, f->sig_n, 0, err)) &&
        !(st = write_all(f->fd, f->sig, f->sig_n, err)))
        st = al_tar_write_pad(f->fd, f->sig_n, err);
    for (size_t i = 0; !st && i < f->m->n_files; i++) {
        const al_manifest_file *mf = &f->m->files[i];
        int in = open(f->paths[i], O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            st = al_err(err, AL_ERR_IO, "%s: %s", f->paths[i], strerror(errno));
            break;
        }
        st = al_tar_write_header(f->fd, mf->name, mf->size, 0, err);
        uint64_t left = mf->size;
        while (!st && left) {
            ssize_t k = read(in, buf, left < COPY_BUF_BYTES ? (size_t)left : COPY_BUF_BYTES);
            if (k <= 0) {
                st = al_err(err, AL_ERR_IO, "%s: short read", f->paths[i]);
                break;
            }
            st = write_all(f->fd, buf, (size_t)k, err);
            left -= (uint64_t)k;
        }
        close(in);
        if (!st)
            st = al_tar_write_pad(f->fd, mf->size, err);
    }
    if (!st)
        st = al_tar_write_end(f->fd, err);
    close(f->fd);
    free(buf);
    f->st = st;
    return NULL;
}

static void rm_pull_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Replaces every "/dev/fd/N" label in msg with what. */
static void relabel(char *msg, size_t cap, const char *label, const char *what)
{
    char out[sizeof(((al_error *)0)->msg)];
    size_t o = 0, ll = strlen(label), wl = strlen(what);
    for (const char *p = msg; *p && o + 1 < sizeof(out);) {
        if (!strncmp(p, label, ll) && o + wl + 1 < sizeof(out)) {
            memcpy(out + o, what, wl);
            o += wl;
            p += ll;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    snprintf(msg, cap, "%s", out);
}

/* Parses and checks the registry's OCI manifest (untrusted): an airlock
 * model artifact whose layers 0 and 1 are the bundle manifest and its
 * signature. *layers is calloc'd (caller frees), *n_layers its length. */
static al_status parse_oci_manifest(const char *body, size_t body_n, const char *label, layer **layers,
                                    size_t *n_layers, al_error *err)
{
    al_status st = AL_OK;
    json_error_t je;
    json_t *j = json_loadb(body, body_n, 0, &je);
    if (!j || !json_is_object(j)) {
        st = al_err(err, AL_ERR_FORMAT, "%s: the registry's manifest is not a JSON object", label);
        goto done;
    }
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *at = json_string_value(json_object_get(j, "artifactType"));
    if ((mt && strcmp(mt, AL_REG_OCI_MANIFEST)) || !at || strcmp(at, AL_REG_ARTIFACT_TYPE)) {
        st = al_err(err, AL_ERR_FORMAT, "%s is not an airlock model (artifactType '%s', want '%s')", label,
                    at ? at : "none", AL_REG_ARTIFACT_TYPE);
        goto done;
    }
    json_t *ls = json_object_get(j, "layers");
    if (!json_is_array(ls) || json_array_size(ls) < 3 || json_array_size(ls) > AL_BUNDLE_MAX_FILES + 2) {
        st = al_err(err, AL_ERR_FORMAT, "%s: the manifest needs 3..%d layers", label, AL_BUNDLE_MAX_FILES + 2);
        goto done;
    }
    *n_layers = json_array_size(ls);
    *layers = calloc(*n_layers, sizeof(**layers));
    if (!*layers) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto done;
    }
    layer *l = *layers;
    for (size_t i = 0; i < *n_layers; i++) {
        char where[64];
        snprintf(where, sizeof(where), "layer %zu", i);
        if ((st = parse_descriptor(json_array_get(ls, i), where, &l[i], err))) {
            al_err_prefix(err, label);
            goto done;
        }
    }
    if (strcmp(l[0].media_type, AL_REG_MT_BUNDLE_MANIFEST) || strcmp(l[1].media_type, AL_REG_MT_BUNDLE_SIG))
        st = al_err(err, AL_ERR_FORMAT, "%s: layers 0 and 1 must be the bundle manifest and its signature", label);
done:
    json_decref(j);
    return st;
}

/* Already here (a sync polls often): sets res->imp.already, nothing to
 * download. Other content under the same name:tag is refused as import
 * refuses it. */
static al_status check_already(al_store *s, const al_manifest *m, al_pull_result *res, al_error *err)
{
    al_status st = AL_OK;
    al_model_row *row = calloc(1, sizeof(*row));
    char mref[140];
    snprintf(mref, sizeof(mref), "%s:%s", m->name, m->tag);
    al_error e2 = {0};
    const char *model_hex = "";
    for (size_t i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].role, "model"))
            model_hex = m->files[i].sha256;
    if (row && !al_store_show(s, mref, row, NULL, &e2) && strcmp(row->state, "rejected")) {
        snprintf(res->imp.name, sizeof(res->imp.name), "%s", m->name);
        snprintf(res->imp.tag, sizeof(res->imp.tag), "%s", m->tag);
        if (!strcmp(row->model_digest, model_hex)) {
            res->imp.already = true;
            snprintf(res->imp.state, sizeof(res->imp.state), "%s", row->state);
            snprintf(res->imp.digest, sizeof(res->imp.digest), "%s", row->digest);
        } else {
            st = al_err(err, AL_ERR_STATE, "%s is already in the store (%s) with other content; airlock rm it "
                                           "first", mref, row->state);
        }
    }
    free(row);
    return st;
}

/* Downloads (resuming) every file of m into dir = STORE/pull/DIGEST, one
 * file per sha256; paths[i] receives file i's path. */
static al_status fetch_files(al_reg *r, al_store *s, const al_manifest *m, char *dir, size_t dir_cap,
                             char (*paths)[4096], al_pull_result *res, al_error *err)
{
    snprintf(dir, dir_cap, "%s/pull", al_store_dir(s));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return al_err(err, AL_ERR_IO, "%s: mkdir: %s", dir, strerror(errno));
    snprintf(dir, dir_cap, "%s/pull/%s", al_store_dir(s), res->digest);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return al_err(err, AL_ERR_IO, "%s: mkdir: %s", dir, strerror(errno));
    for (size_t i = 0; i < m->n_files; i++) {
        snprintf(paths[i], 4096, "%s/%s", dir, m->files[i].sha256);
        uint64_t from = 0;
        al_status st = al_reg_blob_get_file(r, m->files[i].sha256, m->files[i].size, paths[i], &from, err);
        res->resumed_bytes += from;
        if (st) {
            al_err_prefix(err, m->files[i].name);
            return st;
        }
        res->bytes_fetched += m->files[i].size - from;
    }
    return AL_OK;
}

/* The store's own import, fed the fetched parts as a bundle through a pipe
 * (a writer thread streams the tar). */
static al_status import_fetched(al_store *s, const char *man, size_t man_n, const char *sig, size_t sig_n,
                                const al_manifest *m, char (*paths)[4096], const char *label, const char *importer,
                                al_store_scan_fn scan, void *scan_user, al_pull_result *res, al_error *err)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return al_err(err, AL_ERR_IO, "pipe: %s", strerror(errno));
    tar_feed f = {pfd[1], man, man_n, (const unsigned char *)sig, sig_n, m, paths, AL_OK, {0}};
    pthread_t th;
    if (pthread_create(&th, NULL, feed_thread, &f) != 0) {
        close(pfd[0]);
        close(pfd[1]);
        return al_err(err, AL_ERR_IO, "cannot start the bundle stream");
    }
    char fdpath[64];
    snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", pfd[0]);
    al_status st = al_store_import(s, fdpath, importer, scan, scan_user, &res->imp, err);
    close(pfd[0]); /* a writer still going gets EPIPE */
    pthread_join(th, NULL);
    /* The import reads what it needs and may stop early (a bundle already in
     * the store): the writer's EPIPE then means nothing. When the import
     * failed, its message says why; the writer's own error is secondary. */
    if (st)
        relabel(err->msg, sizeof(err->msg), fdpath, label);
    return st;
}

al_status al_pull(al_store *s, const char *src, const al_reg_opts *o, const char *importer, al_store_scan_fn scan,
                  void *scan_user, al_pull_result *res, al_error *err)
{
    memset(res, 0, sizeof(*res));
    al_reg_ref ref;
    al_status st = al_reg_ref_parse(src, &ref, err);
    if (st)
        return st;
    if (!ref.tag[0] && !ref.digest[0])
        return al_err(err, AL_ERR_ARG, "pull: '%s' names neither a tag (:TAG) nor a digest (@sha256:...)", src);
    char label[700];
    al_reg_ref_format(&ref, label, sizeof(label));
    al_reg *r = NULL;
    char *body = NULL, *man = NULL, *sig = NULL;
    size_t body_n = 0;
    al_manifest *m = calloc(1, sizeof(*m));
    char (*paths)[4096] = calloc(AL_BUNDLE_MAX_FILES, 4096);
    layer *layers = NULL;
    al_trust_key *keys = NULL;
    size_t n_keys = 0, n_layers = 0;
    char dir[PATH_MAX - 128] = "";
    bool fetched = false;
    if (!m || !paths) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = al_reg_open(&ref, o, &r, err)))
        goto done;
    char reference[140];
    if (ref.digest[0])
        snprintf(reference, sizeof(reference), "sha256:%s", ref.digest);
    else
        snprintf(reference, sizeof(reference), "%s", ref.tag);
    if ((st = al_reg_manifest_get(r, reference, &body, &body_n, res->digest, err)))
        goto done;
    if ((st = parse_oci_manifest(body, body_n, label, &layers, &n_layers, err)))
        goto done;
    if ((st = al_reg_blob_get_mem(r, layers[0].hex, layers[0].size, AL_MANIFEST_MAX_BYTES, &man, err)) ||
        (st = al_reg_blob_get_mem(r, layers[1].hex, layers[1].size, 256, &sig, err)))
        goto done;
    res->bytes_fetched = layers[0].size + layers[1].size;
    /* An early refusal for a publisher this store does not pin, before the
     * big download (the import checks the signature itself). */
    if ((st = al_manifest_parse(man, (size_t)layers[0].size, m, err))) {
        al_err_prefix(err, label);
        goto done;
    }
    if ((st = al_store_trust_list(s, &keys, &n_keys, err)))
        goto done;
    bool pinned = false;
    for (size_t i = 0; i < n_keys; i++)
        pinned |= !strcmp(keys[i].key_id, m->key_id);
    if (!pinned) {
        st = al_err(err, AL_ERR_CRYPTO,
                    "%s: untrusted key: signed by key id %.16s... ('%s'), which this store does not trust (airlock "
                    "trust add); nothing downloaded beyond the manifest",
                    label, m->key_id, m->signer);
        goto done;
    }
    if ((st = check_already(s, m, res, err)) || res->imp.already)
        goto done;
    /* every file the signed manifest lists must be a layer, same digest and size */
    for (size_t i = 0; i < m->n_files; i++) {
        bool found = false;
        for (size_t k = 2; k < n_layers && !found; k++)
            found = !strcmp(layers[k].hex, m->files[i].sha256) && layers[k].size == m->files[i].size;
        if (!found) {
            st = al_err(err, AL_ERR_FORMAT,
                        "%s: the artifact carries no layer sha256:%.16s... of %llu bytes for file '%s' of the signed "
                        "manifest",
                        label, m->files[i].sha256, (unsigned long long)m->files[i].size, m->files[i].name);
            goto done;
        }
    }
    /* downloads, resumable */
    if ((st = fetch_files(r, s, m, dir, sizeof(dir), paths, res, err)))
        goto done;
    fetched = true;
    st = import_fetched(s, man, (size_t)layers[0].size, sig, (size_t)layers[1].size, m, paths, label, importer,
                        scan, scan_user, res, err);
done:
    if (fetched && dir[0])
        rm_pull_dir(dir); /* verified and imported (or refused by the import): nothing to resume */
    al_reg_close(r);
    free(keys);
    free(layers);
    free(body);
    free(man);
    free(sig);
    free(paths);
    free(m);
    return st;
}

/* ------------------------------------------------------------ sync */

static int sync_one(al_store *s, const char *ref, const char *policy_actor, const al_reg_opts *o,
                    const char *importer, al_store_scan_fn scan, void *scan_user, FILE *log)
{
    al_pull_result res;
    al_error err = {0};
    if (al_pull(s, ref, o, importer, scan, scan_user, &res, &err)) {
        fprintf(log, "sync: %s: %s%s%s\n", ref, err.msg, res.imp.state[0] ? " -> " : "", res.imp.state);
        return 1;
    }
    if (res.imp.already) {
        return 0; /* quiet: nothing changed */
    }
    fprintf(log, "sync: %s: %s:%s %s (sha256:%s)\n", ref, res.imp.name, res.imp.tag, res.imp.state, res.imp.digest);
    if (policy_actor && !strcmp(res.imp.state, "quarantined")) {
        char mref[140];
        bool pub = false;
        int n = 0;
        snprintf(mref, sizeof(mref), "%s:%s", res.imp.name, res.imp.tag);
        if (al_store_approve(s, mref, policy_actor, &pub, &n, &err)) {
            fprintf(log, "sync: %s: approval by %s: %s\n", mref, policy_actor, err.msg);
            return 1;
        }
        fprintf(log, "sync: %s approved by %s: %s\n", mref, policy_actor, pub ? "published" : "still quarantined");
    }
    return 0;
}

int al_sync_once(al_store *s, const char *const *refs, size_t n, const al_reg_opts *o, const char *importer,
                 bool approve_by_policy, al_store_scan_fn scan, void *scan_user, FILE *log)
{
    int fails = 0;
    for (size_t i = 0; i < n; i++) {
        al_reg_ref ref;
        al_error err = {0};
        if (al_reg_ref_parse(refs[i], &ref, &err)) {
            fprintf(log, "sync: %s\n", err.msg);
            fails++;
            continue;
        }
        char actor[600];
        snprintf(actor, sizeof(actor), "policy:%s/%s", ref.host, ref.repo);
        const char *pa = approve_by_policy ? actor : NULL;
        if (ref.tag[0] || ref.digest[0]) {
            fails += sync_one(s, refs[i], pa, o, importer, scan, scan_user, log);
            continue;
        }
        al_reg *r = NULL;
        char **tags = NULL;
        size_t nt = 0;
        if (al_reg_open(&ref, o, &r, &err) || al_reg_tags_list(r, &tags, &nt, &err)) {
            fprintf(log, "sync: %s: %s\n", refs[i], err.msg);
            fails++;
        }
        al_reg_close(r);
        for (size_t k = 0; k < nt; k++) {
            char one[800];
            al_reg_ref t = ref;
            snprintf(t.tag, sizeof(t.tag), "%s", tags[k]);
            al_reg_ref_format(&t, one, sizeof(one));
            fails += sync_one(s, one, pa, o, importer, scan, scan_user, log);
        }
        al_reg_tags_free(tags, nt);
    }
    fflush(log);
    return fails;
}
