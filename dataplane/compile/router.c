/*
 * compile/router: body["routes"] -> snap->routes and the matcher snap->router, plus the pure matching function the
 * router filter and the tests share.
 *
 * The matcher is an open-addressing hash table keyed by path prefix. Each slot holds every (route, prefix) pair with
 * that prefix, sorted once at compile time: routes with hosts first, then by name (PROTOCOL.md section 5 tie rules).
 * A request probes only the segment prefixes of its path, longest first ("/a/b/c", "/a/b/", "/a/b", "/a/", "/a",
 * "/"), skipping lengths no route uses, so matching 10k routes costs what matching 10 does. The body was validated
 * before (cph_snapshot_validate), so compile only trusts and copies; the temporary arrays are malloc'd and freed
 * here, everything the workers read lives in the snapshot arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/compile.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/stats.h"

#define MODULE "dp/compile/router"

typedef struct st_router_entry_t {
    const cph_route_t *route;
    uint32_t methods;
} router_entry_t;

typedef struct st_router_slot_t {
    h2o_iovec_t prefix; /* NULL base = empty slot */
    uint64_t hash;
    router_entry_t *entries;
    size_t num_entries;
} router_slot_t;

struct st_cph_router_t {
    router_slot_t *slots;
    size_t mask;          /* capacity - 1, capacity a power of two */
    size_t max_prefix;    /* longest prefix: longer probes are skipped */
    uint8_t *len_present; /* len_present[n] != 0 when some prefix has length n (0..max_prefix) */
};

/* ---------------------------------------------------------------- methods and hosts */

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"};
#define NUM_METHODS (sizeof(method_names) / sizeof(method_names[0]))

uint32_t cph_method_from(const char *name, size_t len)
{
    for (size_t i = 0; i != NUM_METHODS; ++i)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
            return 1u << i;
    return CPH_METHOD_OTHER;
}

size_t cph_method_list(uint32_t mask, char *buf, size_t cap)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i != NUM_METHODS; ++i) {
        size_t n = strlen(method_names[i]);
        if ((mask & (1u << i)) == 0 || o + n + 3 > cap)
            continue;
        if (o != 0)
            buf[o++] = ',', buf[o++] = ' ';
        memcpy(buf + o, method_names[i], n + 1);
        o += n;
    }
    return o;
}

size_t cph_router_host_normalize(const char *in, size_t len, char *out, size_t cap)
{
    size_t end = len;

    if (len != 0 && in[0] == '[') {
        const char *close = memchr(in, ']', len);
        end = close != NULL ? (size_t)(close - in) + 1 : 0;
    } else {
        const char *colon = memchr(in, ':', len);
        if (colon != NULL)
            end = (size_t)(colon - in);
        if (end != 0 && in[end - 1] == '.')
            --end;
    }
    if (end == 0 || end >= cap)
        return 0;
    for (size_t i = 0; i != end; ++i)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + ('a' - 'A')) : in[i];
    out[end] = '\0';
    return end;
}

