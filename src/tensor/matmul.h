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
