/*
 * context.c - inference state (KV cache, scratch buffers, thread pool) and
 * the one forward pass of every decoder family, as its description
 * (al_arch_desc, model.h) and the layers' resolved values say.
 *
 * Memory is planned when the context is created: the forward pass does not
 * allocate. Each sequence (slot) owns a contiguous KV region of n_ctx
 * positions per layer, so a batch may mix tokens of several sequences
 * (continuous batching): the matmuls run over the whole batch, attention
 * runs per token over its own sequence.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model/attention.h"
#include "model/model.h"
#include "model/moe.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "tensor/types.h"
#include "util/error.h"

/* Decode steps of at most this many tokens (sequences) split each token's
 * attention over its positions (segments of AL_ATTN_SEG), every KV head in
 * a segment's chunk (a group of them when segments are too few for about 4
 * chunks a thread): each thread streams whole K/V rows. */
#define ATTN_SPLIT_TOK 4

/* Attention work of a batch chunk: runs of tokens of one sequence at
 * consecutive positions, cut into tiles that share each K/V row read. */
typedef struct attn_tile {
    int32_t t0;   /* first token of the tile in the chunk */
    int32_t n;    /* tokens t0..t0+n-1, at positions pos[t0]..pos[t0]+n-1 */
    int64_t cost; /* positions read, summed over its tokens */
} attn_tile;

static uint32_t attn_tile_tokens(uint32_t group, uint32_t rows);

struct al_context {
    const al_model *model;
    bool pack_seen_done;     /* a pass began after the background packing ended */
    uint8_t *embd_row;       /* (tok_embd.row_bytes) a row read with pread (al_model's embd_fd), or NULL */
    al_context_params p;
    al_threadpool *tp;
    const al_attn_kernels *ak;

    /* KV cache: per layer [seq][slot][n_head_kv*head_dim] from element
     * kv_loff[layer], F16 or F32. A global layer has a slot per position;
     * a sliding-window layer keeps a ring of kv_ring[layer] slots (position
     * p in slot p % ring) plus a mirror of its first window - 1 slots after
     * them, so that every window is contiguous. The ring holds the window
     * and a chunk of n_batch tokens written before their attention. */
    size_t *kv_loff;      /* (n_layer + 1) */
    uint32_t *kv_slots;   /* (n_layer) slots per sequence */
    uint32_t *kv_ring;    /* (n_layer) ring length, 0: one slot per position */
    bool kv_has_ring;
    int32_t *seq_hw;      /* (n_seq) 1 + the highest position written since the sequence was emptied */
    int32_t *seq_dirty;   /* (n_seq) slots [0, this) of a sequence may hold data, those after are zero
                             (INT32_MAX: unknown, all of them); al_kv_seq_zero clears only these */
    uint32_t group_max;   /* query heads per KV head, the most of any layer */
    uint32_t kv_heads_min; /* KV heads, the fewest of any layer */
    void *k_cache;
    void *v_cache;
    size_t kv_elem_bytes; /* 4 (F32), 2 (F16) or 1 (Q8_0 blocks: see kv_bytes) */
    bool kv_q8;           /* Q8_0 blocks of 32 along each position's row */
    float *att_row;       /* (n_threads, head_dim) a dequantized K or V row (Q8_0 cache) */
    int32_t *seq_len;     /* (n_seq) positions held per sequence */

    /* Scratch for one chunk of n_batch tokens. */
    float *x;             /* (n_batch, n_embd) residual stream */
    float *xn;            /* (n_batch, n_embd) normed input */
    float *xo;            /* (n_batch, n_embd) a sublayer's output */
    float *q;             /* (n_batch, n_head*head_dim) */
    float *k;             /* (n_batch, n_kv*head_dim) */
    float *v;             /* (n_batch, n_kv*head_dim) */
    float *attn;          /* (n_batch, n_head*head_dim) */
    float *gate;          /* (n_batch, n_ff) */
    float *up;            /* (n_batch, n_ff) */
    const al_rope *rope[2]; /* the model's RoPE of each layer group for this context */
    float *rope_cos;      /* (n_rope, n_batch, n_rot/2) */
    float *rope_sin;      /* (n_rope, n_batch, n_rot/2) */
    float *att_scores;    /* (n_threads, att_scratch) attention scratch */
    size_t att_scratch;   /* floats of att_scores per thread */
    attn_tile *attn_tiles; /* (n_batch) the attention work of the current chunk */
    float *att_parts;     /* (ATTN_SPLIT_TOK, att_seg_max, n_head) parts of a decode step split over positions, or NULL */
    uint32_t att_seg_max; /* segments (AL_ATTN_SEG) a token's positions may span */
    void *mm_scratch;     /* matmul activation scratch */
    al_moe_scratch *moe;  /* the mixture-of-experts FFN's buffers, or NULL */
    float *out_x;         /* (n_out_max, n_embd) rows that want logits */
    float *logits;        /* (n_out_max, n_vocab) */
    float *embd;          /* (n_batch, n_embd) when params.embeddings */
    int32_t *out_index;   /* (total batch) row of logits per token, or -1 */
    int32_t *zero_seq;    /* (n_batch) zeros: the sequence ids of a batch without them */
    /* Encoders (attention not causal): K and V live only for the chunk, one
     * row per token of the chunk, shared by the layers in turn. */
    bool enc;
    int32_t *enc_len;     /* (n_batch) tokens of the sequence token t belongs to */
    al_pooling pooling;   /* resolved: never UNSPECIFIED */
    uint32_t pool_dim;    /* floats of a pooled vector: n_embd, or n_cls_out (rank) */
    float *pooled;        /* (n_seq, pool_dim) when params.embeddings */
    bool *pooled_ok;      /* (n_seq) a vector for this sequence in the last batch */
    int32_t *pool_first, *pool_last, *pool_count; /* (n_seq) scratch */
    float *cls_in;        /* (n_seq, n_embd) rank: the pooled token of each sequence */
    float *cls_mid;       /* (n_seq, n_embd) rank: after cls + tanh */
    float *cls_res;       /* (n_seq, n_cls_out) */
    int32_t *cls_seq;     /* (n_seq) the sequence of each rank row */
    int32_t n_last;       /* tokens of the last successful batch (0 after a failure) */
    int32_t out_cap;      /* n_out_max */
    int32_t out_index_cap;
    int32_t n_embd_rows;
};

al_context_params al_context_default_params(void)
{
    al_context_params p = {
        .n_ctx = 0, .n_batch = 512, .n_seq = 1, .n_threads = 0, .exact = false,
        .kv_type = AL_KV_F16, .embeddings = false, .pooling = AL_POOLING_UNSPECIFIED,
    };
    return p;
}

/* Bytes of `elems` cache elements (for Q8_0 a multiple of 32). */
static inline size_t kv_bytes(const al_context *c, size_t elems)
{
    return c->kv_q8 ? elems / AL_QK * sizeof(al_block_q8_0) : elems * c->kv_elem_bytes;
}

/* 64-byte aligned buffer. Small ones are zeroed; large ones (KV cache,
 * batch scratch) are not, so that pages stay unmapped until the forward
 * pass first writes them and resident memory follows what a request uses:
 * every reader of these buffers only reads what was written before. */
static void *alloc_aligned(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = 64;
    if (posix_memalign(&p, 64, (n + 63) / 64 * 64))
        return NULL;
    if (n < ((size_t)1 << 20))
        memset(p, 0, n);
    return p;
}

/* The KV cache: 2 MiB-aligned and, where the kernel allows, in huge pages
 * (transparent huge pages are often "madvise" only): decode at depth reads
 * every layer's whole cache per token, and with 4 KiB pages most of those
 * reads missed the TLB. Freed with free(). */
static void *alloc_kv(size_t n)
{
    const size_t huge = (size_t)2 << 20;
    if (n < huge)
        return alloc_aligned(n);
    void *p = NULL;
    if (posix_memalign(&p, huge, (n + huge - 1) / huge * huge))
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE); /* advice only: 4 KiB pages still work */
#endif
    return p;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t mm_scratch_for(const al_context *c, const al_weight *w, int64_t n_tok)
{
    if (c->p.exact)
        return al_matmul_exact_scratch_bytes(w->cols, al_threadpool_size(c->tp));
    return al_matmul_scratch_bytes(w->type, w->cols, n_tok);
}

/* Long: the memory plan of a context. Every buffer a forward pass uses is
 * sized here from the model's shapes and the parameters, and allocated
 * together, so that al_decode allocates nothing (STYLE.md: plan memory,
 * then run); the sizes read best side by side. */
