/*
 * schema_service_test: a service's "policies" in the snapshot schema (PROTOCOL.md section 5, "service policies").
 *
 * Every case is a policies object checked four ways, with the exact error code and JSON pointer: inside a service
 * alone (cph_schema_validate_service, pointer under /policies), inside a body (under /services/0/policies), and on
 * its own through cph_schema_validate_service_policies with the prefix "/policies" and with no prefix. Covered: lb
 * (each policy, hash_on with and without consistent_hash, header tokens), health_check (null, every member at its
 * bounds and one past, the path's syntax, the statuses list's cap, range and repeats, timeout below interval with the
 * defaults of absent members), outlier (bounds, max >= base with defaults), limits, unknown members everywhere,
 * reals, strings, null, nested junk, and the order of the checks. Last, the example body of PROTOCOL.md section 5
 * validates as it is written there (its two placeholders filled in), and shows every member this round added.
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
#include "schema_cases.h"

/* Checks policies (borrowed) four ways; path is relative to the policies object ("" = the object itself). */
static void check_policies(json_t *pol, const char *text, const char *code, const char *path)
{
    json_t *svc = json_pack("{s:s, s:[], s:O}", "name", "orders", "targets", "policies", pol);
    json_t *body = json_pack("{s:[O], s:[]}", "services", svc, "routes");
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    expect_under(cph_schema_validate_service(svc, &err), &err, "service", text, code, "/policies", path);
    memset(&err, 0, sizeof(err));
    expect_under(cph_schema_validate_service_policies(pol, "/policies", &err), &err, "policies", text, code, "/policies", path);
    memset(&err, 0, sizeof(err));
    expect(cph_schema_validate_service_policies(pol, NULL, &err), &err, "bare policies", text, code, path);
    check_body(body, text, code, "/services/0/policies", path);
    json_decref(svc);
    json_decref(body);
}

#define RUN(cases) RUN_CASES(cases, check_policies)

#define LB(members) "{\"lb\":{" members "}}"
#define HC(members) "{\"health_check\":{\"path\":\"/h\"" members "}}"
#define OUT(members) "{\"outlier\":{" members "}}"
#define LIMITS(members) "{\"limits\":{" members "}}"

/* ---------------------------------------------------------------- the object */

