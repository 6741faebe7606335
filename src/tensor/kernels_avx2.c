/* kernels_avx2.c - AVX2/FMA/F16C dot products. Compiled with -mavx2 -mfma
 * -mf16c only; used only after al_cpu_has_avx2(). Each kernel unpacks a
 * weight block once and multiplies it with up to AL_DOT_MAX_NT activation
 * rows (the register tile of prompt processing). Q2_K and Q3_K use the
 * reference kernels. */
#include "tensor/kernels.h"
#include "tensor/quant_iq.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <pthread.h>
#include <string.h>

#include "tensor/avx2_util.h"

/* 32 unsigned (< 128) x 32 signed bytes -> 8 int32 partial sums. */
AI __m256i dot_u8(__m256i x, __m256i y)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* Bit j of the 4 bytes at p -> byte j = 0x10 if set, else 0. */
AI __m256i bits_to_0x10(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i sel = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), sel);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ------------------------------------------------------------ float types */

#define TOK(a, as, t) ((const char *)(a) + (size_t)(t) * (as))

/* 8 elements from element i of a row of type F32, F16 or BF16. */
AI __m256 float8(uint32_t type, const void *row, int64_t i)
{
    if (type == AL_TYPE_F32)
        return _mm256_loadu_ps((const float *)row + i);
    if (type == AL_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const al_half *)row + i)));
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const al_bf16 *)row + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* Element i of a row of type F32, F16 or BF16. */
AI float float1(uint32_t type, const void *row, int64_t i)
{
    if (type == AL_TYPE_F32)
        return ((const float *)row)[i];
    if (type == AL_TYPE_F16)
        return h2f(((const al_half *)row)[i]);
    return al_bf16_to_fp32(((const al_bf16 *)row)[i]);
}

/* F32 / F16 / BF16 weights vs activations of the same type. */
AI void dot_float_nt(uint32_t type, int64_t k, const void *w, const void *a, size_t as, float *out, const int nt)
{
    __m256 acc[AL_DOT_MAX_NT];
    const void *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = TOK(a, as, t);
    }
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const __m256 wv = float8(type, w, i);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(wv, float8(type, x[t], i), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        float s = hsum(acc[t]);
        for (int64_t j = i; j < k; j++)
            s += float1(type, w, j) * float1(type, x[t], j);
        out[t] = s;
    }
}

/* ------------------------------------------------------------ 32-blocks */

/* Q4_0 / Q5_0 / Q8_0: signed weights vs Q8_0. */
AI __m256i q_signed(uint32_t type, const uint8_t *blk, float *d)
{
    if (type == AL_TYPE_Q4_0) {
        const al_block_q4_0 *b = (const al_block_q4_0 *)blk;
        *d = h2f(b->d);
        return _mm256_sub_epi8(nibbles32(b->qs), _mm256_set1_epi8(8));
    }
    if (type == AL_TYPE_Q5_0) {
        const al_block_q5_0 *b = (const al_block_q5_0 *)blk;
        *d = h2f(b->d);
        __m256i q = _mm256_or_si256(nibbles32(b->qs), bits_to_0x10(b->qh));
        return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    const al_block_q8_0 *b = (const al_block_q8_0 *)blk;
    *d = h2f(b->d);
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* One block of a *_0 type against token t's block i: the scaled product
 * added into acc. */
AI __m256 q0_block(__m256i q, __m256i aq, float dw, const al_block_q8_0 *xb, __m256 acc)
{
    __m256i y = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)xb->qs), q);
    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, y), _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(xb->d)), _mm256_cvtepi32_ps(p), acc);
}

/* With few tokens the FMA chain of one accumulator would bound the speed
 * (one block per FMA latency), so blocks alternate between `ch`
 * independent accumulators per token. */
