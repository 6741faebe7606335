/*
 * sampling_test.c - the sampler chain, al_logprob, stop strings and the
 * JSON-object guard. Distribution checks draw many samples from a small
 * vocabulary and use generous bounds (no timing assertions). The JSON
 * constraint is a grammar now: tests/sampling/grammar_test.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "airlock.h"

static al_sampler_params plain_params(float temp, uint64_t seed)
{
    al_sampler_params p = al_sampler_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.seed = seed;
    return p;
}

/* Draws n tokens and counts each id into hist[n_vocab]. */
static void draw_hist(al_sampler *s, const float *logits, int n, int *hist, int n_vocab)
{
    memset(hist, 0, sizeof(int) * (size_t)n_vocab);
    for (int i = 0; i < n; i++) {
        int32_t t = al_sampler_sample(s, logits);
        assert_true(t >= 0 && t < n_vocab);
        hist[t]++;
    }
}

static void test_defaults(void **st)
{
    (void)st;
    al_sampler_params p = al_sampler_default_params();
    assert_float_equal(p.temperature, 0.8f, 1e-6);
    assert_int_equal(p.top_k, 40);
    assert_float_equal(p.top_p, 0.95f, 1e-6);
    assert_float_equal(p.min_p, 0.05f, 1e-6);
    assert_float_equal(p.repeat_penalty, 1.0f, 1e-6);
    assert_int_equal(p.repeat_last_n, 64);
    assert_true(p.seed == AL_SEED_RANDOM);
    assert_null(al_sampler_new(&p, 0));
    al_sampler_free(NULL);
    al_stop_free(NULL);
}

static void test_greedy(void **st)
{
    (void)st;
    float lg[10] = {0.1f, 2.0f, -1.0f, 7.5f, 3.0f, 7.5f, -INFINITY, 0.0f, 1.0f, 7.4f};
    al_sampler_params p = plain_params(0.0f, 1);
    al_sampler *s = al_sampler_new(&p, 10);
    assert_non_null(s);
    for (int i = 0; i < 5; i++)
        assert_int_equal(al_sampler_sample(s, lg), 3); /* tie 3/5: lowest id */
    lg[5] = 7.6f;
    assert_int_equal(al_sampler_sample(s, lg), 5);
    assert_float_equal(lg[5], 7.6f, 0); /* logits untouched */
    al_sampler_free(s);

    /* negative temperature is greedy too */
    p.temperature = -1.0f;
    s = al_sampler_new(&p, 10);
    assert_int_equal(al_sampler_sample(s, lg), 5);
    al_sampler_free(s);
}

static void fill_random_logits(float *lg, int n, unsigned seed)
{
    srand(seed);
    for (int i = 0; i < n; i++)
        lg[i] = (float)rand() / (float)RAND_MAX * 4.0f;
}

static void test_seed_determinism(void **st)
{
    (void)st;
    enum { V = 50, N = 200 };
    float lg[V];
    fill_random_logits(lg, V, 7);
    al_sampler_params p = plain_params(1.0f, 1234);
    al_sampler *a = al_sampler_new(&p, V), *b = al_sampler_new(&p, V);
    p.seed = 1235;
    al_sampler *c = al_sampler_new(&p, V);
    int32_t sa[N], sb[N], sc[N];
    for (int i = 0; i < N; i++) {
        sa[i] = al_sampler_sample(a, lg);
        sb[i] = al_sampler_sample(b, lg);
        sc[i] = al_sampler_sample(c, lg);
    }
    assert_memory_equal(sa, sb, sizeof sa);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += sa[i] != sc[i];
    assert_true(differ > N / 4); /* near-uniform over 50 ids: most differ */
    al_sampler_free(a);
    al_sampler_free(b);
    al_sampler_free(c);

    /* two random-seed samplers almost surely differ */
    p.seed = AL_SEED_RANDOM;
    a = al_sampler_new(&p, V);
    b = al_sampler_new(&p, V);
    differ = 0;
    for (int i = 0; i < N; i++)
        differ += al_sampler_sample(a, lg) != al_sampler_sample(b, lg);
    assert_true(differ > 0);
    al_sampler_free(a);
    al_sampler_free(b);
}

