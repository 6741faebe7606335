/*
 * api_generate.c - the generation endpoints: /v1/chat/completions,
 * /v1/completions, /api/chat, /api/generate (and /v1/responses), from the
 * body to a queued job and its answer.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sampling/grammar.h"
#include "server/api_gen.h"
#include "server/api_int.h"
#include "server/api_parse.h"
#include "server/responses.h"
#include "server/server_int.h"
#include "server/toolcall.h"
#include "server/toolgrammar.h"
#include "util/error.h"

/* ------------------------------------------------------------ generation */

srv_model *api_find_model(srv_req *r, json_t *b, const char *key, perr *e)
{
    json_t *mv = json_object_get(b, key);
    if (!json_is_string(mv) || json_string_length(mv) == 0) {
        /* Ollama clients also send "name". */
        if (r->ollama && key[0] == 'm')
            mv = json_object_get(b, "name");
        if (!json_is_string(mv) || json_string_length(mv) == 0) {
            srv_fail(e, 400, "missing_model", "model", "'model' must name one of the served models (GET /v1/models)");
            return NULL;
        }
    }
    srv_model *m = srv_sched_find(r->srv->sched, json_string_value(mv));
    if (!m) {
        srv_fail(e, 404, "model_not_found", "model", "the model '%s' does not exist (GET /v1/models lists them)",
                 json_string_value(mv));
        return NULL;
    }
    snprintf(r->model, sizeof(r->model), "%s", json_string_value(mv));
    srv_model_status st;
    srv_model_get_status(r->srv->sched, m, &st);
    if (st.digest)
        snprintf(r->digest, sizeof(r->digest), "%s", st.digest);
    return m;
}

/* Answers a failed srv_model_acquire: 404 when the model is no longer
 * published in the store (removed or rejected since the request found it),
 * 503 when memory is short or the model failed its integrity check (it is
 * not served), else 500. */
int api_reply_load_error(srv_req *r, const al_error *err)
{
    if (err->status == AL_ERR_CRYPTO)
        return srv_reply_error(r, 503, "model_integrity_failed", "model", "%s", err->msg);
    if (err->status == AL_ERR_NOT_FOUND)
        return srv_reply_error(r, 404, "model_not_found", "model", "%s", err->msg);
    if (err->status == AL_ERR_STATE)
        return srv_reply_error(r, 503, "model_unavailable", "model", "%s", err->msg);
    return srv_reply_error(r, err->status == AL_ERR_LIMIT ? 503 : 500, "model_load_failed", "model",
                           "cannot load model: %s", err->msg);
}

/* The request's prompt as the audit log sees it: a string prompt as is,
 * anything else (messages, lists, token ids) as compact JSON. */
void api_keep_prompt_json(srv_req *r, json_t *v)
{
    if (!v || !r->srv->cfg.audit || r->srv->cfg.audit_content == AL_AUDIT_CONTENT_NONE)
        return;
    if (json_is_string(v)) {
        srv_req_keep_prompt(r, json_string_value(v), json_string_length(v));
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        size_t n = strlen(s);
        srv_req_keep_prompt(r, s, n);
        explicit_bzero(s, n);
        free(s);
    }
}

/* A request being generated may stay silent longer than the idle timeout
 * (queued, or a long prompt): give its connection the request's limit. */
void api_extend_timeout(srv_req *r)
{
    const al_server_config *cfg = &r->srv->cfg;
    unsigned t = cfg->request_timeout_s ? cfg->conn_timeout_s + cfg->request_timeout_s : 0;
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, t);
}

