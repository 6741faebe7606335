/* kernels_ref.c - plain-C reference dot products of each weight type with
 * its activation type, following ggml's generic kernels: integer sums per
 * block, scaled in float. The AVX2 twins are tested against these. */
#include "tensor/kernels.h"
#include "tensor/quant_iq4.h"
#include "tensor/quant_iq.h"

uint32_t al_act_type(uint32_t wtype)
{
    switch (wtype) {
    case AL_TYPE_F32: return AL_TYPE_F32;
    case AL_TYPE_F16: return AL_TYPE_F16;
    case AL_TYPE_BF16: return AL_TYPE_BF16;
    case AL_TYPE_Q4_0:
    case AL_TYPE_Q5_0:
    case AL_TYPE_Q8_0:
    case AL_TYPE_IQ4_NL:
    case AL_TYPE_MXFP4: return AL_TYPE_Q8_0;
    case AL_TYPE_Q4_1:
    case AL_TYPE_Q5_1: return AL_TYPE_Q8_1;
    case AL_TYPE_Q2_K:
    case AL_TYPE_Q3_K:
    case AL_TYPE_Q4_K:
    case AL_TYPE_Q5_K:
    case AL_TYPE_Q6_K:
    case AL_TYPE_IQ4_XS:
    case AL_TYPE_TQ1_0:
    case AL_TYPE_TQ2_0: return AL_TYPE_Q8_K;
    case AL_TYPE_IQ2_XXS: case AL_TYPE_IQ2_XS: case AL_TYPE_IQ2_S: case AL_TYPE_IQ3_XXS: case AL_TYPE_IQ3_S:
    case AL_TYPE_IQ1_S: case AL_TYPE_IQ1_M: return AL_TYPE_Q8_K;
    default: return AL_TYPE_COUNT;
    }
}

static float dot1_f32(int64_t k, const void *vw, const void *va)
{
    const float *w = vw, *a = va;
    double s = 0.0;
    for (int64_t i = 0; i < k; i++)
        s += (double)(w[i] * a[i]);
    return (float)s;
}

static float dot1_f16(int64_t k, const void *vw, const void *va)
{
    const al_half *w = vw, *a = va;
    double s = 0.0;
    for (int64_t i = 0; i < k; i++)
        s += (double)(al_fp16_to_fp32(w[i]) * al_fp16_to_fp32(a[i]));
    return (float)s;
}

static float dot1_bf16(int64_t k, const void *vw, const void *va)
{
    const al_bf16 *w = vw, *a = va;
    double s = 0.0;
    for (int64_t i = 0; i < k; i++)
        s += (double)(al_bf16_to_fp32(w[i]) * al_bf16_to_fp32(a[i]));
    return (float)s;
}

static float dot1_q4_0(int64_t k, const void *vw, const void *va)
{
    const al_block_q4_0 *w = vw;
    const al_block_q8_0 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((w[i].qs[j] & 0x0f) - 8) * a[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
        s += (float)sumi * (al_fp16_to_fp32(w[i].d) * al_fp16_to_fp32(a[i].d));
    }
    return s;
}

static float dot1_q4_1(int64_t k, const void *vw, const void *va)
{
    const al_block_q4_1 *w = vw;
    const al_block_q8_1 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += (w[i].qs[j] & 0x0f) * a[i].qs[j] + (w[i].qs[j] >> 4) * a[i].qs[j + 16];
        s += (al_fp16_to_fp32(w[i].d) * al_fp16_to_fp32(a[i].d)) * (float)sumi +
             al_fp16_to_fp32(w[i].m) * al_fp16_to_fp32(a[i].s);
    }
    return s;
}

static float dot1_q5_0(int64_t k, const void *vw, const void *va)
{
    const al_block_q5_0 *w = vw;
    const al_block_q8_0 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++) {
        uint32_t qh = al_le32(w[i].qh);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
            sumi += (((w[i].qs[j] & 0x0f) | h0) - 16) * a[i].qs[j] + (((w[i].qs[j] >> 4) | h1) - 16) * a[i].qs[j + 16];
        }
        s += (float)sumi * (al_fp16_to_fp32(w[i].d) * al_fp16_to_fp32(a[i].d));
    }
    return s;
}

