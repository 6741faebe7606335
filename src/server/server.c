/*
 * server.c - HTTP side of `airlock serve`: listeners, libmicrohttpd
 * (one thread per connection), request limits, routing, error shapes,
 * metrics, and the hooks for authorisation and audit. The endpoints
 * themselves live in api.c and the api_*.c files.
 */
#include "server/server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"

al_server_config al_server_default_config(void)
{
    static const char *const k_default_listen[] = {"127.0.0.1:8080"};
    al_server_config c = {0};
    c.listen = k_default_listen;
    c.n_listen = 1;
    c.sched.n_parallel = 4;
    c.sched.n_ctx = 2048;
    c.sched.n_batch = 512;
    c.sched.n_prefill_busy = 8;
    c.sched.waiting_ratio = 1.0f;
    c.sched.batch_wait_ms = 10;
    c.sched.n_threads = 0;
    c.sched.queue_cap = 64;
    c.sched.memory_budget = 0;
    c.max_body_bytes = 8u << 20;
    c.max_header_bytes = 16u << 10;
    c.max_json_depth = 64;
    c.max_tokens = 8192;
    c.default_max_tokens = 512;
    c.conn_timeout_s = 30;
    c.request_timeout_s = 600;
    c.max_connections = 256;
    c.header_timeout_s = 10;
    c.body_min_rate = 1024;
    c.max_conn_per_ip = 64;
    c.conn_reserve = 64;
    return c;
}

/* ------------------------------------------------------------- listeners */

static al_status parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, al_error *err)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return al_err(err, AL_ERR_ARG, "--listen '%s': expected ADDR:PORT", spec);
    size_t hl = (size_t)(colon - spec);
    if (spec[0] == '[') {
        if (hl < 3 || spec[hl - 1] != ']')
            return al_err(err, AL_ERR_ARG, "--listen '%s': expected [IPV6]:PORT", spec);
        spec++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return al_err(err, AL_ERR_ARG, "--listen: address too long");
    memcpy(host, spec, hl);
    host[hl] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return al_err(err, AL_ERR_ARG, "--listen '%s': bad port", spec);
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    /* Numeric addresses only: resolving names is not something an
     * air-gapped server does. */
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
    } else {
        return al_err(err, AL_ERR_ARG, "--listen '%s': '%s' is not a numeric IPv4 or IPv6 address", spec, host);
    }
    return AL_OK;
}

/* ------------------------------------------------------------------- TLS */

/* A PEM text as a gnutls datum (gnutls only reads it). */
static gnutls_datum_t pem_datum(const char *pem)
{
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)strnlen(pem, UINT32_MAX - 1u)};
    return d;
}

/* Number of X.509 certificates in a PEM text; 0 with *why set when none
 * can be read. */
static unsigned pem_cert_count(const char *pem, const char **why)
{
    gnutls_datum_t d = pem_datum(pem);
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        *why = gnutls_strerror(rc);
        return 0;
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (n == 0)
        *why = "no certificate in it";
    return n;
}

/* Checks the TLS settings the way the HTTP daemon will load them, so a
 * bad file is reported by name before anything listens. */
static al_status tls_check(const al_server_config *cfg, al_error *err)
{
    const char *cf = cfg->tls_cert_file ? cfg->tls_cert_file : "the TLS certificate";
    const char *kf = cfg->tls_key_file ? cfg->tls_key_file : "the TLS key";
    const char *af = cfg->tls_client_ca_file ? cfg->tls_client_ca_file : "the TLS client CA";
    if (!cfg->tls_cert_pem && !cfg->tls_key_pem) {
        if (cfg->tls_client_ca_pem)
            return al_err(err, AL_ERR_ARG, "--tls-client-ca needs --tls-cert and --tls-key");
        return AL_OK;
    }
    if (!cfg->tls_cert_pem || !cfg->tls_key_pem)
        return al_err(err, AL_ERR_ARG, "TLS needs both --tls-cert and --tls-key");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return al_err(err, AL_ERR_UNSUPPORTED, "this libmicrohttpd was built without TLS support");
    const char *why = NULL;
    if (!pem_cert_count(cfg->tls_cert_pem, &why))
        return al_err(err, AL_ERR_FORMAT, "%s: not a PEM certificate: %s", cf, why);
    gnutls_datum_t kd = pem_datum(cfg->tls_key_pem);
    gnutls_x509_privkey_t key = NULL;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc >= 0)
        rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0)
        return al_err(err, AL_ERR_FORMAT, "%s: not an unencrypted PEM private key: %s", kf, gnutls_strerror(rc));
    gnutls_certificate_credentials_t cred = NULL;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    gnutls_datum_t cd = pem_datum(cfg->tls_cert_pem);
    rc = gnutls_certificate_set_x509_key_mem(cred, &cd, &kd, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0)
        return al_err(err, AL_ERR_FORMAT, "%s and %s: %s", cf, kf,
                      rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? "the key does not belong to the certificate"
                                                               : gnutls_strerror(rc));
    if (cfg->tls_client_ca_pem && !pem_cert_count(cfg->tls_client_ca_pem, &why))
        return al_err(err, AL_ERR_FORMAT, "%s: not a PEM CA certificate: %s", af, why);
    return AL_OK;
}

