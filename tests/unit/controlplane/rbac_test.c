/*
 * rbac_test: the admin API's permission table (controlplane/rbac.c), on a real migrated database.
 *
 * The table is walked against the routed resources (cph_api_resources): every routed (resource, method) must have a
 * rule and no rule may describe a route that does not exist, so a new route cannot ship unchecked. Then every
 * routed call is tried as owner, editor and viewer; and every SCOPED write is tried by editors in and out of scope:
 * the stored object's system and the body's both count (moving an object into or out of scope is refused), objects of
 * no system and superusers are the owner's, a key means to the check what it means to the handler (a digit-only key
 * is an id first), and hostile keys find nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "controlplane/api.h"
#include "controlplane/rbac.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_group.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_role.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"
#include "db_fixture.h"

#define PW "\"password\":\"long enough password\""
#define TARGETS "\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]"

static const int METHODS[] = {CPH_API_GET, CPH_API_POST, CPH_API_PUT, CPH_API_DELETE};

/* ---------------------------------------------------------------- the world every scoped test starts from */

typedef struct st_world_t {
    fixture_t *fx;
    int64_t sa, sb, sc;                      /* systems "sa", "sb", "sc" */
    int64_t svc_a, svc_b, svc_none;          /* services in sa, sb and none */
    int64_t ep_a, ep_b, ep_none;             /* an endpoint rule on each */
    cph_admin_principal_t owner, viewer;     /* owner, viewer */
    cph_admin_principal_t ed_a, ed_ab, ed_0; /* editors of {sa}, {sa, sb}, {} */
} world_t;

static world_t W;

static void principal(cph_admin_principal_t *p, cph_admin_role_t role, int64_t s1, int64_t s2)
{
    memset(p, 0, sizeof(*p));
    p->role = role;
    snprintf(p->actor, sizeof(p->actor), "account:test");
    if (s1 != 0)
        p->systems[p->nsystems++] = s1;
    if (s2 != 0)
        p->systems[p->nsystems++] = s2;
}

static int setup(void **state)
{
    cph_db_t *db;

    db_fixture_setup(state, "rbac");
    W.fx = *state;
    db = W.fx->db;
    W.sa = written(db, &cph_store_system_ops, 0, "{\"code\":\"sa\",\"name\":\"A\"}");
    W.sb = written(db, &cph_store_system_ops, 0, "{\"code\":\"sb\",\"name\":\"B\"}");
    W.sc = written(db, &cph_store_system_ops, 0, "{\"code\":\"sc\",\"name\":\"C\"}");
    W.svc_a = written(db, &cph_store_service_ops, 0, "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sa\"}");
    W.svc_b = written(db, &cph_store_service_ops, 0, "{\"name\":\"svc-b\"," TARGETS ",\"system\":\"sb\"}");
    W.svc_none = written(db, &cph_store_service_ops, 0, "{\"name\":\"svc-none\"," TARGETS "}");
    written(db, &cph_store_route_ops, 0, "{\"name\":\"r-a\",\"service\":\"svc-a\",\"paths\":[\"/a\"]}");
    written(db, &cph_store_route_ops, 0, "{\"name\":\"r-b\",\"service\":\"svc-b\",\"paths\":[\"/b\"]}");
    written(db, &cph_store_route_ops, 0, "{\"name\":\"r-none\",\"service\":\"svc-none\",\"paths\":[\"/n\"]}");
    written(db, &cph_store_route_ops, 0,
            "{\"name\":\"agg\",\"service\":\"svc-a\",\"paths\":[\"/agg\"],\"kind\":\"aggregate\",\"aggregate\":{\"pattern\":"
            "\"/agg/{id}\",\"backends\":[{\"name\":\"a\",\"service\":\"svc-a\",\"path\":\"/x/{id}\",\"key\":\"a\"},{\"name\":\"b\","
            "\"service\":\"svc-b\",\"path\":\"/y/{id}\",\"key\":\"b\"}]}}");
    W.ep_a = written(db, &cph_store_endpoint_ops, 0, "{\"service\":\"svc-a\",\"method\":\"GET\",\"path\":\"/a\"}");
    W.ep_b = written(db, &cph_store_endpoint_ops, 0, "{\"service\":\"svc-b\",\"method\":\"GET\",\"path\":\"/b\"}");
    W.ep_none = written(db, &cph_store_endpoint_ops, 0, "{\"service\":\"svc-none\",\"method\":\"GET\",\"path\":\"/n\"}");
    written(db, &cph_store_role_ops, 0, "{\"system\":\"sa\",\"name\":\"reader\"}");
    written(db, &cph_store_role_ops, 0, "{\"system\":\"sb\",\"name\":\"reader\"}");
    written(db, &cph_store_group_ops, 0, "{\"system\":\"sa\",\"name\":\"staff\"}");
    written(db, &cph_store_group_ops, 0, "{\"system\":\"sb\",\"name\":\"staff\"}");
    written(db, &cph_store_api_key_ops, 0, "{\"system\":\"sa\",\"name\":\"k\"}");
    written(db, &cph_store_api_key_ops, 0, "{\"system\":\"sb\",\"name\":\"k\"}");
    written(db, &cph_store_issuer_ops, 0,
            "{\"name\":\"iss-a\",\"issuer\":\"https://a.example\",\"jwks_url\":\"https://a.example/j\",\"system\":\"sa\"}");
    written(db, &cph_store_issuer_ops, 0,
            "{\"name\":\"iss-b\",\"issuer\":\"https://b.example\",\"jwks_url\":\"https://b.example/j\",\"system\":\"sb\"}");
    written(db, &cph_store_user_ops, 0, "{\"username\":\"ua\"," PW ",\"systems\":[\"sa\"]}");
    written(db, &cph_store_user_ops, 0, "{\"username\":\"ub\"," PW ",\"systems\":[\"sb\"]}");
    written(db, &cph_store_user_ops, 0, "{\"username\":\"uab\"," PW ",\"systems\":[\"sa\",\"sb\"]}");
    written(db, &cph_store_user_ops, 0, "{\"username\":\"unone\"," PW "}");
    written(db, &cph_store_user_ops, 0, "{\"username\":\"root\"," PW ",\"systems\":[\"sa\"],\"superuser\":true}");
    principal(&W.owner, CPH_ADMIN_OWNER, 0, 0);
    principal(&W.viewer, CPH_ADMIN_VIEWER, 0, 0);
    principal(&W.ed_a, CPH_ADMIN_EDITOR, W.sa, 0);
    principal(&W.ed_ab, CPH_ADMIN_EDITOR, W.sa, W.sb);
    principal(&W.ed_0, CPH_ADMIN_EDITOR, 0, 0);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

/* cph_rbac_check with body text (NULL: none); returns 0 or -1 with err. */
static int check(const cph_admin_principal_t *p, const char *res, const char *key, int method, const char *body, cph_error_t *err)
{
    json_t *b = body != NULL ? parse(body) : NULL;
    int rc = cph_rbac_check(W.fx->db, p, res, key, method, b, err);

    json_decref(b);
    return rc;
}

static const char *method_name(int m)
{
    return m == CPH_API_GET ? "GET" : m == CPH_API_POST ? "POST" : m == CPH_API_PUT ? "PUT" : "DELETE";
}

/* One scoped case: want NULL = allowed, else the error code (and path, when not NULL; msg_has, when not NULL). */
typedef struct st_case_t {
    const cph_admin_principal_t *p;
    const char *res, *key;
    int method;
    const char *body;
    const char *want, *path, *msg_has;
} case_t;

static void run_cases(const case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        const case_t *c = &cases[i];
        cph_error_t err;
        int rc = check(c->p, c->res, c->key, c->method, c->body, &err);
        if (c->want == NULL && rc != 0)
            fail_msg("case %zu: %s %s/%s %s: refused %s at '%s' (%s)", i, method_name(c->method), c->res, c->key ? c->key : "",
                     c->body ? c->body : "", err.code, err.path, err.msg);
        if (c->want == NULL)
            continue;
        if (rc == 0)
            fail_msg("case %zu: %s %s/%s %s: allowed, want %s", i, method_name(c->method), c->res, c->key ? c->key : "",
                     c->body ? c->body : "", c->want);
        if (strcmp(err.code, c->want) != 0 || (c->path != NULL && strcmp(err.path, c->path) != 0) ||
            (c->msg_has != NULL && strstr(err.msg, c->msg_has) == NULL) || err.msg[0] == '\0')
            fail_msg("case %zu: %s %s/%s: want %s at '%s' (%s), got %s at '%s' (%s)", i, method_name(c->method), c->res,
                     c->key ? c->key : "", c->want, c->path ? c->path : "*", c->msg_has ? c->msg_has : "*", err.code, err.path,
                     err.msg);
    }
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))
#define FORBIDDEN "forbidden"
#define NOT_SA "system sb is not in your scope"
#define OWNER_ONLY "owner role"

