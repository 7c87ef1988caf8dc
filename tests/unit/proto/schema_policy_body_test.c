/*
 * schema_policy_body_test: the traffic-policy members beyond a route's own (PROTOCOL.md section 5): CIDR syntax and the
 * IP lists, endpoint "rate_limits" overrides, the top-level "gateway", the validation order between the policy members
 * and the rest of the body, and PROTOCOL.md's examples. Exact code and JSON pointer for every case; hostile values
 * (non-canonical CIDRs, caps plus one, reals, strings for numbers, unknown members).
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

#include "schema_policy_cases.h"

/* ---------------------------------------------------------------- ip lists */

static void test_cidrs(void **state)
{
    static const struct {
        const char *cidr;
        int valid;
    } cidrs[] = {
        {"10.0.0.0/8", 1},
        {"10.1.2.3/32", 1},
        {"10.1.2.3", 1},
        {"0.0.0.0/0", 1},
        {"255.255.255.255/32", 1},
        {"192.168.1.128/25", 1},
        {"2001:db8::/32", 1},
        {"::/0", 1},
        {"::1", 1},
        {"::1/128", 1},
        {"fe80::/10", 1},
        {"2001:DB8::/32", 1}, /* inet_pton reads either case; only the bits count */
        {"::ffff:1.2.3.4/128", 1},
        {"::ffff:1.2.3.0/120", 1},
        {"10.0.0.1/24", 0}, /* host bits set */
        {"10.0.0.0/7", 1},
        {"11.0.0.0/7", 0},
        {"192.168.1.129/25", 0},
        {"2001:db8::1/32", 0},
        {"::1/127", 0},
        {"::ffff:1.2.3.4/200", 0},
        {"::ffff:1.2.3.4/129", 0},
        {"1.2.3.4/33", 0},
        {"1.2.3.4/-1", 0},
        {"1.2.3.4/+8", 0},
        {"1.2.3.0/024", 0}, /* a leading zero in the prefix */
        {"0.0.0.0/00", 0},
        {"1.2.3.4/", 0},
        {"1.2.3.4/1000", 0},
        {"1.2.3.4/32/32", 0},
        {"1.2.3.4/3a", 0},
        {"/8", 0},
        {"", 0},
        {"10.0.0.0/ 8", 0},
        {" 10.0.0.0/8", 0},
        {"10.0.0/8", 0},
        {"10/8", 0},
        {"010.0.0.0/8", 0},
        {"10.0.0.256", 0},
        {"1.2.3.4.5", 0},
        {"0x0a.0.0.0/8", 0},
        {"localhost", 0},
        {"fe80::1%eth0", 0},
        {"fe80::1%eth0/128", 0},
        {"[::1]", 0},
        {"[::1]/128", 0},
        {"2001:db8:::/48", 0},
        {"2001:db8::g/128", 0},
        {"1.2.3.4\\u0000/8", 0},
        {"10.0.0.0/8\\u0000", 0},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/8", 0},
    };
    static const char *const where[] = {"ip_allow", "ip_deny"};
    (void)state;
    for (size_t w = 0; w != 2; ++w)
        for (size_t i = 0; i != sizeof(cidrs) / sizeof(cidrs[0]); ++i) {
            char *text, path[64];
            json_t *route;
            assert_true(asprintf(&text, POL("\"%s\":[\"10.0.0.0/8\",\"%s\"]"), where[w], cidrs[i].cidr) > 0);
            route = parse(text);
            snprintf(path, sizeof(path), "/policies/%s/1", where[w]);
            check_route(route, text, cidrs[i].valid ? NULL : "invalid", cidrs[i].valid ? NULL : path);
            json_decref(route), free(text);
        }
}

