/* audit.c - the hash-chained, signed audit log (see audit.h).
 *
 * Record layout (one line of compact JSON, keys in this order):
 *   {"seq":N,"time":"...Z","type":"event"|"checkpoint"|"repair", ...fields...,
 *    "prev":"<hash of record N-1>","hash":"<sha256 of this line up to ,"hash">"}
 * The "hash" member is always last and always 64 hex digits, so a record's
 * hashed bytes are the line minus its fixed-size 75-byte suffix.
 *
 * Since format 2 every record is signed: just before "hash" comes
 * "rsig":"<128 hex>", the Ed25519 signature of
 * "airlock-audit-record:<sha256 hex of the line up to ,"rsig">". So a
 * record cannot be added or changed without the key. Records of format 1
 * (no "rsig") are accepted only as a prefix of the log, before the first
 * signed record; the signed records' chain covers them from then on.
 *
 * Checkpoints add "key" (Ed25519 public key, hex) and "sig": the signature of
 * "airlock-audit-checkpoint:<seq>:<prev>". DIR/audit.head holds the last
 * fsynced record's seq and hash, signed the same way, so that cutting whole
 * records off the end is detected too. DIR/audit.key (0600) is the private
 * key, DIR/audit.pub its public half.
 */
#include "audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/error.h"
#include "util/fsutil.h"
#include "util/hash.h"

#define HASH_SUFFIX_LEN 75          /* ,"hash":"<64 hex>"} */
#define RSIG_LEN 138                /* ,"rsig":"<128 hex>" */
#define MAX_LINE (64u << 20)        /* a record longer than this is refused */
static const char k_zero_hash[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct al_audit {
    pthread_mutex_t mu;
    int fd;                  /* the log, O_APPEND */
    char *dir;               /* owned */
    char *log_path;          /* owned */
    EVP_PKEY *key;           /* owned: Ed25519 signing key */
    char pub_hex[65];
    /* cache of the tail, valid while the file's size equals cached_end */
    off_t cached_end;
    uint64_t last_seq;
    char last_hash[65];
    unsigned unsynced;       /* records written since the last fsync */
    double last_sync;        /* monotonic seconds */
    al_audit_content content;
    int anchor_fd;           /* second copy of the head, or -1 */
    FILE *mirror;            /* every record written here too, or NULL */
    char open_problem[512];  /* what open found wrong ("" if nothing) */
};

/* ---------------------------------------------------------------- helpers */

static bool from_hex(const char *s, unsigned char *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (x < 0)
                return false;
            v = v * 16 + x;
        }
        out[i] = (unsigned char)v;
    }
    return true;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void utc_now(char out[48])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 48, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (int)(ts.tv_nsec / 1000000L) % 1000);
}

/* "YYYY-MM-DDTHH:MM:SS..." -> unix seconds; -1 if malformed. */
static int64_t parse_time(const char *s)
{
    int y, mo, d, h, mi, se;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) != 6)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    return (int64_t)timegm(&tm);
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads the whole small file at path into buf (NUL-terminated). */
static bool read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return false;
    buf[n] = 0;
    return true;
}

/* ------------------------------------------------------------ signatures */

static bool ed_sign(EVP_PKEY *key, const char *msg, char sig_hex[129])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[64];
    size_t len = sizeof(sig);
    bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
              EVP_DigestSign(ctx, sig, &len, (const unsigned char *)msg, strlen(msg)) == 1 &&
              len == 64;
    EVP_MD_CTX_free(ctx);
    if (ok)
        al_hex(sig, 64, sig_hex);
    return ok;
}

static bool ed_verify(const char *pub_hex, const char *msg, const char *sig_hex)
{
    unsigned char pub[32], sig[64];
    if (!from_hex(pub_hex, pub, 32) || !from_hex(sig_hex, sig, 64))
        return false;
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = pk && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
              EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, strlen(msg)) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok;
}

/* The message a record's "rsig" signs: a domain tag and the SHA-256 of the
 * line's bytes before ,"rsig". */
static void record_msg(const char *line, size_t signed_len, char msg[96])
{
    char h[65];
    al_sha256_hex(line, signed_len, h);
    snprintf(msg, 96, "airlock-audit-record:%s", h);
}

/* rsig points at 128 hex digits inside the line (not NUL-terminated). */
static bool record_sig_ok(const char *pub_hex, const char *line, size_t signed_len,
                          const char *rsig)
{
    char msg[96], sig[129];
    memcpy(sig, rsig, 128);
    sig[128] = 0;
    record_msg(line, signed_len, msg);
    return ed_verify(pub_hex, msg, sig);
}

/* Loads DIR/audit.key, creating it (and audit.pub) if absent. Called with
 * the log's flock held so that two processes do not both create a key. */
