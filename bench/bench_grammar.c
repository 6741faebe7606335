/* bench_grammar.c - what grammar-constrained decoding costs per step next to
 * the decode step itself: generates with a JSON Schema (and json_object
 * mode) on a real model, timing al_decode and the mask (al_grammar_matcher_
 * apply + accept) separately, for a first request (empty mask cache) and a
 * second one with the same schema (warm cache). Checks that every output
 * is complete and a sentence of its grammar.
 *
 * usage: bench_grammar MODEL.gguf [n_threads] [max_tokens]   */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock.h"
#include "sampling/grammar.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char k_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"maxLength\":24},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":120},"
    "\"email\":{\"type\":\"string\",\"pattern\":\"^[a-z]{1,12}@[a-z]{1,12}\\\\.(com|org)$\"},"
    "\"born\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"role\":{\"enum\":[\"admin\",\"user\",\"guest\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":10},\"maxItems\":3},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":16},"
    "\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},\"required\":[\"city\",\"zip\"]}},"
    "\"required\":[\"name\",\"age\",\"email\",\"born\",\"role\",\"tags\",\"address\"]}";

typedef struct run_stats {
    int steps;
    double decode_s, mask_s, mask_max_s;
    bool complete;
} run_stats;

/* One generation of at most max_tokens after the prompt; greedy over the
 * masked logits (random weights: the grammar decides the shape). */
