/*
 * respond: answers the data plane sends itself.
 */
#ifndef CPH_RESPOND_H
#define CPH_RESPOND_H

#include "dataplane/core/h2o_abi.h"

/**
 * Sends status with the JSON body {"error":code,"message":message} (plus "request_id" once requests have ids),
 * Content-Type application/json and Cache-Control no-store. code and message are our own constants, never echoed
 * client input. 401 adds WWW-Authenticate; 429 and 503 may carry Retry-After (later stages).
 * message may be NULL (a default sentence for the status is used).
 */
void cph_respond_error(h2o_req_t *req, int status, const char *code, const char *message);

/**
 * 405 method_not_allowed with an Allow header listing the methods of allow (a CPH_METHOD_* bitmask,
 * dataplane/compile/router.h); 0 = no method.
 */
void cph_respond_405(h2o_req_t *req, uint32_t allow);

#endif
