/* cmd_doctor.c - `airlock doctor` (the security posture of this host and of
 * running servers, read from /proc: no connection is made) and
 * `airlock sandbox-selftest` (enters the sandbox exactly as serve does, then
 * tries to reach ADDR:PORT by TCP and UDP and reports the errors). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/util.h"
#include "policy/apikey.h"
#include "sandbox/sandbox.h"

/* ---------------------------------------------------------- /proc reading */

static bool status_value(const char *path, const char *field, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char line[512];
    size_t n = strlen(field);
    bool found = false;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, field, n) && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, cap, "%s", v);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Prints the listening TCP sockets whose inode is in inodes[]. */
static int print_listeners(const unsigned long *inodes, size_t n_inodes)
{
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    int shown = 0;
    for (int fi = 0; fi < 2; fi++) {
        FILE *f = fopen(files[fi], "re");
        if (!f)
            continue;
        char line[512];
        if (!fgets(line, sizeof(line), f)) {
            fclose(f);
            continue;
        }
        while (fgets(line, sizeof(line), f)) {
            char local[80], remote[80];
            unsigned st;
            unsigned long inode;
            if (sscanf(line, " %*d: %79s %79s %x %*s %*s %*s %*s %*s %lu", local, remote, &st,
                       &inode) != 4 || st != 0x0A)
                continue;
            bool mine = false;
            for (size_t i = 0; i < n_inodes; i++)
                mine |= inodes[i] == inode;
            if (!mine)
                continue;
            char *colon = strrchr(local, ':');
            if (!colon)
                continue;
            *colon = 0;
            unsigned port = (unsigned)strtoul(colon + 1, NULL, 16);
            char addr[INET6_ADDRSTRLEN] = "?";
            if (fi == 0) {
                struct in_addr a;
                a.s_addr = (uint32_t)strtoul(local, NULL, 16);
                inet_ntop(AF_INET, &a, addr, sizeof(addr));
                printf("      listening on %s:%u%s\n", addr, port,
                       (ntohl(a.s_addr) >> 24) == 127 ? " (loopback)" : " (reachable from the network)");
            } else {
                struct in6_addr a6;
                for (int w = 0; w < 4; w++) {
                    char word[9];
                    memcpy(word, local + 8 * w, 8);
                    word[8] = 0;
                    uint32_t v = (uint32_t)strtoul(word, NULL, 16);
                    memcpy(&a6.s6_addr[4 * w], &v, 4);
                }
                inet_ntop(AF_INET6, &a6, addr, sizeof(addr));
                printf("      listening on [%s]:%u\n", addr, port);
            }
            shown++;
        }
        fclose(f);
    }
    return shown;
}

/* Finds running `airlock serve` processes and prints their posture.
 * Returns the number found; *bad counts those without the filter. */
static int report_servers(int *bad)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid())
            continue;
        char path[64], cmd[512];
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        cmd[n] = 0;
        const char *argv0 = cmd, *argv1 = cmd + strlen(cmd) + 1;
        const char *base = strrchr(argv0, '/');
        base = base ? base + 1 : argv0;
        if (strcmp(base, "airlock") != 0 || (size_t)(argv1 - cmd) >= n || strcmp(argv1, "serve"))
            continue;
        found++;
        char sc[32] = "?", nnp[32] = "?", cap[64] = "?", thr[32] = "?";
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        status_value(path, "Seccomp", sc, sizeof(sc));
        status_value(path, "NoNewPrivs", nnp, sizeof(nnp));
        status_value(path, "CapEff", cap, sizeof(cap));
        status_value(path, "Threads", thr, sizeof(thr));
        /* every thread must carry the filter */
        int threads = 0, filtered = 0;
        char tdir[64];
        snprintf(tdir, sizeof(tdir), "/proc/%ld/task", pid);
        DIR *td = opendir(tdir);
        struct dirent *te;
        while (td && (te = readdir(td))) {
            if (te->d_name[0] == '.')
                continue;
            char tp[400], v[32] = "";
            snprintf(tp, sizeof(tp), "%s/%s/status", tdir, te->d_name);
            threads++;
            if (status_value(tp, "Seccomp", v, sizeof(v)) && atoi(v) == 2)
                filtered++;
        }
        if (td)
            closedir(td);
        bool ok = atoi(sc) == 2 && filtered == threads;
        if (!ok)
            (*bad)++;
        printf("  airlock serve, pid %ld:\n", pid);
        printf("      egress filter: %s (seccomp mode %s, %d/%d threads filtered)\n",
               ok ? "ACTIVE, egress blocked" : "OFF", sc, filtered, threads);
        printf("      no_new_privs: %s   capabilities (effective): %s%s\n", nnp, cap,
               strtoull(cap, NULL, 16) == 0 ? " (none)" : " (SOME KEPT)");
        /* listening sockets: inodes of socket fds */
        unsigned long inodes[256];
        size_t ni = 0;
        char fdd[64];
        snprintf(fdd, sizeof(fdd), "/proc/%ld/fd", pid);
        DIR *fd = opendir(fdd);
        struct dirent *fe;
        while (fd && (fe = readdir(fd)) && ni < 256) {
            char lp[400], tgt[128];
            snprintf(lp, sizeof(lp), "%s/%s", fdd, fe->d_name);
            ssize_t l = readlink(lp, tgt, sizeof(tgt) - 1);
            if (l <= 0)
                continue;
            tgt[l] = 0;
            unsigned long ino;
            if (sscanf(tgt, "socket:[%lu]", &ino) == 1)
                inodes[ni++] = ino;
        }
        if (fd)
            closedir(fd);
        if (!print_listeners(inodes, ni))
            printf("      no listening TCP sockets visible in this network namespace\n");
    }
    closedir(d);
    return found;
}

