/*
 * ratelimit_redis_test: the Redis limits of filter/ratelimit.c on hand-made requests (ratelimit_fixture.h), against a
 * real redis-server that the test starts on a free port (redis_fixture.h: no persistence, a temporary directory; never
 * the system's 6379). core/redis.c runs for real; the worker is a bare h2o loop pumped by the test. Covers: on_error
 * open / closed without gateway.redis (never submitted) and under SIGSTOP (one deadline for the whole stack, each
 * limit counted by its own on_error), the answer resuming the pipeline, a 429 with Redis's values, the hashed key (the
 * client's bytes never reach Redis), a request gone before its answer, a 10/s + 3/s stack of Redis limits passing
 * exactly 3 of 10 concurrent requests with one script call each and leaving exactly 7 in the 10/s limit, and local and
 * Redis limits mixed (a refusal by either spends nothing in the other; a local refusal costs no Redis call). The
 * compiler and the local limits are ratelimit_test.c's. Fails when redis-server is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/ratelimit.h"
#include "dataplane/core/redis.h"
#include "dataplane/filter/filter.h"
#include "ratelimit_fixture.h"
#include "redis_fixture.h"

#define REDIS_TIMEOUT_MS 200

static redis_fixture_t rd;

/* ---------------------------------------------------------------- redis-server */

/* How many EVALSHA calls the server has run (the rate-limit script's calls). */
static long long evalsha_calls(void)
{
    return redis_fixture_info(&rd, "commandstats", "cmdstat_evalsha:calls=");
}

static void redis_flushall(void)
{
    redis_fixture_command(&rd, "FLUSHALL");
}

/* The gateway member pointing at the test's redis-server. */
static const char *gateway_redis(void)
{
    static char buf[128];

    snprintf(buf, sizeof(buf), "\"gateway\":{\"redis\":{\"host\":\"127.0.0.1\",\"port\":%u}}", rd.port);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    worker.stats = calloc(1, sizeof(*worker.stats));
    if (worker.stats == NULL)
        return -1;
    redis_fixture_worker_init(&worker, 0);
    if (redis_fixture_setup(&rd, "rl-test") != 0)
        return -1;
    redis_fixture_configure("127.0.0.1", rd.port, 0, REDIS_TIMEOUT_MS);
    cph_redis_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cph_redis_stop();
    redis_fixture_worker_dispose(&worker);
    int ret = redis_fixture_teardown(&rd);
    free(worker.stats);
    cph_ratelimit_local_reset(0);
    return ret;
}

/* ---------------------------------------------------------------- requests answered later */

/* Pumps the worker's loop until every request of f[0..n-1] was answered (res.status set: 429, 503, or the 500 of the
 * fixture's resume past the last stage); returns their statuses in order as 0 (passed) or the status. */
static void wait_answers(fixture_t *f, size_t n, int *status)
{
    uint64_t end = mono_ms() + 10000;
    size_t done = 0;

    while (done != n && mono_ms() < end) {
        h2o_evloop_run(worker.ctx.loop, 10);
        for (done = 0; done != n && f[done].req.res.status != 0; done++)
            ;
    }
    assert_int_equal(done, n);
    for (size_t i = 0; i != n; i++)
        status[i] = f[i].req.res.status == 500 ? 0 : f[i].req.res.status;
}

/* One request answered by the Redis part of the stage (or at once): 0 when it passed, else its status. */
static int one_async(cph_snapshot_t *snap, const cph_route_t *route)
{
    fixture_t f;
    int status;

    fx_init(&f, snap, route, "GET", "/a");
    if (cph_ratelimit_on_req(&f.r) == CPH_NEXT) {
        h2o_mem_clear_pool(&f.req.pool);
        return 0;
    }
    wait_answers(&f, 1, &status);
    h2o_mem_clear_pool(&f.req.pool);
    return status;
}

/* ---------------------------------------------------------------- redis */

