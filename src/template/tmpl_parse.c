/*
 * tmpl_parse.c - recursive-descent parser for the Jinja2 subset chat
 * templates use. Precedence follows Jinja2's parser: conditional
 * expression < or < and < not < comparisons < + - < ~ < * / // % < ** <
 * unary - + < postfix (. [] ()) and filters/tests. Nesting of expressions
 * and blocks is bounded so that hostile input cannot exhaust the stack.
 */
#include "template/tmpl.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

typedef struct parser {
    tmpl_arena *a;
    const tmpl_token *t;
    size_t n, i;
    int depth, max_depth;
    al_error *err;
} parser;

static const tmpl_token *peek(const parser *P) { return &P->t[P->i < P->n ? P->i : P->n - 1]; }
static const tmpl_token *peek2(const parser *P)
{
    size_t j = P->i + 1;
    return &P->t[j < P->n ? j : P->n - 1];
}
static const tmpl_token *next(parser *P)
{
    const tmpl_token *t = peek(P);
    if (P->i < P->n - 1)
        P->i++;
    return t;
}

static bool tok_is(const tmpl_token *t, tk_type type, const char *s)
{
    if (t->type != type)
        return false;
    if (!s)
        return true;
    size_t n = strlen(s);
    return t->n == n && !memcmp(t->p, s, n);
}
static bool is_op(const parser *P, const char *s) { return tok_is(peek(P), TK_OP, s); }
static bool is_name(const parser *P, const char *s) { return tok_is(peek(P), TK_NAME, s); }

static al_status perr(parser *P, const char *fmt, const char *arg)
{
    const tmpl_token *t = peek(P);
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    return al_err(P->err, AL_ERR_TEMPLATE, "chat template line %u: %s", t->line, msg);
}

static const char *tok_desc(const tmpl_token *t, char *buf, size_t cap)
{
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    case TK_STRING: return "a string";
    case TK_INT:
    case TK_FLOAT: return "a number";
    default:
        snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
        return buf;
    }
}

static al_status unexpected(parser *P, const char *wanted)
{
    char b[64], msg[200];
    snprintf(msg, sizeof(msg), "expected %s, got %s", wanted, tok_desc(peek(P), b, sizeof(b)));
    return perr(P, "%s", msg);
}

static al_status expect_op(parser *P, const char *s)
{
    if (!is_op(P, s)) {
        char w[16];
        snprintf(w, sizeof(w), "'%s'", s);
        return unexpected(P, w);
    }
    next(P);
    return AL_OK;
}

static tnode *mk(parser *P, tn_kind k, uint32_t line)
{
    tnode *n = tmpl_alloc(P->a, sizeof(*n));
    if (n) {
        n->kind = k;
        n->line = line;
    }
    return n;
}

#define NEW(var, kind, line)                                                                        \
    tnode *var = mk(P, kind, line);                                                                 \
    if (!var)                                                                                       \
        return al_err(P->err, AL_ERR_LIMIT, "chat template: out of memory while parsing");

static al_status enter(parser *P)
{
    if (++P->depth > P->max_depth)
        return perr(P, "%s", "expressions or blocks nested too deeply (nesting limit)");
    return AL_OK;
}

static al_status parse_expr(parser *P, tnode **out);
static al_status parse_or(parser *P, tnode **out);
static al_status parse_unary(parser *P, bool with_filter, tnode **out);
static al_status parse_primary(parser *P, tnode **out);
static al_status parse_postfix(parser *P, tnode **node);

