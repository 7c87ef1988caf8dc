/*
 * stats: per-worker counters, summed on scrape, no locks and no locked instructions on the hot path.
 *
 * Each counter has exactly one writer (its worker thread), which does a relaxed load + store; the scraper on the
 * control thread does relaxed loads and sums. Counters are indexed by stable ids handed out by name (routes,
 * services), so they survive snapshot swaps: a route that keeps its name keeps its counters.
 */
#ifndef CPH_STATS_H
#define CPH_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CPH_STATS_MAX_ROUTES 16384   /* id 0 = "no route matched"; past the cap ids fold into 0 */
#define CPH_STATS_MAX_SERVICES 4096  /* id 0 = overflow */
#define CPH_STATS_MAX_ENDPOINTS 4096 /* endpoint rules with shadow counters; id 0 = overflow (never reported) */
#define CPH_STATS_MAX_LIMITS 4096    /* rate limits (scope + name); id 0 = overflow (never reported) */

typedef _Atomic uint64_t cph_counter_t;

/* status classes: 0 = other, 1..5 = 1xx..5xx */
#define CPH_STATS_STATUS_CLASSES 6

typedef enum en_cph_upstream_error_t {
    CPH_UPSTREAM_ERR_CONNECT = 0, /* connect failure / refused: 502 */
    CPH_UPSTREAM_ERR_TIMEOUT,     /* I/O timeout: 504 */
    CPH_UPSTREAM_ERR_PROTOCOL,    /* bad response, reset mid-body */
    CPH_UPSTREAM_ERR_NO_TARGET,   /* service has no target: 503 */
    CPH_UPSTREAM_ERR_NO_HEALTHY,  /* every target unhealthy, ejected or already tried: 503 */
    CPH_UPSTREAM_ERR_OVERLOADED,  /* the service's max_requests or max_pending is reached: 503 */
    CPH_UPSTREAM_ERR_KINDS
} cph_upstream_error_t;

/* outcomes of the authorization decision: the values of cph_authz_decision_t (compile/authz.h) */
#define CPH_STATS_AUTHZ_OUTCOMES 3
/* outcomes of a shadow rule's would-be decision */
#define CPH_STATS_SHADOW_ALLOW 0
#define CPH_STATS_SHADOW_DENY 1

/* why authn refused a credential (core/authn.h reasons); OTHER collects any reason not in this list */
typedef enum en_cph_authn_reason_t {
    CPH_AUTHN_REASON_TOO_LARGE = 0,
    CPH_AUTHN_REASON_MALFORMED,
    CPH_AUTHN_REASON_UNKNOWN_KID,
    CPH_AUTHN_REASON_ALG_MISMATCH,
    CPH_AUTHN_REASON_BAD_SIGNATURE,
    CPH_AUTHN_REASON_BAD_CLAIMS,
    CPH_AUTHN_REASON_WRONG_ISSUER,
    CPH_AUTHN_REASON_WRONG_AUDIENCE,
    CPH_AUTHN_REASON_EXPIRED,
    CPH_AUTHN_REASON_NOT_YET_VALID,
    CPH_AUTHN_REASON_REVOKED,
    CPH_AUTHN_REASON_UNKNOWN_KEY,
    CPH_AUTHN_REASON_BAD_SECRET,
    CPH_AUTHN_REASON_UNKNOWN_ISSUER,  /* a token of an issuer the snapshot does not know */
    CPH_AUTHN_REASON_INVALID_REQUEST, /* two different credentials, or an unusable Authorization header */
    CPH_AUTHN_REASON_OTHER,
    CPH_AUTHN_REASONS
} cph_authn_reason_t;

/* outcomes of one rate limit for one request (cephalo_ratelimit_total{outcome}) */
typedef enum en_cph_rl_outcome_t {
    CPH_RL_OUTCOME_ALLOWED = 0,
    CPH_RL_OUTCOME_LIMITED,
    CPH_RL_OUTCOME_ERROR_OPEN,   /* Redis failed or is not configured, the limit fails open: allowed */
    CPH_RL_OUTCOME_ERROR_CLOSED, /* the same, failing closed: 503 ratelimit_unavailable */
    CPH_RL_OUTCOMES
} cph_rl_outcome_t;

/* outcomes of the response cache for one request of a route with policies.cache (cephalo_cache_total{outcome}) */
typedef enum en_cph_cache_outcome_t {
    CPH_CACHE_OUTCOME_HIT = 0,
    CPH_CACHE_OUTCOME_MISS,
    CPH_CACHE_OUTCOME_BYPASS,          /* not looked up and not stored: method, no-store, credentials, store off */
    CPH_CACHE_OUTCOME_STORED,          /* a miss whose response went into the store */
    CPH_CACHE_OUTCOME_NOT_STORABLE,    /* a miss whose response could not be stored (rules, size, budget, error) */
    CPH_CACHE_OUTCOME_REVALIDATED_304, /* a hit answered 304 to If-None-Match */
    CPH_CACHE_OUTCOME_ERROR,           /* the shared (Redis) store failed or timed out: a miss that is not stored */
    CPH_CACHE_OUTCOMES
} cph_cache_outcome_t;

