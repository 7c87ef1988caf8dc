/*
 * compile/ratelimit: routes' policies.rate_limits, endpoint rules' rate_limits and body gateway (trusted proxy hops,
 * login limit, Redis) -> route->rate_limits and snap->ratelimit (compile/ratelimit.h).
 *
 * Each limit gets its stable identities here, on the control thread: the local table id and the metrics id both come
 * from its scope (the route name, "endpoint:<rule id>", or "/auth" for the login limit) and its name, so a limit that
 * keeps them keeps its buckets and counters across snapshots, and the Redis key prefix "cph:rl:<scope>:<name>:".
 * The items are checked again here (ranges, names, key kinds) although the validator runs first: a bad number must
 * never reach the GCRA arithmetic, and the error path says where it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dataplane/compile/authz.h"
#include "dataplane/compile/compile.h"
#include "dataplane/compile/ratelimit.h"
#include "dataplane/core/stats.h"

#define MODULE "dp/compile/ratelimit"

#define MAX_RATE 1000000000
#define MAX_PERIOD_S 86400
#define LOGIN_SCOPE "/auth"

static const char *const item_members[] = {"name", "key", "rate", "period_s", "burst", "backend", "on_error", "headers", NULL};

/* ---------------------------------------------------------------- checks */

static int name_ok(const char *s, size_t len, int lower_token)
{
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i != len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok && lower_token)
            ok = strchr("!#$%&'*+^`|~", c) != NULL && c != '\0';
        else if (!ok)
            ok = c >= 'A' && c <= 'Z';
        if (!ok)
            return 0;
    }
    return 1;
}

/* An integer member within [lo, hi], or def when absent (required: def < 0). */
static int get_int(const json_t *obj, const char *at, const char *key, json_int_t lo, json_int_t hi, json_int_t def, uint64_t *out,
                   cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);

    if (v == NULL && def >= 0) {
        *out = (uint64_t)def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return cph_error_set(err, "invalid", at, "\"%s\" must be an integer from %lld to %lld", key, (long long)lo, (long long)hi);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* An optional string member that must be one of two values; returns 1 for the second, 0 for the first or absent. */
static int get_choice(const json_t *obj, const char *at, const char *key, const char *first, const char *second, int *out,
                      cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);

    *out = 0;
    if (v == NULL)
        return 0;
    if (json_is_string(v) && strcmp(json_string_value(v), second) == 0)
        *out = 1;
    else if (!json_is_string(v) || strcmp(json_string_value(v), first) != 0)
        return cph_error_set(err, "invalid", at, "\"%s\" must be \"%s\" or \"%s\"", key, first, second);
    return 0;
}

static int parse_key(cph_arena_t *a, cph_rl_limit_t *l, const json_t *v, const char *at, cph_error_t *err)
{
    static const char *const kinds[] = {"ip", "principal", "api_key", "system", "route"};
    const char *s = json_string_value(v);

    for (size_t i = 0; s != NULL && i != sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(s, kinds[i]) == 0) {
            l->key = (cph_rl_key_t)i;
            return 0;
        }
    }
    if (s != NULL && strncmp(s, "header:", 7) == 0 && name_ok(s + 7, strlen(s + 7), 1)) {
        l->key = CPH_RL_KEY_HEADER;
        l->header = h2o_iovec_init(cph_arena_strdup(a, s + 7), strlen(s + 7));
        return 0;
    }
    return cph_error_set(err, "invalid", at,
                         "\"key\" must be ip, principal, api_key, system, route or header:<lower-case header name>");
}

/* ---------------------------------------------------------------- limits */

static void set_identity(cph_arena_t *a, cph_rl_limit_t *l, const char *scope)
{
    size_t n = strlen(scope) + strlen(l->name) + sizeof("cph:rl:::");
    char *prefix = cph_arena_alloc(a, n);

    l->scope = cph_arena_strdup(a, scope);
    l->local_id = cph_ratelimit_limit_id(scope, l->name);
    l->stat_id = cph_stats_limit_id(scope, l->name);
    l->redis_prefix = h2o_iovec_init(prefix, (size_t)snprintf(prefix, n, "cph:rl:%s:%s:", scope, l->name));
}

