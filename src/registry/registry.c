/* registry.c - OCI Distribution client over libcurl. See registry.h. */
#include "registry/registry.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "util/error.h"
#include "util/hash.h"

#define MAX_REDIRECTS 5
#define ERR_BODY_MAX 2048
#define TOKEN_MAX (64u << 10)
#define COPY_BUF_BYTES ((size_t)1 << 20)
#define CHUNK_RETRIES 3

struct al_reg {
    al_reg_ref ref;
    char base[600];        /* scheme://host */
    char ca[4096];
    char basic[1024];      /* base64(user:pass) or "" */
    char *auth_header;     /* "Authorization: ..." (malloc'd) or NULL */
    long connect_s, stall_s;
    CURL *curl;
};

/* ------------------------------------------------------------ references */

static bool repo_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
}

al_status al_reg_ref_parse(const char *s, al_reg_ref *out, al_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = s;
    if (!strncmp(p, "http://", 7)) {
        out->plain_http = true;
        p += 7;
    } else if (!strncmp(p, "https://", 8)) {
        p += 8;
    } else if (strstr(p, "://")) {
        return al_err(err, AL_ERR_ARG, "registry reference '%s': only http:// and https:// are supported", s);
    }
    const char *slash = strchr(p, '/');
    if (!slash || slash == p)
        return al_err(err, AL_ERR_ARG, "registry reference '%s' must be HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]", s);
    size_t hl = (size_t)(slash - p);
    if (hl >= sizeof(out->host))
        return al_err(err, AL_ERR_ARG, "registry reference '%s': host too long", s);
    for (size_t i = 0; i < hl; i++)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '-' || p[i] == ':' || p[i] == '[' ||
              p[i] == ']'))
            return al_err(err, AL_ERR_ARG, "registry reference '%s': bad character '%c' in the host", s, p[i]);
    memcpy(out->host, p, hl);
    const char *r = slash + 1;
    const char *at = strchr(r, '@');
    const char *end = r + strlen(r);
    if (at) {
        if (strncmp(at + 1, "sha256:", 7))
            return al_err(err, AL_ERR_ARG, "registry reference '%s': a digest must be @sha256:<64 hex>", s);
        const char *h = at + 8;
        if (strlen(h) != 64)
            return al_err(err, AL_ERR_ARG, "registry reference '%s': a digest must be @sha256:<64 hex>", s);
        for (int i = 0; i < 64; i++)
            if (!isxdigit((unsigned char)h[i]) || isupper((unsigned char)h[i]))
                return al_err(err, AL_ERR_ARG, "registry reference '%s': a digest must be @sha256:<64 lowercase hex>",
                              s);
        memcpy(out->digest, h, 65);
        end = at;
    } else {
        const char *colon = NULL;
        for (const char *q = r; q < end; q++)
            if (*q == ':')
                colon = q;
            else if (*q == '/')
                colon = NULL;
        if (colon) {
            size_t tl = (size_t)(end - colon - 1);
            if (tl == 0 || tl > 128)
                return al_err(err, AL_ERR_ARG, "registry reference '%s': a tag is 1..128 characters", s);
            for (size_t i = 0; i < tl; i++) {
                char c = colon[1 + i];
                if (!(isalnum((unsigned char)c) || c == '_' || (i > 0 && (c == '.' || c == '-'))))
                    return al_err(err, AL_ERR_ARG, "registry reference '%s': bad tag (OCI: [A-Za-z0-9_][A-Za-z0-9._-]*)",
                                  s);
            }
            memcpy(out->tag, colon + 1, tl);
            end = colon;
        }
    }
    size_t rl = (size_t)(end - r);
    if (rl == 0 || rl >= sizeof(out->repo))
        return al_err(err, AL_ERR_ARG, "registry reference '%s': the repository is empty or too long", s);
    for (size_t i = 0; i < rl; i++)
        if (!repo_char(r[i]))
            return al_err(err, AL_ERR_ARG, "registry reference '%s': bad character '%c' in the repository (lowercase "
                                           "letters, digits, . _ - /)", s, r[i]);
    if (r[0] == '/' || r[rl - 1] == '/' || strstr(r, "//") != NULL)
        return al_err(err, AL_ERR_ARG, "registry reference '%s': empty repository path component", s);
    memcpy(out->repo, r, rl);
    return AL_OK;
}

void al_reg_ref_format(const al_reg_ref *r, char *out, size_t cap)
{
    if (r->digest[0])
        snprintf(out, cap, "%s%s/%s@sha256:%s", r->plain_http ? "http://" : "", r->host, r->repo, r->digest);
    else
        snprintf(out, cap, "%s%s/%s%s%s", r->plain_http ? "http://" : "", r->host, r->repo, r->tag[0] ? ":" : "",
                 r->tag);
}

/* ------------------------------------------------------------ credentials */

/* Finds the auths entry for host in a docker config.json text: keys may be
 * "host", "https://host", "http://host" (with an optional path). */
