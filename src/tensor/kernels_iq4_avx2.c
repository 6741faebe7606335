/* kernels_iq4_avx2.c - AVX2 dot products and panel kernels of the codebook
 * and ternary types (quant_iq4.h): IQ4_NL and MXFP4 against Q8_0
 * activations, IQ4_XS, TQ1_0 and TQ2_0 against Q8_K. Their plain-C twins
 * are in quant_iq4.c and quant_tq.c (the panels are held to them through
 * al_matmul in tests/tensor). Compiled with -mavx2 -mfma -mf16c only; used
 * only after al_cpu_has_avx2().
 *
 * The 4-bit codebook types look their nibbles up with one byte shuffle
 * (16 entries: exactly a 128-bit lane), giving signed bytes; the product
 * with the signed activations goes through vpmaddubsw as |w| x sign(a, w),
 * as ggml's own kernels do (pairs stay below 2 * 127 * 127). */
#include "tensor/kernels.h"
#include "tensor/quant_iq4.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "tensor/avx2_util.h"

#define TOK(a, as, t) ((const char *)(a) + (size_t)(t) * (as))

/* A codebook in both 128-bit lanes. */
AI __m256i lut16(const int8_t kv[16])
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kv));
}

/* 8 int32 sums of 32 products of signed weights w (|w| <= 127) with the
 * signed activation bytes at y, scaled per pair by the int16s of sc. */
AI __m256i dot_s8(__m256i w, __m256i aw, const int8_t *y, __m256i sc)
{
    const __m256i ys = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y), w);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, ys), sc);
}

/* ------------------------------------------------------------ IQ4_NL, MXFP4 */

/* The 32 signed codebook values and the scale of block i of a row. */
AI __m256i lut_block(uint32_t type, const void *row, int64_t i, __m256i lut, float *d)
{
    const uint8_t *qs;
    if (type == AL_TYPE_IQ4_NL) {
        const al_block_iq4_nl *b = (const al_block_iq4_nl *)row + i;
        *d = h2f(b->d);
        qs = b->qs;
    } else {
        const al_block_mxfp4 *b = (const al_block_mxfp4 *)row + i;
        *d = al_e8m0_half(b->e);
        qs = b->qs;
    }
    return _mm256_shuffle_epi8(lut, nibbles32(qs));
}

/* Blocks alternate between ch accumulators per token when there are few
 * tokens (one FMA chain would bound the speed otherwise). */
AI void dot_lut_q8_0_nt(uint32_t type, int64_t k, const void *w, const void *a, size_t as, float *out, const int nt)
{
    enum { CH = 4 };
    const int ch = nt == 1 ? 4 : nt == 2 ? 2 : 1;
    const __m256i lut = lut16(type == AL_TYPE_IQ4_NL ? al_kv_iq4nl : al_kv_mxfp4);
    const __m256i ones = _mm256_set1_epi16(1);
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
            const __m256i q = lut_block(type, w, i + c, lut, &dw);
            const __m256i aq = _mm256_sign_epi8(q, q);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const __m256i p = dot_s8(q, aq, x[t][i + c].qs, ones);
                acc[t][c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(x[t][i + c].d)), _mm256_cvtepi32_ps(p), acc[t][c]);
            }
        }
    }
    for (; i < nb; i++) {
        float dw;
        const __m256i q = lut_block(type, w, i, lut, &dw);
        const __m256i aq = _mm256_sign_epi8(q, q);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256i p = dot_s8(q, aq, x[t][i].qs, ones);
            acc[t][0] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(x[t][i].d)), _mm256_cvtepi32_ps(p), acc[t][0]);
        }
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

/* ------------------------------------------------------------ IQ4_XS */

/* Per super-block: each sub-block's 32 codebook values against the
 * activations, the pair sums weighted by the sub-block's signed scale in
 * the madd; int32 sums stay below 8 * 32 * 127 * 127 * 32. */
