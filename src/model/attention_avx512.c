/* attention_avx512.c - the attention tile kernel of attention_avx2.c with
 * AVX-512 (F/BW/VL): 16 floats a vector and 32 vector registers, so that
 * a register tile holds 4 query rows x 4 positions of scores, or 4 rows x
 * 64 output dimensions. Same algorithm (blocks of AL_ATTN_TILE_BLOCK
 * positions from multiples of it, online softmax, masks per row), so a
 * token gets the same bits alone as in any tile here too; the bits differ
 * from the AVX2 kernel's (other sums). The one-token attend_f16 (used by
 * encoders) and the half conversion are the AVX2 ones.
 *
 * Compiled with -mavx512f -mavx512bw -mavx512vl (and the AVX2 flags); used
 * only after al_cpu_has_avx512_vnni(), which checks the CPU and the OS's
 * ZMM state. */
#include "model/attention.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__F16C__)
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define BLK AL_ATTN_TILE_BLOCK
#define MAXR AL_ATTN_TILE_MAX_ROWS
#define AI static inline __attribute__((always_inline))

/* e^x lane by lane: x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor series
 * to degree 7, times 2^n by scalef. x < -87.3 (-inf included) gives 0. */
AI __m512 vexp16(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.3f);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.4286068203094172e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps((__mmask16)~tiny, _mm512_scalef_ps(p, n));
}

/* cap * tanh(x / cap): tanh y = 1 - 2 / (e^(2y) + 1). */
AI __m512 vsoftcap16(__m512 x, float cap)
{
    const __m512 e = vexp16(_mm512_mul_ps(x, _mm512_set1_ps(2.0f / cap)));
    const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                   _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    return _mm512_mul_ps(t, _mm512_set1_ps(cap));
}

/* The upper 8 lanes (AVX512F has no extractf32x8 without DQ). */
AI __m256 hi8(__m512 a)
{
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
}

/* Lane i = the sum of a_i's 16 lanes (i < 4). */
AI __m128 hsum4x16(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    const __m256 b0 = _mm256_add_ps(_mm512_castps512_ps256(a0), hi8(a0));
    const __m256 b1 = _mm256_add_ps(_mm512_castps512_ps256(a1), hi8(a1));
    const __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(a2), hi8(a2));
    const __m256 b3 = _mm256_add_ps(_mm512_castps512_ps256(a3), hi8(a3));
    const __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(b0, b1), _mm256_hadd_ps(b2, b3));
    return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

/* dst[p*hd + i] = float(src[p*stride + i]) for p < n, i < hd (hd % 16 ==
 * 0); asks for the next block's rows (n_next of them) meanwhile. */
static void rows_to_f32(float *dst, const uint16_t *src, size_t stride, uint32_t n, uint32_t hd, uint32_t n_next)
{
    for (uint32_t p = 0; p < n; p++) {
        const uint16_t *row = src + (size_t)p * stride;
        for (uint32_t i = 0; i < hd; i += 16)
            _mm512_storeu_ps(dst + (size_t)p * hd + i,
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + i))));
        if (p < n_next)
            for (uint32_t i = 0; i < hd; i += 32)
                _mm_prefetch((const char *)(row + (size_t)BLK * stride + i), _MM_HINT_T0);
    }
}

/* 16 floats of the block's K or V row p at i: from the block's float copy
 * kf (hd floats a row), or converted from the halves of the cache (kh: row
 * p0, stride halves a row; p >= p0) when the block is not staged. Either
 * gives the same bits. */
AI __m512 kv_load(const float *kf, const uint16_t *kh, size_t stride, uint32_t hd, uint32_t p, uint32_t p0, uint32_t i,
                  int direct)
{
    if (direct)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kh + (size_t)(p - p0) * stride + i)));
    return _mm512_loadu_ps(kf + (size_t)p * hd + i);
}

/* S[r*BLK + p] = scale * q_r . k_p for the R rows from r0 (R <= 4) and
 * positions p0..nb-1, 4 at a time (padding up to a multiple of 4): R x 4
 * sums in registers. A row's sums do not depend on R or the other rows.
 * direct: K read from the cache's halves (kh), asking for the next block's
 * rows (those below n_next) meanwhile. */
