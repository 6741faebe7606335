/* sandbox_test.c - what al_sandbox_enter blocks and what keeps working.
 * Runs the sandboxed part in a child process (the sandbox is irreversible).
 * Only loopback and AF_UNIX are used; no packet leaves the host. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

static int g_fail;
#define CHECK(cond, ...)                                      \
    do {                                                      \
        if (cond) {                                           \
            printf("  ok   ");                                \
        } else {                                              \
            printf("  FAIL ");                                \
            g_fail++;                                         \
        }                                                     \
        printf(__VA_ARGS__);                                  \
        printf("\n");                                         \
    } while (0)

static int g_pipe[2];
static int g_thread_errno;

/* A thread that exists before the filter: it must get the filter too. */
static void *early_thread(void *arg)
{
    char c;
    if (read(g_pipe[0], &c, 1) != 1)
        return NULL;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    g_thread_errno = s < 0 ? errno : 0;
    if (s >= 0)
        close(s);
    return NULL;
}

static int status_field(const char *name, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t n = strlen(name);
    int found = -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, name, n) && line[n] == ':') {
            snprintf(out, cap, "%s", line + n + 1);
            found = 0;
            break;
        }
    fclose(f);
    return found;
}

static int child(const char *dir, int listen_fd, int udp_fd)
{
    pthread_t th;
    if (pipe(g_pipe) != 0 || pthread_create(&th, NULL, early_thread, NULL) != 0)
        return 100;

    const char *rw[] = {dir};
    al_sandbox_params p = {.rw_paths = rw, .n_rw = 1, .allow_missing = true};
    al_sandbox_report rep;
    al_error err = {0};
    al_status st = al_sandbox_enter(&p, &rep, &err);
    CHECK(st == AL_OK, "al_sandbox_enter: %s %s", al_status_str(st), err.msg);
    if (st)
        return 1;
    printf("  report: %s\n", rep.summary);
    char json[512];
    al_sandbox_report_json(&rep, json, sizeof(json));
    CHECK(strstr(json, "\"egress\":\"blocked\"") != NULL, "report JSON says egress blocked: %s", json);
    CHECK(rep.threads_at_entry == 2, "threads at entry: %d", rep.threads_at_entry);

    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(s < 0 && errno == EPERM, "socket(AF_INET, STREAM) -> EPERM (got %d, %s)", s, strerror(errno));
    s = socket(AF_INET6, SOCK_DGRAM, 0);
    CHECK(s < 0 && errno == EPERM, "socket(AF_INET6, DGRAM) -> EPERM");
    s = socket(AF_NETLINK, SOCK_RAW, 0);
    CHECK(s < 0 && errno == EPERM, "socket(AF_NETLINK) -> EPERM");
    s = socket(AF_PACKET, SOCK_RAW, 0);
    CHECK(s < 0 && errno == EPERM, "socket(AF_PACKET) -> EPERM");
    int u = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(u >= 0, "socket(AF_UNIX) still works");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/x.sock", dir);
    int r = connect(u, (struct sockaddr *)&sun, sizeof(sun));
    CHECK(r < 0 && errno == EPERM, "connect() -> EPERM");

    /* a UDP socket that existed before the filter cannot send anywhere */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ssize_t w = sendto(udp_fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to));
    CHECK(w < 0 && errno == EPERM, "sendto(pre-existing UDP socket, 127.0.0.1:9) -> EPERM");
    struct mmsghdr mm;
    memset(&mm, 0, sizeof(mm));
    r = (int)syscall(SYS_sendmmsg, udp_fd, &mm, 1, 0);
    CHECK(r < 0 && errno == EPERM, "sendmmsg -> EPERM");
    r = (int)syscall(SYS_io_uring_setup, 8, NULL);
    CHECK(r < 0 && errno == EPERM, "io_uring_setup -> EPERM");
    r = unshare(CLONE_NEWNET);
    CHECK(r < 0 && errno == EPERM, "unshare(CLONE_NEWNET) -> EPERM");
    r = setns(0, CLONE_NEWNET);
    CHECK(r < 0 && errno == EPERM, "setns -> EPERM");

    /* the thread created before the filter has it too (TSYNC) */
    if (write(g_pipe[1], "g", 1) != 1)
        return 101;
    pthread_join(th, NULL);
    CHECK(g_thread_errno == EPERM, "thread started before the filter: socket(AF_INET) -> EPERM");

    /* threads still start (clone3 -> ENOSYS -> clone fallback) */
    g_thread_errno = -1;
    pthread_t th2;
    int pr = pipe(g_pipe) == 0 ? pthread_create(&th2, NULL, early_thread, NULL) : -1;
    CHECK(pr == 0, "pthread_create still works");
    if (pr == 0) {
        if (write(g_pipe[1], "g", 1) != 1)
            return 102;
        pthread_join(th2, NULL);
    }

    /* Landlock: writing inside the store works, outside it does not */
    char path[600];
    snprintf(path, sizeof(path), "%s/ok.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "write inside the allowed dir");
    if (fd >= 0)
        close(fd);
    if (rep.landlock) {
        fd = open("/etc/hostname", O_RDONLY);
        CHECK(fd < 0 && errno == EACCES, "landlock: read /etc/hostname -> EACCES");
        fd = open("/tmp/al_sandbox_escape", O_WRONLY | O_CREAT, 0600);
        CHECK(fd < 0 && errno == EACCES, "landlock: create /tmp/al_sandbox_escape -> EACCES");
    } else {
        printf("  skip landlock checks: kernel has no Landlock\n");
    }

    char v[128];
    status_field("Seccomp", v, sizeof(v));
    CHECK(atoi(v) == 2, "/proc/self/status Seccomp: 2 (filter)");
    status_field("NoNewPrivs", v, sizeof(v));
    CHECK(atoi(v) == 1, "NoNewPrivs: 1");
    status_field("CapEff", v, sizeof(v));
    CHECK(strtoull(v, NULL, 16) == 0, "CapEff: 0");
    CHECK(rep.caps_dropped, "report: capabilities dropped");
    CHECK(rep.core_disabled, "report: core dumps off");

    /* the listener bound before the filter keeps accepting and answering */
    if (write(1, "", 0) < 0)
        return 103;
    int c = accept(listen_fd, NULL, NULL);
    CHECK(c >= 0, "accept() on the pre-bound listener works");
    if (c >= 0) {
        char buf[16];
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        CHECK(n == 4 && !memcmp(buf, "ping", 4), "recv from the client");
        w = send(c, "pong", 4, 0);
        CHECK(w == 4, "send() on the accepted connection works");
        struct iovec iov = {.iov_base = "!!", .iov_len = 2};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        w = sendmsg(c, &mh, 0);
        CHECK(w == 2, "sendmsg() on the accepted connection works (libmicrohttpd uses it)");
        close(c);
    }
    return g_fail ? 1 : 0;
}

int main(void)
{
    char dir[] = "/tmp/al_sandbox_test.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 4) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) != 0) {
        perror("listener");
        return 1;
    }
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = child(dir, l, udp);
        fflush(stdout);
        _exit(rc);
    }
    /* the parent (not sandboxed) plays the client */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int ok = c >= 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 &&
             send(c, "ping", 4, 0) == 4;
    char buf[16] = {0};
    ssize_t got = 0, n;
    while (ok && got < 6 && (n = recv(c, buf + got, sizeof(buf) - 1 - (size_t)got, 0)) > 0)
        got += n;
    int ws = 0;
    waitpid(pid, &ws, 0);
    int fails = 0;
    if (!ok || got != 6 || memcmp(buf, "pong!!", 6) != 0) {
        printf("  FAIL client did not get the reply through the sandboxed server (%zd bytes)\n", got);
        fails++;
    } else {
        printf("  ok   client got \"pong!!\" from the sandboxed server\n");
    }
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        printf("  FAIL sandboxed child: status %d\n", ws);
        fails++;
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fails++;
    printf(fails ? "sandbox_test: FAILED\n" : "sandbox_test: all checks passed\n");
    return fails ? 1 : 0;
}
