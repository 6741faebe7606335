/*
 * grammar.c - the GBNF compiler (see grammar.h).
 *
 * GBNF as llama.cpp's server takes it: rules `name ::= alternatives`,
 * `|` between alternatives, "literals", [character classes] (with ^, ranges
 * and escapes), `.` (any character), ( groups ), rule names, and the
 * postfix operators * + ? {m} {m,} {m,n}; `#` starts a comment. A rule ends
 * at a newline unless inside parentheses or after `|` (or when the next
 * line starts with `|`).
 *
 * Literals and classes are over code points; they are compiled into byte
 * elements: an ASCII class is one byte set, other classes become a rule
 * whose alternatives are the UTF-8 byte sequences of their ranges.
 * Repetitions become rules: x* is R ::= x R | (empty), x{0,n} nests
 * optionals so that no repetition is ambiguous.
 *
 * After parsing, the grammar is checked: `root` exists, every rule is
 * defined and reachable from root, every rule can complete, nothing is
 * left-recursive (which the matcher's expansion would loop on).
 */
#include "sampling/grammar_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"
#include "util/hash.h"
#include "util/utf8.h"

al_grammar_limits al_grammar_default_limits(void)
{
    al_grammar_limits l;
    l.max_elements = 1u << 20;
    l.max_rules = 1u << 17;
    l.max_properties = 1000;
    l.max_schema_depth = 64;
    l.max_seconds = 2.0;
    return l;
}

/* ------------------------------------------------------------- builder */

typedef struct u32vec {
    uint32_t *v;
    size_t n, cap;
} u32vec;

static bool vpush(u32vec *a, uint32_t x)
{
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 8;
        uint32_t *p = realloc(a->v, c * sizeof *p);
        if (!p)
            return false;
        a->v = p;
        a->cap = c;
    }
    a->v[a->n++] = x;
    return true;
}

typedef struct brule {
    char *name;      /* owned */
    u32vec body;     /* alternatives, each ended by GE_END */
    bool defined;
    bool generated;  /* made by the compiler (groups, repetitions, classes) */
    uint32_t origin; /* generated: the user rule it was made for */
    int def_line, def_col;
    int ref_line, ref_col; /* first reference (for "undefined" errors) */
} brule;

typedef struct builder {
    brule *rules;
    uint32_t n_rules, cap_rules;
    ge_set *sets;
    uint32_t n_sets, cap_sets;
    uint32_t *set_hash; /* open addressing: set index + 1, 0 empty */
    uint32_t set_hash_cap;
    uint64_t n_elems;   /* elements so far, all rules */
    al_grammar_limits lim;
    struct timespec t0;
    bool oom;
    /* class rules by their range list, so a class used often is one rule */
    char **class_keys;
    uint32_t *class_rule;
    uint32_t n_class, cap_class;
} builder;

static double elapsed(const builder *b)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - b->t0.tv_sec) + (double)(t.tv_nsec - b->t0.tv_nsec) * 1e-9;
}

static void builder_free(builder *b)
{
    for (uint32_t i = 0; i < b->n_rules; i++) {
        free(b->rules[i].name);
        free(b->rules[i].body.v);
    }
    free(b->rules);
    free(b->sets);
    free(b->set_hash);
    for (uint32_t i = 0; i < b->n_class; i++)
        free(b->class_keys[i]);
    free(b->class_keys);
    free(b->class_rule);
    memset(b, 0, sizeof *b);
}

static uint64_t mix64(uint64_t h, uint64_t x)
{
    h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 33);
}

static uint32_t set_hash_of(const ge_set *s)
{
    uint64_t h = 0;
    for (int i = 0; i < 4; i++)
        h = mix64(h, s->w[i]);
    return (uint32_t)h;
}

/* Index of the byte set s (added if new), or UINT32_MAX when out of memory. */
static uint32_t intern_set(builder *b, const ge_set *s)
{
    if (b->n_sets * 2 >= b->set_hash_cap) {
        uint32_t nc = b->set_hash_cap ? b->set_hash_cap * 2 : 256;
        uint32_t *nh = calloc(nc, sizeof *nh);
        if (!nh)
            return UINT32_MAX;
        for (uint32_t i = 0; i < b->n_sets; i++) {
            uint32_t p = set_hash_of(&b->sets[i]) & (nc - 1);
            while (nh[p])
                p = (p + 1) & (nc - 1);
            nh[p] = i + 1;
        }
        free(b->set_hash);
        b->set_hash = nh;
        b->set_hash_cap = nc;
    }
    uint32_t p = set_hash_of(s) & (b->set_hash_cap - 1);
    while (b->set_hash[p]) {
        uint32_t i = b->set_hash[p] - 1;
        if (!memcmp(&b->sets[i], s, sizeof *s))
            return i;
        p = (p + 1) & (b->set_hash_cap - 1);
    }
    if (b->n_sets == b->cap_sets) {
        uint32_t c = b->cap_sets ? b->cap_sets * 2 : 64;
        ge_set *ns = realloc(b->sets, c * sizeof *ns);
        if (!ns)
            return UINT32_MAX;
        b->sets = ns;
        b->cap_sets = c;
    }
    b->sets[b->n_sets] = *s;
    b->set_hash[p] = b->n_sets + 1;
    return b->n_sets++;
}

static uint32_t find_rule(const builder *b, const char *name, size_t n)
{
    for (uint32_t i = 0; i < b->n_rules; i++)
        if (!b->rules[i].generated && strlen(b->rules[i].name) == n && !memcmp(b->rules[i].name, name, n))
            return i;
    return UINT32_MAX;
}

