/*
 * gen.c - one generation session (al_gen): the step from a model's logits
 * to a token and its text, for `airlock run` and the server alike.
 *
 * A step: copy the logits (only when something changes them) -> logit
 * bias -> grammar mask (a bias cannot bring back a token the grammar
 * masks) -> sampler -> logprobs of the raw logits -> grammar advance ->
 * end of generation? -> detokenizer -> stop strings -> max_tokens.
 * Text leaves through one buffer of the session (text), so that at an
 * end the emitted bytes and the held-back tail come out as one piece.
 *
 * Buffers are sized in al_gen_new (the logits copy only for a session
 * with a bias or a grammar); the text buffer (256 bytes) grows only for a
 * step's text longer than that: a token's piece, or at an end the
 * held-back tail (at most the longest stop string and a partial UTF-8
 * character besides).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "sampling/grammar.h"
#include "util/error.h"
#include "util/wipe.h"

struct al_gen {
    const al_vocab *vocab;       /* borrowed from the model */
    int32_t n_vocab;             /* logits per step (the model's output rows) */
    int32_t max_tokens;          /* <= 0: none */
    bool want_lp;
    int32_t top_lp;
    al_sampler *smp;             /* owned */
    al_detok *dt;                /* owned */
    al_stop *st;                 /* owned */
    int32_t *bias_tok;           /* owned (n_bias) */
    float *bias_val;             /* owned (n_bias) */
    size_t n_bias;
    al_grammar_matcher *gm;      /* owned, with a grammar */
    al_token_trie *own_trie;     /* owned when params.trie was NULL */
    float *lbuf;                 /* owned (n_vocab) logits scratch, with a bias or a grammar */
    char *text;                  /* owned: the step's output text */
    size_t n_text, text_cap;
    int32_t n_sampled;
    bool ended;
    bool oom;                    /* text was lost to a failed allocation */
};

al_gen_params al_gen_default_params(void)
{
    al_gen_params p;
    memset(&p, 0, sizeof p);
    p.sampler = al_sampler_default_params();
    return p;
}

/* ---------------------------------------------------------------- logprobs */

void al_logprobs_fill(const float *logits, int32_t n_vocab, int32_t tok, int32_t k, al_token_logprobs *lp)
{
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    lp->token = tok;
    lp->logprob = tok >= 0 && tok < n_vocab ? logits[tok] - lse : -INFINITY;
    if (k > AL_MAX_TOP_LOGPROBS)
        k = AL_MAX_TOP_LOGPROBS;
    if (k > n_vocab)
        k = n_vocab;
    /* the k best in order, kept while scanning once (ties: lower id first) */
    int32_t n = 0;
    for (int32_t i = 0; k > 0 && i < n_vocab; i++) {
        float v = logits[i];
        if (n == k && !(v > logits[lp->top_id[n - 1]]))
            continue;
        int32_t q = n < k ? n++ : n - 1;
        while (q > 0 && v > logits[lp->top_id[q - 1]]) {
            lp->top_id[q] = lp->top_id[q - 1];
            q--;
        }
        lp->top_id[q] = i;
    }
    for (int32_t q = 0; q < n; q++)
        lp->top_lp[q] = logits[lp->top_id[q]] - lse;
    lp->n_top = n;
}

/* ----------------------------------------------------------------- session */

void al_gen_free(al_gen *g)
{
    if (!g)
        return;
    al_sampler_free(g->smp);
    al_detok_free(g->dt);
    al_stop_free(g->st);
    al_grammar_matcher_free(g->gm);
    al_token_trie_free(g->own_trie);
    free(g->bias_tok);
    free(g->bias_val);
    free(g->lbuf);
    if (g->text)
        explicit_bzero(g->text, g->text_cap); /* generated text does not linger in freed memory */
    free(g->text);
    free(g);
}