static al_status load_or_create_key(al_audit *a, al_error *err)
{
    char *kpath = path_join(a->dir, "audit.key");
    char *ppath = path_join(a->dir, "audit.pub");
    al_status st = AL_OK;
    unsigned char raw[32];
    char hex[160];
    if (!kpath || !ppath) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (read_small(kpath, hex, sizeof(hex))) {
        size_t n = strlen(hex);
        while (n && (hex[n - 1] == '\n' || hex[n - 1] == ' '))
            hex[--n] = 0;
        if (!from_hex(hex, raw, 32)) {
            st = al_err(err, AL_ERR_FORMAT, "%s: not a 64-hex-digit Ed25519 key", kpath);
            goto out;
        }
        a->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32);
    } else {
        if (RAND_priv_bytes(raw, 32) != 1) {
            st = al_err(err, AL_ERR_CRYPTO, "no random bytes for the audit key");
            goto out;
        }
        a->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32);
        /* Written whole to a temporary file, then linked into place (never
         * over an existing key): a failed write (disk full) leaves no
         * half-written key that would refuse every later open. */
        char tpath[4200];
        snprintf(tpath, sizeof(tpath), "%s.tmp.%ld", kpath, (long)getpid());
        unlink(tpath);
        int fd = open(tpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            st = al_err(err, AL_ERR_IO, "%s: cannot create: %s", tpath, strerror(errno));
            goto out;
        }
        al_hex(raw, 32, hex);
        hex[64] = '\n';
        bool ok = write_all(fd, hex, 65) && fsync(fd) == 0;
        int e = errno;
        close(fd);
        if (ok && link(tpath, kpath) != 0) {
            ok = false;
            e = errno;
        }
        unlink(tpath);
        if (!ok) {
            st = al_err(err, AL_ERR_IO, "%s: cannot write: %s", kpath, strerror(e));
            goto out;
        }
        if ((st = al_fs_sync_dir(a->dir, err)))
            goto out;
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    if (!a->key) {
        st = al_err(err, AL_ERR_CRYPTO, "cannot load the audit key");
        goto out;
    }
    unsigned char pub[32];
    size_t plen = 32;
    if (EVP_PKEY_get_raw_public_key(a->key, pub, &plen) != 1 || plen != 32) {
        st = al_err(err, AL_ERR_CRYPTO, "cannot derive the audit public key");
        goto out;
    }
    al_hex(pub, 32, a->pub_hex);
    char cur[160];
    if (!read_small(ppath, cur, sizeof(cur)) || strncmp(cur, a->pub_hex, 64) != 0) {
        /* verify needs it: a failed write is an error, and never half a key */
        char line[66];
        memcpy(line, a->pub_hex, 64);
        line[64] = '\n';
        st = al_fs_write_atomic(ppath, line, 65, 0644, err);
    }
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    free(kpath);
    free(ppath);
    return st;
}

/* --------------------------------------------------------------- records */

/* Checks one line (without its '\n'): its own hash and JSON. On success
 * *obj (caller frees with json_decref) is the parsed record and hash the
 * recomputed hash. Returns NULL or a static problem description. */
static const char *check_line(const char *line, size_t len, json_t **obj, char hash[65],
                              const char **rsig, size_t *signed_len)
{
    *obj = NULL;
    *rsig = NULL;
    *signed_len = 0;
    if (len < HASH_SUFFIX_LEN + 2)
        return "record too short";
    const char *suf = line + len - HASH_SUFFIX_LEN;
    if (memcmp(suf, ",\"hash\":\"", 9) != 0 || memcmp(suf + 73, "\"}", 2) != 0)
        return "record does not end with its hash";
    al_sha256_hex(line, len - HASH_SUFFIX_LEN, hash);
    if (CRYPTO_memcmp(hash, suf + 9, 64) != 0)
        return "record's content does not match its hash (edited)";
    if (len >= HASH_SUFFIX_LEN + RSIG_LEN + 2) {
        const char *r = suf - RSIG_LEN;
        if (memcmp(r, ",\"rsig\":\"", 9) == 0 && r[RSIG_LEN - 1] == '"') {
            *rsig = r + 9;
            *signed_len = (size_t)(r - line);
        }
    }
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return "record is not a JSON object";
    }
    if (!json_is_integer(json_object_get(o, "seq")) || !json_is_string(json_object_get(o, "prev"))) {
        json_decref(o);
        return "record lacks seq or prev";
    }
    *obj = o;
    return NULL;
}

/* Finds the last line of the file (size bytes, ending in '\n'): returns a
 * malloc'd copy without the '\n' and its start offset. */
static char *read_last_line(int fd, off_t size, off_t *start, size_t *len_out)
{
    off_t end = size - 1; /* the '\n' */
    off_t pos = end;
    char buf[4096];
    while (pos > 0) {
        size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
        if (pread(fd, buf, chunk, pos - (off_t)chunk) != (ssize_t)chunk)
            return NULL;
        bool found = false;
        for (size_t i = chunk; i > 0; i--) {
            if (buf[i - 1] == '\n') {
                pos = pos - (off_t)chunk + (off_t)i;
                found = true;
                break;
            }
        }
        if (found)
            break;
        pos -= (off_t)chunk;
        if (end - pos > (off_t)MAX_LINE)
            return NULL;
    }
    size_t len = (size_t)(end - pos);
    char *line = malloc(len + 1);
    if (!line)
        return NULL;
    if (len && pread(fd, line, len, pos) != (ssize_t)len) {
        free(line);
        return NULL;
    }
    line[len] = 0;
    *start = pos;
    *len_out = len;
    return line;
}

static al_status sync_and_head(al_audit *a, al_error *err);

/* Writes one record built from body (which this function completes with
 * seq, prev and hash). Called with the lock held and the tail settled. */
static al_status write_checkpoint(al_audit *a, al_error *err);

/* The body of a record the log writes about itself (actor "airlock"),
 * detail may be NULL; NULL when out of memory. */
static json_t *own_body(const char *type, const char *action, const char *detail)
{
    json_t *b = json_object();
    if (!b || json_object_set_new(b, "type", json_string(type)) ||
        json_object_set_new(b, "actor", json_string("airlock")) ||
        json_object_set_new(b, "action", json_string(action)) ||
        (detail && json_object_set_new(b, "detail", json_string(detail)))) {
        json_decref(b);
        return NULL;
    }
    return b;
}