/* ---------------------------------------------------------------- the table against the routes */

/* Every routed (resource, collection|item, method) has a rule; nested resources also under a sub-path key. */
static void test_every_route_has_a_rule(void **state)
{
    size_t n;
    const cph_api_resource_info_t *res = cph_api_resources(&n);

    (void)state;
    assert_true(n >= 20);
    for (size_t i = 0; i < n; ++i)
        for (size_t m = 0; m < 4; ++m) {
            if ((res[i].collection_methods & METHODS[m]) && cph_rbac_rule(res[i].name, NULL, METHODS[m]) == CPH_RBAC_NONE)
                fail_msg("no rule for %s /api/v1/%s", method_name(METHODS[m]), res[i].name);
            if ((res[i].item_methods & METHODS[m]) && cph_rbac_rule(res[i].name, "x", METHODS[m]) == CPH_RBAC_NONE)
                fail_msg("no rule for %s /api/v1/%s/{key}", method_name(METHODS[m]), res[i].name);
            if (res[i].nested && (res[i].item_methods & METHODS[m]) &&
                cph_rbac_rule(res[i].name, "1/x", METHODS[m]) == CPH_RBAC_NONE)
                fail_msg("no rule for %s /api/v1/%s/{key}/{sub}", method_name(METHODS[m]), res[i].name);
        }
    /* what is not routed has no rule: an unknown resource, a method a resource does not take, a bad method */
    assert_int_equal(cph_rbac_rule("nope", NULL, CPH_API_GET), CPH_RBAC_NONE);
    assert_int_equal(cph_rbac_rule("dataplanes", NULL, CPH_API_POST), CPH_RBAC_NONE);
    assert_int_equal(cph_rbac_rule("services", NULL, CPH_API_GET | CPH_API_POST), CPH_RBAC_NONE);
    assert_int_equal(cph_rbac_rule("services", NULL, 0), CPH_RBAC_NONE);
    assert_int_equal(cph_rbac_rule(NULL, NULL, CPH_API_GET), CPH_RBAC_NONE);
}

