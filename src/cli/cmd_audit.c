/* cmd_audit.c - `airlock audit verify|export|tail` over STORE/audit. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/util.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: airlock audit verify [--pub FILE] [--anchor FILE] [--store DIR | --dir D]\n"
            "       airlock audit verify --from FILE --pub KEY\n"
            "       airlock audit anchor [-o FILE] [--store DIR | --dir D]\n"
            "       airlock audit export [--since T] [--until T] [-o FILE] [--store DIR | --dir D]\n"
            "       airlock audit tail [-n N] [-f] [--json] [--store DIR | --dir D]\n\n"
            "The log is STORE/audit/audit.log (hash-chained JSON lines, each signed with\n"
            "Ed25519). verify exits 0 when intact, 1 when a record was forged, edited,\n"
            "deleted, reordered, inserted or cut off (it says where), 2 on usage errors.\n"
            "--pub FILE: the log's public key kept outside the store (copy audit.pub once);\n"
            "without it verify trusts the store's own audit.pub and says so.\n"
            "--anchor FILE: a copy of audit.head kept elsewhere (audit anchor, or\n"
            "$AIRLOCK_AUDIT_ANCHOR for writers): a rollback of the whole store is found.\n"
            "--from FILE: verify a copy of the records instead of a store's log, e.g. what\n"
            "`serve --audit-stdout` wrote to a cluster's log pipeline (other lines are\n"
            "skipped; the chain is checked from the first record the copy holds).\n"
            "T: unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[Z] (UTC), or an age like 2h, 7d.\n"
            "Store: --store DIR, else $AIRLOCK_STORE, else ./var/airlock.\n");
}

/* Parses T (see usage) into unix seconds; false if malformed. */
static bool parse_when(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    char tail[8] = "";
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%7s", &y, &mo, &d, &h, &mi, &se, tail) >= 6 ||
        (sscanf(s, "%4d-%2d-%2d%7s", &y, &mo, &d, tail) == 3 && strlen(s) == 10)) {
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        *out = (int64_t)timegm(&tm);
        return true;
    }
    int64_t v;
    if (cli_parse_i64(s, 0, INT64_C(1) << 40, &v)) {
        *out = v;
        return true;
    }
    size_t n = strlen(s);
    if (n >= 2) {
        char num[32];
        if (n - 1 >= sizeof(num))
            return false;
        memcpy(num, s, n - 1);
        num[n - 1] = 0;
        int64_t mul = s[n - 1] == 'd' ? 86400 : s[n - 1] == 'h' ? 3600 : s[n - 1] == 'm' ? 60 : 0;
        if (mul && cli_parse_i64(num, 1, 100000, &v)) {
            *out = (int64_t)time(NULL) - v * mul;
            return true;
        }
    }
    return false;
}

static void print_human(const char *line, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    if (!o) {
        printf("(unparseable record) %.*s\n", (int)(len > 200 ? 200 : len), line);
        return;
    }
#define S(k) (json_string_value(json_object_get(o, k)) ? json_string_value(json_object_get(o, k)) : "-")
    printf("%6lld %s %-10s %-16s %-15s %-32s %-16s status=%lld",
           (long long)json_integer_value(json_object_get(o, "seq")), S("time"), S("type"),
           S("actor"), S("client"), S("action"), S("model"),
           (long long)json_integer_value(json_object_get(o, "status")));
    if (json_object_get(o, "duration_ms"))
        printf(" %.1fms", json_number_value(json_object_get(o, "duration_ms")));
    if (json_object_get(o, "prompt_tokens"))
        printf(" tokens=%lld/%lld", (long long)json_integer_value(json_object_get(o, "prompt_tokens")),
               (long long)json_integer_value(json_object_get(o, "completion_tokens")));
    if (json_string_value(json_object_get(o, "detail")))
        printf(" %s", S("detail"));
#undef S
    printf("\n");
    json_decref(o);
}