al_status al_context_new(const al_model *m, const al_context_params *params, al_context **out, al_error *err)
{
    *out = NULL;
    al_context *c = calloc(1, sizeof(*c));
    if (!c)
        return al_err(err, AL_ERR_NOMEM, "out of memory for a context");
    c->model = m;
    c->ak = al_attn_kernels_get();
    c->p = params ? *params : al_context_default_params();
    const al_hparams *hp = &m->hp;
    if (c->p.n_ctx == 0)
        c->p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (hp->n_pos_embd && c->p.n_ctx > hp->n_pos_embd) /* learned positions: no more exist */
        c->p.n_ctx = hp->n_pos_embd;
    c->enc = !hp->causal;
    c->pooling = c->p.pooling == AL_POOLING_UNSPECIFIED ? al_model_pooling(m) : c->p.pooling;
    if ((int)c->pooling < AL_POOLING_NONE || c->pooling > AL_POOLING_RANK) {
        const int pt = (int)c->pooling;
        free(c);
        return al_err(err, AL_ERR_ARG, "unknown pooling type %d", pt);
    }
    if (c->pooling == AL_POOLING_RANK && hp->n_cls_out == 0) {
        free(c);
        return al_err(err, AL_ERR_UNSUPPORTED, "rank pooling needs a classifier head (cls.output.weight): this '%s' "
                      "model has none", hp->desc->name);
    }
    c->pool_dim = c->pooling == AL_POOLING_RANK ? hp->n_cls_out : hp->n_embd;
    if (c->p.n_ctx > (1u << 20)) {
        uint32_t n = c->p.n_ctx;
        free(c);
        return al_err(err, AL_ERR_ARG, "context size %u is too large (at most 2^20)", n);
    }
    if (c->p.n_batch == 0)
        c->p.n_batch = 512;
    if (c->p.n_seq == 0)
        c->p.n_seq = 1;
    if (c->p.n_seq > 256) {
        uint32_t n = c->p.n_seq;
        free(c);
        return al_err(err, AL_ERR_ARG, "at most 256 sequences per context (asked %u)", n);
    }
    int nth = c->p.n_threads > 0 ? c->p.n_threads : al_physical_cores();
    if (nth < 1)
        nth = 1;
    c->p.n_threads = nth;
    c->tp = al_threadpool_new(nth);
    if (!c->tp) {
        free(c);
        return al_err(err, AL_ERR_NOMEM, "cannot start %d threads", nth);
    }

    const size_t B = c->p.n_batch, d = hp->n_embd, hd = hp->head_dim;
    const size_t nq = hp->n_head * hd, nkv = hp->n_head_kv * hd;
    c->kv_loff = calloc(hp->n_layer + 1, sizeof(size_t));
    c->kv_slots = calloc(hp->n_layer, sizeof(uint32_t));
    c->kv_ring = calloc(hp->n_layer, sizeof(uint32_t));
    c->seq_hw = calloc(c->p.n_seq, sizeof(int32_t));
    c->seq_dirty = malloc(c->p.n_seq * sizeof(int32_t));
    if (!c->kv_loff || !c->kv_slots || !c->kv_ring || !c->seq_hw || !c->seq_dirty) {
        al_context_free(c);
        return al_err(err, AL_ERR_NOMEM, "out of memory for a context");
    }
    for (uint32_t s = 0; s < c->p.n_seq; s++) /* the cache's memory may not come zeroed */
        c->seq_dirty[s] = INT32_MAX;
    c->group_max = 1;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const uint32_t kvh = m->layers[l].n_head_kv, g = hp->n_head / kvh;
        const uint64_t w = m->layers[l].window, ring = w + c->p.n_batch - 1;
        c->kv_slots[l] = c->p.n_ctx;
        if (w && ring + w - 1 < c->p.n_ctx) {
            c->kv_ring[l] = (uint32_t)ring;
            c->kv_slots[l] = (uint32_t)(ring + w - 1);
            c->kv_has_ring = true;
        }
        c->kv_loff[l + 1] = c->kv_loff[l] + (size_t)c->p.n_seq * c->kv_slots[l] * kvh * hd;
        c->group_max = g > c->group_max ? g : c->group_max;
        c->kv_heads_min = l == 0 || kvh < c->kv_heads_min ? kvh : c->kv_heads_min;
    }
    if (c->enc) { /* one chunk's rows, every layer in the same place */
        for (uint32_t l = 0; l < hp->n_layer; l++)
            c->kv_loff[l] = 0;
        c->kv_loff[hp->n_layer] = B * nkv;
    }
    c->kv_elem_bytes = (c->p.exact || c->p.kv_type == AL_KV_F32) ? 4 : 2;
    /* Q8_0 needs whole blocks per head; otherwise F16 */
    if (!c->p.exact && c->p.kv_type == AL_KV_Q8_0 && hd % AL_QK == 0) {
        c->kv_q8 = true;
        c->kv_elem_bytes = 1;
    }
    size_t kv_elems = c->kv_loff[hp->n_layer];
    c->k_cache = alloc_kv(kv_bytes(c, kv_elems));
    c->v_cache = alloc_kv(kv_bytes(c, kv_elems));
    c->att_row = alloc_aligned((size_t)nth * hd * 4);
    c->seq_len = calloc(c->p.n_seq, sizeof(int32_t));
    c->x = alloc_aligned(B * d * 4);
    c->xn = alloc_aligned(B * max_sz(d, nq) * 4);
    c->xo = alloc_aligned(B * d * 4);
    c->q = alloc_aligned(B * nq * 4);
    c->k = alloc_aligned(B * nkv * 4);
    c->v = alloc_aligned(B * nkv * 4);
    c->attn = alloc_aligned(B * nq * 4);
    c->gate = alloc_aligned(B * hp->n_ff * 4);
    c->up = alloc_aligned(B * hp->n_ff * 4);
    c->rope[0] = &m->rope[hp->rope_long_ctx && c->p.n_ctx > hp->rope_long_ctx ? 2 : 0];
    c->rope[1] = &m->rope[1];
    c->rope_cos = alloc_aligned(hp->n_rope * B * hp->n_rot / 2 * 4);
    c->rope_sin = alloc_aligned(hp->n_rope * B * hp->n_rot / 2 * 4);
    c->att_scratch = (al_attn_tile_scratch_floats(c->group_max, attn_tile_tokens(c->group_max, 64), hp->head_dim,
                                                  c->p.n_ctx) + 15) / 16 * 16;
    c->att_scores = alloc_aligned((size_t)nth * c->att_scratch * 4);
    if (!c->enc) { /* touched only as far as a step's depth needs */
        c->att_seg_max = c->p.n_ctx / AL_ATTN_SEG + 2;
        c->att_parts = alloc_aligned((size_t)ATTN_SPLIT_TOK * c->att_seg_max *
                                     al_attn_part_floats(hp->n_head, hp->head_dim) * 4);
        if (!c->att_parts)
            c->att_seg_max = 0; /* decode keeps its split by KV head */
    }
    c->attn_tiles = calloc(B, sizeof(*c->attn_tiles));
    c->out_cap = (int32_t)(c->p.n_seq > 8 ? c->p.n_seq : 8);
    if ((uint32_t)c->out_cap > c->p.n_batch && c->p.n_batch >= c->p.n_seq)
        c->out_cap = (int32_t)c->p.n_batch;
    c->out_x = alloc_aligned((size_t)c->out_cap * d * 4);
    c->logits = alloc_aligned((size_t)c->out_cap * hp->n_vocab * 4);
    c->out_index_cap = (int32_t)B;
    c->out_index = calloc(B, sizeof(int32_t));
    c->zero_seq = calloc(B, sizeof(int32_t));
    c->enc_len = calloc(B, sizeof(int32_t));
    const size_t ns = c->p.n_seq;
    if (c->p.embeddings) {
        c->embd = alloc_aligned(B * d * 4);
        c->pooled = alloc_aligned(ns * c->pool_dim * 4);
        c->pooled_ok = calloc(ns, sizeof(bool));
        c->pool_first = calloc(ns * 3, sizeof(int32_t));
        c->pool_last = c->pool_first ? c->pool_first + ns : NULL;
        c->pool_count = c->pool_first ? c->pool_first + 2 * ns : NULL;
        if (c->pooling == AL_POOLING_RANK) {
            c->cls_in = alloc_aligned(ns * d * 4);
            c->cls_mid = alloc_aligned(ns * d * 4);
            c->cls_res = alloc_aligned(ns * hp->n_cls_out * 4);
            c->cls_seq = calloc(ns, sizeof(int32_t));
        }
    }

    size_t mm = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const al_layer *ly = &m->layers[l];
        const al_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        size_t fused = 64; /* Q/K/V and gate/up convert their input once per activation type */
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
            if (ws[i]->rows == 0) /* no gate */
                continue;
            size_t one = mm_scratch_for(c, ws[i], (int64_t)B);
            mm = max_sz(mm, one);
            fused = fused + one < fused ? SIZE_MAX : fused + one;
        }
        mm = max_sz(mm, fused);
    }
    if (m->output.rows)
        mm = max_sz(mm, mm_scratch_for(c, &m->output, c->out_cap));
    if (m->cls.rows)
        mm = max_sz(mm, mm_scratch_for(c, &m->cls, (int64_t)c->p.n_seq));
    if (m->cls_out.rows)
        mm = max_sz(mm, mm_scratch_for(c, &m->cls_out, (int64_t)c->p.n_seq));
    c->mm_scratch = alloc_aligned(mm);
    if (m->moe && !(c->moe = al_moe_scratch_new(m->moe, (int64_t)d, c->p.n_batch, nth, c->p.exact))) {
        const uint32_t n_batch = c->p.n_batch;
        al_context_free(c);
        return al_err(err, AL_ERR_NOMEM, "out of memory for the experts' buffers of a batch of %u", n_batch);
    }

    if (!c->k_cache || !c->v_cache || !c->seq_len || !c->x || !c->xn || !c->xo || !c->q || !c->k || !c->v || !c->attn ||
        !c->gate || !c->up || !c->rope_cos || !c->rope_sin || !c->att_scores || !c->attn_tiles || !c->out_x ||
        !c->logits || !c->att_row || !c->out_index || !c->zero_seq || !c->mm_scratch || !c->enc_len ||
        (c->p.embeddings && (!c->embd || !c->pooled || !c->pooled_ok || !c->pool_first)) ||
        (c->p.embeddings && c->pooling == AL_POOLING_RANK && (!c->cls_in || !c->cls_mid || !c->cls_res ||
                                                              !c->cls_seq))) {
        const uint32_t n_ctx = c->p.n_ctx, n_seq = c->p.n_seq; /* not read from c once freed */
        al_context_free(c);
        return al_err(err, AL_ERR_NOMEM, "out of memory for a context of %u positions x %u sequences", n_ctx, n_seq);
    }
    *out = c;
    return AL_OK;
}