AI void dot_iq4_xs_nt(int64_t k, const void *vw, const void *a, size_t as, float *out, const int nt)
{
    const __m256i lut = lut16(al_kv_iq4nl);
    __m256 acc[AL_DOT_MAX_NT];
    const al_block_q8_K *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = (const al_block_q8_K *)TOK(a, as, t);
    }
    const int64_t nb = k / AL_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const al_block_iq4_xs *b = (const al_block_iq4_xs *)vw + i;
        __m256i sumi[AL_DOT_MAX_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm256_setzero_si256();
        uint32_t sl;
        memcpy(&sl, b->scales_l, 4);
        const uint32_t sh = b->scales_h;
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 8; j++) {
            const int ls = (int)(((sl >> (4 * j)) & 0x0f) | (((sh >> (2 * j)) & 3) << 4)) - 32;
            const __m256i sc = _mm256_set1_epi16((short)ls);
            const __m256i q = _mm256_shuffle_epi8(lut, nibbles32(b->qs + 16 * j));
            const __m256i aq = _mm256_sign_epi8(q, q);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm256_add_epi32(sumi[t], dot_s8(q, aq, x[t][i].qs + 32 * j, sc));
        }
        const float d = h2f(b->d);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[t][i].d), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        out[t] = hsum(acc[t]);
}

/* ------------------------------------------------------------ TQ1_0, TQ2_0 */

/* Ternary weights stored as q = t + 1 in {0, 1, 2} (unsigned): the dot is
 * sum(q * y) - sum(y), the second from the bsums. The int16 pair sums of
 * one 32-element group are <= 2 * 2 * 127, so the 8 groups of a block add
 * up in int16 (<= 4064) before one madd. */

/* The 8 groups of 32 unsigned trits (0..2) of a TQ2_0 block, in element
 * order. */
AI void tq2_0_groups(const al_block_tq2_0 *b, __m256i g[8])
{
    const __m256i m3 = _mm256_set1_epi8(3);
    _Pragma("GCC unroll 2")
    for (int h = 0; h < 2; h++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
        g[4 * h + 0] = _mm256_and_si256(v, m3);
        g[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 2), m3);
        g[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m3);
        g[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(v, 6), m3);
    }
}

/* Trit n of each byte of v (the byte times 3^n mod 256, then * 3 >> 8),
 * for multipliers c = 3^n: the even and odd bytes of each 16-bit lane
 * separately. */
AI __m256i trits_of(__m256i v, int c)
{
    const __m256i lo8 = _mm256_set1_epi16(0x00ff);
    const __m256i vc = _mm256_set1_epi16((short)c);
    /* low byte of each lane: (even byte * c) mod 256; high byte: odd */
    const __m256i qe = _mm256_and_si256(_mm256_mullo_epi16(v, vc), lo8);
    const __m256i qo = _mm256_andnot_si256(lo8, _mm256_mullo_epi16(_mm256_andnot_si256(lo8, v), vc));
    /* (q * 3) >> 8 for each: the even one via mulhi by 3 << 8, the odd
     * one (q << 8) via mulhi by 3, moved back up */
    const __m256i te = _mm256_mulhi_epu16(qe, _mm256_set1_epi16(3 << 8));
    const __m256i to = _mm256_slli_epi16(_mm256_mulhi_epu16(qo, _mm256_set1_epi16(3)), 8);
    return _mm256_or_si256(te, to);
}

/* The 8 groups of 32 unsigned trits (0..2) of a TQ1_0 block in element
 * order: groups 0..4 from qs[0..31] (trit n = group n), groups 5..7 from
 * qs[32..47] (trits 0..4, 16 each) and qh (4 trits of 4 bytes). */
