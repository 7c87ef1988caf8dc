/*
 * filter/cache: the response cache stage (docs/dataplane.md "Response cache"), after ratelimit and before the proxy, plus the
 * capture the proxy runs while it streams a miss's response.
 *
 * Only GET and HEAD of a route with policies.cache take part, and only while the snapshot gives the store a budget.
 * A request with Cache-Control no-store, or with a credential (Authorization, X-API-Key, Cookie) on a route that does
 * not share authenticated responses, bypasses the cache both ways (on a route that does, such a request is answered
 * only from an entry the upstream marked public or s-maxage, and its response is stored only when so marked); Cache-Control or
 * Pragma no-cache skips the lookup but lets the response refresh the entry. A fresh entry is answered here from memory (Age,
 * X-Cache: HIT; a matching If-None-Match gets 304 without a body; HEAD gets the headers only). A miss goes on to the proxy with
 * X-Cache: MISS; when the response head arrives the proxy asks cph_cache_capture_begin whether it may be stored, copies the body
 * chunks into the capture up to the route's max_body_bytes, and ends it when the body is complete (stored) or not.
 *
 * The key is the route's stable metric id, the lower-cased authority without the scheme's default port and the upstream
 * path with its query, so the purge message (route + upstream path prefix) finds every variant; entries of a route
 * whose policy was removed are simply never looked up again and age out of the LRU.
 *
 * With gateway.cache.backend "redis" the entries live in Redis (core/cache_redis.c), shared by every data plane: the
 * lookup is asynchronous (the stage returns CPH_DONE and the answer, on this worker's loop, serves the hit or resumes
 * the pipeline; a resource that varies costs a second lookup for its variant), and a completed response is stored
 * fire-and-forget. The same entry structure, rules and serve() are used for both backends. A Redis error or timeout is a
 * miss that is not stored (counted error), never an error response. As in filter/ratelimit.c, the pending call's user
 * data is a malloc'd ticket that the request's pool detaches, so an answer for a request gone meanwhile touches nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "proto/log.h"
#include "dataplane/compile/cache.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/cache.h"
#include "dataplane/core/cache_redis.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/filter/cache"

/* The X-Cache value of a request whose Redis lookup failed: its response is not stored (compared by address). */
static const char MISS_AFTER_ERROR[] = "MISS";

typedef enum en_req_class_t {
    CLASS_BYPASS = 0, /* neither looked up nor stored */
    CLASS_REFRESH,    /* no-cache: not looked up, may be stored */
    CLASS_LOOKUP
} req_class_t;

struct st_cph_cache_capture_t {
    cph_cache_entry_t *entry;
    cph_worker_stats_t *stats;
    uint32_t route_id;
    size_t max_body;
    cph_worker_t *worker; /* redis backend: the store is submitted from this worker */
    uint64_t max_ttl_s;
    char *route_name; /* redis backend: a copy (the key's namespace); NULL with the memory backend */
};

static void count(cph_worker_stats_t *stats, uint32_t route_id, cph_cache_outcome_t outcome)
{
    if (stats != NULL)
        cph_counter_add(&stats->cache[route_id < CPH_STATS_MAX_ROUTES ? route_id : 0][outcome], 1);
}

static cph_worker_stats_t *stats_of(const cph_req_t *r)
{
    return r->worker != NULL ? r->worker->stats : NULL;
}

/* Every value of a request header joined is not needed here: a directive in any line counts. */
static int header_has(const h2o_headers_t *headers, const char *name, size_t name_len, const char *directive)
{
    for (size_t i = 0; i != headers->size; ++i) {
        const h2o_header_t *h = &headers->entries[i];
        if (cph_lc_eq(h->name->base, h->name->len, name, name_len) &&
            (directive == NULL || cph_cache_has_directive(h->value.base, h->value.len, directive)))
            return 1;
    }
    return 0;
}

