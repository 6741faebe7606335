/*
 * api_params.c - request fields and generation parameters: validation of
 * numbers and flags, sampling parameters of the OpenAI and Ollama dialects,
 * stop strings, logit bias and structured output (grammars, JSON Schema,
 * tool_choice); the body parser the fuzz target drives (api_parse.h).
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

/* ------------------------------------------------------ field validation */

/* Absent or null: *present false. Each returns false (e filled) on a
 * wrong type or a value out of range. */
static bool get_num(json_t *o, const char *key, double lo, double hi, double *out, bool *present, perr *e)
{
    json_t *v = json_object_get(o, key);
    *present = false;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return srv_fail(e, 400, "invalid_type", key, "'%s' must be a number", key);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return srv_fail(e, 400, "invalid_value", key, "'%s' must be between %g and %g (got %g)", key, lo, hi, d);
    *out = d;
    *present = true;
    return true;
}

static bool get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, bool *present, perr *e)
{
    json_t *v = json_object_get(o, key);
    *present = false;
    if (!v || json_is_null(v))
        return true;
    long long x;
    if (json_is_integer(v))
        x = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15)
        x = (long long)json_real_value(v);
    else
        return srv_fail(e, 400, "invalid_type", key, "'%s' must be an integer", key);
    if (x < lo || x > hi)
        return srv_fail(e, 400, "invalid_value", key, "'%s' must be between %lld and %lld (got %lld)", key, lo, hi, x);
    *out = x;
    *present = true;
    return true;
}

bool api_get_bool(json_t *o, const char *key, bool *out, perr *e)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return srv_fail(e, 400, "invalid_type", key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return true;
}

/* ------------------------------------------------------ generation params */

void api_gen_params_free(gen_params *g)
{
    free(g->bias_tok);
    free(g->bias_val);
    g->bias_tok = NULL;
    g->bias_val = NULL;
    g->n_bias = 0;
    al_grammar_free(g->grammar);
    g->grammar = NULL;
    free(g->grammar_special);
    g->grammar_special = NULL;
    g->n_grammar_special = 0;
    for (size_t i = 0; i < g->n_stops; i++)
        free(g->stops[i]);
    free(g->stops);
    g->stops = NULL;
    g->n_stops = 0;
}

static bool parse_stops(json_t *v, gen_params *g, perr *e)
{
    if (!v || json_is_null(v))
        return true;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : (size_t)-1;
    if (n == (size_t)-1)
        return srv_fail(e, 400, "invalid_type", "stop", "'stop' must be a string or a list of strings");
    if (n > 16)
        return srv_fail(e, 400, "invalid_value", "stop", "at most 16 stop strings (got %zu)", n);
    g->stops = calloc(n ? n : 1, sizeof(char *));
    if (!g->stops)
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s))
            return srv_fail(e, 400, "invalid_type", "stop", "'stop' must be a string or a list of strings");
        size_t l = json_string_length(s);
        if (l == 0 || l > 512)
            return srv_fail(e, 400, "invalid_value", "stop", "stop strings must have 1 to 512 bytes");
        g->stops[g->n_stops] = malloc(l + 1);
        if (!g->stops[g->n_stops])
            return srv_fail(e, 500, NULL, NULL, "out of memory");
        memcpy(g->stops[g->n_stops], json_string_value(s), l + 1);
        g->n_stops++;
    }
    return true;
}

/* logit_bias: {"token id": bias in [-100, 100]}; -100 bans the token.
 * Ids are checked against the vocabulary once the model is known. */
static bool parse_logit_bias(json_t *v, gen_params *g, perr *e)
{
    if (!v || json_is_null(v))
        return true;
    if (!json_is_object(v))
        return srv_fail(e, 400, "invalid_type", "logit_bias", "'logit_bias' must be an object of token id -> bias");
    size_t n = json_object_size(v);
    if (n > 1024)
        return srv_fail(e, 400, "invalid_value", "logit_bias", "at most 1024 logit_bias entries (got %zu)", n);
    g->bias_tok = malloc((n ? n : 1) * sizeof(int32_t));
    g->bias_val = malloc((n ? n : 1) * sizeof(float));
    if (!g->bias_tok || !g->bias_val)
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        char *end = NULL;
        long id = strtol(k, &end, 10);
        if (!*k || *end || id < 0 || id > INT32_MAX)
            return srv_fail(e, 400, "invalid_value", "logit_bias", "logit_bias key '%.40s' is not a token id", k);
        if (!json_is_number(x) || !(json_number_value(x) >= -100 && json_number_value(x) <= 100))
            return srv_fail(e, 400, "invalid_value", "logit_bias",
                            "logit_bias[\"%s\"] must be a number in [-100, 100]", k);
        double b = json_number_value(x);
        g->bias_tok[g->n_bias] = (int32_t)id;
        g->bias_val[g->n_bias] = b <= -100 ? -INFINITY : (float)b;
        g->n_bias++;
    }
    return true;
}

