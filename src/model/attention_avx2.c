/* attention_avx2.c - AVX2/FMA/F16C twins of attention.c's kernels.
 * Compiled with -mavx2 -mfma -mf16c only; called only after the run-time
 * check in attention.c. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "model/attention.h"
#include "tensor/avx2_util.h"
#include "tensor/quant.h"

/* e^x lane by lane, for x <= 88: x = n ln2 + r with |r| <= ln2/2, e^r by
 * its Taylor series to degree 7 (truncation below 1e-8 relative), times 2^n
 * built in the exponent field. x < -87.3 (-inf included) gives 0. */
static inline __m256 vexp(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln2 in two parts: n * 0.693145751953125 (16 bits) is exact */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068203094172e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* Lanes i < n set (n <= 8), for masked loads and stores. */
static inline __m256i first_lanes(int32_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* s[p] = e^(s[p] - m) for p < n; returns their sum. */
static float exp_shifted(float *s, int32_t n, float m)
{
    const __m256 mv = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int32_t p = 0;
    for (; p + 8 <= n; p += 8) {
        const __m256 x = vexp(_mm256_sub_ps(_mm256_loadu_ps(s + p), mv));
        _mm256_storeu_ps(s + p, x);
        acc = _mm256_add_ps(acc, x);
    }
    if (p < n) {
        const __m256i lanes = first_lanes(n - p);
        const __m256 x = _mm256_and_ps(vexp(_mm256_sub_ps(_mm256_maskload_ps(s + p, lanes), mv)),
                                       _mm256_castsi256_ps(lanes));
        _mm256_maskstore_ps(s + p, lanes, x);
        acc = _mm256_add_ps(acc, x);
    }
    return hsum(acc);
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

static inline float hmax(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* Lane i = the sum of a_i's lanes. */
static inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    const __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

/* --------------------------------------------------- decode (attend_f16) */

#define PF_POS 8 /* positions ahead whose K/V rows are asked for */

/* Asks for the cache lines of hd halves from row (not necessarily aligned). */
static inline void prefetch_row(const uint16_t *row, uint32_t hd)
{
    for (uint32_t i = 0; i < hd; i += 32)
        _mm_prefetch((const char *)(row + i), _MM_HINT_T0);
    _mm_prefetch((const char *)(row + hd - 1), _MM_HINT_T0);
}

/* Raw scores q_h . k_p of H heads (H <= 4, at q + h*hd) for the P positions
 * p..p+P-1 (P in 1, 2, 4, 8; H*P <= 12), into s + h*n_pos + p times scale:
 * every K element is converted once for the H heads, the H*P sums stay in
 * registers and are reduced four at a time. hd % 8 == 0. Asks for the K
 * rows PF_POS positions on, and for the V rows too unless v is NULL. */
static inline __attribute__((always_inline)) void score_tile(const float *q, const uint16_t *k, const uint16_t *v,
                                                             size_t stride, int32_t p, int32_t n_pos, uint32_t hd,
                                                             float scale, float *s, int H, int P)
{
    __m256 a[4][8];
    const uint16_t *kp[8];
    _Pragma("GCC unroll 8")
    for (int j = 0; j < P; j++) {
        kp[j] = k + (size_t)(p + j) * stride;
        if (p + j + PF_POS < n_pos) {
            prefetch_row(kp[j] + (size_t)PF_POS * stride, hd);
            if (v) /* the V row too, to L2: the V pass then waits less */
                for (uint32_t i = 0; i < hd; i += 32)
                    _mm_prefetch((const char *)(v + (size_t)(p + j + PF_POS) * stride + i), _MM_HINT_T1);
        }
    }
    _Pragma("GCC unroll 4")
    for (int h = 0; h < H; h++)
        _Pragma("GCC unroll 8")
        for (int j = 0; j < P; j++)
            a[h][j] = _mm256_setzero_ps();
    for (uint32_t i = 0; i < hd; i += 8) {
        __m256 x[8];
        _Pragma("GCC unroll 8")
        for (int j = 0; j < P; j++)
            x[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp[j] + i)));
        _Pragma("GCC unroll 4")
        for (int h = 0; h < H; h++) {
            const __m256 y = _mm256_loadu_ps(q + (size_t)h * hd + i);
            _Pragma("GCC unroll 8")
            for (int j = 0; j < P; j++)
                a[h][j] = _mm256_fmadd_ps(y, x[j], a[h][j]);
        }
    }
    const __m128 sc = _mm_set1_ps(scale);
    if (P >= 4) {
        _Pragma("GCC unroll 4")
        for (int h = 0; h < H; h++)
            _Pragma("GCC unroll 2")
            for (int j = 0; j < P; j += 4)
                _mm_storeu_ps(s + (size_t)h * n_pos + p + j,
                              _mm_mul_ps(hsum4(a[h][j], a[h][j + 1], a[h][j + 2], a[h][j + 3]), sc));
    } else if (P == 2) {
        _Pragma("GCC unroll 2")
        for (int h = 0; h < H; h += 2) {
            const int h1 = h + 1 < H ? h + 1 : h;
            const __m128 x = _mm_mul_ps(hsum4(a[h][0], a[h][1], a[h1][0], a[h1][1]), sc);
            _mm_storel_pi((__m64 *)(s + (size_t)h * n_pos + p), x);
            _mm_storeh_pi((__m64 *)(s + (size_t)h1 * n_pos + p), x);
        }
    } else {
        float r[4];
        _mm_storeu_ps(r, _mm_mul_ps(hsum4(a[0][0], a[H > 1 ? 1 : 0][0], a[H > 2 ? 2 : 0][0], a[H > 3 ? 3 : 0][0]), sc));
        _Pragma("GCC unroll 4")
        for (int h = 0; h < H; h++)
            s[(size_t)h * n_pos + p] = r[h];
    }
}

/* All n_pos scores of H heads: P positions at a time, then one by one. */
static inline __attribute__((always_inline)) void scores_h(const float *q, const uint16_t *k, const uint16_t *v,
                                                           size_t stride, int32_t n_pos, uint32_t hd, float scale,
                                                           float *s, int H, int P)
{
    int32_t p = 0;
    for (; p + P <= n_pos; p += P)
        score_tile(q, k, v, stride, p, n_pos, hd, scale, s, H, P);
    for (; p < n_pos; p++)
        score_tile(q, k, v, stride, p, n_pos, hd, scale, s, H, 1);
}

/* o_h[d..d+8W) = sum_p w_h[p] v_p[d..d+8W) * inv_h for H heads, position by
 * position: each V element converted once for the H heads. While at
 * position p it asks for the same lines PF_POS rows on, and near the end
 * for the next slice's first rows. */
static inline __attribute__((always_inline)) void values_slice(const float *w, const uint16_t *v, size_t stride,
                                                               int32_t n_pos, uint32_t hd, uint32_t d,
                                                               const float *inv, float *out, int H, int W)
{
    __m256 o[4][4];
    _Pragma("GCC unroll 4")
    for (int h = 0; h < H; h++)
        _Pragma("GCC unroll 4")
        for (int x = 0; x < W; x++)
            o[h][x] = _mm256_setzero_ps();
    const uint32_t d_next = d + 8 * (uint32_t)W;
    for (int32_t p = 0; p < n_pos; p++) {
        const uint16_t *vp = v + (size_t)p * stride + d;
        if (p + PF_POS < n_pos)
            _mm_prefetch((const char *)(vp + (size_t)PF_POS * stride), _MM_HINT_T0);
        else if (d_next < hd && p + PF_POS - n_pos < n_pos)
            _mm_prefetch((const char *)(v + (size_t)(p + PF_POS - n_pos) * stride + d_next), _MM_HINT_T0);
        _Pragma("GCC unroll 4")
        for (int x = 0; x < W; x++) {
            const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vp + 8 * x)));
            _Pragma("GCC unroll 4")
            for (int h = 0; h < H; h++)
                o[h][x] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + (size_t)h * n_pos + p), vv, o[h][x]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int h = 0; h < H; h++) {
        const __m256 iv = _mm256_set1_ps(inv[h]);
        _Pragma("GCC unroll 4")
        for (int x = 0; x < W; x++)
            _mm256_storeu_ps(out + (size_t)h * hd + d + 8 * x, _mm256_mul_ps(o[h][x], iv));
    }
}