static int generate(al_context *ctx, const al_vocab *v, const al_grammar *g, const al_token_trie *trie,
                    al_grammar_cache *cache, const int32_t *prompt, int32_t n_prompt, int max_tokens, int seed,
                    run_stats *rs, char *out, size_t out_cap)
{
    al_error err = {0};
    memset(rs, 0, sizeof *rs);
    al_kv_seq_truncate(ctx, 0, 0);
    int32_t *pos = malloc((size_t)n_prompt * sizeof *pos), *seq = calloc((size_t)n_prompt, sizeof *seq);
    bool *lg = calloc((size_t)n_prompt, sizeof *lg);
    for (int32_t i = 0; i < n_prompt; i++)
        pos[i] = i;
    lg[n_prompt - 1] = true;
    al_batch b = {n_prompt, prompt, pos, seq, lg};
    if (al_decode(ctx, &b, &err)) {
        fprintf(stderr, "decode: %s\n", err.msg);
        return 1;
    }
    free(pos);
    free(seq);
    free(lg);
    int32_t n_vocab = al_vocab_n_tokens(v);
    float *l = malloc((size_t)n_vocab * sizeof *l);
    al_grammar_matcher *m = al_grammar_matcher_new(g, trie, cache);
    al_sampler_params sp = al_sampler_default_params();
    sp.temperature = 0.7f;
    sp.seed = (uint64_t)seed;
    al_sampler *smp = al_sampler_new(&sp, n_vocab);
    const float *logits = al_get_logits(ctx, n_prompt - 1);
    size_t n_out = 0;
    int32_t p = n_prompt;
    for (int t = 0; t < max_tokens; t++) {
        double t0 = now_s();
        memcpy(l, logits, (size_t)n_vocab * sizeof *l);
        al_grammar_matcher_apply(m, l);
        int32_t tok = al_sampler_sample(smp, l);
        if (al_vocab_is_eog(v, tok)) {
            rs->complete = al_grammar_matcher_can_end(m);
            rs->mask_s += now_s() - t0;
            break;
        }
        if (al_grammar_matcher_accept_token(m, tok) != AL_OK) {
            fprintf(stderr, "token %d refused after masking\n", tok);
            return 1;
        }
        double dm = now_s() - t0;
        rs->mask_s += dm;
        if (dm > rs->mask_max_s)
            rs->mask_max_s = dm;
        char piece[256];
        int32_t pn = al_token_to_piece(v, tok, piece, sizeof piece, false);
        if (pn > 0 && n_out + (size_t)pn < out_cap) {
            memcpy(out + n_out, piece, (size_t)pn);
            n_out += (size_t)pn;
        }
        rs->steps++;
        if (al_grammar_matcher_done(m)) {
            rs->complete = true;
            break;
        }
        bool want = true;
        int32_t s0 = 0;
        al_batch one = {1, &tok, &p, &s0, &want};
        double t1 = now_s();
        if (al_decode(ctx, &one, &err)) {
            fprintf(stderr, "decode: %s\n", err.msg);
            return 1;
        }
        rs->decode_s += now_s() - t1;
        logits = al_get_logits(ctx, 0);
        p++;
    }
    out[n_out] = '\0';
    if (rs->complete && !al_grammar_accepts(g, out, n_out)) {
        fprintf(stderr, "output is not a sentence of the grammar: %s\n", out);
        return 1;
    }
    al_sampler_free(smp);
    al_grammar_matcher_free(m);
    free(l);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grammar MODEL.gguf [n_threads] [max_tokens]\n");
        return 2;
    }
    int n_threads = argc > 2 ? atoi(argv[2]) : 0, max_tokens = argc > 3 ? atoi(argv[3]) : 160;
    al_error err = {0};
    al_model *model = NULL;
    al_model_params mp = al_model_default_params();
    if (al_model_load(argv[1], &mp, &model, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const al_vocab *v = al_model_vocab(model);
    al_context_params cp = al_context_default_params();
    cp.n_ctx = 1024;
    cp.n_seq = 1;
    cp.n_threads = n_threads;
    al_context *ctx = NULL;
    if (al_context_new(model, &cp, &ctx, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t0 = now_s();
    al_token_trie *trie = al_token_trie_new(v);
    double trie_s = now_s() - t0;
    al_grammar_cache *cache = al_grammar_cache_new(al_vocab_n_tokens(v), 128);
    al_grammar *gs = NULL, *gj = NULL;
    t0 = now_s();
    if (al_grammar_from_json_schema(k_schema, strlen(k_schema), NULL, &gs, &err) || al_grammar_json_object(&gj, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double compile_s = now_s() - t0;
    const char *text = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n";
    int32_t prompt[256];
    size_t np = 0;
    if (al_tokenize(v, text, strlen(text), true, true, prompt, 256, &np, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("model %s, vocab %d, threads %d; trie %.1f ms (once per model), schema+json grammars compiled in %.2f ms\n",
           argv[1], al_vocab_n_tokens(v), n_threads, trie_s * 1e3, compile_s * 1e3);
    printf("| grammar | run | steps | decode ms/step | mask ms/step | mask max ms | mask / decode | complete |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    static char out[65536];
    int fails = 0;
    for (int k = 0; k < 2; k++) {
        const al_grammar *g = k == 0 ? gs : gj;
        for (int run = 0; run < 3; run++) {
            run_stats rs;
            if (generate(ctx, v, g, trie, cache, prompt, (int32_t)np, max_tokens, 11 + run, &rs, out, sizeof out))
                return 1;
            double dms = rs.steps > 1 ? rs.decode_s * 1e3 / (rs.steps - 1) : 0, mms = rs.mask_s * 1e3 / rs.steps;
            printf("| %s | %s | %d | %.2f | %.3f | %.2f | %.1f %% | %s |\n", k == 0 ? "schema" : "json_object",
                   run == 0 ? "first (cold cache)" : "again (warm)", rs.steps, dms, mms, rs.mask_max_s * 1e3,
                   dms > 0 ? 100.0 * mms / dms : 0.0, rs.complete ? "yes" : "no (max_tokens)");
            if (k == 0 && !rs.complete)
                fails++;
            if (run == 0)
                printf("|   | output: `%.160s` | | | | | | |\n", out);
        }
    }
    uint64_t hits, misses;
    al_grammar_cache_stats(cache, &hits, &misses);
    printf("mask cache: %llu hits, %llu misses\n", (unsigned long long)hits, (unsigned long long)misses);
    al_grammar_free(gs);
    al_grammar_free(gj);
    al_grammar_cache_free(cache);
    al_token_trie_free(trie);
    al_context_free(ctx);
    al_model_free(model);
    return fails ? 1 : 0;
}
