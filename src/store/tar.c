/* tar.c - strict POSIX ustar (see tar.h). */
#include "store/tar.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fsutil.h"

/* Header field offsets (POSIX.1-1988 ustar). */
enum {
    H_NAME = 0, H_MODE = 100, H_UID = 108, H_GID = 116, H_SIZE = 124, H_MTIME = 136, H_CHKSUM = 148,
    H_TYPE = 156, H_LINK = 157, H_MAGIC = 257, H_VERSION = 263, H_UNAME = 265, H_GNAME = 297,
    H_DEVMAJ = 329, H_DEVMIN = 337, H_PREFIX = 345,
};

static void put_octal(unsigned char *f, size_t width, uint64_t v)
{
    /* width-1 digits then NUL */
    f[width - 1] = 0;
    for (size_t i = width - 1; i > 0; i--) {
        f[i - 1] = (unsigned char)('0' + (v & 7));
        v >>= 3;
    }
}

static unsigned header_sum(const unsigned char *h)
{
    unsigned s = 0;
    for (int i = 0; i < AL_TAR_BLOCK; i++)
        s += (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
    return s;
}

al_status al_tar_write_header(int fd, const char *name, uint64_t size, int64_t mtime, al_error *err)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > AL_TAR_NAME_MAX)
        return al_err(err, AL_ERR_ARG, "tar: entry name '%s' must be 1..%d bytes", name, AL_TAR_NAME_MAX);
    unsigned char h[AL_TAR_BLOCK];
    memset(h, 0, sizeof(h));
    memcpy(h + H_NAME, name, nl);
    put_octal(h + H_MODE, 8, 0644);
    put_octal(h + H_UID, 8, 0);
    put_octal(h + H_GID, 8, 0);
    if (size < ((uint64_t)1 << 33)) {
        put_octal(h + H_SIZE, 12, size);
    } else {
        /* GNU base-256: high bit of the first byte set, big-endian value. */
        memset(h + H_SIZE, 0, 12);
        h[H_SIZE] = 0x80;
        for (int i = 0; i < 8; i++)
            h[H_SIZE + 11 - i] = (unsigned char)(size >> (8 * i));
    }
    put_octal(h + H_MTIME, 12, mtime > 0 ? (uint64_t)mtime : 0);
    h[H_TYPE] = '0';
    memcpy(h + H_MAGIC, "ustar", 6);
    memcpy(h + H_VERSION, "00", 2);
    memcpy(h + H_UNAME, "airlock", 7);
    memcpy(h + H_GNAME, "airlock", 7);
    unsigned s = header_sum(h);
    /* six octal digits, NUL, space */
    put_octal(h + H_CHKSUM, 7, s);
    h[H_CHKSUM + 7] = ' ';
    return al_fs_write_all(fd, h, sizeof(h), "tar", err);
}

static const unsigned char k_zero[AL_TAR_BLOCK];

al_status al_tar_write_pad(int fd, uint64_t size, al_error *err)
{
    size_t pad = (size_t)((AL_TAR_BLOCK - size % AL_TAR_BLOCK) % AL_TAR_BLOCK);
    return pad ? al_fs_write_all(fd, k_zero, pad, "tar", err) : AL_OK;
}

al_status al_tar_write_end(int fd, al_error *err)
{
    al_status st = al_fs_write_all(fd, k_zero, AL_TAR_BLOCK, "tar", err);
    return st ? st : al_fs_write_all(fd, k_zero, AL_TAR_BLOCK, "tar", err);
}

void al_tar_reader_init(al_tar_reader *r, int fd, const char *label)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    r->label = label;
}

/* Reads exactly n bytes, or fewer at EOF (*got tells). */
static al_status read_full(al_tar_reader *r, void *buf, size_t n, size_t *got, al_error *err)
{
    unsigned char *p = buf;
    size_t have = 0;
    while (have < n) {
        ssize_t k = read(r->fd, p + have, n - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return al_err(err, AL_ERR_IO, "%s: read failed at byte %llu: %s", r->label,
                          (unsigned long long)(r->offset + have), strerror(errno));
        if (k == 0)
            break;
        have += (size_t)k;
    }
    r->offset += have;
    *got = have;
    return AL_OK;
}

static al_status skip(al_tar_reader *r, uint64_t n, al_error *err)
{
    unsigned char buf[16384];
    while (n > 0) {
        size_t want = n < sizeof(buf) ? (size_t)n : sizeof(buf), got;
        al_status st = read_full(r, buf, want, &got, err);
        if (st)
            return st;
        if (got < want)
            return al_err(err, AL_ERR_FORMAT, "%s: bundle truncated inside entry '%s' (at byte %llu)", r->label,
                          r->cur, (unsigned long long)r->offset);
        n -= got;
    }
    return AL_OK;
}

static bool parse_octal(const unsigned char *f, size_t width, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < width && f[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 60)
            return false;
        v = (v << 3) | (uint64_t)(f[i] - '0');
    }
    for (; i < width; i++)
        if (f[i] != 0 && f[i] != ' ')
            return false;
    if (digits == 0)
        return false;
    *out = v;
    return true;
}

static bool parse_size(const unsigned char *f, uint64_t *out)
{
    if (f[0] & 0x80) {
        if (f[0] != 0x80 || f[1] || f[2] || f[3])
            return false; /* negative, or beyond 64 bits */
        uint64_t v = 0;
        for (int i = 4; i < 12; i++)
            v = (v << 8) | f[i];
        *out = v;
        return true;
    }
    return parse_octal(f, 12, out);
}

