/*
 * moe_test.c - the mixture-of-experts feed-forward held to a plain-C
 * reference written here from the definitions (double sums, its own
 * softmax and top-k), and its load checks:
 *   - al_matmul_grouped against dequantize-then-dot for every kernel type,
 *     groups with index lists, shared conversions, panel and dot sizes,
 *     empty groups, with and without a pool;
 *   - al_moe_route on hand-made scores (ties, NaN, each gating function,
 *     renormalisation, scale);
 *   - al_moe_forward, exact and native, for the qwen3moe, qwen2moe (shared
 *     expert), gpt-oss (router and expert biases, softmax over the chosen,
 *     clamped SwiGLU) and sigmoid+scale configurations;
 *   - the same tokens in one batch and one at a time give the same output
 *     (routing does not depend on batch neighbours);
 *   - a NaN router score is a clean error;
 *   - GGUF files with bad expert keys or tensors are refused by name;
 *   - a small file is not streamed, and streaming a real file's experts
 *     (the prefetch of a file larger than memory) gives the same logits
 *     and tokens as reading them as they are used.
 * Run twice by ctest, the second time with AIRLOCK_NO_AVX2=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "airlock.h"
#include "gguf/gguf.h"
#include "model/moe.h"
#include "tensor/matmul.h"
#include "tensor/matmul_grouped.h"
#include "tensor/quant.h"
#include "tensor/types.h"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f;
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, n < 64 ? 64 : (n + 63) / 64 * 64), 0);
    memset(p, 0, n);
    return p;
}

static void put_half(uint8_t *p, float v)
{
    al_half h = al_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* n_rows random rows of k elements of type t: random bits with the scales
 * patched to small values, so every element is finite and O(0.1). */
static uint8_t *random_rows(uint32_t t, int64_t n_rows, int64_t k)
{
    const size_t rb = al_type_row_bytes(t, k);
    uint8_t *w = xalloc(rb * (size_t)n_rows);
    for (size_t i = 0; i < rb * (size_t)n_rows; i++)
        w[i] = (uint8_t)rnd();
    const al_type_traits *tr = al_type_get(t);
    const size_t nb = rb * (size_t)n_rows / tr->block_bytes;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = w + b * tr->block_bytes;
        switch (t) {
        case AL_TYPE_F32:
            for (int i = 0; i < 1; i++) {
                float v = frand(-0.2f, 0.2f);
                memcpy(blk, &v, 4);
            }
            break;
        case AL_TYPE_F16: put_half(blk, frand(-0.2f, 0.2f)); break;
        case AL_TYPE_Q4_0:
        case AL_TYPE_Q8_0: put_half(blk, frand(0.001f, 0.01f)); break;
        case AL_TYPE_Q4_K:
        case AL_TYPE_Q5_K:
            put_half(blk, frand(0.001f, 0.004f));
            put_half(blk + 2, frand(0.001f, 0.004f));
            break;
        case AL_TYPE_Q6_K: put_half(blk + 208, frand(0.0005f, 0.002f)); break;
        default: fail_msg("type %u not handled by the test", t);
        }
    }
    return w;
}

static al_threadpool *g_pool;

/* A read-only private map of a temporary file holding n bytes of src (the
 * way a model's weights are mapped: giving pages back re-reads the file).
 * Unmap with munmap(p, n). */
static uint8_t *file_backed(const void *src, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(fwrite(src, 1, n, f), n);
    fflush(f);
    void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    assert_true(p != MAP_FAILED);
    fclose(f);
    return p;
}

/* ------------------------------------------------- al_matmul_grouped */

typedef struct grp_case {
    uint32_t type;
    int64_t rows;
    int64_t n_tok; /* tokens of the group */
} grp_case;

