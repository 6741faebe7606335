/* cmd_bench.c - `airlock bench MODEL.gguf`: prompt and generation speed,
 * measured like llama-bench (pp: one batch of -p tokens on an empty cache;
 * tg: -n tokens generated one at a time; with --depth N both start after N
 * tokens already in the cache, as llama-bench's -d), as a markdown table. */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"

static void help(FILE *f)
{
    fprintf(f, "usage: airlock bench MODEL.gguf [-p N] [-n N] [-r N] [-t N] [--batch N] [--seqs N] [--depth N] [--no-bandwidth]\n\n"
               "  -p N        prompt tokens processed in batches (default 512; 0 skips)\n"
               "  -n N        tokens generated one by one (default 128; 0 skips)\n"
               "  -r N        repetitions; mean +- sd are reported (default 5)\n"
               "  -t N        threads (default: physical cores)\n"
               "  --batch N   tokens per forward pass for the prompt (default 512)\n"
               "  --seqs N    generate for N sequences at once, one token each per forward pass\n"
               "              (batched decoding as a server does it; t/s counts all N; default 1)\n"
               "  --depth N   run both tests after N tokens already in the KV cache (a prompt of N\n"
               "              random tokens, processed once and not timed; default 0)\n"
               "  --no-bandwidth  skip the read-bandwidth measurement\n\n"
               "The table gives wall-clock t/s; a line per test below it gives the process's CPU time\n"
               "per repetition (all threads), which a busy machine disturbs less.\n"
               "With -n, the host's read bandwidth is measured (the bench's threads streaming\n"
               "a buffer 4x the last-level cache) and printed with the weight bytes one\n"
               "generated token reads (the used experts only, one embedding row), the\n"
               "bound they give (bandwidth / bytes) and the fraction of it tg reaches.\n");
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

/* ------------------------------------------------------------ read bandwidth */

typedef struct bw_shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ready;              /* the barrier is made for the threads that started */
    pthread_barrier_t bar;
} bw_shared;

typedef struct bw_arg {
    bw_shared *sh;
    const uint64_t *p; /* this thread's slice */
    size_t n;          /* uint64 words */
    int passes;
    double *secs;      /* per pass */
    uint64_t sink;
} bw_arg;

/* Sums the slice in 4 independent chains of 16-byte vectors, prefetching
 * 1 KiB ahead as the kernels do: this read a fifth faster than 8 scalar
 * chains without prefetch on a loaded host, and the bound is the best
 * the host's memory gives. */
typedef uint64_t bw_vec __attribute__((vector_size(16)));

static uint64_t bw_read(const uint64_t *p, size_t n)
{
    const bw_vec *q = (const bw_vec *)p;
    bw_vec s0 = {0, 0}, s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 4 <= n / 2; i += 4) {
        __builtin_prefetch(q + i + 64);
        s0 += q[i];
        s1 += q[i + 1];
        s2 += q[i + 2];
        s3 += q[i + 3];
    }
    s0 ^= s1 ^ s2 ^ s3;
    return s0[0] ^ s0[1];
}

static void *bw_thread(void *v)
{
    bw_arg *a = v;
    pthread_mutex_lock(&a->sh->mu);
    while (!a->sh->ready)
        pthread_cond_wait(&a->sh->cv, &a->sh->mu);
    pthread_mutex_unlock(&a->sh->mu);
    for (int r = 0; r < a->passes; r++) {
        pthread_barrier_wait(&a->sh->bar);
        double t = cli_now();
        a->sink += bw_read(a->p, a->n);
        a->secs[r] = cli_now() - t;
    }
    return NULL;
}

/* The LLC's size in bytes (the largest cache sysfs lists for CPU 0), or 0. */
static size_t llc_bytes(void)
{
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        unsigned long v = 0;
        char unit = 0;
        if (fscanf(f, "%lu%c", &v, &unit) >= 1) {
            size_t b = (size_t)v * (unit == 'K' ? 1024u : unit == 'M' ? 1048576u : 1u);
            best = b > best ? b : best;
        }
        fclose(f);
    }
    return best;
}

/* The host's read bandwidth in bytes/s with nth threads: each streams its
 * slice of a buffer 4x the LLC (at least 512 MiB, at most 2 GiB or a
 * quarter of the free memory); the best of 4 passes, each timed from the
 * common start to the slowest thread's end. 0 if it cannot be measured.
 * *buf_bytes: the buffer's size. */
