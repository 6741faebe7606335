/* kernels_iq_avx2.c - AVX2 dot products and panel kernels of the i-quant
 * grid types with Q8_K activations, the twins of the plain-C kernels in
 * quant_iq.c. Compiled with -mavx2 -mfma -mf16c only; installed by
 * al_kernels_avx2() after the CPU check.
 *
 * Per group of 32 weights the codebook entries are fetched once into a
 * vector of unsigned magnitudes (IQ2, IQ3) or int8 -1/0/1 (IQ1), the sign
 * bits are expanded to +-1 bytes and applied to the activations (so that
 * maddubs sees unsigned x signed), and the group's integer scale is applied
 * in the int16 -> int32 madd: all sums are exact integers, as in the
 * reference; only the float accumulation over blocks differs in order.
 * Entries are gathered (vpgatherdd/dq from vector indices) for IQ3_S and
 * IQ1_S and loaded one by one for the others, whichever was faster on the
 * dev host: IQ3_S 1.7x with the gather, IQ2_XXS 1.4x and IQ3_XXS 1.15x
 * without (their ksigns lookups compete with a gather for the load ports). */
#include "tensor/kernels.h"
#include "tensor/quant_iq.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "tensor/avx2_util.h"

#define TOK(a, as, t) ((const char *)(a) + (size_t)(t) * (as))

static inline uint32_t rd32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint16_t rd16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Bit j of x -> byte j = -1 if set, else +1. */
AI __m256i signs_pm1(uint32_t x)
{
    const __m256i sel = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), sel);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_or_si256(v, _mm256_set1_epi8(1));
}

/* The 8-byte entries of a 64-bit codebook at 4 indices: scalar loads
 * (faster than vpgatherdq for 4 elements: IQ2_XXS 1.45x on the dev host). */
AI __m256i grid4(const uint64_t *table, int i0, int i1, int i2, int i3)
{
    return _mm256_set_epi64x((long long)table[i3], (long long)table[i2], (long long)table[i1], (long long)table[i0]);
}

/* +-1 sign bytes of the 4 x 7 sign-bit fields in the low 28 bits of sg
 * (ksigns, the 8th sign being their parity). */
AI __m256i ksigns_pm1(uint32_t sg)
{
    const uint8_t *k = al_iq_ksigns;
    return signs_pm1((uint32_t)k[sg & 127] | (uint32_t)k[(sg >> 7) & 127] << 8 | (uint32_t)k[(sg >> 14) & 127] << 16 |
                     (uint32_t)k[(sg >> 21) & 127] << 24);
}

/* int16 scale lanes: s0 for elements 0..15 of a group, s1 for 16..31. */
AI __m256i scale2(int s0, int s1)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
}

/* One group of a type, decoded: the weights' magnitudes u and their +-1
 * sign bytes sg (IQ1_M: of 8 x grid +- 1; IQ1_S: u holds the int8 grid
 * values -1/0/1, its shift is added with the bsums), the int16 scales. */
typedef struct {
    __m256i u, sg, sc;
} iq_group;

