/* gemm_avx2.c - AVX2 panel kernels: every matmul of weights packed at
 * model load (one token or many), and prompt batches of raw weights.
 *
 * A panel holds AL_PANEL_ROWS = 8 weight rows interleaved so that each
 * 32-bit lane of a vector belongs to one row: chunk c of a 32-element group
 * is 8 rows x 4 consecutive weights. One token's 4 activation bytes are
 * broadcast to all lanes, and vpmaddubsw multiplies them with 8 rows at
 * once: the sums end in the lanes of their rows, the per-block scales of the
 * 8 rows are one vector, and no horizontal reduction is needed (the dot
 * kernels spend most of their work on those per row and token).
 *
 * Weights are unsigned in the panel (Q4_0 and Q4_K: the nibble, Q6_K: the
 * 6-bit value, Q8_0: |q| with the signs kept apart), activations signed,
 * so the offsets are taken out with sums of the activations (asum, or the
 * bsums of Q8_K).
 *
 * Compiled with -mavx2 -mfma -mf16c only; used only after
 * al_cpu_has_avx2(). Packing a panel costs about as much as one token's
 * dot products with it, so for weights not packed at load matmul.c packs
 * per call only for batches of many tokens. */
#include "tensor/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <stddef.h>
#include <string.h>

#include "tensor/avx2_util.h"

#define PR AL_PANEL_ROWS

/* ------------------------------------------------------------ Q4_0 / Q8_0 */

/* Panel block of the 32-element types, exactly the size of the 8 blocks
 * it holds: the 8 rows' scales (halves), then Q4_0: q[v] = bytes 4v..4v+3
 * of the rows' qs (low nibbles: elements 4v..4v+3, high: 16+4v..), Q8_0:
 * q[c] = elements 4c..4c+3 (signed). */
typedef struct {
    al_half d[PR];
    uint8_t q[4][32];
} panel_q4_0;
typedef struct {
    al_half d[PR];
    int8_t q[8][32];
} panel_q8_0;
_Static_assert(sizeof(panel_q4_0) == PR * sizeof(al_block_q4_0), "Q4_0 panel size");
_Static_assert(sizeof(panel_q8_0) == PR * sizeof(al_block_q8_0), "Q8_0 panel size");

static size_t bytes_q4_0(int64_t k)
{
    return (size_t)(k / AL_QK) * sizeof(panel_q4_0);
}

static size_t bytes_q8_0(int64_t k)
{
    return (size_t)(k / AL_QK) * sizeof(panel_q8_0);
}

static void pack_q4_0(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_q4_0 *p = panel;
    for (int64_t b = 0; b < k / AL_QK; b++) {
        __m256i r[8], o[8];
        for (int i = 0; i < PR; i++) {
            const al_block_q4_0 *blk = (const al_block_q4_0 *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = blk->d;
            r[i] = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)blk->qs)); /* words 0..3 */
        }
        interleave8(r, o);
        for (int v = 0; v < 4; v++)
            _mm256_storeu_si256((__m256i *)p[b].q[v], o[v]);
    }
}