static double read_bandwidth(int nth, size_t *buf_bytes)
{
    size_t want = llc_bytes() * 4;
    if (want < ((size_t)512 << 20))
        want = (size_t)512 << 20;
    if (want > ((size_t)2 << 30))
        want = (size_t)2 << 30;
    long pages = sysconf(_SC_AVPHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
    if (pages > 0 && pg > 0 && want > (size_t)pages * (size_t)pg / 4)
        want = (size_t)pages * (size_t)pg / 4;
    want = want / ((size_t)nth * 64) * ((size_t)nth * 64);
    *buf_bytes = want;
    if (nth < 1 || nth > 512 || want == 0)
        return 0.0;
    uint64_t *buf = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return 0.0;
    const size_t words = want / sizeof(uint64_t), per = words / (size_t)nth;
    for (size_t i = 0; i < words; i += 512) /* every page written: no shared zero page */
        buf[i] = i;
    enum { PASSES = 4 };
    bw_shared sh = {.ready = false};
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    bw_arg *args = calloc((size_t)nth, sizeof(bw_arg));
    double *secs = calloc((size_t)nth * PASSES, sizeof(double));
    pthread_t *th = calloc((size_t)nth, sizeof(pthread_t));
    double bw = 0.0;
    int n_run = 0; /* threads taking part: the caller and the workers that started */
    if (args && secs && th) {
        for (int i = 0; i < nth; i++)
            args[i] = (bw_arg){&sh, buf + (size_t)i * per, per, PASSES, secs + (size_t)i * PASSES, 0};
        n_run = 1;
        while (n_run < nth && pthread_create(&th[n_run], NULL, bw_thread, &args[n_run]) == 0)
            n_run++;
        pthread_barrier_init(&sh.bar, NULL, (unsigned)n_run);
        pthread_mutex_lock(&sh.mu);
        sh.ready = true;
        pthread_cond_broadcast(&sh.cv);
        pthread_mutex_unlock(&sh.mu);
        bw_thread(&args[0]);
        for (int i = 1; i < n_run; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&sh.bar);
        /* each pass from the common start to its slowest thread's end */
        const double bytes = (double)(per * (size_t)n_run * sizeof(uint64_t));
        for (int r = 0; r < PASSES && n_run == nth; r++) {
            double slow = 0.0;
            for (int i = 0; i < n_run; i++)
                slow = secs[(size_t)i * PASSES + r] > slow ? secs[(size_t)i * PASSES + r] : slow;
            if (slow > 0.0 && bytes / slow > bw)
                bw = bytes / slow;
        }
    }
    uint64_t sink = 0;
    for (int i = 0; args && i < nth; i++)
        sink ^= args[i].sink;
    if (sink == 42) /* keeps the sums live */
        fputc(' ', stderr);
    pthread_cond_destroy(&sh.cv);
    pthread_mutex_destroy(&sh.mu);
    free(args);
    free(secs);
    free(th);
    munmap(buf, want);
    return bw;
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

/* `airlock bench`: prompt and generation speed of a model over random
 * tokens, and the decode bound from the memory bandwidth. Long: options,
 * set-up, the timed repetitions and the table, one straight sequence. */
int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"batch", required_argument, 0, 'b'}, {"seqs", required_argument, 0, 's'},
        {"depth", required_argument, 0, 'd'}, {"no-bandwidth", no_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int64_t n_prompt = 512, n_gen = 128, reps = 5, threads = 0, n_batch = 512, n_seqs = 1, depth = 0;
    bool bandwidth = true;
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
        case 'B': bandwidth = false; break;
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
    const int nth = cp.n_threads > 0 ? cp.n_threads : al_physical_cores_count();
    size_t bw_buf = 0;
    const double bw = !rc && n_gen > 0 && bandwidth ? read_bandwidth(nth, &bw_buf) : 0.0;
    if (!rc) {
        printf("model: %s (%s, %.2f M params, %.1f MiB, %s), load %.0f ms, %d threads\n", path, info.arch,
               (double)info.n_params / 1e6, (double)info.file_bytes / 1048576.0, info.type_mix, t_load * 1e3,
               nth);
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
            printf("\ntg reads %.1f MiB of weights per token (%llu bytes)", (double)info.decode_bytes / 1048576.0,
                   (unsigned long long)info.decode_bytes);
            if (bw > 0.0 && info.decode_bytes > 0) {
                /* one step reads the weights once for all its sequences */
                const double bound = bw / (double)info.decode_bytes * (double)n_seqs;
                printf("; read bandwidth %.1f GB/s (%d threads, %.0f MiB streamed)\n", bw / 1e9, nth,
                       (double)bw_buf / 1048576.0);
                printf("tg bound %.1f t/s (bandwidth / bytes per token%s), median %.2f t/s = %.1f %% of it\n", bound,
                       n_seqs > 1 ? ", x seqs" : "", median, 100.0 * median / bound);
            } else {
                printf("%s\n", bandwidth ? "; read bandwidth not measured" : "");
            }
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
