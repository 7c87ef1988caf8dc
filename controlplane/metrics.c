/*
 * metrics: the control plane's GET /metrics body in the Prometheus text format 0.0.4.
 *
 * Most numbers live where they are made and are only read here, on the scrape's admin-API thread: the current
 * snapshot's version (db.c, under its lock), SQLite busy retries and the per-version snapshot build time and size
 * (db.c's relaxed atomics, cph_db_stats), the data planes and their lag in versions (dpserver, copied under its lock by
 * cph_dpserver_summary, rendered after the lock is dropped) and the integrations' table (integrations.c). The one
 * counter kept here is the admin requests', a fixed method x status class table of relaxed atomics that api.c bumps
 * from its connection threads. No lock is ever held while text is formatted or sent.
 *
 * Labels: method, status_class and integration are our own fixed names; dp_id is the operator's (hello's 1-128
 * characters, unchecked otherwise), so it is escaped as the format says.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/integrations.h"
#include "controlplane/metrics.h"
#include "proto/log.h"

#define MODULE "cp/metrics"

static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "other"};
static const char *const CLASSES[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
#define NUM_METHODS (sizeof(METHODS) / sizeof(METHODS[0]))
#define NUM_CLASSES (sizeof(CLASSES) / sizeof(CLASSES[0]))

static atomic_uint_fast64_t admin_requests[NUM_METHODS][NUM_CLASSES];

/* ---------------------------------------------------------------- writer */