AI iq_group decode(uint32_t type, const uint8_t *blk, int g)
{
    iq_group r;
    r.sg = _mm256_setzero_si256();
    if (type == AL_TYPE_IQ2_XXS) {
        const uint8_t *q = blk + 2 + 8 * g;
        const uint32_t sg = rd32(q + 4);
        r.u = grid4(al_iq2xxs_grid, q[0], q[1], q[2], q[3]);
        r.sg = ksigns_pm1(sg);
        r.sc = _mm256_set1_epi16((short)(2 * (sg >> 28) + 1));
    } else if (type == AL_TYPE_IQ2_XS) {
        const al_block_iq2_xs *b = (const al_block_iq2_xs *)blk;
        const uint16_t *qs = &b->qs[4 * g];
        r.u = grid4(al_iq2xs_grid, rd16(qs) & 511, rd16(qs + 1) & 511, rd16(qs + 2) & 511, rd16(qs + 3) & 511);
        const uint8_t *k = al_iq_ksigns;
        r.sg = signs_pm1((uint32_t)k[rd16(qs) >> 9] | (uint32_t)k[rd16(qs + 1) >> 9] << 8 |
                         (uint32_t)k[rd16(qs + 2) >> 9] << 16 | (uint32_t)k[rd16(qs + 3) >> 9] << 24);
        r.sc = scale2(2 * (b->scales[g] & 0x0f) + 1, 2 * (b->scales[g] >> 4) + 1);
    } else if (type == AL_TYPE_IQ2_S) {
        const al_block_iq2_s *b = (const al_block_iq2_s *)blk;
        const uint8_t *q = b->qs + 4 * g;
        const int h = b->qh[g];
        r.u = grid4(al_iq2s_grid, q[0] | ((h << 8) & 0x300), q[1] | ((h << 6) & 0x300), q[2] | ((h << 4) & 0x300),
                    q[3] | ((h << 2) & 0x300));
        r.sg = signs_pm1(rd32(b->qs + AL_QK_K / 8 + 4 * g));
        r.sc = scale2(2 * (b->scales[g] & 0x0f) + 1, 2 * (b->scales[g] >> 4) + 1);
    } else if (type == AL_TYPE_IQ3_XXS) {
        const al_block_iq3_xxs *b = (const al_block_iq3_xxs *)blk;
        const uint32_t sg = rd32(b->qs + AL_QK_K / 4 + 4 * g);
        const uint8_t *q = b->qs + 8 * g;
        const uint32_t *G = al_iq3xxs_grid;
        r.u = _mm256_set_epi32((int)G[q[7]], (int)G[q[6]], (int)G[q[5]], (int)G[q[4]], (int)G[q[3]], (int)G[q[2]],
                               (int)G[q[1]], (int)G[q[0]]);
        r.sg = ksigns_pm1(sg);
        r.sc = _mm256_set1_epi16((short)(2 * (sg >> 28) + 1));
    } else if (type == AL_TYPE_IQ3_S) {
        const al_block_iq3_s *b = (const al_block_iq3_s *)blk;
        /* index m: qs byte m, bit m of qh[g] as bit 8 */
        const __m256i hi = _mm256_and_si256(
            _mm256_sllv_epi32(_mm256_set1_epi32(b->qh[g]), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1)),
            _mm256_set1_epi32(256));
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + 8 * g)));
        r.u = _mm256_i32gather_epi32((const int *)al_iq3s_grid, _mm256_or_si256(idx, hi), 4);
        r.sg = signs_pm1(rd32(b->signs + 4 * g));
        r.sc = _mm256_set1_epi16((short)(2 * ((b->scales[g / 2] >> (4 * (g & 1))) & 0x0f) + 1));
    } else if (type == AL_TYPE_IQ1_S) {
        const al_block_iq1_s *b = (const al_block_iq1_s *)blk;
        const uint16_t qh = rd16(&b->qh[g]);
        /* index l: qs byte l, bits 3l..3l+2 of qh as bits 8..10; gathered
         * (here faster than scalar loads: 0.71 vs 0.87 s in a 1-token loop) */
        const __m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)rd32(b->qs + 4 * g)));
        const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(qh << 8), _mm_setr_epi32(0, 3, 6, 9)),
                                         _mm_set1_epi32(0x700));
        r.u = _mm256_i32gather_epi64((const long long *)al_iq1s_grid, _mm_or_si128(lo, hi), 8);
        r.sc = _mm256_set1_epi16((short)(2 * ((qh >> 12) & 7) + 1));
    } else { /* IQ1_M */
        const al_block_iq1_m *b = (const al_block_iq1_m *)blk;
        const uint16_t h = rd16(b->qh + 2 * g); /* nibble l: 3 index bits, the shift's sign */
        const uint8_t *q = b->qs + 4 * g;
        r.u = grid4(al_iq1s_grid, q[0] | ((h << 8) & 0x700), q[1] | ((h << 4) & 0x700), q[2] | (h & 0x700),
                    q[3] | ((h >> 4) & 0x700));
        /* w + shift/8 = (8w +- 1) / 8: one int8 weight, its magnitude and sign */
        const long long neg = -1, pos = 0x0101010101010101ll;
        const __m256i dl = _mm256_set_epi64x(h & 0x8000 ? neg : pos, h & 0x0800 ? neg : pos, h & 0x0080 ? neg : pos,
                                             h & 0x0008 ? neg : pos);
        const __m256i q8w = _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), r.u), dl);
        r.u = _mm256_sign_epi8(q8w, q8w);
        r.sg = q8w;
        const uint16_t sc = rd16(b->scales + 2 * (g / 2));
        const int sh = 6 * (g & 1);
        r.sc = scale2(2 * ((sc >> sh) & 7) + 1, 2 * ((sc >> (sh + 3)) & 7) + 1);
    }
    return r;
}