static uint32_t add_rule(builder *b, const char *name, size_t n, bool generated, uint32_t origin)
{
    if (b->n_rules == b->cap_rules) {
        uint32_t c = b->cap_rules ? b->cap_rules * 2 : 64;
        brule *nr = realloc(b->rules, c * sizeof *nr);
        if (!nr)
            return UINT32_MAX;
        b->rules = nr;
        b->cap_rules = c;
    }
    brule *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    r->name = malloc(n + 1);
    if (!r->name)
        return UINT32_MAX;
    memcpy(r->name, name, n);
    r->name[n] = '\0';
    r->generated = generated;
    r->origin = generated ? origin : b->n_rules;
    return b->n_rules++;
}

/* ------------------------------------------------------------- parser */

typedef struct parser {
    builder *b;
    const char *src, *p, *end;
    al_error *err;
    al_status st;     /* AL_OK until the first error */
    uint32_t cur;     /* the user rule being parsed */
    uint32_t n_gen;   /* generated rules so far (for names) */
    /* rule names are looked up often: a small hash of user rule names */
    uint32_t *name_hash;
    uint32_t name_cap;
} parser;

static void pos_of(const parser *ps, const char *at, int *line, int *col)
{
    int l = 1, c = 1;
    for (const char *q = ps->src; q < at && q < ps->end; q++) {
        if (*q == '\n') {
            l++;
            c = 1;
        } else
            c++;
    }
    *line = l;
    *col = c;
}

static bool perr(parser *ps, const char *at, al_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool perr(parser *ps, const char *at, al_status st, const char *fmt, ...)
{
    if (ps->st != AL_OK)
        return false;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) {
        int l, c;
        pos_of(ps, at, &l, &c);
        al_err(ps->err, st, "grammar line %d, column %d: %s", l, c, msg);
    } else
        al_err(ps->err, st, "grammar: %s", msg);
    ps->st = st;
    return false;
}

static bool oom(parser *ps)
{
    return perr(ps, NULL, AL_ERR_NOMEM, "out of memory");
}

static bool count_elems(parser *ps, uint64_t n)
{
    builder *b = ps->b;
    b->n_elems += n;
    if (b->n_elems > b->lim.max_elements)
        return perr(ps, ps->p, AL_ERR_LIMIT, "the grammar expands to more than %u elements", b->lim.max_elements);
    if ((b->n_elems & 0xFFF) < n && elapsed(b) > b->lim.max_seconds)
        return perr(ps, ps->p, AL_ERR_LIMIT, "compiling took longer than %.1f s", b->lim.max_seconds);
    return true;
}

static bool emit(parser *ps, u32vec *out, uint32_t e)
{
    if (!count_elems(ps, 1))
        return false;
    return vpush(out, e) || oom(ps);
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Skips blanks and comments; newlines too when nested. */
static void skip_space(parser *ps, bool nested)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || (nested && (c == '\n' || c == '\r')))
            ps->p++;
        else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else
            break;
    }
}

/* A new generated rule for the user rule being parsed; UINT32_MAX on error. */
static uint32_t gen_rule(parser *ps)
{
    builder *b = ps->b;
    if (b->n_rules >= b->lim.max_rules) {
        perr(ps, ps->p, AL_ERR_LIMIT, "the grammar needs more than %u rules", b->lim.max_rules);
        return UINT32_MAX;
    }
    char name[160];
    int n = snprintf(name, sizeof name, "%s-%u", b->rules[ps->cur].name, ++ps->n_gen);
    if (n < 0 || (size_t)n >= sizeof name)
        n = (int)sizeof name - 1;
    uint32_t r = add_rule(b, name, (size_t)n, true, ps->cur);
    if (r == UINT32_MAX)
        oom(ps);
    else
        b->rules[r].defined = true;
    return r;
}

