/*
 * proxy_pool: the proxy's per-worker state (filter/proxy.c) - keep-alive connections to the upstream targets, pooled
 * per target (by its stable pool id, so a pool outlives snapshot swaps), and one h2o_timeout_t per distinct timeout.
 * Internal to filter/proxy.c and filter/proxy_pool.c; filter/fetch.c shares the pools through fetch.h.
 *
 * An idle connection stays registered with the event loop, reading: the upstream's close (or stray bytes) drops it
 * at once, and the next request just writes to it.
 */
#ifndef CPH_PROXY_POOL_H
#define CPH_PROXY_POOL_H

#include <netdb.h>
#include <sys/socket.h>
#include "dataplane/core/worker.h"
#include "dataplane/core/snapshot.h"

#define CPH_POOL_KEEPALIVE_MS 2000
#define CPH_POOL_MAX_IDLE 1024 /* idle connections kept per upstream target and worker */

typedef struct st_cph_pool_t {
    h2o_linklist_t idle; /* cph_upconn_t, most recently used last */
    size_t num_idle;
    struct sockaddr_storage addr; /* when the host is numeric: resolved once */
    socklen_t addrlen;            /* 0: resolve by name on each connect */
} cph_pool_t;

/* A connection to an upstream target: idle in its pool, or used by one exchange (u, filter/proxy.c's). */
typedef struct st_cph_upconn_t {
    h2o_linklist_t link; /* in pool->idle while idle */
    h2o_socket_t *sock;
    cph_pool_t *pool;
    struct st_upstream_t *u; /* the exchange using it, NULL while idle */
    h2o_timeout_entry_t idle_timer;
} cph_upconn_t;

typedef struct st_cph_timeout_ctx_t {
    uint64_t ms;
    h2o_timeout_t timeout;
} cph_timeout_ctx_t;

struct st_cph_proxy_worker_t {
    cph_worker_t *worker;
    cph_pool_t **pools; /* by pool id; NULL until first use */
    size_t num_pools;
    h2o_timeout_t idle_timeout;
    cph_timeout_ctx_t **timeouts;
    size_t num_timeouts;
};

/** The pool of target t on this worker (created on first use; a numeric host is resolved then, without blocking). */
cph_pool_t *cph_proxy_pool_get(struct st_cph_proxy_worker_t *pw, const cph_target_t *t);
/** Takes the most recently used idle connection out of pool (its idle timer stopped), or NULL when there is none. */
cph_upconn_t *cph_pool_pop(cph_pool_t *pool);
/** Wraps a new connected socket for pool (not idle: the caller uses it; sock->data is set to it). */
cph_upconn_t *cph_upconn_new(cph_pool_t *pool, h2o_socket_t *sock);
/** Puts c back into its pool, idle and reading; the least recently used is closed past CPH_POOL_MAX_IDLE. */
void cph_upconn_return(struct st_cph_proxy_worker_t *pw, cph_upconn_t *c);
/** Closes c's socket and frees it (out of its pool when it was idle). */
void cph_upconn_close(cph_upconn_t *c);
/** The h2o_timeout_t of this worker for ms (0 is read as 1), created on first use. */
cph_timeout_ctx_t *cph_proxy_timeout_ctx(struct st_cph_proxy_worker_t *pw, uint64_t ms);

#endif
