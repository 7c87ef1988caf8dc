/*
 * settings_test: the gateway-wide flags of settings.c that this round added, and what snapbuild writes for them.
 *
 * - --ip-allow / --ip-deny: a CIDR exactly as the snapshot schema wants it (IPv4 or IPv6, prefix without a leading
 *   zero, no host bit after the prefix; the message names the network meant), appended in order, capped per list.
 * - --max-body-bytes, --max-url-bytes, --max-headers, --max-header-bytes: the schema's ranges, bounds included.
 * - --cache-backend memory|redis (redis needs --redis), --ws-drain-grace-ms 0..3600000.
 * - cph_snapbuild_gateway writes them (the IP lists in order, gateway.limits, cache.backend and websocket only when
 *   not the defaults) and every such section passes the data planes' validator (cph_snapshot_validate).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "controlplane/settings.h"
#include "controlplane/snapbuild.h"
#include "proto/proto.h"

static cph_gateway_settings_t g;

static int setup(void **state)
{
    (void)state;
    cph_settings_gateway_defaults(&g);
    return 0;
}

static void test_cidr(void **state)
{
    static const char *const GOOD[] = {"10.0.0.0/8",      "127.0.0.1",           "127.0.0.1/32", "0.0.0.0/0",
                                       "192.168.1.0/24",  "2001:db8::/32",       "::1",          "::/0",
                                       "2001:db8::1/128", "::ffff:10.0.0.0/104", "fe80::/10"};
    static const char *const BAD[] = {"",
                                      "10.0.0.0/",
                                      "10.0.0.0/33",
                                      "10.0.0.0/08",
                                      "10.0.0/8",
                                      "10.0.0.0/8 ",
                                      " 10.0.0.0/8",
                                      "2001:db8::/129",
                                      "2001:db8::/-1",
                                      "2001:db8::/1a",
                                      "fe80::1%eth0",
                                      "host/8",
                                      "10.0.0.0//8",
                                      "999.0.0.0/8",
                                      "2001:db8::g/64"};
    char msg[256];

    (void)state;
    for (size_t i = 0; i != sizeof(GOOD) / sizeof(GOOD[0]); i++)
        if (cph_settings_check_cidr(GOOD[i], msg, sizeof(msg)) != 0)
            fail_msg("refused %s: %s", GOOD[i], msg);
    for (size_t i = 0; i != sizeof(BAD) / sizeof(BAD[0]); i++) {
        msg[0] = '\0';
        if (cph_settings_check_cidr(BAD[i], msg, sizeof(msg)) == 0)
            fail_msg("accepted \"%s\"", BAD[i]);
        assert_true(msg[0] != '\0');
    }
    assert_int_equal(cph_settings_check_cidr(NULL, msg, sizeof(msg)), -1);
    /* host bits: refused, and the message says which network was meant */
    assert_int_equal(cph_settings_check_cidr("10.1.2.3/8", msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "did you mean 10.0.0.0/8?"));
    assert_int_equal(cph_settings_check_cidr("2001:db8::1/64", msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "did you mean 2001:db8::/64?"));
    assert_int_equal(cph_settings_check_cidr("0.0.0.1/0", msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "did you mean 0.0.0.0/0?"));
}

