/* fsutil.c - durable file operations (see fsutil.h). */
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

al_status al_fs_mkdirs(const char *dir, unsigned mode, al_error *err)
{
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(p))
        return al_err(err, AL_ERR_ARG, "directory path too long or empty");
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, mode ? mode : 0755) != 0 && errno != EEXIST)
                return al_err(err, AL_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
            p[i] = c;
        }
    }
    return AL_OK;
}

al_status al_fs_sync_dir(const char *dir, al_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL)
        return al_err(err, AL_ERR_IO, "%s: fsync failed: %s", dir, strerror(e));
    return AL_OK;
}

al_status al_fs_write_all(int fd, const void *data, size_t n, const char *what, al_error *err)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == ENOSPC || errno == EDQUOT))
            return al_err(err, AL_ERR_IO, "%s: disk full (%s); nothing was published", what, strerror(errno));
        if (w < 0)
            return al_err(err, AL_ERR_IO, "%s: write failed: %s", what, strerror(errno));
        if (w == 0)
            return al_err(err, AL_ERR_IO, "%s: write made no progress", what);
        p += w;
        n -= (size_t)w;
    }
    return AL_OK;
}

static void dir_of(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    if (!s) {
        snprintf(out, cap, ".");
        return;
    }
    size_t n = (size_t)(s - path);
    if (n == 0)
        n = 1;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = 0;
}

al_status al_fs_write_atomic(const char *path, const void *data, size_t n, unsigned mode, al_error *err)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return al_err(err, AL_ERR_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    al_status st = al_fs_write_all(fd, data, n, path, err);
    if (!st && fsync(fd) != 0)
        st = al_err(err, AL_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    close(fd);
    if (!st && rename(tmp, path) != 0)
        st = al_err(err, AL_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
    if (st) {
        unlink(tmp);
        return st;
    }
    dir_of(path, dir, sizeof(dir));
    return al_fs_sync_dir(dir, err);
}

al_status al_fs_read_small(const char *path, size_t max, char **out, size_t *n, al_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, errno == ENOENT ? AL_ERR_NOT_FOUND : AL_ERR_IO, "%s: cannot open: %s", path,
                      strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return al_err(err, AL_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        close(fd);
        return al_err(err, AL_ERR_LIMIT, "%s: %lld bytes is more than the limit of %zu", path,
                      (long long)sb.st_size, max);
    }
    size_t cap = (size_t)sb.st_size;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return al_err(err, AL_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len != cap) {
        free(buf);
        return al_err(err, AL_ERR_IO, "%s: short read", path);
    }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return AL_OK;
}

int al_is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}

void al_fs_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        unlink(dir);
        return;
    }
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p))
            continue;
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            al_fs_rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}
