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

#define AL_SPIN_JOB 20000    /* polls before a worker sleeps */
#define AL_SPIN_BARRIER 4000 /* polls before a barrier yields */

struct al_threadpool {
    int n;                 /* threads including the caller */
    pthread_t *threads;    /* (n-1) workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    void (*fn)(void *ctx, int ith, int nth);
    void *ctx;
    bool stop;
    _Alignas(64) atomic_uint gen;   /* bumped once per job */
    _Alignas(64) atomic_int n_done; /* workers finished with the job */
    _Alignas(64) atomic_int bar_count;
    atomic_uint bar_gen;
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

static void *worker_main(void *p)
{
    worker_arg wa = *(worker_arg *)p;
    free(p);
    al_threadpool *tp = wa.tp;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        for (int s = 0; g == seen && s < AL_SPIN_JOB; s++) {
            cpu_relax();
            g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&tp->mu);
            while ((g = atomic_load(&tp->gen)) == seen && !tp->stop)
                pthread_cond_wait(&tp->cv_work, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        seen = g;
        pthread_mutex_lock(&tp->mu);
        bool stop = tp->stop;
        void (*fn)(void *, int, int) = tp->fn;
        void *ctx = tp->ctx;
        pthread_mutex_unlock(&tp->mu);
        if (stop)
            return NULL;
        fn(ctx, wa.ith, tp->n);
        if (atomic_fetch_add_explicit(&tp->n_done, 1, memory_order_acq_rel) + 1 == tp->n - 1) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->cv_done);
            pthread_mutex_unlock(&tp->mu);
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
    pthread_cond_init(&tp->cv_done, NULL);
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->n_done, 0);
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

void al_threadpool_free(al_threadpool *tp)
{
    if (!tp)
        return;
    pthread_mutex_lock(&tp->mu);
    tp->stop = true;
    atomic_fetch_add(&tp->gen, 1);
    pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++)
        pthread_join(tp->threads[i - 1], NULL);
    pthread_cond_destroy(&tp->cv_work);
    pthread_cond_destroy(&tp->cv_done);
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
    pthread_mutex_lock(&tp->mu);
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store(&tp->n_done, 0);
    atomic_store(&tp->bar_count, 0);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv_work);
    pthread_mutex_unlock(&tp->mu);

    fn(ctx, 0, tp->n);

    const int want = tp->n - 1;
    for (int s = 0; s < AL_SPIN_JOB && atomic_load_explicit(&tp->n_done, memory_order_acquire) < want; s++)
        cpu_relax();
    if (atomic_load_explicit(&tp->n_done, memory_order_acquire) < want) {
        pthread_mutex_lock(&tp->mu);
        while (atomic_load(&tp->n_done) < want)
            pthread_cond_wait(&tp->cv_done, &tp->mu);
        pthread_mutex_unlock(&tp->mu);
    }
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
        if (s < AL_SPIN_BARRIER)
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
