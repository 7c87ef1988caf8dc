/*
 * ratelimit_test: compile/ratelimit.c and filter/ratelimit.c on hand-made requests (ratelimit_fixture.h), with local
 * limits only; the Redis limits are ratelimit_redis_test.c's. Compiling: route and endpoint limits with their
 * defaults, stable ids and Redis prefixes, the gateway's hops / login limit / Redis, and refusals with their JSON
 * paths. The stage: key extraction (peer, X-Forwarded-For with trusted hops through core/clientip.c, where a spoofed
 * left part changes nothing, principal with the IP fallback, api_key, system, route, header), stacked limits where all
 * must pass and the most restrictive drives the headers, a refusal by a later limit spending nothing in the earlier
 * ones, an endpoint rule's limits replacing the route's, the 429 and its headers, and the login limit (also through
 * filter/builtin.c). h2o's inline sender is replaced by the fixture.
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
#include "dataplane/compile/compile.h"
#include "dataplane/compile/ratelimit.h"
#include "dataplane/core/redis.h"
#include "dataplane/filter/filter.h"
#include "ratelimit_fixture.h"

static int setup(void **state)
{
    (void)state;
    worker.stats = calloc(1, sizeof(*worker.stats));
    return worker.stats != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(worker.stats);
    cph_ratelimit_local_reset(0);
    return 0;
}

/* ---------------------------------------------------------------- compile */