static void test_object(void **state)
{
    static const case_t cases[] = {
        {"{}", NULL, NULL},
        /* the contract's example, every default written out */
        {"{\"lb\":{\"policy\":\"round_robin\",\"hash_on\":null},\"health_check\":{\"path\":\"/healthz\",\"interval_ms\":5000,"
         "\"timeout_ms\":1000,\"healthy_threshold\":2,\"unhealthy_threshold\":3,\"expected_statuses\":[200,204]},"
         "\"outlier\":{\"consecutive_failures\":5,\"base_ejection_ms\":30000,\"max_ejection_ms\":300000,"
         "\"max_ejection_percent\":50},\"limits\":{\"max_requests\":1024,\"max_pending\":1024}}",
         NULL, NULL},
        {"{\"lb\":{},\"health_check\":null,\"outlier\":{},\"limits\":{}}", NULL, NULL},
        {"null", "invalid", ""},
        {"[]", "invalid", ""},
        {"\"{}\"", "invalid", ""},
        {"1", "invalid", ""},
        {"1.5", "invalid", ""},
        {"true", "invalid", ""},
        {"{\"lbs\":{}}", "unknown_field", "/lbs"},
        {"{\"LB\":{}}", "unknown_field", "/LB"},
        {"{\"timeouts\":{}}", "unknown_field", "/timeouts"}, /* a route's member, not a service's */
        {"{\"\":1}", "unknown_field", "/"},
        {"{\"a/b~c\":1}", "unknown_field", "/a~1b~0c"},
        /* unknown members first, then table order whatever the document order */
        {"{\"limits\":1,\"outlier\":1,\"health_check\":1,\"lb\":1,\"zz\":1}", "unknown_field", "/zz"},
        {"{\"limits\":1,\"outlier\":1,\"health_check\":1,\"lb\":1}", "invalid", "/lb"},
        {"{\"limits\":1,\"outlier\":1,\"health_check\":1}", "invalid", "/health_check"},
        {"{\"limits\":1,\"outlier\":1}", "invalid", "/outlier"},
        {"{\"limits\":1}", "invalid", "/limits"},
        {"{\"limits\":{\"max_requests\":0},\"lb\":{\"policy\":\"x\"}}", "invalid", "/lb/policy"},
    };

    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- lb */

static void test_lb(void **state)
{
    static const case_t cases[] = {
        {LB(""), NULL, NULL},
        {LB("\"policy\":\"round_robin\""), NULL, NULL},
        {LB("\"policy\":\"least_conn\""), NULL, NULL},
        {LB("\"policy\":\"random\",\"hash_on\":null"), NULL, NULL},
        {LB("\"hash_on\":null"), NULL, NULL},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"ip\""), NULL, NULL},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"principal\""), NULL, NULL},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:x-user\""), NULL, NULL},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:!#$%&'*+-.^_`|~09az\""), NULL, NULL},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""),
         NULL, NULL}, /* a 64-byte header name */
        /* lb itself */
        {"{\"lb\":null}", "invalid", "/lb"},
        {"{\"lb\":\"round_robin\"}", "invalid", "/lb"},
        {"{\"lb\":[]}", "invalid", "/lb"},
        {LB("\"algorithm\":\"random\""), "unknown_field", "/lb/algorithm"},
        {LB("\"policy\":\"random\",\"hash_key\":\"ip\""), "unknown_field", "/lb/hash_key"},
        /* policy */
        {LB("\"policy\":null"), "invalid", "/lb/policy"},
        {LB("\"policy\":\"\""), "invalid", "/lb/policy"},
        {LB("\"policy\":\"ROUND_ROBIN\""), "invalid", "/lb/policy"},
        {LB("\"policy\":\"round-robin\""), "invalid", "/lb/policy"},
        {LB("\"policy\":\"round_robin \""), "invalid", "/lb/policy"},
        {LB("\"policy\":\"round_robin\\u0000\""), "invalid", "/lb/policy"},
        {LB("\"policy\":\"maglev\""), "invalid", "/lb/policy"},
        {LB("\"policy\":\"ip_hash\""), "invalid", "/lb/policy"},
        {LB("\"policy\":0"), "invalid", "/lb/policy"},
        {LB("\"policy\":0.0"), "invalid", "/lb/policy"},
        {LB("\"policy\":[\"random\"]"), "invalid", "/lb/policy"},
        {LB("\"policy\":{\"a\":[[[{}]]]}"), "invalid", "/lb/policy"},
        /* hash_on with consistent_hash: required, a valid key */
        {LB("\"policy\":\"consistent_hash\""), "missing_field", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":null"), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"IP\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"api_key\""), "invalid", "/lb/hash_on"}, /* a rate-limit key only */
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"route\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:X-User\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:x user\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:x:y\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:x\\u0000\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:caf\\u00e9\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"Header:x\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\" ip\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"ip\\u0000\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":\"header:"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""),
         "invalid", "/lb/hash_on"}, /* 65 bytes */
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":1"), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":false"), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":[\"ip\"]"), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"consistent_hash\",\"hash_on\":{}"), "invalid", "/lb/hash_on"},
        /* hash_on without consistent_hash: null or absent only */
        {LB("\"hash_on\":\"ip\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"round_robin\",\"hash_on\":\"ip\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"least_conn\",\"hash_on\":\"principal\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"random\",\"hash_on\":\"header:x\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"random\",\"hash_on\":\"bogus\""), "invalid", "/lb/hash_on"},
        {LB("\"policy\":\"random\",\"hash_on\":7"), "invalid", "/lb/hash_on"},
        /* order: unknown members, then policy, then hash_on */
        {LB("\"hash_on\":7,\"policy\":\"x\",\"zz\":1"), "unknown_field", "/lb/zz"},
        {LB("\"hash_on\":7,\"policy\":\"x\""), "invalid", "/lb/policy"},
    };

    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- health_check */

