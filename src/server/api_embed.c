/*
 * api_embed.c - the embedding and rerank endpoints: POST /v1/embeddings,
 * /api/embed and /api/embeddings (Ollama), POST /v1/rerank and /rerank
 * (Jina / Cohere / llama-server shape).
 *
 * Every input is one scheduler job; an encoder computes many of them in
 * each forward pass (sched.c: whole inputs, up to ENC_SLOTS sequences), a
 * decoder as many as it has slots. A request of more inputs than the queue
 * holds feeds it as its own earlier inputs finish.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_int.h"
#include "util/error.h"

#define MAX_EMBED_INPUTS 2048  /* as OpenAI's embeddings API */
#define MAX_RERANK_DOCS 1000

/* Tokens an input may have: the server's context, and for an encoder the
 * positions it was trained on (BERT has no more learned rows). */
static uint32_t input_limit(const srv_req *r, const al_model_info *info)
{
    uint32_t n = r->srv->cfg.sched.n_ctx;
    if (!info->causal && info->n_ctx_train < n)
        n = info->n_ctx_train;
    return n;
}

/* Tokenizes one input (the vocab's specials added) into *out. Longer than
 * limit: a 400, or with truncate the first limit tokens, the closing
 * special (SEP / EOS) kept last. */
static bool tokenize_input(const al_vocab *v, const char *text, size_t len, uint32_t limit, bool truncate,
                           const char *param, const char *what, int32_t **out, int32_t *n_out, perr *e)
{
    size_t n = 0;
    al_error err = {0};
    al_status st = al_tokenize(v, text, len, true, false, NULL, 0, &n, &err);
    if (st && st != AL_ERR_LIMIT)
        return srv_fail(e, 400, "invalid_value", param, "cannot tokenize %s: %s", what, err.msg);
    if (n == 0)
        return srv_fail(e, 400, "invalid_value", param, "%s has no tokens", what);
    if (n > limit && !truncate)
        return srv_fail(e, 400, "context_length_exceeded", param,
                        "%s has %zu tokens; this model takes at most %u per input (send \"truncate\": true to cut it)",
                        what, n, limit);
    int32_t *t = malloc(n * sizeof(int32_t));
    if (!t)
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    if (al_tokenize(v, text, len, true, false, t, n, &n, &err)) {
        free(t);
        return srv_fail(e, 400, "invalid_value", param, "cannot tokenize %s: %s", what, err.msg);
    }
    if (n > limit) {
        const bool closing = al_vocab_is_control(v, t[n - 1]); /* the EOS / SEP the vocab added */
        if (closing)
            t[limit - 1] = t[n - 1];
        n = limit;
    }
    *out = t;
    *n_out = (int32_t)n;
    return true;
}

/* A request's jobs: made, then submitted in order; when the queue is full
 * the earliest submitted are waited for and the rest follow. */
typedef struct job_set {
    srv_job **j;
    size_t n, cap, n_submitted, n_waited;
} job_set;

static bool jobs_add(job_set *s, srv_model *m, int32_t *toks, int32_t n, double deadline, perr *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        srv_job **nj = realloc(s->j, cap * sizeof(*nj));
        if (!nj) {
            free(toks);
            return srv_fail(e, 500, NULL, NULL, "out of memory");
        }
        s->j = nj;
        s->cap = cap;
    }
    srv_job *j = srv_job_new();
    if (!j) {
        free(toks);
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    }
    j->model = m;
    j->kind = SRV_JOB_EMBED;
    j->prompt = toks;
    j->n_prompt = n;
    j->deadline = deadline;
    s->j[s->n++] = j;
    return true;
}

static bool job_ok(const srv_job *j, perr *e)
{
    switch (j->finish) {
    case SRV_FINISH_STOP:
        return true;
    case SRV_FINISH_ERROR: {
        const al_status st = j->err.status;
        return srv_fail(e, st == AL_ERR_LIMIT || st == AL_ERR_ARG || st == AL_ERR_UNSUPPORTED ? 400 : 500,
                        "embedding_failed", NULL, "%s", j->err.msg);
    }
    case SRV_FINISH_TIMEOUT:
        return srv_fail(e, 408, "request_timeout", NULL, "the request ran longer than the server's limit");
    default:
        return srv_fail(e, 499, "cancelled", NULL, "cancelled");
    }
}