void al_context_free(al_context *c)
{
    if (!c)
        return;
    al_threadpool_free(c->tp);
    free(c->kv_loff);
    free(c->kv_slots);
    free(c->kv_ring);
    free(c->seq_hw);
    free(c->seq_dirty);
    free(c->k_cache);
    free(c->v_cache);
    free(c->att_row);
    free(c->seq_len);
    free(c->embd_row);
    free(c->x);
    free(c->xn);
    free(c->xo);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->attn);
    free(c->gate);
    free(c->up);
    free(c->rope_cos);
    free(c->rope_sin);
    free(c->att_scores);
    free(c->att_parts);
    free(c->attn_tiles);
    free(c->mm_scratch);
    al_moe_scratch_free(c->moe);
    free(c->out_x);
    free(c->logits);
    free(c->embd);
    free(c->enc_len);
    free(c->pooled);
    free(c->pooled_ok);
    free(c->pool_first);
    free(c->cls_in);
    free(c->cls_mid);
    free(c->cls_res);
    free(c->cls_seq);
    free(c->out_index);
    free(c->zero_seq);
    free(c);
}

uint32_t al_context_n_ctx(const al_context *c)
{
    return c->p.n_ctx;
}

/* ------------------------------------------------------------ small ops */

/* Y_i = W_i X for 1 to 3 weights with the same input, in one dispatch on
 * the fast path when they have the same number of columns. */
static void matmul_multi(al_context *c, const al_weight *const *w, float *const *Y, int n, const float *X,
                         int64_t n_tok)
{
    bool same_k = true;
    al_mm_desc d[3];
    for (int i = 0; i < n; i++) {
        same_k = same_k && w[i]->cols == w[0]->cols;
        /* packed may be published meanwhile by the model's packing thread */
        d[i] = (al_mm_desc){w[i]->type, w[i]->data, w[i]->rows, w[i]->row_bytes, Y[i], w[i]->rows,
                            __atomic_load_n(&w[i]->packed, __ATOMIC_ACQUIRE), w[i]->panels};
    }
    if (!c->p.exact && same_k) {
        al_matmul_multi(c->tp, d, n, w[0]->cols, X, n_tok, c->mm_scratch);
    } else {
        for (int i = 0; i < n; i++)
            if (c->p.exact)
                al_matmul_exact(c->tp, w[i]->type, w[i]->data, w[i]->rows, w[i]->cols, w[i]->row_bytes, X, n_tok,
                                Y[i], w[i]->rows, c->mm_scratch);
            else
                al_matmul_multi(c->tp, &d[i], 1, w[i]->cols, X, n_tok, c->mm_scratch);
    }
    /* A matrix whose panels were published while this call read its rows:
     * the packing thread gave the rows back before we were done, so the
     * last reader does it again (else they would stay resident). */
    for (int i = 0; i < n; i++)
        if (!d[i].packed && w[i]->panels && __atomic_load_n(&w[i]->packed, __ATOMIC_ACQUIRE))
            al_weight_release_rows(w[i]);
}

static void matmul(al_context *c, const al_weight *w, const float *X, int64_t n_tok, float *Y)
{
    matmul_multi(c, &w, &Y, 1, X, n_tok);
}

/* Rotates one head's vector in place. cs/sn hold n_rot/2 values. */
static void rope_head(float *v, const float *cs, const float *sn, uint32_t n_rot, bool neox)
{
    uint32_t half = n_rot / 2;
    if (neox) {
        for (uint32_t i = 0; i < half; i++) {
            float a = v[i], b = v[i + half];
            v[i] = a * cs[i] - b * sn[i];
            v[i + half] = a * sn[i] + b * cs[i];
        }
    } else {
        for (uint32_t i = 0; i < half; i++) {
            float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * cs[i] - b * sn[i];
            v[2 * i + 1] = a * sn[i] + b * cs[i];
        }
    }
}

static void rope_tables(al_context *c, const int32_t *pos, int64_t n_tok)
{
    const al_hparams *hp = &c->model->hp;
    const uint32_t half = hp->n_rot / 2;
    const size_t table = (size_t)c->p.n_batch * half;
    for (uint32_t r = 0; r < hp->n_rope; r++) {
        const float *inv_freq = c->rope[r]->inv_freq, ms = c->rope[r]->mscale;
        float *cs = c->rope_cos + r * table, *sn = c->rope_sin + r * table;
        for (int64_t t = 0; t < n_tok; t++) {
            for (uint32_t i = 0; i < half; i++) {
                float theta = (float)pos[t] * inv_freq[i];
                cs[t * half + i] = cosf(theta) * ms;
                sn[t * half + i] = sinf(theta) * ms;
            }
        }
    }
}

/* Element offset of (layer, seq, slot) in the K or V cache. */
static inline size_t kv_offset(const al_context *c, uint32_t layer, int32_t seq, uint32_t slot)
{
    const size_t nkv = (size_t)c->model->layers[layer].n_head_kv * c->model->hp.head_dim;
    return c->kv_loff[layer] + ((size_t)seq * c->kv_slots[layer] + slot) * nkv;
}

/* The slot of position pos in a layer. */
static inline uint32_t kv_slot(const al_context *c, uint32_t layer, int32_t pos)
{
    return c->kv_ring[layer] ? (uint32_t)pos % c->kv_ring[layer] : (uint32_t)pos;
}

static void kv_store(al_context *c, void *cache, size_t off, const float *src, size_t n)
{
    if (c->kv_q8)
        al_quantize_row_q8_0(src, (al_block_q8_0 *)((uint8_t *)cache + kv_bytes(c, off)), (int64_t)n);
    else if (c->kv_elem_bytes == 4)
        memcpy((float *)cache + off, src, n * 4);
    else
        c->ak->to_f16(src, (uint16_t *)cache + off, (uint32_t)n);
}

/* ------------------------------------------------------------ attention */

typedef struct attn_job {
    al_context *c;
    uint32_t layer;
    const int32_t *pos;
    const int32_t *seq;
    int64_t n_tiles; /* in c->attn_tiles */
    /* the split of a decode step over positions (attn_split_plan) */
    uint32_t n_hg;                          /* groups of KV heads a segment is cut into */
    int32_t seg_first[ATTN_SPLIT_TOK];      /* token t's first segment */
    int32_t seg_start[ATTN_SPLIT_TOK + 1];  /* segments of the tokens before t */
} attn_job;

/* Tokens of a tile of about `rows` query rows (tokens x the query heads of
 * a KV head), within the tile kernels' row limit. */
static uint32_t attn_tile_tokens(uint32_t group, uint32_t rows)
{
    return group >= rows ? 1 : rows / group;
}

