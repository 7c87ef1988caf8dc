/*
 * filter/edge: the edge policies of the gateway and the matched route, in the order a request should be refused:
 *
 * 1. IP lists (403 ip_denied): the gateway's, then the route's; in each deny wins and a non-empty allow list refuses
 *    every other address. The client address is core/clientip.c's (trusted_proxy_hops); it is only computed when a
 *    list is configured.
 * 2. https_redirect (308 to https://host[:tls port]/path?query) for a request that came over plain HTTP, when the data
 *    plane has a TLS listener (cph_edge_tls_port, else the worker's server config).
 * 3. Limits: request target (414 uri_too_long), header count and bytes (431 headers_too_large), body (413
 *    payload_too_large; h2o 2.2.5 has buffered it whole by now: its own cap, globalconf.max_request_entity_size, is the
 *    one that stops an oversize body while it is read).
 * 4. Security headers and CORS, added through cph_pipeline_add_response_header so that every answer, proxied or ours,
 *    carries them. A CORS preflight from an allowed origin is answered here (204); a request from an origin that is not
 *    allowed gets no CORS header at all and goes on (the browser does the refusing).
 *
 * Everything the answers carry was rendered by compile/edge.c; the only per-request allocations are the redirect's
 * Location and the response header entries of routes that configure headers.
 */
#include <string.h>
#include "dataplane/compile/edge.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/respond.h"
#include "dataplane/core/server.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/edge"
#define MAX_HOST 256

static int is_tls(h2o_req_t *req)
{
    if (req->conn != NULL && req->conn->callbacks != NULL && req->conn->callbacks->get_socket != NULL) {
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        if (sock != NULL)
            return sock->ssl != NULL;
    }
    return req->scheme == &H2O_URL_SCHEME_HTTPS; /* HTTP/2 :scheme is the client's word: only a fallback */
}

static int has_lists(const cph_edge_t *g, const cph_edge_route_t *e)
{
    return g->allow.num_cidrs != 0 || g->deny.num_cidrs != 0 || (e != NULL && (e->allow.num_cidrs != 0 || e->deny.num_cidrs != 0));
}

static int ip_refused(cph_req_t *r, const cph_edge_t *g, const cph_edge_route_t *e)
{
    struct sockaddr_storage addr;

    cph_client_ip(r, &addr); /* unknown (AF_UNSPEC): in no list, so only an allow list refuses it */
    return cph_edge_ip_refused(&g->allow, &g->deny, &addr) || (e != NULL && cph_edge_ip_refused(&e->allow, &e->deny, &addr));
}

/* a host fit for a Location: letters, digits, '.', '-', or a bracketed IPv6 literal */
static int host_ok(const char *h, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return 0;
    }
    return len != 0;
}

