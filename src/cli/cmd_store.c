/* cmd_store.c - the airlock subcommands: keygen, bundle, trust, import,
 * approve, reject, policy, list, show, rm, gc, verify, export. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"
#include "scan/scan.h"
#include "store/bundle.h"
#include "store/sign.h"
#include "store/store.h"

#define MAX_POS 32

/* Options every store command understands, plus the command's own. */
typedef struct args {
    const char *store, *by, *name, *tag, *license, *source, *sign, *out, *models, *reason, *state, *key;
    const char *pos[MAX_POS];
    int n_pos;
    bool help;
} args;

static const char k_store_help[] =
    "  --store DIR      the store (default: $AIRLOCK_STORE, else ./var/airlock)\n";

/* Parses argv[1..]; returns false (after printing why) on a usage error. */
static bool parse_args(const char *cmd, int argc, char **argv, args *a)
{
    memset(a, 0, sizeof(*a));
    struct {
        const char *flag;
        const char **dst;
    } opts[] = {
        {"--store", &a->store},   {"--by", &a->by},         {"--name", &a->name},     {"--tag", &a->tag},
        {"--license", &a->license}, {"--source", &a->source}, {"--sign", &a->sign},   {"-o", &a->out},
        {"--out", &a->out},       {"--models", &a->models}, {"--reason", &a->reason}, {"--state", &a->state},
        {"--key", &a->key},
    };
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            a->help = true;
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
            size_t fl = strlen(opts[k].flag);
            if (!strcmp(s, opts[k].flag)) {
                if (i + 1 >= argc) {
                    cli_errorf(cmd, "%s needs a value", s);
                    return false;
                }
                *opts[k].dst = argv[++i];
                matched = true;
            } else if (!strncmp(s, opts[k].flag, fl) && s[fl] == '=' && opts[k].flag[1] == '-') {
                *opts[k].dst = s + fl + 1;
                matched = true;
            }
            if (matched)
                break;
        }
        if (matched)
            continue;
        if (s[0] == '-' && s[1]) {
            cli_errorf(cmd, "unknown option '%s' (see airlock %s --help)", s, cmd);
            return false;
        }
        if (a->n_pos >= MAX_POS) {
            cli_errorf(cmd, "too many arguments");
            return false;
        }
        a->pos[a->n_pos++] = s;
    }
    if (!a->store)
        a->store = al_store_default_dir();
    return true;
}

static al_store *open_store(const char *cmd, const args *a)
{
    al_error err = {0};
    al_store *s = NULL;
    if (al_store_open(a->store, &s, &err)) {
        cli_errorf(cmd, "%s", err.msg);
        return NULL;
    }
    return s;
}

static const char *actor(const args *a)
{
    return a->by ? a->by : al_store_default_actor();
}

static int usage(const char *cmd, bool help, const char *text)
{
    fprintf(help ? stdout : stderr, "%s", text);
    fprintf(help ? stdout : stderr, "%s", k_store_help);
    (void)cmd;
    return help ? 0 : 2;
}

/* ------------------------------------------------------------ keygen */

int cmd_keygen(int argc, char **argv)
{
    static const char h[] = "usage: airlock keygen --name NAME --out DIR\n\n"
                            "Makes an Ed25519 signing key pair: DIR/NAME.pem (private, mode 0600) and\n"
                            "DIR/NAME.pub.pem (public; give it to the enclave's `airlock trust add`).\n"
                            "Both are PEM files that `openssl pkey` reads. Existing files are never\n"
                            "overwritten.\n";
    args a;
    if (!parse_args("keygen", argc, argv, &a))
        return 2;
    if (a.help || !a.name || !a.out || a.n_pos)
        return usage("keygen", a.help, h);
    if (!al_bundle_valid_tag(a.name)) {
        cli_errorf("keygen", "key name '%s' is not valid ([A-Za-z0-9][A-Za-z0-9._-]{0,63})", a.name);
        return 2;
    }
    char priv[4096], pub[4096], kid[65];
    al_error err = {0};
    if (al_sign_keygen(a.out, a.name, priv, pub, sizeof(priv), kid, &err)) {
        cli_errorf("keygen", "%s", err.msg);
        return 1;
    }
    printf("private key: %s (keep it on the connected side)\npublic key:  %s\nkey id:      %s\n", priv, pub, kid);
    return 0;
}

