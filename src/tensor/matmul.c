/* matmul.c - the matmul drivers: activation conversion, work split over the
 * thread pool in (row block x token tile) chunks taken from an atomic
 * counter, and the exact dequantize-then-dot oracle. */
#include <stdatomic.h>
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"

#define AL_ROW_BLOCK 16          /* rows per chunk unit: 64 bytes of Y */
#define AL_TILE_BYTES (256 << 10) /* activation bytes per token tile */
#define AL_PANEL_TILE_BYTES (2 << 20) /* the same with panels (each tile packs them again) */
#define AL_SUB_ROWS 8            /* rows kept in L1 across a token group */
#define AL_PANEL_MIN_NT 8        /* fewer tokens: dot kernels (packing would not pay) */

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

bool al_matmul_check(uint32_t wtype, int64_t k)
{
    const al_type_traits *tr = al_type_get(wtype);
    if (k <= 0 || al_act_type(wtype) == AL_TYPE_COUNT || tr->block_elems == 0)
        return false;
    return k % tr->block_elems == 0;
}

/* Bytes of the per-32 activation sums of n_tok rows (panel kernels). */
static size_t asum_bytes(int64_t k, int64_t n_tok)
{
    return round64((size_t)(k / AL_QK) * sizeof(int16_t) * (size_t)n_tok);
}

size_t al_matmul_scratch_bytes(uint32_t wtype, int64_t k, int64_t n_tok)
{
    uint32_t at = al_act_type(wtype);
    if (at == AL_TYPE_F32 || n_tok <= 0 || k <= 0)
        return 64;
    /* F16 / BF16: room for F32 rows (panels with f32_acts) */
    const size_t arb = at == AL_TYPE_F16 || at == AL_TYPE_BF16 ? (size_t)k * sizeof(float) : al_type_row_bytes(at, k);
    size_t rb = arb + (size_t)(k / AL_QK) * sizeof(int16_t);
    if (rb && (size_t)n_tok > SIZE_MAX / rb - 256)
        return SIZE_MAX;
    /* and the expanded row of the one-token kernels (al_act_expand) */
    const size_t xe = at == AL_TYPE_Q8_K || at == AL_TYPE_Q8_0 ? round64(AL_EXPAND_BYTES(k)) : 0;
    return round64(arb * (size_t)n_tok + 64) + asum_bytes(k, n_tok) + xe;
}

void al_act_expand(uint32_t atype, const void *row, int64_t k, uint8_t *xe)
{
    /* the int8 values sit in blocks: Q8_K's 256 after a float, Q8_0's 32
     * after a half */
    const int64_t blk = atype == AL_TYPE_Q8_K ? AL_QK_K : AL_QK;
    for (int64_t b = 0; b < k / blk; b++) {
        const int8_t *qs = atype == AL_TYPE_Q8_K ? ((const al_block_q8_K *)row)[b].qs : ((const al_block_q8_0 *)row)[b].qs;
        uint32_t *o = (uint32_t *)(xe + (size_t)b * (size_t)blk * 8);
        for (int64_t i = 0; i < blk / 4; i++) {
            uint32_t v;
            memcpy(&v, qs + 4 * i, 4);
            for (int r = 0; r < 8; r++)
                o[8 * i + r] = v;
        }
    }
}

size_t al_matmul_exact_scratch_bytes(int64_t k, int nth)
{
    if (nth < 1)
        nth = 1;
    if (k <= 0)
        return 64;
    return round64((size_t)k * sizeof(float)) * (size_t)nth;
}

#define AL_MM_MAX 4 /* matrices per al_matmul_multi call */

typedef struct mm_part {
    al_dot_fn dot;
    const al_panel_kernel *pk; /* panel path, or NULL */
    const uint8_t *packed;     /* prepacked panels (al_matmul_pack), or NULL */
    bool panels;               /* panel kernels even for few tokens (al_mm_desc) */
    int16_t *asum;             /* per-32 activation sums (pk->needs_asum) */
    const uint8_t *xe;         /* the one token's expanded row (pk->gemv), or NULL */
    uint32_t wtype, atype;
    const uint8_t *W;
    int64_t n_rows;
    size_t row_bytes;
    float *Y;
    int64_t ldy;
    const uint8_t *A;    /* converted activations (or X itself for F32) */
    size_t a_row_bytes;
    int64_t rows_per_chunk, n_rchunks, chunk0; /* chunk0: first chunk index in a token tile */
} mm_part;

