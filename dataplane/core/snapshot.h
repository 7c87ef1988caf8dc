/*
 * snapshot: one compiled, immutable configuration, shared by every worker.
 *
 * The control thread builds it from a validated body (cph_snapshot_build), every byte in one arena, then publishes
 * it to the workers. Each worker holds one reference to its current snapshot and each request holds one more
 * (linked to req->pool by the pipeline), so in-flight requests finish on the snapshot they started with. The last
 * release frees the arena. Only the refcount is ever written after the build, and only with C11 atomics.
 *
 * State that must outlive a swap (socket pools, counters of stable ids) is never stored here: see registries.
 */
#ifndef CPH_SNAPSHOT_H
#define CPH_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>
#include <jansson.h>
#include "proto/proto.h"
#include "dataplane/core/arena.h"
#include "dataplane/core/h2o_abi.h"

/* ---- compiled services (compile/proxy.c) ---- */

typedef struct st_cph_target_t {
    const char *url;   /* as configured, "http://host:port" */
    h2o_iovec_t host;  /* NUL-terminated, lower-case */
    uint16_t port;
    h2o_iovec_t authority; /* "host:port" for the upstream Host header */
    uint32_t weight;
    uint32_t pool_id;  /* stable id of the upstream socket pool for host:port (survives swaps) */
    uint32_t index;    /* position in service->targets */
    struct st_cph_target_state_t *state; /* health, breaker, in-flight count: per (service, authority), survives swaps */
} cph_target_t;

/** Service policies.lb.policy (core/balance.h). */
typedef enum en_cph_lb_policy_t {
    CPH_LB_ROUND_ROBIN = 0, /* smooth weighted round robin */
    CPH_LB_LEAST_CONN,      /* fewest in-flight per weight, across the DP's workers */
    CPH_LB_RANDOM,          /* power of two weighted choices */
    CPH_LB_CONSISTENT_HASH  /* Maglev table */
} cph_lb_policy_t;

/** Service policies.lb.hash_on, for CPH_LB_CONSISTENT_HASH. */
typedef enum en_cph_hash_on_t { CPH_HASH_ON_IP = 0, CPH_HASH_ON_PRINCIPAL, CPH_HASH_ON_HEADER } cph_hash_on_t;

/** Service policies.health_check (core/health.h); absent = no active checks. */
typedef struct st_cph_health_check_t {
    const char *path;
    uint64_t interval_ms, timeout_ms;
    uint32_t healthy_threshold, unhealthy_threshold;
    uint16_t *expected_statuses;
    size_t num_expected_statuses;
} cph_health_check_t;

typedef struct st_cph_service_t {
    const char *name;
    uint32_t index;    /* position in snapshot->services */
    uint32_t metric_id; /* stable id for per-service counters (cph_stats_service_id) */
    cph_target_t *targets;
    size_t num_targets;
    uint64_t timeout_ms; /* upstream I/O timeout: the default first-byte and idle timeouts; an expiry answers 504 */
    const char *system;  /* the system code the service belongs to, or NULL (decision step 4 skipped) */
    /* policies.lb */
    cph_lb_policy_t lb;
    uint64_t weights_signature; /* cph_balance_weights_signature: per-worker round-robin state is reset when it changes */
    cph_hash_on_t hash_on;
    h2o_iovec_t hash_header;  /* lower-case header name for CPH_HASH_ON_HEADER */
    const uint32_t *maglev;   /* consistent hash: target index per slot, or NULL */
    size_t maglev_size;       /* a prime */
    /* policies.outlier */
    uint32_t outlier_consecutive_failures; /* 0 = passive detection off */
    uint64_t outlier_base_ejection_ms, outlier_max_ejection_ms;
    uint32_t outlier_max_ejection_percent;
    /* policies.limits */
    uint32_t max_requests, max_pending;
    const cph_health_check_t *health_check; /* NULL = no active checks */
    struct st_cph_service_state_t *state;   /* in-flight and retry counters per service name, survives swaps */
    const struct st_cph_credentials_t *credentials; /* headers injected upstream (core/credentials.h); NULL = none */
} cph_service_t;

/* ---- compiled routes (compile/router.c) ---- */

/** What a request gets when no endpoint rule of the route's service matches (shared/DESIGN.md section 4). */
typedef enum en_cph_default_access_t {
    CPH_ACCESS_AUTHENTICATED = 0, /* valid credential, superuser or in the service's system: allow; else 401 / 403 */
    CPH_ACCESS_PUBLIC,            /* allow */
    CPH_ACCESS_DENY               /* 403 for everyone */
} cph_default_access_t;

