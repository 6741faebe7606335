/*
 * ref_test.c - holds the engine to the reference runtime's outputs in
 * ../shared/ref for one model file, under the four rules of
 * ../shared/README.md:
 *   1. prompt tokens identical;
 *   2. fast path vs native logits: cosine >= 0.999 and max |diff| <= 0.5
 *      (quantized) / 0.1 (F32/F16/BF16);
 *   3. exact path (--exact) vs exact logits: max |diff| <= 0.02;
 *   4. greedy tokens identical up to the first step whose margin is below
 *      0.5 (quantized) / 0.1.
 * usage: ref_test MODEL_BASENAME   (e.g. tiny-qwen3-q8_0)
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "ref_common.h"

/* Evaluates tokens in one batch; returns a malloc'd copy of the last logits. */
static float *eval_last(al_model *m, const int32_t *toks, size_t n, bool exact, uint32_t n_vocab)
{
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)n + 40;
    cp.exact = exact;
    cp.n_batch = 64; /* several chunks for long prompts: exercises batching */
    al_context *ctx;
    al_error err;
    if (al_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return NULL;
    }
    int32_t *pos = malloc(n * sizeof(int32_t));
    bool *want = calloc(n, sizeof(bool));
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    want[n - 1] = true;
    al_batch b = {(int32_t)n, toks, pos, NULL, want};
    float *out = NULL;
    if (al_decode(ctx, &b, &err) == AL_OK) {
        out = malloc(n_vocab * sizeof(float));
        memcpy(out, al_get_logits(ctx, (int32_t)n - 1), n_vocab * sizeof(float));
    } else {
        fprintf(stderr, "decode: %s\n", err.msg);
    }
    free(pos);
    free(want);
    al_context_free(ctx);
    return out;
}

static int32_t argmax(const float *v, uint32_t n)
{
    int32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = (int32_t)i;
    return best;
}

