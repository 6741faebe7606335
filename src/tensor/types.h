/* types.h - GGML tensor types as GGUF stores them: ids, block sizes, names. */
#ifndef AL_TENSOR_TYPES_H
#define AL_TENSOR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type ids exactly as in GGUF tensor infos. */
typedef enum al_type {
    AL_TYPE_F32 = 0,
    AL_TYPE_F16 = 1,
    AL_TYPE_Q4_0 = 2,
    AL_TYPE_Q4_1 = 3,
    AL_TYPE_Q5_0 = 6,
    AL_TYPE_Q5_1 = 7,
    AL_TYPE_Q8_0 = 8,
    AL_TYPE_Q8_1 = 9,
    AL_TYPE_Q2_K = 10,
    AL_TYPE_Q3_K = 11,
    AL_TYPE_Q4_K = 12,
    AL_TYPE_Q5_K = 13,
    AL_TYPE_Q6_K = 14,
    AL_TYPE_Q8_K = 15,
    AL_TYPE_IQ2_XXS = 16,
    AL_TYPE_IQ2_XS = 17,
    AL_TYPE_IQ3_XXS = 18,
    AL_TYPE_IQ1_S = 19,
    AL_TYPE_IQ4_NL = 20,
    AL_TYPE_IQ3_S = 21,
    AL_TYPE_IQ2_S = 22,
    AL_TYPE_IQ4_XS = 23,
    AL_TYPE_IQ1_M = 29,
    AL_TYPE_BF16 = 30,
    AL_TYPE_TQ1_0 = 34,
    AL_TYPE_TQ2_0 = 35,
    AL_TYPE_MXFP4 = 39,
    AL_TYPE_COUNT = 40, /* ids at or above are unknown */
} al_type;

typedef struct al_type_traits {
    const char *name;     /* "Q4_K"; NULL for an id GGUF never defined */
    uint32_t block_elems; /* elements per block */
    uint32_t block_bytes; /* bytes per block */
    bool supported;       /* the engine can load tensors of this type */
} al_type_traits;

/* Traits of a type id read from a file; never NULL (unknown ids get a
 * record with name NULL and supported false). */
const al_type_traits *al_type_get(uint32_t type_id);

/* Bytes of n elements of a type (n a multiple of its block), as one row of
 * a tensor; 0 for an unknown type id. */
size_t al_type_row_bytes(uint32_t type_id, int64_t n);

/* Name of any type id, including ones the engine refuses ("IQ2_XXS"), or
 * "type#N" for ids nobody defined. Static storage. */
const char *al_type_name(uint32_t type_id);

/* The names of the types the engine loads, space-separated in id order
 * ("F32 F16 Q4_0 ..."), for error messages, into buf (cap bytes, always
 * terminated when cap > 0; cut short if too small). */
void al_type_supported_list(char *buf, size_t cap);

#endif