static void pack_q8_0(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_q8_0 *p = panel;
    for (int64_t b = 0; b < k / AL_QK; b++) {
        __m256i r[8], o[8];
        for (int i = 0; i < PR; i++) {
            const al_block_q8_0 *blk = (const al_block_q8_0 *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = blk->d;
            r[i] = _mm256_loadu_si256((const __m256i *)blk->qs);
        }
        interleave8(r, o);
        for (int c = 0; c < 8; c++)
            _mm256_storeu_si256((__m256i *)p[b].q[c], o[c]);
    }
}

/* Q4_0: the 8 chunk products summed in int16 (|nibble x q| pairs <= 3810,
 * 8 of them <= 30480), one madd, minus 8 * sum(activations). */
AI void gemm_q4_0_nt(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                     float *out, int64_t ldo, const int nt)
{
    const panel_q4_0 *p = panel;
    const int64_t nb = k / AL_QK;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s16[AL_PANEL_NT];
        const al_block_q8_0 *x[AL_PANEL_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_0 *)((const char *)a + (size_t)t * as) + b;
            s16[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_q4_0));
        _Pragma("GCC unroll 4")
        for (int v = 0; v < 4; v++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)p[b].q[v]);
            const __m256i lo = _mm256_and_si256(raw, _mm256_set1_epi8(0x0f));
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0f));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const __m256i pl = _mm256_maddubs_epi16(lo, bcast4(x[t]->qs + 4 * v));
                const __m256i ph = _mm256_maddubs_epi16(hi, bcast4(x[t]->qs + 16 + 4 * v));
                s16[t] = pin(_mm256_add_epi16(s16[t], _mm256_add_epi16(pl, ph)));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            __m256i s = _mm256_madd_epi16(s16[t], ones);
            s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * asum[(size_t)t * ss + b]));
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(h2f(x[t]->d))), _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* Q8_0: |w| x sign(q, w) pairs reach 32258, so each chunk is widened. */
AI void gemm_q8_0_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_q8_0 *p = panel;
    const int64_t nb = k / AL_QK;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s32[AL_PANEL_NT];
        const al_block_q8_0 *x[AL_PANEL_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_0 *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_q8_0));
        _Pragma("GCC unroll 2")
        for (int c = 0; c < 8; c++) {
            const __m256i sg = _mm256_loadu_si256((const __m256i *)p[b].q[c]);
            const __m256i w = _mm256_sign_epi8(sg, sg); /* |q| (-128 -> 128 as unsigned) */
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const __m256i y = _mm256_sign_epi8(bcast4(x[t]->qs + 4 * c), sg);
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), ones));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(h2f(x[t]->d))), _mm256_cvtepi32_ps(s32[t]),
                                     acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* ------------------------------------------------------------ Q4_K */

/* Panel super-block of Q4_K, compact (the nibbles stay packed, so a panel
 * is 3% larger than the 8 rows it holds and can replace them for good):
 * d and dmin of the 8 rows, sc[s][r] / mn[s][r] = scale / min of
 * sub-block s of row r (6 bits, unpacked), q[j][c] = bytes 32j+4c..+3 of
 * the 8 rows' qs (low nibbles: sub-block 2j, high: 2j+1). */
typedef struct {
    al_half d[PR], dmin[PR];
    int8_t sc[8][PR];
    int8_t mn[8][PR];
    uint8_t q[4][8][32];
} panel_q4_K;
_Static_assert(sizeof(panel_q4_K) % 32 == 0 && offsetof(panel_q4_K, q) % 32 == 0, "Q4_K panel alignment");
/* Q5_K: the same, then qh[c] = bytes 4c..4c+3 of the rows' qh (bit s of
 * byte l: the fifth bit of element 32s + l). */
typedef struct {
    panel_q4_K k4;
    uint8_t qh[8][32];
} panel_q5_K;

static size_t bytes_q4_K(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_q4_K);
}

/* Q4_K and Q5_K blocks share the head (d, dmin, scales) and qs. */
AI void pack_k45(int64_t k, const uint8_t *w, size_t row_bytes, void *panel, const bool q5)
{
    const size_t bsz = q5 ? sizeof(al_block_q5_K) : sizeof(al_block_q4_K);
    const size_t psz = q5 ? sizeof(panel_q5_K) : sizeof(panel_q4_K);
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        panel_q4_K *p = (panel_q4_K *)((uint8_t *)panel + (size_t)b * psz);
        const uint8_t *qs[PR], *qh[PR];
        for (int i = 0; i < PR; i++) {
            const uint8_t *blk = w + (size_t)i * row_bytes + (size_t)b * bsz;
            const al_block_q5_K *b5 = (const al_block_q5_K *)blk;
            const al_block_q4_K *b4 = (const al_block_q4_K *)blk;
            p->d[i] = b4->d;
            p->dmin[i] = b4->dmin;
            qs[i] = q5 ? b5->qs : b4->qs;
            qh[i] = b5->qh;
            uint8_t sm[16]; /* scales 0..7, mins 0..7 (6 bits each) */
            _mm_storeu_si128((__m128i *)sm, k4_scales_mins(b4->scales));
            for (int s = 0; s < 8; s++) {
                p->sc[s][i] = (int8_t)sm[s];
                p->mn[s][i] = (int8_t)sm[8 + s];
            }
        }
        __m256i r[8], o[8];
        for (int j = 0; j < 4; j++) {
            for (int i = 0; i < PR; i++)
                r[i] = _mm256_loadu_si256((const __m256i *)(qs[i] + 32 * j));
            interleave8(r, o);
            for (int c = 0; c < 8; c++)
                _mm256_store_si256((__m256i *)p->q[j][c], o[c]);
        }
        if (q5) {
            for (int i = 0; i < PR; i++)
                r[i] = _mm256_loadu_si256((const __m256i *)qh[i]);
            interleave8(r, o);
            for (int c = 0; c < 8; c++)
                _mm256_store_si256((__m256i *)((panel_q5_K *)p)->qh[c], o[c]);
        }
    }
}

