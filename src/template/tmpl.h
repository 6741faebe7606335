/*
 * tmpl.h - internals of the chat-template (Jinja2 subset) interpreter.
 *
 * Pipeline: tmpl_lex.c turns the source into tokens (whitespace control,
 * comments and raw blocks are resolved there), tmpl_parse.c builds an AST,
 * tmpl_eval.c walks it, with tmpl_filters.c (filters, tests, methods),
 * tmpl_value.c (Python-like values, str()/repr()/tojson) and
 * tmpl_json.c (jansson -> values). template.c is the public API.
 *
 * Memory: everything a parse or a render creates lives in a tmpl_arena that
 * is freed at once at the end. Values are immutable once built (except
 * namespace() objects), so they are shared by pointer without counting
 * references. The arena has a byte limit: that is the sandbox's memory cap.
 */
#ifndef AL_TEMPLATE_TMPL_H
#define AL_TEMPLATE_TMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

/* ------------------------------------------------------------------ arena */

typedef struct tmpl_chunk tmpl_chunk;
typedef struct tmpl_arena {
    tmpl_chunk *head;
    size_t used_bytes;  /* bytes handed out + chunk overhead */
    size_t limit_bytes; /* 0: unlimited */
    bool oom;           /* a malloc failed (as opposed to the limit being hit) */
} tmpl_arena;

/* n bytes, max-aligned, zeroed. NULL when the limit is hit or malloc fails. */
void *tmpl_alloc(tmpl_arena *a, size_t n);
/* Grows block p (old_n bytes, from this arena) to new_n: in place when it
 * is the arena's last block, else a copy (the old block stays allocated). */
void *tmpl_grow(tmpl_arena *a, void *p, size_t old_n, size_t new_n);
/* n*size bytes with overflow check. */
void *tmpl_alloc_n(tmpl_arena *a, size_t n, size_t size);
void tmpl_arena_free(tmpl_arena *a);

/* ------------------------------------------------------------------ values */

typedef enum tv_type {
    TV_UNDEF = 0, /* u.s: the name that was undefined (for messages), may be empty */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,   /* UTF-8 bytes, not NUL-terminated */
    TV_LIST,  /* also tuples (list->tuple) */
    TV_DICT,  /* also namespace() objects (dict->ns) */
    TV_FUNC,  /* a built-in global function */
    TV_MACRO, /* a macro or a call block's caller() */
    TV_LOOP,  /* the `loop` variable of a for */
} tv_type;

typedef struct tv_list tv_list;
typedef struct tv_dict tv_dict;
typedef struct tmpl_macro tmpl_macro;
typedef struct tmpl_loop tmpl_loop;
typedef struct tmpl_func tmpl_func;

typedef struct tv {
    tv_type type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        tv_list *list;
        tv_dict *dict;
        const tmpl_func *fn;
        tmpl_macro *macro;
        tmpl_loop *loop;
    } u;
} tv;

struct tv_list {
    size_t n, cap;
    tv *items;
    bool tuple;
};

typedef struct tv_kv {
    const char *k;
    size_t kn;
    tv v;
} tv_kv;

/* Keys are strings (JSON objects and what templates build). Insertion
 * order is kept, as Python dicts do. */
struct tv_dict {
    size_t n, cap;
    tv_kv *kv;
    bool ns; /* a namespace(): the one mutable object */
};

static inline tv tv_undef(void) { tv v = {TV_UNDEF, {0}}; return v; }
static inline tv tv_none(void) { tv v = {TV_NONE, {0}}; return v; }
static inline tv tv_bool(bool b) { tv v = {TV_BOOL, {0}}; v.u.b = b; return v; }
static inline tv tv_int(int64_t i) { tv v = {TV_INT, {0}}; v.u.i = i; return v; }
static inline tv tv_float(double f) { tv v = {TV_FLOAT, {0}}; v.u.f = f; return v; }
static inline tv tv_str(const char *p, size_t n) { tv v = {TV_STR, {0}}; v.u.s.p = p; v.u.s.n = n; return v; }
tv tv_cstr(const char *s);

tv_list *tv_list_new(tmpl_arena *a, size_t cap);
/* false on memory limit */
bool tv_list_push(tmpl_arena *a, tv_list *l, tv v);
tv_dict *tv_dict_new(tmpl_arena *a, size_t cap);
/* Sets (replaces or appends) key k. false on memory limit. */
bool tv_dict_set(tmpl_arena *a, tv_dict *d, const char *k, size_t kn, tv v);
/* NULL when absent. */
tv *tv_dict_get(const tv_dict *d, const char *k, size_t kn);