/* With --tls-client-ca: did the peer present a certificate that chains to
 * that CA, is valid now and, if it names its purposes, allows TLS client
 * use? libmicrohttpd asks for a certificate but does not check it. */
static bool client_cert_verified(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509)
        return false;
    gnutls_typed_vdata_st vd = {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_CLIENT, 0};
    unsigned status = 0;
    if (gnutls_certificate_verify_peers(s, &vd, 1, &status) != GNUTLS_E_SUCCESS)
        return false; /* GNUTLS_E_NO_CERTIFICATE_FOUND when none was sent */
    return status == 0;
}

bool al_server_tls(const al_server *srv)
{
    return srv && srv->cfg.tls_cert_pem != NULL;
}

al_status al_server_bind(const al_server_config *cfg, al_server **out, al_error *err)
{
    *out = NULL;
    if (cfg->n_listen == 0 || cfg->n_listen > AL_SERVER_MAX_LISTEN)
        return al_err(err, AL_ERR_ARG, "between 1 and %d --listen addresses", AL_SERVER_MAX_LISTEN);
    if (cfg->max_tokens < 1 || cfg->default_max_tokens < 1 || cfg->max_json_depth < 2 ||
        cfg->max_body_bytes < 1024 || cfg->max_header_bytes < 1024)
        return al_err(err, AL_ERR_ARG, "limits out of range");
    al_status tst = tls_check(cfg, err);
    if (tst)
        return tst;
    al_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    srv->cfg = *cfg;
    for (size_t i = 0; i < AL_SERVER_MAX_LISTEN; i++)
        srv->fds[i] = -1;
    pthread_mutex_init(&srv->tmpl_mu, NULL);
    pthread_mutex_init(&srv->conn_mu, NULL);
    srv->tmpls = calloc(SRV_SCHED_MAX_MODELS, sizeof(*srv->tmpls)); /* models added later too */
    if (!srv->tmpls) {
        al_server_free(srv);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        al_status st = parse_listen(cfg->listen[i], &ss, &len, err);
        if (st) {
            al_server_free(srv);
            return st;
        }
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            al_server_free(srv);
            return al_err(err, AL_ERR_IO, "socket: %s", strerror(errno));
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ss.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128)) {
            int e = errno;
            close(fd);
            al_server_free(srv);
            return al_err(err, AL_ERR_IO, "cannot listen on %s: %s", cfg->listen[i], strerror(e));
        }
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);
        if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
            srv->ports[i] = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                            : ((struct sockaddr_in *)&got)->sin_port);
        srv->fds[i] = fd;
        srv->n_fds++;
    }
    *out = srv;
    return AL_OK;
}

void al_server_set_sandbox_json(al_server *srv, const char *json)
{
    srv->cfg.sandbox_json = json;
}

uint16_t al_server_port(const al_server *srv, size_t i)
{
    return i < srv->n_fds ? srv->ports[i] : 0;
}

size_t al_server_n_listeners(const al_server *srv)
{
    return srv->n_fds;
}

/* ---------------------------------------------------------------- replies */

static const char *status_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 408:
    case 504:
        return "timeout_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* CORS: with --cors-origin, a browser page of a listed origin (or any,
 * with "*") may call the API. The origin is matched exactly, as the
 * browser sends it; an unlisted one gets no CORS header, so the browser
 * withholds the answer from the page. */
static void cors_check(srv_req *r)
{
    const al_server_config *cfg = &r->srv->cfg;
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    r->cors_origin[0] = 0;
    if (!origin || !cfg->n_cors_origins)
        return;
    for (size_t i = 0; i < cfg->n_cors_origins; i++) {
        if (!strcmp(cfg->cors_origins[i], "*")) {
            snprintf(r->cors_origin, sizeof(r->cors_origin), "*");
            return;
        }
        if (!strcmp(cfg->cors_origins[i], origin) && strlen(origin) < sizeof(r->cors_origin)) {
            snprintf(r->cors_origin, sizeof(r->cors_origin), "%s", origin);
            return;
        }
    }
}

