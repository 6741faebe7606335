/*
 * ugm.c - SentencePiece unigram (tokenizer.ggml.model "t5"), as the
 * reference runtime's UGM tokenizer does it (XLM-RoBERTa embedders such as
 * bge-m3, T5).
 *
 * 1. Normalisation, one input prefix at a time: a user-defined token is
 *    kept as it is; otherwise the longest prefix found in the precompiled
 *    charsmap is replaced by its string; otherwise one UTF-8 character is
 *    copied (an invalid byte becomes U+FFFD). Spaces in the result become
 *    U+2581; with add_space_prefix a run of non-spaces that starts the text
 *    gets one before it; with remove_extra_whitespaces every run of spaces
 *    is dropped and each run of non-spaces gets exactly one before it.
 * 2. Viterbi over the normalised bytes: at each character boundary every
 *    token that starts there (normal, user-defined and unused tokens, found
 *    by walking a byte trie) offers the best score so far plus its score
 *    (0 for user-defined tokens); a character no token covers on its own is
 *    the unknown token at (lowest normal score - 10). The best path wins;
 *    ties keep the first candidate found (shorter start, then shorter
 *    token). Consecutive unknown tokens collapse into one.
 *
 * The charsmap (tokenizer.ggml.precompiled_charsmap, bytes) is a u32
 * little-endian size S, then S bytes of XOR-compressed compact double-array
 * trie units (u32 each: BASE in bits 10-30, shifted left 8 more when bit 9
 * is set; LEAF in bit 8; LCHECK in bits 0-7 and 31; a value unit holds an
 * offset in bits 0-30), then NUL-terminated replacement strings. From
 * node s, byte c leads to unit s^c if its LCHECK is c; the next node is
 * that unit's index ^ its BASE; a LEAF unit's next node holds the offset
 * of the replacement for the prefix read so far. The whole reachable trie
 * is checked when the vocab loads, so tokenizing never reads outside it.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

#define CHARSMAP_KEY "tokenizer.ggml.precompiled_charsmap"
#define UNK_PENALTY 10.0f

/* A byte trie whose children are numbered consecutively (breadth first):
 * the children of node i are the nodes [first[i], first[i+1]), sorted by
 * label; node 0 is the root. */
typedef struct ugm_trie {
    uint32_t *first; /* (n + 1) */
    uint8_t *label;  /* (n) the byte on the edge into the node */
    int32_t *value;  /* (n) token id ending here, or -1 */
    float *score;    /* (n) its Viterbi score */
    uint32_t root[256]; /* child of the root for each byte, 0 when none */
    uint32_t n;
} ugm_trie;

struct tok_unigram {
    ugm_trie tokens; /* normal, user-defined and unused tokens */
    ugm_trie user;   /* user-defined tokens only (n == 0: none) */
    float unk_score;
    bool add_space_prefix, remove_extra_ws;
    uint32_t *xcda;  /* (n_xcda) units */
    size_t n_xcda;
    char *repl;      /* (n_repl) replacement strings */
    size_t n_repl;
};

/* ------------------------------------------------------------------ tries */

static inline uint32_t trie_child(const ugm_trie *t, uint32_t node, unsigned char c)
{
    if (node == 0)
        return t->root[c];
    uint32_t lo = t->first[node], hi = t->first[node + 1];
    while (hi - lo > 8) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->label[mid] <= c)
            lo = mid;
        else
            hi = mid;
    }
    for (; lo < hi; lo++)
        if (t->label[lo] == c)
            return lo;
    return 0;
}

static void trie_free(ugm_trie *t)
{
    free(t->first);
    free(t->label);
    free(t->value);
    free(t->score);
    memset(t, 0, sizeof(*t));
}

