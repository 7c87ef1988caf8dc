/*
 * filter/proxy_head: the header work of filter/proxy.c, apart so that the proxy file stays about the exchange.
 *
 * Upstream request head: method, upstream path, the client's end-to-end headers (hop-by-hop ones, those named in
 * Connection, and any value with CR or LF dropped), Host = the target's authority, Cookie joined into one line (HTTP/2
 * sends one per cookie), X-Forwarded-For/Proto/Host written by us. Every name comparison checks the length first:
 * these run for every header of every request.
 *
 * Identity (docs/access.md section 1): the client's credential is not forwarded when it was an API key
 * (X-API-Key never, Authorization when r->strip_credential), no client header with the identity prefix gets through
 * (filter/sanitize.c removed them; checked again here, it costs a byte compare), and the gateway writes
 * <prefix>request-id plus, for an authenticated request, who it is: user or key id, system, effective roles and
 * groups. Those values come from a verified token or the snapshot, but a JWT claim is still any JSON string: one that
 * could not be read back unambiguously (a control byte, a space; in a list a comma) is left out, never escaped.
 *
 * Service credentials (core/credentials.h): the service's injected headers are one block pre-built at compile time,
 * copied once after the client's headers; every client header of an injected name is dropped first, so the client
 * can neither override nor duplicate them (Cookie included: the client's cookies are then not forwarded at all).
 */
#include <assert.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include "dataplane/compile/auth.h"
#include "dataplane/compile/authz.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/credentials.h"
#include "dataplane/core/h1resp.h"
#include "dataplane/core/clientip.h"
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

/* Headers the upstream must not receive from the client: hop-by-hop, those listed in Connection, the ones we write
 * ourselves (the service's credentials among them: creds may be NULL), and an API key credential. */
static int drop_request_header(const cph_req_t *r, const h2o_header_t *h, h2o_iovec_t connection, h2o_iovec_t prefix,
                               const cph_credentials_t *creds)
{
    const char *n = h->name->base;
    size_t len = h->name->len;

    if (drop_request_name(n, len) || CPH_LC_EQ(n, len, "x-api-key") ||
        (r->strip_credential && CPH_LC_EQ(n, len, "authorization")) || cph_proxy_has_prefix(n, len, prefix) ||
        (creds != NULL && cph_credentials_injects(creds, n, len)))
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

/* The client's address for X-Forwarded-For (buf: NI_MAXHOST bytes); "unknown" when the connection has none. */
static h2o_iovec_t peer_address(h2o_req_t *req, char *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (void *)&ss);
    size_t n = len != 0 ? cph_client_ip_format(&ss, buf, NI_MAXHOST) : 0;

    return n != 0 ? h2o_iovec_init(buf, n) : h2o_iovec_init(H2O_STRLIT("unknown"));
}

/* ---------------------------------------------------------------- identity headers */

h2o_iovec_t cph_proxy_header_prefix(const cph_snapshot_t *snap)
{
    if (snap->auth != NULL && snap->auth->settings.header_prefix.len != 0)
        return snap->auth->settings.header_prefix;
    return h2o_iovec_init(H2O_STRLIT(CPH_AUTH_DEFAULT_HEADER_PREFIX));
}

int cph_proxy_has_prefix(const char *name, size_t len, h2o_iovec_t prefix)
{
    if (len < prefix.len)
        return 0;
    for (size_t i = 0; i != prefix.len; ++i) {
        char c = name[i];
        c = c == '_' ? '-' : (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
        if (c != prefix.base[i])
            return 0;
    }
    return 1;
}

/* A value the upstream reads back exactly: visible ASCII, no space; in a list (item != 0) no comma either. */
static int identity_safe(const char *s, size_t len, int item)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || (item && s[i] == ','))
            return 0;
    return 1;
}

/* A comma-separated list built in the request's pool. */
typedef struct st_list_t {
    h2o_mem_pool_t *pool;
    char *base;
    size_t len, cap;
} list_t;

static void list_add(void *ud, const char *item, size_t len)
{
    list_t *l = ud;

    if (!identity_safe(item, len, 1))
        return;
    if (l->len + len + 1 > l->cap) {
        size_t ncap = (l->cap + len + 1) * 2;
        char *nbase = h2o_mem_alloc_pool(l->pool, ncap);
        if (l->len != 0)
            memcpy(nbase, l->base, l->len);
        l->base = nbase;
        l->cap = ncap;
    }
    if (l->len != 0)
        l->base[l->len++] = ',';
    memcpy(l->base + l->len, item, len);
    l->len += len;
}

/* What the identity headers of a request carry, measured before the head buffer is sized. */
typedef struct st_identity_t {
    h2o_iovec_t prefix, request_id, id, system;
    const char *id_name; /* "user-id" or "api-key-id" */
    list_t roles, groups;
} identity_t;

