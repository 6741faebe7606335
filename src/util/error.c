#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

al_status al_err(al_error *err, al_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = s;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return s;
}

al_status al_err_prefix(al_error *err, const char *prefix)
{
    if (!err)
        return AL_ERR_ARG;
    char tmp[sizeof(err->msg)];
    size_t np = strnlen(prefix, sizeof(tmp) - 3), nm = strnlen(err->msg, sizeof(err->msg));
    memcpy(tmp, prefix, np);
    memcpy(tmp + np, ": ", 2);
    size_t room = sizeof(tmp) - np - 3;
    if (nm > room)
        nm = room;
    memcpy(tmp + np + 2, err->msg, nm);
    tmp[np + 2 + nm] = 0;
    memcpy(err->msg, tmp, sizeof(tmp));
    return err->status;
}

const char *al_status_str(al_status s)
{
    switch (s) {
    case AL_OK: return "ok";
    case AL_ERR_IO: return "I/O error";
    case AL_ERR_FORMAT: return "format error";
    case AL_ERR_UNSUPPORTED: return "unsupported";
    case AL_ERR_NOMEM: return "out of memory";
    case AL_ERR_ARG: return "bad argument";
    case AL_ERR_LIMIT: return "limit exceeded";
    case AL_ERR_TEMPLATE: return "template error";
    case AL_ERR_CANCELLED: return "cancelled";
    case AL_ERR_NOT_FOUND: return "not found";
    case AL_ERR_CRYPTO: return "verification failed";
    case AL_ERR_DB: return "database error";
    case AL_ERR_STATE: return "invalid state";
    case AL_ERR_PERMISSION: return "permission denied";
    }
    return "unknown status";
}

const char *al_version(void)
{
    return AL_VERSION;
}
