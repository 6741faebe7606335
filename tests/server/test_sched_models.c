/*
 * test_sched_models.c - the scheduler's model states, on real models of
 * ../shared (skipped, exit 77, without them):
 * - a load that fails reaches every request that waited on it, with its
 *   error, and the model can be asked again (no refusal for good);
 * - eviction under the memory budget never frees a pinned model, and frees
 *   an idle one, least recently used first;
 * - a job runs to its end (text, one logprob entry per token) while
 *   another model loads;
 * - the store gate's answer is cached until its version changes or the
 *   cache is invalidated; a refusal is not cached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "server/sched.h"
#include "util/error.h"
#include "util/hash.h"

static char g_stories[4096], g_llama[4096], g_dir[4096], g_junk[4200];
static char g_junk_hex[65];

static srv_sched_params params(void)
{
    srv_sched_params p = {0};
    p.n_parallel = 2;
    p.n_ctx = 256;
    p.n_batch = 64;
    p.queue_cap = 8;
    p.n_threads = 1;
    return p;
}

/* ---- a load that fails reaches every waiter */

typedef struct waiter {
    srv_sched *s;
    srv_model *m;
    pthread_barrier_t *go;
    al_status st;
    al_error err;
    const al_model *model;
} waiter;

static void *acquire_thread(void *arg)
{
    waiter *w = arg;
    pthread_barrier_wait(w->go);
    w->st = srv_model_acquire(w->s, w->m, &w->model, &w->err);
    if (w->st == AL_OK)
        srv_model_release(w->s, w->m);
    return NULL;
}

/* n threads acquire m at the same moment (a barrier); w[i] gets each one's
 * outcome once all have returned. */
static void acquire_all(srv_sched *s, srv_model *m, waiter *w, int n)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    pthread_t th[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        w[i] = (waiter){.s = s, .m = m, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, acquire_thread, &w[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

static void failed_load_reaches_every_waiter(void **state)
{
    (void)state;
    /* 64 MB that hash right (the re-hash takes a while, so the others come
     * while it runs) but are no GGUF: the load itself fails. */
    srv_model_cfg mc = {.path = g_junk, .name = "junk", .digest = g_junk_hex};
    srv_sched_params p = params();
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, &mc, 1, &s, &err), AL_OK);
    srv_model *m = srv_sched_find(s, "junk");
    assert_non_null(m);
    enum { N = 4 };
    waiter w[N];
    acquire_all(s, m, w, N);
    for (int i = 0; i < N; i++) {
        assert_int_not_equal(w[i].st, AL_OK);
        assert_int_not_equal(w[i].st, AL_ERR_CRYPTO); /* the hash was right */
        assert_non_null(strstr(w[i].err.msg, "junk.bin"));
        assert_string_equal(w[i].err.msg, w[0].err.msg);
    }
    srv_model_status ms;
    srv_model_get_status(s, m, &ms);
    assert_false(ms.loaded);
    assert_false(ms.refused);
    /* asked again: loaded again (and failing the same way), not refused */
    const al_model *model = NULL;
    al_error e2 = {0};
    assert_int_equal(srv_model_acquire(s, m, &model, &e2), w[0].st);
    assert_string_equal(e2.msg, w[0].err.msg);
    srv_sched_free(s);
}

/* A blob whose hash differs is refused, for every waiter and for good. */
static void bad_hash_refuses_for_good(void **state)
{
    (void)state;
    char bad[65];
    memcpy(bad, g_junk_hex, 65);
    bad[0] = bad[0] == '0' ? '1' : '0';
    srv_model_cfg mc = {.path = g_junk, .name = "junk", .digest = bad};
    srv_sched_params p = params();
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, &mc, 1, &s, &err), AL_OK);
    srv_model *m = srv_sched_find(s, "junk");
    enum { N = 3 };
    waiter w[N];
    acquire_all(s, m, w, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].st, AL_ERR_CRYPTO);
        assert_non_null(strstr(w[i].err.msg, "integrity check"));
    }
    srv_model_status ms;
    srv_model_get_status(s, m, &ms);
    assert_true(ms.refused);
    srv_sched_free(s);
}

/* ---- eviction */

