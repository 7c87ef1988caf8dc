/*
 * policies_test: the control-plane side of the traffic policies (PROTOCOL.md section 5).
 *
 * - migrations/0006_policies.sql applies on a database that already has 0001-0005 and rows: every route gets
 *   policies {} and every rule rate_limits NULL (read back as null), and the columns' CHECKs hold.
 * - a route's "policies" and a rule's "rate_limits" round-trip through the stores with their defaults ({} and null),
 *   a PUT without them resets them, and a wrong type is {invalid} at /policies or /rate_limits; a bad limit inside a
 *   rule's list is refused with a path relative to the rule.
 * - snapbuild writes "gateway" from the settings with every member (redis null when unset), every route's
 *   "policies" as stored, and a rule's "rate_limits" only when it has its own list - exact canonical JSON - and a write
 *   carrying them passes the snapshot validator of the data planes.
 * - the gateway flag parsers of settings.c: --redis HOST:PORT[/DB], --login-rate RATE/PERIOD_S/BURST, integers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/db.h"
#include "controlplane/settings.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"

static int setup(void **state)
{
    return db_fixture_setup(state, "policies-test");
}

/* ---------------------------------------------------------------- helpers (all take the lock themselves) */

static json_t *build(cph_db_t *db)
{
    cph_error_t err;
    json_t *body;

    cph_db_lock(db);
    body = cph_snapbuild_body(db, &err);
    cph_db_unlock(db);
    if (body == NULL)
        fail_msg("snapbuild: %s %s", err.code, err.msg);
    return body;
}

static void assert_json(const json_t *v, const char *want)
{
    char *text = cph_json_canonical(v);

    if (text == NULL)
        fail_msg("nothing where %s was wanted", want);
    if (strcmp(text, want) != 0)
        fail_msg("\n got %s\nwant %s", text, want);
    free(text);
}

/* ---------------------------------------------------------------- migration */

static void test_migration_on_existing_0005(void **state)
{
    fixture_t *fx = *state;
    char mig[128], path[128];
    cph_error_t err;
    cph_db_t *db;

    snprintf(mig, sizeof(mig), "%s/mig", fx->dir);
    snprintf(path, sizeof(path), "%s/old.db", fx->dir);
    assert_int_equal(mkdir(mig, 0700), 0);
    assert_int_equal(db_fixture_copy_migrations(mig, 1, 5), 5);
    assert_non_null(db = cph_db_open(path, mig, &err));
    sql(db, "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at) VALUES ('s', '[]', 100, 't', 't');"
            "INSERT INTO routes (name, service_id, paths, created_at, updated_at) VALUES ('r', 1, '[\"/r\"]', 't', 't');"
            "INSERT INTO endpoints (service_id, method, path, created_at, updated_at) VALUES (1, 'GET', '/x', 't', 't');");
    assert_true(sql_refused(db, "SELECT policies FROM routes"));
    cph_db_close(db);

    db_fixture_copy_migrations(mig, 6, 0); /* 0006 and every later one: the stores read their columns */
    assert_non_null(db = cph_db_open(path, mig, &err));
    assert_stored(db, &cph_store_route_ops, "r",
                  "{\"default_access\":\"authenticated\",\"hosts\":[],\"id\":1,\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                  "\"paths\":[\"/r\"],"
                  "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false}");
    assert_stored(db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"GET\",\"path\":\"/x\",\"public\":false,\"rate_limits\":null,\"roles\":[],"
                  "\"service\":\"s\",\"shadow\":false}");
    /* the CHECKs: policies a JSON object, rate_limits NULL or a JSON array */
    assert_true(sql_refused(db, "UPDATE routes SET policies = '[]'"));
    assert_true(sql_refused(db, "UPDATE routes SET policies = 'nope'"));
    assert_true(sql_refused(db, "UPDATE routes SET policies = NULL"));
    assert_true(sql_refused(db, "UPDATE endpoints SET rate_limits = '{}'"));
    assert_true(sql_refused(db, "UPDATE endpoints SET rate_limits = '[1'"));
    assert_false(sql_refused(db, "UPDATE endpoints SET rate_limits = '[]'"));
    assert_false(sql_refused(db, "UPDATE endpoints SET rate_limits = NULL"));
    cph_db_close(db);
}

/* ---------------------------------------------------------------- stores */

#define POLICIES                                                                                                                   \
    "{\"rate_limits\":[{\"name\":\"per-ip\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":5}],"                              \
    "\"ip_deny\":[\"10.1.2.3/32\"],\"https_redirect\":true}"
#define POLICIES_CANON                                                                                                             \
    "{\"https_redirect\":true,\"ip_deny\":[\"10.1.2.3/32\"],\"rate_limits\":[{\"burst\":5,\"key\":\"ip\",\"name\":\"per-ip\","     \
    "\"period_s\":1,\"rate\":10}]}"
