/*
 * store_test: CRUD on services and routes through the stores and the write path - normalisation (defaults,
 * read-only fields, schema errors with paths), lookup by id or name, conflicts on names, the foreign key that keeps a
 * service in use, 404s, and the API representation of what is stored.
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
#include "controlplane/db.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"

/* One write: op 'c' create, 'u' update (key), 'd' delete (key) of a service ('s') or route ('r'). */
typedef struct st_op_t {
    char kind, op;
    const char *key;
    json_t *obj;
} op_t;

static int setup(void **state)
{
    return db_fixture_setup(state, "store-test");
}

static int on_op(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    op_t *o = p;
    int64_t id = 0;
    json_t *cur = NULL;
    int ret;

    change->action = "test";
    change->entity_type = o->kind == 's' ? "service" : "route";
    if (o->op != 'c') {
        cur = o->kind == 's' ? cph_store_service_get(db, o->key, err) : cph_store_route_get(db, o->key, err);
        if (cur == NULL)
            return -1;
        id = json_integer_value(json_object_get(cur, "id"));
        json_decref(cur);
    }
    if (o->op == 'c')
        ret = o->kind == 's' ? cph_store_service_insert(db, o->obj, &id, err) : cph_store_route_insert(db, o->obj, &id, err);
    else if (o->op == 'u')
        ret = o->kind == 's' ? cph_store_service_update(db, id, o->obj, err) : cph_store_route_update(db, id, o->obj, err);
    else
        ret = o->kind == 's' ? cph_store_service_delete(db, id, err) : cph_store_route_delete(db, id, err);
    change->entity_id = id;
    return ret;
}

/* Runs one write with a normalised copy of text; returns 0/-1 and leaves the error in err. */
static int run(cph_db_t *db, char kind, char op, const char *key, const char *text, cph_error_t *err)
{
    op_t o = {kind, op, key, NULL};
    uint64_t version;
    json_t *in = text != NULL ? parse(text) : NULL;
    int ret;

    if (in != NULL) {
        o.obj = kind == 's' ? cph_store_service_normalize(in, err) : cph_store_route_normalize(in, err);
        json_decref(in);
        assert_non_null(o.obj);
    }
    ret = cph_db_write(db, "test", on_op, &o, &version, err);
    json_decref(o.obj);
    return ret;
}

static void test_normalize(void **state)
{
    cph_error_t err;
    json_t *in = parse("{\"id\": 7, \"created_at\": \"x\", \"name\": \"a\", \"targets\": [{\"url\": \"http://h:1\"}]}");
    json_t *out = cph_store_service_normalize(in, &err), *bad;
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);

    (void)state;
    assert_string_equal(text, "{\"name\":\"a\",\"policies\":{},\"system\":null,\"targets\":[{\"url\":\"http://h:1\",\"weight\":1}],"
                              "\"timeout_ms\":60000}");
    free(text);
    json_decref(in);
    json_decref(out);
    in = parse("{\"name\": \"a\", \"targets\": [{\"url\": \"http://h:1\", \"weight\": 0}]}");
    assert_null(cph_store_service_normalize(in, &err));
    assert_string_equal(err.path, "/targets/0/weight");
    json_decref(in);
    in = parse("{\"name\": \"r\", \"service\": \"a\", \"paths\": [\"/x\"]}");
    out = cph_store_route_normalize(in, &err);
    text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"default_access\":\"authenticated\",\"hosts\":[],\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                              "\"paths\":[\"/x\"],"
                              "\"policies\":{},\"service\":\"a\",\"strip_prefix\":false}");
    free(text);
    json_decref(in);
    json_decref(out);
    bad = parse("{\"name\": \"r\", \"service\": \"a\", \"paths\": [\"/x\"], \"flavour\": 1}");
    assert_null(cph_store_route_normalize(bad, &err));
    assert_string_equal(err.code, "unknown_field");
    assert_string_equal(err.path, "/flavour");
    json_decref(bad);
    bad = json_string("x");
    assert_null(cph_store_service_normalize(bad, &err));
    json_decref(bad);
}