static int tile_cost_desc(const void *a, const void *b)
{
    const attn_tile *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

/* Cuts the chunk's tokens into c->attn_tiles; returns their number. A
 * token after a change of sequence or a jump in position starts a new tile
 * (a decode step of several sequences gives one-token tiles). The tiles are
 * sorted most expensive first: the pool hands chunks out in order, so the
 * causal triangle's cheap early tiles fill the end and threads finish
 * together. */
static int64_t attn_plan(al_context *c, const int32_t *pos, const int32_t *seq, int64_t n_tok)
{
    /* 64 query rows a tile: each K/V block converted to floats serves
     * twice the rows of 32 (about 5 % less attention time at 2,048
     * positions); 32 when that would leave fewer than 8 chunks a thread
     * (counting the KV heads of the layer with the fewest). */
    const uint32_t nth = (uint32_t)c->p.n_threads;
    int64_t most = attn_tile_tokens(c->group_max, 64);
    if (n_tok / most * c->kv_heads_min < 8 * (int64_t)nth)
        most = attn_tile_tokens(c->group_max, 32);
    int64_t n_tiles = 0;
    for (int64_t t = 0; t < n_tok;) {
        int64_t e = t + 1;
        while (e < n_tok && e - t < most && seq[e] == seq[t] && pos[e] == pos[e - 1] + 1)
            e++;
        const int64_t n = e - t;
        const int64_t cost = c->enc ? n * c->enc_len[t] : n * (pos[t] + 1) + n * (n - 1) / 2;
        c->attn_tiles[n_tiles++] = (attn_tile){(int32_t)t, (int32_t)n, cost};
        t = e;
    }
    qsort(c->attn_tiles, (size_t)n_tiles, sizeof(attn_tile), tile_cost_desc);
    return n_tiles;
}

/* A K or V row of the cache as floats: F32 rows are read in place, F16 and
 * Q8_0 rows are converted into buf (head_dim floats). */
static const float *kv_row(const al_context *c, const void *cache, size_t off, float *buf)
{
    const uint32_t hd = c->model->hp.head_dim;
    if (c->kv_q8) {
        al_dequantize_row(AL_TYPE_Q8_0, (const uint8_t *)cache + kv_bytes(c, off), buf, hd);
        return buf;
    }
    if (c->kv_elem_bytes == 2) {
        al_dequantize_row(AL_TYPE_F16, (const uint16_t *)cache + off, buf, hd);
        return buf;
    }
    return (const float *)cache + off;
}

/* Attention of token t over slots p0..p0+n_pos-1 for the query heads
 * that share KV head kvh, each K/V row read once for all of them: the
 * exact path (F32 cache), the Q8_0 cache, and what the F16 kernels do not
 * do (a logit softcap, attention sinks). */
static void attn_rows(al_context *c, const al_layer *ly, int64_t t, uint32_t kvh, size_t base, size_t stride,
                      int32_t p0, int32_t n_pos, int32_t qpos, float *scores, float *row)
{
    const al_hparams *hp = &c->model->hp;
    const uint32_t hd = hp->head_dim, group = hp->n_head / ly->n_head_kv, h0 = kvh * group;
    const size_t nq = (size_t)hp->n_head * hd;
    const float scale = hp->attn_scale, cap = hp->attn_softcap;
    const float *q = c->q + (size_t)t * nq + (size_t)h0 * hd;
    float *out = c->attn + (size_t)t * nq + (size_t)h0 * hd;
    for (int32_t p = 0; p < n_pos; p++) {
        const float *k = kv_row(c, c->k_cache, base + (size_t)(p0 + p) * stride, row);
        for (uint32_t g = 0; g < group; g++) {
            float s = 0.0f;
            for (uint32_t i = 0; i < hd; i++)
                s += q[(size_t)g * hd + i] * k[i];
            s *= scale;
            if (cap > 0.0f)
                s = cap * tanhf(s / cap);
            if (hp->alibi_slope) /* ALiBi: the farther the key, the lower */
                s -= hp->alibi_slope[h0 + g] * fabsf((float)(qpos - (p0 + p)));
            scores[(size_t)g * n_pos + p] = s;
        }
    }
    for (uint32_t g = 0; g < group; g++) {
        float *sg = scores + (size_t)g * n_pos, mx = -INFINITY, sum = 0.0f;
        for (int32_t p = 0; p < n_pos; p++)
            mx = sg[p] > mx ? sg[p] : mx;
        if (ly->attn_sinks) /* the sink's logit joins the softmax; it has no value */
            mx = ly->attn_sinks[h0 + g] > mx ? ly->attn_sinks[h0 + g] : mx;
        for (int32_t p = 0; p < n_pos; p++) {
            sg[p] = expf(sg[p] - mx);
            sum += sg[p];
        }
        if (ly->attn_sinks)
            sum += expf(ly->attn_sinks[h0 + g] - mx);
        for (int32_t p = 0; p < n_pos; p++)
            sg[p] /= sum;
        memset(out + (size_t)g * hd, 0, hd * sizeof(float));
    }
    for (int32_t p = 0; p < n_pos; p++) {
        const float *v = kv_row(c, c->v_cache, base + (size_t)(p0 + p) * stride, row);
        for (uint32_t g = 0; g < group; g++) {
            const float a = scores[(size_t)g * n_pos + p];
            float *o = out + (size_t)g * hd;
            for (uint32_t i = 0; i < hd; i++)
                o[i] += a * v[i];
        }
    }
}

/* First position a token at pos sees in a layer: causal, and within the
 * layer's sliding window (keys p0 with pos - p0 < window). The hook for
 * bidirectional (encoder) attention is here and in attn_chunk's n_pos. */
static inline int32_t attn_first(const al_layer *ly, int32_t pos)
{
    return ly->window && pos >= (int32_t)ly->window ? pos - (int32_t)ly->window + 1 : 0;
}

/* One chunk: tile c->attn_tiles[chunk % n_tiles] and the query heads
 * that share KV head kvh = chunk / n_tiles. KV head by KV head, so that
 * the threads read one head's K/V rows (1 MiB at 2,048 positions of
 * qwen3) many times from their L2 before going on to the next, rather
 * than every head's in turn from memory. */
static void attn_chunk(void *arg, int64_t chunk, int ith)
{
    attn_job *j = arg;
    al_context *c = j->c;
    const al_hparams *hp = &c->model->hp;
    const al_layer *ly = &c->model->layers[j->layer];
    const uint32_t hd = hp->head_dim, nh = hp->n_head, nkvh = ly->n_head_kv, group = nh / nkvh;
    const size_t nq = (size_t)nh * hd;
    const float scale = hp->attn_scale;
    float *scratch = c->att_scores + (size_t)ith * c->att_scratch;
    const attn_tile *tile = &c->attn_tiles[chunk % j->n_tiles];
    const int64_t t0 = tile->t0;
    const uint32_t kvh = (uint32_t)(chunk / j->n_tiles);
    const size_t stride = (size_t)nkvh * hd;
    if (c->enc) { /* every token sees its whole sequence: rows t0 - pos[t0] .. of the chunk */
        const size_t base = (size_t)(t0 - j->pos[t0]) * stride + (size_t)kvh * hd;
        for (int64_t t = t0; t < t0 + tile->n; t++) {
            const int32_t n_pos = c->enc_len[t];
            if (c->kv_elem_bytes == 2 && !c->kv_q8 && hp->attn_softcap == 0.0f && !ly->attn_sinks &&
                !hp->alibi_slope) {
                const size_t qo = (size_t)t * nq + (size_t)kvh * group * hd;
                c->ak->attend_f16(c->q + qo, group, (const uint16_t *)c->k_cache + base,
                                  (const uint16_t *)c->v_cache + base, stride, n_pos, hd, scale, scratch, c->attn + qo);
            } else {
                attn_rows(c, ly, t, kvh, base, stride, 0, n_pos, j->pos[t], scratch, c->att_row + (size_t)ith * hd);
            }
        }
        return;
    }
    const size_t base = kv_offset(c, j->layer, j->seq[t0], 0) + (size_t)kvh * hd;

    const bool f16 = c->kv_elem_bytes == 2 && !c->kv_q8 && !hp->alibi_slope;
    const bool extras = hp->attn_softcap != 0.0f || ly->attn_sinks;
    if (f16 && (extras || al_attn_tile_fast(group, 1, hd))) {
        /* Prompt tiles and decode steps alike: the fast tile kernels give a
         * token the same bits in any tile, so a prompt in one batch and
         * token by token agree exactly. A tile reads positions lo..last
         * (lo: the first its first token sees) from contiguous slots; in a
         * window layer's ring it is cut where they would pass its end. */
        const uint16_t *k = (const uint16_t *)c->k_cache + base, *v = (const uint16_t *)c->v_cache + base;
        const size_t qo0 = (size_t)kvh * group * hd;
        for (int64_t t = t0; t < t0 + tile->n;) {
            const int32_t p_first = j->pos[t], lo = attn_first(ly, p_first);
            const size_t s0 = kv_slot(c, j->layer, lo);
            int64_t n = t0 + tile->n - t;
            if (c->kv_ring[j->layer]) {
                const int64_t room = (int64_t)c->kv_slots[j->layer] - (int64_t)s0 - (p_first - lo);
                n = n < room ? n : room;
            }
            const size_t qo = (size_t)t * nq + qo0;
            const al_attn_tile at = {c->q + qo, nq, c->attn + qo, nq, k + s0 * stride, v + s0 * stride, stride,
                                     group, (uint32_t)n, hd, p_first, scale, lo, ly->window, hp->attn_softcap,
                                     ly->attn_sinks ? ly->attn_sinks + kvh * group : NULL};
            c->ak->attend_tile_f16(&at, scratch);
            t += n;
        }
        return;
    }
    if (f16 && !extras) { /* head sizes the tile kernels do not take: token by token */
        const uint16_t *k = (const uint16_t *)c->k_cache + base, *v = (const uint16_t *)c->v_cache + base;
        for (int64_t t = t0; t < t0 + tile->n; t++) {
            const size_t qo = (size_t)t * nq + (size_t)kvh * group * hd;
            const int32_t p0 = attn_first(ly, j->pos[t]);
            const size_t s0 = kv_slot(c, j->layer, p0);
            c->ak->attend_f16(c->q + qo, group, k + s0 * stride, v + s0 * stride, stride, j->pos[t] + 1 - p0, hd,
                              scale, scratch, c->attn + qo);
        }
        return;
    }
    for (int64_t t = t0; t < t0 + tile->n; t++) {
        const int32_t p0 = attn_first(ly, j->pos[t]);
        const int32_t s0 = (int32_t)kv_slot(c, j->layer, p0); /* the slot of p0; qpos in slot terms */
        attn_rows(c, ly, t, kvh, base, stride, s0, j->pos[t] + 1 - p0, j->pos[t] - p0 + s0, scratch,
                  c->att_row + (size_t)ith * hd);
    }
}

/* Whether layer j->layer's attention of this step splits over positions,
 * and if so its plan in j: one-token tiles of at most ATTN_SPLIT_TOK
 * sequences, F16 cache without a ring, shapes the fast tiles take, a kernel
 * set with a run. Chunks: (token, segment, group of KV heads), the groups
 * only as many as give each thread about 4 chunks. */
static bool attn_split_plan(const al_context *c, attn_job *j, int64_t n_tok)
{
    const al_hparams *hp = &c->model->hp;
    const al_layer *ly = &c->model->layers[j->layer];
    const uint32_t nkvh = ly->n_head_kv, group = hp->n_head / nkvh;
    if (!c->att_parts || !c->ak->attend_run_f16 || j->n_tiles != n_tok || n_tok > ATTN_SPLIT_TOK ||
        c->kv_elem_bytes != 2 || c->kv_q8 || hp->alibi_slope || c->kv_ring[j->layer] ||
        !al_attn_tile_fast(group, 1, hp->head_dim))
        return false;
    j->seg_start[0] = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        j->seg_first[t] = attn_first(ly, j->pos[t]) / AL_ATTN_SEG;
        j->seg_start[t + 1] = j->seg_start[t] + j->pos[t] / AL_ATTN_SEG - j->seg_first[t] + 1;
    }
    const uint32_t want = 4 * (uint32_t)c->p.n_threads, n_seg = (uint32_t)j->seg_start[n_tok];
    j->n_hg = n_seg >= want ? 1 : (want + n_seg - 1) / n_seg;
    j->n_hg = j->n_hg < nkvh ? j->n_hg : nkvh;
    return true;
}

