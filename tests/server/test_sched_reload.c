/*
 * test_sched_reload.c - the scheduler's model table under hot reload
 * (srv_sched_add_model / srv_sched_remove_model): a removed model is no
 * longer found (by name, bare name or pinned digest) and new uses fail with
 * AL_ERR_NOT_FOUND naming it; its entry (and pointer) stays; the same model
 * published again comes back in the same entry; another blob under the same
 * name gets a new one; a name already served is refused; the table's limit
 * is a clean AL_ERR_LIMIT. A model pinned by a request when it is removed
 * keeps its weights until the request lets go; an idle one is freed at once
 * (these two load ../shared/models/stories260K.gguf: skipped without it).
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
#include <pthread.h>
#include <sched.h>

#include <cmocka.h>

#include "server/sched.h"
#include "util/hash.h"

#define DA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define MA "1111111111111111111111111111111111111111111111111111111111111111"
#define MB "2222222222222222222222222222222222222222222222222222222222222222"

static srv_sched *new_sched(void)
{
    srv_sched_params p = {0};
    p.n_parallel = 1;
    p.n_ctx = 64;
    p.n_batch = 8;
    p.queue_cap = 4;
    srv_model_cfg a = {.path = "/nonexistent/a.gguf", .name = "a:latest", .digest = DA, .manifest_digest = MA};
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, &a, 1, &s, &err), AL_OK);
    return s;
}

static srv_model_cfg cfg_b(const char *digest, const char *mdigest)
{
    srv_model_cfg b = {.path = "/nonexistent/b.gguf", .name = "b:v1", .digest = digest, .manifest_digest = mdigest};
    return b;
}

static void removed_is_not_found(void **state)
{
    (void)state;
    srv_sched *s = new_sched();
    al_error err = {0};
    srv_model_cfg b = cfg_b(DB, MB);
    assert_int_equal(srv_sched_add_model(s, &b, &err), AL_OK);
    assert_int_equal(srv_sched_n_models(s), 2);
    srv_model *mb = srv_sched_find(s, "b:v1");
    assert_non_null(mb);
    assert_ptr_equal(srv_sched_find(s, "b@sha256:" MB), mb);
    assert_non_null(srv_sched_find(s, "a"));

    /* A name already served is refused, whatever its blob. */
    srv_model_cfg dup = cfg_b(DC, NULL);
    assert_int_equal(srv_sched_add_model(s, &dup, &err), AL_ERR_ARG);
    assert_non_null(strstr(err.msg, "b:v1"));

    /* Removed with another digest: not this one. */
    assert_false(srv_sched_remove_model(s, "b:v1", DC));
    assert_true(srv_sched_remove_model(s, "b:v1", DB));
    assert_false(srv_sched_remove_model(s, "b:v1", DB)); /* already gone */
    assert_null(srv_sched_find(s, "b:v1"));
    assert_null(srv_sched_find(s, "b@sha256:" MB));
    assert_null(srv_sched_find(s, "b@sha256:" DB));
    assert_int_equal(srv_sched_n_models(s), 2); /* the entry stays */
    srv_model_status st;
    srv_model_get_status(s, mb, &st);
    assert_true(st.gone);
    assert_string_equal(st.name, "b:v1");
    /* A request that found it before the removal is refused cleanly. */
    const al_model *m = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_equal(srv_model_acquire(s, mb, &m, &err), AL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "'b:v1'"));
    assert_non_null(strstr(err.msg, "no longer published"));

    /* The bare name of a removed :latest model is not found either. */
    assert_true(srv_sched_remove_model(s, "a:latest", NULL));
    assert_null(srv_sched_find(s, "a"));
    assert_null(srv_sched_find(s, "a:latest"));
    srv_sched_free(s);
}

