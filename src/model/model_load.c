/*
 * model_load.c - from a validated GGUF to an al_model: architecture,
 * hyper-parameters, and every tensor bound by name with its shape checked
 * against the architecture.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/model.h"
#include "model/moe.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"
#include "tensor/quant_iq4.h"
#include "tensor/types.h"
#include "tokenizer/vocab.h"
#include "util/error.h"
#include "util/memlimit.h"

typedef struct loader {
    al_model *m;
    const char *path;
    char arch[32];
    al_error *err;
    uint8_t *used;   /* (n_tensors) bound by the description */
    int pack_threads; /* 0: one per physical core */
} loader;

/* Marks a tensor as read by the model. */
static void mark_used(loader *L, const al_gguf_tensor *t)
{
    if (L->used)
        L->used[t - L->m->gguf->tensors] = 1;
}

al_model_params al_model_default_params(void)
{
    al_model_params p = {.check_tensors = false, .pack_weights = true};
    return p;
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
    mark_used(L, t);
    w->type = t->type;
    w->data = t->data;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = al_type_row_bytes(t->type, cols);
    w->packed = NULL; /* w may be a local (fused tensors bound as views) */
    w->panels = false;
    return AL_OK;
}

/* Weight packing at load: every matrix of the forward pass whose type has
 * panel kernels is rearranged once into one anonymous mapping (huge pages
 * where the kernel gives them: a few hundred faults instead of a hundred
 * thousand), split over the cores, and the pages of the rows it replaces
 * are given back: the file map is shared and read-only, so they stay in
 * the page cache but leave this process's resident set (unless memory is
 * locked). The token embedding is read by rows and stays as it is (with
 * a tied output only the rows looked up come back).
 *
 * With pack_background the load returns at once and one thread of the
 * model packs the matrices in order, publishing each one's panels when they
 * are whole: most of a load's time is the kernel giving out (zeroing) the
 * new memory, a second or more per GB on a busy virtual machine, which a
 * server's first request need not wait for. Meanwhile every such matrix
 * goes through the same panel kernels, its panels packed on the stack at
 * each use (al_mm_desc.panels), so a token's logits do not depend on how
 * far the packing has come. */
#define PACK_CHUNK 64 /* panels per work item */
#define MAX_LAYERS 1024 /* block_count at most */
#define PACK_MAX_W (7 * MAX_LAYERS + 1)

typedef struct pack_job {
    al_weight *all[PACK_MAX_W];    /* every matrix */
    al_weight *w[PACK_MAX_W];      /* the ones packed */
    uint8_t *dst[PACK_MAX_W];      /* where each one's panels go */
    size_t off[PACK_MAX_W];        /* the same as offsets, before the map is made */
    int64_t first[PACK_MAX_W + 1]; /* first chunk of each of them */
    int n;
    _Atomic bool stop;             /* the model is being freed */
    _Atomic bool settled;          /* rows given back after the last reader (al_model_pack_settle) */
    _Atomic bool done;             /* every matrix published and its rows given back */
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

void al_weight_release_rows(const al_weight *w)
{
    release_rows(w, 0, w->rows / 8 * 8);
}

/* Chunk c of weight i. */
static void pack_one(const pack_job *j, int i, int64_t c)
{
    const al_weight *w = j->w[i];
    const int64_t n_panels = w->rows / 8, p0 = (c - j->first[i]) * PACK_CHUNK;
    const int64_t p1 = p0 + PACK_CHUNK < n_panels ? p0 + PACK_CHUNK : n_panels;
    const size_t pb = al_matmul_pack_bytes(w->type, 8, w->cols);
    al_matmul_pack(w->type, (const uint8_t *)w->data + (size_t)(p0 * 8) * w->row_bytes, (p1 - p0) * 8, w->cols,
                   w->row_bytes, j->dst[i] + (size_t)p0 * pb);
    release_rows(w, p0 * 8, p1 * 8); /* as we go: the peak stays near the model's size */
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
    pack_one(j, lo, c);
}

/* The packing thread (pack_background): weight after weight, each one
 * published when whole; its rows, which passes may have read meanwhile,
 * are given back once more after that. */
static void *pack_main(void *arg)
{
    pack_job *j = arg;
    (void)pthread_setname_np(pthread_self(), "airlock-pack"); /* for top -H, perf */
    for (int i = 0; i < j->n; i++) {
        for (int64_t c = j->first[i]; c < j->first[i + 1]; c++) {
            if (atomic_load_explicit(&j->stop, memory_order_relaxed))
                return NULL;
            pack_one(j, i, c);
        }
        __atomic_store_n(&j->w[i]->packed, (void *)j->dst[i], __ATOMIC_RELEASE);
        release_rows(j->w[i], 0, j->w[i]->rows / 8 * 8);
    }
    atomic_store(&j->done, true);
    return NULL;
}

static al_status pack_weights(loader *L, bool background)
{
    al_model *m = L->m;
    pack_job *j = calloc(1, sizeof(*j));
    if (!j)
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    atomic_init(&j->stop, false);
    atomic_init(&j->settled, false);
    atomic_init(&j->done, false);
    al_weight **all = j->all;
    int n_all = 0;
    bool layers_packed = false;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        al_layer *ly = &m->layers[l];
        al_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 7; i++) {
            if (ws[i]->rows == 0) /* no gate */
                continue;
            all[n_all++] = ws[i];
            layers_packed = layers_packed || al_matmul_pack_bytes(ws[i]->type, ws[i]->rows, ws[i]->cols) > 0;
        }
    }
    /* The output alone is not worth it (a Q4_0 file with a Q6_K output):
     * its panels cost a decode step more than its rows (the dot kernels
     * read the rows of one token faster) and only batches gain. */
    if (layers_packed && m->output.rows)
        all[n_all++] = &m->output;
    size_t total = 0;
    for (int i = 0; i < n_all; i++) {
        const size_t n = al_matmul_pack_bytes(all[i]->type, all[i]->rows, all[i]->cols);
        if (n == 0)
            continue;
        /* a panel too large for the stack cannot stand in for its packed
         * form in the meantime: such a model is packed before it runs */
        background = background && al_matmul_stack_panel(all[i]->type, all[i]->cols);
        j->off[j->n] = total;
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
        free(j);
        return AL_OK;
    }
    m->packed_map = map;
    m->packed_map_bytes = len;
    uint8_t *base = (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise(base, total, MADV_HUGEPAGE);
    for (int i = 0; i < j->n; i++)
        j->dst[i] = base + j->off[i];
    if (background) {
        for (int i = 0; i < j->n; i++)
            j->w[i]->panels = true;
        if (pthread_create(&m->pack_thread, NULL, pack_main, j) == 0) {
            m->pack_job = j;
            return AL_OK;
        }
        for (int i = 0; i < j->n; i++) /* no thread: pack here */
            j->w[i]->panels = false;
    }
    al_threadpool *tp = al_threadpool_new(L->pack_threads > 0 ? L->pack_threads : al_physical_cores());
    al_threadpool_for(tp, j->first[j->n], pack_chunk, j); /* tp NULL: on this thread */
    al_threadpool_free(tp);
    for (int i = 0; i < j->n; i++) { /* the pages chunks shared */
        j->w[i]->packed = j->dst[i];
        j->w[i]->panels = true;
        release_rows(j->w[i], 0, j->w[i]->rows / 8 * 8);
    }
    free(j);
    return AL_OK;
}

/* Stops the packing thread (the model is being freed) and waits for it. */
static void pack_stop(al_model *m)
{
    if (!m->pack_job)
        return;
    atomic_store(&m->pack_job->stop, true);
    pthread_join(m->pack_thread, NULL);
    free(m->pack_job);
    m->pack_job = NULL;
}

void al_model_pack_settle(const al_model *m, bool *seen_done)
{
    pack_job *j = m->pack_job;
    if (!j || atomic_load_explicit(&j->settled, memory_order_relaxed))
        return;
    if (!*seen_done) {
        *seen_done = !al_model_packing(m);
        return;
    }
    if (!atomic_exchange(&j->settled, true))
        for (int i = 0; i < j->n; i++)
            release_rows(j->w[i], 0, j->w[i]->rows / 8 * 8);
}

