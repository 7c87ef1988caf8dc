/*
 * compile/proxy: body["services"] -> snap->services, each target's URL split into what the proxy filter needs on the
 * hot path (host to connect to, port, the Host header value) plus its stable ids: the pool id of its authority
 * (core/upstream.c, survives swaps, so keep-alive connections do too) and the service's metric id. Each service's
 * `policies` (balancing policy and hash key, the Maglev table for consistent hashing, outlier detection, limits,
 * active health check) are compiled here too, with the contract's defaults for whatever is absent, and so are its
 * `credentials`, the upstream headers resolved by the control plane (compile/credentials.c).
 *
 * The body was validated (proto/schema.c): URLs are "http://HOST:PORT" or ".../" with HOST an IPv4 address, a
 * bracketed IPv6 address or a DNS name. The parsing here is still defensive and refuses what it cannot read, so a
 * validator bug becomes a NACK, not a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/balance.h"
#include "dataplane/core/credentials.h"
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

/* ---------------------------------------------------------------- policies */

/* Maglev table sizes: the smallest listed prime >= 100 x targets, else the largest (the schema's 256 targets get
 * 32749). About 100 slots per target keeps shares within ~1% of the weights and key moves on a change near the
 * ideal, for 4 bytes a slot (1 KB for a 2-target service, 128 KB at most). */
static const size_t MAGLEV_PRIMES[] = {251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521};
#define NUM_MAGLEV_PRIMES (sizeof(MAGLEV_PRIMES) / sizeof(MAGLEV_PRIMES[0]))

typedef struct st_pol_ctx_t {
    cph_arena_t *arena;
    size_t index;        /* the service's position, for JSON pointers */
    const char *section; /* "lb", "outlier", ... */
    cph_error_t *err;
} pol_ctx_t;

static int pol_error(const pol_ctx_t *c, const char *key, const char *fmt, const char *detail)
{
    char at[160];

    snprintf(at, sizeof(at), "/services/%zu/policies%s%s%s%s", c->index, c->section != NULL ? "/" : "",
             c->section != NULL ? c->section : "", key != NULL ? "/" : "", key != NULL ? key : "");
    return cph_error_set(c->err, "invalid", at, fmt, detail);
}

/* An optional integer member in [min, max]; absent or null keeps *out, its default. */
static int get_uint(const pol_ctx_t *c, const json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    char range[64];

    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t)json_integer_value(v) >= min &&
        (uint64_t)json_integer_value(v) <= max) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)min, (unsigned long long)max);
    return pol_error(c, key, "must be an integer in %s", range);
}

/* policies[key]: NULL when absent or null (defaults), the object, or an error for anything else. */
static int get_section(pol_ctx_t *c, const json_t *pol, const char *key, const json_t **out)
{
    *out = json_object_get(pol, key);
    c->section = NULL;
    if (*out != NULL && json_is_null(*out))
        *out = NULL;
    if (*out != NULL && !json_is_object(*out))
        return pol_error(c, key, "must be an %s", "object");
    c->section = key;
    return 0;
}

/* A lower-case header field name (an RFC 9110 token), as the rate-limit keys take them. */
static int header_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 64)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return 0;
    return 1;
}

static int compile_hash_on(const pol_ctx_t *c, cph_service_t *svc, const json_t *v)
{
    const char *s = json_string_value(v);

    if (svc->lb != CPH_LB_CONSISTENT_HASH) {
        if (v != NULL && !json_is_null(v))
            return pol_error(c, "hash_on", "must be null unless the policy is %s", "consistent_hash");
        return 0;
    }
    if (s != NULL && strcmp(s, "ip") == 0) {
        svc->hash_on = CPH_HASH_ON_IP;
    } else if (s != NULL && strcmp(s, "principal") == 0) {
        svc->hash_on = CPH_HASH_ON_PRINCIPAL;
    } else if (s != NULL && strncmp(s, "header:", 7) == 0 && header_name_ok(s + 7)) {
        svc->hash_on = CPH_HASH_ON_HEADER;
        svc->hash_header = h2o_iovec_init(cph_arena_strdup(c->arena, s + 7), strlen(s + 7));
    } else {
        return pol_error(c, "hash_on", "must be %s", "ip, principal or header:<lower-case header name>");
    }
    return 0;
}

static int compile_lb(pol_ctx_t *c, cph_service_t *svc, const json_t *pol)
{
    static const char *const names[] = {"round_robin", "least_conn", "random", "consistent_hash"};
    const json_t *lb, *policy;
    size_t k;

    if (get_section(c, pol, "lb", &lb) != 0)
        return -1;
    policy = json_object_get(lb, "policy");
    svc->lb = CPH_LB_ROUND_ROBIN;
    if (policy != NULL && !json_is_null(policy)) {
        for (k = 0; k != sizeof(names) / sizeof(names[0]); ++k)
            if (json_is_string(policy) && strcmp(json_string_value(policy), names[k]) == 0)
                break;
        if (k == sizeof(names) / sizeof(names[0]))
            return pol_error(c, "policy", "must be %s", "round_robin, least_conn, random or consistent_hash");
        svc->lb = (cph_lb_policy_t)k;
    }
    return compile_hash_on(c, svc, json_object_get(lb, "hash_on"));
}