AI void dot_q_0_nt(uint32_t type, size_t bsz, int64_t k, const void *vw, const void *a, size_t as, float *out,
                   const int nt)
{
    enum { CH = 4 };
    const int ch = nt == 1 ? 4 : nt == 2 ? 2 : 1;
    const uint8_t *w = vw;
    __m256 acc[AL_DOT_MAX_NT][CH];
    const al_block_q8_0 *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        _Pragma("GCC unroll 8")
        for (int c = 0; c < CH; c++)
            acc[t][c] = _mm256_setzero_ps();
        x[t] = (const al_block_q8_0 *)TOK(a, as, t);
    }
    const int64_t nb = k / AL_QK;
    int64_t i = 0;
    for (; i + ch <= nb; i += ch) {
        _Pragma("GCC unroll 8")
        for (int c = 0; c < ch; c++) {
            float dw;
            const __m256i q = q_signed(type, w + (i + c) * bsz, &dw);
            const __m256i aq = _mm256_sign_epi8(q, q); /* |q|, shared by all tokens */
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                acc[t][c] = q0_block(q, aq, dw, &x[t][i + c], acc[t][c]);
        }
    }
    for (; i < nb; i++) {
        float dw;
        const __m256i q = q_signed(type, w + i * bsz, &dw);
        const __m256i aq = _mm256_sign_epi8(q, q);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t][0] = q0_block(q, aq, dw, &x[t][i], acc[t][0]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        __m256 s = acc[t][0];
        _Pragma("GCC unroll 8")
        for (int c = 1; c < ch; c++)
            s = _mm256_add_ps(s, acc[t][c]);
        out[t] = hsum(s);
    }
}

/* Q4_1 / Q5_1: unsigned weights + min vs Q8_1. */
AI void dot_q_1_nt(uint32_t type, int64_t k, const void *vw, const void *a, size_t as, float *out, const int nt)
{
    __m256 acc[AL_DOT_MAX_NT];
    float accm[AL_DOT_MAX_NT];
    const al_block_q8_1 *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        accm[t] = 0.0f;
        x[t] = (const al_block_q8_1 *)TOK(a, as, t);
    }
    const int64_t nb = k / AL_QK;
    for (int64_t i = 0; i < nb; i++) {
        float dw, mw;
        __m256i q;
        if (type == AL_TYPE_Q4_1) {
            const al_block_q4_1 *b = (const al_block_q4_1 *)vw + i;
            dw = h2f(b->d);
            mw = h2f(b->m);
            q = nibbles32(b->qs);
        } else {
            const al_block_q5_1 *b = (const al_block_q5_1 *)vw + i;
            dw = h2f(b->d);
            mw = h2f(b->m);
            q = _mm256_or_si256(nibbles32(b->qs), bits_to_0x10(b->qh));
        }
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            __m256i p = dot_u8(q, _mm256_loadu_si256((const __m256i *)x[t][i].qs));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(x[t][i].d)), _mm256_cvtepi32_ps(p), acc[t]);
            accm[t] += mw * h2f(x[t][i].s);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        out[t] = hsum(acc[t]) + accm[t];
}

/* ------------------------------------------------------------ K-quants */

/* Q4_K / Q5_K vs Q8_K: per block, the 8 sub-block scales as int16 pairs
 * broadcast by a byte shuffle, the mins against the bsums in one madd, the
 * weight nibbles unpacked once for all nt tokens. */
AI void dot_k45_nt(uint32_t type, int64_t k, const void *vw, const void *a, size_t as, float *out, const int nt)
{
    __m256 acc[AL_DOT_MAX_NT];
    const al_block_q8_K *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = (const al_block_q8_K *)TOK(a, as, t);
    }
    const int64_t nb = k / AL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    /* byte shuffle duplicating each min byte (8..15) into an int16 pair */
    const __m128i dup_mins = _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *scales, *qs, *qh = NULL;
        float d, dmin;
        if (type == AL_TYPE_Q4_K) {
            const al_block_q4_K *b = (const al_block_q4_K *)vw + i;
            scales = b->scales, qs = b->qs, d = h2f(b->d), dmin = h2f(b->dmin);
        } else {
            const al_block_q5_K *b = (const al_block_q5_K *)vw + i;
            scales = b->scales, qs = b->qs, qh = b->qh, d = h2f(b->d), dmin = h2f(b->dmin);
        }
        const __m128i sm = k4_scales_mins(scales);
        /* each min twice, as 16 int16, against the 16 bsums of 16 */
        const __m256i mins2 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup_mins));
        /* the 8 scales as int16 in both 128-bit lanes */
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        __m256i sumi[AL_DOT_MAX_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm256_setzero_si256();
        const __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 4; j++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (qh) {
                const __m256i one = _mm256_set1_epi8(1);
                __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one);
                __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
            }
            const __m256i s0 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)((4 * j + 1) << 8 | (4 * j))));
            const __m256i s1 = _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)((4 * j + 3) << 8 | (4 * j + 2))));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const __m256i y0 = _mm256_loadu_si256((const __m256i *)(x[t][i].qs + 64 * j));
                const __m256i y1 = _mm256_loadu_si256((const __m256i *)(x[t][i].qs + 64 * j + 32));
                __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s0);
                __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s1);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p0, p1));
            }
        }
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            const __m256i mi = _mm256_madd_epi16(bs, mins2);
            const float yd = x[t][i].d;
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * yd), _mm256_cvtepi32_ps(mi), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        out[t] = hsum(acc[t]);
}