al_gen *al_gen_new(const al_model *model, const al_gen_params *p, al_error *err)
{
    if (!model || !p) {
        al_err(err, AL_ERR_ARG, "al_gen_new: no model or no parameters");
        return NULL;
    }
    if (p->top_logprobs < 0 || p->top_logprobs > AL_MAX_TOP_LOGPROBS) {
        al_err(err, AL_ERR_ARG, "top_logprobs %d is outside 0..%d", p->top_logprobs, AL_MAX_TOP_LOGPROBS);
        return NULL;
    }
    if ((p->n_stops && !p->stops) || (p->n_bias && (!p->bias_tok || !p->bias_val)) ||
        (p->n_grammar_special && !p->grammar_special)) {
        al_err(err, AL_ERR_ARG, "al_gen_new: a count without its array");
        return NULL;
    }
    al_model_info info;
    al_model_get_info(model, &info);
    al_gen *g = calloc(1, sizeof *g);
    if (!g)
        goto nomem;
    g->vocab = al_model_vocab(model);
    g->n_vocab = (int32_t)info.n_vocab;
    g->max_tokens = p->max_tokens;
    g->want_lp = p->logprobs;
    g->top_lp = p->top_logprobs;
    g->smp = al_sampler_new(&p->sampler, g->n_vocab);
    g->dt = al_detok_new(g->vocab, p->render_special);
    g->st = al_stop_new(p->stops, p->n_stops);
    g->text_cap = 256;
    g->text = malloc(g->text_cap);
    if (!g->smp || !g->dt || !g->st || !g->text)
        goto nomem;
    if (p->n_bias) {
        g->bias_tok = malloc(p->n_bias * sizeof *g->bias_tok);
        g->bias_val = malloc(p->n_bias * sizeof *g->bias_val);
        if (!g->bias_tok || !g->bias_val)
            goto nomem;
        memcpy(g->bias_tok, p->bias_tok, p->n_bias * sizeof *g->bias_tok);
        memcpy(g->bias_val, p->bias_val, p->n_bias * sizeof *g->bias_val);
        g->n_bias = p->n_bias;
    }
    if (p->grammar) {
        const al_token_trie *trie = p->trie;
        if (!trie) {
            g->own_trie = p->n_grammar_special
                              ? al_token_trie_new_with(g->vocab, p->grammar_special, p->n_grammar_special)
                              : al_token_trie_new(g->vocab);
            if (!g->own_trie)
                goto nomem;
            trie = g->own_trie;
        }
        /* a shared cache belongs to the trie it was given with */
        g->gm = al_grammar_matcher_new(p->grammar, trie, p->trie ? p->cache : NULL);
        if (!g->gm)
            goto nomem;
    }
    if (g->n_bias || g->gm) {
        g->lbuf = malloc((size_t)g->n_vocab * sizeof *g->lbuf);
        if (!g->lbuf)
            goto nomem;
    }
    return g;
nomem:
    al_gen_free(g);
    al_err(err, AL_ERR_NOMEM, "out of memory for a generation session");
    return NULL;
}

void al_gen_accept_prompt(al_gen *g, const int32_t *tokens, size_t n)
{
    if (!g || !tokens)
        return;
    for (size_t i = 0; i < n; i++)
        al_sampler_accept(g->smp, tokens[i]);
}

int32_t al_gen_n_sampled(const al_gen *g) { return g ? g->n_sampled : 0; }

/* Appends to the step's text; false (and g->oom) when out of memory. */
static bool text_add(al_gen *g, const char *s, size_t n)
{
    if (n == 0 || g->oom)
        return !g->oom;
    if (!al_grow_wiped(&g->text, &g->text_cap, g->n_text, n, 256))
        return !(g->oom = true);
    memcpy(g->text + g->n_text, s, n);
    g->n_text += n;
    return true;
}

/* Appends what the detokenizer and the stop matcher hold back (up to a
 * stop string in it). */
