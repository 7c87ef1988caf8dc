/*
 * schema_test: every rule of the snapshot schema (PROTOCOL.md section 5) with a wrong value and the exact error
 * code and JSON pointer expected. Service and route cases run twice: through the single-object validators (pointer
 * relative to the object) and inside a whole body (the same pointer under /services/0 or /routes/0).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "proto/proto.h"
#include "schema_cases.h"

/* Runs cases through the object validator and inside a body built from fmt (one %s for the object). */
static void run_object_cases(const case_t *cases, size_t n, int (*fn)(const json_t *, cph_error_t *), const char *fmt,
                             const char *prefix)
{
    for (size_t i = 0; i != n; ++i) {
        json_t *obj = parse(cases[i].json), *body;
        char *text;
        cph_error_t err;
        memset(&err, 0, sizeof(err));
        expect(fn(obj, &err), &err, "object", cases[i].json, cases[i].code, cases[i].path);
        assert_true(asprintf(&text, fmt, cases[i].json) > 0);
        body = parse(text);
        check_body(body, cases[i].json, cases[i].code, prefix, cases[i].path);
        json_decref(obj), json_decref(body), free(text);
    }
}

#define T(url) "{\"name\":\"s\",\"targets\":[{\"url\":\"" url "\"}]}"
#define BAD_URL(url)                                                                                                               \
    {                                                                                                                              \
        T(url), "invalid", "/targets/0/url"                                                                                        \
    }
#define GOOD_URL(url)                                                                                                              \
    {                                                                                                                              \
        T(url), NULL, NULL                                                                                                         \
    }