static al_status write_record(al_audit *a, json_t *body, bool sync_now, al_error *err)
{
    const char *btype = json_string_value(json_object_get(body, "type"));
    bool is_checkpoint = btype && !strcmp(btype, "checkpoint");
    /* every record numbered a multiple of AL_AUDIT_CHECKPOINT_EVERY is a
     * checkpoint: verify requires it, so stripping them is detected */
    if (!is_checkpoint && (a->last_seq + 1) % AL_AUDIT_CHECKPOINT_EVERY == 0) {
        al_status cst = write_checkpoint(a, err);
        if (cst)
            return cst;
    }
    uint64_t seq = a->last_seq + 1;
    /* rebuild in canonical order: seq, time, then body's fields, then prev */
    json_t *rec = json_object();
    char now[48];
    utc_now(now);
    /* out of memory, a field would be missing: no record rather than a bad one */
    bool ok = rec && !json_object_set_new(rec, "seq", json_integer((json_int_t)seq)) &&
              !json_object_set_new(rec, "time", json_string(now));
    const char *k;
    json_t *v;
    if (ok)
        json_object_foreach(body, k, v) ok = ok && !json_object_set(rec, k, v);
    ok = ok && !json_object_set_new(rec, "pid", json_integer((json_int_t)getpid())) &&
         !json_object_set_new(rec, "prev", json_string(a->last_hash));
    if (ok && is_checkpoint) {
        char msg[128], sig[129];
        snprintf(msg, sizeof(msg), "airlock-audit-checkpoint:%llu:%s", (unsigned long long)seq,
                 a->last_hash);
        if (!ed_sign(a->key, msg, sig)) {
            json_decref(rec);
            return al_err(err, AL_ERR_CRYPTO, "cannot sign an audit checkpoint");
        }
        ok = !json_object_set_new(rec, "key", json_string(a->pub_hex)) &&
             !json_object_set_new(rec, "sig", json_string(sig));
    }
    char *s = ok ? json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s) {
        /* jansson (2.14) drops the result of writing an object key while
         * dumping, so when memory runs out there it returns malformed JSON
         * ("type":"event",":"tester"): a record must read back as itself. */
        json_t *back = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
        if (!back || !json_equal(back, rec)) {
            free(s);
            s = NULL;
        }
        json_decref(back);
    }
    json_decref(rec);
    if (!s)
        return al_err(err, AL_ERR_NOMEM, "out of memory for an audit record");
    size_t n = strlen(s);
    if (n < 2 || n > MAX_LINE) {
        free(s);
        return al_err(err, AL_ERR_LIMIT, "audit record too large");
    }
    size_t plen = n - 1; /* without the closing '}' */
    char msg_r[96], rsig[129];
    record_msg(s, plen, msg_r);
    if (!ed_sign(a->key, msg_r, rsig)) {
        free(s);
        return al_err(err, AL_ERR_CRYPTO, "cannot sign an audit record");
    }
    size_t total = plen + RSIG_LEN + HASH_SUFFIX_LEN + 1;
    char *line = malloc(total);
    if (!line) {
        free(s);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    memcpy(line, s, plen);
    memcpy(line + plen, ",\"rsig\":\"", 9);
    memcpy(line + plen + 9, rsig, 128);
    line[plen + RSIG_LEN - 1] = '"';
    size_t hlen = plen + RSIG_LEN;
    char hash[65];
    al_sha256_hex(line, hlen, hash);
    memcpy(line + hlen, ",\"hash\":\"", 9);
    memcpy(line + hlen + 9, hash, 64);
    memcpy(line + hlen + 73, "\"}\n", 3);
    free(s);
    ok = write_all(a->fd, line, total);
    if (ok && a->mirror) {
        fwrite(line, 1, total, a->mirror);
        fflush(a->mirror);
    }
    free(line);
    if (!ok)
        return al_err(err, AL_ERR_IO, "%s: write failed: %s", a->log_path, strerror(errno));
    a->last_seq = seq;
    memcpy(a->last_hash, hash, 65);
    struct stat stt;
    a->cached_end = fstat(a->fd, &stt) == 0 ? stt.st_size : -1;
    a->unsynced++;
    if (sync_now || seq == 1 || a->unsynced >= AL_AUDIT_SYNC_EVERY ||
        mono_now() - a->last_sync > 1.0)
        return sync_and_head(a, err);
    return AL_OK;
}

/* Writes a checkpoint record and syncs it (head updated). Lock held. */
static al_status write_checkpoint(al_audit *a, al_error *err)
{
    json_t *c = own_body("checkpoint", "audit.checkpoint", NULL);
    if (!c)
        return al_err(err, AL_ERR_NOMEM, "out of memory for an audit checkpoint");
    al_status st = write_record(a, c, true, err);
    json_decref(c);
    return st;
}

