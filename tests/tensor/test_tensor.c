/* test_tensor.c - the tensor kernels held to their references:
 * half/bfloat conversions, dequantization (hand-built blocks and the real
 * stories260K model against its F32 original), activation quantizers,
 * every AVX2 kernel against its plain-C twin and both against a
 * dequantize-then-dot oracle, al_matmul against al_matmul_exact for every
 * type, the thread pool, and real GGUF tensors. Run twice by ctest: once
 * as is and once with AIRLOCK_NO_AVX2=1 (the generic path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "tensor/quant_iq4.h"

static const uint32_t k_types[] = {
    AL_TYPE_F32, AL_TYPE_F16, AL_TYPE_BF16, AL_TYPE_Q4_0, AL_TYPE_Q4_1, AL_TYPE_Q5_0, AL_TYPE_Q5_1,
    AL_TYPE_Q8_0, AL_TYPE_Q2_K, AL_TYPE_Q3_K, AL_TYPE_Q4_K, AL_TYPE_Q5_K, AL_TYPE_Q6_K,
    AL_TYPE_IQ4_NL, AL_TYPE_IQ4_XS, AL_TYPE_MXFP4, AL_TYPE_TQ1_0, AL_TYPE_TQ2_0,
};
#define N_TYPES (sizeof(k_types) / sizeof(k_types[0]))

/* ------------------------------------------------------------ helpers */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f;
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, n < 64 ? 64 : (n + 63) / 64 * 64), 0);
    memset(p, 0, n);
    return p;
}