#define LIMIT "{\"name\":\"slow\",\"key\":\"principal\",\"rate\":1,\"period_s\":60,\"burst\":0}"
#define LIMITS "[" LIMIT "]"
#define LIMITS_CANON "[{\"burst\":0,\"key\":\"principal\",\"name\":\"slow\",\"period_s\":60,\"rate\":1}]"

static void test_route_policies(void **state)
{
    fixture_t *fx = *state;
    int64_t id;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"s\",\"targets\":[]}");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"policies\":[]}", "invalid",
                 "/policies");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"policies\":null}", "invalid",
                 "/policies");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"policies\":\"{}\"}", "invalid",
                 "/policies");
    /* inside it, the schema's rules (proto/schema_policy.c), paths relative to the route */
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"policies\":{\"nope\":1}}",
                 "unknown_field", "/policies/nope");
    norm_refused(&cph_store_route_ops,
                 "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"policies\":{\"rate_limits\":[{\"name\":\"a\","
                 "\"key\":\"ip\",\"rate\":0,\"period_s\":1}]}}",
                 "invalid", "/policies/rate_limits/0/rate");
    /* absent: {} */
    id = written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"]}");
    assert_stored(fx->db, &cph_store_route_ops, "r",
                  "{\"default_access\":\"authenticated\",\"hosts\":[],\"id\":1,\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                  "\"paths\":[\"/x\"],"
                  "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false}");
    /* given: kept as sent */
    written(fx->db, &cph_store_route_ops, id, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"policies\":" POLICIES "}");
    assert_stored(fx->db, &cph_store_route_ops, "1",
                  "{\"default_access\":\"authenticated\",\"hosts\":[],\"id\":1,\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                  "\"paths\":[\"/x\"],"
                  "\"policies\":" POLICIES_CANON ",\"service\":\"s\",\"strip_prefix\":false}");
    /* a PUT without it: back to {} */
    written(fx->db, &cph_store_route_ops, id, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"]}");
    assert_stored(fx->db, &cph_store_route_ops, "r",
                  "{\"default_access\":\"authenticated\",\"hosts\":[],\"id\":1,\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                  "\"paths\":[\"/x\"],"
                  "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false}");
}

