/*
 * metrics_test: the control plane's GET /metrics body and GET /api/v1/health summary, driven by a real migrated
 * database in a mkdtemp directory and a real snapshot server with in-test data planes (dp_fixture.h): admin request
 * counting by method and status class, snapshot build histogram and size per committed version, SQLite busy retries
 * when a second connection holds the write lock, data planes' lag in versions (before and after an ack, after a new
 * publish, gone at disconnect), label escaping of a hostile dp_id, and the summary's degraded state on a nack.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "controlplane/api_health.h"
#include "controlplane/db.h"
#include "controlplane/metrics.h"
#include "dp_fixture.h"

/* ---------------------------------------------------------------- helpers */

/* The value of the sample whose name-and-labels part is exactly series, or -1 when the body has no such line. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            ++p;
    }
    return -1;
}

/*
 * The shape of the body: every line ends with \n, HELP then TYPE once per family, each sample's name is its family's
 * (a histogram's: _bucket, _sum, _count), and a histogram's +Inf bucket equals its _count. The e2e test parses the
 * label grammar and escapes strictly; this catches a family written out of order.
 */
static void check_shape(const char *text)
{
    char family[128] = "", type[16] = "", name[160], line[1024];
    double inf = -1;

    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n"), fl = strlen(family);
        assert_true(p[n] == '\n' && n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + 1;
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", family), 1);
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%159s %15s", name, type), 2);
            assert_string_equal(name, family);
            continue;
        }
        assert_true(type[0] != '\0' && strncmp(line, family, fl) == 0);
        if (strcmp(type, "histogram") != 0) {
            assert_true(line[fl] == ' ' || line[fl] == '{');
        } else if (strncmp(line + fl, "_bucket{le=\"+Inf\"} ", 18) == 0) {
            inf = strtod(line + fl + 18, NULL);
        } else if (strncmp(line + fl, "_count ", 7) == 0) {
            assert_true(inf == strtod(line + fl + 7, NULL));
        } else {
            assert_true(strncmp(line + fl, "_bucket{", 8) == 0 || strncmp(line + fl, "_sum ", 5) == 0);
        }
    }
}

static double scrape(cph_db_t *db, cph_dpserver_t *dps, const char *series)
{
    size_t len;
    char *text = cph_metrics_render(db, dps, &len);
    double v;

    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    check_shape(text);
    v = sample(text, series);
    free(text);
    return v;
}

/* A migrated database in its own temp dir (removed by db_free). */
typedef struct st_tdb_t {
    char dir[64];
    char path[128];
    cph_db_t *db;
} tdb_t;

static void db_new(tdb_t *t)
{
    cph_error_t err;

    strcpy(t->dir, "/tmp/cph-metrics-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/cephalo.db", t->dir);
    assert_non_null(t->db = cph_db_open(t->path, CEPHALO_MIGRATIONS_DIR, &err));
}