static int has_credential(const h2o_headers_t *headers)
{
    return header_has(headers, H2O_STRLIT("authorization"), NULL) || header_has(headers, H2O_STRLIT("x-api-key"), NULL) ||
           header_has(headers, H2O_STRLIT("cookie"), NULL);
}

/* How the cache treats this request; *need_shared: a response may be stored only when public or s-maxage. */
static req_class_t classify(const cph_req_t *r, int *need_shared)
{
    const cph_cache_policy_t *pol = r->route->cache;
    const h2o_headers_t *headers = &r->req->headers;
    uint32_t m = cph_method_from(r->req->input.method.base, r->req->input.method.len);

    *need_shared = 0;
    if ((m & (CPH_METHOD_GET | CPH_METHOD_HEAD)) == 0 || (!r->snap->cache_redis && r->snap->cache_max_bytes == 0) ||
        (r->snap->cache_redis && r->worker == NULL) || header_has(headers, H2O_STRLIT("cache-control"), "no-store"))
        return CLASS_BYPASS;
    if (has_credential(headers)) {
        if (!pol->share_authenticated)
            return CLASS_BYPASS;
        *need_shared = 1;
    }
    if (header_has(headers, H2O_STRLIT("cache-control"), "no-cache") || header_has(headers, H2O_STRLIT("pragma"), "no-cache"))
        return CLASS_REFRESH;
    return CLASS_LOOKUP;
}

/* The authority lower-cased without the scheme's default port, in the request's pool. */
static h2o_iovec_t key_host(cph_req_t *r)
{
    return cph_cache_key_host(&r->req->pool, r->req->input.authority, r->req->input.scheme == &H2O_URL_SCHEME_HTTPS);
}

/* Whether the Redis lookup of this request failed (its response must not be stored). */
static int lookup_failed(const cph_req_t *r)
{
    for (size_t i = 0; i != r->res_extra.size; ++i)
        if (r->res_extra.entries[i].value.base == MISS_AFTER_ERROR)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- hit */

static void on_entry_dispose(void *p)
{
    cph_cache_entry_release(*(cph_cache_entry_t **)p);
}

static void add_age(cph_req_t *r, uint64_t age_s)
{
    char *buf = h2o_mem_alloc_pool(&r->req->pool, 24);
    int n = snprintf(buf, 24, "%llu", (unsigned long long)age_s);

    cph_pipeline_add_response_header(r, H2O_STRLIT("age"), buf, (size_t)n);
    cph_pipeline_add_response_header(r, H2O_STRLIT("x-cache"), H2O_STRLIT("HIT"));
}

/* Answers from e (retained until the request's pool is cleared): 304 when If-None-Match matches its ETag. */
static void serve(cph_req_t *r, cph_cache_entry_t *e, uint64_t age_s)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_req_t *req = r->req;
    cph_cache_entry_t **hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), on_entry_dispose);
    ssize_t inm = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    int not_modified = inm != -1 && cph_cache_etag_match(req->headers.entries[inm].value, e->etag);
    h2o_iovec_t body = h2o_iovec_init(e->body, e->body_len);

    *hold = e;
    add_age(r, age_s);
    req->res.status = not_modified ? 304 : e->status;
    req->res.reason = not_modified ? "Not Modified" : e->reason.base;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT(CPH_SERVER_NAME));
    for (size_t i = 0; i != e->num_headers; ++i) {
        const cph_cache_header_t *h = &e->headers[i];
        if (not_modified && !h2o_memis(h->name.base, h->name.len, H2O_STRLIT("etag")))
            continue;
        if (r->res_extra.size != 0 && cph_pipeline_overrides(r, h->name.base, h->name.len))
            continue;
        h2o_add_header_by_str(&req->pool, &req->res.headers, h->name.base, h->name.len, 1, NULL, h->value.base, h->value.len);
    }
    cph_pipeline_response_headers(r);
    if (!not_modified && e->status != 204) /* SIZE_MAX: h2o writes no Content-Length (a 204 or 304 has no body) */
        req->res.content_length = e->body_len;
    count(stats_of(r), r->route->metric_id, not_modified ? CPH_CACHE_OUTCOME_REVALIDATED_304 : CPH_CACHE_OUTCOME_HIT);
    int send_body =
        !not_modified && body.len != 0 && cph_method_from(req->input.method.base, req->input.method.len) != CPH_METHOD_HEAD;
    h2o_start_response(req, &generator);
    h2o_send(req, send_body ? &body : NULL, send_body ? 1 : 0, H2O_SEND_STATE_FINAL); /* nothing touches r after it */
}

