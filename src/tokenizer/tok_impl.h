/*
 * tok_impl.h - the al_vocab structure and helpers shared by the files of
 * src/tokenizer/ (vocab.c: loading and queries; spm.c, bpe.c, wpm.c: the
 * three algorithms; detok.c: pieces and streaming). Not for other modules.
 */
#ifndef AL_TOKENIZER_TOK_IMPL_H
#define AL_TOKENIZER_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/pretok.h"
#include "tokenizer/vocab.h"
#include "util/utf8.h" /* al_utf8_encode */

/* Token attributes (from tokenizer.ggml.token_type, plus what the loader
 * derives). */
enum {
    TOK_NORMAL = 1u << 0,
    TOK_UNKNOWN = 1u << 1,
    TOK_CONTROL = 1u << 2,
    TOK_USER = 1u << 3,   /* user-defined: matched in raw text even without parse_special */
    TOK_UNUSED = 1u << 4,
    TOK_BYTE = 1u << 5,
    TOK_LSTRIP = 1u << 6, /* swallow whitespace on the left when matched as special */
    TOK_RSTRIP = 1u << 7, /* ... on the right */
    TOK_EOG = 1u << 8,    /* ends generation */
};

/* The unigram tokenizer's tries and charsmap (ugm.c). */
typedef struct tok_unigram tok_unigram;

/* An open-addressing hash index over an array of strings: slot = 1 + index
 * of the entry, 0 = empty. The strings live elsewhere (see below). */
typedef struct tok_index {
    uint32_t *slots;
    size_t mask; /* n_slots - 1, n_slots a power of two >= 2 * entries */
} tok_index;

struct al_vocab {
    al_vocab_type type;
    const tok_pre_def *pre; /* BPE: the tokenizer.ggml.pre entry (pretok.c) */
    int32_t n_tokens;

    /* token texts: text of token i is blob + off[i], len[i] bytes */
    char *blob;
    size_t *off;    /* (n_tokens) */
    uint32_t *len;  /* (n_tokens) */
    float *scores;  /* (n_tokens), 0 when the file has none */
    uint16_t *attr; /* (n_tokens) TOK_* bits */
    tok_index tok_ix;
    size_t max_token_len;

    /* decoded pieces (what al_token_to_piece gives with render_special) */
    char *pblob;
    size_t *poff;   /* (n_tokens) */
    uint32_t *plen; /* (n_tokens) */

    /* BPE merges "left right", rank = index; split = length of left */
    char *mblob;
    size_t *moff;    /* (n_merges) */
    uint32_t *mlen;  /* (n_merges) */
    uint32_t *msplit;/* (n_merges) */
    uint32_t n_merges;
    tok_index merge_ix;
    size_t max_merge_len;

    /* special tokens matched in raw text, longest first */
    int32_t *special;
    size_t n_special;
    uint8_t special_first[32]; /* bitset of their first bytes */

    int32_t bos, eos, eot, unk, pad, sep;
    bool add_bos, add_eos, add_sep, add_space_prefix, ignore_merges;
    bool clean_spaces;       /* whole-text detokenization drops " ." " ," ... */
    bool remove_extra_ws;    /* tokenizer.ggml.remove_extra_whitespaces (SentencePiece models) */
    /* BPE variants: merges over raw UTF-8 with ' ' -> U+2581 (Gemma 4 style),
     * a word of newlines taken whole, whitespace dropped ("whitespace" model) */
    bool bpe_raw, escape_spaces, newline_word, drop_space;
    bool spm_word_split; /* SPM: merges never cross a word start (see spm.c) */

    /* SPM: token of each byte value (<0xXX>), -1 when absent.
     * BPE: token of the single byte-level character of each byte, or -1. */
    int32_t byte_tok[256];

    tok_pretok *pretok; /* BPE: the compiled pre-tokenizer */

    /* BPE: merges whose two halves are tokens, keyed by the halves' ids:
     * one probe instead of hashing and comparing strings. Built at load. */
    struct tok_pair *pairs;
    size_t pair_mask; /* n_slots - 1 */

