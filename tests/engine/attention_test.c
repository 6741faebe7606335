/* attention_test.c - the AVX2 attention kernels against their plain-C
 * reference twins, the half conversions against the hardware's, and the
 * forward pass's attention tiles on real models. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "airlock.h"
#include "model/attention.h"
#include "tensor/kernels.h"
#include "tensor/quant.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 11) * (1.0 / 9007199254740992.0));
}

static void test_half_round_trip(void **state)
{
    (void)state;
    /* Every finite half converts to float and back to itself. */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        assert_int_equal(al_fp32_to_fp16(al_fp16_to_fp32((uint16_t)h)), h);
    }
}

static void test_to_f16_matches_hardware(void **state)
{
    (void)state;
    const al_attn_kernels *fast = al_attn_kernels_avx2(), *ref = al_attn_kernels_ref();
    if (!al_cpu_has_avx2()) /* CPUID AVX2+FMA+F16C and XGETBV */
        skip();
    enum { N = 4099 };
    float *src = malloc(N * sizeof(float));
    uint16_t *a = malloc(N * 2), *b = malloc(N * 2);
    for (int i = 0; i < N; i++) {
        float mag = powf(2.0f, frand(-26.0f, 17.0f)); /* subnormals through overflow */
        src[i] = frand(-1, 1) < 0 ? -mag : mag;
    }
    src[0] = 0.0f;
    src[1] = -0.0f;
    src[2] = 65519.0f;
    src[3] = 65520.0f;
    fast->to_f16(src, a, N);
    ref->to_f16(src, b, N);
    for (int i = 0; i < N; i++)
        if (a[i] != b[i])
            fail_msg("element %d: %g -> hw %04x, ref %04x", i, (double)src[i], a[i], b[i]);
    free(src);
    free(a);
    free(b);
}

/* A query or key element: mode 0 and 1 uniform in [-amp, amp); mode 2 an
 * integer in -16..16, so that every q.k is exact and the scores (hundreds
 * apart: most e^(s - max) underflow to 0) are the same for both kernels
 * whatever their order of summation. */
static float draw(int mode, float amp)
{
    return mode == 2 ? floorf(frand(-16.0f, 17.0f)) : frand(-amp, amp);
}

/* The AVX2 attention kernels, or NULL (and a note) on a machine without. */
static const al_attn_kernels *avx2_or_skip(void)
{
    const al_attn_kernels *fast = al_attn_kernels_avx2();
    if (!fast || !al_cpu_has_avx2()) {
        printf("  no AVX2 kernels on this machine: skipped\n");
        return NULL;
    }
    return fast;
}

/* attend_f16 (AVX2, heads in groups of up to 4, positions in register
 * tiles of 8/4/2 and one by one after) against the reference, one head at
 * a time: group sizes 1..9 (every split into groups), head sizes 128/64/48/
 * 40/8 (vector path: slices of 32, 16 and 8 dimensions) and 36 (falls
 * back), one position and many (not multiples of the tiles), large score
 * ranges (softmax saturation, scores far below the max: e^x underflows). */