/* ------------------------------------------------------ structured output */

/* The grammar that constrains a request's output, from one of
 * response_format (json_object, json_schema), Ollama's format ("json" or a
 * schema) and a GBNF `grammar`. Compilation happens here, on the HTTP
 * thread, within the grammar module's limits (time, size, properties), so
 * a bad schema is a 400 naming the problem and its location. */
static bool set_grammar(gen_params *g, al_status st, const al_error *err, const char *param, perr *e)
{
    if (st == AL_ERR_NOMEM)
        return srv_fail(e, 500, NULL, NULL, "out of memory compiling '%s'", param);
    if (st != AL_OK)
        return srv_fail(e, 400, st == AL_ERR_UNSUPPORTED ? "unsupported_value" : "invalid_value", param, "'%s': %s",
                        param, err->msg);
    return true;
}

/* True (and e filled) when an earlier field already set the grammar. */
static bool grammar_taken(const gen_params *g, const char *param, perr *e)
{
    if (!g->grammar)
        return false;
    srv_fail(e, 400, "invalid_value", param,
             "'%s' cannot be combined with another output constraint (response_format, format, grammar)", param);
    return true;
}

static bool grammar_json_object(gen_params *g, const char *param, perr *e)
{
    if (grammar_taken(g, param, e))
        return false;
    al_error err = {0};
    return set_grammar(g, al_grammar_json_object(&g->grammar, &err), &err, param, e);
}

static bool grammar_schema(gen_params *g, json_t *schema, const char *param, perr *e)
{
    if (grammar_taken(g, param, e))
        return false;
    if (!json_is_object(schema) && !json_is_boolean(schema))
        return srv_fail(e, 400, "invalid_type", param, "'%s' must be a JSON schema (an object)", param);
    char *txt = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY);
    /* jansson 2.14 can return malformed JSON when memory runs out while it
     * dumps (it drops a failed key write): that is not the client's schema */
    json_t *back = txt ? json_loads(txt, JSON_DECODE_ANY, NULL) : NULL;
    const bool same = back && json_equal(back, schema);
    json_decref(back);
    if (!same) {
        free(txt);
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    }
    al_error err = {0};
    al_status st = al_grammar_from_json_schema(txt, strlen(txt), NULL, &g->grammar, &err);
    free(txt);
    return set_grammar(g, st, &err, param, e);
}

/* The `grammar` field (GBNF, as llama.cpp's server takes it). */
static bool parse_grammar_field(json_t *b, gen_params *g, perr *e)
{
    json_t *v = json_object_get(b, "grammar");
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
        return true;
    if (!json_is_string(v))
        return srv_fail(e, 400, "invalid_type", "grammar", "'grammar' must be a string (GBNF)");
    if (grammar_taken(g, "grammar", e))
        return false;
    al_error err = {0};
    al_status st = al_grammar_from_gbnf(json_string_value(v), json_string_length(v), NULL, &g->grammar, &err);
    return set_grammar(g, st, &err, "grammar", e);
}

