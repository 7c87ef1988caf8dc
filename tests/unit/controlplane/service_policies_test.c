/*
 * service_policies_test: a service's "policies" through the control plane (migrations/0007_service_policies.sql,
 * controlplane/store_service.c, the services resource of api_crud.c, snapbuild.c).
 *
 * - normalize: absent is {}, an object is kept as sent (no default filled in), anything else is 400 invalid at
 *   /policies, every kind of bad member is refused at its JSON pointer (unknown member, wrong type, real number, out of
 *   range, an enum value, a cross-member rule, consistent_hash without hash_on);
 * - the store: insert, get, list and update keep the object; a replace without it sets {} again; the column's CHECK
 *   refuses what is not a JSON object;
 * - the snapshot: every service carries "policies" (as stored, {} when none) and the body passes the validator;
 * - the resource: POST with a bad value is 400 with the pointer and writes nothing; hostile bodies (deep nesting, a
 *   huge object, wrong types) are refused without a crash and lose nothing already stored.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/api.h"
#include "controlplane/audit.h"
#include "controlplane/db.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_service.h"

#define FULL_POLICIES                                                                                                              \
    "{\"lb\":{\"policy\":\"consistent_hash\",\"hash_on\":\"header:x-user\"},"                                                      \
    "\"health_check\":{\"path\":\"/healthz\",\"interval_ms\":5000,\"timeout_ms\":1000,\"healthy_threshold\":2,"                    \
    "\"unhealthy_threshold\":3,\"expected_statuses\":[200,204]},"                                                                  \
    "\"outlier\":{\"consecutive_failures\":5,\"base_ejection_ms\":30000,\"max_ejection_ms\":300000,"                               \
    "\"max_ejection_percent\":50},\"limits\":{\"max_requests\":1024,\"max_pending\":1024}}"

static int setup(void **state)
{
    return db_fixture_setup(state, "service-policies-test");
}

static void assert_json(const json_t *v, const char *want)
{
    char *text = cph_json_canonical(v);

    if (text == NULL || strcmp(text, want) != 0)
        fail_msg("got %s, want %s", text != NULL ? text : "(null)", want);
    free(text);
}

/* The canonical text of a JSON literal (for comparisons independent of member order). */
static char *canonical(const char *text)
{
    json_t *v = parse(text);
    char *out = cph_json_canonical(v);

    json_decref(v);
    return out;
}

/* ---------------------------------------------------------------- normalize */

static void refused(const char *policies, const char *code, const char *path)
{
    char *text;
    json_t *in, *out;
    cph_error_t err;

    assert_true(asprintf(&text, "{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:1\"}],\"policies\":%s}", policies) > 0);
    in = parse(text);
    memset(&err, 0, sizeof(err));
    if ((out = cph_store_service_normalize(in, &err)) != NULL)
        fail_msg("accepted %s", policies);
    assert_error_at(&err, policies, code, path);
    json_decref(in);
    free(text);
}