static void check_grouped(uint32_t type_a, uint32_t type_b, int64_t k, al_threadpool *tp)
{
    enum { NX = 37 };
    const int64_t ldx = k + 32;
    float *X = xalloc(sizeof(float) * NX * (size_t)ldx);
    for (int64_t i = 0; i < NX * ldx; i++)
        X[i] = frand(-1.0f, 1.0f);
    /* groups: (a, b) sharing rows like an expert's gate and up; sizes for
     * panels (>= 8 tokens) and dots; one empty; one with contiguous rows */
    const grp_case cases[] = {{type_b, 48, 9}, {type_a, 40, 9}, {type_a, 16, 1}, {type_b, 24, 3},
                              {type_a, 32, 0}, {type_a, 56, 20}, {type_b, 8, 12}};
    enum { NG = sizeof(cases) / sizeof(cases[0]) };
    al_mm_group g[NG];
    uint8_t *W[NG];
    int32_t *rows[NG];
    float *Yn[NG], *Ye[NG];
    for (int i = 0; i < NG; i++) {
        uint8_t *w = random_rows(cases[i].type, cases[i].rows, k);
        W[i] = file_backed(w, al_type_row_bytes(cases[i].type, k) * (size_t)cases[i].rows);
        free(w);
        rows[i] = xalloc(sizeof(int32_t) * 32);
        for (int64_t t = 0; t < cases[i].n_tok; t++)
            rows[i][t] = (int32_t)(rnd() % NX);
        Yn[i] = xalloc(sizeof(float) * (size_t)(cases[i].rows * (cases[i].n_tok + 1)));
        Ye[i] = xalloc(sizeof(float) * (size_t)(cases[i].rows * (cases[i].n_tok + 1)));
        g[i] = (al_mm_group){cases[i].type, W[i], cases[i].rows, k, al_type_row_bytes(cases[i].type, k), X, ldx,
                             rows[i], cases[i].n_tok, Yn[i], cases[i].rows, NULL};
    }
    g[1].rows = g[0].rows; /* shares g[0]'s conversion */
    g[6].rows = NULL;      /* rows 0..11 */
    al_mm_group ge[NG];
    memcpy(ge, g, sizeof(g));
    for (int i = 0; i < NG; i++)
        ge[i].Y = Ye[i];
    const int nth = al_threadpool_size(tp);
    void *sn = xalloc(al_matmul_grouped_scratch_bytes(g, NG, nth, false));
    void *se = xalloc(al_matmul_grouped_scratch_bytes(ge, NG, nth, true));
    assert_true(al_matmul_grouped_scratch_bytes(g, NG, nth, false) <=
                al_matmul_grouped_scratch_bound(NG, 2 * NX * 4, k, nth, false));
    al_matmul_grouped(tp, g, NG, false, sn);
    al_matmul_grouped(tp, ge, NG, true, se);
    /* lazily packed panels: the first pass packs (part of them, with a
     * budget of two panels), later ones read them; bit for bit the same */
    for (int budgeted = 0; budgeted < 2; budgeted++) {
        al_lazy_panels lz[NG];
        _Atomic int64_t budget;
        atomic_init(&budget, 0);
        al_mm_group gl[NG];
        float *Yl[NG];
        memcpy(gl, g, sizeof(g));
        for (int i = 0; i < NG; i++) {
            const size_t pb = al_matmul_pack_bytes(g[i].wtype, 8, k);
            Yl[i] = xalloc(sizeof(float) * (size_t)(cases[i].rows * (cases[i].n_tok + 1)));
            gl[i].Y = Yl[i];
            memset(&lz[i], 0, sizeof(lz[i]));
            if (pb == 0)
                continue;
            if (i == 0 || atomic_load(&budget) == 0)
                atomic_store(&budget, budgeted ? (int64_t)(2 * pb) : INT64_MAX / 2);
            lz[i].panels = xalloc(pb * (size_t)(g[i].n_rows / 8));
            lz[i].panel_bytes = pb;
            lz[i].state = xalloc((size_t)(g[i].n_rows / 8));
            lz[i].budget = &budget;
            gl[i].lazy = &lz[i];
        }
        /* the weights are read again after their pages are given back */
        for (int pass = 0; pass < 3; pass++) {
            al_matmul_grouped(tp, gl, NG, false, sn);
            for (int i = 0; i < NG; i++)
                if (memcmp(Yl[i], Yn[i], sizeof(float) * (size_t)(g[i].n_rows * g[i].n_tok)) != 0)
                    fail_msg("%s group %d pass %d (budget %d): lazily packed panels differ", al_type_name(g[i].wtype),
                             i, pass, budgeted);
        }
        for (int i = 0; i < NG; i++) {
            if (lz[i].panels && !budgeted && g[i].n_tok > 0)
                assert_int_equal(atomic_load(&lz[i].n_packed), g[i].n_rows / 8);
            free(lz[i].panels);
            free((void *)lz[i].state);
            free(Yl[i]);
        }
    }
    float *row = xalloc(sizeof(float) * (size_t)k);
    for (int i = 0; i < NG; i++) {
        const size_t rb = al_type_row_bytes(g[i].wtype, k);
        double worst = 0.0;
        for (int64_t r = 0; r < g[i].n_rows; r++) {
            al_dequantize_row(g[i].wtype, W[i] + (size_t)r * rb, row, k);
            for (int64_t t = 0; t < g[i].n_tok; t++) {
                const float *x = X + (g[i].rows ? g[i].rows[t] : t) * ldx;
                double ref = 0.0, mag = 0.0;
                for (int64_t q = 0; q < k; q++) {
                    ref += (double)row[q] * x[q];
                    mag += fabs((double)row[q] * x[q]);
                }
                const double de = fabs(Ye[i][t * g[i].n_rows + r] - ref);
                const double dn = fabs(Yn[i][t * g[i].n_rows + r] - ref);
                if (de > 1e-5 * (mag + 1e-3))
                    fail_msg("%s group %d row %lld tok %lld: exact %g vs %g", al_type_name(g[i].wtype), i,
                             (long long)r, (long long)t, (double)Ye[i][t * g[i].n_rows + r], ref);
                /* native: 8-bit activations (and F16/BF16 products) */
                if (dn > 0.02 * mag + 1e-4)
                    fail_msg("%s group %d row %lld tok %lld: native %g vs %g (sum |.| %g)", al_type_name(g[i].wtype),
                             i, (long long)r, (long long)t, (double)Yn[i][t * g[i].n_rows + r], ref, mag);
                worst = dn / (mag + 1e-9) > worst ? dn / (mag + 1e-9) : worst;
            }
        }
        /* the empty group's outputs are untouched */
        if (g[i].n_tok == 0)
            for (int64_t r = 0; r < g[i].n_rows; r++)
                assert_true(Yn[i][r] == 0.0f && Ye[i][r] == 0.0f);
    }
    for (int i = 0; i < NG; i++) {
        munmap(W[i], al_type_row_bytes(cases[i].type, k) * (size_t)cases[i].rows);
        free(rows[i]);
        free(Yn[i]);
        free(Ye[i]);
    }
    free(row);
    free(sn);
    free(se);
    free(X);
}

static void test_grouped(void **state)
{
    (void)state;
    const uint32_t pairs[][2] = {{AL_TYPE_Q8_0, AL_TYPE_Q8_0}, {AL_TYPE_Q4_K, AL_TYPE_Q6_K},
                                 {AL_TYPE_Q5_K, AL_TYPE_Q4_K}, {AL_TYPE_Q4_0, AL_TYPE_Q8_0},
                                 {AL_TYPE_F32, AL_TYPE_F16}, {AL_TYPE_F16, AL_TYPE_Q8_0}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        check_grouped(pairs[i][0], pairs[i][1], 256, g_pool);
        check_grouped(pairs[i][0], pairs[i][1], 512, NULL);
    }
}

/* ------------------------------------------------- routing */

