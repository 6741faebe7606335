/*
 * sampling_gen_test.c - the generation session (al_gen) on a real model
 * (stories260K from ../shared: a 512-token SentencePiece vocabulary):
 * stop strings across token boundaries and held-back text, UTF-8 split
 * across byte tokens, end-of-generation and max_tokens, logprobs of the
 * raw logits, the grammar's constraint, and the same tokens and text as a
 * loop over the sampler and detokenizer by hand. Steps are forced by
 * giving the wanted token the highest logit under greedy sampling.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "airlock.h"
#include "sampling/grammar.h"

static al_model *g_model;
static int32_t g_nv;    /* logits per step */
static float *g_logits; /* (g_nv) scratch */

static al_gen_params greedy_params(void)
{
    al_gen_params p = al_gen_default_params();
    p.sampler.temperature = 0;
    p.sampler.seed = 1;
    return p;
}

static al_gen *gen_new(const al_gen_params *p)
{
    al_error err = {0};
    al_gen *g = al_gen_new(g_model, p, &err);
    if (!g)
        fail_msg("al_gen_new: %s", err.msg);
    return g;
}

/* One step whose greedy choice is tok; the text is appended to acc. */
static al_gen_end force(al_gen *g, int32_t tok, char *acc, size_t *n_acc, size_t cap)
{
    for (int32_t i = 0; i < g_nv; i++)
        g_logits[i] = 0.0f;
    g_logits[tok] = 10.0f;
    al_gen_token out;
    al_error err = {0};
    assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_OK);
    assert_int_equal(out.token, tok);
    assert_true(*n_acc + out.n_text < cap);
    memcpy(acc + *n_acc, out.text, out.n_text);
    *n_acc += out.n_text;
    acc[*n_acc] = 0;
    return out.end;
}

static size_t tokenize(const char *text, int32_t *toks, size_t cap)
{
    size_t n = 0;
    al_error err = {0};
    assert_int_equal(al_tokenize(al_model_vocab(g_model), text, strlen(text), false, false, toks, cap, &n, &err),
                     AL_OK);
    return n;
}

/* The text of toks[0..n) piece by piece (as the detokenizer writes it). */
static size_t pieces(const int32_t *toks, size_t n, char *out, size_t cap, size_t *ends)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t l = al_token_to_piece(al_model_vocab(g_model), toks[i], out + len, cap - len - 1, false);
        assert_true(l >= 0 && (size_t)l < cap - len - 1);
        len += (size_t)l;
        ends[i] = len;
    }
    out[len] = 0;
    return len;
}

/* The longest suffix of s[0..n) that is a proper prefix of stop. */
static size_t held(const char *s, size_t n, const char *stop)
{
    size_t l = strlen(stop) - 1;
    if (l > n)
        l = n;
    for (; l > 0; l--)
        if (!memcmp(s + n - l, stop, l))
            return l;
    return 0;
}

/* A stop string that spans several tokens: after each token exactly the
 * text that cannot begin the stop has been emitted; the stop ends the
 * generation with the text before it. */