static void text_flush(al_gen *g)
{
    size_t n = 0, n_emit = 0;
    const char *t = al_detok_flush(g->dt, &n), *emit = NULL;
    if (n) {
        bool hit = al_stop_feed(g->st, t, n, &emit, &n_emit);
        text_add(g, emit, n_emit);
        if (hit)
            return;
    }
    t = al_stop_flush(g->st, &n);
    text_add(g, t, n);
}

const char *al_gen_finish(al_gen *g, size_t *n)
{
    *n = 0;
    if (!g)
        return "";
    g->n_text = 0;
    if (!g->ended)
        text_flush(g);
    g->ended = true;
    *n = g->n_text;
    return g->text;
}

/* The logits the sampler sees: the model's, or a copy with the bias added
 * and what the grammar does not allow set to -inf. */
static al_status constrain(al_gen *g, const float *logits, const float **out)
{
    *out = logits;
    if (!g->lbuf)
        return AL_OK;
    memcpy(g->lbuf, logits, (size_t)g->n_vocab * sizeof(float));
    for (size_t i = 0; i < g->n_bias; i++)
        if (g->bias_tok[i] >= 0 && g->bias_tok[i] < g->n_vocab)
            g->lbuf[g->bias_tok[i]] += g->bias_val[i];
    if (g->gm) {
        if (al_grammar_matcher_apply(g->gm, g->lbuf) != AL_OK)
            return AL_ERR_NOMEM;
        /* output rows past the vocabulary (padding) are no text at all */
        for (int32_t t = al_vocab_n_tokens(g->vocab); t < g->n_vocab; t++)
            g->lbuf[t] = -INFINITY;
    }
    *out = g->lbuf;
    return AL_OK;
}

al_status al_gen_sample(al_gen *g, const float *logits, al_gen_token *out, al_error *err)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    if (!g || !logits)
        return al_err(err, AL_ERR_ARG, "al_gen_sample: no session or no logits");
    if (g->ended)
        return al_err(err, AL_ERR_STATE, "the generation has ended");
    g->n_text = 0;
    out->text = g->text;
    const float *lg;
    if (constrain(g, logits, &lg) != AL_OK) {
        g->ended = true;
        return al_err(err, AL_ERR_NOMEM, "out of memory for the grammar's token mask");
    }
    int32_t tok = al_sampler_sample(g->smp, lg);
    al_sampler_accept(g->smp, tok);
    g->n_sampled++;
    out->token = tok;
    if (g->want_lp)
        al_logprobs_fill(logits, g->n_vocab, tok, g->top_lp, &out->lp);
    bool eog = al_vocab_is_eog(g->vocab, tok), grammar_done = false;
    if (g->gm && !eog) {
        /* refused only when every token was masked (-inf everywhere) */
        if (al_grammar_matcher_accept_token(g->gm, tok) != AL_OK) {
            g->ended = true;
            return al_err(err, AL_ERR_STATE, "the grammar allows no token here");
        }
        grammar_done = al_grammar_matcher_done(g->gm);
    }
    if (eog) {
        text_flush(g);
        out->end = AL_GEN_END_EOG;
    } else {
        size_t n = 0, n_emit = 0;
        const char *piece = al_detok_push(g->dt, tok, &n), *emit = NULL;
        bool hit = al_stop_feed(g->st, piece, n, &emit, &n_emit);
        text_add(g, emit, n_emit);
        if (hit) {
            out->end = AL_GEN_END_STOP;
        } else if (grammar_done) {
            text_flush(g);
            out->end = AL_GEN_END_GRAMMAR;
        } else if (g->max_tokens > 0 && g->n_sampled >= g->max_tokens) {
            text_flush(g);
            out->end = AL_GEN_END_LENGTH;
        }
    }
    g->ended = out->end != AL_GEN_CONTINUE;
    out->text = g->text;
    out->n_text = g->n_text;
    if (g->oom) {
        g->ended = true;
        return al_err(err, AL_ERR_NOMEM, "out of memory for the generated text");
    }
    return AL_OK;
}