static void pack_q4_K(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    pack_k45(k, w, row_bytes, panel, false);
}

static size_t bytes_q5_K(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_q5_K);
}

static void pack_q5_K(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    pack_k45(k, w, row_bytes, panel, true);
}

/* Per sub-block: the chunk products in int16 (Q4_K: 8 of them, <=
 * 2*15*127*8 = 30480; Q5_K, values to 31: 4, <= 31496), a madd with the
 * rows' scales; the mins against the activation sums of 32 in 4 madds.
 * The low and high nibbles go in separate passes over the chunks (fewer
 * live registers). */
AI void gemm_k45_nt(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                    float *out, int64_t ldo, const int nt, const bool q5)
{
    const size_t psz = q5 ? sizeof(panel_q5_K) : sizeof(panel_q4_K);
    const int64_t nb = k / AL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s32[AL_PANEL_NT];
        const al_block_q8_K *x[AL_PANEL_NT];
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
            const __m128i g = _mm_loadl_epi64((const __m128i *)p->sc[s]);
            const __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(g, g)); /* each row's scale twice */
            const int per = q5 ? 4 : 8; /* chunks per int16 sum */
            for (int c0 = 0; c0 < 8; c0 += per) {
                __m256i s16[AL_PANEL_NT];
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++)
                    s16[t] = _mm256_setzero_si256();
                _Pragma("GCC unroll 8")
                for (int u = 0; u < per; u++) {
                    const int c = c0 + u;
                    const __m256i v = _mm256_load_si256((const __m256i *)p->q[j][c]);
                    __m256i w = _mm256_and_si256(_mm256_srli_epi16(v, shift), m4);
                    if (q5) {
                        const __m256i h = _mm256_load_si256((const __m256i *)((const panel_q5_K *)p)->qh[c]);
                        const __m256i bit = _mm256_and_si256(_mm256_srl_epi16(h, sh), _mm256_set1_epi8(1));
                        w = _mm256_or_si256(w, _mm256_slli_epi16(bit, 4));
                    }
                    _Pragma("GCC unroll 8")
                    for (int t = 0; t < nt; t++)
                        s16[t] = pin(_mm256_add_epi16(s16[t],
                                                      _mm256_maddubs_epi16(w, bcast4(x[t]->qs + 32 * s + 4 * c))));
                }
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++)
                    s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], sc));
            }
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

/* Panel super-block of Q6_K, compact (1% larger than its 8 rows): d of
 * the rows, sc[g][r] = scale of group g (16 elements) of row r, and the
 * rows' ql / qh bytes interleaved 4 at a time: ql[n][h][c] = bytes
 * 64n+32h+4c..+3, qh[n][c] = bytes 32n+4c..+3. */
typedef struct {
    float d[PR];
    int8_t sc[16][PR];
    uint8_t ql[2][2][8][32];
    uint8_t qh[2][8][32];
} panel_q6_K;

static size_t bytes_q6_K(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_q6_K);
}

