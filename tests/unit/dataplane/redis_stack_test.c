/*
 * redis_stack_test: stacks of several rate limits decided by one call of the Redis backend (cph_redis_gcra_stack in
 * core/redis.c, one atomic script on the server) against a real redis-server that the test starts on a free port
 * (redis_fixture.h: no persistence, a temporary directory; never the system's 6379). The worker is a bare h2o event
 * loop with a multithread queue, pumped by the test; the calls made in one pass of the loop go to Redis as one script
 * call. One
 * limit at a time, the connection's failures and the generic commands are redis_test.c's.
 *
 * Covers: 10/s and 3/s together pass exactly 3 of 10 concurrent calls and leave exactly 7 in the 10/s key (nothing
 * written for a refused call, the refusing limit and the zeroed results of the undecided ones reported), a flushed
 * script cache under a pipelined stack (one SCRIPT LOAD, the decisions as exact as before), the deadline under SIGSTOP
 * (TIMEOUT for the whole stack, no second answer when the late reply comes), and the previous release's one-key script
 * and the stack script taking turns on one key (one state, one count, one expiry: a rolling upgrade never
 * over-admits), and a batch of 40 random stacks in one script call deciding exactly as the same calls one by one.
 * Fails when redis-server is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/redis.h"
#include "redis_fixture.h"

#define TIMEOUT_MS 100
#define DB 3

static struct {
    redis_fixture_t redis;
    cph_worker_t w;
} fx;

static void configure(uint64_t timeout_ms)
{
    redis_fixture_configure("127.0.0.1", fx.redis.port, DB, timeout_ms);
}

/* How many SCRIPT LOADs the server has run. */
static long long script_loads(void)
{
    return redis_fixture_info(&fx.redis, "commandstats", "cmdstat_script|load:calls=");
}

/* ---------------------------------------------------------------- stacks */

typedef struct st_stack_answer_t {
    int count;
    size_t n;
    cph_redis_status_t status;
    size_t refused;
    cph_ratelimit_result_t res[4];
    uint64_t at_ms;
} stack_answer_t;

static void on_stack_answer(void *ud, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res)
{
    stack_answer_t *a = ud;

    a->count++;
    a->status = status;
    a->refused = refused;
    a->at_ms = mono_ms();
    if (status == CPH_REDIS_OK)
        memcpy(a->res, res, a->n * sizeof(*res));
    else
        assert_null(res);
}

/* Submits `calls` stacks of the n limits (keys[i], specs[i]) at once (pipelined), then waits for every answer. */
static void stacks(size_t n, const char *const *keys, const cph_ratelimit_spec_t *const *specs, stack_answer_t *out, int calls)
{
    size_t lens[4];
    int done = 0;

    for (size_t i = 0; i != n; i++)
        lens[i] = strlen(keys[i]);
    memset(out, 0, calls * sizeof(*out));
    for (int c = 0; c != calls; c++) {
        out[c].n = n;
        cph_redis_gcra_stack(&fx.w, n, keys, lens, specs, on_stack_answer, &out[c]);
        assert_int_equal(out[c].count, 0); /* never from inside the call */
    }
    for (uint64_t end = mono_ms() + 10000; done < calls && mono_ms() < end;) {
        h2o_evloop_run(fx.w.ctx.loop, 10);
        done = 0;
        for (int c = 0; c != calls; c++)
            done += out[c].count;
    }
    for (int c = 0; c != calls; c++)
        assert_int_equal(out[c].count, 1);
}

/* Stacks of one (1000/s, burst 10) until one is answered OK (the backoff reaches at most 5 s between attempts): once
 * connected, the pipelined calls of a test all go out at once. */
static stack_answer_t stack_until_ok(const char *key)
{
    const cph_ratelimit_spec_t spec = {1000, 1000, 10}, *specs[1] = {&spec};
    stack_answer_t a[1];
    uint64_t end = mono_ms() + 15000;

    do {
        stacks(1, &key, specs, a, 1);
        if (a[0].status == CPH_REDIS_OK) {
            assert_int_equal(a[0].refused, a[0].res[0].allowed ? 1 : 0); /* a stack of one */
            break;
        }
        sleep_ms(50);
    } while (mono_ms() < end);
    return a[0];
}

/* 10/s (burst 9) and 3/s (burst 2) stacked: of 10 concurrent requests 3 pass, and the 7 refused by the 3/s limit left
 * the 10/s key untouched: exactly 7 more pass on it alone. The calls are pipelined: all of it takes a few ms, far
 * below the 100 ms the 10/s limit needs to drip one request back in. */