static void test_ip_lists(void **state)
{
    static const case_t cases[] = {
        {POL("\"ip_allow\":[],\"ip_deny\":[]"), NULL, NULL},
        {POL("\"ip_allow\":[\"10.0.0.0/8\",\"10.0.0.0/8\"]"), NULL, NULL}, /* a repeat is harmless */
        {POL("\"ip_allow\":null"), "invalid", "/policies/ip_allow"},
        {POL("\"ip_allow\":\"10.0.0.0/8\""), "invalid", "/policies/ip_allow"},
        {POL("\"ip_allow\":[167772160]"), "invalid", "/policies/ip_allow/0"},
        {POL("\"ip_allow\":[[\"10.0.0.0/8\"]]"), "invalid", "/policies/ip_allow/0"},
        {POL("\"ip_deny\":{}"), "invalid", "/policies/ip_deny"},
        {POL("\"ip_deny\":[\"1.2.3.4\",null]"), "invalid", "/policies/ip_deny/1"},
        {POL("\"ip_deny\":[\"1.2.3.4\",1.5]"), "invalid", "/policies/ip_deny/1"},
    };
    json_t *route;
    (void)state;
    RUN_ROUTES(cases);
    route = route_with_list("ip_allow", 1024, "\"::%zx\"");
    check_route(route, "1024 CIDRs", NULL, NULL);
    json_decref(route);
    route = route_with_list("ip_deny", 1024, "\"2001:db8:%zx::/48\"");
    check_route(route, "1024 IPv6 CIDRs", NULL, NULL);
    json_decref(route);
    /* 1025: refused at the list before any element is read (every element is invalid too) */
    route = route_with_list("ip_allow", 1025, "\"10.0.0.%zu/24\"");
    check_route(route, "1025 CIDRs", "invalid", "/policies/ip_allow");
    json_decref(route);
    route = route_with_list("ip_deny", 1025, "\"10.%zu.0.0/16\"");
    check_route(route, "1025 CIDRs", "invalid", "/policies/ip_deny");
    json_decref(route);
    /* the last of 1024 is checked */
    route = route_with_list("ip_deny", 1024, "\"::%zx/128\"");
    json_array_set_new(json_object_get(json_object_get(route, "policies"), "ip_deny"), 1023, json_string("10.0.0.1/24"));
    check_route(route, "bad 1024th", "invalid", "/policies/ip_deny/1023");
    json_decref(route);
}

/* ---------------------------------------------------------------- endpoint rate_limits */

#define EP(extra) "\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"" extra "}]"
#define E0 "/endpoints/0/rate_limits"

static void test_endpoint_rate_limits(void **state)
{
    static const case_t cases[] = {
        {EP(""), NULL, NULL},
        {EP(",\"rate_limits\":[]"), NULL, NULL},
        {EP(",\"rate_limits\":[" LIM(",\"burst\":5,\"backend\":\"redis\",\"on_error\":\"closed\",\"headers\":true") "]"), NULL,
         NULL},
        {EP(",\"rate_limits\":[" LIM("") ",{\"name\":\"b\",\"key\":\"header:x-user\",\"rate\":5,\"period_s\":60}]"), NULL, NULL},
        {EP(",\"public\":true,\"rate_limits\":[" LIM("") "]"), NULL, NULL},
        {EP(",\"rate_limits\":null"), "invalid", E0},
        {EP(",\"rate_limits\":{}"), "invalid", E0},
        {EP(",\"rate_limit\":[]"), "unknown_field", "/endpoints/0/rate_limit"},
        {EP(",\"rate_limits\":[" LIM("") "," LIM("") "]"), "duplicate", E0 "/1/name"},
        {EP(",\"rate_limits\":[" LIM(",\"x\":1") "]"), "unknown_field", E0 "/0/x"},
        {EP(",\"rate_limits\":[{\"name\":\"a\",\"key\":\"header:X\",\"rate\":1,\"period_s\":1}]"), "invalid", E0 "/0/key"},
        {EP(",\"rate_limits\":[{\"name\":\"a\",\"key\":\"ip\",\"rate\":0,\"period_s\":1}]"), "invalid", E0 "/0/rate"},
        {EP(",\"rate_limits\":[{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":86401}]"), "invalid", E0 "/0/period_s"},
        {EP(",\"rate_limits\":[" LIM(",\"burst\":-1") "]"), "invalid", E0 "/0/burst"},
        {EP(",\"rate_limits\":[" LIM(",\"burst\":1.0") "]"), "invalid", E0 "/0/burst"},
        {EP(",\"rate_limits\":[1,2,3,4,5,6,7,8,9]"), "invalid", E0},
        /* after the endpoint's other members (groups), before its public rule and uniqueness */
        {EP(",\"groups\":[1],\"rate_limits\":[1]"), "invalid", "/endpoints/0/groups/0"},
        {EP(",\"public\":true,\"roles\":[{\"system\":\"s\",\"name\":\"r\"}],\"rate_limits\":[1]"), "invalid", E0 "/0"},
        {"\"endpoints\":[{\"id\":1,\"service\":\"nope\",\"method\":\"GET\",\"path\":\"/a\",\"rate_limits\":[1]}]", "invalid",
         E0 "/0"},
    };
    (void)state;
    RUN_BODIES(cases);
}

