/*
 * moe.c - the mixture-of-experts feed-forward (see moe.h): load-side
 * checks, routing, and the forward pass of one layer in three grouped
 * matmul dispatches: router scores; the gate and up of every chosen expert
 * (and of the shared expert); their down projections.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/moe.h"
#include "tensor/matmul_grouped.h"
#include "tensor/quant.h"
#include "tensor/types.h"
#include "util/error.h"

#define OAI_ALPHA 1.702f  /* gpt-oss SwiGLU: gate * sigmoid(alpha * gate) */
#define OAI_LIMIT 7.0f    /* gate clamped above, up clamped to [-limit, limit] */
#define NORM_MIN 6.103515625e-5f /* the k weights' sum is at least this (2^-14) */

/* ------------------------------------------------------------ loading */

static bool key_u32(const al_gguf *g, const char *arch, const char *suffix, uint32_t *out)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    return al_gguf_get_u32(g, key, out);
}

static bool key_present(const al_gguf *g, const char *arch, const char *suffix)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    return al_gguf_find(g, key) != NULL;
}

al_status al_moe_load_hparams(const al_gguf *g, const char *path, const char *arch, uint32_t n_ff,
                              al_moe_hparams *hp, al_error *err)
{
    if (!key_u32(g, arch, "expert_count", &hp->n_expert))
        return al_err(err, AL_ERR_FORMAT, "%s: required key '%s.expert_count' is missing or not an integer", path,
                      arch);
    if (hp->n_expert == 0 || hp->n_expert > AL_MOE_MAX_EXPERTS)
        return al_err(err, AL_ERR_FORMAT, "%s: key '%s.expert_count' = %u is out of range [1, %u]", path, arch,
                      hp->n_expert, AL_MOE_MAX_EXPERTS);
    if (!key_u32(g, arch, "expert_used_count", &hp->n_expert_used))
        return al_err(err, AL_ERR_FORMAT, "%s: required key '%s.expert_used_count' is missing or not an integer",
                      path, arch);
    if (hp->n_expert_used == 0 || hp->n_expert_used > hp->n_expert)
        return al_err(err, AL_ERR_FORMAT,
                      "%s: key '%s.expert_used_count' = %u must be in [1, expert_count = %u]", path, arch,
                      hp->n_expert_used, hp->n_expert);
    if (!key_u32(g, arch, "expert_feed_forward_length", &hp->n_ff_exp)) {
        if (key_present(g, arch, "expert_feed_forward_length"))
            return al_err(err, AL_ERR_FORMAT, "%s: key '%s.expert_feed_forward_length' is not an integer", path,
                          arch);
        hp->n_ff_exp = n_ff;
    }
    if (hp->n_ff_exp == 0 || hp->n_ff_exp > (1u << 20))
        return al_err(err, AL_ERR_FORMAT, "%s: key '%s.expert_feed_forward_length' = %u is out of range [1, 2^20]",
                      path, arch, hp->n_ff_exp);
    if (hp->n_ff_shexp) { /* the architecture has a shared expert */
        if (!key_u32(g, arch, "expert_shared_feed_forward_length", &hp->n_ff_shexp)) {
            if (key_present(g, arch, "expert_shared_feed_forward_length"))
                return al_err(err, AL_ERR_FORMAT, "%s: key '%s.expert_shared_feed_forward_length' is not an integer",
                              path, arch);
            hp->n_ff_shexp = n_ff;
        }
        if (hp->n_ff_shexp == 0 || hp->n_ff_shexp > (1u << 20))
            return al_err(err, AL_ERR_FORMAT,
                          "%s: key '%s.expert_shared_feed_forward_length' = %u is out of range [1, 2^20]", path,
                          arch, hp->n_ff_shexp);
    }
    char key[128];
    bool b;
    snprintf(key, sizeof(key), "%s.expert_weights_norm", arch);
    if (al_gguf_get_bool(g, key, &b))
        hp->norm_topk = b;
    else if (al_gguf_find(g, key))
        return al_err(err, AL_ERR_FORMAT, "%s: key '%s' is not a bool", path, key);
    snprintf(key, sizeof(key), "%s.expert_weights_scale", arch);
    float f;
    if (al_gguf_get_f32(g, key, &f)) {
        if (!isfinite(f) || !(f > 0.0f))
            return al_err(err, AL_ERR_FORMAT, "%s: key '%s' = %g must be finite and positive", path, key, (double)f);
        hp->weights_scale = f;
    } else if (al_gguf_find(g, key)) {
        return al_err(err, AL_ERR_FORMAT, "%s: key '%s' is not a number", path, key);
    }
    if (!(hp->weights_scale > 0.0f))
        hp->weights_scale = 1.0f;
    uint32_t gf;
    if (key_u32(g, arch, "expert_gating_func", &gf)) {
        if (gf < AL_MOE_GATING_SOFTMAX || gf > AL_MOE_GATING_SOFTMAX_TOPK)
            return al_err(err, AL_ERR_UNSUPPORTED,
                          "%s: key '%s.expert_gating_func' = %u is not supported (1 softmax, 2 sigmoid, 3 softmax "
                          "over the chosen experts)",
                          path, arch, gf);
        hp->gating = (al_moe_gating)gf;
    } else if (key_present(g, arch, "expert_gating_func")) {
        return al_err(err, AL_ERR_FORMAT, "%s: key '%s.expert_gating_func' is not an integer", path, arch);
    }
    if (hp->gating < AL_MOE_GATING_SOFTMAX || hp->gating > AL_MOE_GATING_SOFTMAX_TOPK)
        hp->gating = AL_MOE_GATING_SOFTMAX;
    return AL_OK;
}

