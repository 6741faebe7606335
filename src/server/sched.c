/*
 * sched.c - continuous batching over the slots of each loaded model.
 *
 * One thread runs the loop: admit queued jobs into free slots (the slot
 * whose token history shares the longest prefix with the prompt, so a
 * shared system prompt or the earlier turns of a chat are not computed
 * again), then one al_decode per model holding the next token of every
 * decoding slot plus a bounded chunk of prompt tokens of slots still being
 * prefilled, so running streams keep flowing while new prompts come in
 * (srv_pass_budget: unless more sequences wait for their prompt than
 * decode, which fills the pass with prompt).
 *
 * Locking: the mutex `mu` guards the queue, each model's state and pins,
 * the jobs' shared output and the counters, and is never held across slow
 * work. The scheduler thread lets it go around each forward pass and the
 * sampling that follows (slot_sample; slot_publish hands the result over
 * under the lock); models are loaded and evicted outside it (model_state,
 * model_load, model_evict); the store gate has its own (srv_gate_check).
 */
#include "server/sched.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sampling/grammar.h"
#include "store/store.h"
#include "util/error.h"
#include "util/wipe.h"

/* Token masks kept per model (n_vocab bits each: 19 KB for 152k tokens). */
#define GRAMMAR_CACHE_MASKS 128

typedef struct slot {
    srv_job *job;            /* NULL: free (borrowed; the HTTP side owns it) */
    int32_t *hist;           /* (n_ctx) tokens whose KV this sequence holds */
    int32_t n_hist;
    int32_t n_done;          /* prompt tokens of job already in the cache */
    bool decoding;           /* prompt done; next_tok waits to be decoded */
    int32_t next_tok;
    uint64_t admit_tick;     /* admission order, for fair prefill */
    uint64_t used_tick;      /* last use, to pick which free slot to reuse */
    al_gen *gen;             /* owned, per generate job: sampler, grammar, detokenizer, stops */
    double *emb_sum;         /* (n_embd) for embedding jobs */
    int32_t chunk_start, chunk_len; /* this step's tokens in the batch */
    al_context *ctx;         /* the owning model's context (borrowed), for hygiene */
    int32_t seq;             /* this slot's sequence in ctx */
    /* What slot_sample made of this pass's token without the lock, until
     * slot_publish hands it to the job under the lock: */
    char *out;               /* (out_cap) text, n_out bytes */
    size_t n_out, out_cap;
    bool out_sampled;        /* a token was sampled (counts in n_gen) */
    bool out_has_ti;         /* out_ti holds its logprobs */
    srv_tok_info out_ti;
    srv_finish out_fin;      /* SRV_FINISH_NONE: the job goes on */
} slot;

/* A model's life (srv_model.state, guarded by the scheduler's lock):
 *   UNLOADED -> LOADING  the first acquirer becomes its loader; requests
 *                        for the model wait on model_cv meanwhile
 *   LOADING  -> READY    hashed, mapped, budget reserved, context made
 *   LOADING  -> UNLOADED the load failed: every waiter gets its error
 *                        (a blob that failed its hash is refused for good)
 *   READY    -> EVICTING a loader needs its memory and nothing pins it
 *   EVICTING -> UNLOADED freed by that loader
 * The slow steps (hash, map, context, free) run without the lock; only
 * the thread that moved a model into LOADING or EVICTING touches its
 * weights, context and slots until it moves it out again. */
typedef enum model_state { MODEL_UNLOADED = 0, MODEL_LOADING, MODEL_READY, MODEL_EVICTING } model_state;

struct srv_model {
    char *name, *path, *chat_format; /* owned */
    char *chat_template;              /* owned override source, or NULL */
    char *digest, *manifest_digest;  /* owned; NULL for plain --model files */
    bool refused;            /* failed its integrity check: not loaded again unless republished */
    al_error refused_err;
    atomic_bool gone;        /* no longer published in the store (hot reload): not found, not
                                listed; unloaded once unpinned; the entry stays (HTTP threads
                                may hold a pointer) and comes back if republished as it was */
    model_state state;
    uint64_t load_seq;       /* load attempts ended (waiters tell theirs from a later one) */
    al_status load_st;       /* how the last one ended */
    al_error load_err;
    /* the gate's cached pass (gate_mu): valid while the catalogue version
     * and the scheduler's gate epoch are these */
    bool gate_ok;
    uint64_t gate_ver, gate_epoch;
    /* weights, context and slots: READY only (see model_state) */
    al_model *model;
    al_context *ctx;
    slot *slots;             /* (n_slots) */
    al_model_info info;
    bool info_valid;
    int refs;                /* pins: acquirers (whose jobs are in flight), a loader
                                until its caller has the model, the scheduler thread
                                while it steps the model without the lock */
    uint64_t bytes;
    uint64_t lru_tick;
    double last_used_wall;
    int32_t *b_tok, *b_pos, *b_seq; /* (n_batch + n_parallel) batch arrays */
    bool *b_logits;
    al_token_trie *trie;     /* the vocabulary's byte trie, made for the first grammar job */
    al_grammar_cache *gcache; /* token masks per grammar state, shared by the model's jobs */
    /* The same for grammars that write control-token markers (tool calls):
     * the trie also holds the listed tokens' text (a mask depends on the
     * trie, so the cache is another one too). */
    al_token_trie *trie_sp;
    al_grammar_cache *gcache_sp;
    int32_t *sp_toks;        /* (n_sp_toks) the markers trie_sp was made with */
    size_t n_sp_toks;
    /* set with ctx: */
    uint32_t n_slots;        /* n_parallel; an encoder (no KV kept per sequence): ENC_SLOTS */
    uint32_t n_batch;        /* tokens per pass: an encoder's holds at least one whole input */
    bool enc;                /* attention not causal: each input whole in one pass */
    al_pooling pooling;      /* the context's */
};

/* Sequences of an encoder's pass: they cost no KV cache, so a request of
 * many inputs is computed in few large passes. */
#define ENC_SLOTS 64
#define ENC_BATCH 4096

struct srv_sched {
    srv_sched_params p;
    srv_model *models;       /* (SRV_SCHED_MAX_MODELS); entries never move or go away */
    _Atomic size_t n_models; /* entries in use: grows under mu (srv_sched_add_model), read without */
    pthread_mutex_t mu;      /* the queue, the models' states and pins, the jobs'
                                shared fields, the counters below */
    pthread_cond_t work_cv;  /* the scheduler thread waits for work */
    pthread_cond_t model_cv; /* broadcast when a model leaves LOADING or EVICTING */
    pthread_mutex_t gate_mu; /* the gate's cache (srv_gate_check); never held with mu */
    uint64_t gate_epoch;     /* bumped by srv_sched_gate_invalidate */
    uint64_t gate_queries;   /* times the gate itself ran */
    pthread_t thread;
    bool thread_started;
    bool stopping;
    srv_job **queue;         /* ring of queue_cap */
    uint32_t q_head, q_len;
    uint64_t tick;
    uint64_t loaded_bytes;
    uint32_t n_active;
    uint64_t st_prompt, st_gen, st_cached;
    uint64_t st_passes[SRV_PASS_KINDS], st_pass_tokens;
    double st_pass_s[SRV_PASS_KINDS]; /* wall time in al_decode, by kind of pass */
    double st_sample_s;               /* wall time sampling after the passes */
};

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* strdup that passes NULL through (optional configuration strings). */
static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------------ jobs */

srv_job *srv_job_new(void)
{
    srv_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    if (pthread_cond_init(&j->cv, NULL)) {
        free(j);
        return NULL;
    }
    atomic_init(&j->cancel, false);
    j->sp = al_sampler_default_params();
    j->max_tokens = 16;
    return j;
}

