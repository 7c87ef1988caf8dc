/*
 * consul_test: the pure rules of the Consul discovery (controlplane/consul.c) - the blocking query's URL (escaping of
 * service, tag and datacenter, refused addresses), the /v1/health/service answer turned into targets (the documented
 * sample, Service.Address falling back to Node.Address, IPv6 in brackets and canonical, weights defaulted and clamped,
 * equal URLs merged, the 256 cap, unhealthy and unusable instances skipped) and refused as a whole when hostile
 * (not JSON, wrong shapes and types, duplicate keys, NUL bytes, over 1 MiB), the X-Consul-Index rules (first answer,
 * unchanged, greater, backwards, 0, missing, garbage), the rate limit and backoff, and how failures are classified.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <curl/curl.h>
#include "controlplane/consul.h"

/* ---------------------------------------------------------------- helpers */

static json_t *parse_ok(const char *body, cph_consul_parse_stats_t *st)
{
    cph_error_t err;
    json_t *t = cph_consul_parse_health(body, strlen(body), st, &err);

    if (t == NULL)
        fail_msg("refused: %s (%s)", err.msg, body);
    return t;
}

static void refused(const char *body)
{
    cph_error_t err;
    json_t *t = cph_consul_parse_health(body, strlen(body), NULL, &err);

    if (t != NULL) {
        char *dump = json_dumps(t, 0);
        fail_msg("accepted %s as %s", body, dump);
    }
    assert_string_equal(err.code, "bad_response");
}

/* The targets as "url=weight,url=weight" for compact comparisons. */
static void expect_targets(const json_t *t, const char *want)
{
    char got[8192] = "";
    size_t i, n = 0;
    const json_t *x;

    json_array_foreach(t, i, x)
    {
        assert_int_equal(json_object_size(x), 2);
        n +=
            (size_t)snprintf(got + n, sizeof(got) - n, "%s%s=%lld", i != 0 ? "," : "", json_string_value(json_object_get(x, "url")),
                             (long long)json_integer_value(json_object_get(x, "weight")));
    }
    assert_string_equal(got, want);
}

/* One entry: Node.Address node, Service.Address addr (NULL: the member is absent), port, extra Service members. */
static char *entry(char *buf, size_t cap, const char *node, const char *addr, const char *port, const char *extra)
{
    char a[512] = "";

    if (addr != NULL)
        snprintf(a, sizeof(a), "\"Address\": %s, ", addr);
    snprintf(buf, cap,
             "{\"Node\": {\"ID\": \"n\", \"Node\": \"n1\", \"Address\": %s, \"Datacenter\": \"dc1\"}, "
             "\"Service\": {\"ID\": \"s\", \"Service\": \"orders\", \"Tags\": [], %s\"Port\": %s%s}, \"Checks\": []}",
             node, a, port, extra != NULL ? extra : "");
    return buf;
}

static json_t *one(const char *node, const char *addr, const char *port, const char *extra, cph_consul_parse_stats_t *st)
{
    char e[2048], body[2100];

    snprintf(body, sizeof(body), "[%s]", entry(e, sizeof(e), node, addr, port, extra));
    return parse_ok(body, st);
}

/* ---------------------------------------------------------------- the URL */

static void test_url(void **state)
{
    char url[CPH_CONSUL_URL_MAX];
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_consul_health_url("http://127.0.0.1:8500", "orders", NULL, NULL, 0, 60, url, sizeof(url), &err), 0);
    assert_string_equal(url, "http://127.0.0.1:8500/v1/health/service/orders?passing=true&index=0&wait=60s");
    assert_int_equal(cph_consul_health_url("https://consul.example:8501//", "web.v2_x-y", "v1", "dc-2", 12345678901234ULL, 5, url,
                                           sizeof(url), &err),
                     0);
    assert_string_equal(url, "https://consul.example:8501/v1/health/service/web.v2_x-y?passing=true&tag=v1&dc=dc-2"
                             "&index=12345678901234&wait=5s");
    /* everything but unreserved bytes is escaped: no injection into the path or the query */
    assert_int_equal(
        cph_consul_health_url("http://c:1", "a/../b?x=1#f", "v 1&passing=false", "d%c=\xc3\xa9", 7, 600, url, sizeof(url), &err),
        0);
    assert_string_equal(url, "http://c:1/v1/health/service/a%2F..%2Fb%3Fx%3D1%23f?passing=true&tag=v%201%26passing%3Dfalse"
                             "&dc=d%25c%3D%C3%A9&index=7&wait=600s");
    /* an empty tag or dc is left out */
    assert_int_equal(cph_consul_health_url("http://c:1", "s", "", "", 1, 1, url, sizeof(url), &err), 0);
    assert_string_equal(url, "http://c:1/v1/health/service/s?passing=true&index=1&wait=1s");
    assert_int_equal(cph_consul_leader_url("http://c:8500/", url, sizeof(url), &err), 0);
    assert_string_equal(url, "http://c:8500/v1/status/leader");
}

