/* error.h - filling al_error values. */
#ifndef AL_UTIL_ERROR_H
#define AL_UTIL_ERROR_H

#include "airlock.h"

/* Sets err (may be NULL) to status s with a printf-style message and
 * returns s, so that a failure reads `return al_err(err, AL_ERR_FORMAT, ...)`. */
al_status al_err(al_error *err, al_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to err's message (keeps its status). Returns the status. */
al_status al_err_prefix(al_error *err, const char *prefix);

#endif
