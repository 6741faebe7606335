/*
 * sampler.c - token sampling: penalties -> top-k -> top-p -> min-p ->
 * temperature -> softmax -> draw, in the order of llama.cpp's default chain.
 *
 * Every buffer is sized in al_sampler_new (n_vocab candidates, a window of
 * recent tokens, a per-token counter); al_sampler_sample allocates nothing.
 * Nothing is sorted: top-k keeps a k-heap while scanning the logits once,
 * top-p is a mass-weighted quickselect (expected O(n)), min-p a filter;
 * the draw walks the survivors in their (deterministic) order.
 *
 * Seeds: params.seed == AL_SEED_RANDOM (UINT64_MAX) draws a seed from the
 * OS entropy pool (the clock if that fails); any other value is used as is,
 * so the same seed, logits and accepted tokens give the same tokens.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "airlock.h"

#ifndef AL_SEED_RANDOM
#define AL_SEED_RANDOM UINT64_MAX
#endif

/* A negative repeat_last_n means "a long window": this many tokens. */
#define AL_PENALTY_WINDOW_MAX 4096

typedef struct cand {
    float logit;
    int32_t id;
    float p; /* scratch: unnormalised probability */
} cand;

struct al_sampler {
    al_sampler_params p;
    int32_t n_vocab;
    cand *c;          /* n_vocab candidates (scratch) */
    uint32_t *count;  /* n_vocab occurrence counters, all zero between calls */
    int32_t *window;  /* ring of the last win_cap accepted tokens */
    cand *pen;        /* win_cap penalised (id, logit) pairs (scratch) */
    int32_t win_cap;  /* 0: penalties off */
    int32_t win_len;
    int32_t win_head; /* next slot to write */
    uint64_t rng[4];  /* xoshiro256** state */
};

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

static uint64_t random_seed(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((uint64_t)a.tv_sec * 1000000007ull) ^ (uint64_t)a.tv_nsec ^ ((uint64_t)b.tv_nsec << 21) ^
           (uint64_t)(uintptr_t)&v;
}

/* ---------------------------------------------------------------- params */

al_sampler_params al_sampler_default_params(void)
{
    al_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    p.seed = AL_SEED_RANDOM;
    return p;
}

al_sampler *al_sampler_new(const al_sampler_params *params, int32_t n_vocab)
{
    if (n_vocab <= 0)
        return NULL;
    al_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = params ? *params : al_sampler_default_params();
    s->n_vocab = n_vocab;
    bool penalties = s->p.repeat_penalty != 1.0f || s->p.presence_penalty != 0.0f ||
                     s->p.frequency_penalty != 0.0f;
    if (penalties && s->p.repeat_last_n != 0)
        s->win_cap = s->p.repeat_last_n < 0 ? AL_PENALTY_WINDOW_MAX : s->p.repeat_last_n;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    s->window = malloc((size_t)(s->win_cap > 0 ? s->win_cap : 1) * sizeof *s->window);
    s->pen = malloc((size_t)(s->win_cap > 0 ? s->win_cap : 1) * sizeof *s->pen);
    if (!s->c || !s->count || !s->window || !s->pen) {
        al_sampler_free(s);
        return NULL;
    }
    uint64_t seed = s->p.seed == AL_SEED_RANDOM ? random_seed() : s->p.seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&seed);
    return s;
}

void al_sampler_free(al_sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->count);
    free(s->window);
    free(s->pen);
    free(s);
}

void al_sampler_accept(al_sampler *s, int32_t token)
{
    if (!s || s->win_cap <= 0 || token < 0 || token >= s->n_vocab)
        return;
    s->window[s->win_head] = token;
    s->win_head = (s->win_head + 1) % s->win_cap;
    if (s->win_len < s->win_cap)
        s->win_len++;
}

/* ---------------------------------------------------------------- chain */

/* Strict "a ranks before b": higher logit first, then lower id, so every
 * order below is total and the result deterministic. */
