/*
 * api_authz: POST /api/v1/authz/explain and GET /api/v1/authz/shadow.
 *
 * Explain answers "what would the gateway do with this request, and why" with the data plane's own code: the current
 * snapshot body is compiled by cph_snapshot_build exactly as a data plane compiles it, then the request walks the
 * stages in the data plane's order - canonical path (400 bad_path), the reserved /auth prefix, the router (404 /
 * 405), the credential (authn: an invalid one is 401 before any rule), the decision (cph_authz_decide with a trace,
 * including the shadow rule's would-be decision). Every step adds one human line to "chain". The credential is
 * verified, never echoed; the "user" form builds the principal a login would give from the database instead.
 *
 * Compiling a snapshot is the slow part, so the built snapshot is cached per (epoch, version, hash) behind a mutex;
 * a caller holds its own reference while it explains, so a newer build can replace the cache at any time. The
 * principal's views live in an h2o memory pool cleared at the end of each explain.
 *
 * Shadow answers the sum of the counters every connected data plane reported in its last ping (dpsession.c).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "controlplane/api_authz.h"
#include "controlplane/dpserver.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"
#include "dataplane/compile/auth.h"
#include "dataplane/compile/authz.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/authn.h"
#include "proto/log.h"

#define MODULE "cp/api/authz"
#define HOST_MAX 256 /* as filter/router.c */

/* ---------------------------------------------------------------- the request */

typedef struct st_explain_in_t {
    const char *method, *path, *host, *token, *api_key, *user, *system;
} explain_in_t;

static const struct st_member_t {
    const char *name;
    size_t min, max; /* bytes */
    size_t off;
} MEMBERS[] = {
    {"method", 1, 32, offsetof(explain_in_t, method)},       {"path", 1, 8192, offsetof(explain_in_t, path)},
    {"host", 0, HOST_MAX - 1, offsetof(explain_in_t, host)}, {"token", 1, 65536, offsetof(explain_in_t, token)},
    {"api_key", 1, 1024, offsetof(explain_in_t, api_key)},   {"user", 1, 256, offsetof(explain_in_t, user)},
    {"system", 1, 64, offsetof(explain_in_t, system)},
};
#define NUM_MEMBERS (sizeof(MEMBERS) / sizeof(MEMBERS[0]))

static const char *ptr(char *buf, size_t cap, const char *key)
{
    buf[0] = '\0';
    cph_jsonptr_append(buf, cap, key);
    return buf;
}

