/*
 * bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2", and the variants
 * that merge raw UTF-8).
 *
 * 1. The text is decoded into code points as the reference runtime does:
 *    an invalid byte becomes U+FFFD; sequences are not checked for
 *    overlong forms (they decode to their value and are re-encoded).
 * 2. The pre-tokenizer of tokenizer.ggml.pre (pretok.c) cuts it into words.
 * 3. Each word's UTF-8 bytes are mapped to GPT-2's printable characters
 *    (or kept as they are: bpe_raw), split into characters, and merged pair
 *    by pair, lowest merge rank first (ties: leftmost). With ignore_merges a
 *    word that is a token is taken whole. A symbol left that is not a token
 *    becomes its single bytes' tokens (<0xXX> tokens for raw vocabularies).
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

static uint64_t pair_hash(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 29);
}

/* The merge of the tokens (left, right), or NULL. */
static const tok_pair *pair_find(const al_vocab *v, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = pair_hash(key) & v->pair_mask;; i = (i + 1) & v->pair_mask) {
        const tok_pair *p = &v->pairs[i];
        if (p->key == key)
            return p;
        if (p->key == TOK_PAIR_EMPTY)
            return NULL;
    }
}

/* Indexes every merge whose halves are tokens by their ids; the first
 * merge of a pair wins, as in the string index. */
static al_status build_pairs(al_vocab *v, al_error *err)
{
    size_t slots = 16;
    while (slots < 2 * (size_t)v->n_merges)
        slots *= 2;
    v->pairs = malloc(slots * sizeof(tok_pair));
    char *buf = malloc(v->max_merge_len + 1);
    if (!v->pairs || !buf) {
        free(buf);
        return al_err(err, AL_ERR_NOMEM, "out of memory for %u merges", v->n_merges);
    }
    v->pair_mask = slots - 1;
    for (size_t i = 0; i < slots; i++)
        v->pairs[i].key = TOK_PAIR_EMPTY;
    for (uint32_t m = 0; m < v->n_merges; m++) {
        const char *s = v->mblob + v->moff[m];
        uint32_t nl = v->msplit[m], nr = v->mlen[m] - nl - 1;
        int32_t l = tok_find(v, s, nl), r = tok_find(v, s + nl + 1, nr);
        memcpy(buf, s, nl);
        memcpy(buf + nl, s + nl + 1, nr);
        int32_t res = tok_find(v, buf, nl + nr);
        if (l < 0 || r < 0 || res < 0) { /* as Hugging Face's tokenizers, refuse it */
            const char *what = l < 0 ? s : r < 0 ? s + nl + 1 : buf;
            uint32_t wn = l < 0 ? nl : r < 0 ? nr : nl + nr;
            al_status st = al_err(err, AL_ERR_FORMAT,
                                  "tokenizer.ggml.merges[%u] '%.*s' needs '%.*s', which is not a token", m,
                                  (int)(v->mlen[m] > 64 ? 64 : v->mlen[m]), s, (int)(wn > 64 ? 64 : wn), what);
            free(buf);
            return st;
        }
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
        size_t i = pair_hash(key) & v->pair_mask;
        while (v->pairs[i].key != TOK_PAIR_EMPTY && v->pairs[i].key != key)
            i = (i + 1) & v->pair_mask;
        if (v->pairs[i].key == key)
            continue;
        v->pairs[i] = (tok_pair){key, m, res};
    }
    free(buf);
    return AL_OK;
}

al_status tok_bpe_init(al_vocab *v, al_error *err)
{
    for (int b = 0; b < 256; b++) {
        v->byte_chr_len[b] = (uint8_t)al_utf8_encode(tok_byte_to_cp((uint8_t)b), v->byte_chr[b]);
        v->byte_tok[b] = tok_find(v, v->byte_chr[b], v->byte_chr_len[b]);
    }
    al_status st = build_pairs(v, err);
    return st ? st : tok_pretok_new(v->pre, &v->pretok, err);
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
    int32_t rank, id;
    if (l->id >= 0 && r->id >= 0) { /* both halves are tokens: the id index is exact */
        const tok_pair *p = pair_find(s->v, l->id, r->id);
        if (!p)
            return;
        rank = (int32_t)p->rank;
        id = p->result;
    } else {
        rank = tok_merge_rank(s->v, s->word + l->off, l->n, s->word + r->off, r->n);
        if (rank < 0)
            return;
        id = tok_find(s->v, s->word + l->off, l->n + r->n);
    }
    tok_bigram b = {.key = -(float)rank, .left = left, .right = right, .size = (uint32_t)(l->n + r->n), .id = id};
    if (!tok_heap_push(&s->heap, b))
        s->oom = true;
}

static bool memspn_newline(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\n')
            return false;
    return true;
}

