/*
 * gcra_test: the GCRA step of core/ratelimit.c and its local table. Exact allow counts over simulated time (10 per
 * second with burst 5 at 1 ms steps), refill, remaining / retry-after / reset values, the 1 ms floor of the tolerance
 * for sub-millisecond intervals, the extremes of the schema's ranges (no overflow, sane answers), two threads
 * hammering one key (the allowed count is exact: the shard lock makes each step atomic), keys kept apart by limit id
 * and by key bytes (long keys included), and bounded memory with eviction of full buckets first. Stacks are
 * all-or-nothing: a request refused by a later limit spends nothing in the earlier ones (exact counts, a step-by-step
 * comparison with a model over 10 simulated seconds, threads hammering stacks in opposite orders, dry runs, the same
 * limit twice). Also the limits' stable stat ids and cephalo_ratelimit_total{route,limit,outcome} summed over workers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <pthread.h>
#include <cmocka.h>
#include "dataplane/core/control.h"
#include "dataplane/core/ratelimit.h"
#include "dataplane/core/status.h"
#include "metrics_fixture.h"

static cph_ratelimit_spec_t spec(uint64_t rate, uint64_t period_s, uint64_t burst)
{
    return (cph_ratelimit_spec_t){rate, period_s * 1000, burst};
}

/* ---------------------------------------------------------------- the pure step */

static void test_simulated_ten_seconds(void **state)
{
    (void)state;
    cph_ratelimit_spec_t s = spec(10, 1, 5);
    cph_ratelimit_result_t res;
    uint64_t tat = 0, allowed = 0, base = 1700000000000ull; /* a wall-clock-like start: the math is relative */

    /* one request per ms for 10 s: the burst of 6 at t = 0..5 ms, then one per 100 ms at t = 100, 200, ..., 9900 */
    for (uint64_t t = 0; t != 10000; t++) {
        cph_gcra(&s, base + t, &tat, &res);
        if (res.allowed) {
            allowed++;
            if (t > 5 && t % 100 != 0)
                fail_msg("allowed at t=%llu", (unsigned long long)t);
        }
    }
    assert_int_equal(allowed, 6 + 99);
}

static void test_burst_remaining_retry_reset(void **state)
{
    (void)state;
    cph_ratelimit_spec_t s = spec(10, 1, 5);
    cph_ratelimit_result_t res;
    uint64_t tat = 0, now = 5000;

    for (uint64_t i = 0; i != 6; i++) {
        cph_gcra(&s, now, &tat, &res);
        assert_true(res.allowed);
        assert_int_equal(res.remaining, 5 - i);
        assert_int_equal(res.retry_after_ms, 0);
        assert_int_equal(res.reset_ms, 100 * (i + 1)); /* until the bucket is full again */
    }
    uint64_t before = tat;
    cph_gcra(&s, now, &tat, &res);
    assert_false(res.allowed);
    assert_int_equal(tat, before); /* a refusal changes nothing */
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.retry_after_ms, 100);
    assert_int_equal(res.reset_ms, 600);
    cph_gcra(&s, now + 99, &tat, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ms, 1);
    cph_gcra(&s, now + 100, &tat, &res); /* one emission interval later: exactly one more */
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0);
    cph_gcra(&s, now + 100, &tat, &res);
    assert_false(res.allowed);
    /* idle for longer than the reset: a full bucket again */
    cph_gcra(&s, now + 100 + 600, &tat, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 5);
}

static void test_refill_one_per_period(void **state)
{
    (void)state;
    cph_ratelimit_spec_t s = spec(1, 60, 0);
    cph_ratelimit_result_t res;
    uint64_t tat = 0;

    cph_gcra(&s, 1000, &tat, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.reset_ms, 60000);
    cph_gcra(&s, 1000 + 59999, &tat, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ms, 1);
    cph_gcra(&s, 1000 + 60000, &tat, &res);
    assert_true(res.allowed);
}

static void test_non_dividing_rate(void **state)
{
    (void)state;
    cph_ratelimit_spec_t s = spec(3, 1, 0); /* T = 333.333 ms, rounded to the ns */
    cph_ratelimit_result_t res;
    uint64_t tat = 0, allowed = 0;

    for (uint64_t t = 0; t != 60000; t++) {
        cph_gcra(&s, t, &tat, &res);
        allowed += (uint64_t)res.allowed;
    }
    assert_int_equal(allowed, 180); /* 3 per second for 60 s, the first at t = 0 */
}