static const char *short_name(const al_gguf_tensor *t, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s", (int)(t->name.len > 96 ? 96 : t->name.len), t->name.ptr);
    return buf;
}

/* A 2-D weight rows x cols (a 1-D tensor of cols when rows is 1). */
static al_status bind_2d(const al_gguf *g, const char *path, const char *name, int64_t rows, int64_t cols,
                         bool required, al_weight *w, al_error *err)
{
    memset(w, 0, sizeof(*w));
    const al_gguf_tensor *t = al_gguf_find_tensor(g, name);
    if (!t) {
        if (!required)
            return AL_OK;
        return al_err(err, AL_ERR_FORMAT, "%s: required tensor '%s' is missing", path, name);
    }
    if (t->n_dims > 2 || (int64_t)t->ne[0] != cols || (int64_t)t->ne[1] != rows)
        return al_err(err, AL_ERR_FORMAT, "%s: tensor '%s' has shape [%llu, %llu] but needs [%lld, %lld] (cols, rows)",
                      path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (long long)cols,
                      (long long)rows);
    if (!al_matmul_check(t->type, cols))
        return al_err(err, AL_ERR_UNSUPPORTED, "%s: tensor '%s' of type %s cannot be multiplied (%lld columns)", path,
                      name, al_type_name(t->type), (long long)cols);
    *w = (al_weight){t->type, t->data, rows, cols, al_type_row_bytes(t->type, cols), NULL, false};
    return AL_OK;
}

static al_status bind_experts(const al_gguf *g, const char *path, const char *name, int64_t rows, int64_t cols,
                              uint32_t n_expert, al_experts *x, al_error *err)
{
    const al_gguf_tensor *t = al_gguf_find_tensor(g, name);
    if (!t)
        return al_err(err, AL_ERR_FORMAT, "%s: required tensor '%s' is missing", path, name);
    if (t->n_dims != 3 || (int64_t)t->ne[0] != cols || (int64_t)t->ne[1] != rows)
        return al_err(err, AL_ERR_FORMAT,
                      "%s: tensor '%s' has shape [%llu, %llu, %llu] (%u dims) but needs [%lld, %lld, %u]", path, name,
                      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                      t->n_dims, (long long)cols, (long long)rows, n_expert);
    if (t->ne[2] != n_expert)
        return al_err(err, AL_ERR_FORMAT,
                      "%s: tensor '%s' holds %llu experts (third dimension) but expert_count is %u", path, name,
                      (unsigned long long)t->ne[2], n_expert);
    if (!al_matmul_check(t->type, cols))
        return al_err(err, AL_ERR_UNSUPPORTED, "%s: tensor '%s' of type %s cannot be multiplied (%lld columns)", path,
                      name, al_type_name(t->type), (long long)cols);
    x->type = t->type;
    x->data = t->data;
    x->rows = rows;
    x->cols = cols;
    x->row_bytes = al_type_row_bytes(t->type, cols);
    x->expert_bytes = x->row_bytes * (size_t)rows;
    return AL_OK;
}

