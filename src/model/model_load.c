/*
 * model_load.c - from a validated GGUF to an al_model: architecture,
 * hyper-parameters, and every tensor bound by name with its shape checked
 * against the architecture.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/model.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "tensor/quant_iq4.h"
#include "tensor/types.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

typedef struct loader {
    al_model *m;
    const char *path;
    char arch[32];
    al_error *err;
} loader;

al_model_params al_model_default_params(void)
{
    al_model_params p = {.check_tensors = false, .pack_weights = true};
    return p;
}

/* Reads "<arch>.<suffix>" as u32. */
static bool arch_u32(loader *L, const char *suffix, uint32_t *out)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", L->arch, suffix);
    return al_gguf_get_u32(L->m->gguf, key, out);
}

static bool arch_f32(loader *L, const char *suffix, float *out)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", L->arch, suffix);
    return al_gguf_get_f32(L->m->gguf, key, out);
}

static al_status need_u32(loader *L, const char *suffix, uint32_t *out, uint32_t lo, uint32_t hi)
{
    if (!arch_u32(L, suffix, out))
        return al_err(L->err, AL_ERR_FORMAT, "%s: required key '%s.%s' is missing or not an integer", L->path,
                      L->arch, suffix);
    if (*out < lo || *out > hi)
        return al_err(L->err, AL_ERR_FORMAT, "%s: key '%s.%s' = %u is out of range [%u, %u]", L->path, L->arch,
                      suffix, *out, lo, hi);
    return AL_OK;
}

/* Binds a 2-D weight (rows x cols) by name. */
static al_status bind_weight(loader *L, const char *name, int64_t rows, int64_t cols, bool required, al_weight *w,
                             bool *found)
{
    const al_gguf_tensor *t = al_gguf_find_tensor(L->m->gguf, name);
    if (found)
        *found = t != NULL;
    if (!t) {
        if (!required)
            return AL_OK;
        return al_err(L->err, AL_ERR_FORMAT, "%s: required tensor '%s' is missing", L->path, name);
    }
    if (t->n_dims > 2 || (int64_t)t->ne[0] != cols || (int64_t)t->ne[1] != rows)
        return al_err(L->err, AL_ERR_FORMAT,
                      "%s: tensor '%s' has shape [%llu, %llu] but %s needs [%lld, %lld] (cols, rows)", L->path,
                      name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], L->arch, (long long)cols,
                      (long long)rows);
    w->type = t->type;
    w->data = t->data;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = al_type_row_bytes(t->type, cols);
    return AL_OK;
}

/* Weight packing at load: every matrix of the forward pass whose type has
 * panel kernels is rearranged once into one anonymous mapping (huge pages
 * where the kernel gives them: a few hundred faults instead of a hundred
 * thousand), split over the cores, and the pages of the rows it replaces
 * are given back: the file map is shared and read-only, so they stay in
 * the page cache but leave this process's resident set (unless memory is
 * locked). The token embedding is read by rows and stays as it is (with
 * a tied output only the rows looked up come back). */
#define PACK_CHUNK 64 /* panels per work item */
#define MAX_LAYERS 1024 /* block_count at most */
#define PACK_MAX_W (7 * MAX_LAYERS + 1)

typedef struct pack_job {
    al_weight *all[PACK_MAX_W];    /* every matrix */
    al_weight *w[PACK_MAX_W];      /* the ones packed */
    int64_t first[PACK_MAX_W + 1]; /* first chunk of each of them */
    int n;
} pack_job;

