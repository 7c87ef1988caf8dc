/*
 * observe: the data plane's per-request metrics (docs/dataplane.md "Metrics") and their Prometheus exposition.
 *
 * cph_observe_request_done runs in every request's dispose (core/pipeline.c) on the worker thread, so it only does
 * relaxed single-writer adds into the worker's own cph_worker_stats_t: requests by route x method class x status
 * class, two latency histograms (request by route, upstream by service) and the bytes in and out. No lock, no
 * allocation, no system call: the total duration runs from h2o's request_begin_at (the loop's cached wall clock) to
 * the caller's CLOCK_MONOTONIC now, bridged by a per-thread wall-minus-monotonic offset refreshed once a second (two
 * vDSO clock reads), so a wall-clock step skews at most one second's worth of requests. The scrape side sums the
 * workers with relaxed loads and writes the families, plus the per-target gauges read from the shared target
 * states (core/target.h) and the last snapshot apply's timings, which the control thread records here.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include "dataplane/core/balance.h"
#include "dataplane/core/observe.h"
#include "dataplane/core/target.h"

#define MODULE "dp/core/observe"

static const double latency_bounds[] = {CPH_STATS_LATENCY_BUCKET_BOUNDS};
static const uint64_t latency_bounds_us[] = {1000,   2500,   5000,    10000,   25000,   50000,    100000,
                                             250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000};
_Static_assert(sizeof(latency_bounds) / sizeof(latency_bounds[0]) == CPH_STATS_LATENCY_BUCKETS - 1, "bounds");
_Static_assert(sizeof(latency_bounds_us) / sizeof(latency_bounds_us[0]) == CPH_STATS_LATENCY_BUCKETS - 1, "bounds");

/* the last snapshot apply (control thread writes, the status listener on the same thread reads; atomics anyway) */
static _Atomic uint64_t snapshot_build_ns, snapshot_apply_ns;

/* ---------------------------------------------------------------- the request's end (worker thread) */

cph_method_class_t cph_observe_method_class(const char *m, size_t len)
{
    switch (len) {
    case 3:
        return memcmp(m, "GET", 3) == 0   ? CPH_METHOD_CLASS_GET
               : memcmp(m, "PUT", 3) == 0 ? CPH_METHOD_CLASS_PUT
                                          : CPH_METHOD_CLASS_OTHER;
    case 4:
        return memcmp(m, "HEAD", 4) == 0   ? CPH_METHOD_CLASS_HEAD
               : memcmp(m, "POST", 4) == 0 ? CPH_METHOD_CLASS_POST
                                           : CPH_METHOD_CLASS_OTHER;
    case 5:
        return memcmp(m, "PATCH", 5) == 0 ? CPH_METHOD_CLASS_PATCH : CPH_METHOD_CLASS_OTHER;
    case 6:
        return memcmp(m, "DELETE", 6) == 0 ? CPH_METHOD_CLASS_DELETE : CPH_METHOD_CLASS_OTHER;
    case 7:
        return memcmp(m, "OPTIONS", 7) == 0 ? CPH_METHOD_CLASS_OPTIONS : CPH_METHOD_CLASS_OTHER;
    default:
        return CPH_METHOD_CLASS_OTHER;
    }
}

const char *cph_observe_method_name(cph_method_class_t m)
{
    static const char *const names[CPH_METHOD_CLASSES] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"};

    return m >= 0 && m < CPH_METHOD_CLASSES ? names[m] : "other";
}

void cph_observe_latency(cph_latency_hist_t *h, uint64_t us)
{
    size_t b = 0;

    while (b != CPH_STATS_LATENCY_BUCKETS - 1 && us > latency_bounds_us[b])
        b++;
    cph_counter_add(&h->buckets[b], 1);
    cph_counter_add(&h->sum_us, us);
}