/* Python truthiness. */
bool tv_truthy(const tv *v);
/* Python ==, deep (1 == 1.0 == True). */
bool tv_equal(const tv *a, const tv *b, int depth);
/* Python's type name, for error messages ("str", "int", "dict", ...). */
const char *tv_type_name(const tv *v);

/* A growable byte buffer in an arena, with its own cap (0: none). */
typedef struct tmpl_buf {
    tmpl_arena *a;
    char *p;
    size_t n, cap;
    size_t limit; /* 0: no limit other than the arena's */
    bool over;    /* an append failed (limit or memory) */
    bool at_limit; /* ... because of `limit` */
} tmpl_buf;

bool tb_put(tmpl_buf *b, const char *s, size_t n);
bool tb_putc(tmpl_buf *b, char c);
bool tb_puts(tmpl_buf *b, const char *s);
/* Python str(v) / repr(v) appended. false on memory/limit or a cycle
 * deeper than the nesting limit. */
bool tv_str_append(tmpl_buf *b, const tv *v, int depth);
bool tv_repr_append(tmpl_buf *b, const tv *v, int depth);
/* Python json.dumps(v, ensure_ascii=False, indent=indent (-1: none)). On
 * failure *why says what was wrong (an unserialisable value, depth). */
bool tv_json_append(tmpl_buf *b, const tv *v, int indent, int level, const char **why);
/* Python float repr ("1.0", "0.1", "1e-05", "inf"). buf >= 32 bytes. */
void tv_float_repr(double f, char *buf, size_t cap);

/* Strings as Python sees them: counts and indexes by code point. */
size_t tmpl_utf8_len(const char *p, size_t n);
/* Byte offset of code point index i (clamped to n). */
size_t tmpl_utf8_offset(const char *p, size_t n, size_t i);

/* ------------------------------------------------------------------ lexer */

typedef enum tk_type {
    TK_EOF = 0,
    TK_TEXT,        /* template data between tags (already whitespace-controlled) */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING,      /* unescaped value in p/n */
    TK_INT,
    TK_FLOAT,
    TK_OP,          /* p/n is the operator text */
} tk_type;

typedef struct tmpl_token {
    tk_type type;
    uint32_t line;
    const char *p; /* text, name, op, or unescaped string (arena) */
    size_t n;
    int64_t i;
    double f;
} tmpl_token;

typedef struct tmpl_tokens {
    tmpl_token *t;
    size_t n;
} tmpl_tokens;

/* Tokenizes src (already newline-normalised, in the arena) with
 * trim_blocks and lstrip_blocks on. */
al_status tmpl_lex(tmpl_arena *a, const char *src, size_t len, tmpl_tokens *out, al_error *err);

/* ------------------------------------------------------------------ AST */

typedef enum tn_kind {
    /* statements */
    N_TEXT = 1, /* name = text */
    N_OUTPUT,   /* a = expr */
    N_IF,       /* a = cond, body, orelse */
    N_FOR,      /* a = target (E_NAME / E_TUPLE), b = iterable, c = filter or NULL, body, orelse */
    N_SET,      /* a = target (E_NAME, E_TUPLE or E_ATTR), b = value */
    N_SETBLOCK, /* a = target, body, args = filters (E_FILTER with a NULL operand) */
    N_MACRO,    /* name, args = params (E_NAME, default in a), body */
    N_CALLBLOCK,/* a = call expr, args = caller params, body */
    N_FILTERBLOCK, /* args = filters, body */
    N_BREAK,
    N_CONTINUE,
    N_DO,       /* a = expr */
    /* expressions */
    E_LIT,      /* lit */
    E_NAME,     /* name */
    E_ATTR,     /* a.name */
    E_ITEM,     /* a[b] */
    E_SLICE,    /* a[b:c:d] (any may be NULL) */
    E_CALL,     /* a(args) */
    E_FILTER,   /* a | name(args) */
    E_TEST,     /* a is [not] name(args); neg */
    E_NOT,      /* not a */
    E_NEG,      /* -a */
    E_POS,      /* +a */
    E_BIN,      /* a op b */
    E_AND,
    E_OR,
    E_COND,     /* a if b else c (c may be NULL) */
    E_LIST,     /* args */
    E_TUPLE,    /* args */
    E_DICT,     /* args = E_PAIR */
    E_PAIR,     /* a: b */
    E_KWARG,    /* name = a */
    E_CMP,      /* a op b; a chain (a < b < c) continues through d */
} tn_kind;