static uint32_t name_hash_of(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The id of the user rule called name[0..n) (created when first seen). */
static uint32_t rule_by_name(parser *ps, const char *name, size_t n)
{
    builder *b = ps->b;
    if (ps->name_cap == 0 || b->n_rules * 2 >= ps->name_cap) {
        uint32_t nc = ps->name_cap ? ps->name_cap * 2 : 256;
        while (nc < b->n_rules * 4)
            nc *= 2;
        uint32_t *nh = calloc(nc, sizeof *nh);
        if (!nh) {
            oom(ps);
            return UINT32_MAX;
        }
        for (uint32_t i = 0; i < b->n_rules; i++) {
            if (b->rules[i].generated)
                continue;
            uint32_t p = name_hash_of(b->rules[i].name, strlen(b->rules[i].name)) & (nc - 1);
            while (nh[p])
                p = (p + 1) & (nc - 1);
            nh[p] = i + 1;
        }
        free(ps->name_hash);
        ps->name_hash = nh;
        ps->name_cap = nc;
    }
    uint32_t p = name_hash_of(name, n) & (ps->name_cap - 1);
    while (ps->name_hash[p]) {
        uint32_t i = ps->name_hash[p] - 1;
        if (strlen(b->rules[i].name) == n && !memcmp(b->rules[i].name, name, n))
            return i;
        p = (p + 1) & (ps->name_cap - 1);
    }
    if (b->n_rules >= b->lim.max_rules) {
        perr(ps, name, AL_ERR_LIMIT, "the grammar needs more than %u rules", b->lim.max_rules);
        return UINT32_MAX;
    }
    uint32_t r = add_rule(b, name, n, false, 0);
    if (r == UINT32_MAX) {
        oom(ps);
        return UINT32_MAX;
    }
    ps->name_hash[p] = r + 1;
    return r;
}

/* Decodes one UTF-8 character at ps->p (advancing); -1 on invalid bytes. */
static int32_t next_cp(parser *ps)
{
    const unsigned char *s = (const unsigned char *)ps->p;
    size_t left = (size_t)(ps->end - ps->p);
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || (size_t)n > left)
        return -1;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    ps->p += n;
    return (int32_t)cp;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (escapes decoded); -1 on error. */
static int32_t parse_char(parser *ps)
{
    const char *at = ps->p;
    if (ps->p >= ps->end) {
        perr(ps, at, AL_ERR_FORMAT, "unexpected end of grammar");
        return -1;
    }
    if (*ps->p != '\\') {
        int32_t cp = next_cp(ps);
        if (cp < 0)
            perr(ps, at, AL_ERR_FORMAT, "invalid UTF-8");
        return cp;
    }
    ps->p++;
    if (ps->p >= ps->end) {
        perr(ps, at, AL_ERR_FORMAT, "unfinished escape");
        return -1;
    }
    char c = *ps->p++;
    int nhex = 0;
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case '0': return 0;
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '.':
        return (unsigned char)c;
    case 'x': nhex = 2; break;
    case 'u': nhex = 4; break;
    case 'U': nhex = 8; break;
    default:
        perr(ps, at, AL_ERR_FORMAT, "unknown escape '\\%c'", c);
        return -1;
    }
    uint32_t v = 0;
    for (int i = 0; i < nhex; i++) {
        int h = ps->p < ps->end ? hexv(*ps->p) : -1;
        if (h < 0) {
            perr(ps, at, AL_ERR_FORMAT, "'\\%c' needs %d hex digits", c, nhex);
            return -1;
        }
        v = v << 4 | (uint32_t)h;
        ps->p++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        perr(ps, at, AL_ERR_FORMAT, "escape '\\%c' is not a Unicode scalar value", c);
        return -1;
    }
    return (int32_t)v;
}

static bool emit_byte(parser *ps, u32vec *out, unsigned char byte)
{
    ge_set s = {{0}};
    s.w[byte >> 6] |= 1ull << (byte & 63);
    uint32_t id = intern_set(ps->b, &s);
    if (id == UINT32_MAX)
        return oom(ps);
    return emit(ps, out, GE_MAKE(GE_SET, id));
}

/* ---- code point ranges -> UTF-8 byte sequences */

typedef struct cprange {
    uint32_t lo, hi;
} cprange;

typedef struct rangeset {
    cprange *r;
    size_t n, cap;
} rangeset;

static bool rs_add(rangeset *rs, uint32_t lo, uint32_t hi)
{
    if (rs->n == rs->cap) {
        size_t c = rs->cap ? rs->cap * 2 : 8;
        cprange *nr = realloc(rs->r, c * sizeof *nr);
        if (!nr)
            return false;
        rs->r = nr;
        rs->cap = c;
    }
    rs->r[rs->n].lo = lo;
    rs->r[rs->n].hi = hi;
    rs->n++;
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const cprange *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts, merges, removes surrogates; negates over [0, 0x10FFFF] if asked. */
static bool rs_normalise(rangeset *rs, bool negate)
{
    qsort(rs->r, rs->n, sizeof *rs->r, cmp_range);
    size_t w = 0;
    for (size_t i = 0; i < rs->n; i++) {
        if (w && rs->r[i].lo <= rs->r[w - 1].hi + 1) {
            if (rs->r[i].hi > rs->r[w - 1].hi)
                rs->r[w - 1].hi = rs->r[i].hi;
        } else
            rs->r[w++] = rs->r[i];
    }
    rs->n = w;
    rangeset out = {0};
    if (negate) {
        uint32_t next = 0;
        for (size_t i = 0; i < rs->n; i++) {
            if (rs->r[i].lo > next && !rs_add(&out, next, rs->r[i].lo - 1))
                goto fail;
            next = rs->r[i].hi + 1;
        }
        if (next <= 0x10FFFF && !rs_add(&out, next, 0x10FFFF))
            goto fail;
    } else {
        for (size_t i = 0; i < rs->n; i++)
            if (!rs_add(&out, rs->r[i].lo, rs->r[i].hi))
                goto fail;
    }
    /* cut out the surrogates */
    rangeset cut = {0};
    for (size_t i = 0; i < out.n; i++) {
        uint32_t lo = out.r[i].lo, hi = out.r[i].hi;
        if (hi < 0xD800 || lo > 0xDFFF) {
            if (!rs_add(&cut, lo, hi))
                goto fail2;
            continue;
        }
        if (lo < 0xD800 && !rs_add(&cut, lo, 0xD7FF))
            goto fail2;
        if (hi > 0xDFFF && !rs_add(&cut, 0xE000, hi))
            goto fail2;
    }
    free(out.r);
    free(rs->r);
    *rs = cut;
    return true;
fail2:
    free(cut.r);
fail:
    free(out.r);
    return false;
}

/* Appends to alt-list body the byte sequences of [lo, hi] (one length of
 * encoding, no surrogates), each as an alternative ended by GE_END. */
static bool utf8_seqs(parser *ps, u32vec *body, uint32_t lo, uint32_t hi)
{
    static const uint32_t len_max[3] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i])
            return utf8_seqs(ps, body, lo, len_max[i]) && utf8_seqs(ps, body, len_max[i] + 1, hi);
    char a[4], z[4];
    size_t n = al_utf8_encode(lo, a);
    al_utf8_encode(hi, z);
    for (size_t i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0)
                return utf8_seqs(ps, body, lo, lo | m) && utf8_seqs(ps, body, (lo | m) + 1, hi);
            if ((hi & m) != m)
                return utf8_seqs(ps, body, lo, (hi & ~m) - 1) && utf8_seqs(ps, body, hi & ~m, hi);
        }
    }
    for (size_t k = 0; k < n; k++) {
        ge_set s = {{0}};
        for (unsigned c = (unsigned char)a[k]; c <= (unsigned char)z[k]; c++)
            s.w[c >> 6] |= 1ull << (c & 63);
        uint32_t id = intern_set(ps->b, &s);
        if (id == UINT32_MAX)
            return oom(ps);
        if (!emit(ps, body, GE_MAKE(GE_SET, id)))
            return false;
    }
    return emit(ps, body, GE_MAKE(GE_END, 0));
}

