/*
 * api: the admin REST API (docs/admin-api.md) on libmicrohttpd.
 *
 * api.c owns the server, routing, limits, authentication and the error format; each resource lives in its own
 * api_<resource>.c and only sees a cph_api_req_t: the parsed request in, one JSON answer out.
 */
#ifndef CPH_API_H
#define CPH_API_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/dpserver.h"
#include "controlplane/admin_auth.h"
#include "proto/proto.h"

#define CPH_API_BODY_MAX (1024 * 1024)
#define CPH_API_CONNECTIONS_MAX 64
#define CPH_API_CONNECTION_TIMEOUT_S 30
#define CPH_API_WAIT_MS 5000
#define CPH_API_EXTRA_HEADERS 4 /* headers a handler may add to its answer (cph_api_add_header) */

enum {
    CPH_API_GET = 1,
    CPH_API_POST = 2,
    CPH_API_PUT = 4,
    CPH_API_DELETE = 8,
};

typedef struct st_cph_api_t cph_api_t;

/** One request as a resource handler sees it. The handler answers with cph_api_reply/fail/error/written. */
typedef struct st_cph_api_req_t {
    cph_db_t *db;
    cph_dpserver_t *dps; /* may be NULL (unit tests): no data planes */
    struct MHD_Connection *conn;
    int method;        /* one CPH_API_* */
    const char *key;   /* the {id-or-name} segment, NULL on a collection */
    json_t *body;      /* the request's JSON object (POST/PUT), else NULL */
    const char *actor; /* who is writing, for the audit */
    const cph_admin_principal_t *principal; /* who is asking (NULL only in unit tests that call a handler directly) */
    unsigned status;   /* the answer, set by the reply functions */
    int allow;         /* CPH_API_* a handler that answers 405 itself allows (its Allow header) */
    json_t *resp;
    struct {
        char name[32], value[256];
    } headers[CPH_API_EXTRA_HEADERS]; /* added by the handler (Set-Cookie, Retry-After) */
    size_t num_headers;
} cph_api_req_t;

/**
 * Starts the API on listen ("HOST:PORT", HOST an IPv4 address, "localhost" or "[IPv6]") with a thread per
 * connection, at most CPH_API_CONNECTIONS_MAX connections, each closed after CPH_API_CONNECTION_TIMEOUT_S idle.
 * db and dps are borrowed (dps may be NULL). Returns NULL with err filled.
 */
cph_api_t *cph_api_start(const char *listen, cph_db_t *db, cph_dpserver_t *dps, cph_error_t *err);
/** Stops accepting, finishes the running requests and frees api (NULL is fine). */
void cph_api_stop(cph_api_t *api);

/** Answers status with resp (reference stolen). */
void cph_api_reply(cph_api_req_t *req, unsigned status, json_t *resp);
/** Answers {"error": code, "message": msg, "path"?} with status. path NULL or "" leaves it out. */
void cph_api_error(cph_api_req_t *req, unsigned status, const char *code, const char *path, const char *msg);
/** Answers an error from a store or the write path: not_found 404, conflict 409, internal 500, anything else 400. */
void cph_api_fail(cph_api_req_t *req, const cph_error_t *err);
/**
 * Answers a successful write: sets "version" in resp (stolen) and, with ?wait=applied, waits (at most
 * CPH_API_WAIT_MS) for the data planes and adds "applied": {"settled", "dataplanes"}.
 */
void cph_api_written(cph_api_req_t *req, unsigned status, json_t *resp, uint64_t version);
/** Adds a response header (name < 32 bytes, value < 256) to req's answer; at most CPH_API_EXTRA_HEADERS (aborts past). */
void cph_api_add_header(cph_api_req_t *req, const char *name, const char *value);
/** A query-string argument, or NULL. */
const char *cph_api_query(cph_api_req_t *req, const char *name);

/* The resources (api_<resource>.c). */
void cph_api_services(cph_api_req_t *req);
void cph_api_routes(cph_api_req_t *req);
void cph_api_systems(cph_api_req_t *req);
void cph_api_roles(cph_api_req_t *req);
void cph_api_groups(cph_api_req_t *req);
void cph_api_users(cph_api_req_t *req);
void cph_api_endpoints(cph_api_req_t *req);
/** /api/v1/issuers: the external token issuers (store_issuer.h); a new issuer has no keys until its first fetch. */
void cph_api_issuers(cph_api_req_t *req);
/** The api keys: a POST answer shows the new key once ("key"); a PUT merges the body over the stored key. */
void cph_api_api_keys(cph_api_req_t *req);
void cph_api_dataplanes(cph_api_req_t *req);
void cph_api_snapshot(cph_api_req_t *req);
/** The signing keys (api_signing.c): GET the list or one key by id or kid, POST {key = "rotate"} a rotation. */
void cph_api_signing_keys(cph_api_req_t *req);
/** GET: the public JWKS of the active and retiring signing keys. */
void cph_api_jwks(cph_api_req_t *req);
/** /api/v1/admin/{login,logout,me} (api_admin.c): the admin session. */
void cph_api_admin(cph_api_req_t *req);
/** /api/v1/admin_accounts: the admin accounts (owner only). */
void cph_api_admin_accounts(cph_api_req_t *req);
/** /api/v1/admin_tokens: the admin API tokens (the token is shown once, on POST). */
void cph_api_admin_tokens(cph_api_req_t *req);
/** GET /api/v1/audit (api_history.c): the audit log, filtered and paged. */
void cph_api_audit(cph_api_req_t *req);
/** /api/v1/snapshots[/{version}[/diff|/rollback]] (api_history.c): the snapshot history, diff and rollback. */
void cph_api_snapshots(cph_api_req_t *req);
/** GET /api/v1/openapi.json (api_openapi.c): the OpenAPI 3 document of this API. */
void cph_api_openapi(cph_api_req_t *req);

/** One routed resource, for the documentation test (tests/unit/controlplane/openapi_test.c). */
typedef struct st_cph_api_resource_info_t {
    const char *name;
    int collection_methods; /* CPH_API_* */
    int item_methods;
    int nested; /* the key may hold one '/' */
} cph_api_resource_info_t;
/** The routed resources: fills *n and returns a static array (valid for the process's life). */
const cph_api_resource_info_t *cph_api_resources(size_t *n);

#endif
