/*
 * tmpl_builtins.c - the global functions a chat template can call
 * (range, namespace, dict, raise_exception, strftime_now) and the built-in
 * prompt formats used when a model carries no template of its own.
 */
#include "template/tmpl.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ globals */

static al_status g_range(tmpl_ctx *c, const tnode *at, const tmpl_args *args, tv *out)
{
    int64_t v[3] = {0, 0, 1};
    if (args->npos < 1 || args->npos > 3 || args->nkw)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "range() takes 1 to 3 integer arguments");
    for (size_t i = 0; i < args->npos; i++) {
        const tv *a = &args->pos[i];
        if (a->type != TV_INT && a->type != TV_BOOL)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "range() arguments must be integers, not %s",
                             tv_type_name(a));
        v[i] = a->type == TV_INT ? a->u.i : a->u.b;
    }
    int64_t start = 0, stop, stepv = 1;
    if (args->npos == 1)
        stop = v[0];
    else {
        start = v[0];
        stop = v[1];
        if (args->npos == 3)
            stepv = v[2];
    }
    if (stepv == 0)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "range() step must not be zero");
    /* count in unsigned 128-bit-free arithmetic: clamp via double first */
    double cnt_d = stepv > 0 ? ((double)stop - (double)start) / (double)stepv
                             : ((double)start - (double)stop) / (double)-stepv;
    if (cnt_d > (double)(c->lim.max_memory_bytes / sizeof(tv)))
        return tmpl_fail(c, at, AL_ERR_LIMIT, "range() of about %.0f items exceeds the memory limit", cnt_d);
    tv_list *l = tv_list_new(c->arena, 0);
    if (!l)
        return tmpl_nomem(c, at);
    for (int64_t i = start; stepv > 0 ? i < stop : i > stop;) {
        if (!tv_list_push(c->arena, l, tv_int(i)))
            return tmpl_nomem(c, at);
        if (__builtin_add_overflow(i, stepv, &i))
            break;
    }
    out->type = TV_LIST;
    out->u.list = l;
    return AL_OK;
}

static al_status make_dict(tmpl_ctx *c, const tnode *at, const tmpl_args *args, bool ns, tv *out)
{
    tv_dict *d = tv_dict_new(c->arena, 0);
    if (!d)
        return tmpl_nomem(c, at);
    d->ns = ns;
    for (size_t i = 0; i < args->npos; i++) {
        const tv *a = &args->pos[i];
        if (a->type != TV_DICT)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "%s() takes a mapping or keyword arguments",
                             ns ? "namespace" : "dict");
        for (size_t k = 0; k < a->u.dict->n; k++)
            if (!tv_dict_set(c->arena, d, a->u.dict->kv[k].k, a->u.dict->kv[k].kn, a->u.dict->kv[k].v))
                return tmpl_nomem(c, at);
    }
    for (size_t i = 0; i < args->nkw; i++)
        if (!tv_dict_set(c->arena, d, args->kw[i], args->kwn[i], args->kwv[i]))
            return tmpl_nomem(c, at);
    out->type = TV_DICT;
    out->u.dict = d;
    return AL_OK;
}

static al_status g_namespace(tmpl_ctx *c, const tnode *at, const tmpl_args *args, tv *out)
{
    return make_dict(c, at, args, true, out);
}

static al_status g_dict(tmpl_ctx *c, const tnode *at, const tmpl_args *args, tv *out)
{
    return make_dict(c, at, args, false, out);
}

static al_status g_raise(tmpl_ctx *c, const tnode *at, const tmpl_args *args, tv *out)
{
    (void)out;
    const tv *m = tmpl_arg(args, 0, NULL);
    tv s = tv_str("", 0);
    if (m && tmpl_to_str(c, at, m, &s))
        return c->err ? c->err->status : AL_ERR_TEMPLATE;
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "raise_exception: %.*s", (int)(s.u.s.n > 700 ? 700 : s.u.s.n),
                     s.u.s.p);
}

static const char *const k_months[] = {"January", "February", "March", "April", "May", "June", "July",
                                       "August", "September", "October", "November", "December"};
static const char *const k_days[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                                     "Sunday"};

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* 0 = Monday */
static int weekday(int y, int m, int d)
{
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3)
        y -= 1;
    int w = (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7; /* 0 = Sunday */
    return (w + 6) % 7;
}

static int yday(int y, int m, int d)
{
    static const int cum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    return cum[m - 1] + d + (m > 2 && leap(y) ? 1 : 0);
}

