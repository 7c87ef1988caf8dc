/*
 * store_endpoint: the endpoint rules (endpoints, endpoint_roles, endpoint_groups) - who may call which method and
 * path of a service.
 *
 * API representation: {"id", "service": "<service name>", "method": "*" | "GET" | ..., "path": "<pattern>",
 * "public": false, "shadow": false, "roles": [{"system", "name"}], "groups": [{"system", "name"}], "rate_limits": null |
 * [limit...], "created_at", "updated_at"};
 * addressed by id. Everything but cph_store_endpoint_normalize() runs with the database lock held.
 */
#ifndef CPH_STORE_ENDPOINT_H
#define CPH_STORE_ENDPOINT_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_endpoint_ops;

/**
 * Checks an endpoint rule (service required; method default "*"; path required; public default false; shadow (evaluated
 * and counted by the data planes, never enforced) default false; roles and groups [{"system", "name"}] default []; a
 * public rule lists no roles or groups; the path checked by proto's cph_endpoint_pattern_check; rate_limits null (the
 * default: the route's apply) or an array of rate limits checked by the schema's route policies rules, errors at
 * /rate_limits/...; [] = no limit) into a new object, or NULL with err filled.
 */
json_t *cph_store_endpoint_normalize(const json_t *in, cph_error_t *err);
/** Every rule, sorted by service name, path, method, id (byte order). NULL with err {internal}. */
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
