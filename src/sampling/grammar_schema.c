/*
 * grammar_schema.c - JSON Schema to GBNF (see grammar.h).
 *
 * Each subschema becomes a rule (named r<N>; a table maps the names back to
 * the schema locations for error messages). What is supported:
 *   type (one or a list), enum, const, anyOf / oneOf (as alternatives),
 *   allOf (one subschema, or objects merged), $ref to "#" and JSON pointers
 *   into the document ($defs, definitions, ...), nullable;
 *   objects: properties (in their declared order), required,
 *     additionalProperties (false, or a schema for an object without
 *     properties: a map);
 *   arrays: items, prefixItems, minItems, maxItems;
 *   strings: minLength, maxLength, pattern (a regular expression subset,
 *     see regex_* below), format date, time, date-time, uuid;
 *   integers: minimum, maximum, exclusiveMinimum, exclusiveMaximum;
 *   numbers: the same bounds when they are integers.
 * Keywords that only annotate (title, description, default, examples, ...)
 * are ignored, as are those a generator cannot break by leaving things out
 * (minProperties aside, see docs/server.md). The output has no whitespace
 * choices but a bounded `ws` after structural characters.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sampling/grammar.h"
#include "util/error.h"
#include "util/utf8.h"

#define OUT_MAX (64u << 20) /* bytes of GBNF text at most */
#define INT_DIGITS_MAX 16   /* unbounded integers: at most this many digits */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n + 1)
            c *= 2;
        char *p = c > OUT_MAX ? NULL : realloc(b->s, c);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_putn(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* A GBNF string literal for bytes s[0..n). */
static void sb_lit(sbuf *b, const char *s, size_t n)
{
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            sb_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            sb_printf(b, "\\x%02X", c);
        else
            sb_putn(b, (const char *)&c, 1);
    }
    sb_puts(b, "\"");
}

/* ------------------------------------------------------------ compiler */

typedef struct memo {
    const json_t *node;
    uint32_t rule;
} memo;

typedef struct sc {
    const json_t *root;
    sbuf out;         /* rules */
    al_error *err;
    al_status st;
    al_grammar_limits lim;
    struct timespec t0;
    uint32_t n_rules;
    char **rule_path; /* (n_rules) schema location of each rule */
    memo *memo;
    size_t n_memo, cap_memo;
    uint32_t depth;
    bool use_ws, use_value, use_string, use_char, use_number, use_integer;
} sc;

static bool fail(sc *c, const char *path, al_status st, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool fail(sc *c, const char *path, al_status st, const char *fmt, ...)
{
    if (c->st != AL_OK)
        return false;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    al_err(c->err, st, "schema at %s: %s", path && *path ? path : "#", msg);
    c->st = st;
    return false;
}

static bool oom(sc *c) { return fail(c, NULL, AL_ERR_NOMEM, "out of memory"); }

/* path + "/" + seg (JSON pointer escaping), malloc'd */
static char *subpath(const char *path, const char *seg)
{
    size_t n = strlen(path), m = strlen(seg), extra = 0;
    for (size_t i = 0; i < m; i++)
        extra += seg[i] == '~' || seg[i] == '/';
    char *p = malloc(n + m + extra + 2);
    if (!p)
        return NULL;
    memcpy(p, path, n);
    size_t w = n;
    p[w++] = '/';
    for (size_t i = 0; i < m; i++) {
        if (seg[i] == '~') {
            p[w++] = '~';
            p[w++] = '0';
        } else if (seg[i] == '/') {
            p[w++] = '~';
            p[w++] = '1';
        } else
            p[w++] = seg[i];
    }
    p[w] = '\0';
    return p;
}

static char *subpath_i(const char *path, const char *seg, size_t i)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s/%zu", seg, i);
    size_t n = strlen(path);
    char *p = malloc(n + strlen(tmp) + 2);
    if (p)
        sprintf(p, "%s/%s", path, tmp);
    return p;
}

static uint32_t new_rule(sc *c, const char *path)
{
    if (c->n_rules >= c->lim.max_rules) {
        fail(c, path, AL_ERR_LIMIT, "the schema needs more than %u grammar rules", c->lim.max_rules);
        return UINT32_MAX;
    }
    char **np = realloc(c->rule_path, ((size_t)c->n_rules + 1) * sizeof *np);
    if (!np) {
        oom(c);
        return UINT32_MAX;
    }
    c->rule_path = np;
    c->rule_path[c->n_rules] = strdup(path);
    if (!c->rule_path[c->n_rules]) {
        oom(c);
        return UINT32_MAX;
    }
    return c->n_rules++;
}

static bool time_ok(sc *c, const char *path)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double el = (double)(t.tv_sec - c->t0.tv_sec) + (double)(t.tv_nsec - c->t0.tv_nsec) * 1e-9;
    if (el > c->lim.max_seconds)
        return fail(c, path, AL_ERR_LIMIT, "compiling the schema took longer than %.1f s", c->lim.max_seconds);
    return true;
}

/* Writes an expression for node into e (a rule reference or inline text). */
static bool gen(sc *c, const json_t *node, const char *path, sbuf *e);

/* Resolves a "$ref" (JSON pointer into the root document). */
static const json_t *resolve_ref(sc *c, const char *ref, const char *path)
{
    if (ref[0] != '#')
        return fail(c, path, AL_ERR_UNSUPPORTED, "$ref '%s': only references inside the schema ('#...') are supported",
                    ref), NULL;
    const json_t *cur = c->root;
    const char *p = ref + 1;
    if (*p && *p != '/')
        return fail(c, path, AL_ERR_UNSUPPORTED, "$ref '%s': anchors are not supported, use a JSON pointer", ref), NULL;
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char seg[256];
        size_t w = 0;
        for (size_t i = 0; i < n && w + 1 < sizeof seg; i++) {
            if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
                seg[w++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else if (p[i] == '%' && i + 2 < n) { /* percent-encoding of URI fragments */
                unsigned v;
                if (sscanf(p + i + 1, "%2x", &v) == 1) {
                    seg[w++] = (char)v;
                    i += 2;
                } else
                    seg[w++] = p[i];
            } else
                seg[w++] = p[i];
        }
        seg[w] = '\0';
        if (json_is_object(cur))
            cur = json_object_get(cur, seg);
        else if (json_is_array(cur)) {
            char *endp;
            unsigned long k = strtoul(seg, &endp, 10);
            cur = *endp || !*seg ? NULL : json_array_get(cur, k);
        } else
            cur = NULL;
        if (!cur)
            return fail(c, path, AL_ERR_FORMAT, "$ref '%s' points to nothing", ref), NULL;
        p += n;
    }
    return cur;
}

static void use_ws(sc *c) { c->use_ws = true; }

/* ---- strings: regular expressions (a subset of ECMA-262) */

typedef struct rx {
    sc *c;
    const char *path, *src, *p, *end;
    bool bad;
} rx;

static bool rx_fail(rx *r, const char *what)
{
    if (!r->bad) {
        r->bad = true;
        fail(r->c, r->path, AL_ERR_UNSUPPORTED, "pattern \"%.100s\": %s at offset %d", r->src, what,
             (int)(r->p - r->src));
    }
    return false;
}

typedef struct crange {
    uint32_t lo, hi;
} crange;

typedef struct cset {
    crange r[64];
    int n;
    bool neg;
} cset;

static bool cs_add(rx *r, cset *s, uint32_t lo, uint32_t hi)
{
    if (s->n >= 64)
        return rx_fail(r, "character class too large");
    s->r[s->n].lo = lo;
    s->r[s->n].hi = hi;
    s->n++;
    return true;
}

static bool cs_class_escape(rx *r, cset *s, char k)
{
    switch (k) {
    case 'd': return cs_add(r, s, '0', '9');
    case 'w': return cs_add(r, s, 'a', 'z') && cs_add(r, s, 'A', 'Z') && cs_add(r, s, '0', '9') && cs_add(r, s, '_', '_');
    case 's':
        return cs_add(r, s, '\t', '\r') && cs_add(r, s, ' ', ' ') && cs_add(r, s, 0xA0, 0xA0) &&
               cs_add(r, s, 0x1680, 0x1680) && cs_add(r, s, 0x2000, 0x200A) && cs_add(r, s, 0x2028, 0x2029) &&
               cs_add(r, s, 0x202F, 0x202F) && cs_add(r, s, 0x205F, 0x205F) && cs_add(r, s, 0x3000, 0x3000) &&
               cs_add(r, s, 0xFEFF, 0xFEFF);
    }
    return false;
}