void srv_job_free(srv_job *j)
{
    if (!j)
        return;
    pthread_cond_destroy(&j->cv);
    /* Request buffers are zeroed before they go back to the allocator. */
    if (j->prompt)
        explicit_bzero(j->prompt, (size_t)j->n_prompt * sizeof(int32_t));
    if (j->text)
        explicit_bzero(j->text, j->text_cap);
    if (j->toks)
        explicit_bzero(j->toks, j->toks_cap * sizeof(srv_tok_info));
    if (j->embedding)
        explicit_bzero(j->embedding, (size_t)j->n_embd * sizeof(float));
    free(j->prompt);
    free(j->bias_tok);
    free(j->bias_val);
    for (size_t i = 0; i < j->n_stops; i++)
        free(j->stops[i]);
    free(j->stops);
    al_grammar_free(j->grammar);
    free(j->grammar_special);
    free(j->text);
    free(j->toks);
    free(j->embedding);
    free(j);
}

/* Appends generated text (lock held). */
static void job_append(srv_job *j, const char *t, size_t n)
{
    if (n == 0 || !t)
        return;
    if (!al_grow_wiped(&j->text, &j->text_cap, j->text_len, n + 1, 256))
        return; /* dropped: the request will be short, never corrupt */
    memcpy(j->text + j->text_len, t, n);
    j->text_len += n;
    j->text[j->text_len] = 0;
}

static void job_add_tok(srv_job *j, const srv_tok_info *ti)
{
    if (j->n_toks == j->toks_cap) {
        size_t cap = j->toks_cap ? j->toks_cap * 2 : 32;
        srv_tok_info *nt = realloc(j->toks, cap * sizeof(*nt));
        if (!nt)
            return;
        j->toks = nt;
        j->toks_cap = cap;
    }
    j->toks[j->n_toks++] = *ti;
}

/* *ts = now + ms on CLOCK_REALTIME, the clock pthread_cond_timedwait reads. */
static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool srv_job_wait(srv_sched *s, srv_job *j, size_t text_len, size_t n_toks, int timeout_ms)
{
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&s->mu);
    bool changed;
    for (;;) {
        changed = j->text_len > text_len || j->n_toks > n_toks || j->finish != SRV_FINISH_NONE;
        if (changed)
            break;
        if (pthread_cond_timedwait(&j->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->mu);
    return changed;
}

bool srv_job_view_take(srv_sched *s, srv_job *j, size_t from, size_t tok_from, srv_job_view *v)
{
    memset(v, 0, sizeof(*v));
    pthread_mutex_lock(&s->mu);
    size_t end = j->text_len;
    if (from > end)
        from = end;
    v->n_text = end - from;
    v->text = malloc(v->n_text + 1);
    if (v->text) {
        if (v->n_text)
            memcpy(v->text, j->text + from, v->n_text);
        v->text[v->n_text] = 0;
    }
    v->text_end = end;
    size_t tend = j->n_toks;
    if (tok_from > tend)
        tok_from = tend;
    v->n_toks_new = tend - tok_from;
    if (v->n_toks_new) {
        v->toks = malloc(v->n_toks_new * sizeof(srv_tok_info));
        if (v->toks)
            memcpy(v->toks, j->toks + tok_from, v->n_toks_new * sizeof(srv_tok_info));
        else
            v->n_toks_new = 0;
    }
    v->toks_end = tok_from + v->n_toks_new;
    v->finish = j->finish;
    v->n_gen = j->n_gen;
    v->n_cached = j->n_cached;
    v->t_first = j->t_first;
    pthread_mutex_unlock(&s->mu);
    return v->text != NULL;
}

void srv_job_cancel_wait(srv_sched *s, srv_job *j)
{
    atomic_store(&j->cancel, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->work_cv);
    while (j->finish == SRV_FINISH_NONE)
        pthread_cond_wait(&j->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void srv_job_wait_done(srv_sched *s, srv_job *j, bool (*alive)(void *), void *arg)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        srv_finish f = j->finish;
        pthread_mutex_unlock(&s->mu);
        if (f != SRV_FINISH_NONE)
            return;
        if (alive && !alive(arg)) {
            srv_job_cancel_wait(s, j);
            return;
        }
        srv_job_wait(s, j, SIZE_MAX, SIZE_MAX, 100);
    }
}

/* ---------------------------------------------------------------- models */

size_t srv_sched_n_models(const srv_sched *s)
{
    return s->n_models;
}

srv_model *srv_sched_model_at(srv_sched *s, size_t i)
{
    return i < s->n_models ? &s->models[i] : NULL;
}

/* Served: not removed from the store while the server runs. */
static bool model_live(const srv_model *m)
{
    return !atomic_load(&m->gone);
}

srv_model *srv_sched_find(srv_sched *s, const char *name)
{
    if (!name)
        return NULL;
    size_t n_models = s->n_models;
    for (size_t i = 0; i < n_models; i++)
        if (model_live(&s->models[i]) && !strcmp(s->models[i].name, name))
            return &s->models[i];
    /* Pinned: "name@sha256:<hex>" matches a store model of that name whose
     * OCI manifest or GGUF blob has that digest. */
    const char *at = strstr(name, "@sha256:");
    if (at) {
        size_t nl = (size_t)(at - name);
        const char *hex = at + 8;
        for (size_t i = 0; i < n_models; i++) {
            srv_model *m = &s->models[i];
            if (!model_live(m))
                continue;
            const char *colon = strrchr(m->name, ':');
            size_t ml = colon ? (size_t)(colon - m->name) : strlen(m->name);
            if (ml != nl || strncmp(m->name, name, nl))
                continue;
            if ((m->digest && !strcmp(m->digest, hex)) || (m->manifest_digest && !strcmp(m->manifest_digest, hex)))
                return m;
        }
        return NULL;
    }
    /* A bare store name means its "latest" tag. */
    if (!strchr(name, ':'))
        for (size_t i = 0; i < n_models; i++) {
            const char *mn = s->models[i].name;
            size_t n0 = strlen(name);
            if (model_live(&s->models[i]) && !strncmp(mn, name, n0) && !strcmp(mn + n0, ":latest"))
                return &s->models[i];
        }
    /* Ollama clients often say "name:latest". */
    size_t n = strlen(name);
    if (n > 7 && !strcmp(name + n - 7, ":latest"))
        for (size_t i = 0; i < n_models; i++)
            if (model_live(&s->models[i]) && strlen(s->models[i].name) == n - 7 &&
                !strncmp(s->models[i].name, name, n - 7))
                return &s->models[i];
    return NULL;
}

uint32_t srv_sched_n_ctx(const srv_sched *s)
{
    return s->p.n_ctx;
}

void srv_model_get_status(srv_sched *s, srv_model *m, srv_model_status *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->mu);
    out->name = m->name;
    out->path = m->path;
    out->chat_format = m->chat_format;
    out->chat_template = m->chat_template;
    out->gone = atomic_load(&m->gone);
    out->digest = m->digest;
    out->manifest_digest = m->manifest_digest;
    out->refused = m->refused;
    out->loaded = m->state == MODEL_READY;
    out->packing = m->state == MODEL_READY && m->model && al_model_packing(m->model);
    out->bytes = m->bytes;
    out->last_used = m->last_used_wall;
    out->info = m->info;
    out->info_valid = m->info_valid;
    pthread_mutex_unlock(&s->mu);
}

static void slot_release_job_state(slot *sl)
{
    al_gen_free(sl->gen);
    free(sl->emb_sum);
    sl->gen = NULL;
    sl->emb_sum = NULL;
}

/* Frees the model's context, slots and weights. Called without the lock on
 * a model that is LOADING (a failed load) or EVICTING: no other thread
 * touches these fields in those states. */
static void model_unload(srv_model *m)
{
    if (m->slots) {
        for (uint32_t i = 0; i < m->n_slots; i++) {
            slot_release_job_state(&m->slots[i]);
            free(m->slots[i].hist);
            if (m->slots[i].out)
                explicit_bzero(m->slots[i].out, m->slots[i].out_cap);
            free(m->slots[i].out);
        }
        free(m->slots);
        m->slots = NULL;
    }
    if (m->ctx)
        al_kv_clear(m->ctx); /* the freed memory keeps no prompt */
    al_context_free(m->ctx);
    m->ctx = NULL;
    al_model_free(m->model);
    m->model = NULL;
    free(m->b_tok);
    free(m->b_pos);
    free(m->b_seq);
    free(m->b_logits);
    al_grammar_cache_free(m->gcache);
    al_token_trie_free(m->trie);
    m->gcache = NULL;
    m->trie = NULL;
    al_grammar_cache_free(m->gcache_sp);
    al_token_trie_free(m->trie_sp);
    free(m->sp_toks);
    m->gcache_sp = NULL;
    m->trie_sp = NULL;
    m->sp_toks = NULL;
    m->n_sp_toks = 0;
    m->b_tok = m->b_pos = m->b_seq = NULL;
    m->b_logits = NULL;
}

