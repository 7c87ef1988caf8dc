/*
 * router_test: cph_proxy_compile + cph_router_compile on a JSON body, then cph_router_match as the router filter
 * calls it: longest segment prefix across routes, segment boundaries, trailing-slash prefixes, exact and wildcard
 * hosts, 405 versus 404, strip_prefix remainders, ties, and 10k routes compiled and matched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "dataplane/compile/compile.h"
#include "dataplane/compile/router.h"

typedef struct st_fixture_t {
    cph_snapshot_t snap;
    json_t *body;
} fixture_t;

static fixture_t *build(const char *json)
{
    fixture_t *f = calloc(1, sizeof(*f));
    json_error_t jerr;
    cph_error_t err;

    assert_non_null(f);
    f->body = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (f->body == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    cph_arena_init(&f->snap.arena);
    if (cph_proxy_compile(&f->snap, f->body, &err) != 0 || cph_router_compile(&f->snap, f->body, &err) != 0)
        fail_msg("compile failed: %s at %s: %s", err.code, err.path, err.msg);
    return f;
}

static void destroy(fixture_t *f)
{
    cph_arena_dispose(&f->snap.arena);
    json_decref(f->body);
    free(f);
}

/* Matches and returns the status; *name gets the route name on 200. */
static int match(fixture_t *f, const char *host, const char *method, const char *path, cph_route_match_t *m)
{
    return cph_router_match(f->snap.router, host, strlen(host), path, strlen(path), cph_method_from(method, strlen(method)), m);
}

static void expect_route(fixture_t *f, const char *host, const char *method, const char *path, const char *want_route,
                         const char *want_upstream)
{
    cph_route_match_t m;
    int status = match(f, host, method, path, &m);

    if (status != 200)
        fail_msg("%s %s (host %s): %d, expected route %s", method, path, host, status, want_route);
    if (strcmp(m.route->name, want_route) != 0)
        fail_msg("%s %s (host %s): route %s, expected %s", method, path, host, m.route->name, want_route);
    if (want_upstream != NULL) {
        h2o_iovec_t up = cph_router_upstream_path(&m, path, strlen(path));
        if (up.len != strlen(want_upstream) || memcmp(up.base, want_upstream, up.len) != 0)
            fail_msg("%s: upstream path \"%.*s\", expected \"%s\"", path, (int)up.len, up.base, want_upstream);
    }
}

static void expect_status(fixture_t *f, const char *host, const char *method, const char *path, int want)
{
    cph_route_match_t m;
    int status = match(f, host, method, path, &m);
    if (status != want)
        fail_msg("%s %s (host %s): %d, expected %d", method, path, host, status, want);
}

#define SVC                                                                                                                        \
    "\"services\":[{\"name\":\"a\",\"targets\":[{\"url\":\"http://127.0.0.1:9000\"}]},"                                            \
    "{\"name\":\"b\",\"targets\":[{\"url\":\"http://[::1]:9001/\",\"weight\":3}],\"timeout_ms\":250}]"

static void test_longest_segment_prefix(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":["
                         "{\"name\":\"short\",\"service\":\"a\",\"paths\":[\"/api\"]},"
                         "{\"name\":\"long\",\"service\":\"b\",\"paths\":[\"/api/v2\"]},"
                         "{\"name\":\"root\",\"service\":\"a\",\"paths\":[\"/\"]},"
                         "{\"name\":\"dir\",\"service\":\"a\",\"paths\":[\"/files/\"]}]}");
    (void)state;
    expect_route(f, "", "GET", "/api", "short", "/api");
    expect_route(f, "", "GET", "/api/", "short", NULL);
    expect_route(f, "", "GET", "/api/v1/x", "short", NULL);
    expect_route(f, "", "GET", "/api/v2", "long", NULL);
    expect_route(f, "", "GET", "/api/v2/", "long", NULL);
    expect_route(f, "", "GET", "/api/v2/deep/er", "long", NULL);
    expect_route(f, "", "GET", "/api/v2x", "short", NULL); /* segment boundary */
    expect_route(f, "", "GET", "/apix", "root", NULL);
    expect_route(f, "", "GET", "/", "root", NULL);
    expect_route(f, "", "GET", "/files/a", "dir", NULL);
    expect_route(f, "", "GET", "/files/", "dir", NULL);
    expect_route(f, "", "GET", "/files", "root", NULL); /* "/files/" only matches below it */
    destroy(f);
}

