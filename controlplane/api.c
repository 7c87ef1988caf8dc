/*
 * api: the admin API server - libmicrohttpd, routing, limits, admin authentication, CSRF, the permission check and
 * the JSON error format; every other path of the admin listener is the admin web page (ui.c).
 *
 * libmicrohttpd runs a thread per connection (MHD_USE_THREAD_PER_CONNECTION): a write with ?wait=applied blocks up
 * to 5 s waiting for the data planes, and must not hold up other admins. Connections are capped and time out when
 * idle, so a slow client costs one thread for a bounded time.
 *
 * A request is decided in two steps. When its headers are in (the first call of the access handler) everything
 * that does not need the body is checked, in this order: a path outside /api/, /health and /metrics goes to the page
 * (cph_ui_answer); /health; /metrics (metrics.c's Prometheus text, behind the same authentication); the caller of an
 * /api/ path (401) - an admin token (Authorization: Bearer) or else the session cookie, except for POST
 * /api/v1/admin/login - and for a session's POST/PUT/DELETE the CSRF header and the Origin (403 csrf); unknown path
 * (404), method (405 with Allow), Content-Type of a POST/PUT (415), a declared Content-Length over 1 MiB (413) - and
 * answered at once. Then the body is collected, counted as it arrives and dropped past 1 MiB (413 at the end, for
 * chunked uploads), parsed with duplicate keys rejected (400 bad_json), checked against the principal's role
 * (rbac.c: 403 forbidden) and handed to the resource.
 *
 * Every answer is counted by method and status class (metrics.c, cephalo_cp_admin_requests_total) as it is queued,
 * and carries nosniff, X-Frame-Options DENY and Referrer-Policy no-referrer.
 *
 * Admin tokens and session cookies are resolved by admin_auth.c (sha256 only is stored; tokens compared in
 * constant time against every stored hash).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "controlplane/api.h"
#include "controlplane/api_authz.h"
#include "controlplane/api_cache.h"
#include "controlplane/api_health.h"
#include "controlplane/api_integrations.h"
#include "controlplane/httpd.h"
#include "controlplane/metrics.h"
#include "controlplane/rbac.h"
#include "controlplane/ui.h"
#include "proto/log.h"

#define MODULE "cp/api"
#define LOGIN_URL "/api/v1/admin/login"

struct st_cph_api_t {
    struct MHD_Daemon *mhd;
    cph_db_t *db;
    cph_dpserver_t *dps;
};

typedef void (*handler_t)(cph_api_req_t *req);

static const struct st_resource_t {
    const char *name;
    int collection_methods;
    int item_methods;
    handler_t handle;
    int nested; /* the key may hold one '/' (integrations/vault/paths) */
} RESOURCES[] = {
    {"services", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_services, 0},
    {"routes", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_routes, 0},
    {"systems", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_systems, 0},
    {"roles", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_roles, 0},
    {"groups", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_groups, 0},
    {"users", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_users, 0},
    {"endpoints", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_endpoints, 0},
    {"api_keys", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_api_keys, 0},
    {"dataplanes", CPH_API_GET, 0, cph_api_dataplanes, 0},
    {"snapshot", CPH_API_GET, 0, cph_api_snapshot, 0},
    {"signing_keys", CPH_API_GET, CPH_API_GET | CPH_API_POST, cph_api_signing_keys, 0}, /* POST only on .../rotate */
    {"jwks", CPH_API_GET, 0, cph_api_jwks, 0},
    {"issuers", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_issuers, 0},
    {"authz", 0, CPH_API_GET | CPH_API_POST, cph_api_authz, 0},          /* POST .../explain, GET .../shadow */
    {"cache", 0, CPH_API_POST, cph_api_cache, 0},                        /* POST .../purge */
    {"health", CPH_API_GET, CPH_API_GET, cph_api_health, 0},             /* GET the summary, GET .../services */
    {"integrations", CPH_API_GET, CPH_API_GET, cph_api_integrations, 1}, /* GET .../{vault,consul,vault/paths} */
    {"admin", 0, CPH_API_GET | CPH_API_POST, cph_api_admin, 0},          /* POST .../login, .../logout; GET .../me */
    {"admin_accounts", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_PUT | CPH_API_DELETE, cph_api_admin_accounts, 0},
    {"admin_tokens", CPH_API_GET | CPH_API_POST, CPH_API_GET | CPH_API_DELETE, cph_api_admin_tokens, 0},
    {"audit", CPH_API_GET, CPH_API_GET, cph_api_audit, 0},
    {"snapshots", CPH_API_GET, CPH_API_GET | CPH_API_POST, cph_api_snapshots, 1}, /* {v}, {v}/diff?to=, POST {v}/rollback */
    {"openapi.json", CPH_API_GET, 0, cph_api_openapi, 0},
};

