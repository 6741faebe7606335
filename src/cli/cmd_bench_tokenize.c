/* cmd_bench_tokenize.c - `airlock bench-tokenize VOCAB.gguf FILE [--runs N]`:
 * tokenization speed, in process, best of N runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f, "usage: airlock bench-tokenize VOCAB.gguf FILE [--runs N] [--special]\n\n"
               "Tokenizes the whole of FILE N times (default 5) with the tokenizer of\n"
               "VOCAB.gguf (a model or a vocab-only file), in this process, and prints\n"
               "the best run's speed in MB/s (10^6 bytes of input per second) by the\n"
               "wall clock and by the thread's CPU time (steadier on a shared machine),\n"
               "and the token count. Loading the vocab is not timed. Every run must give\n"
               "the same tokens, else the command fails.\n\n"
               "  --runs N    number of timed runs (1..1000)\n"
               "  --special   add BOS/EOS and parse special tokens, as `tokenize --special`\n");
}

static double now_s(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int cmd_bench_tokenize(int argc, char **argv)
{
    const char *paths[2] = {0};
    int n_paths = 0;
    int64_t runs = 5;
    bool special = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            if (!cli_parse_i64(argv[++i], 1, 1000, &runs)) {
                cli_errorf("bench-tokenize", "--runs wants a number from 1 to 1000, not '%s'", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--special")) {
            special = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_errorf("bench-tokenize", "unknown option '%s'", argv[i]);
            help(stderr);
            return 2;
        } else if (n_paths < 2) {
            paths[n_paths++] = argv[i];
        } else {
            cli_errorf("bench-tokenize", "unexpected argument '%s'", argv[i]);
            help(stderr);
            return 2;
        }
    }
    if (n_paths != 2) {
        help(stderr);
        return 2;
    }
    al_error err = {0};
    al_vocab *v = NULL;
    if (al_vocab_load(paths[0], &v, &err)) {
        cli_errorf("bench-tokenize", "%s", err.msg);
        return 1;
    }
    size_t n_text = 0;
    char *text = cli_read_file(paths[1], &n_text);
    if (!text) {
        cli_errorf("bench-tokenize", "cannot read %s: %s", paths[1], strerror(errno));
        al_vocab_free(v);
        return 1;
    }
    /* an untimed first call counts the tokens */
    size_t cap = 0;
    al_status st0 = al_tokenize(v, text, n_text, special, special, NULL, 0, &cap, &err);
    if (st0 && st0 != AL_ERR_LIMIT) {
        cli_errorf("bench-tokenize", "%s: %s", paths[1], err.msg);
        free(text);
        al_vocab_free(v);
        return 1;
    }
    cap = cap ? cap : 1;
    int32_t *toks = malloc(cap * sizeof(int32_t)), *first = malloc(cap * sizeof(int32_t));
    int rc = 0;
    double best = 1e300, best_cpu = 1e300;
    size_t n_first = 0;
    for (int64_t r = 0; r < runs && toks && first && !rc; r++) {
        size_t n_tok = 0;
        double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        al_status st = al_tokenize(v, text, n_text, special, special, toks, cap, &n_tok, &err);
        double dt = now_s(CLOCK_MONOTONIC) - t0, dc = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        if (dc < best_cpu)
            best_cpu = dc;
        if (st) {
            cli_errorf("bench-tokenize", "%s: %s", paths[1], err.msg);
            rc = 1;
            break;
        }
        if (r == 0) {
            memcpy(first, toks, n_tok * sizeof(int32_t));
            n_first = n_tok;
        } else if (n_tok != n_first || memcmp(first, toks, n_tok * sizeof(int32_t))) {
            cli_errorf("bench-tokenize", "run %lld gave other tokens than run 1", (long long)r + 1);
            rc = 1;
        }
        if (dt < best)
            best = dt;
    }
    if (!toks || !first) {
        cli_errorf("bench-tokenize", "out of memory");
        rc = 1;
    }
    if (!rc) {
        const char *pre = al_vocab_pre_name(v);
        printf("%s: %zu bytes -> %zu tokens; best of %lld: %.3f s, %.2f MB/s; CPU time %.3f s, %.2f MB/s "
               "(tokenizer %s%s%s)\n",
               paths[0], n_text, n_first, (long long)runs, best, best > 0 ? (double)n_text / best / 1e6 : 0.0,
               best_cpu, best_cpu > 0 ? (double)n_text / best_cpu / 1e6 : 0.0, al_vocab_type_name(v),
               pre ? ", pre " : "", pre ? pre : "");
    }
    free(toks);
    free(first);
    free(text);
    al_vocab_free(v);
    return rc;
}
