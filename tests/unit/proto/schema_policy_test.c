/*
 * schema_policy_test: a route's traffic policies in the snapshot schema (PROTOCOL.md section 5: "policies" - rate
 * limits, CORS, security headers, limits; IP lists, endpoint overrides and the gateway are in
 * schema_policy_body_test.c). Every rule accepted and refused with the exact code and JSON pointer,
 * for one route on its own (cph_schema_validate_route, as the admin API runs it) and inside a body; hostile values
 * (caps plus one, non-canonical CIDRs, origins with paths, "*" with credentials, bad header names, reals, strings
 * for numbers, unknown members at every level) and the validation order between members and with the rest of the
 * body.
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

/* ---------------------------------------------------------------- policies object, rate limits */

static void test_policies_object(void **state)
{
    static const case_t cases[] = {
        {R(""), NULL, NULL},
        {POL(""), NULL, NULL},
        {POL("\"https_redirect\":true"), NULL, NULL},
        {POL("\"https_redirect\":false"), NULL, NULL},
        {POL("\"rate_limits\":[],\"cors\":{\"origins\":[\"*\"]},\"security_headers\":{},\"limits\":{},\"ip_allow\":[],"
             "\"ip_deny\":[],\"https_redirect\":false"),
         NULL, NULL},
        {R(",\"policies\":null"), "invalid", "/policies"},
        {R(",\"policies\":[]"), "invalid", "/policies"},
        {R(",\"policies\":\"{}\""), "invalid", "/policies"},
        {R(",\"policies\":1.0"), "invalid", "/policies"},
        {R(",\"policy\":{}"), "unknown_field", "/policy"},
        {POL("\"cachex\":{}"), "unknown_field", "/policies/cachex"},
        {POL("\"https_redirect\":1"), "invalid", "/policies/https_redirect"},
        {POL("\"https_redirect\":\"true\""), "invalid", "/policies/https_redirect"},
        {POL("\"https_redirect\":null"), "invalid", "/policies/https_redirect"},
        {POL("\"rate_limits\":{}"), "invalid", "/policies/rate_limits"},
        {POL("\"rate_limits\":null"), "invalid", "/policies/rate_limits"},
        /* unknown members before anything else, then table order whatever the document order */
        {POL("\"https_redirect\":1,\"zzz\":1"), "unknown_field", "/policies/zzz"},
        {POL("\"https_redirect\":1,\"ip_allow\":[\"x\"]"), "invalid", "/policies/ip_allow/0"},
        {POL("\"ip_deny\":[\"x\"],\"ip_allow\":[\"y\"]"), "invalid", "/policies/ip_allow/0"},
        {POL("\"ip_allow\":[\"x\"],\"limits\":{\"max_headers\":0}"), "invalid", "/policies/limits/max_headers"},
        {POL("\"limits\":{\"max_headers\":0},\"security_headers\":{\"frame_options\":\"x\"}"), "invalid",
         "/policies/security_headers/frame_options"},
        {POL("\"security_headers\":{\"frame_options\":\"x\"},\"cors\":{}"), "missing_field", "/policies/cors/origins"},
        {POL("\"cors\":{},\"rate_limits\":[{}]"), "missing_field", P0 "/name"},
        /* the route's other members come first */
        {"{\"name\":\"r\",\"service\":\"orders\",\"paths\":[\"/api\"],\"default_access\":\"x\",\"policies\":[]}", "invalid",
         "/default_access"},
    };
    (void)state;
    RUN_ROUTES(cases);
}

