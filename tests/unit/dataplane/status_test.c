/*
 * status_test: stable stats ids by name and the /metrics exposition: per-worker counters summed, only non-zero
 * samples, label values escaped, every documented metric name present, gauges following the control state.
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
    cph_server_config_t cfg = {.listen = "127.0.0.1:0", .num_workers = 2};
    cph_error_t err;
    char dir[] = "/tmp/cph-status-XXXXXX", cmd[128];

    assert_non_null(mkdtemp(dir));
    assert_int_equal(cph_control_init(&c, dir, &err), 0);
    assert_int_equal(cph_server_init(&srv, &cfg, &c.notify, &err), 0);
    cph_control_attach(&c, &srv);

    uint32_t demo = cph_stats_route_id("demo"), odd = cph_stats_route_id("we\"ird\\name");
    uint32_t svc = cph_stats_service_id("backend");
    cph_counter_add(&srv.workers[0].stats->responses[demo][2], 3);
    cph_counter_add(&srv.workers[1].stats->responses[demo][2], 4);
    cph_counter_add(&srv.workers[1].stats->responses[odd][5], 1);
    cph_counter_add(&srv.workers[0].stats->responses[0][4], 2);
    cph_counter_add(&srv.workers[0].stats->upstream_errors[svc][CPH_UPSTREAM_ERR_CONNECT], 5);
    c.applies = 2;
    c.nacks = 1;
    c.cp_connected = 1;

    char *text = cph_status_metrics(&c);
    assert_non_null(strstr(text, "cephalo_dp_requests_total{route=\"demo\",status_class=\"2xx\"} 7\n"));
    assert_null(strstr(text, "route=\"demo\",status_class=\"5xx\""));
    assert_non_null(strstr(text, "cephalo_dp_requests_total{route=\"we\\\"ird\\\\name\",status_class=\"5xx\"} 1\n"));
    assert_non_null(strstr(text, "cephalo_dp_requests_total{route=\"\",status_class=\"4xx\"} 2\n"));
    assert_non_null(strstr(text, "cephalo_dp_upstream_errors_total{service=\"backend\",kind=\"connect\"} 5\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_version 0\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_applies_total 2\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_snapshot_nacks_total 1\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_config_loaded 0\n"));
    assert_non_null(strstr(text, "\ncephalo_dp_cp_connected 1\n"));
    free(text);

    cph_server_dispose(&srv);
    cph_control_dispose(&c);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_stable_by_name),
        cmocka_unit_test(test_metrics_sum_workers_and_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
