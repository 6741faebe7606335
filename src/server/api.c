/*
 * api.c - the endpoints: OpenAI (/v1/...), Ollama (/api/...) and
 * operations (/health, /ready, /metrics). Parses and validates request
 * bodies, renders chat prompts, tokenizes, hands jobs to the scheduler and
 * shapes answers: JSON, SSE chunks (OpenAI) or NDJSON lines (Ollama).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/api_int.h"
#include "server/api_parse.h"
#include "server/responses.h"
#include "server/server_int.h"
#include "server/toolcall.h"
#include "server/toolgrammar.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

typedef enum dialect { D_OAI_CHAT, D_OAI_COMPL, D_OL_CHAT, D_OL_GEN } dialect;

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

static int reply_perr(srv_req *r, const perr *e)
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
static json_t *jstr(const char *s, size_t n)
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

static void make_id(al_server *srv, const char *prefix, char *out, size_t cap)
{
    unsigned long long n = atomic_fetch_add(&srv->next_id, 1) + 1;
    unsigned long long t = (unsigned long long)time(NULL);
    snprintf(out, cap, "%s%08llx%08llx", prefix, t & 0xffffffffull, (n * 2654435761ull) & 0xffffffffull);
}

static json_t *rfc3339_now(void)
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

static bool get_bool(json_t *o, const char *key, bool *out, perr *e)
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

typedef struct gen_params {
    int32_t max_tokens;       /* 0: not given */
    al_sampler_params sp;
    char **stops;             /* owned until moved into a job */
    size_t n_stops;
    al_grammar *grammar;      /* owned until moved into a job: response_format, format, grammar */
    bool logprobs;
    int32_t top_logprobs;
    bool stream;
    bool include_usage;
    int32_t n_choices;        /* n: choices per prompt (0: 1) */
    bool render_special;      /* the reply's control tokens are parsed (see sched.h) */
    int32_t *bias_tok;        /* logit_bias (owned) */
    float *bias_val;
    size_t n_bias;
    int32_t *grammar_special; /* owned: marker control tokens the grammar may match (see sched.h) */
    size_t n_grammar_special;
} gen_params;

static void gen_params_free(gen_params *g)
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
static bool tool_choice_grammar(gen_params *g, const srv_agent_req *ag, const srv_chat_fmt *fmt, bool in_think,
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
static bool parse_oai_params(json_t *b, dialect d, const al_server_config *cfg, gen_params *g, perr *e)
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
    if (!get_bool(b, "stream", &g->stream, e))
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
        if (!get_bool(so, "include_usage", &g->include_usage, e))
            return false;
    }
    json_t *lp = json_object_get(b, "logprobs");
    if (d == D_OAI_CHAT) {
        if (!get_bool(b, "logprobs", &g->logprobs, e))
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
static bool parse_ollama_params(json_t *b, const al_server_config *cfg, gen_params *g, perr *e)
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
    if (!get_bool(b, "stream", &g->stream, e))
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
static json_t *normalize_messages(json_t *msgs, bool ollama, perr *e)
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

static void piece_of(const al_vocab *v, int32_t tok, char *buf, size_t cap)
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
static const char *chat_template_of(al_server *srv, const srv_model_status *st, const al_model *model)
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
static bool render_chat(al_server *srv, srv_model *sm, const al_model *model, json_t *msgs, const srv_agent_req *a,
                        srv_chat_fmt *fmt, char **out, perr *e)
{
    srv_model_status st;
    srv_model_get_status(srv->sched, sm, &st);
    const char *src = chat_template_of(srv, &st, model);
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
    piece_of(v, al_vocab_bos(v), bos, sizeof(bos));
    piece_of(v, al_vocab_eos(v), eos, sizeof(eos));
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
static bool tokenize(const al_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
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

/* ------------------------------------------------------------ responses */

typedef struct gen_ctx {
    al_server *srv;
    dialect d;
    char id[48];
    int64_t created;
    char model_name[128];
    const al_vocab *vocab;
    bool logprobs;
    int32_t top_logprobs;
    bool include_usage;
    double t_start;
    int32_t n_prompt;
    size_t text_offset;       /* completions logprobs text_offset */
    bool parse;               /* reasoning and/or tool calls parsed out of the reply */
    srv_parse_opts po;        /* po.tool_defs: a reference the gen_ctx's owner drops */
    bool parallel;            /* parallel_tool_calls */
    srv_resp_state *resp;     /* POST /v1/responses: its output state (owned by the gen_ctx's owner) */
} gen_ctx;

static void resp_free(srv_resp_state *st)
{
    if (st) {
        srv_resp_free(st);
        free(st);
    }
}

/* The reply parsed as g asks; calls cut to one without parallel_tool_calls. */
static bool parse_reply(const gen_ctx *g, const char *text, size_t n, bool final, srv_parsed *p)
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
static json_t *calls_json(const gen_ctx *g, const srv_parsed *p, size_t from, size_t to, char (*ids)[48], bool delta)
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

enum { MAX_CALLS = 64 }; /* tool calls shown per reply */

static const char *finish_str(srv_finish f)
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

static json_t *chat_logprobs(gen_ctx *g, const srv_tok_info *t, size_t n)
{
    json_t *content = json_array();
    char p[256];
    for (size_t i = 0; i < n; i++) {
        piece_of(g->vocab, t[i].token, p, sizeof(p));
        json_t *top = json_array();
        for (int32_t k = 0; k < t[i].n_top && k < g->top_logprobs; k++) {
            char q[256];
            piece_of(g->vocab, t[i].top_id[k], q, sizeof(q));
            json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", jstr(q, strlen(q)), "logprob",
                                                 (double)t[i].top_lp[k], "bytes", tok_json_bytes(q)));
        }
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", jstr(p, strlen(p)), "logprob",
                                                  (double)t[i].logprob, "bytes", tok_json_bytes(p), "top_logprobs",
                                                  top));
    }
    return json_pack("{s:o}", "content", content);
}

