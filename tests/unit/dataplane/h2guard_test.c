/*
 * h2guard_test: core/h2guard.c's pure parts - the budget verdict (nothing before CPH_H2GUARD_MIN_STREAMS streams,
 * then more than half reset or abandoned), the scan for a stream's own RST_STREAM in unparsed input (exact frame
 * walking: other streams, other types, truncated frames, a payload that merely looks like a frame), and attach
 * refusing a connection whose layout is not h2o 2.2's. The wrapper itself runs against h2o in tests/e2e/36.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/h2guard.h"

static size_t put_frame(uint8_t *p, size_t len, uint8_t type, uint32_t stream, const uint8_t *payload)
{
    p[0] = (uint8_t)(len >> 16), p[1] = (uint8_t)(len >> 8), p[2] = (uint8_t)len;
    p[3] = type, p[4] = 0;
    p[5] = (uint8_t)(stream >> 24), p[6] = (uint8_t)(stream >> 16), p[7] = (uint8_t)(stream >> 8), p[8] = (uint8_t)stream;
    if (len != 0)
        memcpy(p + 9, payload, len);
    return 9 + len;
}

static void test_budget(void **state)
{
    cph_h2guard_t g = {0};
    (void)state;

    g.streams = CPH_H2GUARD_MIN_STREAMS - 1, g.resets = CPH_H2GUARD_MIN_STREAMS - 1;
    assert_false(cph_h2guard_over_budget(&g)); /* too early for a verdict, even at 100% */
    g.streams = 200, g.resets = 100;
    assert_false(cph_h2guard_over_budget(&g)); /* half is not more than half */
    g.resets = 101;
    assert_true(cph_h2guard_over_budget(&g));
    g.resets = 0, g.abandoned = 101;
    assert_true(cph_h2guard_over_budget(&g));
    g.abandoned = 100;
    assert_false(cph_h2guard_over_budget(&g));
    /* stream_end trips the guard once over */
    g.abandoned = 100;
    cph_h2guard_stream_end(&g, 1);
    assert_false(g.tripped);
    cph_h2guard_stream_end(&g, 0);
    assert_true(g.tripped);
    /* no overflow near the top */
    g = (cph_h2guard_t){.streams = UINT32_MAX, .resets = UINT32_MAX / 2 + 1};
    assert_true(cph_h2guard_over_budget(&g));
}

static void test_scan(void **state)
{
    uint8_t buf[512], rst[4] = {0, 0, 0, 8}, hdr[20] = {0}, fake[13];
    size_t n = 0;
    (void)state;

    n += put_frame(buf + n, sizeof(hdr), 1, 5, hdr);               /* the HEADERS being parsed: skipped */
    n += put_frame(buf + n, 4, 3, 7, rst);                         /* another stream's reset */
    n += put_frame(buf + n, 8, 6, 0, (const uint8_t *)"pingping"); /* PING */
    put_frame(fake, 4, 3, 9, rst);                                 /* a payload that looks like RST_STREAM(9) */
    n += put_frame(buf + n, sizeof(fake), 0, 5, fake);             /* ... inside DATA of stream 5 */
    assert_int_equal(cph_h2guard_scan(buf, n, 7), 1);
    assert_int_equal(cph_h2guard_scan(buf, n, 9), 0); /* frames are walked, never searched */
    assert_int_equal(cph_h2guard_scan(buf, n, 5), 0); /* its own HEADERS is not a reset */
    size_t with5 = n + put_frame(buf + n, 4, 3, 5, rst);
    assert_int_equal(cph_h2guard_scan(buf, with5, 5), 1);
    assert_int_equal(cph_h2guard_scan(buf, with5 - 1, 5), 0); /* a truncated reset is not read yet */
    assert_int_equal(cph_h2guard_scan(buf, 5, 5), 0);         /* not even a frame header */
    assert_int_equal(cph_h2guard_scan(NULL, 0, 5), 0);
    /* a frame whose declared length runs past the input stops the walk */
    n = put_frame(buf, 4, 1, 11, rst);
    n += put_frame(buf + n, 0, 0, 11, NULL);
    buf[n] = 0xff, buf[n + 1] = 0xff, buf[n + 2] = 0xff; /* 16 MiB DATA header, no body */
    memset(buf + n + 3, 0, 6);
    n += 9;
    n += put_frame(buf + n, 4, 3, 11, rst);
    assert_int_equal(cph_h2guard_scan(buf, n, 11), 0);
}

static ssize_t never(h2o_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    (void)conn, (void)src, (void)len, (void)err_desc;
    return -1;
}

static void test_attach_refuses_unknown_layout(void **state)
{
    cph_h2guard_t g = {0};
    void *conn = calloc(1, 4096); /* zeroes: its socket is not where h2o 2.2 keeps it */
    h2o_socket_t sock;
    (void)state;

    assert_int_equal(cph_h2guard_attach(&g, conn, &sock, never), -1);
    assert_null(g.inner);
    assert_int_equal(cph_h2guard_attach(&g, conn, NULL, never), -1);
    free(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_attach_refuses_unknown_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
