/*
 * aggregate_test: the parts of an aggregate route that need no sockets. core/aggregate.c: the client path pattern
 * (parameters are one non-empty segment, a "*" tail), the path templates and their substitution with hostile values
 * (encoded '/', '?', '#', '&', CR LF, '%', dots, UTF-8, '+' in a query; a missing query parameter), the merge rules
 * (keys, top-level members with the later backend winning, "_errors" for failed backends, bodies that are not a JSON
 * object, the size cap) and the 502 / 504 body. compile/aggregate.c: the route's kind and configuration, the backends'
 * proxy routes (service, timeouts from the service unless the route sets them, retries) and its NACKs.
 * filter/aggregate.c: other kinds pass, a path outside the pattern is 404, a POST backend refuses other methods (405).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "dataplane/compile/compile.h"
#include "dataplane/core/aggregate.h"
#include "dataplane/filter/filter.h"
#include "snap_fixture.h"
#include "send_fixture.h"

/* ---------------------------------------------------------------- fixtures */

/* upstream then aggregate, as cph_snapshot_build runs them */
static int compile_agg(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    if (cph_upstream_compile(snap, body, err) != 0)
        return -1;
    return cph_aggregate_compile(snap, body, err);
}

#define TWO_SERVICES                                                                                                               \
    "\"services\":[{\"name\":\"users\",\"timeout_ms\":7000,\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]},"                       \
    "{\"name\":\"orders\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]}]"
#define AGG_ROUTE(policies, agg)                                                                                                   \
    "{\"name\":\"dash\",\"service\":\"users\",\"paths\":[\"/dash\"],\"kind\":\"aggregate\"" policies ",\"aggregate\":{" agg "}}"
#define BACKENDS2                                                                                                                  \
    "\"backends\":[{\"name\":\"user\",\"service\":\"users\",\"path\":\"/users/{id}\",\"key\":\"user\"},"                           \
    "{\"name\":\"orders\",\"service\":\"orders\",\"method\":\"POST\",\"path\":\"/orders?u={id}&l={query.limit}\","                 \
    "\"required\":false}]"

static void build_ok(snapfx_t *f, const char *json)
{
    cph_error_t err;

    if (snapfx_build(f, json, compile_agg, &err) != 0)
        fail_msg("aggregate compile failed: %s at %s: %s", err.code, err.path, err.msg);
}

/* A route configuration by hand for the core tests: pattern, and backends (name, key; NULL = top level). */
typedef struct st_cfgfx_t {
    cph_arena_t arena;
    cph_aggregate_route_t cfg;
    cph_aggregate_backend_t backends[CPH_AGGREGATE_MAX_BACKENDS];
} cfgfx_t;

static void cfg_init(cfgfx_t *x, const char *pattern)
{
    memset(x, 0, sizeof(*x));
    cph_arena_init(&x->arena);
    assert_int_equal(cph_aggregate_pattern_parse(&x->arena, pattern, &x->cfg.pattern), 0);
    x->cfg.backends = x->backends;
}

static void cfg_add(cfgfx_t *x, const char *name, const char *key)
{
    x->backends[x->cfg.num_backends].name = name;
    x->backends[x->cfg.num_backends].key = key;
    x->cfg.num_backends++;
}

/* ---------------------------------------------------------------- pattern */

static int match(const char *pattern, const char *path, h2o_iovec_t *values)
{
    cph_arena_t a;
    cph_aggregate_pattern_t p;
    int ret;

    cph_arena_init(&a);
    assert_int_equal(cph_aggregate_pattern_parse(&a, pattern, &p), 0);
    ret = cph_aggregate_pattern_match(&p, path, strlen(path), values);
    cph_arena_dispose(&a);
    return ret;
}