/* response_format: {type: text | json_object | json_schema, json_schema: {name, schema, strict}} */
static bool parse_response_format(json_t *rf, gen_params *g, perr *e)
{
    if (!rf || json_is_null(rf))
        return true;
    json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
    if (!json_is_string(t))
        return srv_fail(e, 400, "invalid_type", "response_format",
                        "'response_format' must be an object with a string 'type'");
    const char *ts = json_string_value(t);
    if (!strcmp(ts, "text"))
        return true;
    if (!strcmp(ts, "json_object"))
        return grammar_json_object(g, "response_format", e);
    if (strcmp(ts, "json_schema"))
        return srv_fail(e, 400, "unsupported_value", "response_format.type",
                        "response_format type '%s' is not supported (use 'text', 'json_object' or 'json_schema')", ts);
    json_t *js = json_object_get(rf, "json_schema");
    if (!json_is_object(js))
        return srv_fail(e, 400, "invalid_type", "response_format.json_schema",
                        "'response_format.json_schema' must be an object with 'name' and 'schema'");
    json_t *name = json_object_get(js, "name");
    if (name && !json_is_string(name))
        return srv_fail(e, 400, "invalid_type", "response_format.json_schema.name", "'name' must be a string");
    json_t *strict = json_object_get(js, "strict");
    if (strict && !json_is_null(strict) && !json_is_boolean(strict))
        return srv_fail(e, 400, "invalid_type", "response_format.json_schema.strict", "'strict' must be true or false");
    json_t *schema = json_object_get(js, "schema");
    if (!schema || json_is_null(schema)) /* no schema: any JSON object */
        return grammar_json_object(g, "response_format.json_schema", e);
    /* strict or not, the output follows the schema: what cannot be
     * guaranteed is refused rather than ignored */
    return grammar_schema(g, schema, "response_format.json_schema.schema", e);
}

/* tool_choice "required" or a named function: the grammar of a reply that
 * is a call in the template's format (toolgrammar.h). Markers that are
 * control tokens of the vocabulary join the grammar's trie and are
 * rendered into the text (the grammar admits no other control token). */
bool api_tool_choice_grammar(gen_params *g, const srv_agent_req *ag, const srv_chat_fmt *fmt, bool in_think,
                             const al_vocab *vocab, perr *e)
{
    if (grammar_taken(g, "tool_choice", e))
        return false;
    srv_tg_think th = fmt->think == SRV_THINK_TAGS && in_think ? SRV_TG_THINK_OPEN : SRV_TG_THINK_NONE;
    char *gbnf = NULL, where[128] = "", msg[400] = "";
    const char *const *markers = NULL;
    int rc = srv_tool_grammar(ag, fmt, th, &gbnf, &markers, where, sizeof(where), msg, sizeof(msg));
    if (rc == 500)
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    if (rc)
        return srv_fail(e, 400, "invalid_value", where, "'%s': %s", where, msg);
    al_error err = {0};
    al_status st = al_grammar_from_gbnf(gbnf, strlen(gbnf), NULL, &g->grammar, &err);
    free(gbnf);
    if (st != AL_OK)
        return set_grammar(g, st, &err, "tools", e);
    size_t nm = 0;
    while (markers[nm])
        nm++;
    g->grammar_special = malloc((nm ? nm : 1) * sizeof(int32_t));
    if (!g->grammar_special)
        return srv_fail(e, 500, NULL, NULL, "out of memory");
    for (size_t i = 0; i < nm; i++) {
        int32_t id = al_vocab_find(vocab, markers[i], strlen(markers[i]));
        if (id >= 0 && al_vocab_is_control(vocab, id) && !al_vocab_is_eog(vocab, id))
            g->grammar_special[g->n_grammar_special++] = id;
    }
    if (g->n_grammar_special)
        g->render_special = true;
    return true;
}

