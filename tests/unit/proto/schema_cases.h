/*
 * schema_cases: what every snapshot-schema test shares - a case (a JSON text, the error code it must get or NULL for
 * valid, the JSON pointer), the check of one validator call against it (the exact code and pointer, a message), and
 * the runners: each case through a check of the test's own (the object alone, inside a body...), or each case as
 * extra members of a body. The tests hold only their cases and their checks. Header-only, like the other fixtures.
 */
#ifndef CPH_TEST_SCHEMA_CASES_H
#define CPH_TEST_SCHEMA_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/proto.h"

typedef struct st_case_t {
    const char *json; /* the object under test, or extra members of a body (without braces) */
    const char *code; /* NULL: valid */
    const char *path; /* the JSON pointer of the error, relative to what the check says */
} case_t;

#define NUM_CASES(cases) (sizeof(cases) / sizeof((cases)[0]))

/* A JSON literal of the test (any value, NUL escapes allowed, duplicate keys not); a typo fails the test. */
static inline json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);

    if (v == NULL)
        fail_msg("test JSON does not parse: %s in %.200s", jerr.text, text);
    return v;
}

/* Checks a validator's ret and err: 0 when code is NULL, else -1 with exactly code at path and a message. */
static inline void expect(int ret, const cph_error_t *err, const char *what, const char *json, const char *code, const char *path)
{
    if (code == NULL) {
        if (ret != 0)
            fail_msg("%s %.300s: expected valid, got %s at \"%s\": %s", what, json, err->code, err->path, err->msg);
        return;
    }
    if (ret != -1)
        fail_msg("%s %.300s: expected %s at %s, got valid", what, json, code, path);
    if (strcmp(err->code, code) != 0 || strcmp(err->path, path) != 0)
        fail_msg("%s %.300s: expected %s at \"%s\", got %s at \"%s\" (%s)", what, json, code, path, err->code, err->path, err->msg);
    assert_true(strlen(err->msg) > 0);
}

/* expect() with the pointer prefix + path (path NULL: the prefix itself). */
static inline void expect_under(int ret, const cph_error_t *err, const char *what, const char *json, const char *code,
                                const char *prefix, const char *path)
{
    char at[512];

    snprintf(at, sizeof(at), "%s%s", prefix, path != NULL ? path : "");
    expect(ret, err, what, json, code, at);
}

/* cph_snapshot_validate on body (borrowed), the error expected at prefix + path; text names the case. */
static inline void check_body(const json_t *body, const char *text, const char *code, const char *prefix, const char *path)
{
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    expect_under(cph_snapshot_validate(body, &err), &err, "body", text, code, prefix, path);
}

/* Parses text as a whole body and checks it (pointer from the root). */
static inline void check_body_text(const char *text, const char *code, const char *path)
{
    json_t *body = parse(text);

    check_body(body, text, code, "", path);
    json_decref(body);
}

/* Validates the route on its own (pointer relative to it) and as /routes/0 of a body with service "orders". */
static inline void check_route(json_t *route, const char *text, const char *code, const char *path)
{
    json_t *body = json_pack("{s:[{s:s, s:[]}], s:[O]}", "services", "name", "orders", "targets", "routes", route);
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    expect_under(cph_schema_validate_route(route, &err), &err, "route", text, code, "", path);
    check_body(body, text, code, "/routes/0", path);
    json_decref(body);
}

/* A check of one case: v is the parsed case (borrowed), text its JSON. */
typedef void (*case_check_fn)(json_t *v, const char *text, const char *code, const char *path);

static inline void run_cases(const case_t *cases, size_t n, case_check_fn check)
{
    for (size_t i = 0; i != n; ++i) {
        json_t *v = parse(cases[i].json);
        check(v, cases[i].json, cases[i].code, cases[i].path);
        json_decref(v);
    }
}

/* Validates the body {<services>, <case's json>} for every case (pointer from the root). */
static inline void run_body_cases(const char *services, const case_t *cases, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        char *text;
        json_t *body;
        assert_true(asprintf(&text, "{%s%s%s}", services, cases[i].json[0] != '\0' ? "," : "", cases[i].json) > 0);
        body = parse(text);
        check_body(body, cases[i].json, cases[i].code, "", cases[i].path);
        json_decref(body), free(text);
    }
}

#define RUN_CASES(cases, check) run_cases(cases, NUM_CASES(cases), check)

#endif
