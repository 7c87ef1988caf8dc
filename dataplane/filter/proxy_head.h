/*
 * filter/proxy_head: the header rules of the hot path. Request head building and response header filtering for
 * filter/proxy.c, the identity headers the gateway writes (docs/access.md section 1), and the request
 * header checks of filter/sanitize.c, which share the identity header prefix with them.
 */
#ifndef CPH_FILTER_PROXY_HEAD_H
#define CPH_FILTER_PROXY_HEAD_H

#include "dataplane/core/pipeline.h"

#define CPH_REQUEST_ID_LEN 32              /* lower-case hex characters */
#define CPH_SANITIZE_MAX_HEADERS 100       /* request headers; more is 431 */
#define CPH_SANITIZE_MAX_VALUE (16 * 1024) /* bytes of one header value */
#define CPH_SANITIZE_MAX_TOTAL (64 * 1024) /* bytes of all names and values */
#define CPH_SANITIZE_MALFORMED 1           /* cph_sanitize_headers: a header h2o let through malformed */

/** Case-insensitive equality of s[0..len) with a lower-case literal (length first: cheap on a mismatch). */
static inline int cph_lc_eq(const char *s, size_t len, const char *lit, size_t litlen)
{
    if (len != litlen)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i], l = lit[i];
        if (c != l && !(l >= 'a' && l <= 'z' && (c | 0x20) == l))
            return 0;
    }
    return 1;
}
#define CPH_LC_EQ(s, len, lit) cph_lc_eq((s), (len), lit, sizeof(lit) - 1)

/**
 * The identity header prefix of snap (lower-case, ends with '-'): body auth.header_prefix as compiled into
 * snap->auth->settings, CPH_AUTH_DEFAULT_HEADER_PREFIX ("x-cephalo-") when the snapshot has no auth settings.
 */
h2o_iovec_t cph_proxy_header_prefix(const cph_snapshot_t *snap);

/**
 * Whether a header name starts with prefix (lower-case [a-z0-9-]) when the name is lower-cased and every '_' in it is
 * read as '-': "X_Cephalo_Roles" has the prefix "x-cephalo-".
 */
int cph_proxy_has_prefix(const char *name, size_t len, h2o_iovec_t prefix);

/**
 * The HTTP/1.1 request head for the upstream (allocated from r->req->pool): method, r->upstream_path, Host =
 * target->authority, the client's end-to-end headers (never X-API-Key, nor Authorization when r->strip_credential, nor
 * a name with the identity prefix, nor a name the route's service injects), the service's credential headers
 * (r->route->service->credentials, when r->route is set: written once, whatever the client sent, Authorization even
 * when r->strip_credential), Content-Length when the request has a body, X-Forwarded-*, then the identity
 * headers: <prefix>request-id always; for a principal <prefix>user-id or <prefix>api-key-id, <prefix>system,
 * <prefix>roles (its effective roles, comma-separated) and <prefix>groups when non-empty. A principal value that
 * could not be sent safely (a control byte; in a list also a comma or an empty name) is left out.
 */
h2o_iovec_t cph_proxy_build_head(cph_req_t *r, const cph_target_t *target);

/**
 * cph_proxy_build_head for a sub-request of r (an aggregate backend, a PDF source page): the same head, with method,
 * body (base NULL: none) and the end-to-end headers to forward given by the caller instead of read from r->req, which
 * is left untouched. Everything else (r->upstream_path, r->route's service credentials, the client's address, scheme
 * and authority for X-Forwarded-*, the identity headers) comes from r as for cph_proxy_build_head.
 */
h2o_iovec_t cph_proxy_build_head_for(cph_req_t *r, const cph_target_t *target, h2o_iovec_t method, h2o_iovec_t body,
                                     const h2o_headers_t *headers);

/**
 * Whether a response header must not reach the client: hop-by-hop, framing and Date (h2o writes its own), Server
 * (ours), or named in the response's Connection header (connection: its value, or empty).
 */
int cph_proxy_drop_response_header(const char *name, size_t len, h2o_iovec_t connection);

/** The Server header of every answer (h2o's own server_name is empty: core/server.c). */
#define CPH_SERVER_NAME "cephalo"

struct phr_header;
/**
 * Adds the upstream's end-to-end response headers to r's response, names lower-cased (HTTP/2 requires it): our
 * Server, then every header cph_proxy_drop_response_header keeps (a Connection value other than keep-alive / close
 * names more hop-by-hop headers) and no gateway header overrides (cph_pipeline_overrides); then the gateway's own
 * (cph_pipeline_response_headers).
 */
void cph_proxy_add_response_headers(cph_req_t *r, const struct phr_header *headers, size_t num_headers);

/* ---- filter/sanitize.c ---- */

/**
 * Writes the next request id of the calling thread into out (CPH_REQUEST_ID_LEN hex characters, no NUL): the
 * thread's random seed (drawn from OpenSSL on its first call) then its counter, 16 hex characters each.
 */
void cph_sanitize_next_request_id(char *out);

/** The correlation headers a client sent, which cph_sanitize_headers takes out of the request. */
typedef struct st_cph_trace_in_t {
    h2o_mem_pool_t *pool;    /* set by the caller: where repeated tracestate headers are joined */
    h2o_iovec_t request_id;  /* the last x-request-id (empty: none) */
    h2o_iovec_t traceparent; /* the traceparent (empty: none, or sent more than once - which is invalid) */
    h2o_iovec_t tracestate;  /* every tracestate joined with ',' in order (empty: none) */
    unsigned num_traceparent;
} cph_trace_in_t;

/**
 * One pass over a request's headers: 431 when there are more than CPH_SANITIZE_MAX_HEADERS, a value is longer than
 * CPH_SANITIZE_MAX_VALUE or names and values add up to more than CPH_SANITIZE_MAX_TOTAL bytes; 400 when a name has
 * '_'; CPH_SANITIZE_MALFORMED for an empty name (h2o 2.2.5 turns an obs-fold continuation line into one; a CR, LF
 * or NUL in a value h2o refuses itself, in HTTP/1 and HPACK alike); else removes (in place, order kept) every header with the prefix (cph_proxy_has_prefix), and x-request-id,
 * traceparent and tracestate into *in (the gateway writes its own upstream), and returns 0.
 */
int cph_sanitize_headers(h2o_headers_t *headers, h2o_iovec_t prefix, cph_trace_in_t *in);

#endif