/* (args) after '(' was consumed: positional and name=value arguments. */
static al_status parse_call_args(parser *P, tnode **head)
{
    tnode **tail = head;
    while (!is_op(P, ")")) {
        tnode *arg;
        al_status st;
        if (peek(P)->type == TK_NAME && tok_is(peek2(P), TK_OP, "=")) {
            const tmpl_token *nm = next(P);
            next(P);
            NEW(kw, E_KWARG, nm->line);
            kw->name = nm->p;
            kw->name_n = nm->n;
            if ((st = parse_expr(P, &kw->a)))
                return st;
            arg = kw;
        } else if ((st = parse_expr(P, &arg))) {
            return st;
        }
        *tail = arg;
        tail = &arg->next;
        if (!is_op(P, ","))
            break;
        next(P);
    }
    return expect_op(P, ")");
}

/* Filter/test name: dotted names are joined (Jinja2 allows a.b). */
static al_status parse_dotted_name(parser *P, const char **name, size_t *n)
{
    const tmpl_token *t = peek(P);
    if (t->type != TK_NAME)
        return unexpected(P, "a name");
    next(P);
    *name = t->p;
    *n = t->n;
    return AL_OK;
}

static al_status parse_filter(parser *P, tnode *operand, tnode **out)
{
    uint32_t line = peek(P)->line;
    NEW(f, E_FILTER, line);
    al_status st = parse_dotted_name(P, &f->name, &f->name_n);
    if (st)
        return st;
    f->a = operand;
    if (is_op(P, "(")) {
        next(P);
        if ((st = parse_call_args(P, &f->args)))
            return st;
    }
    *out = f;
    return AL_OK;
}

static bool starts_test_arg(const parser *P)
{
    const tmpl_token *t = peek(P);
    if (t->type == TK_STRING || t->type == TK_INT || t->type == TK_FLOAT)
        return true;
    if (t->type == TK_OP)
        return tok_is(t, TK_OP, "[") || tok_is(t, TK_OP, "{") || tok_is(t, TK_OP, "-");
    if (t->type == TK_NAME)
        return !(tok_is(t, TK_NAME, "else") || tok_is(t, TK_NAME, "or") || tok_is(t, TK_NAME, "and") ||
                 tok_is(t, TK_NAME, "if") || tok_is(t, TK_NAME, "in") || tok_is(t, TK_NAME, "not") ||
                 tok_is(t, TK_NAME, "is") || tok_is(t, TK_NAME, "recursive"));
    return false;
}

/* filters (|) and tests (is) after a unary expression */
static al_status parse_filter_expr(parser *P, tnode **node)
{
    al_status st;
    for (;;) {
        if (is_op(P, "|")) {
            next(P);
            if ((st = parse_filter(P, *node, node)))
                return st;
        } else if (is_name(P, "is")) {
            uint32_t line = next(P)->line;
            NEW(t, E_TEST, line);
            if (is_name(P, "not")) {
                next(P);
                t->neg = true;
            }
            if ((st = parse_dotted_name(P, &t->name, &t->name_n)))
                return st;
            t->a = *node;
            if (is_op(P, "(")) {
                next(P);
                if ((st = parse_call_args(P, &t->args)))
                    return st;
            } else if (starts_test_arg(P)) {
                tnode *arg;
                if ((st = parse_unary(P, false, &arg)))
                    return st;
                t->args = arg;
            }
            *node = t;
        } else {
            return AL_OK;
        }
    }
}

static al_status parse_unary(parser *P, bool with_filter, tnode **out)
{
    al_status st = enter(P);
    if (st)
        return st;
    const tmpl_token *t = peek(P);
    if (tok_is(t, TK_OP, "-") || tok_is(t, TK_OP, "+")) {
        next(P);
        NEW(u, tok_is(t, TK_OP, "-") ? E_NEG : E_POS, t->line);
        if ((st = parse_unary(P, false, &u->a)))
            return st;
        *out = u;
    } else {
        if ((st = parse_primary(P, out)))
            return st;
        if ((st = parse_postfix(P, out)))
            return st;
    }
    if (with_filter && (st = parse_filter_expr(P, out)))
        return st;
    P->depth--;
    return AL_OK;
}

