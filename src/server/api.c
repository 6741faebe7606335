/*
 * api.c - the endpoints: OpenAI (/v1/...), Ollama (/api/...) and
 * operations (/health, /ready, /metrics). This file routes requests
 * (srv_api_dispatch), lists models and holds the helpers the api_*.c files
 * share (api_gen.h); generation is in api_generate.c and the files it uses.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/api_gen.h"
#include "server/api_int.h"
#include "server/api_parse.h"
#include "server/responses.h"
#include "server/server_int.h"
#include "server/toolcall.h"
#include "server/toolgrammar.h"
#include "util/error.h"

bool srv_fail(perr *e, int status, const char *code, const char *param, const char *fmt, ...)
{
    e->status = status;
    e->code = code;
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return false;
}

int api_reply_perr(srv_req *r, const perr *e)
{
    return srv_reply_error(r, e->status ? e->status : 400, e->code, e->param[0] ? e->param : NULL, "%s", e->msg);
}

/* ------------------------------------------------------------ utilities */

/* Length of a valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

/* A JSON string of bytes that may hold invalid UTF-8 (each bad byte
 * becomes U+FFFD). */
json_t *api_jstr(const char *s, size_t n)
{
    json_t *j = json_stringn(s ? s : "", s ? n : 0);
    if (j)
        return j;
    char *t = malloc(n * 3 + 1);
    if (!t)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0 || (k == 1 && s[i] == 0)) {
            memcpy(t + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(t + o, s + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(t, o);
    free(t);
    return j;
}

void api_make_id(al_server *srv, const char *prefix, char *out, size_t cap)
{
    unsigned long long n = atomic_fetch_add(&srv->next_id, 1) + 1;
    unsigned long long t = (unsigned long long)time(NULL);
    snprintf(out, cap, "%s%08llx%08llx", prefix, t & 0xffffffffull, (n * 2654435761ull) & 0xffffffffull);
}

json_t *api_rfc3339_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[64], o[80];
    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(o, sizeof(o), "%s.%09ldZ", b, ts.tv_nsec);
    return json_string(o);
}

static json_t *rfc3339_of(time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[64];
    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(b);
}

/* ---------------------------------------------------------------- models */

/* Listed: still published, not refused by its integrity check, and
 * visible to the key. */
static bool model_listed(const srv_req *r, srv_model *m)
{
    srv_model_status st;
    srv_model_get_status(r->srv->sched, m, &st);
    return !st.gone && !st.refused && srv_req_model_visible(r, st.name);
}

static json_t *oai_model(al_server *srv, srv_model *m)
{
    srv_model_status st;
    srv_model_get_status(srv->sched, m, &st);
    json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", st.name, "object", "model", "created",
                          (json_int_t)srv->created, "owned_by", "airlock");
    if (o && st.manifest_digest) {
        char d[80];
        snprintf(d, sizeof(d), "sha256:%s", st.manifest_digest);
        json_object_set_new(o, "digest", json_string(d));
        snprintf(d, sizeof(d), "sha256:%s", st.digest ? st.digest : "");
        json_object_set_new(o, "blob_digest", json_string(d));
    }
    json_t *caps = json_array();
    bool gen = true;
    srv_api_model_caps(srv->sched, m, caps, &gen);
    if (o)
        json_object_set_new(o, "capabilities", caps);
    else
        json_decref(caps);
    return o;
}

static json_t *ollama_details(const srv_model_status *st)
{
    char psize[32] = "";
    if (st->info_valid) {
        double p = (double)st->info.n_params;
        if (p >= 1e9)
            snprintf(psize, sizeof(psize), "%.1fB", p / 1e9);
        else if (p >= 1e6)
            snprintf(psize, sizeof(psize), "%.1fM", p / 1e6);
        else
            snprintf(psize, sizeof(psize), "%.0fK", p / 1e3);
    }
    const char *fam = st->info_valid ? st->info.arch : "";
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf", "family", fam,
                     "families", fam, "parameter_size", psize, "quantization_level", "");
}

