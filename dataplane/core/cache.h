/*
 * cache: the data plane's response store (docs/dataplane.md "Response cache"), one per process, shared by every worker.
 *
 * An entry is one stored response: status, the upstream's end-to-end headers and the whole body, under the key
 * route metric id + normalised host + upstream path and query, plus the request's values of the headers named by the
 * response's Vary. Entries are immutable once inserted and refcounted with C11 atomics, so a worker streams an entry
 * while another thread evicts or purges it. One mutex guards the hash table, the LRU list and the byte count; every
 * call holding it is short (no I/O, no allocation but the table's growth).
 *
 * The freshness and storability rules (Cache-Control, Expires, Date, Age, Vary) are here too, as pure functions over
 * picohttpparser headers, so the filter and the proxy share them and the unit test reaches every case.
 */
#ifndef CPH_CORE_CACHE_H
#define CPH_CORE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "dataplane/core/h1resp.h"
#include "dataplane/core/h2o_abi.h"

typedef struct st_cph_cache_t cph_cache_t;
typedef struct st_cph_cache_entry_t cph_cache_entry_t;

/** A stored header (name lower-case). */
typedef struct st_cph_cache_header_t {
    h2o_iovec_t name;
    h2o_iovec_t value;
} cph_cache_header_t;

struct st_cph_cache_entry_t {
    _Atomic size_t refcnt;
    cph_cache_entry_t *chain; /* next in the hash bucket */
    cph_cache_entry_t *lru_prev, *lru_next;
    int in_store;
    uint64_t hash;
    uint32_t route_id;
    h2o_iovec_t host;        /* lower-case */
    h2o_iovec_t path;        /* upstream path and query */
    h2o_iovec_t vary;        /* lower-case names, comma-separated as the response listed them; empty = none */
    h2o_iovec_t vary_values; /* the request's values of those names, each NUL-terminated, in order */
    int status;
    h2o_iovec_t reason;
    cph_cache_header_t *headers;
    size_t num_headers;
    h2o_iovec_t etag; /* the stored ETag value, or empty */
    char *body;
    size_t body_len, body_cap;
    uint64_t stored_ms;      /* monotonic clock when stored (cph_cache_now_ms) */
    uint64_t stored_wall_ms; /* wall clock when stored (cph_cache_wall_ms): what a purge's `at` is compared with */
    uint64_t age_s;          /* the upstream's Age when stored */
    uint64_t freshness_s;    /* > 0 */
    int shared_ok;           /* the response said public or s-maxage: it may answer a request with a credential */
    size_t bytes;            /* key + headers + body, counted against the budget */
};

/** What cph_cache_response_info found in a response head. */
typedef struct st_cph_cache_resinfo_t {
    int storable;          /* every rule passed (the body size is checked while streaming) */
    const char *why;       /* when not storable: a short reason for the debug log */
    uint64_t freshness_s;  /* capped by max_ttl_s */
    uint64_t age_s;        /* the Age header, 0 when absent */
    int shared_ok;         /* Cache-Control public or s-maxage */
    h2o_iovec_t vary;      /* the joined Vary values (pointers into the headers) */
    size_t content_length; /* SIZE_MAX when absent */
} cph_cache_resinfo_t;

/** Monotonic milliseconds (the clock entries are aged with). */
uint64_t cph_cache_now_ms(void);
/** Wall-clock milliseconds since the epoch (the clock of a purge's `at` and of the entries stored in Redis). */
uint64_t cph_cache_wall_ms(void);

/** The process-wide store, created on first use with a budget of 0 (caching off) until configured. */
cph_cache_t *cph_cache_default(void);
/** A new, empty store with max_bytes of budget (tests use their own). */
cph_cache_t *cph_cache_create(uint64_t max_bytes);
/** Frees the store; entries still held by readers live until their last release. */
void cph_cache_destroy(cph_cache_t *c);
/** Sets the budget (gateway.cache.max_bytes) and evicts down to it; 0 empties the store and turns caching off. */
void cph_cache_configure(cph_cache_t *c, uint64_t max_bytes);
/** The budget in force. */
uint64_t cph_cache_max_bytes(cph_cache_t *c);

/**
 * Finds a fresh entry for route_id + host + path whose Vary values equal the request's (req_headers), moves it to the
 * front of the LRU and returns it retained (release it), with *age_s its current age. A stale match is removed. NULL
 * when nothing fresh matches.
 */
cph_cache_entry_t *cph_cache_lookup(cph_cache_t *c, uint32_t route_id, h2o_iovec_t host, h2o_iovec_t path,
                                    const h2o_headers_t *req_headers, uint64_t now_ms, uint64_t *age_s);

