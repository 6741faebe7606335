/* matmul_grouped.h - many small weight x activation products in one
 * dispatch over the thread pool: the experts of a mixture-of-experts layer.
 *
 * Each group is one weight matrix and the rows of X it multiplies (a list
 * of row indices: the tokens routed to that expert). The rows of a group
 * are gathered and converted once, so the weight is read once per pass and
 * multiplied as a panel over all of them (panel kernels from 8 tokens, dot
 * kernels below); a group with one token (decode) reads only its weight's
 * rows. The same kernels and activation rounding as al_matmul; the panel
 * kernels are used whatever the number of tokens (for the types that have
 * them), so a token's result does not depend on which other tokens share
 * its group. */
#ifndef AL_TENSOR_MATMUL_GROUPED_H
#define AL_TENSOR_MATMUL_GROUPED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/matmul.h"

/* Panels of one weight matrix packed on first use (al_matmul_pack layout,
 * 8 rows per panel), for weights that are not packed at load: the first
 * pass that needs a panel packs it into `panels` and publishes it; later
 * passes read it. Until then (or when the budget is spent) a pass packs
 * the panel on its stack, so a result never depends on whether a panel
 * was packed yet. When every panel of the matrix is packed, the pages of
 * its rows are given back (they stay in the page cache). Shared by every
 * thread and context that runs the model. */
typedef struct al_lazy_panels {
    uint8_t *panels;            /* n_rows / 8 panels, panel_bytes apart (reserved, untouched) */
    size_t panel_bytes;
    _Atomic uint8_t *state;     /* (n_rows / 8) 0 unpacked, 1 being packed, 2 packed, 3 never */
    _Atomic int32_t n_packed;   /* panels in state 2 */
    _Atomic int64_t *budget;    /* bytes that may still be packed (shared by many), or NULL */
} al_lazy_panels;

typedef struct al_mm_group {
    uint32_t wtype;
    const void *W;       /* n_rows rows of k elements of wtype, row_bytes apart */
    int64_t n_rows;
    int64_t k;
    size_t row_bytes;
    const float *X;      /* input rows of k floats, ldx floats apart */
    int64_t ldx;
    const int32_t *rows; /* n_tok indices of the rows of X it takes, or NULL: 0..n_tok-1 */
    int64_t n_tok;       /* 0: the group is skipped */
    float *Y;            /* Y[i*ldy + r] for i < n_tok, r < n_rows */
    int64_t ldy;
    al_lazy_panels *lazy; /* W's panels packed on first use, or NULL */
} al_mm_group;

/* At most this many groups per call. */
#define AL_MM_GROUPS_MAX 1100

/* Scratch bytes for al_matmul_grouped over these groups (a pool of nth
 * threads; exact: the plain-C path), or SIZE_MAX on overflow. */
size_t al_matmul_grouped_scratch_bytes(const al_mm_group *g, int n, int nth, bool exact);
/* At least al_matmul_grouped_scratch_bytes of any n groups of at most
 * max_k columns whose n_tok add up to at most total_tok: for planning
 * before the groups are known. */
size_t al_matmul_grouped_scratch_bound(int n, int64_t total_tok, int64_t max_k, int nth, bool exact);

/* Y of every group = W (rows of X). Groups whose X, rows, n_tok and k are the
 * same and whose weights take the same activation type share one
 * conversion (an expert's gate and up). exact: weight rows dequantized
 * exactly to F32 and dotted in double, like al_matmul_exact. Every group
 * must satisfy al_matmul_check(wtype, k); one that does not is skipped (its Y is left alone). scratch: 64-byte aligned, at least
 * al_matmul_grouped_scratch_bytes. tp may be NULL. */
void al_matmul_grouped(al_threadpool *tp, const al_mm_group *g, int n, bool exact, void *scratch);

#endif