static void test_topk1_is_greedy(void **st)
{
    (void)st;
    enum { V = 1000 };
    float *lg = malloc(V * sizeof *lg);
    al_sampler_params pg = plain_params(0.0f, 1), pk = al_sampler_default_params();
    pk.top_k = 1;
    pk.temperature = 1.5f;
    pk.seed = 99;
    al_sampler *g = al_sampler_new(&pg, V), *k = al_sampler_new(&pk, V);
    for (unsigned r = 0; r < 20; r++) {
        fill_random_logits(lg, V, r + 1);
        assert_int_equal(al_sampler_sample(k, lg), al_sampler_sample(g, lg));
    }
    al_sampler_free(g);
    al_sampler_free(k);
    free(lg);
}

static void test_topk_set(void **st)
{
    (void)st;
    /* ids 0..7 with logits 0..7: top-k 3 keeps exactly {5,6,7} */
    float lg[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    al_sampler_params p = plain_params(1.0f, 5);
    p.top_k = 3;
    al_sampler *s = al_sampler_new(&p, 8);
    int h[8];
    draw_hist(s, lg, 4000, h, 8);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h[i], 0);
    /* relative frequencies e^0 : e^-1 : e^-2 of the three = .665 .245 .090 */
    assert_true(h[7] > 2400 && h[7] < 2920);
    assert_true(h[6] > 780 && h[6] < 1180);
    assert_true(h[5] > 220 && h[5] < 520);
    al_sampler_free(s);
}

static void test_topp_set(void **st)
{
    (void)st;
    /* probabilities .5 .3 .15 .05 (logits = log p) */
    float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    al_sampler_params p = plain_params(1.0f, 11);
    p.top_p = 0.7f; /* .5 < .7 <= .8: keeps {0,1} */
    al_sampler *s = al_sampler_new(&p, 4);
    int h[4];
    draw_hist(s, lg, 4000, h, 4);
    assert_int_equal(h[2], 0);
    assert_int_equal(h[3], 0);
    /* renormalised .625 / .375 */
    assert_true(h[0] > 2300 && h[0] < 2700);
    al_sampler_free(s);

    p.top_p = 0.9f; /* keeps {0,1,2} */
    s = al_sampler_new(&p, 4);
    draw_hist(s, lg, 4000, h, 4);
    assert_true(h[2] > 300);
    assert_int_equal(h[3], 0);
    al_sampler_free(s);

    p.top_p = 0.4f; /* the first token alone already has .5 */
    s = al_sampler_new(&p, 4);
    draw_hist(s, lg, 500, h, 4);
    assert_int_equal(h[0], 500);
    al_sampler_free(s);
}

static void test_topp_large_vocab(void **st)
{
    (void)st;
    /* a large vocab with top-k off exercises the incremental sort: 300
     * tokens at logit 5, the rest at 0. top-p 0.5 keeps only those 300
     * (their mass is 300e5/(300e5+N-300) ~ .78). */
    enum { V = 20000 };
    float *lg = calloc(V, sizeof *lg);
    for (int i = 0; i < 300; i++)
        lg[(i * 61) % V] = 5.0f;
    al_sampler_params p = plain_params(1.0f, 3);
    p.top_p = 0.5f;
    al_sampler *s = al_sampler_new(&p, V);
    for (int i = 0; i < 300; i++) {
        int32_t t = al_sampler_sample(s, lg);
        assert_true(t >= 0 && t < V);
        assert_float_equal(lg[t], 5.0f, 0);
    }
    al_sampler_free(s);
    free(lg);
}

static void test_minp_set(void **st)
{
    (void)st;
    /* p = .6 .25 .1 .05; min_p .15 -> threshold .09: keeps {0,1,2} */
    float lg[4] = {logf(0.6f), logf(0.25f), logf(0.1f), logf(0.05f)};
    al_sampler_params p = plain_params(1.0f, 17);
    p.min_p = 0.15f;
    al_sampler *s = al_sampler_new(&p, 4);
    int h[4];
    draw_hist(s, lg, 4000, h, 4);
    assert_int_equal(h[3], 0);
    assert_true(h[2] > 250 && h[2] < 600); /* .1/.95 = .105 -> 421 */
    al_sampler_free(s);

    p.min_p = 0.5f; /* threshold .3: keeps {0} */
    s = al_sampler_new(&p, 4);
    draw_hist(s, lg, 500, h, 4);
    assert_int_equal(h[0], 500);
    al_sampler_free(s);
}