typedef struct mm_job {
    mm_part part[AL_MM_MAX];
    int n_parts;
    int64_t k;
    const float *X;
    int64_t n_tok;
    int64_t tok_tile, chunks_per_tile, n_chunks;
    bool exact;
    const al_kernels *ks;
    uint8_t *exact_buf; /* (nth) dequantized rows, exact path */
    /* conversion */
    uint32_t conv_type;
    uint8_t *conv_dst;
    int16_t *conv_asum; /* NULL: sums not wanted */
    size_t conv_row_bytes;
    int64_t conv_unit, conv_units, conv_per_chunk;
} mm_job;

/* The sums of the int8 values of groups [g0, g1) of 32 of an activation
 * row (Q8_0 or Q8_K) into sum[g]. */
static void act_sums(uint32_t at, const uint8_t *row, int64_t g0, int64_t g1, int16_t *sum)
{
    for (int64_t g = g0; g < g1; g++) {
        if (at == AL_TYPE_Q8_K) {
            const al_block_q8_K *b = (const al_block_q8_K *)row + g / 8;
            sum[g] = (int16_t)(b->bsums[2 * (g % 8)] + b->bsums[2 * (g % 8) + 1]);
        } else {
            const int8_t *q = ((const al_block_q8_0 *)row)[g].qs;
            int s = 0;
            for (int i = 0; i < AL_QK; i++)
                s += q[i];
            sum[g] = (int16_t)s;
        }
    }
}

/* Converts elements [e0, e1) of token t's row into type `at` at row. */
static void convert(const al_kernels *ks, uint32_t at, const float *X, int64_t k, uint8_t *dst, size_t a_row_bytes,
                    int64_t t, int64_t e0, int64_t e1)
{
    const float *x = X + t * k + e0;
    uint8_t *row = dst + (size_t)t * a_row_bytes;
    int64_t n = e1 - e0;
    switch (at) {
    case AL_TYPE_Q8_0:
        ks->quant_q8_0(x, (al_block_q8_0 *)row + e0 / AL_QK, n);
        break;
    case AL_TYPE_Q8_1:
        al_quantize_row_q8_1(x, (al_block_q8_1 *)row + e0 / AL_QK, n);
        break;
    case AL_TYPE_Q8_K:
        ks->quant_q8_K(x, (al_block_q8_K *)row + e0 / AL_QK_K, n);
        break;
    case AL_TYPE_F16:
        al_fp32_to_fp16_row(x, (al_half *)row + e0, n);
        break;
    case AL_TYPE_BF16:
        al_fp32_to_bf16_row(x, (al_bf16 *)row + e0, n);
        break;
    case AL_ACT_F32_F16:
        ks->round_f16(x, (float *)row + e0, n);
        break;
    case AL_ACT_F32_BF16:
        al_round_bf16_row(x, (float *)row + e0, n);
        break;
    default:
        break;
    }
}

/* Converts the flat range [u0, u1) of conversion units (one activation
 * block each, or whole rows). */
static void convert_units(const mm_job *j, int64_t u0, int64_t u1)
{
    const int64_t unit = j->conv_unit, per_row = j->k / unit;
    while (u0 < u1) {
        int64_t t = u0 / per_row, b0 = u0 % per_row;
        int64_t b1 = b0 + (u1 - u0);
        if (b1 > per_row)
            b1 = per_row;
        convert(j->ks, j->conv_type, j->X, j->k, j->conv_dst, j->conv_row_bytes, t, b0 * unit, b1 * unit);
        if (j->conv_asum)
            act_sums(j->conv_type, j->conv_dst + (size_t)t * j->conv_row_bytes, b0 * unit / AL_QK, b1 * unit / AL_QK,
                     j->conv_asum + t * (j->k / AL_QK));
        u0 += b1 - b0;
    }
}

static void conv_chunk(void *ctx, int64_t c, int ith)
{
    (void)ith;
    const mm_job *j = ctx;
    int64_t u0 = c * j->conv_per_chunk, u1 = u0 + j->conv_per_chunk;
    convert_units(j, u0, u1 < j->conv_units ? u1 : j->conv_units);
}

/* Converts X to type at into dst: on the caller for small inputs, else
 * split over the pool. */