/* The output of H heads: 32 dimensions at a time (16 for H > 2), then 16,
 * then 8. */
static inline __attribute__((always_inline)) void values_h(const float *w, const uint16_t *v, size_t stride,
                                                           int32_t n_pos, uint32_t hd, const float *inv, float *out,
                                                           int H)
{
    uint32_t d = 0;
    if (H <= 2)
        for (; d + 32 <= hd; d += 32)
            values_slice(w, v, stride, n_pos, hd, d, inv, out, H, 4);
    for (; d + 16 <= hd; d += 16)
        values_slice(w, v, stride, n_pos, hd, d, inv, out, H, 2);
    for (; d < hd; d += 8)
        values_slice(w, v, stride, n_pos, hd, d, inv, out, H, 1);
}

static float hmax_n(const float *s, int32_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    int32_t p = 0;
    for (; p + 8 <= n; p += 8)
        m = _mm256_max_ps(m, _mm256_loadu_ps(s + p));
    float r = hmax(m);
    for (; p < n; p++)
        r = s[p] > r ? s[p] : r;
    return r;
}

/* H heads (1..4) that share the K/V rows: scores, softmax, weighted V. */
static inline __attribute__((always_inline)) void attend_group(const float *q, const uint16_t *k, const uint16_t *v,
                                                               size_t stride, int32_t n_pos, uint32_t hd,
                                                               float scale, float *s, float *out, int H, int P)
{
    /* V rows that fit in L2 beside the K rows are asked for early */
    scores_h(q, k, (size_t)n_pos * hd <= 65536 ? v : NULL, stride, n_pos, hd, scale, s, H, P);
    float inv[4];
    for (int h = 0; h < H; h++) {
        float *sh = s + (size_t)h * n_pos;
        inv[h] = 1.0f / exp_shifted(sh, n_pos, hmax_n(sh, n_pos));
    }
    values_h(s, v, stride, n_pos, hd, inv, out, H);
}

