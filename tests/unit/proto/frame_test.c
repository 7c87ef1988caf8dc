/*
 * frame_test: the length-prefixed framing, fed the way a hostile or merely slow peer would feed it - oversize and
 * zero lengths, frames split at every byte, many frames in one read, broken JSON of every kind - and checked for
 * bounded memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proto/proto.h"

/* A raw frame: the u32 big-endian length n followed by n payload bytes; caller frees. */
static char *raw_frame(const char *payload, size_t n, size_t *outlen)
{
    char *f = malloc(4 + n);

    assert_non_null(f);
    f[0] = (char)(n >> 24), f[1] = (char)(n >> 16), f[2] = (char)(n >> 8), f[3] = (char)n;
    memcpy(f + 4, payload, n);
    *outlen = 4 + n;
    return f;
}

/* Feeds a raw frame with the given payload and returns what next() says; err is filled. */
static int next_of_payload(const char *payload, size_t n, cph_error_t *err)
{
    cph_frame_reader_t r;
    json_t *msg = (json_t *)1;
    size_t flen;
    char *f = raw_frame(payload, n, &flen);
    int ret;

    cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
    cph_frame_reader_feed(&r, f, flen);
    memset(err, 0, sizeof(*err));
    ret = cph_frame_reader_next(&r, &msg, err);
    if (ret != 1)
        assert_null(msg);
    json_decref(msg);
    cph_frame_reader_dispose(&r);
    free(f);
    return ret;
}

static void test_roundtrip(void **state)
{
    cph_applied_t applied = {"0123456789abcdef0123456789abcdef", 7, "sha256:00", "disk"};
    json_t *hello = cph_msg_hello("dp-1", "host", 42, "cephalo/0.1", &applied), *got = NULL;
    cph_frame_reader_t r;
    cph_error_t err;
    char *buf;
    size_t len;

    (void)state;
    assert_int_equal(cph_frame_encode(hello, CPH_FRAME_MAX_DEFAULT, &buf, &len, &err), 0);
    assert_true(len > 4);
    assert_int_equal(
        ((unsigned char)buf[0] << 24 | (unsigned char)buf[1] << 16 | (unsigned char)buf[2] << 8 | (unsigned char)buf[3]),
        (int)(len - 4));
    cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
    cph_frame_reader_feed(&r, buf, len);
    assert_int_equal(cph_frame_reader_next(&r, &got, &err), 1);
    assert_true(json_equal(hello, got));
    json_decref(got);
    assert_int_equal(r.len, 0);
    assert_int_equal(cph_frame_reader_next(&r, &got, &err), 0);
    assert_null(got);
    cph_frame_reader_dispose(&r);
    free(buf);
    json_decref(hello);
}

static void test_encode_rejects(void **state)
{
    json_t *arr = json_array(), *notype = json_pack("{s:i}", "a", 1), *inttype = json_pack("{s:i}", "type", 1);
    json_t *big = cph_msg_error("x", "0123456789012345678901234567890123456789");
    cph_error_t err;
    char *buf = (char *)1;
    size_t len = 1;

    (void)state;
    assert_int_equal(cph_frame_encode(arr, 1024, &buf, &len, &err), -1);
    assert_string_equal(err.code, "bad_frame");
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(cph_frame_encode(notype, 1024, &buf, &len, &err), -1);
    assert_int_equal(cph_frame_encode(inttype, 1024, &buf, &len, &err), -1);
    assert_int_equal(cph_frame_encode(big, 40, &buf, &len, &err), -1);
    assert_string_equal(err.code, "frame_too_large");
    assert_null(buf);
    /* the limit is on the payload: exactly at it is fine, one byte under is not */
    assert_int_equal(cph_frame_encode(big, SIZE_MAX, &buf, &len, &err), 0);
    free(buf);
    assert_int_equal(cph_frame_encode(big, len - 4, &buf, &len, &err), 0);
    free(buf);
    assert_int_equal(cph_frame_encode(big, len - 5, &buf, &len, &err), -1);
    assert_string_equal(err.code, "frame_too_large");
    json_decref(arr), json_decref(notype), json_decref(inttype), json_decref(big);
}

