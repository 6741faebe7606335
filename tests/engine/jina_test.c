/*
 * jina_test.c - jina-bert-v2 (ALiBi, LayerNorm on Q and K with biases,
 * attn_norm_2, a fused GEGLU ffn_up with its bias) against mkjina.py's
 * double-precision forward pass of the same tiny model: the exact path's
 * pooled vector within 1e-4 of it, the fast path's cosine >= 0.999.
 * usage: jina_test MKJINA_PY
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock.h"
#include "ref_common.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: jina_test MKJINA_PY\n");
        return 2;
    }
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    char src[1024], dir[] = "/tmp/airlock-jina-XXXXXX", model[1100], exp[1100], cmd[4096];
    snprintf(src, sizeof(src), "%s/models/tiny-bert-f16.gguf", shared);
    if (access(src, R_OK)) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", src);
        return 77;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(model, sizeof(model), "%s/jina.gguf", dir);
    snprintf(exp, sizeof(exp), "%s/expected.bin", dir);
    snprintf(cmd, sizeof(cmd), "python3 '%s' '%s' '%s' '%s'", argv[1], src, model, exp);
    if (system(cmd) != 0) {
        fprintf(stderr, "FAIL: %s\n", cmd);
        return 1;
    }
    FILE *f = fopen(exp, "rb");
    int32_t hdr[2] = {0};
    if (!f || fread(hdr, 4, 2, f) != 2 || hdr[0] <= 0 || hdr[0] > 512 || hdr[1] <= 0 || hdr[1] > 4096) {
        fprintf(stderr, "FAIL: %s unreadable\n", exp);
        return 1;
    }
    const int32_t n = hdr[0], d = hdr[1];
    int32_t *toks = malloc((size_t)n * 4), *pos = malloc((size_t)n * 4);
    float *want = malloc((size_t)d * 4);
    if (fread(toks, 4, (size_t)n, f) != (size_t)n || fread(want, 4, (size_t)d, f) != (size_t)d) {
        fprintf(stderr, "FAIL: %s short\n", exp);
        return 1;
    }
    fclose(f);
    for (int32_t i = 0; i < n; i++)
        pos[i] = i;
    al_model *m = NULL;
    al_error err;
    CHECK(al_model_load(model, NULL, &m, &err) == AL_OK, "load: %s", err.msg);
    for (int exact = 1; m && exact >= 0; exact--) {
        al_context_params cp = al_context_default_params();
        cp.n_ctx = (uint32_t)n;
        cp.n_batch = (uint32_t)n;
        cp.exact = exact;
        cp.embeddings = true;
        al_context *ctx = NULL;
        CHECK(al_context_new(m, &cp, &ctx, &err) == AL_OK, "context: %s", err.msg);
        al_batch b = {n, toks, pos, NULL, NULL};
        CHECK(ctx && al_decode(ctx, &b, &err) == AL_OK, "decode: %s", err.msg);
        int32_t nv = 0;
        const float *v = ctx ? al_get_embedding_seq(ctx, 0, &nv) : NULL;
        CHECK(v && nv == d, "no pooled vector");
        if (v && nv == d) {
            double maxd = 0;
            for (int32_t i = 0; i < d; i++)
                maxd = fmax(maxd, fabs((double)v[i] - want[i]));
            const double cosv = al_cosine(v, want, (size_t)d);
            printf("jina-bert-v2 %s: max diff %.2g, cosine %.7f vs the Python forward pass\n", exact ? "exact" : "fast",
                   maxd, cosv);
            if (exact)
                CHECK(maxd <= 1e-4, "exact: max diff %.3g > 1e-4", maxd);
            else
                CHECK(cosv >= 0.999, "fast: cosine %.6f < 0.999", cosv);
        }
        al_context_free(ctx);
    }
    al_model_free(m);
    unlink(model);
    unlink(exp);
    rmdir(dir);
    free(toks);
    free(pos);
    free(want);
    printf("jina_test: %s\n", g_failures ? "FAILED" : "all checks hold");
    return g_failures ? 1 : 0;
}