/* ---------------------------------------------------------------- gateway */

#define GW(members) "\"gateway\":{" members "}"
#define G "/gateway"

static void test_gateway(void **state)
{
    static const case_t cases[] = {
        {"", NULL, NULL},
        {GW(""), NULL, NULL},
        {GW("\"trusted_proxy_hops\":0,\"ip_allow\":[],\"ip_deny\":[],\"limits\":{\"max_body_bytes\":10485760,\"max_url_bytes\":"
            "8192,\"max_headers\":100,\"max_header_bytes\":65536},\"redis\":null,\"login_rate_limit\":{\"rate\":10,\"period_s\":"
            "60,\"burst\":5}"),
         NULL, NULL},
        {GW("\"trusted_proxy_hops\":8,\"ip_allow\":[\"10.0.0.0/8\",\"::1\"],\"ip_deny\":[\"10.1.2.3/32\"],"
            "\"redis\":{\"host\":\"127.0.0.1\",\"port\":6379,\"db\":0,\"timeout_ms\":50}"),
         NULL, NULL},
        {GW("\"redis\":{\"host\":\"::1\"}"), NULL, NULL},
        {GW("\"redis\":{\"host\":\"2001:db8::1\",\"port\":1,\"db\":15,\"timeout_ms\":1}"), NULL, NULL},
        {GW("\"redis\":{\"host\":\"redis.internal\",\"port\":65535,\"timeout_ms\":10000}"), NULL, NULL},
        {GW("\"redis\":{\"host\":\"Redis-1.Internal\"}"), NULL, NULL},
        {GW("\"login_rate_limit\":{}"), NULL, NULL},
        {GW("\"login_rate_limit\":{\"rate\":1,\"period_s\":86400,\"burst\":0}"), NULL, NULL},
        /* the object */
        {"\"gateway\":null", "invalid", G},
        {"\"gateway\":[]", "invalid", G},
        {"\"gateway\":\"\"", "invalid", G},
        {GW("\"mode\":1"), "unknown_field", G "/mode"},
        /* trusted_proxy_hops */
        {GW("\"trusted_proxy_hops\":-1"), "invalid", G "/trusted_proxy_hops"},
        {GW("\"trusted_proxy_hops\":9"), "invalid", G "/trusted_proxy_hops"},
        {GW("\"trusted_proxy_hops\":1.0"), "invalid", G "/trusted_proxy_hops"},
        {GW("\"trusted_proxy_hops\":\"1\""), "invalid", G "/trusted_proxy_hops"},
        {GW("\"trusted_proxy_hops\":null"), "invalid", G "/trusted_proxy_hops"},
        /* ip lists and limits (the route's rules) */
        {GW("\"ip_allow\":[\"10.0.0.1/24\"]"), "invalid", G "/ip_allow/0"},
        {GW("\"ip_deny\":[\"::ffff:1.2.3.4/200\"]"), "invalid", G "/ip_deny/0"},
        {GW("\"ip_deny\":null"), "invalid", G "/ip_deny"},
        {GW("\"limits\":{\"max_headers\":0}"), "invalid", G "/limits/max_headers"},
        {GW("\"limits\":{\"max_body\":1}"), "unknown_field", G "/limits/max_body"},
        {GW("\"limits\":null"), "invalid", G "/limits"},
        /* redis */
        {GW("\"redis\":\"127.0.0.1:6379\""), "invalid", G "/redis"},
        {GW("\"redis\":[]"), "invalid", G "/redis"},
        {GW("\"redis\":{}"), "missing_field", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"h\",\"password\":\"x\"}"), "unknown_field", G "/redis/password"},
        {GW("\"redis\":{\"host\":\"\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":null}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"[::1]\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"127.0.0.1:6379\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"redis://h\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"h/0\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"a b\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"h\\u0000x\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"1.2.3.256\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"fe80::1%eth0\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"host\":\"h\",\"port\":0}"), "invalid", G "/redis/port"},
        {GW("\"redis\":{\"host\":\"h\",\"port\":65536}"), "invalid", G "/redis/port"},
        {GW("\"redis\":{\"host\":\"h\",\"port\":\"6379\"}"), "invalid", G "/redis/port"},
        {GW("\"redis\":{\"host\":\"h\",\"db\":16}"), "invalid", G "/redis/db"},
        {GW("\"redis\":{\"host\":\"h\",\"db\":-1}"), "invalid", G "/redis/db"},
        {GW("\"redis\":{\"host\":\"h\",\"timeout_ms\":0}"), "invalid", G "/redis/timeout_ms"},
        {GW("\"redis\":{\"host\":\"h\",\"timeout_ms\":10001}"), "invalid", G "/redis/timeout_ms"},
        {GW("\"redis\":{\"host\":\"h\",\"timeout_ms\":50.5}"), "invalid", G "/redis/timeout_ms"},
        {GW("\"redis\":{\"timeout_ms\":0,\"db\":16,\"port\":0,\"host\":\"\"}"), "invalid", G "/redis/host"},
        {GW("\"redis\":{\"timeout_ms\":0,\"db\":16,\"port\":0,\"host\":\"h\"}"), "invalid", G "/redis/port"},
        {GW("\"redis\":{\"timeout_ms\":0,\"db\":16,\"host\":\"h\"}"), "invalid", G "/redis/db"},
        /* login_rate_limit */
        {GW("\"login_rate_limit\":null"), "invalid", G "/login_rate_limit"},
        {GW("\"login_rate_limit\":{\"rate\":0}"), "invalid", G "/login_rate_limit/rate"},
        {GW("\"login_rate_limit\":{\"rate\":\"10\"}"), "invalid", G "/login_rate_limit/rate"},
        {GW("\"login_rate_limit\":{\"period_s\":0}"), "invalid", G "/login_rate_limit/period_s"},
        {GW("\"login_rate_limit\":{\"period_s\":86401}"), "invalid", G "/login_rate_limit/period_s"},
        {GW("\"login_rate_limit\":{\"burst\":-1}"), "invalid", G "/login_rate_limit/burst"},
        {GW("\"login_rate_limit\":{\"burst\":5.0}"), "invalid", G "/login_rate_limit/burst"},
        {GW("\"login_rate_limit\":{\"key\":\"ip\"}"), "unknown_field", G "/login_rate_limit/key"},
        {GW("\"login_rate_limit\":{\"name\":\"x\",\"rate\":1,\"period_s\":1}"), "unknown_field", G "/login_rate_limit/name"},
        /* table order */
        {GW("\"login_rate_limit\":1,\"redis\":1,\"limits\":1,\"ip_deny\":1,\"ip_allow\":1,\"trusted_proxy_hops\":-1"), "invalid",
         G "/trusted_proxy_hops"},
        {GW("\"login_rate_limit\":1,\"redis\":1,\"limits\":1,\"ip_deny\":1,\"ip_allow\":1"), "invalid", G "/ip_allow"},
        {GW("\"login_rate_limit\":1,\"redis\":1,\"limits\":1,\"ip_deny\":1"), "invalid", G "/ip_deny"},
        {GW("\"login_rate_limit\":1,\"redis\":1,\"limits\":1"), "invalid", G "/limits"},
        {GW("\"login_rate_limit\":1,\"redis\":1"), "invalid", G "/redis"},
        {GW("\"login_rate_limit\":1,\"zz\":1"), "unknown_field", G "/zz"},
    };
    (void)state;
    RUN_BODIES(cases);
}

