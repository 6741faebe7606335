/* cmd_logits.c - `airlock logits MODEL.gguf --prompt-file F --out OUT.f32 [--exact]`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: airlock logits MODEL.gguf --prompt-file F --out OUT.f32 [--exact] [--threads N]\n\n"
            "Tokenizes F exactly as written (BOS added as the vocab asks, special tokens\n"
            "not parsed), evaluates it in one batch, writes the n_vocab float32 logits of\n"
            "the last position (little-endian) to OUT.f32 and prints the prompt token ids\n"
            "on one line.\n\n"
            "  --exact       plain-C reference path: weights dequantized exactly to F32,\n"
            "                F32 activations and KV cache (the oracle for the fast kernels)\n"
            "  --threads N   worker threads (default: physical cores)\n");
}

int cmd_logits(int argc, char **argv)
{
    static const struct option opts[] = {
        {"prompt-file", required_argument, 0, 'f'}, {"out", required_argument, 0, 'o'},
        {"exact", no_argument, 0, 'x'},            {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0},
    };
    const char *prompt_file = NULL, *out_path = NULL;
    bool exact = false;
    int64_t threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:xt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': prompt_file = optarg; break;
        case 'o': out_path = optarg; break;
        case 'x': exact = true; break;
        case 't':
            if (!cli_parse_i64(optarg, 1, 512, &threads)) {
                cli_errorf("logits", "--threads wants a number from 1 to 512, not '%s'", optarg);
                return 2;
            }
            break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !prompt_file || !out_path) {
        help(stderr);
        return 2;
    }
    const char *model_path = argv[optind];
    size_t n_text = 0;
    char *text = cli_read_file(prompt_file, &n_text);
    if (!text) {
        cli_errorf("logits", "%s: cannot read: %s", prompt_file, strerror(errno));
        return 1;
    }
    al_error err = {0};
    al_model *m = NULL;
    al_context *ctx = NULL;
    int32_t *toks = NULL;
    int32_t *pos = NULL;
    bool *want = NULL;
    int rc = 1;
    if (al_model_load(model_path, NULL, &m, &err)) {
        cli_errorf("logits", "%s", err.msg);
        goto done;
    }
    const al_vocab *v = al_model_vocab(m);
    size_t n_tok = 0;
    al_tokenize(v, text, n_text, true, false, NULL, 0, &n_tok, NULL);
    if (n_tok == 0) {
        cli_errorf("logits", "%s: the prompt has no tokens", prompt_file);
        goto done;
    }
    toks = malloc(n_tok * sizeof(int32_t));
    pos = malloc(n_tok * sizeof(int32_t));
    want = calloc(n_tok, sizeof(bool));
    if (!toks || !pos || !want) {
        cli_errorf("logits", "out of memory");
        goto done;
    }
    if (al_tokenize(v, text, n_text, true, false, toks, n_tok, &n_tok, &err)) {
        cli_errorf("logits", "%s", err.msg);
        goto done;
    }
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)n_tok;
    cp.n_batch = (uint32_t)n_tok;
    cp.exact = exact;
    cp.n_threads = (int)threads;
    if (al_context_new(m, &cp, &ctx, &err)) {
        cli_errorf("logits", "%s", err.msg);
        goto done;
    }
    for (size_t i = 0; i < n_tok; i++)
        pos[i] = (int32_t)i;
    want[n_tok - 1] = true;
    al_batch b = {(int32_t)n_tok, toks, pos, NULL, want};
    if (al_decode(ctx, &b, &err)) {
        cli_errorf("logits", "%s", err.msg);
        goto done;
    }
    const float *logits = al_get_logits(ctx, (int32_t)n_tok - 1);
    al_model_info info;
    al_model_get_info(m, &info);
    if (!cli_write_f32("logits", out_path, logits, info.n_vocab))
        goto done;
    cli_print_ids(toks, n_tok);
    rc = 0;
done:
    free(toks);
    free(pos);
    free(want);
    free(text);
    al_context_free(ctx);
    al_model_free(m);
    return rc;
}