static void test_sub_ms_interval(void **state)
{
    (void)state;
    cph_ratelimit_spec_t s = spec(1000000, 1, 0); /* T = 1 us: 1000 per ms even with burst 0 */
    cph_ratelimit_result_t res;
    uint64_t tat = 0, allowed = 0;

    for (uint64_t ms = 10; ms != 13; ms++)
        for (int i = 0; i != 5000; i++) {
            cph_gcra(&s, ms, &tat, &res);
            allowed += (uint64_t)res.allowed;
        }
    assert_int_equal(allowed, 3000);
}

static void test_extremes_do_not_overflow(void **state)
{
    (void)state;
    cph_ratelimit_result_t res;
    uint64_t tat = 0, now = 1800000000000ull; /* 2027 in ms */

    cph_ratelimit_spec_t fast = spec(1000000000, 1, 1000000000);
    cph_gcra(&fast, now, &tat, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 1000000000);
    assert_int_equal(res.reset_ms, 1);

    cph_ratelimit_spec_t slow = spec(1, 86400, 1000000000); /* tau would be 8.64e22 ns: saturated */
    tat = 0;
    cph_gcra(&slow, now, &tat, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, ((uint64_t)1 << 62) / 86400000000000ull);
    assert_int_equal(res.reset_ms, 86400000);
    for (int i = 0; i != 1000; i++)
        cph_gcra(&slow, now, &tat, &res);
    assert_true(res.allowed);
    assert_int_equal(res.reset_ms, 1001ull * 86400000);

    cph_ratelimit_spec_t day = spec(1000000000, 86400, 0); /* T = 86.4 us */
    tat = 0;
    cph_gcra(&day, UINT64_MAX, &tat, &res); /* a clock past the supported range is clamped, not wrapped */
    assert_true(res.allowed);
    assert_true(tat >= ((uint64_t)1 << 62) - 1000000 && tat <= ((uint64_t)1 << 62) + 86400);
    cph_gcra(&day, UINT64_MAX, &tat, &res);
    assert_true(res.allowed);

    cph_ratelimit_spec_t zero = {0, 0, 0}; /* read as 1 per ms */
    tat = 0;
    cph_gcra(&zero, 5, &tat, &res);
    assert_true(res.allowed);
    cph_gcra(&zero, 5, &tat, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ms, 1);
}

/* ---------------------------------------------------------------- the local table */

typedef struct st_hammer_t {
    uint64_t allowed;
    uint64_t id;
} hammer_t;

static void *hammer(void *p)
{
    hammer_t *h = p;
    cph_ratelimit_spec_t s = spec(1000, 86400, 4999); /* 5000 at once, then nothing for 86.4 s */
    cph_ratelimit_result_t res;

    for (int i = 0; i != 20000; i++) {
        cph_ratelimit_local(h->id, "shared-key", 10, &s, 1000, &res);
        h->allowed += (uint64_t)res.allowed;
    }
    return NULL;
}