AI void dot_q6_K_nt(int64_t k, const void *vw, const void *a, size_t as, float *out, const int nt)
{
    __m256 acc[AL_DOT_MAX_NT];
    const al_block_q8_K *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = (const al_block_q8_K *)TOK(a, as, t);
    }
    const int64_t nb = k / AL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; i++) {
        const al_block_q6_K *b = (const al_block_q6_K *)vw + i;
        const float d = h2f(b->d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        __m256i sumi[AL_DOT_MAX_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            /* the -32 offset: 32 * sum_g scale_g * bsum_g */
            __m256i bs = _mm256_loadu_si256((const __m256i *)x[t][i].bsums);
            sumi[t] = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
            sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[t]);
        }
        _Pragma("GCC unroll 8")
        for (int n = 0; n < 2; n++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * n));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0c)), 2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xc0)), 2));
            _Pragma("GCC unroll 8")
            for (int p = 0; p < 4; p++) {
                const int g = 8 * n + 2 * p; /* 16-groups g and g+1 */
                const __m256i s = _mm256_set_m128i(_mm_set1_epi16(b->scales[g + 1]), _mm_set1_epi16(b->scales[g]));
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++) {
                    const __m256i y = _mm256_loadu_si256((const __m256i *)(x[t][i].qs + 128 * n + 32 * p));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[p], y), s));
                }
            }
        }
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[t][i].d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        out[t] = hsum(acc[t]);
}

/* ------------------------------------------------------------ quantizers */

/* 32 int32 (4 vectors) -> 32 int8 in element order (saturating). */
AI __m256i pack_i32x32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* roundf (half away from zero), exact for |v| < 2^22. */
AI __m256 round_away(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, v);
    const __m256 r = _mm256_floor_ps(_mm256_add_ps(a, _mm256_set1_ps(0.5f)));
    return _mm256_or_ps(r, _mm256_and_ps(sign, v));
}

static void quant_q8_0(const float *x, al_block_q8_0 *y, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / AL_QK; i++, x += AL_QK) {
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + 8 * j);
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[j]), amax); /* NaN: keeps amax, like fmaxf */
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float d = _mm_cvtss_f32(m) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = (al_half)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 4; j++)
            q[j] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(v[j], vid)));
        _mm256_storeu_si256((__m256i *)y[i].qs, pack_i32x32(q[0], q[1], q[2], q[3]));
    }
}

static void quant_q8_K(const float *x, al_block_q8_K *y, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / AL_QK_K; i++, x += AL_QK_K) {
        __m256 amax = _mm256_setzero_ps();
        for (int j = 0; j < AL_QK_K; j += 8)
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), amax);
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float am = _mm_cvtss_f32(m);
        if (am == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the signed value of the first element of largest magnitude */
        float max = 0.0f;
        const __m256 vam = _mm256_set1_ps(am);
        for (int j = 0; j < AL_QK_K; j += 8) {
            const __m256 xv = _mm256_loadu_ps(x + j);
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, xv), vam, _CMP_EQ_OQ));
            if (mask) {
                max = x[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i bias = _mm256_set1_epi8((char)0x80);
        for (int j = 0; j < AL_QK_K; j += 32) {
            __m256i q[4];
            _Pragma("GCC unroll 8")
            for (int u = 0; u < 4; u++)
                q[u] = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 8 * u))); /* ties to even */
            const __m256i b = pack_i32x32(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), b);
            /* two bsums of 16: sums of 8 unsigned (q + 128) bytes, minus 8*128 */
            const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(b, bias), _mm256_setzero_si256());
            const int64_t s0 = _mm256_extract_epi64(s, 0), s1 = _mm256_extract_epi64(s, 1);
            const int64_t s2 = _mm256_extract_epi64(s, 2), s3 = _mm256_extract_epi64(s, 3);
            y[i].bsums[j / 16] = (int16_t)(s0 + s1 - 2048);
            y[i].bsums[j / 16 + 1] = (int16_t)(s2 + s3 - 2048);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------ fp16 rows */

/* F16C's vcvtps2ph with round-to-nearest-even gives al_fp32_to_fp16's bits
 * for every input (subnormals, overflow to infinity, NaN quieted with its
 * top payload bits); MXCSR's DAZ/FTZ are not set by this program. */