static void test_endpoint_rate_limits(void **state)
{
    fixture_t *fx = *state;
    int64_t id;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"s\",\"targets\":[]}");
    norm_refused(&cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":{}}", "invalid", "/rate_limits");
    norm_refused(&cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":\"none\"}", "invalid",
                 "/rate_limits");
    norm_refused(&cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":false}", "invalid", "/rate_limits");
    /* absent and null: inherit (null) */
    id = written(fx->db, &cph_store_endpoint_ops, 0, "{\"service\":\"s\",\"path\":\"/x\"}");
    assert_stored(fx->db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/x\",\"public\":false,\"rate_limits\":null,\"roles\":[],"
                  "\"service\":\"s\",\"shadow\":false}");
    /* [] (no limit) and a list are kept */
    written(fx->db, &cph_store_endpoint_ops, id, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":[]}");
    assert_stored(fx->db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/x\",\"public\":false,\"rate_limits\":[],\"roles\":[],"
                  "\"service\":\"s\",\"shadow\":false}");
    written(fx->db, &cph_store_endpoint_ops, id, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":" LIMITS "}");
    assert_stored(fx->db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/x\",\"public\":false,\"rate_limits\":" LIMITS_CANON
                  ",\"roles\":[],\"service\":\"s\",\"shadow\":false}");
    written(fx->db, &cph_store_endpoint_ops, id, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":null}");
    assert_stored(fx->db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/x\",\"public\":false,\"rate_limits\":null,\"roles\":[],"
                  "\"service\":\"s\",\"shadow\":false}");
    /* the items follow the schema's rules, errors relative to the rule */
    norm_refused(&cph_store_endpoint_ops,
                 "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":[{\"name\":\"a\",\"key\":\"ip\",\"rate\":0,\"period_s\":1,"
                 "\"burst\":0}]}",
                 "invalid", "/rate_limits/0/rate");
    norm_refused(&cph_store_endpoint_ops,
                 "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":[" LIMIT ",{\"name\":\"b\",\"key\":\"ip\","
                 "\"rate\":1,\"period_s\":1,\"burst\":0,\"x\":1}]}",
                 "unknown_field", "/rate_limits/1/x");
    norm_refused(&cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/x\",\"rate_limits\":[" LIMIT "," LIMIT "]}", "duplicate",
                 "/rate_limits/1/name");
}

/* ---------------------------------------------------------------- snapbuild */

#define GATEWAY_DEFAULT                                                                                                            \
    "{\"cache\":{\"max_bytes\":67108864},\"connections\":{\"max_per_ip\":0},"                                                                                         \
    "\"ip_allow\":[],\"ip_deny\":[],\"limits\":{\"max_body_bytes\":10485760,\"max_header_bytes\":65536,\"max_headers\":100,"       \
    "\"max_url_bytes\":8192},\"login_rate_limit\":{\"burst\":5,\"period_s\":60,\"rate\":10},\"redis\":null,"                       \
    "\"request_id\":{\"trust_incoming\":false},\"trusted_proxy_hops\":0}"

static void test_snapbuild(void **state)
{
    fixture_t *fx = *state;
    cph_gateway_settings_t g;
    json_t *body;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"s\",\"targets\":[]}");
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"b\",\"service\":\"s\",\"paths\":[\"/b\"],\"policies\":" POLICIES "}");
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/a\"]}");
    written(fx->db, &cph_store_endpoint_ops, 0, "{\"service\":\"s\",\"path\":\"/a\"}");
    written(fx->db, &cph_store_endpoint_ops, 0, "{\"service\":\"s\",\"path\":\"/b\",\"rate_limits\":" LIMITS "}");
    written(fx->db, &cph_store_endpoint_ops, 0, "{\"service\":\"s\",\"path\":\"/c\",\"rate_limits\":[]}");
    body = build(fx->db);
    assert_json(json_object_get(body, "gateway"), GATEWAY_DEFAULT);
    assert_json(json_object_get(body, "routes"),
                "[{\"default_access\":\"authenticated\",\"hosts\":[],\"methods\":[],\"name\":\"a\",\"paths\":[\"/a\"],"
                "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false},{\"default_access\":\"authenticated\",\"hosts\":[],"
                "\"methods\":[],\"name\":\"b\",\"paths\":[\"/b\"],\"policies\":" POLICIES_CANON ",\"service\":\"s\","
                "\"strip_prefix\":false}]");
    assert_json(
        json_object_get(body, "endpoints"),
        "[{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/a\",\"public\":false,\"roles\":[],\"service\":\"s\","
        "\"shadow\":false},{\"groups\":[],\"id\":2,\"method\":\"*\",\"path\":\"/b\",\"public\":false,\"rate_limits\":" LIMITS_CANON
        ",\"roles\":[],\"service\":\"s\",\"shadow\":false},{\"groups\":[],\"id\":3,\"method\":\"*\",\"path\":\"/c\","
        "\"public\":false,\"rate_limits\":[],\"roles\":[],\"service\":\"s\",\"shadow\":false}]");
    json_decref(body);

    /* the gateway section follows the settings, every member */
    cph_settings_gateway_defaults(&g);
    assert_int_equal(cph_settings_parse_redis("[::1]:6380/3", &g), 0);
    assert_int_equal(cph_settings_parse_login_rate("100/1/0", &g), 0);
    assert_int_equal(cph_settings_parse_cache_max_bytes("0", &g), 0); /* caching off */
    g.redis_timeout_ms = 250;
    g.trusted_proxy_hops = 2;
    g.trust_request_id = 1;
    g.max_connections_per_ip = 64;
    cph_settings_set_gateway(&g);
    body = build(fx->db);
    assert_json(json_object_get(body, "gateway"),
                "{\"cache\":{\"max_bytes\":0},\"connections\":{\"max_per_ip\":64},"
                "\"ip_allow\":[],\"ip_deny\":[],\"limits\":{\"max_body_bytes\":10485760,\"max_header_bytes\":65536,"
                "\"max_headers\":100,\"max_url_bytes\":8192},\"login_rate_limit\":{\"burst\":0,\"period_s\":1,\"rate\":100},"
                "\"redis\":{\"db\":3,\"host\":\"::1\",\"port\":6380,\"timeout_ms\":250},"
                "\"request_id\":{\"trust_incoming\":true},\"trusted_proxy_hops\":2}");
    json_decref(body);
    /* and a write with these settings passes the data planes' validator */
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"c\",\"service\":\"s\",\"paths\":[\"/c\"]}");
    cph_settings_gateway_defaults(&g);
    cph_settings_set_gateway(&g);
}

/* ---------------------------------------------------------------- flag parsers */

