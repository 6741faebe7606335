/*
 * toolcall.c - chat formats read from templates; replies parsed into
 * reasoning, content and tool calls (see toolcall.h for the contract).
 */
#include "server/toolcall.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ------------------------------------------------------------ detection */

void srv_chat_fmt_detect(const char *t, srv_chat_fmt *f)
{
    memset(f, 0, sizeof(*f));
    if (!t)
        return;
    if (strstr(t, "<|channel|>")) {
        f->tools = SRV_TOOLS_HARMONY;
        f->think = SRV_THINK_HARMONY;
        f->effort = strstr(t, "reasoning_effort") != NULL;
        f->special_markers = true;
        return;
    }
    if (strstr(t, "<function=") && strstr(t, "<parameter="))
        f->tools = SRV_TOOLS_QWEN3_CODER;
    else if (strstr(t, "<tool_call>"))
        f->tools = SRV_TOOLS_HERMES;
    else if (strstr(t, "<|tool_call|>"))
        f->tools = SRV_TOOLS_GRANITE;
    else if (strstr(t, "[TOOL_CALLS]"))
        f->tools = SRV_TOOLS_MISTRAL;
    else if (strstr(t, "tool\xe2\x96\x81" "calls\xe2\x96\x81" "begin"))
        f->tools = SRV_TOOLS_DEEPSEEK;
    else if (strstr(t, "<|start_header_id|>") && (strstr(t, "ipython") || strstr(t, "tools")))
        f->tools = SRV_TOOLS_LLAMA3;
    f->special_markers = f->tools == SRV_TOOLS_GRANITE || f->tools == SRV_TOOLS_MISTRAL ||
                         f->tools == SRV_TOOLS_DEEPSEEK || f->tools == SRV_TOOLS_LLAMA3;
    if (strstr(t, "<think>") || strstr(t, "</think>"))
        f->think = SRV_THINK_TAGS;
    f->enable_thinking = strstr(t, "enable_thinking") != NULL;
    f->granite_thinking = f->tools == SRV_TOOLS_GRANITE && strstr(t, "thinking") != NULL;
}

const char *srv_tool_fmt_name(srv_tool_fmt f)
{
    switch (f) {
    case SRV_TOOLS_HERMES: return "hermes";
    case SRV_TOOLS_QWEN3_CODER: return "qwen3-coder";
    case SRV_TOOLS_LLAMA3: return "llama3";
    case SRV_TOOLS_MISTRAL: return "mistral";
    case SRV_TOOLS_HARMONY: return "harmony";
    case SRV_TOOLS_GRANITE: return "granite";
    case SRV_TOOLS_DEEPSEEK: return "deepseek";
    case SRV_TOOLS_NONE: break;
    }
    return "none";
}

/* ---------------------------------------------------------- tool checks */

static bool bad(char *where, size_t wcap, char *msg, size_t mcap, const char *w, const char *m)
{
    snprintf(where, wcap, "%s", w);
    snprintf(msg, mcap, "%s", m);
    return false;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    }
    return true;
}

static const char *const k_schema_types[] = {"object", "array", "string", "number", "integer", "boolean", "null"};

/* A JSON-Schema-ish value: an object whose "type", when present, is a
 * known type name or a list of them, with object-valued "properties". */
static bool schema_check(json_t *s, char *path, size_t pcap, char *msg, size_t mcap, int depth)
{
    if (depth > 32) {
        snprintf(msg, mcap, "the schema nests deeper than 32 levels");
        return false;
    }
    if (!json_is_object(s)) {
        snprintf(msg, mcap, "must be a JSON Schema object");
        return false;
    }
    json_t *ty = json_object_get(s, "type");
    if (ty) {
        size_t nt = json_is_array(ty) ? json_array_size(ty) : 1;
        for (size_t i = 0; i < nt; i++) {
            json_t *t = json_is_array(ty) ? json_array_get(ty, i) : ty;
            bool known = false;
            for (size_t k = 0; json_is_string(t) && k < sizeof(k_schema_types) / sizeof(*k_schema_types); k++)
                known |= !strcmp(json_string_value(t), k_schema_types[k]);
            if (!known) {
                size_t l = strlen(path);
                snprintf(path + l, pcap - l, ".type");
                snprintf(msg, mcap, "must be one of object, array, string, number, integer, boolean, null");
                return false;
            }
        }
    }
    json_t *props = json_object_get(s, "properties");
    if (props) {
        size_t l = strlen(path);
        if (!json_is_object(props)) {
            snprintf(path + l, pcap - l, ".properties");
            snprintf(msg, mcap, "must be an object mapping names to schemas");
            return false;
        }
        const char *k;
        json_t *v;
        json_object_foreach(props, k, v)
        {
            snprintf(path + l, pcap - l, ".properties.%s", k);
            if (!schema_check(v, path, pcap, msg, mcap, depth + 1))
                return false;
        }
        path[l] = 0;
    }
    json_t *req = json_object_get(s, "required");
    if (req) {
        size_t l = strlen(path);
        snprintf(path + l, pcap - l, ".required");
        if (!json_is_array(req)) {
            snprintf(msg, mcap, "must be a list of property names");
            return false;
        }
        size_t i;
        json_t *v;
        json_array_foreach(req, i, v)
        {
            if (!json_is_string(v)) {
                snprintf(msg, mcap, "must be a list of property names (item %zu is not a string)", i);
                return false;
            }
        }
        path[l] = 0;
    }
    json_t *items = json_object_get(s, "items");
    if (items && !json_is_boolean(items)) {
        size_t l = strlen(path);
        snprintf(path + l, pcap - l, ".items");
        if (!schema_check(items, path, pcap, msg, mcap, depth + 1))
            return false;
        path[l] = 0;
    }
    return true;
}

