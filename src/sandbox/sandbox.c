/* sandbox.c - no_new_privs, no core dumps, Landlock, no capabilities, and a
 * seccomp egress filter on every thread (see sandbox.h). */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>
#include <seccomp.h>

#include "util/error.h"

/* libseccomp's SCMP_A0..SCMP_A5 macros leave fields of struct
 * scmp_arg_cmp to zero-initialisation, which clang flags. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wmissing-field-initializers"
#endif

/* ---------------------------------------------------------------- Landlock
 * Declared here rather than taken from <linux/landlock.h>, whose installed
 * copy may predate the ABI the running kernel offers. Values are the
 * kernel's UAPI. */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REFER (1ULL << 13)     /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define LL_FS_ABI1 ((1ULL << 13) - 1)
#define LL_NET_BIND_TCP (1ULL << 0)    /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1) /* ABI 4 */

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int al_sandbox_landlock_abi(void)
{
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return v > 0 ? (int)v : 0;
}

static uint64_t ll_fs_mask(int abi)
{
    uint64_t m = LL_FS_ABI1;
    if (abi >= 2)
        m |= LL_FS_REFER;
    if (abi >= 3)
        m |= LL_FS_TRUNCATE;
    if (abi >= 5)
        m |= LL_FS_IOCTL_DEV;
    return m;
}

static al_status ll_allow(int ruleset, const char *path, uint64_t access, uint64_t handled,
                          al_error *err)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return AL_OK; /* nothing there to allow */
        return al_err(err, AL_ERR_IO, "landlock: %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        access &= LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE |
                  LL_FS_IOCTL_DEV;
    struct ll_path_beneath_attr pb = {.allowed_access = access & handled, .parent_fd = fd};
    long r = syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0);
    int e = errno;
    close(fd);
    if (r != 0)
        return al_err(err, AL_ERR_PERMISSION, "landlock: cannot allow %s: %s", path, strerror(e));
    return AL_OK;
}

static al_status enter_landlock(const al_sandbox_params *p, al_sandbox_report *rep, al_error *err)
{
    int abi = al_sandbox_landlock_abi();
    rep->landlock_abi = abi;
    if (abi <= 0)
        return AL_OK;
    uint64_t fs = ll_fs_mask(abi);
    struct ll_ruleset_attr attr = {.handled_access_fs = fs};
    size_t attr_size = sizeof(uint64_t);
    if (abi >= 4) {
        /* no rule for either: every TCP connect and bind is refused */
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        attr_size = sizeof(attr);
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (rs < 0)
        return al_err(err, AL_ERR_PERMISSION, "landlock: cannot create a ruleset: %s",
                      strerror(errno));
    const uint64_t ro = LL_FS_READ_FILE | LL_FS_READ_DIR;
    const uint64_t rw = fs & ~(LL_FS_EXECUTE);
    al_status st = AL_OK;
    for (size_t i = 0; !st && i < p->n_rw; i++)
        if (p->rw_paths[i] && p->rw_paths[i][0])
            st = ll_allow(rs, p->rw_paths[i], rw, fs, err);
    for (size_t i = 0; !st && i < p->n_ro; i++)
        if (p->ro_paths[i] && p->ro_paths[i][0])
            st = ll_allow(rs, p->ro_paths[i], ro, fs, err);
    /* what libc and OpenSSL may still open after start-up */
    static const char *const k_dev_rw[] = {"/dev/null"};
    static const char *const k_sys_ro[] = {"/dev/urandom", "/dev/random", "/etc/localtime",
                                           "/usr/share/zoneinfo", "/proc/self",
                                           "/sys/devices/system/cpu"};
    for (size_t i = 0; !st && i < sizeof(k_dev_rw) / sizeof(k_dev_rw[0]); i++)
        st = ll_allow(rs, k_dev_rw[i], LL_FS_READ_FILE | LL_FS_WRITE_FILE, fs, err);
    for (size_t i = 0; !st && i < sizeof(k_sys_ro) / sizeof(k_sys_ro[0]); i++)
        st = ll_allow(rs, k_sys_ro[i], ro, fs, err);
    if (!st && syscall(SYS_landlock_restrict_self, rs, 0) != 0)
        st = al_err(err, AL_ERR_PERMISSION, "landlock: cannot restrict: %s", strerror(errno));
    close(rs);
    if (!st) {
        rep->landlock = true;
        rep->landlock_net = abi >= 4;
    }
    return st;
}

/* ------------------------------------------------------------ capabilities */

static int last_cap(void)
{
    int last = CAP_LAST_CAP;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f) {
        if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
            last = CAP_LAST_CAP;
        fclose(f);
    }
    return last;
}