/* No row describes a call that is not routed (a stale row would hide a missing one after a route is renamed). */
static void test_no_stale_rule(void **state)
{
    size_t n, nrules;
    const cph_api_resource_info_t *res = cph_api_resources(&n);
    const cph_rbac_rule_info_t *rules = cph_rbac_rules(&nrules);

    (void)state;
    assert_true(nrules >= n);
    for (size_t r = 0; r < nrules; ++r) {
        size_t i = 0;
        while (i < n && strcmp(res[i].name, rules[r].resource) != 0)
            ++i;
        if (i == n)
            fail_msg("rule %zu names resource %s, which is not routed", r, rules[r].resource);
        int routed = rules[r].item ? res[i].item_methods : res[i].collection_methods;
        if (rules[r].methods == 0 || (rules[r].methods & ~routed) != 0)
            fail_msg("rule %zu (%s %s) covers methods that are not routed", r, rules[r].resource,
                     rules[r].item ? "item" : "collection");
        if (rules[r].rule == CPH_RBAC_NONE)
            fail_msg("rule %zu (%s) has no rule", r, rules[r].resource);
        assert_true(rules[r].key == NULL || rules[r].item);
    }
}

static cph_rbac_rule_t want_rule(const char *res, int item, int m)
{
    static const char *const SCOPED[] = {"services", "routes",  "endpoints", "roles", "groups",
                                         "api_keys", "issuers", "users",     NULL};

    if (strcmp(res, "admin_accounts") == 0)
        return CPH_RBAC_OWNER;
    if (strcmp(res, "admin") == 0 || strcmp(res, "admin_tokens") == 0)
        return CPH_RBAC_ANY;
    if (m == CPH_API_GET || strcmp(res, "authz") == 0)
        return CPH_RBAC_VIEW;
    if (strcmp(res, "cache") == 0 || (strcmp(res, "systems") == 0 && item && m == CPH_API_PUT))
        return CPH_RBAC_SCOPED;
    for (size_t i = 0; SCOPED[i] != NULL; ++i)
        if (strcmp(res, SCOPED[i]) == 0)
            return CPH_RBAC_SCOPED;
    return CPH_RBAC_OWNER; /* systems POST/DELETE, signing_keys rotate, snapshots rollback */
}

/* The contract's policy (CONTRACT11 section 2), restated independently of the table. */
static void test_rules_follow_the_contract(void **state)
{
    size_t n;
    const cph_api_resource_info_t *res = cph_api_resources(&n);

    (void)state;
    for (size_t i = 0; i < n; ++i)
        for (size_t m = 0; m < 4; ++m)
            for (int item = 0; item < 2; ++item) {
                if (((item ? res[i].item_methods : res[i].collection_methods) & METHODS[m]) == 0)
                    continue;
                cph_rbac_rule_t got = cph_rbac_rule(res[i].name, item ? "x" : NULL, METHODS[m]);
                if (got != want_rule(res[i].name, item, METHODS[m]))
                    fail_msg("%s %s%s: rule %d, want %d", method_name(METHODS[m]), res[i].name, item ? "/x" : "", got,
                             want_rule(res[i].name, item, METHODS[m]));
            }
    /* the one key-specific row: listing Vault's secret names is the owner's, the integration states are anybody's */
    assert_int_equal(cph_rbac_rule("integrations", "vault/paths", CPH_API_GET), CPH_RBAC_OWNER);
    assert_int_equal(cph_rbac_rule("integrations", "vault", CPH_API_GET), CPH_RBAC_VIEW);
    assert_int_equal(cph_rbac_rule("snapshots", "3/rollback", CPH_API_POST), CPH_RBAC_OWNER);
    assert_int_equal(cph_rbac_rule("snapshots", "3/diff", CPH_API_GET), CPH_RBAC_VIEW);
}

/*
 * Every routed call by every role, without a body: owner always passes; viewer only ANY/VIEW; an editor ANY/VIEW, never
 * OWNER, and a SCOPED call on an object of its own system (sa) - or, when there is no object, refused for lack of one.
 */
static void test_roles_over_every_route(void **state)
{
    size_t n;
    const cph_api_resource_info_t *res = cph_api_resources(&n);
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i < n; ++i)
        for (size_t m = 0; m < 4; ++m)
            for (int item = 0; item < 2; ++item) {
                const char *key = item ? "x" : NULL;
                int bit = METHODS[m];
                if (((item ? res[i].item_methods : res[i].collection_methods) & bit) == 0)
                    continue;
                cph_rbac_rule_t rule = cph_rbac_rule(res[i].name, key, bit);
                int open = rule == CPH_RBAC_ANY || rule == CPH_RBAC_VIEW;
                if (check(&W.owner, res[i].name, key, bit, NULL, &err) != 0)
                    fail_msg("owner refused %s %s: %s", method_name(bit), res[i].name, err.msg);
                if ((check(&W.viewer, res[i].name, key, bit, NULL, &err) == 0) != open)
                    fail_msg("viewer %s %s %s: %s", open ? "refused" : "allowed", method_name(bit), res[i].name, err.msg);
                if (!open) {
                    assert_string_equal(err.code, FORBIDDEN);
                    assert_non_null(strstr(err.msg, rule == CPH_RBAC_OWNER ? "owner" : "editor"));
                }
                if (rule == CPH_RBAC_OWNER) {
                    assert_int_equal(check(&W.ed_ab, res[i].name, key, bit, NULL, &err), -1);
                    assert_string_equal(err.code, FORBIDDEN);
                    assert_non_null(strstr(err.msg, "owner"));
                } else if (open && check(&W.ed_a, res[i].name, key, bit, NULL, &err) != 0) {
                    fail_msg("editor refused %s %s: %s", method_name(bit), res[i].name, err.msg);
                }
            }
}