static void put_half(uint8_t *p, float v)
{
    al_half h = al_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Fills one weight row. mode 0: random; 1: zero scales in every other
 * block; 2: all quant bytes 0xff and large scales; 3: all quant bytes 0;
 * 4: quant bytes at the extremes (0x7f/0x80 alternating, or 0xff in every
 * other block) with random scales. */
static void fill_row(uint32_t t, uint8_t *row, int64_t k, int mode)
{
    const al_type_traits *tr = al_type_get(t);
    const size_t bb = tr->block_bytes;
    const int64_t nb = k / tr->block_elems;
    if (t == AL_TYPE_F32 || t == AL_TYPE_F16 || t == AL_TYPE_BF16) {
        for (int64_t i = 0; i < k; i++) {
            float v = mode == 2 ? (i % 2 ? 60000.0f : -1e-3f) : mode == 3 ? 0.0f : frand(-1, 1);
            if (mode == 1 && (i / 32) % 2)
                v = 0.0f;
            if (t == AL_TYPE_F32)
                memcpy(row + 4 * i, &v, 4);
            else if (t == AL_TYPE_F16)
                put_half(row + 2 * i, v);
            else {
                al_bf16 b = al_fp32_to_bf16(v);
                memcpy(row + 2 * i, &b, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < nb * bb; i++)
        row[i] = mode == 2 ? 0xff : mode == 3 ? 0 : mode == 4 ? ((i / bb) % 2 ? 0xff : i % 2 ? 0x80 : 0x7f)
                                                                  : (uint8_t)rnd();
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = row + b * bb;
        float d = mode == 2 ? 2.0f : frand(-0.05f, 0.05f), m = mode == 2 ? -1.5f : frand(-0.05f, 0.05f);
        if (mode == 1 && b % 2)
            d = m = 0.0f;
        switch (t) {
        case AL_TYPE_Q4_0: case AL_TYPE_Q5_0: case AL_TYPE_Q8_0: put_half(p, d); break;
        case AL_TYPE_Q4_1: case AL_TYPE_Q5_1: put_half(p, d); put_half(p + 2, m); break;
        case AL_TYPE_Q2_K: put_half(p + 80, d * 0.1f); put_half(p + 82, m * 0.1f); break;
        case AL_TYPE_Q3_K: put_half(p + 108, d * 0.1f); break;
        case AL_TYPE_Q4_K: case AL_TYPE_Q5_K: put_half(p, d * 0.1f); put_half(p + 2, m * 0.1f); break;
        case AL_TYPE_Q6_K: put_half(p + 208, d * 0.1f); break;
        case AL_TYPE_IQ4_NL: put_half(p, d * 0.1f); break;
        case AL_TYPE_IQ4_XS: put_half(p, d * 0.01f); break;
        case AL_TYPE_TQ1_0: put_half(p + 52, d); break;
        case AL_TYPE_TQ2_0: put_half(p + 64, d); break;
        case AL_TYPE_MXFP4: /* 2^(e-128): 2^-8 .. 2^3, 0 for tiny */
            p[0] = (uint8_t)(mode == 2 ? 131 : mode == 1 && b % 2 ? 0 : 120 + rnd() % 12);
            break;
        default: break;
        }
    }
}

/* Activation rows: random, with extreme modes (2: large values; 1: zeros;
 * 4: all of one magnitude, so that every quantized value is +-127). */
static void fill_x(float *x, int64_t n, int mode)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = frand(-1, 1);
        if (mode == 2 && i % 37 == 0)
            x[i] = (i % 2 ? 300.0f : -300.0f);
        if (mode == 1 && (i / 256) % 2)
            x[i] = 0.0f;
        if (mode == 4)
            x[i] = i % 3 ? 0.75f : -0.75f;
    }
}

/* Activation row (type at) back to floats such that the dot of a
 * dequantized weight row with it is exactly what the kernel computes. */
static void deq_act(uint32_t at, const void *a, float *out, int64_t k)
{
    if (at == AL_TYPE_Q8_1) {
        const al_block_q8_1 *b = a;
        for (int64_t i = 0; i < k / 32; i++) {
            float d = al_fp16_to_fp32(b[i].d), s = al_fp16_to_fp32(b[i].s);
            int sum = 0;
            for (int j = 0; j < 32; j++)
                sum += b[i].qs[j];
            /* the kernel uses s for the min term: spread its rounding */
            float corr = (s - d * (float)sum) / 32.0f;
            for (int j = 0; j < 32; j++)
                out[32 * i + j] = d * (float)b[i].qs[j] + corr;
        }
        return;
    }
    al_dequantize_row(at, a, out, k);
}

static void convert_act(uint32_t at, const float *x, void *a, int64_t k)
{
    switch (at) {
    case AL_TYPE_Q8_0: al_quantize_row_q8_0(x, a, k); break;
    case AL_TYPE_Q8_1: al_quantize_row_q8_1(x, a, k); break;
    case AL_TYPE_Q8_K: al_quantize_row_q8_K(x, a, k); break;
    case AL_TYPE_F16: al_fp32_to_fp16_row(x, a, k); break;
    case AL_TYPE_BF16: al_fp32_to_bf16_row(x, a, k); break;
    default: memcpy(a, x, (size_t)k * 4); break;
    }
}

/* ------------------------------------------------------------ conversions */

static void test_half(void **state)
{
    (void)state;
    assert_int_equal(al_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(al_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(al_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(al_fp32_to_fp16(65520.0f), 0x7c00);      /* rounds up to inf */
    assert_int_equal(al_fp32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(al_fp32_to_fp16(ldexpf(1, -24)), 0x0001); /* smallest subnormal */
    assert_int_equal(al_fp32_to_fp16(ldexpf(1, -25)), 0x0000); /* tie to even: 0 */
    assert_int_equal(al_fp32_to_fp16(ldexpf(3, -25)), 0x0002); /* tie to even: 2 */
    assert_int_equal(al_fp32_to_fp16(1.0f + ldexpf(1, -11)), 0x3c00);     /* tie to even */
    assert_int_equal(al_fp32_to_fp16(1.0f + ldexpf(3, -11)), 0x3c02);     /* tie to even */
    assert_int_equal(al_fp32_to_fp16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3c01);
    assert_int_equal(al_fp32_to_fp16(INFINITY), 0x7c00);
    assert_true((al_fp32_to_fp16(NAN) & 0x7fff) > 0x7c00);
    /* every non-NaN half survives half -> float -> half */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue;
        assert_int_equal(al_fp32_to_fp16(al_fp16_to_fp32((al_half)h)), h);
    }
    assert_true(al_fp16_to_fp32(0x0001) == ldexpf(1, -24));
    assert_true(al_fp16_to_fp32(0x3555) == 0x155p-12f + 0.25f);
    /* bf16 */
    assert_int_equal(al_fp32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(al_fp32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80); /* tie to even */
    assert_int_equal(al_fp32_to_bf16(1.0f + ldexpf(3, -8)), 0x3f82);
    assert_int_equal(al_fp32_to_bf16(1.0f + ldexpf(1, -8) + ldexpf(1, -20)), 0x3f81);
    assert_true(isnan(al_bf16_to_fp32(al_fp32_to_bf16(NAN))));
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
            continue;
        assert_int_equal(al_fp32_to_bf16(al_bf16_to_fp32((al_bf16)h)), h);
    }
}

/* ------------------------------------------------------------ dequantize */

static void test_dequant_known(void **state)
{
    (void)state;
    float y[256];
    /* Q4_0: d = 0.5, qs[j] = j | (15-j) << 4 */
    al_block_q4_0 b4;
    b4.d = al_fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; j++)
        b4.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    al_dequantize_row(AL_TYPE_Q4_0, &b4, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 0.5f * (float)(j - 8));
        assert_true(y[j + 16] == 0.5f * (float)(7 - j));
    }
    /* Q5_1: the fifth bit of element j is bit j of qh (little-endian) */
    al_block_q5_1 b5;
    b5.d = al_fp32_to_fp16(1.0f);
    b5.m = al_fp32_to_fp16(-3.0f);
    const uint32_t qh = 0x80010002u; /* elements 1, 16, 31 */
    memcpy(b5.qh, &qh, 4);
    for (int j = 0; j < 16; j++)
        b5.qs[j] = (uint8_t)(1 | (2 << 4));
    al_dequantize_row(AL_TYPE_Q5_1, &b5, y, 32);
    for (int j = 0; j < 32; j++) {
        int q = j < 16 ? 1 : 2;
        if (j == 1 || j == 16 || j == 31)
            q += 16;
        assert_true(y[j] == (float)q - 3.0f);
    }
    /* Q6_K: element 0 = ql[0] low | qh[0] bits 0-1; element 64 = ql[0] high
     * | qh[0] bits 4-5; element 160 (second half, l = 0 of q2) = ql[96] low
     * | qh[32] bits 2-3, with scales 0, 4 and 10. */
    al_block_q6_K b6;
    memset(&b6, 0, sizeof(b6));
    for (int i = 0; i < 128; i++)
        b6.ql[i] = 0x00;
    b6.d = al_fp32_to_fp16(1.0f);
    for (int i = 0; i < 16; i++)
        b6.scales[i] = (int8_t)(i + 1);
    b6.ql[0] = 0x5a;    /* low 0xa, high 0x5 */
    b6.qh[0] = 0x31;    /* bits0-1 = 1, bits4-5 = 3 */
    b6.ql[96] = 0x07;
    b6.qh[32] = 0x08;   /* bits2-3 = 2 */
    al_dequantize_row(AL_TYPE_Q6_K, &b6, y, 256);
    assert_true(y[0] == 1.0f * (float)((0xa | 1 << 4) - 32));
    assert_true(y[64] == 5.0f * (float)((0x5 | 3 << 4) - 32));
    assert_true(y[160] == 11.0f * (float)((0x7 | 2 << 4) - 32));
    assert_true(y[1] == -32.0f);
    assert_true(y[255] == 16.0f * -32.0f);
    /* Q4_K: sub-block j uses scale/min j; j >= 4 packs high bits in
     * bytes 0..7's top two bits. Set sub-block 5: scale 0x2b (low 0xb in
     * byte 9, high 2 in byte 1 bits 6-7), min 0x31 (low 1 in byte 9 high
     * nibble, high 3 in byte 5 bits 6-7). */
    al_block_q4_K bk;
    memset(&bk, 0, sizeof(bk));
    bk.d = al_fp32_to_fp16(1.0f);
    bk.dmin = al_fp32_to_fp16(0.5f);
    bk.scales[9] = 0x1b;
    bk.scales[1] = 0x80;
    bk.scales[5] = 0xc0;
    bk.scales[0] = 7;   /* sub-block 0: scale 7, min 0 */
    bk.qs[64] = 0x3c;   /* sub-blocks 4 (low nibbles) and 5 (high): element 128 = 0xc, 160 = 0x3 */
    bk.qs[0] = 0x02;
    al_dequantize_row(AL_TYPE_Q4_K, &bk, y, 256);
    assert_true(y[0] == 14.0f);
    assert_true(y[160] == (float)(0x2b * 3) - 0.5f * (float)0x31);
    assert_true(y[161] == -0.5f * (float)0x31);
    /* sub-block 4: scale = byte 8 low | byte 0 bits 6-7 = 0; min = byte 8 high | byte 4 top = 0 */
    assert_true(y[128] == 0.0f);

    /* IQ4_NL: d = 0.5, qs[j] = j | (15-j) << 4: the codebook forwards then
     * backwards */
    al_block_iq4_nl bn;
    bn.d = al_fp32_to_fp16(0.5f);
    for (int j = 0; j < 16; j++)
        bn.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    al_dequantize_row(AL_TYPE_IQ4_NL, &bn, y, 32);
    assert_true(y[0] == -63.5f && y[7] == -5.0f && y[8] == 0.5f && y[15] == 56.5f);
    assert_true(y[16] == 56.5f && y[31] == -63.5f && y[20] == 0.5f * 38.0f);
    /* IQ4_XS: sub-block 3 has scale 0x25 (low nibble 5: high nibble of
     * scales_l[1]; high bits 2: scales_h bits 6-7), so a factor 5; the
     * others scale 0: factor -32 */
    al_block_iq4_xs bx;
    memset(&bx, 0, sizeof(bx));
    bx.d = al_fp32_to_fp16(0.25f);
    bx.scales_l[1] = 0x50;
    bx.scales_h = 2u << 6;
    bx.qs[48] = 0x0f; /* element 96: kv[15] = 113, element 112: kv[0] = -127 */
    bx.qs[0] = 0x98;  /* element 0: kv[8] = 1, element 16: kv[9] = 13 */
    al_dequantize_row(AL_TYPE_IQ4_XS, &bx, y, 256);
    assert_true(y[96] == 0.25f * 5 * 113 && y[112] == 0.25f * 5 * -127 && y[97] == 0.25f * 5 * -127);
    assert_true(y[0] == 0.25f * -32 && y[16] == 0.25f * -32 * 13 && y[1] == 0.25f * -32 * -127);
    /* MXFP4: e = 130 is 2^3 (E8M0, bias 127); nibble 7 is E2M1 0111 = 6,
     * nibble 0xf -6, nibble 1 0.5, nibble 9 -0.5; e = 0 is 2^-127 */
    al_block_mxfp4 bm[2];
    memset(bm, 0, sizeof(bm));
    bm[0].e = 130;
    bm[0].qs[0] = 0xf7;
    bm[0].qs[1] = 0x91;
    bm[1].e = 0;
    bm[1].qs[0] = 0x02; /* E2M1 0010 = 1.0 */
    al_dequantize_row(AL_TYPE_MXFP4, bm, y, 64);
    assert_true(y[0] == 48.0f && y[16] == -48.0f && y[1] == 4.0f && y[17] == -4.0f && y[2] == 0.0f);
    assert_true(y[32] == ldexpf(1.0f, -127) && y[48] == 0.0f);
    assert_true(al_e8m0_half(255) == ldexpf(1.0f, 127));
    /* TQ2_0: 2-bit fields q - 1, field l of byte m is element 32l + m (and
     * 128 + ... for bytes 32..63) */
    al_block_tq2_0 b2;
    memset(&b2, 0, sizeof(b2));
    b2.d = al_fp32_to_fp16(2.0f);
    b2.qs[0] = 0x92; /* fields 2, 0, 1, 2 */
    b2.qs[33] = 0x01;
    al_dequantize_row(AL_TYPE_TQ2_0, &b2, y, 256);
    assert_true(y[0] == 2.0f && y[32] == -2.0f && y[64] == 0.0f && y[96] == 2.0f && y[1] == -2.0f);
    assert_true(y[129] == 0.0f && y[161] == -2.0f && y[128] == -2.0f);
    /* TQ1_0: 186 = ceil(256 * (2*81 + 0*27 + 1*9 + 1*3 + 2) / 243) holds
     * the trits 2, 0, 1, 1, 2 (first trit most significant); byte 0 is all
     * zero trits (-1) */
    al_block_tq1_0 b1;
    memset(&b1, 0, sizeof(b1));
    b1.d = al_fp32_to_fp16(3.0f);
    b1.qs[0] = 186;
    b1.qs[32] = 186;
    b1.qh[1] = 186;
    al_dequantize_row(AL_TYPE_TQ1_0, &b1, y, 256);
    const float want[5] = {3.0f, -3.0f, 0.0f, 0.0f, 3.0f};
    for (int n = 0; n < 5; n++) {
        assert_true(y[32 * n] == want[n]);
        assert_true(y[160 + 16 * n] == want[n]);
        if (n < 4)
            assert_true(y[241 + 4 * n] == want[n]);
    }
    assert_true(y[1] == -3.0f && y[161] == -3.0f && y[240] == -3.0f && y[255] == -3.0f);
}

static void test_quant_roundtrip(void **state)
{
    (void)state;
    enum { K = 1024 };
    float x[K], y[K];
    fill_x(x, K, 2);
    for (int i = 0; i < 64; i++)
        x[512 + i] = 0.0f; /* an all-zero block */
    al_block_q8_0 q0[K / 32];
    al_quantize_row_q8_0(x, q0, K);
    al_dequantize_row(AL_TYPE_Q8_0, q0, y, K);
    for (int b = 0; b < K / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        for (int j = 0; j < 32; j++)
            assert_true(fabsf(y[32 * b + j] - x[32 * b + j]) <= amax / 254.0f * 1.01f + amax * 1e-3f);
        int qmax = 0;
        for (int j = 0; j < 32; j++)
            qmax = abs(q0[b].qs[j]) > qmax ? abs(q0[b].qs[j]) : qmax;
        assert_int_equal(qmax, amax > 0 ? 127 : 0);
    }
    al_block_q8_1 q1[K / 32];
    al_quantize_row_q8_1(x, q1, K);
    for (int b = 0; b < K / 32; b++) {
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            assert_int_equal(q1[b].qs[j], q0[b].qs[j]);
            sum += q1[b].qs[j];
        }
        assert_true(q1[b].s == al_fp32_to_fp16(al_fp16_to_fp32(q1[b].d) * (float)sum) ||
                    fabsf(al_fp16_to_fp32(q1[b].s) - (float)sum * al_fp16_to_fp32(q1[b].d)) <=
                        fabsf((float)sum * al_fp16_to_fp32(q1[b].d)) * 1e-3f);
    }
    al_block_q8_K qk[K / 256];
    al_quantize_row_q8_K(x, qk, K);
    al_dequantize_row(AL_TYPE_Q8_K, qk, y, K);
    for (int b = 0; b < K / 256; b++) {
        float amax = 0;
        for (int j = 0; j < 256; j++)
            amax = fmaxf(amax, fabsf(x[256 * b + j]));
        for (int j = 0; j < 256; j++)
            assert_true(fabsf(y[256 * b + j] - x[256 * b + j]) <= amax / 254.0f * 1.001f + 1e-7f);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += qk[b].qs[16 * g + l];
            assert_int_equal(qk[b].bsums[g], s);
        }
    }
    /* ties round to even in Q8_K: x = {127, 0.5*d...}: max 127 gives d = -1 */
    float t[256] = {0};
    t[0] = -127.0f;
    t[1] = 2.5f;
    t[2] = -3.5f;
    al_quantize_row_q8_K(t, qk, 256);
    assert_true(qk[0].d == 1.0f);
    assert_int_equal(qk[0].qs[1], 2);
    assert_int_equal(qk[0].qs[2], -4);
}