/* Three messages back to back, used by the split tests. */
static char *three_frames(json_t *msgs[3], size_t *total)
{
    char *all = NULL;
    size_t i;

    *total = 0;
    msgs[0] = cph_msg_ping(1);
    msgs[1] = cph_msg_error("bad", "a message with \"quotes\" and \xc3\xa9");
    msgs[2] = cph_msg_pong(3);
    for (i = 0; i != 3; ++i) {
        char *buf;
        size_t len;
        assert_int_equal(cph_frame_encode(msgs[i], CPH_FRAME_MAX_DEFAULT, &buf, &len, NULL), 0);
        all = realloc(all, *total + len);
        assert_non_null(all);
        memcpy(all + *total, buf, len);
        *total += len;
        free(buf);
    }
    return all;
}

/* Drains every complete frame from r, checking each against the expected sequence; returns how many came out. */
static size_t drain(cph_frame_reader_t *r, json_t *msgs[3], size_t seen)
{
    json_t *m;
    cph_error_t err;
    int ret;

    while ((ret = cph_frame_reader_next(r, &m, &err)) == 1) {
        assert_true(seen < 3);
        assert_true(json_equal(m, msgs[seen]));
        json_decref(m);
        ++seen;
    }
    assert_int_equal(ret, 0);
    return seen;
}

static void test_many_frames_one_feed(void **state)
{
    json_t *msgs[3];
    size_t total;
    char *all = three_frames(msgs, &total);
    cph_frame_reader_t r;

    (void)state;
    cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
    cph_frame_reader_feed(&r, all, total);
    assert_int_equal(drain(&r, msgs, 0), 3);
    assert_int_equal(r.len, 0);
    cph_frame_reader_dispose(&r);
    free(all);
    json_decref(msgs[0]), json_decref(msgs[1]), json_decref(msgs[2]);
}

static void test_byte_by_byte(void **state)
{
    json_t *msgs[3];
    size_t total, i, seen = 0;
    char *all = three_frames(msgs, &total);
    cph_frame_reader_t r;

    (void)state;
    cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
    for (i = 0; i != total; ++i) {
        cph_frame_reader_feed(&r, all + i, 1);
        seen = drain(&r, msgs, seen);
    }
    assert_int_equal(seen, 3);
    assert_int_equal(r.len, 0);
    cph_frame_reader_dispose(&r);
    free(all);
    json_decref(msgs[0]), json_decref(msgs[1]), json_decref(msgs[2]);
}

static void test_split_at_every_byte(void **state)
{
    json_t *msgs[3];
    size_t total, k;
    char *all = three_frames(msgs, &total);

    (void)state;
    for (k = 0; k <= total; ++k) {
        cph_frame_reader_t r;
        size_t seen;
        cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
        cph_frame_reader_feed(&r, all, k);
        seen = drain(&r, msgs, 0);
        cph_frame_reader_feed(&r, all + k, total - k);
        assert_int_equal(drain(&r, msgs, seen), 3);
        cph_frame_reader_dispose(&r);
    }
    free(all);
    json_decref(msgs[0]), json_decref(msgs[1]), json_decref(msgs[2]);
}

static void test_oversize_length_not_allocated(void **state)
{
    static const unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
    cph_frame_reader_t r;
    cph_error_t err;
    json_t *m;

    (void)state;
    cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
    cph_frame_reader_feed(&r, huge, sizeof(huge));
    assert_int_equal(cph_frame_reader_next(&r, &m, &err), -1);
    assert_string_equal(err.code, "frame_too_large");
    assert_null(m);
    assert_true(r.cap <= 4096);                                /* the reader never sized a buffer after the announced length */
    assert_int_equal(cph_frame_reader_next(&r, &m, &err), -1); /* the stream stays unusable */
    cph_frame_reader_dispose(&r);
}

