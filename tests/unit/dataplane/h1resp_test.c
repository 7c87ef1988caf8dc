/*
 * h1resp_test: framing of upstream HTTP/1.1 responses (core/h1resp.c), including hostile ones: bad status lines,
 * oversized or malformed heads, conflicting lengths, unknown codings, bad chunked encoding, bytes past the end, and
 * responses cut short (incomplete is never mistaken for complete).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/h1resp.h"

static struct phr_header headers[CPH_H1RESP_MAX_HEADERS];

static int parse(cph_h1resp_t *r, const char *s, int is_head)
{
    size_t n = CPH_H1RESP_MAX_HEADERS;
    return cph_h1resp_parse_head(r, s, strlen(s), is_head, headers, &n);
}

/* Decodes a whole body given in one piece; returns the decode result, the payload in out. */
static int decode_all(cph_h1resp_t *r, const char *body, char *out, size_t *outlen, size_t *extra)
{
    char *buf = strdup(body);
    size_t len = strlen(body);
    int rc = cph_h1resp_decode_body(r, buf, &len, extra);
    memcpy(out, buf, len);
    *outlen = len;
    free(buf);
    return rc;
}

static void test_content_length(void **state)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n";
    cph_h1resp_t r;
    char out[64];
    size_t len, extra;
    (void)state;

    assert_int_equal(parse(&r, s, 0), (int)strlen(s));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.framing, CPH_H1RESP_LENGTH);
    assert_int_equal(r.content_length, 5);
    assert_true(r.keepalive);
    assert_int_equal(decode_all(&r, "hel", out, &len, &extra), 0); /* short: more expected */
    assert_int_equal(len, 3);
    assert_int_equal(decode_all(&r, "loXYZ", out, &len, &extra), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "lo", 2);
    assert_int_equal(extra, 3); /* stray bytes: the caller must not reuse the connection */
}

static void test_chunked(void **state)
{
    cph_h1resp_t r;
    char out[64];
    size_t len, extra;
    (void)state;

    assert_true(parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0) > 0);
    assert_int_equal(r.framing, CPH_H1RESP_CHUNKED);
    assert_int_equal(decode_all(&r, "3\r\nabc\r\n2\r\nde\r\n", out, &len, &extra), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "abcde", 5);
    assert_int_equal(decode_all(&r, "0\r\nX-Trailer: 1\r\n\r\n", out, &len, &extra), 1);
    assert_int_equal(len, 0);
    assert_int_equal(extra, 0);
    assert_true(r.keepalive);
}

static void test_bad_chunked(void **state)
{
    static const char *const bad[] = {"zz\r\nabc\r\n", "3\r\nabcX\r\n", "-1\r\n", "fffffffffffffffffffff\r\n"};
    cph_h1resp_t r;
    char out[64];
    size_t len, extra;
    (void)state;

    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_true(parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0) > 0);
        assert_int_equal(decode_all(&r, bad[i], out, &len, &extra), -1);
    }
}

static void test_chunked_cut_short_is_not_complete(void **state)
{
    cph_h1resp_t r;
    char out[64];
    size_t len, extra;
    (void)state;

    assert_true(parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0) > 0);
    assert_int_equal(decode_all(&r, "5\r\nab", out, &len, &extra), 0);
    assert_false(cph_h1resp_eof_is_end(&r)); /* an EOF now is an error, not the end */
}

