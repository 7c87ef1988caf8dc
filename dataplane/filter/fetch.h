/*
 * filter/fetch: one buffered HTTP/1.1 exchange with a target of a route's service, for stages that need a whole
 * upstream answer before they can respond (filter/aggregate.c's backends, filter/pdf_source.c's page). It is the proxy's
 * exchange without streaming: the same admission, pick, retries and outcome accounting (filter/proxy_balance.h), the
 * same head builder (filter/proxy_head.h) and the same per-worker keep-alive pools (filter/proxy.c).
 */
#ifndef CPH_FILTER_FETCH_H
#define CPH_FILTER_FETCH_H

#include <sys/socket.h>
#include "dataplane/core/balance.h"
#include "dataplane/core/h1resp.h"
#include "dataplane/core/pipeline.h"

/** Why a fetch produced no usable answer. Every kind but OK and CREDENTIALS was counted in the service's upstream errors. */
typedef enum en_cph_fetch_error_t {
    CPH_FETCH_OK = 0,      /* a complete final response */
    CPH_FETCH_CREDENTIALS, /* the service's credentials could not be resolved: the upstream was never called */
    CPH_FETCH_NO_TARGET,   /* the service has no target */
    CPH_FETCH_OVERLOADED,  /* the service's max_requests or max_pending is reached */
    CPH_FETCH_NO_HEALTHY,  /* no target could be picked */
    CPH_FETCH_CONNECT,     /* resolution or connect failed (retries included) */
    CPH_FETCH_TIMEOUT,     /* a route timeout (connect_ms, first_byte_ms, idle_ms, total_ms) */
    CPH_FETCH_PROTOCOL,    /* the upstream closed early or sent a malformed response */
    CPH_FETCH_TOO_LARGE,   /* the body is longer than max_body: status and headers are set, body is not */
} cph_fetch_error_t;

/** What the callback gets. Everything points into memory that is valid during the callback only (headers: r's pool). */
typedef struct st_cph_fetch_result_t {
    cph_fetch_error_t error;
    int status;                       /* the final status when a head came (OK, TOO_LARGE), else 0 */
    const struct phr_header *headers; /* the final head's headers (copied to the request's pool) */
    size_t num_headers;
    h2o_iovec_t body; /* the decoded body (OK only) */
} cph_fetch_result_t;

typedef struct st_cph_fetch_t cph_fetch_t;
typedef void (*cph_fetch_cb)(void *data, const cph_fetch_result_t *res);

/** The sub-request. r must outlive the fetch (its pool holds the fetch). */
typedef struct st_cph_fetch_req_t {
    cph_req_t *r;                 /* route (service, timeouts, retry policy), upstream_path, identity: cph_proxy_build_head_for */
    h2o_iovec_t method;           /* also decides whether a failure may be retried (idempotent methods only) */
    const h2o_headers_t *headers; /* the end-to-end headers to forward */
    h2o_iovec_t body;             /* base NULL: no body */
    size_t max_body;              /* decoded body bytes accepted */
    cph_fetch_cb cb;
    void *data;
} cph_fetch_req_t;

/**
 * Starts the exchange: credentials check, admission, pick, then attempts (a pooled keep-alive connection to the
 * target, else a new one) under the route's timeouts and retry policy. cb is called exactly once unless the fetch is
 * cancelled first, possibly before cph_fetch_start returns; when it runs the fetch has released everything (the
 * connection is back in its pool when clean, the balancer heard the outcome) and must not be cancelled any more
 * (cancelling it is a harmless no-op). Returns the fetch (memory of r's pool).
 */
cph_fetch_t *cph_fetch_start(const cph_fetch_req_t *freq);

/**
 * Ends a running fetch without its callback: the connection is closed, the balancer hears outcome (ABANDONED when the
 * answer is no longer wanted, TIMEOUT for a deadline). A no-op on a fetch that already called back or was cancelled.
 * The owner must call it at the latest when r's pool goes away.
 */
void cph_fetch_cancel(cph_fetch_t *f, cph_outcome_t outcome);

/* ---- implemented by filter/proxy.c: its per-worker keep-alive pools, shared with the fetches ---- */

/**
 * Takes the most recently used idle connection to t out of w's pool: its socket (not reading, data NULL: the caller's
 * now), or NULL when the pool has none.
 */
h2o_socket_t *cph_proxy_pool_take(cph_worker_t *w, const cph_target_t *t);

/**
 * Puts a clean connection to t (a complete, well-framed response read, nothing more buffered, not writing, no
 * Connection: close) into w's pool, where the proxy and the fetches may reuse it. The socket is the pool's now.
 */
void cph_proxy_pool_give(cph_worker_t *w, const cph_target_t *t, h2o_socket_t *sock);

/** t's address when its host is numeric (resolved once per worker; *len its length), else NULL: resolve the name. */
const struct sockaddr *cph_proxy_pool_addr(cph_worker_t *w, const cph_target_t *t, socklen_t *len);

#endif