#define HEADER_SIZE(prefix, nlen, vlen) ((vlen) != 0 ? (prefix).len + (nlen) + (vlen) + 4 : 0)

/* Fills ident from r; returns the bytes identity_write will append. */
static size_t identity_prepare(cph_req_t *r, h2o_iovec_t prefix, identity_t *ident)
{
    const cph_principal_t *pr = &r->principal;

    *ident = (identity_t){.prefix = prefix, .request_id = r->request_id, .id_name = "user-id"};
    ident->roles.pool = ident->groups.pool = &r->req->pool;
    if (pr->kind != CPH_PRINCIPAL_NONE) {
        if (pr->kind == CPH_PRINCIPAL_API_KEY)
            ident->id_name = "api-key-id";
        if (identity_safe(pr->id.base, pr->id.len, 0))
            ident->id = pr->id;
        if (identity_safe(pr->system.base, pr->system.len, 0))
            ident->system = pr->system;
        cph_authz_effective_roles(r->snap, pr, list_add, &ident->roles);
        for (size_t i = 0; i != pr->num_groups; ++i)
            list_add(&ident->groups, pr->groups[i].base, pr->groups[i].len);
    }
    return HEADER_SIZE(prefix, sizeof("request-id") - 1, ident->request_id.len) +
           HEADER_SIZE(prefix, strlen(ident->id_name), ident->id.len) +
           HEADER_SIZE(prefix, sizeof("system") - 1, ident->system.len) +
           HEADER_SIZE(prefix, sizeof("roles") - 1, ident->roles.len) +
           HEADER_SIZE(prefix, sizeof("groups") - 1, ident->groups.len);
}

#undef HEADER_SIZE

/* Appends "<prefix><name>: <value>\r\n" at p when the value is not empty. */
static char *put_header(char *p, h2o_iovec_t prefix, const char *name, const char *value, size_t vlen)
{
    size_t nlen = strlen(name);

    if (vlen == 0)
        return p;
    memcpy(p, prefix.base, prefix.len), p += prefix.len;
    memcpy(p, name, nlen), p += nlen;
    *p++ = ':', *p++ = ' ';
    memcpy(p, value, vlen), p += vlen;
    *p++ = '\r', *p++ = '\n';
    return p;
}

static char *identity_write(char *p, const identity_t *ident)
{
    p = put_header(p, ident->prefix, "request-id", ident->request_id.base, ident->request_id.len);
    p = put_header(p, ident->prefix, ident->id_name, ident->id.base, ident->id.len);
    p = put_header(p, ident->prefix, "system", ident->system.base, ident->system.len);
    p = put_header(p, ident->prefix, "roles", ident->roles.base, ident->roles.len);
    return put_header(p, ident->prefix, "groups", ident->groups.base, ident->groups.len);
}

/* ---------------------------------------------------------------- request head */

#define APPEND(s, n) (memcpy(p, (s), (n)), p += (n))
#define APPEND_LIT(s) APPEND(s, sizeof(s) - 1)

/* The request head: method, upstream path, the end-to-end headers, Host, the service's credentials, X-Forwarded-* and
 * identity. The client's request gives everything else (peer, scheme, authority, pool). */