static void republished(void **state)
{
    (void)state;
    srv_sched *s = new_sched();
    al_error err = {0};
    srv_model_cfg b = cfg_b(DB, MB);
    assert_int_equal(srv_sched_add_model(s, &b, &err), AL_OK);
    srv_model *mb = srv_sched_find(s, "b:v1");
    assert_true(srv_sched_remove_model(s, "b:v1", NULL));

    /* Approved again as it was: the same entry comes back. */
    assert_int_equal(srv_sched_add_model(s, &b, &err), AL_OK);
    assert_ptr_equal(srv_sched_find(s, "b:v1"), mb);
    assert_int_equal(srv_sched_n_models(s), 2);
    srv_model_status st;
    srv_model_get_status(s, mb, &st);
    assert_false(st.gone);

    /* Another blob under the same name: a new entry; the old one stays gone. */
    assert_true(srv_sched_remove_model(s, "b:v1", DB));
    srv_model_cfg b2 = cfg_b(DC, MA);
    assert_int_equal(srv_sched_add_model(s, &b2, &err), AL_OK);
    srv_model *mb2 = srv_sched_find(s, "b:v1");
    assert_non_null(mb2);
    assert_ptr_not_equal(mb2, mb);
    assert_int_equal(srv_sched_n_models(s), 3);
    srv_model_get_status(s, mb, &st);
    assert_true(st.gone);
    srv_model_get_status(s, mb2, &st);
    assert_string_equal(st.digest, DC);
    assert_null(srv_sched_find(s, "b@sha256:" DB));
    assert_ptr_equal(srv_sched_find(s, "b@sha256:" DC), mb2);
    srv_sched_free(s);
}

static void table_full(void **state)
{
    (void)state;
    srv_sched *s = new_sched();
    al_error err = {0};
    char name[32];
    for (size_t i = 1; i < SRV_SCHED_MAX_MODELS; i++) {
        snprintf(name, sizeof(name), "m%zu:t", i);
        srv_model_cfg c = {.path = "/nonexistent/m.gguf", .name = name, .digest = DA};
        assert_int_equal(srv_sched_add_model(s, &c, &err), AL_OK);
    }
    assert_int_equal(srv_sched_n_models(s), SRV_SCHED_MAX_MODELS);
    srv_model_cfg c = {.path = "/nonexistent/m.gguf", .name = "one-more:t", .digest = DA};
    assert_int_equal(srv_sched_add_model(s, &c, &err), AL_ERR_LIMIT);
    assert_null(srv_sched_find(s, "one-more:t"));
    /* Removing frees no entry, but the same model comes back in its own. */
    assert_true(srv_sched_remove_model(s, "m7:t", NULL));
    srv_model_cfg m7 = {.path = "/nonexistent/m.gguf", .name = "m7:t", .digest = DA};
    assert_int_equal(srv_sched_add_model(s, &m7, &err), AL_OK);
    assert_non_null(srv_sched_find(s, "m7:t"));
    srv_sched_free(s);
}

static char g_model[1024]; /* stories260K.gguf */

static bool loaded(srv_sched *s, srv_model *m)
{
    srv_model_status st;
    srv_model_get_status(s, m, &st);
    return st.loaded;
}

/* A request that holds the model (srv_model_acquire) when it is removed
 * keeps it: its weights stay until it releases them; new uses are refused. */
static void pinned_until_released(void **state)
{
    (void)state;
    srv_sched *s = new_sched();
    al_error err = {0};
    srv_model_cfg c = {.path = g_model, .name = "stories:v1"};
    assert_int_equal(srv_sched_add_model(s, &c, &err), AL_OK);
    srv_model *m = srv_sched_find(s, "stories:v1");
    assert_non_null(m);
    const al_model *w = NULL;
    assert_int_equal(srv_model_acquire(s, m, &w, &err), AL_OK);
    assert_non_null(w);
    assert_true(srv_sched_remove_model(s, "stories:v1", NULL));
    assert_true(loaded(s, m)); /* the running request still uses it */
    al_model_info info;
    al_model_get_info(w, &info); /* its weights are still there to read */
    assert_int_equal(info.n_layer, 5);
    const al_model *w2 = NULL;
    assert_int_equal(srv_model_acquire(s, m, &w2, &err), AL_ERR_NOT_FOUND);
    srv_model_release(s, m);
    assert_false(loaded(s, m)); /* freed with the last pin */

    /* Idle (loaded, no pin) when removed: freed at once. */
    assert_int_equal(srv_sched_add_model(s, &c, &err), AL_OK);
    assert_ptr_equal(srv_sched_find(s, "stories:v1"), m);
    assert_int_equal(srv_model_acquire(s, m, &w, &err), AL_OK);
    srv_model_release(s, m);
    assert_true(loaded(s, m));
    assert_true(srv_sched_remove_model(s, "stories:v1", NULL));
    assert_false(loaded(s, m));
    srv_sched_free(s);
}


