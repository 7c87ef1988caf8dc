/*
 * compile: JSON -> immutable C, one entry point per pipeline stage, all run on the control thread by
 * cph_snapshot_build() in this order. Each fills its part of the snapshot from the arena and returns 0, or -1 with
 * err filled (JSON-pointer path into the body). A failure leaves the old snapshot in force.
 */
#ifndef CPH_COMPILE_H
#define CPH_COMPILE_H

#include <jansson.h>
#include "proto/proto.h"
#include "dataplane/core/snapshot.h"

/**
 * Reads the optional integer member `name` of obj, which must be in lo..hi, into *out (dflt when absent or null).
 * Returns 0, or -1 with err "invalid" at "<at>/<name>". For the compile steps: the schema has checked the body already.
 */
int cph_compile_u64(const json_t *obj, const char *name, uint64_t lo, uint64_t hi, uint64_t dflt, uint64_t *out, const char *at,
                    cph_error_t *err);

/** services -> snap->services (targets, timeouts, stable pool and metric ids). Runs first. */
int cph_proxy_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** routes -> snap->routes and snap->router (longest-prefix matcher over hosts, paths and methods). */
int cph_router_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** keys -> snap->auth (compile/auth.h): the served JWKS document and the kid -> alg table; never NULL after it. */
int cph_auth_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** groups + endpoints -> snap->authz (compile/authz.h): the rules of every service, most specific first. */
int cph_authz_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** gateway + routes' policies (but rate_limits) -> snap->edge and every route->edge. */
int cph_edge_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** routes' policies.rate_limits, endpoints' rate_limits, gateway redis + login limit -> route->rate_limits, snap->ratelimit. */
int cph_ratelimit_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/**
 * routes' policies.cache -> route->cache (compile/cache.h; NULL without the member), gateway.cache.max_bytes ->
 * snap->cache_max_bytes (default 64 MiB). Runs after cph_router_compile.
 */
int cph_cache_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/**
 * routes' policies.timeouts and policies.retries -> the route's timeout and retry fields, defaults filled in from
 * the route's service (also for snap->auth_api_route). Runs after cph_builtin_compile.
 */
int cph_upstream_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** routes' policies.websocket -> route->websocket (core/websocket.h), gateway.websocket -> snap->ws_drain_grace_ms. */
int cph_websocket_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** auth.api -> snap->auth_api_route: a route + service (own arena copies) forwarding /auth/{login,refresh,logout}. */
int cph_builtin_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);

/** routes of kind "pdf" -> route->kind, route->pdf (compile/pdf.c). Runs after cph_router_compile. */
int cph_pdf_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);
/** routes of kind "aggregate" -> route->kind, route->aggregate (compile/aggregate.c). Runs after cph_router_compile. */
int cph_aggregate_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);

#endif
