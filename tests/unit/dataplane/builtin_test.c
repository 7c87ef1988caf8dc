/*
 * builtin_test: compile/builtin.c turns body auth.api into the built-in "/auth" route and service (one pooled target,
 * 10 s, no system, public), nothing without it, and refuses a URL it cannot use at /auth/api without leaking;
 * filter/builtin.c routes POST /auth/{login,refresh,logout} to it and jumps to the proxy stage, answers 503
 * auth_unavailable without it, 405 with Allow: POST for other methods, 404 for other /auth paths, and leaves paths
 * outside /auth to the router. h2o's senders are replaced below to capture the answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/auth.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/stats.h"
#include "dataplane/core/upstream.h"
#include "dataplane/filter/filter.h"
#include "send_fixture.h"


void h2o_start_response(h2o_req_t *req, h2o_generator_t *generator)
{
    (void)generator;
    sent_status = req->res.status;
}

void h2o_send(h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    (void)req, (void)state;
    sent_body[0] = '\0';
    if (bufcnt == 1) {
        assert_true(bufs[0].len < sizeof(sent_body));
        memcpy(sent_body, bufs[0].base, bufs[0].len);
        sent_body[bufs[0].len] = '\0';
    }
}

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (v == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    return v;
}

/* A snapshot with only an arena, then cph_builtin_compile over body. */
static int compile(cph_snapshot_t *snap, const char *text, cph_error_t *err)
{
    json_t *body = load(text);
    int ret;

    memset(snap, 0, sizeof(*snap));
    cph_arena_init(&snap->arena);
    snap->auth_api_route = (const cph_route_t *)snap; /* must be reset */
    ret = cph_builtin_compile(snap, body, err);
    json_decref(body);
    return ret;
}

static void test_compile_auth_api_route(void **state)
{
    (void)state;
    cph_snapshot_t snap;
    cph_error_t err;

    assert_int_equal(compile(&snap, "{\"auth\":{\"api\":\"http://127.0.0.1:8002\",\"issuer\":\"x\"}}", &err), 0);
    const cph_route_t *r = snap.auth_api_route;
    assert_non_null(r);
    assert_string_equal(r->name, "/auth");
    assert_int_equal(r->num_paths, 1);
    assert_true(h2o_memis(r->paths[0].base, r->paths[0].len, H2O_STRLIT("/auth")));
    assert_int_equal(r->default_access, CPH_ACCESS_PUBLIC);
    assert_int_equal(r->methods, 0);
    assert_int_equal(r->strip_prefix, 0);
    assert_int_equal(r->metric_id, cph_stats_route_id("/auth"));
    const cph_service_t *s = r->service;
    assert_non_null(s);
    assert_string_equal(s->name, "/auth");
    assert_null(s->system);
    assert_int_equal(s->timeout_ms, 10000);
    assert_int_equal(s->num_targets, 1);
    assert_string_equal(s->targets[0].host.base, "127.0.0.1");
    assert_int_equal(s->targets[0].port, 8002);
    assert_true(h2o_memis(s->targets[0].authority.base, s->targets[0].authority.len, H2O_STRLIT("127.0.0.1:8002")));
    assert_int_equal(s->targets[0].pool_id, cph_upstream_pool_id("127.0.0.1:8002"));
    assert_int_equal(s->targets[0].weight, 1);
    cph_arena_dispose(&snap.arena);

    assert_int_equal(compile(&snap, "{\"auth\":{\"api\":\"http://[::1]:9/\"}}", &err), 0);
    assert_true(h2o_memis(snap.auth_api_route->service->targets[0].authority.base,
                          snap.auth_api_route->service->targets[0].authority.len, H2O_STRLIT("[::1]:9")));
    cph_arena_dispose(&snap.arena);
}