static void test_service_rules(void **state)
{
    static const case_t cases[] = {
        {"{\"name\":\"demo\",\"targets\":[{\"url\":\"http://127.0.0.1:9000\",\"weight\":1}],\"timeout_ms\":60000}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[]}", NULL, NULL},
        {"[]", "invalid", ""},
        {"{\"name\":\"a\",\"targets\":[],\"timeout\":1}", "unknown_field", "/timeout"},
        {"{\"name\":\"a\",\"targets\":[],\"a/b~\":1}", "unknown_field", "/a~1b~0"},
        {"{\"targets\":[]}", "missing_field", "/name"},
        {"{\"name\":\"\",\"targets\":[]}", "invalid", "/name"},
        {"{\"name\":\"a b\",\"targets\":[]}", "invalid", "/name"},
        {"{\"name\":\"caf\\u00e9\",\"targets\":[]}", "invalid", "/name"},
        {"{\"name\":\"a/b\",\"targets\":[]}", "invalid", "/name"},
        {"{\"name\":7,\"targets\":[]}", "invalid", "/name"},
        {"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"targets\":[]}", "invalid", "/name"},
        {"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"targets\":[]}", NULL, NULL},
        {"{\"name\":\"A-z_0.9\",\"targets\":[]}", NULL, NULL},
        {"{\"name\":\"a\"}", "missing_field", "/targets"},
        {"{\"name\":\"a\",\"targets\":{}}", "invalid", "/targets"},
        {"{\"name\":\"a\",\"targets\":[1]}", "invalid", "/targets/0"},
        {"{\"name\":\"a\",\"targets\":[{}]}", "missing_field", "/targets/0/url"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"w\":1}]}", "unknown_field", "/targets/0/w"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\"},{\"url\":\"http://a\"}]}", "invalid", "/targets/1/url"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":0}]}", "invalid", "/targets/0/weight"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":1001}]}", "invalid", "/targets/0/weight"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":-1}]}", "invalid", "/targets/0/weight"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":\"2\"}]}", "invalid", "/targets/0/weight"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":1.0}]}", "invalid", "/targets/0/weight"},
        {"{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":1000}]}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[],\"timeout_ms\":0}", "invalid", "/timeout_ms"},
        {"{\"name\":\"a\",\"targets\":[],\"timeout_ms\":3600001}", "invalid", "/timeout_ms"},
        {"{\"name\":\"a\",\"targets\":[],\"timeout_ms\":60000.0}", "invalid", "/timeout_ms"},
        {"{\"name\":\"a\",\"targets\":[],\"timeout_ms\":null}", "invalid", "/timeout_ms"},
        {"{\"name\":\"a\",\"targets\":[],\"timeout_ms\":1}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[],\"timeout_ms\":3600000}", NULL, NULL},
        /* target URLs */
        GOOD_URL("http://127.0.0.1:9000"),
        GOOD_URL("http://127.0.0.1:9000/"),
        GOOD_URL("http://[::1]:8080"),
        GOOD_URL("http://[2001:db8::1]:80/"),
        GOOD_URL("http://Example.COM:65535"),
        GOOD_URL("http://my-svc.internal:1"),
        GOOD_URL("http://localhost:8080"),
        BAD_URL("https://a:1"),
        BAD_URL("HTTP://a:1"),
        BAD_URL("http://a"),
        BAD_URL("http://a/"),
        BAD_URL("http://a:"),
        BAD_URL("http://:80"),
        BAD_URL("http://a:0"),
        BAD_URL("http://a:65536"),
        BAD_URL("http://a:123456"),
        BAD_URL("http://a:080"),
        BAD_URL("http://a:-1"),
        BAD_URL("http://a:8o"),
        BAD_URL("http://user@a:1"),
        BAD_URL("http://user:pw@a:1"),
        BAD_URL("http://a:1/x"),
        BAD_URL("http://a:1//"),
        BAD_URL("http://a:1?x=1"),
        BAD_URL("http://a:1#f"),
        BAD_URL("http://a :1"),
        BAD_URL("http://a:1 "),
        BAD_URL("http://a\\u0000b:1"),
        BAD_URL("http://a_b:1"),
        BAD_URL("http://-a.com:1"),
        BAD_URL("http://a-.com:1"),
        BAD_URL("http://a..com:1"),
        BAD_URL("http://.a.com:1"),
        BAD_URL("http://a.com.:1"),
        BAD_URL("http://1.2.3.256:1"),
        BAD_URL("http://1.2.3:1"),
        BAD_URL("http://01.2.3.4:1"),
        BAD_URL("http://1.2.3.4.5:1"),
        BAD_URL("http://[::1:1"),
        BAD_URL("http://[]:1"),
        BAD_URL("http://[zz::1]:1"),
        BAD_URL("http://[::1%25eth0]:1"),
        BAD_URL("http://[::1]"),
        BAD_URL("http://[::1]x:1"),
        BAD_URL("http://::1:1"),
        BAD_URL("http://caf\\u00e9:1"),
        BAD_URL("http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1"), /* 64-byte label */
        BAD_URL(""),
        {"{\"name\":\"a\",\"targets\":[{\"url\":1}]}", "invalid", "/targets/0/url"},
    };

    (void)state;
    run_object_cases(cases, NUM_CASES(cases), cph_schema_validate_service, "{\"services\":[%s],\"routes\":[]}", "/services/0");
}

/* A URL of exactly n bytes, "http://" + labels + ":1". */
static char *url_of_len(size_t n)
{
    char *u = malloc(n + 1);
    size_t i;

    assert_non_null(u);
    memcpy(u, "http://", 7);
    for (i = 7; i != n - 2; ++i)
        u[i] = (i - 7) % 50 == 49 ? '.' : 'a';
    if (u[n - 3] == '.')
        u[n - 3] = 'a';
    memcpy(u + n - 2, ":1", 3);
    return u;
}

static void test_url_length(void **state)
{
    char *u255 = url_of_len(255), *u256 = url_of_len(256);
    json_t *ok = json_pack("{s:s, s:[{s:s}]}", "name", "a", "targets", "url", u255);
    json_t *bad = json_pack("{s:s, s:[{s:s}]}", "name", "a", "targets", "url", u256);
    cph_error_t err;

    (void)state;
    assert_int_equal(strlen(u255), 255);
    if (cph_schema_validate_service(ok, &err) != 0)
        fail_msg("%s: %s", u255, err.msg);
    assert_int_equal(cph_schema_validate_service(bad, &err), -1);
    assert_string_equal(err.path, "/targets/0/url");
    json_decref(ok), json_decref(bad), free(u255), free(u256);
}

