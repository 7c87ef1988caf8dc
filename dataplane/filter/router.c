/*
 * filter/router: matches the canonical path, the host (Host or :authority, lower-cased, port stripped) and the
 * method against the snapshot's matcher (compile/router.c), then computes what the upstream receives: the path after
 * strip_prefix (always starting with '/') followed by the raw query.
 */
#include <string.h>
#include "dataplane/compile/edge.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/router"
#define MAX_HOST 256

int cph_router_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    char host[MAX_HOST];
    size_t host_len = cph_router_host_normalize(req->input.authority.base, req->input.authority.len, host, sizeof(host));
    cph_route_match_t m;

    switch (cph_router_match(r->snap->router, host, host_len, r->path.base, r->path.len,
                             cph_method_from(req->input.method.base, req->input.method.len), &m)) {
    case 200:
        break;
    case 405:
        r->route = m.route; /* counted against the route */
        if (m.route != NULL && cph_edge_is_preflight(m.route->edge, req))
            break; /* a CORS preflight the route's policy answers (filter/edge.c), whatever methods it proxies */
        cph_respond_405_r(r, m.allow);
        return CPH_DONE;
    default:
        cph_respond_error_r(r, 404, "no_route", "No route matches the request");
        return CPH_DONE;
    }
    r->route = m.route;
    h2o_iovec_t up = cph_router_upstream_path(&m, r->path.base, r->path.len);
    if (r->query.len == 0) {
        r->upstream_path = up;
    } else {
        r->upstream_path = h2o_concat(&req->pool, up, r->query);
    }
    return CPH_NEXT;
}
