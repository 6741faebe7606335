/* gemm_avx512.c - the panel kernels of gemm_avx2.c (Q4_0, Q8_0, Q4_K,
 * Q5_K, Q6_K) and IQ4_XS's of kernels_iq4_avx2.c with AVX-512-VNNI's
 * vpdpbusd on 256-bit vectors (EVEX, VL).
 *
 * The panels are the ones the AVX2 files pack (same bytes, same pack
 * functions): 8 weight rows interleaved so that each 32-bit lane of a
 * vector belongs to one row. vpdpbusd multiplies 4 unsigned weight bytes
 * with 4 signed activation bytes and adds the 4 products to the lane's
 * int32 in one instruction, where AVX2 needs vpmaddubsw, an int16 add and
 * vpmaddwd; there is no int16 stage, so nothing has to be kept below
 * 32767. The per-row scales of the K-quants, applied to an int32 sum, take
 * a vpmulld per sub-block (or group of 16) and token.
 *
 * The EVEX encoding gives 32 vector registers: every kernel takes up to 8
 * tokens a call, each token's sum split over two chains (vpdpbusd has a
 * latency of about 5 cycles), so that a weight vector, once unpacked,
 * serves 8 tokens.
 *
 * Sums are exact integers as in gemm_avx2.c and the float steps are the
 * same, so the results equal the AVX2 kernels'. Compiled with -mavx512f
 * -mavx512bw -mavx512vl -mavx512vnni (and the AVX2 flags); used only after
 * al_cpu_has_avx512_vnni(). */
#include "tensor/kernels.h"
#include "tensor/quant_iq4.h"

#if defined(__x86_64__) && defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__F16C__)
#include <stddef.h>

#include "tensor/avx2_util.h"

#define PR AL_PANEL_ROWS
#define NT AL_PANEL_NT_MAX /* tokens per call at most */

/* Panel blocks as gemm_avx2.c lays them out (see there). */
typedef struct {
    al_half d[PR];
    uint8_t q[4][32];
} panel_q4_0;
typedef struct {
    al_half d[PR];
    int8_t q[8][32];
} panel_q8_0;
typedef struct {
    al_half d[PR], dmin[PR];
    int8_t sc[8][PR];
    int8_t mn[8][PR];
    uint8_t q[4][8][32];
} panel_q4_K;
typedef struct {
    panel_q4_K k4;
    uint8_t qh[8][32];
} panel_q5_K;
typedef struct {
    float d[PR];
    int8_t sc[16][PR];
    uint8_t ql[2][2][8][32];
    uint8_t qh[2][8][32];
} panel_q6_K;
typedef struct {
    uint8_t q[8][4][32];
    al_half d[PR];
    int8_t sc[8][PR];
    uint8_t pad[16];
} panel_iq4_xs;
_Static_assert(sizeof(panel_iq4_xs) % 32 == 0, "IQ4_XS panel alignment");
_Static_assert(sizeof(panel_q4_0) == PR * sizeof(al_block_q4_0), "Q4_0 panel size");
_Static_assert(sizeof(panel_q8_0) == PR * sizeof(al_block_q8_0), "Q8_0 panel size");
_Static_assert(sizeof(panel_q4_K) % 32 == 0 && offsetof(panel_q4_K, q) % 32 == 0, "Q4_K panel alignment");

/* acc + the 4-byte products of u (unsigned) and s (signed) per lane. */
AI __m256i dp(__m256i acc, __m256i u, __m256i s)
{
    return _mm256_dpbusd_epi32(acc, u, s);
}