#define R(extra) "{\"name\":\"r\",\"service\":\"svc\",\"paths\":[\"/api\"]" extra "}"
#define P(paths) "{\"name\":\"r\",\"service\":\"svc\",\"paths\":" paths "}"
#define H(hosts) R(",\"hosts\":" hosts)
#define M(methods) R(",\"methods\":" methods)

static void test_route_rules(void **state)
{
    static const case_t cases[] = {
        {R(""), NULL, NULL},
        {R(",\"hosts\":[],\"methods\":[],\"strip_prefix\":true"), NULL, NULL},
        {"{\"name\":\"demo\",\"service\":\"svc\",\"paths\":[\"/demo\"],\"hosts\":[],\"methods\":[],\"strip_prefix\":true}", NULL,
         NULL},
        {"1", "invalid", ""},
        {R(",\"flavour\":\"proxy\""), "unknown_field", "/flavour"},
        /* kind (proto/schema_kind.c) */
        {R(",\"kind\":\"proxy\""), NULL, NULL},
        {R(",\"kind\":\"pdf\",\"pdf\":{}"), NULL, NULL},
        {R(",\"kind\":\"PDF\",\"pdf\":{}"), "invalid", "/kind"},
        {R(",\"kind\":1"), "invalid", "/kind"},
        {R(",\"kind\":null"), "invalid", "/kind"},
        {R(",\"kind\":\"pdf\""), "missing_field", "/pdf"},
        {R(",\"kind\":\"aggregate\""), "missing_field", "/aggregate"},
        {R(",\"kind\":\"pdf\",\"pdf\":[]"), "invalid", "/pdf"},
        {R(",\"kind\":\"pdf\",\"pdf\":null"), "invalid", "/pdf"},
        {R(",\"kind\":\"pdf\",\"pdf\":{},\"aggregate\":{}"), "invalid", "/aggregate"},
        {R(",\"pdf\":{}"), "invalid", "/pdf"},
        {R(",\"kind\":\"proxy\",\"aggregate\":{}"), "invalid", "/aggregate"},
        {R(",\"kind\":\"pdf\",\"pdf\":{},\"policies\":{\"websocket\":{}}"), "invalid", "/policies/websocket"},
        {"{\"service\":\"svc\",\"paths\":[\"/a\"]}", "missing_field", "/name"},
        {"{\"name\":\"r\",\"paths\":[\"/a\"]}", "missing_field", "/service"},
        {"{\"name\":\"r\",\"service\":\"svc\"}", "missing_field", "/paths"},
        {"{\"name\":\"r!\",\"service\":\"svc\",\"paths\":[\"/a\"]}", "invalid", "/name"},
        {"{\"name\":\"r\",\"service\":[\"svc\"],\"paths\":[\"/a\"]}", "invalid", "/service"},
        {"{\"name\":\"r\",\"service\":\"s v c\",\"paths\":[\"/a\"]}", "invalid", "/service"},
        /* paths */
        {P("[]"), "invalid", "/paths"},
        {P("\"/a\""), "invalid", "/paths"},
        {P("[1]"), "invalid", "/paths/0"},
        {P("[\"\"]"), "invalid", "/paths/0"},
        {P("[\"api\"]"), "invalid", "/paths/0"},
        {P("[\"/a\",\"/a/../b\"]"), "invalid", "/paths/1"},
        {P("[\"//a\"]"), "invalid", "/paths/0"},
        {P("[\"/a//b\"]"), "invalid", "/paths/0"},
        {P("[\"/a/./b\"]"), "invalid", "/paths/0"},
        {P("[\"/a%2Fb\"]"), "invalid", "/paths/0"},
        {P("[\"/a%41\"]"), "invalid", "/paths/0"},
        {P("[\"/a%2a\"]"), "invalid", "/paths/0"},
        {P("[\"/a b\"]"), "invalid", "/paths/0"},
        {P("[\"/%2e%2e/x\"]"), "invalid", "/paths/0"},
        {P("[\"/a/..\"]"), "invalid", "/paths/0"},
        {P("[\"/a%3Bb\"]"), "invalid", "/paths/0"},
        {P("[\"/a%2\"]"), "invalid", "/paths/0"},
        {P("[\"/a%20b\",\"/x:y@z\"]"), NULL, NULL},
        {P("[\"/a\\\\b\"]"), "invalid", "/paths/0"},
        {P("[\"/a\\u0000b\"]"), "invalid", "/paths/0"},
        {P("[\"/a\\u0001b\"]"), "invalid", "/paths/0"},
        {P("[\"/a;b\"]"), "invalid", "/paths/0"},
        {P("[\"/a\",\"/b\",\"/a\"]"), "duplicate", "/paths/2"},
        {P("[\"/\",\"/a/\",\"/a\",\"/a-b_c.d~e\"]"), NULL, NULL},
        /* /auth belongs to the data plane's built-in routes; /authx and /Auth are other paths */
        {P("[\"/auth\"]"), "invalid", "/paths/0"},
        {P("[\"/auth/\"]"), "invalid", "/paths/0"},
        {P("[\"/a\",\"/auth/x\"]"), "invalid", "/paths/1"},
        {P("[\"/auth/.well-known/jwks.json\"]"), "invalid", "/paths/0"},
        {P("[\"/authx\",\"/Auth\",\"/x/auth\"]"), NULL, NULL},
        /* hosts */
        {H("[\"api.example.com\",\"*.example.com\",\"localhost\",\"127.0.0.1\"]"), NULL, NULL},
        {H("\"a.com\""), "invalid", "/hosts"},
        {H("[1]"), "invalid", "/hosts/0"},
        {H("[\"a.com\",\"Example.com\"]"), "invalid", "/hosts/1"},
        {H("[\"a.com:80\"]"), "invalid", "/hosts/0"},
        {H("[\"\"]"), "invalid", "/hosts/0"},
        {H("[\"*\"]"), "invalid", "/hosts/0"},
        {H("[\"*.\"]"), "invalid", "/hosts/0"},
        {H("[\"a.*.com\"]"), "invalid", "/hosts/0"},
        {H("[\"**.a.com\"]"), "invalid", "/hosts/0"},
        {H("[\"a..com\"]"), "invalid", "/hosts/0"},
        {H("[\"[::1]\"]"), "invalid", "/hosts/0"},
        {H("[\"a_b.com\"]"), "invalid", "/hosts/0"},
        /* methods */
        {M("[\"GET\",\"HEAD\",\"POST\",\"PUT\",\"PATCH\",\"DELETE\",\"OPTIONS\",\"CONNECT\",\"TRACE\"]"), NULL, NULL},
        {M("{}"), "invalid", "/methods"},
        {M("[\"get\"]"), "invalid", "/methods/0"},
        {M("[\"GET\",\"FOO\"]"), "invalid", "/methods/1"},
        {M("[\"GET\",\"POST\",\"GET\"]"), "duplicate", "/methods/2"},
        {M("[\"GET\\u0000\"]"), "invalid", "/methods/0"},
        {M("[null]"), "invalid", "/methods/0"},
        {M("[\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\",\"GET\","
           "\"GET\",\"GET\",\"GET\"]"),
         "invalid", "/methods"},
        /* strip_prefix */
        {R(",\"strip_prefix\":false"), NULL, NULL},
        {R(",\"strip_prefix\":1"), "invalid", "/strip_prefix"},
        {R(",\"strip_prefix\":\"true\""), "invalid", "/strip_prefix"},
        {R(",\"strip_prefix\":1.0"), "invalid", "/strip_prefix"},
    };

    (void)state;
    run_object_cases(cases, NUM_CASES(cases), cph_schema_validate_route,
                     "{\"services\":[{\"name\":\"svc\",\"targets\":[]}],\"routes\":[%s]}", "/routes/0");
}