/* Creates the context and slots of a model being loaded (without the lock:
 * the model is LOADING, so only its loader touches these fields). */
static al_status model_make_ctx(srv_sched *s, srv_model *m, const al_model_info *info, al_error *err)
{
    al_context_params cp = al_context_default_params();
    m->enc = !info->causal;
    m->n_slots = m->enc ? ENC_SLOTS : s->p.n_parallel;
    m->n_batch = s->p.n_batch;
    if (m->enc) {
        const uint32_t ctx = s->p.n_ctx < info->n_ctx_train ? s->p.n_ctx : info->n_ctx_train;
        m->n_batch = m->n_batch > ENC_BATCH ? m->n_batch : ENC_BATCH;
        m->n_batch = m->n_batch > ctx ? m->n_batch : ctx;
    }
    cp.n_ctx = s->p.n_ctx;
    cp.n_seq = m->n_slots;
    cp.n_batch = m->n_batch;
    cp.n_threads = s->p.n_threads;
    cp.embeddings = true;
    /* An encoder pools in the engine (its inputs are whole in one pass); a
     * decoder's input may span passes, so the scheduler pools its per-token
     * states itself (mean, cls or last; no rank head on decoders). */
    m->pooling = al_model_pooling(m->model);
    if (m->pooling == AL_POOLING_NONE)
        m->pooling = AL_POOLING_MEAN;
    /* a decoder reranker's score comes from the engine on its input's last pass */
    cp.pooling = m->enc || m->pooling == AL_POOLING_RANK ? m->pooling : AL_POOLING_NONE;
    al_status st = al_context_new(m->model, &cp, &m->ctx, err);
    if (st)
        return st;
    size_t nb = (size_t)m->n_batch + m->n_slots;
    m->slots = calloc(m->n_slots, sizeof(slot));
    m->b_tok = malloc(nb * sizeof(int32_t));
    m->b_pos = malloc(nb * sizeof(int32_t));
    m->b_seq = malloc(nb * sizeof(int32_t));
    m->b_logits = malloc(nb * sizeof(bool));
    bool ok = m->slots && m->b_tok && m->b_pos && m->b_seq && m->b_logits;
    for (uint32_t i = 0; ok && i < m->n_slots; i++) {
        m->slots[i].hist = malloc((size_t)s->p.n_ctx * sizeof(int32_t));
        m->slots[i].ctx = m->ctx;
        m->slots[i].seq = (int32_t)i;
        ok = m->slots[i].hist != NULL;
    }
    if (!ok)
        return al_err(err, AL_ERR_NOMEM, "out of memory for the slots of model '%s'", m->name);
    return AL_OK;
}

/* Frees a READY model that nothing pins (lock held on entry and exit; let
 * go while the weights, context and slots are freed): EVICTING meanwhile,
 * UNLOADED after; its bytes leave the budget at once. Whoever waits for
 * the model (srv_model_acquire) then loads it again. */
static void model_evict(srv_sched *s, srv_model *m)
{
    m->state = MODEL_EVICTING;
    s->loaded_bytes -= m->bytes;
    pthread_mutex_unlock(&s->mu);
    model_unload(m);
    pthread_mutex_lock(&s->mu);
    m->bytes = 0;
    m->state = MODEL_UNLOADED;
    pthread_cond_broadcast(&s->model_cv);
}

/* Makes room for `bytes` in the memory budget (lock held; it is released
 * while an evicted model is freed): evicts READY models that nothing pins,
 * least recently used first, and reserves the bytes. False when the pinned
 * or loading models leave too little. */
static bool budget_reserve(srv_sched *s, const srv_model *m, uint64_t bytes)
{
    for (;;) {
        if (!s->p.memory_budget || s->loaded_bytes + bytes <= s->p.memory_budget) {
            s->loaded_bytes += bytes;
            return true;
        }
        srv_model *victim = NULL;
        for (size_t i = 0; i < s->n_models; i++) {
            srv_model *c = &s->models[i];
            if (c != m && c->state == MODEL_READY && c->refs == 0 && (!victim || c->lru_tick < victim->lru_tick))
                victim = c;
        }
        if (!victim)
            return false;
        model_evict(s, victim);
    }
}

/* A load's slow part and its outcome (see model_load). */
typedef struct load_work {
    srv_sched *s;
    srv_model *m;
    int pack_threads;        /* for al_model_params.n_threads */
    al_status st;
    al_error err;
    bool refuse;             /* the blob failed its hash */
    bool reserved;           /* bytes are counted in loaded_bytes */
    al_model_info info;
    uint64_t bytes;
} load_work;

/* Below the scheduler thread: the nice value of a loader thread (and of the
 * threads that pack the weights, which inherit it). */
#define LOADER_NICE 10

/* Re-hashes, maps, reserves the budget and makes the context of a LOADING
 * model, without the lock (budget_reserve takes it a moment). */
static void load_work_run(load_work *w)
{
    srv_sched *s = w->s;
    srv_model *m = w->m;
    if (m->digest) {
        /* A store blob is re-hashed every time it is loaded: a blob changed
         * at rest is refused for good, never mapped. */
        al_error verr = {0};
        w->st = al_store_verify_blob(m->path, m->digest, &verr);
        if (w->st == AL_ERR_CRYPTO) {
            al_err(&w->err, AL_ERR_CRYPTO, "model '%s' refused: its blob failed the integrity check (%s)", m->name,
                   verr.msg);
            w->refuse = true;
        } else if (w->st) {
            w->err = verr;
        }
    }
    if (w->st == AL_OK) {
        al_model_params mp = al_model_default_params();
        mp.n_threads = w->pack_threads;
        mp.pack_background = true; /* ready at once; full speed when packed */
        w->st = al_model_load(m->path, &mp, &m->model, &w->err);
    }
    if (w->st == AL_OK) {
        al_model_get_info(m->model, &w->info);
        w->bytes = w->info.file_bytes + al_model_kv_bytes(m->model, s->p.n_ctx, s->p.n_parallel);
        pthread_mutex_lock(&s->mu);
        w->reserved = budget_reserve(s, m, w->bytes);
        const uint64_t free_b = s->p.memory_budget > s->loaded_bytes ? s->p.memory_budget - s->loaded_bytes : 0;
        pthread_mutex_unlock(&s->mu);
        if (!w->reserved)
            w->st = al_err(&w->err, AL_ERR_LIMIT,
                           "model '%s' needs %llu bytes (weights + KV cache) but only %llu of the memory budget "
                           "of %llu are free (other models are busy)",
                           m->name, (unsigned long long)w->bytes, (unsigned long long)free_b,
                           (unsigned long long)s->p.memory_budget);
    }
    if (w->st == AL_OK)
        w->st = model_make_ctx(s, m, &w->info, &w->err);
    if (w->st)
        model_unload(m);
}

static void *loader_main(void *arg)
{
    /* per thread on Linux; raising it needs no privilege */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), LOADER_NICE);
    load_work_run(arg);
    return NULL;
}

/* Loads m (lock held on entry and exit, state UNLOADED): marks it LOADING,
 * then, without the lock and in a thread of lower priority than the
 * scheduler's (the caller waits for it), re-hashes a store blob, maps the
 * weights, reserves the memory budget (evicting idle models) and creates
 * the context and slots. On success m is READY and pinned once for the
 * caller; on failure it is UNLOADED again (or refused, when the blob failed
 * its hash) and the error is kept in m->load_err for the requests that
 * waited on this load. */