static void test_stack_all_or_nothing(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t ten = {10, 1000, 9}, three = {3, 1000, 2};
    const char *keys[2] = {"cph:rl:t:stack:ten", "cph:rl:t:stack:three"};
    const cph_ratelimit_spec_t *specs[2] = {&ten, &three};
    stack_answer_t a[10];
    int allowed = 0;

    configure(1000);
    stack_answer_t warm = stack_until_ok("cph:rl:t:stack:warm"); /* connected: the pipelined calls below all go out at once */
    assert_int_equal(warm.status, CPH_REDIS_OK);
    stacks(2, keys, specs, a, 10);
    for (int c = 0; c != 10; c++) {
        assert_int_equal(a[c].status, CPH_REDIS_OK);
        if (a[c].refused == 2) {
            assert_true(a[c].res[0].allowed && a[c].res[1].allowed);
            assert_int_equal(a[c].res[0].remaining, (uint64_t)(9 - allowed)); /* 9, 8, 7 left in the 10/s limit */
            assert_int_equal(a[c].res[1].remaining, (uint64_t)(2 - allowed)); /* 2, 1, 0 in the 3/s one */
            assert_true(a[c].res[1].reset_ms > 0 && a[c].res[1].reset_ms <= 1000);
            allowed++;
        } else {
            assert_int_equal(a[c].refused, 1); /* the 3/s limit refused */
            assert_false(a[c].res[1].allowed);
            assert_true(a[c].res[1].retry_after_ms > 0 && a[c].res[1].retry_after_ms <= 334);
            assert_true(a[c].res[1].reset_ms >= a[c].res[1].retry_after_ms);
            assert_false(a[c].res[0].allowed); /* not decided for the caller: zero */
            assert_int_equal(a[c].res[0].remaining, 0);
        }
    }
    assert_int_equal(allowed, 3);
    /* the 10/s limit alone: exactly 7 left */
    stacks(1, keys, specs, a, 8);
    for (int c = 0; c != 8; c++) {
        assert_int_equal(a[c].status, CPH_REDIS_OK);
        assert_int_equal(a[c].refused, c < 7 ? 1 : 0);
        if (c < 7)
            assert_int_equal(a[c].res[0].remaining, (uint64_t)(6 - c));
    }
}

/* SCRIPT FLUSH, then stacks pipelined: every NOSCRIPT is retried once behind one SCRIPT LOAD, and the decisions are
 * as exact as before (burst 4 of one key: 5 pass, one is refused; the second key is untouched by the refusal). */
static void test_stack_noscript_reloads(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t wide = {1, 3600000, 99}, narrow = {1, 3600000, 4};
    const char *keys[2] = {"cph:rl:t:stacknoscript:wide", "cph:rl:t:stacknoscript:narrow"};
    const cph_ratelimit_spec_t *specs[2] = {&wide, &narrow};
    stack_answer_t a[6];
    int allowed = 0;

    configure(1000);
    stack_answer_t warm = stack_until_ok("cph:rl:t:stacknoscript:warm");
    assert_int_equal(warm.status, CPH_REDIS_OK);
    long long loads = script_loads();
    redis_fixture_command(&fx.redis, "SCRIPT FLUSH");
    stacks(2, keys, specs, a, 6);
    for (int c = 0; c != 6; c++) {
        assert_int_equal(a[c].status, CPH_REDIS_OK);
        allowed += a[c].refused == 2;
        if (a[c].refused != 2)
            assert_int_equal(a[c].refused, 1);
    }
    assert_int_equal(allowed, 5);
    assert_int_equal(script_loads(), loads + 1);
    stacks(1, keys, specs, a, 1); /* the wide key was charged 5 times, not 6 */
    assert_int_equal(a[0].refused, 1);
    assert_int_equal(a[0].res[0].remaining, 100 - 6); /* 100 at once, the 6th charge */
}