static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_code(const char *s)
{
    for (; *s != '\0'; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int parse_member(const char *key, const json_t *v, explain_in_t *in, cph_error_t *err)
{
    char p[256];
    size_t i, len;

    for (i = 0; i != NUM_MEMBERS && strcmp(MEMBERS[i].name, key) != 0; ++i)
        ;
    if (i == NUM_MEMBERS)
        return cph_error_set(err, "unknown_field", ptr(p, sizeof(p), key), "unknown member");
    if (!json_is_string(v))
        return cph_error_set(err, "invalid", ptr(p, sizeof(p), key), "\"%s\" must be a string", key);
    len = json_string_length(v);
    if (len != strlen(json_string_value(v)))
        return cph_error_set(err, "invalid", ptr(p, sizeof(p), key), "strings must not contain NUL");
    if (len < MEMBERS[i].min || len > MEMBERS[i].max)
        return cph_error_set(err, "invalid", ptr(p, sizeof(p), key), "\"%s\" must be %zu to %zu bytes", key, MEMBERS[i].min,
                             MEMBERS[i].max);
    *(const char **)((char *)in + MEMBERS[i].off) = json_string_value(v);
    return 0;
}

/* Strict: only the known members, strings only, method a token, path from '/', at most one credential. */
static int parse_request(const json_t *body, explain_in_t *in, cph_error_t *err)
{
    const char *key, *first = NULL, *const creds[] = {"token", "api_key", "user"};
    const char *vals[3];
    json_t *v;
    char p[256];

    memset(in, 0, sizeof(*in));
    if (!json_is_object(body))
        return cph_error_set(err, "invalid", "", "the body must be a JSON object");
    json_object_foreach((json_t *)body, key, v)
    {
        if (parse_member(key, v, in, err) != 0)
            return -1;
    }
    if (in->method == NULL || in->path == NULL)
        return cph_error_set(err, "missing_field", in->method == NULL ? "/method" : "/path", "\"%s\" is required",
                             in->method == NULL ? "method" : "path");
    for (const char *c = in->method; *c != '\0'; ++c)
        if (!is_tchar(*c))
            return cph_error_set(err, "invalid", "/method", "\"method\" must be an HTTP method token");
    if (in->path[0] != '/')
        return cph_error_set(err, "invalid", "/path", "\"path\" must start with '/'");
    vals[0] = in->token, vals[1] = in->api_key, vals[2] = in->user;
    for (size_t i = 0; i != 3; ++i) {
        if (vals[i] == NULL)
            continue;
        if (first != NULL)
            return cph_error_set(err, "invalid", ptr(p, sizeof(p), creds[i]), "at most one of token, api_key, user (%s is given)",
                                 first);
        first = creds[i];
    }
    if (in->system != NULL && in->user == NULL)
        return cph_error_set(err, "invalid", "/system", "\"system\" goes only with \"user\"");
    if (in->system != NULL && !is_code(in->system))
        return cph_error_set(err, "invalid", "/system", "a system code is [a-z0-9_-]{1,64}");
    return 0;
}

/* ---------------------------------------------------------------- the answer */

typedef struct st_explain_t {
    const cph_snapshot_t *snap;
    const explain_in_t *in;
    json_t *out;
    json_t *chain;
    json_t *user; /* the "user" form: the stored user */
    h2o_mem_pool_t pool;
    const char *path; /* canonical, NUL-terminated, in pool */
    size_t path_len;
    uint32_t method;
    cph_route_match_t m;
    h2o_iovec_t upstream;
    cph_principal_t principal;
} explain_t;

static void set(explain_t *x, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(x->out, key, v) != 0)
        cph_fatal(MODULE, "out of memory");
}

static const char *sv(const char *s)
{
    return s != NULL ? s : "";
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* A string from a view; bytes that are not UTF-8 (never expected: claims and names are checked) give "". */
static json_t *strn(const char *s, size_t len)
{
    json_t *v = json_stringn(s != NULL ? s : "", s != NULL ? len : 0);

    if (v == NULL && (v = json_string("")) == NULL)
        cph_fatal(MODULE, "out of memory");
    return v;
}

static void chain(explain_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void chain(explain_t *x, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (json_array_append_new(x->chain, json_string(line)) != 0) /* %s of request bytes: jansson refuses bad UTF-8 */
        json_array_append_new(x->chain, json_string("(a line with bytes that are not UTF-8)"));
}

static void outcome(explain_t *x, const char *decision, int status, const char *reason)
{
    set(x, "decision", json_string(decision));
    set(x, "status", json_integer(status));
    set(x, "reason", json_string(reason));
}

static const char *decision_name(cph_authz_decision_t d)
{
    return d == CPH_AUTHZ_ALLOW ? "allow" : d == CPH_AUTHZ_UNAUTHENTICATED ? "unauthenticated" : "forbidden";
}

static int decision_status(cph_authz_decision_t d)
{
    return d == CPH_AUTHZ_ALLOW ? 200 : d == CPH_AUTHZ_UNAUTHENTICATED ? 401 : 403;
}

static const char *access_name(cph_default_access_t a)
{
    return a == CPH_ACCESS_PUBLIC ? "public" : a == CPH_ACCESS_DENY ? "deny" : "authenticated";
}

static json_t *rule_json(const cph_authz_rule_t *r)
{
    static const char *const kinds[] = {"exact", "template", "prefix"};
    json_t *v = json_pack("{s:I, s:s, s:s, s:b, s:s}", "id", (json_int_t)r->id, "method", r->method, "path", r->pattern, "public",
                          r->is_public, "kind", kinds[r->kind]);

    if (v == NULL)
        cph_fatal(MODULE, "out of memory");
    return v;
}

static json_t *granted(const char *reason, h2o_iovec_t by)
{
    char buf[160];

    if (by.len == 0 || reason == NULL || (strcmp(reason, "group") != 0 && strcmp(reason, "role") != 0))
        return json_null();
    snprintf(buf, sizeof(buf), "%s:%.*s", reason, (int)(by.len < 128 ? by.len : 128), by.base);
    return strn(buf, strlen(buf));
}

/* ---------------------------------------------------------------- the principal */

typedef struct st_names_t {
    char **v;
    size_t n, cap;
} names_t;

static void on_role(void *ud, const char *role, size_t len)
{
    names_t *ns = ud;

    for (size_t i = 0; i != ns->n; ++i)
        if (strlen(ns->v[i]) == len && memcmp(ns->v[i], role, len) == 0)
            return;
    if (ns->n == ns->cap && (ns->v = realloc(ns->v, (ns->cap = ns->cap ? ns->cap * 2 : 16) * sizeof(*ns->v))) == NULL)
        cph_fatal(MODULE, "out of memory");
    if ((ns->v[ns->n++] = strndup(role, len)) == NULL)
        cph_fatal(MODULE, "out of memory");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The effective roles, sorted and unique. */
static json_t *effective_roles(const explain_t *x)
{
    names_t ns = {NULL, 0, 0};
    json_t *arr = json_array();

    cph_authz_effective_roles(x->snap, &x->principal, on_role, &ns);
    if (ns.n > 1)
        qsort(ns.v, ns.n, sizeof(*ns.v), cmp_str);
    for (size_t i = 0; i != ns.n; ++i) {
        json_array_append_new(arr, json_string(ns.v[i]));
        free(ns.v[i]);
    }
    free(ns.v);
    return arr;
}

static json_t *views_json(const h2o_iovec_t *v, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i != n; ++i)
        json_array_append_new(arr, strn(v[i].base, v[i].len));
    return arr;
}

/* A decimal id view as a JSON integer (a string when it is not one). */
static json_t *id_json(h2o_iovec_t id)
{
    char buf[24];

    if (id.len == 0 || id.len >= sizeof(buf))
        return strn(id.base != NULL ? id.base : "", id.len);
    memcpy(buf, id.base, id.len);
    buf[id.len] = '\0';
    if (strspn(buf, "0123456789") != id.len || id.len > 18)
        return strn(id.base, id.len);
    return json_integer(strtoll(buf, NULL, 10));
}

static json_t *principal_json(const explain_t *x)
{
    const cph_principal_t *p = &x->principal;
    json_t *v;

    if (p->kind == CPH_PRINCIPAL_NONE)
        return json_null();
    v = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "kind", p->kind == CPH_PRINCIPAL_USER ? "user" : "api_key", "id",
                  id_json(p->id), "name", strn(p->name.base, p->name.len), "system", strn(p->system.base, p->system.len), "roles",
                  views_json(p->roles, p->num_roles), "effective_roles", effective_roles(x), "groups",
                  views_json(p->groups, p->num_groups), "superuser", p->superuser);
    if (v == NULL)
        cph_fatal(MODULE, "out of memory");
    return v;
}

static h2o_iovec_t pool_str(explain_t *x, const char *s)
{
    return h2o_strdup(&x->pool, s, strlen(s));
}

/* The names in list ([{"system", "name"}]) of system sys, as views in the pool. */
static h2o_iovec_t *names_in(explain_t *x, const json_t *list, const char *sys, size_t *n)
{
    h2o_iovec_t *out = h2o_mem_alloc_pool(&x->pool, sizeof(*out) * (json_array_size(list) + 1));
    const json_t *item;
    size_t i;

    *n = 0;
    json_array_foreach(list, i, item)
    {
        if (strcmp(sv(json_string_value(json_object_get(item, "system"))), sys) == 0)
            out[(*n)++] = pool_str(x, sv(json_string_value(json_object_get(item, "name"))));
    }
    return out;
}

static int in_list(const json_t *list, const char *s)
{
    const json_t *item;
    size_t i;

    json_array_foreach(list, i, item)
    {
        if (json_is_string(item) && strcmp(json_string_value(item), s) == 0)
            return 1;
    }
    return 0;
}

/* The "user" form: the principal a login of the stored user into sys would carry (docs/access.md section 2), or none. */
static void user_principal(explain_t *x, const char *service_system)
{
    const json_t *u = x->user;
    const char *name = sv(json_string_value(json_object_get(u, "username")));
    const char *sys = x->in->system != NULL ? x->in->system : service_system;
    int su = json_is_true(json_object_get(u, "superuser"));
    char id[24];

    if (!json_is_true(json_object_get(u, "enabled"))) {
        chain(x, "user %s is disabled: cannot log in, explained as a request without a credential", name);
        return;
    }
    if (sys != NULL && !su && !in_list(json_object_get(u, "systems"), sys)) {
        chain(x, "user %s is not a member of system %s: cannot log in to it, explained without a credential", name, sys);
        return;
    }
    snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(u, "id")));
    x->principal.kind = CPH_PRINCIPAL_USER;
    x->principal.id = pool_str(x, id);
    x->principal.name = pool_str(x, name);
    x->principal.system = pool_str(x, sys != NULL ? sys : "");
    x->principal.roles = names_in(x, json_object_get(u, "roles"), sys != NULL ? sys : "", &x->principal.num_roles);
    x->principal.groups = names_in(x, json_object_get(u, "groups"), sys != NULL ? sys : "", &x->principal.num_groups);
    x->principal.superuser = su;
    if (sys == NULL)
        chain(x, "user %s (id %s%s) from the database: no system given and the service has none, so no roles or groups", name, id,
              su ? ", superuser" : "");
    else
        chain(x, "user %s (id %s%s) from the database, as logged in to system %s", name, id, su ? ", superuser" : "", sys);
}

