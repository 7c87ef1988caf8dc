/*
 * compile/aggregate: routes of kind "aggregate" (PROTOCOL.md section 5, "aggregate route") -> route->kind and
 * route->aggregate (core/aggregate.h): the parsed pattern and path templates, the deadline, and per backend a copy of
 * the route as a proxy route of the backend's service.
 *
 * That copy is what lets a backend call go through the proxy's own machinery (balancer, breaker, admission limits,
 * retries, head builder with identity headers and the service's credentials), which all read "the route's
 * service" and its timeouts. Its first_byte and idle timeouts are the route's policies.timeouts when set there, else
 * the backend service's timeout_ms (as a proxy route of that service would get them); connect timeout and retries
 * are the route's. Runs last of the compile steps, after compile/upstream.c filled the route's timeouts.
 */
#include <stdio.h>
#include <string.h>
#include "dataplane/compile/compile.h"
#include "dataplane/core/aggregate.h"

#define MODULE "dp/compile/aggregate"
#define DEFAULT_DEADLINE_MS 3000
#define DEFAULT_SERVICE_MS 60000

static const cph_service_t *service_named(const cph_snapshot_t *snap, const char *name)
{
    for (size_t i = 0; i != snap->num_services; ++i)
        if (strcmp(snap->services[i].name, name) == 0)
            return &snap->services[i];
    return NULL;
}

/* The backend's proxy route: the aggregate route with the backend's service and its service timeouts. */
static void backend_route(cph_aggregate_backend_t *b, const cph_route_t *route, const cph_service_t *svc, const json_t *timeouts)
{
    uint64_t svc_ms = svc->timeout_ms != 0 ? svc->timeout_ms : DEFAULT_SERVICE_MS;

    b->route = *route;
    b->route.service = svc;
    b->route.kind = CPH_ROUTE_PROXY;
    b->route.aggregate = NULL;
    b->route.pdf = NULL;
    b->route.cache = NULL;
    b->route.websocket = NULL;
    b->route.total_timeout_ms = 0; /* the aggregate deadline bounds the call */
    if (json_object_get(timeouts, "first_byte_ms") == NULL)
        b->route.first_byte_timeout_ms = svc_ms;
    if (json_object_get(timeouts, "idle_ms") == NULL)
        b->route.idle_timeout_ms = svc_ms;
}

static int compile_backend(cph_snapshot_t *snap, const cph_route_t *route, cph_aggregate_route_t *agg, const json_t *obj,
                           const json_t *timeouts, const char *at, cph_error_t *err)
{
    cph_aggregate_backend_t *b = &agg->backends[agg->num_backends];
    const char *name = json_string_value(json_object_get(obj, "name")), *svc = json_string_value(json_object_get(obj, "service"));
    const char *method = json_string_value(json_object_get(obj, "method")), *path = json_string_value(json_object_get(obj, "path"));
    const json_t *key = json_object_get(obj, "key"), *required = json_object_get(obj, "required");
    const cph_service_t *service = svc != NULL ? service_named(snap, svc) : NULL;
    char p[256];

    if (name == NULL || path == NULL)
        return cph_error_set(err, "invalid", at, "a backend has a name and a path");
    if (service == NULL) {
        snprintf(p, sizeof(p), "%s/service", at);
        return cph_error_set(err, "unknown_service", p, "the backend names a service that is not defined");
    }
    b->name = cph_arena_strdup(&snap->arena, name);
    b->key = json_is_string(key) ? cph_arena_strdup(&snap->arena, json_string_value(key)) : NULL;
    b->required = required == NULL || json_is_true(required);
    b->post = method != NULL && strcmp(method, "POST") == 0;
    if (cph_aggregate_template_parse(&snap->arena, cph_arena_strdup(&snap->arena, path), &agg->pattern, &b->path) != 0) {
        snprintf(p, sizeof(p), "%s/path", at);
        return cph_error_set(err, "invalid", p, "the path template cannot be read");
    }
    backend_route(b, route, service, timeouts);
    agg->num_backends++;
    return 0;
}

static int compile_route(cph_snapshot_t *snap, cph_route_t *route, const json_t *obj, size_t i, cph_error_t *err)
{
    const json_t *cfg = json_object_get(obj, "aggregate"), *backends = json_object_get(cfg, "backends");
    const json_t *timeouts = json_object_get(json_object_get(obj, "policies"), "timeouts");
    const char *pattern = json_string_value(json_object_get(cfg, "pattern"));
    const char *on_deadline = json_string_value(json_object_get(cfg, "on_deadline"));
    cph_aggregate_route_t *agg = cph_arena_alloc(&snap->arena, sizeof(*agg));
    size_t n = json_array_size(backends);
    char at[128], bat[160];

    snprintf(at, sizeof(at), "/routes/%zu/aggregate", i);
    if (!json_is_object(cfg) || n == 0 || n > CPH_AGGREGATE_MAX_BACKENDS)
        return cph_error_set(err, "invalid", at, "an aggregate route has 1 to %d backends", CPH_AGGREGATE_MAX_BACKENDS);
    if (cph_compile_u64(cfg, "deadline_ms", 1, 60000, DEFAULT_DEADLINE_MS, &agg->deadline_ms, at, err) != 0)
        return -1;
    agg->on_deadline_error = on_deadline != NULL && strcmp(on_deadline, "error") == 0;
    if (pattern == NULL || cph_aggregate_pattern_parse(&snap->arena, cph_arena_strdup(&snap->arena, pattern), &agg->pattern) != 0)
        return cph_error_set(err, "invalid", strcat(at, "/pattern"), "the pattern cannot be read"); /* at has room */
    agg->backends = cph_arena_alloc(&snap->arena, sizeof(*agg->backends) * n);
    for (size_t k = 0; k != n; ++k) {
        snprintf(bat, sizeof(bat), "%s/backends/%zu", at, k);
        if (compile_backend(snap, route, agg, json_array_get(backends, k), timeouts, bat, err) != 0)
            return -1;
    }
    route->kind = CPH_ROUTE_AGGREGATE;
    route->aggregate = agg;
    return 0;
}

int cph_aggregate_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes");

    for (size_t i = 0; i != snap->num_routes && i != json_array_size(routes); ++i) {
        const json_t *obj = json_array_get(routes, i), *kind = json_object_get(obj, "kind");
        if (json_is_string(kind) && strcmp(json_string_value(kind), "aggregate") == 0 &&
            compile_route(snap, &snap->routes[i], obj, i, err) != 0)
            return -1;
    }
    return 0;
}
