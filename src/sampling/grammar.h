/*
 * grammar.h - grammar-constrained decoding.
 *
 * One grammar representation, two front ends:
 *   - GBNF, the grammar format of llama.cpp's `grammar` field
 *     (al_grammar_from_gbnf);
 *   - JSON Schema (al_grammar_from_json_schema), which is translated to GBNF
 *     text and compiled by the same parser.
 * Both compile to a context-free grammar over BYTES: character classes over
 * code points are expanded into their UTF-8 byte sequences, so the matcher
 * never has to decode a character that a token splits.
 *
 * A compiled grammar is immutable (but for its reference count) and may be
 * shared by threads. Compilation checks it: every rule defined and
 * reachable from `root`, no rule that can never complete, no left
 * recursion, and limits on its size, so a matcher can always finish (no
 * dead ends) and never loops.
 *
 * The matcher (al_grammar_matcher) follows the text generated so far as a
 * set of parse stacks (a nondeterministic pushdown automaton). Each decode
 * step it computes which tokens of the vocabulary keep the output a prefix
 * of the grammar's language by walking a byte trie of the vocabulary
 * (al_token_trie, built once per vocabulary) with the parse state: a
 * subtree is dropped at the first byte no stack accepts. Masks are cached
 * per parse state (al_grammar_cache, optionally shared by every matcher of
 * one vocabulary), so a state seen before costs a bit-set lookup.
 * End-of-generation tokens are allowed exactly when the output is a
 * complete sentence of the grammar.
 */
#ifndef AL_SAMPLING_GRAMMAR_H
#define AL_SAMPLING_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

/* al_grammar, al_token_trie and al_grammar_cache are declared in airlock.h. */

/* Compile limits: no source can make compilation or matching stall. */
typedef struct al_grammar_limits {
    uint32_t max_elements;   /* grammar elements after expansion of repetitions */
    uint32_t max_rules;
    uint32_t max_properties; /* JSON Schema: properties of one object */
    uint32_t max_schema_depth; /* JSON Schema: nesting of subschemas */
    double max_seconds;      /* wall time of one compilation */
} al_grammar_limits;

al_grammar_limits al_grammar_default_limits(void);

/* Compiles GBNF source src[0..len) (rules `name ::= ...`, start rule `root`).
 * On success *out is a grammar to free with al_grammar_free. On failure
 * (AL_ERR_FORMAT for syntax errors and undefined, unreachable or
 * never-completing rules, AL_ERR_LIMIT for a limit) err says what and where
 * (line:column, rule name). limits may be NULL (the defaults). */
al_status al_grammar_from_gbnf(const char *src, size_t len, const al_grammar_limits *limits,
                               al_grammar **out, al_error *err);

/* Translates a JSON Schema (JSON text schema[0..len)) to GBNF. On success
 * *gbnf is a malloc'd NUL-terminated string (free with free()). Errors name
 * the schema location as a JSON pointer ("#/properties/age/pattern") and the
 * problem: unsupported keywords that change what is valid, $ref loops that
 * consume nothing, unsupported regular expressions, too many properties. */
al_status al_json_schema_to_gbnf(const char *schema, size_t len, const al_grammar_limits *limits,
                                 char **gbnf, al_error *err);

/* Like al_json_schema_to_gbnf, but for embedding in a larger grammar (a
 * tool call's arguments, say): the schema's start rule is called name and
 * every other rule name-..., so several schemas can share one GBNF text.
 * name: 1-64 characters of [a-zA-Z0-9-]. */
al_status al_json_schema_to_gbnf_rule(const char *schema, size_t len, const char *name,
                                      const al_grammar_limits *limits, char **gbnf, al_error *err);

/* al_json_schema_to_gbnf then al_grammar_from_gbnf. */
al_status al_grammar_from_json_schema(const char *schema, size_t len, const al_grammar_limits *limits,
                                      al_grammar **out, al_error *err);

/* The grammar of one JSON object (response_format json_object, Ollama
 * format "json"): any keys and values, bounded whitespace. */
al_status al_grammar_json_object(al_grammar **out, al_error *err);

/* Another owner of g (returned): the grammar is freed by the last
 * al_grammar_free. Owners may be on different threads (n choices of one
 * request share one compiled grammar, each job freeing its reference). */