static void test_no_route_is_404(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":[{\"name\":\"demo\",\"service\":\"a\",\"paths\":[\"/demo\"]},"
                         "{\"name\":\"keep\",\"service\":\"a\",\"paths\":[\"/keep/\"]}]}");
    (void)state;
    expect_status(f, "", "GET", "/", 404);
    expect_status(f, "", "GET", "/dem", 404);
    expect_status(f, "", "GET", "/demox", 404);
    expect_status(f, "", "GET", "/keep", 404);
    expect_status(f, "", "GET", "/nothing/demo", 404);
    destroy(f);
}

static void test_strip_prefix(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":["
                         "{\"name\":\"demo\",\"service\":\"a\",\"paths\":[\"/demo\"],\"strip_prefix\":true},"
                         "{\"name\":\"slash\",\"service\":\"a\",\"paths\":[\"/s/\"],\"strip_prefix\":true},"
                         "{\"name\":\"all\",\"service\":\"a\",\"paths\":[\"/\"],\"strip_prefix\":true},"
                         "{\"name\":\"keep\",\"service\":\"a\",\"paths\":[\"/keep\"]}]}");
    (void)state;
    expect_route(f, "", "GET", "/demo/hello", "demo", "/hello");
    expect_route(f, "", "GET", "/demo", "demo", "/");
    expect_route(f, "", "GET", "/demo/", "demo", "/");
    expect_route(f, "", "GET", "/demo/a/b/", "demo", "/a/b/");
    expect_route(f, "", "GET", "/s/x", "slash", "/x");
    expect_route(f, "", "GET", "/s/", "slash", "/");
    expect_route(f, "", "GET", "/other/x", "all", "/other/x");
    expect_route(f, "", "GET", "/", "all", "/");
    expect_route(f, "", "GET", "/keep/a", "keep", "/keep/a");
    destroy(f);
}

static void test_methods_405_not_fallthrough(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":["
                         "{\"name\":\"short\",\"service\":\"a\",\"paths\":[\"/api\"]},"
                         "{\"name\":\"getonly\",\"service\":\"b\",\"paths\":[\"/api/v2\"],\"methods\":[\"GET\",\"HEAD\"]},"
                         "{\"name\":\"posts\",\"service\":\"b\",\"paths\":[\"/split\"],\"methods\":[\"POST\"]},"
                         "{\"name\":\"gets\",\"service\":\"b\",\"paths\":[\"/split\"],\"methods\":[\"GET\"]}]}");
    cph_route_match_t m;
    char allow[CPH_METHOD_LIST_MAX];
    (void)state;

    expect_route(f, "", "GET", "/api/v2/x", "getonly", NULL);
    expect_route(f, "", "HEAD", "/api/v2/x", "getonly", NULL);
    assert_int_equal(match(f, "", "POST", "/api/v2/x", &m), 405);
    assert_int_equal(m.allow, CPH_METHOD_GET | CPH_METHOD_HEAD);
    assert_string_equal(m.route->name, "getonly");
    cph_method_list(m.allow, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD");
    expect_status(f, "", "DELETE", "/api/v2", 405);
    expect_status(f, "", "PROPFIND", "/api/v2", 405); /* unknown method: only "any method" routes allow it */
    expect_route(f, "", "PROPFIND", "/api/v1", "short", NULL);
    expect_route(f, "", "POST", "/api/v1", "short", NULL);
    /* two routes on the same prefix split by method */
    expect_route(f, "", "GET", "/split/x", "gets", NULL);
    expect_route(f, "", "POST", "/split/x", "posts", NULL);
    assert_int_equal(match(f, "", "PUT", "/split/x", &m), 405);
    assert_int_equal(m.allow, CPH_METHOD_GET | CPH_METHOD_POST);
    destroy(f);
}

