/* cmd_bench.c - `airlock bench MODEL.gguf`: prompt and generation speed,
 * measured like llama-bench (pp: one batch of -p tokens on an empty cache;
 * tg: -n tokens generated one at a time; with --depth N both start after N
 * tokens already in the cache, as llama-bench's -d), as a markdown table. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f, "usage: airlock bench MODEL.gguf [-p N] [-n N] [-r N] [-t N] [--batch N] [--seqs N] [--depth N]\n\n"
               "  -p N        prompt tokens processed in batches (default 512; 0 skips)\n"
               "  -n N        tokens generated one by one (default 128; 0 skips)\n"
               "  -r N        repetitions; mean +- sd are reported (default 5)\n"
               "  -t N        threads (default: physical cores)\n"
               "  --batch N   tokens per forward pass for the prompt (default 512)\n"
               "  --seqs N    generate for N sequences at once, one token each per forward pass\n"
               "              (batched decoding as a server does it; t/s counts all N; default 1)\n"
               "  --depth N   run both tests after N tokens already in the KV cache (a prompt of N\n"
               "              random tokens, processed once and not timed; default 0)\n"
               "The table gives wall-clock t/s; a line per test below it gives the process's CPU time\n"
               "per repetition (all threads), which a busy machine disturbs less.\n");
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

/* CPU time of the whole process (every thread), in seconds. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double median_of(double *v, int n)
{
    double mean, sd, median;
    stats(v, n, &mean, &sd, &median);
    return median;
}

/* Leaves sequence seq holding positions 0..depth-1 (toks/pos[0..depth)):
 * cut back to them when the cache still has them, else processed again
 * (the first time, and after a sliding-window ring moved past them). The
 * time of a prompt processed is stored in *t_depth. want: all false. */