/* A principal without a known role, and no principal at all, get nothing - not even a read. */
static void test_no_role_no_access(void **state)
{
    cph_admin_principal_t nobody;
    cph_error_t err;

    (void)state;
    principal(&nobody, 0, W.sa, 0);
    assert_int_equal(check(&nobody, "services", NULL, CPH_API_GET, NULL, &err), -1);
    assert_string_equal(err.code, FORBIDDEN);
    principal(&nobody, 7, 0, 0);
    assert_int_equal(check(&nobody, "admin", "me", CPH_API_GET, NULL, &err), -1);
    assert_int_equal(check(NULL, "services", NULL, CPH_API_GET, NULL, &err), -1);
    assert_string_equal(err.code, FORBIDDEN);
    assert_int_equal(check(&W.owner, "nope", NULL, CPH_API_GET, NULL, &err), -1); /* no rule: refused for everyone */
    assert_string_equal(err.code, FORBIDDEN);
}

/* ---------------------------------------------------------------- SCOPED writes, resource by resource */

static void test_services(void **state)
{
    char id_b[24];
    const case_t cases[] = {
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS ",\"system\":\"sa\"}", NULL, NULL, NULL},
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS ",\"system\":\"sb\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_ab, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS ",\"system\":\"sb\"}", NULL, NULL, NULL},
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS "}", FORBIDDEN, "/system", OWNER_ONLY},
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS ",\"system\":null}", FORBIDDEN, "/system", OWNER_ONLY},
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\",\"system\":\"zz\"}", "unknown_system", "/system", NULL},
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\",\"system\":7}", "invalid", "/system", NULL},
        {&W.ed_a, "services", NULL, CPH_API_POST, "{\"name\":\"n\",\"system\":[\"sa\"]}", "invalid", "/system", NULL},
        {&W.owner, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS "}", NULL, NULL, NULL},
        {&W.viewer, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS ",\"system\":\"sa\"}", FORBIDDEN, "", "editor"},
        {&W.ed_0, "services", NULL, CPH_API_POST, "{\"name\":\"n\"," TARGETS ",\"system\":\"sa\"}", FORBIDDEN, "/system",
         "system sa is not in your scope"},
        /* item writes: the stored system, then the body's */
        {&W.ed_a, "services", "svc-a", CPH_API_PUT, "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sa\"}", NULL, NULL, NULL},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT, "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sb\"}", FORBIDDEN, "/system",
         NOT_SA},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT, "{\"name\":\"svc-a\"," TARGETS "}", FORBIDDEN, "/system", OWNER_ONLY},
        {&W.ed_a, "services", "svc-b", CPH_API_PUT, "{\"name\":\"svc-b\"," TARGETS ",\"system\":\"sa\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "services", "svc-none", CPH_API_PUT, "{\"name\":\"x\"," TARGETS ",\"system\":\"sa\"}", FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_ab, "services", "svc-b", CPH_API_PUT, "{\"name\":\"svc-b\"," TARGETS ",\"system\":\"sa\"}", NULL, NULL, NULL},
        {&W.ed_a, "services", "svc-a", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.ed_a, "services", "svc-b", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "services", "svc-none", CPH_API_DELETE, NULL, FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_a, "services", "zz", CPH_API_DELETE, NULL, "not_found", NULL, NULL},
        {&W.ed_a, "services", id_b, CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA}, /* by id */
        {&W.owner, "services", "svc-none", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.viewer, "services", "svc-a", CPH_API_DELETE, NULL, FORBIDDEN, "", "editor"},
        /* Vault credentials: the owner's, unless unchanged with an unchanged upstream */
        {&W.ed_a, "services", NULL, CPH_API_POST,
         "{\"name\":\"n\"," TARGETS ",\"system\":\"sa\",\"credentials\":{\"vault_path\":\"x\",\"headers\":{\"a\":\"{{k}}\"}}}",
         FORBIDDEN, "/credentials", OWNER_ONLY},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT,
         "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sa\",\"credentials\":{\"vault_path\":\"x\",\"headers\":{\"a\":\"{{k}}\"}}}",
         FORBIDDEN, "/credentials", OWNER_ONLY},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT, "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sa\",\"credentials\":null}", NULL,
         NULL, NULL},
    };

    (void)state;
    snprintf(id_b, sizeof(id_b), "%lld", (long long)W.svc_b);
    RUN(cases);
}

/* A service that has credentials: an editor may keep them as they are (same credentials, same targets), nothing more. */
static void test_service_credentials_kept(void **state)
{
#define CREDS "\"credentials\":{\"vault_path\":\"svc/a\",\"headers\":{\"x-key\":\"{{k}}\"}}"
    const case_t cases[] = {
        {&W.ed_a, "services", "svc-a", CPH_API_PUT,
         "{\"name\":\"svc-a\",\"targets\":[{\"url\":\"http://127.0.0.1:9\",\"weight\":1}],\"system\":\"sa\",\"timeout_ms\":5," CREDS
         "}",
         NULL, NULL, NULL},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT,
         "{\"name\":\"svc-a\",\"targets\":[{\"url\":\"http://evil.example:80\",\"weight\":1}],\"system\":\"sa\"," CREDS "}",
         FORBIDDEN, "/credentials", OWNER_ONLY},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT,
         "{\"name\":\"svc-a\",\"targets\":[],\"system\":\"sa\",\"consul\":{\"service\":\"other\"}," CREDS "}", FORBIDDEN,
         "/credentials", OWNER_ONLY},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT,
         "{\"name\":\"svc-a\",\"targets\":[{\"url\":\"http://127.0.0.1:9\",\"weight\":1}],\"system\":\"sa\",\"credentials\":{"
         "\"vault_path\":\"svc/b\",\"headers\":{\"x-key\":\"{{k}}\"}}}",
         FORBIDDEN, "/credentials", OWNER_ONLY},
        {&W.ed_a, "services", "svc-a", CPH_API_PUT, "{\"name\":\"svc-a\",\"targets\":[],\"system\":\"sa\"}", NULL, NULL, NULL},
    };

    (void)state;
    written(W.fx->db, &cph_store_service_ops, W.svc_a, "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sa\"," CREDS "}");
    RUN(cases);
