/*
 * json_guard.c - a byte-level pushdown automaton for "a valid prefix of one
 * JSON object" (see json_guard.h). The container stack is a bit set
 * (1 = array, 0 = object), so the whole state is a small value that
 * al_json_guard_accepts copies and runs on the candidate piece.
 */
#include "sampling/json_guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum mode {
    M_START,           /* before the top-level '{' */
    M_DONE,            /* after the top-level '}' */
    M_FAIL,
    M_OBJ_KEY_OR_END,  /* after '{' */
    M_OBJ_KEY,         /* after ',' in an object */
    M_OBJ_COLON,       /* after a key */
    M_OBJ_VALUE,       /* after ':' */
    M_OBJ_COMMA_OR_END,
    M_ARR_VALUE_OR_END, /* after '[' */
    M_ARR_VALUE,        /* after ',' in an array */
    M_ARR_COMMA_OR_END,
    M_STR,             /* inside a string */
    M_STR_ESC,         /* after a backslash */
    M_STR_HEX,         /* inside \uXXXX */
    M_STR_UTF,         /* inside a multi-byte UTF-8 character */
    M_SUR_BS,          /* after a high surrogate: needs '\' */
    M_SUR_U,           /* ... then 'u' */
    M_NUM_MINUS,       /* '-' : needs a digit */
    M_NUM_ZERO,        /* a leading 0 */
    M_NUM_INT,
    M_NUM_DOT,         /* '.' : needs a digit */
    M_NUM_FRAC,
    M_NUM_E,           /* 'e' : needs a sign or digit */
    M_NUM_ESIGN,       /* needs a digit */
    M_NUM_EXP,
    M_LIT,             /* inside true / false / null */
};

typedef struct gstate {
    uint8_t mode;
    uint8_t str_is_key;
    uint8_t utf_need;        /* continuation bytes still needed */
    uint8_t utf_lo, utf_hi;  /* range of the next continuation byte */
    uint8_t hex_left;        /* hex digits left in \uXXXX */
    uint8_t hex_low;         /* this \u must be a low surrogate */
    uint8_t lit;             /* 0 true, 1 false, 2 null */
    uint8_t lit_pos;
    uint16_t hex_val;
    uint16_t depth;
    uint64_t stack[AL_JSON_GUARD_MAX_DEPTH / 64];
} gstate;

struct al_json_guard {
    gstate s;
};

static const char *const k_lits[3] = {"true", "false", "null"};

void al_json_guard_key(const al_json_guard *g, unsigned char *key)
{
    const gstate *s = &g->s;
    memset(key, 0, AL_JSON_GUARD_KEY_BYTES);
    const uint8_t head[] = {s->mode,    s->str_is_key, s->utf_need, s->utf_lo,
                            s->utf_hi,  s->hex_left,   s->hex_low,  s->lit,
                            s->lit_pos, (uint8_t)s->hex_val, (uint8_t)(s->hex_val >> 8),
                            (uint8_t)s->depth, (uint8_t)(s->depth >> 8)};
    _Static_assert(sizeof(head) <= 16, "json guard key head");
    memcpy(key, head, sizeof(head));
    /* the container bits below the depth (those above are left-overs) */
    for (unsigned d = 0; d < s->depth; d++)
        if ((s->stack[d / 64] >> (d % 64)) & 1u)
            key[16 + d / 8] |= (unsigned char)(1u << (d % 8));
}

al_json_guard *al_json_guard_new(void)
{
    al_json_guard *g = malloc(sizeof *g);
    if (g)
        al_json_guard_reset(g);
    return g;
}

void al_json_guard_free(al_json_guard *g) { free(g); }

void al_json_guard_reset(al_json_guard *g)
{
    if (g) {
        memset(&g->s, 0, sizeof g->s);
        g->s.mode = M_START;
    }
}

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool top_is_array(const gstate *s)
{
    unsigned d = s->depth - 1u;
    return (s->stack[d / 64] >> (d % 64)) & 1u;
}