static void test_pattern(void **state)
{
    h2o_iovec_t v[4];

    (void)state;
    assert_true(match("/dash/{id}/x/{b}", "/dash/17/x/ab", v));
    assert_true(h2o_memis(v[0].base, v[0].len, H2O_STRLIT("17")) && h2o_memis(v[1].base, v[1].len, H2O_STRLIT("ab")));
    assert_false(match("/dash/{id}/x/{b}", "/dash/17/x", v));
    assert_false(match("/dash/{id}/x/{b}", "/dash/17/x/", v)); /* an empty segment is no parameter */
    assert_false(match("/dash/{id}/x/{b}", "/dash/17/x/ab/c", v));
    assert_false(match("/dash/{id}/x/{b}", "/dash/17/y/ab", v));
    assert_false(match("/dash/{id}", "/dashboard/1", v));
    assert_true(match("/dash/{id}/*", "/dash/1", v));
    assert_true(match("/dash/{id}/*", "/dash/1/a/b", v));
    assert_false(match("/dash/{id}/*", "/dash", v));
    assert_true(match("/dash", "/dash", v));
    assert_false(match("/dash", "/dash/", v));
    /* what the parser refuses */
    cph_arena_t a;
    cph_aggregate_pattern_t p;
    cph_arena_init(&a);
    assert_int_equal(cph_aggregate_pattern_parse(&a, "dash", &p), -1);
    assert_int_equal(cph_aggregate_pattern_parse(&a, "/a/*/b", &p), -1);
    assert_int_equal(cph_aggregate_pattern_parse(&a, "/a/x{id}", &p), -1);
    cph_arena_dispose(&a);
}

/* ---------------------------------------------------------------- templates */

/* tmpl substituted for a request whose pattern "/dash/{id}/{b}" matched path with query (raw, '?' included). */
static const char *subst(h2o_mem_pool_t *pool, const char *tmpl, const char *path, const char *query)
{
    cph_arena_t a;
    cph_aggregate_pattern_t p;
    cph_aggregate_template_t t;
    h2o_iovec_t v[2], out;

    cph_arena_init(&a);
    assert_int_equal(cph_aggregate_pattern_parse(&a, "/dash/{id}/{b}", &p), 0);
    assert_int_equal(cph_aggregate_template_parse(&a, tmpl, &p, &t), 0);
    assert_true(cph_aggregate_pattern_match(&p, path, strlen(path), v));
    out = cph_aggregate_substitute(pool, &t, v, h2o_iovec_init(query, strlen(query)));
    cph_arena_dispose(&a);
    assert_int_equal(strlen(out.base), out.len);
    return out.base;
}

static void test_substitute(void **state)
{
    h2o_mem_pool_t pool;

    (void)state;
    h2o_mem_init_pool(&pool);
    assert_string_equal(subst(&pool, "/users/{id}/x/{b}", "/dash/42/abc", ""), "/users/42/x/abc");
    /* a canonical segment keeps %2F / %3F escapes: decoded once, then re-encoded, one segment */
    assert_string_equal(subst(&pool, "/users/{id}", "/dash/..%2F..%2Fadmin/x", ""), "/users/..%2F..%2Fadmin");
    assert_string_equal(subst(&pool, "/users/{id}", "/dash/a%3Fb%23c/x", ""), "/users/a%3Fb%23c");
    assert_string_equal(subst(&pool, "/users/{id}", "/dash/%25/x", ""), "/users/%25");
    assert_string_equal(subst(&pool, "/users/{id}", "/dash/a&b=c+d/x", ""), "/users/a%26b%3Dc%2Bd");
    assert_string_equal(subst(&pool, "/users/{id}", "/dash/%C3%A9~._-/x", ""), "/users/%C3%A9~._-");
    /* query values: decoded ('+' is a space), re-encoded; CR LF, '/', '#', '&' never raw */
    assert_string_equal(subst(&pool, "/o?l={query.limit}", "/dash/1/2", "?limit=a%0d%0aX-Evil:%201"), "/o?l=a%0D%0AX-Evil%3A%201");
    assert_string_equal(subst(&pool, "/o?l={query.limit}", "/dash/1/2", "?limit=a+b/c#d&e"), "/o?l=a%20b%2Fc%23d");
    assert_string_equal(subst(&pool, "/o?l={query.limit}", "/dash/1/2", "?x=1&limit=5&limit=6"), "/o?l=5");
    assert_string_equal(subst(&pool, "/o?l={query.limit}&z=1", "/dash/1/2", "?limits=5"), "/o?l=&z=1");
    assert_string_equal(subst(&pool, "/o?l={query.limit}", "/dash/1/2", "?limit"), "/o?l=");
    assert_string_equal(subst(&pool, "/o?l={query.limit}", "/dash/1/2", ""), "/o?l=");
    assert_string_equal(subst(&pool, "/o?l={query.limit}", "/dash/1/2", "?limit=%zz%4"), "/o?l=%25zz%254");
    /* dots alone never make a dot segment in the path part; in the query they are plain */
    assert_string_equal(subst(&pool, "/o/{query.p}/x", "/dash/1/2", "?p=.."), "/o/%2E%2E/x");
    assert_string_equal(subst(&pool, "/o/{query.p}/x", "/dash/1/2", "?p=."), "/o/%2E/x");
    assert_string_equal(subst(&pool, "/o/{query.p}/x", "/dash/1/2", "?p=..."), "/o/%2E%2E%2E/x");
    assert_string_equal(subst(&pool, "/o/{query.p}/x", "/dash/1/2", "?p=a.b"), "/o/a.b/x");
    assert_string_equal(subst(&pool, "/o?p={query.p}", "/dash/1/2", "?p=.."), "/o?p=..");
    assert_string_equal(subst(&pool, "/o/{query.p}", "/dash/1/2", "?p=%2E%2E%2F"), "/o/..%2F");
    h2o_mem_clear_pool(&pool);
}