/* Wall clock minus CLOCK_MONOTONIC in ns for this thread, refreshed when more than a second old. */
static int64_t wall_offset_ns(uint64_t now_ns)
{
    static __thread int64_t offset;
    static __thread uint64_t taken_at;
    struct timespec rt, mt;

    if (taken_at != 0 && now_ns >= taken_at && now_ns - taken_at < 1000000000ull)
        return offset;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    offset = ((int64_t)rt.tv_sec - (int64_t)mt.tv_sec) * 1000000000ll + ((int64_t)rt.tv_nsec - (int64_t)mt.tv_nsec);
    taken_at = now_ns != 0 ? now_ns : 1;
    return offset;
}

/* Microseconds from the request's begin (h2o's wall-clock timeval) to now_ns (monotonic); UINT64_MAX when unknown. */
static uint64_t request_us(const h2o_req_t *req, uint64_t now_ns)
{
    const struct timeval *b = &req->timestamps.request_begin_at;

    if (b->tv_sec == 0 || now_ns == 0)
        return UINT64_MAX;
    int64_t begin_mono = (int64_t)b->tv_sec * 1000000000ll + (int64_t)b->tv_usec * 1000 - wall_offset_ns(now_ns);
    return (int64_t)now_ns > begin_mono ? (uint64_t)((int64_t)now_ns - begin_mono) / 1000 : 0;
}

void cph_observe_request_done(cph_req_t *r, uint64_t now_ns)
{
    cph_worker_stats_t *st = r->worker != NULL ? r->worker->stats : NULL;
    h2o_req_t *req = r->req;
    int status = req->res.status, cls = status >= 100 && status <= 599 ? status / 100 : 0;
    uint32_t route = r->route != NULL && r->route->metric_id < CPH_STATS_MAX_ROUTES ? r->route->metric_id : 0;

    if (st == NULL)
        return;
    cph_counter_add(&st->requests[route][cph_observe_method_class(req->method.base, req->method.len)][cls], 1);
    cph_counter_add(&st->requests_by_class[cls], 1);
    uint64_t us = request_us(req, now_ns);
    if (us != UINT64_MAX)
        cph_observe_latency(&st->request_seconds[route], us);
    if (req->entity.base != NULL && req->entity.len != 0)
        cph_counter_add(&st->request_bytes[route], req->entity.len);
    cph_counter_add(&st->response_bytes[route], req->bytes_sent);
    if (r->upstream_ns != 0 && r->route != NULL && r->route->service != NULL &&
        r->route->service->metric_id < CPH_STATS_MAX_SERVICES)
        cph_observe_latency(&st->upstream_seconds[r->route->service->metric_id], r->upstream_ns / 1000);
}

void cph_observe_snapshot_applied(uint64_t build_ns, uint64_t apply_ns)
{
    atomic_store_explicit(&snapshot_build_ns, build_ns, memory_order_relaxed);
    atomic_store_explicit(&snapshot_apply_ns, apply_ns, memory_order_relaxed);
}

/* ---------------------------------------------------------------- exposition (any thread) */

static uint64_t sum_at(cph_worker_stats_t *const *workers, size_t n, size_t offset)
{
    uint64_t sum = 0;

    for (size_t w = 0; w != n; w++)
        if (workers[w] != NULL)
            sum += cph_counter_read((cph_counter_t *)((char *)workers[w] + offset));
    return sum;
}

/* A label value: backslash, double quote and newline escaped, as the text format wants. */
static void add_label(cph_text_t *t, const char *s)
{
    size_t start = 0, i;

    for (i = 0; s[i] != '\0'; ++i) {
        if (s[i] != '\\' && s[i] != '"' && s[i] != '\n')
            continue;
        cph_text_printf(t, "%.*s%s", (int)(i - start), s + start, s[i] == '\n' ? "\\n" : s[i] == '"' ? "\\\"" : "\\\\");
        start = i + 1;
    }
    cph_text_printf(t, "%.*s", (int)(i - start), s + start);
}