#undef CREDS
}

static void test_routes(void **state)
{
#define AGG(b2)                                                                                                                    \
    "\"kind\":\"aggregate\",\"aggregate\":{\"pattern\":\"/x/"                                                                      \
    "{id}\",\"backends\":[{\"name\":\"a\",\"service\":\"svc-a\",\"path\":\"/a\"},{\"name\":\"b\",\"service\":\"" b2                \
    "\",\"path\":\"/b\"}]}"
    const case_t cases[] = {
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-a\",\"paths\":[\"/x\"]}", NULL, NULL, NULL},
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-b\",\"paths\":[\"/x\"]}", FORBIDDEN, "/service",
         NOT_SA},
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-none\"}", FORBIDDEN, "/service", OWNER_ONLY},
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"zz\"}", "unknown_service", "/service", NULL},
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-a\"," AGG("svc-a") "}", NULL, NULL, NULL},
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-a\"," AGG("svc-b") "}", FORBIDDEN,
         "/aggregate/backends/1/service", NOT_SA},
        {&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-a\"," AGG("svc-none") "}", FORBIDDEN,
         "/aggregate/backends/1/service", OWNER_ONLY},
        {&W.ed_ab, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-a\"," AGG("svc-b") "}", NULL, NULL, NULL},
        {&W.ed_a, "routes", "r-a", CPH_API_PUT, "{\"name\":\"r-a\",\"service\":\"svc-a\",\"paths\":[\"/a\"]}", NULL, NULL, NULL},
        {&W.ed_a, "routes", "r-a", CPH_API_PUT, "{\"name\":\"r-a\",\"service\":\"svc-b\",\"paths\":[\"/a\"]}", FORBIDDEN,
         "/service", NOT_SA},
        {&W.ed_a, "routes", "r-b", CPH_API_PUT, "{\"name\":\"r-b\",\"service\":\"svc-a\",\"paths\":[\"/b\"]}", FORBIDDEN, "",
         NOT_SA},
        {&W.ed_a, "routes", "r-none", CPH_API_PUT, "{\"name\":\"r\",\"service\":\"svc-a\"}", FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_a, "routes", "r-a", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.ed_a, "routes", "r-b", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "routes", "agg", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA}, /* its stored backend calls svc-b */
        {&W.ed_ab, "routes", "agg", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.ed_a, "routes", "zz", CPH_API_PUT, "{\"name\":\"zz\",\"service\":\"svc-a\"}", "not_found", NULL, NULL},
    };

    (void)state;
    RUN(cases);
#undef AGG
}

