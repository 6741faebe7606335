/* main.c - the airlock command: dispatches to a subcommand. */
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command k_commands[] = {
    {"info", cmd_info, "print a GGUF model's architecture, shapes, types and sha256"},
    {"tokenize", cmd_tokenize, "tokenize stdin with a model's (or vocab file's) tokenizer"},
    {"bench-tokenize", cmd_bench_tokenize, "measure tokenization speed (MB/s) on a text file"},
    {"logits", cmd_logits, "evaluate a prompt and write the last position's logits"},
    {"embed", cmd_embed, "write a text's pooled, L2-normalised embedding (float32)"},
    {"rerank", cmd_rerank, "order documents by relevance to a query"},
    {"run", cmd_run, "generate text from a prompt, streamed to stdout"},
    {"bench", cmd_bench, "measure prompt and generation speed (like llama-bench)"},
    {"keygen", cmd_keygen, "make an Ed25519 signing key pair for bundles"},
    {"bundle", cmd_bundle, "write a signed bundle of a model (connected side)"},
    {"trust", cmd_trust, "pin, list or remove publisher keys (trust add|list|rm)"},
    {"import", cmd_import, "verify, copy and scan a bundle into quarantine"},
    {"approve", cmd_approve, "approve a quarantined model (publishes per policy)"},
    {"reject", cmd_reject, "reject a model with a reason"},
    {"reopen", cmd_reopen, "lift a rejection so that the bundle may be imported again"},
    {"policy", cmd_policy, "show or set the approval policy"},
    {"list", cmd_list, "list the models in the store"},
    {"show", cmd_show, "show a model's state, digest, signer, approvals, scan report"},
    {"rm", cmd_rm, "remove a model from the store"},
    {"gc", cmd_gc, "delete unreferenced blobs"},
    {"verify", cmd_verify, "re-hash the store; report tampered, missing, stray blobs"},
    {"export", cmd_export, "write a published model as a bundle again"},
    {"push", cmd_push, "publish a model to an OCI registry (REGISTRY/REPO[:TAG])"},
    {"pull", cmd_pull, "fetch a model from an OCI registry into quarantine"},
    {"doctor", cmd_doctor, "report the security posture: sandbox, servers, store, host"},
    {"apikey", cmd_apikey, "create, list or revoke API keys"},
    {"audit", cmd_audit, "verify, export or tail the tamper-evident audit log"},
    {"sandbox-selftest", cmd_sandbox_selftest, "enter the sandbox and try to reach ADDR:PORT (must fail)"},
    {"serve", cmd_serve, "serve the OpenAI and Ollama APIs (continuous batching)"},
    {"template", cmd_template, "render a chat template for a conversation"},
    /* more subcommands here */
};

void cli_errorf(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "airlock %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *f)
{
    fprintf(f, "airlock %s - an air-gapped LLM server\n\n", al_version());
    fprintf(f, "usage: airlock COMMAND [ARGS...]   (airlock COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(k_commands) / sizeof(k_commands[0]); i++)
        fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("airlock %s\n", al_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof(k_commands) / sizeof(k_commands[0]); i++)
        if (!strcmp(argv[1], k_commands[i].name))
            return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "airlock: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
