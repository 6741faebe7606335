/* metrics.c - fixed-size counter table and histograms behind a mutex. */
#include "server/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 128
#define N_BUCKETS 14

static const double k_buckets[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1, 2.5, 5, 10, 30, 60, 120};
static const char *const k_hist_name[SRV_H_COUNT] = {
    "airlock_time_to_first_token_seconds",
    "airlock_time_per_output_token_seconds",
    "airlock_request_duration_seconds",
};
static const char *const k_hist_help[SRV_H_COUNT] = {
    "Time from request arrival to the first generated token.",
    "Mean time per generated token after the first, per request.",
    "Time from request arrival to its end.",
};

typedef struct series {
    char endpoint[64];
    int status;
    uint64_t n;
} series;

typedef struct hist {
    uint64_t bucket[N_BUCKETS];
    uint64_t count;
    double sum;
} hist;

struct srv_metrics {
    pthread_mutex_t mu;
    series req[MAX_SERIES];
    size_t n_req;
    uint64_t req_other;  /* requests beyond MAX_SERIES distinct labels */
    hist h[SRV_H_COUNT];
};

srv_metrics *srv_metrics_new(void)
{
    srv_metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void srv_metrics_free(srv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void srv_metrics_request(srv_metrics *m, const char *endpoint, int status)
{
    pthread_mutex_lock(&m->mu);
    size_t i;
    for (i = 0; i < m->n_req; i++)
        if (m->req[i].status == status && !strncmp(m->req[i].endpoint, endpoint, sizeof(m->req[i].endpoint) - 1))
            break;
    if (i == m->n_req) {
        if (m->n_req == MAX_SERIES) {
            m->req_other++;
            pthread_mutex_unlock(&m->mu);
            return;
        }
        snprintf(m->req[i].endpoint, sizeof(m->req[i].endpoint), "%s", endpoint);
        m->req[i].status = status;
        m->n_req++;
    }
    m->req[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_observe(srv_metrics *m, srv_hist_id id, double v)
{
    if (id < 0 || id >= SRV_H_COUNT || !(v >= 0))
        return;
    pthread_mutex_lock(&m->mu);
    hist *h = &m->h[id];
    for (int b = 0; b < N_BUCKETS; b++)
        if (v <= k_buckets[b])
            h->bucket[b]++;
    h->count++;
    h->sum += v;
    pthread_mutex_unlock(&m->mu);
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

char *srv_metrics_render(srv_metrics *m, const srv_metrics_gauges *g, size_t *len)
{
    sbuf b = {.cap = 8192};
    b.p = malloc(b.cap);
    if (!b.p)
        return NULL;
    pthread_mutex_lock(&m->mu);
    sb_printf(&b, "# HELP airlock_requests_total HTTP requests by endpoint and status.\n"
                  "# TYPE airlock_requests_total counter\n");
    for (size_t i = 0; i < m->n_req; i++)
        sb_printf(&b, "airlock_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->req[i].endpoint,
                  m->req[i].status, (unsigned long long)m->req[i].n);
    if (m->req_other)
        sb_printf(&b, "airlock_requests_total{endpoint=\"other\",status=\"other\"} %llu\n",
                  (unsigned long long)m->req_other);
    for (int h = 0; h < SRV_H_COUNT; h++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s histogram\n", k_hist_name[h], k_hist_help[h], k_hist_name[h]);
        for (int k = 0; k < N_BUCKETS; k++)
            sb_printf(&b, "%s_bucket{le=\"%g\"} %llu\n", k_hist_name[h], k_buckets[k],
                      (unsigned long long)m->h[h].bucket[k]);
        sb_printf(&b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", k_hist_name[h],
                  (unsigned long long)m->h[h].count, k_hist_name[h], m->h[h].sum, k_hist_name[h],
                  (unsigned long long)m->h[h].count);
    }
    pthread_mutex_unlock(&m->mu);
    sb_printf(&b,
              "# HELP airlock_prompt_tokens_total Prompt tokens admitted.\n# TYPE airlock_prompt_tokens_total counter\n"
              "airlock_prompt_tokens_total %llu\n"
              "# HELP airlock_prompt_cache_tokens_total Prompt tokens reused from the prefix cache.\n"
              "# TYPE airlock_prompt_cache_tokens_total counter\nairlock_prompt_cache_tokens_total %llu\n"
              "# HELP airlock_generated_tokens_total Tokens generated.\n"
              "# TYPE airlock_generated_tokens_total counter\nairlock_generated_tokens_total %llu\n"
              "# HELP airlock_queue_depth Requests waiting for a slot.\n# TYPE airlock_queue_depth gauge\n"
              "airlock_queue_depth %u\n"
              "# HELP airlock_active_sequences Sequences being processed.\n"
              "# TYPE airlock_active_sequences gauge\nairlock_active_sequences %u\n"
              "# HELP airlock_models_loaded Models in memory.\n# TYPE airlock_models_loaded gauge\n"
              "airlock_models_loaded %u\n",
              (unsigned long long)g->prompt_tokens, (unsigned long long)g->cached_tokens,
              (unsigned long long)g->generated_tokens, g->queue_depth, g->active, g->models_loaded);
    sb_printf(&b, "# HELP airlock_forward_passes_total Forward passes by what they held: prompt only (prefill), "
                  "decoding tokens only (decode), both with at most --prefill-chunk prompt tokens (mixed), or "
                  "both with more prompt because more sequences waited than decoded (catch_up).\n"
                  "# TYPE airlock_forward_passes_total counter\n");
    for (int k = 0; k < g->n_pass_kinds; k++)
        sb_printf(&b, "airlock_forward_passes_total{kind=\"%s\"} %llu\n", g->pass_kind[k],
                  (unsigned long long)g->passes[k]);
    sb_printf(&b, "# HELP airlock_forward_pass_tokens_total Tokens of all forward passes.\n"
                  "# TYPE airlock_forward_pass_tokens_total counter\nairlock_forward_pass_tokens_total %llu\n",
              (unsigned long long)g->pass_tokens);
    if (g->pass_seconds) {
        sb_printf(&b, "# HELP airlock_forward_pass_seconds_total Wall time of the forward passes by kind (the engine's "
                      "share of a step; a decode step's inter-token latency is this plus sampling and streaming).\n"
                      "# TYPE airlock_forward_pass_seconds_total counter\n");
        for (int k = 0; k < g->n_pass_kinds; k++)
            sb_printf(&b, "airlock_forward_pass_seconds_total{kind=\"%s\"} %.6f\n", g->pass_kind[k],
                      g->pass_seconds[k]);
    }
    sb_printf(&b, "# HELP airlock_sampling_seconds_total Wall time sampling the next tokens after the passes "
                  "(sampler, grammar, logprobs, detokenizer, stop strings).\n"
                  "# TYPE airlock_sampling_seconds_total counter\nairlock_sampling_seconds_total %.6f\n",
              g->sample_seconds);
    sb_printf(&b, "# HELP airlock_store_gate_queries_total Catalogue queries checking that a store model is still "
                  "published (requests answered by the cache, which any catalogue change clears, are not counted).\n"
                  "# TYPE airlock_store_gate_queries_total counter\nairlock_store_gate_queries_total %llu\n",
              (unsigned long long)g->gate_queries);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
