/* serve_reload.h - hot reload for `airlock serve --store`: models published,
 * rejected or removed while the server runs are served, or stop being
 * served, without a restart.
 *
 * A thread polls the catalogue's generation (al_store_generation: SQLite's
 * data_version, a read of the WAL index) every interval. When it moved, the
 * published models are listed again and compared with those served: each
 * model that is gone (rejected, removed, or republished with another blob)
 * is removed from the server (running requests finish, new ones get 404)
 * and each newly published one is added. Every change is printed on stdout
 * and recorded in the audit log (serve.model_added, serve.model_removed).
 *
 * The poller needs no syscall beyond those the store already uses under
 * the sandbox (pread/mmap of catalogue.db, -wal and -shm in the store
 * directory, which is the sandbox's read-write path); no inotify.
 *
 * Thread safety: the watcher has its own store handle and thread; the
 * functions below are called from serve's main thread. */
#ifndef AL_CLI_SERVE_RELOAD_H
#define AL_CLI_SERVE_RELOAD_H

#include <stdbool.h>

#include "airlock.h"
#include "audit/audit.h"
#include "server/server.h"

#define SERVE_RELOAD_INTERVAL_MS 1000

typedef struct serve_reload serve_reload;

/* Called on the watcher's thread each time the catalogue changed, before
 * the served models are compared with it (e.g. to drop cached gate
 * answers). */
typedef void (*serve_reload_change_fn)(void *user);

/* Opens the watcher's own handle on the store in dir; call before the
 * sandbox and before the published models are first listed (so that no
 * change between the two is missed). *out is owned: serve_reload_free. */
al_status serve_reload_open(const char *dir, serve_reload **out, al_error *err);
/* Records a store model the server was started with (name "name:tag", its
 * GGUF blob and OCI manifest digests in hex). False when the table is full. */
bool serve_reload_track(serve_reload *r, const char *name, const char *digest, const char *manifest_digest);
/* Starts polling every interval_ms (after al_server_start). audit and
 * on_change may be NULL; both are borrowed until serve_reload_free. */
al_status serve_reload_start(serve_reload *r, al_server *srv, al_audit *audit, unsigned interval_ms,
                             serve_reload_change_fn on_change, void *user, al_error *err);
/* Stops the thread and frees r; call before al_server_free. NULL: no-op. */
void serve_reload_free(serve_reload *r);

#endif
