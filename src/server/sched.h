/*
 * sched.h - the server's scheduler: configured models (loaded on first use,
 * evicted least-recently-used under a memory budget), a bounded queue of
 * jobs, and one thread that runs continuous batching over n_parallel slots
 * per model.
 *
 * Threads: HTTP threads create jobs, submit them and read their output;
 * the scheduler thread alone touches contexts, samplers and slots of READY
 * models, and runs forward passes and sampling without the lock. The
 * scheduler's mutex guards the queue, the models' states and pins, and
 * every job field below "shared" (read through srv_job_wait /
 * srv_job_view_take); it is never held across slow work. A model is
 * loaded (re-hashed, mapped, its context made) and evicted by the HTTP
 * thread that needs it, outside the lock, while other models' streams keep
 * stepping; other requests for a model being loaded wait for it
 * (docs/server.md, "Scheduler locking").
 */
#ifndef AL_SERVER_SCHED_H
#define AL_SERVER_SCHED_H

#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

/* A compiled grammar (sampling/grammar.h, which only the server includes). */
typedef struct al_grammar al_grammar;

typedef struct srv_sched srv_sched;

/* Model entries a scheduler holds, those added while it runs and those
 * removed included (an entry is never reused for another model). */
#define SRV_SCHED_MAX_MODELS 256
typedef struct srv_model srv_model;

typedef struct srv_model_cfg {
    const char *path;        /* GGUF file */
    const char *name;        /* name clients use; NULL: file name without .gguf */
    const char *chat_format; /* built-in template name, or NULL: the model's own */
    const char *chat_template; /* template source overriding the model's (--chat-template), or NULL */
    const char *digest;      /* sha256 (hex) of the GGUF blob, re-hashed at every load
                                (a mismatch refuses the model); NULL: not checked */
    const char *manifest_digest; /* OCI manifest digest of a store model, or NULL */
} srv_model_cfg;

/* Called before each use of a model (NULL: none): a non-AL_OK status
 * refuses the request with err (e.g. the model is no longer published).
 * Never called under the scheduler's lock; calls are serialised. */
typedef al_status (*srv_model_gate_fn)(void *user, const char *name, const char *digest, al_error *err);
/* The version of what the gate reads (e.g. the store catalogue's): while
 * it stays the same, a pass of the gate is reused without calling it. A
 * non-AL_OK status, or no such function, means every use asks the gate. */
typedef al_status (*srv_gate_version_fn)(void *user, uint64_t *version);

typedef struct srv_sched_params {
    uint32_t n_parallel;     /* slots (sequences) per model */
    uint32_t n_ctx;          /* positions per slot */
    uint32_t n_batch;        /* tokens per forward pass (decode + prefill chunk) */
    uint32_t n_prefill_busy; /* prompt tokens per pass while others decode (unless
                                waiting_ratio catches up); 0: n_batch */
    float waiting_ratio;     /* > 0: while more than this many sequences per decoding
                                one wait for their prompt, passes fill n_batch with
                                prompt regardless of n_prefill_busy; 0: never */
    uint32_t batch_wait_ms;  /* an idle engine given a job waits this long for more before
                                its first pass (0: not at all) */
    int n_threads;           /* 0: engine default */
    uint32_t queue_cap;      /* jobs waiting for a slot, at most */
    uint64_t memory_budget;  /* bytes of models + KV caches; 0: unlimited */
    bool prefix_cache;       /* keep a finished request's KV for prefix reuse; false:
                                zero its slot's KV (data hygiene) */
    srv_model_gate_fn gate;  /* may be NULL */
    srv_gate_version_fn gate_version; /* may be NULL: the gate's answers are not cached */
    void *gate_user;
} srv_sched_params;

typedef enum srv_job_kind { SRV_JOB_GENERATE = 0, SRV_JOB_EMBED = 1 } srv_job_kind;

typedef enum srv_finish {
    SRV_FINISH_NONE = 0,     /* still running */
    SRV_FINISH_STOP,         /* end-of-generation token or a stop string */
    SRV_FINISH_LENGTH,       /* max_tokens or the context is full */
    SRV_FINISH_ERROR,        /* err holds why */
    SRV_FINISH_CANCELLED,    /* the client went away */
    SRV_FINISH_TIMEOUT,      /* the request ran past its deadline */
} srv_finish;

#define SRV_MAX_TOP_LOGPROBS AL_MAX_TOP_LOGPROBS

/* One generated token, for logprobs (filled by the job's al_gen). */
typedef al_token_logprobs srv_tok_info;