/* Submits every job and waits for all; false with e on the first failure. */
static bool jobs_run(srv_req *r, job_set *s, perr *e)
{
    srv_sched *sched = r->srv->sched;
    for (size_t i = 0; i < s->n; i++) {
        for (;;) {
            al_error err = {0};
            if (srv_sched_submit(sched, s->j[i], &err) == AL_OK)
                break;
            if (err.status != AL_ERR_LIMIT || s->n_waited >= s->n_submitted)
                return srv_fail(e, 429, "rate_limit_exceeded", NULL, "%s; retry shortly", err.msg);
            srv_job *w = s->j[s->n_waited++];
            srv_job_wait_done(sched, w, srv_client_alive, r);
            if (!job_ok(w, e))
                return false;
        }
        s->n_submitted++;
        srv_api_extend_timeout(r);
    }
    for (; s->n_waited < s->n_submitted; s->n_waited++) {
        srv_job *w = s->j[s->n_waited];
        srv_job_wait_done(sched, w, srv_client_alive, r);
        if (!job_ok(w, e))
            return false;
    }
    return true;
}

static void jobs_free(srv_req *r, job_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (i < s->n_submitted)
            srv_job_cancel_wait(r->srv->sched, s->j[i]);
        srv_job_free(s->j[i]);
    }
    free(s->j);
}

static int32_t jobs_tokens(const job_set *s)
{
    int64_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->j[i]->n_prompt;
    return n > INT32_MAX ? INT32_MAX : (int32_t)n;
}

/* ------------------------------------------------------------ embeddings */

static const char k_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The floats' little-endian bytes in base64 (OpenAI's encoding_format). */
static json_t *b64_floats(const float *v, int32_t n)
{
    size_t nb = (size_t)n * 4, o = 0;
    unsigned char *raw = malloc(nb ? nb : 1);
    char *out = malloc((nb + 2) / 3 * 4 + 1);
    json_t *j = NULL;
    if (raw && out) {
        for (int32_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++)
                raw[i * 4 + k] = (unsigned char)(u >> (8 * k));
        }
        for (size_t i = 0; i < nb; i += 3) {
            uint32_t w = (uint32_t)raw[i] << 16 | (i + 1 < nb ? (uint32_t)raw[i + 1] << 8 : 0) |
                         (i + 2 < nb ? raw[i + 2] : 0);
            out[o++] = k_b64[(w >> 18) & 63];
            out[o++] = k_b64[(w >> 12) & 63];
            out[o++] = i + 1 < nb ? k_b64[(w >> 6) & 63] : '=';
            out[o++] = i + 2 < nb ? k_b64[w & 63] : '=';
        }
        out[o] = 0;
        j = json_string(out);
    }
    free(raw);
    free(out);
    return j;
}

static json_t *float_array(const float *v, int32_t n)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

/* The model, pinned: *info filled. false with e (and nothing pinned). */
static bool acquire(srv_req *r, srv_model *m, al_model_info *info, const al_model **model, int *reply)
{
    al_error err = {0};
    if (srv_model_acquire(r->srv->sched, m, model, &err)) {
        *reply = srv_api_reply_load_error(r, &err);
        return false;
    }
    al_model_get_info(*model, info);
    return true;
}

static bool parse_truncate(json_t *b, bool *truncate, perr *e)
{
    json_t *t = json_object_get(b, "truncate");
    *truncate = false;
    if (!t || json_is_null(t))
        return true;
    if (!json_is_boolean(t))
        return srv_fail(e, 400, "invalid_type", "truncate", "'truncate' must be true or false");
    *truncate = json_is_true(t);
    return true;
}