/* fsync the log, then record the head (seq, hash, signature). Lock held. */
static al_status sync_and_head(al_audit *a, al_error *err)
{
    if (fsync(a->fd) != 0)
        return al_err(err, AL_ERR_IO, "%s: fsync failed: %s", a->log_path, strerror(errno));
    a->unsynced = 0;
    a->last_sync = mono_now();
    char msg[128], sig[129];
    snprintf(msg, sizeof(msg), "airlock-audit-head:%llu:%s", (unsigned long long)a->last_seq,
             a->last_hash);
    if (!ed_sign(a->key, msg, sig))
        return al_err(err, AL_ERR_CRYPTO, "cannot sign the audit head");
    char line[400];
    int n = snprintf(line, sizeof(line), "%llu %s %s\n", (unsigned long long)a->last_seq,
                     a->last_hash, sig);
    char tmpname[64];
    snprintf(tmpname, sizeof(tmpname), "audit.head.%d.tmp", (int)getpid());
    char *tmp = path_join(a->dir, tmpname);
    char *head = path_join(a->dir, "audit.head");
    al_status st = AL_OK;
    int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (fd < 0 || !head || !write_all(fd, line, (size_t)n) || rename(tmp, head) != 0)
        st = al_err(err, AL_ERR_IO, "%s: cannot write the audit head: %s", a->dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(tmp);
    free(head);
    if (!st && a->anchor_fd >= 0) {
        /* the second copy: rewritten in place (the sandbox may forbid
         * creating files next to it); a torn anchor is reported by verify */
        if (pwrite(a->anchor_fd, line, (size_t)n, 0) != n || ftruncate(a->anchor_fd, n) != 0 ||
            fdatasync(a->anchor_fd) != 0)
            st = al_err(err, AL_ERR_IO, "cannot write the audit anchor: %s", strerror(errno));
    }
    return st;
}

/* Brings the cached tail up to date with the file; cuts a torn last record
 * and audits the repair. Lock held. */
static al_status settle_tail(al_audit *a, al_error *err)
{
    struct stat stt;
    if (fstat(a->fd, &stt) != 0)
        return al_err(err, AL_ERR_IO, "%s: stat failed: %s", a->log_path, strerror(errno));
    off_t size = stt.st_size;
    if (size == a->cached_end)
        return AL_OK;
    if (size == 0) {
        a->last_seq = 0;
        memcpy(a->last_hash, k_zero_hash, 65);
        a->cached_end = 0;
        return AL_OK;
    }
    char last;
    if (pread(a->fd, &last, 1, size - 1) != 1)
        return al_err(err, AL_ERR_IO, "%s: read failed: %s", a->log_path, strerror(errno));
    off_t torn_bytes = 0;
    if (last != '\n') {
        /* torn write: cut back to just after the last '\n' */
        off_t pos = size;
        char buf[4096];
        off_t cut = 0;
        while (pos > 0) {
            size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
            if (pread(a->fd, buf, chunk, pos - (off_t)chunk) != (ssize_t)chunk)
                return al_err(err, AL_ERR_IO, "%s: read failed", a->log_path);
            size_t i = chunk;
            while (i > 0 && buf[i - 1] != '\n')
                i--;
            if (i > 0) {
                cut = pos - (off_t)chunk + (off_t)i;
                break;
            }
            pos -= (off_t)chunk;
        }
        torn_bytes = size - cut;
        if (ftruncate(a->fd, cut) != 0 || fsync(a->fd) != 0)
            return al_err(err, AL_ERR_IO, "%s: cannot cut a torn record: %s", a->log_path,
                          strerror(errno));
        size = cut;
    }
    if (size == 0) {
        a->last_seq = 0;
        memcpy(a->last_hash, k_zero_hash, 65);
    } else {
        off_t start;
        size_t len;
        char *line = read_last_line(a->fd, size, &start, &len);
        if (!line)
            return al_err(err, AL_ERR_IO, "%s: cannot read the last record", a->log_path);
        json_t *o;
        char hash[65];
        const char *rs;
        size_t sl;
        const char *prob = check_line(line, len, &o, hash, &rs, &sl);
        free(line);
        if (prob)
            return al_err(err, AL_ERR_CRYPTO,
                          "%s: the last record is damaged (%s); run 'airlock audit verify'",
                          a->log_path, prob);
        a->last_seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
        memcpy(a->last_hash, hash, 65);
        json_decref(o);
    }
    a->cached_end = size;
    if (torn_bytes > 0) {
        char detail[160];
        snprintf(detail, sizeof(detail),
                 "cut a torn record of %lld bytes after record %llu (interrupted write)",
                 (long long)torn_bytes, (unsigned long long)a->last_seq);
        json_t *b = own_body("repair", "audit.repair", detail);
        if (!b)
            return al_err(err, AL_ERR_NOMEM, "out of memory for an audit record");
        al_status st = write_record(a, b, true, err);
        json_decref(b);
        return st;
    }
    return AL_OK;
}

/* "SEQ HASH SIG\n" (audit.head and the anchor). */
static bool parse_head(const char *buf, unsigned long long *seq, char hash[80], char sig[160])
{
    return sscanf(buf, "%llu %79s %159s", seq, hash, sig) == 3 && strlen(hash) == 64 &&
           strlen(sig) == 128;
}

static bool head_sig_ok(const char *pub_hex, unsigned long long seq, const char *hash,
                        const char *sig)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "airlock-audit-head:%llu:%s", seq, hash);
    return ed_verify(pub_hex, msg, sig);
}

/* At open, with the tail settled: compares the log with its signed head
 * (and the anchor, if any). Anything wrong (the head deleted or replaced,
 * records cut off the end, unsigned records appended after the head, a
 * rollback below the anchor) is recorded as a signed "audit.tamper-found"
 * record, so that the next head written by this process cannot hide it.
 * Lock held. */
