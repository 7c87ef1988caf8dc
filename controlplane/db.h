/*
 * db: the control plane's SQLite store - the connection, migrations, and the one write path every admin write takes.
 */
#ifndef CPH_DB_H
#define CPH_DB_H

#include <stdint.h>
#include <sqlite3.h>
#include <jansson.h>
#include "proto/proto.h"

typedef struct st_cph_db_t cph_db_t;

/** Called after each committed write, still under the database lock, so versions are published in order. */
typedef void (*cph_db_on_commit_cb)(void *ud, uint64_t version, const char *hash, json_t *body);

/**
 * What a write callback changed, for the audit row and for pointing a validation error at the request's object.
 * before/after are owned references (or NULL) that cph_db_write() releases.
 */
typedef struct st_cph_db_change_t {
    const char *action;      /* "create" | "update" | "delete" | "bootstrap" */
    const char *entity_type; /* "service" | "route" | "snapshot" */
    int64_t entity_id;       /* 0 when none */
    const char *entity_name; /* the object's name in the new body, to translate error paths; NULL = none */
    json_t *before;
    json_t *after;
} cph_db_change_t;

/**
 * A write: runs inside BEGIN IMMEDIATE with the lock held. Returns 0, or -1 with err filled; err->code selects the
 * HTTP status in the API ("not_found" 404, "conflict" 409, "internal" 500, anything else 400).
 */
typedef int (*cph_db_write_cb)(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err);

/**
 * Opens (creating) the database at path (WAL, a counting busy handler waiting up to 5000 ms, foreign_keys ON) and applies the
 * NNNN_*.sql files of migrations_dir that are not applied yet, in order, each in its own transaction. Refuses (NULL, err filled) a
 * numbering gap, an applied migration whose file is missing or whose checksum changed, or a failing migration (which
 * is rolled back whole).
 */
cph_db_t *cph_db_open(const char *path, const char *migrations_dir, cph_error_t *err);
/** Closes the connection and frees db (NULL is fine). */
void cph_db_close(cph_db_t *db);
/** Sets the commit hook (e.g. publish to data planes). */
void cph_db_set_on_commit(cph_db_t *db, cph_db_on_commit_cb cb, void *ud);

/** Takes / releases the lock that guards the one connection; every reader and writer holds it. */
void cph_db_lock(cph_db_t *db);
void cph_db_unlock(cph_db_t *db);
/** The raw connection; only while holding the lock. */
sqlite3 *cph_db_handle(cph_db_t *db);

/**
 * The write path: lock, BEGIN IMMEDIATE, cb, bump meta.generation, prune the revocations no token can match any more
 * (cph_store_revocation_prune with the current time), build the snapshot body (snapbuild), validate it
 * with cph_snapshot_validate (a failing path under the changed object is made relative to it), insert the snapshots
 * row (with the configuration rows' state, history.h, so a rollback can restore them) and the audit row, COMMIT, call
 * the commit hook, unlock. Any failure rolls everything back. Returns 0 with
 * *version set, or -1 with err filled.
 */
int cph_db_write(cph_db_t *db, const char *actor, cph_db_write_cb cb, void *ctx, uint64_t *version, cph_error_t *err);

/** Reads meta: epoch (33 bytes) and generation. Caller holds the lock. Returns 0 or -1. */
int cph_db_meta(cph_db_t *db, char epoch[33], uint64_t *generation);
/**
 * The current snapshot (the snapshots row at meta.generation): a new object {"epoch","version","hash","schema"}
 * plus "body" when with_body. Takes the lock. NULL if there is none yet.
 */
json_t *cph_db_current_snapshot(cph_db_t *db, int with_body);
/**
 * Makes sure the current snapshot is what the rows build now: writes a "bootstrap" version on a fresh database, and a
 * "rebuild" version when the rows build a different body (after an upgrade, or once a retiring key's time is up).
 */
int cph_db_ensure_snapshot(cph_db_t *db, cph_error_t *err);

/* The snapshot build-time histogram's upper bounds in seconds (the +Inf bucket comes after them). */
#define CPH_DB_BUILD_BUCKETS 12
#define CPH_DB_BUILD_BOUNDS_S                                                                                                      \
    {                                                                                                                              \
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0                                                     \
    }

/** What the database counted since it was opened (GET /metrics): a copy, read with relaxed atomic loads. */
typedef struct st_cph_db_stats_t {
    uint64_t busy_retries;  /* times the busy handler waited and retried a statement SQLITE_BUSY stopped */
    uint64_t busy_failures; /* statements that gave up SQLITE_BUSY after the 5 s budget */
    uint64_t build_buckets[CPH_DB_BUILD_BUCKETS + 1]; /* committed versions per build-time bucket (NOT cumulative), +Inf last */
    uint64_t build_ns_sum;                            /* their build times summed, in ns */
    uint64_t build_ns_last;                           /* the last committed version's build time, 0 before the first */
    uint64_t snapshot_bytes;                          /* the last committed snapshot body's size (canonical JSON), 0 before */
} cph_db_stats_t;

/**
 * Fills out with the counters: busy retries (db.c installs a busy handler that waits like sqlite3_busy_timeout(5000) and
 * counts each retry), and per committed version the time cph_db_write() spent building, validating, hashing and
 * serialising its snapshot body, and the body's size. Thread-safe, takes no lock (the writers use relaxed atomics).
 */
void cph_db_stats(cph_db_t *db, cph_db_stats_t *out);

/** Current time as RFC 3339 UTC with milliseconds into buf (at least 32 bytes). */
void cph_db_now(char *buf, size_t cap);
/** Runs one SQL statement without results; -1 with err {internal} on failure (SQL text never reaches err->msg). */
int cph_db_exec(cph_db_t *db, const char *sql, cph_error_t *err);

#endif
