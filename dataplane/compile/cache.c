/*
 * compile/cache: routes' policies.cache -> route->cache, gateway.cache.max_bytes -> snap->cache_max_bytes,
 * gateway.cache.backend -> snap->cache_redis (proto/PROTOCOL.md section 5).
 *
 * The body was validated before (proto/schema_policy.c); compile still refuses a value out of its range, so a validator
 * gap becomes a NACK rather than a cache that stores what nobody asked for. A route without the member gets NULL, and
 * the filter then costs one pointer test. The store itself (core/cache.c) is not touched here: the control thread
 * applies the budget after the swap, and entries of routes that lost their policy are never looked up again.
 */
#include <stdio.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/cache.h"
#include "dataplane/compile/compile.h"

#define MODULE "dp/compile/cache"

static int compile_policy(cph_snapshot_t *snap, cph_route_t *route, const json_t *obj, size_t i, cph_error_t *err)
{
    cph_cache_policy_t *p;
    const json_t *share = json_object_get(obj, "share_authenticated");
    char at[96];

    snprintf(at, sizeof(at), "/routes/%zu/policies/cache", i);
    if (!json_is_object(obj))
        return cph_error_set(err, "invalid", at, "must be an object");
    p = cph_arena_alloc(&snap->arena, sizeof(*p));
    if (cph_compile_u64(obj, "ttl_s", 0, CPH_CACHE_MAX_TTL_S, 0, &p->ttl_s, at, err) != 0 ||
        cph_compile_u64(obj, "max_ttl_s", 1, CPH_CACHE_MAX_TTL_S, CPH_CACHE_DEFAULT_MAX_TTL_S, &p->max_ttl_s, at, err) != 0 ||
        cph_compile_u64(obj, "max_body_bytes", 1, CPH_CACHE_MAX_BODY_LIMIT, CPH_CACHE_DEFAULT_MAX_BODY, &p->max_body_bytes, at,
                        err) != 0)
        return -1;
    if (share != NULL && !json_is_boolean(share))
        return cph_error_set(err, "invalid", at, "share_authenticated must be a boolean");
    p->share_authenticated = json_is_true(share);
    route->cache = p;
    return 0;
}

/* gateway.cache.backend: "memory" (default) or "redis", which needs gateway.redis. */
static int read_backend(cph_snapshot_t *snap, const json_t *gateway, const json_t *cache, cph_error_t *err)
{
    const json_t *backend = json_object_get(cache, "backend"), *redis = json_object_get(gateway, "redis");

    snap->cache_redis = 0;
    if (backend == NULL || json_is_null(backend))
        return 0;
    if (json_is_string(backend) && strcmp(json_string_value(backend), "memory") == 0)
        return 0;
    if (!json_is_string(backend) || strcmp(json_string_value(backend), "redis") != 0)
        return cph_error_set(err, "invalid", "/gateway/cache/backend", "must be \"memory\" or \"redis\"");
    if (redis == NULL || json_is_null(redis))
        return cph_error_set(err, "invalid", "/gateway/cache/backend", "\"redis\" needs gateway.redis");
    snap->cache_redis = 1;
    return 0;
}

int cph_cache_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes"), *gateway = json_object_get(body, "gateway");
    const json_t *gw = json_object_get(gateway, "cache");

    snap->cache_max_bytes = CPH_CACHE_DEFAULT_MAX_BYTES;
    snap->cache_redis = 0;
    if (gw != NULL) {
        if (!json_is_object(gw))
            return cph_error_set(err, "invalid", "/gateway/cache", "must be an object");
        if (cph_compile_u64(gw, "max_bytes", 0, CPH_CACHE_MAX_BYTES_LIMIT, CPH_CACHE_DEFAULT_MAX_BYTES, &snap->cache_max_bytes,
                            "/gateway/cache", err) != 0 ||
            read_backend(snap, gateway, gw, err) != 0)
            return -1;
    }
    for (size_t i = 0; i != snap->num_routes && i < json_array_size(routes); ++i) {
        const json_t *obj = json_object_get(json_object_get(json_array_get(routes, i), "policies"), "cache");
        snap->routes[i].cache = NULL;
        if (obj != NULL && !json_is_null(obj) && compile_policy(snap, &snap->routes[i], obj, i, err) != 0)
            return -1;
    }
    return 0;
}