static int crange_cmp(const void *a, const void *b)
{
    const crange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Normalises s (sorted, merged, negation applied) into out (up to 128). */
static int cs_final(const cset *s, crange *out)
{
    crange t[64];
    int n = s->n;
    memcpy(t, s->r, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, crange_cmp);
    int w = 0;
    for (int i = 0; i < n; i++) {
        if (w && t[i].lo <= t[w - 1].hi + 1) {
            if (t[i].hi > t[w - 1].hi)
                t[w - 1].hi = t[i].hi;
        } else
            t[w++] = t[i];
    }
    if (!s->neg) {
        memcpy(out, t, (size_t)w * sizeof *t);
        return w;
    }
    int m = 0;
    uint32_t next = 0;
    for (int i = 0; i < w; i++) {
        if (t[i].lo > next)
            out[m++] = (crange){next, t[i].lo - 1};
        next = t[i].hi + 1;
    }
    if (next <= 0x10FFFF)
        out[m++] = (crange){next, 0x10FFFF};
    return m;
}

/* The JSON-string form of a set of code points: plain characters as a
 * class, '"', '\\' and control characters as their escapes. */
static void emit_cset(sbuf *e, const crange *rg, int n)
{
    bool first = true;
    sbuf cls = {0};
    bool any_plain = false;
    for (int i = 0; i < n; i++) {
        uint32_t lo = rg[i].lo, hi = rg[i].hi;
        /* cut out 0x00-0x1F, '"' and '\\' */
        uint32_t cuts[][2] = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
        uint32_t pieces[8][2];
        int np = 1;
        pieces[0][0] = lo;
        pieces[0][1] = hi;
        for (int k = 0; k < 3; k++) {
            int nn = 0;
            uint32_t tmp[8][2];
            for (int q = 0; q < np; q++) {
                uint32_t a = pieces[q][0], b = pieces[q][1];
                if (b < cuts[k][0] || a > cuts[k][1]) {
                    tmp[nn][0] = a;
                    tmp[nn++][1] = b;
                    continue;
                }
                if (a < cuts[k][0]) {
                    tmp[nn][0] = a;
                    tmp[nn++][1] = cuts[k][0] - 1;
                }
                if (b > cuts[k][1]) {
                    tmp[nn][0] = cuts[k][1] + 1;
                    tmp[nn++][1] = b;
                }
            }
            memcpy(pieces, tmp, sizeof pieces);
            np = nn;
        }
        for (int q = 0; q < np; q++) {
            if (pieces[q][0] >= 0xD800 && pieces[q][1] <= 0xDFFF)
                continue;
            sb_printf(&cls, "\\U%08X", pieces[q][0]);
            if (pieces[q][1] != pieces[q][0])
                sb_printf(&cls, "-\\U%08X", pieces[q][1]);
            any_plain = true;
        }
    }
    sb_puts(e, "(");
    if (any_plain) {
        sb_puts(e, "[");
        sb_puts(e, cls.s);
        sb_puts(e, "]");
        first = false;
    }
    free(cls.s);
    static const char *short_esc[32] = {['\b'] = "b", ['\f'] = "f", ['\n'] = "n", ['\r'] = "r", ['\t'] = "t"};
    for (int i = 0; i < n; i++)
        for (uint32_t ch = rg[i].lo; ch <= rg[i].hi && ch < 0x80; ch++) {
            if (ch >= 0x20 && ch != '"' && ch != '\\')
                continue;
            sb_puts(e, first ? "" : " | ");
            first = false;
            if (ch == '"')
                sb_puts(e, "\"\\\\\\\"\"");
            else if (ch == '\\')
                sb_puts(e, "\"\\\\\\\\\"");
            else if (short_esc[ch])
                sb_printf(e, "\"\\\\%s\"", short_esc[ch]);
            else
                sb_printf(e, "\"\\\\u00%02X\"", ch);
        }
    if (first) /* nothing at all */
        sb_puts(e, "[^\\x00-\\U0010FFFF]");
    sb_puts(e, ")");
}

static void emit_char(sbuf *e, uint32_t cp)
{
    crange one = {cp, cp};
    emit_cset(e, &one, 1);
}

static int32_t rx_hex(rx *r, int n)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        char ch = r->p < r->end ? *r->p : 0;
        int h = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
              : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10 : -1;
        if (h < 0)
            return rx_fail(r, "bad hex escape"), -1;
        v = v << 4 | (uint32_t)h;
        r->p++;
    }
    return (int32_t)v;
}

/* A literal character after '\\' (not a class escape); -1 when unsupported. */
static int32_t rx_escape_char(rx *r)
{
    char k = *r->p++;
    switch (k) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case '0': return 0;
    case 'x': return rx_hex(r, 2);
    case 'u':
        if (r->p < r->end && *r->p == '{')
            return rx_fail(r, "\\u{...} escapes are not supported"), -1;
        return rx_hex(r, 4);
    }
    if ((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z') || (k >= '0' && k <= '9')) {
        char what[64];
        snprintf(what, sizeof what, "'\\%c' is not supported", k);
        return rx_fail(r, what), -1;
    }
    return (unsigned char)k;
}

static int32_t rx_utf8(rx *r)
{
    const unsigned char *s = (const unsigned char *)r->p;
    size_t left = (size_t)(r->end - r->p);
    unsigned ch = s[0];
    int n = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 0;
    if (!n || (size_t)n > left)
        return rx_fail(r, "invalid UTF-8"), -1;
    uint32_t cp = n == 1 ? ch : n == 2 ? (ch & 0x1F) : n == 3 ? (ch & 0x0F) : (ch & 0x07);
    for (int i = 1; i < n; i++)
        cp = cp << 6 | (s[i] & 0x3F);
    r->p += n;
    return (int32_t)cp;
}

static bool rx_class(rx *r, sbuf *e)
{
    cset s = {.n = 0, .neg = false};
    r->p++; /* '[' */
    if (r->p < r->end && *r->p == '^') {
        s.neg = true;
        r->p++;
    }
    bool first = true;
    while (r->p < r->end && (*r->p != ']' || first)) {
        first = false;
        int32_t lo;
        if (*r->p == '\\') {
            r->p++;
            if (r->p >= r->end)
                return rx_fail(r, "unfinished escape");
            char k = *r->p;
            if (strchr("dws", k)) {
                r->p++;
                if (!cs_class_escape(r, &s, k))
                    return false;
                continue;
            }
            if (strchr("DWS", k))
                return rx_fail(r, "negated class escapes inside [...] are not supported");
            if (k == 'b') {
                r->p++;
                lo = '\b';
            } else if ((lo = rx_escape_char(r)) < 0)
                return false;
        } else if ((lo = rx_utf8(r)) < 0)
            return false;
        int32_t hi = lo;
        if (r->p + 1 < r->end && *r->p == '-' && r->p[1] != ']') {
            r->p++;
            if (*r->p == '\\') {
                r->p++;
                if (r->p >= r->end || strchr("dwsDWS", *r->p))
                    return rx_fail(r, "a class escape cannot end a range");
                if ((hi = rx_escape_char(r)) < 0)
                    return false;
            } else if ((hi = rx_utf8(r)) < 0)
                return false;
            if (hi < lo)
                return rx_fail(r, "character range out of order");
        }
        if (!cs_add(r, &s, (uint32_t)lo, (uint32_t)hi))
            return false;
    }
    if (r->p >= r->end)
        return rx_fail(r, "unterminated character class");
    r->p++;
    crange out[130];
    int n = cs_final(&s, out);
    emit_cset(e, out, n);
    return true;
}

static bool rx_alt(rx *r, sbuf *e, int depth);

