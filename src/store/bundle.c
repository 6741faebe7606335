/* bundle.c - bundle manifests and bundle writing (see bundle.h). */
#include "store/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "store/sign.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool valid_word(const char *s, size_t max, bool lower_only)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !is_alnum(s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (lower_only && c >= 'A' && c <= 'Z')
            return false;
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

bool al_bundle_valid_name(const char *s) { return valid_word(s, 64, true); }
bool al_bundle_valid_tag(const char *s) { return valid_word(s, 64, false); }

bool al_bundle_valid_file_name(const char *s)
{
    return valid_word(s, AL_TAR_NAME_MAX, false) && strcmp(s, AL_BUNDLE_MANIFEST_ENTRY) &&
           strcmp(s, AL_BUNDLE_SIG_ENTRY);
}

static bool valid_role(const char *r)
{
    return !strcmp(r, "model") || !strcmp(r, "license") || !strcmp(r, "file");
}

/* Copies a JSON string member into dst (cap bytes). */
static al_status get_str(json_t *o, const char *key, char *dst, size_t cap, bool required, al_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (!required) {
            dst[0] = 0;
            return AL_OK;
        }
        return al_err(err, AL_ERR_FORMAT, "manifest: missing field '%s'", key);
    }
    if (!json_is_string(v))
        return al_err(err, AL_ERR_FORMAT, "manifest: field '%s' is not a string", key);
    size_t n = json_string_length(v);
    if (n >= cap)
        return al_err(err, AL_ERR_FORMAT, "manifest: field '%s' is %zu bytes, at most %zu allowed", key, n, cap - 1);
    const char *s = json_string_value(v);
    if (memchr(s, 0, n))
        return al_err(err, AL_ERR_FORMAT, "manifest: field '%s' contains a NUL byte", key);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return al_err(err, AL_ERR_FORMAT, "manifest: field '%s' contains a control character", key);
    memcpy(dst, s, n + 1);
    return AL_OK;
}

static al_status check_keys(json_t *o, const char *const *allowed, const char *where, al_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            ok = ok || !strcmp(k, allowed[i]);
        if (!ok)
            return al_err(err, AL_ERR_FORMAT, "manifest: unknown field '%s' in %s", k, where);
    }
    return AL_OK;
}

