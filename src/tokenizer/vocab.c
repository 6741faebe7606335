/*
 * vocab.c - loading a tokenizer from GGUF metadata, the lookups every
 * algorithm shares (token text -> id, merge ranks), the special-token
 * partition of raw text and the al_tokenize entry point.
 *
 * The behaviour follows llama.cpp's tokenizers (the reference the test
 * vectors in ../shared/vocab come from): which tokens count as special,
 * which end generation, the defaults of add_bos/add_eos, the order in
 * which special tokens are searched in the text.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenizer/tok_impl.h"
#include "util/error.h"

/* ------------------------------------------------------------ small helpers */

uint64_t tok_hash(uint64_t h, const void *p, size_t n)
{
    /* 8 bytes at a time, then the tail with the length folded in */
    const unsigned char *s = p;
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        h = (h ^ x) * k;
        h ^= h >> 29;
    }
    uint64_t x = 0;
    memcpy(&x, s, n);
    h = (h ^ x ^ ((uint64_t)n << 59)) * k;
    return h ^ (h >> 32);
}

/* The index key of merge (l, r): both halves hashed on their own. */
static uint64_t merge_hash(const char *l, size_t nl, const char *r, size_t nr)
{
    return tok_hash(tok_hash(TOK_HASH_INIT, l, nl) * 31, r, nr);
}

bool tok_ids_push(tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(int32_t))
            return false;
        int32_t *nv = realloc(ids->v, cap * sizeof(int32_t));
        if (!nv)
            return false;
        ids->v = nv;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return true;
}

bool tok_heap_push(tok_heap *h, tok_bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(tok_bigram))
            return false;
        tok_bigram *nv = realloc(h->v, cap * sizeof(tok_bigram));
        if (!nv)
            return false;
        h->v = nv;
        h->cap = cap;
    }
    /* a before b when a.key > b.key, or equal keys and a.left < b.left */
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        const tok_bigram *q = &h->v[p];
        if (q->key > b.key || (q->key == b.key && q->left <= b.left))
            break;
        h->v[i] = *q;
        i = p;
    }
    h->v[i] = b;
    return true;
}

static bool bigram_before(const tok_bigram *a, const tok_bigram *b)
{
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

tok_bigram tok_heap_pop(tok_heap *h)
{
    tok_bigram top = h->v[0];
    tok_bigram last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!bigram_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n)
        h->v[i] = last;
    return top;
}

size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, bool *incomplete)
{
    if (incomplete)
        *incomplete = false;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* valid range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if (i >= n) {
            if (incomplete)
                *incomplete = true;
            *cp = 0xFFFD;
            return 1;
        }
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, u = i == 1 ? hi : 0xBF;
        if (b < l || b > u) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the others are moved to U+0100 and up in byte order. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    /* the unprintable bytes are 0x00-0x20 (33), 0x7F-0xA0 (34) and 0xAD */
    if (byte_is_printable(b))
        return b;
    if (b <= 0x20)
        return 256u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 256u + 33 + (b - 0x7Fu);
    return 256u + 67; /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33)
        return (int)(cp - 256);
    if (cp < 256 + 67)
        return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67)
        return 0xAD;
    return -1;
}

/* ---------------------------------------------------------------- indexes */

static bool index_alloc(tok_index *ix, size_t n)
{
    size_t slots = 16;
    while (slots < 2 * n) {
        if (slots > SIZE_MAX / 4)
            return false;
        slots *= 2;
    }
    ix->slots = calloc(slots, sizeof(uint32_t));
    ix->mask = slots - 1;
    return ix->slots != NULL;
}

int32_t tok_find(const al_vocab *v, const char *s, size_t n)
{
    if (n > v->max_token_len)
        return -1;
    size_t i = tok_hash(TOK_HASH_INIT, s, n) & v->tok_ix.mask;
    for (;;) {
        uint32_t e = v->tok_ix.slots[i];
        if (!e)
            return -1;
        int32_t id = (int32_t)(e - 1);
        if (v->len[id] == n && !memcmp(v->blob + v->off[id], s, n))
            return id;
        i = (i + 1) & v->tok_ix.mask;
    }
}

/* Inserts token id; a later token with the same text replaces an earlier
 * one (as llama.cpp's token_to_id map does). */
static void tok_insert(al_vocab *v, int32_t id)
{
    const char *s = v->blob + v->off[id];
    size_t n = v->len[id];
    size_t i = tok_hash(TOK_HASH_INIT, s, n) & v->tok_ix.mask;
    for (;;) {
        uint32_t e = v->tok_ix.slots[i];
        if (!e) {
            v->tok_ix.slots[i] = (uint32_t)id + 1;
            return;
        }
        int32_t o = (int32_t)(e - 1);
        if (v->len[o] == n && !memcmp(v->blob + v->off[o], s, n)) {
            v->tok_ix.slots[i] = (uint32_t)id + 1;
            return;
        }
        i = (i + 1) & v->tok_ix.mask;
    }
}

