/*
 * respond: answers the data plane sends itself.
 */
#ifndef CPH_RESPOND_H
#define CPH_RESPOND_H

#include "dataplane/core/h2o_abi.h"

struct st_cph_req_t; /* core/pipeline.h */

/**
 * Sends status with the JSON body {"error":code,"message":message}, Content-Type application/json and Cache-Control
 * no-store. code and message are our own constants, never echoed client input. message may be NULL (a default
 * sentence for the status is used). For a request of the pipeline use cph_respond_error_r: it adds the request id.
 */
void cph_respond_error(h2o_req_t *req, int status, const char *code, const char *message);

/**
 * As cph_respond_error, plus, when r->request_id is set, "request_id" in the body and an x-request-id response header
 * (error answers only: a proxied answer carries whatever the upstream sent).
 */
void cph_respond_error_r(struct st_cph_req_t *r, int status, const char *code, const char *message);

/**
 * 401 with the request id (as cph_respond_error_r) and two WWW-Authenticate headers: `Bearer realm="cephalo"` (plus
 * `, error="<bearer_error>"` when bearer_error is non-NULL, e.g. "invalid_token") and `ApiKey realm="cephalo"`.
 * bearer_error is our own constant.
 */
void cph_respond_401(struct st_cph_req_t *r, const char *code, const char *message, const char *bearer_error);

/**
 * 405 method_not_allowed with an Allow header listing the methods of allow (a CPH_METHOD_* bitmask,
 * dataplane/compile/router.h); 0 = no method.
 */
void cph_respond_405(h2o_req_t *req, uint32_t allow);
/** cph_respond_405 with the request id (as cph_respond_error_r). */
void cph_respond_405_r(struct st_cph_req_t *r, uint32_t allow);

/**
 * Writes the error body {"error":code,"message":message[,"request_id":request_id]}\n into pool (strings
 * JSON-escaped; request_id omitted when its len is 0). Returned for the tests; the senders above use it.
 */
h2o_iovec_t cph_respond_error_body(h2o_mem_pool_t *pool, const char *code, const char *message, h2o_iovec_t request_id);

#endif
