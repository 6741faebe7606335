/*
 * api_stream.c - streamed answers: OpenAI SSE chunks and Ollama NDJSON
 * lines, produced as the scheduler's jobs advance.
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

/* ---------------------------------------------------------------- stream */

typedef struct stream {
    gen_ctx g;
    srv_sched *sched;
    srv_job *job;
    srv_model *model;
    srv_req *req;             /* its connection, and the audit's counts; valid while the stream is read */
    size_t text_pos, tok_pos;
    int phase;                /* 0 first, 1 running, 2 done */
    char *buf;                /* bytes ready for MHD */
    size_t buf_len, buf_off, buf_cap;
    /* g.parse: the whole reply so far, and what of its parse was sent */
    char *all;
    size_t n_all, cap_all;
    size_t sent_content, sent_reasoning, sent_calls;
    char (*ids)[48];          /* (MAX_CALLS) */
    /* n > 1 (OpenAI chat/completions): one stream per choice; the first
     * owns the others, the buffer and the connection */
    int index;                /* choices[].index */
    struct stream *owner;     /* NULL: this is the first (or only) choice */
    struct stream *subs[8];   /* the first's: choices 1..n-1 (owned) */
    size_t n_subs;
    bool all_done;            /* the first's: every choice finished, usage and [DONE] sent */
} stream;

static bool sbuf_add(stream *s, const char *p, size_t n)
{
    if (s->owner)
        s = s->owner; /* every choice writes to the one connection */
    if (s->buf_len + n > s->buf_cap) {
        size_t cap = s->buf_cap ? s->buf_cap : 1024;
        while (cap < s->buf_len + n)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb)
            return false;
        s->buf = nb;
        s->buf_cap = cap;
    }
    memcpy(s->buf + s->buf_len, p, n);
    s->buf_len += n;
    return true;
}

/* Frames one event: "data: {...}\n\n" (SSE) or "{...}\n" (NDJSON). */
static void emit(stream *s, json_t *o)
{
    char *j = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!j)
        return;
    bool sse = s->g.d == D_OAI_CHAT || s->g.d == D_OAI_COMPL;
    if (sse)
        sbuf_add(s, "data: ", 6);
    sbuf_add(s, j, strlen(j));
    sbuf_add(s, sse ? "\n\n" : "\n", sse ? 2 : 1);
    free(j);
}

/* One Responses API event: "event: TYPE\ndata: {...}\n\n". */
static void emit_event(void *user, const char *type, json_t *o)
{
    stream *s = user;
    char *j = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!j)
        return;
    sbuf_add(s, "event: ", 7);
    sbuf_add(s, type, strlen(type));
    sbuf_add(s, "\ndata: ", 7);
    sbuf_add(s, j, strlen(j));
    sbuf_add(s, "\n\n", 2);
    free(j);
}

static json_t *oai_chunk(stream *s, json_t *choice)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[o]}", "id", s->g.id, "object",
                          s->g.d == D_OAI_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)s->g.created, "model", s->g.model_name, "system_fingerprint",
                          "airlock-" AL_VERSION, "choices", choice);
    if (o && s->g.include_usage)
        json_object_set_new(o, "usage", json_null());
    return o;
}

/* g.parse: adds the view's text to the reply, parses it again and emits
 * what is new: reasoning, content, then whole tool calls. */