/* Token t's tile of KV head h (one token, the group's query heads), its
 * K/V rows from its first visible position. */
static al_attn_tile attn_split_tile(const attn_job *j, int64_t t, uint32_t h)
{
    const al_context *c = j->c;
    const al_hparams *hp = &c->model->hp;
    const al_layer *ly = &c->model->layers[j->layer];
    const uint32_t hd = hp->head_dim, nkvh = ly->n_head_kv, group = hp->n_head / nkvh;
    const size_t stride = (size_t)nkvh * hd, nq = (size_t)hp->n_head * hd, qo = (size_t)t * nq + (size_t)h * group * hd;
    const int32_t lo = attn_first(ly, j->pos[t]);
    const size_t off = kv_offset(c, j->layer, j->seq[t], (uint32_t)lo) + (size_t)h * hd; /* no ring: slot = position */
    const al_attn_tile at = {c->q + qo, nq, c->attn + qo, nq, (const uint16_t *)c->k_cache + off,
                             (const uint16_t *)c->v_cache + off, stride, group, 1, hd, j->pos[t], hp->attn_scale, lo,
                             ly->window, hp->attn_softcap, ly->attn_sinks ? ly->attn_sinks + h * group : NULL};
    return at;
}

/* Token t's part of segment si (counted from its first) for KV head h. */
static float *attn_split_part(const attn_job *j, int64_t t, int32_t si, uint32_t h)
{
    const al_context *c = j->c;
    const uint32_t hd = c->model->hp.head_dim, group = c->model->hp.n_head / c->model->layers[j->layer].n_head_kv;
    return c->att_parts + ((size_t)t * c->att_seg_max + (size_t)si) * al_attn_part_floats(c->model->hp.n_head, hd) +
           (size_t)h * al_attn_part_floats(group, hd);
}

/* One chunk of the split: a segment of one token for a group of KV heads,
 * block by block, every head of the group in a block before the next block,
 * so the reads run along whole K/V rows. */
static void attn_split_chunk(void *arg, int64_t chunk, int ith)
{
    const attn_job *j = arg;
    const al_context *c = j->c;
    const uint32_t nkvh = c->model->layers[j->layer].n_head_kv, hd = c->model->hp.head_dim;
    const uint32_t group = c->model->hp.n_head / nkvh;
    float *scratch = c->att_scores + (size_t)ith * c->att_scratch;
    const int32_t sc = (int32_t)(chunk / j->n_hg), hg = (int32_t)(chunk % j->n_hg);
    int64_t t = 0;
    while (j->seg_start[t + 1] <= sc)
        t++;
    const int32_t si = sc - j->seg_start[t], s0 = (j->seg_first[t] + si) * AL_ATTN_SEG;
    const int32_t lo = attn_first(&c->model->layers[j->layer], j->pos[t]);
    const int32_t b_lo = s0 > lo / AL_ATTN_TILE_BLOCK * AL_ATTN_TILE_BLOCK ? s0 : lo / AL_ATTN_TILE_BLOCK * AL_ATTN_TILE_BLOCK;
    const int32_t b_hi = s0 + AL_ATTN_SEG < j->pos[t] + 1 ? s0 + AL_ATTN_SEG : j->pos[t] + 1;
    const uint32_t h0 = (uint32_t)hg * nkvh / j->n_hg, h1 = (uint32_t)(hg + 1) * nkvh / j->n_hg;
    for (uint32_t h = h0; h < h1; h++)
        al_attn_part_init(attn_split_part(j, t, si, h), group, hd);
    for (int32_t b0 = b_lo; b0 < b_hi; b0 += AL_ATTN_TILE_BLOCK)
        for (uint32_t h = h0; h < h1; h++) {
            const al_attn_tile at = attn_split_tile(j, t, h);
            c->ak->attend_run_f16(&at, b0, b0 + AL_ATTN_TILE_BLOCK, attn_split_part(j, t, si, h), scratch);
        }
}

/* The split's end: each token's parts folded in segment order, as the tile
 * kernels fold them (the same bits as the step's token in a prompt). */
static void attn_split_merge(const attn_job *j, int64_t n_tok)
{
    const uint32_t nkvh = j->c->model->layers[j->layer].n_head_kv;
    float mx[AL_ATTN_TILE_MAX_ROWS], sum[AL_ATTN_TILE_MAX_ROWS];
    for (int64_t t = 0; t < n_tok; t++)
        for (uint32_t h = 0; h < nkvh; h++) {
            const al_attn_tile at = attn_split_tile(j, t, h);
            al_attn_total_init(&at, mx, sum);
            for (int32_t si = 0; si < j->seg_start[t + 1] - j->seg_start[t]; si++)
                al_attn_total_fold(&at, attn_split_part(j, t, si, h), mx, sum);
            al_attn_total_end(&at, sum);
        }
}

/* ------------------------------------------------------------ forward */

/* A norm of the model's kind over n values: RMSNorm, or LayerNorm with an
 * optional bias. out may be x. */
static void norm_row(float *out, const float *x, const float *w, const float *b, int64_t n, float eps,
                     uint8_t kind)
{
    if (kind == AL_NORM_RMS) {
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        const float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
        for (int64_t i = 0; i < n; i++)
            out[i] = x[i] * scale * w[i];
        return;
    }
    double sum = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += x[i];
    const float mean = (float)(sum / (double)n);
    for (int64_t i = 0; i < n; i++)
        ss += (double)(x[i] - mean) * (x[i] - mean);
    const float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
}

/* n_tok rows of d values: out[t] = norm(x[t]). */
static void norm_rows(const al_hparams *hp, float *out, const float *x, const float *w, const float *b,
                      int64_t n_tok)
{
    const size_t d = hp->n_embd;
    for (int64_t t = 0; t < n_tok; t++)
        norm_row(out + t * d, x + t * d, w, b, (int64_t)d, hp->norm_eps, hp->desc->norm);
}

static void add_bias(float *y, const float *b, int64_t n_tok, size_t n)
{
    if (!b)
        return;
    for (int64_t t = 0; t < n_tok; t++)
        for (size_t i = 0; i < n; i++)
            y[(size_t)t * n + i] += b[i];
}

/* The reference's GELU: the tanh approximation. */
static inline float gelu(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

/* The fast path's GELU, as the reference computes it: the tanh form of
 * the input rounded to F16, looked up in a table of every F16 value (the
 * result rounded to F16 too); 0 below -10, x above 10. tanhf per element
 * was an eighth of a BERT's time. Built once. */
static float g_gelu_tab[65536];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

static void gelu_tab_init(void)
{
    for (uint32_t i = 0; i < 65536; i++)
        g_gelu_tab[i] = al_fp16_to_fp32(al_fp32_to_fp16(gelu(al_fp16_to_fp32((al_half)i))));
}

/* g[i] = gelu(g[i]) (* u[i]) through the table, n values. */
static void gelu_fast(const al_attn_kernels *ak, float *g, const float *u, size_t n)
{
    uint16_t h[256];
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        const size_t m = n - i0 < 256 ? n - i0 : 256;
        ak->to_f16(g + i0, h, (uint32_t)m);
        for (size_t i = 0; i < m; i++) {
            const float x = g[i0 + i];
            float y = x <= -10.0f ? 0.0f : x >= 10.0f ? x : g_gelu_tab[h[i]];
            g[i0 + i] = u ? y * u[i0 + i] : y;
        }
    }
}

typedef struct act_job {
    float *g;        /* activated in place */
    const float *u;  /* multiplied in, or NULL (no gate) */
    size_t n;
    uint8_t kind;    /* al_ffn_kind */
    const al_attn_kernels *table; /* GELU through the F16 table (fast path), or NULL */
} act_job;

#define ACT_CHUNK 4096 /* elements per chunk (whole cache lines) */

static void act_chunk(void *arg, int64_t chunk, int ith)
{
    (void)ith;
    act_job *j = arg;
    size_t lo = (size_t)chunk * ACT_CHUNK, hi = lo + ACT_CHUNK < j->n ? lo + ACT_CHUNK : j->n;
    switch (j->kind) {
    case AL_FFN_GATED_SILU:
        for (size_t i = lo; i < hi; i++)
            j->g[i] = j->g[i] / (1.0f + expf(-j->g[i])) * j->u[i];
        break;
    case AL_FFN_GATED_GELU:
        if (j->table) {
            gelu_fast(j->table, j->g + lo, j->u + lo, hi - lo);
            break;
        }
        for (size_t i = lo; i < hi; i++)
            j->g[i] = gelu(j->g[i]) * j->u[i];
        break;
    default:
        if (j->table) {
            gelu_fast(j->table, j->g + lo, NULL, hi - lo);
            break;
        }
        for (size_t i = lo; i < hi; i++)
            j->g[i] = gelu(j->g[i]);
        break;
    }
}

/* g = act(g) (* u), split over the pool. */
static void activate(al_context *c, uint8_t kind, float *g, const float *u, size_t n)
{
    act_job j = {g, u, n, kind, NULL};
    if (!c->p.exact && kind != AL_FFN_GATED_SILU) {
        pthread_once(&g_gelu_once, gelu_tab_init);
        j.table = c->ak;
    }
    al_threadpool_for(c->tp, (int64_t)((n + ACT_CHUNK - 1) / ACT_CHUNK), act_chunk, &j);
}

