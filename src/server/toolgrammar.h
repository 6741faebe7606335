/*
 * toolgrammar.h - the grammar of a reply that must be a tool call
 * (tool_choice "required" or a named function): the call in the template's
 * format (toolcall.h), its arguments valid under the tool's `parameters`
 * schema, so that the reply's parse always gives a call.
 */
#ifndef AL_SERVER_TOOLGRAMMAR_H
#define AL_SERVER_TOOLGRAMMAR_H

#include <stdbool.h>
#include <stddef.h>

#include "server/toolcall.h"

/* Thinking before a required call: none (an unbounded thinking block would
 * let a model think until max_tokens and never call), except when the
 * prompt itself opened the block (DeepSeek R1), which the reply must close
 * first. */
typedef enum srv_tg_think {
    SRV_TG_THINK_NONE = 0, /* the reply is the call */
    SRV_TG_THINK_OPEN,     /* the prompt opened <think>: the reply closes it, then calls */
} srv_tg_think;

/* Writes into *gbnf (malloc'd) the GBNF of a reply that is one call (or,
 * with a->parallel, 1 to 8 calls) of a->choice_name (SRV_TC_NAMED) or of
 * any of a->tools (SRV_TC_REQUIRED), in format f. *markers is set to a
 * NULL-terminated static list of the marker texts the grammar writes
 * (which a vocabulary may hold as control tokens).
 * Returns 0, 400 (where/msg: a tool's parameters the schema compiler
 * refuses, or a format without a call grammar) or 500 (out of memory). */
int srv_tool_grammar(const srv_agent_req *a, const srv_chat_fmt *f, srv_tg_think think, char **gbnf,
                     const char *const **markers, char *where, size_t where_cap, char *msg, size_t msg_cap);

#endif