/* stories260K quantized vs its F32 original: dequantized tensors must be
 * close to the original weights (a wrong bit order is off by ~100%). */
static const char *shared_dir(void)
{
    const char *s = getenv("AIRLOCK_SHARED");
    return s && *s ? s : AL_SRC_DIR "/../shared";
}

static void test_dequant_real(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared_dir());
    al_gguf *ref = NULL;
    al_error err;
    if (al_gguf_open(path, NULL, &ref, &err) != AL_OK) {
        printf("SKIP real-model dequantize test: %s\n", err.msg);
        return;
    }
    static const struct { const char *file; uint32_t type; double max_rel; } cases[] = {
        {"stories260K-f16.gguf", AL_TYPE_F16, 1e-3}, {"stories260K-bf16.gguf", AL_TYPE_BF16, 6e-3},
        {"stories260K-q8_0.gguf", AL_TYPE_Q8_0, 0.012}, {"stories260K-q4_0.gguf", AL_TYPE_Q4_0, 0.2},
        {"stories260K-q5_1.gguf", AL_TYPE_Q5_1, 0.08},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        snprintf(path, sizeof(path), "%s/models/%s", shared_dir(), cases[c].file);
        al_gguf *g = NULL;
        if (al_gguf_open(path, NULL, &g, &err) != AL_OK)
            fail_msg("%s", err.msg);
        int n_checked = 0;
        double worst = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const al_gguf_tensor *t = &g->tensors[i];
            if (t->type != cases[c].type)
                continue;
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)t->name.len, t->name.ptr);
            const al_gguf_tensor *o = al_gguf_find_tensor(ref, name);
            assert_non_null(o);
            assert_int_equal(o->type, AL_TYPE_F32);
            assert_int_equal(o->n_elems, t->n_elems);
            float *y = xalloc(t->n_elems * 4);
            al_dequantize_row(t->type, t->data, y, (int64_t)t->n_elems);
            const float *f = o->data;
            double se = 0, sf = 0;
            for (uint64_t e = 0; e < t->n_elems; e++) {
                se += ((double)y[e] - f[e]) * ((double)y[e] - f[e]);
                sf += (double)f[e] * f[e];
            }
            double rel = sqrt(se / (sf + 1e-30));
            if (rel > worst)
                worst = rel;
            if (rel > cases[c].max_rel)
                fail_msg("%s %s: relative RMS error %.4f > %.4f", cases[c].file, name, rel, cases[c].max_rel);
            free(y);
            n_checked++;
        }
        printf("  %-24s %2d %s tensors, worst relative RMS error vs F32 %.5f\n", cases[c].file, n_checked,
               al_type_name(cases[c].type), worst);
        assert_true(n_checked > 0);
        al_gguf_close(g);
    }
    al_gguf_close(ref);
}

/* The shared files of the issue-13 types: tiny-llama-tq1_0 and -tq2_0 hold
 * the same ternary values in two block formats (identical dequantized
 * tensors); tiny-gpt-oss-mxfp4's MXFP4 expert tensors dequantize to finite,
 * non-trivial values, and al_matmul on an expert's rows agrees with the
 * exact path. */
static al_gguf *open_shared(const char *file)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/%s", shared_dir(), file);
    al_gguf *g = NULL;
    al_error err;
    if (al_gguf_open(path, NULL, &g, &err) != AL_OK) {
        printf("SKIP %s: %s\n", file, err.msg);
        return NULL;
    }
    return g;
}