const cph_api_resource_info_t *cph_api_resources(size_t *n)
{
    static cph_api_resource_info_t info[sizeof(RESOURCES) / sizeof(RESOURCES[0])];

    *n = sizeof(RESOURCES) / sizeof(RESOURCES[0]);
    for (size_t i = 0; i < *n; ++i)
        info[i] = (cph_api_resource_info_t){RESOURCES[i].name, RESOURCES[i].collection_methods, RESOURCES[i].item_methods,
                                            RESOURCES[i].nested};
    return info;
}

/* Per-request state, from the headers to the completion callback. */
typedef struct st_ctx_t {
    cph_api_req_t req;
    const struct st_resource_t *resource;
    char *key;
    cph_admin_principal_t principal;
    char *buf;
    size_t len;
    size_t cap;
    const char *method; /* as sent (libmicrohttpd's, valid for the request), for the admin-requests counter */
    char *text;         /* a text/plain answer (GET /metrics) instead of req->resp, text_len bytes */
    size_t text_len;
    int too_large;
    int answered;
} ctx_t;

/* ---------------------------------------------------------------- answers */

void cph_api_reply(cph_api_req_t *req, unsigned status, json_t *resp)
{
    json_decref(req->resp);
    req->status = status;
    req->resp = resp;
}

void cph_api_error(cph_api_req_t *req, unsigned status, const char *code, const char *path, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);

    if (path != NULL && path[0] != '\0')
        json_object_set_new(o, "path", json_string(path));
    cph_api_reply(req, status, o);
}

void cph_api_fail(cph_api_req_t *req, const cph_error_t *err)
{
    unsigned status = 400;

    if (strcmp(err->code, "not_found") == 0)
        status = 404;
    else if (strcmp(err->code, "conflict") == 0)
        status = 409;
    else if (strcmp(err->code, "forbidden") == 0)
        status = 403;
    else if (strcmp(err->code, "internal") == 0 || err->code[0] == '\0')
        status = 500;
    if (status == 500)
        cph_api_error(req, 500, "internal", NULL, "internal error");
    else
        cph_api_error(req, status, err->code, err->path, err->msg[0] != '\0' ? err->msg : "invalid request");
}