/* Builds https://host[:port]<raw target>, bytes that cannot appear in a header percent-encoded. */
static h2o_iovec_t location(h2o_req_t *req, const char *host, size_t host_len, uint16_t port)
{
    static const char hex[] = "0123456789ABCDEF";
    h2o_iovec_t t = req->input.path;
    char *out = h2o_mem_alloc_pool(&req->pool, sizeof("https://") + host_len + 6 + 3 * t.len + 1);
    size_t o = (size_t)sprintf(out, "https://%.*s", (int)host_len, host);

    if (port != 443)
        o += (size_t)sprintf(out + o, ":%u", (unsigned)port);
    for (size_t i = 0; i != t.len; ++i) {
        unsigned char c = (unsigned char)t.base[i];
        if (c <= 0x20 || c >= 0x7f) {
            out[o++] = '%', out[o++] = hex[c >> 4], out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    return h2o_iovec_init(out, o);
}

/*
 * The TLS listener's port: the one the server set (cph_edge_set_tls_port), else the port of the configured TLS
 * listen address ("HOST:PORT", core/server.h), else 0 (no TLS listener).
 */
static uint16_t tls_port(cph_req_t *r)
{
    uint16_t port = cph_edge_tls_port();
    const char *listen, *colon;
    unsigned long v = 0;

    if (port != 0 || r->worker == NULL || r->worker->server == NULL || (listen = r->worker->server->config.listen_tls) == NULL ||
        (colon = strrchr(listen, ':')) == NULL)
        return port;
    for (const char *p = colon + 1; *p >= '0' && *p <= '9' && v <= 65535; ++p)
        v = v * 10 + (unsigned long)(*p - '0');
    return v <= 65535 ? (uint16_t)v : 0;
}

/* CPH_DONE when the request was redirected or refused for a host that cannot be redirected to */
static int redirect(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    uint16_t port = tls_port(r);
    char host[MAX_HOST];
    size_t host_len;

    if (port == 0 || is_tls(req))
        return CPH_NEXT;
    host_len = cph_router_host_normalize(req->input.authority.base, req->input.authority.len, host, sizeof(host));
    if (!host_ok(host, host_len)) {
        cph_respond_error_r(r, 400, "bad_request", "The request has no host to redirect to");
        return CPH_DONE;
    }
    h2o_iovec_t loc = location(req, host, host_len, port);
    req->res.status = 308;
    req->res.reason = "Permanent Redirect";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, loc.base, loc.len);
    cph_pipeline_response_headers(r);
    h2o_send_inline(req, "", 0);
    return CPH_DONE;
}

static uint64_t body_length(h2o_req_t *req)
{
    uint64_t len = req->entity.base != NULL ? req->entity.len : 0;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_LENGTH, -1);

    if (i != -1) { /* h2o 2.2.5 consumes Content-Length while parsing: defensive only */
        size_t cl = h2o_strtosize(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        if (cl == SIZE_MAX || cl > len)
            len = cl; /* an unparsable length counts as too large */
    }
    return len;
}

/* Refuses what exceeds l; CPH_DONE when it answered. */
static int check_limits(cph_req_t *r, const cph_edge_limits_t *l)
{
    h2o_req_t *req = r->req;
    uint64_t bytes = 0;

    if (req->input.path.len > l->max_url_bytes) {
        cph_respond_error_r(r, 414, "uri_too_long", "The request target is too long");
        return CPH_DONE;
    }
    for (size_t i = 0; i != req->headers.size; ++i)
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    if (req->headers.size > l->max_headers || bytes > l->max_header_bytes) {
        cph_respond_error_r(r, 431, "headers_too_large", "The request headers are too large");
        return CPH_DONE;
    }
    if (body_length(req) > l->max_body_bytes) {
        cph_respond_error_r(r, 413, "payload_too_large", "The request body is too large");
        return CPH_DONE;
    }
    return CPH_NEXT;
}

static void add_security_headers(cph_req_t *r, const cph_edge_route_t *e)
{
    if (e->hsts.len != 0 && is_tls(r->req))
        cph_pipeline_add_response_header(r, H2O_STRLIT("strict-transport-security"), e->hsts.base, e->hsts.len);
    if (e->nosniff)
        cph_pipeline_add_response_header(r, H2O_STRLIT("x-content-type-options"), H2O_STRLIT("nosniff"));
    if (e->frame_options.len != 0)
        cph_pipeline_add_response_header(r, H2O_STRLIT("x-frame-options"), e->frame_options.base, e->frame_options.len);
    if (e->referrer_policy.len != 0)
        cph_pipeline_add_response_header(r, H2O_STRLIT("referrer-policy"), e->referrer_policy.base, e->referrer_policy.len);
}

/* The configured origin the request's Origin matches (exact, ASCII case-insensitive), "*", or NULL. */
static const h2o_iovec_t *allowed_origin(const cph_cors_t *c, h2o_iovec_t origin)
{
    static const h2o_iovec_t any = {(char *)"*", 1};

    if (c->any_origin)
        return &any;
    for (size_t i = 0; i != c->num_origins; ++i)
        if (h2o_lcstris(origin.base, origin.len, c->origins[i].base, c->origins[i].len))
            return &c->origins[i];
    return NULL;
}

static void add_cors_common(cph_req_t *r, const cph_cors_t *c, const h2o_iovec_t *acao)
{
    cph_pipeline_add_response_header(r, H2O_STRLIT("access-control-allow-origin"), acao->base, acao->len);
    cph_pipeline_add_response_header(r, H2O_STRLIT("vary"), H2O_STRLIT("Origin"));
    if (c->credentials)
        cph_pipeline_add_response_header(r, H2O_STRLIT("access-control-allow-credentials"), H2O_STRLIT("true"));
}

static int answer_preflight(cph_req_t *r, const cph_cors_t *c, const h2o_iovec_t *acao)
{
    h2o_req_t *req = r->req;

    add_cors_common(r, c, acao);
    cph_pipeline_add_response_header(r, H2O_STRLIT("access-control-allow-methods"), c->methods.base, c->methods.len);
    if (c->headers.len != 0)
        cph_pipeline_add_response_header(r, H2O_STRLIT("access-control-allow-headers"), c->headers.base, c->headers.len);
    cph_pipeline_add_response_header(r, H2O_STRLIT("access-control-max-age"), c->max_age.base, c->max_age.len);
    req->res.status = 204;
    req->res.reason = "No Content";
    cph_pipeline_response_headers(r);
    h2o_send_inline(req, "", 0);
    return CPH_DONE;
}

/* The allowed origin of a request from an allowed origin, else NULL */
static const h2o_iovec_t *request_origin(const cph_cors_t *c, h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);

    return i != -1 ? allowed_origin(c, req->headers.entries[i].value) : NULL;
}

static int is_preflight(h2o_req_t *req)
{
    return h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("OPTIONS")) &&
           h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) != -1;
}

int cph_edge_is_preflight(const cph_edge_route_t *e, h2o_req_t *req)
{
    return e != NULL && e->cors != NULL && is_preflight(req) && request_origin(e->cors, req) != NULL;
}

static int cors(cph_req_t *r, const cph_cors_t *c)
{
    const h2o_iovec_t *acao = request_origin(c, r->req);

    if (acao == NULL)
        return CPH_NEXT;
    if (is_preflight(r->req))
        return answer_preflight(r, c, acao);
    add_cors_common(r, c, acao);
    if (c->expose.len != 0)
        cph_pipeline_add_response_header(r, H2O_STRLIT("access-control-expose-headers"), c->expose.base, c->expose.len);
    return CPH_NEXT;
}

int cph_edge_on_req(cph_req_t *r)
{
    const cph_edge_t *g = r->snap->edge;
    const cph_edge_route_t *e = r->route != NULL ? r->route->edge : NULL;

    if (g == NULL)
        return CPH_NEXT; /* a snapshot built without cph_edge_compile (tests) */
    if (has_lists(g, e) && ip_refused(r, g, e)) {
        cph_respond_error_r(r, 403, "ip_denied", "The client address is not allowed");
        return CPH_DONE;
    }
    if (e != NULL && e->https_redirect && redirect(r) == CPH_DONE)
        return CPH_DONE;
    if (check_limits(r, e != NULL ? &e->limits : &g->limits) == CPH_DONE)
        return CPH_DONE;
    if (e == NULL)
        return CPH_NEXT;
    add_security_headers(r, e);
    return e->cors != NULL ? cors(r, e->cors) : CPH_NEXT;
}
