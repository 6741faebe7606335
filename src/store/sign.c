/* sign.c - Ed25519 with OpenSSL EVP (see sign.h). */
#include "store/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "util/error.h"
#include "util/fsutil.h"

static al_status key_id_of(EVP_PKEY *k, char key_id[65], al_error *err)
{
    unsigned char raw[32];
    size_t rl = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(k, raw, &rl) != 1 || rl != 32)
        return al_err(err, AL_ERR_CRYPTO, "cannot read the raw Ed25519 public key");
    al_sha256_hex(raw, rl, key_id);
    return AL_OK;
}

/* Writes a BIO's contents to path with mode, refusing to overwrite. */
static al_status write_bio(BIO *b, const char *path, unsigned mode, al_error *err)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot create (%s)%s", path, strerror(errno),
                      errno == EEXIST ? "; refusing to overwrite a key" : "");
    fchmod(fd, mode);
    al_status st = al_fs_write_all(fd, data, (size_t)n, path, err);
    if (!st && fsync(fd) != 0)
        st = al_err(err, AL_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    close(fd);
    if (st)
        unlink(path);
    return st;
}

al_status al_sign_keygen(const char *dir, const char *name, char *priv_path, char *pub_path, size_t cap,
                         char *key_id, al_error *err)
{
    char pp[PATH_MAX], pu[PATH_MAX];
    if (snprintf(pp, sizeof(pp), "%s/%s.pem", dir, name) >= (int)sizeof(pp) ||
        snprintf(pu, sizeof(pu), "%s/%s.pub.pem", dir, name) >= (int)sizeof(pu))
        return al_err(err, AL_ERR_ARG, "key path too long");
    al_status st = al_fs_mkdirs(dir, 0700, err);
    if (st)
        return st;
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &k) != 1) {
        EVP_PKEY_CTX_free(c);
        return al_err(err, AL_ERR_CRYPTO, "Ed25519 key generation failed");
    }
    EVP_PKEY_CTX_free(c);
    BIO *bp = BIO_new(BIO_s_mem()), *bu = BIO_new(BIO_s_mem());
    if (!bp || !bu || PEM_write_bio_PrivateKey(bp, k, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_PUBKEY(bu, k) != 1) {
        st = al_err(err, AL_ERR_CRYPTO, "cannot encode the key as PEM");
        goto done;
    }
    if ((st = write_bio(bp, pp, 0600, err)))
        goto done;
    if ((st = write_bio(bu, pu, 0644, err))) {
        unlink(pp);
        goto done;
    }
    if ((st = al_fs_sync_dir(dir, err)))
        goto done;
    if (key_id && (st = key_id_of(k, key_id, err)))
        goto done;
    if (priv_path)
        snprintf(priv_path, cap, "%s", pp);
    if (pub_path)
        snprintf(pub_path, cap, "%s", pu);
done:
    BIO_free(bp);
    BIO_free(bu);
    EVP_PKEY_free(k);
    return st;
}

al_status al_sign(const char *priv_pem_path, const void *msg, size_t n, unsigned char sig[AL_SIG_BYTES],
                  char key_id[65], al_error *err)
{
    char *pem = NULL;
    size_t pn = 0;
    al_status st = al_fs_read_small(priv_pem_path, 64 * 1024, &pem, &pn, err);
    if (st)
        return st;
    BIO *b = BIO_new_mem_buf(pem, (int)pn);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    free(pem);
    if (!k)
        return al_err(err, AL_ERR_CRYPTO, "%s: not a readable PEM private key", priv_pem_path);
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return al_err(err, AL_ERR_UNSUPPORTED, "%s: not an Ed25519 key", priv_pem_path);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t sl = AL_SIG_BYTES;
    if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(md, sig, &sl, msg, n) != 1 || sl != AL_SIG_BYTES)
        st = al_err(err, AL_ERR_CRYPTO, "%s: signing failed", priv_pem_path);
    if (!st)
        st = key_id_of(k, key_id, err);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return st;
}

static EVP_PKEY *read_pub(const char *pub_pem, al_error *err)
{
    BIO *b = BIO_new_mem_buf(pub_pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!k) {
        al_err(err, AL_ERR_CRYPTO, "not a readable PEM public key");
        return NULL;
    }
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        al_err(err, AL_ERR_UNSUPPORTED, "the public key is not an Ed25519 key");
        return NULL;
    }
    return k;
}

al_status al_sign_pubkey_id(const char *pub_pem, char key_id[65], al_error *err)
{
    EVP_PKEY *k = read_pub(pub_pem, err);
    if (!k)
        return err ? err->status : AL_ERR_CRYPTO;
    al_status st = key_id_of(k, key_id, err);
    EVP_PKEY_free(k);
    return st;
}

al_status al_sign_verify(const char *pub_pem, const void *msg, size_t n, const unsigned char *sig, size_t sig_len,
                         al_error *err)
{
    if (sig_len != AL_SIG_BYTES)
        return al_err(err, AL_ERR_CRYPTO, "signature is %zu bytes, an Ed25519 signature is %d", sig_len,
                      AL_SIG_BYTES);
    EVP_PKEY *k = read_pub(pub_pem, err);
    if (!k)
        return err ? err->status : AL_ERR_CRYPTO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, msg, n) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok ? AL_OK : al_err(err, AL_ERR_CRYPTO, "the signature does not verify");
}
