/* gemm_avx2.c - AVX2 panel kernels of prompt processing (many tokens).
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
 * dot products with it, so matmul.c uses panels only for batches of many
 * tokens. */
#include "tensor/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "tensor/avx2_util.h"

#define PR AL_PANEL_ROWS

/* The 4 activation bytes at p broadcast to every 32-bit lane. */
AI __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
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

/* ------------------------------------------------------------ Q4_0 / Q8_0 */

/* Panel block of the 32-element types: the 8 rows' scales as floats, then
 * 8 chunks of 32 bytes (Q4_0: nibbles 0..15; Q8_0: |q|), then for Q8_0 the
 * 8 chunks of signed q (for the signs). */
typedef struct {
    float d[PR];
    uint8_t q[8][32];
} panel_q4_0;
typedef struct {
    float d[PR];
    uint8_t q[8][32];
    int8_t s[8][32];
} panel_q8_0;

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
            p[b].d[i] = h2f(blk->d);
            r[i] = nibbles32(blk->qs);
        }
        interleave8(r, o);
        for (int c = 0; c < 8; c++)
            _mm256_store_si256((__m256i *)p[b].q[c], o[c]);
    }
}

static void pack_q8_0(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_q8_0 *p = panel;
    for (int64_t b = 0; b < k / AL_QK; b++) {
        __m256i r[8], o[8];
        for (int i = 0; i < PR; i++) {
            const al_block_q8_0 *blk = (const al_block_q8_0 *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = h2f(blk->d);
            r[i] = _mm256_loadu_si256((const __m256i *)blk->qs);
        }
        interleave8(r, o);
        for (int c = 0; c < 8; c++) {
            _mm256_store_si256((__m256i *)p[b].s[c], o[c]);
            _mm256_store_si256((__m256i *)p[b].q[c], _mm256_sign_epi8(o[c], o[c]));
        }
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
        _Pragma("GCC unroll 8")
        for (int c = 0; c < 8; c++) {
            const __m256i w = _mm256_load_si256((const __m256i *)p[b].q[c]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, bcast4(x[t]->qs + 4 * c)));
        }
        const __m256 d = _mm256_load_ps(p[b].d);
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
        _Pragma("GCC unroll 2")
        for (int c = 0; c < 8; c++) {
            const __m256i w = _mm256_load_si256((const __m256i *)p[b].q[c]);
            const __m256i sg = _mm256_load_si256((const __m256i *)p[b].s[c]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const __m256i y = _mm256_sign_epi8(bcast4(x[t]->qs + 4 * c), sg);
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), ones));
            }
        }
        const __m256 d = _mm256_load_ps(p[b].d);
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

/* Panel super-block of Q4_K: d and dmin of the 8 rows, the sub-block
 * scales as int16 pairs (lane r: scale of row r twice), the mins as int16
 * pairs of sub-blocks (2j, 2j+1), and the nibbles of 8 sub-blocks x 8
 * chunks. */
typedef struct {
    float d[PR], dmin[PR];
    int16_t sc[8][2 * PR];
    int16_t mn[4][2 * PR];
    uint8_t q[8][8][32];
} panel_q4_K;

static size_t bytes_q4_K(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_q4_K);
}

/* The int16 pairs of 8 rows (one 32-byte vector of 8 pairs per row) ->
 * pairs[c] = pair c of every row, row r in lane r; dup[2c] / dup[2c+1] =
 * the first / second value of pair c of every row, twice in lane r. */
AI void pair_tables(const __m256i rows[8], __m256i pairs[8], __m256i *dup, int n_dup)
{
    interleave8(rows, pairs);
    const __m256i first = _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4,
                                           5, 8, 9, 8, 9, 12, 13, 12, 13);
    const __m256i second = _mm256_setr_epi8(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6,
                                            7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15);
    for (int c = 0; c < n_dup / 2; c++) {
        dup[2 * c] = _mm256_shuffle_epi8(pairs[c], first);
        dup[2 * c + 1] = _mm256_shuffle_epi8(pairs[c], second);
    }
}

