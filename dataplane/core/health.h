/*
 * health: active health checks, on a thread of their own (libcurl multi), never on a worker.
 *
 * After every applied snapshot the control thread hands the new configuration over (cph_health_configure); the
 * thread then checks every target of every service with a health_check on its interval and writes the verdict into
 * the target's cph_target_state_t (core/target.h), which the balancer reads. State lives in the registry, so it
 * survives swaps; targets no longer configured stop being checked.
 */
#ifndef CPH_HEALTH_H
#define CPH_HEALTH_H

#include <jansson.h>
#include "dataplane/core/snapshot.h"

/** Why the last check failed (cph_target_state_t.last_check_error). */
enum {
    CPH_CHECK_OK = 0,
    CPH_CHECK_ERR_CONNECT,
    CPH_CHECK_ERR_TIMEOUT,
    CPH_CHECK_ERR_STATUS, /* answered with a status not in expected_statuses */
    CPH_CHECK_ERR_PROTOCOL
};

/** Starts the health thread (idle until the first configuration). */
void cph_health_start(void);
/** Stops and joins it; in-flight checks are abandoned. */
void cph_health_stop(void);
/**
 * Replaces the set of checked targets with snap's (copied: the snapshot may be released right after). Called on the
 * control thread after each applied snapshot; cheap when nothing changed.
 */
void cph_health_configure(const cph_snapshot_t *snap);
/**
 * The health report of snap's services (shape: docs/dataplane.md "Upstream resilience", the same JSON for the status
 * listener's GET /health/services and the DP -> CP `health` message). New reference.
 */
json_t *cph_health_report(const cph_snapshot_t *snap);
#endif
