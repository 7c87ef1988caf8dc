/*
 * balance_test: core/balance.c on hand-built services (their target states are local, so tests never share state):
 * the exact smooth-WRR sequence and its reset when the weights change, least_conn's choice and round-robin
 * tie-break, power of two choices (never the busy target when another is idle; weighted shares over a seeded run),
 * exclusion by the tried bitmap and by active health, the breaker (N failures open, a success resets the count,
 * max_ejection_percent, exactly one half-open probe, close on success, reopen one step longer on failure, the cap,
 * the decay, abandoned = no verdict), admission and retry-budget counters, and two threads hammering one service
 * whose in-flight counts must come back to zero.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "dataplane/core/balance.h"

#define MS 1000000ull
#define MAX_T 8

typedef struct st_fixture_t {
    cph_service_t svc;
    cph_target_t targets[MAX_T];
    cph_target_state_t states[MAX_T];
    cph_service_state_t sstate;
    cph_balance_worker_t *bw;
} fixture_t;

static void fx_init(fixture_t *f, cph_lb_policy_t lb, const uint32_t *weights, size_t n, uint32_t metric_id)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i != n; ++i) {
        f->targets[i].weight = weights != NULL ? weights[i] : 1;
        f->targets[i].index = (uint32_t)i;
        f->targets[i].state = &f->states[i];
    }
    f->svc.name = "svc";
    f->svc.metric_id = metric_id;
    f->svc.targets = f->targets;
    f->svc.num_targets = n;
    f->svc.lb = lb;
    f->svc.outlier_consecutive_failures = 5;
    f->svc.outlier_base_ejection_ms = 30000;
    f->svc.outlier_max_ejection_ms = 300000;
    f->svc.outlier_max_ejection_percent = 50;
    f->svc.max_requests = 1024;
    f->svc.max_pending = 1024;
    f->svc.state = &f->sstate;
    f->svc.weights_signature = cph_balance_weights_signature(&f->svc); /* as compile/proxy.c does */
    f->bw = cph_balance_worker_new();
}

static void fx_done(fixture_t *f)
{
    cph_balance_worker_free(f->bw);
}

/* One pick then its end with outcome; returns the target index or -1. */
static int pick_end(fixture_t *f, const uint64_t *tried, uint64_t now, cph_outcome_t outcome)
{
    cph_pick_t p;

    if (cph_balance_pick(f->bw, &f->svc, 0, tried, now, &p) != 0)
        return -1;
    cph_balance_end(&f->svc, &p, outcome, now);
    return (int)p.target->index;
}

/* Reports an outcome for target i as if a (non-probe) request had been sent to it. */
static void outcome_on(fixture_t *f, size_t i, cph_outcome_t outcome, uint64_t now)
{
    cph_pick_t p = {&f->targets[i], 0};

    atomic_fetch_add(&f->states[i].active, 1);
    cph_balance_end(&f->svc, &p, outcome, now);
}

/* ---------------------------------------------------------------- policies */

static void test_swrr_sequence(void **state)
{
    (void)state;
    static const uint32_t w[] = {5, 1, 1};
    static const int expected[] = {0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0};
    fixture_t f;

    fx_init(&f, CPH_LB_ROUND_ROBIN, w, 3, 11);
    for (size_t k = 0; k != sizeof(expected) / sizeof(expected[0]); ++k)
        assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), expected[k]);
    fx_done(&f);
}

static void test_swrr_equal_and_reset(void **state)
{
    (void)state;
    static const uint32_t w[] = {5, 1, 1};
    fixture_t f;

    fx_init(&f, CPH_LB_ROUND_ROBIN, NULL, 3, 12);
    for (int k = 0; k != 6; ++k)
        assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), k % 3);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 0);
    /* a swap changes the weights: the worker's current weights start over */
    for (size_t i = 0; i != 3; ++i)
        f.targets[i].weight = w[i];
    f.svc.weights_signature = cph_balance_weights_signature(&f.svc);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 0);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 0);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 1);
    /* and a shorter target list too */
    f.svc.num_targets = 2;
    f.targets[0].weight = f.targets[1].weight = 1;
    f.svc.weights_signature = cph_balance_weights_signature(&f.svc);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 0);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 1);
    fx_done(&f);
}