static void test_dequant_real_new_types(void **state)
{
    (void)state;
    al_gguf *g1 = open_shared("tiny-llama-tq1_0.gguf"), *g2 = open_shared("tiny-llama-tq2_0.gguf");
    if (g1 && g2) {
        int n = 0;
        for (uint64_t i = 0; i < g1->n_tensors; i++) {
            const al_gguf_tensor *a = &g1->tensors[i];
            if (a->type != AL_TYPE_TQ1_0)
                continue;
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)a->name.len, a->name.ptr);
            const al_gguf_tensor *b = al_gguf_find_tensor(g2, name);
            assert_non_null(b);
            assert_int_equal(b->type, AL_TYPE_TQ2_0);
            assert_int_equal(a->n_elems, b->n_elems);
            float *ya = xalloc(a->n_elems * 4), *yb = xalloc(b->n_elems * 4);
            al_dequantize_row(a->type, a->data, ya, (int64_t)a->n_elems);
            al_dequantize_row(b->type, b->data, yb, (int64_t)b->n_elems);
            uint64_t n_zero = 0;
            for (uint64_t e = 0; e < a->n_elems; e++) {
                if (ya[e] != yb[e])
                    fail_msg("%s element %llu: TQ1_0 %g vs TQ2_0 %g", name, (unsigned long long)e, ya[e], yb[e]);
                n_zero += ya[e] == 0.0f;
            }
            /* ternary: about a third zeros, not all */
            assert_true(n_zero > a->n_elems / 10 && n_zero < a->n_elems / 10 * 9);
            free(ya), free(yb);
            n++;
        }
        printf("  tiny-llama-tq1_0 vs -tq2_0: %d ternary tensors dequantize identically\n", n);
        assert_true(n >= 14);
    }
    al_gguf_close(g1);
    al_gguf_close(g2);
    al_gguf *g = open_shared("tiny-gpt-oss-mxfp4.gguf");
    if (!g)
        return;
    int n = 0;
    al_threadpool *tp = al_threadpool_new(2);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const al_gguf_tensor *t = &g->tensors[i];
        if (t->type != AL_TYPE_MXFP4)
            continue;
        float *y = xalloc(t->n_elems * 4);
        al_dequantize_row(t->type, t->data, y, (int64_t)t->n_elems);
        double ss = 0;
        for (uint64_t e = 0; e < t->n_elems; e++) {
            if (!isfinite(y[e]))
                fail_msg("%.*s element %llu is %g", (int)t->name.len, t->name.ptr, (unsigned long long)e, y[e]);
            ss += (double)y[e] * y[e];
        }
        assert_true(ss > 0);
        uint64_t bad = 0;
        const char *why = NULL;
        assert_true(al_check_block_scales(t->type, t->data, t->n_elems / 32, &bad, &why));
        /* the first expert's rows through the fast and the exact matmul */
        const int64_t k = (int64_t)t->ne[0], rows = (int64_t)t->ne[1], n_tok = 5;
        const size_t rb = al_type_row_bytes(t->type, k);
        float *X = xalloc((size_t)(k * n_tok) * 4), *Y = xalloc((size_t)(rows * n_tok) * 4);
        float *Ye = xalloc((size_t)(rows * n_tok) * 4);
        fill_x(X, k * n_tok, 0);
        void *s1 = xalloc(al_matmul_scratch_bytes(t->type, k, n_tok));
        void *s2 = xalloc(al_matmul_exact_scratch_bytes(k, 2));
        al_matmul(tp, t->type, t->data, rows, k, rb, X, n_tok, Y, rows, s1);
        al_matmul_exact(tp, t->type, t->data, rows, k, rb, X, n_tok, Ye, rows, s2);
        for (int64_t r = 0; r < rows; r++) {
            double wabs = 0;
            for (int64_t e = 0; e < k; e++)
                wabs += fabs(y[r * k + e]);
            for (int64_t tok = 0; tok < n_tok; tok++)
                if (!(fabs(Y[tok * rows + r] - Ye[tok * rows + r]) <= wabs * (1.01 / 254.0 + 1e-3) + 1e-5))
                    fail_msg("%.*s row %lld tok %lld: %.9g vs exact %.9g", (int)t->name.len, t->name.ptr,
                             (long long)r, (long long)tok, Y[tok * rows + r], Ye[tok * rows + r]);
        }
        free(X), free(Y), free(Ye), free(s1), free(s2), free(y);
        n++;
    }
    al_threadpool_free(tp);
    printf("  tiny-gpt-oss-mxfp4: %d MXFP4 tensors finite, matmul = exact on their first expert\n", n);
    assert_true(n >= 2);
    al_gguf_close(g);
}

/* ------------------------------------------------------------ kernels */

/* One weight row against nt activation rows, three ways. */
static void check_dot(const al_kernels *fast, uint32_t t, int64_t k, int mode)
{
    const uint32_t at = al_act_type(t);
    const size_t rb = al_type_row_bytes(t, k), ab = al_type_row_bytes(at, k);
    uint8_t *w = xalloc(rb);
    uint8_t *a = xalloc(ab * AL_DOT_MAX_NT);
    float *x = xalloc((size_t)k * 4), *wf = xalloc((size_t)k * 4), *af = xalloc((size_t)k * 4);
    fill_row(t, w, k, mode);
    al_dequantize_row(t, w, wf, k);
    double wmax = 0;
    for (int64_t i = 0; i < k; i++)
        wmax = fmax(wmax, fabs(wf[i]));
    float out_ref[AL_DOT_MAX_NT], out_fast[AL_DOT_MAX_NT];
    for (int tok = 0; tok < AL_DOT_MAX_NT; tok++) {
        fill_x(x, k, mode);
        convert_act(at, x, a + tok * ab, k);
    }
    for (int nt = 1; nt <= AL_DOT_MAX_NT; nt++) {
        al_kernels_ref()->dot[t](k, w, a, ab, nt, out_ref);
        fast->dot[t](k, w, a, ab, nt, out_fast);
        for (int tok = 0; tok < nt; tok++) {
            deq_act(at, a + tok * ab, af, k);
            double oracle = 0, sa = 0, sabs = 0;
            for (int64_t i = 0; i < k; i++) {
                oracle += (double)wf[i] * af[i];
                sa += fabs(af[i]);
                sabs += fabs((double)wf[i] * af[i]);
            }
            double scale = wmax * sa + sabs;
            double tol = (2e-6 + 1.2e-7 * (double)k) * scale + 1e-30;
            if (at == AL_TYPE_Q8_1) { /* the oracle spreads s's F16 rounding over the block */
                const al_block_q8_1 *qb = (const al_block_q8_1 *)(a + tok * ab);
                for (int64_t b = 0; b < k / 32; b++)
                    tol += fabs(al_fp16_to_fp32(qb[b].s)) * 2 * wmax * 1e-3;
            }
            if (!(fabs(out_ref[tok] - oracle) <= tol) || !(fabs(out_fast[tok] - out_ref[tok]) <= tol))
                fail_msg("%s k=%lld mode=%d nt=%d tok=%d: ref %.9g fast(%s) %.9g oracle %.9g tol %.3g",
                         al_type_name(t), (long long)k, mode, nt, tok, out_ref[tok], fast->name, out_fast[tok],
                         oracle, tol);
        }
    }
    free(w), free(a), free(x), free(wf), free(af);
}

static void test_kernels(void **state)
{
    (void)state;
    const al_kernels *fast = al_kernels_get();
    const al_kernels *avx2 = al_cpu_has_avx2() ? al_kernels_avx2() : NULL;
    printf("  kernels in use: %s (CPU has AVX2: %s, AVX-512-VNNI: %s)\n", fast->name,
           al_cpu_has_avx2() ? "yes" : "no", al_cpu_has_avx512_vnni() ? "yes" : "no");
    const char *env = getenv("AIRLOCK_NO_AVX2");
    if (env && *env && strcmp(env, "0") != 0)
        assert_ptr_equal(fast, al_kernels_ref());
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = k_types[ti];
        int64_t blk = al_type_get(t)->block_elems;
        int64_t unit = blk == 1 ? 32 : blk;
        const int64_t ks[] = {unit, unit * 3, unit * 7, t == AL_TYPE_F32 || t == AL_TYPE_F16 || t == AL_TYPE_BF16 ? 37 : unit * 16};
        for (size_t ki = 0; ki < 4; ki++)
            for (int mode = 0; mode < 4; mode++)
                for (int rep = 0; rep < (mode == 0 ? 4 : 1); rep++) {
                    check_dot(fast, t, ks[ki], mode);
                    if (avx2)
                        check_dot(avx2, t, ks[ki], mode);
                }
    }
}

/* ------------------------------------------------------------ fp16 rows */

