/*
 * stop.c - stop strings over streamed text.
 *
 * The matcher keeps one buffer: the held-back tail (the longest suffix of
 * the text so far that is a proper prefix of some stop string) followed by
 * the newly fed text. A feed searches that buffer for the earliest stop;
 * without one it emits all but the new held-back tail. The emitted bytes
 * are the front of the buffer, so the pointer handed out stays valid until
 * the next call; at that call the tail is moved to the front.
 */
#include <stdlib.h>
#include <string.h>

#include "airlock.h"

struct al_stop {
    char **stops;    /* owned copies of the non-empty stop strings */
    size_t *lens;
    size_t n_stops;
    char *buf;       /* owned: [emitted | held] */
    size_t cap;
    size_t len;      /* bytes in buf */
    size_t held_off; /* held-back text is buf[held_off..len) */
    bool stopped;
};

al_stop *al_stop_new(const char *const *stops, size_t n_stops)
{
    al_stop *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    if (n_stops > 0 && stops) {
        st->stops = calloc(n_stops, sizeof *st->stops);
        st->lens = calloc(n_stops, sizeof *st->lens);
        if (!st->stops || !st->lens)
            goto fail;
        for (size_t i = 0; i < n_stops; i++) {
            size_t l = stops[i] ? strlen(stops[i]) : 0;
            if (l == 0)
                continue; /* an empty stop would match everywhere: ignored */
            char *d = malloc(l + 1);
            if (!d)
                goto fail;
            memcpy(d, stops[i], l + 1);
            st->stops[st->n_stops] = d;
            st->lens[st->n_stops] = l;
            st->n_stops++;
        }
    }
    return st;
fail:
    al_stop_free(st);
    return NULL;
}

void al_stop_free(al_stop *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_stops; i++)
        free(st->stops[i]);
    free(st->stops);
    free(st->lens);
    free(st->buf);
    free(st);
}

/* Length of the longest suffix of b[0..n) that is a proper prefix of a stop. */
static size_t held_len(const al_stop *st, const char *b, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < st->n_stops; i++) {
        size_t l = st->lens[i] - 1; /* proper prefix */
        if (l > n)
            l = n;
        for (; l > best; l--)
            if (memcmp(b + n - l, st->stops[i], l) == 0) {
                best = l;
                break;
            }
    }
    return best;
}

/* Earliest position of any stop in b[0..n), or n when none. */
static size_t find_stop(const al_stop *st, const char *b, size_t n)
{
    size_t best = n;
    for (size_t i = 0; i < st->n_stops; i++) {
        const char *p = memmem(b, n, st->stops[i], st->lens[i]);
        if (p && (size_t)(p - b) < best)
            best = (size_t)(p - b);
    }
    return best;
}

bool al_stop_feed(al_stop *st, const char *text, size_t n, const char **emit, size_t *n_emit)
{
    static const char empty[1] = {0};
    *emit = empty;
    *n_emit = 0;
    if (!st)
        return false;
    if (st->stopped)
        return true;
    if (!text)
        n = 0;
    /* drop what was emitted last time; keep the held-back tail */
    size_t held = st->len - st->held_off;
    if (st->held_off)
        memmove(st->buf, st->buf + st->held_off, held);
    st->len = held;
    st->held_off = 0;
    if (n > SIZE_MAX - held - 1) {
        st->stopped = true; /* cannot happen for real text; end safely */
        return true;
    }
    if (held + n > st->cap) {
        size_t cap = st->cap ? st->cap : 64;
        while (cap < held + n)
            cap = cap > SIZE_MAX / 2 ? held + n : cap * 2;
        char *nb = realloc(st->buf, cap);
        if (!nb) {
            /* Out of memory: end the generation, emitting what was held. */
            st->stopped = true;
            *emit = st->buf ? st->buf : empty;
            *n_emit = held;
            st->len = 0;
            return true;
        }
        st->buf = nb;
        st->cap = cap;
    }
    if (n)
        memcpy(st->buf + held, text, n);
    st->len = held + n;

    size_t at = find_stop(st, st->buf, st->len);
    if (at < st->len) {
        st->stopped = true;
        *emit = st->buf;
        *n_emit = at;
        st->held_off = st->len = at; /* nothing left to flush */
        return true;
    }
    size_t h = held_len(st, st->buf, st->len);
    st->held_off = st->len - h;
    *emit = st->buf;
    *n_emit = st->held_off;
    return false;
}

const char *al_stop_flush(al_stop *st, size_t *n)
{
    static const char empty[1] = {0};
    *n = 0;
    if (!st || st->stopped || !st->buf)
        return empty;
    const char *p = st->buf + st->held_off;
    *n = st->len - st->held_off;
    st->held_off = st->len; /* flushed: the next feed starts clean */
    return p;
}
