/* wipe.c - growing buffers of private text (see wipe.h). */
#include "util/wipe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool al_grow_wiped(char **buf, size_t *cap, size_t used, size_t need, size_t first_cap)
{
    if (need <= *cap - used)
        return true;
    size_t c = *cap ? *cap : (first_cap ? first_cap : 64);
    while (need > c - used) {
        if (c > SIZE_MAX / 2)
            return false;
        c *= 2;
    }
    char *nb = malloc(c);
    if (!nb)
        return false;
    if (*buf) {
        memcpy(nb, *buf, used);
        explicit_bzero(*buf, *cap);
        free(*buf);
    }
    *buf = nb;
    *cap = c;
    return true;
}