/* The layer's FFN of `in` into out (n_tok rows of n_embd). Every FFN kind
 * is one case here. Fails only when a mixture's router gives NaN. */
static al_status ffn_forward(al_context *c, uint32_t l, const float *in, int64_t n_tok, float *out, al_error *err)
{
    const al_hparams *hp = &c->model->hp;
    const al_layer *ly = &c->model->layers[l];
    const size_t ff = ly->n_ff;
    switch ((al_ffn_kind)ly->ffn) {
    case AL_FFN_MOE:
        return al_moe_forward(c->moe, c->tp, c->p.exact, c->model->moe, ly->moe, l, hp->n_embd, in, n_tok, out,
                              err);
    case AL_FFN_GATED_SILU:
    case AL_FFN_GATED_GELU: {
        const al_weight *w2[2] = {&ly->w_gate, &ly->w_up};
        float *y2[2] = {c->gate, c->up};
        matmul_multi(c, w2, y2, 2, in, n_tok);
        add_bias(c->gate, ly->b_gate, n_tok, ff);
        add_bias(c->up, ly->b_up, n_tok, ff);
        activate(c, ly->ffn, c->gate, c->up, (size_t)n_tok * ff);
        matmul(c, &ly->w_down, c->gate, n_tok, out);
        break;
    }
    case AL_FFN_GELU:
        matmul(c, &ly->w_up, in, n_tok, c->up);
        add_bias(c->up, ly->b_up, n_tok, ff);
        activate(c, AL_FFN_GELU, c->up, NULL, (size_t)n_tok * ff);
        matmul(c, &ly->w_down, c->up, n_tok, out);
        break;
    }
    add_bias(out, ly->b_down, n_tok, hp->n_embd);
    return AL_OK;
}

/* A sublayer's output out (n_tok rows) joins the residual stream x: after
 * its post-norm and the residual scale, where the family has them. */
static void residual_add(al_context *c, float *x, float *out, const float *post_norm, const float *post_norm_b,
                         int64_t n_tok)
{
    const al_hparams *hp = &c->model->hp;
    if (hp->desc->post_add_norm) { /* BERT's post-LN: the sum is normed */
        const size_t n = (size_t)n_tok * hp->n_embd;
        for (size_t i = 0; i < n; i++)
            x[i] += out[i];
        norm_rows(hp, x, x, post_norm, post_norm_b, n_tok);
        return;
    }
    if (post_norm)
        norm_rows(hp, out, out, post_norm, NULL, n_tok);
    const size_t n = (size_t)n_tok * hp->n_embd;
    if (hp->residual_scale != 1.0f)
        for (size_t i = 0; i < n; i++)
            out[i] *= hp->residual_scale;
    for (size_t i = 0; i < n; i++)
        x[i] += out[i];
}

/* Q, K, V of the chunk from `in`: biases, Q/K norms, RoPE, the query
 * temperature; K and V go to the cache. */
static void qkv_forward(al_context *c, uint32_t l, const float *in, const int32_t *pos, const int32_t *seq,
                        int64_t n_tok)
{
    const al_model *m = c->model;
    const al_hparams *hp = &m->hp;
    const al_layer *ly = &m->layers[l];
    const size_t hd = hp->head_dim, nq = hp->n_head * hd, nkv = ly->n_head_kv * hd;
    const uint32_t half = hp->n_rot / 2;
    const bool full_norm = hp->desc->qk_norm == AL_QK_NORM_FULL || hp->desc->qk_norm == AL_QK_NORM_FULL_LN;
    const bool neox = hp->desc->rope_neox;
    const uint8_t qk_kind = hp->desc->qk_norm == AL_QK_NORM_FULL_LN ? AL_NORM_LAYER : AL_NORM_RMS;
    const al_weight *w3[3] = {&ly->wq, &ly->wk, &ly->wv};
    float *y3[3] = {c->q, c->k, c->v};
    matmul_multi(c, w3, y3, 3, in, n_tok);
    const float *cos0 = NULL, *sin0 = NULL;
    if (ly->rope != AL_ROPE_NONE) {
        cos0 = c->rope_cos + (size_t)ly->rope * c->p.n_batch * half;
        sin0 = c->rope_sin + (size_t)ly->rope * c->p.n_batch * half;
    }
    for (int64_t t = 0; t < n_tok; t++) {
        float *q = c->q + t * nq, *k = c->k + t * nkv, *v = c->v + t * nkv;
        if (ly->bq) {
            for (size_t i = 0; i < nq; i++)
                q[i] += ly->bq[i];
            for (size_t i = 0; i < nkv; i++) {
                k[i] += ly->bk[i];
                v[i] += ly->bv[i];
            }
        }
        if (ly->q_norm && full_norm) {
            norm_row(q, q, ly->q_norm, ly->q_norm_b, (int64_t)nq, hp->norm_eps, qk_kind);
            norm_row(k, k, ly->k_norm, ly->k_norm_b, (int64_t)nkv, hp->norm_eps, qk_kind);
        }
        const float *cs = cos0 ? cos0 + t * half : NULL, *sn = sin0 ? sin0 + t * half : NULL;
        for (uint32_t h = 0; h < hp->n_head; h++) {
            float *qh = q + h * hd;
            if (ly->q_norm && !full_norm)
                norm_row(qh, qh, ly->q_norm, NULL, (int64_t)hd, hp->norm_eps, AL_NORM_RMS);
            if (cs)
                rope_head(qh, cs, sn, hp->n_rot, neox);
        }
        for (uint32_t h = 0; h < ly->n_head_kv; h++) {
            float *kh = k + h * hd;
            if (ly->k_norm && !full_norm)
                norm_row(kh, kh, ly->k_norm, NULL, (int64_t)hd, hp->norm_eps, AL_NORM_RMS);
            if (cs)
                rope_head(kh, cs, sn, hp->n_rot, neox);
        }
        if (hp->attn_temp != 0.0f) {
            const float f = 1.0f + hp->attn_temp * logf(floorf((float)pos[t] / (float)hp->attn_temp_floor) + 1.0f);
            for (size_t i = 0; i < nq; i++)
                q[i] *= f;
        }
        const uint32_t slot = c->enc ? 0 : kv_slot(c, l, pos[t]);
        size_t off = c->enc ? (size_t)t * nkv : kv_offset(c, l, seq[t], slot);
        kv_store(c, c->k_cache, off, k, nkv);
        kv_store(c, c->v_cache, off, v, nkv);
        if (!c->enc && c->kv_ring[l] && slot + 1 < ly->window) { /* the mirror */
            off = kv_offset(c, l, seq[t], slot + c->kv_ring[l]);
            kv_store(c, c->k_cache, off, k, nkv);
            kv_store(c, c->v_cache, off, v, nkv);
        }
    }
}

/* Runs one chunk of at most n_batch tokens. out_rows[t] is the logits row
 * for token t, or -1. */
