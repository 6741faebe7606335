/* attention_avx2.c - AVX2/FMA/F16C twins of attention.c's kernels.
 * Compiled with -mavx2 -mfma -mf16c only; called only after the run-time
 * check in attention.c. */
#include <immintrin.h>

#include "model/attention.h"
#include "tensor/quant.h"

static inline float hsum(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static float dot_f16(const float *q, const uint16_t *k, uint32_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i)));
        __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, a1);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += q[i] * al_fp16_to_fp32(k[i]);
    return s;
}

static void axpy_f16(float *acc, float a, const uint16_t *v, uint32_t n)
{
    __m256 va = _mm256_set1_ps(a);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i)));
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(va, x, _mm256_loadu_ps(acc + i)));
    }
    for (; i < n; i++)
        acc[i] += a * al_fp16_to_fp32(v[i]);
}

static void to_f16(const float *src, uint16_t *dst, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        dst[i] = al_fp32_to_fp16(src[i]);
}

static const al_attn_kernels k_avx2 = {dot_f16, axpy_f16, to_f16};

const al_attn_kernels *al_attn_kernels_avx2(void)
{
    return &k_avx2;
}