static al_status parse_pow(parser *P, tnode **out)
{
    al_status st = parse_unary(P, true, out);
    while (!st && is_op(P, "**")) {
        uint32_t line = next(P)->line;
        NEW(b, E_BIN, line);
        b->op = OP_POW;
        b->a = *out;
        if ((st = parse_unary(P, true, &b->b)))
            return st;
        *out = b;
    }
    return st;
}

static al_status parse_math2(parser *P, tnode **out)
{
    al_status st = parse_pow(P, out);
    for (;;) {
        if (st)
            return st;
        tn_op op = is_op(P, "*") ? OP_MUL : is_op(P, "/") ? OP_DIV : is_op(P, "//") ? OP_FLOORDIV
                 : is_op(P, "%") ? OP_MOD : OP_NONE;
        if (op == OP_NONE)
            return AL_OK;
        uint32_t line = next(P)->line;
        NEW(b, E_BIN, line);
        b->op = op;
        b->a = *out;
        st = parse_pow(P, &b->b);
        *out = b;
    }
}

static al_status parse_concat(parser *P, tnode **out)
{
    al_status st = parse_math2(P, out);
    while (!st && is_op(P, "~")) {
        uint32_t line = next(P)->line;
        NEW(b, E_BIN, line);
        b->op = OP_CONCAT;
        b->a = *out;
        st = parse_math2(P, &b->b);
        *out = b;
    }
    return st;
}

static al_status parse_math1(parser *P, tnode **out)
{
    al_status st = parse_concat(P, out);
    for (;;) {
        if (st)
            return st;
        tn_op op = is_op(P, "+") ? OP_ADD : is_op(P, "-") ? OP_SUB : OP_NONE;
        if (op == OP_NONE)
            return AL_OK;
        uint32_t line = next(P)->line;
        NEW(b, E_BIN, line);
        b->op = op;
        b->a = *out;
        st = parse_concat(P, &b->b);
        *out = b;
    }
}

static al_status parse_compare(parser *P, tnode **out)
{
    tnode *left;
    al_status st = parse_math1(P, &left);
    if (st)
        return st;
    tnode *head = NULL, **tail = &head;
    for (;;) {
        tn_op op = OP_NONE;
        const tmpl_token *t = peek(P);
        if (tok_is(t, TK_OP, "=="))
            op = OP_EQ;
        else if (tok_is(t, TK_OP, "!="))
            op = OP_NE;
        else if (tok_is(t, TK_OP, "<"))
            op = OP_LT;
        else if (tok_is(t, TK_OP, "<="))
            op = OP_LE;
        else if (tok_is(t, TK_OP, ">"))
            op = OP_GT;
        else if (tok_is(t, TK_OP, ">="))
            op = OP_GE;
        else if (tok_is(t, TK_NAME, "in"))
            op = OP_IN;
        else if (tok_is(t, TK_NAME, "not") && tok_is(peek2(P), TK_NAME, "in"))
            op = OP_NOTIN;
        if (op == OP_NONE)
            break;
        next(P);
        if (op == OP_NOTIN)
            next(P);
        NEW(c, E_CMP, t->line);
        c->op = op;
        if ((st = parse_math1(P, &c->b)))
            return st;
        *tail = c;
        tail = &c->d; /* not next: that links list items and arguments */
    }
    if (!head) {
        *out = left;
        return AL_OK;
    }
    /* E_CMP chain: first node carries the left operand in a */
    head->a = left;
    *out = head;
    return AL_OK;
}

static al_status parse_not(parser *P, tnode **out)
{
    if (is_name(P, "not")) {
        uint32_t line = next(P)->line;
        al_status st = enter(P);
        if (st)
            return st;
        NEW(n, E_NOT, line);
        if ((st = parse_not(P, &n->a)))
            return st;
        P->depth--;
        *out = n;
        return AL_OK;
    }
    return parse_compare(P, out);
}

