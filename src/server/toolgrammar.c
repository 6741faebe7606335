/*
 * toolgrammar.c - GBNF of a reply that must be a tool call (see
 * toolgrammar.h). The wrapper is written in each format's canonical
 * spelling, the one its template shows the model for earlier calls; the
 * arguments are the tool's `parameters` schema compiled by
 * al_json_schema_to_gbnf_rule (one rule per tool, "argsK").
 */
#include "server/toolgrammar.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/grammar.h"

enum { MAX_PARALLEL = 8 };

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->n + (size_t)k)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static const char *const k_hermes_markers[] = {"<tool_call>", "</tool_call>", "</think>", NULL};
static const char *const k_mistral_markers[] = {"[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", NULL};
static const char *const k_granite_markers[] = {"<|tool_call|>", "</think>", NULL};
static const char *const k_llama3_markers[] = {"</think>", NULL};
#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"
static const char *const k_deepseek_markers[] = {DS_CALLS_BEGIN, DS_CALLS_END, DS_CALL_BEGIN, DS_CALL_END, DS_SEP,
                                                 "</think>", NULL};
static const char *const k_harmony_markers[] = {"<|channel|>", "<|message|>", "<|constrain|>", NULL};

static int fail(char *where, size_t wcap, char *msg, size_t mcap, int code, const char *w, const char *fmt, ...)
{
    snprintf(where, wcap, "%s", w);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, mcap, fmt, ap);
    va_end(ap);
    return code;
}

/* The argument rule of tool f (argsK and its helpers) appended to b. */
static int put_args(sbuf *b, json_t *f, size_t k, size_t index, bool flat, char *where, size_t wcap, char *msg,
                    size_t mcap)
{
    json_t *p = json_object_get(f, "parameters");
    char *txt = p && !json_is_null(p) ? json_dumps(p, JSON_COMPACT) : strdup("{\"type\":\"object\"}");
    if (!txt)
        return fail(where, wcap, msg, mcap, 500, "", "out of memory");
    char name[32], *rule = NULL;
    snprintf(name, sizeof(name), "args%zu", k);
    al_error err = {0};
    al_status st = al_json_schema_to_gbnf_rule(txt, strlen(txt), name, NULL, &rule, &err);
    free(txt);
    if (st == AL_ERR_NOMEM)
        return fail(where, wcap, msg, mcap, 500, "", "out of memory");
    if (st != AL_OK) {
        char w[96];
        snprintf(w, sizeof(w), "tools[%zu]%s.parameters", index, flat ? "" : ".function");
        return fail(where, wcap, msg, mcap, 400, w, "the parameters schema cannot constrain a call: %s", err.msg);
    }
    put(b, "%s\n", rule);
    free(rule);
    return 0;
}

/* Qwen3-Coder: the parameters of tool f as <parameter=K>\nV\n</parameter>
 * lines (rule xpK), in the declared order, the required ones mandatory.
 * The parser keeps a string parameter's text as it is and reads others as
 * JSON, so a string value is raw text (no '<', within min/maxLength, or
 * one of its enum) and any other value follows its schema as JSON. */