static void test_health_check(void **state)
{
    static const case_t cases[] = {
        {"{\"health_check\":null}", NULL, NULL},
        {HC(""), NULL, NULL},
        {"{\"health_check\":{\"path\":\"/\"}}", NULL, NULL},
        {HC(",\"interval_ms\":100,\"timeout_ms\":99"), NULL, NULL},
        {HC(",\"interval_ms\":3600000,\"timeout_ms\":60000"), NULL, NULL},
        {HC(",\"interval_ms\":1001"), NULL, NULL}, /* timeout 1000 by default */
        {HC(",\"timeout_ms\":4999"), NULL, NULL},  /* interval 5000 by default */
        {HC(",\"timeout_ms\":1,\"interval_ms\":100"), NULL, NULL},
        {HC(",\"healthy_threshold\":1,\"unhealthy_threshold\":100"), NULL, NULL},
        {HC(",\"healthy_threshold\":100,\"unhealthy_threshold\":1"), NULL, NULL},
        {HC(",\"expected_statuses\":[100]"), NULL, NULL},
        {HC(",\"expected_statuses\":[599,100,200,204,301]"), NULL, NULL},
        {"{\"health_check\":{\"path\":\"/status?full=1&x=%20\"}}", NULL, NULL},
        {"{\"health_check\":{\"path\":\"/a/../b//c;d\"}}", NULL, NULL}, /* sent as written, not routed */
        /* the object */
        {"{\"health_check\":[]}", "invalid", "/health_check"},
        {"{\"health_check\":\"/healthz\"}", "invalid", "/health_check"},
        {"{\"health_check\":false}", "invalid", "/health_check"},
        {"{\"health_check\":0}", "invalid", "/health_check"},
        {"{\"health_check\":{}}", "missing_field", "/health_check/path"},
        {HC(",\"method\":\"HEAD\""), "unknown_field", "/health_check/method"},
        {HC(",\"interval\":1000"), "unknown_field", "/health_check/interval"},
        {HC(",\"host\":\"x\""), "unknown_field", "/health_check/host"},
        /* path */
        {"{\"health_check\":{\"path\":null}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"healthz\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"http://x/healthz\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a b\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a\\tb\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a\\r\\nHost: evil\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a\\u0000\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a\\u007f\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/caf\\u00e9\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":\"/a#frag\"}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":1}}", "invalid", "/health_check/path"},
        {"{\"health_check\":{\"path\":[\"/\"]}}", "invalid", "/health_check/path"},
        /* interval_ms 100..3600000 */
        {HC(",\"interval_ms\":99"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":0"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":-5000"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":3600001"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":9223372036854775807"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":-9223372036854775808"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":5000.0"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":5e3"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":\"5000\""), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":null"), "invalid", "/health_check/interval_ms"},
        /* timeout_ms 1..60000 */
        {HC(",\"timeout_ms\":0"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"timeout_ms\":-1"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"timeout_ms\":60001,\"interval_ms\":3600000"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"timeout_ms\":1.5"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"timeout_ms\":true"), "invalid", "/health_check/timeout_ms"},
        /* timeout_ms < interval_ms, defaults for the absent one; reported at timeout_ms when written */
        {HC(",\"interval_ms\":1000,\"timeout_ms\":1000"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"interval_ms\":100,\"timeout_ms\":100"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"interval_ms\":100,\"timeout_ms\":60000"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"timeout_ms\":5000"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"timeout_ms\":60000"), "invalid", "/health_check/timeout_ms"},
        {HC(",\"interval_ms\":1000"), "invalid", "/health_check/interval_ms"},
        {HC(",\"interval_ms\":100"), "invalid", "/health_check/interval_ms"},
        /* thresholds 1..100 */
        {HC(",\"healthy_threshold\":0"), "invalid", "/health_check/healthy_threshold"},
        {HC(",\"healthy_threshold\":101"), "invalid", "/health_check/healthy_threshold"},
        {HC(",\"healthy_threshold\":2.0"), "invalid", "/health_check/healthy_threshold"},
        {HC(",\"healthy_threshold\":null"), "invalid", "/health_check/healthy_threshold"},
        {HC(",\"unhealthy_threshold\":0"), "invalid", "/health_check/unhealthy_threshold"},
        {HC(",\"unhealthy_threshold\":101"), "invalid", "/health_check/unhealthy_threshold"},
        {HC(",\"unhealthy_threshold\":\"3\""), "invalid", "/health_check/unhealthy_threshold"},
        {HC(",\"unhealthy_threshold\":-3"), "invalid", "/health_check/unhealthy_threshold"},
        /* expected_statuses: 1..32 unique integers 100..599 */
        {HC(",\"expected_statuses\":[]"), "invalid", "/health_check/expected_statuses"},
        {HC(",\"expected_statuses\":null"), "invalid", "/health_check/expected_statuses"},
        {HC(",\"expected_statuses\":200"), "invalid", "/health_check/expected_statuses"},
        {HC(",\"expected_statuses\":{\"0\":200}"), "invalid", "/health_check/expected_statuses"},
        {HC(",\"expected_statuses\":[99]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[200,600]"), "invalid", "/health_check/expected_statuses/1"},
        {HC(",\"expected_statuses\":[200,-200]"), "invalid", "/health_check/expected_statuses/1"},
        {HC(",\"expected_statuses\":[0]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[9223372036854775807]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[200.0]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[\"200\"]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[null]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[[200]]"), "invalid", "/health_check/expected_statuses/0"},
        {HC(",\"expected_statuses\":[200,204,200]"), "duplicate", "/health_check/expected_statuses/2"},
        {HC(",\"expected_statuses\":[204,204]"), "duplicate", "/health_check/expected_statuses/1"},
        {HC(",\"expected_statuses\":[200,200,\"x\"]"), "duplicate", "/health_check/expected_statuses/1"},
        /* order: unknown members, table order, then the timeout rule */
        {"{\"health_check\":{\"expected_statuses\":[],\"interval_ms\":0,\"zz\":1}}", "unknown_field", "/health_check/zz"},
        {"{\"health_check\":{\"expected_statuses\":[],\"interval_ms\":0}}", "missing_field", "/health_check/path"},
        {HC(",\"expected_statuses\":[],\"unhealthy_threshold\":0,\"healthy_threshold\":0,\"timeout_ms\":0,\"interval_ms\":0"),
         "invalid", "/health_check/interval_ms"},
        {HC(",\"expected_statuses\":[],\"unhealthy_threshold\":0,\"healthy_threshold\":0,\"timeout_ms\":0"), "invalid",
         "/health_check/timeout_ms"},
        {HC(",\"expected_statuses\":[],\"unhealthy_threshold\":0,\"healthy_threshold\":0"), "invalid",
         "/health_check/healthy_threshold"},
        {HC(",\"expected_statuses\":[],\"unhealthy_threshold\":0"), "invalid", "/health_check/unhealthy_threshold"},
        {HC(",\"expected_statuses\":[],\"timeout_ms\":9000"), "invalid", "/health_check/expected_statuses"},
    };

    (void)state;
    RUN(cases);
}