static void test_least_conn(void **state)
{
    (void)state;
    static const uint32_t w[] = {4, 1, 1};
    fixture_t f;

    fx_init(&f, CPH_LB_LEAST_CONN, w, 3, 13);
    atomic_store(&f.states[0].active, 3); /* 0.75 per weight */
    atomic_store(&f.states[1].active, 1); /* 1 */
    atomic_store(&f.states[2].active, 2); /* 2 */
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 0);
    atomic_store(&f.states[0].active, 5);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 1);
    /* equals take turns */
    for (size_t i = 0; i != 3; ++i) {
        f.targets[i].weight = 1;
        atomic_store(&f.states[i].active, 0);
    }
    f.svc.weights_signature = cph_balance_weights_signature(&f.svc);
    int seen[3] = {0};
    for (int k = 0; k != 9; ++k)
        seen[pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS)]++;
    assert_int_equal(seen[0], 3);
    assert_int_equal(seen[1], 3);
    assert_int_equal(seen[2], 3);
    /* a pick counts in flight until its end */
    cph_pick_t p;
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, NULL, 1, &p), 0);
    assert_int_equal(atomic_load(&p.target->state->active), 1);
    cph_balance_end(&f.svc, &p, CPH_OUTCOME_SUCCESS, 1);
    assert_int_equal(atomic_load(&p.target->state->active), 0);
    fx_done(&f);
}

static void test_p2c_avoids_busy(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, CPH_LB_RANDOM, NULL, 2, 14);
    cph_balance_worker_seed(f.bw, 42);
    atomic_store(&f.states[0].active, 100);
    for (int k = 0; k != 2000; ++k)
        assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), 1);
    fx_done(&f);
}

static void test_p2c_distribution(void **state)
{
    (void)state;
    static const uint32_t w[] = {3, 1, 0};
    fixture_t f;
    int seen[4] = {0};

    /* idle targets: the first draw wins every tie, so shares follow the weights; a fixed seed cannot flake */
    fx_init(&f, CPH_LB_RANDOM, w, 2, 15);
    cph_balance_worker_seed(f.bw, 7);
    for (int k = 0; k != 40000; ++k)
        seen[pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS)]++;
    assert_in_range(seen[0], 30000 - 600, 30000 + 600);
    fx_done(&f);

    memset(seen, 0, sizeof(seen));
    fx_init(&f, CPH_LB_RANDOM, NULL, 4, 16);
    cph_balance_worker_seed(f.bw, 99);
    for (int k = 0; k != 40000; ++k)
        seen[pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS)]++;
    for (int i = 0; i != 4; ++i)
        assert_in_range(seen[i], 10000 - 500, 10000 + 500);
    fx_done(&f);
}

static void test_tried_and_unhealthy(void **state)
{
    (void)state;
    static const cph_lb_policy_t policies[] = {CPH_LB_ROUND_ROBIN, CPH_LB_LEAST_CONN, CPH_LB_RANDOM};
    cph_health_check_t hc = {.path = "/"};
    uint64_t tried[1] = {0x5}; /* 0 and 2 */
    fixture_t f;

    for (size_t p = 0; p != 3; ++p) {
        fx_init(&f, policies[p], NULL, 4, 17);
        for (int k = 0; k != 20; ++k)
            assert_true(pick_end(&f, tried, 1, CPH_OUTCOME_SUCCESS) % 2 == 1);
        /* unhealthy counts only while the service has a health check */
        atomic_store(&f.states[1].health, CPH_HEALTH_UNHEALTHY);
        int got1 = 0;
        for (int k = 0; k != 20; ++k)
            got1 |= pick_end(&f, tried, 1, CPH_OUTCOME_SUCCESS) == 1;
        assert_true(got1);
        f.svc.health_check = &hc;
        for (int k = 0; k != 20; ++k)
            assert_int_equal(pick_end(&f, tried, 1, CPH_OUTCOME_SUCCESS), 3);
        atomic_store(&f.states[3].health, CPH_HEALTH_UNHEALTHY);
        assert_int_equal(pick_end(&f, tried, 1, CPH_OUTCOME_SUCCESS), -1);
        assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS) % 2, 0);
        tried[0] = 0xf;
        atomic_store(&f.states[3].health, CPH_HEALTH_HEALTHY);
        assert_int_equal(pick_end(&f, tried, 1, CPH_OUTCOME_SUCCESS), -1);
        tried[0] = 0x5;
        fx_done(&f);
    }
    fx_init(&f, CPH_LB_ROUND_ROBIN, NULL, 0, 17);
    assert_int_equal(pick_end(&f, NULL, 1, CPH_OUTCOME_SUCCESS), -1);
    fx_done(&f);
}

