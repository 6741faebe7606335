/* test_iq.c - the i-quant grid types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
 * IQ3_S, IQ1_S, IQ1_M): the codebooks' structure, hand-built blocks
 * through the exact dequantizer, the plain-C dot kernels against a
 * dequantize-then-dot oracle, the AVX2 kernels against the plain-C ones
 * (tolerance scaled with the dot length), al_matmul against the exact
 * path, the bad-scale finder, and the real tiny-llama files. Run twice by
 * ctest: as is and with AIRLOCK_NO_AVX2=1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "tensor/quant_iq.h"

static const uint32_t k_iq_types[] = {
    AL_TYPE_IQ3_S, AL_TYPE_IQ3_XXS, AL_TYPE_IQ2_XXS, AL_TYPE_IQ2_XS, AL_TYPE_IQ2_S, AL_TYPE_IQ1_S, AL_TYPE_IQ1_M,
};
#define N_IQ (sizeof(k_iq_types) / sizeof(k_iq_types[0]))

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
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

/* Sets the fp16 scale of an i-quant block (IQ1_M: over its scale words). */
static void set_d(uint32_t t, uint8_t *blk, float v)
{
    al_half h = al_fp32_to_fp16(v);
    if (t == AL_TYPE_IQ1_M) {
        al_block_iq1_m *b = (al_block_iq1_m *)blk;
        for (int i = 0; i < 4; i++) {
            uint16_t w;
            memcpy(&w, b->scales + 2 * i, 2);
            w = (uint16_t)((w & 0x0fff) | ((h >> (4 * i)) & 0xf) << 12);
            memcpy(b->scales + 2 * i, &w, 2);
        }
        return;
    }
    memcpy(blk, &h, 2);
}

/* One weight row. mode 0: random bytes; 1: every other block's scale 0;
 * 2: all bytes 0xff (largest indices, scales, every sign set) with a
 * large scale; 3: all bytes 0. */
static void fill_row(uint32_t t, uint8_t *row, int64_t k, int mode)
{
    const size_t bb = al_type_get(t)->block_bytes;
    const int64_t nb = k / AL_QK_K;
    for (size_t i = 0; i < (size_t)nb * bb; i++)
        row[i] = mode == 2 ? 0xff : mode == 3 ? 0 : (uint8_t)rnd();
    for (int64_t b = 0; b < nb; b++) {
        float d = mode == 2 ? 0.5f : frand(-0.01f, 0.01f);
        if (mode == 1 && b % 2)
            d = 0.0f;
        set_d(t, row + (size_t)b * bb, d);
    }
}

static void fill_x(float *x, int64_t n, int mode)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = frand(-1, 1);
        if (mode == 2 && i % 37 == 0)
            x[i] = (i % 2 ? 300.0f : -300.0f);
        if (mode == 1 && (i / 256) % 2)
            x[i] = 0.0f;
    }
}

/* ------------------------------------------------------------ codebooks */

/* Every entry's bytes come from the type's value set, and the entries are
 * in strictly increasing order of their packed codes (value index j at
 * bits bits*j): a transcription slip almost surely breaks one of the two. */
static void check_grid(const char *name, const void *grid, int n, int per, const int *vals, int nv, int bits)
{
    uint64_t prev = 0;
    for (int i = 0; i < n; i++) {
        uint64_t e = per == 8 ? ((const uint64_t *)grid)[i] : ((const uint32_t *)grid)[i];
        uint64_t code = 0;
        for (int j = 0; j < per; j++) {
            int byte = (int)((e >> (8 * j)) & 0xff), c = -1;
            for (int v = 0; v < nv; v++)
                if ((vals[v] & 0xff) == byte)
                    c = v;
            if (c < 0)
                fail_msg("%s[%d] byte %d is 0x%02x, not in the value set", name, i, j, byte);
            code |= (uint64_t)c << (bits * j);
        }
        if (i > 0 && code <= prev)
            fail_msg("%s[%d]: codes not increasing", name, i);
        prev = code;
    }
}