/* A tied output's rows are given back once packed, but the embedding
 * reads them by token: through the map each read brings back its page and
 * the pages around it (a whole large folio of the page cache, 2 MB on a
 * file written lately), and with many tokens the whole table comes back
 * beside its panels. Read with pread, they stay out of the resident set. */
static void embd_fd_open(loader *L)
{
    al_model *m = L->m;
    if (!m->tied_output || !m->output.panels || m->tok_embd.data != m->output.data)
        return;
    m->embd_fd = open(L->path, O_RDONLY | O_CLOEXEC);
}

bool al_model_read_embd_row(const al_model *m, int32_t tok, uint8_t *buf)
{
    if (m->embd_fd < 0)
        return false;
    const size_t n = m->tok_embd.row_bytes;
    off_t off = (off_t)((const uint8_t *)m->tok_embd.data - m->gguf->map) + (off_t)tok * (off_t)n;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(m->embd_fd, buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

bool al_model_packing(const al_model *m)
{
    return m->pack_job && !atomic_load(&m->pack_job->done);
}

/* ------------------------------------------------------------ the families */

#define OPT AL_NEED_OPTIONAL
#define REQ AL_NEED_REQUIRED

/* One entry per supported general.architecture. Fields left out are 0:
 * RMSNorm, no biases, no Q/K norm, adjacent-pair RoPE, gated SiLU FFN,
 * every layer global, no scales. Adding a llama-like family is one entry;
 * a behaviour no field covers is one new field of al_arch_desc, read at
 * load (load_hparams, load_layer, rope_setup) or in one place of the
 * forward pass (context.c). attention.scale and the two softcap keys are
 * honoured for any family that carries them; the other scales only where an
 * entry asks. Every tensor of the file must be one the entry binds. */
static const al_arch_desc k_archs[] = {
    {.name = "llama", .pre_norm = true, .qkv_bias = OPT, .o_bias = OPT, .ffn_bias = OPT, .causal = true},
    {.name = "qwen2", .pre_norm = true, .rope_neox = true, .qkv_bias = REQ, .causal = true},
    {.name = "qwen3", .pre_norm = true, .rope_neox = true, .qk_norm = AL_QK_NORM_HEAD, .qk_norm_need = REQ,
     .causal = true},
    {.name = "gemma", .pre_norm = true, .rope_neox = true, .ffn = AL_FFN_GATED_GELU,
     .embd_scale = AL_EMBD_SCALE_SQRT, .causal = true},
    {.name = "gemma2", .pre_norm = true, .post_norm = true, .rope_neox = true, .ffn = AL_FFN_GATED_GELU,
     .embd_scale = AL_EMBD_SCALE_SQRT, .swa = AL_SWA_REQUIRED, .swa_period = 2, .big_layers = 46, .causal = true},
    {.name = "gemma3", .pre_norm = true, .post_norm = true, .rope_neox = true, .qk_norm = AL_QK_NORM_HEAD,
     .qk_norm_need = REQ, .ffn = AL_FFN_GATED_GELU, .embd_scale = AL_EMBD_SCALE_SQRT, .swa = AL_SWA_REQUIRED,
     .swa_period = 6, .swa_rope_own = true, .big_layers = 62, .causal = true},
    {.name = "phi3", .pre_norm = true, .rope_neox = true, .o_bias = OPT, .fused_qkv = true, .fused_up = true,
     .swa = AL_SWA_IGNORED, .causal = true},
    {.name = "granite", .pre_norm = true, .qkv_bias = OPT, .o_bias = OPT, .ffn_bias = OPT,
     .embd_scale = AL_EMBD_SCALE_KEY, .residual_scale = true, .logit_scale = AL_SCALE_DIV, .causal = true},
    {.name = "mistral3", .pre_norm = true, .qkv_bias = OPT, .attn_temp = true, .causal = true},
    {.name = "olmo2", .post_norm = true, .rope_neox = true, .qk_norm = AL_QK_NORM_FULL, .qk_norm_need = REQ,
     .swa = AL_SWA_OPTIONAL, .swa_period = 4, .swa_rope_own = true, .causal = true},
    {.name = "exaone", .pre_norm = true, .rope_neox = true, .qkv_bias = OPT, .causal = true},
    {.name = "smollm3", .pre_norm = true, .qkv_bias = OPT, .o_bias = OPT, .ffn_bias = OPT, .nope_step = 4,
     .causal = true},
    {.name = "stablelm", .norm = AL_NORM_LAYER, .norm_bias = REQ, .pre_norm = true, .rope_neox = true,
     .qkv_bias = OPT, .causal = true},
    {.name = "starcoder2", .norm = AL_NORM_LAYER, .norm_bias = REQ, .pre_norm = true, .rope_neox = true,
     .qkv_bias = REQ, .o_bias = REQ, .ffn = AL_FFN_GELU, .ffn_bias = REQ, .causal = true},
    {.name = "command-r", .norm = AL_NORM_LAYER, .pre_norm = true, .parallel = true, .qkv_bias = OPT,
     .o_bias = OPT, .logit_scale = AL_SCALE_MUL, .causal = true},
    {.name = "cohere2", .norm = AL_NORM_LAYER, .pre_norm = true, .parallel = true, .qkv_bias = OPT,
     .o_bias = OPT, .swa = AL_SWA_REQUIRED, .swa_period = 4, .global_nope = true,
     .logit_scale = AL_SCALE_MUL, .causal = true},
    /* mixtures of experts (model/moe.h) */
    {.name = "qwen3moe", .pre_norm = true, .rope_neox = true, .qk_norm = AL_QK_NORM_HEAD, .qk_norm_need = REQ,
     .ffn = AL_FFN_MOE, .moe_gating = AL_MOE_GATING_SOFTMAX, .moe_norm_topk = true, .causal = true},
    {.name = "qwen2moe", .pre_norm = true, .rope_neox = true, .qkv_bias = REQ, .ffn = AL_FFN_MOE,
     .moe_gating = AL_MOE_GATING_SOFTMAX, .moe_shexp = true, .causal = true},
    {.name = "gpt-oss", .pre_norm = true, .rope_neox = true, .qkv_bias = REQ, .o_bias = REQ, .ffn = AL_FFN_MOE,
     .ffn_norm_name = "post_attention_norm", .attn_sinks = true, .swa = AL_SWA_REQUIRED, .swa_period = 2,
     .moe_gating = AL_MOE_GATING_SOFTMAX_TOPK, .moe_act = AL_MOE_ACT_SWIGLU_OAI, .causal = true},
    /* encoders: bidirectional, post-LN blocks, no output head */
    {.name = "bert", .norm = AL_NORM_LAYER, .norm_bias = REQ, .qkv_bias = OPT, .o_bias = OPT, .ffn = AL_FFN_GELU,
     .ffn_bias = OPT, .abs_pos = true, .embd_norm = true, .post_add_norm = true, .embed_only = true,
     .no_rope = true},
    {.name = "nomic-bert", .norm = AL_NORM_LAYER, .norm_bias = REQ, .rope_neox = true, .fused_qkv = true,
     .embd_norm = true, .post_add_norm = true, .embed_only = true},
    {.name = "jina-bert-v2", .norm = AL_NORM_LAYER, .norm_bias = REQ, .qk_norm = AL_QK_NORM_FULL_LN,
     .qk_norm_need = OPT, .qkv_bias = OPT, .o_bias = OPT, .ffn = AL_FFN_GATED_GELU, .ffn_bias = OPT,
     .fused_up = true, .embd_norm = true, .post_add_norm = true, .embed_only = true, .no_rope = true,
     .alibi = true, .attn_norm_2 = true},
};

#undef OPT
#undef REQ

const char *al_model_architectures(void)
{
    return al_arch_names();
}

static char g_arch_names[512];
static pthread_once_t g_arch_names_once = PTHREAD_ONCE_INIT;

static void arch_names_init(void)
{
    size_t off = 0;
    for (size_t i = 0; i < sizeof(k_archs) / sizeof(k_archs[0]) && off < sizeof(g_arch_names); i++)
        off += (size_t)snprintf(g_arch_names + off, sizeof(g_arch_names) - off, "%s%s", i ? ", " : "",
                                k_archs[i].name);
}

const char *al_arch_names(void)
{
    pthread_once(&g_arch_names_once, arch_names_init);
    return g_arch_names;
}

static const al_arch_desc *find_arch(const char *name)
{
    for (size_t i = 0; i < sizeof(k_archs) / sizeof(k_archs[0]); i++)
        if (!strcmp(k_archs[i].name, name))
            return &k_archs[i];
    return NULL;
}

/* Reads "<arch>.<suffix>" as u32 / f32 / string. */
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

static const al_gguf_kv *arch_kv(loader *L, const char *suffix)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", L->arch, suffix);
    return al_gguf_find(L->m->gguf, key);
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

/* An optional positive, finite float key; *out keeps its default when absent. */
static al_status opt_pos_f32(loader *L, const char *suffix, float *out)
{
    const al_gguf_kv *kv = arch_kv(L, suffix);
    if (!kv)
        return AL_OK;
    float f;
    if (!arch_f32(L, suffix, &f) || !(f > 0.0f) || !isfinite(f))
        return al_err(L->err, AL_ERR_FORMAT, "%s: key '%s.%s' must be a positive number", L->path, L->arch, suffix);
    *out = f;
    return AL_OK;
}

/* A key that is one integer or an array of one per layer: out[n_layer].
 * When absent, every layer gets dflt (or the key is required: dflt 0). */
static al_status per_layer_u32(loader *L, const char *suffix, uint32_t dflt, uint32_t lo, uint32_t hi, uint32_t *out)
{
    const uint32_t n = L->m->hp.n_layer;
    const al_gguf_kv *kv = arch_kv(L, suffix);
    if (kv && kv->type == AL_GGUF_ARR) {
        if (kv->arr_n != n)
            return al_err(L->err, AL_ERR_FORMAT, "%s: key '%s.%s' has %llu values but block_count is %u", L->path,
                          L->arch, suffix, (unsigned long long)kv->arr_n, n);
        for (uint32_t i = 0; i < n; i++) {
            int64_t v;
            if (!al_gguf_arr_i64(kv, i, &v))
                return al_err(L->err, AL_ERR_FORMAT, "%s: key '%s.%s' is not an array of integers", L->path,
                              L->arch, suffix);
            if (v < lo || v > hi)
                return al_err(L->err, AL_ERR_FORMAT, "%s: key '%s.%s'[%u] = %lld is out of range [%u, %u]",
                              L->path, L->arch, suffix, i, (long long)v, lo, hi);
            out[i] = (uint32_t)v;
        }
        return AL_OK;
    }
    uint32_t v = dflt;
    if (kv || !dflt) {
        al_status st = need_u32(L, suffix, &v, lo, hi);
        if (st)
            return st;
    }
    for (uint32_t i = 0; i < n; i++)
        out[i] = v;
    return AL_OK;
}

/* Which layers use the sliding window: sliding_window_pattern is a period
 * n (layer il local when il % n < n - 1) or a bool array, one per layer. */
static al_status swa_layers(loader *L, uint32_t window)
{
    al_model *m = L->m;
    const uint32_t n = m->hp.n_layer;
    const al_gguf_kv *kv = arch_kv(L, "attention.sliding_window_pattern");
    if (kv && kv->type == AL_GGUF_ARR) {
        if (kv->arr_n != n)
            return al_err(L->err, AL_ERR_FORMAT,
                          "%s: key '%s.attention.sliding_window_pattern' has %llu values but block_count is %u",
                          L->path, L->arch, (unsigned long long)kv->arr_n, n);
        for (uint32_t i = 0; i < n; i++) {
            int64_t v;
            if (!al_gguf_arr_i64(kv, i, &v))
                return al_err(L->err, AL_ERR_FORMAT,
                              "%s: key '%s.attention.sliding_window_pattern' is not an array of booleans", L->path,
                              L->arch);
            m->layers[i].window = v ? window : 0;
        }
        return AL_OK;
    }
    uint32_t period = m->hp.desc->swa_period;
    if (kv) {
        al_status st = need_u32(L, "attention.sliding_window_pattern", &period, 1, 1u << 16);
        if (st)
            return st;
    }
    for (uint32_t i = 0; i < n; i++)
        m->layers[i].window = i % period < period - 1 ? window : 0;
    return AL_OK;
}

/* The hyper-parameters that scale activations, each read only where the
 * family has it: embedding, residual and logit scales, the attention scale
 * and soft caps, causality and ALiBi slopes (hp->alibi_slope, malloc'd). */
static al_status load_scales(loader *L)
{
    al_model *m = L->m;
    al_hparams *hp = &m->hp;
    const al_arch_desc *D = hp->desc;
    al_status st;
    hp->embd_scale = 1.0f;
    if (D->embd_scale == AL_EMBD_SCALE_SQRT)
        hp->embd_scale = sqrtf((float)hp->n_embd);
    else if (D->embd_scale == AL_EMBD_SCALE_KEY && (st = opt_pos_f32(L, "embedding_scale", &hp->embd_scale)))
        return st;
    hp->residual_scale = 1.0f;
    if (D->residual_scale && (st = opt_pos_f32(L, "residual_scale", &hp->residual_scale)))
        return st;
    hp->logit_mul = 1.0f;
    if (D->logit_scale != AL_SCALE_NONE) {
        float s = 1.0f;
        if ((st = opt_pos_f32(L, "logit_scale", &s)))
            return st;
        hp->logit_mul = D->logit_scale == AL_SCALE_DIV ? 1.0f / s : s;
    }
    const bool big = D->big_layers && hp->n_layer == D->big_layers;
    hp->attn_scale = 1.0f / sqrtf((float)(big ? hp->n_embd / hp->n_head : hp->head_dim));
    if ((st = opt_pos_f32(L, "attention.scale", &hp->attn_scale)) ||
        (st = opt_pos_f32(L, "attn_logit_softcapping", &hp->attn_softcap)) ||
        (st = opt_pos_f32(L, "final_logit_softcapping", &hp->final_softcap)))
        return st;
    hp->causal = D->causal;
    if (arch_kv(L, "attention.causal")) {
        char key[128];
        snprintf(key, sizeof(key), "%s.attention.causal", L->arch);
        if (!al_gguf_get_bool(m->gguf, key, &hp->causal))
            return al_err(L->err, AL_ERR_FORMAT, "%s: key '%s' must be a boolean", L->path, key);
    }
    if (D->alibi) { /* head h's slope: m0^(h+1) for the first 2^floor(log2 n) heads, then odd powers of m1 */
        float max_bias = 8.0f;
        if ((st = opt_pos_f32(L, "attention.max_alibi_bias", &max_bias)))
            return st;
        if (!(hp->alibi_slope = malloc(hp->n_head * sizeof(float))))
            return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
        uint32_t n_log2 = 1;
        while (n_log2 * 2 <= hp->n_head)
            n_log2 *= 2;
        const float m0 = powf(2.0f, -max_bias / (float)n_log2), m1 = powf(2.0f, -(max_bias / 2.0f) / (float)n_log2);
        for (uint32_t h = 0; h < hp->n_head; h++)
            hp->alibi_slope[h] = h < n_log2 ? powf(m0, (float)(h + 1)) : powf(m1, (float)(2 * (h - n_log2) + 1));
    }
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
    hp->desc = find_arch(L->arch);
    if (!hp->desc)
        return al_err(L->err, AL_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)", L->path,
                      L->arch, al_arch_names());
    const al_arch_desc *D = hp->desc;

    al_status st;
    if ((st = need_u32(L, "embedding_length", &hp->n_embd, 1, 1 << 16)) ||
        (st = need_u32(L, "block_count", &hp->n_layer, 1, MAX_LAYERS)) ||
        (st = need_u32(L, "attention.head_count", &hp->n_head, 1, 1024)))
        return st;
    m->layers = calloc(hp->n_layer, sizeof(al_layer));
    uint32_t *vals = calloc(hp->n_layer, sizeof(uint32_t));
    if (!m->layers || !vals) {
        free(vals);
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    }
    if ((st = per_layer_u32(L, "feed_forward_length", 0, 1, 1 << 20, vals))) {
        free(vals);
        return st;
    }
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        m->layers[i].n_ff = vals[i];
        hp->n_ff = vals[i] > hp->n_ff ? vals[i] : hp->n_ff;
    }
    if ((st = per_layer_u32(L, "attention.head_count_kv", hp->n_head, 0, UINT32_MAX, vals))) {
        free(vals);
        return st;
    }
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        const uint32_t kv = vals[i];
        if (kv == 0 || kv > hp->n_head || hp->n_head % kv) {
            free(vals);
            return al_err(L->err, AL_ERR_FORMAT,
                          "%s: key '%s.attention.head_count_kv' = %u (layer %u) must divide head_count = %u",
                          L->path, L->arch, kv, i, hp->n_head);
        }
        m->layers[i].n_head_kv = kv;
        hp->n_head_kv = kv > hp->n_head_kv ? kv : hp->n_head_kv;
    }
    free(vals);
    if (!arch_u32(L, "attention.key_length", &hp->head_dim)) {
        if (hp->n_embd % hp->n_head)
            return al_err(L->err, AL_ERR_FORMAT, "%s: embedding_length %u is not a multiple of head_count %u",
                          L->path, hp->n_embd, hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    uint32_t vlen;
    if (arch_u32(L, "attention.value_length", &vlen) && vlen != hp->head_dim)
        return al_err(L->err, AL_ERR_UNSUPPORTED, "%s: key '%s.attention.value_length' = %u differs from key_length %u",
                      L->path, L->arch, vlen, hp->head_dim);
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

    const char *eps_key =
        D->norm == AL_NORM_LAYER ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon";
    if (!arch_f32(L, eps_key, &hp->norm_eps))
        hp->norm_eps = 1e-5f;
    if (!(hp->norm_eps > 0.0f) || hp->norm_eps > 1.0f)
        return al_err(L->err, AL_ERR_FORMAT, "%s: %s must be in (0, 1]", L->path, eps_key + 10);

    if ((st = load_scales(L)))
        return st;
    hp->pooling = AL_POOLING_UNSPECIFIED;
    if (arch_kv(L, "pooling_type")) {
        uint32_t pt;
        if ((st = need_u32(L, "pooling_type", &pt, AL_POOLING_NONE, AL_POOLING_RANK)))
            return st;
        hp->pooling = (int32_t)pt;
    }
    if (D->ffn == AL_FFN_MOE) {
        m->moe = calloc(1, sizeof(*m->moe));
        if (!m->moe)
            return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
        *m->moe = (al_moe_hparams){.n_ff_shexp = D->moe_shexp, .norm_topk = D->moe_norm_topk,
                                   .weights_scale = 1.0f, .gating = (al_moe_gating)D->moe_gating,
                                   .act = (al_moe_act)D->moe_act};
        if ((st = al_moe_load_hparams(m->gguf, L->path, L->arch, hp->n_ff, m->moe, L->err)))
            return st;
    }

    /* Sliding windows. */
    uint32_t window = 0;
    const bool has_window = arch_kv(L, "attention.sliding_window") != NULL;
    if (D->swa == AL_SWA_REQUIRED || (D->swa == AL_SWA_OPTIONAL && has_window)) {
        if ((st = need_u32(L, "attention.sliding_window", &window, 0, UINT32_MAX)))
            return st;
        if (window == 0 || window > hp->n_ctx_train)
            return al_err(L->err, AL_ERR_FORMAT,
                          "%s: key '%s.attention.sliding_window' = %u must be in 1..context_length (%u)", L->path,
                          L->arch, window, hp->n_ctx_train);
        if ((st = swa_layers(L, window)))
            return st;
    }
    /* RoPE per layer: global layers use rope[0]; local layers rope[1] when
     * the family gives them their own. */
    hp->n_rope = D->swa_rope_own && window ? 2 : 1;
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        al_layer *ly = &m->layers[i];
        ly->rope = ly->window && hp->n_rope == 2 ? 1 : 0;
        if (D->no_rope || (D->global_nope && window && !ly->window) ||
            (D->nope_step && (i + 1) % D->nope_step == 0))
            ly->rope = AL_ROPE_NONE;
    }
    return AL_OK;
}