static void test_url_refused(void **state)
{
    static const char *const addrs[] = {"",
                                        "127.0.0.1:8500",
                                        "ftp://c:1",
                                        "http://",
                                        "http:///",
                                        "http://c:1/v1",
                                        "http://c:1?x=1",
                                        "http://c:1#f",
                                        "http://u:p@c:1",
                                        "http://c :1",
                                        "http://c\r\n:1",
                                        "http://c\\x",
                                        "HTTP://c:1",
                                        NULL};
    char url[CPH_CONSUL_URL_MAX];
    cph_error_t err;
    size_t i;

    (void)state;
    for (i = 0; addrs[i] != NULL; ++i) {
        if (cph_consul_health_url(addrs[i], "s", NULL, NULL, 0, 60, url, sizeof(url), &err) == 0)
            fail_msg("address accepted: %s", addrs[i]);
        assert_string_equal(err.code, "invalid");
        assert_int_equal(cph_consul_leader_url(addrs[i], url, sizeof(url), &err), -1);
    }
    assert_int_equal(cph_consul_health_url(NULL, "s", NULL, NULL, 0, 60, url, sizeof(url), &err), -1);
    assert_int_equal(cph_consul_health_url("http://c:1", "", NULL, NULL, 0, 60, url, sizeof(url), &err), -1);
    assert_int_equal(cph_consul_health_url("http://c:1", NULL, NULL, NULL, 0, 60, url, sizeof(url), &err), -1);
    assert_int_equal(cph_consul_health_url("http://c:1", "s", NULL, NULL, 0, 0, url, sizeof(url), &err), -1);
    assert_int_equal(cph_consul_health_url("http://c:1", "s", NULL, NULL, 0, 601, url, sizeof(url), &err), -1);
    /* a buffer too small is an error, never a truncated URL */
    for (size_t cap = 1; cap < 75; ++cap) { /* the URL below is 74 bytes */
        char small[80];
        memset(small, 'Z', sizeof(small));
        assert_int_equal(cph_consul_health_url("http://c:1", "service", "tag", NULL, 0, 60, small, cap, &err), -1);
        for (size_t i = cap; i != sizeof(small); ++i)
            assert_int_equal(small[i], 'Z'); /* nothing written past cap */
    }
    assert_int_equal(cph_consul_health_url("http://c:1", "service", "tag", NULL, 0, 60, url, 75, &err), 0);
    assert_int_equal(strlen(url), 74);
}

/* ---------------------------------------------------------------- the answer */