static bool stream_parsed(stream *s, const srv_job_view *v)
{
    if (v->n_text) {
        if (s->n_all + v->n_text + 1 > s->cap_all) {
            size_t cap = s->cap_all ? s->cap_all : 1024;
            while (cap < s->n_all + v->n_text + 1)
                cap *= 2;
            char *nb = realloc(s->all, cap);
            if (!nb)
                return false;
            s->all = nb;
            s->cap_all = cap;
        }
        memcpy(s->all + s->n_all, v->text, v->n_text);
        s->n_all += v->n_text;
        s->all[s->n_all] = 0;
    }
    if (!s->ids && !(s->ids = calloc(MAX_CALLS, sizeof(*s->ids))))
        return false;
    srv_parsed p;
    if (!api_parse_reply(&s->g, s->all, s->n_all, v->finish != SRV_FINISH_NONE, &p))
        return false;
    size_t nc = p.n_calls < MAX_CALLS ? p.n_calls : MAX_CALLS;
    if (s->g.resp) {
        for (size_t i = s->sent_calls; i < nc; i++)
            srv_call_id(&p.calls[i], s->g.po.fmt.tools, s->ids[i]);
        srv_resp_update(s->g.resp, &p, nc, s->ids);
        s->sent_calls = nc;
        if (v->finish == SRV_FINISH_STOP || v->finish == SRV_FINISH_LENGTH)
            json_decref(srv_resp_finish(s->g.resp, &p, v->finish == SRV_FINISH_LENGTH, s->job->n_prompt, v->n_gen,
                                        v->n_cached));
        srv_parsed_free(&p);
        return true;
    }
    bool new_r = p.n_reasoning > s->sent_reasoning, new_c = p.n_content > s->sent_content, new_t = nc > s->sent_calls;
    json_t *r = new_r ? api_jstr(p.reasoning + s->sent_reasoning, p.n_reasoning - s->sent_reasoning) : NULL;
    json_t *c = new_c ? api_jstr(p.content + s->sent_content, p.n_content - s->sent_content) : NULL;
    json_t *t = new_t ? api_calls_json(&s->g, &p, s->sent_calls, nc, s->ids, true) : NULL;
    switch (s->g.d) {
    case D_OAI_CHAT: {
        json_t *lp = s->g.logprobs && v->n_toks_new ? api_chat_logprobs(&s->g, v->toks, v->n_toks_new) : NULL;
        json_t *parts[3] = {r, c, t};
        const char *keys[3] = {"reasoning_content", "content", "tool_calls"};
        for (int k = 0; k < 3; k++) {
            if (!parts[k])
                continue;
            json_t *delta = json_object();
            json_object_set_new(delta, keys[k], parts[k]);
            emit(s, oai_chunk(s, json_pack("{s:i,s:o,s:o,s:n}", "index", s->index, "delta", delta, "logprobs",
                                           lp ? lp : json_null(), "finish_reason")));
            lp = NULL;
        }
        if (lp)
            emit(s, oai_chunk(s, json_pack("{s:i,s:{},s:o,s:n}", "index", s->index, "delta", "logprobs", lp,
                                           "finish_reason")));
        break;
    }
    case D_OL_CHAT:
    case D_OL_GEN:
        if (r || c || t) {
            json_t *o;
            if (s->g.d == D_OL_CHAT) {
                json_t *m = json_pack("{s:s,s:o}", "role", "assistant", "content", c ? c : json_string(""));
                if (r)
                    json_object_set_new(m, "thinking", r);
                if (t)
                    json_object_set_new(m, "tool_calls", t);
                o = json_pack("{s:s,s:o,s:o,s:b}", "model", s->g.model_name, "created_at", api_rfc3339_now(), "message",
                              m, "done", 0);
            } else {
                json_decref(t);
                o = json_pack("{s:s,s:o,s:o,s:b}", "model", s->g.model_name, "created_at", api_rfc3339_now(),
                              "response", c ? c : json_string(""), "done", 0);
                if (o && r)
                    json_object_set_new(o, "thinking", r);
            }
            emit(s, o);
        }
        break;
    case D_OAI_COMPL:
        json_decref(r);
        json_decref(c);
        json_decref(t);
        break;
    }
    s->sent_reasoning = p.n_reasoning > s->sent_reasoning ? p.n_reasoning : s->sent_reasoning;
    s->sent_content = p.n_content > s->sent_content ? p.n_content : s->sent_content;
    s->sent_calls = nc > s->sent_calls ? nc : s->sent_calls;
    srv_parsed_free(&p);
    return true;
}

/* Once every choice of s (the first) has finished: the usage chunk (when
 * asked) and "data: [DONE]" for SSE, the audit's token count. */
static void stream_all_done(stream *s, bool sse_ok)
{
    if (s->all_done || s->phase != 2)
        return;
    int32_t n_gen = s->job->n_gen;
    for (size_t i = 0; i < s->n_subs; i++) {
        if (s->subs[i]->phase != 2)
            return;
        n_gen += s->subs[i]->job->n_gen;
    }
    s->all_done = true;
    s->req->completion_tokens = n_gen;
    bool sse = (s->g.d == D_OAI_CHAT || s->g.d == D_OAI_COMPL) && !s->g.resp;
    if (sse && sse_ok && s->g.include_usage)
        emit(s, json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:o}", "id", s->g.id, "object",
                          s->g.d == D_OAI_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)s->g.created, "model", s->g.model_name, "system_fingerprint",
                          "airlock-" AL_VERSION, "choices", "usage",
                          api_usage_json(s->job->n_prompt, n_gen, s->job->n_cached)));
    if (sse)
        sbuf_add(s, "data: [DONE]\n\n", 14);
}