int32_t tok_merge_rank(const al_vocab *v, const char *l, size_t nl, const char *r, size_t nr)
{
    if (!v->n_merges || nl + 1 + nr > v->max_merge_len)
        return -1;
    uint64_t h = merge_hash(l, nl, r, nr);
    size_t i = h & v->merge_ix.mask;
    for (;;) {
        uint32_t e = v->merge_ix.slots[i];
        if (!e)
            return -1;
        uint32_t m = e - 1;
        const char *s = v->mblob + v->moff[m];
        if (v->mlen[m] == nl + 1 + nr && v->msplit[m] == nl && !memcmp(s, l, nl) && !memcmp(s + nl + 1, r, nr))
            return (int32_t)m;
        i = (i + 1) & v->merge_ix.mask;
    }
}

/* The first merge with a given text wins (llama.cpp's bpe_ranks.emplace). */
static void merge_insert(al_vocab *v, uint32_t m)
{
    const char *s = v->mblob + v->moff[m];
    size_t n = v->mlen[m];
    uint32_t nl = v->msplit[m];
    size_t i = merge_hash(s, nl, s + nl + 1, n - nl - 1) & v->merge_ix.mask;
    for (;;) {
        uint32_t e = v->merge_ix.slots[i];
        if (!e) {
            v->merge_ix.slots[i] = m + 1;
            return;
        }
        uint32_t o = e - 1;
        if (v->mlen[o] == n && v->msplit[o] == v->msplit[m] && !memcmp(v->mblob + v->moff[o], s, n))
            return;
        i = (i + 1) & v->merge_ix.mask;
    }
}

/* ---------------------------------------------------------------- loading */

/* Copies a GGUF string array into one blob with offsets and lengths. */
static al_status copy_strings(const al_gguf_kv *kv, const char *what, char **blob, size_t **off,
                              uint32_t **len, al_error *err)
{
    uint64_t n = kv->arr_n, total = 0;
    const uint8_t *it = kv->data;
    for (uint64_t i = 0; i < n; i++) {
        al_str e = al_gguf_str_next(&it);
        if (e.len > UINT32_MAX || total > UINT64_MAX - e.len)
            return al_err(err, AL_ERR_FORMAT, "%s[%llu] is too long", what, (unsigned long long)i);
        total += e.len;
    }
    if (total > SIZE_MAX - 1 || n > SIZE_MAX / sizeof(size_t))
        return al_err(err, AL_ERR_LIMIT, "%s is too large", what);
    *blob = malloc((size_t)total + 1);
    *off = malloc((size_t)(n ? n : 1) * sizeof(size_t));
    *len = malloc((size_t)(n ? n : 1) * sizeof(uint32_t));
    if (!*blob || !*off || !*len)
        return al_err(err, AL_ERR_NOMEM, "out of memory copying %s", what);
    size_t p = 0;
    it = kv->data;
    for (uint64_t i = 0; i < n; i++) {
        al_str e = al_gguf_str_next(&it);
        memcpy(*blob + p, e.ptr, e.len);
        (*off)[i] = p;
        (*len)[i] = (uint32_t)e.len;
        p += e.len;
    }
    (*blob)[p] = 0;
    return AL_OK;
}

