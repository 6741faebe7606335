/*
 * grammar_trie.c - the byte trie of a vocabulary's token pieces, walked by
 * the grammar matcher (see grammar.h). Kept apart from the matcher so that
 * the grammar compiler and matcher build without the tokenizer (the fuzz
 * target links them alone).
 *
 * Nodes are stored in preorder with the index just past each subtree, so
 * the matcher walks the trie as an array and skips a subtree in one step.
 * Tokens with the same piece share a node (a range of the sorted ids).
 */
#include "sampling/grammar_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct piece_ctx {
    const char *buf;
    const uint32_t *off; /* (n_vocab + 1) */
} piece_ctx;

static int cmp_piece(const void *a, const void *b, void *arg)
{
    const piece_ctx *c = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = c->off[x + 1] - c->off[x], ly = c->off[y + 1] - c->off[y];
    int r = memcmp(c->buf + c->off[x], c->buf + c->off[y], lx < ly ? lx : ly);
    if (r)
        return r;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool listed(const int32_t *toks, size_t n, int32_t t)
{
    for (size_t i = 0; i < n; i++)
        if (toks[i] == t)
            return true;
    return false;
}

al_token_trie *al_token_trie_new(const al_vocab *vocab) { return al_token_trie_new_with(vocab, NULL, 0); }

al_token_trie *al_token_trie_new_with(const al_vocab *vocab, const int32_t *special, size_t n_special)
{
    int32_t nv = al_vocab_n_tokens(vocab);
    if (nv <= 0)
        return NULL;
    al_token_trie *t = calloc(1, sizeof *t);
    uint32_t *off = malloc(((size_t)nv + 1) * sizeof *off);
    size_t cap = 1 << 20, used = 0;
    char *buf = malloc(cap);
    if (!t || !off || !buf)
        goto fail;
    t->n_vocab = nv;
    t->sorted = malloc((size_t)nv * sizeof *t->sorted);
    t->eog = malloc((size_t)nv * sizeof *t->eog);
    if (!t->sorted || !t->eog)
        goto fail;
    int32_t n_sorted = 0;
    char piece[TRIE_PIECE_MAX];
    for (int32_t i = 0; i < nv; i++) {
        off[i] = (uint32_t)used;
        if (al_vocab_is_eog(vocab, i)) {
            t->eog[t->n_eog++] = i;
            continue;
        }
        int32_t n = al_token_to_piece(vocab, i, piece, sizeof piece, listed(special, n_special, i));
        if (n <= 0 || n > TRIE_PIECE_MAX)
            continue; /* empty (control) or too long: never allowed */
        if (used + (size_t)n > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        memcpy(buf + used, piece, (size_t)n);
        used += (size_t)n;
        if (n <= UINT16_MAX)
            t->sorted[n_sorted++] = i;
    }
    off[nv] = (uint32_t)used;
    piece_ctx pc = {buf, off};
    qsort_r(t->sorted, (size_t)n_sorted, sizeof *t->sorted, cmp_piece, &pc);
    t->nodes = malloc((used ? used : 1) * sizeof *t->nodes); /* at most one node per byte */
    if (!t->nodes)
        goto fail;
    uint32_t open[TRIE_PIECE_MAX + 1]; /* node at each depth of the previous piece */
    uint32_t prev_len = 0;
    const char *prev = NULL;
    uint32_t n = 0;
    for (int32_t k = 0; k < n_sorted; k++) {
        int32_t id = t->sorted[k];
        const char *p = buf + off[id];
        uint32_t len = off[id + 1] - off[id], l = 0;
        while (prev && l < len && l < prev_len && p[l] == prev[l])
            l++;
        if (prev && l == len && l == prev_len) { /* same piece as the previous token */
            t->nodes[open[len]].tok_count++;
            continue;
        }
        for (uint32_t d = prev_len; d > l; d--)
            t->nodes[open[d]].skip = n;
        for (uint32_t d = l + 1; d <= len; d++) {
            tnode *nd = &t->nodes[n];
            memset(nd, 0, sizeof *nd);
            nd->byte = (uint8_t)p[d - 1];
            nd->depth = (uint16_t)d;
            open[d] = n++;
        }
        t->nodes[open[len]].tok_begin = (uint32_t)k;
        t->nodes[open[len]].tok_count = 1;
        if (len > t->max_depth)
            t->max_depth = len;
        prev = p;
        prev_len = len;
    }
    for (uint32_t d = prev_len; d > 0; d--)
        t->nodes[open[d]].skip = n;
    t->n_nodes = n;
    tnode *shrunk = realloc(t->nodes, (n ? n : 1) * sizeof *t->nodes);
    if (shrunk)
        t->nodes = shrunk;
    t->pieces = buf;
    t->poff = off;
    return t;
fail:
    free(off);
    free(buf);
    al_token_trie_free(t);
    return NULL;
}

void al_token_trie_free(al_token_trie *t)
{
    if (!t)
        return;
    free(t->nodes);
    free(t->sorted);
    free(t->eog);
    free(t->pieces);
    free(t->poff);
    free(t);
}

int32_t al_token_trie_n_vocab(const al_token_trie *t) { return t ? t->n_vocab : 0; }

