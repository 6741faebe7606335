/*
 * pretok.h - the byte-level BPE pre-tokenizers (tokenizer.ggml.pre): the
 * table of every name the reference runtime knows, and the splitter that
 * cuts a text into the words BPE merges one at a time.
 *
 * A name maps to a family (an ordered list of regexes, applied in turn to
 * the pieces the previous one left) plus flags. The splitter works on code
 * points: a regex that uses Unicode categories (\p{L}, \p{N}, ...) runs on
 * the text with every non-ASCII code point collapsed to one code for its
 * category, as the reference does, so ASCII-only classes such as [^a-z]
 * treat every non-ASCII letter alike and \p{Lu}/\p{Ll} are both "a letter";
 * a regex without categories runs on the code points themselves with
 * ASCII-only \s \d \w and non-ASCII whitespace read as \v. Internal to
 * src/tokenizer/.
 */
#ifndef AL_TOKENIZER_PRETOK_H
#define AL_TOKENIZER_PRETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Flags a name implies (defaults before the GGUF metadata is read). */
enum {
    TOK_PRE_IGNORE_MERGES = 1u << 0, /* a word that is a token is taken whole */
    TOK_PRE_NO_CLEAN_SPACES = 1u << 1, /* detokenize keeps " ." " ," ... */
    TOK_PRE_ADD_BOS = 1u << 2,
    TOK_PRE_ADD_SEP = 1u << 3,
    TOK_PRE_NO_BOS_ID = 1u << 4,     /* no default BOS id (GLM-4) */
    TOK_PRE_RAW = 1u << 5,           /* merges run on raw UTF-8, not GPT-2 byte characters */
    TOK_PRE_ESCAPE_SPACES = 1u << 6, /* ' ' -> U+2581 before splitting */
    TOK_PRE_NEWLINE_WORD = 1u << 7,  /* a word of newlines that is a token is taken whole */
};

typedef struct tok_pre_def tok_pre_def;

/* The entry for a tokenizer.ggml.pre name, or NULL when it is unknown. */
const tok_pre_def *tok_pre_find(const char *name, size_t len);
unsigned tok_pre_flags(const tok_pre_def *d);
const char *tok_pre_name(const tok_pre_def *d);   /* canonical name */
const char *tok_pre_family(const tok_pre_def *d); /* e.g. "llama3", "gpt4o" */

/* The table, entry by entry: tok_pre_at(i) for i < tok_pre_count(), NULL
 * past the end (static storage). */
size_t tok_pre_count(void);
const tok_pre_def *tok_pre_at(size_t i);

/* A compiled pre-tokenizer: read-only once built, shared between threads. */
typedef struct tok_pretok tok_pretok;

al_status tok_pretok_new(const tok_pre_def *d, tok_pretok **out, al_error *err);
void tok_pretok_free(tok_pretok *p);

/* A word: code points [off, off + len) of the text. */
typedef struct tok_word {
    uint32_t off, len;
} tok_word;

typedef struct tok_words {
    tok_word *v;
    size_t n, cap;
} tok_words;

/* Splits the code points cps[0..n) into words (appended to *out, emptied
 * first), in text order, covering the whole text (drop_space: without the
 * runs of whitespace, as the "whitespace" tokenizer model wants). Each call
 * allocates its own scratch: safe from several threads at once. */
al_status tok_pretok_split(const tok_pretok *p, const uint32_t *cps, size_t n, bool drop_space, tok_words *out,
                           al_error *err);

/* The reference's whitespace set (Unicode White_Space). */
bool tok_cp_is_space(uint32_t cp);

#endif