/* Gives back the pages wholly inside rows [r0, r1) of w. */
static void release_rows(const al_weight *w, int64_t r0, int64_t r1)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)w->data + (size_t)r0 * w->row_bytes + pg - 1) & ~(pg - 1);
    const uintptr_t hi = ((uintptr_t)w->data + (size_t)r1 * w->row_bytes) & ~(pg - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static void pack_chunk(void *arg, int64_t c, int ith)
{
    (void)ith;
    const pack_job *j = arg;
    int lo = 0, hi = j->n - 1;
    while (lo < hi) { /* the weight whose chunks hold c */
        const int mid = (lo + hi + 1) / 2;
        if (j->first[mid] <= c)
            lo = mid;
        else
            hi = mid - 1;
    }
    const al_weight *w = j->w[lo];
    const int64_t n_panels = w->rows / 8, p0 = (c - j->first[lo]) * PACK_CHUNK;
    const int64_t p1 = p0 + PACK_CHUNK < n_panels ? p0 + PACK_CHUNK : n_panels;
    const size_t pb = al_matmul_pack_bytes(w->type, 8, w->cols);
    al_matmul_pack(w->type, (const uint8_t *)w->data + (size_t)(p0 * 8) * w->row_bytes, (p1 - p0) * 8, w->cols,
                   w->row_bytes, (uint8_t *)w->packed + (size_t)p0 * pb);
    release_rows(w, p0 * 8, p1 * 8); /* as we go: the peak stays near the model's size */
}

static al_status pack_weights(loader *L)
{
    al_model *m = L->m;
    pack_job *j = calloc(1, sizeof(*j));
    if (!j)
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    al_weight **all = j->all;
    int n_all = 0;
    bool layers_packed = false;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        al_layer *ly = &m->layers[l];
        al_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 7; i++) {
            all[n_all++] = ws[i];
            layers_packed = layers_packed || al_matmul_pack_bytes(ws[i]->type, ws[i]->rows, ws[i]->cols) > 0;
        }
    }
    /* The output alone is not worth it (a Q4_0 file with a Q6_K output):
     * its panels cost a decode step more than its rows (the dot kernels
     * read the rows of one token faster) and only batches gain. */
    if (layers_packed)
        all[n_all++] = &m->output;
    size_t total = 0;
    for (int i = 0; i < n_all; i++) {
        const size_t n = al_matmul_pack_bytes(all[i]->type, all[i]->rows, all[i]->cols);
        if (n == 0)
            continue;
        all[i]->packed = (void *)(uintptr_t)total; /* offset for now */
        total += (n + 63) & ~(size_t)63;
        j->w[j->n] = all[i];
        j->first[j->n + 1] = j->first[j->n] + (all[i]->rows / 8 + PACK_CHUNK - 1) / PACK_CHUNK;
        j->n++;
    }
    if (total == 0) {
        free(j);
        return AL_OK;
    }
    const size_t huge = (size_t)2 << 20, len = (total + huge - 1) / huge * huge + huge;
    uint8_t *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) { /* no room: run from the file's rows, slower but correct */
        for (int i = 0; i < j->n; i++)
            j->w[i]->packed = NULL;
        free(j);
        return AL_OK;
    }
    m->packed_map = map;
    m->packed_map_bytes = len;
    uint8_t *base = (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise(base, total, MADV_HUGEPAGE);
    for (int i = 0; i < j->n; i++)
        j->w[i]->packed = base + (uintptr_t)j->w[i]->packed;
    al_threadpool *tp = al_threadpool_new(al_physical_cores());
    al_threadpool_for(tp, j->first[j->n], pack_chunk, j); /* tp NULL: on this thread */
    al_threadpool_free(tp);
    for (int i = 0; i < j->n; i++) /* the pages chunks shared */
        release_rows(j->w[i], 0, j->w[i]->rows / 8 * 8);
    free(j);
    return AL_OK;
}

/* Binds a 1-D vector and dequantizes it into an owned F32 array. */
static al_status bind_vec(loader *L, const char *name, int64_t n, bool required, float **out)
{
    *out = NULL;
    const al_gguf_tensor *t = al_gguf_find_tensor(L->m->gguf, name);
    if (!t) {
        if (!required)
            return AL_OK;
        return al_err(L->err, AL_ERR_FORMAT, "%s: required tensor '%s' is missing", L->path, name);
    }
    if (t->n_elems != (uint64_t)n || (int64_t)t->ne[0] != n)
        return al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%s' has %llu elements but %s needs a vector of %lld",
                      L->path, name, (unsigned long long)t->n_elems, L->arch, (long long)n);
    *out = malloc((size_t)n * sizeof(float));
    if (!*out)
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    al_dequantize_row(t->type, t->data, *out, n);
    return AL_OK;
}

