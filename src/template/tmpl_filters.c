/*
 * tmpl_filters.c - Jinja2 filters (x | f), tests (x is t) and the Python
 * methods templates call on strings and dicts (x.strip(), d.items(), ...),
 * with Python's semantics where chat templates can see the difference.
 */
#include "template/tmpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define NAME_IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))

/* ------------------------------------------------------------------ utf-8 helpers */

/* Decodes one code point at p[*i] (advances *i); invalid bytes map to themselves. */
static int32_t dec(const char *p, size_t n, size_t *i)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)p + *i, (utf8proc_ssize_t)(n - *i), &cp);
    if (k <= 0) {
        cp = (unsigned char)p[*i];
        k = 1;
    }
    *i += (size_t)k;
    return cp;
}

static bool put_cp(tmpl_buf *b, int32_t cp)
{
    utf8proc_uint8_t t[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, t);
    if (k <= 0)
        return tb_putc(b, (char)cp);
    return tb_put(b, (const char *)t, (size_t)k);
}

static bool py_space(int32_t cp)
{
    return cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

static bool in_chars(int32_t cp, const tv *chars)
{
    if (!chars)
        return py_space(cp);
    size_t i = 0;
    while (i < chars->u.s.n)
        if (dec(chars->u.s.p, chars->u.s.n, &i) == cp)
            return true;
    return false;
}

/* strip: which 1 left, 2 right, 3 both */
static tv do_strip(const tv *s, const tv *chars, int which)
{
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, a = 0, e = n;
    if (which & 1) {
        while (a < n) {
            size_t j = a;
            if (!in_chars(dec(p, n, &j), chars))
                break;
            a = j;
        }
    }
    if (which & 2) {
        while (e > a) {
            size_t st = e - 1;
            while (st > a && ((unsigned char)p[st] & 0xC0) == 0x80)
                st--;
            size_t j = st;
            if (!in_chars(dec(p, n, &j), chars))
                break;
            e = st;
        }
    }
    return tv_str(p + a, e - a);
}

static al_status need_str(tmpl_ctx *c, const tnode *at, const tv *v, tv *out)
{
    if (v->type == TV_UNDEF) {
        *out = tv_str("", 0);
        return AL_OK;
    }
    return tmpl_to_str(c, at, v, out);
}

static al_status str_arg(tmpl_ctx *c, const tnode *at, const tv *v, const char *what)
{
    if (!v || v->type != TV_STR)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "%s must be a string", what);
    return AL_OK;
}

/* mode 0 lower, 1 upper, 2 capitalize, 3 title */
static al_status do_case(tmpl_ctx *c, const tnode *at, const tv *s, int mode, tv *out)
{
    tmpl_buf b = {.a = c->arena};
    size_t i = 0;
    bool word_start = true;
    bool first = true;
    while (i < s->u.s.n) {
        int32_t cp = dec(s->u.s.p, s->u.s.n, &i);
        int32_t r;
        if (mode == 0)
            r = utf8proc_tolower(cp);
        else if (mode == 1)
            r = utf8proc_toupper(cp);
        else if (mode == 2)
            r = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
        else {
            bool sep = py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            r = sep ? cp : word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
            word_start = sep;
        }
        first = false;
        if (!put_cp(&b, r))
            return tmpl_nomem(c, at);
    }
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static al_status do_replace(tmpl_ctx *c, const tnode *at, const tv *s, const tv *old, const tv *nw,
                            const tv *count, tv *out)
{
    if (str_arg(c, at, old, "replace(): old") || str_arg(c, at, nw, "replace(): new"))
        return c->err ? c->err->status : AL_ERR_TEMPLATE;
    int64_t maxc = count && count->type == TV_INT ? count->u.i : -1;
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, i = 0;
    int64_t done = 0;
    if (old->u.s.n == 0) {
        /* Python inserts `new` between every character */
        while (i <= n && (maxc < 0 || done < maxc)) {
            tb_put(&b, nw->u.s.p, nw->u.s.n);
            done++;
            if (i == n)
                break;
            size_t j = i;
            dec(p, n, &j);
            tb_put(&b, p + i, j - i);
            i = j;
        }
        tb_put(&b, p + i, n - i);
    } else {
        while (i < n) {
            const char *hit = (maxc < 0 || done < maxc) ? memmem(p + i, n - i, old->u.s.p, old->u.s.n) : NULL;
            if (!hit) {
                tb_put(&b, p + i, n - i);
                break;
            }
            tb_put(&b, p + i, (size_t)(hit - (p + i)));
            tb_put(&b, nw->u.s.p, nw->u.s.n);
            i = (size_t)(hit - p) + old->u.s.n;
            done++;
        }
    }
    if (b.over)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "replace() result exceeds the output limit");
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static al_status mk_list(tmpl_ctx *c, const tnode *at, tv_list **l)
{
    *l = tv_list_new(c->arena, 0);
    return *l ? AL_OK : tmpl_nomem(c, at);
}

static tv list_val(tv_list *l)
{
    tv v = {TV_LIST, {0}};
    v.u.list = l;
    return v;
}

static al_status do_split(tmpl_ctx *c, const tnode *at, const tv *s, const tv *sep, const tv *maxsplit, tv *out)
{
    tv_list *l;
    al_status st = mk_list(c, at, &l);
    if (st)
        return st;
    int64_t maxs = maxsplit && maxsplit->type == TV_INT ? maxsplit->u.i : -1;
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    if (!sep || sep->type == TV_NONE) {
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            while (i < n) {
                size_t j = i;
                if (!py_space(dec(p, n, &j)))
                    break;
                i = j;
            }
            if (i >= n)
                break;
            size_t a = i;
            if (maxs >= 0 && done >= maxs) {
                size_t e = n;
                tv whole = tv_str(p + a, e - a);
                tv t = do_strip(&whole, NULL, 2);
                if (!tv_list_push(c->arena, l, t))
                    return tmpl_nomem(c, at);
                break;
            }
            while (i < n) {
                size_t j = i;
                if (py_space(dec(p, n, &j)))
                    break;
                i = j;
            }
            if (!tv_list_push(c->arena, l, tv_str(p + a, i - a)))
                return tmpl_nomem(c, at);
            done++;
        }
    } else {
        if ((st = str_arg(c, at, sep, "split(): separator")))
            return st;
        if (sep->u.s.n == 0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "split(): empty separator");
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            const char *hit = (maxs < 0 || done < maxs) ? memmem(p + i, n - i, sep->u.s.p, sep->u.s.n) : NULL;
            if (!hit) {
                if (!tv_list_push(c->arena, l, tv_str(p + i, n - i)))
                    return tmpl_nomem(c, at);
                break;
            }
            if (!tv_list_push(c->arena, l, tv_str(p + i, (size_t)(hit - (p + i)))))
                return tmpl_nomem(c, at);
            i = (size_t)(hit - p) + sep->u.s.n;
            done++;
        }
    }
    *out = list_val(l);
    return AL_OK;
}

