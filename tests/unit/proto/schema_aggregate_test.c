/*
 * schema_aggregate_test: an "aggregate" route's configuration in the snapshot schema (PROTOCOL.md section 5,
 * "aggregate route"): the route kind's pairing with its object, every member's type and bounds, the pattern rules of
 * endpoint patterns, the backends' list (caps, unique names and keys, "_errors" refused as a key) and the path
 * template's hostile spellings (placeholders not in the pattern, stray braces, dot segments built from a placeholder,
 * '#', spaces, control bytes, bad escapes, non-canonical literals). Every route case is checked alone and as /routes/0
 * of a body whose one service is "orders"; backends naming a service the body lacks are checked on bodies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "schema_cases.h"

#define R(extra) "{\"name\":\"r\",\"service\":\"orders\",\"paths\":[\"/dash\"]" extra "}"
#define AGG(members) R(",\"kind\":\"aggregate\",\"aggregate\":{" members "}")
#define PAT "\"pattern\":\"/dash/{id}\""
#define BE(extra) "{\"name\":\"u\",\"service\":\"orders\",\"path\":\"/u/{id}\"" extra "}"
#define BACKENDS(items) "\"backends\":[" items "]"
#define A1(agg_extra, be_extra) AGG(PAT "," BACKENDS(BE(be_extra)) agg_extra)
#define PATH(p) AGG(PAT "," BACKENDS("{\"name\":\"u\",\"service\":\"orders\",\"path\":\"" p "\"}"))
#define PA "/aggregate"
#define PB "/aggregate/backends/0"

static void test_kind(void **state)
{
    static const case_t cases[] = {
        {A1("", ""), NULL, NULL},
        {R(",\"kind\":\"aggregate\""), "missing_field", PA},
        {R(",\"kind\":\"aggregate\",\"aggregate\":null"), "invalid", PA},
        {R(",\"kind\":\"aggregate\",\"aggregate\":[]"), "invalid", PA},
        {R(",\"aggregate\":{" PAT "," BACKENDS(BE("")) "}"), "invalid", PA}, /* a proxy route */
        {R(",\"kind\":\"proxy\",\"aggregate\":{" PAT "," BACKENDS(BE("")) "}"), "invalid", PA},
        {AGG(PAT "," BACKENDS(BE("")) ",\"extra\":1"), "unknown_field", PA "/extra"},
    };

    (void)state;
    RUN_CASES(cases, check_route);
}

static void test_members(void **state)
{
    static const case_t cases[] = {
        {A1(",\"deadline_ms\":1,\"on_deadline\":\"error\"", ""), NULL, NULL},
        {A1(",\"deadline_ms\":60000,\"on_deadline\":\"partial\"", ""), NULL, NULL},
        {A1(",\"deadline_ms\":0", ""), "invalid", PA "/deadline_ms"},
        {A1(",\"deadline_ms\":60001", ""), "invalid", PA "/deadline_ms"},
        {A1(",\"deadline_ms\":100.0", ""), "invalid", PA "/deadline_ms"},
        {A1(",\"deadline_ms\":\"100\"", ""), "invalid", PA "/deadline_ms"},
        {A1(",\"on_deadline\":\"fail\"", ""), "invalid", PA "/on_deadline"},
        {A1(",\"on_deadline\":null", ""), "invalid", PA "/on_deadline"},
        /* pattern: required, an endpoint pattern */
        {AGG(BACKENDS(BE(""))), "missing_field", PA "/pattern"},
        {AGG("\"pattern\":5," BACKENDS(BE(""))), "invalid", PA "/pattern"},
        {AGG("\"pattern\":\"dash\"," BACKENDS(BE(""))), "invalid", PA "/pattern"},
        {AGG("\"pattern\":\"/dash/../{id}\"," BACKENDS(BE(""))), "invalid", PA "/pattern"},
        {AGG("\"pattern\":\"/dash/{id}/{id}\"," BACKENDS(BE(""))), "invalid", PA "/pattern"},
        {AGG("\"pattern\":\"/dash/x{id}\"," BACKENDS(BE(""))), "invalid", PA "/pattern"},
        {AGG("\"pattern\":\"/dash/{id}\\u0000\"," BACKENDS(BE(""))), "invalid", PA "/pattern"},
        {AGG("\"pattern\":\"/dash/{id}/*\"," BACKENDS(BE(""))), NULL, NULL},
        /* backends: 1-16 objects */
        {AGG(PAT), "missing_field", PA "/backends"},
        {AGG(PAT ",\"backends\":[]"), "invalid", PA "/backends"},
        {AGG(PAT ",\"backends\":{}"), "invalid", PA "/backends"},
        {AGG(PAT ",\"backends\":[1]"), "invalid", PB},
    };

    (void)state;
    RUN_CASES(cases, check_route);
}