/* The sample response of HashiCorp's /health/service/:service documentation. */
static const char DOC_SAMPLE[] =
    "[{\"Node\": {\"ID\": \"40e4a748-2192-161a-0510-9bf59fe950b5\", \"Node\": \"foobar\", \"Address\": \"10.1.10.12\", "
    "\"Datacenter\": \"dc1\", \"TaggedAddresses\": {\"lan\": \"10.1.10.12\", \"wan\": \"10.1.10.12\"}, \"Meta\": "
    "{\"instance_type\": \"t2.medium\"}}, \"Service\": {\"ID\": \"redis\", \"Service\": \"redis\", \"Tags\": [\"primary\"], "
    "\"Address\": \"10.1.10.12\", \"TaggedAddresses\": {\"lan\": {\"address\": \"10.1.10.12\", \"port\": 8000}, \"wan\": "
    "{\"address\": \"198.18.1.2\", \"port\": 80}}, \"Meta\": {\"redis_version\": \"4.0\"}, \"Port\": 8000, \"Weights\": "
    "{\"Passing\": 10, \"Warning\": 1}, \"Namespace\": \"default\"}, \"Checks\": [{\"Node\": \"foobar\", \"CheckID\": "
    "\"service:redis\", \"Name\": \"Service 'redis' check\", \"Status\": \"passing\", \"Notes\": \"\", \"Output\": \"\", "
    "\"ServiceID\": \"redis\", \"ServiceName\": \"redis\", \"ServiceTags\": [\"primary\"], \"Namespace\": \"default\"}, "
    "{\"Node\": \"foobar\", \"CheckID\": \"serfHealth\", \"Name\": \"Serf Health Status\", \"Status\": \"passing\", "
    "\"Notes\": \"\", \"Output\": \"\", \"ServiceID\": \"\", \"ServiceName\": \"\", \"ServiceTags\": [], \"Namespace\": "
    "\"default\"}]}]";

static void test_parse_doc_sample(void **state)
{
    cph_consul_parse_stats_t st;
    json_t *t = parse_ok(DOC_SAMPLE, &st);

    (void)state;
    expect_targets(t, "http://10.1.10.12:8000=10");
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.skipped + st.unhealthy + st.merged + st.dropped, 0);
    json_decref(t);
    t = parse_ok("[]", &st);
    expect_targets(t, "");
    assert_int_equal(st.entries, 0);
    json_decref(t);
    t = parse_ok(" [ ] \n", NULL);
    expect_targets(t, "");
    json_decref(t);
}

static void test_parse_addresses(void **state)
{
    cph_consul_parse_stats_t st;
    json_t *t;

    (void)state;
    /* Service.Address empty or absent -> Node.Address */
    expect_targets(t = one("\"10.0.0.7\"", "\"\"", "9000", NULL, NULL), "http://10.0.0.7:9000=1"), json_decref(t);
    expect_targets(t = one("\"10.0.0.7\"", NULL, "9000", NULL, NULL), "http://10.0.0.7:9000=1"), json_decref(t);
    expect_targets(t = one("\"10.0.0.7\"", "null", "9000", NULL, NULL), "http://10.0.0.7:9000=1"), json_decref(t);
    /* Service.Address wins when set */
    expect_targets(t = one("\"10.0.0.7\"", "\"10.0.0.8\"", "9000", NULL, NULL), "http://10.0.0.8:9000=1"), json_decref(t);
    /* IPv6: bracketed, canonical */
    expect_targets(t = one("\"10.0.0.7\"", "\"2001:DB8:0:0:0:0:0:1\"", "80", NULL, NULL), "http://[2001:db8::1]:80=1");
    json_decref(t);
    expect_targets(t = one("\"::1\"", "\"\"", "8080", NULL, NULL), "http://[::1]:8080=1"), json_decref(t);
    /* DNS names: lower case */
    expect_targets(t = one("\"Node-1.DC1.consul\"", "\"\"", "443", NULL, NULL), "http://node-1.dc1.consul:443=1");
    json_decref(t);
    /* unusable: skipped, counted, never an error */
    static const char *const bad_addrs[] = {"\"fe80::1%eth0\"",
                                            "\"[::1]\"",
                                            "\"10.0.0.1/evil\"",
                                            "\"a@b\"",
                                            "\"a b\"",
                                            "\"10.0.0.1:80\"",
                                            "\"host-\"",
                                            "\"-host\"",
                                            "\"h\\u00e9\"",
                                            "\"a..b\"",
                                            "\"999.1.1.1\"",
                                            "\"1.2.3\"",
                                            "\"h\\r\\nX-Evil: 1\"",
                                            "\"x?y\"",
                                            NULL};
    for (size_t i = 0; bad_addrs[i] != NULL; ++i) {
        t = one("\"\"", bad_addrs[i], "80", NULL, &st);
        if (json_array_size(t) != 0)
            fail_msg("address %s gave a target", bad_addrs[i]);
        assert_int_equal(st.skipped, 1);
        json_decref(t);
    }
    /* both empty */
    t = one("\"\"", "\"\"", "80", NULL, &st);
    expect_targets(t, "");
    assert_int_equal(st.skipped, 1);
    json_decref(t);
    /* a long DNS name (over 253 bytes) is skipped */
    char longname[400];
    memset(longname, 'a', sizeof(longname));
    longname[0] = '"', longname[300] = '"', longname[301] = '\0';
    t = one(longname, "\"\"", "80", NULL, &st);
    assert_int_equal(json_array_size(t), 0);
    json_decref(t);
}

