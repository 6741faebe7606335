/*
 * server.h - `airlock serve`: an OpenAI- and Ollama-compatible HTTP API
 * over the scheduler (sched.h). See docs/server.md for the endpoints.
 *
 * Start-up order matters for the sandbox: al_server_bind opens the
 * listening sockets, the caller then enters the sandbox, and
 * al_server_start starts the scheduler and the HTTP threads.
 */
#ifndef AL_SERVER_SERVER_H
#define AL_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"
#include "audit/audit.h"
#include "policy/apikey.h"
#include "server/sched.h"

#define AL_SERVER_MAX_LISTEN 8

typedef struct al_server_config {
    const srv_model_cfg *models;  /* borrowed until al_server_free */
    size_t n_models;
    const char *const *listen;    /* "ADDR:PORT" ("[::1]:8080" for IPv6); port 0 picks one */
    size_t n_listen;
    srv_sched_params sched;
    size_t max_body_bytes;        /* request body */
    size_t max_header_bytes;      /* all request headers together */
    int max_json_depth;           /* nesting of the JSON body */
    int32_t max_tokens;           /* largest max_tokens a request may ask */
    int32_t default_max_tokens;   /* when a request names none */
    unsigned conn_timeout_s;      /* idle connection (slow or stalled client) */
    unsigned request_timeout_s;   /* whole generation */
    unsigned max_connections;
    /* guarantees: borrowed until al_server_free, each may be NULL */
    al_keyring *keys;             /* API keys (no key defined: access is open) */
    al_audit *audit;              /* one record per API request */
    al_audit_content audit_content; /* what of prompts/completions reaches the log */
    const char *sandbox_json;     /* al_sandbox_report_json of the sandbox entered; NULL: none */
    bool reasoning_inline;        /* --reasoning-format inline: <think> and harmony analysis stay
                                     in content; default (false): split into reasoning_content */
    const char *const *cors_origins; /* --cors-origin: origins a browser may call from ("*": any);
                                        borrowed; none: no CORS headers, preflight refused */
    size_t n_cors_origins;
    const char *default_chat_format; /* built-in format for models without a template and
                                        without their own --chat-format, or NULL */
    /* TLS (docs/server.md): PEM texts, borrowed until al_server_free. No
     * certificate: plain HTTP. Checked by al_server_bind before it listens;
     * the *_file names only label its error messages. */
    const char *tls_cert_pem, *tls_cert_file;   /* server certificate (chain) */
    const char *tls_key_pem, *tls_key_file;     /* its private key */
    const char *tls_client_ca_pem, *tls_client_ca_file; /* NULL: no client certificate asked;
                                                           else one signed by it is required */
    /* connection admission (server.c): a connection still sending its
     * request line + headers after header_timeout_s, or its body slower
     * than body_min_rate bytes/s (after header_timeout_s of grace), is cut;
     * at most max_conn_per_ip connections per client address; beyond
     * max_connections, a new connection evicts the oldest one still sending
     * headers (or is answered 503 when none is), up to conn_reserve more */
    unsigned header_timeout_s;
    unsigned body_min_rate;
    unsigned max_conn_per_ip;
    unsigned conn_reserve;
} al_server_config;

/* Defaults documented in `airlock serve --help`. */
al_server_config al_server_default_config(void);

typedef struct al_server al_server;

/* Validates the configuration and binds the listeners. */
al_status al_server_bind(const al_server_config *cfg, al_server **out, al_error *err);
/* Records the sandbox report (JSON, borrowed until al_server_free) that
 * /health shows; call after entering the sandbox, before al_server_start. */
void al_server_set_sandbox_json(al_server *srv, const char *json);
/* Starts the scheduler and the HTTP daemons on the bound sockets. */
al_status al_server_start(al_server *srv, al_error *err);
/* The port actually bound by listener i (useful with port 0). */
uint16_t al_server_port(const al_server *srv, size_t i);
size_t al_server_n_listeners(const al_server *srv);
/* True when the server speaks HTTPS (a TLS certificate was configured). */
bool al_server_tls(const al_server *srv);
/* Hot reload, after al_server_start (thread safe): serve one more model
 * (copied), or stop serving one (see srv_sched_add_model and
 * srv_sched_remove_model: running requests finish, new ones get 404). */
al_status al_server_add_model(al_server *srv, const srv_model_cfg *model, al_error *err);
bool al_server_remove_model(al_server *srv, const char *name, const char *digest);
/* Stops everything and frees srv (NULL: no-op). */
void al_server_free(al_server *srv);

#endif
