/* quant_iq.c - exact dequantization and the plain-C dot products (vs Q8_K)
 * of the i-quant grid types, following the format's definition in ggml.
 * The dot products keep every group's sum in integers (grid values and
 * scales are integers) and scale once per block, like ggml's generic
 * kernels; the AVX2 twins in kernels_iq_avx2.c are tested against them. */
#include "tensor/quant_iq.h"
#include "tensor/kernels.h"

#include <math.h>
#include <string.h>

/* Byte j of a codebook entry. */
static inline int g8(uint64_t e, int j)
{
    return (int)((e >> (8 * j)) & 0xff);
}

static inline int g8s(uint64_t e, int j) /* IQ1: bytes are int8 */
{
    return (int)(int8_t)((e >> (8 * j)) & 0xff);
}

static inline uint32_t le32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint16_t le16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

al_half al_iq1_m_d(const al_block_iq1_m *b)
{
    uint16_t sc[4];
    memcpy(sc, b->scales, sizeof(sc));
    return (al_half)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

/* ------------------------------------------------------------ dequantize */

void al_deq_iq2_xxs(const void *src, float *y, int64_t nb)
{
    const al_block_iq2_xxs *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        const uint8_t *q = (const uint8_t *)x[i].qs;
        for (int g = 0; g < 8; g++, q += 8) {
            const uint32_t sg = le32(q + 4);
            const float db = d * (0.5f + (float)(sg >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint64_t e = al_iq2xxs_grid[q[l]];
                const uint8_t s = al_iq_ksigns[(sg >> (7 * l)) & 127];
                for (int j = 0; j < 8; j++)
                    y[j] = db * (float)g8(e, j) * ((s >> j) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

void al_deq_iq2_xs(const void *src, float *y, int64_t nb)
{
    const al_block_iq2_xs *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        for (int g = 0; g < 8; g++) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[g] & 0x0f)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[g] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint16_t q = le16(&x[i].qs[4 * g + l]);
                const uint64_t e = al_iq2xs_grid[q & 511];
                const uint8_t s = al_iq_ksigns[q >> 9];
                for (int j = 0; j < 8; j++)
                    y[j] = db[l / 2] * (float)g8(e, j) * ((s >> j) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

void al_deq_iq2_s(const void *src, float *y, int64_t nb)
{
    const al_block_iq2_s *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + AL_QK_K / 8;
        for (int g = 0; g < 8; g++, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[g] & 0x0f)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[g] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint64_t e = al_iq2s_grid[qs[l] | ((x[i].qh[g] << (8 - 2 * l)) & 0x300)];
                for (int j = 0; j < 8; j++)
                    y[j] = db[l / 2] * (float)g8(e, j) * ((signs[l] >> j) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

void al_deq_iq3_xxs(const void *src, float *y, int64_t nb)
{
    const al_block_iq3_xxs *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        const uint8_t *qs = x[i].qs, *ss = x[i].qs + AL_QK_K / 4;
        for (int g = 0; g < 8; g++, qs += 8) {
            const uint32_t sg = le32(ss + 4 * g);
            const float db = d * (0.5f + (float)(sg >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t s = al_iq_ksigns[(sg >> (7 * l)) & 127];
                const uint64_t e = al_iq3xxs_grid[qs[2 * l]] | (uint64_t)al_iq3xxs_grid[qs[2 * l + 1]] << 32;
                for (int j = 0; j < 8; j++)
                    y[j] = db * (float)g8(e, j) * ((s >> j) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

/* The 8-byte pair of IQ3_S grid entries of elements 8l..8l+7 of group g. */
static inline uint64_t iq3s_pair(const al_block_iq3_s *b, int g, int l)
{
    const uint8_t *qs = b->qs + 8 * g;
    const int h = b->qh[g];
    return al_iq3s_grid[qs[2 * l] | ((h << (8 - 2 * l)) & 256)] |
           (uint64_t)al_iq3s_grid[qs[2 * l + 1] | ((h << (7 - 2 * l)) & 256)] << 32;
}

void al_deq_iq3_s(const void *src, float *y, int64_t nb)
{
    const al_block_iq3_s *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        for (int g = 0; g < 8; g++) {
            const int s4 = (x[i].scales[g / 2] >> (4 * (g & 1))) & 0x0f;
            const float db = d * (float)(1 + 2 * s4);
            for (int l = 0; l < 4; l++, y += 8) {
                const uint64_t e = iq3s_pair(&x[i], g, l);
                const uint8_t s = x[i].signs[4 * g + l];
                for (int j = 0; j < 8; j++)
                    y[j] = db * (float)g8(e, j) * ((s >> j) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

void al_deq_iq1_s(const void *src, float *y, int64_t nb)
{
    const al_block_iq1_s *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(x[i].d);
        for (int g = 0; g < 8; g++) {
            const uint16_t qh = le16(&x[i].qh[g]);
            const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            const float delta = qh & 0x8000 ? -AL_IQ1_DELTA : AL_IQ1_DELTA;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint64_t e = al_iq1s_grid[x[i].qs[4 * g + l] | (((qh >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++)
                    y[j] = dl * ((float)g8s(e, j) + delta);
            }
        }
    }
}

/* Grid index of elements 8l..8l+7 of group g of an IQ1_M block, and the
 * sign of their shift (bit 3 of the qh nibble). */
static inline int iq1m_index(const al_block_iq1_m *b, int g, int l, int *neg)
{
    const int h = b->qh[2 * g + l / 2] >> (4 * (l & 1));
    *neg = (h & 8) != 0;
    return b->qs[4 * g + l] | ((h & 7) << 8);
}

/* The 3-bit scale of half hf (0, 1) of group g: 2s + 1. */
static inline int iq1m_scale(const al_block_iq1_m *b, int g, int hf)
{
    const uint16_t sc = le16(b->scales + 2 * (g / 2));
    return 2 * ((sc >> (6 * (g & 1) + 3 * hf)) & 7) + 1;
}

void al_deq_iq1_m(const void *src, float *y, int64_t nb)
{
    const al_block_iq1_m *x = src;
    for (int64_t i = 0; i < nb; i++) {
        const float d = al_fp16_to_fp32(al_iq1_m_d(&x[i]));
        for (int g = 0; g < 8; g++) {
            for (int l = 0; l < 4; l++, y += 8) {
                int neg;
                const uint64_t e = al_iq1s_grid[iq1m_index(&x[i], g, l, &neg)];
                const float dl = d * (float)iq1m_scale(&x[i], g, l / 2);
                const float delta = neg ? -AL_IQ1_DELTA : AL_IQ1_DELTA;
                for (int j = 0; j < 8; j++)
                    y[j] = dl * ((float)g8s(e, j) + delta);
            }
        }
    }
}

int64_t al_iq_bad_scale(uint32_t type, const void *row, int64_t nb)
{
    const size_t bb = al_type_get(type)->block_bytes;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = (const uint8_t *)row + (size_t)i * bb;
        al_half d;
        if (type == AL_TYPE_IQ1_M)
            d = al_iq1_m_d((const al_block_iq1_m *)b);
        else
            d = le16(b); /* every other i-quant block starts with d */
        if ((d & 0x7c00) == 0x7c00)
            return i;
    }
    return -1;
}

/* ------------------------------------------------------------ dot (ref) */

/* sum_j grid byte j * sign j * q8[j] over 8 elements */
static inline int dot8(uint64_t e, uint8_t signs, const int8_t *q8)
{
    int s = 0;
    for (int j = 0; j < 8; j++)
        s += g8(e, j) * ((signs >> j) & 1 ? -q8[j] : q8[j]);
    return s;
}

static float dot1_iq2_xxs(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq2_xxs *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const uint8_t *q = (const uint8_t *)w[i].qs;
        const int8_t *q8 = a[i].qs;
        int bsum = 0;
        for (int g = 0; g < 8; g++, q += 8) {
            const uint32_t sg = le32(q + 4);
            int sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi += dot8(al_iq2xxs_grid[q[l]], al_iq_ksigns[(sg >> (7 * l)) & 127], q8);
            bsum += sumi * (int)(2 * (sg >> 28) + 1);
        }
        sumf += al_fp16_to_fp32(w[i].d) * a[i].d * (float)bsum;
    }
    return 0.125f * sumf;
}

static float dot1_iq2_xs(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq2_xs *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const int8_t *q8 = a[i].qs;
        int bsum = 0;
        for (int g = 0; g < 8; g++) {
            int sumi[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8) {
                const uint16_t q = le16(&w[i].qs[4 * g + l]);
                sumi[l / 2] += dot8(al_iq2xs_grid[q & 511], al_iq_ksigns[q >> 9], q8);
            }
            bsum += sumi[0] * (2 * (w[i].scales[g] & 0x0f) + 1) + sumi[1] * (2 * (w[i].scales[g] >> 4) + 1);
        }
        sumf += al_fp16_to_fp32(w[i].d) * a[i].d * (float)bsum;
    }
    return 0.125f * sumf;
}

static float dot1_iq2_s(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq2_s *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const uint8_t *qs = w[i].qs, *signs = w[i].qs + AL_QK_K / 8;
        const int8_t *q8 = a[i].qs;
        int bsum = 0;
        for (int g = 0; g < 8; g++, qs += 4, signs += 4) {
            int sumi[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi[l / 2] += dot8(al_iq2s_grid[qs[l] | ((w[i].qh[g] << (8 - 2 * l)) & 0x300)], signs[l], q8);
            bsum += sumi[0] * (2 * (w[i].scales[g] & 0x0f) + 1) + sumi[1] * (2 * (w[i].scales[g] >> 4) + 1);
        }
        sumf += al_fp16_to_fp32(w[i].d) * a[i].d * (float)bsum;
    }
    return 0.125f * sumf;
}

static float dot1_iq3_xxs(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq3_xxs *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const uint8_t *qs = w[i].qs, *ss = w[i].qs + AL_QK_K / 4;
        const int8_t *q8 = a[i].qs;
        int bsum = 0;
        for (int g = 0; g < 8; g++, qs += 8) {
            const uint32_t sg = le32(ss + 4 * g);
            int sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                const uint64_t e = al_iq3xxs_grid[qs[2 * l]] | (uint64_t)al_iq3xxs_grid[qs[2 * l + 1]] << 32;
                sumi += dot8(e, al_iq_ksigns[(sg >> (7 * l)) & 127], q8);
            }
            bsum += sumi * (int)(2 * (sg >> 28) + 1);
        }
        sumf += al_fp16_to_fp32(w[i].d) * a[i].d * (float)bsum;
    }
    return 0.25f * sumf;
}

static float dot1_iq3_s(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq3_s *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const int8_t *q8 = a[i].qs;
        int bsum = 0;
        for (int g = 0; g < 8; g++) {
            int sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi += dot8(iq3s_pair(&w[i], g, l), w[i].signs[4 * g + l], q8);
            bsum += sumi * (2 * ((w[i].scales[g / 2] >> (4 * (g & 1))) & 0x0f) + 1);
        }
        sumf += al_fp16_to_fp32(w[i].d) * a[i].d * (float)bsum;
    }
    return sumf;
}

static float dot1_iq1_s(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq1_s *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const int8_t *q8 = a[i].qs;
        int sumi = 0, sumi1 = 0;
        for (int g = 0; g < 8; g++) {
            const uint16_t qh = le16(&w[i].qh[g]);
            const int ls = 2 * ((qh >> 12) & 7) + 1, delta = qh & 0x8000 ? -1 : 1;
            int lsum = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                const uint64_t e = al_iq1s_grid[w[i].qs[4 * g + l] | (((qh >> (3 * l)) & 7) << 8)];
                for (int j = 0; j < 8; j++)
                    lsum += q8[j] * g8s(e, j);
            }
            sumi += ls * lsum;
            sumi1 += ls * delta * (a[i].bsums[2 * g] + a[i].bsums[2 * g + 1]);
        }
        sumf += al_fp16_to_fp32(w[i].d) * a[i].d * ((float)sumi + AL_IQ1_DELTA * (float)sumi1);
    }
    return sumf;
}

static float dot1_iq1_m(int64_t k, const void *vw, const al_block_q8_K *a)
{
    const al_block_iq1_m *w = vw;
    float sumf = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        const int8_t *q8 = a[i].qs;
        int sumi1 = 0, sumi2 = 0;
        for (int g = 0; g < 8; g++) {
            int sum1[2] = {0, 0}, sum2[2] = {0, 0};
            for (int l = 0; l < 4; l++, q8 += 8) {
                int neg;
                const uint64_t e = al_iq1s_grid[iq1m_index(&w[i], g, l, &neg)];
                int lsum1 = 0, lsum2 = 0;
                for (int j = 0; j < 8; j++) {
                    lsum1 += q8[j] * g8s(e, j);
                    lsum2 += q8[j];
                }
                sum1[l / 2] += lsum1;
                sum2[l / 2] += neg ? -lsum2 : lsum2;
            }
            const int ls1 = iq1m_scale(&w[i], g, 0), ls2 = iq1m_scale(&w[i], g, 1);
            sumi1 += sum1[0] * ls1 + sum1[1] * ls2;
            sumi2 += sum2[0] * ls1 + sum2[1] * ls2;
        }
        sumf += al_fp16_to_fp32(al_iq1_m_d(&w[i])) * a[i].d * ((float)sumi1 + AL_IQ1_DELTA * (float)sumi2);
    }
    return sumf;
}

#define AL_IQ_DOT_REF(t)                                                                           \
    void al_dot_##t##_ref(int64_t k, const void *w, const void *a, size_t as, int nt, float *out)  \
    {                                                                                              \
        for (int i = 0; i < nt; i++)                                                               \
            out[i] = dot1_##t(k, w, (const al_block_q8_K *)((const char *)a + (size_t)i * as));    \
    }

AL_IQ_DOT_REF(iq2_xxs)
AL_IQ_DOT_REF(iq2_xs)
AL_IQ_DOT_REF(iq2_s)
AL_IQ_DOT_REF(iq3_xxs)
AL_IQ_DOT_REF(iq3_s)
AL_IQ_DOT_REF(iq1_s)
AL_IQ_DOT_REF(iq1_m)
