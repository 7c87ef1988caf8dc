/*
 * store_service: the services table.
 *
 * API representation: {"id", "name", "targets": [{"url", "weight"}], "timeout_ms", "system": "<code>" | null,
 * "policies": {...}, "consul"?: {"service", "tag"?}, "credentials"?: {"vault_path", "headers" | "basic"},
 * "created_at", "updated_at"} - consul and credentials only when set (service_integrations.h has their form).
 * Every function except cph_store_service_normalize() runs with the database lock held (inside cph_db_write() or
 * between cph_db_lock()/cph_db_unlock()).
 */
#ifndef CPH_STORE_SERVICE_H
#define CPH_STORE_SERVICE_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

/** The operations the admin API drives (api_crud.c). */
extern const cph_store_ops_t cph_store_service_ops;

/**
 * Checks a service from a request and returns a new normalised object: read-only members (id, created_at,
 * updated_at) dropped, validated with cph_schema_validate_service (path relative to the object), defaults filled
 * (weight 1, timeout_ms 60000, system null, policies {}), keys limited to the schema's. "system" (a code, {invalid} at
 * /system otherwise, or null) is checked here; whether it exists, on insert/update. "policies" (an object, {invalid} at
 * /policies otherwise) is checked with cph_schema_validate_service_policies() (errors at /policies/...) and kept as
 * sent: no default is filled in inside it. "consul" and "credentials" (null = absent) are checked by
 * cph_service_integrations_normalize (errors at /consul/..., /credentials/..., /targets), header names lower-cased;
 * with consul, targets are [] (the discovered ones are the store's to keep, see cph_store_service_update). NULL with
 * err filled when invalid.
 */
json_t *cph_store_service_normalize(const json_t *in, cph_error_t *err);
/** Every service, sorted by name, as a new array. NULL with err {internal}. */
json_t *cph_store_service_list(cph_db_t *db, cph_error_t *err);
/**
 * One service by key: an all-digit key is tried as an id first, then any key as a name. A new object, or NULL with
 * err {not_found} or {internal}.
 */
json_t *cph_store_service_get(cph_db_t *db, const char *key, cph_error_t *err);
/** Inserts a normalised service; *id receives its id. err {conflict} if the name exists, {unknown_system} at /system. */
int cph_store_service_insert(cph_db_t *db, const json_t *svc, int64_t *id, cph_error_t *err);
/**
 * Replaces service id with a normalised object (name and system included). With consul, the stored (discovered)
 * targets are kept when the stored consul equals the new one, and emptied otherwise. err {conflict} if the new name
 * is taken, {unknown_system} at /system, {not_found}.
 */
int cph_store_service_update(cph_db_t *db, int64_t id, const json_t *svc, cph_error_t *err);
/** Deletes service id. err {conflict} while routes use it, {not_found} if it does not exist. */
int cph_store_service_delete(cph_db_t *db, int64_t id, cph_error_t *err);

/**
 * The id of the service called name into *id, for the tables that refer to services (routes, endpoint rules): the API
 * speaks names. err {unknown_service} at path when there is none. Returns 0 or -1.
 */
int cph_store_service_id(cph_db_t *db, const char *name, const char *path, int64_t *id, cph_error_t *err);

/**
 * Services discovered through Consul (a "consul" member): a new array [{"id", "name", "consul": {"service", "tag"?},
 * "targets": [...]}] by name, or NULL with err. Lock held (sync_consul.c reads it every second).
 */
json_t *cph_store_service_consul_list(cph_db_t *db, cph_error_t *err);
/**
 * Inside cph_db_write: sets the discovered targets ([{"url","weight"}]; stored with weight 1 filled in and sorted by
 * url) of service id, when its consul member still equals `consul` (else err {conflict}: the admin changed it
 * meanwhile, or the service has no consul); err {not_found} for no such id, {invalid} at /targets/... for targets the
 * snapshot schema refuses. Fills change ("update", "service", before/after the service's API objects).
 */
int cph_store_service_set_discovered(cph_db_t *db, int64_t id, const json_t *consul, const json_t *targets,
                                     cph_db_change_t *change, cph_error_t *err);

#endif
