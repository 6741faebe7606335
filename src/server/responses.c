/*
 * responses.c - the Responses API translated to and from chat (see
 * responses.h).
 */
#include "server/responses.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static json_t *bad(char *where, size_t wcap, char *msg, size_t mcap, const char *w, const char *m)
{
    snprintf(where, wcap, "%s", w);
    snprintf(msg, mcap, "%s", m);
    return NULL;
}

/* Out of memory: where "" (responses.h), so that the caller answers 500. */
static json_t *no_memory(char *where, size_t wcap, char *msg, size_t mcap)
{
    return bad(where, wcap, msg, mcap, "", "out of memory");
}

/* jansson's setters, false when out of memory (v NULL or the insert failed;
 * v is consumed either way). */
static bool add(json_t *arr, json_t *v)
{
    return json_array_append_new(arr, v) == 0;
}

static bool put(json_t *o, const char *k, json_t *v)
{
    return json_object_set_new(o, k, v) == 0;
}

static bool put_ref(json_t *o, const char *k, json_t *v)
{
    return json_object_set(o, k, v) == 0;
}

/* The text of a content value: a string, or a list of text parts
 * (input_text, output_text, text) joined. NULL when it is neither, or
 * when out of memory (*oom set). */
static json_t *content_text(json_t *c, bool *oom)
{
    if (json_is_string(c))
        return json_incref(c);
    if (!json_is_array(c))
        return NULL;
    size_t total = 0, i;
    json_t *p;
    json_array_foreach(c, i, p)
    {
        const char *ty = json_string_value(json_object_get(p, "type"));
        json_t *tx = json_object_get(p, "text");
        if (!ty || (strcmp(ty, "input_text") && strcmp(ty, "output_text") && strcmp(ty, "text")) ||
            !json_is_string(tx))
            return NULL;
        total += json_string_length(tx);
    }
    char *buf = malloc(total + 1);
    if (!buf) {
        *oom = true;
        return NULL;
    }
    size_t o = 0;
    json_array_foreach(c, i, p)
    {
        json_t *tx = json_object_get(p, "text");
        memcpy(buf + o, json_string_value(tx), json_string_length(tx));
        o += json_string_length(tx);
    }
    json_t *s = json_stringn(buf, o);
    free(buf);
    *oom = !s;
    return s;
}

