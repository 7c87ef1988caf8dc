/*
 * dpshadow_test: the shadow-rule counters data planes send in their pings (docs/access.md section 4) - the defensive parser
 * (hostile keys and values, the entry cap), and the server's sum over connected data planes through real Unix
 * sockets: two data planes, a ping without "shadow" clearing one, a malformed "shadow" ignored, a disconnect dropping
 * a data plane's counts, saturation at INT64_MAX. Every wait is a poll() with a timeout, never a sleep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "controlplane/dpserver.h"
#include "controlplane/dpserver_internal.h"
#include "dp_fixture.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (v == NULL)
        fail_msg("test JSON does not parse: %s (%s)", jerr.text, text);
    return v;
}

/* ---------------------------------------------------------------- parser */

static void test_parse_hostile(void **state)
{
    json_t *v = parse("{\"7\": [1, 2], \"abc\": [1, 1], \"07\": [1, 1], \"0\": [1, 1], \"-1\": [1, 1], \"+5\": [1, 1],"
                      " \"1234567890123456789\": [1, 1], \"8\": [1], \"9\": [1, 2, 3], \"10\": [\"1\", 2], \"11\": [1.5, 2],"
                      " \"12\": [-1, 2], \"13\": {\"a\": 1}, \"14\": null, \"\": [1, 1], \" 15\": [1, 1], \"16\": [true, 1],"
                      " \"3\": [0, 5], \"123456789012345678\": [9223372036854775807, 0]}");
    cph_dpshadow_t *list = NULL;
    size_t n = 99;

    (void)state;
    assert_int_equal(cph_dpsession_parse_shadow(v, &list, &n), 3);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].id, 3); /* sorted by id */
    assert_int_equal(list[0].would_allow, 0);
    assert_int_equal(list[0].would_deny, 5);
    assert_int_equal(list[1].id, 7);
    assert_int_equal(list[1].would_allow, 1);
    assert_int_equal(list[1].would_deny, 2);
    assert_int_equal(list[2].id, 123456789012345678LL);
    assert_int_equal(list[2].would_allow, INT64_MAX);
    free(list);
    json_decref(v);

    /* not an object: -1, nothing allocated */
    const char *bad[] = {"[]", "\"x\"", "1", "null", "[[7, 1, 2]]"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        assert_int_equal(cph_dpsession_parse_shadow(v, &list, &n), -1);
        assert_null(list);
        assert_int_equal(n, 0);
        json_decref(v);
    }
    assert_int_equal(cph_dpsession_parse_shadow(NULL, &list, &n), -1);
    /* an empty object and one with only bad entries: 0, nothing allocated */
    v = parse("{}");
    assert_int_equal(cph_dpsession_parse_shadow(v, &list, &n), 0);
    assert_null(list);
    json_decref(v);
    v = parse("{\"x\": [1, 2], \"5\": \"[1, 2]\"}");
    assert_int_equal(cph_dpsession_parse_shadow(v, &list, &n), 0);
    assert_null(list);
    json_decref(v);
}

static void test_parse_cap(void **state)
{
    json_t *v = json_object();
    cph_dpshadow_t *list = NULL;
    size_t n = 0;
    char key[24];

    (void)state;
    json_object_set_new(v, "bad", json_pack("[i, i]", 1, 1)); /* a bad entry does not count against the cap */
    for (int i = 1; i <= CPH_DPSERVER_MAX_SHADOW + 500; ++i) {
        snprintf(key, sizeof(key), "%d", i);
        json_object_set_new(v, key, json_pack("[i, i]", i, 0));
    }
    assert_int_equal(cph_dpsession_parse_shadow(v, &list, &n), CPH_DPSERVER_MAX_SHADOW);
    assert_int_equal(n, CPH_DPSERVER_MAX_SHADOW);
    for (size_t i = 1; i < n; ++i)
        assert_true(list[i - 1].id < list[i].id);
    free(list);
    json_decref(v);
}

/* ---------------------------------------------------------------- server */

/* A data plane connected with nothing applied. */
static void dp_hello_none(dp_t *dp, const char *path, const char *id)
{
    cph_applied_t none = {.source = "none"};

    dp_hello(dp, path, id, &none);
}