/* The fast fp32 -> fp16 row conversion must give al_fp32_to_fp16's bits:
 * every half's value, the midpoints between neighbouring halves (ties to
 * even) and one float either side, overflow, subnormals, signed zeros,
 * infinities, NaNs (quiet and signalling, with payloads), random bits;
 * odd lengths for the tails. */
static void test_fp16_rows(void **state)
{
    (void)state;
    const al_kernels *sets[3] = {al_kernels_get(), al_kernels_ref(), al_cpu_has_avx2() ? al_kernels_avx2() : NULL};
    enum { N = 65536 * 4 + 40003 };
    uint32_t *bits = xalloc((size_t)N * 4);
    int64_t n = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = al_fp16_to_fp32((al_half)h), g = al_fp16_to_fp32((al_half)(h + 1));
        uint32_t u, v;
        memcpy(&u, &f, 4);
        bits[n++] = u;
        if ((h & 0x7fff) < 0x7c00 && (h & 0x7fff) != 0x7bff) { /* finite, with a finite neighbour above */
            const float mid = (float)(((double)f + (double)g) / 2);
            memcpy(&v, &mid, 4);
            bits[n++] = v;
            bits[n++] = v + 1;
            bits[n++] = v - 1;
        } else {
            bits[n++] = u ^ 0x00001000u; /* NaN/inf payload bits below the half's */
            bits[n++] = u | 0x00400001u;
            bits[n++] = (u & 0xff800000u) | 1u; /* signalling NaN */
        }
    }
    const uint32_t special[] = {0x477fefffu, 0x477ff000u, 0x477fffffu, 0x47800000u, 0x33000000u, 0x33000001u,
                                0x32ffffffu, 0x00000001u, 0x007fffffu, 0x80000000u, 0x7f800000u, 0xff800000u,
                                0x7fc00000u, 0xffffffffu, 0x38800000u, 0x387fffffu, 0x33c00000u};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        bits[n++] = special[i];
        bits[n++] = special[i] ^ 0x80000000u;
    }
    while (n < N)
        bits[n++] = rnd() ^ (rnd() << 16);
    const float *x = (const float *)bits;
    al_half *ref = xalloc((size_t)N * 2), *y = xalloc((size_t)N * 2);
    float *rr = xalloc((size_t)N * 4), *yr = xalloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) {
        ref[i] = al_fp32_to_fp16(x[i]);
        const float back = al_fp16_to_fp32(ref[i]);
        memcpy(&rr[i], &back, 4);
    }
    for (int si = 0; si < 3; si++) {
        if (!sets[si])
            continue;
        const int64_t lens[] = {N, N - 1, 7, 15, 17, 1};
        for (int li = 0; li < 6; li++) {
            memset(y, 0x55, (size_t)N * 2);
            memset(yr, 0x55, (size_t)N * 4);
            sets[si]->to_f16(x, y, lens[li]);
            sets[si]->round_f16(x, yr, lens[li]);
            for (int64_t i = 0; i < lens[li]; i++) {
                if (y[i] != ref[i])
                    fail_msg("%s to_f16 of 0x%08x: 0x%04x, want 0x%04x", sets[si]->name, bits[i], y[i], ref[i]);
                if (memcmp(&yr[i], &rr[i], 4) != 0)
                    fail_msg("%s round_f16 of 0x%08x differs", sets[si]->name, bits[i]);
            }
            assert_true(y[lens[li]] == 0x5555 || lens[li] == N); /* nothing written past n */
        }
    }
    /* the public row function is the chosen table's */
    al_fp32_to_fp16_row(x, y, N);
    assert_memory_equal(y, ref, (size_t)N * 2);
    free(bits), free(ref), free(y), free(rr), free(yr);
}

/* ------------------------------------------------------------ quantizers */

/* The fast activation quantizers must give the reference's bytes exactly:
 * random rows, zero blocks, exact rounding ties, a negative largest value,
 * repeated maxima of both signs, huge and tiny magnitudes. */
static void test_quantizers(void **state)
{
    (void)state;
    const al_kernels *sets[2] = {al_kernels_get(), al_cpu_has_avx2() ? al_kernels_avx2() : NULL};
    enum { N = 1024 };
    float x[N];
    al_block_q8_K yk[N / AL_QK_K], rk[N / AL_QK_K];
    al_block_q8_0 y0[N / AL_QK], r0[N / AL_QK];
    for (int mode = 0; mode < 7; mode++)
        for (int rep = 0; rep < 20; rep++) {
            for (int i = 0; i < N; i++) {
                switch (mode) {
                case 0: x[i] = frand(-1, 1); break;
                case 1: x[i] = (i / 256) % 2 ? 0.0f : frand(-3, 3); break;          /* zero blocks */
                case 2: x[i] = (float)((int)(rnd() % 255) - 127) * 0.5f; break;    /* ties */
                case 3: x[i] = i % 37 == 5 ? -4.0f : frand(-4, 4); break;          /* negative max */
                case 4: x[i] = i % 2 ? 2.0f : -2.0f; break;                        /* equal |max| */
                case 5: x[i] = frand(-1, 1) * 1e30f; break;
                default: x[i] = frand(-1, 1) * 1e-30f; break;
                }
            }
            if (mode == 3)
                x[rep] = 4.0f; /* a positive max before the negatives */
            al_quantize_row_q8_K(x, rk, N);
            al_quantize_row_q8_0(x, r0, N);
            for (int si = 0; si < 2; si++) {
                if (!sets[si])
                    continue;
                memset(yk, 0x55, sizeof(yk));
                memset(y0, 0x55, sizeof(y0));
                sets[si]->quant_q8_K(x, yk, N);
                sets[si]->quant_q8_0(x, y0, N);
                for (int b = 0; b < N / AL_QK_K; b++) {
                    if (memcmp(&yk[b], &rk[b], sizeof(yk[b])) != 0)
                        fail_msg("%s quant_q8_K mode %d rep %d block %d differs from the reference", sets[si]->name,
                                 mode, rep, b);
                }
                if (memcmp(y0, r0, sizeof(y0)) != 0)
                    fail_msg("%s quant_q8_0 mode %d rep %d differs from the reference", sets[si]->name, mode, rep);
            }
        }
}

/* ------------------------------------------------------------ matmul */

static void check_matmul(al_threadpool *tp, uint32_t t, int64_t n_rows, int64_t k, int64_t n_tok, int mode)
{
    const size_t rb = al_type_row_bytes(t, k);
    const int64_t ldy = n_rows + 5;
    uint8_t *W = xalloc(rb * (size_t)n_rows);
    float *X = xalloc((size_t)(k * n_tok) * 4);
    float *Y = xalloc((size_t)(ldy * n_tok) * 4), *Ye = xalloc((size_t)(ldy * n_tok) * 4);
    float *Yr = xalloc((size_t)(ldy * n_tok) * 4);
    for (int64_t r = 0; r < n_rows; r++)
        fill_row(t, W + r * rb, k, r % 7 == 3 ? 1 : mode);
    fill_x(X, k * n_tok, mode);
    for (int64_t i = 0; i < ldy * n_tok; i++)
        Y[i] = Ye[i] = Yr[i] = -12345.0f;
    void *s1 = xalloc(al_matmul_scratch_bytes(t, k, n_tok));
    void *s2 = xalloc(al_matmul_exact_scratch_bytes(k, al_threadpool_size(tp)));
    al_matmul(tp, t, W, n_rows, k, rb, X, n_tok, Y, ldy, s1);
    al_matmul_exact(tp, t, W, n_rows, k, rb, X, n_tok, Ye, ldy, s2);
    al_matmul_with(al_kernels_ref(), NULL, t, W, n_rows, k, rb, X, n_tok, Yr, ldy, s1);
    const uint32_t at = al_act_type(t);
    float *wf = xalloc((size_t)k * 4);
    for (int64_t r = 0; r < n_rows; r++) {
        al_dequantize_row(t, W + r * rb, wf, k);
        for (int64_t tok = 0; tok < n_tok; tok++) {
            const float *x = X + tok * k;
            double bound = 0, sabs = 0;
            for (int64_t b = 0; b < k; b += 32) {
                int64_t bl = at == AL_TYPE_Q8_K ? 256 : 32;
                int64_t b0 = b / bl * bl;
                float amax = 0;
                for (int64_t i = b0; i < b0 + bl && i < k; i++)
                    amax = fmaxf(amax, fabsf(x[i]));
                for (int64_t i = b; i < b + 32 && i < k; i++) {
                    double e = at == AL_TYPE_F32 ? 0 : at == AL_TYPE_F16 ? fabs(x[i]) * 5e-4
                             : at == AL_TYPE_BF16 ? fabs(x[i]) * 4e-3 : amax / 254.0 * 1.01 + fabs(x[i]) * 1e-3;
                    bound += fabs(wf[i]) * e;
                    sabs += fabs((double)wf[i] * x[i]);
                }
            }
            bound += (2e-6 + 1.2e-7 * (double)k) * sabs + 1e-30;
            float yn = Y[tok * ldy + r], ye = Ye[tok * ldy + r], yr = Yr[tok * ldy + r];
            if (!(fabs(yn - ye) <= bound) || !(fabs(yn - yr) <= (2e-6 + 1.2e-7 * (double)k) * sabs * 4 + 1e-30))
                fail_msg("%s rows=%lld k=%lld n_tok=%lld nth=%d row %lld tok %lld: matmul %.9g ref %.9g exact %.9g bound %.3g",
                         al_type_name(t), (long long)n_rows, (long long)k, (long long)n_tok,
                         al_threadpool_size(tp), (long long)r, (long long)tok, yn, yr, ye, bound);
        }
    }
    for (int64_t tok = 0; tok < n_tok; tok++)
        for (int64_t r = n_rows; r < ldy; r++)
            assert_true(Y[tok * ldy + r] == -12345.0f && Ye[tok * ldy + r] == -12345.0f);
    free(W), free(X), free(Y), free(Ye), free(Yr), free(s1), free(s2), free(wf);
}

