/*
 * rank_test.c - rank pooling (a reranker's classifier head) and the
 * encoder's batch rules, on tiny-bert-f16 made into a reranker by
 * mkrank.py (pooling_type rank, cls + cls.output of known pseudo-random
 * F32 weights):
 *   - al_tokenize_pair lays out [CLS] q [SEP] d [SEP];
 *   - the exact path's score equals the head computed here from the [CLS]
 *     hidden state (cls pooling of the same tokens): tanh(W h + b), then
 *     w2 . that + b2; and without the dense layer, w2 . h + b2;
 *   - the fast path orders documents as the exact path does, scores
 *     within 0.01; a batch of all pairs scores as each pair alone;
 *   - bad batches and a model without a head asked to rank fail clearly;
 *   - a decoder reranker (tiny-qwen3-embed with Qwen3-Reranker's layout:
 *     yes/no rows, a rerank template): its prompt is the template filled
 *     in, its score the softmax of the rows on the last token's state.
 * usage: rank_test MKRANK_PY
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock.h"
#include "ref_common.h"

/* mkrank.py's weights: the same LCG. */
static void rand_f32(uint32_t seed, size_t n, float scale, float *out)
{
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = (1103515245ull * x + 12345ull) & 0x7FFFFFFFull;
        out[i] = (float)(((double)x / 0x7FFFFFFF * 2.0 - 1.0) * scale);
    }
}

#define N_DOCS 4
static const char *k_query = "a little robot";
static const char *k_docs[N_DOCS] = {"robots are machines that move", "the sea is blue and deep",
                                     "Once upon a time, there was a little robot who", "fn main() { 42 }"};

/* Evaluates n_seqs token sequences in one batch with the given pooling;
 * out[s * dim ...]. */
static bool run(al_model *m, int32_t **toks, const size_t *n, int n_seqs, bool exact, al_pooling pooling, float *out,
                int32_t dim)
{
    size_t total = 0, mx = 0;
    for (int i = 0; i < n_seqs; i++) {
        total += n[i];
        mx = n[i] > mx ? n[i] : mx;
    }
    al_context_params cp = al_context_default_params();
    cp.n_ctx = (uint32_t)mx;
    cp.n_batch = (uint32_t)total;
    cp.n_seq = (uint32_t)n_seqs;
    cp.exact = exact;
    cp.embeddings = true;
    cp.pooling = pooling;
    al_context *ctx;
    al_error err;
    if (al_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return false;
    }
    int32_t *bt = malloc(total * 4), *bp = malloc(total * 4), *bs = malloc(total * 4);
    size_t k = 0;
    for (int i = 0; i < n_seqs; i++)
        for (size_t t = 0; t < n[i]; t++, k++) {
            bt[k] = toks[i][t];
            bp[k] = (int32_t)t;
            bs[k] = i;
        }
    al_batch b = {(int32_t)total, bt, bp, bs, NULL};
    bool ok = al_decode(ctx, &b, &err) == AL_OK;
    for (int i = 0; ok && i < n_seqs; i++) {
        int32_t nv = 0;
        const float *v = al_get_embedding_seq(ctx, i, &nv);
        ok = v && nv == dim;
        if (ok)
            memcpy(out + (size_t)i * dim, v, (size_t)dim * sizeof(float));
    }
    free(bt);
    free(bp);
    free(bs);
    al_context_free(ctx);
    return ok;
}

