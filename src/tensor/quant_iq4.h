/* quant_iq4.h - the 4-bit codebook types (IQ4_NL, IQ4_XS, MXFP4) and the
 * ternary types (TQ1_0, TQ2_0): block layouts as ggml stores them
 * (checked by _Static_assert), their codebooks, exact dequantizers and the
 * plain-C dot products with the activation type the reference runtime
 * uses for them (IQ4_NL, MXFP4: Q8_0; IQ4_XS, TQ1_0, TQ2_0: Q8_K).
 * Internal to src/tensor. */
#ifndef AL_TENSOR_QUANT_IQ4_H
#define AL_TENSOR_QUANT_IQ4_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tensor/quant.h"

/* x = d * al_kv_iq4nl[nibble]; qs[j] low nibble is element j, high j+16. */
typedef struct { al_half d; uint8_t qs[AL_QK / 2]; } al_block_iq4_nl;
/* 8 sub-blocks of 32, each laid out like an IQ4_NL block, with a 6-bit
 * scale ls (low 4 bits in scales_l, nibble j%2 of byte j/2; high 2 bits
 * in bits 2j..2j+1 of scales_h): x = d * (ls - 32) * al_kv_iq4nl[nibble]. */
typedef struct { al_half d; uint16_t scales_h; uint8_t scales_l[AL_QK_K / 64]; uint8_t qs[AL_QK_K / 2]; } al_block_iq4_xs;
/* x = 2^(e-128) * al_kv_mxfp4[nibble] (al_kv_mxfp4: the FP4 E2M1 values
 * doubled); e is an E8M0 exponent, 255 being its NaN. */
typedef struct { uint8_t e; uint8_t qs[AL_QK / 2]; } al_block_mxfp4;
/* Ternary {-1, 0, 1} * d. qs: 5 trits a byte (base-3 digits as a fixed
 * point fraction: trit n of byte b is ((uint8_t)(b * 3^n) * 3) >> 8),
 * bytes 0..31 elements 32n + m, bytes 32..47 elements 160 + 16n + m; qh:
 * 4 trits a byte, elements 240 + 4n + j. */
typedef struct { uint8_t qs[(AL_QK_K - 4 * AL_QK_K / 64) / 5]; uint8_t qh[AL_QK_K / 64]; al_half d; } al_block_tq1_0;
/* Ternary, 2 bits each: (q - 1) * d with q = (qs[32h + m] >> 2l) & 3 the
 * element 128h + 32l + m. */
typedef struct { uint8_t qs[AL_QK_K / 4]; al_half d; } al_block_tq2_0;

_Static_assert(sizeof(al_block_iq4_nl) == 18, "IQ4_NL block layout");
_Static_assert(sizeof(al_block_iq4_xs) == 136, "IQ4_XS block layout");
_Static_assert(sizeof(al_block_mxfp4) == 17, "MXFP4 block layout");
_Static_assert(sizeof(al_block_tq1_0) == 54, "TQ1_0 block layout");
_Static_assert(sizeof(al_block_tq2_0) == 66, "TQ2_0 block layout");

extern const int8_t al_kv_iq4nl[16];
extern const int8_t al_kv_mxfp4[16];

/* 2^(e-128) exactly (the E8M0 scale halved, as the doubled codebook
 * wants); e = 255 gives 2^127, which is why loading refuses it. Inline:
 * the MXFP4 dot kernels decode one per block. */
static inline float al_e8m0_half(uint8_t e)
{
    /* subnormal for e < 2 */
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}
/* The 6-bit scale (0..63) of sub-block j of an IQ4_XS block. */
int al_iq4_xs_scale(const al_block_iq4_xs *b, int j);

/* Exact dequantization of nb blocks. */
void al_deq_iq4_nl(const al_block_iq4_nl *x, float *y, int64_t nb);
void al_deq_iq4_xs(const al_block_iq4_xs *x, float *y, int64_t nb);
void al_deq_mxfp4(const al_block_mxfp4 *x, float *y, int64_t nb);
void al_deq_tq1_0(const al_block_tq1_0 *x, float *y, int64_t nb);
void al_deq_tq2_0(const al_block_tq2_0 *x, float *y, int64_t nb);

/* The 256 ternary values (-1, 0, 1) of a TQ1_0 / TQ2_0 block. */
void al_tq1_0_trits(const al_block_tq1_0 *b, int8_t out[AL_QK_K]);
void al_tq2_0_trits(const al_block_tq2_0 *b, int8_t out[AL_QK_K]);

/* Plain-C dots of one weight row (k elements) with one activation row. */
float al_dot1_iq4_nl(int64_t k, const void *w, const void *a);
float al_dot1_iq4_xs(int64_t k, const void *w, const void *a);
float al_dot1_mxfp4(int64_t k, const void *w, const void *a);
float al_dot1_tq1_0(int64_t k, const void *w, const void *a);
float al_dot1_tq2_0(int64_t k, const void *w, const void *a);

/* Checks the scales of the n_blocks blocks of a tensor of one of these
 * types (or of the other quantized types with an F16 scale): an F16 scale
 * that is NaN or infinite, or an E8M0 exponent of 255, makes it return
 * false with *bad_block its index and *why a static description. Types
 * without such scales always pass. Reads only the scale bytes. */
bool al_check_block_scales(uint32_t type, const void *data, uint64_t n_blocks, uint64_t *bad_block, const char **why);

#endif