static bool rx_atom(rx *r, sbuf *e, int depth)
{
    char ch = *r->p;
    if (ch == '(') {
        r->p++;
        if (r->p < r->end && *r->p == '?') {
            if (r->p + 1 < r->end && r->p[1] == ':')
                r->p += 2;
            else if (r->p + 1 < r->end && r->p[1] == '<' && r->p + 2 < r->end && r->p[2] != '=' && r->p[2] != '!') {
                const char *q = memchr(r->p, '>', (size_t)(r->end - r->p));
                if (!q)
                    return rx_fail(r, "unterminated group name");
                r->p = q + 1; /* a named group: its name does not matter here */
            } else
                return rx_fail(r, "lookaround and other (?...) groups are not supported");
        }
        sb_puts(e, "(");
        if (!rx_alt(r, e, depth + 1))
            return false;
        if (r->p >= r->end || *r->p != ')')
            return rx_fail(r, "missing ')'");
        r->p++;
        sb_puts(e, ")");
        return true;
    }
    if (ch == '[')
        return rx_class(r, e);
    if (ch == '.') {
        r->p++;
        crange any[3] = {{0, 9}, {11, 12}, {14, 0x2027}};
        crange all[4];
        memcpy(all, any, sizeof any);
        all[3] = (crange){0x202A, 0x10FFFF};
        emit_cset(e, all, 4);
        return true;
    }
    if (ch == '\\') {
        r->p++;
        if (r->p >= r->end)
            return rx_fail(r, "unfinished escape");
        char k = *r->p;
        cset s = {.n = 0, .neg = false};
        if (strchr("dwsDWS", k)) {
            r->p++;
            s.neg = k >= 'A' && k <= 'Z';
            if (!cs_class_escape(r, &s, (char)(k | 0x20)))
                return false;
            crange out[130];
            int n = cs_final(&s, out);
            emit_cset(e, out, n);
            return true;
        }
        if (k == 'b' || k == 'B')
            return rx_fail(r, "word boundaries are not supported");
        if (k >= '1' && k <= '9')
            return rx_fail(r, "backreferences are not supported");
        if (k == 'p' || k == 'P')
            return rx_fail(r, "Unicode property escapes are not supported");
        int32_t cp = rx_escape_char(r);
        if (cp < 0)
            return false;
        emit_char(e, (uint32_t)cp);
        return true;
    }
    if (ch == '^' || ch == '$')
        return rx_fail(r, "anchors are supported only at the start and the end");
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{')
        return rx_fail(r, "nothing to repeat");
    int32_t cp = rx_utf8(r);
    if (cp < 0)
        return false;
    emit_char(e, (uint32_t)cp);
    return true;
}

static bool rx_seq(rx *r, sbuf *e, int depth)
{
    sb_puts(e, "(");
    bool empty = true;
    while (r->p < r->end && *r->p != '|' && *r->p != ')') {
        if (*r->p == '$' && r->p + 1 == r->end)
            break;
        sb_puts(e, " (");
        if (!rx_atom(r, e, depth))
            return false;
        sb_puts(e, ")");
        empty = false;
        /* quantifiers */
        if (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?')) {
            sb_putn(e, r->p, 1);
            r->p++;
        } else if (r->p < r->end && *r->p == '{') {
            const char *q = r->p + 1;
            unsigned lo = 0, hi = 0;
            int n = 0;
            if (sscanf(q, "%u%n", &lo, &n) != 1)
                return rx_fail(r, "a literal '{' must be escaped");
            q += n;
            bool open = false;
            if (*q == ',') {
                q++;
                if (*q == '}')
                    open = true;
                else if (sscanf(q, "%u%n", &hi, &n) == 1)
                    q += n;
                else
                    return rx_fail(r, "bad {m,n} quantifier");
            } else
                hi = lo;
            if (*q != '}' || (!open && hi < lo) || lo > 10000 || hi > 10000)
                return rx_fail(r, "bad {m,n} quantifier");
            if (open)
                sb_printf(e, "{%u,}", lo);
            else
                sb_printf(e, "{%u,%u}", lo, hi);
            r->p = q + 1;
        } else
            continue;
        if (r->p < r->end && *r->p == '?')
            r->p++; /* lazy: the same language */
        if (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '{'))
            return rx_fail(r, "nested quantifier");
    }
    if (empty)
        sb_puts(e, " \"\"");
    sb_puts(e, ")");
    return true;
}

static bool rx_alt(rx *r, sbuf *e, int depth)
{
    if (depth > 32)
        return rx_fail(r, "groups nested too deeply");
    sb_puts(e, "(");
    if (!rx_seq(r, e, depth))
        return false;
    while (r->p < r->end && *r->p == '|') {
        r->p++;
        sb_puts(e, " | ");
        if (!rx_seq(r, e, depth))
            return false;
    }
    sb_puts(e, ")");
    return true;
}

/* The JSON string (with quotes) of values matching pattern. Unanchored
 * ends match anything, as in JSON Schema. */
static bool gen_pattern(sc *c, const char *pat, const char *path, sbuf *e)
{
    rx r = {c, path, pat, pat, pat + strlen(pat), false};
    bool start = r.p < r.end && *r.p == '^';
    if (start)
        r.p++;
    bool end = r.end > r.p && r.end[-1] == '$' && (r.end - 2 < r.p || r.end[-2] != '\\');
    sbuf body = {0};
    bool ok = rx_alt(&r, &body, 0);
    if (ok && r.p < r.end && !(end && r.p == r.end - 1))
        ok = rx_fail(&r, *r.p == ')' ? "unbalanced ')'" : "unexpected character");
    if (ok && body.oom)
        ok = oom(c);
    if (ok) {
        c->use_char = c->use_char || !start || !end;
        sb_puts(e, "\"\\\"\" ");
        if (!start)
            sb_puts(e, "jchar* ");
        sb_puts(e, body.s);
        if (!end)
            sb_puts(e, " jchar*");
        sb_puts(e, " \"\\\"\"");
    }
    free(body.s);
    return ok;
}

/* ---- numbers */

/* Digits of v (>= 0) into s; returns the count. */
static int digits_of(uint64_t v, char *s)
{
    return snprintf(s, 24, "%llu", (unsigned long long)v);
}