static al_status forward_chunk(al_context *c, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                               int64_t n_tok, const int32_t *out_rows, int32_t n_out, int32_t embd_base,
                               al_error *err)
{
    const al_model *m = c->model;
    const al_hparams *hp = &m->hp;
    const al_arch_desc *D = hp->desc;
    const size_t d = hp->n_embd;

    if (m->embd_fd >= 0 && !c->embd_row)
        c->embd_row = malloc(m->tok_embd.row_bytes); /* NULL: read from the map */
    for (int64_t t = 0; t < n_tok; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes;
        if (c->embd_row && al_model_read_embd_row(m, tokens[t], c->embd_row))
            row = c->embd_row;
        float *x = c->x + (size_t)t * d;
        al_dequantize_row(m->tok_embd.type, row, x, (int64_t)d);
        if (hp->embd_scale != 1.0f)
            for (size_t i = 0; i < d; i++)
                x[i] *= hp->embd_scale;
        if (m->type_embd0)
            for (size_t i = 0; i < d; i++)
                x[i] += m->type_embd0[i];
        if (m->pos_embd.rows) {
            float *pe = c->xo + (size_t)t * d;
            const uint8_t *prow = (const uint8_t *)m->pos_embd.data + (size_t)pos[t] * m->pos_embd.row_bytes;
            al_dequantize_row(m->pos_embd.type, prow, pe, (int64_t)d);
            for (size_t i = 0; i < d; i++)
                x[i] += pe[i];
        }
        if (m->embd_norm)
            norm_row(x, x, m->embd_norm, m->embd_norm_b, (int64_t)d, hp->norm_eps, AL_NORM_LAYER);
    }
    rope_tables(c, pos, n_tok);
    const int64_t n_tiles = attn_plan(c, pos, seq, n_tok);

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const al_layer *ly = &m->layers[l];
        /* attention */
        const float *in = c->x;
        if (D->pre_norm) {
            norm_rows(hp, c->xn, c->x, ly->attn_norm, ly->attn_norm_b, n_tok);
            in = c->xn;
        }
        qkv_forward(c, l, in, pos, seq, n_tok);
        attn_job job = {c, l, pos, seq, n_tiles, 0, {0}, {0}};
        if (attn_split_plan(c, &job, n_tok)) {
            al_threadpool_for(c->tp, (int64_t)job.seg_start[n_tok] * job.n_hg, attn_split_chunk, &job);
            attn_split_merge(&job, n_tok);
        } else {
            al_threadpool_for(c->tp, n_tiles * ly->n_head_kv, attn_chunk, &job);
        }
        matmul(c, &ly->wo, c->attn, n_tok, c->xo);
        add_bias(c->xo, ly->bo, n_tok, d);
        if (ly->attn_norm2) /* the layer's input, added again after the first norm */
            memcpy(c->xn, c->x, (size_t)n_tok * d * sizeof(float));
        residual_add(c, c->x, c->xo, ly->post_attn_norm, ly->post_attn_norm_b, n_tok);
        if (ly->attn_norm2) {
            for (size_t i = 0; i < (size_t)n_tok * d; i++)
                c->x[i] += c->xn[i];
            norm_rows(hp, c->x, c->x, ly->attn_norm2, ly->attn_norm2_b, n_tok);
        }

        /* FFN: in parallel blocks it reads the attention's input (still in
         * c->xn), else the stream after attention */
        if (!D->parallel) {
            in = c->x;
            if (D->pre_norm) {
                norm_rows(hp, c->xn, c->x, ly->ffn_norm, ly->ffn_norm_b, n_tok);
                in = c->xn;
            }
        }
        al_status st = ffn_forward(c, l, in, n_tok, c->xo, err);
        if (st)
            return st;
        residual_add(c, c->x, c->xo, ly->post_ffn_norm, ly->post_ffn_norm_b, n_tok);
    }

    if (c->embd) {
        for (int64_t t = 0; t < n_tok; t++) {
            float *e = c->embd + (size_t)(embd_base + t) * d;
            if (m->output_norm)
                norm_row(e, c->x + t * d, m->output_norm, m->output_norm_b, (int64_t)d, hp->norm_eps, D->norm);
            else
                memcpy(e, c->x + t * d, d * sizeof(float));
        }
    }
    if (n_out == 0)
        return AL_OK;
    int32_t first = -1;
    for (int64_t t = 0; t < n_tok; t++)
        if (out_rows[t] >= 0) {
            if (first < 0)
                first = out_rows[t];
            norm_row(c->out_x + (size_t)(out_rows[t] - first) * d, c->x + t * d, m->output_norm, m->output_norm_b,
                     (int64_t)d, hp->norm_eps, D->norm);
        }
    float *logits = c->logits + (size_t)first * hp->n_vocab;
    matmul(c, &m->output, c->out_x, n_out, logits);
    const size_t n = (size_t)n_out * hp->n_vocab;
    if (hp->logit_mul != 1.0f)
        for (size_t i = 0; i < n; i++)
            logits[i] *= hp->logit_mul;
    if (hp->final_softcap > 0.0f)
        for (size_t i = 0; i < n; i++)
            logits[i] = hp->final_softcap * tanhf(logits[i] / hp->final_softcap);
    return AL_OK;
}

/* An encoder's batch: every sequence whole, in one chunk: positions 0, 1,
 * ... in order and contiguous. Fills enc_len. */
static al_status enc_check(al_context *c, const al_batch *b, al_error *err)
{
    if ((uint32_t)b->n_tokens > c->p.n_batch)
        return al_err(err, AL_ERR_LIMIT,
                      "a batch of %d tokens does not fit this encoder's pass of %u tokens (it sees each sequence "
                      "whole, in one pass)", b->n_tokens, c->p.n_batch);
    bool seen[256] = {false};
    for (int32_t i = 0, start = 0; i < b->n_tokens; i++) {
        const int32_t s = b->seq ? b->seq[i] : 0;
        const bool first = i == 0 || (b->seq ? b->seq[i - 1] : 0) != s;
        if (first) {
            if (seen[s])
                return al_err(err, AL_ERR_ARG, "sequence %d: its tokens are not contiguous in the batch (an encoder "
                              "sees each sequence whole)", s);
            seen[s] = true;
            start = i;
        }
        if (b->pos[i] != i - start)
            return al_err(err, AL_ERR_ARG, "sequence %d: position %d where %d was expected (an encoder takes each "
                          "sequence whole, from position 0)", s, b->pos[i], i - start);
        if (i + 1 == b->n_tokens || (b->seq ? b->seq[i + 1] : 0) != s)
            for (int32_t k = start; k <= i; k++)
                c->enc_len[k] = i - start + 1;
    }
    return AL_OK;
}

/* The pooled vector of every sequence of the batch (embeddings on). */
static void pool_batch(al_context *c, const al_batch *b)
{
    const al_model *m = c->model;
    const uint32_t ns = c->p.n_seq, d = m->hp.n_embd;
    memset(c->pooled_ok, 0, ns * sizeof(bool));
    if (c->pooling == AL_POOLING_NONE)
        return;
    for (uint32_t s = 0; s < ns; s++) {
        c->pool_first[s] = -1;
        c->pool_count[s] = 0;
    }
    for (int32_t i = 0; i < b->n_tokens; i++) {
        const int32_t s = b->seq ? b->seq[i] : 0;
        if (c->pool_first[s] < 0)
            c->pool_first[s] = i;
        c->pool_last[s] = i;
        c->pool_count[s]++;
    }
    int32_t n_rank = 0;
    for (uint32_t s = 0; s < ns; s++) {
        if (c->pool_count[s] == 0)
            continue;
        float *o = c->pooled + (size_t)s * c->pool_dim;
        const float *first = c->embd + (size_t)c->pool_first[s] * d, *last = c->embd + (size_t)c->pool_last[s] * d;
        switch (c->pooling) {
        case AL_POOLING_MEAN:
            for (uint32_t k = 0; k < d; k++) {
                double sum = 0.0;
                for (int32_t i = c->pool_first[s]; i <= c->pool_last[s]; i++)
                    if ((b->seq ? b->seq[i] : 0) == (int32_t)s)
                        sum += c->embd[(size_t)i * d + k];
                o[k] = (float)(sum / c->pool_count[s]);
            }
            break;
        case AL_POOLING_CLS:
            memcpy(o, first, d * sizeof(float));
            break;
        case AL_POOLING_LAST:
            memcpy(o, last, d * sizeof(float));
            break;
        default: /* rank: the first token of an encoder, the last of a causal model (the only one that has
                    seen the whole input) */
            memcpy(c->cls_in + (size_t)n_rank * d, m->hp.causal ? last : first, d * sizeof(float));
            c->cls_seq[n_rank++] = (int32_t)s;
            break;
        }
        c->pooled_ok[s] = true;
    }
    if (n_rank == 0)
        return;
    const float *in = c->cls_in;
    if (m->cls.rows) {
        matmul(c, &m->cls, c->cls_in, n_rank, c->cls_mid);
        add_bias(c->cls_mid, m->cls_b, n_rank, d);
        for (size_t i = 0; i < (size_t)n_rank * d; i++)
            c->cls_mid[i] = tanhf(c->cls_mid[i]);
        in = c->cls_mid;
    }
    const uint32_t no = m->hp.n_cls_out;
    matmul(c, &m->cls_out, in, n_rank, c->cls_res);
    add_bias(c->cls_res, m->cls_out_b, n_rank, no);
    if (m->hp.causal && no >= 2) /* a decoder reranker's yes/no rows (Qwen3-Reranker): probabilities */
        for (int32_t r = 0; r < n_rank; r++) {
            float *z = c->cls_res + (size_t)r * no, mx = z[0], sum = 0.0f;
            for (uint32_t i = 1; i < no; i++)
                mx = z[i] > mx ? z[i] : mx;
            for (uint32_t i = 0; i < no; i++)
                sum += (z[i] = expf(z[i] - mx));
            for (uint32_t i = 0; i < no; i++)
                z[i] /= sum;
        }
    for (int32_t r = 0; r < n_rank; r++)
        memcpy(c->pooled + (size_t)c->cls_seq[r] * c->pool_dim, c->cls_res + (size_t)r * no, no * sizeof(float));
}

