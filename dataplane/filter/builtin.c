/*
 * filter/builtin: the routes the data plane answers or routes itself, under the reserved prefix /auth (no configured
 * route may claim it: proto/schema.c). Runs after sanitize, so it decides on the canonical path, and before the router.
 *
 * - GET or HEAD /auth/.well-known/jwks.json answers the snapshot's JWKS document (compile/auth.c): the public keys a
 *   client or another service verifies our tokens with; another method there is 405.
 * - POST /auth/login, /auth/refresh and /auth/logout go, unchanged (path, query and body), to the control plane's
 *   auth API: the snapshot's built-in route (compile/builtin.c, body auth.api) becomes r->route and the pipeline jumps
 *   straight to the proxy stage, past router, authn and authz (these endpoints are how a client gets a credential; a
 *   logout's bearer token is checked by the control plane). POST /auth/login passes the login rate limit first
 *   (gateway.login_rate_limit per client IP: 429 rate_limited). No auth.api in the snapshot: 503 auth_unavailable.
 *   Another method there is 405 (Allow: POST).
 * - Any other /auth path is 404 not_found.
 */
#include <string.h>
#include "dataplane/compile/auth.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/builtin"
#define PREFIX "/auth"

static void serve_jwks(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = r->snap->auth != NULL ? r->snap->auth->jwks : h2o_iovec_init(H2O_STRLIT("{\"keys\":[]}"));

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("public, max-age=300"));
    req->res.content_length = body.len;
    cph_pipeline_response_headers(r);
    h2o_start_response(req, &generator);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL); /* the snapshot (held by r until the pool is cleared) owns the bytes */
}

static int is_auth_api_path(h2o_iovec_t path)
{
    return h2o_memis(path.base, path.len, H2O_STRLIT(PREFIX "/login")) ||
           h2o_memis(path.base, path.len, H2O_STRLIT(PREFIX "/refresh")) ||
           h2o_memis(path.base, path.len, H2O_STRLIT(PREFIX "/logout"));
}

static int forward_auth_api(cph_req_t *r, uint32_t method)
{
    if (method != CPH_METHOD_POST) {
        cph_respond_405_r(r, CPH_METHOD_POST);
        return CPH_DONE;
    }
    if (r->snap->auth_api_route == NULL) {
        cph_respond_error_r(r, 503, "auth_unavailable", "The gateway has no authentication API configured");
        return CPH_DONE;
    }
    r->route = r->snap->auth_api_route;
    r->upstream_path = r->query.len == 0 ? r->path : h2o_concat(&r->req->pool, r->path, r->query);
    /* the login limit (filter/ratelimit.c; local, so it decides synchronously) before anything is forwarded */
    if (h2o_memis(r->path.base, r->path.len, H2O_STRLIT(PREFIX "/login")) && cph_ratelimit_on_req(r) == CPH_DONE)
        return CPH_DONE;
    cph_pipeline_goto(r, cph_proxy_on_req);
    return CPH_NEXT;
}

int cph_builtin_on_req(cph_req_t *r)
{
    uint32_t method;

    if (r->path.len < sizeof(PREFIX) - 1 || memcmp(r->path.base, PREFIX, sizeof(PREFIX) - 1) != 0 ||
        (r->path.len != sizeof(PREFIX) - 1 && r->path.base[sizeof(PREFIX) - 1] != '/'))
        return CPH_NEXT;
    method = cph_method_from(r->req->input.method.base, r->req->input.method.len);
    if (is_auth_api_path(r->path))
        return forward_auth_api(r, method);
    if (!h2o_memis(r->path.base, r->path.len, H2O_STRLIT(CPH_AUTH_JWKS_PATH))) {
        cph_respond_error_r(r, 404, "not_found", "No such gateway resource");
        return CPH_DONE;
    }
    if (method != CPH_METHOD_GET && method != CPH_METHOD_HEAD) {
        cph_respond_405_r(r, CPH_METHOD_GET | CPH_METHOD_HEAD);
        return CPH_DONE;
    }
    serve_jwks(r);
    return CPH_DONE;
}