static al_status load_hparams(loader *L)
{
    al_model *m = L->m;
    al_hparams *hp = &m->hp;
    al_str a;
    if (!al_gguf_get_str(m->gguf, "general.architecture", &a))
        return al_err(L->err, AL_ERR_FORMAT, "%s: required key 'general.architecture' is missing", L->path);
    if (a.len >= sizeof(L->arch))
        return al_err(L->err, AL_ERR_UNSUPPORTED, "%s: architecture name is too long", L->path);
    memcpy(L->arch, a.ptr, a.len);
    L->arch[a.len] = 0;
    for (size_t i = 0; i < a.len; i++)
        if (L->arch[i] < 32 || L->arch[i] > 126)
            L->arch[i] = '?';
    if (!strcmp(L->arch, "llama"))
        hp->arch = AL_ARCH_LLAMA;
    else if (!strcmp(L->arch, "qwen2"))
        hp->arch = AL_ARCH_QWEN2;
    else if (!strcmp(L->arch, "qwen3"))
        hp->arch = AL_ARCH_QWEN3;
    else
        return al_err(L->err, AL_ERR_UNSUPPORTED,
                      "%s: architecture '%s' is not supported (supported: llama, qwen2, qwen3)", L->path, L->arch);

    al_status st;
    if ((st = need_u32(L, "embedding_length", &hp->n_embd, 1, 1 << 16)) ||
        (st = need_u32(L, "block_count", &hp->n_layer, 1, MAX_LAYERS)) ||
        (st = need_u32(L, "attention.head_count", &hp->n_head, 1, 1024)) ||
        (st = need_u32(L, "feed_forward_length", &hp->n_ff, 1, 1 << 20)))
        return st;
    if (!arch_u32(L, "attention.head_count_kv", &hp->n_head_kv))
        hp->n_head_kv = hp->n_head;
    if (hp->n_head_kv == 0 || hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv)
        return al_err(L->err, AL_ERR_FORMAT,
                      "%s: key '%s.attention.head_count_kv' = %u must divide head_count = %u", L->path, L->arch,
                      hp->n_head_kv, hp->n_head);
    if (!arch_u32(L, "attention.key_length", &hp->head_dim)) {
        if (hp->n_embd % hp->n_head)
            return al_err(L->err, AL_ERR_FORMAT, "%s: embedding_length %u is not a multiple of head_count %u",
                          L->path, hp->n_embd, hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    uint32_t vlen;
    if (arch_u32(L, "attention.value_length", &vlen) && vlen != hp->head_dim)
        return al_err(L->err, AL_ERR_UNSUPPORTED, "%s: value_length %u differs from key_length %u", L->path, vlen,
                      hp->head_dim);
    if (hp->head_dim == 0 || hp->head_dim > 1024 || hp->head_dim % 2)
        return al_err(L->err, AL_ERR_FORMAT, "%s: head dimension %u is not an even number in 2..1024", L->path,
                      hp->head_dim);
    if (!arch_u32(L, "context_length", &hp->n_ctx_train) || hp->n_ctx_train == 0)
        hp->n_ctx_train = 2048;
    if (!arch_u32(L, "rope.dimension_count", &hp->n_rot))
        hp->n_rot = hp->head_dim;
    if (hp->n_rot == 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return al_err(L->err, AL_ERR_FORMAT, "%s: rope.dimension_count %u must be even and <= head dim %u", L->path,
                      hp->n_rot, hp->head_dim);
    if (!arch_f32(L, "rope.freq_base", &hp->rope_base))
        hp->rope_base = 10000.0f;
    if (!(hp->rope_base > 0.0f))
        return al_err(L->err, AL_ERR_FORMAT, "%s: rope.freq_base must be positive", L->path);
    hp->rope_scale = 1.0f;
    float f;
    if (arch_f32(L, "rope.scaling.factor", &f) && f > 0.0f) {
        al_str type;
        char key[128];
        snprintf(key, sizeof(key), "%s.rope.scaling.type", L->arch);
        if (!al_gguf_get_str(m->gguf, key, &type) || al_str_eq(type, "linear"))
            hp->rope_scale = f;
        else if (!al_str_eq(type, "none"))
            return al_err(L->err, AL_ERR_UNSUPPORTED, "%s: rope scaling type '%.*s' is not supported (linear is)",
                          L->path, (int)(type.len > 32 ? 32 : type.len), type.ptr);
    }
    hp->rope_neox = hp->arch != AL_ARCH_LLAMA;
    if (!arch_f32(L, "attention.layer_norm_rms_epsilon", &hp->norm_eps))
        hp->norm_eps = 1e-5f;
    if (!(hp->norm_eps > 0.0f) || hp->norm_eps > 1.0f)
        return al_err(L->err, AL_ERR_FORMAT, "%s: layer_norm_rms_epsilon must be in (0, 1]", L->path);
    return AL_OK;
}

static al_status load_tensors(loader *L)
{
    al_model *m = L->m;
    al_hparams *hp = &m->hp;
    int64_t d = hp->n_embd, hd = hp->head_dim;
    int64_t nq = (int64_t)hp->n_head * hd, nkv = (int64_t)hp->n_head_kv * hd;

    const al_gguf_tensor *te = al_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te)
        return al_err(L->err, AL_ERR_FORMAT, "%s: required tensor 'token_embd.weight' is missing", L->path);
    if (te->n_dims != 2 || te->ne[1] > (1u << 24))
        return al_err(L->err, AL_ERR_FORMAT, "%s: tensor 'token_embd.weight' must be 2-D with at most 2^24 rows",
                      L->path);
    hp->n_vocab = (uint32_t)te->ne[1];
    al_status st = bind_weight(L, "token_embd.weight", hp->n_vocab, d, true, &m->tok_embd, NULL);
    bool has_out = false;
    if (st || (st = bind_weight(L, "output.weight", hp->n_vocab, d, false, &m->output, &has_out)))
        return st;
    m->tied_output = !has_out;
    if (m->tied_output)
        m->output = m->tok_embd;
    if ((st = bind_vec(L, "output_norm.weight", d, true, &m->output_norm)))
        return st;
    if ((st = bind_vec(L, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs)))
        return st;

    m->layers = calloc(hp->n_layer, sizeof(al_layer));
    if (!m->layers)
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    char name[96];
#define W(field, suffix, rows, cols)                                                  \
    do {                                                                              \
        snprintf(name, sizeof(name), "blk.%u.%s.weight", i, suffix);                  \
        if ((st = bind_weight(L, name, rows, cols, true, &ly->field, NULL)))          \
            return st;                                                                \
    } while (0)
#define V(field, suffix, kind, n, req)                                                \
    do {                                                                              \
        snprintf(name, sizeof(name), "blk.%u.%s.%s", i, suffix, kind);                \
        if ((st = bind_vec(L, name, n, req, &ly->field)))                             \
            return st;                                                                \
    } while (0)
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        al_layer *ly = &m->layers[i];
        V(attn_norm, "attn_norm", "weight", d, true);
        W(wq, "attn_q", nq, d);
        W(wk, "attn_k", nkv, d);
        W(wv, "attn_v", nkv, d);
        W(wo, "attn_output", d, nq);
        V(ffn_norm, "ffn_norm", "weight", d, true);
        W(w_gate, "ffn_gate", hp->n_ff, d);
        W(w_up, "ffn_up", hp->n_ff, d);
        W(w_down, "ffn_down", d, hp->n_ff);
        bool qwen2 = hp->arch == AL_ARCH_QWEN2, qwen3 = hp->arch == AL_ARCH_QWEN3;
        V(bq, "attn_q", "bias", nq, qwen2);
        V(bk, "attn_k", "bias", nkv, qwen2);
        V(bv, "attn_v", "bias", nkv, qwen2);
        /* The forward pass adds the three biases together: all or none. */
        if ((ly->bq != NULL) != (ly->bk != NULL) || (ly->bq != NULL) != (ly->bv != NULL))
            return al_err(L->err, AL_ERR_FORMAT,
                          "%s: layer %u has only some of attn_q.bias, attn_k.bias, attn_v.bias (q %s, k %s, v %s)",
                          L->path, i, ly->bq ? "present" : "missing", ly->bk ? "present" : "missing",
                          ly->bv ? "present" : "missing");
        V(q_norm, "attn_q_norm", "weight", hd, qwen3);
        V(k_norm, "attn_k_norm", "weight", hd, qwen3);
    }
#undef W
#undef V

    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const al_gguf_tensor *t = &m->gguf->tensors[i];
        m->n_params += t->n_elems;
    }
    /* Type mix, e.g. "Q4_K:113 Q6_K:29 F32:57". */
    uint32_t counts[AL_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++)
        counts[m->gguf->tensors[i].type]++;
    size_t off = 0;
    for (uint32_t t = 0; t < AL_TYPE_COUNT; t++)
        if (counts[t] && off < sizeof(m->type_mix))
            off += (size_t)snprintf(m->type_mix + off, sizeof(m->type_mix) - off, "%s%s:%u", off ? " " : "",
                                    al_type_name(t), counts[t]);
    return AL_OK;
}

