/*
 * compile/builtin: body auth.api -> snap->auth_api_route, the built-in route filter/builtin.c sends POST /auth/login,
 * /auth/refresh and /auth/logout to (the control plane's auth API, docs/access.md section 6).
 *
 * It is an ordinary route and service of the snapshot's arena, outside snap->routes and snap->services (the router
 * never sees it): service "/auth" with the one target of the URL and a 10 s timeout, in no system; route "/auth" with
 * the path "/auth", public by default, counted under its own metric id. The target is compiled by cph_proxy_compile
 * itself, from a one-service body, into a scratch snapshot that borrows this snapshot's arena: one URL parser and one
 * place that hands out pool ids, so the auth API's connections are pooled like any upstream's.
 */
#include <string.h>
#include "dataplane/compile/compile.h"
#include "dataplane/core/stats.h"

#define MODULE "dp/compile/builtin"
#define AUTH_API_NAME "/auth"
#define AUTH_API_TIMEOUT_MS 10000

/* Compiles {"services":[{"name":"/auth","targets":[{"url":url}],"timeout_ms":...}]} into snap's arena. */
static cph_service_t *compile_service(cph_snapshot_t *snap, const json_t *url, cph_error_t *err)
{
    cph_snapshot_t scratch;
    json_t *body = json_pack("{s:[{s:s, s:[{s:O}], s:i, s:n}]}", "services", "name", AUTH_API_NAME, "targets", "url", url,
                             "timeout_ms", (json_int_t)AUTH_API_TIMEOUT_MS, "system");
    int ret;

    if (body == NULL)
        return cph_error_set(err, "invalid", "/auth/api", "cannot compile the auth API URL"), NULL;
    memset(&scratch, 0, sizeof(scratch));
    scratch.arena = snap->arena; /* borrowed: every allocation lands in snap's chunks */
    ret = cph_proxy_compile(&scratch, body, err);
    snap->arena = scratch.arena;
    json_decref(body);
    if (ret != 0 || scratch.num_services != 1 || scratch.services[0].num_targets != 1) {
        cph_error_set(err, "invalid", "/auth/api", "the auth API URL is not http://HOST:PORT");
        return NULL;
    }
    scratch.services[0].system = NULL;
    scratch.services[0].index = UINT32_MAX; /* not in snap->services */
    return &scratch.services[0];
}

int cph_builtin_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *url = json_object_get(json_object_get(body, "auth"), "api");
    cph_service_t *svc;
    cph_route_t *route;

    snap->auth_api_route = NULL;
    if (!json_is_string(url))
        return 0; /* absent or null: /auth/login and friends answer 503 auth_unavailable */
    if ((svc = compile_service(snap, url, err)) == NULL)
        return -1;
    route = cph_arena_alloc(&snap->arena, sizeof(*route));
    route->name = cph_arena_strdup(&snap->arena, AUTH_API_NAME);
    route->index = UINT32_MAX; /* not in snap->routes */
    route->metric_id = cph_stats_route_id(AUTH_API_NAME);
    route->service = svc;
    route->paths = cph_arena_alloc(&snap->arena, sizeof(*route->paths));
    route->paths[0] = h2o_iovec_init(route->name, strlen(route->name));
    route->num_paths = 1;
    route->methods = 0;
    route->strip_prefix = 0;
    route->default_access = CPH_ACCESS_PUBLIC;
    snap->auth_api_route = route;
    return 0;
}
