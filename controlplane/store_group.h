/*
 * store_group: the groups table and the roles each group carries (group_roles).
 *
 * API representation: {"id", "system": "<code>", "name", "roles": ["<role name in the same system>", ...],
 * "created_at", "updated_at"}; addressed by id or "<system code>:<name>". Everything but
 * cph_store_group_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_GROUP_H
#define CPH_STORE_GROUP_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_group_ops;

/**
 * Checks a group ({"system": code, "name", "roles"?: [role names]}; roles default [], no duplicates) into a new
 * object, or NULL with err filled.
 */
json_t *cph_store_group_normalize(const json_t *in, cph_error_t *err);
/** Every group, sorted by system code then name, roles sorted. NULL with err {internal}. */
json_t *cph_store_group_list(cph_db_t *db, cph_error_t *err);
/** One group by id or "<system>:<name>". NULL with err {not_found} or {internal}. */
json_t *cph_store_group_get(cph_db_t *db, const char *key, cph_error_t *err);
/**
 * Inserts a group and its roles. err {unknown_system} at /system, {unknown_role} at /roles/<i> (a role must be of
 * the group's system), {conflict} at /name.
 */
int cph_store_group_insert(cph_db_t *db, const json_t *group, int64_t *id, cph_error_t *err);
/** Replaces group id and its roles; a group held by users, api keys or endpoint rules cannot change system ({conflict}). */
int cph_store_group_update(cph_db_t *db, int64_t id, const json_t *group, cph_error_t *err);
/** Deletes group id and its role links. err {conflict} while users, api keys or endpoint rules hold it; {not_found}. */
int cph_store_group_delete(cph_db_t *db, int64_t id, cph_error_t *err);

#endif