/* ---------------------------------------------------------------- the stages */

/* Canonical path (sanitize). 0 to go on, 1 when answered. */
static int stage_path(explain_t *x)
{
    const char *raw = x->in->path, *q = strchr(raw, '?');
    size_t len = q != NULL ? (size_t)(q - raw) : strlen(raw), outlen = 0;
    char *out = h2o_mem_alloc_pool(&x->pool, 3 * len + 1);

    if (cph_path_canonicalize(raw, len, out, &outlen) != 0) {
        chain(x, "path %.*s is refused by the canonicaliser -> 400 bad_path", (int)(len < 200 ? len : 200), raw);
        outcome(x, "bad_path", 400, "bad_path");
        return 1;
    }
    x->path = out;
    x->path_len = outlen;
    set(x, "canonical_path", strn(out, outlen));
    if (outlen == len && memcmp(out, raw, len) == 0)
        chain(x, "path %s (canonical)", out);
    else
        chain(x, "path %.*s -> %s", (int)(len < 200 ? len : 200), raw, out);
    if (q != NULL)
        chain(x, "the query is not used for matching");
    return 0;
}

/* The reserved /auth prefix (builtin): answered by the gateway itself, no route or rule applies. */
static int stage_builtin(explain_t *x)
{
    static const char *const api[] = {"/auth/login", "/auth/refresh", "/auth/logout"};
    int jwks = strcmp(x->path, CPH_AUTH_JWKS_PATH) == 0, fwd = 0;

    if (strncmp(x->path, "/auth", 5) != 0 || (x->path[5] != '\0' && x->path[5] != '/'))
        return 0;
    for (size_t i = 0; i != 3; ++i)
        fwd |= strcmp(x->path, api[i]) == 0;
    if (!jwks && !fwd) {
        chain(x, "%s is under the reserved prefix /auth and is no gateway resource -> 404", x->path);
        outcome(x, "not_found", 404, "builtin");
    } else if (jwks ? (x->method != CPH_METHOD_GET && x->method != CPH_METHOD_HEAD) : x->method != CPH_METHOD_POST) {
        chain(x, "%s is a gateway resource that allows only %s -> 405", x->path, jwks ? "GET, HEAD" : "POST");
        outcome(x, "method_not_allowed", 405, "builtin");
        set(x, "allow", json_string(jwks ? "GET, HEAD" : "POST"));
    } else {
        chain(x,
              jwks ? "%s: the gateway serves the JWKS itself, without authorization"
                   : "%s: forwarded to the control plane's auth API (auth.api; 503 when unset), without authorization",
              x->path);
        outcome(x, "allow", 200, "builtin");
    }
    return 1;
}