/* Fills a job from params (moves the stop strings) and submits it. */
static bool submit_job(srv_req *r, srv_model *m, gen_params *gp, int32_t *prompt, int32_t n_prompt, int32_t choice,
                       srv_job *prompt_from, srv_job **out, perr *e)
{
    const al_server_config *cfg = &r->srv->cfg;
    srv_job *j = srv_job_new();
    if (!j) {
        free(prompt);
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    }
    j->model = m;
    j->kind = SRV_JOB_GENERATE;
    j->prompt = prompt;
    j->n_prompt = n_prompt;
    int32_t room = (int32_t)cfg->sched.n_ctx - n_prompt;
    int32_t mt = gp->max_tokens > 0 ? gp->max_tokens : cfg->default_max_tokens;
    j->max_tokens = mt < room ? mt : room;
    char qmsg[300]; /* the key's token quota, reserved before the work (server.c) */
    if (!srv_quota_reserve(r, n_prompt, &j->max_tokens, qmsg, sizeof(qmsg))) {
        srv_job_free(j);
        return srv_fail(e, 429, "rate_limit_exceeded", NULL, "%s", qmsg);
    }
    j->sp = gp->sp;
    j->stops = calloc(gp->n_stops ? gp->n_stops : 1, sizeof(char *));
    if (!j->stops) {
        srv_job_free(j);
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    }
    for (size_t i = 0; i < gp->n_stops; i++) {
        size_t l = strlen(gp->stops[i]);
        j->stops[i] = malloc(l + 1);
        if (!j->stops[i]) {
            srv_job_free(j);
            return srv_fail(e, 500, NULL, NULL, "out of memory");
        }
        memcpy(j->stops[i], gp->stops[i], l + 1);
        j->n_stops++;
    }
    j->render_special = gp->render_special;
    j->prompt_from = prompt_from;
    if (gp->n_bias) {
        j->bias_tok = malloc(gp->n_bias * sizeof(int32_t));
        j->bias_val = malloc(gp->n_bias * sizeof(float));
        if (!j->bias_tok || !j->bias_val) {
            srv_job_free(j);
            return srv_fail(e, 500, NULL, NULL, "out of memory");
        }
        memcpy(j->bias_tok, gp->bias_tok, gp->n_bias * sizeof(int32_t));
        memcpy(j->bias_val, gp->bias_val, gp->n_bias * sizeof(float));
        j->n_bias = gp->n_bias;
    }
    /* Choice k of n: another seed, so that the choices differ. */
    if (j->sp.seed != AL_SEED_RANDOM && (j->sp.seed += (uint64_t)choice) == AL_SEED_RANDOM)
        j->sp.seed = 0;
    /* every choice matches the grammar on its own: the compiled grammar is
     * shared, each job holding a reference */
    j->grammar = al_grammar_ref(gp->grammar);
    if (gp->n_grammar_special) {
        j->grammar_special = malloc(gp->n_grammar_special * sizeof(int32_t));
        if (!j->grammar_special) {
            srv_job_free(j);
            return srv_fail(e, 500, NULL, NULL, "out of memory");
        }
        memcpy(j->grammar_special, gp->grammar_special, gp->n_grammar_special * sizeof(int32_t));
        j->n_grammar_special = gp->n_grammar_special;
    }
    j->want_logprobs = gp->logprobs;
    j->top_logprobs = gp->top_logprobs;
    if (cfg->request_timeout_s)
        j->deadline = srv_now() + cfg->request_timeout_s;
    al_error err = {0};
    if (srv_sched_submit(r->srv->sched, j, &err)) {
        srv_job_free(j);
        return srv_fail(e, 429, "rate_limit_exceeded", NULL, "%s; retry shortly", err.msg);
    }
    r->prompt_tokens += n_prompt;
    api_extend_timeout(r);
    *out = j;
    return true;
}

/* choices[index] of a finished chat job: content, reasoning_content and
 * tool_calls as the reply's format gives them. */
static json_t *chat_choice(const gen_ctx *g, srv_job *j, size_t index)
{
    json_t *lp = g->logprobs ? api_chat_logprobs((gen_ctx *)g, j->toks, j->n_toks) : json_null();
    const char *fr = api_finish_str(j->finish);
    srv_parsed p;
    if (!g->parse || !api_parse_reply(g, j->text, j->text_len, true, &p))
        return json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", (int)index, "message", "role", "assistant", "content",
                         api_jstr(j->text, j->text_len), "logprobs", lp, "finish_reason", fr);
    json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                            p.n_calls && !p.n_content ? json_null() : api_jstr(p.content, p.n_content));
    if (msg && p.n_reasoning)
        json_object_set_new(msg, "reasoning_content", api_jstr(p.reasoning, p.n_reasoning));
    if (msg && p.n_calls) {
        char(*ids)[48] = calloc(p.n_calls, sizeof(*ids));
        if (ids)
            json_object_set_new(msg, "tool_calls", api_calls_json(g, &p, 0, p.n_calls, ids, false));
        free(ids);
        if (j->finish == SRV_FINISH_STOP)
            fr = "tool_calls";
    }
    srv_parsed_free(&p);
    return json_pack("{s:i,s:o,s:o,s:s}", "index", (int)index, "message", msg, "logprobs", lp, "finish_reason", fr);
}