/** What a route does once a request passed its policies (route "kind", PROTOCOL.md section 5). */
typedef enum en_cph_route_kind_t {
    CPH_ROUTE_PROXY = 0, /* forward to the service (filter/proxy.c, filter/websocket.c) */
    CPH_ROUTE_PDF,       /* render HTML / Markdown to PDF (filter/pdf.c) */
    CPH_ROUTE_AGGREGATE  /* fan out to several services and merge (filter/aggregate.c) */
} cph_route_kind_t;

typedef struct st_cph_route_t {
    const char *name;
    uint32_t index;     /* position in snapshot->routes */
    uint32_t metric_id; /* stable id for per-route counters (cph_stats_route_id) */
    const cph_service_t *service;
    h2o_iovec_t *paths; /* canonical prefixes */
    size_t num_paths;
    h2o_iovec_t *hosts; /* lower-case; "*.example.com" matches any sub-domain */
    size_t num_hosts;
    uint32_t methods; /* bitmask of CPH_METHOD_*; 0 = any */
    int strip_prefix;
    cph_default_access_t default_access;
    const struct st_cph_edge_route_t *edge;      /* policies: IP lists, CORS, security headers, limits (compile/edge.c) */
    const struct st_cph_rl_set_t *rate_limits;   /* policies.rate_limits (compile/ratelimit.c); NULL = none */
    const struct st_cph_cache_policy_t *cache;   /* policies.cache (compile/cache.h); NULL = no caching */
    /* policies.timeouts (0 in total_timeout_ms = none); defaults filled in from the service */
    uint64_t connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, total_timeout_ms;
    /* policies.retries */
    uint32_t retry_max;
    uint16_t *retry_statuses;
    size_t num_retry_statuses;
    uint32_t retry_budget_percent, retry_min_concurrent;
    const struct st_cph_ws_policy_t *websocket; /* policies.websocket (core/websocket.h); NULL = not tunnelled */
    cph_route_kind_t kind;
    const struct st_cph_pdf_route_t *pdf;             /* kind PDF: compile/pdf.c; else NULL */
    const struct st_cph_aggregate_route_t *aggregate; /* kind AGGREGATE: compile/aggregate.c; else NULL */
} cph_route_t;

/** Route matcher; opaque, built by cph_router_compile (compile/router.c). */
typedef struct st_cph_router_t cph_router_t;
/** Public signing keys and the JWKS document; built by cph_auth_compile, defined in compile/auth.h. */
typedef struct st_cph_auth_t cph_auth_t;
/** Endpoint rules per service and the groups' roles; opaque, built by cph_authz_compile (compile/authz.c). */
typedef struct st_cph_authz_t cph_authz_t;

typedef struct st_cph_snapshot_t {
    _Atomic size_t refcnt;
    cph_arena_t arena;
    char epoch[65];
    uint64_t version;
    char hash[CPH_HASH_SIZE];
    const char *source; /* "disk" or "cp" */
    cph_service_t *services;
    size_t num_services;
    cph_route_t *routes;
    size_t num_routes;
    cph_router_t *router;
    cph_auth_t *auth;
    cph_authz_t *authz;
    struct st_cph_edge_t *edge;     /* body gateway: global IP lists and limits (compile/edge.c) */
    struct st_cph_rl_t *ratelimit;  /* endpoint rules' rate limits, login limit, redis config (compile/ratelimit.c) */
    uint64_t cache_max_bytes;       /* gateway.cache.max_bytes: the response store's budget, 0 = off (compile/cache.c) */
    int cache_redis;                /* gateway.cache.backend is "redis" */
    uint64_t ws_drain_grace_ms;     /* gateway.websocket.drain_grace_ms (core/websocket.h) */
    /* the built-in route to the control plane's auth API (body auth.api; compile/builtin.c), or NULL when unset */
    const cph_route_t *auth_api_route;
} cph_snapshot_t;

/**
 * Validates (cph_snapshot_validate) and compiles a body into a new snapshot with refcount 1. Runs on the control
 * thread, never on a worker. Returns NULL with err filled (JSON-pointer path) on any failure; nothing leaks.
 */
cph_snapshot_t *cph_snapshot_build(const json_t *body, const char *epoch, uint64_t version, const char *hash,
                                   const char *source, cph_error_t *err);
void cph_snapshot_retain(cph_snapshot_t *snap);
/** Drops one reference; the last one frees the arena. Safe from any thread. */
void cph_snapshot_release(cph_snapshot_t *snap);

#endif
