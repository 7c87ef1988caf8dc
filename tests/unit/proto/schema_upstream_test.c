/*
 * schema_upstream_test: a route's upstream policies in the snapshot schema (PROTOCOL.md section 5, "timeouts",
 * "retries", "websocket") and the top-level "gateway.websocket".
 *
 * Each route case is checked on the route alone (cph_schema_validate_route, pointer relative to it) and as /routes/0
 * of a body (schema_policy_cases.h): every member at its bounds and one past them, reals, strings, null, booleans,
 * nested junk, unknown members, list caps and repeats ("duplicate" at the later element), the websocket origins'
 * syntax (the CORS origin rule) and the order of the checks, within each object and among the policies members.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "schema_policy_cases.h"

#define T(members) POL("\"timeouts\":{" members "}")
#define RT(members) POL("\"retries\":{" members "}")
#define WS(members) POL("\"websocket\":{" members "}")
#define PT "/policies/timeouts"
#define PR "/policies/retries"
#define PW "/policies/websocket"

/* ---------------------------------------------------------------- timeouts */

static void test_timeouts(void **state)
{
    static const case_t cases[] = {
        {T(""), NULL, NULL},
        {T("\"connect_ms\":5000,\"first_byte_ms\":60000,\"idle_ms\":60000,\"total_ms\":0"), NULL, NULL},
        {T("\"connect_ms\":1,\"first_byte_ms\":1,\"idle_ms\":1,\"total_ms\":0"), NULL, NULL},
        {T("\"connect_ms\":3600000,\"first_byte_ms\":3600000,\"idle_ms\":3600000,\"total_ms\":86400000"), NULL, NULL},
        {T("\"total_ms\":1,\"connect_ms\":3600000"), NULL, NULL}, /* no rule between members */
        /* the object */
        {POL("\"timeouts\":null"), "invalid", PT},
        {POL("\"timeouts\":5000"), "invalid", PT},
        {POL("\"timeouts\":[5000]"), "invalid", PT},
        {POL("\"timeouts\":\"5s\""), "invalid", PT},
        {T("\"read_ms\":1"), "unknown_field", PT "/read_ms"},
        {T("\"connect\":1"), "unknown_field", PT "/connect"},
        {T("\"timeout_ms\":1"), "unknown_field", PT "/timeout_ms"},
        /* connect_ms 1..3600000 */
        {T("\"connect_ms\":0"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":-1"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":3600001"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":9223372036854775807"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":-9223372036854775808"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":5000.0"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":5e3"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":\"5000\""), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":null"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":true"), "invalid", PT "/connect_ms"},
        {T("\"connect_ms\":{\"ms\":[1]}"), "invalid", PT "/connect_ms"},
        /* first_byte_ms, idle_ms 1..3600000 */
        {T("\"first_byte_ms\":0"), "invalid", PT "/first_byte_ms"},
        {T("\"first_byte_ms\":3600001"), "invalid", PT "/first_byte_ms"},
        {T("\"first_byte_ms\":null"), "invalid", PT "/first_byte_ms"},
        {T("\"first_byte_ms\":1.0"), "invalid", PT "/first_byte_ms"},
        {T("\"idle_ms\":0"), "invalid", PT "/idle_ms"},
        {T("\"idle_ms\":3600001"), "invalid", PT "/idle_ms"},
        {T("\"idle_ms\":[]"), "invalid", PT "/idle_ms"},
        /* total_ms 0..86400000 */
        {T("\"total_ms\":-1"), "invalid", PT "/total_ms"},
        {T("\"total_ms\":86400001"), "invalid", PT "/total_ms"},
        {T("\"total_ms\":0.0"), "invalid", PT "/total_ms"},
        {T("\"total_ms\":false"), "invalid", PT "/total_ms"},
        /* order: unknown members, then table order */
        {T("\"total_ms\":-1,\"idle_ms\":0,\"first_byte_ms\":0,\"connect_ms\":0,\"zz\":1"), "unknown_field", PT "/zz"},
        {T("\"total_ms\":-1,\"idle_ms\":0,\"first_byte_ms\":0,\"connect_ms\":0"), "invalid", PT "/connect_ms"},
        {T("\"total_ms\":-1,\"idle_ms\":0,\"first_byte_ms\":0"), "invalid", PT "/first_byte_ms"},
        {T("\"total_ms\":-1,\"idle_ms\":0"), "invalid", PT "/idle_ms"},
    };

    (void)state;
    RUN_ROUTES(cases);
}

/* ---------------------------------------------------------------- retries */