/* The query heads in groups of at most 4 (4+...+4 then the rest, 5 as
 * 3+2), each group reading the K/V rows once: per group H x P scores in
 * registers (4x2, 3x4, 2x4, 1x8) and H x 32 (or 16) output dimensions. */
static void attend_f16(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride,
                       int32_t n_pos, uint32_t hd, float scale, float *scores, float *out)
{
    if (hd % 8 != 0 || hd > 4096) {
        al_attend_f16_ref(q, nh, k, v, stride, n_pos, hd, scale, scores, out);
        return;
    }
    for (uint32_t h0 = 0; h0 < nh;) {
        const uint32_t left = nh - h0, g = left == 5 ? 3 : left > 4 ? 4 : left;
        const float *qg = q + (size_t)h0 * hd;
        float *sg = scores + (size_t)h0 * n_pos, *og = out + (size_t)h0 * hd;
        switch (g) {
        case 1:
            attend_group(qg, k, v, stride, n_pos, hd, scale, sg, og, 1, 8);
            break;
        case 2:
            attend_group(qg, k, v, stride, n_pos, hd, scale, sg, og, 2, 4);
            break;
        case 3:
            attend_group(qg, k, v, stride, n_pos, hd, scale, sg, og, 3, 4);
            break;
        default:
            attend_group(qg, k, v, stride, n_pos, hd, scale, sg, og, 4, 2);
            break;
        }
        h0 += g;
    }
}

/* ------------------------------------------------------------ tiles */

#define BLK AL_ATTN_TILE_BLOCK
#define MAXR AL_ATTN_TILE_MAX_ROWS

/* dst[p*hd + i] = float(src[p*stride + i]) for p < n, i < hd (hd % 8 == 0);
 * meanwhile asks for the next block's rows (n_next of them from src +
 * BLK*stride), which the block's products give time to arrive. */
