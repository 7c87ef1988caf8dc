/*
 * pipeline: the single h2o handler. Every request runs the stages of shared/DESIGN.md section 3 in order.
 *
 * A stage is `int cph_<stage>_on_req(cph_req_t *r)`: it returns CPH_NEXT to pass the request on, or CPH_DONE when
 * it has answered or taken the request over. An asynchronous stage returns CPH_DONE and later calls
 * cph_pipeline_resume(r), which continues with the stage after it.
 *
 * cph_req_t lives in req->pool as a shared object whose dispose runs after the response is finished and logged: that
 * is where the request's snapshot reference is dropped and the route x status counter is bumped.
 */
#ifndef CPH_PIPELINE_H
#define CPH_PIPELINE_H

#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/principal.h"
#include "dataplane/core/snapshot.h"
#include "dataplane/core/worker.h"

#define CPH_NEXT 0
#define CPH_DONE 1

typedef struct st_cph_req_t {
    h2o_req_t *req;
    cph_worker_t *worker;
    cph_snapshot_t *snap;      /* the snapshot this request started with; retained until dispose */
    h2o_iovec_t path;          /* canonical path (filter/sanitize.c) */
    h2o_iovec_t query;         /* raw query including its leading '?', or empty */
    const cph_route_t *route;  /* matched route (filter/router.c) */
    h2o_iovec_t upstream_path; /* what the upstream receives: path after strip_prefix, plus query */
    h2o_iovec_t request_id;    /* set by filter/sanitize.c; sent upstream and in every error body */
    cph_principal_t principal; /* filter/authn.c; kind NONE when no credential was presented */
    const struct st_cph_authz_rule_t *rule; /* filter/authz.c: the enforced endpoint rule that decided, or NULL */
    int strip_credential;      /* the credential was an API key: X-API-Key / Authorization are not forwarded */
    h2o_headers_t res_extra;   /* headers the stages add to the response (CORS, security, RateLimit-*): lower-case names,
                                  they replace an upstream header of the same name (cph_pipeline_response_headers) */
    size_t next_stage;         /* index of the stage cph_pipeline_resume() runs */
    /* observability (docs/dataplane.md "Observability") */
    h2o_iovec_t traceparent;           /* the W3C traceparent sent upstream: the trace, the gateway's span (filter/sanitize.c) */
    h2o_iovec_t tracestate;            /* the client's tracestate forwarded with it, or empty */
    const struct st_cph_target_t *target; /* the upstream target of the last attempt (filter/proxy.c, filter/fetch.c) */
    uint64_t upstream_ns;              /* time spent in upstream exchanges (connect to last response byte), all attempts */
} cph_req_t;

typedef int (*cph_stage_fn)(cph_req_t *r);

/** Registers the pipeline as the only handler of pathconf (one catch-all path "/"). */
void cph_pipeline_register(h2o_pathconf_t *pathconf);
/**
 * Makes `stage` the next stage to run (a built-in route jumps over router, authn and authz to the proxy); the caller
 * then returns CPH_NEXT. Aborts when stage is not in the list (our bug).
 */
void cph_pipeline_goto(cph_req_t *r, cph_stage_fn stage);
/**
 * Adds a response header (name lower-case, both from a lifetime that outlives the request: a literal, the snapshot or
 * the request's pool) to r->res_extra.
 */
void cph_pipeline_add_response_header(cph_req_t *r, const char *name, size_t name_len, const char *value, size_t value_len);
/** Whether the upstream's response header `name` (lower-case) is replaced by one of r->res_extra. */
int cph_pipeline_overrides(const cph_req_t *r, const char *name, size_t len);
/** Appends r->res_extra to the response headers; every responder (proxy, error answers) calls it once. */
void cph_pipeline_response_headers(cph_req_t *r);
/** Continues an asynchronous request with the stage after the one that suspended it. */
void cph_pipeline_resume(cph_req_t *r);

#endif
