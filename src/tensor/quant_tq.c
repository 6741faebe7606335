/* quant_tq.c - the ternary types TQ1_0 and TQ2_0: exact dequantization and
 * the plain-C dots with Q8_K activations (the reference twins of
 * kernels_iq4_avx2.c). */
#include "tensor/quant_iq4.h"

/* Trit n (0..4) of a base-3 packed byte: the byte is a fixed-point
 * fraction of 3^5 = 243, so multiplying by 3^n (mod 256) brings digit n to
 * the top, and * 3 >> 8 reads it. */
static int trit(uint8_t byte, int n)
{
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t q = (uint8_t)(byte * pow3[n]);
    return ((uint16_t)q * 3) >> 8;
}

void al_tq1_0_trits(const al_block_tq1_0 *b, int8_t out[AL_QK_K])
{
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++)
            out[32 * n + m] = (int8_t)(trit(b->qs[m], n) - 1);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++)
            out[160 + 16 * n + m] = (int8_t)(trit(b->qs[32 + m], n) - 1);
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++)
            out[240 + 4 * n + j] = (int8_t)(trit(b->qh[j], n) - 1);
}

void al_tq2_0_trits(const al_block_tq2_0 *b, int8_t out[AL_QK_K])
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++)
                out[128 * h + 32 * l + m] = (int8_t)(((b->qs[32 * h + m] >> (2 * l)) & 3) - 1);
}

void al_deq_tq1_0(const al_block_tq1_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK_K) {
        int8_t t[AL_QK_K];
        al_tq1_0_trits(&x[i], t);
        const float d = al_fp16_to_fp32(x[i].d);
        for (int j = 0; j < AL_QK_K; j++)
            y[j] = (float)t[j] * d;
    }
}

void al_deq_tq2_0(const al_block_tq2_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += AL_QK_K) {
        int8_t t[AL_QK_K];
        al_tq2_0_trits(&x[i], t);
        const float d = al_fp16_to_fp32(x[i].d);
        for (int j = 0; j < AL_QK_K; j++)
            y[j] = (float)t[j] * d;
    }
}

static int dot_trits(const int8_t t[AL_QK_K], const int8_t *q8)
{
    int s = 0;
    for (int j = 0; j < AL_QK_K; j++)
        s += t[j] * q8[j];
    return s;
}

float al_dot1_tq1_0(int64_t k, const void *vw, const void *va)
{
    const al_block_tq1_0 *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        int8_t t[AL_QK_K];
        al_tq1_0_trits(&w[i], t);
        s += (float)dot_trits(t, a[i].qs) * (a[i].d * al_fp16_to_fp32(w[i].d));
    }
    return s;
}

float al_dot1_tq2_0(int64_t k, const void *vw, const void *va)
{
    const al_block_tq2_0 *w = vw;
    const al_block_q8_K *a = va;
    float s = 0.0f;
    for (int64_t i = 0; i < k / AL_QK_K; i++) {
        int8_t t[AL_QK_K];
        al_tq2_0_trits(&w[i], t);
        s += (float)dot_trits(t, a[i].qs) * (a[i].d * al_fp16_to_fp32(w[i].d));
    }
    return s;
}