/* Experts are not packed at load (a model larger than RAM must load, and
 * packing every expert would read the whole file first): their panels are
 * packed the first time a pass uses them, into memory reserved here, and
 * the file's rows are given back as each matrix completes, so resident
 * memory stays about the model's size. The memory is physical RAM or the
 * process's cgroup limit when smaller (util/memlimit.h). When the file
 * fits in 3/4 of it, up to 3/4 of it, less the dense panels, is packed.
 * A larger file streams its experts from the disk at each use: packed
 * panels are anonymous memory that nothing can reclaim without swap, so
 * they get at most 1/4 of the memory less the dense panels (none under a
 * 1 GiB limit beside the bench model's 327 MB of dense panels), the rest
 * being page cache for the experts in use; and each layer prefetches its
 * chosen experts (the prefetch hparam; MADV_RANDOM on the expert tensors
 * as well changed nothing measurable, so the kernel's read-around stays).
 * Beyond the budget, experts are packed on the stack at each use (same
 * results, slower). */
/* Whether a file of `size` bytes is read from the disk as it is used: more
 * than 3/4 of the memory `mem` (al_mem_limit_bytes). Such a file streams
 * its experts and gets the load's read-ahead. */
static bool streams(uint64_t size, uint64_t mem)
{
    return size > mem / 4 * 3;
}