al_status al_manifest_parse(const char *json, size_t n, al_manifest *m, al_error *err)
{
    memset(m, 0, sizeof(*m));
    if (n > AL_MANIFEST_MAX_BYTES)
        return al_err(err, AL_ERR_LIMIT, "manifest: %zu bytes is over the %u-byte limit", n, AL_MANIFEST_MAX_BYTES);
    json_error_t je;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return al_err(err, AL_ERR_FORMAT, "manifest: not valid JSON (line %d: %s)", je.line, je.text);
    al_status st = AL_OK;
    char fmt[32];
    static const char *const top_keys[] = {"format", "format_version", "name", "tag", "created",
                                           "provenance", "files", NULL};
    static const char *const prov_keys[] = {"source", "signer", "key_id", "tool", NULL};
    static const char *const file_keys[] = {"name", "role", "size", "sha256", NULL};
    if (!json_is_object(root)) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: not a JSON object");
        goto done;
    }
    if ((st = check_keys(root, top_keys, "the manifest", err)))
        goto done;
    if ((st = get_str(root, "format", fmt, sizeof(fmt), true, err)))
        goto done;
    if (strcmp(fmt, AL_BUNDLE_FORMAT)) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: format '%s' is not '%s'", fmt, AL_BUNDLE_FORMAT);
        goto done;
    }
    json_t *fv = json_object_get(root, "format_version");
    if (!json_is_integer(fv) || json_integer_value(fv) != AL_BUNDLE_FORMAT_VERSION) {
        st = al_err(err, AL_ERR_UNSUPPORTED, "manifest: format_version must be %d", AL_BUNDLE_FORMAT_VERSION);
        goto done;
    }
    m->format_version = AL_BUNDLE_FORMAT_VERSION;
    if ((st = get_str(root, "name", m->name, sizeof(m->name), true, err)) ||
        (st = get_str(root, "tag", m->tag, sizeof(m->tag), true, err)) ||
        (st = get_str(root, "created", m->created, sizeof(m->created), true, err)))
        goto done;
    if (!al_bundle_valid_name(m->name)) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: model name '%s' is not valid ([a-z0-9][a-z0-9._-]{0,63})", m->name);
        goto done;
    }
    if (!al_bundle_valid_tag(m->tag)) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: tag '%s' is not valid ([A-Za-z0-9][A-Za-z0-9._-]{0,63})", m->tag);
        goto done;
    }
    json_t *prov = json_object_get(root, "provenance");
    if (!json_is_object(prov)) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: 'provenance' must be an object");
        goto done;
    }
    if ((st = check_keys(prov, prov_keys, "provenance", err)) ||
        (st = get_str(prov, "source", m->source, sizeof(m->source), false, err)) ||
        (st = get_str(prov, "signer", m->signer, sizeof(m->signer), true, err)) ||
        (st = get_str(prov, "key_id", m->key_id, sizeof(m->key_id), true, err)) ||
        (st = get_str(prov, "tool", m->tool, sizeof(m->tool), false, err)))
        goto done;
    if (!al_is_hex64(m->key_id)) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: provenance.key_id is not 64 hex digits");
        goto done;
    }
    json_t *files = json_object_get(root, "files");
    if (!json_is_array(files) || json_array_size(files) == 0 || json_array_size(files) > AL_BUNDLE_MAX_FILES) {
        st = al_err(err, AL_ERR_FORMAT, "manifest: 'files' must be an array of 1..%d files", AL_BUNDLE_MAX_FILES);
        goto done;
    }
    size_t n_model = 0, n_license = 0;
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *f = json_array_get(files, i);
        al_manifest_file *mf = &m->files[i];
        if (!json_is_object(f)) {
            st = al_err(err, AL_ERR_FORMAT, "manifest: files[%zu] is not an object", i);
            goto done;
        }
        if ((st = check_keys(f, file_keys, "a file entry", err)) ||
            (st = get_str(f, "name", mf->name, sizeof(mf->name), true, err)) ||
            (st = get_str(f, "role", mf->role, sizeof(mf->role), true, err)) ||
            (st = get_str(f, "sha256", mf->sha256, sizeof(mf->sha256), true, err)))
            goto done;
        if (!al_bundle_valid_file_name(mf->name)) {
            st = al_err(err, AL_ERR_FORMAT, "manifest: file name '%s' is not valid (flat name, [A-Za-z0-9._-])",
                        mf->name);
            goto done;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->files[j].name, mf->name)) {
                st = al_err(err, AL_ERR_FORMAT, "manifest: file '%s' is listed twice", mf->name);
                goto done;
            }
        if (!valid_role(mf->role)) {
            st = al_err(err, AL_ERR_FORMAT, "manifest: file '%s' has unknown role '%s'", mf->name, mf->role);
            goto done;
        }
        n_model += !strcmp(mf->role, "model");
        n_license += !strcmp(mf->role, "license");
        json_t *sz = json_object_get(f, "size");
        if (!json_is_integer(sz) || json_integer_value(sz) < 0) {
            st = al_err(err, AL_ERR_FORMAT, "manifest: file '%s' has no valid size", mf->name);
            goto done;
        }
        mf->size = (uint64_t)json_integer_value(sz);
        if (mf->size > AL_BUNDLE_MAX_FILE_BYTES) {
            st = al_err(err, AL_ERR_LIMIT, "manifest: file '%s' declares %llu bytes, over the limit of %llu",
                        mf->name, (unsigned long long)mf->size, (unsigned long long)AL_BUNDLE_MAX_FILE_BYTES);
            goto done;
        }
        if (!al_is_hex64(mf->sha256)) {
            st = al_err(err, AL_ERR_FORMAT, "manifest: file '%s' has a sha256 that is not 64 lowercase hex digits",
                        mf->name);
            goto done;
        }
    }
    m->n_files = json_array_size(files);
    if (n_model != 1 || n_license > 1)
        st = al_err(err, AL_ERR_FORMAT, "manifest: needs exactly one 'model' file and at most one 'license' (has %zu and %zu)",
                    n_model, n_license);