static void pack_q6_K(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_q6_K *p = panel;
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        const al_block_q6_K *blk[PR];
        for (int i = 0; i < PR; i++) {
            blk[i] = (const al_block_q6_K *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = h2f(blk[i]->d);
            for (int g = 0; g < 16; g++)
                p[b].sc[g][i] = blk[i]->scales[g];
        }
        __m256i r[8], o[8];
        for (int n = 0; n < 2; n++) {
            for (int h = 0; h < 2; h++) {
                for (int i = 0; i < PR; i++)
                    r[i] = _mm256_loadu_si256((const __m256i *)(blk[i]->ql + 64 * n + 32 * h));
                interleave8(r, o);
                for (int c = 0; c < 8; c++)
                    _mm256_store_si256((__m256i *)p[b].ql[n][h][c], o[c]);
            }
            for (int i = 0; i < PR; i++)
                r[i] = _mm256_loadu_si256((const __m256i *)(blk[i]->qh + 32 * n));
            interleave8(r, o);
            for (int c = 0; c < 8; c++)
                _mm256_store_si256((__m256i *)p[b].qh[n][c], o[c]);
        }
    }
}

/* Chunk c of sub-block s = 4n + part (elements 128n + 32part + 4c..+3 of
 * the 8 rows) as unsigned 6-bit values: the low or high nibble of ql and
 * bits 2part, 2part+1 of qh moved to bits 4, 5. */
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

/* Two chunk products (pairs <= 2*63*127 = 16002) add up in int16, then
 * one madd with the group's scales; the offset is 32 * the sum of scale x
 * the activation sums of 16 (bsums). */
AI void gemm_q6_K_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_q6_K *p = panel;
    const int64_t nb = k / AL_QK_K;
    /* up to 4 tokens the sums stay in registers; with more, in out (once
     * per super-block), which leaves the registers to s32 */
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        if (nt <= AL_PANEL_NT)
            acc[t % AL_PANEL_NT] = _mm256_setzero_ps();
        else
            _mm256_storeu_ps(out + t * ldo, _mm256_setzero_ps());
    }
    for (int64_t b = 0; b < nb; b++) {
        __m256i s32[AL_PANEL_NT_MAX];
        const al_block_q8_K *x[AL_PANEL_NT_MAX];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_q6_K));
        /* the -32 offset: lane r gets 32 * sum_g sc(r,g) * bsum_g; the
         * scales of groups 2j, 2j+1 as int16 pairs per row */
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 8; j++) {
            const __m128i g0 = _mm_loadl_epi64((const __m128i *)p[b].sc[2 * j]);
            const __m128i g1 = _mm_loadl_epi64((const __m128i *)p[b].sc[2 * j + 1]);
            const __m256i pair = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(g0, g1));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s32[t] = pin(_mm256_sub_epi32(
                    s32[t], _mm256_slli_epi32(_mm256_madd_epi16(pair, bcast2x16(x[t]->bsums + 2 * j)), 5)));
        }
        _Pragma("GCC unroll 8")
        for (int s = 0; s < 8; s++) {
            const int n = s / 4, part = s % 4;
            /* an opaque copy of the block's address per sub-block: gcc
             * would otherwise load each qh vector once for the 4 parts
             * that use it and keep (spill) them all */
            const panel_q6_K *pb = pin_ptr(&p[b]);
            _Pragma("GCC unroll 2")
            for (int gh = 0; gh < 2; gh++) {
                const __m128i g = _mm_loadl_epi64((const __m128i *)pb->sc[2 * s + gh]);
                const __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(g, g)); /* each row's scale twice */
                _Pragma("GCC unroll 2")
                for (int c0 = 4 * gh; c0 < 4 * gh + 4; c0 += 2) {
                    const __m256i w0 = q6_chunk(pb, n, part, c0), w1 = q6_chunk(pb, n, part, c0 + 1);
                    _Pragma("GCC unroll 8")
                    for (int t = 0; t < nt; t++) {
                        const int8_t *y = x[t]->qs + 32 * s + 4 * c0;
                        const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast4(y)),
                                                             _mm256_maddubs_epi16(w1, bcast4(y + 4)));
                        s32[t] = pin(_mm256_add_epi32(s32[t], _mm256_madd_epi16(s01, sc)));
                    }
                }
            }
        }
        const __m256 d = _mm256_load_ps(p[b].d);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(x[t]->d));
            if (nt <= AL_PANEL_NT)
                acc[t % AL_PANEL_NT] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s32[t]), acc[t % AL_PANEL_NT]);
            else
                _mm256_storeu_ps(out + t * ldo,
                                 _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s32[t]), _mm256_loadu_ps(out + t * ldo)));
        }
    }
    if (nt > AL_PANEL_NT)
        return;
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t % AL_PANEL_NT]);
}