/* Decimal strings x <= y of the same length n: an expression for them. */
static void same_len(sbuf *e, const char *x, const char *y, int n)
{
    if (n == 0) {
        sb_puts(e, "\"\"");
        return;
    }
    if (!memcmp(x, y, (size_t)n)) {
        sb_lit(e, x, (size_t)n);
        return;
    }
    bool x_zeros = true, y_nines = true;
    for (int i = 1; i < n; i++) {
        x_zeros = x_zeros && x[i] == '0';
        y_nines = y_nines && y[i] == '9';
    }
    if (x[0] == y[0]) {
        sb_printf(e, "(\"%c\" ", x[0]);
        same_len(e, x + 1, y + 1, n - 1);
        sb_puts(e, ")");
        return;
    }
    if (x_zeros && y_nines) {
        sb_printf(e, "([%c-%c]", x[0], y[0]);
        if (n > 1)
            sb_printf(e, " [0-9]{%d}", n - 1);
        sb_puts(e, ")");
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    sb_printf(e, "((\"%c\" ", x[0]);
    same_len(e, x + 1, nines, n - 1);
    sb_puts(e, ")");
    if (x[0] + 1 <= y[0] - 1) {
        sb_printf(e, " | ([%c-%c]", x[0] + 1, y[0] - 1);
        if (n > 1)
            sb_printf(e, " [0-9]{%d}", n - 1);
        sb_puts(e, ")");
    }
    sb_printf(e, " | (\"%c\" ", y[0]);
    same_len(e, zeros, y + 1, n - 1);
    sb_puts(e, "))");
}

#define UNBOUNDED UINT64_MAX

/* Non-negative integers in [a, b] (b UNBOUNDED: up to INT_DIGITS_MAX digits). */
static void int_range(sbuf *e, uint64_t a, uint64_t b)
{
    char sa[24], sb[24];
    int la = digits_of(a, sa);
    int lb = b == UNBOUNDED ? (la > INT_DIGITS_MAX ? la : INT_DIGITS_MAX) : digits_of(b, sb);
    sb_puts(e, "(");
    for (int L = la; L <= lb; L++) {
        char lo[24], hi[24];
        if (L == la)
            memcpy(lo, sa, 24);
        else {
            memset(lo, '0', sizeof lo);
            lo[0] = '1';
        }
        if (L == lb && b != UNBOUNDED)
            memcpy(hi, sb, 24);
        else
            memset(hi, '9', sizeof hi);
        if (L > la)
            sb_puts(e, " | ");
        same_len(e, lo, hi, L);
    }
    sb_puts(e, ")");
}

typedef struct bound {
    bool set;
    double v;
    bool excl;
} bound;

static bool get_bounds(sc *c, const json_t *node, const char *path, bound *lo, bound *hi)
{
    const json_t *v;
    memset(lo, 0, sizeof *lo);
    memset(hi, 0, sizeof *hi);
    if ((v = json_object_get(node, "minimum")) && json_is_number(v))
        *lo = (bound){true, json_number_value(v), false};
    if ((v = json_object_get(node, "maximum")) && json_is_number(v))
        *hi = (bound){true, json_number_value(v), false};
    if ((v = json_object_get(node, "exclusiveMinimum"))) {
        if (json_is_number(v) && (!lo->set || json_number_value(v) >= lo->v))
            *lo = (bound){true, json_number_value(v), true};
        else if (json_is_true(v) && lo->set) /* draft 4 */
            lo->excl = true;
    }
    if ((v = json_object_get(node, "exclusiveMaximum"))) {
        if (json_is_number(v) && (!hi->set || json_number_value(v) <= hi->v))
            *hi = (bound){true, json_number_value(v), true};
        else if (json_is_true(v) && hi->set)
            hi->excl = true;
    }
    /* beyond 2^53 JSON numbers are not exact anyway; zod writes 2^53 - 1 as
     * the maximum of every integer */
    const double lim = 9007199254740992.0;
    if (lo->set && lo->v < -lim)
        lo->set = false;
    if (hi->set && hi->v > lim)
        hi->set = false;
    if ((lo->set && lo->v > lim) || (hi->set && hi->v < -lim))
        return fail(c, path, AL_ERR_UNSUPPORTED, "numeric bounds beyond 2^53 are not supported");
    return true;
}

static void gen_int(sc *c, const json_t *node, const char *path, sbuf *e)
{
    bound lo, hi;
    if (!get_bounds(c, node, path, &lo, &hi))
        return;
    if (!lo.set && !hi.set) {
        c->use_integer = true;
        sb_puts(e, "jinteger");
        return;
    }
    int64_t a = INT64_MIN, b = INT64_MAX;
    if (lo.set)
        a = lo.excl ? (int64_t)floor(lo.v) + 1 : (int64_t)ceil(lo.v);
    if (hi.set)
        b = hi.excl ? (int64_t)ceil(hi.v) - 1 : (int64_t)floor(hi.v);
    if (a > b) {
        fail(c, path, AL_ERR_FORMAT, "no integer lies between the minimum and the maximum");
        return;
    }
    sb_puts(e, "(");
    bool any = false;
    if (a < 0) { /* negatives: -x with x in [max(1, -b), -a] */
        uint64_t xlo = b < 0 ? (uint64_t)(-b) : 1, xhi = a == INT64_MIN ? UNBOUNDED : (uint64_t)(-a);
        sb_puts(e, "\"-\" ");
        int_range(e, xlo, xhi);
        any = true;
    }
    if (b >= 0) {
        if (any)
            sb_puts(e, " | ");
        int_range(e, a < 0 ? 0 : (uint64_t)a, b == INT64_MAX ? UNBOUNDED : (uint64_t)b);
    }
    sb_puts(e, ")");
}

#define FRAC "(\".\" [0-9]{1,16})"
#define ZERO_FRAC "(\".\" \"0\"{1,16})?"
#define NONZERO_FRAC "(\".\" \"0\"{0,15} [1-9] [0-9]{0,15})"

/* Non-negative decimals x with A <= x <= B (strict where aex / bex), A and
 * B integers, B may be UNBOUNDED; the caller checked the interval is not
 * empty. No exponents: bounded numbers are written plainly. */
static void mag_range(sbuf *e, uint64_t A, bool aex, uint64_t B, bool bex)
{
    char s[24];
    int n = digits_of(A, s);
    sb_puts(e, "(");
    if (B == A) { /* both inclusive */
        sb_lit(e, s, (size_t)n);
        sb_puts(e, " " ZERO_FRAC ")");
        return;
    }
    sb_lit(e, s, (size_t)n); /* integer part A */
    sb_puts(e, aex ? " " NONZERO_FRAC : " " FRAC "?");
    if (B == UNBOUNDED || A + 1 <= B - 1) {
        sb_puts(e, " | ");
        int_range(e, A + 1, B == UNBOUNDED ? UNBOUNDED : B - 1);
        sb_puts(e, " " FRAC "?");
    }
    if (B != UNBOUNDED && !bex) {
        n = digits_of(B, s);
        sb_puts(e, " | ");
        sb_lit(e, s, (size_t)n);
        sb_puts(e, " " ZERO_FRAC);
    }
    sb_puts(e, ")");
}

static void gen_number(sc *c, const json_t *node, const char *path, sbuf *e)
{
    bound lo, hi;
    if (!get_bounds(c, node, path, &lo, &hi))
        return;
    if (!lo.set && !hi.set) {
        c->use_number = true;
        sb_puts(e, "jnumber");
        return;
    }
    if ((lo.set && lo.v != floor(lo.v)) || (hi.set && hi.v != floor(hi.v))) {
        fail(c, path, AL_ERR_UNSUPPORTED, "bounds of a 'number' must be integers (got %g..%g)",
             lo.set ? lo.v : -INFINITY, hi.set ? hi.v : INFINITY);
        return;
    }
    if (lo.set && hi.set && (lo.v > hi.v || (lo.v == hi.v && (lo.excl || hi.excl)))) {
        fail(c, path, AL_ERR_FORMAT, "no number lies between the minimum and the maximum");
        return;
    }
    sb_puts(e, "(");
    bool any = false;
    /* x >= 0 */
    if (!hi.set || hi.v > 0 || (hi.v == 0 && !hi.excl)) {
        uint64_t A = lo.set && lo.v > 0 ? (uint64_t)lo.v : 0;
        bool aex = lo.set && lo.v >= 0 && lo.excl;
        uint64_t B = hi.set ? (uint64_t)hi.v : UNBOUNDED;
        mag_range(e, A, aex, B, hi.set && hi.excl);
        any = true;
    }
    /* x < 0: "-" then a magnitude in (0 or -hi, -lo] */
    if (!lo.set || lo.v < 0) {
        bool neg_hi = hi.set && hi.v < 0;
        uint64_t A = neg_hi ? (uint64_t)(-hi.v) : 0;
        bool aex = neg_hi ? hi.excl : true;
        uint64_t B = lo.set ? (uint64_t)(-lo.v) : UNBOUNDED;
        if (any)
            sb_puts(e, " | ");
        sb_puts(e, "(\"-\" ");
        mag_range(e, A, aex, B, lo.set && lo.excl);
        sb_puts(e, ")");
    }
    sb_puts(e, ")");
}

/* ---- strings */

static bool gen_string(sc *c, const json_t *node, const char *path, sbuf *e)
{
    const json_t *pat = json_object_get(node, "pattern");
    const json_t *fmt = json_object_get(node, "format");
    if (pat) {
        if (!json_is_string(pat))
            return fail(c, path, AL_ERR_FORMAT, "'pattern' must be a string");
        char *pp = subpath(path, "pattern");
        if (!pp)
            return oom(c);
        bool ok = gen_pattern(c, json_string_value(pat), pp, e);
        free(pp);
        return ok;
    }
    if (json_is_string(fmt)) {
        const char *f = json_string_value(fmt);
        static const char date[] =
            "[0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01])";
        static const char time_[] = "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,9})? "
                                    "(\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])";
        if (!strcmp(f, "date")) {
            sb_printf(e, "(\"\\\"\" %s \"\\\"\")", date);
            return true;
        }
        if (!strcmp(f, "time")) {
            sb_printf(e, "(\"\\\"\" %s \"\\\"\")", time_);
            return true;
        }
        if (!strcmp(f, "date-time")) {
            sb_printf(e, "(\"\\\"\" %s \"T\" %s \"\\\"\")", date, time_);
            return true;
        }
        if (!strcmp(f, "uuid")) {
            sb_puts(e, "(\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
                       "[0-9a-fA-F]{12} \"\\\"\")");
            return true;
        }
        /* other formats (email, uri, ...) are annotations here: any string */
    }
    const json_t *mn = json_object_get(node, "minLength"), *mx = json_object_get(node, "maxLength");
    if ((mn && (!json_is_integer(mn) || json_integer_value(mn) < 0)) ||
        (mx && (!json_is_integer(mx) || json_integer_value(mx) < 0)))
        return fail(c, path, AL_ERR_FORMAT, "minLength and maxLength must be non-negative integers");
    long long lo = mn ? json_integer_value(mn) : 0, hi = mx ? json_integer_value(mx) : -1;
    if (hi >= 0 && hi < lo)
        return fail(c, path, AL_ERR_FORMAT, "maxLength %lld is below minLength %lld", hi, lo);
    if (lo > 100000 || hi > 100000)
        return fail(c, path, AL_ERR_LIMIT, "string lengths above 100000 are not supported");
    c->use_char = true;
    if (!mn && !mx) {
        c->use_string = true;
        sb_puts(e, "jstring");
    } else if (hi < 0)
        sb_printf(e, "(\"\\\"\" jchar{%lld,} \"\\\"\")", lo);
    else
        sb_printf(e, "(\"\\\"\" jchar{%lld,%lld} \"\\\"\")", lo, hi);
    return true;
}

/* ---- containers */

static bool gen_sub(sc *c, const json_t *node, const char *path, const char *seg, sbuf *e)
{
    char *p = subpath(path, seg);
    if (!p)
        return oom(c);
    bool ok = gen(c, node, p, e);
    free(p);
    return ok;
}

static bool gen_array(sc *c, const json_t *node, const char *path, sbuf *e)
{
    const json_t *items = json_object_get(node, "items");
    const json_t *prefix = json_object_get(node, "prefixItems");
    const json_t *mn = json_object_get(node, "minItems"), *mx = json_object_get(node, "maxItems");
    if ((mn && (!json_is_integer(mn) || json_integer_value(mn) < 0)) ||
        (mx && (!json_is_integer(mx) || json_integer_value(mx) < 0)))
        return fail(c, path, AL_ERR_FORMAT, "minItems and maxItems must be non-negative integers");
    long long lo = mn ? json_integer_value(mn) : 0, hi = mx ? json_integer_value(mx) : -1;
    if (hi >= 0 && hi < lo)
        return fail(c, path, AL_ERR_FORMAT, "maxItems %lld is below minItems %lld", hi, lo);
    if (lo > 10000 || hi > 10000)
        return fail(c, path, AL_ERR_LIMIT, "array lengths above 10000 are not supported");
    use_ws(c);
    if (json_is_array(items) && !prefix) { /* draft 4 tuple form */
        prefix = items;
        items = json_object_get(node, "additionalItems");
    }
    if (prefix && !json_is_array(prefix))
        return fail(c, path, AL_ERR_FORMAT, "'prefixItems' must be a list of schemas");
    size_t np = prefix ? json_array_size(prefix) : 0;
    /* the element expression */
    sbuf item = {0};
    bool items_false = json_is_false(items);
    if (!items_false) {
        if (items && !gen_sub(c, items, path, "items", &item)) {
            free(item.s);
            return false;
        }
        if (!items) {
            c->use_value = true;
            sb_puts(&item, "jvalue");
        }
    }
    if (item.oom) {
        free(item.s);
        return oom(c);
    }
    sb_puts(e, "(\"[\" ws ");
    if (np == 0) {
        if (items_false)
            sb_puts(e, "\"]\")");
        else if (hi == 0)
            sb_puts(e, "\"]\")");
        else {
            /* lo >= 1: item (, item){lo-1, hi-1}; lo == 0: optional */
            long long rlo = lo > 0 ? lo - 1 : 0, rhi = hi < 0 ? -1 : hi - 1;
            sb_printf(e, "%s%s ws (\",\" ws %s ws)", lo == 0 ? "(" : "", item.s, item.s);
            if (rhi < 0)
                sb_printf(e, "{%lld,}", rlo);
            else
                sb_printf(e, "{%lld,%lld}", rlo, rhi);
            sb_puts(e, lo == 0 ? ")?" : "");
            sb_puts(e, " \"]\")");
        }
        free(item.s);
        return true;
    }
    /* tuples: the prefix items, each required up to minItems */
    size_t n_req = (size_t)lo < np ? (size_t)lo : np;
    size_t n_max = hi >= 0 && (size_t)hi < np ? (size_t)hi : np;
    if (n_req > n_max)
        n_req = n_max;
    sbuf *pe = calloc(np ? np : 1, sizeof *pe);
    if (!pe) {
        free(item.s);
        return oom(c);
    }
    bool ok = true;
    for (size_t i = 0; i < n_max && ok; i++) {
        char *p = subpath_i(path, "prefixItems", i);
        ok = p ? gen(c, json_array_get(prefix, i), p, &pe[i]) : oom(c);
        free(p);
    }
    if (ok) {
        /* p0 ws ("," ws p1 ws ( ... )?)? with nesting for the optional ones */
        int open = 0;
        for (size_t i = 0; i < n_max; i++) {
            if (i >= n_req) {
                sb_puts(e, "(");
                open++;
            }
            if (i > 0)
                sb_puts(e, "\",\" ws ");
            sb_printf(e, "%s ws ", pe[i].s ? pe[i].s : "\"\"");
        }
        /* more items after the tuple */
        if (!items_false && items && (hi < 0 || (size_t)hi > np)) {
            long long extra_lo = lo > (long long)np ? lo - (long long)np : 0;
            long long extra_hi = hi < 0 ? -1 : hi - (long long)np;
            if (extra_hi < 0)
                sb_printf(e, "(\",\" ws %s ws){%lld,} ", item.s, extra_lo);
            else
                sb_printf(e, "(\",\" ws %s ws){%lld,%lld} ", item.s, extra_lo, extra_hi);
        }
        for (int i = 0; i < open; i++)
            sb_puts(e, ")? ");
        sb_puts(e, "\"]\")");
    }
    for (size_t i = 0; i < np; i++)
        free(pe[i].s);
    free(pe);
    free(item.s);
    return ok;
}

typedef struct prop {
    const char *key;
    const json_t *schema;
    bool required;
} prop;

/* An object without declared properties: a map whose keys are strings (or
 * what propertyNames says, a string schema) and whose values follow
 * additionalProperties (any value when absent or true). */
static bool gen_map(sc *c, const json_t *node, const char *path, sbuf *e, const json_t *addl)
{
    if (json_is_false(addl)) {
        sb_puts(e, "(\"{\" ws \"}\")");
        return true;
    }
    /* keys: strings, or what propertyNames says (a string schema) */
    sbuf k = {0};
    const json_t *pn = json_object_get(node, "propertyNames");
    if (pn && !json_is_true(pn) && !(json_is_object(pn) && json_object_size(pn) == 0)) {
        if (!gen_sub(c, pn, path, "propertyNames", &k)) {
            free(k.s);
            return false;
        }
    } else {
        c->use_string = c->use_char = true;
        sb_puts(&k, "jstring");
    }
    sbuf v = {0};
    if (json_is_object(addl)) {
        if (!gen_sub(c, addl, path, "additionalProperties", &v)) {
            free(v.s);
            free(k.s);
            return false;
        }
    } else {
        c->use_value = true;
        sb_puts(&v, "jvalue");
    }
    sb_printf(e, "(\"{\" ws (%s ws \":\" ws %s ws (\",\" ws %s ws \":\" ws %s ws)*)? \"}\")", k.s, v.s, k.s, v.s);
    bool ok = !v.oom && !k.oom;
    free(v.s);
    free(k.s);
    return ok || oom(c);
}

/* The rules of an object's members me[0..kept) (pr: their keys and whether
 * they are required), in order, each optional one skippable, commas
 * between; e receives the object's expression. */
static bool gen_members(sc *c, const char *path, sbuf *e, const sbuf *me, const prop *pr, size_t kept)
{
    bool ok = true;
    /* F_i: members i.. with none before; K_i: members i.. after one.
     * F_i = M_i K_{i+1} | F_{i+1} (optional) ; K_i = "," ws M_i K_{i+1} | K_{i+1} */
    uint32_t base = c->n_rules;
    for (size_t i = 0; i < kept && ok; i++) {
        if (new_rule(c, path) == UINT32_MAX || new_rule(c, path) == UINT32_MAX)
            ok = false;
    }
    /* only the rules reachable from F_0 (the grammar refuses others) */
    bool needF = true, needK = false;
    for (size_t i = 0; i < kept && ok; i++) {
        uint32_t F = base + 2 * (uint32_t)i, K = F + 1;
        char next_k[24] = "\"\"", next_f[24] = "\"\"";
        if (i + 1 < kept) {
            snprintf(next_k, sizeof next_k, "r%u", K + 2);
            snprintf(next_f, sizeof next_f, "r%u", F + 2);
        }
        bool nf = false, nk = false;
        if (needF) {
            sb_printf(&c->out, "r%u ::= %s %s", F, me[i].s, next_k);
            if (!pr[i].required)
                sb_printf(&c->out, " | %s", next_f);
            sb_puts(&c->out, "\n");
            nk = true;
            nf = !pr[i].required;
        }
        if (needK) {
            sb_printf(&c->out, "r%u ::= \",\" ws %s %s", K, me[i].s, next_k);
            if (!pr[i].required)
                sb_printf(&c->out, " | %s", next_k);
            sb_puts(&c->out, "\n");
            nk = true;
        }
        needF = nf;
        needK = nk;
    }
    if (ok) {
        if (kept)
            sb_printf(e, "(\"{\" ws r%u \"}\")", base);
        else
            sb_puts(e, "(\"{\" ws \"}\")");
    }
    return ok;
}

/* Merges allOf subschemas that are objects: properties and required. */
static bool gen_object(sc *c, const json_t *node, const char *path, sbuf *e, const json_t *extra_props,
                       const json_t *extra_req)
{
    const json_t *props = json_object_get(node, "properties");
    const json_t *req = json_object_get(node, "required");
    const json_t *addl = json_object_get(node, "additionalProperties");
    if (props && !json_is_object(props))
        return fail(c, path, AL_ERR_FORMAT, "'properties' must be an object");
    if (req && !json_is_array(req))
        return fail(c, path, AL_ERR_FORMAT, "'required' must be a list of names");
    size_t n = (props ? json_object_size(props) : 0) + (extra_props ? json_object_size(extra_props) : 0);
    if (n > c->lim.max_properties) {
        char *pp = subpath(path, "properties");
        fail(c, pp ? pp : path, AL_ERR_LIMIT, "%zu properties (the limit is %u per object)", n, c->lim.max_properties);
        free(pp);
        return false;
    }
    use_ws(c);
    if (n == 0)
        return gen_map(c, node, path, e, addl);
    const json_t *pn = json_object_get(node, "propertyNames");
    if (pn && !json_is_true(pn) && !(json_is_object(pn) && json_object_size(pn) == 0) &&
        !(json_is_object(pn) && json_object_size(pn) == 1 && json_is_string(json_object_get(pn, "type")) &&
          !strcmp(json_string_value(json_object_get(pn, "type")), "string")))
        return fail(c, path, AL_ERR_UNSUPPORTED, "'propertyNames' is supported only for objects without 'properties'");
    prop *pr = calloc(n, sizeof *pr);
    if (!pr)
        return oom(c);
    size_t k = 0;
    const char *key;
    json_t *val;
    for (int pass = 0; pass < 2; pass++) {
        const json_t *ps = pass == 0 ? props : extra_props;
        if (!ps)
            continue;
        json_object_foreach((json_t *)ps, key, val)
        {
            size_t dup = k;
            for (size_t i = 0; i < k; i++)
                if (!strcmp(pr[i].key, key))
                    dup = i;
            pr[dup].key = key;
            pr[dup].schema = val;
            if (dup == k)
                k++;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        const json_t *rq = pass == 0 ? req : extra_req;
        size_t i;
        json_t *r;
        if (!json_is_array(rq))
            continue;
        json_array_foreach((json_t *)rq, i, r)
        {
            if (!json_is_string(r)) {
                free(pr);
                return fail(c, path, AL_ERR_FORMAT, "'required' must be a list of names");
            }
            for (size_t j = 0; j < k; j++)
                if (!strcmp(pr[j].key, json_string_value(r)))
                    pr[j].required = true;
        }
    }
    n = k;
    /* member expressions */
    sbuf *me = calloc(n, sizeof *me);
    if (!me) {
        free(pr);
        return oom(c);
    }
    bool ok = true;
    size_t kept = 0;
    for (size_t i = 0; i < n && ok; i++) {
        if (json_is_false(pr[i].schema)) { /* a forbidden property */
            if (pr[i].required) {
                ok = fail(c, path, AL_ERR_FORMAT, "property '%s' is required but its schema is false", pr[i].key);
                break;
            }
            continue;
        }
        char *pp = subpath(path, "properties");
        char *p2 = pp ? subpath(pp, pr[i].key) : NULL;
        free(pp);
        if (!p2) {
            ok = oom(c);
            break;
        }
        json_t *ks = json_string(pr[i].key);
        char *kd = ks ? json_dumps(ks, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(ks);
        if (!kd) {
            free(p2);
            ok = oom(c);
            break;
        }
        sb_lit(&me[kept], kd, strlen(kd));
        free(kd);
        sb_puts(&me[kept], " ws \":\" ws ");
        ok = gen(c, pr[i].schema, p2, &me[kept]);
        sb_puts(&me[kept], " ws");
        free(p2);
        pr[kept] = pr[i];
        kept++;
    }
    for (size_t i = 0; ok && i < kept; i++)
        if (me[i].oom) /* a member's text would be cut short */
            ok = oom(c);
    if (ok)
        ok = gen_members(c, path, e, me, pr, kept);
    for (size_t i = 0; i < n; i++)
        free(me[i].s);
    free(me);
    free(pr);
    return ok;
}

static bool is_type(const json_t *t, const char *name)
{
    if (json_is_string(t))
        return !strcmp(json_string_value(t), name);
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)t, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return true;
    return false;
}

/* One JSON value as a GBNF literal. */
static bool gen_literal(sc *c, const json_t *v, sbuf *e)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        return oom(c);
    sb_lit(e, s, strlen(s));
    free(s);
    return true;
}

static bool gen_typed(sc *c, const json_t *node, const char *type, const char *path, sbuf *e)
{
    if (!strcmp(type, "string"))
        return gen_string(c, node, path, e);
    if (!strcmp(type, "integer")) {
        gen_int(c, node, path, e);
        return c->st == AL_OK;
    }
    if (!strcmp(type, "number")) {
        gen_number(c, node, path, e);
        return c->st == AL_OK;
    }
    if (!strcmp(type, "boolean")) {
        sb_puts(e, "(\"true\" | \"false\")");
        return true;
    }
    if (!strcmp(type, "null")) {
        sb_puts(e, "\"null\"");
        return true;
    }
    if (!strcmp(type, "object"))
        return gen_object(c, node, path, e, NULL, NULL);
    if (!strcmp(type, "array"))
        return gen_array(c, node, path, e);
    return fail(c, path, AL_ERR_FORMAT, "unknown type '%s'", type);
}

/* {"$ref": ...}: the schema it names, after any chain of plain references
 * (a loop of them is an error naming the reference). */
static bool gen_ref(sc *c, const json_t *ref, const char *path, sbuf *e)
{
    if (!json_is_string(ref))
        return fail(c, path, AL_ERR_FORMAT, "'$ref' must be a string");
    const json_t *t = resolve_ref(c, json_string_value(ref), path);
    if (!t)
        return false;
    /* follow plain reference chains here, to name a loop */
    const json_t *seen[64];
    int ns = 0;
    while (json_is_object(t) && json_object_size(t) == 1 && json_is_string(json_object_get(t, "$ref"))) {
        for (int i = 0; i < ns; i++)
            if (seen[i] == t)
                return fail(c, path, AL_ERR_FORMAT, "$ref '%s' is a loop of references that never reaches a schema",
                            json_string_value(ref));
        if (ns == 64)
            return fail(c, path, AL_ERR_LIMIT, "$ref chain longer than 64");
        seen[ns++] = t;
        const char *r2 = json_string_value(json_object_get(t, "$ref"));
        t = resolve_ref(c, r2, path);
        if (!t)
            return false;
    }
    char loc[512];
    snprintf(loc, sizeof loc, "%s", json_string_value(ref));
    return gen(c, t, loc, e);
}

/* allOf: one schema, or objects whose properties and required lists are
 * merged (the only combinations supported). */
static bool gen_all_of(sc *c, const json_t *node, const json_t *all, const char *path, sbuf *e)
{
    if (!json_is_array(all) || json_array_size(all) == 0)
        return fail(c, path, AL_ERR_FORMAT, "'allOf' must be a non-empty list");
    if (json_array_size(all) == 1)
        return gen_sub(c, json_array_get(all, 0), path, "allOf/0", e);
    /* objects: merge properties and required */
    json_t *mp = json_object(), *mr = json_array();
    bool ok = mp && mr;
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)all, i, v)
    {
        const json_t *s = v;
        if (ok && json_is_object(s) && json_is_string(json_object_get(s, "$ref")))
            s = resolve_ref(c, json_string_value(json_object_get(s, "$ref")), path);
        if (!ok || !s || !json_is_object(s) ||
            !(json_object_get(s, "properties") || is_type(json_object_get(s, "type"), "object"))) {
            if (ok && c->st == AL_OK)
                fail(c, path, AL_ERR_UNSUPPORTED, "'allOf' is supported for one schema or for objects only");
            ok = false;
            break;
        }
        json_t *p = json_object_get(s, "properties"), *r = json_object_get(s, "required");
        if (json_is_object(p))
            json_object_update(mp, p);
        if (json_is_array(r))
            json_array_extend(mr, r);
    }
    if (ok)
        ok = gen_object(c, node, path, e, mp, mr);
    json_decref(mp);
    json_decref(mr);
    return ok;
}

