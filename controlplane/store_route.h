/*
 * store_route: the routes table.
 *
 * API representation: {"id", "name", "service": "<service name>", "paths", "hosts", "methods", "strip_prefix",
 * "default_access": "public" | "authenticated" | "deny", "policies": {...}, "created_at", "updated_at"}. As in store_service.h,
 * everything but cph_store_route_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_ROUTE_H
#define CPH_STORE_ROUTE_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_route_ops;

/**
 * Checks a route from a request and returns a new normalised object: read-only members dropped, validated with
 * cph_schema_validate_route (path relative to the object), defaults filled (hosts [], methods [], strip_prefix false,
 * default_access "authenticated", policies {}; any other default_access than the three is {invalid} at /default_access,
 * and a policies that is not an object {invalid} at /policies, checked here; the policy rules are the schema's). The
 * policies object is kept as given (no default filled inside it). NULL with err filled when invalid. Whether the service exists is
 * checked on insert/update.
 */
json_t *cph_store_route_normalize(const json_t *in, cph_error_t *err);
/** Every route, sorted by name, as a new array. NULL with err {internal}. */
json_t *cph_store_route_list(cph_db_t *db, cph_error_t *err);
/** One route by id (all-digit key, tried first) or name. NULL with err {not_found} or {internal}. */
json_t *cph_store_route_get(cph_db_t *db, const char *key, cph_error_t *err);
/**
 * Inserts a normalised route; *id receives its id. err {unknown_service} at /service if its service does not exist,
 * {conflict} if the name exists.
 */
int cph_store_route_insert(cph_db_t *db, const json_t *route, int64_t *id, cph_error_t *err);
/** Replaces route id; errors as insert, plus {not_found}. */
int cph_store_route_update(cph_db_t *db, int64_t id, const json_t *route, cph_error_t *err);
/** Deletes route id; err {not_found} if absent. */
int cph_store_route_delete(cph_db_t *db, int64_t id, cph_error_t *err);

#endif