static json_t *ollama_model_entry(al_server *srv, srv_model *m, bool ps)
{
    srv_model_status st;
    srv_model_get_status(srv->sched, m, &st);
    struct stat fs;
    bool have = stat(st.path, &fs) == 0;
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o}", "name", st.name, "model", st.name, "size",
                          (json_int_t)(ps ? st.bytes : (have ? (uint64_t)fs.st_size : 0)), "digest",
                          st.manifest_digest ? st.manifest_digest : "", "details", ollama_details(&st));
    if (!o)
        return NULL;
    if (ps) {
        json_object_set_new(o, "expires_at", rfc3339_of((time_t)(time(NULL) + 24 * 3600)));
        json_object_set_new(o, "size_vram", json_integer(0));
        /* airlock's: the weights are still being packed (full speed after) */
        json_object_set_new(o, "packing", json_boolean(st.packing));
    } else {
        json_object_set_new(o, "modified_at", rfc3339_of(have ? fs.st_mtime : 0));
    }
    return o;
}

static int handle_show(srv_req *r)
{
    perr e = {0};
    srv_model *m = api_find_model(r, r->json, "model", &e);
    if (!m)
        return api_reply_perr(r, &e);
    const al_model *model = NULL;
    al_error err = {0};
    if (srv_model_acquire(r->srv->sched, m, &model, &err))
        return api_reply_load_error(r, &err);
    srv_model_status st;
    srv_model_get_status(r->srv->sched, m, &st);
    const char *tmpl = api_chat_template_of(r->srv, &st, model);
    json_t *mi = json_object();
    char k[96];
    json_object_set_new(mi, "general.architecture", json_string(st.info.arch));
    json_object_set_new(mi, "general.parameter_count", json_integer((json_int_t)st.info.n_params));
    snprintf(k, sizeof(k), "%s.context_length", st.info.arch);
    json_object_set_new(mi, k, json_integer(st.info.n_ctx_train));
    snprintf(k, sizeof(k), "%s.embedding_length", st.info.arch);
    json_object_set_new(mi, k, json_integer(st.info.n_embd));
    snprintf(k, sizeof(k), "%s.block_count", st.info.arch);
    json_object_set_new(mi, k, json_integer(st.info.n_layer));
    /* What the template shows the model can do (every decoder also embeds: mean pooling). */
    srv_chat_fmt f;
    srv_chat_fmt_detect(tmpl, &f);
    json_t *caps = json_array();
    bool gen = true;
    srv_api_model_caps(r->srv->sched, m, caps, &gen); /* completion, embedding or rerank */
    if (caps && gen && f.tools != SRV_TOOLS_NONE)
        json_array_append_new(caps, json_string("tools"));
    if (caps && gen && f.think != SRV_THINK_NONE)
        json_array_append_new(caps, json_string("thinking"));
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o}", "modelfile", "", "parameters", "", "template",
                          tmpl ? api_jstr(tmpl, strlen(tmpl)) : json_string(""), "details", ollama_details(&st),
                          "model_info", mi, "capabilities", caps, "modified_at", rfc3339_of(time(NULL)));
    srv_model_release(r->srv->sched, m);
    return srv_reply_json(r, 200, o);
}

static int reply_text(srv_req *r, int status, const char *ctype, const char *text)
{
    size_t n = strlen(text);
    char *c = malloc(n + 1);
    if (!c)
        return MHD_NO;
    memcpy(c, text, n + 1);
    return srv_reply(r, status, ctype, c, n);
}