/* ---- churn: requests, eviction under the memory budget and hot-reload
 * removals at once (for ASan/TSan: a model freed while a job, a loader or
 * the scheduler thread still uses it, or left LOADING, shows up here). */

static char g_model_b[1024]; /* stories260K-q8_0.gguf */

typedef struct churn_arg {
    srv_sched *s;
    int id;
    int n_ok, n_refused;
    char bad[1400];          /* an unexpected outcome, else empty */
} churn_arg;

static void *churn_requests(void *v)
{
    churn_arg *a = v;
    for (int it = 0; it < 24 && !a->bad[0]; it++) {
        const char *name = (it + a->id) % 2 ? "sa:v1" : "sb:v1";
        srv_model *m = srv_sched_find(a->s, name);
        if (!m) { /* removed this moment */
            a->n_refused++;
            continue;
        }
        const al_model *w = NULL;
        al_error err = {0};
        al_status st = srv_model_acquire(a->s, m, &w, &err);
        if (st == AL_ERR_NOT_FOUND || st == AL_ERR_LIMIT) { /* removed, or the other one is busy */
            a->n_refused++;
            continue;
        }
        if (st) {
            snprintf(a->bad, sizeof(a->bad), "acquire %s: %d %s", name, (int)st, err.msg);
            break;
        }
        srv_job *j = srv_job_new();
        j->model = m;
        j->n_prompt = 6;
        j->prompt = malloc(6 * sizeof(int32_t));
        for (int i = 0; i < 6; i++)
            j->prompt[i] = i ? 300 + 7 * i + it : 1;
        j->max_tokens = 4;
        j->sp.temperature = 0;
        if (srv_sched_submit(a->s, j, &err) == AL_OK) {
            srv_job_wait_done(a->s, j, NULL, NULL);
            srv_job_view jv = {0};
            srv_job_view_take(a->s, j, 0, 0, &jv);
            if (jv.finish != SRV_FINISH_LENGTH && jv.finish != SRV_FINISH_STOP)
                snprintf(a->bad, sizeof(a->bad), "a job on %s finished with %d: %s", name, (int)jv.finish,
                         j->err.msg);
            free(jv.text);
            free(jv.toks);
            a->n_ok++;
        } else if (err.status != AL_ERR_LIMIT) {
            snprintf(a->bad, sizeof(a->bad), "submit: %s", err.msg);
        }
        srv_job_free(j);
        srv_model_release(a->s, m);
    }
    return NULL;
}

static void churn(void **state)
{
    (void)state;
    srv_model_cfg ca = {.path = g_model, .name = "sa:v1"}, cb = {.path = g_model_b, .name = "sb:v1"};
    /* the budget: either model, not both (their bytes measured first) */
    srv_sched_params p = {.n_parallel = 2, .n_ctx = 64, .n_batch = 16, .queue_cap = 16, .n_threads = 1};
    srv_model_cfg both[2] = {ca, cb};
    srv_sched *s = NULL;
    al_error err = {0};
    assert_int_equal(srv_sched_new(&p, both, 2, &s, &err), AL_OK);
    uint64_t sum = 0;
    for (size_t i = 0; i < 2; i++) {
        srv_model *m = srv_sched_model_at(s, i);
        const al_model *w = NULL;
        assert_int_equal(srv_model_acquire(s, m, &w, &err), AL_OK);
        srv_model_status st;
        srv_model_get_status(s, m, &st);
        sum += st.bytes;
        srv_model_release(s, m);
    }
    srv_sched_free(s);
    p.memory_budget = sum - 1;
    assert_int_equal(srv_sched_new(&p, both, 2, &s, &err), AL_OK);

    enum { N = 3 };
    churn_arg a[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        a[i] = (churn_arg){.s = s, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, churn_requests, &a[i]), 0);
    }
    /* meanwhile model a is removed and published again, over and over */
    for (int r = 0; r < 40; r++) {
        srv_sched_remove_model(s, "sa:v1", NULL);
        sched_yield();
        assert_int_equal(srv_sched_add_model(s, &ca, &err), AL_OK);
        sched_yield();
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (a[i].bad[0])
            fail_msg("%s", a[i].bad);
        ok += a[i].n_ok;
    }
    assert_true(ok > 0);
    assert_int_equal(srv_sched_n_models(s), 2); /* removed and back: the same entry */
    srv_sched_stats ss;
    srv_sched_get_stats(s, &ss);
    assert_int_equal(ss.active, 0);
    assert_true(ss.n_models_loaded <= 1); /* the budget holds one */
    srv_sched_free(s);
}