/* The 8 int8 at p sign-extended to the 8 lanes. */
AI __m256i sc8(const int8_t *p)
{
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* ------------------------------------------------------------ Q4_0 / Q8_0 */

/* Q4_0: sum over the 32 elements of nibble x q, minus 8 * sum(q). */
AI void gemm_q4_0_nt(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                     float *out, int64_t ldo, const int nt)
{
    const panel_q4_0 *p = panel;
    const int64_t nb = k / AL_QK;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s0[NT], s1[NT];
        const al_block_q8_0 *x[NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_0 *)((const char *)a + (size_t)t * as) + b;
            s0[t] = _mm256_set1_epi32(-8 * asum[(size_t)t * ss + b]);
            s1[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_q4_0));
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; v++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)p[b].q[v]);
            const __m256i lo = _mm256_and_si256(raw, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                s0[t] = dp(s0[t], lo, bcast4(x[t]->qs + 4 * v));
                s1[t] = dp(s1[t], hi, bcast4(x[t]->qs + 16 + 4 * v));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256i s = _mm256_add_epi32(s0[t], s1[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(h2f(x[t]->d))), _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* Q8_0: |w| x sign(q, w), as in gemm_avx2.c. */
AI void gemm_q8_0_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_q8_0 *p = panel;
    const int64_t nb = k / AL_QK;
    __m256 acc[NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s0[NT], s1[NT];
        const al_block_q8_0 *x[NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_0 *)((const char *)a + (size_t)t * as) + b;
            s0[t] = s1[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_q8_0));
        _Pragma("GCC unroll 4")
        for (int c = 0; c < 8; c += 2) {
            const __m256i g0 = _mm256_loadu_si256((const __m256i *)p[b].q[c]);
            const __m256i g1 = _mm256_loadu_si256((const __m256i *)p[b].q[c + 1]);
            const __m256i w0 = _mm256_abs_epi8(g0), w1 = _mm256_abs_epi8(g1); /* -128 -> 128 as unsigned */
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                s0[t] = dp(s0[t], w0, _mm256_sign_epi8(bcast4(x[t]->qs + 4 * c), g0));
                s1[t] = dp(s1[t], w1, _mm256_sign_epi8(bcast4(x[t]->qs + 4 * c + 4), g1));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(h2f(x[t]->d))),
                                     _mm256_cvtepi32_ps(_mm256_add_epi32(s0[t], s1[t])), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* ------------------------------------------------------------ Q4_K / Q5_K */

/* Per sub-block: the 8 chunks' products in int32 (two chains), times the
 * rows' scales (vpmulld); the mins against the activation sums of 32 in 4
 * vpmaddwd, as in gemm_avx2.c. */
AI void gemm_k45_nt(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                    float *out, int64_t ldo, const int nt, const bool q5)
{
    const size_t psz = q5 ? sizeof(panel_q5_K) : sizeof(panel_q4_K);
    const int64_t nb = k / AL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s32[NT];
        const al_block_q8_K *x[NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        const panel_q4_K *p = (const panel_q4_K *)((const uint8_t *)panel + (size_t)b * psz);
        prefetch_ahead(p, psz);
        for (int s = 0; s < 8; s++) {
            const int j = s / 2, shift = 4 * (s % 2);
            const __m128i sh = _mm_cvtsi32_si128(s);
            __m256i d0[NT], d1[NT];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                d0[t] = d1[t] = _mm256_setzero_si256();
            _Pragma("GCC unroll 8")
            for (int c = 0; c < 8; c++) {
                const __m256i v = _mm256_load_si256((const __m256i *)p->q[j][c]);
                __m256i w = _mm256_and_si256(_mm256_srli_epi16(v, shift), m4);
                if (q5) {
                    const __m256i h = _mm256_load_si256((const __m256i *)((const panel_q5_K *)p)->qh[c]);
                    const __m256i bit = _mm256_and_si256(_mm256_srl_epi16(h, sh), _mm256_set1_epi8(1));
                    w = _mm256_or_si256(w, _mm256_slli_epi16(bit, 4));
                }
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++) {
                    if (c % 2)
                        d1[t] = dp(d1[t], w, bcast4(x[t]->qs + 32 * s + 4 * c));
                    else
                        d0[t] = dp(d0[t], w, bcast4(x[t]->qs + 32 * s + 4 * c));
                }
            }
            const __m256i sc = sc8(p->sc[s]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s32[t] = _mm256_add_epi32(s32[t], _mm256_mullo_epi32(_mm256_add_epi32(d0[t], d1[t]), sc));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p->d));
        const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p->dmin));
        __m256i mp[4]; /* mins of sub-blocks 2j, 2j+1 as int16 pairs per row */
        _Pragma("GCC unroll 4")
        for (int j = 0; j < 4; j++)
            mp[j] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p->mn[2 * j]),
                                                           _mm_loadl_epi64((const __m128i *)p->mn[2 * j + 1])));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const int16_t *sm = asum + (size_t)t * ss + 8 * b;
            __m256i m = _mm256_madd_epi16(mp[0], bcast2x16(sm));
            _Pragma("GCC unroll 4")
            for (int j = 1; j < 4; j++)
                m = _mm256_add_epi32(m, _mm256_madd_epi16(mp[j], bcast2x16(sm + 2 * j)));
            const __m256 yd = _mm256_set1_ps(x[t]->d);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, yd), _mm256_cvtepi32_ps(s32[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, yd), _mm256_cvtepi32_ps(m), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* ------------------------------------------------------------ Q6_K */

/* Chunk c of sub-block s = 4n + part as unsigned 6-bit values (see
 * gemm_avx2.c). */
AI __m256i q6_chunk(const panel_q6_K *p, int n, int part, int c)
{
    const __m256i ql = _mm256_load_si256((const __m256i *)p->ql[n][part & 1][c]);
    const __m256i qh = _mm256_load_si256((const __m256i *)p->qh[n][c]);
    const __m256i lo = _mm256_and_si256(part < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0f));
    __m256i hi;
    switch (part) {
    case 0: hi = _mm256_slli_epi16(qh, 4); break;
    case 1: hi = _mm256_slli_epi16(qh, 2); break;
    case 2: hi = qh; break;
    default: hi = _mm256_srli_epi16(qh, 2); break;
    }
    return _mm256_or_si256(lo, _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
}

/* Sub-block s (two groups of 16) of the Q6_K panel block pb into s32. */
AI void q6_sub(const panel_q6_K *pb, int s, const al_block_q8_K *const *x, __m256i *s32, const int nt)
{
    const int n = s / 4, part = s % 4;
    _Pragma("GCC unroll 2")
    for (int gh = 0; gh < 2; gh++) {
        __m256i d0[NT], d1[NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            d0[t] = d1[t] = _mm256_setzero_si256();
        _Pragma("GCC unroll 4")
        for (int c = 4 * gh; c < 4 * gh + 4; c++) {
            const __m256i w = q6_chunk(pb, n, part, c);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                if (c % 2)
                    d1[t] = dp(d1[t], w, bcast4(x[t]->qs + 32 * s + 4 * c));
                else
                    d0[t] = dp(d0[t], w, bcast4(x[t]->qs + 32 * s + 4 * c));
            }
        }
        const __m256i sc = sc8(pb->sc[2 * s + gh]);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            s32[t] = _mm256_add_epi32(s32[t], _mm256_mullo_epi32(_mm256_add_epi32(d0[t], d1[t]), sc));
    }
}

/* Per group of 16: 4 chunk products in int32 (two chains) times the
 * group's scales; the -32 offset from the bsums as in gemm_avx2.c. */
AI void gemm_q6_K_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_q6_K *p = panel;
    const int64_t nb = k / AL_QK_K;
    __m256 acc[NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s32[NT];
        const al_block_q8_K *x[NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_q6_K));
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 8; j++) {
            const __m128i g0 = _mm_loadl_epi64((const __m128i *)p[b].sc[2 * j]);
            const __m128i g1 = _mm_loadl_epi64((const __m128i *)p[b].sc[2 * j + 1]);
            const __m256i pair = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(g0, g1));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s32[t] = _mm256_sub_epi32(
                    s32[t], _mm256_slli_epi32(_mm256_madd_epi16(pair, bcast2x16(x[t]->bsums + 2 * j)), 5));
        }
        /* with few tokens the sub-blocks unrolled, each through an opaque
         * copy of the block's address as in gemm_avx2.c (else gcc keeps
         * the qh vectors of 4 sub-blocks: one token took 0.124 ms for
         * 3072x1024 against 0.088); with more the loop stays rolled (16
         * tokens: 187 GFLOP/s against 161 unrolled) */
        if (nt <= 4) {
            _Pragma("GCC unroll 8")
            for (int s = 0; s < 8; s++)
                q6_sub(pin_ptr(&p[b]), s, x, s32, nt);
        } else {
            for (int s = 0; s < 8; s++)
                q6_sub(&p[b], s, x, s32, nt);
        }
        const __m256 d = _mm256_load_ps(p[b].d);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[t]->d)), _mm256_cvtepi32_ps(s32[t]), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* ------------------------------------------------------------ IQ4_XS */