static void test_redis_unconfigured_follows_on_error(void **state)
{
    (void)state;
    cph_snapshot_t *snap = build_route(
        "[{\"name\":\"o\",\"key\":\"ip\",\"rate\":1,\"period_s\":60,\"backend\":\"redis\"},"
        "{\"name\":\"c\",\"key\":\"header:x-c\",\"rate\":1,\"period_s\":60,\"backend\":\"redis\",\"on_error\":\"closed\"}]",
        "");
    const cph_rl_limit_t *o = &snap->routes[0].rate_limits->limits[0], *c = &snap->routes[0].rate_limits->limits[1];
    uint64_t open0 = counter(o, CPH_RL_OUTCOME_ERROR_OPEN), closed0 = counter(c, CPH_RL_OUTCOME_ERROR_CLOSED);
    long long calls = evalsha_calls();
    fixture_t f;

    for (int i = 0; i != 3; i++)
        assert_int_equal(one(snap, &snap->routes[0], NULL, NULL), 0);
    fx_init(&f, snap, &snap->routes[0], "GET", "/a");
    fx_header(&f, "x-c", "1");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 503);
    assert_non_null(strstr(sent_body, "\"ratelimit_unavailable\""));
    h2o_mem_clear_pool(&f.req.pool);
    assert_int_equal(evalsha_calls(), calls); /* no gateway.redis: never submitted */
    assert_int_equal(counter(o, CPH_RL_OUTCOME_ERROR_OPEN) - open0, 4);
    assert_int_equal(counter(c, CPH_RL_OUTCOME_ERROR_CLOSED) - closed0, 1);
    drop(snap);
}

