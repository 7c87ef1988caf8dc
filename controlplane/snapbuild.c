/*
 * snapbuild: turns the services and routes tables into the snapshot body the data planes apply.
 *
 * The body is a pure function of the rows: the arrays are ordered by name (SQLite's BINARY collation is byte order,
 * which is what PROTOCOL.md §2 asks for), ids and timestamps are left out, and every optional field is written with
 * its value so that a default never depends on which side fills it in. The stores already hold normalised objects
 * (defaults filled, only schema fields), so this is a projection of their API representation.
 *
 * "keys" carries the public JWKs of the active and retiring signing keys (the JWKS of signing.c), sorted by kid so
 * the hash does not depend on which key is newer: a rotation changes the body and so reaches every data plane like
 * any other write. The member is left out when there is no key (a store before its first key), never written empty.
 *
 * A service carries its "system" (a code or null) and "policies" (as stored, {} when none: the data planes fill in
 * the defaults), a route its "default_access" and "policies" (as stored, {} when none); the access sections ("auth",
 * "groups", "endpoints", "api_keys", "revoked") are built by snapbuild_access.c. A service's "consul" member is the
 * control plane's business (where its targets come from) and is not in the body; its "credentials", when it has
 * some, are resolved from the stored Vault secret by snapbuild_credentials.c. A service without them is written
 * exactly as before they existed.
 *
 * "gateway" (the gateway-wide traffic settings: client IP, global IP lists and limits, redis, the login limit, the
 * cache budget and backend, the websocket drain grace) comes from the control plane's flags (settings.h), fixed for
 * the process, and is always written with every member (redis null when none), so the body stays a pure function of
 * the rows and the flags - except the two members added last, cache.backend and websocket, written only when they
 * differ from their defaults ("memory", 30000 ms), so that a default control plane's body is the same as before them.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "proto/log.h"
#include "controlplane/settings.h"
#include "controlplane/signing.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"

#define MODULE "cp/snapbuild"

static const char *const READ_ONLY[] = {"id", "created_at", "updated_at"};

/* Drops the API-only members from every object of arr (arr is ours). */
static void strip(json_t *arr)
{
    size_t i;
    json_t *item;

    json_array_foreach(arr, i, item)
    {
        for (size_t k = 0; k < sizeof(READ_ONLY) / sizeof(READ_ONLY[0]); ++k)
            json_object_del(item, READ_ONLY[k]);
    }
}

/*
 * A proxy route's "kind" is left out of the body (the schema's default): routes written before kinds existed keep the
 * body, and so the hash, they had.
 */
static void drop_proxy_kind(json_t *routes)
{
    size_t i;
    json_t *route;

    json_array_foreach(routes, i, route)
    {
        const char *kind = json_string_value(json_object_get(route, "kind"));
        if (kind != NULL && strcmp(kind, "proxy") == 0)
            json_object_del(route, "kind");
    }
}

static int by_kid(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "kid")),
                  json_string_value(json_object_get(*(json_t *const *)b, "kid")));
}

/* The published public JWKs sorted by kid (a new array), or NULL with err. */
static json_t *public_keys(cph_db_t *db, cph_error_t *err)
{
    json_t *jwks = cph_signing_jwks(db, time(NULL), err), *keys, *jwk, **sorted;
    size_t i, n;

    if (jwks == NULL)
        return NULL;
    n = json_array_size(json_object_get(jwks, "keys"));
    if ((sorted = calloc(n + 1, sizeof(*sorted))) == NULL || (keys = json_array()) == NULL)
        cph_fatal(MODULE, "out of memory");
    json_array_foreach(json_object_get(jwks, "keys"), i, jwk) sorted[i] = jwk;
    qsort(sorted, n, sizeof(*sorted), by_kid);
    for (i = 0; i != n; ++i)
        json_array_append(keys, sorted[i]);
    free(sorted);
    json_decref(jwks);
    return keys;
}

/* One of the IP lists as a JSON array of its CIDRs, in flag order. */
static json_t *cidr_list(const char (*list)[CPH_SETTINGS_CIDR_MAX], size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr != NULL && i != n; ++i)
        if (json_array_append_new(arr, json_string(list[i])) != 0)
            cph_fatal(MODULE, "out of memory");
    return arr;
}

json_t *cph_snapbuild_gateway(const cph_gateway_settings_t *g)
{
    json_t *redis = json_null(), *out, *cache;

    if (g->redis_host[0] != '\0')
        redis = json_pack("{s:s, s:i, s:i, s:i}", "host", g->redis_host, "port", g->redis_port, "db", g->redis_db, "timeout_ms",
                          g->redis_timeout_ms);
    out = json_pack("{s:i, s:o, s:o, s:{s:I, s:i, s:i, s:i}, s:o, s:{s:I, s:i, s:I}}", "trusted_proxy_hops", g->trusted_proxy_hops,
                    "ip_allow", cidr_list(g->ip_allow, g->num_ip_allow), "ip_deny", cidr_list(g->ip_deny, g->num_ip_deny), "limits",
                    "max_body_bytes", (json_int_t)g->max_body_bytes, "max_url_bytes", g->max_url_bytes, "max_headers",
                    g->max_headers, "max_header_bytes", g->max_header_bytes, "redis", redis, "login_rate_limit", "rate",
                    (json_int_t)g->login_rate, "period_s", g->login_period_s, "burst", (json_int_t)g->login_burst);
    if (out == NULL || (cache = json_pack("{s:I}", "max_bytes", (json_int_t)g->cache_max_bytes)) == NULL ||
        json_object_set_new(out, "cache", cache) != 0 ||
        json_object_set_new(out, "request_id", json_pack("{s:b}", "trust_incoming", g->trust_request_id)) != 0 ||
        json_object_set_new(out, "connections", json_pack("{s:I}", "max_per_ip", (json_int_t)g->max_connections_per_ip)) != 0 ||
        (g->cache_redis && json_object_set_new(cache, "backend", json_string("redis")) != 0) ||
        (g->ws_drain_grace_ms != CPH_WS_DRAIN_GRACE_MS_DEFAULT &&
         json_object_set_new(out, "websocket", json_pack("{s:i}", "drain_grace_ms", g->ws_drain_grace_ms)) != 0))
        cph_fatal(MODULE, "cannot build the gateway section");
    return out;
}

json_t *cph_snapbuild_body(cph_db_t *db, cph_error_t *err)
{
    json_t *services = NULL, *routes = NULL, *keys = NULL, *body = NULL;

    if ((services = cph_store_service_list(db, err)) == NULL || (routes = cph_store_route_list(db, err)) == NULL ||
        (keys = public_keys(db, err)) == NULL)
        goto Exit;
    strip(services);
    strip(routes);
    drop_proxy_kind(routes);
    if (cph_snapbuild_credentials(db, services, err) != 0)
        goto Exit;
    if ((body = json_pack("{s:O, s:O}", "services", services, "routes", routes)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (json_array_size(keys) != 0)
        json_object_set(body, "keys", keys);
    json_object_set_new(body, "gateway", cph_snapbuild_gateway(cph_settings_gateway()));
    if (cph_snapbuild_access(db, body, err) != 0) {
        json_decref(body);
        body = NULL;
    }
Exit:
    json_decref(services);
    json_decref(routes);
    json_decref(keys);
    return body;
}
