/*
 * filter/ratelimit: the rate-limit stage (docs/dataplane.md "Rate limiting"). It runs after authz, so it knows the enforced
 * endpoint rule (r->rule) and the principal: the rule's own rate_limits replace the route's (compile/ratelimit.h). Every limit of
 * the set must pass; each one takes its key from the request (client IP - an IPv6 client by its /64 -, principal, API
 * key, system, the route, or a header), and a limit whose key is absent does not apply.
 *
 * A stack is all-or-nothing: a request refused by one limit spends nothing in the others. The local limits are decided
 * together by cph_ratelimit_local_stack (one atomic decision over their shards), the redis ones together by one
 * cph_redis_gcra_stack call (one script on the server, atomic there). With both kinds in the stack, the local ones are
 * first decided as a dry run (a local refusal costs no redis call), then the redis ones, and the local ones are
 * charged last, atomically again. What remains: a local limit exhausted by concurrent requests between the dry run and
 * the charge refuses a request whose redis tokens are spent. A refusal is 429 rate_limited with Retry-After and
 * RateLimit-Limit/-Remaining/-Reset of the refusing limit; when every limit passed, the limits with headers:true send
 * the RateLimit-* of the most restrictive of them (fewest remaining) on the response.
 *
 * Local limits decide at once in the process-wide table (core/ratelimit.c). Redis limits are asynchronous
 * (core/redis.h): the stage returns CPH_DONE and the answer, on this worker's loop, charges the local limits and
 * calls cph_pipeline_resume(). The request may be gone by then (an HTTP/2 stream reset clears its pool): the call's
 * user data is a malloc'd ticket that the state's pool dispose detaches, so a late answer touches nothing. After
 * answering the request, nothing here touches it again. A Redis failure (or no gateway.redis) fails the whole redis
 * part of the stack; each redis limit, in order, follows its on_error: open allows (counted error_open), closed
 * answers 503 ratelimit_unavailable (error_closed) and stops there.
 *
 * The login limit (gateway.login_rate_limit) uses the same code: filter/builtin.c calls this stage for POST
 * /auth/login before it jumps to the proxy, and a request of the built-in auth route gets only that limit. It is
 * local, so that call always decides synchronously.
 *
 * The client IP is core/clientip.c's: the peer, or with gateway.trusted_proxy_hops = N > 0 the Nth address from the
 * right of X-Forwarded-For (addresses left of it were written by the client and are never trusted; no usable Nth
 * element: the peer), so the rate limiter and the edge's IP lists always agree on who the client is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "proto/log.h"
#include "dataplane/compile/ratelimit.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/redis.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"
#include "dataplane/core/sha256.h"

#define MODULE "dp/filter/ratelimit"

typedef struct st_rl_ticket_t rl_ticket_t;

/* One request's walk through its limits; lives in the request's pool. */
typedef struct st_rl_state_t {
    cph_req_t *r;
    const cph_rl_set_t *set;
    size_t num_local, num_remote;
    const cph_rl_limit_t *local[CPH_RL_MAX_PER_LIST];  /* the local limits that apply, in order */
    cph_ratelimit_item_t items[CPH_RL_MAX_PER_LIST];   /* their keys and decisions */
    const cph_rl_limit_t *remote[CPH_RL_MAX_PER_LIST]; /* the redis limits that apply, in order */
    h2o_iovec_t remote_key[CPH_RL_MAX_PER_LIST];       /* their redis keys */
    rl_ticket_t *ticket;                               /* the pending Redis call, or NULL */
    const cph_rl_limit_t *best;                        /* the most restrictive allowed limit with headers:true */
    cph_ratelimit_result_t best_res;
} rl_state_t;

struct st_rl_ticket_t {
    rl_state_t *st; /* NULL once the request's pool was cleared */
};

/* ---------------------------------------------------------------- keys */

