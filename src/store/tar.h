/* tar.h - a small, strict POSIX ustar writer and streaming reader.
 *
 * Bundles hold regular files only, with flat names. The reader refuses, with
 * a reason naming the entry, every other entry type (directory, symlink,
 * hard link, character/block device, FIFO, pax/GNU extension headers), bad
 * header checksums, names that are absolute or contain "..", and a stream
 * that ends before the end-of-archive marker. Sizes above 8 GiB use the GNU
 * base-256 size encoding (the only extension written or read).
 *
 * The reader works in constant memory: one caller-owned buffer. */
#ifndef AL_STORE_TAR_H
#define AL_STORE_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "airlock.h"

#define AL_TAR_BLOCK 512
#define AL_TAR_NAME_MAX 100

/* ------------------------------------------------------------- writer */

/* Writes a header for a regular file `name` (1..100 bytes, no '/' needed)
 * of `size` bytes, mode 0644, mtime seconds. */
al_status al_tar_write_header(int fd, const char *name, uint64_t size, int64_t mtime, al_error *err);
/* Writes the zero padding after `size` bytes of data. */
al_status al_tar_write_pad(int fd, uint64_t size, al_error *err);
/* Writes the end-of-archive marker (two zero blocks). */
al_status al_tar_write_end(int fd, al_error *err);

/* ------------------------------------------------------------- reader */

typedef struct al_tar_reader {
    int fd;                /* not owned */
    const char *label;     /* for messages (the bundle's path) */
    uint64_t offset;       /* bytes consumed from fd so far */
    uint64_t remaining;    /* data bytes left in the current entry */
    uint64_t pad;          /* padding bytes after the current entry */
    char cur[AL_TAR_NAME_MAX + 1];
    uint64_t cur_size;
} al_tar_reader;

typedef struct al_tar_entry {
    char name[AL_TAR_NAME_MAX + 1];
    uint64_t size;
} al_tar_entry;

void al_tar_reader_init(al_tar_reader *r, int fd, const char *label);

/* Reads the next header (skipping what is left of the previous entry's
 * data). *end is set true at the end-of-archive marker. Refuses any entry
 * that is not a regular file with a safe name, with a precise reason. */
al_status al_tar_next(al_tar_reader *r, al_tar_entry *e, bool *end, al_error *err);

/* Reads up to cap bytes of the current entry's data; *n receives how many
 * (0 at the end of the entry). A stream that ends early is an error. */
al_status al_tar_read(al_tar_reader *r, void *buf, size_t cap, size_t *n, al_error *err);

#endif
