/* fuzz_bundle.c - libFuzzer entry for the bundle reader: the strict tar
 * reader, the manifest signature check and the manifest parser, in the
 * order al_store_import uses them (manifest.json, manifest.sig, then every
 * payload entry hashed and matched against the manifest). A manifest that
 * parses is dumped and parsed again: the two must agree. The input is the
 * bundle, fed through a memfd. Also built without libFuzzer as a corpus
 * replayer (fuzz_replay.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "airlock.h"
#include "store/bundle.h"
#include "store/sign.h"
#include "store/tar.h"
#include "util/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The public half of a throwaway key (fuzz/corpus/bundle was signed with
 * it, so the seeds reach the payload checks). */
static const char k_pub[] = "-----BEGIN PUBLIC KEY-----\n"
                            "MCowBQYDK2VwAyEALCwVzVfJib/DA0foKpnBwWQJLlQT67I4nZdNMKBi08o=\n"
                            "-----END PUBLIC KEY-----\n";

static void roundtrip(const al_manifest *m)
{
    char *js = NULL;
    size_t n = 0;
    if (al_manifest_dump(m, &js, &n, NULL) != AL_OK)
        abort(); /* a manifest that parsed must serialise */
    al_manifest *m2 = calloc(1, sizeof(*m2));
    al_error err;
    if (!m2 || al_manifest_parse(js, n, m2, &err) != AL_OK)
        abort(); /* and what it serialises to must parse */
    if (m2->n_files != m->n_files || strcmp(m2->name, m->name) || strcmp(m2->tag, m->tag))
        abort();
    for (size_t i = 0; i < m->n_files; i++)
        if (m2->files[i].size != m->files[i].size || strcmp(m2->files[i].sha256, m->files[i].sha256))
            abort();
    free(m2);
    free(js);
}

static void read_bundle(int fd)
{
    al_tar_reader tr;
    al_tar_reader_init(&tr, fd, "fuzz.bundle");
    al_tar_entry e;
    bool end = false;
    al_error err;
    char *man = NULL;
    size_t man_n = 0, k;
    unsigned char sig[256];
    size_t sig_n = 0;
    al_manifest *m = calloc(1, sizeof(*m));
    bool parsed = false;
    unsigned char buf[4096];
    for (int idx = 0; m; idx++) {
        if (al_tar_next(&tr, &e, &end, &err) != AL_OK) {
            if (!err.msg[0])
                abort();
            break;
        }
        if (end)
            break;
        if (idx == 0 && !strcmp(e.name, AL_BUNDLE_MANIFEST_ENTRY) && e.size <= AL_MANIFEST_MAX_BYTES) {
            man_n = (size_t)e.size;
            man = malloc(man_n + 1);
            size_t got = 0;
            while (man && got < man_n && al_tar_read(&tr, man + got, man_n - got, &k, &err) == AL_OK && k)
                got += k;
            if (!man || got != man_n)
                break;
            man[man_n] = 0;
            if (al_manifest_parse(man, man_n, m, &err) == AL_OK) {
                parsed = true;
                roundtrip(m);
            } else if (!err.msg[0]) {
                abort();
            }
            continue;
        }
        if (idx == 1 && man && !strcmp(e.name, AL_BUNDLE_SIG_ENTRY) && e.size <= sizeof(sig)) {
            while (sig_n < e.size && al_tar_read(&tr, sig + sig_n, (size_t)e.size - sig_n, &k, &err) == AL_OK && k)
                sig_n += k;
            (void)al_sign_verify(k_pub, man, man_n, sig, sig_n, NULL);
            continue;
        }
        /* a payload entry: hash it and compare with the manifest */
        al_sha256 *h = al_sha256_begin();
        uint64_t total = 0;
        for (;;) {
            if (al_tar_read(&tr, buf, sizeof(buf), &k, &err) != AL_OK || k == 0)
                break;
            if (k > sizeof(buf))
                abort();
            total += k;
            al_sha256_update(h, buf, k);
        }
        char hex[65];
        if (h && al_sha256_end(h, hex) && parsed)
            for (size_t i = 0; i < m->n_files; i++)
                if (!strcmp(m->files[i].name, e.name))
                    (void)(total == m->files[i].size && !strcmp(hex, m->files[i].sha256));
        if (total > e.size)
            abort(); /* the reader never hands out more than the entry holds */
    }
    free(man);
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_bundle", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (off == size && lseek(fd, 0, SEEK_SET) == 0)
        read_bundle(fd);
    close(fd);
    return 0;
}