static void test_route(void **state)
{
    (void)state;
    al_moe_hparams hp = {.n_expert = 6, .n_expert_used = 3, .gating = AL_MOE_GATING_SOFTMAX, .weights_scale = 1};
    const float sc[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f};
    int32_t e[6];
    float w[6];
    assert_true(al_moe_route(&hp, sc, e, w));
    /* the tie between 1 and 3: the lower id first */
    assert_int_equal(e[0], 1);
    assert_int_equal(e[1], 3);
    assert_int_equal(e[2], 4);
    double z = 0;
    for (int i = 0; i < 6; i++)
        z += exp(sc[i]);
    assert_true(fabs(w[0] - exp(2.0) / z) < 1e-6 && fabs(w[2] - exp(1.0) / z) < 1e-6);
    hp.norm_topk = true;
    assert_true(al_moe_route(&hp, sc, e, w));
    const double zk = 2 * exp(2.0) + exp(1.0);
    assert_true(fabs(w[0] - exp(2.0) / zk) < 1e-6 && fabs(w[2] - exp(1.0) / zk) < 1e-6);
    hp.weights_scale = 2.5f;
    assert_true(al_moe_route(&hp, sc, e, w));
    assert_true(fabs(w[2] - 2.5 * exp(1.0) / zk) < 1e-5);
    /* softmax over the chosen (gpt-oss): the same as renormalised softmax */
    hp = (al_moe_hparams){.n_expert = 6, .n_expert_used = 3, .gating = AL_MOE_GATING_SOFTMAX_TOPK,
                          .weights_scale = 1};
    assert_true(al_moe_route(&hp, sc, e, w));
    assert_true(fabs(w[0] - exp(2.0) / zk) < 1e-6 && fabs(w[2] - exp(1.0) / zk) < 1e-6);
    /* sigmoid: each score on its own */
    hp.gating = AL_MOE_GATING_SIGMOID;
    assert_true(al_moe_route(&hp, sc, e, w));
    assert_true(fabs(w[2] - 1.0 / (1.0 + exp(-1.0))) < 1e-6);
    /* k = n: every expert */
    hp.n_expert_used = 6;
    assert_true(al_moe_route(&hp, sc, e, w));
    assert_int_equal(e[5], 2);
    float bad[6];
    memcpy(bad, sc, sizeof(bad));
    bad[4] = NAN;
    assert_false(al_moe_route(&hp, bad, e, w));
    bad[4] = INFINITY;
    assert_false(al_moe_route(&hp, bad, e, w));
}

/* ------------------------------------------------- forward */

typedef struct toy {
    al_moe_hparams hp;
    al_moe_layer ly;
    int64_t d;
    uint8_t *router, *gate, *up, *down, *shinp, *shg, *shu, *shd;
} toy;

static void toy_make(toy *t, al_moe_hparams hp, uint32_t etype, bool biases, bool router_bias)
{
    memset(t, 0, sizeof(*t));
    t->hp = hp;
    t->d = 256;
    const int64_t d = t->d, nf = hp.n_ff_exp, ne = hp.n_expert;
    al_moe_layer *ly = &t->ly;
    t->router = random_rows(AL_TYPE_F32, ne, d);
    for (int64_t i = 0; i < ne * d; i++) /* scores of order 1: clear choices */
        ((float *)t->router)[i] *= 10.0f;
    ly->router = (al_weight){AL_TYPE_F32, t->router, ne, d, (size_t)d * 4, NULL, false};
    t->gate = random_rows(etype, nf * ne, d);
    t->up = random_rows(etype, nf * ne, d);
    t->down = random_rows(etype, d * ne, nf);
    ly->gate = (al_experts){etype, t->gate, nf, d, al_type_row_bytes(etype, d), al_type_row_bytes(etype, d) * nf, NULL};
    ly->up = (al_experts){etype, t->up, nf, d, al_type_row_bytes(etype, d), al_type_row_bytes(etype, d) * nf, NULL};
    ly->down = (al_experts){etype, t->down, d, nf, al_type_row_bytes(etype, nf), al_type_row_bytes(etype, nf) * d, NULL};
    if (router_bias) {
        ly->router_b = malloc(sizeof(float) * ne);
        for (int64_t i = 0; i < ne; i++)
            ly->router_b[i] = frand(-1, 1);
    }
    if (biases) {
        ly->gate_b = malloc(sizeof(float) * ne * nf);
        ly->up_b = malloc(sizeof(float) * ne * nf);
        ly->down_b = malloc(sizeof(float) * ne * d);
        for (int64_t i = 0; i < ne * nf; i++) {
            ly->gate_b[i] = frand(-3, 9); /* past the SwiGLU-OAI limit sometimes */
            ly->up_b[i] = frand(-9, 9);
        }
        for (int64_t i = 0; i < ne * d; i++)
            ly->down_b[i] = frand(-0.5f, 0.5f);
    }
    if (hp.n_ff_shexp) {
        const int64_t ns = hp.n_ff_shexp;
        t->shinp = random_rows(AL_TYPE_F32, 1, d);
        t->shg = random_rows(etype, ns, d);
        t->shu = random_rows(etype, ns, d);
        t->shd = random_rows(etype, d, ns);
        ly->shexp_inp = (al_weight){AL_TYPE_F32, t->shinp, 1, d, (size_t)d * 4, NULL, false};
        ly->shexp_gate = (al_weight){etype, t->shg, ns, d, al_type_row_bytes(etype, d), NULL, false};
        ly->shexp_up = (al_weight){etype, t->shu, ns, d, al_type_row_bytes(etype, d), NULL, false};
        ly->shexp_down = (al_weight){etype, t->shd, d, ns, al_type_row_bytes(etype, ns), NULL, false};
    }
}

static void toy_free(toy *t)
{
    al_moe_layer_free(&t->ly);
    free(t->router);
    free(t->gate);
    free(t->up);
    free(t->down);
    free(t->shinp);
    free(t->shg);
    free(t->shu);
    free(t->shd);
}

