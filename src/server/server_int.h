/* server_int.h - what server.c and the api*.c files share (not a public API). */
#ifndef AL_SERVER_SERVER_INT_H
#define AL_SERVER_SERVER_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "server/metrics.h"
#include "server/sched.h"
#include "server/server.h"

typedef enum srv_route_id {
    SRV_R_HEALTH, SRV_R_READY, SRV_R_METRICS, SRV_R_ROOT, SRV_R_MODELS, SRV_R_MODEL,
    SRV_R_CHAT, SRV_R_COMPLETIONS, SRV_R_EMBEDDINGS,
    SRV_R_OLLAMA_CHAT, SRV_R_OLLAMA_GENERATE, SRV_R_OLLAMA_TAGS, SRV_R_OLLAMA_SHOW,
    SRV_R_OLLAMA_PS, SRV_R_OLLAMA_VERSION, SRV_R_OLLAMA_EMBED, SRV_R_OLLAMA_EMBEDDINGS, SRV_R_RESPONSES,
    SRV_R_RERANK,
} srv_route_id;

typedef struct srv_route {
    const char *method;
    const char *path;
    srv_route_id id;
    bool ollama;
    bool prefix; /* path is a prefix; the rest goes to path_arg */
} srv_route;

/* A parsed chat template shared by the requests of one model (api_prompt.c). */
typedef struct srv_chat_tmpl srv_chat_tmpl;

struct al_server {
    al_server_config cfg;
    int fds[AL_SERVER_MAX_LISTEN];
    uint16_t ports[AL_SERVER_MAX_LISTEN];
    size_t n_fds;
    struct MHD_Daemon *daemons[AL_SERVER_MAX_LISTEN];
    srv_sched *sched;
    srv_metrics *metrics;
    int64_t created;
    atomic_bool stopping;
    atomic_ullong next_id;
    pthread_mutex_t tmpl_mu;
    srv_chat_tmpl **tmpls;    /* (n_models) parsed once, see api_prompt.c; guarded by tmpl_mu */
    /* connection admission (server.c) */
    pthread_mutex_t conn_mu;  /* guards the list; held by the CLOSED notification */
    struct srv_conn *conns;   /* open connections */
    unsigned n_live;          /* of them, not cut */
    pthread_t reaper;
    bool reaper_started;
    atomic_uint_fast64_t n_cut, n_evicted, n_busy; /* counters for /metrics-free logs */
};

/* One HTTP request, from its first header to the completion callback. */
typedef struct srv_req {
    al_server *srv;
    struct MHD_Connection *conn;
    const srv_route *route;
    bool ollama;              /* answer errors in Ollama's shape */
    char endpoint[64];        /* metrics label */
    char method[16];
    char path_arg[256];       /* e.g. the model id of /v1/models/{id} */
    char *body;               /* owned */
    size_t len, cap;
    bool too_big;
    json_t *json;             /* parsed body (owned) */
    int status;               /* answered with this status; 0: not yet */
    double t_start;
    /* for the authorisation and audit hooks */
    char model[128];          /* the served model's name */
    char digest[65];          /* its GGUF blob digest (store models), else "" */
    int64_t prompt_tokens, completion_tokens;
    char actor[24];           /* API key id, or "anonymous" */
    char client[64];          /* client address */
    char key_models[256];     /* the key's model globs ("" = all) */
    int retry_after_s;        /* Retry-After for a 429/503; 0: 1 s */
    char *prompt_text;        /* owned, zeroed on free; only kept when the audit records content */
    size_t prompt_len;
    char *completion_text;    /* idem */
    size_t completion_len;
    char cors_origin[256];    /* Access-Control-Allow-Origin to send ("" none; see cors_check) */
    int64_t quota_reserved;   /* tokens reserved against the key's tpm (srv_quota_reserve) */
} srv_req;

/* server.c: before a generation job is submitted, reserves n_prompt + up to
 * *max_tokens tokens against the request's API key's tokens per minute;
 * lowers *max_tokens to what is left. false: not even n_prompt + 1 left
 * (r->retry_after_s and msg set: answer 429). The reservation is settled
 * (unused tokens given back) when the request completes. */
bool srv_quota_reserve(srv_req *r, int32_t n_prompt, int32_t *max_tokens, char *msg, size_t cap);

/* Adds the request's CORS headers (if its origin is allowed) to resp. */
void srv_add_cors(const srv_req *r, struct MHD_Response *resp);

/* Keeps a copy of the request's prompt / completion for the audit log when
 * its content mode asks for it (no-op otherwise). */
void srv_req_keep_prompt(srv_req *r, const char *text, size_t len);
void srv_req_keep_completion(srv_req *r, const char *text, size_t len);
/* True when the request's key may see model name (for model lists). */
bool srv_req_model_visible(const srv_req *r, const char *name);

int srv_reply(srv_req *r, int status, const char *ctype, char *body, size_t len);
int srv_reply_json(srv_req *r, int status, json_t *obj);
int srv_reply_error(srv_req *r, int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
bool srv_client_alive(void *req);

/* api.c: answers a routed, size-checked request (body parsed for POST). */
int srv_api_dispatch(srv_req *r);
/* api_prompt.c: frees srv->tmpls once no request runs. */
void srv_api_free(al_server *srv);

#endif