static void rows_to_f32(float *dst, const uint16_t *src, size_t stride, uint32_t n, uint32_t hd, uint32_t n_next)
{
    for (uint32_t p = 0; p < n; p++) {
        const uint16_t *row = src + (size_t)p * stride;
        for (uint32_t i = 0; i < hd; i += 8)
            _mm256_storeu_ps(dst + (size_t)p * hd + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i))));
        if (p < n_next)
            for (uint32_t i = 0; i < hd; i += 32)
                _mm_prefetch((const char *)(row + (size_t)BLK * stride + i), _MM_HINT_T0);
    }
}

/* 8 floats of the block's K or V row p at i: from the block's float copy
 * kf (hd floats a row), or converted from the halves of the cache (kh: row
 * p0, stride halves a row; p >= p0) when the block is not staged. Either
 * gives the same bits. */
static inline __attribute__((always_inline)) __m256 kv_load(const float *kf, const uint16_t *kh, size_t stride,
                                                            uint32_t hd, uint32_t p, uint32_t p0, uint32_t i,
                                                            int direct)
{
    if (direct)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kh + (size_t)(p - p0) * stride + i)));
    return _mm256_loadu_ps(kf + (size_t)p * hd + i);
}

/* S[r*BLK + p] = scale * q_r . k_p for the R rows from r0 (R <= 3) and the
 * block's positions p0..nb-1, in groups of 4 from a multiple of 4 (kf:
 * their K rows as floats; positions before p0 or from nb read row p0 or
 * the group's first, all masked later): R rows x 4 positions in registers.
 * A row's sums do not depend on R or on the other rows, so a token's
 * scores are the same bits in any tile. direct: K read from the cache's
 * halves (kh: row p0), asking for the next block's rows meanwhile. */
static inline __attribute__((always_inline)) void block_scores_r(const float *const *qr, uint32_t r0, const float *kf,
                                                                 const uint16_t *kh, size_t stride, uint32_t n_next,
                                                                 uint32_t p0, uint32_t nb, uint32_t hd, float scale,
                                                                 float *S, int R, int direct)
{
    const __m128 sc = _mm_set1_ps(scale);
    for (uint32_t g = p0 & ~3u; g < nb; g += 4) {
        const uint32_t p = g > p0 ? g : p0;
        const uint32_t p1 = g + 1 < nb && g + 1 > p ? g + 1 : p, p2 = g + 2 < nb && g + 2 > p ? g + 2 : p,
                       p3 = g + 3 < nb && g + 3 > p ? g + 3 : p;
        if (direct)
            for (uint32_t u = g; u < g + 4 && u < n_next; u++)
                for (uint32_t i = 0; i < hd; i += 32)
                    _mm_prefetch((const char *)(kh + (size_t)(u + BLK - p0) * stride + i), _MM_HINT_T0);
        __m256 a[3][4];
        _Pragma("GCC unroll 3")
        for (int u = 0; u < R; u++)
            a[u][0] = a[u][1] = a[u][2] = a[u][3] = _mm256_setzero_ps();
        for (uint32_t i = 0; i < hd; i += 8) {
            const __m256 x0 = kv_load(kf, kh, stride, hd, p, p0, i, direct);
            const __m256 x1 = kv_load(kf, kh, stride, hd, p1, p0, i, direct);
            const __m256 x2 = kv_load(kf, kh, stride, hd, p2, p0, i, direct);
            const __m256 x3 = kv_load(kf, kh, stride, hd, p3, p0, i, direct);
            _Pragma("GCC unroll 3")
            for (int u = 0; u < R; u++) {
                const __m256 y = _mm256_loadu_ps(qr[r0 + (uint32_t)u] + i);
                a[u][0] = _mm256_fmadd_ps(y, x0, a[u][0]);
                a[u][1] = _mm256_fmadd_ps(y, x1, a[u][1]);
                a[u][2] = _mm256_fmadd_ps(y, x2, a[u][2]);
                a[u][3] = _mm256_fmadd_ps(y, x3, a[u][3]);
            }
        }
        _Pragma("GCC unroll 3")
        for (int u = 0; u < R; u++)
            _mm_storeu_ps(S + (size_t)(r0 + (uint32_t)u) * BLK + g,
                          _mm_mul_ps(hsum4(a[u][0], a[u][1], a[u][2], a[u][3]), sc));
    }
}