static void test_endpoints(void **state)
{
    char a[24], b[24], none[24];
    const case_t cases[] = {
        {&W.ed_a, "endpoints", NULL, CPH_API_POST, "{\"service\":\"svc-a\",\"method\":\"GET\",\"path\":\"/x\"}", NULL, NULL, NULL},
        {&W.ed_a, "endpoints", NULL, CPH_API_POST, "{\"service\":\"svc-b\",\"path\":\"/x\"}", FORBIDDEN, "/service", NOT_SA},
        {&W.ed_a, "endpoints", NULL, CPH_API_POST, "{\"service\":\"svc-none\",\"path\":\"/x\"}", FORBIDDEN, "/service", OWNER_ONLY},
        {&W.ed_a, "endpoints", a, CPH_API_PUT, "{\"service\":\"svc-a\",\"path\":\"/a\",\"public\":true}", NULL, NULL, NULL},
        {&W.ed_a, "endpoints", a, CPH_API_PUT, "{\"service\":\"svc-b\",\"path\":\"/a\"}", FORBIDDEN, "/service", NOT_SA},
        {&W.ed_a, "endpoints", b, CPH_API_PUT, "{\"service\":\"svc-a\",\"path\":\"/b\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "endpoints", b, CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "endpoints", none, CPH_API_DELETE, NULL, FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_ab, "endpoints", b, CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.ed_a, "endpoints", "99999", CPH_API_DELETE, NULL, "not_found", NULL, NULL},
        {&W.viewer, "endpoints", a, CPH_API_DELETE, NULL, FORBIDDEN, "", "editor"},
    };

    (void)state;
    snprintf(a, sizeof(a), "%lld", (long long)W.ep_a);
    snprintf(b, sizeof(b), "%lld", (long long)W.ep_b);
    snprintf(none, sizeof(none), "%lld", (long long)W.ep_none);
    RUN(cases);
}

/* Roles, groups, api keys and issuers: their own system, stored and in the body (keys "<code>:<name>" or ids). */
static void test_system_members(void **state)
{
    const case_t cases[] = {
        {&W.ed_a, "roles", NULL, CPH_API_POST, "{\"system\":\"sa\",\"name\":\"x\"}", NULL, NULL, NULL},
        {&W.ed_a, "roles", NULL, CPH_API_POST, "{\"system\":\"sb\",\"name\":\"x\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "roles", NULL, CPH_API_POST, "{\"system\":\"zz\",\"name\":\"x\"}", "unknown_system", "/system", NULL},
        {&W.ed_a, "roles", NULL, CPH_API_POST, "{\"system\":null,\"name\":\"x\"}", "invalid", "/system", NULL},
        {&W.ed_a, "roles", "sa:reader", CPH_API_PUT, "{\"system\":\"sa\",\"name\":\"r2\"}", NULL, NULL, NULL},
        {&W.ed_a, "roles", "sa:reader", CPH_API_PUT, "{\"system\":\"sb\",\"name\":\"reader\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "roles", "sb:reader", CPH_API_PUT, "{\"system\":\"sa\",\"name\":\"reader\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "roles", "sb:reader", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "roles", "sa:reader", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.ed_a, "groups", NULL, CPH_API_POST, "{\"system\":\"sa\",\"name\":\"x\",\"roles\":[\"reader\"]}", NULL, NULL, NULL},
        {&W.ed_a, "groups", NULL, CPH_API_POST, "{\"system\":\"sb\",\"name\":\"x\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "groups", "sa:staff", CPH_API_PUT, "{\"system\":\"sb\",\"name\":\"staff\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "groups", "sb:staff", CPH_API_PUT, "{\"system\":\"sa\",\"name\":\"staff\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "groups", "sb:staff", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_ab, "groups", "sb:staff", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        /* an api key's PUT merges: no "system" keeps the stored one */
        {&W.ed_a, "api_keys", "sa:k", CPH_API_PUT, "{\"revoked\":true}", NULL, NULL, NULL},
        {&W.ed_a, "api_keys", "sb:k", CPH_API_PUT, "{\"revoked\":true}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "api_keys", "sa:k", CPH_API_PUT, "{\"system\":\"sb\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "api_keys", NULL, CPH_API_POST, "{\"system\":\"sb\",\"name\":\"ci\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "api_keys", NULL, CPH_API_POST, "{\"system\":\"sa\",\"name\":\"ci\"}", NULL, NULL, NULL},
        {&W.ed_a, "api_keys", "sb:k", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "issuers", NULL, CPH_API_POST, "{\"name\":\"i\",\"system\":\"sa\"}", NULL, NULL, NULL},
        {&W.ed_a, "issuers", NULL, CPH_API_POST, "{\"name\":\"i\",\"system\":\"sb\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "issuers", "iss-a", CPH_API_PUT, "{\"name\":\"iss-a\",\"system\":\"sb\"}", FORBIDDEN, "/system", NOT_SA},
        {&W.ed_a, "issuers", "iss-b", CPH_API_PUT, "{\"name\":\"iss-b\",\"system\":\"sa\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "issuers", "iss-b", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "issuers", "iss-a", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.ed_0, "issuers", "iss-a", CPH_API_DELETE, NULL, FORBIDDEN, "", "system sa is not in your scope"},
    };

    (void)state;
    RUN(cases);
}

static void test_users(void **state)
{
    const case_t cases[] = {
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\"," PW ",\"systems\":[\"sa\"]}", NULL, NULL, NULL},
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\",\"systems\":[\"sa\",\"sb\"]}", FORBIDDEN, "/systems/1", NOT_SA},
        {&W.ed_ab, "users", NULL, CPH_API_POST, "{\"username\":\"n\",\"systems\":[\"sa\",\"sb\"]}", NULL, NULL, NULL},
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\",\"systems\":[]}", FORBIDDEN, "/systems", OWNER_ONLY},
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\"}", FORBIDDEN, "/systems", OWNER_ONLY},
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\",\"systems\":\"sa\"}", "invalid", "/systems", NULL},
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\",\"systems\":[\"sa\",1]}", "invalid", "/systems/1", NULL},
        {&W.ed_a, "users", NULL, CPH_API_POST, "{\"username\":\"n\",\"systems\":[\"sa\"],\"superuser\":true}", FORBIDDEN,
         "/superuser", OWNER_ONLY},
        {&W.ed_a, "users", NULL, CPH_API_POST,
         "{\"username\":\"n\",\"systems\":[\"sa\"],\"roles\":[{\"system\":\"sb\",\"name\":\"reader\"}]}", FORBIDDEN,
         "/roles/0/system", NOT_SA},
        {&W.ed_a, "users", NULL, CPH_API_POST,
         "{\"username\":\"n\",\"systems\":[\"sa\"],\"groups\":[{\"system\":\"sb\",\"name\":\"staff\"}]}", FORBIDDEN,
         "/groups/0/system", NOT_SA},
        {&W.ed_a, "users", "ua", CPH_API_PUT, "{\"username\":\"ua\",\"systems\":[\"sa\"],\"enabled\":false}", NULL, NULL, NULL},
        {&W.ed_a, "users", "UA", CPH_API_PUT, "{\"username\":\"ua\",\"systems\":[\"sa\",\"sb\"]}", FORBIDDEN, "/systems/1", NOT_SA},
        {&W.ed_a, "users", "ua", CPH_API_PUT, "{\"username\":\"ua\"}", FORBIDDEN, "/systems", OWNER_ONLY},
        {&W.ed_a, "users", "uab", CPH_API_PUT, "{\"username\":\"uab\",\"systems\":[\"sa\"]}", FORBIDDEN, "", NOT_SA},
        {&W.ed_ab, "users", "uab", CPH_API_PUT, "{\"username\":\"uab\",\"systems\":[\"sa\"]}", NULL, NULL, NULL},
        {&W.ed_a, "users", "ub", CPH_API_DELETE, NULL, FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "users", "unone", CPH_API_DELETE, NULL, FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_a, "users", "root", CPH_API_PUT, "{\"username\":\"root\"," PW ",\"systems\":[\"sa\"]}", FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_a, "users", "root", CPH_API_DELETE, NULL, FORBIDDEN, "", "superuser"},
        {&W.ed_a, "users", "ua", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.owner, "users", "root", CPH_API_DELETE, NULL, NULL, NULL, NULL},
    };

    (void)state;
    RUN(cases);
}

static void test_systems_and_purge(void **state)
{
    char id_b[24];
    const case_t cases[] = {
        {&W.ed_a, "systems", "sa", CPH_API_PUT, "{\"code\":\"sa2\",\"name\":\"A\"}", NULL, NULL, NULL},
        {&W.ed_a, "systems", "sb", CPH_API_PUT, "{\"code\":\"sb\",\"name\":\"B\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "systems", id_b, CPH_API_PUT, "{\"code\":\"sb\",\"name\":\"B\"}", FORBIDDEN, "", NOT_SA},
        {&W.ed_a, "systems", "zz", CPH_API_PUT, "{\"code\":\"zz\",\"name\":\"Z\"}", "not_found", NULL, NULL},
        {&W.ed_ab, "systems", NULL, CPH_API_POST, "{\"code\":\"sd\",\"name\":\"D\"}", FORBIDDEN, "", OWNER_ONLY},
        {&W.ed_ab, "systems", "sa", CPH_API_DELETE, NULL, FORBIDDEN, "", OWNER_ONLY},
        {&W.owner, "systems", "sa", CPH_API_DELETE, NULL, NULL, NULL, NULL},
        {&W.viewer, "systems", "sa", CPH_API_PUT, "{\"code\":\"sa\",\"name\":\"A\"}", FORBIDDEN, "", "editor"},
        {&W.ed_a, "cache", "purge", CPH_API_POST, "{\"route\":\"r-a\",\"prefix\":\"/x\"}", NULL, NULL, NULL},
        {&W.ed_a, "cache", "purge", CPH_API_POST, "{\"route\":\"r-b\"}", FORBIDDEN, "/route", NOT_SA},
        {&W.ed_a, "cache", "purge", CPH_API_POST, "{\"route\":\"r-none\"}", FORBIDDEN, "/route", OWNER_ONLY},
        {&W.ed_a, "cache", "purge", CPH_API_POST, "{\"route\":\"zz\"}", "not_found", "/route", NULL},
        {&W.ed_a, "cache", "purge", CPH_API_POST, "{\"route\":\"r-a\",\"regex\":\".\"}", "unknown_field", "/regex", NULL},
        {&W.ed_a, "cache", "purge", CPH_API_POST, "{}", "missing_field", "/route", NULL},
        {&W.ed_a, "cache", "other", CPH_API_POST, "{\"route\":\"r-a\"}", "not_found", NULL, NULL},
        {&W.viewer, "cache", "purge", CPH_API_POST, "{\"route\":\"r-a\"}", FORBIDDEN, "", "editor"},
        {&W.owner, "cache", "purge", CPH_API_POST, "{\"route\":\"r-none\"}", NULL, NULL, NULL},
    };

    (void)state;
    snprintf(id_b, sizeof(id_b), "%lld", (long long)W.sb);
    RUN(cases);
}

/* ---------------------------------------------------------------- moving objects, keys */

/* The check reads the rows as they are now: an object an owner moved into scope is the editor's, one moved out not. */
static void test_moved_into_and_out_of_scope(void **state)
{
    cph_db_t *db = W.fx->db;
    cph_error_t err;

    (void)state;
    assert_int_equal(check(&W.ed_a, "services", "svc-b", CPH_API_DELETE, NULL, &err), -1);
    written(db, &cph_store_service_ops, W.svc_b, "{\"name\":\"svc-b\"," TARGETS ",\"system\":\"sa\"}"); /* into sa */
    assert_int_equal(check(&W.ed_a, "services", "svc-b", CPH_API_DELETE, NULL, &err), 0);
    assert_int_equal(check(&W.ed_a, "routes", "r-b", CPH_API_DELETE, NULL, &err), 0); /* its routes and rules follow */
    assert_int_equal(check(&W.ed_a, "routes", "agg", CPH_API_DELETE, NULL, &err), 0);
    written(db, &cph_store_service_ops, W.svc_a, "{\"name\":\"svc-a\"," TARGETS ",\"system\":\"sc\"}"); /* out of sa */
    assert_int_equal(check(&W.ed_a, "services", "svc-a", CPH_API_DELETE, NULL, &err), -1);
    assert_string_equal(err.msg, "system sc is not in your scope");
    assert_int_equal(check(&W.ed_a, "routes", "r-a", CPH_API_PUT, "{\"name\":\"r-a\",\"service\":\"svc-b\"}", &err), -1);
    assert_int_equal(check(&W.ed_a, "routes", "agg", CPH_API_DELETE, NULL, &err), -1);
    {
        char key[24];
        snprintf(key, sizeof(key), "%lld", (long long)W.ep_a);
        assert_int_equal(check(&W.ed_a, "endpoints", key, CPH_API_DELETE, NULL, &err), -1);
    }
    /* a renamed system carries its objects along: the scope holds ids, not codes */
    written(db, &cph_store_system_ops, W.sa, "{\"code\":\"renamed\",\"name\":\"A\"}");
    assert_int_equal(check(&W.ed_a, "roles", "renamed:reader", CPH_API_DELETE, NULL, &err), 0);
    assert_int_equal(check(&W.ed_a, "roles", "sa:reader", CPH_API_DELETE, NULL, &err), -1);
    assert_string_equal(err.code, "not_found");
    /* a user whose last out-of-scope membership is removed becomes the editor's */
    written(db, &cph_store_user_ops, 0, "{\"username\":\"mover\"," PW ",\"systems\":[\"renamed\",\"sc\"]}");
    assert_int_equal(check(&W.ed_a, "users", "mover", CPH_API_DELETE, NULL, &err), -1);
    sql(db, "DELETE FROM user_systems WHERE user_id = (SELECT id FROM users WHERE username = 'mover') AND system_id = "
            "(SELECT id FROM systems WHERE code = 'sc')");
    assert_int_equal(check(&W.ed_a, "users", "mover", CPH_API_DELETE, NULL, &err), 0);
}

/* A digit-only key is an id first, as the handler reads it: a service named like another's id is not a way in. */
static void test_digit_keys_mean_ids(void **state)
{
    char name[160], key[24];
    cph_error_t err;

    (void)state;
    snprintf(key, sizeof(key), "%lld", (long long)W.svc_b);
    snprintf(name, sizeof(name), "{\"name\":\"%s\"," TARGETS ",\"system\":\"sa\"}", key);
    written(W.fx->db, &cph_store_service_ops, 0, name); /* a service of sa named "<svc-b's id>" */
    assert_int_equal(check(&W.ed_a, "services", key, CPH_API_DELETE, NULL, &err), -1);
    assert_string_equal(err.msg, NOT_SA);
}

/* Keys no store would resolve find nothing: not_found, never a bypass, never a crash. */
static void test_hostile_keys(void **state)
{
    static const char *const KEYS[] = {
        "sa:reader' OR '1'='1",
        "' OR 1=1 --",
        "sb:reader/../sa:reader",
        "sa:",
        ":reader",
        "sa:reader:x",
        "%00",
        "..",
        "-1",
        "0",
        "99999999999999999999999",
        "1e3",
        " 1",
        "svc-b ",
        "SVC-B",
        "sa:READER\n",
        "*",
        "%",
        "_",
        NULL,
    };
    static const char *const RES[] = {"services", "routes",    "roles",   "groups", "api_keys",
                                      "users",    "endpoints", "issuers", "systems"};
    char long_key[5000];
    cph_error_t err;

    (void)state;
    memset(long_key, 'a', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    for (size_t r = 0; r < sizeof(RES) / sizeof(RES[0]); ++r) {
        for (size_t k = 0; KEYS[k] != NULL; ++k) {
            int rc = check(&W.ed_ab, RES[r], KEYS[k], CPH_API_PUT, "{}", &err);
            if (rc == 0 || strcmp(err.code, "not_found") != 0)
                fail_msg("%s/%s: %s (%s)", RES[r], KEYS[k], rc == 0 ? "allowed" : err.code, err.msg);
            assert_int_equal(check(&W.viewer, RES[r], KEYS[k], CPH_API_DELETE, NULL, &err), -1);
            assert_string_equal(err.code, FORBIDDEN); /* a viewer is refused before any lookup */
        }
        assert_int_equal(check(&W.ed_ab, RES[r], long_key, CPH_API_PUT, "{}", &err), -1);
        assert_string_equal(err.code, "not_found");
    }
    /* a username is case-insensitive in the store, so it is here too; a LIKE wildcard is no pattern */
    assert_int_equal(check(&W.ed_a, "users", "UB", CPH_API_DELETE, NULL, &err), -1);
    assert_string_equal(err.msg, NOT_SA);
    /* a body member of the wrong shape is never read as something else */
    assert_int_equal(check(&W.ed_a, "routes", NULL, CPH_API_POST,
                           "{\"name\":\"x\",\"service\":\"svc-a\",\"aggregate\":{\"backends\":"
                           "[{\"service\":\"svc-b\"}]}}",
                           &err),
                     -1);
    assert_string_equal(err.msg, NOT_SA);
    assert_int_equal(check(&W.ed_a, "routes", NULL, CPH_API_POST, "{\"name\":\"x\",\"service\":\"svc-a\",\"aggregate\":[1]}", &err),
                     0);
}

/* Inside a write (the lock held): the same answers, without taking the lock again. */
static int on_locked_write(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    int *results = p;

    (void)change;
    results[0] = cph_rbac_check_locked(db, &W.ed_a, "services", "svc-a", CPH_API_DELETE, NULL, err);
    results[1] = cph_rbac_check_locked(db, &W.ed_a, "services", "svc-b", CPH_API_DELETE, NULL, err);
    results[2] = strcmp(err->msg, NOT_SA) == 0;
    return cph_error_set(err, "conflict", "", "roll back: the test writes nothing");
}

static void test_check_locked(void **state)
{
    int results[3] = {-2, -2, -2};
    uint64_t version;
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_db_write(W.fx->db, "test", on_locked_write, results, &version, &err), -1);
    assert_int_equal(results[0], 0);
    assert_int_equal(results[1], -1);
    assert_int_equal(results[2], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_has_a_rule),
        cmocka_unit_test(test_no_stale_rule),
        cmocka_unit_test(test_rules_follow_the_contract),
        cmocka_unit_test_setup_teardown(test_roles_over_every_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_role_no_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_credentials_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_systems_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_into_and_out_of_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digit_keys_mean_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_locked, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
