/*
 * observe_test: the per-request metrics of core/observe.c: method classes, the latency buckets (edges included),
 * a request counted by route x method x status class with its duration, bytes and upstream time, the exposition's
 * histograms (cumulative buckets, +Inf = _count, _sum) and label escaping, the connection and target gauges, and the
 * snapshot timings; a request without stats counts nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <cmocka.h>
#include "dataplane/core/observe.h"
#include "dataplane/core/target.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t bucket_sum(const cph_latency_hist_t *h)
{
    uint64_t n = 0;

    for (size_t b = 0; b != CPH_STATS_LATENCY_BUCKETS; b++)
        n += cph_counter_read((cph_counter_t *)&h->buckets[b]);
    return n;
}

static void test_method_classes(void **state)
{
    (void)state;
    assert_int_equal(cph_observe_method_class("GET", 3), CPH_METHOD_CLASS_GET);
    assert_int_equal(cph_observe_method_class("PUT", 3), CPH_METHOD_CLASS_PUT);
    assert_int_equal(cph_observe_method_class("HEAD", 4), CPH_METHOD_CLASS_HEAD);
    assert_int_equal(cph_observe_method_class("POST", 4), CPH_METHOD_CLASS_POST);
    assert_int_equal(cph_observe_method_class("PATCH", 5), CPH_METHOD_CLASS_PATCH);
    assert_int_equal(cph_observe_method_class("DELETE", 6), CPH_METHOD_CLASS_DELETE);
    assert_int_equal(cph_observe_method_class("OPTIONS", 7), CPH_METHOD_CLASS_OPTIONS);
    assert_int_equal(cph_observe_method_class("get", 3), CPH_METHOD_CLASS_OTHER); /* methods are case-sensitive */
    assert_int_equal(cph_observe_method_class("GETX", 4), CPH_METHOD_CLASS_OTHER);
    assert_int_equal(cph_observe_method_class("PROPFIND", 8), CPH_METHOD_CLASS_OTHER);
    assert_int_equal(cph_observe_method_class("", 0), CPH_METHOD_CLASS_OTHER);
    assert_string_equal(cph_observe_method_name(CPH_METHOD_CLASS_PATCH), "PATCH");
    assert_string_equal(cph_observe_method_name(CPH_METHOD_CLASS_OTHER), "other");
}

static void test_latency_buckets(void **state)
{
    (void)state;
    cph_latency_hist_t *h = calloc(1, sizeof(*h));

    assert_non_null(h);
    cph_observe_latency(h, 0);        /* le 0.001 */
    cph_observe_latency(h, 1000);     /* exactly 1 ms: still le 0.001 */
    cph_observe_latency(h, 1001);     /* le 0.0025 */
    cph_observe_latency(h, 30000000); /* exactly 30 s: the last finite bucket */
    cph_observe_latency(h, 30000001); /* +Inf */
    assert_int_equal(cph_counter_read(&h->buckets[0]), 2);
    assert_int_equal(cph_counter_read(&h->buckets[1]), 1);
    assert_int_equal(cph_counter_read(&h->buckets[CPH_STATS_LATENCY_BUCKETS - 2]), 1);
    assert_int_equal(cph_counter_read(&h->buckets[CPH_STATS_LATENCY_BUCKETS - 1]), 1);
    assert_int_equal(cph_counter_read(&h->sum_us), 0 + 1000 + 1001 + 30000000 + 30000001);
    free(h);
}

typedef struct st_fixture_t {
    cph_worker_t worker;
    cph_service_t service;
    cph_route_t route;
    h2o_req_t req;
    cph_req_t r;
} fixture_t;

/* A request of `method` on route "obs-route" (service "obs-svc") answered `status`, begun `ago_us` before now. */
static void make_request(fixture_t *f, const char *method, int status, uint64_t ago_us)
{
    struct timeval tv;

    memset(&f->req, 0, sizeof(f->req));
    memset(&f->r, 0, sizeof(f->r));
    f->service.name = "obs-svc";
    f->service.metric_id = cph_stats_service_id("obs-svc");
    f->route.name = "obs-route";
    f->route.metric_id = cph_stats_route_id("obs-route");
    f->route.service = &f->service;
    f->req.method = h2o_iovec_init(method, strlen(method));
    f->req.res.status = status;
    gettimeofday(&tv, NULL);
    uint64_t begin = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec - ago_us;
    f->req.timestamps.request_begin_at.tv_sec = (time_t)(begin / 1000000);
    f->req.timestamps.request_begin_at.tv_usec = (suseconds_t)(begin % 1000000);
    f->r = (cph_req_t){.req = &f->req, .worker = &f->worker, .route = &f->route};
}

