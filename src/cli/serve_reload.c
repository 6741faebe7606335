/* serve_reload.c - hot reload of the store's published models. See
 * serve_reload.h. */
#include "cli/serve_reload.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/sched.h"
#include "store/store.h"
#include "util/error.h"

/* Store models the server may hold at once (the scheduler's table). */
#define RELOAD_MAX SRV_SCHED_MAX_MODELS

/* A store model being served. */
typedef struct served {
    char name[140];     /* name:tag */
    char digest[65];    /* GGUF blob, hex */
    char mdigest[65];   /* OCI manifest, hex */
} served;

struct serve_reload {
    al_store *store;          /* the watcher's own handle */
    char dir[4096];
    served *served;           /* (RELOAD_MAX) */
    size_t n_served;
    al_server *srv;           /* borrowed */
    al_audit *audit;          /* borrowed, may be NULL */
    serve_reload_change_fn on_change;
    void *user;
    unsigned interval_ms;
    uint64_t gen;
    bool gen_valid;
    bool warned;              /* a catalogue read failed: said once until it works again */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;       /* guards stopping */
    pthread_cond_t cv;
    bool stopping;
};

al_status serve_reload_open(const char *dir, serve_reload **out, al_error *err)
{
    *out = NULL;
    serve_reload *r = calloc(1, sizeof(*r));
    if (!r || !(r->served = calloc(RELOAD_MAX, sizeof(served)))) {
        free(r);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    if ((size_t)snprintf(r->dir, sizeof(r->dir), "%s", dir) >= sizeof(r->dir)) {
        free(r->served);
        free(r);
        return al_err(err, AL_ERR_ARG, "store path too long");
    }
    al_status st = al_store_open(dir, &r->store, err);
    /* The first reading: any change after it is seen at the first poll. */
    if (!st)
        st = al_store_generation(r->store, &r->gen, err);
    if (st) {
        al_store_close(r->store);
        free(r->served);
        free(r);
        return st;
    }
    r->gen_valid = true;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    *out = r;
    return AL_OK;
}

bool serve_reload_track(serve_reload *r, const char *name, const char *digest, const char *manifest_digest)
{
    if (r->n_served == RELOAD_MAX)
        return false;
    served *s = &r->served[r->n_served++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->digest, sizeof(s->digest), "%s", digest);
    snprintf(s->mdigest, sizeof(s->mdigest), "%s", manifest_digest ? manifest_digest : "");
    return true;
}

/* One audit record per change seen, in the shape of serve's other records
 * (serve.start, serve.stop): the model and its blob digest, the reason in
 * detail, status 0 (done) or 1 (the change could not be applied). */
static void reload_audit(serve_reload *r, const char *action, const served *m, int status, const char *detail)
{
    if (!r->audit)
        return;
    al_audit_event ev = {.actor = al_store_default_actor(), .client = "cli", .action = action, .model = m->name,
                         .digest = m->digest, .prompt_tokens = -1, .completion_tokens = -1, .status = status,
                         .detail = detail};
    al_error err = {0};
    if (al_audit_append(r->audit, &ev, &err) == AL_OK)
        al_audit_flush(r->audit, &err);
    if (err.msg[0])
        fprintf(stderr, "airlock serve: audit log: %s\n", err.msg);
}

/* Why name:tag (served with blob digest) is no longer published, in words. */
static void removal_reason(serve_reload *r, const served *m, char *out, size_t cap)
{
    al_model_row *row = calloc(1, sizeof(*row));
    al_error err = {0};
    al_status st = row ? al_store_show(r->store, m->name, row, NULL, &err) : AL_ERR_NOMEM;
    if (st == AL_ERR_NOT_FOUND)
        snprintf(out, cap, "removed from the store");
    else if (st)
        snprintf(out, cap, "no longer published (%s)", err.msg);
    else if (!strcmp(row->state, "rejected"))
        snprintf(out, cap, "rejected by %s%s%.1800s", row->rejected_by[0] ? row->rejected_by : "?",
                 row->reasons[0] ? ": " : "", row->reasons);
    else if (!strcmp(row->state, "published"))
        snprintf(out, cap, "republished with another blob (sha256:%s)", row->model_digest);
    else
        snprintf(out, cap, "now %s", row->state);
    free(row);
}

/* Drops served[i] (order does not matter). */
static void untrack(serve_reload *r, size_t i)
{
    r->served[i] = r->served[--r->n_served];
}

/* Compares the published models with those served and applies the
 * difference: removals first, so that a name republished with another
 * blob is free again for its new entry. */
static void reload_sync(serve_reload *r)
{
    al_model_row *rows = NULL;
    size_t n = 0;
    al_error err = {0};
    if (al_store_list_published(r->store, &rows, &n, &err)) {
        if (!r->warned)
            fprintf(stderr, "airlock serve: store %s: cannot read the catalogue: %s (the served models are "
                    "unchanged)\n", r->dir, err.msg);
        r->warned = true;
        r->gen_valid = false; /* compare again at the next poll */
        return;
    }
    r->warned = false;
    char detail[2200];
    for (size_t i = 0; i < r->n_served;) {
        served *m = &r->served[i];
        bool still = false;
        for (size_t k = 0; k < n && !still; k++) {
            char ref[140];
            snprintf(ref, sizeof(ref), "%s:%s", rows[k].name, rows[k].tag);
            still = !strcmp(ref, m->name) && !strcmp(rows[k].model_digest, m->digest);
        }
        if (still) {
            i++;
            continue;
        }
        removal_reason(r, m, detail, sizeof(detail));
        al_server_remove_model(r->srv, m->name, m->digest);
        printf("airlock serve: model '%s' (sha256:%s) is no longer served: %s\n", m->name, m->mdigest, detail);
        fflush(stdout);
        reload_audit(r, "serve.model_removed", m, 0, detail);
        untrack(r, i);
    }
    for (size_t k = 0; k < n; k++) {
        served m;
        snprintf(m.name, sizeof(m.name), "%s:%s", rows[k].name, rows[k].tag);
        bool known = false;
        for (size_t i = 0; i < r->n_served && !known; i++)
            known = !strcmp(r->served[i].name, m.name);
        if (known)
            continue;
        char path[4096];
        snprintf(m.mdigest, sizeof(m.mdigest), "%s", rows[k].digest);
        al_status st = al_store_resolve(r->store, m.name, path, sizeof(path), m.digest, &err);
        if (st == AL_OK && r->n_served == RELOAD_MAX)
            st = al_err(&err, AL_ERR_LIMIT, "%d store models are served already", RELOAD_MAX);
        if (st == AL_OK) {
            srv_model_cfg mc = {.path = path, .name = m.name, .digest = m.digest, .manifest_digest = m.mdigest};
            st = al_server_add_model(r->srv, &mc, &err);
        }
        if (st) {
            snprintf(m.digest, sizeof(m.digest), "%s", rows[k].model_digest);
            snprintf(detail, sizeof(detail), "published, but not served: %s", err.msg);
            fprintf(stderr, "airlock serve: model '%s' (sha256:%s) %s\n", m.name, m.mdigest, detail);
            reload_audit(r, "serve.model_added", &m, 1, detail);
            continue;
        }
        r->served[r->n_served++] = m;
        printf("airlock serve: model '%s' (published, sha256:%s) from the store %s: now served\n", m.name, m.mdigest,
               r->dir);
        fflush(stdout);
        snprintf(detail, sizeof(detail), "published while serving; manifest sha256:%s", m.mdigest);
        reload_audit(r, "serve.model_added", &m, 0, detail);
    }
    free(rows);
}

/* *ts = now + ms on CLOCK_REALTIME (pthread_cond_timedwait's clock). */
static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *reload_main(void *arg)
{
    serve_reload *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec ts;
        deadline_in(&ts, r->interval_ms);
        while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT) {
        }
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->mu);
        uint64_t gen = 0;
        al_error err = {0};
        if (al_store_generation(r->store, &gen, &err)) {
            if (!r->warned)
                fprintf(stderr, "airlock serve: store %s: %s (models published or removed are not seen until "
                        "it works again)\n", r->dir, err.msg);
            r->warned = true;
        } else if (!r->gen_valid || gen != r->gen) {
            r->gen = gen;
            r->gen_valid = true;
            if (r->on_change)
                r->on_change(r->user);
            reload_sync(r);
        }
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

al_status serve_reload_start(serve_reload *r, al_server *srv, al_audit *audit, unsigned interval_ms,
                             serve_reload_change_fn on_change, void *user, al_error *err)
{
    r->srv = srv;
    r->audit = audit;
    r->on_change = on_change;
    r->user = user;
    r->interval_ms = interval_ms ? interval_ms : SERVE_RELOAD_INTERVAL_MS;
    /* The first poll compares in any case: it adds the published models
     * serve could not take at start-up (more than its --model table holds). */
    r->gen_valid = false;
    if (pthread_create(&r->thread, NULL, reload_main, r))
        return al_err(err, AL_ERR_NOMEM, "cannot start the store watcher thread");
    r->started = true;
    return AL_OK;
}

void serve_reload_free(serve_reload *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    al_store_close(r->store);
    free(r->served);
    free(r);
}
