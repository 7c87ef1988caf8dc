/*
 * respond: the JSON error answers of the data plane (shared/DESIGN.md section 3 "Errors the DP sends itself").
 *
 * The body is built in req->pool from our own constants only, escaped anyway so that a future caller passing text
 * with a quote cannot produce broken JSON. Every such answer is uncacheable and closes nothing by itself: h2o keeps
 * the client connection alive when the request body was consumed.
 *
 * The _r variants take the pipeline's request: its id (filter/sanitize.c) goes into the body and, with the other
 * response headers of the stages (X-Request-Id among them), into the headers, so a client reporting an error hands
 * over the key to the gateway's and the upstream's logs.
 */
#include <string.h>
#include "dataplane/core/respond.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/pipeline.h"

#define MODULE "dp/core/respond"
#define SERVER_NAME "cephalo" /* h2o's server_name is empty: core/server.c */

static const char *reason_of(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* Appends s[0..len) as the contents of a JSON string (no quotes) to buf at *o; buf has room for 6 bytes per input byte. */
static void append_escaped(char *buf, size_t *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[(*o)++] = '\\';
            buf[(*o)++] = (char)c;
        } else if (c < 0x20) {
            memcpy(buf + *o, "\\u00", 4);
            buf[*o + 4] = hex[c >> 4];
            buf[*o + 5] = hex[c & 15];
            *o += 6;
        } else {
            buf[(*o)++] = (char)c;
        }
    }
}

#define APPEND_LIT(lit) (memcpy(body + o, (lit), sizeof(lit) - 1), o += sizeof(lit) - 1)

h2o_iovec_t cph_respond_error_body(h2o_mem_pool_t *pool, const char *code, const char *message, h2o_iovec_t request_id)
{
    size_t clen = strlen(code), mlen = strlen(message), o = 0;
    size_t cap = sizeof("{\"error\":\"\",\"message\":\"\",\"request_id\":\"\"}\n") + 6 * (clen + mlen + request_id.len);
    char *body = h2o_mem_alloc_pool(pool, cap);

    APPEND_LIT("{\"error\":\"");
    append_escaped(body, &o, code, clen);
    APPEND_LIT("\",\"message\":\"");
    append_escaped(body, &o, message, mlen);
    if (request_id.len != 0) {
        APPEND_LIT("\",\"request_id\":\"");
        append_escaped(body, &o, request_id.base, request_id.len);
    }
    APPEND_LIT("\"}\n");
    return h2o_iovec_init(body, o);
}

#undef APPEND_LIT

static void send_json(h2o_req_t *req, int status, const char *code, const char *message, h2o_iovec_t request_id)
{
    h2o_iovec_t body = cph_respond_error_body(&req->pool, code, message != NULL ? message : reason_of(status), request_id);

    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT(SERVER_NAME));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body.base, body.len);
}

void cph_respond_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    send_json(req, status, code, message, h2o_iovec_init(NULL, 0));
}

void cph_respond_error_r(cph_req_t *r, int status, const char *code, const char *message)
{
    cph_pipeline_response_headers(r);
    send_json(r->req, status, code, message, r->request_id);
}

void cph_respond_401(cph_req_t *r, const char *code, const char *message, const char *bearer_error)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t bearer = h2o_iovec_init(H2O_STRLIT("Bearer realm=\"cephalo\""));

    if (bearer_error != NULL)
        bearer = h2o_concat(&req->pool, bearer, h2o_iovec_init(H2O_STRLIT(", error=\"")),
                            h2o_iovec_init(bearer_error, strlen(bearer_error)), h2o_iovec_init(H2O_STRLIT("\"")));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, bearer.base, bearer.len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("ApiKey realm=\"cephalo\""));
    cph_pipeline_response_headers(r);
    send_json(req, 401, code, message, r->request_id);
}

static void add_allow(h2o_req_t *req, uint32_t allow)
{
    char buf[CPH_METHOD_LIST_MAX];
    size_t len = cph_method_list(allow, buf, sizeof(buf));

    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, buf, len).base, len);
}

void cph_respond_405(h2o_req_t *req, uint32_t allow)
{
    add_allow(req, allow);
    send_json(req, 405, "method_not_allowed", "The route does not allow this method", h2o_iovec_init(NULL, 0));
}

void cph_respond_405_r(cph_req_t *r, uint32_t allow)
{
    add_allow(r->req, allow);
    cph_pipeline_response_headers(r);
    send_json(r->req, 405, "method_not_allowed", "The route does not allow this method", r->request_id);
}