static int cmp_text(const void *a, const void *b, void *ctx)
{
    const al_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    size_t lx = v->len[x], ly = v->len[y];
    int c = memcmp(v->blob + v->off[x], v->blob + v->off[y], lx < ly ? lx : ly);
    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Builds a trie of the tokens ids[0..n) (each with a non-empty text); a
 * later id with the same text replaces an earlier one. */
static al_status trie_build(const al_vocab *v, int32_t *ids, size_t n, const float *scores, ugm_trie *t,
                            al_error *err)
{
    memset(t, 0, sizeof(*t));
    qsort_r(ids, n, sizeof(int32_t), cmp_text, (void *)v);
    size_t max_nodes = 1;
    for (size_t i = 0; i < n; i++) {
        if (max_nodes > UINT32_MAX - 1 - v->len[ids[i]])
            return al_err(err, AL_ERR_LIMIT, "the tokens are too long for the unigram trie");
        max_nodes += v->len[ids[i]];
    }
    /* first pass: children as sibling lists; the input is sorted, so a new
     * child always goes after the last one, or is the last one */
    uint32_t *fc = malloc(max_nodes * sizeof(uint32_t)), *lc = malloc(max_nodes * sizeof(uint32_t));
    uint32_t *ns = malloc(max_nodes * sizeof(uint32_t));
    uint8_t *lab = malloc(max_nodes);
    int32_t *val = malloc(max_nodes * sizeof(int32_t));
    uint32_t *order = NULL;
    al_status st = AL_OK;
    if (!fc || !lc || !ns || !lab || !val) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory for the unigram trie");
        goto done;
    }
    uint32_t n_nodes = 1;
    fc[0] = lc[0] = 0, val[0] = -1, lab[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)v->blob + v->off[ids[i]];
        uint32_t node = 0;
        for (size_t k = 0; k < v->len[ids[i]]; k++) {
            uint32_t last = lc[node];
            if (fc[node] && lab[last] == s[k]) {
                node = last;
                continue;
            }
            uint32_t nn = n_nodes++;
            fc[nn] = lc[nn] = ns[nn] = 0, val[nn] = -1, lab[nn] = s[k];
            if (fc[node])
                ns[last] = nn;
            else
                fc[node] = nn;
            lc[node] = nn;
            node = nn;
        }
        val[node] = ids[i];
    }
    /* second pass: breadth-first numbering; order[new] = old */
    order = malloc(n_nodes * sizeof(uint32_t));
    t->first = malloc(((size_t)n_nodes + 1) * sizeof(uint32_t));
    t->label = malloc(n_nodes);
    t->value = malloc(n_nodes * sizeof(int32_t));
    t->score = malloc(n_nodes * sizeof(float));
    if (!order || !t->first || !t->label || !t->value || !t->score) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory for the unigram trie");
        goto done;
    }
    uint32_t tail = 1;
    order[0] = 0;
    for (uint32_t h = 0; h < n_nodes; h++) {
        uint32_t o = order[h];
        t->first[h] = tail;
        for (uint32_t c = fc[o]; c; c = ns[c])
            order[tail++] = c;
        t->label[h] = lab[o];
        t->value[h] = val[o];
        t->score[h] = val[o] >= 0 ? scores[val[o]] : 0.0f;
    }
    t->first[n_nodes] = tail;
    t->n = n_nodes;
    for (uint32_t c = t->first[0]; c < t->first[1]; c++)
        t->root[t->label[c]] = c;
done:
    free(fc);
    free(lc);
    free(ns);
    free(lab);
    free(val);
    free(order);
    if (st)
        trie_free(t);
    return st;
}

/* --------------------------------------------------------------- charsmap */