/* The client's key bytes (core/clientip.c, the same client the edge's IP lists see: IPv4 4 bytes, IPv6 its /64). */
static size_t client_ip(cph_req_t *r, char *out)
{
    struct sockaddr_storage ss;

    if (cph_client_ip_hops(r->req, cph_rl_trusted_hops(r->snap), &ss) != 0)
        return 0; /* no peer address (a unix socket): every such client shares one bucket */
    return cph_client_ip_key(&ss, out);
}

/* tag + bytes in the request's pool: the tag keeps the kinds of one limit (IP fallback, user, key) apart. */
static h2o_iovec_t tagged(cph_req_t *r, char tag, const char *s, size_t len)
{
    char *buf = h2o_mem_alloc_pool(&r->req->pool, len + 1);

    buf[0] = tag;
    memcpy(buf + 1, s, len);
    return h2o_iovec_init(buf, len + 1);
}

/* The limit's key value for this request; base NULL when the limit does not apply. */
static h2o_iovec_t limit_key(cph_req_t *r, const cph_rl_limit_t *l)
{
    const cph_principal_t *p = &r->principal;
    char ip[CPH_CLIENT_IP_KEY_MAX];

    switch (l->key) {
    case CPH_RL_KEY_PRINCIPAL:
        if (p->kind != CPH_PRINCIPAL_NONE)
            return tagged(r, p->kind == CPH_PRINCIPAL_API_KEY ? 'k' : 'u', p->id.base, p->id.len);
        return tagged(r, 'i', ip, client_ip(r, ip));
    case CPH_RL_KEY_API_KEY:
        return p->kind == CPH_PRINCIPAL_API_KEY ? tagged(r, 'k', p->id.base, p->id.len) : h2o_iovec_init(NULL, 0);
    case CPH_RL_KEY_SYSTEM:
        return p->kind != CPH_PRINCIPAL_NONE && p->system.len != 0 ? tagged(r, 's', p->system.base, p->system.len)
                                                                   : h2o_iovec_init(NULL, 0);
    case CPH_RL_KEY_ROUTE:
        return h2o_iovec_init(H2O_STRLIT("r"));
    case CPH_RL_KEY_HEADER:
        for (size_t i = 0; i != r->req->headers.size; ++i) {
            const h2o_header_t *h = &r->req->headers.entries[i];
            if (h2o_lcstris(h->name->base, h->name->len, l->header.base, l->header.len))
                return tagged(r, 'h', h->value.base, h->value.len);
        }
        return h2o_iovec_init(NULL, 0);
    default:
        return tagged(r, 'i', ip, client_ip(r, ip));
    }
}

/* "cph:rl:<scope>:<name>:" + 32 hex of SHA-256(key): a client's bytes never reach the Redis key. */
static h2o_iovec_t redis_key(cph_req_t *r, const cph_rl_limit_t *l, h2o_iovec_t key)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[CPH_SHA256_LEN];
    char *buf = h2o_mem_alloc_pool(&r->req->pool, l->redis_prefix.len + 33);

    cph_sha256(key.base, key.len, digest);
    memcpy(buf, l->redis_prefix.base, l->redis_prefix.len);
    for (size_t i = 0; i != 16; i++) {
        buf[l->redis_prefix.len + 2 * i] = hex[digest[i] >> 4];
        buf[l->redis_prefix.len + 2 * i + 1] = hex[digest[i] & 15];
    }
    buf[l->redis_prefix.len + 32] = '\0';
    return h2o_iovec_init(buf, l->redis_prefix.len + 32);
}

/* ---------------------------------------------------------------- answers */

static void count(cph_req_t *r, const cph_rl_limit_t *l, cph_rl_outcome_t outcome)
{
    if (r->worker != NULL && r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->ratelimit[l->stat_id < CPH_STATS_MAX_LIMITS ? l->stat_id : 0][outcome], 1);
}

