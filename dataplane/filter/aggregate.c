/*
 * filter/aggregate: the stage of routes of kind "aggregate" (PROTOCOL.md section 5, "aggregate route";
 * docs/dataplane.md "Aggregate routes"). One client request fans out to the route's backends, all at once on the
 * worker's loop, and their JSON objects are merged into one answer (core/aggregate.c).
 *
 * Each backend call goes through the proxy's machinery as a request of its own service would: a copy of the client's
 * cph_req_t whose route is the backend's compiled proxy route (core/aggregate.h) and whose upstream path is the
 * substituted template is what filter/proxy_balance.h (admission, pick, breaker and outlier outcome, retries and their
 * budget, error counters) and filter/proxy_head.h (the head: client headers, X-Forwarded-*, identity headers, the
 * service's credentials) read. The method is the backend's (GET, or POST with the client's body), the client's
 * content negotiation and conditional headers are not passed on (the gateway needs a plain JSON body) and Accept is
 * application/json.
 *
 * Each call is one buffered exchange of filter/fetch.c: the proxy's keep-alive pools (a backend reuses the
 * connections proxied requests and earlier calls left idle), the backend route's connect, first-byte, idle and total
 * timeouts and retry policy, the body capped at CPH_AGGREGATE_BODY_MAX. The deadline's timer is an entry on the
 * worker's timeout list of its duration (cph_ws_timeout, core/websocket.h), never a list of the request's own.
 *
 * A backend whose service's credentials could not be resolved (core/credentials.h) fails without being called
 * ("credentials_unavailable"), as a proxied request gets 503 for it.
 *
 * Ending: a failed required backend answers 502 at once, cancelling the others; when every call is over the merged
 * object is answered (200, "_errors" and X-Cephalo-Partial for failed optional ones). At the deadline the running
 * calls are cancelled and count as failed with "deadline": a required one among them answers 504, and so does any of
 * them when on_deadline is "error"; else the partial answer goes out. A client that leaves cancels everything (the
 * request pool's dispose). Cancelled calls are judged like the proxy judges them: ABANDONED when the client left or
 * another backend decided, TIMEOUT at the deadline.
 */
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/aggregate.h"
#include "dataplane/core/credentials.h"
#include "dataplane/core/respond.h"
#include "dataplane/core/websocket.h"
#include "dataplane/filter/fetch.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_balance.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/filter/aggregate"

enum { CALL_IDLE = 0, CALL_RUNNING, CALL_OK, CALL_FAILED };

struct st_agg_t;

typedef struct st_call_t {
    struct st_agg_t *agg;
    size_t index;
    const cph_aggregate_backend_t *b;
    cph_req_t sub;      /* the client's request as a proxy request of the backend's route and path */
    cph_fetch_t *fetch; /* the exchange (filter/fetch.h) while running */
    int state;
    int fail_status;       /* the backend's status when it answered one, else 0 */
    const char *fail_kind; /* why it failed ("timeout", "bad_status", ...) */
} call_t;

typedef struct st_agg_t {
    cph_req_t *r;
    const cph_aggregate_route_t *cfg;
    cph_aggregate_merge_t *merge;
    call_t calls[CPH_AGGREGATE_MAX_BACKENDS];
    size_t running;
    h2o_timeout_entry_t deadline;
    int starting; /* calls are being started: endings wait for the loop to finish */
    int answered;
    const call_t *required_failed; /* the first required backend that failed */
} agg_t;

/* Cancels every running call (a decision was made without them, or the client left). */
static void cancel_running(agg_t *agg, cph_outcome_t outcome, const char *kind)
{
    for (size_t i = 0; i != agg->cfg->num_backends; ++i) {
        call_t *c = &agg->calls[i];
        if (c->state != CALL_RUNNING)
            continue;
        c->state = CALL_FAILED;
        agg->running--;
        cph_fetch_cancel(c->fetch, outcome);
        if (kind != NULL)
            cph_aggregate_merge_fail(agg->merge, i, 0, kind);
    }
}

/* ---------------------------------------------------------------- answers */