/* A route with n copies of a string in key (paths get distinct values), to probe the array caps. */
static void check_cap(const char *key, size_t n, const char *want_path)
{
    json_t *route = json_pack("{s:s, s:s, s:[s]}", "name", "r", "service", "svc", "paths", "/a"), *a = json_array();
    cph_error_t err;
    size_t i;

    for (i = 0; i != n; ++i) {
        char v[32];
        snprintf(v, sizeof(v), strcmp(key, "paths") == 0 ? "/p%zu" : "h%zu.example.com", i);
        json_array_append_new(a, json_string(v));
    }
    json_object_set_new(route, key, a);
    if (want_path == NULL) {
        if (cph_schema_validate_route(route, &err) != 0)
            fail_msg("%s x %zu: %s at %s", key, n, err.msg, err.path);
    } else {
        assert_int_equal(cph_schema_validate_route(route, &err), -1);
        assert_string_equal(err.code, "invalid");
        assert_string_equal(err.path, want_path);
    }
    json_decref(route);
}

static void test_route_caps(void **state)
{
    char path[1100];
    json_t *r;
    cph_error_t err;

    (void)state;
    check_cap("paths", 64, NULL);
    check_cap("paths", 65, "/paths");
    check_cap("hosts", 64, NULL);
    check_cap("hosts", 65, "/hosts");
    path[0] = '/';
    memset(path + 1, 'a', 1023);
    path[1024] = '\0';
    r = json_pack("{s:s, s:s, s:[s]}", "name", "r", "service", "svc", "paths", path);
    assert_int_equal(cph_schema_validate_route(r, &err), 0);
    json_decref(r);
    path[1024] = 'a', path[1025] = '\0';
    r = json_pack("{s:s, s:s, s:[s]}", "name", "r", "service", "svc", "paths", path);
    assert_int_equal(cph_schema_validate_route(r, &err), -1);
    assert_string_equal(err.path, "/paths/0");
    json_decref(r);
}

