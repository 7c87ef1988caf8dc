/*
 * websocket: tunnelling an HTTP/1.1 `Upgrade: websocket` request of a route with policies.websocket to one target of
 * its service, after authentication, authorization and rate limiting (docs/dataplane.md "Websockets").
 *
 * Each worker keeps its open tunnels in a list; when it takes a new snapshot, cph_websocket_on_swap re-binds every
 * tunnel to its route in the new snapshot (by the route's stable metric id) or, when the route or its websocket policy
 * is gone, schedules a close after gateway.websocket.drain_grace_ms. Per-client tunnel counts are shared by the DP's
 * workers.
 */
#ifndef CPH_WEBSOCKET_H
#define CPH_WEBSOCKET_H

#include <stdint.h>
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/worker.h"

/** Route policies.websocket, compiled (compile/websocket.c or compile/router.c). */
typedef struct st_cph_ws_policy_t {
    uint64_t idle_timeout_ms;
    uint64_t max_lifetime_ms; /* 0 = none */
    uint32_t max_per_client;  /* 0 = unlimited */
    h2o_iovec_t *origins;     /* lower-case; empty = not checked; "*" = any */
    size_t num_origins;
    uint64_t max_frame_bytes;
    int close_on_token_expiry;
} cph_ws_policy_t;

/** Per-worker tunnel list; run on the worker thread. */
void cph_websocket_worker_init(cph_worker_t *w);
/** Closes every tunnel of the worker (shutdown). */
void cph_websocket_worker_dispose(cph_worker_t *w);
/** The worker took `snap`: tunnels keep their route, adopt its new policy, or start the drain grace. */
void cph_websocket_on_swap(cph_worker_t *w, cph_snapshot_t *snap);
/** Open tunnels on this worker (metrics, drain). */
size_t cph_websocket_count(cph_worker_t *w);

#endif
