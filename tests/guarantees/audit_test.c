/* audit_test.c - the audit log: chain, checkpoints, tamper detection (edit,
 * delete, reorder, insert, truncate, torn write), repair at open, content
 * modes, concurrent appenders, export. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit/audit.h"

static char g_root[256];

/* ---- small file helpers: the log as an array of lines */

typedef struct lines {
    char **v;
    size_t n;
} lines;

static lines read_lines(const char *path)
{
    lines L = {0};
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, f)) > 0) {
        L.v = realloc(L.v, (L.n + 1) * sizeof(char *));
        L.v[L.n++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    return L;
}

static void write_lines(const char *path, const lines *L)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < L->n; i++)
        fputs(L->v[i], f);
    fclose(f);
}

static void free_lines(lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->v[i]);
    free(L->v);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
        fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

/* Makes dir NAME under g_root as a copy of the reference log dir "ref". */
static void clone_ref(const char *name, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", g_root, name);
    mkdir(dir, 0700);
    const char *files[] = {"audit.log", "audit.pub", "audit.head", "audit.key"};
    for (size_t i = 0; i < 4; i++) {
        char a[512], b[512];
        snprintf(a, sizeof(a), "%s/ref/%s", g_root, files[i]);
        snprintf(b, sizeof(b), "%s/%s", dir, files[i]);
        copy_file(a, b);
    }
}

static void logpath(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/audit.log", dir);
}

static void append_events(al_audit *a, int n, const char *actor)
{
    for (int i = 0; i < n; i++) {
        al_audit_event ev = {0};
        ev.actor = actor;
        ev.client = "127.0.0.1";
        ev.action = "POST /v1/chat/completions";
        ev.model = "stories260K";
        ev.digest = "abc123";
        ev.prompt_tokens = 10 + i;
        ev.completion_tokens = 20 + i;
        ev.status = 200;
        ev.duration_ms = 1.5;
        al_error err = {0};
        assert_int_equal(al_audit_append(a, &ev, &err), AL_OK);
    }
}

/* The reference log: 20 events + 1 checkpoint + 9 events = 30 records. */
static int setup_ref(void **state)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ref", g_root);
    al_audit *a = NULL;
    al_error err = {0};
    if (al_audit_open(dir, &a, &err) != AL_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    append_events(a, 20, "key_ref");
    if (al_audit_checkpoint(a, &err) != AL_OK)
        return -1;
    append_events(a, 9, "key_ref");
    al_audit_close(a);
    return 0;
}

static void expect_bad(const char *dir, uint64_t line, const char *word)
{
    al_audit_verify_result res;
    al_error err = {0};
    al_status st = al_audit_verify(dir, &res, &err);
    printf("  verify %s -> %s: line %llu: %s\n", dir, al_status_str(st),
           (unsigned long long)res.bad_line, res.problem);
    assert_int_equal(st, AL_ERR_CRYPTO);
    assert_int_equal(res.bad_line, line);
    if (word)
        assert_non_null(strstr(res.problem, word));
}

static void test_intact(void **state)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ref", g_root);
    al_audit_verify_result res;
    al_error err = {0};
    assert_int_equal(al_audit_verify(dir, &res, &err), AL_OK);
    assert_int_equal(res.n_records, 30);
    assert_int_equal(res.n_checkpoints, 1); /* the explicit one */
    assert_int_equal(res.bad_line, 0);
}