static void test_normalize(void **state)
{
    json_t *in, *out;
    cph_error_t err;
    char *want;

    (void)state;
    /* absent: {} */
    in = parse("{\"name\":\"s\",\"targets\":[]}");
    assert_non_null(out = cph_store_service_normalize(in, &err));
    assert_json(json_object_get(out, "policies"), "{}");
    json_decref(out);
    json_decref(in);
    /* kept as sent, nothing filled in */
    in = parse("{\"name\":\"s\",\"targets\":[],\"policies\":" FULL_POLICIES "}");
    if ((out = cph_store_service_normalize(in, &err)) == NULL)
        fail_msg("refused: %s at %s (%s)", err.code, err.path, err.msg);
    want = canonical(FULL_POLICIES);
    assert_json(json_object_get(out, "policies"), want);
    free(want);
    json_decref(out);
    json_decref(in);
    in = parse("{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":{\"policy\":\"least_conn\"}}}");
    assert_non_null(out = cph_store_service_normalize(in, &err));
    assert_json(json_object_get(out, "policies"), "{\"lb\":{\"policy\":\"least_conn\"}}");
    json_decref(out);
    json_decref(in);

    /* not an object */
    refused("null", "invalid", "/policies");
    refused("[]", "invalid", "/policies");
    refused("\"lb\"", "invalid", "/policies");
    refused("1", "invalid", "/policies");
    refused("1.5", "invalid", "/policies");
    refused("true", "invalid", "/policies");
    /* each kind of bad member, at its pointer */
    refused("{\"balancer\":{}}", "unknown_field", "/policies/balancer");
    refused("{\"lb\":{\"policy\":\"fastest\"}}", "invalid", "/policies/lb/policy");
    refused("{\"lb\":{\"policy\":7}}", "invalid", "/policies/lb/policy");
    refused("{\"lb\":{\"policy\":\"random\",\"hash_on\":\"ip\"}}", "invalid", "/policies/lb/hash_on");
    refused("{\"lb\":{\"policy\":\"consistent_hash\"}}", "missing_field", "/policies/lb/hash_on");
    refused("{\"lb\":[]}", "invalid", "/policies/lb");
    refused("{\"health_check\":{\"path\":\"healthz\"}}", "invalid", "/policies/health_check/path");
    refused("{\"health_check\":{\"path\":\"/h\",\"interval_ms\":50}}", "invalid", "/policies/health_check/interval_ms");
    refused("{\"health_check\":{\"path\":\"/h\",\"interval_ms\":1000,\"timeout_ms\":1000}}", "invalid",
            "/policies/health_check/timeout_ms");
    refused("{\"health_check\":{\"path\":\"/h\",\"expected_statuses\":[200,200]}}", NULL,
            "/policies/health_check/expected_statuses/1");
    refused("{\"health_check\":{\"path\":\"/h\",\"healthy_threshold\":2.0}}", "invalid",
            "/policies/health_check/healthy_threshold");
    refused("{\"outlier\":{\"base_ejection_ms\":60000,\"max_ejection_ms\":1000}}", "invalid", "/policies/outlier/max_ejection_ms");
    refused("{\"outlier\":{\"max_ejection_percent\":101}}", "invalid", "/policies/outlier/max_ejection_percent");
    refused("{\"limits\":{\"max_requests\":0}}", "invalid", "/policies/limits/max_requests");
    refused("{\"limits\":{\"max_pending\":\"10\"}}", "invalid", "/policies/limits/max_pending");
    refused("{\"limits\":{\"max_requests\":10,\"queue\":1}}", "unknown_field", "/policies/limits/queue");
}

/* ---------------------------------------------------------------- writes */

static json_t *get_service(cph_db_t *db, const char *key)
{
    cph_error_t err;
    json_t *svc;

    cph_db_lock(db);
    svc = cph_store_service_get(db, key, &err);
    cph_db_unlock(db);
    assert_non_null(svc);
    return svc;
}

static json_t *body(cph_db_t *db)
{
    cph_error_t err;
    json_t *b;

    cph_db_lock(db);
    b = cph_snapbuild_body(db, &err);
    cph_db_unlock(db);
    assert_non_null(b);
    if (cph_snapshot_validate(b, &err) != 0)
        fail_msg("the body does not validate: %s at %s (%s)", err.code, err.path, err.msg);
    return b;
}

static void test_store_and_snapshot(void **state)
{
    fixture_t *fx = *state;
    json_t *svc, *b;
    int64_t id;
    char *want = canonical(FULL_POLICIES);

    id = written(fx->db, &cph_store_service_ops, 0,
                 "{\"name\":\"a\",\"targets\":[{\"url\":\"http://127.0.0.1:1\"}],\"policies\":" FULL_POLICIES "}");
    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"b\",\"targets\":[]}");
    svc = get_service(fx->db, "a");
    assert_json(json_object_get(svc, "policies"), want);
    json_decref(svc);
    svc = get_service(fx->db, "b");
    assert_json(json_object_get(svc, "policies"), "{}");
    json_decref(svc);

    /* the snapshot: every service has it, as stored */
    b = body(fx->db);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(b, "services"), 0), "name")), "a");
    assert_json(json_object_get(json_array_get(json_object_get(b, "services"), 0), "policies"), want);
    assert_json(json_object_get(json_array_get(json_object_get(b, "services"), 1), "policies"), "{}");
    json_decref(b);

    /* a replace changes it; a replace without it is {} again */
    written(fx->db, &cph_store_service_ops, id, "{\"name\":\"a\",\"targets\":[],\"policies\":{\"limits\":{\"max_requests\":7}}}");
    svc = get_service(fx->db, "a");
    assert_json(json_object_get(svc, "policies"), "{\"limits\":{\"max_requests\":7}}");
    json_decref(svc);
    written(fx->db, &cph_store_service_ops, id, "{\"name\":\"a\",\"targets\":[]}");
    svc = get_service(fx->db, "a");
    assert_json(json_object_get(svc, "policies"), "{}");
    json_decref(svc);
    b = body(fx->db);
    assert_json(json_object_get(json_array_get(json_object_get(b, "services"), 0), "policies"), "{}");
    json_decref(b);

    /* the column refuses what is not an object */
    assert_true(sql_refused(fx->db, "UPDATE services SET policies = '[]'"));
    assert_true(sql_refused(fx->db, "UPDATE services SET policies = 'lb'"));
    assert_true(sql_refused(fx->db, "UPDATE services SET policies = NULL"));
    assert_false(sql_refused(fx->db, "UPDATE services SET policies = '{}'"));
    free(want);
}

