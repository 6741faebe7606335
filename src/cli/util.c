#include "cli/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"

char *cli_read_file(const char *path, size_t *n)
{
    FILE *f = (path[0] == '-' && path[1] == 0) ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
                errno = EIO;
            }
            break;
        }
        if (cap > ((size_t)1 << 32)) {
            free(buf);
            buf = NULL;
            errno = EFBIG;
            break;
        }
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    if (!buf)
        return NULL;
    buf[len] = 0;
    *n = len;
    return buf;
}

bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool cli_parse_f32(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

const char *cli_store_dir(const char *opt)
{
    return opt && *opt ? opt : al_store_default_dir();
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool cli_write_f32(const char *cmd, const char *path, const float *v, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        cli_errorf(cmd, "%s: cannot create: %s", path, strerror(errno));
        return false;
    }
    size_t wrote = fwrite(v, sizeof(float), n, f);
    if (fclose(f) != 0 || wrote != n) {
        cli_errorf(cmd, "%s: write failed", path);
        return false;
    }
    return true;
}

void cli_print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}