static int32_t read_id(const al_gguf *g, const al_vocab *v, const char *key, int32_t dflt)
{
    int64_t id;
    if (!al_gguf_get_i64(g, key, &id))
        return dflt;
    if (id < 0 || id >= v->n_tokens)
        return dflt; /* e.g. 0xFFFFFFFF for "none" in some files */
    return (int32_t)id;
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const al_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->len[x] != v->len[y])
        return v->len[x] > v->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static al_status load_tokens(const al_gguf *g, al_vocab *v, al_error *err)
{
    const al_gguf_kv *kv = al_gguf_find(g, "tokenizer.ggml.tokens");
    if (!kv)
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
    if (kv->type != AL_GGUF_ARR || kv->arr_type != AL_GGUF_STR)
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (kv->arr_n == 0 || kv->arr_n > INT32_MAX - 1)
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries",
                      (unsigned long long)kv->arr_n);
    v->n_tokens = (int32_t)kv->arr_n;
    size_t n = (size_t)v->n_tokens;
    /* counts that drive memory are checked before anything is allocated:
     * the parallel arrays must match, and a model's embedding must have a
     * row for every token */
    const al_gguf_kv *sk = al_gguf_find(g, "tokenizer.ggml.scores");
    if (sk) { /* float32, or int32 as Tekken files store them */
        if (sk->type != AL_GGUF_ARR || (sk->arr_type != AL_GGUF_F32 && sk->arr_type != AL_GGUF_I32))
            return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.scores must be an array of float32 or int32");
        if (sk->arr_n != kv->arr_n)
            return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.scores has %llu entries for %zu tokens",
                          (unsigned long long)sk->arr_n, n);
    }
    const al_gguf_kv *tk0 = al_gguf_find(g, "tokenizer.ggml.token_type");
    if (tk0 && (tk0->type != AL_GGUF_ARR || tk0->arr_n != kv->arr_n))
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.token_type must be an array of %zu integers", n);
    const al_gguf_tensor *emb = al_gguf_find_tensor(g, "token_embd.weight");
    if (emb && emb->n_dims >= 2 && kv->arr_n > emb->ne[1])
        return al_err(err, AL_ERR_FORMAT,
                      "tokenizer.ggml.tokens has %llu entries but token_embd.weight has only %llu rows",
                      (unsigned long long)kv->arr_n, (unsigned long long)emb->ne[1]);
    al_status st = copy_strings(kv, "tokenizer.ggml.tokens", &v->blob, &v->off, &v->len, err);
    if (st)
        return st;
    v->scores = calloc(n, sizeof(float));
    v->attr = calloc(n, sizeof(uint16_t));
    if (!v->scores || !v->attr || !index_alloc(&v->tok_ix, n))
        return al_err(err, AL_ERR_NOMEM, "out of memory for %zu tokens", n);

    if (sk) {
        for (size_t i = 0; i < n; i++) {
            double d;
            if (!al_gguf_arr_f64(sk, i, &d))
                return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.scores[%zu] is not a number", i);
            v->scores[i] = (float)d;
        }
    }
    const al_gguf_kv *tk = al_gguf_find(g, "tokenizer.ggml.token_type");
    if (tk && (tk->type != AL_GGUF_ARR || tk->arr_n != kv->arr_n))
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.token_type must be an array of %zu integers", n);
    for (size_t i = 0; i < n; i++) {
        int64_t t = 1;
        if (tk && !al_gguf_arr_i64(tk, i, &t))
            return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.token_type[%zu] is not an integer", i);
        switch (t) {
        case 2: v->attr[i] = TOK_UNKNOWN; break;
        case 3: v->attr[i] = TOK_CONTROL; break;
        case 4: v->attr[i] = TOK_USER; break;
        case 5: v->attr[i] = TOK_UNUSED; break;
        case 6: v->attr[i] = TOK_BYTE; break;
        default: v->attr[i] = TOK_NORMAL; break; /* 1, and 0 "undefined" */
        }
        if (v->len[i] > v->max_token_len)
            v->max_token_len = v->len[i];
    }
    for (size_t i = 0; i < n; i++)
        if (v->len[i])
            tok_insert(v, (int32_t)i);
    return AL_OK;
}

static al_status load_merges(const al_gguf *g, al_vocab *v, al_error *err)
{
    const al_gguf_kv *kv = al_gguf_find(g, "tokenizer.ggml.merges");
    al_str pre;
    if (!kv && al_gguf_get_str(g, "tokenizer.ggml.pre", &pre) && al_str_eq(pre, "kimi-k2"))
        return index_alloc(&v->merge_ix, 0) ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory"); /* no merges */
    if (!kv)
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.merges is missing (needed by a BPE tokenizer: gpt2, gemma4)");
    if (kv->type != AL_GGUF_ARR || kv->arr_type != AL_GGUF_STR)
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    if (kv->arr_n > (1u << 24)) /* ranks are kept exactly in a float heap key */
        return al_err(err, AL_ERR_LIMIT, "tokenizer.ggml.merges has too many entries (%llu)",
                      (unsigned long long)kv->arr_n);
    v->n_merges = (uint32_t)kv->arr_n;
    al_status st = copy_strings(kv, "tokenizer.ggml.merges", &v->mblob, &v->moff, &v->mlen, err);
    if (st)
        return st;
    v->msplit = malloc((v->n_merges ? v->n_merges : 1) * sizeof(uint32_t));
    if (!v->msplit || !index_alloc(&v->merge_ix, v->n_merges))
        return al_err(err, AL_ERR_NOMEM, "out of memory for %u merges", v->n_merges);
    for (uint32_t m = 0; m < v->n_merges; m++) {
        const char *s = v->mblob + v->moff[m];
        uint32_t n = v->mlen[m];
        /* split at the first space after the first byte, like llama.cpp */
        const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp)
            return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.merges[%u] has no space: '%.*s'", m,
                          (int)(n > 64 ? 64 : n), s);
        v->msplit[m] = (uint32_t)(sp - s);
        if (n > v->max_merge_len)
            v->max_merge_len = n;
        merge_insert(v, m);
    }
    return AL_OK;
}

/* End of generation and the EOT token, found by text as llama.cpp does. */
static void set_control(al_vocab *v, int32_t id, uint16_t extra)
{
    v->attr[id] = (uint16_t)((v->attr[id] & ~(TOK_NORMAL | TOK_USER)) | TOK_CONTROL | extra);
}