/* how a PDF render ended (core/pdf.h); the first CPH_PDF_FAIL_REASONS are cephalo_dp_pdf_failures_total{reason} */
typedef enum en_cph_pdf_result_t {
    CPH_PDF_FAIL_TIMEOUT = 0, /* killed at the route's timeout_ms: 504 */
    CPH_PDF_FAIL_TOO_LARGE,   /* killed at max_output_bytes (or a source page past max_input_bytes): 502 */
    CPH_PDF_FAIL_EXIT,        /* the child failed (exit status, signal, no valid PDF): 502 */
    CPH_PDF_FAIL_SPAWN,       /* no child could be started: 502 */
    CPH_PDF_FAIL_BUSY,        /* every slot taken and the queue full: 503 */
    CPH_PDF_FAIL_REASONS,
    CPH_PDF_OK = CPH_PDF_FAIL_REASONS,
    CPH_PDF_CANCELLED /* the client went away: the child was killed, nothing is counted */
} cph_pdf_result_t;

/* upper bounds (seconds) of cephalo_dp_pdf_render_seconds' buckets; the last bucket is +Inf */
#define CPH_STATS_PDF_BUCKET_BOUNDS 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
#define CPH_STATS_PDF_BUCKETS 10

/* request methods counted apart (cephalo_dp_requests_total{method}); anything else is "other" (core/observe.c) */
typedef enum en_cph_method_class_t {
    CPH_METHOD_CLASS_GET = 0,
    CPH_METHOD_CLASS_HEAD,
    CPH_METHOD_CLASS_POST,
    CPH_METHOD_CLASS_PUT,
    CPH_METHOD_CLASS_PATCH,
    CPH_METHOD_CLASS_DELETE,
    CPH_METHOD_CLASS_OPTIONS,
    CPH_METHOD_CLASS_OTHER,
    CPH_METHOD_CLASSES
} cph_method_class_t;

/* upper bounds (seconds) of the request and upstream duration histograms' buckets; the last bucket is +Inf */
#define CPH_STATS_LATENCY_BUCKET_BOUNDS 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
#define CPH_STATS_LATENCY_BUCKETS 15
/* one histogram: per-bucket counts (not cumulative: summed on scrape) and the sum of the observations in microseconds */
typedef struct st_cph_latency_hist_t {
    cph_counter_t buckets[CPH_STATS_LATENCY_BUCKETS];
    cph_counter_t sum_us;
} cph_latency_hist_t;

/* client connections open on a worker, by what they speak (core/server.c): no request yet, HTTP/1.x, HTTP/2 */
typedef enum en_cph_conn_protocol_t {
    CPH_CONN_PENDING = 0,
    CPH_CONN_HTTP1,
    CPH_CONN_HTTP2,
    CPH_CONN_PROTOCOLS
} cph_conn_protocol_t;

typedef struct st_cph_worker_stats_t {
    /* route x status class, bumped by core/pipeline.c; no longer rendered: `requests` (by method too) replaces it */
    cph_counter_t responses[CPH_STATS_MAX_ROUTES][CPH_STATS_STATUS_CLASSES];
    cph_counter_t upstream_errors[CPH_STATS_MAX_SERVICES][CPH_UPSTREAM_ERR_KINDS];
    cph_counter_t upstream_retries[CPH_STATS_MAX_SERVICES]; /* retries to another target (filter/proxy_balance.c) */
    cph_counter_t connections_accepted;
    cph_counter_t connections_refused_per_ip; /* closed at accept: the peer was at gateway.connections.max_per_ip */
    cph_counter_t http2_resets_received;         /* RST_STREAM frames from clients (core/h2guard.h) */
    cph_counter_t http2_resets_before_dispatch;  /* streams answered at once: their reset was already read */
    cph_counter_t http2_connections_calmed;      /* connections closed over the stream-reset budget */
    cph_counter_t authz_decisions[CPH_STATS_AUTHZ_OUTCOMES]; /* by cph_authz_decision_t */
    cph_counter_t authz_shadow[CPH_STATS_MAX_ENDPOINTS][2];  /* by endpoint stat id, CPH_STATS_SHADOW_{ALLOW,DENY} */
    cph_counter_t authn_failures[CPH_AUTHN_REASONS];
    cph_counter_t ratelimit[CPH_STATS_MAX_LIMITS][CPH_RL_OUTCOMES]; /* by limit stat id (cph_stats_limit_id), outcome */
    cph_counter_t cache[CPH_STATS_MAX_ROUTES][CPH_CACHE_OUTCOMES];  /* by route metric id, cph_cache_outcome_t */
    cph_counter_t pdf_renders[CPH_STATS_MAX_ROUTES];                /* PDFs answered, by route metric id */
    cph_counter_t pdf_failures[CPH_PDF_FAIL_REASONS];               /* by cph_pdf_result_t */
    cph_counter_t pdf_seconds[CPH_STATS_PDF_BUCKETS];               /* render times, not cumulative (summed on scrape) */
    cph_counter_t pdf_seconds_sum_us;
    /* core/observe.c, at each request's dispose */
    cph_counter_t requests[CPH_STATS_MAX_ROUTES][CPH_METHOD_CLASSES][CPH_STATS_STATUS_CLASSES]; /* route, method, class */
    cph_counter_t requests_by_class[CPH_STATS_STATUS_CLASSES]; /* the same, all routes: the pings' "traffic" */
    cph_latency_hist_t request_seconds[CPH_STATS_MAX_ROUTES];                                   /* by route metric id */
    cph_latency_hist_t upstream_seconds[CPH_STATS_MAX_SERVICES]; /* by service metric id, requests that reached one */
    cph_counter_t request_bytes[CPH_STATS_MAX_ROUTES];           /* request bodies */
    cph_counter_t response_bytes[CPH_STATS_MAX_ROUTES];          /* response bodies sent (req->bytes_sent) */
    /* gauges of this worker (core/server.c): incremented and decremented by the worker (modulo 2^64), summed on scrape */
    cph_counter_t connections_open[CPH_CONN_PROTOCOLS];
} cph_worker_stats_t;