void cph_metrics_printf(cph_metrics_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->buf != NULL ? b->buf + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            cph_fatal(MODULE, "vsnprintf failed");
        if (b->buf != NULL && (size_t)n < b->cap - b->len)
            break;
        b->cap = (b->cap + (size_t)n + 1) * 2;
        if ((b->buf = realloc(b->buf, b->cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    b->len += (size_t)n;
}

void cph_metrics_family(cph_metrics_buf_t *b, const char *name, const char *type, const char *help)
{
    cph_metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void cph_metrics_label_value(cph_metrics_buf_t *b, const char *s)
{
    size_t run;

    while (*s != '\0') {
        run = strcspn(s, "\\\"\n");
        if (run != 0)
            cph_metrics_printf(b, "%.*s", (int)run, s);
        s += run;
        if (*s != '\0') {
            cph_metrics_printf(b, "%s", *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
            ++s;
        }
    }
}

/* ---------------------------------------------------------------- admin requests */

static size_t method_index(const char *method)
{
    for (size_t i = 0; i != NUM_METHODS - 1; ++i)
        if (method != NULL && strcmp(method, METHODS[i]) == 0)
            return i;
    return NUM_METHODS - 1;
}

void cph_metrics_count_admin(const char *method, unsigned status)
{
    size_t c = status >= 100 && status <= 599 ? status / 100 - 1 : NUM_CLASSES - 1;

    atomic_fetch_add_explicit(&admin_requests[method_index(method)][c], 1, memory_order_relaxed);
}

uint64_t cph_metrics_admin_count(const char *method, const char *status_class)
{
    size_t m = method_index(method);

    if (strcmp(METHODS[m], method) != 0)
        return 0;
    for (size_t c = 0; c != NUM_CLASSES; ++c)
        if (strcmp(CLASSES[c], status_class) == 0)
            return atomic_load_explicit(&admin_requests[m][c], memory_order_relaxed);
    return 0;
}

static void render_admin(cph_metrics_buf_t *b)
{
    cph_metrics_family(b, "cephalo_cp_admin_requests_total", "counter",
                       "Requests the admin listener answered, by method and status class.");
    for (size_t m = 0; m != NUM_METHODS; ++m)
        for (size_t c = 1; c != NUM_CLASSES; ++c) /* 1xx never reaches a handler: not shown */
            cph_metrics_printf(b, "cephalo_cp_admin_requests_total{method=\"%s\",status_class=\"%s\"} %llu\n", METHODS[m],
                               CLASSES[c], (unsigned long long)atomic_load_explicit(&admin_requests[m][c], memory_order_relaxed));
}

/* ---------------------------------------------------------------- database */

static void render_db(cph_metrics_buf_t *b, cph_db_t *db)
{
    static const double BOUNDS[CPH_DB_BUILD_BUCKETS] = CPH_DB_BUILD_BOUNDS_S;
    json_t *snap = cph_db_current_snapshot(db, 0);
    cph_db_stats_t st;
    uint64_t cumulative = 0;

    cph_metrics_family(b, "cephalo_cp_snapshot_version", "gauge", "The current configuration version (0 before the first).");
    cph_metrics_printf(b, "cephalo_cp_snapshot_version %lld\n",
                       snap != NULL ? (long long)json_integer_value(json_object_get(snap, "version")) : 0LL);
    json_decref(snap);
    cph_db_stats(db, &st);
    cph_metrics_family(b, "cephalo_cp_snapshot_build_seconds", "histogram",
                       "Time to build, validate, hash and serialise the snapshot of each committed version.");
    for (size_t i = 0; i != CPH_DB_BUILD_BUCKETS; ++i) {
        cumulative += st.build_buckets[i];
        cph_metrics_printf(b, "cephalo_cp_snapshot_build_seconds_bucket{le=\"%g\"} %llu\n", BOUNDS[i],
                           (unsigned long long)cumulative);
    }
    cumulative += st.build_buckets[CPH_DB_BUILD_BUCKETS]; /* _count is the buckets' sum: +Inf and _count always agree */
    cph_metrics_printf(b, "cephalo_cp_snapshot_build_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    cph_metrics_printf(b, "cephalo_cp_snapshot_build_seconds_sum %.9f\n", (double)st.build_ns_sum / 1e9);
    cph_metrics_printf(b, "cephalo_cp_snapshot_build_seconds_count %llu\n", (unsigned long long)cumulative);
    cph_metrics_family(b, "cephalo_cp_snapshot_build_last_seconds", "gauge",
                       "Build time of the last committed version's snapshot (0 before the first since start).");
    cph_metrics_printf(b, "cephalo_cp_snapshot_build_last_seconds %.9f\n", (double)st.build_ns_last / 1e9);
    cph_metrics_family(b, "cephalo_cp_snapshot_bytes", "gauge",
                       "Size of the last committed snapshot body (canonical JSON; 0 before the first since start).");
    cph_metrics_printf(b, "cephalo_cp_snapshot_bytes %llu\n", (unsigned long long)st.snapshot_bytes);
    cph_metrics_family(b, "cephalo_cp_sqlite_busy_retries_total", "counter",
                       "Times a statement met SQLITE_BUSY (another connection held the database) and was retried.");
    cph_metrics_printf(b, "cephalo_cp_sqlite_busy_retries_total %llu\n", (unsigned long long)st.busy_retries);
    cph_metrics_family(b, "cephalo_cp_sqlite_busy_failures_total", "counter",
                       "Statements that gave up with SQLITE_BUSY after waiting 5 s.");
    cph_metrics_printf(b, "cephalo_cp_sqlite_busy_failures_total %llu\n", (unsigned long long)st.busy_failures);
}

/* ---------------------------------------------------------------- data planes */

static void render_dataplanes(cph_metrics_buf_t *b, cph_dpserver_t *dps)
{
    json_t *sum = dps != NULL ? cph_dpserver_summary(dps) : NULL, *dp;
    size_t i;

    cph_metrics_family(b, "cephalo_cp_dataplanes_connected", "gauge", "Data planes connected to the socket now.");
    cph_metrics_printf(b, "cephalo_cp_dataplanes_connected %lld\n",
                       sum != NULL ? (long long)json_integer_value(json_object_get(sum, "connected")) : 0LL);
    cph_metrics_family(
        b, "cephalo_cp_dataplane_lag_versions", "gauge",
        "Versions a connected data plane is behind the latest published one (all of them when it runs none of ours).");
    json_array_foreach(json_object_get(sum, "dataplanes"), i, dp)
    {
        if (!json_is_true(json_object_get(dp, "connected")))
            continue;
        cph_metrics_printf(b, "cephalo_cp_dataplane_lag_versions{dp_id=\"");
        cph_metrics_label_value(b, json_string_value(json_object_get(dp, "id")));
        cph_metrics_printf(b, "\"} %lld\n", (long long)json_integer_value(json_object_get(dp, "lag")));
    }
    json_decref(sum);
}

char *cph_metrics_render(cph_db_t *db, cph_dpserver_t *dps, size_t *len)
{
    cph_metrics_buf_t b = {0};

    render_admin(&b);
    if (db != NULL)
        render_db(&b, db);
    render_dataplanes(&b, dps);
    cph_integrations_metrics(&b);
    *len = b.len;
    return b.buf;
}