static int put_xml_params(sbuf *b, json_t *f, size_t k, size_t index, bool flat, char *where, size_t wcap,
                          char *msg, size_t mcap)
{
    json_t *p = json_object_get(f, "parameters");
    json_t *props = json_object_get(p, "properties");
    json_t *req = json_object_get(p, "required");
    char w[160];
    snprintf(w, sizeof(w), "tools[%zu]%s.parameters", index, flat ? "" : ".function");
    if (!json_is_object(props) || json_object_size(props) == 0) {
        put(b, "xp%zu ::= (\"<parameter=\" [a-zA-Z0-9_]+ \">\\n\" [^<]* \"\\n</parameter>\\n\")*\n", k);
        return 0;
    }
    put(b, "xp%zu ::=", k);
    size_t j = 0;
    const char *key;
    json_t *ps;
    json_object_foreach(props, key, ps)
    {
        bool required = false;
        size_t r;
        json_t *rv;
        json_array_foreach(req, r, rv) required |= json_is_string(rv) && !strcmp(json_string_value(rv), key);
        put(b, " x%zu-%zu%s", k, j, required ? "" : "?");
        j++;
    }
    put(b, "\n");
    j = 0;
    json_object_foreach(props, key, ps)
    {
        for (const char *c = key; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                  *c == '-'))
                return fail(where, wcap, msg, mcap, 400, w,
                            "parameter name '%.64s' cannot be written in the qwen3-coder call format", key);
        put(b, "x%zu-%zu ::= \"<parameter=%s>\\n\" v%zu-%zu \"\\n</parameter>\\n\"\n", k, j, key, k, j);
        const char *ty = json_string_value(json_object_get(ps, "type"));
        json_t *en = json_object_get(ps, "enum");
        if (!ty || !strcmp(ty, "string")) {
            if (json_object_get(ps, "pattern") || json_object_get(ps, "format") || json_object_get(ps, "const"))
                return fail(where, wcap, msg, mcap, 400, w,
                            "string parameter '%.64s': pattern, format and const cannot be followed in the "
                            "qwen3-coder call format",
                            key);
            if (json_is_array(en)) {
                put(b, "v%zu-%zu ::= ", k, j);
                size_t e;
                json_t *ev;
                json_array_foreach(en, e, ev)
                {
                    const char *sv = json_string_value(ev);
                    if (!sv || strpbrk(sv, "<\"\\\n"))
                        return fail(where, wcap, msg, mcap, 400, w,
                                    "enum of parameter '%.64s': only strings without <, \", \\ or newlines",
                                    key);
                    put(b, "%s\"%s\"", e ? " | " : "", sv);
                }
                put(b, "\n");
            } else {
                json_int_t lo = json_integer_value(json_object_get(ps, "minLength"));
                json_t *mx = json_object_get(ps, "maxLength");
                if (lo < 0 || lo > 256 || (json_is_integer(mx) && (json_integer_value(mx) < lo || json_integer_value(mx) > 4096)))
                    return fail(where, wcap, msg, mcap, 400, w,
                                "string parameter '%.64s': minLength up to 256 and maxLength up to 4096 here", key);
                if (json_is_integer(mx))
                    put(b, "v%zu-%zu ::= [^<]{%lld,%lld}\n", k, j, (long long)lo, (long long)json_integer_value(mx));
                else
                    put(b, "v%zu-%zu ::= [^<]{%lld,}\n", k, j, (long long)lo);
            }
        } else {
            char *txt = json_dumps(ps, JSON_COMPACT), *rule = NULL, name[48];
            if (!txt)
                return fail(where, wcap, msg, mcap, 500, "", "out of memory");
            snprintf(name, sizeof(name), "v%zu-%zu", k, j);
            al_error err = {0};
            al_status st = al_json_schema_to_gbnf_rule(txt, strlen(txt), name, NULL, &rule, &err);
            free(txt);
            if (st == AL_ERR_NOMEM)
                return fail(where, wcap, msg, mcap, 500, "", "out of memory");
            if (st != AL_OK)
                return fail(where, wcap, msg, mcap, 400, w, "parameter '%.64s' cannot constrain a call: %s", key,
                            err.msg);
            put(b, "%s\n", rule);
            free(rule);
        }
        j++;
    }
    return 0;
}

