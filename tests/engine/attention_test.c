/* attention_test.c - the AVX2 attention kernels against their plain-C
 * reference twins, and the half conversions against the hardware's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/attention.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 11) * (1.0 / 9007199254740992.0));
}

static void test_half_round_trip(void **state)
{
    (void)state;
    /* Every finite half converts to float and back to itself. */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        assert_int_equal(al_fp32_to_fp16(al_fp16_to_fp32((uint16_t)h)), h);
    }
}

static void test_to_f16_matches_hardware(void **state)
{
    (void)state;
    const al_attn_kernels *fast = al_attn_kernels_avx2(), *ref = al_attn_kernels_ref();
    if (!al_cpu_has_avx2()) /* CPUID AVX2+FMA+F16C and XGETBV */
        skip();
    enum { N = 4099 };
    float *src = malloc(N * sizeof(float));
    uint16_t *a = malloc(N * 2), *b = malloc(N * 2);
    for (int i = 0; i < N; i++) {
        float mag = powf(2.0f, frand(-26.0f, 17.0f)); /* subnormals through overflow */
        src[i] = frand(-1, 1) < 0 ? -mag : mag;
    }
    src[0] = 0.0f;
    src[1] = -0.0f;
    src[2] = 65519.0f;
    src[3] = 65520.0f;
    fast->to_f16(src, a, N);
    ref->to_f16(src, b, N);
    for (int i = 0; i < N; i++)
        if (a[i] != b[i])
            fail_msg("element %d: %g -> hw %04x, ref %04x", i, (double)src[i], a[i], b[i]);
    free(src);
    free(a);
    free(b);
}

/* attend_f16 (AVX2, heads in pairs) against the reference, one head at a
 * time: group sizes 1..5, head sizes 64/128 (vector path) and 40 (falls
 * back), one position and many, large score ranges (softmax saturation). */
static void test_attend(void **state)
{
    (void)state;
    const al_attn_kernels *fast = al_attn_kernels_avx2(), *ref = al_attn_kernels_ref();
    if (!fast) {
        printf("  no AVX2 kernels compiled in: skipped\n");
        return;
    }
    const uint32_t hds[] = {64, 128, 40};
    const int32_t npos[] = {1, 2, 7, 33, 300};
    for (size_t hi = 0; hi < 3; hi++)
        for (uint32_t nh = 1; nh <= 5; nh++)
            for (size_t pi = 0; pi < 5; pi++)
                for (int mode = 0; mode < 2; mode++) {
                    const uint32_t hd = hds[hi], n_kv = 3;
                    const int32_t n = npos[pi];
                    const size_t stride = (size_t)n_kv * hd;
                    float *q = malloc((size_t)nh * hd * 4), *sc = malloc((size_t)nh * n * 4);
                    float *o1 = malloc((size_t)nh * hd * 4), *o2 = malloc((size_t)nh * hd * 4);
                    uint16_t *k = malloc((size_t)n * stride * 2), *v = malloc((size_t)n * stride * 2);
                    assert_true(q && sc && o1 && o2 && k && v);
                    const float amp = mode ? 8.0f : 1.0f;
                    for (size_t i = 0; i < (size_t)nh * hd; i++)
                        q[i] = frand(-amp, amp);
                    for (size_t i = 0; i < (size_t)n * stride; i++) {
                        k[i] = al_fp32_to_fp16(frand(-amp, amp));
                        v[i] = al_fp32_to_fp16(frand(-2, 2));
                    }
                    const float scale = 1.0f / sqrtf((float)hd);
                    /* the KV head in the middle of the row: offset hd */
                    ref->attend_f16(q, nh, k + hd, v + hd, stride, n, hd, scale, sc, o1);
                    fast->attend_f16(q, nh, k + hd, v + hd, stride, n, hd, scale, sc, o2);
                    for (size_t i = 0; i < (size_t)nh * hd; i++)
                        if (!(fabsf(o1[i] - o2[i]) <= 1e-4f + 1e-4f * fabsf(o1[i])))
                            fail_msg("attend hd %u nh %u n_pos %d mode %d: [%zu] %.7g vs ref %.7g", hd, nh, n, mode,
                                     i, o2[i], o1[i]);
                    if (n == 1) /* one position: the output is that V row */
                        for (size_t i = 0; i < hd; i++)
                            assert_true(fabsf(o2[i] - al_fp16_to_fp32(v[hd + i])) <= 1e-6f);
                    free(q), free(sc), free(o1), free(o2), free(k), free(v);
                }
}

static void test_dot_axpy(void **state)
{
    (void)state;
    const al_attn_kernels *fast = al_attn_kernels_get(), *ref = al_attn_kernels_ref();
    static const uint32_t sizes[] = {1, 7, 8, 16, 63, 64, 128, 129};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        uint32_t n = sizes[s];
        float q[129], acc1[129], acc2[129];
        uint16_t k[129];
        for (uint32_t i = 0; i < n; i++) {
            q[i] = frand(-3, 3);
            k[i] = al_fp32_to_fp16(frand(-3, 3));
            acc1[i] = acc2[i] = frand(-1, 1);
        }
        float d1 = fast->dot_f16(q, k, n), d2 = ref->dot_f16(q, k, n);
        assert_true(fabsf(d1 - d2) <= 1e-5f * n * 9.0f + 1e-6f);
        fast->axpy_f16(acc1, 0.37f, k, n);
        ref->axpy_f16(acc2, 0.37f, k, n);
        for (uint32_t i = 0; i < n; i++)
            assert_true(fabsf(acc1[i] - acc2[i]) <= 1e-5f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_round_trip),
        cmocka_unit_test(test_to_f16_matches_hardware),
        cmocka_unit_test(test_dot_axpy),
        cmocka_unit_test(test_attend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