static inline bool before(const cand *a, const cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* top-p in expected O(n): rearranges c[0..n) so that c[0..keep) is the
 * smallest best-first set whose mass (c[i].p) reaches want, and returns
 * keep. A quickselect that, at each partition, either keeps the whole
 * better side and moves on, or narrows into it. Deterministic pivots. */
static int32_t select_mass(cand *c, int32_t n, double want)
{
    int32_t lo = 0, hi = n; /* the crossing element lies in [lo, hi) */
    double acc = 0.0;       /* mass of c[0..lo), all better than [lo, hi) */
    uint32_t x = 0x9E3779B9u;
    while (hi - lo > 1) {
        x = x * 1664525u + 1013904223u;
        int32_t piv = lo + (int32_t)(x % (uint32_t)(hi - lo));
        swap(&c[piv], &c[hi - 1]);
        cand pv = c[hi - 1];
        int32_t st = lo;
        double upper = 0.0; /* mass of the better side */
        for (int32_t i = lo; i < hi - 1; i++)
            if (before(&c[i], &pv)) {
                upper += (double)c[i].p;
                swap(&c[i], &c[st++]);
            }
        swap(&c[st], &c[hi - 1]);
        if (acc + upper >= want)
            hi = st; /* the crossing is strictly better than the pivot */
        else if (acc + upper + (double)c[st].p >= want)
            return st + 1;
        else {
            acc += upper + (double)c[st].p;
            lo = st + 1;
        }
    }
    if (hi > lo)
        return lo + 1;
    return lo > 0 ? lo : 1; /* lo == n: rounding left want unmet */
}

/* The first id from i whose logit is above thr (NaN never is), or n when
 * none is. The logits go by blocks of NEXT_BLOCK: one test, which the
 * compiler makes SIMD, passes over a block with none above thr, so a scan
 * whose threshold rises quickly (argmax, top-k's floor) looks at most ids
 * only once and in bulk. */
#define NEXT_BLOCK 64
static int32_t next_above(const float *l, int32_t i, int32_t n, float thr)
{
    for (; i < n && i % NEXT_BLOCK; i++)
        if (l[i] > thr)
            return i;
    for (; n - i >= NEXT_BLOCK; i += NEXT_BLOCK) {
        int hit = 0;
        for (int32_t k = 0; k < NEXT_BLOCK; k++)
            hit |= l[i + k] > thr;
        if (hit)
            break;
    }
    for (; i < n; i++)
        if (l[i] > thr)
            return i;
    return n;
}

/* Counts the window's tokens into s->count and computes the penalised logit
 * of each distinct one into s->pen (n_pen entries). The counters stay set
 * (they mark penalised ids during the scan) until clear_counts. */
static int32_t compute_penalties(al_sampler *s, const float *logits)
{
    int32_t n_pen = 0;
    for (int32_t i = 0; i < s->win_len; i++)
        s->count[s->window[i]]++;
    for (int32_t i = 0; i < s->win_len; i++) {
        int32_t t = s->window[i];
        uint32_t k = s->count[t];
        if (k & 0x80000000u)
            continue; /* already done: marked below */
        float l = logits[t];
        if (isnan(l))
            l = -INFINITY;
        if (s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0.0f)
            l = l > 0.0f ? l / s->p.repeat_penalty : l * s->p.repeat_penalty;
        l -= (float)k * s->p.frequency_penalty + s->p.presence_penalty;
        s->pen[n_pen].logit = isnan(l) ? -INFINITY : l;
        s->pen[n_pen].id = t;
        n_pen++;
        s->count[t] = k | 0x80000000u;
    }
    return n_pen;
}

static void clear_counts(al_sampler *s)
{
    for (int32_t i = 0; i < s->win_len; i++)
        s->count[s->window[i]] = 0;
}

/* Min-heap on "ranks before": the root is the worst of the kept. */
static void heap_down(cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(&h[w], &h[l]))
            w = l;
        if (r < n && before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        swap(&h[i], &h[w]);
        i = w;
    }
}

/* The k best candidates of logits (penalised values for the ids in pen)
 * into c[0..k), in heap order, scanning the logits once without copying. */