/* IQ4_XS: the codebook (-127..113) looked up shifted by +128, so that the
 * weights are unsigned bytes for vpdpbusd, and 128 x the activations' sum
 * over the sub-block (two Q8_K bsums) taken back out before the rows'
 * scales multiply: the same exact int32 as AVX2's |w| x sign(y, w). */
AI void gemm_iq4_xs_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_iq4_xs *p = panel;
    const int64_t nb = k / AL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    int8_t kv[16];
    for (int i = 0; i < 16; i++)
        kv[i] = (int8_t)(uint8_t)(al_kv_iq4nl[i] + 128);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kv));
    __m256 acc[NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const al_block_q8_K *x[NT];
        __m256i s32[NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_iq4_xs));
        for (int j = 0; j < 8; j++) {
            __m256i d0[NT], d1[NT];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                d0[t] = _mm256_set1_epi32(-128 * (x[t]->bsums[2 * j] + x[t]->bsums[2 * j + 1]));
                d1[t] = _mm256_setzero_si256();
            }
            _Pragma("GCC unroll 4")
            for (int v = 0; v < 4; v++) {
                const __m256i raw = _mm256_load_si256((const __m256i *)p[b].q[j][v]);
                const __m256i wl = _mm256_shuffle_epi8(lut, _mm256_and_si256(raw, m4));
                const __m256i wh = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4));
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++) {
                    d0[t] = dp(d0[t], wl, bcast4(x[t]->qs + 32 * j + 4 * v));
                    d1[t] = dp(d1[t], wh, bcast4(x[t]->qs + 32 * j + 16 + 4 * v));
                }
            }
            const __m256i sc = sc8(p[b].sc[j]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s32[t] = _mm256_add_epi32(s32[t], _mm256_mullo_epi32(_mm256_add_epi32(d0[t], d1[t]), sc));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[t]->d)), _mm256_cvtepi32_ps(s32[t]), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* ------------------------------------------------------------ one token */

/* The gemv kernels: one token against a run of panels, with 512-bit
 * vectors. A panel's chunks c and c+1 (8 rows x 4 bytes each) are 64
 * contiguous bytes, one zmm; the token's matching activation bytes come
 * from its expanded row (al_panel_kernel.gemv: each 4 activation bytes
 * repeated 8 times, so that bytes 4c..4c+7 of a sub-block are one aligned
 * 64-byte load, lanes 0-7 the dword of chunk c, lanes 8-15 that of c+1),
 * a load folded into vpdpbusd rather than a broadcast per 32-byte chunk.
 * The integer sums are the same exact int32 as the gemm kernels' (in
 * another order: integer addition is exact), and the float steps are the
 * same, so a row's result has the gemm kernels' bits at nt = 1. */