static void test_attend(void **state)
{
    (void)state;
    const al_attn_kernels *fast = avx2_or_skip(), *ref = al_attn_kernels_ref();
    if (!fast)
        return;
    const uint32_t hds[] = {128, 64, 48, 40, 8, 36};
    const int32_t npos[] = {1, 2, 3, 5, 7, 8, 9, 33, 300};
    for (size_t hi = 0; hi < 6; hi++)
        for (uint32_t nh = 1; nh <= 9; nh++)
            for (size_t pi = 0; pi < 9; pi++)
                for (int mode = 0; mode < 3; mode++) {
                    const uint32_t hd = hds[hi], n_kv = 3;
                    const int32_t n = npos[pi];
                    const size_t stride = (size_t)n_kv * hd;
                    float *q = malloc((size_t)nh * hd * 4), *sc = malloc((size_t)nh * n * 4);
                    float *o1 = malloc((size_t)nh * hd * 4), *o2 = malloc((size_t)nh * hd * 4);
                    uint16_t *k = malloc((size_t)n * stride * 2), *v = malloc((size_t)n * stride * 2);
                    assert_true(q && sc && o1 && o2 && k && v);
                    const float amp = mode ? 8.0f : 1.0f;
                    for (size_t i = 0; i < (size_t)nh * hd; i++)
                        q[i] = draw(mode, amp);
                    for (size_t i = 0; i < (size_t)n * stride; i++) {
                        k[i] = al_fp32_to_fp16(draw(mode, amp));
                        v[i] = al_fp32_to_fp16(frand(-2, 2));
                    }
                    const float scale = 1.0f / sqrtf((float)hd);
                    /* the KV head in the middle of the row: offset hd */
                    ref->attend_f16(q, nh, k + hd, v + hd, stride, n, hd, scale, sc, o1);
                    fast->attend_f16(q, nh, k + hd, v + hd, stride, n, hd, scale, sc, o2);
                    for (size_t i = 0; i < (size_t)nh * hd; i++)
                        if (!(fabsf(o1[i] - o2[i]) <= 1e-4f + 1e-4f * fabsf(o1[i])))
                            fail_msg("attend hd %u nh %u n_pos %d mode %d: [%zu] %.7g vs ref %.7g", hd, nh, n, mode,
                                     i, o2[i], o1[i]);
                    if (n == 1) /* one position: every head's output is that V row */
                        for (size_t i = 0; i < (size_t)nh * hd; i++)
                            assert_true(fabsf(o2[i] - al_fp16_to_fp32(v[hd + i % hd])) <= 1e-6f);
                    free(q), free(sc), free(o1), free(o2), free(k), free(v);
                }
}

/* attend_tile_f16 (AVX2, online softmax over blocks of positions) against
 * the reference (token by token): head sizes 128/64/48 (vector path) and
 * 40 (falls back), groups 1..4, tiles of 2..33 tokens (row counts that are
 * not multiples of 4, and over the row limit: falls back), first positions
 * on and off the block boundaries, large score ranges. Queries and outputs
 * are laid out as in the forward pass (rows of all heads, the group in the
 * middle); what lies outside the tile's output rows stays untouched. */
