/* attention.h - the F16 KV-cache kernels of attention: a plain-C reference
 * and an AVX2/F16C twin (attention_avx2.c), chosen once at run time by
 * al_attn_kernels(). */
#ifndef AL_MODEL_ATTENTION_H
#define AL_MODEL_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* A tile of causal attention: n_tok consecutive query tokens of one
 * sequence x the nh query heads that share one KV head. Token j sits at
 * position pos0 + j and sees positions lo_j..pos0+j, lo_j = 0 or, with a
 * window, max(0, pos0 + j - window + 1). Zero in the fields after scale
 * gives plain causal attention over the K/V rows from position 0. */
typedef struct al_attn_tile {
    const float *q;     /* query of token j, head h: q + j*ldq + h*hd (hd floats) */
    size_t ldq;         /* floats between tokens' queries, >= nh*hd */
    float *out;         /* output of token j, head h: out + j*ldo + h*hd */
    size_t ldo;
    const uint16_t *k;  /* K row of position kv_p0 + i: k + i*stride (hd halves) */
    const uint16_t *v;  /* V row of position kv_p0 + i: v + i*stride */
    size_t stride;      /* halves between positions */
    uint32_t nh;        /* query heads, >= 1 */
    uint32_t n_tok;     /* tokens, >= 1 */
    uint32_t hd;        /* head size */
    int32_t pos0;       /* position of token 0, >= 0 */
    float scale;        /* applied to q.k before the softmax */
    int32_t kv_p0;      /* position of the first K/V row, 0 <= kv_p0 <= lo_0 */
    uint32_t window;    /* sliding window, 0: none */
    float softcap;      /* scores become softcap * tanh(score / softcap); 0: none */
    const float *sinks; /* NULL, or head h's sink logit sinks[h]: it joins each softmax's denominator */
} al_attn_tile;

typedef struct al_attn_kernels {
    /* dst[i] = half(src[i]) with round-to-nearest-even */
    void (*to_f16)(const float *src, uint16_t *dst, uint32_t n);
    /* Attention of nh query heads that share one KV head, over n_pos
     * positions: out[h*hd + i] = sum_p softmax_p(scale * q_h . k_p) v_p[i],
     * q_h = q + h*hd, k_p = k + p*stride, v_p = v + p*stride (halves).
     * scores: nh*n_pos floats of scratch. n_pos >= 1. */
    void (*attend_f16)(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride,
                       int32_t n_pos, uint32_t hd, float scale, float *scores, float *out);
    /* The tile's attention, each K/V row read once for the whole tile.
     * Writes only the tile's output rows. scratch: at least
     * al_attn_tile_scratch_floats(nh, n_tok, hd, pos0+n_tok) floats.
     * The fast kernels give each token the same bits whatever tile it is
     * in (a prompt in one batch = the same prompt token by token). */
    void (*attend_tile_f16)(const al_attn_tile *t, float *scratch);
    /* The fast tiles' online softmax over only the blocks of positions
     * p_lo..p_hi-1 (p_lo a multiple of AL_ATTN_TILE_BLOCK; p_hi one too, or
     * past the tile's last position), carried on from the state in part
     * (al_attn_part_floats(nr, hd) floats, from al_attn_part_init). Calls
     * over consecutive ranges give the same bits as one call over their
     * union. Only for tiles al_attn_tile_fast() takes; NULL in the
     * plain-C set. scratch: as attend_tile_f16's. */
    void (*attend_run_f16)(const al_attn_tile *t, int32_t p_lo, int32_t p_hi, float *part, float *scratch);
} al_attn_kernels;

/* Positions of a segment. The fast tile kernels run their online softmax
 * segment by segment (segments start at multiples of it) and fold each
 * segment's part into the total in order. Decode gives each thread a
 * segment of all KV heads (of a group of them when segments are too few
 * to give each thread about 4 chunks), then folds the parts in the same
 * order: the same bits as a prompt tile. A multiple of AL_ATTN_TILE_BLOCK. */
#define AL_ATTN_SEG 256