static al_status parse_and(parser *P, tnode **out)
{
    al_status st = parse_not(P, out);
    while (!st && is_name(P, "and")) {
        uint32_t line = next(P)->line;
        NEW(b, E_AND, line);
        b->a = *out;
        st = parse_not(P, &b->b);
        *out = b;
    }
    return st;
}

static al_status parse_or(parser *P, tnode **out)
{
    al_status st = parse_and(P, out);
    while (!st && is_name(P, "or")) {
        uint32_t line = next(P)->line;
        NEW(b, E_OR, line);
        b->a = *out;
        st = parse_and(P, &b->b);
        *out = b;
    }
    return st;
}

/* a if cond else b (else optional) */
static al_status parse_expr(parser *P, tnode **out)
{
    al_status st = enter(P);
    if (st)
        return st;
    if ((st = parse_or(P, out)))
        return st;
    while (is_name(P, "if")) {
        uint32_t line = next(P)->line;
        NEW(c, E_COND, line);
        c->a = *out;
        if ((st = parse_or(P, &c->b)))
            return st;
        if (is_name(P, "else")) {
            next(P);
            if ((st = parse_expr(P, &c->c)))
                return st;
        }
        *out = c;
    }
    P->depth--;
    return AL_OK;
}

/* expr or a bare tuple "a, b" (for set/for targets and values) */
static al_status parse_tuple(parser *P, bool names_only, tnode **out)
{
    uint32_t line = peek(P)->line;
    tnode *first;
    al_status st;
    if (names_only) {
        if (peek(P)->type != TK_NAME)
            return unexpected(P, "a variable name");
        const tmpl_token *t = next(P);
        NEW(nm, E_NAME, t->line);
        nm->name = t->p;
        nm->name_n = t->n;
        first = nm;
        /* ns.attr target */
        if (is_op(P, ".") && peek2(P)->type == TK_NAME) {
            next(P);
            const tmpl_token *at = next(P);
            NEW(a, E_ATTR, at->line);
            a->a = nm;
            a->name = at->p;
            a->name_n = at->n;
            first = a;
        }
    } else if ((st = parse_expr(P, &first))) {
        return st;
    }
    if (!is_op(P, ",")) {
        *out = first;
        return AL_OK;
    }
    NEW(tup, E_TUPLE, line);
    tup->args = first;
    tnode **tail = &first->next;
    while (is_op(P, ",")) {
        next(P);
        if (names_only) {
            if (peek(P)->type != TK_NAME)
                break;
            const tmpl_token *t = next(P);
            NEW(nm, E_NAME, t->line);
            nm->name = t->p;
            nm->name_n = t->n;
            *tail = nm;
            tail = &nm->next;
        } else {
            const tmpl_token *t = peek(P);
            if (t->type == TK_BLOCK_END || t->type == TK_VAR_END || tok_is(t, TK_OP, ")"))
                break;
            tnode *e;
            if ((st = parse_expr(P, &e)))
                return st;
            *tail = e;
            tail = &e->next;
        }
    }
    *out = tup;
    return AL_OK;
}