static inline uint32_t xcda_base(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t xcda_lcheck(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
static inline bool xcda_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t xcda_value(uint32_t u) { return u & ((1u << 31) - 1); }

static inline uint32_t rd_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Visits every node reachable from the root and checks that each match
 * names a NUL-terminated string inside the replacement blob. */
static al_status charsmap_check(const tok_unigram *u, al_error *err)
{
    size_t n = u->n_xcda, n_states = (n + 255) & ~(size_t)255;
    uint8_t *seen = calloc(n_states / 8 + 1, 1);
    uint32_t *stack = malloc(n_states * sizeof(uint32_t));
    al_status st = AL_OK;
    if (!seen || !stack) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory checking " CHARSMAP_KEY);
        goto done;
    }
    size_t sp = 0;
    uint32_t root = xcda_base(u->xcda[0]);
    if (root < n_states) {
        seen[root >> 3] |= (uint8_t)(1u << (root & 7));
        stack[sp++] = root;
    }
    while (sp) {
        uint32_t s = stack[--sp];
        for (uint32_t c = 1; c < 256; c++) {
            uint32_t i = s ^ c;
            if (i >= n || xcda_lcheck(u->xcda[i]) != c)
                continue;
            uint32_t next = i ^ xcda_base(u->xcda[i]);
            if (xcda_leaf(u->xcda[i])) {
                if (next >= n) {
                    st = al_err(err, AL_ERR_FORMAT, CHARSMAP_KEY ": a match points at unit %u, past the %zu units",
                                next, n);
                    goto done;
                }
                size_t off = xcda_value(u->xcda[next]);
                if (off >= u->n_repl || !memchr(u->repl + off, 0, u->n_repl - off)) {
                    st = al_err(err, AL_ERR_FORMAT,
                                CHARSMAP_KEY ": a replacement at offset %zu is outside the %zu-byte string table "
                                             "or not NUL-terminated",
                                off, u->n_repl);
                    goto done;
                }
            }
            if (next < n_states && !(seen[next >> 3] & (1u << (next & 7)))) {
                seen[next >> 3] |= (uint8_t)(1u << (next & 7));
                stack[sp++] = next;
            }
        }
    }
done:
    free(seen);
    free(stack);
    return st;
}

static al_status charsmap_load(const al_gguf *g, tok_unigram *u, al_error *err)
{
    const al_gguf_kv *kv = al_gguf_find(g, CHARSMAP_KEY);
    if (!kv)
        return AL_OK; /* no normalisation */
    if (kv->type != AL_GGUF_ARR || (kv->arr_type != AL_GGUF_U8 && kv->arr_type != AL_GGUF_I8))
        return al_err(err, AL_ERR_FORMAT, CHARSMAP_KEY " is not an array of bytes");
    const uint8_t *p = kv->data;
    uint64_t n = kv->arr_n;
    if (n < 4)
        return al_err(err, AL_ERR_FORMAT, CHARSMAP_KEY " is truncated: %llu bytes, no room for its size field",
                      (unsigned long long)n);
    uint64_t xs = rd_u32le(p);
    if (xs % 4 || xs == 0 || xs + 4 >= n)
        return al_err(err, AL_ERR_FORMAT,
                      CHARSMAP_KEY " is truncated or corrupt: its trie claims %llu bytes of the %llu after the "
                                   "size field (it must be a non-zero multiple of 4, followed by strings)",
                      (unsigned long long)xs, (unsigned long long)(n - 4));
    u->n_xcda = (size_t)(xs / 4);
    u->n_repl = (size_t)(n - 4 - xs);
    u->xcda = malloc(u->n_xcda * sizeof(uint32_t));
    u->repl = malloc(u->n_repl);
    if (!u->xcda || !u->repl)
        return al_err(err, AL_ERR_NOMEM, "out of memory for " CHARSMAP_KEY);
    for (size_t i = 0; i < u->n_xcda; i++)
        u->xcda[i] = rd_u32le(p + 4 + 4 * i);
    memcpy(u->repl, p + 4 + xs, u->n_repl);
    return charsmap_check(u, err);
}

/* ------------------------------------------------------------------- init */

void tok_ugm_free(tok_unigram *u)
{
    if (!u)
        return;
    trie_free(&u->tokens);
    trie_free(&u->user);
    free(u->xcda);
    free(u->repl);
    free(u);
}

al_status tok_ugm_init(const al_gguf *g, al_vocab *v, al_error *err)
{
    tok_unigram *u = v->ugm = calloc(1, sizeof(*u));
    size_t n = (size_t)v->n_tokens;
    int32_t *ids = malloc(n * sizeof(int32_t));
    float *scores = calloc(n, sizeof(float));
    al_status st = AL_OK;
    if (!u || !ids || !scores) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory for the unigram tokenizer");
        goto done;
    }
    /* the attributes here are the file's token types, before the loader
     * marks end-of-generation tokens as control (as the reference does) */
    float min_score = FLT_MAX;
    size_t n_ids = 0, n_user = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t a = v->attr[i];
        if (a & TOK_NORMAL && v->scores[i] < min_score)
            min_score = v->scores[i];
        scores[i] = a & TOK_USER ? 0.0f : v->scores[i];
        n_user += (a & TOK_USER) && v->len[i];
        if ((a & (TOK_NORMAL | TOK_USER | TOK_UNUSED)) && v->len[i])
            ids[n_ids++] = (int32_t)i;
    }
    u->unk_score = min_score - UNK_PENALTY;
    if ((st = trie_build(v, ids, n_ids, scores, &u->tokens, err)))
        goto done;
    if (n_user) {
        n_ids = 0;
        for (size_t i = 0; i < n; i++)
            if ((v->attr[i] & TOK_USER) && v->len[i])
                ids[n_ids++] = (int32_t)i;
        if ((st = trie_build(v, ids, n_ids, scores, &u->user, err)))
            goto done;
    }
    bool b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b))
        u->add_space_prefix = b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &b))
        u->remove_extra_ws = b;
    st = charsmap_load(g, u, err);