static void test_retries(void **state)
{
    static const case_t cases[] = {
        {RT(""), NULL, NULL},
        {RT("\"max\":1,\"statuses\":[502,503,504],\"budget_percent\":20,\"min_concurrent\":3"), NULL, NULL},
        {RT("\"max\":0,\"statuses\":[],\"budget_percent\":0,\"min_concurrent\":0"), NULL, NULL},
        {RT("\"max\":5,\"statuses\":[500,501,502,503,504,505,598,599],\"budget_percent\":100,\"min_concurrent\":1000"), NULL, NULL},
        {RT("\"statuses\":[599,500]"), NULL, NULL},
        /* the object */
        {POL("\"retries\":null"), "invalid", PR},
        {POL("\"retries\":1"), "invalid", PR},
        {POL("\"retries\":true"), "invalid", PR},
        {POL("\"retries\":[]"), "invalid", PR},
        {RT("\"attempts\":1"), "unknown_field", PR "/attempts"},
        {RT("\"on\":[\"connect\"]"), "unknown_field", PR "/on"},
        {RT("\"per_try_timeout_ms\":1"), "unknown_field", PR "/per_try_timeout_ms"},
        /* max 0..5 */
        {RT("\"max\":-1"), "invalid", PR "/max"},
        {RT("\"max\":6"), "invalid", PR "/max"},
        {RT("\"max\":9223372036854775807"), "invalid", PR "/max"},
        {RT("\"max\":1.0"), "invalid", PR "/max"},
        {RT("\"max\":\"1\""), "invalid", PR "/max"},
        {RT("\"max\":null"), "invalid", PR "/max"},
        {RT("\"max\":false"), "invalid", PR "/max"},
        /* statuses: 0..8 unique integers 500..599 */
        {RT("\"statuses\":null"), "invalid", PR "/statuses"},
        {RT("\"statuses\":502"), "invalid", PR "/statuses"},
        {RT("\"statuses\":\"502\""), "invalid", PR "/statuses"},
        {RT("\"statuses\":{}"), "invalid", PR "/statuses"},
        {RT("\"statuses\":[500,501,502,503,504,505,506,507,508]"), "invalid", PR "/statuses"},
        {RT("\"statuses\":[499]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[502,600]"), "invalid", PR "/statuses/1"},
        {RT("\"statuses\":[429]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[200]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[-502]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[502.0]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[\"502\"]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[null]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[[502]]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[true]"), "invalid", PR "/statuses/0"},
        {RT("\"statuses\":[502,503,502]"), "duplicate", PR "/statuses/2"},
        {RT("\"statuses\":[503,503]"), "duplicate", PR "/statuses/1"},
        /* budget_percent 0..100, min_concurrent 0..1000 */
        {RT("\"budget_percent\":-1"), "invalid", PR "/budget_percent"},
        {RT("\"budget_percent\":101"), "invalid", PR "/budget_percent"},
        {RT("\"budget_percent\":20.5"), "invalid", PR "/budget_percent"},
        {RT("\"budget_percent\":\"20%\""), "invalid", PR "/budget_percent"},
        {RT("\"min_concurrent\":-1"), "invalid", PR "/min_concurrent"},
        {RT("\"min_concurrent\":1001"), "invalid", PR "/min_concurrent"},
        {RT("\"min_concurrent\":null"), "invalid", PR "/min_concurrent"},
        {RT("\"min_concurrent\":-9223372036854775808"), "invalid", PR "/min_concurrent"},
        /* order */
        {RT("\"min_concurrent\":-1,\"budget_percent\":-1,\"statuses\":[1],\"max\":6,\"zz\":0"), "unknown_field", PR "/zz"},
        {RT("\"min_concurrent\":-1,\"budget_percent\":-1,\"statuses\":[1],\"max\":6"), "invalid", PR "/max"},
        {RT("\"min_concurrent\":-1,\"budget_percent\":-1,\"statuses\":[1]"), "invalid", PR "/statuses/0"},
        {RT("\"min_concurrent\":-1,\"budget_percent\":-1"), "invalid", PR "/budget_percent"},
    };

    (void)state;
    RUN_ROUTES(cases);
}

/* ---------------------------------------------------------------- websocket */

