/*
 * bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2").
 *
 * 1. Invalid UTF-8 in the input becomes U+FFFD (as llama.cpp does).
 * 2. The pre-tokenizer splits the text with the regexes of
 *    tokenizer.ggml.pre, applied in sequence: each regex splits every piece
 *    the previous one left, and the text between its matches stays a piece
 *    of its own. PCRE2 in UTF + UCP mode gives \p{L}, \p{N}, \s their
 *    Unicode meaning.
 * 3. Each piece's bytes are mapped to GPT-2's printable characters, split
 *    into characters, and merged pair by pair, lowest merge rank first
 *    (ties: leftmost). Llama 3 first looks the whole piece up in the vocab
 *    (ignore_merges).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3_HEAD "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

al_status tok_bpe_init(al_vocab *v, al_error *err)
{
    const char *res[TOK_MAX_REGEX] = {0};
    int n = 0;
    switch (v->pre) {
    case TOK_PRE_GPT2:
        res[n++] = RE_GPT2;
        break;
    case TOK_PRE_LLAMA3:
        res[n++] = RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL;
        break;
    case TOK_PRE_QWEN2:
        res[n++] = RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL;
        break;
    case TOK_PRE_DEEPSEEK_CODER:
        res[n++] = "[\\r\\n]";
        res[n++] = "\\s?\\p{L}+";
        res[n++] = "\\s?\\p{P}+";
        res[n++] = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
        res[n++] = "\\p{N}";
        break;
    case TOK_PRE_DEEPSEEK_LLM: /* not offered by choose_pre */
    case TOK_PRE_DEFAULT:
        res[n++] = "[\\p{P}\\$\\+<=>\\^~\\|]+";
        res[n++] = RE_GPT2;
        res[n++] = "\\p{N}+";
        res[n++] = "[0-9][0-9][0-9]";
        break;
    }
    for (int i = 0; i < n; i++) {
        int ec;
        PCRE2_SIZE eo;
        v->re[i] = pcre2_compile((PCRE2_SPTR)res[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        if (!v->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            return al_err(err, AL_ERR_UNSUPPORTED, "pre-tokenizer regex %d: %s at %zu", i, (const char *)msg,
                          (size_t)eo);
        }
        v->n_re = i + 1;
        (void)pcre2_jit_compile(v->re[i], PCRE2_JIT_COMPLETE); /* optional speed-up */
    }
    return AL_OK;
}

typedef struct span {
    size_t off, len;
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static bool spans_push(spans *s, size_t off, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        if (cap > SIZE_MAX / sizeof(span))
            return false;
        span *nv = realloc(s->v, cap * sizeof(span));
        if (!nv)
            return false;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = (span){off, len};
    return true;
}

/* Splits every piece of in by re into out (matches and the gaps between). */
static al_status split(const pcre2_code *re, const char *text, const spans *in, spans *out,
                       pcre2_match_data *md, al_error *err)
{
    out->n = 0;
    for (size_t p = 0; p < in->n; p++) {
        const char *s = text + in->v[p].off;
        size_t n = in->v[p].len, pos = 0, start = 0;
        while (pos <= n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return al_err(err, AL_ERR_LIMIT, "pre-tokenizer regex failed (%d)", rc);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* empty match: step over one character */
                pos = ms + 1;
                while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80)
                    pos++;
                continue;
            }
            if (ms > start && !spans_push(out, in->v[p].off + start, ms - start))
                goto oom;
            if (!spans_push(out, in->v[p].off + ms, me - ms))
                goto oom;
            start = pos = me;
        }
        if (start < n && !spans_push(out, in->v[p].off + start, n - start))
            goto oom;
    }
    return AL_OK;
oom:
    return al_err(err, AL_ERR_NOMEM, "out of memory");
}

typedef struct bpe_state {
    const al_vocab *v;
    const char *word;
    tok_sym *sym;
    size_t sym_cap;
    tok_heap heap;
    bool oom;
} bpe_state;

static void add_bigram(bpe_state *s, int32_t left, int32_t right)
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

/* Merges one byte-encoded word and appends its tokens. */
static bool bpe_word(bpe_state *s, const char *word, size_t n, tok_ids *ids)
{
    const al_vocab *v = s->v;
    if (!n)
        return true;
    if (v->ignore_merges) {
        int32_t id = tok_find(v, word, n);
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
    s->word = word;
    s->heap.n = 0;
    int32_t count = 0;
    for (size_t off = 0; off < n;) {
        size_t l = tok_utf8_len((unsigned char)word[off]);
        if (l > n - off)
            l = n - off;
        s->sym[count] = (tok_sym){.prev = count - 1, .next = off + l == n ? -1 : count + 1, .off = off, .n = l};
        off += l;
        count++;
    }
    for (int32_t i = 1; i < count; i++)
        add_bigram(s, i - 1, i);
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
        add_bigram(s, l->prev, b.left);
        add_bigram(s, b.left, l->next);
    }
    if (s->oom)
        return false;
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const tok_sym *y = &s->sym[i];
        int32_t id = tok_find(v, word + y->off, y->n);
        if (id >= 0) {
            if (!tok_ids_push(ids, id))
                return false;
            continue;
        }
        for (size_t k = 0; k < y->n; k++) { /* as llama.cpp: single bytes, when they are tokens */
            int32_t bt = tok_find(v, word + y->off + k, 1);
            if (bt >= 0 && !tok_ids_push(ids, bt))
                return false;
        }
    }
    return true;
}

al_status tok_bpe(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err)
{
    if (!n)
        return AL_OK;
    if (n > INT32_MAX / 8) /* symbol indices are int32; a byte maps to <= 2 bytes */
        return al_err(err, AL_ERR_LIMIT, "text too long to tokenize (%zu bytes)", n);
    /* clean UTF-8: each invalid byte becomes U+FFFD (3 bytes) */
    char *clean = malloc(3 * n + 4);
    char *word = NULL;
    size_t word_cap = 0;
    spans a = {0}, b = {0};
    bpe_state s = {.v = v};
    pcre2_match_data *md = NULL;
    al_status st = AL_OK;
    if (!clean)
        goto oom;
    size_t cn = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const unsigned char *)text + i, n - i, &cp, NULL);
        if (cp == 0xFFFD && l == 1) {
            cn += al_utf8_encode(0xFFFD, clean + cn);
        } else {
            memcpy(clean + cn, text + i, l);
            cn += l;
        }
        i += l;
    }
    if (!spans_push(&a, 0, cn))
        goto oom;
    md = pcre2_match_data_create(4, NULL);
    if (!md)
        goto oom;
    for (int r = 0; r < v->n_re; r++) {
        if ((st = split(v->re[r], clean, &a, &b, md, err)))
            goto done;
        spans t = a;
        a = b;
        b = t;
    }
    for (size_t p = 0; p < a.n; p++) {
        size_t need = a.v[p].len * 2; /* each byte maps to a 1- or 2-byte character */
        if (need > word_cap) {
            char *nw = realloc(word, need);
            if (!nw)
                goto oom;
            word = nw;
            word_cap = need;
        }
        size_t wn = 0;
        for (size_t k = 0; k < a.v[p].len; k++)
            wn += al_utf8_encode(tok_byte_to_cp((uint8_t)clean[a.v[p].off + k]), word + wn);
        if (!bpe_word(&s, word, wn, ids))
            goto oom;
    }
    goto done;
oom:
    st = al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing");
done:
    pcre2_match_data_free(md);
    free(clean);
    free(word);
    free(a.v);
    free(b.v);
    free(s.sym);
    free(s.heap.v);
    return st;
}