    /* BPE: the GPT-2 byte-level character of each byte, UTF-8 (1-2 bytes) */
    char byte_chr[256][2];
    uint8_t byte_chr_len[256];

    tok_unigram *ugm; /* AL_VOCAB_UGM */
};

/* A slot of al_vocab.pairs: key = left id << 32 | right id (TOK_PAIR_EMPTY
 * when free), the merge's rank and the id of the merged text (-1: none). */
typedef struct tok_pair {
    uint64_t key;
    uint32_t rank;
    int32_t result;
} tok_pair;
#define TOK_PAIR_EMPTY UINT64_MAX

/* A growable list of token ids. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

bool tok_ids_push(tok_ids *ids, int32_t id);

/* A fast 64-bit string hash (8 bytes a step); h chains a previous value. */
#define TOK_HASH_INIT 0xcbf29ce484222325ull
uint64_t tok_hash(uint64_t h, const void *p, size_t n);

/* The id of the token with exactly this text, or -1. */
int32_t tok_find(const al_vocab *v, const char *s, size_t n);

/* The rank of merge (left, right), or -1. */
int32_t tok_merge_rank(const al_vocab *v, const char *l, size_t nl, const char *r, size_t nr);

/* Length of the UTF-8 sequence a lead byte announces (1 for a stray byte),
 * as llama.cpp counts it: no validation. */
static inline size_t tok_utf8_len(unsigned char c)
{
    static const uint8_t k[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k[c >> 4];
}

/* Decodes one strict UTF-8 character at s[0..n): returns its length and sets
 * *cp; on an invalid or truncated sequence returns 1 and *cp = U+FFFD. If
 * `incomplete` is not NULL it is set when the bytes are a valid prefix cut
 * short by the end of the buffer. */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, bool *incomplete);

/* The GPT-2 byte <-> unicode mapping. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 when cp is not a mapped byte */

/* The algorithms: tokenize one fragment of raw text, appending to ids. */
al_status tok_spm(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err);
al_status tok_bpe(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err);
al_status tok_wpm(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err);
al_status tok_ugm(const al_vocab *v, const char *text, size_t n, tok_ids *ids, al_error *err);

/* Builds v->ugm from the tokens (already loaded, with the file's token
 * types), tokenizer.ggml.precompiled_charsmap, add_space_prefix and
 * remove_extra_whitespaces. On failure v->ugm may be partly built: it is
 * freed with v. */
al_status tok_ugm_init(const al_gguf *g, al_vocab *v, al_error *err);
void tok_ugm_free(tok_unigram *u);

/* SPM: sets spm_word_split from the tokens. */
void tok_spm_init(al_vocab *v);

/* Compiles the pre-tokenizer of v->pre into v->pretok. */
al_status tok_bpe_init(al_vocab *v, al_error *err);

/* Builds the decoded pieces (v->pblob...). */
al_status tok_pieces_init(al_vocab *v, al_error *err);

/* A max-heap of candidate merges: higher key first, then smaller left. */
typedef struct tok_bigram {
    float key;     /* SPM: score; BPE: -rank (exact below 2^24 merges) */
    int32_t left, right;
    uint32_t size; /* bytes of left + right when pushed (inputs are < 2^31) */
    int32_t id;    /* BPE: token id of the merged text, -1 if unknown */
} tok_bigram;

typedef struct tok_heap {
    tok_bigram *v;
    size_t n, cap;
} tok_heap;

bool tok_heap_push(tok_heap *h, tok_bigram b);
tok_bigram tok_heap_pop(tok_heap *h); /* h->n must be > 0 */

/* A symbol of a word being merged: a byte range and its neighbours. */
typedef struct tok_sym {
    int32_t prev, next;
    size_t off; /* into the word */
    size_t n;   /* 0 once merged into its left neighbour */
    int32_t id; /* BPE: token id of the symbol's text, -1 if unknown */
} tok_sym;

#endif
