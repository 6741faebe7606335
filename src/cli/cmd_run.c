/* cmd_run.c - `airlock run MODEL.gguf -p TEXT`: generate and stream text. */
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
            "usage: airlock run MODEL.gguf (-p TEXT | --prompt-file F) [options]\n\n"
            "Generates a continuation of the prompt and streams it to stdout as it is\n"
            "produced. Prompt and generation speed go to stderr.\n\n"
            "  -p, --prompt TEXT      the prompt\n"
            "  --prompt-file F        read the prompt from F (exact bytes; - for stdin)\n"
            "  -n, --n-predict N      tokens to generate at most (default 256)\n"
            "  --temp T               temperature; 0 = greedy (default 0.8)\n"
            "  --top-k K              keep the K most likely tokens; 0 = off (default 40)\n"
            "  --top-p P              nucleus sampling; 1 = off (default 0.95)\n"
            "  --min-p P              drop tokens below P x the best; 0 = off (default 0.05)\n"
            "  --repeat-penalty R     penalise the last 64 tokens; 1 = off (default 1)\n"
            "  --seed S               fixed seed: same seed, same output (default: random)\n"
            "  --stop S               stop when the output contains S (repeatable, up to 16)\n"
            "  --special              parse special tokens (<|im_start|>, ...) in the prompt\n"
            "  --print-ids            print generated token ids (one line) instead of text\n"
            "  --ctx N                context size (default: prompt + n, at most the model's)\n"
            "  --threads N            worker threads (default: physical cores)\n"
            "  --exact                run the plain-C reference path (slow)\n"
            "Generation stops at max tokens or at the model's end-of-generation token.\n");
}

/* `airlock run`: options, model and context, the prompt, then generation
 * printed as it goes. Long: a getopt switch with one case per option, then
 * one straight sequence of steps of a few lines each. */