int srv_tool_grammar(const srv_agent_req *a, const srv_chat_fmt *f, srv_tg_think think, char **gbnf,
                     const char *const **markers, char *where, size_t wcap, char *msg, size_t mcap)
{
    *gbnf = NULL;
    *markers = NULL;
    srv_tool_fmt tf = f->tools;
    /* the tools the reply may call: the named one, or all */
    size_t idx[128], n = 0, i;
    json_t *t;
    json_array_foreach(a->tools, i, t)
    {
        json_t *fn = a->flat ? t : json_object_get(t, "function");
        const char *nm = json_string_value(json_object_get(fn, "name"));
        if (nm && n < 128 && (a->choice != SRV_TC_NAMED || !strcmp(nm, a->choice_name)))
            idx[n++] = i;
    }
    if (n == 0)
        return fail(where, wcap, msg, mcap, 400, "tool_choice", "no tool to call");
    sbuf b = {0};
    int rc = 0;
    /* what comes before the calls */
    const char *pre = "";
    if (think == SRV_TG_THINK_OPEN && tf != SRV_TOOLS_HARMONY)
        pre = "tb \"</think>\" [\\n]{0,2} ";
    bool par = a->parallel;
    bool use_fn = true, use_nfn = false, use_hfn = false, use_dfn = false, use_xfn = false;
    switch (tf) {
    case SRV_TOOLS_QWEN3_CODER: /* XML-ish: <function=NAME> and one <parameter=K> per argument */
        *markers = k_hermes_markers;
        use_fn = false;
        use_xfn = true;
        put(&b, "root ::= %scall %s\n", pre, par ? "(\"\\n\" call){0,7}" : "");
        put(&b, "call ::= \"<tool_call>\\n<function=\" xfn \"</function>\\n</tool_call>\"\n");
        break;
    case SRV_TOOLS_DEEPSEEK: /* R1: function<sep>NAME, the arguments in a json code block */
        *markers = k_deepseek_markers;
        use_fn = false;
        use_dfn = true;
        put(&b, "root ::= %s\"" DS_CALLS_BEGIN "\" dcall %s\"" DS_CALLS_END "\"\n", pre,
            par ? "(\"\\n\" dcall){0,7} " : "");
        put(&b, "dcall ::= \"" DS_CALL_BEGIN "function" DS_SEP "\" dfn\n");
        break;
    case SRV_TOOLS_LLAMA3: /* one bare JSON call (Llama 3.x makes one at a time) */
        *markers = k_llama3_markers;
        put(&b, "root ::= %s\"{\\\"name\\\": \" fn \"}\"\n", pre);
        break;
    case SRV_TOOLS_MISTRAL: /* the JSON list, or the newer NAME[ARGS]{..} form */
        *markers = k_mistral_markers;
        use_nfn = true;
        put(&b, "root ::= %s\"[TOOL_CALLS]\" (jlist | named)\n", pre);
        put(&b, "jlist ::= \"[\" jcall %s\"]\"\n", par ? "(\", \" jcall){0,7} " : "");
        put(&b, "jcall ::= \"{\\\"name\\\": \" fn (\", \\\"id\\\": \\\"\" [a-zA-Z0-9]{9} \"\\\"\")? \"}\"\n");
        put(&b, "named ::= nfn %s\n", par ? "(\"[TOOL_CALLS]\" nfn){0,7}" : "");
        break;
    case SRV_TOOLS_GRANITE:
        *markers = k_granite_markers;
        put(&b, "root ::= %s\"<|tool_call|>[\" jcall %s\"]\"\n", pre, par ? "(\", \" jcall){0,7} " : "");
        put(&b, "jcall ::= \"{\\\"name\\\": \" fn \"}\"\n");
        break;
    case SRV_TOOLS_HARMONY: /* one call on the commentary channel (no analysis message first) */
        *markers = k_harmony_markers;
        use_fn = false;
        use_hfn = true;
        put(&b, "root ::= \"<|channel|>commentary to=functions.\" hfn\n");
        break;
    default: /* Hermes / Qwen, and templates without a format of their own */
        *markers = k_hermes_markers;
        put(&b, "root ::= %scall %s\n", pre, par ? "(\"\\n\" call){0,7}" : "");
        put(&b, "call ::= \"<tool_call>\\n{\\\"name\\\": \" fn \"}\\n</tool_call>\"\n");
        break;
    }
    if (*pre)
        put(&b, "tb ::= ([^<] | \"<\" [^/])*\n");
    /* one alternative per tool: "NAME", "arguments": ARGS (and the other spellings) */
    const char *akey = tf == SRV_TOOLS_LLAMA3 ? "parameters" : "arguments";
    const char *alts[5] = {use_fn ? "fn" : NULL, use_nfn ? "nfn" : NULL, use_hfn ? "hfn" : NULL,
                           use_dfn ? "dfn" : NULL, use_xfn ? "xfn" : NULL};
    for (int r = 0; r < 5; r++) {
        if (!alts[r])
            continue;
        put(&b, "%s ::= ", alts[r]);
        for (size_t k = 0; k < n; k++)
            put(&b, "%s%s%zu", k ? " | " : "", alts[r], k);
        put(&b, "\n");
    }
    for (size_t k = 0; k < n && !rc; k++) {
        json_t *tk = json_array_get(a->tools, idx[k]);
        json_t *fn = a->flat ? tk : json_object_get(tk, "function");
        const char *nm = json_string_value(json_object_get(fn, "name")); /* [a-zA-Z0-9_.-]: literal as is */
        if (use_fn)
            put(&b, "fn%zu ::= \"\\\"%s\\\", \\\"%s\\\": \" args%zu\n", k, nm, akey, k);
        if (use_nfn)
            put(&b, "nfn%zu ::= \"%s\" (\"[CALL_ID]\" [a-zA-Z0-9]{9})? \"[ARGS]\" args%zu\n", k, nm, k);
        if (use_hfn)
            put(&b, "hfn%zu ::= \"%s <|constrain|>json<|message|>\" args%zu\n", k, nm, k);
        if (use_dfn)
            put(&b, "dfn%zu ::= \"%s\\n```json\\n\" args%zu \"\\n```" DS_CALL_END "\"\n", k, nm, k);
        if (use_xfn) {
            put(&b, "xfn%zu ::= \"%s>\\n\" xp%zu\n", k, nm, k);
            rc = put_xml_params(&b, fn, k, idx[k], a->flat, where, wcap, msg, mcap);
            continue;
        }
        rc = put_args(&b, fn, k, idx[k], a->flat, where, wcap, msg, mcap);
    }
    if (!rc && b.oom)
        rc = fail(where, wcap, msg, mcap, 500, "", "out of memory");
    if (rc) {
        free(b.p);
        *markers = NULL;
        return rc;
    }
    *gbnf = b.p;
    return 0;
}