static void test_compile(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build(
        "{\"services\":[{\"name\":\"s\",\"targets\":[]}],\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],"
        "\"policies\":{\"rate_limits\":[{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":5,"
        "\"headers\":true},{\"name\":\"T.x_1\",\"key\":\"header:x-tenant\",\"rate\":100,\"period_s\":60,\"backend\":\"redis\","
        "\"on_error\":\"closed\"}]}},{\"name\":\"r2\",\"service\":\"s\",\"paths\":[\"/b\"],\"policies\":{}},"
        "{\"name\":\"r3\",\"service\":\"s\",\"paths\":[\"/c\"],\"policies\":{\"rate_limits\":[]}}],"
        "\"endpoints\":[{\"id\":9,\"rate_limits\":[" DAY_LIMIT(
            "k", "api_key", 0) "]},{\"id\":7,\"rate_limits\":[]},{\"id\":8}],"
                               "\"gateway\":{\"trusted_proxy_hops\":2,\"redis\":{\"host\":\"redis.local\",\"port\":6380,\"db\":3},"
                               "\"login_rate_limit\":{\"rate\":3,\"period_s\":30}}}");
    const cph_rl_set_t *set = snap->routes[0].rate_limits;

    assert_non_null(set);
    assert_int_equal(set->num_limits, 2);
    const cph_rl_limit_t *a = &set->limits[0], *b = &set->limits[1];
    assert_string_equal(a->name, "per-ip");
    assert_string_equal(a->scope, "r1");
    assert_int_equal(a->key, CPH_RL_KEY_IP);
    assert_int_equal(a->spec.rate, 10);
    assert_int_equal(a->spec.period_ms, 1000);
    assert_int_equal(a->spec.burst, 5);
    assert_false(a->redis);
    assert_false(a->fail_closed);
    assert_true(a->headers);
    assert_int_equal(a->local_id, cph_ratelimit_limit_id("r1", "per-ip"));
    assert_int_equal(a->stat_id, cph_stats_limit_id("r1", "per-ip"));
    assert_true(a->stat_id != 0 && a->stat_id != b->stat_id);
    assert_int_equal(b->key, CPH_RL_KEY_HEADER);
    assert_true(h2o_memis(b->header.base, b->header.len, H2O_STRLIT("x-tenant")));
    assert_int_equal(b->spec.burst, 0);
    assert_true(b->redis);
    assert_true(b->fail_closed);
    assert_false(b->headers);
    assert_true(h2o_memis(b->redis_prefix.base, b->redis_prefix.len, H2O_STRLIT("cph:rl:r1:T.x_1:")));
    assert_null(snap->routes[1].rate_limits);
    assert_null(snap->routes[2].rate_limits);

    cph_authz_rule_t r7 = {.id = 7}, r8 = {.id = 8}, r9 = {.id = 9}, r10 = {.id = 10};
    assert_ptr_equal(cph_rl_select(snap, &snap->routes[0], NULL), set);
    assert_null(cph_rl_select(snap, &snap->routes[0], &r7));           /* [] replaces the route's limits with none */
    assert_ptr_equal(cph_rl_select(snap, &snap->routes[0], &r8), set); /* no member: the route's */
    assert_ptr_equal(cph_rl_select(snap, &snap->routes[0], &r10), set);
    const cph_rl_set_t *s9 = cph_rl_select(snap, &snap->routes[1], &r9);
    assert_non_null(s9);
    assert_string_equal(s9->limits[0].scope, "endpoint:9");
    assert_true(h2o_memis(s9->limits[0].redis_prefix.base, s9->limits[0].redis_prefix.len, H2O_STRLIT("cph:rl:endpoint:9:k:")));

    assert_int_equal(cph_rl_trusted_hops(snap), 2);
    const cph_redis_config_t *rc = cph_rl_redis_config(snap);
    assert_non_null(rc);
    assert_string_equal(rc->host, "redis.local");
    assert_int_equal(rc->port, 6380);
    assert_int_equal(rc->db, 3);
    assert_int_equal(rc->timeout_ms, 50);
    const cph_rl_set_t *login = cph_rl_login(snap);
    assert_non_null(login);
    assert_int_equal(login->limits[0].spec.rate, 3);
    assert_int_equal(login->limits[0].spec.period_ms, 30000);
    assert_int_equal(login->limits[0].spec.burst, 5);
    assert_string_equal(login->limits[0].scope, "/auth");
    assert_string_equal(login->limits[0].name, "login");

    /* the next snapshot with the same names gets the same ids */
    cph_snapshot_t *again = build_route("[{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":99,\"period_s\":1}]", "");
    assert_int_equal(again->routes[0].rate_limits->limits[0].stat_id, a->stat_id);
    assert_int_equal(again->routes[0].rate_limits->limits[0].local_id, a->local_id);
    /* defaults without a gateway */
    assert_int_equal(cph_rl_trusted_hops(again), 0);
    assert_null(cph_rl_redis_config(again));
    login = cph_rl_login(again);
    assert_int_equal(login->limits[0].spec.rate, 10);
    assert_int_equal(login->limits[0].spec.period_ms, 60000);
    assert_int_equal(login->limits[0].spec.burst, 5);
    drop(again);
    drop(snap);
}

/* The whole build (validator, then every compile stage) carries the limits into the snapshot. */
static void test_snapshot_build(void **state)
{
    (void)state;
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = json_loads("{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]}],"
                              "\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],\"policies\":{\"rate_limits\":["
                              "{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":5}]}}],"
                              "\"gateway\":{\"trusted_proxy_hops\":1,\"redis\":{\"host\":\"127.0.0.1\",\"port\":6379},"
                              "\"login_rate_limit\":{\"rate\":10,\"period_s\":60,\"burst\":5}}}",
                              0, NULL);
    cph_error_t err;
    cph_snapshot_t *snap;

    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    json_decref(body);
    if (snap == NULL)
        fail_msg("%s at %s: %s", err.code, err.path, err.msg);
    assert_non_null(snap->routes[0].rate_limits);
    assert_int_equal(snap->routes[0].rate_limits->limits[0].spec.burst, 5);
    assert_int_equal(cph_rl_trusted_hops(snap), 1);
    assert_non_null(cph_rl_redis_config(snap));
    cph_snapshot_release(snap);
}

