/* kernels_iq4_avx2.c - AVX2 dot products of the codebook and ternary types
 * (quant_iq4.h): IQ4_NL and MXFP4 against Q8_0 activations, IQ4_XS, TQ1_0
 * and TQ2_0 against Q8_K. Their plain-C twins are in quant_iq4.c and
 * quant_tq.c. Compiled with -mavx2 -mfma -mf16c only; used only after
 * al_cpu_has_avx2().
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
}
#else
void al_kernels_iq4_avx2(al_kernels *ks)
{
    (void)ks;
}
#endif
