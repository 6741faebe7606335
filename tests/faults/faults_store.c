/*
 * faults_store.c - the store under injected faults (tests/faults/fault.h).
 *
 * One operation runs the store's whole life on a real signed bundle of
 * stories260K: open a new store, pin the key, import (with the real
 * scanner), approve, reject and reopen a second model, remove, gc. It is
 * run with the Nth allocation failing, and with the Nth write / pwrite /
 * fsync / fdatasync / ftruncate / rename / mkdir failing with ENOSPC, then
 * EIO, for every N. After every run the store must be as a kill -9 leaves
 * it (tests/store/test_crash.sh): it opens, al_store_verify finds nothing
 * tampered, missing or stray, tmp/ is empty, the audit log verifies, and
 * a retried import succeeds (an I/O failure is never recorded as a
 * rejection).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "airlock.h"
#include "audit/audit.h"
#include "fault.h"
#include "scan/scan.h"
#include "store/bundle.h"
#include "store/sign.h"
#include "store/store.h"
#include "util/error.h"
#include "util/fsutil.h"

typedef struct store_case {
    char tmp[256];
    char store[512];
    char pub[1024], priv[1024];
    char bundle1[512], bundle2[512];
} store_case;

/* The store's life from nothing. Returns the first error (the rest of the
 * steps are skipped); the store is left as the failure left it. */
static al_status op_lifecycle(void *user, al_error *err)
{
    store_case *c = user;
    al_store *s = NULL;
    al_status st = al_store_open(c->store, &s, err);
    if (st)
        return st;
    al_import_result res;
    bool published = false;
    int n_appr = 0;
    if (!(st = al_store_trust_add(s, c->pub, "k", NULL, "tester", err)) &&
        !(st = al_store_import(s, c->bundle1, "importer", al_scan_file, NULL, &res, err)) &&
        !(st = al_store_approve(s, "stories:f32", "alice", &published, &n_appr, err)) &&
        !(st = al_store_import(s, c->bundle2, "importer", al_scan_file, NULL, &res, err)) &&
        !(st = al_store_reject(s, "stories:q8", "bob", "not this one", err)) &&
        !(st = al_store_reopen(s, "stories:q8", "bob", "second look", err)) &&
        !(st = al_store_rm(s, "stories:f32", "tester", err))) {
        uint64_t nb = 0, nbytes = 0;
        st = al_store_gc(s, "tester", &nb, &nbytes, err);
    }
    if (st == AL_OK && !published)
        st = al_err(err, AL_ERR_STATE, "the approval did not publish (policy approvals=1)");
    al_store_close(s);
    return st;
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    closedir(d);
    return empty;
}

/* The kill -9 rules, then a fresh directory for the next run. */
static int check_consistent(void *user, al_status op_status, char *msg, size_t cap)
{
    store_case *c = user;
    int bad = 0;
    al_error err = {0};
    al_store *s = NULL;
    char p[1024];
    if (access(c->store, F_OK) != 0)
        return 0; /* failed before the store existed */
    if (al_store_open(c->store, &s, &err)) {
        snprintf(msg, cap, "the store does not open: %s", err.msg);
        bad = 1;
        goto out;
    }
    al_verify_counts vc = {0};
    if (al_store_verify(s, NULL, &vc, "checker", &err)) {
        snprintf(msg, cap, "verify: %s (ok %llu tampered %llu missing %llu stray %llu)", err.msg,
                 (unsigned long long)vc.ok, (unsigned long long)vc.tampered, (unsigned long long)vc.missing,
                 (unsigned long long)vc.stray);
        bad = 1;
        goto out;
    }
    snprintf(p, sizeof(p), "%s/tmp", c->store);
    if (!dir_empty(p)) {
        snprintf(msg, cap, "tmp/ is not empty after verify");
        bad = 1;
        goto out;
    }
    al_model_row *rows = NULL;
    size_t n = 0;
    if (al_store_list(s, NULL, &rows, &n, &err)) {
        snprintf(msg, cap, "list: %s", err.msg);
        bad = 1;
        goto out;
    }
    free(rows);
    /* a retry of the first import succeeds (or finds it there): a fault is
     * never recorded as a rejection. Only when the key got pinned. */
    al_trust_key *keys = NULL;
    size_t nk = 0;
    if (al_store_trust_list(s, &keys, &nk, &err) == AL_OK && nk == 1) {
        al_import_result res;
        al_model_row row;
        bool removed = op_status == AL_OK;
        if (!removed && al_store_import(s, c->bundle1, "importer", al_scan_file, NULL, &res, &err)) {
            snprintf(msg, cap, "the retried import fails: %s", err.msg);
            bad = 1;
        } else if (!removed && (al_store_show(s, "stories:f32", &row, NULL, &err) ||
                                !strcmp(row.state, "rejected"))) {
            snprintf(msg, cap, "after the retry stories:f32 is %s", row.state);
            bad = 1;
        }
    }
    free(keys);
out:
    al_store_close(s);
    if (!bad) {
        al_audit_verify_result ar;
        memset(&ar, 0, sizeof(ar));
        snprintf(p, sizeof(p), "%s/audit", c->store);
        if (access(p, F_OK) == 0 && al_audit_verify(p, &ar, &err) != AL_OK) {
            snprintf(msg, cap, "the audit log does not verify: %s (line %llu: %s)", err.msg,
                     (unsigned long long)ar.bad_line, ar.problem);
            bad = 1;
        }
    }
    if (bad && getenv("AIRLOCK_FAULT_KEEP")) {
        char kept[600];
        snprintf(kept, sizeof(kept), "%s.kept", c->store);
        rename(c->store, kept);
        fprintf(stderr, "kept the store in %s\n", kept);
    }
    al_fs_rmtree(c->store);
    return bad;
}