static void moe_memory(al_model *m, bool pack)
{
    const uint64_t mem = al_mem_limit_bytes();
    const bool stream = streams(m->gguf->size, mem);
    m->moe->prefetch = stream;
    if (!pack)
        return;
    const int64_t budget = (int64_t)(stream ? mem / 4 : mem / 4 * 3) - (int64_t)m->packed_map_bytes;
    al_moe_layer **ls = calloc(m->hp.n_layer, sizeof(*ls));
    if (!ls)
        return; /* unpacked: slower, not wrong */
    for (uint32_t i = 0; i < m->hp.n_layer; i++)
        ls[i] = m->layers[i].moe;
    m->moe_packing = al_moe_packing_new(ls, m->hp.n_layer, m->moe->n_expert, budget);
    free(ls);
}

/* Binds a 1-D vector of n values and dequantizes it into an owned F32 array. */
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
    mark_used(L, t);
    al_dequantize_row(t->type, t->data, *out, n);
    return AL_OK;
}

/* A view of rows [r0, r0 + n) of a bound weight. */
static al_weight weight_rows(const al_weight *w, int64_t r0, int64_t n)
{
    al_weight v = *w;
    v.data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    v.rows = n;
    return v;
}

/* A layer's tensors, as the family's description asks. */
static al_status load_layer(loader *L, uint32_t i)
{
    al_model *m = L->m;
    const al_hparams *hp = &m->hp;
    const al_arch_desc *D = hp->desc;
    al_layer *ly = &m->layers[i];
    const int64_t d = hp->n_embd, hd = hp->head_dim, nq = (int64_t)hp->n_head * hd;
    const int64_t nkv = (int64_t)ly->n_head_kv * hd, ff = ly->n_ff;
    char name[96];
    al_status st;
#define NAME(suffix) (snprintf(name, sizeof(name), "blk.%u.%s", i, suffix), name)
#define VEC(field, suffix, n, need)                                                                \
    do {                                                                                           \
        if ((need) != AL_NEED_NO && (st = bind_vec(L, NAME(suffix), n, (need) == AL_NEED_REQUIRED, \
                                                   &ly->field)))                                   \
            return st;                                                                             \
    } while (0)
#define MAT(field, suffix, rows, cols)                                                             \
    do {                                                                                           \
        if ((st = bind_weight(L, NAME(suffix), rows, cols, true, &ly->field, NULL)))               \
            return st;                                                                             \
    } while (0)

    const uint8_t nb = D->norm == AL_NORM_LAYER ? D->norm_bias : AL_NEED_NO;
    if (D->pre_norm) {
        VEC(attn_norm, "attn_norm.weight", d, AL_NEED_REQUIRED);
        VEC(attn_norm_b, "attn_norm.bias", d, nb);
        if (!D->parallel) {
            char fname[64];
            snprintf(fname, sizeof(fname), "%s.weight", D->ffn_norm_name ? D->ffn_norm_name : "ffn_norm");
            VEC(ffn_norm, fname, d, AL_NEED_REQUIRED);
            snprintf(fname, sizeof(fname), "%s.bias", D->ffn_norm_name ? D->ffn_norm_name : "ffn_norm");
            VEC(ffn_norm_b, fname, d, nb);
        }
    }
    if (D->post_norm) {
        VEC(post_attn_norm, "post_attention_norm.weight", d, AL_NEED_REQUIRED);
        VEC(post_ffn_norm, "post_ffw_norm.weight", d, AL_NEED_REQUIRED);
    }
    if (D->post_add_norm) {
        VEC(post_attn_norm, "attn_output_norm.weight", d, AL_NEED_REQUIRED);
        VEC(post_attn_norm_b, "attn_output_norm.bias", d, nb);
        VEC(post_ffn_norm, "layer_output_norm.weight", d, AL_NEED_REQUIRED);
        VEC(post_ffn_norm_b, "layer_output_norm.bias", d, nb);
        if (D->attn_norm_2) {
            VEC(attn_norm2, "attn_norm_2.weight", d, AL_NEED_OPTIONAL);
            VEC(attn_norm2_b, "attn_norm_2.bias", d, ly->attn_norm2 ? nb : AL_NEED_NO);
        }
    }

    /* Attention: separate Q/K/V, or one fused attn_qkv bound as three views. */
    if (D->fused_qkv && al_gguf_find_tensor(m->gguf, NAME("attn_qkv.weight"))) {
        al_weight qkv = {0};
        if ((st = bind_weight(L, name, nq + 2 * nkv, d, true, &qkv, NULL)))
            return st;
        ly->wq = weight_rows(&qkv, 0, nq);
        ly->wk = weight_rows(&qkv, nq, nkv);
        ly->wv = weight_rows(&qkv, nq + nkv, nkv);
    } else {
        MAT(wq, "attn_q.weight", nq, d);
        MAT(wk, "attn_k.weight", nkv, d);
        MAT(wv, "attn_v.weight", nkv, d);
    }
    MAT(wo, "attn_output.weight", d, nq);
    VEC(bq, "attn_q.bias", nq, D->qkv_bias);
    VEC(bk, "attn_k.bias", nkv, D->qkv_bias);
    VEC(bv, "attn_v.bias", nkv, D->qkv_bias);
    /* The forward pass adds the three biases together: all or none. */
    if ((ly->bq != NULL) != (ly->bk != NULL) || (ly->bq != NULL) != (ly->bv != NULL))
        return al_err(L->err, AL_ERR_FORMAT,
                      "%s: layer %u has only some of attn_q.bias, attn_k.bias, attn_v.bias (q %s, k %s, v %s)",
                      L->path, i, ly->bq ? "present" : "missing", ly->bk ? "present" : "missing",
                      ly->bv ? "present" : "missing");
    VEC(bo, "attn_output.bias", d, D->o_bias);
    VEC(attn_sinks, "attn_sinks.weight", hp->n_head, D->attn_sinks ? AL_NEED_REQUIRED : AL_NEED_NO);
    if (D->qk_norm != AL_QK_NORM_NONE) {
        const bool full = D->qk_norm != AL_QK_NORM_HEAD;
        VEC(q_norm, "attn_q_norm.weight", full ? nq : hd, D->qk_norm_need);
        VEC(k_norm, "attn_k_norm.weight", full ? nkv : hd, D->qk_norm_need);
        if (D->qk_norm == AL_QK_NORM_FULL_LN) {
            VEC(q_norm_b, "attn_q_norm.bias", nq, ly->q_norm ? AL_NEED_OPTIONAL : AL_NEED_NO);
            VEC(k_norm_b, "attn_k_norm.bias", nkv, ly->k_norm ? AL_NEED_OPTIONAL : AL_NEED_NO);
        }
        if ((ly->q_norm != NULL) != (ly->k_norm != NULL))
            return al_err(L->err, AL_ERR_FORMAT, "%s: layer %u has only one of attn_q_norm and attn_k_norm",
                          L->path, i);
    }

    /* FFN. */
    ly->ffn = D->ffn;
    if (ly->ffn == AL_FFN_MOE) {
        ly->moe = calloc(1, sizeof(*ly->moe));
        if (!ly->moe)
            return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
        ly->n_ff = m->moe->n_ff_exp;
        if (al_moe_bind_layer(m->gguf, L->path, i, m->moe, d, ly->moe, L->err))
            return L->err->status;
        /* The tensors moe.c binds (it finds them itself): the shared
         * expert's only when the family has one, so that a stray shexp
         * tensor in, say, a qwen3moe file is refused, not ignored. */
        static const char *const moe_tensors[] = {
            "ffn_gate_inp.weight", "ffn_gate_inp.bias", "ffn_gate_exps.weight", "ffn_gate_exps.bias",
            "ffn_up_exps.weight", "ffn_up_exps.bias", "ffn_down_exps.weight", "ffn_down_exps.bias",
            "ffn_gate_inp_shexp.weight", "ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight"};
        const size_t n_bound = m->moe->n_ff_shexp ? sizeof(moe_tensors) / sizeof(moe_tensors[0]) : 8;
        for (size_t k = 0; k < n_bound; k++) {
            char tname[96];
            snprintf(tname, sizeof(tname), "blk.%u.%s", i, moe_tensors[k]);
            const al_gguf_tensor *t = al_gguf_find_tensor(m->gguf, tname);
            if (t)
                mark_used(L, t);
        }
        return AL_OK;
    } else if (ly->ffn == AL_FFN_GELU) {
        MAT(w_up, "ffn_up.weight", ff, d);
    } else if (D->fused_up && !al_gguf_find_tensor(m->gguf, NAME("ffn_gate.weight"))) {
        al_weight gu = {0};
        if ((st = bind_weight(L, NAME("ffn_up.weight"), 2 * ff, d, true, &gu, NULL)))
            return st;
        ly->w_gate = weight_rows(&gu, 0, ff);
        ly->w_up = weight_rows(&gu, ff, ff);
        if (D->ffn_bias != AL_NEED_NO) { /* one bias of 2 n_ff: gate's, then up's */
            float *b2 = NULL;
            if ((st = bind_vec(L, NAME("ffn_up.bias"), 2 * ff, D->ffn_bias == AL_NEED_REQUIRED, &b2)))
                return st;
            if (b2) {
                ly->b_gate = b2;
                if (!(ly->b_up = malloc((size_t)ff * sizeof(float))))
                    return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
                memcpy(ly->b_up, b2 + ff, (size_t)ff * sizeof(float));
            }
        }
        MAT(w_down, "ffn_down.weight", d, ff);
        VEC(b_down, "ffn_down.bias", d, D->ffn_bias);
        return AL_OK;
    } else {
        MAT(w_gate, "ffn_gate.weight", ff, d);
        MAT(w_up, "ffn_up.weight", ff, d);
    }
    MAT(w_down, "ffn_down.weight", d, ff);
    if (ly->ffn != AL_FFN_GELU)
        VEC(b_gate, "ffn_gate.bias", ff, D->ffn_bias == AL_NEED_REQUIRED ? AL_NEED_OPTIONAL : D->ffn_bias);
    VEC(b_up, "ffn_up.bias", ff, D->ffn_bias);
    VEC(b_down, "ffn_down.bias", d, D->ffn_bias);
#undef NAME
#undef VEC
#undef MAT
    return AL_OK;
}