/* Warnings about the host: a default route, a DNS resolver. */
static int host_warnings(void)
{
    int w = 0;
    FILE *f = fopen("/proc/net/route", "re");
    if (f) {
        char line[512], ifc[64];
        unsigned long dst, gw, flags;
        if (fgets(line, sizeof(line), f))
            while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%63s %lx %lx %lx", ifc, &dst, &gw, &flags) == 4 && dst == 0 &&
                    (flags & 1)) {
                    printf("  WARNING: an IPv4 default route exists (via %s): this host can reach "
                           "other networks\n", ifc);
                    w++;
                }
        fclose(f);
    }
    f = fopen("/proc/net/ipv6_route", "re");
    if (f) {
        char dst[40], plen[8], ifc[64], line[512];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "%39s %7s %*s %*s %*s %*s %*s %*s %*s %63s", dst, plen, ifc) == 3 &&
                !strcmp(dst, "00000000000000000000000000000000") && !strcmp(plen, "00") &&
                strcmp(ifc, "lo") != 0) {
                printf("  WARNING: an IPv6 default route exists (via %s)\n", ifc);
                w++;
            }
        fclose(f);
    }
    f = fopen("/etc/resolv.conf", "re");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            char ns[128];
            if (sscanf(line, " nameserver %127s", ns) == 1) {
                printf("  WARNING: a DNS resolver is configured (/etc/resolv.conf: nameserver %s); "
                       "airlock never uses it\n", ns);
                w++;
            }
        }
        fclose(f);
    }
    if (!w)
        printf("  no default route, no DNS resolver configured\n");
    return w;
}