/* Host, path and method against the router. */
static int stage_route(explain_t *x)
{
    char host[HOST_MAX], list[CPH_METHOD_LIST_MAX];
    size_t hlen = x->in->host != NULL ? cph_router_host_normalize(x->in->host, strlen(x->in->host), host, sizeof(host)) : 0;
    int rc = x->snap->router != NULL ? cph_router_match(x->snap->router, host, hlen, x->path, x->path_len, x->method, &x->m) : 404;
    const cph_service_t *svc;

    host[hlen] = '\0';
    if (rc == 404) {
        chain(x, "no route matches host \"%s\" and path %s -> 404", host, x->path);
        outcome(x, "not_found", 404, "no_route");
        return 1;
    }
    if (rc == 405) {
        cph_method_list(x->m.allow, list, sizeof(list));
        chain(x, "the routes at path %s do not allow %s (they allow %s) -> 405", x->path, x->in->method, list);
        outcome(x, "method_not_allowed", 405, "method_not_allowed");
        set(x, "allow", json_string(list));
        return 1;
    }
    svc = x->m.route->service;
    set(x, "route", json_string(x->m.route->name));
    set(x, "service", json_string(svc->name));
    set(x, "service_system", str_or_null(svc->system));
    chain(x, "route %s (service %s, %s%s)", x->m.route->name, svc->name, svc->system != NULL ? "system " : "no system",
          svc->system != NULL ? svc->system : "");
    x->upstream = cph_router_upstream_path(&x->m, x->path, x->path_len);
    set(x, "upstream_path", strn(x->upstream.base, x->upstream.len));
    if (x->upstream.len != x->path_len || memcmp(x->upstream.base, x->path, x->path_len) != 0)
        chain(x, "strip_prefix: the upstream path is %.*s", (int)x->upstream.len, x->upstream.base);
    return 0;
}