AI void tq1_0_groups(const al_block_tq1_0 *b, __m256i g[8])
{
    static const int pow3[5] = {1, 3, 9, 27, 81};
    const __m256i v = _mm256_loadu_si256((const __m256i *)b->qs);
    _Pragma("GCC unroll 5")
    for (int n = 0; n < 5; n++)
        g[n] = trits_of(v, pow3[n]);
    /* 16 bytes of qs[32..47] and 4 of qh: element 160 + 16n + m is trit n
     * of qs[32 + m] and 240 + 4n + j trit n of qh[j] */
    const __m128i v2 = _mm_loadu_si128((const __m128i *)(b->qs + 32));
    uint32_t h;
    memcpy(&h, b->qh, 4);
    const __m256i w2 = _mm256_set_m128i(v2, v2);
    const __m256i wh = _mm256_set1_epi32((int)h);
    __m256i t2[5], th[4];
    _Pragma("GCC unroll 5")
    for (int n = 0; n < 5; n++)
        t2[n] = trits_of(w2, pow3[n]);
    _Pragma("GCC unroll 4")
    for (int n = 0; n < 4; n++)
        th[n] = trits_of(wh, pow3[n]);
    /* group 5: trits 0, 1 of qs[32..47]; 6: trits 2, 3; 7: trit 4, then
     * the 16 qh trits (bytes 0..3 of th[0..3]) */
    g[5] = _mm256_permute2x128_si256(t2[0], t2[1], 0x20);
    g[6] = _mm256_permute2x128_si256(t2[2], t2[3], 0x20);
    const __m128i hq = _mm_unpacklo_epi64(_mm_unpacklo_epi32(_mm256_castsi256_si128(th[0]), _mm256_castsi256_si128(th[1])),
                                          _mm_unpacklo_epi32(_mm256_castsi256_si128(th[2]), _mm256_castsi256_si128(th[3])));
    g[7] = _mm256_set_m128i(hq, _mm256_castsi256_si128(t2[4]));
}

AI void dot_tq_nt(uint32_t type, int64_t k, const void *vw, const void *a, size_t as, float *out, const int nt)
{
    __m256 acc[AL_DOT_MAX_NT];
    const al_block_q8_K *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = (const al_block_q8_K *)TOK(a, as, t);
    }
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t nb = k / AL_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        __m256i g[8];
        float d;
        if (type == AL_TYPE_TQ2_0) {
            const al_block_tq2_0 *b = (const al_block_tq2_0 *)vw + i;
            tq2_0_groups(b, g);
            d = h2f(b->d);
        } else {
            const al_block_tq1_0 *b = (const al_block_tq1_0 *)vw + i;
            tq1_0_groups(b, g);
            d = h2f(b->d);
        }
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            __m256i s16 = _mm256_setzero_si256();
            _Pragma("GCC unroll 8")
            for (int j = 0; j < 8; j++)
                s16 = _mm256_add_epi16(
                    s16, _mm256_maddubs_epi16(g[j], _mm256_loadu_si256((const __m256i *)(x[t][i].qs + 32 * j))));
            /* minus the sum of the activations: the 16 bsums */
            s16 = _mm256_sub_epi16(s16, _mm256_loadu_si256((const __m256i *)x[t][i].bsums));
            const __m256i s = _mm256_madd_epi16(s16, ones);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x[t][i].d), _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        out[t] = hsum(acc[t]);
}

/* ------------------------------------------------------------ panels */

/* Panel kernels (see gemm_avx2.c for the layout idea: 8 rows interleaved 4
 * bytes at a time, one row per 32-bit lane, token bytes broadcast).
 *
 * A codebook value w in [-127, 113] cannot be the unsigned operand of
 * vpmaddubsw (w + 128 against activations of 127 saturates the pair sums),
 * so IQ4_NL and IQ4_XS multiply |w| by sign(y, w) and widen each chunk's
 * pair sums at once with a madd (by the sub-block scale for IQ4_XS), as
 * their dot kernels do: about 1.5x the work per weight of Q4_K's panel.
 * (Splitting w + 128 into two 4-bit halves, two madds of int16 sums and an
 * activation-sum correction, measured slower: twice the accumulators.)
 * MXFP4's doubled E2M1 values fit one unsigned lookup: w + 12 in [0, 24],
 * minus 12 x from the activation sums of 32 (asum). */

/* IQ4_NL: exactly the 8 blocks' bytes, like Q4_0's panel: the rows'
 * scales, then q[v] = bytes 4v..4v+3 of the rows' qs. */
typedef struct {
    al_half d[AL_PANEL_ROWS];
    uint8_t q[4][32];
} panel_iq4_nl;
_Static_assert(sizeof(panel_iq4_nl) == AL_PANEL_ROWS * sizeof(al_block_iq4_nl), "IQ4_NL panel size");