/* Emits the element(s) for a normalised range set (non-empty). */
static bool emit_ranges(parser *ps, u32vec *out, const rangeset *rs, const char *at)
{
    if (rs->n == 0)
        return perr(ps, at, AL_ERR_FORMAT, "character class matches nothing");
    ge_set ascii = {{0}};
    bool has_ascii = false, has_multi = false;
    for (size_t i = 0; i < rs->n; i++) {
        for (uint32_t c = rs->r[i].lo; c <= rs->r[i].hi && c < 0x80; c++) {
            ascii.w[c >> 6] |= 1ull << (c & 63);
            has_ascii = true;
        }
        if (rs->r[i].hi >= 0x80)
            has_multi = true;
    }
    if (!has_multi) {
        uint32_t id = intern_set(ps->b, &ascii);
        if (id == UINT32_MAX)
            return oom(ps);
        return emit(ps, out, GE_MAKE(GE_SET, id));
    }
    /* a rule per distinct class, found again by its ranges */
    builder *b = ps->b;
    size_t klen = rs->n * 16 + 1;
    char *key = malloc(klen);
    if (!key)
        return oom(ps);
    size_t kp = 0;
    for (size_t i = 0; i < rs->n; i++)
        kp += (size_t)snprintf(key + kp, klen - kp, "%x-%x,", rs->r[i].lo, rs->r[i].hi);
    for (uint32_t i = 0; i < b->n_class; i++)
        if (!strcmp(b->class_keys[i], key)) {
            free(key);
            return emit(ps, out, GE_MAKE(GE_REF, b->class_rule[i]));
        }
    uint32_t r = gen_rule(ps);
    if (r == UINT32_MAX) {
        free(key);
        return false;
    }
    if (b->n_class == b->cap_class) {
        uint32_t c = b->cap_class ? b->cap_class * 2 : 16;
        char **nk = realloc(b->class_keys, c * sizeof *nk);
        if (nk)
            b->class_keys = nk;
        uint32_t *nr = realloc(b->class_rule, c * sizeof *nr);
        if (nr)
            b->class_rule = nr;
        if (!nk || !nr) {
            free(key);
            return oom(ps);
        }
        b->cap_class = c;
    }
    b->class_keys[b->n_class] = key;
    b->class_rule[b->n_class++] = r;
    u32vec body = {0};
    bool ok = true;
    if (has_ascii) {
        uint32_t id = intern_set(b, &ascii);
        ok = id != UINT32_MAX ? emit(ps, &body, GE_MAKE(GE_SET, id)) && emit(ps, &body, GE_MAKE(GE_END, 0)) : oom(ps);
    }
    for (size_t i = 0; ok && i < rs->n; i++) {
        uint32_t lo = rs->r[i].lo < 0x80 ? 0x80 : rs->r[i].lo;
        if (rs->r[i].hi >= lo)
            ok = utf8_seqs(ps, &body, lo, rs->r[i].hi);
    }
    b->rules[r].body = body; /* owned by the rule even on failure */
    return ok && emit(ps, out, GE_MAKE(GE_REF, r));
}

/* [...] after the '[' */
static bool parse_class(parser *ps, u32vec *out, const char *at)
{
    bool negate = false;
    if (ps->p < ps->end && *ps->p == '^') {
        negate = true;
        ps->p++;
    }
    rangeset rs = {0};
    while (ps->p < ps->end && *ps->p != ']') {
        int32_t lo = parse_char(ps);
        if (lo < 0)
            goto fail;
        int32_t hi = lo;
        if (ps->p + 1 < ps->end && *ps->p == '-' && ps->p[1] != ']') {
            ps->p++;
            hi = parse_char(ps);
            if (hi < 0)
                goto fail;
            if (hi < lo) {
                perr(ps, at, AL_ERR_FORMAT, "character range out of order");
                goto fail;
            }
        }
        if (!rs_add(&rs, (uint32_t)lo, (uint32_t)hi)) {
            oom(ps);
            goto fail;
        }
    }
    if (ps->p >= ps->end) {
        perr(ps, at, AL_ERR_FORMAT, "unterminated character class");
        goto fail;
    }
    ps->p++; /* ']' */
    if (!rs_normalise(&rs, negate)) {
        oom(ps);
        goto fail;
    }
    bool ok = emit_ranges(ps, out, &rs, at);
    free(rs.r);
    return ok;
fail:
    free(rs.r);
    return false;
}

static bool emit_any_char(parser *ps, u32vec *out, const char *at)
{
    rangeset rs = {0};
    if (!rs_add(&rs, 0, 0x10FFFF) || !rs_normalise(&rs, false)) {
        free(rs.r);
        return oom(ps);
    }
    bool ok = emit_ranges(ps, out, &rs, at);
    free(rs.r);
    return ok;
}

