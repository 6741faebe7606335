/* serve_sync.c - the replica's sync process. See serve_sync.h. */
#include "cli/serve_sync.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "registry/transfer.h"
#include "scan/scan.h"
#include "store/store.h"

static int pass(const serve_sync_opts *o)
{
    al_error err = {0};
    al_store *s = NULL;
    if (al_store_open(o->store_dir, &s, &err)) {
        fprintf(stderr, "airlock serve: sync: store %s: %s\n", o->store_dir, err.msg);
        return 1;
    }
    al_reg_opts ro = {.ca_file = o->ca_file, .auth_file = o->auth_file};
    int fails = al_sync_once(s, o->refs, o->n_refs, &ro, "sync", o->approved_by_policy, al_scan_file, NULL, stderr);
    al_store_close(s);
    return fails;
}

int serve_sync_start(const serve_sync_opts *o, pid_t *child)
{
    *child = -1;
    int fails = pass(o);
    if (fails)
        fprintf(stderr, "airlock serve: sync: %d failure(s) in the first pass; serving what the store holds\n",
                fails);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        cli_errorf("serve", "sync: fork: %s", strerror(errno));
        return 1;
    }
    if (pid > 0) {
        *child = pid;
        return 0;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(0);
    prctl(PR_SET_NAME, "airlock-sync");
    for (;;) {
        sleep((unsigned)o->interval_s);
        if (getppid() != parent)
            _exit(0);
        pass(o);
    }
}
