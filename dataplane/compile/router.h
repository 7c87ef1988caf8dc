/*
 * router: the compiled matcher of one snapshot and the methods bitmask, shared by filter/router.c and the tests.
 *
 * Matching rules: proto/PROTOCOL.md section 5. The matcher is a hash table keyed by route path prefix; a request
 * probes the segment prefixes of its canonical path from the longest down, so a lookup costs at most two probes per
 * segment of the path (capped at the longest configured prefix), whatever the number of routes.
 */
#ifndef CPH_COMPILE_ROUTER_H
#define CPH_COMPILE_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include "dataplane/core/snapshot.h"

#define CPH_METHOD_GET (1u << 0)
#define CPH_METHOD_HEAD (1u << 1)
#define CPH_METHOD_POST (1u << 2)
#define CPH_METHOD_PUT (1u << 3)
#define CPH_METHOD_PATCH (1u << 4)
#define CPH_METHOD_DELETE (1u << 5)
#define CPH_METHOD_OPTIONS (1u << 6)
#define CPH_METHOD_CONNECT (1u << 7)
#define CPH_METHOD_TRACE (1u << 8)
#define CPH_METHOD_OTHER (1u << 9) /* any other method: never in a route's list, allowed only by "any method" */
#define CPH_METHOD_ANY 0u          /* route.methods == 0: every method */
#define CPH_METHOD_LIST_MAX 80     /* room for "GET, HEAD, ..., TRACE" */

/** The bit of a method name (case-sensitive, as HTTP methods are); CPH_METHOD_OTHER when unknown. */
uint32_t cph_method_from(const char *name, size_t len);
/** Writes "GET, HEAD" for a mask into buf (cap bytes, NUL-terminated); returns the length. */
size_t cph_method_list(uint32_t mask, char *buf, size_t cap);

/**
 * Normalises a Host header or :authority for matching: lower-cased, port and a trailing dot removed ("[v6]" keeps
 * its brackets). Writes at most cap - 1 bytes plus a NUL into out and returns the length; 0 when there is no usable
 * host (empty, or longer than cap - 1).
 */
size_t cph_router_host_normalize(const char *in, size_t len, char *out, size_t cap);

typedef struct st_cph_route_match_t {
    const cph_route_t *route; /* the winner (status 200); for 405 the best route by host and name (metrics only) */
    size_t prefix_len;        /* length of the matched prefix in the path */
    uint32_t allow;           /* status 405: methods the best-matching routes allow */
} cph_route_match_t;

/**
 * Matches a canonical path, a normalised host (may be empty) and a method bit. Returns 200 with m->route set, 404
 * when no route matches the host and path, 405 with m->allow when the routes at the best match do not allow the
 * method. Among routes with the same (longest) matching prefix, routes with hosts come first, then by name; the first
 * that allows the method wins. Pure: no allocation, safe from any thread.
 */
int cph_router_match(const cph_router_t *router, const char *host, size_t host_len, const char *path, size_t path_len,
                     uint32_t method, cph_route_match_t *m);

/**
 * The path the upstream receives for a match: with strip_prefix the remainder after the prefix (always starting
 * with '/'), else path itself. Returns a view into path or a static "/".
 */
h2o_iovec_t cph_router_upstream_path(const cph_route_match_t *m, const char *path, size_t path_len);

#endif
