/*
 * api_issuer: /api/v1/issuers - the external token issuers (store_issuer.h for the representation).
 */
#ifndef CPH_API_ISSUER_H
#define CPH_API_ISSUER_H

#include "controlplane/api.h"

/**
 * GET the list ({"data": [...]}) or one issuer by id or name; POST creates (201 {"issuer", "version"}), PUT replaces
 * (200), DELETE deletes (200 {"version"}); ?wait=applied as every write. The keys are the JWKS thread's: a new issuer
 * has none until its first fetch (sync_jwks.h).
 */
void cph_api_issuers(cph_api_req_t *req);

#endif