static int compile_outlier(pol_ctx_t *c, cph_service_t *svc, const json_t *pol)
{
    uint64_t failures = 5, base = 30000, max = 300000, percent = 50;
    const json_t *o;

    if (get_section(c, pol, "outlier", &o) != 0 || get_uint(c, o, "consecutive_failures", 0, 1000, &failures) != 0 ||
        get_uint(c, o, "base_ejection_ms", 1, 3600000, &base) != 0 || get_uint(c, o, "max_ejection_ms", 1, 86400000, &max) != 0 ||
        get_uint(c, o, "max_ejection_percent", 0, 100, &percent) != 0)
        return -1;
    if (max < base)
        return pol_error(c, "max_ejection_ms", "must be at least %s", "base_ejection_ms");
    svc->outlier_consecutive_failures = (uint32_t)failures;
    svc->outlier_base_ejection_ms = base;
    svc->outlier_max_ejection_ms = max;
    svc->outlier_max_ejection_percent = (uint32_t)percent;
    return 0;
}

static int compile_limits(pol_ctx_t *c, cph_service_t *svc, const json_t *pol)
{
    uint64_t max_requests = 1024, max_pending = 1024;
    const json_t *l;

    if (get_section(c, pol, "limits", &l) != 0 || get_uint(c, l, "max_requests", 1, 1000000, &max_requests) != 0 ||
        get_uint(c, l, "max_pending", 1, 1000000, &max_pending) != 0)
        return -1;
    svc->max_requests = (uint32_t)max_requests;
    svc->max_pending = (uint32_t)max_pending;
    return 0;
}

static int compile_statuses(const pol_ctx_t *c, cph_health_check_t *hc, const json_t *v)
{
    static const uint16_t fallback = 200;

    if (v == NULL || json_is_null(v)) {
        hc->expected_statuses = cph_arena_alloc(c->arena, sizeof(uint16_t));
        hc->expected_statuses[0] = fallback;
        hc->num_expected_statuses = 1;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 32)
        return pol_error(c, "expected_statuses", "must be an array of %s", "1 to 32 unique statuses 100..599");
    hc->num_expected_statuses = json_array_size(v);
    hc->expected_statuses = cph_arena_alloc(c->arena, sizeof(uint16_t) * hc->num_expected_statuses);
    for (size_t k = 0; k != hc->num_expected_statuses; ++k) {
        json_int_t s = json_integer_value(json_array_get(v, k));
        if (!json_is_integer(json_array_get(v, k)) || s < 100 || s > 599)
            return pol_error(c, "expected_statuses", "must be an array of %s", "1 to 32 unique statuses 100..599");
        for (size_t j = 0; j != k; ++j)
            if (hc->expected_statuses[j] == (uint16_t)s)
                return pol_error(c, "expected_statuses", "must be an array of %s", "1 to 32 unique statuses 100..599");
        hc->expected_statuses[k] = (uint16_t)s;
    }
    return 0;
}