/* "..." after the opening quote */
static bool parse_literal(parser *ps, u32vec *out, const char *at)
{
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\n')
            return perr(ps, at, AL_ERR_FORMAT, "unterminated string literal");
        int32_t cp = parse_char(ps);
        if (cp < 0)
            return false;
        char u[4];
        size_t n = al_utf8_encode((uint32_t)cp, u);
        for (size_t i = 0; i < n; i++)
            if (!emit_byte(ps, out, (unsigned char)u[i]))
                return false;
    }
    if (ps->p >= ps->end)
        return perr(ps, at, AL_ERR_FORMAT, "unterminated string literal");
    ps->p++;
    return true;
}

static bool parse_alternates(parser *ps, uint32_t rule, bool nested);

/* Makes out[start..) one element: a reference to a new rule holding it. */
static bool wrap_unit(parser *ps, u32vec *out, size_t start, uint32_t *unit)
{
    if (out->n - start == 1 && GE_KIND(out->v[start]) != GE_END) {
        *unit = out->v[start];
        return true;
    }
    uint32_t r = gen_rule(ps);
    if (r == UINT32_MAX)
        return false;
    u32vec body = {0};
    for (size_t i = start; i < out->n; i++)
        if (!vpush(&body, out->v[i])) {
            free(body.v);
            return oom(ps);
        }
    if (!vpush(&body, GE_MAKE(GE_END, 0))) {
        free(body.v);
        return oom(ps);
    }
    ps->b->rules[r].body = body;
    *unit = GE_MAKE(GE_REF, r);
    return true;
}

/* Replaces out[start..) (one unit) by unit{min,max}; max UINT32_MAX: no bound. */
static bool repeat(parser *ps, u32vec *out, size_t start, uint32_t min, uint32_t max)
{
    uint32_t unit = 0;
    if (!wrap_unit(ps, out, start, &unit))
        return false;
    out->n = start;
    for (uint32_t i = 0; i < min; i++)
        if (!emit(ps, out, unit))
            return false;
    if (max == min)
        return true;
    builder *b = ps->b;
    if (max == UINT32_MAX) { /* R ::= unit R | (empty) */
        uint32_t r = gen_rule(ps);
        if (r == UINT32_MAX)
            return false;
        u32vec *body = &b->rules[r].body;
        if (!emit(ps, body, unit) || !emit(ps, body, GE_MAKE(GE_REF, r)) || !emit(ps, body, GE_MAKE(GE_END, 0)) ||
            !emit(ps, body, GE_MAKE(GE_END, 0)))
            return false;
        return emit(ps, out, GE_MAKE(GE_REF, r));
    }
    /* O1 ::= unit | (empty); Ok ::= unit O(k-1) | (empty) */
    uint32_t prev = UINT32_MAX;
    for (uint32_t k = 0; k < max - min; k++) {
        uint32_t r = gen_rule(ps);
        if (r == UINT32_MAX)
            return false;
        u32vec *body = &b->rules[r].body;
        if (!emit(ps, body, unit) || (prev != UINT32_MAX && !emit(ps, body, GE_MAKE(GE_REF, prev))) ||
            !emit(ps, body, GE_MAKE(GE_END, 0)) || !emit(ps, body, GE_MAKE(GE_END, 0)))
            return false;
        prev = r;
    }
    return emit(ps, out, GE_MAKE(GE_REF, prev));
}

static bool parse_uint(parser *ps, uint32_t *v)
{
    const char *at = ps->p;
    uint64_t x = 0;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
        return perr(ps, at, AL_ERR_FORMAT, "expected a number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        x = x * 10 + (uint64_t)(*ps->p - '0');
        if (x > 1000000)
            return perr(ps, at, AL_ERR_LIMIT, "repetition count too large");
        ps->p++;
    }
    *v = (uint32_t)x;
    return true;
}