typedef enum tn_op {
    OP_NONE = 0, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
} tn_op;

typedef struct tnode tnode;
struct tnode {
    tn_kind kind;
    tn_op op;
    uint32_t line;
    bool neg;         /* E_TEST: `is not` */
    tnode *a, *b, *c, *d;
    tnode *args;      /* linked through next */
    tnode *body;      /* statements, linked through next */
    tnode *orelse;
    tnode *next;
    const char *name; /* not NUL-terminated */
    size_t name_n;
    tv lit;
};

typedef struct tmpl_limits {
    uint64_t max_steps;
    size_t max_output_bytes;
    size_t max_memory_bytes;
    int max_depth;       /* macro/call recursion */
    int max_nesting;     /* parser: expression and block nesting */
} tmpl_limits;

/* Parses tokens into a statement list. */
al_status tmpl_parse(tmpl_arena *a, const tmpl_tokens *toks, int max_nesting,
                     tnode **out, al_error *err);

/* ------------------------------------------------------------------ evaluation */

typedef struct tmpl_frame tmpl_frame;
typedef struct tmpl_ctx tmpl_ctx;

typedef struct tmpl_args {
    size_t npos, nkw;
    tv pos[16];
    const char *kw[16];
    size_t kwn[16];
    tv kwv[16];
} tmpl_args;

struct tmpl_func {
    const char *name;
    al_status (*fn)(tmpl_ctx *c, const tnode *at, const tmpl_args *args, tv *out);
};

struct tmpl_ctx {
    tmpl_arena *arena;
    al_error *err;
    tmpl_limits lim;
    uint64_t steps;
    int depth;      /* macro calls in progress */
    int eval_depth; /* C recursion of the evaluator */
    tmpl_buf *out;
    int ctl; /* 1 break, 2 continue */
    int year, month, day, hour, minute, second;
    tmpl_frame *globals;
};

/* Sets c->err: "line N: ..." and returns s. */
al_status tmpl_fail(tmpl_ctx *c, const tnode *at, al_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
al_status tmpl_nomem(tmpl_ctx *c, const tnode *at);

/* Runs a statement list with the given variables frame (root = NULL: a new
 * one over c->globals). */
al_status tmpl_exec_root(tmpl_ctx *c, const tnode *body);
tmpl_frame *tmpl_frame_new(tmpl_ctx *c, tmpl_frame *parent);
bool tmpl_frame_set(tmpl_ctx *c, tmpl_frame *f, const char *name, size_t n, tv v);

/* Filters, tests and methods (tmpl_filters.c). `found` false: no such name. */
al_status tmpl_filter(tmpl_ctx *c, const tnode *at, const char *name, size_t n,
                      const tv *self, const tmpl_args *args, tv *out);
al_status tmpl_test(tmpl_ctx *c, const tnode *at, const char *name, size_t n,
                    const tv *self, const tmpl_args *args, bool *out);
/* Calls obj.name(args) for str/dict/list methods; *found false when obj has
 * no such method (the caller then tries an attribute). */
al_status tmpl_method(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n,
                      const tmpl_args *args, tv *out, bool *found);
/* Global functions: range, namespace, raise_exception, strftime_now, dict. */
extern const tmpl_func tmpl_globals[];
extern const size_t tmpl_n_globals;

/* Helpers shared by the evaluator and the filters. */
al_status tmpl_to_str(tmpl_ctx *c, const tnode *at, const tv *v, tv *out);
al_status tmpl_iterate(tmpl_ctx *c, const tnode *at, const tv *v, tv_list **out);
al_status tmpl_getattr(tmpl_ctx *c, const tnode *at, const tv *obj, const char *name, size_t n, tv *out);
al_status tmpl_getitem(tmpl_ctx *c, const tnode *at, const tv *obj, const tv *key, tv *out);
al_status tmpl_compare(tmpl_ctx *c, const tnode *at, const tv *a, const tv *b, int *cmp);
al_status tmpl_call_value(tmpl_ctx *c, const tnode *at, const tv *fn, const tmpl_args *args, tv *out);
/* arg by position or keyword; NULL when absent */
const tv *tmpl_arg(const tmpl_args *args, size_t pos, const char *kw);

/* ------------------------------------------------------------------ JSON */

/* Parses JSON text into a value in the arena. */
al_status tmpl_json_parse(tmpl_arena *a, const char *text, const char *what, tv *out, al_error *err);

#endif
