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

#define CPH_STATS_MAX_ROUTES 16384  /* id 0 = "no route matched"; past the cap ids fold into 0 */
#define CPH_STATS_MAX_SERVICES 4096 /* id 0 = overflow */

typedef _Atomic uint64_t cph_counter_t;

/* status classes: 0 = other, 1..5 = 1xx..5xx */
#define CPH_STATS_STATUS_CLASSES 6

typedef enum en_cph_upstream_error_t {
    CPH_UPSTREAM_ERR_CONNECT = 0, /* connect failure / refused: 502 */
    CPH_UPSTREAM_ERR_TIMEOUT,     /* I/O timeout: 504 */
    CPH_UPSTREAM_ERR_PROTOCOL,    /* bad response, reset mid-body */
    CPH_UPSTREAM_ERR_NO_TARGET,   /* service has no target: 503 */
    CPH_UPSTREAM_ERR_KINDS
} cph_upstream_error_t;

typedef struct st_cph_worker_stats_t {
    cph_counter_t responses[CPH_STATS_MAX_ROUTES][CPH_STATS_STATUS_CLASSES];
    cph_counter_t upstream_errors[CPH_STATS_MAX_SERVICES][CPH_UPSTREAM_ERR_KINDS];
    cph_counter_t connections_accepted;
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
/** Stable id for a service name (control thread only). */
uint32_t cph_stats_service_id(const char *name);
/** Name of an id handed out above (for the exposition), or NULL. */
const char *cph_stats_route_name(uint32_t id);
const char *cph_stats_service_name(uint32_t id);
/** Number of ids handed out so far (ids are 1..n). */
uint32_t cph_stats_num_routes(void);
uint32_t cph_stats_num_services(void);

#endif