static int parse_limit(cph_arena_t *a, cph_rl_limit_t *l, const json_t *item, const char *at, const char *scope, cph_error_t *err)
{
    const json_t *name, *headers = json_object_get(item, "headers"), *v;
    const char *key;
    uint64_t period_s = 0;

    if (!json_is_object(item))
        return cph_error_set(err, "invalid", at, "a rate limit must be an object");
    json_object_foreach((json_t *)item, key, v)
    {
        size_t i = 0;
        while (item_members[i] != NULL && strcmp(item_members[i], key) != 0)
            i++;
        if (item_members[i] == NULL)
            return cph_error_set(err, "unknown_field", at, "unknown member \"%s\"", key);
    }
    name = json_object_get(item, "name");
    if (!json_is_string(name) || !name_ok(json_string_value(name), json_string_length(name), 0))
        return cph_error_set(err, "invalid", at, "\"name\" must be 1-64 characters of [A-Za-z0-9._-]");
    l->name = cph_arena_strdup(a, json_string_value(name));
    if (parse_key(a, l, json_object_get(item, "key"), at, err) != 0 ||
        get_int(item, at, "rate", 1, MAX_RATE, -1, &l->spec.rate, err) != 0 ||
        get_int(item, at, "period_s", 1, MAX_PERIOD_S, -1, &period_s, err) != 0 ||
        get_int(item, at, "burst", 0, MAX_RATE, 0, &l->spec.burst, err) != 0 ||
        get_choice(item, at, "backend", "local", "redis", &l->redis, err) != 0 ||
        get_choice(item, at, "on_error", "open", "closed", &l->fail_closed, err) != 0)
        return -1;
    if (headers != NULL && !json_is_boolean(headers))
        return cph_error_set(err, "invalid", at, "\"headers\" must be a boolean");
    l->headers = json_is_true(headers);
    l->spec.period_ms = period_s * 1000;
    set_identity(a, l, scope);
    return 0;
}

/* A rate_limits array at `at` -> a set in the arena (an empty array gives an empty set). */
static int parse_set(cph_arena_t *a, const json_t *arr, const char *at, const char *scope, const cph_rl_set_t **out,
                     cph_error_t *err)
{
    char p[256];
    size_t n = json_array_size(arr);
    cph_rl_set_t *set;
    cph_rl_limit_t *limits;

    if (!json_is_array(arr) || n > CPH_RL_MAX_PER_LIST)
        return cph_error_set(err, "invalid", at, "\"rate_limits\" must be an array of at most %d limits", CPH_RL_MAX_PER_LIST);
    limits = cph_arena_alloc(a, sizeof(*limits) * (n + 1));
    for (size_t i = 0; i != n; i++) {
        snprintf(p, sizeof(p), "%s/%zu", at, i);
        memset(&limits[i], 0, sizeof(limits[i]));
        if (parse_limit(a, &limits[i], json_array_get(arr, i), p, scope, err) != 0)
            return -1;
        for (size_t j = 0; j != i; j++)
            if (strcmp(limits[j].name, limits[i].name) == 0)
                return cph_error_set(err, "invalid", p, "two rate limits named \"%s\"", limits[i].name);
    }
    set = cph_arena_alloc(a, sizeof(*set));
    *set = (cph_rl_set_t){limits, n};
    *out = set;
    return 0;
}

/* ---------------------------------------------------------------- routes and endpoint rules */

static int compile_routes(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes");
    char at[96];

    for (size_t i = 0; i != snap->num_routes && i != json_array_size(routes); i++) {
        const json_t *policies = json_object_get(json_array_get(routes, i), "policies");
        const json_t *arr = json_object_get(policies, "rate_limits");
        if (arr == NULL)
            continue;
        snprintf(at, sizeof(at), "/routes/%zu/policies/rate_limits", i);
        if (parse_set(&snap->arena, arr, at, snap->routes[i].name, &snap->routes[i].rate_limits, err) != 0)
            return -1;
        if (snap->routes[i].rate_limits->num_limits == 0)
            snap->routes[i].rate_limits = NULL;
    }
    return 0;
}

static int rule_cmp(const void *a, const void *b)
{
    const cph_rl_rule_t *x = a, *y = b;

    return x->rule_id < y->rule_id ? -1 : x->rule_id > y->rule_id;
}

static int compile_rules(cph_snapshot_t *snap, struct st_cph_rl_t *rl, const json_t *body, cph_error_t *err)
{
    const json_t *endpoints = json_object_get(body, "endpoints");
    size_t n = json_array_size(endpoints);
    cph_rl_rule_t *rules = cph_arena_alloc(&snap->arena, sizeof(*rules) * (n + 1));
    char at[96], scope[48];

    for (size_t i = 0; i != n; i++) {
        const json_t *ep = json_array_get(endpoints, i), *arr = json_object_get(ep, "rate_limits");
        json_int_t id = json_integer_value(json_object_get(ep, "id"));
        if (arr == NULL)
            continue;
        snprintf(at, sizeof(at), "/endpoints/%zu/rate_limits", i);
        snprintf(scope, sizeof(scope), "endpoint:%lld", (long long)id);
        rules[rl->num_rules].rule_id = id;
        if (parse_set(&snap->arena, arr, at, scope, &rules[rl->num_rules].set, err) != 0)
            return -1;
        rl->num_rules++;
    }
    qsort(rules, rl->num_rules, sizeof(*rules), rule_cmp);
    rl->rules = rules;
    return 0;
}

