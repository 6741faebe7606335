/* sha256.c - streaming SHA-256 of a file (OpenSSL EVP). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "airlock.h"
#include "util/error.h"

al_status al_sha256_file(const char *path, char hex[65], al_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        close(fd);
        return al_err(err, AL_ERR_CRYPTO, "%s: cannot start SHA-256", path);
    }
    static _Thread_local unsigned char buf[1 << 20];
    al_status st = AL_OK;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = al_err(err, AL_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    unsigned char dig[32];
    unsigned int dlen = 0;
    if (!st && EVP_DigestFinal_ex(md, dig, &dlen) == 1)
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    EVP_MD_CTX_free(md);
    close(fd);
    return st;
}