/* A rows x d tensor whose row count is the file's: *rows receives it. */
static al_status bind_rows(loader *L, const char *name, int64_t d, bool required, al_weight *w, uint32_t *rows,
                           uint32_t max_rows)
{
    const al_gguf_tensor *t = al_gguf_find_tensor(L->m->gguf, name);
    *rows = 0;
    if (!t && !required)
        return AL_OK;
    if (t && (t->n_dims != 2 || t->ne[1] == 0 || t->ne[1] > max_rows))
        return al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%s' must be 2-D with 1 to %u rows of %lld", L->path, name,
                      max_rows, (long long)d);
    const int64_t r = t ? (int64_t)t->ne[1] : 1;
    al_status st = bind_weight(L, name, r, d, required, w, NULL);
    if (!st)
        *rows = (uint32_t)r;
    return st;
}

/* What encoders add around the layers: position and token-type
 * embeddings, the embedding norm; and the rank (classifier) head that
 * any pooling model may carry. */
static al_status load_encoder_tensors(loader *L)
{
    al_model *m = L->m;
    al_hparams *hp = &m->hp;
    const al_arch_desc *D = hp->desc;
    const int64_t d = hp->n_embd;
    al_status st;
    if (D->abs_pos) {
        if ((st = bind_rows(L, "position_embd.weight", d, true, &m->pos_embd, &hp->n_pos_embd, 1u << 20)))
            return st;
    }
    if (D->embd_norm) {
        if ((st = bind_vec(L, "token_embd_norm.weight", d, true, &m->embd_norm)) ||
            (st = bind_vec(L, "token_embd_norm.bias", d, D->norm_bias == AL_NEED_REQUIRED, &m->embd_norm_b)))
            return st;
        al_weight tt = {0};
        uint32_t n_types = 0;
        if ((st = bind_rows(L, "token_types.weight", d, false, &tt, &n_types, 1u << 16)))
            return st;
        if (n_types) {
            if (!(m->type_embd0 = malloc((size_t)d * sizeof(float))))
                return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
            al_dequantize_row(tt.type, tt.data, m->type_embd0, d);
        }
    }
    /* The rank head: cls (dense + tanh, optional) then cls.output. */
    uint32_t n = 0;
    if ((st = bind_rows(L, "cls.output.weight", d, false, &m->cls_out, &n, 4096)))
        return st;
    hp->n_cls_out = n;
    if (n) {
        if ((st = bind_vec(L, "cls.output.bias", n, false, &m->cls_out_b)))
            return st;
        bool has_cls = false;
        if ((st = bind_weight(L, "cls.weight", d, d, false, &m->cls, &has_cls)))
            return st;
        if (has_cls && (st = bind_vec(L, "cls.bias", d, false, &m->cls_b)))
            return st;
    }
    return AL_OK;
}