int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"prompt", required_argument, 0, 'p'},   {"prompt-file", required_argument, 0, 'f'},
        {"n-predict", required_argument, 0, 'n'}, {"temp", required_argument, 0, 'T'},
        {"top-k", required_argument, 0, 'k'},    {"top-p", required_argument, 0, 'P'},
        {"min-p", required_argument, 0, 'm'},    {"repeat-penalty", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},     {"special", no_argument, 0, 'S'},
        {"print-ids", no_argument, 0, 'i'},      {"ctx", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'},  {"exact", no_argument, 0, 'x'},
        {"stop", required_argument, 0, 'X'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *prompt = NULL, *prompt_file = NULL;
    int64_t n_predict = 256, n_ctx = 0, threads = 0, seed = -1, top_k;
    bool special = false, print_ids = false, exact = false;
    const char *stops[16];
    size_t n_stops = 0;
    al_sampler_params sp = al_sampler_default_params();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:f:n:t:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'p': prompt = optarg; break;
        case 'f': prompt_file = optarg; break;
        case 'n': ok = cli_parse_i64(optarg, 0, 1 << 20, &n_predict); break;
        case 'T': ok = cli_parse_f32(optarg, &sp.temperature) && sp.temperature >= 0; break;
        case 'k': ok = cli_parse_i64(optarg, 0, 1 << 24, &top_k); sp.top_k = (int32_t)top_k; break;
        case 'P': ok = cli_parse_f32(optarg, &sp.top_p) && sp.top_p >= 0 && sp.top_p <= 1; break;
        case 'm': ok = cli_parse_f32(optarg, &sp.min_p) && sp.min_p >= 0 && sp.min_p <= 1; break;
        case 'r': ok = cli_parse_f32(optarg, &sp.repeat_penalty) && sp.repeat_penalty > 0; break;
        case 's': ok = cli_parse_i64(optarg, 0, INT64_MAX, &seed); break;
        case 'S': special = true; break;
        case 'i': print_ids = true; break;
        case 'c': ok = cli_parse_i64(optarg, 1, 1 << 20, &n_ctx); break;
        case 't': ok = cli_parse_i64(optarg, 1, 512, &threads); break;
        case 'x': exact = true; break;
        case 'X':
            ok = n_stops < 16 && optarg[0];
            if (ok)
                stops[n_stops++] = optarg;
            break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
        if (!ok) {
            cli_errorf("run", "bad value '%s' for option %s", optarg, argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1 || (!prompt == !prompt_file)) {
        if (optind == argc - 1)
            cli_errorf("run", "give exactly one of -p TEXT or --prompt-file F");
        help(stderr);
        return 2;
    }
    const char *model_path = argv[optind];
    char *text = NULL;
    size_t n_text;
    if (prompt_file) {
        text = cli_read_file(prompt_file, &n_text);
        if (!text) {
            cli_errorf("run", "%s: cannot read: %s", prompt_file, strerror(errno));
            return 1;
        }
    } else {
        n_text = strlen(prompt);
    }
    const char *ptext = text ? text : prompt;
    sp.seed = seed >= 0 ? (uint64_t)seed : AL_SEED_RANDOM;

    int rc = 1;
    al_error err = {0};
    al_model *m = NULL;
    al_context *ctx = NULL;
    al_gen *gen = NULL;
    int32_t *toks = NULL, *pos = NULL;
    bool *want = NULL;
    double t0 = cli_now();
    if (al_model_load(model_path, NULL, &m, &err)) {
        cli_errorf("run", "%s", err.msg);
        goto done;
    }
    const al_vocab *v = al_model_vocab(m);
    al_model_info info;
    al_model_get_info(m, &info);
    size_t n_tok = 0;
    al_tokenize(v, ptext, n_text, true, special, NULL, 0, &n_tok, NULL);
    if (n_tok == 0) {
        cli_errorf("run", "the prompt has no tokens");
        goto done;
    }
    if (n_ctx == 0) {
        n_ctx = (int64_t)n_tok + n_predict;
        if (n_ctx > info.n_ctx_train)
            n_ctx = info.n_ctx_train;
    }
    if ((int64_t)n_tok >= n_ctx) {
        cli_errorf("run", "the prompt has %zu tokens but the context holds %lld", n_tok, (long long)n_ctx);
        goto done;
    }
    toks = malloc(n_tok * sizeof(int32_t));
    pos = malloc(n_tok * sizeof(int32_t));
    want = calloc(n_tok, sizeof(bool));
    if (!toks || !pos || !want) {
        cli_errorf("run", "out of memory");
        goto done;
    }
    if (al_tokenize(v, ptext, n_text, true, special, toks, n_tok, &n_tok, &err)) {
        cli_errorf("run", "%s", err.msg);
        goto done;
    }
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_threads = (int)threads;
    cp.exact = exact;
    if (al_context_new(m, &cp, &ctx, &err)) {
        cli_errorf("run", "%s", err.msg);
        goto done;
    }
    al_gen_params gp = al_gen_default_params();
    gp.sampler = sp;
    gp.max_tokens = (int32_t)n_predict;
    if (!print_ids) { /* ids are printed as sampled: no text to stop on */
        gp.stops = stops;
        gp.n_stops = n_stops;
    }
    gen = al_gen_new(m, &gp, &err);
    if (!gen) {
        cli_errorf("run", "%s", err.msg);
        goto done;
    }
    al_gen_accept_prompt(gen, toks, n_tok);
    for (size_t i = 0; i < n_tok; i++)
        pos[i] = (int32_t)i;
    want[n_tok - 1] = true;
    double t_load = cli_now();
    al_batch b = {(int32_t)n_tok, toks, pos, NULL, want};
    if (al_decode(ctx, &b, &err)) {
        cli_errorf("run", "%s", err.msg);
        goto done;
    }
    const float *logits = al_get_logits(ctx, (int32_t)n_tok - 1);
    double t_prompt = cli_now();
    int64_t n_gen = 0;
    int32_t p = (int32_t)n_tok;
    bool want1 = true;
    double t_first = 0;
    while (n_gen < n_predict) {
        al_gen_token out;
        if (al_gen_sample(gen, logits, &out, &err)) {
            cli_errorf("run", "%s", err.msg);
            goto done;
        }
        if (n_gen == 0)
            t_first = cli_now();
        if (out.end != AL_GEN_END_EOG) {
            n_gen++;
            if (print_ids)
                printf(n_gen > 1 ? " %d" : "%d", out.token);
        }
        if (!print_ids && out.n_text)
            fwrite(out.text, 1, out.n_text, stdout);
        fflush(stdout);
        if (out.end != AL_GEN_CONTINUE || p >= n_ctx)
            break;
        int32_t tok = out.token;
        al_batch b1 = {1, &tok, &p, NULL, &want1};
        if (al_decode(ctx, &b1, &err)) {
            cli_errorf("run", "%s", err.msg);
            goto done;
        }
        logits = al_get_logits(ctx, 0);
        p++;
    }
    /* the held-back text when the generation did not end by itself (the
     * context is full); nothing when it did */
    size_t n_rest;
    const char *rest = al_gen_finish(gen, &n_rest);
    if (!print_ids && n_rest)
        fwrite(rest, 1, n_rest, stdout);
    printf("\n");
    double t_end = cli_now();
    fprintf(stderr, "\nairlock run: load %.0f ms | prompt %zu tokens, %.1f tok/s | generated %lld tokens, %.1f tok/s "
                    "| first token after %.0f ms\n",
            (t_load - t0) * 1e3, n_tok, (double)n_tok / (t_prompt - t_load), (long long)n_gen,
            n_gen > 1 ? (double)(n_gen - 1) / (t_end - t_first) : 0.0, (t_first - t0) * 1e3);
    rc = 0;
done:
    al_gen_free(gen);
    al_context_free(ctx);
    al_model_free(m);
    free(toks);
    free(pos);
    free(want);
    free(text);
    return rc;
}
