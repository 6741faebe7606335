/*
 * tmpl_eval.c - walks the AST: statements write to the context's output
 * buffer, expressions produce values. Every node evaluated costs a step;
 * macro calls count against the depth limit; the output buffer and the
 * arena carry the size and memory limits. Scoping follows Jinja2: a for
 * iteration and a macro call get their own frame (a `set` inside does not
 * leak out), an if does not.
 */
#include "template/tmpl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"

typedef struct tmpl_var {
    const char *name;
    size_t n;
    tv v;
    struct tmpl_var *next;
} tmpl_var;

struct tmpl_frame {
    tmpl_frame *parent;
    tmpl_var *vars;
    tmpl_var *spare; /* nodes of a loop frame's previous iteration, reused */
    int loop_depth;  /* > 0 inside a for body (break/continue allowed) */
    bool captured;   /* a macro closes over this frame: never reuse it */
};

struct tmpl_macro {
    const char *name;
    size_t name_n;
    const tnode *params; /* E_NAME list, defaults in ->a */
    const tnode *body;
    tmpl_frame *closure;
};

/* A loop over a list, or over range() without building the list (so that
 * a runaway nested range hits the step limit, not the memory limit). */
struct tmpl_loop {
    tv_list *items;          /* NULL for a range */
    int64_t r_start, r_step; /* range: item i is r_start + i * r_step */
    size_t len;
    size_t index0;
    int depth;
};

static tv loop_item(const tmpl_loop *L, size_t i)
{
    return L->items ? L->items->items[i] : tv_int(L->r_start + (int64_t)i * L->r_step);
}

al_status tmpl_fail(tmpl_ctx *c, const tnode *at, al_status s, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (at)
        return al_err(c->err, s, "chat template line %u: %s", at->line, msg);
    return al_err(c->err, s, "chat template: %s", msg);
}

al_status tmpl_nomem(tmpl_ctx *c, const tnode *at)
{
    return tmpl_fail(c, at, AL_ERR_LIMIT, "memory limit of %zu bytes exceeded", c->lim.max_memory_bytes);
}

static al_status buf_fail(tmpl_ctx *c, const tnode *at, const tmpl_buf *b)
{
    if (b->at_limit)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "output limit of %zu bytes exceeded", b->limit);
    return tmpl_nomem(c, at);
}

/* ------------------------------------------------------------------ frames */

tmpl_frame *tmpl_frame_new(tmpl_ctx *c, tmpl_frame *parent)
{
    tmpl_frame *f = tmpl_alloc(c->arena, sizeof(*f));
    if (f) {
        f->parent = parent;
        f->loop_depth = 0;
    }
    return f;
}

bool tmpl_frame_set(tmpl_ctx *c, tmpl_frame *f, const char *name, size_t n, tv v)
{
    for (tmpl_var *x = f->vars; x; x = x->next) {
        if (x->n == n && !memcmp(x->name, name, n)) {
            x->v = v;
            return true;
        }
    }
    tmpl_var *x = f->spare;
    if (x)
        f->spare = x->next;
    else if (!(x = tmpl_alloc(c->arena, sizeof(*x))))
        return false;
    x->name = name;
    x->n = n;
    x->v = v;
    x->next = f->vars;
    f->vars = x;
    return true;
}

static tv lookup(const tmpl_frame *f, const char *name, size_t n)
{
    for (; f; f = f->parent)
        for (const tmpl_var *x = f->vars; x; x = x->next)
            if (x->n == n && !memcmp(x->name, name, n))
                return x->v;
    tv u = tv_undef();
    u.u.s.p = name;
    u.u.s.n = n;
    return u;
}

/* ------------------------------------------------------------------ helpers */

static al_status step(tmpl_ctx *c, const tnode *at)
{
    if (++c->steps > c->lim.max_steps)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "step limit of %llu exceeded (a runaway loop?)",
                         (unsigned long long)c->lim.max_steps);
    return AL_OK;
}

static al_status undefined_err(tmpl_ctx *c, const tnode *at, const tv *v)
{
    if (v->u.s.n)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "'%.*s' is undefined", (int)(v->u.s.n > 100 ? 100 : v->u.s.n),
                         v->u.s.p);
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "a value is undefined");
}

const tv *tmpl_arg(const tmpl_args *args, size_t pos, const char *kw)
{
    if (kw) {
        size_t kn = strlen(kw);
        for (size_t i = 0; i < args->nkw; i++)
            if (args->kwn[i] == kn && !memcmp(args->kw[i], kw, kn))
                return &args->kwv[i];
    }
    if (pos < args->npos)
        return &args->pos[pos];
    return NULL;
}

al_status tmpl_to_str(tmpl_ctx *c, const tnode *at, const tv *v, tv *out)
{
    if (v->type == TV_STR) {
        *out = *v;
        return AL_OK;
    }
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    if (!tv_str_append(&b, v, 0))
        return buf_fail(c, at, &b);
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

al_status tmpl_iterate(tmpl_ctx *c, const tnode *at, const tv *v, tv_list **out)
{
    switch (v->type) {
    case TV_LIST: *out = v->u.list; return AL_OK;
    case TV_UNDEF: *out = tv_list_new(c->arena, 0); return *out ? AL_OK : tmpl_nomem(c, at);
    case TV_DICT: {
        const tv_dict *d = v->u.dict;
        tv_list *l = tv_list_new(c->arena, d->n);
        if (!l)
            return tmpl_nomem(c, at);
        for (size_t i = 0; i < d->n; i++)
            l->items[l->n++] = tv_str(d->kv[i].k, d->kv[i].kn);
        *out = l;
        return AL_OK;
    }
    case TV_STR: {
        const char *p = v->u.s.p;
        size_t n = v->u.s.n;
        tv_list *l = tv_list_new(c->arena, tmpl_utf8_len(p, n));
        if (!l)
            return tmpl_nomem(c, at);
        size_t i = 0;
        while (i < n) {
            size_t j = i + 1;
            while (j < n && ((unsigned char)p[j] & 0xC0) == 0x80)
                j++;
            l->items[l->n++] = tv_str(p + i, j - i);
            i = j;
        }
        *out = l;
        return AL_OK;
    }
    default:
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "'%s' object is not iterable", tv_type_name(v));
    }
}