static void test_backend(void **state)
{
    static const case_t cases[] = {
        {A1("", ",\"method\":\"POST\",\"key\":\"user\",\"required\":false"), NULL, NULL},
        {A1("", ",\"method\":\"GET\",\"required\":true"), NULL, NULL},
        {A1("", ",\"method\":\"PUT\""), "invalid", PB "/method"},
        {A1("", ",\"method\":\"get\""), "invalid", PB "/method"},
        {A1("", ",\"required\":1"), "invalid", PB "/required"},
        {A1("", ",\"required\":null"), "invalid", PB "/required"},
        {A1("", ",\"key\":\"\""), "invalid", PB "/key"},
        {A1("", ",\"key\":\"_errors\""), "invalid", PB "/key"},
        {A1("", ",\"key\":\"a b\""), "invalid", PB "/key"},
        {A1("", ",\"key\":null"), "invalid", PB "/key"},
        {A1("", ",\"timeout\":1"), "unknown_field", PB "/timeout"},
        {AGG(PAT "," BACKENDS("{\"service\":\"orders\",\"path\":\"/u\"}")), "missing_field", PB "/name"},
        {AGG(PAT "," BACKENDS("{\"name\":\"u\",\"path\":\"/u\"}")), "missing_field", PB "/service"},
        {AGG(PAT "," BACKENDS("{\"name\":\"u\",\"service\":\"orders\"}")), "missing_field", PB "/path"},
        {AGG(PAT "," BACKENDS("{\"name\":\"u/x\",\"service\":\"orders\",\"path\":\"/u\"}")), "invalid", PB "/name"},
        /* unique names and keys */
        {AGG(PAT "," BACKENDS(BE("") "," BE(""))), "duplicate", PA "/backends/1/name"},
        {AGG(PAT "," BACKENDS(BE(",\"key\":\"k\"") ",{\"name\":\"v\",\"service\":\"orders\",\"path\":\"/v\",\"key\":\"k\"}")),
         "duplicate", PA "/backends/1/key"},
        {AGG(PAT "," BACKENDS(BE(",\"key\":\"k\"") ",{\"name\":\"v\",\"service\":\"orders\",\"path\":\"/v\",\"key\":\"l\"}")), NULL,
         NULL},
    };

    (void)state;
    RUN_CASES(cases, check_route);
}

static void test_backends_cap(void **state)
{
    json_t *route = parse(A1("", "")), *backends = json_object_get(json_object_get(route, "aggregate"), "backends");
    char name[16];

    (void)state;
    for (int i = 1; i != 16; ++i) {
        snprintf(name, sizeof(name), "b%d", i);
        json_array_append_new(backends, json_pack("{s:s,s:s,s:s}", "name", name, "service", "orders", "path", "/x"));
    }
    check_route(route, "16 backends", NULL, NULL);
    json_array_append_new(backends, json_pack("{s:s,s:s,s:s}", "name", "b16", "service", "orders", "path", "/x"));
    check_route(route, "17 backends", "invalid", PA "/backends");
    json_decref(route);
}