static void test_rate_limit_members(void **state)
{
    static const case_t cases[] = {
        {RL(LIM("")), NULL, NULL},
        {RL("{\"name\":\"per-ip-second\",\"key\":\"ip\",\"rate\":10,\"period_s\":1,\"burst\":5,\"backend\":\"local\","
            "\"on_error\":\"open\",\"headers\":true}"),
         NULL, NULL},
        {RL(LIM(",\"backend\":\"redis\",\"on_error\":\"closed\",\"headers\":false")), NULL, NULL},
        {RL("{\"name\":\"A.b_c-9\",\"key\":\"principal\",\"rate\":1,\"period_s\":86400}"), NULL, NULL},
        {RL("{\"name\":\"a\",\"key\":\"api_key\",\"rate\":1000000000,\"period_s\":1,\"burst\":1000000000}"), NULL, NULL},
        {RL("{\"name\":\"a\",\"key\":\"system\",\"rate\":1,\"period_s\":1,\"burst\":0}"), NULL, NULL},
        {RL("{\"name\":\"a\",\"key\":\"route\",\"rate\":1,\"period_s\":1}"), NULL, NULL},
        {RL("{\"name\":\"a\",\"key\":\"header:x-tenant-id\",\"rate\":1,\"period_s\":1}"), NULL, NULL},
        {RL("{\"name\":\"a\",\"key\":\"header:a!#$%&'*+-.^_`|~09\",\"rate\":1,\"period_s\":1}"), NULL, NULL},
        {RL("{\"name\":\"a\",\"key\":\"header:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"rate\":1,"
            "\"period_s\":1}"),
         NULL, NULL},
        /* the element */
        {RL("1"), "invalid", P0},
        {RL("null"), "invalid", P0},
        {RL("[]"), "invalid", P0},
        {RL(LIM(",\"window\":1")), "unknown_field", P0 "/window"},
        {RL(LIM(",\"Name\":\"a\"")), "unknown_field", P0 "/Name"},
        /* name */
        {RL("{\"key\":\"ip\",\"rate\":1,\"period_s\":1}"), "missing_field", P0 "/name"},
        {RL("{\"name\":\"\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/name"},
        {RL("{\"name\":\"a b\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/name"},
        {RL("{\"name\":\"a/b\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/name"},
        {RL("{\"name\":\"a\\u0000\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/name"},
        {RL("{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"key\":\"ip\",\"rate\":1,"
            "\"period_s\":1}"),
         "invalid", P0 "/name"},
        {RL("{\"name\":7,\"key\":\"ip\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/name"},
        /* key */
        {RL("{\"name\":\"a\",\"rate\":1,\"period_s\":1}"), "missing_field", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"IP\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"user\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"ip \",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"ip\\u0000\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:X-Tenant\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"Header:x-tenant\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:x tenant\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:x:y\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:x\\\"y\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:x(y)\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:x\\u0000\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:caf\\u00e9\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header: x\",\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":\"header:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"rate\":1,"
            "\"period_s\":1}"),
         "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":[\"ip\"],\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        {RL("{\"name\":\"a\",\"key\":null,\"rate\":1,\"period_s\":1}"), "invalid", P0 "/key"},
        /* rate */
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"period_s\":1}"), "missing_field", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":0,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":-1,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1000000001,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":9223372036854775807,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":10.0,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1e1,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":\"10\",\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":null,\"period_s\":1}"), "invalid", P0 "/rate"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":true,\"period_s\":1}"), "invalid", P0 "/rate"},
        /* period_s */
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1}"), "missing_field", P0 "/period_s"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":0}"), "invalid", P0 "/period_s"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":86401}"), "invalid", P0 "/period_s"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":0.5}"), "invalid", P0 "/period_s"},
        {RL("{\"name\":\"a\",\"key\":\"ip\",\"rate\":1,\"period_s\":\"1\"}"), "invalid", P0 "/period_s"},
        /* burst */
        {RL(LIM(",\"burst\":-1")), "invalid", P0 "/burst"},
        {RL(LIM(",\"burst\":1000000001")), "invalid", P0 "/burst"},
        {RL(LIM(",\"burst\":5.0")), "invalid", P0 "/burst"},
        {RL(LIM(",\"burst\":\"5\"")), "invalid", P0 "/burst"},
        {RL(LIM(",\"burst\":null")), "invalid", P0 "/burst"},
        /* backend, on_error, headers */
        {RL(LIM(",\"backend\":\"Redis\"")), "invalid", P0 "/backend"},
        {RL(LIM(",\"backend\":\"memcached\"")), "invalid", P0 "/backend"},
        {RL(LIM(",\"backend\":null")), "invalid", P0 "/backend"},
        {RL(LIM(",\"on_error\":\"close\"")), "invalid", P0 "/on_error"},
        {RL(LIM(",\"on_error\":false")), "invalid", P0 "/on_error"},
        {RL(LIM(",\"headers\":1")), "invalid", P0 "/headers"},
        {RL(LIM(",\"headers\":\"true\"")), "invalid", P0 "/headers"},
        {RL(LIM(",\"headers\":null")), "invalid", P0 "/headers"},
        /* table order: name, key, rate, period_s, burst, backend, on_error, headers */
        {RL("{\"headers\":1,\"on_error\":1,\"backend\":1,\"burst\":-1,\"period_s\":0,\"rate\":0,\"key\":\"x\",\"name\":\"\"}"),
         "invalid", P0 "/name"},
        {RL("{\"headers\":1,\"on_error\":1,\"backend\":1,\"burst\":-1,\"period_s\":0,\"rate\":0,\"key\":\"x\",\"name\":\"a\"}"),
         "invalid", P0 "/key"},
        {RL("{\"headers\":1,\"on_error\":1,\"backend\":1,\"burst\":-1,\"period_s\":0,\"rate\":0,\"key\":\"ip\",\"name\":\"a\"}"),
         "invalid", P0 "/rate"},
        {RL("{\"headers\":1,\"on_error\":1,\"backend\":1,\"burst\":-1,\"period_s\":0,\"rate\":1,\"key\":\"ip\",\"name\":\"a\"}"),
         "invalid", P0 "/period_s"},
        {RL(LIM(",\"headers\":1,\"on_error\":1,\"backend\":1,\"burst\":-1")), "invalid", P0 "/burst"},
        {RL(LIM(",\"headers\":1,\"on_error\":1,\"backend\":1")), "invalid", P0 "/backend"},
        {RL(LIM(",\"headers\":1,\"on_error\":1")), "invalid", P0 "/on_error"},
        {RL(LIM(",\"headers\":1,\"zz\":1")), "unknown_field", P0 "/zz"},
    };
    (void)state;
    RUN_ROUTES(cases);
}