/* resp_body: the original body of a POST /v1/responses (r->json then holds
 * its chat translation), else NULL. */
/* The prompts of a generation request, tokenized: one, or several for
 * /v1/completions with a list. */
enum { MAX_PROMPTS = 16 };
typedef struct prompt_set {
    int32_t *tok[MAX_PROMPTS]; /* malloc'd; owned until a job takes them */
    int32_t n[MAX_PROMPTS];
    size_t n_prompts;
    char *text;                /* the rendered chat (malloc'd), or NULL */
    srv_chat_fmt fmt;          /* the format of the template that rendered it */
    bool templated;            /* rendered through a chat template */
} prompt_set;

/* Renders (chats, and /api/generate unless raw) and tokenizes the request's
 * prompts into ps: messages msgs, or prompt (a string, a list of strings,
 * or token ids; for D_OL_GEN not empty). ag: tools and thinking switches. */
static bool tokenize_prompts(al_server *srv, srv_model *m, const al_model *model, dialect d, json_t *b,
                             json_t *msgs, json_t *prompt, srv_agent_req *ag, bool streamed, prompt_set *ps, perr *e)
{
    const al_vocab *vocab = al_model_vocab(model);
    uint32_t n_ctx = srv->cfg.sched.n_ctx;
    bool ok = true;
    if (d == D_OAI_CHAT || d == D_OL_CHAT) {
        ok = api_render_chat(srv, m, model, msgs, ag, &ps->fmt, &ps->text, e) &&
             api_tokenize(vocab, ps->text, strlen(ps->text), true, true, n_ctx, &ps->tok[0], &ps->n[0], e);
        ps->n_prompts = ok;
        ps->templated = true;
    } else if (d == D_OL_GEN) {
        const char *p = json_string_value(prompt); /* not empty: see the caller */
        bool raw = false;
        api_get_bool(b, "raw", &raw, e);
        srv_model_status st;
        srv_model_get_status(srv->sched, m, &st);
        bool has_tmpl = api_chat_template_of(srv, &st, model) != NULL;
        if (!raw && has_tmpl) {
            json_t *mm = json_array();
            json_t *sys = json_object_get(b, "system");
            if (json_is_string(sys) && json_string_length(sys))
                json_array_append_new(mm, json_pack("{s:s,s:O}", "role", "system", "content", sys));
            json_array_append_new(mm, json_pack("{s:s,s:s}", "role", "user", "content", p));
            ag->tools = NULL; /* /api/generate takes no tools */
            ok = api_render_chat(srv, m, model, mm, ag, &ps->fmt, &ps->text, e) &&
                 api_tokenize(vocab, ps->text, strlen(ps->text), true, true, n_ctx, &ps->tok[0], &ps->n[0], e);
            json_decref(mm);
            ps->templated = true;
        } else {
            ok = api_tokenize(vocab, p, strlen(p), true, false, n_ctx, &ps->tok[0], &ps->n[0], e);
        }
        ps->n_prompts = ok;
    } else if (json_is_string(prompt)) {
        ok = api_tokenize(vocab, json_string_value(prompt), json_string_length(prompt), true, false, n_ctx, &ps->tok[0],
                          &ps->n[0], e);
        ps->n_prompts = ok;
    } else {
        /* A list of strings, or one prompt given as token ids. */
        json_t *first = json_array_get(prompt, 0);
        if (json_is_integer(first)) {
            size_t n = json_array_size(prompt), i;
            json_t *t;
            ok = n < n_ctx || srv_fail(e, 400, "context_length_exceeded", "prompt",
                                       "the prompt has %zu tokens; the context holds %u", n, n_ctx);
            ps->tok[0] = ok ? malloc(n * sizeof(int32_t)) : NULL;
            ok = ok && (ps->tok[0] || srv_fail(e, 500, NULL, NULL, "out of memory"));
            json_array_foreach(prompt, i, t)
            {
                if (!ok)
                    break;
                json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
                if (v < 0 || v >= al_vocab_n_tokens(vocab))
                    ok = srv_fail(e, 400, "invalid_value", "prompt", "prompt[%zu] is not a token id of this model",
                                  i);
                else
                    ps->tok[0][i] = (int32_t)v;
            }
            ps->n[0] = (int32_t)n;
            ps->n_prompts = ok;
        } else {
            size_t n = json_array_size(prompt), i;
            json_t *t;
            if (n > MAX_PROMPTS)
                ok = srv_fail(e, 400, "invalid_value", "prompt", "at most %d prompts per request", MAX_PROMPTS);
            else if (n > 1 && streamed)
                ok = srv_fail(e, 400, "unsupported_value", "prompt", "streaming takes a single prompt");
            json_array_foreach(prompt, i, t)
            {
                if (!ok)
                    break;
                if (!json_is_string(t)) {
                    ok = srv_fail(e, 400, "invalid_type", "prompt", "prompt[%zu] must be a string", i);
                    break;
                }
                ok = api_tokenize(vocab, json_string_value(t), json_string_length(t), true, false, n_ctx, &ps->tok[i],
                                  &ps->n[i], e);
                ps->n_prompts += ok;
            }
        }
    }
    return ok;
}