static al_status open_checks(al_audit *a, al_error *err)
{
    char *hpath = path_join(a->dir, "audit.head");
    if (!hpath)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    char buf[400];
    unsigned long long hseq = 0;
    char hhash[80], hsig[160];
    char *prob = a->open_problem;
    size_t cap = sizeof(a->open_problem);
    prob[0] = 0;
    bool have_head = read_small(hpath, buf, sizeof(buf));
    free(hpath);
    if (!have_head) {
        if (a->last_seq > 0)
            snprintf(prob, cap, "audit.head is missing while the log has %llu records (deleted)",
                     (unsigned long long)a->last_seq);
    } else if (!parse_head(buf, &hseq, hhash, hsig)) {
        snprintf(prob, cap, "audit.head is unreadable (overwritten)");
    } else if (!head_sig_ok(a->pub_hex, hseq, hhash, hsig)) {
        snprintf(prob, cap, "audit.head's signature does not verify with this log's key "
                 "(replaced)");
    } else if (hseq > a->last_seq) {
        snprintf(prob, cap, "audit.head says record %llu was written and synced but the log ends "
                 "at record %llu (records cut off the end)", hseq,
                 (unsigned long long)a->last_seq);
    } else if (hseq == a->last_seq && strcmp(hhash, a->last_hash) != 0) {
        snprintf(prob, cap, "record %llu differs from the one audit.head names (rewritten)", hseq);
    } else if (hseq < a->last_seq) {
        /* records after the head: a crash can leave some, but they must be
         * signed by this log's key */
        off_t start;
        size_t len;
        char *line = read_last_line(a->fd, a->cached_end, &start, &len);
        json_t *o = NULL;
        char h[65];
        const char *rs = NULL;
        size_t sl = 0;
        if (!line || check_line(line, len, &o, h, &rs, &sl) || !rs ||
            !record_sig_ok(a->pub_hex, line, sl, rs))
            snprintf(prob, cap, "records %llu..%llu after the signed head are not signed by this "
                     "log's key (appended without it)", hseq + 1,
                     (unsigned long long)a->last_seq);
        json_decref(o);
        free(line);
    }
    if (!prob[0] && a->anchor_fd >= 0) {
        ssize_t n = pread(a->anchor_fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            unsigned long long aseq;
            char ahash[80], asig[160];
            if (!parse_head(buf, &aseq, ahash, asig) || !head_sig_ok(a->pub_hex, aseq, ahash, asig))
                snprintf(prob, cap, "the audit anchor is unreadable or not signed by this log's "
                         "key");
            else if (aseq > a->last_seq)
                snprintf(prob, cap, "the audit anchor says record %llu was written but the log "
                         "ends at record %llu (rolled back)", aseq,
                         (unsigned long long)a->last_seq);
            else if (aseq == a->last_seq && strcmp(ahash, a->last_hash) != 0)
                snprintf(prob, cap, "record %llu differs from the one the audit anchor names "
                         "(rewritten)", aseq);
        }
    }
    if (!prob[0])
        return AL_OK;
    json_t *b = own_body("alert", "audit.tamper-found", prob);
    if (!b)
        return al_err(err, AL_ERR_NOMEM, "out of memory for an audit record");
    al_status st = write_record(a, b, true, err);
    json_decref(b);
    return st;
}

static al_status lock_log(al_audit *a, al_error *err)
{
    pthread_mutex_lock(&a->mu);
    while (flock(a->fd, LOCK_EX) != 0) {
        if (errno == EINTR)
            continue;
        pthread_mutex_unlock(&a->mu);
        return al_err(err, AL_ERR_IO, "%s: cannot lock: %s", a->log_path, strerror(errno));
    }
    return AL_OK;
}

static void unlock_log(al_audit *a)
{
    flock(a->fd, LOCK_UN);
    pthread_mutex_unlock(&a->mu);
}

/* ------------------------------------------------------------------- API */