static void test_websocket(void **state)
{
    static const case_t cases[] = {
        {WS(""), NULL, NULL},
        {WS("\"idle_timeout_ms\":300000,\"max_lifetime_ms\":0,\"max_per_client\":0,\"origins\":[],\"max_frame_bytes\":"
            "1048576,\"close_on_token_expiry\":false"),
         NULL, NULL},
        {WS("\"idle_timeout_ms\":1,\"max_lifetime_ms\":604800000,\"max_per_client\":100000,\"max_frame_bytes\":125,"
            "\"close_on_token_expiry\":true"),
         NULL, NULL},
        {WS("\"idle_timeout_ms\":86400000,\"max_frame_bytes\":67108864"), NULL, NULL},
        {WS("\"origins\":[\"*\"]"), NULL, NULL},
        {WS("\"origins\":[\"https://app.example.com\",\"http://localhost:3000\",\"http://127.0.0.1:8080\","
            "\"https://[::1]:8443\",\"https://a.example:8443\"]"),
         NULL, NULL},
        /* the object */
        {POL("\"websocket\":null"), "invalid", PW},
        {POL("\"websocket\":true"), "invalid", PW},
        {POL("\"websocket\":[]"), "invalid", PW},
        {POL("\"websocket\":\"on\""), "invalid", PW},
        {WS("\"enabled\":true"), "unknown_field", PW "/enabled"},
        {WS("\"subprotocols\":[]"), "unknown_field", PW "/subprotocols"},
        {WS("\"drain_grace_ms\":1"), "unknown_field", PW "/drain_grace_ms"}, /* the gateway's member */
        /* idle_timeout_ms 1..86400000 */
        {WS("\"idle_timeout_ms\":0"), "invalid", PW "/idle_timeout_ms"},
        {WS("\"idle_timeout_ms\":86400001"), "invalid", PW "/idle_timeout_ms"},
        {WS("\"idle_timeout_ms\":-300000"), "invalid", PW "/idle_timeout_ms"},
        {WS("\"idle_timeout_ms\":300000.0"), "invalid", PW "/idle_timeout_ms"},
        {WS("\"idle_timeout_ms\":null"), "invalid", PW "/idle_timeout_ms"},
        /* max_lifetime_ms 0..604800000 */
        {WS("\"max_lifetime_ms\":-1"), "invalid", PW "/max_lifetime_ms"},
        {WS("\"max_lifetime_ms\":604800001"), "invalid", PW "/max_lifetime_ms"},
        {WS("\"max_lifetime_ms\":9223372036854775807"), "invalid", PW "/max_lifetime_ms"},
        {WS("\"max_lifetime_ms\":\"1w\""), "invalid", PW "/max_lifetime_ms"},
        /* max_per_client 0..100000 */
        {WS("\"max_per_client\":-1"), "invalid", PW "/max_per_client"},
        {WS("\"max_per_client\":100001"), "invalid", PW "/max_per_client"},
        {WS("\"max_per_client\":1e2"), "invalid", PW "/max_per_client"},
        {WS("\"max_per_client\":false"), "invalid", PW "/max_per_client"},
        /* origins: 0..64 origins (the CORS rule), unique, or "*" alone */
        {WS("\"origins\":null"), "invalid", PW "/origins"},
        {WS("\"origins\":\"*\""), "invalid", PW "/origins"},
        {WS("\"origins\":\"https://a.example\""), "invalid", PW "/origins"},
        {WS("\"origins\":{}"), "invalid", PW "/origins"},
        {WS("\"origins\":[1]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[null]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[[\"*\"]]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"null\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://A.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example/\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example/chat\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example:443\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"http://a.example:80\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example:0\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example:65536\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"wss://a.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"ws://a.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"a.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://*.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://u@a.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example\\u0000\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example \"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"https://a.example\",\"*\"]"), "invalid", PW "/origins/1"},
        {WS("\"origins\":[\"*\",\"https://a.example\"]"), "invalid", PW "/origins/0"},
        {WS("\"origins\":[\"*\",\"*\"]"), "duplicate", PW "/origins/1"},
        {WS("\"origins\":[\"https://a.example\",\"http://a.example\",\"https://a.example\"]"), "duplicate", PW "/origins/2"},
        /* max_frame_bytes 125..67108864 */
        {WS("\"max_frame_bytes\":124"), "invalid", PW "/max_frame_bytes"},
        {WS("\"max_frame_bytes\":0"), "invalid", PW "/max_frame_bytes"},
        {WS("\"max_frame_bytes\":67108865"), "invalid", PW "/max_frame_bytes"},
        {WS("\"max_frame_bytes\":-9223372036854775808"), "invalid", PW "/max_frame_bytes"},
        {WS("\"max_frame_bytes\":1048576.0"), "invalid", PW "/max_frame_bytes"},
        {WS("\"max_frame_bytes\":\"1MiB\""), "invalid", PW "/max_frame_bytes"},
        /* close_on_token_expiry: a boolean */
        {WS("\"close_on_token_expiry\":0"), "invalid", PW "/close_on_token_expiry"},
        {WS("\"close_on_token_expiry\":1"), "invalid", PW "/close_on_token_expiry"},
        {WS("\"close_on_token_expiry\":\"true\""), "invalid", PW "/close_on_token_expiry"},
        {WS("\"close_on_token_expiry\":null"), "invalid", PW "/close_on_token_expiry"},
        {WS("\"close_on_token_expiry\":[]"), "invalid", PW "/close_on_token_expiry"},
        /* order */
        {WS("\"close_on_token_expiry\":0,\"max_frame_bytes\":0,\"origins\":1,\"max_per_client\":-1,\"max_lifetime_ms\":-1,"
            "\"idle_timeout_ms\":0,\"zz\":1"),
         "unknown_field", PW "/zz"},
        {WS("\"close_on_token_expiry\":0,\"max_frame_bytes\":0,\"origins\":1,\"max_per_client\":-1,\"max_lifetime_ms\":-1,"
            "\"idle_timeout_ms\":0"),
         "invalid", PW "/idle_timeout_ms"},
        {WS("\"close_on_token_expiry\":0,\"max_frame_bytes\":0,\"origins\":1,\"max_per_client\":-1,\"max_lifetime_ms\":-1"),
         "invalid", PW "/max_lifetime_ms"},
        {WS("\"close_on_token_expiry\":0,\"max_frame_bytes\":0,\"origins\":1,\"max_per_client\":-1"), "invalid",
         PW "/max_per_client"},
        {WS("\"close_on_token_expiry\":0,\"max_frame_bytes\":0,\"origins\":1"), "invalid", PW "/origins"},
        {WS("\"close_on_token_expiry\":0,\"max_frame_bytes\":0"), "invalid", PW "/max_frame_bytes"},
    };

    (void)state;
    RUN_ROUTES(cases);
}

/* The origins cap: 64 distinct origins pass, 65 do not (refused at the list, before any element). */
static void test_websocket_origins_cap(void **state)
{
    json_t *route = parse(R("")), *ws = json_object(), *origins = json_array();
    char origin[64];

    (void)state;
    for (int i = 0; i != 64; ++i) {
        snprintf(origin, sizeof(origin), "https://app%d.example", i);
        json_array_append_new(origins, json_string(origin));
    }
    json_object_set_new(ws, "origins", origins);
    json_object_set_new(route, "policies", json_pack("{s:o}", "websocket", ws));
    check_route(route, "64 origins", NULL, NULL);
    json_array_append_new(origins, json_integer(0));
    check_route(route, "65 elements", "invalid", PW "/origins");
    json_decref(route);
}

/* ---------------------------------------------------------------- among the policies members */

static void test_policies_order(void **state)
{
    static const case_t cases[] = {
        {POL("\"timeouts\":{},\"retries\":{},\"websocket\":{},\"cache\":{},\"https_redirect\":true"), NULL, NULL},
        /* after every other member (cache last of them), then timeouts, retries, websocket */
        {POL("\"websocket\":1,\"retries\":1,\"timeouts\":1,\"cache\":1"), "invalid", "/policies/cache"},
        {POL("\"websocket\":1,\"retries\":1,\"timeouts\":1,\"rate_limits\":[1]"), "invalid", "/policies/rate_limits/0"},
        {POL("\"websocket\":1,\"retries\":1,\"timeouts\":1"), "invalid", PT},
        {POL("\"websocket\":1,\"retries\":1"), "invalid", PR},
        {POL("\"websocket\":1,\"bogus\":1"), "unknown_field", "/policies/bogus"},
        {POL("\"websocket\":1"), "invalid", PW},
        /* a service's members are not a route's */
        {POL("\"lb\":{}"), "unknown_field", "/policies/lb"},
        {POL("\"health_check\":null"), "unknown_field", "/policies/health_check"},
        {POL("\"outlier\":{}"), "unknown_field", "/policies/outlier"},
    };

    (void)state;
    RUN_ROUTES(cases);
}

/* ---------------------------------------------------------------- gateway.websocket */

#define GW(members) "\"gateway\":{" members "}"
#define G "/gateway/websocket"

static void test_gateway_websocket(void **state)
{
    static const case_t cases[] = {
        {GW("\"websocket\":{}"), NULL, NULL},
        {GW("\"websocket\":{\"drain_grace_ms\":0}"), NULL, NULL},
        {GW("\"websocket\":{\"drain_grace_ms\":30000}"), NULL, NULL},
        {GW("\"websocket\":{\"drain_grace_ms\":3600000}"), NULL, NULL},
        {GW("\"websocket\":null"), "invalid", G},
        {GW("\"websocket\":30000"), "invalid", G},
        {GW("\"websocket\":[]"), "invalid", G},
        {GW("\"websocket\":\"\""), "invalid", G},
        {GW("\"websocket\":{\"drain_ms\":1}"), "unknown_field", G "/drain_ms"},
        {GW("\"websocket\":{\"idle_timeout_ms\":1}"), "unknown_field", G "/idle_timeout_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":-1}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":3600001}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":9223372036854775807}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":-9223372036854775808}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":30000.0}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":\"30s\"}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":null}"), "invalid", G "/drain_grace_ms"},
        {GW("\"websocket\":{\"drain_grace_ms\":{\"a\":[]}}"), "invalid", G "/drain_grace_ms"},
        /* unknown gateway members first; then websocket after cache, last of the gateway */
        {GW("\"websocket\":{\"drain_grace_ms\":-1},\"websockets\":{}"), "unknown_field", "/gateway/websockets"},
        {GW("\"websocket\":{\"drain_grace_ms\":-1},\"cache\":{\"max_bytes\":-1}"), "invalid", "/gateway/cache/max_bytes"},
        {GW("\"websocket\":1,\"trusted_proxy_hops\":9"), "invalid", "/gateway/trusted_proxy_hops"},
        /* the gateway comes last of the body */
        {GW("\"websocket\":1") ",\"revoked\":{\"users\":[1]}", "invalid", "/revoked/users/0"},
    };

    (void)state;
    RUN_BODIES(cases);
}