static void test_template_parse(void **state)
{
    cph_arena_t a;
    cph_aggregate_pattern_t p;
    cph_aggregate_template_t t;

    (void)state;
    cph_arena_init(&a);
    assert_int_equal(cph_aggregate_pattern_parse(&a, "/dash/{id}", &p), 0);
    assert_int_equal(cph_aggregate_template_parse(&a, "/u/{id}?x={query.y}", &p, &t), 0);
    assert_int_equal(t.num_parts, 4);
    assert_int_equal(t.parts[1].kind, CPH_AGGREGATE_PARAM);
    assert_int_equal(t.parts[1].param, 0);
    assert_int_equal(t.parts[1].in_query, 0);
    assert_int_equal(t.parts[3].kind, CPH_AGGREGATE_QUERY);
    assert_true(h2o_memis(t.parts[3].text.base, t.parts[3].text.len, H2O_STRLIT("y")));
    assert_int_equal(t.parts[3].in_query, 1);
    assert_int_equal(cph_aggregate_template_parse(&a, "/u/{user}", &p, &t), -1);
    assert_int_equal(cph_aggregate_template_parse(&a, "/u/{id", &p, &t), -1);
    assert_int_equal(cph_aggregate_template_parse(&a, "/u/id}", &p, &t), -1);
    assert_int_equal(cph_aggregate_template_parse(&a, "/u/{}", &p, &t), -1);
    assert_int_equal(cph_aggregate_template_parse(&a, "/u/{query.}", &p, &t), -1);
    assert_int_equal(cph_aggregate_template_parse(&a, "u/{id}", &p, &t), -1);
    cph_arena_dispose(&a);
}

/* ---------------------------------------------------------------- merge */

static char *build(cph_aggregate_merge_t *m, size_t max)
{
    size_t len;
    char *text = cph_aggregate_merge_build(m, max, &len);

    if (text != NULL)
        assert_int_equal(strlen(text), len);
    return text;
}

#define SET(m, i, s) cph_aggregate_merge_set((m), (i), (s), strlen(s))

static void test_merge(void **state)
{
    cfgfx_t x;
    cph_aggregate_merge_t *m;
    char *out;

    (void)state;
    cfg_init(&x, "/d");
    cfg_add(&x, "user", "user");
    cfg_add(&x, "a", NULL);
    cfg_add(&x, "b", NULL);
    cfg_add(&x, "orders", "orders");
    m = cph_aggregate_merge_new(&x.cfg);
    assert_int_equal(SET(m, 0, "{\"id\":1,\"name\":\"x\"}"), 0);
    assert_int_equal(SET(m, 1, "{\"n\":1,\"user\":\"shadowed\",\"_errors\":5}"), 0);
    assert_int_equal(SET(m, 2, " {\"n\":2} "), 0);
    cph_aggregate_merge_fail(m, 3, 503, "bad_status");
    out = build(m, CPH_AGGREGATE_MERGED_MAX);
    /* the keyed object went in first; "a" replaced it under "user", "b" replaced "n"; _errors is the gateway's */
    assert_string_equal(out, "{\"user\":\"shadowed\",\"n\":2,\"_errors\":{\"orders\":{\"status\":503,\"error\":\"bad_status\"}}}");
    free(out);
    /* not an object, not JSON, out of range: refused, nothing recorded */
    assert_int_equal(SET(m, 3, "[1,2]"), -1);
    assert_int_equal(SET(m, 3, "\"s\""), -1);
    assert_int_equal(SET(m, 3, "{\"a\":"), -1);
    assert_int_equal(SET(m, 3, "{\"a\":1}{\"b\":2}"), -1);
    assert_int_equal(SET(m, 3, ""), -1);
    assert_int_equal(SET(m, 4, "{}"), -1);
    assert_int_equal(SET(m, 3, "{\"list\":[1]}"), 0); /* a later success clears the failure */
    cph_aggregate_merge_fail(m, 1, 0, "timeout");
    out = build(m, CPH_AGGREGATE_MERGED_MAX);
    assert_string_equal(out,
                        "{\"user\":{\"id\":1,\"name\":\"x\"},\"n\":2,\"orders\":{\"list\":[1]},\"_errors\":{\"a\":{\"status\":null,"
                        "\"error\":\"timeout\"}}}");
    free(out);
    /* the cap: exactly the length passes, one byte less is refused */
    out = build(m, CPH_AGGREGATE_MERGED_MAX);
    size_t len = strlen(out);
    free(out);
    out = build(m, len);
    assert_non_null(out);
    free(out);
    assert_null(build(m, len - 1));
    cph_aggregate_merge_free(m);
    cph_arena_dispose(&x.arena);
}