static void test_template(void **state)
{
    static const case_t cases[] = {
        {PATH("/u/{id}"), NULL, NULL},
        {PATH("/u/{id}/orders?limit={query.limit}&x=1"), NULL, NULL},
        {PATH("/u/x{id}y/{query.a}"), NULL, NULL},
        {PATH("/u?q={id}&r={query.r-1.x_~}"), NULL, NULL},
        {PATH("/u?a=%20b"), NULL, NULL},
        {PATH("/u/{id}{query.b}"), NULL, NULL},
        {PATH("/u/{query.a}/{query.b}"), NULL, NULL}, /* empty values give "//": not a dot segment */
        /* start, length, bytes */
        {PATH(""), "invalid", PB "/path"},
        {PATH("u/{id}"), "invalid", PB "/path"},
        {PATH("{id}"), "invalid", PB "/path"},
        {PATH("/u/{id}#frag"), "invalid", PB "/path"},
        {PATH("/u/ {id}"), "invalid", PB "/path"},
        {PATH("/u/\\r\\n{id}"), "invalid", PB "/path"},
        {PATH("/u/\\u0000"), "invalid", PB "/path"},
        {PATH("/u/\\u00e9"), "invalid", PB "/path"},
        /* placeholders */
        {PATH("/u/{user}"), "invalid", PB "/path"},
        {PATH("/u/{}"), "invalid", PB "/path"},
        {PATH("/u/{id"), "invalid", PB "/path"},
        {PATH("/u/id}"), "invalid", PB "/path"},
        {PATH("/u/{{id}}"), "invalid", PB "/path"},
        {PATH("/u/{query.}"), "invalid", PB "/path"},
        {PATH("/u/{query.a/b}"), "invalid", PB "/path"},
        {PATH("/u/{query.a b}"), "invalid", PB "/path"},
        {PATH("/u/{query}"), "invalid", PB "/path"},
        /* the path part is canonical, and no placeholder can make a dot segment */
        {PATH("/u/../{id}"), "invalid", PB "/path"},
        {PATH("/u/./{id}"), "invalid", PB "/path"},
        {PATH("/u//{id}"), "invalid", PB "/path"},
        {PATH("/u/%2F{id}"), "invalid", PB "/path"},
        {PATH("/u/%41{id}"), "invalid", PB "/path"},
        {PATH("/u;x/{id}"), "invalid", PB "/path"},
        {PATH("/u/.{query.a}"), "invalid", PB "/path"},
        {PATH("/u/{query.a}../x"), "invalid", PB "/path"},
        {PATH("/u/.{id}."), NULL, NULL}, /* a parameter is never empty */
        {PATH("/u/.{query.a}."), "invalid", PB "/path"},
        /* the query part */
        {PATH("/u?a=%zz"), "invalid", PB "/path"},
        {PATH("/u?a=%2"), "invalid", PB "/path"},
        {PATH("/u?a=\\\"b"), "invalid", PB "/path"},
        {PATH("/u?a=<b>"), "invalid", PB "/path"},
        {PATH("/u?a=b?c/d:e@f"), NULL, NULL},
    };

    (void)state;
    RUN_CASES(cases, check_route);
}

/* Backends' services are checked on the whole body, after every route. */
static void test_services(void **state)
{
    static const case_t cases[] = {
        {"{\"services\":[{\"name\":\"orders\",\"targets\":[]}],\"routes\":[" AGG(
             PAT "," BACKENDS(BE("") ",{\"name\":\"a\",\"service\":\"users\",\"path\":\"/a\"}")) "]}",
         "unknown_service", "/routes/0/aggregate/backends/1/service"},
        {"{\"services\":[{\"name\":\"orders\",\"targets\":[]},{\"name\":\"users\",\"targets\":[]}],\"routes\":[" AGG(
             PAT "," BACKENDS(BE("") ",{\"name\":\"a\",\"service\":\"users\",\"path\":\"/a\"}")) "]}",
         NULL, NULL},
    };

    (void)state;
    for (size_t i = 0; i != NUM_CASES(cases); ++i)
        check_body_text(cases[i].json, cases[i].code, cases[i].path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind),         cmocka_unit_test(test_members),  cmocka_unit_test(test_backend),
        cmocka_unit_test(test_backends_cap), cmocka_unit_test(test_template), cmocka_unit_test(test_services),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
