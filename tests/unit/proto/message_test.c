/*
 * message_test: the protocol messages - builders produce what the checker accepts, the checker refuses every
 * missing field and wrong JSON type with the right pointer - plus the error record and its JSON pointers.
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

static const cph_applied_t applied_cp = {"0123456789abcdef0123456789abcdef", 12, "sha256:abcd", "cp"};

/* One valid message of every type, built by the builders. */
static json_t *build(cph_msg_type_t t)
{
    cph_error_t e;

    switch (t) {
    case CPH_MSG_HELLO:
        return cph_msg_hello("dp-1", "host-a", 1234, "cephalo/0.1", &applied_cp);
    case CPH_MSG_WELCOME:
        return cph_msg_welcome("0123456789abcdef0123456789abcdef", 1000);
    case CPH_MSG_SNAPSHOT: {
        json_t *body = json_pack("{s:[], s:[]}", "services", "routes"), *m;
        m = cph_msg_snapshot("ep", 3, "sha256:00", body);
        json_decref(body);
        return m;
    }
    case CPH_MSG_ACK:
        return cph_msg_ack(3, "sha256:00", 17, 1);
    case CPH_MSG_NACK:
        cph_error_set(&e, "invalid", "/routes/0/paths/0", "the path is not canonical");
        return cph_msg_nack(3, "sha256:00", &applied_cp, &e);
    case CPH_MSG_PING:
        return cph_msg_ping(5);
    case CPH_MSG_PONG:
        return cph_msg_pong(5);
    case CPH_MSG_ERROR:
        return cph_msg_error("bad_frame", "a frame of length 0");
    default:
        return NULL;
    }
}

static void test_builders_pass_check(void **state)
{
    static const char *names[] = {NULL, "hello", "welcome", "snapshot", "ack", "nack", "ping", "pong", "error"};
    cph_error_t err;
    int t;

    (void)state;
    for (t = CPH_MSG_HELLO; t <= CPH_MSG_ERROR; ++t) {
        json_t *m = build((cph_msg_type_t)t);
        assert_non_null(m);
        assert_string_equal(json_string_value(json_object_get(m, "type")), names[t]);
        assert_int_equal(cph_msg_type(m), t);
        if (cph_msg_check(m, &err) != 0)
            fail_msg("%s: %s at %s", names[t], err.msg, err.path);
        json_decref(m);
    }
}

static void test_builder_values(void **state)
{
    json_t *m = build(CPH_MSG_NACK), *ack = build(CPH_MSG_ACK), *snap = build(CPH_MSG_SNAPSHOT);
    cph_applied_t a;

    (void)state;
    assert_int_equal(json_integer_value(json_object_get(m, "version")), 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "error"), "path")), "/routes/0/paths/0");
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "error"), "message")), "the path is not canonical");
    assert_int_equal(cph_applied_from_json(json_object_get(m, "applied"), &a), 0);
    assert_string_equal(a.epoch, applied_cp.epoch);
    assert_int_equal(a.version, 12);
    assert_string_equal(a.hash, applied_cp.hash);
    assert_string_equal(a.source, "cp");
    assert_true(json_is_true(json_object_get(ack, "persisted")));
    assert_int_equal(json_integer_value(json_object_get(ack, "apply_ms")), 17);
    assert_int_equal(json_integer_value(json_object_get(snap, "schema")), CPH_SCHEMA_VERSION);
    assert_true(json_is_object(json_object_get(snap, "body")));
    json_decref(m), json_decref(ack), json_decref(snap);
}

static void test_builder_none_and_nulls(void **state)
{
    json_t *h = cph_msg_hello("dp", NULL, 1, NULL, NULL), *n = cph_msg_nack(1, NULL, NULL, NULL);
    cph_applied_t a;
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_msg_check(h, &err), 0);
    assert_int_equal(cph_msg_check(n, &err), 0);
    assert_int_equal(cph_applied_from_json(json_object_get(h, "applied"), &a), 0);
    assert_string_equal(a.source, "none");
    assert_string_equal(a.epoch, "");
    assert_string_equal(a.hash, "");
    assert_int_equal(a.version, 0);
    assert_string_equal(json_string_value(json_object_get(h, "hostname")), "");
    json_decref(h), json_decref(n);
}

static void test_builder_survives_bad_utf8(void **state)
{
    cph_error_t e;
    json_t *m, *h;

    (void)state;
    /* vsnprintf may cut a multi-byte character in half; the builder must still produce a valid message */
    cph_error_set(&e, "invalid", "/x", "%s", "caf\xc3");
    m = cph_msg_nack(1, "h", NULL, &e);
    h = cph_msg_hello("dp",
                      "bad\xff"
                      "host",
                      1, "sw", NULL);
    assert_int_equal(cph_msg_check(m, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "error"), "message")), "caf?");
    assert_string_equal(json_string_value(json_object_get(h, "hostname")), "bad?host");
    json_decref(m), json_decref(h);
}