static void test_parse_ports_weights(void **state)
{
    cph_consul_parse_stats_t st;
    json_t *t;

    (void)state;
    static const char *const bad_ports[] = {"0", "-1", "65536", "4294967376", NULL};
    for (size_t i = 0; bad_ports[i] != NULL; ++i) {
        t = one("\"10.0.0.1\"", "\"\"", bad_ports[i], NULL, &st);
        assert_int_equal(json_array_size(t), 0);
        assert_int_equal(st.skipped, 1);
        json_decref(t);
    }
    expect_targets(t = one("\"10.0.0.1\"", "\"\"", "65535", NULL, NULL), "http://10.0.0.1:65535=1"), json_decref(t);
    expect_targets(t = one("\"10.0.0.1\"", "\"\"", "1", NULL, NULL), "http://10.0.0.1:1=1"), json_decref(t);
    /* weights: default 1, clamped to 1..1000 */
    static const struct {
        const char *extra;
        const char *want;
    } w[] = {{", \"Weights\": {\"Passing\": 7, \"Warning\": 1}", "http://10.0.0.1:80=7"},
             {", \"Weights\": {\"Passing\": 0, \"Warning\": 0}", "http://10.0.0.1:80=1"},
             {", \"Weights\": {\"Passing\": -5}", "http://10.0.0.1:80=1"},
             {", \"Weights\": {\"Passing\": 1000}", "http://10.0.0.1:80=1000"},
             {", \"Weights\": {\"Passing\": 1001}", "http://10.0.0.1:80=1000"},
             {", \"Weights\": {\"Passing\": 9223372036854775807}", "http://10.0.0.1:80=1000"},
             {", \"Weights\": {}", "http://10.0.0.1:80=1"},
             {", \"Weights\": null", "http://10.0.0.1:80=1"},
             {", \"Weights\": {\"Passing\": null}", "http://10.0.0.1:80=1"},
             {NULL, NULL}};
    for (size_t i = 0; w[i].extra != NULL; ++i) {
        t = one("\"10.0.0.1\"", "\"\"", "80", w[i].extra, NULL);
        expect_targets(t, w[i].want);
        json_decref(t);
    }
}

static void test_parse_merge_sort_cap(void **state)
{
    cph_consul_parse_stats_t st;
    char e[2048], *body = malloc(400 * 2100);
    size_t n = 0;
    json_t *t;

    (void)state;
    /* sorted by URL; the same instance twice (two spellings of one IPv6 address) merges, the larger weight wins */
    n = (size_t)sprintf(body, "[%s,", entry(e, sizeof(e), "\"n\"", "\"10.0.0.2\"", "80", ", \"Weights\": {\"Passing\": 3}"));
    n += (size_t)sprintf(body + n, "%s,", entry(e, sizeof(e), "\"n\"", "\"10.0.0.1\"", "80", NULL));
    n += (size_t)sprintf(body + n, "%s,", entry(e, sizeof(e), "\"n\"", "\"10.0.0.2\"", "80", ", \"Weights\": {\"Passing\": 9}"));
    n += (size_t)sprintf(body + n, "%s,", entry(e, sizeof(e), "\"n\"", "\"::1\"", "80", NULL));
    n += (size_t)sprintf(body + n, "%s]", entry(e, sizeof(e), "\"n\"", "\"0:0::1\"", "80", ", \"Weights\": {\"Passing\": 2}"));
    t = parse_ok(body, &st);
    expect_targets(t, "http://10.0.0.1:80=1,http://10.0.0.2:80=9,http://[::1]:80=2");
    assert_int_equal(st.entries, 5);
    assert_int_equal(st.merged, 2);
    json_decref(t);
    /* 300 distinct instances: the first 256 by URL are kept */
    n = (size_t)sprintf(body, "[");
    for (int i = 0; i != 300; ++i) {
        char port[16];
        snprintf(port, sizeof(port), "%d", 10000 + i);
        n += (size_t)sprintf(body + n, "%s%s", i != 0 ? "," : "", entry(e, sizeof(e), "\"10.1.1.1\"", "\"\"", port, NULL));
    }
    sprintf(body + n, "]");
    t = parse_ok(body, &st);
    assert_int_equal(json_array_size(t), CPH_CONSUL_TARGETS_MAX);
    assert_int_equal(st.dropped, 300 - CPH_CONSUL_TARGETS_MAX);
    assert_string_equal(json_string_value(json_object_get(json_array_get(t, 0), "url")), "http://10.1.1.1:10000");
    assert_string_equal(json_string_value(json_object_get(json_array_get(t, 255), "url")), "http://10.1.1.1:10255");
    json_decref(t);
    free(body);
}

