/* cmd_info.c - `airlock info MODEL.gguf`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"

static void help(FILE *f)
{
    fprintf(f, "usage: airlock info MODEL.gguf [--check-tensors] [--ctx N]\n\n"
               "Validates a GGUF model and prints its architecture, parameter count,\n"
               "context length, layers/heads/dims, tensor type mix, tokenizer, whether\n"
               "it carries a chat template, and the file's sha256.\n"
               "  --check-tensors  also dequantize every tensor and refuse NaN/infinity (slow)\n"
               "  --ctx N          print the F16 KV cache bytes of one sequence of N positions\n"
               "                   (default: the training context)\n\n"
               "Supported architectures: %s.\n", al_model_architectures());
}

int cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        help(stdout);
        return 0;
    }
    bool check = false;
    long ctx = 0;
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--check-tensors"))
            check = true;
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc && (ctx = strtol(argv[i + 1], &end, 10)) > 0 &&
                 ctx <= (1l << 20) && *end == 0)
            i++;
        else {
            help(stderr);
            return 2;
        }
    }
    if (argc < 2 || argv[1][0] == '-') {
        help(stderr);
        return 2;
    }
    const char *path = argv[1];
    al_error err = {0};
    al_model *m = NULL;
    al_model_params mp = al_model_default_params();
    mp.check_tensors = check;
    mp.pack_weights = false; /* inspecting, not running */
    if (al_model_load(path, &mp, &m, &err)) {
        cli_errorf("info", "%s", err.msg);
        return 1;
    }
    char hex[65] = {0};
    if (al_sha256_file(path, hex, &err)) {
        cli_errorf("info", "%s", err.msg);
        al_model_free(m);
        return 1;
    }
    al_model_info in;
    al_model_get_info(m, &in);
    printf("file:           %s\n", path);
    printf("sha256:         %s\n", hex);
    printf("size:           %llu bytes (%.1f MiB)\n", (unsigned long long)in.file_bytes,
           (double)in.file_bytes / (1024.0 * 1024.0));
    printf("name:           %s\n", in.name[0] ? in.name : "(none)");
    printf("architecture:   %s\n", in.arch);
    printf("parameters:     %llu (%.2f M)\n", (unsigned long long)in.n_params, (double)in.n_params / 1e6);
    printf("context length: %u\n", in.n_ctx_train);
    printf("layers:         %u\n", in.n_layer);
    printf("embedding:      %u\n", in.n_embd);
    printf("heads:          %u (kv %u, head dim %u)\n", in.n_head, in.n_head_kv, in.head_dim);
    printf("feed-forward:   %u\n", in.n_ff);
    if (in.n_expert) {
        printf("experts:        %u per layer, %u used per token\n", in.n_expert, in.n_expert_used);
        printf("active params:  %llu (%.2f M) per token\n", (unsigned long long)in.n_params_active,
               (double)in.n_params_active / 1e6);
    }
    printf("rope base:      %g\n", (double)in.rope_base);
    printf("norm eps:       %g\n", (double)in.norm_eps);
    if (in.can_generate)
        printf("output:         %s\n", in.tied_output ? "tied to token embedding" : "separate");
    else
        printf("output:         none (%s: embeds%s, cannot generate)\n", in.causal ? "causal" : "bidirectional encoder",
               in.n_cls_out ? " and ranks" : "");
    printf("pooling:        %s%s\n", al_pooling_name(al_model_pooling(m)),
           in.pooling == AL_POOLING_UNSPECIFIED ? " (the file names none: mean)" : "");
    const uint32_t n_ctx = ctx > 0 ? (uint32_t)ctx : in.n_ctx_train;
    const uint64_t kv = al_model_kv_bytes(m, n_ctx, 1);
    printf("kv cache:       %llu bytes (%.1f MiB) for %u positions, F16, one sequence\n", (unsigned long long)kv,
           (double)kv / (1024.0 * 1024.0), n_ctx);
    printf("tensor types:   %s\n", in.type_mix);
    printf("vocab:          %s, %d tokens (embedding rows %u)\n", in.vocab_type,
           al_vocab_n_tokens(al_model_vocab(m)), in.n_vocab);
    const char *terr = al_model_template_error(m);
    if (terr) {
        /* The message quotes the file: no control bytes to the terminal. */
        printf("chat template:  present, DOES NOT PARSE: ");
        for (const char *q = terr; *q; q++)
            putchar(((unsigned char)*q < 32 || *q == 127) ? '?' : *q);
        putchar('\n');
    }
    else
        printf("chat template:  %s\n", in.has_chat_template ? "present (parses)" : "absent");
    al_model_free(m);
    return 0;
}
