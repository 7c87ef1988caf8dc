/*
 * status_test: stable stats ids by name and the /metrics exposition: per-worker counters summed, only non-zero
 * samples, label values escaped, every documented metric name present, gauges following the control state; endpoint
 * stat ids by rule id, the shadow counters summed per rule for the ping, and the authz / authn metrics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/control.h"
#include "dataplane/core/status.h"
#include "dataplane/core/text.h"
#include "metrics_fixture.h"

/* The exposition's text builder (core/text.c): starts empty, grows past its capacity, stays NUL-terminated. */
static void test_text_builder_grows(void **state)
{
    cph_text_t t;
    char expect[8192];
    size_t n = 0;

    (void)state;
    cph_text_init(&t, 1);
    assert_string_equal(t.buf, "");
    for (int i = 0; i != 500; ++i) {
        cph_text_printf(&t, "line %d %s\n", i, i % 2 ? "odd" : "even");
        n += (size_t)snprintf(expect + n, sizeof(expect) - n, "line %d %s\n", i, i % 2 ? "odd" : "even");
    }
    assert_int_equal(t.len, n);
    assert_true(t.cap > t.len);
    assert_string_equal(t.buf, expect);
    cph_text_printf(&t, "%s", "");
    assert_int_equal(t.len, n);
    free(t.buf);
}

static void test_ids_are_stable_by_name(void **state)
{
    (void)state;
    uint32_t a = cph_stats_route_id("ids-a"), b = cph_stats_route_id("ids-b");

    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(cph_stats_route_id("ids-a"), a);
    assert_string_equal(cph_stats_route_name(a), "ids-a");
    assert_null(cph_stats_route_name(0));
    assert_null(cph_stats_route_name(cph_stats_num_routes() + 1));
    assert_true(cph_stats_num_routes() >= 2);
    /* services have their own id space */
    uint32_t s = cph_stats_service_id("ids-a");
    assert_int_not_equal(s, 0);
    assert_string_equal(cph_stats_service_name(s), "ids-a");
}

static void test_metrics_sum_workers_and_escape(void **state)
{
    (void)state;
    cph_control_t c;
    cph_server_t srv;
    char dir[] = "/tmp/cph-status-XXXXXX";

    metrics_fixture_init(&c, &srv, dir);

    uint32_t demo = cph_stats_route_id("demo"), odd = cph_stats_route_id("we\"ird\\name");
    uint32_t svc = cph_stats_service_id("backend");
    cph_counter_add(&srv.workers[0].stats->requests[demo][CPH_METHOD_CLASS_GET][2], 3);
    cph_counter_add(&srv.workers[1].stats->requests[demo][CPH_METHOD_CLASS_GET][2], 4);
    cph_counter_add(&srv.workers[1].stats->requests[odd][CPH_METHOD_CLASS_POST][5], 1);
    cph_counter_add(&srv.workers[0].stats->requests[0][CPH_METHOD_CLASS_OTHER][4], 2);
    cph_counter_add(&srv.workers[0].stats->connections_open[CPH_CONN_HTTP1], 3);
    cph_counter_add(&srv.workers[0].stats->upstream_errors[svc][CPH_UPSTREAM_ERR_CONNECT], 5);
    c.applies = 2;
    c.nacks = 1;
    c.cp_connected = 1;

    char *text = cph_status_metrics(&c);
    assert_non_null(strstr(text, "cephalo_dp_requests_total{route=\"demo\",method=\"GET\",status_class=\"2xx\"} 7\n"));
    assert_null(strstr(text, "route=\"demo\",method=\"GET\",status_class=\"5xx\""));
    assert_non_null(
        strstr(text, "cephalo_dp_requests_total{route=\"we\\\"ird\\\\name\",method=\"POST\",status_class=\"5xx\"} 1\n"));
    assert_non_null(strstr(text, "cephalo_dp_requests_total{route=\"\",method=\"other\",status_class=\"4xx\"} 2\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_connections_active{protocol=\"http1\"} 3\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_apply_seconds "));
    assert_non_null(strstr(text, "# TYPE cephalo_dp_upstream_target_ejected gauge\n"));
    assert_non_null(strstr(text, "cephalo_dp_upstream_errors_total{service=\"backend\",kind=\"connect\"} 5\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_version 0\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_applies_total 2\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_nacks_total 1\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_config_loaded 0\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_cp_connected 1\n"));
    free(text);

    metrics_fixture_dispose(&c, &srv, dir);
}