static void block_scores(const float *const *qr, uint32_t r0, uint32_t r1, const float *kf, uint32_t p0, uint32_t nb,
                         uint32_t hd, float scale, float *S)
{
    uint32_t r = r0;
    for (; r + 3 <= r1; r += 3)
        block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 3, 0);
    if (r1 - r == 2)
        block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 2, 0);
    else if (r1 - r == 1)
        block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 1, 0);
}

/* The same for at most 3 rows, K read from the halves (kh: row p0). */
static void block_scores_direct(const float *const *qr, uint32_t r0, uint32_t r1, const uint16_t *kh, size_t stride,
                                uint32_t n_next, uint32_t p0, uint32_t nb, uint32_t hd, float scale, float *S)
{
    if (r1 - r0 == 3)
        block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 3, 1);
    else if (r1 - r0 == 2)
        block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 2, 1);
    else if (r1 - r0 == 1)
        block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 1, 1);
}

/* o_r = o_r * corr_r + sum_p S[r*BLK + p] v_p over nv*8 dimensions from d
 * (nv <= 4), for the R rows from r0 (R <= 3): each V load feeds R FMAs,
 * each weight broadcast nv. Positions p0..nb-1; direct: V read from the
 * cache's halves (vh: row p0). */
static inline __attribute__((always_inline)) void block_values_n(float *const *orow, const float *corr, uint32_t r0,
                                                                 const float *S, const float *vf, const uint16_t *vh,
                                                                 size_t stride, uint32_t n_next, uint32_t p0,
                                                                 uint32_t nb, uint32_t hd, uint32_t d, int nv, int R,
                                                                 int direct)
{
    __m256 o[3][4];
    const float *w[3];
    _Pragma("GCC unroll 3")
    for (int u = 0; u < R; u++) {
        const uint32_t r = r0 + (uint32_t)u;
        const __m256 c = _mm256_set1_ps(corr[r]);
        _Pragma("GCC unroll 4")
        for (int x = 0; x < nv; x++)
            o[u][x] = _mm256_mul_ps(_mm256_loadu_ps(orow[r] + d + 8 * x), c);
        w[u] = S + (size_t)r * BLK;
    }
    for (uint32_t p = p0; p < nb; p++) {
        if (direct && p < n_next)
            _mm_prefetch((const char *)(vh + (size_t)(p + BLK - p0) * stride + d), _MM_HINT_T0);
        __m256 v[4];
        _Pragma("GCC unroll 4")
        for (int x = 0; x < nv; x++)
            v[x] = kv_load(vf, vh, stride, hd, p, p0, d + 8 * (uint32_t)x, direct);
        _Pragma("GCC unroll 3")
        for (int u = 0; u < R; u++) {
            const __m256 wu = _mm256_broadcast_ss(w[u] + p);
            _Pragma("GCC unroll 4")
            for (int x = 0; x < nv; x++)
                o[u][x] = _mm256_fmadd_ps(wu, v[x], o[u][x]);
        }
    }
    _Pragma("GCC unroll 3")
    for (int u = 0; u < R; u++)
        _Pragma("GCC unroll 4")
        for (int x = 0; x < nv; x++)
            _mm256_storeu_ps(orow[r0 + (uint32_t)u] + d + 8 * x, o[u][x]);
}

/* 32 dimensions at a time, then 16 (hd % 16 == 0). */
static inline __attribute__((always_inline)) void block_values_r(float *const *orow, const float *corr, uint32_t r0,
                                                                 const float *S, const float *vf, const uint16_t *vh,
                                                                 size_t stride, uint32_t n_next, uint32_t p0,
                                                                 uint32_t nb, uint32_t hd, int R, int direct)
{
    uint32_t d = 0;
    for (; d + 32 <= hd; d += 32)
        block_values_n(orow, corr, r0, S, vf, vh, stride, n_next, p0, nb, hd, d, 4, R, direct);
    if (d < hd)
        block_values_n(orow, corr, r0, S, vf, vh, stride, n_next, p0, nb, hd, d, 2, R, direct);
}

