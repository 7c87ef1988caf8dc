/*
 * api_authz: the authorization tools of the admin API - POST /api/v1/authz/explain (why a request would be allowed
 * or refused, decided by the data plane's own code on the current snapshot) and GET /api/v1/authz/shadow (the
 * shadow-rule counters the connected data planes report). docs/admin-api.md "Authorization: explain and shadow".
 */
#ifndef CPH_API_AUTHZ_H
#define CPH_API_AUTHZ_H

#include <jansson.h>
#include "controlplane/api.h"
#include "controlplane/db.h"
#include "dataplane/core/snapshot.h"

/**
 * The explain core, without HTTP: checks request (the body of POST /api/v1/authz/explain: {"method", "path",
 * "host"?, and at most one of "token", "api_key", "user" (+ "system"?)}), then runs the data plane's stages on snap -
 * path canonicalisation, the reserved /auth prefix, the router, authn, authz with a trace - and returns the new answer
 * object (docs/access.md section 7). db is only read for the "user" form (NULL refuses that form). Returns NULL with err filled:
 * {unknown_field | missing_field | invalid} with a JSON pointer for a bad request, {not_found} at /user for an unknown
 * user, {unknown_system} at /system, {internal}.
 */
json_t *cph_explain(const cph_snapshot_t *snap, cph_db_t *db, const json_t *request, cph_error_t *err);

/** The "authz" resource: POST .../authz/explain, GET .../authz/shadow; anything else 404 or 405. */
void cph_api_authz(cph_api_req_t *req);

/** Drops the snapshot explain keeps built (the cache is per process; for a clean exit and the tests). */
void cph_api_authz_cache_clear(void);

#endif