static void pack_q4_K(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_q4_K *p = panel;
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        const al_block_q4_K *blk[PR];
        __m256i sm[8], pairs[8], dup[8];
        for (int i = 0; i < PR; i++) {
            blk[i] = (const al_block_q4_K *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = h2f(blk[i]->d);
            p[b].dmin[i] = h2f(blk[i]->dmin);
            /* scales 0..7 then mins 0..7 as int16: pairs 0..3 scales, 4..7 mins */
            sm[i] = _mm256_cvtepu8_epi16(k4_scales_mins(blk[i]->scales));
        }
        pair_tables(sm, pairs, dup, 8);
        for (int s = 0; s < 8; s++)
            _mm256_store_si256((__m256i *)p[b].sc[s], dup[s]);
        for (int j = 0; j < 4; j++)
            _mm256_store_si256((__m256i *)p[b].mn[j], pairs[4 + j]);
        for (int j = 0; j < 4; j++) {
            __m256i lo[8], hi[8], o[8];
            for (int i = 0; i < PR; i++) {
                const __m256i raw = _mm256_loadu_si256((const __m256i *)(blk[i]->qs + 32 * j));
                lo[i] = _mm256_and_si256(raw, _mm256_set1_epi8(0x0f));
                hi[i] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0f));
            }
            interleave8(lo, o);
            for (int c = 0; c < 8; c++)
                _mm256_store_si256((__m256i *)p[b].q[2 * j][c], o[c]);
            interleave8(hi, o);
            for (int c = 0; c < 8; c++)
                _mm256_store_si256((__m256i *)p[b].q[2 * j + 1][c], o[c]);
        }
    }
}

/* Per sub-block: 8 chunk products in int16 (<= 30480), one madd with the
 * rows' scales; the mins against the activation sums of 32 in 4 madds. */
AI void gemm_q4_K_nt(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,
                     float *out, int64_t ldo, const int nt)
{
    const panel_q4_K *p = panel;
    const int64_t nb = k / AL_QK_K;
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
        for (int s = 0; s < 8; s++) {
            __m256i s16[AL_PANEL_NT];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s16[t] = _mm256_setzero_si256();
            _Pragma("GCC unroll 8")
            for (int c = 0; c < 8; c++) {
                const __m256i w = _mm256_load_si256((const __m256i *)p[b].q[s][c]);
                _Pragma("GCC unroll 8")
                for (int t = 0; t < nt; t++)
                    s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, bcast4(x[t]->qs + 32 * s + 4 * c)));
            }
            const __m256i sc = _mm256_load_si256((const __m256i *)p[b].sc[s]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], sc));
        }
        const __m256 d = _mm256_load_ps(p[b].d), dmin = _mm256_load_ps(p[b].dmin);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const int16_t *sm = asum + (size_t)t * ss + 8 * b;
            __m256i m = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)p[b].mn[0]), bcast2x16(sm));
            _Pragma("GCC unroll 4")
            for (int j = 1; j < 4; j++)
                m = _mm256_add_epi32(
                    m, _mm256_madd_epi16(_mm256_load_si256((const __m256i *)p[b].mn[j]), bcast2x16(sm + 2 * j)));
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

/* Panel super-block of Q6_K: d of the 8 rows, the 16 group scales (groups
 * of 16) twice per lane, the scales as pairs of groups (2j, 2j+1) for the
 * -32 offset, and the unsigned 6-bit values of 8 sub-blocks of 32 x 8
 * chunks. */
typedef struct {
    float d[PR];
    int16_t sc[16][2 * PR];
    int16_t sp[8][2 * PR];
    uint8_t q[8][8][32];
} panel_q6_K;

static size_t bytes_q6_K(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_q6_K);
}

/* Sub-block s (elements 32s..32s+31, unsigned 0..63) of a Q6_K block. */
AI __m256i q6_sub(const al_block_q6_K *b, int s)
{
    const int n = s / 4, part = s % 4;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ql = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n + 32 * (part & 1)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * n));
    const __m256i lo = part < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
    /* bits 2*part, 2*part+1 of qh -> bits 4, 5 */
    __m256i hi;
    switch (part) {
    case 0: hi = _mm256_slli_epi16(qh, 4); break;
    case 1: hi = _mm256_slli_epi16(qh, 2); break;
    case 2: hi = qh; break;
    default: hi = _mm256_srli_epi16(qh, 2); break;
    }
    return _mm256_or_si256(lo, _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
}

static void pack_q6_K(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_q6_K *p = panel;
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        const al_block_q6_K *blk[PR];
        __m256i sc[8], pairs[8], dup[16];
        for (int i = 0; i < PR; i++) {
            blk[i] = (const al_block_q6_K *)(w + (size_t)i * row_bytes) + b;
            p[b].d[i] = h2f(blk[i]->d);
            sc[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk[i]->scales));
        }
        pair_tables(sc, pairs, dup, 16);
        for (int g = 0; g < 16; g++)
            _mm256_store_si256((__m256i *)p[b].sc[g], dup[g]);
        for (int j = 0; j < 8; j++)
            _mm256_store_si256((__m256i *)p[b].sp[j], pairs[j]);
        for (int s = 0; s < 8; s++) {
            __m256i r[8], o[8];
            for (int i = 0; i < PR; i++)
                r[i] = q6_sub(blk[i], s);
            interleave8(r, o);
            for (int c = 0; c < 8; c++)
                _mm256_store_si256((__m256i *)p[b].q[s][c], o[c]);
        }
    }
}

