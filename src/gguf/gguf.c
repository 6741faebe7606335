/*
 * gguf.c - the validating GGUF reader.
 *
 * Layout (v2 and v3, little-endian):
 *   "GGUF" u32 version u64 n_tensors u64 n_kv
 *   n_kv x { str key; u32 type; value }
 *   n_tensors x { str name; u32 n_dims; u64 ne[n_dims]; u32 type; u64 offset }
 *   padding to general.alignment (default 32), then the data section.
 * A str is { u64 len; u8 bytes[len] } with no terminator.
 *
 * Everything is read through a cursor that knows how many bytes remain, so
 * a hostile length can never move a read outside the map.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor/types.h"
#include "util/error.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_KEY_LEN 65535u
#define GGUF_MAX_DIMS 4u

typedef struct cursor {
    const uint8_t *base;
    uint64_t pos;
    uint64_t end;
} cursor;

typedef struct parser {
    cursor c;
    const char *path;
    al_error *err;
} parser;

static uint64_t remaining(const cursor *c)
{
    return c->end - c->pos;
}

static al_status fail_trunc(parser *p, const char *what)
{
    return al_err(p->err, AL_ERR_FORMAT, "%s: truncated file: %s at byte %llu runs past the end (%llu bytes)",
                  p->path, what, (unsigned long long)p->c.pos, (unsigned long long)p->c.end);
}

static al_status read_bytes(parser *p, void *dst, uint64_t n, const char *what)
{
    if (remaining(&p->c) < n)
        return fail_trunc(p, what);
    memcpy(dst, p->c.base + p->c.pos, n);
    p->c.pos += n;
    return AL_OK;
}

static al_status read_u32(parser *p, uint32_t *v, const char *what)
{
    return read_bytes(p, v, 4, what);
}

static al_status read_u64(parser *p, uint64_t *v, const char *what)
{
    return read_bytes(p, v, 8, what);
}

static al_status read_str(parser *p, al_str *s, const char *what)
{
    uint64_t len = 0;
    al_status st = read_u64(p, &len, what);
    if (st)
        return st;
    if (len > remaining(&p->c))
        return al_err(p->err, AL_ERR_FORMAT,
                      "%s: %s: string length %llu at byte %llu exceeds the %llu bytes left in the file",
                      p->path, what, (unsigned long long)len, (unsigned long long)(p->c.pos - 8),
                      (unsigned long long)remaining(&p->c));
    s->ptr = (const char *)(p->c.base + p->c.pos);
    s->len = len;
    p->c.pos += len;
    return AL_OK;
}

static uint32_t scalar_size(al_gguf_vtype t)
{
    switch (t) {
    case AL_GGUF_U8: case AL_GGUF_I8: case AL_GGUF_BOOL: return 1;
    case AL_GGUF_U16: case AL_GGUF_I16: return 2;
    case AL_GGUF_U32: case AL_GGUF_I32: case AL_GGUF_F32: return 4;
    case AL_GGUF_U64: case AL_GGUF_I64: case AL_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Formats a key for messages: printable ASCII only, bounded. */