static void convert_all(mm_job *j, al_threadpool *tp, uint32_t at, uint8_t *dst, size_t a_row_bytes, int16_t *asum)
{
    j->conv_type = at;
    j->conv_dst = dst;
    j->conv_asum = asum;
    j->conv_row_bytes = a_row_bytes;
    if (at == AL_TYPE_Q8_K)
        j->conv_unit = AL_QK_K;
    else if (j->k % AL_QK == 0)
        j->conv_unit = AL_QK;
    else
        j->conv_unit = j->k;
    j->conv_units = j->k / j->conv_unit * j->n_tok;
    const int nth = al_threadpool_size(tp);
    if (nth == 1 || j->n_tok * j->k < 32768) {
        convert_units(j, 0, j->conv_units);
        return;
    }
    int64_t n_chunks = (int64_t)nth * 4;
    j->conv_per_chunk = (j->conv_units + n_chunks - 1) / n_chunks;
    n_chunks = (j->conv_units + j->conv_per_chunk - 1) / j->conv_per_chunk;
    al_threadpool_for(tp, n_chunks, conv_chunk, j);
}

static void exact_rows(const mm_job *j, const mm_part *p, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1)
{
    float *rowbuf = (float *)(j->exact_buf + (size_t)ith * round64((size_t)j->k * sizeof(float)));
    for (int64_t r = r0; r < r1; r++) {
        al_dequantize_row(p->wtype, p->W + (size_t)r * p->row_bytes, rowbuf, j->k);
        for (int64_t t = t0; t < t1; t++) {
            const float *x = j->X + t * j->k;
            double s = 0.0;
            for (int64_t i = 0; i < j->k; i++)
                s += (double)rowbuf[i] * (double)x[i];
            p->Y[t * p->ldy + r] = (float)s;
        }
    }
}

/* Rows [r0, r1) x tokens [t0, t1) through the panel kernels, 8 rows at a
 * time (the panel is packed once and used for every token of the tile).
 * Returns the first row left over (fewer than 8). */
static int64_t panel_rows(const mm_job *j, const mm_part *p, int64_t r0, int64_t r1, int64_t t0, int64_t t1)
{
    _Alignas(64) uint8_t buf[AL_PANEL_MAX_BYTES];
    const size_t ss = (size_t)(j->k / AL_QK), pb = p->pk->bytes(j->k);
    if (p->xe && p->pk->gemv && p->packed && t1 - t0 == 1) { /* one token: every panel of the block in one call */
        const int64_t np = (r1 - r0) / AL_PANEL_ROWS;
        p->pk->gemv(j->k, p->packed + (size_t)(r0 / AL_PANEL_ROWS) * pb, np, pb, p->A + (size_t)t0 * p->a_row_bytes,
                    p->xe, p->asum ? p->asum + (size_t)t0 * ss : NULL, p->Y + t0 * p->ldy + r0);
        return r0 + np * AL_PANEL_ROWS;
    }
    for (; r0 + AL_PANEL_ROWS <= r1; r0 += AL_PANEL_ROWS) {
        const uint8_t *panel = buf;
        if (p->packed)
            panel = p->packed + (size_t)(r0 / AL_PANEL_ROWS) * pb;
        else
            p->pk->pack(j->k, p->W + (size_t)r0 * p->row_bytes, p->row_bytes, buf);
        const int step = p->pk->max_nt ? p->pk->max_nt : AL_PANEL_NT;
        for (int64_t t = t0; t < t1; t += step) {
            const int nt = (int)(t1 - t < step ? t1 - t : step);
            p->pk->gemm(j->k, panel, p->A + (size_t)t * p->a_row_bytes, p->a_row_bytes,
                        p->asum ? p->asum + (size_t)t * ss : NULL, ss, nt, p->Y + t * p->ldy + r0, p->ldy);
        }
    }
    return r0;
}

float al_dot_f32_acts(uint32_t wtype, int64_t k, const uint8_t *w, const float *x)
{
    float s = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        uint16_t h;
        memcpy(&h, w + 2 * i, 2);
        s += (wtype == AL_TYPE_BF16 ? al_bf16_to_fp32(h) : al_fp16_to_fp32(h)) * x[i];
    }
    return s;
}

/* Rows [r0, r1) (fewer than 8, past the last panel) of an F16 / BF16
 * matrix whose activations are F32 rows (al_panel_f32_acts). */