void srv_add_cors(const srv_req *r, struct MHD_Response *resp)
{
    if (!r->cors_origin[0])
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
    if (strcmp(r->cors_origin, "*"))
        MHD_add_response_header(resp, "Vary", "Origin");
}

/* A preflight (OPTIONS with Access-Control-Request-Method): 204 with the
 * methods and headers the API takes when the origin is allowed, else 403. */
static int cors_preflight(srv_req *r)
{
    if (!r->cors_origin[0]) {
        const char *o = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
        return srv_reply_error(r, 403, "cors_origin_not_allowed", NULL,
                               "cross-origin requests from '%.200s' are not allowed (start the server with "
                               "--cors-origin ORIGIN)",
                               o ? o : "(no Origin header)");
    }
    char *empty = malloc(1);
    if (!empty)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, empty, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(empty);
        return MHD_NO;
    }
    srv_add_cors(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            h && strlen(h) < 1024 ? h : "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    r->status = 204;
    int ret = MHD_queue_response(r->conn, 204, resp);
    MHD_destroy_response(resp);
    return ret;
}

int srv_reply(srv_req *r, int status, const char *ctype, char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 429 || status == 503) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", r->retry_after_s > 0 ? r->retry_after_s : 1);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    srv_add_cors(r, resp);
    r->status = status;
    int ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int srv_reply_json(srv_req *r, int status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        const char *fb = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                         "\"code\":null}}";
        size_t n = strlen(fb);
        s = malloc(n + 1);
        if (!s)
            return MHD_NO;
        memcpy(s, fb, n + 1);
        status = 500;
    }
    return srv_reply(r, status, "application/json", s, strlen(s));
}

int srv_reply_error(srv_req *r, int status, const char *code, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o;
    if (r->ollama) {
        o = json_pack("{s:s}", "error", msg);
    } else {
        json_t *e = json_pack("{s:s,s:s}", "message", msg, "type", status_type(status));
        if (e) {
            json_object_set_new(e, "param", param ? json_string(param) : json_null());
            json_object_set_new(e, "code", code ? json_string(code) : json_null());
        }
        o = e ? json_pack("{s:o}", "error", e) : NULL;
    }
    return srv_reply_json(r, status, o);
}

/* ------------------------------------------------------- client liveness */

bool srv_client_alive(void *arg)
{
    srv_req *r = arg;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return true;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
        return false;
    return true;
}

/* --------------------------------------------------- auth and audit hooks */

static char *dup_bytes(const char *text, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, text, len);
        c[len] = 0;
    }
    return c;
}

