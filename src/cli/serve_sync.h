/* serve_sync.h - `airlock serve --sync`: keeps a replica's store in step with
 * a registry (src/registry), in a process of its own.
 *
 * The server confines itself (src/sandbox: no socket but AF_UNIX, no
 * connect), so it cannot reach a registry. serve_sync_start therefore runs
 * one sync pass in the serve process before anything is loaded (models the
 * registry holds are in the store when the server reads it), then forks,
 * before any thread exists and before the sandbox, a sync process that polls
 * every interval and dies with its parent (PR_SET_PDEATHSIG). That child
 * keeps the network; the serving process never has it. */
#ifndef AL_CLI_SERVE_SYNC_H
#define AL_CLI_SERVE_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SERVE_SYNC_MAX 8

typedef struct serve_sync_opts {
    const char *refs[SERVE_SYNC_MAX];
    size_t n_refs;
    const char *store_dir;
    const char *ca_file, *auth_file;
    long interval_s;
    bool approved_by_policy;
} serve_sync_opts;

/* Runs the first pass and forks the poller (its pid in *child). Returns 0,
 * or 1 when the sync process cannot be started (the first pass's failures
 * are reported and not fatal: the replica serves what its store holds). */
int serve_sync_start(const serve_sync_opts *o, pid_t *child);

#endif