static void test_request_counted(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_non_null(f->worker.stats = calloc(1, sizeof(*f->worker.stats)));
    cph_worker_stats_t *st = f->worker.stats;

    make_request(f, "POST", 201, 30000); /* 30 ms ago: the 0.05 bucket (25 < 30 <= 50 ms) */
    f->req.entity = h2o_iovec_init("hello", 5);
    f->req.bytes_sent = 1234;
    f->r.upstream_ns = 7000000; /* 7 ms: the 0.01 bucket */
    cph_observe_request_done(&f->r, mono_ns());
    uint32_t route = f->route.metric_id, svc = f->service.metric_id;
    assert_int_equal(cph_counter_read(&st->requests[route][CPH_METHOD_CLASS_POST][2]), 1);
    assert_int_equal(cph_counter_read(&st->requests[route][CPH_METHOD_CLASS_GET][2]), 0);
    assert_int_equal(cph_counter_read(&st->request_seconds[route].buckets[5]), 1); /* le 0.05 */
    uint64_t sum_us = cph_counter_read(&st->request_seconds[route].sum_us);
    assert_true(sum_us >= 30000 && sum_us < 50000);
    assert_int_equal(cph_counter_read(&st->request_bytes[route]), 5);
    assert_int_equal(cph_counter_read(&st->response_bytes[route]), 1234);
    assert_int_equal(cph_counter_read(&st->upstream_seconds[svc].buckets[3]), 1); /* le 0.01 */
    assert_int_equal(cph_counter_read(&st->upstream_seconds[svc].sum_us), 7000);

    /* no upstream contacted: no upstream observation; an unknown method and a status outside 100..599 */
    make_request(f, "BREW", 0, 0);
    cph_observe_request_done(&f->r, mono_ns());
    assert_int_equal(cph_counter_read(&st->requests[route][CPH_METHOD_CLASS_OTHER][0]), 1);
    assert_int_equal(bucket_sum(&st->upstream_seconds[svc]), 1);
    assert_int_equal(bucket_sum(&st->request_seconds[route]), 2);
    /* no route: slot 0 */
    make_request(f, "GET", 404, 0);
    f->r.route = NULL;
    cph_observe_request_done(&f->r, mono_ns());
    assert_int_equal(cph_counter_read(&st->requests[0][CPH_METHOD_CLASS_GET][4]), 1);
    /* an unknown begin (or no clock read): counted, but not observed in the duration histogram */
    make_request(f, "GET", 200, 0);
    f->req.timestamps.request_begin_at.tv_sec = 0;
    cph_observe_request_done(&f->r, mono_ns());
    cph_observe_request_done(&f->r, 0);
    assert_int_equal(cph_counter_read(&st->requests[route][CPH_METHOD_CLASS_GET][2]), 2);
    assert_int_equal(bucket_sum(&st->request_seconds[route]), 2);
    /* a worker without stats: nothing, no crash */
    f->worker.stats = NULL;
    cph_observe_request_done(&f->r, mono_ns());
    free(st);
    free(f);
}

