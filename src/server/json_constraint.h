/*
 * json_constraint.h - the server's view of "output must be a JSON object"
 * (OpenAI response_format json_object, Ollama format "json"): masks the
 * logits of tokens that cannot continue valid JSON and says when the value
 * is complete. An adapter over the sampling module's JSON guard.
 */
#ifndef AL_SERVER_JSON_CONSTRAINT_H
#define AL_SERVER_JSON_CONSTRAINT_H

#include <stdbool.h>
#include <stdint.h>

#include "airlock.h"

typedef struct srv_jc srv_jc;

/* NULL on allocation failure. The vocab must outlive the object. */
srv_jc *srv_jc_new(const al_vocab *vocab);
void srv_jc_free(srv_jc *jc);
/* Sets to -INFINITY the logits of tokens that would make the output
 * invalid JSON (end-of-generation too, until the object is complete). */
void srv_jc_mask(srv_jc *jc, float *logits, int32_t n_vocab);
/* Records the chosen token; true once the top-level object is complete. */
bool srv_jc_accept(srv_jc *jc, int32_t token);

#endif
