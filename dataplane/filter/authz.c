/*
 * filter/authz: the endpoint authorization stage. Runs after filter/authn.c has turned the request's credential (if
 * any) into r->principal; an invalid credential was already answered there (decision step 0). Decides with the
 * matched route's rules (compile/authz.c) on the upstream path without its query, counts the outcome and the
 * would-be outcome of the best shadow rule in this worker's counters, and answers 401 or 403 itself.
 */
#include <string.h>
#include "dataplane/compile/authz.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/authz"

static void count(cph_req_t *r, cph_authz_decision_t d, const cph_authz_trace_t *trace)
{
    cph_worker_stats_t *stats = r->worker->stats;

    if (stats == NULL)
        return;
    if ((unsigned)d < CPH_STATS_AUTHZ_OUTCOMES)
        cph_counter_add(&stats->authz_decisions[d], 1);
    if (trace->shadow_rule != NULL) {
        uint32_t id = trace->shadow_rule->stat_id < CPH_STATS_MAX_ENDPOINTS ? trace->shadow_rule->stat_id : 0;
        int outcome = trace->shadow_decision == CPH_AUTHZ_ALLOW ? CPH_STATS_SHADOW_ALLOW : CPH_STATS_SHADOW_DENY;
        cph_counter_add(&stats->authz_shadow[id][outcome], 1);
    }
}

int cph_authz_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    const char *q = r->upstream_path.len != 0 ? memchr(r->upstream_path.base, '?', r->upstream_path.len) : NULL;
    size_t path_len = q != NULL ? (size_t)(q - r->upstream_path.base) : r->upstream_path.len;
    cph_authz_trace_t trace;
    cph_authz_decision_t d;

    if (r->route == NULL) { /* the router always sets it; built-in routes jump over this stage */
        cph_respond_error_r(r, 500, "internal", "The gateway could not handle the request");
        return CPH_DONE;
    }
    d = cph_authz_decide(r->snap, r->route, cph_method_from(req->input.method.base, req->input.method.len), r->upstream_path.base,
                         path_len, &r->principal, &trace);
    count(r, d, &trace);
    r->rule = trace.rule;
    switch (d) {
    case CPH_AUTHZ_ALLOW:
        return CPH_NEXT;
    case CPH_AUTHZ_UNAUTHENTICATED:
        cph_respond_401(r, "unauthenticated", "A valid credential is required", NULL);
        return CPH_DONE;
    default:
        cph_respond_error_r(r, 403, "forbidden", "The credential does not allow this request");
        return CPH_DONE;
    }
}