static void eviction_spares_pinned_models(void **state)
{
    (void)state;
    srv_model_cfg mc[2] = {{.path = g_stories, .name = "a"}, {.path = g_llama, .name = "b"}};
    srv_sched_params p = params();
    srv_sched *s = NULL;
    al_error err = {0};
    const al_model *ma = NULL, *mb = NULL;
    /* the models' sizes, without a budget */
    assert_int_equal(srv_sched_new(&p, mc, 2, &s, &err), AL_OK);
    srv_model *a = srv_sched_find(s, "a"), *b = srv_sched_find(s, "b");
    assert_int_equal(srv_model_acquire(s, a, &ma, &err), AL_OK);
    assert_int_equal(srv_model_acquire(s, b, &mb, &err), AL_OK);
    srv_model_status sa, sb;
    srv_model_get_status(s, a, &sa);
    srv_model_get_status(s, b, &sb);
    assert_true(sa.loaded && sb.loaded);
    srv_model_release(s, a);
    srv_model_release(s, b);
    srv_sched_free(s);

    /* room for the bigger one, not for both */
    const uint64_t big = sa.bytes > sb.bytes ? sa.bytes : sb.bytes;
    const uint64_t small = sa.bytes > sb.bytes ? sb.bytes : sa.bytes;
    p.memory_budget = big + small / 2;
    assert_int_equal(srv_sched_new(&p, mc, 2, &s, &err), AL_OK);
    a = srv_sched_find(s, "a");
    b = srv_sched_find(s, "b");
    assert_int_equal(srv_model_acquire(s, a, &ma, &err), AL_OK);
    /* a is pinned: b does not fit and a is not evicted */
    al_error e2 = {0};
    assert_int_equal(srv_model_acquire(s, b, &mb, &e2), AL_ERR_LIMIT);
    assert_non_null(strstr(e2.msg, "memory budget"));
    srv_model_get_status(s, a, &sa);
    srv_model_get_status(s, b, &sb);
    assert_true(sa.loaded);
    assert_false(sb.loaded);
    /* released: b evicts it */
    srv_model_release(s, a);
    assert_int_equal(srv_model_acquire(s, b, &mb, &err), AL_OK);
    srv_model_get_status(s, a, &sa);
    srv_model_get_status(s, b, &sb);
    assert_false(sa.loaded);
    assert_true(sb.loaded);
    srv_sched_stats st;
    srv_sched_get_stats(s, &st);
    assert_int_equal(st.n_models_loaded, 1);
    /* and b, pinned, is not evicted for a */
    assert_int_equal(srv_model_acquire(s, a, &ma, &e2), AL_ERR_LIMIT);
    srv_model_get_status(s, b, &sb);
    assert_true(sb.loaded);
    srv_model_release(s, b);
    srv_sched_free(s);
}

/* ---- a job runs while another model loads */

static void *load_b(void *arg)
{
    waiter *w = arg;
    w->st = srv_model_acquire(w->s, w->m, &w->model, &w->err);
    if (w->st == AL_OK)
        srv_model_release(w->s, w->m);
    return NULL;
}

static void job_runs_while_another_model_loads(void **state)
{
    (void)state;
    srv_model_cfg mc[2] = {{.path = g_stories, .name = "a"}, {.path = g_llama, .name = "b"}};
    srv_sched_params p = params();
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, mc, 2, &s, &err), AL_OK);
    srv_model *a = srv_sched_find(s, "a"), *b = srv_sched_find(s, "b");
    const al_model *ma = NULL;
    assert_int_equal(srv_model_acquire(s, a, &ma, &err), AL_OK);
    srv_job *j = srv_job_new();
    assert_non_null(j);
    int32_t toks[16];
    size_t nt = 0;
    assert_int_equal(al_tokenize(al_model_vocab(ma), "Once upon a time", 16, true, false, toks, 16, &nt, &err), AL_OK);
    j->model = a;
    j->prompt = malloc(nt * sizeof(int32_t));
    assert_non_null(j->prompt);
    memcpy(j->prompt, toks, nt * sizeof(int32_t));
    j->n_prompt = (int32_t)nt;
    j->max_tokens = 48;
    j->sp.temperature = 0;
    j->want_logprobs = true;
    j->top_logprobs = 3;
    assert_int_equal(srv_sched_submit(s, j, &err), AL_OK);
    /* b loads on another thread while a's job decodes */
    waiter w = {.s = s, .m = b};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, load_b, &w), 0);
    srv_job_wait_done(s, j, NULL, NULL);
    pthread_join(th, NULL);
    assert_int_equal(w.st, AL_OK);
    srv_job_view v;
    assert_true(srv_job_view_take(s, j, 0, 0, &v));
    assert_true(v.finish == SRV_FINISH_LENGTH || v.finish == SRV_FINISH_STOP);
    assert_true(v.n_gen > 0);
    assert_int_equal(v.n_toks_new, (size_t)v.n_gen); /* one logprob entry per token */
    assert_true(v.n_text > 0);
    free(v.text);
    free(v.toks);
    srv_job_free(j);
    srv_model_release(s, a);
    srv_sched_stats st;
    srv_sched_get_stats(s, &st);
    assert_int_equal(st.n_models_loaded, 2);
    assert_int_equal(st.active, 0);
    srv_sched_free(s);
}

/* ---- the gate's cache */

typedef struct gate_state {
    int calls;
    uint64_t version;
    bool refuse;
} gate_state;

