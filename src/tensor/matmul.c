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

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Bytes of one activation row of k elements in type at (0 if none). */
static size_t act_row_bytes(uint32_t at, int64_t k)
{
    const al_type_traits *tr = al_type_get(at);
    if (at == AL_TYPE_COUNT || tr->block_elems == 0)
        return 0;
    return (size_t)(k / tr->block_elems) * tr->block_bytes;
}

bool al_matmul_check(uint32_t wtype, int64_t k)
{
    const al_type_traits *tr = al_type_get(wtype);
    if (k <= 0 || al_act_type(wtype) == AL_TYPE_COUNT || tr->block_elems == 0)
        return false;
    return k % tr->block_elems == 0;
}

size_t al_matmul_scratch_bytes(uint32_t wtype, int64_t k, int64_t n_tok)
{
    uint32_t at = al_act_type(wtype);
    if (at == AL_TYPE_F32 || n_tok <= 0 || k <= 0)
        return 64;
    size_t rb = act_row_bytes(at, k);
    if (rb && (size_t)n_tok > SIZE_MAX / rb - 64)
        return SIZE_MAX;
    return round64(rb * (size_t)n_tok + 64);
}

size_t al_matmul_exact_scratch_bytes(int64_t k, int nth)
{
    if (nth < 1)
        nth = 1;
    if (k <= 0)
        return 64;
    return round64((size_t)k * sizeof(float)) * (size_t)nth;
}

typedef struct mm_job {
    al_dot_fn dot;
    uint32_t wtype, atype;
    const uint8_t *W;
    int64_t n_rows, k;
    size_t row_bytes;
    const float *X;
    int64_t n_tok;
    float *Y;
    int64_t ldy;
    uint8_t *A;          /* converted activations (or X itself for F32) */
    size_t a_row_bytes;
    al_threadpool *tp;
    int64_t rows_per_chunk, n_rchunks, tok_tile, n_chunks;
    _Alignas(64) atomic_llong next;
    bool exact;
} mm_job;

/* Converts elements [e0, e1) of token t's row. e0, e1 multiples of the
 * activation block size. */
static void convert(const mm_job *j, int64_t t, int64_t e0, int64_t e1)
{
    const float *x = j->X + t * j->k + e0;
    uint8_t *row = j->A + (size_t)t * j->a_row_bytes;
    int64_t n = e1 - e0;
    switch (j->atype) {
    case AL_TYPE_Q8_0:
        al_quantize_row_q8_0(x, (al_block_q8_0 *)row + e0 / AL_QK, n);
        break;
    case AL_TYPE_Q8_1:
        al_quantize_row_q8_1(x, (al_block_q8_1 *)row + e0 / AL_QK, n);
        break;
    case AL_TYPE_Q8_K:
        al_quantize_row_q8_K(x, (al_block_q8_K *)row + e0 / AL_QK_K, n);
        break;
    case AL_TYPE_F16:
        al_fp32_to_fp16_row(x, (al_half *)row + e0, n);
        break;
    case AL_TYPE_BF16:
        al_fp32_to_bf16_row(x, (al_bf16 *)row + e0, n);
        break;
    default:
        break;
    }
}

/* Every thread converts its share of all n_tok*k activations: the flat
 * range of conversion units split evenly, units of one activation block
 * (32 or 256 elements; 32 for F16/BF16 when k allows, else whole rows). */
static void convert_share(const mm_job *j, int ith, int nth)
{
    int64_t unit;
    if (j->atype == AL_TYPE_Q8_K)
        unit = AL_QK_K;
    else if (j->k % AL_QK == 0)
        unit = AL_QK;
    else
        unit = j->k;
    const int64_t per_row = j->k / unit, total = per_row * j->n_tok;
    int64_t u0 = total * ith / nth, u1 = total * (ith + 1) / nth;
    while (u0 < u1) {
        int64_t t = u0 / per_row, b0 = u0 % per_row;
        int64_t b1 = b0 + (u1 - u0);
        if (b1 > per_row)
            b1 = per_row;
        convert(j, t, b0 * unit, b1 * unit);
        u0 += b1 - b0;
    }
}

