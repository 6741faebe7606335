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
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "fault.h"
#include "server/api_parse.h"
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
    if (n_seeds == 0) {
        printf("FAIL: no seed in %s\n", dir);
        return 1;
    }
    return bad ? 1 : 0;
}