/* A vector or matrix of n values copied to F32 (rows x cols when 2-D). */
static al_status bind_f32(const al_gguf *g, const char *path, const char *name, int64_t cols, int64_t rows,
                          float **out, al_error *err)
{
    *out = NULL;
    const al_gguf_tensor *t = al_gguf_find_tensor(g, name);
    if (!t)
        return AL_OK;
    char nb[100];
    if ((int64_t)t->ne[0] != cols || t->n_elems != (uint64_t)(cols * rows) || t->n_dims > 2)
        return al_err(err, AL_ERR_FORMAT, "%s: tensor '%s' has %llu elements ([%llu, %llu]) but needs [%lld, %lld]",
                      path, short_name(t, nb, sizeof(nb)), (unsigned long long)t->n_elems,
                      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (long long)cols, (long long)rows);
    if (al_type_get(t->type)->block_elems == 0 || cols % al_type_get(t->type)->block_elems)
        return al_err(err, AL_ERR_FORMAT, "%s: tensor '%s' of type %s cannot hold rows of %lld", path, name,
                      al_type_name(t->type), (long long)cols);
    float *v = malloc((size_t)(cols * rows) * sizeof(float));
    if (!v)
        return al_err(err, AL_ERR_NOMEM, "%s: out of memory", path);
    const size_t rb = al_type_row_bytes(t->type, cols);
    for (int64_t r = 0; r < rows; r++)
        al_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, v + r * cols, cols);
    *out = v;
    return AL_OK;
}

al_status al_moe_bind_layer(const al_gguf *g, const char *path, uint32_t il, const al_moe_hparams *hp,
                            int64_t n_embd, al_moe_layer *ly, al_error *err)
{
    memset(ly, 0, sizeof(*ly));
    const int64_t ne = hp->n_expert, nf = hp->n_ff_exp;
    char name[96];
    al_status st;
#define NAME(suffix) (snprintf(name, sizeof(name), "blk.%u.%s", il, suffix), name)
    if ((st = bind_2d(g, path, NAME("ffn_gate_inp.weight"), ne, n_embd, true, &ly->router, err)) ||
        (st = bind_f32(g, path, NAME("ffn_gate_inp.bias"), ne, 1, &ly->router_b, err)) ||
        (st = bind_experts(g, path, NAME("ffn_gate_exps.weight"), nf, n_embd, hp->n_expert, &ly->gate, err)) ||
        (st = bind_experts(g, path, NAME("ffn_up_exps.weight"), nf, n_embd, hp->n_expert, &ly->up, err)) ||
        (st = bind_experts(g, path, NAME("ffn_down_exps.weight"), n_embd, nf, hp->n_expert, &ly->down, err)) ||
        (st = bind_f32(g, path, NAME("ffn_gate_exps.bias"), nf, ne, &ly->gate_b, err)) ||
        (st = bind_f32(g, path, NAME("ffn_up_exps.bias"), nf, ne, &ly->up_b, err)) ||
        (st = bind_f32(g, path, NAME("ffn_down_exps.bias"), n_embd, ne, &ly->down_b, err)))
        goto fail;
    if ((ly->gate_b != NULL) != (ly->up_b != NULL) || (ly->gate_b != NULL) != (ly->down_b != NULL)) {
        st = al_err(err, AL_ERR_FORMAT,
                    "%s: layer %u has only some of ffn_gate_exps.bias, ffn_up_exps.bias, ffn_down_exps.bias", path,
                    il);
        goto fail;
    }
    if (hp->n_ff_shexp) {
        const int64_t ns = hp->n_ff_shexp;
        if ((st = bind_2d(g, path, NAME("ffn_gate_inp_shexp.weight"), 1, n_embd, false, &ly->shexp_inp, err)) ||
            (st = bind_2d(g, path, NAME("ffn_gate_shexp.weight"), ns, n_embd, true, &ly->shexp_gate, err)) ||
            (st = bind_2d(g, path, NAME("ffn_up_shexp.weight"), ns, n_embd, true, &ly->shexp_up, err)) ||
            (st = bind_2d(g, path, NAME("ffn_down_shexp.weight"), n_embd, ns, true, &ly->shexp_down, err)))
            goto fail;
    }
#undef NAME
    return AL_OK;
fail:
    al_moe_layer_free(ly);
    return st;
}