static bool gen_body(sc *c, const json_t *node, const char *path, sbuf *e)
{
    if (json_is_true(node) || (json_is_object(node) && json_object_size(node) == 0)) {
        c->use_value = true;
        sb_puts(e, "jvalue");
        return true;
    }
    if (json_is_false(node))
        return fail(c, path, AL_ERR_FORMAT, "the schema 'false' matches nothing");
    if (!json_is_object(node))
        return fail(c, path, AL_ERR_FORMAT, "a schema must be an object or a boolean");
    static const char *const unsupported[] = {"not", "if", "then", "else", "dependentSchemas", "dependentRequired",
                                              "patternProperties", "contains", "unevaluatedProperties",
                                              "unevaluatedItems", "$dynamicRef", "$recursiveRef"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (json_object_get(node, unsupported[i]))
            return fail(c, path, AL_ERR_UNSUPPORTED, "keyword '%s' is not supported", unsupported[i]);
    const json_t *ref = json_object_get(node, "$ref");
    if (ref)
        return gen_ref(c, ref, path, e);
    const json_t *cnst = json_object_get(node, "const");
    if (cnst)
        return gen_literal(c, cnst, e);
    const json_t *en = json_object_get(node, "enum");
    if (en) {
        if (!json_is_array(en) || json_array_size(en) == 0)
            return fail(c, path, AL_ERR_FORMAT, "'enum' must be a non-empty list");
        sb_puts(e, "(");
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)en, i, v)
        {
            if (i)
                sb_puts(e, " | ");
            if (!gen_literal(c, v, e))
                return false;
        }
        sb_puts(e, ")");
        return true;
    }
    const char *alt_kw = json_object_get(node, "anyOf") ? "anyOf" : json_object_get(node, "oneOf") ? "oneOf" : NULL;
    if (alt_kw) {
        const json_t *alts = json_object_get(node, alt_kw);
        if (!json_is_array(alts) || json_array_size(alts) == 0)
            return fail(c, path, AL_ERR_FORMAT, "'%s' must be a non-empty list", alt_kw);
        sb_puts(e, "(");
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)alts, i, v)
        {
            if (i)
                sb_puts(e, " | ");
            char *p = subpath_i(path, alt_kw, i);
            bool ok = p ? gen(c, v, p, e) : oom(c);
            free(p);
            if (!ok)
                return false;
        }
        sb_puts(e, ")");
        return true;
    }
    const json_t *all = json_object_get(node, "allOf");
    if (all)
        return gen_all_of(c, node, all, path, e);
    const json_t *type = json_object_get(node, "type");
    bool nullable = json_is_true(json_object_get(node, "nullable"));
    if (type && !json_is_string(type) && !json_is_array(type))
        return fail(c, path, AL_ERR_FORMAT, "'type' must be a string or a list of strings");
    if (!type) {
        /* inferred from the keywords present, else any value */
        const char *inferred = NULL;
        if (json_object_get(node, "properties") || json_object_get(node, "additionalProperties") ||
            json_object_get(node, "required"))
            inferred = "object";
        else if (json_object_get(node, "items") || json_object_get(node, "prefixItems") ||
                 json_object_get(node, "minItems") || json_object_get(node, "maxItems"))
            inferred = "array";
        else if (json_object_get(node, "pattern") || json_object_get(node, "format") ||
                 json_object_get(node, "minLength") || json_object_get(node, "maxLength"))
            inferred = "string";
        else if (json_object_get(node, "minimum") || json_object_get(node, "maximum") ||
                 json_object_get(node, "exclusiveMinimum") || json_object_get(node, "exclusiveMaximum"))
            inferred = "number";
        if (!inferred) {
            c->use_value = true;
            sb_puts(e, "jvalue");
            return true;
        }
        if (!nullable)
            return gen_typed(c, node, inferred, path, e);
        sb_puts(e, "(");
        if (!gen_typed(c, node, inferred, path, e))
            return false;
        sb_puts(e, " | \"null\")");
        return true;
    }
    if (json_is_string(type) && !nullable)
        return gen_typed(c, node, json_string_value(type), path, e);
    sb_puts(e, "(");
    size_t nt = json_is_string(type) ? 1 : json_array_size(type);
    if (nt == 0)
        return fail(c, path, AL_ERR_FORMAT, "'type' is an empty list");
    bool has_null = false;
    for (size_t i = 0; i < nt; i++) {
        const json_t *t = json_is_string(type) ? type : json_array_get(type, i);
        if (!json_is_string(t))
            return fail(c, path, AL_ERR_FORMAT, "'type' must be a string or a list of strings");
        if (i)
            sb_puts(e, " | ");
        has_null = has_null || !strcmp(json_string_value(t), "null");
        if (!gen_typed(c, node, json_string_value(t), path, e))
            return false;
    }
    if (nullable && !has_null)
        sb_puts(e, " | \"null\"");
    sb_puts(e, ")");
    return true;
}