static void test_temperature(void **st)
{
    (void)st;
    /* two tokens, logits 1 and 0: at T=1 p0 = .731; at T=0.25 p0 = .982 */
    float lg[2] = {1.0f, 0.0f};
    al_sampler_params p = plain_params(1.0f, 23);
    al_sampler *s = al_sampler_new(&p, 2);
    int h[2];
    draw_hist(s, lg, 10000, h, 2);
    assert_true(h[0] > 7000 && h[0] < 7600);
    al_sampler_free(s);
    p.temperature = 0.25f;
    s = al_sampler_new(&p, 2);
    draw_hist(s, lg, 10000, h, 2);
    assert_true(h[0] > 9650);
    al_sampler_free(s);
}

static void test_penalties(void **st)
{
    (void)st;
    /* repeat penalty: token 0 (logit 2.0) was seen, penalty 2 -> 1.0 < 1.5 */
    float lg[3] = {2.0f, 1.5f, -3.0f};
    al_sampler_params p = plain_params(0.0f, 1);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 4;
    al_sampler *s = al_sampler_new(&p, 3);
    assert_int_equal(al_sampler_sample(s, lg), 0);
    al_sampler_accept(s, 0);
    assert_int_equal(al_sampler_sample(s, lg), 1);
    al_sampler_free(s);

    /* negative logits are multiplied: -1 seen with penalty 2 -> -2 < -1.5 */
    float ln[2] = {-1.0f, -1.5f};
    s = al_sampler_new(&p, 2);
    al_sampler_accept(s, 0);
    assert_int_equal(al_sampler_sample(s, ln), 1);
    al_sampler_free(s);

    /* window: after 4 other tokens, token 0 is forgotten */
    s = al_sampler_new(&p, 3);
    al_sampler_accept(s, 0);
    for (int i = 0; i < 4; i++)
        al_sampler_accept(s, 2);
    assert_int_equal(al_sampler_sample(s, lg), 0);
    al_sampler_free(s);

    /* frequency: 0 seen 3x with freq .2 -> 2 - .6 = 1.4 < 1.5; seen 2x -> 1.6 */
    p = plain_params(0.0f, 1);
    p.frequency_penalty = 0.2f;
    p.repeat_last_n = 64;
    s = al_sampler_new(&p, 3);
    al_sampler_accept(s, 0);
    al_sampler_accept(s, 0);
    assert_int_equal(al_sampler_sample(s, lg), 0);
    al_sampler_accept(s, 0);
    assert_int_equal(al_sampler_sample(s, lg), 1);
    al_sampler_free(s);

    /* presence: once, independent of count: .4 -> 1.6 > 1.5; .6 -> 1.4 */
    p = plain_params(0.0f, 1);
    p.presence_penalty = 0.4f;
    s = al_sampler_new(&p, 3);
    for (int i = 0; i < 10; i++)
        al_sampler_accept(s, 0);
    assert_int_equal(al_sampler_sample(s, lg), 0);
    al_sampler_free(s);
    p.presence_penalty = 0.6f;
    s = al_sampler_new(&p, 3);
    al_sampler_accept(s, 0);
    assert_int_equal(al_sampler_sample(s, lg), 1);
    /* a negative presence penalty (OpenAI allows -2..2) favours seen tokens */
    al_sampler_free(s);
    p.presence_penalty = -6.0f;
    s = al_sampler_new(&p, 3);
    al_sampler_accept(s, 2);
    assert_int_equal(al_sampler_sample(s, lg), 2);
    al_sampler_free(s);

    /* repeat_last_n 0 turns them off; out-of-range ids are ignored */
    p = plain_params(0.0f, 1);
    p.repeat_penalty = 100.0f;
    p.repeat_last_n = 0;
    s = al_sampler_new(&p, 3);
    al_sampler_accept(s, 0);
    al_sampler_accept(s, -1);
    al_sampler_accept(s, 77);
    assert_int_equal(al_sampler_sample(s, lg), 0);
    al_sampler_free(s);
}

