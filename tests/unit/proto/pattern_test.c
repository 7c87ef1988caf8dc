/*
 * pattern_test: cph_endpoint_pattern_check, the syntax of an endpoint rule's path pattern (PROTOCOL.md section 5,
 * "endpoint"): the three kinds accepted, every way to smuggle a second meaning into a pattern refused, the limits
 * (1024 bytes, 16 parameters, 32-byte parameter names) at and over the edge, and the error at the caller's pointer.
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

static void expect_valid(const char *pattern)
{
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    if (cph_endpoint_pattern_check(pattern, "/path", &err) != 0)
        fail_msg("\"%s\" should be valid: %s", pattern, err.msg);
}

static void expect_invalid(const char *pattern)
{
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    if (cph_endpoint_pattern_check(pattern, "/endpoints/3/path", &err) != -1)
        fail_msg("\"%s\" should be invalid", pattern);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/endpoints/3/path");
    assert_true(strlen(err.msg) > 0);
}

static void test_valid(void **state)
{
    static const char *const ok[] = {
        "/",          "/*",
        "/a",         "/a/",
        "/a/b",       "/a/{id}",
        "/a/{id}/b",  "/a/{id}/*",
        "/a/*",       "/{a}/{b}",
        "/{_x9}",     "/{A_b}",
        "/a/%20b",    "/a/:x@y!$&'()",
        "/a-b.c_d~e", "/a/%7Bid%7D",
        "/a/b/c/",    "/orders/{id}/items/{item}",
        "/a/%C3%A9",  "/x+y,z=w",
        "/.a",        "/a..",
        "/...",
    };
    (void)state;
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i)
        expect_valid(ok[i]);
}

static void test_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "a",
        "a/b",
        "*",
        "{id}", /* not starting with '/' */
        "/a/../b",
        "/a/./b",
        "/..",
        "/.",
        "/a/..",
        "/{id}/..",
        "/a/%2e%2e/b",
        "/a/%2E",
        "/a//b",
        "//",
        "//a",
        "/a//",
        "/a//*", /* merged slashes */
        "/a/%2F",
        "/a/%2fb",
        "/a%5Cb",
        "/a\\b",
        "/a;b",
        "/a/;",
        "/a/%3B",
        "/a/..;/b",
        "/{bad-name}",
        "/{1a}",
        "/{}",
        "/{ }",
        "/{a.b}",
        "/{a/b}", /* bad parameters */
        "/{id",
        "/id}",
        "/{{id}}",
        "/{id}}",
        "/a/{id}x",
        "/a/x{id}",
        "/{i{d}",
        "/}{",
        "/*/a",
        "/a*",
        "/a/*/",
        "/a/**",
        "/*a",
        "/a/*/*",
        "/a/%2A",
        "/a/*b/c", /* '*' misplaced */
        "/{id}/{id}",
        "/{a}/b/{a}/*", /* repeated parameter */
        "/a/%41",
        "/a/%7e",
        "/a/%zz",
        "/a/%4",
        "/a/%",
        "/a/%7b", /* escapes */
        "/a b",
        "/a\x01",
        "/a\x7f",
        "/caf\xc3\xa9",
        "/a\tb",
        "/a?b",
        "/a#b", /* bytes not raw */
    };
    (void)state;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        expect_invalid(bad[i]);
}

/* A pattern of exactly n bytes: "/" then 'a' segments of 50 bytes. */
static char *pattern_of_len(size_t n)
{
    char *p = malloc(n + 1);

    assert_non_null(p);
    p[0] = '/';
    for (size_t i = 1; i != n; ++i)
        p[i] = i % 51 == 0 ? '/' : 'a';
    if (p[n - 1] == '/')
        p[n - 1] = 'a';
    p[n] = '\0';
    return p;
}

static void test_length(void **state)
{
    char *p1024 = pattern_of_len(1024), *p1025 = pattern_of_len(1025), *huge = pattern_of_len(1 << 20);

    (void)state;
    expect_valid(p1024);
    expect_invalid(p1025);
    expect_invalid(huge);
    /* a prefix at the limit: 1022 bytes, a slash and a star */
    p1024[1021] = 'a', p1024[1022] = '/', p1024[1023] = '*';
    expect_valid(p1024);
    free(p1024), free(p1025), free(huge);
}

static void test_params(void **state)
{
    char buf[512];
    size_t n = 0;

    (void)state;
    for (int i = 0; i != 16; ++i)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/{p%d}", i);
    expect_valid(buf);
    snprintf(buf + n, sizeof(buf) - n, "/{p16}");
    expect_invalid(buf);
    snprintf(buf, sizeof(buf), "/{%s}", "abcdefghijklmnopqrstuvwxyz012345"); /* 32 */
    expect_valid(buf);
    snprintf(buf, sizeof(buf), "/{%s}", "abcdefghijklmnopqrstuvwxyz0123456"); /* 33 */
    expect_invalid(buf);
    snprintf(buf, sizeof(buf), "/{%s}/{%s}", "abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345");
    expect_invalid(buf);
}

static void test_null_and_err(void **state)
{
    cph_error_t err;

    (void)state;
    expect_invalid(NULL);
    assert_int_equal(cph_endpoint_pattern_check("/a/../b", "/path", NULL), -1);
    assert_int_equal(cph_endpoint_pattern_check("/a/{b}", "/path", NULL), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(cph_endpoint_pattern_check("/{x}/{x}", "", &err), -1);
    assert_string_equal(err.path, "");
    assert_non_null(strstr(err.msg, "twice"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),  cmocka_unit_test(test_invalid),      cmocka_unit_test(test_length),
        cmocka_unit_test(test_params), cmocka_unit_test(test_null_and_err),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