AI void block_scores_r(const float *const *qr, uint32_t r0, const float *kf, const uint16_t *kh, size_t stride,
                       uint32_t n_next, uint32_t p0, uint32_t nb, uint32_t hd, float scale, float *S, int R,
                       int direct)
{
    const __m128 sc = _mm_set1_ps(scale);
    /* groups of 4 from a multiple of 4 (S's rows hold BLK); positions
     * before p0 or from nb read row p0 or the group's first (all masked) */
    for (uint32_t g = p0 & ~3u; g < nb; g += 4) {
        const uint32_t p = g > p0 ? g : p0;
        const uint32_t p1 = g + 1 < nb && g + 1 > p ? g + 1 : p, p2 = g + 2 < nb && g + 2 > p ? g + 2 : p,
                       p3 = g + 3 < nb && g + 3 > p ? g + 3 : p;
        if (direct)
            for (uint32_t u = g; u < g + 4 && u < n_next; u++)
                for (uint32_t i = 0; i < hd; i += 32)
                    _mm_prefetch((const char *)(kh + (size_t)(u + BLK - p0) * stride + i), _MM_HINT_T0);
        __m512 a[4][4];
        _Pragma("GCC unroll 4")
        for (int u = 0; u < R; u++)
            a[u][0] = a[u][1] = a[u][2] = a[u][3] = _mm512_setzero_ps();
        for (uint32_t i = 0; i < hd; i += 16) {
            const __m512 x0 = kv_load(kf, kh, stride, hd, p, p0, i, direct);
            const __m512 x1 = kv_load(kf, kh, stride, hd, p1, p0, i, direct);
            const __m512 x2 = kv_load(kf, kh, stride, hd, p2, p0, i, direct);
            const __m512 x3 = kv_load(kf, kh, stride, hd, p3, p0, i, direct);
            _Pragma("GCC unroll 4")
            for (int u = 0; u < R; u++) {
                const __m512 y = _mm512_loadu_ps(qr[r0 + (uint32_t)u] + i);
                a[u][0] = _mm512_fmadd_ps(y, x0, a[u][0]);
                a[u][1] = _mm512_fmadd_ps(y, x1, a[u][1]);
                a[u][2] = _mm512_fmadd_ps(y, x2, a[u][2]);
                a[u][3] = _mm512_fmadd_ps(y, x3, a[u][3]);
            }
        }
        _Pragma("GCC unroll 4")
        for (int u = 0; u < R; u++)
            _mm_storeu_ps(S + (size_t)(r0 + (uint32_t)u) * BLK + g,
                          _mm_mul_ps(hsum4x16(a[u][0], a[u][1], a[u][2], a[u][3]), sc));
    }
}

static void block_scores(const float *const *qr, uint32_t r0, uint32_t r1, const float *kf, uint32_t p0, uint32_t nb,
                         uint32_t hd, float scale, float *S)
{
    uint32_t r = r0;
    for (; r + 4 <= r1; r += 4)
        block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 4, 0);
    switch (r1 - r) {
    case 3: block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 3, 0); break;
    case 2: block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 2, 0); break;
    case 1: block_scores_r(qr, r, kf, NULL, 0, 0, p0, nb, hd, scale, S, 1, 0); break;
    default: break;
    }
}

/* The same for at most 4 rows, K read from the halves (kh: row p0). */
static void block_scores_direct(const float *const *qr, uint32_t r0, uint32_t r1, const uint16_t *kh, size_t stride,
                                uint32_t n_next, uint32_t p0, uint32_t nb, uint32_t hd, float scale, float *S)
{
    switch (r1 - r0) {
    case 4: block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 4, 1); break;
    case 3: block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 3, 1); break;
    case 2: block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 2, 1); break;
    case 1: block_scores_r(qr, r0, NULL, kh, stride, n_next, p0, nb, hd, scale, S, 1, 1); break;
    default: break;
    }
}

/* o_r = o_r * corr_r + sum_p S[r*BLK + p] v_p over nv*16 dimensions from d
 * (nv <= 4), for the R rows from r0 (R <= 4); positions p0..nb-1. */