int srv_api_dispatch(srv_req *r)
{
    al_server *srv = r->srv;
    switch (r->route->id) {
    case SRV_R_HEALTH: {
        json_t *o = json_pack("{s:s}", "status", "ok");
        json_t *sb = srv->cfg.sandbox_json ? json_loads(srv->cfg.sandbox_json, 0, NULL) : NULL;
        bool blocked = sb && json_is_true(json_object_get(sb, "seccomp"));
        if (o) {
            json_object_set_new(o, "egress", json_string(blocked ? "blocked" : "open"));
            json_object_set_new(o, "sandbox", sb ? sb : json_null());
            json_object_set_new(o, "tls", json_pack("{s:b,s:b}", "enabled", srv->cfg.tls_cert_pem != NULL,
                                                    "client_certificates", srv->cfg.tls_client_ca_pem != NULL));
        } else {
            json_decref(sb);
        }
        return srv_reply_json(r, 200, o);
    }
    case SRV_R_READY:
        if (srv_sched_ready(srv->sched))
            return srv_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
        return srv_reply_error(r, 503, "not_ready", NULL, "no model can be served");
    case SRV_R_ROOT:
        return reply_text(r, 200, "text/plain", "airlock is running\n");
    case SRV_R_METRICS: {
        srv_sched_stats ss;
        srv_sched_get_stats(srv->sched, &ss);
        srv_metrics_gauges g = {.queue_depth = ss.queue_depth, .active = ss.active,
                                .models_loaded = ss.n_models_loaded, .prompt_tokens = ss.prompt_tokens,
                                .generated_tokens = ss.generated_tokens, .cached_tokens = ss.cached_tokens,
                                .pass_kind = srv_pass_kind_name, .passes = ss.passes,
                                .n_pass_kinds = SRV_PASS_KINDS, .pass_tokens = ss.pass_tokens,
                                .pass_seconds = ss.pass_seconds, .sample_seconds = ss.sample_seconds,
                                .gate_queries = ss.gate_queries};
        size_t len = 0;
        char *t = srv_metrics_render(srv->metrics, &g, &len);
        if (!t)
            return srv_reply_error(r, 500, NULL, NULL, "out of memory");
        return srv_reply(r, 200, "text/plain; version=0.0.4", t, len);
    }
    case SRV_R_MODELS: {
        json_t *data = json_array();
        for (size_t i = 0; i < srv_sched_n_models(srv->sched); i++)
            if (model_listed(r, srv_sched_model_at(srv->sched, i)))
                json_array_append_new(data, oai_model(srv, srv_sched_model_at(srv->sched, i)));
        return srv_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
    }
    case SRV_R_MODEL: {
        srv_model *m = srv_sched_find(srv->sched, r->path_arg);
        if (m && !model_listed(r, m))
            m = NULL;
        if (!m)
            return srv_reply_error(r, 404, "model_not_found", "model", "the model '%s' does not exist",
                                   r->path_arg);
        return srv_reply_json(r, 200, oai_model(srv, m));
    }
    case SRV_R_CHAT:
        return api_handle_generate(r, D_OAI_CHAT, NULL);
    case SRV_R_RESPONSES:
        return api_handle_responses(r);
    case SRV_R_COMPLETIONS:
        return api_handle_generate(r, D_OAI_COMPL, NULL);
    case SRV_R_OLLAMA_CHAT:
        return api_handle_generate(r, D_OL_CHAT, NULL);
    case SRV_R_OLLAMA_GENERATE:
        return api_handle_generate(r, D_OL_GEN, NULL);
    case SRV_R_EMBEDDINGS:
    case SRV_R_OLLAMA_EMBED:
    case SRV_R_OLLAMA_EMBEDDINGS:
        return srv_api_embeddings(r, r->route->id);
    case SRV_R_RERANK:
        return srv_api_rerank(r);
    case SRV_R_OLLAMA_TAGS:
    case SRV_R_OLLAMA_PS: {
        bool ps = r->route->id == SRV_R_OLLAMA_PS;
        json_t *list = json_array();
        for (size_t i = 0; i < srv_sched_n_models(srv->sched); i++) {
            srv_model *m = srv_sched_model_at(srv->sched, i);
            srv_model_status st;
            srv_model_get_status(srv->sched, m, &st);
            if ((!ps || st.loaded) && model_listed(r, m))
                json_array_append_new(list, ollama_model_entry(srv, m, ps));
        }
        return srv_reply_json(r, 200, json_pack("{s:o}", "models", list));
    }
    case SRV_R_OLLAMA_SHOW:
        return handle_show(r);
    case SRV_R_OLLAMA_VERSION:
        return srv_reply_json(r, 200, json_pack("{s:s,s:s}", "version", "0.6.0", "airlock", al_version()));
    }
    return srv_reply_error(r, 404, "unknown_url", NULL, "unknown URL");
}

/* ------------------------------------------- for the endpoint files (api_int.h) */

srv_model *srv_api_find_model(srv_req *r, json_t *b, const char *key, perr *e)
{
    return api_find_model(r, b, key, e);
}

int srv_api_reply_perr(srv_req *r, const perr *e)
{
    return api_reply_perr(r, e);
}

int srv_api_reply_load_error(srv_req *r, const al_error *err)
{
    return api_reply_load_error(r, err);
}

void srv_api_keep_prompt_json(srv_req *r, json_t *v)
{
    api_keep_prompt_json(r, v);
}

void srv_api_extend_timeout(srv_req *r)
{
    api_extend_timeout(r);
}