/* The 8 int8 at p sign-extended to lanes 0-7 and again to 8-15. */
AI __m512i sc8x2(const int8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return _mm512_cvtepi8_epi32(_mm_set1_epi64x(v));
}

/* The 16 int8 at p sign-extended to the 16 lanes. */
AI __m512i sc16(const int8_t *p)
{
    return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/* lanes 0-7 + lanes 8-15 */
AI __m256i fold(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* 64 bytes at p; split: as two 32-byte loads (p is 32 bytes past a cache
 * line: one 64-byte load would touch two lines, which cost more CPU time
 * than the extra insert when the weights stream from memory). */
AI __m512i load64(const void *p, const bool split)
{
    if (!split)
        return _mm512_loadu_si512(p);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)p)),
                              _mm256_load_si256((const __m256i *)((const uint8_t *)p + 32)), 1);
}

/* Q4_K: the low nibbles (even sub-blocks) masked, the high ones masked in
 * place (16x their value: the odd sub-blocks' products summed apart and
 * divided by 16 once, exactly, per super-block); the mins as in
 * gemm_k45_nt. */
/* One super-block of a Q4_K panel against the token: the int32 sums of
 * the products (the mins apart). */
AI __m256i q4_block(const panel_q4_K *p, const uint8_t *e, const bool split)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m4h = _mm512_set1_epi8((char)0xf0);
    __m512i se = _mm512_setzero_si512(), so = _mm512_setzero_si512();
    _Pragma("GCC unroll 4")
    for (int j = 0; j < 4; j++) {
        __m512i w[4];
        _Pragma("GCC unroll 4")
        for (int c2 = 0; c2 < 4; c2++)
            w[c2] = load64(p->q[j][2 * c2], split);
        const uint8_t *ee = e + (size_t)(2 * j) * 256, *eo = ee + 256;
        __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
        __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
        _Pragma("GCC unroll 4")
        for (int c2 = 0; c2 < 4; c2 += 2) {
            d0 = _mm512_dpbusd_epi32(d0, _mm512_and_si512(w[c2], m4), _mm512_loadu_si512(ee + 64 * c2));
            d1 = _mm512_dpbusd_epi32(d1, _mm512_and_si512(w[c2 + 1], m4), _mm512_loadu_si512(ee + 64 * c2 + 64));
            h0 = _mm512_dpbusd_epi32(h0, _mm512_and_si512(w[c2], m4h), _mm512_loadu_si512(eo + 64 * c2));
            h1 = _mm512_dpbusd_epi32(h1, _mm512_and_si512(w[c2 + 1], m4h), _mm512_loadu_si512(eo + 64 * c2 + 64));
        }
        se = _mm512_add_epi32(se, _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), sc8x2(p->sc[2 * j])));
        so = _mm512_add_epi32(so, _mm512_mullo_epi32(_mm512_add_epi32(h0, h1), sc8x2(p->sc[2 * j + 1])));
    }
    return _mm256_add_epi32(fold(se), _mm256_srai_epi32(fold(so), 4));
}

/* Q5_K: the Q4_K nibbles with bit s of qh as bit 4 of sub-block s's
 * values, (nibble & 0x0f) | (qh shifted so that bit s is at bit 4) & 0x10
 * in one vpternlogd; the high nibbles shifted down (bit 4 must sit above
 * them, so not masked in place as Q4_K's). */
AI __m512i q5_w(__m512i nib, __m512i qh, int s)
{
    const __m512i at4 = s <= 4 ? _mm512_slli_epi16(qh, (unsigned)(4 - s)) : _mm512_srli_epi16(qh, (unsigned)(s - 4));
    const __m512i h = _mm512_and_si512(at4, _mm512_set1_epi8(0x10));
    return _mm512_ternarylogic_epi32(nib, h, _mm512_set1_epi8(0x0f), 0xe4); /* c ? a : b per bit */
}

/* One super-block of a Q5_K panel against the token: the int32 sums of
 * the products (the mins apart). */
AI __m256i q5_block(const panel_q5_K *p5, const uint8_t *e)
{
    const panel_q4_K *p = &p5->k4;
    __m512i qh[4];
    _Pragma("GCC unroll 4")
    for (int c2 = 0; c2 < 4; c2++)
        qh[c2] = _mm512_loadu_si512(p5->qh[2 * c2]);
    __m512i s32 = _mm512_setzero_si512();
    _Pragma("GCC unroll 4")
    for (int j = 0; j < 4; j++) {
        const uint8_t *ee = e + (size_t)(2 * j) * 256, *eo = ee + 256;
        __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
        __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
        _Pragma("GCC unroll 4")
        for (int c2 = 0; c2 < 4; c2 += 2) {
            const __m512i w0 = _mm512_loadu_si512(p->q[j][2 * c2]), w1 = _mm512_loadu_si512(p->q[j][2 * c2 + 2]);
            d0 = _mm512_dpbusd_epi32(d0, q5_w(w0, qh[c2], 2 * j), _mm512_loadu_si512(ee + 64 * c2));
            d1 = _mm512_dpbusd_epi32(d1, q5_w(w1, qh[c2 + 1], 2 * j), _mm512_loadu_si512(ee + 64 * c2 + 64));
            h0 = _mm512_dpbusd_epi32(h0, q5_w(_mm512_srli_epi16(w0, 4), qh[c2], 2 * j + 1),
                                     _mm512_loadu_si512(eo + 64 * c2));
            h1 = _mm512_dpbusd_epi32(h1, q5_w(_mm512_srli_epi16(w1, 4), qh[c2 + 1], 2 * j + 1),
                                     _mm512_loadu_si512(eo + 64 * c2 + 64));
        }
        s32 = _mm512_add_epi32(s32, _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), sc8x2(p->sc[2 * j])));
        s32 = _mm512_add_epi32(s32, _mm512_mullo_epi32(_mm512_add_epi32(h0, h1), sc8x2(p->sc[2 * j + 1])));
    }
    return fold(s32);
}