static void test_type(void **state)
{
    json_t *u = json_pack("{s:s}", "type", "hello2"), *none = json_pack("{s:i}", "a", 1), *num = json_pack("{s:i}", "type", 1);

    (void)state;
    assert_int_equal(cph_msg_type(u), CPH_MSG_UNKNOWN);
    assert_int_equal(cph_msg_type(none), CPH_MSG_UNKNOWN);
    assert_int_equal(cph_msg_type(num), CPH_MSG_UNKNOWN);
    assert_int_equal(cph_msg_check(u, NULL), 0); /* unknown types are ignored, not bad */
    assert_int_equal(cph_msg_check(none, NULL), -1);
    assert_int_equal(cph_msg_check(num, NULL), -1);
    json_decref(u), json_decref(none), json_decref(num);
}

/* Removing any required top-level field makes the message bad, pointing at that field. */
static void test_every_required_field(void **state)
{
    cph_error_t err;
    int t;

    (void)state;
    for (t = CPH_MSG_HELLO; t <= CPH_MSG_ERROR; ++t) {
        json_t *m = build((cph_msg_type_t)t);
        const char *key;
        json_t *v;
        json_object_foreach(m, key, v)
        {
            json_t *copy;
            char want[64];
            if (strcmp(key, "type") == 0)
                continue;
            copy = json_deep_copy(m);
            json_object_del(copy, key);
            assert_int_equal(cph_msg_check(copy, &err), -1);
            assert_string_equal(err.code, "missing_field");
            snprintf(want, sizeof(want), "/%s", key);
            assert_string_equal(err.path, want);
            json_decref(copy);
        }
        json_decref(m);
    }
}

/* Sets m[key] (or m[key][sub]) to v (stolen) and returns what the checker says. */
static int check_with(cph_msg_type_t t, const char *key, const char *sub, json_t *v, cph_error_t *err)
{
    json_t *m = build(t);
    int ret;

    if (sub == NULL)
        json_object_set_new(m, key, v);
    else if (v == NULL)
        json_object_del(json_object_get(m, key), sub);
    else
        json_object_set_new(json_object_get(m, key), sub, v);
    memset(err, 0, sizeof(*err));
    ret = cph_msg_check(m, err);
    json_decref(m);
    return ret;
}

static void test_wrong_types(void **state)
{
    char long_id[130], utf8_id[2 * 128 + 1];
    cph_error_t err;
    int i;

    (void)state;
    memset(long_id, 'a', 129), long_id[129] = '\0';
    for (i = 0; i != 128; ++i)
        utf8_id[2 * i] = (char)0xc3, utf8_id[2 * i + 1] = (char)0xa9;
    utf8_id[256] = '\0';

    assert_int_equal(check_with(CPH_MSG_ACK, "version", NULL, json_string("3"), &err), -1);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/version");
    assert_int_equal(check_with(CPH_MSG_ACK, "version", NULL, json_integer(-1), &err), -1);
    assert_string_equal(err.path, "/version");
    assert_int_equal(check_with(CPH_MSG_ACK, "version", NULL, json_real(3.0), &err), -1);
    assert_int_equal(check_with(CPH_MSG_ACK, "persisted", NULL, json_integer(1), &err), -1);
    assert_string_equal(err.path, "/persisted");
    assert_int_equal(check_with(CPH_MSG_ACK, "hash", NULL, json_null(), &err), -1);
    assert_string_equal(err.path, "/hash");
    assert_int_equal(check_with(CPH_MSG_SNAPSHOT, "body", NULL, json_array(), &err), -1);
    assert_string_equal(err.path, "/body");
    assert_int_equal(check_with(CPH_MSG_SNAPSHOT, "schema", NULL, json_string("1"), &err), -1);
    assert_int_equal(check_with(CPH_MSG_PING, "seq", NULL, json_integer(-5), &err), -1);
    assert_string_equal(err.path, "/seq");
    assert_int_equal(check_with(CPH_MSG_HELLO, "pid", NULL, json_integer(-1), &err), -1);
    assert_int_equal(check_with(CPH_MSG_WELCOME, "heartbeat_ms", NULL, json_true(), &err), -1);
    assert_int_equal(check_with(CPH_MSG_ERROR, "message", NULL, json_integer(0), &err), -1);
    assert_string_equal(err.path, "/message");

    /* epoch and hash must fit cph_applied_t, in every message, so a receiver never keeps a cut copy */
    memset(long_id, 'e', 65), long_id[65] = '\0';
    assert_int_equal(check_with(CPH_MSG_WELCOME, "epoch", NULL, json_string(long_id), &err), -1);
    assert_string_equal(err.path, "/epoch");
    assert_int_equal(check_with(CPH_MSG_SNAPSHOT, "epoch", NULL, json_string(long_id), &err), -1);
    long_id[64] = '\0';
    assert_int_equal(check_with(CPH_MSG_SNAPSHOT, "epoch", NULL, json_string(long_id), &err), 0);
    memset(long_id, 'h', 72), long_id[72] = '\0';
    assert_int_equal(check_with(CPH_MSG_ACK, "hash", NULL, json_string(long_id), &err), -1);
    assert_string_equal(err.path, "/hash");
    long_id[71] = '\0';
    assert_int_equal(check_with(CPH_MSG_ACK, "hash", NULL, json_string(long_id), &err), 0);

    memset(long_id, 'a', 129), long_id[129] = '\0';
    assert_int_equal(check_with(CPH_MSG_HELLO, "dp_id", NULL, json_string(""), &err), -1);
    assert_string_equal(err.path, "/dp_id");
    assert_int_equal(check_with(CPH_MSG_HELLO, "dp_id", NULL, json_string(long_id), &err), -1);
    assert_string_equal(err.path, "/dp_id");
    long_id[128] = '\0';
    assert_int_equal(check_with(CPH_MSG_HELLO, "dp_id", NULL, json_string(long_id), &err), 0);
    assert_int_equal(check_with(CPH_MSG_HELLO, "dp_id", NULL, json_string(utf8_id), &err), 0); /* 128 characters */
}