/* End of generation, EOT and fill-in-the-middle tokens, found by text as
 * llama.cpp does (a token found so becomes a control token). */
static void find_eog(const al_gguf *g, al_vocab *v)
{
#define DS_END "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>" /* DeepSeek */
    static const char *const k_eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", DS_END,
                                        "<end_of_utterance>"};
    static const char *const k_eog[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                        "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                                        "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
                                        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", DS_END,
                                        "[e~["};
    /* FIM prefix/suffix/middle (control) and pad/repo/file-separator (also EOG) */
    static const char *const k_fim[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
                                        "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
                                        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>",
                                        "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
                                        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
                                        "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
    static const char *const k_fim_eog[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
                                            "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",
                                            "<|file_sep|>"};
#undef DS_END
    v->eot = read_id(g, v, "tokenizer.ggml.eot_token_id", -1);
    for (size_t k = 0; v->eot < 0 && k < sizeof(k_eot) / sizeof(k_eot[0]); k++) {
        int32_t id = tok_find(v, k_eot[k], strlen(k_eot[k]));
        if (id >= 0) {
            v->eot = id;
            set_control(v, id, 0);
        }
    }
    for (size_t k = 0; k < sizeof(k_fim) / sizeof(k_fim[0]); k++) {
        int32_t id = tok_find(v, k_fim[k], strlen(k_fim[k]));
        if (id >= 0)
            set_control(v, id, 0);
    }
    for (size_t k = 0; k < sizeof(k_fim_eog) / sizeof(k_fim_eog[0]); k++) {
        int32_t id = tok_find(v, k_fim_eog[k], strlen(k_fim_eog[k]));
        if (id >= 0)
            set_control(v, id, TOK_EOG);
    }
    for (size_t k = 0; k < sizeof(k_eog) / sizeof(k_eog[0]); k++) {
        int32_t id = tok_find(v, k_eog[k], strlen(k_eog[k]));
        if (id >= 0)
            set_control(v, id, TOK_EOG);
    }
    /* gpt-oss (harmony): these are rendered and matched as user-defined */
    static const char *const k_user[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t k = 0; k < sizeof(k_user) / sizeof(k_user[0]); k++) {
        int32_t id = tok_find(v, k_user[k], strlen(k_user[k]));
        if (id >= 0)
            v->attr[id] = TOK_USER;
    }
    int32_t eom = read_id(g, v, "tokenizer.ggml.eom_token_id", -1);
    if (v->eos >= 0)
        v->attr[v->eos] |= TOK_EOG;
    if (v->eot >= 0)
        v->attr[v->eot] |= TOK_EOG;
    if (eom >= 0)
        v->attr[eom] |= TOK_EOG;
    /* harmony / solar-open: <|end|> ends a message, not the generation */
#define HAS(s) (tok_find(v, s, strlen(s)) >= 0 && (v->attr[tok_find(v, s, strlen(s))] & TOK_EOG))
    int32_t end = tok_find(v, "<|end|>", 7);
    bool call = HAS("<|call|>") || HAS("<|calls|>");
    if (end >= 0 && (v->attr[end] & TOK_EOG) && call && (HAS("<|return|>") || HAS("<|flush|>")))
        v->attr[end] = TOK_USER;
    /* Gemma 4: </s> is an ordinary token */
    int32_t s_end = tok_find(v, "</s>", 4);
    if (s_end >= 0 && HAS("<|tool_response>") && (v->attr[s_end] & TOK_EOG))
        v->attr[s_end] = TOK_NORMAL;
#undef HAS
}

static al_status build_specials(const al_gguf *g, al_vocab *v, al_error *err)
{
    /* Phi-3 strips whitespace to the right of its special tokens */
    al_str name;
    bool phi3 = false;
    if (al_gguf_get_str(g, "general.name", &name)) {
        char low[128];
        size_t n = name.len < sizeof(low) - 1 ? (size_t)name.len : sizeof(low) - 1;
        for (size_t i = 0; i < n; i++)
            low[i] = (char)tolower((unsigned char)name.ptr[i]);
        low[n] = 0;
        phi3 = strstr(low, "phi-3") || strstr(low, "phi3");
    }
    size_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if ((v->attr[i] & (TOK_CONTROL | TOK_USER | TOK_UNKNOWN)) && v->len[i])
            n++;
    v->special = malloc((n ? n : 1) * sizeof(int32_t));
    if (!v->special)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (!((v->attr[i] & (TOK_CONTROL | TOK_USER | TOK_UNKNOWN)) && v->len[i]))
            continue;
        v->special[v->n_special++] = i;
        unsigned char c = (unsigned char)v->blob[v->off[i]];
        v->special_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        if (phi3)
            v->attr[i] |= TOK_RSTRIP;
    }
    if (phi3) {
        int32_t id = tok_find(v, "</s>", 4);
        if (id >= 0)
            v->attr[id] |= TOK_RSTRIP;
        static const char *const k_no[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < 3; k++)
            if ((id = tok_find(v, k_no[k], strlen(k_no[k]))) >= 0)
                v->attr[id] &= (uint16_t)~TOK_RSTRIP;
    }
    /* the mask token of these swallows the whitespace on its left (as the reference) */
    al_str pre = {"", 0}, arch = {"", 0};
    al_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    al_gguf_get_str(g, "general.architecture", &arch);
    const char *mask = NULL;
    if (al_str_eq(pre, "jina-v2-de") || al_str_eq(pre, "jina-v2-es") || al_str_eq(pre, "jina-v2-code") ||
        al_str_eq(arch, "nomic-bert-moe") || al_str_eq(arch, "jina-bert-v3"))
        mask = "<mask>";
    else if (al_gguf_get_str(g, "general.name", &name) && name.len >= 11 && !phi3) {
        for (size_t i = 0; i + 11 <= name.len && !mask; i++)
            if (!strncasecmp(name.ptr + i, "modern-bert", 11))
                mask = "[MASK]";
    }
    int32_t mid = mask ? tok_find(v, mask, strlen(mask)) : -1;
    if (mid >= 0)
        v->attr[mid] |= TOK_LSTRIP;
    qsort_r(v->special, v->n_special, sizeof(int32_t), cmp_special, v);
    return AL_OK;
}

