/* threadpool.c - a persistent pool of worker threads for the matmuls and
 * attention: one job at a time, every thread runs the same function on its
 * own share; workers spin briefly, then sleep on a condition variable. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/matmul.h"

#define AL_SPIN_JOB 3000     /* polls (~100 us) before an idle worker sleeps */
#define AL_SPIN_WAIT 20000   /* polls before a waiting thread yields its core */

/* The job word: generation (23 bits) | all-threads flag (1) | chunk count
 * (20) | next chunk to claim (20). A worker claims a chunk with one CAS
 * that also checks the generation, so a worker that wakes late can never
 * take a chunk of a job it did not read. */
#define W_N_SHIFT 20
#define W_ALL_SHIFT 40
#define W_GEN_SHIFT 41
#define W_MASK20 ((1ull << 20) - 1)
#define AL_MAX_CHUNKS ((int64_t)W_MASK20)

struct al_threadpool {
    int n;                 /* threads including the caller */
    pthread_t *threads;    /* (n-1) workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    _Alignas(64) _Atomic uint64_t word; /* see above */
    atomic_uintptr_t fn_chunk;        /* void (*)(void *, int64_t, int) */
    atomic_uintptr_t fn_all;          /* void (*)(void *, int, int) */
    atomic_uintptr_t ctx;
    atomic_bool stop;
    _Alignas(64) atomic_llong n_done; /* chunks (or workers) finished */
    _Alignas(64) atomic_int sleepers;
    _Alignas(64) atomic_int bar_count;
    atomic_uint bar_gen;
    unsigned gen;                     /* caller side: last generation */
};

typedef struct worker_arg {
    al_threadpool *tp;
    int ith;
} worker_arg;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline uint64_t w_gen(uint64_t w)
{
    return w >> W_GEN_SHIFT;
}

/* Claims and runs chunks of the job whose word was `w` until none is left
 * or the job changed. */
static void run_claimed(al_threadpool *tp, uint64_t w, int ith)
{
    void (*fn)(void *, int64_t, int) = (void (*)(void *, int64_t, int))atomic_load_explicit(&tp->fn_chunk,
                                                                                            memory_order_relaxed);
    void *ctx = (void *)atomic_load_explicit(&tp->ctx, memory_order_relaxed);
    const uint64_t n = (w >> W_N_SHIFT) & W_MASK20, gen = w_gen(w);
    for (;;) {
        const uint64_t next = w & W_MASK20;
        /* w may be a later job's word (the caller moves on as soon as the
         * last chunk is done): never claim from it with this job's fn */
        if (next >= n || w_gen(w) != gen || ((w >> W_N_SHIFT) & W_MASK20) != n)
            return;
        if (!atomic_compare_exchange_weak_explicit(&tp->word, &w, w + 1, memory_order_acq_rel,
                                                   memory_order_acquire)) {
            /* w reloaded: stop if another job (or none) is current */
            if (w_gen(w) != gen || ((w >> W_N_SHIFT) & W_MASK20) != n)
                return;
            continue;
        }
        fn(ctx, (int64_t)next, ith);
        atomic_fetch_add_explicit(&tp->n_done, 1, memory_order_acq_rel);
        w = atomic_load_explicit(&tp->word, memory_order_acquire);
    }
}

static void *worker_main(void *p)
{
    worker_arg wa = *(worker_arg *)p;
    free(p);
    al_threadpool *tp = wa.tp;
    uint64_t seen = 0; /* the generation at creation, before any job */
    for (;;) {
        uint64_t w = atomic_load_explicit(&tp->word, memory_order_acquire);
        for (int s = 0; w_gen(w) == seen && s < AL_SPIN_JOB; s++) {
            cpu_relax();
            w = atomic_load_explicit(&tp->word, memory_order_acquire);
        }
        if (w_gen(w) == seen) {
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while (w_gen(w = atomic_load(&tp->word)) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->cv_work, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop))
            return NULL;
        seen = w_gen(w);
        if ((w >> W_ALL_SHIFT) & 1) {
            void (*fn)(void *, int, int) = (void (*)(void *, int, int))atomic_load(&tp->fn_all);
            fn((void *)atomic_load(&tp->ctx), wa.ith, tp->n);
            atomic_fetch_add_explicit(&tp->n_done, 1, memory_order_acq_rel);
        } else {
            run_claimed(tp, w, wa.ith);
        }
    }
}

al_threadpool *al_threadpool_new(int n_threads)
{
    if (n_threads < 1 || n_threads > 1024)
        return NULL;
    al_threadpool *tp = calloc(1, sizeof(*tp));
    if (!tp)
        return NULL;
    tp->n = n_threads;
    if (n_threads > 1) {
        tp->threads = calloc((size_t)n_threads - 1, sizeof(pthread_t));
        if (!tp->threads) {
            free(tp);
            return NULL;
        }
    }
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv_work, NULL);
    atomic_init(&tp->word, 0);
    atomic_init(&tp->fn_chunk, 0);
    atomic_init(&tp->fn_all, 0);
    atomic_init(&tp->ctx, 0);
    atomic_init(&tp->stop, false);
    atomic_init(&tp->n_done, 0);
    atomic_init(&tp->sleepers, 0);
    atomic_init(&tp->bar_count, 0);
    atomic_init(&tp->bar_gen, 0);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof(*wa));
        if (wa) {
            wa->tp = tp;
            wa->ith = i;
        }
        if (!wa || pthread_create(&tp->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            tp->n = i; /* workers 1..i-1 exist */
            al_threadpool_free(tp);
            return NULL;
        }
    }
    return tp;
}