AI size_t block_bytes(uint32_t type)
{
    switch (type) {
    case AL_TYPE_IQ2_XXS: return sizeof(al_block_iq2_xxs);
    case AL_TYPE_IQ2_XS: return sizeof(al_block_iq2_xs);
    case AL_TYPE_IQ2_S: return sizeof(al_block_iq2_s);
    case AL_TYPE_IQ3_XXS: return sizeof(al_block_iq3_xxs);
    case AL_TYPE_IQ3_S: return sizeof(al_block_iq3_s);
    case AL_TYPE_IQ1_S: return sizeof(al_block_iq1_s);
    default: return sizeof(al_block_iq1_m);
    }
}

/* The float factor of a block: d * (1/8 | 1/4 | 1) (IQ1_M: 1/8 for its
 * weights decoded as 8 x grid +- 1). */
AI float block_d(uint32_t type, const uint8_t *blk)
{
    if (type == AL_TYPE_IQ1_M)
        return 0.125f * h2f(al_iq1_m_d((const al_block_iq1_m *)blk));
    const float d = h2f(rd16(blk));
    if (type == AL_TYPE_IQ2_XXS || type == AL_TYPE_IQ2_XS || type == AL_TYPE_IQ2_S)
        return 0.125f * d;
    if (type == AL_TYPE_IQ3_XXS)
        return 0.25f * d;
    return d;
}

AI void dot_iq_nt(uint32_t type, int64_t k, const void *vw, const void *a, size_t as, float *out, const int nt)
{
    __m256 acc[AL_DOT_MAX_NT];
    const al_block_q8_K *x[AL_DOT_MAX_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++) {
        acc[t] = _mm256_setzero_ps();
        x[t] = (const al_block_q8_K *)TOK(a, as, t);
    }
    const int64_t nb = k / AL_QK_K;
    const size_t bsz = block_bytes(type);
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = (const uint8_t *)vw + (size_t)i * bsz;
        __m256i sumi[AL_DOT_MAX_NT];
        int sum1[AL_DOT_MAX_NT]; /* IQ1_S: the shifts against the bsums */
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            sumi[t] = _mm256_setzero_si256();
            sum1[t] = 0;
        }
        for (int g = 0; g < 8; g++) {
            const iq_group r = decode(type, blk, g);
            int ls_delta = 0;
            if (type == AL_TYPE_IQ1_S) {
                const uint16_t qh = rd16(&((const al_block_iq1_s *)blk)->qh[g]);
                ls_delta = (2 * ((qh >> 12) & 7) + 1) * (qh & 0x8000 ? -1 : 1);
            }
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++) {
                const __m256i q8 = _mm256_loadu_si256((const __m256i *)(x[t][i].qs + 32 * g));
                __m256i p;
                if (type == AL_TYPE_IQ1_S) {
                    p = _mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, r.u));
                } else {
                    p = _mm256_maddubs_epi16(r.u, _mm256_sign_epi8(q8, r.sg));
                }
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, r.sc));
                if (type == AL_TYPE_IQ1_S)
                    sum1[t] += ls_delta * (x[t][i].bsums[2 * g] + x[t][i].bsums[2 * g + 1]);
            }
        }
        const float dw = block_d(type, blk);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256 dv = _mm256_set1_ps(dw * x[t][i].d);
            __m256 s = _mm256_cvtepi32_ps(sumi[t]);
            if (type == AL_TYPE_IQ1_S)
                s = _mm256_add_ps(s, _mm256_setr_ps(AL_IQ1_DELTA * (float)sum1[t], 0, 0, 0, 0, 0, 0, 0));
            acc[t] = _mm256_fmadd_ps(dv, s, acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        out[t] = hsum(acc[t]);
}

#define DISPATCH(name, type)                                                                       \
    static void name(int64_t k, const void *w, const void *a, size_t as, int nt, float *out)      \
    {                                                                                              \
        switch (nt) {                                                                              \
        case 1: dot_iq_nt(type, k, w, a, as, out, 1); break;                                       \
        case 2: dot_iq_nt(type, k, w, a, as, out, 2); break;                                       \
        case 3: dot_iq_nt(type, k, w, a, as, out, 3); break;                                       \
        default: dot_iq_nt(type, k, w, a, as, out, 4); break;                                      \
        }                                                                                          \
    }

DISPATCH(dot_iq2_xxs, AL_TYPE_IQ2_XXS)
DISPATCH(dot_iq2_xs, AL_TYPE_IQ2_XS)
DISPATCH(dot_iq2_s, AL_TYPE_IQ2_S)
DISPATCH(dot_iq3_xxs, AL_TYPE_IQ3_XXS)
DISPATCH(dot_iq3_s, AL_TYPE_IQ3_S)
DISPATCH(dot_iq1_s, AL_TYPE_IQ1_S)
DISPATCH(dot_iq1_m, AL_TYPE_IQ1_M)