/* Enters the sandbox in a child, as serve does, and reports what it got. */
static bool probe_sandbox(const char *store, al_sandbox_report *rep, char *msg, size_t cap)
{
    int p[2];
    if (pipe(p) != 0)
        return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        const char *rw[] = {store};
        al_sandbox_params sp = {.rw_paths = rw, .n_rw = 1, .allow_missing = true};
        al_sandbox_report r;
        memset(&r, 0, sizeof(r));
        al_error err = {0};
        if (al_sandbox_enter(&sp, &r, &err) != AL_OK) {
            snprintf(r.summary, sizeof(r.summary), "FAILED: %.400s", err.msg);
            r.seccomp = false;
        } else {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            if (s >= 0 || errno != EPERM) {
                r.seccomp = false;
                snprintf(r.summary, sizeof(r.summary), "filter installed but socket(AF_INET) "
                         "was not refused");
            }
        }
        ssize_t w = write(p[1], &r, sizeof(r));
        _exit(w == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    ssize_t got = pid > 0 ? read(p[0], rep, sizeof(*rep)) : -1;
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    if (got != (ssize_t)sizeof(*rep)) {
        snprintf(msg, cap, "the probe process died");
        return false;
    }
    return true;
}

static void usage_doctor(FILE *f)
{
    fprintf(f, "usage: airlock doctor [--store DIR]\n\n"
               "Reports the security posture: what the sandbox gives on this kernel (probed in a\n"
               "child process exactly as serve enters it), running `airlock serve` processes\n"
               "(egress filter on every thread, capabilities, listening addresses, read from\n"
               "/proc), the store's integrity (catalogue, keys, audit chain) and host warnings\n"
               "(default route, DNS resolver). Makes no network connection.\n"
               "Exit status: 0 all good (warnings allowed), 1 a check failed.\n");
}

int cmd_doctor(int argc, char **argv)
{
    const char *store = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_doctor(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            store = argv[++i];
            continue;
        }
        usage_doctor(stderr);
        return 2;
    }
    store = cli_store_dir(store);
    int failed = 0;

    printf("sandbox (as `airlock serve` enters it on this kernel):\n");
    al_sandbox_report rep;
    char msg[256] = "";
    memset(&rep, 0, sizeof(rep));
    if (!probe_sandbox(store, &rep, msg, sizeof(msg))) {
        printf("  FAILED: %s\n", msg);
        failed++;
    } else {
        printf("  egress filter (seccomp, all threads): %s\n", rep.seccomp ? "yes, egress blocked" : "NO");
        printf("  no_new_privs: %s   capabilities dropped: %s   core dumps: %s\n",
               rep.no_new_privs ? "yes" : "no", rep.caps_dropped ? "yes" : "no",
               rep.core_disabled ? "off" : "ON");
        printf("  landlock: %s (kernel ABI %d)%s\n", rep.landlock ? "yes" : "no", rep.landlock_abi,
               rep.landlock_net ? ", TCP connect/bind refused too" : "");
        if (!rep.seccomp) {
            printf("  %s\n", rep.summary);
            failed++;
        }
    }

    printf("\nrunning servers:\n");
    int bad = 0;
    if (!report_servers(&bad))
        printf("  none found in this PID namespace\n");
    failed += bad;

    printf("\nthis process: capabilities ");
    char cap[64] = "?";
    status_value("/proc/self/status", "CapEff", cap, sizeof(cap));
    printf("(effective) %s%s\n", cap, strtoull(cap, NULL, 16) ? " (privileged user)" : "");

    printf("\nstore %s:\n", store);
    char path[4200];
    snprintf(path, sizeof(path), "%s/catalogue.db", store);
    struct stat st;
    if (stat(path, &st) == 0) {
        sqlite3 *db = NULL;
        const char *res = "?";
        sqlite3_stmt *s = NULL;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            res = (const char *)sqlite3_column_text(s, 0);
        printf("  catalogue: %s\n", res ? res : "?");
        if (!res || strcmp(res, "ok"))
            failed++;
        sqlite3_finalize(s);
        s = NULL;
        int n_appr = 0;
        if (db && sqlite3_prepare_v2(db, "SELECT count(*) FROM approvers", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            n_appr = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
        if (n_appr)
            printf("  approvals: bound to %d pinned approver keys (airlock approve --key)\n", n_appr);
        else
            printf("  approvals: name-only: whoever runs airlock approve can type any --by name "
                   "(pin keys: airlock policy set approvers=FILE)\n");
        sqlite3_close(db);
    } else {
        printf("  catalogue: none yet\n");
    }
    snprintf(path, sizeof(path), "%s/blobs/sha256", store);
    DIR *bd = opendir(path);
    if (bd) {
        int nb = 0;
        struct dirent *be;
        while ((be = readdir(bd)))
            nb += be->d_name[0] != '.';
        closedir(bd);
        printf("  blobs: %d (run `airlock store verify` to re-hash them)\n", nb);
    }
    snprintf(path, sizeof(path), "%s/keys.db", store);
    if (stat(path, &st) == 0) {
        al_keyring *kr = NULL;
        al_error err = {0};
        if (al_keyring_open(store, &kr, &err) == AL_OK) {
            al_apikey_info *v = NULL;
            size_t n = 0, active = 0;
            if (al_keyring_list(kr, &v, &n, &err) == AL_OK)
                for (size_t i = 0; i < n; i++)
                    active += !v[i].revoked;
            free(v);
            al_keyring_close(kr);
            printf("  API keys: %zu (%zu not revoked): requests need a key\n", n, active);
        }
    } else {
        printf("  API keys: none: the API is open to whoever reaches the listeners\n");
    }
    snprintf(path, sizeof(path), "%s/audit", store);
    al_audit_verify_result vr;
    al_error err = {0};
    al_status vs = al_audit_verify(path, &vr, &err);
    if (vs == AL_OK) {
        printf("  audit log: intact, %llu records (%llu signed, %llu older unsigned), %llu signed "
               "checkpoints\n", (unsigned long long)vr.n_records, (unsigned long long)vr.n_signed,
               (unsigned long long)vr.n_legacy, (unsigned long long)vr.n_checkpoints);
        printf("    (checked against the store's own audit.pub: keep a copy elsewhere and run "
               "'airlock audit verify --pub FILE')\n");
    }
    else if (vs == AL_ERR_CRYPTO) {
        printf("  audit log: TAMPERED at line %llu: %s\n", (unsigned long long)vr.bad_line, vr.problem);
        failed++;
    } else
        printf("  audit log: none yet (%s)\n", err.msg);

    printf("\nhost:\n");
    host_warnings();
    printf("\n%s\n", failed ? "doctor: PROBLEMS FOUND" : "doctor: ok");
    return failed ? 1 : 0;
}

/* ------------------------------------------------------- sandbox-selftest */

static bool parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    int64_t port;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1 || !cli_parse_i64(colon + 1, 1, 65535, &port))
        return false;
    out->sin_port = htons((uint16_t)port);
    return true;
}