/* Merges one byte-encoded word and appends its tokens. */
static bool bpe_word(bpe_state *s, const char *word, size_t n, tok_ids *ids)
{
    const al_vocab *v = s->v;
    if (!n)
        return true;
    if (v->ignore_merges || (v->newline_word && memspn_newline(word, n))) {
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
        int32_t id;
        if (v->bpe_raw) {
            id = tok_find(v, word + off, l);
        } else { /* a byte-level character stands for one byte */
            uint32_t cp;
            size_t cl = tok_utf8_decode((const unsigned char *)word + off, l, &cp, NULL);
            int b = cl == l ? tok_cp_to_byte(cp) : -1;
            id = b >= 0 ? v->byte_tok[b] : tok_find(v, word + off, l);
        }
        s->sym[count] =
            (tok_sym){.prev = count - 1, .next = off + l == n ? -1 : count + 1, .off = off, .n = l, .id = id};
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
        l->id = b.id;
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
        int32_t id = y->id;
        if (id >= 0) {
            if (!tok_ids_push(ids, id))
                return false;
            continue;
        }
        for (size_t k = 0; k < y->n; k++) { /* as llama.cpp: single bytes, when they are tokens */
            int32_t bt;
            if (v->bpe_raw) {
                static const char hex[] = "0123456789ABCDEF";
                uint8_t x = (uint8_t)word[y->off + k];
                char buf[6] = {'<', '0', 'x', hex[x >> 4], hex[x & 15], '>'};
                bt = tok_find(v, buf, 6);
            } else {
                bt = tok_find(v, word + y->off + k, 1);
            }
            if (bt >= 0 && !tok_ids_push(ids, bt))
                return false;
        }
    }
    return true;
}

/* A per-call cache word -> tokens: prose and code repeat their words, and
 * merging is most of the work. Words longer than CACHE_MAX_WORD bytes are
 * not cached; the cache stops growing at CACHE_MAX_ENTRIES. */
#define CACHE_MAX_WORD 48
#define CACHE_MAX_ENTRIES (1u << 16)

typedef struct cache_entry {
    uint64_t hash;
    uint32_t word_off, word_len; /* in bytes */
    uint32_t ids_off, ids_len;   /* in ids */
} cache_entry;

typedef struct word_cache {
    uint32_t *slots; /* 1 + entry index, 0 = empty; mask + 1 of them, at least twice the entries */
    size_t mask;
    cache_entry *e;
    size_t n, cap;
    char *bytes;
    size_t n_bytes, cap_bytes;
    int32_t *ids;
    size_t n_ids, cap_ids;
    bool full;
} word_cache;

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *np = realloc(p, c * elem);
    if (np)
        *cap = c;
    return np;
}

/* The cached tokens of word, or NULL; *n their count. */
static const int32_t *cache_get(const word_cache *c, uint64_t h, const char *w, size_t n, size_t *n_ids)
{
    if (!c->slots)
        return NULL;
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        uint32_t s = c->slots[i];
        if (!s)
            return NULL;
        const cache_entry *e = &c->e[s - 1];
        if (e->hash == h && e->word_len == n && !memcmp(c->bytes + e->word_off, w, n)) {
            *n_ids = e->ids_len;
            return c->ids + e->ids_off;
        }
    }
}

/* Remembers word -> ids (best effort: a failed allocation only disables the cache). */
static void cache_put(word_cache *c, uint64_t h, const char *w, size_t n, const int32_t *ids, size_t n_ids)
{
    if (c->full)
        return;
    if (c->n >= CACHE_MAX_ENTRIES) {
        c->full = true;
        return;
    }
    if (!c->slots || 2 * (c->n + 1) > c->mask + 1) { /* (re)size: small texts stay cheap */
        size_t slots = c->slots ? 2 * (c->mask + 1) : 256;
        uint32_t *ns = calloc(slots, sizeof(uint32_t));
        if (!ns) {
            c->full = true;
            return;
        }
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->e[k].hash & (slots - 1);
            while (ns[i])
                i = (i + 1) & (slots - 1);
            ns[i] = (uint32_t)k + 1;
        }
        free(c->slots);
        c->slots = ns;
        c->mask = slots - 1;
    }
    cache_entry *ne = grow(c->e, &c->cap, c->n + 1, sizeof(cache_entry));
    if (ne)
        c->e = ne;
    size_t cb = c->cap_bytes, ci = c->cap_ids;
    char *nb = ne ? grow(c->bytes, &cb, c->n_bytes + n, 1) : NULL;
    if (nb) {
        c->bytes = nb;
        c->cap_bytes = cb;
    }
    int32_t *ni = nb ? grow(c->ids, &ci, c->n_ids + n_ids, sizeof(int32_t)) : NULL;
    if (ni) {
        c->ids = ni;
        c->cap_ids = ci;
    }
    if (!ni) {
        c->full = true;
        return;
    }
    memcpy(c->bytes + c->n_bytes, w, n);
    memcpy(c->ids + c->n_ids, ids, n_ids * sizeof(int32_t));
    c->e[c->n] = (cache_entry){h, (uint32_t)c->n_bytes, (uint32_t)n, (uint32_t)c->n_ids, (uint32_t)n_ids};
    c->n_bytes += n;
    c->n_ids += n_ids;
    size_t i = h & c->mask;
    while (c->slots[i])
        i = (i + 1) & c->mask;
    c->slots[i] = (uint32_t)++c->n;
}