/* ------------------------------------------------------------ F16 / BF16 */

/* Panel of the 16-bit float types, exactly the size of its 8 rows: element
 * i of rows 0..7 at halves 8i..8i+7, so one load and one conversion give
 * element i of the 8 rows in the lanes of their rows. The activations come
 * as F32 holding their F16 / BF16 values (al_panel_f32_acts: the driver rounds them
 * once per matmul), so that a token's element is one broadcast load and
 * each product is the same as the dot kernels' (half x half in F32). */
static size_t bytes_f16(int64_t k)
{
    return (size_t)k * PR * sizeof(al_half);
}

static void pack_f16(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    uint16_t *p = panel;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m128i r[8], a[8], b[8];
        for (int j = 0; j < PR; j++)
            r[j] = _mm_loadu_si128((const __m128i *)(w + (size_t)j * row_bytes + (size_t)i * 2));
        for (int j = 0; j < 8; j += 2) { /* rows j, j+1: elements 0..3, 4..7 interleaved */
            a[j] = _mm_unpacklo_epi16(r[j], r[j + 1]);
            a[j + 1] = _mm_unpackhi_epi16(r[j], r[j + 1]);
        }
        for (int j = 0; j < 8; j += 4) { /* rows j..j+3: element pairs (0,1) (2,3) (4,5) (6,7) */
            b[j] = _mm_unpacklo_epi32(a[j], a[j + 2]);
            b[j + 1] = _mm_unpackhi_epi32(a[j], a[j + 2]);
            b[j + 2] = _mm_unpacklo_epi32(a[j + 1], a[j + 3]);
            b[j + 3] = _mm_unpackhi_epi32(a[j + 1], a[j + 3]);
        }
        for (int e = 0; e < 4; e++) {
            _mm_storeu_si128((__m128i *)(p + 8 * (i + 2 * e)), _mm_unpacklo_epi64(b[e], b[4 + e]));
            _mm_storeu_si128((__m128i *)(p + 8 * (i + 2 * e + 1)), _mm_unpackhi_epi64(b[e], b[4 + e]));
        }
    }
    for (; i < k; i++)
        for (int j = 0; j < PR; j++)
            memcpy(p + 8 * i + j, w + (size_t)j * row_bytes + (size_t)i * 2, 2);
}

/* Element i of the panel's 8 rows as floats. */
AI __m256 f16_elem(const uint16_t *p, int64_t i, const bool bf)
{
    const __m128i h = _mm_loadu_si128((const __m128i *)(p + 8 * i));
    if (bf)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* One FMA per element and token; the elements alternate between 2
 * accumulators per token (one chain would be bound by the FMA latency
 * with one token). The same 2 for any nt: a token's sum does not depend on
 * how many others share the call (MoE experts must give a token the same
 * result alone or in a batch, moe_test). */
AI void gemm_f16_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt,
                    const bool bf)
{
    enum { CH = 2 };
    const int ch = CH;
    const uint16_t *p = panel;
    __m256 acc[CH][AL_PANEL_NT];
    const float *x[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        x[t] = (const float *)((const char *)a + (size_t)t * as);
        _Pragma("GCC unroll 8")
        for (int c = 0; c < ch; c++)
            acc[c][t] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        prefetch_ahead(p + 8 * i, 8 * PR * sizeof(uint16_t));
        _Pragma("GCC unroll 8")
        for (int e = 0; e < 8; e++) {
            const __m256 w = f16_elem(p, i + e, bf);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                acc[e % ch][t] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x[t] + i + e), acc[e % ch][t]);
        }
    }
    for (; i < k; i++) {
        const __m256 w = f16_elem(p, i, bf);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[i % 2][t] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x[t] + i), acc[i % 2][t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        __m256 s = acc[0][t];
        _Pragma("GCC unroll 8")
        for (int c = 1; c < ch; c++)
            s = _mm256_add_ps(s, acc[c][t]);
        _mm256_storeu_ps(out + t * ldo, s);
    }
}