static tv loop_attr(const tmpl_loop *L, const char *name, size_t n, bool *ok)
{
    size_t len = L->len, i = L->index0;
    *ok = true;
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
    if (IS("index"))
        return tv_int((int64_t)i + 1);
    if (IS("index0"))
        return tv_int((int64_t)i);
    if (IS("revindex"))
        return tv_int((int64_t)(len - i));
    if (IS("revindex0"))
        return tv_int((int64_t)(len - i - 1));
    if (IS("first"))
        return tv_bool(i == 0);
    if (IS("last"))
        return tv_bool(i + 1 == len);
    if (IS("length"))
        return tv_int((int64_t)len);
    if (IS("depth"))
        return tv_int(L->depth);
    if (IS("depth0"))
        return tv_int(L->depth - 1);
    if (IS("previtem"))
        return i > 0 ? loop_item(L, i - 1) : tv_undef();
    if (IS("nextitem"))
        return i + 1 < len ? loop_item(L, i + 1) : tv_undef();
#undef IS
    *ok = false;
    return tv_undef();
}

al_status tmpl_getattr(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n, tv *out)
{
    (void)c;
    (void)at;
    tv u = tv_undef();
    u.u.s.p = name;
    u.u.s.n = n;
    if (obj->type == TV_DICT) {
        tv *v = tv_dict_get(obj->u.dict, name, n);
        *out = v ? *v : u;
        return AL_OK;
    }
    if (obj->type == TV_LOOP) {
        bool ok;
        tv v = loop_attr(obj->u.loop, name, n, &ok);
        *out = ok ? v : u;
        return AL_OK;
    }
    /* Attributes of undefined (and of anything without them) are undefined:
     * `message.tool_calls is defined` must work on any message. */
    *out = u;
    return AL_OK;
}

static bool idx_norm(int64_t i, size_t len, size_t *out)
{
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return false;
    *out = (size_t)i;
    return true;
}

al_status tmpl_getitem(tmpl_ctx *c, const tnode *at, const tv *obj, const tv *key, tv *out)
{
    *out = tv_undef();
    if (key->type == TV_STR)
        return tmpl_getattr(c, at, obj, key->u.s.p, key->u.s.n, out);
    if (key->type != TV_INT && key->type != TV_BOOL)
        return AL_OK;
    int64_t i = key->type == TV_INT ? key->u.i : key->u.b;
    size_t k;
    if (obj->type == TV_LIST) {
        if (idx_norm(i, obj->u.list->n, &k))
            *out = obj->u.list->items[k];
    } else if (obj->type == TV_STR) {
        size_t len = tmpl_utf8_len(obj->u.s.p, obj->u.s.n);
        if (idx_norm(i, len, &k)) {
            size_t s = tmpl_utf8_offset(obj->u.s.p, obj->u.s.n, k);
            size_t e = tmpl_utf8_offset(obj->u.s.p, obj->u.s.n, k + 1);
            *out = tv_str(obj->u.s.p + s, e - s);
        }
    }
    return AL_OK;
}

/* Python slice indices for len with step. */
static void slice_indices(int64_t len, const tv *s0, const tv *s1, int64_t step, int64_t *start, int64_t *stop)
{
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    if (!s0 || s0->type == TV_NONE)
        *start = step < 0 ? hi : lo;
    else {
        int64_t v = s0->u.i;
        if (v < 0) {
            v += len;
            if (v < lo)
                v = lo;
        } else if (v > hi)
            v = hi;
        *start = v;
    }
    if (!s1 || s1->type == TV_NONE)
        *stop = step < 0 ? lo : hi;
    else {
        int64_t v = s1->u.i;
        if (v < 0) {
            v += len;
            if (v < lo)
                v = lo;
        } else if (v > hi)
            v = hi;
        *stop = v;
    }
}

static al_status do_slice(tmpl_ctx *c, const tnode *at, const tv *obj, const tv *s0, const tv *s1, const tv *s2,
                          tv *out)
{
    int64_t stepv = 1;
    const tv *parts[3] = {s0, s1, s2};
    for (int k = 0; k < 3; k++)
        if (parts[k] && parts[k]->type != TV_INT && parts[k]->type != TV_NONE)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "slice indices must be integers or none");
    if (s2 && s2->type == TV_INT)
        stepv = s2->u.i;
    if (stepv == 0)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "slice step cannot be zero");
    if (stepv == INT64_MIN)
        stepv = -INT64_MAX;
    if (obj->type == TV_LIST || obj->type == TV_STR) {
        bool is_str = obj->type == TV_STR;
        int64_t len = is_str ? (int64_t)tmpl_utf8_len(obj->u.s.p, obj->u.s.n) : (int64_t)obj->u.list->n;
        int64_t start, stop;
        slice_indices(len, s0, s1, stepv, &start, &stop);
        if (is_str) {
            const char *p = obj->u.s.p;
            size_t n = obj->u.s.n;
            if (stepv == 1) {
                if (stop < start)
                    stop = start;
                size_t bs = tmpl_utf8_offset(p, n, (size_t)start), be = tmpl_utf8_offset(p, n, (size_t)stop);
                *out = tv_str(p + bs, be - bs);
                return AL_OK;
            }
            tmpl_buf b = {.a = c->arena};
            for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
                size_t bs = tmpl_utf8_offset(p, n, (size_t)i), be = tmpl_utf8_offset(p, n, (size_t)i + 1);
                if (!tb_put(&b, p + bs, be - bs))
                    return tmpl_nomem(c, at);
                if ((c->steps += 1) > c->lim.max_steps)
                    return step(c, at);
            }
            *out = tv_str(b.p ? b.p : "", b.n);
            return AL_OK;
        }
        tv_list *l = tv_list_new(c->arena, 0);
        if (!l)
            return tmpl_nomem(c, at);
        for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv)
            if (!tv_list_push(c->arena, l, obj->u.list->items[i]))
                return tmpl_nomem(c, at);
        out->type = TV_LIST;
        out->u.list = l;
        return AL_OK;
    }
    if (obj->type == TV_UNDEF) {
        *out = *obj;
        return AL_OK;
    }
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "'%s' object is not subscriptable", tv_type_name(obj));
}