static int do_tail(const char *dir, int64_t n, bool follow, bool as_json)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    FILE *f = fopen(path, "re");
    if (!f) {
        cli_errorf("audit", "%s: %s", path, strerror(errno));
        return 1;
    }
    /* keep the offsets of the last n lines */
    long *ring = calloc((size_t)n, sizeof(long));
    if (!ring) {
        fclose(f);
        return 1;
    }
    int64_t count = 0;
    char *buf = NULL;
    size_t cap = 0;
    long off = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) > 0) {
        if (buf[len - 1] == '\n') {
            ring[count % n] = off;
            count++;
        }
        off += (long)len;
    }
    int64_t first = count > n ? count - n : 0;
    for (int64_t i = first; i < count; i++) {
        fseek(f, ring[i % n], SEEK_SET);
        len = getline(&buf, &cap, f);
        if (len <= 0)
            break;
        if (as_json)
            fwrite(buf, 1, (size_t)len, stdout);
        else
            print_human(buf, (size_t)len - 1);
    }
    free(ring);
    fflush(stdout);
    off = 0;
    fseek(f, 0, SEEK_END);
    off = ftell(f);
    while (follow) {
        usleep(500 * 1000);
        clearerr(f);
        fseek(f, off, SEEK_SET);
        while ((len = getline(&buf, &cap, f)) > 0 && buf[len - 1] == '\n') {
            off += (long)len;
            if (as_json)
                fwrite(buf, 1, (size_t)len, stdout);
            else
                print_human(buf, (size_t)len - 1);
        }
        fflush(stdout);
    }
    free(buf);
    fclose(f);
    return 0;
}

/* `audit verify`: the store's log in dir, or a copy of it (from), against
 * the key (pub, or the store's audit.pub) and the anchor, if given.
 * Exit status: 0 intact, 1 tampered or unreadable, 2 bad arguments. */
