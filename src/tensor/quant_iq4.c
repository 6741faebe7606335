/* quant_iq4.c - IQ4_NL, IQ4_XS and MXFP4: exact dequantization and the
 * plain-C dots (the reference twins of kernels_iq4_avx2.c), and the load
 * time check of the block scales of every quantized type. */
#include "tensor/quant_iq4.h"
#include "tensor/quant_iq.h"

#include <math.h>
#include <string.h>

/* The non-linear 4-bit codebook of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl). */
const int8_t al_kv_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
/* FP4 E2M1 values times 2: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives. */
const int8_t al_kv_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

int al_iq4_xs_scale(const al_block_iq4_xs *b, int j)
{
    return ((b->scales_l[j / 2] >> (4 * (j % 2))) & 0x0f) | (((b->scales_h >> (2 * j)) & 3) << 4);
}

/* 32 elements from 16 nibble bytes through a codebook, times d. */
static void deq_lut32(const int8_t kv[16], const uint8_t qs[16], float d, float *y)
{
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)kv[qs[j] & 0x0f];
        y[j + 16] = d * (float)kv[qs[j] >> 4];
    }
}

void al_deq_iq4_nl(const al_block_iq4_nl *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK)
        deq_lut32(al_kv_iq4nl, x[i].qs, al_fp16_to_fp32(x[i].d), y);
}

void al_deq_iq4_xs(const al_block_iq4_xs *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        for (int j = 0; j < AL_QK_K / 32; j++, y += 32)
            deq_lut32(al_kv_iq4nl, x[i].qs + 16 * j, d * (float)(al_iq4_xs_scale(&x[i], j) - 32), y);
    }
}

void al_deq_mxfp4(const al_block_mxfp4 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK)
        deq_lut32(al_kv_mxfp4, x[i].qs, al_e8m0_half(x[i].e), y);
}

/* The integer dot of 16 nibble bytes (32 codebook values) with 32 int8. */
static int dot_lut32(const int8_t kv[16], const uint8_t qs[16], const int8_t *q8)
{
    int s = 0;
    for (int j = 0; j < 16; j++)
        s += kv[qs[j] & 0x0f] * q8[j] + kv[qs[j] >> 4] * q8[j + 16];
    return s;
}

float al_dot1_iq4_nl(int64_t k, const void *vw, const void *va)
{
    const al_block_iq4_nl *w = vw;
    const al_block_q8_0 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++)
        s += (al_fp16_to_fp32(w[i].d) * al_fp16_to_fp32(a[i].d)) * (float)dot_lut32(al_kv_iq4nl, w[i].qs, a[i].qs);
    return s;
}

float al_dot1_mxfp4(int64_t k, const void *vw, const void *va)
{
    const al_block_mxfp4 *w = vw;
    const al_block_q8_0 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++)
        s += (al_e8m0_half(w[i].e) * al_fp16_to_fp32(a[i].d)) * (float)dot_lut32(al_kv_mxfp4, w[i].qs, a[i].qs);
    return s;
}

float al_dot1_iq4_xs(int64_t k, const void *vw, const void *va)
{
    const al_block_iq4_xs *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < AL_QK_K / 32; j++)
            sumi += (al_iq4_xs_scale(&w[i], j) - 32) * dot_lut32(al_kv_iq4nl, w[i].qs + 16 * j, a[i].qs + 32 * j);
        s += (al_fp16_to_fp32(w[i].d) * a[i].d) * (float)sumi;
    }
    return s;
}

/* ------------------------------------------------------------ load checks */

/* Byte offsets of the F16 scales in a block (-1: none), or the E8M0 byte. */
typedef struct { uint32_t type; int off[2]; bool e8m0; } scale_pos;

static const scale_pos k_scale_pos[] = {
    {AL_TYPE_Q4_0, {0, -1}, false},           {AL_TYPE_Q4_1, {0, 2}, false},
    {AL_TYPE_Q5_0, {0, -1}, false},           {AL_TYPE_Q5_1, {0, 2}, false},
    {AL_TYPE_Q8_0, {0, -1}, false},           {AL_TYPE_Q2_K, {80, 82}, false},
    {AL_TYPE_Q3_K, {108, -1}, false},         {AL_TYPE_Q4_K, {0, 2}, false},
    {AL_TYPE_Q5_K, {0, 2}, false},            {AL_TYPE_Q6_K, {208, -1}, false},
    {AL_TYPE_IQ4_NL, {0, -1}, false},         {AL_TYPE_IQ4_XS, {0, -1}, false},
    {AL_TYPE_TQ1_0, {52, -1}, false},         {AL_TYPE_TQ2_0, {64, -1}, false},
    {AL_TYPE_MXFP4, {0, -1}, true},
};

bool al_check_block_scales(uint32_t type, const void *data, uint64_t n_blocks, uint64_t *bad_block, const char **why)
{
    const int64_t iq_bad = al_iq_bad_scale(type, data, (int64_t)n_blocks); /* the i-quant grid types */
    if (iq_bad >= 0) {
        *bad_block = (uint64_t)iq_bad;
        *why = "its F16 scale is NaN or infinite";
        return false;
    }
    const scale_pos *sp = NULL;
    for (size_t i = 0; i < sizeof(k_scale_pos) / sizeof(k_scale_pos[0]); i++)
        if (k_scale_pos[i].type == type)
            sp = &k_scale_pos[i];
    if (!sp)
        return true;
    const size_t bb = al_type_get(type)->block_bytes;
    const uint8_t *p = data;
    for (uint64_t b = 0; b < n_blocks; b++, p += bb) {
        if (sp->e8m0) {
            if (p[sp->off[0]] == 0xff) {
                *bad_block = b;
                *why = "its E8M0 scale exponent is 255 (NaN)";
                return false;
            }
            continue;
        }
        for (int s = 0; s < 2 && sp->off[s] >= 0; s++) {
            /* F16 exponent bits all ones: infinity or NaN */
            if ((p[sp->off[s] + 1] & 0x7c) == 0x7c) {
                *bad_block = b;
                *why = "its F16 scale is NaN or infinite";
                return false;
            }
        }
    }
    return true;
}