static void send_body(agg_t *agg, int status, h2o_iovec_t body, const char *partial, size_t partial_len)
{
    cph_req_t *r = agg->r;
    h2o_req_t *req = r->req;

    agg->answered = 1;
    if (h2o_timeout_is_linked(&agg->deadline))
        h2o_timeout_unlink(&agg->deadline);
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : status == 502 ? "Bad Gateway" : "Gateway Timeout";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT(CPH_SERVER_NAME));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (partial_len != 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-cephalo-partial"), 0, NULL, partial, partial_len);
    cph_pipeline_response_headers(r);
    h2o_send_inline(req, body.base, body.len);
}

/* 502 (a required backend failed) or 504 (the deadline passed while c ran) naming the backend. */
static void answer_backend_error(agg_t *agg, const call_t *c, int status, int backend_status, const char *kind)
{
    h2o_iovec_t body;

    cancel_running(agg, CPH_OUTCOME_ABANDONED, NULL);
    if (status == 502)
        body = cph_aggregate_error_body(&agg->r->req->pool, "aggregate_backend_failed", "A required backend of the route failed",
                                        c->b->name, backend_status, kind, agg->r->request_id);
    else
        body = cph_aggregate_error_body(&agg->r->req->pool, "aggregate_timeout", "A backend did not answer within the deadline",
                                        c->b->name, 0, "deadline", agg->r->request_id);
    send_body(agg, status, body, NULL, 0);
}

/* The merged object, with X-Cephalo-Partial naming the failed optional backends. */
static void answer_merged(agg_t *agg)
{
    h2o_mem_pool_t *pool = &agg->r->req->pool;
    size_t len, plen = 0;
    char *text = cph_aggregate_merge_build(agg->merge, CPH_AGGREGATE_MERGED_MAX, &len), *partial;

    if (text == NULL) {
        agg->answered = 1;
        if (h2o_timeout_is_linked(&agg->deadline))
            h2o_timeout_unlink(&agg->deadline);
        cph_respond_error_r(agg->r, 502, "aggregate_too_large", "The merged answer of the backends is too large");
        return;
    }
    h2o_iovec_t body = h2o_strdup(pool, text, len);
    free(text);
    partial = h2o_mem_alloc_pool(pool, CPH_AGGREGATE_MAX_BACKENDS * 66);
    for (size_t i = 0; i != agg->cfg->num_backends; ++i) {
        if (agg->calls[i].state != CALL_FAILED)
            continue;
        size_t n = strlen(agg->cfg->backends[i].name);
        if (plen != 0)
            partial[plen++] = ',';
        memcpy(partial + plen, agg->cfg->backends[i].name, n);
        plen += n;
    }
    send_body(agg, 200, body, partial, plen);
}

/* Once nothing runs any more (and the calls are all started): the answer. */
static void maybe_answer(agg_t *agg)
{
    if (agg->answered || agg->starting)
        return;
    if (agg->required_failed != NULL) {
        const call_t *c = agg->required_failed;
        answer_backend_error(agg, c, 502, c->fail_status, c->fail_kind);
        return;
    }
    if (agg->running == 0)
        answer_merged(agg);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    agg_t *agg = H2O_STRUCT_FROM_MEMBER(agg_t, deadline, entry);
    const call_t *late = NULL;

    for (size_t i = 0; i != agg->cfg->num_backends && late == NULL; ++i)
        if (agg->calls[i].state == CALL_RUNNING && (agg->cfg->on_deadline_error || agg->calls[i].b->required))
            late = &agg->calls[i];
    for (size_t i = 0; i != agg->cfg->num_backends; ++i)
        if (agg->calls[i].state == CALL_RUNNING)
            cph_proxy_count_error(&agg->calls[i].sub, CPH_UPSTREAM_ERR_TIMEOUT);
    cancel_running(agg, CPH_OUTCOME_TIMEOUT, "deadline");
    if (late != NULL)
        answer_backend_error(agg, late, 504, 0, "deadline");
    else
        maybe_answer(agg);
}

/* ---------------------------------------------------------------- one backend call */