static void check_model(const char *path, bool dense)
{
    al_model *m;
    al_error err;
    if (al_model_load(path, NULL, &m, &err)) {
        CHECK(false, "load %s: %s", path, err.msg);
        return;
    }
    al_model_info info;
    al_model_get_info(m, &info);
    CHECK(info.pooling == AL_POOLING_RANK && info.n_cls_out == 1 && !info.can_generate,
          "pooling %d, n_cls_out %u, can_generate %d", (int)info.pooling, info.n_cls_out, info.can_generate);
    const uint32_t d = info.n_embd;
    const al_vocab *v = al_model_vocab(m);
    int32_t *toks[N_DOCS];
    size_t n[N_DOCS];
    for (int i = 0; i < N_DOCS; i++) {
        toks[i] = calloc(256, sizeof(int32_t));
        CHECK(al_tokenize_pair(v, k_query, strlen(k_query), k_docs[i], strlen(k_docs[i]), toks[i], 256, &n[i],
                               &err) == AL_OK, "pair: %s", err.msg);
        int seps = 0;
        for (size_t t = 0; t < n[i]; t++)
            seps += toks[i][t] == 102;
        CHECK(toks[i][0] == 101 && toks[i][n[i] - 1] == 102 && seps == 2, "pair %d: not [CLS] q [SEP] d [SEP]", i);
    }
    /* the head, computed here from the exact [CLS] states */
    float *h = malloc((size_t)N_DOCS * d * 4), *W = malloc((size_t)d * d * 4), *bw = malloc(d * 4);
    float *w2 = malloc(d * 4), *mid = malloc(d * 4);
    float exact[N_DOCS], fast[N_DOCS], alone = 0;
    rand_f32(11, (size_t)d * d, 0.2f, W);
    rand_f32(12, d, 0.1f, bw);
    rand_f32(13, d, 0.5f, w2);
    CHECK(run(m, toks, n, N_DOCS, true, AL_POOLING_CLS, h, (int32_t)d), "cls pooling of the pairs failed");
    CHECK(run(m, toks, n, N_DOCS, true, AL_POOLING_UNSPECIFIED, exact, 1), "exact rank failed");
    CHECK(run(m, toks, n, N_DOCS, false, AL_POOLING_RANK, fast, 1), "fast rank failed");
    CHECK(run(m, &toks[2], &n[2], 1, false, AL_POOLING_RANK, &alone, 1), "one pair alone failed");
    for (int i = 0; i < N_DOCS; i++) {
        const float *hi = h + (size_t)i * d;
        for (uint32_t r = 0; r < d; r++) {
            double s = bw[r];
            for (uint32_t k = 0; k < d; k++)
                s += (double)W[(size_t)r * d + k] * hi[k];
            mid[r] = dense ? (float)tanh(s) : hi[r];
        }
        double want = 0.25;
        for (uint32_t r = 0; r < d; r++)
            want += (double)w2[r] * mid[r];
        printf("%s doc %d: exact %.6f, head by hand %.6f, fast %.6f\n", dense ? "dense" : "no-dense", i,
               (double)exact[i], want, (double)fast[i]);
        CHECK(fabs(exact[i] - want) <= 1e-4, "doc %d: exact score %.6f but the head gives %.6f", i, (double)exact[i],
              want);
        CHECK(fabs(fast[i] - exact[i]) <= 0.01, "doc %d: fast %.6f vs exact %.6f", i, (double)fast[i],
              (double)exact[i]);
    }
    CHECK(fabs(alone - fast[2]) <= 1e-5, "a pair alone %.6f vs in the batch %.6f", (double)alone, (double)fast[2]);
    for (int i = 0; i < N_DOCS; i++)
        for (int j = 0; j < N_DOCS; j++)
            if (exact[i] - exact[j] > 0.02)
                CHECK(fast[i] > fast[j], "docs %d, %d ordered differently by the fast path", i, j);

    /* bad batches */
    al_context_params cp = al_context_default_params();
    cp.n_batch = 8;
    cp.n_seq = 2;
    cp.embeddings = true;
    al_context *ctx = NULL;
    CHECK(al_context_new(m, &cp, &ctx, &err) == AL_OK, "context: %s", err.msg);
    if (ctx) {
        int32_t t[10] = {101, 2000, 102, 101, 2001, 102, 101, 7, 8, 9}, p[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 3};
        int32_t s[10] = {0, 0, 0, 1, 1, 1, 0, 0, 0, 0};
        bool want[3] = {false, false, true};
        al_batch b = {10, t, p, s, NULL};
        CHECK(al_decode(ctx, &b, &err) == AL_ERR_LIMIT, "10 tokens in a pass of 8");
        al_batch b2 = {7, t, p, s, NULL}; /* sequence 0 twice */
        CHECK(al_decode(ctx, &b2, &err) == AL_ERR_ARG && strstr(err.msg, "contiguous"), "split sequence: %s",
              err.msg);
        int32_t p3[3] = {1, 2, 3};
        al_batch b3 = {3, t, p3, s, NULL};
        CHECK(al_decode(ctx, &b3, &err) == AL_ERR_ARG && strstr(err.msg, "position"), "not from 0: %s", err.msg);
        int32_t bad[3] = {101, 40000, 102};
        al_batch b4 = {3, bad, p, s, NULL};
        CHECK(al_decode(ctx, &b4, &err) == AL_ERR_ARG && strstr(err.msg, "vocabulary"), "token id: %s", err.msg);
        al_batch b5 = {3, t, p, s, want};
        CHECK(al_decode(ctx, &b5, &err) == AL_ERR_UNSUPPORTED && strstr(err.msg, "no output head"), "logits: %s",
              err.msg);
        al_batch b6 = {3, t, p, s, NULL};
        CHECK(al_decode(ctx, &b6, &err) == AL_OK, "a good batch after bad ones: %s", err.msg);
        al_context_free(ctx);
    }
    for (int i = 0; i < N_DOCS; i++)
        free(toks[i]);
    free(h);
    free(W);
    free(bw);
    free(w2);
    free(mid);
    al_model_free(m);
}

