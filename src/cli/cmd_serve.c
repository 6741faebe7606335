/* cmd_serve.c - `airlock serve`: the OpenAI- and Ollama-compatible server. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "airlock.h"
#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/serve_reload.h"
#include "cli/serve_sync.h"
#include "cli/util.h"
#include "policy/apikey.h"
#include "sandbox/sandbox.h"
#include "server/server.h"
#include "store/store.h"
#include "util/error.h"

#define MAX_MODELS 32
#define MAX_STORE_MODELS 256

static void usage(FILE *f, const al_server_config *d)
{
    fprintf(f,
            "usage: airlock serve [--store DIR] [--model PATH.gguf [--model-name NAME] [--chat-format FMT]] [options]\n"
            "\n"
            "Serves the OpenAI API (/v1/chat/completions, /v1/completions, /v1/embeddings,\n"
            "/v1/models), /v1/rerank (Jina/Cohere shape) and the Ollama API (/api/chat,\n"
            "/api/generate, /api/embed, /api/tags, /api/show, /api/ps, /api/version), plus\n"
            "/health, /ready and /metrics.\n"
            "\n"
            "the store (docs/airlock.md):\n"
            "  --store DIR           serve the published models of this store, by name:tag or\n"
            "                        name@sha256:DIGEST; each blob is re-hashed when it is loaded\n"
            "                        and a tampered one is refused. Models published, rejected or\n"
            "                        removed while serving are picked up within a second (no\n"
            "                        restart; logged and audited). Without --store and --model:\n"
            "                        $AIRLOCK_STORE, else ./var/airlock. The store directory also\n"
            "                        holds the API keys (keys.db) and the audit log (audit/), used\n"
            "                        whenever it exists, also with --model only.\n"
            "  --default-chat-format FMT  chat format for models with no template of their own\n"
            "\n"
            "chat replies (docs/server.md):\n"
            "  --reasoning-format F  split (default): <think> blocks and gpt-oss analysis go to\n"
            "                        reasoning_content / Ollama thinking; inline: left in content\n"
            "  --cors-origin ORIGIN  let browser pages from ORIGIN (e.g. http://localhost:3000)\n"
            "                        call the API (repeatable; \"*\": any origin); default: none\n"
            "\n"
            "guarantees (docs/guarantees.md):\n"
            "  --audit-content MODE  none (default: no prompt or completion text reaches disk),\n"
            "                        digest (their sha256) or full\n"
            "  --audit-stdout        also write every audit record to stdout as a JSON line\n"
            "                        (for a cluster's log pipeline; airlock audit verify\n"
            "                        --from FILE --pub KEY checks the copy)\n"
            "  --prefix-cache        keep a finished request's KV cache for prefix reuse (faster\n"
            "                        shared prompts); by default a slot's KV cache is zeroed when\n"
            "                        its request ends\n"
            "  --mlock               lock all memory (weights included) in RAM: never swapped\n"
            "\n"
            "model files (repeat the group for several models; each is loaded on first use):\n"
            "  --model PATH          a GGUF model file\n"
            "  --model-name NAME     the name clients use for the preceding --model\n"
            "                        (default: the file name without .gguf)\n"
            "  --chat-template FILE  Jinja2 chat template overriding the preceding --model's own\n"
            "                        (read and checked in the sandbox before serving)\n"
            "  --chat-format FMT     built-in chat format for the preceding --model\n"
            "                        (chatml, llama2, llama3, mistral, gemma, phi3); needed\n"
            "                        for chat on models without a chat template\n"
            "\n"
            "network:\n"
            "  --listen ADDR:PORT    numeric address to listen on (repeatable; default %s;\n"
            "                        port 0 picks a free one and prints it)\n"
            "  --unsafe-no-sandbox   do not confine the process (debugging only)\n"
            "  --sync REF            keep the store in step with a registry: REGISTRY/REPO:TAG, or\n"
            "                        REGISTRY/REPO for every tag (repeatable; first pass before\n"
            "                        loading, then a separate unsandboxed process polls; the\n"
            "                        server itself never gets the network; docs/deploy.md)\n"
            "  --sync-interval S     seconds between polls (default 60)\n"
            "  --sync-ca FILE        --sync-auth-file FILE: as airlock pull's --ca/--auth-file\n"
            "  --approved-by-policy  synced models get one approval by policy:HOST/REPO\n"
            "  --tls-cert FILE       serve HTTPS with this PEM certificate (chain); needs --tls-key\n"
            "  --tls-key FILE        the certificate's PEM private key (unencrypted)\n"
            "  --tls-client-ca FILE  require a client certificate signed by this PEM CA\n"
            "                        (needs --tls-cert and --tls-key)\n"
            "\n"
            "capacity:\n"
            "  --parallel N          sequences decoded together per model (default %u)\n"
            "  --ctx N               positions per sequence (default %u)\n"
            "  --batch N             tokens per forward pass: decoding tokens plus a chunk of\n"
            "                        prompt (default %u)\n"
            "  --prefill-chunk N     prompt tokens per pass while other sequences are\n"
            "                        decoding (unless --waiting-ratio catches up): smaller\n"
            "                        keeps streams flowing (default %u; 0: no limit)\n"
            "  --waiting-ratio R     while more than R sequences per decoding one wait for\n"
            "                        their prompt, passes fill --batch with prompt: the\n"
            "                        streams stall until the waiting catch up, for sooner\n"
            "                        first tokens and more throughput (default %g; 0: never)\n"
            "  --batch-wait MS       an idle server given a request waits this long for more\n"
            "                        before starting, so a burst's prompts go together\n"
            "                        (default %u; 0: start at once)\n"
            "  --threads N           compute threads (default: physical cores)\n"
            "  --queue N             requests waiting for a sequence before 429 (default %u)\n"
            "  --memory-budget BYTES weights + KV caches of loaded models; least recently used\n"
            "                        idle models are evicted to fit (default 0: unlimited)\n"
            "\n"
            "limits (each breach answers a 4xx in OpenAI's error shape):\n"
            "  --max-body BYTES      request body (default %zu)\n"
            "  --max-header BYTES    request headers (default %zu)\n"
            "  --max-json-depth N    JSON nesting (default %d)\n"
            "  --max-tokens N        most tokens a request generates; a larger max_tokens is cut\n"
            "                        to it (default %d)\n"
            "  --default-max-tokens N  when a request names none (default %d)\n"
            "  --conn-timeout SEC    idle connection timeout (default %u)\n"
            "  --request-timeout SEC whole generation (default %u; 0: none)\n"
            "  --max-connections N   open connections; beyond it a new one cuts the oldest\n"
            "                        still sending headers, or gets 503 (default %u)\n"
            "  --header-timeout SEC  request line + headers must arrive within (default %u;\n"
            "                        also the idle time between keep-alive requests; 0: off)\n"
            "  --body-min-rate B/S   slowest body accepted after that grace (default %u)\n"
            "  --max-conn-per-ip N   connections per client address (default %u)\n",
            d->listen[0], d->sched.n_parallel, d->sched.n_ctx, d->sched.n_batch, d->sched.n_prefill_busy,
            d->sched.waiting_ratio, d->sched.batch_wait_ms, d->sched.queue_cap,
            d->max_body_bytes, d->max_header_bytes, d->max_json_depth, d->max_tokens, d->default_max_tokens,
            d->conn_timeout_s, d->request_timeout_s, d->max_connections, d->header_timeout_s,
            d->body_min_rate, d->max_conn_per_ip);
}

/* ------------------------------------------------------------------ run */

