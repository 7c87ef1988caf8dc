/*
 * schema_credentials_test: a service's "credentials" in the snapshot schema (PROTOCOL.md section 5, "service
 * credentials") and cph_credentials_header_forbidden.
 *
 * Every case is a credentials object checked two ways, with the exact error code and JSON pointer: inside a service
 * alone (cph_schema_validate_service, under /credentials) and inside a body (under /services/0/credentials). Covered:
 * the two valid forms, types (null, arrays, reals), unknown members, the order of the checks, source and error bytes
 * and caps, exactly one of headers and error, the headers cap, each element's members, names (syntax, case, every
 * forbidden name, '_' spellings, the identity prefix), values (CR, LF, NUL, DEL, other control bytes, leading and
 * trailing space or tab, the 8192-byte cap, non-ASCII allowed), repeated names; and that no error message quotes a
 * value. Last, a body without credentials validates and hashes as before, and policies are checked first.
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

/* Checks credentials (borrowed) in a service and in a body; path is relative to the credentials object. */
static void check_credentials(json_t *cred, const char *text, const char *code, const char *path)
{
    json_t *svc = json_pack("{s:s, s:[], s:O}", "name", "orders", "targets", "credentials", cred);
    json_t *body = json_pack("{s:[O], s:[]}", "services", svc, "routes");
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    expect_under(cph_schema_validate_service(svc, &err), &err, "service", text, code, "/credentials", path);
    check_body(body, text, code, "/services/0/credentials", path);
    json_decref(svc);
    json_decref(body);
}

#define RUN(cases) RUN_CASES(cases, check_credentials)

#define SRC "\"source\":\"vault:services/orders@3\""
#define HDRS(elems) "{" SRC ",\"headers\":[" elems "]}"
#define H(name, value) "{\"name\":\"" name "\",\"value\":\"" value "\"}"
#define NAME(name) HDRS(H(name, "v"))
#define VALUE(value) HDRS(H("x-api-key", value))

/* ---------------------------------------------------------------- the object */