/* Elements of one alternative into out (not ended). */
static bool parse_sequence(parser *ps, u32vec *out, bool nested)
{
    size_t last = SIZE_MAX; /* start of the last unit, for postfix operators */
    for (;;) {
        skip_space(ps, nested);
        if (ps->p >= ps->end)
            return true;
        const char *at = ps->p;
        char c = *ps->p;
        if (c == '"') {
            ps->p++;
            last = out->n;
            if (!parse_literal(ps, out, at))
                return false;
            if (out->n == last) /* "" : nothing to repeat */
                last = SIZE_MAX;
        } else if (c == '[') {
            ps->p++;
            last = out->n;
            if (!parse_class(ps, out, at))
                return false;
        } else if (c == '.') {
            ps->p++;
            last = out->n;
            if (!emit_any_char(ps, out, at))
                return false;
        } else if (c == '(') {
            ps->p++;
            uint32_t r = gen_rule(ps);
            if (r == UINT32_MAX || !parse_alternates(ps, r, true))
                return false;
            skip_space(ps, true);
            if (ps->p >= ps->end || *ps->p != ')')
                return perr(ps, at, AL_ERR_FORMAT, "unbalanced '(': expected ')'");
            ps->p++;
            last = out->n;
            if (!emit(ps, out, GE_MAKE(GE_REF, r)))
                return false;
        } else if (is_name_char(c)) {
            const char *s = ps->p;
            while (ps->p < ps->end && is_name_char(*ps->p))
                ps->p++;
            /* the start of the next rule ends this one */
            const char *q = ps->p;
            while (q < ps->end && (*q == ' ' || *q == '\t'))
                q++;
            if (q + 2 < ps->end && q[0] == ':' && q[1] == ':' && q[2] == '=') {
                if (nested)
                    return perr(ps, s, AL_ERR_FORMAT, "rule definition inside parentheses");
                ps->p = s;
                return true;
            }
            uint32_t r = rule_by_name(ps, s, (size_t)(ps->p - s));
            if (r == UINT32_MAX)
                return false;
            brule *br = &ps->b->rules[r];
            if (!br->ref_line)
                pos_of(ps, s, &br->ref_line, &br->ref_col);
            last = out->n;
            if (!emit(ps, out, GE_MAKE(GE_REF, r)))
                return false;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == SIZE_MAX)
                return perr(ps, at, AL_ERR_FORMAT, "'%c' has nothing to repeat", c);
            ps->p++;
            uint32_t lo = 0, hi = UINT32_MAX;
            if (c == '+')
                lo = 1;
            else if (c == '?')
                hi = 1;
            else if (c == '{') {
                skip_space(ps, true);
                if (!parse_uint(ps, &lo))
                    return false;
                skip_space(ps, true);
                hi = lo;
                if (ps->p < ps->end && *ps->p == ',') {
                    ps->p++;
                    skip_space(ps, true);
                    hi = UINT32_MAX;
                    if (ps->p < ps->end && *ps->p != '}' && !parse_uint(ps, &hi))
                        return false;
                    skip_space(ps, true);
                }
                if (ps->p >= ps->end || *ps->p != '}')
                    return perr(ps, at, AL_ERR_FORMAT, "expected '}' to close the repetition");
                ps->p++;
                if (hi < lo)
                    return perr(ps, at, AL_ERR_FORMAT, "repetition {%u,%u}: maximum below minimum", lo, hi);
            }
            if (!repeat(ps, out, last, lo, hi))
                return false;
            last = SIZE_MAX; /* "x*?" and the like: group it first */
        } else if (c == '|' || c == ')' || c == '\n' || c == '\r') {
            return true;
        } else {
            return perr(ps, at, AL_ERR_FORMAT, "unexpected character '%c'", c);
        }
    }
}