/* Reasoning and tool calls are parsed out of replies in the format of the
 * template that rendered the prompt (fmt, text): sets g's parse options,
 * gp->render_special and, for tool_choice "required" / named, gp's grammar.
 * resp_body: a POST /v1/responses body (g->resp is made for it), or NULL. */
static bool setup_reply_parse(al_server *srv, gen_ctx *g, gen_params *gp, const srv_agent_req *ag,
                              const srv_chat_fmt *fmt, const char *text, json_t *resp_body, const al_vocab *vocab,
                              perr *e)
{
    bool ok = true;
    bool tools_on = ag->tools && ag->choice != SRV_TC_NONE;
    bool split = !srv->cfg.reasoning_inline && fmt->think != SRV_THINK_NONE;
    g->parse = tools_on || split;
    g->po.fmt = *fmt;
    g->po.tools = tools_on;
    g->po.split_reasoning = !srv->cfg.reasoning_inline;
    g->po.in_think = fmt->think == SRV_THINK_TAGS && text && srv_prompt_opens_think(text, strlen(text));
    g->po.tool_defs = tools_on ? json_incref(ag->tools) : NULL;
    g->parallel = ag->parallel;
    if (resp_body && (g->resp = calloc(1, sizeof(*g->resp))))
        srv_resp_init(g->resp, g->model_name, resp_body, NULL, NULL);
    if (resp_body && !g->resp)
        ok = srv_fail(e, 500, NULL, NULL, "out of memory");
    g->parse = g->parse || g->resp; /* the Responses API always shapes the parse */
    /* Markers that are control tokens are rendered for the parser, and
     * gpt-oss's always: without them its channels would run together. */
    gp->render_special = fmt->special_markers && (g->parse || fmt->think == SRV_THINK_HARMONY);
    /* tool_choice "required" / named: the reply is constrained to a call (of
     * ag->choice_name) in the template's format whose arguments follow the
     * tool's parameters schema. */
    if (ok && tools_on && (ag->choice == SRV_TC_REQUIRED || ag->choice == SRV_TC_NAMED))
        ok = api_tool_choice_grammar(gp, ag, fmt, g->po.in_think, vocab, e);
    return ok;
}

/* Queues n_choices jobs per prompt of ps into jobs[*n_jobs..]: the last
 * choice of a prompt takes its tokens (ps->tok[i] becomes NULL), the
 * others a copy; choices after the first copy their prompt's KV (sched.c). */
static bool submit_choices(srv_req *r, srv_model *m, gen_params *gp, prompt_set *ps, int32_t n_choices,
                           srv_job **jobs, size_t *n_jobs, perr *e)
{
    bool ok = true;
    for (size_t i = 0; ok && i < ps->n_prompts; i++) {
        for (int32_t k = 0; ok && k < n_choices; k++) {
            int32_t *pt = ps->tok[i];
            if (k + 1 < n_choices) { /* the last choice takes the prompt itself */
                pt = malloc((size_t)ps->n[i] * sizeof(int32_t));
                if (!pt) {
                    ok = srv_fail(e, 500, NULL, NULL, "out of memory");
                    break;
                }
                memcpy(pt, ps->tok[i], (size_t)ps->n[i] * sizeof(int32_t));
            } else {
                ps->tok[i] = NULL; /* the job owns it (or freed it) */
            }
            srv_job *from = k > 0 ? jobs[*n_jobs - (size_t)k] : NULL;
            ok = submit_job(r, m, gp, pt, ps->n[i], k, from, &jobs[*n_jobs], e);
            *n_jobs += ok;
        }
    }
    return ok;
}

