/*
 * health_report_test: the data planes' upstream health reports on the control plane (the `health` socket message,
 * dpsession.c, cph_api_health_sanitize() and GET /api/v1/health/services in api_health.c).
 *
 * - the checker: a full report is kept member for member, unknown members are left out, a missing last_check is null,
 *   a long error is cut on a character boundary; every kind of bad value (types, enums, ranges, reals, NUL bytes,
 *   lengths, the caps on services, targets and total targets) refuses the whole report at its pointer;
 * - the socket server: a connected data plane is listed with no report (received_at null, services []) until its
 *   first one, then with it; a newer report replaces it; a bad, hostile or huge report (or one before hello) is
 *   dropped, the last good one stays and the session goes on; a disconnect drops the report; two data planes are
 *   listed apart, sorted by dp_id;
 * - the resource: 200 {"dataplanes": [...]} from the server, [] without one; another key is 404.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/unit/controlplane/dp_fixture.h"
#include "controlplane/api_health.h"

#define TARGET_OK                                                                                                                  \
    "{\"url\":\"http://10.0.0.1:8080\",\"weight\":2,\"health\":\"healthy\",\"breaker\":\"closed\",\"active\":3,"                   \
    "\"ejections\":0,\"last_check\":{\"at\":\"2026-11-23T16:00:00.123Z\",\"status\":200,\"error\":null,\"duration_ms\":3}}"
#define REPORT_OK                                                                                                                  \
    "[{\"name\":\"orders\",\"health_check\":true,\"targets\":[" TARGET_OK ",{\"url\":\"http://[::1]:81\",\"weight\":1,"            \
    "\"health\":\"unhealthy\",\"breaker\":\"half_open\",\"active\":0,\"ejections\":4,\"last_check\":{\"at\":"                      \
    "\"2026-11-23T16:00:01Z\",\"status\":null,\"error\":\"connect: refused\",\"duration_ms\":1000}}]},"                            \
    "{\"name\":\"users\",\"health_check\":false,\"targets\":[{\"url\":\"http://u:1\",\"weight\":1,\"health\":\"unchecked\","       \
    "\"breaker\":\"open\",\"active\":0,\"ejections\":1,\"last_check\":null}]}]"

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);

    if (v == NULL)
        fail_msg("test JSON does not parse: %s (%.200s)", jerr.text, text);
    return v;
}

static void assert_json(const json_t *v, const char *want)
{
    char *text = cph_json_canonical(v), *w;
    json_t *wv = load(want);

    w = cph_json_canonical(wv);
    if (text == NULL || strcmp(text, w) != 0)
        fail_msg("got %s, want %s", text != NULL ? text : "(null)", w);
    free(text);
    free(w);
    json_decref(wv);
}

/* ---------------------------------------------------------------- the checker */

static void refused(const char *services, const char *path)
{
    json_t *in = load(services), *out;
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    if ((out = cph_api_health_sanitize(in, &err)) != NULL)
        fail_msg("accepted %.200s", services);
    if (strcmp(err.code, "invalid") != 0 || strcmp(err.path, path) != 0)
        fail_msg("%.200s: want invalid at %s, got %s at %s (%s)", services, path, err.code, err.path, err.msg);
    json_decref(in);
}

/* The report [{"name":"s","health_check":true,"targets":[t]}] (takes t). */
static json_t *one_target(json_t *t)
{
    return json_pack("[{s:s, s:b, s:[o]}]", "name", "s", "health_check", 1, "targets", t);
}

/* A report whose one target is TARGET_OK with member key of the target (object NULL) or of its member object
 * replaced by value (or dropped: NULL), refused at path. */
static void edited_refused(const char *object, const char *key, const char *value, const char *path)
{
    json_t *t = load(TARGET_OK), *o = object != NULL ? json_object_get(t, object) : t, *svc;
    char *text;

    if (value != NULL)
        json_object_set_new(o, key, load(value));
    else
        json_object_del(o, key);
    svc = one_target(t);
    text = json_dumps(svc, JSON_COMPACT);
    refused(text, path);
    free(text);
    json_decref(svc);
}

