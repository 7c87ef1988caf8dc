/*
 * schema_cache_test: the response-cache members of the snapshot schema (PROTOCOL.md section 5) and the
 * purge message (PROTOCOL.md section 3).
 *
 * - route "policies.cache": every member at its bounds and one past them, reals, strings, null, unknown members, the
 *   order of its checks, for the route alone (cph_schema_validate_route) and inside a body (pointer under /routes/0);
 * - top-level "gateway.cache": max_bytes 0..17179869184, backend "memory" | "redis" (which needs a non-null
 *   gateway.redis), the same hostile values, and its place after the other gateway members;
 * - the purge message: its builder, cph_msg_type, and cph_msg_check on every hostile route and prefix (missing, wrong
 *   type, empty, too long, not starting with '/', control bytes, a 1 MB string).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proto/proto.h"
#include "schema_cases.h"

/* ---------------------------------------------------------------- policies.cache */

#define C "/policies/cache"

/* Validates a route whose policies hold {"cache": <c->json>} alone and inside a body. */
static void check_route_cache(const case_t *c, const char *other_policies)
{
    char text[1024];
    json_t *route;

    snprintf(text, sizeof(text), "{\"name\":\"r\",\"service\":\"orders\",\"paths\":[\"/api\"],\"policies\":{%s\"cache\":%s}}",
             other_policies, c->json);
    route = parse(text);
    check_route(route, text, c->code, c->path);
    json_decref(route);
}

static void test_route_cache(void **state)
{
    static const case_t cases[] = {
        {"{}", NULL, NULL},
        {"{\"ttl_s\":0,\"max_ttl_s\":86400,\"max_body_bytes\":1048576,\"share_authenticated\":false}", NULL, NULL},
        {"{\"ttl_s\":31536000,\"max_ttl_s\":31536000,\"max_body_bytes\":67108864,\"share_authenticated\":true}", NULL, NULL},
        {"{\"ttl_s\":60,\"max_ttl_s\":1,\"max_body_bytes\":1}", NULL, NULL}, /* max_ttl_s caps ttl_s: no cross rule */
        /* the object */
        {"null", "invalid", C},
        {"[]", "invalid", C},
        {"true", "invalid", C},
        {"\"{}\"", "invalid", C},
        {"1", "invalid", C},
        {"1.5", "invalid", C},
        {"{\"ttl\":1}", "unknown_field", C "/ttl"},
        {"{\"max_bytes\":1}", "unknown_field", C "/max_bytes"}, /* the gateway's member, not a route's */
        {"{\"TTL_S\":1}", "unknown_field", C "/TTL_S"},
        /* ttl_s: 0..31536000 */
        {"{\"ttl_s\":-1}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":31536001}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":9223372036854775807}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":-9223372036854775808}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":60.0}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":1e3}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":\"60\"}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":null}", "invalid", C "/ttl_s"},
        {"{\"ttl_s\":true}", "invalid", C "/ttl_s"},
        /* max_ttl_s: 1..31536000 */
        {"{\"max_ttl_s\":0}", "invalid", C "/max_ttl_s"},
        {"{\"max_ttl_s\":31536001}", "invalid", C "/max_ttl_s"},
        {"{\"max_ttl_s\":86400.5}", "invalid", C "/max_ttl_s"},
        {"{\"max_ttl_s\":[]}", "invalid", C "/max_ttl_s"},
        /* max_body_bytes: 1..67108864 */
        {"{\"max_body_bytes\":0}", "invalid", C "/max_body_bytes"},
        {"{\"max_body_bytes\":67108865}", "invalid", C "/max_body_bytes"},
        {"{\"max_body_bytes\":1048576.0}", "invalid", C "/max_body_bytes"},
        {"{\"max_body_bytes\":{}}", "invalid", C "/max_body_bytes"},
        /* share_authenticated: a boolean */
        {"{\"share_authenticated\":1}", "invalid", C "/share_authenticated"},
        {"{\"share_authenticated\":\"true\"}", "invalid", C "/share_authenticated"},
        {"{\"share_authenticated\":null}", "invalid", C "/share_authenticated"},
        {"{\"share_authenticated\":0.0}", "invalid", C "/share_authenticated"},
        /* unknown members first, then table order whatever the document order */
        {"{\"share_authenticated\":1,\"ttl_s\":-1,\"zzz\":0}", "unknown_field", C "/zzz"},
        {"{\"share_authenticated\":1,\"max_body_bytes\":0,\"max_ttl_s\":0,\"ttl_s\":-1}", "invalid", C "/ttl_s"},
        {"{\"share_authenticated\":1,\"max_body_bytes\":0,\"max_ttl_s\":0}", "invalid", C "/max_ttl_s"},
        {"{\"share_authenticated\":1,\"max_body_bytes\":0}", "invalid", C "/max_body_bytes"},
    };

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i)
        check_route_cache(&cases[i], "");
}

