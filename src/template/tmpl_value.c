/* tmpl_value.c - the arena, Python-like values and their str()/repr()/json. */
#include "template/tmpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ arena */

struct tmpl_chunk {
    tmpl_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

#define TMPL_CHUNK_MIN ((size_t)64 * 1024)

void *tmpl_alloc(tmpl_arena *a, size_t n)
{
    const size_t al = sizeof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + al - 1) / al * al;
    if (n == 0)
        n = al;
    tmpl_chunk *h = a->head;
    if (!h || h->cap - h->used < n) {
        size_t cap = n > TMPL_CHUNK_MIN ? n : TMPL_CHUNK_MIN;
        size_t total = sizeof(tmpl_chunk) + cap;
        if (a->limit_bytes && (total > a->limit_bytes || a->used_bytes > a->limit_bytes - total))
            return NULL;
        tmpl_chunk *c = malloc(total);
        if (!c) {
            a->oom = true;
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        a->used_bytes += total;
        /* Keep a partly used chunk current when the new one is a one-off big block. */
        if (h && cap == n && h->cap - h->used >= TMPL_CHUNK_MIN / 8) {
            c->next = h->next;
            h->next = c;
            c->used = n;
            memset(c->data, 0, n);
            return c->data;
        }
        c->next = h;
        a->head = c;
        h = c;
    }
    void *p = (char *)h->data + h->used;
    h->used += n;
    memset(p, 0, n);
    return p;
}

void *tmpl_grow(tmpl_arena *a, void *p, size_t old_n, size_t new_n)
{
    const size_t al = sizeof(max_align_t);
    tmpl_chunk *h = a->head;
    if (p && h && old_n && new_n <= SIZE_MAX / 2) {
        size_t old_r = (old_n + al - 1) / al * al, new_r = (new_n + al - 1) / al * al;
        char *top = (char *)h->data + h->used;
        /* the last block of the current chunk grows in place */
        if ((char *)p + old_r == top && new_r >= old_r && h->cap - h->used >= new_r - old_r) {
            memset(top, 0, new_r - old_r);
            h->used += new_r - old_r;
            return p;
        }
    }
    void *q = tmpl_alloc(a, new_n);
    if (q && p && old_n)
        memcpy(q, p, old_n < new_n ? old_n : new_n);
    return q;
}

void *tmpl_alloc_n(tmpl_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return tmpl_alloc(a, n * size);
}

void tmpl_arena_free(tmpl_arena *a)
{
    if (!a)
        return;
    tmpl_chunk *c = a->head;
    while (c) {
        tmpl_chunk *nx = c->next;
        free(c);
        c = nx;
    }
    a->head = NULL;
    a->used_bytes = 0;
}

/* ------------------------------------------------------------------ values */

tv tv_cstr(const char *s) { return tv_str(s, strlen(s)); }

tv_list *tv_list_new(tmpl_arena *a, size_t cap)
{
    tv_list *l = tmpl_alloc(a, sizeof(*l));
    if (!l)
        return NULL;
    if (cap) {
        l->items = tmpl_alloc_n(a, cap, sizeof(tv));
        if (!l->items)
            return NULL;
        l->cap = cap;
    }
    return l;
}

bool tv_list_push(tmpl_arena *a, tv_list *l, tv v)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        if (nc > SIZE_MAX / sizeof(tv))
            return false;
        tv *ni = tmpl_grow(a, l->items, l->cap * sizeof(tv), nc * sizeof(tv));
        if (!ni)
            return false;
        l->items = ni;
        l->cap = nc;
    }
    l->items[l->n++] = v;
    return true;
}

tv_dict *tv_dict_new(tmpl_arena *a, size_t cap)
{
    tv_dict *d = tmpl_alloc(a, sizeof(*d));
    if (!d)
        return NULL;
    if (cap) {
        d->kv = tmpl_alloc_n(a, cap, sizeof(tv_kv));
        if (!d->kv)
            return NULL;
        d->cap = cap;
    }
    return d;
}