/* A check path: starts with '/', at most 1024 bytes, no whitespace or control character. */
static int check_path_ok(const json_t *path)
{
    const char *s = json_string_value(path);

    if (s == NULL || s[0] != '/' || json_string_length(path) > 1024 || strlen(s) != json_string_length(path))
        return 0;
    for (; *s != '\0'; ++s)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int compile_health(pol_ctx_t *c, cph_service_t *svc, const json_t *pol)
{
    uint64_t interval = 5000, timeout = 1000, healthy = 2, unhealthy = 3;
    const json_t *h, *path;
    cph_health_check_t *hc;

    svc->health_check = NULL;
    if (get_section(c, pol, "health_check", &h) != 0)
        return -1;
    if (h == NULL)
        return 0; /* no active checks */
    if ((path = json_object_get(h, "path")) != NULL && !check_path_ok(path))
        return pol_error(c, "path", "must be %s", "an absolute path without whitespace or control characters");
    if (get_uint(c, h, "interval_ms", 100, 3600000, &interval) != 0 || get_uint(c, h, "timeout_ms", 1, 60000, &timeout) != 0 ||
        get_uint(c, h, "healthy_threshold", 1, 100, &healthy) != 0 ||
        get_uint(c, h, "unhealthy_threshold", 1, 100, &unhealthy) != 0)
        return -1;
    if (timeout >= interval)
        return pol_error(c, "timeout_ms", "must be less than %s", "interval_ms");
    hc = cph_arena_alloc(c->arena, sizeof(*hc));
    hc->path = cph_arena_strdup(c->arena, path != NULL ? json_string_value(path) : "/");
    hc->interval_ms = interval;
    hc->timeout_ms = timeout;
    hc->healthy_threshold = (uint32_t)healthy;
    hc->unhealthy_threshold = (uint32_t)unhealthy;
    if (compile_statuses(c, hc, json_object_get(h, "expected_statuses")) != 0)
        return -1;
    svc->health_check = hc;
    return 0;
}

/* ---------------------------------------------------------------- Maglev */

typedef struct st_maglev_entry_t {
    uint64_t offset, skip, next, threshold, weight;
} maglev_entry_t;

static size_t maglev_size_for(size_t n)
{
    for (size_t k = 0; k != NUM_MAGLEV_PRIMES; ++k)
        if (MAGLEV_PRIMES[k] >= 100 * n)
            return MAGLEV_PRIMES[k];
    return MAGLEV_PRIMES[NUM_MAGLEV_PRIMES - 1];
}

/* Next free slot in target e's permutation (offset + j * skip) mod m, the Maglev paper's. */
static size_t maglev_next_slot(maglev_entry_t *e, const uint32_t *table, size_t m)
{
    size_t slot;

    do
        slot = (size_t)((e->offset + e->next++ * e->skip) % m);
    while (table[slot] != UINT32_MAX);
    return slot;
}

/*
 * The Maglev lookup table (Eisenbud et al., NSDI 2016), weighted as Envoy does: each round a target takes its next
 * preferred free slot only when round x weight has reached its threshold, which then grows by the largest weight,
 * so slot counts follow the weights. A target's permutation derives from its authority alone: the same
 * configuration gives the same table on every data plane.
 */
static void build_maglev(cph_arena_t *a, cph_service_t *svc)
{
    size_t n = svc->num_targets, m = maglev_size_for(n), filled = 0;
    uint32_t *table = cph_arena_alloc(a, sizeof(*table) * m);
    maglev_entry_t *e = calloc(n, sizeof(*e));
    uint64_t wmax = 1;

    if (e == NULL)
        cph_fatal(MODULE, "out of memory");
    memset(table, 0xff, sizeof(*table) * m);
    for (size_t i = 0; i != n; ++i) {
        uint64_t h1 = cph_balance_hash(svc->targets[i].authority.base, svc->targets[i].authority.len);
        uint64_t h2 = cph_balance_hash(&h1, sizeof(h1));
        e[i].offset = h1 % m;
        e[i].skip = h2 % (m - 1) + 1;
        e[i].weight = svc->targets[i].weight;
        wmax = e[i].weight > wmax ? e[i].weight : wmax;
    }
    for (uint64_t round = 1; filled < m; ++round) {
        for (size_t i = 0; i != n && filled < m; ++i) {
            if (round * e[i].weight < e[i].threshold)
                continue;
            e[i].threshold += wmax;
            table[maglev_next_slot(&e[i], table, m)] = (uint32_t)i;
            ++filled;
        }
    }
    free(e);
    svc->maglev = table;
    svc->maglev_size = m;
}

/* policies -> lb, hash, Maglev table, outlier, limits, health_check; absent sections keep the contract's defaults. */
static int compile_policies(cph_arena_t *a, cph_service_t *svc, const json_t *pol, size_t i, cph_error_t *err)
{
    pol_ctx_t c = {a, i, NULL, err};

    if (pol != NULL && !json_is_null(pol) && !json_is_object(pol))
        return pol_error(&c, NULL, "must be an %s", "object");
    if (compile_lb(&c, svc, pol) != 0 || compile_outlier(&c, svc, pol) != 0 || compile_limits(&c, svc, pol) != 0 ||
        compile_health(&c, svc, pol) != 0)
        return -1;
    if (svc->lb == CPH_LB_CONSISTENT_HASH && svc->num_targets != 0)
        build_maglev(a, svc);
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
        /* the schema allows 1..1000; anything else is read as 1 rather than truncated */
        svc->targets[t].weight = json_is_integer(weight) && json_integer_value(weight) > 0 && json_integer_value(weight) <= 1000000
                                     ? (uint32_t)json_integer_value(weight)
                                     : 1;
        svc->targets[t].index = (uint32_t)t;
        svc->targets[t].state = cph_target_state_get(svc->name, svc->targets[t].authority.base);
    }
    svc->state = cph_service_state_get(svc->name);
    svc->weights_signature = cph_balance_weights_signature(svc);
    return compile_policies(&snap->arena, svc, json_object_get(obj, "policies"), i, err);
}

int cph_proxy_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *services = json_object_get(body, "services");
    size_t n = json_is_array(services) ? json_array_size(services) : 0;

    snap->services = cph_arena_alloc(&snap->arena, sizeof(*snap->services) * (n + 1));
    snap->num_services = n;
    for (size_t i = 0; i != n; ++i)
        if (compile_service(snap, &snap->services[i], json_array_get(services, i), i, err) != 0 ||
            cph_credentials_compile(snap, &snap->services[i], body, i, err) != 0)
            return -1;
    return 0;
}