/* What serve opens before the sandbox and closes at exit. */
typedef struct serve_state {
    al_store *store;      /* when serving store models (the gate uses it) */
    serve_reload *reload; /* with store: the catalogue watcher (hot reload) */
    al_keyring *keys;
    al_audit *audit;
    char *names[MAX_STORE_MODELS], *paths[MAX_STORE_MODELS];
    char *digests[MAX_STORE_MODELS], *mdigests[MAX_STORE_MODELS];
    size_t n_store;
    bool audit_stdout;    /* --audit-stdout: every audit record to stdout too */
    bool syncing;         /* --sync: a poller fills the store, which may still be empty */
} serve_state;

static void serve_state_free(serve_state *st)
{
    serve_reload_free(st->reload);
    al_audit_close(st->audit);
    al_keyring_close(st->keys);
    al_store_close(st->store);
    for (size_t i = 0; i < st->n_store; i++) {
        free(st->names[i]);
        free(st->paths[i]);
        free(st->digests[i]);
        free(st->mdigests[i]);
    }
    memset(st, 0, sizeof(*st));
}

/* Scheduler gate, called (outside the scheduler's lock, one call at a time)
 * before each use of a store model unless its cached pass still holds
 * (store_gate_version): it must still be published, with the same blob. */
static al_status store_gate(void *user, const char *name, const char *digest, al_error *err)
{
    serve_state *st = user;
    if (!digest || !st->store)
        return AL_OK; /* a --model file */
    char path[4096], hex[65];
    al_error e2 = {0};
    /* The watcher (serve_reload) removes a model no longer published
     * within a poll; this covers the moments in between. Not published:
     * AL_ERR_NOT_FOUND (404); a catalogue that cannot be read or another
     * blob: AL_ERR_STATE (503, try again). */
    al_status rs = al_store_resolve(st->store, name, path, sizeof(path), hex, &e2);
    if (rs == AL_ERR_NOT_FOUND || rs == AL_ERR_STATE)
        return al_err(err, AL_ERR_NOT_FOUND, "the model '%s' is no longer published in the store (%s)", name,
                      e2.msg);
    if (rs)
        return al_err(err, AL_ERR_STATE, "model '%s': cannot read the store's catalogue (%s)", name, e2.msg);
    if (strcmp(hex, digest))
        return al_err(err, AL_ERR_STATE, "model '%s' was republished with another blob, served in a moment",
                      name);
    return AL_OK;
}