/* OpenAI request fields common to chat and completions. */
bool api_parse_oai_params(json_t *b, dialect d, const al_server_config *cfg, gen_params *g, perr *e)
{
    bool pr;
    double x;
    long long i;
    g->sp = al_sampler_default_params();
    g->sp.temperature = 1.0f;
    g->sp.top_k = 0;
    g->sp.top_p = 1.0f;
    g->sp.min_p = 0.0f;
    g->sp.repeat_penalty = 1.0f;
    g->sp.seed = AL_SEED_RANDOM; /* the sampler draws one from getrandom */
    if (!api_get_bool(b, "stream", &g->stream, e))
        return false;
    /* Larger than --max-tokens or the room left: generation stops there with "length". */
    if (!get_int(b, "max_tokens", 1, INT32_MAX, &i, &pr, e))
        return false;
    if (pr)
        g->max_tokens = (int32_t)(i < cfg->max_tokens ? i : cfg->max_tokens);
    if (!get_int(b, "max_completion_tokens", 1, INT32_MAX, &i, &pr, e))
        return false;
    if (pr)
        g->max_tokens = (int32_t)(i < cfg->max_tokens ? i : cfg->max_tokens);
    if (!get_num(b, "temperature", 0, 2, &x, &pr, e))
        return false;
    if (pr)
        g->sp.temperature = (float)x;
    if (!get_num(b, "top_p", 0, 1, &x, &pr, e))
        return false;
    if (pr)
        g->sp.top_p = (float)x;
    if (!get_num(b, "presence_penalty", -2, 2, &x, &pr, e))
        return false;
    if (pr)
        g->sp.presence_penalty = (float)x;
    if (!get_num(b, "frequency_penalty", -2, 2, &x, &pr, e))
        return false;
    if (pr)
        g->sp.frequency_penalty = (float)x;
    if (!get_int(b, "seed", INT64_MIN, INT64_MAX, &i, &pr, e))
        return false;
    if (pr)
        g->sp.seed = (uint64_t)i == AL_SEED_RANDOM ? 0 : (uint64_t)i;
    /* Fields OpenAI does not define that llama.cpp's server and Open WebUI send. */
    if (!get_int(b, "top_k", 0, 1000000, &i, &pr, e))
        return false;
    if (pr)
        g->sp.top_k = (int32_t)i;
    if (!get_num(b, "min_p", 0, 1, &x, &pr, e))
        return false;
    if (pr)
        g->sp.min_p = (float)x;
    if (!get_num(b, "repeat_penalty", 0, 10, &x, &pr, e))
        return false;
    if (pr)
        g->sp.repeat_penalty = (float)x;
    if (!get_int(b, "repeat_last_n", -1, 1 << 20, &i, &pr, e))
        return false;
    if (pr)
        g->sp.repeat_last_n = (int32_t)i;
    if (!parse_logit_bias(json_object_get(b, "logit_bias"), g, e))
        return false;
    if (!get_int(b, "n", 1, 8, &i, &pr, e))
        return false;
    g->n_choices = pr ? (int32_t)i : 1;
    if (!get_int(b, "best_of", 1, 1, &i, &pr, e))
        return false;
    json_t *u = json_object_get(b, "user");
    if (u && !json_is_null(u) && !json_is_string(u))
        return srv_fail(e, 400, "invalid_type", "user", "'user' must be a string");
    if (!parse_stops(json_object_get(b, "stop"), g, e))
        return false;
    json_t *so = json_object_get(b, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return srv_fail(e, 400, "invalid_type", "stream_options", "'stream_options' must be an object");
        if (!api_get_bool(so, "include_usage", &g->include_usage, e))
            return false;
    }
    json_t *lp = json_object_get(b, "logprobs");
    if (d == D_OAI_CHAT) {
        if (!api_get_bool(b, "logprobs", &g->logprobs, e))
            return false;
        if (!get_int(b, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &i, &pr, e))
            return false;
        if (pr) {
            if (!g->logprobs)
                return srv_fail(e, 400, "invalid_value", "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            g->top_logprobs = (int32_t)i;
        }
    } else if (lp && !json_is_null(lp)) {
        if (!get_int(b, "logprobs", 0, 5, &i, &pr, e))
            return false;
        g->logprobs = true;
        g->top_logprobs = (int32_t)i;
    }
    if (!parse_response_format(json_object_get(b, "response_format"), g, e) || !parse_grammar_field(b, g, e))
        return false;
    json_t *tools = json_object_get(b, "tools");
    if (tools && !json_is_null(tools) && !json_is_array(tools))
        return srv_fail(e, 400, "invalid_type", "tools", "'tools' must be a list");
    return true;
}

/* Ollama's "options" object and top-level fields. */
bool api_parse_ollama_params(json_t *b, const al_server_config *cfg, gen_params *g, perr *e)
{
    bool pr;
    double x;
    long long i;
    g->sp = al_sampler_default_params();
    g->sp.temperature = 0.8f;
    g->sp.top_k = 40;
    g->sp.top_p = 0.9f;
    g->sp.seed = AL_SEED_RANDOM;
    g->n_choices = 1;
    g->stream = true;
    if (!api_get_bool(b, "stream", &g->stream, e))
        return false;
    json_t *fmt = json_object_get(b, "format");
    if (fmt && !json_is_null(fmt)) {
        if (json_is_string(fmt) && !strcmp(json_string_value(fmt), "json")) {
            if (!grammar_json_object(g, "format", e))
                return false;
        } else if (json_is_object(fmt)) {
            if (!grammar_schema(g, fmt, "format", e))
                return false;
        } else if (!(json_is_string(fmt) && json_string_length(fmt) == 0))
            return srv_fail(e, 400, "invalid_value", "format", "'format' must be \"json\" or a JSON schema object");
    }
    if (!parse_grammar_field(b, g, e))
        return false;
    json_t *o = json_object_get(b, "options");
    if (!o || json_is_null(o))
        return true;
    if (!json_is_object(o))
        return srv_fail(e, 400, "invalid_type", "options", "'options' must be an object");
    if (!get_num(o, "temperature", 0, 100, &x, &pr, e))
        return false;
    if (pr)
        g->sp.temperature = (float)x;
    if (!get_num(o, "top_p", 0, 1, &x, &pr, e))
        return false;
    if (pr)
        g->sp.top_p = (float)x;
    if (!get_num(o, "min_p", 0, 1, &x, &pr, e))
        return false;
    if (pr)
        g->sp.min_p = (float)x;
    if (!get_int(o, "top_k", 0, 1000000, &i, &pr, e))
        return false;
    if (pr)
        g->sp.top_k = (int32_t)i;
    if (!get_num(o, "repeat_penalty", 0, 10, &x, &pr, e))
        return false;
    if (pr)
        g->sp.repeat_penalty = (float)x;
    if (!get_int(o, "repeat_last_n", -1, 1 << 20, &i, &pr, e))
        return false;
    if (pr)
        g->sp.repeat_last_n = (int32_t)i;
    if (!get_num(o, "presence_penalty", -2, 2, &x, &pr, e))
        return false;
    if (pr)
        g->sp.presence_penalty = (float)x;
    if (!get_num(o, "frequency_penalty", -2, 2, &x, &pr, e))
        return false;
    if (pr)
        g->sp.frequency_penalty = (float)x;
    if (!get_int(o, "seed", INT64_MIN, INT64_MAX, &i, &pr, e))
        return false;
    if (pr)
        g->sp.seed = (uint64_t)i == AL_SEED_RANDOM ? 0 : (uint64_t)i;
    if (!get_int(o, "num_predict", -2, INT32_MAX, &i, &pr, e))
        return false;
    if (pr && i > 0)
        g->max_tokens = (int32_t)(i < cfg->max_tokens ? i : cfg->max_tokens);
    else if (pr && i < 0) /* -1, -2: until the context is full */
        g->max_tokens = cfg->max_tokens;
    if (!parse_stops(json_object_get(o, "stop"), g, e))
        return false;
    return true;
}

/* ------------------------------------------- for the fuzz target (api_parse.h) */

int srv_parse_request(json_t *body, srv_parse_endpoint ep, const al_server_config *cfg, json_t **messages,
                      char *msg, size_t msg_cap)
{
    if (messages)
        *messages = NULL;
    char where[256], why[512];
    json_t *b = body, *chat = NULL;
    if (ep == SRV_PARSE_RESPONSES) {
        chat = srv_responses_to_chat(body, where, sizeof(where), why, sizeof(why));
        if (!chat) {
            snprintf(msg, msg_cap, "%s%s%s", where, where[0] ? ": " : "", why);
            return where[0] ? 400 : 500;
        }
        b = chat;
    }
    dialect d = ep == SRV_PARSE_COMPLETIONS         ? D_OAI_COMPL
                : ep == SRV_PARSE_OLLAMA_CHAT       ? D_OL_CHAT
                : ep == SRV_PARSE_OLLAMA_GENERATE   ? D_OL_GEN
                                                    : D_OAI_CHAT;
    perr e = {0};
    gen_params gp = {0};
    bool ok = (d == D_OAI_CHAT || d == D_OAI_COMPL) ? api_parse_oai_params(b, d, cfg, &gp, &e)
                                                    : api_parse_ollama_params(b, cfg, &gp, &e);
    api_gen_params_free(&gp);
    srv_agent_req ag = {.parallel = true, .think = -1};
    if (ok && d != D_OAI_COMPL &&
        !srv_agent_parse(b, d == D_OL_CHAT || d == D_OL_GEN, false, &ag, where, sizeof(where), why, sizeof(why)))
        ok = srv_fail(&e, 400, "invalid_value", where, "%s: %s", where, why);
    if (ok && (d == D_OAI_CHAT || d == D_OL_CHAT)) {
        json_t *msgs = api_normalize_messages(json_object_get(b, "messages"), d == D_OL_CHAT, &e);
        ok = msgs != NULL;
        if (messages)
            *messages = msgs;
        else
            json_decref(msgs);
    }
    json_decref(chat);
    if (!ok) {
        snprintf(msg, msg_cap, "%s", e.msg);
        return e.status ? e.status : 400;
    }
    return 200;
}