static void test_compile_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *limits, *gateway, *path;
    } cases[] = {
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":0,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1000000001,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":86401}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"burst\":-1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"header:X-Up\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"header:\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"cookie\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a b\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"backend\":\"memcached\"}]", "",
         "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"on_error\":true}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"headers\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":1,\"colour\":1}]", "", "/routes/0/policies/rate_limits/0"},
        {"[" DAY_LIMIT("a", "ip", 0) "," DAY_LIMIT("a", "route", 0) "]", "", "/routes/0/policies/rate_limits/1"},
        {"[" DAY_LIMIT("a", "ip", 0) "," DAY_LIMIT("b", "ip", 0) "," DAY_LIMIT("c", "ip", 0) "," DAY_LIMIT(
             "d", "ip", 0) "," DAY_LIMIT("e", "ip", 0) "," DAY_LIMIT("f", "ip",
                                                                     0) "," DAY_LIMIT("g", "ip",
                                                                                      0) "," DAY_LIMIT("h", "ip",
                                                                                                       0) "," DAY_LIMIT("i", "ip",
                                                                                                                        0) "]",
         "", "/routes/0/policies/rate_limits"},
        {"{}", "", "/routes/0/policies/rate_limits"},
        {"[]", "\"gateway\":{\"trusted_proxy_hops\":9}", "/gateway/trusted_proxy_hops"},
        {"[]", "\"gateway\":{\"redis\":{\"host\":\"h\",\"port\":0}}", "/gateway/redis"},
        {"[]", "\"gateway\":{\"redis\":{\"port\":1}}", "/gateway/redis"},
        {"[]", "\"gateway\":{\"login_rate_limit\":{\"rate\":0}}", "/gateway/login_rate_limit"},
        {"[]", "\"endpoints\":[{\"id\":1,\"rate_limits\":[{\"name\":\"x\"}]}]", "/endpoints/0/rate_limits/0"},
    };

    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); i++) {
        char text[4096];
        snprintf(
            text, sizeof(text),
            "{\"services\":[{\"name\":\"s\",\"targets\":[]}],\"routes\":[{\"name\":\"r1\",\"service\":\"s\",\"paths\":[\"/a\"],"
            "\"policies\":{\"rate_limits\":%s}}]%s%s}",
            cases[i].limits, cases[i].gateway[0] != '\0' ? "," : "", cases[i].gateway);
        json_t *body = json_loads(text, 0, NULL);
        cph_snapshot_t snap;
        cph_error_t err;
        assert_non_null(body);
        memset(&snap, 0, sizeof(snap));
        memset(&err, 0, sizeof(err));
        cph_arena_init(&snap.arena);
        assert_int_equal(cph_proxy_compile(&snap, body, &err), 0);
        assert_int_equal(cph_router_compile(&snap, body, &err), 0);
        if (cph_ratelimit_compile(&snap, body, &err) != -1)
            fail_msg("case %zu compiled", i);
        if (strcmp(err.path, cases[i].path) != 0)
            fail_msg("case %zu: path %s, want %s (%s)", i, err.path, cases[i].path, err.msg);
        cph_arena_dispose(&snap.arena);
        json_decref(body);
    }
}

/* ---------------------------------------------------------------- keys */