static void test_redis_async(void **state)
{
    (void)state;
    const char *limits =
        "[{\"name\":\"lim\",\"key\":\"header:x-user\",\"rate\":7,\"period_s\":60,\"backend\":\"redis\",\"on_error\":\"closed\","
        "\"headers\":true}," DAY_LIMIT("after", "route", 100) "]";
    cph_snapshot_t *snap = build_route(limits, gateway_redis());
    const cph_route_t *route = &snap->routes[0];
    fixture_t f;
    int status;

    cph_ratelimit_local_reset(0);
    redis_flushall();
    /* the answer comes later: the stage waits, then resumes the pipeline (the fixture's resume answers 500) */
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-user", "evil:key\r\n*1");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    assert_int_equal(sent_status, 0);
    wait_answers(&f, 1, &status);
    assert_int_equal(status, 0); /* resumed */
    assert_string_equal(extra(&f, "ratelimit-remaining"), "0");
    assert_string_equal(extra(&f, "ratelimit-reset"), "9"); /* T = 8571.4 ms */
    h2o_mem_clear_pool(&f.req.pool);
    redisReply *r = redis_fixture_query(&rd, "KEYS %s", "cph:rl:*");
    assert_true(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    assert_int_equal(r->element[0]->len, strlen("cph:rl:r1:lim:") + 32);
    assert_memory_equal(r->element[0]->str, "cph:rl:r1:lim:", 14);
    assert_int_equal(strspn(r->element[0]->str + 14, "0123456789abcdef"), 32); /* the client's bytes never reach Redis */
    freeReplyObject(r);

    /* refused: 429 with Redis's values */
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-user", "evil:key\r\n*1");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    wait_answers(&f, 1, &status);
    assert_int_equal(status, 429);
    assert_string_equal(extra(&f, "retry-after"), "9");
    assert_string_equal(extra(&f, "ratelimit-limit"), "7");
    assert_string_equal(extra(&f, "ratelimit-remaining"), "0");
    h2o_mem_clear_pool(&f.req.pool);

    /* the request is gone before the answer: the answer touches nothing (ASan would see it) */
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-user", "u2");
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    h2o_mem_clear_pool(&f.req.pool);
    for (uint64_t end = mono_ms() + 200; mono_ms() < end;)
        h2o_evloop_run(worker.ctx.loop, 10);
    assert_int_equal(f.req.res.status, 0);
    assert_int_equal(counter(&route->rate_limits->limits[1], CPH_RL_OUTCOME_ALLOWED), 1); /* after the redis limit passed */
    drop(snap);
}

/* SIGSTOP: no answer within the deadline. A closed limit answers 503, an open one lets the request through, and every
 * redis limit of the stack is counted by its own on_error. */
static void test_redis_stack_deadline(void **state)
{
    (void)state;
    const char *limits = "[{\"name\":\"o1\",\"key\":\"route\",\"rate\":1000,\"period_s\":1,\"burst\":1000,\"backend\":\"redis\"},"
                         "{\"name\":\"o2\",\"key\":\"ip\",\"rate\":1000,\"period_s\":1,\"burst\":1000,\"backend\":\"redis\"},"
                         "{\"name\":\"c\",\"key\":\"header:x-c\",\"rate\":1000,\"period_s\":1,\"burst\":1000,\"backend\":\"redis\","
                         "\"on_error\":\"closed\"}]";
    cph_snapshot_t *snap = build_route(limits, gateway_redis());
    const cph_route_t *route = &snap->routes[0];
    const cph_rl_limit_t *o1 = &route->rate_limits->limits[0], *o2 = &route->rate_limits->limits[1];
    const cph_rl_limit_t *c = &route->rate_limits->limits[2];
    uint64_t e1 = counter(o1, CPH_RL_OUTCOME_ERROR_OPEN), e2 = counter(o2, CPH_RL_OUTCOME_ERROR_OPEN);
    uint64_t ec = counter(c, CPH_RL_OUTCOME_ERROR_CLOSED);
    fixture_t f;
    int status;

    strcpy(peer, "10.6.0.1");
    for (int i = 0; i != 100 && one_async(snap, route) != 0; i++) /* connected (an earlier test may have stopped it) */
        sleep_ms(20);
    assert_int_equal(one_async(snap, route), 0);
    redis_fixture_pause(&rd);
    uint64_t t0 = mono_ms();
    assert_int_equal(one_async(snap, route), 0); /* open, open: allowed after the deadline */
    uint64_t took = mono_ms() - t0;
    assert_true(took >= REDIS_TIMEOUT_MS - 2 && took < REDIS_TIMEOUT_MS + 1000);
    fx_init(&f, snap, route, "GET", "/a");
    fx_header(&f, "x-c", "1");
    t0 = mono_ms();
    assert_int_equal(cph_ratelimit_on_req(&f.r), CPH_DONE);
    wait_answers(&f, 1, &status);
    took = mono_ms() - t0;
    assert_int_equal(status, 503); /* one call for the stack: one deadline, not one per limit */
    assert_true(took >= REDIS_TIMEOUT_MS - 2 && took < REDIS_TIMEOUT_MS + 1000);
    assert_non_null(strstr(sent_body, "\"ratelimit_unavailable\""));
    h2o_mem_clear_pool(&f.req.pool);
    redis_fixture_resume(&rd);
    assert_int_equal(counter(o1, CPH_RL_OUTCOME_ERROR_OPEN) - e1, 2);
    assert_int_equal(counter(o2, CPH_RL_OUTCOME_ERROR_OPEN) - e2, 2);
    assert_int_equal(counter(c, CPH_RL_OUTCOME_ERROR_CLOSED) - ec, 1);
    for (int i = 0; i != 100 && one_async(snap, route) != 0; i++) /* answers again */
        sleep_ms(20);
    drop(snap);
}

/* Ten requests at once through a 10/s (burst 9) + 3/s (burst 2) stack of redis limits: 3 pass, the 7 refused by the
 * 3/s limit spent nothing, so the next snapshot with the 10/s limit alone (the same key) passes exactly 7 of 8. The
 * requests of one pass of the loop are decided by one script call, one after the other: a few ms, far under the 100 ms
 * the 10/s limit needs to drip one back. */
static void test_redis_stack_is_all_or_nothing(void **state)
{
    (void)state;
#define TEN "{\"name\":\"ten\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":9,\"backend\":\"redis\",\"on_error\":\"closed\"}"
#define THREE                                                                                                                      \
    "{\"name\":\"three\",\"key\":\"ip\",\"rate\":3,\"period_s\":1,\"burst\":2,\"backend\":\"redis\",\"on_error\":\"closed\"}"
    cph_snapshot_t *both = build_route("[" TEN "," THREE "]", gateway_redis());
    cph_snapshot_t *ten = build_route("[" TEN "]", gateway_redis());
    const cph_rl_limit_t *t10 = &both->routes[0].rate_limits->limits[0], *t3 = &both->routes[0].rate_limits->limits[1];
    uint64_t a10, l10, a3, l3;
    long long calls;
    fixture_t f[10];
    int status[10], passed = 0;

    strcpy(peer, "10.7.0.1");
    for (int i = 0; i != 100 && one_async(ten, &ten->routes[0]) == 503; i++) /* connected */
        sleep_ms(20);
    redis_flushall();
    calls = evalsha_calls();
    a10 = counter(t10, CPH_RL_OUTCOME_ALLOWED), l10 = counter(t10, CPH_RL_OUTCOME_LIMITED);
    a3 = counter(t3, CPH_RL_OUTCOME_ALLOWED), l3 = counter(t3, CPH_RL_OUTCOME_LIMITED);
    for (int i = 0; i != 10; i++) {
        fx_init(&f[i], both, &both->routes[0], "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f[i].r), CPH_DONE);
    }
    wait_answers(f, 10, status);
    for (int i = 0; i != 10; i++) {
        passed += status[i] == 0;
        if (status[i] != 0) {
            assert_int_equal(status[i], 429);
            assert_string_equal(extra(&f[i], "ratelimit-limit"), "3");
        }
        h2o_mem_clear_pool(&f[i].req.pool);
    }
    assert_int_equal(passed, 3);
    assert_int_equal(evalsha_calls() - calls, 1); /* one script call for the ten: they came in one pass of the loop */
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_ALLOWED) - a10, 3);
    assert_int_equal(counter(t10, CPH_RL_OUTCOME_LIMITED) - l10, 0);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_ALLOWED) - a3, 3);
    assert_int_equal(counter(t3, CPH_RL_OUTCOME_LIMITED) - l3, 7);
    passed = 0;
    for (int i = 0; i != 8; i++) {
        fx_init(&f[i], ten, &ten->routes[0], "GET", "/a");
        assert_int_equal(cph_ratelimit_on_req(&f[i].r), CPH_DONE);
    }
    wait_answers(f, 8, status);
    for (int i = 0; i != 8; i++) {
        passed += status[i] == 0;
        h2o_mem_clear_pool(&f[i].req.pool);
    }
    assert_int_equal(passed, 7);
    drop(both);
    drop(ten);