static al_status load_auth(al_reg *r, const char *text, const char *label, al_error *err)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root)
        return al_err(err, AL_ERR_FORMAT, "%s: not JSON (line %d): %s", label, je.line, je.text);
    json_t *auths = json_object_get(root, "auths");
    al_status st = AL_OK;
    if (auths && !json_is_object(auths)) {
        st = al_err(err, AL_ERR_FORMAT, "%s: \"auths\" must be an object", label);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(auths, key, v)
    {
        const char *k = key;
        if (!strncmp(k, "https://", 8))
            k += 8;
        else if (!strncmp(k, "http://", 7))
            k += 7;
        size_t kl = strcspn(k, "/");
        if (kl != strlen(r->ref.host) || strncmp(k, r->ref.host, kl))
            continue;
        if (!json_is_object(v)) {
            st = al_err(err, AL_ERR_FORMAT, "%s: auths[\"%s\"] must be an object", label, key);
            goto done;
        }
        const char *a = json_string_value(json_object_get(v, "auth"));
        const char *u = json_string_value(json_object_get(v, "username"));
        const char *pw = json_string_value(json_object_get(v, "password"));
        if (a) {
            if (strlen(a) >= sizeof(r->basic)) {
                st = al_err(err, AL_ERR_FORMAT, "%s: auths[\"%s\"].auth is too long", label, key);
                goto done;
            }
            snprintf(r->basic, sizeof(r->basic), "%s", a);
        } else if (u && pw) {
            char up[700];
            int n = snprintf(up, sizeof(up), "%s:%s", u, pw);
            if (n < 0 || (size_t)n >= sizeof(up) || (size_t)(4 * ((n + 2) / 3)) >= sizeof(r->basic)) {
                st = al_err(err, AL_ERR_FORMAT, "%s: auths[\"%s\"]: username/password too long", label, key);
                goto done;
            }
            EVP_EncodeBlock((unsigned char *)r->basic, (const unsigned char *)up, n);
            OPENSSL_cleanse(up, sizeof(up));
        } else {
            st = al_err(err, AL_ERR_FORMAT, "%s: auths[\"%s\"] has neither \"auth\" nor username/password", label,
                        key);
            goto done;
        }
        break;
    }
done:
    json_decref(root);
    return st;
}

static al_status read_auth_file(al_reg *r, const char *path, al_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open the registry credentials: %s", path, strerror(errno));
    char *buf = malloc(1 << 20);
    size_t n = 0;
    ssize_t k;
    al_status st = buf ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    while (!st && (k = read(fd, buf + n, (1 << 20) - 1 - n)) > 0)
        n += (size_t)k;
    close(fd);
    if (!st && n >= (1 << 20) - 1)
        st = al_err(err, AL_ERR_LIMIT, "%s: credentials file over 1 MiB", path);
    if (!st) {
        buf[n] = 0;
        st = load_auth(r, buf, path, err);
        OPENSSL_cleanse(buf, n);
    }
    free(buf);
    return st;
}

/* ------------------------------------------------------------ open / close */

al_status al_reg_open(const al_reg_ref *ref, const al_reg_opts *opts, al_reg **out, al_error *err)
{
    *out = NULL;
    static bool inited;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return al_err(err, AL_ERR_IO, "libcurl failed to initialise");
        inited = true;
    }
    al_reg *r = calloc(1, sizeof(*r));
    if (!r)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    r->ref = *ref;
    snprintf(r->base, sizeof(r->base), "%s://%s", ref->plain_http ? "http" : "https", ref->host);
    if (opts && opts->ca_file) {
        if (access(opts->ca_file, R_OK) != 0) {
            al_reg_close(r);
            return al_err(err, AL_ERR_IO, "%s: cannot read the CA file: %s", opts->ca_file, strerror(errno));
        }
        snprintf(r->ca, sizeof(r->ca), "%s", opts->ca_file);
    }
    r->connect_s = opts && opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 15;
    r->stall_s = opts && opts->stall_timeout_s > 0 ? opts->stall_timeout_s : 0;
    if (!r->stall_s) {
        const char *e = getenv("AIRLOCK_REGISTRY_STALL_SECONDS");
        long v = e ? strtol(e, NULL, 10) : 0;
        r->stall_s = v > 0 ? v : 60;
    }
    al_status st = AL_OK;
    if (opts && opts->auth_file) {
        st = read_auth_file(r, opts->auth_file, err);
    } else {
        const char *e = getenv("AIRLOCK_REGISTRY_AUTH");
        if (e && *e) {
            /* a path to a config.json, or the JSON itself */
            st = e[0] == '{' ? load_auth(r, e, "$AIRLOCK_REGISTRY_AUTH", err) : read_auth_file(r, e, err);
        }
    }
    if (!st && !(r->curl = curl_easy_init()))
        st = al_err(err, AL_ERR_NOMEM, "libcurl: cannot create a handle");
    if (st) {
        al_reg_close(r);
        return st;
    }
    *out = r;
    return AL_OK;
}

void al_reg_close(al_reg *r)
{
    if (!r)
        return;
    if (r->curl)
        curl_easy_cleanup(r->curl);
    if (r->auth_header) {
        OPENSSL_cleanse(r->auth_header, strlen(r->auth_header));
        free(r->auth_header);
    }
    OPENSSL_cleanse(r->basic, sizeof(r->basic));
    free(r);
}

/* ------------------------------------------------------------ one request */

typedef struct req {
    const char *method;
    char url[4096];
    const char *accept;       /* Accept header or NULL */
    const char *content_type; /* Content-Type or NULL */
    const char *extra_header; /* e.g. "Range: bytes=N-" or NULL */
    /* request body: memory or a file range */
    const char *body;
    size_t body_n;
    int body_fd;
    uint64_t body_off, body_len, body_pos;
    bool has_body;
    /* response body: memory (limit) or a file descriptor (limit) */
    char *mem;
    size_t mem_n, mem_cap, mem_limit;
    int out_fd;
    al_sha256 *hash;
    uint64_t out_n, out_limit;
    bool over_limit, write_failed;
    char err_body[ERR_BODY_MAX + 1];
    size_t err_n;
    /* response */
    long status;
    char location[2048], docker_digest[128], www_auth[1024], content_range[128], range[128];
} req;