/* The RoPE angle of pair i at position p is p * rope_inv_freq[i]: computed
 * once here instead of for every token of every forward pass. */
static al_status rope_setup(loader *L)
{
    al_model *m = L->m;
    const al_hparams *hp = &m->hp;
    uint32_t half = hp->n_rot / 2;
    m->rope_inv_freq = malloc(half * sizeof(float));
    if (!m->rope_inv_freq)
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    for (uint32_t i = 0; i < half; i++) {
        float f = powf(hp->rope_base, -2.0f * (float)i / (float)hp->n_rot) / hp->rope_scale;
        if (m->rope_freqs)
            f /= m->rope_freqs[i];
        m->rope_inv_freq[i] = f;
    }
    return AL_OK;
}

/* Refuses a tensor holding a block whose scale is an F16 NaN or infinity
 * or an E8M0 exponent of 255 (MXFP4's NaN): every dot product touching
 * such a block is NaN, and the logits with it. Done at every load: it reads
 * only the scale bytes, but that brings in every page of the weights,
 * about what packing the weights (the default) costs anyway. NaN or
 * infinite F32/F16/BF16 values and quants that overflow are left to
 * --check-tensors (check_finite). */
static al_status check_scales(loader *L)
{
    const al_gguf *g = L->m->gguf;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const al_gguf_tensor *t = &g->tensors[i];
        const al_type_traits *tr = al_type_get(t->type);
        uint64_t bad = 0;
        const char *why = NULL;
        if (tr->block_elems > 1 && !al_check_block_scales(t->type, t->data, t->n_bytes / tr->block_bytes, &bad, &why))
            return al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%.*s' (%s): block %llu (row %llu) is corrupt: %s",
                          L->path, (int)(t->name.len > 96 ? 96 : t->name.len), t->name.ptr, tr->name,
                          (unsigned long long)bad,
                          (unsigned long long)(bad * tr->block_elems / t->ne[0]), why);
    }
    return AL_OK;
}

