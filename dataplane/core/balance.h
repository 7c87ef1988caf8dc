/*
 * balance: choosing a target of a service, and judging the outcome of each exchange (passive outlier detection,
 * the per-target breaker), plus the service's admission limits and retry budget. docs/dataplane.md "Upstream
 * resilience" is the user-facing description.
 *
 * Picking runs on a worker for every proxied request: no locks, no allocation. The per-worker part (round-robin
 * positions, smooth-WRR current weights) lives in cph_balance_worker_t; what every worker must agree on (in-flight
 * counts, breaker, health) lives in core/target.h.
 */
#ifndef CPH_BALANCE_H
#define CPH_BALANCE_H

#include <stddef.h>
#include <stdint.h>
#include "dataplane/core/snapshot.h"
#include "dataplane/core/target.h"

typedef struct st_cph_balance_worker_t cph_balance_worker_t;

cph_balance_worker_t *cph_balance_worker_new(void);
void cph_balance_worker_free(cph_balance_worker_t *bw);
/** Sets the worker's random generator (policy random) to a fixed state: for tests; workers seed from RAND_bytes. */
void cph_balance_worker_seed(cph_balance_worker_t *bw, uint64_t seed);

/** What the proxy learned from one exchange with a target. */
typedef enum en_cph_outcome_t {
    CPH_OUTCOME_SUCCESS = 0,       /* a response head below 500 */
    CPH_OUTCOME_CONNECT_FAILURE,   /* resolution or connect failed */
    CPH_OUTCOME_TIMEOUT,           /* connect or first-byte timeout */
    CPH_OUTCOME_RESET,             /* closed or malformed before the head */
    CPH_OUTCOME_5XX,               /* a response head of 500..599 */
    CPH_OUTCOME_ABANDONED          /* the client left first: no judgement */
} cph_outcome_t;

typedef struct st_cph_pick_t {
    const cph_target_t *target;
    int probe; /* the target is half-open and this request is its one probe */
} cph_pick_t;

/**
 * Picks a target of svc: skips targets unhealthy by active check, open breakers, half-open ones whose probe is taken,
 * and the targets whose index is set in `tried` (a bitmap of svc->num_targets bits, may be NULL). `hash` is the
 * consistent-hash key's hash (cph_balance_hash), ignored by the other policies. Returns 0 with *out filled, or -1 when
 * no target can take the request (answer 503 no_healthy_upstream). Every successful pick must be followed by exactly
 * one cph_balance_end.
 */
int cph_balance_pick(cph_balance_worker_t *bw, const cph_service_t *svc, uint64_t hash, const uint64_t *tried,
                     uint64_t now_ns, cph_pick_t *out);
/** A hash of the service's target weights, in order (compile/proxy.c stores it: a change resets the round robin). */
uint64_t cph_balance_weights_signature(const cph_service_t *svc);
/** Hash of a consistent-hash key: SipHash-1-3 under a fixed key, so every data plane and every restart agree. */
uint64_t cph_balance_hash(const void *key, size_t len);
/** Ends one exchange begun by cph_balance_pick: in-flight count down, breaker and outlier state updated. */
void cph_balance_end(const cph_service_t *svc, const cph_pick_t *pick, cph_outcome_t outcome, uint64_t now_ns);

/** Breaker states, as cph_balance_breaker_state returns them. */
enum { CPH_BREAKER_CLOSED = 0, CPH_BREAKER_OPEN = 1, CPH_BREAKER_HALF_OPEN = 2 };
/** Ejections of the service with this metric id since the process started (cephalo_upstream_ejections_total). */
uint64_t cph_balance_ejections(uint32_t service_metric_id);
/** Breaker state of a target at now_ns, for reports: 0 closed, 1 open, 2 half-open. */
int cph_balance_breaker_state(const cph_target_state_t *st, uint64_t now_ns);

/** Admits one request to svc (limits.max_requests): 0, or -1 = answer 503 upstream_overloaded. */
int cph_balance_admit(const cph_service_t *svc);
void cph_balance_release(const cph_service_t *svc);
/** Admits one connect attempt (limits.max_pending): 0 or -1 (503 upstream_overloaded). */
int cph_balance_connect_begin(const cph_service_t *svc);
void cph_balance_connect_end(const cph_service_t *svc);
/**
 * Takes one retry from the service's budget: 0 when active retries < max(min_concurrent, budget_percent% of
 * active requests), else -1 (no retry). A taken retry is returned with cph_balance_retry_end.
 */
int cph_balance_retry_begin(const cph_service_t *svc, uint32_t budget_percent, uint32_t min_concurrent);
void cph_balance_retry_end(const cph_service_t *svc);

#endif
