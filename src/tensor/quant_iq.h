/* quant_iq.h - internal to src/tensor: the i-quant grid formats of ggml
 * (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M): block layouts,
 * codebooks (iq_grids.c), exact dequantization and the plain-C dot products
 * against Q8_K activations (quant_iq.c), the AVX2 twins (kernels_iq_avx2.c).
 *
 * Every type has 256-element super-blocks made of 8 groups of 32; a group's
 * weights are codebook entries (8 or 4 bytes each) times a group scale, with
 * signs from separate bits (IQ2, IQ3) or a +-1/8 shift (IQ1). */
#ifndef AL_TENSOR_QUANT_IQ_H
#define AL_TENSOR_QUANT_IQ_H

#include <stdint.h>

#include "tensor/quant.h"

/* x = d * (0.5 + s) / 4 * grid * sign: qs[2g], qs[2g+1] (as 32 bits) of
 * group g: 4 grid indices (bytes), then 4 x 7 sign bits (ksigns) and the
 * 4-bit scale s in the top bits. */
typedef struct { al_half d; uint16_t qs[AL_QK_K / 8]; } al_block_iq2_xxs;
/* qs[i]: 9-bit grid index, 7 sign bits (ksigns); scales: 4 bits per 16. */
typedef struct { al_half d; uint16_t qs[AL_QK_K / 8]; uint8_t scales[AL_QK_K / 32]; } al_block_iq2_xs;
/* qs[0..31]: low 8 bits of 10-bit grid indices, qs[32..63]: sign bytes;
 * qh: 2 high index bits per entry; scales: 4 bits per 16. */
typedef struct { al_half d; uint8_t qs[AL_QK_K / 4]; uint8_t qh[AL_QK_K / 32]; uint8_t scales[AL_QK_K / 32]; } al_block_iq2_s;
/* qs[0..63]: grid indices (4 elements each), then per group 32 bits:
 * 4 x 7 sign bits and a 4-bit scale: x = d * (0.5 + s) / 2 * grid * sign. */
typedef struct { al_half d; uint8_t qs[3 * AL_QK_K / 8]; } al_block_iq3_xxs;
/* 9-bit grid indices (qs + a qh bit), one sign bit per element, 4-bit
 * scales per group: x = d * (1 + 2s) * grid * sign. */
typedef struct { al_half d; uint8_t qs[AL_QK_K / 4]; uint8_t qh[AL_QK_K / 32]; uint8_t signs[AL_QK_K / 8]; uint8_t scales[AL_QK_K / 64]; } al_block_iq3_s;
/* 11-bit grid indices (qs + 3 bits of qh per 8); qh[g] bits 12..14: scale,
 * bit 15: the sign of the shift: x = d * (2s + 1) * (grid +- 1/8). */
typedef struct { al_half d; uint8_t qs[AL_QK_K / 8]; uint16_t qh[AL_QK_K / 32]; } al_block_iq1_s;
/* As IQ1_S with 3-bit scales per 16 and a shift sign per 8; the fp16 d is
 * spread over the top nibbles of the four 16-bit scale words. */
typedef struct { uint8_t qs[AL_QK_K / 8]; uint8_t qh[AL_QK_K / 16]; uint8_t scales[AL_QK_K / 32]; } al_block_iq1_m;

_Static_assert(sizeof(al_block_iq2_xxs) == 66, "IQ2_XXS block layout");
_Static_assert(sizeof(al_block_iq2_xs) == 74, "IQ2_XS block layout");
_Static_assert(sizeof(al_block_iq2_s) == 82, "IQ2_S block layout");
_Static_assert(sizeof(al_block_iq3_xxs) == 98, "IQ3_XXS block layout");
_Static_assert(sizeof(al_block_iq3_s) == 110, "IQ3_S block layout");
_Static_assert(sizeof(al_block_iq1_s) == 50, "IQ1_S block layout");
_Static_assert(sizeof(al_block_iq1_m) == 56, "IQ1_M block layout");

#define AL_IQ1_DELTA 0.125f /* the shift of IQ1_S and IQ1_M weights */

/* Codebooks (iq_grids.c): element j of an entry is its byte j. */
extern const uint64_t al_iq2xxs_grid[256];
extern const uint64_t al_iq2xs_grid[512];
extern const uint64_t al_iq2s_grid[1024];
extern const uint32_t al_iq3xxs_grid[256];
extern const uint32_t al_iq3s_grid[512];
extern const uint64_t al_iq1s_grid[2048]; /* int8 -1, 0, 1 bytes */
/* 7 sign bits + a parity bit (an even number of minus signs). */
extern const uint8_t al_iq_ksigns[128];

/* The fp16 scale of an IQ1_M block (spread over its scale words). */
al_half al_iq1_m_d(const al_block_iq1_m *b);

/* Exact dequantization of nb blocks (al_dequantize_row's twins). */
void al_deq_iq2_xxs(const void *src, float *y, int64_t nb);
void al_deq_iq2_xs(const void *src, float *y, int64_t nb);
void al_deq_iq2_s(const void *src, float *y, int64_t nb);
void al_deq_iq3_xxs(const void *src, float *y, int64_t nb);
void al_deq_iq3_s(const void *src, float *y, int64_t nb);
void al_deq_iq1_s(const void *src, float *y, int64_t nb);
void al_deq_iq1_m(const void *src, float *y, int64_t nb);

/* The position of the first block of a row of nb blocks whose fp16 scale
 * is NaN or infinite, or -1 when all are finite. */
int64_t al_iq_bad_scale(uint32_t type, const void *row, int64_t nb);

/* Plain-C dot kernels (al_dot_fn) vs Q8_K, as ggml's generic ones: integer
 * sums per group times the integer group scales, scaled in float. */
void al_dot_iq2_xxs_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);
void al_dot_iq2_xs_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);
void al_dot_iq2_s_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);
void al_dot_iq3_xxs_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);
void al_dot_iq3_s_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);
void al_dot_iq1_s_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);
void al_dot_iq1_m_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out);

/* The entries of the reference kernel table (kernels_ref.c). */
#define AL_IQ_REF_DOTS                                                                             \
    [AL_TYPE_IQ2_XXS] = al_dot_iq2_xxs_ref, [AL_TYPE_IQ2_XS] = al_dot_iq2_xs_ref,                  \
    [AL_TYPE_IQ2_S] = al_dot_iq2_s_ref, [AL_TYPE_IQ3_XXS] = al_dot_iq3_xxs_ref,                    \
    [AL_TYPE_IQ3_S] = al_dot_iq3_s_ref, [AL_TYPE_IQ1_S] = al_dot_iq1_s_ref,                        \
    [AL_TYPE_IQ1_M] = al_dot_iq1_m_ref,

/* Puts the AVX2 i-quant dot kernels into ks (kernels_iq_avx2.c); no-op in
 * a build without AVX2 code. */
struct al_kernels;
void al_iq_kernels_avx2(struct al_kernels *ks);

#endif