static void test_rate_limit_list(void **state)
{
    static const case_t cases[] = {
        {RL(LIM("") ","
                    "{\"name\":\"b\",\"key\":\"ip\",\"rate\":1,\"period_s\":60}"),
         NULL, NULL},
        {RL(LIM("") ","
                    "{\"name\":\"A\",\"key\":\"ip\",\"rate\":1,\"period_s\":60}"),
         NULL, NULL}, /* names are case-sensitive */
        {RL(LIM("") "," LIM("")), "duplicate", "/policies/rate_limits/1/name"},
        {RL(LIM("") ",{\"name\":\"b\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}," LIM("")), "duplicate",
         "/policies/rate_limits/2/name"},
        /* the later element is checked itself before its name is compared */
        {RL(LIM("") ",{\"name\":\"a\",\"key\":\"ip\",\"rate\":0,\"period_s\":1}"), "invalid", "/policies/rate_limits/1/rate"},
        {RL(LIM("") ",{\"name\":\"b\"}"), "missing_field", "/policies/rate_limits/1/key"},
    };
    json_t *route;
    (void)state;
    RUN_ROUTES(cases);
    route = route_with_list("rate_limits", 8, "{\"name\":\"l%zu\",\"key\":\"ip\",\"rate\":1,\"period_s\":1}");
    check_route(route, "8 limits", NULL, NULL);
    json_decref(route);
    /* the cap is checked before any element is read: 9 invalid limits fail at the list */
    route = route_with_list("rate_limits", 9, "{\"name\":\"l%zu\",\"key\":\"bad\",\"rate\":0,\"period_s\":0}");
    check_route(route, "9 limits", "invalid", "/policies/rate_limits");
    json_decref(route);
    route = route_with_list("rate_limits", 100000, "{\"x%zu\":1}");
    check_route(route, "100000 limits", "invalid", "/policies/rate_limits");
    json_decref(route);
}