static void test_two_threads_one_key(void **state)
{
    (void)state;
    hammer_t a = {0, cph_ratelimit_limit_id("r", "hammer")}, b = a;
    pthread_t ta, tb;

    cph_ratelimit_local_reset(0);
    assert_int_equal(pthread_create(&ta, NULL, hammer, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, hammer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.allowed + b.allowed, 5000);
    assert_int_equal(cph_ratelimit_local_count(), 1);
}

static void test_keys_and_limits_are_apart(void **state)
{
    (void)state;
    cph_ratelimit_spec_t s = spec(1, 60, 0);
    cph_ratelimit_result_t res;
    char long_a[300], long_b[300];
    uint64_t id1 = cph_ratelimit_limit_id("route", "a"), id2 = cph_ratelimit_limit_id("route", "b");

    cph_ratelimit_local_reset(0);
    assert_true(id1 != id2);
    assert_true(id1 == cph_ratelimit_limit_id("route", "a")); /* stable: the same limit in the next snapshot */
    assert_true(cph_ratelimit_limit_id("ro", "ute") != cph_ratelimit_limit_id("rou", "te"));
    memset(long_a, 'x', sizeof(long_a));
    memcpy(long_b, long_a, sizeof(long_b));
    long_b[299] = 'y';
    const struct {
        uint64_t id;
        const char *key;
        size_t len;
    } keys[] = {{id1, "k1", 2}, {id1, "k2", 2}, {id2, "k1", 2}, {id1, "k1\0", 3}, {id1, long_a, 300}, {id1, long_b, 300}};
    for (size_t i = 0; i != sizeof(keys) / sizeof(keys[0]); i++) {
        cph_ratelimit_local(keys[i].id, keys[i].key, keys[i].len, &s, 1000, &res);
        assert_true(res.allowed);
    }
    for (size_t i = 0; i != sizeof(keys) / sizeof(keys[0]); i++) {
        cph_ratelimit_local(keys[i].id, keys[i].key, keys[i].len, &s, 2000, &res);
        if (res.allowed)
            fail_msg("key %zu shares a bucket", i);
    }
    assert_int_equal(cph_ratelimit_local_count(), 6);
}

static void test_bounded_with_eviction(void **state)
{
    (void)state;
    cph_ratelimit_spec_t day = spec(1, 86400, 0), second = spec(1, 1, 0);
    cph_ratelimit_result_t res;
    uint64_t id = cph_ratelimit_limit_id("r", "evict");
    char key[32];
    size_t max_seen = 0;

    cph_ratelimit_local_reset(64 * 12); /* 12 keys per shard (16 slots) */
    for (int i = 0; i != 8; i++) {      /* long-lived keys: their buckets stay empty for a day */
        snprintf(key, sizeof(key), "live-%d", i);
        cph_ratelimit_local(id, key, strlen(key), &day, 0, &res);
        assert_true(res.allowed);
    }
    /* 20000 one-second keys, one per 10 ms: about 100 are not full again at any time, far fewer than the cap */
    for (int i = 0; i != 20000; i++) {
        snprintf(key, sizeof(key), "short-%d", i);
        cph_ratelimit_local(id, key, strlen(key), &second, (uint64_t)i * 10, &res);
        assert_true(res.allowed);
        size_t n = i % 100 == 0 ? cph_ratelimit_local_count() : 0;
        max_seen = n > max_seen ? n : max_seen;
    }
    assert_true(max_seen <= 64 * 15); /* every shard keeps an empty slot */
    for (int i = 0; i != 8; i++) {    /* the live keys were never evicted: expired ones went first */
        snprintf(key, sizeof(key), "live-%d", i);
        cph_ratelimit_local(id, key, strlen(key), &day, 200000, &res);
        if (res.allowed)
            fail_msg("live key %d was forgotten", i);
    }
    /* a full table still answers, evicting the buckets closest to full */
    for (int i = 0; i != 5000; i++) {
        snprintf(key, sizeof(key), "flood-%d", i);
        cph_ratelimit_local(id, key, strlen(key), &day, 200000, &res);
        assert_true(res.allowed);
    }
    assert_true(cph_ratelimit_local_count() <= 64 * 16 - 64);
    cph_ratelimit_local_reset(0);
    assert_int_equal(cph_ratelimit_local_count(), 0);
}

/* ---------------------------------------------------------------- stacks */

/* One request through the stack {10/s burst 9, 3/s burst 2} on key k at now_ms; returns the refusing index or 2. */
static size_t ten_and_three(const char *k, uint64_t now_ms, int charge)
{
    static cph_ratelimit_spec_t ten = {10, 1000, 9}, three = {3, 1000, 2};
    cph_ratelimit_item_t items[2] = {{cph_ratelimit_limit_id("r", "ten"), k, strlen(k), &ten, {0}},
                                     {cph_ratelimit_limit_id("r", "three"), k, strlen(k), &three, {0}}};

    return cph_ratelimit_local_stack(items, 2, now_ms, charge);
}

static void test_stack_refusal_spends_nothing(void **state)
{
    (void)state;
    cph_ratelimit_spec_t ten = {10, 1000, 9};
    cph_ratelimit_result_t res;
    int allowed = 0, by_three = 0;

    cph_ratelimit_local_reset(0);
    for (int i = 0; i != 10; i++) { /* 10 at once: 3/s (3 at once) lets 3 through, refuses 7 */
        size_t r = ten_and_three("c1", 1000, 1);
        allowed += r == 2;
        by_three += r == 1;
    }
    assert_int_equal(allowed, 3);
    assert_int_equal(by_three, 7);
    /* the 7 refusals did not eat the 10/s budget: exactly 7 of its 10 are left */
    for (int i = 0; i != 10; i++) {
        cph_ratelimit_local(cph_ratelimit_limit_id("r", "ten"), "c1", 2, &ten, 1000, &res);
        allowed += res.allowed;
    }
    assert_int_equal(allowed, 10);
    /* a dry run stores nothing: the full 10/s bucket of c2 refuses in the 3/s limit and c2 stays unknown */
    size_t before = cph_ratelimit_local_count();
    assert_int_equal(ten_and_three("c2", 1000, 0), 2);
    assert_int_equal(cph_ratelimit_local_count(), before);
    for (int i = 0; i != 3; i++)
        assert_int_equal(ten_and_three("c2", 1000, 1), 2);
    assert_int_equal(ten_and_three("c2", 1000, 0), 1); /* the dry run says what a charge would say */
    assert_int_equal(ten_and_three("c2", 1000, 1), 1);
}

/* Ten simulated seconds at one request per ms through the stack, compared step by step with an all-or-nothing model. */
static void test_stack_matches_model(void **state)
{
    (void)state;
    cph_ratelimit_spec_t ten = {10, 1000, 9}, three = {3, 1000, 2};
    cph_ratelimit_result_t r10, r3;
    uint64_t tat10 = 0, tat3 = 0, n = 0;

    cph_ratelimit_local_reset(0);
    for (uint64_t t = 5000; t != 15000; t++) {
        uint64_t t10 = tat10, t3 = tat3;
        cph_gcra(&ten, t, &t10, &r10);
        cph_gcra(&three, t, &t3, &r3);
        size_t want = !r10.allowed ? 0 : !r3.allowed ? 1 : 2;
        if (want == 2)
            tat10 = t10, tat3 = t3, n++;
        size_t got = ten_and_three("model", t, 1);
        if (got != want)
            fail_msg("t=%llu: stack %zu, model %zu", (unsigned long long)t, got, want);
    }
    assert_int_equal(n, 3 + 29); /* the 3/s limit decides: 3 at once, then at 1/3 s, 2/3 s, ..., 29/3 s (30/3 is out) */
}

typedef struct st_stacker_t {
    int reverse;
    uint64_t allowed;
} stacker_t;

static void *stacker(void *p)
{
    stacker_t *st = p;
    cph_ratelimit_spec_t a = spec(1, 86400, 4999), b = spec(1, 86400, 2999); /* 5000 and 3000 at once */
    uint64_t ida = cph_ratelimit_limit_id("r", "stack-a"), idb = cph_ratelimit_limit_id("r", "stack-b");

    for (int i = 0; i != 20000; i++) {
        cph_ratelimit_item_t items[3] = {{ida, "ka", 2, &a, {0}}, {idb, "kb", 2, &b, {0}}, {ida, "kc", 2, &a, {0}}};
        if (st->reverse) { /* the opposite order: the shard locks are still taken in one order, no deadlock */
            cph_ratelimit_item_t tmp = items[0];
            items[0] = items[2], items[2] = tmp;
            tmp = items[0], items[0] = items[1], items[1] = tmp;
        }
        st->allowed += cph_ratelimit_local_stack(items, 3, 1000, 1) == 3;
    }
    return NULL;
}

static void test_stack_threads(void **state)
{
    (void)state;
    stacker_t x = {0, 0}, y = {1, 0};
    pthread_t tx, ty;
    cph_ratelimit_spec_t a = spec(1, 86400, 4999);
    cph_ratelimit_result_t res;
    uint64_t left = 0;

    cph_ratelimit_local_reset(0);
    assert_int_equal(pthread_create(&tx, NULL, stacker, &x), 0);
    assert_int_equal(pthread_create(&ty, NULL, stacker, &y), 0);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    assert_int_equal(x.allowed + y.allowed, 3000); /* b's 3000 */
    for (int i = 0; i != 3000; i++) {              /* and a's two keys spent exactly 3000 each: 2000 left */
        cph_ratelimit_local(cph_ratelimit_limit_id("r", "stack-a"), "ka", 2, &a, 1000, &res);
        left += res.allowed;
    }
    assert_int_equal(left, 2000);
}

static void test_stack_same_limit_twice(void **state)
{
    (void)state;
    cph_ratelimit_spec_t one = spec(1, 60, 1); /* 2 at once */
    uint64_t id = cph_ratelimit_limit_id("r", "twice");
    cph_ratelimit_item_t items[2] = {{id, "k", 1, &one, {0}}, {id, "k", 1, &one, {0}}};
    cph_ratelimit_result_t res;

    cph_ratelimit_local_reset(0);
    assert_int_equal(cph_ratelimit_local_stack(items, 2, 1000, 1), 2); /* both tokens, in one decision */
    assert_int_equal(cph_ratelimit_local_stack(items, 2, 1000, 1), 0);
    cph_ratelimit_local(id, "k", 1, &one, 1000, &res);
    assert_false(res.allowed);
    cph_ratelimit_local_reset(0);
    cph_ratelimit_local(id, "k", 1, &one, 1000, &res); /* one token left: the pair is refused and spends nothing */
    assert_int_equal(cph_ratelimit_local_stack(items, 2, 1000, 1), 1);
    cph_ratelimit_local(id, "k", 1, &one, 1000, &res);
    assert_true(res.allowed);
}

/* ---------------------------------------------------------------- metrics */

static void test_metrics(void **state)
{
    (void)state;
    cph_control_t c;
    cph_server_t srv;
    char dir[] = "/tmp/cph-gcra-XXXXXX";
    const char *scope, *name;
    size_t scope_len;

    uint32_t a = cph_stats_limit_id("shop", "per-ip"), b = cph_stats_limit_id("endpoint:7", "per-ip");
    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(cph_stats_limit_id("shop", "per-ip"), a);
    assert_true(cph_stats_limit_name(b, &scope, &scope_len, &name));
    assert_true(scope_len == 10 && memcmp(scope, "endpoint:7", 10) == 0);
    assert_string_equal(name, "per-ip");
    assert_false(cph_stats_limit_name(0, &scope, &scope_len, &name));
    assert_false(cph_stats_limit_name(cph_stats_num_limits() + 1, &scope, &scope_len, &name));

    metrics_fixture_init(&c, &srv, dir);
    cph_counter_add(&srv.workers[0].stats->ratelimit[a][CPH_RL_OUTCOME_ALLOWED], 3);
    cph_counter_add(&srv.workers[1].stats->ratelimit[a][CPH_RL_OUTCOME_ALLOWED], 4);
    cph_counter_add(&srv.workers[1].stats->ratelimit[a][CPH_RL_OUTCOME_LIMITED], 2);
    cph_counter_add(&srv.workers[0].stats->ratelimit[b][CPH_RL_OUTCOME_ERROR_CLOSED], 1);
    cph_counter_add(&srv.workers[0].stats->ratelimit[0][CPH_RL_OUTCOME_LIMITED], 9); /* overflow slot: never reported */
    char *text = cph_status_metrics(&c);
    assert_non_null(strstr(text, "# TYPE cephalo_ratelimit_total counter\n"));
    assert_non_null(strstr(text, "cephalo_ratelimit_total{route=\"shop\",limit=\"per-ip\",outcome=\"allowed\"} 7\n"));
    assert_non_null(strstr(text, "cephalo_ratelimit_total{route=\"shop\",limit=\"per-ip\",outcome=\"limited\"} 2\n"));
    assert_non_null(strstr(text, "cephalo_ratelimit_total{route=\"endpoint:7\",limit=\"per-ip\",outcome=\"error_closed\"} 1\n"));
    assert_null(strstr(text, "outcome=\"error_open\""));
    assert_null(strstr(text, "} 9\n"));
    free(text);
    metrics_fixture_dispose(&c, &srv, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulated_ten_seconds),  cmocka_unit_test(test_burst_remaining_retry_reset),
        cmocka_unit_test(test_refill_one_per_period),  cmocka_unit_test(test_non_dividing_rate),
        cmocka_unit_test(test_sub_ms_interval),        cmocka_unit_test(test_extremes_do_not_overflow),
        cmocka_unit_test(test_two_threads_one_key),    cmocka_unit_test(test_keys_and_limits_are_apart),
        cmocka_unit_test(test_bounded_with_eviction),  cmocka_unit_test(test_stack_refusal_spends_nothing),
        cmocka_unit_test(test_stack_matches_model),    cmocka_unit_test(test_stack_threads),
        cmocka_unit_test(test_stack_same_limit_twice), cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