/* Two chunk products (pairs <= 2*63*127 = 16002) add up in int16, then
 * one madd with the group's scales; the offset is 32 * sum of scale x
 * the activation sums of 16 (bsums). */
AI void gemm_q6_K_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_q6_K *p = panel;
    const int64_t nb = k / AL_QK_K;
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
            __m256i off = _mm256_madd_epi16(_mm256_load_si256((const __m256i *)p[b].sp[0]), bcast2x16(x[t]->bsums));
            _Pragma("GCC unroll 8")
            for (int j = 1; j < 8; j++)
                off = _mm256_add_epi32(off, _mm256_madd_epi16(_mm256_load_si256((const __m256i *)p[b].sp[j]),
                                                              bcast2x16(x[t]->bsums + 2 * j)));
            s32[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
        }
        for (int g = 0; g < 16; g++) {
            const int s = g / 2, c0 = (g % 2) * 4;
            const __m256i w0 = _mm256_load_si256((const __m256i *)p[b].q[s][c0]);
            const __m256i w1 = _mm256_load_si256((const __m256i *)p[b].q[s][c0 + 1]);
            const __m256i w2 = _mm256_load_si256((const __m256i *)p[b].q[s][c0 + 2]);
            const __m256i w3 = _mm256_load_si256((const __m256i *)p[b].q[s][c0 + 3]);
            const __m256i sc = _mm256_load_si256((const __m256i *)p[b].sc[g]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const int8_t *y = x[t]->qs + 32 * s + 4 * c0;
                const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast4(y)),
                                                     _mm256_maddubs_epi16(w1, bcast4(y + 4)));
                const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(w2, bcast4(y + 8)),
                                                     _mm256_maddubs_epi16(w3, bcast4(y + 12)));
                s32[t] = _mm256_add_epi32(s32[t], _mm256_add_epi32(_mm256_madd_epi16(s01, sc), _mm256_madd_epi16(s23, sc)));
            }
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

/* ------------------------------------------------------------ dispatch */

#define PDISPATCH(name, call)                                                                                  \
    static void name(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss,  \
                     int nt, float *out, int64_t ldo)                                                          \
    {                                                                                                          \
        (void)asum, (void)ss;                                                                                  \
        switch (nt) {                                                                                          \
        case 1: call(1); break;                                                                                \
        case 2: call(2); break;                                                                                \
        case 3: call(3); break;                                                                                \
        default: call(4); break;                                                                               \
        }                                                                                                      \
    }

#define C_Q4_0(n) gemm_q4_0_nt(k, panel, a, as, asum, ss, out, ldo, n)
#define C_Q8_0(n) gemm_q8_0_nt(k, panel, a, as, out, ldo, n)
#define C_Q4_K(n) gemm_q4_K_nt(k, panel, a, as, asum, ss, out, ldo, n)
#define C_Q6_K(n) gemm_q6_K_nt(k, panel, a, as, out, ldo, n)

PDISPATCH(gemm_q4_0, C_Q4_0)
PDISPATCH(gemm_q8_0, C_Q8_0)
PDISPATCH(gemm_q4_K, C_Q4_K)
PDISPATCH(gemm_q6_K, C_Q6_K)

void al_panel_kernels_avx2(al_kernels *ks)
{
    ks->panel[AL_TYPE_Q4_0] = (al_panel_kernel){bytes_q4_0, pack_q4_0, gemm_q4_0, true};
    ks->panel[AL_TYPE_Q8_0] = (al_panel_kernel){bytes_q8_0, pack_q8_0, gemm_q8_0, false};
    ks->panel[AL_TYPE_Q4_K] = (al_panel_kernel){bytes_q4_K, pack_q4_K, gemm_q4_K, true};
    ks->panel[AL_TYPE_Q6_K] = (al_panel_kernel){bytes_q6_K, pack_q6_K, gemm_q6_K, false};
}
#else
void al_panel_kernels_avx2(al_kernels *ks)
{
    (void)ks;
}
#endif