static void zero_free(char *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

void srv_req_keep_prompt(srv_req *r, const char *text, size_t len)
{
    if (!r->srv->cfg.audit || r->srv->cfg.audit_content == AL_AUDIT_CONTENT_NONE || !text)
        return;
    zero_free(r->prompt_text, r->prompt_len);
    r->prompt_text = dup_bytes(text, len);
    r->prompt_len = r->prompt_text ? len : 0;
}

void srv_req_keep_completion(srv_req *r, const char *text, size_t len)
{
    if (!r->srv->cfg.audit || r->srv->cfg.audit_content == AL_AUDIT_CONTENT_NONE || !text)
        return;
    zero_free(r->completion_text, r->completion_len);
    r->completion_text = dup_bytes(text, len);
    r->completion_len = r->completion_text ? len : 0;
}

bool srv_req_model_visible(const srv_req *r, const char *name)
{
    return !r->key_models[0] || al_apikey_model_match(r->key_models, name);
}

/* The API-key scope an endpoint needs; NULL: open to everyone. */
static const char *route_scope(srv_route_id id)
{
    switch (id) {
    case SRV_R_HEALTH:
        return NULL;
    case SRV_R_METRICS:
        return "admin";
    case SRV_R_CHAT:
    case SRV_R_OLLAMA_CHAT:
    case SRV_R_RESPONSES:
        return "chat";
    case SRV_R_COMPLETIONS:
    case SRV_R_OLLAMA_GENERATE:
        return "completions";
    case SRV_R_EMBEDDINGS:
    case SRV_R_OLLAMA_EMBED:
    case SRV_R_OLLAMA_EMBEDDINGS:
    case SRV_R_RERANK:
        return "embeddings";
    default:
        return "models"; /* lists, show, ps, version, ready, / */
    }
}

/* The model a request names, as the served model's canonical name when it
 * resolves (so a key's globs see "name:tag", whatever alias was used). */
static void request_model(al_server *srv, srv_req *r, char *out, size_t cap)
{
    const char *name = NULL;
    if (r->route->id == SRV_R_MODEL) {
        name = r->path_arg;
    } else if (r->json) {
        name = json_string_value(json_object_get(r->json, "model"));
        if ((!name || !*name) && r->ollama)
            name = json_string_value(json_object_get(r->json, "name"));
    }
    out[0] = 0;
    if (!name || !*name)
        return;
    srv_model *m = srv->sched ? srv_sched_find(srv->sched, name) : NULL;
    if (m) {
        srv_model_status st;
        srv_model_get_status(srv->sched, m, &st);
        name = st.name;
    }
    snprintf(out, cap, "%s", name);
}

/*
 * AUTHORIZATION HOOK: API keys (src/policy/apikey.h). Returns 0 to allow,
 * or 401 (no/unknown/revoked/expired key), 403 (scope or model not allowed)
 * or 429 (over rpm/tpm; r->retry_after_s set) with msg filled. With no key
 * defined every request is allowed. The key id becomes the request's actor.
 */
static int authorize(al_server *srv, srv_req *r, char *msg, size_t cap)
{
    snprintf(r->actor, sizeof(r->actor), "anonymous");
    const char *scope = route_scope(r->route->id);
    if (!srv->cfg.keys || !scope)
        return 0;
    char model[256];
    request_model(srv, r, model, sizeof(model));
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    al_auth_result res;
    memset(&res, 0, sizeof(res));
    al_auth_decision d = al_keyring_authorize(srv->cfg.keys, auth, scope, model[0] ? model : NULL, &res);
    if (res.key_id[0])
        snprintf(r->actor, sizeof(r->actor), "%s", res.key_id);
    if (d == AL_AUTH_OK) {
        snprintf(r->key_models, sizeof(r->key_models), "%s", res.models);
        return 0;
    }
    if (d == AL_AUTH_RATE_LIMITED)
        r->retry_after_s = res.retry_after_s > 0 ? res.retry_after_s : 1;
    snprintf(msg, cap, "%s", res.reason[0] ? res.reason : "not authorized");
    return (int)d;
}

static const char *auth_code(int status)
{
    switch (status) {
    case 401:
        return "invalid_api_key";
    case 403:
        return "permission_denied";
    case 429:
        return "rate_limit_exceeded";
    default:
        return NULL;
    }
}

/*
 * AUDIT HOOK: one record per finished API request (src/audit/audit.h):
 * time, actor, client address, endpoint, model and digest, token counts,
 * status, duration; prompt and completion only as the content mode says.
 */
static void audit_request(al_server *srv, const srv_req *r, double duration_s)
{
    if (!srv->cfg.audit)
        return;
    char action[96];
    snprintf(action, sizeof(action), "%s %s", r->method, r->endpoint);
    const char *scope = route_scope(r->route->id);
    bool gen = scope && (!strcmp(scope, "chat") || !strcmp(scope, "completions") || !strcmp(scope, "embeddings"));
    al_audit_event ev = {
        .actor = r->actor[0] ? r->actor : "anonymous",
        .client = r->client[0] ? r->client : NULL,
        .action = action,
        .model = r->model[0] ? r->model : NULL,
        .digest = r->digest[0] ? r->digest : NULL,
        .prompt_tokens = gen ? r->prompt_tokens : -1,
        .completion_tokens = gen ? r->completion_tokens : -1,
        .status = r->status ? r->status : 500,
        .duration_ms = duration_s * 1000.0,
        .prompt = r->prompt_text,
        .prompt_len = r->prompt_len,
        .completion = r->completion_text,
        .completion_len = r->completion_len,
    };
    al_error err = {0};
    if (al_audit_append(srv->cfg.audit, &ev, &err))
        fprintf(stderr, "airlock serve: audit: %s\n", err.msg);
}

/* ----------------------------------------------------------------- routing */

typedef struct hdr_count {
    size_t bytes;
    int n_content_length;   /* Content-Length headers */
    bool transfer_encoding; /* a Transfer-Encoding header */
} hdr_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    hdr_count *h = cls;
    (void)kind;
    h->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        h->n_content_length++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        h->transfer_encoding = true;
    return MHD_YES;
}

/* Nesting depth of a JSON text, counted outside strings; cheap and run
 * before the parser so a deep body cannot exhaust its stack. */
static int json_depth(const char *s, size_t n)
{
    int d = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++d > max)
                max = d;
        } else if (c == '}' || c == ']') {
            d--;
        }
    }
    return max;
}