/* MXFP4: the rows' exponents, then the nibbles as for IQ4_NL. */
typedef struct {
    uint8_t e[AL_PANEL_ROWS];
    uint8_t q[4][32];
} panel_mxfp4;
_Static_assert(sizeof(panel_mxfp4) == AL_PANEL_ROWS * sizeof(al_block_mxfp4), "MXFP4 panel size");

/* IQ4_XS super-block (3% larger than its 8 rows): q[j][v] = bytes
 * 16j+4v..+3 of the rows' qs (sub-block j: low nibbles elements 32j+4v..,
 * high 32j+16+4v..), the rows' d, sc[j][r] = scale of sub-block j of row r
 * minus 32. */
typedef struct {
    uint8_t q[8][4][32];
    al_half d[AL_PANEL_ROWS];
    int8_t sc[8][AL_PANEL_ROWS];
    uint8_t pad[16];
} panel_iq4_xs;
_Static_assert(sizeof(panel_iq4_xs) % 32 == 0, "IQ4_XS panel alignment");

/* The 16 qs bytes at qs of 8 rows (rows apart) interleaved into 4 chunks. */
AI void pack16(const uint8_t *qs, size_t row_bytes, uint8_t out[4][32])
{
    __m256i r[8], o[8];
    for (int i = 0; i < AL_PANEL_ROWS; i++)
        r[i] = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)(qs + (size_t)i * row_bytes)));
    interleave8(r, o);
    for (int v = 0; v < 4; v++)
        _mm256_storeu_si256((__m256i *)out[v], o[v]);
}

static size_t bytes_iq4_nl(int64_t k)
{
    return (size_t)(k / AL_QK) * sizeof(panel_iq4_nl);
}

static void pack_iq4_nl(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_iq4_nl *p = panel;
    for (int64_t b = 0; b < k / AL_QK; b++) {
        const al_block_iq4_nl *b0 = (const al_block_iq4_nl *)w + b;
        for (int i = 0; i < AL_PANEL_ROWS; i++)
            p[b].d[i] = ((const al_block_iq4_nl *)(w + (size_t)i * row_bytes) + b)->d;
        pack16(b0->qs, row_bytes, p[b].q);
    }
}

static size_t bytes_mxfp4(int64_t k)
{
    return (size_t)(k / AL_QK) * sizeof(panel_mxfp4);
}

static void pack_mxfp4(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_mxfp4 *p = panel;
    for (int64_t b = 0; b < k / AL_QK; b++) {
        const al_block_mxfp4 *b0 = (const al_block_mxfp4 *)w + b;
        for (int i = 0; i < AL_PANEL_ROWS; i++)
            p[b].e[i] = ((const al_block_mxfp4 *)(w + (size_t)i * row_bytes) + b)->e;
        pack16(b0->qs, row_bytes, p[b].q);
    }
}

static size_t bytes_iq4_xs(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_iq4_xs);
}

static void pack_iq4_xs(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_iq4_xs *p = panel;
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        for (int i = 0; i < AL_PANEL_ROWS; i++) {
            const al_block_iq4_xs *blk = (const al_block_iq4_xs *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = blk->d;
            for (int j = 0; j < 8; j++)
                p[b].sc[j][i] = (int8_t)(al_iq4_xs_scale(blk, j) - 32);
        }
        memset(p[b].pad, 0, sizeof(p[b].pad));
        const al_block_iq4_xs *b0 = (const al_block_iq4_xs *)w + b;
        for (int j = 0; j < 8; j++)
            pack16(b0->qs + 16 * j, row_bytes, p[b].q[j]);
    }
}

/* The 8 E8M0 exponents at e as the floats 2^(e-128) (al_e8m0_half). */
AI __m256 e8m0_half8(const uint8_t *e)
{
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)e));
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(v, _mm256_set1_epi32(1)), 23);
    const __m256i sub = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), v);
    const __m256i is_normal = _mm256_cmpgt_epi32(v, _mm256_set1_epi32(1));
    return _mm256_castsi256_ps(_mm256_blendv_epi8(sub, normal, is_normal));
}

