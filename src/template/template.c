/*
 * template.c - the public chat-template API (al_template_*).
 *
 * Rendering follows what llama.cpp does around the Jinja engine, since the
 * prompt is tokenized afterwards with BOS added by the tokenizer:
 *  - a leading bos_token in the rendered text is removed (it would be
 *    doubled otherwise);
 *  - a template that cannot take a system message (it raises, or drops
 *    it: found once at parse time by rendering a probe conversation) gets
 *    the system text folded into the first user message, "\n"-joined;
 *  - enable_thinking is true unless extra_json says otherwise;
 *  - tools and documents are none when not given (as Hugging Face passes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "airlock.h"
#include "template/tmpl.h"
#include "util/error.h"

#define AL_TMPL_MAX_SOURCE ((size_t)1 << 20)   /* 1 MiB of template source */
#define AL_TMPL_PARSE_MEMORY ((size_t)64 << 20)

static const tmpl_limits k_limits = {
    .max_steps = 5000000,
    .max_output_bytes = (size_t)8 << 20,
    .max_memory_bytes = (size_t)64 << 20,
    .max_depth = 64,
    .max_nesting = 128,
};

struct al_template {
    tmpl_arena arena; /* owns the normalised source, tokens and AST */
    tnode *root;
    bool supports_system;
};

static al_status render(const al_template *t, const al_template_inputs *in, const tmpl_limits *lim,
                        bool polyfill, char **out, size_t *out_len, al_error *err);