/* "{} {0} {name}".format(...) without format specs */
static al_status do_format(tmpl_ctx *c, const tnode *at, const tv *s, const tmpl_args *args, tv *out)
{
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, auto_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '{' && i + 1 < n && p[i + 1] == '{') {
            tb_putc(&b, '{');
            i++;
            continue;
        }
        if (p[i] == '}' && i + 1 < n && p[i + 1] == '}') {
            tb_putc(&b, '}');
            i++;
            continue;
        }
        if (p[i] != '{') {
            tb_putc(&b, p[i]);
            continue;
        }
        size_t e = i + 1;
        while (e < n && p[e] != '}')
            e++;
        if (e >= n)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "format(): single '{' in format string");
        const char *f = p + i + 1;
        size_t fn = e - i - 1;
        if (memchr(f, ':', fn) || memchr(f, '!', fn))
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "format(): format specs are not supported");
        const tv *v = NULL;
        if (fn == 0) {
            v = auto_i < args->npos ? &args->pos[auto_i] : NULL;
            auto_i++;
        } else if (f[0] >= '0' && f[0] <= '9') {
            size_t k = 0;
            for (size_t j = 0; j < fn; j++)
                k = k * 10 + (size_t)(f[j] - '0');
            v = k < args->npos ? &args->pos[k] : NULL;
        } else {
            for (size_t k = 0; k < args->nkw; k++)
                if (args->kwn[k] == fn && !memcmp(args->kw[k], f, fn))
                    v = &args->kwv[k];
        }
        if (!v)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "format(): missing argument for '{%.*s}'",
                             (int)(fn > 40 ? 40 : fn), f);
        tv_str_append(&b, v, 0);
        i = e;
    }
    if (b.over)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "format() result exceeds the output limit");
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static bool starts_ends(const tv *s, const tv *x, bool ends)
{
    if (x->type != TV_STR || x->u.s.n > s->u.s.n)
        return false;
    const char *p = ends ? s->u.s.p + s->u.s.n - x->u.s.n : s->u.s.p;
    return !memcmp(p, x->u.s.p, x->u.s.n);
}

/* ------------------------------------------------------------------ methods */