AI void block_values_n(float *const *orow, const float *corr, uint32_t r0, const float *S, const float *vf,
                       const uint16_t *vh, size_t stride, uint32_t n_next, uint32_t p0, uint32_t nb, uint32_t hd,
                       uint32_t d, int nv, int R, int direct)
{
    __m512 o[4][4];
    const float *w[4];
    _Pragma("GCC unroll 4")
    for (int u = 0; u < R; u++) {
        const uint32_t r = r0 + (uint32_t)u;
        const __m512 c = _mm512_set1_ps(corr[r]);
        _Pragma("GCC unroll 4")
        for (int x = 0; x < nv; x++)
            o[u][x] = _mm512_mul_ps(_mm512_loadu_ps(orow[r] + d + 16 * x), c);
        w[u] = S + (size_t)r * BLK;
    }
    for (uint32_t p = p0; p < nb; p++) {
        if (direct && p < n_next)
            _mm_prefetch((const char *)(vh + (size_t)(p + BLK - p0) * stride + d), _MM_HINT_T0);
        __m512 v[4];
        _Pragma("GCC unroll 4")
        for (int x = 0; x < nv; x++)
            v[x] = kv_load(vf, vh, stride, hd, p, p0, d + 16 * (uint32_t)x, direct);
        _Pragma("GCC unroll 4")
        for (int u = 0; u < R; u++) {
            const __m512 wu = _mm512_set1_ps(w[u][p]);
            _Pragma("GCC unroll 4")
            for (int x = 0; x < nv; x++)
                o[u][x] = _mm512_fmadd_ps(wu, v[x], o[u][x]);
        }
    }
    _Pragma("GCC unroll 4")
    for (int u = 0; u < R; u++)
        _Pragma("GCC unroll 4")
        for (int x = 0; x < nv; x++)
            _mm512_storeu_ps(orow[r0 + (uint32_t)u] + d + 16 * x, o[u][x]);
}

/* 64 dimensions at a time, then the last 16, 32 or 48 (hd % 16 == 0). */
AI void block_values_r(float *const *orow, const float *corr, uint32_t r0, const float *S, const float *vf,
                       const uint16_t *vh, size_t stride, uint32_t n_next, uint32_t p0, uint32_t nb, uint32_t hd, int R,
                       int direct)
{
    uint32_t d = 0;
    for (; d + 64 <= hd; d += 64)
        block_values_n(orow, corr, r0, S, vf, vh, stride, n_next, p0, nb, hd, d, 4, R, direct);
    switch ((hd - d) / 16) {
    case 3: block_values_n(orow, corr, r0, S, vf, vh, stride, n_next, p0, nb, hd, d, 3, R, direct); break;
    case 2: block_values_n(orow, corr, r0, S, vf, vh, stride, n_next, p0, nb, hd, d, 2, R, direct); break;
    case 1: block_values_n(orow, corr, r0, S, vf, vh, stride, n_next, p0, nb, hd, d, 1, R, direct); break;
    default: break;
    }
}

static void block_values(float *const *orow, const float *corr, uint32_t r0, uint32_t r1, const float *S,
                         const float *vf, uint32_t p0, uint32_t nb, uint32_t hd)
{
    uint32_t r = r0;
    for (; r + 4 <= r1; r += 4)
        block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 4, 0);
    switch (r1 - r) {
    case 3: block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 3, 0); break;
    case 2: block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 2, 0); break;
    case 1: block_values_r(orow, corr, r, S, vf, NULL, 0, 0, p0, nb, hd, 1, 0); break;
    default: break;
    }
}

static void block_values_direct(float *const *orow, const float *corr, uint32_t r0, uint32_t r1, const float *S,
                                const uint16_t *vh, size_t stride, uint32_t n_next, uint32_t p0, uint32_t nb,
                                uint32_t hd)
{
    switch (r1 - r0) {
    case 4: block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 4, 1); break;
    case 3: block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 3, 1); break;
    case 2: block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 2, 1); break;
    case 1: block_values_r(orow, corr, r0, S, NULL, vh, stride, n_next, p0, nb, hd, 1, 1); break;
    default: break;
    }
}

/* Lanes lo <= i < hi of a 32-lane block, as a bit mask. */
static inline uint32_t lane_range(int32_t lo, int32_t hi)
{
    const uint32_t below_hi = hi >= 32 ? 0xffffffffu : hi <= 0 ? 0u : (1u << hi) - 1u;
    const uint32_t below_lo = lo >= 32 ? 0xffffffffu : lo <= 0 ? 0u : (1u << lo) - 1u;
    return below_hi & ~below_lo;
}