static int do_verify(const char *dir, const char *pub, const char *anchor, const char *from)
{
    al_error err = {0};
    al_audit_verify_result res;
    al_audit_verify_options opt = {pub, anchor, from};
    if (from && !pub) {
        cli_errorf("audit", "verify --from FILE needs the log's public key: --pub KEY");
        return 2;
    }
    al_status st = al_audit_verify_opts(dir, &opt, &res, &err);
    if (st == AL_OK && from) {
        printf("audit copy intact: %llu records (%llu to %llu), %llu signed checkpoints "
               "verified (%s)\n",
               (unsigned long long)res.n_records, (unsigned long long)res.first_seq,
               (unsigned long long)(res.first_seq + res.n_records - (res.n_records > 0)),
               (unsigned long long)res.n_checkpoints, from);
        if (res.first_seq > 1)
            printf("note: the copy starts at record %llu; the records before it are in the "
                   "store's own log\n", (unsigned long long)res.first_seq);
        return 0;
    }
    if (st == AL_OK) {
        printf("audit log intact: %llu records (%llu signed, %llu older unsigned), %llu signed "
               "checkpoints verified (%s/audit.log)\n",
               (unsigned long long)res.n_records, (unsigned long long)res.n_signed,
               (unsigned long long)res.n_legacy, (unsigned long long)res.n_checkpoints, dir);
        if (res.n_after_head)
            printf("note: the last %llu records were written after the last synced head (a "
                   "writer is running, or it stopped without closing the log)\n",
                   (unsigned long long)res.n_after_head);
        if (res.n_legacy)
            printf("note: %llu records were written by an older airlock without their own "
                   "signature; the signed records after them cover them by the chain\n",
                   (unsigned long long)res.n_legacy);
        if (res.anchor_checked)
            printf("anchor %s: matches\n", anchor);
        if (res.pub_from_store)
            fprintf(stderr, "warning: verified against the store's own audit.pub: whoever can "
                    "write the store can replace it and re-sign the log; keep a copy of "
                    "audit.pub elsewhere and pass --pub FILE\n");
        return 0;
    }
    if (st == AL_ERR_CRYPTO) {
        if (res.bad_line) {
            /* the problem often starts with "line N: " already */
            char pre[40];
            int pl = snprintf(pre, sizeof(pre), "line %llu: ", (unsigned long long)res.bad_line);
            const char *p = res.problem;
            if (pl > 0 && !strncmp(p, pre, (size_t)pl))
                p += pl;
            printf("audit log TAMPERED at line %llu: %s\n", (unsigned long long)res.bad_line, p);
        }
        else
            printf("audit log TAMPERED: %s\n", res.problem);
        printf("(%llu records before it verified)\n", (unsigned long long)res.n_records);
        return 1;
    }
    cli_errorf("audit", "%s", err.msg);
    return st == AL_ERR_ARG ? 2 : 1;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    const char *store = NULL, *dir = NULL, *out_path = NULL, *pub = NULL, *anchor = NULL, *from = NULL;
    int64_t since = 0, until = 0, n = 10;
    bool follow = false, as_json = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-f")) {
            follow = true;
            continue;
        }
        if (!strcmp(a, "--json")) {
            as_json = true;
            continue;
        }
        if (!v) {
            cli_errorf("audit", "unknown option or missing value: '%s'", a);
            return 2;
        }
        if (!strcmp(a, "--store"))
            store = v;
        else if (!strcmp(a, "--pub"))
            pub = v;
        else if (!strcmp(a, "--anchor"))
            anchor = v;
        else if (!strcmp(a, "--from"))
            from = v;
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "-o"))
            out_path = v;
        else if (!strcmp(a, "--since") || !strcmp(a, "--until")) {
            if (!parse_when(v, a[2] == 's' ? &since : &until)) {
                cli_errorf("audit", "%s: cannot read the time '%s'", a, v);
                return 2;
            }
        } else if (!strcmp(a, "-n")) {
            if (!cli_parse_i64(v, 1, 1000000, &n)) {
                cli_errorf("audit", "-n: expected 1..1000000");
                return 2;
            }
        } else {
            cli_errorf("audit", "unknown option '%s'", a);
            return 2;
        }
        i++;
    }
    char dbuf[4096];
    if (!dir) {
        if (!store)
            store = al_store_default_dir();
        snprintf(dbuf, sizeof(dbuf), "%s/audit", store);
        dir = dbuf;
    }
    al_error err = {0};
    if (!strcmp(sub, "verify"))
        return do_verify(dir, pub, anchor, from);
    if (!strcmp(sub, "anchor")) {
        char hp[4200], buf[512];
        snprintf(hp, sizeof(hp), "%s/audit.head", dir);
        FILE *h = fopen(hp, "re");
        size_t hn = h ? fread(buf, 1, sizeof(buf) - 1, h) : 0;
        if (h)
            fclose(h);
        if (!hn) {
            cli_errorf("audit", "%s: cannot read the head", hp);
            return 1;
        }
        buf[hn] = 0;
        FILE *f = out_path ? fopen(out_path, "we") : stdout;
        if (!f || fputs(buf, f) < 0 || (out_path && fclose(f) != 0)) {
            cli_errorf("audit", "%s: cannot write", out_path ? out_path : "stdout");
            return 1;
        }
        return 0;
    }
    if (!strcmp(sub, "export")) {
        FILE *f = out_path ? fopen(out_path, "we") : stdout;
        if (!f) {
            cli_errorf("audit", "%s: %s", out_path, strerror(errno));
            return 1;
        }
        al_status st = al_audit_export(dir, since, until, f, &err);
        if (out_path && fclose(f) != 0 && !st)
            st = AL_ERR_IO;
        if (st) {
            cli_errorf("audit", "%s", err.msg);
            return 1;
        }
        return 0;
    }
    if (!strcmp(sub, "tail"))
        return do_tail(dir, n, follow, as_json);
    cli_errorf("audit", "unknown action '%s' (verify, anchor, export, tail)", sub);
    return 2;
}