/* "cache" is the last member of "policies" checked: an earlier bad member is reported first. */
static void test_route_cache_order(void **state)
{
    static const case_t bad_cache = {"{\"ttl_s\":-1}", "invalid", "/policies/https_redirect"};
    static const case_t bad_ip = {"{}", "invalid", "/policies/ip_deny/0"};
    static const case_t only_cache = {"{\"ttl_s\":-1}", "invalid", C "/ttl_s"};

    (void)state;
    check_route_cache(&bad_cache, "\"https_redirect\":1,");
    check_route_cache(&bad_ip, "\"ip_deny\":[\"x\"],");
    check_route_cache(&only_cache, "\"https_redirect\":true,\"ip_deny\":[],\"rate_limits\":[],");
}

/* ---------------------------------------------------------------- gateway.cache */

#define G "/gateway/cache"

static void test_gateway_cache(void **state)
{
    static const case_t cases[] = {
        {"", NULL, NULL},
        {"\"cache\":{}", NULL, NULL},
        {"\"cache\":{\"max_bytes\":0}", NULL, NULL},
        {"\"cache\":{\"max_bytes\":67108864}", NULL, NULL},
        {"\"cache\":{\"max_bytes\":17179869184}", NULL, NULL},
        {"\"trusted_proxy_hops\":0,\"ip_allow\":[],\"ip_deny\":[],\"limits\":{},\"redis\":null,\"login_rate_limit\":{},"
         "\"cache\":{\"max_bytes\":1}",
         NULL, NULL},
        {"\"cache\":null", "invalid", G},
        {"\"cache\":[]", "invalid", G},
        {"\"cache\":67108864", "invalid", G},
        {"\"cache\":{\"max_bytes\":1,\"ttl_s\":1}", "unknown_field", G "/ttl_s"},
        {"\"cache\":{\"max_bytes\":-1}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"max_bytes\":17179869185}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"max_bytes\":9223372036854775807}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"max_bytes\":67108864.0}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"max_bytes\":\"64MiB\"}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"max_bytes\":null}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"max_bytes\":false}", "invalid", G "/max_bytes"},
        /* backend: "memory" or "redis", and "redis" needs a non-null gateway.redis */
        {"\"cache\":{\"backend\":\"memory\"}", NULL, NULL},
        {"\"cache\":{\"max_bytes\":0,\"backend\":\"memory\"}", NULL, NULL},
        {"\"redis\":{\"host\":\"127.0.0.1\"},\"cache\":{\"backend\":\"redis\"}", NULL, NULL},
        {"\"redis\":{\"host\":\"h\",\"port\":6380},\"cache\":{\"max_bytes\":0,\"backend\":\"redis\"}", NULL, NULL},
        {"\"redis\":{\"host\":\"h\"},\"cache\":{\"backend\":\"memory\"}", NULL, NULL},
        {"\"cache\":{\"backend\":\"redis\"}", "invalid", G "/backend"},
        {"\"redis\":null,\"cache\":{\"backend\":\"redis\"}", "invalid", G "/backend"},
        {"\"redis\":null,\"cache\":{\"max_bytes\":0,\"backend\":\"redis\"}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":\"Redis\"}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":\"MEMORY\"}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":\"local\"}", "invalid", G "/backend"}, /* a rate limit's backend, not the cache's */
        {"\"cache\":{\"backend\":\"memcached\"}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":\"\"}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":\"memory \"}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":null}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":1}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":1.5}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":true}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":[\"memory\"]}", "invalid", G "/backend"},
        {"\"cache\":{\"backend\":{\"type\":\"redis\"}}", "invalid", G "/backend"},
        /* max_bytes before backend; a bad redis before the cache */
        {"\"cache\":{\"backend\":\"redis\",\"max_bytes\":-1}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"backend\":\"x\",\"max_bytes\":-1}", "invalid", G "/max_bytes"},
        {"\"cache\":{\"backend\":\"redis\",\"zz\":0}", "unknown_field", G "/zz"},
        {"\"redis\":{\"host\":\"\"},\"cache\":{\"backend\":\"redis\"}", "invalid", "/gateway/redis/host"},
        {"\"redis\":[],\"cache\":{\"backend\":\"redis\"}", "invalid", "/gateway/redis"},
        /* unknown gateway members first; then cache after login_rate_limit */
        {"\"cache\":{\"max_bytes\":-1},\"caches\":{}", "unknown_field", "/gateway/caches"},
        {"\"cache\":{\"max_bytes\":-1},\"login_rate_limit\":{\"rate\":0}", "invalid", "/gateway/login_rate_limit/rate"},
    };

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char text[1024];
        snprintf(text, sizeof(text), "{\"services\":[],\"routes\":[]%s%s%s}", cases[i].json[0] != '\0' ? ",\"gateway\":{" : "",
                 cases[i].json, cases[i].json[0] != '\0' ? "}" : "");
        check_body_text(text, cases[i].code, cases[i].path);
    }
}

/* ---------------------------------------------------------------- the purge message */