/* ---------------------------------------------------------------- gateway.request_id */

#define RID "/gateway/request_id"

static void test_gateway_request_id(void **state)
{
    static const case_t cases[] = {
        {GW("\"request_id\":{}"), NULL, NULL},
        {GW("\"request_id\":{\"trust_incoming\":true}"), NULL, NULL},
        {GW("\"request_id\":{\"trust_incoming\":false}"), NULL, NULL},
        {GW("\"request_id\":null"), "invalid", RID},
        {GW("\"request_id\":true"), "invalid", RID},
        {GW("\"request_id\":[]"), "invalid", RID},
        {GW("\"request_id\":{\"trust_incoming\":1}"), "invalid", RID "/trust_incoming"},
        {GW("\"request_id\":{\"trust_incoming\":\"true\"}"), "invalid", RID "/trust_incoming"},
        {GW("\"request_id\":{\"trust_incoming\":null}"), "invalid", RID "/trust_incoming"},
        {GW("\"request_id\":{\"trust\":true}"), "unknown_field", RID "/trust"},
        {GW("\"request_id\":{\"trust_incoming\":true,\"header\":\"x-trace\"}"), "unknown_field", RID "/header"},
    };

    (void)state;
    RUN_BODIES(cases);
}

/* ---------------------------------------------------------------- gateway.connections */