static void test_compile_without_api(void **state)
{
    (void)state;
    cph_snapshot_t snap;
    cph_error_t err;
    static const char *bodies[] = {"{}", "{\"auth\":{}}", "{\"auth\":{\"api\":null}}", "{\"services\":[],\"routes\":[]}"};

    for (size_t i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i) {
        assert_int_equal(compile(&snap, bodies[i], &err), 0);
        assert_null(snap.auth_api_route);
        cph_arena_dispose(&snap.arena);
    }
}

static void test_compile_bad_url_is_refused(void **state)
{
    (void)state;
    cph_snapshot_t snap;
    cph_error_t err;
    static const char *bodies[] = {"{\"auth\":{\"api\":\"ftp://h:1\"}}", "{\"auth\":{\"api\":\"http://h\"}}",
                                   "{\"auth\":{\"api\":\"http://h:0\"}}", "{\"auth\":{\"api\":\"http://:80\"}}"};

    for (size_t i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(compile(&snap, bodies[i], &err), -1);
        assert_string_equal(err.code, "invalid");
        assert_string_equal(err.path, "/auth/api");
        cph_arena_dispose(&snap.arena); /* the build frees the arena on failure: nothing else may be left */
    }
}

static void test_snapshot_build_compiles_auth_api(void **state)
{
    (void)state;
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = load("{\"services\":[],\"routes\":[],\"auth\":{\"api\":\"http://localhost:8002\"}}");
    cph_error_t err;
    cph_snapshot_t *snap;

    cph_snapshot_hash(body, hash);
    snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    json_decref(body);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    assert_non_null(snap->auth_api_route);
    assert_int_equal(snap->num_routes, 0); /* the router never sees it */
    assert_int_equal(snap->num_services, 0);
    assert_string_equal(snap->auth_api_route->service->targets[0].host.base, "localhost");
    cph_snapshot_release(snap);
}

/* ---- filter */

typedef struct st_fixture_t {
    h2o_req_t req;
    cph_snapshot_t snap;
    cph_req_t r;
} fixture_t;

static void fx_init(fixture_t *f, const char *method, const char *path, const char *query, const cph_route_t *api)
{
    memset(f, 0, sizeof(*f));
    h2o_mem_init_pool(&f->req.pool);
    f->req.input.method = h2o_iovec_init(method, strlen(method));
    f->r.req = &f->req;
    f->r.snap = &f->snap;
    f->r.path = h2o_iovec_init(path, strlen(path));
    f->r.query = h2o_iovec_init(query, strlen(query));
    f->r.request_id = h2o_iovec_init(H2O_STRLIT("0123456789abcdef0123456789abcdef"));
    f->snap.auth_api_route = api;
    sent_status = 0;
    sent_body[0] = '\0';
}

static const char *allow_of(fixture_t *f)
{
    ssize_t i = h2o_find_header(&f->req.res.headers, H2O_TOKEN_ALLOW, -1);
    return i == -1
               ? NULL
               : h2o_strdup(&f->req.pool, f->req.res.headers.entries[i].value.base, f->req.res.headers.entries[i].value.len).base;
}

static void test_auth_api_paths_are_forwarded(void **state)
{
    (void)state;
    cph_route_t api = {.name = "/auth"};
    static const char *paths[] = {"/auth/login", "/auth/refresh", "/auth/logout"};
    cph_req_t probe;

    memset(&probe, 0, sizeof(probe));
    cph_pipeline_goto(&probe, cph_proxy_on_req);
    for (size_t i = 0; i != 3; ++i) {
        fixture_t f;
        fx_init(&f, "POST", paths[i], i == 0 ? "?next=%2Fx" : "", &api);
        assert_int_equal(cph_builtin_on_req(&f.r), CPH_NEXT);
        assert_int_equal(sent_status, 0);
        assert_ptr_equal(f.r.route, &api);
        assert_int_equal(f.r.next_stage, probe.next_stage); /* the proxy stage runs next: router, authn, authz skipped */
        char want[64];
        snprintf(want, sizeof(want), "%s%s", paths[i], i == 0 ? "?next=%2Fx" : "");
        assert_true(h2o_memis(f.r.upstream_path.base, f.r.upstream_path.len, want, strlen(want)));
        h2o_mem_clear_pool(&f.req.pool);
    }
}