/* Python str methods of a string: startswith, strip, split, format, is*... */
static al_status str_method(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n,
                            const tmpl_args *args, tv *out, bool *found)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    const tv *a1 = tmpl_arg(args, 1, NULL);
    al_status st;
    if (NAME_IS("startswith") || NAME_IS("endswith")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "%.*s() takes an argument", (int)n, name);
        bool ends = name[0] == 'e', r = false;
        if (a0->type == TV_LIST) {
            for (size_t i = 0; i < a0->u.list->n; i++)
                r = r || starts_ends(obj, &a0->u.list->items[i], ends);
        } else if (a0->type == TV_STR) {
            r = starts_ends(obj, a0, ends);
        } else {
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "%.*s() argument must be str or a tuple of str",
                             (int)n, name);
        }
        *out = tv_bool(r);
        return AL_OK;
    }
    if (NAME_IS("strip") || NAME_IS("lstrip") || NAME_IS("rstrip")) {
        const tv *chars = a0 && a0->type != TV_NONE ? a0 : NULL;
        if (chars && (st = str_arg(c, at, chars, "strip(): chars")))
            return st;
        *out = do_strip(obj, chars, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        return AL_OK;
    }
    if (NAME_IS("split"))
        return do_split(c, at, obj, tmpl_arg(args, 0, "sep"), tmpl_arg(args, 1, "maxsplit"), out);
    if (NAME_IS("upper"))
        return do_case(c, at, obj, 1, out);
    if (NAME_IS("lower"))
        return do_case(c, at, obj, 0, out);
    if (NAME_IS("capitalize"))
        return do_case(c, at, obj, 2, out);
    if (NAME_IS("title"))
        return do_case(c, at, obj, 3, out);
    if (NAME_IS("replace"))
        return do_replace(c, at, obj, a0, a1, tmpl_arg(args, 2, "count"), out);
    if (NAME_IS("format"))
        return do_format(c, at, obj, args, out);
    if (NAME_IS("join")) {
        tmpl_args fa = {.npos = 1};
        fa.pos[0] = *obj;
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "join() takes an argument");
        return tmpl_filter(c, at, "join", 4, a0, &fa, out);
    }
    if (NAME_IS("find") || NAME_IS("count") || NAME_IS("index")) {
        if ((st = str_arg(c, at, a0, "the argument")))
            return st;
        if (NAME_IS("count")) {
            int64_t k = 0;
            if (a0->u.s.n == 0)
                k = (int64_t)tmpl_utf8_len(obj->u.s.p, obj->u.s.n) + 1;
            else
                for (size_t i = 0; i + a0->u.s.n <= obj->u.s.n;) {
                    const char *h = memmem(obj->u.s.p + i, obj->u.s.n - i, a0->u.s.p, a0->u.s.n);
                    if (!h)
                        break;
                    k++;
                    i = (size_t)(h - obj->u.s.p) + a0->u.s.n;
                }
            *out = tv_int(k);
            return AL_OK;
        }
        const char *h = a0->u.s.n ? memmem(obj->u.s.p, obj->u.s.n, a0->u.s.p, a0->u.s.n) : obj->u.s.p;
        if (!h && name[0] == 'i')
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "substring not found");
        *out = tv_int(h ? (int64_t)tmpl_utf8_len(obj->u.s.p, (size_t)(h - obj->u.s.p)) : -1);
        return AL_OK;
    }
    if (NAME_IS("splitlines")) {
        tv_list *l;
        if ((st = mk_list(c, at, &l)))
            return st;
        const char *p = obj->u.s.p;
        size_t len = obj->u.s.n, i = 0, s0 = 0;
        while (i < len) {
            if (p[i] == '\n' || p[i] == '\r') {
                if (!tv_list_push(c->arena, l, tv_str(p + s0, i - s0)))
                    return tmpl_nomem(c, at);
                if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
                    i++;
                s0 = i + 1;
            }
            i++;
        }
        if (s0 < len && !tv_list_push(c->arena, l, tv_str(p + s0, len - s0)))
            return tmpl_nomem(c, at);
        *out = list_val(l);
        return AL_OK;
    }
    if (NAME_IS("isdigit") || NAME_IS("isalpha") || NAME_IS("isspace") || NAME_IS("isalnum") ||
        NAME_IS("islower") || NAME_IS("isupper")) {
        bool r = obj->u.s.n > 0, cased = false;
        size_t i = 0;
        while (i < obj->u.s.n) {
            int32_t cp = dec(obj->u.s.p, obj->u.s.n, &i);
            utf8proc_category_t cat = utf8proc_category(cp);
            bool digit = cat == UTF8PROC_CATEGORY_ND;
            bool alpha = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
            if (NAME_IS("isdigit"))
                r = r && digit;
            else if (NAME_IS("isalpha"))
                r = r && alpha;
            else if (NAME_IS("isalnum"))
                r = r && (alpha || digit);
            else if (NAME_IS("isspace"))
                r = r && py_space(cp);
            else if (NAME_IS("islower")) {
                if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT)
                    r = false;
                cased = cased || cat == UTF8PROC_CATEGORY_LL;
            } else {
                if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
                    r = false;
                cased = cased || cat == UTF8PROC_CATEGORY_LU;
            }
        }
        if (NAME_IS("islower") || NAME_IS("isupper"))
            r = r && cased;
        *out = tv_bool(r);
        return AL_OK;
    }
    *found = false;
    return AL_OK;
}

/* dict methods: get, items, keys, values. */
static al_status dict_method(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n,
                             const tmpl_args *args, tv *out, bool *found)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    const tv *a1 = tmpl_arg(args, 1, NULL);
    const tv_dict *d = obj->u.dict;
    if (NAME_IS("get")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "get() takes a key");
        tv *v = a0->type == TV_STR ? tv_dict_get(d, a0->u.s.p, a0->u.s.n) : NULL;
        *out = v ? *v : a1 ? *a1 : tv_none();
        return AL_OK;
    }
    if (NAME_IS("items") || NAME_IS("keys") || NAME_IS("values")) {
        tv_list *l = tv_list_new(c->arena, d->n);
        if (!l)
            return tmpl_nomem(c, at);
        for (size_t i = 0; i < d->n; i++) {
            tv k = tv_str(d->kv[i].k, d->kv[i].kn);
            if (name[0] == 'k')
                l->items[l->n++] = k;
            else if (name[0] == 'v')
                l->items[l->n++] = d->kv[i].v;
            else {
                tv_list *pair = tv_list_new(c->arena, 2);
                if (!pair)
                    return tmpl_nomem(c, at);
                pair->tuple = true;
                pair->items[0] = k;
                pair->items[1] = d->kv[i].v;
                pair->n = 2;
                l->items[l->n++] = list_val(pair);
            }
        }
        *out = list_val(l);
        return AL_OK;
    }
    *found = false;
    return AL_OK;
}

/* list methods: index, count. */
static al_status list_method(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n,
                             const tmpl_args *args, tv *out, bool *found)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    if (NAME_IS("index") || NAME_IS("count")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "%.*s() takes an argument", (int)n, name);
        int64_t k = 0, idx = -1;
        for (size_t i = 0; i < obj->u.list->n; i++)
            if (tv_equal(&obj->u.list->items[i], a0, 0)) {
                if (idx < 0)
                    idx = (int64_t)i;
                k++;
            }
        if (name[0] == 'i' && idx < 0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "value is not in list");
        *out = tv_int(name[0] == 'i' ? idx : k);
        return AL_OK;
    }
    *found = false;
    return AL_OK;
}

al_status tmpl_method(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n,
                      const tmpl_args *args, tv *out, bool *found)
{
    *found = true;
    switch (obj->type) {
    case TV_STR: return str_method(c, at, obj, name, n, args, out, found);
    case TV_DICT: return dict_method(c, at, obj, name, n, args, out, found);
    case TV_LIST: return list_method(c, at, obj, name, n, args, out, found);
    case TV_LOOP:
        if (!NAME_IS("cycle"))
            break;
        if (args->npos == 0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "loop.cycle() needs at least one value");
        tv idx;
        tmpl_getattr(c, at, obj, "index0", 6, &idx);
        *out = args->pos[(size_t)idx.u.i % args->npos];
        return AL_OK;
    default: break;
    }
    *found = false;
    return AL_OK;
}