static void test_stack_stopped_server_times_out(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t s1 = {100, 1000, 0}, s2 = {1000, 1000, 10};
    const char *keys[2] = {"cph:rl:t:stackstop:a", "cph:rl:t:stackstop:b"};
    const cph_ratelimit_spec_t *specs[2] = {&s1, &s2};
    stack_answer_t a[1];

    configure(TIMEOUT_MS);
    stack_answer_t warm = stack_until_ok("cph:rl:t:stackstop:warm");
    assert_int_equal(warm.status, CPH_REDIS_OK);
    redis_fixture_pause(&fx.redis);
    uint64_t start = mono_ms();
    stacks(2, keys, specs, a, 1);
    assert_int_equal(a[0].status, CPH_REDIS_TIMEOUT);
    assert_true(a[0].at_ms - start >= TIMEOUT_MS - 2);
    assert_true(a[0].at_ms - start <= 10 * TIMEOUT_MS);
    redis_fixture_resume(&fx.redis);
    uint64_t end = mono_ms() + 300; /* the late reply is dropped: no second answer */
    while (mono_ms() < end)
        h2o_evloop_run(fx.w.ctx.loop, 10);
    assert_int_equal(a[0].count, 1);
}

#define BATCH_CALLS 40

/* Submits calls[i] (n_of[i] limits, keys key_of[i][..] of the set `keys`) at once, in one pass, and waits for all. */
static void submit_all(const char *const *keys, const size_t n_of[BATCH_CALLS], const int key_of[BATCH_CALLS][4],
                       const cph_ratelimit_spec_t *spec_of, stack_answer_t *out, int one_by_one)
{
    memset(out, 0, BATCH_CALLS * sizeof(*out));
    for (int c = 0; c != BATCH_CALLS; c++) {
        const char *k[4];
        size_t lens[4];
        const cph_ratelimit_spec_t *sp[4];
        for (size_t i = 0; i != n_of[c]; i++) {
            k[i] = keys[key_of[c][i]];
            lens[i] = strlen(k[i]);
            sp[i] = &spec_of[key_of[c][i]];
        }
        out[c].n = n_of[c];
        cph_redis_gcra_stack(&fx.w, n_of[c], k, lens, sp, on_stack_answer, &out[c]);
        if (one_by_one)
            redis_fixture_pump(&fx.w, &out[c].count, 1);
    }
    for (int c = 0; c != BATCH_CALLS; c++)
        redis_fixture_pump(&fx.w, &out[c].count, 1);
}

/* One script call for many requests decides exactly as the same calls made one after the other: 40 requests with
 * random stacks (1 to 4 limits over 4 keys, a key twice in one stack at times; 1 to 5 an hour or a minute, bursts 0 to
 * 3) in one pass, against the same requests one at a time on a copy of the keys. The same answer for every request:
 * allowed or refused, the refusing limit, every remaining; times within a second (the two runs are not at the same
 * instant). */
static void test_batch_equals_one_by_one(void **state)
{
    (void)state;
    const char *batch_keys[4] = {"cph:rl:t:batch:a", "cph:rl:t:batch:b", "cph:rl:t:batch:c", "cph:rl:t:batch:d"};
    const char *seq_keys[4] = {"cph:rl:t:seq:a", "cph:rl:t:seq:b", "cph:rl:t:seq:c", "cph:rl:t:seq:d"};
    const cph_ratelimit_spec_t spec_of[4] = {{5, 3600000, 3}, {1, 60000, 2}, {2, 60000, 0}, {1, 3600000, 1}};
    size_t n_of[BATCH_CALLS];
    int key_of[BATCH_CALLS][4], allowed = 0, refused = 0;
    static stack_answer_t batch[BATCH_CALLS], seq[BATCH_CALLS];
    uint64_t x = 0x853c49e6748fea9bull;

    configure(1000);
    stack_answer_t warm = stack_until_ok("cph:rl:t:batch:warm");
    assert_int_equal(warm.status, CPH_REDIS_OK);
    for (int c = 0; c != BATCH_CALLS; c++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n_of[c] = 1 + (size_t)(x % 4);
        for (size_t i = 0; i != n_of[c]; i++)
            key_of[c][i] = (int)((x >> (8 + 4 * i)) % 4);
    }
    long long before = redis_fixture_info(&fx.redis, "commandstats", "cmdstat_evalsha:calls=");
    submit_all(batch_keys, n_of, key_of, spec_of, batch, 0);
    assert_int_equal(redis_fixture_info(&fx.redis, "commandstats", "cmdstat_evalsha:calls=") - before, 1);
    submit_all(seq_keys, n_of, key_of, spec_of, seq, 1);
    for (int c = 0; c != BATCH_CALLS; c++) {
        assert_int_equal(batch[c].status, CPH_REDIS_OK);
        assert_int_equal(seq[c].status, CPH_REDIS_OK);
        if (batch[c].refused != seq[c].refused)
            fail_msg("request %d: refused by %zu in the batch, %zu one by one", c, batch[c].refused, seq[c].refused);
        for (size_t i = 0; i != batch[c].n; i++) {
            const cph_ratelimit_result_t *b = &batch[c].res[i], *q = &seq[c].res[i];
            assert_int_equal(b->allowed, q->allowed);
            assert_int_equal(b->remaining, q->remaining);
            assert_true(b->retry_after_ms + 1000 >= q->retry_after_ms && q->retry_after_ms + 1000 >= b->retry_after_ms);
            assert_true(b->reset_ms + 1000 >= q->reset_ms && q->reset_ms + 1000 >= b->reset_ms);
        }
        allowed += batch[c].refused == batch[c].n;
        refused += batch[c].refused != batch[c].n;
    }
    assert_true(allowed > 0 && refused > 0); /* both kinds of answer were compared */
}

