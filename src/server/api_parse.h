/* api_parse.h - the request-body checks of the generation endpoints, callable
 * without a server (for the fuzzer, fuzz/fuzz_api.c). Not a public API. */
#ifndef AL_SERVER_API_PARSE_H
#define AL_SERVER_API_PARSE_H

#include <jansson.h>
#include <stddef.h>

#include "server/server.h"

typedef enum srv_parse_endpoint {
    SRV_PARSE_CHAT,             /* POST /v1/chat/completions */
    SRV_PARSE_COMPLETIONS,      /* POST /v1/completions */
    SRV_PARSE_OLLAMA_CHAT,      /* POST /api/chat */
    SRV_PARSE_OLLAMA_GENERATE,  /* POST /api/generate */
    SRV_PARSE_RESPONSES,        /* POST /v1/responses (translated to a chat) */
} srv_parse_endpoint;

/* Runs what a generation request's body goes through before a model is
 * involved: the sampling / output parameters, the tool and reasoning fields
 * and the messages or prompt. Returns the HTTP status the server would
 * answer a failure with (msg says why), or 200. For the chat endpoints
 * *messages (may be NULL) receives the normalised messages (new reference). */
int srv_parse_request(json_t *body, srv_parse_endpoint ep, const al_server_config *cfg, json_t **messages,
                      char *msg, size_t msg_cap);

#endif