static void add_number(cph_req_t *r, const char *name, size_t name_len, uint64_t v)
{
    char *buf = h2o_mem_alloc_pool(&r->req->pool, 24);
    int n = snprintf(buf, 24, "%llu", (unsigned long long)v);

    cph_pipeline_add_response_header(r, name, name_len, buf, (size_t)n);
}

static void add_ratelimit_headers(cph_req_t *r, const cph_rl_limit_t *l, const cph_ratelimit_result_t *res)
{
    add_number(r, H2O_STRLIT("ratelimit-limit"), l->spec.rate);
    add_number(r, H2O_STRLIT("ratelimit-remaining"), res->remaining);
    add_number(r, H2O_STRLIT("ratelimit-reset"), (res->reset_ms + 999) / 1000);
}

/* Records one limit's decision; on a refusal answers 429 and returns CPH_DONE. */
static int decided(rl_state_t *st, const cph_rl_limit_t *l, const cph_ratelimit_result_t *res)
{
    cph_req_t *r = st->r;

    count(r, l, res->allowed ? CPH_RL_OUTCOME_ALLOWED : CPH_RL_OUTCOME_LIMITED);
    if (!res->allowed) {
        add_number(r, H2O_STRLIT("retry-after"), (res->retry_after_ms + 999) / 1000);
        add_ratelimit_headers(r, l, res);
        cph_respond_error_r(r, 429, "rate_limited", "Too many requests: retry later");
        return CPH_DONE;
    }
    if (l->headers && (st->best == NULL || res->remaining < st->best_res.remaining ||
                       (res->remaining == st->best_res.remaining && res->reset_ms > st->best_res.reset_ms))) {
        st->best = l;
        st->best_res = *res;
    }
    return CPH_NEXT;
}

/* Redis failed, timed out or is not configured: the limit's on_error decides. */
static int backend_failed(rl_state_t *st, const cph_rl_limit_t *l)
{
    if (!l->fail_closed) {
        count(st->r, l, CPH_RL_OUTCOME_ERROR_OPEN);
        return CPH_NEXT;
    }
    count(st->r, l, CPH_RL_OUTCOME_ERROR_CLOSED);
    cph_respond_error_r(st->r, 503, "ratelimit_unavailable", "The rate limit backend is unavailable");
    return CPH_DONE;
}

/* ---------------------------------------------------------------- the walk */

static void on_state_dispose(void *p)
{
    rl_state_t *st = p;

    if (st->ticket != NULL)
        st->ticket->st = NULL; /* the request is gone: the pending answer will be dropped */
}

/* Decides the local limits all-or-nothing (charge 0: a dry run); CPH_DONE when one refused (429 sent). */
static int decide_local(rl_state_t *st, int charge)
{
    size_t refused;

    if (st->num_local == 0)
        return CPH_NEXT;
    refused = cph_ratelimit_local_stack(st->items, st->num_local, cph_ratelimit_now_ms(), charge);
    if (refused != st->num_local)
        return decided(st, st->local[refused], &st->items[refused].res);
    for (size_t k = 0; charge && k != st->num_local; k++)
        decided(st, st->local[k], &st->items[k].res);
    return CPH_NEXT;
}

/* Charges the local limits (all-or-nothing) once the redis ones passed; CPH_NEXT when all passed (headers added). */
static int finish(rl_state_t *st)
{
    if (decide_local(st, 1) == CPH_DONE)
        return CPH_DONE;
    if (st->best != NULL)
        add_ratelimit_headers(st->r, st->best, &st->best_res);
    return CPH_NEXT;
}

/* The redis part of the stack failed (or cannot be asked): each limit's on_error, in order, until a closed one. */
static int remote_failed(rl_state_t *st)
{
    for (size_t k = 0; k != st->num_remote; k++)
        if (backend_failed(st, st->remote[k]) == CPH_DONE)
            return CPH_DONE;
    return CPH_NEXT;
}

