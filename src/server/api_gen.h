/* api_gen.h - what the generation endpoint files share (not a public API):
 * api.c (utilities, models, routing), api_params.c (request fields and
 * sampling parameters), api_prompt.c (messages, chat templates, tokens),
 * api_reply.c (answer shaping), api_stream.c (SSE / NDJSON streams) and
 * api_generate.c (the completion and chat handlers). */
#ifndef AL_SERVER_API_GEN_H
#define AL_SERVER_API_GEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/api_int.h"
#include "server/responses.h"
#include "server/toolcall.h"

typedef enum dialect { D_OAI_CHAT, D_OAI_COMPL, D_OL_CHAT, D_OL_GEN } dialect;

typedef struct gen_params {
    int32_t max_tokens;       /* 0: not given */
    al_sampler_params sp;
    char **stops;             /* owned until moved into a job */
    size_t n_stops;
    al_grammar *grammar;      /* owned until moved into a job: response_format, format, grammar */
    bool logprobs;
    int32_t top_logprobs;
    bool stream;
    bool include_usage;
    int32_t n_choices;        /* n: choices per prompt (0: 1) */
    bool render_special;      /* the reply's control tokens are parsed (see sched.h) */
    int32_t *bias_tok;        /* logit_bias (owned) */
    float *bias_val;
    size_t n_bias;
    int32_t *grammar_special; /* owned: marker control tokens the grammar may match (see sched.h) */
    size_t n_grammar_special;
} gen_params;

typedef struct gen_ctx {
    al_server *srv;
    dialect d;
    char id[48];
    int64_t created;
    char model_name[128];
    const al_vocab *vocab;
    bool logprobs;
    int32_t top_logprobs;
    bool include_usage;
    double t_start;
    int32_t n_prompt;
    size_t text_offset;       /* completions logprobs text_offset */
    bool parse;               /* reasoning and/or tool calls parsed out of the reply */
    srv_parse_opts po;        /* po.tool_defs: a reference the gen_ctx's owner drops */
    bool parallel;            /* parallel_tool_calls */
    srv_resp_state *resp;     /* POST /v1/responses: its output state (owned by the gen_ctx's owner) */
} gen_ctx;

enum { MAX_CALLS = 64 }; /* tool calls shown per reply */

/* api.c */
/* A JSON string of bytes that may hold invalid UTF-8 (each bad byte
 * becomes U+FFFD). */
json_t *api_jstr(const char *s, size_t n);
void api_make_id(al_server *srv, const char *prefix, char *out, size_t cap);
int api_reply_perr(srv_req *r, const perr *e);
json_t *api_rfc3339_now(void);
/* api_params.c */
void api_gen_params_free(gen_params *g);
bool api_get_bool(json_t *o, const char *key, bool *out, perr *e);
/* OpenAI request fields common to chat and completions. */
bool api_parse_oai_params(json_t *b, dialect d, const al_server_config *cfg, gen_params *g, perr *e);
/* Ollama's "options" object and top-level fields. */
bool api_parse_ollama_params(json_t *b, const al_server_config *cfg, gen_params *g, perr *e);
/* tool_choice "required" or a named function: the grammar of a reply that
 * is a call in the template's format (toolgrammar.h). Markers that are
 * control tokens of the vocabulary join the grammar's trie and are
 * rendered into the text (the grammar admits no other control token). */
bool api_tool_choice_grammar(gen_params *g, const srv_agent_req *ag, const srv_chat_fmt *fmt, bool in_think,
                             const al_vocab *vocab, perr *e);
/* api_prompt.c */
/* Renders a chat through --chat-template, --chat-format, the model's own
 * template, or --default-chat-format, in that order. */
const char *api_chat_template_of(al_server *srv, const srv_model_status *st, const al_model *model);
/* Messages in the shape templates expect: role + string content (text
 * parts joined), tool fields passed through. */
json_t *api_normalize_messages(json_t *msgs, bool ollama, perr *e);
void api_piece_of(const al_vocab *v, int32_t tok, char *buf, size_t cap);
/* Renders msgs; a (may be NULL) gives the tools and the thinking switches;
 * *fmt (may be NULL) gets the template's tool-call / reasoning format. */
bool api_render_chat(al_server *srv, srv_model *sm, const al_model *model, json_t *msgs, const srv_agent_req *a,
                     srv_chat_fmt *fmt, char **out, perr *e);
/* Tokenizes into a malloc'd array; limits the prompt to the context. */
bool api_tokenize(const al_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                  uint32_t n_ctx, int32_t **out, int32_t *n_out, perr *e);
/* api_reply.c */
/* message.tool_calls of calls [from, to): OpenAI's shape (with "index" in
 * stream deltas) or Ollama's. ids[] holds each call's id, made on first use. */
json_t *api_calls_json(const gen_ctx *g, const srv_parsed *p, size_t from, size_t to, char (*ids)[48], bool delta);
json_t *api_chat_logprobs(gen_ctx *g, const srv_tok_info *t, size_t n);
json_t *api_compl_logprobs(gen_ctx *g, const srv_tok_info *t, size_t n);
const char *api_finish_str(srv_finish f);
/* Status and message for a job that ended badly; 0 when it ended well. */
int api_job_error(const srv_job *j, perr *e);
void api_observe_job(al_server *srv, const srv_job *j, double t_start);
void api_ollama_stats(json_t *o, const srv_job *j, double t_start);
/* The reply parsed as g asks; calls cut to one without parallel_tool_calls. */
bool api_parse_reply(const gen_ctx *g, const char *text, size_t n, bool final, srv_parsed *p);
void api_resp_free(srv_resp_state *st);
json_t *api_usage_json(int32_t n_prompt, int32_t n_gen, int32_t n_cached);
/* api_stream.c */
/* Answers with a stream that owns jobs[0..n_jobs) (the choices, n_jobs
 * <= 9) and the model pin. */
int api_start_stream(srv_req *r, gen_ctx *g, srv_job **jobs, size_t n_jobs, srv_model *m);
/* api_generate.c */
/* A request being generated may stay silent longer than the idle timeout
 * (queued, or a long prompt): give its connection the request's limit. */
void api_extend_timeout(srv_req *r);
srv_model *api_find_model(srv_req *r, json_t *b, const char *key, perr *e);
int api_handle_generate(srv_req *r, dialect d, json_t *resp_body);
/* POST /v1/responses: translated into a chat request (responses.c). */
int api_handle_responses(srv_req *r);
/* The request's prompt as the audit log sees it: a string prompt as is,
 * anything else (messages, lists, token ids) as compact JSON. */
void api_keep_prompt_json(srv_req *r, json_t *v);
/* Answers a failed srv_model_acquire: 404 when the model is no longer
 * published in the store (removed or rejected since the request found it),
 * 503 when memory is short or the model failed its integrity check (it is
 * not served), else 500. */
int api_reply_load_error(srv_req *r, const al_error *err);

#endif