static void test_merge_empty(void **state)
{
    cfgfx_t x;
    cph_aggregate_merge_t *m;
    char *out;

    (void)state;
    cfg_init(&x, "/d");
    cfg_add(&x, "a", NULL);
    m = cph_aggregate_merge_new(&x.cfg);
    out = build(m, 100);
    assert_string_equal(out, "{}");
    free(out);
    cph_aggregate_merge_free(m);
    cph_aggregate_merge_free(NULL);
    cph_arena_dispose(&x.arena);
}

static void test_error_body(void **state)
{
    h2o_mem_pool_t pool;
    h2o_iovec_t b;

    (void)state;
    h2o_mem_init_pool(&pool);
    b = cph_aggregate_error_body(&pool, "aggregate_backend_failed", "m", "user", 500, "bad_status",
                                 h2o_iovec_init(H2O_STRLIT("ab")));
    assert_true(
        h2o_memis(b.base, b.len,
                  H2O_STRLIT("{\"error\":\"aggregate_backend_failed\",\"message\":\"m\",\"backend\":\"user\",\"status\":500,"
                             "\"reason\":\"bad_status\",\"request_id\":\"ab\"}\n")));
    b = cph_aggregate_error_body(&pool, "aggregate_timeout", "m", "u\"x", 0, NULL, h2o_iovec_init(NULL, 0));
    assert_true(h2o_memis(
        b.base, b.len, H2O_STRLIT("{\"error\":\"aggregate_timeout\",\"message\":\"m\",\"backend\":\"u\\\"x\",\"status\":null}\n")));
    h2o_mem_clear_pool(&pool);
}

/* ---------------------------------------------------------------- compile */

static void test_compile(void **state)
{
    snapfx_t f;

    (void)state;
    build_ok(&f, "{" TWO_SERVICES ",\"routes\":[{\"name\":\"p\",\"service\":\"orders\",\"paths\":[\"/p\"]}," AGG_ROUTE(
                     ",\"policies\":{\"timeouts\":{\"connect_ms\":250,\"idle_ms\":900},\"retries\":{\"max\":2}}",
                     "\"pattern\":\"/dash/{id}\"," BACKENDS2) "]}");
    const cph_route_t *proxy = &f.snap.routes[0], *route = &f.snap.routes[1];
    assert_int_equal(proxy->kind, CPH_ROUTE_PROXY);
    assert_null(proxy->aggregate);
    assert_int_equal(route->kind, CPH_ROUTE_AGGREGATE);
    const cph_aggregate_route_t *agg = route->aggregate;
    assert_non_null(agg);
    assert_int_equal(agg->deadline_ms, 3000);
    assert_int_equal(agg->on_deadline_error, 0);
    assert_int_equal(agg->num_backends, 2);
    assert_int_equal(agg->pattern.num_params, 1);
    const cph_aggregate_backend_t *u = &agg->backends[0], *o = &agg->backends[1];
    assert_string_equal(u->name, "user");
    assert_string_equal(u->key, "user");
    assert_true(u->required);
    assert_false(u->post);
    assert_string_equal(o->name, "orders");
    assert_null(o->key);
    assert_false(o->required);
    assert_true(o->post);
    /* each backend: a proxy route of its service; first_byte from the service, idle and connect from the route */
    assert_ptr_equal(u->route.service, &f.snap.services[0]);
    assert_ptr_equal(o->route.service, &f.snap.services[1]);
    assert_int_equal(u->route.kind, CPH_ROUTE_PROXY);
    assert_null(u->route.aggregate);
    assert_int_equal(u->route.first_byte_timeout_ms, 7000);
    assert_int_equal(o->route.first_byte_timeout_ms, 60000);
    assert_int_equal(u->route.idle_timeout_ms, 900);
    assert_int_equal(o->route.idle_timeout_ms, 900);
    assert_int_equal(u->route.connect_timeout_ms, 250);
    assert_int_equal(o->route.retry_max, 2);
    assert_int_equal(u->route.metric_id, route->metric_id);
    snapfx_destroy(&f);

    build_ok(&f, "{" TWO_SERVICES ",\"routes\":[" AGG_ROUTE(
                     "", "\"deadline_ms\":150,\"on_deadline\":\"error\",\"pattern\":\"/dash/{id}\"," BACKENDS2) "]}");
    assert_int_equal(f.snap.routes[0].aggregate->deadline_ms, 150);
    assert_int_equal(f.snap.routes[0].aggregate->on_deadline_error, 1);
    assert_int_equal(f.snap.routes[0].aggregate->backends[0].route.idle_timeout_ms, 7000);
    assert_int_equal(f.snap.routes[0].aggregate->backends[0].route.connect_timeout_ms, 5000);
    snapfx_destroy(&f);
}