/* Dequantizes every row of every tensor and checks that all values are
 * finite (params.check_tensors): slow, reads the whole file. */
static al_status check_finite(loader *L)
{
    const al_gguf *g = L->m->gguf;
    float *row = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const al_gguf_tensor *t = &g->tensors[i];
        size_t n = (size_t)t->ne[0], row_bytes = al_type_row_bytes(t->type, (int64_t)n);
        if (n > cap) {
            float *nr = realloc(row, n * sizeof(float));
            if (!nr) {
                free(row);
                return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
            }
            row = nr;
            cap = n;
        }
        for (uint64_t r = 0; r < t->n_elems / n; r++) {
            al_dequantize_row(t->type, (const uint8_t *)t->data + r * row_bytes, row, (int64_t)n);
            for (size_t k = 0; k < n; k++)
                if (!isfinite(row[k])) {
                    free(row);
                    return al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%.*s' holds a NaN or infinity in row %llu",
                                  L->path, (int)(t->name.len > 96 ? 96 : t->name.len), t->name.ptr,
                                  (unsigned long long)r);
                }
        }
    }
    free(row);
    return AL_OK;
}

al_status al_model_load(const char *path, const al_model_params *params, al_model **out, al_error *err)
{
    *out = NULL;
    al_model *m = calloc(1, sizeof(*m));
    if (!m)
        return al_err(err, AL_ERR_NOMEM, "%s: out of memory", path);
    loader L = {.m = m, .path = path, .err = err};
    al_status st = al_gguf_open(path, NULL, &m->gguf, err);
    if (!st)
        st = load_hparams(&L);
    if (!st)
        st = load_tensors(&L);
    if (!st)
        st = rope_setup(&L);
    if (!st)
        st = check_scales(&L);
    if (!st && params && params->check_tensors)
        st = check_finite(&L);
    if (!st && (!params || params->pack_weights))
        st = pack_weights(&L);
    if (!st) {
        st = al_vocab_from_gguf(m->gguf, &m->vocab, err);
        if (st)
            al_err_prefix(err, path);
    }
    if (!st && (uint32_t)al_vocab_n_tokens(m->vocab) > m->hp.n_vocab)
        st = al_err(err, AL_ERR_FORMAT, "%s: the tokenizer has %d tokens but token_embd.weight has only %u rows",
                    path, al_vocab_n_tokens(m->vocab), m->hp.n_vocab);
    if (!st) {
        al_str tmpl;
        if (al_gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl)) {
            m->chat_template = malloc(tmpl.len + 1);
            if (!m->chat_template)
                st = al_err(err, AL_ERR_NOMEM, "%s: out of memory", path);
            else {
                memcpy(m->chat_template, tmpl.ptr, tmpl.len);
                m->chat_template[tmpl.len] = 0;
                /* Flag a template that does not parse; the caller decides. */
                al_template *t = NULL;
                al_error terr = {0};
                if (al_template_parse(m->chat_template, tmpl.len, &t, &terr) != AL_OK)
                    m->template_error = strdup(terr.msg[0] ? terr.msg : "the chat template does not parse");
                al_template_free(t);
            }
        }
    }
    if (st) {
        al_model_free(m);
        return st;
    }
    *out = m;
    return AL_OK;
}