static void test_attend_tile(void **state)
{
    (void)state;
    const al_attn_kernels *fast = avx2_or_skip(), *ref = al_attn_kernels_ref();
    if (!fast)
        return;
    const uint32_t hds[] = {128, 64, 48, 40};
    const uint32_t ntoks[] = {2, 3, 16, 17, 33};
    const int32_t pos0s[] = {0, 5, 31, 32, 70};
    const float sentinel = 12345.0f;
    int n_cases = 0;
    for (size_t hi = 0; hi < 4; hi++)
        for (uint32_t nh = 1; nh <= 4; nh++)
            for (size_t ti = 0; ti < 5; ti++)
                for (size_t pi = 0; pi < 5; pi++)
                    for (int mode = 0; mode < 3; mode++) {
                        const uint32_t hd = hds[hi], n_tok = ntoks[ti], n_kv = 3;
                        const int32_t pos0 = pos0s[pi], n_pos = pos0 + (int32_t)n_tok;
                        const size_t stride = (size_t)n_kv * hd, ld = (size_t)(nh + 2) * hd + 8;
                        const size_t n_q = (size_t)n_tok * ld;
                        const size_t n_scr = al_attn_tile_scratch_floats(nh, n_tok, hd, (uint32_t)n_pos);
                        float *q = malloc(n_q * 4), *o1 = malloc(n_q * 4), *o2 = malloc(n_q * 4);
                        float *scr = malloc(n_scr * 4);
                        uint16_t *k = malloc((size_t)n_pos * stride * 2), *v = malloc((size_t)n_pos * stride * 2);
                        assert_true(q && o1 && o2 && scr && k && v);
                        const float amp = mode ? 8.0f : 1.0f;
                        for (size_t i = 0; i < n_q; i++) {
                            q[i] = draw(mode, amp);
                            o1[i] = o2[i] = sentinel;
                        }
                        for (size_t i = 0; i < (size_t)n_pos * stride; i++) {
                            k[i] = al_fp32_to_fp16(draw(mode, amp));
                            v[i] = al_fp32_to_fp16(frand(-2, 2));
                        }
                        /* the group's heads start one head into each row */
                        al_attn_tile t = {q + hd, ld, o1 + hd, ld, k + hd, v + hd, stride,
                                          nh, n_tok, hd, pos0, 1.0f / sqrtf((float)hd), 0, 0, 0.0f, NULL};
                        ref->attend_tile_f16(&t, scr);
                        t.out = o2 + hd;
                        fast->attend_tile_f16(&t, scr);
                        for (uint32_t j = 0; j < n_tok; j++)
                            for (size_t i = 0; i < ld; i++) {
                                const size_t at = (size_t)j * ld + i;
                                const bool inside = i >= hd && i < (size_t)(nh + 1) * hd;
                                if (!inside) {
                                    if (o2[at] != sentinel)
                                        fail_msg("tile hd %u nh %u n_tok %u pos0 %d: wrote outside the tile at "
                                                 "token %u [%zu]", hd, nh, n_tok, pos0, j, i);
                                    continue;
                                }
                                if (!(fabsf(o1[at] - o2[at]) <= 1e-4f + 1e-4f * fabsf(o1[at])))
                                    fail_msg("tile hd %u nh %u n_tok %u pos0 %d mode %d: token %u [%zu] %.7g vs "
                                             "ref %.7g", hd, nh, n_tok, pos0, mode, j, i, o2[at], o1[at]);
                            }
                        if (pos0 == 0) /* token 0 sees one position: its output is that V row */
                            for (uint32_t h = 0; h < nh; h++)
                                for (size_t i = 0; i < hd; i++)
                                    assert_true(fabsf(o2[hd + h * hd + i] - al_fp16_to_fp32(v[hd + i])) <= 1e-6f);
                        free(q), free(o1), free(o2), free(scr), free(k), free(v);
                        n_cases++;
                    }
    printf("  %d tiles agree with the reference\n", n_cases);
}

static double cosine(const float *a, const float *b, uint32_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa * bb) + 1e-30);
}

static int g_missing; /* shared models not found: the run reports a skip */

/* Loads models/<name> of the shared data into *m; false (the test skips
 * the model, and main reports the skip) when the file is not there. A file
 * that is there must load. */
static bool load_shared(const char *name, al_model **m)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    char path[4096];
    al_error err;
    snprintf(path, sizeof(path), "%s/models/%s", shared ? shared : "../shared", name);
    if (access(path, R_OK) != 0) {
        printf("  %s not found (set AIRLOCK_SHARED): skipped\n", path);
        g_missing++;
        return false;
    }
    if (al_model_load(path, NULL, m, &err) != AL_OK)
        fail_msg("%s: %s", path, err.msg);
    return true;
}

/* A context of n_ctx positions for n_seq sequences (n_threads 0: the
 * default). */
static al_context *new_ctx(al_model *m, uint32_t n_ctx, uint32_t n_seq, int n_threads)
{
    al_context_params cp = al_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_seq = n_seq;
    if (n_threads > 0)
        cp.n_threads = n_threads;
    al_context *cx;
    al_error err;
    assert_int_equal(al_context_new(m, &cp, &cx, &err), AL_OK);
    return cx;
}

/* The test prompt of n tokens (positions 0..n-1) into toks/pos, decoded in
 * one batch of sequence 0 with the last token's logits wanted (want[n -
 * 1], the others not); those logits into out. */