int main(void)
{
    const char *sh = getenv("AIRLOCK_SHARED");
    char m1[1024], m2[1024];
    snprintf(m1, sizeof(m1), "%s/models/stories260K.gguf", sh ? sh : "../shared");
    snprintf(m2, sizeof(m2), "%s/models/stories260K-q8_0.gguf", sh ? sh : "../shared");
    if (access(m1, R_OK) || access(m2, R_OK)) {
        printf("SKIP: %s or %s not found (set AIRLOCK_SHARED)\n", m1, m2);
        return 77;
    }
    static store_case c;
    /* tmpfs when there is one: about 2,000 runs each fsync several times */
    snprintf(c.tmp, sizeof(c.tmp), "%s/airlock-faults-store.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(c.tmp)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(c.store, sizeof(c.store), "%s/store", c.tmp);
    snprintf(c.bundle1, sizeof(c.bundle1), "%s/s.airlock", c.tmp);
    snprintf(c.bundle2, sizeof(c.bundle2), "%s/s8.airlock", c.tmp);
    char keys[512];
    snprintf(keys, sizeof(keys), "%s/keys", c.tmp);
    al_error err = {0};
    int rc = 1;
    if (al_sign_keygen(keys, "k", c.priv, c.pub, sizeof(c.pub), NULL, &err)) {
        printf("FAIL keygen: %s\n", err.msg);
        goto out;
    }
    al_bundle_input in1 = {.path = m1, .role = "model"}, in2 = {.path = m2, .role = "model"};
    al_bundle_spec b1 = {.name = "stories", .tag = "f32", .key_path = c.priv, .inputs = &in1, .n_inputs = 1};
    al_bundle_spec b2 = {.name = "stories", .tag = "q8", .key_path = c.priv, .inputs = &in2, .n_inputs = 1};
    if (al_bundle_create(&b1, c.bundle1, NULL, &err) || al_bundle_create(&b2, c.bundle2, NULL, &err)) {
        printf("FAIL bundle: %s\n", err.msg);
        goto out;
    }
    fault_hook_jansson();
    long bad = 0;
    bad += fault_sweep("store life (open, trust, import, approve, import, reject, reopen, rm, gc) / malloc",
                       FAULT_ALLOC, 0, fault_stride(1), op_lifecycle, check_consistent, &c, NULL);
    bad += fault_sweep("store life / ENOSPC in write, fsync, rename, ...", FAULT_IO, ENOSPC, fault_stride(1),
                       op_lifecycle, check_consistent, &c, NULL);
    bad += fault_sweep("store life / EIO in write, fsync, rename, ...", FAULT_IO, EIO, fault_stride(1), op_lifecycle,
                       check_consistent, &c, NULL);
    rc = bad ? 1 : 0;
out:
    if (!getenv("AIRLOCK_FAULT_KEEP"))
        al_fs_rmtree(c.tmp);
    return rc;
}
