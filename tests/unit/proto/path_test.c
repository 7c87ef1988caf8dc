/*
 * path_test: cph_path_canonicalize, the one path normaliser the router, the upstream and the schema validator share.
 * Hostile inputs first (traversal, encoded separators, control bytes, broken escapes), then the canonical forms and
 * the fixed-point property (canonicalising a canonical path returns it unchanged).
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

/* Canonicalises in (len bytes) into a buffer of exactly 3 * len + 1 bytes (so ASan catches an overrun). */
static int canon_n(const char *in, size_t len, char **out)
{
    char *buf = malloc(3 * len + 1);
    size_t outlen = (size_t)-1;
    int ret;

    assert_non_null(buf);
    ret = cph_path_canonicalize(in, len, buf, &outlen);
    if (ret == 0) {
        assert_int_equal(strlen(buf), outlen);
        *out = buf;
    } else {
        free(buf);
        *out = NULL;
    }
    return ret;
}

static void expect(const char *in, const char *want)
{
    char *got, *again;

    if (canon_n(in, strlen(in), &got) != 0)
        fail_msg("\"%s\" was rejected, expected \"%s\"", in, want);
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\" -> \"%s\", expected \"%s\"", in, got, want);
    /* a canonical path is a fixed point */
    assert_int_equal(canon_n(got, strlen(got), &again), 0);
    assert_string_equal(again, got);
    free(again);
    free(got);
}

static void reject_n(const char *in, size_t len)
{
    char *got;
    if (canon_n(in, len, &got) == 0) {
        fail_msg("accepted hostile input (len %zu) as \"%s\"", len, got);
    }
}

static void reject(const char *in)
{
    reject_n(in, strlen(in));
}

static void test_rejects_hostile_inputs(void **state)
{
    (void)state;
    reject("");
    reject("no-slash");
    reject("a/b");
    reject("%2F");
    reject("/a/%2F");
    reject("/a/%2f/b");
    reject("/a%2fb");
    reject("/a/%5C");
    reject("/a%5cb");
    reject("/a\\b");
    reject("\\a");
    reject("/%00");
    reject("/a;b");
    reject("/a/;");
    reject("/..;/x");
    reject("/a%3Bb");
    reject("/a%3bb");
    reject("/%zz");
    reject("/%4");
    reject("/%");
    reject("/a%");
    reject("/a%g0");
    reject("/a%0g");
    reject("/%%41");
    reject_n("/a\0b", 4);
    reject_n("/\0", 2);
}

static void test_rejects_every_control_byte_raw_and_encoded(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 0x20; ++c) {
        char raw[4] = {'/', 'a', (char)c, 'b'}, enc[16];
        reject_n(raw, 4);
        snprintf(enc, sizeof(enc), "/a%%%02Xb", c);
        reject(enc);
        snprintf(enc, sizeof(enc), "/a%%%02xb", c);
        reject(enc);
    }
    reject("/a\x7f");
    reject("/a%7F");
    reject("/a%7f");
}

static void test_dot_segments_never_above_root(void **state)
{
    (void)state;
    expect("/..", "/");
    expect("/../", "/");
    expect("/../../../../etc/passwd", "/etc/passwd");
    expect("/%2e%2e/", "/");
    expect("/%2E%2e/%2e./.%2E/x", "/x");
    expect("/a/%2e%2E/b", "/b");
    expect("/a/b/..", "/a/");
    expect("/a/b/.", "/a/b/");
    expect("/a/./b", "/a/b");
    expect("/a/b/../../c", "/c");
    expect("/a/b/../../../c", "/c");
    expect("/.", "/");
    expect("/./", "/");
    expect("/a/.../b", "/a/.../b"); /* three dots is a name */
    expect("/a/..b/c", "/a/..b/c");
    expect("/a/b%2e%2e/./c//d", "/a/b../c/d");
    expect("/demo/a/./b/../../c", "/demo/c");
    expect("/x/../demo/y", "/demo/y");
}

static void test_slashes_merged(void **state)
{
    (void)state;
    expect("/", "/");
    expect("//", "/");
    expect("///a///b//", "/a/b/");
    expect("//demo///x", "/demo/x");
    expect("/a//..//b", "/b");
}

static void test_escapes_decoded_once(void **state)
{
    (void)state;
    expect("/%41", "/A");
    expect("/%61%62c", "/abc");
    expect("/%7e%2D%5f%2e", "/~-_.");
    expect("/%20", "/%20");
    expect("/a b", "/a%20b");
    expect("/%25", "/%25");     /* no double decode */
    expect("/%2541", "/%2541"); /* stays %2541, never 'A' */
    expect("/%252F", "/%252F");
    expect("/%c3%a9", "/%C3%A9");
    expect("/\xc3\xa9", "/%C3%A9");
    expect("/a%3ab", "/a:b"); /* pchar allows ':' '@' and sub-delims raw */
    expect("/@!$&'()*+,=:", "/@!$&'()*+,=:");
    expect("/%40%21%24%26%27%28%29%2A%2B%2C%3D", "/@!$&'()*+,=");
    expect("/a\"<>`{}|^[]#?", "/a%22%3C%3E%60%7B%7D%7C%5E%5B%5D%23%3F");
    expect("/%3F%23", "/%3F%23");
}

