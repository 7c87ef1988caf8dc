/*
 * schema_policy_cases: the case tables and runners the traffic-policy schema tests share (schema_policy_test.c for a
 * route's policies, schema_policy_body_test.c for IP lists, endpoint overrides, the gateway and the body order): each
 * case is checked on one route (cph_schema_validate_route, as the admin API runs it) and inside a whole body, with
 * the exact error code and JSON pointer. Header-only, like the other test fixtures.
 */
#ifndef CPH_TEST_SCHEMA_POLICY_CASES_H
#define CPH_TEST_SCHEMA_POLICY_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/proto.h"

typedef struct st_case_t {
    const char *json; /* the route under test, or extra top-level members (without braces) */
    const char *code; /* NULL: valid */
    const char *path;
} case_t;

#define SERVICES "\"services\":[{\"name\":\"orders\",\"targets\":[]}],\"routes\":[]"

static inline json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);

    if (v == NULL)
        fail_msg("test JSON does not parse: %s in %s", jerr.text, text);
    return v;
}

static inline void expect(int ret, const cph_error_t *err, const char *what, const char *json, const char *code, const char *path)
{
    if (code == NULL) {
        if (ret != 0)
            fail_msg("%s %s: expected valid, got %s at \"%s\": %s", what, json, err->code, err->path, err->msg);
        return;
    }
    if (ret != -1)
        fail_msg("%s %s: expected %s at %s, got valid", what, json, code, path);
    if (strcmp(err->code, code) != 0 || strcmp(err->path, path) != 0)
        fail_msg("%s %s: expected %s at \"%s\", got %s at \"%s\" (%s)", what, json, code, path, err->code, err->path, err->msg);
    assert_true(strlen(err->msg) > 0);
}

/* Validates the route on its own (pointer relative to it) and as /routes/0 of a body (pointer under it). */
static inline void check_route(json_t *route, const char *json, const char *code, const char *path)
{
    json_t *body = json_pack("{s:[{s:s, s:[]}], s:[O]}", "services", "name", "orders", "targets", "routes", route);
    cph_error_t err;
    char in_body[300];

    memset(&err, 0, sizeof(err));
    expect(cph_schema_validate_route(route, &err), &err, "route", json, code, path);
    snprintf(in_body, sizeof(in_body), "/routes/0%s", path != NULL ? path : "");
    memset(&err, 0, sizeof(err));
    expect(cph_snapshot_validate(body, &err), &err, "body", json, code, in_body);
    json_decref(body);
}

static inline void run_route_cases(const case_t *cases, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        json_t *route = parse(cases[i].json);
        check_route(route, cases[i].json, cases[i].code, cases[i].path);
        json_decref(route);
    }
}

/* Validates {SERVICES, <c->json>} for every case. */
static inline void run_body_cases(const case_t *cases, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        char *text;
        json_t *body;
        cph_error_t err;
        assert_true(asprintf(&text, "{" SERVICES "%s%s}", cases[i].json[0] != '\0' ? "," : "", cases[i].json) > 0);
        body = parse(text);
        memset(&err, 0, sizeof(err));
        expect(cph_snapshot_validate(body, &err), &err, "body", cases[i].json, cases[i].code, cases[i].path);
        json_decref(body), free(text);
    }
}

#define RUN_ROUTES(cases) run_route_cases(cases, sizeof(cases) / sizeof(cases[0]))
#define RUN_BODIES(cases) run_body_cases(cases, sizeof(cases) / sizeof(cases[0]))

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