/* ------------------------------------------------------------ bundle */

int cmd_bundle(int argc, char **argv)
{
    static const char h[] =
        "usage: airlock bundle MODEL.gguf [MORE FILES] --name NAME --tag TAG [--license FILE]\n"
        "                      [--source TEXT] --sign KEY.pem -o OUT.airlock\n\n"
        "Writes one signed bundle (a POSIX tar): manifest.json (name, tag, creation time,\n"
        "provenance, and every file's size and sha256), manifest.sig (Ed25519 over the\n"
        "manifest's exact bytes) and the files. MORE FILES may be GGUF files or UTF-8\n"
        "text; the enclave's scanner refuses anything else.\n";
    args a;
    if (!parse_args("bundle", argc, argv, &a))
        return 2;
    if (a.help || !a.name || !a.tag || !a.sign || !a.out || a.n_pos < 1)
        return a.help ? usage("bundle", true, h) : (fprintf(stderr, "%s", h), 2);
    al_bundle_input in[AL_BUNDLE_MAX_FILES];
    size_t n = 0;
    if ((size_t)a.n_pos + (a.license ? 1 : 0) > AL_BUNDLE_MAX_FILES) {
        cli_errorf("bundle", "at most %d files in a bundle", AL_BUNDLE_MAX_FILES);
        return 2;
    }
    for (int i = 0; i < a.n_pos; i++)
        in[n++] = (al_bundle_input){a.pos[i], i == 0 ? "model" : "file"};
    if (a.license)
        in[n++] = (al_bundle_input){a.license, "license"};
    al_bundle_spec spec = {a.name, a.tag, a.source, a.sign, in, n};
    al_error err = {0};
    char mh[65];
    if (al_bundle_create(&spec, a.out, mh, &err)) {
        cli_errorf("bundle", "%s", err.msg);
        return 1;
    }
    printf("bundle:   %s\nmodel:    %s:%s (%zu files)\nmanifest: sha256:%s\n", a.out, a.name, a.tag, n, mh);
    return 0;
}

/* ------------------------------------------------------------ trust */

