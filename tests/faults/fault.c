/* fault.c - the counted allocator and I/O calls behind fault.h. */
#include "fault.h"

#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define FAULT_HAVE_LSAN 1
#else
#define FAULT_HAVE_LSAN 0
#endif

static atomic_bool g_armed[2];
static atomic_long g_count[2];
static long g_target[2];
static int g_errno[2];
static atomic_bool g_fired[2];
static void *g_fired_bt[2][24]; /* where the failure fired (AIRLOCK_FAULT_VERBOSE) */
static int g_fired_n[2];

/* Set while jansson's parser runs (see json_alloc) or the test paused. */
static _Thread_local int t_in_json_load;
static _Thread_local int t_paused;

void fault_pause(void)
{
    t_paused++;
}

void fault_resume(void)
{
    t_paused--;
}

/* True when this call is the one to fail. */
static bool fault_now(fault_kind k)
{
    if (!atomic_load_explicit(&g_armed[k], memory_order_relaxed))
        return false;
    if ((k == FAULT_ALLOC && t_in_json_load) || t_paused)
        return false;
    long c = atomic_fetch_add(&g_count[k], 1) + 1;
    if (g_target[k] && c == g_target[k]) {
        atomic_store(&g_fired[k], true);
        g_fired_n[k] = backtrace(g_fired_bt[k], 24);
        return true;
    }
    return false;
}

void fault_arm(fault_kind k, long n, int err_no)
{
    atomic_store(&g_armed[k], false);
    g_target[k] = n;
    g_errno[k] = err_no;
    atomic_store(&g_count[k], 0);
    atomic_store(&g_fired[k], false);
    atomic_store(&g_armed[k], true);
}

long fault_disarm(fault_kind k)
{
    atomic_store(&g_armed[k], false);
    return atomic_load(&g_count[k]);
}

bool fault_fired(fault_kind k)
{
    return atomic_load(&g_fired[k]);
}

/* ------------------------------------------------------ wrapped symbols */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
int __real_ftruncate(int fd, off_t len);
int __real_rename(const char *from, const char *to);
int __real_mkdir(const char *path, mode_t mode);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
int __wrap_fsync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_ftruncate(int fd, off_t len);
int __wrap_rename(const char *from, const char *to);
int __wrap_mkdir(const char *path, mode_t mode);

void *__wrap_malloc(size_t n)
{
    return fault_now(FAULT_ALLOC) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fault_now(FAULT_ALLOC) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fault_now(FAULT_ALLOC) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fault_now(FAULT_ALLOC) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return fault_now(FAULT_ALLOC) ? NULL : __real_strndup(s, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return fault_now(FAULT_ALLOC) ? ENOMEM : __real_posix_memalign(p, align, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return fault_now(FAULT_ALLOC) ? NULL : __real_aligned_alloc(align, n);
}

/* I/O: -1 with the armed errno (ENOSPC, EIO, ...). */
#define IO_FAIL(call)                                                                                                 \
    do {                                                                                                              \
        if (fault_now(FAULT_IO)) {                                                                                    \
            errno = g_errno[FAULT_IO];                                                                                \
            return -1;                                                                                                \
        }                                                                                                             \
        return call;                                                                                                  \
    } while (0)

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    IO_FAIL(__real_write(fd, buf, n));
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    IO_FAIL(__real_pwrite(fd, buf, n, off));
}

int __wrap_fsync(int fd)
{
    IO_FAIL(__real_fsync(fd));
}

int __wrap_fdatasync(int fd)
{
    IO_FAIL(__real_fdatasync(fd));
}

int __wrap_ftruncate(int fd, off_t len)
{
    IO_FAIL(__real_ftruncate(fd, len));
}

int __wrap_rename(const char *from, const char *to)
{
    IO_FAIL(__real_rename(from, to));
}

int __wrap_mkdir(const char *path, mode_t mode)
{
    IO_FAIL(__real_mkdir(path, mode));
}

static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}

/* jansson's parser asserts when one of its own allocations fails
 * (lex_scan_string, load.c: assert(0) on the half-saved token; jansson
 * 2.14), so nothing fails inside json_loads / json_loadb: an abort there is
 * the library's, not airlock's. Everything else jansson allocates for
 * airlock (objects, arrays, strings, dumps) is counted. */
