/* bench_kernels.c - al_matmul throughput per weight type: GB/s of weights
 * streamed and GFLOP/s, for 1024x1024 and 3072x1024 matrices at n_tok = 1
 * (generation, memory-bound) and 64 (prompt, compute-bound), generic vs
 * AVX2 vs AVX-512-VNNI kernels (where the CPU has them), and the weights
 * packed as at model load with the kernels al_matmul picks (env
 * AIRLOCK_NO_AVX512=1 / AIRLOCK_NO_AVX2=1 change that pick). Checks each result against al_matmul_exact first.
 *
 * usage: bench_kernels [n_threads] [type-name-filter]   */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/quant.h"

static uint64_t g_rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float frand(void)
{
    return (float)(rnd() & 0xffffff) / 8388608.0f - 1.0f;
}

/* BENCH_CPU=1: process CPU time instead of wall time (steadier on a loaded
 * machine; meaningful with 1 thread). */
static double now_s(void)
{
    struct timespec ts;
    const char *cpu = getenv("BENCH_CPU");
    clock_gettime(cpu && cpu[0] == '1' ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, (n + 63) / 64 * 64)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, 0, n);
    return p;
}

/* Random weights with sane scales (offsets of the F16 scale fields). */
static void fill_weights(uint32_t t, uint8_t *W, int64_t rows, int64_t k)
{
    const al_type_traits *tr = al_type_get(t);
    const int64_t n = rows * k;
    if (t == AL_TYPE_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)W)[i] = frand() * 0.05f;
        return;
    }
    if (t == AL_TYPE_F16 || t == AL_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)W)[i] = t == AL_TYPE_F16 ? al_fp32_to_fp16(frand() * 0.05f) : al_fp32_to_bf16(frand() * 0.05f);
        return;
    }
    const int64_t nb = n / tr->block_elems;
    for (int64_t i = 0; i < nb * (int64_t)tr->block_bytes; i++)
        W[i] = (uint8_t)rnd();
    int off[2] = {-1, -1};
    switch (t) {
    case AL_TYPE_Q4_0: case AL_TYPE_Q5_0: case AL_TYPE_Q8_0: off[0] = 0; break;
    case AL_TYPE_Q4_1: case AL_TYPE_Q5_1: case AL_TYPE_Q4_K: case AL_TYPE_Q5_K: off[0] = 0; off[1] = 2; break;
    case AL_TYPE_Q2_K: off[0] = 80; off[1] = 82; break;
    case AL_TYPE_Q3_K: off[0] = 108; break;
    case AL_TYPE_Q6_K: off[0] = 208; break;
    case AL_TYPE_IQ3_S: case AL_TYPE_IQ3_XXS: case AL_TYPE_IQ2_XXS: case AL_TYPE_IQ2_XS: case AL_TYPE_IQ2_S:
    case AL_TYPE_IQ1_S: off[0] = 0; break;
    case AL_TYPE_IQ1_M: /* d in the top nibbles of the 4 scale words: 0x1000 (~2.4e-4) */
        for (int64_t b = 0; b < nb; b++)
            for (int w = 0; w < 4; w++)
                W[b * tr->block_bytes + 49 + 2 * w] = (uint8_t)((W[b * tr->block_bytes + 49 + 2 * w] & 0x0f) | (w == 3 ? 0x10 : 0));
        break;
    default: break;
    }
    for (int64_t b = 0; b < nb; b++)
        for (int j = 0; j < 2; j++)
            if (off[j] >= 0) {
                al_half h = al_fp32_to_fp16(frand() * 0.002f);
                memcpy(W + b * tr->block_bytes + off[j], &h, 2);
            }
}

