/*
 * edge: the compiled edge policies (proto/PROTOCOL.md section 5: route policies minus rate_limits, and the body's gateway
 * object), shared by compile/edge.c, filter/edge.c, core/clientip.c and the tests.
 *
 * Everything lives in the snapshot arena and is read-only after the build. IP lists are sorted arrays of disjoint
 * address ranges (a CIDR is a range; overlapping ones are merged), searched by bisection. Every response header
 * value is rendered once here, so the filter only points at it. A route without edge policies of its own has
 * route->edge == NULL and costs the filter the gateway checks only.
 */
#ifndef CPH_COMPILE_EDGE_H
#define CPH_COMPILE_EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "dataplane/core/snapshot.h"

/* the gateway's default limits when the body has no gateway.limits (the values the control plane writes) */
#define CPH_EDGE_DEFAULT_MAX_BODY (10u * 1024 * 1024)
#define CPH_EDGE_DEFAULT_MAX_URL 8192u
#define CPH_EDGE_DEFAULT_MAX_HEADERS 100u
#define CPH_EDGE_DEFAULT_MAX_HEADER_BYTES 65536u

typedef struct st_cph_ip4_range_t {
    uint32_t lo, hi; /* host order, inclusive */
} cph_ip4_range_t;

typedef struct st_cph_ip6_t {
    uint64_t hi, lo; /* the 128-bit address, most significant half first */
} cph_ip6_t;

typedef struct st_cph_ip6_range_t {
    cph_ip6_t lo, hi; /* inclusive */
} cph_ip6_range_t;

/** One allow or deny list: disjoint ranges sorted ascending, per family. */
typedef struct st_cph_cidr_set_t {
    cph_ip4_range_t *v4;
    size_t num_v4;
    cph_ip6_range_t *v6;
    size_t num_v6;
    size_t num_cidrs; /* as configured; an allow list with num_cidrs != 0 refuses every address outside it */
} cph_cidr_set_t;

typedef struct st_cph_edge_limits_t {
    uint64_t max_body_bytes;   /* 413 above */
    uint64_t max_url_bytes;    /* 414 above (request target: path and query) */
    uint64_t max_headers;      /* 431 above */
    uint64_t max_header_bytes; /* 431 above (names and values) */
} cph_edge_limits_t;

typedef struct st_cph_cors_t {
    h2o_iovec_t *origins; /* lower-case exact origins; empty with any_origin */
    size_t num_origins;
    int any_origin;      /* "*" */
    int credentials;     /* Access-Control-Allow-Credentials: true */
    h2o_iovec_t methods; /* "GET, POST" */
    h2o_iovec_t headers; /* "content-type, x-a" or len 0 */
    h2o_iovec_t expose;  /* "x-b" or len 0 */
    h2o_iovec_t max_age; /* "600" */
} cph_cors_t;

/** The edge policies of one route (route->edge; NULL when the route has none). */
typedef struct st_cph_edge_route_t {
    cph_cidr_set_t allow, deny;
    cph_edge_limits_t limits; /* the route's members, the gateway's for the absent ones */
    int https_redirect;
    const cph_cors_t *cors;      /* NULL: no CORS */
    h2o_iovec_t hsts;            /* "max-age=N[; includeSubDomains]", len 0 = none; TLS connections only */
    int nosniff;                 /* X-Content-Type-Options: nosniff */
    h2o_iovec_t frame_options;   /* "DENY" | "SAMEORIGIN", len 0 = none */
    h2o_iovec_t referrer_policy; /* len 0 = none */
} cph_edge_route_t;

/** The body's gateway object (snap->edge, never NULL after cph_edge_compile). */
typedef struct st_cph_edge_t {
    unsigned trusted_proxy_hops;
    int trust_request_id; /* gateway.request_id.trust_incoming: a valid client X-Request-Id is kept (filter/sanitize.c) */
    uint32_t max_connections_per_ip; /* gateway.connections.max_per_ip, 0 = no cap (core/connlimit.h, core/server.c) */
    cph_cidr_set_t allow, deny;
    cph_edge_limits_t limits;
    uint64_t max_body_any; /* the largest body limit of the gateway and every route: the h2o-level cap to set */
} cph_edge_t;

/**
 * Parses a CIDR as PROTOCOL.md writes it ("10.0.0.0/8", "2001:db8::/32", a bare address = /32 or /128) into one
 * range; an IPv4-mapped IPv6 CIDR (::ffff:0:0/96 and longer) is stored as its IPv4 range. Host bits must be zero.
 * Returns 0 with *is_v6 and the matching range filled, or -1.
 */
int cph_edge_parse_cidr(const char *s, cph_ip4_range_t *v4, cph_ip6_range_t *v6, int *is_v6);

/** Whether addr (AF_INET or AF_INET6; a mapped IPv6 address is looked up as IPv4) is in set. Pure, no allocation. */
int cph_edge_cidr_contains(const cph_cidr_set_t *set, const struct sockaddr_storage *addr);

/**
 * Whether the lists refuse addr: deny wins, and a non-empty allow list refuses any address outside it. A NULL or
 * empty set passes.
 */
int cph_edge_ip_refused(const cph_cidr_set_t *allow, const cph_cidr_set_t *deny, const struct sockaddr_storage *addr);

/**
 * Whether req is a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) from an origin route e
 * allows, i.e. one filter/edge.c answers 204 itself. For the router: a route whose methods lack OPTIONS must still let
 * such a request through to the edge stage instead of answering 405. e may be NULL (returns 0). Pure, no allocation.
 * Defined in filter/edge.c.
 */
int cph_edge_is_preflight(const cph_edge_route_t *e, h2o_req_t *req);

/**
 * The port of the data plane's TLS listener, for https_redirect Locations. Process-wide; set by the server at start
 * (core/server.c) before any request, read by the workers. 0 (the default) = not set: the filter then uses the port of
 * the worker's server config listen_tls, and without one skips the redirect. Setting it matters when the configured
 * port is not the one bound (port 0).
 */
void cph_edge_set_tls_port(uint16_t port);
uint16_t cph_edge_tls_port(void);

#endif