AI void gemv_k45(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq, const uint8_t *xe,
                 const int16_t *asum, float *out, const bool q5)
{
    const int64_t nb = k / AL_QK_K;
    const size_t psz = q5 ? sizeof(panel_q5_K) : sizeof(panel_q4_K);
    for (int64_t pi = 0; pi < n_panels; pi++) {
        const uint8_t *pp = (const uint8_t *)panel + (size_t)pi * pstride;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const panel_q4_K *p = (const panel_q4_K *)(pp + (size_t)b * psz);
            const al_block_q8_K *x = (const al_block_q8_K *)xq + b;
            const uint8_t *e = xe + (size_t)b * AL_QK_K * 8;
            prefetch_ahead(p, psz);
            /* q may be 32 bytes past a cache line: 64-byte loads all the
             * same (as two halves they were slower here, in L2 and no
             * faster from memory, unlike Q6_K's) */
            const __m256i s32 = q5 ? q5_block((const panel_q5_K *)p, e) : q4_block(p, e, false);
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p->d));
            const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p->dmin));
            const int16_t *sm = asum + 8 * b;
            __m256i m = _mm256_setzero_si256();
            _Pragma("GCC unroll 4")
            for (int j = 0; j < 4; j++) {
                const __m256i mp = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(
                    _mm_loadl_epi64((const __m128i *)p->mn[2 * j]), _mm_loadl_epi64((const __m128i *)p->mn[2 * j + 1])));
                m = _mm256_add_epi32(m, _mm256_madd_epi16(mp, bcast2x16(sm + 2 * j)));
            }
            const __m256 yd = _mm256_set1_ps(x->d);
            acc = _mm256_fmadd_ps(_mm256_mul_ps(d, yd), _mm256_cvtepi32_ps(s32), acc);
            acc = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, yd), _mm256_cvtepi32_ps(m), acc);
        }
        _mm256_storeu_ps(out + 8 * pi, acc);
    }
}

static void gemv_q4_K(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq,
                      const uint8_t *xe, const int16_t *asum, float *out)
{
    gemv_k45(k, panel, n_panels, pstride, xq, xe, asum, out, false);
}

static void gemv_q5_K(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq,
                      const uint8_t *xe, const int16_t *asum, float *out)
{
    gemv_k45(k, panel, n_panels, pstride, xq, xe, asum, out, true);
}

/* Q6_K: per sub-block, the 6-bit values (low or high nibble of ql, two
 * bits of qh at bits 4-5) of its 4 pairs of chunks into two vpdpbusd
 * chains, one per group of 16 (chunks 0-3, 4-7); the two chains' halves
 * added so that one vector holds group 0's 8 rows then group 1's, times
 * the two groups' scales (16 contiguous int8) in one vpmulld. The -32
 * offset: 32 * sum_g sc(r,g) * bsum_g, two groups' scales per vpmaddwd. */
AI __m512i q6_w(__m512i ql, __m512i qh, int part)
{
    const __m512i lo = part < 2 ? ql : _mm512_srli_epi16(ql, 4);
    __m512i hi;
    switch (part) {
    case 0: hi = _mm512_slli_epi16(qh, 4); break;
    case 1: hi = _mm512_slli_epi16(qh, 2); break;
    case 2: hi = qh; break;
    default: hi = _mm512_srli_epi16(qh, 2); break;
    }
    /* (lo & 0x0f) | (hi & 0x30): vpternlogd 0xe4 is "c ? a : b" per bit */
    const __m512i h = _mm512_and_si512(hi, _mm512_set1_epi8(0x30));
    return _mm512_ternarylogic_epi32(lo, h, _mm512_set1_epi8(0x0f), 0xe4);
}