/* "*.example.com" matches any sub-domain of example.com; anything else matches exactly. */
static int host_matches(const cph_route_t *route, const char *host, size_t host_len)
{
    if (route->num_hosts == 0)
        return 1;
    for (size_t i = 0; i != route->num_hosts; ++i) {
        h2o_iovec_t h = route->hosts[i];
        if (h.len > 1 && h.base[0] == '*') {
            size_t suffix = h.len - 1; /* ".example.com" */
            if (host_len > suffix && memcmp(host + host_len - suffix, h.base + 1, suffix) == 0)
                return 1;
        } else if (h.len == host_len && memcmp(h.base, host, host_len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- hash table */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i != len; ++i)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static const router_slot_t *lookup(const cph_router_t *r, const char *prefix, size_t len)
{
    uint64_t h = hash_bytes(prefix, len);

    for (size_t i = h & r->mask;; i = (i + 1) & r->mask) {
        const router_slot_t *s = &r->slots[i];
        if (s->prefix.base == NULL)
            return NULL;
        if (s->hash == h && s->prefix.len == len && memcmp(s->prefix.base, prefix, len) == 0)
            return s;
    }
}

/*
 * Picks the route of one slot: the first whose hosts match (entries are sorted) and that allows the method. Returns
 * 200, 405 (host matched, method not allowed: allow collects the methods), or 0 when no entry matches the host.
 */
static int match_slot(const router_slot_t *s, const char *host, size_t host_len, uint32_t method, cph_route_match_t *m)
{
    int host_seen = 0;

    m->allow = 0;
    m->route = NULL;
    for (size_t i = 0; i != s->num_entries; ++i) {
        const router_entry_t *e = &s->entries[i];
        if (!host_matches(e->route, host, host_len))
            continue;
        if (e->methods == CPH_METHOD_ANY || (e->methods & method) != 0) {
            m->route = e->route;
            m->prefix_len = s->prefix.len;
            return 200;
        }
        if (!host_seen)
            m->route = e->route; /* a 405 is counted against the best route */
        host_seen = 1;
        m->allow |= e->methods;
    }
    return host_seen ? 405 : 0;
}

static int probe(const cph_router_t *r, const char *host, size_t host_len, const char *path, size_t len, uint32_t method,
                 cph_route_match_t *m)
{
    const router_slot_t *s;

    if (len > r->max_prefix || !r->len_present[len] || (s = lookup(r, path, len)) == NULL)
        return 0;
    return match_slot(s, host, host_len, method, m);
}

int cph_router_match(const cph_router_t *r, const char *host, size_t host_len, const char *path, size_t path_len, uint32_t method,
                     cph_route_match_t *m)
{
    int status;

    memset(m, 0, sizeof(*m));
    if (r == NULL || path_len == 0 || path[0] != '/')
        return 404;
    /* the whole path (when it does not end in '/': that case is the first prefix below) */
    if (path[path_len - 1] != '/' && (status = probe(r, host, host_len, path, path_len, method, m)) != 0)
        return status;
    /* a '/' at k yields prefixes of length k + 1 and k: none is longer than the longest route path */
    for (size_t k = path_len < r->max_prefix + 1 ? path_len : r->max_prefix + 1; k-- > 0;) {
        if (path[k] != '/')
            continue;
        /* "/a/" matches anything below it, "/a" matches "/a" and "/a/..." */
        if ((status = probe(r, host, host_len, path, k + 1, method, m)) != 0)
            return status;
        if (k != 0 && (status = probe(r, host, host_len, path, k, method, m)) != 0)
            return status;
    }
    return 404;
}

h2o_iovec_t cph_router_upstream_path(const cph_route_match_t *m, const char *path, size_t path_len)
{
    size_t p = m->prefix_len;

    if (!m->route->strip_prefix)
        return h2o_iovec_init(path, path_len);
    if (p != 0 && path[p - 1] == '/')
        --p; /* a prefix ending in '/': keep that slash */
    if (p >= path_len)
        return h2o_iovec_init(H2O_STRLIT("/"));
    return h2o_iovec_init(path + p, path_len - p);
}

/* ---------------------------------------------------------------- compile */

typedef struct st_pair_t {
    h2o_iovec_t prefix;
    const cph_route_t *route;
} pair_t;

static int pair_cmp(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    size_t n = x->prefix.len < y->prefix.len ? x->prefix.len : y->prefix.len;
    int c = memcmp(x->prefix.base, y->prefix.base, n);

    if (c != 0 || x->prefix.len != y->prefix.len)
        return c != 0 ? c : (x->prefix.len < y->prefix.len ? -1 : 1);
    if ((x->route->num_hosts != 0) != (y->route->num_hosts != 0))
        return x->route->num_hosts != 0 ? -1 : 1; /* routes with hosts first */
    return strcmp(x->route->name, y->route->name);
}

/* Looks a service up by name in the snapshot (already compiled by cph_proxy_compile) through a temporary index. */
static const cph_service_t *find_service(const cph_snapshot_t *snap, const size_t *index, size_t mask, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = hash_bytes(name, len) & mask;; i = (i + 1) & mask) {
        if (index[i] == 0)
            return NULL;
        if (strcmp(snap->services[index[i] - 1].name, name) == 0)
            return &snap->services[index[i] - 1];
    }
}

static size_t *index_services(const cph_snapshot_t *snap, size_t *mask)
{
    size_t cap = 16, *index;

    while (cap < 2 * snap->num_services + 1)
        cap *= 2;
    if ((index = calloc(cap, sizeof(*index))) == NULL)
        cph_fatal(MODULE, "out of memory");
    *mask = cap - 1;
    for (size_t s = 0; s != snap->num_services; ++s) {
        const char *name = snap->services[s].name;
        size_t i = hash_bytes(name, strlen(name)) & *mask;
        while (index[i] != 0)
            i = (i + 1) & *mask;
        index[i] = s + 1;
    }
    return index;
}

static h2o_iovec_t *copy_strings(cph_arena_t *a, const json_t *arr, size_t *num)
{
    h2o_iovec_t *out;

    *num = json_is_array(arr) ? json_array_size(arr) : 0;
    out = cph_arena_alloc(a, sizeof(*out) * (*num + 1));
    for (size_t i = 0; i != *num; ++i) {
        const json_t *v = json_array_get(arr, i);
        out[i] = h2o_iovec_init(cph_arena_strndup(a, json_string_value(v), json_string_length(v)), json_string_length(v));
    }
    return out;
}

/* The validator allows "public", "authenticated" and "deny"; absent means authenticated: nothing is open by default. */
static cph_default_access_t default_access(const char *s)
{
    if (s != NULL && strcmp(s, "public") == 0)
        return CPH_ACCESS_PUBLIC;
    if (s != NULL && strcmp(s, "deny") == 0)
        return CPH_ACCESS_DENY;
    return CPH_ACCESS_AUTHENTICATED;
}

static int compile_route(cph_snapshot_t *snap, cph_route_t *route, const json_t *obj, const cph_service_t *service, size_t i,
                         cph_error_t *err)
{
    char at[64];
    const json_t *methods = json_object_get(obj, "methods");

    route->name = cph_arena_strdup(&snap->arena, json_string_value(json_object_get(obj, "name")));
    route->index = (uint32_t)i;
    route->metric_id = cph_stats_route_id(route->name);
    if ((route->service = service) == NULL) {
        snprintf(at, sizeof(at), "/routes/%zu/service", i);
        return cph_error_set(err, "unknown_service", at, "the route names a service that is not defined");
    }
    route->paths = copy_strings(&snap->arena, json_object_get(obj, "paths"), &route->num_paths);
    route->hosts = copy_strings(&snap->arena, json_object_get(obj, "hosts"), &route->num_hosts);
    route->methods = CPH_METHOD_ANY;
    for (size_t m = 0; json_is_array(methods) && m != json_array_size(methods); ++m) {
        const json_t *v = json_array_get(methods, m);
        route->methods |= cph_method_from(json_string_value(v), json_string_length(v));
    }
    route->strip_prefix = json_is_true(json_object_get(obj, "strip_prefix"));
    route->default_access = default_access(json_string_value(json_object_get(obj, "default_access")));
    return 0;
}

/* Builds the hash table from pairs sorted by prefix: one slot per distinct prefix. */
static cph_router_t *build_table(cph_arena_t *a, const pair_t *pairs, size_t n)
{
    cph_router_t *r = cph_arena_alloc(a, sizeof(*r));
    size_t cap = 16;

    while (cap < 2 * n + 1)
        cap *= 2;
    r->slots = cph_arena_alloc(a, sizeof(*r->slots) * cap);
    r->mask = cap - 1;
    for (size_t i = 0; i != n; ++i)
        if (pairs[i].prefix.len > r->max_prefix)
            r->max_prefix = pairs[i].prefix.len;
    r->len_present = cph_arena_alloc(a, r->max_prefix + 1);
    for (size_t i = 0, j; i != n; i = j) {
        for (j = i + 1; j != n && h2o_memis(pairs[j].prefix.base, pairs[j].prefix.len, pairs[i].prefix.base, pairs[i].prefix.len);
             ++j)
            ;
        uint64_t h = hash_bytes(pairs[i].prefix.base, pairs[i].prefix.len);
        size_t k = h & r->mask;
        while (r->slots[k].prefix.base != NULL)
            k = (k + 1) & r->mask;
        router_slot_t *s = &r->slots[k];
        s->prefix = pairs[i].prefix;
        s->hash = h;
        s->num_entries = j - i;
        s->entries = cph_arena_alloc(a, sizeof(*s->entries) * s->num_entries);
        for (size_t e = 0; e != s->num_entries; ++e)
            s->entries[e] = (router_entry_t){pairs[i + e].route, pairs[i + e].route->methods};
        r->len_present[pairs[i].prefix.len] = 1;
    }
    return r;
}

int cph_router_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes");
    size_t n = json_is_array(routes) ? json_array_size(routes) : 0, num_pairs = 0, mask, *index;
    pair_t *pairs = NULL;
    int ret = -1;

    snap->routes = cph_arena_alloc(&snap->arena, sizeof(*snap->routes) * (n + 1));
    snap->num_routes = n;
    index = index_services(snap, &mask);
    for (size_t i = 0; i != n; ++i) {
        const json_t *obj = json_array_get(routes, i);
        const char *svc = json_string_value(json_object_get(obj, "service"));
        if (compile_route(snap, &snap->routes[i], obj, svc != NULL ? find_service(snap, index, mask, svc) : NULL, i, err) != 0)
            goto Exit;
        num_pairs += snap->routes[i].num_paths;
    }
    if ((pairs = malloc(sizeof(*pairs) * (num_pairs + 1))) == NULL)
        cph_fatal(MODULE, "out of memory");
    num_pairs = 0;
    for (size_t i = 0; i != n; ++i)
        for (size_t p = 0; p != snap->routes[i].num_paths; ++p)
            pairs[num_pairs++] = (pair_t){snap->routes[i].paths[p], &snap->routes[i]};
    qsort(pairs, num_pairs, sizeof(*pairs), pair_cmp);
    snap->router = build_table(&snap->arena, pairs, num_pairs);
    ret = 0;
Exit:
    free(pairs);
    free(index);
    return ret;
}