/* Alternatives of rule (its body), up to ')' (nested) or the end of line. */
static bool parse_alternates(parser *ps, uint32_t rule, bool nested)
{
    u32vec body = {0};
    for (;;) {
        if (!parse_sequence(ps, &body, nested) || !emit(ps, &body, GE_MAKE(GE_END, 0))) {
            free(body.v);
            return false;
        }
        skip_space(ps, nested);
        if (!nested) { /* a next line starting with '|' continues the rule */
            const char *q = ps->p;
            while (q < ps->end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                q++;
            if (q < ps->end && *q == '|')
                ps->p = q;
        }
        if (ps->p < ps->end && *ps->p == '|') {
            ps->p++;
            skip_space(ps, true);
            continue;
        }
        break;
    }
    brule *r = &ps->b->rules[rule];
    if (r->body.v) { /* a generated rule never has one yet; user rules are checked by the caller */
        free(r->body.v);
    }
    r->body = body;
    return true;
}

static bool parse_rules(parser *ps)
{
    for (;;) {
        skip_space(ps, true);
        if (ps->p >= ps->end)
            return true;
        const char *s = ps->p;
        while (ps->p < ps->end && is_name_char(*ps->p))
            ps->p++;
        if (ps->p == s)
            return perr(ps, s, AL_ERR_FORMAT, "expected a rule name, got '%c'", *s);
        size_t n = (size_t)(ps->p - s);
        skip_space(ps, false);
        if (ps->end - ps->p < 3 || memcmp(ps->p, "::=", 3))
            return perr(ps, ps->p, AL_ERR_FORMAT, "expected '::=' after rule name '%.*s'", (int)(n > 64 ? 64 : n), s);
        ps->p += 3;
        uint32_t r = rule_by_name(ps, s, n);
        if (r == UINT32_MAX)
            return false;
        if (ps->b->rules[r].defined)
            return perr(ps, s, AL_ERR_FORMAT, "rule '%s' is defined twice (first at line %d)", ps->b->rules[r].name,
                        ps->b->rules[r].def_line);
        ps->b->rules[r].defined = true;
        pos_of(ps, s, &ps->b->rules[r].def_line, &ps->b->rules[r].def_col);
        ps->cur = r;
        ps->n_gen = 0;
        skip_space(ps, true);
        if (!parse_alternates(ps, r, false))
            return false;
        skip_space(ps, false);
        if (ps->p < ps->end && *ps->p != '\n' && *ps->p != '\r') {
            if (*ps->p == ')')
                return perr(ps, ps->p, AL_ERR_FORMAT, "unbalanced ')'");
            return perr(ps, ps->p, AL_ERR_FORMAT, "expected the end of the line");
        }
    }
}

/* ------------------------------------------------------------- checks */

/* The name to show for rule r in an error (its user rule if generated). */
static const char *shown(const builder *b, uint32_t r)
{
    return b->rules[b->rules[r].origin].name;
}

static bool check_grammar(parser *ps, uint32_t root)
{
    builder *b = ps->b;
    uint32_t n = b->n_rules;
    for (uint32_t r = 0; r < n; r++)
        if (!b->rules[r].defined) {
            char at[64] = "";
            if (b->rules[r].ref_line)
                snprintf(at, sizeof at, "line %d, column %d: ", b->rules[r].ref_line, b->rules[r].ref_col);
            al_err(ps->err, AL_ERR_FORMAT, "grammar %sundefined rule '%s'", at, b->rules[r].name);
            ps->st = AL_ERR_FORMAT;
            return false;
        }
    bool *seen = calloc(n, sizeof *seen);
    uint32_t *todo = malloc((size_t)n * sizeof *todo);
    bool *prod = calloc(n, sizeof *prod), *nullable = calloc(n, sizeof *nullable);
    uint8_t *color = calloc(n, 1);
    uint32_t *stk = malloc((size_t)n * 2 * sizeof *stk);
    uint32_t *eoff = NULL;
    bool ok = false;
    if (!seen || !todo || !prod || !nullable || !color || !stk) {
        oom(ps);
        goto done;
    }
    /* reachability */
    size_t nt = 0;
    seen[root] = true;
    todo[nt++] = root;
    while (nt) {
        uint32_t r = todo[--nt];
        const u32vec *bd = &b->rules[r].body;
        for (size_t i = 0; i < bd->n; i++)
            if (GE_KIND(bd->v[i]) == GE_REF && !seen[GE_ARG(bd->v[i])]) {
                seen[GE_ARG(bd->v[i])] = true;
                todo[nt++] = GE_ARG(bd->v[i]);
            }
    }
    for (uint32_t r = 0; r < n; r++)
        if (!seen[r] && !b->rules[r].generated) {
            al_err(ps->err, AL_ERR_FORMAT, "grammar line %d: rule '%s' is not reachable from 'root'",
                   b->rules[r].def_line, b->rules[r].name);
            ps->st = AL_ERR_FORMAT;
            goto done;
        }
    /* productive and nullable rules (fixpoints) */
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < n; r++) {
            const u32vec *bd = &b->rules[r].body;
            bool alt_prod = true, alt_null = true;
            for (size_t i = 0; i < bd->n; i++) {
                uint32_t e = bd->v[i];
                if (GE_KIND(e) == GE_END) {
                    if (alt_prod && !prod[r])
                        prod[r] = changed = true;
                    if (alt_null && !nullable[r])
                        nullable[r] = changed = true;
                    alt_prod = alt_null = true;
                } else if (GE_KIND(e) == GE_SET)
                    alt_null = false;
                else {
                    alt_prod = alt_prod && prod[GE_ARG(e)];
                    alt_null = alt_null && nullable[GE_ARG(e)];
                }
            }
        }
    }
    for (uint32_t r = 0; r < n; r++)
        if (seen[r] && !prod[r]) {
            al_err(ps->err, AL_ERR_FORMAT,
                   "grammar: rule '%s' can never complete (every alternative refers back to itself)", shown(b, r));
            ps->st = AL_ERR_FORMAT;
            goto done;
        }
    /* left recursion: a cycle through references that can come first.
     * Edges r -> t for each reference t that can be the first thing r
     * reads (CSR in eoff/edge), then an iterative depth-first search. */
    eoff = calloc((size_t)n + 1, sizeof *eoff);
    if (!eoff) {
        oom(ps);
        goto done;
    }
    u32vec edge = {0};
    for (uint32_t r = 0; r < n; r++) {
        const u32vec *bd = &b->rules[r].body;
        bool lead = true;
        for (size_t i = 0; i < bd->n; i++) {
            uint32_t e = bd->v[i];
            if (GE_KIND(e) == GE_END)
                lead = true;
            else if (lead && GE_KIND(e) == GE_SET)
                lead = false;
            else if (lead) {
                if (!vpush(&edge, GE_ARG(e))) {
                    free(edge.v);
                    oom(ps);
                    goto done;
                }
                lead = nullable[GE_ARG(e)];
            }
        }
        eoff[r + 1] = (uint32_t)edge.n;
    }
    for (uint32_t s0 = 0; s0 < n && ps->st == AL_OK; s0++) {
        if (color[s0])
            continue;
        size_t sp = 0;
        stk[sp++] = s0;
        stk[sp++] = eoff[s0];
        color[s0] = 1;
        while (sp) {
            uint32_t r = stk[sp - 2], i = stk[sp - 1];
            if (i == eoff[r + 1]) {
                color[r] = 2;
                sp -= 2;
                continue;
            }
            stk[sp - 1] = i + 1;
            uint32_t t = edge.v[i];
            if (color[t] == 1) {
                al_err(ps->err, AL_ERR_FORMAT,
                       "grammar: rule '%s' is left-recursive (it can reach itself before reading anything)",
                       shown(b, t));
                ps->st = AL_ERR_FORMAT;
                break;
            }
            if (color[t] == 0) {
                color[t] = 1;
                stk[sp++] = t;
                stk[sp++] = eoff[t];
            }
        }
    }
    free(edge.v);
    if (ps->st != AL_OK)
        goto done;
    ok = true;
done:
    free(seen);
    free(todo);
    free(prod);
    free(nullable);
    free(color);
    free(stk);
    free(eoff);
    return ok;
}

/* ------------------------------------------------------------- output */