static void test_ip_key_and_trusted_hops(void **state)
{
    (void)state;
    cph_snapshot_t *direct = build_route("[" DAY_LIMIT("ip0", "ip", 0) "]", "");
    cph_snapshot_t *one_hop = build_route("[" DAY_LIMIT("ip1", "ip", 0) "]", "\"gateway\":{\"trusted_proxy_hops\":1}");
    cph_snapshot_t *two_hops = build_route("[" DAY_LIMIT("ip2", "ip", 0) "]", "\"gateway\":{\"trusted_proxy_hops\":2}");
    const cph_route_t *rd = &direct->routes[0], *r1 = &one_hop->routes[0], *r2 = &two_hops->routes[0];

    cph_ratelimit_local_reset(0);
    /* no trusted proxy: the peer, whatever X-Forwarded-For says */
    strcpy(peer, "10.0.0.1");
    assert_int_equal(one(direct, rd, "1.1.1.1", NULL), 0);
    assert_int_equal(one(direct, rd, "2.2.2.2", NULL), 429);
    strcpy(peer, "10.0.0.2");
    assert_int_equal(one(direct, rd, NULL, NULL), 0);
    strcpy(peer, "::ffff:10.0.0.2"); /* the same client over a v4-mapped address */
    assert_int_equal(one(direct, rd, NULL, NULL), 429);
    strcpy(peer, "2001:db8::1");
    assert_int_equal(one(direct, rd, NULL, NULL), 0);
    assert_int_equal(one(direct, rd, NULL, NULL), 429);
    strcpy(peer, "2001:db8::ffff:1"); /* IPv6: one bucket per /64 */
    assert_int_equal(one(direct, rd, NULL, NULL), 429);
    strcpy(peer, "2001:db8:0:1::1");
    assert_int_equal(one(direct, rd, NULL, NULL), 0);

    /* one trusted proxy: the rightmost element; what the client put left of it changes nothing */
    strcpy(peer, "10.9.9.9");
    assert_int_equal(one(one_hop, r1, "6.6.6.6, 1.1.1.1", NULL), 0);
    assert_int_equal(one(one_hop, r1, "7.7.7.7, 1.1.1.1", NULL), 429);
    assert_int_equal(one(one_hop, r1, "1.1.1.1,6.6.6.6", NULL), 0);
    assert_int_equal(one(one_hop, r1, " 6.6.6.6:4711 ", NULL), 429); /* port and blanks: the same address */
    assert_int_equal(one(one_hop, r1, "[2001:db8::2]:80", NULL), 0);
    assert_int_equal(one(one_hop, r1, "2001:db8:0:0::2", NULL), 429);
    assert_int_equal(one(one_hop, r1, NULL, NULL), 0); /* no header: the peer */
    assert_int_equal(one(one_hop, r1, NULL, NULL), 429);

    /* two trusted proxies: the second from the right, over several header lines; no usable element there: the peer */
    fixture_t f;
    fx_init(&f, two_hops, r2, "GET", "/a");
    fx_header(&f, "x-forwarded-for", "9.9.9.9, 3.3.3.3");
    fx_header(&f, "X-Forwarded-For", "4.4.4.4");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(one(two_hops, r2, "8.8.8.8, 3.3.3.3, 5.5.5.5", NULL), 429);
    assert_int_equal(one(two_hops, r2, "3.3.3.3", NULL), 0); /* too short: the peer 10.9.9.9 */
    assert_int_equal(one(two_hops, r2, NULL, NULL), 429);
    assert_int_equal(one(two_hops, r2, "unknown, 7.7.7.7", NULL), 429); /* not an address: the peer */
    assert_int_equal(one(two_hops, r2, "7.7.7.7, 1.2.3.4", NULL), 0);
    drop(direct);
    drop(one_hop);
    drop(two_hops);
}