static void test_nested_objects(void **state)
{
    cph_error_t err;

    (void)state;
    assert_int_equal(check_with(CPH_MSG_HELLO, "applied", NULL, json_string("none"), &err), -1);
    assert_string_equal(err.path, "/applied");
    assert_int_equal(check_with(CPH_MSG_HELLO, "applied", "hash", NULL, &err), -1);
    assert_string_equal(err.code, "missing_field");
    assert_string_equal(err.path, "/applied/hash");
    assert_int_equal(check_with(CPH_MSG_HELLO, "applied", "version", json_integer(-2), &err), -1);
    assert_string_equal(err.path, "/applied/version");
    assert_int_equal(check_with(CPH_MSG_HELLO, "applied", "source", json_string("tape"), &err), -1);
    assert_string_equal(err.path, "/applied/source");
    assert_int_equal(check_with(CPH_MSG_NACK, "applied", "source", json_string("none"), &err), -1); /* epoch/hash set */
    assert_string_equal(err.path, "/applied");
    assert_int_equal(check_with(CPH_MSG_NACK, "applied", "epoch",
                                json_string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"), &err),
                     -1); /* 65 bytes: more than an epoch can hold */
    assert_string_equal(err.path, "/applied/epoch");
    assert_int_equal(check_with(CPH_MSG_NACK, "error", "path", NULL, &err), -1);
    assert_string_equal(err.path, "/error/path");
    assert_int_equal(check_with(CPH_MSG_NACK, "error", "code", json_integer(1), &err), -1);
    assert_string_equal(err.path, "/error/code");
    assert_int_equal(check_with(CPH_MSG_NACK, "error", NULL, json_array(), &err), -1);
    assert_string_equal(err.path, "/error");
    /* unknown extra fields are fine, at the top and inside */
    assert_int_equal(check_with(CPH_MSG_NACK, "error", "detail", json_string("x"), &err), 0);
    assert_int_equal(check_with(CPH_MSG_PING, "future", NULL, json_real(1.5), &err), 0);
}

static void test_applied_from_json_rejects(void **state)
{
    json_t *bad = json_pack("{s:s, s:i, s:s, s:s}", "epoch", "e", "version", 1, "hash", "h", "source", "usb");
    json_t *arr = json_array();
    cph_applied_t a;

    (void)state;
    assert_int_equal(cph_applied_from_json(bad, &a), -1);
    assert_int_equal(cph_applied_from_json(arr, &a), -1);
    assert_int_equal(cph_applied_from_json(NULL, &a), -1);
    json_decref(bad), json_decref(arr);
}

static void test_error_and_pointers(void **state)
{
    cph_error_t err;
    char p[16];

    (void)state;
    assert_int_equal(cph_error_set(NULL, "x", "/y", "z"), -1);
    assert_int_equal(cph_error_set(&err, "invalid", NULL, "n=%d", 5), -1);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "");
    assert_string_equal(err.msg, "n=5");

    p[0] = '\0';
    cph_jsonptr_append(p, sizeof(p), "a/b~c");
    assert_string_equal(p, "/a~1b~0c");
    cph_jsonptr_append_index(p, sizeof(p), 42);
    assert_string_equal(p, "/a~1b~0c/42");
    cph_jsonptr_append(p, sizeof(p), "~~"); /* 11 + "/~0~0" + NUL = 17 > 16: left out whole */
    assert_string_equal(p, "/a~1b~0c/42");
    cph_jsonptr_append(p, sizeof(p), "~x"); /* 11 + "/~0x" + NUL = 16: fits exactly */
    assert_string_equal(p, "/a~1b~0c/42/~0x");
    cph_jsonptr_append(p, sizeof(p), ""); /* even an empty token needs a byte */
    assert_string_equal(p, "/a~1b~0c/42/~0x");
    p[0] = '\0';
    cph_jsonptr_append(p, sizeof(p), "");
    assert_string_equal(p, "/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders_pass_check),
        cmocka_unit_test(test_builder_values),
        cmocka_unit_test(test_builder_none_and_nulls),
        cmocka_unit_test(test_builder_survives_bad_utf8),
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_every_required_field),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_nested_objects),
        cmocka_unit_test(test_applied_from_json_rejects),
        cmocka_unit_test(test_error_and_pointers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