static bool drop_caps(void)
{
    int last = last_cap();
    for (int c = 0; c <= last; c++)
        prctl(PR_CAPBSET_DROP, c, 0, 0, 0); /* EPERM without CAP_SETPCAP: fine */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0)
        return false;
    /* read back: nothing effective or permitted may remain */
    memset(data, 0xff, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) != 0)
        return false;
    return !data[0].effective && !data[1].effective && !data[0].permitted && !data[1].permitted;
}

/* ---------------------------------------------------------------- seccomp */

static al_status install_filter(al_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return al_err(err, AL_ERR_PERMISSION, "seccomp: cannot create a filter");
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
#define RULE(action, name, ...)                                                         \
    do {                                                                                \
        if (!rc)                                                                        \
            rc = seccomp_rule_add(ctx, action, SCMP_SYS(name), __VA_ARGS__);            \
    } while (0)
    RULE(eperm, socket, 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
    RULE(eperm, connect, 0);
    RULE(eperm, sendto, 1, SCMP_A4(SCMP_CMP_NE, 0));
    RULE(eperm, sendmmsg, 0);
    RULE(eperm, io_uring_setup, 0);
    RULE(eperm, io_uring_enter, 0);
    RULE(eperm, io_uring_register, 0);
    RULE(eperm, unshare, 0);
    RULE(eperm, setns, 0);
    RULE(eperm, clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWNET, CLONE_NEWNET));
    RULE(eperm, clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    RULE(SCMP_ACT_ERRNO(ENOSYS), clone3, 0);
#undef RULE
    if (rc) {
        seccomp_release(ctx);
        return al_err(err, AL_ERR_PERMISSION, "seccomp: cannot add a rule: %s", strerror(-rc));
    }
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc)
        return al_err(err, AL_ERR_PERMISSION, "seccomp: cannot load the filter: %s",
                      strerror(-rc));
    return AL_OK;
}

static int count_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

int al_sandbox_report_json(const al_sandbox_report *r, char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "{\"egress\":\"%s\",\"seccomp\":%s,\"no_new_privs\":%s,\"caps_dropped\":%s,"
                    "\"core_dumps\":\"%s\",\"landlock\":%s,\"landlock_abi\":%d,"
                    "\"landlock_net\":%s}",
                    r->seccomp ? "blocked" : "open", r->seccomp ? "true" : "false",
                    r->no_new_privs ? "true" : "false", r->caps_dropped ? "true" : "false",
                    r->core_disabled ? "off" : "on", r->landlock ? "true" : "false",
                    r->landlock_abi, r->landlock_net ? "true" : "false");
}

al_status al_sandbox_enter(const al_sandbox_params *p, al_sandbox_report *out, al_error *err)
{
    al_sandbox_params none = {0};
    if (!p)
        p = &none;
    al_sandbox_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.threads_at_entry = count_threads();

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return al_err(err, AL_ERR_PERMISSION, "sandbox: no_new_privs: %s", strerror(errno));
    rep.no_new_privs = true;

    struct rlimit rl = {0, 0};
    rep.core_disabled = setrlimit(RLIMIT_CORE, &rl) == 0 &&
                        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;

    al_status st = AL_OK;
    if (!p->no_landlock) {
        st = enter_landlock(p, &rep, err);
        if (st && !p->allow_missing)
            return st;
        st = AL_OK;
    }
    rep.caps_dropped = drop_caps();

    st = install_filter(err);
    if (st)
        return st;
    rep.seccomp = true;

    snprintf(rep.summary, sizeof(rep.summary),
             "egress %s (seccomp on all threads); no_new_privs %s; capabilities %s; core dumps "
             "%s; landlock %s (ABI %d%s)",
             rep.seccomp ? "blocked" : "OPEN", rep.no_new_privs ? "on" : "off",
             rep.caps_dropped ? "dropped" : "KEPT", rep.core_disabled ? "off" : "ON",
             rep.landlock ? "on" : "off", rep.landlock_abi,
             rep.landlock_net ? ", TCP connect/bind refused" : "");
    if (out)
        *out = rep;
    return AL_OK;
}