/* As attention_avx2.c's run (see there), 16 lanes wide. */
static void run(const al_attn_tile *t, int32_t p_lo, int32_t p_hi, float *part, float *scratch)
{
    const uint32_t hd = t->hd, nh = t->nh, nr = nh * t->n_tok;
    _Static_assert(BLK == 32, "the masks below are 32 lanes: two vectors of 16");
    float *kvf = scratch;              /* (BLK, hd) the block's K rows, then its V rows, as floats */
    float *S = kvf + (size_t)BLK * hd; /* (nr, BLK) scores, then weights */
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
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    for (int32_t b0 = p_lo > b_first ? p_lo : b_first; b0 < b_end; b0 += BLK) {
        const uint32_t nb = (uint32_t)(n_end - b0 < BLK ? n_end - b0 : BLK);
        const uint32_t lead = b0 < t->kv_p0 ? (uint32_t)(t->kv_p0 - b0) : 0;
        const int32_t j_first = b0 > t->pos0 ? b0 - t->pos0 : 0;
        int32_t j_end = (int32_t)t->n_tok;
        if (win && b0 + (int32_t)nb + win - 1 - t->pos0 < j_end)
            j_end = b0 + (int32_t)nb + win - 1 - t->pos0;
        if (j_end <= j_first)
            continue;
        const uint32_t r_first = (uint32_t)j_first * nh, r_end = (uint32_t)j_end * nh;
        const int32_t after = n_end - b0 - BLK;
        const uint32_t n_next = after <= 0 ? 0 : after < BLK ? (uint32_t)after : BLK;
        const size_t row0 = (size_t)(b0 + (int32_t)lead - t->kv_p0) * t->stride;
        /* One register tile of rows (decode): each K/V row is converted
         * once anyway, straight from the cache; more rows share a float
         * copy of the block. The same products either way. */
        const bool direct = r_end - r_first <= 4;
        const uint16_t *kh = t->k + row0, *vh = t->v + row0; /* the block's row lead */
        if (direct) {
            block_scores_direct(qr, r_first, r_end, kh, t->stride, n_next, lead, nb, hd, t->scale, S);
        } else {
            rows_to_f32(kvf + (size_t)lead * hd, t->k + row0, t->stride, nb - lead, hd, n_next);
            block_scores(qr, r_first, r_end, kvf, lead, nb, hd, t->scale, S);
        }
        for (uint32_t r = r_first; r < r_end; r++) {
            float *s = S + (size_t)r * BLK;
            const int32_t p1 = t->pos0 + (int32_t)(r / nh), lo = win && p1 >= win ? p1 - win + 1 : 0;
            const uint32_t vis = lane_range(lo - b0, p1 + 1 - b0) & lane_range(0, (int32_t)nb);
            __m512 x[2];
            __m512 m = neg_inf;
            for (int g = 0; g < 2; g++) {
                const __mmask16 k = (__mmask16)(vis >> (16 * g));
                x[g] = _mm512_maskz_loadu_ps(k, s + 16 * g);
                if (t->softcap > 0.0f)
                    x[g] = vsoftcap16(x[g], t->softcap);
                x[g] = _mm512_mask_mov_ps(neg_inf, k, x[g]);
                m = _mm512_max_ps(m, x[g]);
            }
            const float m_old = mx[r], m_blk = _mm512_reduce_max_ps(m), m_new = m_blk > m_old ? m_blk : m_old;
            const __m512 mv = _mm512_set1_ps(m_new);
            const __m512 w0 = vexp16(_mm512_sub_ps(x[0], mv)), w1 = vexp16(_mm512_sub_ps(x[1], mv));
            _mm512_storeu_ps(s, w0);
            _mm512_storeu_ps(s + 16, w1);
            corr[r] = _mm512_cvtss_f32(vexp16(_mm512_set1_ps(m_old - m_new)));
            sum[r] = sum[r] * corr[r] + _mm512_reduce_add_ps(_mm512_add_ps(w0, w1));
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

static al_attn_kernels g_k512;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    const al_attn_kernels *avx2 = al_attn_kernels_avx2();
    if (!avx2)
        return;
    g_k512 = *avx2;
    g_k512.attend_tile_f16 = attend_tile;
    g_k512.attend_run_f16 = run;
}

const al_attn_kernels *al_attn_kernels_avx512(void)
{
    pthread_once(&g_once, init);
    return g_k512.attend_tile_f16 ? &g_k512 : NULL;
}
#else
const al_attn_kernels *al_attn_kernels_avx512(void)
{
    return NULL;
}
#endif
