/*
 * filter/sanitize: the first stage. Everything later stages and the upstream rely on about the request's shape is
 * settled here, in one pass over the headers and one over the path:
 *
 * - the request id: the client's X-Request-Id when gateway.request_id.trust_incoming is set and the value is
 *   acceptable (cph_trace_request_id_valid), else 32 lower-case hex characters, a per-worker random 64-bit seed
 *   (OpenSSL, drawn at the worker's first request) followed by a per-worker counter; unique without a random draw
 *   per request, which profiling puts at several percent of a proxied request. It goes upstream as x-request-id and
 *   <prefix>request-id, back to the client as X-Request-Id on every answer, and into every error body;
 * - the trace context (core/trace.h): a valid traceparent keeps its trace id and flags with a new span id, and its
 *   tracestate; else a new trace starts. The client's headers are removed; the proxy writes the gateway's;
 * - header caps: more than CPH_SANITIZE_MAX_HEADERS headers, a value over CPH_SANITIZE_MAX_VALUE bytes or over
 *   CPH_SANITIZE_MAX_TOTAL bytes of names and values in all is 431 headers_too_large (h2o 2.2.5 caps an HTTP/1 head,
 *   not what HPACK decodes to);
 * - a header name with '_' is 400 bad_header: an upstream behind a CGI-style stack reads X_User as X-User, so a name
 *   the gateway cannot tell from one of its own identity headers is refused rather than guessed at;
 * - every client header whose name starts with the identity header prefix (filter/proxy_head.h; '_' read as '-') is
 *   removed: only the gateway writes those;
 * - the canonical path (cph_path_canonicalize: decoded once, dot segments resolved, slashes merged) replaces the raw
 *   one and the raw query is kept apart, so the router and the upstream see exactly the same path (400 bad_path).
 *
 * Content-Length and Transfer-Encoding never reach req->headers: h2o 2.2.5 consumes them while parsing (HTTP/1: the
 * first Content-Length frames the body; HTTP/2: HPACK decoding keeps the last one), so duplicates cannot be seen
 * here. The proxy re-frames every forwarded body (docs/dataplane.md "Request framing").
 */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include "proto/proto.h"
#include "dataplane/core/respond.h"
#include "dataplane/core/trace.h"
#include "dataplane/compile/edge.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/filter/sanitize"

/* per worker thread: the request id's seed (and its hex, written once) and counter */
static _Thread_local uint64_t id_seed, id_counter;
static _Thread_local char id_seed_hex[16];
static _Thread_local int id_seeded;

static void format_hex64(uint64_t v, char *out);

static void seed_request_ids(void)
{
    if (RAND_bytes((unsigned char *)&id_seed, sizeof(id_seed)) != 1) {
        /* ids are for correlation, not secrets: a clock and thread mix still keeps workers apart */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        id_seed = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)&id_seed << 17) ^
                  (uint64_t)pthread_self();
    }
    format_hex64(id_seed, id_seed_hex);
    id_seeded = 1;
}

static void format_hex64(uint64_t v, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 15; i >= 0; --i, v >>= 4)
        out[i] = hex[v & 15];
}

void cph_sanitize_next_request_id(char *out)
{
    if (!id_seeded)
        seed_request_ids();
    memcpy(out, id_seed_hex, 16);
    format_hex64(++id_counter, out + 16);
}

/* Takes h out of the request into in when it is one of the correlation headers; returns 1 when it was. */
static int take_trace_header(const h2o_header_t *h, cph_trace_in_t *in)
{
    const h2o_iovec_t *n = h->name;

    if (h2o_memis(n->base, n->len, H2O_STRLIT("x-request-id"))) {
        in->request_id = h->value;
    } else if (h2o_memis(n->base, n->len, H2O_STRLIT("traceparent"))) {
        in->traceparent = ++in->num_traceparent == 1 ? h->value : h2o_iovec_init(NULL, 0);
    } else if (h2o_memis(n->base, n->len, H2O_STRLIT("tracestate"))) {
        in->tracestate = in->tracestate.len == 0 ? h->value
                                                 : h2o_concat(in->pool, in->tracestate, h2o_iovec_init(H2O_STRLIT(",")), h->value);
    } else {
        return 0;
    }
    return 1;
}