/* The path's 1024-byte cap and the statuses list's 32-element cap, at and one past. */
static void test_health_check_caps(void **state)
{
    char path[1026], text[1200];
    json_t *pol, *statuses;

    (void)state;
    path[0] = '/', memset(path + 1, 'p', sizeof(path) - 1), path[1024] = '\0';
    snprintf(text, sizeof(text), "{\"health_check\":{\"path\":\"%s\"}}", path);
    pol = parse(text);
    check_policies(pol, "path of 1024 bytes", NULL, NULL);
    json_decref(pol);
    path[1024] = 'p', path[1025] = '\0';
    snprintf(text, sizeof(text), "{\"health_check\":{\"path\":\"%s\"}}", path);
    pol = parse(text);
    check_policies(pol, "path of 1025 bytes", "invalid", "/health_check/path");
    json_decref(pol);

    pol = parse(HC(",\"expected_statuses\":[]"));
    statuses = json_object_get(json_object_get(pol, "health_check"), "expected_statuses");
    for (int i = 0; i != 32; ++i)
        json_array_append_new(statuses, json_integer(200 + i));
    check_policies(pol, "32 statuses", NULL, NULL);
    json_array_append_new(statuses, json_integer(300));
    check_policies(pol, "33 statuses", "invalid", "/health_check/expected_statuses");
    json_array_remove(statuses, 32);
    json_array_set_new(statuses, 31, json_integer(200)); /* the first one again, at the end */
    check_policies(pol, "32 statuses, the last one repeated", "duplicate", "/health_check/expected_statuses/31");
    json_decref(pol);
}

/* ---------------------------------------------------------------- outlier and limits */