/* The call ended in failure: recorded for the merge; a required backend decides the answer. */
static void call_failed(call_t *c, int status, const char *kind)
{
    agg_t *agg = c->agg;

    c->state = CALL_FAILED;
    c->fail_status = status;
    c->fail_kind = kind;
    cph_aggregate_merge_fail(agg->merge, c->index, status, kind);
    if (c->b->required && agg->required_failed == NULL)
        agg->required_failed = c;
    maybe_answer(agg);
}

/* The merge's name for a fetch that produced no answer. */
static const char *failure_kind(const cph_fetch_result_t *res)
{
    switch (res->error) {
    case CPH_FETCH_CREDENTIALS:
        return CPH_CREDENTIALS_UNAVAILABLE_CODE;
    case CPH_FETCH_NO_TARGET:
        return "no_upstream";
    case CPH_FETCH_OVERLOADED:
        return "upstream_overloaded";
    case CPH_FETCH_NO_HEALTHY:
        return "no_healthy_upstream";
    case CPH_FETCH_CONNECT:
        return "connect_failed";
    case CPH_FETCH_TIMEOUT:
        return "timeout";
    case CPH_FETCH_TOO_LARGE:
        return res->status < 200 || res->status > 299 ? "bad_status" : "too_large";
    default:
        return "bad_response";
    }
}

/* The fetch is over: a complete 2xx JSON object is the backend's part of the answer. */
static void on_fetched(void *data, const cph_fetch_result_t *res)
{
    call_t *c = data;
    agg_t *agg = c->agg;

    if (c->state != CALL_RUNNING)
        return;
    agg->running--;
    c->fetch = NULL;
    if (res->error != CPH_FETCH_OK) {
        if (res->error != CPH_FETCH_CREDENTIALS && res->error != CPH_FETCH_TOO_LARGE)
            cph_log_warn(MODULE, "backend %s (service %s): %s", c->b->name, c->b->route.service->name, failure_kind(res));
        call_failed(c, res->status, failure_kind(res));
        return;
    }
    if (res->status < 200 || res->status > 299) {
        call_failed(c, res->status, "bad_status");
        return;
    }
    if (res->status == 204 ? cph_aggregate_merge_set(agg->merge, c->index, H2O_STRLIT("{}")) != 0 /* no content: nothing to merge */
                           : cph_aggregate_merge_set(agg->merge, c->index, res->body.base, res->body.len) != 0) {
        call_failed(c, res->status, "invalid_json");
        return;
    }
    c->state = CALL_OK;
    maybe_answer(agg);
}

/* ---------------------------------------------------------------- request head */

/* Client headers a backend must not get: content negotiation and conditions (the gateway reads a plain JSON body),
 * and for a GET the body's description. */
static int skip_header(const h2o_header_t *h, int post)
{
    const char *n = h->name->base;
    size_t len = h->name->len;

    if (CPH_LC_EQ(n, len, "accept") || CPH_LC_EQ(n, len, "accept-encoding") || CPH_LC_EQ(n, len, "range") ||
        CPH_LC_EQ(n, len, "if-range") || CPH_LC_EQ(n, len, "if-match") || CPH_LC_EQ(n, len, "if-none-match") ||
        CPH_LC_EQ(n, len, "if-modified-since") || CPH_LC_EQ(n, len, "if-unmodified-since"))
        return 1;
    return !post && (CPH_LC_EQ(n, len, "content-type") || CPH_LC_EQ(n, len, "content-encoding"));
}

/* The headers every backend call forwards (cph_proxy_build_head_for adds the rest): the client's but the skipped
 * ones, and Accept: application/json. One list for the GET backends and one for the POST ones, per request. */
static h2o_headers_t *backend_headers(cph_req_t *r, int post)
{
    h2o_req_t *req = r->req;
    h2o_headers_t *mine = h2o_mem_alloc_pool(&req->pool, sizeof(*mine));

    *mine = (h2o_headers_t){NULL, 0, 0};
    h2o_vector_reserve(&req->pool, mine, req->headers.size + 1);
    for (size_t i = 0; i != req->headers.size; ++i)
        if (!skip_header(&req->headers.entries[i], post))
            mine->entries[mine->size++] = req->headers.entries[i];
    h2o_add_header(&req->pool, mine, H2O_TOKEN_ACCEPT, NULL, H2O_STRLIT("application/json"));
    return mine;
}