static al_status model_load(srv_sched *s, srv_model *m, al_error *err)
{
    m->state = MODEL_LOADING;
    /* Streams running: the weights are packed with a core fewer, so that
     * the scheduler thread keeps one (the load takes longer, they do not
     * stall). */
    const int cores = al_physical_cores_count();
    load_work w = {.s = s, .m = m, .pack_threads = s->n_active > 0 ? (cores > 1 ? cores - 1 : 1) : 0};
    pthread_mutex_unlock(&s->mu);

    pthread_t th;
    if (pthread_create(&th, NULL, loader_main, &w) == 0)
        pthread_join(th, NULL);
    else
        load_work_run(&w); /* no thread to spare: on this one */

    pthread_mutex_lock(&s->mu);
    m->load_seq++;
    m->load_st = w.st;
    m->load_err = w.err;
    if (w.st == AL_OK) {
        m->info = w.info;
        m->info_valid = true;
        m->bytes = w.bytes;
        m->state = MODEL_READY;
        m->refs++;
    } else {
        if (w.reserved)
            s->loaded_bytes -= w.bytes;
        m->state = MODEL_UNLOADED;
        if (w.refuse) {
            m->refused_err = w.err;
            m->refused = true;
            fprintf(stderr, "airlock serve: %s\n", w.err.msg);
        }
        if (err)
            *err = w.err;
    }
    pthread_cond_broadcast(&s->model_cv);
    return w.st;
}

/* The gate for one use of m. Its answer is cached per model while the
 * catalogue's version (gate_version) and the invalidation epoch stay the
 * same, so a request costs no SQLite query unless the store changed; only
 * a pass is cached (a refusal is asked again). Serialised by gate_mu, never
 * under the scheduler's lock. */
al_status srv_gate_check(srv_sched *s, srv_model *m, al_error *err)
{
    if (!s->p.gate)
        return AL_OK;
    pthread_mutex_lock(&s->gate_mu);
    uint64_t ver = 0;
    const bool cacheable = s->p.gate_version && s->p.gate_version(s->p.gate_user, &ver) == AL_OK;
    if (cacheable && m->gate_ok && m->gate_ver == ver && m->gate_epoch == s->gate_epoch) {
        pthread_mutex_unlock(&s->gate_mu);
        return AL_OK;
    }
    al_error e = {0};
    al_status st = s->p.gate(s->p.gate_user, m->name, m->digest, &e);
    m->gate_ok = cacheable && st == AL_OK;
    m->gate_ver = ver;
    m->gate_epoch = s->gate_epoch;
    s->gate_queries++;
    pthread_mutex_unlock(&s->gate_mu);
    if (st && err)
        *err = e;
    return st;
}

void srv_sched_gate_invalidate(srv_sched *s)
{
    pthread_mutex_lock(&s->gate_mu);
    s->gate_epoch++;
    pthread_mutex_unlock(&s->gate_mu);
}

