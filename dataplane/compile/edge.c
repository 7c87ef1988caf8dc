/*
 * compile/edge: the body's gateway object and every route's policies (but rate_limits, compile/ratelimit.c) ->
 * snap->edge and route->edge (compile/edge.h), plus the CIDR arithmetic the filter shares.
 *
 * A CIDR list becomes, per address family, a sorted array of disjoint inclusive ranges: overlapping and adjacent
 * CIDRs are merged, so a lookup is one bisection whatever the list's size (1024 CIDRs: 10 steps). IPv4-mapped IPv6
 * CIDRs are stored as IPv4, as the client address is (core/clientip.c). CORS and security header values are rendered
 * once here. The body was validated before (proto/schema.c); compile still refuses what it cannot read, so a validator
 * gap becomes a NACK rather than a silently open list. Temporary arrays are malloc'd and freed here; what the workers
 * read lives in the snapshot arena.
 */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/compile.h"
#include "dataplane/compile/edge.h"

#define MODULE "dp/compile/edge"

static _Atomic uint16_t tls_port;

void cph_edge_set_tls_port(uint16_t port)
{
    atomic_store_explicit(&tls_port, port, memory_order_relaxed);
}

uint16_t cph_edge_tls_port(void)
{
    return atomic_load_explicit(&tls_port, memory_order_relaxed);
}

/* ---------------------------------------------------------------- CIDR arithmetic */

static cph_ip6_t ip6_from(const unsigned char *b)
{
    cph_ip6_t a = {0, 0};

    for (int i = 0; i != 8; ++i) {
        a.hi = (a.hi << 8) | b[i];
        a.lo = (a.lo << 8) | b[i + 8];
    }
    return a;
}

static int ip6_cmp(cph_ip6_t a, cph_ip6_t b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    return a.lo < b.lo ? -1 : a.lo > b.lo;
}

/* the host bits of a /prefix (0..128) */
static cph_ip6_t ip6_hostmask(unsigned prefix)
{
    cph_ip6_t m;

    m.hi = prefix >= 64 ? 0 : (prefix == 0 ? UINT64_MAX : UINT64_MAX >> prefix);
    m.lo = prefix >= 128 ? 0 : (prefix <= 64 ? UINT64_MAX : UINT64_MAX >> (prefix - 64));
    return m;
}

static uint32_t ip4_hostmask(unsigned prefix)
{
    return prefix == 0 ? UINT32_MAX : (prefix >= 32 ? 0 : UINT32_MAX >> prefix);
}

static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    unsigned v = 0;

    if (*s == '\0' || strlen(s) > 3 || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int set_v4_range(uint32_t addr, unsigned prefix, cph_ip4_range_t *v4)
{
    uint32_t host = ip4_hostmask(prefix);

    if ((addr & host) != 0)
        return -1; /* not canonical: host bits set */
    *v4 = (cph_ip4_range_t){addr, addr | host};
    return 0;
}

int cph_edge_parse_cidr(const char *s, cph_ip4_range_t *v4, cph_ip6_range_t *v6, int *is_v6)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    unsigned char b[16];
    unsigned prefix;

    if (alen == 0 || alen >= sizeof(buf))
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET, buf, b) == 1) {
        if (slash == NULL)
            prefix = 32;
        else if (parse_prefix(slash + 1, 32, &prefix) != 0)
            return -1;
        *is_v6 = 0;
        return set_v4_range((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3], prefix, v4);
    }
    if (inet_pton(AF_INET6, buf, b) != 1)
        return -1;
    if (slash == NULL)
        prefix = 128;
    else if (parse_prefix(slash + 1, 128, &prefix) != 0)
        return -1;
    if (prefix >= 96 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)b)) { /* ::ffff:a.b.c.d/96+n is a.b.c.d/n */
        *is_v6 = 0;
        return set_v4_range((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15], prefix - 96, v4);
    }
    cph_ip6_t a = ip6_from(b), m = ip6_hostmask(prefix);
    if ((a.hi & m.hi) != 0 || (a.lo & m.lo) != 0)
        return -1;
    *is_v6 = 1;
    *v6 = (cph_ip6_range_t){a, {a.hi | m.hi, a.lo | m.lo}};
    return 0;
}