/* ------------------------------------------------------------ panels */

#define PR AL_PANEL_ROWS

/* Panel super-block of every i-quant type, for prompt batches: 8 rows'
 * 256 weights decoded to int8 (grid value x sign; IQ1: 8 x grid +- 1) and
 * stored plus 64, so unsigned (<= 126) for vpmaddubsw: q[g][c] = weights
 * 4c..4c+3 of group g of rows 0..7 (row r in the 32-bit lane r);
 * sc[h][2r], sc[h][2r+1] = row r's integer scale of weights 16h..16h+15;
 * scp[j][2r], scp[j][2r+1] = row r's scales 2j and 2j+1 (to take the +64
 * out with the activations' bsums); d[r] = row r's float factor (d/8 for
 * IQ2 and IQ1, d/4 for IQ3_XXS, d for IQ3_S). About 10 bits a weight, so
 * panels are made per matmul call for batches of tokens and not kept
 * (compact false): the codebook decoding, the dot kernels' main cost, is
 * then shared by every token of the batch. */
typedef struct {
    float d[PR];
    int16_t sc[16][2 * PR];
    int16_t scp[8][2 * PR];
    uint8_t q[8][8][32];
} panel_iq;

static size_t bytes_iq(int64_t k)
{
    return (size_t)(k / AL_QK_K) * sizeof(panel_iq);
}

AI void pack_iq(uint32_t type, int64_t k, const uint8_t *w, size_t row_bytes, void *panel)
{
    panel_iq *p = panel;
    const size_t bsz = block_bytes(type);
    for (int64_t b = 0; b < k / AL_QK_K; b++) {
        _Alignas(32) uint8_t rows[PR][AL_QK_K];
        for (int r = 0; r < PR; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)b * bsz;
            p[b].d[r] = block_d(type, blk) * (type == AL_TYPE_IQ1_S ? 0.125f : 1.0f);
            for (int g = 0; g < 8; g++) {
                const iq_group gr = decode(type, blk, g);
                __m256i q;
                if (type == AL_TYPE_IQ1_S) { /* 8 x grid +- 1 */
                    const __m256i dl =
                        _mm256_set1_epi8(rd16(&((const al_block_iq1_s *)blk)->qh[g]) & 0x8000 ? -1 : 1);
                    q = _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), gr.u), dl);
                } else {
                    q = _mm256_sign_epi8(gr.u, gr.sg);
                }
                _mm256_store_si256((__m256i *)(rows[r] + 32 * g), _mm256_add_epi8(q, _mm256_set1_epi8(64)));
                const int16_t s0 = (int16_t)_mm256_extract_epi16(gr.sc, 0), s1 = (int16_t)_mm256_extract_epi16(gr.sc, 8);
                p[b].sc[2 * g][2 * r] = p[b].sc[2 * g][2 * r + 1] = s0;
                p[b].sc[2 * g + 1][2 * r] = p[b].sc[2 * g + 1][2 * r + 1] = s1;
                p[b].scp[g][2 * r] = s0;
                p[b].scp[g][2 * r + 1] = s1;
            }
        }
        for (int g = 0; g < 8; g++)
            for (int c = 0; c < 8; c++)
                for (int r = 0; r < PR; r++)
                    memcpy(&p[b].q[g][c][4 * r], &rows[r][32 * g + 4 * c], 4);
    }
}


/* (w + 64) x y (pairs <= 2 * 126 * 127 < 2^15) times the rows' scales in
 * one madd, summed in int32 per row lane; then 64 x sum(scale x bsum) off. */