static void test_outlier(void **state)
{
    static const case_t cases[] = {
        {OUT(""), NULL, NULL},
        {OUT("\"consecutive_failures\":0"), NULL, NULL}, /* passive detection off */
        {OUT("\"consecutive_failures\":1000,\"base_ejection_ms\":1,\"max_ejection_ms\":1,\"max_ejection_percent\":0"), NULL, NULL},
        {OUT("\"base_ejection_ms\":3600000,\"max_ejection_ms\":86400000,\"max_ejection_percent\":100"), NULL, NULL},
        {OUT("\"base_ejection_ms\":300000"), NULL, NULL}, /* equal to the default max */
        {OUT("\"max_ejection_ms\":30000"), NULL, NULL},   /* equal to the default base */
        {OUT("\"base_ejection_ms\":5,\"max_ejection_ms\":5"), NULL, NULL},
        {"{\"outlier\":null}", "invalid", "/outlier"},
        {"{\"outlier\":[]}", "invalid", "/outlier"},
        {"{\"outlier\":5}", "invalid", "/outlier"},
        {OUT("\"interval_ms\":1"), "unknown_field", "/outlier/interval_ms"},
        {OUT("\"consecutive_5xx\":1"), "unknown_field", "/outlier/consecutive_5xx"},
        /* consecutive_failures 0..1000 */
        {OUT("\"consecutive_failures\":-1"), "invalid", "/outlier/consecutive_failures"},
        {OUT("\"consecutive_failures\":1001"), "invalid", "/outlier/consecutive_failures"},
        {OUT("\"consecutive_failures\":5.0"), "invalid", "/outlier/consecutive_failures"},
        {OUT("\"consecutive_failures\":null"), "invalid", "/outlier/consecutive_failures"},
        {OUT("\"consecutive_failures\":false"), "invalid", "/outlier/consecutive_failures"},
        /* base_ejection_ms 1..3600000 */
        {OUT("\"base_ejection_ms\":0"), "invalid", "/outlier/base_ejection_ms"},
        {OUT("\"base_ejection_ms\":3600001"), "invalid", "/outlier/base_ejection_ms"},
        {OUT("\"base_ejection_ms\":-9223372036854775808"), "invalid", "/outlier/base_ejection_ms"},
        {OUT("\"base_ejection_ms\":\"30s\""), "invalid", "/outlier/base_ejection_ms"},
        /* max_ejection_ms base..86400000 */
        {OUT("\"max_ejection_ms\":0"), "invalid", "/outlier/max_ejection_ms"},
        {OUT("\"max_ejection_ms\":86400001"), "invalid", "/outlier/max_ejection_ms"},
        {OUT("\"max_ejection_ms\":9223372036854775807"), "invalid", "/outlier/max_ejection_ms"},
        {OUT("\"max_ejection_ms\":1e5"), "invalid", "/outlier/max_ejection_ms"},
        {OUT("\"max_ejection_ms\":29999"), "invalid", "/outlier/max_ejection_ms"}, /* below the default base */
        {OUT("\"base_ejection_ms\":1000,\"max_ejection_ms\":999"), "invalid", "/outlier/max_ejection_ms"},
        {OUT("\"base_ejection_ms\":300001"), "invalid", "/outlier/base_ejection_ms"}, /* above the default max */
        /* max_ejection_percent 0..100 */
        {OUT("\"max_ejection_percent\":-1"), "invalid", "/outlier/max_ejection_percent"},
        {OUT("\"max_ejection_percent\":101"), "invalid", "/outlier/max_ejection_percent"},
        {OUT("\"max_ejection_percent\":50.5"), "invalid", "/outlier/max_ejection_percent"},
        {OUT("\"max_ejection_percent\":\"50%\""), "invalid", "/outlier/max_ejection_percent"},
        /* order: table order, then max >= base */
        {OUT("\"max_ejection_percent\":101,\"max_ejection_ms\":0,\"base_ejection_ms\":0,\"consecutive_failures\":-1"), "invalid",
         "/outlier/consecutive_failures"},
        {OUT("\"max_ejection_percent\":101,\"max_ejection_ms\":0,\"base_ejection_ms\":0"), "invalid", "/outlier/base_ejection_ms"},
        {OUT("\"max_ejection_percent\":101,\"max_ejection_ms\":0"), "invalid", "/outlier/max_ejection_ms"},
        {OUT("\"max_ejection_percent\":101,\"max_ejection_ms\":1"), "invalid", "/outlier/max_ejection_percent"},
    };

    (void)state;
    RUN(cases);
}