static void decode_prompt(al_context *cx, uint32_t n_vocab, int32_t *toks, int32_t *pos, bool *want, int n, float *out)
{
    for (int i = 0; i < n; i++) {
        toks[i] = (int32_t)((7919u * (uint32_t)(i + 3)) % n_vocab);
        pos[i] = i;
        want[i] = i == n - 1;
    }
    al_batch b = {n, toks, pos, NULL, want};
    al_error err;
    assert_int_equal(al_decode(cx, &b, &err), AL_OK);
    memcpy(out, al_get_logits(cx, n - 1), n_vocab * 4);
}

/* A prompt in one batch (tiles) against the same prompt one token per
 * batch (the per-token kernel), and two sequences in one batch, their
 * tokens in runs of several lengths, against it again: the tiling follows
 * sequences and positions, and each sequence's logits stay the same. */
static void test_prompt_tiles(void **state)
{
    (void)state;
    const char *names[] = {"tiny-qwen3-q8_0.gguf", "tiny-llama-q4_0.gguf", "stories260K.gguf"};
    enum { N = 45 };
    for (size_t mi = 0; mi < 3; mi++) {
        al_model *m;
        al_error err;
        if (!load_shared(names[mi], &m))
            continue;
        al_model_info info;
        al_model_get_info(m, &info);
        al_context *cx = new_ctx(m, 64, 2, 0);
        int32_t toks[N], pos[N];
        bool want[N];
        float *whole = malloc(info.n_vocab * 4), *steps = malloc(info.n_vocab * 4);
        assert_true(whole && steps);
        decode_prompt(cx, info.n_vocab, toks, pos, want, N, whole);

        al_kv_clear(cx);
        for (int i = 0; i < N; i++) {
            bool w = i == N - 1;
            al_batch b1 = {1, &toks[i], &pos[i], NULL, &w};
            assert_int_equal(al_decode(cx, &b1, &err), AL_OK);
        }
        memcpy(steps, al_get_logits(cx, 0), info.n_vocab * 4);

        /* both sequences in one batch: seq 0 positions 0..9, seq 1 0..19,
         * seq 0 10..44 with one position of seq 1 in between, seq 1 20..44 */
        al_kv_clear(cx);
        int32_t mt[2 * N], mp[2 * N], ms[2 * N];
        bool mw[2 * N] = {0};
        int n = 0, last[2] = {-1, -1};
        const int runs[][3] = {{0, 0, 10}, {1, 0, 20}, {0, 10, 30}, {1, 20, 21}, {0, 30, N}, {1, 21, N}};
        for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++)
            for (int p = runs[r][1]; p < runs[r][2]; p++) {
                mt[n] = toks[p], mp[n] = p, ms[n] = runs[r][0];
                if (p == N - 1)
                    last[runs[r][0]] = n;
                n++;
            }
        mw[last[0]] = mw[last[1]] = true;
        al_batch bm = {n, mt, mp, ms, mw};
        assert_int_equal(al_decode(cx, &bm, &err), AL_OK);
        double worst = cosine(whole, steps, info.n_vocab);
        float diff = 0.0f;
        for (uint32_t i = 0; i < info.n_vocab; i++)
            diff = fmaxf(diff, fabsf(whole[i] - steps[i]));
        for (int s = 0; s < 2; s++) {
            const float *lg = al_get_logits(cx, last[s]);
            assert_non_null(lg);
            double cs = cosine(whole, lg, info.n_vocab);
            worst = cs < worst ? cs : worst;
            for (uint32_t i = 0; i < info.n_vocab; i++)
                diff = fmaxf(diff, fabsf(whole[i] - lg[i]));
        }
        printf("  %s: prompt as tiles vs token by token vs two sequences in one batch: worst cosine %.7f, "
               "largest logit difference %.2g\n", names[mi], worst, (double)diff);
        assert_true(worst > 0.99999);
        assert_true(diff < 0.02f);
        free(whole);
        free(steps);
        al_context_free(cx);
        al_model_free(m);
    }
}

