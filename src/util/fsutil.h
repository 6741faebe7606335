/* fsutil.h - durable file operations, shared by the store and the audit
 * log: every file the store publishes is written to a temporary name,
 * fsync'd, renamed into place and its directory fsync'd, so that a crash
 * leaves either the old or the new file, never a torn one. */
#ifndef AL_UTIL_FSUTIL_H
#define AL_UTIL_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "airlock.h"
#include "util/hash.h" /* al_hex, al_sha256_hex */

/* Creates dir and its parents (mode 0755 unless given). EEXIST is fine. */
al_status al_fs_mkdirs(const char *dir, unsigned mode, al_error *err);

/* fsyncs a directory so that a rename or unlink in it is durable. */
al_status al_fs_sync_dir(const char *dir, al_error *err);

/* Writes data[0..n) to path atomically (tmp in the same dir, fsync, rename,
 * fsync dir) with the given mode. */
al_status al_fs_write_atomic(const char *path, const void *data, size_t n, unsigned mode, al_error *err);

/* Writes all n bytes to fd (retries short writes and EINTR). ENOSPC gives a
 * clear "disk full" message naming what. */
al_status al_fs_write_all(int fd, const void *data, size_t n, const char *what, al_error *err);

/* Reads a whole small file (at most max bytes) into a malloc'd buffer with a
 * NUL after it. *out owned by the caller (free()). */
al_status al_fs_read_small(const char *path, size_t max, char **out, size_t *n, al_error *err);

/* True when s is exactly 64 lowercase hex digits. */
int al_is_hex64(const char *s);

/* Removes a directory tree (best effort; files and subdirectories). */
void al_fs_rmtree(const char *dir);

#endif