static const srv_route k_routes[] = {
    {"GET", "/health", SRV_R_HEALTH, false, false},
    {"GET", "/ready", SRV_R_READY, false, false},
    {"GET", "/metrics", SRV_R_METRICS, false, false},
    {"GET", "/", SRV_R_ROOT, false, false},
    {"GET", "/v1/models", SRV_R_MODELS, false, false},
    {"GET", "/v1/models/", SRV_R_MODEL, false, true},
    {"POST", "/v1/chat/completions", SRV_R_CHAT, false, false},
    {"POST", "/v1/completions", SRV_R_COMPLETIONS, false, false},
    {"POST", "/v1/responses", SRV_R_RESPONSES, false, false},
    {"POST", "/v1/embeddings", SRV_R_EMBEDDINGS, false, false},
    {"POST", "/api/chat", SRV_R_OLLAMA_CHAT, true, false},
    {"POST", "/api/generate", SRV_R_OLLAMA_GENERATE, true, false},
    {"GET", "/api/tags", SRV_R_OLLAMA_TAGS, true, false},
    {"POST", "/api/show", SRV_R_OLLAMA_SHOW, true, false},
    {"GET", "/api/ps", SRV_R_OLLAMA_PS, true, false},
    {"GET", "/api/version", SRV_R_OLLAMA_VERSION, true, false},
    {"POST", "/api/embed", SRV_R_OLLAMA_EMBED, true, false},
    {"POST", "/api/embeddings", SRV_R_OLLAMA_EMBEDDINGS, true, false},
    {"POST", "/v1/rerank", SRV_R_RERANK, false, false},
    {"POST", "/rerank", SRV_R_RERANK, false, false},
};

static const srv_route *find_route(const char *method, const char *url, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < sizeof(k_routes) / sizeof(k_routes[0]); i++) {
        const srv_route *rt = &k_routes[i];
        size_t n = strlen(rt->path);
        bool match = rt->prefix ? (!strncmp(url, rt->path, n) && url[n] != 0) : !strcmp(url, rt->path);
        if (!match)
            continue;
        *path_known = true;
        if (!strcmp(method, rt->method) || (!strcmp(method, "HEAD") && !strcmp(rt->method, "GET")))
            return rt;
    }
    return NULL;
}

bool srv_quota_reserve(srv_req *r, int32_t n_prompt, int32_t *max_tokens, char *msg, size_t cap)
{
    al_server *srv = r->srv;
    if (!srv->cfg.keys || !r->actor[0] || !strcmp(r->actor, "anonymous"))
        return true;
    int64_t granted = 0;
    int ra = 1;
    al_auth_decision d = al_keyring_reserve(srv->cfg.keys, r->actor, (int64_t)n_prompt + 1,
                                            (int64_t)n_prompt + *max_tokens, &granted, &ra, msg, cap);
    if (d != AL_AUTH_OK) {
        r->retry_after_s = ra > 0 ? ra : 1;
        return false;
    }
    r->quota_reserved += granted;
    if (granted - n_prompt < *max_tokens)
        *max_tokens = (int32_t)(granted - n_prompt);
    return true;
}

/* ---------------------------------------------------- connection admission
 *
 * libmicrohttpd (thread per connection) only has an idle timeout, which a
 * client sending a byte every few seconds never reaches. So every connection
 * is tracked from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED with its phase:
 * HEADERS (request line + headers, or idle between keep-alive requests),
 * BODY (receiving the body), WORK (answering: no deadline here). A reaper
 * thread shutdown(2)s a connection past its phase's deadline; its MHD
 * thread then sees the end of the stream and closes it. The list is guarded
 * by conn_mu, which the CLOSED notification also takes before MHD closes the
 * fd, so a shut-down fd is never one reused by a newer connection. */

enum { CONN_HEADERS, CONN_BODY, CONN_WORK };

typedef struct srv_conn {
    struct srv_conn *prev, *next;
    int fd;
    int phase;
    bool cut;
    bool busy;            /* admitted over the limit with nothing to evict: answer 503 */
    double t_phase;       /* when the phase began */
    uint64_t body_bytes;
} srv_conn;

static void conn_cut(al_server *srv, srv_conn *c) /* conn_mu held */
{
    if (c->cut)
        return;
    shutdown(c->fd, SHUT_RDWR);
    c->cut = true;
    srv->n_live--;
}

static double conn_deadline(const al_server *srv, const srv_conn *c)
{
    double t = c->t_phase + (double)srv->cfg.header_timeout_s;
    if (c->phase == CONN_BODY && srv->cfg.body_min_rate)
        t += (double)c->body_bytes / (double)srv->cfg.body_min_rate;
    return c->phase == CONN_WORK ? 1e300 : t;
}

