/*
 * spm.c - SentencePiece-style BPE over scores (tokenizer.ggml.model "llama").
 *
 * The text (spaces already turned into U+2581) is split into UTF-8
 * characters; the adjacent pair whose concatenation is a token with the
 * highest score is merged, repeatedly (ties: the leftmost pair). Symbols
 * that end up not being tokens are emitted as byte tokens <0xXX>.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

typedef struct spm_state {
    const al_vocab *v;
    const char *text;
    tok_sym *sym;
    tok_heap heap;
    bool oom;
} spm_state;

static void try_bigram(spm_state *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    size_t n = s->sym[left].n + s->sym[right].n;
    int32_t id = tok_find(s->v, s->text + s->sym[left].off, n);
    if (id < 0)
        return;
    tok_bigram b = {.key = s->v->scores[id], .left = left, .right = right, .size = (uint32_t)n};
    if (!tok_heap_push(&s->heap, b))
        s->oom = true;
}

/* Merges one segment text[0..n) and appends its tokens; false when out of
 * memory. s->sym has room for n symbols. */
static bool spm_segment(spm_state *s, const char *text, size_t n, tok_ids *ids)
{
    const al_vocab *v = s->v;
    s->text = text;
    s->heap.n = 0;
    int32_t count = 0;
    for (size_t off = 0; off < n;) {
        size_t l = tok_utf8_len((unsigned char)text[off]);
        if (l > n - off)
            l = n - off;
        s->sym[count] = (tok_sym){.prev = count - 1, .next = off + l == n ? -1 : count + 1, .off = off, .n = l};
        off += l;
        count++;
    }
    for (int32_t i = 1; i < count; i++)
        try_bigram(s, i - 1, i);
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
        try_bigram(s, l->prev, b.left);
        try_bigram(s, b.left, l->next);
    }
    bool oom = s->oom;
    for (int32_t i = 0; i != -1 && !oom; i = s->sym[i].next) {
        const tok_sym *y = &s->sym[i];
        int32_t id = tok_find(v, text + y->off, y->n);
        if (id >= 0) {
            oom |= !tok_ids_push(ids, id);
            continue;
        }
        /* not a token: its bytes, each as a byte token (or <unk>) */
        for (size_t k = 0; k < y->n && !oom; k++) {
            int32_t bt = v->byte_tok[(unsigned char)text[y->off + k]];
            if (bt < 0)
                bt = v->unk;
            if (bt >= 0)
                oom |= !tok_ids_push(ids, bt);
        }
    }
    return !oom;
}

static bool is_sp(const char *p) { return !memcmp(p, "\xe2\x96\x81", 3); }

void tok_spm_init(al_vocab *v)
{
    /* No token holds a character followed by U+2581: then no merge crosses
     * the start of a run of U+2581 that follows another character, and the
     * text can be merged one such word at a time with the same result (the
     * merges of different words never compete). */
    v->spm_word_split = true;
    for (int32_t t = 0; t < v->n_tokens && v->spm_word_split; t++) {
        const char *s = v->blob + v->off[t];
        for (uint32_t i = 1; i + 3 <= v->len[t]; i++)
            if (is_sp(s + i) && !(i >= 3 && is_sp(s + i - 3))) {
                v->spm_word_split = false;
                break;
            }
    }
}

al_status tok_spm(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err)
{
    if (!n)
        return AL_OK;
    if (n > INT32_MAX)
        return al_err(err, AL_ERR_LIMIT, "text too long to tokenize (%zu bytes)", n);
    spm_state s = {.v = v};
    bool ok = true;
    size_t start = 0;
    if (v->spm_word_split) {
        /* word starts: a U+2581 symbol after a symbol that is not one (walking
         * symbols as spm_segment cuts them, so invalid UTF-8 splits alike) */
        size_t longest = 0, ws = 0;
        bool prev_sp = true;
        for (size_t off = 0; off < n;) {
            size_t l = tok_utf8_len((unsigned char)text[off]);
            l = l > n - off ? n - off : l;
            bool sp = l == 3 && is_sp(text + off);
            if (sp && !prev_sp && off > 0) {
                longest = off - ws > longest ? off - ws : longest;
                ws = off;
            }
            prev_sp = sp;
            off += l;
        }
        longest = n - ws > longest ? n - ws : longest;
        s.sym = malloc(longest * sizeof(tok_sym));
        if (!s.sym)
            return al_err(err, AL_ERR_NOMEM, "out of memory");
        prev_sp = true;
        for (size_t off = 0; ok && off < n;) {
            size_t l = tok_utf8_len((unsigned char)text[off]);
            l = l > n - off ? n - off : l;
            bool sp = l == 3 && is_sp(text + off);
            if (sp && !prev_sp && off > 0) {
                ok = spm_segment(&s, text + start, off - start, ids);
                start = off;
            }
            prev_sp = sp;
            off += l;
        }
    } else if (!(s.sym = malloc(n * sizeof(tok_sym)))) {
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    if (ok)
        ok = spm_segment(&s, text + start, n - start, ids);
    free(s.sym);
    free(s.heap.v);
    return ok ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing");
}
