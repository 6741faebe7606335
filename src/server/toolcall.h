/*
 * toolcall.h - what a chat template says about its model's replies, and
 * the parse of a reply into reasoning, content and tool calls.
 *
 * The format is read from the template's text (never from the model's
 * name): the markers a template writes for earlier tool calls and
 * thinking blocks are the ones its model was trained to write. The parse
 * works on text (control tokens rendered), so it is the same for a real
 * model and for a scripted one whose markers are plain text.
 *
 * Streaming: srv_reply_parse is run again on the whole text each time it
 * grows. With final false it holds back what might still change (a
 * partial marker, an unfinished call, trailing whitespace of reasoning),
 * so that every content/reasoning it returns is a prefix of what a later
 * parse returns, and calls only ever get appended: a streamer emits the
 * difference. Pure functions, no shared state.
 */
#ifndef AL_SERVER_TOOLCALL_H
#define AL_SERVER_TOOLCALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum srv_tool_fmt {
    SRV_TOOLS_NONE = 0,    /* no tool-call format in the template: <tool_call> is tried */
    SRV_TOOLS_HERMES,      /* <tool_call>{"name":..,"arguments":{..}}</tool_call> (Hermes 2 Pro, Qwen 2.5/3) */
    SRV_TOOLS_QWEN3_CODER, /* <tool_call><function=NAME><parameter=K>V</parameter>...</function></tool_call> */
    SRV_TOOLS_LLAMA3,      /* {"name":..,"parameters":{..}}, alone or after <|python_tag|> */
    SRV_TOOLS_MISTRAL,     /* [TOOL_CALLS][{"name","arguments","id"}] or [TOOL_CALLS]NAME[ARGS]{..} */
    SRV_TOOLS_HARMONY,     /* gpt-oss: <|channel|>commentary to=functions.NAME ...<|message|>{..} */
    SRV_TOOLS_GRANITE,     /* <|tool_call|>[{"name","arguments"}] */
    SRV_TOOLS_DEEPSEEK,    /* <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>...<｜tool▁sep｜>... */
} srv_tool_fmt;

typedef enum srv_think_fmt {
    SRV_THINK_NONE = 0,
    SRV_THINK_TAGS,        /* <think>...</think> */
    SRV_THINK_HARMONY,     /* the analysis channel */
} srv_think_fmt;

typedef struct srv_chat_fmt {
    srv_tool_fmt tools;
    srv_think_fmt think;
    bool enable_thinking;  /* the template reads enable_thinking (Qwen3, SmolLM3...) */
    bool granite_thinking; /* the template reads `thinking` (Granite 3.3) */
    bool effort;           /* the template reads reasoning_effort (gpt-oss) */
    bool special_markers;  /* the markers are control tokens: the reply must render them */
} srv_chat_fmt;

/* Reads the format from a template's source (NULL: nothing known). */
void srv_chat_fmt_detect(const char *tmpl, srv_chat_fmt *out);
/* "hermes", "llama3", ... for logs, docs and /api/show. */
const char *srv_tool_fmt_name(srv_tool_fmt f);

/* Checks an OpenAI/Ollama `tools` list: each {"type":"function","function":
 * {"name", "description"?, "parameters"?}}, names unique, parameters an
 * object schema. flat: the Responses API's {"type":"function","name",...}.
 * On error, false with where[] naming the place (e.g.
 * "tools[1].function.parameters.properties.city") and msg[] the problem. */
bool srv_tools_check(json_t *tools, bool flat, char *where, size_t where_cap, char *msg, size_t msg_cap);
/* The function object of the tool named name (borrowed), or NULL. */
json_t *srv_tools_find(json_t *tools, const char *name, bool flat);

typedef struct srv_tool_call {
    char *id;              /* the model's own id (Mistral), else NULL: the caller makes one */
    char *name;
    char *args;            /* a JSON object as compact text */
} srv_tool_call;

typedef struct srv_parsed {
    char *content;         /* NUL-terminated; never NULL after a successful parse */
    size_t n_content;
    char *reasoning;
    size_t n_reasoning;
    srv_tool_call *calls;
    size_t n_calls;
} srv_parsed;

typedef struct srv_parse_opts {
    srv_chat_fmt fmt;
    bool tools;            /* parse tool calls (tools given and tool_choice is not "none") */
    bool split_reasoning;  /* reasoning apart (else it stays in content as written) */
    bool in_think;         /* the prompt ended inside a <think> block (DeepSeek R1) */
    json_t *tool_defs;     /* borrowed, may be NULL: parameter types for Qwen3-Coder values */
    bool flat_tools;       /* tool_defs in the Responses API's flat shape */
} srv_parse_opts;

/* Parses text (n bytes). final: the reply is complete. Returns false on
 * out of memory only; free out with srv_parsed_free. */
bool srv_reply_parse(const srv_parse_opts *o, const char *text, size_t n, bool final, srv_parsed *out);
void srv_parsed_free(srv_parsed *p);

/* True when the rendered prompt leaves the model inside a <think> block. */
bool srv_prompt_opens_think(const char *prompt, size_t n);

/* ------------------------------------------------- the request's agent fields */

typedef enum srv_tool_choice {
    SRV_TC_AUTO = 0,
    SRV_TC_NONE,           /* tools not shown to the model, replies not parsed for calls */
    SRV_TC_REQUIRED,       /* the reply is constrained to a call of one of the tools (toolgrammar.h) */
    SRV_TC_NAMED,          /* the reply is constrained to a call of choice_name (toolgrammar.h) */
} srv_tool_choice;

typedef struct srv_agent_req {
    json_t *tools;         /* borrowed from the body (checked); NULL: none */
    bool flat;             /* Responses API shape {"type":"function","name",...} */
    srv_tool_choice choice;
    char choice_name[72];
    bool parallel;         /* parallel_tool_calls (default true): else the first call only */
    int think;             /* -1: not said; 0: off; 1: on (Ollama think, reasoning_effort "none") */
    char effort[16];       /* "low", "medium", "high" or "" */
    json_t *kwargs;        /* chat_template_kwargs (borrowed) or NULL */
} srv_agent_req;

/* Reads tools, tool_choice, parallel_tool_calls, think (ollama),
 * reasoning_effort / reasoning.effort (responses), chat_template_kwargs.
 * false on bad input: where names the field, msg says what is wrong. */
bool srv_agent_parse(json_t *body, bool ollama, bool responses, srv_agent_req *a, char *where, size_t where_cap,
                     char *msg, size_t msg_cap);
/* The tools to show the template in the nested OpenAI shape (new reference;
 * NULL: none): none for tool_choice "none", only the named one when named. */
json_t *srv_agent_template_tools(const srv_agent_req *a);
/* Extra template variables (new reference, never NULL unless out of
 * memory): chat_template_kwargs, then enable_thinking / thinking /
 * reasoning_effort where the template reads them and the request said. */
json_t *srv_agent_template_vars(const srv_agent_req *a, const srv_chat_fmt *f);

/* A call's id: the model's own, else made up from random bytes (Mistral's
 * templates insist on 9 alphanumerics; others get "call_" + 24). */
void srv_call_id(const srv_tool_call *c, srv_tool_fmt f, char out[48]);
/* {"index","id","type":"function","function":{"name","arguments"}} (OpenAI). */
json_t *srv_call_oai(const srv_tool_call *c, const char *id, size_t index);
/* {"id","function":{"index","name","arguments":{object}}} (Ollama). */
json_t *srv_call_ollama(const srv_tool_call *c, const char *id, size_t index);

#endif