/* What the gate's cache is keyed by: the catalogue's generation, which
 * any commit of another process (approve, reject, rm, a sync) moves; serve
 * itself never writes the catalogue. */
static al_status store_gate_version(void *user, uint64_t *version)
{
    serve_state *st = user;
    al_error e = {0};
    return st->store ? al_store_generation(st->store, version, &e) : AL_ERR_STATE;
}

static void serve_audit(serve_state *st, const char *action, int status, const char *detail)
{
    if (!st->audit)
        return;
    al_audit_event ev = {.actor = al_store_default_actor(), .client = "cli", .action = action,
                         .prompt_tokens = -1, .completion_tokens = -1, .status = status, .detail = detail};
    al_error err = {0};
    if (al_audit_append(st->audit, &ev, &err) == AL_OK)
        al_audit_flush(st->audit, &err);
}

/* The catalogue changed (called by the watcher's thread before it compares
 * the published models with those served): the one place where anything
 * that remembers the gate's answers must forget them. The scheduler's
 * cache is keyed by al_store_generation and forgets by itself, and
 * al_server_remove_model also clears it; nothing else is kept here. */
static void store_gate_changed(void *user)
{
    (void)user;
}

/* Reads a small PEM file (certificate or key) into a NUL-terminated buffer
 * (caller frees with pem_free). NULL with errno set on failure. */
