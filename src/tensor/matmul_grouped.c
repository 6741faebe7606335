/* matmul_grouped.c - al_matmul_grouped: gather and convert each group's
 * activation rows, then one pool dispatch over (group x row block x token
 * tile) chunks, with the kernels of al_matmul (kernels.h). */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tensor/kernels.h"
#include "tensor/matmul_grouped.h"
#include "tensor/quant.h"

#define ROW_BLOCK 16                /* rows per chunk unit */
#define TILE_BYTES (256 << 10)      /* activation bytes per token tile (dot kernels) */
#define PANEL_TILE_BYTES (2 << 20)  /* the same with panels (each tile packs them again) */
#define SUB_ROWS 8                  /* rows kept in L1 across a token group */
#define CONV_SERIAL_ELEMS 32768     /* fewer input elements: convert on the caller */

typedef struct grp_state {
    bool ok;                   /* the group runs */
    al_dot_fn dot;
    const al_panel_kernel *pk; /* panel path, or NULL */
    uint32_t atype;
    const uint8_t *A;          /* its n_tok activation rows, a_row_bytes apart */
    size_t a_row_bytes;
    int16_t *asum;             /* per-32 sums of A's int8 values (pk->needs_asum), or NULL */
    uint8_t *xe;               /* one token: A expanded for pk->gemv (al_act_expand), or NULL */
    bool converts;             /* fills A itself (not shared with an earlier group) */
    int64_t conv0;             /* first conversion unit (one row each) */
    int64_t rpc, n_rchunks, tok_tile, n_ttiles;
    int64_t chunk0;            /* first chunk */
} grp_state;

typedef struct grp_job {
    const al_kernels *ks;
    const al_mm_group *g;
    grp_state *s;
    int n;
    bool exact;
    float *exact_buf;          /* (nth) rows of k floats */
    size_t exact_stride;       /* floats per thread */
    int64_t n_conv, conv_per_chunk, n_chunks;
} grp_job;

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t asum_bytes(int64_t k, int64_t n_tok)
{
    return round64((size_t)(k / AL_QK) * sizeof(int16_t) * (size_t)n_tok);
}

/* Bytes of one group's gathered activations and their sums. */
static size_t group_act_bytes(const al_mm_group *g)
{
    const int64_t k = g->k;
    const uint32_t at = al_act_type(g->wtype);
    /* F16 / BF16: F32 rows for their panels (al_panel_f32_acts) */
    const size_t rb = at == AL_TYPE_COUNT ? 0 : al_panel_f32_acts(g->wtype) ? (size_t)k * sizeof(float)
                                                                              : al_type_row_bytes(at, k);
    if (g->n_tok <= 0 || rb == 0)
        return 0;
    if ((size_t)g->n_tok > (SIZE_MAX / 2) / (rb + 64) || (size_t)k > SIZE_MAX / 64)
        return SIZE_MAX;
    /* one token: room for its expanded row (the gemv kernels) */
    const size_t xe = g->n_tok == 1 && (at == AL_TYPE_Q8_K || at == AL_TYPE_Q8_0) ? round64(AL_EXPAND_BYTES(k)) : 0;
    return round64(rb * (size_t)g->n_tok + 64) + asum_bytes(k, g->n_tok) + xe;
}

size_t al_matmul_grouped_scratch_bytes(const al_mm_group *g, int n, int nth, bool exact)
{
    if (n < 0 || n > AL_MM_GROUPS_MAX)
        return SIZE_MAX;
    size_t s = round64((size_t)n * sizeof(grp_state)) + 64;
    if (exact) {
        int64_t max_k = 1;
        for (int i = 0; i < n; i++)
            max_k = g[i].k > max_k ? g[i].k : max_k;
        return add_sat(s, round64((size_t)max_k * sizeof(float)) * (size_t)(nth < 1 ? 1 : nth));
    }
    for (int i = 0; i < n; i++)
        s = add_sat(s, group_act_bytes(&g[i]));
    return s;
}