static inline void cph_counter_add(cph_counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline uint64_t cph_counter_read(cph_counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/** Stable id for a route name (control thread only, at compile time). Never 0 for a new name below the cap. */
uint32_t cph_stats_route_id(const char *name);
/** The id cph_stats_route_id handed out for name, or 0 when it never did (control thread only; hands out nothing). */
uint32_t cph_stats_route_lookup(const char *name);
/** Stable id for a service name (control thread only). */
uint32_t cph_stats_service_id(const char *name);
/** Name of an id handed out above (for the exposition), or NULL. */
const char *cph_stats_route_name(uint32_t id);
const char *cph_stats_service_name(uint32_t id);
/** Number of ids handed out so far (ids are 1..n). */
uint32_t cph_stats_num_routes(void);
uint32_t cph_stats_num_services(void);

/**
 * Stable stat id of an endpoint rule, keyed by the control plane's rule id (body endpoints[].id), so its shadow
 * counters survive swaps (control thread only, at compile time). 0 for id < 1 and past CPH_STATS_MAX_ENDPOINTS - 1
 * distinct ids: such a rule's shadow outcomes are counted in slot 0 and never reported.
 */
uint32_t cph_stats_endpoint_id(int64_t id);
/** The rule id of a stat id handed out above, or 0. */
int64_t cph_stats_endpoint_key(uint32_t stat_id);
uint32_t cph_stats_num_endpoints(void);

/**
 * Sums the shadow counters of n workers per endpoint and calls cb(ud, endpoint id, would_allow, would_deny) for every
 * endpoint with a non-zero sum, in stat id order. Any thread (relaxed loads; each counter has one writer).
 */
void cph_stats_shadow_foreach(cph_worker_stats_t *const *workers, size_t n,
                              void (*cb)(void *ud, int64_t endpoint_id, uint64_t allow, uint64_t deny), void *ud);

/**
 * Stable stat id of a rate limit: scope (route name, "endpoint:<rule id>" or "/auth") plus limit name, so its counters
 * survive swaps (control thread only, at compile time). 0 past CPH_STATS_MAX_LIMITS - 1 distinct limits: counted in
 * slot 0, never reported. Neither string may contain a newline (names are [A-Za-z0-9._-] and "endpoint:<digits>").
 */
uint32_t cph_stats_limit_id(const char *scope, const char *name);
/** The scope and name of a limit stat id (views valid for the process' life), or 0 when the id was not handed out. */
int cph_stats_limit_name(uint32_t id, const char **scope, size_t *scope_len, const char **name);
uint32_t cph_stats_num_limits(void);
/** "allowed", "limited", "error_open", "error_closed". */
const char *cph_stats_rl_outcome_name(cph_rl_outcome_t outcome);

/** "hit", "miss", "bypass", "stored", "not_storable", "revalidated_304". */
const char *cph_stats_cache_outcome_name(cph_cache_outcome_t outcome);

/** The reason index of an authn reason code ("expired", ...; core/authn.h); CPH_AUTHN_REASON_OTHER when unknown. */
cph_authn_reason_t cph_stats_authn_reason(const char *reason);
/** The code of a reason index (the exposition's label value). */
const char *cph_stats_authn_reason_name(cph_authn_reason_t reason);

/** Counts one render that took render_us microseconds (the histogram; the worker thread only). */
void cph_stats_pdf_observe(cph_worker_stats_t *stats, uint64_t render_us);
/** "timeout", "too_large", "exit", "spawn", "busy" ("other" past those). */
const char *cph_stats_pdf_reason_name(cph_pdf_result_t reason);
/**
 * The PDF metrics of n workers as Prometheus text (malloc'd, NUL-terminated; the caller frees it):
 * cephalo_dp_pdf_renders_total{route}, cephalo_dp_pdf_failures_total{reason}, cephalo_dp_pdf_queue_depth (the value
 * given) and the cephalo_dp_pdf_render_seconds histogram. Any thread (relaxed loads).
 */
char *cph_stats_pdf_exposition(cph_worker_stats_t *const *workers, size_t n, uint64_t queue_depth);

#endif