/* The one-key script of the release before stacks, verbatim: data planes of both releases share a Redis during a
 * rolling upgrade. */
static const char OLD_SCRIPT[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
                                 "local t = redis.call('TIME')\n"
                                 "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                 "local T = tonumber(ARGV[1]) * 1000 / tonumber(ARGV[2])\n"
                                 "local tau = tonumber(ARGV[3]) * T\n"
                                 "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
                                 "if tat < now then tat = now end\n"
                                 "if tat - tau > now then\n"
                                 "  return {0, 0, math.ceil((tat - tau - now) / 1000), math.ceil((tat - now) / 1000)}\n"
                                 "end\n"
                                 "tat = tat + T\n"
                                 "local px = math.ceil((tat - now) / 1000)\n"
                                 "if px < 1 then px = 1 end\n"
                                 "redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', string.format('%.0f', px))\n"
                                 "return {1, math.floor((now + tau - tat) / T) + 1, 0, math.ceil((tat - now) / 1000)}\n";

/* The old script and the stack script take turns on one key (1 per hour, burst 9): one count of 10, remaining going
 * down by one at every step whichever script took it, the same refusal from both, and the same expiry. */
static void test_stack_and_old_script_share_a_key(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t spec = {1, 3600000, 9};
    const char *key = "cph:rl:t:upgrade:k";
    const cph_ratelimit_spec_t *specs[1] = {&spec};
    redisContext *c = redis_fixture_connect(&fx.redis);
    int allowed = 0;

    configure(1000);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    for (int i = 0; i != 14; i++) {
        cph_ratelimit_result_t res;
        if (i % 2 == 0) {
            redisReply *r = redisCommand(c, "EVAL %s 1 %s 3600000 1 9", OLD_SCRIPT, key);
            assert_true(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
            res = (cph_ratelimit_result_t){(int)r->element[0]->integer, (uint64_t)r->element[1]->integer,
                                           (uint64_t)r->element[2]->integer, (uint64_t)r->element[3]->integer};
            freeReplyObject(r);
        } else {
            stack_answer_t a[1];
            stacks(1, &key, specs, a, 1);
            assert_int_equal(a[0].status, CPH_REDIS_OK);
            res = a[0].res[0];
        }
        if (i < 10) {
            assert_true(res.allowed);
            assert_int_equal(res.remaining, (uint64_t)(9 - i));
            allowed++;
        } else {
            assert_false(res.allowed);
            assert_true(res.retry_after_ms > 3590000 && res.retry_after_ms <= 3600000);
            assert_true(res.reset_ms > 10 * 3600000 - 10000 && res.reset_ms <= 10 * 3600000);
        }
        redisReply *r = redisCommand(c, "PTTL %s", key);
        assert_true(r != NULL && r->type == REDIS_REPLY_INTEGER);
        assert_true(r->integer > (long long)(i < 10 ? i + 1 : 10) * 3600000 - 10000);
        assert_true(r->integer <= (long long)(i < 10 ? i + 1 : 10) * 3600000);
        freeReplyObject(r);
    }
    assert_int_equal(allowed, 10);
    redisFree(c);
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    (void)state;
    redis_fixture_worker_init(&fx.w, 0);
    if (redis_fixture_setup(&fx.redis, "redis-stack-test") != 0)
        return -1;
    cph_redis_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cph_redis_stop();
    redis_fixture_worker_dispose(&fx.w);
    return redis_fixture_teardown(&fx.redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_all_or_nothing),           cmocka_unit_test(test_stack_noscript_reloads),
        cmocka_unit_test(test_stack_stopped_server_times_out), cmocka_unit_test(test_stack_and_old_script_share_a_key),
        cmocka_unit_test(test_batch_equals_one_by_one),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