static void copy_header_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user)
{
    req *q = user;
    size_t n = size * nitems;
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } h[] = {
        {"location:", q->location, sizeof(q->location)},
        {"docker-content-digest:", q->docker_digest, sizeof(q->docker_digest)},
        {"www-authenticate:", q->www_auth, sizeof(q->www_auth)},
        {"content-range:", q->content_range, sizeof(q->content_range)},
        {"range:", q->range, sizeof(q->range)},
    };
    if (n > 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (after 100-continue...) */
        q->location[0] = q->docker_digest[0] = q->www_auth[0] = q->content_range[0] = q->range[0] = 0;
        return n;
    }
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        size_t l = strlen(h[i].name);
        if (n > l && !strncasecmp(buf, h[i].name, l)) {
            copy_header_value(h[i].dst, h[i].cap, buf + l, n - l);
            break;
        }
    }
    return n;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *user)
{
    req *q = user;
    size_t n = size * nmemb;
    if (q->status < 200 || q->status >= 300) {
        size_t k = n < ERR_BODY_MAX - q->err_n ? n : ERR_BODY_MAX - q->err_n;
        memcpy(q->err_body + q->err_n, buf, k);
        q->err_n += k;
        q->err_body[q->err_n] = 0;
        return n;
    }
    if (q->out_fd >= 0) {
        if (q->out_n + n > q->out_limit) {
            q->over_limit = true;
            return 0;
        }
        size_t done = 0;
        while (done < n) {
            ssize_t w = write(q->out_fd, buf + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                q->write_failed = true;
                return 0;
            }
            done += (size_t)w;
        }
        if (q->hash)
            al_sha256_update(q->hash, buf, n);
        q->out_n += n;
        return n;
    }
    if (q->mem_limit == 0)
        return n; /* body ignored */
    if (q->mem_n + n > q->mem_limit) {
        q->over_limit = true;
        return 0;
    }
    if (q->mem_n + n + 1 > q->mem_cap) {
        size_t cap = q->mem_cap ? q->mem_cap : 4096;
        while (cap < q->mem_n + n + 1)
            cap *= 2;
        if (cap > q->mem_limit + 1)
            cap = q->mem_limit + 1;
        char *m = realloc(q->mem, cap);
        if (!m) {
            q->write_failed = true;
            return 0;
        }
        q->mem = m;
        q->mem_cap = cap;
    }
    memcpy(q->mem + q->mem_n, buf, n);
    q->mem_n += n;
    q->mem[q->mem_n] = 0;
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *user)
{
    req *q = user;
    size_t cap = size * nitems;
    if (q->body) {
        size_t left = q->body_n - (size_t)q->body_pos;
        size_t k = left < cap ? left : cap;
        memcpy(buf, q->body + q->body_pos, k);
        q->body_pos += k;
        return k;
    }
    uint64_t left = q->body_len - q->body_pos;
    size_t k = left < cap ? (size_t)left : cap;
    if (k == 0)
        return 0;
    ssize_t r = pread(q->body_fd, buf, k, (off_t)(q->body_off + q->body_pos));
    if (r <= 0)
        return CURL_READFUNC_ABORT;
    q->body_pos += (uint64_t)r;
    return (size_t)r;
}

/* Status is known when the headers end: a header callback sees the status
 * line; we read it from curl after the first header line instead. */
static size_t on_header_status(char *buf, size_t size, size_t nitems, void *user)
{
    req *q = user;
    size_t n = on_header(buf, size, nitems, user);
    if (size * nitems > 9 && !strncmp(buf, "HTTP/", 5)) {
        const char *sp = memchr(buf, ' ', size * nitems);
        if (sp)
            q->status = strtol(sp + 1, NULL, 10);
    }
    return n;
}

/* Splits "host[:port]" off a URL for comparisons; false if it has none. */
static bool url_host(const char *url, char *host, size_t cap)
{
    CURLU *u = curl_url();
    char *h = NULL, *port = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
    if (ok) {
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        snprintf(host, cap, "%s:%s", h, port ? port : "");
    }
    curl_free(h);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* Resolves loc (absolute or relative) against base into out; refuses
 * another host or scheme than the registry's. */
static al_status resolve_same_host(al_reg *r, const char *base, const char *loc, char *out, size_t cap,
                                   const char *what, al_error *err)
{
    CURLU *u = curl_url();
    char *s = NULL;
    al_status st = AL_OK;
    if (!u || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, loc, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
        st = al_err(err, AL_ERR_FORMAT, "registry %s: %s location '%.200s' is not a URL", r->ref.host, what, loc);
    char h1[300], h2[300];
    if (!st && (!url_host(s, h1, sizeof(h1)) || !url_host(r->base, h2, sizeof(h2)) || strcmp(h1, h2) ||
                strncmp(s, r->base, strlen(r->ref.plain_http ? "http:" : "https:"))))
        st = al_err(err, AL_ERR_PERMISSION,
                    "registry %s: refused %s to another host or scheme (%.200s): credentials and trust stay with "
                    "the registry named",
                    r->ref.host, what, s);
    if (!st && strlen(s) >= cap)
        st = al_err(err, AL_ERR_LIMIT, "registry %s: %s location too long", r->ref.host, what);
    if (!st)
        snprintf(out, cap, "%s", s);
    curl_free(s);
    curl_url_cleanup(u);
    return st;
}

/* One HTTP exchange (no auth retry, no redirect following). */
static al_status exchange(al_reg *r, req *q, long timeout_s, al_error *err)
{
    CURL *c = r->curl;
    curl_easy_reset(c);
    struct curl_slist *hs = NULL;
    char line[1200];
    if (q->accept) {
        snprintf(line, sizeof(line), "Accept: %s", q->accept);
        hs = curl_slist_append(hs, line);
    }
    if (q->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", q->content_type);
        hs = curl_slist_append(hs, line);
    }
    if (q->extra_header)
        hs = curl_slist_append(hs, q->extra_header);
    if (r->auth_header)
        hs = curl_slist_append(hs, r->auth_header);
    hs = curl_slist_append(hs, "Expect:");
    q->status = 0;
    q->body_pos = 0;
    q->err_n = 0;
    q->err_body[0] = 0;
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "airlock/" AL_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, r->connect_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->stall_s);
    if (timeout_s)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    if (r->ca[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, r->ca);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header_status);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
    if (!strcmp(q->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(q->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        if (q->has_body) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, q);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                             (curl_off_t)(q->body ? q->body_n : q->body_len));
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hs);
    if (q->over_limit)
        return al_err(err, AL_ERR_LIMIT, "registry %s: the response to %s %s is larger than %llu bytes", r->ref.host,
                      q->method, q->url + strlen(r->base),
                      (unsigned long long)(q->out_fd >= 0 ? q->out_limit : q->mem_limit));
    if (q->write_failed)
        return al_err(err, AL_ERR_IO, "registry %s: cannot store the response to %s: %s", r->ref.host, q->method,
                      strerror(errno));
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT)
            return al_err(err, AL_ERR_IO, "registry %s: %s %s timed out (stalled: no data for %ld s)", r->ref.host,
                          q->method, q->url + strlen(r->base), r->stall_s);
        return al_err(err, AL_ERR_IO, "registry %s: %s %s failed: %s", r->ref.host, q->method,
                      q->url + strlen(r->base), curl_easy_strerror(rc));
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    q->status = code;
    return AL_OK;
}