/* The pre-tokenizer of a BPE vocab and the defaults its name implies.
 * Model gemma4 has no pre of its own: it is the "gemma4" one whatever the
 * file says (as the reference does). */
static al_status choose_pre(const al_gguf *g, al_vocab *v, bool gemma4, al_error *err)
{
    const al_gguf_kv *kv = gemma4 ? NULL : al_gguf_find(g, "tokenizer.ggml.pre");
    al_str pre = gemma4 ? (al_str){"gemma4", 6} : (al_str){"default", 7};
    if (kv && !al_gguf_get_str(g, "tokenizer.ggml.pre", &pre))
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.pre is not a string");
    v->pre = tok_pre_find(pre.ptr, pre.len);
    if (!v->pre)
        return al_err(err, AL_ERR_UNSUPPORTED,
                      "tokenizer.ggml.pre '%.*s' is not a known pre-tokenizer (%zu names are supported: see "
                      "README.md)",
                      (int)(pre.len > 64 ? 64 : pre.len), pre.ptr, tok_pre_count());
    unsigned f = tok_pre_flags(v->pre);
    v->ignore_merges = f & TOK_PRE_IGNORE_MERGES;
    v->clean_spaces = !(f & TOK_PRE_NO_CLEAN_SPACES);
    v->add_bos = f & TOK_PRE_ADD_BOS;
    v->add_sep = f & TOK_PRE_ADD_SEP;
    v->bpe_raw = f & TOK_PRE_RAW;
    v->escape_spaces = f & TOK_PRE_ESCAPE_SPACES;
    v->newline_word = f & TOK_PRE_NEWLINE_WORD;
    if (f & TOK_PRE_NO_BOS_ID)
        v->bos = -1;
    return AL_OK;
}

