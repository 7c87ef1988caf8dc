/*
 * store_api_key: the api_keys table and the roles and groups each key carries (api_key_roles, api_key_groups).
 *
 * API representation: {"id", "system": "<code>", "name", "prefix", "roles": ["<role name>"], "groups": ["<group
 * name>"], "expires_at": RFC 3339 UTC | null, "revoked", "created_at", "updated_at"}; addressed by id or
 * "<system code>:<name>". A key is "<prefix>.<secret>": the creation answer shows it once (member "key"); the
 * database keeps the prefix and the SHA-256 of the secret only. Everything but cph_store_api_key_normalize() runs with
 * the database lock held.
 */
#ifndef CPH_STORE_API_KEY_H
#define CPH_STORE_API_KEY_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

#define CPH_API_KEY_PREFIX_LEN 10 /* lower-case hex: 40 random bits, only for lookup */
#define CPH_API_KEY_SECRET_BYTES 32

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_api_key_ops;

/**
 * Checks an api key ({"system", "name", "roles"?, "groups"?, "expires_at"?: RFC 3339 | null, "revoked"?: bool};
 * read-only id, prefix, created_at, updated_at ignored) and returns a new normalised object with expires_at
 * converted to UTC ("2026-01-02T03:04:05.000Z"), plus a freshly generated "key" ("<prefix>.<secret>", the secret
 * 32 random bytes in unpadded base64url), "prefix" and "secret_sha256" (hex). Only insert uses the generated
 * members; an update never changes a key's secret. NULL with err filled when invalid.
 */
json_t *cph_store_api_key_normalize(const json_t *in, cph_error_t *err);
/** Every api key, sorted by system code then name. NULL with err {internal}. */
json_t *cph_store_api_key_list(cph_db_t *db, cph_error_t *err);
/** One api key by id or "<system>:<name>". NULL with err {not_found} or {internal}. */
json_t *cph_store_api_key_get(cph_db_t *db, const char *key, cph_error_t *err);
/**
 * Inserts an api key with its roles and groups (names in the key's system). err {unknown_system} at /system,
 * {unknown_role} at /roles/<i>, {unknown_group} at /groups/<i>, {conflict} at /name.
 */
int cph_store_api_key_insert(cph_db_t *db, const json_t *k, int64_t *id, cph_error_t *err);
/** Replaces everything of api key id but its prefix and secret. Errors as insert, plus {not_found}. */
int cph_store_api_key_update(cph_db_t *db, int64_t id, const json_t *k, cph_error_t *err);
/** Deletes api key id with its links. err {not_found}. */
int cph_store_api_key_delete(cph_db_t *db, int64_t id, cph_error_t *err);
/**
 * The snapshot's "api_keys" (docs/access.md section 1): every key that is not revoked, sorted by prefix, as {"id", "prefix",
 * "secret_sha256", "system", "roles": [names], "groups": [names], "expires_at": unix seconds | null} (roles and
 * groups sorted; an expiry with a fraction of a second is cut to the second before). A new array, or NULL with err
 * {internal}. The only reader of secret_sha256: no admin answer carries it.
 */
json_t *cph_store_api_key_snapshot(cph_db_t *db, cph_error_t *err);

#endif