/* Pulls a parameter value out of a WWW-Authenticate challenge. */
static bool challenge_param(const char *ch, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = ch;
    while ((p = strcasestr(p, name)) != NULL) {
        bool start = p == ch || p[-1] == ' ' || p[-1] == ',';
        if (start && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t n;
            if (*v == '"') {
                v++;
                const char *e = strchr(v, '"');
                if (!e)
                    return false;
                n = (size_t)(e - v);
            } else {
                n = strcspn(v, ", ");
            }
            if (n >= cap)
                return false;
            memcpy(out, v, n);
            out[n] = 0;
            return true;
        }
        p += nl;
    }
    return false;
}

static void set_auth(al_reg *r, const char *scheme, const char *cred)
{
    if (r->auth_header) {
        OPENSSL_cleanse(r->auth_header, strlen(r->auth_header));
        free(r->auth_header);
    }
    size_t n = strlen(scheme) + strlen(cred) + 32;
    r->auth_header = malloc(n);
    if (r->auth_header)
        snprintf(r->auth_header, n, "Authorization: %s %s", scheme, cred);
}

static char *url_escape(al_reg *r, const char *s)
{
    return curl_easy_escape(r->curl, s, 0);
}

/* Answers a 401 challenge: Basic with the configured credentials, or the
 * bearer-token flow (GET realm?service=&scope= with them). */
static al_status authenticate(al_reg *r, const char *challenge, al_error *err)
{
    if (!strncasecmp(challenge, "Basic", 5)) {
        if (!r->basic[0])
            return al_err(err, AL_ERR_PERMISSION,
                          "registry %s asks for credentials: give --auth-file FILE or $AIRLOCK_REGISTRY_AUTH "
                          "(docker config.json) with an entry for %s",
                          r->ref.host, r->ref.host);
        set_auth(r, "Basic", r->basic);
        return AL_OK;
    }
    if (strncasecmp(challenge, "Bearer", 6))
        return al_err(err, AL_ERR_UNSUPPORTED, "registry %s: unsupported auth challenge '%.40s'", r->ref.host,
                      challenge);
    char realm[1024] = "", service[256] = "", scope[512] = "";
    if (!challenge_param(challenge, "realm", realm, sizeof(realm)))
        return al_err(err, AL_ERR_FORMAT, "registry %s: bearer challenge without a realm", r->ref.host);
    challenge_param(challenge, "service", service, sizeof(service));
    challenge_param(challenge, "scope", scope, sizeof(scope));
    /* The token service must live on the registry's own host name (any
     * port) and scheme: credentials are not sent anywhere else. */
    char rh[300], bh[300];
    CURLU *u = curl_url();
    char *h1 = NULL, *h2 = NULL, *sch = NULL;
    bool same = u && curl_url_set(u, CURLUPART_URL, realm, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_HOST, &h1, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_SCHEME, &sch, 0) == CURLUE_OK &&
                curl_url_set(u, CURLUPART_URL, r->base, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_HOST, &h2, 0) == CURLUE_OK && !strcmp(h1, h2) &&
                (!strcmp(sch, "https") || r->ref.plain_http);
    snprintf(rh, sizeof(rh), "%s", h1 ? h1 : "?");
    snprintf(bh, sizeof(bh), "%s", h2 ? h2 : "?");
    curl_free(h1);
    curl_free(h2);
    curl_free(sch);
    curl_url_cleanup(u);
    if (!same)
        return al_err(err, AL_ERR_PERMISSION,
                      "registry %s: refused the auth challenge: its token realm '%.200s' is not on the registry's "
                      "host (%s) over %s",
                      r->ref.host, realm, bh, r->ref.plain_http ? "http(s)" : "https");
    (void)rh;
    req *q = calloc(1, sizeof(*q));
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    q->method = "GET";
    q->out_fd = -1;
    q->mem_limit = TOKEN_MAX;
    char *es = url_escape(r, service), *esc = url_escape(r, scope);
    snprintf(q->url, sizeof(q->url), "%s%s%s%s%s%s", realm, strchr(realm, '?') ? "&" : "?",
             service[0] ? "service=" : "", service[0] ? es : "", scope[0] ? (service[0] ? "&scope=" : "scope=") : "",
             scope[0] ? esc : "");
    curl_free(es);
    curl_free(esc);
    /* the token request carries Basic credentials when we have them */
    char *saved = r->auth_header;
    r->auth_header = NULL;
    if (r->basic[0])
        set_auth(r, "Basic", r->basic);
    size_t base_len = strlen(r->base);
    char real_base[600];
    snprintf(real_base, sizeof(real_base), "%s", r->base);
    /* messages print q->url + strlen(r->base): make that safe for the realm */
    if (strlen(q->url) < base_len)
        r->base[0] = 0;
    al_status st = exchange(r, q, 60, err);
    snprintf(r->base, sizeof(r->base), "%s", real_base);
    if (r->auth_header) {
        OPENSSL_cleanse(r->auth_header, strlen(r->auth_header));
        free(r->auth_header);
    }
    r->auth_header = saved;
    if (!st && q->status == 401)
        st = al_err(err, AL_ERR_PERMISSION, "registry %s: the token service refused the credentials (401)%s",
                    r->ref.host, r->basic[0] ? "" : ": none were given (--auth-file or $AIRLOCK_REGISTRY_AUTH)");
    else if (!st && q->status != 200)
        st = al_err(err, AL_ERR_PERMISSION, "registry %s: the token service answered HTTP %ld", r->ref.host,
                    q->status);
    json_t *j = NULL;
    if (!st) {
        j = q->mem ? json_loads(q->mem, 0, NULL) : NULL;
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (!tok)
            tok = json_string_value(json_object_get(j, "access_token"));
        if (!tok || !*tok || strpbrk(tok, "\r\n"))
            st = al_err(err, AL_ERR_FORMAT, "registry %s: the token service's answer holds no usable token",
                        r->ref.host);
        else
            set_auth(r, "Bearer", tok);
    }
    json_decref(j);
    if (q->mem)
        OPENSSL_cleanse(q->mem, q->mem_n);
    free(q->mem);
    free(q);
    return st;
}

