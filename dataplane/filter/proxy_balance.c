/*
 * filter/proxy_balance: the balancer's side of one proxied request, apart from filter/proxy.c so that the socket code
 * stays about sockets and the rules below can be unit-tested without one.
 *
 * Bookkeeping: every successful pick gets exactly one cph_balance_end (the proxy calls cph_proxy_end_attempt or
 * cph_proxy_finish on every path, dispose included, and both are idempotent), the admission slot is returned once,
 * and a retry's budget slot is held while the retried attempt is in flight, so "retries in flight" is what the budget
 * limits (Envoy's retry budget).
 *
 * Retries (docs/dataplane.md "Timeouts and retries"): only idempotent methods, only before the response started (the proxy calls
 * this before h2o_start_response and never after), only to a target not tried yet (a bitmap: inline up to 64 targets, from the
 * request's pool beyond, and only once a retry happens, so a request that never retries pays nothing), at most
 * route->retry_max times, and never after a first-byte timeout: the upstream may be working on it.
 *
 * Consistent-hash keys are hashed only for a service with that policy: any other request costs one compare.
 */
#include <string.h>
#include <time.h>
#include "dataplane/compile/router.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/proxy_balance.h"

#define MODULE "dp/filter/proxy_balance"
#define IDEMPOTENT (CPH_METHOD_GET | CPH_METHOD_HEAD | CPH_METHOD_PUT | CPH_METHOD_DELETE | CPH_METHOD_OPTIONS | CPH_METHOD_TRACE)

uint64_t cph_proxy_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The service's slot in the per-worker counters (0 = overflow). */
static uint32_t stat_id(const cph_req_t *r)
{
    uint32_t id = r->route->service->metric_id;
    return id < CPH_STATS_MAX_SERVICES ? id : 0;
}

void cph_proxy_count_error(cph_req_t *r, cph_upstream_error_t kind)
{
    if (r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->upstream_errors[stat_id(r)][kind], 1);
}

void cph_proxy_respond_overloaded(cph_req_t *r)
{
    cph_proxy_count_error(r, CPH_UPSTREAM_ERR_OVERLOADED);
    cph_pipeline_add_response_header(r, H2O_STRLIT("retry-after"), H2O_STRLIT("1"));
    cph_respond_error_r(r, 503, "upstream_overloaded", "The service has too many requests in progress");
}

int cph_proxy_admit(cph_req_t *r, cph_proxy_attempts_t *a)
{
    if (cph_balance_admit(r->route->service) != 0) {
        cph_proxy_respond_overloaded(r);
        return -1;
    }
    a->admitted = 1;
    return 0;
}

/* ---------------------------------------------------------------- consistent-hash key */

/* The client as rate limits see it: an IPv4 address, or an IPv6 client's /64 (its privacy addresses stay together). */
static uint64_t hash_ip(cph_req_t *r)
{
    struct sockaddr_storage ss;
    char key[CPH_CLIENT_IP_KEY_MAX];

    if (cph_client_ip(r, &ss) != 0)
        return cph_balance_hash("", 0);
    return cph_balance_hash(key, cph_client_ip_key(&ss, key));
}

/* A user and an API key may share a numeric id: the kind goes into the key. */
static uint64_t hash_principal(const cph_principal_t *p)
{
    char buf[64];

    if (p->id.len > sizeof(buf) - 1)
        return cph_balance_hash(p->id.base, p->id.len);
    buf[0] = p->kind == CPH_PRINCIPAL_API_KEY ? 'k' : 'u';
    memcpy(buf + 1, p->id.base, p->id.len);
    return cph_balance_hash(buf, p->id.len + 1);
}

uint64_t cph_proxy_hash_key(cph_req_t *r)
{
    const cph_service_t *svc = r->route->service;

    if (svc->lb != CPH_LB_CONSISTENT_HASH)
        return 0;
    switch (svc->hash_on) {
    case CPH_HASH_ON_PRINCIPAL:
        if (r->principal.kind != CPH_PRINCIPAL_NONE && r->principal.id.len != 0)
            return hash_principal(&r->principal);
        break;
    case CPH_HASH_ON_HEADER: {
        ssize_t i = svc->hash_header.len != 0
                        ? h2o_find_header_by_str(&r->req->headers, svc->hash_header.base, svc->hash_header.len, -1)
                        : -1;
        if (i >= 0 && r->req->headers.entries[i].value.len != 0)
            return cph_balance_hash(r->req->headers.entries[i].value.base, r->req->headers.entries[i].value.len);
        break;
    }
    default:
        break;
    }
    return hash_ip(r);
}