/* ------------------------------------------------------------------ tests */

al_status tmpl_test(tmpl_ctx *c, const tnode *at, const char *name, size_t n, const tv *v, const tmpl_args *args,
                    bool *out)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    tv_type t = v->type;
    if (NAME_IS("defined"))
        *out = t != TV_UNDEF;
    else if (NAME_IS("undefined"))
        *out = t == TV_UNDEF;
    else if (NAME_IS("none"))
        *out = t == TV_NONE;
    else if (NAME_IS("string"))
        *out = t == TV_STR;
    else if (NAME_IS("number"))
        *out = t == TV_INT || t == TV_FLOAT || t == TV_BOOL;
    else if (NAME_IS("integer"))
        *out = t == TV_INT;
    else if (NAME_IS("float"))
        *out = t == TV_FLOAT;
    else if (NAME_IS("mapping"))
        *out = t == TV_DICT;
    else if (NAME_IS("sequence"))
        *out = t == TV_LIST || t == TV_STR || t == TV_DICT;
    else if (NAME_IS("iterable"))
        *out = t == TV_LIST || t == TV_STR || t == TV_DICT || t == TV_UNDEF;
    else if (NAME_IS("boolean"))
        *out = t == TV_BOOL;
    else if (NAME_IS("true"))
        *out = t == TV_BOOL && v->u.b;
    else if (NAME_IS("false"))
        *out = t == TV_BOOL && !v->u.b;
    else if (NAME_IS("callable"))
        *out = t == TV_FUNC || t == TV_MACRO;
    else if (NAME_IS("equalto") || NAME_IS("eq") || NAME_IS("==") || NAME_IS("sameas")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "test '%.*s' needs an argument", (int)n, name);
        *out = tv_equal(v, a0, 0);
        if (NAME_IS("sameas") && v->type != a0->type)
            *out = false;
    } else if (NAME_IS("ne") || NAME_IS("!=")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "test '%.*s' needs an argument", (int)n, name);
        *out = !tv_equal(v, a0, 0);
    } else if (NAME_IS("lt") || NAME_IS("le") || NAME_IS("gt") || NAME_IS("ge") || NAME_IS("lessthan") ||
               NAME_IS("greaterthan")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "test '%.*s' needs an argument", (int)n, name);
        int cmp;
        al_status st = tmpl_compare(c, at, v, a0, &cmp);
        if (st)
            return st;
        if (NAME_IS("lt") || NAME_IS("lessthan"))
            *out = cmp < 0;
        else if (NAME_IS("le"))
            *out = cmp <= 0;
        else if (NAME_IS("gt") || NAME_IS("greaterthan"))
            *out = cmp > 0;
        else
            *out = cmp >= 0;
    } else if (NAME_IS("in")) {
        if (!a0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "test 'in' needs an argument");
        *out = false;
        if (a0->type == TV_STR && v->type == TV_STR)
            *out = v->u.s.n == 0 || memmem(a0->u.s.p, a0->u.s.n, v->u.s.p, v->u.s.n);
        else if (a0->type == TV_LIST)
            for (size_t i = 0; i < a0->u.list->n && !*out; i++)
                *out = tv_equal(v, &a0->u.list->items[i], 0);
        else if (a0->type == TV_DICT)
            *out = v->type == TV_STR && tv_dict_get(a0->u.dict, v->u.s.p, v->u.s.n);
    } else if (NAME_IS("odd") || NAME_IS("even") || NAME_IS("divisibleby")) {
        if (t != TV_INT)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "test '%.*s' needs an integer", (int)n, name);
        if (NAME_IS("divisibleby")) {
            if (!a0 || a0->type != TV_INT || a0->u.i == 0)
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "divisibleby needs a non-zero integer");
            *out = a0->u.i == -1 || v->u.i % a0->u.i == 0;
        } else {
            *out = (v->u.i % 2 != 0) == (name[0] == 'o');
        }
    } else if (NAME_IS("lower") || NAME_IS("upper")) {
        if (t != TV_STR) {
            *out = false;
            return AL_OK;
        }
        tv conv;
        al_status st = do_case(c, at, v, name[0] == 'l' ? 0 : 1, &conv);
        if (st)
            return st;
        *out = tv_equal(v, &conv, 0);
    } else {
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "no test named '%.*s'", (int)(n > 40 ? 40 : n), name);
    }
    return AL_OK;
}

/* ------------------------------------------------------------------ filters */

static al_status sort_values(tmpl_ctx *c, const tnode *at, tv *items, size_t n, const tv *keys, bool reverse);

/* the attribute (dotted path "a.b" or integer index) of an item */
static al_status get_path(tmpl_ctx *c, const tnode *at, const tv *item, const tv *attr, tv *out)
{
    if (attr->type == TV_INT)
        return tmpl_getitem(c, at, item, attr, out);
    if (attr->type != TV_STR)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "attribute must be a string");
    tv cur = *item;
    const char *p = attr->u.s.p;
    size_t n = attr->u.s.n, i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && p[j] != '.')
            j++;
        tv next;
        bool digits = j > i;
        for (size_t k = i; k < j; k++)
            digits = digits && p[k] >= '0' && p[k] <= '9';
        if (digits && cur.type == TV_LIST) {
            tv idx = tv_int(strtoll(p + i, NULL, 10));
            tmpl_getitem(c, at, &cur, &idx, &next);
        } else {
            tmpl_getattr(c, at, &cur, p + i, j - i, &next);
        }
        cur = next;
        i = j + 1;
    }
    *out = cur;
    return AL_OK;
}

