/* sha256.c - hex encoding and SHA-256: of a buffer, streamed, of a file (OpenSSL EVP). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

/* An al_sha256 is an EVP_MD_CTX; the type only hides OpenSSL's header. */
al_sha256 *al_sha256_begin(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    return (al_sha256 *)md;
}

void al_sha256_update(al_sha256 *h, const void *data, size_t n)
{
    EVP_DigestUpdate((EVP_MD_CTX *)h, data, n);
}

bool al_sha256_end(al_sha256 *h, char hex[65])
{
    unsigned char dig[32];
    unsigned int dlen = 0;
    bool ok = EVP_DigestFinal_ex((EVP_MD_CTX *)h, dig, &dlen) == 1;
    if (ok)
        al_hex(dig, 32, hex);
    al_sha256_free(h);
    return ok;
}

void al_sha256_free(al_sha256 *h)
{
    EVP_MD_CTX_free((EVP_MD_CTX *)h);
}

al_status al_sha256_file(const char *path, char hex[65], al_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    al_sha256 *h = al_sha256_begin();
    if (!h) {
        close(fd);
        return al_err(err, AL_ERR_CRYPTO, "%s: cannot start SHA-256", path);
    }
    /* On the heap, not _Thread_local: a thread-local megabyte would be part
     * of every thread's TLS block, so each HTTP connection thread of the
     * server would pay 1 MiB for a buffer only hashing uses. */
    enum { BUF_BYTES = 1 << 20 };
    unsigned char *buf = malloc(BUF_BYTES);
    if (!buf) {
        al_sha256_free(h);
        close(fd);
        return al_err(err, AL_ERR_NOMEM, "%s: no memory for a read buffer", path);
    }
    al_status st = AL_OK;
    for (;;) {
        ssize_t n = read(fd, buf, BUF_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = al_err(err, AL_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        al_sha256_update(h, buf, (size_t)n);
    }
    if (st)
        al_sha256_free(h);
    else
        al_sha256_end(h, hex);
    free(buf);
    close(fd);
    return st;
}