/* The Q8_0 KV cache on real models: a prompt then 8 single-token steps,
 * logits close to the F16 cache's (cosine) but not identical (the Q8_0 path
 * is really taken), the same greedy token at most steps; sequence copy and
 * truncation work on it. */
static void test_kv_q8_0(void **state)
{
    (void)state;
    const char *names[] = {"tiny-qwen3-q8_0.gguf", "tiny-llama-q4_k_m.gguf"};
    for (size_t mi = 0; mi < 2; mi++) {
        al_model *m;
        al_error err;
        if (!load_shared(names[mi], &m))
            continue;
        al_model_info info;
        al_model_get_info(m, &info);
        al_context *cx[2];
        for (int i = 0; i < 2; i++) {
            al_context_params cp = al_context_default_params();
            cp.n_ctx = 64;
            cp.n_seq = 2;
            cp.kv_type = i ? AL_KV_Q8_0 : AL_KV_F16;
            assert_int_equal(al_context_new(m, &cp, &cx[i], &err), AL_OK);
        }
        int32_t toks[24], pos[24];
        bool want[24] = {0};
        for (int i = 0; i < 24; i++) {
            toks[i] = (int32_t)((1000003u * (uint32_t)(i + 1)) % info.n_vocab);
            pos[i] = i;
        }
        want[15] = true;
        double worst = 1.0;
        bool differs = false; /* the Q8_0 cache is really in use */
        int same = 0;
        int32_t next[2] = {0, 0};
        for (int i = 0; i < 2; i++) {
            al_batch b = {16, toks, pos, NULL, want};
            assert_int_equal(al_decode(cx[i], &b, &err), AL_OK);
        }
        for (int step = 0; step <= 8; step++) {
            const float *lg[2];
            for (int i = 0; i < 2; i++) {
                lg[i] = al_get_logits(cx[i], step == 0 ? 15 : 0);
                assert_non_null(lg[i]);
            }
            double cs = cosine(lg[0], lg[1], info.n_vocab);
            worst = cs < worst ? cs : worst;
            for (uint32_t v = 0; v < info.n_vocab; v++)
                differs = differs || lg[0][v] != lg[1][v];
            for (int i = 0; i < 2; i++) {
                uint32_t best = 0;
                for (uint32_t v = 1; v < info.n_vocab; v++)
                    if (lg[i][v] > lg[i][best])
                        best = v;
                next[i] = (int32_t)best;
            }
            same += next[0] == next[1];
            if (step == 8)
                break;
            int32_t p = 16 + step, tok = next[0]; /* both follow the F16 path */
            bool w = true;
            for (int i = 0; i < 2; i++) {
                al_batch b = {1, &tok, &p, NULL, &w};
                assert_int_equal(al_decode(cx[i], &b, &err), AL_OK);
            }
        }
        /* sequence copy and truncation work on the Q8_0 cache too */
        al_kv_seq_copy(cx[1], 0, 1, 10);
        assert_int_equal(al_kv_seq_len(cx[1], 1), 10);
        al_kv_seq_truncate(cx[1], 1, 5);
        assert_int_equal(al_kv_seq_len(cx[1], 1), 5);
        printf("  %s: Q8_0 vs F16 KV cache: worst logits cosine %.5f, same greedy token %d of 9\n", names[mi],
               worst, same);
        assert_true(worst > 0.99);
        assert_true(same >= 7);
        assert_true(differs);
        al_context_free(cx[0]);
        al_context_free(cx[1]);
        al_model_free(m);
    }
}

/* Decode at depth, which splits a token's attention over segments of
 * positions (AL_ATTN_SEG) on several threads and folds them, against the
 * prompt's tiles: a 600-token prompt in one batch, the same prompt with
 * its last token as a decode step, and that step beside four other
 * sequences' steps (five tokens: the split by KV head instead). The fold
 * order is the tiles' (attention_tile_test holds the kernels to the same
 * bits); here the whole model's logits agree, windows and sinks included. */
