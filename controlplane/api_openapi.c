/*
 * api_openapi: GET /api/v1/openapi.json - the OpenAPI 3.0.3 document of the whole admin API.
 *
 * The document is controlplane/openapi.json, compiled in by CMakeLists.txt as cph_openapi_json (cph_openapi_json_len
 * bytes, then a NUL): nothing is read from disk at run time, so the binary always serves the document it was built
 * with. It is parsed per request (some 180 KB: well under a millisecond, and the API is for admins) and answered like
 * every other JSON answer (application/json, Cache-Control: no-store). A document that does not parse - only a broken
 * build could ship one, and tests/unit/controlplane/openapi_test.c refuses it - answers 500.
 *
 * tests/unit/controlplane/openapi_test.c keeps the document true: every routed resource and method is documented, and
 * nothing that is not routed.
 */
#include <stddef.h>
#include "controlplane/api.h"
#include "proto/log.h"

#define MODULE "cp/api/openapi"

extern const unsigned char cph_openapi_json[];
extern const size_t cph_openapi_json_len;

void cph_api_openapi(cph_api_req_t *req)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)cph_openapi_json, cph_openapi_json_len, JSON_REJECT_DUPLICATES, &jerr);

    if (doc == NULL) {
        cph_log_error(MODULE, "the compiled-in OpenAPI document does not parse: line %d: %s", jerr.line, jerr.text);
        cph_api_error(req, 500, "internal", NULL, "internal error");
        return;
    }
    cph_api_reply(req, 200, doc);
}
