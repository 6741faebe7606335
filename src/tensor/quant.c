/* quant.c - half/bfloat conversions, exact dequantization of every supported
 * GGUF type, and the activation quantizers. Plain C, no ISA assumptions. */
#include "tensor/quant.h"
#include "tensor/kernels.h"
#include "tensor/quant_iq4.h"
#include "tensor/quant_iq.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------ conversions */

float al_fp16_to_fp32(al_half h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            uint32_t e = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                e--;
            }
            bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

al_half al_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: keep it quiet */
        return (al_half)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (al_half)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* result is a half subnormal or zero */
        if (ax < 0x33000000u) /* below half of the smallest subnormal */
            return (al_half)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t sh = 126 - e; /* 14..24 */
        uint32_t q = m >> sh, rem = m & ((1u << sh) - 1), halfway = 1u << (sh - 1);
        if (rem > halfway || (rem == halfway && (q & 1u)))
            q++;
        return (al_half)(sign | q);
    }
    uint32_t h = ((((ax >> 23) - 127 + 15)) << 10) | ((ax & 0x7fffffu) >> 13);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* may carry into the exponent: still correct */
    return (al_half)(sign | h);
}

float al_bf16_to_fp32(al_bf16 h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

al_bf16 al_fp32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (al_bf16)((u >> 16) | 64u); /* NaN: force quiet */
    return (al_bf16)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

void al_fp32_to_fp16_row_ref(const float *src, al_half *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = al_fp32_to_fp16(src[i]);
}

void al_fp32_to_fp16_row(const float *src, al_half *dst, int64_t n)
{
    al_kernels_get()->to_f16(src, dst, n);
}

void al_round_fp16_row_ref(const float *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = al_fp16_to_fp32(al_fp32_to_fp16(src[i]));
}

void al_round_bf16_row(const float *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = al_bf16_to_fp32(al_fp32_to_bf16(src[i]));
}

void al_fp32_to_bf16_row(const float *src, al_bf16 *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = al_fp32_to_bf16(src[i]);
}

/* ------------------------------------------------------------ dequantize */

static void deq_q4_0(const al_block_q4_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK) {
        const float d = al_fp16_to_fp32(x[i].d);
        for (int j = 0; j < AL_QK / 2; j++) {
            y[j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const al_block_q4_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK) {
        const float d = al_fp16_to_fp32(x[i].d), m = al_fp16_to_fp32(x[i].m);
        for (int j = 0; j < AL_QK / 2; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0f) * d + m;
            y[j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

static void deq_q5_0(const al_block_q5_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK) {
        const float d = al_fp16_to_fp32(x[i].d);
        const uint32_t qh = al_le32(x[i].qh);
        for (int j = 0; j < AL_QK / 2; j++) {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (float)(((x[i].qs[j] & 0x0f) | h0) - 16) * d;
            y[j + 16] = (float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void deq_q5_1(const al_block_q5_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK) {
        const float d = al_fp16_to_fp32(x[i].d), m = al_fp16_to_fp32(x[i].m);
        const uint32_t qh = al_le32(x[i].qh);
        for (int j = 0; j < AL_QK / 2; j++) {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (float)((x[i].qs[j] & 0x0f) | h0) * d + m;
            y[j + 16] = (float)((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

static void deq_q8_0(const al_block_q8_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK) {
        const float d = al_fp16_to_fp32(x[i].d);
        for (int j = 0; j < AL_QK; j++)
            y[j] = (float)x[i].qs[j] * d;
    }
}

static void deq_q8_K(const al_block_q8_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK_K)
        for (int j = 0; j < AL_QK_K; j++)
            y[j] = x[i].d * (float)x[i].qs[j];
}

static void deq_q2_K(const al_block_q2_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d), dmin = al_fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < AL_QK_K; n += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = x[i].scales[is++];
                    float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
                }
            }
        }
    }
}

/* The 16 6-bit scales of a Q3_K block (still offset by 32): low 4 bits from
 * bytes 0..7 (low nibbles first), high 2 bits from bytes 8..11. */
void al_q3_K_scales(const uint8_t s[12], int8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
        int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
        out[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

static void deq_q3_K(const al_block_q3_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = al_fp16_to_fp32(x[i].d);
        int8_t sc[16];
        al_q3_K_scales(x[i].scales, sc);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < AL_QK_K; n += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int half = 0; half < 2; half++) {
                    float dl = d_all * (float)sc[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
            }
        }
    }
}

void al_q4_K_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void deq_q4_K(const al_block_q4_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d), dmin = al_fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < 8; j += 2, q += 32) {
            uint8_t sc, m;
            al_q4_K_scale_min(j, x[i].scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            al_q4_K_scale_min(j + 1, x[i].scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void deq_q5_K(const al_block_q5_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d), dmin = al_fp16_to_fp32(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2, ql += 32) {
            uint8_t sc, m;
            al_q4_K_scale_min(j, x[i].scales, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            al_q4_K_scale_min(j + 1, x[i].scales, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static void deq_q6_K(const al_block_q6_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < AL_QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void al_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const al_type_traits *tr = al_type_get(type);
    if (n <= 0)
        return;
    if (!tr->name || tr->block_elems == 0 || n % tr->block_elems != 0) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    const int64_t nb = n / tr->block_elems;
    switch (type) {
    case AL_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    case AL_TYPE_F16: {
        const al_half *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = al_fp16_to_fp32(h[i]);
        return;
    }
    case AL_TYPE_BF16: {
        const al_bf16 *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = al_bf16_to_fp32(h[i]);
        return;
    }
    case AL_TYPE_Q4_0: deq_q4_0(src, dst, nb); return;
    case AL_TYPE_Q4_1: deq_q4_1(src, dst, nb); return;
    case AL_TYPE_Q5_0: deq_q5_0(src, dst, nb); return;
    case AL_TYPE_Q5_1: deq_q5_1(src, dst, nb); return;
    case AL_TYPE_Q8_0: deq_q8_0(src, dst, nb); return;
    case AL_TYPE_Q8_K: deq_q8_K(src, dst, nb); return;
    case AL_TYPE_Q2_K: deq_q2_K(src, dst, nb); return;
    case AL_TYPE_Q3_K: deq_q3_K(src, dst, nb); return;
    case AL_TYPE_Q4_K: deq_q4_K(src, dst, nb); return;
    case AL_TYPE_Q5_K: deq_q5_K(src, dst, nb); return;
    case AL_TYPE_Q6_K: deq_q6_K(src, dst, nb); return;
    case AL_TYPE_IQ4_NL: al_deq_iq4_nl(src, dst, nb); return;
    case AL_TYPE_IQ4_XS: al_deq_iq4_xs(src, dst, nb); return;
    case AL_TYPE_MXFP4: al_deq_mxfp4(src, dst, nb); return;
    case AL_TYPE_TQ1_0: al_deq_tq1_0(src, dst, nb); return;
    case AL_TYPE_TQ2_0: al_deq_tq2_0(src, dst, nb); return;
    case AL_TYPE_IQ2_XXS: al_deq_iq2_xxs(src, dst, nb); return;
    case AL_TYPE_IQ2_XS: al_deq_iq2_xs(src, dst, nb); return;
    case AL_TYPE_IQ2_S: al_deq_iq2_s(src, dst, nb); return;
    case AL_TYPE_IQ3_XXS: al_deq_iq3_xxs(src, dst, nb); return;
    case AL_TYPE_IQ3_S: al_deq_iq3_s(src, dst, nb); return;
    case AL_TYPE_IQ1_S: al_deq_iq1_s(src, dst, nb); return;
    case AL_TYPE_IQ1_M: al_deq_iq1_m(src, dst, nb); return;
    default:
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
}

/* ------------------------------------------------------------ quantize */

void al_quantize_row_q8_0(const float *x, al_block_q8_0 *y, int64_t n)
{
    for (int64_t i = 0; i < n / AL_QK; i++, x += AL_QK) {
        float amax = 0.0f;
        for (int j = 0; j < AL_QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = al_fp32_to_fp16(d);
        for (int j = 0; j < AL_QK; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void al_quantize_row_q8_1(const float *x, al_block_q8_1 *y, int64_t n)
{
    for (int64_t i = 0; i < n / AL_QK; i++, x += AL_QK) {
        float amax = 0.0f;
        for (int j = 0; j < AL_QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = al_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < AL_QK; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = al_fp32_to_fp16((float)sum * d);
    }
}

/* Round to nearest, ties to even, for |f| < 2^22 (ggml's nearest_int). */
static int nearest_int(float f)
{
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

void al_quantize_row_q8_K(const float *x, al_block_q8_K *y, int64_t n)
{
    for (int64_t i = 0; i < n / AL_QK_K; i++, x += AL_QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < AL_QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < AL_QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < AL_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}
