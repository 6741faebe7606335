/* cmd_serve.c - `airlock serve`: the OpenAI- and Ollama-compatible server. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"
#include "sandbox/sandbox.h"
#include "server/server.h"

#define MAX_MODELS 32

static void usage(FILE *f, const al_server_config *d)
{
    fprintf(f,
            "usage: airlock serve --model PATH.gguf [--model-name NAME] [--chat-format FMT] [options]\n"
            "\n"
            "Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/embeddings,\n"
            "/v1/models) and the Ollama API (/api/chat, /api/generate, /api/embed, /api/tags,\n"
            "/api/show, /api/ps, /api/version), plus /health, /ready and /metrics.\n"
            "\n"
            "models (repeat the group for several models; each is loaded on first use):\n"
            "  --model PATH          a GGUF model file\n"
            "  --model-name NAME     the name clients use for the preceding --model\n"
            "                        (default: the file name without .gguf)\n"
            "  --chat-format FMT     built-in chat format for the preceding --model\n"
            "                        (chatml, llama2, llama3, mistral, gemma, phi3); needed\n"
            "                        for chat on models without a chat template\n"
            "\n"
            "network:\n"
            "  --listen ADDR:PORT    numeric address to listen on (repeatable; default %s;\n"
            "                        port 0 picks a free one and prints it)\n"
            "  --unsafe-no-sandbox   do not confine the process (debugging only)\n"
            "\n"
            "capacity:\n"
            "  --parallel N          sequences decoded together per model (default %u)\n"
            "  --ctx N               positions per sequence (default %u)\n"
            "  --batch N             tokens per forward pass: decoding tokens plus a chunk of\n"
            "                        prompt (default %u)\n"
            "  --prefill-chunk N     prompt tokens per pass while other sequences are\n"
            "                        decoding: smaller keeps streams flowing (default %u)\n"
            "  --threads N           compute threads (default: physical cores)\n"
            "  --queue N             requests waiting for a sequence before 429 (default %u)\n"
            "  --memory-budget BYTES weights + KV caches of loaded models; least recently used\n"
            "                        idle models are evicted to fit (default 0: unlimited)\n"
            "\n"
            "limits (each breach answers a 4xx in OpenAI's error shape):\n"
            "  --max-body BYTES      request body (default %zu)\n"
            "  --max-header BYTES    request headers (default %zu)\n"
            "  --max-json-depth N    JSON nesting (default %d)\n"
            "  --max-tokens N        largest max_tokens a request may ask (default %d)\n"
            "  --default-max-tokens N  when a request names none (default %d)\n"
            "  --conn-timeout SEC    idle connection timeout (default %u)\n"
            "  --request-timeout SEC whole generation (default %u; 0: none)\n"
            "  --max-connections N   open connections (default %u)\n",
            d->listen[0], d->sched.n_parallel, d->sched.n_ctx, d->sched.n_batch, d->sched.n_prefill_busy,
            d->sched.queue_cap,
            d->max_body_bytes, d->max_header_bytes, d->max_json_depth, d->max_tokens, d->default_max_tokens,
            d->conn_timeout_s, d->request_timeout_s, d->max_connections);
}

int cmd_serve(int argc, char **argv)
{
    al_server_config cfg = al_server_default_config();
    srv_model_cfg models[MAX_MODELS];
    size_t n_models = 0;
    const char *listen[AL_SERVER_MAX_LISTEN];
    size_t n_listen = 0;
    bool no_sandbox = false;
    memset(models, 0, sizeof(models));

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, &cfg);
            return 0;
        }
        if (!strcmp(a, "--unsafe-no-sandbox")) {
            no_sandbox = true;
            continue;
        }
        if (!v) {
            cli_errorf("serve", "%s needs a value (see --help)", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            if (n_models == MAX_MODELS) {
                cli_errorf("serve", "at most %d models", MAX_MODELS);
                return 2;
            }
            models[n_models++].path = v;
        } else if (!strcmp(a, "--model-name") || !strcmp(a, "--chat-format")) {
            if (n_models == 0) {
                cli_errorf("serve", "%s must follow the --model it applies to", a);
                return 2;
            }
            if (a[2] == 'm') {
                models[n_models - 1].name = v;
            } else {
                if (!al_template_builtin(v)) {
                    cli_errorf("serve", "unknown chat format '%s' (chatml, llama2, llama3, mistral, gemma, phi3)",
                               v);
                    return 2;
                }
                models[n_models - 1].chat_format = v;
            }
        } else if (!strcmp(a, "--listen")) {
            if (n_listen == AL_SERVER_MAX_LISTEN) {
                cli_errorf("serve", "at most %d --listen", AL_SERVER_MAX_LISTEN);
                return 2;
            }
            listen[n_listen++] = v;
        } else if (!strcmp(a, "--memory-budget")) {
            if (!cli_parse_i64(v, 0, INT64_MAX, &x))
                goto bad;
            cfg.sched.memory_budget = (uint64_t)x;
        } else if (!strcmp(a, "--max-body") || !strcmp(a, "--max-header")) {
            if (!cli_parse_i64(v, 1024, (int64_t)1 << 32, &x))
                goto bad;
            if (a[6] == 'b')
                cfg.max_body_bytes = (size_t)x;
            else
                cfg.max_header_bytes = (size_t)x;
        } else {
            static const struct {
                const char *name;
                int64_t lo, hi;
            } k_ints[] = {
                {"--parallel", 1, 256},       {"--ctx", 16, 1 << 20},          {"--batch", 2, 65536},
                {"--threads", 0, 1024},       {"--queue", 1, 1 << 20},         {"--max-json-depth", 2, 10000},
                {"--max-tokens", 1, 1 << 20}, {"--default-max-tokens", 1, 1 << 20},
                {"--conn-timeout", 1, 86400}, {"--request-timeout", 0, 864000}, {"--max-connections", 1, 100000},
                {"--prefill-chunk", 0, 65536},
            };
            size_t k;
            for (k = 0; k < sizeof(k_ints) / sizeof(k_ints[0]); k++)
                if (!strcmp(a, k_ints[k].name))
                    break;
            if (k == sizeof(k_ints) / sizeof(k_ints[0])) {
                cli_errorf("serve", "unknown option '%s' (see --help)", a);
                return 2;
            }
            if (!cli_parse_i64(v, k_ints[k].lo, k_ints[k].hi, &x))
                goto bad;
            switch (k) {
            case 0: cfg.sched.n_parallel = (uint32_t)x; break;
            case 1: cfg.sched.n_ctx = (uint32_t)x; break;
            case 2: cfg.sched.n_batch = (uint32_t)x; break;
            case 3: cfg.sched.n_threads = (int)x; break;
            case 4: cfg.sched.queue_cap = (uint32_t)x; break;
            case 5: cfg.max_json_depth = (int)x; break;
            case 6: cfg.max_tokens = (int32_t)x; break;
            case 7: cfg.default_max_tokens = (int32_t)x; break;
            case 8: cfg.conn_timeout_s = (unsigned)x; break;
            case 9: cfg.request_timeout_s = (unsigned)x; break;
            case 10: cfg.max_connections = (unsigned)x; break;
            case 11: cfg.sched.n_prefill_busy = (uint32_t)x; break;
            }
        }
        continue;
    bad:
        cli_errorf("serve", "bad value '%s' for %s", v, a);
        return 2;
    }
    if (n_models == 0) {
        cli_errorf("serve", "no model: use --model PATH.gguf (see --help)");
        return 2;
    }
    if (cfg.sched.n_batch <= cfg.sched.n_parallel)
        cfg.sched.n_batch = cfg.sched.n_parallel + 1;
    if (n_listen) {
        cfg.listen = listen;
        cfg.n_listen = n_listen;
    }
    cfg.models = models;
    cfg.n_models = n_models;

    /* Signals are taken by sigwait below; block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    al_error err = {0};
    al_server *srv = NULL;
    if (al_server_bind(&cfg, &srv, &err)) {
        cli_errorf("serve", "%s", err.msg);
        return 1;
    }
    if (no_sandbox) {
        fprintf(stderr, "%s\n", AL_SANDBOX_UNSAFE_WARNING);
    } else {
        const char *ro[MAX_MODELS];
        for (size_t i = 0; i < n_models; i++)
            ro[i] = models[i].path;
        al_sandbox_params sp = {.ro_paths = ro, .n_ro = n_models, .allow_missing = true};
        al_sandbox_report rep;
        if (al_sandbox_enter(&sp, &rep, &err)) {
            cli_errorf("serve", "cannot enter the sandbox: %s (use --unsafe-no-sandbox to debug)", err.msg);
            al_server_free(srv);
            return 1;
        }
        fprintf(stderr, "airlock serve: sandbox: %s\n", rep.summary);
    }
    if (al_server_start(srv, &err)) {
        cli_errorf("serve", "%s", err.msg);
        al_server_free(srv);
        return 1;
    }
    for (size_t i = 0; i < al_server_n_listeners(srv); i++) {
        const char *spec = cfg.listen[i];
        const char *colon = strrchr(spec, ':');
        printf("airlock serve: listening on http://%.*s:%u\n", (int)(colon - spec), spec,
               (unsigned)al_server_port(srv, i));
    }
    for (size_t i = 0; i < n_models; i++)
        printf("airlock serve: model '%s' from %s\n", models[i].name ? models[i].name : "(file name)",
               models[i].path);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "airlock serve: signal %d, shutting down\n", sig);
    al_server_free(srv);
    return 0;
}
