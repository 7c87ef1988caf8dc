/*
 * schema_policy_cases: the route builders the traffic-policy schema tests share (schema_policy_test.c for a route's
 * policies, schema_policy_body_test.c for IP lists, endpoint overrides, the gateway and the body order,
 * schema_upstream_test.c for timeouts, retries and websocket): each route case is checked on one route
 * (cph_schema_validate_route, as the admin API runs it) and inside a whole body, each body case inside a body with one
 * service, with the exact error code and JSON pointer (the runners are schema_cases.h's). Header-only, like the other
 * test fixtures.
 */
#ifndef CPH_TEST_SCHEMA_POLICY_CASES_H
#define CPH_TEST_SCHEMA_POLICY_CASES_H

#include "schema_cases.h"

#define SERVICES "\"services\":[{\"name\":\"orders\",\"targets\":[]}],\"routes\":[]"

#define RUN_ROUTES(cases) RUN_CASES(cases, check_route)
#define RUN_BODIES(cases) run_body_cases(SERVICES, cases, NUM_CASES(cases))

#define R(extra) "{\"name\":\"r\",\"service\":\"orders\",\"paths\":[\"/api\"]" extra "}"
#define POL(members) R(",\"policies\":{" members "}")
#define RL(items) POL("\"rate_limits\":[" items "]")
#define LIM(extra) "{\"name\":\"a\",\"key\":\"ip\",\"rate\":10,\"period_s\":1" extra "}"
#define P0 "/policies/rate_limits/0"

/* A route whose policies member `key` is a list of n copies of item (a JSON text), item_i (with "%zu") varying. */
static inline json_t *route_with_list(const char *key, size_t n, const char *item_fmt)
{
    json_t *route = parse(R("")), *list = json_array();
    char item[256];

    for (size_t i = 0; i != n; ++i) {
        snprintf(item, sizeof(item), item_fmt, i);
        json_array_append_new(list, parse(item));
    }
    json_object_set_new(route, "policies", json_pack("{s:o}", key, list));
    return route;
}

#endif
