/*
 * grammar_int.h - the compiled grammar, shared by the compiler
 * (grammar.c) and the matcher (grammar_match.c).
 *
 * A grammar is a list of rules; a rule is a list of alternatives; an
 * alternative is a run of elements in elems[] ended by GE_END. An element
 * is a byte set (GE_SET, arg = index into sets) or a reference to a rule
 * (GE_REF, arg = rule id).
 */
#ifndef AL_SAMPLING_GRAMMAR_INT_H
#define AL_SAMPLING_GRAMMAR_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "sampling/grammar.h"

enum { GE_END = 0, GE_SET = 1, GE_REF = 2 };
#define GE_KIND(e) ((uint32_t)(e) >> 30)
#define GE_ARG(e) ((uint32_t)(e) & 0x3FFFFFFFu)
#define GE_MAKE(k, a) (((uint32_t)(k) << 30) | (uint32_t)(a))

typedef struct ge_set {
    uint64_t w[4]; /* bit b: byte b accepted */
} ge_set;

static inline bool ge_set_has(const ge_set *s, unsigned char b)
{
    return (s->w[b >> 6] >> (b & 63)) & 1u;
}

struct al_grammar {
    uint32_t *elems;     /* (n_elems) */
    uint32_t n_elems;
    uint32_t *alt_start; /* (n_alts) index into elems of each alternative */
    uint32_t n_alts;
    uint32_t *rule_alt;  /* (n_rules + 1): rule r's alternatives are alt_start[rule_alt[r] .. rule_alt[r+1]) */
    uint32_t n_rules;
    ge_set *sets;        /* (n_sets) */
    uint32_t n_sets;
    uint32_t root;
    uint64_t digest;
    unsigned char sha[32]; /* SHA-256 of the compiled grammar: the mask cache's key */
    atomic_uint refs;    /* owners (al_grammar_ref, al_grammar_free) */
};

/* The vocabulary's byte trie (grammar_trie.c), read by the matcher. */
typedef struct tnode {
    uint32_t skip;      /* index of the first node after this subtree */
    uint32_t tok_begin; /* tokens ending here: sorted[tok_begin .. +tok_count) */
    uint16_t depth;     /* 1 for a first byte */
    uint16_t tok_count;
    uint8_t byte;
} tnode;

struct al_token_trie {
    int32_t n_vocab;
    tnode *nodes; /* (n_nodes) in preorder */
    uint32_t n_nodes;
    uint32_t max_depth;
    int32_t *sorted; /* token ids by piece */
    int32_t *eog;    /* end-of-generation tokens */
    uint32_t n_eog;
    char *pieces;    /* every token's piece (empty if left out) */
    uint32_t *poff;  /* (n_vocab + 1) offsets into pieces */
};


#define TRIE_PIECE_MAX 1024 /* longer pieces are left out of the trie */

#endif