#define MAX_PEM_BYTES (1u << 20)
static char *pem_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat sb;
    int e = 0;
    if (fstat(fileno(f), &sb))
        e = errno;
    else if (!S_ISREG(sb.st_mode))
        e = EISDIR; /* not a regular file */
    else if (sb.st_size <= 0)
        e = ENODATA;
    else if (sb.st_size > MAX_PEM_BYTES)
        e = EFBIG;
    if (e) {
        fclose(f);
        errno = e;
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    size_t got = buf ? fread(buf, 1, n, f) : 0;
    fclose(f);
    if (!buf || got != n) {
        if (buf) {
            explicit_bzero(buf, n);
            free(buf);
        }
        errno = buf ? EIO : ENOMEM;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* The TLS files of --tls-cert/--tls-key/--tls-client-ca, read before the
 * sandbox is entered (the server holds them in memory). */
typedef struct serve_tls {
    const char *file[3]; /* cert, key, client CA (argv, borrowed) */
    char *pem[3];        /* owned; the key is zeroed when freed */
    size_t len[3];
} serve_tls;

static void serve_tls_free(serve_tls *t)
{
    for (int i = 0; i < 3; i++) {
        if (t->pem[i]) {
            explicit_bzero(t->pem[i], t->len[i]);
            free(t->pem[i]);
        }
        t->pem[i] = NULL;
    }
}

/* 0, or the exit status after printing a message naming the file. */
static int serve_tls_load(serve_tls *t, al_server_config *cfg)
{
    static const char *const k_what[3] = {"TLS certificate", "TLS key", "TLS client CA"};
    if (!t->file[0] && !t->file[1] && !t->file[2])
        return 0;
    if (!t->file[0] || !t->file[1]) {
        cli_errorf("serve", "%s", t->file[2] && !t->file[0] && !t->file[1]
                                      ? "--tls-client-ca needs --tls-cert and --tls-key"
                                      : "TLS needs both --tls-cert FILE and --tls-key FILE");
        return 2;
    }
    for (int i = 0; i < 3; i++) {
        if (!t->file[i])
            continue;
        t->pem[i] = pem_read(t->file[i], &t->len[i]);
        if (!t->pem[i]) {
            cli_errorf("serve", "%s: cannot read the %s: %s", t->file[i], k_what[i], strerror(errno));
            return 1;
        }
    }
    cfg->tls_cert_pem = t->pem[0];
    cfg->tls_cert_file = t->file[0];
    cfg->tls_key_pem = t->pem[1];
    cfg->tls_key_file = t->file[1];
    cfg->tls_client_ca_pem = t->pem[2];
    cfg->tls_client_ca_file = t->file[2];
    return 0;
}

/* Runs the server until SIGINT or SIGTERM: the store or state directory
 * (models, API keys, audit log), binding, the sandbox, then the threads.
 * Long: the start-up order is the sandbox's argument (every file and socket
 * is opened before the sandbox is entered), so it stays one sequence that
 * reads top to bottom. */
static int serve_run(al_server_config *cfg, srv_model_cfg *models, size_t n_models, const char **listen,
                     size_t n_listen, const char *store_opt, al_audit_content content, bool no_sandbox,
                     bool use_mlock, serve_state *st)
{
    al_error err = {0};
    /* The state directory holds keys.db and audit/. Models come from it
     * with --store, or when no --model is given. */
    const char *state_dir = store_opt ? store_opt : al_store_default_dir();
    bool serve_store = store_opt || n_models == 0;
    struct stat sd;
    bool have_state = serve_store || stat(state_dir, &sd) == 0;
    if (serve_store) {
        if (al_store_open(state_dir, &st->store, &err)) {
            cli_errorf("serve", "store %s: %s", state_dir, err.msg);
            return 1;
        }
        /* Opened before the models are listed, so that no change is missed. */
        if (serve_reload_open(state_dir, &st->reload, &err)) {
            cli_errorf("serve", "store %s: %s", state_dir, err.msg);
            return 1;
        }
        al_model_row *rows = NULL;
        size_t n = 0;
        if (al_store_list_published(st->store, &rows, &n, &err)) {
            cli_errorf("serve", "store %s: %s", state_dir, err.msg);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (st->n_store == MAX_STORE_MODELS || n_models == MAX_MODELS) {
                fprintf(stderr, "airlock serve: more than %d models at start-up; the store watcher adds the "
                                "others a second after start\n", MAX_MODELS);
                break;
            }
            char ref[140], path[4096], hex[65];
            snprintf(ref, sizeof(ref), "%s:%s", rows[i].name, rows[i].tag);
            if (al_store_resolve(st->store, ref, path, sizeof(path), hex, &err)) {
                fprintf(stderr, "airlock serve: %s: %s (not served)\n", ref, err.msg);
                continue;
            }
            size_t k = st->n_store;
            st->names[k] = strdup(ref);
            st->paths[k] = strdup(path);
            st->digests[k] = strdup(hex);
            st->mdigests[k] = strdup(rows[i].digest);
            st->n_store++;
            if (!st->names[k] || !st->paths[k] || !st->digests[k] || !st->mdigests[k]) {
                free(rows);
                cli_errorf("serve", "out of memory");
                return 1;
            }
            serve_reload_track(st->reload, ref, hex, rows[i].digest);
            srv_model_cfg *mc = &models[n_models++];
            memset(mc, 0, sizeof(*mc));
            mc->path = st->paths[k];
            mc->name = st->names[k];
            mc->digest = st->digests[k];
            mc->manifest_digest = st->mdigests[k];
        }
        free(rows);
        cfg->sched.gate = store_gate;
        cfg->sched.gate_version = store_gate_version;
        cfg->sched.gate_user = st;
    }
    if (n_models == 0 && st->reload && st->syncing) {
        /* A replica whose registry had nothing for it yet (or was down):
         * it serves what the poller brings, without a restart. */
        fprintf(stderr, "airlock serve: the store %s has no published model yet: serving none until --sync "
                        "brings one (/ready answers 503 until then)\n", state_dir);
    } else if (n_models == 0) {
        cli_errorf("serve", "no model to serve: the store %s has no published model (airlock list shows what "
                            "is quarantined; airlock approve publishes), and no --model PATH.gguf was given",
                   state_dir);
        return 1;
    }
    if (have_state) {
        if (al_keyring_open(state_dir, &st->keys, &err)) {
            cli_errorf("serve", "API keys in %s: %s", state_dir, err.msg);
            return 1;
        }
        char adir[4200];
        snprintf(adir, sizeof(adir), "%s/audit", state_dir);
        if (al_audit_open(adir, &st->audit, &err)) {
            cli_errorf("serve", "audit log %s: %s", adir, err.msg);
            return 1;
        }
        if (al_audit_open_problem(st->audit))
            fprintf(stderr, "airlock serve: WARNING: the audit log was tampered with: %s "
                    "(recorded in the log; see 'airlock audit verify')\n",
                    al_audit_open_problem(st->audit));
        al_audit_set_content(st->audit, content);
        if (st->audit_stdout)
            al_audit_set_mirror(st->audit, stdout);
        cfg->keys = st->keys;
        cfg->audit = st->audit;
        cfg->audit_content = content;
    } else {
        fprintf(stderr, "airlock serve: no store at %s: no API keys and no audit log (use --store DIR)\n",
                state_dir);
    }
    if (cfg->sched.n_batch <= cfg->sched.n_parallel)
        cfg->sched.n_batch = cfg->sched.n_parallel + 1;
    if (n_listen) {
        cfg->listen = listen;
        cfg->n_listen = n_listen;
    }
    cfg->models = models;
    cfg->n_models = n_models;

    /* Signals are taken by sigwait below; block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (use_mlock) {
        /* MCL_FUTURE locks what is mapped later too (the weights are mapped
         * when a model is first used, after the sandbox has dropped
         * CAP_IPC_LOCK): from then on only RLIMIT_MEMLOCK counts, so it must
         * be unlimited. Lift it if we may; refuse clearly if we may not. */
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        setrlimit(RLIMIT_MEMLOCK, &rl);
        getrlimit(RLIMIT_MEMLOCK, &rl);
        if (rl.rlim_cur != RLIM_INFINITY) {
            cli_errorf("serve",
                       "--mlock: the memlock limit is %llu KiB and cannot be raised here; locked weights need "
                       "it unlimited (`ulimit -l unlimited`, LimitMEMLOCK=infinity in systemd, "
                       "`--ulimit memlock=-1` for a container)",
                       (unsigned long long)rl.rlim_cur / 1024);
            return 1;
        }
        if (mlockall(MCL_CURRENT | MCL_FUTURE)) {
            cli_errorf("serve", "--mlock: mlockall failed: %s", strerror(errno));
            return 1;
        }
        fprintf(stderr, "airlock serve: --mlock: all memory locked (weights are never swapped out)\n");
    }
    al_server *srv = NULL;
    if (al_server_bind(cfg, &srv, &err)) {
        cli_errorf("serve", "%s", err.msg);
        return 1;
    }
    char sbjson[1024] = "";
    if (no_sandbox) {
        fprintf(stderr, "\n*** %s ***\n\n", AL_SANDBOX_UNSAFE_WARNING);
        serve_audit(st, "serve.unsafe-no-sandbox", 0, "the sandbox is off");
    } else {
        const char *ro[MAX_MODELS];
        size_t n_ro = 0;
        for (size_t i = 0; i < n_models; i++)
            if (!models[i].digest) /* store blobs are under the store dir */
                ro[n_ro++] = models[i].path;
        const char *rw[1] = {state_dir};
        al_sandbox_params sp = {.ro_paths = ro, .n_ro = n_ro, .rw_paths = rw, .n_rw = have_state ? 1 : 0,
                                .allow_missing = true};
        al_sandbox_report rep;
        if (al_sandbox_enter(&sp, &rep, &err)) {
            cli_errorf("serve", "cannot enter the sandbox: %s (use --unsafe-no-sandbox to debug)", err.msg);
            al_server_free(srv);
            return 1;
        }
        fprintf(stderr, "airlock serve: sandbox: %s\n", rep.summary);
        if (al_sandbox_report_json(&rep, sbjson, sizeof(sbjson)) >= (int)sizeof(sbjson))
            sbjson[0] = 0;
        al_server_set_sandbox_json(srv, sbjson[0] ? sbjson : NULL);
    }
    if (al_server_start(srv, &err)) {
        cli_errorf("serve", "%s", err.msg);
        al_server_free(srv);
        return 1;
    }
    char detail[512];
    snprintf(detail, sizeof(detail), "%zu model(s), sandbox %s, audit content %s", n_models,
             no_sandbox ? "OFF" : "on",
             cfg->audit_content == AL_AUDIT_CONTENT_FULL ? "full"
             : cfg->audit_content == AL_AUDIT_CONTENT_DIGEST ? "digest" : "none");
    serve_audit(st, "serve.start", 0, detail);
    if (st->reload && serve_reload_start(st->reload, srv, st->audit, SERVE_RELOAD_INTERVAL_MS, store_gate_changed, st,
                                         &err))
        fprintf(stderr, "airlock serve: %s: models published or removed from now on need a restart\n", err.msg);
    for (size_t i = 0; i < al_server_n_listeners(srv); i++) {
        const char *spec = cfg->listen[i];
        const char *colon = strrchr(spec, ':');
        printf("airlock serve: listening on %s://%.*s:%u\n", al_server_tls(srv) ? "https" : "http",
               (int)(colon - spec), spec,
               (unsigned)al_server_port(srv, i));
    }
    for (size_t i = 0; i < n_models; i++) {
        if (models[i].digest)
            printf("airlock serve: model '%s' (published, sha256:%s) from the store %s\n", models[i].name,
                   models[i].manifest_digest, state_dir);
        else
            printf("airlock serve: model '%s' from %s\n", models[i].name ? models[i].name : "(file name)",
                   models[i].path);
    }
    if (st->keys) {
        /* Tell the truth about access: open only when no key is usable. */
        al_apikey_info *ki = NULL;
        size_t n_keys = 0, n_live = 0;
        al_error kerr;
        if (al_keyring_list(st->keys, &ki, &n_keys, &kerr) == AL_OK) {
            int64_t now = (int64_t)time(NULL);
            for (size_t i = 0; i < n_keys; i++)
                n_live += !ki[i].revoked && (!ki[i].expires_unix || ki[i].expires_unix > now);
            free(ki);
            if (n_keys == 0)
                printf("airlock serve: API keys from %s/keys.db (none defined: access is open)\n", state_dir);
            else
                printf("airlock serve: API keys from %s/keys.db (%zu defined, %zu usable: every request needs one)\n",
                       state_dir, n_keys, n_live);
        } else {
            printf("airlock serve: API keys from %s/keys.db (cannot list them: %s)\n", state_dir, kerr.msg);
        }
    }
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "airlock serve: signal %d, shutting down\n", sig);
    serve_reload_free(st->reload); /* it uses srv */
    st->reload = NULL;
    al_server_free(srv);
    serve_audit(st, "serve.stop", 0, NULL);
    return 0;
}