static void db_free(tdb_t *t)
{
    char cmd[200];

    cph_db_close(t->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

static void publish(cph_dpserver_t *s, uint64_t version, int tag, char *hash_out)
{
    char name[16];
    json_t *body;

    snprintf(name, sizeof(name), "svc%d", tag);
    body = json_pack("{s:[{s:s, s:[]}], s:[]}", "services", "name", name, "targets", "routes");
    assert_non_null(body);
    assert_int_equal(cph_snapshot_hash(body, hash_out), 0);
    cph_dpserver_publish(s, version, hash_out, body);
    json_decref(body);
}

/* ---------------------------------------------------------------- tests */

static void test_admin_requests(void **state)
{
    uint64_t get2 = cph_metrics_admin_count("GET", "2xx"), other4 = cph_metrics_admin_count("other", "4xx");
    uint64_t post5 = cph_metrics_admin_count("POST", "5xx");
    char series[128];

    (void)state;
    cph_metrics_count_admin("GET", 200);
    cph_metrics_count_admin("GET", 204);
    cph_metrics_count_admin("PATCH", 405); /* not one of ours: other */
    cph_metrics_count_admin("get", 404);   /* methods are case-sensitive: other */
    cph_metrics_count_admin("POST", 0);    /* nonsense status: 5xx */
    cph_metrics_count_admin("POST", 600);  /* likewise */
    cph_metrics_count_admin(NULL, 401);    /* no method: other */
    assert_int_equal(cph_metrics_admin_count("GET", "2xx"), get2 + 2);
    assert_int_equal(cph_metrics_admin_count("other", "4xx"), other4 + 3);
    assert_int_equal(cph_metrics_admin_count("POST", "5xx"), post5 + 2);
    assert_int_equal(cph_metrics_admin_count("PATCH", "4xx"), 0);
    snprintf(series, sizeof(series), "cephalo_cp_admin_requests_total{method=\"GET\",status_class=\"2xx\"}");
    assert_true(scrape(NULL, NULL, series) == (double)(get2 + 2));
    assert_true(scrape(NULL, NULL, "cephalo_cp_admin_requests_total{method=\"other\",status_class=\"4xx\"}") ==
                (double)(other4 + 3));
    assert_true(scrape(NULL, NULL, "cephalo_cp_admin_requests_total{method=\"DELETE\",status_class=\"3xx\"}") >= 0);
    assert_true(scrape(NULL, NULL, "cephalo_cp_admin_requests_total{method=\"GET\",status_class=\"1xx\"}") < 0);
}

static void test_snapshot_build(void **state)
{
    sqlite3_stmt *st;
    cph_error_t err;
    cph_db_stats_t stats;
    double bytes;
    int64_t stored = 0;
    tdb_t t;

    (void)state;
    db_new(&t);
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_build_seconds_count") == 0);
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_bytes") == 0);
    assert_int_equal(cph_db_ensure_snapshot(t.db, &err), 0); /* the bootstrap version */
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_build_seconds_count") == 1);
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_build_seconds_bucket{le=\"+Inf\"}") == 1);
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_build_seconds_sum") > 0);
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_build_last_seconds") > 0);
    assert_true(scrape(t.db, NULL, "cephalo_cp_snapshot_version") == 1);
    /* the size is the stored body's */
    cph_db_lock(t.db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(t.db), "SELECT length(CAST(body AS BLOB)) FROM snapshots WHERE version = 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    stored = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(t.db);
    bytes = scrape(t.db, NULL, "cephalo_cp_snapshot_bytes");
    assert_true(stored > 0 && bytes == (double)stored);
    /* nothing changed: no new version, nothing observed */
    assert_int_equal(cph_db_ensure_snapshot(t.db, &err), 0);
    cph_db_stats(t.db, &stats);
    uint64_t sum = 0;
    for (size_t i = 0; i != CPH_DB_BUILD_BUCKETS + 1; ++i)
        sum += stats.build_buckets[i];
    assert_int_equal(sum, 1);
    assert_true(stats.build_ns_last > 0 && stats.build_ns_sum == stats.build_ns_last);
    db_free(&t);
}

typedef struct st_holder_t {
    sqlite3 *other;
    int delay_ms;
} holder_t;

static void *release_later(void *arg)
{
    holder_t *h = arg;

    usleep((useconds_t)h->delay_ms * 1000);
    assert_int_equal(sqlite3_exec(h->other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    return NULL;
}

static void test_busy_retries(void **state)
{
    holder_t h = {NULL, 150};
    cph_error_t err;
    pthread_t th;
    tdb_t t;

    (void)state;
    db_new(&t);
    assert_true(scrape(t.db, NULL, "cephalo_cp_sqlite_busy_retries_total") == 0);
    /* another connection (a backup tool, a second control plane) holds the write lock for a while */
    assert_int_equal(sqlite3_open(t.path, &h.other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h.other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(pthread_create(&th, NULL, release_later, &h), 0);
    cph_db_lock(t.db);
    assert_int_equal(cph_db_exec(t.db, "BEGIN IMMEDIATE", &err), 0); /* waits, retrying, then gets it */
    assert_int_equal(cph_db_exec(t.db, "ROLLBACK", &err), 0);
    cph_db_unlock(t.db);
    pthread_join(th, NULL);
    sqlite3_close(h.other);
    assert_true(scrape(t.db, NULL, "cephalo_cp_sqlite_busy_retries_total") >= 3); /* 150 ms is past the 1+2+5+10 ms waits */
    assert_true(scrape(t.db, NULL, "cephalo_cp_sqlite_busy_failures_total") == 0);
    db_free(&t);
}

static void test_lag(void **state)
{
    fixture_t *f = *state;
    char h3[CPH_HASH_SIZE], h5[CPH_HASH_SIZE];
    const char *got;
    json_t *sum;
    dp_t a, b;

    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplanes_connected") == 0);
    publish(f->s, 3, 3, h3);
    dp_hello(&a, f->path, "edge-1", NULL); /* runs nothing: 3 behind */
    got = dp_expect_snapshot(&a, 3);
    assert_string_equal(got, h3);
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplanes_connected") == 1);
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplane_lag_versions{dp_id=\"edge-1\"}") == 3);
    dp_ack(&a, 3, h3);
    json_decref(cph_dpserver_wait_applied(f->s, 3, WAIT_MS));
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplane_lag_versions{dp_id=\"edge-1\"}") == 0);
    /* a newer version published and not yet acked: 2 behind */
    publish(f->s, 5, 5, h5);
    assert_string_equal(dp_expect_snapshot(&a, 5), h5);
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplane_lag_versions{dp_id=\"edge-1\"}") == 2);
    sum = cph_dpserver_summary(f->s);
    assert_int_equal(json_integer_value(json_object_get(sum, "latest_version")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(sum, "dataplanes"), 0), "version")), 3);
    json_decref(sum);
    /* a hostile dp_id is escaped, not cut or passed raw */
    dp_hello(&b, f->path, "we\"ird\\id\nx", NULL);
    dp_expect_snapshot(&b, 5);
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplane_lag_versions{dp_id=\"we\\\"ird\\\\id\\nx\"}") == 5);
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplanes_connected") == 2);
    /* gone: no lag series, not counted */
    dp_close(&b);
    for (uint64_t deadline = now_ms() + WAIT_MS; scrape(NULL, f->s, "cephalo_cp_dataplanes_connected") != 1;) {
        assert_true(now_ms() < deadline);
        usleep(10000);
    }
    assert_true(scrape(NULL, f->s, "cephalo_cp_dataplane_lag_versions{dp_id=\"we\\\"ird\\\\id\\nx\"}") < 0);
    sum = cph_dpserver_summary(f->s);
    assert_int_equal(json_array_size(json_object_get(sum, "dataplanes")), 2); /* remembered, disconnected */
    json_decref(sum);
    dp_close(&a);
}