/* ---------------------------------------------------------------- cors */

#define CORS(members) POL("\"cors\":{" members "}")
#define C "/policies/cors"

static void test_cors(void **state)
{
    static const case_t cases[] = {
        {CORS("\"origins\":[\"*\"]"), NULL, NULL},
        {CORS("\"origins\":[\"https://app.example.com\"],\"methods\":[\"GET\",\"POST\"],\"headers\":[\"content-type\"],"
              "\"expose_headers\":[],\"credentials\":false,\"max_age_s\":600"),
         NULL, NULL},
        {CORS("\"origins\":[\"https://app.example.com\",\"http://localhost:3000\",\"http://127.0.0.1:8080\",\"https://[::1]\","
              "\"https://[2001:db8::1]:8443\",\"http://a-b.c0.example\"],\"credentials\":true"),
         NULL, NULL},
        {CORS("\"origins\":[\"https://a.example:80\",\"http://a.example:443\",\"http://a.example:65535\"]"), NULL, NULL},
        {CORS("\"origins\":[\"*\"],\"credentials\":false,\"max_age_s\":0"), NULL, NULL},
        {CORS("\"origins\":[\"*\"],\"max_age_s\":86400"), NULL, NULL},
        {CORS("\"origins\":[\"*\"],\"methods\":[]"), NULL, NULL},
        {CORS("\"origins\":[\"*\"],\"methods\":[\"GET\",\"HEAD\",\"POST\",\"PUT\",\"PATCH\",\"DELETE\",\"OPTIONS\",\"CONNECT\","
              "\"TRACE\"]"),
         NULL, NULL},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"x-requested-with\",\"authorization\",\"*\"],\"expose_headers\":[\"x-total\"]"),
         NULL, NULL},
        /* the object */
        {POL("\"cors\":null"), "invalid", C},
        {POL("\"cors\":[]"), "invalid", C},
        {POL("\"cors\":true"), "invalid", C},
        {CORS(""), "missing_field", C "/origins"},
        {CORS("\"origins\":[\"*\"],\"allow_origin\":\"*\""), "unknown_field", C "/allow_origin"},
        /* origins */
        {CORS("\"origins\":[]"), "invalid", C "/origins"},
        {CORS("\"origins\":\"*\""), "invalid", C "/origins"},
        {CORS("\"origins\":null"), "invalid", C "/origins"},
        {CORS("\"origins\":[1]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[null]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"null\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"**\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"*.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://*.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"app.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://app.example.com/\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://app.example.com/path\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://app.example.com:8443/\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://app.example.com?x=1\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://app.example.com#f\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://u@app.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://App.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"HTTPS://app.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"ftp://app.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://app.example.com:443\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com:80\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com:\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com:0\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com:080\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com:65536\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com:8080:1\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app..example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://-app.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app.example.com.\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://app_x.example.com\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://[::1\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://[::g]\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://[2001:DB8::1]\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://::1\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://1.2.3.256\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://a.example\\u0000\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://a.example \"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"http://caf\\u00e9.example\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://a.example\",\"https://b.example\",\"https://a.example\"]"), "duplicate", C "/origins/2"},
        {CORS("\"origins\":[\"*\",\"*\"]"), "duplicate", C "/origins/1"},
        {CORS("\"origins\":[\"*\",\"https://a.example\"]"), "invalid", C "/origins/0"},
        {CORS("\"origins\":[\"https://a.example\",\"*\"]"), "invalid", C "/origins/1"},
        /* "*" with credentials */
        {CORS("\"origins\":[\"*\"],\"credentials\":true"), "invalid", C "/credentials"},
        {CORS("\"credentials\":true,\"origins\":[\"*\"],\"max_age_s\":-1"), "invalid", C "/max_age_s"},
        /* methods */
        {CORS("\"origins\":[\"*\"],\"methods\":[\"get\"]"), "invalid", C "/methods/0"},
        {CORS("\"origins\":[\"*\"],\"methods\":[\"GET\",\"PURGE\"]"), "invalid", C "/methods/1"},
        {CORS("\"origins\":[\"*\"],\"methods\":[\"*\"]"), "invalid", C "/methods/0"},
        {CORS("\"origins\":[\"*\"],\"methods\":[\"GET\",\"GET\"]"), "duplicate", C "/methods/1"},
        {CORS("\"origins\":[\"*\"],\"methods\":\"GET\""), "invalid", C "/methods"},
        {CORS("\"origins\":[\"*\"],\"methods\":[1]"), "invalid", C "/methods/0"},
        /* headers, expose_headers */
        {CORS("\"origins\":[\"*\"],\"headers\":[\"Content-Type\"]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"\"]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"x y\"]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"x:y\"]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"x,y\"]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"x\\ny\"]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"headers\":[\"a\",\"a\"]"), "duplicate", C "/headers/1"},
        {CORS("\"origins\":[\"*\"],\"headers\":[null]"), "invalid", C "/headers/0"},
        {CORS("\"origins\":[\"*\"],\"expose_headers\":[\"X-Total\"]"), "invalid", C "/expose_headers/0"},
        {CORS("\"origins\":[\"*\"],\"expose_headers\":[\"x-total\",\"x-total\"]"), "duplicate", C "/expose_headers/1"},
        {CORS("\"origins\":[\"*\"],\"expose_headers\":{}"), "invalid", C "/expose_headers"},
        /* credentials, max_age_s */
        {CORS("\"origins\":[\"*\"],\"credentials\":\"false\""), "invalid", C "/credentials"},
        {CORS("\"origins\":[\"*\"],\"credentials\":0"), "invalid", C "/credentials"},
        {CORS("\"origins\":[\"*\"],\"max_age_s\":86401"), "invalid", C "/max_age_s"},
        {CORS("\"origins\":[\"*\"],\"max_age_s\":600.0"), "invalid", C "/max_age_s"},
        {CORS("\"origins\":[\"*\"],\"max_age_s\":\"600\""), "invalid", C "/max_age_s"},
        /* table order */
        {CORS("\"max_age_s\":-1,\"credentials\":1,\"expose_headers\":[\"A\"],\"headers\":[\"A\"],\"methods\":[\"x\"],"
              "\"origins\":[\"x\"]"),
         "invalid", C "/origins/0"},
        {CORS("\"max_age_s\":-1,\"credentials\":1,\"expose_headers\":[\"A\"],\"headers\":[\"A\"],\"methods\":[\"x\"],"
              "\"origins\":[\"*\"]"),
         "invalid", C "/methods/0"},
        {CORS("\"max_age_s\":-1,\"credentials\":1,\"expose_headers\":[\"A\"],\"headers\":[\"A\"],\"origins\":[\"*\"]"), "invalid",
         C "/headers/0"},
        {CORS("\"max_age_s\":-1,\"credentials\":1,\"expose_headers\":[\"A\"],\"origins\":[\"*\"]"), "invalid",
         C "/expose_headers/0"},
        {CORS("\"max_age_s\":-1,\"credentials\":1,\"origins\":[\"*\"]"), "invalid", C "/credentials"},
        {CORS("\"origins\":[\"*\",\"x\"]"), "invalid", C "/origins/1"}, /* each element's syntax before the "*" rule */
    };
    json_t *route;
    (void)state;
    RUN_ROUTES(cases);
    /* caps: 64 origins and headers pass, 65 fail at the list */
    route = parse(R(""));
    for (int n = 64; n <= 65; ++n) {
        json_t *origins = json_array(), *headers = json_array();
        char s[64];
        for (int i = 0; i != n; ++i) {
            snprintf(s, sizeof(s), "https://o%d.example", i);
            json_array_append_new(origins, json_string(s));
            snprintf(s, sizeof(s), "x-h%d", i);
            json_array_append_new(headers, json_string(s));
        }
        json_object_set_new(route, "policies", json_pack("{s:{s:o}}", "cors", "origins", origins));
        check_route(route, "origins", n == 64 ? NULL : "invalid", n == 64 ? NULL : C "/origins");
        json_object_set_new(route, "policies", json_pack("{s:{s:[s], s:O}}", "cors", "origins", "*", "headers", headers));
        check_route(route, "headers", n == 64 ? NULL : "invalid", n == 64 ? NULL : C "/headers");
        json_object_set_new(route, "policies", json_pack("{s:{s:[s], s:o}}", "cors", "origins", "*", "expose_headers", headers));
        check_route(route, "expose_headers", n == 64 ? NULL : "invalid", n == 64 ? NULL : C "/expose_headers");
    }
    json_decref(route);
}

