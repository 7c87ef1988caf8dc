/*
 * store_role: the roles table. A role belongs to one system; its name is unique within that system.
 *
 * API representation: {"id", "system": "<code>", "name", "created_at", "updated_at"}; addressed by id or by
 * "<system code>:<name>". Everything but cph_store_role_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_ROLE_H
#define CPH_STORE_ROLE_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_role_ops;

/** Checks a role ({"system": code, "name": [A-Za-z0-9_.-]{1,64}}) into a new object, or NULL with err filled. */
json_t *cph_store_role_normalize(const json_t *in, cph_error_t *err);
/** Every role, sorted by system code then name. NULL with err {internal}. */
json_t *cph_store_role_list(cph_db_t *db, cph_error_t *err);
/** One role by id or "<system>:<name>". NULL with err {not_found} or {internal}. */
json_t *cph_store_role_get(cph_db_t *db, const char *key, cph_error_t *err);
/** Inserts a role. err {unknown_system} at /system, {conflict} at /name if the system has a role of that name. */
int cph_store_role_insert(cph_db_t *db, const json_t *role, int64_t *id, cph_error_t *err);
/**
 * Replaces role id (renames follow everywhere: holders refer to it by id). Moving a role that groups, users, api
 * keys or endpoint rules hold to another system is {conflict}: they would hold a role of a foreign system. Errors as insert, plus
 * {not_found}.
 */
int cph_store_role_update(cph_db_t *db, int64_t id, const json_t *role, cph_error_t *err);
/** Deletes role id. err {conflict} while a group, user, api key or endpoint rule holds it; {not_found}. */
int cph_store_role_delete(cph_db_t *db, int64_t id, cph_error_t *err);

#endif