static void f32_acts_rows(const mm_job *j, const mm_part *p, int64_t r0, int64_t r1, int64_t t0, int64_t t1)
{
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = t0; t < t1; t++)
            p->Y[t * p->ldy + r] = al_dot_f32_acts(p->wtype, j->k, p->W + (size_t)r * p->row_bytes,
                                                   (const float *)(p->A + (size_t)t * p->a_row_bytes));
}

/* One chunk: a block of rows of one matrix x one token tile. */
static void mm_chunk(void *ctx, int64_t c, int ith)
{
    const mm_job *j = ctx;
    const int64_t tt = c / j->chunks_per_tile;
    int64_t rc = c % j->chunks_per_tile;
    int pi = 0;
    while (pi + 1 < j->n_parts && rc >= j->part[pi + 1].chunk0)
        pi++;
    const mm_part *p = &j->part[pi];
    rc -= p->chunk0;
    int64_t t0 = tt * j->tok_tile, t1 = t0 + j->tok_tile;
    if (t1 > j->n_tok)
        t1 = j->n_tok;
    int64_t r0 = rc * p->rows_per_chunk, r1 = r0 + p->rows_per_chunk;
    if (r1 > p->n_rows)
        r1 = p->n_rows;
    if (j->exact) {
        exact_rows(j, p, ith, r0, r1, t0, t1);
        return;
    }
    if (p->pk) {
        r0 = panel_rows(j, p, r0, r1, t0, t1);
        if (r0 == r1)
            return;
        if (al_panel_f32_acts(p->wtype)) {
            f32_acts_rows(j, p, r0, r1, t0, t1);
            return;
        }
    }
    /* token groups outer, rows inner: a group's activations and a sub-block
     * of rows stay in L1 while they are multiplied */
    for (int64_t rb0 = r0; rb0 < r1; rb0 += AL_SUB_ROWS) {
        const int64_t rb1 = rb0 + AL_SUB_ROWS < r1 ? rb0 + AL_SUB_ROWS : r1;
        for (int64_t t = t0; t < t1; t += AL_DOT_MAX_NT) {
            const int nt = (int)(t1 - t < AL_DOT_MAX_NT ? t1 - t : AL_DOT_MAX_NT);
            const uint8_t *at = p->A + (size_t)t * p->a_row_bytes;
            for (int64_t r = rb0; r < rb1; r++) {
                float out[AL_DOT_MAX_NT];
                p->dot(j->k, p->W + (size_t)r * p->row_bytes, at, p->a_row_bytes, nt, out);
                for (int i = 0; i < nt; i++)
                    p->Y[(t + i) * p->ldy + r] = out[i];
            }
        }
    }
}

/* Chunking: rows in multiples of AL_ROW_BLOCK, as many chunks per token
 * tile over all parts as al_mm_chunking_for says. */
static void plan(mm_job *j, int nth)
{
    int64_t tile = j->n_tok;
    size_t arb = 0;
    for (int i = 0; i < j->n_parts; i++)
        arb = j->part[i].a_row_bytes > arb ? j->part[i].a_row_bytes : arb;
    if (!j->exact && arb > 0) {
        bool panels = false;
        for (int i = 0; i < j->n_parts; i++)
            panels = panels || j->part[i].pk;
        tile = (int64_t)((panels ? AL_PANEL_TILE_BYTES : AL_TILE_BYTES) / arb);
        tile = tile < AL_DOT_MAX_NT ? AL_DOT_MAX_NT : tile / AL_DOT_MAX_NT * AL_DOT_MAX_NT;
    }
    if (tile > j->n_tok)
        tile = j->n_tok;
    if (tile < 1)
        tile = 1;
    j->tok_tile = tile;
    int64_t total_rows = 0;
    for (int i = 0; i < j->n_parts; i++)
        total_rows += j->part[i].n_rows;
    /* fewer, larger chunks for a few tokens (al_mm_chunking_for) */
    const al_mm_chunking ch = al_mm_chunking_for(nth, j->n_tok);
    int64_t rpc = (total_rows + ch.want - 1) / ch.want;
    size_t max_rb = 0;
    for (int i = 0; i < j->n_parts; i++)
        max_rb = j->part[i].row_bytes > max_rb ? j->part[i].row_bytes : max_rb;
    if (nth > 1 && max_rb > 0 && rpc > (int64_t)(ch.cap / max_rb))
        rpc = (int64_t)(ch.cap / max_rb);
    rpc = (rpc + AL_ROW_BLOCK - 1) / AL_ROW_BLOCK * AL_ROW_BLOCK;
    if (rpc < AL_ROW_BLOCK)
        rpc = AL_ROW_BLOCK;
    int64_t c0 = 0;
    for (int i = 0; i < j->n_parts; i++) {
        mm_part *p = &j->part[i];
        p->rows_per_chunk = rpc;
        p->n_rchunks = (p->n_rows + rpc - 1) / rpc;
        p->chunk0 = c0;
        c0 += p->n_rchunks;
    }
    j->chunks_per_tile = c0;
    j->n_chunks = c0 * ((j->n_tok + tile - 1) / tile);
}

