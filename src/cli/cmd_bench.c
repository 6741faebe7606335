/* cmd_bench.c - `airlock bench MODEL.gguf`: prompt and generation speed,
 * measured like llama-bench (pp: one batch of -p tokens on an empty cache;
 * tg: -n tokens generated one at a time), as a markdown table. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f, "usage: airlock bench MODEL.gguf [-p N] [-n N] [-r N] [-t N] [--batch N] [--seqs N]\n\n"
               "  -p N        prompt tokens processed in batches (default 512; 0 skips)\n"
               "  -n N        tokens generated one by one (default 128; 0 skips)\n"
               "  -r N        repetitions; mean +- sd are reported (default 5)\n"
               "  -t N        threads (default: physical cores)\n"
               "  --batch N   tokens per forward pass for the prompt (default 512)\n"
               "  --seqs N    generate for N sequences at once, one token each per forward pass\n"
               "              (batched decoding as a server does it; t/s counts all N; default 1)\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Mean, sample standard deviation and median of v[0..n) (v is sorted). */
static void stats(double *v, int n, double *mean, double *sd, double *median)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    *median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0.0;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"batch", required_argument, 0, 'b'}, {"seqs", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int64_t n_prompt = 512, n_gen = 128, reps = 5, threads = 0, n_batch = 512, n_seqs = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:n:r:t:h", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'p': ok = cli_parse_i64(optarg, 0, 1 << 16, &n_prompt); break;
        case 'n': ok = cli_parse_i64(optarg, 0, 1 << 16, &n_gen); break;
        case 'r': ok = cli_parse_i64(optarg, 1, 1000, &reps); break;
        case 't': ok = cli_parse_i64(optarg, 1, 512, &threads); break;
        case 'b': ok = cli_parse_i64(optarg, 1, 1 << 16, &n_batch); break;
        case 's': ok = cli_parse_i64(optarg, 1, 256, &n_seqs); break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
        if (!ok) {
            cli_errorf("bench", "bad value '%s'", optarg);
            return 2;
        }
    }
    if (optind != argc - 1) {
        help(stderr);
        return 2;
    }
    const char *path = argv[optind];
    al_error err;
    al_model *m;
    double t0 = cli_now();
    if (al_model_load(path, NULL, &m, &err)) {
        cli_errorf("bench", "%s", err.msg);
        return 1;
    }
    double t_load = cli_now() - t0;
    al_model_info info;
    al_model_get_info(m, &info);
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)(n_prompt > n_gen ? n_prompt : n_gen) + 1;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_threads = (int)threads;
    cp.n_seq = (uint32_t)n_seqs;
    if (cp.n_batch < (uint32_t)n_seqs)
        cp.n_batch = (uint32_t)n_seqs;
    al_context *ctx;
    if (al_context_new(m, &cp, &ctx, &err)) {
        cli_errorf("bench", "%s", err.msg);
        al_model_free(m);
        return 1;
    }
    int64_t n_max = n_prompt > n_gen ? n_prompt : n_gen;
    int32_t *toks = malloc((size_t)(n_max + 1) * sizeof(int32_t));
    int32_t *pos = malloc((size_t)(n_max + 1) * sizeof(int32_t));
    /* one generation step of all sequences */
    int32_t *st = malloc((size_t)n_seqs * sizeof(int32_t)), *sp = malloc((size_t)n_seqs * sizeof(int32_t));
    int32_t *ss = malloc((size_t)n_seqs * sizeof(int32_t));
    bool *sw = malloc((size_t)n_seqs * sizeof(bool));
    bool *want = calloc((size_t)n_max + 1, sizeof(bool));
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    if (!toks || !pos || !want || !pp || !tg || !st || !sp || !ss || !sw) {
        cli_errorf("bench", "out of memory");
        return 1;
    }
    uint64_t rng = 12345;
    for (int64_t i = 0; i <= n_max; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % info.n_vocab);
        pos[i] = (int32_t)i;
    }
    int rc = 0;
    /* One warm-up pass touches every weight page. */
    want[0] = true;
    al_batch wb = {1, toks, pos, NULL, want};
    al_decode(ctx, &wb, &err);
    for (int64_t r = 0; r < reps && !rc; r++) {
        if (n_prompt > 0) {
            al_kv_seq_truncate(ctx, 0, 0);
            memset(want, 0, (size_t)n_prompt * sizeof(bool));
            want[n_prompt - 1] = true;
            al_batch b = {(int32_t)n_prompt, toks, pos, NULL, want};
            double t = cli_now();
            if (al_decode(ctx, &b, &err)) {
                cli_errorf("bench", "%s", err.msg);
                rc = 1;
                break;
            }
            pp[r] = (double)n_prompt / (cli_now() - t);
        }
        if (n_gen > 0) {
            for (int64_t q = 0; q < n_seqs; q++)
                al_kv_seq_truncate(ctx, (int32_t)q, 0);
            double t = cli_now();
            for (int64_t i = 0; i < n_gen; i++) {
                for (int64_t q = 0; q < n_seqs; q++) {
                    st[q] = toks[(i + q) % n_max];
                    sp[q] = (int32_t)i;
                    ss[q] = (int32_t)q;
                    sw[q] = true;
                }
                al_batch b = {(int32_t)n_seqs, st, sp, ss, sw};
                if (al_decode(ctx, &b, &err)) {
                    cli_errorf("bench", "%s", err.msg);
                    rc = 1;
                    break;
                }
            }
            tg[r] = (double)(n_gen * n_seqs) / (cli_now() - t);
        }
    }
    if (!rc) {
        printf("model: %s (%s, %.2f M params, %.1f MiB, %s), load %.0f ms, %d threads\n", path, info.arch,
               (double)info.n_params / 1e6, (double)info.file_bytes / 1048576.0, info.type_mix, t_load * 1e3,
               cp.n_threads > 0 ? cp.n_threads : al_physical_cores_count());
        printf("kernels: %s\n\n", al_kernel_isa());
        printf("| model | size | test | t/s (mean ± sd) | median |\n|---|---|---|---|---|\n");
        double mean, sd, median;
        if (n_prompt > 0) {
            stats(pp, (int)reps, &mean, &sd, &median);
            printf("| %s | %.1f MiB | pp%lld | %.2f ± %.2f | %.2f |\n", info.name[0] ? info.name : info.arch,
                   (double)info.file_bytes / 1048576.0, (long long)n_prompt, mean, sd, median);
        }
        if (n_gen > 0) {
            stats(tg, (int)reps, &mean, &sd, &median);
            char test[48];
            if (n_seqs > 1)
                snprintf(test, sizeof(test), "tg%lld x%lld seqs", (long long)n_gen, (long long)n_seqs);
            else
                snprintf(test, sizeof(test), "tg%lld", (long long)n_gen);
            printf("| %s | %.1f MiB | %s | %.2f ± %.2f | %.2f |\n", info.name[0] ? info.name : info.arch,
                   (double)info.file_bytes / 1048576.0, test, mean, sd, median);
        }
    }
    free(toks);
    free(pos);
    free(st);
    free(sp);
    free(ss);
    free(sw);
    free(want);
    free(pp);
    free(tg);
    al_context_free(ctx);
    al_model_free(m);
    return rc;
}