static h2o_iovec_t build_head(cph_req_t *r, const cph_target_t *target, h2o_iovec_t method, h2o_iovec_t entity,
                              const h2o_headers_t *headers)
{
    h2o_req_t *req = r->req;
    const cph_credentials_t *creds = r->route != NULL ? r->route->service->credentials : NULL;
    h2o_iovec_t conn = {NULL, 0}, xff = {NULL, 0}, cookie = {NULL, 0}, injected = {NULL, 0};
    int seen = 0; /* bits: connection, x-forwarded-for, cookie */

    for (size_t i = 0; i != headers->size; ++i) {
        const h2o_iovec_t *n = headers->entries[i].name;
        seen |= CPH_LC_EQ(n->base, n->len, "connection") | CPH_LC_EQ(n->base, n->len, "x-forwarded-for") << 1 |
                CPH_LC_EQ(n->base, n->len, "cookie") << 2;
    }
    if (seen & 1)
        conn = join_headers(&req->pool, headers, "connection", ",");
    if (seen & 2)
        xff = join_headers(&req->pool, headers, "x-forwarded-for", ", ");
    if ((seen & 4) && !(creds != NULL && creds->has_cookie))
        cookie = join_headers(&req->pool, headers, "cookie", "; ");
    if (creds != NULL)
        injected = creds->block;
    char peerbuf[NI_MAXHOST], lenbuf[32];
    h2o_iovec_t peer = peer_address(req, peerbuf), scheme = req->input.scheme->name;
    int has_body =
        entity.base != NULL || cph_method_from(method.base, method.len) & (CPH_METHOD_POST | CPH_METHOD_PUT | CPH_METHOD_PATCH);
    size_t lenlen = has_body ? (size_t)snprintf(lenbuf, sizeof(lenbuf), "%zu", entity.len) : 0;
    h2o_iovec_t prefix = cph_proxy_header_prefix(r->snap);
    identity_t ident;
    size_t cap = method.len + r->upstream_path.len + target->authority.len + xff.len + peer.len + scheme.len +
                 req->input.authority.len + lenlen + injected.len + identity_prepare(r, prefix, &ident) + r->request_id.len +
                 r->traceparent.len + r->tracestate.len + 320;

    for (size_t i = 0; i != headers->size; ++i)
        cap += headers->entries[i].name->len + headers->entries[i].value.len + 4;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf;
    APPEND(method.base, method.len);
    APPEND_LIT(" ");
    APPEND(r->upstream_path.base, r->upstream_path.len);
    APPEND_LIT(" HTTP/1.1\r\nhost: ");
    APPEND(target->authority.base, target->authority.len);
    APPEND_LIT("\r\nconnection: keep-alive\r\n");
    for (size_t i = 0; i != headers->size; ++i) {
        const h2o_header_t *h = &headers->entries[i];
        if (drop_request_header(r, h, conn, prefix, creds))
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
    if (injected.len != 0)
        APPEND(injected.base, injected.len);
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
    APPEND_LIT("\r\nx-request-id: ");
    APPEND(r->request_id.base, r->request_id.len);
    APPEND_LIT("\r\n");
    if (r->traceparent.len != 0) {
        APPEND_LIT("traceparent: ");
        APPEND(r->traceparent.base, r->traceparent.len);
        APPEND_LIT("\r\n");
    }
    if (r->tracestate.len != 0) {
        APPEND_LIT("tracestate: ");
        APPEND(r->tracestate.base, r->tracestate.len);
        APPEND_LIT("\r\n");
    }
    p = identity_write(p, &ident);
    APPEND_LIT("\r\n");
    assert((size_t)(p - buf) <= cap);
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

h2o_iovec_t cph_proxy_build_head(cph_req_t *r, const cph_target_t *target)
{
    h2o_req_t *req = r->req;

    return build_head(r, target, req->input.method, req->entity, &req->headers);
}

h2o_iovec_t cph_proxy_build_head_for(cph_req_t *r, const cph_target_t *target, h2o_iovec_t method, h2o_iovec_t body,
                                     const h2o_headers_t *headers)
{
    return build_head(r, target, method, body, headers);
}

#undef APPEND
#undef APPEND_LIT

/* Whether the Connection value lists the header name: both are the upstream's spelling, so compared without case
 * (h2o_contains_token wants a lower-case needle). */
static int connection_lists(h2o_iovec_t connection, const char *name, size_t len)
{
    const char *p = connection.base, *end = connection.base + connection.len;

    while (p < end) {
        const char *tok = p, *comma = memchr(p, ',', (size_t)(end - p));
        const char *tok_end = comma != NULL ? comma : end;
        while (tok < tok_end && (*tok == ' ' || *tok == '\t'))
            ++tok;
        while (tok_end > tok && (tok_end[-1] == ' ' || tok_end[-1] == '\t'))
            --tok_end;
        if ((size_t)(tok_end - tok) == len && strncasecmp(tok, name, len) == 0)
            return 1;
        p = comma != NULL ? comma + 1 : end;
    }
    return 0;
}
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
    return drop || (connection.len != 0 && connection_lists(connection, n, len));
}

void cph_proxy_add_response_headers(cph_req_t *r, const struct phr_header *headers, size_t num_headers)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t conn = h2o_iovec_init(NULL, 0);

    for (size_t i = 0; i != num_headers; ++i)
        if (CPH_LC_EQ(headers[i].name, headers[i].name_len, "connection") &&
            !CPH_LC_EQ(headers[i].value, headers[i].value_len, "keep-alive") &&
            !CPH_LC_EQ(headers[i].value, headers[i].value_len, "close"))
            conn = h2o_iovec_init(headers[i].value, headers[i].value_len); /* it names more hop-by-hop headers */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT(CPH_SERVER_NAME));
    for (size_t i = 0; i != num_headers; ++i) {
        const struct phr_header *h = &headers[i];
        if (cph_proxy_drop_response_header(h->name, h->name_len, conn))
            continue;
        h2o_iovec_t name = h2o_strdup(&req->pool, h->name, h->name_len);
        h2o_strtolower(name.base, name.len);
        if (r->res_extra.size != 0 && cph_pipeline_overrides(r, name.base, name.len))
            continue; /* the gateway's own value (CORS, security headers, RateLimit-*) wins */
        h2o_iovec_t value = h2o_strdup(&req->pool, h->value, h->value_len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL, value.base, value.len);
    }
    cph_pipeline_response_headers(r);
}