static json_t *compl_logprobs(gen_ctx *g, const srv_tok_info *t, size_t n)
{
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    char p[256];
    for (size_t i = 0; i < n; i++) {
        piece_of(g->vocab, t[i].token, p, sizeof(p));
        json_array_append_new(toks, jstr(p, strlen(p)));
        json_array_append_new(lps, json_real(t[i].logprob));
        json_t *top = json_object();
        for (int32_t k = 0; k < t[i].n_top && k < g->top_logprobs; k++) {
            char q[256];
            piece_of(g->vocab, t[i].top_id[k], q, sizeof(q));
            json_t *qs = jstr(q, strlen(q));
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

static json_t *usage_json(int32_t n_prompt, int32_t n_gen, int32_t n_cached)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", n_prompt, "completion_tokens", n_gen, "total_tokens",
                     n_prompt + n_gen, "prompt_tokens_details", "cached_tokens", n_cached);
}

static void ollama_stats(json_t *o, const srv_job *j, double t_start)
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

static void observe_job(al_server *srv, const srv_job *j, double t_start)
{
    if (j->n_gen > 0 && j->t_first > 0) {
        srv_metrics_observe(srv->metrics, SRV_H_TTFT, j->t_first - t_start);
        if (j->n_gen > 1 && j->t_done > j->t_first)
            srv_metrics_observe(srv->metrics, SRV_H_TPOT, (j->t_done - j->t_first) / (j->n_gen - 1));
    }
    srv_metrics_observe(srv->metrics, SRV_H_DURATION, (j->t_done > 0 ? j->t_done : srv_now()) - t_start);
}

/* Status and message for a job that ended badly; 0 when it ended well. */
static int job_error(const srv_job *j, perr *e)
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
    if (!parse_reply(&s->g, s->all, s->n_all, v->finish != SRV_FINISH_NONE, &p))
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
    json_t *r = new_r ? jstr(p.reasoning + s->sent_reasoning, p.n_reasoning - s->sent_reasoning) : NULL;
    json_t *c = new_c ? jstr(p.content + s->sent_content, p.n_content - s->sent_content) : NULL;
    json_t *t = new_t ? calls_json(&s->g, &p, s->sent_calls, nc, s->ids, true) : NULL;
    switch (s->g.d) {
    case D_OAI_CHAT: {
        json_t *lp = s->g.logprobs && v->n_toks_new ? chat_logprobs(&s->g, v->toks, v->n_toks_new) : NULL;
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
                o = json_pack("{s:s,s:o,s:o,s:b}", "model", s->g.model_name, "created_at", rfc3339_now(), "message",
                              m, "done", 0);
            } else {
                json_decref(t);
                o = json_pack("{s:s,s:o,s:o,s:b}", "model", s->g.model_name, "created_at", rfc3339_now(),
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
                          usage_json(s->job->n_prompt, n_gen, s->job->n_cached)));
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
        json_t *t = jstr(v.text, v.n_text);
        switch (s->g.d) {
        case D_OAI_CHAT: {
            json_t *lp = s->g.logprobs ? chat_logprobs(&s->g, v.toks, v.n_toks_new) : json_null();
            emit(s, oai_chunk(s, json_pack("{s:i,s:{s:o},s:o,s:n}", "index", s->index, "delta", "content", t, "logprobs",
                                           lp, "finish_reason")));
            break;
        }
        case D_OAI_COMPL: {
            json_t *lp = s->g.logprobs ? compl_logprobs(&s->g, v.toks, v.n_toks_new) : json_null();
            emit(s, oai_chunk(s, json_pack("{s:o,s:i,s:o,s:n}", "text", t, "index", s->index, "logprobs", lp,
                                           "finish_reason")));
            break;
        }
        case D_OL_CHAT:
            emit(s, json_pack("{s:s,s:o,s:{s:s,s:o},s:b}", "model", s->g.model_name, "created_at", rfc3339_now(),
                              "message", "role", "assistant", "content", t, "done", 0));
            break;
        case D_OL_GEN:
            emit(s, json_pack("{s:s,s:o,s:o,s:b}", "model", s->g.model_name, "created_at", rfc3339_now(),
                              "response", t, "done", 0));
            break;
        }
        s->text_pos = v.text_end;
        s->tok_pos = v.toks_end;
        produced = true;
    }
    if (v.finish != SRV_FINISH_NONE && v.text_end == s->text_pos && v.toks_end == s->tok_pos) {
        perr e = {0};
        int bad = job_error(s->job, &e);
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
            const char *fr = s->sent_calls && v.finish == SRV_FINISH_STOP ? "tool_calls" : finish_str(v.finish);
            if (s->g.d == D_OAI_CHAT)
                emit(s, oai_chunk(s, json_pack("{s:i,s:{},s:n,s:s}", "index", s->index, "delta", "logprobs",
                                               "finish_reason", fr)));
            else
                emit(s, oai_chunk(s, json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", s->index, "logprobs",
                                               "finish_reason", fr)));
        } else {
            json_t *o = s->g.d == D_OL_CHAT
                            ? json_pack("{s:s,s:o,s:{s:s,s:s},s:b,s:s}", "model", s->g.model_name, "created_at",
                                        rfc3339_now(), "message", "role", "assistant", "content", "", "done", 1,
                                        "done_reason", finish_str(v.finish))
                            : json_pack("{s:s,s:o,s:s,s:b,s:s}", "model", s->g.model_name, "created_at",
                                        rfc3339_now(), "response", "", "done", 1, "done_reason",
                                        finish_str(v.finish));
            if (o)
                ollama_stats(o, s->job, s->g.t_start);
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
    observe_job(s->g.srv, s->job, s->g.t_start);
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
    observe_job(s->g.srv, s->job, s->g.t_start);
    srv_model_release(s->sched, s->model);
    srv_job_free(s->job);
    free(s->buf);
    if (s->all)
        explicit_bzero(s->all, s->cap_all);
    free(s->all);
    free(s->ids);
    json_decref(s->g.po.tool_defs);
    resp_free(s->g.resp);
    free(s);
}

