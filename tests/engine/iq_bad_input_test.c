/* iq_bad_input_test.c - hostile i-quant data: copies of the real
 * tiny-llama-iq* files with one block's fp16 scale set to NaN or infinity
 * (for IQ1_M, spread over its scale words as the format stores it) must be
 * refused by a checking load (al_model_params.check_tensors, `airlock info
 * --check-tensors`) with the tensor's name and the reason; the untouched
 * files pass the same check, and the import scanner accepts them with their
 * i-quant types in the type mix. Skips (77) without ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock.h"
#include "gguf/gguf.h"
#include "scan/scan.h"
#include "tensor/types.h"

static const char *g_shared;
static char g_dir[256];

static bool is_iq(uint32_t t)
{
    return t == AL_TYPE_IQ2_XXS || t == AL_TYPE_IQ2_XS || t == AL_TYPE_IQ2_S || t == AL_TYPE_IQ3_XXS ||
           t == AL_TYPE_IQ3_S || t == AL_TYPE_IQ1_S || t == AL_TYPE_IQ1_M;
}

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(*n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* Loads path with the tensor check; returns the status, the message in err. */
static al_status load_checked(const char *path, al_error *err)
{
    al_model_params mp = al_model_default_params();
    mp.check_tensors = true;
    mp.pack_weights = false;
    al_model *m = NULL;
    al_status st = al_model_load(path, &mp, &m, err);
    al_model_free(m);
    return st;
}

/* For each i-quant type of the file: one copy with block 5 of the first
 * tensor of that type given the scale `bits`. */
static void poison_file(const char *base, uint16_t bits)
{
    char src[1024];
    snprintf(src, sizeof(src), "%s/models/%s.gguf", g_shared, base);
    al_gguf *g = NULL;
    al_error err = {0};
    assert_int_equal(al_gguf_open(src, NULL, &g, &err), AL_OK);
    assert_int_equal(load_checked(src, &err), AL_OK);
    size_t n;
    uint8_t *bytes = slurp(src, &n);
    bool done[AL_TYPE_COUNT] = {false};
    int n_cases = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const al_gguf_tensor *t = &g->tensors[i];
        if (!is_iq(t->type) || done[t->type])
            continue;
        done[t->type] = true;
        const size_t off = (size_t)((const uint8_t *)t->data - g->map) + 5 * al_type_get(t->type)->block_bytes;
        uint8_t *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, bytes, n);
        if (t->type == AL_TYPE_IQ1_M) { /* d's nibbles in the top of the 4 scale words (bytes 48..55) */
            for (int w = 0; w < 4; w++) {
                uint8_t *hi = copy + off + 48 + 2 * w + 1;
                *hi = (uint8_t)((*hi & 0x0f) | (((bits >> (4 * w)) & 0xf) << 4));
            }
        } else {
            copy[off] = (uint8_t)(bits & 0xff);
            copy[off + 1] = (uint8_t)(bits >> 8);
        }
        char dst[512], name[128];
        snprintf(name, sizeof(name), "%.*s", (int)t->name.len, t->name.ptr);
        snprintf(dst, sizeof(dst), "%s/%s-%s-%04x.gguf", g_dir, base, al_type_name(t->type), bits);
        FILE *f = fopen(dst, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(copy, 1, n, f), n);
        fclose(f);
        free(copy);
        memset(&err, 0, sizeof(err));
        const al_status st = load_checked(dst, &err);
        printf("  %-40s %s\n", dst + strlen(g_dir) + 1, err.msg);
        assert_int_not_equal(st, AL_OK);
        if (!strstr(err.msg, name) || !strstr(err.msg, "NaN or infinity"))
            fail_msg("%s: the message does not name tensor '%s' and the reason: %s", dst, name, err.msg);
        unlink(dst);
        n_cases++;
    }
    assert_true(n_cases > 0);
    free(bytes);
    al_gguf_close(g);
}

static void test_nan_scales(void **state)
{
    (void)state;
    static const char *files[] = {"tiny-llama-iq3_s", "tiny-llama-iq3_xxs", "tiny-llama-iq2_m", "tiny-llama-iq2_s",
                                  "tiny-llama-iq2_xxs", "tiny-llama-iq1_s", "tiny-llama-iq1_m"};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        poison_file(files[f], 0x7e00); /* NaN */
        poison_file(files[f], 0xfc00); /* -infinity */
    }
}

static void test_scanner_accepts(void **state)
{
    (void)state;
    static const struct { const char *file, *type; } cases[] = {
        {"tiny-llama-iq3_s", "IQ3_S"},   {"tiny-llama-iq3_xxs", "IQ3_XXS"}, {"tiny-llama-iq2_m", "IQ2_S"},
        {"tiny-llama-iq2_s", "IQ2_XS"},  {"tiny-llama-iq2_xxs", "IQ2_XXS"}, {"tiny-llama-iq1_s", "IQ1_S"},
        {"tiny-llama-iq1_m", "IQ1_M"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/models/%s.gguf", g_shared, cases[c].file);
        al_manifest_file mf;
        memset(&mf, 0, sizeof(mf));
        snprintf(mf.name, sizeof(mf.name), "%s.gguf", cases[c].file);
        snprintf(mf.role, sizeof(mf.role), "model");
        al_scan_report rep;
        memset(&rep, 0, sizeof(rep));
        al_scan_file(NULL, path, &mf, &rep);
        if (rep.n_fail != 0 || !rep.text || !strstr(rep.text, "runnable") || !strstr(rep.text, cases[c].type))
            fail_msg("%s: scanner: %d failures:\n%s", path, rep.n_fail, rep.text ? rep.text : "");
        al_scan_report_free(&rep);
    }
}

int main(void)
{
    g_shared = getenv("AIRLOCK_SHARED");
    char probe[1024];
    snprintf(probe, sizeof(probe), "%s/models/tiny-llama-iq3_s.gguf", g_shared ? g_shared : "../shared");
    if (!g_shared || access(probe, R_OK) != 0) {
        printf("SKIP: %s not found (set AIRLOCK_SHARED)\n", probe);
        return 77;
    }
    snprintf(g_dir, sizeof(g_dir), "/tmp/airlock-iq-bad-XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nan_scales), cmocka_unit_test(test_scanner_accepts)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(g_dir);
    return rc;
}
