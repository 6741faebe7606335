/* sandbox.h - the process confines itself: zero egress, no privileges.
 *
 * al_sandbox_enter is called by `airlock serve` after its listeners are
 * bound (and by `airlock sandbox-selftest`, which enters it exactly the same
 * way). What it does, in order:
 *   1. PR_SET_NO_NEW_PRIVS.
 *   2. RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 (no core dumps of prompts/weights).
 *   3. Landlock, where the kernel offers it: the filesystem is confined to
 *      the read-write and read-only paths given; on Landlock ABI >= 4, TCP
 *      connect and bind are refused too.
 *   4. All capabilities dropped (bounding, ambient, effective, permitted,
 *      inheritable).
 *   5. A seccomp filter (libseccomp, SCMP_FLTATR_CTL_TSYNC: every thread of
 *      the process gets it) under which these fail with EPERM:
 *        socket() of any family but AF_UNIX; connect; sendto with a
 *        destination address; sendmmsg; io_uring_setup/enter/register;
 *        unshare; setns; clone with CLONE_NEWNET or CLONE_NEWUSER.
 *      clone3 fails with ENOSYS (its flags can't be inspected), so libc
 *      falls back to clone. accept/accept4/send/recv/sendmsg keep working on
 *      the bound listeners and accepted connections. Other architectures'
 *      system calls (e.g. 32-bit int 0x80) kill the process.
 *
 * Steps 1-4 apply to the calling thread (and threads it creates later):
 * call this before starting worker threads. Step 5 covers all threads.
 */
#ifndef AL_SANDBOX_SANDBOX_H
#define AL_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "airlock.h"

typedef struct al_sandbox_params {
    const char *const *rw_paths; /* e.g. store dir, log dir; may be NULL */
    size_t n_rw;
    const char *const *ro_paths; /* e.g. config file's dir; may be NULL */
    size_t n_ro;
    bool no_landlock;            /* skip Landlock (debugging) */
    bool allow_missing;          /* parts the kernel lacks are reported, not fatal */
} al_sandbox_params;

typedef struct al_sandbox_report {
    bool no_new_privs;
    bool core_disabled;
    bool caps_dropped;
    bool seccomp;          /* the egress filter is installed on all threads */
    bool landlock;         /* filesystem confined */
    bool landlock_net;     /* TCP connect/bind refused by Landlock too */
    int landlock_abi;      /* 0 when the kernel has no Landlock */
    int threads_at_entry;  /* threads that existed when the sandbox was entered */
    char summary[512];     /* one line for logs and `airlock doctor` */
} al_sandbox_report;

/* Enters the sandbox. Irreversible. Returns AL_OK with *out filled when the
 * egress filter is installed (parts the kernel lacks are listed in the
 * report); AL_ERR_PERMISSION / AL_ERR_UNSUPPORTED when it could not be. */
al_status al_sandbox_enter(const al_sandbox_params *p, al_sandbox_report *out, al_error *err);

/* The Landlock ABI version this kernel offers (0 if none). */
int al_sandbox_landlock_abi(void);

/* Writes the report as a JSON object (no trailing newline) into buf.
 * Returns the length it needs (like snprintf). */
int al_sandbox_report_json(const al_sandbox_report *r, char *buf, size_t cap);

/* The loud line printed when --unsafe-no-sandbox is used. */
#define AL_SANDBOX_UNSAFE_WARNING \
    "WARNING: --unsafe-no-sandbox: the egress filter, Landlock and privilege drop are OFF; " \
    "this process CAN open outbound connections. Use for debugging only."

#endif
