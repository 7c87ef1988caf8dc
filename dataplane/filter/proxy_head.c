/*
 * filter/proxy_head: the header work of filter/proxy.c, apart so that the proxy file stays about the exchange.
 *
 * Upstream request head: method, upstream path, the client's end-to-end headers (hop-by-hop ones, those named in
 * Connection, and any value with CR or LF dropped), Host = the target's authority, Cookie joined into one line (HTTP/2
 * sends one per cookie), X-Forwarded-For/Proto/Host written by us. Every name comparison checks the length first:
 * these run for every header of every request.
 */
#include <assert.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "dataplane/compile/router.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/filter/proxy_head"

/* Hop-by-hop names (RFC 9110 7.6.1) plus the ones we write ourselves: never forwarded upstream. */
static int drop_request_name(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return CPH_LC_EQ(n, len, "te");
    case 4:
        return CPH_LC_EQ(n, len, "host");
    case 6:
        return CPH_LC_EQ(n, len, "expect") || CPH_LC_EQ(n, len, "cookie");
    case 7:
        return CPH_LC_EQ(n, len, "trailer") || CPH_LC_EQ(n, len, "upgrade");
    case 10:
        return CPH_LC_EQ(n, len, "connection") || CPH_LC_EQ(n, len, "keep-alive");
    case 14:
        return CPH_LC_EQ(n, len, "content-length") || CPH_LC_EQ(n, len, "http2-settings");
    case 15:
        return CPH_LC_EQ(n, len, "x-forwarded-for");
    case 16:
        return CPH_LC_EQ(n, len, "proxy-connection") || CPH_LC_EQ(n, len, "x-forwarded-host");
    case 17:
        return CPH_LC_EQ(n, len, "transfer-encoding") || CPH_LC_EQ(n, len, "x-forwarded-proto");
    default:
        return 0;
    }
}

static int has_crlf(h2o_iovec_t v)
{
    return memchr(v.base, '\n', v.len) != NULL || memchr(v.base, '\r', v.len) != NULL;
}

/* Headers the upstream must not receive from the client: hop-by-hop, those listed in Connection, and the ones we
 * write ourselves. */
static int drop_request_header(const h2o_header_t *h, h2o_iovec_t connection)
{
    if (drop_request_name(h->name->base, h->name->len))
        return 1;
    if (connection.len != 0 && h2o_contains_token(connection.base, connection.len, h->name->base, h->name->len, ','))
        return 1;
    return has_crlf(h->value); /* never forward a byte that could split the header block */
}

/* Every value of the header name, joined with sep (a list header may be split over several lines; HTTP/2 sends one
 * cookie per line, which an HTTP/1.1 upstream must receive as one). */
static h2o_iovec_t join_headers(h2o_mem_pool_t *pool, const h2o_headers_t *headers, const char *name, const char *sep)
{
    h2o_iovec_t out = h2o_iovec_init(NULL, 0);
    size_t nlen = strlen(name);

    for (size_t i = 0; i != headers->size; ++i) {
        h2o_iovec_t v = headers->entries[i].value;
        if (!cph_lc_eq(headers->entries[i].name->base, headers->entries[i].name->len, name, nlen) || has_crlf(v))
            continue;
        out = out.base == NULL ? v : h2o_concat(pool, out, h2o_iovec_init(sep, strlen(sep)), v);
    }
    return out;
}

/* Dotted quad without printf (inet_ntop formats with sprintf: a tenth of the request's instructions). */
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
    return (size_t)(p - buf);
}

static h2o_iovec_t peer_address(h2o_req_t *req, char *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (void *)&ss);
    size_t n;

    if (len != 0 && ss.ss_family == AF_INET)
        return h2o_iovec_init(buf, format_ipv4((const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr, buf));
    n = len != 0 ? h2o_socket_getnumerichost((void *)&ss, len, buf) : SIZE_MAX;
    return n != SIZE_MAX ? h2o_iovec_init(buf, n) : h2o_iovec_init(H2O_STRLIT("unknown"));
}

#define APPEND(s, n) (memcpy(p, (s), (n)), p += (n))
#define APPEND_LIT(s) APPEND(s, sizeof(s) - 1)