static void test_length_at_and_over_limit(void **state)
{
    const char *p = "{\"type\":\"ping\",\"seq\":1}";
    size_t n = strlen(p), flen;
    char *f = raw_frame(p, n, &flen);
    cph_frame_reader_t r;
    cph_error_t err;
    json_t *m;

    (void)state;
    cph_frame_reader_init(&r, n); /* exactly at the limit: fine */
    cph_frame_reader_feed(&r, f, flen);
    assert_int_equal(cph_frame_reader_next(&r, &m, &err), 1);
    json_decref(m);
    cph_frame_reader_dispose(&r);
    cph_frame_reader_init(&r, n - 1); /* one byte over: refused as soon as the header is in */
    cph_frame_reader_feed(&r, f, 4);
    assert_int_equal(cph_frame_reader_next(&r, &m, &err), -1);
    assert_string_equal(err.code, "frame_too_large");
    cph_frame_reader_dispose(&r);
    free(f);
}

static void test_zero_length(void **state)
{
    cph_error_t err;

    (void)state;
    assert_int_equal(next_of_payload("", 0, &err), -1);
    assert_string_equal(err.code, "bad_frame");
}

static void test_truncated(void **state)
{
    const char *p = "{\"type\":\"ping\",\"seq\":1}";
    size_t flen;
    char *f = raw_frame(p, strlen(p), &flen);
    cph_frame_reader_t r;
    cph_error_t err;
    json_t *m = (json_t *)1;

    (void)state;
    cph_frame_reader_init(&r, CPH_FRAME_MAX_DEFAULT);
    cph_frame_reader_feed(&r, f, 3); /* partial header */
    assert_int_equal(cph_frame_reader_next(&r, &m, &err), 0);
    assert_null(m);
    cph_frame_reader_feed(&r, f + 3, flen - 4); /* all but the last payload byte */
    assert_int_equal(cph_frame_reader_next(&r, &m, &err), 0);
    assert_null(m);
    cph_frame_reader_dispose(&r);
    free(f);
}

static void test_bad_json(void **state)
{
    static const struct {
        const char *payload;
        size_t len;
        const char *code;
    } cases[] = {
#define C(s, code) {s, sizeof(s) - 1, code}
        C("{\"type\":\"\xff\"}", "invalid_json"),                              /* invalid UTF-8 */
        C("{\"type\":\"\xc0\xaf\"}", "invalid_json"),                          /* overlong encoding of '/' */
        C("{\"type\":\"\xed\xa0\x80\"}", "invalid_json"),                      /* UTF-16 surrogate in UTF-8 */
        C("{\"type\":\"ping\",\"type\":\"ping\"}", "invalid_json"),            /* duplicate key */
        C("{\"type\":\"ping\",\"a\":{\"b\":1,\"b\":2}}", "invalid_json"),      /* nested duplicate key */
        C("{\"type\":\"ping\"} x", "invalid_json"),                            /* trailing garbage */
        C("{\"type\":\"ping\"}{}", "invalid_json"),                            /* a second value */
        C("{\"type\":\"ping\"}\0", "invalid_json"),                            /* trailing NUL */
        C("{\"type\":\"pi\0ng\"}", "invalid_json"),                            /* raw NUL in a string */
        C("{\"type\":\"pi\\u0000ng\"}", "invalid_json"),                       /* escaped NUL */
        C("{\"type\":\"ping\"", "invalid_json"),                               /* truncated JSON */
        C("{\"type\":\"ping\",\"seq\":99999999999999999999}", "invalid_json"), /* integer overflow */
        C("\xef\xbb\xbf{\"type\":\"ping\"}", "invalid_json"),                  /* byte order mark */
        C("{\"type\":\"ping\",\"seq\":NaN}", "invalid_json"),
        C("[{\"type\":\"ping\"}]", "bad_frame"), /* not an object */
        C("{\"seq\":1}", "bad_frame"),           /* no type */
        C("{\"type\":1}", "bad_frame"),          /* non-string type */
        C("{\"type\":null}", "bad_frame"),
#undef C
    };
    cph_error_t err;
    size_t i;

    (void)state;
    for (i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        assert_int_equal(next_of_payload(cases[i].payload, cases[i].len, &err), -1);
        assert_string_equal(err.code, cases[i].code);
        assert_true(strlen(err.msg) > 0);
    }
    /* scalars at the top level are not objects either (jansson refuses them outright) */
    assert_int_equal(next_of_payload("\"ping\"", 6, &err), -1);
    assert_int_equal(next_of_payload("1", 1, &err), -1);
}