static const char *key_for_msg(al_str k, char *buf, size_t cap)
{
    size_t n = 0;
    for (uint64_t i = 0; i < k.len && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)k.ptr[i];
        buf[n++] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    if (k.len > n && n + 4 < cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static al_status parse_value(parser *p, al_gguf_kv *kv, const char *key)
{
    uint32_t sz = scalar_size(kv->type);
    if (sz) {
        if (remaining(&p->c) < sz)
            return fail_trunc(p, key);
        kv->data = p->c.base + p->c.pos;
        p->c.pos += sz;
        return AL_OK;
    }
    if (kv->type == AL_GGUF_STR)
        return read_str(p, &kv->str, key);
    if (kv->type != AL_GGUF_ARR)
        return al_err(p->err, AL_ERR_FORMAT, "%s: key '%s': unknown value type %u", p->path, key,
                      (unsigned)kv->type);

    uint32_t et = 0;
    uint64_t n = 0;
    al_status st = read_u32(p, &et, key);
    if (st || (st = read_u64(p, &n, key)))
        return st;
    kv->arr_type = (al_gguf_vtype)et;
    kv->arr_n = n;
    if (et == AL_GGUF_ARR)
        return al_err(p->err, AL_ERR_UNSUPPORTED, "%s: key '%s': arrays of arrays are not supported", p->path,
                      key);
    uint32_t esz = scalar_size(kv->arr_type);
    if (esz) {
        if (n > remaining(&p->c) / esz)
            return al_err(p->err, AL_ERR_FORMAT,
                          "%s: key '%s': array of %llu elements of %u bytes exceeds the %llu bytes left", p->path,
                          key, (unsigned long long)n, esz, (unsigned long long)remaining(&p->c));
        kv->data = p->c.base + p->c.pos;
        p->c.pos += n * esz;
        return AL_OK;
    }
    if (et != AL_GGUF_STR)
        return al_err(p->err, AL_ERR_FORMAT, "%s: key '%s': unknown array element type %u", p->path, key, et);
    /* Each string takes at least its 8-byte length. */
    if (n > remaining(&p->c) / 8)
        return al_err(p->err, AL_ERR_FORMAT, "%s: key '%s': array of %llu strings cannot fit in the %llu bytes left",
                      p->path, key, (unsigned long long)n, (unsigned long long)remaining(&p->c));
    /* checked here, walked by the users (al_gguf_str_next): no per-string
     * allocation */
    kv->data = p->c.base + p->c.pos;
    for (uint64_t i = 0; i < n; i++) {
        al_str tmp;
        if ((st = read_str(p, &tmp, key)))
            return st;
    }
    return AL_OK;
}

static int cmp_str(al_str a, al_str b)
{
    uint64_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.ptr, b.ptr, n);
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_kv_key(const void *a, const void *b)
{
    return cmp_str((*(const al_gguf_kv *const *)a)->key, (*(const al_gguf_kv *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return cmp_str((*(const al_gguf_tensor *const *)a)->name, (*(const al_gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const al_gguf_tensor *x = *(const al_gguf_tensor *const *)a, *y = *(const al_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static al_status parse_kvs(parser *p, al_gguf *g)
{
    char kbuf[96];
    /* Each kv takes at least 8 (key len) + 4 (type) + 1 bytes. */
    if (g->n_kv > remaining(&p->c) / 13)
        return al_err(p->err, AL_ERR_FORMAT, "%s: header: n_kv = %llu cannot fit in a %llu-byte file", p->path,
                      (unsigned long long)g->n_kv, (unsigned long long)p->c.end);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(al_gguf_kv));
    if (!g->kv)
        return al_err(p->err, AL_ERR_NOMEM, "%s: out of memory", p->path);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        al_gguf_kv *kv = &g->kv[i];
        al_status st = read_str(p, &kv->key, "metadata key");
        if (st)
            return st;
        if (kv->key.len == 0 || kv->key.len > GGUF_MAX_KEY_LEN)
            return al_err(p->err, AL_ERR_FORMAT, "%s: metadata key #%llu: bad key length %llu", p->path,
                          (unsigned long long)i, (unsigned long long)kv->key.len);
        key_for_msg(kv->key, kbuf, sizeof(kbuf));
        uint32_t t;
        if ((st = read_u32(p, &t, kbuf)))
            return st;
        kv->type = (al_gguf_vtype)t;
        if ((st = parse_value(p, kv, kbuf)))
            return st;
    }
    /* Sorted index for lookups; catches duplicate keys. */
    al_gguf_kv **idx = malloc((g->n_kv ? g->n_kv : 1) * sizeof(*idx));
    if (!idx)
        return al_err(p->err, AL_ERR_NOMEM, "%s: out of memory", p->path);
    g->kv_by_key = idx;
    for (uint64_t i = 0; i < g->n_kv; i++)
        idx[i] = &g->kv[i];
    qsort(idx, g->n_kv, sizeof(*idx), cmp_kv_key);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (!cmp_str(idx[i - 1]->key, idx[i]->key)) {
            key_for_msg(idx[i]->key, kbuf, sizeof(kbuf));
            return al_err(p->err, AL_ERR_FORMAT, "%s: metadata key '%s' appears more than once", p->path, kbuf);
        }
    return AL_OK;
}

static al_status parse_tensor_infos(parser *p, al_gguf *g, const al_gguf_params *params)
{
    char nbuf[96];
    /* Each tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes. */
    if (g->n_tensors > remaining(&p->c) / 32)
        return al_err(p->err, AL_ERR_FORMAT, "%s: header: n_tensors = %llu cannot fit in a %llu-byte file",
                      p->path, (unsigned long long)g->n_tensors, (unsigned long long)p->c.end);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(al_gguf_tensor));
    if (!g->tensors)
        return al_err(p->err, AL_ERR_NOMEM, "%s: out of memory", p->path);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        al_gguf_tensor *t = &g->tensors[i];
        al_status st = read_str(p, &t->name, "tensor name");
        if (st)
            return st;
        if (t->name.len == 0 || t->name.len > GGUF_MAX_KEY_LEN)
            return al_err(p->err, AL_ERR_FORMAT, "%s: tensor #%llu: bad name length %llu", p->path,
                          (unsigned long long)i, (unsigned long long)t->name.len);
        key_for_msg(t->name, nbuf, sizeof(nbuf));
        if ((st = read_u32(p, &t->n_dims, nbuf)))
            return st;
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
            return al_err(p->err, AL_ERR_FORMAT, "%s: tensor '%s': n_dims = %u (must be 1..%u)", p->path, nbuf,
                          t->n_dims, GGUF_MAX_DIMS);
        t->n_elems = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            t->ne[d] = 1;
            if (d >= t->n_dims)
                continue;
            if ((st = read_u64(p, &t->ne[d], nbuf)))
                return st;
            if (t->ne[d] == 0 || t->ne[d] > (UINT64_C(1) << 40))
                return al_err(p->err, AL_ERR_FORMAT, "%s: tensor '%s': dimension %u is %llu (must be 1..2^40)",
                              p->path, nbuf, d, (unsigned long long)t->ne[d]);
            if (t->n_elems > (UINT64_C(1) << 50) / t->ne[d])
                return al_err(p->err, AL_ERR_FORMAT, "%s: tensor '%s': shape overflows (more than 2^50 elements)",
                              p->path, nbuf);
            t->n_elems *= t->ne[d];
        }
        if ((st = read_u32(p, &t->type, nbuf)) || (st = read_u64(p, &t->offset, nbuf)))
            return st;
        const al_type_traits *tt = al_type_get(t->type);
        if (!tt->name)
            return al_err(p->err, AL_ERR_FORMAT, "%s: tensor '%s': unknown tensor type id %u", p->path, nbuf,
                          t->type);
        if (!tt->supported && !params->allow_unsupported_types) {
            char list[400];
            al_type_supported_list(list, sizeof(list));
            return al_err(p->err, AL_ERR_UNSUPPORTED, "%s: tensor '%s': tensor type %s is not supported (supported: %s)",
                          p->path, nbuf, tt->name, list);
        }
        if (t->ne[0] % tt->block_elems)
            return al_err(p->err, AL_ERR_FORMAT,
                          "%s: tensor '%s': row length %llu is not a multiple of %s's block of %u", p->path, nbuf,
                          (unsigned long long)t->ne[0], tt->name, tt->block_elems);
        t->n_bytes = t->n_elems / tt->block_elems * tt->block_bytes;
    }
    /* Sorted index for lookups; catches duplicate names. */
    al_gguf_tensor **idx = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof(*idx));
    if (!idx)
        return al_err(p->err, AL_ERR_NOMEM, "%s: out of memory", p->path);
    g->tensor_by_name = idx;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        idx[i] = &g->tensors[i];
    qsort(idx, g->n_tensors, sizeof(*idx), cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (!cmp_str(idx[i - 1]->name, idx[i]->name)) {
            key_for_msg(idx[i]->name, nbuf, sizeof(nbuf));
            return al_err(p->err, AL_ERR_FORMAT, "%s: tensor name '%s' appears more than once", p->path, nbuf);
        }
    return AL_OK;
}

static al_status place_tensors(parser *p, al_gguf *g)
{
    char nbuf[96];
    uint64_t pos = p->c.pos;
    uint64_t a = g->alignment;
    uint64_t data_off = (pos + a - 1) / a * a;
    if (data_off > p->c.end) {
        if (g->n_tensors)
            return al_err(p->err, AL_ERR_FORMAT, "%s: truncated file: the data section would start at byte %llu, past the end (%llu bytes)",
                          p->path, (unsigned long long)data_off, (unsigned long long)p->c.end);
        data_off = p->c.end;
    }
    g->data_offset = data_off;
    g->data_bytes = p->c.end - data_off;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        al_gguf_tensor *t = &g->tensors[i];
        key_for_msg(t->name, nbuf, sizeof(nbuf));
        if (t->offset % a)
            return al_err(p->err, AL_ERR_FORMAT, "%s: tensor '%s': offset %llu is not aligned to %llu bytes",
                          p->path, nbuf, (unsigned long long)t->offset, (unsigned long long)a);
        if (t->offset > g->data_bytes || t->n_bytes > g->data_bytes - t->offset)
            return al_err(p->err, AL_ERR_FORMAT,
                          "%s: tensor '%s': bytes [%llu, %llu) lie outside the data section (%llu bytes); "
                          "the file may be truncated",
                          p->path, nbuf, (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->n_bytes), (unsigned long long)g->data_bytes);
        t->data = g->map + data_off + t->offset;
    }
    if (g->n_tensors > 1) {
        al_gguf_tensor **idx = malloc(g->n_tensors * sizeof(*idx));
        if (!idx)
            return al_err(p->err, AL_ERR_NOMEM, "%s: out of memory", p->path);
        for (uint64_t i = 0; i < g->n_tensors; i++)
            idx[i] = &g->tensors[i];
        qsort(idx, g->n_tensors, sizeof(*idx), cmp_tensor_offset);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (idx[i - 1]->offset + idx[i - 1]->n_bytes > idx[i]->offset) {
                char nbuf2[96];
                key_for_msg(idx[i - 1]->name, nbuf, sizeof(nbuf));
                key_for_msg(idx[i]->name, nbuf2, sizeof(nbuf2));
                free(idx);
                return al_err(p->err, AL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section",
                              p->path, nbuf, nbuf2);
            }
        free(idx);
    }
    return AL_OK;
}

static al_status parse(parser *p, al_gguf *g, const al_gguf_params *params)
{
    char magic[4];
    al_status st = read_bytes(p, magic, 4, "magic");
    if (st)
        return al_err(p->err, AL_ERR_FORMAT, "%s: not a GGUF file (shorter than its 4-byte magic)", p->path);
    if (memcmp(magic, "GGUF", 4))
        return al_err(p->err, AL_ERR_FORMAT, "%s: not a GGUF file (magic is not \"GGUF\")", p->path);
    if ((st = read_u32(p, &g->version, "header version")))
        return st;
    if (g->version != 2 && g->version != 3)
        return al_err(p->err, AL_ERR_UNSUPPORTED, "%s: header: GGUF version %u is not supported (2 and 3 are)",
                      p->path, g->version);
    if ((st = read_u64(p, &g->n_tensors, "header n_tensors")) || (st = read_u64(p, &g->n_kv, "header n_kv")))
        return st;
    if ((st = parse_kvs(p, g)))
        return st;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const al_gguf_kv *akv = al_gguf_find(g, "general.alignment");
    if (akv) {
        uint32_t a = 0;
        if (!al_gguf_get_u32(g, "general.alignment", &a) || a < 8 || (a & (a - 1)) || a > 65536)
            return al_err(p->err, AL_ERR_FORMAT,
                          "%s: key 'general.alignment': must be a power of two from 8 to 65536 (got %u)", p->path, a);
        g->alignment = a;
    }
    if ((st = parse_tensor_infos(p, g, params)))
        return st;
    return place_tensors(p, g);
}

al_status al_gguf_open(const char *path, const al_gguf_params *params, al_gguf **out, al_error *err)
{
    static const al_gguf_params k_default = {0};
    *out = NULL;
    if (!params)
        params = &k_default;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return al_err(err, AL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return al_err(err, AL_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 24) {
        close(fd);
        return al_err(err, AL_ERR_FORMAT, "%s: truncated file: %lld bytes is too short for a GGUF header", path,
                      (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return al_err(err, AL_ERR_IO, "%s: cannot map: %s", path, strerror(e));

    al_gguf *g = calloc(1, sizeof(*g));
    if (!g || !(g->path = strdup(path))) {
        free(g);
        munmap(map, (size_t)sb.st_size);
        return al_err(err, AL_ERR_NOMEM, "%s: out of memory", path);
    }
    g->map = map;
    g->size = (uint64_t)sb.st_size;
    parser p = {{g->map, 0, g->size}, path, err};
    al_status st = parse(&p, g, params);
    if (st) {
        al_gguf_close(g);
        return st;
    }
    *out = g;
    return AL_OK;
}

void al_gguf_close(al_gguf *g)
{
    if (!g)
        return;
    free(g->kv);
    free(g->kv_by_key);
    free(g->tensors);
    free(g->tensor_by_name);
    if (g->map)
        munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
}

bool al_str_eq(al_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && !memcmp(s.ptr, c, n);
}

const al_gguf_kv *al_gguf_find(const al_gguf *g, const char *key)
{
    al_str k = {key, strlen(key)};
    uint64_t lo = 0, hi = g->kv_by_key ? g->n_kv : 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = cmp_str(g->kv_by_key[mid]->key, k);
        if (c == 0)
            return g->kv_by_key[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const al_gguf_tensor *al_gguf_find_tensor(const al_gguf *g, const char *name)
{
    al_str k = {name, strlen(name)};
    uint64_t lo = 0, hi = g->tensor_by_name ? g->n_tensors : 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = cmp_str(g->tensor_by_name[mid]->name, k);
        if (c == 0)
            return g->tensor_by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Reads a scalar of type t at p as int64 (ok) or reports not-integer. */
static bool scalar_i64(al_gguf_vtype t, const uint8_t *p, int64_t *out)
{
    switch (t) {
    case AL_GGUF_U8: *out = *p; return true;
    case AL_GGUF_I8: *out = (int8_t)*p; return true;
    case AL_GGUF_BOOL: *out = *p != 0; return true;
    case AL_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case AL_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case AL_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case AL_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case AL_GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    case AL_GGUF_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > INT64_MAX)
            return false;
        *out = (int64_t)v;
        return true;
    }
    default: return false;
    }
}

static bool scalar_f64(al_gguf_vtype t, const uint8_t *p, double *out)
{
    if (t == AL_GGUF_F32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    if (t == AL_GGUF_F64) {
        memcpy(out, p, 8);
        return true;
    }
    int64_t i;
    if (!scalar_i64(t, p, &i))
        return false;
    *out = (double)i;
    return true;
}

bool al_gguf_get_i64(const al_gguf *g, const char *key, int64_t *out)
{
    const al_gguf_kv *kv = al_gguf_find(g, key);
    return kv && scalar_size(kv->type) && scalar_i64(kv->type, kv->data, out);
}

bool al_gguf_get_u32(const al_gguf *g, const char *key, uint32_t *out)
{
    int64_t v;
    if (!al_gguf_get_i64(g, key, &v) || v < 0 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool al_gguf_get_f32(const al_gguf *g, const char *key, float *out)
{
    const al_gguf_kv *kv = al_gguf_find(g, key);
    double d;
    if (!kv || !scalar_size(kv->type) || !scalar_f64(kv->type, kv->data, &d))
        return false;
    *out = (float)d;
    return true;
}

bool al_gguf_get_bool(const al_gguf *g, const char *key, bool *out)
{
    int64_t v;
    if (!al_gguf_get_i64(g, key, &v))
        return false;
    *out = v != 0;
    return true;
}

bool al_gguf_get_str(const al_gguf *g, const char *key, al_str *out)
{
    const al_gguf_kv *kv = al_gguf_find(g, key);
    if (!kv || kv->type != AL_GGUF_STR)
        return false;
    *out = kv->str;
    return true;
}

bool al_gguf_arr_f64(const al_gguf_kv *kv, uint64_t i, double *out)
{
    if (kv->type != AL_GGUF_ARR || i >= kv->arr_n || !scalar_size(kv->arr_type))
        return false;
    return scalar_f64(kv->arr_type, kv->data + i * scalar_size(kv->arr_type), out);
}

bool al_gguf_arr_i64(const al_gguf_kv *kv, uint64_t i, int64_t *out)
{
    if (kv->type != AL_GGUF_ARR || i >= kv->arr_n || !scalar_size(kv->arr_type))
        return false;
    return scalar_i64(kv->arr_type, kv->data + i * scalar_size(kv->arr_type), out);
}