/* IQ4_NL and MXFP4 panels against Q8_0 activations, per 32-block: the
 * integer sum in the rows' lanes, times the rows' and the token's scales.
 * IQ4_NL goes as |w| x sign(y, w), one madd per chunk (measured faster
 * than the split halves, which need twice the int16 accumulators); MXFP4's
 * w + 12 in [0, 24] is unsigned as it is: 4 chunks add up in int16. */
AI void gemm_lut32_nt(uint32_t type, int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum,
                      size_t ss, float *out, int64_t ldo, const int nt)
{
    const bool nl = type == AL_TYPE_IQ4_NL;
    const size_t psz = nl ? sizeof(panel_iq4_nl) : sizeof(panel_mxfp4);
    const int64_t nb = k / AL_QK;
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256i lut;
    if (nl) {
        lut = lut16(al_kv_iq4nl);
    } else {
        int8_t u[16];
        for (int i = 0; i < 16; i++)
            u[i] = (int8_t)(al_kv_mxfp4[i] + 12);
        lut = lut16(u);
    }
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pb = (const uint8_t *)panel + (size_t)b * psz;
        const uint8_t (*q)[32] = nl ? ((const panel_iq4_nl *)pb)->q : ((const panel_mxfp4 *)pb)->q;
        const al_block_q8_0 *x[AL_PANEL_NT];
        __m256i s32[AL_PANEL_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_0 *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(pb, psz);
        if (nl) {
            _Pragma("GCC unroll 8")
            for (int u = 0; u < 8; u++) {
                const int v = u % 4, shift = 4 * (u / 4);
                const __m256i raw = _mm256_loadu_si256((const __m256i *)q[v]);
                const __m256i w = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, shift), m4));
                const __m256i aw = _mm256_sign_epi8(w, w);
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++) {
                    const __m256i y = _mm256_sign_epi8(bcast4(x[t]->qs + 16 * (u / 4) + 4 * v), w);
                    s32[t] = pin(_mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, y), ones)));
                }
            }
        } else {
            _Pragma("GCC unroll 2")
            for (int h = 0; h < 2; h++) { /* low nibbles, then high: 4 chunks of <= 2 x 24 x 127 in int16 */
                __m256i s16[AL_PANEL_NT];
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++)
                    s16[t] = _mm256_setzero_si256();
                _Pragma("GCC unroll 4")
                for (int v = 0; v < 4; v++) {
                    const __m256i raw = _mm256_loadu_si256((const __m256i *)q[v]);
                    const __m256i w = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, 4 * h), m4));
                    _Pragma("GCC unroll 8")
                    for (int t = 0; t < nt; t++)
                        s16[t] = pin(_mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, bcast4(x[t]->qs + 16 * h + 4 * v))));
                }
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++)
                    s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], ones));
            }
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s32[t] = _mm256_sub_epi32(s32[t], _mm256_set1_epi32(12 * asum[(size_t)t * ss + b]));
        }
        const __m256 d = nl ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const panel_iq4_nl *)pb)->d))
                            : e8m0_half8(((const panel_mxfp4 *)pb)->e);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(h2f(x[t]->d))), _mm256_cvtepi32_ps(s32[t]), acc[t]);
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

/* IQ4_XS panels against Q8_K: each chunk's |w| x sign(y, w) pair sums
 * widened by a madd with the rows' sub-block scales, one int32 sum per
 * token and super-block; the token's float sums live in out between
 * super-blocks. Up to 8 tokens a call: the 8 int32 sums and the chunk's
 * weights fit the 16 registers, and the unpacking is shared by more
 * tokens. */