static void target_refused(const char *key, const char *value, const char *path)
{
    edited_refused(NULL, key, value, path);
}

static void check_refused(const char *key, const char *value, const char *path)
{
    edited_refused("last_check", key, value, path);
}

/* n services of per targets each, every target TARGET_OK. */
static json_t *many(size_t n, size_t per)
{
    json_t *list = json_array();
    char name[32];

    for (size_t i = 0; i != n; ++i) {
        json_t *targets = json_array();
        for (size_t j = 0; j != per; ++j)
            json_array_append_new(targets, load(TARGET_OK));
        snprintf(name, sizeof(name), "s%zu", i);
        json_array_append_new(list, json_pack("{s:s, s:b, s:o}", "name", name, "health_check", 1, "targets", targets));
    }
    return list;
}

static void test_sanitize(void **state)
{
    json_t *in, *out;
    cph_error_t err;
    char *text, longerr[700];

    (void)state;
    in = load(REPORT_OK);
    assert_non_null(out = cph_api_health_sanitize(in, &err));
    assert_true(json_equal(in, out));
    json_decref(out);
    json_decref(in);
    in = load("[]");
    assert_non_null(out = cph_api_health_sanitize(in, &err));
    assert_json(out, "[]");
    json_decref(out);
    json_decref(in);

    /* unknown members are left out; last_check absent is null */
    in = load("[{\"name\":\"s\",\"health_check\":false,\"new\":1,\"targets\":[{\"url\":\"http://h:1\",\"weight\":1,\"health\":"
              "\"healthy\",\"breaker\":\"closed\",\"active\":0,\"ejections\":0,\"zone\":\"a\"}]}]");
    assert_non_null(out = cph_api_health_sanitize(in, &err));
    assert_json(out, "[{\"name\":\"s\",\"health_check\":false,\"targets\":[{\"url\":\"http://h:1\",\"weight\":1,\"health\":"
                     "\"healthy\",\"breaker\":\"closed\",\"active\":0,\"ejections\":0,\"last_check\":null}]}]");
    json_decref(out);
    json_decref(in);

    /* a long error is cut to 256 bytes, never inside a character (2-byte e-acute from byte 255) */
    memset(longerr, 'x', 255);
    for (size_t i = 255; i + 2 <= 600; i += 2)
        memcpy(longerr + i, "\xc3\xa9", 2);
    longerr[601] = '\0';
    longerr[600] = 'x';
    in = load(TARGET_OK);
    json_object_set_new(json_object_get(in, "last_check"), "error", json_string(longerr));
    text = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    in = one_target(load(text));
    free(text);
    assert_non_null(out = cph_api_health_sanitize(in, &err));
    text = (char *)json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(json_array_get(out, 0), "targets"), 0), "last_check"), "error"));
    assert_int_equal(strlen(text), 255);
    json_decref(out);
    json_decref(in);

    /* the report */
    refused("{}", "/services");
    refused("null", "/services");
    refused("[1]", "/services/0");
    refused("[{\"health_check\":true,\"targets\":[]}]", "/services/0/name");
    refused("[{\"name\":\"a b\",\"health_check\":true,\"targets\":[]}]", "/services/0/name");
    refused("[{\"name\":\"\",\"health_check\":true,\"targets\":[]}]", "/services/0/name");
    refused("[{\"name\":\"a\\u0000b\",\"health_check\":true,\"targets\":[]}]", "/services/0/name");
    refused(
        "[{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"health_check\":true,\"targets\":[]}]",
        "/services/0/name");
    refused("[{\"name\":\"a\",\"health_check\":1,\"targets\":[]}]", "/services/0/health_check");
    refused("[{\"name\":\"a\",\"health_check\":true}]", "/services/0/targets");
    refused("[{\"name\":\"a\",\"health_check\":true,\"targets\":{}}]", "/services/0/targets");
    refused("[{\"name\":\"a\",\"health_check\":true,\"targets\":[]}, 5]", "/services/1");
    /* the target */
    target_refused("url", NULL, "/services/0/targets/0/url");
    target_refused("url", "\"http://a b:1\"", "/services/0/targets/0/url");
    target_refused("url", "\"http://a\\u0000:1\"", "/services/0/targets/0/url");
    target_refused("url", "\"http://caf\\u00e9:1\"", "/services/0/targets/0/url");
    target_refused("url", "7", "/services/0/targets/0/url");
    target_refused("weight", "-1", "/services/0/targets/0/weight");
    target_refused("weight", "1.0", "/services/0/targets/0/weight");
    target_refused("weight", "1000001", "/services/0/targets/0/weight");
    target_refused("health", "\"sick\"", "/services/0/targets/0/health");
    target_refused("health", "\"healthy \"", "/services/0/targets/0/health");
    target_refused("health", "\"healthy\\u0000x\"", "/services/0/targets/0/health");
    target_refused("health", NULL, "/services/0/targets/0/health");
    target_refused("breaker", "\"half-open\"", "/services/0/targets/0/breaker");
    target_refused("breaker", "null", "/services/0/targets/0/breaker");
    target_refused("active", "-1", "/services/0/targets/0/active");
    target_refused("active", "null", "/services/0/targets/0/active");
    target_refused("ejections", "0.5", "/services/0/targets/0/ejections");
    target_refused("last_check", "[]", "/services/0/targets/0/last_check");
    check_refused("at", NULL, "/services/0/targets/0/last_check/at");
    check_refused("at", "\"2026 11 23\"", "/services/0/targets/0/last_check/at");
    check_refused("status", "1000", "/services/0/targets/0/last_check/status");
    check_refused("status", "\"200\"", "/services/0/targets/0/last_check/status");
    check_refused("duration_ms", "-3", "/services/0/targets/0/last_check/duration_ms");
    check_refused("error", "5", "/services/0/targets/0/last_check/error");
    check_refused("error", NULL, "/services/0/targets/0/last_check/error");

    /* the caps */
    in = many(CPH_HEALTH_MAX_SERVICES + 1, 0);
    assert_null(cph_api_health_sanitize(in, &err));
    assert_string_equal(err.path, "/services");
    json_decref(in);
    in = many(1, CPH_HEALTH_MAX_TARGETS + 1);
    assert_null(cph_api_health_sanitize(in, &err));
    assert_string_equal(err.path, "/services/0/targets");
    json_decref(in);
    in = many(CPH_HEALTH_MAX_TOTAL_TARGETS / CPH_HEALTH_MAX_TARGETS + 1, CPH_HEALTH_MAX_TARGETS); /* one service too many */
    assert_null(cph_api_health_sanitize(in, &err));
    assert_string_equal(err.path, "/services/64/targets");
    json_decref(in);
    in = many(CPH_HEALTH_MAX_TOTAL_TARGETS / CPH_HEALTH_MAX_TARGETS, CPH_HEALTH_MAX_TARGETS); /* exactly the cap */
    assert_non_null(out = cph_api_health_sanitize(in, &err));
    json_decref(out);
    json_decref(in);
}