done:
    json_decref(root);
    return st;
}

al_status al_manifest_dump(const al_manifest *m, char **out, size_t *n, al_error *err)
{
    json_t *files = json_array();
    for (size_t i = 0; i < m->n_files; i++) {
        const al_manifest_file *f = &m->files[i];
        json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:s}", "name", f->name, "role", f->role, "size",
                                               (json_int_t)f->size, "sha256", f->sha256));
    }
    json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:o}", "format", AL_BUNDLE_FORMAT,
                             "format_version", m->format_version, "name", m->name, "tag", m->tag, "created",
                             m->created, "provenance", "source", m->source, "signer", m->signer, "key_id",
                             m->key_id, "tool", m->tool, "files", files);
    if (!root)
        return al_err(err, AL_ERR_NOMEM, "manifest: cannot build JSON");
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (!s)
        return al_err(err, AL_ERR_NOMEM, "manifest: cannot serialise JSON");
    *out = s;
    *n = strlen(s);
    return AL_OK;
}

/* Streams path into the tar as entry `name`, checking it still has `size`
 * bytes. */
static al_status copy_entry(int out, const char *name, const char *path, uint64_t size, const char *sha256,
                            unsigned char *buf, size_t cap, al_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    al_sha256 *md = al_sha256_begin();
    if (!md) {
        close(fd);
        return al_err(err, AL_ERR_CRYPTO, "cannot start SHA-256");
    }
    al_status st = al_tar_write_header(out, name, size, time(NULL), err);
    uint64_t done = 0;
    while (!st) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = al_err(err, AL_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        if (done + (uint64_t)r > size) {
            st = al_err(err, AL_ERR_IO, "%s: file grew while bundling", path);
            break;
        }
        done += (uint64_t)r;
        al_sha256_update(md, buf, (size_t)r);
        st = al_fs_write_all(out, buf, (size_t)r, "bundle", err);
    }
    close(fd);
    if (!st && done != size)
        st = al_err(err, AL_ERR_IO, "%s: file changed size while bundling (%llu of %llu bytes)", path,
                    (unsigned long long)done, (unsigned long long)size);
    /* the bytes written must be the bytes the manifest names: catches a file
     * edited while bundling and a blob tampered at rest before export */
    char hex[65];
    if (st)
        al_sha256_free(md);
    else if (al_sha256_end(md, hex) && strcmp(hex, sha256))
        st = al_err(err, AL_ERR_CRYPTO, "%s: tampered: its sha256 is %s but the manifest says %s", path, hex,
                    sha256);
    if (!st)
        st = al_tar_write_pad(out, size, err);
    return st;
}

static al_status write_mem_entry(int out, const char *name, const void *data, size_t n, al_error *err)
{
    al_status st = al_tar_write_header(out, name, n, time(NULL), err);
    if (!st)
        st = al_fs_write_all(out, data, n, "bundle", err);
    if (!st)
        st = al_tar_write_pad(out, n, err);
    return st;
}