/* select/reject/selectattr/rejectattr */
static al_status do_select(tmpl_ctx *c, const tnode *at, const tv *self, const tmpl_args *args, bool by_attr,
                           bool want, tv *out)
{
    tv_list *items, *l;
    al_status st = tmpl_iterate(c, at, self, &items);
    if (st || (st = mk_list(c, at, &l)))
        return st;
    size_t first = by_attr ? 1 : 0;
    if (by_attr && args->npos < 1)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "selectattr/rejectattr need an attribute name");
    const tv *test = args->npos > first ? &args->pos[first] : NULL;
    if (test && test->type != TV_STR)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "the test name must be a string");
    tmpl_args targs = {0};
    for (size_t k = first + 1; k < args->npos; k++)
        targs.pos[targs.npos++] = args->pos[k];
    for (size_t i = 0; i < items->n; i++) {
        tv v = items->items[i];
        if (by_attr && (st = get_path(c, at, &items->items[i], &args->pos[0], &v)))
            return st;
        bool r;
        if (test) {
            if ((st = tmpl_test(c, at, test->u.s.p, test->u.s.n, &v, &targs, &r)))
                return st;
        } else {
            r = tv_truthy(&v);
        }
        if (r == want && !tv_list_push(c->arena, l, items->items[i]))
            return tmpl_nomem(c, at);
    }
    *out = list_val(l);
    return AL_OK;
}

static al_status do_join(tmpl_ctx *c, const tnode *at, const tv *self, const tmpl_args *args, tv *out)
{
    tv_list *items;
    al_status st = tmpl_iterate(c, at, self, &items);
    if (st)
        return st;
    const tv *sep = tmpl_arg(args, 0, "d");
    const tv *attr = tmpl_arg(args, 1, "attribute");
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    for (size_t i = 0; i < items->n; i++) {
        if (i && sep)
            tv_str_append(&b, sep, 0);
        tv v = items->items[i];
        if (attr && (st = get_path(c, at, &items->items[i], attr, &v)))
            return st;
        tv_str_append(&b, &v, 0);
    }
    if (b.over)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "join() result exceeds the output limit");
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static al_status do_indent(tmpl_ctx *c, const tnode *at, const tv *s, const tmpl_args *args, tv *out)
{
    const tv *w = tmpl_arg(args, 0, "width");
    const tv *first = tmpl_arg(args, 1, "first");
    const tv *blank = tmpl_arg(args, 2, "blank");
    tmpl_buf pad = {.a = c->arena};
    if (!w)
        tb_put(&pad, "    ", 4);
    else if (w->type == TV_STR)
        tb_put(&pad, w->u.s.p, w->u.s.n);
    else if (w->type == TV_INT) {
        if (w->u.i > 1000)
            return tmpl_fail(c, at, AL_ERR_LIMIT, "indent width too large");
        for (int64_t i = 0; i < w->u.i; i++)
            tb_putc(&pad, ' ');
    } else
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "indent width must be an integer or a string");
    bool bfirst = first && tv_truthy(first), bblank = blank && tv_truthy(blank);
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, i = 0;
    bool line_no = 0;
    while (i <= n) {
        size_t e = i;
        while (e < n && p[e] != '\n')
            e++;
        bool is_blank = true;
        for (size_t k = i; k < e; k++)
            is_blank = is_blank && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r');
        if ((line_no || bfirst) && (bblank || !is_blank) && pad.n)
            tb_put(&b, pad.p, pad.n);
        tb_put(&b, p + i, e - i);
        if (e < n)
            tb_putc(&b, '\n');
        line_no = 1;
        if (e >= n)
            break;
        i = e + 1;
    }
    if (b.over)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "indent() result exceeds the output limit");
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static al_status to_int(tmpl_ctx *c, const tnode *at, const tv *v, const tv *dflt, tv *out)
{
    (void)c;
    (void)at;
    tv d = dflt ? *dflt : tv_int(0);
    switch (v->type) {
    case TV_INT: *out = *v; return AL_OK;
    case TV_BOOL: *out = tv_int(v->u.b); return AL_OK;
    case TV_FLOAT:
        *out = (isfinite(v->u.f) && fabs(v->u.f) < 9.2e18) ? tv_int((int64_t)v->u.f) : d;
        return AL_OK;
    case TV_STR: {
        char buf[64];
        if (v->u.s.n == 0 || v->u.s.n >= sizeof(buf)) {
            *out = d;
            return AL_OK;
        }
        memcpy(buf, v->u.s.p, v->u.s.n);
        buf[v->u.s.n] = 0;
        char *e;
        long long x = strtoll(buf, &e, 10);
        while (*e == ' ')
            e++;
        if (*e == 0) {
            *out = tv_int(x);
            return AL_OK;
        }
        double f = strtod(buf, &e);
        *out = (*e == 0 && isfinite(f) && fabs(f) < 9.2e18) ? tv_int((int64_t)f) : d;
        return AL_OK;
    }
    default: *out = d; return AL_OK;
    }
}

/* The filters, one function each, all of this signature; name/n is the
 * name the template used (one function may serve several: upper/lower). */
#define FILTER(fn)                                                                                   \
    static al_status fn(tmpl_ctx *c, const tnode *at, const char *name, size_t n, const tv *self,   \
                        const tmpl_args *args, tv *out)

/* no autoescaping in chat templates: escape only where asked */
FILTER(filter_safe)
{
    *out = *self;
    return AL_OK;
}

FILTER(filter_escape)
{
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        if (ch == '&')
            tb_puts(&b, "&amp;");
        else if (ch == '<')
            tb_puts(&b, "&lt;");
        else if (ch == '>')
            tb_puts(&b, "&gt;");
        else if (ch == '"')
            tb_puts(&b, "&#34;");
        else if (ch == '\'')
            tb_puts(&b, "&#39;");
        else
            tb_putc(&b, ch);
    }
    if (b.over)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "escape() result exceeds the output limit");
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

FILTER(filter_trim)
{
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    const tv *chars = tmpl_arg(args, 0, "chars");
    if (chars && chars->type == TV_NONE)
        chars = NULL;
    if (chars && (st = str_arg(c, at, chars, "trim(): chars")))
        return st;
    *out = do_strip(&s, chars, 3);
    return AL_OK;
}

