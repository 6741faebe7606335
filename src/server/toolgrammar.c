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

int srv_tool_grammar(const srv_agent_req *a, const srv_chat_fmt *f, srv_tg_think think, char **gbnf,
                     const char *const **markers, char *where, size_t wcap, char *msg, size_t mcap)
{
    *gbnf = NULL;
    *markers = NULL;
    srv_tool_fmt tf = f->tools;
    if (tf == SRV_TOOLS_QWEN3_CODER)
        return fail(where, wcap, msg, mcap, 400, "tool_choice",
                    "tool_choice \"required\" or a named function is not supported for the %s tool-call format "
                    "(use \"auto\")",
                    srv_tool_fmt_name(tf));
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
    bool use_fn = true, use_nfn = false, use_hfn = false, use_dfn = false;
    switch (tf) {
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
    const char *alts[4] = {use_fn ? "fn" : NULL, use_nfn ? "nfn" : NULL, use_hfn ? "hfn" : NULL,
                           use_dfn ? "dfn" : NULL};
    for (int r = 0; r < 4; r++) {
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
