/* attention_avx2.c - AVX2/FMA/F16C twins of attention.c's kernels.
 * Compiled with -mavx2 -mfma -mf16c only; called only after the run-time
 * check in attention.c. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

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

static void to_f16(const float *src, uint16_t *dst, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        dst[i] = al_fp32_to_fp16(src[i]);
}

/* Two query heads (or one) against the same K/V rows: each K/V row is
 * converted once per pass for both heads; the output is accumulated in
 * registers 32 dimensions at a time. */
static void attend_f16(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride,
                       int32_t n_pos, uint32_t hd, float scale, float *scores, float *out)
{
    if (hd % 32 != 0 || hd > 1024) {
        al_attend_f16_ref(q, nh, k, v, stride, n_pos, hd, scale, scores, out);
        return;
    }
    for (uint32_t h0 = 0; h0 < nh; h0 += 2) {
        const bool two = h0 + 1 < nh;
        const float *qa = q + (size_t)h0 * hd, *qb = two ? qa + hd : qa;
        float *sa = scores + (size_t)h0 * n_pos, *sb = two ? sa + n_pos : sa;
        float mxa = -INFINITY, mxb = -INFINITY;
        for (int32_t p = 0; p < n_pos; p++) {
            const uint16_t *kp = k + (size_t)p * stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
            for (uint32_t i = 0; i < hd; i += 16) {
                const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp + i)));
                const __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp + i + 8)));
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qa + i), k0, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qa + i + 8), k1, a1);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(qb + i), k0, b0);
                b1 = _mm256_fmadd_ps(_mm256_loadu_ps(qb + i + 8), k1, b1);
            }
            const float s_a = hsum(_mm256_add_ps(a0, a1)) * scale, s_b = hsum(_mm256_add_ps(b0, b1)) * scale;
            sa[p] = s_a;
            mxa = s_a > mxa ? s_a : mxa;
            if (two) {
                sb[p] = s_b;
                mxb = s_b > mxb ? s_b : mxb;
            }
        }
        float suma = 0.0f, sumb = 0.0f;
        for (int32_t p = 0; p < n_pos; p++) {
            sa[p] = expf(sa[p] - mxa);
            suma += sa[p];
        }
        if (two)
            for (int32_t p = 0; p < n_pos; p++) {
                sb[p] = expf(sb[p] - mxb);
                sumb += sb[p];
            }
        const __m256 inva = _mm256_set1_ps(1.0f / suma), invb = _mm256_set1_ps(two ? 1.0f / sumb : 0.0f);
        float *oa = out + (size_t)h0 * hd, *ob = two ? oa + hd : NULL;
        for (uint32_t d0 = 0; d0 < hd; d0 += 32) {
            __m256 xa[4], xb[4];
            for (int u = 0; u < 4; u++)
                xa[u] = xb[u] = _mm256_setzero_ps();
            for (int32_t p = 0; p < n_pos; p++) {
                const uint16_t *vp = v + (size_t)p * stride + d0;
                const __m256 wa = _mm256_set1_ps(sa[p]), wb = _mm256_set1_ps(sb[p]);
                for (int u = 0; u < 4; u++) {
                    const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vp + 8 * u)));
                    xa[u] = _mm256_fmadd_ps(wa, vv, xa[u]);
                    xb[u] = _mm256_fmadd_ps(wb, vv, xb[u]);
                }
            }
            for (int u = 0; u < 4; u++) {
                _mm256_storeu_ps(oa + d0 + 8 * u, _mm256_mul_ps(xa[u], inva));
                if (two)
                    _mm256_storeu_ps(ob + d0 + 8 * u, _mm256_mul_ps(xb[u], invb));
            }
        }
    }
}

static const al_attn_kernels k_avx2 = {to_f16, attend_f16};

const al_attn_kernels *al_attn_kernels_avx2(void)
{
    return &k_avx2;
}