FILTER(filter_length)
{
    switch (self->type) {
    case TV_STR: *out = tv_int((int64_t)tmpl_utf8_len(self->u.s.p, self->u.s.n)); return AL_OK;
    case TV_LIST: *out = tv_int((int64_t)self->u.list->n); return AL_OK;
    case TV_DICT: *out = tv_int((int64_t)self->u.dict->n); return AL_OK;
    case TV_UNDEF: *out = tv_int(0); return AL_OK;
    default:
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "object of type '%s' has no len()", tv_type_name(self));
    }
}

FILTER(filter_case)
{
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    return do_case(c, at, &s, NAME_IS("lower") ? 0 : NAME_IS("upper") ? 1 : NAME_IS("capitalize") ? 2 : 3, out);
}

FILTER(filter_tojson)
{
    const tv *ind = tmpl_arg(args, 0, "indent");
    int indent = -1;
    if (ind && ind->type == TV_INT) {
        if (ind->u.i < 0 || ind->u.i > 64)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "tojson: indent must be 0..64");
        indent = (int)ind->u.i;
    } else if (ind && ind->type != TV_NONE) {
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "tojson: indent must be an integer");
    }
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    const char *why = NULL;
    if (!tv_json_append(&b, self, indent, 0, &why)) {
        if (why)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "tojson: %s", why);
        return tmpl_fail(c, at, AL_ERR_LIMIT, "tojson result exceeds the output limit");
    }
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

FILTER(filter_string)
{
    return need_str(c, at, self, out);
}

FILTER(filter_int)
{
    return to_int(c, at, self, tmpl_arg(args, 0, "default"), out);
}

FILTER(filter_float)
{
    const tv *d = tmpl_arg(args, 0, "default");
    double f;
    if (self->type == TV_FLOAT)
        f = self->u.f;
    else if (self->type == TV_INT)
        f = (double)self->u.i;
    else if (self->type == TV_BOOL)
        f = self->u.b;
    else if (self->type == TV_STR && self->u.s.n && self->u.s.n < 64) {
        char buf[64], *e;
        memcpy(buf, self->u.s.p, self->u.s.n);
        buf[self->u.s.n] = 0;
        f = strtod(buf, &e);
        if (*e) {
            *out = d ? *d : tv_float(0);
            return AL_OK;
        }
    } else {
        *out = d ? *d : tv_float(0);
        return AL_OK;
    }
    *out = tv_float(f);
    return AL_OK;
}

FILTER(filter_items)
{
    al_status st;
    if (self->type == TV_UNDEF) {
        tv_list *l;
        if ((st = mk_list(c, at, &l)))
            return st;
        *out = list_val(l);
        return AL_OK;
    }
    if (self->type != TV_DICT)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "items: a mapping is required, not %s", tv_type_name(self));
    bool found;
    tmpl_args none = {0};
    return tmpl_method(c, at, self, "items", 5, &none, out, &found);
}

FILTER(filter_list)
{
    al_status st;
    tv_list *items;
    if ((st = tmpl_iterate(c, at, self, &items)))
        return st;
    tv_list *l = tv_list_new(c->arena, items->n);
    if (!l)
        return tmpl_nomem(c, at);
    if (items->n)
        memcpy(l->items, items->items, items->n * sizeof(tv));
    l->n = items->n;
    *out = list_val(l);
    return AL_OK;
}

FILTER(filter_default)
{
    const tv *dv = tmpl_arg(args, 0, "default_value");
    const tv *boolean = tmpl_arg(args, 1, "boolean");
    bool use = self->type == TV_UNDEF || (boolean && tv_truthy(boolean) && !tv_truthy(self));
    *out = use ? (dv ? *dv : tv_str("", 0)) : *self;
    return AL_OK;
}

FILTER(filter_first_last)
{
    al_status st;
    tv_list *items;
    if ((st = tmpl_iterate(c, at, self, &items)))
        return st;
    *out = items->n ? items->items[name[0] == 'f' ? 0 : items->n - 1] : tv_undef();
    return AL_OK;
}

FILTER(filter_join)
{
    return do_join(c, at, self, args, out);
}

FILTER(filter_replace)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    const tv *a1 = tmpl_arg(args, 1, NULL);
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    return do_replace(c, at, &s, a0, a1, tmpl_arg(args, 2, "count"), out);
}

FILTER(filter_select)
{
    return do_select(c, at, self, args, false, true, out);
}

FILTER(filter_reject)
{
    return do_select(c, at, self, args, false, false, out);
}

FILTER(filter_selectattr)
{
    return do_select(c, at, self, args, true, true, out);
}

FILTER(filter_rejectattr)
{
    return do_select(c, at, self, args, true, false, out);
}

FILTER(filter_map)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    al_status st;
    tv_list *items, *l;
    if ((st = tmpl_iterate(c, at, self, &items)) || (st = mk_list(c, at, &l)))
        return st;
    const tv *attr = tmpl_arg(args, 99, "attribute");
    const tv *dflt = tmpl_arg(args, 99, "default");
    tmpl_args fargs = {0};
    if (!attr) {
        if (!a0 || a0->type != TV_STR)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "map needs a filter name or attribute=");
        for (size_t k = 1; k < args->npos; k++)
            fargs.pos[fargs.npos++] = args->pos[k];
        for (size_t k = 0; k < args->nkw; k++) {
            fargs.kw[fargs.nkw] = args->kw[k];
            fargs.kwn[fargs.nkw] = args->kwn[k];
            fargs.kwv[fargs.nkw++] = args->kwv[k];
        }
    }
    for (size_t i = 0; i < items->n; i++) {
        tv v;
        if (attr) {
            if ((st = get_path(c, at, &items->items[i], attr, &v)))
                return st;
            if (v.type == TV_UNDEF && dflt)
                v = *dflt;
        } else if ((st = tmpl_filter(c, at, a0->u.s.p, a0->u.s.n, &items->items[i], &fargs, &v))) {
            return st;
        }
        if (!tv_list_push(c->arena, l, v))
            return tmpl_nomem(c, at);
    }
    *out = list_val(l);
    return AL_OK;
}