static void test_matmul(void **state)
{
    (void)state;
    for (int nth = 1; nth <= 3; nth++) {
        al_threadpool *tp = al_threadpool_new(nth);
        assert_non_null(tp);
        assert_int_equal(al_threadpool_size(tp), nth);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const int64_t toks[] = {1, 3, 17};
            for (int ni = 0; ni < 3; ni++) {
                check_matmul(tp, k_types[ti], 37, 512, toks[ni], 0);
                check_matmul(tp, k_types[ti], 5, 256, toks[ni], 2);
            }
            /* many tokens (panel kernels where the type has them): rows
             * beyond the last panel, extreme bytes and activations */
            check_matmul(tp, k_types[ti], 24, 768, 9, 2);
            check_matmul(tp, k_types[ti], 19, 512, 12, 1);
            check_matmul(tp, k_types[ti], 40, 256, 23, 4);
            check_matmul(tp, k_types[ti], 16, 1024, 8, 3);
        }
        check_matmul(tp, AL_TYPE_Q8_0, 1, 32, 1, 0);
        check_matmul(tp, AL_TYPE_F16, 3, 40, 2, 0);
        /* F16 / BF16 panels: k not a multiple of 8 (the tail elements),
         * rows past the last panel, 1..8 tokens a call */
        for (int m = 0; m < 5; m++) {
            check_matmul(tp, AL_TYPE_F16, 21, 37, 13, m);
            check_matmul(tp, AL_TYPE_BF16, 21, 37, 13, m);
            check_matmul(tp, AL_TYPE_BF16, 8, 3, 8, m);
        }
        al_threadpool_free(tp);
    }
    check_matmul(NULL, AL_TYPE_Q4_K, 21, 256, 5, 0);
    assert_true(al_matmul_check(AL_TYPE_Q4_K, 512));
    assert_false(al_matmul_check(AL_TYPE_Q4_K, 200));
    assert_false(al_matmul_check(AL_TYPE_Q8_K, 256));
    assert_false(al_matmul_check(24, 256)); /* I8 */
    assert_true(al_matmul_check(AL_TYPE_IQ2_XXS, 256));
    assert_false(al_matmul_check(AL_TYPE_IQ3_S, 32));
    assert_false(al_matmul_check(AL_TYPE_Q8_0, 0));
    assert_true(al_matmul_check(AL_TYPE_F32, 3));
}

/* The AVX-512-VNNI panel kernels against the AVX2 ones they replace: the
 * same panels, exact integer sums and the same float steps, so the same
 * bits, for every token count (up to 8 a call against AVX2's 4), rows
 * beyond the last panel, extreme weight bytes and activations. Runs where
 * the CPU has AVX-512-VNNI (whatever AIRLOCK_NO_AVX512 says: it names the
 * tables itself); elsewhere says it skipped. */
static void test_panel_avx512(void **state)
{
    (void)state;
    if (!al_cpu_has_avx512_vnni() || !al_kernels_avx512()) {
        printf("  SKIPPED: %s\n", al_cpu_has_avx512_vnni() ? "built without AVX-512 code" : "CPU has no AVX-512-VNNI");
        return;
    }
    const al_kernels *z = al_kernels_avx512(), *y = al_kernels_avx2();
    assert_non_null(y);
    static const uint32_t types[] = {AL_TYPE_Q4_0, AL_TYPE_Q8_0,  AL_TYPE_Q4_K,
                                     AL_TYPE_Q5_K, AL_TYPE_Q6_K, AL_TYPE_IQ4_XS};
    int n_checked = 0;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const uint32_t t = types[ti];
        assert_non_null(z->panel[t].gemm);
        assert_ptr_equal(z->panel[t].pack, y->panel[t].pack); /* panels packed at load stay valid */
        assert_true(z->panel[t].gemm != y->panel[t].gemm);
        const int64_t k = 768, rows = 43;
        const size_t rb = al_type_row_bytes(t, k);
        uint8_t *W = xalloc(rb * (size_t)rows);
        const int64_t toks[] = {8, 9, 13, 16, 23};
        for (int ni = 0; ni < 5; ni++) {
            const int64_t nt = toks[ni];
            const int mode = ni % 5;
            for (int64_t r = 0; r < rows; r++)
                fill_row(t, W + r * rb, k, r % 7 == 3 ? 1 : mode);
            float *X = xalloc((size_t)(k * nt) * 4);
            float *Yz = xalloc((size_t)(rows * nt) * 4), *Yy = xalloc((size_t)(rows * nt) * 4);
            fill_x(X, k * nt, mode);
            void *sc = xalloc(al_matmul_scratch_bytes(t, k, nt));
            al_matmul_with(z, NULL, t, W, rows, k, rb, X, nt, Yz, rows, sc);
            al_matmul_with(y, NULL, t, W, rows, k, rb, X, nt, Yy, rows, sc);
            for (int64_t i = 0; i < rows * nt; i++)
                if (memcmp(&Yz[i], &Yy[i], sizeof(float)) != 0)
                    fail_msg("%s n_tok=%lld mode %d element %lld: avx512vnni %.9g, avx2 %.9g", al_type_name(t),
                             (long long)nt, mode, (long long)i, Yz[i], Yy[i]);
            n_checked++;
            free(X), free(Yz), free(Yy), free(sc);
        }
        free(W);
    }
    assert_int_equal(n_checked, 30);
}

/* The AVX-512 one-token kernels (gemv: a run of panels, expanded
 * activations) against the gemm kernels at one token, AVX-512's and
 * AVX2's, bit for bit, and against the plain-C dot within the dot tests'
 * tolerance: random and extreme weight bytes and activations, 1 to 5
 * panels a call, several k. Runs where the CPU has AVX-512-VNNI; else
 * exits the test with a skip message (ctest's skip: the whole binary
 * keeps testing the rest). */