static al_status parse_primary(parser *P, tnode **out)
{
    const tmpl_token *t = peek(P);
    al_status st;
    switch (t->type) {
    case TK_NAME: {
        next(P);
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True") || tok_is(t, TK_NAME, "false") ||
            tok_is(t, TK_NAME, "False")) {
            NEW(l, E_LIT, t->line);
            l->lit = tv_bool(t->p[0] == 't' || t->p[0] == 'T');
            *out = l;
        } else if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None")) {
            NEW(l, E_LIT, t->line);
            l->lit = tv_none();
            *out = l;
        } else {
            NEW(nm, E_NAME, t->line);
            nm->name = t->p;
            nm->name_n = t->n;
            *out = nm;
        }
        return AL_OK;
    }
    case TK_STRING: {
        next(P);
        NEW(l, E_LIT, t->line);
        l->lit = tv_str(t->p, t->n);
        /* adjacent literals concatenate */
        while (peek(P)->type == TK_STRING) {
            const tmpl_token *t2 = next(P);
            size_t n = l->lit.u.s.n + t2->n;
            char *p = tmpl_alloc(P->a, n + 1);
            if (!p)
                return al_err(P->err, AL_ERR_LIMIT, "chat template: out of memory while parsing");
            memcpy(p, l->lit.u.s.p, l->lit.u.s.n);
            memcpy(p + l->lit.u.s.n, t2->p, t2->n);
            l->lit = tv_str(p, n);
        }
        *out = l;
        return AL_OK;
    }
    case TK_INT:
    case TK_FLOAT: {
        next(P);
        NEW(l, E_LIT, t->line);
        l->lit = t->type == TK_INT ? tv_int(t->i) : tv_float(t->f);
        *out = l;
        return AL_OK;
    }
    case TK_OP:
        if (tok_is(t, TK_OP, "(")) {
            next(P);
            if (is_op(P, ")")) {
                next(P);
                NEW(tup, E_TUPLE, t->line);
                *out = tup;
                return AL_OK;
            }
            if ((st = parse_tuple(P, false, out)))
                return st;
            return expect_op(P, ")");
        }
        if (tok_is(t, TK_OP, "[")) {
            next(P);
            NEW(l, E_LIST, t->line);
            tnode **tail = &l->args;
            while (!is_op(P, "]")) {
                tnode *e;
                if ((st = parse_expr(P, &e)))
                    return st;
                *tail = e;
                tail = &e->next;
                if (!is_op(P, ","))
                    break;
                next(P);
            }
            if ((st = expect_op(P, "]")))
                return st;
            *out = l;
            return AL_OK;
        }
        if (tok_is(t, TK_OP, "{")) {
            next(P);
            NEW(d, E_DICT, t->line);
            tnode **tail = &d->args;
            while (!is_op(P, "}")) {
                NEW(pair, E_PAIR, peek(P)->line);
                if ((st = parse_expr(P, &pair->a)))
                    return st;
                if ((st = expect_op(P, ":")))
                    return st;
                if ((st = parse_expr(P, &pair->b)))
                    return st;
                *tail = pair;
                tail = &pair->next;
                if (!is_op(P, ","))
                    break;
                next(P);
            }
            if ((st = expect_op(P, "}")))
                return st;
            *out = d;
            return AL_OK;
        }
        break;
    default:
        break;
    }
    return unexpected(P, "an expression");
}

static al_status parse_postfix(parser *P, tnode **node)
{
    al_status st;
    for (;;) {
        const tmpl_token *t = peek(P);
        if (tok_is(t, TK_OP, ".")) {
            next(P);
            const tmpl_token *nm = peek(P);
            if (nm->type == TK_NAME || nm->type == TK_INT) {
                next(P);
                if (nm->type == TK_INT) {
                    NEW(it, E_ITEM, nm->line);
                    NEW(lit, E_LIT, nm->line);
                    lit->lit = tv_int(nm->i);
                    it->a = *node;
                    it->b = lit;
                    *node = it;
                } else {
                    NEW(at, E_ATTR, nm->line);
                    at->a = *node;
                    at->name = nm->p;
                    at->name_n = nm->n;
                    *node = at;
                }
            } else {
                return unexpected(P, "an attribute name");
            }
        } else if (tok_is(t, TK_OP, "[")) {
            next(P);
            tnode *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool is_slice = false;
            for (;;) {
                if (is_op(P, ":")) {
                    is_slice = true;
                    next(P);
                    if (++np > 2)
                        return perr(P, "%s", "too many ':' in a slice");
                    continue;
                }
                if (is_op(P, "]"))
                    break;
                if (parts[np])
                    return unexpected(P, "']'");
                if ((st = parse_expr(P, &parts[np])))
                    return st;
            }
            next(P);
            if (is_slice) {
                NEW(s, E_SLICE, t->line);
                s->a = *node;
                s->b = parts[0];
                s->c = parts[1];
                s->d = parts[2];
                *node = s;
            } else {
                if (!parts[0])
                    return perr(P, "%s", "empty subscript");
                NEW(it, E_ITEM, t->line);
                it->a = *node;
                it->b = parts[0];
                *node = it;
            }
        } else if (tok_is(t, TK_OP, "(")) {
            next(P);
            NEW(c, E_CALL, t->line);
            c->a = *node;
            if ((st = parse_call_args(P, &c->args)))
                return st;
            *node = c;
        } else {
            return AL_OK;
        }
    }
}