static void family(cph_text_t *t, const char *name, const char *type, const char *help)
{
    cph_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *route_label(uint32_t id)
{
    return id == 0 ? "" : cph_stats_route_name(id);
}

static void render_requests(cph_text_t *t, cph_worker_stats_t *const *workers, size_t n)
{
    static const char *const classes[CPH_STATS_STATUS_CLASSES] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    uint32_t num = cph_stats_num_routes();

    family(t, "cephalo_dp_requests_total", "counter",
           "Requests answered, by route (\"\" = no route matched), method and status class.");
    for (uint32_t id = 0; id <= num && id < CPH_STATS_MAX_ROUTES; id++) {
        const char *name = route_label(id);
        for (int m = 0; m < CPH_METHOD_CLASSES && name != NULL; m++) {
            for (int cls = 0; cls < CPH_STATS_STATUS_CLASSES; cls++) {
                uint64_t sum = sum_at(workers, n, offsetof(cph_worker_stats_t, requests[id][m][cls]));
                if (sum == 0)
                    continue;
                cph_text_printf(t, "cephalo_dp_requests_total{route=\"");
                add_label(t, name);
                cph_text_printf(t, "\",method=\"%s\",status_class=\"%s\"} %llu\n", cph_observe_method_name((cph_method_class_t)m),
                                classes[cls], (unsigned long long)sum);
            }
        }
    }
}

/* One histogram's samples (label="value" selects it); nothing when it has no observation. */
static void render_histogram(cph_text_t *t, const char *name, const char *label, const char *value,
                             cph_worker_stats_t *const *workers, size_t n, size_t offset)
{
    uint64_t counts[CPH_STATS_LATENCY_BUCKETS], total = 0, cumulative = 0;

    for (size_t b = 0; b != CPH_STATS_LATENCY_BUCKETS; b++)
        total += counts[b] = sum_at(workers, n, offset + offsetof(cph_latency_hist_t, buckets[b]));
    if (total == 0)
        return;
    for (size_t b = 0; b != CPH_STATS_LATENCY_BUCKETS; b++) {
        cumulative += counts[b];
        cph_text_printf(t, "%s_bucket{%s=\"", name, label);
        add_label(t, value);
        if (b != CPH_STATS_LATENCY_BUCKETS - 1)
            cph_text_printf(t, "\",le=\"%g\"} %llu\n", latency_bounds[b], (unsigned long long)cumulative);
        else
            cph_text_printf(t, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    }
    cph_text_printf(t, "%s_sum{%s=\"", name, label);
    add_label(t, value);
    cph_text_printf(t, "\"} %.6f\n", (double)sum_at(workers, n, offset + offsetof(cph_latency_hist_t, sum_us)) / 1e6);
    cph_text_printf(t, "%s_count{%s=\"", name, label);
    add_label(t, value);
    cph_text_printf(t, "\"} %llu\n", (unsigned long long)total);
}

static void render_latency(cph_text_t *t, cph_worker_stats_t *const *workers, size_t n)
{
    uint32_t routes = cph_stats_num_routes(), services = cph_stats_num_services();

    family(t, "cephalo_dp_request_duration_seconds", "histogram",
           "Time from a request's first byte to its response's end, by route.");
    for (uint32_t id = 0; id <= routes && id < CPH_STATS_MAX_ROUTES; id++)
        if (route_label(id) != NULL)
            render_histogram(t, "cephalo_dp_request_duration_seconds", "route", route_label(id), workers, n,
                             offsetof(cph_worker_stats_t, request_seconds[id]));
    family(t, "cephalo_dp_upstream_duration_seconds", "histogram",
           "Time spent in upstream exchanges (connect to last response byte, all attempts), by service.");
    for (uint32_t id = 1; id <= services && id < CPH_STATS_MAX_SERVICES; id++)
        if (cph_stats_service_name(id) != NULL)
            render_histogram(t, "cephalo_dp_upstream_duration_seconds", "service", cph_stats_service_name(id), workers, n,
                             offsetof(cph_worker_stats_t, upstream_seconds[id]));
}

static void render_bytes(cph_text_t *t, cph_worker_stats_t *const *workers, size_t n, const char *name, const char *help,
                         size_t offset)
{
    uint32_t num = cph_stats_num_routes();

    family(t, name, "counter", help);
    for (uint32_t id = 0; id <= num && id < CPH_STATS_MAX_ROUTES; id++) {
        uint64_t sum = sum_at(workers, n, offset + id * sizeof(cph_counter_t));
        if (sum == 0 || route_label(id) == NULL)
            continue;
        cph_text_printf(t, "%s{route=\"", name);
        add_label(t, route_label(id));
        cph_text_printf(t, "\"} %llu\n", (unsigned long long)sum);
    }
}

void cph_observe_render(cph_text_t *t, cph_worker_stats_t *const *workers, size_t n)
{
    static const char *const protocols[CPH_CONN_PROTOCOLS] = {"pending", "http1", "http2"};

    render_requests(t, workers, n);
    render_latency(t, workers, n);
    render_bytes(t, workers, n, "cephalo_dp_request_bytes_total", "Request body bytes received, by route.",
                 offsetof(cph_worker_stats_t, request_bytes));
    render_bytes(t, workers, n, "cephalo_dp_response_bytes_total", "Response body bytes sent, by route.",
                 offsetof(cph_worker_stats_t, response_bytes));
    family(t, "cephalo_dp_connections_active", "gauge",
           "Client connections open, by protocol (pending = accepted, no request yet).");
    for (int p = 0; p < CPH_CONN_PROTOCOLS; p++)
        cph_text_printf(t, "cephalo_dp_connections_active{protocol=\"%s\"} %lld\n", protocols[p],
                        (long long)(int64_t)sum_at(workers, n, offsetof(cph_worker_stats_t, connections_open[p])));
}

/* Whether target t is the first of svc with its state (a target listed twice is one series). */
static int first_of_its_state(const cph_service_t *svc, size_t t)
{
    for (size_t i = 0; i != t; i++)
        if (svc->targets[i].state == svc->targets[t].state)
            return 0;
    return 1;
}

static void render_target_family(cph_text_t *t, const cph_snapshot_t *snap, int healthy, uint64_t now_ns)
{
    for (size_t s = 0; snap != NULL && s != snap->num_services; s++) {
        const cph_service_t *svc = &snap->services[s];
        for (size_t i = 0; i != svc->num_targets; i++) {
            const cph_target_state_t *st = svc->targets[i].state;
            int v;
            if (st == NULL || !first_of_its_state(svc, i))
                continue;
            if (healthy)
                v = svc->health_check == NULL || atomic_load_explicit(&st->health, memory_order_relaxed) != CPH_HEALTH_UNHEALTHY;
            else
                v = cph_balance_breaker_state(st, now_ns) == CPH_BREAKER_OPEN;
            cph_text_printf(t, "cephalo_dp_upstream_target_%s{service=\"", healthy ? "healthy" : "ejected");
            add_label(t, svc->name);
            cph_text_printf(t, "\",target=\"");
            add_label(t, svc->targets[i].authority.base);
            cph_text_printf(t, "\"} %d\n", v);
        }
    }
}

void cph_observe_render_targets(cph_text_t *t, const cph_snapshot_t *snap)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    family(t, "cephalo_dp_upstream_target_ejected", "gauge", "1 while the target's breaker is open (ejected), else 0.");
    render_target_family(t, snap, 0, now_ns);
    family(t, "cephalo_dp_upstream_target_healthy", "gauge",
           "0 when active health checks mark the target unhealthy, else 1 (targets without checks count as healthy).");
    render_target_family(t, snap, 1, now_ns);
}

void cph_observe_render_snapshot(cph_text_t *t)
{
    family(t, "cephalo_dp_snapshot_build_seconds", "gauge", "Validate and compile time of the last snapshot applied.");
    cph_text_printf(t, "cephalo_dp_snapshot_build_seconds %.6f\n",
                    (double)atomic_load_explicit(&snapshot_build_ns, memory_order_relaxed) / 1e9);
    family(t, "cephalo_dp_snapshot_apply_seconds", "gauge",
           "Time from receipt to every worker swapped (and persisted) of the last snapshot applied.");
    cph_text_printf(t, "cephalo_dp_snapshot_apply_seconds %.6f\n",
                    (double)atomic_load_explicit(&snapshot_apply_ns, memory_order_relaxed) / 1e9);
}
