/*
 * embd_ref_test.c - holds an embedding model to the reference runtime's
 * pooled vectors in ../shared/ref under the encoder rule of
 * ../shared/README.md: tokens identical; the fast path's normalised vector
 * has cosine >= 0.999 with embd_file; the exact path's is within 0.002 of
 * exact_embd_file in every element (and its raw norm matches l2norm).
 * Then the three prompts again in one batch of three sequences: each
 * sequence's vector must not depend on its neighbours.
 * usage: embd_ref_test MODEL_BASENAME   (e.g. tiny-bert-f16)
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "ref_common.h"

/* Pools n_seqs sequences in one al_decode; out[i] receives malloc'd raw vectors. */
static bool eval_pooled(al_model *m, int32_t *const *toks, const size_t *n, int n_seqs, bool exact, uint32_t d,
                        float **out)
{
    size_t total = 0, max_len = 0;
    for (int i = 0; i < n_seqs; i++) {
        total += n[i];
        max_len = n[i] > max_len ? n[i] : max_len;
    }
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)max_len;
    cp.n_batch = (uint32_t)total;
    cp.n_seq = (uint32_t)n_seqs;
    cp.exact = exact;
    cp.embeddings = true;
    al_context *ctx;
    al_error err;
    if (al_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return false;
    }
    int32_t *bt = malloc(total * sizeof(int32_t)), *bp = malloc(total * sizeof(int32_t));
    int32_t *bs = malloc(total * sizeof(int32_t));
    size_t k = 0;
    for (int i = 0; i < n_seqs; i++)
        for (size_t t = 0; t < n[i]; t++, k++) {
            bt[k] = toks[i][t];
            bp[k] = (int32_t)t;
            bs[k] = i;
        }
    al_batch b = {(int32_t)total, bt, bp, bs, NULL};
    bool ok = al_decode(ctx, &b, &err) == AL_OK;
    if (!ok)
        fprintf(stderr, "decode: %s\n", err.msg);
    for (int i = 0; ok && i < n_seqs; i++) {
        int32_t nv = 0;
        const float *v = al_get_embedding_seq(ctx, i, &nv);
        ok = v && nv == (int32_t)d;
        if (ok) {
            out[i] = malloc(d * sizeof(float));
            memcpy(out[i], v, d * sizeof(float));
        }
    }
    free(bt);
    free(bp);
    free(bs);
    al_context_free(ctx);
    return ok;
}

static double l2(const float *v, uint32_t n)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embd_ref_test MODEL_BASENAME\n");
        return 2;
    }
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    const char *base = argv[1];
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/%s.gguf", shared, base);
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
    const uint32_t d = info.n_embd;
    int32_t *toks[3] = {0};
    size_t n_tok[3] = {0};
    float *alone[3] = {0};
    for (int pn = 1; pn <= 3; pn++) {
        snprintf(path, sizeof(path), "%s/ref/%s.p%d.json", shared, base, pn);
        json_error_t jerr;
        json_t *j = json_load_file(path, 0, &jerr);
        CHECK(j != NULL, "%s: %s", path, jerr.text);
        if (!j)
            continue;
        const char *prompt = json_string_value(json_object_get(j, "prompt"));
        json_t *jt = json_object_get(j, "tokens");
        CHECK((uint32_t)json_integer_value(json_object_get(j, "n_embd")) == d, "%s p%d: n_embd differs", base, pn);
        CHECK((int)json_integer_value(json_object_get(j, "pooling_type")) == (int)info.pooling,
              "%s p%d: pooling %d, the reference says %d", base, pn, (int)info.pooling,
              (int)json_integer_value(json_object_get(j, "pooling_type")));
        const size_t n_ref = json_array_size(jt);
        int32_t *t = calloc(n_ref + 1024, sizeof(int32_t));
        size_t n = 0;
        CHECK(al_tokenize(al_model_vocab(m), prompt, strlen(prompt), true, false, t, n_ref + 1024, &n, &err) == AL_OK,
              "tokenize: %s", err.msg);
        bool same = n == n_ref;
        for (size_t i = 0; same && i < n_ref; i++)
            same = t[i] == (int32_t)json_integer_value(json_array_get(jt, i));
        CHECK(same, "%s p%d: tokens differ from the reference (%zu vs %zu)", base, pn, n, n_ref);
        for (size_t i = 0; i < n_ref; i++)
            t[i] = (int32_t)json_integer_value(json_array_get(jt, i));
        toks[pn - 1] = t;
        n_tok[pn - 1] = n_ref;

        for (int exact = 0; exact <= 1; exact++) {
            const char *key = exact ? "exact_embd_file" : "embd_file";
            snprintf(path, sizeof(path), "%s/ref/%s", shared, json_string_value(json_object_get(j, key)));
            float *ref = read_f32(path, d), *v = NULL;
            CHECK(ref != NULL, "cannot read %s", path);
            if (!ref || !eval_pooled(m, &t, &n_ref, 1, exact, d, &v)) {
                CHECK(false, "%s p%d: no vector", base, pn);
                free(ref);
                continue;
            }
            const double raw_norm = l2(v, d);
            al_l2_normalize(v, d);
            double maxd = 0;
            for (uint32_t i = 0; i < d; i++)
                maxd = fmax(maxd, fabs((double)v[i] - ref[i]));
            const double cosv = al_cosine(v, ref, d);
            if (exact) {
                snprintf(path, sizeof(path), "%s/ref/%s", shared,
                         json_string_value(json_object_get(j, "exact_embd_raw_file")));
                float *raw = read_f32(path, d);
                const double ref_norm = raw ? l2(raw, d) : 0;
                printf("%s p%d: exact vs exact: max diff %.6f (limit 0.002), raw norm %.5f vs %.5f\n", base, pn,
                       maxd, raw_norm, ref_norm);
                CHECK(maxd <= 0.002, "%s p%d: exact max diff %.6f > 0.002", base, pn, maxd);
                CHECK(raw && fabs(raw_norm - ref_norm) <= 1e-3 * ref_norm, "%s p%d: raw norm %.5f vs %.5f", base,
                      pn, raw_norm, ref_norm);
                free(raw);
                free(v);
            } else {
                printf("%s p%d: fast vs native: cosine %.6f, max diff %.5f\n", base, pn, cosv, maxd);
                CHECK(cosv >= 0.999, "%s p%d: cosine %.6f < 0.999", base, pn, cosv);
                alone[pn - 1] = v;
            }
            free(ref);
        }
        json_decref(j);
    }
    /* The three prompts as three sequences of one batch, fast path. */
    float *together[3] = {0};
    if (toks[0] && toks[1] && toks[2] && alone[0] && alone[1] && alone[2]) {
        CHECK(eval_pooled(m, toks, n_tok, 3, false, d, together), "%s: a batch of 3 sequences failed", base);
        for (int i = 0; i < 3 && together[i]; i++) {
            al_l2_normalize(together[i], d);
            double maxd = 0;
            for (uint32_t k = 0; k < d; k++)
                maxd = fmax(maxd, fabs((double)together[i][k] - alone[i][k]));
            printf("%s p%d: in a batch of 3 vs alone: max diff %.2g\n", base, i + 1, maxd);
            CHECK(maxd <= 1e-5, "%s p%d: batched vector differs from alone by %.3g", base, i + 1, maxd);
        }
    }
    for (int i = 0; i < 3; i++) {
        free(toks[i]);
        free(alone[i]);
        free(together[i]);
    }
    al_model_free(m);
    printf("%s: %s\n", base, g_failures ? "FAILED" : "the encoder rule holds");
    return g_failures ? 1 : 0;
}
