/*
 * test_kv_zero.c - data hygiene of the scheduler: once a request has ended
 * (finished by length, by an end-of-generation token, or cancelled), not a
 * byte of the KV cache it wrote is left, unless the prefix cache is on.
 *
 * The real scheduler runs the real stories260K model in process; after each
 * job ends the test reads the whole K and V caches of the model's context
 * (srv_sched_kv_nonzero) and fails on any non-zero byte. The same run with
 * the prefix cache on must leave non-zero bytes: that proves the probe reads
 * the cache the request wrote (without the zeroing in slot_finish this test
 * fails).
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

#include "server/sched.h"

static char g_model[4096];

static bool always_alive(void *arg)
{
    (void)arg;
    return true;
}

static srv_sched *start(bool prefix_cache, srv_model **m)
{
    srv_sched_params p = {0};
    p.n_parallel = 2;
    p.n_ctx = 128;
    p.n_batch = 32;
    p.n_threads = 1;
    p.queue_cap = 8;
    p.prefix_cache = prefix_cache;
    srv_model_cfg cfg = {.path = g_model, .name = "stories"};
    srv_sched *s = NULL;
    al_error err = {0};
    if (srv_sched_new(&p, &cfg, 1, &s, &err) != AL_OK)
        fail_msg("srv_sched_new: %s", err.msg);
    *m = srv_sched_find(s, "stories");
    assert_non_null(*m);
    return s;
}

/* Runs one job of n_gen tokens on prompt [1, 400, 401, ...] to its end
 * (cancel: cancelled after its first token) and returns how it finished. */
static srv_finish run_job(srv_sched *s, srv_model *m, int32_t n_prompt, int32_t n_gen, bool cancel)
{
    const al_model *model = NULL;
    al_error err = {0};
    if (srv_model_acquire(s, m, &model, &err) != AL_OK)
        fail_msg("srv_model_acquire: %s", err.msg);
    srv_job *j = srv_job_new();
    assert_non_null(j);
    j->model = m;
    j->prompt = malloc((size_t)n_prompt * sizeof(int32_t));
    assert_non_null(j->prompt);
    j->prompt[0] = 1; /* BOS */
    for (int32_t i = 1; i < n_prompt; i++)
        j->prompt[i] = 400 + i % 100;
    j->n_prompt = n_prompt;
    j->max_tokens = n_gen;
    j->sp.temperature = 0;
    if (srv_sched_submit(s, j, &err) != AL_OK)
        fail_msg("srv_sched_submit: %s", err.msg);
    if (cancel) {
        while (!srv_job_wait(s, j, 0, 0, 1000))
            ;
        srv_job_cancel_wait(s, j);
    } else {
        srv_job_wait_done(s, j, always_alive, NULL);
    }
    srv_job_view v = {0};
    srv_job_view_take(s, j, 0, 0, &v);
    free(v.text);
    free(v.toks);
    srv_job_free(j);
    srv_model_release(s, m);
    return v.finish;
}

/* Waits until the scheduler holds no job (the zeroing happens when a slot
 * lets go of its job; the reader may be woken a moment before). */
static void wait_idle(srv_sched *s)
{
    for (;;) {
        srv_sched_stats st;
        srv_sched_get_stats(s, &st);
        if (st.active == 0 && st.queue_depth == 0)
            return;
        usleep(1000);
    }
}

static void finished_requests_leave_no_kv(void **state)
{
    (void)state;
    srv_model *m = NULL;
    srv_sched *s = start(false, &m);
    assert_int_equal(run_job(s, m, 40, 12, false), SRV_FINISH_LENGTH);
    wait_idle(s);
    size_t nz = srv_sched_kv_nonzero(s, m);
    assert_int_not_equal(nz, SIZE_MAX); /* the context exists: the job ran */
    if (nz)
        fail_msg("%zu bytes of the KV cache are non-zero after a request ended (length)", nz);
    /* a longer prompt spanning passes, then one cancelled mid-generation */
    assert_int_equal(run_job(s, m, 90, 20, false), SRV_FINISH_LENGTH);
    wait_idle(s);
    nz = srv_sched_kv_nonzero(s, m);
    if (nz)
        fail_msg("%zu bytes of the KV cache are non-zero after a 90-token prompt ended", nz);
    srv_finish f = run_job(s, m, 30, 100, true);
    assert_true(f == SRV_FINISH_CANCELLED || f == SRV_FINISH_LENGTH || f == SRV_FINISH_STOP);
    wait_idle(s);
    nz = srv_sched_kv_nonzero(s, m);
    if (nz)
        fail_msg("%zu bytes of the KV cache are non-zero after a cancelled request", nz);
    srv_sched_free(s);
}

/* The control: the same request with the prefix cache on keeps its KV, and
 * the probe sees it. */
static void prefix_cache_keeps_kv(void **state)
{
    (void)state;
    srv_model *m = NULL;
    srv_sched *s = start(true, &m);
    assert_int_equal(run_job(s, m, 40, 12, false), SRV_FINISH_LENGTH);
    wait_idle(s);
    size_t nz = srv_sched_kv_nonzero(s, m);
    assert_int_not_equal(nz, SIZE_MAX);
    if (nz < 1000)
        fail_msg("only %zu non-zero KV bytes with the prefix cache on: the probe does not read the cache", nz);
    srv_sched_free(s);
}

int main(void)
{
    const char *shared = getenv("AIRLOCK_SHARED");
    snprintf(g_model, sizeof(g_model), "%s/models/stories260K.gguf", shared ? shared : "../shared");
    if (access(g_model, R_OK) != 0) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", g_model);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finished_requests_leave_no_kv),
        cmocka_unit_test(prefix_cache_keeps_kv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