static void test_grids(void **state)
{
    (void)state;
    static const int v2[] = {0x08, 0x19, 0x2b};
    static const int v3xxs[] = {0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e};
    static const int v3s[] = {1, 3, 5, 7, 9, 11, 13, 15};
    static const int v1[] = {-1, 0, 1};
    check_grid("iq2xxs_grid", al_iq2xxs_grid, 256, 8, v2, 3, 2);
    check_grid("iq2xs_grid", al_iq2xs_grid, 512, 8, v2, 3, 2);
    check_grid("iq2s_grid", al_iq2s_grid, 1024, 8, v2, 3, 2);
    check_grid("iq3xxs_grid", al_iq3xxs_grid, 256, 4, v3xxs, 8, 4);
    check_grid("iq3s_grid", al_iq3s_grid, 512, 4, v3s, 8, 4);
    check_grid("iq1s_grid", al_iq1s_grid, 2048, 8, v1, 3, 2);
    /* a few entries as ggml-common.h lists them */
    assert_true(al_iq2xxs_grid[1] == 0x080808080808082bull);
    assert_true(al_iq2s_grid[1023] == 0x2b2b2b2b2b2b2b2bull);
    assert_true(al_iq3xxs_grid[3] == 0x04040c0cu);
    assert_true(al_iq3s_grid[511] == 0x0f0f0101u);
    assert_true(al_iq1s_grid[0] == 0xffffffffffffffffull && al_iq1s_grid[2047] == 0x0101010101010101ull);
    for (int k = 0; k < 128; k++) { /* low 7 bits kept, an even number of bits set */
        assert_int_equal(al_iq_ksigns[k] & 127, k);
        assert_int_equal(__builtin_popcount(al_iq_ksigns[k]) % 2, 0);
    }
}

/* ------------------------------------------------------------ hand-built blocks */

static void test_dequant_known(void **state)
{
    (void)state;
    float y[AL_QK_K];
    { /* IQ2_XXS: d 1, group 0 scale 3 -> 1 * 3.5 / 4 = 0.875; entry 1 = (43, 8 x 7),
       * sign index 1 -> ksigns 0x81: elements 0 and 7 negative */
        al_block_iq2_xxs b;
        memset(&b, 0, sizeof(b));
        b.d = 0x3c00;
        uint8_t *q = (uint8_t *)b.qs;
        q[0] = 1;
        const uint32_t sg = 1u | 3u << 28;
        memcpy(q + 4, &sg, 4);
        al_dequantize_row(AL_TYPE_IQ2_XXS, &b, y, AL_QK_K);
        assert_float_equal(y[0], -37.625f, 0);
        assert_float_equal(y[1], 7.0f, 0);
        assert_float_equal(y[7], -7.0f, 0);
        assert_float_equal(y[8], 7.0f, 0);
        assert_float_equal(y[32], 1.0f, 0); /* group 1: scale 0, d 1: 0.5 / 4 * 8 */
    }
    { /* IQ3_S: d 0.5, scale nibble 2 -> 2.5; entry 1 = (3, 1, 1, 1); sign bit 1;
       * qh bit 1 -> elements 4..7 from entry 256 + qs[1] */
        al_block_iq3_s b;
        memset(&b, 0, sizeof(b));
        b.d = 0x3800;
        b.scales[0] = 0x02;
        b.qs[0] = 1;
        b.qs[1] = 5;
        b.qh[0] = 0x02;
        b.signs[0] = 0x02;
        al_dequantize_row(AL_TYPE_IQ3_S, &b, y, AL_QK_K);
        assert_float_equal(y[0], 7.5f, 0);
        assert_float_equal(y[1], -2.5f, 0);
        assert_float_equal(y[3], 2.5f, 0);
        for (int j = 0; j < 4; j++)
            assert_float_equal(y[4 + j], 2.5f * (float)((al_iq3s_grid[256 + 5] >> (8 * j)) & 0xff), 0);
        assert_float_equal(y[32], 0.5f, 0); /* group 1: scale 0 -> d * 1, entry 0 = 1s */
    }
    { /* IQ1_S: d 1, group 0 scale 1 -> 3, negative shift: 3 * (-1 - 1/8) */
        al_block_iq1_s b;
        memset(&b, 0, sizeof(b));
        b.d = 0x3c00;
        b.qh[0] = (uint16_t)(1u << 12 | 0x8000u);
        al_dequantize_row(AL_TYPE_IQ1_S, &b, y, AL_QK_K);
        assert_float_equal(y[0], -3.375f, 0);
        assert_float_equal(y[31], -3.375f, 0);
        assert_float_equal(y[32], -0.875f, 0); /* group 1: scale 1, +1/8 */
    }
    { /* IQ1_M: d 1.0 (0x3c00) spread over the scale words' top nibbles;
       * group 0: scales 3 and 5, the first 8 with a negative shift */
        al_block_iq1_m b;
        memset(&b, 0, sizeof(b));
        set_d(AL_TYPE_IQ1_M, (uint8_t *)&b, 1.0f);
        assert_int_equal(al_iq1_m_d(&b), 0x3c00);
        uint16_t w;
        memcpy(&w, b.scales, 2);
        w = (uint16_t)(w | 1 | 2 << 3);
        memcpy(b.scales, &w, 2);
        b.qh[0] = 0x08;
        al_dequantize_row(AL_TYPE_IQ1_M, &b, y, AL_QK_K);
        assert_float_equal(y[0], -3.375f, 0);
        assert_float_equal(y[8], -2.625f, 0);
        assert_float_equal(y[16], -4.375f, 0);
        assert_float_equal(y[32], -0.875f, 0); /* group 1: scale bits 6..11 are 0 -> 1 */
    }
}