/* ---------------------------------------------------------------- security headers, limits */

#define SH(members) POL("\"security_headers\":{" members "}")
#define S "/policies/security_headers"
#define LIMITS(members) POL("\"limits\":{" members "}")
#define L "/policies/limits"

static void test_security_headers(void **state)
{
    static const case_t cases[] = {
        {SH(""), NULL, NULL},
        {SH("\"hsts_max_age_s\":31536000,\"hsts_subdomains\":false,\"content_type_options\":true,\"frame_options\":\"DENY\","
            "\"referrer_policy\":\"no-referrer\""),
         NULL, NULL},
        {SH("\"hsts_max_age_s\":0,\"hsts_subdomains\":true,\"frame_options\":\"SAMEORIGIN\",\"referrer_policy\":null"), NULL, NULL},
        {SH("\"hsts_max_age_s\":63072000,\"frame_options\":null,\"referrer_policy\":\"strict-origin-when-cross-origin\""), NULL,
         NULL},
        {SH("\"referrer_policy\":\"no-referrer-when-downgrade\""), NULL, NULL},
        {SH("\"referrer_policy\":\"same-origin\""), NULL, NULL},
        {SH("\"referrer_policy\":\"origin\""), NULL, NULL},
        {SH("\"referrer_policy\":\"strict-origin\""), NULL, NULL},
        {SH("\"referrer_policy\":\"origin-when-cross-origin\""), NULL, NULL},
        {SH("\"referrer_policy\":\"unsafe-url\""), NULL, NULL},
        {POL("\"security_headers\":null"), "invalid", S},
        {POL("\"security_headers\":[]"), "invalid", S},
        {SH("\"csp\":\"default-src 'self'\""), "unknown_field", S "/csp"},
        {SH("\"hsts_max_age_s\":-1"), "invalid", S "/hsts_max_age_s"},
        {SH("\"hsts_max_age_s\":63072001"), "invalid", S "/hsts_max_age_s"},
        {SH("\"hsts_max_age_s\":1.5"), "invalid", S "/hsts_max_age_s"},
        {SH("\"hsts_max_age_s\":\"31536000\""), "invalid", S "/hsts_max_age_s"},
        {SH("\"hsts_max_age_s\":null"), "invalid", S "/hsts_max_age_s"},
        {SH("\"hsts_subdomains\":1"), "invalid", S "/hsts_subdomains"},
        {SH("\"hsts_subdomains\":null"), "invalid", S "/hsts_subdomains"},
        {SH("\"content_type_options\":\"nosniff\""), "invalid", S "/content_type_options"},
        {SH("\"frame_options\":\"deny\""), "invalid", S "/frame_options"},
        {SH("\"frame_options\":\"ALLOW-FROM https://a.example\""), "invalid", S "/frame_options"},
        {SH("\"frame_options\":\"\""), "invalid", S "/frame_options"},
        {SH("\"frame_options\":false"), "invalid", S "/frame_options"},
        {SH("\"frame_options\":[\"DENY\"]"), "invalid", S "/frame_options"},
        {SH("\"referrer_policy\":\"No-Referrer\""), "invalid", S "/referrer_policy"},
        {SH("\"referrer_policy\":\"no-referrer, origin\""), "invalid", S "/referrer_policy"},
        {SH("\"referrer_policy\":\"no-referrer\\u0000\""), "invalid", S "/referrer_policy"},
        {SH("\"referrer_policy\":1"), "invalid", S "/referrer_policy"},
        /* table order */
        {SH("\"referrer_policy\":1,\"frame_options\":1,\"content_type_options\":1,\"hsts_subdomains\":1,\"hsts_max_age_s\":-1"),
         "invalid", S "/hsts_max_age_s"},
        {SH("\"referrer_policy\":1,\"frame_options\":1,\"content_type_options\":1,\"hsts_subdomains\":1"), "invalid",
         S "/hsts_subdomains"},
        {SH("\"referrer_policy\":1,\"frame_options\":1,\"content_type_options\":1"), "invalid", S "/content_type_options"},
        {SH("\"referrer_policy\":1,\"frame_options\":1"), "invalid", S "/frame_options"},
    };
    (void)state;
    RUN_ROUTES(cases);
}

