/* api_int.h - what the endpoint files share with api.c (not a public API):
 * the request error, and api.c's request helpers. */
#ifndef AL_SERVER_API_INT_H
#define AL_SERVER_API_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "server/sched.h"
#include "server/server_int.h"

/* A request error: HTTP status, OpenAI code and param, message. */
typedef struct perr {
    int status;
    const char *code;
    char param[64];
    char msg[768];
} perr;

/* Fills e (param may be NULL: none) and returns false, so that a parser
 * can `return srv_fail(e, 400, "invalid_value", "model", "...")`. */
__attribute__((format(printf, 5, 6))) bool srv_fail(perr *e, int status, const char *code, const char *param,
                                                    const char *fmt, ...);

/* api.c: the served model a body's `key` names (Ollama also "name"); NULL
 * with e filled (400 / 404) otherwise. Records it in r for the audit. */
srv_model *srv_api_find_model(srv_req *r, json_t *b, const char *key, perr *e);
int srv_api_reply_perr(srv_req *r, const perr *e);
/* Answers a failed srv_model_acquire (503 / 500). */
int srv_api_reply_load_error(srv_req *r, const al_error *err);
/* The request's input as the audit log keeps it (when it keeps content). */
void srv_api_keep_prompt_json(srv_req *r, json_t *v);
/* Gives a queued, silent request's connection the request's time limit. */
void srv_api_extend_timeout(srv_req *r);

/* api_embed.c: POST /v1/embeddings, /api/embed, /api/embeddings. */
int srv_api_embeddings(srv_req *r, srv_route_id id);
/* api_embed.c: POST /v1/rerank, /rerank. */
int srv_api_rerank(srv_req *r);
/* api_embed.c: "embedding" / "rerank" (and "completion" when the model
 * generates) appended to caps, from the model's file metadata. */
void srv_api_model_caps(srv_sched *s, srv_model *m, json_t *caps, bool *can_generate);

#endif