static void test_bad_scale(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const uint32_t t = k_iq_types[ti];
        const size_t bb = al_type_get(t)->block_bytes;
        uint8_t *row = xalloc(bb * 4);
        fill_row(t, row, 4 * AL_QK_K, 0);
        assert_int_equal(al_iq_bad_scale(t, row, 4), -1);
        set_d(t, row + 2 * bb, INFINITY);
        assert_int_equal(al_iq_bad_scale(t, row, 4), 2);
        set_d(t, row + 2 * bb, 1.0f);
        set_d(t, row + 3 * bb, NAN);
        assert_int_equal(al_iq_bad_scale(t, row, 4), 3);
        float y[4 * AL_QK_K];
        al_dequantize_row(t, row, y, 4 * AL_QK_K);
        assert_true(isnan(y[3 * AL_QK_K]));
        free(row);
    }
}

/* ------------------------------------------------------------ kernels */

static void check_dot(const al_kernels *fast, uint32_t t, int64_t k, int mode)
{
    const size_t rb = al_type_row_bytes(t, k), ab = al_type_row_bytes(AL_TYPE_Q8_K, k);
    uint8_t *w = xalloc(rb), *a = xalloc(ab * AL_DOT_MAX_NT);
    float *x = xalloc((size_t)k * 4), *wf = xalloc((size_t)k * 4), *af = xalloc((size_t)k * 4);
    fill_row(t, w, k, mode);
    al_dequantize_row(t, w, wf, k);
    for (int tok = 0; tok < AL_DOT_MAX_NT; tok++) {
        fill_x(x, k, mode);
        al_quantize_row_q8_K(x, (al_block_q8_K *)(a + tok * ab), k);
    }
    float out_ref[AL_DOT_MAX_NT], out_fast[AL_DOT_MAX_NT];
    for (int nt = 1; nt <= AL_DOT_MAX_NT; nt++) {
        al_kernels_ref()->dot[t](k, w, a, ab, nt, out_ref);
        fast->dot[t](k, w, a, ab, nt, out_fast);
        for (int tok = 0; tok < nt; tok++) {
            al_dequantize_row(AL_TYPE_Q8_K, a + tok * ab, af, k);
            double oracle = 0, sabs = 0;
            for (int64_t i = 0; i < k; i++) {
                oracle += (double)wf[i] * af[i];
                sabs += fabs((double)wf[i] * af[i]);
            }
            /* float rounding of the per-block scaling and of the sum over
             * k/256 blocks: grows with the dot length */
            const double tol = (4e-7 * (double)(k / AL_QK_K) + 2e-6) * sabs + 1e-30;
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
    printf("  kernels in use: %s (CPU has AVX2: %s)\n", fast->name, al_cpu_has_avx2() ? "yes" : "no");
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const uint32_t t = k_iq_types[ti];
        assert_int_equal(al_act_type(t), AL_TYPE_Q8_K);
        assert_non_null(al_kernels_ref()->dot[t]);
        assert_non_null(fast->dot[t]);
        if (avx2)
            assert_ptr_not_equal(avx2->dot[t], al_kernels_ref()->dot[t]);
        const int64_t ks[] = {256, 768, 2048, 8192};
        for (size_t ki = 0; ki < 4; ki++)
            for (int mode = 0; mode < 4; mode++)
                for (int rep = 0; rep < (mode == 0 ? 3 : 1); rep++) {
                    check_dot(fast, t, ks[ki], mode);
                    if (avx2)
                        check_dot(avx2, t, ks[ki], mode);
                }
    }
}

/* al_matmul (native kernels, threads) against the exact path: they differ
 * by the rounding of the activations to 8 bits only. 6 tokens go through
 * the dot kernels, 13 through the AVX2 panels (4 panels of 8 rows, 5 rows
 * left to the dot kernels). */
static void check_matmul(al_threadpool *tp, int64_t n_tok)
{
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const uint32_t t = k_iq_types[ti];
        const int64_t n_rows = 37, k = 512;
        const size_t rb = al_type_row_bytes(t, k);
        uint8_t *W = xalloc(rb * n_rows);
        float *X = xalloc((size_t)(k * n_tok) * 4), *Y = xalloc((size_t)(n_rows * n_tok) * 4);
        float *Ye = xalloc((size_t)(n_rows * n_tok) * 4), *wf = xalloc((size_t)k * 4);
        for (int64_t r = 0; r < n_rows; r++)
            fill_row(t, W + r * rb, k, r % 5 == 2 ? 1 : 0);
        fill_x(X, k * n_tok, 0);
        void *s1 = xalloc(al_matmul_scratch_bytes(t, k, n_tok));
        void *s2 = xalloc(al_matmul_exact_scratch_bytes(k, al_threadpool_size(tp)));
        assert_true(al_matmul_check(t, k));
        al_matmul(tp, t, W, n_rows, k, rb, X, n_tok, Y, n_rows, s1);
        al_matmul_exact(tp, t, W, n_rows, k, rb, X, n_tok, Ye, n_rows, s2);
        for (int64_t r = 0; r < n_rows; r++) {
            al_dequantize_row(t, W + r * rb, wf, k);
            for (int64_t tok = 0; tok < n_tok; tok++) {
                const float *x = X + tok * k;
                double bound = 1e-6;
                for (int64_t b = 0; b < k; b += AL_QK_K) {
                    float amax = 0;
                    for (int64_t i = b; i < b + AL_QK_K; i++)
                        amax = fmaxf(amax, fabsf(x[i]));
                    for (int64_t i = b; i < b + AL_QK_K; i++)
                        bound += fabs(wf[i]) * (amax / 254.0 * 1.01 + fabs(x[i]) * 1e-5);
                }
                const float yn = Y[tok * n_rows + r], ye = Ye[tok * n_rows + r];
                if (!(fabs(yn - ye) <= bound))
                    fail_msg("%s row %lld tok %lld: matmul %.9g exact %.9g bound %.3g", al_type_name(t),
                             (long long)r, (long long)tok, yn, ye, bound);
            }
        }
        free(W), free(X), free(Y), free(Ye), free(wf), free(s1), free(s2);
    }
}

