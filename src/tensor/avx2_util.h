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

/* ---- panel helpers (gemm_avx2.c, kernels_iq4_avx2.c) */

/* The 4 bytes at p (activations, or bsums) broadcast to every 32-bit lane. */
AI __m256i bcast4(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Asks for the n bytes that lie PF_AHEAD bytes after the panel block at p
 * (n: the block's size, so each line is asked for about once). With few
 * tokens a block's work is short, and the hardware prefetcher alone left
 * the cores waiting on memory: one-token decoding of qwen3-0.6b q4_k_m
 * went from ~46 to ~60 t/s with this. Past the end of the panels the
 * addresses are only hints: prefetches do not fault. */
/* 2048 (-DPF_AHEAD=N to try others): qwen3-0.6b q4_k_m tg128 on a quiet
 * avx512vnni host, 3 interleaved runs each, AVX-512 / AVX2 kernels (t/s):
 * 1024 63.3 / 57.7, 1536 63.8 / 57.4, 2048 64.4 / 58.0, 3072 61.2 / 55.8,
 * 4096 59.3 / 49.0, 8192 59.0 / 49.3. */
#ifndef PF_AHEAD
#define PF_AHEAD 2048
#endif
AI void prefetch_ahead(const void *p, size_t n)
{
    for (size_t o = 0; o < n; o += 64)
        _mm_prefetch((const char *)p + PF_AHEAD + o, _MM_HINT_T0);
}

/* v, with the compiler kept from moving the arithmetic that made it past
 * this point: gcc otherwise sums a token's chunk products as a tree, keeps
 * all 32 products of 4 tokens live and spills them. */
AI __m256i pin(__m256i v)
{
    __asm__("" : "+x"(v));
    return v;
}

/* p, made opaque to the compiler the same way: loads through two such
 * copies are not merged. */
AI const void *pin_ptr(const void *p)
{
    __asm__("" : "+r"(p));
    return p;
}

/* The 2 int16 at p broadcast to every 32-bit lane. */
AI __m256i bcast2x16(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Eight 32-byte rows r0..r7 (one 32-element group of each row, element i at
 * byte i) -> 8 vectors, vector c = bytes 4c..4c+3 of every row, row r in
 * lane r. A 4x4 transpose of 32-bit words per 128-bit half, then the
 * halves exchanged. */
AI void interleave8(const __m256i r[8], __m256i out[8])
{
    /* words: r[i] = w(i,0..7); want out[c] = w(0..7,c) */
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);     /* w(i,0) w(i+1,0) w(i,1) w(i+1,1) | 4,5 */
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]); /* w(i,2) w(i+1,2) w(i,3) w(i+1,3) | 6,7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);     /* w(i..i+3, 0) | 4 */
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]); /* w(i..i+3, 1) | 5 */
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]); /* 2 | 6 */
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]); /* 3 | 7 */
    }
    /* u[0..3]: rows 0..3, words c | c+4; u[4..7]: rows 4..7 */
    for (int c = 0; c < 4; c++) {
        out[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
        out[c + 4] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
    }
}

#endif