static void test_hosts(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":["
                         "{\"name\":\"any\",\"service\":\"a\",\"paths\":[\"/h\"]},"
                         "{\"name\":\"hosted\",\"service\":\"b\",\"paths\":[\"/h\"],\"hosts\":[\"*.example.com\",\"api.test\"]},"
                         "{\"name\":\"onlyhost\",\"service\":\"b\",\"paths\":[\"/o\"],\"hosts\":[\"o.test\"]},"
                         "{\"name\":\"longer\",\"service\":\"a\",\"paths\":[\"/h/deeper\"]}]}");
    char host[64];
    size_t n;
    (void)state;

    expect_route(f, "api.test", "GET", "/h/x", "hosted", NULL);
    expect_route(f, "x.example.com", "GET", "/h/x", "hosted", NULL);
    expect_route(f, "a.b.example.com", "GET", "/h/x", "hosted", NULL);
    expect_route(f, "example.com", "GET", "/h/x", "any", NULL); /* the wildcard needs a sub-domain */
    expect_route(f, "xexample.com", "GET", "/h/x", "any", NULL);
    expect_route(f, "other.test", "GET", "/h/x", "any", NULL);
    expect_route(f, "", "GET", "/h/x", "any", NULL);
    expect_route(f, "api.test", "GET", "/h/deeper/x", "longer", NULL); /* length beats hosts */
    expect_route(f, "o.test", "GET", "/o", "onlyhost", NULL);
    expect_status(f, "p.test", "GET", "/o", 404);
    expect_status(f, "", "GET", "/o", 404);

    n = cph_router_host_normalize("X.Example.COM:8080", 18, host, sizeof(host));
    assert_int_equal(n, 13);
    assert_string_equal(host, "x.example.com");
    assert_int_equal(cph_router_host_normalize("api.test.", 9, host, sizeof(host)), 8);
    assert_int_equal(cph_router_host_normalize("[::1]:80", 8, host, sizeof(host)), 5);
    assert_string_equal(host, "[::1]");
    assert_int_equal(cph_router_host_normalize("", 0, host, sizeof(host)), 0);
    assert_int_equal(cph_router_host_normalize(":80", 3, host, sizeof(host)), 0);
    assert_int_equal(cph_router_host_normalize("[::1", 4, host, sizeof(host)), 0);
    assert_int_equal(cph_router_host_normalize("abcdefgh", 8, host, 8), 0); /* does not fit */
    destroy(f);
}

static void test_ties_hosts_then_name(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":["
                         "{\"name\":\"zz\",\"service\":\"a\",\"paths\":[\"/t\"]},"
                         "{\"name\":\"mm\",\"service\":\"a\",\"paths\":[\"/t\"]},"
                         "{\"name\":\"yy\",\"service\":\"a\",\"paths\":[\"/t\"],\"hosts\":[\"h.test\"]},"
                         "{\"name\":\"xx\",\"service\":\"a\",\"paths\":[\"/t\"],\"hosts\":[\"*.test\"]}]}");
    (void)state;
    expect_route(f, "", "GET", "/t", "mm", NULL);
    expect_route(f, "other.org", "GET", "/t", "mm", NULL);
    expect_route(f, "h.test", "GET", "/t", "xx", NULL); /* both hosted routes match: name decides */
    expect_route(f, "g.test", "GET", "/t", "xx", NULL);
    destroy(f);
}

static void test_compiled_services(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":[{\"name\":\"r\",\"service\":\"b\",\"paths\":[\"/\"]}]}");
    const cph_service_t *a = &f->snap.services[0], *b = &f->snap.services[1];
    (void)state;

    assert_int_equal(f->snap.num_services, 2);
    assert_string_equal(a->targets[0].host.base, "127.0.0.1");
    assert_int_equal(a->targets[0].port, 9000);
    assert_string_equal(a->targets[0].authority.base, "127.0.0.1:9000");
    assert_int_equal(a->targets[0].weight, 1);
    assert_int_equal(a->timeout_ms, 60000);
    assert_string_equal(b->targets[0].host.base, "::1");
    assert_string_equal(b->targets[0].authority.base, "[::1]:9001");
    assert_int_equal(b->targets[0].weight, 3);
    assert_int_equal(b->timeout_ms, 250);
    assert_true(a->targets[0].pool_id != 0 && a->targets[0].pool_id != b->targets[0].pool_id);
    assert_ptr_equal(f->snap.routes[0].service, b);
    /* a second compile of the same authority keeps the pool id (it survives swaps) */
    fixture_t *g = build("{\"services\":[{\"name\":\"c\",\"targets\":[{\"url\":\"http://127.0.0.1:9000/\"}]}],\"routes\":[]}");
    assert_int_equal(g->snap.services[0].targets[0].pool_id, a->targets[0].pool_id);
    expect_status(g, "", "GET", "/", 404);
    destroy(g);
    destroy(f);
}

