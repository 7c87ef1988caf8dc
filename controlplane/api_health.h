/*
 * api_health: GET /api/v1/health (the control plane's summary: data planes and integrations), the upstream health
 * the data planes report - GET /api/v1/health/services (docs/admin-api.md "Upstream health") - and the checker of the
 * `health` socket message those reports arrive in (proto/PROTOCOL.md section 3).
 */
#ifndef CPH_API_HEALTH_H
#define CPH_API_HEALTH_H

#include <jansson.h>
#include "controlplane/api.h"
#include "proto/proto.h"

#define CPH_HEALTH_MAX_SERVICES 4096       /* services in one report (the snapshot's cap) */
#define CPH_HEALTH_MAX_TARGETS 256         /* targets of one service (the snapshot's cap) */
#define CPH_HEALTH_MAX_TOTAL_TARGETS 16384 /* targets in one report, all services together */
#define CPH_HEALTH_URL_MAX 512             /* bytes of a target url */
#define CPH_HEALTH_ERROR_MAX 256           /* bytes kept of a last_check error (cut on a character boundary) */

/**
 * Reads the "services" member of a data plane's health message into a new array the control plane may keep and serve.
 * Nothing is trusted: services is an array of at most CPH_HEALTH_MAX_SERVICES objects {"name" (1-64 bytes of
 * [A-Za-z0-9._-]), "health_check" (bool), "targets": [at most CPH_HEALTH_MAX_TARGETS objects {"url" (1 to
 * CPH_HEALTH_URL_MAX bytes of printable ASCII), "weight" (int 0..1000000), "health" ("healthy" | "unhealthy" |
 * "unchecked"), "breaker" ("closed" | "open" | "half_open"), "active", "ejections" (ints >= 0), "last_check" (absent,
 * null or {"at" (1-64 bytes of [0-9A-Za-z:.+-]), "status" (null or int 0..999), "error" (null or a string, cut to
 * CPH_HEALTH_ERROR_MAX bytes), "duration_ms" (null or int >= 0)})}]}, CPH_HEALTH_MAX_TOTAL_TARGETS targets in all.
 * Unknown members are left out of the copy (forward compatibility); a missing member, a wrong type, a real number, an
 * out-of-range value, a NUL byte in a string or a cap passed refuses the whole report: NULL with err {invalid} at the
 * JSON pointer of the offending value (relative to the message: "/services/2/targets/0/health").
 */
json_t *cph_api_health_sanitize(const json_t *services, cph_error_t *err);

/**
 * The summary GET /api/v1/health answers (a new object): {"status": "ok" | "degraded", "problems": [strings naming
 * what makes it degraded: a connected data plane whose status is "nacked", an integration whose state is "degraded"],
 * "version" (the current snapshot's version, 0 before the first), "dataplanes": {"connected", "latest_version",
 * "max_lag" (the largest lag of a connected one, 0 when none), "items": cph_dpserver_summary()'s entries}, "integrations":
 * {"vault" | "consul": {"state", "reason", "since", "last_success"}}}. db and dps may be NULL (version 0, no data planes).
 */
json_t *cph_api_health_summary(cph_db_t *db, cph_dpserver_t *dps);

/**
 * The "health" resource: GET .../health answers 200 with cph_api_health_summary(). GET .../health/services answers 200
 * {"dataplanes": [{"dp_id", "received_at" (RFC 3339, null before the first report), "services": [...]}]}, one entry per connected
 * data plane sorted by dp_id, each with its last report (cph_dpserver_health()); ?service=<name> keeps only that service in every
 * entry. Any other key is 404.
 */
void cph_api_health(cph_api_req_t *req);

#endif
