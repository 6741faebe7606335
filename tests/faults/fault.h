/*
 * fault.h - in-process fault injection for tests (SQLite-style).
 *
 * A test program linked with AL_FAULT_WRAP_FLAGS (tests/faults/CMakeLists.txt:
 * -Wl,--wrap=malloc,...) routes every allocation and every file write, fsync
 * and rename made by airlock's own code (the static library) through
 * fault.c, which counts them and can make the Nth one fail: an allocation
 * returns NULL, an I/O call returns -1 with the armed errno. Calls made
 * inside shared libraries (libc, SQLite, OpenSSL) are not counted, except
 * jansson's allocations, which fault_hook_jansson() routes here.
 *
 * fault_sweep runs an operation once to count its calls, then once for
 * every N (or every stride-th N) with the Nth call failing, and checks each
 * run: a failure that fired must come back as an error with a message (or
 * be absorbed: the operation succeeded anyway), one that did not fire must
 * leave the operation succeeding, a check function (may be NULL) must hold
 * afterwards, and under AddressSanitizer nothing may have leaked (LSan is
 * asked after every run, so the report names the N).
 */
#ifndef AL_TESTS_FAULT_H
#define AL_TESTS_FAULT_H

#include <stdbool.h>

#include "airlock.h"

typedef enum fault_kind {
    FAULT_ALLOC = 0, /* malloc calloc realloc strdup strndup posix_memalign aligned_alloc */
    FAULT_IO = 1,    /* write pwrite fsync fdatasync ftruncate rename mkdir */
} fault_kind;

/* Counts calls of kind k from now on; the nth (1-based) fails with errno
 * err_no (ignored for allocations). n = 0: only count. */
void fault_arm(fault_kind k, long n, int err_no);
/* Stops counting and failing; returns the calls counted since fault_arm. */
long fault_disarm(fault_kind k);
/* True when the armed failure happened since fault_arm. */
bool fault_fired(fault_kind k);

/* Between fault_pause() and fault_resume() this thread's calls are neither
 * counted nor failed (the test's own bookkeeping inside an operation). */
void fault_pause(void);
void fault_resume(void);

/* Makes jansson allocate through the counted allocator. */
void fault_hook_jansson(void);

/* One run of the operation under test: AL_OK or an error with err->msg.
 * It must undo everything it made (free, close) before returning. */
typedef al_status (*fault_op)(void *user, al_error *err);
/* After a run: 0 when the state is consistent, else non-zero with msg set. */
typedef int (*fault_check)(void *user, al_status op_status, char *msg, size_t cap);

typedef struct fault_sweep_stats {
    long n_calls;     /* calls of the operation without a failure */
    long n_runs;      /* runs with a failure armed */
    long n_errors;    /* runs that returned a clean error */
    long n_absorbed;  /* runs whose failure did not stop the operation */
    long n_bad;       /* runs that broke a rule (each printed) */
} fault_sweep_stats;

/* Runs op with the Nth call of kind k failing (errno err_no for I/O) for
 * N = 1, 1 + stride, ... up to the count of a clean run; prints a summary
 * line and each broken rule. Returns the number of broken rules. */
long fault_sweep(const char *name, fault_kind k, int err_no, long stride, fault_op op, fault_check check,
                 void *user, fault_sweep_stats *out);

/* The stride to use: $AIRLOCK_FAULT_STRIDE when set, else def. */
long fault_stride(long def);

#endif