/* Every subschema becomes a rule rN (memoised by node, so references and
 * recursion reuse it); e gets a reference to it. */
static bool gen(sc *c, const json_t *node, const char *path, sbuf *e)
{
    if (c->st != AL_OK || !time_ok(c, path))
        return false;
    for (size_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].node == node) {
            sb_printf(e, "r%u", c->memo[i].rule);
            return true;
        }
    if (c->depth >= c->lim.max_schema_depth)
        return fail(c, path, AL_ERR_LIMIT, "subschemas nested deeper than %u", c->lim.max_schema_depth);
    uint32_t r = new_rule(c, path);
    if (r == UINT32_MAX)
        return false;
    if (c->n_memo == c->cap_memo) {
        size_t nc = c->cap_memo ? c->cap_memo * 2 : 32;
        memo *nm = realloc(c->memo, nc * sizeof *nm);
        if (!nm)
            return oom(c);
        c->memo = nm;
        c->cap_memo = nc;
    }
    c->memo[c->n_memo].node = node;
    c->memo[c->n_memo++].rule = r;
    c->depth++;
    sbuf body = {0};
    bool ok = gen_body(c, node, path, &body);
    c->depth--;
    if (ok && body.oom)
        ok = oom(c);
    if (ok) {
        sb_printf(&c->out, "# r%u ", r);
        for (const char *q = path; *q; q++)
            sb_putn(&c->out, (unsigned char)*q < 0x20 ? "?" : q, 1);
        sb_printf(&c->out, "\nr%u ::= %s\n", r, body.s);
        sb_printf(e, "r%u", r);
    }
    free(body.s);
    return ok;
}

