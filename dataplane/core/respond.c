/*
 * respond: the JSON error answers of the data plane (shared/DESIGN.md section 3 "Errors the DP sends itself").
 *
 * The body is built in req->pool from our own constants only, escaped anyway so that a future caller passing text
 * with a quote cannot produce broken JSON. Every such answer is uncacheable and closes nothing by itself: h2o keeps
 * the client connection alive when the request body was consumed.
 */
#include <string.h>
#include "dataplane/core/respond.h"
#include "dataplane/compile/router.h"

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

/* Appends s as the contents of a JSON string (no quotes) to buf at *o; buf has room for 6 bytes per input byte. */
static void append_escaped(char *buf, size_t *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
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

static void send_json(h2o_req_t *req, int status, const char *code, const char *message)
{
    size_t cap = sizeof("{\"error\":\"\",\"message\":\"\"}\n") + 6 * (strlen(code) + strlen(message)), o = 0;
    char *body = h2o_mem_alloc_pool(&req->pool, cap);

    memcpy(body + o, "{\"error\":\"", 10), o += 10;
    append_escaped(body, &o, code);
    memcpy(body + o, "\",\"message\":\"", 13), o += 13;
    append_escaped(body, &o, message);
    memcpy(body + o, "\"}\n", 3), o += 3;

    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = o;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT(SERVER_NAME));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, o);
}

void cph_respond_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    send_json(req, status, code, message != NULL ? message : reason_of(status));
}

void cph_respond_405(h2o_req_t *req, uint32_t allow)
{
    char buf[CPH_METHOD_LIST_MAX];
    size_t len = cph_method_list(allow, buf, sizeof(buf));

    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, buf, len).base, len);
    send_json(req, 405, "method_not_allowed", "The route does not allow this method");
}