/* A ping with "shadow" set to the JSON text (NULL: no member); returns once its pong is in, so the server has it. */
static void dp_ping_shadow(dp_t *dp, uint64_t seq, const char *shadow)
{
    json_t *ping = cph_msg_ping(seq);

    if (shadow != NULL)
        json_object_set_new(ping, "shadow", json_loads(shadow, JSON_DECODE_ANY, NULL));
    dp_send(dp, ping);
    json_decref(dp_expect(dp, "pong"));
}

/* Asserts GET /api/v1/authz/shadow's answer equals the JSON text. */
static void assert_sum(cph_dpserver_t *s, const char *want)
{
    json_t *got = cph_dpserver_shadow_stats(s), *w = parse(want);

    if (!json_equal(got, w)) {
        char *text = json_dumps(got, JSON_COMPACT);
        fail_msg("want %s, got %s", want, text);
    }
    json_decref(got);
    json_decref(w);
}

static void test_sum_over_connected(void **state)
{
    fixture_t *f = *state;
    dp_t a, b;

    assert_sum(f->s, "{\"endpoints\": []}");
    dp_hello_none(&a, f->path, "dp-a");
    dp_hello_none(&b, f->path, "dp-b");
    dp_ping_shadow(&a, 1, "{\"9\": [5, 0], \"7\": [1, 2], \"x\": [1, 1]}");
    dp_ping_shadow(&b, 1, "{\"7\": [10, 20], \"11\": [0, 3]}");
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 7, \"would_allow\": 11, \"would_deny\": 22},"
                     " {\"id\": 9, \"would_allow\": 5, \"would_deny\": 0}, {\"id\": 11, \"would_allow\": 0, \"would_deny\": 3}]}");
    /* the last ping replaces the previous counts (they are cumulative) */
    dp_ping_shadow(&a, 2, "{\"7\": [2, 2]}");
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 7, \"would_allow\": 12, \"would_deny\": 22},"
                     " {\"id\": 11, \"would_allow\": 0, \"would_deny\": 3}]}");
    /* malformed: ignored, the last good counts stay */
    dp_ping_shadow(&b, 2, "[1, 2, 3]");
    dp_ping_shadow(&b, 3, "\"shadow\"");
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 7, \"would_allow\": 12, \"would_deny\": 22},"
                     " {\"id\": 11, \"would_allow\": 0, \"would_deny\": 3}]}");
    /* no "shadow": this data plane has no counts */
    dp_ping_shadow(&b, 4, NULL);
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 7, \"would_allow\": 2, \"would_deny\": 2}]}");
    /* a disconnected data plane's counts no longer count */
    dp_ping_shadow(&b, 5, "{\"7\": [1, 1]}");
    dp_close(&a);
    for (uint64_t deadline = now_ms() + WAIT_MS; cph_dpserver_num_connected(f->s) != 1;) {
        assert_true(now_ms() < deadline);
        poll(NULL, 0, 5);
    }
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 7, \"would_allow\": 1, \"would_deny\": 1}]}");
    dp_close(&b);
}

static void test_sum_saturates(void **state)
{
    fixture_t *f = *state;
    dp_t a, b;

    dp_hello_none(&a, f->path, "dp-a");
    dp_hello_none(&b, f->path, "dp-b");
    dp_ping_shadow(&a, 1, "{\"1\": [9223372036854775807, 1]}");
    dp_ping_shadow(&b, 1, "{\"1\": [9223372036854775807, 2]}");
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 1, \"would_allow\": 9223372036854775807, \"would_deny\": 3}]}");
    dp_close(&a);
    dp_close(&b);
}

/* A reconnecting data plane (same dp_id) starts with no counts until its first ping. */
static void test_new_session_starts_empty(void **state)
{
    fixture_t *f = *state;
    dp_t a, a2;

    dp_hello_none(&a, f->path, "dp-a");
    dp_ping_shadow(&a, 1, "{\"4\": [1, 0]}");
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 4, \"would_allow\": 1, \"would_deny\": 0}]}");
    dp_hello_none(&a2, f->path, "dp-a"); /* the newer session wins */
    assert_sum(f->s, "{\"endpoints\": []}");
    dp_ping_shadow(&a2, 1, "{\"4\": [3, 0]}");
    assert_sum(f->s, "{\"endpoints\": [{\"id\": 4, \"would_allow\": 3, \"would_deny\": 0}]}");
    dp_close(&a);
    dp_close(&a2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_parse_cap),
        cmocka_unit_test_setup_teardown(test_sum_over_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sum_saturates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_session_starts_empty, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