bool srv_tools_check(json_t *tools, bool flat, char *where, size_t wcap, char *msg, size_t mcap)
{
    if (!json_is_array(tools))
        return bad(where, wcap, msg, mcap, "tools", "'tools' must be a list");
    if (json_array_size(tools) > 128)
        return bad(where, wcap, msg, mcap, "tools", "at most 128 tools");
    size_t i;
    json_t *t;
    char path[256];
    json_array_foreach(tools, i, t)
    {
        snprintf(path, sizeof(path), "tools[%zu]", i);
        if (!json_is_object(t))
            return bad(where, wcap, msg, mcap, path, "must be an object {\"type\":\"function\",\"function\":{...}}");
        json_t *ty = json_object_get(t, "type");
        if (ty && (!json_is_string(ty) || strcmp(json_string_value(ty), "function"))) {
            snprintf(path, sizeof(path), "tools[%zu].type", i);
            return bad(where, wcap, msg, mcap, path, "only \"function\" tools are supported");
        }
        json_t *f = flat ? t : json_object_get(t, "function");
        const char *fp = flat ? "" : ".function";
        if (!json_is_object(f)) {
            snprintf(path, sizeof(path), "tools[%zu].function", i);
            return bad(where, wcap, msg, mcap, path, "must be an object with 'name' and 'parameters'");
        }
        json_t *nm = json_object_get(f, "name");
        if (!json_is_string(nm) || !name_ok(json_string_value(nm))) {
            snprintf(path, sizeof(path), "tools[%zu]%s.name", i, fp);
            return bad(where, wcap, msg, mcap, path, "must be 1 to 64 characters of a-z, A-Z, 0-9, _ . -");
        }
        for (size_t k = 0; k < i; k++)
            if (srv_tools_find(tools, json_string_value(nm), flat) != f &&
                srv_tools_find(tools, json_string_value(nm), flat)) {
                snprintf(path, sizeof(path), "tools[%zu]%s.name", i, fp);
                return bad(where, wcap, msg, mcap, path, "names a function that an earlier tool already defines");
            }
        json_t *d = json_object_get(f, "description");
        if (d && !json_is_null(d) && !json_is_string(d)) {
            snprintf(path, sizeof(path), "tools[%zu]%s.description", i, fp);
            return bad(where, wcap, msg, mcap, path, "must be a string");
        }
        json_t *p = json_object_get(f, "parameters");
        if (p && !json_is_null(p)) {
            snprintf(path, sizeof(path), "tools[%zu]%s.parameters", i, fp);
            char m[200];
            if (!schema_check(p, path, sizeof(path), m, sizeof(m), 0))
                return bad(where, wcap, msg, mcap, path, m);
            json_t *pt = json_object_get(p, "type");
            if (pt && !(json_is_string(pt) && !strcmp(json_string_value(pt), "object"))) {
                snprintf(path, sizeof(path), "tools[%zu]%s.parameters.type", i, fp);
                return bad(where, wcap, msg, mcap, path, "the parameters of a function must be an \"object\" schema");
            }
        }
    }
    return true;
}

json_t *srv_tools_find(json_t *tools, const char *name, bool flat)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *f = flat ? t : json_object_get(t, "function");
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n && !strcmp(n, name))
            return f;
    }
    return NULL;
}

/* -------------------------------------------------------------- parsing */

typedef struct buf {
    char *p;
    size_t n, cap;
    bool oom;
} buf;