/* Turns new job output into events; returns false when nothing new. */
static bool stream_produce(stream *s)
{
    srv_job_view v;
    if (!srv_job_view_take(s->sched, s->job, s->text_pos, s->tok_pos, &v))
        return false;
    bool produced = false;
    if (s->phase == 0 && s->g.resp) {
        srv_resp_begin(s->g.resp);
        produced = true;
    } else if (s->phase == 0 && s->g.d == D_OAI_CHAT) {
        emit(s, oai_chunk(s, json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", s->index, "delta", "role", "assistant",
                                       "content", "", "logprobs", "finish_reason")));
        produced = true;
    }
    if (s->phase == 0)
        s->phase = 1;
    if (s->g.parse) {
        stream_parsed(s, &v); /* out of memory loses a delta; the finish below still ends the stream */
        s->text_pos = v.text_end;
        s->tok_pos = v.toks_end;
        produced = true;
    } else if (v.n_text || v.n_toks_new) {
        json_t *t = api_jstr(v.text, v.n_text);
        switch (s->g.d) {
        case D_OAI_CHAT: {
            json_t *lp = s->g.logprobs ? api_chat_logprobs(&s->g, v.toks, v.n_toks_new) : json_null();
            emit(s, oai_chunk(s, json_pack("{s:i,s:{s:o},s:o,s:n}", "index", s->index, "delta", "content", t, "logprobs",
                                           lp, "finish_reason")));
            break;
        }
        case D_OAI_COMPL: {
            json_t *lp = s->g.logprobs ? api_compl_logprobs(&s->g, v.toks, v.n_toks_new) : json_null();
            emit(s, oai_chunk(s, json_pack("{s:o,s:i,s:o,s:n}", "text", t, "index", s->index, "logprobs", lp,
                                           "finish_reason")));
            break;
        }
        case D_OL_CHAT:
            emit(s, json_pack("{s:s,s:o,s:{s:s,s:o},s:b}", "model", s->g.model_name, "created_at", api_rfc3339_now(),
                              "message", "role", "assistant", "content", t, "done", 0));
            break;
        case D_OL_GEN:
            emit(s, json_pack("{s:s,s:o,s:o,s:b}", "model", s->g.model_name, "created_at", api_rfc3339_now(),
                              "response", t, "done", 0));
            break;
        }
        s->text_pos = v.text_end;
        s->tok_pos = v.toks_end;
        produced = true;
    }
    if (v.finish != SRV_FINISH_NONE && v.text_end == s->text_pos && v.toks_end == s->tok_pos) {
        perr e = {0};
        int bad = api_job_error(s->job, &e);
        bool sse = s->g.d == D_OAI_CHAT || s->g.d == D_OAI_COMPL;
        if (bad && s->g.resp) {
            emit_event(s, "error", json_pack("{s:s,s:s,s:s,s:n}", "type", "error", "code", e.code ? e.code : "error",
                                             "message", e.msg, "param"));
        } else if (s->g.resp) {
            /* response.completed went out with the last parse */
        } else if (bad) {
            if (sse)
                emit(s, json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", e.msg, "type",
                                  bad >= 500 ? "server_error" : "invalid_request_error", "param", "code",
                                  e.code ? e.code : ""));
            else
                emit(s, json_pack("{s:s}", "error", e.msg));
        } else if (sse) {
            const char *fr = s->sent_calls && v.finish == SRV_FINISH_STOP ? "tool_calls" : api_finish_str(v.finish);
            if (s->g.d == D_OAI_CHAT)
                emit(s, oai_chunk(s, json_pack("{s:i,s:{},s:n,s:s}", "index", s->index, "delta", "logprobs",
                                               "finish_reason", fr)));
            else
                emit(s, oai_chunk(s, json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", s->index, "logprobs",
                                               "finish_reason", fr)));
        } else {
            json_t *o = s->g.d == D_OL_CHAT
                            ? json_pack("{s:s,s:o,s:{s:s,s:s},s:b,s:s}", "model", s->g.model_name, "created_at",
                                        api_rfc3339_now(), "message", "role", "assistant", "content", "", "done", 1,
                                        "done_reason", api_finish_str(v.finish))
                            : json_pack("{s:s,s:o,s:s,s:b,s:s}", "model", s->g.model_name, "created_at",
                                        api_rfc3339_now(), "response", "", "done", 1, "done_reason",
                                        api_finish_str(v.finish));
            if (o)
                api_ollama_stats(o, s->job, s->g.t_start);
            emit(s, o);
        }
        s->phase = 2;
        stream_all_done(s->owner ? s->owner : s, sse && !s->g.resp && !bad);
        if (!s->owner && s->req->srv->cfg.audit && s->req->srv->cfg.audit_content != AL_AUDIT_CONTENT_NONE) {
            srv_job_view all;
            if (srv_job_view_take(s->sched, s->job, 0, 0, &all)) {
                srv_req_keep_completion(s->req, all.text, all.n_text);
                if (all.text)
                    explicit_bzero(all.text, all.n_text);
                free(all.text);
                free(all.toks);
            }
        }
        produced = true;
    }
    free(v.text);
    free(v.toks);
    return produced;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->buf_off < s->buf_len) {
            size_t n = s->buf_len - s->buf_off;
            if (n > max)
                n = max;
            memcpy(out, s->buf + s->buf_off, n);
            s->buf_off += n;
            if (s->buf_off == s->buf_len)
                s->buf_off = s->buf_len = 0;
            return (ssize_t)n;
        }
        if (s->all_done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (atomic_load(&s->g.srv->stopping))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        bool got = s->phase != 2 && stream_produce(s);
        for (size_t i = 0; i < s->n_subs; i++)
            got |= s->subs[i]->phase != 2 && stream_produce(s->subs[i]);
        if (got)
            continue;
        if (!srv_client_alive(s->req)) {
            srv_job_cancel_wait(s->sched, s->job);
            for (size_t i = 0; i < s->n_subs; i++)
                srv_job_cancel_wait(s->sched, s->subs[i]->job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        /* Wait on a choice still running (others are looked at every 20 ms). */
        stream *w = s;
        for (size_t i = 0; w->phase == 2 && i < s->n_subs; i++)
            w = s->subs[i];
        srv_job_wait(s->sched, w->job, w->text_pos, w->tok_pos, s->n_subs ? 20 : 100);
    }
}

/* One choice's state (not the model pin, not the choices it owns). */
static void stream_free_choice(stream *s)
{
    srv_job_cancel_wait(s->sched, s->job); /* no-op when it finished */
    api_observe_job(s->g.srv, s->job, s->g.t_start);
    srv_job_free(s->job);
    if (s->all)
        explicit_bzero(s->all, s->cap_all);
    free(s->all);
    free(s->ids);
    json_decref(s->g.po.tool_defs);
}

static void stream_free(void *cls)
{
    stream *s = cls;
    /* Every choice lets go of its job before any is freed (prompt_from). */
    for (size_t i = 0; i < s->n_subs; i++)
        srv_job_cancel_wait(s->sched, s->subs[i]->job);
    srv_job_cancel_wait(s->sched, s->job);
    for (size_t i = 0; i < s->n_subs; i++) {
        stream_free_choice(s->subs[i]);
        free(s->subs[i]);
    }
    api_observe_job(s->g.srv, s->job, s->g.t_start);
    srv_model_release(s->sched, s->model);
    srv_job_free(s->job);
    free(s->buf);
    if (s->all)
        explicit_bzero(s->all, s->cap_all);
    free(s->all);
    free(s->ids);
    json_decref(s->g.po.tool_defs);
    api_resp_free(s->g.resp);
    free(s);
}

/* Answers with a stream that owns jobs[0..n_jobs) (the choices, n_jobs
 * <= 9) and the model pin. */
int api_start_stream(srv_req *r, gen_ctx *g, srv_job **jobs, size_t n_jobs, srv_model *m)
{
    stream *s = calloc(1, sizeof(*s));
    size_t made = 0;
    for (size_t i = 1; s && i < n_jobs; i++, made++)
        if (!(s->subs[i - 1] = calloc(1, sizeof(stream))))
            break;
    if (!s || made + 1 < n_jobs) {
        json_decref(g->po.tool_defs);
        api_resp_free(g->resp);
        for (size_t i = 0; i < n_jobs; i++)
            srv_job_cancel_wait(r->srv->sched, jobs[i]);
        for (size_t i = 0; i < n_jobs; i++)
            srv_job_free(jobs[i]);
        for (size_t i = 0; s && i < made; i++)
            free(s->subs[i]);
        free(s);
        srv_model_release(r->srv->sched, m);
        return srv_reply_error(r, 500, NULL, NULL, "out of memory");
    }
    s->g = *g;
    s->sched = r->srv->sched;
    s->job = jobs[0];
    s->model = m;
    s->req = r;
    s->n_subs = n_jobs - 1;
    for (size_t i = 0; i < s->n_subs; i++) {
        stream *c = s->subs[i];
        c->g = *g;
        json_incref(c->g.po.tool_defs); /* each choice drops its own reference */
        c->sched = s->sched;
        c->job = jobs[i + 1];
        c->model = m;
        c->req = r;
        c->index = (int)i + 1;
        c->owner = s;
    }
    if (s->g.resp) {
        s->g.resp->emit = emit_event;
        s->g.resp->user = s;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
                                                                  stream_free);
    if (!resp) {
        stream_free(s);
        return MHD_NO;
    }
    bool sse = g->d == D_OAI_CHAT || g->d == D_OAI_COMPL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, sse ? "text/event-stream" : "application/x-ndjson");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    srv_add_cors(r, resp);
    r->status = 200;
    int ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}