void al_moe_layer_free(al_moe_layer *ly)
{
    if (!ly)
        return;
    free(ly->router_b);
    free(ly->gate_b);
    free(ly->up_b);
    free(ly->down_b);
    ly->router_b = ly->gate_b = ly->up_b = ly->down_b = NULL;
}

uint64_t al_moe_inactive_params(const al_moe_hparams *hp, const al_moe_layer *ly)
{
    uint64_t per = (uint64_t)(ly->gate.rows * ly->gate.cols + ly->up.rows * ly->up.cols +
                              ly->down.rows * ly->down.cols);
    if (ly->gate_b)
        per += (uint64_t)(2 * hp->n_ff_exp + ly->down.rows);
    return per * (hp->n_expert - hp->n_expert_used);
}

uint64_t al_moe_inactive_bytes(const al_moe_hparams *hp, const al_moe_layer *ly)
{
    uint64_t per = (uint64_t)(ly->gate.expert_bytes + ly->up.expert_bytes + ly->down.expert_bytes);
    if (ly->gate_b) /* F32 copies, read as F32 */
        per += (uint64_t)(2 * hp->n_ff_exp + ly->down.rows) * sizeof(float);
    return per * (hp->n_expert - hp->n_expert_used);
}

/* ------------------------------------------------------------ lazy packing */

struct al_moe_packing {
    _Atomic int64_t budget;  /* bytes that may still be packed */
    int64_t budget0;
    uint8_t *map;            /* reserved panels of every expert matrix */
    size_t map_bytes;
    al_lazy_panels *lz;      /* (n_lz) */
    size_t n_lz;
    _Atomic uint8_t *state;  /* every panel's state */
};

/* Bytes of one panel of x on this CPU, or 0 when its type has none. */
static size_t expert_panel_bytes(const al_experts *x)
{
    if (x->rows < 8)
        return 0;
    return al_matmul_pack_bytes(x->type, 8, x->cols);
}

al_moe_packing *al_moe_packing_new(al_moe_layer *const *layers, uint32_t n_layer, uint32_t n_expert,
                                   int64_t budget_bytes)
{
    size_t bytes = 0, n_lz = 0, n_state = 0;
    for (uint32_t l = 0; l < n_layer; l++) {
        al_experts *xs[3] = {&layers[l]->gate, &layers[l]->up, &layers[l]->down};
        for (int i = 0; i < 3; i++) {
            const size_t pb = expert_panel_bytes(xs[i]);
            if (pb == 0)
                continue;
            const size_t np = (size_t)(xs[i]->rows / 8);
            bytes += ((pb * np + 63) & ~(size_t)63) * n_expert;
            n_lz += n_expert;
            n_state += np * n_expert;
        }
    }
    if (bytes == 0 || budget_bytes <= 0)
        return NULL;
    al_moe_packing *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->lz = calloc(n_lz, sizeof(*p->lz));
    p->state = calloc(n_state, sizeof(*p->state));
    p->map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!p->lz || !p->state || p->map == MAP_FAILED) {
        if (p->map == MAP_FAILED)
            p->map = NULL;
        al_moe_packing_free(p);
        return NULL;
    }
    p->map_bytes = bytes;
    p->n_lz = n_lz;
    p->budget0 = budget_bytes;
    atomic_init(&p->budget, budget_bytes);
    size_t off = 0, li = 0, si = 0;
    for (uint32_t l = 0; l < n_layer; l++) {
        al_experts *xs[3] = {&layers[l]->gate, &layers[l]->up, &layers[l]->down};
        for (int i = 0; i < 3; i++) {
            const size_t pb = expert_panel_bytes(xs[i]);
            if (pb == 0)
                continue;
            const size_t np = (size_t)(xs[i]->rows / 8);
            xs[i]->lazy = p->lz + li;
            for (uint32_t e = 0; e < n_expert; e++) {
                al_lazy_panels *z = &p->lz[li++];
                z->panels = p->map + off;
                z->panel_bytes = pb;
                z->state = p->state + si;
                z->budget = &p->budget;
                atomic_init(&z->n_packed, 0);
                off += (pb * np + 63) & ~(size_t)63;
                si += np;
            }
        }
    }
    return p;
}

void al_moe_packing_free(al_moe_packing *p)
{
    if (!p)
        return;
    if (p->map)
        munmap(p->map, p->map_bytes);
    free(p->lz);
    free((void *)p->state);
    free(p);
}