static bool input_items(json_t *in, json_t *msgs, char *where, size_t wcap, char *msg, size_t mcap)
{
    size_t i;
    json_t *it;
    char w[64];
    json_array_foreach(in, i, it)
    {
        snprintf(w, sizeof(w), "input[%zu]", i);
        if (!json_is_object(it))
            return bad(where, wcap, msg, mcap, w, "must be an object (a message or a function call item)");
        const char *ty = json_string_value(json_object_get(it, "type"));
        if (!ty || !strcmp(ty, "message")) {
            const char *role = json_string_value(json_object_get(it, "role"));
            bool oom = false;
            json_t *text = content_text(json_object_get(it, "content"), &oom);
            if (oom)
                return no_memory(where, wcap, msg, mcap);
            if (!role || !text) {
                json_decref(text);
                snprintf(w, sizeof(w), "input[%zu].%s", i, role ? "content" : "role");
                return bad(where, wcap, msg, mcap, w,
                           role ? "must be a string or a list of input_text / output_text parts"
                                : "must be user, assistant, system or developer");
            }
            if (!add(msgs, json_pack("{s:s,s:o}", "role", role, "content", text)))
                return no_memory(where, wcap, msg, mcap);
        } else if (!strcmp(ty, "function_call")) {
            json_t *cid = json_object_get(it, "call_id"), *nm = json_object_get(it, "name");
            json_t *args = json_object_get(it, "arguments");
            if (!json_is_string(cid) || !json_is_string(nm) || !json_is_string(args))
                return bad(where, wcap, msg, mcap, w, "a function_call needs string call_id, name and arguments");
            json_t *call = json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", cid, "type", "function", "function", "name", nm,
                                     "arguments", args);
            if (!call)
                return no_memory(where, wcap, msg, mcap);
            /* Calls in a row belong to one assistant turn. */
            json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
            json_t *tcs = json_object_get(last, "tool_calls");
            const char *lr = json_string_value(json_object_get(last, "role"));
            bool ok = json_is_array(tcs) && lr && !strcmp(lr, "assistant")
                          ? add(tcs, call)
                          : add(msgs, json_pack("{s:s,s:n,s:[o]}", "role", "assistant", "content", "tool_calls", call));
            if (!ok)
                return no_memory(where, wcap, msg, mcap);
        } else if (!strcmp(ty, "function_call_output")) {
            json_t *cid = json_object_get(it, "call_id"), *out = json_object_get(it, "output");
            bool oom = false;
            json_t *text = json_is_string(out) ? json_incref(out) : content_text(out, &oom);
            if (oom)
                return no_memory(where, wcap, msg, mcap);
            if (!json_is_string(cid) || !text) {
                json_decref(text);
                return bad(where, wcap, msg, mcap, w, "a function_call_output needs a string call_id and output");
            }
            if (!add(msgs, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", cid, "content", text)))
                return no_memory(where, wcap, msg, mcap);
        } else if (!strcmp(ty, "reasoning")) {
            continue; /* earlier reasoning is not shown to the model again */
        } else {
            snprintf(w, sizeof(w), "input[%zu].type", i);
            snprintf(msg, mcap, "input items of type '%.40s' are not supported (message, function_call, "
                                "function_call_output, reasoning)", ty);
            snprintf(where, wcap, "%s", w);
            return false;
        }
    }
    return true;
}

json_t *srv_responses_to_chat(json_t *b, char *where, size_t wcap, char *msg, size_t mcap)
{
    json_t *prev = json_object_get(b, "previous_response_id");
    if (prev && !json_is_null(prev))
        return bad(where, wcap, msg, mcap, "previous_response_id",
                   "this server stores no responses: send the whole conversation in 'input'");
    json_t *msgs = json_array();
    if (!msgs)
        return no_memory(where, wcap, msg, mcap);
    json_t *ins = json_object_get(b, "instructions");
    if (ins && !json_is_null(ins)) {
        if (!json_is_string(ins)) {
            json_decref(msgs);
            return bad(where, wcap, msg, mcap, "instructions", "'instructions' must be a string");
        }
        if (!add(msgs, json_pack("{s:s,s:O}", "role", "system", "content", ins))) {
            json_decref(msgs);
            return no_memory(where, wcap, msg, mcap);
        }
    }
    json_t *in = json_object_get(b, "input");
    if (json_is_string(in)) {
        if (!add(msgs, json_pack("{s:s,s:O}", "role", "user", "content", in))) {
            json_decref(msgs);
            return no_memory(where, wcap, msg, mcap);
        }
    } else if (json_is_array(in) && json_array_size(in)) {
        if (!input_items(in, msgs, where, wcap, msg, mcap)) {
            json_decref(msgs);
            return NULL;
        }
    } else {
        json_decref(msgs);
        return bad(where, wcap, msg, mcap, "input", "'input' must be a string or a non-empty list of items");
    }
    json_t *chat = json_pack("{s:O,s:o}", "model", json_object_get(b, "model") ? json_object_get(b, "model")
                                                                                  : json_null(),
                             "messages", msgs);
    /* out of memory, a field of the request would be dropped: ok goes false */
    bool ok = chat != NULL;
    static const char *const same[] = {"temperature", "top_p", "stream", "parallel_tool_calls", "user", "seed",
                                       "top_k", "min_p", "repeat_penalty", "logit_bias", "chat_template_kwargs"};
    for (size_t i = 0; ok && i < sizeof(same) / sizeof(*same); i++) {
        json_t *v = json_object_get(b, same[i]);
        if (v)
            ok = put_ref(chat, same[i], v);
    }
    json_t *mo = json_object_get(b, "max_output_tokens");
    if (ok && mo)
        ok = put_ref(chat, "max_tokens", mo);
    json_t *tools = json_object_get(b, "tools");
    if (ok && tools && !json_is_null(tools)) {
        if (!srv_tools_check(tools, true, where, wcap, msg, mcap)) {
            json_decref(chat);
            return NULL;
        }
        json_t *nt = json_array();
        ok = nt != NULL;
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            json_t *f = ok ? json_object() : NULL;
            ok = f != NULL;
            const char *k;
            json_t *v;
            if (ok) {
                json_object_foreach(t, k, v)
                {
                    if (ok && strcmp(k, "type") && strcmp(k, "strict"))
                        ok = put_ref(f, k, v);
                }
            }
            if (!ok) {
                json_decref(f);
                break;
            }
            ok = add(nt, json_pack("{s:s,s:o}", "type", "function", "function", f));
        }
        ok = ok ? put(chat, "tools", nt) : (json_decref(nt), false);
    }
    json_t *tc = json_object_get(b, "tool_choice");
    if (ok && json_is_object(tc)) {
        json_t *nm = json_object_get(tc, "name");
        if (!json_is_string(nm)) {
            json_decref(chat);
            return bad(where, wcap, msg, mcap, "tool_choice.name", "must name one of the request's functions");
        }
        ok = put(chat, "tool_choice", json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", nm));
    } else if (ok && tc) {
        ok = put_ref(chat, "tool_choice", tc);
    }
    json_t *r = json_object_get(b, "reasoning");
    if (ok && r && !json_is_null(r)) {
        if (!json_is_object(r)) {
            json_decref(chat);
            return bad(where, wcap, msg, mcap, "reasoning", "'reasoning' must be an object");
        }
        json_t *ef = json_object_get(r, "effort");
        if (ef && !json_is_null(ef))
            ok = put_ref(chat, "reasoning_effort", ef);
    }
    json_t *fmt = json_object_get(json_object_get(b, "text"), "format");
    const char *ft = json_string_value(json_object_get(fmt, "type"));
    if (ok && ft && !strcmp(ft, "json_object")) {
        ok = put(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
    } else if (ok && ft && !strcmp(ft, "json_schema")) {
        /* The chat shape nests the schema under json_schema. */
        json_t *js = json_deep_copy(fmt);
        json_object_del(js, "type");
        ok = js && put(chat, "response_format", json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js));
    } else if (ok && ft && strcmp(ft, "text")) {
        json_decref(chat);
        return bad(where, wcap, msg, mcap, "text.format.type", "must be text, json_object or json_schema");
    }
    if (!ok) {
        json_decref(chat);
        return no_memory(where, wcap, msg, mcap);
    }
    return chat;
}

/* ------------------------------------------------------------- output */

static void rand_id(const char *prefix, char out[48])
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        memset(r, 7, sizeof(r));
    size_t o = (size_t)snprintf(out, 48, "%s", prefix);
    for (size_t i = 0; i < sizeof(r) && o + 1 < 48; i++)
        out[o++] = alnum[r[i] % 36];
    out[o] = 0;
}