size_t al_matmul_grouped_scratch_bound(int n, int64_t total_tok, int64_t max_k, int nth, bool exact)
{
    if (n < 0 || n > AL_MM_GROUPS_MAX || max_k <= 0 || total_tok < 0 || max_k > ((int64_t)1 << 40) ||
        total_tok > ((int64_t)1 << 40))
        return SIZE_MAX;
    size_t s = round64((size_t)n * sizeof(grp_state)) + 64;
    if (exact)
        return add_sat(s, round64((size_t)max_k * sizeof(float)) * (size_t)(nth < 1 ? 1 : nth));
    /* F32 rows are the widest activation rows; each group rounds up twice */
    const size_t per_tok = (size_t)max_k * sizeof(float) + (size_t)(max_k / AL_QK) * sizeof(int16_t);
    if ((size_t)total_tok > (SIZE_MAX / 4) / per_tok)
        return SIZE_MAX;
    /* the groups of one token: an expanded row each */
    const int64_t ones = total_tok < n ? total_tok : n;
    const size_t xe = round64(AL_EXPAND_BYTES(max_k));
    if ((size_t)ones > (SIZE_MAX / 4) / xe)
        return SIZE_MAX;
    return add_sat(s, add_sat(per_tok * (size_t)total_tok + (size_t)n * 256, xe * (size_t)ones));
}

static inline const float *x_row(const grp_job *j, const al_mm_group *g, int64_t i)
{
    (void)j;
    return g->X + (g->rows ? (int64_t)g->rows[i] : i) * g->ldx;
}

/* The sums of the int8 values of each group of 32 of an activation row. */
static void act_sums(uint32_t at, const uint8_t *row, int64_t k, int16_t *sum)
{
    for (int64_t b = 0; b < k / AL_QK; b++) {
        if (at == AL_TYPE_Q8_K) {
            const al_block_q8_K *q = (const al_block_q8_K *)row + b / 8;
            sum[b] = (int16_t)(q->bsums[2 * (b % 8)] + q->bsums[2 * (b % 8) + 1]);
        } else {
            const int8_t *q = ((const al_block_q8_0 *)row)[b].qs;
            int s = 0;
            for (int i = 0; i < AL_QK; i++)
                s += q[i];
            sum[b] = (int16_t)s;
        }
    }
}

/* Converts row i of group gi into its activation type. */
static void convert_row(const grp_job *j, int gi, int64_t i)
{
    const al_mm_group *g = &j->g[gi];
    const grp_state *s = &j->s[gi];
    const float *x = x_row(j, g, i);
    uint8_t *dst = (uint8_t *)s->A + (size_t)i * s->a_row_bytes;
    const int64_t k = g->k;
    switch (s->atype) {
    case AL_TYPE_F32:
        memcpy(dst, x, (size_t)k * sizeof(float));
        break;
    case AL_TYPE_F16:
        al_fp32_to_fp16_row(x, (al_half *)dst, k);
        break;
    case AL_TYPE_BF16:
        al_fp32_to_bf16_row(x, (al_bf16 *)dst, k);
        break;
    case AL_TYPE_Q8_0:
        j->ks->quant_q8_0(x, (al_block_q8_0 *)dst, k);
        break;
    case AL_TYPE_Q8_1:
        al_quantize_row_q8_1(x, (al_block_q8_1 *)dst, k);
        break;
    case AL_TYPE_Q8_K:
        j->ks->quant_q8_K(x, (al_block_q8_K *)dst, k);
        break;
    case AL_ACT_F32_F16:
        j->ks->round_f16(x, (float *)dst, k);
        break;
    case AL_ACT_F32_BF16:
        al_round_bf16_row(x, (float *)dst, k);
        break;
    default:
        break;
    }
    if (s->asum)
        act_sums(s->atype, dst, k, s->asum + (size_t)i * (size_t)(k / AL_QK));
    if (s->xe)
        al_act_expand(s->atype, dst, k, s->xe);
}

