/*
 * api_reply.c - shaping answers: a generation's parsed reply (tool calls,
 * reasoning), logprobs, usage, Ollama's timings and job errors.
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

/* ------------------------------------------------------------ responses */

void api_resp_free(srv_resp_state *st)
{
    if (st) {
        srv_resp_free(st);
        free(st);
    }
}

/* The reply parsed as g asks; calls cut to one without parallel_tool_calls. */
bool api_parse_reply(const gen_ctx *g, const char *text, size_t n, bool final, srv_parsed *p)
{
    if (!srv_reply_parse(&g->po, text ? text : "", text ? n : 0, final, p))
        return false;
    if (!g->parallel)
        while (p->n_calls > 1) {
            srv_tool_call *c = &p->calls[--p->n_calls];
            free(c->id);
            free(c->name);
            free(c->args);
        }
    return true;
}

/* message.tool_calls of calls [from, to): OpenAI's shape (with "index" in
 * stream deltas) or Ollama's. ids[] holds each call's id, made on first use. */
json_t *api_calls_json(const gen_ctx *g, const srv_parsed *p, size_t from, size_t to, char (*ids)[48], bool delta)
{
    json_t *a = json_array();
    for (size_t i = from; i < to; i++) {
        if (!ids[i][0])
            srv_call_id(&p->calls[i], g->po.fmt.tools, ids[i]);
        json_t *c = g->d == D_OL_CHAT ? srv_call_ollama(&p->calls[i], ids[i], i) : srv_call_oai(&p->calls[i], ids[i], i);
        if (c && !delta && g->d != D_OL_CHAT)
            json_object_del(c, "index");
        json_array_append_new(a, c);
    }
    return a;
}

const char *api_finish_str(srv_finish f)
{
    return f == SRV_FINISH_LENGTH ? "length" : "stop";
}

static json_t *tok_json_bytes(const char *p)
{
    json_t *a = json_array();
    for (const unsigned char *q = (const unsigned char *)p; *q; q++)
        json_array_append_new(a, json_integer(*q));
    return a;
}

json_t *api_chat_logprobs(gen_ctx *g, const srv_tok_info *t, size_t n)
{
    json_t *content = json_array();
    char p[256];
    for (size_t i = 0; i < n; i++) {
        api_piece_of(g->vocab, t[i].token, p, sizeof(p));
        json_t *top = json_array();
        for (int32_t k = 0; k < t[i].n_top && k < g->top_logprobs; k++) {
            char q[256];
            api_piece_of(g->vocab, t[i].top_id[k], q, sizeof(q));
            json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", api_jstr(q, strlen(q)), "logprob",
                                                 (double)t[i].top_lp[k], "bytes", tok_json_bytes(q)));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", api_jstr(p, strlen(p)), "logprob",
                                                  (double)t[i].logprob, "bytes", tok_json_bytes(p), "top_logprobs",
                                                  top));
    }
    return json_pack("{s:o}", "content", content);
}

json_t *api_compl_logprobs(gen_ctx *g, const srv_tok_info *t, size_t n)
{
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    char p[256];
    for (size_t i = 0; i < n; i++) {
        api_piece_of(g->vocab, t[i].token, p, sizeof(p));
        json_array_append_new(toks, api_jstr(p, strlen(p)));
        json_array_append_new(lps, json_real(t[i].logprob));
        json_t *top = json_object();
        for (int32_t k = 0; k < t[i].n_top && k < g->top_logprobs; k++) {
            char q[256];
            api_piece_of(g->vocab, t[i].top_id[k], q, sizeof(q));
            json_t *qs = api_jstr(q, strlen(q));
            if (qs)
                json_object_set_new(top, json_string_value(qs), json_real(t[i].top_lp[k]));
            json_decref(qs);
        }
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)g->text_offset));
        g->text_offset += strlen(p);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

json_t *api_usage_json(int32_t n_prompt, int32_t n_gen, int32_t n_cached)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", n_prompt, "completion_tokens", n_gen, "total_tokens",
                     n_prompt + n_gen, "prompt_tokens_details", "cached_tokens", n_cached);
}

void api_ollama_stats(json_t *o, const srv_job *j, double t_start)
{
    double t_end = j->t_done > 0 ? j->t_done : srv_now();
    double t_first = j->t_first > 0 ? j->t_first : t_end;
    double t_admit = j->t_start > 0 ? j->t_start : t_first;
    json_object_set_new(o, "total_duration", json_integer((json_int_t)((t_end - t_start) * 1e9)));
    json_object_set_new(o, "load_duration", json_integer((json_int_t)((t_admit - t_start) * 1e9)));
    json_object_set_new(o, "prompt_eval_count", json_integer(j->n_prompt));
    json_object_set_new(o, "prompt_eval_duration", json_integer((json_int_t)((t_first - t_admit) * 1e9)));
    json_object_set_new(o, "eval_count", json_integer(j->n_gen));
    json_object_set_new(o, "eval_duration", json_integer((json_int_t)((t_end - t_first) * 1e9)));
}

void api_observe_job(al_server *srv, const srv_job *j, double t_start)
{
    if (j->n_gen > 0 && j->t_first > 0) {
        srv_metrics_observe(srv->metrics, SRV_H_TTFT, j->t_first - t_start);
        if (j->n_gen > 1 && j->t_done > j->t_first)
            srv_metrics_observe(srv->metrics, SRV_H_TPOT, (j->t_done - j->t_first) / (j->n_gen - 1));
    }
    srv_metrics_observe(srv->metrics, SRV_H_DURATION, (j->t_done > 0 ? j->t_done : srv_now()) - t_start);
}

/* Status and message for a job that ended badly; 0 when it ended well. */
int api_job_error(const srv_job *j, perr *e)
{
    switch (j->finish) {
    case SRV_FINISH_ERROR:
        srv_fail(e, j->err.status == AL_ERR_LIMIT || j->err.status == AL_ERR_UNSUPPORTED ? 400 : 500,
                 "generation_failed", NULL, "generation failed: %s", j->err.msg);
        return e->status;
    case SRV_FINISH_TIMEOUT:
        srv_fail(e, 408, "request_timeout", NULL, "the request ran longer than the server's limit");
        return 408;
    case SRV_FINISH_CANCELLED:
        srv_fail(e, 499, "cancelled", NULL, "cancelled");
        return 499;
    default:
        return 0;
    }
}