/**
 * A new entry (refcount 1, not stored) for a response: copies the key, the request's values of the Vary names, the
 * status and reason, and the end-to-end headers (minus hop-by-hop, Connection-named, Set-Cookie, Age, Date, Server,
 * framing). The body is added with cph_cache_entry_append.
 */
cph_cache_entry_t *cph_cache_entry_new(uint32_t route_id, h2o_iovec_t host, h2o_iovec_t path, const h2o_headers_t *req_headers,
                                       const cph_cache_resinfo_t *info, int status, h2o_iovec_t reason,
                                       const struct phr_header *headers, size_t num_headers);
/** Appends body bytes; returns -1 (nothing appended) when the body would pass max_body bytes. */
int cph_cache_entry_append(cph_cache_entry_t *e, const char *bytes, size_t len, size_t max_body);
void cph_cache_entry_retain(cph_cache_entry_t *e);
/** Drops one reference; the last frees the entry. Any thread. */
void cph_cache_entry_release(cph_cache_entry_t *e);

/**
 * Stores e (takes over the caller's reference) at the front of the LRU, replacing the entries of the same key and
 * Vary values and those of the same key stored under another Vary, then evicts from the back until the store fits
 * its budget. Returns 0, or -1 (e released) when the store is off or e alone is bigger than the budget.
 */
int cph_cache_insert(cph_cache_t *c, cph_cache_entry_t *e, uint64_t now_ms);

/** Removes every entry of route_id whose path starts with prefix (prefix_len 0: all of them); returns how many. */
size_t cph_cache_purge(cph_cache_t *c, uint32_t route_id, const char *prefix, size_t prefix_len);
/**
 * As cph_cache_purge, but only the entries stored (wall clock) before before_ms; before_ms 0: every matching entry.
 */
size_t cph_cache_purge_at(cph_cache_t *c, uint32_t route_id, const char *prefix, size_t prefix_len, uint64_t before_ms);

/**
 * The purge message (proto/PROTOCOL.md section 3; control thread): drops the entries of route `route` (a route name) whose upstream
 * path starts with prefix (NULL or "": all of them) and that were stored before at_ms (the control plane's wall clock,
 * ms since the epoch; 0 = all of them, whenever stored), from the process-wide store; and, when gateway.redis is
 * configured, records the purge in Redis (core/cache_redis.h), whatever the backend in force, so entries stored there
 * by any data plane are never served again. Replaying a purge is harmless: an entry stored after at_ms survives.
 * Returns how many entries the process-wide store dropped.
 */
size_t cph_cache_purge_before(const char *route, const char *prefix, uint64_t at_ms);

/**
 * The request's values of the comma-separated header names in vary (lower-case), each name's values joined with ", "
 * and followed by a NUL, malloc'd (free it); what an entry's vary_values holds. An empty vary gives an empty result.
 */
h2o_iovec_t cph_cache_vary_values(h2o_iovec_t vary, const h2o_headers_t *headers);

/**
 * The cache key's host: the authority lower-cased, without the scheme's default port (":80" when !tls, ":443" when
 * tls), in pool. A bracketed IPv6 literal keeps its brackets.
 */
h2o_iovec_t cph_cache_key_host(h2o_mem_pool_t *pool, h2o_iovec_t authority, int tls);

/** Bytes and entries stored (the gauges). */
void cph_cache_usage(cph_cache_t *c, uint64_t *bytes, uint64_t *entries);

/**
 * Reads a response head: status, Cache-Control (no-store, private, no-cache, public, max-age, s-maxage), Expires,
 * Date, Age, Set-Cookie and Vary. freshness = s-maxage, else max-age, else Expires - Date (no Date: Expires - now_s, an
 * unreadable Expires: 0), else ttl_s; then min(freshness, max_ttl_s). Storable when the status is one of 200 203 204 300
 * 301 404 405 410 414 501, nothing forbids it, there is no Set-Cookie, Vary is not "*" and freshness > 0; when
 * need_shared (an authenticated request on a share_authenticated route) also public or s-maxage. now_s: wall clock.
 */
void cph_cache_response_info(int status, const struct phr_header *headers, size_t num_headers, uint64_t ttl_s, uint64_t max_ttl_s,
                             int need_shared, uint64_t now_s, cph_cache_resinfo_t *info);

/** Whether an If-None-Match value matches etag with the weak comparison ("*" matches any). */
int cph_cache_etag_match(h2o_iovec_t if_none_match, h2o_iovec_t etag);

/** Whether a comma-separated directive list holds `token` (case-insensitive, any "=value" ignored). */
int cph_cache_has_directive(const char *list, size_t len, const char *token);

#endif
