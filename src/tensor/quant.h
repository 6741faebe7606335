/* quant.h - GGUF/ggml quantized block layouts, half/bfloat conversions, the
 * exact reference dequantizer (the oracle of every fast kernel) and the
 * activation quantizers (F32 -> Q8_0 / Q8_1 / Q8_K, F16, BF16) that the
 * native matmul path applies before a quantized dot product.
 *
 * Every block struct matches ggml's ggml-common.h byte for byte (checked by
 * _Static_assert); halves are stored as raw uint16_t bits, little-endian as
 * GGUF stores them (the engine targets little-endian hosts). */
#ifndef AL_TENSOR_QUANT_H
#define AL_TENSOR_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/types.h"

#define AL_QK 32    /* elements per block of the *_0 / *_1 types */
#define AL_QK_K 256 /* elements per K-quant super-block */

typedef uint16_t al_half; /* IEEE binary16 bits */
typedef uint16_t al_bf16; /* bfloat16 bits */

/* x = (q - 8) * d; qs[j] low nibble is element j, high nibble element j+16. */
typedef struct { al_half d; uint8_t qs[AL_QK / 2]; } al_block_q4_0;
/* x = q * d + m */
typedef struct { al_half d, m; uint8_t qs[AL_QK / 2]; } al_block_q4_1;
/* x = (q - 16) * d, q = nibble | bit j of qh (little-endian u32) << 4 */
typedef struct { al_half d; uint8_t qh[4]; uint8_t qs[AL_QK / 2]; } al_block_q5_0;
/* x = q * d + m */
typedef struct { al_half d, m; uint8_t qh[4]; uint8_t qs[AL_QK / 2]; } al_block_q5_1;
/* x = q * d */
typedef struct { al_half d; int8_t qs[AL_QK]; } al_block_q8_0;
/* activation block for Q4_1/Q5_1: s = d * sum(qs) */
typedef struct { al_half d, s; int8_t qs[AL_QK]; } al_block_q8_1;

/* 16 sub-blocks of 16: scales[i] low nibble = scale, high nibble = min;
 * x = d*sc*q - dmin*m, q 2 bits. */
typedef struct { uint8_t scales[AL_QK_K / 16]; uint8_t qs[AL_QK_K / 4]; al_half d, dmin; } al_block_q2_K;
/* 16 sub-blocks of 16, 6-bit scales (offset 32) packed in 12 bytes,
 * q = 2 low bits - (hmask bit clear ? 4 : 0). */
typedef struct { uint8_t hmask[AL_QK_K / 8]; uint8_t qs[AL_QK_K / 4]; uint8_t scales[12]; al_half d; } al_block_q3_K;
/* 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes. */
typedef struct { al_half d, dmin; uint8_t scales[12]; uint8_t qs[AL_QK_K / 2]; } al_block_q4_K;
typedef struct { al_half d, dmin; uint8_t scales[12]; uint8_t qh[AL_QK_K / 8]; uint8_t qs[AL_QK_K / 2]; } al_block_q5_K;
/* 16 sub-blocks of 16, int8 scales, q = 6 bits - 32. */
typedef struct { uint8_t ql[AL_QK_K / 2]; uint8_t qh[AL_QK_K / 4]; int8_t scales[AL_QK_K / 16]; al_half d; } al_block_q6_K;
/* activation block of the K-quants: bsums[j] = sum of qs[16j..16j+15]. */
typedef struct { float d; int8_t qs[AL_QK_K]; int16_t bsums[AL_QK_K / 16]; } al_block_q8_K;

_Static_assert(sizeof(al_block_q4_0) == 18, "Q4_0 block layout");
_Static_assert(sizeof(al_block_q4_1) == 20, "Q4_1 block layout");
_Static_assert(sizeof(al_block_q5_0) == 22, "Q5_0 block layout");
_Static_assert(sizeof(al_block_q5_1) == 24, "Q5_1 block layout");
_Static_assert(sizeof(al_block_q8_0) == 34, "Q8_0 block layout");
_Static_assert(sizeof(al_block_q8_1) == 36, "Q8_1 block layout");
_Static_assert(sizeof(al_block_q2_K) == 84, "Q2_K block layout");
_Static_assert(sizeof(al_block_q3_K) == 110, "Q3_K block layout");
_Static_assert(sizeof(al_block_q4_K) == 144, "Q4_K block layout");
_Static_assert(sizeof(al_block_q5_K) == 176, "Q5_K block layout");
_Static_assert(sizeof(al_block_q6_K) == 210, "Q6_K block layout");
_Static_assert(sizeof(al_block_q8_K) == 292, "Q8_K block layout");

/* Exact conversions. fp32 -> fp16/bf16 round to nearest, ties to even
 * (like ggml; NaN stays NaN, overflow gives infinity). */
float al_fp16_to_fp32(al_half h);
al_half al_fp32_to_fp16(float f);
float al_bf16_to_fp32(al_bf16 h);
al_bf16 al_fp32_to_bf16(float f);
/* al_fp32_to_fp16_row: the CPU's fastest bit-identical kernel (F16C);
 * _ref: plain C, the oracle. */
void al_fp32_to_fp16_row(const float *src, al_half *dst, int64_t n);
void al_fp32_to_fp16_row_ref(const float *src, al_half *dst, int64_t n);
/* src rounded to F16 / BF16 and back to F32 (plain C). */
void al_round_fp16_row_ref(const float *src, float *dst, int64_t n);
void al_round_bf16_row(const float *src, float *dst, int64_t n);
void al_fp32_to_bf16_row(const float *src, al_bf16 *dst, int64_t n);

/* Dequantizes n elements (n a multiple of the type's block size) of a row
 * of type `type` (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_K, Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K, and those of quant_iq4.h: IQ4_NL, IQ4_XS, MXFP4,
 * TQ1_0, TQ2_0) into dst, exactly as ggml does. An unsupported
 * type or a bad n writes zeros (callers validate types when loading). */
void al_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Activation quantizers, rounding like ggml's reference quantizers:
 * Q8_0/Q8_1: d = amax/127, q = roundf(x * (1/d)); Q8_K: d = max/-127 with
 * round-to-nearest-even. n must be a multiple of 32 (Q8_0/Q8_1) or 256. */
void al_quantize_row_q8_0(const float *x, al_block_q8_0 *y, int64_t n);
void al_quantize_row_q8_1(const float *x, al_block_q8_1 *y, int64_t n);
void al_quantize_row_q8_K(const float *x, al_block_q8_K *y, int64_t n);

#endif