/* ------------------------------------------------------------------ statements */

static al_status expect_block_end(parser *P)
{
    if (peek(P)->type != TK_BLOCK_END)
        return unexpected(P, "'%}'");
    next(P);
    return AL_OK;
}

/* Parses statements until a {% NAME %} whose NAME is in ends (NULL-terminated);
 * leaves the parser just after that NAME (inside the tag). *which: index. */
static al_status parse_body(parser *P, const char *const *ends, tnode **out, int *which);

static al_status parse_stmt(parser *P, tnode **out, uint32_t line);

static al_status parse_if(parser *P, uint32_t line, tnode **out)
{
    NEW(n, N_IF, line);
    al_status st = parse_expr(P, &n->a);
    if (st || (st = expect_block_end(P)))
        return st;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    int w;
    if ((st = parse_body(P, ends, &n->body, &w)))
        return st;
    if (w == 0) {
        tnode *sub;
        if ((st = parse_if(P, peek(P)->line, &sub)))
            return st;
        n->orelse = sub;
    } else if (w == 1) {
        if ((st = expect_block_end(P)))
            return st;
        static const char *const ends2[] = {"endif", NULL};
        if ((st = parse_body(P, ends2, &n->orelse, &w)))
            return st;
        if ((st = expect_block_end(P)))
            return st;
    } else if ((st = expect_block_end(P))) {
        return st;
    }
    *out = n;
    return AL_OK;
}

static al_status parse_for(parser *P, uint32_t line, tnode **out)
{
    NEW(n, N_FOR, line);
    al_status st = parse_tuple(P, true, &n->a);
    if (st)
        return st;
    if (n->a->kind == E_ATTR)
        return perr(P, "%s", "a for target must be a name");
    if (!is_name(P, "in"))
        return unexpected(P, "'in'");
    next(P);
    /* the iterable: no bare ternary (the 'if' belongs to the loop filter) */
    if ((st = parse_or(P, &n->b)))
        return st;
    if (is_name(P, "if")) {
        next(P);
        if ((st = parse_expr(P, &n->c)))
            return st;
    }
    if (is_name(P, "recursive"))
        return perr(P, "%s", "recursive loops are not supported");
    if ((st = expect_block_end(P)))
        return st;
    static const char *const ends[] = {"else", "endfor", NULL};
    int w;
    if ((st = parse_body(P, ends, &n->body, &w)))
        return st;
    if ((st = expect_block_end(P)))
        return st;
    if (w == 0) {
        static const char *const ends2[] = {"endfor", NULL};
        if ((st = parse_body(P, ends2, &n->orelse, &w)) || (st = expect_block_end(P)))
            return st;
    }
    *out = n;
    return AL_OK;
}

static al_status parse_filter_chain(parser *P, tnode **head)
{
    tnode **tail = head;
    al_status st;
    for (;;) {
        tnode *f;
        if ((st = parse_filter(P, NULL, &f)))
            return st;
        *tail = f;
        tail = &f->next;
        if (!is_op(P, "|"))
            return AL_OK;
        next(P);
    }
}