/* y (n) = W (n rows of k, type t) x, in double. */
static void ref_mv(uint32_t t, const uint8_t *W, int64_t n, int64_t k, const float *x, double *y)
{
    float *row = malloc(sizeof(float) * (size_t)k);
    const size_t rb = al_type_row_bytes(t, k);
    for (int64_t r = 0; r < n; r++) {
        al_dequantize_row(t, W + (size_t)r * rb, row, k);
        double s = 0;
        for (int64_t i = 0; i < k; i++)
            s += (double)row[i] * x[i];
        y[r] = s;
    }
    free(row);
}

/* The MoE of one token, from the definitions. */
static void ref_token(const toy *t, const float *x, float *out)
{
    const al_moe_hparams *hp = &t->hp;
    const al_moe_layer *ly = &t->ly;
    const int64_t d = t->d, nf = hp->n_ff_exp, ne = hp->n_expert, k = hp->n_expert_used;
    double sc[64], p[64], w[64];
    int chosen[64];
    ref_mv(AL_TYPE_F32, t->router, ne, d, x, sc);
    for (int64_t e = 0; e < ne; e++) {
        sc[e] = (float)sc[e]; /* the scores are floats */
        if (ly->router_b)
            sc[e] += ly->router_b[e];
    }
    double mx = -1e300, z = 0;
    for (int64_t e = 0; e < ne; e++)
        mx = sc[e] > mx ? sc[e] : mx;
    for (int64_t e = 0; e < ne; e++)
        z += exp(sc[e] - mx);
    for (int64_t e = 0; e < ne; e++)
        p[e] = hp->gating == AL_MOE_GATING_SOFTMAX   ? exp(sc[e] - mx) / z
               : hp->gating == AL_MOE_GATING_SIGMOID ? 1 / (1 + exp(-sc[e]))
                                                     : sc[e];
    /* selection sort of the ids by p, descending */
    int ids[64];
    for (int e = 0; e < ne; e++)
        ids[e] = e;
    for (int a = 0; a < ne; a++)
        for (int b = a + 1; b < ne; b++)
            if (p[ids[b]] > p[ids[a]]) {
                int tmp = ids[a];
                ids[a] = ids[b];
                ids[b] = tmp;
            }
    double ws = 0;
    for (int j = 0; j < k; j++) {
        chosen[j] = ids[j];
        w[j] = hp->gating == AL_MOE_GATING_SOFTMAX_TOPK ? exp(p[ids[j]] - p[ids[0]]) : p[ids[j]];
        ws += w[j];
    }
    for (int j = 0; j < k; j++) {
        if (hp->gating == AL_MOE_GATING_SOFTMAX_TOPK || hp->norm_topk)
            w[j] /= ws;
        w[j] *= hp->weights_scale;
    }
    double *acc = calloc((size_t)d, sizeof(double)), *g = malloc(sizeof(double) * (size_t)nf);
    double *u = malloc(sizeof(double) * (size_t)nf), *y = malloc(sizeof(double) * (size_t)d);
    float *h = malloc(sizeof(float) * (size_t)(nf > 4096 ? nf : 4096));
    for (int j = 0; j < k; j++) {
        const int e = chosen[j];
        ref_mv(ly->gate.type, ly->gate.data + (size_t)e * ly->gate.expert_bytes, nf, d, x, g);
        ref_mv(ly->up.type, ly->up.data + (size_t)e * ly->up.expert_bytes, nf, d, x, u);
        for (int64_t i = 0; i < nf; i++) {
            double gv = (float)g[i], uv = (float)u[i];
            if (ly->gate_b) {
                gv += ly->gate_b[e * nf + i];
                uv += ly->up_b[e * nf + i];
            }
            if (hp->act == AL_MOE_ACT_SWIGLU_OAI) {
                gv = gv < 7 ? gv : 7;
                uv = uv < -7 ? -7 : uv > 7 ? 7 : uv;
                h[i] = (float)(gv / (1 + exp(-1.702 * gv)) * (uv + 1));
            } else {
                h[i] = (float)(gv / (1 + exp(-gv)) * uv);
            }
        }
        ref_mv(ly->down.type, ly->down.data + (size_t)e * ly->down.expert_bytes, d, nf, h, y);
        for (int64_t i = 0; i < d; i++)
            acc[i] += w[j] * ((float)y[i] + (ly->down_b ? ly->down_b[e * d + i] : 0.0));
    }
    if (hp->n_ff_shexp) {
        const int64_t ns = hp->n_ff_shexp;
        double gs;
        ref_mv(AL_TYPE_F32, t->shinp, 1, d, x, &gs);
        double *sg = malloc(sizeof(double) * (size_t)ns), *su = malloc(sizeof(double) * (size_t)ns);
        ref_mv(ly->shexp_gate.type, t->shg, ns, d, x, sg);
        ref_mv(ly->shexp_up.type, t->shu, ns, d, x, su);
        for (int64_t i = 0; i < ns; i++)
            h[i] = (float)((float)sg[i] / (1 + exp(-(float)sg[i])) * (float)su[i]);
        ref_mv(ly->shexp_down.type, t->shd, d, ns, h, y);
        for (int64_t i = 0; i < d; i++)
            acc[i] += (float)y[i] / (1 + exp(-gs));
        free(sg);
        free(su);
    }
    for (int64_t i = 0; i < d; i++)
        out[i] = (float)acc[i];
    free(acc);
    free(g);
    free(u);
    free(y);
    free(h);
}

static double rms(const float *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s / (double)n);
}