static float dot1_q5_1(int64_t k, const void *vw, const void *va)
{
    const al_block_q5_1 *w = vw;
    const al_block_q8_1 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++) {
        uint32_t qh = al_le32(w[i].qh);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
            sumi += ((w[i].qs[j] & 0x0f) | h0) * a[i].qs[j] + ((w[i].qs[j] >> 4) | h1) * a[i].qs[j + 16];
        }
        s += (al_fp16_to_fp32(w[i].d) * al_fp16_to_fp32(a[i].d)) * (float)sumi +
             al_fp16_to_fp32(w[i].m) * al_fp16_to_fp32(a[i].s);
    }
    return s;
}

static float dot1_q8_0(int64_t k, const void *vw, const void *va)
{
    const al_block_q8_0 *w = vw;
    const al_block_q8_0 *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK; i++) {
        int sumi = 0;
        for (int j = 0; j < AL_QK; j++)
            sumi += w[i].qs[j] * a[i].qs[j];
        s += (float)sumi * (al_fp16_to_fp32(w[i].d) * al_fp16_to_fp32(a[i].d));
    }
    return s;
}

static float dot1_q2_K(int64_t k, const void *vw, const void *va)
{
    const al_block_q2_K *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const uint8_t *q2 = w[i].qs, *sc = w[i].scales;
        const int8_t *q8 = a[i].qs;
        int summs = 0;
        for (int j = 0; j < 16; j++)
            summs += a[i].bsums[j] * (sc[j] >> 4);
        int isum = 0, is = 0;
        for (int n = 0; n < 2; n++, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++, q8 += 16) {
                    int sub = 0;
                    for (int l = 0; l < 16; l++)
                        sub += q8[l] * ((q2[l + 16 * half] >> shift) & 3);
                    isum += (sc[is++] & 0x0f) * sub;
                }
            }
        }
        const float dall = a[i].d * al_fp16_to_fp32(w[i].d), dmin = a[i].d * al_fp16_to_fp32(w[i].dmin);
        s += dall * (float)isum - dmin * (float)summs;
    }
    return s;
}

static float dot1_q3_K(int64_t k, const void *vw, const void *va)
{
    const al_block_q3_K *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        int8_t sc[16];
        al_q3_K_scales(w[i].scales, sc);
        const uint8_t *q3 = w[i].qs, *hm = w[i].hmask;
        const int8_t *q8 = a[i].qs;
        int isum = 0, is = 0;
        uint8_t m = 1;
        for (int n = 0; n < 2; n++, q3 += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int half = 0; half < 2; half++, q8 += 16) {
                    int sub = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        sub += q8[l - 16 * half] * (((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                    isum += sc[is++] * sub;
                }
            }
        }
        s += (al_fp16_to_fp32(w[i].d) * a[i].d) * (float)isum;
    }
    return s;
}

/* Shared by Q4_K and Q5_K: q holds the 256 unsigned quants of a block. */
static float dot_k4_block(const uint8_t *scales, const uint8_t q[256], const al_block_q8_K *a, float d, float dmin)
{
    int sumq = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        al_q4_K_scale_min(j, scales, &sc, &m);
        int sub = 0;
        for (int l = 0; l < 32; l++)
            sub += q[32 * j + l] * a->qs[32 * j + l];
        sumq += sc * sub;
        summ += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
    }
    return d * a->d * (float)sumq - dmin * a->d * (float)summ;
}

static float dot1_q4_K(int64_t k, const void *vw, const void *va)
{
    const al_block_q4_K *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        uint8_t q[256];
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                q[64 * j + l] = w[i].qs[32 * j + l] & 0x0f;
                q[64 * j + 32 + l] = w[i].qs[32 * j + l] >> 4;
            }
        s += dot_k4_block(w[i].scales, q, &a[i], al_fp16_to_fp32(w[i].d), al_fp16_to_fp32(w[i].dmin));
    }
    return s;
}