static void to_f16(const float *x, al_half *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m128i b = _mm256_cvtps_ph(_mm256_loadu_ps(x + i + 8), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(y + i), a);
        _mm_storeu_si128((__m128i *)(y + i + 8), b);
    }
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        y[i] = al_fp32_to_fp16(x[i]);
}

static void round_f16(const float *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        y[i] = al_fp16_to_fp32(al_fp32_to_fp16(x[i]));
}

/* ------------------------------------------------------------ dispatch */

#define DISPATCH(name, call)                                                                       \
    static void name(int64_t k, const void *w, const void *a, size_t as, int nt, float *out)      \
    {                                                                                              \
        AL_SWITCH_NT(nt, call)                                                                     \
    }

#define C_F32(n) dot_float_nt(AL_TYPE_F32, k, w, a, as, out, n)
#define C_F16(n) dot_float_nt(AL_TYPE_F16, k, w, a, as, out, n)
#define C_BF16(n) dot_float_nt(AL_TYPE_BF16, k, w, a, as, out, n)
#define C_Q4_0(n) dot_q_0_nt(AL_TYPE_Q4_0, sizeof(al_block_q4_0), k, w, a, as, out, n)
#define C_Q5_0(n) dot_q_0_nt(AL_TYPE_Q5_0, sizeof(al_block_q5_0), k, w, a, as, out, n)
#define C_Q8_0(n) dot_q_0_nt(AL_TYPE_Q8_0, sizeof(al_block_q8_0), k, w, a, as, out, n)
#define C_Q4_1(n) dot_q_1_nt(AL_TYPE_Q4_1, k, w, a, as, out, n)
#define C_Q5_1(n) dot_q_1_nt(AL_TYPE_Q5_1, k, w, a, as, out, n)
#define C_Q4_K(n) dot_k45_nt(AL_TYPE_Q4_K, k, w, a, as, out, n)
#define C_Q5_K(n) dot_k45_nt(AL_TYPE_Q5_K, k, w, a, as, out, n)
#define C_Q6_K(n) dot_q6_K_nt(k, w, a, as, out, n)

DISPATCH(dot_f32, C_F32)
DISPATCH(dot_f16, C_F16)
DISPATCH(dot_bf16, C_BF16)
DISPATCH(dot_q4_0, C_Q4_0)
DISPATCH(dot_q5_0, C_Q5_0)
DISPATCH(dot_q8_0, C_Q8_0)
DISPATCH(dot_q4_1, C_Q4_1)
DISPATCH(dot_q5_1, C_Q5_1)
DISPATCH(dot_q4_K, C_Q4_K)
DISPATCH(dot_q5_K, C_Q5_K)
DISPATCH(dot_q6_K, C_Q6_K)

static al_kernels k_avx2;
static pthread_once_t k_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    k_avx2 = *al_kernels_ref(); /* Q2_K, Q3_K: reference */
    k_avx2.name = "avx2";
    k_avx2.dot[AL_TYPE_F32] = dot_f32;
    k_avx2.dot[AL_TYPE_F16] = dot_f16;
    k_avx2.dot[AL_TYPE_BF16] = dot_bf16;
    k_avx2.dot[AL_TYPE_Q4_0] = dot_q4_0;
    k_avx2.dot[AL_TYPE_Q5_0] = dot_q5_0;
    k_avx2.dot[AL_TYPE_Q8_0] = dot_q8_0;
    k_avx2.dot[AL_TYPE_Q4_1] = dot_q4_1;
    k_avx2.dot[AL_TYPE_Q5_1] = dot_q5_1;
    k_avx2.dot[AL_TYPE_Q4_K] = dot_q4_K;
    k_avx2.dot[AL_TYPE_Q5_K] = dot_q5_K;
    k_avx2.dot[AL_TYPE_Q6_K] = dot_q6_K;
    k_avx2.quant_q8_0 = quant_q8_0;
    k_avx2.quant_q8_K = quant_q8_K;
    k_avx2.to_f16 = to_f16;
    k_avx2.round_f16 = round_f16;
    al_panel_kernels_avx2(&k_avx2);
    al_kernels_iq4_avx2(&k_avx2);
    al_iq_kernels_avx2(&k_avx2);
}

const al_kernels *al_kernels_avx2(void)
{
    pthread_once(&k_once, init);
    return &k_avx2;
}
#else
const al_kernels *al_kernels_avx2(void)
{
    return NULL;
}
#endif