/* ------------------------------------------------------------------ operators */

al_status tmpl_compare(tmpl_ctx *c, const tnode *at, const tv *a, const tv *b, int *cmp)
{
    bool an = a->type == TV_INT || a->type == TV_FLOAT || a->type == TV_BOOL;
    bool bn = b->type == TV_INT || b->type == TV_FLOAT || b->type == TV_BOOL;
    if (an && bn) {
        if (a->type != TV_FLOAT && b->type != TV_FLOAT) {
            int64_t x = a->type == TV_INT ? a->u.i : a->u.b, y = b->type == TV_INT ? b->u.i : b->u.b;
            *cmp = x < y ? -1 : x > y;
        } else {
            double x = a->type == TV_FLOAT ? a->u.f : a->type == TV_INT ? (double)a->u.i : a->u.b;
            double y = b->type == TV_FLOAT ? b->u.f : b->type == TV_INT ? (double)b->u.i : b->u.b;
            *cmp = x < y ? -1 : x > y;
        }
        return AL_OK;
    }
    if (a->type == TV_STR && b->type == TV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int r = memcmp(a->u.s.p, b->u.s.p, n);
        *cmp = r ? (r < 0 ? -1 : 1) : (a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n);
        return AL_OK;
    }
    if (a->type == TV_LIST && b->type == TV_LIST) {
        size_t n = a->u.list->n < b->u.list->n ? a->u.list->n : b->u.list->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_equal(&a->u.list->items[i], &b->u.list->items[i], 0))
                continue;
            if (++c->depth > c->lim.max_depth * 4) {
                c->depth--;
                return tmpl_fail(c, at, AL_ERR_LIMIT, "comparison nested too deeply");
            }
            al_status st = tmpl_compare(c, at, &a->u.list->items[i], &b->u.list->items[i], cmp);
            c->depth--;
            return st;
        }
        *cmp = a->u.list->n < b->u.list->n ? -1 : a->u.list->n > b->u.list->n;
        return AL_OK;
    }
    if (a->type == TV_UNDEF)
        return undefined_err(c, at, a);
    if (b->type == TV_UNDEF)
        return undefined_err(c, at, b);
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "cannot compare '%s' with '%s'", tv_type_name(a), tv_type_name(b));
}

static al_status contains(tmpl_ctx *c, const tnode *at, const tv *needle, const tv *hay, bool *out)
{
    *out = false;
    switch (hay->type) {
    case TV_STR:
        if (needle->type != TV_STR)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "'in <string>' requires string as left operand, not %s",
                             tv_type_name(needle));
        if (needle->u.s.n == 0)
            *out = true;
        else
            *out = memmem(hay->u.s.p, hay->u.s.n, needle->u.s.p, needle->u.s.n) != NULL;
        return AL_OK;
    case TV_LIST:
        for (size_t i = 0; i < hay->u.list->n; i++)
            if (tv_equal(needle, &hay->u.list->items[i], 0)) {
                *out = true;
                break;
            }
        return AL_OK;
    case TV_DICT:
        *out = needle->type == TV_STR && tv_dict_get(hay->u.dict, needle->u.s.p, needle->u.s.n);
        return AL_OK;
    case TV_UNDEF: return AL_OK;
    default:
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "argument of type '%s' is not iterable", tv_type_name(hay));
    }
}

static al_status type_err(tmpl_ctx *c, const tnode *at, const char *op, const tv *a, const tv *b)
{
    if (a->type == TV_UNDEF)
        return undefined_err(c, at, a);
    if (b->type == TV_UNDEF)
        return undefined_err(c, at, b);
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "unsupported operand types for %s: '%s' and '%s'", op,
                     tv_type_name(a), tv_type_name(b));
}

static bool as_int(const tv *v, int64_t *out)
{
    if (v->type == TV_INT)
        *out = v->u.i;
    else if (v->type == TV_BOOL)
        *out = v->u.b;
    else
        return false;
    return true;
}

static bool as_num(const tv *v, double *out)
{
    if (v->type == TV_FLOAT)
        *out = v->u.f;
    else if (v->type == TV_INT)
        *out = (double)v->u.i;
    else if (v->type == TV_BOOL)
        *out = v->u.b;
    else
        return false;
    return true;
}

static al_status repeat(tmpl_ctx *c, const tnode *at, const tv *seq, int64_t times, tv *out)
{
    if (times < 0)
        times = 0;
    if (seq->type == TV_STR) {
        if (seq->u.s.n && (uint64_t)times > c->lim.max_output_bytes / seq->u.s.n)
            return tmpl_fail(c, at, AL_ERR_LIMIT, "string repetition exceeds the output limit");
        size_t total = seq->u.s.n * (size_t)times;
        char *p = tmpl_alloc(c->arena, total + 1);
        if (!p)
            return tmpl_nomem(c, at);
        for (int64_t i = 0; i < times; i++)
            memcpy(p + (size_t)i * seq->u.s.n, seq->u.s.p, seq->u.s.n);
        *out = tv_str(p, total);
        return AL_OK;
    }
    const tv_list *l = seq->u.list;
    if (l->n && (uint64_t)times > (c->lim.max_memory_bytes / sizeof(tv)) / l->n)
        return tmpl_nomem(c, at);
    tv_list *r = tv_list_new(c->arena, (size_t)times * l->n);
    if (!r)
        return tmpl_nomem(c, at);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < l->n; k++)
            r->items[r->n++] = l->items[k];
    out->type = TV_LIST;
    out->u.list = r;
    return AL_OK;
}