int64_t al_moe_packing_bytes(const al_moe_packing *p)
{
    return p ? p->budget0 - atomic_load_explicit(&p->budget, memory_order_relaxed) : 0;
}

/* ------------------------------------------------------------ file advice */

/* Starts reading expert e's rows of x from the file (madvise WILLNEED on
 * the pages they touch: the kernel queues reads of the whole range and
 * returns), unless all of them are packed already and the pass will not
 * read them. */
static void prefetch_expert(const al_experts *x, uint32_t e)
{
    if (x->lazy && atomic_load_explicit(&x->lazy[e].n_packed, memory_order_relaxed) == x->rows / 8 &&
        x->rows % 8 == 0)
        return;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), p = (uintptr_t)(x->data + (size_t)e * x->expert_bytes);
    const uintptr_t lo = p & ~(pg - 1), hi = (p + x->expert_bytes + pg - 1) & ~(pg - 1);
    (void)madvise((void *)lo, hi - lo, MADV_WILLNEED);
}

/* ------------------------------------------------------------ routing */

bool al_moe_route(const al_moe_hparams *hp, const float *scores, int32_t *experts, float *weights)
{
    const uint32_t n = hp->n_expert, k = hp->n_expert_used;
    float p[AL_MOE_MAX_EXPERTS];
    float mx = -INFINITY;
    for (uint32_t e = 0; e < n; e++) {
        if (!isfinite(scores[e]))
            return false;
        mx = scores[e] > mx ? scores[e] : mx;
    }
    switch (hp->gating) {
    case AL_MOE_GATING_SOFTMAX: {
        double sum = 0.0;
        for (uint32_t e = 0; e < n; e++) {
            p[e] = expf(scores[e] - mx);
            sum += p[e];
        }
        for (uint32_t e = 0; e < n; e++)
            p[e] = (float)(p[e] / sum);
        break;
    }
    case AL_MOE_GATING_SIGMOID:
        for (uint32_t e = 0; e < n; e++)
            p[e] = 1.0f / (1.0f + expf(-scores[e]));
        break;
    default:
        memcpy(p, scores, n * sizeof(float));
        break;
    }
    /* top k, best first; equal scores: the lower expert id first */
    uint8_t taken[AL_MOE_MAX_EXPERTS] = {0};
    for (uint32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (uint32_t e = 0; e < n; e++)
            if (!taken[e] && (best < 0 || p[e] > p[best]))
                best = (int32_t)e;
        taken[best] = 1;
        experts[j] = best;
        weights[j] = p[best];
    }
    if (hp->gating == AL_MOE_GATING_SOFTMAX_TOPK) {
        const float m0 = weights[0]; /* the largest */
        double sum = 0.0;
        for (uint32_t j = 0; j < k; j++) {
            weights[j] = expf(weights[j] - m0);
            sum += weights[j];
        }
        for (uint32_t j = 0; j < k; j++)
            weights[j] = (float)(weights[j] / sum);
    }
    if (hp->norm_topk) {
        float sum = 0.0f;
        for (uint32_t j = 0; j < k; j++)
            sum += weights[j];
        if (sum < NORM_MIN)
            sum = NORM_MIN;
        for (uint32_t j = 0; j < k; j++)
            weights[j] /= sum;
    }
    if (hp->weights_scale != 1.0f)
        for (uint32_t j = 0; j < k; j++)
            weights[j] *= hp->weights_scale;
    return true;
}

/* ------------------------------------------------------------ forward */

struct al_moe_scratch {
    uint32_t n_batch, k, n_expert;
    int64_t n_embd, n_ff, n_ff_sh;
    float *scores;    /* (n_batch, n_expert) router scores */
    float *sh_score;  /* (n_batch) shared expert gate scores */
    int32_t *sel;     /* (n_batch, k) chosen experts, in order of choice */
    float *wts;       /* (n_batch, k) their weights */
    int32_t *slot;    /* (n_batch, k) row of g/u/d holding token t's j-th expert */
    int32_t *tok;     /* (n_batch * k) token of each row, rows grouped by expert */
    int32_t *first;   /* (n_expert + 1) first row of each expert */
    float *g, *u;     /* (n_batch * k, n_ff) */
    float *d;         /* (n_batch * k, n_embd) */
    float *sg, *su;   /* (n_batch, n_ff_sh) shared expert */
    float *sd;        /* (n_batch, n_embd) */
    al_mm_group *grp; /* (n_expert * 2 + 2) */
    void *mm;         /* al_matmul_grouped scratch */
};