static al_status g_strftime(tmpl_ctx *c, const tnode *at, const tmpl_args *args, tv *out)
{
    const tv *f = tmpl_arg(args, 0, NULL);
    if (!f || f->type != TV_STR)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "strftime_now() takes a format string");
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    const char *p = f->u.s.p;
    size_t n = f->u.s.n;
    char t[32];
    int mon = c->month >= 1 && c->month <= 12 ? c->month : 1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%' || i + 1 >= n) {
            tb_putc(&b, p[i]);
            continue;
        }
        char k = p[++i];
        int hour12 = c->hour % 12 == 0 ? 12 : c->hour % 12;
        switch (k) {
        case 'd': snprintf(t, sizeof(t), "%02d", c->day); break;
        case 'e': snprintf(t, sizeof(t), "%2d", c->day); break;
        case 'm': snprintf(t, sizeof(t), "%02d", mon); break;
        case 'Y': snprintf(t, sizeof(t), "%d", c->year); break;
        case 'y': snprintf(t, sizeof(t), "%02d", c->year % 100); break;
        case 'b':
        case 'h': snprintf(t, sizeof(t), "%.3s", k_months[mon - 1]); break;
        case 'B': snprintf(t, sizeof(t), "%s", k_months[mon - 1]); break;
        case 'a': snprintf(t, sizeof(t), "%.3s", k_days[weekday(c->year, mon, c->day)]); break;
        case 'A': snprintf(t, sizeof(t), "%s", k_days[weekday(c->year, mon, c->day)]); break;
        case 'H': snprintf(t, sizeof(t), "%02d", c->hour); break;
        case 'I': snprintf(t, sizeof(t), "%02d", hour12); break;
        case 'M': snprintf(t, sizeof(t), "%02d", c->minute); break;
        case 'S': snprintf(t, sizeof(t), "%02d", c->second); break;
        case 'p': snprintf(t, sizeof(t), "%s", c->hour < 12 ? "AM" : "PM"); break;
        case 'j': snprintf(t, sizeof(t), "%03d", yday(c->year, mon, c->day)); break;
        case 'F': snprintf(t, sizeof(t), "%d-%02d-%02d", c->year, mon, c->day); break;
        case '%': snprintf(t, sizeof(t), "%%"); break;
        default: snprintf(t, sizeof(t), "%%%c", k); break;
        }
        tb_puts(&b, t);
    }
    if (b.over)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "strftime_now() result exceeds the output limit");
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

const tmpl_func tmpl_globals[] = {
    {"range", g_range},
    {"namespace", g_namespace},
    {"dict", g_dict},
    {"raise_exception", g_raise},
    {"strftime_now", g_strftime},
};
const size_t tmpl_n_globals = sizeof(tmpl_globals) / sizeof(tmpl_globals[0]);

/* ------------------------------------------------------------------ built-in formats */

/* Shared by the formats: message content as text, whether a string or a
 * list of {"type": "text", "text": ...} parts. */
#define TEXT_MACRO                                                                                         \
    "{%- macro text(c) -%}"                                                                                \
    "{%- if c is string -%}{{ c }}"                                                                        \
    "{%- elif c is iterable -%}{%- for p in c if p is mapping and p.type == 'text' -%}{{ p.text }}"       \
    "{%- endfor -%}{%- endif -%}"                                                                          \
    "{%- endmacro -%}\n"

static const char k_chatml[] = TEXT_MACRO
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message.role + '\\n' + text(message.content) + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";

static const char k_llama2[] = TEXT_MACRO
    "{%- if messages and messages[0].role == 'system' -%}\n"
    "{%- set system = text(messages[0].content) -%}{%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "{%- set content = text(message.content) -%}\n"
    "{%- if loop.first and system -%}{%- set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content -%}"
    "{%- endif -%}\n"
    "{%- if message.role == 'user' -%}{{- bos_token + '[INST] ' + content | trim + ' [/INST]' -}}\n"
    "{%- elif message.role == 'assistant' -%}{{- ' ' + content | trim + ' ' + eos_token -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n";

static const char k_llama3[] = TEXT_MACRO
    "{{- bos_token -}}\n"
    "{%- for message in messages -%}\n"
    "{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + text(message.content) | trim + "
    "'<|eot_id|>' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}\n";

static const char k_mistral[] = TEXT_MACRO
    "{%- if messages and messages[0].role == 'system' -%}\n"
    "{%- set system = text(messages[0].content) -%}{%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}\n"
    "{{- bos_token -}}\n"
    "{%- for message in loop_messages -%}\n"
    "{%- if message.role == 'user' -%}\n"
    "{%- if loop.first and system -%}{{- '[INST] ' + system + '\\n\\n' + text(message.content) + ' [/INST]' -}}\n"
    "{%- else -%}{{- '[INST] ' + text(message.content) + ' [/INST]' -}}{%- endif -%}\n"
    "{%- elif message.role == 'assistant' -%}{{- text(message.content) + eos_token -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n";

static const char k_gemma[] = TEXT_MACRO
    "{%- if messages and messages[0].role == 'system' -%}\n"
    "{%- set system = text(messages[0].content) -%}{%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}\n"
    "{{- bos_token -}}\n"
    "{%- for message in loop_messages -%}\n"
    "{%- set role = 'model' if message.role == 'assistant' else message.role -%}\n"
    "{%- set content = text(message.content) | trim -%}\n"
    "{%- if loop.first and system -%}{%- set content = system + '\\n\\n' + content -%}{%- endif -%}\n"
    "{{- '<start_of_turn>' + role + '\\n' + content + '<end_of_turn>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}\n";

static const char k_phi3[] = TEXT_MACRO
    "{%- for message in messages -%}\n"
    "{{- '<|' + message.role + '|>\\n' + text(message.content) + '<|end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}\n";

static const struct {
    const char *name;
    const char *src;
} k_builtins[] = {
    {"chatml", k_chatml}, {"llama2", k_llama2}, {"llama3", k_llama3},
    {"mistral", k_mistral}, {"gemma", k_gemma}, {"phi3", k_phi3},
};

const char *al_template_builtin(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(k_builtins) / sizeof(k_builtins[0]); i++)
        if (!strcmp(name, k_builtins[i].name))
            return k_builtins[i].src;
    return NULL;
}