/* ---------------------------------------------------------------- the resource */

/* Runs the services resource on body (stolen) as the admin API would; returns the answer (caller decrefs). */
static json_t *call(cph_db_t *db, int method, const char *key, json_t *body_in, unsigned *status)
{
    cph_api_req_t req = {.db = db, .method = method, .key = key, .body = body_in, .actor = "token:admin"};
    json_t *resp;

    cph_api_services(&req);
    *status = req.status;
    resp = req.resp;
    json_decref(body_in);
    return resp;
}

static void api_refused(cph_db_t *db, int method, const char *key, json_t *in, const char *path)
{
    unsigned status;
    json_t *resp = call(db, method, key, in, &status);

    assert_int_equal(status, 400);
    if (path != NULL)
        assert_string_equal(json_string_value(json_object_get(resp, "path")), path);
    json_decref(resp);
}

/* {"name":"s","targets":[],"policies": <depth nested objects>} */
static json_t *deep(size_t depth)
{
    json_t *root = json_object(), *cur = root;

    for (size_t i = 0; i != depth; ++i) {
        json_t *next = json_object();
        json_object_set_new(cur, "lb", next);
        cur = next;
    }
    return json_pack("{s:s, s:[], s:o}", "name", "s", "targets", "policies", root);
}

static void test_api(void **state)
{
    fixture_t *fx = *state;
    unsigned status;
    json_t *resp, *big, *before, *after;
    int64_t audits;
    char key[32];

    resp = call(fx->db, CPH_API_POST, NULL, parse("{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":{\"policy\":\"random\"}}}"),
                &status);
    assert_int_equal(status, 201);
    assert_json(json_object_get(json_object_get(resp, "service"), "policies"), "{\"lb\":{\"policy\":\"random\"}}");
    json_decref(resp);
    before = get_service(fx->db, "s");
    audits = cph_audit_count(fx->db);

    api_refused(fx->db, CPH_API_POST, NULL, parse("{\"name\":\"t\",\"targets\":[],\"policies\":{\"lb\":{\"policy\":\"x\"}}}"),
                "/policies/lb/policy");
    api_refused(fx->db, CPH_API_PUT, "s", parse("{\"name\":\"s\",\"targets\":[],\"policies\":[1]}"), "/policies");
    api_refused(fx->db, CPH_API_PUT, "s", parse("{\"name\":\"s\",\"targets\":[],\"policies\":{\"limits\":{\"max_pending\":-1}}}"),
                "/policies/limits/max_pending");
    /* hostile: deep nesting, a huge object, wrong types everywhere */
    api_refused(fx->db, CPH_API_POST, NULL, deep(1000), NULL);
    api_refused(fx->db, CPH_API_PUT, "s", deep(2040), NULL); /* jansson parses at most 2048 levels */
    big = json_object();
    for (int i = 0; i != 50000; ++i) {
        snprintf(key, sizeof(key), "k%d", i);
        json_object_set_new(big, key, json_integer(i));
    }
    api_refused(fx->db, CPH_API_POST, NULL, json_pack("{s:s, s:[], s:o}", "name", "t", "targets", "policies", big), NULL);
    api_refused(fx->db, CPH_API_POST, NULL, parse("{\"name\":\"t\",\"targets\":[],\"policies\":{\"lb\":{\"policy\":[[[]]]}}}"),
                "/policies/lb/policy");
    api_refused(fx->db, CPH_API_POST, NULL,
                parse("{\"name\":\"t\",\"targets\":[],\"policies\":{\"health_check\":{\"path\":\"/h\",\"expected_statuses\":{}}}}"),
                "/policies/health_check/expected_statuses");

    /* nothing was written, nothing lost */
    assert_int_equal(cph_audit_count(fx->db), audits);
    after = get_service(fx->db, "s");
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    resp = call(fx->db, CPH_API_GET, "t", NULL, &status);
    assert_int_equal(status, 404);
    json_decref(resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test_setup_teardown(test_store_and_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