static void *alloc64(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n + 63) / 64 * 64 + 64))
        return NULL;
    return p;
}

al_moe_scratch *al_moe_scratch_new(const al_moe_hparams *hp, int64_t n_embd, uint32_t n_batch, int n_threads,
                                   bool exact)
{
    al_moe_scratch *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->n_batch = n_batch;
    s->k = hp->n_expert_used;
    s->n_expert = hp->n_expert;
    s->n_embd = n_embd;
    s->n_ff = hp->n_ff_exp;
    s->n_ff_sh = hp->n_ff_shexp;
    const size_t B = n_batch, BK = (size_t)n_batch * hp->n_expert_used;
    s->scores = alloc64(B * hp->n_expert * sizeof(float));
    s->sh_score = alloc64(B * sizeof(float));
    s->sel = alloc64(BK * sizeof(int32_t));
    s->wts = alloc64(BK * sizeof(float));
    s->slot = alloc64(BK * sizeof(int32_t));
    s->tok = alloc64(BK * sizeof(int32_t));
    s->first = alloc64((hp->n_expert + 1) * sizeof(int32_t));
    s->g = alloc64(BK * (size_t)s->n_ff * sizeof(float));
    s->u = alloc64(BK * (size_t)s->n_ff * sizeof(float));
    s->d = alloc64(BK * (size_t)n_embd * sizeof(float));
    if (s->n_ff_sh) {
        s->sg = alloc64(B * (size_t)s->n_ff_sh * sizeof(float));
        s->su = alloc64(B * (size_t)s->n_ff_sh * sizeof(float));
        s->sd = alloc64(B * (size_t)n_embd * sizeof(float));
    }
    s->grp = calloc((size_t)hp->n_expert * 2 + 2, sizeof(al_mm_group));
    const int n_grp = (int)hp->n_expert * 2 + 2;
    const int64_t max_k = n_embd > s->n_ff ? (n_embd > s->n_ff_sh ? n_embd : s->n_ff_sh)
                                           : (s->n_ff > s->n_ff_sh ? s->n_ff : s->n_ff_sh);
    size_t mm = al_matmul_grouped_scratch_bound(n_grp, (int64_t)(2 * BK + 2 * B), max_k, n_threads, exact);
    s->mm = mm == SIZE_MAX ? NULL : alloc64(mm);
    if (!s->scores || !s->sh_score || !s->sel || !s->wts || !s->slot || !s->tok || !s->first || !s->g || !s->u ||
        !s->d || !s->grp || !s->mm || (s->n_ff_sh && (!s->sg || !s->su || !s->sd))) {
        al_moe_scratch_free(s);
        return NULL;
    }
    return s;
}

void al_moe_scratch_free(al_moe_scratch *s)
{
    if (!s)
        return;
    free(s->scores);
    free(s->sh_score);
    free(s->sel);
    free(s->wts);
    free(s->slot);
    free(s->tok);
    free(s->first);
    free(s->g);
    free(s->u);
    free(s->d);
    free(s->sg);
    free(s->su);
    free(s->sd);
    free(s->grp);
    free(s->mm);
    free(s);
}

typedef struct act_job {
    al_moe_scratch *s;
    const al_moe_hparams *hp;
    const al_moe_layer *ly;
    const float *x;
    float *out;
    int64_t n_rows;  /* expert rows (activation) or tokens (combine) */
    int64_t n_tok;
} act_job;

#define ACT_ROWS 16 /* rows per chunk */

static inline float silu(float v)
{
    return v / (1.0f + expf(-v));
}

