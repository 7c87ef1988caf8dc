/*
 * authz_test: the decision of docs/access.md section 4 on snapshots built from JSON bodies with cph_snapshot_build: every
 * step (public, no credential, superuser, wrong system, no requirements, group, role, none), the three
 * default_access values, services without a system, roles granted through the principal's own roles, its groups'
 * roles and the rule's groups' roles, identity by (system, name), method-specific rules beating "*", shadow rules
 * counted without changing the answer, effective roles, and a principal too large for the resolver's stack buffers;
 * then filter/authz.c on hand-built requests (h2o_send_inline captured): 401 / 403 answers, the query left out of
 * the decision, and the decision and shadow counters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/authz.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/stats.h"
#include "dataplane/filter/filter.h"
#include "send_fixture.h"

static const char *BODY =
    "{\"services\":["
    "{\"name\":\"shop\",\"system\":\"shop\",\"targets\":[{\"url\":\"http://127.0.0.1:9000\"}]},"
    "{\"name\":\"open\",\"system\":null,\"targets\":[{\"url\":\"http://127.0.0.1:9001\"}]}],"
    "\"routes\":["
    "{\"name\":\"r_shop\",\"service\":\"shop\",\"paths\":[\"/shop\"],\"strip_prefix\":true},"
    "{\"name\":\"r_pub\",\"service\":\"shop\",\"paths\":[\"/pub\"],\"strip_prefix\":true,\"default_access\":\"public\"},"
    "{\"name\":\"r_deny\",\"service\":\"shop\",\"paths\":[\"/deny\"],\"strip_prefix\":true,\"default_access\":\"deny\"},"
    "{\"name\":\"r_auth\",\"service\":\"shop\",\"paths\":[\"/authd\"],\"strip_prefix\":true,"
    "\"default_access\":\"authenticated\"},"
    "{\"name\":\"r_open\",\"service\":\"open\",\"paths\":[\"/open\"],\"strip_prefix\":true}],"
    "\"groups\":["
    "{\"system\":\"other\",\"name\":\"staff\",\"roles\":[\"reader\"]},"
    "{\"system\":\"shop\",\"name\":\"managers\",\"roles\":[\"approver\"]},"
    "{\"system\":\"shop\",\"name\":\"staff\",\"roles\":[\"clerk\",\"reader\"]}],"
    "\"endpoints\":["
    "{\"id\":1,\"service\":\"shop\",\"method\":\"GET\",\"path\":\"/public\",\"public\":true},"
    "{\"id\":2,\"service\":\"shop\",\"method\":\"*\",\"path\":\"/free\"},"
    "{\"id\":3,\"service\":\"shop\",\"method\":\"GET\",\"path\":\"/orders/"
    "{id}\",\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"}]},"
    "{\"id\":4,\"service\":\"shop\",\"method\":\"*\",\"path\":\"/admin/"
    "*\",\"groups\":[{\"system\":\"shop\",\"name\":\"managers\"}]},"
    "{\"id\":5,\"service\":\"shop\",\"method\":\"GET\",\"path\":\"/admin/stats\",\"shadow\":true,"
    "\"roles\":[{\"system\":\"shop\",\"name\":\"auditor\"}]},"
    "{\"id\":6,\"service\":\"shop\",\"method\":\"POST\",\"path\":\"/orders/"
    "{id}\",\"roles\":[{\"system\":\"other\",\"name\":\"reader\"}]},"
    "{\"id\":7,\"service\":\"shop\",\"method\":\"*\",\"path\":\"/reports\",\"roles\":[{\"system\":\"shop\",\"name\":\"analyst\"}]},"
    "{\"id\":8,\"service\":\"shop\",\"method\":\"GET\",\"path\":\"/reports\",\"public\":true},"
    "{\"id\":9,\"service\":\"shop\",\"method\":\"*\",\"path\":\"/shadowed\",\"shadow\":true,"
    "\"groups\":[{\"system\":\"shop\",\"name\":\"staff\"}]},"
    "{\"id\":10,\"service\":\"shop\",\"method\":\"DELETE\",\"path\":\"/orders/"
    "{id}\",\"groups\":[{\"system\":\"shop\",\"name\":\"staff\"}]},"
    "{\"id\":11,\"service\":\"open\",\"method\":\"*\",\"path\":\"/x\",\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"}]},"
    "{\"id\":12,\"service\":\"shop\",\"method\":\"*\",\"path\":\"/only-shadow/*\",\"shadow\":true,\"public\":true},"
    "{\"id\":13,\"service\":\"shop\",\"method\":\"*\",\"path\":\"/"
    "staff-or-other\",\"groups\":[{\"system\":\"other\",\"name\":\"staff\"}]}"
    "]}";

static cph_snapshot_t *snap;


#define IOV(s)                                                                                                                     \
    {                                                                                                                              \
        (char *)(s), sizeof(s) - 1                                                                                                 \
    }
static h2o_iovec_t reader_role[] = {IOV("reader")}, approver_role[] = {IOV("approver")};
static h2o_iovec_t staff_group[] = {IOV("staff")}, managers_group[] = {IOV("managers")};
static h2o_iovec_t reader_dup[] = {IOV("reader"), IOV("reader"), IOV("unknown")};
static h2o_iovec_t staff_managers[] = {IOV("staff"), IOV("managers"), IOV("staff"), IOV("nope")};

static const cph_principal_t nobody = {.kind = CPH_PRINCIPAL_NONE};
static const cph_principal_t su = {.kind = CPH_PRINCIPAL_USER, .system = IOV("other"), .superuser = 1};
static const cph_principal_t alice = {.kind = CPH_PRINCIPAL_USER, .system = IOV("shop"), .roles = reader_role, .num_roles = 1};
static const cph_principal_t bob = {.kind = CPH_PRINCIPAL_USER, .system = IOV("shop"), .groups = staff_group, .num_groups = 1};
static const cph_principal_t carol = {.kind = CPH_PRINCIPAL_USER, .system = IOV("shop"), .groups = managers_group, .num_groups = 1};
static const cph_principal_t dave = {.kind = CPH_PRINCIPAL_USER,
                                     .system = IOV("other"),
                                     .roles = reader_role,
                                     .num_roles = 1,
                                     .groups = staff_group,
                                     .num_groups = 1};
static const cph_principal_t eve = {.kind = CPH_PRINCIPAL_API_KEY, .system = IOV("shop"), .roles = approver_role, .num_roles = 1};
static const cph_principal_t frank = {.kind = CPH_PRINCIPAL_USER, .system = IOV("shop")};
static const cph_principal_t many = {.kind = CPH_PRINCIPAL_USER,
                                     .system = IOV("shop"),
                                     .roles = reader_dup,
                                     .num_roles = 3,
                                     .groups = staff_managers,
                                     .num_groups = 4};

static int setup(void **state)
{
    json_error_t jerr;
    json_t *body = json_loads(BODY, JSON_REJECT_DUPLICATES, &jerr);
    char hash[CPH_HASH_SIZE] = "";
    cph_error_t err;

    (void)state;
    if (body == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    cph_snapshot_hash(body, hash);
    snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    json_decref(body);
    if (snap == NULL)
        fail_msg("build failed: %s at %s: %s", err.code, err.path, err.msg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (snap != NULL)
        cph_snapshot_release(snap);
    return 0;
}

static const cph_route_t *route(const char *name)
{
    for (size_t i = 0; i != snap->num_routes; ++i)
        if (strcmp(snap->routes[i].name, name) == 0)
            return &snap->routes[i];
    fail_msg("no route %s", name);
    return NULL;
}

/* Decides and checks the answer, the reason, the deciding rule (0 = default_access) and granted_by ("" = none). */
static void expect(const char *rname, const char *method, const char *path, const cph_principal_t *pr, cph_authz_decision_t want,
                   const char *reason, int64_t rule, const char *granted)
{
    cph_authz_trace_t t;
    cph_authz_decision_t d =
        cph_authz_decide(snap, route(rname), cph_method_from(method, strlen(method)), path, strlen(path), pr, &t);

    if (d != want || strcmp(t.reason, reason) != 0)
        fail_msg("%s %s %s: decision %d (%s), expected %d (%s)", rname, method, path, d, t.reason, want, reason);
    if ((t.rule != NULL ? t.rule->id : 0) != rule)
        fail_msg("%s %s: rule %lld, expected %lld", method, path, t.rule != NULL ? (long long)t.rule->id : 0LL, (long long)rule);
    if (t.granted_by.len != strlen(granted) || (t.granted_by.len != 0 && memcmp(t.granted_by.base, granted, t.granted_by.len) != 0))
        fail_msg("%s %s: granted by \"%.*s\", expected \"%s\"", method, path, (int)t.granted_by.len, t.granted_by.base, granted);
    /* without a trace the answer is the same */
    assert_int_equal(cph_authz_decide(snap, route(rname), cph_method_from(method, strlen(method)), path, strlen(path), pr, NULL),
                     d);
}