/* ---------------------------------------------------------------- order within the body */

static void test_order(void **state)
{
    static const case_t cases[] = {
        /* gateway's type with the other top-level types, after revoked's; its content last of all */
        {"\"gateway\":[],\"groups\":[1]", "invalid", G},
        {"\"gateway\":[],\"revoked\":[]", "invalid", "/revoked"},
        {"\"gateway\":[],\"bogus\":1", "unknown_field", "/bogus"},
        {GW("\"trusted_proxy_hops\":9") ",\"revoked\":{\"users\":[1]}", "invalid", "/revoked/users/0"},
        {GW("\"trusted_proxy_hops\":9") ",\"groups\":[1]", "invalid", "/groups/0"},
        {GW("\"trusted_proxy_hops\":9") ",\"api_keys\":[1]", "invalid", "/api_keys/0"},
        {GW("\"trusted_proxy_hops\":9") "," EP(",\"rate_limits\":[1]"), "invalid", E0 "/0"},
        /* an endpoint's limits come after every route's policies */
        {EP(",\"rate_limits\":[1]"), "invalid", E0 "/0"},
    };
    (void)state;
    RUN_BODIES(cases);
    /* a route's policies are checked with the route, before the next route and before its service is looked up */
    check_body_text("{\"services\":[],\"routes\":[" POL("\"rate_limits\":[1]") ",{\"name\":1}]}", "invalid",
                    "/routes/0/policies/rate_limits/0");
    check_body_text(
        "{\"services\":[{\"name\":\"orders\",\"targets\":[]}],\"routes\":[" POL("") "," POL("\"https_redirect\":0") "]}", "invalid",
        "/routes/1/policies/https_redirect");
    check_body_text("{\"services\":[{\"name\":\"orders\",\"targets\":[]}],\"routes\":[" POL(
                        "\"cors\":{\"origins\":[\"*\"]}") "],"
                                                          "\"gateway\":{},\"keys\":[1]}",
                    "invalid", "/keys/0");
}