static void test_gemv_avx512(void **state)
{
    (void)state;
    if (!al_cpu_has_avx512_vnni() || !al_kernels_avx512()) {
        printf("  SKIPPED: %s\n", al_cpu_has_avx512_vnni() ? "built without AVX-512 code" : "CPU has no AVX-512-VNNI");
        return;
    }
    const al_kernels *z = al_kernels_avx512(), *y = al_kernels_avx2(), *ref = al_kernels_ref();
    static const uint32_t types[] = {AL_TYPE_Q4_0, AL_TYPE_Q8_0,  AL_TYPE_Q4_K,
                                     AL_TYPE_Q5_K, AL_TYPE_Q6_K, AL_TYPE_IQ4_XS};
    const size_t n_types = sizeof(types) / sizeof(types[0]);
    int n_checked = 0;
    for (size_t ti = 0; ti < n_types; ti++) {
        const uint32_t t = types[ti], at = al_act_type(t);
        const al_panel_kernel *pz = &z->panel[t], *py = &y->panel[t];
        assert_non_null(pz->gemv);
        assert_null(py->gemv);
        const int64_t ks[] = {256, 768, 2048};
        for (int ki = 0; ki < 3; ki++)
            for (int mode = 0; mode < 5; mode++) {
                const int64_t k = ks[ki], np = 1 + (ki + mode) % 5, rows = np * AL_PANEL_ROWS;
                const size_t rb = al_type_row_bytes(t, k), ab = al_type_row_bytes(at, k), pb = pz->bytes(k);
                uint8_t *W = xalloc(rb * (size_t)rows), *P = xalloc(pb * (size_t)np);
                for (int64_t r = 0; r < rows; r++)
                    fill_row(t, W + r * rb, k, r % 7 == 3 ? 4 : mode);
                for (int64_t q = 0; q < np; q++)
                    pz->pack(k, W + (size_t)(q * AL_PANEL_ROWS) * rb, rb, P + (size_t)q * pb);
                float *x = xalloc((size_t)k * 4), *xf = xalloc((size_t)k * 4);
                fill_x(x, k, mode);
                uint8_t *a = xalloc(ab), *xe = xalloc(AL_EXPAND_BYTES(k));
                int16_t *asum = xalloc((size_t)(k / 32) * 2);
                if (at == AL_TYPE_Q8_K) {
                    z->quant_q8_K(x, (al_block_q8_K *)a, k);
                    for (int64_t g = 0; g < k / 32; g++) {
                        const al_block_q8_K *qb = (const al_block_q8_K *)a + g / 8;
                        asum[g] = (int16_t)(qb->bsums[2 * (g % 8)] + qb->bsums[2 * (g % 8) + 1]);
                    }
                } else {
                    assert_int_equal(at, AL_TYPE_Q8_0);
                    z->quant_q8_0(x, (al_block_q8_0 *)a, k);
                    for (int64_t g = 0; g < k / 32; g++) {
                        int sum = 0;
                        for (int i = 0; i < 32; i++)
                            sum += ((const al_block_q8_0 *)a)[g].qs[i];
                        asum[g] = (int16_t)sum;
                    }
                }
                al_dequantize_row(at, a, xf, k); /* the activations as the kernels see them */
                al_act_expand(at, a, k, xe);
                float *Yv = xalloc((size_t)rows * 4), *Yz = xalloc((size_t)rows * 4), *Yy = xalloc((size_t)rows * 4);
                pz->gemv(k, P, np, pb, a, xe, asum, Yv);
                for (int64_t q = 0; q < np; q++) {
                    pz->gemm(k, P + (size_t)q * pb, a, ab, asum, (size_t)(k / 32), 1, Yz + q * AL_PANEL_ROWS, rows);
                    py->gemm(k, P + (size_t)q * pb, a, ab, asum, (size_t)(k / 32), 1, Yy + q * AL_PANEL_ROWS, rows);
                }
                for (int64_t r = 0; r < rows; r++) {
                    if (memcmp(&Yv[r], &Yz[r], 4) != 0 || memcmp(&Yv[r], &Yy[r], 4) != 0)
                        fail_msg("%s k=%lld mode %d row %lld: gemv %.9g, gemm avx512 %.9g, avx2 %.9g", al_type_name(t),
                                 (long long)k, mode, (long long)r, Yv[r], Yz[r], Yy[r]);
                    float o;
                    ref->dot[t](k, W + (size_t)r * rb, a, ab, 1, &o);
                    al_dequantize_row(t, W + (size_t)r * rb, x, k); /* x: the row's weights now */
                    double sabs = 0;
                    for (int64_t i = 0; i < k; i++)
                        sabs += fabs((double)x[i] * xf[i]);
                    if (!(fabs((double)o - Yv[r]) <= 1e-5 * sabs + 1e-6))
                        fail_msg("%s k=%lld mode %d row %lld: gemv %.9g, plain C %.9g", al_type_name(t), (long long)k,
                                 mode, (long long)r, Yv[r], o);
                }
                n_checked++;
                free(W), free(P), free(x), free(xf), free(a), free(xe), free(asum), free(Yv), free(Yz), free(Yy);
            }
    }
    assert_int_equal(n_checked, 15 * (int)n_types);
}

/* ------------------------------------------------------------ thread pool */

typedef struct pool_job {
    atomic_int calls[4];
    int phase1[4];
    int seen_ok;
    int nth_seen;
} pool_job;

static void pool_fn(void *ctx, int ith, int nth)
{
    pool_job *j = ctx;
    atomic_fetch_add(&j->calls[ith], 1);
    j->nth_seen = nth;
    j->phase1[ith] = ith + 100;
    al_threadpool_barrier(NULL); /* no-op */
}

typedef struct bar_job {
    al_threadpool *tp;
    int vals[4][64];
    atomic_int bad;
} bar_job;

static void bar_fn(void *ctx, int ith, int nth)
{
    bar_job *j = ctx;
    for (int round = 0; round < 50; round++) {
        j->vals[ith][round] = round * 10 + ith;
        al_threadpool_barrier(j->tp);
        for (int o = 0; o < nth; o++)
            if (j->vals[o][round] != round * 10 + o)
                atomic_fetch_add(&j->bad, 1);
        al_threadpool_barrier(j->tp);
    }
}

static void test_threadpool(void **state)
{
    (void)state;
    assert_null(al_threadpool_new(0));
    al_threadpool_free(NULL);
    assert_int_equal(al_threadpool_size(NULL), 1);
    assert_true(al_physical_cores() >= 1);
    for (int nth = 1; nth <= 3; nth++) {
        al_threadpool *tp = al_threadpool_new(nth);
        assert_non_null(tp);
        pool_job pj;
        memset(&pj, 0, sizeof(pj));
        for (int r = 0; r < 300; r++)
            al_threadpool_run(tp, pool_fn, &pj);
        for (int i = 0; i < 4; i++)
            assert_int_equal(atomic_load(&pj.calls[i]), i < nth ? 300 : 0);
        assert_int_equal(pj.nth_seen, nth);
        bar_job bj;
        memset(&bj, 0, sizeof(bj));
        bj.tp = tp;
        for (int r = 0; r < 5; r++)
            al_threadpool_run(tp, bar_fn, &bj);
        assert_int_equal(atomic_load(&bj.bad), 0);
        al_threadpool_free(tp);
    }
    pool_job pj;
    memset(&pj, 0, sizeof(pj));
    al_threadpool_run(NULL, pool_fn, &pj);
    assert_int_equal(atomic_load(&pj.calls[0]), 1);
}

/* An idle pool must not burn CPU: after a burst of jobs, the workers spin
 * for at most ~100 us and then sleep. Over ~1 s of idling, the process may
 * use a few ms of CPU time (generous bound: 100 ms). Not a speed check. */
static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void chunk_fn(void *ctx, int64_t c, int ith)
{
    atomic_int *sum = ctx;
    (void)ith;
    atomic_fetch_add(sum, (int)c);
}

static void test_idle_pool(void **state)
{
    (void)state;
    al_threadpool *tp = al_threadpool_new(2);
    assert_non_null(tp);
    atomic_int sum;
    atomic_init(&sum, 0);
    for (int r = 0; r < 1000; r++)
        al_threadpool_for(tp, 10, chunk_fn, &sum);
    assert_int_equal(atomic_load(&sum), 45 * 1000);
    double c0 = process_cpu_s();
    struct timespec nap = {1, 0};
    nanosleep(&nap, NULL);
    double idle = process_cpu_s() - c0;
    printf("  idle pool of 2 threads: %.1f ms of CPU over 1 s\n", idle * 1e3);
    assert_true(idle < 0.1);
    al_threadpool_for(tp, 3, chunk_fn, &sum); /* still works after sleeping */
    assert_int_equal(atomic_load(&sum), 45 * 1000 + 3);
    al_threadpool_free(tp);
}

