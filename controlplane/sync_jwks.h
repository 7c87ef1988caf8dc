/*
 * sync_jwks: the control plane's thread that keeps every external issuer's public keys (store_issuer.h) current by
 * fetching its JWKS URL, so the keys reach the data planes inside the snapshot and no data plane ever fetches
 * anything itself.
 */
#ifndef CPH_SYNC_JWKS_H
#define CPH_SYNC_JWKS_H

#include <stdatomic.h>
#include <stddef.h>
#include <jansson.h>
#include "controlplane/db.h"

#define CPH_JWKS_CONNECT_TIMEOUT_S 5
#define CPH_JWKS_TIMEOUT_S 10
#define CPH_JWKS_BACKOFF_MAX_S 30 /* the first retry after a failure: min(refresh_s, this), doubling up to refresh_s */

typedef struct st_cph_sync_jwks_t cph_sync_jwks_t;

/**
 * Starts the thread on db (borrowed; it must outlive the thread). Every issuer is due at once, then every refresh_s
 * seconds after a success; after a failure min(refresh_s, 30) seconds, doubling up to refresh_s. An issuer changed
 * by the admin (a new updated_at) is due at once. Returns NULL with err filled when the thread cannot start.
 */
cph_sync_jwks_t *cph_sync_jwks_start(cph_db_t *db, cph_error_t *err);
/** Stops the thread (an ongoing fetch is aborted within a second) and frees s (NULL is fine). */
void cph_sync_jwks_stop(cph_sync_jwks_t *s);

/**
 * GETs url with libcurl: http or https only (https verified), no redirect followed, connect timeout 5 s, total 10 s,
 * the answer must be 200 and at most CPH_JWKS_DOC_MAX bytes (a bigger one is aborted while it arrives). *body gets a
 * malloc'ed copy (NUL-terminated) and *len its length. stop (may be NULL) aborts the transfer once set. Returns 0,
 * or -1 with why (no response bytes in it).
 */
int cph_sync_jwks_fetch(const char *url, atomic_int *stop, char **body, size_t *len, char *why, size_t why_cap);

/**
 * Applies a fetched document to one issuer, row as cph_store_issuer_sync_list() gives it: the keys it converts to
 * (cph_jwks_import) are stored through cph_db_write as actor "sync" when they differ from the stored ones (a new
 * snapshot version), else only fetched_at is updated; a document that gives no key leaves the stored keys alone and
 * records why in last_error (doc NULL: the fetch failed with why already filled). Takes the database lock itself.
 * Returns 1 (keys written), 0 (unchanged), or -1 (failure, why filled).
 */
int cph_sync_jwks_apply(cph_db_t *db, const json_t *row, const char *doc, size_t len, char *why, size_t why_cap);

#endif