static void test_large_vocab_speed(void **st)
{
    (void)st;
    /* 152k vocab with the default chain: prints the time per sample (a
     * figure, not an assertion) and checks the result is in the top 40. */
    enum { V = 151936, N = 100 };
    float *lg = malloc(V * sizeof *lg);
    fill_random_logits(lg, V, 42);
    for (int i = 0; i < V; i++)
        lg[i] = lg[i] * 5.0f;
    al_sampler_params p = al_sampler_default_params();
    p.seed = 1;
    p.repeat_penalty = 1.1f;
    al_sampler *s = al_sampler_new(&p, V);
    struct timespec t0, t1;
    int32_t picks[N];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        picks[i] = al_sampler_sample(s, lg);
        al_sampler_accept(s, picks[i]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / N;
    printf("sampling: %.1f us per sample over a %d vocab (default chain + repeat penalty)\n", us, V);
    for (int i = 0; i < N; i++) {
        int32_t t = picks[i];
        assert_true(t >= 0 && t < V);
        int above = 0;
        for (int j = 0; j < V && above < 40 + 64; j++)
            above += lg[j] > lg[t];
        /* the pick survived top-40 after penalties on at most 64 tokens */
        assert_true(above < 40 + 64);
    }
    al_sampler_free(s);
    free(lg);
}

/* The id greedy sampling must give: the largest logit (NaN never; the
 * window's ids with the repeat penalty), the lowest id on a tie. */
static int32_t ref_argmax(const float *lg, int n, const int32_t *win, int n_win, float rp)
{
    int32_t best = 0;
    float bl = -INFINITY;
    for (int i = 0; i < n; i++) {
        float l = lg[i];
        for (int w = 0; w < n_win; w++)
            if (win[w] == i) {
                l = isnan(l) ? -INFINITY : l > 0.0f ? l / rp : l * rp;
                break;
            }
        if (l > bl) {
            bl = l;
            best = i;
        }
    }
    return best;
}

/* Greedy and top-k scan the logits by blocks (the sampler skips a block
 * with nothing above its threshold): the winner at a block's first or last
 * id, a tie across blocks, NaN at the start of blocks, a vocabulary that is
 * not a whole number of blocks, and the best raw logit penalised away. */
static void test_greedy_blocks(void **st)
{
    (void)st;
    const int sizes[] = {1, 63, 64, 65, 1024, 151936, 151936 + 5};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int V = sizes[si];
        float *lg = malloc((size_t)V * sizeof *lg);
        assert_non_null(lg);
        for (unsigned r = 0; r < 40; r++) {
            fill_random_logits(lg, V, 1000 + r);
            for (int i = 0; i < V; i += 64)
                if (r % 3 == 0)
                    lg[i] = NAN;
            const int32_t at = (int32_t)((r * 7919u) % (unsigned)V);
            if (r % 4 == 1)
                lg[at] = 9.0f;
            if (r % 4 == 2) { /* a tie: the lower id wins */
                lg[at] = 9.0f;
                lg[(at / 64) * 64 + 63 < V ? (at / 64) * 64 + 63 : V - 1] = 9.0f;
                lg[at - at % 64] = 9.0f;
                const int32_t next = at - at % 64 + 64 + 5; /* the same value a block further */
                lg[next < V ? next : V - 1] = 9.0f;
            }
            if (r % 4 == 3) /* alone at the last id of a block */
                lg[(at | 63) < V ? (at | 63) : V - 1] = 9.0f;
            int32_t win[3] = {at, V - 1, 0};
            const int n_win = r % 2 ? 3 : 0;
            al_sampler_params p = plain_params(0.0f, 1);
            if (n_win) {
                p.repeat_penalty = 4.0f;
                p.repeat_last_n = 3;
            }
            al_sampler *g = al_sampler_new(&p, V);
            assert_non_null(g);
            for (int w = 0; w < n_win; w++)
                al_sampler_accept(g, win[w]);
            const int32_t want = ref_argmax(lg, V, win, n_win, 4.0f);
            assert_int_equal(al_sampler_sample(g, lg), want);
            al_sampler_free(g);
            /* top-k with top_p 0 keeps the single best: the same id */
            p.temperature = 1.0f;
            p.top_k = V > 40 ? 40 : V;
            p.top_p = 0.0f;
            al_sampler *k = al_sampler_new(&p, V);
            assert_non_null(k);
            for (int w = 0; w < n_win; w++)
                al_sampler_accept(k, win[w]);
            assert_int_equal(al_sampler_sample(k, lg), want);
            al_sampler_free(k);
        }
        free(lg);
    }
}