AI void gemm_iq_nt(int64_t k, const void *panel, const void *a, size_t as, float *out, int64_t ldo, const int nt)
{
    const panel_iq *p = panel;
    const int64_t nb = k / AL_QK_K;
    __m256 acc[AL_PANEL_NT];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const al_block_q8_K *x[AL_PANEL_NT];
        __m256i s32[AL_PANEL_NT], off[AL_PANEL_NT];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            x[t] = (const al_block_q8_K *)((const char *)a + (size_t)t * as) + b;
            s32[t] = _mm256_setzero_si256();
            off[t] = _mm256_setzero_si256();
        }
        for (int g = 0; g < 8; g++) {
            const __m256i scp = _mm256_loadu_si256((const __m256i *)p[b].scp[g]);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < nt; t++)
                off[t] = _mm256_add_epi32(off[t], _mm256_madd_epi16(scp, bcast4(x[t]->bsums + 2 * g)));
            _Pragma("GCC unroll 2")
            for (int h = 0; h < 2; h++) {
                const __m256i sc = _mm256_loadu_si256((const __m256i *)p[b].sc[2 * g + h]);
                _Pragma("GCC unroll 4")
                for (int c = 4 * h; c < 4 * h + 4; c++) {
                    const __m256i w = _mm256_loadu_si256((const __m256i *)p[b].q[g][c]);
                    _Pragma("GCC unroll 8")
                    for (int t = 0; t < nt; t++) {
                        const __m256i y = bcast4(x[t]->qs + 32 * g + 4 * c);
                        s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), sc));
                    }
                }
            }
        }
        const __m256 d = _mm256_loadu_ps(p[b].d);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < nt; t++) {
            const __m256i s = _mm256_sub_epi32(s32[t], _mm256_slli_epi32(off[t], 6));
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[t]->d)), _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + t * ldo, acc[t]);
}

static void gemm_iq(int64_t k, const void *panel, const void *a, size_t as, const int16_t *asum, size_t ss, int nt,
                    float *out, int64_t ldo)
{
    (void)asum, (void)ss;
    switch (nt) {
    case 1: gemm_iq_nt(k, panel, a, as, out, ldo, 1); break;
    case 2: gemm_iq_nt(k, panel, a, as, out, ldo, 2); break;
    case 3: gemm_iq_nt(k, panel, a, as, out, ldo, 3); break;
    default: gemm_iq_nt(k, panel, a, as, out, ldo, 4); break;
    }
}

#define PACK(name, type)                                                                           \
    static void name(int64_t k, const uint8_t *w, size_t row_bytes, void *panel)                   \
    {                                                                                              \
        pack_iq(type, k, w, row_bytes, panel);                                                     \
    }

PACK(pack_iq2_xxs, AL_TYPE_IQ2_XXS)
PACK(pack_iq2_xs, AL_TYPE_IQ2_XS)
PACK(pack_iq2_s, AL_TYPE_IQ2_S)
PACK(pack_iq3_xxs, AL_TYPE_IQ3_XXS)
PACK(pack_iq3_s, AL_TYPE_IQ3_S)
PACK(pack_iq1_s, AL_TYPE_IQ1_S)
PACK(pack_iq1_m, AL_TYPE_IQ1_M)

void al_iq_kernels_avx2(struct al_kernels *ks)
{
    ks->panel[AL_TYPE_IQ2_XXS] = (al_panel_kernel){bytes_iq, pack_iq2_xxs, gemm_iq, false, false, 0, NULL};
    ks->panel[AL_TYPE_IQ2_XS] = (al_panel_kernel){bytes_iq, pack_iq2_xs, gemm_iq, false, false, 0, NULL};
    ks->panel[AL_TYPE_IQ2_S] = (al_panel_kernel){bytes_iq, pack_iq2_s, gemm_iq, false, false, 0, NULL};
    ks->panel[AL_TYPE_IQ3_XXS] = (al_panel_kernel){bytes_iq, pack_iq3_xxs, gemm_iq, false, false, 0, NULL};
    ks->panel[AL_TYPE_IQ3_S] = (al_panel_kernel){bytes_iq, pack_iq3_s, gemm_iq, false, false, 0, NULL};
    ks->panel[AL_TYPE_IQ1_S] = (al_panel_kernel){bytes_iq, pack_iq1_s, gemm_iq, false, false, 0, NULL};
    ks->panel[AL_TYPE_IQ1_M] = (al_panel_kernel){bytes_iq, pack_iq1_m, gemm_iq, false, false, 0, NULL};
    ks->dot[AL_TYPE_IQ2_XXS] = dot_iq2_xxs;
    ks->dot[AL_TYPE_IQ2_XS] = dot_iq2_xs;
    ks->dot[AL_TYPE_IQ2_S] = dot_iq2_s;
    ks->dot[AL_TYPE_IQ3_XXS] = dot_iq3_xxs;
    ks->dot[AL_TYPE_IQ3_S] = dot_iq3_s;
    ks->dot[AL_TYPE_IQ1_S] = dot_iq1_s;
    ks->dot[AL_TYPE_IQ1_M] = dot_iq1_m;
}
#else
void al_iq_kernels_avx2(struct al_kernels *ks)
{
    (void)ks;
}
#endif