static al_grammar *flatten(parser *ps, uint32_t root)
{
    builder *b = ps->b;
    al_grammar *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    atomic_init(&g->refs, 1);
    size_t ne = 0, na = 0;
    for (uint32_t r = 0; r < b->n_rules; r++) {
        ne += b->rules[r].body.n;
        for (size_t i = 0; i < b->rules[r].body.n; i++)
            na += GE_KIND(b->rules[r].body.v[i]) == GE_END;
    }
    g->elems = malloc((ne ? ne : 1) * sizeof *g->elems);
    g->alt_start = malloc((na ? na : 1) * sizeof *g->alt_start);
    g->rule_alt = malloc(((size_t)b->n_rules + 1) * sizeof *g->rule_alt);
    g->sets = malloc((b->n_sets ? b->n_sets : 1) * sizeof *g->sets);
    if (!g->elems || !g->alt_start || !g->rule_alt || !g->sets) {
        al_grammar_free(g);
        return NULL;
    }
    uint64_t h = 0x243F6A8885A308D3ull;
    size_t e = 0, a = 0;
    for (uint32_t r = 0; r < b->n_rules; r++) {
        g->rule_alt[r] = (uint32_t)a;
        const u32vec *bd = &b->rules[r].body;
        bool start = true;
        for (size_t i = 0; i < bd->n; i++) {
            if (start)
                g->alt_start[a++] = (uint32_t)e;
            start = GE_KIND(bd->v[i]) == GE_END;
            g->elems[e++] = bd->v[i];
            h = mix64(h, bd->v[i]);
        }
        h = mix64(h, 0xFFFFFFFFull + r);
    }
    g->rule_alt[b->n_rules] = (uint32_t)a;
    memcpy(g->sets, b->sets, b->n_sets * sizeof *g->sets);
    for (uint32_t i = 0; i < b->n_sets; i++)
        for (int k = 0; k < 4; k++)
            h = mix64(h, b->sets[i].w[k]);
    g->n_elems = (uint32_t)e;
    g->n_alts = (uint32_t)a;
    g->n_rules = b->n_rules;
    g->n_sets = b->n_sets;
    g->root = root;
    g->digest = mix64(h, root);
    /* the mask cache is shared by requests: its key must not collide, even
     * for a grammar written to collide with another */
    al_sha256 *sh = al_sha256_begin();
    char hex[65];
    if (!sh) {
        al_grammar_free(g);
        return NULL;
    }
    uint32_t counts[5] = {g->n_elems, g->n_alts, g->n_rules, g->n_sets, g->root};
    al_sha256_update(sh, counts, sizeof counts);
    al_sha256_update(sh, g->elems, (size_t)g->n_elems * sizeof *g->elems);
    al_sha256_update(sh, g->alt_start, (size_t)g->n_alts * sizeof *g->alt_start);
    al_sha256_update(sh, g->rule_alt, ((size_t)g->n_rules + 1) * sizeof *g->rule_alt);
    al_sha256_update(sh, g->sets, (size_t)g->n_sets * sizeof *g->sets);
    if (!al_sha256_end(sh, hex)) {
        al_grammar_free(g);
        return NULL;
    }
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        g->sha[i] = (unsigned char)v;
    }
    return g;
}

al_status al_grammar_from_gbnf(const char *src, size_t len, const al_grammar_limits *limits, al_grammar **out,
                               al_error *err)
{
    if (!out)
        return al_err(err, AL_ERR_ARG, "al_grammar_from_gbnf: no output pointer");
    *out = NULL;
    if (!src && len)
        return al_err(err, AL_ERR_ARG, "al_grammar_from_gbnf: no source");
    builder b;
    memset(&b, 0, sizeof b);
    b.lim = limits ? *limits : al_grammar_default_limits();
    clock_gettime(CLOCK_MONOTONIC, &b.t0);
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.b = &b;
    ps.src = ps.p = src ? src : "";
    ps.end = ps.src + len;
    ps.err = err;
    ps.st = AL_OK;
    if (memchr(ps.src, '\0', len))
        perr(&ps, memchr(ps.src, '\0', len), AL_ERR_FORMAT, "NUL byte in the grammar");
    else if (parse_rules(&ps)) {
        uint32_t root = find_rule(&b, "root", 4);
        if (root == UINT32_MAX || !b.rules[root].defined)
            perr(&ps, NULL, AL_ERR_FORMAT, "no 'root' rule (the grammar starts there)");
        else if (check_grammar(&ps, root)) {
            *out = flatten(&ps, root);
            if (!*out)
                oom(&ps);
        }
    }
    free(ps.name_hash);
    builder_free(&b);
    if (ps.st == AL_OK && !*out)
        ps.st = al_err(err, AL_ERR_FORMAT, "grammar: empty");
    return *out ? AL_OK : ps.st;
}

al_grammar *al_grammar_ref(al_grammar *g)
{
    if (g)
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void al_grammar_free(al_grammar *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(g->elems);
    free(g->alt_start);
    free(g->rule_alt);
    free(g->sets);
    free(g);
}

uint64_t al_grammar_digest(const al_grammar *g) { return g ? g->digest : 0; }
uint32_t al_grammar_n_rules(const al_grammar *g) { return g ? g->n_rules : 0; }
uint32_t al_grammar_n_elements(const al_grammar *g) { return g ? g->n_elems : 0; }

/* The JSON grammar of json_object mode. Whitespace is bounded (one space,
 * or a newline and up to 20 spaces), so a weak model cannot fill its
 * budget with blank lines. */
static const char k_json_object_gbnf[] =
    "root ::= object\n"
    "value ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\"\n"
    "member ::= string ws \":\" ws value ws\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" uesc )\n"
    /* \\u escapes: no lone surrogates (a high one needs its low one) */
    "uesc ::= ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F] | [dD] [0-7] ) [0-9a-fA-F]{2}"
    " | [dD] [89abAB] [0-9a-fA-F]{2} \"\\\\u\" [dD] [c-fC-F] [0-9a-fA-F]{2}\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "ws ::= ( \" \" | \"\\n\" \" \"{0,20} )?\n";

al_status al_grammar_json_object(al_grammar **out, al_error *err)
{
    return al_grammar_from_gbnf(k_json_object_gbnf, sizeof k_json_object_gbnf - 1, NULL, out, err);
}
