/* bench_attention.c - the attention tile kernels alone, one thread, CPU
 * time: a causal prompt of N positions cut into tiles as the forward pass
 * cuts it (T tokens x G query heads per KV head), and decode steps at
 * depth N (one token, G heads). Shapes of qwen3-0.6b by default (head size
 * 128, G = 2). Checks every fast kernel's outputs against the AVX2 ones.
 *
 * usage: bench_attention [N [T [G [HD [RUNS]]]]]   (2048 16 2 128 3) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/attention.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t g_rng = 88172645463325252ull;

static float frand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

int main(int argc, char **argv)
{
    const uint32_t n = argc > 1 ? (uint32_t)atoi(argv[1]) : 2048, T = argc > 2 ? (uint32_t)atoi(argv[2]) : 16;
    const uint32_t G = argc > 3 ? (uint32_t)atoi(argv[3]) : 2, hd = argc > 4 ? (uint32_t)atoi(argv[4]) : 128;
    const int runs = argc > 5 ? atoi(argv[5]) : 3;
    if (n < 1 || T < 1 || G < 1 || hd < 1 || runs < 1 || n > (1u << 20)) {
        fprintf(stderr, "usage: bench_attention [N [T [G [HD [RUNS]]]]]\n");
        return 2;
    }
    const size_t stride = 8 * (size_t)hd; /* 8 KV heads in a row, as qwen3 */
    const size_t ld = (size_t)G * hd;
    float *q = malloc((size_t)n * ld * 4), *o = malloc((size_t)n * ld * 4), *o0 = malloc((size_t)n * ld * 4);
    float *o1 = malloc(ld * 4);
    uint16_t *k = malloc((size_t)n * stride * 2), *v = malloc((size_t)n * stride * 2);
    const size_t n_scr = al_attn_tile_scratch_floats(G, T, hd, n) + 64;
    float *scr = malloc(n_scr * 4);
    if (!q || !o || !o0 || !o1 || !k || !v || !scr)
        return 1;
    for (size_t i = 0; i < (size_t)n * ld; i++)
        q[i] = frand();
    for (size_t i = 0; i < (size_t)n * stride; i++) {
        k[i] = al_fp32_to_fp16(frand());
        v[i] = al_fp32_to_fp16(frand());
    }
    const struct {
        const char *name;
        const al_attn_kernels *ks;
        int ok;
    } isa[] = {{"avx2", al_attn_kernels_avx2(), al_cpu_has_avx2()},
               {"avx512", al_attn_kernels_avx512(), al_cpu_has_avx512_vnni()}};
    /* multiply-adds: q.k and the weighted V, over the causal triangle */
    const double flop_pp = 4.0 * hd * G * ((double)n * (n + 1) / 2);
    printf("prompt %u positions in tiles of %u tokens x %u heads, head size %u; decode at depth %u; 1 thread\n", n, T,
           G, hd, n);
    int bad = 0;
    for (size_t s = 0; s < 2; s++) {
        if (!isa[s].ks || !isa[s].ok) {
            printf("%-7s not on this host\n", isa[s].name);
            continue;
        }
        double best_pp = 1e30, best_tg = 1e30, best_f16 = 1e30;
        for (int r = 0; r < runs; r++) {
            double t = cpu_now();
            for (uint32_t j0 = 0; j0 < n; j0 += T) {
                const uint32_t nt = n - j0 < T ? n - j0 : T;
                const al_attn_tile at = {q + (size_t)j0 * ld, ld, o + (size_t)j0 * ld, ld, k, v, stride, G, nt, hd,
                                         (int32_t)j0, 1.0f / sqrtf((float)hd), 0, 0, 0.0f, NULL};
                isa[s].ks->attend_tile_f16(&at, scr);
            }
            t = cpu_now() - t;
            best_pp = t < best_pp ? t : best_pp;
            const int steps = 16;
            t = cpu_now();
            for (int i = 0; i < steps; i++) {
                const al_attn_tile at = {q + (size_t)(n - 1) * ld, ld, o + (size_t)(n - 1) * ld, ld, k, v, stride, G,
                                         1, hd, (int32_t)n - 1, 1.0f / sqrtf((float)hd), 0, 0, 0.0f, NULL};
                isa[s].ks->attend_tile_f16(&at, scr);
            }
            t = (cpu_now() - t) / steps;
            best_tg = t < best_tg ? t : best_tg;
            /* the one-token kernel encoders use, for comparison */
            t = cpu_now();
            for (int i = 0; i < steps; i++)
                isa[s].ks->attend_f16(q + (size_t)(n - 1) * ld, G, k, v, stride, (int32_t)n, hd,
                                      1.0f / sqrtf((float)hd), scr, o1);
            t = (cpu_now() - t) / steps;
            best_f16 = t < best_f16 ? t : best_f16;
        }
        if (s == 0) {
            memcpy(o0, o, (size_t)n * ld * 4);
        } else {
            for (size_t i = 0; i < (size_t)n * ld; i++)
                if (!(fabsf(o[i] - o0[i]) <= 1e-4f + 1e-4f * fabsf(o0[i]))) {
                    fprintf(stderr, "%s differs from avx2 at %zu: %g vs %g\n", isa[s].name, i, (double)o[i],
                            (double)o0[i]);
                    bad = 1;
                    break;
                }
        }
        printf("%-7s prompt %8.1f ms  %6.1f GFLOP/s | decode step %7.3f ms  %6.1f GB/s of K/V (attend_f16 %.3f ms)\n",
               isa[s].name, best_pp * 1e3, flop_pp / best_pp * 1e-9, best_tg * 1e3, 4.0 * n * hd / best_tg * 1e-9,
               best_f16 * 1e3);
    }
    free(q), free(o), free(o0), free(o1), free(k), free(v), free(scr);
    return bad;
}