al_grammar *al_grammar_ref(al_grammar *g);
void al_grammar_free(al_grammar *g);
/* A 64-bit digest of the compiled grammar: equal grammars, equal digests. */
uint64_t al_grammar_digest(const al_grammar *g);
/* Number of rules and elements (for tests and diagnostics). */
uint32_t al_grammar_n_rules(const al_grammar *g);
uint32_t al_grammar_n_elements(const al_grammar *g);

/* ------------------------------------------------------------------ trie */

/* Builds the byte trie of every token's piece (al_token_to_piece without
 * special rendering). Tokens with an empty piece are left out (a matcher
 * never allows them); end-of-generation tokens are recorded apart.
 * Returns NULL when out of memory. Immutable: may be shared by threads. */
al_token_trie *al_token_trie_new(const al_vocab *vocab);
/* The same, but the control tokens listed in special[0..n_special) are in
 * the trie with their text (al_token_to_piece with special rendering): for
 * a grammar that writes markers such as [TOOL_CALLS] or <|python_tag|>,
 * when the output renders them too. End-of-generation tokens stay apart. */
al_token_trie *al_token_trie_new_with(const al_vocab *vocab, const int32_t *special, size_t n_special);
void al_token_trie_free(al_token_trie *t);
int32_t al_token_trie_n_vocab(const al_token_trie *t);

/* ----------------------------------------------------------------- cache */

/* A cache of masks (n_vocab bits each) keyed by (grammar digest, parse
 * state), holding at most capacity entries (least recently used goes).
 * One thread at a time. NULL when out of memory. */
al_grammar_cache *al_grammar_cache_new(int32_t n_vocab, uint32_t capacity);
void al_grammar_cache_free(al_grammar_cache *c);
/* Hits and misses since creation. */
void al_grammar_cache_stats(const al_grammar_cache *c, uint64_t *hits, uint64_t *misses);

/* --------------------------------------------------------------- matcher */

typedef struct al_grammar_matcher al_grammar_matcher;

/* A matcher at the start of the output. grammar and trie are borrowed and
 * must outlive it; cache may be NULL (the matcher keeps a small one of its
 * own) or shared with other matchers of the same vocabulary on the same
 * thread. Returns NULL when out of memory. */
al_grammar_matcher *al_grammar_matcher_new(const al_grammar *g, const al_token_trie *trie,
                                           al_grammar_cache *cache);
void al_grammar_matcher_free(al_grammar_matcher *m);

/* The tokens allowed next, as ((n_vocab + 63) / 64) words of bits (bit t
 * set: token t allowed). Owned by the matcher or its cache, valid until
 * the next call on the matcher or the cache. End-of-generation tokens are
 * set exactly when al_grammar_matcher_can_end. NULL when out of memory. */
const uint64_t *al_grammar_matcher_mask(al_grammar_matcher *m);

/* Sets to -INFINITY the logits (n_vocab floats) of tokens not allowed. */
al_status al_grammar_matcher_apply(al_grammar_matcher *m, float *logits);

/* Advances over token t. AL_ERR_ARG when t is not allowed (the matcher is
 * unchanged). An end-of-generation token is accepted when can_end. */
al_status al_grammar_matcher_accept_token(al_grammar_matcher *m, int32_t t);

/* Advances over bytes s[0..n); false (matcher unchanged) when they leave the
 * grammar's language. For tests and for text forced into the output. */
bool al_grammar_matcher_accept_bytes(al_grammar_matcher *m, const char *s, size_t n);

/* True when the output so far is a complete sentence of the grammar. */
bool al_grammar_matcher_can_end(const al_grammar_matcher *m);
/* True when nothing more can follow (complete, and no byte accepted). */
bool al_grammar_matcher_done(const al_grammar_matcher *m);

/* Convenience for tests: true when the whole of s[0..n) is a sentence
 * (al_grammar_accepts), or a prefix of one (al_grammar_accepts_prefix). */
bool al_grammar_accepts(const al_grammar *g, const char *s, size_t n);
bool al_grammar_accepts_prefix(const al_grammar *g, const char *s, size_t n);

#endif