/* "%s" % x: printf-style formatting, %s %d %i %r %% only. */
static al_status percent_format(tmpl_ctx *c, const tnode *at, const tv *fmt, const tv *arg, tv *out)
{
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    size_t ai = 0;
    const tv_list *tup = (arg->type == TV_LIST && arg->u.list->tuple) ? arg->u.list : NULL;
    const char *p = fmt->u.s.p;
    size_t n = fmt->u.s.n;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            tb_putc(&b, p[i]);
            continue;
        }
        if (++i >= n)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "incomplete format");
        char k = p[i];
        if (k == '%') {
            tb_putc(&b, '%');
            continue;
        }
        const tv *v;
        if (tup) {
            if (ai >= tup->n)
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "not enough arguments for format string");
            v = &tup->items[ai++];
        } else {
            if (ai++ > 0)
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "not enough arguments for format string");
            v = arg;
        }
        if (k == 's')
            tv_str_append(&b, v, 0);
        else if (k == 'r')
            tv_repr_append(&b, v, 0);
        else if (k == 'd' || k == 'i') {
            double d;
            if (!as_num(v, &d))
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "%%d format: a number is required, not %s",
                                 tv_type_name(v));
            tv iv = tv_int(v->type == TV_FLOAT ? (int64_t)d : (v->type == TV_INT ? v->u.i : v->u.b));
            tv_str_append(&b, &iv, 0);
        } else
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "unsupported format character '%c'", k);
    }
    if (b.over)
        return buf_fail(c, at, &b);
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static al_status binop(tmpl_ctx *c, const tnode *at, tn_op op, const tv *a, const tv *b, tv *out)
{
    int64_t x = 0, y = 0;
    double fx = 0, fy = 0;
    bool ints = as_int(a, &x) && as_int(b, &y);
    bool nums = as_num(a, &fx) && as_num(b, &fy);
    switch (op) {
    case OP_ADD:
        if (ints) {
            int64_t r;
            if (__builtin_add_overflow(x, y, &r))
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
            *out = tv_int(r);
            return AL_OK;
        }
        if (nums) {
            *out = tv_float(fx + fy);
            return AL_OK;
        }
        if (a->type == TV_STR && b->type == TV_STR) {
            size_t n = a->u.s.n + b->u.s.n;
            if (n > c->lim.max_output_bytes)
                return tmpl_fail(c, at, AL_ERR_LIMIT, "string longer than the output limit");
            char *p = tmpl_alloc(c->arena, n + 1);
            if (!p)
                return tmpl_nomem(c, at);
            memcpy(p, a->u.s.p, a->u.s.n);
            memcpy(p + a->u.s.n, b->u.s.p, b->u.s.n);
            *out = tv_str(p, n);
            return AL_OK;
        }
        if (a->type == TV_LIST && b->type == TV_LIST) {
            tv_list *l = tv_list_new(c->arena, a->u.list->n + b->u.list->n);
            if (!l)
                return tmpl_nomem(c, at);
            for (size_t i = 0; i < a->u.list->n; i++)
                l->items[l->n++] = a->u.list->items[i];
            for (size_t i = 0; i < b->u.list->n; i++)
                l->items[l->n++] = b->u.list->items[i];
            out->type = TV_LIST;
            out->u.list = l;
            return AL_OK;
        }
        return type_err(c, at, "+", a, b);
    case OP_SUB:
        if (ints) {
            int64_t r;
            if (__builtin_sub_overflow(x, y, &r))
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
            *out = tv_int(r);
            return AL_OK;
        }
        if (nums) {
            *out = tv_float(fx - fy);
            return AL_OK;
        }
        return type_err(c, at, "-", a, b);
    case OP_MUL:
        if (ints) {
            int64_t r;
            if (__builtin_mul_overflow(x, y, &r))
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
            *out = tv_int(r);
            return AL_OK;
        }
        if (nums) {
            *out = tv_float(fx * fy);
            return AL_OK;
        }
        if ((a->type == TV_STR || a->type == TV_LIST) && as_int(b, &y))
            return repeat(c, at, a, y, out);
        if ((b->type == TV_STR || b->type == TV_LIST) && as_int(a, &x))
            return repeat(c, at, b, x, out);
        return type_err(c, at, "*", a, b);
    case OP_DIV:
        if (!nums)
            return type_err(c, at, "/", a, b);
        if (fy == 0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "division by zero");
        *out = tv_float(fx / fy);
        return AL_OK;
    case OP_FLOORDIV:
    case OP_MOD:
        if (op == OP_MOD && a->type == TV_STR)
            return percent_format(c, at, a, b, out);
        if (!nums)
            return type_err(c, at, op == OP_MOD ? "%" : "//", a, b);
        if (ints) {
            if (y == 0)
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1)
                return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
            int64_t q = x / y, r = x % y;
            if (r != 0 && ((r < 0) != (y < 0))) {
                q--;
                r += y;
            }
            *out = tv_int(op == OP_MOD ? r : q);
            return AL_OK;
        }
        if (fy == 0)
            return tmpl_fail(c, at, AL_ERR_TEMPLATE, "float division or modulo by zero");
        {
            double r = fmod(fx, fy);
            if (r != 0 && ((r < 0) != (fy < 0)))
                r += fy;
            *out = tv_float(op == OP_MOD ? r : floor(fx / fy));
        }
        return AL_OK;
    case OP_POW:
        if (ints && y >= 0) {
            int64_t r = 1, base = x;
            int64_t e = y;
            while (e > 0) {
                if (e & 1) {
                    if (__builtin_mul_overflow(r, base, &r))
                        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
                }
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base))
                    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "integer overflow");
            }
            *out = tv_int(r);
            return AL_OK;
        }
        if (nums) {
            *out = tv_float(pow(fx, fy));
            return AL_OK;
        }
        return type_err(c, at, "**", a, b);
    case OP_CONCAT: {
        tmpl_buf bb = {.a = c->arena, .limit = c->lim.max_output_bytes};
        if (!tv_str_append(&bb, a, 0) || !tv_str_append(&bb, b, 0))
            return buf_fail(c, at, &bb);
        *out = tv_str(bb.p ? bb.p : "", bb.n);
        return AL_OK;
    }
    default: break;
    }
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "bad operator");
}