tv *tv_dict_get(const tv_dict *d, const char *k, size_t kn)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->kv[i].kn == kn && !memcmp(d->kv[i].k, k, kn))
            return &d->kv[i].v;
    return NULL;
}

bool tv_dict_set(tmpl_arena *a, tv_dict *d, const char *k, size_t kn, tv v)
{
    tv *old = tv_dict_get(d, k, kn);
    if (old) {
        *old = v;
        return true;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4;
        tv_kv *nk = tmpl_alloc_n(a, nc, sizeof(tv_kv));
        if (!nk)
            return false;
        if (d->n)
            memcpy(nk, d->kv, d->n * sizeof(tv_kv));
        d->kv = nk;
        d->cap = nc;
    }
    d->kv[d->n].k = k;
    d->kv[d->n].kn = kn;
    d->kv[d->n].v = v;
    d->n++;
    return true;
}

bool tv_truthy(const tv *v)
{
    switch (v->type) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL: return v->u.b;
    case TV_INT: return v->u.i != 0;
    case TV_FLOAT: return v->u.f != 0.0;
    case TV_STR: return v->u.s.n != 0;
    case TV_LIST: return v->u.list->n != 0;
    case TV_DICT: return v->u.dict->ns || v->u.dict->n != 0;
    default: return true;
    }
}

static bool is_num(const tv *v) { return v->type == TV_INT || v->type == TV_FLOAT || v->type == TV_BOOL; }
static double num_f(const tv *v)
{
    return v->type == TV_FLOAT ? v->u.f : v->type == TV_INT ? (double)v->u.i : (double)v->u.b;
}

bool tv_equal(const tv *a, const tv *b, int depth)
{
    if (depth > 256)
        return false;
    if (is_num(a) && is_num(b)) {
        if (a->type != TV_FLOAT && b->type != TV_FLOAT) {
            int64_t x = a->type == TV_INT ? a->u.i : a->u.b, y = b->type == TV_INT ? b->u.i : b->u.b;
            return x == y;
        }
        return num_f(a) == num_f(b);
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    case TV_LIST:
        if (a->u.list->n != b->u.list->n)
            return false;
        for (size_t i = 0; i < a->u.list->n; i++)
            if (!tv_equal(&a->u.list->items[i], &b->u.list->items[i], depth + 1))
                return false;
        return true;
    case TV_DICT:
        if (a->u.dict == b->u.dict)
            return true;
        if (a->u.dict->ns || b->u.dict->ns || a->u.dict->n != b->u.dict->n)
            return false;
        for (size_t i = 0; i < a->u.dict->n; i++) {
            const tv_kv *kv = &a->u.dict->kv[i];
            tv *o = tv_dict_get(b->u.dict, kv->k, kv->kn);
            if (!o || !tv_equal(&kv->v, o, depth + 1))
                return false;
        }
        return true;
    case TV_FUNC: return a->u.fn == b->u.fn;
    case TV_MACRO: return a->u.macro == b->u.macro;
    case TV_LOOP: return a->u.loop == b->u.loop;
    default: return false;
    }
}

const char *tv_type_name(const tv *v)
{
    switch (v->type) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return v->u.list->tuple ? "tuple" : "list";
    case TV_DICT: return v->u.dict->ns ? "Namespace" : "dict";
    case TV_FUNC: return "function";
    case TV_MACRO: return "Macro";
    case TV_LOOP: return "LoopContext";
    }
    return "object";
}

/* ------------------------------------------------------------------ buffers */