/* The credential (authn): an invalid one is 401 before any rule (decision step 0). */
static int stage_credential(explain_t *x)
{
    const char *reason = NULL, *what = x->in->token != NULL ? "bearer token" : "API key";
    cph_authn_result_t r;

    if (x->in->user != NULL) {
        user_principal(x, x->m.route->service->system);
        return 0;
    }
    if (x->in->token == NULL && x->in->api_key == NULL) {
        chain(x, "no credential");
        return 0;
    }
    if (x->in->token != NULL)
        r = cph_authn_verify_jwt(x->snap, x->in->token, strlen(x->in->token), time(NULL), &x->pool, &x->principal, &reason);
    else
        r = cph_authn_verify_api_key(x->snap, x->in->api_key, strlen(x->in->api_key), NULL, 0, time(NULL), &x->principal, &reason);
    set(x, "credential", json_pack("{s:b, s:s}", "valid", r == CPH_AUTHN_OK, "reason", r == CPH_AUTHN_OK ? "ok" : sv(reason)));
    if (r != CPH_AUTHN_OK) {
        memset(&x->principal, 0, sizeof(x->principal));
        chain(x, "%s refused (%s) -> 401 before any rule is looked at", what, reason != NULL ? reason : "invalid");
        outcome(x, "unauthenticated", 401, "invalid_credential");
        return 1;
    }
    chain(x, "%s valid: %s %.*s (%.*s) in system %.*s%s", what, x->principal.kind == CPH_PRINCIPAL_USER ? "user" : "key",
          (int)x->principal.id.len, x->principal.id.base, (int)x->principal.name.len, x->principal.name.base,
          (int)x->principal.system.len, x->principal.system.base, x->principal.superuser ? ", superuser" : "");
    return 0;
}