static void test_health_summary(void **state)
{
    fixture_t *f = *state;
    cph_error_t e = {"invalid", "/routes/0", "bad"};
    cph_applied_t none = {"", 0, "", "none"};
    cph_api_req_t req = {0};
    char h1[CPH_HASH_SIZE], h2[CPH_HASH_SIZE];
    json_t *s, *items;
    dp_t a;
    tdb_t t;

    db_new(&t);
    s = cph_api_health_summary(NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "dataplanes"), "connected")), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(s, "integrations"), "vault"), "state")),
                        "disabled");
    json_decref(s);

    publish(f->s, 1, 1, h1);
    dp_hello(&a, f->path, "edge-9", NULL);
    dp_send(&a, cph_msg_nack(1, dp_expect_snapshot(&a, 1), &none, &e));
    json_decref(cph_dpserver_wait_applied(f->s, 1, WAIT_MS));
    req.db = t.db;
    req.dps = f->s;
    req.method = CPH_API_GET;
    cph_api_health(&req);
    assert_int_equal(req.status, 200);
    s = req.resp;
    assert_string_equal(json_string_value(json_object_get(s, "status")), "degraded");
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(s, "problems"), 0)), "edge-9"));
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 0); /* nothing committed in this database */
    items = json_object_get(json_object_get(s, "dataplanes"), "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "status")), "nacked");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "lag")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "dataplanes"), "max_lag")), 1);
    json_decref(req.resp);

    /* a newer version, acked: healthy again */
    publish(f->s, 2, 2, h2);
    assert_string_equal(dp_expect_snapshot(&a, 2), h2);
    dp_ack(&a, 2, h2);
    json_decref(cph_dpserver_wait_applied(f->s, 2, WAIT_MS));
    s = cph_api_health_summary(t.db, f->s);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "ok");
    assert_int_equal(json_array_size(json_object_get(s, "problems")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "dataplanes"), "max_lag")), 0);
    json_decref(s);
    dp_close(&a);
    db_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_requests),
        cmocka_unit_test(test_snapshot_build),
        cmocka_unit_test(test_busy_retries),
        cmocka_unit_test_setup_teardown(test_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_summary, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