/* One super-block of a Q6_K panel against the token: its int32 sums. */
AI __m256i q6_block(const panel_q6_K *pb, const al_block_q8_K *x, const uint8_t *e, const bool split)
{
    /* for the offset: lanes 0-7 take bsum dword 2i, lanes 8-15 dword 2i+1 */
    const __m512i bidx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i off = _mm512_setzero_si512();
    const __m512i bs = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x->bsums));
    _Pragma("GCC unroll 4")
    for (int i = 0; i < 4; i++) { /* groups 4i..4i+3 */
        const __m256i g = _mm256_loadu_si256((const __m256i *)pb->sc[4 * i]);
        /* per 128-bit lane: (sc(g, r), sc(g + 1, r)) byte pairs */
        const __m512i pair = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(g, _mm256_srli_si256(g, 8)));
        const __m512i bv = _mm512_permutexvar_epi32(_mm512_add_epi32(bidx, _mm512_set1_epi32(2 * i)), bs);
        off = _mm512_add_epi32(off, _mm512_madd_epi16(pair, bv));
    }
    __m512i s32 = _mm512_setzero_si512();
    _Pragma("GCC unroll 2")
    for (int n = 0; n < 2; n++) {
        __m512i qh[4];
        _Pragma("GCC unroll 4")
        for (int c2 = 0; c2 < 4; c2++)
            qh[c2] = load64(pb->qh[n][2 * c2], split);
        _Pragma("GCC unroll 4")
        for (int part = 0; part < 4; part++) {
            const int s = 4 * n + part;
            const uint8_t *es = e + (size_t)s * 256;
            __m512i d[2];
            _Pragma("GCC unroll 2")
            for (int gh = 0; gh < 2; gh++) {
                d[gh] = _mm512_setzero_si512();
                _Pragma("GCC unroll 2")
                for (int c2 = 2 * gh; c2 < 2 * gh + 2; c2++)
                    d[gh] = _mm512_dpbusd_epi32(d[gh], q6_w(load64(pb->ql[n][part & 1][2 * c2], split), qh[c2], part),
                                                _mm512_loadu_si512(es + 64 * c2));
            }
            /* [d0 lo, d1 lo] + [d0 hi, d1 hi]: group 0's rows, then group 1's */
            const __m512i lo = _mm512_shuffle_i64x2(d[0], d[1], 0x44), hi = _mm512_shuffle_i64x2(d[0], d[1], 0xee);
            s32 = _mm512_add_epi32(s32, _mm512_mullo_epi32(_mm512_add_epi32(lo, hi), sc16(pb->sc[2 * s])));
        }
    }
    return _mm256_sub_epi32(fold(s32), _mm256_slli_epi32(fold(off), 5));
}

static void gemv_q6_K(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq,
                      const uint8_t *xe, const int16_t *asum, float *out)
{
    (void)asum;
    const int64_t nb = k / AL_QK_K;
    for (int64_t pi = 0; pi < n_panels; pi++) {
        const panel_q6_K *p = (const panel_q6_K *)((const uint8_t *)panel + (size_t)pi * pstride);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const al_block_q8_K *x = (const al_block_q8_K *)xq + b;
            const uint8_t *e = xe + (size_t)b * AL_QK_K * 8;
            prefetch_ahead(&p[b], sizeof(panel_q6_K));
            /* panels are 32-byte aligned: ql and qh are, or are 32 past a line */
            const __m256i si = ((uintptr_t)p[b].ql & 63) ? q6_block(&p[b], x, e, true) : q6_block(&p[b], x, e, false);
            const __m256 d = _mm256_load_ps(p[b].d);
            acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(si), acc);
        }
        _mm256_storeu_ps(out + 8 * pi, acc);
    }
}

/* Q4_0 and Q8_0: a block (32 elements) is 4 chunk pairs of one zmm each
 * for Q8_0, 2 for Q4_0 (low nibbles: elements 0-15, high: 16-31). Q8_0's
 * signed weights go as w + 128 (unsigned for vpdpbusd), and 128 x the
 * block's activation sum (asum) comes back out; Q4_0's -8 x the same sum
 * as in gemm_q4_0_nt. The block's float steps are the gemm kernels'. */
/* G panels (1..4) at a time, block by block: the block's activations
 * (4 zmm), its scale and sum loaded once for all G. Each panel's sum still
 * runs over its blocks in order. Q4_0 takes 2 panels a pass, Q8_0 4 (one
 * thread, CPU time, 1024-wide rows: Q4_0 in L2 45.6 / 52.2 / 54.1 GB/s
 * with 1 / 2 / 4, streaming 36 MB from L3 29.3 / 29.3 / 28.7 against
 * gemm's 29.4; Q8_0 in L2 91 / 93 / 100, from L3 28.4 / 27.4 / 28.7
 * against 27.3). */