/* ---- a blob refused at rest (failed its hash), put right and published
 * again as it was: served again (hashed again at its load), not refused
 * for the life of the server. */

/* Copies g_model to path, with its last byte flipped when `flip`. */
static void copy_model(const char *path, bool flip)
{
    FILE *in = fopen(g_model, "rb"), *out = fopen(path, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
        total += n;
    }
    fclose(in);
    if (flip) {
        assert_int_equal(fseek(out, (long)total - 1, SEEK_SET), 0);
        int c = 0;
        fflush(out);
        FILE *r = fopen(g_model, "rb");
        assert_int_equal(fseek(r, (long)total - 1, SEEK_SET), 0);
        c = fgetc(r);
        fclose(r);
        fputc(c ^ 0x5a, out);
    }
    assert_int_equal(fclose(out), 0);
}

static void refused_then_republished(void **state)
{
    (void)state;
    char path[] = "/tmp/airlock-refused-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    /* the digest of the good content */
    copy_model(path, false);
    char hex[65];
    {
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        al_sha256 *h = al_sha256_begin();
        assert_non_null(h);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            al_sha256_update(h, buf, n);
        fclose(f);
        assert_true(al_sha256_end(h, hex));
    }
    copy_model(path, true); /* tampered at rest */
    srv_sched *s = new_sched();
    al_error err = {0};
    srv_model_cfg c = {.path = path, .name = "t:v1", .digest = hex};
    assert_int_equal(srv_sched_add_model(s, &c, &err), AL_OK);
    srv_model *m = srv_sched_find(s, "t:v1");
    assert_non_null(m);
    const al_model *w = NULL;
    assert_int_equal(srv_model_acquire(s, m, &w, &err), AL_ERR_CRYPTO);
    copy_model(path, false); /* put right */
    memset(&err, 0, sizeof(err));
    assert_int_equal(srv_model_acquire(s, m, &w, &err), AL_ERR_CRYPTO); /* refused while published */
    /* removed and published again as it was (rm, import, approve) */
    assert_true(srv_sched_remove_model(s, "t:v1", hex));
    assert_int_equal(srv_sched_add_model(s, &c, &err), AL_OK);
    assert_ptr_equal(srv_sched_find(s, "t:v1"), m);
    memset(&err, 0, sizeof(err));
    if (srv_model_acquire(s, m, &w, &err) != AL_OK)
        fail_msg("republished after it was put right, still refused: %s", err.msg);
    srv_model_release(s, m);
    /* tampered again: refused again at its next load */
    assert_true(srv_sched_remove_model(s, "t:v1", hex)); /* idle: freed */
    copy_model(path, true);
    assert_int_equal(srv_sched_add_model(s, &c, &err), AL_OK);
    assert_int_equal(srv_model_acquire(s, m, &w, &err), AL_ERR_CRYPTO);
    srv_sched_free(s);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(removed_is_not_found),
        cmocka_unit_test(republished),
        cmocka_unit_test(table_full),
    };
    int rc = cmocka_run_group_tests_name("table", tests, NULL, NULL);
    const char *shared = getenv("AIRLOCK_SHARED");
    snprintf(g_model, sizeof(g_model), "%s/models/stories260K.gguf", shared ? shared : "../shared");
    if (access(g_model, R_OK) != 0) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED): the pinned-model case was not run\n", g_model);
        return rc ? rc : 77;
    }
    snprintf(g_model_b, sizeof(g_model_b), "%s/models/stories260K-q8_0.gguf", shared ? shared : "../shared");
    const struct CMUnitTest with_model[] = {cmocka_unit_test(pinned_until_released), cmocka_unit_test(churn),
                                            cmocka_unit_test(refused_then_republished)};
    return rc | cmocka_run_group_tests_name("with a model", with_model, NULL, NULL);
}