AI void gemm_iq4_xs_nt(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                       float *out, int64_t ldo, const int nt)
{
    const panel_iq4_xs *p = panel;
    const int64_t nb = k / AL_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i lut = lut16(al_kv_iq4nl);
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, _mm256_setzero_ps());
    for (int64_t b = 0; b < nb; b++) {
        const al_block_q8_K *x[AL_PANEL_NT_MAX];
        __m256i s32[AL_PANEL_NT_MAX];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(&p[b], sizeof(panel_iq4_xs));
        for (int j = 0; j < 8; j++) {
            const __m128i g = _mm_loadl_epi64((const __m128i *)p[b].sc[j]);
            const __m256i sc = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(g, g)); /* each row's scale twice */
            _Pragma("GCC unroll 4")
            for (int v = 0; v < 4; v++) {
                const __m256i raw = _mm256_load_si256((const __m256i *)p[b].q[j][v]);
                _Pragma("GCC unroll 2")
                for (int h = 0; h < 2; h++) { /* low nibbles, then high */
                    const __m256i w = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(raw, 4 * h), m4));
                    const __m256i aw = _mm256_sign_epi8(w, w);
                    _Pragma("GCC unroll 8")
                    for (int t = 0; t < nt; t++) {
                        const __m256i y = _mm256_sign_epi8(bcast4(x[t]->qs + 32 * j + 16 * h + 4 * v), w);
                        s32[t] = pin(_mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, y), sc)));
                    }
                }
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p[b].d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256i s = s32[t];
            const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(x[t]->d));
            _mm256_storeu_ps(out + t * ldo,
                             _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s), _mm256_loadu_ps(out + t * ldo)));
        }
    }
}

/* Ternary panels against Q8_K. Trits as 0..2: one vpmaddubsw per chunk,
 * and the int16 sums of a whole super-block stay below 64 * 2 * 2 * 127;
 * the -1 offset is the token's activation sum over the block (its bsums,
 * the same for all 8 rows). TQ2_0: q[h][c] = bytes 32h+4c..+3 of the
 * rows' qs (2-bit field l: elements 128h+32l+4c..+3). TQ1_0: q0[c] =
 * bytes 4c..+3 of qs (trit n: elements 32n+4c..), q1[c] = bytes 32+4c..+3
 * (trit n: 160+16n+4c..), qh = the 4 qh bytes (trit n: 240+4n..). Both
 * exactly the size of their 8 rows. */
typedef struct {
    uint8_t q[2][8][32];
    al_half d[AL_PANEL_ROWS];
} panel_tq2_0;
typedef struct {
    uint8_t q0[8][32];
    uint8_t q1[4][32];
    uint8_t qh[32];
    al_half d[AL_PANEL_ROWS];
} panel_tq1_0;
_Static_assert(sizeof(panel_tq2_0) == AL_PANEL_ROWS * sizeof(al_block_tq2_0), "TQ2_0 panel size");
_Static_assert(sizeof(panel_tq1_0) == AL_PANEL_ROWS * sizeof(al_block_tq1_0), "TQ1_0 panel size");

/* n bytes (<= 32, a multiple of 4) at src of 8 rows interleaved into
 * n / 4 chunks. */
AI void pack_bytes(const uint8_t *src, size_t row_bytes, int n, uint8_t (*out)[32])
{
    __m256i r[8], o[8];
    for (int i = 0; i < AL_PANEL_ROWS; i++) {
        uint8_t tmp[32] = {0};
        memcpy(tmp, src + (size_t)i * row_bytes, (size_t)n);
        r[i] = _mm256_loadu_si256((const __m256i *)tmp);
    }
    interleave8(r, o);
    for (int c = 0; c < n / 4; c++)
        _mm256_storeu_si256((__m256i *)out[c], o[c]);
}

static size_t bytes_tq2_0(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_tq2_0);
}

static void pack_tq2_0(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_tq2_0 *p = panel;
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        const al_block_tq2_0 *b0 = (const al_block_tq2_0 *)w + b;
        for (int i = 0; i < AL_PANEL_ROWS; i++)
            p[b].d[i] = ((const al_block_tq2_0 *)(w + (size_t)i * row_bytes) + b)->d;
        for (int h = 0; h < 2; h++)
            pack_bytes(b0->qs + 32 * h, row_bytes, 32, p[b].q[h]);
    }
}

static size_t bytes_tq1_0(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_tq1_0);
}

