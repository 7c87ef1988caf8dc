/*
 * filter/proxy_balance: what filter/proxy.c asks of the balancer (core/balance.h) for one request: the service's
 * admission, the consistent-hash key, the pick of each attempt and its one cph_balance_end, the retry rules of
 * policies.retries (docs/dataplane.md "Timeouts and retries") and the retry budget. No I/O: the proxy owns sockets and timers.
 */
#ifndef CPH_FILTER_PROXY_BALANCE_H
#define CPH_FILTER_PROXY_BALANCE_H

#include <stdint.h>
#include "dataplane/core/balance.h"
#include "dataplane/core/pipeline.h"
#include "dataplane/core/stats.h"

/** Where one request stands with the balancer. Zeroed before the first call; lives in the request's pool. */
typedef struct st_cph_proxy_attempts_t {
    cph_pick_t pick;     /* the target of the current attempt (valid while picked) */
    uint64_t hash;       /* cph_proxy_hash_key, for every pick of the request */
    uint64_t tried_bits; /* the bitmap below when the service has at most 64 targets */
    uint64_t *tried;     /* targets already tried, NULL until the first retry */
    uint32_t retries;    /* retries taken so far (route->retry_max) */
    uint8_t admitted;    /* holds one of the service's max_requests (cph_balance_admit) */
    uint8_t picked;      /* pick awaits its cph_balance_end */
    uint8_t connecting;  /* holds one of the service's max_pending (cph_balance_connect_begin) */
    uint8_t budget;      /* the current attempt is a retry holding one slot of the budget */
    h2o_iovec_t method;  /* the exchange's method when it is not the client's (filter/fetch.c); {NULL, 0}: the client's */
} cph_proxy_attempts_t;

/** Monotonic time for the balancer (CLOCK_MONOTONIC_COARSE, ns): the vDSO, no system call. */
uint64_t cph_proxy_now_ns(void);

/**
 * Admits the request to its service (limits.max_requests). Returns 0 (a->admitted set), or -1 after answering 503
 * upstream_overloaded with Retry-After: 1.
 */
int cph_proxy_admit(cph_req_t *r, cph_proxy_attempts_t *a);

/** Counts one upstream failure of r's service in the worker's cephalo_dp_upstream_errors_total. */
void cph_proxy_count_error(cph_req_t *r, cph_upstream_error_t kind);
/** Answers 503 upstream_overloaded with Retry-After: 1 (max_requests or max_pending reached), and counts it. */
void cph_proxy_respond_overloaded(cph_req_t *r);

/**
 * The consistent-hash key's hash of r for its service (0 for another policy): lb.hash_on ip = the client address
 * (core/clientip.h), principal = kind and id (the address when anonymous), header = the first value of that header
 * (the address when absent or empty).
 */
uint64_t cph_proxy_hash_key(cph_req_t *r);

/**
 * The first pick of a request (a->hash computed here). Returns 0 (a->picked set), or -1: no target can take it (the
 * caller answers 503 no_healthy_upstream).
 */
int cph_proxy_pick(cph_req_t *r, cph_proxy_attempts_t *a, uint64_t now_ns);

/**
 * Whether the failed attempt may be retried, budget aside: an idempotent method (GET HEAD OPTIONS
 * PUT DELETE TRACE; a->method, else the client's), fewer than route->retry_max retries so far, and the outcome a connect failure, a
 * reset before the head, a timeout while connecting (a->connecting still set: never a first-byte timeout), or a 5XX whose status is
 * listed in route->retry_statuses. The caller guarantees no response byte went to the client.
 */
int cph_proxy_retryable(const cph_req_t *r, const cph_proxy_attempts_t *a, cph_outcome_t outcome, int status);

/**
 * Moves a failed attempt to another target when cph_proxy_retryable says so, the budget has room
 * (cph_balance_retry_begin) and a target not tried yet can be picked. Returns 0: the old attempt was ended with
 * outcome and a->pick is the new target (holding one slot of the budget until it ends); -1: nothing changed.
 */
int cph_proxy_retry(cph_req_t *r, cph_proxy_attempts_t *a, cph_outcome_t outcome, int status, uint64_t now_ns);

/** Ends the current attempt, if any: cph_balance_end(outcome), and returns its connect and budget slots. */
void cph_proxy_end_attempt(const cph_service_t *svc, cph_proxy_attempts_t *a, cph_outcome_t outcome, uint64_t now_ns);

/** Ends the exchange: the current attempt (as above) and the admission. Idempotent. */
void cph_proxy_finish(const cph_service_t *svc, cph_proxy_attempts_t *a, cph_outcome_t outcome);

#endif