static void test_edge_logits(void **st)
{
    (void)st;
    /* NaN and -inf never win; all -inf still gives a valid id */
    float lg[5] = {NAN, -INFINITY, 1.0f, NAN, 0.5f};
    al_sampler_params p = plain_params(1.0f, 9);
    p.top_p = 0.9f;
    p.min_p = 0.01f;
    al_sampler *s = al_sampler_new(&p, 5);
    for (int i = 0; i < 200; i++) {
        int32_t t = al_sampler_sample(s, lg);
        assert_true(t == 2 || t == 4);
    }
    al_sampler_free(s);
    float ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
    s = al_sampler_new(&p, 3);
    assert_int_equal(al_sampler_sample(s, ninf), 0);
    al_sampler_free(s);
    /* top_p 0 keeps only the best, with top-k on or off */
    float lg2[4] = {0.1f, 0.3f, 0.2f, 0.3f};
    p = plain_params(2.0f, 4);
    p.top_p = 0.0f;
    s = al_sampler_new(&p, 4);
    for (int i = 0; i < 50; i++)
        assert_int_equal(al_sampler_sample(s, lg2), 1);
    al_sampler_free(s);
    p.top_k = 3;
    s = al_sampler_new(&p, 4);
    for (int i = 0; i < 50; i++)
        assert_int_equal(al_sampler_sample(s, lg2), 1);
    al_sampler_free(s);
    assert_int_equal(al_sampler_sample(NULL, lg2), -1);
}

static void test_logprob(void **st)
{
    (void)st;
    float lg[3] = {1.0f, 2.0f, 3.0f};
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    assert_float_equal(al_logprob(lg, 3, 2), (float)(3.0 - log(z)), 1e-5);
    assert_float_equal(al_logprob(lg, 3, 0), (float)(1.0 - log(z)), 1e-5);
    double sum = 0;
    for (int i = 0; i < 3; i++)
        sum += exp(al_logprob(lg, 3, i));
    assert_float_equal(sum, 1.0, 1e-5);
    assert_true(isinf(al_logprob(lg, 3, 3)) && al_logprob(lg, 3, 3) < 0);
    assert_true(isinf(al_logprob(lg, 3, -1)));
    /* large logits do not overflow */
    float big[2] = {1000.0f, 1000.0f};
    assert_float_equal(al_logprob(big, 2, 0), (float)-log(2.0), 1e-5);
}

/* ---------------------------------------------------------------- stops */

/* Feeds chunks through a matcher, concatenating what it emits (and the
 * flush when no stop matched). Returns whether a stop matched. */
static bool run_stop(const char *const *stops, size_t n_stops, const char *const *chunks,
                     size_t n_chunks, char *out, size_t cap)
{
    al_stop *st = al_stop_new(stops, n_stops);
    assert_non_null(st);
    size_t len = 0;
    bool hit = false;
    for (size_t i = 0; i < n_chunks && !hit; i++) {
        const char *e;
        size_t ne;
        hit = al_stop_feed(st, chunks[i], strlen(chunks[i]), &e, &ne);
        assert_true(len + ne < cap);
        memcpy(out + len, e, ne);
        len += ne;
    }
    if (!hit) {
        size_t nf;
        const char *f = al_stop_flush(st, &nf);
        assert_true(len + nf < cap);
        memcpy(out + len, f, nf);
        len += nf;
    }
    out[len] = 0;
    al_stop_free(st);
    return hit;
}

static void test_stop_basic(void **st)
{
    (void)st;
    char out[256];
    const char *s1[] = {"STOP"};
    const char *c1[] = {"Hel", "lo STOP", " more"};
    assert_true(run_stop(s1, 1, c1, 3, out, sizeof out));
    assert_string_equal(out, "Hello ");

    /* the stop split over three chunks */
    const char *c2[] = {"Hello S", "T", "OP and after"};
    assert_true(run_stop(s1, 1, c2, 3, out, sizeof out));
    assert_string_equal(out, "Hello ");

    /* a false start is released once it cannot match any more */
    const char *c3[] = {"ST", "OOP", "S"};
    assert_false(run_stop(s1, 1, c3, 3, out, sizeof out));
    assert_string_equal(out, "STOOPS");

    /* stop at the very start */
    const char *c4[] = {"STOP", "x"};
    assert_true(run_stop(s1, 1, c4, 2, out, sizeof out));
    assert_string_equal(out, "");

    /* no stops at all: everything passes through */
    const char *c5[] = {"a", "b"};
    assert_false(run_stop(NULL, 0, c5, 2, out, sizeof out));
    assert_string_equal(out, "ab");
}

