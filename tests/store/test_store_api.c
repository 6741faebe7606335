/* test_store_api.c - the store's library API: tar round trip and strictness,
 * manifest validation, file sniffing, and the resolve / verify_blob calls
 * the server uses, on a real model from ../shared. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scan/scan.h"
#include "store/bundle.h"
#include "store/sign.h"
#include "store/store.h"
#include "store/tar.h"
#include "util/fsutil.h"

static char g_tmp[256];
static char g_model[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/airlock-storeapi.XXXXXX");
    if (!mkdtemp(g_tmp))
        return -1;
    const char *sh = getenv("AIRLOCK_SHARED");
    snprintf(g_model, sizeof(g_model), "%s/models/stories260K.gguf", sh ? sh : "../shared");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    al_fs_rmtree(g_tmp);
    return 0;
}

static void test_tar_round_trip(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof(p), "%s/t.tar", g_tmp);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    al_error err = {0};
    assert_int_equal(al_tar_write_header(fd, "a.txt", 5, 0, &err), AL_OK);
    assert_int_equal(write(fd, "hello", 5), 5);
    assert_int_equal(al_tar_write_pad(fd, 5, &err), AL_OK);
    assert_int_equal(al_tar_write_header(fd, "empty", 0, 0, &err), AL_OK);
    /* > 8 GiB: GNU base-256 size; the data is absent, so reading it fails */
    assert_int_equal(al_tar_write_header(fd, "big", (uint64_t)1 << 34, 0, &err), AL_OK);
    close(fd);
    fd = open(p, O_RDONLY);
    al_tar_reader r;
    al_tar_reader_init(&r, fd, "t.tar");
    al_tar_entry e;
    bool end;
    char buf[16];
    size_t n;
    assert_int_equal(al_tar_next(&r, &e, &end, &err), AL_OK);
    assert_false(end);
    assert_string_equal(e.name, "a.txt");
    assert_int_equal(e.size, 5);
    assert_int_equal(al_tar_read(&r, buf, sizeof(buf), &n, &err), AL_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(al_tar_next(&r, &e, &end, &err), AL_OK);
    assert_string_equal(e.name, "empty");
    assert_int_equal(e.size, 0);
    assert_int_equal(al_tar_next(&r, &e, &end, &err), AL_OK);
    assert_string_equal(e.name, "big");
    assert_true(e.size == (uint64_t)1 << 34);
    assert_int_equal(al_tar_read(&r, buf, sizeof(buf), &n, &err), AL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    close(fd);
}

static void test_tar_refuses_bad_checksum(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof(p), "%s/c.tar", g_tmp);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    al_error err = {0};
    assert_int_equal(al_tar_write_header(fd, "x", 0, 0, &err), AL_OK);
    assert_int_equal(al_tar_write_end(fd, &err), AL_OK);
    assert_int_equal(pwrite(fd, "y", 1, 0), 1); /* rename without fixing the checksum */
    lseek(fd, 0, SEEK_SET);
    al_tar_reader r;
    al_tar_reader_init(&r, fd, "c.tar");
    al_tar_entry e;
    bool end;
    assert_int_equal(al_tar_next(&r, &e, &end, &err), AL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad checksum"));
    close(fd);
}

static al_manifest good_manifest(void)
{
    al_manifest m;
    memset(&m, 0, sizeof(m));
    m.format_version = 1;
    snprintf(m.name, sizeof(m.name), "qwen3");
    snprintf(m.tag, sizeof(m.tag), "0.6b-q4_k_m");
    snprintf(m.created, sizeof(m.created), "2025-01-01T00:00:00Z");
    snprintf(m.signer, sizeof(m.signer), "acme");
    memset(m.key_id, 'a', 64);
    m.n_files = 1;
    snprintf(m.files[0].name, sizeof(m.files[0].name), "model.gguf");
    snprintf(m.files[0].role, sizeof(m.files[0].role), "model");
    m.files[0].size = 123;
    memset(m.files[0].sha256, 'b', 64);
    return m;
}

static al_status parse_str(const char *json, al_error *err)
{
    al_manifest m;
    return al_manifest_parse(json, strlen(json), &m, err);
}

static void test_manifest(void **state)
{
    (void)state;
    al_manifest m = good_manifest(), back;
    char *json = NULL;
    size_t n = 0;
    al_error err = {0};
    assert_int_equal(al_manifest_dump(&m, &json, &n, &err), AL_OK);
    assert_int_equal(al_manifest_parse(json, n, &back, &err), AL_OK);
    assert_string_equal(back.name, "qwen3");
    assert_string_equal(back.files[0].name, "model.gguf");
    assert_int_equal(back.files[0].size, 123);
    free(json);
    /* every field is checked */
    struct {
        al_manifest m;
        const char *needle;
    } bad[6];
    for (int i = 0; i < 6; i++)
        bad[i].m = good_manifest();
    snprintf(bad[0].m.name, 65, "../x");
    bad[0].needle = "model name";
    snprintf(bad[1].m.files[0].name, 101, "../x");
    bad[1].needle = "file name";
    bad[2].m.files[0].sha256[3] = 'Z';
    bad[2].needle = "sha256";
    bad[3].m.files[0].size = ((uint64_t)1 << 40) + 1;
    bad[3].needle = "over the limit";
    snprintf(bad[4].m.files[0].role, 16, "license");
    bad[4].needle = "exactly one 'model'";
    bad[5].m.key_id[0] = 0;
    bad[5].needle = "key_id";
    for (int i = 0; i < 6; i++) {
        assert_int_equal(al_manifest_dump(&bad[i].m, &json, &n, &err), AL_OK);
        err.msg[0] = 0;
        assert_int_not_equal(al_manifest_parse(json, n, &back, &err), AL_OK);
        if (!strstr(err.msg, bad[i].needle))
            fail_msg("case %d: '%s' does not mention '%s'", i, err.msg, bad[i].needle);
        free(json);
    }
    assert_int_equal(parse_str("[]", &err), AL_ERR_FORMAT);
    assert_int_equal(parse_str("{\"format\":\"airlock-bundle\",\"format\":\"x\"}", &err), AL_ERR_FORMAT);
    assert_int_equal(parse_str("{\"evil\":1}", &err), AL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "unknown field 'evil'"));
}