AI void gemv_q4_0_g(int64_t nb, const uint8_t *panel, size_t pstride, const al_block_q8_0 *xq, const uint8_t *xe,
                    const int16_t *asum, float *out, const int G)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m256 acc[4];
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        acc[g] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *e = xe + (size_t)b * AL_QK * 8;
        const __m512i e0 = _mm512_load_si512(e), e1 = _mm512_load_si512(e + 64);
        const __m512i e2 = _mm512_load_si512(e + 128), e3 = _mm512_load_si512(e + 192);
        const __m256 xd = _mm256_set1_ps(h2f(xq[b].d));
        const __m256i off = _mm256_set1_epi32(-8 * asum[b]);
        _Pragma("GCC unroll 4")
        for (int g = 0; g < G; g++) {
            const panel_q4_0 *p = (const panel_q4_0 *)(panel + (size_t)g * pstride) + b;
            prefetch_ahead(p, sizeof(panel_q4_0));
            const __m512i w0 = _mm512_loadu_si512(p->q[0]), w1 = _mm512_loadu_si512(p->q[2]);
            __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(w0, m4), e0);
            __m512i s1 = _mm512_and_si512(_mm512_srli_epi16(w0, 4), m4);
            s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), s1, e2);
            s0 = _mm512_dpbusd_epi32(s0, _mm512_and_si512(w1, m4), e1);
            s1 = _mm512_dpbusd_epi32(s1, _mm512_and_si512(_mm512_srli_epi16(w1, 4), m4), e3);
            const __m256i si = _mm256_add_epi32(fold(_mm512_add_epi32(s0, s1)), off);
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p->d));
            acc[g] = _mm256_fmadd_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(si), acc[g]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _mm256_storeu_ps(out + 8 * g, acc[g]);
}

static void gemv_q4_0(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq,
                      const uint8_t *xe, const int16_t *asum, float *out)
{
    int64_t pi = 0;
    for (; pi + 2 <= n_panels; pi += 2)
        gemv_q4_0_g(k / AL_QK, (const uint8_t *)panel + (size_t)pi * pstride, pstride, xq, xe, asum, out + 8 * pi, 2);
    for (; pi < n_panels; pi++)
        gemv_q4_0_g(k / AL_QK, (const uint8_t *)panel + (size_t)pi * pstride, pstride, xq, xe, asum, out + 8 * pi, 1);
}

AI void gemv_q8_0_g(int64_t nb, const uint8_t *panel, size_t pstride, const al_block_q8_0 *xq, const uint8_t *xe,
                    const int16_t *asum, float *out, const int G)
{
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m256 acc[4];
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        acc[g] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *e = xe + (size_t)b * AL_QK * 8;
        __m512i ev[4];
        _Pragma("GCC unroll 4")
        for (int c2 = 0; c2 < 4; c2++)
            ev[c2] = _mm512_load_si512(e + 64 * c2);
        const __m256 xd = _mm256_set1_ps(h2f(xq[b].d));
        const __m256i off = _mm256_set1_epi32(-128 * asum[b]);
        _Pragma("GCC unroll 4")
        for (int g = 0; g < G; g++) {
            const panel_q8_0 *p = (const panel_q8_0 *)(panel + (size_t)g * pstride) + b;
            prefetch_ahead(p, sizeof(panel_q8_0));
            __m512i s[2];
            _Pragma("GCC unroll 4")
            for (int c2 = 0; c2 < 4; c2++) {
                const __m512i w = _mm512_xor_si512(_mm512_loadu_si512(p->q[2 * c2]), bias);
                s[c2 % 2] = _mm512_dpbusd_epi32(c2 < 2 ? _mm512_setzero_si512() : s[c2 % 2], w, ev[c2]);
            }
            const __m256i si = _mm256_add_epi32(fold(_mm512_add_epi32(s[0], s[1])), off);
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p->d));
            acc[g] = _mm256_fmadd_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(si), acc[g]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _mm256_storeu_ps(out + 8 * g, acc[g]);
}

static void gemv_q8_0(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq,
                      const uint8_t *xe, const int16_t *asum, float *out)
{
    int64_t pi = 0;
    for (; pi + 4 <= n_panels; pi += 4)
        gemv_q8_0_g(k / AL_QK, (const uint8_t *)panel + (size_t)pi * pstride, pstride, xq, xe, asum, out + 8 * pi, 4);
    for (; pi < n_panels; pi++)
        gemv_q8_0_g(k / AL_QK, (const uint8_t *)panel + (size_t)pi * pstride, pstride, xq, xe, asum, out + 8 * pi, 1);
}

/* IQ4_XS: per sub-block, its 4 chunk pairs looked up in the shifted
 * codebook of gemm_iq4_xs_nt (two zmm of nibbles), the 128 x activation
 * sum taken out half in each half of the lanes, times the rows' scale. */