static void test_add_cidr(void **state)
{
    char msg[256], cidr[32];

    (void)state;
    assert_int_equal(cph_settings_add_cidr(&g, 0, "10.0.0.0/8", msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_add_cidr(&g, 0, "2001:db8::/32", msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_add_cidr(&g, 1, "10.9.0.0/16", msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_add_cidr(&g, 1, "10.9.0.1/16", msg, sizeof(msg)), -1); /* refused: g unchanged */
    assert_int_equal(g.num_ip_allow, 2);
    assert_int_equal(g.num_ip_deny, 1);
    assert_string_equal(g.ip_allow[1], "2001:db8::/32");
    assert_string_equal(g.ip_deny[0], "10.9.0.0/16");
    assert_int_equal(cph_settings_add_cidr(&g, 1, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", msg, sizeof(msg)), 0);
    assert_string_equal(g.ip_deny[1], "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128"); /* the longest form fits */
    for (size_t i = g.num_ip_allow; i != CPH_SETTINGS_MAX_CIDRS; i++) {
        snprintf(cidr, sizeof(cidr), "10.%zu.%zu.0/24", i / 256, i % 256);
        assert_int_equal(cph_settings_add_cidr(&g, 0, cidr, msg, sizeof(msg)), 0);
    }
    assert_int_equal(cph_settings_add_cidr(&g, 0, "11.0.0.0/8", msg, sizeof(msg)), -1); /* over the cap */
    assert_non_null(strstr(msg, "more than"));
    assert_int_equal(g.num_ip_allow, CPH_SETTINGS_MAX_CIDRS);
}

static void test_limits(void **state)
{
    static const struct {
        const char *member, *value;
        int ok;
    } CASES[] = {
        {"max_body_bytes", "0", 1},
        {"max_body_bytes", "1073741824", 1},
        {"max_body_bytes", "1073741825", 0},
        {"max_url_bytes", "256", 1},
        {"max_url_bytes", "255", 0},
        {"max_url_bytes", "65536", 1},
        {"max_url_bytes", "65537", 0},
        {"max_headers", "1", 1},
        {"max_headers", "0", 0},
        {"max_headers", "1000", 1},
        {"max_headers", "1001", 0},
        {"max_header_bytes", "1024", 1},
        {"max_header_bytes", "1023", 0},
        {"max_header_bytes", "1048576", 1},
        {"max_header_bytes", "1048577", 0},
        {"max_headers", "-1", 0},
        {"max_headers", "1k", 0},
        {"max_headers", "", 0},
        {"max_headers", NULL, 0},
        {"max_frobs", "1", 0},
    };

    (void)state;
    for (size_t i = 0; i != sizeof(CASES) / sizeof(CASES[0]); i++)
        if ((cph_settings_parse_limit(CASES[i].member, CASES[i].value, &g) == 0) != CASES[i].ok)
            fail_msg("%s=%s: expected %s", CASES[i].member, CASES[i].value ? CASES[i].value : "NULL",
                     CASES[i].ok ? "accepted" : "refused");
    assert_int_equal(g.max_body_bytes, 1073741824);
    assert_int_equal(g.max_url_bytes, 65536);
    assert_int_equal(g.max_headers, 1000);
    assert_int_equal(g.max_header_bytes, 1048576);
}

static void test_cache_backend_and_ws(void **state)
{
    char msg[256];

    (void)state;
    assert_int_equal(g.cache_redis, 0);
    assert_int_equal(g.ws_drain_grace_ms, 30000);
    assert_int_equal(cph_settings_check_gateway(&g, msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_parse_cache_backend("Redis", &g), -1);
    assert_int_equal(cph_settings_parse_cache_backend("", &g), -1);
    assert_int_equal(cph_settings_parse_cache_backend("redis", &g), 0);
    assert_int_equal(g.cache_redis, 1);
    assert_int_equal(cph_settings_check_gateway(&g, msg, sizeof(msg)), -1); /* no --redis */
    assert_non_null(strstr(msg, "--redis"));
    assert_int_equal(cph_settings_parse_redis("127.0.0.1:6379", &g), 0);
    assert_int_equal(cph_settings_check_gateway(&g, msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_parse_cache_backend("memory", &g), 0);
    assert_int_equal(g.cache_redis, 0);
    assert_int_equal(cph_settings_parse_ws_drain_grace("0", &g), 0);
    assert_int_equal(g.ws_drain_grace_ms, 0);
    assert_int_equal(cph_settings_parse_ws_drain_grace("3600000", &g), 0);
    assert_int_equal(cph_settings_parse_ws_drain_grace("3600001", &g), -1);
    assert_int_equal(cph_settings_parse_ws_drain_grace("-5", &g), -1);
    assert_int_equal(g.ws_drain_grace_ms, 3600000);
}

/* The gateway section of g inside a minimal body, validated as the data planes do. */
static json_t *validated(const cph_gateway_settings_t *gs)
{
    json_t *gw = cph_snapbuild_gateway(gs), *body = json_pack("{s:[], s:[], s:O}", "services", "routes", "gateway", gw);
    cph_error_t err;

    if (cph_snapshot_validate(body, &err) != 0)
        fail_msg("refused: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    return gw;
}

static void test_snapbuild_gateway(void **state)
{
    cph_gateway_settings_t d;
    char msg[256];
    json_t *gw;

    (void)state;
    cph_settings_gateway_defaults(&d);
    gw = validated(&d); /* defaults: no backend, no websocket member (the same body as before them) */
    assert_null(json_object_get(json_object_get(gw, "cache"), "backend"));
    assert_null(json_object_get(gw, "websocket"));
    assert_int_equal(json_array_size(json_object_get(gw, "ip_allow")), 0);
    json_decref(gw);

    assert_int_equal(cph_settings_add_cidr(&d, 1, "127.0.0.1/32", msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_add_cidr(&d, 1, "2001:db8::/48", msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_add_cidr(&d, 0, "0.0.0.0/0", msg, sizeof(msg)), 0);
    assert_int_equal(cph_settings_parse_limit("max_url_bytes", "300", &d), 0);
    assert_int_equal(cph_settings_parse_limit("max_body_bytes", "0", &d), 0);
    assert_int_equal(cph_settings_parse_limit("max_headers", "7", &d), 0);
    assert_int_equal(cph_settings_parse_limit("max_header_bytes", "2048", &d), 0);
    assert_int_equal(cph_settings_parse_redis("127.0.0.1:6379", &d), 0);
    assert_int_equal(cph_settings_parse_cache_backend("redis", &d), 0);
    assert_int_equal(cph_settings_parse_ws_drain_grace("0", &d), 0);
    gw = validated(&d);
    json_t *want = json_loads("{\"ip_allow\":[\"0.0.0.0/0\"],\"ip_deny\":[\"127.0.0.1/32\",\"2001:db8::/48\"],"
                              "\"limits\":{\"max_body_bytes\":0,\"max_url_bytes\":300,\"max_headers\":7,\"max_header_bytes\":2048},"
                              "\"cache\":{\"max_bytes\":67108864,\"backend\":\"redis\"},\"websocket\":{\"drain_grace_ms\":0}}",
                              0, NULL);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        if (!json_equal(json_object_get(gw, key), v))
            fail_msg("gateway.%s differs", key);
    }
    json_decref(want);
    json_decref(gw);

    /* the extremes of every range still validate */
    cph_settings_gateway_defaults(&d);
    for (size_t i = 0; i != CPH_SETTINGS_MAX_CIDRS; i++) {
        char cidr[64];
        snprintf(cidr, sizeof(cidr), "2001:db8:%zx::/48", i);
        assert_int_equal(cph_settings_add_cidr(&d, i % 2, cidr, msg, sizeof(msg)), 0);
    }
    assert_int_equal(cph_settings_parse_limit("max_body_bytes", "1073741824", &d), 0);
    assert_int_equal(cph_settings_parse_limit("max_header_bytes", "1048576", &d), 0);
    assert_int_equal(cph_settings_parse_ws_drain_grace("3600000", &d), 0);
    json_decref(validated(&d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cidr, setup),   cmocka_unit_test_setup(test_add_cidr, setup),
        cmocka_unit_test_setup(test_limits, setup), cmocka_unit_test_setup(test_cache_backend_and_ws, setup),
        cmocka_unit_test(test_snapbuild_gateway),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