void srv_resp_init(srv_resp_state *st, const char *model, json_t *body, srv_resp_emit_fn emit, void *user)
{
    memset(st, 0, sizeof(*st));
    rand_id("resp_", st->id);
    st->created = (int64_t)time(NULL);
    snprintf(st->model, sizeof(st->model), "%s", model);
    st->emit = emit;
    st->user = user;
    st->output = json_array();
    st->echo = json_object();
    static const char *const keys[] = {"instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature",
                                       "top_p", "max_output_tokens", "reasoning", "text", "metadata", "user"};
    for (size_t i = 0; st->echo && i < sizeof(keys) / sizeof(*keys); i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (v)
            json_object_set(st->echo, keys[i], v);
    }
}

void srv_resp_free(srv_resp_state *st)
{
    json_decref(st->output);
    json_decref(st->echo);
    st->output = st->echo = NULL;
}

static void ev(srv_resp_state *st, const char *type, json_t *data)
{
    if (!data)
        return;
    if (!st->emit) {
        json_decref(data);
        return;
    }
    json_object_set_new(data, "type", json_string(type));
    json_object_set_new(data, "sequence_number", json_integer(st->seq++));
    st->emit(st->user, type, data);
}

static json_t *resp_object(srv_resp_state *st, const char *status, json_t *output, json_t *usage)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:n,s:n,s:n}", "id", st->id, "object", "response", "created_at",
                          (json_int_t)st->created, "status", status, "model", st->model, "output", output, "error",
                          "previous_response_id", "incomplete_details");
    if (!o)
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(st->echo, k, v) json_object_set(o, k, v);
    if (!json_object_get(o, "tools"))
        json_object_set_new(o, "tools", json_array());
    if (!json_object_get(o, "tool_choice"))
        json_object_set_new(o, "tool_choice", json_string("auto"));
    if (!json_object_get(o, "parallel_tool_calls"))
        json_object_set_new(o, "parallel_tool_calls", json_true());
    if (!json_object_get(o, "text"))
        json_object_set_new(o, "text", json_pack("{s:{s:s}}", "format", "type", "text"));
    if (!json_object_get(o, "metadata"))
        json_object_set_new(o, "metadata", json_object());
    json_object_set_new(o, "usage", usage ? usage : json_null());
    return o;
}

