/*
 * store_user: the users table and a user's memberships (user_systems, user_roles, user_groups).
 *
 * API representation: {"id", "username", "email": string|null, "superuser", "enabled", "systems": ["<code>"],
 * "roles": [{"system", "name"}], "groups": [{"system", "name"}], "created_at", "updated_at"}; addressed by id or
 * username. The password is write-only: a request may carry "password", no answer ever does, and neither its hash.
 * Everything but cph_store_user_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_USER_H
#define CPH_STORE_USER_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_user_ops;

/**
 * Checks a user from a request and returns a new normalised object: defaults filled (email null, superuser false,
 * enabled true, lists []), every role and group of a system the user is a member of ({invalid} at
 * /roles/<i>/system otherwise). When "password" is given (8..1024 bytes) it is hashed with argon2id here - outside
 * the database lock - and the result holds "password_hash" instead. NULL with err filled when invalid.
 */
json_t *cph_store_user_normalize(const json_t *in, cph_error_t *err);
/** Every user, sorted by username. NULL with err {internal}. */
json_t *cph_store_user_list(cph_db_t *db, cph_error_t *err);
/** One user by id (all-digit key, tried first) or username. NULL with err {not_found} or {internal}. */
json_t *cph_store_user_get(cph_db_t *db, const char *key, cph_error_t *err);
/**
 * Inserts a user and its memberships. err {missing_field} at /password without one, {conflict} at /username or
 * /email (case-insensitive), {unknown_system} at /systems/<i>, {unknown_role} / {unknown_group} at /roles/<i>,
 * /groups/<i>.
 */
int cph_store_user_insert(cph_db_t *db, const json_t *user, int64_t *id, cph_error_t *err);
/**
 * Replaces user id and its memberships; without a password_hash the stored hash is kept. When the user is disabled
 * (enabled true -> false) or its superuser flag, systems, roles or groups change, its tokens issued until now are
 * revoked (cph_store_revocation_user, before = now). Errors as insert, plus {not_found}.
 */
int cph_store_user_update(cph_db_t *db, int64_t id, const json_t *user, cph_error_t *err);
/**
 * Deletes user id with its memberships and refresh tokens (ON DELETE CASCADE) and revokes its tokens issued until now
 * (cph_store_revocation_user, before = now). err {not_found}.
 */
int cph_store_user_delete(cph_db_t *db, int64_t id, cph_error_t *err);
/** The stored argon2id hash of user id as a new string, or NULL (no such user). For the login API and tests. */
char *cph_store_user_password_hash(cph_db_t *db, int64_t id);

#endif
