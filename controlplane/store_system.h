/*
 * store_system: the systems table - the scope of roles, groups, api keys and user memberships.
 *
 * API representation: {"id", "code", "name", "created_at", "updated_at"}; addressed by id or code. Everything but
 * cph_store_system_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_SYSTEM_H
#define CPH_STORE_SYSTEM_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_system_ops;

/**
 * Checks a system from a request ({"code": [a-z0-9_-]{1,64}, "name": 1..200 bytes}; id, created_at, updated_at
 * ignored; anything else {unknown_field}) and returns a new normalised object, or NULL with err filled.
 */
json_t *cph_store_system_normalize(const json_t *in, cph_error_t *err);
/** Every system, sorted by code, as a new array. NULL with err {internal}. */
json_t *cph_store_system_list(cph_db_t *db, cph_error_t *err);
/** One system by id (all-digit key, tried first) or code. NULL with err {not_found} or {internal}. */
json_t *cph_store_system_get(cph_db_t *db, const char *key, cph_error_t *err);
/** Inserts a normalised system; *id receives its id. err {conflict} at /code if the code exists. */
int cph_store_system_insert(cph_db_t *db, const json_t *sys, int64_t *id, cph_error_t *err);
/** Replaces system id (code included: references follow, they hold ids). err {conflict} at /code, {not_found}. */
int cph_store_system_update(cph_db_t *db, int64_t id, const json_t *sys, cph_error_t *err);
/** Deletes system id. err {conflict} while roles, groups, api keys or users refer to it; {not_found}. */
int cph_store_system_delete(cph_db_t *db, int64_t id, cph_error_t *err);

#endif