void srv_resp_begin(srv_resp_state *st)
{
    ev(st, "response.created", json_pack("{s:o}", "response", resp_object(st, "in_progress", json_array(), NULL)));
    ev(st, "response.in_progress", json_pack("{s:o}", "response", resp_object(st, "in_progress", json_array(), NULL)));
}

static json_t *reasoning_item(const srv_resp_state *st, const char *text, size_t n)
{
    return json_pack("{s:s,s:s,s:[],s:[{s:s,s:s%}]}", "type", "reasoning", "id", st->item_id, "summary", "content",
                     "type", "reasoning_text", "text", text, n);
}

static json_t *message_item(const srv_resp_state *st, const char *status, const char *text, size_t n)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s%,s:[]}]}", "type", "message", "id", st->item_id, "status", status,
                     "role", "assistant", "content", "type", "output_text", "text", text, n, "annotations");
}

/* Ends the open item with the reply's text [item_from, end). */
static void close_item(srv_resp_state *st, const srv_parsed *p)
{
    int idx = (int)json_array_size(st->output);
    if (st->open == 1) {
        const char *t = p->reasoning + st->item_from;
        size_t n = st->sent_r - st->item_from;
        ev(st, "response.reasoning_text.done", json_pack("{s:s,s:i,s:i,s:s%}", "item_id", st->item_id, "output_index",
                                                         idx, "content_index", 0, "text", t, n));
        json_t *item = reasoning_item(st, t, n);
        ev(st, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", idx, "item", item));
        json_array_append_new(st->output, item);
    } else if (st->open == 2) {
        const char *t = p->content + st->item_from;
        size_t n = st->sent_c - st->item_from;
        ev(st, "response.output_text.done", json_pack("{s:s,s:i,s:i,s:s%,s:[]}", "item_id", st->item_id,
                                                      "output_index", idx, "content_index", 0, "text", t, n,
                                                      "logprobs"));
        ev(st, "response.content_part.done",
           json_pack("{s:s,s:i,s:i,s:{s:s,s:s%,s:[]}}", "item_id", st->item_id, "output_index", idx, "content_index", 0,
                     "part", "type", "output_text", "text", t, n, "annotations"));
        json_t *item = message_item(st, "completed", t, n);
        ev(st, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", idx, "item", item));
        json_array_append_new(st->output, item);
    }
    st->open = 0;
}

static void open_item(srv_resp_state *st, int kind, size_t from)
{
    int idx = (int)json_array_size(st->output);
    rand_id(kind == 1 ? "rs_" : "msg_", st->item_id);
    st->open = kind;
    st->item_from = from;
    if (kind == 1) {
        ev(st, "response.output_item.added",
           json_pack("{s:i,s:{s:s,s:s,s:[]}}", "output_index", idx, "item", "type", "reasoning", "id", st->item_id,
                     "summary"));
    } else {
        ev(st, "response.output_item.added", json_pack("{s:i,s:o}", "output_index", idx, "item",
                                                       json_pack("{s:s,s:s,s:s,s:s,s:[]}", "type", "message", "id",
                                                                 st->item_id, "status", "in_progress", "role",
                                                                 "assistant", "content")));
        ev(st, "response.content_part.added",
           json_pack("{s:s,s:i,s:i,s:{s:s,s:s,s:[]}}", "item_id", st->item_id, "output_index", idx, "content_index", 0,
                     "part", "type", "output_text", "text", "", "annotations"));
    }
}

void srv_resp_update(srv_resp_state *st, const srv_parsed *p, size_t n_calls, char (*ids)[48])
{
    int idx = (int)json_array_size(st->output);
    if (p->n_reasoning > st->sent_r) {
        if (st->open != 1) {
            close_item(st, p);
            open_item(st, 1, st->sent_r);
            idx = (int)json_array_size(st->output);
        }
        ev(st, "response.reasoning_text.delta",
           json_pack("{s:s,s:i,s:i,s:s%}", "item_id", st->item_id, "output_index", idx, "content_index", 0, "delta",
                     p->reasoning + st->sent_r, p->n_reasoning - st->sent_r));
        st->sent_r = p->n_reasoning;
    }
    if (p->n_content > st->sent_c) {
        if (st->open != 2) {
            close_item(st, p);
            open_item(st, 2, st->sent_c);
            idx = (int)json_array_size(st->output);
        }
        ev(st, "response.output_text.delta",
           json_pack("{s:s,s:i,s:i,s:s%,s:[]}", "item_id", st->item_id, "output_index", idx, "content_index", 0,
                     "delta", p->content + st->sent_c, p->n_content - st->sent_c, "logprobs"));
        st->sent_c = p->n_content;
    }
    for (size_t i = st->sent_calls; i < n_calls; i++) {
        close_item(st, p);
        idx = (int)json_array_size(st->output);
        char fid[48];
        rand_id("fc_", fid);
        const srv_tool_call *c = &p->calls[i];
        ev(st, "response.output_item.added",
           json_pack("{s:i,s:{s:s,s:s,s:s,s:s,s:s,s:s}}", "output_index", idx, "item", "type", "function_call", "id",
                     fid, "call_id", ids[i], "name", c->name, "arguments", "", "status", "in_progress"));
        ev(st, "response.function_call_arguments.delta",
           json_pack("{s:s,s:i,s:s}", "item_id", fid, "output_index", idx, "delta", c->args));
        ev(st, "response.function_call_arguments.done",
           json_pack("{s:s,s:i,s:s,s:s}", "item_id", fid, "output_index", idx, "name", c->name, "arguments", c->args));
        json_t *item = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "function_call", "id", fid, "call_id", ids[i],
                                 "name", c->name, "arguments", c->args, "status", "completed");
        ev(st, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", idx, "item", item));
        json_array_append_new(st->output, item);
    }
    if (n_calls > st->sent_calls)
        st->sent_calls = n_calls;
}

json_t *srv_resp_finish(srv_resp_state *st, const srv_parsed *p, bool length, int32_t n_prompt, int32_t n_gen,
                        int32_t n_cached)
{
    close_item(st, p);
    json_t *usage = json_pack("{s:i,s:{s:i},s:i,s:{s:i},s:i}", "input_tokens", n_prompt, "input_tokens_details",
                              "cached_tokens", n_cached, "output_tokens", n_gen, "output_tokens_details",
                              "reasoning_tokens", 0, "total_tokens", n_prompt + n_gen);
    json_t *o = resp_object(st, length ? "incomplete" : "completed", json_deep_copy(st->output), usage);
    if (o && length)
        json_object_set_new(o, "incomplete_details", json_pack("{s:s}", "reason", "max_output_tokens"));
    if (o)
        ev(st, length ? "response.incomplete" : "response.completed", json_pack("{s:O}", "response", o));
    return o;
}
