/*
 * snapbuild: SQLite rows -> the canonical snapshot body (schema v1, proto/PROTOCOL.md §5).
 */
#ifndef CPH_SNAPBUILD_H
#define CPH_SNAPBUILD_H

#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/settings.h"

/**
 * Builds {"services":[...], "routes":[...], "keys"?:[...], "gateway", "auth", "groups", "endpoints", "api_keys",
 * "revoked"} from the rows, services and routes sorted by name (byte order; the published public signing keys by kid,
 * the member absent when there is none; "gateway" as cph_snapbuild_gateway(cph_settings_gateway()); the access
 * sections as cph_snapbuild_access), every optional field written out with its value (defaults explicit: a service's
 * "system" null, a route's "default_access" and "policies" ({} when none)), no ids (but an endpoint rule's and an api
 * key's) or timestamps. Caller holds the lock. Returns a new reference, or NULL with err {internal}. The same
 * rows (and auth settings) always give the same body, whatever order they were inserted in, so the same hash
 * (cph_snapshot_hash).
 */
json_t *cph_snapbuild_body(cph_db_t *db, cph_error_t *err);

/**
 * Adds the access sections of docs/access.md section 1 to body, every one always: "auth" (cph_settings_auth(), every member,
 * audience and api null when unset, plus "issuers" - the external issuers that have keys - when there is one), "groups" [{"system",
 * "name", "roles"}] by system then name, "endpoints" [{"id", "service", "method", "path", "public", "shadow", "roles", "groups",
 * "rate_limits" (only when the rule has its own)}] by service, path, method, id, "api_keys" (cph_store_api_key_snapshot: not
 * revoked, by prefix) and "revoked" (cph_store_revocation_snapshot). Caller holds the lock. Returns 0, or -1 with err {internal}
 * (body then holds none, some or all of them).
 */
int cph_snapbuild_access(cph_db_t *db, json_t *body, cph_error_t *err);

/**
 * Turns the services of a body being built (services: their API objects, ours to edit) into their snapshot form:
 * "consul" dropped, "credentials" (admin form) replaced by its resolved form (proto/PROTOCOL.md section 5, "service
 * credentials") - {"source": "vault:<path>@<version>", "headers": [{"name", "value"}, ...]} built from the stored
 * secret (cph_store_secret_get), or {"source": "vault:<path>", "error": "<why>"} when Vault is not configured, the
 * secret has not been read yet, a key is missing or a value cannot be sent in a header; the error texts never hold a
 * value. Services without credentials are left as they are. Caller holds the lock. Returns 0, or -1 with err
 * {internal} when the database fails.
 */
int cph_snapbuild_credentials(cph_db_t *db, json_t *services, cph_error_t *err);

/**
 * A new copy of the snapshot body with every services[].credentials.headers[].value replaced by "(redacted)", for
 * every admin view of a body (GET /api/v1/snapshot?body=1, history and diffs). The source stays, so the version in
 * force is still visible. Out of memory aborts.
 */
json_t *cph_snapbuild_redact(const json_t *body);

/**
 * The "gateway" section of g (proto/PROTOCOL.md section 5) with every member: {"trusted_proxy_hops",
 * "ip_allow": [], "ip_deny": [], "limits": {"max_body_bytes", "max_url_bytes", "max_headers", "max_header_bytes"},
 * "redis": null | {"host", "port", "db", "timeout_ms"}, "login_rate_limit": {"rate", "period_s", "burst"}}. A new
 * reference (out of memory aborts).
 */
json_t *cph_snapbuild_gateway(const cph_gateway_settings_t *g);

#endif