FILTER(filter_indent)
{
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    return do_indent(c, at, &s, args, out);
}

FILTER(filter_reverse)
{
    if (self->type == TV_STR) {
        tmpl_buf b = {.a = c->arena};
        size_t e = self->u.s.n;
        while (e > 0) {
            size_t st0 = e - 1;
            while (st0 > 0 && ((unsigned char)self->u.s.p[st0] & 0xC0) == 0x80)
                st0--;
            tb_put(&b, self->u.s.p + st0, e - st0);
            e = st0;
        }
        if (b.over)
            return tmpl_nomem(c, at);
        *out = tv_str(b.p ? b.p : "", b.n);
        return AL_OK;
    }
    al_status st;
    tv_list *items, *l;
    if ((st = tmpl_iterate(c, at, self, &items)) || (st = mk_list(c, at, &l)))
        return st;
    for (size_t i = 0; i < items->n; i++)
        if (!tv_list_push(c->arena, l, items->items[items->n - 1 - i]))
            return tmpl_nomem(c, at);
    *out = list_val(l);
    return AL_OK;
}

FILTER(filter_unique)
{
    al_status st;
    tv_list *items, *l;
    if ((st = tmpl_iterate(c, at, self, &items)) || (st = mk_list(c, at, &l)))
        return st;
    for (size_t i = 0; i < items->n; i++) {
        bool seen = false;
        for (size_t k = 0; k < l->n && !seen; k++)
            seen = tv_equal(&l->items[k], &items->items[i], 0);
        if ((c->steps += l->n / 16) > c->lim.max_steps)
            return tmpl_fail(c, at, AL_ERR_LIMIT, "step limit of %llu exceeded",
                             (unsigned long long)c->lim.max_steps);
        if (!seen && !tv_list_push(c->arena, l, items->items[i]))
            return tmpl_nomem(c, at);
    }
    *out = list_val(l);
    return AL_OK;
}

FILTER(filter_sort)
{
    al_status st;
    bool dsort = name[0] == 'd';
    tv_list *items;
    tv src = *self;
    if (dsort) {
        if (self->type != TV_DICT)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "dictsort needs a mapping");
        tmpl_args none = {0};
        bool found;
        if ((st = tmpl_method(c, at, self, "items", 5, &none, &src, &found)))
            return st;
    }
    if ((st = tmpl_iterate(c, at, &src, &items)))
        return st;
    const tv *rev = tmpl_arg(args, 0, "reverse");
    const tv *cs = tmpl_arg(args, 1, "case_sensitive");
    const tv *attr = dsort ? NULL : tmpl_arg(args, 2, "attribute");
    tv_list *l = tv_list_new(c->arena, items->n);
    tv *keys = tmpl_alloc_n(c->arena, items->n ? items->n : 1, sizeof(tv));
    if (!l || !keys)
        return tmpl_nomem(c, at);
    for (size_t i = 0; i < items->n; i++) {
        l->items[i] = items->items[i];
        tv k = items->items[i];
        if (dsort)
            k = k.u.list->items[0];
        else if (attr && (st = get_path(c, at, &items->items[i], attr, &k)))
            return st;
        if (k.type == TV_STR && !(cs && tv_truthy(cs)) && (st = do_case(c, at, &k, 0, &k)))
            return st;
        keys[i] = k;
    }
    l->n = items->n;
    if ((st = sort_values(c, at, l->items, l->n, keys, rev && tv_truthy(rev))))
        return st;
    *out = list_val(l);
    return AL_OK;
}

FILTER(filter_abs)
{
    if (self->type == TV_INT) {
        if (self->u.i == INT64_MIN)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
        *out = tv_int(self->u.i < 0 ? -self->u.i : self->u.i);
    } else if (self->type == TV_FLOAT)
        *out = tv_float(fabs(self->u.f));
    else if (self->type == TV_BOOL)
        *out = tv_int(self->u.b);
    else
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "bad operand type for abs(): '%s'", tv_type_name(self));
    return AL_OK;
}

FILTER(filter_round)
{
    const tv *prec = tmpl_arg(args, 0, "precision");
    const tv *method = tmpl_arg(args, 1, "method");
    double f;
    if (self->type == TV_FLOAT)
        f = self->u.f;
    else if (self->type == TV_INT)
        f = (double)self->u.i;
    else if (self->type == TV_BOOL)
        f = self->u.b;
    else
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "round: a number is required, not %s", tv_type_name(self));
    int64_t pr = prec && prec->type == TV_INT ? prec->u.i : 0;
    if (pr < -20 || pr > 20)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "round: precision out of range");
    double m = pow(10.0, (double)pr), x = f * m, r;
    const char *meth = method && method->type == TV_STR ? method->u.s.p : "common";
    if (!strncmp(meth, "ceil", 4))
        r = ceil(x);
    else if (!strncmp(meth, "floor", 5))
        r = floor(x);
    else /* common: Python's round(), half to even */
        r = nearbyint(x);
    *out = tv_float(r / m);
    return AL_OK;
}

