/* test_ref.c - registry references and credentials files: the contract
 * `[http://|https://]HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/registry.h"

static const char *k_hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void test_good(void **state)
{
    (void)state;
    al_reg_ref r;
    al_error e = {0};
    assert_int_equal(al_reg_ref_parse("reg.example:5000/models/qwen:q8_0", &r, &e), AL_OK);
    assert_false(r.plain_http);
    assert_string_equal(r.host, "reg.example:5000");
    assert_string_equal(r.repo, "models/qwen");
    assert_string_equal(r.tag, "q8_0");
    assert_string_equal(r.digest, "");

    assert_int_equal(al_reg_ref_parse("http://127.0.0.1:5000/a/b/c", &r, &e), AL_OK);
    assert_true(r.plain_http);
    assert_string_equal(r.repo, "a/b/c");
    assert_string_equal(r.tag, "");

    char s[200];
    snprintf(s, sizeof(s), "https://reg/m@sha256:%s", k_hex);
    assert_int_equal(al_reg_ref_parse(s, &r, &e), AL_OK);
    assert_false(r.plain_http);
    assert_string_equal(r.digest, k_hex);
    char back[300];
    al_reg_ref_format(&r, back, sizeof(back));
    assert_string_equal(back, s + strlen("https://"));
}

static void test_bad(void **state)
{
    (void)state;
    al_reg_ref r;
    al_error e = {0};
    const char *bad[] = {
        "ftp://reg/m:1",        /* scheme */
        "reg",                  /* no repository */
        "/m:1",                 /* no host */
        "reg/M:1",              /* uppercase repository */
        "reg/m:",               /* empty tag */
        "reg/m:-x",             /* tag starting with '-' */
        "reg/m@sha256:abc",     /* short digest */
        "reg/m@md5:0123",       /* other algorithm */
        "reg//m:1",             /* empty component */
        "reg/m/:1",             /* trailing slash */
        "re g/m:1",             /* space in host */
        "reg/m:a b",            /* space in tag */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e.msg[0] = 0;
        if (al_reg_ref_parse(bad[i], &r, &e) == AL_OK)
            fail_msg("accepted '%s'", bad[i]);
        assert_non_null(strstr(e.msg, bad[i]));
    }
    char s[200];
    snprintf(s, sizeof(s), "reg/m@sha256:%.63sA", k_hex);
    assert_int_not_equal(al_reg_ref_parse(s, &r, &e), AL_OK);
}

/* Credentials: a file with the wrong shape is refused with its name; the
 * message never holds the secret. */
static void test_auth_file(void **state)
{
    (void)state;
    char path[] = "/tmp/airlock-authtest-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad = "{\"auths\": {\"reg:5000\": {\"password\": \"hunter2-secret\"}}}";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    al_reg_ref r;
    al_error e = {0};
    assert_int_equal(al_reg_ref_parse("reg:5000/m:1", &r, &e), AL_OK);
    al_reg_opts o = {.auth_file = path};
    al_reg *reg = NULL;
    assert_int_equal(al_reg_open(&r, &o, &reg, &e), AL_ERR_FORMAT);
    assert_non_null(strstr(e.msg, path));
    assert_null(strstr(e.msg, "hunter2"));
    /* another host's entry is simply not used */
    assert_int_equal(al_reg_ref_parse("other:5000/m:1", &r, &e), AL_OK);
    assert_int_equal(al_reg_open(&r, &o, &reg, &e), AL_OK);
    al_reg_close(reg);
    unlink(path);
    o.auth_file = "/nonexistent/config.json";
    assert_int_equal(al_reg_open(&r, &o, &reg, &e), AL_ERR_IO);
    assert_non_null(strstr(e.msg, "/nonexistent/config.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_auth_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