al_status al_bundle_write(const char *out_path, const char *manifest, size_t manifest_n,
                          const unsigned char *sig, size_t sig_n, const al_manifest *m,
                          const char *const *paths, al_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out_path, (long)getpid()) >= (int)sizeof(tmp))
        return al_err(err, AL_ERR_ARG, "%s: path too long", out_path);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    al_status st = buf ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    if (!st)
        st = write_mem_entry(out, AL_BUNDLE_MANIFEST_ENTRY, manifest, manifest_n, err);
    if (!st)
        st = write_mem_entry(out, AL_BUNDLE_SIG_ENTRY, sig, sig_n, err);
    for (size_t i = 0; !st && i < m->n_files; i++)
        st = copy_entry(out, m->files[i].name, paths[i], m->files[i].size, m->files[i].sha256, buf, cap, err);
    if (!st)
        st = al_tar_write_end(out, err);
    if (!st && fsync(out) != 0)
        st = al_err(err, AL_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    free(buf);
    close(out);
    if (!st && rename(tmp, out_path) != 0)
        st = al_err(err, AL_ERR_IO, "%s: rename failed: %s", out_path, strerror(errno));
    if (st)
        unlink(tmp);
    return st;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

al_status al_bundle_create(const al_bundle_spec *spec, const char *out_path, char *manifest_hex, al_error *err)
{
    al_manifest *m = calloc(1, sizeof(*m));
    if (!m)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    al_status st = AL_OK;
    char *json = NULL;
    size_t jn = 0;
    const char *paths[AL_BUNDLE_MAX_FILES];
    if (spec->n_inputs == 0 || spec->n_inputs > AL_BUNDLE_MAX_FILES) {
        st = al_err(err, AL_ERR_ARG, "a bundle holds 1..%d files", AL_BUNDLE_MAX_FILES);
        goto done;
    }
    if (!al_bundle_valid_name(spec->name)) {
        st = al_err(err, AL_ERR_ARG, "model name '%s' is not valid ([a-z0-9][a-z0-9._-]{0,63})", spec->name);
        goto done;
    }
    if (!al_bundle_valid_tag(spec->tag)) {
        st = al_err(err, AL_ERR_ARG, "tag '%s' is not valid ([A-Za-z0-9][A-Za-z0-9._-]{0,63})", spec->tag);
        goto done;
    }
    m->format_version = AL_BUNDLE_FORMAT_VERSION;
    snprintf(m->name, sizeof(m->name), "%s", spec->name);
    snprintf(m->tag, sizeof(m->tag), "%s", spec->tag);
    snprintf(m->source, sizeof(m->source), "%s", spec->source ? spec->source : "");
    snprintf(m->tool, sizeof(m->tool), "airlock %s", al_version());
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->created, sizeof(m->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* signer: the key file's name without .pem */
    const char *kb = base_name(spec->key_path);
    size_t kl = strlen(kb);
    if (kl > 4 && !strcmp(kb + kl - 4, ".pem"))
        kl -= 4;
    if (kl >= sizeof(m->signer))
        kl = sizeof(m->signer) - 1;
    memcpy(m->signer, kb, kl);
    m->signer[kl] = 0;
    for (size_t i = 0; i < spec->n_inputs; i++) {
        al_manifest_file *f = &m->files[i];
        const char *bn = base_name(spec->inputs[i].path);
        if (!al_bundle_valid_file_name(bn)) {
            st = al_err(err, AL_ERR_ARG, "%s: file name '%s' is not allowed in a bundle (flat, [A-Za-z0-9._-])",
                        spec->inputs[i].path, bn);
            goto done;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->files[j].name, bn)) {
                st = al_err(err, AL_ERR_ARG, "two files are named '%s'", bn);
                goto done;
            }
        snprintf(f->name, sizeof(f->name), "%s", bn);
        snprintf(f->role, sizeof(f->role), "%s", spec->inputs[i].role);
        struct stat sb;
        if (stat(spec->inputs[i].path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            st = al_err(err, AL_ERR_IO, "%s: not a readable regular file", spec->inputs[i].path);
            goto done;
        }
        f->size = (uint64_t)sb.st_size;
        if ((st = al_sha256_file(spec->inputs[i].path, f->sha256, err)))
            goto done;
        paths[i] = spec->inputs[i].path;
    }
    m->n_files = spec->n_inputs;
    /* the key id must be known before signing: sign a dummy to learn it */
    unsigned char sig[AL_SIG_BYTES];
    if ((st = al_sign(spec->key_path, "", 0, sig, m->key_id, err)))
        goto done;
    if ((st = al_manifest_dump(m, &json, &jn, err)))
        goto done;
    char kid[65];
    if ((st = al_sign(spec->key_path, json, jn, sig, kid, err)))
        goto done;
    if ((st = al_bundle_write(out_path, json, jn, sig, sizeof(sig), m, paths, err)))
        goto done;
    if (manifest_hex)
        al_sha256_hex(json, jn, manifest_hex);
done:
    free(json);
    free(m);
    return st;
}