static void pack_tq1_0(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_tq1_0 *p = panel;
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        const al_block_tq1_0 *b0 = (const al_block_tq1_0 *)w + b;
        for (int i = 0; i < AL_PANEL_ROWS; i++)
            p[b].d[i] = ((const al_block_tq1_0 *)(w + (size_t)i * row_bytes) + b)->d;
        pack_bytes(b0->qs, row_bytes, 32, p[b].q0);
        pack_bytes(b0->qs + 32, row_bytes, 16, p[b].q1);
        uint8_t qh[1][32];
        pack_bytes(b0->qh, row_bytes, 4, qh);
        memcpy(p[b].qh, qh[0], 32);
    }
}

/* s16[t] += trits w (0..2, 8 rows x 4 elements) x token t's 4 bytes at
 * offset off of its block. */
#define TQ_MAC(w, off)                                                                                         \
    _Pragma("GCC unroll 8") for (int t = 0; t < nt; t++) s16[t] =                                              \
        pin(_mm256_add_epi16(s16[t], _mm256_maddubs_epi16((w), bcast4(x[t]->qs + (off)))))

AI void gemm_tq_nt(uint32_t type, int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo,
                   const int nt)
{
    static const int pow3[5] = {1, 3, 9, 27, 81};
    const bool tq2 = type == AL_TYPE_TQ2_0;
    const size_t psz = tq2 ? sizeof(panel_tq2_0) : sizeof(panel_tq1_0);
    const int64_t nb = k / AL_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pb = (const uint8_t *)panel + (size_t)b * psz;
        const al_block_q8_K *x[AL_PANEL_NT];
        __m256i s16[AL_PANEL_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s16[t] = _mm256_setzero_si256();
        }
        prefetch_ahead(pb, psz);
        if (tq2) {
            const panel_tq2_0 *p = (const panel_tq2_0 *)pb;
            for (int h = 0; h < 2; h++)
                _Pragma("GCC unroll 2")
                for (int c = 0; c < 8; c++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)p->q[h][c]);
                    _Pragma("GCC unroll 4")
                    for (int l = 0; l < 4; l++) {
                        const __m256i w = _mm256_and_si256(_mm256_srli_epi16(v, 2 * l), m3);
                        TQ_MAC(w, 128 * h + 32 * l + 4 * c);
                    }
                }
        } else {
            const panel_tq1_0 *p = (const panel_tq1_0 *)pb;
            for (int c = 0; c < 8; c++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)p->q0[c]);
                _Pragma("GCC unroll 5")
                for (int n = 0; n < 5; n++) {
                    const __m256i w = trits_of(v, pow3[n]);
                    TQ_MAC(w, 32 * n + 4 * c);
                }
            }
            for (int c = 0; c < 4; c++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)p->q1[c]);
                _Pragma("GCC unroll 5")
                for (int n = 0; n < 5; n++) {
                    const __m256i w = trits_of(v, pow3[n]);
                    TQ_MAC(w, 160 + 16 * n + 4 * c);
                }
            }
            const __m256i v = _mm256_loadu_si256((const __m256i *)p->qh);
            _Pragma("GCC unroll 4")
            for (int n = 0; n < 4; n++) {
                const __m256i w = trits_of(v, pow3[n]);
                TQ_MAC(w, 240 + 4 * n);
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(tq2 ? ((const panel_tq2_0 *)pb)->d
                                                                                : ((const panel_tq1_0 *)pb)->d)));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            int sum = 0;
            for (int g = 0; g < 16; g++)
                sum += x[t]->bsums[g];
            const __m256i s = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(sum));
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[t]->d)), _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

#define PDISPATCH(name, call)                                                                                  \
    static void name(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,  \
                     int nt, float *out, int64_t ldo)                                                          \
    {                                                                                                          \
        (void)asum, (void)ss;                                                                                  \
        AL_SWITCH_NT(nt, call)                                                                                 \
    }

#define G_IQ4_NL(n) gemm_lut32_nt(AL_TYPE_IQ4_NL, k, panel, a, as, asum, ss, out, ldo, n)
#define G_MXFP4(n) gemm_lut32_nt(AL_TYPE_MXFP4, k, panel, a, as, asum, ss, out, ldo, n)
#define G_IQ4_XS(n) gemm_iq4_xs_nt(k, panel, a, as, asum, ss, out, ldo, n)