/* The answer to a request that is not streamed, once its jobs all ended
 * well: the dialect's completion object, or the Responses API's. Counts
 * the generated tokens in r; keeps the completion for the audit. */
static json_t *final_answer(srv_req *r, gen_ctx *g, srv_job **jobs, size_t n_jobs, int32_t n_choices)
{
    dialect d = g->d;
    json_t *o = NULL;
    int32_t tp = 0, tg = 0, tc = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        if (i % (size_t)n_choices == 0) { /* the n choices of a prompt count it once */
            tp += jobs[i]->n_prompt;
            tc += jobs[i]->n_cached;
        }
        tg += jobs[i]->n_gen;
    }
    r->completion_tokens = tg;
    srv_job *j = jobs[0];
    srv_req_keep_completion(r, j->text, j->text_len);
    json_t *t = api_jstr(j->text, j->text_len);
    srv_parsed pr = {0};
    if (g->parse && d != D_OAI_CHAT && d != D_OAI_COMPL && !api_parse_reply(g, j->text, j->text_len, true, &pr))
        g->parse = false;
    if (g->resp) { /* POST /v1/responses */
        json_decref(t);
        srv_parsed rp;
        if (api_parse_reply(g, j->text, j->text_len, true, &rp)) {
            char(*ids)[48] = calloc(rp.n_calls ? rp.n_calls : 1, sizeof(*ids));
            for (size_t i = 0; ids && i < rp.n_calls; i++)
                srv_call_id(&rp.calls[i], g->po.fmt.tools, ids[i]);
            if (ids)
                srv_resp_update(g->resp, &rp, rp.n_calls, ids);
            o = srv_resp_finish(g->resp, &rp, j->finish == SRV_FINISH_LENGTH, tp, tg, tc);
            free(ids);
            srv_parsed_free(&rp);
        }
    } else switch (d) {
    case D_OAI_CHAT: {
        json_decref(t);
        json_t *choices = json_array();
        for (size_t i = 0; i < n_jobs; i++)
            json_array_append_new(choices, chat_choice(g, jobs[i], i));
        o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", g->id, "object", "chat.completion", "created",
                      (json_int_t)g->created, "model", g->model_name, "system_fingerprint", "airlock-" AL_VERSION,
                      "choices", choices, "usage", api_usage_json(tp, tg, tc));
        break;
    }
    case D_OAI_COMPL: {
        json_decref(t);
        json_t *choices = json_array();
        for (size_t i = 0; i < n_jobs; i++) {
            g->text_offset = 0;
            json_t *lp = g->logprobs ? api_compl_logprobs(g, jobs[i]->toks, jobs[i]->n_toks) : json_null();
            json_array_append_new(choices, json_pack("{s:o,s:i,s:o,s:s}", "text",
                                                     api_jstr(jobs[i]->text, jobs[i]->text_len), "index", (int)i,
                                                     "logprobs", lp, "finish_reason",
                                                     api_finish_str(jobs[i]->finish)));
        }
        o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", g->id, "object", "text_completion", "created",
                      (json_int_t)g->created, "model", g->model_name, "system_fingerprint", "airlock-" AL_VERSION,
                      "choices", choices, "usage", api_usage_json(tp, tg, tc));
        break;
    }
    case D_OL_CHAT: {
        json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                                g->parse ? api_jstr(pr.content, pr.n_content) : json_incref(t));
        if (msg && g->parse && pr.n_reasoning)
            json_object_set_new(msg, "thinking", api_jstr(pr.reasoning, pr.n_reasoning));
        if (msg && g->parse && pr.n_calls) {
            char(*ids)[48] = calloc(pr.n_calls, sizeof(*ids));
            if (ids)
                json_object_set_new(msg, "tool_calls", api_calls_json(g, &pr, 0, pr.n_calls, ids, false));
            free(ids);
        }
        json_decref(t);
        o = json_pack("{s:s,s:o,s:o,s:b,s:s}", "model", g->model_name, "created_at", api_rfc3339_now(), "message",
                      msg, "done", 1, "done_reason", api_finish_str(j->finish));
        if (o)
            api_ollama_stats(o, j, g->t_start);
        break;
    }
    case D_OL_GEN:
        o = json_pack("{s:s,s:o,s:o,s:b,s:s}", "model", g->model_name, "created_at", api_rfc3339_now(), "response",
                      g->parse ? api_jstr(pr.content, pr.n_content) : json_incref(t), "done", 1, "done_reason",
                      api_finish_str(j->finish));
        if (o && g->parse && pr.n_reasoning)
            json_object_set_new(o, "thinking", api_jstr(pr.reasoning, pr.n_reasoning));
        json_decref(t);
        if (o)
            api_ollama_stats(o, j, g->t_start);
        break;
    }
    srv_parsed_free(&pr);
    return o;
}

