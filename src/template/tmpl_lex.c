/*
 * tmpl_lex.c - Jinja2 lexer with Hugging Face's chat-template settings:
 * trim_blocks (drop the first newline after a block or comment tag) and
 * lstrip_blocks (drop spaces/tabs between a line start and a block or
 * comment tag), plus `-` / `+` whitespace control on every tag. Comments
 * and {% raw %} blocks are resolved here; the parser only sees text and
 * the tokens inside {{ }} and {% %}.
 */
#include "template/tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/utf8.h"

typedef struct lexer {
    tmpl_arena *a;
    const char *src;
    size_t len;
    size_t pos;
    uint32_t line;
    tmpl_token *t;
    size_t n, cap;
    al_error *err;
} lexer;

static al_status lx_fail(lexer *L, const char *msg)
{
    return al_err(L->err, AL_ERR_TEMPLATE, "chat template line %u: %s", L->line, msg);
}

static tmpl_token *lx_push(lexer *L, tk_type type)
{
    if (L->n == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        tmpl_token *nt = tmpl_alloc_n(L->a, nc, sizeof(*nt));
        if (!nt)
            return NULL;
        if (L->n)
            memcpy(nt, L->t, L->n * sizeof(*nt));
        L->t = nt;
        L->cap = nc;
    }
    tmpl_token *t = &L->t[L->n++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->line = L->line;
    return t;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_id0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void advance_to(lexer *L, size_t to)
{
    for (size_t i = L->pos; i < to && i < L->len; i++)
        if (L->src[i] == '\n')
            L->line++;
    L->pos = to;
}

/* Index of the next "{{", "{%" or "{#" at or after from, or len. */
static size_t find_tag(const lexer *L, size_t from)
{
    for (size_t i = from; i + 1 < L->len; i++)
        if (L->src[i] == '{' && (L->src[i + 1] == '{' || L->src[i + 1] == '%' || L->src[i + 1] == '#'))
            return i;
    return L->len;
}

/* Emits text src[s, e) (whitespace already trimmed by the caller). */
static al_status emit_text(lexer *L, size_t s, size_t e, uint32_t line)
{
    if (e <= s)
        return AL_OK;
    tmpl_token *t = lx_push(L, TK_TEXT);
    if (!t)
        return al_err(L->err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
    t->line = line;
    t->p = L->src + s;
    t->n = e - s;
    return AL_OK;
}

/* Trims text [s, *e) before a tag: '-' strips all trailing whitespace;
 * lstrip (block/comment tags without '+') strips spaces/tabs back to the
 * start of the line when only those stand between. */
static void trim_before(const lexer *L, size_t s, size_t *e, char ctl, bool lstrip)
{
    if (ctl == '-') {
        while (*e > s && is_ws(L->src[*e - 1]))
            (*e)--;
        return;
    }
    if (!lstrip || ctl == '+')
        return;
    size_t i = *e;
    while (i > s && (L->src[i - 1] == ' ' || L->src[i - 1] == '\t'))
        i--;
    bool at_line_start = (i > s) ? L->src[i - 1] == '\n' : (i == 0 || L->src[i - 1] == '\n');
    if (at_line_start)
        *e = i;
}

/* After a tag's close at pos: '-' strips all whitespace; trim_blocks (for
 * block/comment tags, unless '+') drops one newline. */
static void trim_after(lexer *L, char ctl, bool trim)
{
    if (ctl == '-') {
        size_t i = L->pos;
        while (i < L->len && is_ws(L->src[i]))
            i++;
        advance_to(L, i);
    } else if (trim && ctl != '+' && L->pos < L->len && L->src[L->pos] == '\n') {
        advance_to(L, L->pos + 1);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string literal at L->pos (quote char there). Python escapes. */
static al_status lex_string(lexer *L)
{
    char q = L->src[L->pos];
    size_t i = L->pos + 1;
    size_t end = i;
    while (end < L->len && L->src[end] != q) {
        if (L->src[end] == '\\' && end + 1 < L->len)
            end++;
        end++;
    }
    if (end >= L->len)
        return lx_fail(L, "unterminated string literal");
    /* unescaped value is never longer than the source */
    char *o = tmpl_alloc(L->a, end - i + 1);
    if (!o)
        return al_err(L->err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
    size_t n = 0;
    while (i < end) {
        char c = L->src[i];
        if (c != '\\') {
            o[n++] = c;
            i++;
            continue;
        }
        char e = L->src[i + 1];
        i += 2;
        switch (e) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case '\\': o[n++] = '\\'; break;
        case '\'': o[n++] = '\''; break;
        case '"': o[n++] = '"'; break;
        case 'a': o[n++] = '\a'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'v': o[n++] = '\v'; break;
        case '0': o[n++] = '\0'; break;
        case '\n': break; /* line continuation */
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            if (i + (size_t)nd > end)
                return lx_fail(L, "truncated escape in string literal");
            for (int k = 0; k < nd; k++) {
                int h = hexval(L->src[i + (size_t)k]);
                if (h < 0)
                    return lx_fail(L, "bad escape in string literal");
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return lx_fail(L, "escape is not a valid code point");
            /* a \xNN or \u escape needs at most as many bytes as its source */
            n += al_utf8_encode(cp, o + n);
            i += (size_t)nd;
            break;
        }
        default:
            o[n++] = '\\';
            o[n++] = e;
        }
    }
    tmpl_token *t = lx_push(L, TK_STRING);
    if (!t)
        return al_err(L->err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
    t->p = o;
    t->n = n;
    advance_to(L, end + 1);
    return AL_OK;
}

static al_status lex_number(lexer *L)
{
    size_t i = L->pos;
    bool is_float = false;
    char buf[64];
    size_t bn = 0;
    while (i < L->len && (is_digit(L->src[i]) || L->src[i] == '_')) {
        if (L->src[i] != '_' && bn < sizeof(buf) - 1)
            buf[bn++] = L->src[i];
        i++;
    }
    if (i + 1 < L->len && L->src[i] == '.' && is_digit(L->src[i + 1])) {
        is_float = true;
        buf[bn++] = '.';
        i++;
        while (i < L->len && (is_digit(L->src[i]) || L->src[i] == '_')) {
            if (L->src[i] != '_' && bn < sizeof(buf) - 1)
                buf[bn++] = L->src[i];
            i++;
        }
    }
    if (i < L->len && (L->src[i] == 'e' || L->src[i] == 'E')) {
        size_t j = i + 1;
        if (j < L->len && (L->src[j] == '+' || L->src[j] == '-'))
            j++;
        if (j < L->len && is_digit(L->src[j])) {
            is_float = true;
            if (bn < sizeof(buf) - 1)
                buf[bn++] = 'e';
            for (size_t k = i + 1; k < j; k++)
                if (bn < sizeof(buf) - 1)
                    buf[bn++] = L->src[k];
            i = j;
            while (i < L->len && is_digit(L->src[i])) {
                if (bn < sizeof(buf) - 1)
                    buf[bn++] = L->src[i];
                i++;
            }
        }
    }
    if (bn >= sizeof(buf) - 1)
        return lx_fail(L, "number literal too long");
    buf[bn] = 0;
    tmpl_token *t = lx_push(L, is_float ? TK_FLOAT : TK_INT);
    if (!t)
        return al_err(L->err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
    t->p = L->src + L->pos;
    t->n = i - L->pos;
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        char *endp;
        unsigned long long v = strtoull(buf, &endp, 10);
        if (bn > 18 && (v > INT64_MAX || bn > 19))
            return lx_fail(L, "integer literal too large");
        t->i = (int64_t)v;
    }
    advance_to(L, i);
    return AL_OK;
}

static const char *const k_ops[] = {
    "**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
    "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "=", ";",
};

/* Tokens inside a {{ }} or {% %} tag until its close; close is "}}" or "%}". */
static al_status lex_tag(lexer *L, char close, char *ctl_out)
{
    int depth = 0;
    uint32_t open_line = L->line;
    for (;;) {
        while (L->pos < L->len && is_ws(L->src[L->pos]))
            advance_to(L, L->pos + 1);
        if (L->pos >= L->len) {
            L->line = open_line; /* name the line the tag opened on */
            return lx_fail(L, close == '}' ? "unclosed '{{'" : "unclosed '{%'");
        }
        const char *s = L->src + L->pos;
        size_t rem = L->len - L->pos;
        /* close, optionally with - or + */
        if (depth == 0) {
            char ctl = 0;
            size_t k = 0;
            if ((s[0] == '-' || s[0] == '+') && rem >= 3) {
                ctl = s[0];
                k = 1;
            }
            if (rem >= k + 2 && s[k] == close && s[k + 1] == '}') {
                *ctl_out = ctl;
                advance_to(L, L->pos + k + 2);
                return AL_OK;
            }
        }
        char c = s[0];
        if (c == '\'' || c == '"') {
            al_status st = lex_string(L);
            if (st)
                return st;
            continue;
        }
        if (is_digit(c)) {
            al_status st = lex_number(L);
            if (st)
                return st;
            continue;
        }
        if (is_id0(c)) {
            size_t i = 1;
            while (i < rem && (is_id0(s[i]) || is_digit(s[i])))
                i++;
            tmpl_token *t = lx_push(L, TK_NAME);
            if (!t)
                return al_err(L->err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
            t->p = s;
            t->n = i;
            advance_to(L, L->pos + i);
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof(k_ops) / sizeof(k_ops[0]); k++) {
            size_t on = strlen(k_ops[k]);
            if (rem >= on && !memcmp(s, k_ops[k], on))
                break;
        }
        if (k == sizeof(k_ops) / sizeof(k_ops[0])) {
            char msg[64];
            if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
                snprintf(msg, sizeof(msg), "unexpected character '%c'", c);
            else
                snprintf(msg, sizeof(msg), "unexpected byte 0x%02x", (unsigned char)c);
            return lx_fail(L, msg);
        }
        if (c == '(' || c == '[' || c == '{')
            depth++;
        else if (c == ')' || c == ']' || c == '}') {
            if (depth == 0)
                return lx_fail(L, "unbalanced bracket");
            depth--;
        }
        tmpl_token *t = lx_push(L, TK_OP);
        if (!t)
            return al_err(L->err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
        t->p = s;
        t->n = strlen(k_ops[k]);
        advance_to(L, L->pos + t->n);
    }
}

/* At "{%" (ctl parsed): is this "{% raw %}"? Sets *after to just past it. */
static bool match_word_tag(const lexer *L, size_t p, const char *word, size_t *after, char *close_ctl)
{
    size_t wn = strlen(word);
    while (p < L->len && is_ws(L->src[p]))
        p++;
    if (L->len - p < wn || memcmp(L->src + p, word, wn))
        return false;
    p += wn;
    if (p < L->len && (is_id0(L->src[p]) || is_digit(L->src[p])))
        return false;
    while (p < L->len && is_ws(L->src[p]))
        p++;
    char ctl = 0;
    if (p < L->len && (L->src[p] == '-' || L->src[p] == '+'))
        ctl = L->src[p++];
    if (L->len - p < 2 || L->src[p] != '%' || L->src[p + 1] != '}')
        return false;
    *after = p + 2;
    *close_ctl = ctl;
    return true;
}

al_status tmpl_lex(tmpl_arena *a, const char *src, size_t len, tmpl_tokens *out, al_error *err)
{
    lexer L = {.a = a, .src = src, .len = len, .line = 1, .err = err};
    while (L.pos < L.len) {
        size_t ts = find_tag(&L, L.pos);
        size_t text_s = L.pos, text_e = ts;
        uint32_t text_line = L.line;
        if (ts >= L.len) {
            al_status st = emit_text(&L, text_s, text_e, text_line);
            if (st)
                return st;
            advance_to(&L, L.len);
            break;
        }
        char kind = src[ts + 1];
        char open_ctl = 0;
        if (ts + 2 < len && (src[ts + 2] == '-' || src[ts + 2] == '+'))
            open_ctl = src[ts + 2];
        bool blocky = kind == '%' || kind == '#';
        /* '+' after '{{' means nothing to Jinja2's lstrip; '-' always strips */
        trim_before(&L, text_s, &text_e, open_ctl, blocky);
        al_status st = emit_text(&L, text_s, text_e, text_line);
        if (st)
            return st;
        advance_to(&L, ts);
        size_t body = ts + 2 + (open_ctl ? 1 : 0);
        if (kind == '#') {
            size_t i = body;
            while (i + 1 < len && !(src[i] == '#' && src[i + 1] == '}'))
                i++;
            if (i + 1 >= len)
                return lx_fail(&L, "unclosed comment");
            char ctl = 0;
            if (i > body && (src[i - 1] == '-' || src[i - 1] == '+'))
                ctl = src[i - 1];
            advance_to(&L, i + 2);
            trim_after(&L, ctl, true);
            continue;
        }
        if (kind == '%') {
            size_t after;
            char rctl;
            if (match_word_tag(&L, body, "raw", &after, &rctl)) {
                /* find {% endraw %} */
                size_t i = after;
                size_t end_s = 0, end_after = 0;
                char ectl = 0, eopen = 0;
                bool found = false;
                while ((i = find_tag(&L, i)) < len) {
                    if (src[i + 1] == '%') {
                        size_t b2 = i + 2;
                        char oc = 0;
                        if (b2 < len && (src[b2] == '-' || src[b2] == '+'))
                            oc = src[b2++];
                        if (match_word_tag(&L, b2, "endraw", &end_after, &ectl)) {
                            end_s = i;
                            eopen = oc;
                            found = true;
                            break;
                        }
                    }
                    i += 2;
                }
                if (!found)
                    return lx_fail(&L, "missing {% endraw %}");
                advance_to(&L, after);
                trim_after(&L, rctl, true);
                size_t rs = L.pos, re = end_s;
                uint32_t rline = L.line;
                if (rs > re)
                    rs = re;
                trim_before(&L, rs, &re, eopen, true);
                if ((st = emit_text(&L, rs, re, rline)))
                    return st;
                advance_to(&L, end_after);
                trim_after(&L, ectl, true);
                continue;
            }
        }
        tmpl_token *t = lx_push(&L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN);
        if (!t)
            return al_err(err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
        advance_to(&L, body);
        char close_ctl = 0;
        if ((st = lex_tag(&L, kind == '%' ? '%' : '}', &close_ctl)))
            return st;
        t = lx_push(&L, kind == '%' ? TK_BLOCK_END : TK_VAR_END);
        if (!t)
            return al_err(err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
        trim_after(&L, close_ctl, kind == '%');
    }
    if (!lx_push(&L, TK_EOF))
        return al_err(err, AL_ERR_LIMIT, "chat template: out of memory while lexing");
    out->t = L.t;
    out->n = L.n;
    return AL_OK;
}