static float dot1_q5_K(int64_t k, const void *vw, const void *va)
{
    const al_block_q5_K *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        uint8_t q[256];
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                uint8_t h = w[i].qh[l];
                q[64 * j + l] = (uint8_t)((w[i].qs[32 * j + l] & 0x0f) | (((h >> (2 * j)) & 1) << 4));
                q[64 * j + 32 + l] = (uint8_t)((w[i].qs[32 * j + l] >> 4) | (((h >> (2 * j + 1)) & 1) << 4));
            }
        s += dot_k4_block(w[i].scales, q, &a[i], al_fp16_to_fp32(w[i].d), al_fp16_to_fp32(w[i].dmin));
    }
    return s;
}

static float dot1_q6_K(int64_t k, const void *vw, const void *va)
{
    const al_block_q6_K *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        int8_t q[256];
        const uint8_t *ql = w[i].ql, *qh = w[i].qh;
        for (int n = 0; n < 2; n++, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                int8_t *o = q + 128 * n;
                o[l] = (int8_t)(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
                o[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
                o[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * g + l] * a[i].qs[16 * g + l];
            isum += w[i].scales[g] * sub;
        }
        s += (al_fp16_to_fp32(w[i].d) * a[i].d) * (float)isum;
    }
    return s;
}

/* dot_<t>: the al_dot_fn of type t, dot1_<t> once per token. */
#define AL_DOT_NT(t)                                                                               \
    static void dot_##t(int64_t k, const void *w, const void *a, size_t as, int nt, float *out)   \
    {                                                                                              \
        for (int i = 0; i < nt; i++)                                                               \
            out[i] = dot1_##t(k, w, (const char *)a + (size_t)i * as);                             \
    }

AL_DOT_NT(f32)
AL_DOT_NT(f16)
AL_DOT_NT(bf16)
AL_DOT_NT(q4_0)
AL_DOT_NT(q4_1)
AL_DOT_NT(q5_0)
AL_DOT_NT(q5_1)
AL_DOT_NT(q8_0)
AL_DOT_NT(q2_K)
AL_DOT_NT(q3_K)
AL_DOT_NT(q4_K)
AL_DOT_NT(q5_K)
AL_DOT_NT(q6_K)

/* the types of quant_iq4.h */
#define dot1_iq4_nl al_dot1_iq4_nl
#define dot1_iq4_xs al_dot1_iq4_xs
#define dot1_mxfp4 al_dot1_mxfp4
#define dot1_tq1_0 al_dot1_tq1_0
#define dot1_tq2_0 al_dot1_tq2_0
AL_DOT_NT(iq4_nl)
AL_DOT_NT(iq4_xs)
AL_DOT_NT(mxfp4)
AL_DOT_NT(tq1_0)
AL_DOT_NT(tq2_0)

static const al_kernels k_ref = {
    .name = "generic",
    .dot = {
        [AL_TYPE_F32] = dot_f32, [AL_TYPE_F16] = dot_f16, [AL_TYPE_BF16] = dot_bf16,
        [AL_TYPE_Q4_0] = dot_q4_0, [AL_TYPE_Q4_1] = dot_q4_1, [AL_TYPE_Q5_0] = dot_q5_0,
        [AL_TYPE_Q5_1] = dot_q5_1, [AL_TYPE_Q8_0] = dot_q8_0, [AL_TYPE_Q2_K] = dot_q2_K,
        [AL_TYPE_Q3_K] = dot_q3_K, [AL_TYPE_Q4_K] = dot_q4_K, [AL_TYPE_Q5_K] = dot_q5_K,
        [AL_TYPE_Q6_K] = dot_q6_K,
        [AL_TYPE_IQ4_NL] = dot_iq4_nl,
        [AL_TYPE_IQ4_XS] = dot_iq4_xs,
        [AL_TYPE_MXFP4] = dot_mxfp4,
        [AL_TYPE_TQ1_0] = dot_tq1_0,
        [AL_TYPE_TQ2_0] = dot_tq2_0,
        AL_IQ_REF_DOTS
    },
    .quant_q8_0 = al_quantize_row_q8_0,
    .quant_q8_K = al_quantize_row_q8_K,
    .to_f16 = al_fp32_to_fp16_row_ref,
    .round_f16 = al_round_fp16_row_ref,
};

const al_kernels *al_kernels_ref(void)
{
    return &k_ref;
}