/* ------------------------------------------------------------------ expressions */

static al_status eval(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out);
static al_status eval_args(tmpl_ctx *c, tmpl_frame *f, const tnode *args, tmpl_args *out);
static al_status exec(tmpl_ctx *c, tmpl_frame *f, const tnode *body);

static al_status eval_args(tmpl_ctx *c, tmpl_frame *f, const tnode *args, tmpl_args *out)
{
    out->npos = out->nkw = 0;
    al_status st;
    for (const tnode *a = args; a; a = a->next) {
        if (a->kind == E_KWARG) {
            if (out->nkw >= 16)
                return tmpl_fail(c, a, AL_ERR_TEMPLATE, "too many keyword arguments");
            out->kw[out->nkw] = a->name;
            out->kwn[out->nkw] = a->name_n;
            if ((st = eval(c, f, a->a, &out->kwv[out->nkw])))
                return st;
            out->nkw++;
        } else {
            if (out->npos >= 16)
                return tmpl_fail(c, a, AL_ERR_TEMPLATE, "too many arguments");
            if ((st = eval(c, f, a, &out->pos[out->npos])))
                return st;
            out->npos++;
        }
    }
    return AL_OK;
}

static al_status call_macro(tmpl_ctx *c, const tnode *at, const tmpl_macro *m, const tmpl_args *args,
                            const tv *caller, tv *out)
{
    if (c->depth >= c->lim.max_depth)
        return tmpl_fail(c, at, AL_ERR_LIMIT, "recursion depth limit of %d exceeded in macro '%.*s'",
                         c->lim.max_depth, (int)(m->name_n > 64 ? 64 : m->name_n), m->name);
    tmpl_frame *mf = tmpl_frame_new(c, m->closure);
    if (!mf)
        return tmpl_nomem(c, at);
    size_t np = 0;
    al_status st;
    for (const tnode *p = m->params; p; p = p->next, np++) {
        const tv *v = NULL;
        if (np < args->npos)
            v = &args->pos[np];
        for (size_t k = 0; k < args->nkw; k++)
            if (args->kwn[k] == p->name_n && !memcmp(args->kw[k], p->name, p->name_n))
                v = &args->kwv[k];
        tv val;
        if (v)
            val = *v;
        else if (p->a) {
            if ((st = eval(c, mf, p->a, &val)))
                return st;
        } else {
            val = tv_undef();
            val.u.s.p = p->name;
            val.u.s.n = p->name_n;
        }
        if (!tmpl_frame_set(c, mf, p->name, p->name_n, val))
            return tmpl_nomem(c, at);
    }
    if (args->npos > np)
        return tmpl_fail(c, at, AL_ERR_TEMPLATE, "macro '%.*s' takes not more than %zu argument(s)",
                         (int)(m->name_n > 64 ? 64 : m->name_n), m->name, np);
    if (caller && !tmpl_frame_set(c, mf, "caller", 6, *caller))
        return tmpl_nomem(c, at);
    tmpl_buf *saved = c->out;
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    c->out = &b;
    c->depth++;
    int saved_ctl = c->ctl;
    st = exec(c, mf, m->body);
    c->ctl = saved_ctl;
    c->depth--;
    c->out = saved;
    if (st)
        return st;
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

al_status tmpl_call_value(tmpl_ctx *c, const tnode *at, const tv *fn, const tmpl_args *args, tv *out)
{
    if (fn->type == TV_FUNC)
        return fn->u.fn->fn(c, at, args, out);
    if (fn->type == TV_MACRO)
        return call_macro(c, at, fn->u.macro, args, NULL, out);
    if (fn->type == TV_UNDEF)
        return undefined_err(c, at, fn);
    return tmpl_fail(c, at, AL_ERR_TEMPLATE, "'%s' object is not callable", tv_type_name(fn));
}

static __attribute__((noinline)) al_status eval_call(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out)
{
    tmpl_args args;
    al_status st;
    const tnode *callee = n->a;
    if (callee->kind == E_ATTR) {
        tv obj;
        if ((st = eval(c, f, callee->a, &obj)) || (st = eval_args(c, f, n->args, &args)))
            return st;
        bool found = false;
        if ((st = tmpl_method(c, n, &obj, callee->name, callee->name_n, &args, out, &found)) || found)
            return st;
        tv fn;
        if ((st = tmpl_getattr(c, n, &obj, callee->name, callee->name_n, &fn)))
            return st;
        if (fn.type == TV_UNDEF)
            return tmpl_fail(c, n, AL_ERR_TEMPLATE, "'%s' object has no method '%.*s'", tv_type_name(&obj),
                             (int)(callee->name_n > 64 ? 64 : callee->name_n), callee->name);
        return tmpl_call_value(c, n, &fn, &args, out);
    }
    tv fn;
    if ((st = eval(c, f, callee, &fn)) || (st = eval_args(c, f, n->args, &args)))
        return st;
    return tmpl_call_value(c, n, &fn, &args, out);
}

/* applies filter node fl (operand already evaluated in *v) */
static __attribute__((noinline)) al_status apply_filter(tmpl_ctx *c, tmpl_frame *f, const tnode *fl, tv *v)
{
    tmpl_args args;
    al_status st = eval_args(c, f, fl->args, &args);
    if (st)
        return st;
    tv r;
    if ((st = tmpl_filter(c, fl, fl->name, fl->name_n, v, &args, &r)))
        return st;
    *v = r;
    return AL_OK;
}

/* kept out of eval() so that its frame (argument arrays) is not paid on
 * every level of expression recursion */
static __attribute__((noinline)) al_status eval_test(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out)
{
    tmpl_args args;
    tv a;
    bool r;
    al_status st;
    if ((st = eval(c, f, n->a, &a)) || (st = eval_args(c, f, n->args, &args)))
        return st;
    if ((st = tmpl_test(c, n, n->name, n->name_n, &a, &args, &r)))
        return st;
    *out = tv_bool(n->neg ? !r : r);
    return AL_OK;
}

static al_status eval_node(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out);

static al_status eval(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out)
{
    al_status st = step(c, n);
    if (st)
        return st;
    if (c->eval_depth >= 1024)
        return tmpl_fail(c, n, AL_ERR_LIMIT, "evaluation nested too deeply (depth limit)");
    c->eval_depth++;
    st = eval_node(c, f, n, out);
    c->eval_depth--;
    return st;
}

/* A chain of comparisons (a < b <= c, x in l): true when every link holds;
 * stops at the first that does not, as Python does. */
static al_status eval_cmp(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out)
{
    al_status st;
    tv a, b;
    if ((st = eval(c, f, n->a, &a)))
        return st;
    for (const tnode *k = n; k; k = k->d) {
        if ((st = eval(c, f, k->b, &b)))
            return st;
        bool r = false;
        int cmp = 0;
        switch (k->op) {
        case OP_EQ: r = tv_equal(&a, &b, 0); break;
        case OP_NE: r = !tv_equal(&a, &b, 0); break;
        case OP_IN:
        case OP_NOTIN:
            if ((st = contains(c, k, &a, &b, &r)))
                return st;
            if (k->op == OP_NOTIN)
                r = !r;
            break;
        default:
            if ((st = tmpl_compare(c, k, &a, &b, &cmp)))
                return st;
            r = k->op == OP_LT ? cmp < 0 : k->op == OP_LE ? cmp <= 0 : k->op == OP_GT ? cmp > 0 : cmp >= 0;
        }
        if (!r) {
            *out = tv_bool(false);
            return AL_OK;
        }
        a = b;
    }
    *out = tv_bool(true);
    return AL_OK;
}

static al_status eval_node(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tv *out)
{
    al_status st;
    tv a, b;
    switch (n->kind) {
    case E_LIT: *out = n->lit; return AL_OK;
    case E_NAME: *out = lookup(f, n->name, n->name_n); return AL_OK;
    case E_ATTR:
        if ((st = eval(c, f, n->a, &a)))
            return st;
        return tmpl_getattr(c, n, &a, n->name, n->name_n, out);
    case E_ITEM:
        if ((st = eval(c, f, n->a, &a)) || (st = eval(c, f, n->b, &b)))
            return st;
        return tmpl_getitem(c, n, &a, &b, out);
    case E_SLICE: {
        tv s[3];
        const tnode *parts[3] = {n->b, n->c, n->d};
        if ((st = eval(c, f, n->a, &a)))
            return st;
        for (int k = 0; k < 3; k++)
            if (parts[k] && (st = eval(c, f, parts[k], &s[k])))
                return st;
        return do_slice(c, n, &a, n->b ? &s[0] : NULL, n->c ? &s[1] : NULL, n->d ? &s[2] : NULL, out);
    }
    case E_CALL: return eval_call(c, f, n, out);
    case E_FILTER:
        if ((st = eval(c, f, n->a, &a)) || (st = apply_filter(c, f, n, &a)))
            return st;
        *out = a;
        return AL_OK;
    case E_TEST: return eval_test(c, f, n, out);
    case E_NOT:
        if ((st = eval(c, f, n->a, &a)))
            return st;
        *out = tv_bool(!tv_truthy(&a));
        return AL_OK;
    case E_NEG:
    case E_POS:
        if ((st = eval(c, f, n->a, &a)))
            return st;
        if (a.type == TV_INT || a.type == TV_BOOL) {
            int64_t i = a.type == TV_INT ? a.u.i : a.u.b;
            if (n->kind == E_NEG && i == INT64_MIN)
                return tmpl_fail(c, n, AL_ERR_TEMPLATE, "integer overflow");
            *out = tv_int(n->kind == E_NEG ? -i : i);
        } else if (a.type == TV_FLOAT) {
            *out = tv_float(n->kind == E_NEG ? -a.u.f : a.u.f);
        } else if (a.type == TV_UNDEF) {
            return undefined_err(c, n, &a);
        } else {
            return tmpl_fail(c, n, AL_ERR_TEMPLATE, "bad operand type for unary %c: '%s'",
                             n->kind == E_NEG ? '-' : '+', tv_type_name(&a));
        }
        return AL_OK;
    case E_BIN:
        if ((st = eval(c, f, n->a, &a)) || (st = eval(c, f, n->b, &b)))
            return st;
        return binop(c, n, n->op, &a, &b, out);
    case E_AND:
        if ((st = eval(c, f, n->a, &a)))
            return st;
        if (!tv_truthy(&a)) {
            *out = a;
            return AL_OK;
        }
        return eval(c, f, n->b, out);
    case E_OR:
        if ((st = eval(c, f, n->a, &a)))
            return st;
        if (tv_truthy(&a)) {
            *out = a;
            return AL_OK;
        }
        return eval(c, f, n->b, out);
    case E_COND:
        if ((st = eval(c, f, n->b, &a)))
            return st;
        if (tv_truthy(&a))
            return eval(c, f, n->a, out);
        if (n->c)
            return eval(c, f, n->c, out);
        *out = tv_undef();
        return AL_OK;
    case E_CMP: return eval_cmp(c, f, n, out);
    case E_LIST:
    case E_TUPLE: {
        tv_list *l = tv_list_new(c->arena, 0);
        if (!l)
            return tmpl_nomem(c, n);
        l->tuple = n->kind == E_TUPLE;
        for (const tnode *k = n->args; k; k = k->next) {
            if ((st = eval(c, f, k, &a)))
                return st;
            if (!tv_list_push(c->arena, l, a))
                return tmpl_nomem(c, n);
        }
        out->type = TV_LIST;
        out->u.list = l;
        return AL_OK;
    }
    case E_DICT: {
        tv_dict *d = tv_dict_new(c->arena, 0);
        if (!d)
            return tmpl_nomem(c, n);
        for (const tnode *k = n->args; k; k = k->next) {
            if ((st = eval(c, f, k->a, &a)) || (st = eval(c, f, k->b, &b)))
                return st;
            if (a.type != TV_STR)
                return tmpl_fail(c, k, AL_ERR_TEMPLATE, "dict keys must be strings, not %s", tv_type_name(&a));
            if (!tv_dict_set(c->arena, d, a.u.s.p, a.u.s.n, b))
                return tmpl_nomem(c, n);
        }
        out->type = TV_DICT;
        out->u.dict = d;
        return AL_OK;
    }
    default: break;
    }
    return tmpl_fail(c, n, AL_ERR_TEMPLATE, "internal error: cannot evaluate node kind %d", (int)n->kind);
}

/* ------------------------------------------------------------------ statements */

static al_status emit(tmpl_ctx *c, const tnode *at, const char *p, size_t n)
{
    if (!tb_put(c->out, p, n))
        return buf_fail(c, at, c->out);
    return AL_OK;
}

static al_status assign(tmpl_ctx *c, tmpl_frame *f, const tnode *target, const tv *v)
{
    if (target->kind == E_NAME) {
        if (!tmpl_frame_set(c, f, target->name, target->name_n, *v))
            return tmpl_nomem(c, target);
        return AL_OK;
    }
    if (target->kind == E_ATTR) {
        tv obj = lookup(f, target->a->name, target->a->name_n);
        if (obj.type != TV_DICT || !obj.u.dict->ns)
            return tmpl_fail(c, target, AL_ERR_TEMPLATE, "cannot assign attribute on non-namespace object '%.*s'",
                             (int)(target->a->name_n > 64 ? 64 : target->a->name_n), target->a->name);
        /* the key must outlive this render's AST: it does (the AST outlives the render) */
        if (!tv_dict_set(c->arena, obj.u.dict, target->name, target->name_n, *v))
            return tmpl_nomem(c, target);
        return AL_OK;
    }
    if (target->kind == E_TUPLE) {
        tv_list *items;
        al_status st = tmpl_iterate(c, target, v, &items);
        if (st)
            return st;
        size_t k = 0;
        for (const tnode *t = target->args; t; t = t->next, k++) {
            if (k >= items->n)
                return tmpl_fail(c, target, AL_ERR_TEMPLATE, "not enough values to unpack (expected more than %zu)",
                                 items->n);
            if ((st = assign(c, f, t, &items->items[k])))
                return st;
        }
        if (k != items->n)
            return tmpl_fail(c, target, AL_ERR_TEMPLATE, "too many values to unpack (expected %zu)", k);
        return AL_OK;
    }
    return tmpl_fail(c, target, AL_ERR_TEMPLATE, "cannot assign to this expression");
}

/* for i in range(...) without a filter: the bounds, or *is_range false */
static al_status range_loop(tmpl_ctx *c, tmpl_frame *f, const tnode *n, tmpl_loop *L, bool *is_range)
{
    *is_range = false;
    const tnode *call = n->b;
    if (n->c || call->kind != E_CALL || call->a->kind != E_NAME)
        return AL_OK;
    tv fn = lookup(f, call->a->name, call->a->name_n);
    if (fn.type != TV_FUNC || strcmp(fn.u.fn->name, "range"))
        return AL_OK;
    tmpl_args args;
    al_status st = eval_args(c, f, call->args, &args);
    if (st)
        return st;
    int64_t v[3] = {0, 0, 1};
    if (args.npos < 1 || args.npos > 3 || args.nkw)
        return tmpl_fail(c, call, AL_ERR_TEMPLATE, "range() takes 1 to 3 integer arguments");
    for (size_t i = 0; i < args.npos; i++) {
        if (args.pos[i].type != TV_INT && args.pos[i].type != TV_BOOL)
            return tmpl_fail(c, call, AL_ERR_TEMPLATE, "range() arguments must be integers, not %s",
                             tv_type_name(&args.pos[i]));
        v[i] = args.pos[i].type == TV_INT ? args.pos[i].u.i : args.pos[i].u.b;
    }
    int64_t start = args.npos == 1 ? 0 : v[0], stop = args.npos == 1 ? v[0] : v[1];
    int64_t stepv = args.npos == 3 ? v[2] : 1;
    if (stepv == 0)
        return tmpl_fail(c, call, AL_ERR_TEMPLATE, "range() step must not be zero");
    /* length in unsigned arithmetic: no overflow for any int64 bounds */
    uint64_t len = 0;
    if (stepv > 0 && start < stop)
        len = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)stepv + 1;
    else if (stepv < 0 && start > stop)
        len = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)0 - (uint64_t)stepv) + 1;
    L->items = NULL;
    L->r_start = start;
    L->r_step = stepv;
    L->len = (size_t)len;
    *is_range = true;
    return AL_OK;
}

