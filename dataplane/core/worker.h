/*
 * worker: one h2o event loop on its own thread, with its h2o context, its current snapshot and its counters.
 *
 * Workers never block: no disk, no database, no blocking DNS. Everything a worker owns is touched only on its own
 * thread, except the stats (read by the scraper with relaxed atomics) and the swap receiver (h2o_multithread).
 */
#ifndef CPH_WORKER_H
#define CPH_WORKER_H

#include <pthread.h>
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/snapshot.h"
#include "dataplane/core/stats.h"

struct st_cph_proxy_worker_t; /* filter/proxy.c */
struct st_cph_redis_worker_t; /* core/redis.c */
struct st_cph_balance_worker_t; /* core/balance.c */
struct st_cph_ws_worker_t;      /* core/websocket.c */

typedef struct st_cph_worker_t {
    h2o_context_t ctx; /* first member: cph_worker_from_ctx() */
    uint32_t id;
    pthread_t tid;
    cph_snapshot_t *snap; /* current snapshot; NULL until the first one arrives (routes answer 503 no_config) */
    cph_worker_stats_t *stats;
    struct st_cph_proxy_worker_t *proxy;        /* upstream pools, timeouts, balancer positions */
    struct st_cph_redis_worker_t *redis;        /* where this worker's Redis answers arrive (core/redis.c) */
    struct st_cph_balance_worker_t *balance;    /* round-robin positions (core/balance.c) */
    struct st_cph_ws_worker_t *websocket;       /* open websocket tunnels (core/websocket.c) */
    h2o_multithread_receiver_t swap_receiver;   /* snapshots from the control thread */
    h2o_multithread_receiver_t signal_receiver; /* drain requests from the control thread */
    struct st_cph_server_t *server;
    h2o_linklist_t listeners; /* private to core/server.c */
    int draining;
    /* private to core/server.c: connection and request tracking for the graceful drain */
    h2o_linklist_t conns; /* accepted client connections (struct st_cph_conn_track_t) */
    size_t num_conns;
    size_t inflight; /* requests that reached the handler and whose pool is not yet cleared */
    int stop;        /* set by the control thread's message: leave the event loop */
    int drained_sent;
} cph_worker_t;

static inline cph_worker_t *cph_worker_from_ctx(h2o_context_t *ctx)
{
    return (cph_worker_t *)ctx;
}

#endif