int srv_api_embeddings(srv_req *r, srv_route_id id)
{
    json_t *b = r->json;
    perr e = {0};
    srv_model *m = srv_api_find_model(r, b, "model", &e);
    if (!m)
        return srv_api_reply_perr(r, &e);
    const char *key = id == SRV_R_OLLAMA_EMBEDDINGS ? "prompt" : "input";
    json_t *in = json_object_get(b, key);
    bool b64 = false, truncate = false;
    int64_t dims = 0;
    if (!parse_truncate(b, &truncate, &e))
        return srv_api_reply_perr(r, &e);
    json_t *dj = id != SRV_R_OLLAMA_EMBEDDINGS ? json_object_get(b, "dimensions") : NULL;
    if (id == SRV_R_EMBEDDINGS) {
        json_t *ef = json_object_get(b, "encoding_format");
        if (ef && !json_is_null(ef)) {
            const char *s = json_string_value(ef);
            if (!s || (strcmp(s, "float") && strcmp(s, "base64")))
                return srv_reply_error(r, 400, "invalid_value", "encoding_format",
                                       "'encoding_format' must be \"float\" or \"base64\"");
            b64 = !strcmp(s, "base64");
        }
    }
    {
        if (dj && !json_is_null(dj)) {
            if (!json_is_integer(dj) || json_integer_value(dj) < 1)
                return srv_reply_error(r, 400, "invalid_value", "dimensions",
                                       "'dimensions' must be a positive integer");
            dims = json_integer_value(dj);
        }
    }
    size_t n_in;
    const bool token_list = json_is_array(in) && json_array_size(in) && json_is_integer(json_array_get(in, 0));
    if (json_is_string(in) || token_list)
        n_in = 1;
    else if (json_is_array(in) && json_array_size(in) > 0 && id != SRV_R_OLLAMA_EMBEDDINGS)
        n_in = json_array_size(in);
    else if (json_is_array(in))
        return srv_reply_error(r, 400, "invalid_value", key, "'%s' is an empty list: give at least one input", key);
    else
        return srv_reply_error(r, 400, "invalid_type", key, "'%s' must be a string or a non-empty list of strings",
                               key);
    if (n_in > MAX_EMBED_INPUTS)
        return srv_reply_error(r, 400, "invalid_value", key, "%zu inputs: at most %d per request", n_in,
                               MAX_EMBED_INPUTS);
    srv_api_keep_prompt_json(r, in);
    const al_model *model = NULL;
    al_model_info info;
    int ret;
    if (!acquire(r, m, &info, &model, &ret))
        return ret;
    job_set js = {0};
    bool ok = true;
    if (info.pooling == AL_POOLING_RANK)
        ok = srv_fail(&e, 400, "model_cannot_embed", "model",
                      "model '%s' is a reranker (pooling_type rank): it scores (query, document) pairs at /v1/rerank "
                      "and gives no embeddings", r->model);
    if (ok && dims > (int64_t)info.n_embd)
        ok = srv_fail(&e, 400, "invalid_value", "dimensions", "'dimensions' is %lld but model '%s' gives %u",
                      (long long)dims, r->model, info.n_embd);
    const al_vocab *vocab = al_model_vocab(model);
    const uint32_t limit = input_limit(r, &info);
    const double deadline = r->srv->cfg.request_timeout_s ? srv_now() + r->srv->cfg.request_timeout_s : 0;
    for (size_t i = 0; ok && i < n_in; i++) {
        json_t *s = (json_is_string(in) || token_list) ? in : json_array_get(in, i);
        int32_t *toks = NULL, nt = 0;
        char what[48];
        if (n_in == 1 && !json_is_array(in))
            snprintf(what, sizeof(what), "'%s'", key);
        else
            snprintf(what, sizeof(what), "%s[%zu]", key, i);
        if (json_is_string(s)) {
            if (json_string_length(s) == 0) {
                ok = srv_fail(&e, 400, "invalid_value", key, "%s is an empty string", what);
                break;
            }
            ok = tokenize_input(vocab, json_string_value(s), json_string_length(s), limit, truncate, key, what, &toks,
                                &nt, &e);
        } else if (json_is_array(s) && json_array_size(s) > 0) {
            size_t n = json_array_size(s), k;
            if (n > limit && !truncate) {
                ok = srv_fail(&e, 400, "context_length_exceeded", key, "%s has %zu tokens; this model takes at most %u",
                              what, n, limit);
                break;
            }
            n = n > limit ? limit : n;
            toks = malloc(n * sizeof(int32_t));
            ok = toks || srv_fail(&e, 500, NULL, NULL, "out of memory");
            for (k = 0; ok && k < n; k++) {
                json_t *t = json_array_get(s, k);
                json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
                if (v < 0 || v >= (json_int_t)info.n_vocab)
                    ok = srv_fail(&e, 400, "invalid_value", key,
                                  "%s[%zu] is not a token id of this model (0..%u)", what, k, info.n_vocab - 1);
                else
                    toks[nt++] = (int32_t)v;
            }
        } else {
            ok = srv_fail(&e, 400, "invalid_type", key, "%s must be a string (or a list of token ids)", what);
        }
        if (!ok) {
            free(toks);
            break;
        }
        ok = jobs_add(&js, m, toks, nt, deadline, &e);
    }
    if (ok)
        ok = jobs_run(r, &js, &e);
    if (!ok) {
        ret = e.status == 499 ? MHD_NO : srv_api_reply_perr(r, &e);
    } else {
        const int32_t tp = jobs_tokens(&js);
        r->prompt_tokens = tp;
        json_t *o;
        for (size_t i = 0; dims > 0 && i < js.n; i++) { /* Matryoshka: the first dims values, renormalised */
            srv_job *j = js.j[i];
            if (dims < j->n_embd) {
                j->n_embd = (int32_t)dims;
                al_l2_normalize(j->embedding, (size_t)dims);
            }
        }
        if (id == SRV_R_EMBEDDINGS) {
            json_t *data = json_array();
            for (size_t i = 0; i < js.n; i++) {
                srv_job *j = js.j[i];
                const int32_t n = j->n_embd;
                json_array_append_new(data,
                                      json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", (int)i, "embedding",
                                                b64 ? b64_floats(j->embedding, n) : float_array(j->embedding, n)));
            }
            o = json_pack("{s:s,s:o,s:s,s:{s:i,s:i}}", "object", "list", "data", data, "model", r->model, "usage",
                          "prompt_tokens", tp, "total_tokens", tp);
        } else if (id == SRV_R_OLLAMA_EMBED) {
            json_t *data = json_array();
            for (size_t i = 0; i < js.n; i++)
                json_array_append_new(data, float_array(js.j[i]->embedding, js.j[i]->n_embd));
            o = json_pack("{s:s,s:o,s:I,s:I,s:i}", "model", r->model, "embeddings", data, "total_duration",
                          (json_int_t)((srv_now() - r->t_start) * 1e9), "load_duration", (json_int_t)0,
                          "prompt_eval_count", tp);
        } else {
            o = json_pack("{s:o}", "embedding", float_array(js.j[0]->embedding, js.j[0]->n_embd));
        }
        ret = srv_reply_json(r, 200, o);
    }
    srv_metrics_observe(r->srv->metrics, SRV_H_DURATION, srv_now() - r->t_start);
    jobs_free(r, &js);
    srv_model_release(r->srv->sched, m);
    return ret;
}