static void test_steps_with_rule(void **state)
{
    (void)state;
    expect("r_shop", "GET", "/public", &nobody, CPH_AUTHZ_ALLOW, "public_endpoint", 1, "");           /* 1 */
    expect("r_shop", "GET", "/public", &dave, CPH_AUTHZ_ALLOW, "public_endpoint", 1, "");             /* 1 before 4 */
    expect("r_shop", "GET", "/orders/7", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 3, ""); /* 2 */
    expect("r_shop", "GET", "/orders/7", NULL, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 3, "");
    expect("r_shop", "GET", "/orders/7", &su, CPH_AUTHZ_ALLOW, "superuser", 3, "");               /* 3, even in another system */
    expect("r_shop", "GET", "/orders/7", &dave, CPH_AUTHZ_FORBIDDEN, "wrong_system", 3, "");      /* 4 */
    expect("r_shop", "PUT", "/free", &frank, CPH_AUTHZ_ALLOW, "no_requirements", 2, "");          /* 5 */
    expect("r_shop", "PUT", "/free", &dave, CPH_AUTHZ_FORBIDDEN, "wrong_system", 2, "");          /* 4 before 5 */
    expect("r_shop", "PUT", "/free", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 2, ""); /* 2 before 5 */
    expect("r_shop", "GET", "/orders/7", &frank, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 3, ""); /* 7 */
    expect("r_shop", "GET", "/orders/7", &carol, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 3, "");
}