static void test_principal_keys(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route("[" DAY_LIMIT("p", "principal", 0) "]", "");
    cph_snapshot_t *keys = build_route("[" DAY_LIMIT("k", "api_key", 0) "," DAY_LIMIT("s", "system", 1) "]", "");
    const cph_route_t *route = &snap->routes[0], *kr = &keys->routes[0];
    cph_principal_t user = {
        .kind = CPH_PRINCIPAL_USER, .id = h2o_iovec_init(H2O_STRLIT("5")), .system = h2o_iovec_init(H2O_STRLIT("shop"))};
    cph_principal_t key = user, key6 = user, none = {0};

    key.kind = key6.kind = CPH_PRINCIPAL_API_KEY;
    key6.id = h2o_iovec_init(H2O_STRLIT("6"));
    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.0.0.1");
    assert_int_equal(one(snap, route, NULL, &user), 0);
    assert_int_equal(one(snap, route, NULL, &user), 429);
    assert_int_equal(one(snap, route, NULL, &key), 0); /* API key 5 is not user 5 */
    assert_int_equal(one(snap, route, NULL, &key), 429);
    assert_int_equal(one(snap, route, NULL, &none), 0); /* no principal: the client IP (not any principal's bucket) */
    assert_int_equal(one(snap, route, NULL, &none), 429);
    strcpy(peer, "10.0.0.7");
    assert_int_equal(one(snap, route, NULL, &none), 0);

    /* api_key: only requests with a key count; system: burst 1, so two requests of the system pass */
    for (int i = 0; i != 5; i++)
        assert_int_equal(one(keys, kr, NULL, &none), 0);
    assert_int_equal(one(keys, kr, NULL, &user), 0); /* system shop: 1 of 2 */
    assert_int_equal(one(keys, kr, NULL, &key), 0);  /* key 5: 1 of 1, system shop: 2 of 2 */
    assert_int_equal(one(keys, kr, NULL, &key6), 429);
    const cph_rl_limit_t *sys = &kr->rate_limits->limits[1], *k = &kr->rate_limits->limits[0];
    assert_int_equal(counter(sys, CPH_RL_OUTCOME_LIMITED), 1);
    assert_int_equal(counter(sys, CPH_RL_OUTCOME_ALLOWED), 2);
    assert_int_equal(counter(k, CPH_RL_OUTCOME_ALLOWED), 1); /* key 6 was refused by the system: it spent nothing */
    cph_principal_t key6_alone = key6;
    key6_alone.system = h2o_iovec_init(H2O_STRLIT("other"));
    assert_int_equal(one(keys, kr, NULL, &key6_alone), 0); /* its own token is still there */
    assert_int_equal(one(keys, kr, NULL, &key6_alone), 429);
    drop(snap);
    drop(keys);
}

static void test_route_and_header_keys(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route("[" DAY_LIMIT("h", "header:x-tenant", 0) "]", "");
    cph_snapshot_t *all = build_route("[" DAY_LIMIT("everyone", "route", 2) "]", "");
    const cph_route_t *route = &snap->routes[0];
    fixture_t f;

    cph_ratelimit_local_reset(0);
    for (int i = 0; i != 3; i++) /* header absent: the limit does not apply */
        assert_int_equal(one(snap, route, NULL, NULL), 0);
    static const struct {
        const char *name, *value;
        int status;
    } reqs[] = {
        {"x-tenant", "acme", 0}, {"X-Tenant", "acme", 429}, {"x-tenant", "ACME", 0}, {"x-tenant", "", 0}, {"x-tenant", "", 429}};
    for (size_t i = 0; i != sizeof(reqs) / sizeof(reqs[0]); i++) {
        fx_init(&f, snap, route, "GET", "/a");
        fx_header(&f, reqs[i].name, reqs[i].value);
        cph_ratelimit_on_req(&f.r);
        assert_int_equal(sent_status, reqs[i].status);
        h2o_mem_clear_pool(&f.req.pool);
    }
    for (int i = 0; i != 3; i++) { /* one bucket for every client */
        snprintf(peer, sizeof(peer), "10.1.0.%d", i);
        assert_int_equal(one(all, &all->routes[0], NULL, NULL), 0);
    }
    assert_int_equal(one(all, &all->routes[0], NULL, NULL), 429);
    drop(snap);
    drop(all);
}

/* ---------------------------------------------------------------- stacking, override, answers */