static void block_values(float *const *orow, const float *corr, uint32_t r0, uint32_t r1, const float *S,
                         const float *vf, uint32_t p0, uint32_t nb, uint32_t hd)
{
    uint32_t r = r0;
    for (; r + 3 <= r1; r += 3)
        block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 3, 0);
    if (r1 - r == 2)
        block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 2, 0);
    else if (r1 - r == 1)
        block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 1, 0);
}

static void block_values_direct(float *const *orow, const float *corr, uint32_t r0, uint32_t r1, const float *S,
                                const uint16_t *vh, size_t stride, uint32_t n_next, uint32_t p0, uint32_t nb,
                                uint32_t hd)
{
    if (r1 - r0 == 3)
        block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 3, 1);
    else if (r1 - r0 == 2)
        block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 2, 1);
    else if (r1 - r0 == 1)
        block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 1, 1);
}

/* cap * tanh(x / cap) lane by lane: tanh y = 1 - 2 / (e^(2y) + 1), which
 * keeps its absolute error near 1e-7 (a score's error is what matters). */
static inline __m256 vsoftcap(__m256 x, float cap)
{
    const __m256 e = vexp(_mm256_mul_ps(x, _mm256_set1_ps(2.0f / cap)));
    const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                   _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    return _mm256_mul_ps(t, _mm256_set1_ps(cap));
}

/* Flash-attention style: the tile's rows (token-major: r = j*nh + h) walk
 * the positions in blocks of BLK that start at multiples of BLK. Per block
 * the K rows are converted to floats once, the scores of every row that
 * sees any of the block are computed (and capped), each row's running max
 * moves, its earlier output and sum are rescaled by e^(old max - new max),
 * and the V rows (converted once) are added with weights e^(score - max).
 * Positions a row must not see weigh 0. This runs the blocks from p_lo
 * to p_hi on the part's state (unnormalised sums, maxima, sums);
 * attend_tile runs it segment by segment and folds the parts, sinks in
 * the totals. Each row's arithmetic depends only on its own token and
 * position, so a token gets the same bits alone (decode, or its segments
 * on several threads) as in a prompt's tile. */