static void gemv_iq4_xs(int64_t k, const void *panel, int64_t n_panels, size_t pstride, const void *xq,
                        const uint8_t *xe, const int16_t *asum, float *out)
{
    (void)asum;
    const int64_t nb = k / AL_QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    int8_t kv[16];
    for (int i = 0; i < 16; i++)
        kv[i] = (int8_t)(uint8_t)(al_kv_iq4nl[i] + 128);
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)kv));
    for (int64_t pi = 0; pi < n_panels; pi++) {
        const panel_iq4_xs *p = (const panel_iq4_xs *)((const uint8_t *)panel + (size_t)pi * pstride);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            const al_block_q8_K *x = (const al_block_q8_K *)xq + b;
            const uint8_t *e = xe + (size_t)b * AL_QK_K * 8;
            prefetch_ahead(&p[b], sizeof(panel_iq4_xs));
            __m512i s32 = _mm512_setzero_si512();
            _Pragma("GCC unroll 8")
            for (int j = 0; j < 8; j++) {
                const uint8_t *ej = e + 256 * j;
                const __m512i w0 = _mm512_loadu_si512(p[b].q[j][0]), w1 = _mm512_loadu_si512(p[b].q[j][2]);
                __m512i d0 = _mm512_set1_epi32(-64 * (x->bsums[2 * j] + x->bsums[2 * j + 1]));
                __m512i d1 = _mm512_setzero_si512();
                d0 = _mm512_dpbusd_epi32(d0, _mm512_shuffle_epi8(lut, _mm512_and_si512(w0, m4)), _mm512_load_si512(ej));
                d1 = _mm512_dpbusd_epi32(d1, _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(w0, 4), m4)),
                                         _mm512_load_si512(ej + 128));
                d0 = _mm512_dpbusd_epi32(d0, _mm512_shuffle_epi8(lut, _mm512_and_si512(w1, m4)),
                                         _mm512_load_si512(ej + 64));
                d1 = _mm512_dpbusd_epi32(d1, _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(w1, 4), m4)),
                                         _mm512_load_si512(ej + 192));
                s32 = _mm512_add_epi32(s32, _mm512_mullo_epi32(_mm512_add_epi32(d0, d1), sc8x2(p[b].sc[j])));
            }
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x->d)), _mm256_cvtepi32_ps(fold(s32)), acc);
        }
        _mm256_storeu_ps(out + 8 * pi, acc);
    }
}

/* ------------------------------------------------------------ dispatch */

#define PDISPATCH8(name, call)                                                                                 \
    static void name(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,  \
                     int nt, float *out, int64_t ldo)                                                          \
    {                                                                                                          \
        (void)asum, (void)ss;                                                                                  \
        switch (nt) {                                                                                          \
        case 1: call(1); break;                                                                                \
        case 2: call(2); break;                                                                                \
        case 3: call(3); break;                                                                                \
        case 4: call(4); break;                                                                                \
        case 5: call(5); break;                                                                                \
        case 6: call(6); break;                                                                                \
        case 7: call(7); break;                                                                                \
        default: call(8); break;                                                                               \
        }                                                                                                      \
    }

#define C_Q4_0(n) gemm_q4_0_nt(k, panel, a, as, asum, ss, out, ldo, n)
#define C_Q8_0(n) gemm_q8_0_nt(k, panel, a, as, out, ldo, n)
#define C_Q4_K(n) gemm_k45_nt(k, panel, a, as, asum, ss, out, ldo, n, false)
#define C_Q5_K(n) gemm_k45_nt(k, panel, a, as, asum, ss, out, ldo, n, true)
#define C_Q6_K(n) gemm_q6_K_nt(k, panel, a, as, out, ldo, n)
#define C_IQ4_XS(n) gemm_iq4_xs_nt(k, panel, a, as, out, ldo, n)

PDISPATCH8(gemm_q4_0, C_Q4_0)
PDISPATCH8(gemm_q8_0, C_Q8_0)
PDISPATCH8(gemm_q4_K, C_Q4_K)
PDISPATCH8(gemm_q5_K, C_Q5_K)
PDISPATCH8(gemm_q6_K, C_Q6_K)
PDISPATCH8(gemm_iq4_xs, C_IQ4_XS)

void al_panel_kernels_avx512(al_kernels *ks)
{
    static const struct {
        uint32_t type;
        void (*gemm)(int64_t, const void *, const void *, size_t, const int16_t *, size_t, int, float *, int64_t);
    } g[] = {{AL_TYPE_Q4_0, gemm_q4_0},
             {AL_TYPE_Q8_0, gemm_q8_0},
             {AL_TYPE_Q4_K, gemm_q4_K},
             {AL_TYPE_Q5_K, gemm_q5_K},
             {AL_TYPE_Q6_K, gemm_q6_K},
             {AL_TYPE_IQ4_XS, gemm_iq4_xs}};
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        al_panel_kernel *pk = &ks->panel[g[i].type];
        if (!pk->gemm) /* the AVX2 panels' packing is the layout used here */
            continue;
        pk->gemm = g[i].gemm;
        pk->max_nt = NT;
    }
    static const struct {
        uint32_t type;
        void (*gemv)(int64_t, const void *, int64_t, size_t, const void *, const uint8_t *, const int16_t *, float *);
    } v[] = {{AL_TYPE_Q4_0, gemv_q4_0},
             {AL_TYPE_Q8_0, gemv_q8_0},
             {AL_TYPE_Q4_K, gemv_q4_K},
             {AL_TYPE_Q5_K, gemv_q5_K},
             {AL_TYPE_Q6_K, gemv_q6_K},
             {AL_TYPE_IQ4_XS, gemv_iq4_xs}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (ks->panel[v[i].type].gemm)
            ks->panel[v[i].type].gemv = v[i].gemv;
    /* gemv_q8_0 takes the sums of the activations out (gemm ignores them) */
    if (ks->panel[AL_TYPE_Q8_0].gemm)
        ks->panel[AL_TYPE_Q8_0].needs_asum = true;
}
#else
void al_panel_kernels_avx512(al_kernels *ks)
{
    (void)ks;
}
#endif