/* The examples of PROTOCOL.md section 5 validate as they are written. */
static void test_examples(void **state)
{
    json_t *body = parse(
        "{\"services\":[{\"name\":\"orders\",\"targets\":[]}],\"routes\":[{\"name\":\"r\",\"service\":\"orders\",\"paths\":"
        "[\"/api\"],\"policies\":{\"rate_limits\":[{\"name\":\"per-ip-second\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,"
        "\"burst\":5,\"backend\":\"local\",\"on_error\":\"open\",\"headers\":true}],\"cors\":{\"origins\":"
        "[\"https://app.example.com\"],\"methods\":[\"GET\",\"POST\"],\"headers\":[\"content-type\"],\"expose_headers\":[],"
        "\"credentials\":false,\"max_age_s\":600},\"security_headers\":{\"hsts_max_age_s\":31536000,\"hsts_subdomains\":false,"
        "\"content_type_options\":true,\"frame_options\":\"DENY\",\"referrer_policy\":\"no-referrer\"},\"limits\":"
        "{\"max_body_bytes\":1048576,\"max_url_bytes\":8192,\"max_headers\":100,\"max_header_bytes\":65536},\"ip_allow\":"
        "[\"10.0.0.0/8\",\"2001:db8::/32\"],\"ip_deny\":[\"10.1.2.3/32\"],\"https_redirect\":false}}],"
        "\"gateway\":{\"trusted_proxy_hops\":0,\"ip_allow\":[],\"ip_deny\":[],\"limits\":{\"max_body_bytes\":10485760,"
        "\"max_url_bytes\":8192,\"max_headers\":100,\"max_header_bytes\":65536},\"redis\":{\"host\":\"127.0.0.1\",\"port\":6379,"
        "\"db\":0,\"timeout_ms\":50},\"login_rate_limit\":{\"rate\":10,\"period_s\":60,\"burst\":5}}}");
    (void)state;
    check_body(body, "example", NULL, "", NULL);
    /* one changed value makes it invalid, at the right place */
    json_object_set_new(json_object_get(json_object_get(body, "gateway"), "redis"), "db", json_integer(16));
    check_body(body, "example", "invalid", "", "/gateway/redis/db");
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidrs),   cmocka_unit_test(test_ip_lists), cmocka_unit_test(test_endpoint_rate_limits),
        cmocka_unit_test(test_gateway), cmocka_unit_test(test_order),    cmocka_unit_test(test_examples),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
