/*
 * api_prompt.c - from a request's messages to prompt tokens: message
 * normalisation, the per-model chat template cache, rendering and
 * tokenizing.
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

/* ------------------------------------------------------------- prompts */

/* An assistant's earlier tool calls as templates expect them: arguments
 * as an object (OpenAI sends a JSON string, Ollama an object; a string
 * that is not JSON stays a string), and a "type". */
static json_t *norm_tool_calls(json_t *tcs, const char *where, perr *e)
{
    if (!json_is_array(tcs)) {
        srv_fail(e, 400, "invalid_type", where, "%s must be a list", where);
        return NULL;
    }
    json_t *out = json_array();
    if (!out) {
        srv_fail(e, 500, NULL, NULL, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *c;
    json_array_foreach(tcs, i, c)
    {
        json_t *f = json_object_get(c, "function");
        json_t *nm = json_object_get(f, "name");
        if (!json_is_object(c) || !json_is_string(nm)) {
            srv_fail(e, 400, "invalid_value", where, "%s[%zu] must be {\"type\":\"function\",\"function\":{\"name\",..."
                     "}}", where, i);
            json_decref(out);
            return NULL;
        }
        json_t *a = json_object_get(f, "arguments");
        json_t *args = NULL;
        if (json_is_string(a))
            args = json_loads(json_string_value(a), JSON_DECODE_ANY, NULL);
        else if (a && !json_is_null(a))
            args = json_incref(a);
        if (!args)
            args = json_is_string(a) ? json_incref(a) : json_object();
        json_t *nc = json_deep_copy(c);
        json_t *nf = json_object_get(nc, "function");
        /* out of memory, a call would lose its arguments or itself: fail */
        bool ok = args && nf && !json_object_set(nf, "arguments", args);
        json_decref(args);
        if (ok && !json_object_get(nc, "type"))
            ok = !json_object_set_new(nc, "type", json_string("function"));
        if (!ok || json_array_append_new(out, nc)) {
            if (!ok)
                json_decref(nc);
            json_decref(out);
            srv_fail(e, 500, NULL, NULL, "out of memory");
            return NULL;
        }
    }
    return out;
}

/* Messages in the shape templates expect: role + string content (text
 * parts joined), tool fields passed through. */
json_t *api_normalize_messages(json_t *msgs, bool ollama, perr *e)
{
    if (!json_is_array(msgs)) {
        srv_fail(e, 400, "invalid_type", "messages", "'messages' must be a list");
        return NULL;
    }
    if (json_array_size(msgs) == 0) {
        srv_fail(e, 400, "invalid_value", "messages", "'messages' must not be empty");
        return NULL;
    }
    json_t *out = json_array();
    if (!out) {
        srv_fail(e, 500, NULL, NULL, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *m;
    char pname[64];
    json_array_foreach(msgs, i, m)
    {
        snprintf(pname, sizeof(pname), "messages[%zu]", i);
        if (!json_is_object(m)) {
            srv_fail(e, 400, "invalid_type", pname, "%s must be an object", pname);
            goto bad;
        }
        json_t *role = json_object_get(m, "role");
        const char *rs = json_string_value(role);
        if (!rs || (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool") &&
                    strcmp(rs, "developer") && strcmp(rs, "function"))) {
            snprintf(pname, sizeof(pname), "messages[%zu].role", i);
            srv_fail(e, 400, "invalid_value", pname,
                     "%s must be one of system, developer, user, assistant, tool", pname);
            goto bad;
        }
        if (!strcmp(rs, "developer"))
            rs = "system";
        json_t *content = json_object_get(m, "content");
        json_t *text;
        if (!content || json_is_null(content)) {
            if (!json_object_get(m, "tool_calls") && strcmp(rs, "assistant")) {
                snprintf(pname, sizeof(pname), "messages[%zu].content", i);
                srv_fail(e, 400, "invalid_value", pname, "%s is missing", pname);
                goto bad;
            }
            text = json_string("");
        } else if (json_is_string(content)) {
            text = json_copy(content);
        } else if (json_is_array(content) && !ollama) {
            size_t total = 0, k;
            json_t *part;
            json_array_foreach(content, k, part)
            {
                json_t *pt = json_object_get(part, "type");
                json_t *tx = json_object_get(part, "text");
                if (!json_is_object(part) || !json_is_string(pt) || strcmp(json_string_value(pt), "text") ||
                    !json_is_string(tx)) {
                    snprintf(pname, sizeof(pname), "messages[%zu].content[%zu]", i, k);
                    srv_fail(e, 400, "unsupported_value", pname,
                             "%s: only parts {\"type\":\"text\",\"text\":...} are supported", pname);
                    goto bad;
                }
                total += json_string_length(tx);
            }
            char *buf = malloc(total + 1);
            if (!buf) {
                srv_fail(e, 500, NULL, NULL, "out of memory");
                goto bad;
            }
            size_t o = 0;
            json_array_foreach(content, k, part)
            {
                json_t *tx = json_object_get(part, "text");
                memcpy(buf + o, json_string_value(tx), json_string_length(tx));
                o += json_string_length(tx);
            }
            text = json_stringn(buf, o);
            free(buf);
        } else {
            snprintf(pname, sizeof(pname), "messages[%zu].content", i);
            srv_fail(e, 400, "invalid_type", pname, "%s must be a string%s", pname,
                     ollama ? "" : " or a list of text parts");
            goto bad;
        }
        /* out of memory, a message would lose its text or a field (or be
         * dropped): a 500, never another conversation */
        json_t *nm = text ? json_pack("{s:s,s:o}", "role", rs, "content", text) : NULL;
        bool ok = nm != NULL;
        const char *pass[] = {"tool_call_id", "name", "tool_name", "reasoning_content"};
        for (size_t q = 0; ok && q < sizeof(pass) / sizeof(*pass); q++) {
            json_t *v = json_object_get(m, pass[q]);
            if (v && !json_is_null(v))
                ok = !json_object_set(nm, pass[q], v);
        }
        json_t *th = json_object_get(m, "thinking"); /* Ollama's name for it */
        if (ok && json_is_string(th) && !json_object_get(nm, "reasoning_content"))
            ok = !json_object_set(nm, "reasoning_content", th);
        json_t *tcs = json_object_get(m, "tool_calls");
        if (ok && tcs && !json_is_null(tcs)) {
            snprintf(pname, sizeof(pname), "messages[%zu].tool_calls", i);
            json_t *nt = norm_tool_calls(tcs, pname, e);
            if (!nt) {
                json_decref(nm);
                goto bad;
            }
            ok = !json_object_set_new(nm, "tool_calls", nt);
        }
        if (!ok || json_array_append_new(out, nm)) {
            if (!ok)
                json_decref(nm);
            srv_fail(e, 500, NULL, NULL, "out of memory");
            goto bad;
        }
    }
    return out;
bad:
    json_decref(out);
    return NULL;
}

void api_piece_of(const al_vocab *v, int32_t tok, char *buf, size_t cap)
{
    buf[0] = 0;
    if (tok < 0)
        return;
    int32_t n = al_token_to_piece(v, tok, buf, cap - 1, true);
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    buf[n] = 0;
}

/* Renders a chat through --chat-template, --chat-format, the model's own
 * template, or --default-chat-format, in that order. */
const char *api_chat_template_of(al_server *srv, const srv_model_status *st, const al_model *model)
{
    if (st->chat_template)
        return st->chat_template;
    if (st->chat_format)
        return al_template_builtin(st->chat_format);
    const char *t = al_model_chat_template(model);
    if (!t && srv->cfg.default_chat_format)
        t = al_template_builtin(srv->cfg.default_chat_format);
    return t;
}

/* A model's parsed chat template, shared by its requests (rendering does
 * not change it). Parsing costs several renders, so it is done once per
 * model and template source, not per request; a model reloaded with
 * another template gets a new parse. refs: the cache's and the renders'. */
struct srv_chat_tmpl {
    al_template *t;
    char *src;
    unsigned refs;
};

static void chat_tmpl_unref(srv_chat_tmpl *c) /* tmpl_mu held */
{
    if (c && --c->refs == 0) {
        al_template_free(c->t);
        free(c->src);
        free(c);
    }
}

static void chat_tmpl_put(al_server *srv, srv_chat_tmpl *c)
{
    pthread_mutex_lock(&srv->tmpl_mu);
    chat_tmpl_unref(c);
    pthread_mutex_unlock(&srv->tmpl_mu);
}

static srv_chat_tmpl *chat_tmpl_get(al_server *srv, srv_model *sm, const char *src, al_error *err)
{
    size_t mi = 0;
    while (mi + 1 < srv_sched_n_models(srv->sched) && srv_sched_model_at(srv->sched, mi) != sm)
        mi++;
    pthread_mutex_lock(&srv->tmpl_mu);
    srv_chat_tmpl *c = srv->tmpls[mi];
    if (c && !strcmp(c->src, src)) {
        c->refs++;
        pthread_mutex_unlock(&srv->tmpl_mu);
        return c;
    }
    pthread_mutex_unlock(&srv->tmpl_mu);
    /* Parsed outside the lock: another model's requests need not wait. */
    c = calloc(1, sizeof(*c));
    if (!c || !(c->src = strdup(src))) {
        free(c);
        al_err(err, AL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (al_template_parse(src, strlen(src), &c->t, err)) {
        free(c->src);
        free(c);
        return NULL;
    }
    c->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&srv->tmpl_mu);
    srv_chat_tmpl *old = srv->tmpls[mi];
    if (old && !strcmp(old->src, src)) { /* a concurrent request parsed it first */
        old->refs++;
        c->refs = 1;
        chat_tmpl_unref(c);
        c = old;
    } else {
        srv->tmpls[mi] = c;
        chat_tmpl_unref(old);
    }
    pthread_mutex_unlock(&srv->tmpl_mu);
    return c;
}

void srv_api_free(al_server *srv)
{
    if (!srv->tmpls)
        return;
    for (size_t i = 0; i < SRV_SCHED_MAX_MODELS; i++)
        chat_tmpl_unref(srv->tmpls[i]);
    free(srv->tmpls);
    srv->tmpls = NULL;
}

/* Renders msgs; a (may be NULL) gives the tools and the thinking switches;
 * *fmt (may be NULL) gets the template's tool-call / reasoning format. */
bool api_render_chat(al_server *srv, srv_model *sm, const al_model *model, json_t *msgs, const srv_agent_req *a,
                     srv_chat_fmt *fmt, char **out, perr *e)
{
    srv_model_status st;
    srv_model_get_status(srv->sched, sm, &st);
    const char *src = api_chat_template_of(srv, &st, model);
    if (!src)
        return srv_fail(e, 400, "no_chat_template", "model",
                        "model '%s' has no chat template; start the server with --chat-format NAME (e.g. chatml) "
                        "or use the completions endpoint",
                        st.name);
    al_error err = {0};
    srv_chat_tmpl *ct = chat_tmpl_get(srv, sm, src, &err);
    if (!ct)
        return srv_fail(e, 500, "template_error", NULL, "the chat template of '%s' does not parse: %s", st.name,
                        err.msg);
    srv_chat_fmt f;
    srv_chat_fmt_detect(src, &f);
    if (fmt)
        *fmt = f;
    char *mj = json_dumps(msgs, JSON_COMPACT);
    json_t *tools = a ? srv_agent_template_tools(a) : NULL;
    json_t *vars = a ? srv_agent_template_vars(a, &f) : NULL;
    char *tj = tools && json_array_size(tools) ? json_dumps(tools, JSON_COMPACT) : NULL;
    char *xj = vars && json_object_size(vars) ? json_dumps(vars, JSON_COMPACT) : NULL;
    json_decref(tools);
    json_decref(vars);
    const al_vocab *v = al_model_vocab(model);
    char bos[128], eos[128];
    api_piece_of(v, al_vocab_bos(v), bos, sizeof(bos));
    api_piece_of(v, al_vocab_eos(v), eos, sizeof(eos));
    al_template_inputs in = {.messages_json = mj, .tools_json = tj, .extra_json = xj, .add_generation_prompt = true,
                             .bos_token = bos, .eos_token = eos};
    size_t len = 0;
    al_status s = mj ? al_template_render(ct->t, &in, out, &len, &err) : AL_ERR_NOMEM;
    free(mj);
    free(tj);
    free(xj);
    chat_tmpl_put(srv, ct);
    if (s)
        return srv_fail(e, s == AL_ERR_NOMEM ? 500 : 400, "template_error", "messages",
                        "the chat template failed to render these messages: %s", err.msg);
    return true;
}

/* Tokenizes into a malloc'd array; limits the prompt to the context. */
bool api_tokenize(const al_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                  uint32_t n_ctx, int32_t **out, int32_t *n_out, perr *e)
{
    /* A huge prompt is refused before it is tokenized: a token covers at
     * most max_token_bytes of text (x4 for normalisation), so a text longer
     * than that many contexts cannot fit (issue 20: 8 MB cost 6 s of CPU). */
    size_t per_tok = al_vocab_max_token_bytes(v) * 4;
    if (per_tok && len / per_tok > n_ctx)
        return srv_fail(e, 400, "context_length_exceeded", "messages",
                        "the prompt has at least %zu tokens (%zu bytes); this server's context holds %u (prompt "
                        "and output together)", len / per_tok, len, n_ctx);
    size_t cap = (size_t)n_ctx + 2, n = 0;
    int32_t *toks = malloc(cap * sizeof(int32_t));
    if (!toks)
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    al_error err = {0};
    al_status s = al_tokenize(v, text, len, add_special, parse_special, toks, cap, &n, &err);
    if (s == AL_ERR_LIMIT || (s == AL_OK && n >= n_ctx)) {
        free(toks);
        return srv_fail(e, 400, "context_length_exceeded", "messages",
                        "the prompt has %zu tokens; this server's context holds %u (prompt and output together)", n,
                        n_ctx);
    }
    if (s) {
        free(toks);
        return srv_fail(e, 400, "invalid_value", NULL, "cannot tokenize the prompt: %s", err.msg);
    }
    /* A template that writes the BOS text and a vocab that adds BOS give two. */
    int32_t bos = al_vocab_bos(v);
    if (n >= 2 && bos >= 0 && toks[0] == bos && toks[1] == bos) {
        memmove(toks, toks + 1, (n - 1) * sizeof(int32_t));
        n--;
    }
    if (n == 0) {
        free(toks);
        return srv_fail(e, 400, "invalid_value", "prompt", "the prompt is empty");
    }
    *out = toks;
    *n_out = (int32_t)n;
    return true;
}
