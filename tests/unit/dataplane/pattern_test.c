/*
 * pattern_test: endpoint path patterns (compile/authz.c) on a snapshot built from a JSON body. The matcher alone
 * (exact, template, prefix and template-with-tail edge cases: trailing slash, empty segments, "/a/ *" versus "/ab",
 * root "/ *", escapes compared literally) and the specificity order the decision picks the rule by (exact >
 * template > prefix, more literals, the left-most literal, longer prefixes, method-specific over "*", falling
 * through to a less specific rule when the method does not match), plus many rules in one service.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/authz.h"
#include "dataplane/compile/router.h"

static const cph_principal_t nobody = {.kind = CPH_PRINCIPAL_NONE};

/* Builds a snapshot with one service "s" and one route "r" on "/" and the given endpoint rules (JSON array text). */
static cph_snapshot_t *build(const char *endpoints)
{
    size_t cap = strlen(endpoints) + 512;
    char *text = malloc(cap), hash[CPH_HASH_SIZE] = "";
    json_error_t jerr;
    cph_error_t err;

    assert_non_null(text);
    snprintf(text, cap,
             "{\"services\":[{\"name\":\"s\",\"targets\":[]}],\"routes\":[{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/\"]}],"
             "\"endpoints\":%s}",
             endpoints);
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (body == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    cph_snapshot_hash(body, hash);
    cph_snapshot_t *snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    json_decref(body);
    if (snap == NULL)
        fail_msg("build failed: %s at %s: %s", err.code, err.path, err.msg);
    return snap;
}

#define PUBLIC(id, method, path)                                                                                                   \
    "{\"id\":" #id ",\"service\":\"s\",\"method\":\"" method "\",\"path\":\"" path "\",\"public\":true}"

/* build() with a JSON array of the given rule objects. */
static cph_snapshot_t *build_list(const char *const *rules, size_t n)
{
    size_t cap = 3, o = 0;

    for (size_t i = 0; i != n; ++i)
        cap += strlen(rules[i]) + 1;
    char *arr = malloc(cap);
    assert_non_null(arr);
    arr[o++] = '[';
    for (size_t i = 0; i != n; ++i)
        o += (size_t)snprintf(arr + o, cap - o, "%s%s", i == 0 ? "" : ",", rules[i]);
    arr[o++] = ']';
    arr[o] = '\0';
    cph_snapshot_t *snap = build(arr);
    free(arr);
    return snap;
}

static void expect_match(cph_snapshot_t *snap, int64_t id, const char *path, int want)
{
    const cph_authz_rule_t *rule = cph_authz_rule_by_id(snap, id);

    assert_non_null(rule);
    if (cph_authz_pattern_match(rule, path, strlen(path)) != want)
        fail_msg("pattern %s %s \"%s\"", rule->pattern, want ? "should match" : "should not match", path);
}

static void expect_kind(cph_snapshot_t *snap, int64_t id, cph_pattern_kind_t kind)
{
    assert_int_equal(cph_authz_rule_by_id(snap, id)->kind, kind);
}

static void test_matcher(void **state)
{
    (void)state;
    static const char *const rules[] = {
        PUBLIC(1, "*", "/a/b"),      PUBLIC(2, "*", "/a/"),       PUBLIC(3, "*", "/"),
        PUBLIC(4, "*", "/a/*"),      PUBLIC(5, "*", "/*"),        PUBLIC(6, "*", "/a/{id}"),
        PUBLIC(7, "*", "/a/{id}/b"), PUBLIC(8, "*", "/a/{id}/*"), PUBLIC(9, "*", "/{x}"),
    };
    cph_snapshot_t *snap = build_list(rules, sizeof(rules) / sizeof(rules[0]));

    expect_kind(snap, 1, CPH_PATTERN_EXACT);
    expect_kind(snap, 4, CPH_PATTERN_PREFIX);
    expect_kind(snap, 5, CPH_PATTERN_PREFIX);
    expect_kind(snap, 6, CPH_PATTERN_TEMPLATE);
    expect_kind(snap, 8, CPH_PATTERN_TEMPLATE);
    /* exact: byte for byte, a trailing slash is a different path */
    expect_match(snap, 1, "/a/b", 1);
    expect_match(snap, 1, "/a/b/", 0);
    expect_match(snap, 1, "/a/bc", 0);
    expect_match(snap, 1, "/a", 0);
    expect_match(snap, 2, "/a/", 1);
    expect_match(snap, 2, "/a", 0);
    expect_match(snap, 3, "/", 1);
    expect_match(snap, 3, "", 0);
    /* prefix: "/a/ *" is /a, /a/ and below, not /ab */
    expect_match(snap, 4, "/a", 1);
    expect_match(snap, 4, "/a/", 1);
    expect_match(snap, 4, "/a/b/c", 1);
    expect_match(snap, 4, "/ab", 0);
    expect_match(snap, 4, "/a%2Fb", 0); /* an escaped slash is no separator */
    expect_match(snap, 4, "/a/%2E%2E/x", 1);
    expect_match(snap, 4, "/", 0);
    expect_match(snap, 4, "/b/a", 0);
    expect_match(snap, 5, "/", 1);
    expect_match(snap, 5, "/x/y/", 1);
    /* template: one non-empty segment per parameter, escapes are just bytes */
    expect_match(snap, 6, "/a/7", 1);
    expect_match(snap, 6, "/a/%2F", 1);
    expect_match(snap, 6, "/a/%7Bid%7D", 1);
    expect_match(snap, 6, "/a/", 0);
    expect_match(snap, 6, "/a//", 0);
    expect_match(snap, 6, "/a/7/", 0);
    expect_match(snap, 6, "/a/7/8", 0);
    expect_match(snap, 6, "/a", 0);
    expect_match(snap, 6, "/b/7", 0);
    expect_match(snap, 7, "/a/x/b", 1);
    expect_match(snap, 7, "/a//b", 0);
    expect_match(snap, 7, "/a/x/b/", 0);
    expect_match(snap, 7, "/a/x/c", 0);
    /* template with a "/ *" tail */
    expect_match(snap, 8, "/a/7", 1);
    expect_match(snap, 8, "/a/7/", 1);
    expect_match(snap, 8, "/a/7/x/y", 1);
    expect_match(snap, 8, "/a/7x", 1);
    expect_match(snap, 8, "/a/", 0);
    expect_match(snap, 8, "/a", 0);
    expect_match(snap, 8, "/ab/7", 0);
    expect_match(snap, 9, "/a", 1);
    expect_match(snap, 9, "/", 0);
    expect_match(snap, 9, "/a/b", 0);
    cph_snapshot_release(snap);
}

/* The id of the rule that decides (method, path), 0 when none (every rule in these tests is public). */
static int64_t winner(cph_snapshot_t *snap, const char *method, const char *path)
{
    cph_authz_trace_t t;

    cph_authz_decide(snap, &snap->routes[0], cph_method_from(method, strlen(method)), path, strlen(path), &nobody, &t);
    return t.rule != NULL ? t.rule->id : 0;
}

#define WINNER(method, path, id)                                                                                                   \
    do {                                                                                                                           \
        int64_t got_ = winner(snap, method, path);                                                                                 \
        if (got_ != (id))                                                                                                          \
            fail_msg("%s %s: rule %lld, expected %lld", method, path, (long long)got_, (long long)(id));                           \
    } while (0)

static void test_specificity(void **state)
{
    (void)state;
    /* listed least specific first, so that the order of the body cannot be what decides */
    static const char *const rules[] = {
        PUBLIC(14, "*", "/f/*"),     PUBLIC(13, "POST", "/f/{x}"), PUBLIC(12, "*", "/m"),        PUBLIC(11, "GET", "/m"),
        PUBLIC(10, "*", "/v/{x}/*"), PUBLIC(9, "*", "/v/{x}"),     PUBLIC(8, "*", "/{a}/q/r"),   PUBLIC(7, "*", "/p/{b}/r"),
        PUBLIC(6, "*", "/l/{x}/k"),  PUBLIC(5, "*", "/l/k/{x}"),   PUBLIC(4, "*", "/t/{x}/{y}"), PUBLIC(3, "*", "/t/{x}/c"),
        PUBLIC(2, "*", "/a/*"),      PUBLIC(15, "*", "/a/b/*"),    PUBLIC(16, "*", "/a/{x}"),    PUBLIC(1, "*", "/a/b"),
        PUBLIC(17, "*", "/*"),
    };
    cph_snapshot_t *snap = build_list(rules, sizeof(rules) / sizeof(rules[0]));

    /* exact > template > prefix; the longer prefix first */
    WINNER("GET", "/a/b", 1);
    WINNER("GET", "/a/c", 16);
    WINNER("GET", "/a/c/d", 2);
    WINNER("GET", "/a", 2);
    WINNER("GET", "/a/b/c", 15);
    WINNER("GET", "/a/b/", 15);
    WINNER("GET", "/ab", 17);
    WINNER("GET", "/", 17);
    /* more literal segments */
    WINNER("GET", "/t/1/c", 3);
    WINNER("GET", "/t/1/d", 4);
    /* equal literal counts: the left-most literal */
    WINNER("GET", "/l/k/k", 5);
    WINNER("GET", "/l/z/k", 6);
    WINNER("GET", "/p/q/r", 7);
    WINNER("GET", "/o/q/r", 8);
    /* a template without the tail before the same template with it */
    WINNER("GET", "/v/1", 9);
    WINNER("GET", "/v/1/2", 10);
    WINNER("GET", "/v/1/", 10);
    /* equal pattern: a method beats "*" */
    WINNER("GET", "/m", 11);
    WINNER("POST", "/m", 12);
    WINNER("HEAD", "/m", 12);
    /* a more specific rule for another method is skipped */
    WINNER("GET", "/f/1", 14);
    WINNER("POST", "/f/1", 13);
    cph_snapshot_release(snap);
}

/* 3000 rules of every kind in one service: each path finds its own rule. */
static void test_many_rules(void **state)
{
    (void)state;
    size_t n = 1000, cap = n * 3 * 128 + 16, o = 0;
    char *arr = malloc(cap), path[64];

    assert_non_null(arr);
    arr[o++] = '[';
    for (size_t i = 0; i != n; ++i)
        o += (size_t)snprintf(arr + o, cap - o,
                              "%s{\"id\":%zu,\"service\":\"s\",\"method\":\"GET\",\"path\":\"/e%zu/x\",\"public\":true},"
                              "{\"id\":%zu,\"service\":\"s\",\"method\":\"*\",\"path\":\"/t%zu/{id}\",\"public\":true},"
                              "{\"id\":%zu,\"service\":\"s\",\"method\":\"*\",\"path\":\"/p%zu/*\",\"public\":true}",
                              i == 0 ? "" : ",", 3 * i + 1, i, 3 * i + 2, i, 3 * i + 3, i);
    arr[o++] = ']';
    arr[o] = '\0';
    cph_snapshot_t *snap = build(arr);
    free(arr);
    for (size_t i = 0; i < n; i += 37) {
        snprintf(path, sizeof(path), "/e%zu/x", i);
        WINNER("GET", path, (int64_t)(3 * i + 1));
        WINNER("POST", path, 0); /* /e.. has no POST rule, no template or prefix matches it */
        snprintf(path, sizeof(path), "/t%zu/9", i);
        WINNER("GET", path, (int64_t)(3 * i + 2));
        snprintf(path, sizeof(path), "/p%zu/a/b", i);
        WINNER("GET", path, (int64_t)(3 * i + 3));
    }
    cph_snapshot_release(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matcher),
        cmocka_unit_test(test_specificity),
        cmocka_unit_test(test_many_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