static void test_sniff(void **state)
{
    (void)state;
    assert_string_equal(al_scan_sniff((const unsigned char *)"GGUF\3\0\0\0", 8, 8), "gguf");
    assert_string_equal(al_scan_sniff((const unsigned char *)"\x80\x04\x95xx", 5, 5), "pickle");
    assert_string_equal(al_scan_sniff((const unsigned char *)"PK\3\4xxxx", 8, 8), "zip");
    assert_string_equal(al_scan_sniff((const unsigned char *)"\x7f" "ELF\2\1\1", 7, 7), "ELF executable");
    assert_string_equal(al_scan_sniff((const unsigned char *)"MZ\x90\0", 4, 4), "PE executable");
    assert_string_equal(al_scan_sniff((const unsigned char *)"\xcf\xfa\xed\xfe", 4, 4), "Mach-O executable");
    assert_string_equal(al_scan_sniff((const unsigned char *)"#!/bin/sh\n", 10, 10), "script");
    unsigned char st[32] = {10, 0, 0, 0, 0, 0, 0, 0, '{'};
    assert_string_equal(al_scan_sniff(st, sizeof(st), 100), "safetensors");
    assert_string_equal(al_scan_sniff((const unsigned char *)"MIT License\n\xc3\xa9", 14, 14), "text");
    assert_string_equal(al_scan_sniff((const unsigned char *)"\x01\x02\x03\xff", 4, 4), "unknown binary");
}