static void test_long_decode(void **state)
{
    (void)state;
    const char *names[] = {"tiny-qwen3-q8_0.gguf", "tiny-gpt-oss-mxfp4.gguf", "tiny-gemma2-q8_0.gguf",
                           "stories260K.gguf"};
    enum { N = 600, NS = 5 };
    for (size_t mi = 0; mi < sizeof(names) / sizeof(names[0]); mi++) {
        al_model *m;
        al_error err;
        if (!load_shared(names[mi], &m))
            continue;
        al_model_info info;
        al_model_get_info(m, &info);
        al_context *cx = new_ctx(m, 640, NS, 2);
        int32_t toks[N], pos[N];
        bool want[N];
        float *whole = malloc(info.n_vocab * 4), *step = malloc(info.n_vocab * 4);
        assert_true(whole && step);
        decode_prompt(cx, info.n_vocab, toks, pos, want, N, whole);

        /* every sequence holds the prompt but its last token */
        al_kv_clear(cx);
        al_batch b = {N - 1, toks, pos, NULL, want};
        assert_int_equal(al_decode(cx, &b, &err), AL_OK);
        for (int s = 1; s < NS; s++)
            al_kv_seq_copy(cx, 0, s, N - 1);
        bool w = true;
        int32_t seq0 = 0;
        al_batch b1 = {1, &toks[N - 1], &pos[N - 1], &seq0, &w};
        assert_int_equal(al_decode(cx, &b1, &err), AL_OK);
        memcpy(step, al_get_logits(cx, 0), info.n_vocab * 4);
        int32_t mt[NS], mp[NS], ms[NS];
        bool mw[NS];
        for (int s = 0; s < NS; s++)
            mt[s] = toks[N - 1], mp[s] = N - 1, ms[s] = s, mw[s] = true;
        al_kv_seq_truncate(cx, 0, N - 1);
        al_batch bm = {NS, mt, mp, ms, mw};
        assert_int_equal(al_decode(cx, &bm, &err), AL_OK);

        double worst = cosine(whole, step, info.n_vocab);
        float diff = 0.0f;
        bool same_bits = true;
        for (uint32_t i = 0; i < info.n_vocab; i++)
            diff = fmaxf(diff, fabsf(whole[i] - step[i]));
        for (int s = 0; s < NS; s++) {
            const float *lg = al_get_logits(cx, s);
            assert_non_null(lg);
            double cs = cosine(step, lg, info.n_vocab);
            worst = cs < worst ? cs : worst;
            for (uint32_t i = 0; i < info.n_vocab; i++) {
                diff = fmaxf(diff, fabsf(step[i] - lg[i]));
                same_bits = same_bits && step[i] == lg[i];
            }
        }
        printf("  %s: %d-token prompt vs its last token as a decode step, alone and among %d: worst cosine %.7f, "
               "largest logit difference %.2g, five-token step %s the one-token step's bits\n", names[mi], N, NS,
               worst, (double)diff, same_bits ? "has" : "differs from");
        assert_true(worst > 0.99999);
        /* the split step folds its segments in the prompt tile's order:
         * the prompt's bits, alone or among others */
        assert_true(diff == 0.0f);
        assert_true(same_bits);
        free(whole);
        free(step);
        al_context_free(cx);
        al_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_round_trip),
        cmocka_unit_test(test_to_f16_matches_hardware),
        cmocka_unit_test(test_attend),
        cmocka_unit_test(test_attend_tile),
        cmocka_unit_test(test_prompt_tiles),
        cmocka_unit_test(test_kv_q8_0),
        cmocka_unit_test(test_long_decode),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && g_missing > 0) {
        printf("SKIP: %d shared model(s) not found (set AIRLOCK_SHARED)\n", g_missing);
        return 77;
    }
    return failed;
}