/* The integer options of `airlock serve` (name, range, field of cfg): sets
 * option a to value v. 0: set; 1: a bad value; -1: a is no such option. */
static int int_option(al_server_config *cfg, const char *a, const char *v)
{
    static const struct {
        const char *name;
        int64_t lo, hi;
    } k_ints[] = {
        {"--parallel", 1, 256},       {"--ctx", 16, 1 << 20},          {"--batch", 2, 65536},
        {"--threads", 0, 1024},       {"--queue", 1, 1 << 20},         {"--max-json-depth", 2, 10000},
        {"--max-tokens", 1, 1 << 20}, {"--default-max-tokens", 1, 1 << 20},
        {"--conn-timeout", 1, 86400}, {"--request-timeout", 0, 864000}, {"--max-connections", 1, 100000},
        {"--prefill-chunk", 0, 65536}, {"--batch-wait", 0, 10000},
        {"--header-timeout", 0, 3600}, {"--body-min-rate", 0, 1 << 30},
        {"--max-conn-per-ip", 1, 100000},
    };
    size_t k;
    for (k = 0; k < sizeof(k_ints) / sizeof(k_ints[0]); k++)
        if (!strcmp(a, k_ints[k].name))
            break;
    if (k == sizeof(k_ints) / sizeof(k_ints[0]))
        return -1;
    int64_t x;
    if (!cli_parse_i64(v, k_ints[k].lo, k_ints[k].hi, &x))
        return 1;
    switch (k) {
    case 0: cfg->sched.n_parallel = (uint32_t)x; break;
    case 1: cfg->sched.n_ctx = (uint32_t)x; break;
    case 2: cfg->sched.n_batch = (uint32_t)x; break;
    case 3: cfg->sched.n_threads = (int)x; break;
    case 4: cfg->sched.queue_cap = (uint32_t)x; break;
    case 5: cfg->max_json_depth = (int)x; break;
    case 6: cfg->max_tokens = (int32_t)x; break;
    case 7: cfg->default_max_tokens = (int32_t)x; break;
    case 8: cfg->conn_timeout_s = (unsigned)x; break;
    case 9: cfg->request_timeout_s = (unsigned)x; break;
    case 10: cfg->max_connections = (unsigned)x; break;
    case 11: cfg->sched.n_prefill_busy = (uint32_t)x; break;
    case 12: cfg->sched.batch_wait_ms = (uint32_t)x; break;
    case 13: cfg->header_timeout_s = (unsigned)x; break;
    case 14: cfg->body_min_rate = (unsigned)x; break;
    case 15: cfg->max_conn_per_ip = (unsigned)x; break;
    }
    return 0;
}