/* Answers with a stream that owns jobs[0..n_jobs) (the choices, n_jobs
 * <= 9) and the model pin. */
static int start_stream(srv_req *r, gen_ctx *g, srv_job **jobs, size_t n_jobs, srv_model *m)
{
    stream *s = calloc(1, sizeof(*s));
    size_t made = 0;
    for (size_t i = 1; s && i < n_jobs; i++, made++)
        if (!(s->subs[i - 1] = calloc(1, sizeof(stream))))
            break;
    if (!s || made + 1 < n_jobs) {
        json_decref(g->po.tool_defs);
        resp_free(g->resp);
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

/* ------------------------------------------------------------ generation */

static srv_model *find_model(srv_req *r, json_t *b, const char *key, perr *e)
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
static int reply_load_error(srv_req *r, const al_error *err)
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
static void keep_prompt_json(srv_req *r, json_t *v)
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
static void extend_timeout(srv_req *r)
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
    extend_timeout(r);
    *out = j;
    return true;
}

/* choices[index] of a finished chat job: content, reasoning_content and
 * tool_calls as the reply's format gives them. */
static json_t *chat_choice(const gen_ctx *g, srv_job *j, size_t index)
{
    json_t *lp = g->logprobs ? chat_logprobs((gen_ctx *)g, j->toks, j->n_toks) : json_null();
    const char *fr = finish_str(j->finish);
    srv_parsed p;
    if (!g->parse || !parse_reply(g, j->text, j->text_len, true, &p))
        return json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", (int)index, "message", "role", "assistant", "content",
                         jstr(j->text, j->text_len), "logprobs", lp, "finish_reason", fr);
    json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                            p.n_calls && !p.n_content ? json_null() : jstr(p.content, p.n_content));
    if (msg && p.n_reasoning)
        json_object_set_new(msg, "reasoning_content", jstr(p.reasoning, p.n_reasoning));
    if (msg && p.n_calls) {
        char(*ids)[48] = calloc(p.n_calls, sizeof(*ids));
        if (ids)
            json_object_set_new(msg, "tool_calls", calls_json(g, &p, 0, p.n_calls, ids, false));
        free(ids);
        if (j->finish == SRV_FINISH_STOP)
            fr = "tool_calls";
    }
    srv_parsed_free(&p);
    return json_pack("{s:i,s:o,s:o,s:s}", "index", (int)index, "message", msg, "logprobs", lp, "finish_reason", fr);
}