static void test_targets_cap(void **state)
{
    json_t *svc = json_pack("{s:s, s:[]}", "name", "a", "targets"), *t = json_pack("{s:s}", "url", "http://a:1");
    cph_error_t err;
    size_t i;

    (void)state;
    for (i = 0; i != 256; ++i)
        json_array_append(json_object_get(svc, "targets"), t);
    assert_int_equal(cph_schema_validate_service(svc, &err), 0);
    json_array_append(json_object_get(svc, "targets"), t);
    assert_int_equal(cph_schema_validate_service(svc, &err), -1);
    assert_string_equal(err.path, "/targets");
    json_decref(svc), json_decref(t);
}

static void test_body_rules(void **state)
{
    static const case_t cases[] = {
        {"{\"services\":[],\"routes\":[]}", NULL, NULL},
        {"[]", "invalid", ""},
        {"{\"services\":[],\"routes\":[],\"version\":1}", "unknown_field", "/version"},
        {"{\"services\":[],\"routes\":[],\"x\":1.5}", "unknown_field", "/x"},
        {"{\"routes\":[]}", "missing_field", "/services"},
        {"{\"services\":[]}", "missing_field", "/routes"},
        {"{\"services\":{},\"routes\":[]}", "invalid", "/services"},
        {"{\"services\":[],\"routes\":null}", "invalid", "/routes"},
        {"{\"services\":[{\"name\":\"a\",\"targets\":[]},{\"name\":\"b\",\"targets\":[]},{\"name\":\"a\",\"targets\":[]}],"
         "\"routes\":[]}",
         "duplicate", "/services/2/name"},
        {"{\"services\":[{\"name\":\"a\",\"targets\":[]}],\"routes\":[{\"name\":\"r\",\"service\":\"a\",\"paths\":[\"/x\"]},"
         "{\"name\":\"r\",\"service\":\"a\",\"paths\":[\"/y\"]}]}",
         "duplicate", "/routes/1/name"},
        {"{\"services\":[{\"name\":\"a\",\"targets\":[]}],\"routes\":[{\"name\":\"r\",\"service\":\"b\",\"paths\":[\"/x\"]}]}",
         "unknown_service", "/routes/0/service"},
        /* a route and a service may share a name; names are case-sensitive */
        {"{\"services\":[{\"name\":\"a\",\"targets\":[]},{\"name\":\"A\",\"targets\":[]}],"
         "\"routes\":[{\"name\":\"a\",\"service\":\"A\",\"paths\":[\"/x\"]}]}",
         NULL, NULL},
        {"{\"services\":[{\"name\":\"a\",\"targets\":[]}],\"routes\":[{\"name\":\"r0\",\"service\":\"a\",\"paths\":[\"/x\"]},"
         "{\"name\":\"r1\",\"service\":\"a\",\"paths\":[\"/x\"]},{\"name\":\"r2\",\"service\":\"a\",\"paths\":[\"/x\"]},"
         "{\"name\":\"r3\",\"service\":\"a\",\"paths\":[\"/y/../z\"]}]}",
         "invalid", "/routes/3/paths/0"},
        /* the first offending value wins: a bad service before a bad route */
        {"{\"services\":[{\"name\":\"a\",\"targets\":[{\"url\":\"ftp://x:1\"}]}],\"routes\":[{\"name\":\"r\",\"service\":\"zz\","
         "\"paths\":[\"/x\"]}]}",
         "invalid", "/services/0/targets/0/url"},
    };
    size_t i;

    (void)state;
    for (i = 0; i != NUM_CASES(cases); ++i)
        check_body_text(cases[i].json, cases[i].code, cases[i].path);
    assert_int_equal(cph_snapshot_validate(NULL, NULL), -1);
}