static void *reaper_main(void *arg)
{
    al_server *srv = arg;
    while (!atomic_load(&srv->stopping)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double now = srv_now();
        pthread_mutex_lock(&srv->conn_mu);
        for (srv_conn *c = srv->conns; c; c = c->next)
            if (!c->cut && now > conn_deadline(srv, c)) {
                conn_cut(srv, c);
                atomic_fetch_add(&srv->n_cut, 1);
            }
        pthread_mutex_unlock(&srv->conn_mu);
    }
    return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    al_server *srv = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        srv_conn *c = calloc(1, sizeof(*c));
        if (!c || !ci)
            return;
        c->fd = ci->connect_fd;
        c->phase = CONN_HEADERS;
        c->t_phase = srv_now();
        pthread_mutex_lock(&srv->conn_mu);
        if (srv->n_live >= srv->cfg.max_connections) {
            /* over the limit: make room by cutting the connection that has
             * been sending its headers the longest (a slow client's) */
            srv_conn *oldest = NULL;
            for (srv_conn *o = srv->conns; o; o = o->next)
                if (!o->cut && o->phase == CONN_HEADERS && (!oldest || o->t_phase < oldest->t_phase))
                    oldest = o;
            if (oldest) {
                conn_cut(srv, oldest);
                atomic_fetch_add(&srv->n_evicted, 1);
            } else {
                c->busy = true;
            }
        }
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        srv->n_live++;
        pthread_mutex_unlock(&srv->conn_mu);
        *socket_context = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        srv_conn *c = *socket_context;
        if (!c)
            return;
        pthread_mutex_lock(&srv->conn_mu);
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        if (!c->cut)
            srv->n_live--;
        pthread_mutex_unlock(&srv->conn_mu);
        free(c);
        *socket_context = NULL;
    }
}

/* Moves the connection of conn to phase (and counts body bytes). Returns
 * true when the connection was admitted only to be answered 503. */
static bool conn_phase(al_server *srv, struct MHD_Connection *conn, int phase, size_t body_bytes)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    srv_conn *c = ci ? ci->socket_context : NULL;
    if (!c)
        return false;
    pthread_mutex_lock(&srv->conn_mu);
    if (c->phase != phase) {
        c->phase = phase;
        c->t_phase = srv_now();
        c->body_bytes = 0;
    }
    c->body_bytes += body_bytes;
    bool busy = c->busy;
    c->busy = false;
    pthread_mutex_unlock(&srv->conn_mu);
    return busy;
}

/* The first call for a request (its headers are in): makes its srv_req
 * (*con_cls), routes it and answers at once what the headers already
 * refuse (busy, CORS preflight, client certificate, header size, framing,
 * unknown URL or method, Content-Length over the limit). */
static enum MHD_Result start_request(al_server *srv, struct MHD_Connection *conn, const char *url,
                                     const char *method, void **con_cls)
{
    srv_req *r = calloc(1, sizeof(*r));
    if (!r)
        return MHD_NO;
    *con_cls = r;
    r->srv = srv;
    r->conn = conn;
    r->t_start = srv_now();
    bool known;
    r->route = find_route(method, url, &known);
    r->ollama = !strncmp(url, "/api/", 5);
    snprintf(r->endpoint, sizeof(r->endpoint), "%s", r->route ? r->route->path : (known ? url : "other"));
    if (r->route && r->route->prefix)
        snprintf(r->path_arg, sizeof(r->path_arg), "%s", url + strlen(r->route->path));
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->actor, sizeof(r->actor), "anonymous");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->client,
                      sizeof(r->client));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->client,
                      sizeof(r->client));
    }
    if (conn_phase(srv, conn, CONN_BODY, 0)) {
        r->retry_after_s = 1;
        return (enum MHD_Result)srv_reply_error(r, 503, "server_busy", NULL,
                                                "too many connections are being answered; retry");
    }
    cors_check(r);
    if (!strcmp(method, "OPTIONS"))
        return (enum MHD_Result)cors_preflight(r);
    if (srv->cfg.tls_client_ca_pem && !client_cert_verified(conn))
        return (enum MHD_Result)srv_reply_error(r, 403, "client_certificate_required", NULL,
                                                "this server requires a TLS client certificate signed by "
                                                "its client CA");
    hdr_count hc = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &hc);
    if (hc.bytes > srv->cfg.max_header_bytes)
        return (enum MHD_Result)srv_reply_error(r, 431, "header_too_large", NULL,
                                                "request headers take %zu bytes; the limit is %zu", hc.bytes,
                                                srv->cfg.max_header_bytes);
    /* Framing that two parsers could read differently (a proxy in
     * front taking the other Content-Length, or the length where we
     * take the chunks) is how requests are smuggled: refuse it. */
    if (hc.n_content_length && hc.transfer_encoding)
        return (enum MHD_Result)srv_reply_error(r, 400, "bad_request", NULL,
                                                "Content-Length together with Transfer-Encoding: the "
                                                "body's framing is ambiguous");
    if (hc.n_content_length > 1)
        return (enum MHD_Result)srv_reply_error(r, 400, "bad_request", NULL,
                                                "%d Content-Length headers: the body's framing is ambiguous",
                                                hc.n_content_length);
    if (!r->route) {
        if (known)
            return (enum MHD_Result)srv_reply_error(r, 405, "method_not_allowed", NULL,
                                                    "%s is not allowed on %s", method, url);
        return (enum MHD_Result)srv_reply_error(r, 404, "unknown_url", NULL, "unknown URL: %s %s", method,
                                                url);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno || end == cl || *end)
            return (enum MHD_Result)srv_reply_error(r, 400, "bad_request", NULL, "bad Content-Length");
        if (v > srv->cfg.max_body_bytes)
            return (enum MHD_Result)srv_reply_error(r, 413, "body_too_large", NULL,
                                                    "the request body has %llu bytes; the limit is %zu", v,
                                                    srv->cfg.max_body_bytes);
    }
    return MHD_YES;
}