/* The decision (authz) with its trace. */
static void stage_decide(explain_t *x)
{
    cph_authz_trace_t t;
    cph_authz_decision_t d;
    json_t *g;

    memset(&t, 0, sizeof(t));
    d = cph_authz_decide(x->snap, x->m.route, x->method, x->upstream.base, x->upstream.len, &x->principal, &t);
    if (t.rule != NULL) {
        set(x, "rule", rule_json(t.rule));
        chain(x, "rule #%lld %s %s (%s)", (long long)t.rule->id, t.rule->method, t.rule->pattern,
              t.rule->is_public ? "public" : "not public");
    } else {
        set(x, "default_access", json_string(access_name(x->m.route->default_access)));
        chain(x, "no rule of service %s matches %s %.*s: the route's default_access %s decides", x->m.route->service->name,
              x->in->method, (int)x->upstream.len, x->upstream.base, access_name(x->m.route->default_access));
    }
    outcome(x, decision_name(d), decision_status(d), t.reason != NULL ? t.reason : "");
    set(x, "granted_by", g = granted(t.reason, t.granted_by));
    chain(x, "%s (%s%s%s) -> %d", decision_name(d), t.reason != NULL ? t.reason : "", json_is_string(g) ? ", " : "",
          json_is_string(g) ? json_string_value(g) : "", decision_status(d));
    if (t.shadow_rule != NULL) {
        set(x, "shadow",
            json_pack("{s:o, s:s, s:s, s:o}", "rule", rule_json(t.shadow_rule), "decision", decision_name(t.shadow_decision),
                      "reason", t.shadow_reason != NULL ? t.shadow_reason : "", "granted_by",
                      granted(t.shadow_reason, t.shadow_granted_by)));
        chain(x, "shadow rule #%lld %s %s would %s (%s); not enforced, only counted", (long long)t.shadow_rule->id,
              t.shadow_rule->method, t.shadow_rule->pattern, t.shadow_decision == CPH_AUTHZ_ALLOW ? "allow" : "deny",
              t.shadow_reason != NULL ? t.shadow_reason : "");
    }
}

/* ---------------------------------------------------------------- explain */

/* The "user" form's database part, before anything else: an unknown user or system is a bad request. */
static int load_user(cph_db_t *db, const explain_in_t *in, json_t **user, cph_error_t *err)
{
    json_t *sys = NULL;
    int rc = -1;

    *user = NULL;
    if (in->user == NULL)
        return 0;
    if (db == NULL)
        return cph_error_set(err, "invalid", "/user", "the user form needs the database");
    cph_db_lock(db);
    if ((*user = cph_store_user_get(db, in->user, err)) == NULL) {
        if (strcmp(err->code, "not_found") == 0)
            cph_error_set(err, "not_found", "/user", "no such user");
        goto Exit;
    }
    if (in->system != NULL) {
        sys = cph_store_system_get(db, in->system, err); /* by id or code: a digit-only code must match as a code */
        if (sys == NULL && strcmp(err->code, "not_found") != 0)
            goto Exit;
        if (sys == NULL || strcmp(sv(json_string_value(json_object_get(sys, "code"))), in->system) != 0) {
            cph_error_set(err, "unknown_system", "/system", "no such system");
            goto Exit;
        }
    }
    rc = 0;
Exit:
    cph_db_unlock(db);
    json_decref(sys);
    if (rc != 0) {
        json_decref(*user);
        *user = NULL;
    }
    return rc;
}

static void explain_init(explain_t *x, const cph_snapshot_t *snap, const explain_in_t *in)
{
    memset(x, 0, sizeof(*x));
    x->snap = snap;
    x->in = in;
    x->method = cph_method_from(in->method, strlen(in->method));
    h2o_mem_init_pool(&x->pool);
    x->out = json_pack("{s:I, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n}", "version",
                       (json_int_t)snap->version, "decision", "status", "canonical_path", "route", "service", "service_system",
                       "upstream_path", "principal", "credential", "rule", "reason", "granted_by", "shadow");
    x->chain = json_array();
    if (x->out == NULL || x->chain == NULL)
        cph_fatal(MODULE, "out of memory");
}

json_t *cph_explain(const cph_snapshot_t *snap, cph_db_t *db, const json_t *request, cph_error_t *err)
{
    explain_in_t in;
    explain_t x;
    json_t *user, *out;

    if (parse_request(request, &in, err) != 0 || load_user(db, &in, &user, err) != 0)
        return NULL;
    explain_init(&x, snap, &in);
    x.user = user;
    if (!stage_path(&x) && !stage_builtin(&x) && !stage_route(&x) && !stage_credential(&x))
        stage_decide(&x);
    set(&x, "principal", principal_json(&x));
    set(&x, "chain", x.chain);
    out = x.out;
    h2o_mem_clear_pool(&x.pool);
    json_decref(user);
    return out;
}

/* ---------------------------------------------------------------- the built snapshot, cached */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cph_snapshot_t *cache_snap; /* guarded by cache_lock; one reference */