/* ------------------------------------------------------------ dispatch */

#define PDISPATCH(name, call)                                                                                  \
    static void name(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,  \
                     int nt, float *out, int64_t ldo)                                                          \
    {                                                                                                          \
        (void)asum, (void)ss;                                                                                  \
        AL_SWITCH_NT(nt, call)                                                                                 \
    }

#define C_Q4_0(n) gemm_q4_0_nt(k, panel, a, as, asum, ss, out, ldo, n)
#define C_Q8_0(n) gemm_q8_0_nt(k, panel, a, as, out, ldo, n)
#define C_Q4_K(n) gemm_k45_nt(k, panel, a, as, asum, ss, out, ldo, n, false)
#define C_Q5_K(n) gemm_k45_nt(k, panel, a, as, asum, ss, out, ldo, n, true)
#define C_Q6_K(n) gemm_q6_K_nt(k, panel, a, as, out, ldo, n)

PDISPATCH(gemm_q4_0, C_Q4_0)
PDISPATCH(gemm_q8_0, C_Q8_0)
PDISPATCH(gemm_q4_K, C_Q4_K)
PDISPATCH(gemm_q5_K, C_Q5_K)
/* Q6_K: up to 8 tokens a call (its weights cost more to unpack) */
static void gemm_q6_K(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss, int nt,
                      float *out, int64_t ldo)
{
    (void)asum, (void)ss;
    switch (nt) {
    case 1: C_Q6_K(1); break;
    case 2: C_Q6_K(2); break;
    case 3: C_Q6_K(3); break;
    case 4: C_Q6_K(4); break;
    case 5: C_Q6_K(5); break;
    case 6: C_Q6_K(6); break;
    case 7: C_Q6_K(7); break;
    default: C_Q6_K(8); break;
    }
}

#define C_F16(n) gemm_f16_nt(k, panel, a, as, out, ldo, n, false)
#define C_BF16(n) gemm_f16_nt(k, panel, a, as, out, ldo, n, true)

PDISPATCH(gemm_f16, C_F16)
PDISPATCH(gemm_bf16, C_BF16)

void al_panel_kernels_avx2(al_kernels *ks)
{
    ks->panel[AL_TYPE_F16] = (al_panel_kernel){bytes_f16, pack_f16, gemm_f16, false, true, 0, NULL};
    ks->panel[AL_TYPE_BF16] = (al_panel_kernel){bytes_f16, pack_f16, gemm_bf16, false, true, 0, NULL};
    ks->panel[AL_TYPE_Q4_0] = (al_panel_kernel){bytes_q4_0, pack_q4_0, gemm_q4_0, true, true, 0, NULL};
    ks->panel[AL_TYPE_Q8_0] = (al_panel_kernel){bytes_q8_0, pack_q8_0, gemm_q8_0, false, true, 0, NULL};
    ks->panel[AL_TYPE_Q4_K] = (al_panel_kernel){bytes_q4_K, pack_q4_K, gemm_q4_K, true, true, 0, NULL};
    ks->panel[AL_TYPE_Q5_K] = (al_panel_kernel){bytes_q5_K, pack_q5_K, gemm_q5_K, true, true, 0, NULL};
    ks->panel[AL_TYPE_Q6_K] = (al_panel_kernel){bytes_q6_K, pack_q6_K, gemm_q6_K, false, true, 8, NULL};
}
#else
void al_panel_kernels_avx2(al_kernels *ks)
{
    (void)ks;
}
#endif