static void test_real_message(void **state)
{
    json_t *b = parse("{\"services\":[{\"name\":\"a\",\"targets\":[{\"url\":\"http://a:1\",\"weight\":2.5}]}],\"routes\":[]}");
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_string_equal(err.path, "/services/0/targets/0/weight");
    assert_non_null(strstr(err.msg, "real"));
    json_decref(b);
}

/* A body with n services (distinct names) and m routes (distinct names, all to the first service). */
static json_t *big_body(size_t n, size_t m)
{
    json_t *services = json_array(), *routes = json_array();
    char name[32];
    size_t i;

    for (i = 0; i != n; ++i) {
        snprintf(name, sizeof(name), "s%zu", i);
        json_array_append_new(services, json_pack("{s:s, s:[]}", "name", name, "targets"));
    }
    for (i = 0; i != m; ++i) {
        snprintf(name, sizeof(name), "r%zu", i);
        json_array_append_new(routes, json_pack("{s:s, s:s, s:[s]}", "name", name, "service", "s0", "paths", "/x"));
    }
    return json_pack("{s:o, s:o}", "services", services, "routes", routes);
}

static void test_body_caps(void **state)
{
    json_t *b;
    cph_error_t err;

    (void)state;
    b = big_body(4096, 16384);
    if (cph_snapshot_validate(b, &err) != 0)
        fail_msg("%s at %s", err.msg, err.path);
    json_array_append_new(json_object_get(b, "services"), json_pack("{s:s, s:[]}", "name", "extra", "targets"));
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/services");
    json_decref(b);
    b = big_body(1, 16385);
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_string_equal(err.path, "/routes");
    json_decref(b);
}

/* ---------------------------------------------------------------- keys */

/* Unpadded base64url of n bytes: first, then fill repeated (OpenSSL's encoder, then the URL alphabet). */
static char *b64url(unsigned char first, unsigned char fill, size_t n)
{
    unsigned char *bin = malloc(n + 1);
    char *out = malloc(4 * (n / 3 + 1) + 1);
    int len;

    assert_non_null(bin), assert_non_null(out);
    memset(bin, fill, n);
    bin[0] = first;
    len = EVP_EncodeBlock((unsigned char *)out, bin, (int)n);
    while (len > 0 && out[len - 1] == '=')
        --len;
    out[len] = '\0';
    for (int i = 0; i < len; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    free(bin);
    return out;
}

/* Validates {"services":[],"routes":[],"keys":KEYS} and expects code at path (NULL: valid). */
static void expect_keys(const char *keys, const char *code, const char *path)
{
    char *text;

    assert_true(asprintf(&text, "{\"services\":[],\"routes\":[],\"keys\":%s}", keys) > 0);
    check_body_text(text, code, path);
    free(text);
}

/* An EC key with x, y and extra members as given (extra starts with ',' or is empty). */
static void expect_ec(const char *kid, const char *alg, const char *x, const char *y, const char *extra, const char *code,
                      const char *path)
{
    char *keys;

    assert_true(asprintf(&keys,
                         "[{\"kid\":\"%s\",\"alg\":\"%s\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\","
                         "\"y\":\"%s\"%s}]",
                         kid, alg, x, y, extra) > 0);
    expect_keys(keys, code, path);
    free(keys);
}

static void expect_rsa(const char *n, const char *e, const char *extra, const char *code, const char *path)
{
    char *keys;

    assert_true(asprintf(&keys, "[{\"kid\":\"r1\",\"alg\":\"RS256\",\"kty\":\"RSA\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"%s}]",
                         n, e, extra) > 0);
    expect_keys(keys, code, path);
    free(keys);
}

