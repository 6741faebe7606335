/*
 * ref_common.h - what the engine's reference tests share: a CHECK that
 * counts failures and carries on (main returns g_failures != 0), and the
 * reader of ../shared/ref's raw float32 files. Header-only: each test is
 * one program.
 */
#ifndef AL_TESTS_ENGINE_REF_COMMON_H
#define AL_TESTS_ENGINE_REF_COMMON_H

#include <stdio.h>
#include <stdlib.h>

static int g_failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            g_failures++;                                                  \
        }                                                                  \
    } while (0)

/* n float32 values from path (malloc'd, caller frees); NULL when the file
 * cannot be opened or holds fewer than n. */
static inline float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = malloc(n * sizeof(float));
    if (v && fread(v, sizeof(float), n, f) != n) {
        free(v);
        v = NULL;
    }
    fclose(f);
    return v;
}

#endif