static bool part_init(mm_part *p, const al_kernels *ks, uint32_t wtype, const void *W, int64_t n_rows, int64_t k,
                      size_t row_bytes, float *Y, int64_t ldy)
{
    if (n_rows <= 0 || !al_matmul_check(wtype, k) || (ks && !ks->dot[wtype]))
        return false;
    memset(p, 0, sizeof(*p));
    p->dot = ks ? ks->dot[wtype] : NULL;
    p->wtype = wtype;
    p->atype = al_act_type(wtype);
    p->W = W;
    p->n_rows = n_rows;
    p->row_bytes = row_bytes;
    p->Y = Y;
    p->ldy = ldy;
    p->a_row_bytes = al_type_row_bytes(p->atype, k);
    return true;
}

/* Panel kernels: always for prepacked weights; otherwise for batches of
 * many tokens, when the type has them and a panel fits the stack buffer. */
static void choose_panel(mm_part *p, const al_kernels *ks, int64_t k, int64_t n_tok)
{
    const al_panel_kernel *pk = &ks->panel[p->wtype];
    if (!pk->gemm || p->n_rows < AL_PANEL_ROWS)
        p->packed = NULL;
    else if (p->packed || ((n_tok >= AL_PANEL_MIN_NT || p->panels) && pk->bytes(k) <= AL_PANEL_MAX_BYTES))
        p->pk = pk;
    if (p->pk && al_panel_f32_acts(p->wtype)) {
        p->atype = p->atype == AL_TYPE_BF16 ? AL_ACT_F32_BF16 : AL_ACT_F32_F16;
        p->a_row_bytes = (size_t)k * sizeof(float);
    }
}

/* Converts the activations once per distinct activation type (regions of
 * scratch one after the other) and runs all parts in one dispatch. */
static void run_native(mm_job *j, al_threadpool *tp, uint8_t *scratch)
{
    size_t off = 0;
    for (int i = 0; i < j->n_parts; i++)
        choose_panel(&j->part[i], j->ks, j->k, j->n_tok);
    for (int i = 0; i < j->n_parts; i++) {
        mm_part *p = &j->part[i];
        if (p->atype == AL_TYPE_F32) {
            p->A = (const uint8_t *)j->X;
            continue;
        }
        int same = -1;
        for (int q = 0; q < i && same < 0; q++)
            if (j->part[q].atype == p->atype)
                same = q;
        if (same >= 0) {
            p->A = j->part[same].A;
            p->asum = j->part[same].asum;
            p->xe = j->part[same].xe;
            if (!p->xe && j->n_tok == 1 && p->pk && p->pk->gemv) { /* the earlier part did not expand */
                p->xe = scratch + off;
                off += round64(AL_EXPAND_BYTES(j->k));
                al_act_expand(p->atype, p->A, j->k, (uint8_t *)p->xe);
                for (int q = same; q < i; q++)
                    if (j->part[q].atype == p->atype)
                        j->part[q].xe = p->xe;
            }
            continue;
        }
        p->A = scratch + off;
        off += round64(p->a_row_bytes * (size_t)j->n_tok + 64);
        /* the sums are made when any part of this activation type needs them */
        bool sums = false;
        for (int q = i; q < j->n_parts; q++)
            if (j->part[q].atype == p->atype && j->part[q].pk && j->part[q].pk->needs_asum)
                sums = true;
        p->asum = sums ? (int16_t *)(scratch + off) : NULL;
        off += asum_bytes(j->k, j->n_tok);
        convert_all(j, tp, p->atype, (uint8_t *)p->A, p->a_row_bytes, p->asum);
        if (j->n_tok == 1 && p->pk && p->pk->gemv) {
            p->xe = scratch + off;
            off += round64(AL_EXPAND_BYTES(j->k));
            al_act_expand(p->atype, p->A, j->k, (uint8_t *)p->xe);
        }
    }
    plan(j, al_threadpool_size(tp));
    al_threadpool_for(tp, j->n_chunks, mm_chunk, j);
}