static void test_grants(void **state)
{
    (void)state;
    /* own role in E.roles */
    expect("r_shop", "GET", "/orders/7", &alice, CPH_AUTHZ_ALLOW, "role", 3, "reader");
    /* a role of the principal's group in E.roles */
    expect("r_shop", "GET", "/orders/7", &bob, CPH_AUTHZ_ALLOW, "role", 3, "reader");
    /* the principal's group in E.groups */
    expect("r_shop", "DELETE", "/orders/7", &bob, CPH_AUTHZ_ALLOW, "group", 10, "staff");
    expect("r_shop", "DELETE", "/orders/7", &carol, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 10, "");
    /* ... or the principal's own role among the roles of E.groups (staff has reader) */
    expect("r_shop", "DELETE", "/orders/7", &alice, CPH_AUTHZ_ALLOW, "role", 10, "reader");
    expect("r_shop", "GET", "/admin/users", &carol, CPH_AUTHZ_ALLOW, "group", 4, "managers");
    /* own role among the roles of E.groups (API key) */
    expect("r_shop", "POST", "/admin/users", &eve, CPH_AUTHZ_ALLOW, "role", 4, "approver");
    expect("r_shop", "POST", "/admin", &alice, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 4, "");
    /* identity is (system, name): shop's "reader" is not other's "reader", shop's "staff" is not other's "staff" */
    expect("r_shop", "POST", "/orders/7", &alice, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 6, "");
    expect("r_shop", "GET", "/staff-or-other", &bob, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 13, "");
    /* duplicates and unknown names in the principal change nothing */
    expect("r_shop", "GET", "/orders/7", &many, CPH_AUTHZ_ALLOW, "role", 3, "reader");
    expect("r_shop", "GET", "/admin/x", &many, CPH_AUTHZ_ALLOW, "group", 4, "managers");
}