typedef struct srv_job {
    /* ---- input: set before srv_sched_submit, read-only afterwards */
    srv_model *model;
    srv_job_kind kind;
    int32_t *prompt;         /* owned by the job */
    int32_t n_prompt;
    int32_t max_tokens;      /* > 0 */
    al_sampler_params sp;
    char **stops;            /* owned by the job */
    size_t n_stops;
    bool render_special;     /* control tokens go into text as written (tool-call and
                                harmony markers that the API side parses) */
    struct srv_job *prompt_from; /* borrowed, may be NULL: a job of the same request with the
                                same prompt (choice 0 of n); this one waits until that one's
                                prompt is computed and copies its KV instead of computing it.
                                The caller keeps it alive until this job has finished. */
    int32_t *bias_tok;       /* owned: logit_bias token ids (n_bias) */
    float *bias_val;         /* owned: added to those tokens' logits (-INFINITY: banned) */
    size_t n_bias;
    al_grammar *grammar;     /* owned reference (al_grammar_ref); constrains the output, or NULL */
    int32_t *grammar_special; /* owned: control tokens whose text the grammar may match (markers
                                such as [TOOL_CALLS]; only with render_special), or NULL */
    size_t n_grammar_special;
    bool want_logprobs;
    int32_t top_logprobs;    /* 0..SRV_MAX_TOP_LOGPROBS */
    double deadline;         /* monotonic seconds; 0: none */
    atomic_bool cancel;      /* set by the HTTP side when the client is gone */

    /* ---- shared (scheduler mutex) */
    pthread_cond_t cv;       /* signalled on every change below */
    char *text;              /* generated text, stop strings removed */
    size_t text_len, text_cap;
    srv_tok_info *toks;      /* when want_logprobs: one per generated token */
    size_t n_toks, toks_cap;
    int32_t n_gen;           /* tokens generated */
    int32_t n_cached;        /* prompt tokens reused from the prefix cache */
    float *embedding;        /* SRV_JOB_EMBED: n_embd floats, L2-normalised */
    int32_t n_embd;
    srv_finish finish;
    al_error err;
    double t_submit, t_start, t_first, t_done; /* monotonic seconds */
} srv_job;

/* Monotonic seconds. */
double srv_now(void);

/* Creates the scheduler and starts its thread. models[] is copied; there
 * may be none yet (srv_sched_add_model adds them). */
al_status srv_sched_new(const srv_sched_params *p, const srv_model_cfg *models, size_t n_models,
                        srv_sched **out, al_error *err);
/* Stops the thread, fails every job still queued or running, frees all. */
void srv_sched_free(srv_sched *s);

/* Entries, removed ones included (srv_model_status.gone); the count only
 * grows and an entry's pointer stays valid until srv_sched_free. Neither
 * needs the lock. */
size_t srv_sched_n_models(const srv_sched *s);
srv_model *srv_sched_model_at(srv_sched *s, size_t i);

/* Hot reload (a store model published or removed while serving). Thread
 * safe. add: serves c (copied) from now on; a name already served is
 * AL_ERR_ARG, a full table AL_ERR_LIMIT; an entry removed earlier with the
 * same name and digests is served again (its weights kept if still loaded).
 * remove: the model named name (with blob digest, when not NULL) is no
 * longer found or listed and new uses fail with AL_ERR_NOT_FOUND; requests
 * already holding it (srv_model_acquire) finish normally, and its weights
 * are freed when the last one releases it. Returns false when no served
 * model matched. */
al_status srv_sched_add_model(srv_sched *s, const srv_model_cfg *c, al_error *err);
bool srv_sched_remove_model(srv_sched *s, const char *name, const char *digest);
/* By name ("name:tag"; "name" also finds "name:latest"), or pinned as
 * "name@sha256:<hex>" (the OCI manifest digest or the GGUF blob digest).
 * NULL when no served model matches (removed ones are skipped). */
srv_model *srv_sched_find(srv_sched *s, const char *name);

typedef struct srv_model_status {
    const char *name;        /* static for the scheduler's life */
    const char *path;
    const char *chat_format;
    const char *chat_template; /* override source, or NULL */
    const char *digest;          /* GGUF blob sha256, or NULL */
    const char *manifest_digest; /* OCI manifest digest, or NULL */
    bool refused;                /* failed its integrity check: never served */
    bool gone;                   /* removed from the store while serving (srv_sched_remove_model) */
    bool loaded;
    bool packing;            /* loaded, its weights still being packed (al_model_packing) */
    uint64_t bytes;          /* estimate: file + KV cache */
    double last_used;        /* wall-clock seconds (time(NULL)) */
    al_model_info info;      /* valid when loaded or once loaded before */
    bool info_valid;
} srv_model_status;
void srv_model_get_status(srv_sched *s, srv_model *m, srv_model_status *out);