static void test_object(void **state)
{
    static const case_t cases[] = {
        {HDRS(H("authorization", "Bearer s3cr3t") "," H("x-api-key", "k")), NULL, NULL},
        {"{" SRC ",\"error\":\"the secret has not been read from Vault yet\"}", NULL, NULL},
        {"{\"source\":\"vault:services/orders\",\"error\":\"Vault is not configured\"}", NULL, NULL},
        {"null", "invalid", ""},
        {"[]", "invalid", ""},
        {"\"vault:x\"", "invalid", ""},
        {"1", "invalid", ""},
        {"1.5", "invalid", ""},
        {"true", "invalid", ""},
        {"{}", "missing_field", "/source"},
        {"{\"vault_path\":\"services/orders\"}", "unknown_field", "/vault_path"}, /* the admin form is not the snapshot's */
        {"{" SRC ",\"error\":\"e\",\"values\":{}}", "unknown_field", "/values"},
        {"{\"Source\":\"s\",\"error\":\"e\"}", "unknown_field", "/Source"},
        {"{\"\":1}", "unknown_field", "/"},
        /* unknown members first, then source, headers, error, then exactly one of the last two */
        {"{\"error\":1,\"headers\":1,\"source\":1,\"zz\":1}", "unknown_field", "/zz"},
        {"{\"error\":1,\"headers\":1,\"source\":1}", "invalid", "/source"},
        {"{\"error\":1,\"headers\":1}", "missing_field", "/source"},
        {"{\"error\":1,\"headers\":1," SRC "}", "invalid", "/headers"},
        {"{\"error\":1,\"headers\":[" H("host", "x") "]," SRC "}", "invalid", "/headers/0/name"},
        {"{\"error\":1,\"headers\":[" H("a", "x") "]," SRC "}", "invalid", "/error"},
        /* exactly one of headers and error */
        {"{" SRC "}", "missing_field", "/headers"},
        {"{" SRC ",\"headers\":[" H("a", "b") "],\"error\":\"e\"}", "invalid", "/error"},
        {"{" SRC ",\"headers\":null,\"error\":\"e\"}", "invalid", "/headers"},
        {"{" SRC ",\"headers\":[" H("a", "b") "],\"error\":null}", "invalid", "/error"},
    };
    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- source and error */

static void test_source_and_error(void **state)
{
    static const case_t cases[] = {
        {"{\"source\":\" \",\"error\":\"~\"}", NULL, NULL},
        {"{\"source\":\"\",\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":null,\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":1,\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":[\"s\"],\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":\"vault:a\\n\",\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":\"vault:a\\u0000b\",\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":\"vault:\\u00e9\",\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":\"vault:\\u007f\",\"error\":\"e\"}", "invalid", "/source"},
        {"{\"source\":\"\\t\",\"error\":\"e\"}", "invalid", "/source"},
        {"{" SRC ",\"error\":\"\"}", "invalid", "/error"},
        {"{" SRC ",\"error\":1}", "invalid", "/error"},
        {"{" SRC ",\"error\":{}}", "invalid", "/error"},
        {"{" SRC ",\"error\":\"line\\r\\nx: y\"}", "invalid", "/error"},
        {"{" SRC ",\"error\":\"a\\u0000\"}", "invalid", "/error"},
        {"{" SRC ",\"error\":\"caf\\u00e9\"}", "invalid", "/error"},
    };
    (void)state;
    RUN(cases);
}

/* A credentials text whose member key (source or error) holds n copies of c, with the other member filled in. */
static char *long_member(const char *key, size_t n, char c)
{
    char *s = malloc(n + 1), *text;

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    if (strcmp(key, "source") == 0)
        assert_true(asprintf(&text, "{\"source\":\"%s\",\"error\":\"e\"}", s) > 0);
    else if (strcmp(key, "error") == 0)
        assert_true(asprintf(&text, "{" SRC ",\"error\":\"%s\"}", s) > 0);
    else if (strcmp(key, "value") == 0)
        assert_true(asprintf(&text, HDRS("{\"name\":\"a\",\"value\":\"%s\"}"), s) > 0);
    else
        assert_true(asprintf(&text, HDRS("{\"name\":\"%s\",\"value\":\"v\"}"), s) > 0);
    free(s);
    return text;
}

static void check_long(const char *key, size_t n, char c, const char *code, const char *path)
{
    char *text = long_member(key, n, c);
    json_t *v = parse(text);

    check_credentials(v, key, code, path);
    json_decref(v);
    free(text);
}

static void test_caps(void **state)
{
    (void)state;
    check_long("source", 300, 'a', NULL, NULL);
    check_long("source", 301, 'a', "invalid", "/source");
    check_long("error", 256, 'e', NULL, NULL);
    check_long("error", 257, 'e', "invalid", "/error");
    check_long("value", 8192, 'v', NULL, NULL);
    check_long("value", 8193, 'v', "invalid", "/headers/0/value");
    check_long("name", 64, 'n', NULL, NULL);
    check_long("name", 65, 'n', "invalid", "/headers/0/name");
}

/* ---------------------------------------------------------------- headers */

static void test_headers_list(void **state)
{
#define E8                                                                                                                         \
    H("a1", "v")                                                                                                                   \
    "," H("a2", "v") "," H("a3", "v") "," H("a4", "v") "," H("a5", "v") "," H("a6", "v") "," H("a7", "v") "," H("a8", "v")
    static const case_t cases[] = {
        {HDRS(E8), NULL, NULL},
        {HDRS(E8 "," H("a9", "v")), "invalid", "/headers"},
        {HDRS(""), "invalid", "/headers"},
        {"{" SRC ",\"headers\":{}}", "invalid", "/headers"},
        {"{" SRC ",\"headers\":\"authorization: x\"}", "invalid", "/headers"},
        {HDRS("\"authorization: x\""), "invalid", "/headers/0"},
        {HDRS("null"), "invalid", "/headers/0"},
        {HDRS("[\"a\",\"b\"]"), "invalid", "/headers/0"},
        {HDRS("{}"), "missing_field", "/headers/0/name"},
        {HDRS("{\"name\":\"a\"}"), "missing_field", "/headers/0/value"},
        {HDRS("{\"value\":\"v\"}"), "missing_field", "/headers/0/name"},
        {HDRS("{\"name\":\"a\",\"value\":\"v\",\"x\":1}"), "unknown_field", "/headers/0/x"},
        {HDRS("{\"name\":\"a\",\"value\":\"v\",\"Name\":\"b\"}"), "unknown_field", "/headers/0/Name"},
        {HDRS("{\"x\":1,\"name\":1}"), "unknown_field", "/headers/0/x"},
        {HDRS("{\"name\":1,\"value\":1}"), "invalid", "/headers/0/name"},
        {HDRS("{\"name\":\"a\",\"value\":1}"), "invalid", "/headers/0/value"},
        {HDRS("{\"name\":\"a\",\"value\":null}"), "invalid", "/headers/0/value"},
        {HDRS("{\"name\":\"a\",\"value\":[\"v\"]}"), "invalid", "/headers/0/value"},
        {HDRS("{\"name\":null,\"value\":\"v\"}"), "invalid", "/headers/0/name"},
        /* the second element is checked only once the first is valid; repeats at the later name, any position */
        {HDRS(H("a", "v") "," H("A", "v")), "invalid", "/headers/1/name"},
        {HDRS(H("a", "v") "," H("b", "v") "," H("a", "w")), "duplicate", "/headers/2/name"},
        {HDRS(H("x-api-key", "1") "," H("x-api-key", "1")), "duplicate", "/headers/1/name"},
        {HDRS(H("a", "v") "," H("b", "v") "," H("b", "\\n")), "invalid", "/headers/2/value"},
    };
#undef E8
    (void)state;
    RUN(cases);
}

static void test_names(void **state)
{
    static const case_t cases[] = {
        {NAME("authorization"), NULL, NULL},
        {NAME("proxy-authorization"), NULL, NULL},
        {NAME("cookie"), NULL, NULL},
        {NAME("x-api-key"), NULL, NULL},
        {NAME("x-cephalo"), NULL, NULL}, /* not under the prefix: it ends with '-' */
        {NAME("x-cephalox-a"), NULL, NULL},
        {NAME("hosts"), NULL, NULL},
        {NAME("x-forwarded-port"), NULL, NULL},
        {NAME("!#$%&'*+-.^_`|~0"), NULL, NULL},
        {NAME("Authorization"), "invalid", "/headers/0/name"},
        {NAME("X-API-KEY"), "invalid", "/headers/0/name"},
        {NAME(""), "invalid", "/headers/0/name"},
        {NAME("a b"), "invalid", "/headers/0/name"},
        {NAME("a:b"), "invalid", "/headers/0/name"},
        {NAME("a\\r\\nx-evil"), "invalid", "/headers/0/name"},
        {NAME("a\\u0000b"), "invalid", "/headers/0/name"},
        {NAME("caf\\u00e9"), "invalid", "/headers/0/name"},
        {NAME("a,b"), "invalid", "/headers/0/name"},
        {NAME("(a)"), "invalid", "/headers/0/name"},
        {NAME(":authority"), "invalid", "/headers/0/name"},
        {NAME(":path"), "invalid", "/headers/0/name"},
        /* names the gateway writes or removes itself */
        {NAME("host"), "invalid", "/headers/0/name"},
        {NAME("content-length"), "invalid", "/headers/0/name"},
        {NAME("transfer-encoding"), "invalid", "/headers/0/name"},
        {NAME("connection"), "invalid", "/headers/0/name"},
        {NAME("keep-alive"), "invalid", "/headers/0/name"},
        {NAME("proxy-connection"), "invalid", "/headers/0/name"},
        {NAME("te"), "invalid", "/headers/0/name"},
        {NAME("trailer"), "invalid", "/headers/0/name"},
        {NAME("upgrade"), "invalid", "/headers/0/name"},
        {NAME("expect"), "invalid", "/headers/0/name"},
        {NAME("http2-settings"), "invalid", "/headers/0/name"},
        {NAME("forwarded"), "invalid", "/headers/0/name"},
        {NAME("x-forwarded-for"), "invalid", "/headers/0/name"},
        {NAME("x-forwarded-proto"), "invalid", "/headers/0/name"},
        {NAME("x-forwarded-host"), "invalid", "/headers/0/name"},
        {NAME("x-request-id"), "invalid", "/headers/0/name"},
        {NAME("x-cephalo-"), "invalid", "/headers/0/name"},
        {NAME("x-cephalo-user-id"), "invalid", "/headers/0/name"},
        {NAME("x-cephalo-request-id"), "invalid", "/headers/0/name"},
        /* '_' spellings that CGI-style upstreams read as the forbidden name */
        {NAME("x_cephalo_roles"), "invalid", "/headers/0/name"},
        {NAME("x-cephalo_system"), "invalid", "/headers/0/name"},
        {NAME("x_forwarded_for"), "invalid", "/headers/0/name"},
        {NAME("content_length"), "invalid", "/headers/0/name"},
        {NAME("transfer_encoding"), "invalid", "/headers/0/name"},
        {NAME("x_request_id"), "invalid", "/headers/0/name"},
    };
    (void)state;
    RUN(cases);
}

static void test_values(void **state)
{
    static const case_t cases[] = {
        {VALUE("k"), NULL, NULL},
        {VALUE("Bearer a.b.c"), NULL, NULL},
        {VALUE("a\\tb"), NULL, NULL},
        {VALUE("a  b"), NULL, NULL},
        {VALUE("caf\\u00e9 \\u00ff"), NULL, NULL}, /* obs-text: bytes >= 0x80 pass */
        {VALUE("~!\\\"#$%&'()*+,-./:;<=>?@[\\\\]^_`{|}"), NULL, NULL},
        {VALUE(""), "invalid", "/headers/0/value"},
        {VALUE(" "), "invalid", "/headers/0/value"},
        {VALUE(" k"), "invalid", "/headers/0/value"},
        {VALUE("k "), "invalid", "/headers/0/value"},
        {VALUE("\\tk"), "invalid", "/headers/0/value"},
        {VALUE("k\\t"), "invalid", "/headers/0/value"},
        {VALUE("k\\r\\nx-cephalo-user-id: 1"), "invalid", "/headers/0/value"},
        {VALUE("k\\r\\n\\r\\nGET / HTTP/1.1"), "invalid", "/headers/0/value"},
        {VALUE("k\\nx: y"), "invalid", "/headers/0/value"},
        {VALUE("k\\rx"), "invalid", "/headers/0/value"},
        {VALUE("k\\u0000x"), "invalid", "/headers/0/value"},
        {VALUE("\\u0000"), "invalid", "/headers/0/value"},
        {VALUE("k\\u007f"), "invalid", "/headers/0/value"},
        {VALUE("k\\u0001"), "invalid", "/headers/0/value"},
        {VALUE("k\\u001fx"), "invalid", "/headers/0/value"},
        {VALUE("k\\u000bx"), "invalid", "/headers/0/value"},
        {VALUE("k\\u000cx"), "invalid", "/headers/0/value"},
    };
    (void)state;
    RUN(cases);
}

/* An error about a value or a name never quotes the value (it is a secret). */
static void test_messages_never_quote_values(void **state)
{
    static const char *const texts[] = {
        HDRS(H("x-api-key", "SECRET-1 ")),
        HDRS(H("x-api-key", "SECRET-1\\r\\nx: y")),
        HDRS(H("host", "SECRET-1")),
        HDRS(H("a", "SECRET-1") "," H("a", "SECRET-1")),
        HDRS(H("a", "SECRET-1")) /* with an extra error member, below */,
    };
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i != sizeof(texts) / sizeof(texts[0]); ++i) {
        json_t *cred = parse(texts[i]);
        if (i == 4)
            json_object_set_new(cred, "error", json_string("e"));
        json_t *svc = json_pack("{s:s, s:[], s:o}", "name", "orders", "targets", "credentials", cred);
        memset(&err, 0, sizeof(err));
        assert_int_equal(cph_schema_validate_service(svc, &err), -1);
        if (strstr(err.msg, "SECRET") != NULL || strstr(err.path, "SECRET") != NULL)
            fail_msg("case %zu: the error quotes the value: %s at %s", i, err.msg, err.path);
        json_decref(svc);
    }
}

/* ---------------------------------------------------------------- the body */

static void test_body(void **state)
{
    static const char plain[] = "{\"services\":[{\"name\":\"s\",\"targets\":[]}],\"routes\":[]}";
    json_t *a = parse(plain), *b;
    char h1[CPH_HASH_SIZE], h2[CPH_HASH_SIZE];

    (void)state;
    /* absent: valid as ever */
    assert_int_equal(cph_snapshot_hash(a, h1), 0);
    check_body(a, plain, NULL, "", NULL);
    /* present: a new hash; a new secret version changes the body even with equal values */
    b = parse("{\"services\":[{\"name\":\"s\",\"targets\":[],\"credentials\":{\"source\":\"vault:a@1\",\"headers\":"
              "[{\"name\":\"x-api-key\",\"value\":\"k\"}]}}],\"routes\":[]}");
    check_body(b, "with credentials", NULL, "", NULL);
    assert_int_equal(cph_snapshot_hash(b, h2), 0);
    assert_string_not_equal(h1, h2);
    json_object_set_new(json_object_get(json_array_get(json_object_get(b, "services"), 0), "credentials"), "source",
                        json_string("vault:a@2"));
    assert_int_equal(cph_snapshot_hash(b, h1), 0);
    assert_string_not_equal(h1, h2);
    json_decref(a), json_decref(b);
    /* the service's policies are checked before its credentials; the second service's error names it */
    check_body_text("{\"services\":[{\"name\":\"s\",\"targets\":[],\"policies\":{\"lb\":1},\"credentials\":1}],\"routes\":[]}",
                    "invalid", "/services/0/policies/lb");
    check_body_text("{\"services\":[{\"name\":\"s\",\"targets\":[]},{\"name\":\"t\",\"targets\":[],\"credentials\":"
                    "{\"source\":\"v\",\"headers\":[{\"name\":\"te\",\"value\":\"trailers\"}]}}],\"routes\":[]}",
                    "invalid", "/services/1/credentials/headers/0/name");
}

/* ---------------------------------------------------------------- cph_credentials_header_forbidden */

static void test_forbidden(void **state)
{
    static const char *const refused[] = {"host",
                                          "Host",
                                          "HOST",
                                          "content-length",
                                          "Content_Length",
                                          "transfer-encoding",
                                          "connection",
                                          "keep-alive",
                                          "proxy-connection",
                                          "te",
                                          "TE",
                                          "trailer",
                                          "upgrade",
                                          "expect",
                                          "http2-settings",
                                          "forwarded",
                                          "x-forwarded-for",
                                          "X-Forwarded-For",
                                          "x_forwarded_for",
                                          "x-forwarded-proto",
                                          "x-forwarded-host",
                                          "x-request-id",
                                          "X-Request-ID",
                                          "x-cephalo-",
                                          "x-cephalo-anything",
                                          "X-CEPHALO-USER-ID",
                                          "x_cephalo_roles",
                                          "x-cephalo_",
                                          ":authority",
                                          ":",
                                          ":x"};
    static const char *const allowed[] = {"authorization", "Authorization", "x-api-key",  "cookie",   "x-cephalo",   "x-cephal-a",
                                          "hostx",         "hos",           "tee",        "t",        "x-forwarded", "x-request",
                                          "a:b",           "proxy-auth",    "forwardedx", "upgrade-x"};

    (void)state;
    for (size_t i = 0; i != sizeof(refused) / sizeof(refused[0]); ++i)
        if (!cph_credentials_header_forbidden(refused[i], strlen(refused[i])))
            fail_msg("\"%s\" should be refused", refused[i]);
    for (size_t i = 0; i != sizeof(allowed) / sizeof(allowed[0]); ++i)
        if (cph_credentials_header_forbidden(allowed[i], strlen(allowed[i])))
            fail_msg("\"%s\" should be allowed", allowed[i]);
    assert_false(cph_credentials_header_forbidden("", 0));
    /* only len bytes are read: "host" inside a longer buffer, and a NUL inside the name */
    assert_true(cph_credentials_header_forbidden("hostile", 4));
    assert_false(cph_credentials_header_forbidden("hostile", 7));
    assert_false(cph_credentials_header_forbidden("host\0", 5));
    assert_false(cph_credentials_header_forbidden("te\0xx", 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_source_and_error),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_headers_list),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_messages_never_quote_values),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_forbidden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