static const char k_prims_ws[] = "ws ::= (\" \" | \"\\n\" \" \"{0,20})?\n";
static const char k_prims_char[] =
    "jchar ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" juesc)\n"
    "juesc ::= ([0-9a-cA-Ce-fE-F] [0-9a-fA-F] | [dD] [0-7]) [0-9a-fA-F]{2}"
    " | [dD] [89abAB] [0-9a-fA-F]{2} \"\\\\u\" [dD] [c-fC-F] [0-9a-fA-F]{2}\n";
static const char k_prims_string[] = "jstring ::= \"\\\"\" jchar* \"\\\"\"\n";
static const char k_prims_integer[] = "jinteger ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n";
static const char k_prims_number[] =
    "jnumber ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?\n";
static const char k_prims_value[] =
    "jvalue ::= jobject | jarray | jstring | jnumber | \"true\" | \"false\" | \"null\"\n"
    "jobject ::= \"{\" ws (jstring ws \":\" ws jvalue ws (\",\" ws jstring ws \":\" ws jvalue ws)*)? \"}\"\n"
    "jarray ::= \"[\" ws (jvalue ws (\",\" ws jvalue ws)*)? \"]\"\n";

al_status al_json_schema_to_gbnf(const char *schema, size_t len, const al_grammar_limits *limits, char **gbnf,
                                 al_error *err)
{
    if (!gbnf)
        return al_err(err, AL_ERR_ARG, "al_json_schema_to_gbnf: no output pointer");
    *gbnf = NULL;
    json_error_t je;
    json_t *root = json_loadb(schema ? schema : "", len, JSON_DECODE_ANY, &je);
    if (!root)
        return al_err(err, AL_ERR_FORMAT, "schema: invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    sc c;
    memset(&c, 0, sizeof c);
    c.root = root;
    c.err = err;
    c.st = AL_OK;
    c.lim = limits ? *limits : al_grammar_default_limits();
    clock_gettime(CLOCK_MONOTONIC, &c.t0);
    sbuf top = {0};
    if (gen(&c, root, "#", &top)) {
        if (c.use_value)
            c.use_string = c.use_number = c.use_ws = true;
        if (c.use_string)
            c.use_char = true;
        sbuf all = {0};
        sb_printf(&all, "root ::= %s\n", top.s);
        sb_puts(&all, c.out.s ? c.out.s : "");
        if (c.use_ws)
            sb_puts(&all, k_prims_ws);
        if (c.use_char)
            sb_puts(&all, k_prims_char);
        if (c.use_string)
            sb_puts(&all, k_prims_string);
        if (c.use_integer)
            sb_puts(&all, k_prims_integer);
        if (c.use_number)
            sb_puts(&all, k_prims_number);
        if (c.use_value)
            sb_puts(&all, k_prims_value);
        if (all.oom || c.out.oom || top.oom) {
            free(all.s);
            oom(&c);
        } else
            *gbnf = all.s;
    }
    free(top.s);
    free(c.out.s);
    for (uint32_t i = 0; i < c.n_rules; i++)
        free(c.rule_path[i]);
    free(c.rule_path);
    free(c.memo);
    json_decref(root);
    return *gbnf ? AL_OK : (c.st != AL_OK ? c.st : AL_ERR_NOMEM);
}

/* Renames every rule of GBNF text g: root becomes name, any other rule R
 * becomes name-R. Skips literals, classes, repetition counts, comments. */
static char *rename_rules(const char *g, const char *name)
{
    sbuf o = {0};
    size_t nl = strlen(name);
    for (const char *p = g; *p;) {
        char c = *p;
        if (c == '"' || c == '[') {
            char close = c == '"' ? '"' : ']';
            const char *q = p + 1;
            while (*q && *q != close)
                q += (*q == '\\' && q[1]) ? 2 : 1;
            if (*q)
                q++;
            sb_putn(&o, p, (size_t)(q - p));
            p = q;
        } else if (c == '{' || c == '#') {
            const char *q = p;
            while (*q && *q != (c == '{' ? '}' : '\n'))
                q++;
            sb_putn(&o, p, (size_t)(q - p));
            p = q;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_') {
            const char *q = p;
            while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' ||
                   *q == '_')
                q++;
            if (q - p == 4 && !memcmp(p, "root", 4))
                sb_putn(&o, name, nl);
            else {
                sb_putn(&o, name, nl);
                sb_putn(&o, "-", 1);
                sb_putn(&o, p, (size_t)(q - p));
            }
            p = q;
        } else {
            sb_putn(&o, p, 1);
            p++;
        }
    }
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    return o.s ? o.s : strdup("");
}

