/* memlimit.c - physical RAM and control-group memory limits (memlimit.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "util/memlimit.h"

/* The number in file (v1 limit_in_bytes, v2 memory.max; "max": none). */
static uint64_t read_limit(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return UINT64_MAX;
    char buf[64] = {0};
    const bool got = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!got || buf[0] < '0' || buf[0] > '9')
        return UINT64_MAX;
    char *end;
    const unsigned long long v = strtoull(buf, &end, 10);
    /* v1 writes "no limit" as a page-rounded 2^63 - 1 */
    return v == 0 || v >= (1ull << 62) ? UINT64_MAX : (uint64_t)v;
}

/* The smallest limit in name along root/path, root/parent, ..., root. */
static uint64_t min_along(const char *root, const char *path, size_t path_len, const char *name)
{
    uint64_t lim = UINT64_MAX;
    char file[4096];
    if (path_len + strlen(root) + strlen(name) + 2 > sizeof(file))
        return lim;
    for (;;) {
        snprintf(file, sizeof(file), "%s%.*s/%s", root, (int)path_len, path, name);
        const uint64_t v = read_limit(file);
        lim = v < lim ? v : lim;
        if (path_len == 0)
            break;
        while (path_len > 0 && path[path_len - 1] != '/') /* up one level */
            path_len--;
        if (path_len > 0)
            path_len--; /* the '/' itself */
    }
    return lim;
}

uint64_t al_mem_cgroup_limit(const char *proc_cgroup, const char *v1_root, const char *v2_root)
{
    uint64_t lim = UINT64_MAX;
    const char *line = proc_cgroup;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        const size_t n = eol ? (size_t)(eol - line) : strlen(line);
        /* "id:controllers:path" */
        const char *c1 = memchr(line, ':', n);
        const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            const char *ctl = c1 + 1, *path = c2 + 1;
            const size_t ctl_len = (size_t)(c2 - ctl), path_len = n - (size_t)(path - line);
            bool memory = false;
            for (const char *p = ctl; p < ctl + ctl_len;) { /* a comma-separated list */
                const char *q = memchr(p, ',', (size_t)(ctl + ctl_len - p));
                const size_t len = q ? (size_t)(q - p) : (size_t)(ctl + ctl_len - p);
                memory = memory || (len == 6 && memcmp(p, "memory", 6) == 0);
                p += len + 1;
            }
            uint64_t v = UINT64_MAX;
            if (memory && v1_root)
                v = min_along(v1_root, path, path_len, "memory.limit_in_bytes");
            else if (ctl_len == 0 && line[0] == '0' && c1 == line + 1 && v2_root)
                v = min_along(v2_root, path, path_len, "memory.max");
            lim = v < lim ? v : lim;
        }
        line = eol ? eol + 1 : NULL;
    }
    return lim;
}

uint64_t al_mem_limit_bytes(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
    const uint64_t phys = pages > 0 && pg > 0 ? (uint64_t)pages * (uint64_t)pg : UINT64_MAX;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return phys;
    /* the whole file (no NUL in it): a line cut at a buffer's end would
     * name a parent group, whose limit may be missing */
    char *buf = NULL;
    size_t cap = 0;
    const ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    const uint64_t cg = n > 0 ? al_mem_cgroup_limit(buf, "/sys/fs/cgroup/memory", "/sys/fs/cgroup") : UINT64_MAX;
    free(buf);
    return cg < phys ? cg : phys;
}