static void test_limits(void **state)
{
    static const case_t cases[] = {
        {LIMITS(""), NULL, NULL},
        {LIMITS("\"max_requests\":1,\"max_pending\":1"), NULL, NULL},
        {LIMITS("\"max_requests\":1000000,\"max_pending\":1000000"), NULL, NULL},
        {"{\"limits\":null}", "invalid", "/limits"},
        {"{\"limits\":[]}", "invalid", "/limits"},
        {LIMITS("\"max_body_bytes\":1"), "unknown_field", "/limits/max_body_bytes"}, /* a route's limit */
        {LIMITS("\"max_connections\":1"), "unknown_field", "/limits/max_connections"},
        {LIMITS("\"max_requests\":0"), "invalid", "/limits/max_requests"},
        {LIMITS("\"max_requests\":1000001"), "invalid", "/limits/max_requests"},
        {LIMITS("\"max_requests\":-1"), "invalid", "/limits/max_requests"},
        {LIMITS("\"max_requests\":1024.0"), "invalid", "/limits/max_requests"},
        {LIMITS("\"max_requests\":null"), "invalid", "/limits/max_requests"},
        {LIMITS("\"max_pending\":0"), "invalid", "/limits/max_pending"},
        {LIMITS("\"max_pending\":1000001"), "invalid", "/limits/max_pending"},
        {LIMITS("\"max_pending\":9223372036854775807"), "invalid", "/limits/max_pending"},
        {LIMITS("\"max_pending\":\"1024\""), "invalid", "/limits/max_pending"},
        {LIMITS("\"max_pending\":{}"), "invalid", "/limits/max_pending"},
        {LIMITS("\"max_pending\":0,\"max_requests\":0"), "invalid", "/limits/max_requests"},
    };

    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- place among the service's members and in a body */

static void expect_service(const char *text, const char *code, const char *path)
{
    json_t *svc = parse(text);
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    expect(cph_schema_validate_service(svc, &err), &err, "service", text, code, path);
    json_decref(svc);
}

static void test_order(void **state)
{
    (void)state;
    /* policies is the last member of a service checked */
    expect_service("{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":1},\"timeout_ms\":0}", "invalid", "/timeout_ms");
    expect_service("{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":1},\"system\":\"A\"}", "invalid", "/system");
    expect_service("{\"name\":\"s\",\"targets\":[1],\"policies\":1}", "invalid", "/targets/0");
    expect_service("{\"name\":\"s\",\"targets\":[],\"policies\":1,\"bogus\":1}", "unknown_field", "/bogus");
    expect_service("{\"name\":\"s\",\"targets\":[],\"timeout_ms\":1,\"system\":null,\"policies\":{}}", NULL, NULL);
    expect_service("{\"name\":\"s\",\"targets\":[],\"policies\":null}", "invalid", "/policies");
    /* in a body: with its service, before the next service's name is compared and before any route */
    check_body_text("{\"services\":[{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":1}},{\"name\":\"s\",\"targets\":[]}],"
                    "\"routes\":[1]}",
                    "invalid", "/services/0/policies/lb");
    check_body_text("{\"services\":[{\"name\":\"s\",\"targets\":[]},{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":1}}],"
                    "\"routes\":[]}",
                    "invalid", "/services/1/policies/lb");
    check_body_text("{\"services\":[{\"name\":\"s\",\"targets\":[]},{\"name\":\"s\",\"targets\":[],\"policies\":{}}],"
                    "\"routes\":[]}",
                    "duplicate", "/services/1/name");
    check_body_text("{\"services\":[{\"name\":\"s\",\"targets\":[],\"policies\":{\"outlier\":{\"max_ejection_ms\":1}}}],"
                    "\"routes\":[],\"keys\":7}",
                    "invalid", "/keys"); /* the top level's types come first */
    /* a prefix is prepended as given, and "" is the same as NULL */
    {
        json_t *pol = parse(LB("\"policy\":\"x\""));
        cph_error_t err;
        memset(&err, 0, sizeof(err));
        expect(cph_schema_validate_service_policies(pol, "/services/7/policies", &err), &err, "prefix", "lb", "invalid",
               "/services/7/policies/lb/policy");
        memset(&err, 0, sizeof(err));
        expect(cph_schema_validate_service_policies(pol, "", &err), &err, "prefix", "lb", "invalid", "/lb/policy");
        memset(&err, 0, sizeof(err));
        expect(cph_schema_validate_service_policies(NULL, "/policies", &err), &err, "NULL", "NULL", "invalid", "/policies");
        json_decref(pol);
    }
}