static void run(const al_attn_tile *t, int32_t p_lo, int32_t p_hi, float *part, float *scratch)
{
    const uint32_t hd = t->hd, nh = t->nh, nr = nh * t->n_tok;
    float *kvf = scratch;               /* (BLK, hd) the block's K rows, then its V rows, as floats */
    float *S = kvf + (size_t)BLK * hd;  /* (nr, BLK) scores, then weights */
    float *corr = S + (size_t)nr * BLK; /* (nr) this block's rescale of the row's output */
    float *mx = part + (size_t)nr * hd; /* (nr) running max of each row's scores */
    float *sum = mx + nr;               /* (nr) running sum of e^(score - max) */
    const float *qr[MAXR];
    float *orow[MAXR];
    for (uint32_t r = 0; r < nr; r++) {
        qr[r] = t->q + (size_t)(r / nh) * t->ldq + (size_t)(r % nh) * hd;
        orow[r] = part + (size_t)r * hd;
    }
    const int32_t n_end = t->pos0 + (int32_t)t->n_tok, win = (int32_t)t->window;
    const int32_t b_end = p_hi < n_end ? p_hi : n_end, b_first = t->kv_p0 / BLK * BLK;
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int32_t b0 = p_lo > b_first ? p_lo : b_first; b0 < b_end; b0 += BLK) {
        const uint32_t nb = (uint32_t)(n_end - b0 < BLK ? n_end - b0 : BLK);
        /* positions before kv_p0 have no rows: the first block starts at lead */
        const uint32_t lead = b0 < t->kv_p0 ? (uint32_t)(t->kv_p0 - b0) : 0;
        /* tokens j_first..j_end-1 see some of this block: the earlier ones
         * end before it, the later ones' windows start after it */
        const int32_t j_first = b0 > t->pos0 ? b0 - t->pos0 : 0;
        int32_t j_end = (int32_t)t->n_tok;
        if (win && b0 + (int32_t)nb + win - 1 - t->pos0 < j_end)
            j_end = b0 + (int32_t)nb + win - 1 - t->pos0;
        if (j_end <= j_first)
            continue;
        const uint32_t r_first = (uint32_t)j_first * nh, r_end = (uint32_t)j_end * nh;
        const int32_t after = n_end - b0 - BLK; /* positions in the blocks after this one */
        const uint32_t n_next = after <= 0 ? 0 : after < BLK ? (uint32_t)after : BLK;
        const size_t row0 = (size_t)(b0 + (int32_t)lead - t->kv_p0) * t->stride;
        /* One register tile of rows (decode): each K/V row is converted
         * once anyway, straight from the cache; more rows share a float
         * copy of the block. The same products either way. */
        const bool direct = r_end - r_first <= 3;
        const uint16_t *kh = t->k + row0, *vh = t->v + row0; /* the block's row lead */
        if (direct) {
            block_scores_direct(qr, r_first, r_end, kh, t->stride, n_next, lead, nb, hd, t->scale, S);
        } else {
            rows_to_f32(kvf + (size_t)lead * hd, t->k + row0, t->stride, nb - lead, hd, n_next);
            block_scores(qr, r_first, r_end, kvf, lead, nb, hd, t->scale, S);
        }
        for (uint32_t r = r_first; r < r_end; r++) {
            float *s = S + (size_t)r * BLK;
            /* positions from..to-1 of the block are visible to row r (at least one) */
            const int32_t p1 = t->pos0 + (int32_t)(r / nh), lo = win && p1 >= win ? p1 - win + 1 : 0;
            const int32_t to = p1 + 1 - b0 < (int32_t)nb ? p1 + 1 - b0 : (int32_t)nb;
            const int32_t from = lo > b0 ? lo - b0 : 0;
            __m256 m = neg_inf;
            for (uint32_t p = 0; p < nb; p += 8) {
                const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32((int32_t)p));
                const __m256i vis = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(from), idx),
                                                        _mm256_cmpgt_epi32(_mm256_set1_epi32(to), idx));
                __m256 x = _mm256_maskload_ps(s + p, vis);
                if (t->softcap > 0.0f)
                    x = vsoftcap(x, t->softcap);
                x = _mm256_blendv_ps(neg_inf, x, _mm256_castsi256_ps(vis));
                _mm256_storeu_ps(s + p, x);
                m = _mm256_max_ps(m, x);
            }
            const float m_old = mx[r], m_blk = hmax(m), m_new = m_blk > m_old ? m_blk : m_old;
            const __m256 mv = _mm256_set1_ps(m_new);
            __m256 acc = _mm256_setzero_ps();
            for (uint32_t p = 0; p < nb; p += 8) {
                const __m256 w = vexp(_mm256_sub_ps(_mm256_loadu_ps(s + p), mv));
                _mm256_storeu_ps(s + p, w);
                acc = _mm256_add_ps(acc, w);
            }
            /* e^(-inf) = 0 on a row's first block without a sink: nothing to rescale yet */
            corr[r] = _mm256_cvtss_f32(vexp(_mm256_set1_ps(m_old - m_new)));
            sum[r] = sum[r] * corr[r] + hsum(acc);
            mx[r] = m_new;
        }
        if (direct) {
            block_values_direct(orow, corr, r_first, r_end, S, vh, t->stride, n_next, lead, nb, hd);
        } else {
            rows_to_f32(kvf + (size_t)lead * hd, t->v + row0, t->stride, nb - lead, hd, n_next);
            block_values(orow, corr, r_first, r_end, S, kvf, lead, nb, hd);
        }
    }
}

static void attend_tile(const al_attn_tile *t, float *scratch)
{
    al_attn_tile_by_segments(t, scratch, run);
}

static const al_attn_kernels k_avx2 = {to_f16, attend_f16, attend_tile, run};

const al_attn_kernels *al_attn_kernels_avx2(void)
{
    return &k_avx2;
}