static void test_compile_refuses(void **state)
{
    static const struct {
        const char *agg, *path;
    } cases[] = {
        {"\"pattern\":\"/dash/{id}\",\"backends\":[{\"name\":\"x\",\"service\":\"nope\",\"path\":\"/x\"}]",
         "/routes/0/aggregate/backends/0/service"},
        {"\"pattern\":\"/dash/{id}\",\"backends\":[{\"name\":\"x\",\"service\":\"users\",\"path\":\"/x/{other}\"}]",
         "/routes/0/aggregate/backends/0/path"},
        {"\"pattern\":\"dash\",\"backends\":[{\"name\":\"x\",\"service\":\"users\",\"path\":\"/x\"}]",
         "/routes/0/aggregate/pattern"},
        {"\"pattern\":\"/dash\",\"backends\":[]", "/routes/0/aggregate"},
        {"\"pattern\":\"/dash\",\"deadline_ms\":0,\"backends\":[{\"name\":\"x\",\"service\":\"users\",\"path\":\"/x\"}]",
         "/routes/0/aggregate/deadline_ms"},
    };
    char text[2048];

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        snapfx_t f;
        cph_error_t err;
        snprintf(text, sizeof(text), "{" TWO_SERVICES ",\"routes\":[" AGG_ROUTE("", "%s") "]}", cases[i].agg);
        assert_int_equal(snapfx_build(&f, text, compile_agg, &err), -1);
        assert_string_equal(err.path, cases[i].path);
        snapfx_destroy(&f);
    }
}

/* ---------------------------------------------------------------- the stage's own answers */

typedef struct st_reqfx_t {
    h2o_req_t req;
    cph_req_t r;
} reqfx_t;

static int run(snapfx_t *f, size_t route, const char *method, const char *path)
{
    reqfx_t q;
    int ret;

    memset(&q, 0, sizeof(q));
    h2o_mem_init_pool(&q.req.pool);
    q.req.input.method = h2o_iovec_init(method, strlen(method));
    q.r.req = &q.req;
    q.r.snap = &f->snap;
    q.r.route = &f->snap.routes[route];
    q.r.path = h2o_iovec_init(path, strlen(path));
    sent_status = 0;
    ret = cph_aggregate_on_req(&q.r);
    h2o_mem_clear_pool(&q.req.pool);
    return ret == CPH_NEXT ? 0 : sent_status;
}

static void test_stage_answers(void **state)
{
    snapfx_t f;

    (void)state;
    build_ok(&f, "{" TWO_SERVICES ",\"routes\":[{\"name\":\"p\",\"service\":\"orders\",\"paths\":[\"/p\"]}," AGG_ROUTE(
                     "", "\"pattern\":\"/dash/{id}\"," BACKENDS2) "]}");
    assert_int_equal(run(&f, 0, "GET", "/p/1"), 0);      /* a proxy route passes on */
    assert_int_equal(run(&f, 1, "GET", "/dash/1"), 405); /* the POST backend */
    assert_non_null(strstr(sent_body, "method_not_allowed"));
    assert_int_equal(run(&f, 1, "POST", "/dash"), 404);
    assert_non_null(strstr(sent_body, "not_found"));
    assert_int_equal(run(&f, 1, "POST", "/dash/1/2"), 404);
    snapfx_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern), cmocka_unit_test(test_substitute),      cmocka_unit_test(test_template_parse),
        cmocka_unit_test(test_merge),   cmocka_unit_test(test_merge_empty),     cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_compile), cmocka_unit_test(test_compile_refuses), cmocka_unit_test(test_stage_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