/* The request head: method, upstream path, the client's end-to-end headers, Host and X-Forwarded-*. */
h2o_iovec_t cph_proxy_build_head(cph_req_t *r, const cph_target_t *target)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t conn = {NULL, 0}, xff = {NULL, 0}, cookie = {NULL, 0};
    int seen = 0; /* bits: connection, x-forwarded-for, cookie */

    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_iovec_t *n = req->headers.entries[i].name;
        seen |= CPH_LC_EQ(n->base, n->len, "connection") | CPH_LC_EQ(n->base, n->len, "x-forwarded-for") << 1 |
                CPH_LC_EQ(n->base, n->len, "cookie") << 2;
    }
    if (seen & 1)
        conn = join_headers(&req->pool, &req->headers, "connection", ",");
    if (seen & 2)
        xff = join_headers(&req->pool, &req->headers, "x-forwarded-for", ", ");
    if (seen & 4)
        cookie = join_headers(&req->pool, &req->headers, "cookie", "; ");
    char peerbuf[NI_MAXHOST], lenbuf[32];
    h2o_iovec_t peer = peer_address(req, peerbuf), scheme = req->input.scheme->name;
    int has_body = req->entity.base != NULL || cph_method_from(req->input.method.base, req->input.method.len) &
                                                   (CPH_METHOD_POST | CPH_METHOD_PUT | CPH_METHOD_PATCH);
    size_t lenlen = has_body ? (size_t)snprintf(lenbuf, sizeof(lenbuf), "%zu", req->entity.len) : 0;
    size_t cap = req->input.method.len + r->upstream_path.len + target->authority.len + xff.len + peer.len + scheme.len +
                 req->input.authority.len + lenlen + 256;

    for (size_t i = 0; i != req->headers.size; ++i)
        cap += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf;
    APPEND(req->input.method.base, req->input.method.len);
    APPEND_LIT(" ");
    APPEND(r->upstream_path.base, r->upstream_path.len);
    APPEND_LIT(" HTTP/1.1\r\nhost: ");
    APPEND(target->authority.base, target->authority.len);
    APPEND_LIT("\r\nconnection: keep-alive\r\n");
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (drop_request_header(h, conn))
            continue;
        APPEND(h->name->base, h->name->len);
        APPEND_LIT(": ");
        APPEND(h->value.base, h->value.len);
        APPEND_LIT("\r\n");
    }
    if (cookie.len != 0) {
        APPEND_LIT("cookie: ");
        APPEND(cookie.base, cookie.len);
        APPEND_LIT("\r\n");
    }
    if (has_body) {
        APPEND_LIT("content-length: ");
        APPEND(lenbuf, lenlen);
        APPEND_LIT("\r\n");
    }
    APPEND_LIT("x-forwarded-for: ");
    if (xff.len != 0) {
        APPEND(xff.base, xff.len);
        APPEND_LIT(", ");
    }
    APPEND(peer.base, peer.len);
    APPEND_LIT("\r\nx-forwarded-proto: ");
    APPEND(scheme.base, scheme.len);
    APPEND_LIT("\r\nx-forwarded-host: ");
    APPEND(req->input.authority.base, req->input.authority.len);
    APPEND_LIT("\r\n\r\n");
    assert((size_t)(p - buf) <= cap);
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

#undef APPEND
#undef APPEND_LIT

/* Hop-by-hop, framing (h2o writes its own), Date (h2o writes its own) and Server (ours is "cephalo"). */
int cph_proxy_drop_response_header(const char *n, size_t len, h2o_iovec_t connection)
{
    int drop;

    switch (len) {
    case 2:
        drop = CPH_LC_EQ(n, len, "te");
        break;
    case 4:
        drop = CPH_LC_EQ(n, len, "date");
        break;
    case 6:
        drop = CPH_LC_EQ(n, len, "server");
        break;
    case 7:
        drop = CPH_LC_EQ(n, len, "trailer") || CPH_LC_EQ(n, len, "upgrade");
        break;
    case 10:
        drop = CPH_LC_EQ(n, len, "connection") || CPH_LC_EQ(n, len, "keep-alive");
        break;
    case 14:
        drop = CPH_LC_EQ(n, len, "content-length");
        break;
    case 16:
        drop = CPH_LC_EQ(n, len, "proxy-connection");
        break;
    case 17:
        drop = CPH_LC_EQ(n, len, "transfer-encoding");
        break;
    default:
        drop = 0;
    }
    return drop || (connection.len != 0 && h2o_contains_token(connection.base, connection.len, n, len, ','));
}