/* ---------------------------------------------------------------- breaker */

static void test_failures_open(void **state)
{
    (void)state;
    fixture_t f;
    uint64_t now = 1000 * MS, gen = cph_target_generation();

    fx_init(&f, CPH_LB_ROUND_ROBIN, NULL, 4, 18);
    f.svc.outlier_consecutive_failures = 3;
    /* a success in between resets the count; abandoned is no verdict either way */
    outcome_on(&f, 0, CPH_OUTCOME_5XX, now);
    outcome_on(&f, 0, CPH_OUTCOME_TIMEOUT, now);
    outcome_on(&f, 0, CPH_OUTCOME_SUCCESS, now);
    outcome_on(&f, 0, CPH_OUTCOME_RESET, now);
    outcome_on(&f, 0, CPH_OUTCOME_ABANDONED, now);
    outcome_on(&f, 0, CPH_OUTCOME_CONNECT_FAILURE, now);
    assert_int_equal(cph_balance_breaker_state(&f.states[0], now), CPH_BREAKER_CLOSED);
    assert_int_equal(cph_target_generation(), gen);
    outcome_on(&f, 0, CPH_OUTCOME_5XX, now);
    assert_int_equal(cph_balance_breaker_state(&f.states[0], now), CPH_BREAKER_OPEN);
    assert_true(cph_target_generation() > gen);
    assert_int_equal(atomic_load(&f.states[0].ejected_until_ns), now + 30000 * MS);
    assert_int_equal(atomic_load(&f.states[0].ejections), 1);
    assert_int_equal(atomic_load(&f.states[0].ejections_total), 1);
    for (int k = 0; k != 40; ++k)
        assert_int_not_equal(pick_end(&f, NULL, now + k * MS, CPH_OUTCOME_SUCCESS), 0);
    /* max_ejection_percent 50 of 4: a second target may go, not a third */
    for (int k = 0; k != 3; ++k)
        outcome_on(&f, 1, CPH_OUTCOME_5XX, now);
    assert_int_equal(cph_balance_breaker_state(&f.states[1], now), CPH_BREAKER_OPEN);
    for (int k = 0; k != 10; ++k)
        outcome_on(&f, 2, CPH_OUTCOME_5XX, now);
    assert_int_equal(cph_balance_breaker_state(&f.states[2], now), CPH_BREAKER_CLOSED);
    for (int k = 0; k != 40; ++k)
        assert_true(pick_end(&f, NULL, now, CPH_OUTCOME_SUCCESS) >= 2);
    /* detection off (consecutive_failures 0): nothing is ejected */
    f.svc.outlier_consecutive_failures = 0;
    for (int k = 0; k != 10; ++k)
        outcome_on(&f, 3, CPH_OUTCOME_5XX, now);
    assert_int_equal(cph_balance_breaker_state(&f.states[3], now), CPH_BREAKER_CLOSED);
    fx_done(&f);
}

static void test_half_open_probe(void **state)
{
    (void)state;
    fixture_t f;
    uint64_t t0 = 5000 * MS, t1 = t0 + 30000 * MS, t2, only0[1] = {0xe}; /* 1, 2, 3 tried: 0 alone */
    cph_pick_t probe, other;

    fx_init(&f, CPH_LB_ROUND_ROBIN, NULL, 4, 19);
    for (int k = 0; k != 5; ++k)
        outcome_on(&f, 0, CPH_OUTCOME_5XX, t0);
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, t1 - 1, &probe), -1);
    assert_int_equal(cph_balance_breaker_state(&f.states[0], t1), CPH_BREAKER_HALF_OPEN);
    /* exactly one probe at a time */
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, t1, &probe), 0);
    assert_int_equal(probe.target->index, 0);
    assert_true(probe.probe);
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, t1, &other), -1);
    for (int k = 0; k != 10; ++k)
        assert_int_not_equal(pick_end(&f, NULL, t1, CPH_OUTCOME_SUCCESS), 0);
    /* the probe fails: open again for twice the base */
    cph_balance_end(&f.svc, &probe, CPH_OUTCOME_CONNECT_FAILURE, t1);
    assert_int_equal(atomic_load(&f.states[0].ejected_until_ns), t1 + 60000 * MS);
    assert_int_equal(cph_balance_breaker_state(&f.states[0], t1 + 60000 * MS - 1), CPH_BREAKER_OPEN);
    t2 = t1 + 60000 * MS;
    /* an abandoned probe gives no verdict: the next request probes */
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, t2, &probe), 0);
    assert_true(probe.probe);
    cph_balance_end(&f.svc, &probe, CPH_OUTCOME_ABANDONED, t2);
    assert_int_equal(cph_balance_breaker_state(&f.states[0], t2), CPH_BREAKER_HALF_OPEN);
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, t2, &probe), 0);
    assert_true(probe.probe);
    /* success closes */
    cph_balance_end(&f.svc, &probe, CPH_OUTCOME_SUCCESS, t2);
    assert_int_equal(cph_balance_breaker_state(&f.states[0], t2), CPH_BREAKER_CLOSED);
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, t2, &probe), 0);
    assert_false(probe.probe);
    cph_balance_end(&f.svc, &probe, CPH_OUTCOME_SUCCESS, t2);
    assert_int_equal(atomic_load(&f.states[0].active), 0);
    assert_int_equal(atomic_load(&f.states[0].ejections_total), 2);
    fx_done(&f);
}