static al_status exec_for(tmpl_ctx *c, tmpl_frame *f, const tnode *n)
{
    tmpl_loop *L = tmpl_alloc(c->arena, sizeof(*L));
    if (!L)
        return tmpl_nomem(c, n);
    L->depth = 1; /* only recursive loops (unsupported) go deeper */
    bool is_range;
    al_status st = range_loop(c, f, n, L, &is_range);
    if (st)
        return st;
    if (!is_range) {
        tv it;
        tv_list *items;
        if ((st = eval(c, f, n->b, &it)) || (st = tmpl_iterate(c, n->b, &it, &items)))
            return st;
        if (n->c) {
            /* the loop filter runs first, so loop.length counts what passes */
            tv_list *kept = tv_list_new(c->arena, 0);
            tmpl_frame *tf = tmpl_frame_new(c, f);
            if (!kept || !tf)
                return tmpl_nomem(c, n);
            for (size_t i = 0; i < items->n; i++) {
                tv cond;
                if ((st = assign(c, tf, n->a, &items->items[i])) || (st = eval(c, tf, n->c, &cond)))
                    return st;
                if (tv_truthy(&cond) && !tv_list_push(c->arena, kept, items->items[i]))
                    return tmpl_nomem(c, n);
            }
            items = kept;
        }
        L->items = items;
        L->len = items->n;
    }
    if (L->len == 0)
        return exec(c, f, n->orelse);
    tv lv = {TV_LOOP, {0}};
    lv.u.loop = L;
    tmpl_frame *bf = NULL;
    for (size_t i = 0; i < L->len; i++) {
        if ((st = step(c, n)))
            return st;
        L->index0 = i;
        /* a fresh scope per iteration; its variable nodes are recycled
         * unless a macro defined in the body captured it */
        if (!bf || bf->captured) {
            if (!(bf = tmpl_frame_new(c, f)))
                return tmpl_nomem(c, n);
            bf->loop_depth = f->loop_depth + 1;
        } else if (bf->vars) {
            tmpl_var *last = bf->vars;
            while (last->next)
                last = last->next;
            last->next = bf->spare;
            bf->spare = bf->vars;
            bf->vars = NULL;
        }
        tv item = loop_item(L, i);
        if (!tmpl_frame_set(c, bf, "loop", 4, lv))
            return tmpl_nomem(c, n);
        if ((st = assign(c, bf, n->a, &item)))
            return st;
        if ((st = exec(c, bf, n->body)))
            return st;
        if (c->ctl == 1) {
            c->ctl = 0;
            break;
        }
        c->ctl = 0;
    }
    return AL_OK;
}

