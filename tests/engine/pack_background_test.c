/*
 * pack_background_test.c - a model loaded with pack_background (its
 * weights packed by a thread of its own after al_model_load returns, as
 * `airlock serve` loads) gives bit for bit the logits of one packed at
 * load: at once, while the packing runs, and after it has ended
 * (al_model_packing false, every packed matrix published); and freeing a
 * model while it is being packed stops the thread cleanly.
 * usage: pack_background_test   (exits 77, skipped, without ../shared)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "airlock.h"
#include "ref_common.h"

#define N_PROMPT 12
#define N_STEPS 6

/* The last logits of a prompt, then of N_STEPS single-token passes (each
 * feeding token 7 * step + 3): (1 + N_STEPS) x n_vocab floats, malloc'd. */
static float *run(al_model *m, uint32_t n_vocab)
{
    al_context_params cp = al_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    al_context *ctx = NULL;
    al_error err = {0};
    if (al_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return NULL;
    }
    float *out = malloc((size_t)(1 + N_STEPS) * n_vocab * sizeof(float));
    int32_t tok[N_PROMPT], pos[N_PROMPT];
    bool want[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) {
        tok[i] = 1 + (i * 37) % 200;
        pos[i] = i;
        want[i] = i == N_PROMPT - 1;
    }
    al_batch b = {N_PROMPT, tok, pos, NULL, want};
    bool ok = out && al_decode(ctx, &b, &err) == AL_OK;
    if (ok)
        memcpy(out, al_get_logits(ctx, N_PROMPT - 1), n_vocab * sizeof(float));
    for (int s = 0; ok && s < N_STEPS; s++) {
        int32_t t = 7 * s + 3, p = N_PROMPT + s;
        bool w = true;
        al_batch b1 = {1, &t, &p, NULL, &w};
        ok = al_decode(ctx, &b1, &err) == AL_OK;
        if (ok)
            memcpy(out + (size_t)(1 + s) * n_vocab, al_get_logits(ctx, 0), n_vocab * sizeof(float));
    }
    if (!ok) {
        fprintf(stderr, "decode: %s\n", err.msg);
        free(out);
        out = NULL;
    }
    al_context_free(ctx);
    return out;
}

static void check_model(const char *shared, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/%s.gguf", shared, name);
    al_model *a = NULL, *b = NULL;
    al_error err = {0};
    al_model_params mp = al_model_default_params();
    CHECK(!mp.pack_background, "pack_background is off by default");
    if (al_model_load(path, &mp, &a, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    CHECK(!al_model_packing(a), "%s: packed at load, nothing left to pack", name);
    mp.pack_background = true;
    if (al_model_load(path, &mp, &b, &err)) {
        CHECK(0, "%s (background): %s", name, err.msg);
        al_model_free(a);
        return;
    }
    al_model_info info;
    al_model_get_info(a, &info);
    float *ref = run(a, info.n_vocab);
    float *early = run(b, info.n_vocab); /* wherever the packing is */
    /* until the thread is done (a poll, not a timing: two minutes are ample) */
    for (int i = 0; i < 12000 && al_model_packing(b); i++)
        usleep(10000);
    CHECK(!al_model_packing(b), "%s: the background packing ends", name);
    float *late = run(b, info.n_vocab);
    const size_t n = (size_t)(1 + N_STEPS) * info.n_vocab * sizeof(float);
    CHECK(ref && early && late, "%s: the passes ran", name);
    if (ref && early && late) {
        CHECK(!memcmp(ref, early, n), "%s: logits while packing in the background differ from packed at load", name);
        CHECK(!memcmp(ref, late, n), "%s: logits once packed in the background differ from packed at load", name);
    }
    free(ref);
    free(early);
    free(late);
    al_model_free(a);
    al_model_free(b);
    /* freed at once: the thread is stopped, not left writing freed memory */
    al_model *c = NULL;
    if (al_model_load(path, &mp, &c, &err) == AL_OK)
        al_model_free(c);
    else
        CHECK(0, "%s (background, freed at once): %s", name, err.msg);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    char probe[1024];
    snprintf(probe, sizeof(probe), "%s/models/tiny-llama-q4_k_m.gguf", shared);
    if (access(probe, R_OK) != 0) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", probe);
        return 77;
    }
    /* K-quants, Q8_0 and Q4_0 layers; tied and untied outputs */
    static const char *models[] = {"tiny-llama-q4_k_m", "tiny-qwen2-q4_k_m", "tiny-qwen3-q8_0", "tiny-llama-q4_0",
                                   "tiny-llama-q6_k"};
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        check_model(shared, models[i]);
    if (g_failures)
        fprintf(stderr, "%d check(s) failed\n", g_failures);
    else
        printf("all checks passed\n");
    return g_failures != 0;
}