static void test_stacked_limits_and_headers(void **state)
{
    (void)state;
    cph_snapshot_t *snap =
        build_route("[{\"name\":\"wide\",\"key\":\"ip\",\"rate\":100,\"period_s\":86400,\"burst\":9,\"headers\":true},"
                    "{\"name\":\"narrow\",\"key\":\"ip\",\"rate\":1000,\"period_s\":3600,\"burst\":2,\"headers\":true},"
                    "{\"name\":\"quiet\",\"key\":\"ip\",\"rate\":5,\"period_s\":1,\"burst\":0}]",
                    "");
    const cph_route_t *route = &snap->routes[0];
    fixture_t f;

    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.2.0.1");
    for (int i = 0; i != 3; i++) {
        fx_init(&f, snap, route, "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f.r), i == 0 ? CPH_NEXT : CPH_DONE);
        if (i == 0) { /* allowed: the most restrictive limit with headers:true (narrow: 2 left of 3) */
            assert_string_equal(extra(&f, "ratelimit-limit"), "1000");
            assert_string_equal(extra(&f, "ratelimit-remaining"), "2");
            assert_string_equal(extra(&f, "ratelimit-reset"), "4"); /* 3.6 s, rounded up */
            assert_null(extra(&f, "retry-after"));
        } else { /* quiet (5 per second, burst 0) refuses the second request of this ms */
            assert_int_equal(sent_status, 429);
            assert_string_equal(extra(&f, "ratelimit-limit"), "5");
            assert_string_equal(extra(&f, "ratelimit-remaining"), "0");
            assert_string_equal(extra(&f, "retry-after"), "1");
        }
        h2o_mem_clear_pool(&f.req.pool);
    }
    /* without quiet: narrow refuses the 4th request, wide still has some */
    cph_snapshot_t *two = build_route("[{\"name\":\"wide\",\"key\":\"ip\",\"rate\":100,\"period_s\":86400,\"burst\":9},"
                                      "{\"name\":\"narrow\",\"key\":\"ip\",\"rate\":1000,\"period_s\":3600,\"burst\":2}]",
                                      "");
    strcpy(peer, "10.2.0.2");
    for (int i = 0; i != 3; i++) {
        fx_init(&f, two, &two->routes[0], "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
        assert_null(extra(&f, "ratelimit-limit")); /* headers:false: nothing on allowed answers */
        h2o_mem_clear_pool(&f.req.pool);
    }
    fx_init(&f, two, &two->routes[0], "GET", "/a");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 429);
    assert_non_null(strstr(sent_body, "\"error\":\"rate_limited\""));
    assert_non_null(strstr(sent_body, "\"request_id\":\"0123456789abcdef0123456789abcdef\""));
    assert_string_equal(extra(&f, "ratelimit-limit"), "1000");
    assert_string_equal(extra(&f, "retry-after"), "4");      /* T = 3.6 s */
    assert_string_equal(extra(&f, "ratelimit-reset"), "11"); /* 3 intervals: 10.8 s */
    ssize_t i = h2o_find_header_by_str(&f.req.res.headers, H2O_STRLIT("retry-after"), -1);
    assert_true(i != -1); /* the error answer carries them */
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(counter(&two->routes[0].rate_limits->limits[1], CPH_RL_OUTCOME_LIMITED), 1);
    drop(snap);
    drop(two);
}

/* A request refused by a later limit of the stack spends nothing in the earlier ones. */
static void test_stack_is_all_or_nothing(void **state)
{
    (void)state;
    cph_snapshot_t *both = build_route("[{\"name\":\"ten\",\"key\":\"ip\",\"rate\":10,\"period_s\":86400,\"burst\":9},"
                                       "{\"name\":\"three\",\"key\":\"ip\",\"rate\":3,\"period_s\":86400,\"burst\":2}]",
                                       "");
    cph_snapshot_t *ten = build_route("[{\"name\":\"ten\",\"key\":\"ip\",\"rate\":10,\"period_s\":86400,\"burst\":9}]", "");
    const cph_rl_limit_t *t10 = &both->routes[0].rate_limits->limits[0], *t3 = &both->routes[0].rate_limits->limits[1];
    uint64_t a10 = counter(t10, CPH_RL_OUTCOME_ALLOWED), l10 = counter(t10, CPH_RL_OUTCOME_LIMITED);
    uint64_t a3 = counter(t3, CPH_RL_OUTCOME_ALLOWED), l3 = counter(t3, CPH_RL_OUTCOME_LIMITED);
    int passed = 0;

    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.4.0.1");
    for (int i = 0; i != 10; i++)
        passed += one(both, &both->routes[0], NULL, NULL) == 0;
    assert_int_equal(passed, 3);
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_ALLOWED) - a10, 3);
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_LIMITED) - l10, 0);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_ALLOWED) - a3, 3);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_LIMITED) - l3, 7);
    /* the next snapshot keeps only "ten" (the same bucket): exactly 7 of its 10 are left */
    passed = 0;
    for (int i = 0; i != 10; i++)
        passed += one(ten, &ten->routes[0], NULL, NULL) == 0;
    assert_int_equal(passed, 7);
    drop(both);
    drop(ten);
}