FILTER(filter_sum)
{
    al_status st;
    tv_list *items;
    if ((st = tmpl_iterate(c, at, self, &items)))
        return st;
    tv acc = tmpl_arg(args, 1, "start") ? *tmpl_arg(args, 1, "start") : tv_int(0);
    const tv *attr = tmpl_arg(args, 0, "attribute");
    for (size_t i = 0; i < items->n; i++) {
        tv v = items->items[i];
        if (attr && (st = get_path(c, at, &items->items[i], attr, &v)))
            return st;
        double fa, fb;
        if (acc.type == TV_INT && v.type == TV_INT) {
            if (__builtin_add_overflow(acc.u.i, v.u.i, &acc.u.i))
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
        } else {
            fa = acc.type == TV_FLOAT ? acc.u.f : acc.type == TV_INT ? (double)acc.u.i : NAN;
            fb = v.type == TV_FLOAT ? v.u.f : v.type == TV_INT ? (double)v.u.i : NAN;
            if (isnan(fa) || isnan(fb))
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "sum: numbers are required");
            acc = tv_float(fa + fb);
        }
    }
    *out = acc;
    return AL_OK;
}

FILTER(filter_min_max)
{
    al_status st;
    tv_list *items;
    if ((st = tmpl_iterate(c, at, self, &items)))
        return st;
    if (items->n == 0) {
        *out = tv_undef();
        return AL_OK;
    }
    tv best = items->items[0];
    for (size_t i = 1; i < items->n; i++) {
        int cmp;
        if ((st = tmpl_compare(c, at, &items->items[i], &best, &cmp)))
            return st;
        if (name[1] == 'i' ? cmp < 0 : cmp > 0)
            best = items->items[i];
    }
    *out = best;
    return AL_OK;
}

FILTER(filter_wordcount)
{
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    tv l;
    if ((st = do_split(c, at, &s, NULL, NULL, &l)))
        return st;
    *out = tv_int((int64_t)l.u.list->n);
    return AL_OK;
}

FILTER(filter_center)
{
    const tv *a0 = tmpl_arg(args, 0, NULL);
    al_status st;
    tv s;
    if ((st = need_str(c, at, self, &s)))
        return st;
    int64_t w = a0 && a0->type == TV_INT ? a0->u.i : 80;
    int64_t len = (int64_t)tmpl_utf8_len(s.u.s.p, s.u.s.n);
    if (w > 100000)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "center width too large");
    tmpl_buf b = {.a = c->arena};
    int64_t pad = w > len ? w - len : 0, left = pad / 2 + (pad & w & 1);
    for (int64_t i = 0; i < left; i++)
        tb_putc(&b, ' ');
    tb_put(&b, s.u.s.p, s.u.s.n);
    for (int64_t i = 0; i < pad - left; i++)
        tb_putc(&b, ' ');
    if (b.over)
        return tmpl_nomem(c, at);
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

#undef FILTER

/* Filter names (Jinja2's, as chat templates use them) to functions. */
static const struct {
    const char *name;
    al_status (*fn)(tmpl_ctx *c, const tnode *at, const char *name, size_t n, const tv *self,
                    const tmpl_args *args, tv *out);
} k_filters[] = {
    {"safe", filter_safe},
    {"e", filter_escape},
    {"escape", filter_escape},
    {"forceescape", filter_escape},
    {"trim", filter_trim},
    {"length", filter_length},
    {"count", filter_length},
    {"upper", filter_case},
    {"lower", filter_case},
    {"capitalize", filter_case},
    {"title", filter_case},
    {"tojson", filter_tojson},
    {"string", filter_string},
    {"int", filter_int},
    {"float", filter_float},
    {"items", filter_items},
    {"list", filter_list},
    {"default", filter_default},
    {"d", filter_default},
    {"first", filter_first_last},
    {"last", filter_first_last},
    {"join", filter_join},
    {"replace", filter_replace},
    {"select", filter_select},
    {"reject", filter_reject},
    {"selectattr", filter_selectattr},
    {"rejectattr", filter_rejectattr},
    {"map", filter_map},
    {"indent", filter_indent},
    {"unique", filter_unique},
    {"reverse", filter_reverse},
    {"sort", filter_sort},
    {"dictsort", filter_sort},
    {"abs", filter_abs},
    {"round", filter_round},
    {"min", filter_min_max},
    {"max", filter_min_max},
    {"sum", filter_sum},
    {"wordcount", filter_wordcount},
    {"center", filter_center},
};

al_status tmpl_filter(tmpl_ctx *c, const tnode *at, const char *name, size_t n, const tv *self,
                      const tmpl_args *args, tv *out)
{
    for (size_t i = 0; i < sizeof(k_filters) / sizeof(k_filters[0]); i++)
        if (strlen(k_filters[i].name) == n && !memcmp(k_filters[i].name, name, n))
            return k_filters[i].fn(c, at, name, n, self, args, out);
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "no filter named '%.*s'", (int)(n > 40 ? 40 : n), name);
}

/* stable merge sort of items by keys (same order) */
static al_status sort_values(tmpl_ctx *c, const tnode *at, tv *items, size_t n, const tv *keys, bool reverse)
{
    if (n < 2)
        return AL_OK;
    size_t *idx = tmpl_alloc_n(c->arena, n, sizeof(size_t));
    size_t *tmp = tmpl_alloc_n(c->arena, n, sizeof(size_t));
    tv *copy = tmpl_alloc_n(c->arena, n, sizeof(tv));
    if (!idx || !tmp || !copy)
        return tmpl_nomem(c, at);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int cmp;
                al_status st = tmpl_compare(c, at, &keys[idx[j]], &keys[idx[i]], &cmp);
                if (st)
                    return st;
                if (reverse)
                    cmp = -cmp;
                if (++c->steps > c->lim.max_steps)
                    return tmpl_fail(c, at, AL_ERR_LIMIT, "step limit of %llu exceeded",
                                     (unsigned long long)c->lim.max_steps);
                tmp[k++] = cmp < 0 ? idx[j++] : idx[i++];
            }
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, n * sizeof(size_t));
    }
    for (size_t i = 0; i < n; i++)
        copy[i] = items[idx[i]];
    memcpy(items, copy, n * sizeof(tv));
    return AL_OK;
}
