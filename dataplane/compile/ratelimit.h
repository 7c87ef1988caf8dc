/*
 * compile/ratelimit: the compiled rate limits of one snapshot (proto/PROTOCOL.md section 5): every route's policies.rate_limits
 * (route->rate_limits), the endpoint rules' rate_limits (looked up by the enforced rule's id), the login limit and the
 * gateway settings the rate-limit stage needs (trusted proxy hops, Redis). Built by cph_ratelimit_compile
 * (compile/compile.h), read by filter/ratelimit.c; everything lives in the snapshot's arena.
 */
#ifndef CPH_COMPILE_RATELIMIT_H
#define CPH_COMPILE_RATELIMIT_H

#include <stdint.h>
#include "dataplane/core/ratelimit.h"
#include "dataplane/core/redis.h"
#include "dataplane/core/snapshot.h"

struct st_cph_authz_rule_t; /* compile/authz.h */

#define CPH_RL_MAX_PER_LIST 8
#define CPH_RL_MAX_HOPS 8

/** What a limit counts by (the limit's "key"). */
typedef enum en_cph_rl_key_t {
    CPH_RL_KEY_IP = 0,    /* the client IP (gateway.trusted_proxy_hops) */
    CPH_RL_KEY_PRINCIPAL, /* the user or API key; no principal: the client IP */
    CPH_RL_KEY_API_KEY,   /* the API key; none: the limit does not apply */
    CPH_RL_KEY_SYSTEM,    /* the principal's system; none: does not apply */
    CPH_RL_KEY_ROUTE,     /* one bucket for everyone */
    CPH_RL_KEY_HEADER     /* a request header's value; absent: does not apply */
} cph_rl_key_t;

typedef struct st_cph_rl_limit_t {
    const char *name;
    const char *scope; /* the route name, "endpoint:<rule id>" or "/auth" (the metrics' route label) */
    cph_rl_key_t key;
    h2o_iovec_t header; /* CPH_RL_KEY_HEADER: the lower-case name */
    cph_ratelimit_spec_t spec;
    int redis;                /* backend redis (else local) */
    int fail_closed;          /* on_error closed: 503 when Redis fails */
    int headers;              /* RateLimit-* on allowed responses too */
    uint64_t local_id;        /* cph_ratelimit_limit_id(scope, name): stable across snapshots */
    uint32_t stat_id;         /* cph_stats_limit_id(scope, name) */
    h2o_iovec_t redis_prefix; /* "cph:rl:<scope>:<name>:" */
} cph_rl_limit_t;

/** A stack of limits that must all pass. */
typedef struct st_cph_rl_set_t {
    const cph_rl_limit_t *limits;
    size_t num_limits;
} cph_rl_set_t;

typedef struct st_cph_rl_rule_t {
    int64_t rule_id;
    const cph_rl_set_t *set;
} cph_rl_rule_t;

struct st_cph_rl_t {
    const cph_rl_rule_t *rules; /* endpoint rules that have a rate_limits member, sorted by id */
    size_t num_rules;
    cph_rl_set_t login; /* POST /auth/login, per client IP, local */
    unsigned trusted_proxy_hops;
    int has_redis;
    cph_redis_config_t redis;
};

/**
 * The limits that apply to a request of route matched by the enforced endpoint rule `rule` (NULL = none): the rule's
 * own rate_limits when it has the member (an empty array: none), else the route's. NULL when nothing applies.
 */
const cph_rl_set_t *cph_rl_select(const cph_snapshot_t *snap, const cph_route_t *route, const struct st_cph_authz_rule_t *rule);

/** The login limit (gateway.login_rate_limit, default 10 per 60 s, burst 5), or NULL without compiled limits. */
const cph_rl_set_t *cph_rl_login(const cph_snapshot_t *snap);

/** gateway.redis: where `backend: redis` limits go, or NULL when the body has none (the control thread applies it). */
const cph_redis_config_t *cph_rl_redis_config(const cph_snapshot_t *snap);

/** gateway.trusted_proxy_hops (0..8; 0 without compiled limits). */
unsigned cph_rl_trusted_hops(const cph_snapshot_t *snap);

#endif