static void check_forward(const char *what, al_moe_hparams hp, uint32_t etype, bool biases, bool router_bias)
{
    toy t;
    toy_make(&t, hp, etype, biases, router_bias);
    enum { NT = 29, NB = 32 };
    const int64_t d = t.d;
    float *x = xalloc(sizeof(float) * NT * (size_t)d), *ref = xalloc(sizeof(float) * NT * (size_t)d);
    float *out = xalloc(sizeof(float) * NT * (size_t)d), *one = xalloc(sizeof(float) * (size_t)d);
    for (int64_t i = 0; i < NT * d; i++)
        x[i] = frand(-1, 1);
    for (int tk = 0; tk < NT; tk++)
        ref_token(&t, x + tk * d, ref + tk * d);
    for (int exact = 1; exact >= 0; exact--) {
        al_moe_scratch *s = al_moe_scratch_new(&t.hp, d, NB, al_threadpool_size(g_pool), exact);
        assert_non_null(s);
        al_error err = {0};
        assert_int_equal(al_moe_forward(s, g_pool, exact, &t.hp, &t.ly, 0, d, x, NT, out, &err), AL_OK);
        double worst = 0, sq = 0, scale = rms(ref, NT * d);
        for (int64_t i = 0; i < NT * d; i++) {
            worst = fabs(out[i] - ref[i]) > worst ? fabs(out[i] - ref[i]) : worst;
            sq += (double)(out[i] - ref[i]) * (out[i] - ref[i]);
        }
        const double rdiff = sqrt(sq / (double)(NT * d));
        printf("  %s %s: max |diff| %.3g, rms diff %.3g (rms of the output %.3g)\n", what, exact ? "exact" : "native",
               worst, rdiff, scale);
        /* exact: only summation order differs; native: 8-bit activations
         * (about 1% of the output's rms here, a wrong bias or weight is
         * of the order of the output itself) */
        if (exact ? worst > 1e-5 * scale : (rdiff > 0.03 * scale || worst > 0.15 * scale))
            fail_msg("%s %s: max diff %g, rms diff %g vs rms %g", what, exact ? "exact" : "native", worst, rdiff,
                     scale);
        /* one token at a time: the same routing, the same result */
        double batch_diff = 0;
        for (int tk = 0; tk < NT; tk++) {
            assert_int_equal(al_moe_forward(s, g_pool, exact, &t.hp, &t.ly, 0, d, x + tk * d, 1, one, &err), AL_OK);
            for (int64_t i = 0; i < d; i++) {
                const double df = fabs(one[i] - out[tk * d + i]);
                batch_diff = df > batch_diff ? df : batch_diff;
            }
        }
        if (exact && batch_diff != 0.0)
            fail_msg("%s exact: one token at a time differs from the batch by %g", what, batch_diff);
        if (batch_diff != 0.0)
            fail_msg("%s native: one token at a time differs from the batch by %g", what, batch_diff);
        /* a NaN in a token's input: the router's score is NaN, a clean error */
        x[5 * d + 3] = NAN;
        assert_int_equal(al_moe_forward(s, g_pool, exact, &t.hp, &t.ly, 7, d, x, NT, out, &err), AL_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "layer 7"));
        assert_non_null(strstr(err.msg, "router"));
        x[5 * d + 3] = 0.25f;
        ref_token(&t, x + 5 * d, ref + 5 * d);
        al_moe_scratch_free(s);
    }
    free(x);
    free(ref);
    free(out);
    free(one);
    toy_free(&t);
}

static void test_forward(void **state)
{
    (void)state;
    const al_moe_hparams qwen3 = {.n_expert = 8, .n_expert_used = 2, .n_ff_exp = 256, .norm_topk = true,
                                  .weights_scale = 1, .gating = AL_MOE_GATING_SOFTMAX, .act = AL_MOE_ACT_SILU};
    const al_moe_hparams qwen2 = {.n_expert = 8, .n_expert_used = 4, .n_ff_exp = 256, .n_ff_shexp = 512,
                                  .weights_scale = 1, .gating = AL_MOE_GATING_SOFTMAX, .act = AL_MOE_ACT_SILU};
    const al_moe_hparams oss = {.n_expert = 8, .n_expert_used = 4, .n_ff_exp = 256, .weights_scale = 1,
                                .gating = AL_MOE_GATING_SOFTMAX_TOPK, .act = AL_MOE_ACT_SWIGLU_OAI};
    const al_moe_hparams sigm = {.n_expert = 16, .n_expert_used = 3, .n_ff_exp = 256, .norm_topk = true,
                                 .weights_scale = 2.5f, .gating = AL_MOE_GATING_SIGMOID, .act = AL_MOE_ACT_SILU};
    check_forward("qwen3moe Q8_0", qwen3, AL_TYPE_Q8_0, false, false);
    check_forward("qwen3moe Q4_K", qwen3, AL_TYPE_Q4_K, false, false);
    check_forward("qwen2moe Q8_0", qwen2, AL_TYPE_Q8_0, false, false);
    check_forward("qwen2moe Q6_K", qwen2, AL_TYPE_Q6_K, false, false);
    check_forward("gpt-oss Q8_0", oss, AL_TYPE_Q8_0, true, true);
    check_forward("sigmoid F16", sigm, AL_TYPE_F16, false, true);
}

/* ------------------------------------------------- load checks */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void gput(gbuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void gu32(gbuf *b, uint32_t v) { gput(b, &v, 4); }
static void gu64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s)
{
    gu64(b, strlen(s));
    gput(b, s, strlen(s));
}

typedef struct gkv {
    const char *key;
    uint32_t type; /* 4 u32, 6 f32, 7 bool */
    double v;
} gkv;
typedef struct gten {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[3];
} gten;

/* A GGUF of F32 tensors (zeros) with these keys; returns its path. */
static const char *write_gguf(const char *dir, const char *name, const gkv *kv, int n_kv, const gten *t, int n_t)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s.gguf", dir, name);
    gbuf b = {0};
    gput(&b, "GGUF", 4);
    gu32(&b, 3);
    gu64(&b, (uint64_t)n_t);
    gu64(&b, (uint64_t)n_kv + 1);
    gstr(&b, "general.architecture");
    gu32(&b, 8);
    gstr(&b, "qwen2moe");
    for (int i = 0; i < n_kv; i++) {
        gstr(&b, kv[i].key);
        gu32(&b, kv[i].type);
        if (kv[i].type == 4)
            gu32(&b, (uint32_t)kv[i].v);
        else if (kv[i].type == 6) {
            float f = (float)kv[i].v;
            gput(&b, &f, 4);
        } else {
            uint8_t v = kv[i].v != 0;
            gput(&b, &v, 1);
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        gstr(&b, t[i].name);
        gu32(&b, t[i].n_dims);
        uint64_t n = 1;
        for (uint32_t q = 0; q < t[i].n_dims; q++) {
            gu64(&b, t[i].ne[q]);
            n *= t[i].ne[q];
        }
        gu32(&b, AL_TYPE_F32);
        gu64(&b, off);
        off += (n * 4 + 31) / 32 * 32;
    }
    while (b.n % 32)
        gput(&b, "", 1);
    uint8_t *zeros = calloc(1, off + 1);
    gput(&b, zeros, off);
    free(zeros);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.p, 1, b.n, f), b.n);
    fclose(f);
    free(b.p);
    return path;
}