static void test_limits(void **state)
{
    static const case_t cases[] = {
        {LIMITS(""), NULL, NULL},
        {LIMITS("\"max_body_bytes\":1048576,\"max_url_bytes\":8192,\"max_headers\":100,\"max_header_bytes\":65536"), NULL, NULL},
        {LIMITS("\"max_body_bytes\":0,\"max_url_bytes\":256,\"max_headers\":1,\"max_header_bytes\":1024"), NULL, NULL},
        {LIMITS("\"max_body_bytes\":1073741824,\"max_url_bytes\":65536,\"max_headers\":1000,\"max_header_bytes\":1048576"), NULL,
         NULL},
        {POL("\"limits\":null"), "invalid", L},
        {POL("\"limits\":8192"), "invalid", L},
        {LIMITS("\"max_body\":1"), "unknown_field", L "/max_body"},
        {LIMITS("\"max_body_bytes\":-1"), "invalid", L "/max_body_bytes"},
        {LIMITS("\"max_body_bytes\":1073741825"), "invalid", L "/max_body_bytes"},
        {LIMITS("\"max_body_bytes\":1e6"), "invalid", L "/max_body_bytes"},
        {LIMITS("\"max_body_bytes\":\"1048576\""), "invalid", L "/max_body_bytes"},
        {LIMITS("\"max_url_bytes\":255"), "invalid", L "/max_url_bytes"},
        {LIMITS("\"max_url_bytes\":65537"), "invalid", L "/max_url_bytes"},
        {LIMITS("\"max_headers\":0"), "invalid", L "/max_headers"},
        {LIMITS("\"max_headers\":1001"), "invalid", L "/max_headers"},
        {LIMITS("\"max_headers\":null"), "invalid", L "/max_headers"},
        {LIMITS("\"max_header_bytes\":1023"), "invalid", L "/max_header_bytes"},
        {LIMITS("\"max_header_bytes\":1048577"), "invalid", L "/max_header_bytes"},
        {LIMITS("\"max_header_bytes\":65536.0"), "invalid", L "/max_header_bytes"},
        /* table order */
        {LIMITS("\"max_header_bytes\":0,\"max_headers\":0,\"max_url_bytes\":0,\"max_body_bytes\":-1"), "invalid",
         L "/max_body_bytes"},
        {LIMITS("\"max_header_bytes\":0,\"max_headers\":0,\"max_url_bytes\":0"), "invalid", L "/max_url_bytes"},
        {LIMITS("\"max_header_bytes\":0,\"max_headers\":0"), "invalid", L "/max_headers"},
    };
    (void)state;
    RUN_ROUTES(cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policies_object),
        cmocka_unit_test(test_rate_limit_members),
        cmocka_unit_test(test_rate_limit_list),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_security_headers),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