static void run_chunks(mm_job *j, int ith)
{
    float *rowbuf = NULL;
    if (j->exact) /* this thread's dequantized row */
        rowbuf = (float *)(j->A + (size_t)ith * round64((size_t)j->k * sizeof(float)));
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->n_chunks)
            break;
        int64_t tt = c / j->n_rchunks, rc = c % j->n_rchunks;
        int64_t t0 = tt * j->tok_tile, t1 = t0 + j->tok_tile;
        if (t1 > j->n_tok)
            t1 = j->n_tok;
        int64_t r0 = rc * j->rows_per_chunk, r1 = r0 + j->rows_per_chunk;
        if (r1 > j->n_rows)
            r1 = j->n_rows;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *w = j->W + (size_t)r * j->row_bytes;
            if (j->exact) {
                al_dequantize_row(j->wtype, w, rowbuf, j->k);
                for (int64_t t = t0; t < t1; t++) {
                    const float *x = j->X + t * j->k;
                    double s = 0.0;
                    for (int64_t i = 0; i < j->k; i++)
                        s += (double)rowbuf[i] * (double)x[i];
                    j->Y[t * j->ldy + r] = (float)s;
                }
                continue;
            }
            for (int64_t t = t0; t < t1; t += AL_DOT_MAX_NT) {
                int nt = (int)(t1 - t < AL_DOT_MAX_NT ? t1 - t : AL_DOT_MAX_NT);
                float out[AL_DOT_MAX_NT];
                j->dot(j->k, w, j->A + (size_t)t * j->a_row_bytes, j->a_row_bytes, nt, out);
                for (int i = 0; i < nt; i++)
                    j->Y[(t + i) * j->ldy + r] = out[i];
            }
        }
    }
}

static void mm_worker(void *ctx, int ith, int nth)
{
    mm_job *j = ctx;
    if (!j->exact && j->atype != AL_TYPE_F32) {
        convert_share(j, ith, nth);
        al_threadpool_barrier(j->tp);
    }
    run_chunks(j, ith);
}

/* Chunking: rows in multiples of AL_ROW_BLOCK, about 8 chunks per thread
 * per token tile so that a slow (preempted) thread does not hold the rest. */
static void plan(mm_job *j, int nth)
{
    int64_t tile = j->n_tok;
    if (!j->exact && j->a_row_bytes > 0) {
        tile = (int64_t)(AL_TILE_BYTES / j->a_row_bytes);
        tile = tile < AL_DOT_MAX_NT ? AL_DOT_MAX_NT : tile / AL_DOT_MAX_NT * AL_DOT_MAX_NT;
    }
    if (tile > j->n_tok)
        tile = j->n_tok;
    if (tile < 1)
        tile = 1;
    j->tok_tile = tile;
    int64_t want = (int64_t)nth * 8;
    int64_t rpc = (j->n_rows + want - 1) / want;
    rpc = (rpc + AL_ROW_BLOCK - 1) / AL_ROW_BLOCK * AL_ROW_BLOCK;
    if (rpc < AL_ROW_BLOCK)
        rpc = AL_ROW_BLOCK;
    j->rows_per_chunk = rpc;
    j->n_rchunks = (j->n_rows + rpc - 1) / rpc;
    j->n_chunks = j->n_rchunks * ((j->n_tok + tile - 1) / tile);
    atomic_init(&j->next, 0);
}

void al_matmul_with(const al_kernels *ks, al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows,
                    int64_t k, size_t row_bytes, const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch)
{
    if (n_rows <= 0 || n_tok <= 0 || !al_matmul_check(wtype, k) || !ks->dot[wtype])
        return;
    mm_job j;
    memset(&j, 0, sizeof(j));
    j.dot = ks->dot[wtype];
    j.wtype = wtype;
    j.atype = al_act_type(wtype);
    j.W = W;
    j.n_rows = n_rows;
    j.k = k;
    j.row_bytes = row_bytes;
    j.X = X;
    j.n_tok = n_tok;
    j.Y = Y;
    j.ldy = ldy;
    j.tp = tp;
    j.a_row_bytes = act_row_bytes(j.atype, k);
    j.A = j.atype == AL_TYPE_F32 ? (uint8_t *)(uintptr_t)X : scratch;
    plan(&j, al_threadpool_size(tp));
    al_threadpool_run(tp, mm_worker, &j);
}

void al_matmul(al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes,
               const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch)
{
    al_matmul_with(al_kernels_get(), tp, wtype, W, n_rows, k, row_bytes, X, n_tok, Y, ldy, scratch);
}

void al_matmul_exact(al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes,
                     const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch)
{
    if (n_rows <= 0 || n_tok <= 0 || !al_matmul_check(wtype, k))
        return;
    mm_job j;
    memset(&j, 0, sizeof(j));
    j.exact = true;
    j.wtype = wtype;
    j.W = W;
    j.n_rows = n_rows;
    j.k = k;
    j.row_bytes = row_bytes;
    j.X = X;
    j.n_tok = n_tok;
    j.Y = Y;
    j.ldy = ldy;
    j.tp = tp;
    j.A = scratch;
    plan(&j, al_threadpool_size(tp));
    al_threadpool_run(tp, mm_worker, &j);
}