static void test_until_eof(void **state)
{
    cph_h1resp_t r;
    char out[64];
    size_t len, extra;
    (void)state;

    assert_true(parse(&r, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", 0) > 0);
    assert_int_equal(r.framing, CPH_H1RESP_UNTIL_EOF);
    assert_false(r.keepalive);
    assert_int_equal(decode_all(&r, "anything", out, &len, &extra), 0);
    assert_int_equal(len, 8);
    assert_true(cph_h1resp_eof_is_end(&r));
}

static void test_no_body(void **state)
{
    cph_h1resp_t r;
    (void)state;

    assert_true(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1) > 0); /* HEAD */
    assert_int_equal(r.framing, CPH_H1RESP_NO_BODY);
    assert_int_equal(r.content_length, 10);
    assert_true(parse(&r, "HTTP/1.1 204 No Content\r\n\r\n", 0) > 0);
    assert_int_equal(r.framing, CPH_H1RESP_NO_BODY);
    assert_true(r.keepalive);
    assert_true(parse(&r, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0) > 0);
    assert_int_equal(r.framing, CPH_H1RESP_NO_BODY);
    assert_true(parse(&r, "HTTP/1.1 100 Continue\r\n\r\n", 0) > 0);
    assert_int_equal(r.status, 100);
    assert_int_equal(r.framing, CPH_H1RESP_NO_BODY);
}

static void test_connection_close_and_http10(void **state)
{
    cph_h1resp_t r;
    (void)state;

    assert_true(parse(&r, "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", 0) > 0);
    assert_false(r.keepalive);
    assert_true(parse(&r, "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", 0) > 0);
    assert_false(r.keepalive);
    assert_true(parse(&r, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0) > 0);
    assert_false(r.keepalive);
    /* both framings, in either order: refused (502), as nginx does - no guess about which one the upstream meant */
    assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0), -1);
    assert_int_equal(parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0), -1);
    /* ... even where no body follows: the head is what is malformed */
    assert_int_equal(parse(&r, "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 0), -1);
}

static void test_incomplete_head(void **state)
{
    static const char full[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    cph_h1resp_t r;
    size_t n;
    (void)state;

    for (size_t i = 0; i + 1 < sizeof(full) - 1; ++i) {
        n = CPH_H1RESP_MAX_HEADERS;
        assert_int_equal(cph_h1resp_parse_head(&r, full, i, 0, headers, &n), -2);
    }
}

static void test_hostile_heads(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.1 OK\r\n\r\n",                                                /* no status code */
        "HTTP/1.1 2000 OK\r\n\r\n",                                           /* four digits */
        "HTTP/1.1 099 Low\r\n\r\n",                                           /* below 100 */
        "HTTP/1.1 600 High\r\n\r\n",                                          /* above 599 */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",     /* we never upgrade */
        "HTTP/2.0 200 OK\r\n\r\n",                                            /* not HTTP/1.x */
        "FOO 200 OK\r\n\r\n",                                                 /* not HTTP at all */
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",  /* conflicting lengths */
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",                      /* negative */
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",                      /* junk */
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",                    /* a list */
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", /* overflow */
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",                         /* empty */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",        /* a coding we do not undo */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",             /* obsolete */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", /* obsolete line folding */
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",     /* space in a name */
        "HTTP/1.1 200 OK\r\n: novalue\r\n\r\n",       /* empty name */
    };
    cph_h1resp_t r;
    (void)state;

    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int ret = parse(&r, bad[i], 0);
        if (ret >= 0)
            fail_msg("accepted hostile head #%zu: %s", i, bad[i]);
    }
}

static void test_control_bytes(void **state)
{
    static const char nul[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n";
    static const char bare_cr[] = "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n";
    cph_h1resp_t r;
    size_t n = CPH_H1RESP_MAX_HEADERS;
    (void)state;

    assert_int_equal(cph_h1resp_parse_head(&r, nul, sizeof(nul) - 1, 0, headers, &n), -1);
    n = CPH_H1RESP_MAX_HEADERS;
    assert_int_equal(cph_h1resp_parse_head(&r, bare_cr, sizeof(bare_cr) - 1, 0, headers, &n), -1);
}

static void test_too_many_headers(void **state)
{
    size_t cap = 64 + (CPH_H1RESP_MAX_HEADERS + 1) * 8;
    char *s = malloc(cap), *p = s;
    cph_h1resp_t r;
    (void)state;

    p += sprintf(p, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i != CPH_H1RESP_MAX_HEADERS + 1; ++i)
        p += sprintf(p, "X: %d\r\n", i % 10);
    p += sprintf(p, "\r\n");
    assert_int_equal(parse(&r, s, 0), -1);
    free(s);
}

static void test_huge_head(void **state)
{
    size_t cap = CPH_H1RESP_MAX_HEAD + 64;
    char *s = malloc(cap + 1);
    cph_h1resp_t r;
    size_t n = CPH_H1RESP_MAX_HEADERS;
    (void)state;

    /* a head that never ends: incomplete below the cap, refused at the cap */
    memcpy(s, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(s + 20, 'a', cap - 20);
    s[cap] = '\0';
    assert_int_equal(cph_h1resp_parse_head(&r, s, CPH_H1RESP_MAX_HEAD - 1, 0, headers, &n), -2);
    n = CPH_H1RESP_MAX_HEADERS;
    assert_int_equal(cph_h1resp_parse_head(&r, s, cap, 0, headers, &n), -1);
    /* the same head, complete: refused for its size, not only when it is still incomplete */
    memcpy(s + cap - 4, "\r\n\r\n", 4);
    n = CPH_H1RESP_MAX_HEADERS;
    assert_int_equal(cph_h1resp_parse_head(&r, s, cap, 0, headers, &n), -1);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_bad_chunked),
        cmocka_unit_test(test_chunked_cut_short_is_not_complete),
        cmocka_unit_test(test_until_eof),
        cmocka_unit_test(test_no_body),
        cmocka_unit_test(test_connection_close_and_http10),
        cmocka_unit_test(test_incomplete_head),
        cmocka_unit_test(test_hostile_heads),
        cmocka_unit_test(test_control_bytes),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_huge_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
