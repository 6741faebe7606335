/* avx2_util.h - small AVX2 helpers shared by the *_avx2.c kernel files
 * (src/tensor and src/model/attention_avx2.c). Include only from files
 * compiled with -mavx2 -mfma -mf16c. */
#ifndef AL_TENSOR_AVX2_UTIL_H
#define AL_TENSOR_AVX2_UTIL_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "tensor/quant.h"

#define AI static inline __attribute__((always_inline))

/* call(n) with n = nt as a constant (1..4; more than 4 runs call(4)): the
 * kernels are specialised per token count so that their per-token
 * accumulators live in registers. */
#define AL_SWITCH_NT(nt, call)                                                                     \
    switch (nt) {                                                                                  \
    case 1: call(1); break;                                                                        \
    case 2: call(2); break;                                                                        \
    case 3: call(3); break;                                                                        \
    default: call(4); break;                                                                       \
    }

/* The sum of v's 8 lanes. */
AI float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI float h2f(al_half h)
{
    return _cvtsh_ss(h);
}

/* 16 packed nibble bytes -> 32 bytes: low nibbles then high nibbles. */
AI __m256i nibbles32(const uint8_t *qs)
{
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* The 12 packed scale bytes of a Q4_K/Q5_K block -> 16 bytes: the 8 6-bit
 * scales (bytes 0..7) then the 8 6-bit mins (bytes 8..15). Bytes 0..3 of
 * the packed form hold scale j (low 6 bits) and the top 2 bits of scale
 * j+4; bytes 4..7 min j and the top 2 bits of min j+4; bytes 8..11 the low
 * nibbles of scale j+4 (low) and min j+4 (high). */
AI __m128i k4_scales_mins(const uint8_t *packed)
{
    uint32_t u[4];
    memcpy(u, packed, 12);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    const uint32_t sc_lo = u[0] & m6;
    const uint32_t sc_hi = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    const uint32_t mn_lo = u[1] & m6;
    const uint32_t mn_hi = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

#endif
