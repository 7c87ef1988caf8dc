/*
 * trace_test: core/trace.c - traceparent parsing as the W3C Trace Context specification reads it (version 00 exactly
 * 55 bytes, a later version parsed by its first 55 bytes, lower-case hex, no zero ids, no version ff), the tracestate
 * and request id checks, and the ids the gateway writes (well-formed, never repeating within a run).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/trace.h"

#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN "00f067aa0ba902b7"

static int parse(const char *s)
{
    char tid[CPH_TRACE_ID_HEX], flags[2];
    return cph_trace_parse(s, strlen(s), tid, flags);
}

static void test_parse(void **state)
{
    char tid[CPH_TRACE_ID_HEX], flags[2];
    (void)state;

    assert_int_equal(cph_trace_parse("00-" TRACE "-" SPAN "-01", 55, tid, flags), 0);
    assert_memory_equal(tid, TRACE, CPH_TRACE_ID_HEX);
    assert_memory_equal(flags, "01", 2);
    assert_int_equal(parse("00-" TRACE "-" SPAN "-00"), 0);
    assert_int_equal(parse("01-" TRACE "-" SPAN "-01"), 0);           /* a later version, same shape */
    assert_int_equal(parse("cc-" TRACE "-" SPAN "-01-what-ever"), 0); /* a later version may append "-..." */
    assert_int_equal(parse("cc-" TRACE "-" SPAN "-01x"), -1);         /* ... only after a '-' */
    assert_int_equal(parse("00-" TRACE "-" SPAN "-01-"), -1);         /* version 00 is exactly 55 bytes */
    assert_int_equal(parse("ff-" TRACE "-" SPAN "-01"), -1);
    assert_int_equal(parse("0g-" TRACE "-" SPAN "-01"), -1);
    assert_int_equal(parse("00-" TRACE "-" SPAN "-0G"), -1);
    assert_int_equal(parse("00_" TRACE "-" SPAN "-01"), -1);
    assert_int_equal(parse("00-" TRACE "_" SPAN "-01"), -1);
    assert_int_equal(parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-" SPAN "-01"), -1);
    assert_int_equal(parse("00-00000000000000000000000000000000-" SPAN "-01"), -1);
    assert_int_equal(parse("00-" TRACE "-0000000000000000-01"), -1);
    assert_int_equal(parse("00-" TRACE "-" SPAN), -1);
    assert_int_equal(parse(""), -1);
    assert_int_equal(cph_trace_parse("00-" TRACE "-" SPAN "-01", 54, tid, flags), -1); /* truncated */
}

static void test_state_and_request_id(void **state)
{
    char big[CPH_TRACESTATE_MAX + 1];
    (void)state;

    memset(big, 'a', sizeof(big));
    assert_true(cph_trace_state_valid("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7", 40));
    assert_true(cph_trace_state_valid(big, CPH_TRACESTATE_MAX));
    assert_false(cph_trace_state_valid(big, CPH_TRACESTATE_MAX + 1));
    assert_false(cph_trace_state_valid("a=b\r\nx: y", 9));
    assert_false(cph_trace_state_valid("", 0));
    assert_true(cph_trace_request_id_valid("0b7a2c4e-9d1f-4c55-8f0e-2f6c1b7d9a10", 36));
    assert_false(cph_trace_request_id_valid("a\0b", 3));
    assert_false(cph_trace_request_id_valid("a,b", 3));
    assert_false(cph_trace_request_id_valid(big, CPH_REQUEST_ID_MAX + 1));
    assert_true(cph_trace_request_id_valid(big, CPH_REQUEST_ID_MAX));
}

static void test_written_parents_parse_and_differ(void **state)
{
    enum { N = 2000 };
    char(*ids)[CPH_TRACEPARENT_LEN] = calloc(N, CPH_TRACEPARENT_LEN);
    char tid[CPH_TRACE_ID_HEX], flags[2];
    (void)state;

    for (int i = 0; i != N; ++i) {
        cph_trace_write_parent(ids[i], i % 2 ? TRACE : NULL, i % 2 ? "01" : NULL);
        assert_int_equal(cph_trace_parse(ids[i], CPH_TRACEPARENT_LEN, tid, flags), 0);
        assert_memory_equal(flags, i % 2 ? "01" : "00", 2);
        if (i % 2)
            assert_memory_equal(tid, TRACE, CPH_TRACE_ID_HEX);
    }
    for (int i = 0; i != N; ++i) /* every span id differs (16 hex of a 64-bit generator) */
        for (int j = i + 1; j != N; ++j)
            assert_memory_not_equal(ids[i] + 36, ids[j] + 36, CPH_SPAN_ID_HEX);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_state_and_request_id),
        cmocka_unit_test(test_written_parents_parse_and_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