static void test_parse_checks(void **state)
{
    cph_consul_parse_stats_t st;
    json_t *t;

    (void)state;
    /* a critical or warning check (a Consul ignoring passing=true) is not routed to */
    t = parse_ok("[{\"Node\": {\"Address\": \"10.0.0.1\"}, \"Service\": {\"Address\": \"\", \"Port\": 80}, \"Checks\": "
                 "[{\"Status\": \"passing\"}, {\"Status\": \"critical\"}]}, {\"Node\": {\"Address\": \"10.0.0.2\"}, "
                 "\"Service\": {\"Port\": 80}, \"Checks\": [{\"Status\": \"passing\"}]}, {\"Node\": {\"Address\": "
                 "\"10.0.0.3\"}, \"Service\": {\"Port\": 80}, \"Checks\": [{\"Status\": \"warning\"}]}, {\"Service\": "
                 "{\"Address\": \"10.0.0.4\", \"Port\": 80}}]",
                 &st);
    expect_targets(t, "http://10.0.0.2:80=1,http://10.0.0.4:80=1");
    assert_int_equal(st.unhealthy, 2);
    json_decref(t);
}

static void test_parse_hostile(void **state)
{
    static const char *const bodies[] = {
        "",
        "not json",
        "{}",
        "null",
        "\"x\"",
        "[1]",
        "[\"x\"]",
        "[null]",
        "[{}]",
        "[{\"Service\": null}]",
        "[{\"Service\": []}]",
        "[{\"Service\": {\"Address\": 10, \"Port\": 80}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": \"80\"}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80.0}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80, \"Weights\": []}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80, \"Weights\": {\"Passing\": \"5\"}}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80, \"Weights\": {\"Passing\": 1.5}}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}, \"Node\": \"n\"}]",
        "[{\"Service\": {\"Address\": \"\", \"Port\": 80}, \"Node\": {\"Address\": 1}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}, \"Checks\": {}}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}, \"Checks\": [1]}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}, \"Checks\": [{\"Status\": 1}]}]",
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80, \"Port\": 81}}]", /* duplicate keys */
        "[{\"Service\": {\"Address\": \"10.0.0.1\\u0000.evil\", \"Port\": 80}}]",   /* a NUL byte */
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}}",                /* truncated */
        "[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}}] trailing",
        "[\"\xff\xfe\"]", /* not UTF-8 */
        NULL};
    size_t i;

    (void)state;
    for (i = 0; bodies[i] != NULL; ++i)
        refused(bodies[i]);
    /* one bad entry among good ones refuses the whole answer: the last known targets stay */
    refused("[{\"Service\": {\"Address\": \"10.0.0.1\", \"Port\": 80}}, {\"Service\": {\"Address\": \"10.0.0.2\", "
            "\"Port\": \"x\"}}]");
}