static void test_stop_across_tokens(void **st)
{
    (void)st;
    const char *story = "Once upon a time, there was a little girl.";
    int32_t toks[64];
    size_t ends[64];
    char full[512], acc[512];
    size_t n_tok = tokenize(story, toks, 64);
    assert_true(n_tok >= 6);
    size_t n_full = pieces(toks, n_tok, full, sizeof full, ends);
    const char *stop = "upon a ti";
    const char *at = strstr(full, stop);
    assert_non_null(at);
    size_t stop_at = (size_t)(at - full), stop_end = stop_at + strlen(stop);
    /* the stop must really cross token boundaries for this test to mean anything */
    size_t first = 0;
    while (ends[first] <= stop_at)
        first++;
    assert_true(ends[first] < stop_end);

    al_gen_params p = greedy_params();
    p.stops = &stop;
    p.n_stops = 1;
    al_gen *g = gen_new(&p);
    size_t n_acc = 0;
    al_gen_end end = AL_GEN_CONTINUE;
    size_t i = 0;
    for (; i < n_tok && end == AL_GEN_CONTINUE; i++) {
        end = force(g, toks[i], acc, &n_acc, sizeof acc);
        if (end == AL_GEN_CONTINUE) {
            size_t want = ends[i] - held(full, ends[i], stop);
            assert_int_equal(n_acc, want);
            assert_memory_equal(acc, full, n_acc);
        }
    }
    assert_int_equal(end, AL_GEN_END_STOP);
    assert_true(ends[i - 1] >= stop_end); /* ended at the token that completed it */
    assert_int_equal(n_acc, stop_at);
    assert_memory_equal(acc, full, stop_at);
    /* an ended session samples no more and has nothing left */
    al_gen_token out;
    al_error err = {0};
    assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_ERR_STATE);
    assert_int_equal(out.n_text, 0);
    size_t n_fin = 1;
    al_gen_finish(g, &n_fin);
    assert_int_equal(n_fin, 0);
    al_gen_free(g);

    /* a near miss ("upon a tie" never comes): held back while it could
     * match, all of it emitted once it cannot, the text whole at the end */
    const char *miss = "upon a tie";
    p.stops = &miss;
    g = gen_new(&p);
    n_acc = 0;
    bool held_some = false;
    for (i = 0; i < n_tok; i++) {
        assert_int_equal(force(g, toks[i], acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
        assert_int_equal(n_acc, ends[i] - held(full, ends[i], miss));
        held_some |= n_acc < ends[i];
    }
    assert_true(held_some);
    assert_int_equal(n_acc, n_full);
    assert_memory_equal(acc, full, n_full);
    al_gen_free(g);

    /* held text at the end of generation comes out with the EOG step */
    const char *tail = "upon a tree";
    p.stops = &tail;
    g = gen_new(&p);
    n_acc = 0;
    for (i = 0; ends[i] <= stop_at + 4; i++) /* up to "upon", a prefix of the stop */
        assert_int_equal(force(g, toks[i], acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_true(ends[i - 1] > stop_at);
    assert_int_equal(n_acc, stop_at); /* "upon" (or its start) held back */
    int32_t eos = al_vocab_eos(al_model_vocab(g_model));
    assert_true(eos >= 0);
    assert_int_equal(force(g, eos, acc, &n_acc, sizeof acc), AL_GEN_END_EOG);
    assert_int_equal(n_acc, ends[i - 1]);
    assert_memory_equal(acc, full, n_acc);
    al_gen_free(g);
}

/* A character split over byte tokens comes out whole, and a stop string
 * can end inside it. */
static void test_utf8_split(void **st)
{
    (void)st;
    const al_vocab *v = al_model_vocab(g_model);
    int32_t b_c3 = -1, b_a9 = -1;
    for (int32_t t = 0; t < al_vocab_n_tokens(v); t++) {
        char buf[8];
        if (al_token_to_piece(v, t, buf, sizeof buf, false) == 1) {
            if ((unsigned char)buf[0] == 0xC3)
                b_c3 = t;
            if ((unsigned char)buf[0] == 0xA9)
                b_a9 = t;
        }
    }
    if (b_c3 < 0 || b_a9 < 0)
        skip(); /* the vocabulary has no byte tokens */
    al_gen_params p = greedy_params();
    al_gen *g = gen_new(&p);
    char acc[64];
    size_t n_acc = 0;
    assert_int_equal(force(g, b_c3, acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_int_equal(n_acc, 0); /* half a character is held back */
    assert_int_equal(force(g, b_a9, acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_string_equal(acc, "\xC3\xA9");
    /* half a character at the end becomes U+FFFD */
    assert_int_equal(force(g, b_c3, acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    size_t n = 0;
    const char *t = al_gen_finish(g, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(t, "\xEF\xBF\xBD", 3);
    al_gen_free(g);

    const char *stop = "\xC3\xA9";
    p.stops = &stop;
    p.n_stops = 1;
    g = gen_new(&p);
    n_acc = 0;
    int32_t a[4];
    assert_int_equal(tokenize("a", a, 4), 1);
    assert_int_equal(force(g, a[0], acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_int_equal(force(g, b_c3, acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_int_equal(force(g, b_a9, acc, &n_acc, sizeof acc), AL_GEN_END_STOP);
    assert_int_equal(n_acc, strlen(acc));
    assert_true(n_acc >= 1 && acc[n_acc - 1] == 'a');
    al_gen_free(g);
}

/* End-of-generation tokens end it without text; max_tokens ends it with
 * the held-back text. */
static void test_end(void **st)
{
    (void)st;
    const al_vocab *v = al_model_vocab(g_model);
    int32_t eos = al_vocab_eos(v);
    al_gen_params p = greedy_params();
    al_gen *g = gen_new(&p);
    char acc[256];
    size_t n_acc = 0;
    assert_int_equal(force(g, eos, acc, &n_acc, sizeof acc), AL_GEN_END_EOG);
    assert_int_equal(n_acc, 0);
    assert_int_equal(al_gen_n_sampled(g), 1);
    al_gen_free(g);

    int32_t toks[16];
    size_t ends[16];
    char full[256];
    size_t n_tok = tokenize("Once upon a time", toks, 16);
    assert_true(n_tok >= 3);
    pieces(toks, n_tok, full, sizeof full, ends);
    char stop_s[256];
    snprintf(stop_s, sizeof stop_s, "%.*s there", (int)ends[2], full);
    const char *stop = stop_s;
    p.stops = &stop;
    p.n_stops = 1;
    p.max_tokens = 3;
    g = gen_new(&p);
    n_acc = 0;
    assert_int_equal(force(g, toks[0], acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_int_equal(force(g, toks[1], acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    assert_int_equal(n_acc, 0); /* all of it may still be the stop */
    assert_int_equal(force(g, toks[2], acc, &n_acc, sizeof acc), AL_GEN_END_LENGTH);
    assert_int_equal(n_acc, ends[2]);
    assert_memory_equal(acc, full, n_acc);
    assert_int_equal(al_gen_n_sampled(g), 3);
    al_gen_free(g);

    /* al_gen_finish: an early end (a full context) flushes the same way */
    p.max_tokens = 0;
    g = gen_new(&p);
    n_acc = 0;
    assert_int_equal(force(g, toks[0], acc, &n_acc, sizeof acc), AL_GEN_CONTINUE);
    size_t n = 0;
    const char *t = al_gen_finish(g, &n);
    assert_int_equal(n, ends[0]);
    assert_memory_equal(t, full, n);
    al_gen_token out;
    al_error err = {0};
    assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_ERR_STATE);
    al_gen_free(g);
    al_gen_free(NULL);
}

/* Logprobs of the model's real logits: the sampled token's equals
 * al_logprob, the top list is the k best in order, its probabilities sum
 * to what the full distribution gives them, and a bias does not change
 * them (they describe the model, not the sampler). */
static void test_logprobs(void **st)
{
    (void)st;
    const al_vocab *v = al_model_vocab(g_model);
    al_context *ctx = NULL;
    al_error err = {0};
    al_context_params cp = al_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    assert_int_equal(al_context_new(g_model, &cp, &ctx, &err), AL_OK);
    int32_t toks[32], pos[32];
    bool want[32] = {0};
    size_t n = tokenize("Once upon a time, there was a", toks, 32);
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    want[n - 1] = true;
    al_batch b = {(int32_t)n, toks, pos, NULL, want};
    assert_int_equal(al_decode(ctx, &b, &err), AL_OK);
    const float *lg = al_get_logits(ctx, (int32_t)n - 1);
    assert_non_null(lg);
    /* the full distribution, in double */
    double mx = -INFINITY, z = 0;
    for (int32_t i = 0; i < g_nv; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (int32_t i = 0; i < g_nv; i++)
        z += exp(lg[i] - mx);

    al_gen_params p = greedy_params();
    p.logprobs = true;
    p.top_logprobs = AL_MAX_TOP_LOGPROBS;
    al_gen *g = gen_new(&p);
    al_gen_token out;
    assert_int_equal(al_gen_sample(g, lg, &out, &err), AL_OK);
    const al_token_logprobs *lp = &out.lp;
    assert_int_equal(lp->n_top, AL_MAX_TOP_LOGPROBS);
    assert_int_equal(lp->token, out.token);
    assert_int_equal(lp->top_id[0], out.token); /* greedy: the best */
    assert_float_equal(lp->logprob, lp->top_lp[0], 0);
    assert_float_equal(lp->logprob, al_logprob(lg, g_nv, out.token), 1e-4);
    double sum_top = 0, sum_ref = 0;
    for (int32_t q = 0; q < lp->n_top; q++) {
        int32_t id = lp->top_id[q];
        if (q > 0) {
            assert_true(lp->top_lp[q] <= lp->top_lp[q - 1]);
            for (int32_t r = 0; r < q; r++)
                assert_int_not_equal(lp->top_id[r], id);
        }
        assert_float_equal(lp->top_lp[q], log(exp(lg[id] - mx) / z), 1e-4);
        sum_top += exp(lp->top_lp[q]);
        sum_ref += exp(lg[id] - mx) / z;
    }
    /* nothing outside the list beats its last entry */
    for (int32_t i = 0; i < g_nv; i++) {
        bool in = false;
        for (int32_t q = 0; q < lp->n_top; q++)
            in |= lp->top_id[q] == i;
        if (!in)
            assert_true(lg[i] <= lg[lp->top_id[lp->n_top - 1]]);
    }
    assert_float_equal(sum_top, sum_ref, 1e-5);
    assert_true(sum_top > 0 && sum_top <= 1.0 + 1e-5);
    /* every token's logprob: a distribution (sums to 1) */
    double sum_all = 0;
    for (int32_t i = 0; i < g_nv; i++) {
        al_token_logprobs one;
        al_logprobs_fill(lg, g_nv, i, 0, &one);
        assert_int_equal(one.n_top, 0);
        assert_true(one.logprob <= 0);
        sum_all += exp(one.logprob);
    }
    assert_float_equal(sum_all, 1.0, 1e-4);
    al_gen_free(g);

    /* a bias picks the 5th best; its logprob is still the model's */
    int32_t fifth = lp->top_id[4];
    float fifth_lp = lp->top_lp[4], bias = 100.0f;
    p.bias_tok = &fifth;
    p.bias_val = &bias;
    p.n_bias = 1;
    p.top_logprobs = 5;
    g = gen_new(&p);
    assert_int_equal(al_gen_sample(g, lg, &out, &err), AL_OK);
    assert_int_equal(out.token, fifth);
    assert_float_equal(out.lp.logprob, fifth_lp, 0);
    assert_int_equal(out.lp.n_top, 5);
    assert_int_equal(out.lp.top_id[4], fifth);
    al_gen_free(g);

    /* bad parameters are refused with a message */
    p.top_logprobs = AL_MAX_TOP_LOGPROBS + 1;
    assert_null(al_gen_new(g_model, &p, &err));
    assert_int_equal(err.status, AL_ERR_ARG);
    assert_non_null(strstr(err.msg, "top_logprobs"));
    (void)v;
    al_context_free(ctx);
}

/* The grammar keeps the output in its language whatever the logits say,
 * ends the generation when nothing can follow, and a bias that removes
 * every token it allows is an error, not a token outside it. */
static void test_grammar(void **st)
{
    (void)st;
    al_grammar *gr = NULL;
    al_error err = {0};
    const char *src = "root ::= \" cat\" | \" dog\"";
    assert_int_equal(al_grammar_from_gbnf(src, strlen(src), NULL, &gr, &err), AL_OK);
    int32_t girl[8];
    assert_true(tokenize("girl", girl, 8) >= 1); /* " g...": not a prefix of " cat" or " dog" */

    al_gen_params p = greedy_params();
    p.grammar = gr;
    al_gen *g = gen_new(&p);
    char acc[64];
    size_t n_acc = 0;
    al_gen_end end = AL_GEN_CONTINUE;
    int steps = 0;
    while (end == AL_GEN_CONTINUE && steps++ < 10) {
        for (int32_t i = 0; i < g_nv; i++)
            g_logits[i] = 0.0f;
        g_logits[girl[0]] = 10.0f; /* what the model "wants" is not allowed */
        al_gen_token out;
        assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_OK);
        assert_int_not_equal(out.token, girl[0]);
        memcpy(acc + n_acc, out.text, out.n_text);
        n_acc += out.n_text;
        acc[n_acc] = 0;
        end = out.end;
    }
    assert_int_equal(end, AL_GEN_END_GRAMMAR);
    assert_true(!strcmp(acc, " cat") || !strcmp(acc, " dog"));
    al_gen_free(g);

    /* a shared trie and cache: the same result */
    al_token_trie *trie = al_token_trie_new(al_model_vocab(g_model));
    al_grammar_cache *cache = al_grammar_cache_new(g_nv, 8);
    assert_non_null(trie);
    assert_non_null(cache);
    p.trie = trie;
    p.cache = cache;
    g = gen_new(&p);
    char acc2[64];
    size_t n_acc2 = 0;
    for (steps = 0, end = AL_GEN_CONTINUE; end == AL_GEN_CONTINUE && steps < 10; steps++) {
        for (int32_t i = 0; i < g_nv; i++)
            g_logits[i] = 0.0f;
        g_logits[girl[0]] = 10.0f;
        al_gen_token out;
        assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_OK);
        memcpy(acc2 + n_acc2, out.text, out.n_text);
        n_acc2 += out.n_text;
        acc2[n_acc2] = 0;
        end = out.end;
    }
    assert_int_equal(end, AL_GEN_END_GRAMMAR);
    assert_string_equal(acc, acc2);
    al_gen_free(g);

    /* every token banned: the grammar has nothing left to allow */
    int32_t *ids = malloc((size_t)g_nv * sizeof *ids);
    float *vals = malloc((size_t)g_nv * sizeof *vals);
    for (int32_t i = 0; i < g_nv; i++) {
        ids[i] = i;
        vals[i] = -INFINITY;
    }
    p.bias_tok = ids;
    p.bias_val = vals;
    p.n_bias = (size_t)g_nv;
    g = gen_new(&p);
    al_gen_token out;
    assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_ERR_STATE);
    assert_non_null(strstr(err.msg, "grammar allows no token"));
    assert_int_equal(al_gen_sample(g, g_logits, &out, &err), AL_ERR_STATE); /* ended */
    al_gen_free(g);
    free(ids);
    free(vals);
    al_grammar_cache_free(cache);
    al_token_trie_free(trie);
    al_grammar_free(gr);
}

/* The session gives the tokens and text of the plain loop it replaces
 * (sampler with the prompt accepted, detokenizer), seeded sampling with
 * penalties over the real model. */
static void test_same_as_plain_loop(void **st)
{
    (void)st;
    const al_vocab *v = al_model_vocab(g_model);
    al_error err = {0};
    al_context_params cp = al_context_default_params();
    cp.n_ctx = 96;
    cp.n_threads = 1;
    al_context *c1 = NULL, *c2 = NULL;
    assert_int_equal(al_context_new(g_model, &cp, &c1, &err), AL_OK);
    assert_int_equal(al_context_new(g_model, &cp, &c2, &err), AL_OK);
    int32_t prompt[32], pos[32];
    bool want[32] = {0};
    size_t n = tokenize("Once upon a time", prompt, 32);
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    want[n - 1] = true;
    al_batch b = {(int32_t)n, prompt, pos, NULL, want};
    assert_int_equal(al_decode(c1, &b, &err), AL_OK);
    assert_int_equal(al_decode(c2, &b, &err), AL_OK);

    al_gen_params p = al_gen_default_params();
    p.sampler.seed = 1234;
    p.sampler.repeat_penalty = 1.3f;
    p.max_tokens = 48;
    al_gen *g = gen_new(&p);
    al_gen_accept_prompt(g, prompt, n);
    al_sampler *smp = al_sampler_new(&p.sampler, g_nv);
    al_detok *dt = al_detok_new(v, false);
    for (size_t i = 0; i < n; i++)
        al_sampler_accept(smp, prompt[i]);
    char a[4096], r[4096];
    size_t na = 0, nr = 0;
    const float *l1 = al_get_logits(c1, (int32_t)n - 1), *l2 = al_get_logits(c2, (int32_t)n - 1);
    int32_t p_next = (int32_t)n, n_gen = 0;
    bool want1 = true;
    for (;;) {
        al_gen_token out;
        assert_int_equal(al_gen_sample(g, l1, &out, &err), AL_OK);
        int32_t t = al_sampler_sample(smp, l2);
        assert_int_equal(out.token, t);
        memcpy(a + na, out.text, out.n_text);
        na += out.n_text;
        n_gen++;
        if (al_vocab_is_eog(v, t)) {
            assert_int_equal(out.end, AL_GEN_END_EOG);
            break;
        }
        al_sampler_accept(smp, t);
        size_t k;
        const char *s = al_detok_push(dt, t, &k);
        memcpy(r + nr, s, k);
        nr += k;
        if (n_gen == p.max_tokens) {
            assert_int_equal(out.end, AL_GEN_END_LENGTH);
            break;
        }
        assert_int_equal(out.end, AL_GEN_CONTINUE);
        al_batch b1 = {1, &t, &p_next, NULL, &want1};
        assert_int_equal(al_decode(c1, &b1, &err), AL_OK);
        assert_int_equal(al_decode(c2, &b1, &err), AL_OK);
        l1 = al_get_logits(c1, 0);
        l2 = al_get_logits(c2, 0);
        p_next++;
    }
    size_t k;
    const char *s = al_detok_flush(dt, &k);
    memcpy(r + nr, s, k);
    nr += k;
    assert_true(n_gen >= 8);
    assert_int_equal(na, nr);
    assert_memory_equal(a, r, na);
    al_detok_free(dt);
    al_sampler_free(smp);
    al_gen_free(g);
    al_context_free(c1);
    al_context_free(c2);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared ? shared : "../shared");
    al_error err = {0};
    if (al_model_load(path, NULL, &g_model, &err) != AL_OK) {
        fprintf(stderr, "sampling_gen_test: SKIPPED: cannot load %s: %s\n", path, err.msg);
        return 77;
    }
    al_model_info info;
    al_model_get_info(g_model, &info);
    g_nv = (int32_t)info.n_vocab;
    g_logits = malloc((size_t)g_nv * sizeof *g_logits);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_across_tokens), cmocka_unit_test(test_utf8_split),
        cmocka_unit_test(test_end),                cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_grammar),            cmocka_unit_test(test_same_as_plain_loop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_logits);
    al_model_free(g_model);
    return rc;
}