static void test_stop_holdback(void **st)
{
    (void)st;
    const char *stops[] = {"</end>", "\n\nUser:"};
    al_stop *m = al_stop_new(stops, 2);
    const char *e;
    size_t ne;
    assert_false(al_stop_feed(m, "abc</e", 6, &e, &ne));
    assert_int_equal(ne, 3);
    assert_memory_equal(e, "abc", 3);
    assert_false(al_stop_feed(m, "x", 1, &e, &ne)); /* "</ex" cannot match */
    assert_int_equal(ne, 4);
    assert_memory_equal(e, "</ex", 4);
    assert_false(al_stop_feed(m, "\n", 1, &e, &ne)); /* may start "\n\nUser:" */
    assert_int_equal(ne, 0);
    assert_false(al_stop_feed(m, "\nUs", 3, &e, &ne));
    assert_int_equal(ne, 0);
    /* flush releases the held text, nothing more is held afterwards */
    size_t nf;
    const char *f = al_stop_flush(m, &nf);
    assert_int_equal(nf, 4);
    assert_memory_equal(f, "\n\nUs", 4);
    f = al_stop_flush(m, &nf);
    assert_int_equal(nf, 0);
    /* still usable after a flush */
    assert_true(al_stop_feed(m, "ok</end>", 8, &e, &ne));
    assert_int_equal(ne, 2);
    assert_memory_equal(e, "ok", 2);
    /* after a stop: nothing more, flush empty */
    assert_true(al_stop_feed(m, "zzz", 3, &e, &ne));
    assert_int_equal(ne, 0);
    f = al_stop_flush(m, &nf);
    assert_int_equal(nf, 0);
    al_stop_free(m);
}

static void test_stop_multiple(void **st)
{
    (void)st;
    char out[256];
    /* the earliest stop wins, even if another completes in the same chunk */
    const char *stops[] = {"world", "lo w", "xyz"};
    const char *c1[] = {"hel", "lo world"};
    assert_true(run_stop(stops, 3, c1, 2, out, sizeof out));
    assert_string_equal(out, "hel");

    /* overlapping prefixes: "aab" stop inside "aaab" */
    const char *s2[] = {"aab"};
    const char *c2[] = {"a", "a", "a", "b!"};
    assert_true(run_stop(s2, 1, c2, 4, out, sizeof out));
    assert_string_equal(out, "a");

    /* empty stop strings are ignored */
    const char *s3[] = {"", "END"};
    const char *c3[] = {"x", "yEN", "D"};
    assert_true(run_stop(s3, 2, c3, 3, out, sizeof out));
    assert_string_equal(out, "xy");

    /* a long text without stops, fed byte by byte, comes out whole */
    const char *s4[] = {"<|im_end|>"};
    al_stop *m = al_stop_new(s4, 1);
    const char *text = "<|im_start|> <|im_en <| and <|im_end| not quite";
    char acc[128];
    size_t len = 0;
    for (size_t i = 0; i < strlen(text); i++) {
        const char *e;
        size_t ne;
        assert_false(al_stop_feed(m, text + i, 1, &e, &ne));
        memcpy(acc + len, e, ne);
        len += ne;
    }
    size_t nf;
    const char *f = al_stop_flush(m, &nf);
    memcpy(acc + len, f, nf);
    len += nf;
    assert_int_equal(len, strlen(text));
    assert_memory_equal(acc, text, len);
    al_stop_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),         cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_determinism), cmocka_unit_test(test_topk1_is_greedy),
        cmocka_unit_test(test_topk_set),         cmocka_unit_test(test_topp_set),
        cmocka_unit_test(test_topp_large_vocab), cmocka_unit_test(test_minp_set),
        cmocka_unit_test(test_temperature),      cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_large_vocab_speed), cmocka_unit_test(test_logprob),
        cmocka_unit_test(test_edge_logits),      cmocka_unit_test(test_greedy_blocks),
        cmocka_unit_test(test_stop_basic),       cmocka_unit_test(test_stop_holdback),
        cmocka_unit_test(test_stop_multiple),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
