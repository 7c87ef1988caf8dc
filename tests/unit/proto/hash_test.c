/*
 * hash_test: the canonical serialisation and the snapshot hash. The fixed vectors were computed outside this code
 * (`printf '%s' '<canonical json>' | sha256sum`), so a change in key order, escaping or number spelling breaks them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proto/proto.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);

    if (v == NULL)
        fail_msg("test JSON does not parse: %s", jerr.text);
    return v;
}

static void check_vector(const char *input, const char *canonical, const char *hash)
{
    json_t *v = parse(input);
    char *c = cph_json_canonical(v), h[CPH_HASH_SIZE];

    assert_non_null(c);
    assert_string_equal(c, canonical);
    assert_int_equal(cph_snapshot_hash(v, h), 0);
    assert_string_equal(h, hash);
    free(c);
    json_decref(v);
}

static void test_fixed_vectors(void **state)
{
    (void)state;
    /* the example body of PROTOCOL.md section 5, as written there (keys unsorted, with whitespace) */
    check_vector(
        "{\n  \"services\": [\n    {\"name\": \"demo\", \"targets\": [{\"url\": \"http://127.0.0.1:9000\", \"weight\": 1}], "
        "\"timeout_ms\": 60000}\n  ],\n  \"routes\": [\n    {\"name\": \"demo\", \"service\": \"demo\", \"paths\": [\"/demo\"], "
        "\"hosts\": [], \"methods\": [], \"strip_prefix\": true}\n  ]\n}\n",
        "{\"routes\":[{\"hosts\":[],\"methods\":[],\"name\":\"demo\",\"paths\":[\"/demo\"],\"service\":\"demo\",\"strip_"
        "prefix\":true}],\"services\":[{\"name\":\"demo\",\"targets\":[{\"url\":\"http://127.0.0.1:9000\",\"weight\":1}],"
        "\"timeout_ms\":60000}]}",
        "sha256:7d344a74a0b726518baf0453e14c402bfe6f6eb32321e8021e89b62d53cf1f77");
    /* UTF-8 kept raw, '/' not escaped, quotes and control bytes escaped, keys sorted by byte value, big integers */
    check_vector("{\"c\":{\"z\":true,\"Z\":false,\"\":null},\"b\":\"\\u00e9\\/\\\"\\n\\u0001\",\"a\":[3,-1,0,9223372036854775807]}",
                 "{\"a\":[3,-1,0,9223372036854775807],\"b\":\"\xc3\xa9/\\\"\\n\\u0001\",\"c\":{\"\":null,\"Z\":false,\"z\":true}}",
                 "sha256:efbd9c4f1b71ed72f6a20c5bb2652a214f09fb089cda1bb4fe14de666df51b83");
    check_vector("{\"services\":[],\"routes\":[]}", "{\"routes\":[],\"services\":[]}",
                 "sha256:eeab4452aba2a22197f63943ed14488063db88632933f9845c1560d9f9e29612");
}

static void test_key_order_does_not_matter(void **state)
{
    json_t *a = parse("{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":2}]}],\"routes\":[]}");
    json_t *b = parse("{ \"routes\" : [ ] , \"services\" : [ { \"targets\" : [ { \"weight\" : 2 , \"url\" : \"http://a:1\" } ] ,"
                      " \"name\" : \"s\" } ] }");
    json_t *c = json_object(), *s = json_object();
    char ha[CPH_HASH_SIZE], hb[CPH_HASH_SIZE], hc[CPH_HASH_SIZE];

    (void)state;
    /* the same body built by code, members inserted in yet another order */
    json_object_set_new(s, "targets", json_pack("[{s:I, s:s}]", "weight", (json_int_t)2, "url", "http://a:1"));
    json_object_set_new(s, "name", json_string("s"));
    json_object_set_new(c, "routes", json_array());
    json_object_set_new(c, "services", json_pack("[o]", s));
    assert_int_equal(cph_snapshot_hash(a, ha), 0);
    assert_int_equal(cph_snapshot_hash(b, hb), 0);
    assert_int_equal(cph_snapshot_hash(c, hc), 0);
    assert_string_equal(ha, hb);
    assert_string_equal(ha, hc);
    json_decref(a), json_decref(b), json_decref(c);
}

static void test_content_changes_hash(void **state)
{
    static const char *bodies[] = {
        "{\"a\":[1,2]}", "{\"a\":[2,1]}", "{\"a\":[1,2,null]}", "{\"a\":\"[1,2]\"}", "{\"a\":[1,2],\"b\":null}", "{\"A\":[1,2]}",
    };
    char h[6][CPH_HASH_SIZE];
    size_t i, j;

    (void)state;
    for (i = 0; i != 6; ++i) {
        json_t *v = parse(bodies[i]);
        assert_int_equal(cph_snapshot_hash(v, h[i]), 0);
        assert_int_equal(strlen(h[i]), 71);
        assert_memory_equal(h[i], "sha256:", 7);
        for (j = 7; j != 71; ++j)
            assert_non_null(strchr("0123456789abcdef", h[i][j]));
        for (j = 0; j != i; ++j)
            assert_string_not_equal(h[i], h[j]);
        json_decref(v);
    }
}

static void test_reals_refused(void **state)
{
    static const char *bodies[] = {
        "1.0", "{\"a\":0.5}", "{\"a\":[1,2,{\"b\":[1e3]}]}", "[[[[[[[[-0.0]]]]]]]]", "{\"services\":[],\"routes\":[],\"x\":1E2}",
    };
    char h[CPH_HASH_SIZE];
    size_t i;

    (void)state;
    for (i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i) {
        json_t *v = parse(bodies[i]);
        assert_null(cph_json_canonical(v));
        assert_int_equal(cph_snapshot_hash(v, h), -1);
        json_decref(v);
    }
    assert_null(cph_json_canonical(NULL));
    assert_int_equal(cph_snapshot_hash(NULL, h), -1);
}

static void test_cycles_and_depth(void **state)
{
    json_t *a = json_array(), *b = json_array(), *deep = json_array(), *cur = deep;
    char h[CPH_HASH_SIZE], *c;
    size_t i;

    (void)state;
    /* a value built in memory can be cyclic: refused, not a stack overflow */
    json_array_append(a, b);
    json_array_append(b, a);
    assert_null(cph_json_canonical(a));
    assert_int_equal(cph_snapshot_hash(a, h), -1);
    json_array_clear(b);
    json_decref(a), json_decref(b);
    /* deeper than any parsed document can be (jansson parses 2048 levels), still bounded */
    for (i = 0; i != 10000; ++i) {
        json_t *n = json_array();
        json_array_append_new(cur, n);
        cur = n;
    }
    assert_null(cph_json_canonical(deep));
    json_decref(deep);
    /* a legitimately nested value is fine */
    deep = cur = json_array();
    for (i = 0; i != 100; ++i) {
        json_t *n = json_array();
        json_array_append_new(cur, n);
        cur = n;
    }
    assert_non_null(c = cph_json_canonical(deep));
    assert_int_equal(strlen(c), 202);
    free(c);
    json_decref(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_vectors),        cmocka_unit_test(test_key_order_does_not_matter),
        cmocka_unit_test(test_content_changes_hash), cmocka_unit_test(test_reals_refused),
        cmocka_unit_test(test_cycles_and_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