/* ---------------------------------------------------------------- gateway */

static int compile_login(cph_snapshot_t *snap, struct st_cph_rl_t *rl, const json_t *gw, cph_error_t *err)
{
    const json_t *login = json_object_get(gw, "login_rate_limit");
    cph_rl_limit_t *l = cph_arena_alloc(&snap->arena, sizeof(*l));
    uint64_t period_s = 0;
    static const char at[] = "/gateway/login_rate_limit";

    memset(l, 0, sizeof(*l));
    l->name = "login";
    l->key = CPH_RL_KEY_IP;
    if (login != NULL && !json_is_null(login) && !json_is_object(login))
        return cph_error_set(err, "invalid", at, "\"login_rate_limit\" must be an object");
    if (get_int(login, at, "rate", 1, MAX_RATE, 10, &l->spec.rate, err) != 0 ||
        get_int(login, at, "period_s", 1, MAX_PERIOD_S, 60, &period_s, err) != 0 ||
        get_int(login, at, "burst", 0, MAX_RATE, 5, &l->spec.burst, err) != 0)
        return -1;
    l->spec.period_ms = period_s * 1000;
    set_identity(&snap->arena, l, LOGIN_SCOPE);
    rl->login = (cph_rl_set_t){l, 1};
    return 0;
}

static int compile_redis(struct st_cph_rl_t *rl, const json_t *gw, cph_error_t *err)
{
    const json_t *redis = json_object_get(gw, "redis"), *host = json_object_get(redis, "host");
    static const char at[] = "/gateway/redis";
    uint64_t port = 0, db = 0, timeout = 0;

    if (redis == NULL || json_is_null(redis))
        return 0;
    if (!json_is_object(redis) || !json_is_string(host) || json_string_length(host) == 0 ||
        json_string_length(host) >= sizeof(rl->redis.host))
        return cph_error_set(err, "invalid", at, "\"redis\" must be null or an object with a \"host\" of 1-255 characters");
    if (get_int(redis, at, "port", 1, 65535, 6379, &port, err) != 0 || get_int(redis, at, "db", 0, 15, 0, &db, err) != 0 ||
        get_int(redis, at, "timeout_ms", 1, 10000, 50, &timeout, err) != 0)
        return -1;
    memcpy(rl->redis.host, json_string_value(host), json_string_length(host) + 1);
    rl->redis.port = (uint16_t)port;
    rl->redis.db = (int)db;
    rl->redis.timeout_ms = timeout;
    rl->has_redis = 1;
    return 0;
}

int cph_ratelimit_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *gw = json_object_get(body, "gateway");
    struct st_cph_rl_t *rl = cph_arena_alloc(&snap->arena, sizeof(*rl));
    uint64_t hops = 0;

    memset(rl, 0, sizeof(*rl));
    snap->ratelimit = rl;
    if (gw != NULL && !json_is_object(gw))
        return cph_error_set(err, "invalid", "/gateway", "\"gateway\" must be an object");
    if (get_int(gw, "/gateway/trusted_proxy_hops", "trusted_proxy_hops", 0, CPH_RL_MAX_HOPS, 0, &hops, err) != 0)
        return -1;
    rl->trusted_proxy_hops = (unsigned)hops;
    if (compile_login(snap, rl, gw, err) != 0 || compile_redis(rl, gw, err) != 0 || compile_routes(snap, body, err) != 0 ||
        compile_rules(snap, rl, body, err) != 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- lookups (hot path) */

const cph_rl_set_t *cph_rl_select(const cph_snapshot_t *snap, const cph_route_t *route, const struct st_cph_authz_rule_t *rule)
{
    const struct st_cph_rl_t *rl = snap->ratelimit;

    if (rule != NULL && rl != NULL && rl->num_rules != 0) {
        cph_rl_rule_t probe = {rule->id, NULL};
        const cph_rl_rule_t *hit = bsearch(&probe, rl->rules, rl->num_rules, sizeof(*rl->rules), rule_cmp);
        if (hit != NULL)
            return hit->set->num_limits != 0 ? hit->set : NULL;
    }
    return route != NULL ? route->rate_limits : NULL;
}

const cph_rl_set_t *cph_rl_login(const cph_snapshot_t *snap)
{
    return snap->ratelimit != NULL && snap->ratelimit->login.num_limits != 0 ? &snap->ratelimit->login : NULL;
}

const cph_redis_config_t *cph_rl_redis_config(const cph_snapshot_t *snap)
{
    return snap->ratelimit != NULL && snap->ratelimit->has_redis ? &snap->ratelimit->redis : NULL;
}

unsigned cph_rl_trusted_hops(const cph_snapshot_t *snap)
{
    return snap->ratelimit != NULL ? snap->ratelimit->trusted_proxy_hops : 0;
}
