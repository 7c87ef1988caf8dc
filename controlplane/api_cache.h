/*
 * api_cache: POST /api/v1/cache/purge - drop a route's cached responses on every connected data plane
 * (docs/admin-api.md "Response cache: purge", proto/PROTOCOL.md section 3 "purge").
 */
#ifndef CPH_API_CACHE_H
#define CPH_API_CACHE_H

#include <jansson.h>
#include "controlplane/api.h"
#include "proto/proto.h"

/**
 * Checks the body of a purge request: an object with "route" (required, a route name: 1-64 bytes of [A-Za-z0-9._-])
 * and "prefix" (optional, null or an upstream path prefix: 1 to CPH_PURGE_PREFIX_MAX bytes, starting with '/',
 * canonical - cph_path_canonicalize() returns it unchanged), nothing else. On success *route and *prefix point into
 * body (*prefix NULL for none) and 0 is returned; else -1 with err {unknown_field | missing_field | invalid} at the
 * member's JSON pointer ("" when body is not an object).
 */
int cph_api_cache_check_purge(const json_t *body, const char **route, const char **prefix, cph_error_t *err);

/**
 * The "cache" resource: POST .../cache/purge checks the body, looks the route up by name (404 not_found at /route when
 * there is none), records the audit row (action "purge", entity "route", after {"route", "prefix"}, the current
 * version: no config write, no version bump) in its own transaction, sends the purge message (with "at": the control
 * plane's wall clock in ms when the request came in) to every connected data plane - and keeps it for the ones that
 * connect later (cph_dpserver_purge) - and answers 202 {"purged_on": <how many>}. Any other key is 404.
 */
void cph_api_cache(cph_api_req_t *req);

#endif