al_status al_vocab_from_gguf(const al_gguf *g, al_vocab **out, al_error *err)
{
    *out = NULL;
    al_str model;
    if (!al_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return al_err(err, AL_ERR_FORMAT, "tokenizer.ggml.model is missing: the file has no tokenizer");
    al_vocab *v = calloc(1, sizeof(*v));
    if (!v)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    bool gemma4 = false;
    al_status st = AL_OK;
    if (al_str_eq(model, "llama"))
        v->type = AL_VOCAB_SPM;
    else if (al_str_eq(model, "gpt2"))
        v->type = AL_VOCAB_BPE;
    else if (al_str_eq(model, "whitespace")) /* BPE on the text between whitespace, which is dropped */
        v->type = AL_VOCAB_BPE, v->drop_space = true;
    else if (al_str_eq(model, "bert"))
        v->type = AL_VOCAB_WPM;
    else if (al_str_eq(model, "t5"))
        v->type = AL_VOCAB_UGM;
    else if (al_str_eq(model, "gemma4")) /* BPE on raw UTF-8: the pre-tokenizer "gemma4" */
        v->type = AL_VOCAB_BPE, gemma4 = true;
    else
        st = al_err(err, AL_ERR_UNSUPPORTED,
                    "tokenizer.ggml.model '%.*s' is not supported (llama, gpt2, whitespace, bert, t5, gemma4 are)",
                    (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if (!st)
        st = load_tokens(g, v, err);
    if (!st && v->type == AL_VOCAB_UGM)
        st = tok_ugm_init(g, v, err); /* before the loader retypes end-of-generation tokens */
    if (!st && v->type == AL_VOCAB_BPE)
        st = load_merges(g, v, err);
    if (st) {
        al_vocab_free(v);
        return st;
    }

    /* defaults per type, then the metadata */
    switch (v->type) {
    case AL_VOCAB_SPM:
        v->bos = 1, v->eos = 2, v->unk = 0, v->pad = -1, v->sep = -1;
        v->add_bos = true, v->add_space_prefix = true, v->clean_spaces = false;
        break;
    case AL_VOCAB_BPE:
        v->bos = 11, v->eos = 11, v->unk = -1, v->pad = -1, v->sep = -1;
        break;
    case AL_VOCAB_WPM:
        v->bos = 101, v->eos = -1, v->unk = 100, v->pad = 0, v->sep = 102;
        v->add_bos = true, v->add_sep = true, v->clean_spaces = true;
        break;
    case AL_VOCAB_UGM:
        v->bos = -1, v->eos = 1, v->unk = 2, v->pad = 0, v->sep = -1;
        v->add_eos = true;
        break;
    }
    if (gemma4) /* every id comes from the file */
        v->bos = v->eos = v->unk = v->pad = v->sep = -1;
    int32_t *const dflt[] = {&v->bos, &v->eos, &v->unk, &v->pad, &v->sep};
    for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++)
        if (*dflt[i] >= v->n_tokens)
            *dflt[i] = -1;
    if (v->type == AL_VOCAB_BPE && (st = choose_pre(g, v, gemma4, err))) {
        al_vocab_free(v);
        return st;
    }
    v->bos = read_id(g, v, "tokenizer.ggml.bos_token_id", v->bos);
    if (v->type == AL_VOCAB_WPM)
        v->bos = read_id(g, v, "tokenizer.ggml.cls_token_id", v->bos);
    v->eos = read_id(g, v, "tokenizer.ggml.eos_token_id", v->eos);
    v->unk = read_id(g, v, "tokenizer.ggml.unknown_token_id", v->unk);
    v->pad = read_id(g, v, "tokenizer.ggml.padding_token_id", v->pad);
    v->sep = read_id(g, v, "tokenizer.ggml.seperator_token_id", v->sep);
    bool b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b))
        v->add_bos = b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b))
        v->add_eos = b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.add_sep_token", &b))
        v->add_sep = b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b))
        v->add_space_prefix = b;
    if (al_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &b))
        v->remove_extra_ws = b;
    if (gemma4)
        v->add_bos = true; /* the reference overrides add_bos_token=false for Gemma 4 */

    for (int i = 0; i < 256; i++) {
        v->byte_tok[i] = -1;
        if (v->type == AL_VOCAB_SPM) {
            static const char hex[] = "0123456789ABCDEF";
            char buf[6] = {'<', '0', 'x', hex[i >> 4], hex[i & 15], '>'};
            v->byte_tok[i] = tok_find(v, buf, 6);
            if (v->byte_tok[i] < 0 && v->type == AL_VOCAB_SPM) {
                char c = (char)i;
                v->byte_tok[i] = tok_find(v, &c, 1);
            }
        }
    }
    find_eog(g, v);
    st = build_specials(g, v, err);
    if (!st && v->type == AL_VOCAB_BPE)
        st = tok_bpe_init(v, err);
    if (!st && v->type == AL_VOCAB_SPM)
        tok_spm_init(v);
    if (!st)
        st = tok_pieces_init(v, err);
    if (st) {
        al_vocab_free(v);
        return st;
    }
    *out = v;
    return AL_OK;
}

al_status al_vocab_load(const char *path, al_vocab **out, al_error *err)
{
    *out = NULL;
    al_gguf *g = NULL;
    al_gguf_params gp = {.allow_unsupported_types = true};
    al_status st = al_gguf_open(path, &gp, &g, err);
    if (st)
        return st;
    st = al_vocab_from_gguf(g, out, err);
    if (st)
        al_err_prefix(err, path);
    al_gguf_close(g);
    return st;
}

void al_vocab_free(al_vocab *v)
{
    if (!v)
        return;
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->scores);
    free(v->attr);
    free(v->tok_ix.slots);
    free(v->pblob);
    free(v->poff);
    free(v->plen);
    free(v->mblob);
    free(v->moff);
    free(v->mlen);
    free(v->msplit);
    free(v->merge_ix.slots);
    free(v->pairs);
    free(v->special);
    tok_pretok_free(v->pretok);
    tok_ugm_free(v->ugm);
    free(v);
}

/* ---------------------------------------------------------------- queries */

int32_t al_vocab_n_tokens(const al_vocab *v) { return v->n_tokens; }
int32_t al_vocab_bos(const al_vocab *v) { return v->bos; }
int32_t al_vocab_eos(const al_vocab *v) { return v->eos; }
int32_t al_vocab_eot(const al_vocab *v) { return v->eot; }
size_t al_vocab_max_token_bytes(const al_vocab *v) { return v->max_token_len; }
int32_t al_vocab_unk(const al_vocab *v) { return v->unk; }
int32_t al_vocab_pad(const al_vocab *v) { return v->pad; }
int32_t al_vocab_sep(const al_vocab *v) { return v->sep; }
al_vocab_type al_vocab_type_of(const al_vocab *v) { return v->type; }
const char *al_vocab_pre_name(const al_vocab *v) { return v->pre ? tok_pre_name(v->pre) : NULL; }
bool al_vocab_clean_spaces(const al_vocab *v) { return v->clean_spaces; }