const char *cph_api_query(cph_api_req_t *req, const char *name)
{
    return req->conn != NULL ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

void cph_api_written(cph_api_req_t *req, unsigned status, json_t *resp, uint64_t version)
{
    const char *wait = cph_api_query(req, "wait");

    json_object_set_new(resp, "version", json_integer((json_int_t)version));
    if (wait != NULL && strcmp(wait, "applied") == 0) {
        json_t *applied = req->dps != NULL ? cph_dpserver_wait_applied(req->dps, version, CPH_API_WAIT_MS)
                                           : json_pack("{s:b, s:[]}", "settled", 1, "dataplanes");
        json_object_set_new(resp, "applied", applied);
    }
    cph_api_reply(req, status, resp);
}

void cph_api_add_header(cph_api_req_t *req, const char *name, const char *value)
{
    if (req->num_headers >= CPH_API_EXTRA_HEADERS)
        cph_fatal(MODULE, "too many extra headers");
    snprintf(req->headers[req->num_headers].name, sizeof(req->headers[0].name), "%s", name);
    snprintf(req->headers[req->num_headers].value, sizeof(req->headers[0].value), "%s", value);
    req->num_headers++;
}

static void add_common_headers(ctx_t *ctx, struct MHD_Response *r)
{
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    for (size_t i = 0; i < ctx->req.num_headers; ++i)
        MHD_add_response_header(r, ctx->req.headers[i].name, ctx->req.headers[i].value);
}

/* The GET /metrics answer: ctx->text, handed to libmicrohttpd. */
static enum MHD_Result send_text(ctx_t *ctx)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(ctx->text_len, ctx->text, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    ctx->text = NULL; /* libmicrohttpd frees it */
    MHD_add_response_header(r, "Content-Type", CPH_METRICS_CONTENT_TYPE);
    add_common_headers(ctx, r);
    ret = MHD_queue_response(ctx->req.conn, 200, r);
    MHD_destroy_response(r);
    cph_metrics_count_admin(ctx->method, 200);
    ctx->answered = 1;
    return ret;
}

static enum MHD_Result send_answer(ctx_t *ctx, int methods_allowed)
{
    cph_api_req_t *req = &ctx->req;
    struct MHD_Response *r;
    enum MHD_Result ret;
    char *text, allow[64] = "";

    if (ctx->text != NULL)
        return send_text(ctx);
    if (req->resp == NULL)
        cph_api_error(req, 500, "internal", NULL, "internal error");
    if ((text = json_dumps(req->resp, JSON_COMPACT)) == NULL)
        cph_fatal(MODULE, "out of memory");
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    add_common_headers(ctx, r);
    if (req->status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (req->status == 405) {
        static const char *const NAMES[] = {"GET", "POST", "PUT", "DELETE"};
        for (int i = 0; i < 4; ++i)
            if (methods_allowed & (1 << i))
                snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s", allow[0] ? ", " : "", NAMES[i]);
        MHD_add_response_header(r, "Allow", allow);
    }
    ret = MHD_queue_response(req->conn, req->status, r);
    MHD_destroy_response(r);
    cph_metrics_count_admin(ctx->method, req->status);
    ctx->answered = 1;
    return ret;
}

/* ---------------------------------------------------------------- authentication */

/*
 * Who is asking: an admin token (Authorization: Bearer; any other Authorization is refused, never a fallback to the
 * cookie), else the session cookie. A session's POST/PUT/DELETE must echo its CSRF token and, when the browser sent an
 * Origin, come from this host. Returns 1 with ctx->principal filled, or 0 with the answer (401, 403) in ctx->req.
 */
static int authenticate(cph_api_t *api, ctx_t *ctx, int bit)
{
    struct MHD_Connection *conn = ctx->req.conn;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *cookie = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, CPH_ADMIN_SESSION_COOKIE);
    int64_t now = (int64_t)time(NULL);
    cph_admin_principal_t *p = &ctx->principal;
    int ok = 0;

    if (h != NULL) {
        if (strncasecmp(h, "Bearer ", 7) == 0) {
            for (h += 7; *h == ' ';)
                ++h;
            ok = cph_admin_auth_token(api->db, h, now, p);
        }
    } else if (cookie != NULL) {
        ok = cph_admin_auth_session(api->db, cookie, now, p);
    }
    if (!ok) {
        cph_api_error(&ctx->req, 401, "unauthorized", NULL, "a valid admin bearer token or session is required");
        return 0;
    }
    if (p->via_session && (bit == CPH_API_POST || bit == CPH_API_PUT || bit == CPH_API_DELETE) &&
        (!cph_admin_csrf_ok(p, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, CPH_ADMIN_CSRF_HEADER)) ||
         !cph_admin_origin_ok(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
                              MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))) {
        cph_api_error(&ctx->req, 403, "csrf", NULL, "a session's write needs the X-CSRF-Token header and a same-origin request");
        return 0;
    }
    ctx->req.principal = p;
    ctx->req.actor = p->actor;
    return 1;
}

