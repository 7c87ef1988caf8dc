/*
 * compile/websocket: routes' policies.websocket -> route->websocket (core/websocket.h), gateway.websocket.drain_grace_ms
 * -> snap->ws_drain_grace_ms (proto/PROTOCOL.md section 5).
 *
 * The body was validated before (proto/schema_upstream.c); compile still refuses a value out of its range, so a
 * validator gap becomes a NACK rather than a tunnel nobody asked for. A route without the member (or with null) gets
 * NULL: its Upgrade requests are ordinary HTTP requests. Origins are stored lower-case, as the filter compares them.
 */
#include <stdio.h>
#include "proto/log.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/websocket.h"

#define MODULE "dp/compile/websocket"

#define IDLE_MS_MAX 86400000ull
#define LIFETIME_MS_MAX 604800000ull
#define PER_CLIENT_MAX 100000ull
#define FRAME_MIN 125ull
#define FRAME_MAX 67108864ull
#define DRAIN_GRACE_MAX 3600000ull
#define ORIGINS_MAX 64

static int compile_origins(cph_snapshot_t *snap, cph_ws_policy_t *p, const json_t *list, const char *policy_at, cph_error_t *err)
{
    size_t i;
    const json_t *o;
    char at[160];

    snprintf(at, sizeof(at), "%.140s/origins", policy_at);
    if (list == NULL || json_is_null(list))
        return 0;
    if (!json_is_array(list) || json_array_size(list) > ORIGINS_MAX)
        return cph_error_set(err, "invalid", at, "origins must be an array of at most %d strings", ORIGINS_MAX);
    p->origins = cph_arena_alloc(&snap->arena, sizeof(*p->origins) * (json_array_size(list) + 1));
    json_array_foreach(list, i, o)
    {
        if (!json_is_string(o) || json_string_length(o) == 0)
            return cph_error_set(err, "invalid", at, "origins must be non-empty strings");
        char *s = cph_arena_strndup(&snap->arena, json_string_value(o), json_string_length(o));
        h2o_strtolower(s, json_string_length(o));
        p->origins[p->num_origins++] = h2o_iovec_init(s, json_string_length(o));
    }
    return 0;
}

static int compile_policy(cph_snapshot_t *snap, cph_route_t *route, const json_t *obj, size_t i, cph_error_t *err)
{
    cph_ws_policy_t *p;
    const json_t *close = json_object_get(obj, "close_on_token_expiry");
    uint64_t per_client = 0;
    char at[128];

    snprintf(at, sizeof(at), "/routes/%zu/policies/websocket", i);
    if (!json_is_object(obj))
        return cph_error_set(err, "invalid", at, "must be an object");
    p = cph_arena_alloc(&snap->arena, sizeof(*p));
    memset(p, 0, sizeof(*p));
    if (cph_compile_u64(obj, "idle_timeout_ms", 1, IDLE_MS_MAX, CPH_WS_DEFAULT_IDLE_MS, &p->idle_timeout_ms, at, err) != 0 ||
        cph_compile_u64(obj, "max_lifetime_ms", 0, LIFETIME_MS_MAX, 0, &p->max_lifetime_ms, at, err) != 0 ||
        cph_compile_u64(obj, "max_per_client", 0, PER_CLIENT_MAX, 0, &per_client, at, err) != 0 ||
        cph_compile_u64(obj, "max_frame_bytes", FRAME_MIN, FRAME_MAX, CPH_WS_DEFAULT_MAX_FRAME, &p->max_frame_bytes, at, err) !=
            0 ||
        compile_origins(snap, p, json_object_get(obj, "origins"), at, err) != 0)
        return -1;
    if (close != NULL && !json_is_boolean(close)) {
        strcat(at, "/close_on_token_expiry");
        return cph_error_set(err, "invalid", at, "close_on_token_expiry must be a boolean");
    }
    p->max_per_client = (uint32_t)per_client;
    p->close_on_token_expiry = json_is_true(close);
    route->websocket = p;
    return 0;
}

int cph_websocket_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes"), *gw = json_object_get(json_object_get(body, "gateway"), "websocket");

    snap->ws_drain_grace_ms = CPH_WS_DEFAULT_DRAIN_GRACE_MS;
    if (gw != NULL && !json_is_null(gw)) {
        if (!json_is_object(gw))
            return cph_error_set(err, "invalid", "/gateway/websocket", "must be an object");
        if (cph_compile_u64(gw, "drain_grace_ms", 0, DRAIN_GRACE_MAX, CPH_WS_DEFAULT_DRAIN_GRACE_MS, &snap->ws_drain_grace_ms,
                            "/gateway/websocket", err) != 0)
            return -1;
    }
    for (size_t i = 0; i != snap->num_routes && i < json_array_size(routes); ++i) {
        const json_t *obj = json_object_get(json_object_get(json_array_get(routes, i), "policies"), "websocket");
        snap->routes[i].websocket = NULL;
        if (obj != NULL && !json_is_null(obj) && compile_policy(snap, &snap->routes[i], obj, i, err) != 0)
            return -1;
    }
    return 0;
}