al_status al_decode(al_context *c, const al_batch *b, al_error *err)
{
    const al_hparams *hp = &c->model->hp;
    c->n_last = 0; /* no logits are valid until this batch succeeds */
    if (b->n_tokens <= 0)
        return al_err(err, AL_ERR_ARG, "empty batch");
    al_model_pack_settle(c->model, &c->pack_seen_done);
    if (b->n_tokens > c->out_index_cap) {
        int32_t *ni = realloc(c->out_index, (size_t)b->n_tokens * sizeof(int32_t));
        if (!ni)
            return al_err(err, AL_ERR_NOMEM, "out of memory for a batch of %d tokens", b->n_tokens);
        c->out_index = ni;
        c->out_index_cap = b->n_tokens;
    }
    if (c->embd && (uint32_t)b->n_tokens > c->p.n_batch)
        return al_err(err, AL_ERR_LIMIT, "with embeddings a batch holds at most %u tokens", c->p.n_batch);
    /* Validate everything before touching the cache. */
    int32_t n_out = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        if (b->tokens[i] < 0 || (uint32_t)b->tokens[i] >= hp->n_vocab)
            return al_err(err, AL_ERR_ARG, "token id %d is outside the vocabulary (%u)", b->tokens[i], hp->n_vocab);
        int32_t s = b->seq ? b->seq[i] : 0;
        if (s < 0 || (uint32_t)s >= c->p.n_seq)
            return al_err(err, AL_ERR_ARG, "sequence id %d is outside 0..%u", s, c->p.n_seq - 1);
        int32_t p = b->pos[i];
        if (p < 0 || (uint32_t)p >= c->p.n_ctx)
            return al_err(err, AL_ERR_LIMIT, "position %d does not fit the context of %u tokens", p, c->p.n_ctx);
        c->out_index[i] = -1;
        if (b->logits && b->logits[i])
            c->out_index[i] = n_out++;
    }
    if (n_out > c->out_cap)
        return al_err(err, AL_ERR_LIMIT, "a batch may ask for at most %d logits rows (asked %d)", c->out_cap, n_out);
    if (n_out > 0 && c->model->output.rows == 0)
        return al_err(err, AL_ERR_UNSUPPORTED, "this '%s' model has no output head: it embeds, it gives no logits",
                      hp->desc->name);
    if (c->enc) {
        al_status st = enc_check(c, b, err);
        if (st == AL_OK)
            st = forward_chunk(c, b->tokens, b->pos, b->seq ? b->seq : c->zero_seq, b->n_tokens, c->out_index,
                               0, 0, err);
        if (st)
            return st;
        c->n_last = b->n_tokens;
        c->n_embd_rows = c->embd ? b->n_tokens : 0;
        if (c->embd)
            pool_batch(c, b);
        /* hygiene: the chunk's keys and values go with it */
        const size_t used = kv_bytes(c, (size_t)b->n_tokens * hp->n_head_kv * hp->head_dim);
        memset(c->k_cache, 0, used);
        memset(c->v_cache, 0, used);
        return AL_OK;
    }
    /* Each sequence's positions must continue what its cache holds. */
    /* With sliding-window rings, a sequence's positions in a batch are
     * consecutive and may start below what it holds only as far back as
     * al_kv_seq_truncate could go. */
    int32_t *next = c->seq_len; /* updated as we check: restore on failure */
    int32_t saved[256], last[256];
    memcpy(saved, next, c->p.n_seq * sizeof(int32_t));
    for (uint32_t s = 0; s < c->p.n_seq; s++)
        last[s] = -1;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t s = b->seq ? b->seq[i] : 0;
        const int32_t p = b->pos[i];
        const char *why = NULL;
        if (p > next[s])
            why = "skips ahead of the positions it holds";
        else if (c->kv_has_ring && last[s] >= 0 && p != last[s] + 1)
            why = "does not follow the sequence's previous token in the batch (sliding-window layers)";
        else if (c->kv_has_ring && last[s] < 0 && c->seq_hw[s] - p > (int32_t)c->p.n_batch)
            why = "goes back further than the sliding-window layers keep";
        if (why) {
            memcpy(next, saved, c->p.n_seq * sizeof(int32_t));
            return al_err(err, AL_ERR_ARG, "sequence %d: position %d %s (it holds %d)", s, p, why, saved[s]);
        }
        last[s] = p;
        next[s] = p + 1;
    }
    for (uint32_t s = 0; s < c->p.n_seq; s++) {
        if (last[s] + 1 > c->seq_hw[s])
            c->seq_hw[s] = last[s] + 1;
        if (last[s] + 1 > c->seq_dirty[s])
            c->seq_dirty[s] = last[s] + 1;
    }

    for (int32_t start = 0; start < b->n_tokens; start += (int32_t)c->p.n_batch) {
        int32_t n = b->n_tokens - start;
        if (n > (int32_t)c->p.n_batch)
            n = (int32_t)c->p.n_batch;
        int32_t n_out_chunk = 0;
        for (int32_t i = 0; i < n; i++)
            n_out_chunk += c->out_index[start + i] >= 0;
        const int32_t *seq = b->seq ? b->seq + start : c->zero_seq;
        al_status st = forward_chunk(c, b->tokens + start, b->pos + start, seq, n, c->out_index + start,
                                     n_out_chunk, start, err);
        if (st) { /* the batch did not happen: the sequences keep what they held */
            memcpy(next, saved, c->p.n_seq * sizeof(int32_t));
            return st;
        }
    }
    c->n_last = b->n_tokens;
    c->n_embd_rows = c->embd ? b->n_tokens : 0;
    if (c->embd)
        pool_batch(c, b);
    return AL_OK;
}

const float *al_get_embedding_seq(const al_context *c, int32_t seq, int32_t *n)
{
    if (n)
        *n = 0;
    if (!c->pooled || c->pooling == AL_POOLING_NONE || seq < 0 || (uint32_t)seq >= c->p.n_seq ||
        !c->pooled_ok[seq] || c->n_embd_rows == 0)
        return NULL;
    if (n)
        *n = (int32_t)c->pool_dim;
    return c->pooled + (size_t)seq * c->pool_dim;
}

const float *al_get_logits(const al_context *c, int32_t i)
{
    if (i < 0 || i >= c->n_last || c->out_index[i] < 0)
        return NULL;
    return c->logits + (size_t)c->out_index[i] * c->model->hp.n_vocab;
}

const float *al_get_embedding(const al_context *c, int32_t i)
{
    if (!c->embd || i < 0 || i >= c->n_embd_rows)
        return NULL;
    return c->embd + (size_t)i * c->model->hp.n_embd;
}

void al_kv_seq_truncate(al_context *c, int32_t seq, int32_t p0)
{
    if (seq < 0 || (uint32_t)seq >= c->p.n_seq || p0 < 0)
        return;
    if (p0 < c->seq_len[seq])
        c->seq_len[seq] = p0;
    /* A window layer's ring still holds the window before p0 only if at
     * most n_batch positions were written past it. */
    if (p0 == 0 || (c->kv_has_ring && c->seq_hw[seq] - p0 > (int32_t)c->p.n_batch)) {
        c->seq_len[seq] = 0;
        c->seq_hw[seq] = 0;
    }
}

void al_kv_seq_copy(al_context *c, int32_t src, int32_t dst, int32_t n)
{
    if (c->enc) /* an encoder keeps nothing between batches */
        return;
    if (src < 0 || dst < 0 || (uint32_t)src >= c->p.n_seq || (uint32_t)dst >= c->p.n_seq || src == dst)
        return;
    if (n > c->seq_len[src])
        n = c->seq_len[src];
    if (n <= 0)
        return;
    const al_hparams *hp = &c->model->hp;
    if (c->kv_has_ring && c->seq_hw[src] - n > (int32_t)c->p.n_batch) {
        al_kv_seq_truncate(c, dst, 0); /* the windows before n are gone */
        return;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const uint32_t rows = c->kv_ring[l] ? c->kv_slots[l] : (uint32_t)n; /* a ring: all of it */
        const size_t bytes = kv_bytes(c, (size_t)rows * c->model->layers[l].n_head_kv * hp->head_dim);
        size_t so = kv_bytes(c, kv_offset(c, l, src, 0)), dof = kv_bytes(c, kv_offset(c, l, dst, 0));
        memcpy((uint8_t *)c->k_cache + dof, (uint8_t *)c->k_cache + so, bytes);
        memcpy((uint8_t *)c->v_cache + dof, (uint8_t *)c->v_cache + so, bytes);
    }
    c->seq_len[dst] = n;
    c->seq_hw[dst] = c->seq_hw[src];
    if (c->seq_dirty[src] > c->seq_dirty[dst]) /* what was copied is at most what src may hold */
        c->seq_dirty[dst] = c->seq_dirty[src];
}

int32_t al_kv_seq_len(const al_context *c, int32_t seq)
{
    if (seq < 0 || (uint32_t)seq >= c->p.n_seq)
        return 0;
    return c->seq_len[seq];
}

void al_kv_clear(al_context *c)
{
    const al_hparams *hp = &c->model->hp;
    size_t n = kv_bytes(c, c->kv_loff[hp->n_layer]);
    memset(c->k_cache, 0, n);
    memset(c->v_cache, 0, n);
    memset(c->seq_len, 0, c->p.n_seq * sizeof(int32_t));
    memset(c->seq_hw, 0, c->p.n_seq * sizeof(int32_t));
    memset(c->seq_dirty, 0, c->p.n_seq * sizeof(int32_t));
}

int al_physical_cores_count(void)
{
    return al_physical_cores();
}

/* ---------------------------------------------- data hygiene (serve) */

/* Zeroes every position of one sequence's K and V in every layer and
 * forgets them: what a finished request leaves in its slot is gone. Only
 * the slots it may have written since the last zeroing are cleared (the
 * rest are zero already): a 40-token request on a 2,048-position context
 * clears 40 positions, not 2,048. */
void al_kv_seq_zero(al_context *c, int32_t seq)
{
    if (!c || seq < 0 || (uint32_t)seq >= c->p.n_seq)
        return;
    if (c->enc) {
        c->seq_len[seq] = 0;
        return;
    }
    const al_hparams *hp = &c->model->hp;
    const uint32_t dirty = (uint32_t)c->seq_dirty[seq];
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        /* a window layer's ring (window + batch slots, and the mirror of its
         * first window after them): all of it */
        const uint32_t rows = !c->kv_ring[l] && dirty < c->kv_slots[l] ? dirty : c->kv_slots[l];
        const size_t bytes = kv_bytes(c, (size_t)rows * c->model->layers[l].n_head_kv * hp->head_dim);
        size_t off = kv_bytes(c, kv_offset(c, l, seq, 0));
        memset((uint8_t *)c->k_cache + off, 0, bytes);
        memset((uint8_t *)c->v_cache + off, 0, bytes);
    }
    c->seq_len[seq] = 0;
    c->seq_hw[seq] = 0;
    c->seq_dirty[seq] = 0;
}

size_t al_kv_nonzero_bytes(const al_context *c)
{
    if (!c || !c->k_cache || !c->v_cache)
        return 0;
    const size_t n = kv_bytes(c, c->kv_loff[c->model->hp.n_layer]);
    const uint8_t *k = c->k_cache, *v = c->v_cache;
    size_t nz = 0;
    for (size_t i = 0; i < n; i++)
        nz += (k[i] != 0) + (v[i] != 0);
    return nz;
}