static void test_parse_redis(void **state)
{
    static const char *const BAD[] = {
        "",
        "localhost",
        "localhost:",
        ":6379",
        "localhost:0",
        "localhost:65536",
        "localhost:6379/",
        "localhost:6379/16",
        "localhost:6379/-1",
        "localhost:+1",
        "localhost: 1",
        "localhost:6379/0/1",
        "::1:6379",
        "[::1:6379",
        "[::g]:6379",
        "[]:6379",
        "1.2.3:6379",
        "256.1.1.1:6379",
        "-redis:6379",
        "redis-:6379",
        "re dis:6379",
        "re_dis:6379",
        "a..b:6379",
        "redis.:6379",
        "localhost:6379x",
        "localhost:99999999999999999999",
    };
    cph_gateway_settings_t g;
    char longname[300];

    (void)state;
    cph_settings_gateway_defaults(&g);
    assert_string_equal(g.redis_host, "");
    assert_int_equal(cph_settings_parse_redis("127.0.0.1:6379", &g), 0);
    assert_string_equal(g.redis_host, "127.0.0.1");
    assert_int_equal(g.redis_port, 6379);
    assert_int_equal(g.redis_db, 0);
    assert_int_equal(cph_settings_parse_redis("redis.internal-1.example:1/15", &g), 0);
    assert_string_equal(g.redis_host, "redis.internal-1.example");
    assert_int_equal(g.redis_port, 1);
    assert_int_equal(g.redis_db, 15);
    assert_int_equal(cph_settings_parse_redis("[2001:db8::1]:65535/0", &g), 0);
    assert_string_equal(g.redis_host, "2001:db8::1");
    assert_int_equal(g.redis_port, 65535);
    assert_int_equal(g.redis_db, 0);
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); ++i)
        if (cph_settings_parse_redis(BAD[i], &g) == 0)
            fail_msg("accepted --redis %s", BAD[i]);
    /* a refused value leaves g as it was */
    assert_string_equal(g.redis_host, "2001:db8::1");
    assert_int_equal(g.redis_port, 65535);
    /* a DNS name of 63-byte labels: at most 246 bytes */
    memset(longname, 'a', sizeof(longname));
    for (size_t i = 63; i < sizeof(longname); i += 64)
        longname[i] = '.';
    memcpy(longname + 246, ":1", 3);
    assert_int_equal(cph_settings_parse_redis(longname, &g), 0);
    memcpy(longname + 246, "a:1", 4);
    assert_int_equal(cph_settings_parse_redis(longname, &g), -1);
}

static void test_parse_login_rate(void **state)
{
    static const char *const BAD[] = {"",          "10",     "10/60",      "10/60/",   "/60/5",          "10//5",
                                      "0/60/5",    "10/0/5", "10/86401/5", "10/60/-1", "1000000001/1/0", "1/1/1000000001",
                                      "10/60/5/1", "a/60/5", " 10/60/5",   "10/60/5 "};
    cph_gateway_settings_t g;

    (void)state;
    cph_settings_gateway_defaults(&g);
    assert_int_equal(g.login_rate, 10);
    assert_int_equal(g.login_period_s, 60);
    assert_int_equal(g.login_burst, 5);
    assert_int_equal(cph_settings_parse_login_rate("1000000000/86400/1000000000", &g), 0);
    assert_int_equal(g.login_rate, 1000000000);
    assert_int_equal(g.login_period_s, 86400);
    assert_int_equal(g.login_burst, 1000000000);
    assert_int_equal(cph_settings_parse_login_rate("1/1/0", &g), 0);
    assert_int_equal(g.login_rate, 1);
    assert_int_equal(g.login_period_s, 1);
    assert_int_equal(g.login_burst, 0);
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); ++i)
        if (cph_settings_parse_login_rate(BAD[i], &g) == 0)
            fail_msg("accepted --login-rate %s", BAD[i]);
    assert_int_equal(g.login_rate, 1);
}

static void test_parse_long(void **state)
{
    long v = 42;

    (void)state;
    assert_int_equal(cph_settings_parse_long("0", 0, 8, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cph_settings_parse_long("8", 0, 8, &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(cph_settings_parse_long("9", 0, 8, &v), -1);
    assert_int_equal(cph_settings_parse_long("-1", -5, 8, &v), -1);
    assert_int_equal(cph_settings_parse_long("+1", 0, 8, &v), -1);
    assert_int_equal(cph_settings_parse_long("1 ", 0, 8, &v), -1);
    assert_int_equal(cph_settings_parse_long("", 0, 8, &v), -1);
    assert_int_equal(cph_settings_parse_long(NULL, 0, 8, &v), -1);
    assert_int_equal(cph_settings_parse_long("10000", 1, 10000, &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(cph_settings_parse_long("10001", 1, 10000, &v), -1);
    assert_int_equal(v, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_on_existing_0005, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_rate_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapbuild, setup, teardown),
        cmocka_unit_test(test_parse_redis),
        cmocka_unit_test(test_parse_login_rate),
        cmocka_unit_test(test_parse_long),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