static void test_default_access(void **state)
{
    (void)state;
    expect("r_pub", "GET", "/anything", &nobody, CPH_AUTHZ_ALLOW, "default_public", 0, "");
    expect("r_pub", "GET", "/anything", &dave, CPH_AUTHZ_ALLOW, "default_public", 0, "");
    expect("r_deny", "GET", "/anything", &su, CPH_AUTHZ_FORBIDDEN, "default_deny", 0, "");
    expect("r_deny", "GET", "/anything", &nobody, CPH_AUTHZ_FORBIDDEN, "default_deny", 0, "");
    /* a rule still decides under any default_access */
    expect("r_deny", "GET", "/public", &nobody, CPH_AUTHZ_ALLOW, "public_endpoint", 1, "");
    expect("r_pub", "GET", "/orders/1", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 3, "");
    /* authenticated (explicit and by default): steps 2, 3, 4, then allow */
    for (int i = 0; i != 2; ++i) {
        const char *r = i == 0 ? "r_auth" : "r_shop";
        expect(r, "GET", "/none", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 0, "");
        expect(r, "GET", "/none", &su, CPH_AUTHZ_ALLOW, "superuser", 0, "");
        expect(r, "GET", "/none", &dave, CPH_AUTHZ_FORBIDDEN, "wrong_system", 0, "");
        expect(r, "GET", "/none", &frank, CPH_AUTHZ_ALLOW, "default_authenticated", 0, "");
    }
    assert_int_equal(route("r_shop")->default_access, CPH_ACCESS_AUTHENTICATED);
}

static void test_service_without_system(void **state)
{
    (void)state;
    /* step 4 skipped: dave (system other) is not refused for his system, but other's reader is not shop's reader */
    expect("r_open", "GET", "/x", &dave, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 11, "");
    expect("r_open", "GET", "/x", &alice, CPH_AUTHZ_ALLOW, "role", 11, "reader");
    expect("r_open", "GET", "/y", &dave, CPH_AUTHZ_ALLOW, "default_authenticated", 0, "");
    expect("r_open", "GET", "/y", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 0, "");
    /* rules belong to their service: shop's rules do not apply on open */
    expect("r_open", "GET", "/public", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 0, "");
}

static void test_method_specific_beats_any(void **state)
{
    (void)state;
    expect("r_shop", "GET", "/reports", &nobody, CPH_AUTHZ_ALLOW, "public_endpoint", 8, "");
    expect("r_shop", "POST", "/reports", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 7, "");
    expect("r_shop", "HEAD", "/reports", &alice, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 7, "");
    /* a method-specific rule that does not match the method is skipped: rule 1 is GET only */
    expect("r_shop", "POST", "/public", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 0, "");
}

