/*
 * store_endpoint: the endpoint rules (endpoints, endpoint_roles, endpoint_groups) - who may call which method and
 * path of a service.
 *
 * API representation: {"id", "service": "<service name>", "method": "*" | "GET" | ..., "path": "<pattern>",
 * "public": false, "roles": [{"system", "name"}], "groups": [{"system", "name"}], "created_at", "updated_at"};
 * addressed by id. Everything but cph_store_endpoint_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_ENDPOINT_H
#define CPH_STORE_ENDPOINT_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

#define CPH_ENDPOINT_PATH_MAX 1024
#define CPH_ENDPOINT_PARAMS_MAX 16

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_endpoint_ops;

/**
 * Checks a path pattern: an exact path ("/exact"), a prefix (a path whose last segment is "*": "/prefix/" then "*",
 * the only place "*" may be) or a template whose segments may be "{name}" (name [A-Za-z_][A-Za-z0-9_]{0,31}, unique,
 * at most CPH_ENDPOINT_PARAMS_MAX); at most CPH_ENDPOINT_PATH_MAX bytes. With every parameter replaced by a value and
 * the "*" dropped it must be a canonical path (cph_path_canonicalize() returns it unchanged: no dot segments, no
 * "//", no ';', no escapes of unreserved characters), and no raw '{', '}' or '*' may appear elsewhere. Returns 0, or
 * -1 with err {invalid} at path.
 */
int cph_store_endpoint_check_path(const char *pattern, const char *path, cph_error_t *err);
/**
 * Checks an endpoint rule (service required; method default "*"; path required; public default false; roles and
 * groups [{"system", "name"}] default []; a public rule lists no roles or groups) into a new object, or NULL with
 * err filled.
 */
json_t *cph_store_endpoint_normalize(const json_t *in, cph_error_t *err);
/** Every rule, sorted by service name, path, method. NULL with err {internal}. */
json_t *cph_store_endpoint_list(cph_db_t *db, cph_error_t *err);
/** One rule by id (the only key). NULL with err {not_found} or {internal}. */
json_t *cph_store_endpoint_get(cph_db_t *db, const char *key, cph_error_t *err);
/**
 * Inserts a rule with its roles and groups. err {unknown_service} at /service, {unknown_system} / {unknown_role} at
 * /roles/<i>, {unknown_group} at /groups/<i>, {conflict} at /path when the service has a rule for this method and
 * path.
 */
int cph_store_endpoint_insert(cph_db_t *db, const json_t *ep, int64_t *id, cph_error_t *err);
/** Replaces rule id; errors as insert, plus {not_found}. */
int cph_store_endpoint_update(cph_db_t *db, int64_t id, const json_t *ep, cph_error_t *err);
/** Deletes rule id with its links. err {not_found}. */
int cph_store_endpoint_delete(cph_db_t *db, int64_t id, cph_error_t *err);

#endif