/* resp_body: the original body of a POST /v1/responses (r->json then holds
 * its chat translation), else NULL. */
static int handle_generate(srv_req *r, dialect d, json_t *resp_body)
{
    al_server *srv = r->srv;
    json_t *b = r->json;
    perr e = {0};
    gen_params gp = {0};
    srv_model *m = find_model(r, b, "model", &e);
    if (!m)
        return reply_perr(r, &e);
    bool ok = (d == D_OAI_CHAT || d == D_OAI_COMPL) ? parse_oai_params(b, d, &srv->cfg, &gp, &e)
                                                    : parse_ollama_params(b, &srv->cfg, &gp, &e);
    srv_agent_req ag = {.parallel = true, .think = -1};
    if (ok && d != D_OAI_COMPL) {
        char where[256], msg[512];
        if (!srv_agent_parse(b, d == D_OL_CHAT || d == D_OL_GEN, false, &ag, where, sizeof(where), msg, sizeof(msg)))
            ok = srv_fail(&e, 400, "invalid_value", where, "%s: %s", where, msg);
    }
    if (!ok) {
        gen_params_free(&gp);
        return reply_perr(r, &e);
    }
    /* Check the prompt fields before loading anything. */
    json_t *msgs = NULL, *prompt = NULL;
    if (d == D_OAI_CHAT || d == D_OL_CHAT) {
        msgs = normalize_messages(json_object_get(b, "messages"), d == D_OL_CHAT, &e);
        if (!msgs) {
            gen_params_free(&gp);
            return reply_perr(r, &e);
        }
    } else {
        prompt = json_object_get(b, "prompt");
        bool okp = json_is_string(prompt) || (d == D_OAI_COMPL && json_is_array(prompt) && json_array_size(prompt));
        if (d == D_OL_GEN && (!prompt || json_is_null(prompt)))
            okp = true;
        if (!okp) {
            gen_params_free(&gp);
            return srv_reply_error(r, 400, "invalid_type", "prompt",
                                   "'prompt' must be a string%s", d == D_OAI_COMPL ? " or a non-empty list" : "");
        }
    }
    const al_model *model = NULL;
    al_error err = {0};
    keep_prompt_json(r, msgs ? json_object_get(b, "messages") : prompt);
    if (srv_model_acquire(srv->sched, m, &model, &err)) {
        json_decref(msgs);
        gen_params_free(&gp);
        return reply_load_error(r, &err);
    }
    const al_vocab *vocab = al_model_vocab(model);
    uint32_t n_ctx = srv->cfg.sched.n_ctx;
    gen_ctx g = {.srv = srv, .d = d, .created = (int64_t)time(NULL), .vocab = vocab, .logprobs = gp.logprobs,
                 .top_logprobs = gp.top_logprobs, .include_usage = gp.include_usage, .t_start = r->t_start};
    snprintf(g.model_name, sizeof(g.model_name), "%s", r->model);
    make_id(srv, d == D_OAI_CHAT ? "chatcmpl-" : "cmpl-", g.id, sizeof(g.id));

    /* The prompts: one, or several for /v1/completions with a list. */
    enum { MAX_PROMPTS = 16 };
    int32_t *ptok[MAX_PROMPTS] = {0};
    int32_t pn[MAX_PROMPTS] = {0};
    size_t n_prompts = 0;
    char *text = NULL;
    int ret;
    srv_chat_fmt fmt = {0};
    bool templated = false;
    for (size_t i = 0; i < gp.n_bias; i++)
        if (gp.bias_tok[i] >= al_vocab_n_tokens(vocab)) {
            int32_t bad_id = gp.bias_tok[i], n_vocab = al_vocab_n_tokens(vocab);
            json_decref(msgs);
            gen_params_free(&gp);
            srv_model_release(srv->sched, m);
            return srv_reply_error(r, 400, "invalid_value", "logit_bias",
                                   "logit_bias: token id %d is not in this model's vocabulary (%d tokens)", bad_id,
                                   n_vocab);
        }
    if (d == D_OAI_CHAT || d == D_OL_CHAT) {
        ok = render_chat(srv, m, model, msgs, &ag, &fmt, &text, &e) &&
             tokenize(vocab, text, strlen(text), true, true, n_ctx, &ptok[0], &pn[0], &e);
        n_prompts = ok;
        templated = true;
    } else if (d == D_OL_GEN) {
        const char *p = json_string_value(prompt);
        if (!p || !*p) {
            /* Ollama's way to load a model: an empty prompt. */
            json_decref(msgs);
            gen_params_free(&gp);
            srv_model_release(srv->sched, m);
            return srv_reply_json(r, 200,
                                  json_pack("{s:s,s:o,s:s,s:b,s:s}", "model", g.model_name, "created_at",
                                            rfc3339_now(), "response", "", "done", 1, "done_reason", "load"));
        }
        bool raw = false;
        get_bool(b, "raw", &raw, &e);
        srv_model_status st;
        srv_model_get_status(srv->sched, m, &st);
        bool has_tmpl = chat_template_of(srv, &st, model) != NULL;
        if (!raw && has_tmpl) {
            json_t *mm = json_array();
            json_t *sys = json_object_get(b, "system");
            if (json_is_string(sys) && json_string_length(sys))
                json_array_append_new(mm, json_pack("{s:s,s:O}", "role", "system", "content", sys));
            json_array_append_new(mm, json_pack("{s:s,s:s}", "role", "user", "content", p));
            ag.tools = NULL; /* /api/generate takes no tools */
            ok = render_chat(srv, m, model, mm, &ag, &fmt, &text, &e) &&
                 tokenize(vocab, text, strlen(text), true, true, n_ctx, &ptok[0], &pn[0], &e);
            json_decref(mm);
            templated = true;
        } else {
            ok = tokenize(vocab, p, strlen(p), true, false, n_ctx, &ptok[0], &pn[0], &e);
        }
        n_prompts = ok;
    } else if (json_is_string(prompt)) {
        ok = tokenize(vocab, json_string_value(prompt), json_string_length(prompt), true, false, n_ctx, &ptok[0],
                      &pn[0], &e);
        n_prompts = ok;
    } else {
        /* A list of strings, or one prompt given as token ids. */
        json_t *first = json_array_get(prompt, 0);
        if (json_is_integer(first)) {
            size_t n = json_array_size(prompt), i;
            json_t *t;
            ok = n < n_ctx || srv_fail(&e, 400, "context_length_exceeded", "prompt",
                                       "the prompt has %zu tokens; the context holds %u", n, n_ctx);
            ptok[0] = ok ? malloc(n * sizeof(int32_t)) : NULL;
            ok = ok && (ptok[0] || srv_fail(&e, 500, NULL, NULL, "out of memory"));
            json_array_foreach(prompt, i, t)
            {
                if (!ok)
                    break;
                json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
                if (v < 0 || v >= al_vocab_n_tokens(vocab))
                    ok = srv_fail(&e, 400, "invalid_value", "prompt", "prompt[%zu] is not a token id of this model",
                                  i);
                else
                    ptok[0][i] = (int32_t)v;
            }
            pn[0] = (int32_t)n;
            n_prompts = ok;
        } else {
            size_t n = json_array_size(prompt), i;
            json_t *t;
            if (n > MAX_PROMPTS)
                ok = srv_fail(&e, 400, "invalid_value", "prompt", "at most %d prompts per request", MAX_PROMPTS);
            else if (n > 1 && gp.stream)
                ok = srv_fail(&e, 400, "unsupported_value", "prompt", "streaming takes a single prompt");
            json_array_foreach(prompt, i, t)
            {
                if (!ok)
                    break;
                if (!json_is_string(t)) {
                    ok = srv_fail(&e, 400, "invalid_type", "prompt", "prompt[%zu] must be a string", i);
                    break;
                }
                ok = tokenize(vocab, json_string_value(t), json_string_length(t), true, false, n_ctx, &ptok[i],
                              &pn[i], &e);
                n_prompts += ok;
            }
        }
    }
    /* Reasoning and tool calls are parsed out of replies in the template's format. */
    if (ok && templated) {
        bool tools_on = ag.tools && ag.choice != SRV_TC_NONE;
        bool split = !srv->cfg.reasoning_inline && fmt.think != SRV_THINK_NONE;
        g.parse = tools_on || split;
        g.po.fmt = fmt;
        g.po.tools = tools_on;
        g.po.split_reasoning = !srv->cfg.reasoning_inline;
        g.po.in_think = fmt.think == SRV_THINK_TAGS && text && srv_prompt_opens_think(text, strlen(text));
        g.po.tool_defs = tools_on ? json_incref(ag.tools) : NULL;
        g.parallel = ag.parallel;
        if (resp_body && (g.resp = calloc(1, sizeof(*g.resp))))
            srv_resp_init(g.resp, g.model_name, resp_body, NULL, NULL);
        if (resp_body && !g.resp)
            ok = srv_fail(&e, 500, NULL, NULL, "out of memory");
        g.parse = g.parse || g.resp; /* the Responses API always shapes the parse */
        /* Markers that are control tokens are rendered for the parser, and
         * gpt-oss's always: without them its channels would run together. */
        gp.render_special = fmt.special_markers && (g.parse || fmt.think == SRV_THINK_HARMONY);
        /* tool_choice "required" / named: the reply is constrained to a call (of
         * ag.choice_name) in the template's format whose arguments follow the
         * tool's parameters schema. */
        if (ok && tools_on && (ag.choice == SRV_TC_REQUIRED || ag.choice == SRV_TC_NAMED))
            ok = tool_choice_grammar(&gp, &ag, &fmt, g.po.in_think, vocab, &e);
    }
    free(text);
    json_decref(msgs);
    enum { MAX_JOBS = MAX_PROMPTS * 8 };
    srv_job *jobs[MAX_JOBS] = {0};
    size_t n_jobs = 0;
    int32_t n_choices = gp.n_choices > 0 ? gp.n_choices : 1;
    for (size_t i = 0; ok && i < n_prompts; i++) {
        for (int32_t k = 0; ok && k < n_choices; k++) {
            int32_t *pt = ptok[i];
            if (k + 1 < n_choices) { /* the last choice takes the prompt itself */
                pt = malloc((size_t)pn[i] * sizeof(int32_t));
                if (!pt) {
                    ok = srv_fail(&e, 500, NULL, NULL, "out of memory");
                    break;
                }
                memcpy(pt, ptok[i], (size_t)pn[i] * sizeof(int32_t));
            } else {
                ptok[i] = NULL; /* the job owns it (or freed it) */
            }
            /* Choices after the first copy its prompt's KV (sched.c). */
            srv_job *from = k > 0 ? jobs[n_jobs - (size_t)k] : NULL;
            ok = submit_job(r, m, &gp, pt, pn[i], k, from, &jobs[n_jobs], &e);
            n_jobs += ok;
        }
    }
    for (size_t i = 0; i < MAX_PROMPTS; i++)
        free(ptok[i]);
    gen_params_free(&gp);
    if (!ok) {
        /* All let go before any is freed: a later choice may point at an earlier one. */
        for (size_t i = 0; i < n_jobs; i++)
            srv_job_cancel_wait(srv->sched, jobs[i]);
        for (size_t i = 0; i < n_jobs; i++)
            srv_job_free(jobs[i]);
        json_decref(g.po.tool_defs);
        resp_free(g.resp);
        srv_model_release(srv->sched, m);
        return reply_perr(r, &e);
    }
    g.n_prompt = jobs[0]->n_prompt;
    if (g.logprobs)
        g.top_logprobs = jobs[0]->top_logprobs;
    if (gp.stream)
        return start_stream(r, &g, jobs, n_jobs, m); /* one prompt: n_jobs == n_choices */

    for (size_t i = 0; i < n_jobs; i++)
        srv_job_wait_done(srv->sched, jobs[i], srv_client_alive, r);
    int bad = 0;
    for (size_t i = 0; i < n_jobs && !bad; i++)
        bad = job_error(jobs[i], &e);
    if (bad) {
        ret = bad == 499 ? MHD_NO : reply_perr(r, &e);
    } else {
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
        json_t *t = jstr(j->text, j->text_len);
        srv_parsed pr = {0};
        if (g.parse && d != D_OAI_CHAT && d != D_OAI_COMPL && !parse_reply(&g, j->text, j->text_len, true, &pr))
            g.parse = false;
        if (g.resp) { /* POST /v1/responses */
            json_decref(t);
            srv_parsed rp;
            if (parse_reply(&g, j->text, j->text_len, true, &rp)) {
                char(*ids)[48] = calloc(rp.n_calls ? rp.n_calls : 1, sizeof(*ids));
                for (size_t i = 0; ids && i < rp.n_calls; i++)
                    srv_call_id(&rp.calls[i], g.po.fmt.tools, ids[i]);
                if (ids)
                    srv_resp_update(g.resp, &rp, rp.n_calls, ids);
                o = srv_resp_finish(g.resp, &rp, j->finish == SRV_FINISH_LENGTH, tp, tg, tc);
                free(ids);
                srv_parsed_free(&rp);
            }
        } else switch (d) {
        case D_OAI_CHAT: {
            json_decref(t);
            json_t *choices = json_array();
            for (size_t i = 0; i < n_jobs; i++)
                json_array_append_new(choices, chat_choice(&g, jobs[i], i));
            o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", g.id, "object", "chat.completion", "created",
                          (json_int_t)g.created, "model", g.model_name, "system_fingerprint", "airlock-" AL_VERSION,
                          "choices", choices, "usage", usage_json(tp, tg, tc));
            break;
        }
        case D_OAI_COMPL: {
            json_decref(t);
            json_t *choices = json_array();
            for (size_t i = 0; i < n_jobs; i++) {
                g.text_offset = 0;
                json_t *lp = g.logprobs ? compl_logprobs(&g, jobs[i]->toks, jobs[i]->n_toks) : json_null();
                json_array_append_new(choices, json_pack("{s:o,s:i,s:o,s:s}", "text",
                                                         jstr(jobs[i]->text, jobs[i]->text_len), "index", (int)i,
                                                         "logprobs", lp, "finish_reason",
                                                         finish_str(jobs[i]->finish)));
            }
            o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o}", "id", g.id, "object", "text_completion", "created",
                          (json_int_t)g.created, "model", g.model_name, "system_fingerprint", "airlock-" AL_VERSION,
                          "choices", choices, "usage", usage_json(tp, tg, tc));
            break;
        }
        case D_OL_CHAT: {
            json_t *msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                                    g.parse ? jstr(pr.content, pr.n_content) : json_incref(t));
            if (msg && g.parse && pr.n_reasoning)
                json_object_set_new(msg, "thinking", jstr(pr.reasoning, pr.n_reasoning));
            if (msg && g.parse && pr.n_calls) {
                char(*ids)[48] = calloc(pr.n_calls, sizeof(*ids));
                if (ids)
                    json_object_set_new(msg, "tool_calls", calls_json(&g, &pr, 0, pr.n_calls, ids, false));
                free(ids);
            }
            json_decref(t);
            o = json_pack("{s:s,s:o,s:o,s:b,s:s}", "model", g.model_name, "created_at", rfc3339_now(), "message",
                          msg, "done", 1, "done_reason", finish_str(j->finish));
            if (o)
                ollama_stats(o, j, g.t_start);
            break;
        }
        case D_OL_GEN:
            o = json_pack("{s:s,s:o,s:o,s:b,s:s}", "model", g.model_name, "created_at", rfc3339_now(), "response",
                          g.parse ? jstr(pr.content, pr.n_content) : json_incref(t), "done", 1, "done_reason",
                          finish_str(j->finish));
            if (o && g.parse && pr.n_reasoning)
                json_object_set_new(o, "thinking", jstr(pr.reasoning, pr.n_reasoning));
            json_decref(t);
            if (o)
                ollama_stats(o, j, g.t_start);
            break;
        }
        srv_parsed_free(&pr);
        ret = srv_reply_json(r, 200, o);
    }
    for (size_t i = 0; i < n_jobs; i++) {
        observe_job(srv, jobs[i], r->t_start);
        srv_job_free(jobs[i]);
    }
    json_decref(g.po.tool_defs);
    resp_free(g.resp);
    srv_model_release(srv->sched, m);
    return ret;
}

