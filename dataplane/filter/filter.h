/*
 * filter: the hot path, one file per stage, in request order (shared/DESIGN.md section 3).
 * Each on_req returns CPH_NEXT or CPH_DONE (core/pipeline.h). filter/ never includes <jansson.h>.
 */
#ifndef CPH_FILTER_H
#define CPH_FILTER_H

#include "dataplane/core/pipeline.h"

/** Canonical path (cph_path_canonicalize) and query split; 400 on a rejected path. */
int cph_sanitize_on_req(cph_req_t *r);
/**
 * The data plane's own routes under /auth (canonical path); POST /auth/login is rate limited per client address first
 * (gateway.login_rate_limit: 429). GET/HEAD /auth/.well-known/jwks.json serves the
 * snapshot's JWKS (200, Cache-Control public, max-age=300), another method there 405, any other /auth path 404
 * not_found. Every other path goes on to the router.
 */
int cph_builtin_on_req(cph_req_t *r);
/** Host + longest prefix + method; 404 no_route, 405 method_not_allowed; computes r->upstream_path. */
int cph_router_on_req(cph_req_t *r);
/**
 * Edge policies of the gateway and the matched route (docs/dataplane.md "Edge policies"): IP allow/deny lists (403), HTTPS redirect
 * (308), URL/header/body limits (414/431/413), CORS (a preflight is answered 204 here), security response headers.
 */
int cph_edge_on_req(cph_req_t *r);
/**
 * Finds the request's credential (Authorization: Bearer / ApiKey / Basic, X-API-Key) and verifies it
 * (core/authn.h) into r->principal. None: passes on with kind NONE. Invalid, or two different credentials: 401
 * invalid_token / invalid_request with WWW-Authenticate, before any rule is looked at (decision step 0).
 */
int cph_authn_on_req(cph_req_t *r);
/** Decides with the route's endpoint rules (compile/authz.h): 401 with WWW-Authenticate, 403, or passes on. */
int cph_authz_on_req(cph_req_t *r);
/**
 * The rate limits of the enforced endpoint rule, else of the route: local GCRA or Redis (asynchronous); 429 with
 * Retry-After and RateLimit-* headers, 503 when Redis fails and the limit fails closed.
 */
int cph_ratelimit_on_req(cph_req_t *r);
/**
 * An HTTP/1.1 `Upgrade: websocket` request of a route with policies.websocket becomes a tunnel to a target of the
 * service (core/websocket.h); any other request passes on (the proxy drops Upgrade headers).
 */
int cph_websocket_on_req(cph_req_t *r);
/** A route of kind pdf: renders the request (or the upstream's answer) to PDF off the loop (filter/pdf.c); else CPH_NEXT. */
int cph_pdf_on_req(cph_req_t *r);
/** A route of kind aggregate: fans out to its backends and merges their JSON (filter/aggregate.c); else CPH_NEXT. */
int cph_aggregate_on_req(cph_req_t *r);
/**
 * The response cache (docs/dataplane.md "Response cache"): for GET/HEAD of a route with policies.cache, answers a
 * fresh stored response (X-Cache: HIT, Age; 304 on a matching If-None-Match) or marks the miss (X-Cache: MISS) and
 * passes on; a route without the policy costs one pointer test.
 */
int cph_cache_on_req(cph_req_t *r);

struct phr_header;
/** A response being copied into the cache while the proxy streams it (filter/cache.c). */
typedef struct st_cph_cache_capture_t cph_cache_capture_t;
/**
 * Called by the proxy with the upstream's final response head for a request of a route with policies.cache: a
 * capture when the response may be stored (a GET that did not bypass the cache, the storability rules of
 * core/cache.h, a Content-Length within max_body_bytes), else NULL (counted not_storable when it was a miss).
 */
cph_cache_capture_t *cph_cache_capture_begin(cph_req_t *r, int status, const char *reason, size_t reason_len,
                                             const struct phr_header *headers, size_t num_headers);
/** Copies decoded body bytes; returns -1 when the body passed max_body_bytes: the capture was ended (not stored). */
int cph_cache_capture_append(cph_cache_capture_t *cap, const char *bytes, size_t len);
/** Ends a capture: complete (the whole body arrived cleanly) stores it, else it is dropped. Frees cap. */
void cph_cache_capture_end(cph_cache_capture_t *cap, int complete);

/** Proxies to one of the route's service targets (round robin); 502 connect failure, 504 timeout. */
int cph_proxy_on_req(cph_req_t *r);

/** Per-worker upstream state (socket pools per target, client contexts per timeout). Run on the worker thread. */
void cph_proxy_worker_init(cph_worker_t *w);
void cph_proxy_worker_dispose(cph_worker_t *w);

#endif