static void test_matmul(void **state)
{
    (void)state;
    al_threadpool *tp = al_threadpool_new(2);
    check_matmul(tp, 6);
    check_matmul(tp, 13);
    check_matmul(NULL, 29);
    al_threadpool_free(tp);
}

/* The panel kernels against the plain-C dot kernels on the same Q8_K
 * activations: exact integer sums, float rounding only. */
static void test_panels(void **state)
{
    (void)state;
    const al_kernels *avx2 = al_cpu_has_avx2() ? al_kernels_avx2() : NULL;
    if (!avx2) {
        printf("  no AVX2: panel kernels not tested\n");
        return;
    }
    for (size_t ti = 0; ti < N_IQ; ti++) {
        const uint32_t t = k_iq_types[ti];
        const al_panel_kernel *pk = &avx2->panel[t];
        assert_non_null(pk->gemm);
        for (int mode = 0; mode < 4; mode++) {
            const int64_t k = mode == 1 ? 2048 : 768;
            const size_t rb = al_type_row_bytes(t, k), ab = al_type_row_bytes(AL_TYPE_Q8_K, k);
            uint8_t *W = xalloc(rb * AL_PANEL_ROWS), *A = xalloc(ab * AL_PANEL_NT);
            void *panel = xalloc(pk->bytes(k));
            float *x = xalloc((size_t)k * 4), *wf = xalloc((size_t)k * 4), *af = xalloc((size_t)k * 4);
            for (int r = 0; r < AL_PANEL_ROWS; r++)
                fill_row(t, W + r * rb, k, mode);
            for (int tok = 0; tok < AL_PANEL_NT; tok++) {
                fill_x(x, k, mode == 3 ? 2 : 0);
                al_quantize_row_q8_K(x, (al_block_q8_K *)(A + tok * ab), k);
            }
            pk->pack(k, W, rb, panel);
            for (int nt = 1; nt <= AL_PANEL_NT; nt++) {
                float out[AL_PANEL_NT][AL_PANEL_ROWS], ref[AL_PANEL_NT];
                pk->gemm(k, panel, A, ab, NULL, 0, nt, &out[0][0], AL_PANEL_ROWS);
                for (int r = 0; r < AL_PANEL_ROWS; r++) {
                    al_kernels_ref()->dot[t](k, W + r * rb, A, ab, nt, ref);
                    al_dequantize_row(t, W + r * rb, wf, k);
                    for (int tok = 0; tok < nt; tok++) {
                        al_dequantize_row(AL_TYPE_Q8_K, A + tok * ab, af, k);
                        double sabs = 0;
                        for (int64_t i = 0; i < k; i++)
                            sabs += fabs((double)wf[i] * af[i]);
                        const double tol = (4e-7 * (double)(k / AL_QK_K) + 2e-6) * sabs + 1e-30;
                        if (!(fabs(out[tok][r] - ref[tok]) <= tol))
                            fail_msg("%s mode %d nt %d row %d tok %d: panel %.9g dot %.9g tol %.3g", al_type_name(t),
                                     mode, nt, r, tok, out[tok][r], ref[tok], tol);
                    }
                }
            }
            free(W), free(A), free(panel), free(x), free(wf), free(af);
        }
    }
}