/* POST /v1/responses: translated into a chat request (responses.c). */
static int handle_responses(srv_req *r)
{
    char where[128], msg[512];
    json_t *chat = srv_responses_to_chat(r->json, where, sizeof(where), msg, sizeof(msg));
    if (!chat && !where[0])
        return srv_reply_error(r, 500, NULL, NULL, "%s", msg);
    if (!chat)
        return srv_reply_error(r, 400, "invalid_value", where, "%s: %s", where, msg);
    json_t *orig = r->json;
    r->json = chat;
    int ret = handle_generate(r, D_OAI_CHAT, orig);
    r->json = orig;
    json_decref(chat);
    return ret;
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
    srv_model *m = find_model(r, r->json, "model", &e);
    if (!m)
        return reply_perr(r, &e);
    const al_model *model = NULL;
    al_error err = {0};
    if (srv_model_acquire(r->srv->sched, m, &model, &err))
        return reply_load_error(r, &err);
    srv_model_status st;
    srv_model_get_status(r->srv->sched, m, &st);
    const char *tmpl = chat_template_of(r->srv, &st, model);
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
                          tmpl ? jstr(tmpl, strlen(tmpl)) : json_string(""), "details", ollama_details(&st),
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
        return handle_generate(r, D_OAI_CHAT, NULL);
    case SRV_R_RESPONSES:
        return handle_responses(r);
    case SRV_R_COMPLETIONS:
        return handle_generate(r, D_OAI_COMPL, NULL);
    case SRV_R_OLLAMA_CHAT:
        return handle_generate(r, D_OL_CHAT, NULL);
    case SRV_R_OLLAMA_GENERATE:
        return handle_generate(r, D_OL_GEN, NULL);
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
    return find_model(r, b, key, e);
}

int srv_api_reply_perr(srv_req *r, const perr *e)
{
    return reply_perr(r, e);
}

int srv_api_reply_load_error(srv_req *r, const al_error *err)
{
    return reply_load_error(r, err);
}

void srv_api_keep_prompt_json(srv_req *r, json_t *v)
{
    keep_prompt_json(r, v);
}

void srv_api_extend_timeout(srv_req *r)
{
    extend_timeout(r);
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
    bool ok = (d == D_OAI_CHAT || d == D_OAI_COMPL) ? parse_oai_params(b, d, cfg, &gp, &e)
                                                    : parse_ollama_params(b, cfg, &gp, &e);
    gen_params_free(&gp);
    srv_agent_req ag = {.parallel = true, .think = -1};
    if (ok && d != D_OAI_COMPL &&
        !srv_agent_parse(b, d == D_OL_CHAT || d == D_OL_GEN, false, &ag, where, sizeof(where), why, sizeof(why)))
        ok = srv_fail(&e, 400, "invalid_value", where, "%s: %s", where, why);
    if (ok && (d == D_OAI_CHAT || d == D_OL_CHAT)) {
        json_t *msgs = normalize_messages(json_object_get(b, "messages"), d == D_OL_CHAT, &e);
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