al_status al_template_parse(const char *src, size_t len, al_template **out, al_error *err)
{
    if (!out)
        return al_err(err, AL_ERR_ARG, "al_template_parse: out is NULL");
    *out = NULL;
    if (!src && len)
        return al_err(err, AL_ERR_ARG, "al_template_parse: src is NULL");
    if (len > AL_TMPL_MAX_SOURCE)
        return al_err(err, AL_ERR_LIMIT, "chat template: %zu bytes exceeds the limit of %zu", len,
                      AL_TMPL_MAX_SOURCE);
    /* Python reads templates as text: bytes that are not UTF-8 are an error */
    for (size_t i = 0, line = 1; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)src + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return al_err(err, AL_ERR_TEMPLATE, "chat template line %zu: not valid UTF-8 (byte 0x%02x)", line,
                          (unsigned char)src[i]);
        if (cp == '\n')
            line++;
        i += (size_t)k;
    }
    al_template *t = calloc(1, sizeof(*t));
    if (!t)
        return al_err(err, AL_ERR_NOMEM, "chat template: out of memory");
    t->arena.limit_bytes = AL_TMPL_PARSE_MEMORY;
    /* newlines normalised to \n, and one trailing newline dropped, as
     * Jinja2 does by default (keep_trailing_newline=False) */
    char *s = tmpl_alloc(&t->arena, len + 1);
    if (!s) {
        al_template_free(t);
        return al_err(err, AL_ERR_NOMEM, "chat template: out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n')
        n--;
    s[n] = 0;
    tmpl_tokens toks;
    al_status st = tmpl_lex(&t->arena, s, n, &toks, err);
    if (!st)
        st = tmpl_parse(&t->arena, &toks, k_limits.max_nesting, &t->root, err);
    if (st) {
        al_template_free(t);
        return st;
    }
    /* Does a system message reach the output? */
    static const char probe[] = "[{\"role\":\"system\",\"content\":\"<System Needle>\"},"
                                "{\"role\":\"user\",\"content\":\"Hey\"}]";
    al_template_inputs pin = {.messages_json = probe, .now = "2024-01-01"};
    tmpl_limits plim = k_limits;
    plim.max_steps = 1000000;
    char *r = NULL;
    size_t rn;
    al_status pst = render(t, &pin, &plim, false, &r, &rn, NULL);
    if (pst == AL_OK)
        t->supports_system = strstr(r, "<System Needle>") != NULL;
    free(r);
    if (pst == AL_ERR_NOMEM) { /* not a property of the template: do not guess */
        al_template_free(t);
        return al_err(err, AL_ERR_NOMEM, "chat template: out of memory");
    }
    *out = t;
    return AL_OK;
}

void al_template_free(al_template *t)
{
    if (!t)
        return;
    tmpl_arena_free(&t->arena);
    free(t);
}

static bool parse_now(const char *now, tmpl_ctx *c)
{
    c->hour = c->minute = c->second = 0;
    if (!now) {
        time_t tt = time(NULL);
        struct tm tm;
        if (!localtime_r(&tt, &tm))
            return false;
        c->year = tm.tm_year + 1900;
        c->month = tm.tm_mon + 1;
        c->day = tm.tm_mday;
        c->hour = tm.tm_hour;
        c->minute = tm.tm_min;
        c->second = tm.tm_sec;
        return true;
    }
    int y, m, d, hh = 0, mm = 0, ss = 0, k = 0;
    size_t len = strlen(now);
    if (sscanf(now, "%4d-%2d-%2d%n", &y, &m, &d, &k) != 3 || k != 10)
        return false;
    if (len > 10) {
        int k2 = 0;
        if (sscanf(now + 10, "%*1[T ]%2d:%2d%n", &hh, &mm, &k2) != 2)
            return false;
        if ((size_t)(10 + k2) < len && sscanf(now + 10 + k2, ":%2d", &ss) != 1)
            return false;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || hh > 23 || mm > 59 || ss > 59 || hh < 0 ||
        mm < 0 || ss < 0)
        return false;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    c->year = y;
    c->month = m;
    c->day = d;
    c->hour = hh;
    c->minute = mm;
    c->second = ss;
    return true;
}

static bool role_is(const tv *msg, const char *role)
{
    if (msg->type != TV_DICT)
        return false;
    const tv *r = tv_dict_get(msg->u.dict, "role", 4);
    return r && r->type == TV_STR && r->u.s.n == strlen(role) && !memcmp(r->u.s.p, role, r->u.s.n);
}

/* Appends {role: "user", content: the text gathered in pending} to out. */
static bool push_user(tmpl_arena *a, tv_list *out, const tmpl_buf *pending)
{
    tv_dict *d = tv_dict_new(a, 2);
    if (!d)
        return false;
    tv_dict_set(a, d, "role", 4, tv_cstr("user"));
    tv_dict_set(a, d, "content", 7, tv_str(pending->p ? pending->p : "", pending->n));
    tv nm = {TV_DICT, {0}};
    nm.u.dict = d;
    tv_list_push(a, out, nm);
    return true;
}

/* Folds system messages into the next user message (minja's polyfill). */
static bool fold_system(tmpl_arena *a, tv *messages)
{
    const tv_list *in = messages->u.list;
    tv_list *out = tv_list_new(a, in->n + 1);
    tmpl_buf pending = {.a = a};
    bool have = false;
    if (!out)
        return false;
    for (size_t i = 0; i < in->n; i++) {
        const tv *m = &in->items[i];
        if (role_is(m, "system")) {
            const tv *c = tv_dict_get(m->u.dict, "content", 7);
            if (have)
                tb_putc(&pending, '\n');
            if (c)
                tv_str_append(&pending, c, 0);
            have = true;
            continue;
        }
        const tv *c = m->type == TV_DICT ? tv_dict_get(m->u.dict, "content", 7) : NULL;
        if (have && role_is(m, "user") && c && c->type == TV_STR) {
            tv_dict *d = tv_dict_new(a, m->u.dict->n);
            if (!d)
                return false;
            for (size_t k = 0; k < m->u.dict->n; k++)
                tv_dict_set(a, d, m->u.dict->kv[k].k, m->u.dict->kv[k].kn, m->u.dict->kv[k].v);
            if (c->u.s.n) {
                tb_putc(&pending, '\n');
                tb_put(&pending, c->u.s.p, c->u.s.n);
            }
            tv_dict_set(a, d, "content", 7, tv_str(pending.p ? pending.p : "", pending.n));
            tv nm = {TV_DICT, {0}};
            nm.u.dict = d;
            tv_list_push(a, out, nm);
            pending = (tmpl_buf){.a = a};
            have = false;
            continue;
        }
        if (have) {
            if (!push_user(a, out, &pending))
                return false;
            pending = (tmpl_buf){.a = a};
            have = false;
        }
        if (!tv_list_push(a, out, *m))
            return false;
    }
    if (have && !push_user(a, out, &pending))
        return false;
    if (pending.over)
        return false;
    messages->u.list = out;
    return true;
}

static bool has_system(const tv *messages)
{
    for (size_t i = 0; i < messages->u.list->n; i++)
        if (role_is(&messages->u.list->items[i], "system"))
            return true;
    return false;
}

static al_status render(const al_template *t, const al_template_inputs *in, const tmpl_limits *lim,
                        bool polyfill, char **out, size_t *out_len, al_error *err)
{
    tmpl_arena arena = {.limit_bytes = lim->max_memory_bytes};
    tmpl_ctx c = {.arena = &arena, .err = err, .lim = *lim};
    al_status st = AL_OK;
    if (!parse_now(in->now, &c))
        return al_err(err, AL_ERR_ARG, "chat template: 'now' must be YYYY-MM-DD[THH:MM[:SS]], got '%.40s'",
                      in->now ? in->now : "");
    tv messages, tools = tv_none(), extra = tv_none();
    if (!in->messages_json)
        return al_err(err, AL_ERR_ARG, "chat template: no messages given");
    if ((st = tmpl_json_parse(&arena, in->messages_json, "messages", &messages, err)))
        goto done;
    if (messages.type != TV_LIST) {
        st = al_err(err, AL_ERR_FORMAT, "messages: expected a JSON array of messages");
        goto done;
    }
    if (in->tools_json && (st = tmpl_json_parse(&arena, in->tools_json, "tools", &tools, err)))
        goto done;
    if (in->extra_json) {
        if ((st = tmpl_json_parse(&arena, in->extra_json, "extra variables", &extra, err)))
            goto done;
        if (extra.type != TV_DICT) {
            st = al_err(err, AL_ERR_FORMAT, "extra variables: expected a JSON object");
            goto done;
        }
    }
    if (polyfill && !t->supports_system && has_system(&messages) && !fold_system(&arena, &messages)) {
        st = tmpl_nomem(&c, NULL);
        goto done;
    }
    tmpl_frame *g = tmpl_frame_new(&c, NULL);
    if (!g) {
        st = tmpl_nomem(&c, NULL);
        goto done;
    }
    c.globals = g;
    bool ok = true;
    for (size_t i = 0; i < tmpl_n_globals; i++) {
        tv fv = {TV_FUNC, {0}};
        fv.u.fn = &tmpl_globals[i];
        ok = ok && tmpl_frame_set(&c, g, tmpl_globals[i].name, strlen(tmpl_globals[i].name), fv);
    }
    const char *bos = in->bos_token ? in->bos_token : "", *eos = in->eos_token ? in->eos_token : "";
    ok = ok && tmpl_frame_set(&c, g, "bos_token", 9, tv_cstr(bos));
    ok = ok && tmpl_frame_set(&c, g, "eos_token", 9, tv_cstr(eos));
    ok = ok && tmpl_frame_set(&c, g, "add_generation_prompt", 21, tv_bool(in->add_generation_prompt));
    ok = ok && tmpl_frame_set(&c, g, "enable_thinking", 15, tv_bool(true));
    ok = ok && tmpl_frame_set(&c, g, "tools", 5, tools);
    ok = ok && tmpl_frame_set(&c, g, "documents", 9, tv_none());
    ok = ok && tmpl_frame_set(&c, g, "messages", 8, messages);
    if (extra.type == TV_DICT)
        for (size_t i = 0; i < extra.u.dict->n; i++)
            ok = ok && tmpl_frame_set(&c, g, extra.u.dict->kv[i].k, extra.u.dict->kv[i].kn, extra.u.dict->kv[i].v);
    if (!ok) {
        st = tmpl_nomem(&c, NULL);
        goto done;
    }
    tmpl_buf buf = {.a = &arena, .limit = lim->max_output_bytes};
    c.out = &buf;
    if ((st = tmpl_exec_root(&c, t->root)))
        goto done;
    const char *p = buf.p ? buf.p : "";
    size_t n = buf.n, bl = strlen(bos);
    if (bl && n >= bl && !memcmp(p, bos, bl)) {
        p += bl;
        n -= bl;
    }
    char *r = malloc(n + 1);
    if (!r) {
        st = al_err(err, AL_ERR_NOMEM, "chat template: out of memory");
        goto done;
    }
    memcpy(r, p, n);
    r[n] = 0;
    *out = r;
    if (out_len)
        *out_len = n;
done:
    /* A failed malloc reads "memory limit exceeded" where it happened: say what it was. */
    if (st && arena.oom)
        st = al_err(err, AL_ERR_NOMEM, "chat template: out of memory");
    tmpl_arena_free(&arena);
    return st;
}

al_status al_template_render(const al_template *t, const al_template_inputs *in, char **out, size_t *out_len,
                             al_error *err)
{
    if (!t || !in || !out)
        return al_err(err, AL_ERR_ARG, "al_template_render: NULL argument");
    *out = NULL;
    if (out_len)
        *out_len = 0;
    return render(t, in, &k_limits, true, out, out_len, err);
}