static al_status capture(tmpl_ctx *c, tmpl_frame *f, const tnode *body, tv *out)
{
    tmpl_buf *saved = c->out;
    tmpl_buf b = {.a = c->arena, .limit = c->lim.max_output_bytes};
    c->out = &b;
    al_status st = exec(c, f, body);
    c->out = saved;
    if (st)
        return st;
    *out = tv_str(b.p ? b.p : "", b.n);
    return AL_OK;
}

static al_status exec(tmpl_ctx *c, tmpl_frame *f, const tnode *body)
{
    al_status st;
    for (const tnode *n = body; n && !c->ctl; n = n->next) {
        if ((st = step(c, n)))
            return st;
        tv v;
        switch (n->kind) {
        case N_TEXT:
            if ((st = emit(c, n, n->name, n->name_n)))
                return st;
            break;
        case N_OUTPUT:
            if ((st = eval(c, f, n->a, &v)))
                return st;
            if (v.type == TV_STR)
                st = emit(c, n, v.u.s.p, v.u.s.n);
            else if (!tv_str_append(c->out, &v, 0))
                st = buf_fail(c, n, c->out);
            if (st)
                return st;
            break;
        case N_IF:
            if ((st = eval(c, f, n->a, &v)))
                return st;
            if ((st = exec(c, f, tv_truthy(&v) ? n->body : n->orelse)))
                return st;
            break;
        case N_FOR:
            if ((st = exec_for(c, f, n)))
                return st;
            break;
        case N_SET:
            if ((st = eval(c, f, n->b, &v)) || (st = assign(c, f, n->a, &v)))
                return st;
            break;
        case N_SETBLOCK:
            if ((st = capture(c, f, n->body, &v)))
                return st;
            for (const tnode *fl = n->args; fl; fl = fl->next)
                if ((st = apply_filter(c, f, fl, &v)))
                    return st;
            if ((st = assign(c, f, n->a, &v)))
                return st;
            break;
        case N_FILTERBLOCK:
            if ((st = capture(c, f, n->body, &v)))
                return st;
            for (const tnode *fl = n->args; fl; fl = fl->next)
                if ((st = apply_filter(c, f, fl, &v)))
                    return st;
            if (v.type == TV_STR)
                st = emit(c, n, v.u.s.p, v.u.s.n);
            else if (!tv_str_append(c->out, &v, 0))
                st = buf_fail(c, n, c->out);
            if (st)
                return st;
            break;
        case N_MACRO:
        case N_CALLBLOCK: {
            tmpl_macro *m = tmpl_alloc(c->arena, sizeof(*m));
            if (!m)
                return tmpl_nomem(c, n);
            m->params = n->args;
            m->body = n->body;
            m->closure = f;
            f->captured = true;
            v.type = TV_MACRO;
            v.u.macro = m;
            if (n->kind == N_MACRO) {
                m->name = n->name;
                m->name_n = n->name_n;
                if (!tmpl_frame_set(c, f, n->name, n->name_n, v))
                    return tmpl_nomem(c, n);
                break;
            }
            m->name = "caller";
            m->name_n = 6;
            tv fn, r;
            tmpl_args args;
            if ((st = eval(c, f, n->a->a, &fn)) || (st = eval_args(c, f, n->a->args, &args)))
                return st;
            if (fn.type != TV_MACRO)
                return tmpl_fail(c, n, AL_ERR_TEMPLATE, "{%% call %%} needs a macro, not %s", tv_type_name(&fn));
            if ((st = call_macro(c, n, fn.u.macro, &args, &v, &r)) || (st = emit(c, n, r.u.s.p, r.u.s.n)))
                return st;
            break;
        }
        case N_BREAK:
        case N_CONTINUE:
            if (f->loop_depth == 0)
                return tmpl_fail(c, n, AL_ERR_TEMPLATE, "'%s' outside a loop",
                                 n->kind == N_BREAK ? "break" : "continue");
            c->ctl = n->kind == N_BREAK ? 1 : 2;
            break;
        case N_DO:
            if ((st = eval(c, f, n->a, &v)))
                return st;
            break;
        default:
            return tmpl_fail(c, n, AL_ERR_TEMPLATE, "internal error: bad statement kind %d", (int)n->kind);
        }
    }
    return AL_OK;
}

al_status tmpl_exec_root(tmpl_ctx *c, const tnode *body)
{
    tmpl_frame *root = tmpl_frame_new(c, c->globals);
    if (!root)
        return tmpl_nomem(c, NULL);
    c->ctl = 0;
    return exec(c, root, body);
}
