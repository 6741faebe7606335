/* apikey_test.c - API keys: create/list/revoke, and the 401/403/429
 * decisions with Retry-After. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "policy/apikey.h"

static char g_dir[64];

static al_keyring *open_kr(void)
{
    al_keyring *kr = NULL;
    al_error err = {0};
    assert_int_equal(al_keyring_open(g_dir, &kr, &err), AL_OK);
    return kr;
}

static void test_open_when_no_keys(void **state)
{
    al_keyring *kr = open_kr();
    al_auth_result r;
    assert_int_equal(al_keyring_authorize(kr, NULL, "chat", "m", &r), AL_AUTH_OK);
    assert_true(r.open);
    al_keyring_close(kr);
}

static void test_create_list_revoke_and_decisions(void **state)
{
    al_keyring *kr = open_kr();
    al_error err = {0};
    char secret[AL_APIKEY_SECRET_LEN + 1], id[17];
    al_apikey_spec sp = {.name = "app1", .scopes = "chat,models", .models = "qwen3*,stories*", .rpm = 3};
    assert_int_equal(al_keyring_create(kr, &sp, secret, id, &err), AL_OK);
    assert_int_equal(strlen(secret), AL_APIKEY_SECRET_LEN);
    assert_int_equal(strncmp(secret, "alk_", 4), 0);
    /* same name twice is refused */
    char s2[AL_APIKEY_SECRET_LEN + 1], id2[17];
    assert_int_equal(al_keyring_create(kr, &sp, s2, id2, &err), AL_ERR_ARG);
    /* bad scope */
    al_apikey_spec bad = {.name = "x", .scopes = "chat,root"};
    assert_int_equal(al_keyring_create(kr, &bad, s2, id2, &err), AL_ERR_ARG);

    /* the secret is not stored: only a salted hash */
    char path[128];
    snprintf(path, sizeof(path), "%s/keys.db", g_dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    assert_null(memmem(buf, n, secret + 21, 64));
    free(buf);

    al_apikey_info *list = NULL;
    size_t nk = 0;
    assert_int_equal(al_keyring_list(kr, &list, &nk, &err), AL_OK);
    assert_int_equal(nk, 1);
    assert_string_equal(list[0].name, "app1");
    assert_string_equal(list[0].id, id);
    assert_string_equal(list[0].scopes, "chat,models");
    assert_false(list[0].revoked);
    free(list);

    al_auth_result r;
    /* 401: no key, malformed, wrong secret with a real id */
    assert_int_equal(al_keyring_authorize(kr, NULL, "chat", "qwen3-0.6b", &r), 401);
    assert_false(r.open);
    assert_int_equal(al_keyring_authorize(kr, "Bearer nope", "chat", "qwen3-0.6b", &r), 401);
    char wrong[AL_APIKEY_SECRET_LEN + 1];
    memcpy(wrong, secret, sizeof(wrong));
    wrong[AL_APIKEY_SECRET_LEN - 1] = wrong[AL_APIKEY_SECRET_LEN - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(al_keyring_authorize(kr, wrong, "chat", "qwen3-0.6b", &r), 401);
    assert_null(strstr(r.reason, wrong));

    char hdr[128];
    snprintf(hdr, sizeof(hdr), "Bearer %s", secret);
    /* 403: scope, model */
    assert_int_equal(al_keyring_authorize(kr, hdr, "embeddings", "qwen3-0.6b", &r), 403);
    assert_non_null(strstr(r.reason, "scope"));
    assert_int_equal(al_keyring_authorize(kr, hdr, "admin", NULL, &r), 403);
    assert_int_equal(al_keyring_authorize(kr, hdr, "chat", "llama-3", &r), 403);
    assert_non_null(strstr(r.reason, "model"));
    /* OK x3, then 429 with Retry-After in (0, 60] */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(al_keyring_authorize(kr, hdr, "chat", "qwen3-0.6b", &r), 200);
        assert_string_equal(r.key_id, id);
        assert_string_equal(r.key_name, "app1");
    }
    assert_int_equal(al_keyring_authorize(kr, hdr, "chat", "stories260K", &r), 429);
    assert_true(r.retry_after_s >= 1 && r.retry_after_s <= 60);

    /* revoke by name: 401 */
    assert_int_equal(al_keyring_revoke(kr, "app1", &err), AL_OK);
    assert_int_equal(al_keyring_authorize(kr, hdr, "chat", "qwen3-0.6b", &r), 401);
    assert_non_null(strstr(r.reason, "revoked"));
    assert_int_equal(al_keyring_revoke(kr, "nosuch", &err), AL_ERR_NOT_FOUND);
    /* with only revoked keys the server stays closed */
    assert_int_equal(al_keyring_authorize(kr, NULL, "chat", "m", &r), 401);
    al_keyring_close(kr);
}

static void test_tpm_and_admin_and_expiry(void **state)
{
    al_keyring *kr = open_kr();
    al_error err = {0};
    char secret[AL_APIKEY_SECRET_LEN + 1], id[17];
    al_apikey_spec sp = {.name = "tok", .tpm = 100};
    assert_int_equal(al_keyring_create(kr, &sp, secret, id, &err), AL_OK);
    al_auth_result r;
    assert_int_equal(al_keyring_authorize(kr, secret, "completions", "any", &r), 200);
    al_keyring_charge(kr, r.key_id, 60);
    assert_int_equal(al_keyring_authorize(kr, secret, "completions", "any", &r), 200);
    al_keyring_charge(kr, r.key_id, 60);
    assert_int_equal(al_keyring_authorize(kr, secret, "completions", "any", &r), 429);
    assert_true(r.retry_after_s >= 1 && r.retry_after_s <= 60);
    assert_non_null(strstr(r.reason, "token"));

    al_apikey_spec ad = {.name = "boss", .scopes = "admin"};
    assert_int_equal(al_keyring_create(kr, &ad, secret, id, &err), AL_OK);
    assert_int_equal(al_keyring_authorize(kr, secret, "admin", NULL, &r), 200);
    assert_int_equal(al_keyring_authorize(kr, secret, "chat", "x", &r), 200);

    al_apikey_spec ex = {.name = "old", .expires_unix = (int64_t)time(NULL) - 5};
    assert_int_equal(al_keyring_create(kr, &ex, secret, id, &err), AL_OK);
    assert_int_equal(al_keyring_authorize(kr, secret, "chat", "x", &r), 401);
    assert_non_null(strstr(r.reason, "expired"));

    int64_t secs;
    assert_int_equal(al_apikey_parse_duration("90d", &secs, &err), AL_OK);
    assert_int_equal(secs, 90 * 86400);
    assert_int_equal(al_apikey_parse_duration("12h", &secs, &err), AL_OK);
    assert_int_equal(secs, 12 * 3600);
    assert_int_equal(al_apikey_parse_duration("never", &secs, &err), AL_OK);
    assert_int_equal(secs, 0);
    assert_int_equal(al_apikey_parse_duration("-3d", &secs, &err), AL_ERR_ARG);
    assert_int_equal(al_apikey_parse_duration("5y", &secs, &err), AL_ERR_ARG);
    assert_true(al_apikey_model_match("qwen3*", "qwen3-0.6b"));
    assert_false(al_apikey_model_match("qwen3*", "llama"));
    assert_true(al_apikey_model_match("", "llama"));
    al_keyring_close(kr);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/al_apikey_test.XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_when_no_keys),
        cmocka_unit_test(test_create_list_revoke_and_decisions),
        cmocka_unit_test(test_tpm_and_admin_and_expiry),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        return 1;
    return rc;
}