done:
    free(ids);
    free(scores);
    return st; /* on failure v->ugm is freed with v */
}

/* ---------------------------------------------------------- normalisation */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static bool sbuf_reserve(sbuf *b, size_t more)
{
    if (b->cap - b->n >= more)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < more) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (!np)
        return false;
    b->p = np;
    b->cap = cap;
    return true;
}

/* Length of the UTF-8 character at s[0..n) as the reference accepts it:
 * lead and continuation bits only (no overlong or range check); 0 when
 * invalid or cut short. */
static size_t lenient_utf8(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    if (c < 0x80)
        return 1;
    if (!(c & 0x40))
        return 0;
    if (!(c & 0x20))
        len = 2;
    else if (!(c & 0x10))
        len = 3;
    else if (!(c & 0x08))
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* Normalises the prefix of s[0..n): sets *out and *out_n to its replacement
 * and returns how many input bytes it stands for (>= 1). */
static size_t normalize_prefix(const tok_unigram *u, const char *s, size_t n, const char **out, size_t *out_n)
{
    const unsigned char *us = (const unsigned char *)s;
    if (u->user.n) { /* the longest user-defined token: kept as it is */
        size_t best = 0;
        uint32_t node = 0;
        for (size_t k = 0; k < n; k++) {
            node = trie_child(&u->user, node, us[k]);
            if (!node)
                break;
            if (u->user.value[node] >= 0)
                best = k + 1;
        }
        if (best) {
            *out = s;
            *out_n = best;
            return best;
        }
    }
    if (u->n_xcda) {
        size_t best = 0, best_off = 0;
        uint32_t node = xcda_base(u->xcda[0]);
        for (size_t k = 0; k < n && us[k]; k++) {
            uint32_t c = us[k];
            node ^= c;
            if (node >= u->n_xcda || xcda_lcheck(u->xcda[node]) != c)
                break;
            bool leaf = xcda_leaf(u->xcda[node]);
            node ^= xcda_base(u->xcda[node]);
            if (leaf && node < u->n_xcda) { /* checked at load: always true */
                best = k + 1;
                best_off = xcda_value(u->xcda[node]);
            }
        }
        if (best && best_off < u->n_repl) {
            *out = u->repl + best_off;
            *out_n = strlen(u->repl + best_off); /* terminated: checked at load */
            return best;
        }
    }
    size_t l = lenient_utf8(us, n);
    if (!l) {
        *out = "\xef\xbf\xbd";
        *out_n = 3;
        return 1;
    }
    *out = s;
    *out_n = l;
    return l;
}

static bool normalize(const tok_unigram *u, const char *text, size_t n, sbuf *out)
{
    static const char sp[] = "\xe2\x96\x81";
    bool merge = u->remove_extra_ws, in_word = false, prepended = false;
    out->n = 0;
    for (size_t off = 0; off < n;) {
        const char *r;
        size_t rn;
        off += normalize_prefix(u, text + off, n - off, &r, &rn);
        if (!sbuf_reserve(out, 3 * rn + 3))
            return false;
        for (size_t i = 0; i < rn; i++) {
            if (r[i] != ' ') {
                if (!in_word) {
                    in_word = true;
                    if ((u->add_space_prefix && !prepended) || merge) {
                        memcpy(out->p + out->n, sp, 3);
                        out->n += 3;
                        prepended = true;
                    }
                }
                out->p[out->n++] = r[i];
            } else {
                in_word = false;
                if (!merge) {
                    memcpy(out->p + out->n, sp, 3);
                    out->n += 3;
                }
            }
        }
    }
    return true;
}

/* ----------------------------------------------------------------- Viterbi */

typedef struct ugm_best {
    double score;
    uint32_t from; /* start of the last token */
    int32_t token;
} ugm_best;

al_status tok_ugm(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err)
{
    const tok_unigram *u = v->ugm;
    sbuf nb = {0};
    ugm_best *best = NULL;
    al_status st = AL_OK;
    if (!n)
        return AL_OK;
    if (!normalize(u, text, n, &nb))
        goto oom;
    size_t len = nb.n;
    if (!len)
        goto done;
    if (len >= UINT32_MAX) {
        st = al_err(err, AL_ERR_LIMIT, "text too long to tokenize (%zu bytes once normalised)", len);
        goto done;
    }
    best = malloc((len + 1) * sizeof(ugm_best));
    if (!best)
        goto oom;
    best[0] = (ugm_best){0.0, 0, v->unk};
    for (size_t i = 1; i <= len; i++)
        best[i] = (ugm_best){-DBL_MAX, 0, v->unk};
    const unsigned char *s = (const unsigned char *)nb.p;
    const ugm_trie *t = &u->tokens;
    for (size_t off = 0; off < len;) {
        size_t cl = tok_utf8_len(s[off]);
        if (cl > len - off)
            cl = len - off;
        double base = best[off].score;
        bool whole_char = false;
        uint32_t node = t->root[s[off]];
        for (size_t end = off + 1; node; end++) {
            int32_t id = t->value[node];
            if (id >= 0) {
                whole_char |= end - off == cl;
                double sc = base + (double)t->score[node];
                if (sc > best[end].score)
                    best[end] = (ugm_best){sc, (uint32_t)off, id};
            }
            if (end >= len)
                break;
            node = trie_child(t, node, s[end]);
        }
        if (!whole_char) {
            double sc = base + (double)u->unk_score;
            if (sc > best[off + cl].score)
                best[off + cl] = (ugm_best){sc, (uint32_t)off, v->unk};
        }
        off += cl;
    }
    /* back from the end; runs of unknown tokens become one */
    size_t start = ids->n;
    bool prev_unk = false;
    for (size_t at = len;;) {
        const ugm_best *b = &best[at];
        bool unk = b->token == v->unk;
        if (!(prev_unk && unk) && b->token >= 0 && !tok_ids_push(ids, b->token))
            goto oom;
        if (b->from == 0)
            break;
        prev_unk = unk;
        at = b->from;
    }
    for (size_t i = start, j = ids->n; i + 1 < j; i++, j--) {
        int32_t x = ids->v[i];
        ids->v[i] = ids->v[j - 1];
        ids->v[j - 1] = x;
    }
    goto done;
oom:
    st = al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing");
done:
    free(nb.p);
    free(best);
    return st;
}
