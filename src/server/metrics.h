/*
 * metrics.h - the server's counters and histograms, rendered in the
 * Prometheus text exposition format for GET /metrics. Thread-safe.
 */
#ifndef AL_SERVER_METRICS_H
#define AL_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv_metrics srv_metrics;

typedef enum srv_hist_id {
    SRV_H_TTFT = 0,     /* time to first token, seconds */
    SRV_H_TPOT,         /* time per output token after the first, seconds */
    SRV_H_DURATION,     /* whole request, seconds */
    SRV_H_COUNT
} srv_hist_id;

/* NULL on allocation failure. */
srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m);

/* Counts one finished request of an endpoint ("/v1/chat/completions"; at
 * most 63 bytes kept) with its HTTP status. */
void srv_metrics_request(srv_metrics *m, const char *endpoint, int status);
void srv_metrics_observe(srv_metrics *m, srv_hist_id h, double seconds);

typedef struct srv_metrics_gauges {
    uint32_t queue_depth, active, models_loaded;
    uint64_t prompt_tokens, generated_tokens, cached_tokens;
    const char *const *pass_kind; /* n_pass_kinds names (labels of passes[]) */
    const uint64_t *passes;       /* forward passes by kind */
    int n_pass_kinds;
    uint64_t pass_tokens;         /* tokens of all passes */
    const double *pass_seconds;   /* wall time of the passes by kind (n_pass_kinds) */
    double sample_seconds;        /* wall time sampling after the passes */
    uint64_t gate_queries;        /* store gate queries (not answered by its cache) */
} srv_metrics_gauges;

/* Renders everything; returns a malloc'd NUL-terminated string (caller
 * frees) or NULL on allocation failure. */
char *srv_metrics_render(srv_metrics *m, const srv_metrics_gauges *g, size_t *len);

#endif