/* ---------------------------------------------------------------- through the socket server */

static json_t *health_msg(const char *services)
{
    return json_pack("{s:s, s:o}", "type", "health", "services", load(services));
}

/* The entry of dp_id in cph_dpserver_health() (a new reference), or NULL. */
static json_t *entry(cph_dpserver_t *s, const char *dp_id)
{
    return dp_list_find(cph_dpserver_health(s), "dp_id", dp_id);
}

static void test_server(void **state)
{
    fixture_t *f = *state;
    dp_t a, b;
    json_t *e, *list, *big;
    const char *at;

    list = cph_dpserver_health(f->s);
    assert_json(list, "[]");
    json_decref(list);

    /* a report before hello is dropped; the session goes on */
    dp_connect(&b, f->path);
    dp_send(&b, health_msg(REPORT_OK));
    dp_send(&b, cph_msg_hello("dp-b", "host-b", 1, "test/1", NULL));
    json_decref(dp_expect(&b, "welcome"));
    dp_ping(&b, 1);
    assert_non_null(e = entry(f->s, "dp-b"));
    assert_json(e, "{\"dp_id\":\"dp-b\",\"received_at\":null,\"services\":[]}");
    json_decref(e);

    /* the report is kept as sent */
    dp_hello(&a, f->path, "dp-a", NULL);
    dp_send(&a, health_msg(REPORT_OK));
    dp_ping(&a, 1);
    assert_non_null(e = entry(f->s, "dp-a"));
    assert_json(json_object_get(e, "services"), REPORT_OK);
    at = json_string_value(json_object_get(e, "received_at"));
    assert_non_null(at);
    assert_int_equal(strlen(at), 24); /* 2026-11-23T16:00:00.123Z */
    assert_int_equal(at[23], 'Z');
    json_decref(e);

    /* bad and hostile reports are dropped, the last good one stays, the session goes on */
    dp_send(&a, health_msg("[{\"name\":\"x\",\"health_check\":true,\"targets\":[{\"url\":1}]}]"));
    dp_send(&a, json_pack("{s:s, s:s}", "type", "health", "services", "all good"));
    dp_send(&a, json_pack("{s:s}", "type", "health"));
    big = many(CPH_HEALTH_MAX_TOTAL_TARGETS / CPH_HEALTH_MAX_TARGETS + 1, CPH_HEALTH_MAX_TARGETS);
    dp_send(&a, json_pack("{s:s, s:o}", "type", "health", "services", big));
    dp_ping(&a, 2);
    assert_non_null(e = entry(f->s, "dp-a"));
    assert_json(json_object_get(e, "services"), REPORT_OK);
    json_decref(e);

    /* a newer report replaces it; the second data plane is apart; sorted by dp_id */
    dp_send(&b, health_msg("[{\"name\":\"users\",\"health_check\":false,\"targets\":[]}]"));
    dp_ping(&b, 2);
    dp_send(&a, health_msg("[]"));
    dp_ping(&a, 3);
    list = cph_dpserver_health(f->s);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "dp_id")), "dp-a");
    assert_json(json_object_get(json_array_get(list, 0), "services"), "[]");
    assert_json(json_object_get(json_array_get(list, 1), "services"),
                "[{\"name\":\"users\",\"health_check\":false,\"targets\":[]}]");
    json_decref(list);

    /* a disconnect drops the report; a reconnect starts with none */
    dp_close(&b);
    for (int i = 0; i != 250 && (e = entry(f->s, "dp-b")) != NULL; ++i) {
        json_decref(e);
        poll(NULL, 0, 20);
    }
    assert_null(entry(f->s, "dp-b"));
    dp_hello(&b, f->path, "dp-b", NULL);
    assert_non_null(e = entry(f->s, "dp-b"));
    assert_json(e, "{\"dp_id\":\"dp-b\",\"received_at\":null,\"services\":[]}");
    json_decref(e);

    dp_close(&a);
    dp_close(&b);
}