const char *al_vocab_type_name(const al_vocab *v)
{
    switch (v->type) {
    case AL_VOCAB_SPM: return "spm";
    case AL_VOCAB_BPE: return "bpe";
    case AL_VOCAB_WPM: return "wpm";
    case AL_VOCAB_UGM: return "ugm";
    }
    return "?";
}
bool al_vocab_add_bos_default(const al_vocab *v) { return v->add_bos; }
bool al_vocab_add_eos_default(const al_vocab *v) { return v->add_eos; }
bool al_vocab_add_space_prefix(const al_vocab *v)
{
    return (v->type == AL_VOCAB_SPM || v->type == AL_VOCAB_UGM) && v->add_space_prefix;
}

bool al_vocab_is_eog(const al_vocab *v, int32_t t)
{
    return t >= 0 && t < v->n_tokens && (v->attr[t] & TOK_EOG);
}

bool al_vocab_is_control(const al_vocab *v, int32_t t)
{
    return t >= 0 && t < v->n_tokens && (v->attr[t] & TOK_CONTROL);
}

int32_t al_vocab_find(const al_vocab *v, const char *text, size_t len)
{
    return tok_find(v, text, len);
}

const char *al_vocab_token_text(const al_vocab *v, int32_t t, size_t *len)
{
    if (t < 0 || t >= v->n_tokens)
        return NULL;
    *len = v->len[t];
    return v->blob + v->off[t];
}

/* -------------------------------------------------------------- tokenize */

/* A piece of the input: raw text [off, off+len) or a special token. */
typedef struct frag {
    size_t off, len;
    int32_t token; /* -1: raw text */
} frag;

typedef struct frags {
    frag *v;
    size_t n, cap;
} frags;

static bool frags_push(frags *f, frag x)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof(frag))
            return false;
        frag *nv = realloc(f->v, cap * sizeof(frag));
        if (!nv)
            return false;
        f->v = nv;
        f->cap = cap;
    }
    f->v[f->n++] = x;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Splits raw text around special tokens: each token in turn (longest
 * first) is searched in the raw fragments left by the previous ones.
 * Without parse_special only user-defined tokens are recognised. */
static al_status partition(const al_vocab *v, const char *text, size_t len, bool parse_special, frags *out,
                           al_error *err)
{
    out->n = 0;
    if (!len)
        return AL_OK;
    if (!frags_push(out, (frag){0, len, -1}))
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    bool any = false;
    for (size_t i = 0; i < len && !any; i++) {
        unsigned char c = (unsigned char)text[i];
        any = v->special_first[c >> 3] & (1u << (c & 7));
    }
    if (!any)
        return AL_OK;
    /* which byte pairs occur in the text: a token whose first two bytes
     * never do cannot match (saves a search of the whole text per token) */
    uint8_t *pairs = len >= 2 ? calloc(8192, 1) : NULL;
    if (pairs)
        for (size_t i = 0; i + 1 < len; i++) {
            unsigned pr = (unsigned)(unsigned char)text[i] << 8 | (unsigned char)text[i + 1];
            pairs[pr >> 3] |= (uint8_t)(1u << (pr & 7));
        }
    struct {
        char prefix[4];
        bool present;
    } memo[64];
    size_t n_memo = 0;
    frags next = {0};
    for (size_t s = 0; s < v->n_special; s++) {
        int32_t id = v->special[s];
        uint16_t a = v->attr[id];
        if (!parse_special && (a & (TOK_CONTROL | TOK_UNKNOWN)))
            continue;
        const char *tt = v->blob + v->off[id];
        size_t tl = v->len[id];
        if (tl >= 2 && pairs) {
            unsigned pr = (unsigned)(unsigned char)tt[0] << 8 | (unsigned char)tt[1];
            if (!(pairs[pr >> 3] & (1u << (pr & 7))))
                continue;
        }
        if (tl >= 4) { /* many tokens share a 4-byte prefix ("[PAD...", "<|...") */
            size_t k = 0;
            while (k < n_memo && memcmp(memo[k].prefix, tt, 4))
                k++;
            if (k == n_memo && n_memo < sizeof(memo) / sizeof(memo[0])) {
                memcpy(memo[k].prefix, tt, 4);
                memo[k].present = memmem(text, len, tt, 4) != NULL;
                n_memo++;
            }
            if (k < n_memo && !memo[k].present)
                continue;
        }
        bool found = false;
        next.n = 0;
        for (size_t f = 0; f < out->n; f++) {
            frag fr = out->v[f];
            const char *m = fr.token < 0 && fr.len >= tl ? memmem(text + fr.off, fr.len, tt, tl) : NULL;
            if (!m) {
                if (!frags_push(&next, fr))
                    goto oom;
                continue;
            }
            found = true;
            size_t pos = fr.off, end = fr.off + fr.len;
            while (m) {
                size_t mo = (size_t)(m - text);
                size_t ll = mo - pos;
                if (a & TOK_LSTRIP)
                    while (ll > 0 && is_space(text[pos + ll - 1]))
                        ll--;
                if (ll && !frags_push(&next, (frag){pos, ll, -1}))
                    goto oom;
                if (!frags_push(&next, (frag){mo, tl, id}))
                    goto oom;
                pos = mo + tl;
                if (a & TOK_RSTRIP)
                    while (pos < end && is_space(text[pos]))
                        pos++;
                m = end - pos >= tl ? memmem(text + pos, end - pos, tt, tl) : NULL;
            }
            if (pos < end && !frags_push(&next, (frag){pos, end - pos, -1}))
                goto oom;
        }
        if (found) {
            frags t = *out;
            *out = next;
            next = t;
        }
    }
    free(next.v);
    free(pairs);
    return AL_OK;
oom:
    free(next.v);
    free(pairs);
    return al_err(err, AL_ERR_NOMEM, "out of memory");
}