void al_model_free(al_model *m)
{
    if (!m)
        return;
    if (m->packed_map)
        munmap(m->packed_map, m->packed_map_bytes);
    if (m->layers) {
        for (uint32_t i = 0; i < m->hp.n_layer; i++) {
            al_layer *ly = &m->layers[i];
            free(ly->attn_norm);
            free(ly->ffn_norm);
            free(ly->bq);
            free(ly->bk);
            free(ly->bv);
            free(ly->q_norm);
            free(ly->k_norm);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->rope_freqs);
    free(m->rope_inv_freq);
    al_vocab_free(m->vocab);
    free(m->chat_template);
    free(m->template_error);
    al_gguf_close(m->gguf);
    free(m);
}

void al_model_get_info(const al_model *m, al_model_info *o)
{
    static const char *const k_arch[] = {"llama", "qwen2", "qwen3"};
    memset(o, 0, sizeof(*o));
    snprintf(o->arch, sizeof(o->arch), "%s", k_arch[m->hp.arch]);
    al_str name;
    if (al_gguf_get_str(m->gguf, "general.name", &name)) {
        /* From the file: keep printable ASCII and UTF-8, drop control bytes. */
        size_t n = 0;
        for (uint64_t i = 0; i < name.len && n + 1 < sizeof(o->name); i++) {
            unsigned char ch = (unsigned char)name.ptr[i];
            o->name[n++] = (ch < 32 || ch == 127) ? '?' : (char)ch;
        }
        o->name[n] = 0;
    }
    o->n_params = m->n_params;
    o->file_bytes = m->gguf->size;
    o->n_ctx_train = m->hp.n_ctx_train;
    o->n_embd = m->hp.n_embd;
    o->n_layer = m->hp.n_layer;
    o->n_head = m->hp.n_head;
    o->n_head_kv = m->hp.n_head_kv;
    o->head_dim = m->hp.head_dim;
    o->n_ff = m->hp.n_ff;
    o->n_vocab = m->hp.n_vocab;
    o->rope_base = m->hp.rope_base;
    o->norm_eps = m->hp.norm_eps;
    o->tied_output = m->tied_output;
    o->has_chat_template = m->chat_template != NULL;
    al_str vt;
    const char *vtype = "none";
    if (al_gguf_get_str(m->gguf, "tokenizer.ggml.model", &vt)) {
        if (al_str_eq(vt, "llama"))
            vtype = "spm";
        else if (al_str_eq(vt, "gpt2"))
            vtype = "bpe";
        else if (al_str_eq(vt, "bert"))
            vtype = "wpm";
        else
            vtype = "other";
    }
    snprintf(o->vocab_type, sizeof(o->vocab_type), "%s", vtype);
    snprintf(o->type_mix, sizeof(o->type_mix), "%s", m->type_mix);
}

const al_vocab *al_model_vocab(const al_model *m)
{
    return m->vocab;
}

const char *al_model_chat_template(const al_model *m)
{
    return m->chat_template;
}

const char *al_model_template_error(const al_model *m)
{
    return m->template_error;
}

uint64_t al_model_kv_bytes(const al_model *m, uint32_t n_ctx, uint32_t n_seq)
{
    return 2ull * m->hp.n_layer * n_ctx * n_seq * m->hp.n_head_kv * m->hp.head_dim * sizeof(uint16_t);
}