/* ---------------------------------------------------------------- the resource */

static json_t *call(cph_dpserver_t *s, const char *key, unsigned *status)
{
    cph_api_req_t req = {.dps = s, .method = CPH_API_GET, .key = key, .actor = "token:admin"};

    cph_api_health(&req);
    *status = req.status;
    return req.resp;
}

static void test_resource(void **state)
{
    fixture_t *f = *state;
    unsigned status;
    json_t *resp;
    dp_t a;

    resp = call(NULL, "services", &status);
    assert_int_equal(status, 200);
    assert_json(resp, "{\"dataplanes\":[]}");
    json_decref(resp);
    resp = call(f->s, "services", &status);
    assert_int_equal(status, 200);
    assert_json(resp, "{\"dataplanes\":[]}");
    json_decref(resp);
    resp = call(f->s, "targets", &status);
    assert_int_equal(status, 404);
    json_decref(resp);
    resp = call(f->s, NULL, &status); /* the summary (metrics_test.c tests it) */
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(resp, "status")), "ok");
    json_decref(resp);

    dp_hello(&a, f->path, "dp-a", NULL);
    dp_send(&a, health_msg(REPORT_OK));
    dp_ping(&a, 1);
    resp = call(f->s, "services", &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(json_object_get(resp, "dataplanes")), 1);
    assert_json(json_object_get(json_array_get(json_object_get(resp, "dataplanes"), 0), "services"), REPORT_OK);
    json_decref(resp);
    dp_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test_setup_teardown(test_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
