/*
 * memlimit_test.c - util/memlimit.c: the memory a process may use (which
 * decides whether a model's experts are streamed from the disk), read from
 * fake cgroup trees built here:
 *   - v1: the smallest memory.limit_in_bytes along the group's path, the
 *     controller found in a comma list, "unlimited" (a huge number) ignored;
 *   - v2: memory.max along the path, "max" meaning none;
 *   - both hierarchies: the smaller; no group, missing files, malformed
 *     lines: no limit (UINT64_MAX);
 *   - al_mem_limit_bytes: positive and at most physical RAM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/memlimit.h"

#define GIB (1024ull * 1024 * 1024)

static char g_root[256];

/* Writes text to g_root/rel, making its folders. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    al_error err;
    assert_int_equal(al_fs_mkdirs(path, 0755, &err), AL_OK);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static uint64_t limit(const char *proc_cgroup)
{
    char v1[300], v2[300];
    snprintf(v1, sizeof(v1), "%s/v1", g_root);
    snprintf(v2, sizeof(v2), "%s/v2", g_root);
    return al_mem_cgroup_limit(proc_cgroup, v1, v2);
}

static void test_v1(void **state)
{
    (void)state;
    put("v1/memory.limit_in_bytes", "9223372036854771712\n"); /* the root: unlimited */
    put("v1/a/memory.limit_in_bytes", "3221225472\n");
    put("v1/a/b/memory.limit_in_bytes", "9223372036854771712\n");
    put("v1/a/b/c/memory.limit_in_bytes", "1073741824\n");
    assert_int_equal(limit("4:memory:/a/b\n"), 3 * GIB);
    assert_int_equal(limit("4:memory:/a/b/c\n"), 1 * GIB);
    assert_int_equal(limit("9:name=systemd:/\n4:cpu,memory,pids:/a/b\n0::/\n"), 3 * GIB);
    assert_int_equal(limit("4:memory:/a/b/"), 3 * GIB); /* no newline, trailing slash */
    assert_int_equal(limit("4:memory:/\n"), UINT64_MAX);
    assert_int_equal(limit("4:memoryx:/a\n5:xmemory:/a\n"), UINT64_MAX); /* not the memory controller */
    assert_int_equal(limit("4:memory:/gone/away\n"), UINT64_MAX);       /* folders missing */
    put("v1/bad/memory.limit_in_bytes", "lots\n");
    assert_int_equal(limit("4:memory:/bad\n"), UINT64_MAX);
}

static void test_v2(void **state)
{
    (void)state;
    put("v2/x/memory.max", "2147483648\n");
    put("v2/x/y/memory.max", "max\n");
    put("v2/x/y/z/memory.max", "5368709120\n");
    assert_int_equal(limit("0::/x/y\n"), 2 * GIB);
    assert_int_equal(limit("0::/x/y/z\n"), 2 * GIB);
    assert_int_equal(limit("0::/\n"), UINT64_MAX);
    assert_int_equal(limit("1::/x\n"), UINT64_MAX); /* not the unified hierarchy's line */
    /* both: the smaller */
    put("v1/p/memory.limit_in_bytes", "1073741824\n");
    assert_int_equal(limit("4:memory:/p\n0::/x/y\n"), 1 * GIB);
    assert_int_equal(limit(""), UINT64_MAX);
    assert_int_equal(limit("garbage\n::\n:\n"), UINT64_MAX);
}

static void test_this_process(void **state)
{
    (void)state;
    const uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t mem = al_mem_limit_bytes();
    printf("  this process may use %.2f GiB (physical RAM %.2f GiB)\n", (double)mem / GIB, (double)phys / GIB);
    assert_true(mem > 0);
    assert_true(mem <= phys);
}

int main(void)
{
    snprintf(g_root, sizeof(g_root), "/tmp/airlock-memlimit-XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_this_process),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    al_fs_rmtree(g_root);
    return rc;
}