static void test_ejection_cap_and_decay(void **state)
{
    (void)state;
    fixture_t f;
    uint64_t now = 100000 * MS, only0[1] = {0x2};
    cph_pick_t probe;

    fx_init(&f, CPH_LB_ROUND_ROBIN, NULL, 2, 20);
    f.svc.outlier_consecutive_failures = 1;
    f.svc.outlier_base_ejection_ms = 10000;
    f.svc.outlier_max_ejection_ms = 25000;
    outcome_on(&f, 0, CPH_OUTCOME_5XX, now);
    uint64_t expect[] = {10000, 20000, 25000, 25000};
    assert_int_equal(atomic_load(&f.states[0].ejected_until_ns), now + expect[0] * MS);
    for (int k = 1; k != 4; ++k) {
        now = atomic_load(&f.states[0].ejected_until_ns);
        assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, now, &probe), 0);
        cph_balance_end(&f.svc, &probe, CPH_OUTCOME_5XX, now);
        assert_int_equal(atomic_load(&f.states[0].ejected_until_ns), now + expect[k] * MS);
    }
    assert_int_equal(atomic_load(&f.states[0].ejections), 4);
    now = atomic_load(&f.states[0].ejected_until_ns);
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, now, &probe), 0);
    cph_balance_end(&f.svc, &probe, CPH_OUTCOME_SUCCESS, now);
    /* clean for a little over two base periods: the multiplier falls from 4 to 2, the next ejection is 3 x base */
    now += 22000 * MS;
    outcome_on(&f, 0, CPH_OUTCOME_5XX, now);
    assert_int_equal(atomic_load(&f.states[0].ejections), 3);
    assert_int_equal(atomic_load(&f.states[0].ejected_until_ns), now + 25000 * MS);
    now += 25000 * MS;
    assert_int_equal(cph_balance_pick(f.bw, &f.svc, 0, only0, now, &probe), 0);
    cph_balance_end(&f.svc, &probe, CPH_OUTCOME_SUCCESS, now);
    /* clean for long: back to one base period */
    now += 3600000 * MS;
    outcome_on(&f, 0, CPH_OUTCOME_5XX, now);
    assert_int_equal(atomic_load(&f.states[0].ejected_until_ns), now + 10000 * MS);
    fx_done(&f);
}

static void test_all_out_is_503(void **state)
{
    (void)state;
    fixture_t f;
    uint64_t now = 1 * MS;

    fx_init(&f, CPH_LB_LEAST_CONN, NULL, 2, 21);
    f.svc.outlier_consecutive_failures = 1;
    f.svc.outlier_max_ejection_percent = 100;
    outcome_on(&f, 0, CPH_OUTCOME_5XX, now);
    outcome_on(&f, 1, CPH_OUTCOME_TIMEOUT, now);
    assert_int_equal(pick_end(&f, NULL, now, CPH_OUTCOME_SUCCESS), -1);
    fx_done(&f);
}

/* ---------------------------------------------------------------- limits */

