/* audit.h - the tamper-evident audit log.
 *
 * The log lives in DIR/audit.log as JSON lines. Every record carries the
 * SHA-256 of the previous record ("prev"), so editing, deleting, reordering,
 * inserting or truncating records breaks the chain, which al_audit_verify
 * finds and names. Every record is signed with Ed25519 by the log's key
 * (DIR/audit.key, created on first use), so records cannot be added or
 * changed without it; every 64th record is a checkpoint, and DIR/audit.head
 * (the last synced record, signed) is required, so cutting records off the
 * end is found. $AIRLOCK_AUDIT_ANCHOR names a second copy of the head kept
 * outside the store (a whole-directory rollback is then found).
 *
 * Several processes may append to the same log: each append takes an
 * exclusive flock on the log file around read-last-hash + write.
 *
 * Thread safety: an al_audit may be used by several threads (appends are
 * serialised by an internal mutex).
 */
#ifndef AL_AUDIT_AUDIT_H
#define AL_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "airlock.h"

typedef struct al_audit al_audit;

/* Opens (creating DIR and the log if needed) the log in DIR/audit.log.
 * A torn last record (e.g. after kill -9) is cut back to the last whole
 * record, and the repair itself is appended as an audit record. The log is
 * compared with audit.head (and the anchor, when $AIRLOCK_AUDIT_ANCHOR is
 * set; the file is opened here and rewritten after every head): a mismatch
 * is appended as a signed "audit.tamper-found" record (al_audit_open_problem). 
 * On success *out is owned by the caller: free it with al_audit_close. */
al_status al_audit_open(const char *dir, al_audit **out, al_error *err);

/* Flushes pending records (fsync) and frees a. al_audit_close(NULL) is a no-op. */
void al_audit_close(al_audit *a);

/* One event. Every string may be NULL (recorded as absent). Never put a
 * secret in any field. */
typedef struct al_audit_event {
    const char *actor;        /* key id or person; never a secret */
    const char *client;       /* client address, e.g. "127.0.0.1" or "cli" */
    const char *action;       /* endpoint or store action, e.g. "POST /v1/chat/completions" */
    const char *model;        /* model name */
    const char *digest;       /* model sha256 */
    int64_t prompt_tokens;    /* -1 when not applicable */
    int64_t completion_tokens;
    int status;               /* HTTP status or 0/1 for CLI actions */
    double duration_ms;
    const char *detail;       /* free text, optional */
    /* fields below were added after the first version; zero them when unused */
    const char *prompt;       /* request content; recorded only per content mode */
    size_t prompt_len;
    const char *completion;   /* response content; recorded only per content mode */
    size_t completion_len;
} al_audit_event;

/* Appends one record (hash-chained). Records are fsynced in small batches:
 * at the latest after AL_AUDIT_SYNC_EVERY records, on al_audit_flush, and on
 * close. Thread safe. */
al_status al_audit_append(al_audit *a, const al_audit_event *ev, al_error *err);

/* ------------------------------------------------------- later additions */

#define AL_AUDIT_SYNC_EVERY 8          /* records between fsyncs */
#define AL_AUDIT_CHECKPOINT_EVERY 64   /* records between signed checkpoints */

/* What of a request's content goes into the log. */
typedef enum al_audit_content {
    AL_AUDIT_CONTENT_NONE = 0,   /* default: nothing of a prompt is recorded */
    AL_AUDIT_CONTENT_DIGEST = 1, /* sha256 of prompt and completion */
    AL_AUDIT_CONTENT_FULL = 2,   /* the text itself */
} al_audit_content;

void al_audit_set_content(al_audit *a, al_audit_content mode);
/* Parses "none" | "digest" | "full". */
al_status al_audit_content_parse(const char *s, al_audit_content *out, al_error *err);

/* fsyncs pending records now. */
al_status al_audit_flush(al_audit *a, al_error *err);

/* Appends a signed checkpoint record now. */
al_status al_audit_checkpoint(al_audit *a, al_error *err);

/* Result of al_audit_verify. */
typedef struct al_audit_verify_result {
    uint64_t n_records;      /* whole records read */
    uint64_t n_checkpoints;  /* checkpoints with a good signature */
    uint64_t bad_line;       /* 1-based line of the first problem, 0 if none or not a line */
    char problem[512];       /* what is wrong there, "" if none */
    uint64_t n_signed;       /* records with their own signature (format 2) */
    uint64_t n_legacy;       /* unsigned records of format 1 (a prefix of the log) */
    uint64_t n_after_head;   /* signed records after the last synced head */
    bool pub_from_store;     /* verified against the store's own audit.pub */
    bool anchor_checked;
    uint64_t first_seq;      /* number of the first record read (1 unless a copy, from_path) */
} al_audit_verify_result;

typedef struct al_audit_verify_options {
    const char *pub_path;    /* public key kept outside the store; NULL: DIR/audit.pub */
    const char *anchor_path; /* a copy of audit.head kept elsewhere; NULL: none */
    const char *from_path;   /* verify the records in this file instead of DIR/audit.log:
                                a mirror (serve --audit-stdout) captured by a log pipeline.
                                Lines that are not records are skipped; the chain may start
                                at any record (the earlier ones are not in the file); there
                                is no head to check. */
} al_audit_verify_options;

/* Verifies the chain and the checkpoints' signatures of DIR/audit.log.
 * Returns AL_OK when intact; AL_ERR_CRYPTO when tampered (res says where);
 * other statuses for I/O errors. */
al_status al_audit_verify(const char *dir, al_audit_verify_result *res, al_error *err);
al_status al_audit_verify_opts(const char *dir, const al_audit_verify_options *opt,
                               al_audit_verify_result *res, al_error *err);

/* Also writes every record, exactly as it goes into the log, to f (NULL:
 * no more): a copy for a log pipeline, verifiable with from_path. */
void al_audit_set_mirror(al_audit *a, FILE *f);

/* What al_audit_open found wrong with the log (and recorded as a signed
 * "audit.tamper-found" record), or NULL. */
const char *al_audit_open_problem(const al_audit *a);

/* Writes records as JSON lines (without the chain fields) to f, those with
 * since_unix <= time < until_unix (0 = unbounded). */
al_status al_audit_export(const char *dir, int64_t since_unix, int64_t until_unix,
                          FILE *f, al_error *err);

#endif