/* Records the answer for the redis limits; CPH_DONE when it answered the request (429, or 503 for a closed limit). */
static int remote_decided(rl_state_t *st, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res)
{
    if (status != CPH_REDIS_OK || res == NULL)
        return remote_failed(st);
    if (refused < st->num_remote)
        return decided(st, st->remote[refused], &res[refused]); /* nothing of the stack was charged */
    for (size_t k = 0; k != st->num_remote; k++)
        decided(st, st->remote[k], &res[k]);
    return CPH_NEXT;
}

static void on_redis(void *ud, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res)
{
    rl_ticket_t *t = ud;
    rl_state_t *st = t->st;

    free(t);
    if (st == NULL)
        return;
    st->ticket = NULL;
    if (remote_decided(st, status, refused, res) == CPH_NEXT && finish(st) == CPH_NEXT)
        cph_pipeline_resume(st->r);
}

/* Submits the redis limits in one call: CPH_DONE while the answer is pending; without Redis, as remote_failed. */
static int submit(rl_state_t *st)
{
    const cph_redis_config_t *cfg = cph_rl_redis_config(st->r->snap);
    const char *keys[CPH_RL_MAX_PER_LIST];
    size_t lens[CPH_RL_MAX_PER_LIST];
    const cph_ratelimit_spec_t *specs[CPH_RL_MAX_PER_LIST];
    rl_ticket_t *t;

    if (cfg == NULL || st->r->worker == NULL)
        return remote_failed(st);
    for (size_t k = 0; k != st->num_remote; k++) {
        keys[k] = st->remote_key[k].base;
        lens[k] = st->remote_key[k].len;
        specs[k] = &st->remote[k]->spec;
    }
    if ((t = malloc(sizeof(*t))) == NULL)
        cph_fatal(MODULE, "out of memory");
    t->st = st;
    st->ticket = t;
    cph_redis_gcra_stack(st->r->worker, st->num_remote, keys, lens, specs, on_redis, t); /* never answers inside */
    return CPH_DONE;
}

/* Sorts the limits that apply (their key is present) into local and redis ones, with their keys. */
static void collect(rl_state_t *st)
{
    for (size_t k = 0; k != st->set->num_limits && k != CPH_RL_MAX_PER_LIST; k++) {
        const cph_rl_limit_t *l = &st->set->limits[k];
        h2o_iovec_t key = limit_key(st->r, l);
        if (key.base == NULL)
            continue;
        if (l->redis) {
            st->remote[st->num_remote] = l;
            st->remote_key[st->num_remote++] = redis_key(st->r, l, key);
        } else {
            st->local[st->num_local] = l;
            st->items[st->num_local++] = (cph_ratelimit_item_t){l->local_id, key.base, key.len, &l->spec, {0}};
        }
    }
}

static int is_login(const cph_req_t *r)
{
    return h2o_memis(r->path.base, r->path.len, H2O_STRLIT("/auth/login")) &&
           cph_method_from(r->req->input.method.base, r->req->input.method.len) == CPH_METHOD_POST;
}

int cph_ratelimit_on_req(cph_req_t *r)
{
    const cph_rl_set_t *set;
    rl_state_t *st;

    if (r->route != NULL && r->route == r->snap->auth_api_route)
        set = is_login(r) ? cph_rl_login(r->snap) : NULL;
    else
        set = cph_rl_select(r->snap, r->route, r->rule);
    if (set == NULL || set->num_limits == 0)
        return CPH_NEXT;
    st = h2o_mem_alloc_shared(&r->req->pool, sizeof(*st), on_state_dispose);
    *st = (rl_state_t){.r = r, .set = set};
    collect(st);
    if (st->num_remote == 0)
        return finish(st);
    /* a local refusal is known before any redis token is spent; the locals are charged last */
    if (decide_local(st, 0) == CPH_DONE || submit(st) == CPH_DONE)
        return CPH_DONE;
    return finish(st);
}