static void test_unknown_service_fails_compile(void **state)
{
    json_t *body = json_loads("{\"services\":[],\"routes\":[{\"name\":\"r\",\"service\":\"nope\",\"paths\":[\"/\"]}]}", 0, NULL);
    cph_snapshot_t snap = {0};
    cph_error_t err;
    (void)state;

    cph_arena_init(&snap.arena);
    assert_int_equal(cph_proxy_compile(&snap, body, &err), 0);
    assert_int_equal(cph_router_compile(&snap, body, &err), -1);
    assert_string_equal(err.code, "unknown_service");
    assert_string_equal(err.path, "/routes/0/service");
    cph_arena_dispose(&snap.arena);
    json_decref(body);
}

static void test_10k_routes(void **state)
{
    json_t *body =
        json_pack("{s:[{s:s,s:[{s:s}]}],s:[]}", "services", "name", "a", "targets", "url", "http://127.0.0.1:1", "routes");
    json_t *routes = json_object_get(body, "routes");
    char name[32], path[64], probe[96];
    cph_snapshot_t snap = {0};
    cph_error_t err;
    cph_route_match_t m;
    struct timespec t0, t1;
    (void)state;

    for (int i = 0; i != 10000; ++i) {
        snprintf(name, sizeof(name), "r%05d", i);
        snprintf(path, sizeof(path), "/svc%d/v%d", i % 100, i / 100);
        json_array_append_new(routes, json_pack("{s:s,s:s,s:[s]}", "name", name, "service", "a", "paths", path));
    }
    cph_arena_init(&snap.arena);
    assert_int_equal(cph_proxy_compile(&snap, body, &err), 0);
    assert_int_equal(cph_router_compile(&snap, body, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i != 100000; ++i) {
        int r = i % 10000;
        snprintf(probe, sizeof(probe), "/svc%d/v%d/items/%d", r % 100, r / 100, i);
        assert_int_equal(cph_router_match(snap.router, "", 0, probe, strlen(probe), CPH_METHOD_GET, &m), 200);
        assert_int_equal(m.route->index, (uint32_t)r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* a linear scan would be 10k comparisons per request; the table does a handful of probes */
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / 100000;
    print_message("10k routes: %.2f us per match (sanitized build)\n", us);
    assert_int_equal(cph_router_match(snap.router, "", 0, "/svc1/v100", 10, CPH_METHOD_GET, &m), 404);
    cph_arena_dispose(&snap.arena);
    json_decref(body);
}

static void test_hostile_paths(void **state)
{
    fixture_t *f = build("{" SVC ",\"routes\":[{\"name\":\"root\",\"service\":\"a\",\"paths\":[\"/\"]},"
                         "{\"name\":\"ab\",\"service\":\"a\",\"paths\":[\"/a/b\"]}]}");
    size_t n = 1 << 20;
    char *path = malloc(n + 1);
    cph_route_match_t m;
    (void)state;

    for (size_t i = 0; i + 2 <= n; i += 2)
        memcpy(path + i, "/a", 2);
    path[n] = '\0';
    assert_int_equal(cph_router_match(f->snap.router, "", 0, path, n, CPH_METHOD_GET, &m), 200);
    assert_string_equal(m.route->name, "root");
    memcpy(path, "/a/b/", 5);
    assert_int_equal(cph_router_match(f->snap.router, "", 0, path, n, CPH_METHOD_GET, &m), 200);
    assert_string_equal(m.route->name, "ab");
    /* not canonical or empty: never matched */
    assert_int_equal(cph_router_match(f->snap.router, "", 0, "", 0, CPH_METHOD_GET, &m), 404);
    assert_int_equal(cph_router_match(f->snap.router, "", 0, "a/b", 3, CPH_METHOD_GET, &m), 404);
    assert_int_equal(cph_router_match(NULL, "", 0, "/", 1, CPH_METHOD_GET, &m), 404);
    free(path);
    destroy(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_longest_segment_prefix),
        cmocka_unit_test(test_no_route_is_404),
        cmocka_unit_test(test_strip_prefix),
        cmocka_unit_test(test_methods_405_not_fallthrough),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_ties_hosts_then_name),
        cmocka_unit_test(test_compiled_services),
        cmocka_unit_test(test_unknown_service_fails_compile),
        cmocka_unit_test(test_10k_routes),
        cmocka_unit_test(test_hostile_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
