/* util.h - helpers shared by the subcommands. */
#ifndef AL_CLI_UTIL_H
#define AL_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads a whole file (path "-" = stdin) into a malloc'd NUL-terminated
 * buffer; *n gets its length. Returns NULL and sets errno on failure. */
char *cli_read_file(const char *path, size_t *n);

/* Parses numbers strictly (whole string, in range). false on failure. */
bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
bool cli_parse_f32(const char *s, float *out);

/* The store directory: opt when given and not empty, else the default
 * (al_store_default_dir: $AIRLOCK_STORE, else ./var/airlock). */
const char *cli_store_dir(const char *opt);

/* Writes n float32 values to path as they are in memory (x86-64:
 * little-endian). false after an error message naming cmd and the file. */
bool cli_write_f32(const char *cmd, const char *path, const float *v, size_t n);
/* Prints token ids on one line, separated by single spaces. */
void cli_print_ids(const int32_t *ids, size_t n);

/* Monotonic seconds. */
double cli_now(void);

#endif