/* ---------------------------------------------------------------- the redis backend's lookup */

typedef struct st_lookup_ticket_t lookup_ticket_t;

typedef struct st_lookup_state_t {
    cph_req_t *r;
    int need_shared;
    int variant;             /* the pending call looks a variant up */
    lookup_ticket_t *ticket; /* the pending call, or NULL */
} lookup_state_t;

struct st_lookup_ticket_t {
    lookup_state_t *st; /* NULL once the request's pool was cleared */
};

static void on_lookup_state_dispose(void *p)
{
    lookup_state_t *st = p;

    if (st->ticket != NULL)
        st->ticket->st = NULL;
}

static void on_redis_answer(void *ud, cph_cache_redis_result_t result, cph_cache_entry_t *e, uint64_t age_s, h2o_iovec_t vary);

static void redis_lookup(lookup_state_t *st, h2o_iovec_t vary, h2o_iovec_t values)
{
    cph_req_t *r = st->r;
    lookup_ticket_t *t = malloc(sizeof(*t));

    if (t == NULL)
        cph_fatal(MODULE, "out of memory");
    t->st = st;
    st->ticket = t;
    cph_cache_redis_lookup(r->worker, r->route->name, key_host(r), r->upstream_path, vary, values, on_redis_answer, t);
}

static void miss(cph_req_t *r, int error)
{
    count(stats_of(r), r->route->metric_id, error ? CPH_CACHE_OUTCOME_ERROR : CPH_CACHE_OUTCOME_MISS);
    cph_pipeline_add_response_header(r, H2O_STRLIT("x-cache"), error ? MISS_AFTER_ERROR : "MISS", 4);
}

static void on_redis_answer(void *ud, cph_cache_redis_result_t result, cph_cache_entry_t *e, uint64_t age_s, h2o_iovec_t vary)
{
    lookup_ticket_t *t = ud;
    lookup_state_t *st = t->st;

    free(t);
    if (st == NULL) {
        cph_cache_entry_release(e); /* the request is gone */
        return;
    }
    st->ticket = NULL;
    if (result == CPH_CACHE_REDIS_VARY && st->variant)
        result = CPH_CACHE_REDIS_MISS; /* a variant's key holds entries only */
    if (result == CPH_CACHE_REDIS_VARY) {
        st->variant = 1;
        h2o_iovec_t values = cph_cache_vary_values(vary, &st->r->req->headers);
        redis_lookup(st, vary, values);
        free(values.base);
        return;
    }
    if (e != NULL && st->need_shared && !e->shared_ok) {
        cph_cache_entry_release(e);
        e = NULL;
    }
    if (e != NULL) {
        serve(st->r, e, age_s);
        return;
    }
    miss(st->r, result == CPH_CACHE_REDIS_ERROR);
    cph_pipeline_resume(st->r);
}