static const char *err_name(int e)
{
    return e == 0 ? "OK" : e == EPERM ? "EPERM" : e == EACCES ? "EACCES" : e == ECONNREFUSED ? "ECONNREFUSED"
           : e == ENETUNREACH ? "ENETUNREACH" : e == ETIMEDOUT ? "ETIMEDOUT" : strerror(e);
}

int cmd_sandbox_selftest(int argc, char **argv)
{
    bool unsafe = false;
    const char *target = NULL, *store = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--unsafe-no-sandbox"))
            unsafe = true;
        else if (!strcmp(argv[i], "--store") && i + 1 < argc)
            store = argv[++i];
        else if (argv[i][0] != '-' && !target)
            target = argv[i];
        else {
            target = NULL;
            break;
        }
    }
    struct sockaddr_in to;
    if (!target || !parse_addr(target, &to)) {
        fprintf(stderr, "usage: airlock sandbox-selftest [--unsafe-no-sandbox] [--store DIR] IPV4:PORT\n"
                        "Enters the sandbox as `airlock serve` does, then tries a TCP connect and a\n"
                        "UDP datagram to IPV4:PORT (a test address you control). Exit 0 when both are\n"
                        "refused with EPERM.\n");
        return 2;
    }
    store = cli_store_dir(store);
    /* sockets made before the sandbox, like anything a library might hold */
    int tcp_pre = socket(AF_INET, SOCK_STREAM, 0);
    int udp_pre = socket(AF_INET, SOCK_DGRAM, 0);
    if (unsafe) {
        fprintf(stderr, "%s\n", AL_SANDBOX_UNSAFE_WARNING);
        printf("sandbox: OFF (--unsafe-no-sandbox)\n");
    } else {
        const char *rw[] = {store};
        al_sandbox_params sp = {.rw_paths = rw, .n_rw = 1, .allow_missing = true};
        al_sandbox_report rep;
        al_error err = {0};
        if (al_sandbox_enter(&sp, &rep, &err) != AL_OK) {
            cli_errorf("sandbox-selftest", "%s", err.msg);
            return 1;
        }
        printf("sandbox: %s\n", rep.summary);
    }
    fflush(stdout);
    int fails = 0;
    /* 1. TCP connect on the socket made before the sandbox */
    int e = 0;
    if (connect(tcp_pre, (struct sockaddr *)&to, sizeof(to)) != 0)
        e = errno;
    printf("tcp connect %s (socket made before the sandbox): %s\n", target, err_name(e));
    fails += e != EPERM;
    /* 2. a new TCP socket */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    e = s < 0 ? errno : 0;
    if (s >= 0) {
        if (connect(s, (struct sockaddr *)&to, sizeof(to)) != 0)
            e = errno;
        close(s);
    }
    printf("tcp socket+connect %s: %s\n", target, err_name(e));
    fails += e != EPERM;
    /* 3. UDP datagram on the socket made before the sandbox */
    e = 0;
    if (sendto(udp_pre, "airlock-egress-probe", 20, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
        e = errno;
    printf("udp sendto %s (socket made before the sandbox): %s\n", target, err_name(e));
    fails += e != EPERM;
    /* 4. a new UDP socket */
    s = socket(AF_INET, SOCK_DGRAM, 0);
    e = s < 0 ? errno : 0;
    if (s >= 0) {
        if (sendto(s, "airlock-egress-probe", 20, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
            e = errno;
        close(s);
    }
    printf("udp socket+sendto %s: %s\n", target, err_name(e));
    fails += e != EPERM;
    close(tcp_pre);
    close(udp_pre);
    if (unsafe)
        return 0;
    printf("%s\n", fails ? "selftest: EGRESS POSSIBLE" : "selftest: all egress refused with EPERM");
    return fails ? 1 : 0;
}