json_t *__real_json_loads(const char *s, size_t flags, json_error_t *e);
json_t *__real_json_loadb(const char *b, size_t n, size_t flags, json_error_t *e);
json_t *__wrap_json_loads(const char *s, size_t flags, json_error_t *e);
json_t *__wrap_json_loadb(const char *b, size_t n, size_t flags, json_error_t *e);

json_t *__wrap_json_loads(const char *s, size_t flags, json_error_t *e)
{
    t_in_json_load++;
    json_t *j = __real_json_loads(s, flags, e);
    t_in_json_load--;
    return j;
}

json_t *__wrap_json_loadb(const char *b, size_t n, size_t flags, json_error_t *e)
{
    t_in_json_load++;
    json_t *j = __real_json_loadb(b, n, flags, e);
    t_in_json_load--;
    return j;
}

void fault_hook_jansson(void)
{
    json_set_alloc_funcs(json_alloc, free);
}

/* ------------------------------------------------------------- sweep */

long fault_stride(long def)
{
    const char *s = getenv("AIRLOCK_FAULT_STRIDE");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? v : def;
}

long fault_sweep(const char *name, fault_kind k, int err_no, long stride, fault_op op, fault_check check,
                 void *user, fault_sweep_stats *out)
{
    fault_sweep_stats st = {0};
    al_error err = {0};
    char msg[512];
    const char *what = k == FAULT_ALLOC ? "allocations" : "I/O calls";
    fault_arm(k, 0, 0);
    al_status s0 = op(user, &err);
    st.n_calls = fault_disarm(k);
    if (s0 != AL_OK) {
        printf("FAIL %s: the operation fails without a fault: %s\n", name, err.msg);
        st.n_bad = 1;
        goto done;
    }
    msg[0] = 0;
    if (check && check(user, s0, msg, sizeof(msg))) {
        printf("FAIL %s: the check fails without a fault: %s\n", name, msg);
        st.n_bad = 1;
        goto done;
    }
    if (stride < 1)
        stride = 1;
    const char *only = getenv("AIRLOCK_FAULT_ONLY"); /* one N, to debug it */
    for (long n = 1; n <= st.n_calls; n += stride) {
        if (only && n != strtol(only, NULL, 10))
            continue;
        memset(&err, 0, sizeof(err));
        fault_arm(k, n, err_no);
        al_status s = op(user, &err);
        fault_disarm(k);
        const bool fired = fault_fired(k);
        st.n_runs++;
        if (fired && s != AL_OK) {
            st.n_errors++;
            if (!err.msg[0]) {
                printf("FAIL %s: failing %s #%ld gives status %d with no message\n", name, what, n, (int)s);
                st.n_bad++;
            }
        } else if (fired) {
            st.n_absorbed++;
            if (getenv("AIRLOCK_FAULT_VERBOSE")) {
                printf("absorbed %s #%ld:\n", what, n);
                fflush(stdout);
                backtrace_symbols_fd(g_fired_bt[k], g_fired_n[k], 1);
            }
        } else if (s != AL_OK) {
            printf("FAIL %s: run %ld (no fault fired) fails: %s\n", name, n, err.msg);
            st.n_bad++;
        }
        msg[0] = 0;
        if (check && check(user, s, msg, sizeof(msg))) {
            printf("FAIL %s: after failing %s #%ld (%s): %s\n", name, what, n, s ? err.msg : "absorbed", msg);
            st.n_bad++;
            if (fired && getenv("AIRLOCK_FAULT_VERBOSE")) {
                fflush(stdout);
                backtrace_symbols_fd(g_fired_bt[k], g_fired_n[k], 1);
            }
        }
#if FAULT_HAVE_LSAN
        if (__lsan_do_recoverable_leak_check()) {
            printf("FAIL %s: leak after failing %s #%ld (%s) (LeakSanitizer's report above)\n", name, what, n,
                   s ? err.msg : "absorbed");
            st.n_bad++;
        }
#endif
        fflush(stdout);
    }
done:
    printf("%s %s: %ld %s; %ld runs with one failing (stride %ld): %ld clean errors, %ld absorbed, %ld bad\n",
           st.n_bad ? "FAIL" : "ok", name, st.n_calls, what, st.n_runs, stride, st.n_errors, st.n_absorbed,
           st.n_bad);
    fflush(stdout);
    if (out)
        *out = st;
    return st.n_bad;
}