int cph_sanitize_headers(h2o_headers_t *headers, h2o_iovec_t prefix, cph_trace_in_t *in)
{
    size_t total = 0, kept = 0;

    if (headers->size > CPH_SANITIZE_MAX_HEADERS)
        return 431;
    for (size_t i = 0; i != headers->size; ++i) {
        const h2o_header_t *h = &headers->entries[i];
        if (h->value.len > CPH_SANITIZE_MAX_VALUE || (total += h->name->len + h->value.len) > CPH_SANITIZE_MAX_TOTAL)
            return 431;
        /* h2o's tokens are the well-known names: none has '_', none is ours */
        if (h->name->len == 0)
            return CPH_SANITIZE_MALFORMED;
        if (!h2o_iovec_is_token(h->name)) {
            if (memchr(h->name->base, '_', h->name->len) != NULL)
                return 400;
            if (h->name->len >= 10 && h->name->len <= 12 && take_trace_header(h, in))
                continue;
        }
        if (cph_proxy_has_prefix(h->name->base, h->name->len, prefix))
            continue;
        if (kept != i)
            headers->entries[kept] = *h;
        ++kept;
    }
    headers->size = kept;
    return 0;
}

static int check_path(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    size_t path_len = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len, outlen;
    char *out = h2o_mem_alloc_pool(&req->pool, 3 * path_len + 1);

    if (cph_path_canonicalize(req->input.path.base, path_len, out, &outlen) != 0) {
        cph_respond_error_r(r, 400, "bad_path", "The request path is not acceptable");
        return -1;
    }
    r->path = h2o_iovec_init(out, outlen);
    r->query = h2o_iovec_init(req->input.path.base + path_len, req->input.path.len - path_len);
    /* the query goes to the upstream as is: no byte that could end the request line (HTTP/2 :path is not checked
     * as strictly as an HTTP/1 request line) */
    for (size_t i = 0; i != r->query.len; ++i) {
        unsigned char c = (unsigned char)r->query.base[i];
        if (c <= 0x20 || c == 0x7f) {
            cph_respond_error_r(r, 400, "bad_request", "The query string is not acceptable");
            return -1;
        }
    }
    return 0;
}

/* The request id (trusted from the client, or ours) and the trace context to send upstream, from what in holds. */
static void set_correlation(cph_req_t *r, const cph_trace_in_t *in)
{
    h2o_req_t *req = r->req;
    char trace_id[CPH_TRACE_ID_HEX], flags[2], *parent;
    int trust = r->snap->edge != NULL && r->snap->edge->trust_request_id, ours = 0;

    if (trust && cph_trace_request_id_valid(in->request_id.base, in->request_id.len)) {
        r->request_id = in->request_id;
    } else {
        ours = 1;
        char *id = h2o_mem_alloc_pool(&req->pool, CPH_REQUEST_ID_LEN);
        cph_sanitize_next_request_id(id);
        r->request_id = h2o_iovec_init(id, CPH_REQUEST_ID_LEN);
    }
    cph_pipeline_add_response_header(r, H2O_STRLIT("x-request-id"), r->request_id.base, r->request_id.len);
    parent = h2o_mem_alloc_pool(&req->pool, CPH_TRACEPARENT_LEN);
    if (in->traceparent.len != 0 && cph_trace_parse(in->traceparent.base, in->traceparent.len, trace_id, flags) == 0) {
        cph_trace_write_parent(parent, trace_id, flags);
        if (cph_trace_state_valid(in->tracestate.base, in->tracestate.len))
            r->tracestate = in->tracestate;
    } else {
        /* a new trace, named by the request id when it is ours (32 hex: the logs and the client's X-Request-Id then
         * name the trace too); a tracestate without a valid parent means nothing */
        cph_trace_write_parent(parent, ours ? r->request_id.base : NULL, NULL);
    }
    r->traceparent = h2o_iovec_init(parent, CPH_TRACEPARENT_LEN);
}

int cph_sanitize_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    cph_trace_in_t in = {.pool = &req->pool};
    int status = cph_sanitize_headers(&req->headers, cph_proxy_header_prefix(r->snap), &in);

    set_correlation(r, &in);
    switch (status) {
    case 0:
        break;
    case 431:
        cph_respond_error_r(r, 431, "headers_too_large", "The request headers are too large");
        return CPH_DONE;
    case CPH_SANITIZE_MALFORMED:
        /* an obs-fold line, or a control byte h2o passed: the framing of what follows on the connection is not to be
         * trusted either, so the connection is closed after the answer */
        req->http1_is_persistent = 0;
        cph_respond_error_r(r, 400, "bad_header", "A request header is malformed");
        return CPH_DONE;
    default:
        cph_respond_error_r(r, 400, "bad_header", "A request header name contains '_'");
        return CPH_DONE;
    }
    return check_path(r) == 0 ? CPH_NEXT : CPH_DONE;
}