static void check_decoder(const char *path)
{
    al_model *m;
    al_error err;
    if (al_model_load(path, NULL, &m, &err)) {
        CHECK(false, "load %s: %s", path, err.msg);
        return;
    }
    al_model_info info;
    al_model_get_info(m, &info);
    CHECK(info.pooling == AL_POOLING_RANK && info.n_cls_out == 2 && info.causal, "decoder reranker: pooling %d, "
          "n_cls_out %u", (int)info.pooling, info.n_cls_out);
    CHECK(al_model_rerank_template(m) != NULL, "no rerank template");
    const uint32_t d = info.n_embd;
    int32_t *toks[N_DOCS] = {0};
    size_t n[N_DOCS];
    for (int i = 0; i < N_DOCS; i++) {
        CHECK(al_rank_tokens(m, k_query, strlen(k_query), k_docs[i], strlen(k_docs[i]), &toks[i], &n[i], &err) ==
              AL_OK, "rank tokens: %s", err.msg);
        char text[512];
        snprintf(text, sizeof(text), "<q>%s</q> <d>%s</d> (Given a web search query, retrieve relevant passages "
                 "that answer the query)", k_query, k_docs[i]);
        int32_t want[512];
        size_t nw = 0;
        al_tokenize(al_model_vocab(m), text, strlen(text), true, true, want, 512, &nw, &err);
        CHECK(toks[i] && nw == n[i] && !memcmp(want, toks[i], nw * sizeof(int32_t)),
              "doc %d: the rank prompt is not the template filled in", i);
    }
    float *h = malloc((size_t)N_DOCS * d * 4), *W = malloc((size_t)2 * d * 4), p[N_DOCS * 2];
    rand_f32(13, (size_t)2 * d, 0.005f, W);
    CHECK(run(m, toks, n, N_DOCS, true, AL_POOLING_LAST, h, (int32_t)d), "last pooling failed");
    CHECK(run(m, toks, n, N_DOCS, true, AL_POOLING_RANK, p, 2), "decoder rank failed");
    for (int i = 0; i < N_DOCS; i++) {
        double z[2] = {0, 0};
        for (int r = 0; r < 2; r++)
            for (uint32_t k = 0; k < d; k++)
                z[r] += (double)W[(size_t)r * d + k] * h[(size_t)i * d + k];
        const double yes = 1.0 / (1.0 + exp(z[1] - z[0]));
        printf("decoder doc %d: p(yes) %.6f, by hand %.6f\n", i, (double)p[2 * i], yes);
        CHECK(fabs(p[2 * i] - yes) <= 1e-5 && fabs(p[2 * i] + p[2 * i + 1] - 1.0) <= 1e-5,
              "doc %d: p(yes) %.6f, by hand %.6f", i, (double)p[2 * i], yes);
    }
    for (int i = 0; i < N_DOCS; i++)
        free(toks[i]);
    free(h);
    free(W);
    al_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: rank_test MKRANK_PY\n");
        return 2;
    }
    const char *shared = getenv("AIRLOCK_SHARED");
    if (!shared)
        shared = "../shared";
    char src[1024], dir[] = "/tmp/airlock-rank-XXXXXX", cmd[4096], out[2][1200];
    snprintf(src, sizeof(src), "%s/models/tiny-bert-f16.gguf", shared);
    if (access(src, R_OK)) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", src);
        return 77;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof(out[k]), "%s/rank%s.gguf", dir, k ? "-nodense" : "");
        snprintf(cmd, sizeof(cmd), "python3 '%s' '%s' '%s' %s", argv[1], src, out[k], k ? "--no-dense" : "");
        if (system(cmd) != 0) {
            fprintf(stderr, "FAIL: %s\n", cmd);
            return 1;
        }
    }
    check_model(out[0], true);
    check_model(out[1], false);
    char qsrc[1024], qout[1200];
    snprintf(qsrc, sizeof(qsrc), "%s/models/tiny-qwen3-embed-q8_0.gguf", shared);
    snprintf(qout, sizeof(qout), "%s/qrank.gguf", dir);
    snprintf(cmd, sizeof(cmd), "python3 '%s' '%s' '%s' --decoder", argv[1], qsrc, qout);
    if (access(qsrc, R_OK) == 0) {
        CHECK(system(cmd) == 0, "%s", cmd);
        check_decoder(qout);
        unlink(qout);
    }
    /* a model without a head asked to rank */
    al_model *m;
    al_error err;
    if (al_model_load(src, NULL, &m, &err) == AL_OK) {
        al_context_params cp = al_context_default_params();
        cp.embeddings = true;
        cp.pooling = AL_POOLING_RANK;
        al_context *ctx = NULL;
        CHECK(al_context_new(m, &cp, &ctx, &err) == AL_ERR_UNSUPPORTED && strstr(err.msg, "classifier head"),
              "rank without a head: %s", err.msg);
        al_context_free(ctx);
        al_model_free(m);
    }
    for (int k = 0; k < 2; k++)
        unlink(out[k]);
    rmdir(dir);
    printf("rank_test: %s\n", g_failures ? "FAILED" : "all checks hold");
    return g_failures ? 1 : 0;
}
