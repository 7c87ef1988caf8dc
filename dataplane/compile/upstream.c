/*
 * compile/upstream: routes' policies.timeouts and policies.retries (proto/PROTOCOL.md section 5) -> the route's
 * timeout and retry fields, which filter/proxy.c reads on every proxied request.
 *
 * Defaults come from the route's service: first_byte_ms and idle_ms default to the service's timeout_ms (the one
 * timeout a service had before routes could say more), connect_ms to 5 s, total_ms to none; retries to one retry
 * with a 20 % budget, on connect failures and resets only (no listed status). The built-in auth API route gets the
 * same defaults from its own service (10 s). The body was validated before (proto/schema_policy.c); every value is
 * still range-checked here, so a validator gap becomes a NACK with a JSON pointer, never a proxy that waits forever.
 */
#include <stdio.h>
#include <string.h>
#include "dataplane/compile/compile.h"

#define MODULE "dp/compile/upstream"
#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_SERVICE_MS 60000 /* a route without a service never proxies; any sane value */
#define MAX_TIMEOUT_MS 3600000ULL
#define MAX_TOTAL_MS 86400000ULL
#define MAX_RETRIES 5
#define MAX_RETRY_STATUSES 8

static void defaults(cph_route_t *route)
{
    uint64_t svc_timeout =
        route->service != NULL && route->service->timeout_ms != 0 ? route->service->timeout_ms : DEFAULT_SERVICE_MS;

    route->connect_timeout_ms = DEFAULT_CONNECT_MS;
    route->first_byte_timeout_ms = svc_timeout;
    route->idle_timeout_ms = svc_timeout;
    route->total_timeout_ms = 0;
    route->retry_max = 1;
    route->retry_statuses = NULL;
    route->num_retry_statuses = 0;
    route->retry_budget_percent = 20;
    route->retry_min_concurrent = 3;
}

static int compile_timeouts(cph_route_t *route, const json_t *obj, size_t i, cph_error_t *err)
{
    char at[96];

    snprintf(at, sizeof(at), "/routes/%zu/policies/timeouts", i);
    if (!json_is_object(obj))
        return cph_error_set(err, "invalid", at, "must be an object");
    if (cph_compile_u64(obj, "connect_ms", 1, MAX_TIMEOUT_MS, route->connect_timeout_ms, &route->connect_timeout_ms, at, err) !=
            0 ||
        cph_compile_u64(obj, "first_byte_ms", 1, MAX_TIMEOUT_MS, route->first_byte_timeout_ms, &route->first_byte_timeout_ms, at,
                        err) != 0 ||
        cph_compile_u64(obj, "idle_ms", 1, MAX_TIMEOUT_MS, route->idle_timeout_ms, &route->idle_timeout_ms, at, err) != 0 ||
        cph_compile_u64(obj, "total_ms", 0, MAX_TOTAL_MS, route->total_timeout_ms, &route->total_timeout_ms, at, err) != 0)
        return -1;
    return 0;
}

static int compile_statuses(cph_snapshot_t *snap, cph_route_t *route, const json_t *arr, const char *at, cph_error_t *err)
{
    char path[128];
    size_t n = json_array_size(arr);

    snprintf(path, sizeof(path), "%s/statuses", at);
    if (!json_is_array(arr) || n > MAX_RETRY_STATUSES)
        return cph_error_set(err, "invalid", path, "must be an array of at most %d statuses", MAX_RETRY_STATUSES);
    route->retry_statuses = n != 0 ? cph_arena_alloc(&snap->arena, sizeof(*route->retry_statuses) * n) : NULL;
    for (size_t k = 0; k != n; ++k) {
        const json_t *v = json_array_get(arr, k);
        json_int_t s = json_is_integer(v) ? json_integer_value(v) : 0;
        snprintf(path, sizeof(path), "%s/statuses/%zu", at, k);
        if (s < 500 || s > 599)
            return cph_error_set(err, "invalid", path, "must be an integer in 500..599");
        for (size_t j = 0; j != k; ++j)
            if (route->retry_statuses[j] == (uint16_t)s)
                return cph_error_set(err, "invalid", path, "duplicate status");
        route->retry_statuses[k] = (uint16_t)s;
    }
    route->num_retry_statuses = n;
    return 0;
}

static int compile_retries(cph_snapshot_t *snap, cph_route_t *route, const json_t *obj, size_t i, cph_error_t *err)
{
    const json_t *statuses = json_object_get(obj, "statuses");
    uint64_t max = route->retry_max, budget = route->retry_budget_percent, min = route->retry_min_concurrent;
    char at[96];

    snprintf(at, sizeof(at), "/routes/%zu/policies/retries", i);
    if (!json_is_object(obj))
        return cph_error_set(err, "invalid", at, "must be an object");
    if (cph_compile_u64(obj, "max", 0, MAX_RETRIES, max, &max, at, err) != 0 ||
        cph_compile_u64(obj, "budget_percent", 0, 100, budget, &budget, at, err) != 0 ||
        cph_compile_u64(obj, "min_concurrent", 0, 1000, min, &min, at, err) != 0)
        return -1;
    if (statuses != NULL && !json_is_null(statuses) && compile_statuses(snap, route, statuses, at, err) != 0)
        return -1;
    route->retry_max = (uint32_t)max;
    route->retry_budget_percent = (uint32_t)budget;
    route->retry_min_concurrent = (uint32_t)min;
    return 0;
}

int cph_upstream_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes");

    for (size_t i = 0; i != snap->num_routes; ++i) {
        const json_t *policies = json_object_get(json_array_get(routes, i), "policies");
        const json_t *timeouts = json_object_get(policies, "timeouts"), *retries = json_object_get(policies, "retries");
        cph_route_t *route = &snap->routes[i];
        defaults(route);
        if (timeouts != NULL && !json_is_null(timeouts) && compile_timeouts(route, timeouts, i, err) != 0)
            return -1;
        if (retries != NULL && !json_is_null(retries) && compile_retries(snap, route, retries, i, err) != 0)
            return -1;
    }
    if (snap->auth_api_route != NULL)
        defaults((cph_route_t *)snap->auth_api_route);
    return 0;
}