#undef TEN
#undef THREE
}

/* Local and redis limits in one stack: a local refusal costs no redis call, a redis refusal no local token. */
static void test_redis_and_local_stack(void **state)
{
    (void)state;
    cph_snapshot_t *snap =
        build_route("[" DAY_LIMIT("loc", "ip", 1) ",{\"name\":\"rem\",\"key\":\"route\",\"rate\":1,"
                                                  "\"period_s\":60,\"backend\":\"redis\",\"on_error\":\"closed\"}]",
                    gateway_redis());
    const cph_route_t *route = &snap->routes[0];
    const cph_rl_limit_t *loc = &route->rate_limits->limits[0], *rem = &route->rate_limits->limits[1];
    uint64_t la = counter(loc, CPH_RL_OUTCOME_ALLOWED), ll = counter(loc, CPH_RL_OUTCOME_LIMITED);
    uint64_t rl = counter(rem, CPH_RL_OUTCOME_LIMITED);
    long long calls;

    cph_ratelimit_local_reset(0);
    strcpy(peer, "10.5.0.1");
    for (int i = 0; i != 100 && one_async(snap, route) == 503; i++) /* connected */
        sleep_ms(20);
    cph_ratelimit_local_reset(0);
    redis_flushall();
    la = counter(loc, CPH_RL_OUTCOME_ALLOWED);
    assert_int_equal(one_async(snap, route), 0);   /* loc 1 of 2, rem 1 of 1 */
    assert_int_equal(one_async(snap, route), 429); /* rem refuses: loc is not charged */
    assert_int_equal(one_async(snap, route), 429);
    assert_int_equal(counter(rem, CPH_RL_OUTCOME_LIMITED) - rl, 2);
    redis_flushall();                            /* rem is whole again */
    assert_int_equal(one_async(snap, route), 0); /* the local token was still there */
    calls = evalsha_calls();
    assert_int_equal(one_async(snap, route), 429); /* now it is spent: refused before any redis call */
    assert_int_equal(evalsha_calls(), calls);
    assert_int_equal(counter(loc, CPH_RL_OUTCOME_ALLOWED) - la, 2);
    assert_int_equal(counter(loc, CPH_RL_OUTCOME_LIMITED) - ll, 1);
    drop(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_and_local_stack), cmocka_unit_test(test_redis_unconfigured_follows_on_error),
        cmocka_unit_test(test_redis_async),           cmocka_unit_test(test_redis_stack_is_all_or_nothing),
        cmocka_unit_test(test_redis_stack_deadline),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