/* ---------------------------------------------------------------- the example of PROTOCOL.md section 5 */

/* s with the first occurrence of from replaced by to (a new string; from must occur). */
static char *replace(char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    char *out = NULL;

    if (at == NULL)
        fail_msg("\"%s\" is not in the example", from);
    size_t head = (size_t)(at - s), from_len = strlen(from), to_len = strlen(to), tail = strlen(at + from_len);
    if ((out = malloc(head + to_len + tail + 1)) == NULL)
        fail_msg("out of memory");
    memcpy(out, s, head);
    memcpy(out + head, to, to_len);
    memcpy(out + head + to_len, at + from_len, tail + 1);
    free(s);
    return out;
}

/* The first ```json block of section 5, its two placeholders filled in. */
static char *protocol_example(void)
{
    const char *dir = getenv("CEPHALO_SOURCE_DIR");
    char path[1024], *doc, *start, *end, *body;
    FILE *f;
    long size;

    snprintf(path, sizeof(path), "%s/proto/PROTOCOL.md", dir != NULL ? dir : ".");
    if ((f = fopen(path, "rb")) == NULL)
        fail_msg("cannot open %s (CEPHALO_SOURCE_DIR)", path);
    fseek(f, 0, SEEK_END), size = ftell(f), fseek(f, 0, SEEK_SET);
    doc = calloc(1, (size_t)size + 1);
    assert_int_equal(fread(doc, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    assert_non_null(start = strstr(doc, "## 5. Snapshot body"));
    assert_non_null(start = strstr(start, "```json\n"));
    start += strlen("```json\n");
    assert_non_null(end = strstr(start, "\n```"));
    body = strndup(start, (size_t)(end - start));
    free(doc);
    body = replace(body, "<64 lower-case hex>", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    return replace(body, "\"9f0c...\"", "\"9f0c\"");
}

static void test_protocol_example(void **state)
{
    char *text = protocol_example();
    json_t *body = parse(text), *svc_pol, *route_pol, *gw;

    (void)state;
    check_body(body, "PROTOCOL.md example", NULL, "", NULL);
    /* it shows every new member, and one changed value is refused at the right place */
    svc_pol = json_object_get(json_array_get(json_object_get(body, "services"), 0), "policies");
    route_pol = json_object_get(json_array_get(json_object_get(body, "routes"), 0), "policies");
    gw = json_object_get(body, "gateway");
    assert_non_null(json_object_get(json_object_get(svc_pol, "health_check"), "expected_statuses"));
    assert_non_null(json_object_get(route_pol, "timeouts"));
    assert_non_null(json_object_get(route_pol, "retries"));
    assert_non_null(json_object_get(route_pol, "websocket"));
    assert_non_null(json_object_get(json_object_get(gw, "cache"), "backend"));
    assert_non_null(json_object_get(json_object_get(gw, "websocket"), "drain_grace_ms"));
    json_object_set_new(json_object_get(gw, "cache"), "backend", json_string("redis"));
    check_body(body, "example, cache on redis", "invalid", "", "/gateway/cache/backend");
    json_object_set_new(json_object_get(route_pol, "retries"), "max", json_integer(6));
    check_body(body, "example, 6 retries", "invalid", "", "/routes/0/policies/retries/max");
    json_object_set_new(json_object_get(svc_pol, "lb"), "policy", json_string("consistent_hash"));
    check_body(body, "example, consistent_hash", "invalid", "", "/services/0/policies/lb/hash_on");
    json_decref(body);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object),       cmocka_unit_test(test_lb),
        cmocka_unit_test(test_health_check), cmocka_unit_test(test_health_check_caps),
        cmocka_unit_test(test_outlier),      cmocka_unit_test(test_limits),
        cmocka_unit_test(test_order),        cmocka_unit_test(test_protocol_example),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