static void test_keys_ec(void **state)
{
    char *x = b64url(0x9c, 0x5a, 32), *y = b64url(0x00, 0xff, 32), *x31 = b64url(1, 2, 31), *x33 = b64url(1, 2, 33);
    char *bad;

    (void)state;
    assert_int_equal(strlen(x), 43);
    expect_ec("0123456789abcdef0123456789abcdef", "ES256", x, y, "", NULL, NULL);
    expect_ec("k", "ES256", y, y, "", NULL, NULL); /* a coordinate may start with a zero byte */
    /* private material never passes: every member is named */
    expect_ec("k", "ES256", x, y, ",\"d\":\"AAAA\"", "unknown_field", "/keys/0/d");
    expect_ec("k", "ES256", x, y, ",\"n\":\"AQAB\"", "unknown_field", "/keys/0/n"); /* an RSA member on an EC key */
    expect_ec("k", "ES256", x, y, ",\"key_ops\":[\"verify\"]", "unknown_field", "/keys/0/key_ops");
    /* kid: a name, nothing a path or a query could use */
    expect_ec("", "ES256", x, y, "", "invalid", "/keys/0/kid");
    expect_ec("../../etc/passwd", "ES256", x, y, "", "invalid", "/keys/0/kid");
    expect_ec("a' OR '1'='1", "ES256", x, y, "", "invalid", "/keys/0/kid");
    expect_ec("k\\u0000", "ES256", x, y, "", "invalid", "/keys/0/kid");
    /* alg: pinned, case-sensitive; never none or HMAC */
    expect_ec("k", "none", x, y, "", "invalid", "/keys/0/alg");
    expect_ec("k", "HS256", x, y, "", "invalid", "/keys/0/alg");
    expect_ec("k", "es256", x, y, "", "invalid", "/keys/0/alg");
    expect_ec("k", "RS256", x, y, "", "invalid", "/keys/0/kty"); /* alg and kty disagree */
    /* coordinates: 32 bytes of strict unpadded base64url */
    expect_ec("k", "ES256", x31, y, "", "invalid", "/keys/0/x");
    expect_ec("k", "ES256", x, x33, "", "invalid", "/keys/0/y");
    assert_true(asprintf(&bad, "%s=", x) > 0);
    expect_ec("k", "ES256", bad, y, "", "invalid", "/keys/0/x");
    bad[42] = '\0', bad[0] = '+';
    expect_ec("k", "ES256", bad, y, "", "invalid", "/keys/0/x");
    strcpy(bad, x);
    /* non-zero spare bits, a second spelling of the same bytes: the last value is a multiple of 4, so +1 stays in its
     * letter or digit range */
    bad[42] = (char)(bad[42] + 1);
    expect_ec("k", "ES256", bad, y, "", "invalid", "/keys/0/x");
    strcpy(bad, x);
    bad[10] = ' ';
    expect_ec("k", "ES256", x, bad, "", "invalid", "/keys/0/y");
    free(bad), free(x), free(y), free(x31), free(x33);
}