/* Decides with a trace and checks the shadow part: rule id (0 = none), would-be decision and reason. */
static void expect_shadow(const char *path, const cph_principal_t *pr, cph_authz_decision_t want, int64_t shadow,
                          cph_authz_decision_t would, const char *reason)
{
    cph_authz_trace_t t;
    cph_authz_decision_t d = cph_authz_decide(snap, route("r_shop"), CPH_METHOD_GET, path, strlen(path), pr, &t);

    if (d != want)
        fail_msg("%s: decision %d, expected %d", path, d, want);
    if ((t.shadow_rule != NULL ? t.shadow_rule->id : 0) != shadow)
        fail_msg("%s: shadow rule %lld, expected %lld", path, t.shadow_rule ? (long long)t.shadow_rule->id : 0LL,
                 (long long)shadow);
    if (shadow != 0 && (t.shadow_decision != would || strcmp(t.shadow_reason, reason) != 0))
        fail_msg("%s: shadow %d (%s), expected %d (%s)", path, t.shadow_decision, t.shadow_reason, would, reason);
    if (shadow != 0)
        assert_int_equal(t.shadow_rule->stat_id, cph_stats_endpoint_id(shadow));
}

static void test_shadow(void **state)
{
    (void)state;
    /* the enforced prefix rule allows carol; the more specific shadow rule would deny her */
    expect_shadow("/admin/stats", &carol, CPH_AUTHZ_ALLOW, 5, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group");
    expect_shadow("/admin/stats", &su, CPH_AUTHZ_ALLOW, 5, CPH_AUTHZ_ALLOW, "superuser");
    expect_shadow("/admin/other", &carol, CPH_AUTHZ_ALLOW, 0, CPH_AUTHZ_ALLOW, "");
    /* no enforced rule: the default decides, the shadow rule is only evaluated */
    expect_shadow("/shadowed", &carol, CPH_AUTHZ_ALLOW, 9, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group");
    expect_shadow("/shadowed", &alice, CPH_AUTHZ_ALLOW, 9, CPH_AUTHZ_ALLOW, "role");
    expect_shadow("/shadowed", &bob, CPH_AUTHZ_ALLOW, 9, CPH_AUTHZ_ALLOW, "group");
    expect_shadow("/shadowed", &nobody, CPH_AUTHZ_UNAUTHENTICATED, 9, CPH_AUTHZ_UNAUTHENTICATED, "no_credential");
    expect_shadow("/only-shadow/a/b", &nobody, CPH_AUTHZ_UNAUTHENTICATED, 12, CPH_AUTHZ_ALLOW, "public_endpoint");
    expect_shadow("/orders/1", &alice, CPH_AUTHZ_ALLOW, 0, CPH_AUTHZ_ALLOW, "");
    /* the enforced decision never comes from a shadow rule */
    expect("r_shop", "GET", "/only-shadow/a", &nobody, CPH_AUTHZ_UNAUTHENTICATED, "no_credential", 0, "");
    assert_true(cph_authz_rule_by_id(snap, 5)->shadow);
    assert_false(cph_authz_rule_by_id(snap, 4)->shadow);
    assert_null(cph_authz_rule_by_id(snap, 99));
}

typedef struct st_roles_t {
    char buf[256];
} roles_t;

static void collect(void *ud, const char *role, size_t len)
{
    roles_t *r = ud;
    snprintf(r->buf + strlen(r->buf), sizeof(r->buf) - strlen(r->buf), "%.*s,", (int)len, role);
}

static const char *effective(const cph_principal_t *pr)
{
    static roles_t r;
    r.buf[0] = '\0';
    cph_authz_effective_roles(snap, pr, collect, &r);
    return r.buf;
}

static void test_effective_roles(void **state)
{
    (void)state;
    assert_string_equal(effective(&nobody), "");
    assert_string_equal(effective(&alice), "reader,");
    assert_string_equal(effective(&bob), "clerk,reader,");
    assert_string_equal(effective(&carol), "approver,");
    /* own roles first, each role once; dave's staff is other's staff, whose reader he has already */
    assert_string_equal(effective(&many), "reader,unknown,clerk,approver,");
    assert_string_equal(effective(&dave), "reader,");
}

/* Many unknown groups, then more known groups than the resolver's stack buffers hold (the slow path). */
static void test_large_principal(void **state)
{
    (void)state;
    size_t n = 600;
    h2o_iovec_t *groups = calloc(n, sizeof(*groups));
    char(*names)[16] = calloc(n, sizeof(*names));
    cph_principal_t pr = {.kind = CPH_PRINCIPAL_USER, .system = IOV("shop"), .groups = groups, .num_groups = n};

    assert_non_null(groups);
    assert_non_null(names);
    for (size_t i = 0; i != n; ++i) {
        int len = snprintf(names[i], sizeof(names[i]), "g%zu", i);
        groups[i] = h2o_iovec_init(names[i], (size_t)len);
    }
    groups[n - 1] = h2o_iovec_init(H2O_STRLIT("staff"));
    expect("r_shop", "DELETE", "/orders/7", &pr, CPH_AUTHZ_ALLOW, "group", 10, "staff");
    expect("r_shop", "GET", "/orders/7", &pr, CPH_AUTHZ_ALLOW, "role", 3, "reader");
    expect("r_shop", "GET", "/admin/x", &pr, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 4, "");
    /* 599 times staff and once managers: past the stack buffers */
    for (size_t i = 0; i != n; ++i)
        groups[i] = h2o_iovec_init(H2O_STRLIT("staff"));
    groups[n - 1] = h2o_iovec_init(H2O_STRLIT("managers"));
    expect("r_shop", "POST", "/admin/x", &pr, CPH_AUTHZ_ALLOW, "group", 4, "managers");
    expect("r_shop", "GET", "/orders/7", &pr, CPH_AUTHZ_ALLOW, "role", 3, "reader");
    expect("r_shop", "GET", "/staff-or-other", &pr, CPH_AUTHZ_FORBIDDEN, "no_matching_role_or_group", 13, "");
    free(names);
    free(groups);
}

static void test_empty_sections(void **state)
{
    (void)state;
    json_t *body = json_loads("{\"services\":[{\"name\":\"s\",\"targets\":[]}],"
                              "\"routes\":[{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/\"]}]}",
                              0, NULL);
    char hash[CPH_HASH_SIZE] = "";
    cph_error_t err;

    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    cph_snapshot_t *s = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 2, hash, "cp", &err);
    json_decref(body);
    if (s == NULL)
        fail_msg("build failed: %s at %s: %s", err.code, err.path, err.msg);
    cph_authz_trace_t t;
    assert_int_equal(cph_authz_decide(s, &s->routes[0], CPH_METHOD_GET, "/a", 2, &nobody, &t), CPH_AUTHZ_UNAUTHENTICATED);
    assert_null(t.rule);
    assert_null(t.shadow_rule);
    assert_int_equal(cph_authz_decide(s, &s->routes[0], CPH_METHOD_GET, "/a", 2, &frank, &t), CPH_AUTHZ_ALLOW);
    assert_null(cph_authz_rule_by_id(s, 1));
    cph_snapshot_release(s);
}

static const char *res_header(h2o_req_t *req, const char *name)
{
    for (size_t i = 0; i != req->res.headers.size; ++i)
        if (h2o_lcstris(req->res.headers.entries[i].name->base, req->res.headers.entries[i].name->len, name, strlen(name)))
            return h2o_strdup(&req->pool, req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len).base;
    return NULL;
}

/* Runs the filter on method + route + upstream path (with a query) and returns CPH_NEXT / CPH_DONE. */
static int run_filter(cph_worker_t *w, const char *method, const char *rname, const char *upstream, const cph_principal_t *pr,
                      h2o_req_t *req)
{
    cph_req_t r = {.req = req, .worker = w, .snap = snap, .route = route(rname), .principal = *pr};

    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    req->input.method = h2o_iovec_init(method, strlen(method));
    r.upstream_path = h2o_iovec_init(upstream, strlen(upstream));
    sent_status = 0;
    sent_body[0] = '\0';
    return cph_authz_on_req(&r);
}

static void test_filter(void **state)
{
    (void)state;
    cph_worker_t *w = calloc(1, sizeof(*w));
    h2o_req_t req;

    assert_non_null(w);
    assert_non_null(w->stats = calloc(1, sizeof(*w->stats)));
    /* the query is not part of the path the rules see */
    assert_int_equal(run_filter(w, "GET", "r_shop", "/orders/7?role=admin", &alice, &req), CPH_NEXT);
    assert_int_equal(sent_status, 0);
    h2o_mem_clear_pool(&req.pool);
    assert_int_equal(run_filter(w, "GET", "r_shop", "/public?x=/orders", &nobody, &req), CPH_NEXT);
    h2o_mem_clear_pool(&req.pool);
    /* 401 with the Bearer challenge */
    assert_int_equal(run_filter(w, "GET", "r_shop", "/orders/7", &nobody, &req), CPH_DONE);
    assert_int_equal(sent_status, 401);
    assert_non_null(strstr(sent_body, "\"error\":\"unauthenticated\""));
    assert_non_null(res_header(&req, "www-authenticate"));
    assert_non_null(strstr(res_header(&req, "www-authenticate"), "Bearer realm=\"cephalo\""));
    h2o_mem_clear_pool(&req.pool);
    /* 403; the method decides which rule applies (POST /orders/{id} needs other's reader) */
    assert_int_equal(run_filter(w, "POST", "r_shop", "/orders/7?a=b", &alice, &req), CPH_DONE);
    assert_int_equal(sent_status, 403);
    assert_non_null(strstr(sent_body, "\"error\":\"forbidden\""));
    assert_null(res_header(&req, "www-authenticate"));
    h2o_mem_clear_pool(&req.pool);
    /* shadow outcomes are counted per rule, the answer comes from the enforced rule */
    assert_int_equal(run_filter(w, "GET", "r_shop", "/admin/stats", &carol, &req), CPH_NEXT);
    h2o_mem_clear_pool(&req.pool);
    assert_int_equal(run_filter(w, "GET", "r_shop", "/shadowed?q", &bob, &req), CPH_NEXT);
    h2o_mem_clear_pool(&req.pool);
    assert_int_equal(run_filter(w, "GET", "r_shop", "/shadowed", &carol, &req), CPH_NEXT);
    h2o_mem_clear_pool(&req.pool);

    assert_int_equal(cph_counter_read(&w->stats->authz_decisions[CPH_AUTHZ_ALLOW]), 5);
    assert_int_equal(cph_counter_read(&w->stats->authz_decisions[CPH_AUTHZ_UNAUTHENTICATED]), 1);
    assert_int_equal(cph_counter_read(&w->stats->authz_decisions[CPH_AUTHZ_FORBIDDEN]), 1);
    uint32_t s5 = cph_stats_endpoint_id(5), s9 = cph_stats_endpoint_id(9);
    assert_int_equal(cph_counter_read(&w->stats->authz_shadow[s5][CPH_STATS_SHADOW_ALLOW]), 0);
    assert_int_equal(cph_counter_read(&w->stats->authz_shadow[s5][CPH_STATS_SHADOW_DENY]), 1);
    assert_int_equal(cph_counter_read(&w->stats->authz_shadow[s9][CPH_STATS_SHADOW_ALLOW]), 1);
    assert_int_equal(cph_counter_read(&w->stats->authz_shadow[s9][CPH_STATS_SHADOW_DENY]), 1);
    free(w->stats);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_with_rule),
        cmocka_unit_test(test_grants),
        cmocka_unit_test(test_default_access),
        cmocka_unit_test(test_service_without_system),
        cmocka_unit_test(test_method_specific_beats_any),
        cmocka_unit_test(test_shadow),
        cmocka_unit_test(test_effective_roles),
        cmocka_unit_test(test_large_principal),
        cmocka_unit_test(test_empty_sections),
        cmocka_unit_test(test_filter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