static al_status parse_set(parser *P, uint32_t line, tnode **out)
{
    tnode *target;
    al_status st = parse_tuple(P, true, &target);
    if (st)
        return st;
    if (is_op(P, "=")) {
        next(P);
        NEW(n, N_SET, line);
        n->a = target;
        if ((st = parse_tuple(P, false, &n->b)) || (st = expect_block_end(P)))
            return st;
        *out = n;
        return AL_OK;
    }
    NEW(n, N_SETBLOCK, line);
    n->a = target;
    if (target->kind == E_TUPLE)
        return perr(P, "%s", "a block set needs a single target");
    if (is_op(P, "|")) {
        next(P);
        if ((st = parse_filter_chain(P, &n->args)))
            return st;
    }
    if ((st = expect_block_end(P)))
        return st;
    static const char *const ends[] = {"endset", NULL};
    int w;
    if ((st = parse_body(P, ends, &n->body, &w)) || (st = expect_block_end(P)))
        return st;
    *out = n;
    return AL_OK;
}

/* (a, b=default, ...) of a macro or call block */
static al_status parse_params(parser *P, tnode **head)
{
    al_status st = expect_op(P, "(");
    if (st)
        return st;
    tnode **tail = head;
    while (!is_op(P, ")")) {
        if (peek(P)->type != TK_NAME)
            return unexpected(P, "a parameter name");
        const tmpl_token *t = next(P);
        NEW(p, E_NAME, t->line);
        p->name = t->p;
        p->name_n = t->n;
        if (is_op(P, "=")) {
            next(P);
            if ((st = parse_expr(P, &p->a)))
                return st;
        }
        *tail = p;
        tail = &p->next;
        if (!is_op(P, ","))
            break;
        next(P);
    }
    return expect_op(P, ")");
}

static al_status parse_macro(parser *P, uint32_t line, tnode **out)
{
    NEW(n, N_MACRO, line);
    if (peek(P)->type != TK_NAME)
        return unexpected(P, "a macro name");
    const tmpl_token *t = next(P);
    n->name = t->p;
    n->name_n = t->n;
    al_status st = parse_params(P, &n->args);
    if (st || (st = expect_block_end(P)))
        return st;
    static const char *const ends[] = {"endmacro", NULL};
    int w;
    if ((st = parse_body(P, ends, &n->body, &w)))
        return st;
    if (peek(P)->type == TK_NAME)
        next(P); /* {% endmacro name %} */
    if ((st = expect_block_end(P)))
        return st;
    *out = n;
    return AL_OK;
}

static al_status parse_call(parser *P, uint32_t line, tnode **out)
{
    NEW(n, N_CALLBLOCK, line);
    al_status st;
    if (is_op(P, "(") && (st = parse_params(P, &n->args)))
        return st;
    if ((st = parse_expr(P, &n->a)))
        return st;
    if (n->a->kind != E_CALL)
        return perr(P, "%s", "{% call %} needs a call expression");
    if ((st = expect_block_end(P)))
        return st;
    static const char *const ends[] = {"endcall", NULL};
    int w;
    if ((st = parse_body(P, ends, &n->body, &w)) || (st = expect_block_end(P)))
        return st;
    *out = n;
    return AL_OK;
}