static void test_resolve_and_verify_blob(void **state)
{
    (void)state;
    if (access(g_model, R_OK) != 0) {
        print_message("SKIPPED: %s not found\n", g_model);
        skip();
    }
    al_error err = {0};
    char priv[1024], pub[1024], kid[65], bundle[512], sdir[512];
    assert_int_equal(al_sign_keygen(g_tmp, "k", priv, pub, sizeof(priv), kid, &err), AL_OK);
    struct stat sb;
    assert_int_equal(stat(priv, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(bundle, sizeof(bundle), "%s/s.airlock", g_tmp);
    al_bundle_input in[] = {{g_model, "model"}};
    al_bundle_spec spec = {"stories", "260k", "test", priv, in, 1};
    assert_int_equal(al_bundle_create(&spec, bundle, NULL, &err), AL_OK);
    snprintf(sdir, sizeof(sdir), "%s/store", g_tmp);
    al_store *s = NULL;
    assert_int_equal(al_store_open(sdir, &s, &err), AL_OK);
    assert_int_equal(al_store_trust_add(s, pub, "k", "stor*", "t", &err), AL_OK);
    al_import_result res;
    if (al_store_import(s, bundle, "importer", al_scan_file, NULL, &res, &err))
        fail_msg("import: %s", err.msg);
    assert_string_equal(res.state, "quarantined");
    char path[1024], dg[65];
    assert_int_equal(al_store_resolve(s, "stories:260k", path, sizeof(path), dg, &err), AL_ERR_STATE);
    bool pub_now = false;
    int n = 0;
    assert_int_equal(al_store_approve(s, "stories:260k", "alice", &pub_now, &n, &err), AL_OK);
    assert_true(pub_now);
    assert_int_equal(al_store_resolve(s, "stories:260k", path, sizeof(path), dg, &err), AL_OK);
    char want[65];
    assert_int_equal(al_sha256_file(g_model, want, &err), AL_OK);
    assert_string_equal(dg, want);
    assert_int_equal(al_store_verify_blob(path, dg, &err), AL_OK);
    /* pinned by the GGUF digest and by the OCI manifest digest */
    char ref[160], path2[1024], dg2[65];
    snprintf(ref, sizeof(ref), "stories@sha256:%s", want);
    assert_int_equal(al_store_resolve(s, ref, path2, sizeof(path2), dg2, &err), AL_OK);
    assert_string_equal(path, path2);
    snprintf(ref, sizeof(ref), "stories@sha256:%s", res.digest);
    assert_int_equal(al_store_resolve(s, ref, path2, sizeof(path2), dg2, &err), AL_OK);
    assert_string_equal(path, path2);
    assert_int_equal(al_store_resolve(s, "stories:nope", path2, sizeof(path2), dg2, &err), AL_ERR_NOT_FOUND);
    assert_int_equal(al_store_resolve(s, "../x", path2, sizeof(path2), dg2, &err), AL_ERR_ARG);
    al_model_row *rows = NULL;
    size_t nr = 0;
    assert_int_equal(al_store_list_published(s, &rows, &nr, &err), AL_OK);
    assert_int_equal(nr, 1);
    assert_string_equal(rows[0].name, "stories");
    free(rows);
    /* a flipped byte at rest is caught at load */
    int fd = open(path, O_RDWR);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, 4096), 1);
    c ^= 1;
    assert_int_equal(pwrite(fd, &c, 1, 4096), 1);
    assert_int_equal(al_store_verify_blob(path, dg, &err), AL_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "tampered"));
    c ^= 1;
    assert_int_equal(pwrite(fd, &c, 1, 4096), 1);
    close(fd);
    al_verify_counts vc;
    assert_int_equal(al_store_verify(s, NULL, &vc, "t", &err), AL_OK);
    assert_int_equal(vc.tampered + vc.missing + vc.stray, 0);
    al_store_close(s);
    al_store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tar_round_trip),
        cmocka_unit_test(test_tar_refuses_bad_checksum),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_resolve_and_verify_blob),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
