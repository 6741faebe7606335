/*
 * json_guard.h - constrains generation to a JSON object (response_format
 * json_object).
 *
 * A pushdown automaton over bytes (RFC 8259 grammar, UTF-8 validated inside
 * strings) that tracks the text generated so far. Before a token is chosen,
 * al_json_guard_accepts tells whether its piece keeps the output a valid
 * prefix of one JSON object (leading whitespace allowed; after the closing
 * brace only whitespace). Nesting deeper than AL_JSON_GUARD_MAX_DEPTH is
 * refused.
 *
 * The guard is a small fixed-size value (no allocation after new); it
 * belongs to one thread at a time.
 */
#ifndef AL_SAMPLING_JSON_GUARD_H
#define AL_SAMPLING_JSON_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#define AL_JSON_GUARD_MAX_DEPTH 256

typedef struct al_json_guard al_json_guard;

/* Returns a guard at the start of the output, or NULL when out of memory.
 * Free with al_json_guard_free (NULL is a no-op). */
al_json_guard *al_json_guard_new(void);
void al_json_guard_free(al_json_guard *g);
/* Back to the start of the output. */
void al_json_guard_reset(al_json_guard *g);

/* True when appending piece[0..n) keeps the output a valid prefix of a JSON
 * object. An empty piece is accepted. Does not change the guard. */
bool al_json_guard_accepts(const al_json_guard *g, const char *piece, size_t n);
/* Appends piece[0..n) to the tracked output. A piece that is not accepted
 * puts the guard in a failed state: nothing is accepted after it. */
void al_json_guard_advance(al_json_guard *g, const char *piece, size_t n);
/* True when the output so far is a complete JSON object (the top-level
 * closing brace has been generated; trailing whitespace allowed). */
bool al_json_guard_complete(const al_json_guard *g);
/* True when a piece was refused by al_json_guard_advance. */
bool al_json_guard_failed(const al_json_guard *g);

/* Bytes of a guard's key. */
#define AL_JSON_GUARD_KEY_BYTES (16 + AL_JSON_GUARD_MAX_DEPTH / 8)
/* Writes the guard's state as AL_JSON_GUARD_KEY_BYTES bytes: two guards
 * with equal keys accept exactly the same pieces (what a caller can cache
 * per key, e.g. which tokens of a vocabulary are accepted). */
void al_json_guard_key(const al_json_guard *g, unsigned char *key);

#endif