static void test_exposition(void **state)
{
    (void)state;
    cph_worker_stats_t *w[2] = {calloc(1, sizeof(cph_worker_stats_t)), calloc(1, sizeof(cph_worker_stats_t))};
    uint32_t odd = cph_stats_route_id("obs\"we\\ird\nname"), svc = cph_stats_service_id("obs-up");
    cph_text_t t;

    assert_non_null(w[0]);
    assert_non_null(w[1]);
    cph_counter_add(&w[0]->requests[odd][CPH_METHOD_CLASS_DELETE][5], 2);
    cph_counter_add(&w[1]->requests[odd][CPH_METHOD_CLASS_DELETE][5], 3);
    cph_observe_latency(&w[0]->request_seconds[odd], 500);       /* le 0.001 */
    cph_observe_latency(&w[1]->request_seconds[odd], 2000);      /* le 0.0025 */
    cph_observe_latency(&w[1]->request_seconds[odd], 9000000);   /* le 10 */
    cph_observe_latency(&w[0]->upstream_seconds[svc], 40000000); /* +Inf */
    cph_counter_add(&w[1]->response_bytes[odd], 77);
    cph_counter_add(&w[0]->connections_open[CPH_CONN_HTTP2], 2);
    cph_counter_add(&w[1]->connections_open[CPH_CONN_HTTP2], (uint64_t)-1); /* a gauge summed modulo 2^64 */
    cph_text_init(&t, 64);
    cph_observe_render(&t, w, 2);
    const char *lbl = "route=\"obs\\\"we\\\\ird\\nname\"";
    char want[256];
    snprintf(want, sizeof(want), "cephalo_dp_requests_total{%s,method=\"DELETE\",status_class=\"5xx\"} 5\n", lbl);
    assert_non_null(strstr(t.buf, want));
    snprintf(want, sizeof(want), "cephalo_dp_request_duration_seconds_bucket{%s,le=\"0.001\"} 1\n", lbl);
    assert_non_null(strstr(t.buf, want));
    snprintf(want, sizeof(want), "cephalo_dp_request_duration_seconds_bucket{%s,le=\"0.0025\"} 2\n", lbl);
    assert_non_null(strstr(t.buf, want));
    snprintf(want, sizeof(want), "cephalo_dp_request_duration_seconds_bucket{%s,le=\"5\"} 2\n", lbl);
    assert_non_null(strstr(t.buf, want));
    snprintf(want, sizeof(want), "cephalo_dp_request_duration_seconds_bucket{%s,le=\"+Inf\"} 3\n", lbl);
    assert_non_null(strstr(t.buf, want));
    snprintf(want, sizeof(want), "cephalo_dp_request_duration_seconds_count{%s} 3\n", lbl);
    assert_non_null(strstr(t.buf, want));
    snprintf(want, sizeof(want), "cephalo_dp_request_duration_seconds_sum{%s} 9.002500\n", lbl);
    assert_non_null(strstr(t.buf, want));
    assert_non_null(strstr(t.buf, "cephalo_dp_upstream_duration_seconds_bucket{service=\"obs-up\",le=\"30\"} 0\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_upstream_duration_seconds_bucket{service=\"obs-up\",le=\"+Inf\"} 1\n"));
    snprintf(want, sizeof(want), "cephalo_dp_response_bytes_total{%s} 77\n", lbl);
    assert_non_null(strstr(t.buf, want));
    assert_null(strstr(t.buf, "cephalo_dp_request_bytes_total{"));
    assert_non_null(strstr(t.buf, "# TYPE cephalo_dp_request_duration_seconds histogram\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_connections_active{protocol=\"http2\"} 1\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_connections_active{protocol=\"pending\"} 0\n"));
    free(t.buf);
    free(w[0]);
    free(w[1]);
}

static void test_targets_and_snapshot(void **state)
{
    (void)state;
    cph_target_t targets[3] = {{.authority = h2o_iovec_init(H2O_STRLIT("a.example:80"))},
                               {.authority = h2o_iovec_init(H2O_STRLIT("b.example:81"))}};
    cph_health_check_t check;
    cph_service_t svc = {.name = "obs-targets", .targets = targets, .num_targets = 3, .health_check = &check};
    cph_snapshot_t snap;
    cph_text_t t;

    memset(&snap, 0, sizeof(snap));
    snap.services = &svc;
    snap.num_services = 1;
    targets[0].state = cph_target_state_get("obs-targets", "a.example:80");
    targets[1].state = cph_target_state_get("obs-targets", "b.example:81");
    targets[2] = targets[0]; /* listed twice: one series */
    atomic_store(&targets[1].state->health, CPH_HEALTH_UNHEALTHY);
    atomic_store(&targets[0].state->ejected_until_ns, UINT64_MAX); /* open */
    cph_observe_snapshot_applied(1500000, 2500000000ull);
    cph_text_init(&t, 64);
    cph_observe_render_targets(&t, &snap);
    cph_observe_render_snapshot(&t);
    assert_non_null(strstr(t.buf, "cephalo_dp_upstream_target_ejected{service=\"obs-targets\",target=\"a.example:80\"} 1\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_upstream_target_ejected{service=\"obs-targets\",target=\"b.example:81\"} 0\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_upstream_target_healthy{service=\"obs-targets\",target=\"a.example:80\"} 1\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_upstream_target_healthy{service=\"obs-targets\",target=\"b.example:81\"} 0\n"));
    const char *first = strstr(t.buf, "target=\"a.example:80\"} 1\n");
    assert_null(strstr(first + 1, "cephalo_dp_upstream_target_ejected{service=\"obs-targets\",target=\"a.example:80\"}"));
    assert_non_null(strstr(t.buf, "cephalo_dp_snapshot_build_seconds 0.001500\n"));
    assert_non_null(strstr(t.buf, "cephalo_dp_snapshot_apply_seconds 2.500000\n"));
    free(t.buf);
    /* no snapshot: the families, no sample */
    cph_text_init(&t, 64);
    cph_observe_render_targets(&t, NULL);
    assert_non_null(strstr(t.buf, "# TYPE cephalo_dp_upstream_target_healthy gauge\n"));
    assert_null(strstr(t.buf, "cephalo_dp_upstream_target_healthy{"));
    free(t.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_classes), cmocka_unit_test(test_latency_buckets),      cmocka_unit_test(test_request_counted),
        cmocka_unit_test(test_exposition),     cmocka_unit_test(test_targets_and_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
