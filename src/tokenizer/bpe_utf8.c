/*
 * bpe_utf8.c - SentencePiece-style BPE: merges over raw UTF-8 characters
 * with U+2581 for spaces and <0xXX> byte fallback (tokenizer.ggml.model
 * "gemma4"; v->bpe_utf8), as the reference runtime does it:
 *
 * 1. ' ' becomes U+2581. The text is decoded leniently (lead and
 *    continuation bits only, as the reference decodes): each byte that
 *    starts no character becomes U+FFFD, and the characters are written
 *    back as UTF-8.
 * 2. The text splits into runs of '\n' and runs of anything else (the
 *    only pre-tokenization); with gemma4, a run of newlines that is itself
 *    a token is that token.
 * 3. Each run is split into characters and merged pair by pair, lowest
 *    merge rank first (ties: leftmost). A final symbol that is no token
 *    becomes the <0xXX> tokens of its bytes (bytes without one are
 *    dropped, as the reference drops them).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

typedef struct merge_state {
    const al_vocab *v;
    const char *word;
    tok_sym *sym;
    size_t sym_cap;
    tok_heap heap;
    bool oom;
} merge_state;

static void add_pair(merge_state *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const tok_sym *l = &s->sym[left], *r = &s->sym[right];
    int32_t rank = tok_merge_rank(s->v, s->word + l->off, l->n, s->word + r->off, r->n);
    if (rank < 0)
        return;
    tok_bigram b = {.key = -(float)rank, .left = left, .right = right, .size = (uint32_t)(l->n + r->n)};
    if (!tok_heap_push(&s->heap, b))
        s->oom = true;
}

/* Merges one run and appends its tokens; false when out of memory. */
static bool merge_run(merge_state *s, const char *w, size_t n, tok_ids *ids)
{
    const al_vocab *v = s->v;
    if (v->ignore_merges || (v->bpe_utf8 == TOK_BPE_UTF8_GEMMA4 && w[0] == '\n')) {
        int32_t id = tok_find(v, w, n); /* a run of '\n' is all newlines */
        if (id >= 0)
            return tok_ids_push(ids, id);
    }
    if (n > s->sym_cap) {
        tok_sym *ns = realloc(s->sym, n * sizeof(tok_sym));
        if (!ns)
            return false;
        s->sym = ns;
        s->sym_cap = n;
    }
    s->word = w;
    s->heap.n = 0;
    int32_t count = 0;
    for (size_t off = 0; off < n;) {
        size_t l = tok_utf8_len((unsigned char)w[off]);
        if (l > n - off)
            l = n - off;
        s->sym[count] = (tok_sym){.prev = count - 1, .next = off + l == n ? -1 : count + 1, .off = off, .n = l};
        off += l;
        count++;
    }
    for (int32_t i = 1; i < count; i++)
        add_pair(s, i - 1, i);
    while (s->heap.n && !s->oom) {
        tok_bigram b = tok_heap_pop(&s->heap);
        tok_sym *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (!l->n || !r->n || l->n + r->n != b.size)
            continue; /* outdated */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = b.left;
        add_pair(s, l->prev, b.left);
        add_pair(s, b.left, l->next);
    }
    if (s->oom)
        return false;
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const tok_sym *y = &s->sym[i];
        int32_t id = tok_find(v, w + y->off, y->n);
        if (id >= 0) {
            if (!tok_ids_push(ids, id))
                return false;
            continue;
        }
        for (size_t k = 0; k < y->n; k++) {
            int32_t bt = v->byte_tok[(unsigned char)w[y->off + k]];
            if (bt >= 0 && !tok_ids_push(ids, bt))
                return false;
        }
    }
    return true;
}

/* The reference's decoding: lead and continuation bits only. Returns the
 * length (0: invalid) and the code point, which may be overlong, a
 * surrogate or above U+10FFFF. */
static size_t lenient_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (!(c & 0x40))
        return 0;
    if (!(c & 0x20))
        len = 2, v = c & 0x1F;
    else if (!(c & 0x10))
        len = 3, v = c & 0x0F;
    else if (!(c & 0x08))
        len = 4, v = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* UTF-8 of cp as the reference writes it: surrogates are written as they
 * are; above U+10FFFF (where the reference throws) gives U+FFFD. */
static size_t encode(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    memcpy(o, "\xef\xbf\xbd", 3);
    return 3;
}

al_status tok_bpe_utf8(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err)
{
    if (!n)
        return AL_OK;
    if (n > INT32_MAX / 4) /* symbol indices are int32; a byte becomes at most 3 */
        return al_err(err, AL_ERR_LIMIT, "text too long to tokenize (%zu bytes)", n);
    char *buf = malloc(3 * n);
    merge_state s = {.v = v};
    if (!buf)
        return al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing");
    const unsigned char *us = (const unsigned char *)text;
    size_t bn = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = lenient_decode(us + i, n - i, &cp);
        if (!l)
            cp = 0xFFFD, l = 1;
        else if (cp == ' ')
            cp = 0x2581;
        bn += encode(cp, buf + bn);
        i += l;
    }
    bool ok = true;
    for (size_t i = 0; i < bn && ok;) {
        size_t j = i + 1;
        bool nl = buf[i] == '\n';
        while (j < bn && (buf[j] == '\n') == nl)
            j++;
        ok = merge_run(&s, buf + i, j - i, ids);
        i = j;
    }
    free(buf);
    free(s.sym);
    free(s.heap.v);
    return ok ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing");
}
