/*
 * compile/authz: body "groups" + "endpoints" -> snap->authz, and the decision of docs/access.md section 4
 * that filter/authz.c runs per request and the control plane's explain API runs with a trace.
 *
 * Roles and groups are interned at compile time: every (system, name) gets a small integer id, each group keeps the
 * sorted ids of its roles, and each rule keeps the sorted ids of the groups it names and of the roles it accepts
 * (its own roles plus the roles of its groups), so step 6 is a few binary searches instead of string scans. The
 * principal's names are resolved to ids once per request, on the stack, and only when step 6 is reached.
 *
 * Per service the rules are sorted most specific first, enforced and shadow apart. Exact and prefix rules of equal
 * pattern form runs of that list, indexed by a hash table keyed by (service, shadow, kind, pattern): a request looks
 * its path up once for exact rules, then scans the (few) templates in order, then probes its segment prefixes
 * longest first, so its cost does not grow with the number of exact or prefix rules. Nothing on that path allocates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/authz.h"
#include "dataplane/compile/compile.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/stats.h"

#define MODULE "dp/compile/authz"
#define NO_ID UINT32_MAX
#define RESOLVE_GROUPS 128 /* principal groups resolved on the stack; more fall back to per-rule lookups */
#define RESOLVE_ROLES 1024

typedef struct st_authz_ident_t {
    h2o_iovec_t system, name;
} authz_ident_t;

typedef struct st_authz_ids_t {
    uint32_t *ids; /* sorted, unique */
    size_t num;
} authz_ids_t;

/* (system, name) -> id, open addressing; items live in the arena. */
typedef struct st_authz_table_t {
    authz_ident_t *items;
    size_t num;
    uint32_t *slots; /* id + 1, 0 = empty */
    size_t mask;
} authz_table_t;

typedef struct st_authz_seg_t {
    h2o_iovec_t lit;
    int is_param;
} authz_seg_t;

struct st_cph_authz_rule_private_t {
    h2o_iovec_t base;  /* exact: the path; prefix: the pattern without its "/ *" */
    authz_seg_t *segs; /* template: the segments, without a final "*" */
    size_t num_segs, num_literals;
    int tail;           /* template ending in "/ *" */
    int lists_nothing;  /* E lists no roles and no groups (step 5) */
    authz_ids_t groups; /* E.groups */
    authz_ids_t roles;  /* E.roles U roles(E.groups) */
};

typedef struct st_authz_list_t {
    const cph_authz_rule_t **rules; /* most specific first */
    size_t num, templates_begin, templates_end;
    int has_exact;                 /* an exact rule exists: worth a probe */
    size_t prefix_min, prefix_max; /* the prefix rules' base lengths (min > max: none): probes outside are skipped */
} authz_list_t;

typedef struct st_authz_bucket_t {
    uint64_t hash; /* 0 = empty slot */
    uint32_t service;
    int shadow;
    cph_pattern_kind_t kind;
    h2o_iovec_t base;
    const cph_authz_rule_t **rules; /* a run of a service list: equal pattern, method-specific first */
    size_t num;
} authz_bucket_t;

struct st_cph_authz_t {
    authz_table_t roles, groups;
    authz_ids_t *group_roles; /* [groups.num] */
    cph_authz_rule_t *rules;
    size_t num_rules;
    authz_list_t *lists; /* [num_services * 2]: enforced, shadow */
    authz_bucket_t *buckets;
    size_t bucket_mask;
};

/* The principal's groups and effective roles as ids, resolved once per decision. */
typedef struct st_authz_resolved_t {
    int done, complete;
    uint32_t gids[RESOLVE_GROUPS], rids[RESOLVE_ROLES];
    size_t num_gids, num_rids;
} authz_resolved_t;

/* ---------------------------------------------------------------- identity tables */