PDISPATCH(gemm_iq4_nl, G_IQ4_NL)
PDISPATCH(gemm_mxfp4, G_MXFP4)
static void gemm_iq4_xs(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                        int nt, float *out, int64_t ldo)
{
    switch (nt) {
    case 1: G_IQ4_XS(1); break;
    case 2: G_IQ4_XS(2); break;
    case 3: G_IQ4_XS(3); break;
    case 4: G_IQ4_XS(4); break;
    case 5: G_IQ4_XS(5); break;
    case 6: G_IQ4_XS(6); break;
    case 7: G_IQ4_XS(7); break;
    default: G_IQ4_XS(8); break;
    }
}

#define G_TQ1_0(n) gemm_tq_nt(AL_TYPE_TQ1_0, k, panel, a, as, out, ldo, n)
#define G_TQ2_0(n) gemm_tq_nt(AL_TYPE_TQ2_0, k, panel, a, as, out, ldo, n)
PDISPATCH(gemm_tq1_0, G_TQ1_0)
PDISPATCH(gemm_tq2_0, G_TQ2_0)

/* ------------------------------------------------------------ dispatch */

#define DISPATCH(name, call)                                                                       \
    static void name(int64_t k, const void *w, const void *a, size_t as, int nt, float *out)      \
    {                                                                                              \
        AL_SWITCH_NT(nt, call)                                                                     \
    }

#define C_IQ4_NL(n) dot_lut_q8_0_nt(AL_TYPE_IQ4_NL, k, w, a, as, out, n)
#define C_MXFP4(n) dot_lut_q8_0_nt(AL_TYPE_MXFP4, k, w, a, as, out, n)
#define C_IQ4_XS(n) dot_iq4_xs_nt(k, w, a, as, out, n)
#define C_TQ1_0(n) dot_tq_nt(AL_TYPE_TQ1_0, k, w, a, as, out, n)
#define C_TQ2_0(n) dot_tq_nt(AL_TYPE_TQ2_0, k, w, a, as, out, n)

DISPATCH(dot_iq4_nl, C_IQ4_NL)
DISPATCH(dot_mxfp4, C_MXFP4)
DISPATCH(dot_iq4_xs, C_IQ4_XS)
DISPATCH(dot_tq1_0, C_TQ1_0)
DISPATCH(dot_tq2_0, C_TQ2_0)

void al_kernels_iq4_avx2(al_kernels *ks)
{
    ks->dot[AL_TYPE_IQ4_NL] = dot_iq4_nl;
    ks->dot[AL_TYPE_MXFP4] = dot_mxfp4;
    ks->dot[AL_TYPE_IQ4_XS] = dot_iq4_xs;
    ks->dot[AL_TYPE_TQ1_0] = dot_tq1_0;
    ks->dot[AL_TYPE_TQ2_0] = dot_tq2_0;
    ks->panel[AL_TYPE_IQ4_NL] = (al_panel_kernel){bytes_iq4_nl, pack_iq4_nl, gemm_iq4_nl, false, true, 0, NULL};
    ks->panel[AL_TYPE_MXFP4] = (al_panel_kernel){bytes_mxfp4, pack_mxfp4, gemm_mxfp4, true, true, 0, NULL};
    ks->panel[AL_TYPE_IQ4_XS] = (al_panel_kernel){bytes_iq4_xs, pack_iq4_xs, gemm_iq4_xs, false, true, 8, NULL};
    ks->panel[AL_TYPE_TQ1_0] = (al_panel_kernel){bytes_tq1_0, pack_tq1_0, gemm_tq1_0, false, true, 0, NULL};
    ks->panel[AL_TYPE_TQ2_0] = (al_panel_kernel){bytes_tq2_0, pack_tq2_0, gemm_tq2_0, false, true, 0, NULL};
}
#else
void al_kernels_iq4_avx2(al_kernels *ks)
{
    (void)ks;
}
#endif
