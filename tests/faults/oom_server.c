/*
 * oom_server.c - allocation failures in the server's request parsing
 * (srv_parse_request: sampling and output parameters, tools, reasoning,
 * messages, the Responses translation) on every body of the API fuzzer's
 * seed corpus (fuzz/corpus/api: first byte = endpoint, then the body).
 *
 * For every N the Nth allocation fails. The request must then either give
 * the clean run's answer (same status, same normalised messages) or fail
 * with a 5xx that says memory ran out: never crash, leak (ASan), or blame
 * the client with a 4xx that a run with memory does not give.
 *
 * Also the parser of a model's reply (srv_reply_parse: reasoning, content
 * and tool calls in each tool-call format): false (out of memory) or the
 * clean run's reasoning, content and calls.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "fault.h"
#include "server/api_parse.h"
#include "server/toolcall.h"
#include "util/error.h"

typedef struct parse_case {
    srv_parse_endpoint ep;
    char *body;
    size_t n;
    int ref_status;     /* the clean run's */
    char *ref_messages; /* the clean run's normalised messages (JSON), or NULL */
    bool have_ref;
    char wrong[600];    /* set by a run whose answer differs */
} parse_case;

static al_status op_parse(void *user, al_error *err)
{
    parse_case *pc = user;
    pc->wrong[0] = 0;
    json_error_t je;
    json_t *body = json_loadb(pc->body, pc->n, 0, &je); /* not counted (fault.c) */
    if (!body)
        return al_err(err, AL_ERR_FORMAT, "the seed does not parse: %s", je.text);
    al_server_config cfg = al_server_default_config();
    json_t *msgs = NULL;
    char msg[1024] = "";
    int status = srv_parse_request(body, pc->ep, &cfg, &msgs, msg, sizeof(msg));
    json_decref(body);
    fault_pause();
    char *js = msgs ? json_dumps(msgs, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    fault_resume();
    json_decref(msgs);
    al_status st = AL_OK;
    if (!pc->have_ref) {
        pc->ref_status = status;
        pc->ref_messages = js;
        pc->have_ref = true;
        return AL_OK;
    }
    if (status >= 500 && status <= 599 && msg[0]) {
        st = al_err(err, AL_ERR_NOMEM, "%d %s", status, msg);
    } else if (status != pc->ref_status) {
        snprintf(pc->wrong, sizeof(pc->wrong), "status %d (%.300s), the clean run %d", status, msg, pc->ref_status);
        st = al_err(err, AL_ERR_STATE, "%s", pc->wrong);
    } else if ((js == NULL) != (pc->ref_messages == NULL) || (js && strcmp(js, pc->ref_messages))) {
        snprintf(pc->wrong, sizeof(pc->wrong), "status %d but other messages: %.200s", status, js ? js : "(none)");
        st = al_err(err, AL_ERR_STATE, "%s", pc->wrong);
    }
    free(js);
    return st;
}

static int check_parse(void *user, al_status st, char *msg, size_t cap)
{
    const parse_case *pc = user;
    if (!pc->wrong[0])
        return 0;
    snprintf(msg, cap, "%s", pc->wrong);
    return 1;
}

typedef struct reply_case {
    srv_tool_fmt tf;
    srv_think_fmt th;
    const char *text;
    char got[2048], ref[2048];
    bool have_ref, wrong;
} reply_case;

static al_status op_reply(void *user, al_error *err)
{
    reply_case *rc = user;
    srv_parse_opts o = {.tools = true, .split_reasoning = true};
    o.fmt.tools = rc->tf;
    o.fmt.think = rc->th;
    srv_parsed p;
    memset(&p, 0, sizeof(p));
    rc->wrong = false;
    if (!srv_reply_parse(&o, rc->text, strlen(rc->text), true, &p))
        return al_err(err, AL_ERR_NOMEM, "srv_reply_parse: out of memory");
    int n = snprintf(rc->got, sizeof(rc->got), "R[%s] C[%s]", p.reasoning ? p.reasoning : "(null)",
                     p.content ? p.content : "(null)");
    for (size_t i = 0; i < p.n_calls && n > 0 && (size_t)n < sizeof(rc->got); i++)
        n += snprintf(rc->got + n, sizeof(rc->got) - (size_t)n, " call[%s %s %s]", p.calls[i].name,
                      p.calls[i].args, p.calls[i].id ? p.calls[i].id : "-");
    srv_parsed_free(&p);
    if (!rc->have_ref) {
        memcpy(rc->ref, rc->got, sizeof(rc->ref));
        rc->have_ref = true;
    }
    rc->wrong = strcmp(rc->got, rc->ref) != 0;
    return AL_OK;
}

static int check_reply(void *user, al_status st, char *msg, size_t cap)
{
    const reply_case *rc = user;
    if (rc->wrong)
        snprintf(msg, cap, "parsed %.400s, the clean run %.400s", rc->got, rc->ref);
    return rc->wrong;
}

static long sweep_replies(void)
{
    static reply_case cases[] = {
        {.tf = SRV_TOOLS_HERMES, .th = SRV_THINK_TAGS, .text =
         "<think>the user wants weather</think>Let me check.<tool_call>{\"name\":\"get_weather\",\"arguments\":"
         "{\"city\":\"Paris\",\"days\":[1,2]}}</tool_call><tool_call>{\"name\":\"noop\",\"arguments\":{}}</tool_call>"},
        {.tf = SRV_TOOLS_QWEN3_CODER, .th = SRV_THINK_TAGS, .text =
         "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n"
         "</parameter>\n</function>\n</tool_call>"},
        {.tf = SRV_TOOLS_LLAMA3, .th = SRV_THINK_NONE, .text = "<|python_tag|>{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Oslo\"}}"},
        {.tf = SRV_TOOLS_MISTRAL, .th = SRV_THINK_NONE, .text =
         "[TOOL_CALLS][{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"},\"id\":\"abc123XYZ\"}]"},
        {.tf = SRV_TOOLS_HARMONY, .th = SRV_THINK_HARMONY, .text =
         "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather "
         "<|constrain|>json<|message|>{\"city\":\"Lima\"}<|call|>"},
        {.tf = SRV_TOOLS_GRANITE, .th = SRV_THINK_NONE, .text = "<|tool_call|>[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Kyiv\"}}]"},
    };
    long bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[96];
        snprintf(name, sizeof(name), "srv_reply_parse %s", srv_tool_fmt_name(cases[i].tf));
        bad += fault_sweep(name, FAULT_ALLOC, 0, fault_stride(1), op_reply, check_reply, &cases[i], NULL);
    }
    return bad;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(void)
{
    const char *src = getenv("AIRLOCK_SRC");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/api", src ? src : ".");
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, by_name);
    if (n < 0) {
        printf("SKIP: %s not found (AIRLOCK_SRC)\n", dir);
        return 77;
    }
    fault_hook_jansson();
    long bad = 0;
    int n_seeds = 0;
    for (int i = 0; i < n; i++) {
        char path[8192];
        if (ents[i]->d_name[0] == '.')
            goto next;
        snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            goto next;
        static char buf[1 << 16];
        size_t len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (len < 2)
            goto next;
        parse_case pc = {.ep = (srv_parse_endpoint)((unsigned char)buf[0] % 5), .body = buf + 1, .n = len - 1};
        char name[600];
        snprintf(name, sizeof(name), "srv_parse_request %s", ents[i]->d_name);
        bad += fault_sweep(name, FAULT_ALLOC, 0, fault_stride(1), op_parse, check_parse, &pc, NULL);
        free(pc.ref_messages);
        n_seeds++;
    next:
        free(ents[i]);
    }
    free(ents);
    bad += sweep_replies();
    if (n_seeds == 0) {
        printf("FAIL: no seed in %s\n", dir);
        return 1;
    }
    return bad ? 1 : 0;
}