static void cache_free(word_cache *c)
{
    free(c->slots);
    free(c->e);
    free(c->bytes);
    free(c->ids);
}

/* Decodes UTF-8 as the reference does (see the top of the file). Returns
 * the number of code points written to cps (room for n). */
static size_t decode_lenient(const unsigned char *s, size_t n, uint32_t *cps)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
        uint32_t cp = c;
        bool ok = len && i + len <= n;
        if (ok && len > 1) {
            cp = c & (0x7Fu >> len);
            for (size_t j = 1; j < len && ok; j++) {
                ok = (s[i + j] & 0xC0) == 0x80;
                cp = (cp << 6) | (s[i + j] & 0x3Fu);
            }
            ok = ok && cp <= 0x10FFFF;
        }
        if (!ok) {
            cps[k++] = 0xFFFD;
            i++;
            continue;
        }
        cps[k++] = cp;
        i += len;
    }
    return k;
}

al_status tok_bpe(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err)
{
    if (!n)
        return AL_OK;
    if (n > INT32_MAX / 8) /* symbol indices are int32; a byte maps to <= 2 bytes */
        return al_err(err, AL_ERR_LIMIT, "text too long to tokenize (%zu bytes)", n);
    char *escaped = NULL, *word = NULL;
    uint32_t *cps = NULL;
    size_t word_cap = 0;
    tok_words words = {0};
    bpe_state s = {.v = v};
    word_cache cache = {0};
    al_status st = AL_OK;
    if (v->escape_spaces) { /* ' ' -> U+2581 */
        size_t nsp = 0;
        for (size_t i = 0; i < n; i++)
            nsp += text[i] == ' ';
        if (!(escaped = malloc(n + 2 * nsp + 1)))
            goto oom;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (text[i] == ' ') {
                memcpy(escaped + o, "\xe2\x96\x81", 3);
                o += 3;
            } else {
                escaped[o++] = text[i];
            }
        }
        text = escaped;
        n = o;
    }
    if (!(cps = malloc(n * sizeof(uint32_t))))
        goto oom;
    size_t n_cp = decode_lenient((const unsigned char *)text, n, cps);
    if ((st = tok_pretok_split(v->pretok, cps, n_cp, v->drop_space, &words, err)))
        goto done;
    for (size_t w = 0; w < words.n; w++) {
        size_t need = (size_t)words.v[w].len * 8; /* 4 UTF-8 bytes, each up to 2 */
        if (need > word_cap) {
            char *nw = realloc(word, need);
            if (!nw)
                goto oom;
            word = nw;
            word_cap = need;
        }
        size_t wn = 0;
        const uint32_t *c = cps + words.v[w].off;
        for (uint32_t k = 0; k < words.v[w].len; k++) {
            char u[4];
            size_t ul = al_utf8_encode(c[k], u);
            if (v->bpe_raw) {
                memcpy(word + wn, u, ul);
                wn += ul;
                continue;
            }
            for (size_t b = 0; b < ul; b++) {
                uint8_t x = (uint8_t)u[b];
                memcpy(word + wn, v->byte_chr[x], v->byte_chr_len[x]);
                wn += v->byte_chr_len[x];
            }
        }
        if (wn > CACHE_MAX_WORD) {
            if (!bpe_word(&s, word, wn, ids))
                goto oom;
            continue;
        }
        uint64_t h = tok_hash(TOK_HASH_INIT, word, wn);
        size_t nc = 0;
        const int32_t *hit = cache_get(&cache, h, word, wn, &nc);
        if (hit) {
            for (size_t k = 0; k < nc; k++)
                if (!tok_ids_push(ids, hit[k]))
                    goto oom;
            continue;
        }
        size_t before = ids->n;
        if (!bpe_word(&s, word, wn, ids))
            goto oom;
        cache_put(&cache, h, word, wn, ids->v + before, ids->n - before);
    }
    goto done;
oom:
    st = al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing");
done:
    free(escaped);
    free(cps);
    free(word);
    free(words.v);
    free(s.sym);
    free(s.heap.v);
    cache_free(&cache);
    return st;
}