int api_handle_generate(srv_req *r, dialect d, json_t *resp_body)
{
    al_server *srv = r->srv;
    json_t *b = r->json;
    perr e = {0};
    gen_params gp = {0};
    srv_model *m = api_find_model(r, b, "model", &e);
    if (!m)
        return api_reply_perr(r, &e);
    bool ok = (d == D_OAI_CHAT || d == D_OAI_COMPL) ? api_parse_oai_params(b, d, &srv->cfg, &gp, &e)
                                                    : api_parse_ollama_params(b, &srv->cfg, &gp, &e);
    srv_agent_req ag = {.parallel = true, .think = -1};
    if (ok && d != D_OAI_COMPL) {
        char where[256], msg[512];
        if (!srv_agent_parse(b, d == D_OL_CHAT || d == D_OL_GEN, false, &ag, where, sizeof(where), msg, sizeof(msg)))
            ok = srv_fail(&e, 400, "invalid_value", where, "%s: %s", where, msg);
    }
    if (!ok) {
        api_gen_params_free(&gp);
        return api_reply_perr(r, &e);
    }
    /* Check the prompt fields before loading anything. */
    json_t *msgs = NULL, *prompt = NULL;
    if (d == D_OAI_CHAT || d == D_OL_CHAT) {
        msgs = api_normalize_messages(json_object_get(b, "messages"), d == D_OL_CHAT, &e);
        if (!msgs) {
            api_gen_params_free(&gp);
            return api_reply_perr(r, &e);
        }
    } else {
        prompt = json_object_get(b, "prompt");
        bool okp = json_is_string(prompt) || (d == D_OAI_COMPL && json_is_array(prompt) && json_array_size(prompt));
        if (d == D_OL_GEN && (!prompt || json_is_null(prompt)))
            okp = true;
        if (!okp) {
            api_gen_params_free(&gp);
            return srv_reply_error(r, 400, "invalid_type", "prompt",
                                   "'prompt' must be a string%s", d == D_OAI_COMPL ? " or a non-empty list" : "");
        }
    }
    const al_model *model = NULL;
    al_error err = {0};
    api_keep_prompt_json(r, msgs ? json_object_get(b, "messages") : prompt);
    if (srv_model_acquire(srv->sched, m, &model, &err)) {
        json_decref(msgs);
        api_gen_params_free(&gp);
        return api_reply_load_error(r, &err);
    }
    const al_vocab *vocab = al_model_vocab(model);
    gen_ctx g = {.srv = srv, .d = d, .created = (int64_t)time(NULL), .vocab = vocab, .logprobs = gp.logprobs,
                 .top_logprobs = gp.top_logprobs, .include_usage = gp.include_usage, .t_start = r->t_start};
    snprintf(g.model_name, sizeof(g.model_name), "%s", r->model);
    api_make_id(srv, d == D_OAI_CHAT ? "chatcmpl-" : "cmpl-", g.id, sizeof(g.id));

    prompt_set ps = {0};
    int ret;
    for (size_t i = 0; i < gp.n_bias; i++)
        if (gp.bias_tok[i] >= al_vocab_n_tokens(vocab)) {
            int32_t bad_id = gp.bias_tok[i], n_vocab = al_vocab_n_tokens(vocab);
            json_decref(msgs);
            api_gen_params_free(&gp);
            srv_model_release(srv->sched, m);
            return srv_reply_error(r, 400, "invalid_value", "logit_bias",
                                   "logit_bias: token id %d is not in this model's vocabulary (%d tokens)", bad_id,
                                   n_vocab);
        }
    const char *gen_prompt = d == D_OL_GEN ? json_string_value(prompt) : NULL;
    if (d == D_OL_GEN && (!gen_prompt || !*gen_prompt)) {
        /* Ollama's way to load a model: an empty prompt. */
        json_decref(msgs);
        api_gen_params_free(&gp);
        srv_model_release(srv->sched, m);
        return srv_reply_json(r, 200,
                              json_pack("{s:s,s:o,s:s,s:b,s:s}", "model", g.model_name, "created_at",
                                        api_rfc3339_now(), "response", "", "done", 1, "done_reason", "load"));
    }
    ok = tokenize_prompts(srv, m, model, d, b, msgs, prompt, &ag, gp.stream, &ps, &e);
    /* Reasoning and tool calls are parsed out of replies in the template's format. */
    if (ok && ps.templated)
        ok = setup_reply_parse(srv, &g, &gp, &ag, &ps.fmt, ps.text, resp_body, vocab, &e);
    free(ps.text);
    json_decref(msgs);
    enum { MAX_JOBS = MAX_PROMPTS * 8 };
    srv_job *jobs[MAX_JOBS] = {0};
    size_t n_jobs = 0;
    int32_t n_choices = gp.n_choices > 0 ? gp.n_choices : 1;
    if (ok)
        ok = submit_choices(r, m, &gp, &ps, n_choices, jobs, &n_jobs, &e);
    for (size_t i = 0; i < MAX_PROMPTS; i++)
        free(ps.tok[i]);
    api_gen_params_free(&gp);
    if (!ok) {
        /* All let go before any is freed: a later choice may point at an earlier one. */
        for (size_t i = 0; i < n_jobs; i++)
            srv_job_cancel_wait(srv->sched, jobs[i]);
        for (size_t i = 0; i < n_jobs; i++)
            srv_job_free(jobs[i]);
        json_decref(g.po.tool_defs);
        api_resp_free(g.resp);
        srv_model_release(srv->sched, m);
        return api_reply_perr(r, &e);
    }
    g.n_prompt = jobs[0]->n_prompt;
    if (g.logprobs)
        g.top_logprobs = jobs[0]->top_logprobs;
    if (gp.stream)
        return api_start_stream(r, &g, jobs, n_jobs, m); /* one prompt: n_jobs == n_choices */

    for (size_t i = 0; i < n_jobs; i++)
        srv_job_wait_done(srv->sched, jobs[i], srv_client_alive, r);
    int bad = 0;
    for (size_t i = 0; i < n_jobs && !bad; i++)
        bad = api_job_error(jobs[i], &e);
    if (bad) {
        ret = bad == 499 ? MHD_NO : api_reply_perr(r, &e);
    } else {
        json_t *o = final_answer(r, &g, jobs, n_jobs, n_choices);
        ret = srv_reply_json(r, 200, o);
    }
    for (size_t i = 0; i < n_jobs; i++) {
        api_observe_job(srv, jobs[i], r->t_start);
        srv_job_free(jobs[i]);
    }
    json_decref(g.po.tool_defs);
    api_resp_free(g.resp);
    srv_model_release(srv->sched, m);
    return ret;
}

/* POST /v1/responses: translated into a chat request (responses.c). */
int api_handle_responses(srv_req *r)
{
    char where[128], msg[512];
    json_t *chat = srv_responses_to_chat(r->json, where, sizeof(where), msg, sizeof(msg));
    if (!chat && !where[0])
        return srv_reply_error(r, 500, NULL, NULL, "%s", msg);
    if (!chat)
        return srv_reply_error(r, 400, "invalid_value", where, "%s: %s", where, msg);
    json_t *orig = r->json;
    r->json = chat;
    int ret = api_handle_generate(r, D_OAI_CHAT, orig);
    r->json = orig;
    json_decref(chat);
    return ret;
}