static void test_service_crud(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *s, *list;

    assert_int_equal(run(fx->db, 's', 'c', NULL, "{\"name\":\"b\",\"targets\":[{\"url\":\"http://h:1\"}]}", &err), 0);
    assert_int_equal(run(fx->db, 's', 'c', NULL, "{\"name\":\"a\",\"targets\":[],\"timeout_ms\":5}", &err), 0);
    assert_int_equal(run(fx->db, 's', 'c', NULL, "{\"name\":\"a\",\"targets\":[]}", &err), -1);
    assert_string_equal(err.code, "conflict");
    cph_db_lock(fx->db);
    list = cph_store_service_list(fx->db, &err);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")), "a");
    s = cph_store_service_get(fx->db, "1", &err); /* by id */
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "b");
    assert_int_equal(json_integer_value(json_object_get(s, "timeout_ms")), 60000);
    assert_non_null(json_object_get(s, "created_at"));
    json_decref(s);
    assert_null(cph_store_service_get(fx->db, "nope", &err));
    assert_string_equal(err.code, "not_found");
    assert_null(cph_store_service_get(fx->db, "999", &err));
    assert_string_equal(err.code, "not_found");
    cph_db_unlock(fx->db);
    json_decref(list);
    /* update renames, by name; renaming onto an existing name conflicts */
    assert_int_equal(run(fx->db, 's', 'u', "b", "{\"name\":\"c\",\"targets\":[]}", &err), 0);
    assert_int_equal(run(fx->db, 's', 'u', "c", "{\"name\":\"a\",\"targets\":[]}", &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_int_equal(run(fx->db, 's', 'd', "c", NULL, &err), 0);
    assert_int_equal(run(fx->db, 's', 'd', "c", NULL, &err), -1);
    assert_string_equal(err.code, "not_found");
}

static void test_digit_name_falls_back_to_name(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *s;

    assert_int_equal(run(fx->db, 's', 'c', NULL, "{\"name\":\"42\",\"targets\":[]}", &err), 0);
    cph_db_lock(fx->db);
    assert_non_null(s = cph_store_service_get(fx->db, "42", &err)); /* no id 42: found by name */
    assert_string_equal(json_string_value(json_object_get(s, "name")), "42");
    cph_db_unlock(fx->db);
    json_decref(s);
}

static void test_route_crud_and_service_in_use(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *r;

    assert_int_equal(run(fx->db, 's', 'c', NULL, "{\"name\":\"s\",\"targets\":[]}", &err), 0);
    assert_int_equal(run(fx->db, 'r', 'c', NULL, "{\"name\":\"r\",\"service\":\"nope\",\"paths\":[\"/x\"]}", &err), -1);
    assert_string_equal(err.code, "unknown_service");
    assert_string_equal(err.path, "/service");
    assert_int_equal(
        run(fx->db, 'r', 'c', NULL, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"strip_prefix\":true}", &err), 0);
    assert_int_equal(run(fx->db, 'r', 'c', NULL, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/y\"]}", &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_int_equal(run(fx->db, 's', 'd', "s", NULL, &err), -1);
    assert_string_equal(err.code, "conflict");
    /* renaming the service carries the route along */
    assert_int_equal(run(fx->db, 's', 'u', "s", "{\"name\":\"t\",\"targets\":[]}", &err), 0);
    cph_db_lock(fx->db);
    assert_non_null(r = cph_store_route_get(fx->db, "r", &err));
    cph_db_unlock(fx->db);
    assert_string_equal(json_string_value(json_object_get(r, "service")), "t");
    assert_true(json_is_true(json_object_get(r, "strip_prefix")));
    json_decref(r);
    assert_int_equal(run(fx->db, 'r', 'u', "r", "{\"name\":\"r\",\"service\":\"t\",\"paths\":[\"/z\"]}", &err), 0);
    assert_int_equal(run(fx->db, 'r', 'd', "r", NULL, &err), 0);
    assert_int_equal(run(fx->db, 'r', 'd', "r", NULL, &err), -1);
    assert_string_equal(err.code, "not_found");
    assert_int_equal(run(fx->db, 's', 'd', "t", NULL, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test_setup_teardown(test_service_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digit_name_falls_back_to_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_crud_and_service_in_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