static void test_endpoint_limits_replace_route_limits(void **state)
{
    (void)state;
    cph_snapshot_t *snap =
        build_route("[" DAY_LIMIT("r", "route", 0) "]",
                    "\"endpoints\":[{\"id\":7,\"rate_limits\":[]},{\"id\":8,\"rate_limits\":[" DAY_LIMIT("e", "route", 1) "]}]");
    const cph_route_t *route = &snap->routes[0];
    cph_authz_rule_t r7 = {.id = 7}, r8 = {.id = 8}, r9 = {.id = 9};
    fixture_t f;
    int status[4];

    cph_ratelimit_local_reset(0);
    for (int i = 0; i != 5; i++) { /* rule 7: none */
        fx_init(&f, snap, route, "GET", "/a");
        f.r.rule = &r7;
        assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
        h2o_mem_clear_pool(&f.req.pool);
    }
    for (int i = 0; i != 4; i++) { /* rule 8: its own limit (burst 1), not the route's; rule 9 has none: the route's */
        fx_init(&f, snap, route, "GET", "/a");
        f.r.rule = i < 3 ? &r8 : &r9;
        cph_ratelimit_on_req(&f.r);
        status[i] = sent_status;
        h2o_mem_clear_pool(&f.req.pool);
    }
    assert_int_equal(status[0], 0);
    assert_int_equal(status[1], 0);
    assert_int_equal(status[2], 429);
    assert_int_equal(status[3], 0);
    assert_int_equal(one(snap, route, NULL, NULL), 429); /* the route's limit was used once, by rule 9 */
    drop(snap);
}

static void test_login_limit(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route("[]", "\"gateway\":{\"login_rate_limit\":{\"rate\":1,\"period_s\":60,\"burst\":1}}");
    cph_route_t api = {.name = "/auth"};
    fixture_t f;

    snap->auth_api_route = &api;
    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.3.0.1");
    for (int i = 0; i != 3; i++) {
        fx_init(&f, snap, NULL, "POST", "/auth/login");
        int ret = cph_builtin_on_req(&f.r);
        assert_int_equal(ret, i < 2 ? CPH_NEXT : CPH_DONE);
        assert_int_equal(sent_status, i < 2 ? 0 : 429);
        if (i == 2)
            assert_string_equal(extra(&f, "retry-after"), "60"); /* TAT now + 120 s, tolerance 60 s */
        h2o_mem_clear_pool(&f.req.pool);
    }
    fx_init(&f, snap, NULL, "POST", "/auth/refresh"); /* only the login is limited */
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    fx_init(&f, snap, &api, "POST", "/auth/refresh");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    strcpy(peer, "10.3.0.2");
    fx_init(&f, snap, NULL, "POST", "/auth/login");
    assert_int_equal(cph_builtin_on_req(&f.r), CPH_NEXT);
    h2o_mem_clear_pool(&f.req.pool);
    drop(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_snapshot_build),
        cmocka_unit_test(test_compile_refusals),
        cmocka_unit_test(test_ip_key_and_trusted_hops),
        cmocka_unit_test(test_principal_keys),
        cmocka_unit_test(test_route_and_header_keys),
        cmocka_unit_test(test_stacked_limits_and_headers),
        cmocka_unit_test(test_stack_is_all_or_nothing),
        cmocka_unit_test(test_endpoint_limits_replace_route_limits),
        cmocka_unit_test(test_login_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