static al_status count_gate(void *user, const char *name, const char *digest, al_error *err)
{
    gate_state *g = user;
    (void)digest;
    g->calls++;
    if (g->refuse)
        return al_err(err, AL_ERR_STATE, "model '%s' is no longer published", name);
    return AL_OK;
}

static al_status gate_version(void *user, uint64_t *version)
{
    *version = ((gate_state *)user)->version;
    return AL_OK;
}

static void gate_is_cached_until_a_change(void **state)
{
    (void)state;
    gate_state g = {.version = 7};
    srv_model_cfg mc = {.path = g_stories, .name = "a"};
    srv_sched_params p = params();
    p.gate = count_gate;
    p.gate_version = gate_version;
    p.gate_user = &g;
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, &mc, 1, &s, &err), AL_OK);
    srv_model *a = srv_sched_find(s, "a");
    const al_model *model = NULL;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(srv_model_acquire(s, a, &model, &err), AL_OK);
        srv_model_release(s, a);
    }
    assert_int_equal(g.calls, 1);
    srv_sched_stats st;
    srv_sched_get_stats(s, &st);
    assert_int_equal(st.gate_queries, 1);
    /* the catalogue changed */
    g.version++;
    assert_int_equal(srv_model_acquire(s, a, &model, &err), AL_OK);
    srv_model_release(s, a);
    assert_int_equal(g.calls, 2);
    /* invalidated (hot reload) */
    srv_sched_gate_invalidate(s);
    assert_int_equal(srv_model_acquire(s, a, &model, &err), AL_OK);
    srv_model_release(s, a);
    assert_int_equal(g.calls, 3);
    /* a refusal reaches the request, and is asked again next time */
    g.refuse = true;
    g.version++;
    al_error e2 = {0};
    assert_int_equal(srv_model_acquire(s, a, &model, &e2), AL_ERR_STATE);
    assert_non_null(strstr(e2.msg, "no longer published"));
    assert_int_equal(srv_model_acquire(s, a, &model, &e2), AL_ERR_STATE);
    assert_int_equal(g.calls, 5);
    g.refuse = false;
    assert_int_equal(srv_model_acquire(s, a, &model, &err), AL_OK);
    srv_model_release(s, a);
    assert_int_equal(g.calls, 6);
    srv_sched_free(s);
}

/* Without a version function every use asks the gate. */
static void gate_without_version_is_not_cached(void **state)
{
    (void)state;
    gate_state g = {0};
    srv_model_cfg mc = {.path = g_stories, .name = "a"};
    srv_sched_params p = params();
    p.gate = count_gate;
    p.gate_user = &g;
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, &mc, 1, &s, &err), AL_OK);
    srv_model *a = srv_sched_find(s, "a");
    const al_model *model = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(srv_model_acquire(s, a, &model, &err), AL_OK);
        srv_model_release(s, a);
    }
    assert_int_equal(g.calls, 3);
    srv_sched_free(s);
}

/* Writes 64 MB of non-GGUF bytes and their sha256. */
static bool make_junk(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/airlock-sched-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir))
        return false;
    snprintf(g_junk, sizeof(g_junk), "%s/junk.bin", g_dir);
    FILE *f = fopen(g_junk, "wb");
    if (!f)
        return false;
    al_sha256 *h = al_sha256_begin();
    static unsigned char buf[1 << 20];
    uint32_t x = 12345;
    bool ok = h != NULL;
    for (int mb = 0; ok && mb < 64; mb++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 24);
        }
        al_sha256_update(h, buf, sizeof(buf));
        ok = fwrite(buf, 1, sizeof(buf), f) == sizeof(buf);
    }
    ok = fclose(f) == 0 && ok;
    ok = ok && al_sha256_end(h, g_junk_hex);
    return ok;
}

static void remove_junk(void)
{
    unlink(g_junk);
    rmdir(g_dir);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    snprintf(g_stories, sizeof(g_stories), "%s/models/stories260K.gguf", shared ? shared : "../shared");
    snprintf(g_llama, sizeof(g_llama), "%s/models/tiny-llama-q8_0.gguf", shared ? shared : "../shared");
    if (access(g_stories, R_OK) || access(g_llama, R_OK)) {
        printf("SKIP: %s or %s not found (set AIRLOCK_SHARED)\n", g_stories, g_llama);
        return 77;
    }
    if (!make_junk()) {
        printf("cannot write %s\n", g_junk);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failed_load_reaches_every_waiter),
        cmocka_unit_test(bad_hash_refuses_for_good),
        cmocka_unit_test(eviction_spares_pinned_models),
        cmocka_unit_test(job_runs_while_another_model_loads),
        cmocka_unit_test(gate_is_cached_until_a_change),
        cmocka_unit_test(gate_without_version_is_not_cached),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_junk();
    return rc;
}