static void test_edit(void **state)
{
    char dir[512], lp[600];
    clone_ref("edit", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    lines L = read_lines(lp);
    char *p = strstr(L.v[4], "\"status\":200");
    assert_non_null(p);
    p[11] = '1'; /* 200 -> 201 */
    write_lines(lp, &L);
    free_lines(&L);
    expect_bad(dir, 5, "edited");
}

/* An attacker who edits a record and recomputes its own hash: the record's
 * own signature no longer verifies (and the next record's link breaks). */
static void test_edit_rehashed(void **state)
{
    char dir[512], lp[600];
    clone_ref("edit2", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    lines L = read_lines(lp);
    char *line = L.v[4];
    char *p = strstr(line, "\"status\":200");
    p[11] = '1';
    size_t len = strlen(line) - 1; /* without '\n' */
    size_t plen = len - 75;
    unsigned char md[32];
    unsigned int mdl;
    EVP_Digest(line, plen, md, &mdl, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(line + plen + 9 + 2 * i, 3, "%02x", md[i]);
    line[plen + 73] = '"';
    write_lines(lp, &L);
    free_lines(&L);
    expect_bad(dir, 5, "signature");
}

static void test_delete(void **state)
{
    char dir[512], lp[600];
    clone_ref("delete", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    lines L = read_lines(lp);
    free(L.v[6]);
    memmove(&L.v[6], &L.v[7], (L.n - 7) * sizeof(char *));
    L.n--;
    write_lines(lp, &L);
    free_lines(&L);
    expect_bad(dir, 7, "expected");
}

static void test_reorder(void **state)
{
    char dir[512], lp[600];
    clone_ref("reorder", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    lines L = read_lines(lp);
    char *t = L.v[2];
    L.v[2] = L.v[3];
    L.v[3] = t;
    write_lines(lp, &L);
    free_lines(&L);
    expect_bad(dir, 3, "reordered");
}

static void test_insert(void **state)
{
    char dir[512], lp[600];
    clone_ref("insert", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    lines L = read_lines(lp);
    L.v = realloc(L.v, (L.n + 1) * sizeof(char *));
    memmove(&L.v[3], &L.v[2], (L.n - 2) * sizeof(char *));
    L.v[2] = strdup(L.v[1]); /* a copy of record 2 inserted as line 3 */
    L.n++;
    write_lines(lp, &L);
    free_lines(&L);
    expect_bad(dir, 3, "inserted");
}

static void test_truncate(void **state)
{
    char dir[512], lp[600];
    clone_ref("truncate", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    lines L = read_lines(lp);
    size_t keep = L.n - 3;
    for (size_t i = keep; i < L.n; i++)
        free(L.v[i]);
    L.n = keep;
    write_lines(lp, &L);
    free_lines(&L);
    expect_bad(dir, 28, "truncated");
}

/* A torn last write (what kill -9 or a power cut mid-write leaves): verify
 * says where; opening the log cuts it and audits the repair. */
static void test_torn_and_repair(void **state)
{
    char dir[512], lp[600];
    clone_ref("torn", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    FILE *f = fopen(lp, "a");
    fputs("{\"seq\":31,\"time\":\"2025-01-01T00:00:00.000Z\",\"type\":\"event\",\"act", f);
    fclose(f);
    expect_bad(dir, 31, "torn");

    al_audit *a = NULL;
    al_error err = {0};
    assert_int_equal(al_audit_open(dir, &a, &err), AL_OK);
    al_audit_close(a);
    al_audit_verify_result res;
    assert_int_equal(al_audit_verify(dir, &res, &err), AL_OK);
    assert_int_equal(res.n_records, 31);
    lines L = read_lines(lp);
    assert_int_equal(L.n, 31);
    assert_non_null(strstr(L.v[30], "\"action\":\"audit.repair\""));
    assert_non_null(strstr(L.v[30], "torn record"));
    assert_non_null(strstr(L.v[30], "\"seq\":31"));
    free_lines(&L);
}

/* A forged checkpoint (signed with another key) is caught. */
static void test_forged_checkpoint(void **state)
{
    char dir[512], lp[600];
    clone_ref("forge", dir, sizeof(dir));
    logpath(dir, lp, sizeof(lp));
    /* swap in another key pair: a new log elsewhere signs with its own key */
    char other[512];
    snprintf(other, sizeof(other), "%s/otherkey", g_root);
    al_audit *a = NULL;
    al_error err = {0};
    assert_int_equal(al_audit_open(other, &a, &err), AL_OK);
    al_audit_close(a);
    char from[600], to[600];
    snprintf(from, sizeof(from), "%s/audit.key", other);
    snprintf(to, sizeof(to), "%s/audit.key", dir);
    copy_file(from, to);
    /* the forger rewrites with its key, but audit.pub (kept off the host or
     * compared with the published one) still names the server's key */
    char pub_keep[600], pub_tmp[600];
    snprintf(pub_keep, sizeof(pub_keep), "%s/audit.pub", dir);
    snprintf(pub_tmp, sizeof(pub_tmp), "%s/audit.pub.orig", dir);
    copy_file(pub_keep, pub_tmp);
    assert_int_equal(al_audit_open(dir, &a, &err), AL_OK);
    assert_int_equal(al_audit_checkpoint(a, &err), AL_OK);
    al_audit_close(a);
    copy_file(pub_tmp, pub_keep);
    expect_bad(dir, 31, "signature");
}

static void test_content_modes(void **state)
{
    const char *names[] = {"c_none", "c_digest", "c_full"};
    for (int m = 0; m < 3; m++) {
        char dir[512], lp[600];
        snprintf(dir, sizeof(dir), "%s/%s", g_root, names[m]);
        al_audit *a = NULL;
        al_error err = {0};
        assert_int_equal(al_audit_open(dir, &a, &err), AL_OK);
        al_audit_set_content(a, (al_audit_content)m);
        al_audit_event ev = {0};
        ev.actor = "k1";
        ev.action = "POST /v1/completions";
        ev.prompt = "secret prompt text";
        ev.prompt_len = strlen(ev.prompt);
        ev.completion = "the answer";
        ev.completion_len = strlen(ev.completion);
        ev.prompt_tokens = ev.completion_tokens = -1;
        ev.status = 200;
        assert_int_equal(al_audit_append(a, &ev, &err), AL_OK);
        al_audit_close(a);
        logpath(dir, lp, sizeof(lp));
        lines L = read_lines(lp);
        assert_int_equal(L.n, 1);
        const char *l = L.v[0];
        /* sha256("secret prompt text") */
        unsigned char md[32];
        unsigned int mdl;
        char hex[65];
        EVP_Digest(ev.prompt, ev.prompt_len, md, &mdl, EVP_sha256(), NULL);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        if (m == 0) {
            assert_null(strstr(l, "secret prompt"));
            assert_null(strstr(l, hex));
            assert_null(strstr(l, "prompt_sha256"));
        } else if (m == 1) {
            assert_null(strstr(l, "secret prompt"));
            assert_non_null(strstr(l, hex));
        } else {
            assert_non_null(strstr(l, "\"prompt\":\"secret prompt text\""));
            assert_non_null(strstr(l, "\"completion\":\"the answer\""));
        }
        free_lines(&L);
    }
}

/* Several processes append to one log at once: the chain stays whole. */
static void test_concurrent_processes(void **state)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/multi", g_root);
    al_audit *a = NULL;
    al_error err = {0};
    assert_int_equal(al_audit_open(dir, &a, &err), AL_OK);
    al_audit_close(a);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            al_audit *c = NULL;
            if (al_audit_open(dir, &c, NULL) != AL_OK)
                _exit(1);
            for (int i = 0; i < 40; i++) {
                al_audit_event ev = {0};
                ev.actor = "child";
                ev.action = "store.pull";
                ev.prompt_tokens = ev.completion_tokens = -1;
                if (al_audit_append(c, &ev, NULL) != AL_OK)
                    _exit(2);
            }
            al_audit_close(c);
            _exit(0);
        }
    }
    for (int k = 0; k < 4; k++) {
        int ws;
        waitpid(kids[k], &ws, 0);
        assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    }
    al_audit_verify_result res;
    assert_int_equal(al_audit_verify(dir, &res, &err), AL_OK);
    /* 160 events + a checkpoint at seq 64 and 128 */
    assert_int_equal(res.n_records, 162);
    assert_int_equal(res.n_checkpoints, 2);
}

static void test_export(void **state)
{
    char dir[512], out[600];
    snprintf(dir, sizeof(dir), "%s/ref", g_root);
    snprintf(out, sizeof(out), "%s/export.jsonl", g_root);
    FILE *f = fopen(out, "w");
    al_error err = {0};
    assert_int_equal(al_audit_export(dir, 0, 0, f, &err), AL_OK);
    fclose(f);
    lines L = read_lines(out);
    assert_int_equal(L.n, 30);
    assert_null(strstr(L.v[0], "\"hash\""));
    assert_non_null(strstr(L.v[0], "\"actor\":\"key_ref\""));
    free_lines(&L);
    /* a window in the far future is empty */
    f = fopen(out, "w");
    assert_int_equal(al_audit_export(dir, 4102444800LL, 0, f, &err), AL_OK);
    fclose(f);
    L = read_lines(out);
    assert_int_equal(L.n, 0);
    free_lines(&L);
}

int main(void)
{
    snprintf(g_root, sizeof(g_root), "/tmp/al_audit_test.XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact),
        cmocka_unit_test(test_edit),
        cmocka_unit_test(test_edit_rehashed),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_torn_and_repair),
        cmocka_unit_test(test_forged_checkpoint),
        cmocka_unit_test(test_content_modes),
        cmocka_unit_test(test_concurrent_processes),
        cmocka_unit_test(test_export),
    };
    int rc = cmocka_run_group_tests(tests, setup_ref, NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_root);
    if (rc == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_root);
    return rc;
}