/* Publishes a new job word and wakes sleeping workers. */
static void publish(al_threadpool *tp, bool all, uint64_t n_chunks)
{
    tp->gen = (tp->gen + 1) & ((1u << 23) - 1);
    atomic_store_explicit(&tp->n_done, 0, memory_order_relaxed);
    uint64_t w = ((uint64_t)tp->gen << W_GEN_SHIFT) | ((uint64_t)all << W_ALL_SHIFT) | (n_chunks << W_N_SHIFT);
    atomic_store(&tp->word, w); /* seq_cst: pairs with the sleepers check */
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->cv_work);
        pthread_mutex_unlock(&tp->mu);
    }
}

static void wait_done(al_threadpool *tp, int64_t want)
{
    for (int s = 0; atomic_load_explicit(&tp->n_done, memory_order_acquire) < want; s++) {
        if (s < AL_SPIN_WAIT) {
            cpu_relax();
        } else {
            sched_yield();
        }
    }
}

void al_threadpool_free(al_threadpool *tp)
{
    if (!tp)
        return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, true);
    tp->gen = (tp->gen + 1) & ((1u << 23) - 1);
    atomic_store(&tp->word, (uint64_t)tp->gen << W_GEN_SHIFT);
    pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++)
        pthread_join(tp->threads[i - 1], NULL);
    pthread_cond_destroy(&tp->cv_work);
    pthread_mutex_destroy(&tp->mu);
    free(tp->threads);
    free(tp);
}

int al_threadpool_size(const al_threadpool *tp)
{
    return tp ? tp->n : 1;
}

void al_threadpool_run(al_threadpool *tp, void (*fn)(void *ctx, int ith, int nth), void *ctx)
{
    if (!tp || tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    atomic_store_explicit(&tp->fn_all, (uintptr_t)fn, memory_order_relaxed);
    atomic_store_explicit(&tp->ctx, (uintptr_t)ctx, memory_order_relaxed);
    atomic_store(&tp->bar_count, 0);
    publish(tp, true, 0);
    fn(ctx, 0, tp->n);
    wait_done(tp, tp->n - 1);
}

void al_threadpool_for(al_threadpool *tp, int64_t n_chunks, void (*fn)(void *ctx, int64_t chunk, int ith),
                       void *ctx)
{
    if (n_chunks <= 0)
        return;
    if (!tp || tp->n == 1 || n_chunks == 1 || n_chunks > AL_MAX_CHUNKS) {
        for (int64_t c = 0; c < n_chunks; c++)
            fn(ctx, c, 0);
        return;
    }
    atomic_store_explicit(&tp->fn_chunk, (uintptr_t)fn, memory_order_relaxed);
    atomic_store_explicit(&tp->ctx, (uintptr_t)ctx, memory_order_relaxed);
    publish(tp, false, (uint64_t)n_chunks);
    run_claimed(tp, atomic_load_explicit(&tp->word, memory_order_acquire), 0);
    wait_done(tp, n_chunks);
}

void al_threadpool_barrier(al_threadpool *tp)
{
    if (!tp || tp->n == 1)
        return;
    unsigned g = atomic_load_explicit(&tp->bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&tp->bar_count, 1, memory_order_acq_rel) + 1 == tp->n) {
        atomic_store_explicit(&tp->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&tp->bar_gen, 1, memory_order_release);
        return;
    }
    for (int s = 0; atomic_load_explicit(&tp->bar_gen, memory_order_acquire) == g; s++) {
        if (s < AL_SPIN_WAIT)
            cpu_relax();
        else
            sched_yield();
    }
}

/* Distinct (physical id, core id) pairs in /proc/cpuinfo; falls back to
 * the online CPU count. */
int al_physical_cores(void)
{
    int fallback = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (fallback < 1)
        fallback = 1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return fallback;
    enum { MAXC = 1024 };
    static _Thread_local long seen[MAXC];
    int n_seen = 0;
    long phys = 0, core = -1;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "physical id", 11) == 0) {
            const char *c = strchr(line, ':');
            phys = c ? strtol(c + 1, NULL, 10) : 0;
        } else if (strncmp(line, "core id", 7) == 0) {
            const char *c = strchr(line, ':');
            core = c ? strtol(c + 1, NULL, 10) : -1;
            if (core < 0)
                continue;
            long key = phys * 65536 + core;
            bool dup = false;
            for (int i = 0; i < n_seen; i++)
                dup = dup || seen[i] == key;
            if (!dup && n_seen < MAXC)
                seen[n_seen++] = key;
        }
    }
    fclose(f);
    if (n_seen < 1 || n_seen > fallback)
        return fallback;
    return n_seen;
}