static void gather_top_k(al_sampler *s, const float *logits, int32_t k, int32_t n_pen)
{
    cand *h = s->c;
    int32_t n = s->n_vocab;
    for (int32_t i = 0; i < k; i++) {
        float l = logits[i];
        h[i].logit = isnan(l) ? -INFINITY : l;
        h[i].id = i;
    }
    for (int32_t j = 0; j < n_pen; j++)
        if (s->pen[j].id < k)
            h[s->pen[j].id].logit = s->pen[j].logit;
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        heap_down(h, k, i);
    float floor = h[0].logit;
    /* a later id never wins a tie, so only strictly greater enters; NaN
     * compares false and is skipped */
    for (int32_t i = next_above(logits, k, n, floor); i < n; i = next_above(logits, i + 1, n, floor)) {
        if (s->count[i])
            continue;
        h[0].logit = logits[i];
        h[0].id = i;
        heap_down(h, k, 0);
        floor = h[0].logit;
    }
    for (int32_t j = 0; j < n_pen; j++)
        if (s->pen[j].id >= k && before(&s->pen[j], &h[0])) {
            h[0] = s->pen[j];
            heap_down(h, k, 0);
        }
}

int32_t al_sampler_sample(al_sampler *s, const float *logits)
{
    if (!s || !logits)
        return -1;
    int32_t n = s->n_vocab;
    cand *c = s->c;
    int32_t n_pen = compute_penalties(s, logits);

    if (s->p.temperature <= 0.0f) {
        /* argmax; ties keep the lowest id */
        cand best = {-INFINITY, 0, 0.0f};
        for (int32_t i = next_above(logits, 0, n, best.logit); i < n; i = next_above(logits, i + 1, n, best.logit))
            if (!s->count[i]) {
                best.logit = logits[i];
                best.id = i;
            }
        for (int32_t j = 0; j < n_pen; j++)
            if (before(&s->pen[j], &best))
                best = s->pen[j];
        if (best.logit == -INFINITY) { /* everything -inf/NaN: lowest id */
            best.id = 0;
        }
        clear_counts(s);
        return best.id;
    }

    if (s->p.top_k > 0 && s->p.top_k < n) {
        gather_top_k(s, logits, s->p.top_k, n_pen);
        n = s->p.top_k;
    } else {
        for (int32_t i = 0; i < n; i++) {
            float l = logits[i];
            c[i].logit = isnan(l) ? -INFINITY : l;
            c[i].id = i;
        }
        for (int32_t j = 0; j < n_pen; j++)
            c[s->pen[j].id].logit = s->pen[j].logit;
    }
    clear_counts(s);

    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (before(&c[i], &c[best]))
            best = i;
    float max = c[best].logit;
    if (max == -INFINITY)
        return c[best].id; /* nothing has any probability: the best id */

    /* top-p over the temperature-1 distribution of the survivors */
    if (s->p.top_p <= 0.0f) {
        swap(&c[0], &c[best]);
        n = 1;
    } else if (s->p.top_p < 1.0f) {
        double sum = 0.0;
        for (int32_t i = 0; i < n; i++) {
            c[i].p = expf(c[i].logit - max);
            sum += (double)c[i].p;
        }
        n = select_mass(c, n, (double)s->p.top_p * sum);
    }

    /* min-p: keep logits within log(min_p) of the best */
    if (s->p.min_p > 0.0f) {
        float thr = max + logf(s->p.min_p);
        int32_t w = 0;
        for (int32_t i = 0; i < n; i++)
            if (c[i].logit >= thr)
                c[w++] = c[i];
        n = w; /* >= 1: the max passes */
    }

    /* temperature, softmax, draw */
    float inv_t = 1.0f / s->p.temperature;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - max) * inv_t);
        sum += (double)c[i].p;
    }
    double r = rng_uniform(s->rng) * sum, acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        acc += (double)c[i].p;
        if (r < acc)
            return c[i].id;
    }
    /* rounding: the last candidate with non-zero mass */
    for (int32_t i = n - 1; i > 0; i--)
        if (c[i].p > 0.0f)
            return c[i].id;
    return c[0].id;
}

float al_logprob(const float *logits, int32_t n_vocab, int32_t token)
{
    if (!logits || n_vocab <= 0 || token < 0 || token >= n_vocab)
        return -INFINITY;
    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > max)
            max = logits[i];
    if (max == -INFINITY || isnan(logits[token]))
        return -INFINITY;
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (!isnan(logits[i]))
            sum += exp((double)(logits[i] - max));
    return (float)((double)(logits[token] - max) - log(sum));
}
