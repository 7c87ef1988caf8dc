/*
 * clientip: which address a request came from, as far as the gateway can trust it.
 *
 * X-Forwarded-For is a list every proxy appends its peer to, so only its right end is trustworthy: with N trusted
 * proxies in front (gateway.trusted_proxy_hops), the Nth element from the right was written by the outermost trusted
 * proxy, and everything left of it is whatever the client sent. With no trusted proxy the header is ignored
 * altogether. Anything unreadable in the place that matters falls back to the TCP peer rather than to a guess, so a
 * client can never pick an address of its choosing (for an allow list or a rate-limit key) by sending garbage.
 *
 * IPv4-mapped IPv6 addresses (a dual-stack listener reports IPv4 peers that way) are folded to AF_INET so that the
 * same client always has the same key and the same CIDR lists apply. A per-client counter keys IPv6 clients by their
 * /64 (cph_client_ip_key): one host usually owns a whole /64.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "dataplane/compile/edge.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/pipeline.h"

#define MODULE "dp/core/clientip"

/* ::ffff:a.b.c.d -> AF_INET a.b.c.d; port cleared either way */
static void normalize(struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_port = 0;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            struct in_addr a;
            memcpy(&a, s6->sin6_addr.s6_addr + 12, 4);
            memset(ss, 0, sizeof(*ss));
            ((struct sockaddr_in *)ss)->sin_family = AF_INET;
            ((struct sockaddr_in *)ss)->sin_addr = a;
        } else {
            s6->sin6_flowinfo = 0;
            s6->sin6_scope_id = 0;
        }
    } else if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = 0;
    }
}

static int set_v4(const char *s, struct sockaddr_storage *out)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)out;

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, s, &sin->sin_addr) != 1)
        return -1;
    sin->sin_family = AF_INET;
    return 0;
}

static int set_v6(const char *s, struct sockaddr_storage *out)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET6, s, &sin6->sin6_addr) != 1)
        return -1;
    sin6->sin6_family = AF_INET6;
    normalize(out);
    return 0;
}

static int valid_port(const char *p, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

int cph_client_ip_parse(const char *s, size_t len, struct sockaddr_storage *out)
{
    char buf[CPH_CLIENT_IP_STRLEN];
    const char *colon;

    while (len != 0 && (*s == ' ' || *s == '\t'))
        ++s, --len;
    while (len != 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        --len;
    if (len == 0)
        return -1;
    if (s[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(s, ']', len);
        size_t rest;
        if (close == NULL || (size_t)(close - s) - 1 >= sizeof(buf))
            return -1;
        rest = len - (size_t)(close - s) - 1;
        if (rest != 0 && (close[1] != ':' || !valid_port(close + 2, rest - 1)))
            return -1;
        memcpy(buf, s + 1, (size_t)(close - s) - 1);
        buf[(size_t)(close - s) - 1] = '\0';
        return set_v6(buf, out);
    }
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if ((colon = memchr(buf, ':', len)) == NULL)
        return set_v4(buf, out);
    if (memchr(colon + 1, ':', len - (size_t)(colon - buf) - 1) == NULL) { /* a.b.c.d:port */
        if (!valid_port(colon + 1, len - (size_t)(colon - buf) - 1))
            return -1;
        buf[colon - buf] = '\0';
        return set_v4(buf, out);
    }
    return set_v6(buf, out);
}

static int peer(h2o_req_t *req, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (req->conn == NULL || req->conn->callbacks == NULL || req->conn->callbacks->get_peername == NULL ||
        req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)out) == 0 ||
        (out->ss_family != AF_INET && out->ss_family != AF_INET6)) {
        memset(out, 0, sizeof(*out));
        out->ss_family = AF_UNSPEC;
        return -1;
    }
    normalize(out);
    return 0;
}

/*
 * Finds the nth (1-based) element from the right of all X-Forwarded-For lines read as one list. Returns 0 with the
 * element in *elem, or -1 when the list is shorter.
 */
static int xff_from_right(const h2o_headers_t *headers, unsigned nth, h2o_iovec_t *elem)
{
    for (size_t i = headers->size; i-- != 0;) {
        const h2o_header_t *h = &headers->entries[i];
        if (h->name != &H2O_TOKEN_X_FORWARDED_FOR->buf && !h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-forwarded-for")))
            continue;
        size_t end = h->value.len;
        for (size_t k = h->value.len + 1; k-- != 0;) {
            if (k != 0 && h->value.base[k - 1] != ',')
                continue;
            if (--nth == 0) {
                *elem = h2o_iovec_init(h->value.base + k, end - k);
                return 0;
            }
            end = k != 0 ? k - 1 : 0;
        }
    }
    return -1;
}

int cph_client_ip_hops(h2o_req_t *req, unsigned hops, struct sockaddr_storage *out)
{
    h2o_iovec_t elem;

    if (hops == 0 || hops > CPH_CLIENT_IP_MAX_HOPS || xff_from_right(&req->headers, hops, &elem) != 0 ||
        cph_client_ip_parse(elem.base, elem.len, out) != 0)
        return peer(req, out);
    return 0;
}

int cph_client_ip(cph_req_t *r, struct sockaddr_storage *out)
{
    unsigned hops = r->snap != NULL && r->snap->edge != NULL ? r->snap->edge->trusted_proxy_hops : 0;

    return cph_client_ip_hops(r->req, hops, out);
}

/* Dotted quad of a (4 bytes) into buf (at least 16 bytes), NUL-terminated, without inet_ntop's sprintf per byte. */
static size_t format_ipv4(const uint8_t *a, char *buf)
{
    char *p = buf;

    for (int i = 0; i != 4; ++i) {
        unsigned v = a[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        if (i != 3)
            *p++ = '.';
    }
    *p = '\0';
    return (size_t)(p - buf);
}

size_t cph_client_ip_format(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    const void *addr = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr : NULL;

    if (cap == 0)
        return 0;
    if (ss->ss_family == AF_INET && cap >= INET_ADDRSTRLEN)
        return format_ipv4((const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr, buf);
    if (addr == NULL || cap > (size_t)INT32_MAX || inet_ntop(AF_INET6, addr, buf, (socklen_t)cap) == NULL) {
        buf[0] = '\0';
        return 0;
    }
    return strlen(buf);
}

size_t cph_client_ip_key(const struct sockaddr_storage *ss, char *out)
{
    if (ss->ss_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        memcpy(out, ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr, 8); /* the /64 */
        return 8;
    }
    return 0;
}
