/*
 * json_constraint.c - a byte-level JSON recogniser (RFC 8259, top level an
 * object) used to mask tokens: a token is allowed when all the bytes of its
 * piece keep the output a prefix of some valid JSON text.
 *
 * The recogniser state is a small fixed struct, so trying a token is a
 * copy plus a walk over its bytes; no allocation per step except the one
 * piece buffer made at creation.
 */
#include "server/json_constraint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JC_MAX_DEPTH 32
#define JC_MAX_WS 4 /* consecutive whitespace bytes outside strings */

enum {
    M_START,     /* before the top-level '{' */
    M_VALUE,     /* a value must come */
    M_KEY_OR_END,/* after '{': a key or '}' */
    M_KEY,       /* after ',' in an object: a key */
    M_COLON,     /* after a key */
    M_AFTER,     /* after a value: ',' or the closing bracket */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_STR,       /* inside a string */
    M_ESC,       /* after a backslash */
    M_HEX,       /* inside \uXXXX */
    M_NUM,       /* inside a number (num holds where) */
    M_LIT,       /* inside true/false/null */
    M_DONE,      /* the object is complete */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

typedef struct jstate {
    uint8_t mode;
    uint8_t depth;
    uint8_t in_key;
    uint8_t num;
    uint8_t hex_left;
    uint8_t ws;
    uint8_t utf8_left;   /* continuation bytes still expected in a string */
    const char *lit;     /* rest of the literal */
    char stack[JC_MAX_DEPTH];
} jstate;

struct srv_jc {
    const al_vocab *vocab;
    jstate st;
    char piece[256];
};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool close_value(jstate *s)
{
    s->mode = s->depth == 0 ? M_DONE : M_AFTER;
    return true;
}

static bool begin_value(jstate *s, unsigned char c)
{
    switch (c) {
    case '{':
    case '[':
        if (s->depth >= JC_MAX_DEPTH)
            return false;
        s->stack[s->depth++] = (char)c;
        s->mode = c == '{' ? M_KEY_OR_END : M_ARR_FIRST;
        return true;
    case '"':
        s->mode = M_STR;
        s->in_key = 0;
        return true;
    case '-':
        s->mode = M_NUM;
        s->num = N_MINUS;
        return true;
    case 't':
        s->mode = M_LIT;
        s->lit = "rue";
        return true;
    case 'f':
        s->mode = M_LIT;
        s->lit = "alse";
        return true;
    case 'n':
        s->mode = M_LIT;
        s->lit = "ull";
        return true;
    default:
        if (c >= '0' && c <= '9') {
            s->mode = M_NUM;
            s->num = c == '0' ? N_ZERO : N_INT;
            return true;
        }
        return false;
    }
}

static bool after_value(jstate *s, unsigned char c)
{
    if (is_ws(c))
        return ++s->ws <= JC_MAX_WS;
    s->ws = 0;
    char top = s->stack[s->depth - 1];
    if (c == ',') {
        s->mode = top == '{' ? M_KEY : M_VALUE;
        return true;
    }
    if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
        s->depth--;
        return close_value(s);
    }
    return false;
}

