/* sha256.c - streaming SHA-256 of a file (OpenSSL EVP). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "airlock.h"
#include "util/error.h"
#include "util/hash.h"

void al_hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}

void al_sha256_hex(const void *data, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(data, n, d, &dl, EVP_sha256(), NULL);
    al_hex(d, 32, hex);
}

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
        al_hex(dig, 32, hex);
    EVP_MD_CTX_free(md);
    close(fd);
    return st;
}