/* A part: the running softmax state of a tile's nr = nh*n_tok rows over
 * some positions: nr*hd floats of unnormalised output (row r at r*hd),
 * then nr running maxima, then nr sums of e^(score - max) (0: the row saw
 * none of the positions). */
static inline size_t al_attn_part_floats(uint32_t nr, uint32_t hd)
{
    return (size_t)nr * (hd + 2);
}
/* An empty part: outputs 0, maxima -inf, sums 0. */
void al_attn_part_init(float *part, uint32_t nr, uint32_t hd);
/* The total of a tile's rows before any part: its output rows zeroed,
 * max[r] and sum[r] (nr floats each) the row's sink (logit, 1) or
 * (-inf, 0). */
void al_attn_total_init(const al_attn_tile *t, float *max, float *sum);
/* Folds a part into the total: the output rows, max and sum rescaled to
 * the larger max. Rows the part did not see are left alone. */
void al_attn_total_fold(const al_attn_tile *t, const float *part, float *max, float *sum);
/* The softmax's division: output rows /= sum. */
void al_attn_total_end(const al_attn_tile *t, const float *sum);
/* The fast tile kernels' attend_tile_f16 from their run: segment by
 * segment (AL_ATTN_SEG), each from an empty part, folded in order; tiles
 * al_attn_tile_fast() does not take go to al_attend_tile_f16_ref.
 * scratch: al_attn_tile_scratch_floats() floats. */
void al_attn_tile_by_segments(const al_attn_tile *t, float *scratch,
                              void (*run)(const al_attn_tile *, int32_t, int32_t, float *, float *));

/* Floats of scratch attend_tile_f16 (either kernel) needs for tiles of at
 * most n_tok tokens x nh heads whose last position is below n_pos_max. */
size_t al_attn_tile_scratch_floats(uint32_t nh, uint32_t n_tok, uint32_t hd, uint32_t n_pos_max);

/* The plain-C kernels the fast ones fall back to for shapes they do not
 * handle (attend_f16: head sizes that are not a multiple of 8; the tile:
 * head sizes not a multiple of 16, or more than AL_ATTN_TILE_MAX_ROWS rows;
 * al_attn_tile_fast() says which). al_attend_tile_f16_ref is the oracle:
 * token by token, head by head, the softmax over all visible positions. */
void al_attend_f16_ref(const float *q, uint32_t nh, const uint16_t *k, const uint16_t *v, size_t stride, int32_t n_pos,
                       uint32_t hd, float scale, float *scores, float *out);
void al_attend_tile_f16_ref(const al_attn_tile *t, float *scratch);

/* The fast tile kernels' limits: query rows (n_tok*nh) and positions per
 * block of their online softmax (blocks start at multiples of it). */
#define AL_ATTN_TILE_MAX_ROWS 64
#define AL_ATTN_TILE_BLOCK 32

/* Whether the fast tile kernels take tiles of these rows and head size
 * themselves (else they call al_attend_tile_f16_ref). */
static inline int al_attn_tile_fast(uint32_t nh, uint32_t n_tok, uint32_t hd)
{
    return hd % 16 == 0 && hd <= 1024 && n_tok <= AL_ATTN_TILE_MAX_ROWS && nh * n_tok <= AL_ATTN_TILE_MAX_ROWS;
}

/* The kernels for this CPU: AVX-512 when the matmul kernels chose AVX-512
 * (al_kernel_isa(): CPUID, XGETBV, AIRLOCK_NO_AVX512), else AVX2+FMA+F16C
 * when the CPU and OS support them and AIRLOCK_NO_AVX2 is unset, else
 * plain C. Thread-safe; the choice is made once. */
const al_attn_kernels *al_attn_kernels_get(void);
/* The plain-C reference kernels (tests hold the fast ones to these). */
const al_attn_kernels *al_attn_kernels_ref(void);
/* The AVX2 kernels, or NULL when not compiled in. */
const al_attn_kernels *al_attn_kernels_avx2(void);
/* The AVX-512 (F/BW/VL) kernels, or NULL when not compiled in; the caller
 * checks the CPU (al_cpu_has_avx512_vnni). */
const al_attn_kernels *al_attn_kernels_avx512(void);

#endif
