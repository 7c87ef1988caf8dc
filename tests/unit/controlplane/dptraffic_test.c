/*
 * dptraffic_test: controlplane/dptraffic.c - rates from the cumulative counters of successive pings (over at least a
 * second, the base moving once the window has passed), a data plane restart (counters going backwards) starting
 * anew, and hostile "traffic" members (not an object, negatives, reals, strings, a class above the total) ignored
 * without touching what was there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include "controlplane/dptraffic.h"

static int ping(cph_dptraffic_t *t, const char *json, uint64_t at)
{
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    int rc;

    assert_non_null(v);
    rc = cph_dptraffic_on_ping(t, v, at);
    json_decref(v);
    return rc;
}

static void test_rates(void **state)
{
    cph_dptraffic_t t = {0};
    json_t *j;
    (void)state;

    j = cph_dptraffic_json(&t);
    assert_true(json_is_null(j)); /* nothing heard yet */
    json_decref(j);
    assert_int_equal(cph_dptraffic_on_ping(&t, NULL, 1000), 0); /* an older data plane: no member, no change */
    assert_int_equal(t.count, 0);
    assert_int_equal(ping(&t, "{\"requests\":100,\"4xx\":10,\"5xx\":2}", 1000), 0);
    assert_true(t.requests_per_s == 0.0); /* one sample: no rate */
    assert_int_equal(ping(&t, "{\"requests\":150,\"4xx\":10,\"5xx\":2}", 1500), 0);
    assert_true(t.requests_per_s == 0.0); /* under a second apart: still none */
    assert_int_equal(ping(&t, "{\"requests\":300,\"4xx\":30,\"5xx\":12}", 3000), 0);
    assert_true(t.requests_per_s == 100.0 && t.c4xx_per_s == 10.0 && t.c5xx_per_s == 5.0); /* from the oldest sample */
    /* a ping a second, idle from now on: the burst stays in the rate until its samples leave the 10 s window */
    for (uint64_t at = 4000; at <= 11000; at += 1000) {
        assert_int_equal(ping(&t, "{\"requests\":300,\"4xx\":30,\"5xx\":12}", at), 0);
        assert_true(t.requests_per_s > 0.0);
    }
    assert_int_equal(ping(&t, "{\"requests\":300,\"4xx\":30,\"5xx\":12}", 12000), 0);
    assert_true(t.requests_per_s == 0.0); /* every sample in the window saw 300 */
    j = cph_dptraffic_json(&t);
    assert_int_equal(json_integer_value(json_object_get(j, "requests_total")), 300);
    assert_int_equal(json_integer_value(json_object_get(j, "5xx_total")), 12);
    assert_true(json_is_real(json_object_get(j, "requests_per_s")));
    json_decref(j);
    /* a steady 50/s over more pings than the ring holds */
    uint64_t req = 300;
    for (uint64_t at = 14500; at <= 54500; at += 1000) {
        char buf[96];
        req += 50;
        snprintf(buf, sizeof(buf), "{\"requests\":%llu,\"4xx\":30,\"5xx\":12}", (unsigned long long)req);
        assert_int_equal(ping(&t, buf, at), 0);
    }
    assert_true(t.requests_per_s == 50.0);
    /* a restart: counters go backwards, the rates start anew from it */
    assert_int_equal(ping(&t, "{\"requests\":5,\"4xx\":0,\"5xx\":0}", 55000), 0);
    assert_int_equal(t.count, 1);
    assert_true(t.requests_per_s == 0.0);
}

static void test_hostile(void **state)
{
    static const char *const BAD[] = {
        "[]",
        "1",
        "\"x\"",
        "null",
        "{}",
        "{\"requests\":1,\"4xx\":0}",
        "{\"requests\":-1,\"4xx\":0,\"5xx\":0}",
        "{\"requests\":1.5,\"4xx\":0,\"5xx\":0}",
        "{\"requests\":\"9\",\"4xx\":0,\"5xx\":0}",
        "{\"requests\":10,\"4xx\":11,\"5xx\":0}",
        "{\"requests\":10,\"4xx\":0,\"5xx\":11}",
        "{\"requests\":true,\"4xx\":0,\"5xx\":0}",
    };
    cph_dptraffic_t t = {0};
    (void)state;

    assert_int_equal(ping(&t, "{\"requests\":50,\"4xx\":1,\"5xx\":1}", 1000), 0);
    for (size_t i = 0; i != sizeof(BAD) / sizeof(BAD[0]); ++i) {
        assert_int_equal(ping(&t, BAD[i], 2000 + i), -1);
        assert_int_equal(t.count, 1); /* untouched */
        assert_int_equal(t.samples[0].requests, 50);
    }
    /* a huge but valid count is kept as is */
    assert_int_equal(ping(&t, "{\"requests\":9223372036854775807,\"4xx\":1,\"5xx\":1}", 5000), 0);
    assert_true(t.requests_per_s > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