static al_status load_tensors(loader *L)
{
    al_model *m = L->m;
    al_hparams *hp = &m->hp;
    const al_arch_desc *D = hp->desc;
    int64_t d = hp->n_embd;

    const al_gguf_tensor *te = al_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te)
        return al_err(L->err, AL_ERR_FORMAT, "%s: required tensor 'token_embd.weight' is missing", L->path);
    if (te->n_dims != 2 || te->ne[1] > (1u << 24))
        return al_err(L->err, AL_ERR_FORMAT, "%s: tensor 'token_embd.weight' must be 2-D with at most 2^24 rows",
                      L->path);
    hp->n_vocab = (uint32_t)te->ne[1];
    al_status st = bind_weight(L, "token_embd.weight", hp->n_vocab, d, true, &m->tok_embd, NULL);
    if (st)
        return st;
    if (!D->embed_only) {
        bool has_out = false;
        if ((st = bind_weight(L, "output.weight", hp->n_vocab, d, false, &m->output, &has_out)))
            return st;
        m->tied_output = !has_out;
        if (m->tied_output)
            m->output = m->tok_embd;
    }
    if (!D->post_add_norm) {
        if ((st = bind_vec(L, "output_norm.weight", d, true, &m->output_norm)))
            return st;
        if (D->norm == AL_NORM_LAYER && D->norm_bias != AL_NEED_NO &&
            (st = bind_vec(L, "output_norm.bias", d, D->norm_bias == AL_NEED_REQUIRED, &m->output_norm_b)))
            return st;
    }
    if ((st = load_encoder_tensors(L)))
        return st;
    if ((st = bind_vec(L, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs)) ||
        (st = bind_vec(L, "rope_factors_long.weight", hp->n_rot / 2, false, &m->rope_long)) ||
        (st = bind_vec(L, "rope_factors_short.weight", hp->n_rot / 2, false, &m->rope_short)))
        return st;
    if ((m->rope_long != NULL) != (m->rope_short != NULL))
        return al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%s' is missing: LongRoPE needs both factor vectors",
                      L->path, m->rope_long ? "rope_factors_short.weight" : "rope_factors_long.weight");
    const float *fv[3] = {m->rope_freqs, m->rope_long, m->rope_short};
    static const char *const fn[3] = {"rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"};
    for (int k = 0; k < 3; k++)
        for (uint32_t i = 0; fv[k] && i < hp->n_rot / 2; i++)
            if (!(fv[k][i] > 0.0f) || !isfinite(fv[k][i]))
                return al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%s' holds %g at %u: RoPE factors must be positive",
                              L->path, fn[k], (double)fv[k][i], i);
    for (uint32_t i = 0; i < hp->n_layer; i++)
        if ((st = load_layer(L, i)))
            return st;
    /* A tensor the description does not read belongs to a variant it does
     * not describe (e.g. Q/K norms of a family without them): refused, as
     * the reference does, rather than run without it. */
    for (uint64_t i = 0; L->used && i < m->gguf->n_tensors; i++)
        if (!L->used[i]) {
            const al_str n = m->gguf->tensors[i].name;
            return al_err(L->err, AL_ERR_UNSUPPORTED, "%s: tensor '%.*s' is not part of a %s model as supported",
                          L->path, (int)(n.len > 96 ? 96 : n.len), n.ptr, L->arch);
        }

    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const al_gguf_tensor *t = &m->gguf->tensors[i];
        m->n_params += t->n_elems;
    }
    m->n_params_active = m->n_params;
    for (uint32_t i = 0; m->moe && i < hp->n_layer; i++)
        m->n_params_active -= al_moe_inactive_params(m->moe, m->layers[i].moe);
    /* Bytes one generated token reads: the embeddings give one row each
     * (all of them when the output head is the token embedding). */
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        const al_gguf_tensor *t = &m->gguf->tensors[i];
        if (t->data == m->tok_embd.data && m->tok_embd.rows && !m->tied_output)
            m->decode_bytes += m->tok_embd.row_bytes;
        else if (t->data == m->pos_embd.data && m->pos_embd.rows)
            m->decode_bytes += m->pos_embd.row_bytes;
        else
            m->decode_bytes += t->n_bytes;
    }
    for (uint32_t i = 0; m->moe && i < hp->n_layer; i++)
        m->decode_bytes -= al_moe_inactive_bytes(m->moe, m->layers[i].moe);
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