static al_status parse_stmt(parser *P, tnode **out, uint32_t line)
{
    const tmpl_token *t = peek(P);
    if (t->type != TK_NAME)
        return unexpected(P, "a statement name");
    next(P);
    al_status st;
    if (tok_is(t, TK_NAME, "if"))
        return parse_if(P, line, out);
    if (tok_is(t, TK_NAME, "for"))
        return parse_for(P, line, out);
    if (tok_is(t, TK_NAME, "set"))
        return parse_set(P, line, out);
    if (tok_is(t, TK_NAME, "macro"))
        return parse_macro(P, line, out);
    if (tok_is(t, TK_NAME, "call"))
        return parse_call(P, line, out);
    if (tok_is(t, TK_NAME, "break") || tok_is(t, TK_NAME, "continue")) {
        NEW(n, tok_is(t, TK_NAME, "break") ? N_BREAK : N_CONTINUE, line);
        if ((st = expect_block_end(P)))
            return st;
        *out = n;
        return AL_OK;
    }
    if (tok_is(t, TK_NAME, "do")) {
        NEW(n, N_DO, line);
        if ((st = parse_tuple(P, false, &n->a)) || (st = expect_block_end(P)))
            return st;
        *out = n;
        return AL_OK;
    }
    if (tok_is(t, TK_NAME, "filter")) {
        NEW(n, N_FILTERBLOCK, line);
        if ((st = parse_filter_chain(P, &n->args)) || (st = expect_block_end(P)))
            return st;
        static const char *const ends[] = {"endfilter", NULL};
        int w;
        if ((st = parse_body(P, ends, &n->body, &w)) || (st = expect_block_end(P)))
            return st;
        *out = n;
        return AL_OK;
    }
    if (tok_is(t, TK_NAME, "generation")) {
        /* Hugging Face's {% generation %} marks assistant text for masks;
         * for rendering it is a plain block. */
        NEW(n, N_FILTERBLOCK, line);
        if ((st = expect_block_end(P)))
            return st;
        static const char *const ends[] = {"endgeneration", NULL};
        int w;
        if ((st = parse_body(P, ends, &n->body, &w)) || (st = expect_block_end(P)))
            return st;
        *out = n;
        return AL_OK;
    }
    char nm[48];
    snprintf(nm, sizeof(nm), "%.*s", (int)(t->n > 40 ? 40 : t->n), t->p);
    P->i--;
    return perr(P, "unknown or misplaced tag '%s'", nm);
}

static al_status parse_body(parser *P, const char *const *ends, tnode **out, int *which)
{
    al_status st = enter(P);
    if (st)
        return st;
    tnode *head = NULL, **tail = &head;
    for (;;) {
        const tmpl_token *t = peek(P);
        tnode *n = NULL;
        if (t->type == TK_EOF) {
            if (ends) {
                /* name the closing tag the block needs */
                const char *need = ends[0];
                for (int k = 0; ends[k]; k++)
                    if (!strncmp(ends[k], "end", 3))
                        need = ends[k];
                char msg[64];
                snprintf(msg, sizeof(msg), "missing {%% %s %%} before the end of the template", need);
                return perr(P, "%s", msg);
            }
            *out = head;
            P->depth--;
            return AL_OK;
        }
        if (t->type == TK_TEXT) {
            next(P);
            NEW(tx, N_TEXT, t->line);
            tx->name = t->p;
            tx->name_n = t->n;
            n = tx;
        } else if (t->type == TK_VAR_BEGIN) {
            next(P);
            NEW(o, N_OUTPUT, t->line);
            if ((st = parse_tuple(P, false, &o->a)))
                return st;
            if (peek(P)->type != TK_VAR_END)
                return unexpected(P, "'}}'");
            next(P);
            n = o;
        } else if (t->type == TK_BLOCK_BEGIN) {
            next(P);
            const tmpl_token *nm = peek(P);
            if (ends && nm->type == TK_NAME) {
                for (int k = 0; ends[k]; k++) {
                    if (tok_is(nm, TK_NAME, ends[k])) {
                        next(P);
                        *which = k;
                        *out = head;
                        P->depth--;
                        return AL_OK;
                    }
                }
            }
            if ((st = parse_stmt(P, &n, nm->line)))
                return st;
        } else {
            return unexpected(P, "template text or a tag");
        }
        *tail = n;
        tail = &n->next;
    }
}

al_status tmpl_parse(tmpl_arena *a, const tmpl_tokens *toks, int max_nesting, tnode **out, al_error *err)
{
    parser P = {.a = a, .t = toks->t, .n = toks->n, .max_depth = max_nesting, .err = err};
    int w;
    return parse_body(&P, NULL, out, &w);
}