/* Loads hparams and layer 0 of a written file; returns the status and the message in msg. */
static al_status try_load(const char *path, al_moe_hparams *hp, char *msg, size_t cap)
{
    al_gguf *g = NULL;
    al_error err = {0};
    al_status st = al_gguf_open(path, NULL, &g, &err);
    if (!st) {
        hp->n_ff_shexp = 1; /* qwen2moe has a shared expert */
        hp->gating = AL_MOE_GATING_SOFTMAX;
        hp->weights_scale = 1;
        st = al_moe_load_hparams(g, path, "qwen2moe", 64, hp, &err);
    }
    if (!st) {
        al_moe_layer ly;
        st = al_moe_bind_layer(g, path, 0, hp, 32, &ly, &err);
        if (!st)
            al_moe_layer_free(&ly);
    }
    al_gguf_close(g);
    snprintf(msg, cap, "%.500s", err.msg);
    return st;
}

static void test_load_checks(void **state)
{
    (void)state;
    char dir[] = "/tmp/airlock_moe_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const gkv good_kv[] = {{"qwen2moe.expert_count", 4, 8}, {"qwen2moe.expert_used_count", 4, 2},
                           {"qwen2moe.expert_feed_forward_length", 4, 64},
                           {"qwen2moe.expert_shared_feed_forward_length", 4, 96}};
    const gten good_t[] = {{"blk.0.ffn_gate_inp.weight", 2, {32, 8}},
                           {"blk.0.ffn_gate_exps.weight", 3, {32, 64, 8}},
                           {"blk.0.ffn_up_exps.weight", 3, {32, 64, 8}},
                           {"blk.0.ffn_down_exps.weight", 3, {64, 32, 8}},
                           {"blk.0.ffn_gate_inp_shexp.weight", 1, {32}},
                           {"blk.0.ffn_gate_shexp.weight", 2, {32, 96}},
                           {"blk.0.ffn_up_shexp.weight", 2, {32, 96}},
                           {"blk.0.ffn_down_shexp.weight", 2, {96, 32}}};
    al_moe_hparams hp;
    char msg[600];
    const char *p = write_gguf(dir, "good", good_kv, 4, good_t, 8);
    memset(&hp, 0, sizeof(hp));
    assert_int_equal(try_load(p, &hp, msg, sizeof(msg)), AL_OK);
    assert_int_equal(hp.n_expert, 8);
    assert_int_equal(hp.n_expert_used, 2);
    assert_int_equal(hp.n_ff_exp, 64);
    assert_int_equal(hp.n_ff_shexp, 96);
    unlink(p);

    struct {
        const char *name;
        int kv_index;    /* key changed (or -1) */
        double value;    /* its new value */
        int t_index;     /* tensor changed (or -1) */
        uint32_t n_dims; /* its new shape */
        uint64_t ne2, ne1;
        const char *expect1, *expect2; /* in the message, with the file's path */
    } bad[] = {
        {"count0", 0, 0, -1, 0, 0, 0, "qwen2moe.expert_count", "= 0"},
        {"count513", 0, 513, -1, 0, 0, 0, "qwen2moe.expert_count", "= 513"},
        {"used9", 1, 9, -1, 0, 0, 0, "qwen2moe.expert_used_count", "= 9"},
        {"used0", 1, 0, -1, 0, 0, 0, "qwen2moe.expert_used_count", "= 0"},
        {"ff0", 2, 0, -1, 0, 0, 0, "qwen2moe.expert_feed_forward_length", "= 0"},
        {"gate7", -1, 0, 1, 3, 7, 64, "blk.0.ffn_gate_exps.weight", "holds 7 experts"},
        {"down9", -1, 0, 3, 3, 9, 32, "blk.0.ffn_down_exps.weight", "holds 9 experts"},
        {"up2d", -1, 0, 2, 2, 1, 64, "blk.0.ffn_up_exps.weight", "(2 dims)"},
        {"uprows", -1, 0, 2, 3, 8, 65, "blk.0.ffn_up_exps.weight", "[32, 65, 8]"},
        {"router", -1, 0, 0, 2, 1, 7, "blk.0.ffn_gate_inp.weight", "[32, 7]"},
        {"shexp", -1, 0, 6, 2, 1, 95, "blk.0.ffn_up_shexp.weight", "[32, 95]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gkv kv[4];
        gten t[8];
        memcpy(kv, good_kv, sizeof(kv));
        memcpy(t, good_t, sizeof(t));
        if (bad[i].kv_index >= 0)
            kv[bad[i].kv_index].v = bad[i].value;
        if (bad[i].t_index >= 0) {
            gten *tt = &t[bad[i].t_index];
            tt->n_dims = bad[i].n_dims;
            tt->ne[1] = bad[i].ne1;
            tt->ne[2] = bad[i].ne2;
        }
        p = write_gguf(dir, bad[i].name, kv, 4, t, 8);
        memset(&hp, 0, sizeof(hp));
        const al_status st = try_load(p, &hp, msg, sizeof(msg));
        printf("  %s: %s\n", bad[i].name, msg);
        if (st == AL_OK || !strstr(msg, p) || !strstr(msg, bad[i].expect1) || !strstr(msg, bad[i].expect2))
            fail_msg("%s: status %d, message '%s' (wanted '%s' and '%s')", bad[i].name, st, msg, bad[i].expect1,
                     bad[i].expect2);
        unlink(p);
    }
    /* no expert_count at all; a gating function nobody defined */
    p = write_gguf(dir, "nocount", good_kv + 1, 3, good_t, 8);
    assert_int_not_equal(try_load(p, &hp, msg, sizeof(msg)), AL_OK);
    assert_non_null(strstr(msg, "'qwen2moe.expert_count' is missing"));
    unlink(p);
    gkv kv5[5];
    memcpy(kv5, good_kv, sizeof(good_kv));
    kv5[4] = (gkv){"qwen2moe.expert_gating_func", 4, 9};
    p = write_gguf(dir, "gating9", kv5, 5, good_t, 8);
    assert_int_equal(try_load(p, &hp, msg, sizeof(msg)), AL_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, "expert_gating_func' = 9"));
    unlink(p);
    kv5[4] = (gkv){"qwen2moe.expert_weights_norm", 7, 1};
    p = write_gguf(dir, "norm", kv5, 5, good_t, 8);
    memset(&hp, 0, sizeof(hp));
    assert_int_equal(try_load(p, &hp, msg, sizeof(msg)), AL_OK);
    assert_true(hp.norm_topk);
    unlink(p);
    rmdir(dir);
}