/* POST /api/v1/admin/login needs no caller, but a browser's login must come from this host (login CSRF). */
static int login_origin(ctx_t *ctx)
{
    struct MHD_Connection *conn = ctx->req.conn;

    ctx->req.actor = "anonymous";
    if (cph_admin_origin_ok(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
                            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
        return 1;
    cph_api_error(&ctx->req, 403, "csrf", NULL, "a login must be a same-origin request");
    return 0;
}

/* ---------------------------------------------------------------- routing */

static int method_bit(const char *m)
{
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) /* libmicrohttpd drops the body of a HEAD answer */
        return CPH_API_GET;
    if (strcmp(m, "POST") == 0)
        return CPH_API_POST;
    if (strcmp(m, "PUT") == 0)
        return CPH_API_PUT;
    if (strcmp(m, "DELETE") == 0)
        return CPH_API_DELETE;
    return 0;
}

/* "/api/v1/<resource>[/<key>]" -> resource and key; -1 for anything else. */
static int route(const char *url, const struct st_resource_t **res, char **key)
{
    const char *p, *slash;
    size_t nlen;

    if (strncmp(url, "/api/v1/", 8) != 0)
        return -1;
    p = url + 8;
    slash = strchr(p, '/');
    nlen = slash != NULL ? (size_t)(slash - p) : strlen(p);
    for (size_t i = 0; i < sizeof(RESOURCES) / sizeof(RESOURCES[0]); ++i) {
        if (strlen(RESOURCES[i].name) != nlen || strncmp(RESOURCES[i].name, p, nlen) != 0)
            continue;
        *res = &RESOURCES[i];
        *key = NULL;
        if (slash == NULL)
            return 0;
        if (slash[1] == '\0' || RESOURCES[i].item_methods == 0)
            return -1;
        if ((p = strchr(slash + 1, '/')) != NULL && (!RESOURCES[i].nested || p[1] == '\0' || strchr(p + 1, '/') != NULL))
            return -1;
        *key = strdup(slash + 1);
        return 0;
    }
    return -1;
}

static int is_json_type(const char *ct)
{
    size_t n = strlen("application/json");

    if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ++ct;
    return *ct == '\0' || *ct == ';';
}

/* The checks that need only the headers. Returns 1 when ctx->req holds an answer to send now. */
static int on_headers(cph_api_t *api, ctx_t *ctx, const char *url, const char *method, int *allowed)
{
    cph_api_req_t *req = &ctx->req;
    const char *clen;
    int bit = method_bit(method);

    if (strcmp(url, "/health") == 0) {
        *allowed = CPH_API_GET;
        if (bit != CPH_API_GET)
            cph_api_error(req, 405, "method_not_allowed", NULL, "method not allowed");
        else
            cph_api_reply(req, 200, json_pack("{s:s}", "status", "ok"));
        return 1;
    }
    if (strcmp(url, "/metrics") == 0) {
        *allowed = CPH_API_GET;
        if (!authenticate(api, ctx, bit))
            return 1;
        if (bit != CPH_API_GET)
            cph_api_error(req, 405, "method_not_allowed", NULL, "method not allowed");
        else
            ctx->text = cph_metrics_render(api->db, api->dps, &ctx->text_len);
        return 1;
    }
    if (strcmp(url, LOGIN_URL) == 0 && bit == CPH_API_POST ? !login_origin(ctx) : !authenticate(api, ctx, bit))
        return 1;
    if (route(url, &ctx->resource, &ctx->key) != 0) {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
        return 1;
    }
    req->key = ctx->key;
    *allowed = ctx->key != NULL ? ctx->resource->item_methods : ctx->resource->collection_methods;
    if ((bit & *allowed) == 0) {
        cph_api_error(req, 405, "method_not_allowed", NULL, "method not allowed");
        return 1;
    }
    req->method = bit;
    if (bit != CPH_API_POST && bit != CPH_API_PUT)
        return 0;
    if (!is_json_type(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        cph_api_error(req, 415, "unsupported_media_type", NULL, "the body must be application/json");
        return 1;
    }
    clen = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen != NULL && strtoull(clen, NULL, 10) > CPH_API_BODY_MAX) {
        cph_api_error(req, 413, "payload_too_large", NULL, "the body is over 1 MiB");
        return 1;
    }
    return 0;
}

static void on_body(ctx_t *ctx, const char *data, size_t len)
{
    if (ctx->too_large || len > CPH_API_BODY_MAX - ctx->len) {
        ctx->too_large = 1; /* count and drop: never buffer past the cap */
        return;
    }
    if (ctx->len + len > ctx->cap) {
        size_t cap = ctx->cap != 0 ? ctx->cap : 4096;
        while (cap < ctx->len + len)
            cap *= 2;
        if ((ctx->buf = realloc(ctx->buf, cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
        ctx->cap = cap;
    }
    memcpy(ctx->buf + ctx->len, data, len);
    ctx->len += len;
}

/*
 * The body is parsed with JSON_ALLOW_NUL so that a "\u0000" inside a string value is answered like any other bad
 * value (400 invalid at its path) rather than as unparseable JSON; this walk then refuses every such string, so no
 * NUL ever reaches the validator, the database or a data plane. Returns 1 and fills path when one is found.
 */
static int find_nul(const json_t *v, char *path, size_t cap, int depth)
{
    const char *k;
    json_t *item;
    size_t i, len = strlen(path);

    if (json_is_string(v))
        return json_string_length(v) != strlen(json_string_value(v));
    if (depth > 64)
        return 0; /* jansson caps nesting; our schema is 4 levels deep - a deeper NUL fails validation anyway */
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, item)
        {
            cph_jsonptr_append(path, cap, k);
            if (find_nul(item, path, cap, depth + 1))
                return 1;
            path[len] = '\0';
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            cph_jsonptr_append_index(path, cap, i);
            if (find_nul(item, path, cap, depth + 1))
                return 1;
            path[len] = '\0';
        }
    }
    return 0;
}

/* The whole request is in: parse the body and run the resource. */
static void on_complete(ctx_t *ctx)
{
    cph_api_req_t *req = &ctx->req;
    json_error_t jerr;
    char path[256];

    if (req->method == CPH_API_POST || req->method == CPH_API_PUT) {
        if (ctx->too_large) {
            cph_api_error(req, 413, "payload_too_large", NULL, "the body is over 1 MiB");
            return;
        }
        req->body = json_loadb(ctx->buf != NULL ? ctx->buf : "", ctx->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (req->body == NULL) {
            cph_api_error(req, 400, "bad_json", NULL, "the body is not valid JSON (or has a duplicate key)");
            return;
        }
        if (!json_is_object(req->body)) {
            cph_api_error(req, 400, "invalid", "", "the body must be a JSON object");
            return;
        }
        path[0] = '\0';
        if (find_nul(req->body, path, sizeof(path), 0)) {
            cph_api_error(req, 400, "invalid", path, "strings must not contain NUL");
            return;
        }
    }
    if (req->principal != NULL) {
        cph_error_t err = {0};
        if (cph_rbac_check(req->db, req->principal, ctx->resource->name, req->key, req->method, req->body, &err) != 0) {
            cph_api_fail(req, &err);
            return;
        }
    }
    ctx->resource->handle(req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    cph_api_t *api = cls;
    ctx_t *ctx = *con_cls;
    int allowed = 0;

    (void)version;
    if (ctx == NULL) {
        if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
            cph_fatal(MODULE, "out of memory");
        *con_cls = ctx;
        ctx->req.conn = conn;
        ctx->method = method;
        ctx->req.db = api->db;
        ctx->req.dps = api->dps;
        if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/health") != 0 && strcmp(url, "/metrics") != 0) {
            ctx->answered = 1; /* the page: static files, answered at once; a body is drained */
            return cph_ui_answer(conn, url, method);
        }
        if (on_headers(api, ctx, url, method, &allowed))
            return send_answer(ctx, allowed);
        return MHD_YES;
    }
    if (ctx->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        on_body(ctx, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    on_complete(ctx);
    return send_answer(ctx, ctx->req.allow);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    ctx_t *ctx = *con_cls;

    (void)cls, (void)conn, (void)toe;
    if (ctx == NULL)
        return;
    json_decref(ctx->req.body);
    json_decref(ctx->req.resp);
    free(ctx->text);
    free(ctx->key);
    free(ctx->buf);
    free(ctx);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- the daemon */

cph_api_t *cph_api_start(const char *listen, cph_db_t *db, cph_dpserver_t *dps, cph_error_t *err)
{
    cph_api_t *api;

    if ((api = calloc(1, sizeof(*api))) == NULL)
        cph_fatal(MODULE, "out of memory");
    api->db = db;
    api->dps = dps;
    if ((api->mhd = cph_httpd_start(listen, "admin", on_request, api, on_completed, CPH_API_CONNECTIONS_MAX,
                                    CPH_API_CONNECTION_TIMEOUT_S, err)) == NULL) {
        free(api);
        return NULL;
    }
    return api;
}

void cph_api_stop(cph_api_t *api)
{
    if (api == NULL)
        return;
    MHD_stop_daemon(api->mhd);
    free(api);
}