/* --chat-template FILE of model mc: read, checked that it parses, and kept
 * in mc (freed when serve returns; the scheduler keeps a copy). Returns 0,
 * or 1 when it cannot be read or does not parse (said on stderr). */
static int read_chat_template(srv_model_cfg *mc, const char *v)
{
    size_t n_src = 0;
    char *src = cli_read_file(v, &n_src);
    if (!src) {
        cli_errorf("serve", "%s: cannot read the chat template: %s", v, strerror(errno));
        return 1;
    }
    al_template *t = NULL;
    al_error terr = {0};
    if (al_template_parse(src, n_src, &t, &terr)) {
        cli_errorf("serve", "%s: %s", v, terr.msg);
        free(src);
        return 1;
    }
    al_template_free(t);
    free((char *)mc->chat_template);
    mc->chat_template = src;
    return 0;
}

/* `airlock serve`: the options, then serve_run. Long: one branch per option
 * (the integer options are a table: int_option). */
int cmd_serve(int argc, char **argv)
{
    al_server_config cfg = al_server_default_config();
    srv_model_cfg models[MAX_MODELS];
    size_t n_models = 0;
    const char *listen[AL_SERVER_MAX_LISTEN];
    size_t n_listen = 0;
    bool no_sandbox = false, use_mlock = false, audit_stdout = false;
    const char *store_opt = NULL, *audit_content = NULL;
    serve_tls tls = {0};
    const char *cors[16];
    size_t n_cors = 0;
    serve_sync_opts sync = {.interval_s = 60};
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
        if (!strcmp(a, "--audit-stdout")) {
            audit_stdout = true;
            continue;
        }
        if (!strcmp(a, "--prefix-cache")) {
            cfg.sched.prefix_cache = true;
            continue;
        }
        if (!strcmp(a, "--mlock")) {
            use_mlock = true;
            continue;
        }
        if (!strcmp(a, "--approved-by-policy")) {
            sync.approved_by_policy = true;
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
        } else if (!strcmp(a, "--chat-template")) {
            if (n_models == 0) {
                cli_errorf("serve", "--chat-template must follow the --model it applies to");
                return 2;
            }
            if (read_chat_template(&models[n_models - 1], v))
                return 1;
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
        } else if (!strcmp(a, "--tls-cert")) {
            tls.file[0] = v;
        } else if (!strcmp(a, "--tls-key")) {
            tls.file[1] = v;
        } else if (!strcmp(a, "--tls-client-ca")) {
            tls.file[2] = v;
        } else if (!strcmp(a, "--store")) {
            store_opt = v;
        } else if (!strcmp(a, "--sync")) {
            if (sync.n_refs == SERVE_SYNC_MAX) {
                cli_errorf("serve", "at most %d --sync references", SERVE_SYNC_MAX);
                return 2;
            }
            sync.refs[sync.n_refs++] = v;
        } else if (!strcmp(a, "--sync-ca")) {
            sync.ca_file = v;
        } else if (!strcmp(a, "--sync-auth-file")) {
            sync.auth_file = v;
        } else if (!strcmp(a, "--sync-interval")) {
            if (!cli_parse_i64(v, 1, 86400, &x))
                goto bad;
            sync.interval_s = (long)x;
        } else if (!strcmp(a, "--audit-content")) {
            audit_content = v;
        } else if (!strcmp(a, "--default-chat-format")) {
            if (!al_template_builtin(v)) {
                cli_errorf("serve", "unknown chat format '%s' (chatml, llama2, llama3, mistral, gemma, phi3)", v);
                return 2;
            }
            cfg.default_chat_format = v;
        } else if (!strcmp(a, "--reasoning-format")) {
            if (strcmp(v, "split") && strcmp(v, "inline")) {
                cli_errorf("serve", "--reasoning-format must be split or inline (got '%s')", v);
                return 2;
            }
            cfg.reasoning_inline = !strcmp(v, "inline");
        } else if (!strcmp(a, "--cors-origin")) {
            if (n_cors == sizeof(cors) / sizeof(*cors)) {
                cli_errorf("serve", "at most %zu --cors-origin", sizeof(cors) / sizeof(*cors));
                return 2;
            }
            if (strcmp(v, "*") && strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) {
                cli_errorf("serve", "--cors-origin takes an origin such as http://host:port, or \"*\" (got '%s')", v);
                return 2;
            }
            cors[n_cors++] = v;
        } else if (!strcmp(a, "--listen")) {
            if (n_listen == AL_SERVER_MAX_LISTEN) {
                cli_errorf("serve", "at most %d --listen", AL_SERVER_MAX_LISTEN);
                return 2;
            }
            listen[n_listen++] = v;
        } else if (!strcmp(a, "--waiting-ratio")) {
            if (!cli_parse_f32(v, &cfg.sched.waiting_ratio) || !(cfg.sched.waiting_ratio >= 0 &&
                                                                cfg.sched.waiting_ratio <= 1e6f))
                goto bad;
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
            int r = int_option(&cfg, a, v);
            if (r < 0) {
                cli_errorf("serve", "unknown option '%s' (see --help)", a);
                return 2;
            }
            if (r > 0)
                goto bad;
        }
        continue;
    bad:
        cli_errorf("serve", "bad value '%s' for %s", v, a);
        return 2;
    }
    al_audit_content content = AL_AUDIT_CONTENT_NONE;
    al_error err = {0};
    if (audit_content && al_audit_content_parse(audit_content, &content, &err)) {
        cli_errorf("serve", "%s", err.msg);
        return 2;
    }
    int trc = serve_tls_load(&tls, &cfg);
    if (trc) {
        serve_tls_free(&tls);
        return trc;
    }
    pid_t sync_pid = -1;
    if (sync.n_refs) {
        sync.store_dir = store_opt ? store_opt : al_store_default_dir();
        if (serve_sync_start(&sync, &sync_pid)) {
            serve_tls_free(&tls);
            return 1;
        }
    }
    serve_state st = {.audit_stdout = audit_stdout, .syncing = sync.n_refs > 0};
    cfg.cors_origins = cors;
    cfg.n_cors_origins = n_cors;
    int rc = serve_run(&cfg, models, n_models, listen, n_listen, store_opt, content, no_sandbox, use_mlock, &st);
    if (sync_pid > 0)
        kill(sync_pid, SIGTERM);
    serve_state_free(&st);
    serve_tls_free(&tls);
    for (size_t m = 0; m < (size_t)n_models; m++)
        free((char *)models[m].chat_template);
    return rc;
}