/* Expert rows: biases, then the gated activation into g. */
static void act_chunk(void *arg, int64_t c, int ith)
{
    (void)ith;
    const act_job *j = arg;
    al_moe_scratch *s = j->s;
    const int64_t nf = s->n_ff;
    int64_t r0 = c * ACT_ROWS, r1 = r0 + ACT_ROWS < j->n_rows ? r0 + ACT_ROWS : j->n_rows;
    int32_t e = 0;
    for (int64_t r = r0; r < r1; r++) {
        while (r >= s->first[e + 1])
            e++;
        float *g = s->g + r * nf, *u = s->u + r * nf;
        if (j->ly->gate_b) {
            const float *gb = j->ly->gate_b + (size_t)e * nf, *ub = j->ly->up_b + (size_t)e * nf;
            for (int64_t i = 0; i < nf; i++) {
                g[i] += gb[i];
                u[i] += ub[i];
            }
        }
        if (j->hp->act == AL_MOE_ACT_SWIGLU_OAI) {
            for (int64_t i = 0; i < nf; i++) {
                const float gv = g[i] < OAI_LIMIT ? g[i] : OAI_LIMIT;
                const float uv = u[i] < -OAI_LIMIT ? -OAI_LIMIT : (u[i] > OAI_LIMIT ? OAI_LIMIT : u[i]);
                g[i] = gv / (1.0f + expf(-OAI_ALPHA * gv)) * (uv + 1.0f);
            }
        } else {
            for (int64_t i = 0; i < nf; i++)
                g[i] = silu(g[i]) * u[i];
        }
    }
}

static void sh_act_chunk(void *arg, int64_t c, int ith)
{
    (void)ith;
    const act_job *j = arg;
    al_moe_scratch *s = j->s;
    const int64_t ns = s->n_ff_sh;
    const int64_t t0 = c * ACT_ROWS, t1 = t0 + ACT_ROWS < j->n_tok ? t0 + ACT_ROWS : j->n_tok;
    for (int64_t t = t0; t < t1; t++) {
        float *g = s->sg + t * ns, *u = s->su + t * ns;
        for (int64_t i = 0; i < ns; i++)
            g[i] = silu(g[i]) * u[i];
    }
}

/* out[t] = sum over t's experts, in order of choice, of weight * (down +
 * bias), plus the shared expert times its sigmoid gate. */
static void combine_chunk(void *arg, int64_t c, int ith)
{
    (void)ith;
    const act_job *j = arg;
    al_moe_scratch *s = j->s;
    const int64_t d = s->n_embd;
    const int64_t t0 = c * ACT_ROWS, t1 = t0 + ACT_ROWS < j->n_tok ? t0 + ACT_ROWS : j->n_tok;
    for (int64_t t = t0; t < t1; t++) {
        float *o = j->out + t * d;
        for (uint32_t q = 0; q < s->k; q++) {
            const int32_t e = s->sel[t * s->k + q];
            const float w = s->wts[t * s->k + q];
            const float *dr = s->d + (int64_t)s->slot[t * s->k + q] * d;
            const float *b = j->ly->down_b ? j->ly->down_b + (size_t)e * d : NULL;
            for (int64_t i = 0; i < d; i++) {
                const float v = (b ? dr[i] + b[i] : dr[i]) * w;
                o[i] = q == 0 ? v : o[i] + v;
            }
        }
        if (s->n_ff_sh) {
            const float gate = j->ly->shexp_inp.rows ? 1.0f / (1.0f + expf(-s->sh_score[t])) : 1.0f;
            const float *sd = s->sd + t * d;
            for (int64_t i = 0; i < d; i++)
                o[i] += sd[i] * gate;
        }
    }
}

static al_mm_group group_of(const al_weight *w, const float *X, int64_t ldx, const int32_t *rows, int64_t n_tok,
                            float *Y, int64_t ldy)
{
    return (al_mm_group){w->type, w->data, w->rows, w->cols, w->row_bytes, X, ldx, rows, n_tok, Y, ldy, NULL};
}

/* Expert e of x over the given rows, with its lazy panels. */
static al_mm_group expert_group(const al_experts *x, uint32_t e, const float *X, int64_t ldx, const int32_t *rows,
                                int64_t n_tok, float *Y, int64_t ldy)
{
    const al_weight w = al_expert(x, e);
    al_mm_group g = group_of(&w, X, ldx, rows, n_tok, Y, ldy);
    g.lazy = x->lazy ? &x->lazy[e] : NULL;
    return g;
}