static void check_case(al_model *m, const char *shared, const char *base, int pn, bool quantized)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/ref/%s.p%d.json", shared, base, pn);
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &jerr); /* greedy_text may hold a NUL byte token */
    CHECK(j != NULL, "%s: %s", path, jerr.text);
    if (!j)
        return;
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    json_t *jt = json_object_get(j, "tokens");
    uint32_t n_vocab = (uint32_t)json_integer_value(json_object_get(j, "n_vocab"));
    al_model_info info;
    al_model_get_info(m, &info);
    CHECK(n_vocab == info.n_vocab, "%s p%d: n_vocab %u vs model %u", base, pn, n_vocab, info.n_vocab);

    /* Rule 1: tokens. */
    size_t n_ref = json_array_size(jt), n_tok = 0;
    int32_t *toks = calloc(n_ref + 1024, sizeof(int32_t));
    al_error err;
    al_status st = al_tokenize(al_model_vocab(m), prompt, strlen(prompt), true, false, toks, n_ref + 1024, &n_tok,
                               &err);
    CHECK(st == AL_OK, "tokenize: %s", err.msg);
    bool same = n_tok == n_ref;
    for (size_t i = 0; same && i < n_ref; i++)
        same = toks[i] == (int32_t)json_integer_value(json_array_get(jt, i));
    CHECK(same, "%s p%d: rule 1: tokens differ from the reference (%zu vs %zu tokens)", base, pn, n_tok, n_ref);
    /* Use the reference tokens from here on so later rules are judged alone. */
    for (size_t i = 0; i < n_ref; i++)
        toks[i] = (int32_t)json_integer_value(json_array_get(jt, i));
    n_tok = n_ref;

    /* Rule 2: native logits vs the fast path. */
    snprintf(path, sizeof(path), "%s/ref/%s", shared, json_string_value(json_object_get(j, "last_logits_file")));
    float *native = read_f32(path, n_vocab);
    float *fast = eval_last(m, toks, n_tok, false, n_vocab);
    CHECK(native && fast, "%s p%d: cannot read %s or evaluate", base, pn, path);
    if (native && fast) {
        double dot = 0, na = 0, nb = 0, maxd = 0;
        for (uint32_t i = 0; i < n_vocab; i++) {
            dot += (double)native[i] * fast[i];
            na += (double)native[i] * native[i];
            nb += (double)fast[i] * fast[i];
            double d = fabs((double)native[i] - fast[i]);
            if (d > maxd)
                maxd = d;
        }
        double cosv = dot / (sqrt(na) * sqrt(nb));
        double lim = quantized ? 0.5 : 0.1;
        printf("%s p%d: fast vs native: cosine %.6f, max diff %.4f (limit %.2f)\n", base, pn, cosv, maxd, lim);
        CHECK(cosv >= 0.999, "%s p%d: rule 2: cosine %.6f < 0.999", base, pn, cosv);
        CHECK(maxd <= lim, "%s p%d: rule 2: max diff %.4f > %.2f", base, pn, maxd, lim);
    }

    /* Rule 3: exact path vs exact logits. */
    snprintf(path, sizeof(path), "%s/ref/%s", shared, json_string_value(json_object_get(j, "exact_logits_file")));
    float *exact_ref = read_f32(path, n_vocab);
    float *exact = eval_last(m, toks, n_tok, true, n_vocab);
    CHECK(exact_ref && exact, "%s p%d: cannot read %s or evaluate", base, pn, path);
    if (exact_ref && exact) {
        double maxd = 0;
        for (uint32_t i = 0; i < n_vocab; i++) {
            double d = fabs((double)exact_ref[i] - exact[i]);
            if (d > maxd)
                maxd = d;
        }
        printf("%s p%d: exact vs exact: max diff %.5f (limit 0.02)\n", base, pn, maxd);
        CHECK(maxd <= 0.02, "%s p%d: rule 3: max diff %.5f > 0.02", base, pn, maxd);
    }

    /* Rule 4: greedy continuation on the fast path. */
    json_t *jg = json_object_get(j, "greedy"), *jm = json_object_get(j, "greedy_margin");
    size_t n_greedy = json_array_size(jg);
    double thr = quantized ? 0.5 : 0.1;
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)(n_tok + n_greedy + 1);
    al_context *ctx;
    if (al_context_new(m, &cp, &ctx, &err) == AL_OK) {
        int32_t *pos = malloc(n_tok * sizeof(int32_t));
        bool *want = calloc(n_tok, sizeof(bool));
        for (size_t i = 0; i < n_tok; i++)
            pos[i] = (int32_t)i;
        want[n_tok - 1] = true;
        al_batch b = {(int32_t)n_tok, toks, pos, NULL, want};
        st = al_decode(ctx, &b, &err);
        CHECK(st == AL_OK, "decode: %s", err.msg);
        const float *lg = al_get_logits(ctx, (int32_t)n_tok - 1);
        size_t checked = 0;
        for (size_t i = 0; st == AL_OK && i < n_greedy; i++) {
            if (json_real_value(json_array_get(jm, i)) < thr)
                break;
            int32_t want_tok = (int32_t)json_integer_value(json_array_get(jg, i));
            int32_t got = argmax(lg, n_vocab);
            CHECK(got == want_tok, "%s p%d: rule 4: greedy step %zu: got %d, reference %d", base, pn, i, got,
                  want_tok);
            if (got != want_tok)
                break;
            checked++;
            int32_t p = (int32_t)(n_tok + i);
            bool w1 = true;
            al_batch b1 = {1, &got, &p, NULL, &w1};
            st = al_decode(ctx, &b1, &err);
            lg = al_get_logits(ctx, 0);
        }
        printf("%s p%d: greedy: %zu of %zu steps checked (before the first near-tie)\n", base, pn, checked,
               n_greedy);
        free(pos);
        free(want);
        al_context_free(ctx);
    }
    free(toks);
    free(native);
    free(fast);
    free(exact_ref);
    free(exact);
    json_decref(j);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ref_test MODEL_BASENAME\n");
        return 2;
    }
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/%s.gguf", shared, argv[1]);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", path);
        return 77;
    }
    fclose(f);
    al_model *m;
    al_error err;
    if (al_model_load(path, NULL, &m, &err)) {
        fprintf(stderr, "FAIL: load: %s\n", err.msg);
        return 1;
    }
    bool quantized = !(strstr(argv[1], "f16") || strstr(argv[1], "bf16") || !strcmp(argv[1], "stories260K"));
    for (int pn = 1; pn <= 3; pn++)
        check_case(m, shared, argv[1], pn, quantized);
    al_model_free(m);
    printf("%s: %s\n", argv[1], g_failures ? "FAILED" : "all rules hold");
    return g_failures ? 1 : 0;
}