int cph_cache_on_req(cph_req_t *r)
{
    int need_shared;
    req_class_t cls;
    uint64_t age_s;

    if (r->route == NULL || r->route->cache == NULL)
        return CPH_NEXT;
    if ((cls = classify(r, &need_shared)) == CLASS_BYPASS) {
        count(stats_of(r), r->route->metric_id, CPH_CACHE_OUTCOME_BYPASS);
        return CPH_NEXT;
    }
    if (cls == CLASS_LOOKUP && r->snap->cache_redis) {
        lookup_state_t *st = h2o_mem_alloc_shared(&r->req->pool, sizeof(*st), on_lookup_state_dispose);
        *st = (lookup_state_t){.r = r, .need_shared = need_shared};
        redis_lookup(st, h2o_iovec_init(NULL, 0), h2o_iovec_init(NULL, 0));
        return CPH_DONE; /* the answer never comes inside the call */
    }
    if (cls == CLASS_LOOKUP) {
        cph_cache_entry_t *e = cph_cache_lookup(cph_cache_default(), r->route->metric_id, key_host(r), r->upstream_path,
                                                &r->req->headers, cph_cache_now_ms(), &age_s);
        if (e != NULL && need_shared && !e->shared_ok) {
            cph_cache_entry_release(e); /* stored for anonymous requests only: never shown to a credential */
            e = NULL;
        }
        if (e != NULL) {
            serve(r, e, age_s);
            return CPH_DONE;
        }
    }
    miss(r, 0);
    return CPH_NEXT;
}

/* ---------------------------------------------------------------- capture (filter/proxy.c) */

cph_cache_capture_t *cph_cache_capture_begin(cph_req_t *r, int status, const char *reason, size_t reason_len,
                                             const struct phr_header *headers, size_t num_headers)
{
    const cph_cache_policy_t *pol = r->route->cache;
    cph_cache_resinfo_t info;
    cph_cache_capture_t *cap;
    int need_shared;

    if (cph_method_from(r->req->input.method.base, r->req->input.method.len) != CPH_METHOD_GET ||
        classify(r, &need_shared) == CLASS_BYPASS || lookup_failed(r))
        return NULL; /* a HEAD has no body to store; a bypass or a failed lookup was counted by the stage */
    cph_cache_response_info(status, headers, num_headers, pol->ttl_s, pol->max_ttl_s, need_shared, (uint64_t)time(NULL), &info);
    if (info.storable && info.content_length != SIZE_MAX && info.content_length > pol->max_body_bytes)
        info.storable = 0;
    if (!info.storable) {
        count(stats_of(r), r->route->metric_id, CPH_CACHE_OUTCOME_NOT_STORABLE);
        return NULL;
    }
    if ((cap = malloc(sizeof(*cap))) == NULL)
        cph_fatal(MODULE, "out of memory");
    cap->entry = cph_cache_entry_new(r->route->metric_id, key_host(r), r->upstream_path, &r->req->headers, &info, status,
                                     h2o_iovec_init(reason, reason_len), headers, num_headers);
    cap->stats = stats_of(r);
    cap->route_id = r->route->metric_id;
    cap->max_body = pol->max_body_bytes;
    cap->worker = r->worker;
    cap->max_ttl_s = pol->max_ttl_s;
    cap->route_name = NULL;
    if (r->snap->cache_redis && (cap->route_name = strdup(r->route->name)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return cap;
}

int cph_cache_capture_append(cph_cache_capture_t *cap, const char *bytes, size_t len)
{
    if (cph_cache_entry_append(cap->entry, bytes, len, cap->max_body) == 0)
        return 0;
    cph_cache_capture_end(cap, 0);
    return -1;
}

void cph_cache_capture_end(cph_cache_capture_t *cap, int complete)
{
    int stored = 0;

    if (complete && cap->route_name != NULL) {
        stored = cph_cache_redis_store(cap->worker, cap->route_name, cap->entry, cap->max_ttl_s) == 0;
        cph_cache_entry_release(cap->entry);
    } else if (complete) {
        stored = cph_cache_insert(cph_cache_default(), cap->entry, cph_cache_now_ms()) == 0; /* takes the reference */
    } else {
        cph_cache_entry_release(cap->entry);
    }
    count(cap->stats, cap->route_id, stored ? CPH_CACHE_OUTCOME_STORED : CPH_CACHE_OUTCOME_NOT_STORABLE);
    free(cap->route_name);
    free(cap);
}