static void test_parse_limits(void **state)
{
    size_t big = CPH_CONSUL_BODY_MAX + 1, depth = 100000, i;
    char *body = malloc(big + 1);
    cph_error_t err;

    (void)state;
    /* over 1 MiB: refused without parsing */
    memset(body, ' ', big);
    body[0] = '[', body[big - 1] = ']', body[big] = '\0';
    assert_null(cph_consul_parse_health(body, big, NULL, &err));
    assert_string_equal(err.code, "bad_response");
    assert_null(cph_consul_parse_health(NULL, 0, NULL, &err));
    /* deep nesting: refused, no stack overflow */
    for (i = 0; i != depth; ++i)
        body[i] = '[', body[depth + i] = ']';
    assert_null(cph_consul_parse_health(body, 2 * depth, NULL, &err));
    /* a body that is not NUL-terminated is read to len only */
    memcpy(body, "[]garbage", 9);
    json_t *t = cph_consul_parse_health(body, 2, NULL, &err);
    assert_non_null(t);
    json_decref(t);
    free(body);
}

/* ---------------------------------------------------------------- the index */

static void expect_index(uint64_t last, const char *header, uint64_t next, int changed, int reset)
{
    cph_consul_index_t r = cph_consul_index_next(last, header);

    if (r.next != next || r.changed != changed || r.reset != reset)
        fail_msg("last %llu header %s: got next %llu changed %d reset %d", (unsigned long long)last,
                 header != NULL ? header : "(none)", (unsigned long long)r.next, r.changed, r.reset);
}

static void test_index_rules(void **state)
{
    (void)state;
    expect_index(0, "5", 5, 1, 0); /* the first answer */
    expect_index(5, "5", 5, 0, 0); /* the wait expired: no change */
    expect_index(5, "6", 6, 1, 0); /* moved on */
    expect_index(5, "4", 0, 1, 1); /* backwards: reset to 0 (and the answer is read) */
    expect_index(5, "1", 0, 1, 1);
    expect_index(5, "0", 0, 1, 1); /* 0: never block on it */
    expect_index(0, "0", 0, 1, 1);
    expect_index(5, NULL, 0, 1, 1); /* missing */
    expect_index(5, "", 0, 1, 1);
    expect_index(5, "abc", 0, 1, 1); /* garbage */
    expect_index(5, "12a", 0, 1, 1);
    expect_index(5, "-7", 0, 1, 1);
    expect_index(5, "+7", 0, 1, 1);
    expect_index(5, "7 8", 0, 1, 1);
    expect_index(5, "0x10", 0, 1, 1);
    expect_index(5, " 7 \r\n", 7, 1, 0); /* a raw header value's spaces */
    expect_index(5, "9223372036854775807", 9223372036854775807ULL, 1, 0);
    expect_index(5, "9223372036854775808", 0, 1, 1); /* over 2^63-1 */
    expect_index(5, "99999999999999999999999", 0, 1, 1);
    expect_index(9223372036854775807ULL, "9223372036854775807", 9223372036854775807ULL, 0, 0);
}

static void test_next_start(void **state)
{
    int64_t backoff = 0;

    (void)state;
    /* a success: at most one request per CPH_CONSUL_MIN_INTERVAL_MS (from the previous start), else at once */
    assert_int_equal(cph_consul_next_start(1000, 1200, 1, &backoff), 1000 + CPH_CONSUL_MIN_INTERVAL_MS);
    assert_int_equal(backoff, 0);
    assert_int_equal(cph_consul_next_start(1000, 61000, 1, &backoff), 61000);
    /* failures: 1 s, doubling to 30 s, from the end of the failed request */
    assert_int_equal(cph_consul_next_start(1000, 1100, 0, &backoff), 2100);
    assert_int_equal(backoff, 1000);
    assert_int_equal(cph_consul_next_start(2100, 5100, 0, &backoff), 7100);
    assert_int_equal(backoff, 2000);
    int64_t want[] = {4000, 8000, 16000, 30000, 30000, 30000};
    for (size_t i = 0; i != sizeof(want) / sizeof(want[0]); ++i) {
        assert_int_equal(cph_consul_next_start(0, 100000, 0, &backoff), 100000 + want[i]);
        assert_int_equal(backoff, want[i]);
    }
    /* a success resets the backoff */
    assert_int_equal(cph_consul_next_start(100000, 100010, 1, &backoff), 100000 + CPH_CONSUL_MIN_INTERVAL_MS);
    assert_int_equal(backoff, 0);
    assert_int_equal(cph_consul_next_start(100000, 100010, 0, &backoff), 101010);
}

/* ---------------------------------------------------------------- failures */

