/*
 * pipeline: the one h2o handler of the data plane. It wraps each request in a cph_req_t, pins the worker's current
 * snapshot to it and runs the stages of shared/DESIGN.md section 3 in order.
 *
 * The cph_req_t is a shared object of req->pool, so its dispose runs when h2o clears the pool, after the response
 * went out and was logged: that is where the request's metrics (core/observe.c) and access-log line (core/accesslog.c)
 * are recorded, the snapshot reference is dropped and the route x status-class counter is bumped (one writer per
 * counter: this worker). Adding a stage is adding one entry to `stages`.
 */
#include <time.h>
#include "proto/log.h"
#include "dataplane/core/accesslog.h"
#include "dataplane/core/observe.h"
#include "dataplane/core/pipeline.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/core/pipeline"

static const cph_stage_fn stages[] = {
    cph_sanitize_on_req,
    cph_builtin_on_req,
    cph_router_on_req,
    cph_edge_on_req,
    cph_authn_on_req,
    cph_authz_on_req,
    cph_ratelimit_on_req,
    cph_pdf_on_req,
    cph_aggregate_on_req,
    cph_websocket_on_req,
    cph_cache_on_req,
    cph_proxy_on_req,
};
#define NUM_STAGES (sizeof(stages) / sizeof(stages[0]))

static void on_dispose(void *p)
{
    cph_req_t *r = p;
    int status = r->req->res.status, cls = status >= 100 && status <= 599 ? status / 100 : 0;
    uint32_t route = r->route != NULL ? r->route->metric_id : 0;

    if (route >= CPH_STATS_MAX_ROUTES)
        route = 0;
    if (r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->responses[route][cls], 1);
    if (r->worker->stats != NULL || cph_accesslog_enabled) { /* one clock read, shared; before the snapshot goes */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        if (r->worker->stats != NULL)
            cph_observe_request_done(r, now_ns);
        if (cph_accesslog_enabled)
            cph_accesslog_record(r, now_ns);
    }
    if (r->snap != NULL)
        cph_snapshot_release(r->snap);
}

void cph_pipeline_add_response_header(cph_req_t *r, const char *name, size_t name_len, const char *value, size_t value_len)
{
    h2o_iovec_t *n = h2o_mem_alloc_pool(&r->req->pool, sizeof(*n));

    *n = h2o_iovec_init(name, name_len);
    h2o_vector_reserve(&r->req->pool, &r->res_extra, r->res_extra.size + 1);
    r->res_extra.entries[r->res_extra.size++] = (h2o_header_t){n, NULL, h2o_iovec_init(value, value_len)};
}

int cph_pipeline_overrides(const cph_req_t *r, const char *name, size_t len)
{
    if (h2o_memis(name, len, H2O_STRLIT("vary")))
        return 0; /* the upstream's Vary and ours (Origin) both hold: two Vary headers combine */
    for (size_t i = 0; i != r->res_extra.size; ++i)
        if (h2o_memis(r->res_extra.entries[i].name->base, r->res_extra.entries[i].name->len, name, len))
            return 1;
    return 0;
}

void cph_pipeline_response_headers(cph_req_t *r)
{
    h2o_req_t *req = r->req;

    for (size_t i = 0; i != r->res_extra.size; ++i) {
        const h2o_header_t *h = &r->res_extra.entries[i];
        h2o_add_header_by_str(&req->pool, &req->res.headers, h->name->base, h->name->len, 0, NULL, h->value.base, h->value.len);
    }
}

void cph_pipeline_goto(cph_req_t *r, cph_stage_fn stage)
{
    for (size_t i = 0; i != NUM_STAGES; ++i) {
        if (stages[i] == stage) {
            r->next_stage = i;
            return;
        }
    }
    cph_fatal(MODULE, "cph_pipeline_goto: not a stage");
}

void cph_pipeline_resume(cph_req_t *r)
{
    while (r->next_stage < NUM_STAGES) {
        cph_stage_fn fn = stages[r->next_stage++];
        if (fn(r) == CPH_DONE)
            return;
    }
    /* every stage passed the request on: a stage list without a terminal stage is our bug */
    cph_log_error(MODULE, "no stage answered the request");
    cph_respond_error_r(r, 500, "internal", "The gateway could not handle the request");
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    cph_worker_t *w = cph_worker_from_ctx(req->conn->ctx);
    cph_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_dispose);

    (void)self;
    *r = (cph_req_t){.req = req, .worker = w, .snap = w->snap};
    if (r->snap == NULL) {
        cph_respond_error(req, 503, "no_config", "The gateway has no configuration yet");
        return 0;
    }
    cph_snapshot_retain(r->snap);
    cph_pipeline_resume(r);
    return 0;
}

void cph_pipeline_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}
