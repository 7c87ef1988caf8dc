/*
 * store_issuer: the issuers table (migrations/0005_issuers.sql) - external token issuers (an OIDC provider) whose
 * JWTs the data planes accept, each with the public keys the JWKS thread (sync_jwks.c) fetched for it.
 *
 * API representation: {"id", "name", "issuer", "jwks_url", "audience" (string or null), "system" (a code),
 * "roles_claim", "groups_claim", "refresh_s", "keys" (how many keys are stored), "fetched_at" (RFC 3339 or null),
 * "last_error" (string or null), "created_at", "updated_at"}; addressed by id or name. Everything but
 * cph_store_issuer_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_ISSUER_H
#define CPH_STORE_ISSUER_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

#define CPH_ISSUERS_MAX 16          /* the snapshot's cap on auth.issuers */
#define CPH_ISSUER_REFRESH_MIN_S 30 /* the default lower bound of refresh_s */
#define CPH_ISSUER_REFRESH_MAX_S 86400
#define CPH_ISSUER_REFRESH_DEFAULT_S 300
#define CPH_ISSUER_URL_MAX 2048

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_issuer_ops;

/** Sets the lower bound of refresh_s (1..CPH_ISSUER_REFRESH_MIN_S; tests lower it); call before any thread starts. */
void cph_store_issuer_set_min_refresh(int seconds);
/** The lower bound of refresh_s in force. */
int cph_store_issuer_min_refresh(void);

/**
 * Checks an issuer from a request and returns a new normalised object {"name", "issuer", "jwks_url", "audience",
 * "system", "roles_claim", "groups_claim", "refresh_s"}, or NULL with err filled (JSON-pointer paths):
 * name [A-Za-z0-9._-]{1,64} (required); issuer 1-256 printable ASCII (required), not the control plane's own issuer
 * ({invalid} at /issuer); jwks_url http:// or https:// with a host, at most 2048 bytes of printable ASCII without
 * spaces (required); audience null or 1-256 printable (default null); system a code (required); roles_claim and
 * groups_claim 1-256 printable (defaults "roles", "groups"); refresh_s an integer min..86400 (default 300). id,
 * created_at, updated_at, keys, fetched_at and last_error are read-only and ignored; anything else {unknown_field}.
 */
json_t *cph_store_issuer_normalize(const json_t *in, cph_error_t *err);
/** Every issuer, sorted by name, as a new array. NULL with err {internal}. */
json_t *cph_store_issuer_list(cph_db_t *db, cph_error_t *err);
/** One issuer by id (all-digit key, tried first) or name. NULL with err {not_found} or {internal}. */
json_t *cph_store_issuer_get(cph_db_t *db, const char *key, cph_error_t *err);
/**
 * Inserts a normalised issuer without keys; *id receives its id. err {conflict} at /name or /issuer when taken, at
 * "" when CPH_ISSUERS_MAX exist; {unknown_system} at /system.
 */
int cph_store_issuer_insert(cph_db_t *db, const json_t *obj, int64_t *id, cph_error_t *err);
/**
 * Replaces issuer id. Its stored keys are kept when issuer and jwks_url are unchanged, else dropped (with fetched_at)
 * until the next fetch. err as insert, or {not_found}.
 */
int cph_store_issuer_update(cph_db_t *db, int64_t id, const json_t *obj, cph_error_t *err);
/** Deletes issuer id. err {not_found}. */
int cph_store_issuer_delete(cph_db_t *db, int64_t id, cph_error_t *err);

/**
 * The issuers that have keys, for the snapshot's auth.issuers: a new array of {"name", "issuer", "audience",
 * "system", "roles_claim", "groups_claim", "keys"} sorted by name (keys as stored: sorted by kid). NULL with err.
 */
json_t *cph_store_issuer_snapshot(cph_db_t *db, cph_error_t *err);
/**
 * What the JWKS thread needs of every issuer: a new array of {"id", "name", "jwks_url", "refresh_s", "updated_at",
 * "jwks" (array or null)} by id. NULL with err {internal}.
 */
json_t *cph_store_issuer_sync_list(cph_db_t *db, cph_error_t *err);
/**
 * Stores keys (the snapshot's key form) as issuer id's keys, fetched_at now and last_error NULL - only when the row's
 * jwks_url and updated_at are still the given ones (the fetch is not stale). Run it inside cph_db_write, so the keys
 * reach the data planes. err {conflict} when stale, {not_found}, {internal}.
 */
int cph_store_issuer_set_keys(cph_db_t *db, int64_t id, const char *jwks_url, const char *updated_at, const json_t *keys,
                              cph_error_t *err);
/**
 * Records the outcome of a fetch that changed no key: error NULL sets fetched_at now and clears last_error; else
 * last_error = error (truncated to 256 bytes), fetched_at and the keys kept. A plain statement (no snapshot). 0 or -1.
 */
int cph_store_issuer_set_status(cph_db_t *db, int64_t id, const char *error, cph_error_t *err);

#endif