static int contains_v4(const cph_cidr_set_t *set, uint32_t a)
{
    size_t lo = 0, hi = set->num_v4; /* first range with lo > a is at index hi after the loop */

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->v4[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo != 0 && a <= set->v4[lo - 1].hi;
}

static int contains_v6(const cph_cidr_set_t *set, cph_ip6_t a)
{
    size_t lo = 0, hi = set->num_v6;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ip6_cmp(set->v6[mid].lo, a) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo != 0 && ip6_cmp(a, set->v6[lo - 1].hi) <= 0;
}

int cph_edge_cidr_contains(const cph_cidr_set_t *set, const struct sockaddr_storage *addr)
{
    if (set == NULL)
        return 0;
    if (addr->ss_family == AF_INET) {
        const unsigned char *b = (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
        return contains_v4(set, (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    }
    if (addr->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        const unsigned char *b = a6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            return contains_v4(set, (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
        return contains_v6(set, ip6_from(b));
    }
    return 0;
}

int cph_edge_ip_refused(const cph_cidr_set_t *allow, const cph_cidr_set_t *deny, const struct sockaddr_storage *addr)
{
    if (deny != NULL && deny->num_cidrs != 0 && cph_edge_cidr_contains(deny, addr))
        return 1;
    return allow != NULL && allow->num_cidrs != 0 && !cph_edge_cidr_contains(allow, addr);
}

/* ---------------------------------------------------------------- compiling a list */

static int v4_cmp(const void *a, const void *b)
{
    const cph_ip4_range_t *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int v6_cmp(const void *a, const void *b)
{
    return ip6_cmp(((const cph_ip6_range_t *)a)->lo, ((const cph_ip6_range_t *)b)->lo);
}

/* Sorts and merges overlapping or adjacent ranges in place; returns the new count. */
static size_t merge_v4(cph_ip4_range_t *r, size_t n)
{
    size_t o = 0;

    qsort(r, n, sizeof(*r), v4_cmp);
    for (size_t i = 0; i != n; ++i) {
        if (o != 0 && (r[o - 1].hi == UINT32_MAX || r[i].lo <= r[o - 1].hi + 1)) {
            if (r[i].hi > r[o - 1].hi)
                r[o - 1].hi = r[i].hi;
        } else {
            r[o++] = r[i];
        }
    }
    return o;
}

static size_t merge_v6(cph_ip6_range_t *r, size_t n)
{
    size_t o = 0;

    qsort(r, n, sizeof(*r), v6_cmp);
    for (size_t i = 0; i != n; ++i) {
        if (o != 0 && ip6_cmp(r[i].lo, r[o - 1].hi) <= 0) { /* overlapping (adjacent v6 ranges stay apart: harmless) */
            if (ip6_cmp(r[i].hi, r[o - 1].hi) > 0)
                r[o - 1].hi = r[i].hi;
        } else {
            r[o++] = r[i];
        }
    }
    return o;
}

/* A JSON array of CIDR strings -> set (arena). at is the array's JSON pointer. */
static int compile_cidrs(cph_arena_t *a, const json_t *arr, cph_cidr_set_t *set, const char *at, cph_error_t *err)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    cph_ip4_range_t *v4 = malloc(sizeof(*v4) * (n + 1));
    cph_ip6_range_t *v6 = malloc(sizeof(*v6) * (n + 1));
    int ret = -1;

    if (v4 == NULL || v6 == NULL)
        cph_fatal(MODULE, "out of memory");
    memset(set, 0, sizeof(*set));
    for (size_t i = 0; i != n; ++i) {
        const char *s = json_string_value(json_array_get(arr, i));
        int is_v6;
        if (s == NULL || cph_edge_parse_cidr(s, &v4[set->num_v4], &v6[set->num_v6], &is_v6) != 0) {
            cph_error_set(err, "invalid", at, "item %zu is not a canonical CIDR (a.b.c.d/n or x::y/n, host bits zero)", i);
            goto Exit;
        }
        ++*(is_v6 ? &set->num_v6 : &set->num_v4);
    }
    set->num_cidrs = n;
    set->num_v4 = merge_v4(v4, set->num_v4);
    set->num_v6 = merge_v6(v6, set->num_v6);
    set->v4 = cph_arena_alloc(a, sizeof(*v4) * (set->num_v4 + 1));
    memcpy(set->v4, v4, sizeof(*v4) * set->num_v4);
    set->v6 = cph_arena_alloc(a, sizeof(*v6) * (set->num_v6 + 1));
    memcpy(set->v6, v6, sizeof(*v6) * set->num_v6);
    ret = 0;
Exit:
    free(v4);
    free(v6);
    return ret;
}

/* ---------------------------------------------------------------- limits, headers, CORS */

/* Overrides base with the members of obj (absent or not an integer: kept). */
static void compile_limits(const json_t *obj, cph_edge_limits_t *l)
{
    static const struct {
        const char *name;
        size_t off;
    } members[] = {{"max_body_bytes", offsetof(cph_edge_limits_t, max_body_bytes)},
                   {"max_url_bytes", offsetof(cph_edge_limits_t, max_url_bytes)},
                   {"max_headers", offsetof(cph_edge_limits_t, max_headers)},
                   {"max_header_bytes", offsetof(cph_edge_limits_t, max_header_bytes)}};

    for (size_t i = 0; i != sizeof(members) / sizeof(members[0]); ++i) {
        const json_t *v = json_object_get(obj, members[i].name);
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            *(uint64_t *)((char *)l + members[i].off) = (uint64_t)json_integer_value(v);
    }
}

/* Joins a JSON array of strings with ", " into the arena; dflt when arr is absent. */
static h2o_iovec_t join(cph_arena_t *a, const json_t *arr, const char *dflt)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0, len = 0, o = 0;
    char *out;

    if (!json_is_array(arr))
        return dflt != NULL ? h2o_iovec_init(dflt, strlen(dflt)) : h2o_iovec_init(NULL, 0);
    for (size_t i = 0; i != n; ++i)
        len += json_string_length(json_array_get(arr, i)) + 2;
    out = cph_arena_alloc(a, len + 1);
    for (size_t i = 0; i != n; ++i) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_string(v))
            continue;
        if (o != 0)
            out[o++] = ',', out[o++] = ' ';
        memcpy(out + o, json_string_value(v), json_string_length(v));
        o += json_string_length(v);
    }
    out[o] = '\0';
    return h2o_iovec_init(o != 0 ? out : NULL, o);
}

static h2o_iovec_t arena_printf_u64(cph_arena_t *a, const char *prefix, uint64_t v, const char *suffix)
{
    char buf[96];
    int n = snprintf(buf, sizeof(buf), "%s%llu%s", prefix, (unsigned long long)v, suffix);

    return h2o_iovec_init(cph_arena_strndup(a, buf, (size_t)n), (size_t)n);
}

static h2o_iovec_t arena_string(cph_arena_t *a, const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(cph_arena_strndup(a, json_string_value(v), json_string_length(v)), json_string_length(v));
}

static int compile_cors(cph_arena_t *a, const json_t *obj, const cph_cors_t **out, const char *at, cph_error_t *err)
{
    const json_t *origins = json_object_get(obj, "origins"), *max_age = json_object_get(obj, "max_age_s");
    cph_cors_t *c = cph_arena_alloc(a, sizeof(*c));
    size_t n = json_is_array(origins) ? json_array_size(origins) : 0;

    c->credentials = json_is_true(json_object_get(obj, "credentials"));
    c->origins = cph_arena_alloc(a, sizeof(*c->origins) * (n + 1));
    for (size_t i = 0; i != n; ++i) {
        const json_t *v = json_array_get(origins, i);
        if (!json_is_string(v) || json_string_length(v) == 0)
            return cph_error_set(err, "invalid", at, "cors.origins holds a non-string");
        if (strcmp(json_string_value(v), "*") == 0)
            c->any_origin = 1;
        else
            c->origins[c->num_origins++] = arena_string(a, v);
    }
    if (n == 0 || (c->any_origin && (n != 1 || c->credentials)))
        return cph_error_set(err, "invalid", at, "cors.origins must be exact origins or the single \"*\" (without credentials)");
    c->methods = join(a, json_object_get(obj, "methods"), "GET, HEAD, POST");
    c->headers = join(a, json_object_get(obj, "headers"), NULL);
    c->expose = join(a, json_object_get(obj, "expose_headers"), NULL);
    c->max_age = arena_printf_u64(a, "", json_is_integer(max_age) ? (uint64_t)json_integer_value(max_age) : 600, "");
    *out = c;
    return 0;
}

static void compile_security(cph_arena_t *a, const json_t *obj, cph_edge_route_t *e)
{
    const json_t *hsts = json_object_get(obj, "hsts_max_age_s");

    if (json_is_integer(hsts) && json_integer_value(hsts) > 0)
        e->hsts = arena_printf_u64(a, "max-age=", (uint64_t)json_integer_value(hsts),
                                   json_is_true(json_object_get(obj, "hsts_subdomains")) ? "; includeSubDomains" : "");
    e->nosniff = json_is_true(json_object_get(obj, "content_type_options"));
    e->frame_options = arena_string(a, json_object_get(obj, "frame_options"));
    e->referrer_policy = arena_string(a, json_object_get(obj, "referrer_policy"));
}

/* ---------------------------------------------------------------- gateway and routes */

static int has_edge_policies(const json_t *p)
{
    static const char *const members[] = {"cors", "security_headers", "limits"};

    if (!json_is_object(p))
        return 0;
    for (size_t i = 0; i != sizeof(members) / sizeof(members[0]); ++i)
        if (json_is_object(json_object_get(p, members[i])))
            return 1;
    return json_array_size(json_object_get(p, "ip_allow")) != 0 || json_array_size(json_object_get(p, "ip_deny")) != 0 ||
           json_is_true(json_object_get(p, "https_redirect"));
}

static int compile_route_edge(cph_snapshot_t *snap, cph_route_t *route, const json_t *p, size_t i, cph_error_t *err)
{
    cph_arena_t *a = &snap->arena;
    cph_edge_route_t *e;
    char at[96];

    if (!has_edge_policies(p))
        return 0;
    e = cph_arena_alloc(a, sizeof(*e));
    e->limits = snap->edge->limits;
    compile_limits(json_object_get(p, "limits"), &e->limits);
    e->https_redirect = json_is_true(json_object_get(p, "https_redirect"));
    snprintf(at, sizeof(at), "/routes/%zu/policies/ip_allow", i);
    if (compile_cidrs(a, json_object_get(p, "ip_allow"), &e->allow, at, err) != 0)
        return -1;
    snprintf(at, sizeof(at), "/routes/%zu/policies/ip_deny", i);
    if (compile_cidrs(a, json_object_get(p, "ip_deny"), &e->deny, at, err) != 0)
        return -1;
    snprintf(at, sizeof(at), "/routes/%zu/policies/cors", i);
    if (json_is_object(json_object_get(p, "cors")) && compile_cors(a, json_object_get(p, "cors"), &e->cors, at, err) != 0)
        return -1;
    compile_security(a, json_object_get(p, "security_headers"), e);
    if (e->limits.max_body_bytes > snap->edge->max_body_any)
        snap->edge->max_body_any = e->limits.max_body_bytes;
    route->edge = e;
    return 0;
}

static int compile_gateway(cph_snapshot_t *snap, const json_t *gw, cph_error_t *err)
{
    cph_edge_t *g = cph_arena_alloc(&snap->arena, sizeof(*g));
    const json_t *hops = json_object_get(gw, "trusted_proxy_hops");

    g->limits = (cph_edge_limits_t){CPH_EDGE_DEFAULT_MAX_BODY, CPH_EDGE_DEFAULT_MAX_URL, CPH_EDGE_DEFAULT_MAX_HEADERS,
                                    CPH_EDGE_DEFAULT_MAX_HEADER_BYTES};
    compile_limits(json_object_get(gw, "limits"), &g->limits);
    g->max_body_any = g->limits.max_body_bytes;
    if (json_is_integer(hops)) {
        if (json_integer_value(hops) < 0 || json_integer_value(hops) > 8)
            return cph_error_set(err, "invalid", "/gateway/trusted_proxy_hops", "must be 0..8");
        g->trusted_proxy_hops = (unsigned)json_integer_value(hops);
    }
    g->trust_request_id = json_is_true(json_object_get(json_object_get(gw, "request_id"), "trust_incoming"));
    g->max_connections_per_ip = (uint32_t)json_integer_value(json_object_get(json_object_get(gw, "connections"), "max_per_ip"));
    if (compile_cidrs(&snap->arena, json_object_get(gw, "ip_allow"), &g->allow, "/gateway/ip_allow", err) != 0 ||
        compile_cidrs(&snap->arena, json_object_get(gw, "ip_deny"), &g->deny, "/gateway/ip_deny", err) != 0)
        return -1;
    snap->edge = g;
    return 0;
}

int cph_edge_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes");

    snap->edge = NULL;
    if (compile_gateway(snap, json_object_get(body, "gateway"), err) != 0)
        return -1;
    for (size_t i = 0; i != snap->num_routes && i < json_array_size(routes); ++i) {
        snap->routes[i].edge = NULL;
        if (compile_route_edge(snap, &snap->routes[i], json_object_get(json_array_get(routes, i), "policies"), i, err) != 0)
            return -1;
    }
    return 0;
}