static void test_admission_and_budget(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, CPH_LB_ROUND_ROBIN, NULL, 1, 22);
    f.svc.max_requests = 2;
    f.svc.max_pending = 1;
    assert_int_equal(cph_balance_admit(&f.svc), 0);
    assert_int_equal(cph_balance_admit(&f.svc), 0);
    assert_int_equal(cph_balance_admit(&f.svc), -1);
    assert_int_equal(atomic_load(&f.sstate.active_requests), 2);
    cph_balance_release(&f.svc);
    assert_int_equal(cph_balance_admit(&f.svc), 0);
    assert_int_equal(cph_balance_connect_begin(&f.svc), 0);
    assert_int_equal(cph_balance_connect_begin(&f.svc), -1);
    cph_balance_connect_end(&f.svc);
    assert_int_equal(cph_balance_connect_begin(&f.svc), 0);
    cph_balance_connect_end(&f.svc);
    assert_int_equal(atomic_load(&f.sstate.pending_connects), 0);
    /* 2 in flight: 20% is 0, min_concurrent 3 rules */
    for (int k = 0; k != 3; ++k)
        assert_int_equal(cph_balance_retry_begin(&f.svc, 20, 3), 0);
    assert_int_equal(cph_balance_retry_begin(&f.svc, 20, 3), -1);
    cph_balance_retry_end(&f.svc);
    assert_int_equal(cph_balance_retry_begin(&f.svc, 20, 3), 0);
    for (int k = 0; k != 3; ++k)
        cph_balance_retry_end(&f.svc);
    assert_int_equal(cph_balance_retry_begin(&f.svc, 0, 0), -1);
    /* 100 in flight: 20% = 20 */
    atomic_store(&f.sstate.active_requests, 100);
    for (int k = 0; k != 20; ++k)
        assert_int_equal(cph_balance_retry_begin(&f.svc, 20, 3), 0);
    assert_int_equal(cph_balance_retry_begin(&f.svc, 20, 3), -1);
    assert_int_equal(atomic_load(&f.sstate.active_retries), 20);
    fx_done(&f);
}

/* ---------------------------------------------------------------- threads */

typedef struct st_hammer_t {
    fixture_t *f;
    cph_balance_worker_t *bw;
    int picked;
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *h = arg;
    static const cph_outcome_t outcomes[] = {CPH_OUTCOME_SUCCESS, CPH_OUTCOME_SUCCESS, CPH_OUTCOME_5XX, CPH_OUTCOME_SUCCESS,
                                             CPH_OUTCOME_ABANDONED};

    for (uint64_t k = 0; k != 50000; ++k) {
        cph_pick_t p[2];
        int n = 0;
        if (cph_balance_admit(&h->f->svc) != 0)
            continue;
        for (; n != 2 && cph_balance_pick(h->bw, &h->f->svc, k, NULL, k * MS, &p[n]) == 0; ++n)
            ++h->picked;
        while (n-- > 0)
            cph_balance_end(&h->f->svc, &p[n], outcomes[k % 5], k * MS);
        cph_balance_release(&h->f->svc);
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    static const cph_lb_policy_t policies[] = {CPH_LB_LEAST_CONN, CPH_LB_RANDOM, CPH_LB_ROUND_ROBIN};
    fixture_t f;

    for (size_t p = 0; p != 3; ++p) {
        pthread_t th[2];
        hammer_t h[2];
        fx_init(&f, policies[p], NULL, 4, 23);
        f.svc.outlier_base_ejection_ms = 1;
        f.svc.outlier_max_ejection_ms = 3;
        for (int i = 0; i != 2; ++i) {
            h[i] = (hammer_t){&f, cph_balance_worker_new(), 0};
            assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
        }
        for (int i = 0; i != 2; ++i) {
            pthread_join(th[i], NULL);
            cph_balance_worker_free(h[i].bw);
            assert_true(h[i].picked > 50000);
        }
        for (int i = 0; i != 4; ++i)
            assert_int_equal(atomic_load(&f.states[i].active), 0);
        assert_int_equal(atomic_load(&f.sstate.active_requests), 0);
        fx_done(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swrr_sequence),
        cmocka_unit_test(test_swrr_equal_and_reset),
        cmocka_unit_test(test_least_conn),
        cmocka_unit_test(test_p2c_avoids_busy),
        cmocka_unit_test(test_p2c_distribution),
        cmocka_unit_test(test_tried_and_unhealthy),
        cmocka_unit_test(test_failures_open),
        cmocka_unit_test(test_half_open_probe),
        cmocka_unit_test(test_ejection_cap_and_decay),
        cmocka_unit_test(test_all_out_is_503),
        cmocka_unit_test(test_admission_and_budget),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