/* ------------------------------------------------- batching, on real files */

enum { BI_PROMPT = 37, BI_GEN = 12 };

/* A context of two sequences; exact or fast. */
static al_context *bi_context(al_model *m, bool exact)
{
    al_context_params cp = al_context_default_params();
    cp.n_ctx = 128;
    cp.n_seq = 2;
    cp.exact = exact;
    cp.n_threads = 2;
    al_context *c = NULL;
    al_error err;
    assert_int_equal(al_context_new(m, &cp, &c, &err), AL_OK);
    return c;
}

static void bi_prompt(int32_t *p0, int32_t *p1, uint32_t n_vocab)
{
    for (int i = 0; i < BI_PROMPT; i++) {
        p0[i] = (int32_t)((i * 7919u + 11u) % n_vocab);
        p1[i] = (int32_t)((i * 104729u + 5u) % n_vocab);
    }
}

/* Sequence 0's prompt (alone in one batch, token by token, or interleaved
 * with sequence 1's in one batch), then BI_GEN greedy steps (alone, or
 * beside sequence 1 in each batch). Fills logits (n_vocab, after the
 * prompt) and the generated tokens. */
static void bi_run(al_model *m, bool exact, int mode, float *logits, int32_t *gen, uint32_t n_vocab)
{
    al_context *c = bi_context(m, exact);
    int32_t p0[BI_PROMPT], p1[BI_PROMPT], tok[2 * BI_PROMPT], pos[2 * BI_PROMPT], seq[2 * BI_PROMPT];
    bool want[2 * BI_PROMPT];
    bi_prompt(p0, p1, n_vocab);
    al_error err;
    const float *lg = NULL;
    if (mode == 0) { /* one batch */
        for (int i = 0; i < BI_PROMPT; i++) {
            tok[i] = p0[i];
            pos[i] = i;
            seq[i] = 0;
            want[i] = i == BI_PROMPT - 1;
        }
        al_batch b = {BI_PROMPT, tok, pos, seq, want};
        assert_int_equal(al_decode(c, &b, &err), AL_OK);
        lg = al_get_logits(c, BI_PROMPT - 1);
    } else if (mode == 1) { /* token by token */
        for (int i = 0; i < BI_PROMPT; i++) {
            bool w = i == BI_PROMPT - 1;
            int32_t s0 = 0;
            al_batch b = {1, &p0[i], &i, &s0, &w};
            assert_int_equal(al_decode(c, &b, &err), AL_OK);
        }
        lg = al_get_logits(c, 0);
    } else { /* interleaved with sequence 1 */
        for (int i = 0; i < BI_PROMPT; i++) {
            tok[2 * i] = p1[i];
            tok[2 * i + 1] = p0[i];
            pos[2 * i] = pos[2 * i + 1] = i;
            seq[2 * i] = 1;
            seq[2 * i + 1] = 0;
            want[2 * i] = want[2 * i + 1] = i == BI_PROMPT - 1;
        }
        al_batch b = {2 * BI_PROMPT, tok, pos, seq, want};
        assert_int_equal(al_decode(c, &b, &err), AL_OK);
        lg = al_get_logits(c, 2 * BI_PROMPT - 1);
    }
    assert_non_null(lg);
    memcpy(logits, lg, n_vocab * sizeof(float));
    int32_t next0 = 0, next1 = 0;
    for (uint32_t i = 1; i < n_vocab; i++)
        next0 = lg[i] > lg[next0] ? (int32_t)i : next0;
    if (mode == 2) {
        const float *l1 = al_get_logits(c, 2 * BI_PROMPT - 2);
        for (uint32_t i = 1; i < n_vocab; i++)
            next1 = l1[i] > l1[next1] ? (int32_t)i : next1;
    }
    for (int g = 0; g < BI_GEN; g++) {
        gen[g] = next0;
        const int32_t p = BI_PROMPT + g;
        int32_t bt[2] = {next1, next0}, bp[2] = {p, p}, bs[2] = {1, 0};
        bool bw[2] = {true, true};
        const int n = mode == 2 ? 2 : 1;
        al_batch b = {n, n == 2 ? bt : bt + 1, bp, n == 2 ? bs : bs + 1, bw};
        assert_int_equal(al_decode(c, &b, &err), AL_OK);
        const float *l0 = al_get_logits(c, n - 1);
        next0 = 0;
        for (uint32_t i = 1; i < n_vocab; i++)
            next0 = l0[i] > l0[next0] ? (int32_t)i : next0;
        if (n == 2) {
            const float *l1 = al_get_logits(c, 0);
            next1 = 0;
            for (uint32_t i = 1; i < n_vocab; i++)
                next1 = l1[i] > l1[next1] ? (int32_t)i : next1;
        }
    }
    al_context_free(c);
}