static void test_endpoint_ids(void **state)
{
    (void)state;
    uint32_t a = cph_stats_endpoint_id(7), b = cph_stats_endpoint_id(123456789012LL);

    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(cph_stats_endpoint_id(7), a);
    assert_int_equal(cph_stats_endpoint_key(a), 7);
    assert_int_equal(cph_stats_endpoint_key(b), 123456789012LL);
    assert_int_equal(cph_stats_endpoint_key(0), 0);
    assert_int_equal(cph_stats_endpoint_id(0), 0);
    assert_int_equal(cph_stats_endpoint_id(-3), 0);
    assert_int_equal(cph_stats_authn_reason("expired"), CPH_AUTHN_REASON_EXPIRED);
    assert_int_equal(cph_stats_authn_reason("what"), CPH_AUTHN_REASON_OTHER);
    assert_int_equal(cph_stats_authn_reason(NULL), CPH_AUTHN_REASON_OTHER);
    assert_string_equal(cph_stats_authn_reason_name(CPH_AUTHN_REASON_BAD_SIGNATURE), "bad_signature");
}

typedef struct st_shadow_sum_t {
    int calls;
    int64_t id[4];
    uint64_t allow[4], deny[4];
} shadow_sum_t;

static void on_shadow(void *ud, int64_t endpoint_id, uint64_t allow, uint64_t deny)
{
    shadow_sum_t *s = ud;

    assert_true(s->calls < 4);
    s->id[s->calls] = endpoint_id;
    s->allow[s->calls] = allow;
    s->deny[s->calls++] = deny;
}

static void test_authz_metrics(void **state)
{
    (void)state;
    cph_control_t c;
    cph_server_t srv;
    char dir[] = "/tmp/cph-status-XXXXXX";

    metrics_fixture_init(&c, &srv, dir);

    uint32_t e41 = cph_stats_endpoint_id(41), e42 = cph_stats_endpoint_id(42), e43 = cph_stats_endpoint_id(43);
    cph_counter_add(&srv.workers[0].stats->authz_shadow[e41][CPH_STATS_SHADOW_ALLOW], 2);
    cph_counter_add(&srv.workers[1].stats->authz_shadow[e41][CPH_STATS_SHADOW_ALLOW], 3);
    cph_counter_add(&srv.workers[1].stats->authz_shadow[e42][CPH_STATS_SHADOW_DENY], 4);
    (void)e43;                                                                         /* no count: left out */
    cph_counter_add(&srv.workers[0].stats->authz_shadow[0][CPH_STATS_SHADOW_DENY], 9); /* overflow slot: never reported */
    cph_counter_add(&srv.workers[0].stats->authz_decisions[0], 5);
    cph_counter_add(&srv.workers[1].stats->authz_decisions[2], 1);
    cph_counter_add(&srv.workers[1].stats->authn_failures[CPH_AUTHN_REASON_EXPIRED], 6);

    cph_worker_stats_t *stats[2] = {srv.workers[0].stats, srv.workers[1].stats};
    shadow_sum_t sum = {0};
    cph_stats_shadow_foreach(stats, 2, on_shadow, &sum);
    int found = 0;
    for (int i = 0; i != sum.calls; ++i) {
        if (sum.id[i] == 41)
            found++, assert_int_equal(sum.allow[i], 5), assert_int_equal(sum.deny[i], 0);
        else if (sum.id[i] == 42)
            found++, assert_int_equal(sum.allow[i], 0), assert_int_equal(sum.deny[i], 4);
        else
            fail_msg("endpoint %lld reported", (long long)sum.id[i]);
    }
    assert_int_equal(found, 2);

    char *text = cph_status_metrics(&c);
    assert_non_null(strstr(text, "cephalo_authz_decisions_total{outcome=\"allow\"} 5\n"));
    assert_non_null(strstr(text, "cephalo_authz_decisions_total{outcome=\"unauthenticated\"} 0\n"));
    assert_non_null(strstr(text, "cephalo_authz_decisions_total{outcome=\"forbidden\"} 1\n"));
    assert_non_null(strstr(text, "cephalo_authz_shadow_total{endpoint=\"41\",outcome=\"would_allow\"} 5\n"));
    assert_null(strstr(text, "endpoint=\"41\",outcome=\"would_deny\""));
    assert_non_null(strstr(text, "cephalo_authz_shadow_total{endpoint=\"42\",outcome=\"would_deny\"} 4\n"));
    assert_null(strstr(text, "endpoint=\"43\""));
    assert_null(strstr(text, "endpoint=\"0\""));
    assert_non_null(strstr(text, "cephalo_authn_failures_total{reason=\"expired\"} 6\n"));
    assert_null(strstr(text, "reason=\"revoked\""));
    assert_non_null(strstr(text, "# TYPE cephalo_authz_shadow_total counter\n"));
    free(text);

    metrics_fixture_dispose(&c, &srv, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_builder_grows),
        cmocka_unit_test(test_ids_are_stable_by_name),
        cmocka_unit_test(test_metrics_sum_workers_and_escape),
        cmocka_unit_test(test_endpoint_ids),
        cmocka_unit_test(test_authz_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