/* Loads the model if needed (evicting idle ones to fit the budget) and
 * pins it until srv_model_release. *out stays valid while pinned. */
al_status srv_model_acquire(srv_sched *s, srv_model *m, const al_model **out, al_error *err);
void srv_model_release(srv_sched *s, srv_model *m);
/* The gate for one use of m (srv_model_acquire calls it): its cached pass
 * while the gate's version and the invalidation epoch are unchanged, else
 * the gate itself. AL_OK when there is no gate. Thread-safe. */
al_status srv_gate_check(srv_sched *s, srv_model *m, al_error *err);
/* Forgets every cached pass of the gate: the next use of each model asks
 * the gate again (e.g. after the catalogue was reloaded). Thread-safe. */
void srv_sched_gate_invalidate(srv_sched *s);
uint32_t srv_sched_n_ctx(const srv_sched *s);

/* Jobs. srv_job_new returns a zeroed job (NULL on OOM); free with
 * srv_job_free once it is finished or was never submitted. */
srv_job *srv_job_new(void);
void srv_job_free(srv_job *j);

/* Queues a job. AL_ERR_LIMIT when the queue is full (the caller answers
 * 429); the job is then not owned by the scheduler. */
al_status srv_sched_submit(srv_sched *s, srv_job *j, al_error *err);

/* Waits until the job has more than text_len bytes / n_toks entries, or
 * has finished, or timeout_ms passes. Returns true when something changed. */
bool srv_job_wait(srv_sched *s, srv_job *j, size_t text_len, size_t n_toks, int timeout_ms);
/* Copies out text [from, text_len) (malloc'd, caller frees) and the
 * finish state under the lock. */
typedef struct srv_job_view {
    char *text;              /* new text since `from`, NUL-terminated; caller frees */
    size_t n_text;
    size_t text_end;         /* the job's text_len at the time of the copy */
    srv_tok_info *toks;      /* new token infos since `tok_from`; caller frees */
    size_t n_toks_new;
    size_t toks_end;
    srv_finish finish;
    int32_t n_gen, n_cached;
    double t_first;
} srv_job_view;
bool srv_job_view_take(srv_sched *s, srv_job *j, size_t from, size_t tok_from, srv_job_view *v);
/* Asks a job to stop and waits until the scheduler has let go of it. */
void srv_job_cancel_wait(srv_sched *s, srv_job *j);
/* Waits until the job finishes (or its client goes away: alive() false). */
void srv_job_wait_done(srv_sched *s, srv_job *j, bool (*alive)(void *), void *arg);

/* What a forward pass held: prompt only, decoding tokens only, both
 * (mixed: at most n_prefill_busy prompt tokens, or any number when that is
 * 0), or both with more prompt than n_prefill_busy because more sequences
 * waited than decoded (catch-up, waiting_ratio). */
typedef enum srv_pass_kind {
    SRV_PASS_PREFILL = 0,
    SRV_PASS_DECODE,
    SRV_PASS_MIXED,
    SRV_PASS_CATCH_UP,
    SRV_PASS_KINDS
} srv_pass_kind;
extern const char *const srv_pass_kind_name[SRV_PASS_KINDS];

/* Tokens the next pass may hold in all, with n_dec sequences decoding (one
 * token each) and n_wait sequences waiting for (the rest of) their prompt;
 * *catch_up tells whether the waiting_ratio rule lifted n_prefill_busy. */
int32_t srv_pass_budget(const srv_sched_params *p, int32_t n_dec, uint32_t n_wait, bool *catch_up);

typedef struct srv_sched_stats {
    uint32_t queue_depth;
    uint32_t active;
    uint32_t n_models_loaded;
    uint64_t prompt_tokens, generated_tokens, cached_tokens;
    uint64_t passes[SRV_PASS_KINDS]; /* forward passes by kind */
    uint64_t pass_tokens;            /* tokens of all passes */
    double pass_seconds[SRV_PASS_KINDS]; /* wall time of the passes (al_decode) by kind */
    double sample_seconds;           /* wall time sampling the passes' logits */
    uint64_t gate_queries;           /* times the gate itself ran (not its cache) */
} srv_sched_stats;
void srv_sched_get_stats(srv_sched *s, srv_sched_stats *out);
/* Bytes of the model's KV cache that are not zero, read under the lock
 * (data-hygiene tests: with prefix_cache off, 0 once no job is running);
 * SIZE_MAX when the model has no context (not loaded, or being loaded or evicted). */
size_t srv_sched_kv_nonzero(srv_sched *s, srv_model *m);
/* True when at least one model is loaded or loadable (files exist). */
bool srv_sched_ready(srv_sched *s);

#endif