bool tb_put(tmpl_buf *b, const char *s, size_t n)
{
    if (b->over)
        return false;
    if (n > SIZE_MAX / 4 || (b->limit && (n > b->limit || b->n > b->limit - n))) {
        b->over = true;
        b->at_limit = true;
        return false;
    }
    if (b->cap - b->n < n + 1) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc - b->n < n + 1) {
            if (nc > SIZE_MAX / 4) {
                b->over = true;
                return false;
            }
            nc *= 2;
        }
        if (b->limit && nc > b->limit + 1)
            nc = b->limit + 1;
        char *np = tmpl_grow(b->a, b->p, b->cap, nc);
        if (!np) {
            b->over = true;
            return false;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

bool tb_putc(tmpl_buf *b, char c) { return tb_put(b, &c, 1); }
bool tb_puts(tmpl_buf *b, const char *s) { return tb_put(b, s, strlen(s)); }

/* ------------------------------------------------------------------ numbers */

void tv_float_repr(double f, char *buf, size_t cap)
{
    if (isnan(f)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0.0) {
        snprintf(buf, cap, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* Shortest digits that round-trip, as Python's repr. */
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: [-]d.ddde[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1)
            digits[nd++] = *p;
    digits[nd] = 0;
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp < -4 || exp >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t i = 1; i < nd; i++)
                out[o++] = digits[i];
        }
        snprintf(out + o, sizeof(out) - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp - 1; i++)
            out[o++] = '0';
        for (size_t i = 0; i < nd; i++)
            out[o++] = digits[i];
        out[o] = 0;
    } else {
        for (int i = 0; i <= exp; i++)
            out[o++] = (size_t)i < nd ? digits[i] : '0';
        out[o++] = '.';
        if ((size_t)exp + 1 < nd) {
            for (size_t i = (size_t)exp + 1; i < nd; i++)
                out[o++] = digits[i];
        } else {
            out[o++] = '0';
        }
        out[o] = 0;
    }
    snprintf(buf, cap, "%s", out);
}

/* ------------------------------------------------------------------ str / repr */

static bool put_int(tmpl_buf *b, int64_t i)
{
    char t[32];
    int n = snprintf(t, sizeof(t), "%lld", (long long)i);
    return tb_put(b, t, (size_t)n);
}

static bool repr_str(tmpl_buf *b, const char *p, size_t n)
{
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    if (!tb_putc(b, q))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        char esc[8];
        if (ch == '\\')
            tb_put(b, "\\\\", 2);
        else if (ch == (unsigned char)q) {
            tb_putc(b, '\\');
            tb_putc(b, (char)ch);
        } else if (ch == '\n')
            tb_put(b, "\\n", 2);
        else if (ch == '\r')
            tb_put(b, "\\r", 2);
        else if (ch == '\t')
            tb_put(b, "\\t", 2);
        else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", ch);
            tb_puts(b, esc);
        } else
            tb_putc(b, (char)ch);
    }
    return tb_putc(b, q);
}

bool tv_repr_append(tmpl_buf *b, const tv *v, int depth)
{
    if (depth > 256) {
        b->over = true;
        return false;
    }
    if (v->type == TV_STR)
        return repr_str(b, v->u.s.p, v->u.s.n);
    if (v->type == TV_LIST) {
        const tv_list *l = v->u.list;
        tb_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                tb_put(b, ", ", 2);
            if (!tv_repr_append(b, &l->items[i], depth + 1))
                return false;
        }
        if (l->tuple && l->n == 1)
            tb_putc(b, ',');
        return tb_putc(b, l->tuple ? ')' : ']');
    }
    if (v->type == TV_DICT) {
        const tv_dict *d = v->u.dict;
        if (d->ns)
            tb_puts(b, "<Namespace ");
        tb_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                tb_put(b, ", ", 2);
            repr_str(b, d->kv[i].k, d->kv[i].kn);
            tb_put(b, ": ", 2);
            if (!tv_repr_append(b, &d->kv[i].v, depth + 1))
                return false;
        }
        tb_putc(b, '}');
        if (d->ns)
            tb_putc(b, '>');
        return !b->over;
    }
    return tv_str_append(b, v, depth);
}