/* The matrices of d (same input X) with the kernels ks, in one dispatch. */
static void run_descs(const al_kernels *ks, al_threadpool *tp, const al_mm_desc *d, int n, int64_t k, const float *X,
                      int64_t n_tok, void *scratch)
{
    if (n <= 0 || n > AL_MM_MAX || n_tok <= 0)
        return;
    mm_job j;
    memset(&j, 0, sizeof(j));
    for (int i = 0; i < n; i++) {
        if (!part_init(&j.part[i], ks, d[i].wtype, d[i].W, d[i].n_rows, k, d[i].row_bytes, d[i].Y, d[i].ldy))
            return;
        j.part[i].packed = d[i].packed;
        j.part[i].panels = d[i].panels;
    }
    j.n_parts = n;
    j.ks = ks;
    j.k = k;
    j.X = X;
    j.n_tok = n_tok;
    run_native(&j, tp, scratch);
}

void al_matmul_with(const al_kernels *ks, al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows,
                    int64_t k, size_t row_bytes, const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch)
{
    const al_mm_desc d = {wtype, W, n_rows, row_bytes, Y, ldy, NULL, false};
    run_descs(ks, tp, &d, 1, k, X, n_tok, scratch);
}

void al_matmul(al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes,
               const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch)
{
    al_matmul_with(al_kernels_get(), tp, wtype, W, n_rows, k, row_bytes, X, n_tok, Y, ldy, scratch);
}

size_t al_matmul_multi_scratch_bytes(const al_mm_desc *d, int n, int64_t k, int64_t n_tok)
{
    size_t s = 64;
    for (int i = 0; i < n && i < AL_MM_MAX; i++) {
        size_t one = al_matmul_scratch_bytes(d[i].wtype, k, n_tok);
        if (one == SIZE_MAX || s > SIZE_MAX - one)
            return SIZE_MAX;
        s += one;
    }
    return s;
}

void al_matmul_multi(al_threadpool *tp, const al_mm_desc *d, int n, int64_t k, const float *X, int64_t n_tok,
                     void *scratch)
{
    run_descs(al_kernels_get(), tp, d, n, k, X, n_tok, scratch);
}

void al_matmul_exact(al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes,
                     const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch)
{
    mm_job j;
    memset(&j, 0, sizeof(j));
    if (n_tok <= 0 || !part_init(&j.part[0], NULL, wtype, W, n_rows, k, row_bytes, Y, ldy))
        return;
    j.n_parts = 1;
    j.exact = true;
    j.k = k;
    j.X = X;
    j.n_tok = n_tok;
    j.exact_buf = scratch;
    plan(&j, al_threadpool_size(tp));
    al_threadpool_for(tp, j.n_chunks, mm_chunk, &j);
}

size_t al_matmul_pack_bytes(uint32_t wtype, int64_t n_rows, int64_t k)
{
    const al_kernels *ks = al_kernels_get();
    if (wtype >= AL_TYPE_COUNT || !ks->panel[wtype].gemm || !ks->panel[wtype].compact || n_rows < AL_PANEL_ROWS ||
        !al_matmul_check(wtype, k))
        return 0;
    return ks->panel[wtype].bytes(k) * (size_t)(n_rows / AL_PANEL_ROWS);
}

bool al_matmul_stack_panel(uint32_t wtype, int64_t k)
{
    const al_panel_kernel *pk = wtype < AL_TYPE_COUNT ? &al_kernels_get()->panel[wtype] : NULL;
    return pk && pk->gemm && pk->bytes(k) <= AL_PANEL_MAX_BYTES;
}

void al_matmul_pack(uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes, void *dst)
{
    const al_panel_kernel *pk = &al_kernels_get()->panel[wtype];
    const size_t pb = pk->bytes(k);
    for (int64_t r = 0; r + AL_PANEL_ROWS <= n_rows; r += AL_PANEL_ROWS)
        pk->pack(k, (const uint8_t *)W + (size_t)r * row_bytes, row_bytes,
                 (uint8_t *)dst + (size_t)(r / AL_PANEL_ROWS) * pb);
}