static bool push(gstate *s, bool array)
{
    if (s->depth >= AL_JSON_GUARD_MAX_DEPTH)
        return false;
    unsigned d = s->depth++;
    uint64_t bit = (uint64_t)1 << (d % 64);
    if (array)
        s->stack[d / 64] |= bit;
    else
        s->stack[d / 64] &= ~bit;
    s->mode = array ? M_ARR_VALUE_OR_END : M_OBJ_KEY_OR_END;
    return true;
}

/* A value just ended: where the enclosing container goes next. */
static void value_done(gstate *s)
{
    if (s->depth == 0)
        s->mode = M_DONE;
    else
        s->mode = top_is_array(s) ? M_ARR_COMMA_OR_END : M_OBJ_COMMA_OR_END;
}

/* Closes the innermost container (the caller checked its kind). */
static void pop(gstate *s)
{
    s->depth--;
    value_done(s);
}

static bool begin_value(gstate *s, unsigned char c)
{
    switch (c) {
    case '{': return push(s, false);
    case '[': return push(s, true);
    case '"':
        s->mode = M_STR;
        s->str_is_key = 0;
        return true;
    case '-': s->mode = M_NUM_MINUS; return true;
    case '0': s->mode = M_NUM_ZERO; return true;
    case 't': case 'f': case 'n':
        s->mode = M_LIT;
        s->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->lit_pos = 1;
        return true;
    default:
        if (c >= '1' && c <= '9') {
            s->mode = M_NUM_INT;
            return true;
        }
        return false;
    }
}

