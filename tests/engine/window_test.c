/*
 * window_test.c - the sliding-window KV cache: a window layer keeps a ring
 * of window + n_batch - 1 positions (and a mirror), not n_ctx. On a model
 * with windowed layers (../shared/models/tiny-gemma3-q8_0: window 32 on
 * layers 0 and 2), a context whose ring wraps many times must give the same
 * logits as one that keeps every position; truncation keeps what the ring
 * still holds and forgets the rest; the KV bytes drop.
 * usage: window_test   (exits 77, skipped, without ../shared)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "ref_common.h"

enum { N_PROMPT = 150, N_GEN = 60, N_CTX = 256 };

static al_context *new_ctx(al_model *m, uint32_t n_batch, bool exact)
{
    al_context_params cp = al_context_default_params();
    cp.n_ctx = N_CTX;
    cp.n_batch = n_batch;
    cp.exact = exact;
    al_context *c = NULL;
    al_error err;
    if (al_context_new(m, &cp, &c, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return NULL;
    }
    return c;
}

/* Decodes tokens [p0, p1) one batch; returns the last logits (n_vocab). */
static const float *run(al_context *c, const int32_t *toks, int32_t p0, int32_t p1, al_error *err)
{
    int32_t n = p1 - p0, pos[N_PROMPT + N_GEN];
    bool want[N_PROMPT + N_GEN] = {0};
    for (int32_t i = 0; i < n; i++)
        pos[i] = p0 + i;
    want[n - 1] = true;
    al_batch b = {n, toks + p0, pos, NULL, want};
    if (al_decode(c, &b, err))
        return NULL;
    return al_get_logits(c, n - 1);
}

static float max_diff(const float *a, const float *b, uint32_t n)
{
    float d = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* The prompt and N_GEN greedy steps through a ring (n_batch 8: ring 39,
 * wrapped ~5 times) and through a full cache (n_batch 256 >= n_ctx): every
 * step's logits agree (exact: bit for bit). */
static void same_as_full(al_model *m, const int32_t *prompt, uint32_t n_vocab, bool exact)
{
    al_context *ring = new_ctx(m, 8, exact), *full = new_ctx(m, 256, exact);
    if (!ring || !full) {
        CHECK(0, "contexts");
        al_context_free(ring);
        al_context_free(full);
        return;
    }
    int32_t toks[N_PROMPT + N_GEN];
    memcpy(toks, prompt, N_PROMPT * sizeof(int32_t));
    al_error err;
    float worst = 0.0f;
    for (int32_t p = N_PROMPT; p <= N_PROMPT + N_GEN - 1; p++) {
        const int32_t p0 = p == N_PROMPT ? 0 : p - 1;
        const float *a = run(ring, toks, p0, p, &err), *b = a ? run(full, toks, p0, p, &err) : NULL;
        CHECK(a && b, "decode at %d: %s", p, err.msg);
        if (!a || !b)
            break;
        worst = fmaxf(worst, max_diff(a, b, n_vocab));
        int32_t best = 0;
        for (uint32_t i = 1; i < n_vocab; i++)
            best = b[i] > b[best] ? (int32_t)i : best;
        toks[p] = best;
    }
    printf("%s: ring vs full cache over %d positions: max diff %g\n", exact ? "exact" : "fast", N_PROMPT + N_GEN,
           (double)worst);
    CHECK(exact ? worst == 0.0f : worst < 1e-3f, "ring and full caches differ by %g", (double)worst);
    al_context_free(ring);
    al_context_free(full);
}

/* Truncation within n_batch of the last position keeps the sequence and
 * reproduces its logits; further back forgets it; a rewinding batch that
 * goes further back is refused. */
static void truncation(al_model *m, const int32_t *toks, uint32_t n_vocab)
{
    al_context *c = new_ctx(m, 8, true);
    if (!c) {
        CHECK(0, "context");
        return;
    }
    al_error err;
    float *want = malloc(n_vocab * sizeof(float));
    const float *l = run(c, toks, 0, N_PROMPT, &err);
    CHECK(l, "prompt: %s", err.msg);
    if (l)
        memcpy(want, l, n_vocab * sizeof(float));
    al_kv_seq_truncate(c, 0, N_PROMPT - 8);
    CHECK(al_kv_seq_len(c, 0) == N_PROMPT - 8, "truncating 8 back kept %d", al_kv_seq_len(c, 0));
    l = run(c, toks, N_PROMPT - 8, N_PROMPT, &err);
    CHECK(l && max_diff(l, want, n_vocab) == 0.0f, "re-decoding after a truncation: %s",
          l ? "other logits" : err.msg);
    /* a batch going 20 back (more than n_batch 8) */
    int32_t pos[1] = {N_PROMPT - 20};
    bool w[1] = {true};
    al_batch b = {1, toks + N_PROMPT - 20, pos, NULL, w};
    CHECK(al_decode(c, &b, &err) == AL_ERR_ARG && strstr(err.msg, "sliding-window"),
          "a deep rewind was not refused: %s", err.msg);
    al_kv_seq_truncate(c, 0, N_PROMPT - 20);
    CHECK(al_kv_seq_len(c, 0) == 0, "truncating 20 back kept %d positions the ring lost", al_kv_seq_len(c, 0));
    l = run(c, toks, 0, N_PROMPT, &err);
    CHECK(l && max_diff(l, want, n_vocab) == 0.0f, "the prompt again after forgetting");
    /* copy within reach, and beyond */
    al_kv_seq_copy(c, 0, 0, N_PROMPT); /* same sequence: ignored */
    al_kv_clear(c);
    CHECK(al_kv_seq_len(c, 0) == 0, "clear");
    free(want);
    al_context_free(c);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/tiny-gemma3-q8_0.gguf", shared);
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
    al_model_info info;
    al_model_get_info(m, &info);
    /* a fixed token sequence over the vocabulary */
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        prompt[i] = 1 + (i * 37 + 11) % ((int32_t)info.n_vocab - 1);
    same_as_full(m, prompt, info.n_vocab, true);
    same_as_full(m, prompt, info.n_vocab, false);
    truncation(m, prompt, info.n_vocab);

    /* 4 layers, 1 KV head of 128, F16: global layers 1 and 3 keep n_ctx
     * positions, layers 0 and 2 a ring of 32 + 512 - 1 and a mirror of 31 */
    const uint64_t per_pos = 2ull * 128 * 2, n_ctx = 32768;
    const uint64_t want = per_pos * (2 * n_ctx + 2 * (32 + 511 + 31));
    const uint64_t got = al_model_kv_bytes(m, (uint32_t)n_ctx, 1);
    printf("KV bytes at n_ctx %llu: %llu (every position: %llu)\n", (unsigned long long)n_ctx,
           (unsigned long long)got, (unsigned long long)(per_pos * 4 * n_ctx));
    CHECK(got == want, "al_model_kv_bytes %llu, want %llu", (unsigned long long)got, (unsigned long long)want);
    CHECK(al_model_kv_bytes(m, 512, 2) == 2 * per_pos * 4 * 512, "a short context keeps every position");
    al_model_free(m);
    printf("window_test: %s\n", g_failures ? "FAILED" : "ok");
    return g_failures ? 1 : 0;
}
