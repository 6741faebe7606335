/* cmd_registry.c - airlock push / pull: models to and from an OCI registry
 * (src/registry). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock.h"
#include "cli/cli.h"
#include "cli/util.h"
#include "registry/transfer.h"
#include "scan/scan.h"
#include "store/store.h"

typedef struct reg_args {
    const char *store, *by, *ca, *auth_file, *chunk;
    const char *pos[4];
    int n_pos;
    bool help, approved_by_policy;
} reg_args;

static bool parse(const char *cmd, int argc, char **argv, reg_args *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char **dst = NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            a->help = true;
            continue;
        }
        if (!strcmp(s, "--approved-by-policy")) {
            a->approved_by_policy = true;
            continue;
        }
        if (!strcmp(s, "--store"))
            dst = &a->store;
        else if (!strcmp(s, "--by"))
            dst = &a->by;
        else if (!strcmp(s, "--ca"))
            dst = &a->ca;
        else if (!strcmp(s, "--auth-file"))
            dst = &a->auth_file;
        else if (!strcmp(s, "--chunk-size"))
            dst = &a->chunk;
        if (dst) {
            if (i + 1 >= argc) {
                cli_errorf(cmd, "%s needs a value", s);
                return false;
            }
            *dst = argv[++i];
            continue;
        }
        if (s[0] == '-' && s[1]) {
            cli_errorf(cmd, "unknown option '%s' (see airlock %s --help)", s, cmd);
            return false;
        }
        if (a->n_pos >= 4) {
            cli_errorf(cmd, "too many arguments");
            return false;
        }
        a->pos[a->n_pos++] = s;
    }
    if (!a->store)
        a->store = al_store_default_dir();
    return true;
}

static const char k_common[] =
    "  --store DIR        the store (default: $AIRLOCK_STORE, else ./var/airlock)\n"
    "  --ca FILE          PEM CA certificate(s) for a registry with a private CA\n"
    "  --auth-file FILE   credentials, docker config.json format ({\"auths\": {\"HOST[:PORT]\":\n"
    "                     {\"auth\": base64(user:pass)}}}); default $AIRLOCK_REGISTRY_AUTH (a path,\n"
    "                     or the JSON itself). Never give credentials on the command line.\n"
    "REF is [http://|https://]HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]; HTTPS unless http:// is\n"
    "written. Basic and bearer-token auth; redirects to another host are refused.\n";

int cmd_push(int argc, char **argv)
{
    static const char h[] = "usage: airlock push NAME:TAG REF [--chunk-size BYTES] [options]\n\n"
                            "Publishes a published model to an OCI registry as an artifact of type\n"
                            "application/vnd.airlock.model.v1: the bundle manifest, its signature and\n"
                            "every file (the GGUF first) as layers, with name, tag, publisher key id and\n"
                            "scan summary as annotations. Blobs the registry holds are skipped. The tag\n"
                            "defaults to the model's. --chunk-size uploads in PATCH chunks (each resumed\n"
                            "from the offset the registry confirms after a cut); default one PUT.\n\n";
    reg_args a;
    if (!parse("push", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 2) {
        fprintf(a.help ? stdout : stderr, "%s%s", h, k_common);
        return a.help ? 0 : 2;
    }
    int64_t chunk = 0;
    if (a.chunk && !cli_parse_i64(a.chunk, 4096, (int64_t)1 << 40, &chunk)) {
        cli_errorf("push", "--chunk-size must be 4096..2^40 bytes");
        return 2;
    }
    al_error err = {0};
    al_store *s = NULL;
    if (al_store_open(a.store, &s, &err)) {
        cli_errorf("push", "%s", err.msg);
        return 1;
    }
    al_reg_opts o = {.ca_file = a.ca, .auth_file = a.auth_file};
    al_push_result res;
    double t0 = cli_now();
    al_status st = al_push(s, a.pos[0], a.pos[1], &o, (uint64_t)chunk, &res, &err);
    double secs = cli_now() - t0;
    al_store_close(s);
    if (st) {
        cli_errorf("push", "%s", err.msg);
        return 1;
    }
    printf("pushed %s to %s\ndigest: sha256:%s\n", a.pos[0], res.ref, res.digest);
    printf("%d layers (%d already there), %llu bytes sent in %.3f s\n", res.n_layers, res.n_skipped,
           (unsigned long long)res.bytes_sent, secs);
    return 0;
}

int cmd_pull(int argc, char **argv)
{
    static const char h[] =
        "usage: airlock pull REF [--by PERSON] [--approved-by-policy] [options]\n\n"
        "Fetches a model from an OCI registry into quarantine. The registry is only a\n"
        "transport: every blob is checked against its digest while it streams to disk,\n"
        "then the store's import runs every check (signature against the pinned\n"
        "publishers, file digests, scan), exactly as `airlock import`: the model ends\n"
        "quarantined, or rejected with the reasons. A cut pull resumes where it\n"
        "stopped when run again (HTTP Range). --approved-by-policy then records one\n"
        "approval by 'policy:HOST/REPO' (for clusters whose policy accepts a model\n"
        "approved in the registry's enclave; the store's approval count still applies).\n"
        "PERSON (default $AIRLOCK_USER or $USER) is recorded as the importer.\n\n";
    reg_args a;
    if (!parse("pull", argc, argv, &a))
        return 2;
    if (a.help || a.n_pos != 1) {
        fprintf(a.help ? stdout : stderr, "%s%s", h, k_common);
        return a.help ? 0 : 2;
    }
    al_error err = {0};
    al_store *s = NULL;
    if (al_store_open(a.store, &s, &err)) {
        cli_errorf("pull", "%s", err.msg);
        return 1;
    }
    al_reg_opts o = {.ca_file = a.ca, .auth_file = a.auth_file};
    al_pull_result res;
    double t0 = cli_now();
    al_status st = al_pull(s, a.pos[0], &o, a.by ? a.by : al_store_default_actor(), al_scan_file, NULL, &res, &err);
    double secs = cli_now() - t0;
    int rc = 0;
    if (st) {
        cli_errorf("pull", "%s", err.msg);
        if (res.imp.state[0])
            fprintf(stderr, "airlock pull: %s:%s is now %s\n", res.imp.name, res.imp.tag, res.imp.state);
        rc = 1;
    } else {
        if (res.imp.already)
            printf("%s:%s is already in the store (%s, sha256:%s)\n", res.imp.name, res.imp.tag, res.imp.state,
                   res.imp.digest);
        else
            printf("pulled %s:%s signed by '%s': %s\ndigest: sha256:%s\n", res.imp.name, res.imp.tag,
                   res.imp.signer, res.imp.state, res.imp.digest);
        printf("fetched %llu bytes in %.3f s%s", (unsigned long long)res.bytes_fetched, secs,
               res.resumed_bytes ? "" : "\n");
        if (res.resumed_bytes)
            printf(" (resumed after %llu bytes)\n", (unsigned long long)res.resumed_bytes);
        if (a.approved_by_policy && !strcmp(res.imp.state, "quarantined")) {
            al_reg_ref ref;
            char who[400], mref[140];
            al_reg_ref_parse(a.pos[0], &ref, &err);
            snprintf(who, sizeof(who), "policy:%.200s/%.180s", ref.host, ref.repo);
            snprintf(mref, sizeof(mref), "%s:%s", res.imp.name, res.imp.tag);
            bool pub = false;
            int n = 0;
            if (al_store_approve(s, mref, who, &pub, &n, &err)) {
                cli_errorf("pull", "--approved-by-policy: %s", err.msg);
                rc = 1;
            } else {
                printf("%s approved by %s: %s\n", mref, who, pub ? "published" : "still quarantined (policy)");
            }
        }
    }
    al_store_close(s);
    return rc;
}
