/*
 * snapshot_test: cph_snapshot_build validates then compiles into one arena (identity copied, services and routes
 * linked), refuses an invalid body with the JSON pointer of the offending value and leaks nothing, and the last of
 * several releases frees the snapshot (ASan reports a leak or a use after free).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/snapshot.h"

static const char *EPOCH = "0123456789abcdef0123456789abcdef";

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (v == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    return v;
}

static cph_snapshot_t *build(const char *text, cph_error_t *err)
{
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = load(text);

    cph_snapshot_hash(body, hash);
    cph_snapshot_t *snap = cph_snapshot_build(body, EPOCH, 9, hash, "cp", err);
    json_decref(body);
    return snap;
}

static void test_valid_body_compiles(void **state)
{
    (void)state;
    cph_error_t err;
    cph_snapshot_t *snap = build("{\"services\":[{\"name\":\"a\",\"targets\":[{\"url\":\"http://127.0.0.1:9000\"}],"
                                 "\"timeout_ms\":1500},{\"name\":\"b\",\"targets\":[]}],"
                                 "\"routes\":[{\"name\":\"ra\",\"service\":\"a\",\"paths\":[\"/a\",\"/x/\"]},"
                                 "{\"name\":\"rb\",\"service\":\"b\",\"paths\":[\"/b\"],\"methods\":[\"GET\"]}]}",
                                 &err);

    assert_non_null(snap);
    assert_int_equal(atomic_load(&snap->refcnt), 1);
    assert_string_equal(snap->epoch, EPOCH);
    assert_int_equal(snap->version, 9);
    assert_memory_equal(snap->hash, "sha256:", 7);
    assert_int_equal(strlen(snap->hash), 71);
    assert_string_equal(snap->source, "cp");
    assert_int_equal(snap->num_services, 2);
    assert_string_equal(snap->services[0].name, "a");
    assert_int_equal(snap->services[0].num_targets, 1);
    assert_int_equal(snap->services[0].timeout_ms, 1500);
    assert_int_equal(snap->services[1].num_targets, 0);
    assert_int_equal(snap->num_routes, 2);
    assert_string_equal(snap->routes[0].name, "ra");
    assert_ptr_equal(snap->routes[0].service, &snap->services[0]);
    assert_int_equal(snap->routes[0].num_paths, 2);
    assert_ptr_equal(snap->routes[1].service, &snap->services[1]);
    assert_int_not_equal(snap->routes[1].methods, 0);
    assert_non_null(snap->router);
    assert_true(snap->arena.bytes > 0);
    cph_snapshot_release(snap);
}

static void expect_invalid(const char *text, const char *code, const char *path)
{
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    assert_null(build(text, &err));
    if (strcmp(err.code, code) != 0 || strcmp(err.path, path) != 0)
        fail_msg("%s: expected %s at '%s', got %s at '%s' (%s)", text, code, path, err.code, err.path, err.msg);
}

static void test_invalid_body_is_refused_with_path(void **state)
{
    (void)state;
    expect_invalid("{\"services\":[],\"routes\":[{\"name\":\"r\",\"service\":\"nope\",\"paths\":[\"/r\"]}]}", "unknown_service",
                   "/routes/0/service");
    expect_invalid("{\"services\":[{\"name\":\"a\",\"targets\":[{\"url\":\"ftp://x:1\"}]}],\"routes\":[]}", "invalid",
                   "/services/0/targets/0/url");
    expect_invalid("{\"services\":[],\"routes\":[],\"extra\":1}", "unknown_field", "/extra");
    expect_invalid("{\"services\":[{\"name\":\"a\",\"targets\":[],\"timeout_ms\":1.5}],\"routes\":[]}", "invalid",
                   "/services/0/timeout_ms");
    expect_invalid("[]", "invalid", "");
}

static void test_identity_too_long_is_refused(void **state)
{
    (void)state;
    cph_error_t err;
    char epoch[100];
    json_t *body = load("{\"services\":[],\"routes\":[]}");

    memset(epoch, 'e', sizeof(epoch) - 1);
    epoch[sizeof(epoch) - 1] = '\0';
    assert_null(cph_snapshot_build(body, epoch, 1, "sha256:x", "cp", &err));
    assert_string_equal(err.code, "invalid");
    json_decref(body);
}

static void test_refcount_frees_on_last_release(void **state)
{
    (void)state;
    cph_error_t err;
    cph_snapshot_t *snap = build("{\"services\":[],\"routes\":[]}", &err);

    assert_non_null(snap);
    assert_int_equal(snap->num_routes, 0);
    cph_snapshot_retain(snap);
    cph_snapshot_retain(snap);
    assert_int_equal(atomic_load(&snap->refcnt), 3);
    cph_snapshot_release(snap);
    cph_snapshot_release(snap);
    assert_int_equal(atomic_load(&snap->refcnt), 1); /* still alive: readable without an ASan report */
    cph_snapshot_release(snap);                      /* freed: LeakSanitizer would report otherwise */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_body_compiles),
        cmocka_unit_test(test_invalid_body_is_refused_with_path),
        cmocka_unit_test(test_identity_too_long_is_refused),
        cmocka_unit_test(test_refcount_frees_on_last_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