static void test_auth_api_without_route_is_503(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "POST", "/auth/login", "", NULL);
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 503);
    assert_non_null(strstr(sent_body, "\"auth_unavailable\""));
    assert_non_null(strstr(sent_body, "\"request_id\":\"0123456789abcdef0123456789abcdef\""));
    assert_null(f.r.route);
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_auth_api_other_methods_are_405(void **state)
{
    (void)state;
    cph_route_t api = {.name = "/auth"};
    static const char *methods[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "post", "BREW"};

    for (size_t i = 0; i != sizeof(methods) / sizeof(methods[0]); ++i) {
        fixture_t f;
        fx_init(&f, methods[i], "/auth/refresh", "", &api);
        assert_int_equal(cph_builtin_on_req(&f.r), CPH_DONE);
        assert_int_equal(sent_status, 405);
        assert_string_equal(allow_of(&f), "POST");
        assert_null(f.r.route);
        h2o_mem_clear_pool(&f.req.pool);
    }
}

static void test_other_auth_paths(void **state)
{
    (void)state;
    cph_route_t api = {.name = "/auth"};
    static const char *not_found[] = {"/auth", "/auth/", "/auth/login/x", "/auth/loginx", "/auth/Login", "/auth/jwks"};
    static const char *not_ours[] = {"/authx", "/aut", "/", "/x/auth/login"};
    fixture_t f;

    for (size_t i = 0; i != sizeof(not_found) / sizeof(not_found[0]); ++i) {
        fx_init(&f, "POST", not_found[i], "", &api);
        assert_int_equal(cph_builtin_on_req(&f.r), CPH_DONE);
        assert_int_equal(sent_status, 404);
        assert_non_null(strstr(sent_body, "\"not_found\""));
        h2o_mem_clear_pool(&f.req.pool);
    }
    for (size_t i = 0; i != sizeof(not_ours) / sizeof(not_ours[0]); ++i) {
        fx_init(&f, "POST", not_ours[i], "", &api);
        assert_int_equal(cph_builtin_on_req(&f.r), CPH_NEXT);
        assert_int_equal(sent_status, 0);
        assert_null(f.r.route);
        h2o_mem_clear_pool(&f.req.pool);
    }
}

static void test_jwks(void **state)
{
    (void)state;
    fixture_t f;
    cph_auth_t auth;

    memset(&auth, 0, sizeof(auth));
    auth.jwks = h2o_iovec_init(H2O_STRLIT("{\"keys\":[{\"kid\":\"k1\"}]}"));
    fx_init(&f, "GET", CPH_AUTH_JWKS_PATH, "", NULL);
    f.snap.auth = &auth;
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 200);
    assert_string_equal(sent_body, "{\"keys\":[{\"kid\":\"k1\"}]}");
    h2o_mem_clear_pool(&f.req.pool);

    fx_init(&f, "POST", CPH_AUTH_JWKS_PATH, "", NULL);
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 405);
    assert_string_equal(allow_of(&f), "GET, HEAD");
    h2o_mem_clear_pool(&f.req.pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_auth_api_route),
        cmocka_unit_test(test_compile_without_api),
        cmocka_unit_test(test_compile_bad_url_is_refused),
        cmocka_unit_test(test_snapshot_build_compiles_auth_api),
        cmocka_unit_test(test_auth_api_paths_are_forwarded),
        cmocka_unit_test(test_auth_api_without_route_is_503),
        cmocka_unit_test(test_auth_api_other_methods_are_405),
        cmocka_unit_test(test_other_auth_paths),
        cmocka_unit_test(test_jwks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