static uint64_t hash_bytes(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_ident(h2o_iovec_t system, h2o_iovec_t name)
{
    return hash_bytes(hash_bytes(0xcbf29ce484222325ull, system.base, system.len) * 0x100000001b3ull, name.base, name.len);
}

static uint32_t table_find(const authz_table_t *t, h2o_iovec_t system, h2o_iovec_t name)
{
    if (t->slots == NULL)
        return NO_ID;
    for (size_t i = hash_ident(system, name) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = t->slots[i];
        if (id == 0)
            return NO_ID;
        const authz_ident_t *it = &t->items[id - 1];
        if (h2o_memis(it->system.base, it->system.len, system.base, system.len) &&
            h2o_memis(it->name.base, it->name.len, name.base, name.len))
            return id - 1;
    }
}

static void table_init(cph_arena_t *a, authz_table_t *t, size_t max)
{
    size_t cap = 16;

    while (cap < 2 * max + 1)
        cap *= 2;
    t->items = cph_arena_alloc(a, sizeof(*t->items) * (max + 1));
    t->slots = cph_arena_alloc(a, sizeof(*t->slots) * cap);
    t->mask = cap - 1;
}

/* The id of (system, name), added (copied into the arena) when new; the table was sized for every name. */
static uint32_t table_intern(cph_arena_t *a, authz_table_t *t, const json_t *system, const json_t *name)
{
    h2o_iovec_t s = h2o_iovec_init(json_string_value(system), json_string_length(system));
    h2o_iovec_t n = h2o_iovec_init(json_string_value(name), json_string_length(name));
    uint32_t id = table_find(t, s, n);

    if (id != NO_ID)
        return id;
    size_t i = hash_ident(s, n) & t->mask;
    while (t->slots[i] != 0)
        i = (i + 1) & t->mask;
    t->items[t->num].system = h2o_iovec_init(cph_arena_strndup(a, s.base, s.len), s.len);
    t->items[t->num].name = h2o_iovec_init(cph_arena_strndup(a, n.base, n.len), n.len);
    t->slots[i] = (uint32_t)++t->num;
    return (uint32_t)(t->num - 1);
}

static int id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts and de-duplicates ids[0..n) in place; returns the new count. */
static size_t ids_unique(uint32_t *ids, size_t n)
{
    size_t o = 0;

    qsort(ids, n, sizeof(*ids), id_cmp);
    for (size_t i = 0; i != n; ++i)
        if (o == 0 || ids[o - 1] != ids[i])
            ids[o++] = ids[i];
    return o;
}

static int ids_has(const authz_ids_t *set, uint32_t id)
{
    size_t lo = 0, hi = set->num;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->ids[mid] == id)
            return 1;
        if (set->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Whether v is a {"system", "name"} object of strings (defensive: the validator checked the body). */
static int is_ref(const json_t *v)
{
    return json_is_string(json_object_get(v, "system")) && json_is_string(json_object_get(v, "name"));
}

static size_t array_size(const json_t *v)
{
    return json_is_array(v) ? json_array_size(v) : 0;
}

/* Interns every group and its roles; sizes both tables for every name the body can hold. */
static void compile_groups(cph_snapshot_t *snap, cph_authz_t *az, const json_t *groups, const json_t *endpoints)
{
    size_t max_groups = array_size(groups), max_roles = 0;

    for (size_t i = 0; i != array_size(groups); ++i)
        max_roles += array_size(json_object_get(json_array_get(groups, i), "roles"));
    for (size_t i = 0; i != array_size(endpoints); ++i) {
        max_roles += array_size(json_object_get(json_array_get(endpoints, i), "roles"));
        max_groups += array_size(json_object_get(json_array_get(endpoints, i), "groups"));
    }
    table_init(&snap->arena, &az->roles, max_roles);
    table_init(&snap->arena, &az->groups, max_groups);
    az->group_roles = cph_arena_alloc(&snap->arena, sizeof(*az->group_roles) * (max_groups + 1));
    for (size_t i = 0; i != array_size(groups); ++i) {
        const json_t *g = json_array_get(groups, i), *system = json_object_get(g, "system"), *roles = json_object_get(g, "roles");
        if (!is_ref(g))
            continue;
        authz_ids_t *set = &az->group_roles[table_intern(&snap->arena, &az->groups, system, json_object_get(g, "name"))];
        set->ids = cph_arena_alloc(&snap->arena, sizeof(*set->ids) * (array_size(roles) + 1));
        set->num = 0;
        for (size_t r = 0; r != array_size(roles); ++r)
            if (json_is_string(json_array_get(roles, r)))
                set->ids[set->num++] = table_intern(&snap->arena, &az->roles, system, json_array_get(roles, r));
        set->num = ids_unique(set->ids, set->num);
    }
}

/* ---------------------------------------------------------------- rules */

/* Splits a pattern into its kind and matching data; -1 when it is not one (not starting with '/', bad braces). */
static int parse_pattern(cph_arena_t *a, const char *pattern, cph_authz_rule_t *rule, struct st_cph_authz_rule_private_t *priv)
{
    size_t len = strlen(pattern), n = 0;
    int has_param = 0, tail = len >= 2 && memcmp(pattern + len - 2, "/*", 2) == 0;

    if (len == 0 || pattern[0] != '/')
        return -1;
    for (const char *p = pattern; *p != '\0'; ++p)
        n += *p == '/';
    priv->segs = cph_arena_alloc(a, sizeof(*priv->segs) * n);
    for (const char *p = pattern, *end = pattern + (tail ? len - 2 : len); p < end;) {
        const char *seg = p + 1, *slash = memchr(seg, '/', (size_t)(end - seg)), *seg_end = slash != NULL ? slash : end;
        size_t seg_len = (size_t)(seg_end - seg);
        authz_seg_t *s = &priv->segs[priv->num_segs++];
        s->lit = h2o_iovec_init(seg, seg_len);
        s->is_param = seg_len >= 2 && seg[0] == '{' && seg[seg_len - 1] == '}';
        if (!s->is_param &&
            (memchr(seg, '{', seg_len) != NULL || memchr(seg, '}', seg_len) != NULL || memchr(seg, '*', seg_len) != NULL))
            return -1;
        has_param |= s->is_param;
        priv->num_literals += !s->is_param;
        p = seg_end;
    }
    priv->tail = tail;
    rule->kind = has_param ? CPH_PATTERN_TEMPLATE : tail ? CPH_PATTERN_PREFIX : CPH_PATTERN_EXACT;
    priv->base = h2o_iovec_init(pattern, rule->kind == CPH_PATTERN_PREFIX ? len - 2 : len);
    return 0;
}

/* Fills the allowed sets of a rule: E.groups, and E.roles U roles(E.groups). */
static void compile_sets(cph_arena_t *a, cph_authz_t *az, const json_t *ep, struct st_cph_authz_rule_private_t *priv)
{
    const json_t *roles = json_object_get(ep, "roles"), *groups = json_object_get(ep, "groups");
    size_t max_roles = array_size(roles);

    priv->groups.ids = cph_arena_alloc(a, sizeof(uint32_t) * (array_size(groups) + 1));
    for (size_t i = 0; i != array_size(groups); ++i) {
        const json_t *g = json_array_get(groups, i);
        if (!is_ref(g))
            continue;
        uint32_t gid = table_intern(a, &az->groups, json_object_get(g, "system"), json_object_get(g, "name"));
        priv->groups.ids[priv->groups.num++] = gid;
        max_roles += az->group_roles[gid].num;
    }
    priv->groups.num = ids_unique(priv->groups.ids, priv->groups.num);
    priv->roles.ids = cph_arena_alloc(a, sizeof(uint32_t) * (max_roles + 1));
    for (size_t i = 0; i != array_size(roles); ++i) {
        const json_t *r = json_array_get(roles, i);
        if (is_ref(r))
            priv->roles.ids[priv->roles.num++] =
                table_intern(a, &az->roles, json_object_get(r, "system"), json_object_get(r, "name"));
    }
    priv->lists_nothing = priv->roles.num == 0 && priv->groups.num == 0;
    for (size_t g = 0; g != priv->groups.num; ++g) {
        const authz_ids_t *gr = &az->group_roles[priv->groups.ids[g]];
        if (gr->num == 0)
            continue; /* a group the body does not list: no roles, and ids may be NULL (memcpy from NULL is undefined) */
        memcpy(priv->roles.ids + priv->roles.num, gr->ids, sizeof(uint32_t) * gr->num);
        priv->roles.num += gr->num;
    }
    priv->roles.num = ids_unique(priv->roles.ids, priv->roles.num);
}

static int compile_rule(cph_snapshot_t *snap, cph_authz_t *az, const json_t *ep, size_t i, cph_authz_rule_t *rule, cph_error_t *err)
{
    const json_t *id = json_object_get(ep, "id"), *method = json_object_get(ep, "method"), *path = json_object_get(ep, "path");
    struct st_cph_authz_rule_private_t *priv = cph_arena_alloc(&snap->arena, sizeof(*priv));
    char at[64];

    if (!json_is_integer(id) || json_integer_value(id) < 1 || !json_is_string(path) ||
        parse_pattern(&snap->arena, cph_arena_strdup(&snap->arena, json_string_value(path)), rule, priv) != 0) {
        snprintf(at, sizeof(at), "/endpoints/%zu", i);
        return cph_error_set(err, "invalid", at, "the endpoint rule has no usable id or path pattern");
    }
    rule->id = json_integer_value(id);
    rule->stat_id = cph_stats_endpoint_id(rule->id);
    rule->pattern = priv->base.base;
    rule->method = json_is_string(method) ? cph_arena_strdup(&snap->arena, json_string_value(method)) : "*";
    rule->method_bit = strcmp(rule->method, "*") == 0 ? CPH_METHOD_ANY : cph_method_from(rule->method, strlen(rule->method));
    rule->is_public = json_is_true(json_object_get(ep, "public"));
    rule->shadow = json_is_true(json_object_get(ep, "shadow"));
    rule->priv = priv;
    compile_sets(&snap->arena, az, ep, priv);
    return 0;
}

/* ---------------------------------------------------------------- specificity */

/* Templates: more literal segments first, then the left-most literal, then without a "/ *" tail, then more segments. */
static int template_cmp(const struct st_cph_authz_rule_private_t *x, const struct st_cph_authz_rule_private_t *y)
{
    if (x->num_literals != y->num_literals)
        return x->num_literals > y->num_literals ? -1 : 1;
    for (size_t i = 0; i != x->num_segs && i != y->num_segs; ++i)
        if (x->segs[i].is_param != y->segs[i].is_param)
            return x->segs[i].is_param ? 1 : -1;
    if (x->tail != y->tail)
        return x->tail ? 1 : -1;
    if (x->num_segs != y->num_segs)
        return x->num_segs > y->num_segs ? -1 : 1;
    return 0;
}

/* Most specific first (docs/access.md section 4); equal patterns stay adjacent, method-specific before "*", then by id. */
static int rule_cmp(const void *a, const void *b)
{
    const cph_authz_rule_t *x = *(const cph_authz_rule_t *const *)a, *y = *(const cph_authz_rule_t *const *)b;
    int c = 0;

    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->kind == CPH_PATTERN_TEMPLATE && (c = template_cmp(x->priv, y->priv)) != 0)
        return c;
    if (x->kind == CPH_PATTERN_PREFIX && x->priv->base.len != y->priv->base.len)
        return x->priv->base.len > y->priv->base.len ? -1 : 1;
    if ((c = strcmp(x->pattern, y->pattern)) != 0)
        return c;
    if ((x->method_bit == CPH_METHOD_ANY) != (y->method_bit == CPH_METHOD_ANY))
        return x->method_bit == CPH_METHOD_ANY ? 1 : -1;
    if ((c = strcmp(x->method, y->method)) != 0)
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ---------------------------------------------------------------- lists and the pattern index */

static uint64_t bucket_hash(uint32_t service, int shadow, cph_pattern_kind_t kind, const char *base, size_t len)
{
    uint64_t h = hash_bytes(0xcbf29ce484222325ull ^ ((uint64_t)service << 3 | (uint64_t)shadow << 2 | (uint64_t)kind), base, len);
    return h != 0 ? h : 1;
}

static const authz_bucket_t *bucket_find(const cph_authz_t *az, uint32_t service, int shadow, cph_pattern_kind_t kind,
                                         const char *base, size_t len)
{
    uint64_t h = bucket_hash(service, shadow, kind, base, len);

    for (size_t i = h & az->bucket_mask;; i = (i + 1) & az->bucket_mask) {
        const authz_bucket_t *b = &az->buckets[i];
        if (b->hash == 0)
            return NULL;
        if (b->hash == h && b->service == service && b->shadow == shadow && b->kind == kind &&
            h2o_memis(b->base.base, b->base.len, base, len))
            return b;
    }
}

/* Indexes the runs of equal exact / prefix patterns of one sorted list. */
static void index_list(cph_authz_t *az, uint32_t service, int shadow, authz_list_t *l)
{
    l->has_exact = 0;
    l->prefix_min = SIZE_MAX;
    l->prefix_max = 0;
    for (size_t i = 0, j; i != l->num; i = j) {
        const cph_authz_rule_t *r = l->rules[i];
        for (j = i + 1; j != l->num && l->rules[j]->kind == r->kind && strcmp(l->rules[j]->pattern, r->pattern) == 0; ++j)
            ;
        if (r->kind == CPH_PATTERN_TEMPLATE) {
            if (l->templates_end == l->templates_begin)
                l->templates_begin = i;
            l->templates_end = j;
            continue;
        }
        if (r->kind == CPH_PATTERN_EXACT) {
            l->has_exact = 1;
        } else {
            l->prefix_min = r->priv->base.len < l->prefix_min ? r->priv->base.len : l->prefix_min;
            l->prefix_max = r->priv->base.len > l->prefix_max ? r->priv->base.len : l->prefix_max;
        }
        uint64_t h = bucket_hash(service, shadow, r->kind, r->priv->base.base, r->priv->base.len);
        size_t k = h & az->bucket_mask;
        while (az->buckets[k].hash != 0)
            k = (k + 1) & az->bucket_mask;
        az->buckets[k] = (authz_bucket_t){h, service, shadow, r->kind, r->priv->base, &l->rules[i], j - i};
    }
}

static void build_lists(cph_snapshot_t *snap, cph_authz_t *az, const uint32_t *service_of)
{
    size_t cap = 16, nlists = snap->num_services * 2;

    az->lists = cph_arena_alloc(&snap->arena, sizeof(*az->lists) * (nlists + 1));
    for (size_t i = 0; i != az->num_rules; ++i)
        az->lists[service_of[i] * 2 + (size_t)az->rules[i].shadow].num++;
    for (size_t l = 0; l != nlists; ++l) {
        az->lists[l].rules = cph_arena_alloc(&snap->arena, sizeof(*az->lists[l].rules) * (az->lists[l].num + 1));
        az->lists[l].num = 0;
    }
    for (size_t i = 0; i != az->num_rules; ++i) {
        authz_list_t *l = &az->lists[service_of[i] * 2 + (size_t)az->rules[i].shadow];
        l->rules[l->num++] = &az->rules[i];
    }
    while (cap < 2 * az->num_rules + 1)
        cap *= 2;
    az->buckets = cph_arena_alloc(&snap->arena, sizeof(*az->buckets) * cap);
    az->bucket_mask = cap - 1;
    for (size_t l = 0; l != nlists; ++l) {
        qsort(az->lists[l].rules, az->lists[l].num, sizeof(*az->lists[l].rules), rule_cmp);
        index_list(az, (uint32_t)(l / 2), (int)(l % 2), &az->lists[l]);
    }
}

/* The service index of a name; endpoints come sorted by service, so the previous answer is tried first. */
static uint32_t find_service(const cph_snapshot_t *snap, const char *name, uint32_t *last)
{
    if (*last < snap->num_services && strcmp(snap->services[*last].name, name) == 0)
        return *last;
    for (size_t i = 0; i != snap->num_services; ++i)
        if (strcmp(snap->services[i].name, name) == 0)
            return *last = (uint32_t)i;
    return NO_ID;
}

int cph_authz_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *endpoints = json_object_get(body, "endpoints");
    cph_authz_t *az = cph_arena_alloc(&snap->arena, sizeof(*az));
    uint32_t *service_of = NULL, last = 0;
    char at[64];
    int ret = -1;

    compile_groups(snap, az, json_object_get(body, "groups"), endpoints);
    az->num_rules = array_size(endpoints);
    az->rules = cph_arena_alloc(&snap->arena, sizeof(*az->rules) * (az->num_rules + 1));
    if ((service_of = malloc(sizeof(*service_of) * (az->num_rules + 1))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t i = 0; i != az->num_rules; ++i) {
        const json_t *ep = json_array_get(endpoints, i), *svc = json_object_get(ep, "service");
        if (!json_is_string(svc) || (service_of[i] = find_service(snap, json_string_value(svc), &last)) == NO_ID) {
            snprintf(at, sizeof(at), "/endpoints/%zu/service", i);
            cph_error_set(err, "unknown_service", at, "the endpoint rule names a service that is not defined");
            goto Exit;
        }
        if (compile_rule(snap, az, ep, i, &az->rules[i], err) != 0)
            goto Exit;
    }
    build_lists(snap, az, service_of);
    snap->authz = az;
    ret = 0;
Exit:
    free(service_of);
    return ret;
}

/* ---------------------------------------------------------------- matching */

static int template_match(const struct st_cph_authz_rule_private_t *priv, const char *path, size_t len)
{
    const char *p = path, *end = path + len;

    for (size_t i = 0; i != priv->num_segs; ++i) {
        if (p == end || *p != '/')
            return 0;
        const char *seg = ++p, *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t seg_len = (size_t)((slash != NULL ? slash : end) - seg);
        if (priv->segs[i].is_param ? seg_len == 0 : !h2o_memis(seg, seg_len, priv->segs[i].lit.base, priv->segs[i].lit.len))
            return 0;
        p = seg + seg_len;
    }
    return p == end || (priv->tail && *p == '/');
}

int cph_authz_pattern_match(const cph_authz_rule_t *rule, const char *path, size_t path_len)
{
    h2o_iovec_t base = rule->priv->base;

    switch (rule->kind) {
    case CPH_PATTERN_EXACT:
        return h2o_memis(path, path_len, base.base, base.len);
    case CPH_PATTERN_TEMPLATE:
        return template_match(rule->priv, path, path_len);
    case CPH_PATTERN_PREFIX:
        return path_len >= base.len && h2o_memis(path, base.len, base.base, base.len) &&
               (path_len == base.len || path[base.len] == '/');
    }
    return 0;
}

static int method_ok(const cph_authz_rule_t *rule, uint32_t method)
{
    return rule->method_bit == CPH_METHOD_ANY || (rule->method_bit & method) != 0;
}

static const cph_authz_rule_t *bucket_first(const cph_authz_t *az, uint32_t service, int shadow, cph_pattern_kind_t kind,
                                            const char *base, size_t len, uint32_t method)
{
    const authz_bucket_t *b = bucket_find(az, service, shadow, kind, base, len);

    for (size_t i = 0; b != NULL && i != b->num; ++i)
        if (method_ok(b->rules[i], method))
            return b->rules[i];
    return NULL;
}

/* The most specific rule of a list matching (method, path): exact, then templates in order, then longest prefix. */
static const cph_authz_rule_t *best_rule(const cph_authz_t *az, uint32_t service, int shadow, uint32_t method, const char *path,
                                         size_t len)
{
    const authz_list_t *l = &az->lists[service * 2 + (uint32_t)shadow];
    const cph_authz_rule_t *r;

    if (l->num == 0)
        return NULL;
    if (l->has_exact && (r = bucket_first(az, service, shadow, CPH_PATTERN_EXACT, path, len, method)) != NULL)
        return r;
    for (size_t i = l->templates_begin; i != l->templates_end; ++i)
        if (method_ok(l->rules[i], method) && template_match(l->rules[i]->priv, path, len))
            return l->rules[i];
    if (len == 0 || path[0] != '/')
        return NULL;
    /* "/a/b" probes "/a/b", "/a", ""; "/a/" probes "/a", "" (a prefix "/a/ *" has base "/a") */
    if (l->prefix_min > l->prefix_max)
        return NULL;
    if (path[len - 1] != '/' && len <= l->prefix_max &&
        (r = bucket_first(az, service, shadow, CPH_PATTERN_PREFIX, path, len, method)) != NULL)
        return r;
    /* only the lengths some prefix rule has: prefix_min..prefix_max */
    for (size_t k = len < l->prefix_max + 1 ? len : l->prefix_max + 1; k-- > l->prefix_min;)
        if (path[k] == '/' && (r = bucket_first(az, service, shadow, CPH_PATTERN_PREFIX, path, k, method)) != NULL)
            return r;
    return NULL;
}

/* ---------------------------------------------------------------- decision */

/* Resolves the principal's groups and effective roles to ids (names unknown to the snapshot can grant nothing). */
static void resolve(const cph_authz_t *az, const cph_principal_t *pr, authz_resolved_t *res)
{
    res->done = res->complete = 1;
    res->num_gids = res->num_rids = 0;
    for (size_t i = 0; i != pr->num_roles; ++i) {
        uint32_t rid = table_find(&az->roles, pr->system, pr->roles[i]);
        if (rid == NO_ID)
            continue;
        if (res->num_rids == RESOLVE_ROLES)
            goto Overflow;
        res->rids[res->num_rids++] = rid;
    }
    for (size_t i = 0; i != pr->num_groups; ++i) {
        uint32_t gid = table_find(&az->groups, pr->system, pr->groups[i]);
        if (gid == NO_ID)
            continue;
        const authz_ids_t *roles = &az->group_roles[gid];
        if (res->num_gids == RESOLVE_GROUPS || res->num_rids + roles->num > RESOLVE_ROLES)
            goto Overflow;
        res->gids[res->num_gids++] = gid;
        memcpy(res->rids + res->num_rids, roles->ids, sizeof(uint32_t) * roles->num);
        res->num_rids += roles->num;
    }
    return;
Overflow:
    res->complete = 0; /* grant_slow looks every name up per rule instead */
}

/* Step 6 without the resolved ids: a principal with more groups or roles than the stack buffers hold. */
static const char *grant_slow(const cph_authz_t *az, const struct st_cph_authz_rule_private_t *priv, const cph_principal_t *pr,
                              h2o_iovec_t *granted_by)
{
    for (size_t i = 0; i != pr->num_groups; ++i) {
        uint32_t gid = table_find(&az->groups, pr->system, pr->groups[i]);
        if (gid != NO_ID && ids_has(&priv->groups, gid))
            return *granted_by = az->groups.items[gid].name, "group";
    }
    for (size_t i = 0; i != pr->num_roles; ++i) {
        uint32_t rid = table_find(&az->roles, pr->system, pr->roles[i]);
        if (rid != NO_ID && ids_has(&priv->roles, rid))
            return *granted_by = az->roles.items[rid].name, "role";
    }
    for (size_t i = 0; i != pr->num_groups; ++i) {
        uint32_t gid = table_find(&az->groups, pr->system, pr->groups[i]);
        for (size_t r = 0; gid != NO_ID && r != az->group_roles[gid].num; ++r)
            if (ids_has(&priv->roles, az->group_roles[gid].ids[r]))
                return *granted_by = az->roles.items[az->group_roles[gid].ids[r]].name, "role";
    }
    return NULL;
}

/* Step 6: "group" or "role" with *granted_by set, or NULL. */
static const char *grant(const cph_authz_t *az, const struct st_cph_authz_rule_private_t *priv, const cph_principal_t *pr,
                         authz_resolved_t *res, h2o_iovec_t *granted_by)
{
    if (!res->done)
        resolve(az, pr, res);
    if (!res->complete)
        return grant_slow(az, priv, pr, granted_by);
    for (size_t i = 0; i != res->num_gids; ++i)
        if (ids_has(&priv->groups, res->gids[i]))
            return *granted_by = az->groups.items[res->gids[i]].name, "group";
    for (size_t i = 0; i != res->num_rids; ++i)
        if (ids_has(&priv->roles, res->rids[i]))
            return *granted_by = az->roles.items[res->rids[i]].name, "role";
    return NULL;
}

static int wrong_system(const cph_service_t *svc, const cph_principal_t *pr)
{
    return svc->system != NULL && !h2o_memis(pr->system.base, pr->system.len, svc->system, strlen(svc->system));
}

/* Steps 1-7 with rule E. */
static cph_authz_decision_t decide_rule(const cph_authz_t *az, const cph_service_t *svc, const cph_authz_rule_t *rule,
                                        const cph_principal_t *pr, authz_resolved_t *res, const char **reason,
                                        h2o_iovec_t *granted_by)
{
    *granted_by = h2o_iovec_init(NULL, 0);
    if (rule->is_public)
        return *reason = "public_endpoint", CPH_AUTHZ_ALLOW;
    if (pr->kind == CPH_PRINCIPAL_NONE)
        return *reason = "no_credential", CPH_AUTHZ_UNAUTHENTICATED;
    if (pr->superuser)
        return *reason = "superuser", CPH_AUTHZ_ALLOW;
    if (wrong_system(svc, pr))
        return *reason = "wrong_system", CPH_AUTHZ_FORBIDDEN;
    if (rule->priv->lists_nothing)
        return *reason = "no_requirements", CPH_AUTHZ_ALLOW;
    if ((*reason = grant(az, rule->priv, pr, res, granted_by)) != NULL)
        return CPH_AUTHZ_ALLOW;
    return *reason = "no_matching_role_or_group", CPH_AUTHZ_FORBIDDEN;
}

/* No enforced rule matched: the route's default_access. */
static cph_authz_decision_t decide_default(const cph_route_t *route, const cph_principal_t *pr, const char **reason)
{
    switch (route->default_access) {
    case CPH_ACCESS_PUBLIC:
        return *reason = "default_public", CPH_AUTHZ_ALLOW;
    case CPH_ACCESS_DENY:
        return *reason = "default_deny", CPH_AUTHZ_FORBIDDEN;
    default:
        break;
    }
    if (pr->kind == CPH_PRINCIPAL_NONE)
        return *reason = "no_credential", CPH_AUTHZ_UNAUTHENTICATED;
    if (pr->superuser)
        return *reason = "superuser", CPH_AUTHZ_ALLOW;
    if (wrong_system(route->service, pr))
        return *reason = "wrong_system", CPH_AUTHZ_FORBIDDEN;
    return *reason = "default_authenticated", CPH_AUTHZ_ALLOW;
}

cph_authz_decision_t cph_authz_decide(const cph_snapshot_t *snap, const cph_route_t *route, uint32_t method, const char *path,
                                      size_t path_len, const cph_principal_t *principal, cph_authz_trace_t *trace)
{
    static const cph_principal_t nobody = {.kind = CPH_PRINCIPAL_NONE};
    const cph_authz_t *az = snap->authz;
    const cph_service_t *svc = route->service;
    const cph_authz_rule_t *rule = NULL, *shadow = NULL;
    authz_resolved_t res;
    cph_authz_trace_t local;
    cph_authz_decision_t d;

    res.done = 0;
    if (principal == NULL)
        principal = &nobody;
    if (trace == NULL)
        trace = &local;
    memset(trace, 0, sizeof(*trace));
    if (az != NULL && svc != NULL && svc->index < snap->num_services && &snap->services[svc->index] == svc) {
        rule = best_rule(az, svc->index, 0, method, path, path_len);
        if (trace != &local)
            shadow = best_rule(az, svc->index, 1, method, path, path_len);
    }
    if ((trace->rule = rule) != NULL)
        d = decide_rule(az, svc, rule, principal, &res, &trace->reason, &trace->granted_by);
    else
        d = decide_default(route, principal, &trace->reason);
    if ((trace->shadow_rule = shadow) != NULL)
        trace->shadow_decision = decide_rule(az, svc, shadow, principal, &res, &trace->shadow_reason, &trace->shadow_granted_by);
    return d;
}

/* Whether role id rid of group gid was already reported: an own role of the same name, or a role of an earlier group. */
static int role_seen(const cph_authz_t *az, const cph_principal_t *pr, size_t group_index, uint32_t rid)
{
    h2o_iovec_t name = az->roles.items[rid].name;

    for (size_t i = 0; i != pr->num_roles; ++i)
        if (h2o_memis(pr->roles[i].base, pr->roles[i].len, name.base, name.len))
            return 1;
    for (size_t i = 0; i != group_index; ++i) {
        uint32_t gid = table_find(&az->groups, pr->system, pr->groups[i]);
        if (gid != NO_ID && ids_has(&az->group_roles[gid], rid))
            return 1;
    }
    return 0;
}

void cph_authz_effective_roles(const cph_snapshot_t *snap, const cph_principal_t *principal,
                               void (*cb)(void *ud, const char *role, size_t len), void *ud)
{
    const cph_authz_t *az = snap->authz;

    for (size_t i = 0; i != principal->num_roles; ++i) {
        size_t j = 0;
        while (j != i &&
               !h2o_memis(principal->roles[j].base, principal->roles[j].len, principal->roles[i].base, principal->roles[i].len))
            ++j;
        if (j == i)
            cb(ud, principal->roles[i].base, principal->roles[i].len);
    }
    for (size_t i = 0; az != NULL && i != principal->num_groups; ++i) {
        uint32_t gid = table_find(&az->groups, principal->system, principal->groups[i]);
        for (size_t r = 0; gid != NO_ID && r != az->group_roles[gid].num; ++r) {
            uint32_t rid = az->group_roles[gid].ids[r];
            if (!role_seen(az, principal, i, rid))
                cb(ud, az->roles.items[rid].name.base, az->roles.items[rid].name.len);
        }
    }
}

const cph_authz_rule_t *cph_authz_rule_by_id(const cph_snapshot_t *snap, int64_t id)
{
    for (size_t i = 0; snap->authz != NULL && i != snap->authz->num_rules; ++i)
        if (snap->authz->rules[i].id == id)
            return &snap->authz->rules[i];
    return NULL;
}