/* YaRN's bounds of the pairs that are interpolated / extrapolated. */
static float yarn_corr_dim(float n_rot, float n_ctx_orig, float beta, float base)
{
    return n_rot * logf(n_ctx_orig / (beta * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

static float yarn_mscale(float factor, float m)
{
    return factor <= 1.0f ? 1.0f : 0.1f * m * logf(factor) + 1.0f;
}

/* The angle of pair i at position p is p * inv_freq[i] (the linear and YaRN
 * scalings and the Llama 3 factors folded in), computed once here instead
 * of for every token of every forward pass. rope[1], when used, is the
 * local layers' own: base rope.freq_base_swa, unscaled. */
static al_status rope_setup(loader *L)
{
    al_model *m = L->m;
    al_hparams *hp = &m->hp;
    const uint32_t half = hp->n_rot / 2;
    float factor = 0.0f, ext = 0.0f, attn_factor = 1.0f;
    bool yarn = false;
    if (arch_f32(L, "rope.scaling.factor", &factor) && factor > 0.0f) {
        al_str type;
        char key[128];
        snprintf(key, sizeof(key), "%s.rope.scaling.type", L->arch);
        if (!al_gguf_get_str(m->gguf, key, &type) || al_str_eq(type, "linear") || al_str_eq(type, "longrope"))
            ;
        else if (al_str_eq(type, "yarn"))
            yarn = true;
        else if (al_str_eq(type, "none"))
            factor = 1.0f;
        else
            return al_err(L->err, AL_ERR_UNSUPPORTED,
                          "%s: rope scaling type '%.*s' is not supported (linear, yarn and longrope are)", L->path,
                          (int)(type.len > 32 ? 32 : type.len), type.ptr);
    } else {
        factor = 1.0f;
    }
    if (!isfinite(factor))
        return al_err(L->err, AL_ERR_FORMAT, "%s: rope.scaling.factor must be finite", L->path);
    hp->rope_scale = factor;
    uint32_t n_ctx_orig = hp->n_ctx_train;
    (void)arch_u32(L, "rope.scaling.original_context_length", &n_ctx_orig);
    if (n_ctx_orig == 0)
        return al_err(L->err, AL_ERR_FORMAT, "%s: rope.scaling.original_context_length must be positive", L->path);
    float beta_fast = 32.0f, beta_slow = 1.0f, log_mul = 0.0f;
    (void)arch_f32(L, "rope.scaling.yarn_beta_fast", &beta_fast);
    (void)arch_f32(L, "rope.scaling.yarn_beta_slow", &beta_slow);
    (void)arch_f32(L, "rope.scaling.yarn_log_multiplier", &log_mul);
    if (yarn) {
        ext = 1.0f;
        /* As the reference: the magnitude of the rotated parts is
         * mscale(factor) / mscale(factor, log_mul), or mscale(factor). */
        attn_factor = yarn_mscale(factor, 1.0f);
        if (log_mul != 0.0f)
            attn_factor /= yarn_mscale(factor, log_mul);
    }
    float ra;
    if (arch_f32(L, "rope.scaling.attn_factor", &ra) && ra > 0.0f)
        attn_factor *= ra;
    if (hp->desc->attn_temp) {
        if (arch_f32(L, "attention.temperature_scale", &hp->attn_temp) && hp->attn_temp != 0.0f)
            hp->attn_temp_floor = n_ctx_orig;
        else
            hp->attn_temp = 0.0f;
    }

    if (m->rope_long)
        hp->rope_long_ctx = n_ctx_orig;
    for (uint32_t r = 0; r < 3; r++) {
        if ((r == 1 && hp->n_rope < 2) || (r == 2 && !m->rope_long))
            continue;
        float base = hp->rope_base, fs = 1.0f / factor, e = ext, mscale = attn_factor;
        /* Llama 3 factors; LongRoPE's short ones, long ones for long contexts */
        const float *ff = m->rope_freqs ? m->rope_freqs : r == 2 ? m->rope_long : m->rope_short;
        if (r == 1) {
            (void)arch_f32(L, "rope.freq_base_swa", &base);
            if (!(base > 0.0f))
                return al_err(L->err, AL_ERR_FORMAT, "%s: rope.freq_base_swa must be positive", L->path);
            fs = 1.0f;
            e = 0.0f;
            mscale = 1.0f;
            ff = NULL;
        }
        float lo = 0.0f, hi = 0.0f;
        if (e != 0.0f) {
            lo = floorf(yarn_corr_dim((float)hp->n_rot, (float)n_ctx_orig, beta_fast, base));
            hi = ceilf(yarn_corr_dim((float)hp->n_rot, (float)n_ctx_orig, beta_slow, base));
            lo = lo > 0.0f ? lo : 0.0f;
            hi = hi < (float)hp->n_rot - 1 ? hi : (float)hp->n_rot - 1;
        }
        float *inv = malloc(half * sizeof(float));
        if (!inv)
            return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
        m->rope[r].inv_freq = inv;
        for (uint32_t i = 0; i < half; i++) {
            float extrap = powf(base, -2.0f * (float)i / (float)hp->n_rot);
            if (ff)
                extrap /= ff[i];
            float f = extrap * fs;
            if (e != 0.0f) {
                float y = ((float)i - lo) / fmaxf(0.001f, hi - lo);
                float mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * e;
                f = f * (1.0f - mix) + extrap * mix;
            }
            inv[i] = f;
        }
        m->rope[r].mscale = mscale;
    }
    return AL_OK;
}

/* Refuses a tensor holding a block whose scale is an F16 NaN or infinity
 * or an E8M0 exponent of 255 (MXFP4's NaN): every dot product touching
 * such a block is NaN, and the logits with it. Done at every load, before
 * anything reads the weights: it reads only the scale bytes, but that
 * brings in every page of the weights, so it is split over the cores in
 * chunks of blocks; the error names the first bad block in file order, as
 * a check on one thread would. NaN or infinite F32/F16/BF16 values and
 * quants that overflow are left to --check-tensors (check_finite). */
#define SCALE_CHUNK ((uint64_t)1 << 15) /* blocks per work item */

typedef struct scale_job {
    const al_gguf *g;
    uint64_t *first;   /* (n_tensors + 1) first chunk of each tensor */
    uint64_t n_chunks;
    uint64_t *bad;     /* (chunks) first bad block of the chunk, or UINT64_MAX */
    const char **why;  /* (chunks) */
    bool read_ahead;   /* the file is larger than 3/4 of memory: each chunk asks for a later one */
} scale_job;

static uint64_t tensor_blocks(const al_gguf_tensor *t)
{
    const al_type_traits *tr = al_type_get(t->type);
    return tr->block_elems > 1 ? t->n_bytes / tr->block_bytes : 0;
}

/* Chunk c: the tensor, its first block and its number of blocks. */
static const al_gguf_tensor *chunk_at(const scale_job *j, uint64_t c, uint64_t *b0, uint64_t *n)
{
    uint64_t lo = 0, hi = j->g->n_tensors - 1;
    while (lo < hi) { /* the tensor whose chunks hold c */
        const uint64_t mid = (lo + hi + 1) / 2;
        if (j->first[mid] <= c)
            lo = mid;
        else
            hi = mid - 1;
    }
    const al_gguf_tensor *t = &j->g->tensors[lo];
    const uint64_t nb = tensor_blocks(t);
    *b0 = (c - j->first[lo]) * SCALE_CHUNK;
    *n = nb - *b0 < SCALE_CHUNK ? nb - *b0 : SCALE_CHUNK;
    return t;
}

#define SCALE_AHEAD 8 /* chunks (of up to 7 MB) read ahead of the check */

static void scale_chunk(void *arg, int64_t c, int ith)
{
    (void)ith;
    const scale_job *j = arg;
    uint64_t b0, n;
    if (j->read_ahead && (uint64_t)c + SCALE_AHEAD < j->n_chunks) {
        const al_gguf_tensor *ta = chunk_at(j, (uint64_t)c + SCALE_AHEAD, &b0, &n);
        const size_t bb = al_type_get(ta->type)->block_bytes, pg = (size_t)sysconf(_SC_PAGESIZE);
        const uintptr_t p = (uintptr_t)ta->data + b0 * bb, lo = p & ~(uintptr_t)(pg - 1);
        (void)madvise((void *)lo, p + n * bb - lo, MADV_WILLNEED);
    }
    const al_gguf_tensor *t = chunk_at(j, (uint64_t)c, &b0, &n);
    uint64_t bad = 0;
    const char *why = NULL;
    const uint8_t *data = (const uint8_t *)t->data + b0 * al_type_get(t->type)->block_bytes;
    if (!al_check_block_scales(t->type, data, n, &bad, &why)) {
        j->bad[c] = b0 + bad;
        j->why[c] = why;
    }
}

static al_status check_scales(loader *L)
{
    const al_gguf *g = L->m->gguf;
    if (g->n_tensors == 0)
        return AL_OK;
    scale_job j = {.g = g, .first = calloc(g->n_tensors + 1, sizeof(uint64_t))};
    if (!j.first)
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        j.first[i + 1] = j.first[i] + (tensor_blocks(&g->tensors[i]) + SCALE_CHUNK - 1) / SCALE_CHUNK;
    const uint64_t n_chunks = j.first[g->n_tensors];
    j.n_chunks = n_chunks;
    j.read_ahead = streams(g->size, al_mem_limit_bytes());
    j.bad = malloc((n_chunks ? n_chunks : 1) * sizeof(uint64_t));
    j.why = calloc(n_chunks ? n_chunks : 1, sizeof(char *));
    if (!j.bad || !j.why) {
        free(j.first), free(j.bad), free(j.why);
        return al_err(L->err, AL_ERR_NOMEM, "%s: out of memory", L->path);
    }
    for (uint64_t c = 0; c < n_chunks; c++)
        j.bad[c] = UINT64_MAX;
    al_threadpool *tp = n_chunks > 1 ? al_threadpool_new(al_physical_cores()) : NULL;
    al_threadpool_for(tp, (int64_t)n_chunks, scale_chunk, &j); /* tp NULL: on this thread */
    al_threadpool_free(tp);
    al_status st = AL_OK;
    for (uint64_t i = 0; i < g->n_tensors && !st; i++)
        for (uint64_t c = j.first[i]; c < j.first[i + 1] && !st; c++) {
            if (j.bad[c] == UINT64_MAX)
                continue;
            const al_gguf_tensor *t = &g->tensors[i];
            const al_type_traits *tr = al_type_get(t->type);
            st = al_err(L->err, AL_ERR_FORMAT, "%s: tensor '%.*s' (%s): block %llu (row %llu) is corrupt: %s", L->path,
                        (int)(t->name.len > 96 ? 96 : t->name.len), t->name.ptr, tr->name,
                        (unsigned long long)j.bad[c], (unsigned long long)(j.bad[c] * tr->block_elems / t->ne[0]),
                        j.why[c]);
        }
    free(j.first), free(j.bad), free(j.why);
    return st;
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
    m->embd_fd = -1;
    loader L = {.m = m, .path = path, .err = err, .pack_threads = params ? params->n_threads : 0};
    al_status st = al_gguf_open(path, NULL, &m->gguf, err);
    /* Scales first: a corrupt block is the problem to report, whatever
     * else the file holds. */
    if (!st)
        st = check_scales(&L);
    if (!st)
        st = load_hparams(&L);
    if (!st) {
        L.used = calloc(m->gguf->n_tensors ? m->gguf->n_tensors : 1, 1);
        st = L.used ? load_tensors(&L) : al_err(err, AL_ERR_NOMEM, "%s: out of memory", path);
        free(L.used);
        L.used = NULL;
    }
    if (!st)
        st = rope_setup(&L);
    if (!st && params && params->check_tensors)
        st = check_finite(&L);
    if (!st && (!params || params->pack_weights))
        st = pack_weights(&L, params && params->pack_background);
    if (!st && m->moe)
        moe_memory(m, !params || params->pack_weights);
    if (!st)
        embd_fd_open(&L);
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
        if (al_gguf_get_str(m->gguf, "tokenizer.chat_template.rerank", &tmpl) && tmpl.len < (1u << 20) &&
            (m->rerank_template = malloc(tmpl.len + 1))) {
            memcpy(m->rerank_template, tmpl.ptr, tmpl.len);
            m->rerank_template[tmpl.len] = 0;
        }
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
                al_status tst = al_template_parse(m->chat_template, tmpl.len, &t, &terr);
                if (tst != AL_OK && tst != AL_ERR_NOMEM)
                    m->template_error = strdup(terr.msg[0] ? terr.msg : "the chat template does not parse");
                /* out of memory says nothing about the template: fail the load, never flag it */
                if (tst == AL_ERR_NOMEM || (tst != AL_OK && !m->template_error))
                    st = al_err(err, AL_ERR_NOMEM, "%s: out of memory checking the chat template", path);
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
    pack_stop(m);
    if (m->embd_fd >= 0)
        close(m->embd_fd);
    if (m->packed_map)
        munmap(m->packed_map, m->packed_map_bytes);
    if (m->layers) {
        for (uint32_t i = 0; i < m->hp.n_layer; i++) {
            al_layer *ly = &m->layers[i];
            float *vs[] = {ly->attn_norm, ly->attn_norm_b, ly->bq, ly->bk, ly->bv, ly->bo, ly->q_norm,
                           ly->k_norm, ly->post_attn_norm, ly->ffn_norm, ly->ffn_norm_b, ly->b_gate, ly->b_up,
                           ly->b_down, ly->post_ffn_norm, ly->attn_sinks, ly->post_attn_norm_b,
                           ly->post_ffn_norm_b, ly->q_norm_b, ly->k_norm_b, ly->attn_norm2, ly->attn_norm2_b};
            for (size_t v = 0; v < sizeof(vs) / sizeof(vs[0]); v++)
                free(vs[v]);
            al_moe_layer_free(ly->moe);
            free(ly->moe);
        }
        free(m->layers);
    }
    al_moe_packing_free(m->moe_packing);
    free(m->moe);
    free(m->output_norm);
    free(m->output_norm_b);
    free(m->type_embd0);
    free(m->embd_norm);
    free(m->embd_norm_b);
    free(m->cls_b);
    free(m->cls_out_b);
    free(m->hp.alibi_slope);
    free(m->rope_freqs);
    free(m->rope_long);
    free(m->rope_short);
    for (int r = 0; r < 3; r++)
        free(m->rope[r].inv_freq);
    al_vocab_free(m->vocab);
    free(m->chat_template);
    free(m->rerank_template);
    free(m->template_error);
    al_gguf_close(m->gguf);
    free(m);
}

void al_model_get_info(const al_model *m, al_model_info *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->arch, sizeof(o->arch), "%s", m->hp.desc->name);
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
    o->n_params_active = m->n_params_active;
    o->decode_bytes = m->decode_bytes;
    o->n_expert = m->moe ? m->moe->n_expert : 0;
    o->n_expert_used = m->moe ? m->moe->n_expert_used : 0;
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
        else if (al_str_eq(vt, "t5"))
            vtype = "ugm";
        else if (al_str_eq(vt, "gemma4"))
            vtype = "bpe (gemma4)";
        else if (al_str_eq(vt, "whitespace"))
            vtype = "bpe (whitespace)";
        else
            vtype = "other";
    }
    snprintf(o->vocab_type, sizeof(o->vocab_type), "%s", vtype);
    snprintf(o->type_mix, sizeof(o->type_mix), "%s", m->type_mix);
    o->pooling = (al_pooling)m->hp.pooling;
    o->causal = m->hp.causal;
    o->can_generate = !m->hp.desc->embed_only && m->hp.causal;
    o->n_cls_out = m->hp.n_cls_out;
}

al_status al_model_peek(const char *path, al_model_info *o, al_error *err)
{
    memset(o, 0, sizeof(*o));
    o->pooling = AL_POOLING_UNSPECIFIED;
    al_gguf *g = NULL;
    al_status st = al_gguf_open(path, NULL, &g, err);
    if (st)
        return st;
    al_str a;
    const al_arch_desc *D = NULL;
    if (al_gguf_get_str(g, "general.architecture", &a) && a.len < sizeof(o->arch)) {
        memcpy(o->arch, a.ptr, a.len);
        o->arch[a.len] = 0;
        D = find_arch(o->arch);
    }
    if (!D) {
        al_gguf_close(g);
        return al_err(err, AL_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported", path, o->arch);
    }
    char key[96];
    uint32_t pt;
    snprintf(key, sizeof(key), "%s.pooling_type", o->arch);
    if (al_gguf_get_u32(g, key, &pt) && pt <= AL_POOLING_RANK)
        o->pooling = (al_pooling)pt;
    o->causal = D->causal;
    snprintf(key, sizeof(key), "%s.attention.causal", o->arch);
    (void)al_gguf_get_bool(g, key, &o->causal);
    o->can_generate = !D->embed_only && o->causal;
    const al_gguf_tensor *t = al_gguf_find_tensor(g, "cls.output.weight");
    o->n_cls_out = t && t->n_dims == 2 ? (uint32_t)t->ne[1] : 0;
    al_gguf_close(g);
    return AL_OK;
}

al_pooling al_model_pooling(const al_model *m)
{
    return m->hp.pooling == AL_POOLING_UNSPECIFIED ? AL_POOLING_MEAN : (al_pooling)m->hp.pooling;
}

const char *al_pooling_name(al_pooling p)
{
    switch (p) {
    case AL_POOLING_NONE: return "none";
    case AL_POOLING_MEAN: return "mean";
    case AL_POOLING_CLS: return "cls";
    case AL_POOLING_LAST: return "last";
    case AL_POOLING_RANK: return "rank";
    default: return "unspecified";
    }
}

const al_vocab *al_model_vocab(const al_model *m)
{
    return m->vocab;
}

const char *al_model_rerank_template(const al_model *m)
{
    return m->rerank_template;
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
    /* as al_context_new lays it out with the default n_batch: a window
     * layer keeps a ring of window + n_batch - 1 slots and a mirror of
     * window - 1 when that is less than n_ctx */
    const uint64_t n_batch = al_context_default_params().n_batch;
    uint64_t total = 0;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const uint64_t w = m->layers[l].window, ring = w + n_batch - 1;
        const uint64_t slots = w && ring + w - 1 < n_ctx ? ring + w - 1 : n_ctx;
        total += 2ull * m->layers[l].n_head_kv * m->hp.head_dim * slots;
    }
    return total * n_seq * sizeof(uint16_t);
}