/* A request with the auth retry (once per challenge) and, for GET/HEAD,
 * same-host redirects. */
static al_status request(al_reg *r, req *q, long timeout_s, al_error *err)
{
    bool authed = false;
    for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
        al_status st = exchange(r, q, timeout_s, err);
        if (st)
            return st;
        if (q->status == 401 && !authed) {
            authed = true;
            if (!q->www_auth[0])
                return al_err(err, AL_ERR_PERMISSION, "registry %s: 401 without a WWW-Authenticate challenge",
                              r->ref.host);
            if ((st = authenticate(r, q->www_auth, err)))
                return st;
            hop--;
            continue;
        }
        if (q->status == 401)
            return al_err(err, AL_ERR_PERMISSION, "registry %s: %s %s: access denied (401) with the credentials given",
                          r->ref.host, q->method, q->url + strlen(r->base));
        if ((q->status == 301 || q->status == 302 || q->status == 303 || q->status == 307 || q->status == 308) &&
            (!strcmp(q->method, "GET") || !strcmp(q->method, "HEAD"))) {
            char next[4096];
            if (!q->location[0])
                return al_err(err, AL_ERR_FORMAT, "registry %s: redirect without a Location", r->ref.host);
            if ((st = resolve_same_host(r, q->url, q->location, next, sizeof(next), "a redirect", err)))
                return st;
            snprintf(q->url, sizeof(q->url), "%s", next);
            continue;
        }
        return AL_OK;
    }
    return al_err(err, AL_ERR_LIMIT, "registry %s: more than %d redirects", r->ref.host, MAX_REDIRECTS);
}

static al_status http_error(al_reg *r, const req *q, const char *what, al_error *err)
{
    /* registries answer {"errors":[{"code":..,"message":..}]} */
    const char *msg = "";
    char buf[300] = "";
    json_t *j = q->err_n ? json_loads(q->err_body, 0, NULL) : NULL;
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    if (e0) {
        snprintf(buf, sizeof(buf), ": %s %s", json_string_value(json_object_get(e0, "code")) ?: "",
                 json_string_value(json_object_get(e0, "message")) ?: "");
        msg = buf;
    }
    json_decref(j);
    al_status st = q->status == 404 ? AL_ERR_NOT_FOUND : q->status == 403 ? AL_ERR_PERMISSION : AL_ERR_IO;
    return al_err(err, st, "registry %s: %s: HTTP %ld%s", r->ref.host, what, q->status, msg);
}

static void set_url(al_reg *r, req *q, const char *fmt, const char *arg)
{
    int n = snprintf(q->url, sizeof(q->url), "%s/v2/%s/", r->base, r->ref.repo);
    snprintf(q->url + n, sizeof(q->url) - (size_t)n, fmt, arg);
}

static req *new_req(const char *method)
{
    req *q = calloc(1, sizeof(*q));
    if (q) {
        q->method = method;
        q->out_fd = -1;
        q->body_fd = -1;
    }
    return q;
}

static void free_req(req *q)
{
    if (q) {
        free(q->mem);
        free(q);
    }
}

/* ------------------------------------------------------------ blobs: push */

