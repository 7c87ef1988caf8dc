/*
 * compile/proxy: body["services"] -> snap->services, each target's URL split into what the proxy filter needs on the
 * hot path (host to connect to, port, the Host header value) plus its stable ids: the pool id of its authority
 * (core/upstream.c, survives swaps, so keep-alive connections do too) and the service's metric id.
 *
 * The body was validated (proto/schema.c): URLs are "http://HOST:PORT" or ".../" with HOST an IPv4 address, a
 * bracketed IPv6 address or a DNS name. The parsing here is still defensive and refuses what it cannot read, so a
 * validator bug becomes a NACK, not a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataplane/compile/compile.h"
#include "dataplane/core/stats.h"
#include "dataplane/core/target.h"
#include "dataplane/core/upstream.h"

#define MODULE "dp/compile/proxy"
#define DEFAULT_TIMEOUT_MS 60000

/* Splits "http://HOST:PORT[/]" into target; returns 0 or -1. */
static int parse_url(cph_arena_t *a, const char *url, size_t len, cph_target_t *t)
{
    const char *p = url + 7, *end = url + len, *host, *host_end, *colon;
    char hostbuf[256], auth[300];
    unsigned long port = 0;
    size_t hlen;

    if (len < 8 || memcmp(url, "http://", 7) != 0 || len > 255)
        return -1;
    if (end[-1] == '/')
        --end;
    if (*p == '[') {
        host = p + 1;
        if ((host_end = memchr(host, ']', (size_t)(end - host))) == NULL)
            return -1;
        colon = host_end + 1;
    } else {
        host = p;
        if ((colon = memchr(host, ':', (size_t)(end - host))) == NULL)
            return -1;
        host_end = colon;
    }
    if (colon >= end || *colon != ':' || colon + 1 == end || end - colon > 6)
        return -1;
    for (const char *q = colon + 1; q != end; ++q) {
        if (*q < '0' || *q > '9')
            return -1;
        port = port * 10 + (unsigned long)(*q - '0');
    }
    if ((hlen = (size_t)(host_end - host)) == 0 || hlen >= sizeof(hostbuf) || port == 0 || port > 65535)
        return -1;
    for (size_t i = 0; i != hlen; ++i)
        hostbuf[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] + ('a' - 'A')) : host[i];
    hostbuf[hlen] = '\0';
    t->url = cph_arena_strndup(a, url, len);
    t->host = h2o_iovec_init(cph_arena_strndup(a, hostbuf, hlen), hlen);
    t->port = (uint16_t)port;
    int alen = snprintf(auth, sizeof(auth), *p == '[' ? "[%s]:%lu" : "%s:%lu", hostbuf, port);
    t->authority = h2o_iovec_init(cph_arena_strndup(a, auth, (size_t)alen), (size_t)alen);
    t->pool_id = cph_upstream_pool_id(auth);
    return 0;
}

static int compile_service(cph_snapshot_t *snap, cph_service_t *svc, const json_t *obj, size_t i, cph_error_t *err)
{
    const json_t *targets = json_object_get(obj, "targets"), *timeout = json_object_get(obj, "timeout_ms");
    const json_t *system = json_object_get(obj, "system");
    char at[96];

    svc->name = cph_arena_strdup(&snap->arena, json_string_value(json_object_get(obj, "name")));
    svc->index = (uint32_t)i;
    svc->metric_id = cph_stats_service_id(svc->name);
    svc->timeout_ms =
        json_is_integer(timeout) && json_integer_value(timeout) > 0 ? (uint64_t)json_integer_value(timeout) : DEFAULT_TIMEOUT_MS;
    svc->system = json_is_string(system) ? cph_arena_strdup(&snap->arena, json_string_value(system)) : NULL;
    svc->num_targets = json_is_array(targets) ? json_array_size(targets) : 0;
    svc->targets = cph_arena_alloc(&snap->arena, sizeof(*svc->targets) * (svc->num_targets + 1));
    for (size_t t = 0; t != svc->num_targets; ++t) {
        const json_t *target = json_array_get(targets, t), *url = json_object_get(target, "url");
        const json_t *weight = json_object_get(target, "weight");
        if (!json_is_string(url) ||
            parse_url(&snap->arena, json_string_value(url), json_string_length(url), &svc->targets[t]) != 0) {
            snprintf(at, sizeof(at), "/services/%zu/targets/%zu/url", i, t);
            return cph_error_set(err, "invalid", at, "the target URL is not http://HOST:PORT");
        }
        svc->targets[t].weight =
            json_is_integer(weight) && json_integer_value(weight) > 0 ? (uint32_t)json_integer_value(weight) : 1;
        svc->targets[t].index = (uint32_t)t;
        svc->targets[t].state = cph_target_state_get(svc->name, svc->targets[t].authority.base);
    }
    svc->state = cph_service_state_get(svc->name);
    svc->max_requests = 1024;
    svc->max_pending = 1024;
    return 0;
}

int cph_proxy_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *services = json_object_get(body, "services");
    size_t n = json_is_array(services) ? json_array_size(services) : 0;

    snap->services = cph_arena_alloc(&snap->arena, sizeof(*snap->services) * (n + 1));
    snap->num_services = n;
    for (size_t i = 0; i != n; ++i)
        if (compile_service(snap, &snap->services[i], json_array_get(services, i), i, err) != 0)
            return -1;
    return 0;
}