static void test_purge_builder(void **state)
{
    json_t *m = cph_msg_purge("orders", "/img/"), *all = cph_msg_purge("orders", NULL);
    cph_error_t err;
    char *text;
    size_t len;

    (void)state;
    assert_int_equal(cph_msg_type(m), CPH_MSG_PURGE);
    assert_int_equal(cph_msg_check(m, &err), 0);
    assert_int_equal(cph_msg_check(all, &err), 0);
    assert_string_equal(json_string_value(json_object_get(m, "route")), "orders");
    assert_string_equal(json_string_value(json_object_get(m, "prefix")), "/img/");
    assert_true(json_is_null(json_object_get(all, "prefix"))); /* written, as null: "every entry of the route" */
    text = cph_json_canonical(all);
    assert_string_equal(text, "{\"prefix\":null,\"route\":\"orders\",\"type\":\"purge\"}");
    free(text);
    /* it frames like any message */
    assert_int_equal(cph_frame_encode(m, CPH_FRAME_MAX_DEFAULT, &text, &len, &err), 0);
    assert_int_equal(len, CPH_FRAME_HEADER_SIZE + strlen("{\"type\":\"purge\",\"route\":\"orders\",\"prefix\":\"/img/\"}"));
    free(text);
    json_decref(m);
    json_decref(all);
}

/* {"type":"purge","route":"orders","prefix":"/a"} with member key set to v (stolen; NULL removes it). */
static int check_purge_with(const char *key, json_t *v, cph_error_t *err)
{
    json_t *m = cph_msg_purge("orders", "/a");
    int ret;

    if (v != NULL)
        json_object_set_new(m, key, v);
    else
        json_object_del(m, key);
    memset(err, 0, sizeof(*err));
    ret = cph_msg_check(m, err);
    json_decref(m);
    return ret;
}

static void expect_bad(const char *key, json_t *v, const char *code, const char *path)
{
    cph_error_t err;
    char *dump = v != NULL ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

    if (check_purge_with(key, v, &err) != -1)
        fail_msg("purge with %s = %.80s accepted", key, dump != NULL ? dump : "(absent)");
    if (strcmp(err.code, code) != 0 || strcmp(err.path, path) != 0)
        fail_msg("purge with %s = %.80s: expected %s at %s, got %s at %s", key, dump != NULL ? dump : "(absent)", code, path,
                 err.code, err.path);
    free(dump);
}

static void expect_good(const char *key, json_t *v)
{
    cph_error_t err;

    if (check_purge_with(key, v, &err) != 0)
        fail_msg("purge with %s refused: %s at %s: %s", key, err.code, err.path, err.msg);
}

static void test_purge_check(void **state)
{
    char *big = malloc(1024 * 1024 + 2), name65[66], prefix1025[1026];

    (void)state;
    memset(name65, 'a', 65), name65[65] = '\0';
    prefix1025[0] = '/', memset(prefix1025 + 1, 'p', 1024), prefix1025[1025] = '\0';
    big[0] = '/', memset(big + 1, 'x', 1024 * 1024), big[1024 * 1024 + 1] = '\0';
    /* good ones */
    expect_good("prefix", json_null());
    expect_good("prefix", json_string("/"));
    expect_good("prefix", json_stringn(prefix1025, 1024)); /* the cap */
    expect_good("route", json_stringn(name65, 64));
    expect_good("route", json_string("A.b_c-9"));
    expect_good("extra", json_real(1.5)); /* unknown members are ignored */
    /* route */
    expect_bad("route", NULL, "missing_field", "/route");
    expect_bad("route", json_null(), "invalid", "/route");
    expect_bad("route", json_integer(1), "invalid", "/route");
    expect_bad("route", json_string(""), "invalid", "/route");
    expect_bad("route", json_string(name65), "invalid", "/route");
    expect_bad("route", json_string("a b"), "invalid", "/route");
    expect_bad("route", json_string("a/b"), "invalid", "/route");
    expect_bad("route", json_string("caf\xc3\xa9"), "invalid", "/route");
    expect_bad("route", json_stringn("a\0b", 3), "invalid", "/route");
    expect_bad("route", json_string(big), "invalid", "/route");
    /* prefix */
    expect_bad("prefix", NULL, "missing_field", "/prefix");
    expect_bad("prefix", json_string(""), "invalid", "/prefix");
    expect_bad("prefix", json_string("img/"), "invalid", "/prefix");
    expect_bad("prefix", json_string(prefix1025), "invalid", "/prefix");
    expect_bad("prefix", json_string(big), "invalid", "/prefix");
    expect_bad("prefix", json_string("/a\nb"), "invalid", "/prefix");
    expect_bad("prefix", json_string("/a\x7f"), "invalid", "/prefix");
    expect_bad("prefix", json_stringn("/a\0b", 4), "invalid", "/prefix");
    expect_bad("prefix", json_integer(0), "invalid", "/prefix");
    expect_bad("prefix", json_real(1.0), "invalid", "/prefix");
    expect_bad("prefix", json_false(), "invalid", "/prefix");
    expect_bad("prefix", json_pack("[s]", "/a"), "invalid", "/prefix");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_cache),   cmocka_unit_test(test_route_cache_order), cmocka_unit_test(test_gateway_cache),
        cmocka_unit_test(test_purge_builder), cmocka_unit_test(test_purge_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