al_status al_reg_blob_exists(al_reg *r, const char *hex, bool *exists, al_error *err)
{
    *exists = false;
    req *q = new_req("HEAD");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    set_url(r, q, "blobs/sha256:%s", hex);
    al_status st = request(r, q, 60, err);
    if (!st) {
        if (q->status == 200)
            *exists = true;
        else if (q->status != 404)
            st = http_error(r, q, "HEAD blob", err);
    }
    free_req(q);
    return st;
}

/* POST an upload session; *loc receives its absolute URL. */
static al_status start_upload(al_reg *r, char *loc, size_t cap, al_error *err)
{
    req *q = new_req("POST");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    set_url(r, q, "blobs/uploads/%s", "");
    al_status st = request(r, q, 60, err);
    if (!st && q->status != 202)
        st = http_error(r, q, "starting a blob upload", err);
    if (!st && !q->location[0])
        st = al_err(err, AL_ERR_FORMAT, "registry %s: upload started without a Location", r->ref.host);
    if (!st)
        st = resolve_same_host(r, q->url, q->location, loc, cap, "the upload", err);
    free_req(q);
    return st;
}

static al_status with_digest(al_reg *r, const char *loc, const char *hex, char *out, size_t cap, al_error *err)
{
    CURLU *u = curl_url();
    char *s = NULL, qd[100];
    snprintf(qd, sizeof(qd), "digest=sha256:%s", hex);
    al_status st = AL_OK;
    if (!u || curl_url_set(u, CURLUPART_URL, loc, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_QUERY, qd, CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK || strlen(s) >= cap)
        st = al_err(err, AL_ERR_FORMAT, "registry %s: cannot build the upload URL", r->ref.host);
    else
        snprintf(out, cap, "%s", s);
    curl_free(s);
    curl_url_cleanup(u);
    return st;
}

/* Asks an upload session how many bytes it holds (GET loc: Range 0-N). */
static al_status upload_offset(al_reg *r, const char *loc, uint64_t *off, al_error *err)
{
    req *q = new_req("GET");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    snprintf(q->url, sizeof(q->url), "%s", loc);
    al_status st = request(r, q, 60, err);
    if (!st && q->status != 204)
        st = http_error(r, q, "upload status", err);
    *off = 0;
    if (!st && q->range[0]) {
        const char *d = strchr(q->range, '-');
        if (d)
            *off = strtoull(d + 1, NULL, 10) + 1;
    }
    free_req(q);
    return st;
}

static al_status finish_upload(al_reg *r, req *q, const char *loc, const char *hex, al_error *err)
{
    al_status st = with_digest(r, loc, hex, q->url, sizeof(q->url), err);
    if (!st)
        st = request(r, q, 0, err);
    if (!st && q->status != 201) {
        if (q->status == 400 && strstr(q->err_body, "DIGEST_INVALID"))
            st = al_err(err, AL_ERR_CRYPTO, "registry %s: refused blob sha256:%.16s...: the bytes sent do not hash "
                                            "to it (the store's blob changed?)", r->ref.host, hex);
        else
            st = http_error(r, q, "completing a blob upload", err);
    }
    return st;
}

al_status al_reg_blob_push_mem(al_reg *r, const void *data, size_t n, const char *hex, al_error *err)
{
    bool have = false;
    al_status st = al_reg_blob_exists(r, hex, &have, err);
    if (st || have)
        return st;
    char loc[4096];
    if ((st = start_upload(r, loc, sizeof(loc), err)))
        return st;
    req *q = new_req("PUT");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    q->body = data;
    q->body_n = n;
    q->has_body = true;
    q->content_type = "application/octet-stream";
    st = finish_upload(r, q, loc, hex, err);
    free_req(q);
    return st;
}

al_status al_reg_blob_push_file(al_reg *r, const char *path, uint64_t size, const char *hex, uint64_t chunk_bytes,
                                bool *skipped, al_error *err)
{
    bool have = false;
    *skipped = false;
    al_status st = al_reg_blob_exists(r, hex, &have, err);
    if (st)
        return st;
    if (have) {
        *skipped = true;
        return AL_OK;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char loc[4096];
    req *q = new_req("PUT");
    if (!q) {
        close(fd);
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    }
    if ((st = start_upload(r, loc, sizeof(loc), err)))
        goto done;
    q->body_fd = fd;
    q->has_body = true;
    q->content_type = "application/octet-stream";
    if (chunk_bytes == 0 || chunk_bytes >= size) {
        q->body_off = 0;
        q->body_len = size;
        st = finish_upload(r, q, loc, hex, err);
        goto done;
    }
    uint64_t off = 0;
    int retries = 0;
    char range[100];
    while (off < size) {
        uint64_t len = size - off < chunk_bytes ? size - off : chunk_bytes;
        req *p = new_req("PATCH");
        if (!p) {
            st = al_err(err, AL_ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(p->url, sizeof(p->url), "%s", loc);
        p->body_fd = fd;
        p->body_off = off;
        p->body_len = len;
        p->has_body = true;
        p->content_type = "application/octet-stream";
        snprintf(range, sizeof(range), "Content-Range: %llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1));
        p->extra_header = range;
        st = request(r, p, 0, err);
        if (!st && p->status != 202)
            st = http_error(r, p, "uploading a chunk", err);
        if (!st && p->location[0])
            st = resolve_same_host(r, p->url, p->location, loc, sizeof(loc), "the upload", err);
        free_req(p);
        if (st) {
            /* a cut connection: ask the session where it stands, go on from there */
            uint64_t at = 0;
            al_error e2 = {0};
            if (++retries > CHUNK_RETRIES || upload_offset(r, loc, &at, &e2) || at > size)
                goto done;
            off = at;
            st = AL_OK;
            continue;
        }
        off += len;
    }
    q->body_off = 0;
    q->body_len = 0;
    q->has_body = true;
    st = finish_upload(r, q, loc, hex, err);
done:
    free_req(q);
    close(fd);
    return st;
}

/* ------------------------------------------------------------ manifests */

al_status al_reg_manifest_put(al_reg *r, const char *reference, const char *body, size_t n, char *hex_out,
                              al_error *err)
{
    req *q = new_req("PUT");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    set_url(r, q, "manifests/%s", reference);
    q->body = body;
    q->body_n = n;
    q->has_body = true;
    q->content_type = AL_REG_OCI_MANIFEST;
    al_status st = request(r, q, 120, err);
    if (!st && q->status != 201)
        st = http_error(r, q, "PUT manifest", err);
    char mine[65];
    al_sha256_hex(body, n, mine);
    if (!st && q->docker_digest[0] && strcmp(q->docker_digest + (strncmp(q->docker_digest, "sha256:", 7) ? 0 : 7), mine))
        st = al_err(err, AL_ERR_CRYPTO, "registry %s: stored the manifest under digest %s, expected sha256:%s",
                    r->ref.host, q->docker_digest, mine);
    if (!st)
        memcpy(hex_out, mine, 65);
    free_req(q);
    return st;
}

al_status al_reg_manifest_get(al_reg *r, const char *reference, char **body, size_t *n, char *hex_out,
                              al_error *err)
{
    *body = NULL;
    *n = 0;
    req *q = new_req("GET");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    set_url(r, q, "manifests/%s", reference);
    q->accept = AL_REG_OCI_MANIFEST;
    q->mem_limit = AL_REG_MANIFEST_MAX;
    al_status st = request(r, q, 120, err);
    if (st && st == AL_ERR_LIMIT)
        st = al_err(err, AL_ERR_LIMIT, "registry %s: the manifest of %s is over the %zu-byte limit: refused",
                    r->ref.host, reference, AL_REG_MANIFEST_MAX);
    if (!st && q->status != 200)
        st = http_error(r, q, "GET manifest", err);
    if (!st && !q->mem)
        st = al_err(err, AL_ERR_FORMAT, "registry %s: empty manifest for %s", r->ref.host, reference);
    char h[65] = "";
    if (!st) {
        al_sha256_hex(q->mem, q->mem_n, h);
        if (!strncmp(reference, "sha256:", 7) && strcmp(reference + 7, h))
            st = al_err(err, AL_ERR_CRYPTO, "registry %s: the manifest sent for %s hashes to sha256:%s: refused",
                        r->ref.host, reference, h);
        else if (q->docker_digest[0] &&
                 strcmp(q->docker_digest + (strncmp(q->docker_digest, "sha256:", 7) ? 0 : 7), h))
            st = al_err(err, AL_ERR_CRYPTO,
                        "registry %s: the manifest for %s hashes to sha256:%s but the registry announced %s: refused",
                        r->ref.host, reference, h, q->docker_digest);
    }
    if (!st) {
        *body = q->mem;
        *n = q->mem_n;
        q->mem = NULL;
        memcpy(hex_out, h, 65);
    }
    free_req(q);
    return st;
}

/* ------------------------------------------------------------ blobs: pull */

al_status al_reg_blob_get_mem(al_reg *r, const char *hex, uint64_t size, size_t cap, char **out, al_error *err)
{
    *out = NULL;
    if (size > cap)
        return al_err(err, AL_ERR_LIMIT, "registry %s: blob sha256:%.16s... announces %llu bytes, over %zu",
                      r->ref.host, hex, (unsigned long long)size, cap);
    req *q = new_req("GET");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    set_url(r, q, "blobs/sha256:%s", hex);
    q->mem_limit = size ? (size_t)size : 1;
    al_status st = request(r, q, 120, err);
    if (st == AL_ERR_LIMIT)
        st = al_err(err, AL_ERR_LIMIT, "registry %s: blob sha256:%.16s... is larger than the %llu bytes announced: "
                                       "refused", r->ref.host, hex, (unsigned long long)size);
    if (!st && q->status != 200)
        st = http_error(r, q, "GET blob", err);
    if (!st && q->mem_n != size)
        st = al_err(err, AL_ERR_FORMAT, "registry %s: blob sha256:%.16s... is %zu bytes, %llu were announced",
                    r->ref.host, hex, q->mem_n, (unsigned long long)size);
    if (!st) {
        char h[65];
        al_sha256_hex(q->mem ? q->mem : "", q->mem_n, h);
        if (strcmp(h, hex))
            st = al_err(err, AL_ERR_CRYPTO, "registry %s: blob sha256:%.16s... was sent with bytes that hash to "
                                            "sha256:%.16s...: refused", r->ref.host, hex, h);
    }
    if (!st) {
        if (!q->mem)
            q->mem = calloc(1, 1);
        *out = q->mem;
        q->mem = NULL;
    }
    free_req(q);
    return st;
}

al_status al_reg_blob_get_file(al_reg *r, const char *hex, uint64_t size, const char *part_path,
                               uint64_t *resumed_from, al_error *err)
{
    *resumed_from = 0;
    int fd = open(part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return al_err(err, AL_ERR_IO, "%s: cannot open: %s", part_path, strerror(errno));
    al_sha256 *h = al_sha256_begin();
    unsigned char *buf = malloc(COPY_BUF_BYTES);
    req *q = new_req("GET");
    al_status st = h && buf && q ? AL_OK : al_err(err, AL_ERR_NOMEM, "out of memory");
    struct stat sb;
    uint64_t have = 0;
    if (!st && fstat(fd, &sb) != 0)
        st = al_err(err, AL_ERR_IO, "%s: stat: %s", part_path, strerror(errno));
    if (!st) {
        have = (uint64_t)sb.st_size;
        if (have > size) { /* not ours to resume */
            if (ftruncate(fd, 0) != 0)
                st = al_err(err, AL_ERR_IO, "%s: truncate: %s", part_path, strerror(errno));
            have = 0;
        }
    }
    /* re-hash what a cut download left */
    uint64_t done = 0;
    while (!st && done < have) {
        size_t want = have - done < COPY_BUF_BYTES ? (size_t)(have - done) : COPY_BUF_BYTES;
        ssize_t k = pread(fd, buf, want, (off_t)done);
        if (k <= 0) {
            st = al_err(err, AL_ERR_IO, "%s: read: %s", part_path, k < 0 ? strerror(errno) : "short");
            break;
        }
        al_sha256_update(h, buf, (size_t)k);
        done += (uint64_t)k;
    }
    char range[80];
    if (!st && have < size) {
        set_url(r, q, "blobs/sha256:%s", hex);
        if (have) {
            snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)have);
            q->extra_header = range;
        }
        if (lseek(fd, (off_t)have, SEEK_SET) < 0)
            st = al_err(err, AL_ERR_IO, "%s: seek: %s", part_path, strerror(errno));
        q->out_fd = fd;
        q->hash = h;
        q->out_limit = size - have;
        if (!st)
            st = request(r, q, 0, err);
        if (!st && q->status == 200 && have) {
            /* the registry ignored the Range: start again from byte 0 */
            al_sha256_free(h);
            h = al_sha256_begin();
            have = 0;
            if (!h || ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
                st = al_err(err, AL_ERR_IO, "%s: cannot restart the download", part_path);
            } else {
                q->hash = h;
                q->extra_header = NULL;
                q->out_n = 0;
                q->out_limit = size;
                st = request(r, q, 0, err);
            }
        }
        if (st == AL_ERR_LIMIT)
            st = al_err(err, AL_ERR_LIMIT, "registry %s: blob sha256:%.16s... is larger than the %llu bytes "
                                           "announced: refused", r->ref.host, hex, (unsigned long long)size);
        if (!st && q->status != 200 && q->status != 206)
            st = http_error(r, q, "GET blob", err);
        if (!st && q->status == 206 && strncmp(q->content_range, "bytes ", 6) == 0 &&
            strtoull(q->content_range + 6, NULL, 10) != have)
            st = al_err(err, AL_ERR_FORMAT, "registry %s: asked for bytes from %llu, got '%s'", r->ref.host,
                        (unsigned long long)have, q->content_range);
        if (!st && have + q->out_n != size)
            st = al_err(err, AL_ERR_IO,
                        "registry %s: blob sha256:%.16s... ended at %llu of %llu bytes (run the same pull again to "
                        "resume)",
                        r->ref.host, hex, (unsigned long long)(have + q->out_n), (unsigned long long)size);
        *resumed_from = have;
    }
    if (!st) {
        char got[65];
        if (!al_sha256_end(h, got))
            st = al_err(err, AL_ERR_CRYPTO, "sha256 failed");
        h = NULL;
        if (!st && strcmp(got, hex)) {
            st = al_err(err, AL_ERR_CRYPTO,
                        "registry %s: blob sha256:%.16s... arrived with bytes that hash to sha256:%.16s...: refused "
                        "(the registry's copy is corrupt or swapped)",
                        r->ref.host, hex, got);
            unlink(part_path);
        }
    } else if (st == AL_ERR_LIMIT || st == AL_ERR_FORMAT) {
        unlink(part_path); /* not resumable: the bytes cannot be trusted */
    }
    if (!st && fsync(fd) != 0)
        st = al_err(err, AL_ERR_IO, "%s: fsync: %s", part_path, strerror(errno));
    al_sha256_free(h);
    free(buf);
    free_req(q);
    close(fd);
    return st;
}

/* ------------------------------------------------------------ tags */

void al_reg_tags_free(char **tags, size_t n)
{
    for (size_t i = 0; tags && i < n; i++)
        free(tags[i]);
    free(tags);
}

al_status al_reg_tags_list(al_reg *r, char ***tags, size_t *n, al_error *err)
{
    *tags = NULL;
    *n = 0;
    req *q = new_req("GET");
    if (!q)
        return al_err(err, AL_ERR_NOMEM, "out of memory");
    set_url(r, q, "tags/list%s", "");
    q->mem_limit = AL_REG_MANIFEST_MAX;
    al_status st = request(r, q, 120, err);
    if (!st && q->status != 200)
        st = http_error(r, q, "GET tags/list", err);
    json_t *j = NULL;
    if (!st) {
        j = q->mem ? json_loads(q->mem, 0, NULL) : NULL;
        json_t *a = json_object_get(j, "tags");
        if (!j || (a && !json_is_array(a) && !json_is_null(a)))
            st = al_err(err, AL_ERR_FORMAT, "registry %s: tags/list is not {\"tags\": [...]}", r->ref.host);
        size_t m = json_is_array(a) ? json_array_size(a) : 0;
        if (!st && m) {
            *tags = calloc(m, sizeof(char *));
            if (!*tags)
                st = al_err(err, AL_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; !st && i < m; i++) {
            const char *t = json_string_value(json_array_get(a, i));
            if (t && (*tags)[*n] == NULL && ((*tags)[*n] = strdup(t)))
                (*n)++;
        }
    }
    json_decref(j);
    free_req(q);
    return st;
}