/* A chunk of the body, data[0..n): appended to r->body (NUL-terminated),
 * or only counted once the body is over the limit (r->too_big). */
static enum MHD_Result add_upload(al_server *srv, struct MHD_Connection *conn, srv_req *r, const char *upload_data,
                                  size_t n)
{
    conn_phase(srv, conn, CONN_BODY, n);
    if (r->too_big || r->len + n > srv->cfg.max_body_bytes) {
        r->too_big = true;
        return MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *nb = malloc(cap); /* not realloc: the old copy is zeroed */
        if (!nb)
            return MHD_NO;
        if (r->body) {
            memcpy(nb, r->body, r->len);
            zero_free(r->body, r->cap);
        }
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, upload_data, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    al_server *srv = cls;
    srv_req *r = *con_cls;
    (void)version;
    if (!r)
        return start_request(srv, conn, url, method, con_cls);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return add_upload(srv, conn, r, upload_data, n);
    }
    conn_phase(srv, conn, CONN_WORK, 0);
    if (r->status) /* already answered (a limit on the first call) */
        return MHD_YES;
    if (r->too_big)
        return (enum MHD_Result)srv_reply_error(r, 413, "body_too_large", NULL,
                                                "the request body is larger than the limit of %zu bytes",
                                                srv->cfg.max_body_bytes);
    /* The body is parsed first (its model is part of the authorisation),
     * but a bad body is reported only to an authorised caller. */
    int bad_status = 0;
    char bad_msg[512] = "";
    const char *bad_code = "invalid_json";
    if (!strcmp(r->route->method, "POST")) {
        int depth = r->len ? json_depth(r->body, r->len) : 0;
        json_error_t je;
        if (r->len == 0) {
            bad_status = 400;
            snprintf(bad_msg, sizeof(bad_msg), "the request body is empty");
        } else if (depth > srv->cfg.max_json_depth) {
            bad_status = 400;
            bad_code = "json_too_deep";
            snprintf(bad_msg, sizeof(bad_msg), "the JSON body nests %d levels; the limit is %d", depth,
                     srv->cfg.max_json_depth);
        } else if (!(r->json = json_loadb(r->body, r->len, 0, &je))) {
            bad_status = 400;
            snprintf(bad_msg, sizeof(bad_msg), "the body is not valid JSON (line %d, column %d): %s", je.line,
                     je.column, je.text);
        } else if (!json_is_object(r->json)) {
            bad_status = 400;
            snprintf(bad_msg, sizeof(bad_msg), "the body must be a JSON object");
            json_decref(r->json);
            r->json = NULL;
        }
    }
    char msg[512] = "";
    int deny = authorize(srv, r, msg, sizeof(msg));
    if (deny)
        return (enum MHD_Result)srv_reply_error(r, deny, auth_code(deny), NULL, "%s",
                                                msg[0] ? msg : "not authorized");
    if (bad_status)
        return (enum MHD_Result)srv_reply_error(r, bad_status, bad_code, NULL, "%s", bad_msg);
    return (enum MHD_Result)srv_api_dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    al_server *srv = cls;
    srv_req *r = *con_cls;
    (void)toe;
    if (conn) /* back to waiting for the next request's headers (keep-alive) */
        conn_phase(srv, conn, CONN_HEADERS, 0);
    if (!r)
        return;
    double dur = srv_now() - r->t_start;
    srv_metrics_request(srv->metrics, r->endpoint, r->status ? r->status : 500);
    if (srv->cfg.keys && r->actor[0] && strcmp(r->actor, "anonymous") &&
        (r->quota_reserved > 0 || (r->status == 200 && r->prompt_tokens + r->completion_tokens > 0)))
        al_keyring_settle(srv->cfg.keys, r->actor, r->quota_reserved,
                          r->prompt_tokens + r->completion_tokens);
    if (r->route && r->route->id != SRV_R_METRICS && r->route->id != SRV_R_HEALTH && r->route->id != SRV_R_READY)
        audit_request(srv, r, dur);
    json_decref(r->json);
    /* Request buffers are zeroed before they go back to the allocator. */
    zero_free(r->body, r->cap);
    zero_free(r->prompt_text, r->prompt_len);
    zero_free(r->completion_text, r->completion_len);
    explicit_bzero(r, sizeof(*r));
    free(r);
    *con_cls = NULL;
}

