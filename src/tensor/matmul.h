/* matmul.h - the thread pool and the weight x activation matrix products of
 * the forward pass: a fast native path (activations rounded like llama.cpp,
 * AVX2 kernels when available) and an exact plain-C path (the oracle). */
#ifndef AL_TENSOR_MATMUL_H
#define AL_TENSOR_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/types.h"

typedef struct al_threadpool al_threadpool;

/* A persistent pool: n_threads-1 workers + the caller. Workers spin briefly
 * then sleep on a condition variable when idle (no CPU use between jobs).
 * Returns NULL on failure; free with al_threadpool_free. One job at a time:
 * al_threadpool_run must not be called concurrently on the same pool. */
al_threadpool *al_threadpool_new(int n_threads);
void al_threadpool_free(al_threadpool *tp); /* NULL ok */
int al_threadpool_size(const al_threadpool *tp); /* 1 for NULL */
/* Runs fn(ctx, ith, nth) on every thread (ith = 0..nth-1, the caller is
 * ith 0) and returns when all have finished. tp may be NULL: fn(ctx,0,1). */
void al_threadpool_run(al_threadpool *tp, void (*fn)(void *ctx, int ith, int nth), void *ctx);
/* Runs fn(ctx, chunk, ith) once for every chunk = 0..n_chunks-1 on
 * whichever threads are free: the caller takes chunks too and returns when
 * all are done, a worker that is late (descheduled, asleep) simply takes
 * none, so no thread ever waits for one that has no work. ith (0 = the
 * caller) < al_threadpool_size(tp) names the running thread, for per-thread
 * scratch. No barrier inside fn. tp may be NULL (all chunks on the caller). */
void al_threadpool_for(al_threadpool *tp, int64_t n_chunks, void (*fn)(void *ctx, int64_t chunk, int ith),
                       void *ctx);
/* Inside a job only, called by all nth threads: waits until every thread
 * has reached it (spin, then yield). No-op for a NULL pool. */
void al_threadpool_barrier(al_threadpool *tp);
/* Number of physical cores (for the default thread count), at least 1. */
int al_physical_cores(void);

/* Y[t*ldy + r] = sum_{i<k} W_r[i] * X[t*k + i]   for t < n_tok, r < n_rows.
 * W: n_rows rows of k elements of type wtype, row_bytes apart.
 * X: n_tok rows of k floats. Activations are first converted into `scratch`
 * to the type the weight's kernel takes (Q8_0 / Q8_1 / Q8_K / F16 / BF16 /
 * F32, like ggml's vec_dot_type).
 * scratch: at least al_matmul_scratch_bytes(wtype, k, n_tok) bytes, 64-byte
 * aligned, owned by the caller. al_matmul_check(wtype, k) must hold. */
void al_matmul(al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes,
               const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch);
size_t al_matmul_scratch_bytes(uint32_t wtype, int64_t k, int64_t n_tok);

/* Several matrices with the same input X (k columns each, e.g. Q/K/V or
 * gate/up) in one dispatch: the activations are converted once per distinct
 * activation type and the rows of all matrices are split over the pool
 * together. At most 4 matrices. scratch: al_matmul_multi_scratch_bytes. */
typedef struct al_mm_desc {
    uint32_t wtype;
    const void *W;
    int64_t n_rows;
    size_t row_bytes;
    float *Y;      /* Y[t*ldy + r] */
    int64_t ldy;
    const void *packed; /* al_matmul_pack of W, or NULL */
    bool panels;        /* panel kernels even for few tokens, packing W's
                           panels as they go when packed is NULL (W is being
                           packed: the results are the packed ones) */
} al_mm_desc;
void al_matmul_multi(al_threadpool *tp, const al_mm_desc *d, int n, int64_t k, const float *X, int64_t n_tok,
                     void *scratch);
size_t al_matmul_multi_scratch_bytes(const al_mm_desc *d, int n, int64_t k, int64_t n_tok);

/* Prepacked weights for the panel kernels (8 rows interleaved, see
 * tensor/gemm_avx2.c), made once at model load so that no matmul packs
 * them again: al_matmul_pack_bytes is 0 when the weight type or this CPU
 * has no compact panels (about the rows' own size; Q4_K and Q6_K), and
 * then W is used as it is. The panels cover the rows
 * [0, n_rows / 8 * 8); the others are read from W. dst: 64-byte aligned.
 * With a packed matrix al_matmul_multi reads only the panels (and the
 * rows beyond the last panel), for any number of tokens. */
size_t al_matmul_pack_bytes(uint32_t wtype, int64_t n_rows, int64_t k);
void al_matmul_pack(uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes, void *dst);
/* True when a panel of this type and width fits the stack buffer that
 * al_mm_desc.panels packs into at each use. */
bool al_matmul_stack_panel(uint32_t wtype, int64_t k);

/* The plain-C exact path: each weight row dequantized exactly to F32
 * (al_dequantize_row) and dotted with X in F32 products accumulated in
 * double. scratch: al_matmul_exact_scratch_bytes(k, nth) bytes, nth the
 * pool's size, 64-byte aligned. */
void al_matmul_exact(al_threadpool *tp, uint32_t wtype, const void *W, int64_t n_rows, int64_t k, size_t row_bytes,
                     const float *X, int64_t n_tok, float *Y, int64_t ldy, void *scratch);
size_t al_matmul_exact_scratch_bytes(int64_t k, int nth);

/* true if (wtype, k) can go through al_matmul / al_matmul_exact: a
 * supported type and k > 0 a multiple of its block size. */
bool al_matmul_check(uint32_t wtype, int64_t k);

#endif