/* The group holding conversion unit (conv) or chunk u: the last one whose
 * first unit is <= u (groups with none share their first with the next). */
static int find_group(const grp_job *j, int64_t u, bool conv)
{
    int lo = 0, hi = j->n - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        const int64_t first = conv ? j->s[mid].conv0 : j->s[mid].chunk0;
        if (first <= u)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void conv_chunk(void *ctx, int64_t c, int ith)
{
    (void)ith;
    const grp_job *j = ctx;
    int64_t u = c * j->conv_per_chunk, u1 = u + j->conv_per_chunk;
    if (u1 > j->n_conv)
        u1 = j->n_conv;
    int gi = find_group(j, u, true);
    for (; u < u1; u++) {
        while (!j->s[gi].converts || u >= j->s[gi].conv0 + j->g[gi].n_tok)
            gi++;
        convert_row(j, gi, u - j->s[gi].conv0);
    }
}

/* Rows [r0, r1) x tokens [t0, t1) of group gi, exactly. */
static void exact_rows(const grp_job *j, int gi, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1)
{
    const al_mm_group *g = &j->g[gi];
    float *rowbuf = j->exact_buf + (size_t)ith * j->exact_stride;
    for (int64_t r = r0; r < r1; r++) {
        al_dequantize_row(g->wtype, (const uint8_t *)g->W + (size_t)r * g->row_bytes, rowbuf, g->k);
        for (int64_t t = t0; t < t1; t++) {
            const float *x = x_row(j, g, t);
            double acc = 0.0;
            for (int64_t i = 0; i < g->k; i++)
                acc += (double)rowbuf[i] * (double)x[i];
            g->Y[t * g->ldy + r] = (float)acc;
        }
    }
}

/* Gives back the pages wholly inside W's rows [0, n_rows / 8 * 8): the
 * map is shared and read-only, so they leave this process's resident set
 * and stay in the page cache. */
static void release_rows(const al_mm_group *g)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)g->W + pg - 1) & ~(pg - 1);
    const uintptr_t hi = ((uintptr_t)g->W + (size_t)(g->n_rows / AL_PANEL_ROWS * AL_PANEL_ROWS) * g->row_bytes) &
                         ~(pg - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* Panel p of a lazily packed weight: the packed one, or packed now by this
 * thread when nobody has and the budget allows; NULL: pack it on the stack
 * (another thread is packing it, or the budget is spent). */
static const uint8_t *lazy_panel(const al_mm_group *g, const al_panel_kernel *pk, int64_t p)
{
    al_lazy_panels *lz = g->lazy;
    uint8_t *dst = lz->panels + (size_t)p * lz->panel_bytes;
    uint8_t st = atomic_load_explicit(&lz->state[p], memory_order_acquire);
    if (st == 2)
        return dst;
    if (st != 0 || !atomic_compare_exchange_strong_explicit(&lz->state[p], &st, 1, memory_order_acq_rel,
                                                            memory_order_acquire))
        return NULL;
    if (lz->budget && atomic_fetch_sub_explicit(lz->budget, (int64_t)lz->panel_bytes, memory_order_relaxed) <
                          (int64_t)lz->panel_bytes) {
        atomic_fetch_add_explicit(lz->budget, (int64_t)lz->panel_bytes, memory_order_relaxed);
        atomic_store_explicit(&lz->state[p], 3, memory_order_release);
        return NULL;
    }
    pk->pack(g->k, (const uint8_t *)g->W + (size_t)(p * AL_PANEL_ROWS) * g->row_bytes, g->row_bytes, dst);
    atomic_store_explicit(&lz->state[p], 2, memory_order_release);
    if (atomic_fetch_add_explicit(&lz->n_packed, 1, memory_order_acq_rel) + 1 == g->n_rows / AL_PANEL_ROWS)
        release_rows(g);
    return dst;
}

static void native_rows(const grp_job *j, int gi, int64_t r0, int64_t r1, int64_t t0, int64_t t1)
{
    const al_mm_group *g = &j->g[gi];
    const grp_state *s = &j->s[gi];
    const uint8_t *W = g->W;
    const int64_t k = g->k;
    if (s->pk) {
        _Alignas(64) uint8_t buf[AL_PANEL_MAX_BYTES];
        const size_t ss = (size_t)(k / AL_QK);
        const int step = s->pk->max_nt ? s->pk->max_nt : AL_PANEL_NT;
        for (; r0 + AL_PANEL_ROWS <= r1; r0 += AL_PANEL_ROWS) {
            const uint8_t *panel = g->lazy ? lazy_panel(g, s->pk, r0 / AL_PANEL_ROWS) : NULL;
            if (!panel) {
                s->pk->pack(k, W + (size_t)r0 * g->row_bytes, g->row_bytes, buf);
                panel = buf;
            }
            if (s->xe && s->pk->gemv) { /* one token (t0 = 0, t1 = 1); without xe: gemm, the same bits */
                s->pk->gemv(k, panel, 1, 0, s->A, s->xe, s->asum, g->Y + r0);
                continue;
            }
            for (int64_t t = t0; t < t1; t += step) {
                const int nt = (int)(t1 - t < step ? t1 - t : step);
                s->pk->gemm(k, panel, s->A + (size_t)t * s->a_row_bytes, s->a_row_bytes,
                            s->asum ? s->asum + (size_t)t * ss : NULL, ss, nt, g->Y + t * g->ldy + r0, g->ldy);
            }
        }
        if (al_panel_f32_acts(g->wtype)) { /* the rows past the last panel, against F32 rows */
            for (int64_t r = r0; r < r1; r++)
                for (int64_t t = t0; t < t1; t++)
                    g->Y[t * g->ldy + r] = al_dot_f32_acts(g->wtype, k, W + (size_t)r * g->row_bytes,
                                                           (const float *)(s->A + (size_t)t * s->a_row_bytes));
            return;
        }
    }
    for (int64_t rb0 = r0; rb0 < r1; rb0 += SUB_ROWS) {
        const int64_t rb1 = rb0 + SUB_ROWS < r1 ? rb0 + SUB_ROWS : r1;
        for (int64_t t = t0; t < t1; t += AL_DOT_MAX_NT) {
            const int nt = (int)(t1 - t < AL_DOT_MAX_NT ? t1 - t : AL_DOT_MAX_NT);
            const uint8_t *a = s->A + (size_t)t * s->a_row_bytes;
            for (int64_t r = rb0; r < rb1; r++) {
                float out[AL_DOT_MAX_NT];
                s->dot(k, W + (size_t)r * g->row_bytes, a, s->a_row_bytes, nt, out);
                for (int i = 0; i < nt; i++)
                    g->Y[(t + i) * g->ldy + r] = out[i];
            }
        }
    }
}

static void mm_chunk(void *ctx, int64_t c, int ith)
{
    const grp_job *j = ctx;
    const int gi = find_group(j, c, false);
    const grp_state *s = &j->s[gi];
    const al_mm_group *g = &j->g[gi];
    const int64_t local = c - s->chunk0, rc = local % s->n_rchunks, tt = local / s->n_rchunks;
    const int64_t r0 = rc * s->rpc, r1 = r0 + s->rpc < g->n_rows ? r0 + s->rpc : g->n_rows;
    const int64_t t0 = tt * s->tok_tile, t1 = t0 + s->tok_tile < g->n_tok ? t0 + s->tok_tile : g->n_tok;
    if (j->exact)
        exact_rows(j, gi, ith, r0, r1, t0, t1);
    else
        native_rows(j, gi, r0, r1, t0, t1);
}

/* Same input rows and activation type as an earlier group: share its A. */
static int shared_with(const al_mm_group *g, const grp_state *s, int i)
{
    for (int q = 0; q < i; q++)
        if (s[q].ok && s[q].converts && g[q].X == g[i].X && g[q].rows == g[i].rows && g[q].n_tok == g[i].n_tok &&
            g[q].k == g[i].k && g[q].ldx == g[i].ldx && s[q].atype == s[i].atype)
            return q;
    return -1;
}

void al_matmul_grouped(al_threadpool *tp, const al_mm_group *g, int n, bool exact, void *scratch)
{
    if (n <= 0 || n > AL_MM_GROUPS_MAX)
        return;
    const int nth = al_threadpool_size(tp);
    grp_job j = {.ks = al_kernels_get(), .g = g, .n = n, .exact = exact};
    uint8_t *mem = scratch;
    j.s = (grp_state *)mem;
    mem += round64((size_t)n * sizeof(grp_state)) + 64;
    memset(j.s, 0, (size_t)n * sizeof(grp_state));
    if (exact) {
        int64_t max_k = 1;
        for (int i = 0; i < n; i++)
            max_k = g[i].k > max_k ? g[i].k : max_k;
        j.exact_buf = (float *)mem;
        j.exact_stride = round64((size_t)max_k * sizeof(float)) / sizeof(float);
    }

    /* Activations: each group's rows gathered and converted. */
    int64_t total_rows = 0, conv_elems = 0;
    size_t max_rb = 0;
    for (int i = 0; i < n; i++) {
        grp_state *s = &j.s[i];
        const al_mm_group *gi = &g[i];
        const int64_t k = gi->k;
        s->conv0 = j.n_conv; /* every group: find_group searches these */
        if (gi->n_tok <= 0 || gi->n_rows <= 0 || gi->ldx < k || !al_matmul_check(gi->wtype, k) ||
            (!exact && !j.ks->dot[gi->wtype]))
            continue;
        s->ok = true;
        total_rows += gi->n_rows;
        max_rb = gi->row_bytes > max_rb ? gi->row_bytes : max_rb;
        if (exact)
            continue;
        s->dot = j.ks->dot[gi->wtype];
        s->atype = al_act_type(gi->wtype);
        s->a_row_bytes = al_type_row_bytes(s->atype, k);
        const al_panel_kernel *pk = &j.ks->panel[gi->wtype];
        /* panels whatever the number of tokens: a token's result must not
         * depend on how many others share its expert (the panel and dot
         * kernels round differently, and a router near-tie downstream
         * would turn that into a different expert) */
        if (pk->gemm && gi->n_rows >= AL_PANEL_ROWS && pk->bytes(k) <= AL_PANEL_MAX_BYTES)
            s->pk = pk;
        /* a lazy weight's panels: the same layout as this CPU's kernels */
        if (gi->lazy && (!s->pk || gi->lazy->panel_bytes != pk->bytes(k)))
            s->pk = NULL;
        if (s->pk && al_panel_f32_acts(gi->wtype)) {
            s->atype = gi->wtype == AL_TYPE_BF16 ? AL_ACT_F32_BF16 : AL_ACT_F32_F16;
            s->a_row_bytes = (size_t)k * sizeof(float);
        }
        const int q = shared_with(g, j.s, i);
        if (q >= 0) {
            s->A = j.s[q].A;
            s->asum = j.s[q].asum;
            s->xe = j.s[q].xe;
            if (s->pk && s->pk->needs_asum && !s->asum) /* the earlier group did not need sums */
                s->pk = NULL;
            continue;
        }
        if (s->atype == AL_TYPE_F32 && !gi->rows && gi->ldx == k) {
            s->A = (const uint8_t *)gi->X; /* read in place */
            continue;
        }
        s->converts = true;
        s->A = mem;
        mem += round64(s->a_row_bytes * (size_t)gi->n_tok + 64);
        /* sums for this group, and for later groups sharing it that want them */
        bool sums = s->pk && s->pk->needs_asum;
        for (int q2 = i + 1; q2 < n && !sums; q2++)
            if (g[q2].X == gi->X && g[q2].rows == gi->rows && g[q2].n_tok == gi->n_tok && g[q2].k == k &&
                g[q2].ldx == gi->ldx &&
                al_act_type(g[q2].wtype) == s->atype && j.ks->panel[g[q2].wtype].needs_asum)
                sums = true;
        if (s->atype != AL_TYPE_Q8_0 && s->atype != AL_TYPE_Q8_K)
            sums = false;
        s->asum = sums ? (int16_t *)mem : NULL;
        mem += asum_bytes(k, gi->n_tok);
        /* one token: the expanded row, for this group and later ones sharing it */
        bool expand = gi->n_tok == 1 && s->pk && s->pk->gemv;
        for (int q2 = i + 1; q2 < n && !expand && gi->n_tok == 1; q2++)
            if (g[q2].X == gi->X && g[q2].rows == gi->rows && g[q2].n_tok == 1 && g[q2].k == k &&
                g[q2].ldx == gi->ldx && al_act_type(g[q2].wtype) == s->atype && j.ks->panel[g[q2].wtype].gemv)
                expand = true;
        if (expand && (s->atype == AL_TYPE_Q8_K || s->atype == AL_TYPE_Q8_0)) {
            s->xe = mem;
            mem += round64(AL_EXPAND_BYTES(k));
        }
        j.n_conv += gi->n_tok;
        conv_elems += gi->n_tok * k;
    }
    if (j.n_conv > 0) {
        if (nth == 1 || conv_elems < CONV_SERIAL_ELEMS) {
            j.conv_per_chunk = j.n_conv;
            conv_chunk(&j, 0, 0);
        } else {
            int64_t n_chunks = (int64_t)nth * 4;
            j.conv_per_chunk = (j.n_conv + n_chunks - 1) / n_chunks;
            n_chunks = (j.n_conv + j.conv_per_chunk - 1) / j.conv_per_chunk;
            al_threadpool_for(tp, n_chunks, conv_chunk, &j);
        }
    }

    /* Chunks: rows in multiples of ROW_BLOCK, as many over all groups as
     * al_mm_chunking_for says for the largest group's tokens; tokens in
     * tiles. */
    if (total_rows == 0)
        return;
    int64_t max_tok = 0;
    for (int i = 0; i < n; i++)
        max_tok = j.s[i].ok && g[i].n_tok > max_tok ? g[i].n_tok : max_tok;
    const al_mm_chunking ch = al_mm_chunking_for(nth, max_tok);
    int64_t rpc = (total_rows + ch.want - 1) / ch.want;
    if (nth > 1 && max_rb > 0 && rpc > (int64_t)(ch.cap / max_rb))
        rpc = (int64_t)(ch.cap / max_rb);
    rpc = (rpc + ROW_BLOCK - 1) / ROW_BLOCK * ROW_BLOCK;
    if (rpc < ROW_BLOCK)
        rpc = ROW_BLOCK;
    int64_t c0 = 0;
    for (int i = 0; i < n; i++) {
        grp_state *s = &j.s[i];
        s->chunk0 = c0;
        if (!s->ok)
            continue;
        s->rpc = rpc;
        s->n_rchunks = (g[i].n_rows + rpc - 1) / rpc;
        int64_t tile = g[i].n_tok;
        if (!exact && s->a_row_bytes > 0) {
            tile = (int64_t)((s->pk ? PANEL_TILE_BYTES : TILE_BYTES) / s->a_row_bytes);
            tile = tile < AL_DOT_MAX_NT ? AL_DOT_MAX_NT : tile / AL_DOT_MAX_NT * AL_DOT_MAX_NT;
            if (tile > g[i].n_tok)
                tile = g[i].n_tok;
        }
        s->tok_tile = tile;
        s->n_ttiles = (g[i].n_tok + tile - 1) / tile;
        c0 += s->n_rchunks * s->n_ttiles;
    }
    j.n_chunks = c0;
    al_threadpool_for(tp, j.n_chunks, mm_chunk, &j);
}