static void test_keys_members(void **state)
{
    const char *x = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    char *keys;

    (void)state;
    expect_keys("[]", NULL, NULL);
    expect_keys("{}", "invalid", "/keys");
    expect_keys("null", "invalid", "/keys");
    expect_keys("[\"k\"]", "invalid", "/keys/0");
    expect_keys("[{\"alg\":\"ES256\"}]", "missing_field", "/keys/0/kid");
    expect_keys("[{\"kid\":\"k\",\"kty\":\"EC\"}]", "missing_field", "/keys/0/alg");
    expect_keys("[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"oct\",\"use\":\"sig\"}]", "invalid", "/keys/0/kty");
    expect_keys("[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"EC\"}]", "missing_field", "/keys/0/use");
    expect_keys("[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"enc\"}]", "invalid", "/keys/0/use");
    expect_keys("[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-384\"}]", "invalid", "/keys/0/crv");
    expect_keys("[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"y\":\"A\"}]", "missing_field",
                "/keys/0/x");
    expect_keys("[{\"kid\":\"k\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":5}]", "invalid",
                "/keys/0/x");
    /* a repeated kid is reported at the later key; 16 keys at most */
    keys = NULL;
    {
        char *one[17];
        size_t len = 2, i;
        for (i = 0; i != 17; ++i) {
            assert_true(
                asprintf(&one[i],
                         "{\"kid\":\"k%zu\",\"alg\":\"ES256\",\"kty\":\"EC\",\"use\":\"sig\",\"crv\":\"P-256\",\"x\":\"%s\","
                         "\"y\":\"%s\"}",
                         i, x, x) > 0);
            len += strlen(one[i]) + 1;
        }
        keys = calloc(1, len + 1);
        strcpy(keys, "[");
        for (i = 0; i != 16; ++i)
            strcat(strcat(keys, i ? "," : ""), one[i]);
        expect_keys(strcat(keys, "]"), NULL, NULL);
        keys[strlen(keys) - 1] = '\0';
        expect_keys(strcat(strcat(strcat(keys, ","), one[16]), "]"), "invalid", "/keys");
        sprintf(keys, "[%s,%s,%s]", one[0], one[1], one[0]);
        expect_keys(keys, "duplicate", "/keys/2/kid");
        for (i = 0; i != 17; ++i)
            free(one[i]);
        free(keys);
    }
    /* the first offending value wins: routes before keys */
    {
        json_t *b = parse("{\"services\":[],\"routes\":[{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"]}],\"keys\":[1]}");
        cph_error_t err;
        assert_int_equal(cph_snapshot_validate(b, &err), -1);
        assert_string_equal(err.path, "/routes/0/service");
        json_decref(b);
    }
}

static void test_keys_rsa(void **state)
{
    char *n2048 = b64url(0xc3, 0x17, 256), *n4096 = b64url(0x80, 0xee, 512), *n255 = b64url(0xc3, 1, 255),
         *n513 = b64url(0xc3, 1, 513), *n0 = b64url(0x00, 0xc3, 257);

    (void)state;
    expect_rsa(n2048, "AQAB", "", NULL, NULL);
    expect_rsa(n4096, "Aw", "", NULL, NULL); /* e = 3 */
    expect_rsa(n2048, "AQAB", ",\"d\":\"AQAB\"", "unknown_field", "/keys/0/d");
    expect_rsa(n2048, "AQAB", ",\"p\":\"AQAB\"", "unknown_field", "/keys/0/p");
    expect_rsa(n2048, "AQAB", ",\"x\":\"AQAB\"", "unknown_field", "/keys/0/x");
    expect_rsa(n255, "AQAB", "", "invalid", "/keys/0/n");
    expect_rsa(n513, "AQAB", "", "invalid", "/keys/0/n");
    expect_rsa(n0, "AQAB", "", "invalid", "/keys/0/n"); /* a leading zero byte: not the minimal spelling */
    expect_rsa(n2048, "AQAB=", "", "invalid", "/keys/0/e");
    expect_rsa(n2048, "AAEAAQ", "", "invalid", "/keys/0/e");
    expect_rsa(n2048, "AQ", "", "invalid", "/keys/0/e");      /* 1 */
    expect_rsa(n2048, "Ag", "", "invalid", "/keys/0/e");      /* 2: even */
    expect_rsa(n2048, "AQAAAAE", "", "invalid", "/keys/0/e"); /* 5 bytes */
    expect_rsa(n2048, "", "", "invalid", "/keys/0/e");
    free(n2048), free(n4096), free(n255), free(n513), free(n0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_rules), cmocka_unit_test(test_url_length),  cmocka_unit_test(test_route_rules),
        cmocka_unit_test(test_route_caps),    cmocka_unit_test(test_targets_cap), cmocka_unit_test(test_body_rules),
        cmocka_unit_test(test_real_message),  cmocka_unit_test(test_body_caps),   cmocka_unit_test(test_keys_ec),
        cmocka_unit_test(test_keys_members),  cmocka_unit_test(test_keys_rsa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
