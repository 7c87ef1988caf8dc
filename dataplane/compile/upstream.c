/*
 * compile/upstream: routes' policies.timeouts and policies.retries. PLACEHOLDER (issue 6 round): defaults only.
 */
#include "dataplane/compile/compile.h"

static void defaults(cph_route_t *route)
{
    uint64_t svc_timeout = route->service != NULL ? route->service->timeout_ms : 60000;

    route->connect_timeout_ms = 5000;
    route->first_byte_timeout_ms = svc_timeout;
    route->idle_timeout_ms = svc_timeout;
    route->total_timeout_ms = 0;
    route->retry_max = 1;
    route->retry_budget_percent = 20;
    route->retry_min_concurrent = 3;
}

int cph_upstream_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    (void)body;
    (void)err;
    for (size_t i = 0; i != snap->num_routes; ++i)
        defaults(&snap->routes[i]);
    if (snap->auth_api_route != NULL)
        defaults((cph_route_t *)snap->auth_api_route);
    return 0;
}