/* ---------------------------------------------------------------- rerank */

typedef struct scored {
    size_t index;
    float score;
} scored;

static int scored_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* A document: a string, or an object with "text" (Cohere v1 / Jina). */
static const char *doc_text(json_t *d, size_t *len)
{
    if (json_is_object(d))
        d = json_object_get(d, "text");
    *len = json_string_length(d);
    return json_string_value(d);
}

int srv_api_rerank(srv_req *r)
{
    json_t *b = r->json;
    perr e = {0};
    srv_model *m = srv_api_find_model(r, b, "model", &e);
    if (!m)
        return srv_api_reply_perr(r, &e);
    json_t *q = json_object_get(b, "query"), *docs = json_object_get(b, "documents");
    json_t *tn = json_object_get(b, "top_n"), *rd = json_object_get(b, "return_documents");
    if (!json_is_string(q) || json_string_length(q) == 0)
        return srv_reply_error(r, 400, "invalid_value", "query", "'query' must be a non-empty string");
    if (!json_is_array(docs))
        return srv_reply_error(r, 400, "invalid_type", "documents", "'documents' must be a list of strings");
    const size_t n_docs = json_array_size(docs);
    if (n_docs == 0)
        return srv_reply_error(r, 400, "invalid_value", "documents", "'documents' is empty: give at least one");
    if (n_docs > MAX_RERANK_DOCS)
        return srv_reply_error(r, 400, "invalid_value", "documents", "%zu documents: at most %d per request", n_docs,
                               MAX_RERANK_DOCS);
    for (size_t i = 0; i < n_docs; i++) {
        size_t len;
        if (!doc_text(json_array_get(docs, i), &len))
            return srv_reply_error(r, 400, "invalid_type", "documents",
                                   "documents[%zu] must be a string (or an object with \"text\")", i);
        if (len == 0)
            return srv_reply_error(r, 400, "invalid_value", "documents", "documents[%zu] is an empty string", i);
    }
    size_t top_n = n_docs;
    if (tn && !json_is_null(tn)) {
        if (!json_is_integer(tn) || json_integer_value(tn) < 1)
            return srv_reply_error(r, 400, "invalid_value", "top_n", "'top_n' must be a positive integer");
        if ((size_t)json_integer_value(tn) < top_n)
            top_n = (size_t)json_integer_value(tn);
    }
    if (rd && !json_is_null(rd) && !json_is_boolean(rd))
        return srv_reply_error(r, 400, "invalid_type", "return_documents", "'return_documents' must be true or false");
    const bool return_docs = !rd || json_is_null(rd) || json_is_true(rd);
    bool truncate = false;
    if (!parse_truncate(b, &truncate, &e))
        return srv_api_reply_perr(r, &e);
    srv_api_keep_prompt_json(r, b);

    const al_model *model = NULL;
    al_model_info info;
    int ret;
    if (!acquire(r, m, &info, &model, &ret))
        return ret;
    const al_vocab *vocab = al_model_vocab(model);
    const uint32_t limit = input_limit(r, &info);
    /* A rank model scores each (query, document) pair; any other ranks by
     * the cosine similarity of the embeddings (job 0: the query). */
    const bool rank = info.pooling == AL_POOLING_RANK;
    const double deadline = r->srv->cfg.request_timeout_s ? srv_now() + r->srv->cfg.request_timeout_s : 0;
    job_set js = {0};
    scored *sc = calloc(n_docs, sizeof(scored));
    bool ok = sc || srv_fail(&e, 500, NULL, NULL, "out of memory");
    if (ok && !rank) {
        int32_t *t = NULL, n = 0;
        ok = tokenize_input(vocab, json_string_value(q), json_string_length(q), limit, truncate, "query", "'query'", &t,
                            &n, &e) &&
             jobs_add(&js, m, t, n, deadline, &e);
    }
    for (size_t i = 0; ok && i < n_docs; i++) {
        size_t len;
        const char *d = doc_text(json_array_get(docs, i), &len);
        char what[48];
        snprintf(what, sizeof(what), "documents[%zu]", i);
        int32_t *t = NULL, n = 0;
        if (!rank) {
            ok = tokenize_input(vocab, d, len, limit, truncate, "documents", what, &t, &n, &e) &&
                 jobs_add(&js, m, t, n, deadline, &e);
            continue;
        }
        size_t np = 0;
        al_error err = {0};
        if (al_rank_tokens(model, json_string_value(q), json_string_length(q), d, len, &t, &np, &err)) {
            ok = srv_fail(&e, err.status == AL_ERR_NOMEM ? 500 : 400, "invalid_value", "documents",
                          "cannot tokenize %s: %s", what, err.msg);
            break;
        }
        if (np > limit) {
            free(t);
            ok = srv_fail(&e, 400, "context_length_exceeded", "documents",
                          "the query with %s has %zu tokens; this model takes at most %u", what, np, limit);
            break;
        }
        ok = jobs_add(&js, m, t, (int32_t)np, deadline, &e);
    }
    if (ok)
        ok = jobs_run(r, &js, &e);
    if (!ok) {
        ret = e.status == 499 ? MHD_NO : srv_api_reply_perr(r, &e);
    } else {
        for (size_t i = 0; i < n_docs; i++) {
            sc[i].index = i;
            if (rank) {
                sc[i].score = js.j[i]->embedding[0];
            } else {
                const srv_job *qj = js.j[0], *dj = js.j[i + 1];
                sc[i].score = al_cosine(qj->embedding, dj->embedding, (size_t)qj->n_embd);
            }
        }
        qsort(sc, n_docs, sizeof(scored), scored_desc);
        json_t *res = json_array();
        for (size_t i = 0; i < top_n; i++) {
            json_t *o = json_pack("{s:i,s:f}", "index", (int)sc[i].index, "relevance_score", (double)sc[i].score);
            if (return_docs) {
                size_t len;
                const char *d = doc_text(json_array_get(docs, sc[i].index), &len);
                json_object_set_new(o, "document", json_pack("{s:s%}", "text", d, len));
            }
            json_array_append_new(res, o);
        }
        const int32_t tp = jobs_tokens(&js);
        r->prompt_tokens = tp;
        ret = srv_reply_json(r, 200, json_pack("{s:s,s:s,s:o,s:{s:i,s:i}}", "object", "list", "model", r->model,
                                               "results", res, "usage", "prompt_tokens", tp, "total_tokens", tp));
    }
    srv_metrics_observe(r->srv->metrics, SRV_H_DURATION, srv_now() - r->t_start);
    free(sc);
    jobs_free(r, &js);
    srv_model_release(r->srv->sched, m);
    return ret;
}

/* ---------------------------------------------------------- capabilities */

void srv_api_model_caps(srv_sched *s, srv_model *m, json_t *caps, bool *can_generate)
{
    srv_model_status st;
    srv_model_get_status(s, m, &st);
    al_model_info info;
    if (st.info_valid) {
        info = st.info;
    } else if (al_model_peek(st.path, &info, NULL) != AL_OK) {
        *can_generate = true; /* unknown: as before */
        json_array_append_new(caps, json_string("completion"));
        json_array_append_new(caps, json_string("embedding"));
        return;
    }
    *can_generate = info.can_generate;
    if (info.can_generate)
        json_array_append_new(caps, json_string("completion"));
    json_array_append_new(caps, json_string(info.pooling == AL_POOLING_RANK ? "rerank" : "embedding"));
}