/* ------------------------------------------------------------ real files */

static const char *shared_dir(void)
{
    const char *s = getenv("AIRLOCK_SHARED");
    return s && *s ? s : AL_SRC_DIR "/../shared";
}

/* Every i-quant tensor of the tiny-llama files: finite scales, and the fast
 * kernels' dot of a few rows within the tolerance of the reference's. */
static void test_real(void **state)
{
    (void)state;
    static const char *files[] = {"iq3_s", "iq3_xxs", "iq2_m", "iq2_s", "iq2_xs", "iq2_xxs", "iq1_m", "iq1_s"};
    int seen[AL_TYPE_COUNT] = {0};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/models/tiny-llama-%s.gguf", shared_dir(), files[f]);
        al_gguf *g = NULL;
        al_error err;
        if (al_gguf_open(path, NULL, &g, &err) != AL_OK) {
            printf("SKIP %s: %s\n", path, err.msg);
            continue;
        }
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const al_gguf_tensor *t = &g->tensors[i];
            if (!al_type_get(t->type)->supported || al_act_type(t->type) != AL_TYPE_Q8_K || t->type < 16)
                continue;
            seen[t->type]++;
            const int64_t k = (int64_t)t->ne[0];
            const size_t rb = al_type_row_bytes(t->type, k), ab = al_type_row_bytes(AL_TYPE_Q8_K, k);
            assert_int_equal(al_iq_bad_scale(t->type, t->data, (int64_t)(t->n_elems / AL_QK_K)), -1);
            float *x = xalloc((size_t)k * 4);
            uint8_t *a = xalloc(ab);
            fill_x(x, k, 0);
            al_quantize_row_q8_K(x, (al_block_q8_K *)a, k);
            for (uint64_t r = 0; r < t->n_elems / (uint64_t)k && r < 8; r++) {
                float o_ref, o_fast;
                const uint8_t *w = (const uint8_t *)t->data + r * rb;
                al_kernels_ref()->dot[t->type](k, w, a, ab, 1, &o_ref);
                al_kernels_get()->dot[t->type](k, w, a, ab, 1, &o_fast);
                assert_true(fabsf(o_fast - o_ref) <= 1e-5f * (1.0f + fabsf(o_ref)) * (float)(k / AL_QK_K));
            }
            free(x), free(a);
        }
        al_gguf_close(g);
    }
    for (size_t ti = 0; ti < N_IQ; ti++)
        printf("  %-8s %d tensors in the tiny-llama files\n", al_type_name(k_iq_types[ti]), seen[k_iq_types[ti]]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grids),     cmocka_unit_test(test_dequant_known), cmocka_unit_test(test_bad_scale),
        cmocka_unit_test(test_kernels),   cmocka_unit_test(test_matmul),        cmocka_unit_test(test_panels),
        cmocka_unit_test(test_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
