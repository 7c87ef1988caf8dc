/*
 * clientip: the address of the client that sent a request, as the gateway trusts it (proto/PROTOCOL.md section 5, gateway
 * trusted_proxy_hops): the TCP peer when no proxy in front is trusted, else the Nth address from the right of
 * X-Forwarded-For - never the first one, which the client writes itself.
 *
 * Used by filter/edge.c (IP allow/deny lists) and filter/ratelimit.c (key "ip").
 */
#ifndef CPH_CLIENTIP_H
#define CPH_CLIENTIP_H

#include <stddef.h>
#include <sys/socket.h>
#include "dataplane/core/h2o_abi.h"

struct st_cph_req_t; /* core/pipeline.h */

#define CPH_CLIENT_IP_STRLEN 46 /* INET6_ADDRSTRLEN: room for any formatted address plus its NUL */
#define CPH_CLIENT_IP_MAX_HOPS 8

/**
 * The client address of r per r->snap->edge->trusted_proxy_hops (0 when the snapshot has no gateway object): see
 * cph_client_ip_hops. Returns 0 with out filled (AF_INET or AF_INET6, port 0), or -1 (out->ss_family AF_UNSPEC) when
 * not even the peer address is known. Allocates nothing.
 */
int cph_client_ip(struct st_cph_req_t *r, struct sockaddr_storage *out);

/**
 * The client address of req for hops trusted proxies (0..CPH_CLIENT_IP_MAX_HOPS):
 * - hops 0: the peer (req->conn->callbacks->get_peername); X-Forwarded-For is ignored, so a client cannot choose it;
 * - hops N: the Nth element from the right of X-Forwarded-For (all its header lines, in order, read as one list; the
 *   peer being the 1st proxy, hops 1 takes the last element). Elements are IPv4 `a.b.c.d[:port]`, IPv6 `x::y` or
 *   `[x::y][:port]`, with optional spaces around them. When that element is not an address (garbage, "unknown", an
 *   empty element) or the list holds fewer than N elements, the peer is used.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is returned as AF_INET, so both spellings are the same client.
 * Returns 0, or -1 when the peer address is needed and unknown (out->ss_family AF_UNSPEC).
 */
int cph_client_ip_hops(h2o_req_t *req, unsigned hops, struct sockaddr_storage *out);

/**
 * Writes the address of ss (AF_INET / AF_INET6, as returned above) in its canonical text form ("10.0.0.1", "2001:db8::1",
 * no port, no brackets) into buf (cap bytes, CPH_CLIENT_IP_STRLEN is always enough), NUL-terminated. Returns the
 * length, or 0 (buf = "") for another family or a buffer too small.
 */
size_t cph_client_ip_format(const struct sockaddr_storage *ss, char *buf, size_t cap);

#define CPH_CLIENT_IP_KEY_MAX 8

/**
 * The bytes that identify the client of ss (as returned above) for a per-client counter (rate-limit key `ip`): an
 * IPv4 address is its 4 bytes; an IPv6 address is its /64 prefix (8 bytes), because one host (one customer, one
 * SLAAC network) usually holds a whole /64 and could otherwise rotate through 2^64 addresses. IPv4-mapped addresses
 * were already folded to IPv4. Writes at most CPH_CLIENT_IP_KEY_MAX bytes to out; returns their number (0 for another
 * family).
 */
size_t cph_client_ip_key(const struct sockaddr_storage *ss, char *out);

/**
 * Parses one address as written in X-Forwarded-For (see cph_client_ip_hops; surrounding spaces allowed) into out
 * (port 0, mapped IPv4 folded to AF_INET). Returns 0, or -1 when s is not an address.
 */
int cph_client_ip_parse(const char *s, size_t len, struct sockaddr_storage *out);

#endif