static void badd(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = malloc(cap); /* not realloc: the old copy of the reply is zeroed */
        if (!q) {
            b->oom = true;
            return;
        }
        if (b->p) {
            memcpy(q, b->p, b->n);
            explicit_bzero(b->p, b->cap);
            free(b->p);
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

typedef struct pctx {
    const srv_parse_opts *o;
    bool final;
    buf content, reasoning;
    srv_tool_call *calls;
    size_t n_calls, cap_calls;
    bool oom;
} pctx;

/* Offset of needle in h[0..n), or SIZE_MAX. */
static size_t find(const char *h, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0 || m > n)
        return SIZE_MAX;
    for (size_t i = 0; i + m <= n; i++)
        if (h[i] == needle[0] && !memcmp(h + i, needle, m))
            return i;
    return SIZE_MAX;
}

static bool starts(const char *h, size_t n, const char *p)
{
    size_t m = strlen(p);
    return n >= m && !memcmp(h, p, m);
}

/* Bytes at the end of h[0..n) that begin marker without completing it. */
static size_t partial_tail(const char *h, size_t n, const char *marker)
{
    size_t m = strlen(marker);
    for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
        if (!memcmp(h + n - k, marker, k))
            return k;
    return 0;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static bool add_call(pctx *c, const char *id, const char *name, size_t n_name, const char *args)
{
    if (c->n_calls == c->cap_calls) {
        size_t cap = c->cap_calls ? c->cap_calls * 2 : 4;
        srv_tool_call *q = realloc(c->calls, cap * sizeof(*q));
        if (!q)
            return !(c->oom = true);
        c->calls = q;
        c->cap_calls = cap;
    }
    srv_tool_call *t = &c->calls[c->n_calls];
    t->id = id ? strdup(id) : NULL;
    t->name = dupn(name, n_name);
    t->args = strdup(args);
    if (!t->name || !t->args || (id && !t->id)) {
        free(t->id);
        free(t->name);
        free(t->args);
        return !(c->oom = true);
    }
    c->n_calls++;
    return true;
}

/* Takes back the calls added since `before` (a format's parse that failed
 * half-way leaves none of its calls); returns false. */
static bool drop_calls(pctx *c, size_t before)
{
    while (c->n_calls > before) {
        srv_tool_call *t = &c->calls[--c->n_calls];
        free(t->id);
        free(t->name);
        free(t->args);
    }
    return false;
}

/* Compact JSON text of a call's arguments: an object, or a string that
 * holds one. NULL when neither, or out of memory (then c->oom is set, so the
 * parse fails rather than read the call as text). Caller frees. */
static char *args_text(pctx *c, json_t *a)
{
    char *s;
    if (!a || json_is_null(a)) {
        s = strdup("{}");
    } else {
        json_t *p = json_is_string(a) ? json_loads(json_string_value(a), JSON_DECODE_ANY, NULL) : NULL;
        json_t *obj = json_is_string(a) ? p : a;
        if (!json_is_object(obj)) {
            json_decref(p);
            return NULL;
        }
        s = json_dumps(obj, JSON_COMPACT);
        json_decref(p);
    }
    if (!s)
        c->oom = true;
    return s;
}

/* {"name":..., "arguments"|"parameters":...[, "id":...]} → a call. */
static bool call_from_object(pctx *c, json_t *o)
{
    if (!json_is_object(o))
        return false;
    json_t *nm = json_object_get(o, "name");
    json_t *fn = json_object_get(o, "function");
    if (!json_is_string(nm) && json_is_object(fn)) { /* {"function":{"name","arguments"}} */
        nm = json_object_get(fn, "name");
        o = fn;
    }
    if (!json_is_string(nm) || json_string_length(nm) == 0)
        return false;
    json_t *a = json_object_get(o, "arguments");
    if (!a)
        a = json_object_get(o, "parameters");
    char *at = args_text(c, a);
    if (!at)
        return false;
    json_t *id = json_object_get(o, "id");
    bool ok = add_call(c, json_is_string(id) ? json_string_value(id) : NULL, json_string_value(nm),
                       json_string_length(nm), at);
    free(at);
    return ok;
}

/* One JSON value at s (leading whitespace allowed); *used: bytes read. */
static json_t *json_prefix(const char *s, size_t n, size_t *used)
{
    json_error_t err;
    json_t *v = json_loadb(s, n, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &err);
    if (v)
        *used = (size_t)err.position;
    return v;
}

/* A sequence of call objects or lists of them, separated by whitespace,
 * ',' or ';', filling the whole of s. */
static bool calls_from_json_seq(pctx *c, const char *s, size_t n)
{
    size_t before = c->n_calls, i = 0;
    while ((i = skip_ws(s, n, i)) < n) {
        if (s[i] == ';' || s[i] == ',') {
            i++;
            continue;
        }
        size_t used = 0;
        json_t *v = json_prefix(s + i, n - i, &used);
        if (!v || used == 0) {
            json_decref(v);
            goto fail;
        }
        bool ok = true;
        if (json_is_array(v)) {
            size_t k;
            json_t *e;
            json_array_foreach(v, k, e) ok = ok && call_from_object(c, e);
        } else {
            ok = call_from_object(c, v);
        }
        json_decref(v);
        if (!ok)
            goto fail;
        i += used;
    }
    if (c->n_calls > before)
        return true;
fail:
    return drop_calls(c, before);
}

/* Llama 3.1's built-in tools: NAME.call(key="value", n=1) after
 * <|python_tag|>; values are JSON literals. */
static bool call_from_pycall(pctx *c, const char *s, size_t n)
{
    size_t i = skip_ws(s, n, 0), a = i;
    while (i < n && (s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                     (s[i] >= '0' && s[i] <= '9')))
        i++;
    if (i == a || !starts(s + i, n - i, ".call("))
        return false;
    size_t name_end = i;
    i += 6;
    json_t *args = json_object();
    bool ok = args != NULL;
    c->oom |= !ok;
    while (ok && (i = skip_ws(s, n, i)) < n && s[i] != ')') {
        size_t k = i;
        while (i < n && s[i] != '=' && s[i] != ')' && !is_ws(s[i]))
            i++;
        if (i >= n || s[i] != '=' || i == k) {
            ok = false;
            break;
        }
        char *key = dupn(s + k, i - k);
        i++;
        size_t used = 0;
        json_t *v = json_prefix(s + i, n - i, &used);
        if (!key || !v || json_object_set_new(args, key, v)) { /* (set_new frees v) */
            c->oom |= !key || v; /* not a value: not a call; else out of memory */
            if (!key)
                json_decref(v);
            free(key);
            ok = false;
            break;
        }
        free(key);
        i = skip_ws(s, n, i + used);
        if (i < n && s[i] == ',')
            i++;
    }
    ok = ok && i < n && s[i] == ')' && skip_ws(s, n, i + 1) == n;
    char *at = ok ? json_dumps(args, JSON_COMPACT) : NULL;
    c->oom |= ok && !at;
    ok = at && add_call(c, NULL, s + a, name_end - a, at);
    free(at);
    json_decref(args);
    return ok;
}

/* The declared type of parameter key of function name, or NULL. */
static const char *param_type(const pctx *c, const char *name, const char *key)
{
    if (!c->o->tool_defs)
        return NULL;
    json_t *f = srv_tools_find(c->o->tool_defs, name, c->o->flat_tools);
    json_t *p = json_object_get(json_object_get(json_object_get(f, "parameters"), "properties"), key);
    return json_string_value(json_object_get(p, "type"));
}

/* <function=NAME>\n<parameter=K>\nV\n</parameter>...</function> (Qwen3-Coder). */
static bool call_from_xml(pctx *c, const char *s, size_t n)
{
    size_t i = skip_ws(s, n, 0);
    if (!starts(s + i, n - i, "<function="))
        return false;
    i += 10;
    size_t e = find(s + i, n - i, ">");
    if (e == SIZE_MAX || e == 0)
        return false;
    char *name = dupn(s + i, e);
    if (!name)
        return !(c->oom = true);
    i += e + 1;
    json_t *args = json_object();
    bool ok = args != NULL;
    c->oom |= !ok;
    for (;;) {
        i = skip_ws(s, n, i);
        if (i >= n || starts(s + i, n - i, "</function>"))
            break;
        if (!starts(s + i, n - i, "<parameter=")) {
            ok = false;
            break;
        }
        i += 11;
        size_t ke = find(s + i, n - i, ">");
        if (ke == SIZE_MAX) {
            ok = false;
            break;
        }
        char *key = dupn(s + i, ke);
        i += ke + 1;
        size_t ve = find(s + i, n - i, "</parameter>");
        size_t vend = ve == SIZE_MAX ? n : i + ve;
        size_t vs = i;
        if (vs < vend && s[vs] == '\n')
            vs++;
        size_t vl = vend - vs;
        if (vl > 0 && s[vs + vl - 1] == '\n')
            vl--;
        const char *ty = key ? param_type(c, name, key) : NULL;
        json_t *val = NULL;
        if (!ty || strcmp(ty, "string")) {
            char *t = dupn(s + vs, vl);
            val = t && ty ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
            free(t);
        }
        if (!val)
            val = json_stringn(s + vs, vl);
        if (!key || !val || json_object_set_new(args, key, val)) { /* (set_new frees val) */
            c->oom = true; /* each of these is out of memory */
            if (!key)
                json_decref(val);
            free(key);
            ok = false;
            break;
        }
        free(key);
        i = ve == SIZE_MAX ? n : vend + 12;
    }
    char *at = ok ? json_dumps(args, JSON_COMPACT) : NULL;
    c->oom |= ok && !at;
    ok = at && add_call(c, NULL, name, strlen(name), at);
    free(at);
    free(name);
    json_decref(args);
    return ok;
}

/* The body of a <tool_call> block: JSON or Qwen3-Coder XML. */
static bool call_from_hermes_body(pctx *c, const char *s, size_t n)
{
    size_t i = skip_ws(s, n, 0);
    if (starts(s + i, n - i, "<function="))
        return call_from_xml(c, s + i, n - i);
    return calls_from_json_seq(c, s, n);
}

/* The end of a Mistral call list: [TOOL_CALLS][{...}] or, in the newer
 * templates, [TOOL_CALLS]NAME[ARGS]{...} / NAME[CALL_ID]ID[ARGS]{...},
 * repeated after further [TOOL_CALLS]. Whole text to the end. */
static bool calls_from_mistral(pctx *c, const char *s, size_t n)
{
    size_t i = skip_ws(s, n, 0);
    if (i < n && s[i] == '[' && !starts(s + i, n - i, "[ARGS]"))
        return calls_from_json_seq(c, s + i, n - i);
    size_t before = c->n_calls;
    while ((i = skip_ws(s, n, i)) < n) {
        if (starts(s + i, n - i, "[TOOL_CALLS]")) {
            i += 12;
            continue;
        }
        size_t a = find(s + i, n - i, "[ARGS]");
        if (a == SIZE_MAX)
            goto fail;
        size_t name_end = a;
        char id[64] = "";
        size_t ci = find(s + i, a, "[CALL_ID]");
        if (ci != SIZE_MAX) {
            name_end = ci;
            size_t il = a - ci - 9;
            if (il >= sizeof(id))
                goto fail;
            memcpy(id, s + i + ci + 9, il);
            id[il] = 0;
        }
        size_t used = 0;
        json_t *v = json_prefix(s + i + a + 6, n - i - a - 6, &used);
        char *at = args_text(c, v);
        json_decref(v);
        if (!at || name_end == 0) {
            free(at);
            goto fail;
        }
        bool ok = add_call(c, id[0] ? id : NULL, s + i, name_end, at);
        free(at);
        if (!ok)
            goto fail;
        i += a + 6 + used;
    }
    if (c->n_calls > before)
        return true;
fail:
    return drop_calls(c, before);
}

#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

/* DeepSeek: <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{..}\n```<｜tool▁call▁end｜>
 * (R1) or <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{..}<｜tool▁call▁end｜> (V3.1), repeated. */
static bool calls_from_deepseek(pctx *c, const char *s, size_t n)
{
    size_t before = c->n_calls, i = 0;
    for (;;) {
        size_t b = find(s + i, n - i, DS_CALL_BEGIN);
        if (b == SIZE_MAX)
            break;
        i += b + strlen(DS_CALL_BEGIN);
        size_t e = find(s + i, n - i, DS_CALL_END);
        size_t end = e == SIZE_MAX ? n : i + e;
        size_t sep = find(s + i, end - i, DS_SEP);
        if (sep == SIZE_MAX)
            goto fail;
        const char *name;
        size_t nl;
        size_t a = i + sep + strlen(DS_SEP);
        if (sep == 8 && starts(s + i, n - i, "function")) {
            size_t line = find(s + a, end - a, "\n");
            nl = line == SIZE_MAX ? end - a : line;
            name = s + a;
            a += nl;
        } else {
            name = s + i;
            nl = sep;
        }
        while (nl > 0 && is_ws(name[nl - 1]))
            nl--;
        size_t j = skip_ws(s, end, a);
        if (starts(s + j, end - j, "```")) {
            size_t line = find(s + j, end - j, "\n");
            j = line == SIZE_MAX ? end : j + line + 1;
        }
        size_t used = 0;
        json_t *v = json_prefix(s + j, end - j, &used);
        char *at = args_text(c, v);
        json_decref(v);
        if (!at || nl == 0) {
            free(at);
            goto fail;
        }
        bool ok = add_call(c, NULL, name, nl, at);
        free(at);
        if (!ok)
            goto fail;
        i = e == SIZE_MAX ? n : end + strlen(DS_CALL_END);
    }
    if (c->n_calls > before)
        return true;
fail:
    return drop_calls(c, before);
}

/* Appends text to content, holding back (unless final) a tail that could
 * begin one of the markers. */
static void content_hold(pctx *c, const char *s, size_t n, const char *const *markers, size_t n_markers)
{
    size_t hold = 0;
    for (size_t k = 0; !c->final && k < n_markers; k++) {
        size_t h = partial_tail(s, n, markers[k]);
        if (h > hold)
            hold = h;
    }
    badd(&c->content, s, n - hold);
}

/* Content and tool calls of s (after any reasoning). */
static void parse_content(pctx *c, const char *s, size_t n)
{
    const srv_parse_opts *o = c->o;
    if (!o->tools) {
        badd(&c->content, s, n);
        return;
    }
    const char *markers[3] = {0};
    size_t nm = 0;
    bool to_end = false; /* the call list runs to the end of the reply */
    switch (o->fmt.tools) {
    case SRV_TOOLS_NONE:
    case SRV_TOOLS_HERMES:
    case SRV_TOOLS_QWEN3_CODER:
    case SRV_TOOLS_HARMONY:
        markers[nm++] = "<tool_call>";
        break;
    case SRV_TOOLS_LLAMA3:
        markers[nm++] = "<|python_tag|>";
        to_end = true;
        break;
    case SRV_TOOLS_MISTRAL:
        markers[nm++] = "[TOOL_CALLS]";
        to_end = true;
        break;
    case SRV_TOOLS_GRANITE:
        markers[nm++] = "<|tool_call|>";
        to_end = true;
        break;
    case SRV_TOOLS_DEEPSEEK:
        markers[nm++] = DS_CALLS_BEGIN;
        markers[nm++] = DS_CALL_BEGIN;
        break;
    }
    size_t pos = 0;
    /* Llama 3 writes a bare JSON call as its whole reply. */
    if (o->fmt.tools == SRV_TOOLS_LLAMA3) {
        size_t j = skip_ws(s, n, 0);
        if (j < n && s[j] == '{') {
            if (!c->final)
                return;
            if (calls_from_json_seq(c, s + j, n - j))
                return;
        }
    }
    while (pos < n) {
        size_t best = SIZE_MAX, which = 0;
        for (size_t k = 0; k < nm; k++) {
            size_t f = find(s + pos, n - pos, markers[k]);
            if (f != SIZE_MAX && (best == SIZE_MAX || f < best)) {
                best = f;
                which = k;
            }
        }
        if (best == SIZE_MAX) {
            content_hold(c, s + pos, n - pos, markers, nm);
            return;
        }
        size_t m = pos + best;
        size_t body = m + strlen(markers[which]);
        size_t end, next;
        if (to_end) {
            end = next = n;
        } else {
            bool lone = o->fmt.tools == SRV_TOOLS_DEEPSEEK && which == 1; /* a call without the list marker */
            const char *close = o->fmt.tools != SRV_TOOLS_DEEPSEEK ? "</tool_call>" : lone ? DS_CALL_END : DS_CALLS_END;
            if (lone)
                body = m;
            size_t e = find(s + body, n - body, close);
            if (e == SIZE_MAX && !c->final) {
                badd(&c->content, s + pos, m - pos);
                return; /* the call is still being written */
            }
            end = e == SIZE_MAX ? n : body + e + (lone ? strlen(close) : 0);
            next = e == SIZE_MAX ? n : body + e + strlen(close);
        }
        if (!c->final && to_end) {
            badd(&c->content, s + pos, m - pos);
            return;
        }
        badd(&c->content, s + pos, m - pos);
        bool ok;
        switch (o->fmt.tools) {
        case SRV_TOOLS_LLAMA3:
            ok = calls_from_json_seq(c, s + body, end - body) || call_from_pycall(c, s + body, end - body);
            break;
        case SRV_TOOLS_MISTRAL:
            ok = calls_from_mistral(c, s + body, end - body);
            break;
        case SRV_TOOLS_GRANITE:
            ok = calls_from_json_seq(c, s + body, end - body);
            break;
        case SRV_TOOLS_DEEPSEEK:
            ok = calls_from_deepseek(c, s + body, end - body);
            break;
        default:
            ok = call_from_hermes_body(c, s + body, end - body);
            break;
        }
        if (!ok) { /* not a call after all: the text stays */
            badd(&c->content, s + m, next - m);
        }
        pos = skip_ws(s, n, next);
        if (pos == n && !c->final)
            return;
    }
}

/* Reasoning of a <think> block: whitespace trimmed; while open, trailing
 * whitespace and a partial "</think>" are held back. */
static size_t parse_think(pctx *c, const char *s, size_t n)
{
    size_t i = 0;
    if (!c->o->in_think) {
        i = skip_ws(s, n, 0);
        if (!c->final && n - i < 7 && !memcmp(s + i, "<think>", n - i))
            return SIZE_MAX; /* maybe the opening tag (or only whitespace so far): wait */
        if (!starts(s + i, n - i, "<think>"))
            return 0;
        i += 7;
    }
    i = skip_ws(s, n, i);
    size_t e = find(s + i, n - i, "</think>");
    size_t end = e == SIZE_MAX ? n : i + e;
    if (e == SIZE_MAX && !c->final)
        end -= partial_tail(s + i, n - i, "</think>");
    while (end > i && is_ws(s[end - 1]))
        end--;
    badd(&c->reasoning, s + i, end - i);
    if (e == SIZE_MAX)
        return SIZE_MAX;
    return skip_ws(s, n, i + e + 8);
}

#define H_START "<|start|>"
#define H_CHANNEL "<|channel|>"
#define H_MESSAGE "<|message|>"

/* gpt-oss: a sequence of [<|start|>ROLE][ to=R]<|channel|>CH[ to=R][ <|constrain|>T]<|message|>BODY
 * ended by <|end|>, <|call|> or <|return|> (the last two end generation and
 * are not in the text). */
static void parse_harmony(pctx *c, const char *s, size_t n)
{
    static const char *const ends[] = {"<|end|>", "<|call|>", "<|return|>", H_START};
    size_t pos = 0;
    size_t j0 = skip_ws(s, n, 0);
    if (j0 < n && s[j0] != '<') { /* no harmony at all: plain content */
        parse_content(c, s, n);
        return;
    }
    while (pos < n) {
        if (starts(s + pos, n - pos, H_START))
            pos += strlen(H_START);
        size_t hm = find(s + pos, n - pos, H_MESSAGE);
        if (hm == SIZE_MAX) {
            if (c->final && find(s + pos, n - pos, H_CHANNEL) == SIZE_MAX)
                badd(&c->content, s + pos, n - pos);
            return;
        }
        const char *h = s + pos;
        size_t hn = hm;
        char channel[32] = "";
        size_t ch = find(h, hn, H_CHANNEL);
        if (ch != SIZE_MAX) {
            size_t a = ch + strlen(H_CHANNEL), b = a;
            while (b < hn && !is_ws(h[b]) && h[b] != '<' && b - a < sizeof(channel) - 1)
                b++;
            memcpy(channel, h + a, b - a);
            channel[b - a] = 0;
        }
        const char *to = NULL;
        size_t to_n = 0;
        size_t t = find(h, hn, "to=");
        if (t != SIZE_MAX) {
            to = h + t + 3;
            while (t + 3 + to_n < hn && !is_ws(to[to_n]) && to[to_n] != '<')
                to_n++;
            if (to_n > 10 && !memcmp(to, "functions.", 10)) {
                to += 10;
                to_n -= 10;
            }
        }
        size_t bs = pos + hm + strlen(H_MESSAGE);
        size_t be = SIZE_MAX, ee = 0;
        for (size_t k = 0; k < sizeof(ends) / sizeof(*ends); k++) {
            size_t f = find(s + bs, n - bs, ends[k]);
            if (f != SIZE_MAX && (be == SIZE_MAX || f < be)) {
                be = f;
                ee = k == 3 ? 0 : strlen(ends[k]);
            }
        }
        bool done = be != SIZE_MAX || c->final;
        size_t body_end = be == SIZE_MAX ? n : bs + be;
        size_t hold = 0;
        if (!done)
            for (size_t k = 0; k < sizeof(ends) / sizeof(*ends); k++) {
                size_t p = partial_tail(s + bs, body_end - bs, ends[k]);
                hold = p > hold ? p : hold;
            }
        const char *body = s + bs;
        size_t bn = body_end - bs - hold;
        if (to && to_n && c->o->tools) {
            if (!done)
                return;
            size_t used = 0;
            json_t *v = json_prefix(body, bn, &used);
            char *at = args_text(c, v);
            json_decref(v);
            if (at)
                add_call(c, NULL, to, to_n, at);
            else
                badd(&c->content, body, bn);
            free(at);
        } else if (!strcmp(channel, "analysis") && c->o->split_reasoning) {
            badd(&c->reasoning, body, bn);
        } else {
            badd(&c->content, body, bn);
        }
        if (be == SIZE_MAX)
            return;
        pos = bs + be + ee;
    }
}

/* Granite 3.3 with thinking on writes <think>..</think><response>..</response>:
 * the content is what the response tags hold. */
static void granite_response(pctx *c)
{
    buf *b = &c->content;
    if (b->oom || !b->p)
        return;
    size_t i = skip_ws(b->p, b->n, 0);
    if (!c->final && b->n - i < 10 && !memcmp(b->p + i, "<response>", b->n - i)) {
        b->n = 0; /* maybe the opening tag: wait */
        b->p[0] = 0;
        return;
    }
    if (!starts(b->p + i, b->n - i, "<response>"))
        return;
    i += 10;
    size_t e = find(b->p + i, b->n - i, "</response>");
    size_t end = e != SIZE_MAX ? i + e : b->n - (c->final ? 0 : partial_tail(b->p + i, b->n - i, "</response>"));
    memmove(b->p, b->p + i, end - i);
    b->n = end - i;
    b->p[b->n] = 0;
}

bool srv_reply_parse(const srv_parse_opts *o, const char *text, size_t n, bool final, srv_parsed *out)
{
    memset(out, 0, sizeof(*out));
    pctx c = {.o = o, .final = final};
    badd(&c.content, "", 0);
    badd(&c.reasoning, "", 0);
    if (o->fmt.think == SRV_THINK_HARMONY && (o->split_reasoning || o->tools)) {
        parse_harmony(&c, text, n);
    } else {
        size_t pos = 0;
        if (o->fmt.think == SRV_THINK_TAGS && o->split_reasoning)
            pos = parse_think(&c, text, n);
        if (pos != SIZE_MAX)
            parse_content(&c, text + pos, n - pos);
        if (o->fmt.tools == SRV_TOOLS_GRANITE && o->split_reasoning)
            granite_response(&c);
    }
    out->content = c.content.p;
    out->n_content = c.content.n;
    out->reasoning = c.reasoning.p;
    out->n_reasoning = c.reasoning.n;
    out->calls = c.calls;
    out->n_calls = c.n_calls;
    if (c.oom || c.content.oom || c.reasoning.oom) {
        srv_parsed_free(out);
        return false;
    }
    return true;
}

/* Reply text goes back to the allocator zeroed (data hygiene, docs/guarantees.md). */
static void zfree(char *s, size_t n)
{
    if (s) {
        explicit_bzero(s, n);
        free(s);
    }
}

void srv_parsed_free(srv_parsed *p)
{
    if (!p)
        return;
    zfree(p->content, p->n_content);
    zfree(p->reasoning, p->n_reasoning);
    for (size_t i = 0; i < p->n_calls; i++) {
        free(p->calls[i].id);
        zfree(p->calls[i].name, strlen(p->calls[i].name));
        zfree(p->calls[i].args, strlen(p->calls[i].args));
    }
    free(p->calls);
    memset(p, 0, sizeof(*p));
}

bool srv_prompt_opens_think(const char *p, size_t n)
{
    while (n > 0 && is_ws(p[n - 1]))
        n--;
    return n >= 7 && !memcmp(p + n - 7, "<think>", 7);
}

/* ------------------------------------------------- the request's agent fields */

static bool fail2(char *where, size_t wcap, char *msg, size_t mcap, const char *w, const char *fmt, const char *arg)
{
    snprintf(where, wcap, "%s", w);
    snprintf(msg, mcap, fmt, arg);
    return false;
}

bool srv_agent_parse(json_t *b, bool ollama, bool responses, srv_agent_req *a, char *where, size_t wcap, char *msg,
                     size_t mcap)
{
    memset(a, 0, sizeof(*a));
    a->parallel = true;
    a->think = -1;
    a->flat = responses;
    json_t *tools = json_object_get(b, "tools");
    if (tools && !json_is_null(tools)) {
        if (!srv_tools_check(tools, responses, where, wcap, msg, mcap))
            return false;
        if (json_array_size(tools))
            a->tools = tools;
    }
    json_t *tc = json_object_get(b, "tool_choice");
    if (tc && !json_is_null(tc)) {
        if (json_is_string(tc)) {
            const char *s = json_string_value(tc);
            if (!strcmp(s, "auto"))
                a->choice = SRV_TC_AUTO;
            else if (!strcmp(s, "none"))
                a->choice = SRV_TC_NONE;
            else if (!strcmp(s, "required"))
                a->choice = SRV_TC_REQUIRED;
            else
                return fail2(where, wcap, msg, mcap, "tool_choice",
                             "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",...}"
                             " (got \"%s\")",
                             s);
        } else if (json_is_object(tc)) {
            json_t *f = responses ? tc : json_object_get(tc, "function");
            json_t *nm = json_object_get(f, "name");
            if (!json_is_string(nm))
                return fail2(where, wcap, msg, mcap, responses ? "tool_choice.name" : "tool_choice.function.name",
                             "%s", "must name a function");
            const char *n = json_string_value(nm);
            if (!a->tools || !srv_tools_find(a->tools, n, responses))
                return fail2(where, wcap, msg, mcap, responses ? "tool_choice.name" : "tool_choice.function.name",
                             "names '%.64s', which is not one of the request's tools", n);
            a->choice = SRV_TC_NAMED;
            snprintf(a->choice_name, sizeof(a->choice_name), "%s", n);
        } else {
            return fail2(where, wcap, msg, mcap, "tool_choice", "%s", "'tool_choice' must be a string or an object");
        }
        if (a->choice == SRV_TC_REQUIRED && !a->tools)
            return fail2(where, wcap, msg, mcap, "tool_choice", "%s",
                         "'tool_choice' is \"required\" but the request gives no tools");
    }
    json_t *pc = json_object_get(b, "parallel_tool_calls");
    if (pc && !json_is_null(pc)) {
        if (!json_is_boolean(pc))
            return fail2(where, wcap, msg, mcap, "parallel_tool_calls", "%s", "must be true or false");
        a->parallel = json_is_true(pc);
    }
    json_t *th = json_object_get(b, "think");
    if (ollama && th && !json_is_null(th)) {
        if (json_is_boolean(th)) {
            a->think = json_is_true(th);
        } else if (json_is_string(th) && (!strcmp(json_string_value(th), "low") ||
                                          !strcmp(json_string_value(th), "medium") ||
                                          !strcmp(json_string_value(th), "high"))) {
            a->think = 1;
            snprintf(a->effort, sizeof(a->effort), "%s", json_string_value(th));
        } else {
            return fail2(where, wcap, msg, mcap, "think", "%s", "'think' must be true, false, \"low\", \"medium\" or \"high\"");
        }
    }
    json_t *re = json_object_get(b, "reasoning_effort");
    const char *re_where = "reasoning_effort";
    if (responses) {
        json_t *r = json_object_get(b, "reasoning");
        if (r && !json_is_null(r) && !json_is_object(r))
            return fail2(where, wcap, msg, mcap, "reasoning", "%s", "'reasoning' must be an object");
        re = json_object_get(r, "effort");
        re_where = "reasoning.effort";
    }
    if (re && !json_is_null(re)) {
        const char *s = json_string_value(re);
        if (!s || (strcmp(s, "none") && strcmp(s, "minimal") && strcmp(s, "low") && strcmp(s, "medium") &&
                   strcmp(s, "high")))
            return fail2(where, wcap, msg, mcap, re_where, "%s",
                         "must be \"none\", \"minimal\", \"low\", \"medium\" or \"high\"");
        if (!strcmp(s, "none")) {
            a->think = 0;
        } else {
            a->think = 1;
            snprintf(a->effort, sizeof(a->effort), "%s", !strcmp(s, "minimal") ? "low" : s);
        }
    }
    json_t *kw = json_object_get(b, "chat_template_kwargs");
    if (kw && !json_is_null(kw)) {
        if (!json_is_object(kw))
            return fail2(where, wcap, msg, mcap, "chat_template_kwargs", "%s", "'chat_template_kwargs' must be an object");
        static const char *const reserved[] = {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"};
        for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
            if (json_object_get(kw, reserved[i]))
                return fail2(where, wcap, msg, mcap, "chat_template_kwargs",
                             "'%s' is set by the server and cannot be passed here", reserved[i]);
        a->kwargs = kw;
    }
    return true;
}

json_t *srv_agent_template_tools(const srv_agent_req *a)
{
    if (!a->tools || a->choice == SRV_TC_NONE)
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(a->tools, i, t)
    {
        json_t *f = a->flat ? t : json_object_get(t, "function");
        if (a->choice == SRV_TC_NAMED && strcmp(json_string_value(json_object_get(f, "name")), a->choice_name))
            continue;
        if (!a->flat) {
            json_t *nt = json_deep_copy(t);
            json_t *nf = json_object_get(nt, "function");
            /* Templates read function.description (gpt-oss fails without it). */
            if (!json_is_string(json_object_get(nf, "description")))
                json_object_set_new(nf, "description", json_string(""));
            json_array_append_new(out, nt);
            continue;
        }
        json_t *nf = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(f, k, v) if (strcmp(k, "type") && strcmp(k, "strict")) json_object_set(nf, k, v);
        if (!json_is_string(json_object_get(nf, "description")))
            json_object_set_new(nf, "description", json_string(""));
        json_array_append_new(out, json_pack("{s:s,s:o}", "type", "function", "function", nf));
    }
    return out;
}

json_t *srv_agent_template_vars(const srv_agent_req *a, const srv_chat_fmt *f)
{
    json_t *v = a->kwargs ? json_deep_copy(a->kwargs) : json_object();
    if (!v)
        return NULL;
    if (a->think >= 0) {
        if (f->enable_thinking && !json_object_get(v, "enable_thinking"))
            json_object_set_new(v, "enable_thinking", json_boolean(a->think));
        if (f->granite_thinking && !json_object_get(v, "thinking"))
            json_object_set_new(v, "thinking", json_boolean(a->think));
    }
    if (a->effort[0] && f->effort && !json_object_get(v, "reasoning_effort"))
        json_object_set_new(v, "reasoning_effort", json_string(a->effort));
    return v;
}

void srv_call_id(const srv_tool_call *c, srv_tool_fmt f, char out[48])
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (c->id && c->id[0] && strlen(c->id) < 48) {
        snprintf(out, 48, "%s", c->id);
        return;
    }
    unsigned char r[24];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)(rand() >> 7);
    size_t n = f == SRV_TOOLS_MISTRAL ? 9 : 24, o = 0;
    if (f != SRV_TOOLS_MISTRAL)
        o = (size_t)snprintf(out, 48, "call_");
    for (size_t i = 0; i < n; i++)
        out[o++] = alnum[r[i] % 62];
    out[o] = 0;
}

json_t *srv_call_oai(const srv_tool_call *c, const char *id, size_t index)
{
    return json_pack("{s:i,s:s,s:s,s:{s:s,s:s}}", "index", (int)index, "id", id, "type", "function", "function",
                     "name", c->name, "arguments", c->args);
}

json_t *srv_call_ollama(const srv_tool_call *c, const char *id, size_t index)
{
    json_t *args = json_loads(c->args, 0, NULL);
    if (!args)
        args = json_object();
    return json_pack("{s:s,s:{s:i,s:s,s:o}}", "id", id, "function", "index", (int)index, "name", c->name,
                     "arguments", args);
}