static const char *type_name(unsigned char t)
{
    switch (t) {
    case '1': return "hard link";
    case '2': return "symlink";
    case '3': return "character device";
    case '4': return "block device";
    case '5': return "directory";
    case '6': return "FIFO";
    case '7': return "contiguous file";
    case 'x': return "pax extended header";
    case 'g': return "pax global header";
    case 'L': return "GNU long name";
    case 'K': return "GNU long link name";
    default: return "unknown";
    }
}

/* Names inside a bundle: printable ASCII, not absolute, no "." / ".."
 * component, no empty component. */
static const char *bad_name(const char *n)
{
    if (!n[0])
        return "empty name";
    if (n[0] == '/')
        return "absolute path";
    for (const char *p = n; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return "control or non-ASCII character in name";
    const char *c = n;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0)
            return "empty path component";
        if ((len == 2 && c[0] == '.' && c[1] == '.'))
            return "path traversal ('..')";
        if (len == 1 && c[0] == '.')
            return "'.' path component";
        c += len;
        if (*c == '/')
            c++;
    }
    return NULL;
}

al_status al_tar_next(al_tar_reader *r, al_tar_entry *e, bool *end, al_error *err)
{
    *end = false;
    al_status st = skip(r, r->remaining + r->pad, err);
    if (st)
        return st;
    r->remaining = r->pad = 0;
    unsigned char h[AL_TAR_BLOCK];
    size_t got;
    if ((st = read_full(r, h, sizeof(h), &got, err)))
        return st;
    if (got == 0)
        return al_err(err, AL_ERR_FORMAT, "%s: bundle truncated: ends at byte %llu without the end-of-archive marker",
                      r->label, (unsigned long long)r->offset);
    if (got < sizeof(h))
        return al_err(err, AL_ERR_FORMAT, "%s: bundle truncated inside a tar header (at byte %llu)", r->label,
                      (unsigned long long)r->offset);
    if (!memcmp(h, k_zero, sizeof(h))) {
        if ((st = read_full(r, h, sizeof(h), &got, err)))
            return st;
        if (got < sizeof(h))
            return al_err(err, AL_ERR_FORMAT, "%s: bundle truncated inside the end-of-archive marker", r->label);
        if (memcmp(h, k_zero, sizeof(h)))
            return al_err(err, AL_ERR_FORMAT, "%s: a zero block followed by a non-zero block at byte %llu", r->label,
                          (unsigned long long)r->offset);
        *end = true;
        return AL_OK;
    }
    uint64_t sum;
    if (!parse_octal(h + H_CHKSUM, 8, &sum) || sum != header_sum(h))
        return al_err(err, AL_ERR_FORMAT, "%s: tar header at byte %llu has a bad checksum", r->label,
                      (unsigned long long)(r->offset - AL_TAR_BLOCK));
    if (memcmp(h + H_MAGIC, "ustar", 6) || memcmp(h + H_VERSION, "00", 2))
        return al_err(err, AL_ERR_FORMAT, "%s: tar header at byte %llu is not POSIX ustar", r->label,
                      (unsigned long long)(r->offset - AL_TAR_BLOCK));
    char name[AL_TAR_NAME_MAX + 1];
    memcpy(name, h + H_NAME, AL_TAR_NAME_MAX);
    name[AL_TAR_NAME_MAX] = 0;
    if (h[H_PREFIX])
        return al_err(err, AL_ERR_FORMAT, "%s: entry '%s' uses the ustar prefix field (nested paths are refused)",
                      r->label, name);
    snprintf(r->cur, sizeof(r->cur), "%s", name);
    unsigned char t = h[H_TYPE];
    if (t != '0' && t != 0)
        return al_err(err, AL_ERR_FORMAT, "%s: entry '%s' is a %s (type '%c'); bundles hold regular files only",
                      r->label, name, type_name(t), t >= 0x20 && t < 0x7f ? t : '?');
    const char *why = bad_name(name);
    if (why)
        return al_err(err, AL_ERR_FORMAT, "%s: entry '%s' refused: %s", r->label, name, why);
    uint64_t size;
    if (!parse_size(h + H_SIZE, &size))
        return al_err(err, AL_ERR_FORMAT, "%s: entry '%s' has an unreadable size field", r->label, name);
    memcpy(e->name, name, sizeof(name));
    e->size = size;
    r->cur_size = size;
    r->remaining = size;
    r->pad = (AL_TAR_BLOCK - size % AL_TAR_BLOCK) % AL_TAR_BLOCK;
    return AL_OK;
}

al_status al_tar_read(al_tar_reader *r, void *buf, size_t cap, size_t *n, al_error *err)
{
    *n = 0;
    if (r->remaining == 0 || cap == 0)
        return AL_OK;
    size_t want = r->remaining < cap ? (size_t)r->remaining : cap, got;
    al_status st = read_full(r, buf, want, &got, err);
    if (st)
        return st;
    if (got < want)
        return al_err(err, AL_ERR_FORMAT, "%s: bundle truncated inside entry '%s' (%llu of %llu bytes present)",
                      r->label, r->cur, (unsigned long long)(r->cur_size - r->remaining + got),
                      (unsigned long long)r->cur_size);
    r->remaining -= got;
    *n = got;
    return AL_OK;
}