#define CONN "/gateway/connections"

static void test_gateway_connections(void **state)
{
    static const case_t cases[] = {
        {GW("\"connections\":{}"), NULL, NULL},
        {GW("\"connections\":{\"max_per_ip\":0}"), NULL, NULL},
        {GW("\"connections\":{\"max_per_ip\":1000000}"), NULL, NULL},
        {GW("\"connections\":null"), "invalid", CONN},
        {GW("\"connections\":5"), "invalid", CONN},
        {GW("\"connections\":{\"max_per_ip\":-1}"), "invalid", CONN "/max_per_ip"},
        {GW("\"connections\":{\"max_per_ip\":1000001}"), "invalid", CONN "/max_per_ip"},
        {GW("\"connections\":{\"max_per_ip\":1.5}"), "invalid", CONN "/max_per_ip"},
        {GW("\"connections\":{\"max_per_ip\":\"10\"}"), "invalid", CONN "/max_per_ip"},
        {GW("\"connections\":{\"max_per_ip\":9223372036854775807}"), "invalid", CONN "/max_per_ip"},
        {GW("\"connections\":{\"per_ip\":1}"), "unknown_field", CONN "/per_ip"},
    };

    (void)state;
    RUN_BODIES(cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeouts),       cmocka_unit_test(test_retries),
        cmocka_unit_test(test_websocket),      cmocka_unit_test(test_websocket_origins_cap),
        cmocka_unit_test(test_policies_order), cmocka_unit_test(test_gateway_websocket),
        cmocka_unit_test(test_gateway_request_id),
        cmocka_unit_test(test_gateway_connections),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