al_status al_json_schema_to_gbnf_rule(const char *schema, size_t len, const char *name,
                                      const al_grammar_limits *limits, char **gbnf, al_error *err)
{
    if (!gbnf)
        return al_err(err, AL_ERR_ARG, "al_json_schema_to_gbnf_rule: no output pointer");
    *gbnf = NULL;
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != nl)
        return al_err(err, AL_ERR_ARG, "grammar rule name '%.64s': use 1-64 letters, digits or '-'", name ? name : "");
    char *g = NULL;
    al_status st = al_json_schema_to_gbnf(schema, len, limits, &g, err);
    if (st != AL_OK)
        return st;
    *gbnf = rename_rules(g, name);
    free(g);
    return *gbnf ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
}

/* A rule name rN in a GBNF error becomes the schema location it was made
 * for (from the "# rN LOCATION" comment before its definition). */
static void name_locations(al_error *err, const char *gbnf)
{
    if (!err)
        return;
    char *q = strstr(err->msg, "rule 'r");
    if (!q)
        return;
    unsigned long n = strtoul(q + 7, NULL, 10);
    char tag[32];
    snprintf(tag, sizeof tag, "# r%lu ", n);
    const char *c = strstr(gbnf, tag);
    if (!c)
        return;
    c += strlen(tag);
    const char *e = strchr(c, '\n');
    size_t len = e ? (size_t)(e - c) : strlen(c);
    char old[600], msg[sizeof err->msg];
    memcpy(old, err->msg, sizeof old - 1);
    old[sizeof old - 1] = '\0';
    snprintf(msg, sizeof msg, "at %.*s: %s", (int)(len > 400 ? 400 : len), c, old);
    memcpy(err->msg, msg, sizeof msg);
}

al_status al_grammar_from_json_schema(const char *schema, size_t len, const al_grammar_limits *limits,
                                      al_grammar **out, al_error *err)
{
    if (!out)
        return al_err(err, AL_ERR_ARG, "al_grammar_from_json_schema: no output pointer");
    *out = NULL;
    char *g = NULL;
    al_status st = al_json_schema_to_gbnf(schema, len, limits, &g, err);
    if (st != AL_OK)
        return st;
    st = al_grammar_from_gbnf(g, strlen(g), limits, out, err);
    if (st != AL_OK) {
        name_locations(err, g);
        al_err_prefix(err, "schema");
    }
    free(g);
    return st;
}