/* A token's result does not depend on its batch neighbours: on the exact
 * path the logits are bit for bit the same whether the prompt runs in one
 * batch, token by token, or interleaved with another sequence's; on the
 * fast path too, except that a prompt in one batch goes through the
 * attention tile kernel (close, not bitwise); greedy decoding beside
 * another sequence gives the same tokens as alone. The dense tiny-qwen3 is
 * the control. */
static void test_batch_invariance(void **state)
{
    (void)state;
    const char *shared = getenv("AIRLOCK_SHARED") ? getenv("AIRLOCK_SHARED") : "../shared";
    const char *files[] = {"tiny-qwen3-q8_0", "tiny-qwen3moe-q8_0", "tiny-qwen2moe-q4_k_m", "tiny-gpt-oss-mxfp4"};
    int tested = 0;
    for (size_t fi = 0; fi < sizeof(files) / sizeof(files[0]); fi++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/models/%s.gguf", shared, files[fi]);
        al_model *m = NULL;
        al_error err;
        if (access(path, R_OK) != 0) {
            printf("  %s not found: skipped\n", path);
            continue;
        }
        if (al_model_load(path, NULL, &m, &err) != AL_OK)
            fail_msg("%s: %s", path, err.msg);
        al_model_info info;
        al_model_get_info(m, &info);
        const uint32_t nv = info.n_vocab;
        float *lg[3];
        int32_t gen[3][BI_GEN];
        for (int exact = 1; exact >= 0; exact--) {
            for (int mode = 0; mode < 3; mode++) {
                lg[mode] = malloc(nv * sizeof(float));
                bi_run(m, exact, mode, lg[mode], gen[mode], nv);
            }
            /* [1] and [2] take the same attention kernel (one token per
             * tile); [0] takes the tile kernel, whose online softmax rounds
             * differently from the one-token kernel on the fast path */
            const int cmp[3][2] = {{1, 0}, {2, 0}, {2, 1}};
            for (int q = 0; q < 3; q++) {
                const int a = cmp[q][0], b = cmp[q][1];
                double worst = 0;
                for (uint32_t i = 0; i < nv; i++)
                    worst = fabs(lg[a][i] - lg[b][i]) > worst ? fabs(lg[a][i] - lg[b][i]) : worst;
                static const char *const names[] = {"one batch", "token by token", "interleaved"};
                printf("  %s %s: prompt %s vs %s: max |diff| %.3g\n", files[fi], exact ? "exact" : "fast", names[a],
                       names[b], worst);
                if ((exact || b == 1) ? worst != 0.0 : worst > 0.1)
                    fail_msg("%s %s: %s vs %s: logits differ by %g", files[fi], exact ? "exact" : "fast", names[a],
                             names[b], worst);
            }
            /* decoding beside another sequence: the same tokens */
            for (int g = 0; g < BI_GEN; g++)
                if (gen[2][g] != gen[1][g])
                    fail_msg("%s exact: greedy step %d: %d beside another sequence, %d alone", files[fi], g,
                             gen[2][g], gen[1][g]);
            for (int mode = 0; mode < 3; mode++)
                free(lg[mode]);
        }
        al_model_free(m);
        tested++;
    }
    if (!tested)
        printf("  no MoE model in %s/models: skipped\n", shared);
}

/* The prefetch of a file larger than memory (madvise WILLNEED on the
 * chosen experts' rows of the mapped file) changes no bit of the logits,
 * packed or not; a file this small is not streamed. */
static void test_prefetch(void **state)
{
    (void)state;
    const char *shared = getenv("AIRLOCK_SHARED") ? getenv("AIRLOCK_SHARED") : "../shared";
    const char *files[] = {"tiny-qwen3moe-q4_k_m", "tiny-gpt-oss-mxfp4"};
    int tested = 0;
    for (size_t fi = 0; fi < sizeof(files) / sizeof(files[0]); fi++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/models/%s.gguf", shared, files[fi]);
        if (access(path, R_OK) != 0) {
            printf("  %s not found: skipped\n", path);
            continue;
        }
        for (int pack = 0; pack < 2; pack++) {
            al_model_params mp = al_model_default_params();
            mp.pack_weights = pack;
            al_model *m = NULL;
            al_error err;
            if (al_model_load(path, &mp, &m, &err) != AL_OK)
                fail_msg("%s: %s", path, err.msg);
            assert_non_null(m->moe);
            assert_false(m->moe->prefetch);
            al_model_info info;
            al_model_get_info(m, &info);
            const uint32_t nv = info.n_vocab;
            float *lg[2] = {malloc(nv * sizeof(float)), malloc(nv * sizeof(float))};
            int32_t gen[2][BI_GEN];
            for (int on = 1; on >= 0; on--) { /* prefetching first: nothing packed yet */
                m->moe->prefetch = on;
                bi_run(m, false, 1, lg[on], gen[on], nv);
            }
            for (uint32_t i = 0; i < nv; i++)
                if (lg[1][i] != lg[0][i])
                    fail_msg("%s (packed %d): logit %u is %g prefetched, %g not", files[fi], pack, i,
                             (double)lg[1][i], (double)lg[0][i]);
            assert_memory_equal(gen[1], gen[0], sizeof(gen[0]));
            printf("  %s (packed %d): the same logits and %d tokens with the prefetch\n", files[fi], pack, BI_GEN);
            free(lg[0]);
            free(lg[1]);
            al_model_free(m);
        }
        tested++;
    }
    if (!tested)
        printf("  no MoE model in %s/models: skipped\n", shared);
}

int main(void)
{
    g_pool = al_threadpool_new(3);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouped),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_load_checks),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_prefetch),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    al_threadpool_free(g_pool);
    return rc;
}