/* Feeds one byte; false when it cannot continue valid JSON. */
static bool feed(jstate *s, unsigned char c)
{
    switch (s->mode) {
    case M_START:
        if (is_ws(c))
            return ++s->ws <= JC_MAX_WS;
        s->ws = 0;
        if (c != '{')
            return false;
        return begin_value(s, c);
    case M_VALUE:
    case M_ARR_FIRST:
        if (is_ws(c))
            return ++s->ws <= JC_MAX_WS;
        s->ws = 0;
        if (c == ']' && s->mode == M_ARR_FIRST) {
            s->depth--;
            return close_value(s);
        }
        return begin_value(s, c);
    case M_KEY_OR_END:
    case M_KEY:
        if (is_ws(c))
            return ++s->ws <= JC_MAX_WS;
        s->ws = 0;
        if (c == '}' && s->mode == M_KEY_OR_END) {
            s->depth--;
            return close_value(s);
        }
        if (c != '"')
            return false;
        s->mode = M_STR;
        s->in_key = 1;
        return true;
    case M_COLON:
        if (is_ws(c))
            return ++s->ws <= JC_MAX_WS;
        s->ws = 0;
        if (c != ':')
            return false;
        s->mode = M_VALUE;
        return true;
    case M_AFTER:
        return after_value(s, c);
    case M_STR:
        if (s->utf8_left) {
            if ((c & 0xC0) != 0x80)
                return false;
            s->utf8_left--;
            return true;
        }
        if (c == '"') {
            if (s->in_key) {
                s->mode = M_COLON;
                return true;
            }
            return close_value(s);
        }
        if (c == '\\') {
            s->mode = M_ESC;
            return true;
        }
        if (c < 0x20 || c == 0x7F)
            return false;
        if (c >= 0x80) {
            if (c >= 0xC2 && c <= 0xDF)
                s->utf8_left = 1;
            else if (c >= 0xE0 && c <= 0xEF)
                s->utf8_left = 2;
            else if (c >= 0xF0 && c <= 0xF4)
                s->utf8_left = 3;
            else
                return false;
        }
        return true;
    case M_ESC:
        if (c == 'u') {
            s->mode = M_HEX;
            s->hex_left = 4;
            return true;
        }
        if (strchr("\"\\/bfnrt", c) && c) {
            s->mode = M_STR;
            return true;
        }
        return false;
    case M_HEX:
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
        if (--s->hex_left == 0)
            s->mode = M_STR;
        return true;
    case M_LIT:
        if (*s->lit != (char)c)
            return false;
        s->lit++;
        if (!*s->lit)
            return close_value(s);
        return true;
    case M_NUM: {
        bool digit = c >= '0' && c <= '9';
        switch (s->num) {
        case N_MINUS:
            if (!digit)
                return false;
            s->num = c == '0' ? N_ZERO : N_INT;
            return true;
        case N_ZERO:
        case N_INT:
            if (digit && s->num == N_INT)
                return true;
            if (c == '.') {
                s->num = N_DOT;
                return true;
            }
            if (c == 'e' || c == 'E') {
                s->num = N_E;
                return true;
            }
            break;
        case N_DOT:
            if (!digit)
                return false;
            s->num = N_FRAC;
            return true;
        case N_FRAC:
            if (digit)
                return true;
            if (c == 'e' || c == 'E') {
                s->num = N_E;
                return true;
            }
            break;
        case N_E:
            if (c == '+' || c == '-') {
                s->num = N_ESIGN;
                return true;
            }
            if (!digit)
                return false;
            s->num = N_EXP;
            return true;
        case N_ESIGN:
            if (!digit)
                return false;
            s->num = N_EXP;
            return true;
        case N_EXP:
            if (digit)
                return true;
            break;
        }
        if (s->num == N_MINUS || s->num == N_DOT || s->num == N_E || s->num == N_ESIGN)
            return false;
        /* The number ended: this byte belongs to what follows it. */
        s->ws = 0;
        close_value(s);
        return s->mode == M_AFTER && after_value(s, c);
    }
    case M_DONE:
    default:
        return false;
    }
}

srv_jc *srv_jc_new(const al_vocab *vocab)
{
    srv_jc *jc = calloc(1, sizeof(*jc));
    if (!jc)
        return NULL;
    jc->vocab = vocab;
    jc->st.mode = M_START;
    return jc;
}

void srv_jc_free(srv_jc *jc)
{
    free(jc);
}

void srv_jc_mask(srv_jc *jc, float *logits, int32_t n_vocab)
{
    bool done = jc->st.mode == M_DONE;
    for (int32_t t = 0; t < n_vocab; t++) {
        if (al_vocab_is_eog(jc->vocab, t)) {
            if (!done)
                logits[t] = -INFINITY;
            continue;
        }
        if (done) {
            logits[t] = -INFINITY;
            continue;
        }
        int32_t n = al_token_to_piece(jc->vocab, t, jc->piece, sizeof(jc->piece), false);
        if (n <= 0 || (size_t)n > sizeof(jc->piece)) {
            logits[t] = -INFINITY;
            continue;
        }
        jstate s = jc->st;
        bool ok = true;
        for (int32_t i = 0; i < n && ok; i++)
            ok = feed(&s, (unsigned char)jc->piece[i]);
        if (!ok)
            logits[t] = -INFINITY;
    }
}

bool srv_jc_accept(srv_jc *jc, int32_t token)
{
    int32_t n = al_token_to_piece(jc->vocab, token, jc->piece, sizeof(jc->piece), false);
    for (int32_t i = 0; i < n && (size_t)i < sizeof(jc->piece); i++)
        if (!feed(&jc->st, (unsigned char)jc->piece[i]))
            break;
    return jc->st.mode == M_DONE;
}
