/*
 * gguf.h - a validating, memory-mapped reader of GGUF v2/v3 files.
 *
 * al_gguf_open maps the file read-only and checks every count, size,
 * offset, string length, type and alignment against the file before it is
 * used; after a successful open every pointer it hands out lies inside the
 * map and every tensor's bytes lie inside the data section without
 * overlapping another. The handle is read-only and thread-safe.
 *
 * Strings in GGUF are not NUL-terminated: they come back as al_str
 * (pointer into the map + length).
 */
#ifndef AL_GGUF_H
#define AL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

/* Metadata value types, as GGUF numbers them. */
typedef enum al_gguf_vtype {
    AL_GGUF_U8 = 0,
    AL_GGUF_I8 = 1,
    AL_GGUF_U16 = 2,
    AL_GGUF_I16 = 3,
    AL_GGUF_U32 = 4,
    AL_GGUF_I32 = 5,
    AL_GGUF_F32 = 6,
    AL_GGUF_BOOL = 7,
    AL_GGUF_STR = 8,
    AL_GGUF_ARR = 9,
    AL_GGUF_U64 = 10,
    AL_GGUF_I64 = 11,
    AL_GGUF_F64 = 12,
} al_gguf_vtype;

typedef struct al_str {
    const char *ptr; /* not NUL-terminated; inside the map */
    uint64_t len;
} al_str;

typedef struct al_gguf_kv {
    al_str key;
    al_gguf_vtype type;
    /* Scalars: the raw little-endian bytes at `data`. Strings: `str`.
     * Arrays: element type arr_type, arr_n elements at `data`; for string
     * arrays `data` is the first element's 8-byte length, each element
     * checked against the file's end at open: walk them with
     * al_gguf_str_next (nothing is allocated per element, so a hostile
     * count costs no memory before its users check it). */
    const uint8_t *data;
    al_str str;
    al_gguf_vtype arr_type;
    uint64_t arr_n;
} al_gguf_kv;

/* The string at *it (inside a string array's data), advancing *it past it. */
static inline al_str al_gguf_str_next(const uint8_t **it)
{
    al_str s;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | (*it)[i];
    s.ptr = (const char *)*it + 8;
    s.len = n;
    *it += 8 + n;
    return s;
}

typedef struct al_gguf_tensor {
    al_str name;
    uint32_t n_dims;
    uint64_t ne[4];      /* elements per dimension; unused ones are 1 */
    uint32_t type;       /* al_type id (tensor/types.h), known and supported */
    uint64_t offset;     /* relative to the data section */
    uint64_t n_bytes;
    uint64_t n_elems;
    const void *data;    /* inside the map */
} al_gguf_tensor;

typedef struct al_gguf {
    char *path;          /* owned copy */
    const uint8_t *map;
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv;
    al_gguf_kv *kv;
    uint64_t n_tensors;
    al_gguf_tensor *tensors;
    uint64_t data_offset; /* start of the data section in the file */
    uint64_t data_bytes;
    al_gguf_kv **kv_by_key;          /* (n_kv) sorted by key, for lookups */
    al_gguf_tensor **tensor_by_name; /* (n_tensors) sorted by name */
} al_gguf;

typedef struct al_gguf_params {
    /* Accept tensor types the engine cannot run (for `airlock info` and
     * the scanner's report); they still must have a known block size. */
    bool allow_unsupported_types;
} al_gguf_params;

/* Opens and validates path. On success *out is owned by the caller (free
 * with al_gguf_close). Errors name the file, the field and the problem. */
al_status al_gguf_open(const char *path, const al_gguf_params *params,
                       al_gguf **out, al_error *err);
void al_gguf_close(al_gguf *g);

/* Lookups (binary search) return NULL / false when the key is absent.
 * Returned pointers are owned by the al_gguf. */
const al_gguf_kv *al_gguf_find(const al_gguf *g, const char *key);
const al_gguf_tensor *al_gguf_find_tensor(const al_gguf *g, const char *name);

/* Typed getters: true when the key exists and holds a value convertible
 * without loss (any integer type in range for u32/i64; f32 or f64 for f). */
bool al_gguf_get_u32(const al_gguf *g, const char *key, uint32_t *out);
bool al_gguf_get_i64(const al_gguf *g, const char *key, int64_t *out);
bool al_gguf_get_f32(const al_gguf *g, const char *key, float *out);
bool al_gguf_get_bool(const al_gguf *g, const char *key, bool *out);
bool al_gguf_get_str(const al_gguf *g, const char *key, al_str *out);

/* Element i of a numeric array kv as double / int64 (false if out of range
 * or not numeric). */
bool al_gguf_arr_f64(const al_gguf_kv *kv, uint64_t i, double *out);
bool al_gguf_arr_i64(const al_gguf_kv *kv, uint64_t i, int64_t *out);

/* Compares an al_str with a C string. */
bool al_str_eq(al_str s, const char *c);

#endif