/* Feeds one byte; false when it cannot continue a valid prefix. */
static bool step(gstate *s, unsigned char c)
{
    for (;;) { /* loops only when a number ends and c must be re-read */
        switch ((enum mode)s->mode) {
        case M_FAIL: return false;
        case M_START:
            if (is_ws(c))
                return true;
            if (c != '{')
                return false;
            return push(s, false);
        case M_DONE: return is_ws(c);
        case M_OBJ_KEY_OR_END:
            if (c == '}') {
                pop(s);
                return true;
            }
            /* fall through */
        case M_OBJ_KEY:
            if (is_ws(c))
                return true;
            if (c != '"')
                return false;
            s->mode = M_STR;
            s->str_is_key = 1;
            return true;
        case M_OBJ_COLON:
            if (is_ws(c))
                return true;
            if (c != ':')
                return false;
            s->mode = M_OBJ_VALUE;
            return true;
        case M_OBJ_VALUE:
        case M_ARR_VALUE:
            if (is_ws(c))
                return true;
            return begin_value(s, c);
        case M_ARR_VALUE_OR_END:
            if (is_ws(c))
                return true;
            if (c == ']') {
                pop(s);
                return true;
            }
            return begin_value(s, c);
        case M_OBJ_COMMA_OR_END:
        case M_ARR_COMMA_OR_END: {
            bool arr = s->mode == M_ARR_COMMA_OR_END;
            if (is_ws(c))
                return true;
            if (c == ',') {
                s->mode = arr ? M_ARR_VALUE : M_OBJ_KEY;
                return true;
            }
            if (c == (arr ? ']' : '}')) {
                pop(s);
                return true;
            }
            return false;
        }
        case M_STR:
            if (c == '"') {
                if (s->str_is_key)
                    s->mode = M_OBJ_COLON;
                else
                    value_done(s);
                return true;
            }
            if (c == '\\') {
                s->mode = M_STR_ESC;
                return true;
            }
            if (c < 0x20)
                return false;
            if (c < 0x80)
                return true;
            /* UTF-8 lead byte (RFC 3629: no overlongs, no surrogates) */
            s->utf_lo = 0x80;
            s->utf_hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF)
                s->utf_need = 1;
            else if (c >= 0xE0 && c <= 0xEF) {
                s->utf_need = 2;
                if (c == 0xE0)
                    s->utf_lo = 0xA0;
                if (c == 0xED)
                    s->utf_hi = 0x9F;
            } else if (c >= 0xF0 && c <= 0xF4) {
                s->utf_need = 3;
                if (c == 0xF0)
                    s->utf_lo = 0x90;
                if (c == 0xF4)
                    s->utf_hi = 0x8F;
            } else
                return false;
            s->mode = M_STR_UTF;
            return true;
        case M_STR_UTF:
            if (c < s->utf_lo || c > s->utf_hi)
                return false;
            s->utf_lo = 0x80;
            s->utf_hi = 0xBF;
            if (--s->utf_need == 0)
                s->mode = M_STR;
            return true;
        case M_STR_ESC:
            if (c == 'u') {
                s->mode = M_STR_HEX;
                s->hex_left = 4;
                s->hex_val = 0;
                s->hex_low = 0;
                return true;
            }
            if (!strchr("\"\\/bfnrt", c) || c == 0)
                return false;
            s->mode = M_STR;
            return true;
        case M_STR_HEX: {
            int v = hex_val(c);
            if (v < 0)
                return false;
            s->hex_val = (uint16_t)(s->hex_val << 4 | (unsigned)v);
            s->hex_left--;
            if (s->hex_left == 3 && s->hex_low && v != 0xD)
                return false;
            if (s->hex_left == 2) { /* the top byte is known: check surrogates */
                unsigned hi = s->hex_val;
                bool is_low = hi >= 0xDC && hi <= 0xDF;
                if (s->hex_low ? !is_low : is_low)
                    return false;
            }
            if (s->hex_left == 0) {
                bool is_high = s->hex_val >= 0xD800 && s->hex_val <= 0xDBFF;
                s->mode = is_high && !s->hex_low ? M_SUR_BS : M_STR;
            }
            return true;
        }
        case M_SUR_BS:
            if (c != '\\')
                return false;
            s->mode = M_SUR_U;
            return true;
        case M_SUR_U:
            if (c != 'u')
                return false;
            s->mode = M_STR_HEX;
            s->hex_left = 4;
            s->hex_val = 0;
            s->hex_low = 1;
            return true;
        case M_LIT: {
            const char *w = k_lits[s->lit];
            if ((unsigned char)w[s->lit_pos] != c)
                return false;
            if (w[++s->lit_pos] == '\0')
                value_done(s);
            return true;
        }
        case M_NUM_MINUS:
            if (c == '0')
                s->mode = M_NUM_ZERO;
            else if (is_digit(c))
                s->mode = M_NUM_INT;
            else
                return false;
            return true;
        case M_NUM_DOT:
        case M_NUM_ESIGN:
            if (!is_digit(c))
                return false;
            s->mode = s->mode == M_NUM_DOT ? M_NUM_FRAC : M_NUM_EXP;
            return true;
        case M_NUM_E:
            if (c == '+' || c == '-') {
                s->mode = M_NUM_ESIGN;
                return true;
            }
            if (!is_digit(c))
                return false;
            s->mode = M_NUM_EXP;
            return true;
        case M_NUM_ZERO:
        case M_NUM_INT:
        case M_NUM_FRAC:
        case M_NUM_EXP:
            if (is_digit(c) && s->mode != M_NUM_ZERO)
                return true;
            if (c == '.' && (s->mode == M_NUM_ZERO || s->mode == M_NUM_INT)) {
                s->mode = M_NUM_DOT;
                return true;
            }
            if ((c == 'e' || c == 'E') && s->mode != M_NUM_EXP) {
                s->mode = M_NUM_E;
                return true;
            }
            if (is_digit(c))
                return false; /* a digit after a leading zero */
            value_done(s);    /* the number ended: c belongs to what follows */
            continue;
        }
        return false;
    }
}

static bool run(gstate *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!step(s, (unsigned char)p[i])) {
            s->mode = M_FAIL;
            return false;
        }
    return true;
}

bool al_json_guard_accepts(const al_json_guard *g, const char *piece, size_t n)
{
    if (!g)
        return false;
    if (g->s.mode == M_FAIL)
        return false;
    if (n == 0)
        return true;
    if (!piece)
        return false;
    gstate s = g->s;
    return run(&s, piece, n);
}

void al_json_guard_advance(al_json_guard *g, const char *piece, size_t n)
{
    if (!g || n == 0)
        return;
    if (!piece) {
        g->s.mode = M_FAIL;
        return;
    }
    run(&g->s, piece, n);
}

bool al_json_guard_complete(const al_json_guard *g) { return g && g->s.mode == M_DONE; }

bool al_json_guard_failed(const al_json_guard *g) { return !g || g->s.mode == M_FAIL; }