int cmd_trust(int argc, char **argv)
{
    static const char h[] = "usage: airlock trust add PUBKEY.pem --name NAME [--models GLOB]\n"
                            "       airlock trust list\n"
                            "       airlock trust rm NAME\n\n"
                            "Pins a publisher's Ed25519 public key and what it may sign: model names\n"
                            "matching GLOB (fnmatch, e.g. 'qwen*'; default '*'). Imports verify the\n"
                            "bundle's signature against these keys before reading anything else.\n";
    args a;
    if (!parse_args("trust", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos < 1)
        return usage("trust", a.help, h);
    const char *sub = a.pos[0];
    al_error err = {0};
    if (!strcmp(sub, "add")) {
        if (a.n_pos != 2 || !a.name)
            return usage("trust", false, h);
        al_store *s = open_store("trust", &a);
        if (!s)
            return 1;
        int rc = 0;
        if (al_store_trust_add(s, a.pos[1], a.name, a.models, actor(&a), &err)) {
            cli_errorf("trust", "%s", err.msg);
            rc = 1;
        } else {
            printf("trusted key '%s' for models '%s'\n", a.name, a.models ? a.models : "*");
        }
        al_store_close(s);
        return rc;
    }
    if (!strcmp(sub, "list")) {
        if (a.n_pos != 1)
            return usage("trust", false, h);
        al_store *s = open_store("trust", &a);
        if (!s)
            return 1;
        al_trust_key *k = NULL;
        size_t n = 0;
        int rc = 0;
        if (al_store_trust_list(s, &k, &n, &err)) {
            cli_errorf("trust", "%s", err.msg);
            rc = 1;
        } else {
            printf("%-20s %-18s %-20s %s\n", "NAME", "KEY ID", "MODELS", "ADDED");
            for (size_t i = 0; i < n; i++)
                printf("%-20s %.16s.. %-20s %s by %s\n", k[i].name, k[i].key_id, k[i].models, k[i].added_at,
                       k[i].added_by);
        }
        free(k);
        al_store_close(s);
        return rc;
    }
    if (!strcmp(sub, "rm")) {
        if (a.n_pos != 2)
            return usage("trust", false, h);
        al_store *s = open_store("trust", &a);
        if (!s)
            return 1;
        int rc = 0;
        if (al_store_trust_rm(s, a.pos[1], actor(&a), &err)) {
            cli_errorf("trust", "%s", err.msg);
            rc = 1;
        } else {
            printf("removed trusted key '%s'\n", a.pos[1]);
        }
        al_store_close(s);
        return rc;
    }
    return usage("trust", false, h);
}

/* ------------------------------------------------------------ import */

int cmd_import(int argc, char **argv)
{
    static const char h[] =
        "usage: airlock import BUNDLE.airlock [--by PERSON]\n\n"
        "Streams a bundle into quarantine: verifies its signature against the trust\n"
        "store, checks every file's size and sha256 while copying (constant memory),\n"
        "then scans it (GGUF validation, architecture, tensor types, tokenizer, chat\n"
        "template, metadata strings; non-GGUF payloads are refused). The model ends\n"
        "'quarantined' (awaiting `airlock approve`) or 'rejected' with every reason.\n"
        "PERSON (default $AIRLOCK_USER or $USER) is recorded as the importer.\n";
    args a;
    if (!parse_args("import", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1)
        return usage("import", a.help, h);
    al_store *s = open_store("import", &a);
    if (!s)
        return 1;
    al_error err = {0};
    al_import_result res;
    double t0 = cli_now();
    al_status st = al_store_import(s, a.pos[0], actor(&a), al_scan_file, NULL, &res, &err);
    double secs = cli_now() - t0;
    int rc = 0;
    if (st) {
        cli_errorf("import", "%s", err.msg);
        if (res.state[0])
            fprintf(stderr, "airlock import: %s:%s is now %s\n", res.name, res.tag, res.state);
        rc = 1;
    } else if (res.already) {
        printf("%s:%s is already in the store (%s, sha256:%s)\n", res.name, res.tag, res.state, res.digest);
    } else {
        printf("imported %s:%s signed by '%s': %s\ndigest: sha256:%s\n", res.name, res.tag, res.signer, res.state,
               res.digest);
        printf("copied %llu bytes in %.3f s (%.1f MB/s)\n", (unsigned long long)res.bytes, secs,
               secs > 0 ? (double)res.bytes / 1e6 / secs : 0.0);
    }
    al_store_close(s);
    return rc;
}

/* ------------------------------------------------------------ approve / reject */

int cmd_approve(int argc, char **argv)
{
    static const char h[] = "usage: airlock approve NAME:TAG --key YOUR-KEY.pem\n"
                            "       airlock approve NAME:TAG --by PERSON   (name-only stores)\n\n"
                            "Records an approval of a quarantined model. It is published once the\n"
                            "policy's number of distinct approvers is met (see airlock policy); with\n"
                            "separate-importer=true the importer may not approve.\n"
                            "--key: signs the model's digest, the decision and the time with your Ed25519\n"
                            "private key (airlock keygen); its public key must be pinned with\n"
                            "'airlock policy set approvers=FILE'. Once approvers are pinned, only such\n"
                            "signed approvals count (one per key) and --by alone is refused.\n";
    args a;
    if (!parse_args("approve", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1 || (!a.by && !a.key) || (a.by && a.key))
        return usage("approve", a.help, h);
    al_store *s = open_store("approve", &a);
    if (!s)
        return 1;
    al_error err = {0};
    bool pub = false;
    int n = 0, rc = 0;
    char who[65];
    snprintf(who, sizeof(who), "%s", a.by ? a.by : "");
    al_status st = a.key ? al_store_approve_key(s, a.pos[0], a.key, who, &pub, &n, &err)
                         : al_store_approve(s, a.pos[0], a.by, &pub, &n, &err);
    if (st) {
        cli_errorf("approve", "%s", err.msg);
        rc = 1;
    } else {
        al_policy p;
        al_store_policy_get(s, &p, &err);
        printf("%s approved by %s%s (%d of %d approvals): %s\n", a.pos[0], who,
               a.key ? " (signed with a pinned key)" : "", n, p.approvals,
               pub ? "published" : "still quarantined");
    }
    al_store_close(s);
    return rc;
}

int cmd_reject(int argc, char **argv)
{
    static const char h[] = "usage: airlock reject NAME:TAG --by PERSON --reason TEXT\n\n"
                            "Marks a model rejected (it is no longer served); the reason is recorded.\n";
    args a;
    if (!parse_args("reject", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1 || !a.by || !a.reason)
        return usage("reject", a.help, h);
    al_store *s = open_store("reject", &a);
    if (!s)
        return 1;
    al_error err = {0};
    int rc = 0;
    if (al_store_reject(s, a.pos[0], a.by, a.reason, &err)) {
        cli_errorf("reject", "%s", err.msg);
        rc = 1;
    } else {
        printf("%s rejected by %s: %s\n", a.pos[0], a.by, a.reason);
    }
    al_store_close(s);
    return rc;
}

int cmd_reopen(int argc, char **argv)
{
    static const char h[] = "usage: airlock reopen NAME:TAG --by PERSON [--reason TEXT]\n\n"
                            "A rejection sticks: importing the same bundle again is refused. reopen\n"
                            "lifts it (recorded in the audit log and the model's history): the rejected\n"
                            "entry is dropped and the bundle may be imported, scanned and approved afresh.\n";
    args a;
    if (!parse_args("reopen", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1 || !a.by)
        return usage("reopen", a.help, h);
    al_store *s = open_store("reopen", &a);
    if (!s)
        return 1;
    al_error err = {0};
    int rc = 0;
    if (al_store_reopen(s, a.pos[0], a.by, a.reason, &err)) {
        cli_errorf("reopen", "%s", err.msg);
        rc = 1;
    } else {
        printf("%s: rejection lifted by %s; the bundle may be imported again\n", a.pos[0], a.by);
    }
    al_store_close(s);
    return rc;
}

/* ------------------------------------------------------------ policy */

int cmd_policy(int argc, char **argv)
{
    static const char h[] = "usage: airlock policy set KEY=VALUE [KEY=VALUE...]\n"
                            "       airlock policy show\n\n"
                            "Keys: approvals=N (distinct approvers needed to publish, 1..16, default 1)\n"
                            "      separate-importer=true|false (the importer may not approve; default false)\n"
                            "      approvers=FILE (pins approvers' public keys: one 'NAME KEY.pub.pem' per\n"
                            "      line; approvals then need 'airlock approve --key'; none: name-only)\n";
    args a;
    if (!parse_args("policy", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos < 1)
        return usage("policy", a.help, h);
    al_store *s = open_store("policy", &a);
    if (!s)
        return 1;
    al_error err = {0};
    int rc = 0;
    if (!strcmp(a.pos[0], "set") && a.n_pos >= 2) {
        for (int i = 1; i < a.n_pos && !rc; i++) {
            char kv[256];
            snprintf(kv, sizeof(kv), "%s", a.pos[i]);
            char *eq = strchr(kv, '=');
            if (!eq) {
                cli_errorf("policy", "'%s' is not KEY=VALUE", a.pos[i]);
                rc = 2;
                break;
            }
            *eq = 0;
            if (al_store_policy_set(s, kv, eq + 1, actor(&a), &err)) {
                cli_errorf("policy", "%s", err.msg);
                rc = 1;
            }
        }
    } else if (strcmp(a.pos[0], "show") || a.n_pos != 1) {
        al_store_close(s);
        return usage("policy", false, h);
    }
    if (!rc) {
        al_policy p;
        if (al_store_policy_get(s, &p, &err)) {
            cli_errorf("policy", "%s", err.msg);
            rc = 1;
        } else {
            printf("approvals=%d\nseparate-importer=%s\n", p.approvals, p.separate_importer ? "true" : "false");
            if (p.n_approvers)
                printf("approvers=%d pinned keys (approvals are signed)\n", p.n_approvers);
            else
                printf("approvers=none (name-only: approvals are names typed with --by)\n");
        }
    }
    al_store_close(s);
    return rc;
}

/* ------------------------------------------------------------ list / show */

int cmd_list(int argc, char **argv)
{
    static const char h[] = "usage: airlock list [--state quarantined|published|rejected]\n\n"
                            "Lists the models in the store with their state, digest and signer.\n";
    args a;
    if (!parse_args("list", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos)
        return usage("list", a.help, h);
    al_store *s = open_store("list", &a);
    if (!s)
        return 1;
    al_error err = {0};
    al_model_row *r = NULL;
    size_t n = 0;
    int rc = 0;
    if (al_store_list(s, a.state, &r, &n, &err)) {
        cli_errorf("list", "%s", err.msg);
        rc = 1;
    } else {
        printf("%-32s %-12s %-20s %-12s %-10s %s\n", "MODEL", "STATE", "DIGEST", "SIZE", "SIGNER", "APPROVED BY");
        for (size_t i = 0; i < n; i++) {
            char ref[140], dg[24];
            snprintf(ref, sizeof(ref), "%s:%s", r[i].name, r[i].tag);
            snprintf(dg, sizeof(dg), "%.12s", r[i].digest[0] ? r[i].digest : "-");
            printf("%-32s %-12s sha256:%-13s %-12llu %-10s %s\n", ref, r[i].state, dg,
                   (unsigned long long)r[i].model_size, r[i].signer, r[i].approvers[0] ? r[i].approvers : "-");
        }
    }
    free(r);
    al_store_close(s);
    return rc;
}

int cmd_show(int argc, char **argv)
{
    static const char h[] = "usage: airlock show NAME:TAG | NAME@sha256:DIGEST\n\n"
                            "Prints a model's state, digests, signer, provenance, importer, approvals\n"
                            "and scan report.\n";
    args a;
    if (!parse_args("show", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1)
        return usage("show", a.help, h);
    al_store *s = open_store("show", &a);
    if (!s)
        return 1;
    al_error err = {0};
    al_model_row *r = calloc(1, sizeof(*r));
    char *scan = NULL;
    int rc = 0;
    if (!r || al_store_show(s, a.pos[0], r, &scan, &err)) {
        cli_errorf("show", "%s", r ? err.msg : "out of memory");
        rc = 1;
    } else {
        al_policy p;
        al_store_policy_get(s, &p, &err);
        printf("model:        %s:%s\n", r->name, r->tag);
        printf("state:        %s\n", r->state);
        printf("digest:       %s%s\n", r->digest[0] ? "sha256:" : "", r->digest[0] ? r->digest : "-");
        printf("gguf blob:    %s%s (%llu bytes)\n", r->model_digest[0] ? "sha256:" : "",
               r->model_digest[0] ? r->model_digest : "-", (unsigned long long)r->model_size);
        printf("signer:       %s (key %s)\n", r->signer, r->key_id);
        printf("source:       %s\n", r->source[0] ? r->source : "-");
        printf("created:      %s\n", r->created);
        printf("imported:     %s by %s\n", r->imported_at, r->importer);
        printf("approvals:    %d of %d%s%s\n", r->n_approvals, p.approvals, r->approvers[0] ? ": " : "",
               r->approvers);
        if (r->published_at[0])
            printf("published:    %s\n", r->published_at);
        char path[4096], dg[65];
        if (!strcmp(r->state, "published") && !al_store_resolve(s, a.pos[0], path, sizeof(path), dg, &err))
            printf("path:         %s\n", path);
        if (!strcmp(r->state, "rejected"))
            printf("rejected by:  %s\nreasons:      %s\n", r->rejected_by, r->reasons);
        char *hist = NULL;
        if (!al_store_history(s, a.pos[0], &hist, &err) && hist && hist[0]) {
            printf("history:\n");
            for (const char *ln = hist; *ln;) {
                const char *nl = strchr(ln, '\n');
                int L = nl ? (int)(nl - ln) : (int)strlen(ln);
                printf("  %.*s\n", L, ln);
                ln += L + (nl ? 1 : 0);
            }
        }
        free(hist);
        printf("scan report:\n");
        const char *t = scan && scan[0] ? scan : "(none)\n";
        for (const char *ln = t; *ln;) {
            const char *nl = strchr(ln, '\n');
            int L = nl ? (int)(nl - ln) : (int)strlen(ln);
            printf("  %.*s\n", L, ln);
            ln += L + (nl ? 1 : 0);
        }
    }
    free(scan);
    free(r);
    al_store_close(s);
    return rc;
}

/* ------------------------------------------------------------ rm / gc / verify / export */

int cmd_rm(int argc, char **argv)
{
    static const char h[] = "usage: airlock rm NAME:TAG\n\n"
                            "Removes a model from the catalogue and deletes the blobs no other model uses.\n";
    args a;
    if (!parse_args("rm", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1)
        return usage("rm", a.help, h);
    al_store *s = open_store("rm", &a);
    if (!s)
        return 1;
    al_error err = {0};
    int rc = 0;
    if (al_store_rm(s, a.pos[0], actor(&a), &err)) {
        cli_errorf("rm", "%s", err.msg);
        rc = 1;
    } else {
        printf("removed %s\n", a.pos[0]);
    }
    al_store_close(s);
    return rc;
}

int cmd_gc(int argc, char **argv)
{
    static const char h[] = "usage: airlock gc\n\n"
                            "Deletes blobs no model references and what killed operations left behind.\n";
    args a;
    if (!parse_args("gc", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos)
        return usage("gc", a.help, h);
    al_store *s = open_store("gc", &a);
    if (!s)
        return 1;
    al_error err = {0};
    uint64_t nb = 0, by = 0;
    int rc = 0;
    if (al_store_gc(s, actor(&a), &nb, &by, &err)) {
        cli_errorf("gc", "%s", err.msg);
        rc = 1;
    } else {
        printf("removed %llu unreferenced blobs (%llu bytes)\n", (unsigned long long)nb, (unsigned long long)by);
    }
    al_store_close(s);
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    static const char h[] = "usage: airlock verify\n\n"
                            "Re-hashes every blob at rest and reports tampered, missing and stray blobs\n"
                            "(exit status 1 if any). First finishes any operation a crash interrupted.\n";
    args a;
    if (!parse_args("verify", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos)
        return usage("verify", a.help, h);
    al_store *s = open_store("verify", &a);
    if (!s)
        return 1;
    al_error err = {0};
    al_verify_counts c;
    int rc = 0;
    al_status st = al_store_verify(s, stdout, &c, actor(&a), &err);
    printf("%llu blobs ok, %llu tampered, %llu missing, %llu stray\n", (unsigned long long)c.ok,
           (unsigned long long)c.tampered, (unsigned long long)c.missing, (unsigned long long)c.stray);
    if (st) {
        cli_errorf("verify", "%s", err.msg);
        rc = 1;
    } else {
        printf("store is clean\n");
    }
    al_store_close(s);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    static const char h[] = "usage: airlock export NAME:TAG -o FILE.airlock\n\n"
                            "Writes a published model as a bundle again, with its original manifest and\n"
                            "signature, to carry on to another enclave.\n";
    args a;
    if (!parse_args("export", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1 || !a.out)
        return usage("export", a.help, h);
    al_store *s = open_store("export", &a);
    if (!s)
        return 1;
    al_error err = {0};
    int rc = 0;
    if (al_store_export(s, a.pos[0], a.out, actor(&a), &err)) {
        cli_errorf("export", "%s", err.msg);
        rc = 1;
    } else {
        printf("exported %s to %s\n", a.pos[0], a.out);
    }
    al_store_close(s);
    return rc;
}