static void test_canonical_is_fixed_point(void **state)
{
    static const char *canon[] = {"/", "/api", "/api/", "/api/v1/users/42", "/a%20b/%25/%C3%A9", "/a:b@c", "/.well-known/x"};
    (void)state;
    for (size_t i = 0; i != sizeof(canon) / sizeof(canon[0]); ++i)
        expect(canon[i], canon[i]);
}

static void test_long_paths(void **state)
{
    size_t n = 1 << 20;
    char *in = malloc(n + 1), *out;
    (void)state;

    /* every byte needs encoding: the output uses the whole 3 * len + 1 */
    in[0] = '/';
    memset(in + 1, ' ', n - 1);
    assert_int_equal(canon_n(in, n, &out), 0);
    assert_int_equal(strlen(out), 1 + 3 * (n - 1));
    free(out);
    /* a long run of "../" stays at the root */
    for (size_t i = 0; i + 3 <= n; i += 3)
        memcpy(in + i, "/..", 3);
    assert_int_equal(canon_n(in, n - n % 3, &out), 0);
    assert_string_equal(out, "/");
    free(out);
    /* many short segments */
    for (size_t i = 0; i + 2 <= n; i += 2)
        memcpy(in + i, "/a", 2);
    assert_int_equal(canon_n(in, n, &out), 0);
    assert_int_equal(strlen(out), n);
    free(out);
    free(in);
}

/* What every accepted output must look like, whatever the input was. */
static void check_canonical_shape(const char *out, size_t len)
{
    assert_true(len >= 1 && out[0] == '/');
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)out[i];
        assert_true(c > 0x20 && c < 0x7f && c != '\\' && c != ';');
        if (c == '/') {
            assert_false(i + 1 < len && out[i + 1] == '/');
            /* no "." or ".." segment */
            size_t n = 0;
            while (i + 1 + n < len && out[i + 1 + n] == '.')
                ++n;
            if (n == 1 || n == 2)
                assert_true(i + 1 + n < len && out[i + 1 + n] != '/');
        }
        if (c == '%') {
            assert_true(i + 2 < len);
            for (size_t k = 1; k <= 2; ++k)
                assert_true((out[i + k] >= '0' && out[i + k] <= '9') || (out[i + k] >= 'A' && out[i + k] <= 'F'));
            unsigned v = (unsigned)strtoul((char[]){out[i + 1], out[i + 2], 0}, NULL, 16);
            /* an escape never spells a byte that is written raw */
            assert_false((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') || (v >= '0' && v <= '9') || v == '.' || v == '-' ||
                         v == '_' || v == '~' || v == '/');
        }
    }
}

/* Random inputs over the characters that matter: every accepted one has the canonical shape and is a fixed point. */
static void test_random_inputs_property(void **state)
{
    static const char alphabet[] = "/./.%%2eE2fF5cC3bB0a;\\ ~\x80\x01";
    char in[48];
    unsigned seed = 12345, accepted = 0;
    (void)state;

    for (int iter = 0; iter != 200000; ++iter) {
        size_t len = 1 + (seed = seed * 1103515245u + 12345u) % (sizeof(in) - 1);
        for (size_t i = 0; i != len; ++i)
            in[i] = alphabet[((seed = seed * 1103515245u + 12345u) >> 16 & 0xffff) % (sizeof(alphabet) - 1)];
        if (iter % 8 != 0)
            in[0] = '/';
        char *out, *again;
        if (canon_n(in, len, &out) != 0)
            continue;
        ++accepted;
        check_canonical_shape(out, strlen(out));
        assert_int_equal(canon_n(out, strlen(out), &again), 0);
        assert_string_equal(again, out);
        free(again);
        free(out);
    }
    assert_true(accepted > 1000); /* the generator reaches the accepting paths */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_hostile_inputs),
        cmocka_unit_test(test_rejects_every_control_byte_raw_and_encoded),
        cmocka_unit_test(test_dot_segments_never_above_root),
        cmocka_unit_test(test_slashes_merged),
        cmocka_unit_test(test_escapes_decoded_once),
        cmocka_unit_test(test_canonical_is_fixed_point),
        cmocka_unit_test(test_long_paths),
        cmocka_unit_test(test_random_inputs_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