static al_status tokenize_all(const al_vocab *v, const char *text, size_t len, bool add_special,
                              bool parse_special, tok_ids *ids, al_error *err)
{
    frags fr = {0};
    al_status st = partition(v, text, len, parse_special, &fr, err);
    if (st) {
        free(fr.v);
        return st;
    }
    bool oom = false;
    if (add_special && v->add_bos && v->bos >= 0)
        oom |= !tok_ids_push(ids, v->bos);
    char *buf = NULL;
    size_t buf_cap = 0;
    bool prev_special = true; /* SPM: a space prefix at the start and after a special token */
    for (size_t i = 0; i < fr.n && !st && !oom; i++) {
        frag f = fr.v[i];
        if (f.token >= 0) {
            oom |= !tok_ids_push(ids, f.token);
            prev_special = true;
            continue;
        }
        switch (v->type) {
        case AL_VOCAB_SPM: {
            /* ' ' -> U+2581 (3 bytes), plus an optional leading one */
            size_t nsp = 0;
            for (size_t k = 0; k < f.len; k++)
                nsp += text[f.off + k] == ' ';
            size_t need = f.len + 2 * nsp + 3;
            if (need > buf_cap) {
                char *nb = realloc(buf, need);
                if (!nb) {
                    oom = true;
                    break;
                }
                buf = nb;
                buf_cap = need;
            }
            size_t o = 0;
            if (v->add_space_prefix && prev_special) {
                memcpy(buf, "\xe2\x96\x81", 3);
                o = 3;
            }
            for (size_t k = 0; k < f.len; k++) {
                char c = text[f.off + k];
                if (c == ' ') {
                    memcpy(buf + o, "\xe2\x96\x81", 3);
                    o += 3;
                } else {
                    buf[o++] = c;
                }
            }
            st = tok_spm(v, buf, o, ids, err);
            break;
        }
        case AL_VOCAB_BPE:
            st = tok_bpe(v, text + f.off, f.len, ids, err);
            break;
        case AL_VOCAB_UGM:
            st = tok_ugm(v, text + f.off, f.len, ids, err);
            break;
        case AL_VOCAB_WPM:
            st = tok_wpm(v, text + f.off, f.len, ids, err);
            break;
        }
        prev_special = false;
    }
    free(buf);
    free(fr.v);
    if (!st && !oom && add_special) {
        if (v->type == AL_VOCAB_WPM) {
            if (v->add_sep && v->sep >= 0)
                oom |= !tok_ids_push(ids, v->sep);
        } else if (v->add_eos && v->eos >= 0) {
            oom |= !tok_ids_push(ids, v->eos);
        }
    }
    if (!st && oom)
        st = al_err(err, AL_ERR_NOMEM, "out of memory while tokenizing %zu bytes", len);
    return st;
}

al_status al_tokenize(const al_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                      int32_t *out, size_t cap, size_t *n_out, al_error *err)
{
    if (n_out)
        *n_out = 0;
    if (!v || (!text && len) || (!out && cap))
        return al_err(err, AL_ERR_ARG, "al_tokenize: bad arguments");
    tok_ids ids = {0};
    al_status st = tokenize_all(v, text, len, add_special, parse_special, &ids, err);
    if (!st) {
        if (n_out)
            *n_out = ids.n;
        if (ids.n > cap)
            st = al_err(err, AL_ERR_LIMIT, "the text needs %zu tokens but there is room for %zu", ids.n, cap);
        else if (ids.n)
            memcpy(out, ids.v, ids.n * sizeof(int32_t));
    }
    free(ids.v);
    return st;
}
