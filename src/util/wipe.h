/* wipe.h - buffers of private text (prompts, generated text) that leave no
 * copy behind in freed memory. */
#ifndef AL_UTIL_WIPE_H
#define AL_UTIL_WIPE_H

#include <stdbool.h>
#include <stddef.h>

/* Makes room for `need` more bytes after the `used` ones of *buf (capacity
 * *cap; *buf NULL and *cap 0 to start at first_cap), doubling. Grown by
 * hand rather than by realloc: the old bytes are copied, then wiped, then
 * freed. False, with the buffer unchanged, when out of memory or when the
 * size would overflow. */
bool al_grow_wiped(char **buf, size_t *cap, size_t used, size_t need, size_t first_cap);

#endif