static void test_error_does_not_echo_payload(void **state)
{
    const char *p = "{\"type\":\"x\",\"secret\":SUPERSECRETTOKEN}";
    cph_error_t err;

    (void)state;
    assert_int_equal(next_of_payload(p, strlen(p), &err), -1);
    assert_null(strstr(err.msg, "SUPERSECRET"));
}

static void test_deep_nesting(void **state)
{
    size_t depth = 100000, i;
    char *p = malloc(9 + 2 * depth + 1);
    cph_error_t err;

    (void)state;
    assert_non_null(p);
    memcpy(p, "{\"type\":", 8);
    for (i = 0; i != depth; ++i)
        p[8 + i] = '[';
    for (i = 0; i != depth; ++i)
        p[8 + depth + i] = ']';
    p[8 + 2 * depth] = '}';
    assert_int_equal(next_of_payload(p, 9 + 2 * depth, &err), -1);
    assert_string_equal(err.code, "invalid_json");
    free(p);
}

static void test_buffer_stays_bounded(void **state)
{
    size_t n = 1024 * 1024, flen, i;
    char *payload = malloc(n), *f;
    cph_frame_reader_t r;
    json_t *m, *ping = cph_msg_ping(9);
    char *pbuf;
    size_t plen;

    (void)state;
    assert_non_null(payload);
    memset(payload, ' ', n); /* whitespace around the object is fine JSON */
    memcpy(payload, "{\"type\":\"ping\",\"seq\":1}", 23);
    f = raw_frame(payload, n, &flen);
    cph_frame_reader_init(&r, 2 * n);
    cph_frame_reader_feed(&r, f, flen);
    assert_int_equal(cph_frame_reader_next(&r, &m, NULL), 1);
    json_decref(m);
    assert_true(r.cap <= 64 * 1024); /* the big frame's memory went back */
    assert_int_equal(cph_frame_encode(ping, 1024, &pbuf, &plen, NULL), 0);
    for (i = 0; i != 10000; ++i) {
        cph_frame_reader_feed(&r, pbuf, plen);
        assert_int_equal(cph_frame_reader_next(&r, &m, NULL), 1);
        json_decref(m);
        assert_int_equal(r.len, 0);
    }
    assert_true(r.cap <= 64 * 1024);
    cph_frame_reader_dispose(&r);
    free(pbuf), free(f), free(payload);
    json_decref(ping);
}

/* Random bytes in random chunks, sometimes after a valid frame: the reader answers 0, 1 or -1 and never misbehaves. */
static void test_random_garbage(void **state)
{
    uint32_t x = 2463534242u; /* xorshift32, fixed seed: the run is reproducible */
    int round;

    (void)state;
    for (round = 0; round != 2000; ++round) {
        cph_frame_reader_t r;
        unsigned char bytes[512];
        size_t n, off = 0, i, frames = 0;
        int ret = 0;
        for (i = 0; i != sizeof(bytes); ++i) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            bytes[i] = (unsigned char)x;
        }
        n = 1 + x % sizeof(bytes);
        if (round % 2 == 0) /* a plausible length, so the JSON parser gets the garbage */
            bytes[0] = 0, bytes[1] = 0, bytes[2] = 0, bytes[3] = (unsigned char)(n > 4 ? n - 4 : 1);
        cph_frame_reader_init(&r, 1024);
        while (off < n && ret != -1) {
            size_t chunk = 1 + (off * 7 + (size_t)round) % 13;
            json_t *m;
            if (chunk > n - off)
                chunk = n - off;
            cph_frame_reader_feed(&r, bytes + off, chunk);
            off += chunk;
            while ((ret = cph_frame_reader_next(&r, &m, NULL)) == 1) {
                assert_true(json_is_object(m));
                json_decref(m);
                assert_true(++frames < 1000);
            }
        }
        assert_true(r.len <= n);
        cph_frame_reader_dispose(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_many_frames_one_feed),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_oversize_length_not_allocated),
        cmocka_unit_test(test_length_at_and_over_limit),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_error_does_not_echo_payload),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_buffer_stays_bounded),
        cmocka_unit_test(test_random_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