int main(int argc, char **argv)
{
    int nth = argc > 1 ? atoi(argv[1]) : al_physical_cores();
    const char *filter = argc > 2 ? argv[2] : NULL;
    if (nth < 1)
        nth = 1;
    al_threadpool *tp = al_threadpool_new(nth);
    if (!tp) {
        fprintf(stderr, "cannot start %d threads\n", nth);
        return 1;
    }
    const al_kernels *sets[3] = {al_kernels_ref(), al_cpu_has_avx2() ? al_kernels_avx2() : NULL,
                                 al_cpu_has_avx512_vnni() ? al_kernels_avx512() : NULL};
    char packed_name[64];
    snprintf(packed_name, sizeof(packed_name), "%s-packed", al_kernels_get()->name);
    static const uint32_t types[] = {AL_TYPE_F32, AL_TYPE_F16, AL_TYPE_BF16, AL_TYPE_Q8_0, AL_TYPE_Q4_0,
                                     AL_TYPE_Q4_1, AL_TYPE_Q5_0, AL_TYPE_Q5_1, AL_TYPE_Q2_K, AL_TYPE_Q3_K,
                                     AL_TYPE_Q4_K, AL_TYPE_Q5_K, AL_TYPE_Q6_K,
                                     AL_TYPE_IQ3_S, AL_TYPE_IQ3_XXS, AL_TYPE_IQ2_XXS, AL_TYPE_IQ2_XS, AL_TYPE_IQ2_S, AL_TYPE_IQ1_S, AL_TYPE_IQ1_M, AL_TYPE_IQ4_NL, AL_TYPE_IQ4_XS};
    static const int64_t shapes[][2] = {{1024, 1024}, {3072, 1024}};
    static const int64_t toks[] = {1, 4, 16, 64};
    printf("threads %d, AVX2 %s, AVX-512-VNNI %s, al_matmul uses %s\n", nth, sets[1] ? "yes" : "no",
           sets[2] ? "yes" : "no", al_kernels_get()->name);
    printf("| type | rows x k | n_tok | kernels | ms/call | GB/s (weights) | GFLOP/s |\n");
    printf("|---|---|---|---|---|---|---|\n");
    int bad = 0;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const uint32_t t = types[ti];
        if (filter && strcmp(filter, al_type_name(t)) != 0)
            continue;
        for (size_t si = 0; si < 2; si++) {
            const int64_t rows = shapes[si][0], k = shapes[si][1];
            const size_t rb = al_type_row_bytes(t, k);
            uint8_t *W = xalloc(rb * (size_t)rows);
            fill_weights(t, W, rows, k);
            for (size_t ni = 0; ni < sizeof(toks) / sizeof(toks[0]); ni++) {
                const int64_t nt = toks[ni];
                float *X = xalloc((size_t)(nt * k) * 4), *Y = xalloc((size_t)(nt * rows) * 4);
                float *Ye = xalloc((size_t)(nt * rows) * 4);
                for (int64_t i = 0; i < nt * k; i++)
                    X[i] = frand();
                void *s = xalloc(al_matmul_scratch_bytes(t, k, nt));
                void *se = xalloc(al_matmul_exact_scratch_bytes(k, nth));
                al_matmul_exact(tp, t, W, rows, k, rb, X, nt, Ye, rows, se);
                double ynorm = 0;
                for (int64_t i = 0; i < nt * rows; i++)
                    ynorm = fmax(ynorm, fabs(Ye[i]));
                /* ki 3: the weights packed as at model load (al_kernels_get()) */
                const size_t pb = al_matmul_pack_bytes(t, rows, k);
                void *P = pb ? xalloc(pb) : NULL;
                if (P)
                    al_matmul_pack(t, W, rows, k, rb, P);
                const al_mm_desc pd = {t, W, rows, rb, Y, rows, P, false};
                for (int ki = 0; ki < 4; ki++) {
                    const char *only = getenv("BENCH_ONLY");
                    const al_kernels *ks = ki < 3 ? sets[ki] : al_kernels_get();
                    const char *name = ki < 3 ? (ks ? ks->name : "") : packed_name;
                    if (!ks || (ki == 3 && !P) || (only && only[0] && strncmp(only, name, strlen(only)) != 0))
                        continue;
                    if (ki == 3)
                        al_matmul_multi(tp, &pd, 1, k, X, nt, s);
                    else
                        al_matmul_with(ks, tp, t, W, rows, k, rb, X, nt, Y, rows, s);
                    double err = 0;
                    for (int64_t i = 0; i < nt * rows; i++)
                        err = fmax(err, fabs(Y[i] - Ye[i]));
                    if (!(err <= 0.02 * ynorm + 1e-6)) {
                        printf("CHECK FAILED: %s %s max error %.3g (max |y| %.3g)\n", al_type_name(t), name, err,
                               ynorm);
                        bad = 1;
                    }
                    int iters = 0;
                    double t0 = now_s(), el;
                    do {
                        if (ki == 3)
                            al_matmul_multi(tp, &pd, 1, k, X, nt, s);
                        else
                            al_matmul_with(ks, tp, t, W, rows, k, rb, X, nt, Y, rows, s);
                        iters++;
                        el = now_s() - t0;
                    } while (el < 0.25 && iters < 2000);
                    const double sec = el / iters;
                    printf("| %s | %lldx%lld | %lld | %s | %.3f | %.1f | %.1f |\n", al_type_name(t), (long long)rows,
                           (long long)k, (long long)nt, name, sec * 1e3,
                           (double)rb * (double)rows / sec / 1e9, 2.0 * (double)rows * (double)k * (double)nt / sec / 1e9);
                    fflush(stdout);
                }
                free(X), free(Y), free(Ye), free(s), free(se), free(P);
            }
            free(W);
        }
    }
    al_threadpool_free(tp);
    return bad;
}