/* ----------------------------------------------------------- life cycle */

/* libmicrohttpd's own messages (a refused connection, a client that hung
 * up) go to stderr at most once per 10 s, with the number held back since:
 * a flood of hostile connections must not become a flood of log lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t last;
    static unsigned long held;
    time_t now = time(NULL);
    pthread_mutex_lock(&mu);
    if (last && now - last < 10) {
        held++;
        pthread_mutex_unlock(&mu);
        return;
    }
    unsigned long n = held;
    held = 0;
    last = now;
    pthread_mutex_unlock(&mu);
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t len = strlen(line);
    while (len && line[len - 1] == '\n')
        line[--len] = 0;
    if (n)
        fprintf(stderr, "airlock serve: http: %s (%lu more HTTP messages held back in the last 10 s)\n", line, n);
    else
        fprintf(stderr, "airlock serve: http: %s\n", line);
}


al_status al_server_start(al_server *srv, al_error *err)
{
    srv->metrics = srv_metrics_new();
    if (!srv->metrics)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    al_status st = srv_sched_new(&srv->cfg.sched, srv->cfg.models, srv->cfg.n_models, &srv->sched, err);
    if (st)
        return st;
    srv->created = (int64_t)time(NULL);
    if (srv->cfg.header_timeout_s) {
        if (pthread_create(&srv->reaper, NULL, reaper_main, srv) != 0)
            return al_err(err, AL_ERR_IO, "cannot start the connection reaper thread");
        srv->reaper_started = true;
    }
    /* TLS options: the PEM texts were read before the sandbox and checked
     * by al_server_bind; libmicrohttpd copies nothing, so they stay
     * borrowed until al_server_free. */
    struct MHD_OptionItem tls_opts[4];
    size_t n_tls = 0;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    if (srv->cfg.tls_cert_pem) {
        flags |= MHD_USE_TLS;
        tls_opts[n_tls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)srv->cfg.tls_key_pem};
        tls_opts[n_tls++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)srv->cfg.tls_cert_pem};
        if (srv->cfg.tls_client_ca_pem)
            tls_opts[n_tls++] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)(uintptr_t)srv->cfg.tls_client_ca_pem};
    }
    tls_opts[n_tls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    for (size_t i = 0; i < srv->n_fds; i++) {
        srv->daemons[i] = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, srv, /* the logger first, or MHD logs with its own until then */
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, srv->fds[i],
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->cfg.conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)(srv->cfg.max_connections + srv->cfg.conn_reserve), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            (unsigned)srv->cfg.max_conn_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)(srv->cfg.max_header_bytes + 32768), MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
        if (!srv->daemons[i])
            return al_err(err, AL_ERR_IO, "cannot start the HTTP daemon on %s", srv->cfg.listen[i]);
        srv->fds[i] = -1; /* the daemon owns it now */
    }
    return AL_OK;
}

void al_server_free(al_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    if (srv->reaper_started)
        pthread_join(srv->reaper, NULL);
    for (size_t i = 0; i < AL_SERVER_MAX_LISTEN; i++) {
        if (srv->daemons[i])
            MHD_stop_daemon(srv->daemons[i]);
        if (srv->fds[i] >= 0)
            close(srv->fds[i]);
    }
    srv_sched_free(srv->sched);
    srv_metrics_free(srv->metrics);
    srv_api_free(srv);
    pthread_mutex_destroy(&srv->tmpl_mu);
    pthread_mutex_destroy(&srv->conn_mu);
    free(srv);
}

/* ------------------------------------------------------------ hot reload */

al_status al_server_add_model(al_server *srv, const srv_model_cfg *model, al_error *err)
{
    if (!srv->sched)
        return al_err(err, AL_ERR_STATE, "the server is not started");
    return srv_sched_add_model(srv->sched, model, err);
}

bool al_server_remove_model(al_server *srv, const char *name, const char *digest)
{
    if (!srv->sched || !srv_sched_remove_model(srv->sched, name, digest))
        return false;
    srv_sched_gate_invalidate(srv->sched); /* belt and braces: the cache is keyed by the catalogue's version too */
    return true;
}