/* ---------------------------------------------------------------- picks and outcomes */

int cph_proxy_pick(cph_req_t *r, cph_proxy_attempts_t *a, uint64_t now_ns)
{
    const cph_service_t *svc = r->route->service;

    a->hash = cph_proxy_hash_key(r);
    if (cph_balance_pick(r->worker->balance, svc, a->hash, NULL, now_ns, &a->pick) != 0)
        return -1;
    a->picked = 1;
    return 0;
}

void cph_proxy_end_attempt(const cph_service_t *svc, cph_proxy_attempts_t *a, cph_outcome_t outcome, uint64_t now_ns)
{
    if (a->connecting) {
        a->connecting = 0;
        cph_balance_connect_end(svc);
    }
    if (a->picked) {
        a->picked = 0;
        cph_balance_end(svc, &a->pick, outcome, now_ns);
    }
    if (a->budget) {
        a->budget = 0;
        cph_balance_retry_end(svc);
    }
}

void cph_proxy_finish(const cph_service_t *svc, cph_proxy_attempts_t *a, cph_outcome_t outcome)
{
    if (a->connecting || a->picked || a->budget)
        cph_proxy_end_attempt(svc, a, outcome, cph_proxy_now_ns());
    if (a->admitted) {
        a->admitted = 0;
        cph_balance_release(svc);
    }
}

/* ---------------------------------------------------------------- retries */

static int status_listed(const cph_route_t *route, int status)
{
    for (size_t i = 0; i != route->num_retry_statuses; ++i)
        if (route->retry_statuses[i] == status)
            return 1;
    return 0;
}

int cph_proxy_retryable(const cph_req_t *r, const cph_proxy_attempts_t *a, cph_outcome_t outcome, int status)
{
    h2o_iovec_t method = a->method.base != NULL ? a->method : r->req->input.method;

    if (a->retries >= r->route->retry_max || !a->picked)
        return 0;
    if ((cph_method_from(method.base, method.len) & IDEMPOTENT) == 0)
        return 0;
    switch (outcome) {
    case CPH_OUTCOME_CONNECT_FAILURE:
    case CPH_OUTCOME_RESET:
        return 1;
    case CPH_OUTCOME_TIMEOUT:
        return a->connecting; /* a connect timeout; a first-byte timeout never */
    case CPH_OUTCOME_5XX:
        return status_listed(r->route, status);
    default:
        return 0;
    }
}

/* Marks the current target tried; the bitmap exists from the first retry on. */
static void mark_tried(cph_req_t *r, cph_proxy_attempts_t *a)
{
    size_t n = r->route->service->num_targets, idx = a->pick.target->index;

    if (a->tried == NULL) {
        if (n <= 64) {
            a->tried = &a->tried_bits;
        } else {
            size_t words = (n + 63) / 64;
            a->tried = h2o_mem_alloc_pool(&r->req->pool, sizeof(*a->tried) * words);
            memset(a->tried, 0, sizeof(*a->tried) * words);
        }
    }
    if (idx < n)
        a->tried[idx / 64] |= (uint64_t)1 << (idx % 64);
}

static int was_tried(const cph_req_t *r, const cph_proxy_attempts_t *a, const cph_target_t *t)
{
    size_t idx = t->index;

    return idx < r->route->service->num_targets && (a->tried[idx / 64] >> (idx % 64) & 1) != 0;
}

int cph_proxy_retry(cph_req_t *r, cph_proxy_attempts_t *a, cph_outcome_t outcome, int status, uint64_t now_ns)
{
    const cph_service_t *svc = r->route->service;
    cph_pick_t next;

    if (!cph_proxy_retryable(r, a, outcome, status))
        return -1;
    if (cph_balance_retry_begin(svc, r->route->retry_budget_percent, r->route->retry_min_concurrent) != 0)
        return -1;
    mark_tried(r, a);
    if (cph_balance_pick(r->worker->balance, svc, a->hash, a->tried, now_ns, &next) != 0) {
        cph_balance_retry_end(svc);
        return -1;
    }
    if (was_tried(r, a, next.target)) { /* a balancer ignoring `tried`: still one end per pick */
        cph_balance_end(svc, &next, CPH_OUTCOME_ABANDONED, now_ns);
        cph_balance_retry_end(svc);
        return -1;
    }
    cph_proxy_end_attempt(svc, a, outcome, now_ns);
    a->pick = next;
    a->picked = 1;
    a->budget = 1;
    a->retries++;
    if (r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->upstream_retries[stat_id(r)], 1);
    return 0;
}