bool tv_str_append(tmpl_buf *b, const tv *v, int depth)
{
    char t[40];
    switch (v->type) {
    case TV_UNDEF: return !b->over;
    case TV_NONE: return tb_put(b, "None", 4);
    case TV_BOOL: return v->u.b ? tb_put(b, "True", 4) : tb_put(b, "False", 5);
    case TV_INT: return put_int(b, v->u.i);
    case TV_FLOAT: tv_float_repr(v->u.f, t, sizeof(t)); return tb_puts(b, t);
    case TV_STR: return tb_put(b, v->u.s.p, v->u.s.n);
    case TV_LIST:
    case TV_DICT: return tv_repr_append(b, v, depth);
    case TV_FUNC: return tb_puts(b, "<built-in function>");
    case TV_MACRO: return tb_puts(b, "<Macro>");
    case TV_LOOP: return tb_puts(b, "<LoopContext>");
    }
    return false;
}

/* ------------------------------------------------------------------ json */

static bool json_str(tmpl_buf *b, const char *p, size_t n)
{
    tb_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        const char *esc = NULL;
        char u[8];
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (ch < 0x20) {
                snprintf(u, sizeof(u), "\\u%04x", ch);
                esc = u;
            }
        }
        if (esc) {
            tb_put(b, p + run, i - run);
            tb_puts(b, esc);
            run = i + 1;
        }
    }
    tb_put(b, p + run, n - run);
    return tb_putc(b, '"');
}

static bool json_nl(tmpl_buf *b, int indent, int level)
{
    tb_putc(b, '\n');
    for (int i = 0; i < indent * level; i++)
        tb_putc(b, ' ');
    return !b->over;
}

bool tv_json_append(tmpl_buf *b, const tv *v, int indent, int level, const char **why)
{
    char t[40];
    if (level > 256) {
        *why = "nesting too deep (a cycle?)";
        return false;
    }
    switch (v->type) {
    case TV_NONE: return tb_put(b, "null", 4);
    case TV_BOOL: return v->u.b ? tb_put(b, "true", 4) : tb_put(b, "false", 5);
    case TV_INT: return put_int(b, v->u.i);
    case TV_FLOAT:
        if (isnan(v->u.f))
            return tb_puts(b, "NaN");
        if (isinf(v->u.f))
            return tb_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        tv_float_repr(v->u.f, t, sizeof(t));
        return tb_puts(b, t);
    case TV_STR: return json_str(b, v->u.s.p, v->u.s.n);
    case TV_LIST: {
        const tv_list *l = v->u.list;
        if (l->n == 0)
            return tb_put(b, "[]", 2);
        tb_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                tb_putc(b, ',');
            if (indent >= 0)
                json_nl(b, indent, level + 1);
            else if (i)
                tb_putc(b, ' ');
            if (!tv_json_append(b, &l->items[i], indent, level + 1, why))
                return false;
        }
        if (indent >= 0)
            json_nl(b, indent, level);
        return tb_putc(b, ']');
    }
    case TV_DICT: {
        const tv_dict *d = v->u.dict;
        if (d->n == 0)
            return tb_put(b, "{}", 2);
        tb_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                tb_putc(b, ',');
            if (indent >= 0)
                json_nl(b, indent, level + 1);
            else if (i)
                tb_putc(b, ' ');
            json_str(b, d->kv[i].k, d->kv[i].kn);
            tb_put(b, ": ", 2);
            if (!tv_json_append(b, &d->kv[i].v, indent, level + 1, why))
                return false;
        }
        if (indent >= 0)
            json_nl(b, indent, level);
        return tb_putc(b, '}');
    }
    default:
        *why = v->type == TV_UNDEF ? "Undefined is not JSON serializable"
                                   : "object is not JSON serializable";
        return false;
    }
}

/* ------------------------------------------------------------------ utf-8 */

/* A character starts at byte 0 and at every byte that is not a UTF-8
 * continuation byte: every function that splits strings agrees on this,
 * even for bytes that are not valid UTF-8. */
static bool char_start(const char *p, size_t i) { return i == 0 || ((unsigned char)p[i] & 0xC0) != 0x80; }

size_t tmpl_utf8_len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (char_start(p, i))
            c++;
    return c;
}

size_t tmpl_utf8_offset(const char *p, size_t n, size_t idx)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (char_start(p, i)) {
            if (c == idx)
                return i;
            c++;
        }
    }
    return n;
}
