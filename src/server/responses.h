/*
 * responses.h - POST /v1/responses (OpenAI's Responses API) over the chat
 * machinery: the request is translated into a chat request, and the parsed
 * reply (toolcall.h) into output items (reasoning, message, function_call)
 * and, when streamed, the API's typed events. No response is stored:
 * previous_response_id is refused, the client sends the conversation.
 */
#ifndef AL_SERVER_RESPONSES_H
#define AL_SERVER_RESPONSES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/toolcall.h"

/* The chat request (new reference) for a Responses request body, or NULL
 * with where/msg naming the bad field (input[2].type, tools[0].name...);
 * out of memory, where is "" and msg "out of memory" (a 500, not a 400). */
json_t *srv_responses_to_chat(json_t *body, char *where, size_t where_cap, char *msg, size_t msg_cap);

/* Receives one event: its type and data (stolen). */
typedef void (*srv_resp_emit_fn)(void *user, const char *type, json_t *data);

typedef struct srv_resp_state {
    char id[48];              /* resp_... */
    int64_t created;
    char model[128];
    json_t *echo;             /* request fields the response object repeats (owned) */
    int seq;                  /* sequence_number of the next event */
    int open;                 /* the item being written: 0 none, 1 reasoning, 2 message */
    char item_id[48];
    size_t item_from;         /* where its text starts in the reply's reasoning / content */
    size_t sent_r, sent_c, sent_calls;
    json_t *output;           /* finished items (owned) */
    srv_resp_emit_fn emit;    /* NULL: no events (non-streamed) */
    void *user;
} srv_resp_state;

/* Sets up the state (echo: borrowed from the request body, copied). */
void srv_resp_init(srv_resp_state *st, const char *model, json_t *body, srv_resp_emit_fn emit, void *user);
void srv_resp_free(srv_resp_state *st);
/* response.created and response.in_progress. */
void srv_resp_begin(srv_resp_state *st);
/* Turns what the reply's parse holds beyond what was sent into items and
 * deltas; ids[] gives each call's id. */
void srv_resp_update(srv_resp_state *st, const srv_parsed *p, size_t n_calls, char (*ids)[48]);
/* Closes the open item (p: the reply's final parse, given to the last
 * srv_resp_update); returns the response object (new reference) with
 * status "completed" or, when length is true, "incomplete"
 * (max_output_tokens); streamed, also emits response.completed /
 * response.incomplete with it. */
json_t *srv_resp_finish(srv_resp_state *st, const srv_parsed *p, bool length, int32_t n_prompt, int32_t n_gen,
                        int32_t n_cached);

#endif