al_status al_audit_open(const char *dir, al_audit **out, al_error *err)
{
    if (!dir || !out)
        return al_err(err, AL_ERR_ARG, "al_audit_open: NULL argument");
    *out = NULL;
    al_status st = al_fs_mkdirs(dir, 0750, err);
    if (st)
        return st;
    al_audit *a = calloc(1, sizeof(*a));
    if (!a)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    a->fd = -1;
    a->anchor_fd = -1;
    a->cached_end = -1;
    a->dir = strdup(dir);
    a->log_path = path_join(dir, "audit.log");
    a->last_sync = mono_now();
    if (!a->dir || !a->log_path) {
        al_audit_close(a);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    a->fd = open(a->log_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (a->fd < 0) {
        st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", a->log_path, strerror(errno));
        al_audit_close(a);
        return st;
    }
    st = lock_log(a, err);
    if (st) {
        al_audit_close(a);
        return st;
    }
    st = load_or_create_key(a, err);
    if (!st)
        st = settle_tail(a, err);
    const char *anchor = getenv("AIRLOCK_AUDIT_ANCHOR");
    if (!st && anchor && *anchor) {
        a->anchor_fd = open(anchor, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (a->anchor_fd < 0)
            st = al_err(err, AL_ERR_IO, "AIRLOCK_AUDIT_ANCHOR=%s: cannot open: %s", anchor,
                        strerror(errno));
    }
    if (!st)
        st = open_checks(a, err);
    unlock_log(a);
    if (st) {
        al_audit_close(a);
        return st;
    }
    *out = a;
    return AL_OK;
}

void al_audit_close(al_audit *a)
{
    if (!a)
        return;
    if (a->fd >= 0 && a->key) {
        if (lock_log(a, NULL) == AL_OK) {
            if (a->unsynced > 0 && settle_tail(a, NULL) == AL_OK)
                sync_and_head(a, NULL);
            unlock_log(a);
        }
    }
    if (a->fd >= 0)
        close(a->fd);
    if (a->anchor_fd >= 0)
        close(a->anchor_fd);
    EVP_PKEY_free(a->key);
    free(a->dir);
    free(a->log_path);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

const char *al_audit_open_problem(const al_audit *a)
{
    return a && a->open_problem[0] ? a->open_problem : NULL;
}

void al_audit_set_mirror(al_audit *a, FILE *f)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->mirror = f;
    pthread_mutex_unlock(&a->mu);
}

void al_audit_set_content(al_audit *a, al_audit_content mode)
{
    if (a)
        a->content = mode;
}

al_status al_audit_content_parse(const char *s, al_audit_content *out, al_error *err)
{
    if (s && !strcmp(s, "none"))
        *out = AL_AUDIT_CONTENT_NONE;
    else if (s && !strcmp(s, "digest"))
        *out = AL_AUDIT_CONTENT_DIGEST;
    else if (s && !strcmp(s, "full"))
        *out = AL_AUDIT_CONTENT_FULL;
    else
        return al_err(err, AL_ERR_ARG, "--audit-content: expected none, digest or full, not '%s'",
                      s ? s : "");
    return AL_OK;
}

/* These return false when out of memory (the field could not be set). */
static bool set_str(json_t *o, const char *k, const char *v)
{
    if (!v)
        return true;
    json_t *s = json_string(v);
    if (!s) /* not UTF-8: keep a digest rather than drop the field silently */
    {
        char h[65];
        al_sha256_hex(v, strlen(v), h);
        char key[64];
        snprintf(key, sizeof(key), "%s_sha256", k);
        return !json_object_set_new(o, key, json_string(h));
    }
    return !json_object_set_new(o, k, s);
}

static bool set_content(json_t *o, al_audit_content mode, const char *k, const char *text,
                        size_t len)
{
    if (!text || mode == AL_AUDIT_CONTENT_NONE)
        return true;
    char key[64];
    if (mode == AL_AUDIT_CONTENT_FULL) {
        json_t *s = json_stringn(text, len);
        if (s)
            return !json_object_set_new(o, k, s);
    }
    char h[65];
    al_sha256_hex(text, len, h);
    snprintf(key, sizeof(key), "%s_sha256", k);
    return !json_object_set_new(o, key, json_string(h));
}

al_status al_audit_append(al_audit *a, const al_audit_event *ev, al_error *err)
{
    if (!a || !ev)
        return al_err(err, AL_ERR_ARG, "al_audit_append: NULL argument");
    json_t *b = json_object();
    if (!b)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    bool ok = !json_object_set_new(b, "type", json_string("event"));
    ok = ok && set_str(b, "actor", ev->actor);
    ok = ok && set_str(b, "client", ev->client);
    ok = ok && set_str(b, "action", ev->action);
    ok = ok && set_str(b, "model", ev->model);
    ok = ok && set_str(b, "digest", ev->digest);
    if (ok && ev->prompt_tokens >= 0)
        ok = !json_object_set_new(b, "prompt_tokens", json_integer(ev->prompt_tokens));
    if (ok && ev->completion_tokens >= 0)
        ok = !json_object_set_new(b, "completion_tokens", json_integer(ev->completion_tokens));
    ok = ok && !json_object_set_new(b, "status", json_integer(ev->status));
    ok = ok && !json_object_set_new(b, "duration_ms", json_real(ev->duration_ms >= 0 ? ev->duration_ms : 0));
    ok = ok && set_str(b, "detail", ev->detail);
    ok = ok && set_content(b, a->content, "prompt", ev->prompt, ev->prompt_len);
    ok = ok && set_content(b, a->content, "completion", ev->completion, ev->completion_len);
    if (!ok) { /* a record missing a field would read as another event */
        json_decref(b);
        return al_err(err, AL_ERR_NOMEM, "out of memory for an audit record");
    }

    al_status st = lock_log(a, err);
    if (st) {
        json_decref(b);
        return st;
    }
    st = settle_tail(a, err);
    if (!st)
        st = write_record(a, b, false, err);
    unlock_log(a);
    json_decref(b);
    return st;
}

al_status al_audit_flush(al_audit *a, al_error *err)
{
    if (!a)
        return al_err(err, AL_ERR_ARG, "al_audit_flush: NULL");
    al_status st = lock_log(a, err);
    if (st)
        return st;
    st = settle_tail(a, err);
    if (!st)
        st = sync_and_head(a, err);
    unlock_log(a);
    return st;
}

al_status al_audit_checkpoint(al_audit *a, al_error *err)
{
    if (!a)
        return al_err(err, AL_ERR_ARG, "al_audit_checkpoint: NULL");
    al_status st = lock_log(a, err);
    if (st)
        return st;
    st = settle_tail(a, err);
    if (!st)
        st = write_checkpoint(a, err);
    unlock_log(a);
    return st;
}

/* ---------------------------------------------------------------- verify */

typedef struct line_reader {
    FILE *f;
    char *buf;
    size_t cap;
} line_reader;

/* Returns the line length (without '\n'), -1 at EOF, -2 for an unterminated
 * last line (its bytes are in buf anyway). */
static ssize_t next_line(line_reader *r)
{
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n <= 0)
        return -1;
    if (r->buf[n - 1] != '\n')
        return -2;
    r->buf[n - 1] = 0;
    return n - 1;
}

static al_status bad(al_audit_verify_result *res, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static al_status bad(al_audit_verify_result *res, uint64_t line, const char *fmt, ...)
{
    va_list ap;
    res->bad_line = line;
    va_start(ap, fmt);
    vsnprintf(res->problem, sizeof(res->problem), fmt, ap);
    va_end(ap);
    return AL_ERR_CRYPTO;
}

/* Reads a public key file (64 hex digits, optional newline) into out. */
static bool read_pub(const char *path, char out[65])
{
    char buf[160];
    if (!read_small(path, buf, sizeof(buf)))
        return false;
    buf[strcspn(buf, "\n \r")] = 0;
    unsigned char raw[32];
    if (!from_hex(buf, raw, 32))
        return false;
    memcpy(out, buf, 65);
    return true;
}

/* What al_audit_verify_opts carries from one record to the next. */
typedef struct audit_walk {
    const char *pub;                /* the audit key, 64 hex digits */
    bool from;                      /* a copy (--from): records may start past 1 */
    char prev[65];                  /* hash of the record before */
    uint64_t seq0;                  /* from: the first record's number - 1 */
    uint64_t last_unsigned;         /* number of the last record without a signature */
    bool have_head, want_anchor;
    unsigned long long head_seq, anchor_seq;
    char head_at_seq[65], anchor_at_seq[65]; /* hashes of the records they name */
} audit_walk;

/* Checks record line[0..n) (line number line_no) against the chain so far
 * and adds it to res. AL_ERR_CRYPTO with res->problem when it fails. */
static al_status walk_record(audit_walk *w, al_audit_verify_result *res, const char *line, size_t n,
                             uint64_t line_no)
{
    al_status st = AL_OK;
    json_t *o = NULL;
    char hash[65];
    const char *rs;
    size_t sl;
    const char *prob = check_line(line, n, &o, hash, &rs, &sl);
    if (prob) {
        st = bad(res, line_no, "line %llu: %s", (unsigned long long)line_no, prob);
        goto done;
    }
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
    const char *p = json_string_value(json_object_get(o, "prev"));
    if (w->from && res->n_records == 0 && seq > 0) {
        /* a copy starts where its writer started: take its first link */
        w->seq0 = seq - 1;
        snprintf(w->prev, sizeof(w->prev), "%s", p);
    }
    if (w->from && seq != w->seq0 + res->n_records + 1) {
        st = bad(res, line_no, "line %llu: record number %llu where %llu was expected "
                 "(records deleted, inserted or reordered)",
                 (unsigned long long)line_no, (unsigned long long)seq,
                 (unsigned long long)(w->seq0 + res->n_records + 1));
        goto done;
    }
    if (!w->from && seq != line_no) {
        st = bad(res, line_no, "line %llu: record number %llu where %llu was expected "
                 "(records deleted, inserted or reordered)",
                 (unsigned long long)line_no, (unsigned long long)seq,
                 (unsigned long long)line_no);
        goto done;
    }
    if (strcmp(p, w->prev) != 0) {
        st = bad(res, line_no, "line %llu: chain broken: the previous record's hash does not "
                 "match (a record before it was edited, deleted or reordered)",
                 (unsigned long long)line_no);
        goto done;
    }
    if (rs) {
        if (!record_sig_ok(w->pub, line, sl, rs)) {
            st = bad(res, line_no, "line %llu: the record's signature does not verify with "
                     "the audit key %.16s... (forged, edited, or signed with another key)",
                     (unsigned long long)line_no, w->pub);
            goto done;
        }
        res->n_signed++;
    } else {
        if (res->n_signed > 0) {
            st = bad(res, line_no, "line %llu: unsigned record after signed ones (added "
                     "without the audit key)", (unsigned long long)line_no);
            goto done;
        }
        res->n_legacy++;
        w->last_unsigned = seq;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    bool is_cp = type && !strcmp(type, "checkpoint");
    if (is_cp) {
        const char *key = json_string_value(json_object_get(o, "key"));
        const char *sig = json_string_value(json_object_get(o, "sig"));
        char msg[128];
        snprintf(msg, sizeof(msg), "airlock-audit-checkpoint:%llu:%s",
                 (unsigned long long)seq, w->prev);
        if (!key || !sig || strcmp(key, w->pub) != 0 || !ed_verify(key, msg, sig)) {
            st = bad(res, line_no, "line %llu: checkpoint signature does not verify with the "
                     "audit key", (unsigned long long)line_no);
            goto done;
        }
        res->n_checkpoints++;
    } else if (rs && seq % AL_AUDIT_CHECKPOINT_EVERY == 0) {
        st = bad(res, line_no, "line %llu: record %llu must be a signed checkpoint "
                 "(checkpoints removed)", (unsigned long long)line_no,
                 (unsigned long long)seq);
        goto done;
    }
    if (type && !strcmp(type, "alert")) {
        const char *d = json_string_value(json_object_get(o, "detail"));
        st = bad(res, line_no, "line %llu: a writer found the log tampered with when it "
                 "opened it: %s", (unsigned long long)line_no, d ? d : "?");
        goto done;
    }
    json_decref(o);
    o = NULL;
    memcpy(w->prev, hash, 65);
    if (w->have_head && seq == w->head_seq)
        memcpy(w->head_at_seq, hash, 65);
    if (w->want_anchor && seq == w->anchor_seq)
        memcpy(w->anchor_at_seq, hash, 65);
    res->n_records++;
done:
    json_decref(o);
    return st;
}

al_status al_audit_verify(const char *dir, al_audit_verify_result *res, al_error *err)
{
    return al_audit_verify_opts(dir, NULL, res, err);
}

/* After the last record: the log against audit.head (a store's log, not a
 * copy) and against the anchor, when one was given. */
static al_status check_ends(const audit_walk *w, al_audit_verify_result *res, bool head_file,
                            const char *head_hash, const char *head_sig, const char *anchor_path,
                            const char *anchor_hash)
{
    uint64_t n = res->n_records;
    if (!w->from && (n > 0 || head_file)) {
        if (!head_file)
            return bad(res, n + 1, "audit.head is missing (deleted?): it names the last synced "
                       "record and is required");
        if (!w->have_head)
            return bad(res, n + 1, "audit.head is unreadable");
        if (!head_sig_ok(w->pub, w->head_seq, head_hash, head_sig))
            return bad(res, n + 1, "audit.head: signature does not verify with the audit key");
        if (w->head_seq > n)
            return bad(res, n + 1, "truncated: the log ends after record %llu but "
                       "record %llu was written and synced (records cut off the end)",
                       (unsigned long long)n, w->head_seq);
        if (w->head_seq > 0 && strcmp(w->head_at_seq, head_hash) != 0)
            return bad(res, w->head_seq, "line %llu: record differs from the one that was synced",
                       w->head_seq);
        if (w->last_unsigned > w->head_seq)
            return bad(res, w->last_unsigned, "line %llu: unsigned record after the last synced head "
                       "(record %llu): not covered by any signature (added without the key)",
                       (unsigned long long)w->last_unsigned, w->head_seq);
        res->n_after_head = n - w->head_seq;
    }
    if (w->want_anchor) {
        if (w->anchor_seq > n)
            return bad(res, n + 1, "rolled back: the anchor %s says record %llu was written, the "
                       "log ends at record %llu", anchor_path, w->anchor_seq,
                       (unsigned long long)n);
        if (w->anchor_seq > 0 && strcmp(w->anchor_at_seq, anchor_hash) != 0)
            return bad(res, w->anchor_seq, "line %llu: record differs from the one the anchor %s "
                       "names (log rewritten)", w->anchor_seq, anchor_path);
        res->anchor_checked = true;
    }
    return AL_OK;
}

al_status al_audit_verify_opts(const char *dir, const al_audit_verify_options *opt,
                               al_audit_verify_result *res, al_error *err)
{
    if (!dir || !res)
        return al_err(err, AL_ERR_ARG, "al_audit_verify: NULL argument");
    memset(res, 0, sizeof(*res));
    const bool from = opt && opt->from_path;
    char *lpath = from ? strdup(opt->from_path) : path_join(dir, "audit.log");
    char *ppath = path_join(dir, "audit.pub");
    char *hpath = path_join(dir, "audit.head");
    al_status st = AL_OK;
    line_reader r = {0};
    if (!lpath || !ppath || !hpath) {
        st = al_err(err, AL_ERR_NOMEM, "out of memory");
        goto out;
    }
    char pub[65] = "", store_pub[65] = "";
    bool have_store_pub = read_pub(ppath, store_pub);
    if (opt && opt->pub_path) {
        if (!read_pub(opt->pub_path, pub)) {
            st = al_err(err, AL_ERR_ARG, "%s: not an audit public key (64 hex digits)",
                        opt->pub_path);
            goto out;
        }
    } else if (have_store_pub) {
        memcpy(pub, store_pub, 65);
        res->pub_from_store = true;
    } else if (access(lpath, F_OK) == 0) {
        st = al_err(err, AL_ERR_IO, "%s: missing, and no public key given (--pub FILE)", ppath);
        goto out;
    }
    if (from && opt->anchor_path) {
        st = al_err(err, AL_ERR_ARG, "--anchor checks a store's log, not a copy (--from)");
        goto out;
    }
    r.f = fopen(lpath, "re");
    if (!r.f) {
        st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", lpath, strerror(errno));
        goto out;
    }
    audit_walk w = {.pub = pub, .from = from};
    memcpy(w.prev, k_zero_hash, 65);
    uint64_t line_no = 0;
    char head_buf[400] = "";
    char head_hash[80] = "", head_sig[160] = "";
    bool head_file = !from && read_small(hpath, head_buf, sizeof(head_buf));
    w.have_head = head_file && parse_head(head_buf, &w.head_seq, head_hash, head_sig);
    char anchor_buf[400] = "";
    char anchor_hash[80] = "", anchor_sig[160] = "";
    w.want_anchor = opt && opt->anchor_path;
    if (w.want_anchor) {
        if (!read_small(opt->anchor_path, anchor_buf, sizeof(anchor_buf))) {
            st = al_err(err, AL_ERR_IO, "%s: cannot read the anchor: %s", opt->anchor_path,
                        strerror(errno));
            goto out;
        }
        if (!parse_head(anchor_buf, &w.anchor_seq, anchor_hash, anchor_sig)) {
            st = bad(res, 0, "%s: not an audit anchor (SEQ HASH SIGNATURE)", opt->anchor_path);
            goto out;
        }
        if (!head_sig_ok(pub, w.anchor_seq, anchor_hash, anchor_sig)) {
            st = bad(res, 0, "%s: the anchor's signature does not verify with the audit key",
                     opt->anchor_path);
            goto out;
        }
    }
    for (;;) {
        ssize_t n = next_line(&r);
        if (n == -1)
            break;
        line_no++;
        if (from && n == -2 && strncmp(r.buf, "{\"seq\":", 7))
            break; /* other output cut off at the end of the copy */
        if (n == -2) {
            st = bad(res, line_no, "line %llu: torn record (no end of line): the log was cut "
                     "mid-write; opening it for writing repairs it",
                     (unsigned long long)line_no);
            goto out;
        }
        if (from && (n < 7 || memcmp(r.buf, "{\"seq\":", 7))) /* not a record: other output */
            continue;
        if ((st = walk_record(&w, res, r.buf, (size_t)n, line_no)))
            goto out;
    }
    res->first_seq = res->n_records ? w.seq0 + 1 : 0;
    if ((st = check_ends(&w, res, head_file, head_hash, head_sig, opt ? opt->anchor_path : NULL,
                         anchor_hash)))
        goto out;
    if (!from && opt && opt->pub_path && (!have_store_pub || strcmp(store_pub, pub) != 0)) {
        st = bad(res, 0, "%s/audit.pub is not the key given with --pub (replaced or missing); "
                 "the records verify with --pub", dir);
        goto out;
    }
out:
    if (r.f)
        fclose(r.f);
    free(r.buf);
    free(lpath);
    free(ppath);
    free(hpath);
    if (st == AL_ERR_CRYPTO)
        al_err(err, AL_ERR_CRYPTO, "%s", res->problem);
    return st;
}

al_status al_audit_export(const char *dir, int64_t since_unix, int64_t until_unix, FILE *f,
                          al_error *err)
{
    if (!dir || !f)
        return al_err(err, AL_ERR_ARG, "al_audit_export: NULL argument");
    char *lpath = path_join(dir, "audit.log");
    if (!lpath)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    line_reader r = {0};
    r.f = fopen(lpath, "re");
    if (!r.f) {
        al_status st = al_err(err, AL_ERR_IO, "%s: cannot open: %s", lpath, strerror(errno));
        free(lpath);
        return st;
    }
    al_status st = AL_OK;
    for (;;) {
        ssize_t n = next_line(&r);
        if (n < 0)
            break;
        json_error_t je;
        json_t *o = json_loadb(r.buf, (size_t)n, 0, &je);
        if (!o)
            continue;
        int64_t t = parse_time(json_string_value(json_object_get(o, "time")));
        if ((since_unix && t < since_unix) || (until_unix && t >= until_unix)) {
            json_decref(o);
            continue;
        }
        json_object_del(o, "prev");
        json_object_del(o, "hash");
        json_object_del(o, "sig");
        json_object_del(o, "key");
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (s) {
            fputs(s, f);
            fputc('\n', f);
            free(s);
        }
    }
    if (ferror(f))
        st = al_err(err, AL_ERR_IO, "export: write failed");
    fclose(r.f);
    free(r.buf);
    free(lpath);
    return st;
}