static void expect_class(int code, long status, const char *body, int failed, cph_integration_reason_t kind, const char *text)
{
    cph_integration_reason_t got = CPH_REASON_COUNT;
    char out[200] = "";

    assert_int_equal(
        cph_consul_classify(code, "libcurl says", status, body, body != NULL ? strlen(body) : 0, &got, out, sizeof(out)), failed);
    if (failed) {
        assert_int_equal(got, kind);
        assert_string_equal(out, text);
    }
}

static void test_classify(void **state)
{
    (void)state;
    expect_class(CURLE_OK, 200, "[]", 0, CPH_REASON_COUNT, "");
    expect_class(CURLE_OK, 403, "ACL not found", 1, CPH_REASON_FORBIDDEN, "Consul answered 403: ACL not found");
    expect_class(CURLE_OK, 401, NULL, 1, CPH_REASON_FORBIDDEN, "Consul answered 401");
    expect_class(CURLE_OK, 404, "", 1, CPH_REASON_NOT_FOUND, "Consul answered 404");
    expect_class(CURLE_OK, 500, "No cluster leader\n", 1, CPH_REASON_SERVER_ERROR, "Consul answered 500: No cluster leader");
    expect_class(CURLE_OK, 503, "x", 1, CPH_REASON_SERVER_ERROR, "Consul answered 503: x");
    expect_class(CURLE_OK, 400, "Invalid wait time", 1, CPH_REASON_BAD_RESPONSE, "Consul answered 400: Invalid wait time");
    expect_class(CURLE_OK, 302, "", 1, CPH_REASON_BAD_RESPONSE, "Consul answered 302");
    expect_class(CURLE_OK, 204, "", 1, CPH_REASON_BAD_RESPONSE, "Consul answered 204");
    /* a hostile body: first line only, control bytes replaced, 80 bytes at most */
    expect_class(CURLE_OK, 403, "bad\x01\x1b[31m\tx\r\nsecond line", 1, CPH_REASON_FORBIDDEN, "Consul answered 403: bad??[31m?x");
    char long_body[300];
    memset(long_body, 'A', sizeof(long_body) - 1);
    long_body[sizeof(long_body) - 1] = '\0';
    char want[200];
    snprintf(want, sizeof(want), "Consul answered 403: %.80s", long_body);
    expect_class(CURLE_OK, 403, long_body, 1, CPH_REASON_FORBIDDEN, want);
    /* transport failures */
    expect_class(CURLE_COULDNT_CONNECT, 0, NULL, 1, CPH_REASON_UNREACHABLE, "calling Consul failed: libcurl says");
    expect_class(CURLE_COULDNT_RESOLVE_HOST, 0, NULL, 1, CPH_REASON_UNREACHABLE, "calling Consul failed: libcurl says");
    expect_class(CURLE_GOT_NOTHING, 0, NULL, 1, CPH_REASON_UNREACHABLE, "calling Consul failed: libcurl says");
    expect_class(CURLE_RECV_ERROR, 0, NULL, 1, CPH_REASON_UNREACHABLE, "calling Consul failed: libcurl says");
    expect_class(CURLE_OPERATION_TIMEDOUT, 0, NULL, 1, CPH_REASON_TIMEOUT, "calling Consul failed: libcurl says");
    expect_class(CURLE_WRITE_ERROR, 200, NULL, 1, CPH_REASON_BAD_RESPONSE, "the Consul answer is over 1048576 bytes");
    expect_class(CURLE_FILESIZE_EXCEEDED, 200, NULL, 1, CPH_REASON_BAD_RESPONSE, "the Consul answer is over 1048576 bytes");
    expect_class(CURLE_WEIRD_SERVER_REPLY, 0, NULL, 1, CPH_REASON_BAD_RESPONSE, "calling Consul failed: libcurl says");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_url_refused),
        cmocka_unit_test(test_parse_doc_sample),
        cmocka_unit_test(test_parse_addresses),
        cmocka_unit_test(test_parse_ports_weights),
        cmocka_unit_test(test_parse_merge_sort_cap),
        cmocka_unit_test(test_parse_checks),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_index_rules),
        cmocka_unit_test(test_next_start),
        cmocka_unit_test(test_classify),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