static al_status bench_at_depth(al_context *ctx, int32_t seq, const int32_t *toks, const int32_t *pos, bool *want,
                                int64_t depth, double *t_depth, al_error *err)
{
    al_kv_seq_truncate(ctx, seq, (int32_t)depth);
    if (depth == 0 || al_kv_seq_len(ctx, seq) == (int32_t)depth)
        return AL_OK;
    al_kv_seq_truncate(ctx, seq, 0);
    want[depth - 1] = true;
    int32_t *sq = malloc((size_t)depth * sizeof(int32_t));
    if (!sq) {
        err->status = AL_ERR_NOMEM;
        snprintf(err->msg, sizeof(err->msg), "out of memory for a depth of %lld tokens", (long long)depth);
        return AL_ERR_NOMEM;
    }
    for (int64_t i = 0; i < depth; i++)
        sq[i] = seq;
    al_batch b = {(int32_t)depth, toks, pos, sq, want};
    const double t = cli_now();
    al_status st = al_decode(ctx, &b, err);
    *t_depth = cli_now() - t;
    free(sq);
    want[depth - 1] = false;
    return st;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"batch", required_argument, 0, 'b'}, {"seqs", required_argument, 0, 's'},
        {"depth", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int64_t n_prompt = 512, n_gen = 128, reps = 5, threads = 0, n_batch = 512, n_seqs = 1, depth = 0;
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
        case 'd': ok = cli_parse_i64(optarg, 0, 1 << 20, &depth); break;
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
    int64_t n_max = n_prompt > n_gen ? n_prompt : n_gen;
    if (depth + n_max + 1 > (1 << 20)) {
        cli_errorf("bench", "--depth %lld plus %lld tokens do not fit a context of 2^20", (long long)depth,
                   (long long)n_max);
        al_model_free(m);
        return 2;
    }
    cp.n_ctx = (uint32_t)(depth + n_max + 1);
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
    /* tokens and positions 0..depth+n_max: the depth's prompt, then the tests' */
    const int64_t n_tok = depth + n_max + 1;
    int32_t *toks = malloc((size_t)n_tok * sizeof(int32_t));
    int32_t *pos = malloc((size_t)n_tok * sizeof(int32_t));
    /* one generation step of all sequences */
    int32_t *st = malloc((size_t)n_seqs * sizeof(int32_t)), *sp = malloc((size_t)n_seqs * sizeof(int32_t));
    int32_t *ss = malloc((size_t)n_seqs * sizeof(int32_t));
    bool *sw = malloc((size_t)n_seqs * sizeof(bool));
    bool *want = calloc((size_t)n_tok, sizeof(bool));
    double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
    double *pp_cpu = calloc((size_t)reps, sizeof(double)), *tg_cpu = calloc((size_t)reps, sizeof(double));
    if (!toks || !pos || !want || !pp || !tg || !pp_cpu || !tg_cpu || !st || !sp || !ss || !sw) {
        cli_errorf("bench", "out of memory");
        return 1;
    }
    uint64_t rng = 12345;
    for (int64_t i = 0; i < n_tok; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % info.n_vocab);
        pos[i] = (int32_t)i;
    }
    int rc = 0;
    /* One warm-up pass touches every weight page. */
    want[0] = true;
    al_batch wb = {1, toks, pos, NULL, want};
    al_decode(ctx, &wb, &err);
    want[0] = false;
    double t_depth = 0.0;
    for (int64_t r = 0; r < reps && !rc; r++) {
        if (n_prompt > 0) {
            if (bench_at_depth(ctx, 0, toks, pos, want, depth, &t_depth, &err)) {
                cli_errorf("bench", "%s", err.msg);
                rc = 1;
                break;
            }
            want[depth + n_prompt - 1] = true;
            al_batch b = {(int32_t)n_prompt, toks + depth, pos + depth, NULL, want + depth};
            double t = cli_now(), tc = cpu_now();
            if (al_decode(ctx, &b, &err)) {
                cli_errorf("bench", "%s", err.msg);
                rc = 1;
                break;
            }
            pp[r] = (double)n_prompt / (cli_now() - t);
            pp_cpu[r] = cpu_now() - tc;
            want[depth + n_prompt - 1] = false;
        }
        if (n_gen > 0) {
            if (bench_at_depth(ctx, 0, toks, pos, want, depth, &t_depth, &err)) {
                cli_errorf("bench", "%s", err.msg);
                rc = 1;
                break;
            }
            for (int64_t q = 1; q < n_seqs; q++) {
                al_kv_seq_truncate(ctx, (int32_t)q, 0);
                al_kv_seq_copy(ctx, 0, (int32_t)q, (int32_t)depth);
            }
            double t = cli_now(), tc = cpu_now();
            for (int64_t i = 0; i < n_gen; i++) {
                for (int64_t q = 0; q < n_seqs; q++) {
                    st[q] = toks[depth + (i + q) % n_max];
                    sp[q] = (int32_t)(depth + i);
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
            tg_cpu[r] = cpu_now() - tc;
        }
    }
    if (!rc) {
        printf("model: %s (%s, %.2f M params, %.1f MiB, %s), load %.0f ms, %d threads\n", path, info.arch,
               (double)info.n_params / 1e6, (double)info.file_bytes / 1048576.0, info.type_mix, t_load * 1e3,
               cp.n_threads > 0 ? cp.n_threads : al_physical_cores_count());
        if (depth > 0)
            printf("depth: %lld tokens in the KV cache before each test (their prompt took %.0f ms, not timed)\n",
                   (long long)depth, t_depth * 1e3);
        printf("kernels: %s\n\n", al_kernel_isa());
        printf("| model | size | test | t/s (mean ± sd) | median |\n|---|---|---|---|---|\n");
        double mean, sd, median;
        char at[32] = "";
        if (depth > 0)
            snprintf(at, sizeof(at), " @ d%lld", (long long)depth);
        char test_pp[64], test_tg[64];
        snprintf(test_pp, sizeof(test_pp), "pp%lld%s", (long long)n_prompt, at);
        if (n_seqs > 1)
            snprintf(test_tg, sizeof(test_tg), "tg%lld x%lld seqs%s", (long long)n_gen, (long long)n_seqs, at);
        else
            snprintf(test_tg, sizeof(test_tg), "tg%lld%s", (long long)n_gen, at);
        if (n_prompt > 0) {
            stats(pp, (int)reps, &mean, &sd, &median);
            printf("| %s | %.1f MiB | %s | %.2f ± %.2f | %.2f |\n", info.name[0] ? info.name : info.arch,
                   (double)info.file_bytes / 1048576.0, test_pp, mean, sd, median);
        }
        if (n_gen > 0) {
            stats(tg, (int)reps, &mean, &sd, &median);
            printf("| %s | %.1f MiB | %s | %.2f ± %.2f | %.2f |\n", info.name[0] ? info.name : info.arch,
                   (double)info.file_bytes / 1048576.0, test_tg, mean, sd, median);
        }
        printf("\n");
        if (n_prompt > 0)
            printf("cpu: %s: %.3f s of CPU time per repetition (median, all threads)\n", test_pp,
                   median_of(pp_cpu, (int)reps));
        if (n_gen > 0)
            printf("cpu: %s: %.3f s of CPU time per repetition (median, all threads)\n", test_tg,
                   median_of(tg_cpu, (int)reps));
    }
    free(pp_cpu);
    free(tg_cpu);
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
