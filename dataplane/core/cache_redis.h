/*
 * cache_redis: the response cache's Redis backend (gateway.cache.backend "redis"; docs/dataplane.md "Response cache"),
 * shared by every data plane that points at the same Redis. The entries are the ones core/cache.c builds (the same
 * storability, Vary and freshness rules), serialised into one versioned binary value per key.
 *
 * Keys (the route name in a hash tag, so every key of a route lives on one cluster slot):
 *   cephalo:cache:v1:{<route>}:<h>      h = 32 hex of SHA-256(host NUL path): the entry, or a Vary marker naming the
 *                                       headers its variants differ by;
 *   cephalo:cache:v1:{<route>}:<h>      h = 32 hex of SHA-256(host NUL path NUL vary NUL values): one variant;
 *   cephalo:cache:v1:{<route>}:purges   a hash: upstream path prefix ("" = the whole route) -> the latest purge's
 *                                       `at` (ms since the epoch).
 * An entry is served only when no purge record whose prefix starts its path has an `at` later than the entry's store
 * time; so a purge is one write, whatever the number of entries, and replaying it spares the entries stored after it.
 */
#ifndef CPH_CORE_CACHE_REDIS_H
#define CPH_CORE_CACHE_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include "dataplane/core/cache.h"
#include "dataplane/core/worker.h"

#define CPH_CACHE_REDIS_MAX_STORES 256 /* stores in flight per process; more are skipped (counted not_storable) */
#define CPH_CACHE_REDIS_FORMAT 1       /* the value's format version; a value of another version is a miss */

typedef enum en_cph_cache_redis_result_t {
    CPH_CACHE_REDIS_MISS = 0,
    CPH_CACHE_REDIS_HIT,   /* entry: a fresh, unpurged entry for the key; age_s its age */
    CPH_CACHE_REDIS_VARY,  /* vary: the resource varies by these header names; look the variant up next */
    CPH_CACHE_REDIS_ERROR, /* Redis timed out, is unavailable or answered an error */
} cph_cache_redis_result_t;

/**
 * A lookup's answer, on the submitting worker's loop: HIT hands over one reference to entry (release it); VARY gives
 * the lower-case names in vary, valid during the call only.
 */
typedef void (*cph_cache_redis_cb)(void *ud, cph_cache_redis_result_t result, cph_cache_entry_t *entry, uint64_t age_s,
                                   h2o_iovec_t vary);

/**
 * Looks route's entry for host + path up (vary empty), or its variant for the Vary names vary with the request's
 * values vary_values (cph_cache_vary_values). cb(ud, ...) runs exactly once, later, on worker w's loop (never inside
 * this call), within about gateway.redis.timeout_ms. Worker thread only.
 */
void cph_cache_redis_lookup(cph_worker_t *w, const char *route, h2o_iovec_t host, h2o_iovec_t path, h2o_iovec_t vary,
                            h2o_iovec_t vary_values, cph_cache_redis_cb cb, void *ud);

/**
 * Stores e (not consumed; its stored_wall_ms is set to now when 0) for route with SET .. PX (its remaining freshness),
 * plus the resource's Vary marker when e varies (PX max_ttl_s). Fire-and-forget; returns 0 when submitted, -1 when skipped (too
 * many stores in flight, or already stale). Worker thread (w) only.
 */
int cph_cache_redis_store(cph_worker_t *w, const char *route, cph_cache_entry_t *e, uint64_t max_ttl_s);

/**
 * Records a purge of route's entries under prefix (NULL or "": all) stored before at_ms (wall clock, ms since the
 * epoch); a later `at` for the same prefix wins, an earlier one changes nothing. Written at once without waiting (any
 * thread) and kept pending until a worker's write of it is confirmed: every lookup first writes the pending purges,
 * so one sent while Redis was unreachable still applies before anything is served from Redis again.
 */
void cph_cache_redis_purge(const char *route, const char *prefix, uint64_t at_ms);
/** Purges not yet confirmed by Redis (for tests). */
size_t cph_cache_redis_pending_purges(void);

/** Serialises e (kind 'E') into a malloc'd buffer (*out); returns its length. */
size_t cph_cache_redis_encode(const cph_cache_entry_t *e, char **out);
/** A Vary marker for host + path naming vary, malloc'd (*out); returns its length. */
size_t cph_cache_redis_encode_vary(h2o_iovec_t host, h2o_iovec_t path, h2o_iovec_t vary, uint64_t stored_wall_ms, char **out);
/**
 * Reads a value: returns a new entry (refcount 1, not in any store) for an entry, or NULL with *vary set (malloc'd,
 * free it) for a Vary marker, or NULL with *vary empty for anything unreadable (another format version, truncated).
 */
cph_cache_entry_t *cph_cache_redis_decode(const char *buf, size_t len, h2o_iovec_t *vary);

/** The key of route's entry (vary empty) or variant, malloc'd (NUL-terminated; free it). */
h2o_iovec_t cph_cache_redis_key(const char *route, h2o_iovec_t host, h2o_iovec_t path, h2o_iovec_t vary, h2o_iovec_t vary_values);

/** Stores in flight (for tests). */
size_t cph_cache_redis_stores_in_flight(void);

#endif
