/*
 * embed.c - what embedding and rank models need around the forward pass:
 * the (query, document) layout of cross-encoders, L2 normalisation and
 * cosine similarity.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "model/model.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

al_status al_tokenize_pair(const al_vocab *v, const char *a, size_t a_len, const char *b, size_t b_len, int32_t *out,
                           size_t cap, size_t *n_out, al_error *err)
{
    size_t na = 0, nb = 0;
    al_status st = al_tokenize(v, a, a_len, true, false, NULL, 0, &na, NULL);
    if (st && st != AL_ERR_LIMIT)
        return al_tokenize(v, a, a_len, true, false, NULL, 0, &na, err);
    st = al_tokenize(v, b, b_len, true, false, NULL, 0, &nb, NULL);
    if (st && st != AL_ERR_LIMIT)
        return al_tokenize(v, b, b_len, true, false, NULL, 0, &nb, err);
    /* The document's own BOS is dropped; XLM-R style vocabs (texts end with
     * EOS, no SEP added) get a separator between the two. */
    const bool drop_bos = al_vocab_add_bos_default(v) && al_vocab_bos(v) >= 0 && nb > 0;
    const int32_t sep = al_vocab_sep(v) >= 0 ? al_vocab_sep(v) : al_vocab_eos(v);
    const bool add_sep = al_vocab_add_eos_default(v) && sep >= 0;
    const size_t need = na + (add_sep ? 1 : 0) + nb - (drop_bos ? 1 : 0);
    *n_out = need;
    if (need > cap || !out)
        return al_err(err, AL_ERR_LIMIT, "the pair needs %zu tokens (room for %zu)", need, cap);
    size_t n = 0, m = 0;
    if ((st = al_tokenize(v, a, a_len, true, false, out, cap, &n, err)))
        return st;
    if (add_sep)
        out[n++] = sep;
    int32_t *tb = malloc((nb ? nb : 1) * sizeof(int32_t)); /* with its BOS, one more than it keeps */
    if (!tb)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    if ((st = al_tokenize(v, b, b_len, true, false, tb, nb, &m, err))) {
        free(tb);
        return st;
    }
    const size_t skip = drop_bos ? 1 : 0;
    memcpy(out + n, tb + skip, (m - skip) * sizeof(int32_t));
    free(tb);
    *n_out = n + m - skip;
    return AL_OK;
}

void al_l2_normalize(float *v, size_t n)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    if (ss <= 0.0)
        return;
    const double inv = 1.0 / sqrt(ss);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(v[i] * inv);
}

float al_cosine(const float *a, const float *b, size_t n)
{
    double dot = 0.0, na = 0.0, nb = 0.0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return na > 0.0 && nb > 0.0 ? (float)(dot / (sqrt(na) * sqrt(nb))) : 0.0f;
}

/* Qwen3-Reranker's default instruction (its model card's). */
static const char k_rank_instruction[] = "Given a web search query, retrieve relevant passages that answer the query";

/* Appends src[0..n) to the growing buffer; false when it would pass max. */
static bool buf_add(char **b, size_t *len, size_t *cap, const char *src, size_t n, size_t max)
{
    if (*len + n + 1 > max)
        return false;
    if (*len + n + 1 > *cap) {
        size_t nc = (*len + n + 1) * 2;
        char *nb = realloc(*b, nc);
        if (!nb)
            return false;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, src, n);
    *len += n;
    (*b)[*len] = 0;
    return true;
}

al_status al_rank_tokens(const al_model *m, const char *q, size_t q_len, const char *d, size_t d_len, int32_t **out,
                         size_t *n_out, al_error *err)
{
    *out = NULL;
    *n_out = 0;
    const al_vocab *v = al_model_vocab(m);
    const char *t = al_model_rerank_template(m);
    size_t n = 0;
    al_status st;
    if (!t) {
        al_tokenize_pair(v, q, q_len, d, d_len, NULL, 0, &n, NULL);
        if (!(*out = malloc((n ? n : 1) * sizeof(int32_t))))
            return al_err(err, AL_ERR_NOMEM, "out of memory");
        if ((st = al_tokenize_pair(v, q, q_len, d, d_len, *out, n, n_out, err))) {
            free(*out);
            *out = NULL;
        }
        return st;
    }
    static const struct {
        const char *key;
    } keys[] = {{"{query}"}, {"{document}"}, {"{instruction}"}};
    char *text = NULL;
    size_t len = 0, cap = 0;
    const size_t max = strlen(t) + 2 * (q_len + d_len) + 4096;
    bool ok = buf_add(&text, &len, &cap, "", 0, max);
    for (const char *p = t; ok && *p;) {
        size_t k = 0;
        for (; k < 3; k++)
            if (!strncmp(p, keys[k].key, strlen(keys[k].key)))
                break;
        if (k == 0)
            ok = buf_add(&text, &len, &cap, q, q_len, max);
        else if (k == 1)
            ok = buf_add(&text, &len, &cap, d, d_len, max);
        else if (k == 2)
            ok = buf_add(&text, &len, &cap, k_rank_instruction, sizeof(k_rank_instruction) - 1, max);
        else
            ok = buf_add(&text, &len, &cap, p, 1, max);
        p += k < 3 ? strlen(keys[k].key) : 1;
    }
    if (!ok) {
        free(text);
        return al_err(err, AL_ERR_NOMEM, "out of memory for the rank prompt");
    }
    al_tokenize(v, text, len, true, true, NULL, 0, &n, NULL);
    if (!(*out = malloc((n ? n : 1) * sizeof(int32_t)))) {
        free(text);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    st = al_tokenize(v, text, len, true, true, *out, n, n_out, err);
    explicit_bzero(text, len);
    free(text);
    if (st) {
        free(*out);
        *out = NULL;
    }
    return st;
}