/* ---------------------------------------------------------------- starting */

/* Starts backend i as a fetch of its route; a failure before any I/O ends the call at once (on_fetched). */
static void start_call(agg_t *agg, size_t i, const h2o_iovec_t *params, h2o_headers_t *const headers[2])
{
    call_t *c = &agg->calls[i];
    const cph_aggregate_backend_t *b = &agg->cfg->backends[i];
    cph_req_t *r = agg->r;
    cph_fetch_req_t freq = {.max_body = CPH_AGGREGATE_BODY_MAX, .cb = on_fetched, .data = c};

    c->agg = agg;
    c->index = i;
    c->b = b;
    c->sub = *r;
    c->sub.route = &b->route;
    c->sub.upstream_path = cph_aggregate_substitute(&r->req->pool, &b->path, params, r->query);
    c->state = CALL_RUNNING;
    agg->running++;
    freq.r = &c->sub;
    freq.method = b->post ? h2o_iovec_init(H2O_STRLIT("POST")) : h2o_iovec_init(H2O_STRLIT("GET"));
    freq.headers = headers[b->post ? 1 : 0];
    freq.body = b->post && r->req->entity.base != NULL ? r->req->entity : h2o_iovec_init(NULL, 0);
    cph_fetch_t *f = cph_fetch_start(&freq);
    if (c->state == CALL_RUNNING) /* else it ended inside cph_fetch_start */
        c->fetch = f;
}

/* The request's pool is going away (answered, or the client left): every call and timer ends here at the latest. */
static void on_agg_dispose(void *p)
{
    agg_t *agg = p;

    cancel_running(agg, CPH_OUTCOME_ABANDONED, NULL);
    if (h2o_timeout_is_linked(&agg->deadline))
        h2o_timeout_unlink(&agg->deadline);
    cph_aggregate_merge_free(agg->merge);
}

/* Whether the request may reach the backends: its method fits (a POST backend needs a POST) and its path the pattern. */
static int admit_request(cph_req_t *r, const cph_aggregate_route_t *cfg, h2o_iovec_t *params)
{
    uint32_t method = cph_method_from(r->req->input.method.base, r->req->input.method.len);

    for (size_t i = 0; i != cfg->num_backends; ++i) {
        if (cfg->backends[i].post && method != CPH_METHOD_POST) {
            cph_respond_405_r(r, CPH_METHOD_POST);
            return -1;
        }
    }
    if (!cph_aggregate_pattern_match(&cfg->pattern, r->path.base, r->path.len, params)) {
        cph_respond_error_r(r, 404, "not_found", "No aggregate endpoint matches the path");
        return -1;
    }
    return 0;
}

int cph_aggregate_on_req(cph_req_t *r)
{
    const cph_aggregate_route_t *cfg = r->route->aggregate;
    h2o_iovec_t params[CPH_AGGREGATE_MAX_PARAMS];
    h2o_headers_t *headers[2];
    agg_t *agg;

    if (r->route->kind != CPH_ROUTE_AGGREGATE || cfg == NULL)
        return CPH_NEXT;
    if (admit_request(r, cfg, params) != 0)
        return CPH_DONE;
    agg = h2o_mem_alloc_shared(&r->req->pool, sizeof(*agg), on_agg_dispose);
    memset(agg, 0, sizeof(*agg));
    agg->r = r;
    agg->cfg = cfg;
    agg->merge = cph_aggregate_merge_new(cfg);
    agg->deadline.cb = on_deadline;
    h2o_timeout_link(r->worker->ctx.loop, cph_ws_timeout(r->worker, cfg->deadline_ms), &agg->deadline);
    headers[0] = backend_headers(r, 0);
    headers[1] = backend_headers(r, 1);
    agg->starting = 1;
    for (size_t i = 0; i != cfg->num_backends && agg->required_failed == NULL; ++i)
        start_call(agg, i, params, headers);
    agg->starting = 0;
    maybe_answer(agg);
    return CPH_DONE;
}