static cph_snapshot_t *cache_get(const char *epoch, uint64_t version, const char *hash)
{
    cph_snapshot_t *snap = NULL;

    pthread_mutex_lock(&cache_lock);
    if (cache_snap != NULL && cache_snap->version == version && strcmp(cache_snap->hash, hash) == 0 &&
        strcmp(cache_snap->epoch, epoch) == 0) {
        snap = cache_snap;
        cph_snapshot_retain(snap);
    }
    pthread_mutex_unlock(&cache_lock);
    return snap;
}

/* Keeps snap (the caller keeps its own reference) unless a newer one was cached meanwhile. */
static void cache_put(cph_snapshot_t *snap)
{
    cph_snapshot_t *old = NULL;

    pthread_mutex_lock(&cache_lock);
    if (cache_snap == NULL || cache_snap->version <= snap->version || strcmp(cache_snap->epoch, snap->epoch) != 0) {
        old = cache_snap;
        cph_snapshot_retain(snap);
        cache_snap = snap;
    }
    pthread_mutex_unlock(&cache_lock);
    if (old != NULL)
        cph_snapshot_release(old);
}

void cph_api_authz_cache_clear(void)
{
    cph_snapshot_t *old;

    pthread_mutex_lock(&cache_lock);
    old = cache_snap;
    cache_snap = NULL;
    pthread_mutex_unlock(&cache_lock);
    if (old != NULL)
        cph_snapshot_release(old);
}

/* The current snapshot, built (or from the cache), with a reference for the caller. NULL with err filled. */
static cph_snapshot_t *current_built(cph_db_t *db, cph_error_t *err)
{
    json_t *cur = cph_db_current_snapshot(db, 1);
    const char *epoch = json_string_value(json_object_get(cur, "epoch"));
    const char *hash = json_string_value(json_object_get(cur, "hash"));
    uint64_t version = (uint64_t)json_integer_value(json_object_get(cur, "version"));
    cph_snapshot_t *snap = NULL;

    if (epoch == NULL || hash == NULL || !json_is_object(json_object_get(cur, "body"))) {
        cph_error_set(err, "no_snapshot", "", "there is no snapshot yet");
        goto Exit;
    }
    if ((snap = cache_get(epoch, version, hash)) != NULL)
        goto Exit;
    if ((snap = cph_snapshot_build(json_object_get(cur, "body"), epoch, version, hash, "cp", err)) == NULL) {
        cph_log_error(MODULE, "the current snapshot (version %llu) does not compile: %s at %s", (unsigned long long)version,
                      err->msg, err->path);
        goto Exit;
    }
    cache_put(snap);
Exit:
    json_decref(cur);
    return snap;
}

/* ---------------------------------------------------------------- the resource */

static void explain(cph_api_req_t *req)
{
    cph_snapshot_t *snap;
    cph_error_t err;
    json_t *out;

    memset(&err, 0, sizeof(err));
    if ((snap = current_built(req->db, &err)) == NULL) {
        if (strcmp(err.code, "no_snapshot") == 0)
            cph_api_error(req, 503, "no_snapshot", NULL, err.msg);
        else
            cph_api_error(req, 500, "internal", NULL, "the current snapshot does not compile (see the control plane's log)");
        return;
    }
    if ((out = cph_explain(snap, req->db, req->body, &err)) == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, out);
    cph_snapshot_release(snap);
}

/* A 405 that names what the resource allows (its Allow header). */
static void not_allowed(cph_api_req_t *req, int allow, const char *msg)
{
    req->allow = allow;
    cph_api_error(req, 405, "method_not_allowed", NULL, msg);
}

void cph_api_authz(cph_api_req_t *req)
{
    if (req->key == NULL) {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
    } else if (strcmp(req->key, "explain") == 0) {
        if (req->method != CPH_API_POST)
            not_allowed(req, CPH_API_POST, "explain takes POST");
        else
            explain(req);
    } else if (strcmp(req->key, "shadow") == 0) {
        if (req->method != CPH_API_GET)
            not_allowed(req, CPH_API_GET, "shadow takes GET");
        else
            cph_api_reply(req, 200, req->dps != NULL ? cph_dpserver_shadow_stats(req->dps) : json_pack("{s:[]}", "endpoints"));
    } else {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
    }
}