al_status al_moe_forward(al_moe_scratch *s, al_threadpool *tp, bool exact, const al_moe_hparams *hp,
                         const al_moe_layer *ly, uint32_t il, int64_t n_embd, const float *x, int64_t n_tok,
                         float *out, al_error *err)
{
    const uint32_t ne = hp->n_expert, k = hp->n_expert_used;
    const int64_t nf = hp->n_ff_exp, ns = hp->n_ff_shexp;
    al_mm_group *G = s->grp;
    int n = 0;

    /* 1. router scores (and the shared expert's gate score) */
    G[n++] = group_of(&ly->router, x, n_embd, NULL, n_tok, s->scores, ne);
    if (ns && ly->shexp_inp.rows)
        G[n++] = group_of(&ly->shexp_inp, x, n_embd, NULL, n_tok, s->sh_score, 1);
    al_matmul_grouped(tp, G, n, exact, s->mm);

    /* 2. routing, token by token; rows grouped by expert */
    int32_t *count = s->first + 1; /* first[e+1] counts, then becomes the end */
    memset(s->first, 0, (ne + 1) * sizeof(int32_t));
    for (int64_t t = 0; t < n_tok; t++) {
        float *sc = s->scores + t * ne;
        if (ly->router_b)
            for (uint32_t e = 0; e < ne; e++)
                sc[e] += ly->router_b[e];
        if (!al_moe_route(hp, sc, s->sel + t * k, s->wts + t * k))
            return al_err(err, AL_ERR_FORMAT,
                          "layer %u: the expert router gave token %lld of the batch a NaN or infinite score", il,
                          (long long)t);
        for (uint32_t q = 0; q < k; q++)
            count[s->sel[t * k + q]]++;
    }
    int32_t fill[AL_MOE_MAX_EXPERTS];
    for (uint32_t e = 0; e < ne; e++) {
        s->first[e + 1] += s->first[e];
        fill[e] = s->first[e];
    }
    for (int64_t t = 0; t < n_tok; t++)
        for (uint32_t q = 0; q < k; q++) {
            const int32_t e = s->sel[t * k + q], r = fill[e]++;
            s->tok[r] = (int32_t)t;
            s->slot[t * k + q] = r;
        }
    /* a file larger than memory: the disk gets every chosen expert's rows
     * as large requests at once, before the first fault would ask for them
     * page by page; gate and up first, as they are used */
    if (hp->prefetch) {
        for (uint32_t e = 0; e < ne; e++)
            if (s->first[e + 1] > s->first[e]) {
                prefetch_expert(&ly->gate, e);
                prefetch_expert(&ly->up, e);
            }
        for (uint32_t e = 0; e < ne; e++)
            if (s->first[e + 1] > s->first[e])
                prefetch_expert(&ly->down, e);
    }

    /* 3. gate and up of every used expert over its tokens, and the shared expert */
    n = 0;
    for (uint32_t e = 0; e < ne; e++) {
        const int64_t c = s->first[e + 1] - s->first[e];
        if (c == 0)
            continue;
        const int32_t *rows = s->tok + s->first[e];
        G[n++] = expert_group(&ly->gate, e, x, n_embd, rows, c, s->g + (int64_t)s->first[e] * nf, nf);
        G[n++] = expert_group(&ly->up, e, x, n_embd, rows, c, s->u + (int64_t)s->first[e] * nf, nf);
    }
    if (ns) {
        G[n++] = group_of(&ly->shexp_gate, x, n_embd, NULL, n_tok, s->sg, ns);
        G[n++] = group_of(&ly->shexp_up, x, n_embd, NULL, n_tok, s->su, ns);
    }
    al_matmul_grouped(tp, G, n, exact, s->mm);

    const int64_t n_rows = n_tok * k;
    act_job aj = {s, hp, ly, x, out, n_rows, n_tok};
    al_threadpool_for(tp, (n_rows + ACT_ROWS - 1) / ACT_ROWS, act_chunk, &aj);
    if (ns)
        al_threadpool_for(tp, (n_tok + ACT_ROWS - 1) / ACT_ROWS, sh_act_chunk, &aj);

    /* 4. down projections */
    n = 0;
    for (uint32_t e = 0; e < ne; e++) {
        const int64_t c = s->first[e + 1] - s->first[e];
        if (c == 0)
            continue;
        G[n++] = expert_group(&ly->down, e, s->g + (int64_t)s->first[e] * nf, nf, NULL, c,
                              s->d + (int64_t)s->first[e] * n_embd, n_embd);
    }
    if (ns)
        G[n++] = group_of(&ly->shexp_down, s->sg, ns, NULL, n_tok, s->sd, n_embd);
    al_matmul_grouped(tp, G, n, exact, s->mm);

    al_threadpool_for(tp, (n_tok + ACT_ROWS - 1) / ACT_ROWS, combine_chunk, &aj);
    return AL_OK;
}