al_status srv_model_acquire(srv_sched *s, srv_model *m, const al_model **out, al_error *err)
{
    if (atomic_load(&m->gone))
        return al_err(err, AL_ERR_NOT_FOUND, "the model '%s' is no longer published in the store", m->name);
    /* Every use, not only the load: a model rejected or removed from the
     * store while loaded stops being served at once. */
    al_status st = srv_gate_check(s, m, err);
    if (st)
        return st;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (atomic_load(&m->gone)) { /* removed while this request waited */
            st = al_err(err, AL_ERR_NOT_FOUND, "the model '%s' is no longer published in the store", m->name);
            break;
        }
        if (m->refused) {
            if (err)
                *err = m->refused_err;
            st = m->refused_err.status;
            break;
        }
        if (m->state == MODEL_READY) {
            m->refs++;
            break;
        }
        if (m->state == MODEL_UNLOADED) {
            st = model_load(s, m, err);
            break;
        }
        /* Another thread loads or evicts it: wait. A load that fails fails
         * every request that waited on it, with its error. */
        const bool was_loading = m->state == MODEL_LOADING;
        const uint64_t seq = m->load_seq;
        while (m->state == MODEL_LOADING || m->state == MODEL_EVICTING)
            pthread_cond_wait(&s->model_cv, &s->mu);
        if (was_loading && m->state == MODEL_UNLOADED && m->load_seq != seq && m->load_st && !m->refused) {
            st = m->load_st;
            if (err)
                *err = m->load_err;
            break;
        }
    }
    if (st == AL_OK) {
        m->lru_tick = ++s->tick;
        m->last_used_wall = (double)time(NULL);
        *out = m->model;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

void srv_model_release(srv_sched *s, srv_model *m)
{
    pthread_mutex_lock(&s->mu);
    if (m->refs > 0)
        m->refs--;
    if (m->refs == 0 && m->state == MODEL_READY && atomic_load(&m->gone))
        model_evict(s, m); /* its last request is done: free its memory now */
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------- scheduling */

/* Marks a job finished and wakes its reader (lock held). */
static void job_finish(srv_sched *s, srv_job *j, srv_finish f)
{
    if (j->finish != SRV_FINISH_NONE)
        return;
    j->finish = f;
    j->t_done = srv_now();
    pthread_cond_broadcast(&j->cv);
}

static void slot_finish(srv_sched *s, slot *sl, srv_finish f)
{
    if (!sl->job)
        return;
    job_finish(s, sl->job, f);
    sl->job = NULL;
    if (!s->p.prefix_cache && sl->ctx) {
        /* Data hygiene: nothing of the request stays in the slot. */
        al_kv_seq_zero(sl->ctx, sl->seq);
        memset(sl->hist, 0, (size_t)s->p.n_ctx * sizeof(int32_t));
        sl->n_hist = 0;
        sl->n_done = 0;
        sl->next_tok = 0;
    }
    sl->decoding = false;
    slot_release_job_state(sl);
    if (s->n_active)
        s->n_active--;
}

/* Keeps text for the job until slot_publish (scheduler thread, no lock). */
static void slot_emit(slot *sl, const char *t, size_t n)
{
    if (n == 0 || !t)
        return;
    if (!al_grow_wiped(&sl->out, &sl->out_cap, sl->n_out, n, 64))
        return; /* dropped: the request will be short, never corrupt */
    memcpy(sl->out + sl->n_out, t, n);
    sl->n_out += n;
}

/* Ends the slot's job with f once its output is published (no lock). */
static void slot_end(slot *sl, srv_finish f)
{
    sl->out_fin = f;
}

/* Hands what slot_sample made to the job and wakes its reader, or ends the
 * job as slot_sample decided (lock held). */
static void slot_publish(srv_sched *s, slot *sl)
{
    srv_job *j = sl->job;
    if (sl->out_sampled) {
        if (j->n_gen == 0)
            j->t_first = srv_now();
        j->n_gen++;
        s->st_gen++;
    }
    if (sl->out_has_ti)
        job_add_tok(j, &sl->out_ti);
    job_append(j, sl->out, sl->n_out);
    if (sl->n_out)
        explicit_bzero(sl->out, sl->n_out);
    const srv_finish f = sl->out_fin;
    sl->n_out = 0;
    sl->out_sampled = sl->out_has_ti = false;
    sl->out_fin = SRV_FINISH_NONE;
    if (f != SRV_FINISH_NONE)
        slot_finish(s, sl, f);
    else
        pthread_cond_broadcast(&j->cv);
}

/* Ends the slot's generation early and keeps the text its session held
 * back for slot_publish (no lock). */
static void slot_flush_text(slot *sl)
{
    size_t n = 0;
    const char *t = al_gen_finish(sl->gen, &n);
    slot_emit(sl, t, n);
}

static int32_t lcp(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    int32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* The slot of a model that runs job j, or -1. */
static int slot_of(const srv_model *m, uint32_t n_slots, const srv_job *j)
{
    for (uint32_t i = 0; m->slots && i < n_slots; i++)
        if (m->slots[i].job == j)
            return (int)i;
    return -1;
}

/* True while j should wait for its prompt_from's prompt: that job is
 * queued, or in a slot still computing the prompt. */
static bool prompt_pending(const srv_sched *s, const srv_job *j)
{
    const srv_job *src = j->prompt_from;
    if (!src || src->finish != SRV_FINISH_NONE)
        return false;
    int i = slot_of(j->model, j->model->n_slots, src);
    if (i < 0)
        return true; /* still queued */
    return j->model->slots[i].n_done < j->n_prompt - 1;
}

/* The trie and mask cache for a grammar that writes control-token
 * markers: the model's marker trie (made for the first such job) and its
 * cache when the job lists the same markers; otherwise *trie stays NULL and
 * the job's session makes a trie of its own (rare). False when out of
 * memory. */
static bool marker_trie(srv_model *m, const srv_job *j, const al_token_trie **trie, al_grammar_cache **cache)
{
    const al_vocab *voc = al_model_vocab(m->model);
    size_t bytes = j->n_grammar_special * sizeof(int32_t);
    *trie = NULL;
    *cache = NULL;
    if (!m->trie_sp) {
        m->sp_toks = malloc(bytes);
        if (!m->sp_toks)
            return false;
        memcpy(m->sp_toks, j->grammar_special, bytes);
        m->n_sp_toks = j->n_grammar_special;
        m->trie_sp = al_token_trie_new_with(voc, m->sp_toks, m->n_sp_toks);
        if (!m->trie_sp) {
            free(m->sp_toks);
            m->sp_toks = NULL;
            m->n_sp_toks = 0;
            return false;
        }
    }
    if (m->n_sp_toks == j->n_grammar_special && !memcmp(m->sp_toks, j->grammar_special, bytes)) {
        if (!m->gcache_sp)
            m->gcache_sp = al_grammar_cache_new((int32_t)m->info.n_vocab, GRAMMAR_CACHE_MASKS);
        if (!m->gcache_sp)
            return false;
        *trie = m->trie_sp;
        *cache = m->gcache_sp;
    }
    return true;
}

/* The generation session of a job (NULL with err on failure): the
 * vocabulary's trie and mask cache for a grammar are made once per model
 * and shared by its jobs (all used on the scheduler thread). */
static al_gen *job_gen_new(srv_model *m, const srv_job *j, al_error *err)
{
    al_gen_params gp = al_gen_default_params();
    gp.sampler = j->sp;
    gp.max_tokens = j->max_tokens;
    gp.stops = (const char *const *)j->stops;
    gp.n_stops = j->n_stops;
    gp.render_special = j->render_special;
    gp.bias_tok = j->bias_tok;
    gp.bias_val = j->bias_val;
    gp.n_bias = j->n_bias;
    gp.grammar = j->grammar;
    gp.grammar_special = j->grammar_special;
    gp.n_grammar_special = j->n_grammar_special;
    gp.logprobs = j->want_logprobs;
    gp.top_logprobs = j->top_logprobs;
    bool ok = true;
    if (j->grammar && !j->n_grammar_special) {
        if (!m->trie)
            m->trie = al_token_trie_new(al_model_vocab(m->model));
        if (!m->gcache)
            m->gcache = al_grammar_cache_new((int32_t)m->info.n_vocab, GRAMMAR_CACHE_MASKS);
        ok = m->trie && m->gcache;
        gp.trie = m->trie;
        gp.cache = m->gcache;
    } else if (j->grammar) {
        ok = marker_trie(m, j, &gp.trie, &gp.cache);
    }
    if (!ok) {
        al_err(err, AL_ERR_NOMEM, "out of memory for a request's sampler");
        return NULL;
    }
    return al_gen_new(m->model, &gp, err);
}

/* Puts a queued job into a free slot of its model; false if none is free. */
static bool admit(srv_sched *s, srv_job *j)
{
    srv_model *m = j->model;
    if (m->state != MODEL_READY) {
        /* the submitter pins the model (srv_model_acquire) before it submits */
        al_err(&j->err, AL_ERR_STATE, "model '%s' is not loaded", m->name);
        job_finish(s, j, SRV_FINISH_ERROR);
        return true;
    }
    if (m->enc && j->kind == SRV_JOB_GENERATE) {
        al_err(&j->err, AL_ERR_UNSUPPORTED, "model '%s' is an embedding model: it cannot generate text", m->name);
        job_finish(s, j, SRV_FINISH_ERROR);
        return true;
    }
    if (m->enc && j->n_prompt > (int32_t)m->n_batch) {
        al_err(&j->err, AL_ERR_LIMIT, "the input has %d tokens; model '%s' takes at most %u", j->n_prompt, m->name,
               m->n_batch);
        job_finish(s, j, SRV_FINISH_ERROR);
        return true;
    }
    int best = -1;
    int32_t best_l = -1;
    for (uint32_t i = 0; i < m->n_slots; i++) {
        slot *sl = &m->slots[i];
        if (sl->job)
            continue;
        int32_t l = j->kind == SRV_JOB_GENERATE ? lcp(sl->hist, sl->n_hist, j->prompt, j->n_prompt) : 0;
        if (l > best_l || (l == best_l && sl->used_tick < m->slots[best].used_tick)) {
            best = (int)i;
            best_l = l;
        }
    }
    if (best < 0)
        return false;
    slot *sl = &m->slots[best];
    int32_t keep = best_l;
    if (keep >= j->n_prompt)
        keep = j->n_prompt - 1; /* the last prompt token gives the first logits */
    if (keep < 0)
        keep = 0;
    al_kv_seq_truncate(m->ctx, best, keep);
    /* Another choice of the same request has computed the prompt: copy it. */
    int src = j->prompt_from && j->prompt_from->finish == SRV_FINISH_NONE ? slot_of(m, m->n_slots, j->prompt_from)
                                                                           : -1;
    if (src >= 0 && keep < j->n_prompt - 1 && m->slots[src].n_done >= j->n_prompt - 1) {
        keep = j->n_prompt - 1;
        al_kv_seq_copy(m->ctx, src, best, keep);
        memcpy(sl->hist, j->prompt, (size_t)keep * sizeof(int32_t));
    }
    /* a model with sliding-window layers may have had to forget more */
    if (al_kv_seq_len(m->ctx, best) < keep)
        keep = al_kv_seq_len(m->ctx, best);
    sl->n_hist = keep;
    sl->n_done = keep;
    sl->decoding = false;
    sl->admit_tick = ++s->tick;
    sl->used_tick = sl->admit_tick;
    j->n_cached = keep;
    j->t_start = srv_now();
    s->st_cached += (uint64_t)keep;
    s->st_prompt += (uint64_t)j->n_prompt;
    bool ok = true;
    al_error gerr = {0};
    if (j->kind == SRV_JOB_GENERATE) {
        sl->gen = job_gen_new(m, j, &gerr);
        ok = sl->gen != NULL;
    } else {
        sl->emb_sum = calloc(m->info.n_embd, sizeof(double));
        ok = sl->emb_sum != NULL;
        if (!ok)
            al_err(&gerr, AL_ERR_NOMEM, "out of memory for a request's sampler");
    }
    sl->job = j;
    s->n_active++;
    if (!ok) {
        j->err = gerr;
        slot_finish(s, sl, SRV_FINISH_ERROR);
    }
    return true;
}

/* Samples the next token of a slot from its logits with the job's
 * generation session (bias, grammar, sampler, logprobs, detokenizer, stop
 * strings) without the lock: the slot and its session belong to the
 * scheduler thread. What it makes waits in the slot for slot_publish. */
static void slot_sample(srv_sched *s, srv_model *m, int32_t seq, slot *sl, const float *logits)
{
    srv_job *j = sl->job;
    al_gen_token out;
    if (al_gen_sample(sl->gen, logits, &out, &j->err) != AL_OK) {
        slot_end(sl, SRV_FINISH_ERROR);
        return;
    }
    sl->out_sampled = true;
    if (j->want_logprobs) {
        sl->out_ti = out.lp;
        sl->out_has_ti = true;
    }
    slot_emit(sl, out.text, out.n_text);
    if (out.end != AL_GEN_CONTINUE) {
        /* end of generation, a stop string, the grammar complete, max_tokens */
        slot_end(sl, out.end == AL_GEN_END_LENGTH ? SRV_FINISH_LENGTH : SRV_FINISH_STOP);
        return;
    }
    if (sl->n_hist + 1 >= (int32_t)s->p.n_ctx) {
        slot_flush_text(sl);
        slot_end(sl, SRV_FINISH_LENGTH);
        return;
    }
    (void)m;
    (void)seq;
    sl->decoding = true;
    sl->next_tok = out.token;
}

/* The job's vector from the slot's emb_sum (d values: a sum over the
 * prompt for mean pooling, else the pooled vector itself): L2-normalised,
 * or as it is for rank scores. */
static void embed_finish(srv_sched *s, srv_model *m, slot *sl, uint32_t d)
{
    srv_job *j = sl->job;
    j->embedding = malloc((size_t)d * sizeof(float));
    if (!j->embedding) {
        al_err(&j->err, AL_ERR_NOMEM, "out of memory for an embedding");
        slot_finish(s, sl, SRV_FINISH_ERROR);
        return;
    }
    const bool mean = m->pooling == AL_POOLING_MEAN && !m->enc, rank = m->pooling == AL_POOLING_RANK;
    double norm = 0;
    for (uint32_t i = 0; i < d; i++) {
        double v = mean ? sl->emb_sum[i] / (double)j->n_prompt : sl->emb_sum[i];
        sl->emb_sum[i] = v;
        norm += v * v;
    }
    norm = rank ? 1.0 : sqrt(norm);
    for (uint32_t i = 0; i < d; i++)
        j->embedding[i] = (float)(norm > 0 ? sl->emb_sum[i] / norm : 0.0);
    j->n_embd = (int32_t)d;
    slot_finish(s, sl, SRV_FINISH_STOP);
}

/* An encoder's pass: whole inputs of the waiting slots, oldest first, as
 * many as n_batch holds; each gives its pooled vector at once. */
static bool model_step_enc(srv_sched *s, srv_model *m)
{
    int32_t n = 0;
    for (uint32_t i = 0; i < m->n_slots; i++)
        m->slots[i].chunk_len = 0;
    for (;;) {
        slot *pick = NULL;
        int32_t pi = -1;
        for (uint32_t i = 0; i < m->n_slots; i++) {
            slot *sl = &m->slots[i];
            if (sl->job && sl->chunk_len == 0 && sl->n_done == 0 &&
                n + sl->job->n_prompt <= (int32_t)m->n_batch && (!pick || sl->admit_tick < pick->admit_tick)) {
                pick = sl;
                pi = (int32_t)i;
            }
        }
        if (!pick)
            break;
        pick->chunk_start = n;
        pick->chunk_len = pick->job->n_prompt;
        for (int32_t t = 0; t < pick->job->n_prompt; t++) {
            m->b_tok[n] = pick->job->prompt[t];
            m->b_pos[n] = t;
            m->b_seq[n] = pi;
            m->b_logits[n] = false;
            n++;
        }
    }
    if (n == 0)
        return false;
    s->st_passes[SRV_PASS_PREFILL]++;
    s->st_pass_tokens += (uint64_t)n;
    al_batch b = {.n_tokens = n, .tokens = m->b_tok, .pos = m->b_pos, .seq = m->b_seq, .logits = m->b_logits};
    al_error err = {0};
    m->refs++; /* no eviction while the lock is let go */
    pthread_mutex_unlock(&s->mu);
    const double t0 = srv_now();
    al_status st = al_decode(m->ctx, &b, &err);
    const double t1 = srv_now();
    pthread_mutex_lock(&s->mu);
    s->st_pass_s[SRV_PASS_PREFILL] += t1 - t0;
    m->refs--;
    for (uint32_t i = 0; i < m->n_slots; i++) {
        slot *sl = &m->slots[i];
        if (!sl->job || sl->chunk_len == 0)
            continue;
        if (st) {
            sl->job->err = err;
            slot_finish(s, sl, SRV_FINISH_ERROR);
            continue;
        }
        int32_t nv = 0;
        const float *v = al_get_embedding_seq(m->ctx, (int32_t)i, &nv);
        if (!v || nv <= 0 || (uint32_t)nv > m->info.n_embd) {
            al_err(&sl->job->err, AL_ERR_STATE, "the engine gave no pooled vector");
            slot_finish(s, sl, SRV_FINISH_ERROR);
            continue;
        }
        for (int32_t q = 0; q < nv; q++)
            sl->emb_sum[q] = v[q];
        sl->n_done = sl->job->n_prompt;
        embed_finish(s, m, sl, (uint32_t)nv);
    }
    return true;
}

/* True when sl holds a job whose prompt is not all computed yet. */
static bool slot_waiting(const slot *sl)
{
    return sl->job && !sl->decoding && sl->n_done < sl->job->n_prompt;
}

const char *const srv_pass_kind_name[SRV_PASS_KINDS] = {"prefill", "decode", "mixed", "catch_up"};

/* While streams decode, a small prompt chunk keeps their inter-token
 * latency low (prefill is interleaved with decoding, not run ahead),
 * unless more sequences wait for their prompt than decode: then the waiting
 * are the majority, and passes filled with prompt (the few streams stall
 * until the waiting have caught up, a pass or a few) serve them far sooner
 * than many small chunks would (on two cores a large pass costs ~4.5 ms a
 * token, a pass of a few tokens at least ~16 ms). */
int32_t srv_pass_budget(const srv_sched_params *p, int32_t n_dec, uint32_t n_wait, bool *catch_up)
{
    const int32_t full = (int32_t)p->n_batch;
    *catch_up = false;
    if (n_dec <= 0 || p->n_prefill_busy == 0)
        return full;
    if (p->waiting_ratio > 0 && (double)n_wait > p->waiting_ratio * (double)n_dec) {
        *catch_up = true;
        return full;
    }
    const int64_t small = (int64_t)n_dec + p->n_prefill_busy;
    return small < full ? (int32_t)small : full;
}

/* One forward pass for one model: lock held on entry and exit, released
 * around al_decode. Returns true when it did work. */
static bool model_step(srv_sched *s, srv_model *m)
{
    if (m->state != MODEL_READY)
        return false;
    if (m->enc)
        return model_step_enc(s, m);
    const uint32_t np = m->n_slots;
    int32_t n = 0;
    for (uint32_t i = 0; i < np; i++) {
        slot *sl = &m->slots[i];
        sl->chunk_len = 0;
        if (!sl->job || !sl->decoding)
            continue;
        sl->chunk_start = n;
        sl->chunk_len = 1;
        m->b_tok[n] = sl->next_tok;
        m->b_pos[n] = sl->n_hist;
        m->b_seq[n] = (int32_t)i;
        m->b_logits[n] = true;
        n++;
    }
    /* Prefill: oldest admitted first, in chunks of what the batch has left
     * (srv_pass_budget says how much that is). */
    uint32_t n_wait = 0;
    for (uint32_t i = 0; i < np; i++)
        n_wait += slot_waiting(&m->slots[i]);
    const int32_t n_dec = n;
    bool catch_up = false;
    const int32_t budget = srv_pass_budget(&s->p, n_dec, n_wait, &catch_up);
    for (;;) {
        slot *pick = NULL;
        int32_t pi = -1;
        for (uint32_t i = 0; i < np; i++) {
            slot *sl = &m->slots[i];
            if (slot_waiting(sl) && sl->chunk_len == 0 && (!pick || sl->admit_tick < pick->admit_tick)) {
                pick = sl;
                pi = (int32_t)i;
            }
        }
        if (!pick || n >= budget)
            break;
        int32_t k = pick->job->n_prompt - pick->n_done;
        if (k > budget - n)
            k = budget - n;
        pick->chunk_start = n;
        pick->chunk_len = k;
        for (int32_t t = 0; t < k; t++) {
            int32_t idx = pick->n_done + t;
            m->b_tok[n] = pick->job->prompt[idx];
            m->b_pos[n] = pick->n_hist + t;
            m->b_seq[n] = pi;
            m->b_logits[n] = pick->job->kind == SRV_JOB_GENERATE && idx == pick->job->n_prompt - 1;
            n++;
        }
    }
    if (n == 0)
        return false;
    srv_pass_kind kind = n_dec == 0    ? SRV_PASS_PREFILL
                         : n == n_dec ? SRV_PASS_DECODE
                         : catch_up && n - n_dec > (int32_t)s->p.n_prefill_busy ? SRV_PASS_CATCH_UP
                                                                                : SRV_PASS_MIXED;
    s->st_passes[kind]++;
    s->st_pass_tokens += (uint64_t)n;

    al_batch b = {.n_tokens = n, .tokens = m->b_tok, .pos = m->b_pos, .seq = m->b_seq, .logits = m->b_logits};
    al_error err = {0};
    /* The forward pass and the sampling run without the lock: the slots,
     * the context and the samplers belong to this thread; the pin keeps the
     * model from eviction meanwhile. */
    m->refs++;
    pthread_mutex_unlock(&s->mu);
    const double t0 = srv_now();
    al_status st = al_decode(m->ctx, &b, &err);
    const double t1 = srv_now();
    for (uint32_t i = 0; i < np && st == AL_OK; i++) {
        slot *sl = &m->slots[i];
        if (!sl->job || sl->chunk_len == 0)
            continue;
        for (int32_t t = 0; t < sl->chunk_len; t++)
            sl->hist[sl->n_hist++] = m->b_tok[sl->chunk_start + t];
        if (sl->decoding) {
            slot_sample(s, m, (int32_t)i, sl, al_get_logits(m->ctx, sl->chunk_start));
            continue;
        }
        sl->n_done += sl->chunk_len;
        if (sl->job->kind == SRV_JOB_GENERATE && sl->n_done >= sl->job->n_prompt)
            slot_sample(s, m, (int32_t)i, sl, al_get_logits(m->ctx, sl->chunk_start + sl->chunk_len - 1));
    }
    const double t2 = srv_now();
    pthread_mutex_lock(&s->mu);
    m->refs--;
    s->st_pass_s[kind] += t1 - t0;
    s->st_sample_s += t2 - t1;

    for (uint32_t i = 0; i < np; i++) {
        slot *sl = &m->slots[i];
        if (!sl->job || sl->chunk_len == 0)
            continue;
        if (st) {
            sl->job->err = err;
            al_kv_seq_truncate(m->ctx, (int32_t)i, 0);
            sl->n_hist = 0;
            slot_finish(s, sl, SRV_FINISH_ERROR);
            continue;
        }
        if (sl->job->kind == SRV_JOB_GENERATE) {
            if (sl->out_sampled || sl->out_fin != SRV_FINISH_NONE)
                slot_publish(s, sl);
            continue;
        }
        {
            /* a decoder's input may span passes: the mean is summed as it
             * goes; cls / last keep their token's state */
            uint32_t d = m->info.n_embd;
            const int32_t idx0 = sl->n_done - sl->chunk_len;
            if (m->pooling == AL_POOLING_RANK) {
                if (sl->n_done < sl->job->n_prompt)
                    continue;
                int32_t nv = 0;
                const float *v = al_get_embedding_seq(m->ctx, (int32_t)i, &nv);
                if (!v || nv <= 0 || (uint32_t)nv > d) {
                    al_err(&sl->job->err, AL_ERR_STATE, "the engine gave no rank score");
                    slot_finish(s, sl, SRV_FINISH_ERROR);
                    continue;
                }
                for (int32_t q = 0; q < nv; q++)
                    sl->emb_sum[q] = v[q];
                embed_finish(s, m, sl, (uint32_t)nv);
                continue;
            }
            for (int32_t t = 0; t < sl->chunk_len; t++) {
                const int32_t idx = idx0 + t;
                if ((m->pooling == AL_POOLING_CLS && idx != 0) ||
                    (m->pooling == AL_POOLING_LAST && idx != sl->job->n_prompt - 1))
                    continue;
                const float *e = al_get_embedding(m->ctx, sl->chunk_start + t);
                if (!e) {
                    al_err(&sl->job->err, AL_ERR_UNSUPPORTED, "the engine gave no hidden states");
                    slot_finish(s, sl, SRV_FINISH_ERROR);
                    break;
                }
                for (uint32_t q = 0; q < d; q++)
                    sl->emb_sum[q] += e[q];
            }
            if (sl->job && sl->n_done >= sl->job->n_prompt)
                embed_finish(s, m, sl, d);
        }
    }
    return true;
}

/* Drops cancelled and expired jobs from slots and the queue (lock held). */
static void reap(srv_sched *s)
{
    double now = srv_now();
    for (size_t mi = 0; mi < s->n_models; mi++) {
        srv_model *m = &s->models[mi];
        if (m->state != MODEL_READY)
            continue;
        for (uint32_t i = 0; i < m->n_slots; i++) {
            slot *sl = &m->slots[i];
            if (!sl->job)
                continue;
            if (atomic_load(&sl->job->cancel))
                slot_finish(s, sl, SRV_FINISH_CANCELLED);
            else if (sl->job->deadline > 0 && now > sl->job->deadline)
                slot_finish(s, sl, SRV_FINISH_TIMEOUT);
        }
    }
    uint32_t cap = s->p.queue_cap, w = 0;
    for (uint32_t r = 0; r < s->q_len; r++) {
        srv_job *j = s->queue[(s->q_head + r) % cap];
        if (atomic_load(&j->cancel))
            job_finish(s, j, SRV_FINISH_CANCELLED);
        else if (j->deadline > 0 && now > j->deadline)
            job_finish(s, j, SRV_FINISH_TIMEOUT);
        else
            s->queue[(s->q_head + w++) % cap] = j;
    }
    s->q_len = w;
}

static void *sched_main(void *arg)
{
    srv_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        reap(s);
        const bool was_idle = s->n_active == 0;
        /* Admit in FIFO order; a job whose model has no free slot waits
         * without blocking jobs of other models. */
        uint32_t cap = s->p.queue_cap, w = 0, len = s->q_len;
        for (uint32_t r = 0; r < len; r++) {
            srv_job *j = s->queue[(s->q_head + r) % cap];
            if (prompt_pending(s, j) || !admit(s, j))
                s->queue[(s->q_head + w++) % cap] = j;
        }
        s->q_len = w;
        if (was_idle && s->n_active > 0 && s->p.batch_wait_ms > 0) {
            /* An idle engine waits a moment for the rest of a burst
             * (requests sent together arrive some ms apart), so that their
             * prompts share the first passes instead of the later ones
             * being fed in chunks beside the first one's stream. */
            struct timespec dl;
            deadline_in(&dl, s->p.batch_wait_ms);
            while (!s->stopping && pthread_cond_timedwait(&s->work_cv, &s->mu, &dl) != ETIMEDOUT) {
            }
            continue;
        }
        bool worked = false;
        for (size_t mi = 0; mi < s->n_models; mi++)
            worked |= model_step(s, &s->models[mi]);
        if (!worked && !s->stopping) {
            struct timespec ts;
            deadline_in(&ts, 200); /* wake up to expire queued deadlines */
            pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

al_status srv_sched_submit(srv_sched *s, srv_job *j, al_error *err)
{
    if (!j->model || j->n_prompt <= 0)
        return al_err(err, AL_ERR_ARG, "a job needs a model and a non-empty prompt");
    pthread_mutex_lock(&s->mu);
    if (s->q_len >= s->p.queue_cap) {
        pthread_mutex_unlock(&s->mu);
        return al_err(err, AL_ERR_LIMIT, "the server is busy: %u requests are already waiting", s->p.queue_cap);
    }
    j->t_submit = srv_now();
    s->queue[(s->q_head + s->q_len) % s->p.queue_cap] = j;
    s->q_len++;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    return AL_OK;
}

void srv_sched_get_stats(srv_sched *s, srv_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->queue_depth = s->q_len;
    out->active = s->n_active;
    out->n_models_loaded = 0;
    for (size_t i = 0; i < s->n_models; i++)
        out->n_models_loaded += s->models[i].state == MODEL_READY;
    out->prompt_tokens = s->st_prompt;
    out->generated_tokens = s->st_gen;
    out->cached_tokens = s->st_cached;
    memcpy(out->passes, s->st_passes, sizeof(out->passes));
    out->pass_tokens = s->st_pass_tokens;
    memcpy(out->pass_seconds, s->st_pass_s, sizeof(out->pass_seconds));
    out->sample_seconds = s->st_sample_s;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->gate_mu);
    out->gate_queries = s->gate_queries;
    pthread_mutex_unlock(&s->gate_mu);
}

size_t srv_sched_kv_nonzero(srv_sched *s, srv_model *m)
{
    pthread_mutex_lock(&s->mu);
    /* READY only: a loader or an evicter works on ctx without the lock */
    const size_t n = m->state == MODEL_READY && m->ctx ? al_kv_nonzero_bytes(m->ctx) : SIZE_MAX;
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool srv_sched_ready(srv_sched *s)
{
    bool ok = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_models && !ok; i++)
        ok = model_live(&s->models[i]) && s->models[i].state == MODEL_READY;
    pthread_mutex_unlock(&s->mu);
    /* the paths never change: no lock for the file system */
    for (size_t i = 0; i < s->n_models && !ok; i++) {
        struct stat stt;
        ok = model_live(&s->models[i]) && stat(s->models[i].path, &stt) == 0;
    }
    return ok;
}

/* ------------------------------------------------------------- lifecycle */

static char *default_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf"))
        n -= 5;
    return strndup(b, n);
}

/* Frees an entry's configuration strings (lock held or not yet shared). */
static void model_cfg_free(srv_model *m)
{
    free(m->name);
    free(m->path);
    free(m->chat_format);
    free(m->chat_template);
    free(m->digest);
    free(m->manifest_digest);
}

/* Fills the unused entry m from c; a name already served is refused.
 * Lock held, or the scheduler not yet started. */
static al_status model_init(srv_sched *s, srv_model *m, const srv_model_cfg *c, al_error *err)
{
    memset(m, 0, sizeof(*m));
    atomic_init(&m->gone, false);
    m->path = dup_str(c->path);
    m->name = c->name ? dup_str(c->name) : c->path ? default_name(c->path) : NULL;
    m->chat_format = dup_str(c->chat_format);
    m->chat_template = dup_str(c->chat_template);
    m->digest = dup_str(c->digest);
    m->manifest_digest = dup_str(c->manifest_digest);
    if (!m->path || !m->name || (c->chat_format && !m->chat_format) || (c->chat_template && !m->chat_template) ||
        (c->digest && !m->digest) || (c->manifest_digest && !m->manifest_digest)) {
        model_cfg_free(m);
        memset(m, 0, sizeof(*m));
        return al_err(err, c->path ? AL_ERR_NOMEM : AL_ERR_ARG, c->path ? "out of memory" : "a model needs a path");
    }
    for (srv_model *k = s->models; k < m; k++)
        if (model_live(k) && !strcmp(k->name, m->name)) {
            al_err(err, AL_ERR_ARG, "two models are named '%s' (use --model-name)", m->name);
            model_cfg_free(m);
            memset(m, 0, sizeof(*m));
            return AL_ERR_ARG;
        }
    return AL_OK;
}

/* Both NULL, or equal strings. */
static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

al_status srv_sched_add_model(srv_sched *s, const srv_model_cfg *c, al_error *err)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n_models;
    al_status st = AL_OK;
    /* Published again as it was (same name and blob): the old entry comes
     * back, with its loaded weights if it still has them. */
    for (size_t i = 0; i < n; i++) {
        srv_model *m = &s->models[i];
        if (atomic_load(&m->gone) && c->name && !strcmp(m->name, c->name) && same_str(m->digest, c->digest) &&
            same_str(m->manifest_digest, c->manifest_digest)) {
            atomic_store(&m->gone, false);
            /* A blob refused at rest may have been put right since (rm,
             * import, approve): it is hashed again at its next load. */
            m->refused = false;
            pthread_mutex_unlock(&s->mu);
            return AL_OK;
        }
    }
    if (n == SRV_SCHED_MAX_MODELS)
        st = al_err(err, AL_ERR_LIMIT, "the server holds %d model entries already (restart it to drop those "
                    "removed from the store)", SRV_SCHED_MAX_MODELS);
    else
        st = model_init(s, &s->models[n], c, err);
    if (st == AL_OK)
        s->n_models = n + 1; /* after the entry is whole: readers do not lock */
    pthread_mutex_unlock(&s->mu);
    return st;
}

bool srv_sched_remove_model(srv_sched *s, const char *name, const char *digest)
{
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_models && !found; i++) {
        srv_model *m = &s->models[i];
        if (atomic_load(&m->gone) || strcmp(m->name, name) || (digest && (!m->digest || strcmp(m->digest, digest))))
            continue;
        atomic_store(&m->gone, true);
        found = true;
        /* Requests already admitted keep their pin and finish; the weights
         * go with the last of them (srv_model_release). */
        if (m->refs == 0 && m->state == MODEL_READY)
            model_evict(s, m);
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

al_status srv_sched_new(const srv_sched_params *p, const srv_model_cfg *models, size_t n_models, srv_sched **out,
                        al_error *err)
{
    *out = NULL;
    if (p->n_parallel == 0 || p->n_parallel > 256 || p->n_ctx < 8 || p->n_batch < p->n_parallel + 1 ||
        p->queue_cap == 0)
        return al_err(err, AL_ERR_ARG,
                      "bad scheduler parameters (parallel 1..256, ctx >= 8, batch > parallel, queue >= 1)");
    if (n_models > SRV_SCHED_MAX_MODELS)
        return al_err(err, AL_ERR_LIMIT, "at most %d models", SRV_SCHED_MAX_MODELS);
    srv_sched *s = calloc(1, sizeof(*s));
    if (!s)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->models = calloc(SRV_SCHED_MAX_MODELS, sizeof(srv_model));
    s->queue = calloc(p->queue_cap, sizeof(srv_job *));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->model_cv, NULL);
    pthread_mutex_init(&s->gate_mu, NULL);
    if (!s->models || !s->queue) {
        srv_sched_free(s);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_models; i++) {
        al_status st = model_init(s, &s->models[i], &models[i], err);
        if (st) {
            srv_sched_free(s);
            return st;
        }
        s->n_models = i + 1;
    }
    if (pthread_create(&s->thread, NULL, sched_main, s)) {
        srv_sched_free(s);
        return al_err(err, AL_ERR_NOMEM, "cannot start the scheduler thread");
    }
    s->thread_started = true;
    *out = s;
    return AL_OK;
}

void srv_sched_free(srv_sched *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_signal(&s->work_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_lock(&s->mu);
    /* The HTTP threads are gone before this; a load still running would
     * be one that outlived them: let it end. */
    for (size_t i = 0; s->models && i < s->n_models; i++)
        while (s->models[i].state == MODEL_LOADING || s->models[i].state == MODEL_EVICTING)
            pthread_cond_wait(&s->model_cv, &s->mu);
    for (uint32_t r = 0; r < s->q_len; r++) {
        srv_job *j = s->queue[(s->q_head + r) % s->p.queue_cap];
        al_err(&j->err, AL_ERR_STATE, "the server is shutting down");
        job_finish(s, j, SRV_FINISH_ERROR);
    }
    s->q_len = 0;
    for (size_t i = 0; i < s->n_models; i++) {
        srv_model *m = &s->models[i];
        if (m->slots)
            for (uint32_t k = 0; k < m->n_slots; k++)
                if (m->slots[k].job) {
                    al_err(&m->slots[k].job->err, AL_ERR_STATE, "the server is shutting down");
                    slot_finish(s, &m->slots[k], SRV_FINISH_ERROR);
                }
        model_unload(m);
        m->state = MODEL_UNLOADED;
        model_cfg_free(m);
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->model_cv);
    pthread_mutex_destroy(&s->gate_mu);
    free(s->models);
    free(s->queue);
    free(s);
}