/* ------------------------------------------------------------ real models */

/* Prepacked weights give the results of the unpacked ones for any number
 * of tokens, and read only the panels (the packed rows of W are
 * overwritten before the packed run) and the rows beyond the last panel. */
static void test_packed_matmul(void **state)
{
    (void)state;
    al_threadpool *tp = al_threadpool_new(2);
    assert_non_null(tp);
    int n_packed_types = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = k_types[ti];
        const int64_t k = 512, rows = 37;
        const size_t pb = al_matmul_pack_bytes(t, rows, k);
        if (pb == 0)
            continue;
        n_packed_types++;
        assert_true(al_matmul_pack_bytes(t, 7, k) == 0);
        const size_t rb = al_type_row_bytes(t, k);
        uint8_t *W = xalloc(rb * (size_t)rows), *P = xalloc(pb);
        for (int64_t r = 0; r < rows; r++)
            fill_row(t, W + r * rb, k, r % 5 == 2 ? 4 : 0);
        al_matmul_pack(t, W, rows, k, rb, P);
        const int64_t toks[] = {1, 3, 4, 9, 21};
        for (int ni = 0; ni < 5; ni++) {
            const int64_t nt = toks[ni];
            float *X = xalloc((size_t)(k * nt) * 4), *Y = xalloc((size_t)(rows * nt) * 4);
            float *Yp = xalloc((size_t)(rows * nt) * 4);
            fill_x(X, k * nt, ni == 2 ? 4 : 0);
            al_mm_desc d = {t, W, rows, rb, Y, rows, NULL, false};
            void *sc = xalloc(al_matmul_multi_scratch_bytes(&d, 1, k, nt));
            al_matmul_multi(tp, &d, 1, k, X, nt, sc);
            uint8_t *Wg = xalloc(rb * (size_t)rows);
            memcpy(Wg, W, rb * (size_t)rows);
            memset(Wg, 0xff, rb * (size_t)(rows / 8 * 8)); /* garbage where the panels are */
            al_mm_desc dp = {t, Wg, rows, rb, Yp, rows, P, false};
            al_matmul_multi(tp, &dp, 1, k, X, nt, sc);
            for (int64_t i = 0; i < rows * nt; i++) {
                const float tol = 1e-4f * (fabsf(Y[i]) + 1.0f);
                if (!(fabsf(Y[i] - Yp[i]) <= tol))
                    fail_msg("%s packed n_tok=%lld element %lld: %.9g vs unpacked %.9g", al_type_name(t),
                             (long long)nt, (long long)i, Yp[i], Y[i]);
            }
            /* panels packed at each use (a matrix still being packed in
             * the background): bit for bit the packed results, also for
             * fewer tokens than the panel kernels usually take */
            if (al_matmul_stack_panel(t, k)) {
                float *Yq = xalloc((size_t)(rows * nt) * 4);
                al_mm_desc dq = {t, W, rows, rb, Yq, rows, NULL, true};
                al_matmul_multi(tp, &dq, 1, k, X, nt, sc);
                if (memcmp(Yq, Yp, (size_t)(rows * nt) * 4) != 0)
                    fail_msg("%s panels packed at each use, n_tok=%lld: not the packed results", al_type_name(t),
                             (long long)nt);
                free(Yq);
            }
            free(X), free(Y), free(Yp), free(sc), free(Wg);
        }
        free(W), free(P);
    }
    /* with AVX2 the K-quants of the common files have panels */
    if (al_cpu_has_avx2() && strcmp(al_kernels_get()->name, "generic") != 0)
        assert_true(n_packed_types >= 2);
    al_threadpool_free(tp);
}

static void test_real_matmul(void **state)
{
    (void)state;
    static const char *files[] = {
        "stories260K.gguf", "stories260K-f16.gguf", "stories260K-bf16.gguf", "stories260K-q4_0.gguf",
        "stories260K-q5_1.gguf", "stories260K-q8_0.gguf", "tiny-llama-q4_0.gguf", "tiny-llama-q4_k_m.gguf",
        "tiny-llama-q6_k.gguf", "tiny-llama-q8_0.gguf", "tiny-qwen2-q4_k_m.gguf", "tiny-qwen3-q8_0.gguf",
    };
    char probe[1024];
    snprintf(probe, sizeof(probe), "%s/models/stories260K.gguf", shared_dir());
    if (access(probe, R_OK) != 0) {
        printf("SKIP real-model matmul test: %s not found\n", probe);
        return;
    }
    al_threadpool *tp = al_threadpool_new(2);
    int n_total = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/models/%s", shared_dir(), files[f]);
        al_gguf *g = NULL;
        al_error err;
        if (al_gguf_open(path, NULL, &g, &err) != AL_OK) {
            printf("SKIP %s: %s\n", files[f], err.msg);
            continue;
        }
        bool seen[AL_TYPE_COUNT] = {false};
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const al_gguf_tensor *t = &g->tensors[i];
            if (t->n_dims != 2 || !al_matmul_check(t->type, (int64_t)t->ne[0]) || seen[t->type])
                continue;
            seen[t->type] = true; /* one tensor per type per file keeps this fast */
            const int64_t k = (int64_t)t->ne[0], rows = (int64_t)(t->ne[1] < 48 ? t->ne[1] : 48), n_tok = 3;
            const size_t rb = al_type_row_bytes(t->type, k);
            assert_true(rb * t->ne[1] == t->n_bytes);
            float *X = xalloc((size_t)(k * n_tok) * 4), *Y = xalloc((size_t)(rows * n_tok) * 4);
            float *Ye = xalloc((size_t)(rows * n_tok) * 4), *wf = xalloc((size_t)k * 4);
            fill_x(X, k * n_tok, 0);
            void *s1 = xalloc(al_matmul_scratch_bytes(t->type, k, n_tok));
            void *s2 = xalloc(al_matmul_exact_scratch_bytes(k, 2));
            al_matmul(tp, t->type, t->data, rows, k, rb, X, n_tok, Y, rows, s1);
            al_matmul_exact(tp, t->type, t->data, rows, k, rb, X, n_tok, Ye, rows, s2);
            for (int64_t r = 0; r < rows; r++) {
                al_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, wf, k);
                double wabs = 0;
                for (int64_t e = 0; e < k; e++)
                    wabs += fabs(wf[e]);
                for (int64_t tok = 0; tok < n_tok; tok++) {
                    /* |x| <= 1: activation rounding moves each product by <= |w|/254 */
                    double bound = wabs * (1.01 / 254.0 + 1e-3) + 1e-5;
                    if (t->type == AL_TYPE_F32)
                        bound = wabs * 1e-6 + 1e-6;
                    if (!(fabs(Y[tok * rows + r] - Ye[tok * rows + r]) <= bound))
                        fail_msg("%s %.*s (%s) row %lld tok %lld: %.9g vs exact %.9g (bound %.3g)", files[f],
                                 (int)t->name.len, t->name.ptr, al_type_name(t->type), (long long)r, (long long)tok,
                                 Y[tok * rows + r], Ye[tok * rows + r], bound);
                }
            }
            free(X), free(Y), free(Ye), free(wf), free(s1), free(s2);
            n_total++;
        }
        al_gguf_close(g);
    }
    printf("  checked al_matmul vs al_matmul_exact on %d real tensors\n", n_total);
    assert_true(n_total >= 12);
    al_threadpool_free(tp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half),
        cmocka_unit_test(test_dequant_known),
        cmocka_unit_test(test_dequant_real_new_types),
        cmocka_unit_test(test_quant_roundtrip),
        cmocka_unit_test(test_dequant_real),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_quantizers),
        cmocka_unit_test(test_fp16_rows),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_panel_avx512),
        cmocka_unit_test(test_gemv_avx512),
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_idle_pool),
        cmocka_unit_test(test_packed_matmul),
        cmocka_unit_test(test_real_matmul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
