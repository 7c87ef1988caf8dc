/*
 * websocket_test: the pure parts of the websocket tunnel (core/websocket.c) and its compile step (compile/websocket.c):
 * the streaming frame-header scanner (every length form, masked and not, headers split anywhere across reads, frames
 * over the limit, the 64-bit length's reserved bit, stopping at a boundary), the close frames the gateway injects, the
 * handshake's key check and accept key (RFC 6455's own example), the per-client counts, and the policy's compilation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/compile/compile.h"
#include "dataplane/core/websocket.h"
#include "snap_fixture.h"

/* Writes a frame header (FIN + opcode, payload length, optional mask) into out; returns its length. */
static size_t frame_header(uint8_t *out, uint8_t opcode, uint64_t len, int masked)
{
    size_t n = 0;

    out[n++] = 0x80 | opcode;
    if (len < 126) {
        out[n++] = (uint8_t)len | (masked ? 0x80 : 0);
    } else if (len <= 0xffff) {
        out[n++] = 126 | (masked ? 0x80 : 0);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 127 | (masked ? 0x80 : 0);
        for (int i = 7; i >= 0; --i)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, "\x01\x02\x03\x04", 4);
        n += 4;
    }
    return n;
}

/* A stream of frames: (opcode, payload length, masked) each, payload bytes 'x'. */
static size_t build_stream(uint8_t *out, const uint64_t (*frames)[3], size_t num)
{
    size_t n = 0;

    for (size_t i = 0; i != num; ++i) {
        n += frame_header(out + n, (uint8_t)frames[i][0], frames[i][1], (int)frames[i][2]);
        memset(out + n, 'x', frames[i][1]);
        n += frames[i][1];
    }
    return n;
}

static void test_scan_whole_frames(void **state)
{
    (void)state;
    static const uint64_t frames[][3] = {{1, 5, 0}, {2, 125, 1}, {2, 126, 0}, {2, 65535, 1}, {2, 65536, 0}, {9, 0, 1}};
    static uint8_t buf[200000];
    size_t len = build_stream(buf, frames, 6);
    cph_ws_stream_t s = {0};
    int event;

    assert_int_equal(cph_ws_scan(&s, buf, len, 1 << 20, 0, &event), len);
    assert_int_equal(event, CPH_WS_SCAN_OK);
    assert_int_equal(s.remaining, 0);
    assert_int_equal(s.opcode, 9);
    assert_false(s.close_seen);
}

/* Fed one byte at a time (as a read could split it anywhere), the stream never passes a partial header. */
static void test_scan_byte_by_byte(void **state)
{
    (void)state;
    static const uint64_t frames[][3] = {{1, 3, 1}, {2, 300, 1}, {2, 70000, 0}, {8, 2, 1}};
    static uint8_t buf[80000];
    size_t len = build_stream(buf, frames, 4), start = 0, passed = 0;
    cph_ws_stream_t s = {0};
    int event;

    for (size_t end = 1; end <= len; ++end) {
        size_t n = cph_ws_scan(&s, buf + start, end - start, 1 << 20, 0, &event);
        assert_int_equal(event, CPH_WS_SCAN_OK);
        start += n; /* the caller consumes what passed; the rest comes again with the next byte */
        passed += n;
        assert_true(end - start < 14); /* at most a partial header is held back */
    }
    assert_int_equal(passed, len);
    assert_int_equal(s.remaining, 0);
    assert_true(s.close_seen);
}

static void test_scan_held_header(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t hl = frame_header(buf, 2, 1000, 1); /* 2 + 2 + 4 bytes */
    cph_ws_stream_t s = {0};
    int event;

    for (size_t i = 0; i != hl; ++i) {
        assert_int_equal(cph_ws_scan(&s, buf, i, 1 << 20, 0, &event), 0);
        assert_int_equal(s.remaining, 0);
    }
    assert_int_equal(cph_ws_scan(&s, buf, hl, 1 << 20, 0, &event), hl);
    assert_int_equal(s.remaining, 1000);
}

static void test_scan_too_big(void **state)
{
    (void)state;
    static const uint64_t frames[][3] = {{1, 10, 1}, {2, 4097, 1}};
    static uint8_t buf[8192];
    size_t first = 2 + 4 + 10, len = build_stream(buf, frames, 2);
    cph_ws_stream_t s = {0};
    int event;

    /* the small frame passes, nothing of the big one does: the stream stops at the boundary before it */
    assert_int_equal(cph_ws_scan(&s, buf, len, 4096, 0, &event), first);
    assert_int_equal(event, CPH_WS_SCAN_TOO_BIG);
    assert_int_equal(s.remaining, 0);
    /* exactly the limit is fine */
    memset(&s, 0, sizeof(s));
    assert_int_equal(cph_ws_scan(&s, buf, len, 4097, 0, &event), len);
    assert_int_equal(event, CPH_WS_SCAN_OK);
    /* a 64-bit length over the limit, announced before any payload arrived */
    memset(&s, 0, sizeof(s));
    size_t hl = frame_header(buf, 2, 1ull << 40, 0);
    assert_int_equal(cph_ws_scan(&s, buf, hl, 1 << 20, 0, &event), 0);
    assert_int_equal(event, CPH_WS_SCAN_TOO_BIG);
}

static void test_scan_reserved_length_bit(void **state)
{
    (void)state;
    uint8_t buf[16] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
    cph_ws_stream_t s = {0};
    int event;

    assert_int_equal(cph_ws_scan(&s, buf, 10, UINT64_MAX, 0, &event), 0);
    assert_int_equal(event, CPH_WS_SCAN_PROTOCOL);
}

/* RFC 6455 section 5 rules: each bad header is refused with nothing passed; the good frame before it passes. */
static void test_scan_protocol_rules(void **state)
{
    (void)state;
    static const struct {
        uint8_t b0, b1;
        int masked;
        int ok;
    } cases[] = {
        {0x81, 0x85, 1, 1},  /* masked text from the client */
        {0x81, 0x05, 1, 0},  /* unmasked text from the client */
        {0x81, 0x05, -1, 1}, /* unmasked text from the server */
        {0x81, 0x85, -1, 0}, /* masked text from the server */
        {0x81, 0x05, 0, 1},  /* direction not checked */
        {0x83, 0x85, 1, 0},  /* reserved data opcode 3 */
        {0x87, 0x85, 1, 0},  /* reserved data opcode 7 */
        {0x8b, 0x80, 1, 0},  /* reserved control opcode 0xb */
        {0x8f, 0x80, 1, 0},  /* reserved control opcode 0xf */
        {0x09, 0x80, 1, 0},  /* a ping without FIN (fragmented control frame) */
        {0x89, 0xfe, 1, 0},  /* a ping announcing a 16-bit length */
        {0x89, 0xfd, 1, 1},  /* a ping of 125 bytes */
        {0x88, 0x82, 1, 1},  /* close */
        {0x00, 0x85, 1, 1},  /* a continuation frame, not final */
    };

    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        uint8_t buf[2 + 2 + 4 + 200] = {0x82, 0x00}; /* an empty binary frame, then the case */
        cph_ws_stream_t s = {0};
        size_t len = 2, hlen = 2 + ((cases[i].b1 & 0x7f) == 126 ? 2 : 0) + ((cases[i].b1 & 0x80) ? 4 : 0);
        int event;

        if (cases[i].masked > 0)
            buf[1] = 0x80, buf[2] = buf[3] = buf[4] = buf[5] = 0, len = 6;
        buf[len] = cases[i].b0;
        buf[len + 1] = cases[i].b1;
        if ((cases[i].b1 & 0x7f) == 126)
            buf[len + 2] = 0, buf[len + 3] = 200;
        s.masked = cases[i].masked;
        size_t n = cph_ws_scan(&s, buf, len + hlen, UINT64_MAX, 0, &event);
        if (cases[i].ok) {
            assert_int_equal(event, CPH_WS_SCAN_OK);
            assert_int_equal(n, len + hlen);
        } else {
            assert_int_equal(event, CPH_WS_SCAN_PROTOCOL);
            assert_int_equal(n, len);
        }
    }
}

static void test_scan_stop_at_boundary(void **state)
{
    (void)state;
    static const uint64_t frames[][3] = {{1, 20, 0}, {1, 5, 0}};
    uint8_t buf[64];
    size_t len = build_stream(buf, frames, 2);
    cph_ws_stream_t s = {0};
    int event;

    /* mid-frame: stops at the end of the current frame, not at the next header */
    assert_int_equal(cph_ws_scan(&s, buf, 7, 1 << 20, 0, &event), 7);
    assert_int_equal(cph_ws_scan(&s, buf + 7, len - 7, 1 << 20, 1, &event), 22 - 7);
    assert_int_equal(s.remaining, 0);
    /* at a boundary: nothing passes */
    assert_int_equal(cph_ws_scan(&s, buf + 22, len - 22, 1 << 20, 1, &event), 0);
    assert_int_equal(event, CPH_WS_SCAN_OK);
}

static void test_scan_close_seen(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t n = frame_header(buf, 8, 2, 1);
    cph_ws_stream_t s = {0};
    int event;

    buf[n++] = 0x03, buf[n++] = 0xe8;
    assert_int_equal(cph_ws_scan(&s, buf, n - 1, 125, 0, &event), n - 1);
    assert_false(s.close_seen); /* not before its last byte */
    assert_int_equal(cph_ws_scan(&s, buf + n - 1, 1, 125, 0, &event), 1);
    assert_true(s.close_seen);
}

static void test_close_frame(void **state)
{
    (void)state;
    uint8_t out[8], mask[4] = {0xaa, 0x55, 0x0f, 0xf0};
    cph_ws_stream_t s = {0};
    int event;

    assert_int_equal(cph_ws_close_frame(out, 1001, NULL), 4);
    assert_memory_equal(out, "\x88\x02\x03\xe9", 4);
    assert_int_equal(cph_ws_close_frame(out, 1009, mask), 8);
    assert_int_equal(out[0], 0x88);
    assert_int_equal(out[1], 0x82);
    assert_memory_equal(out + 2, mask, 4);
    assert_int_equal(out[6] ^ mask[0], 1009 >> 8);
    assert_int_equal(out[7] ^ mask[1], 1009 & 0xff);
    /* our own scanner reads it as one complete close frame */
    assert_int_equal(cph_ws_scan(&s, out, 8, 125, 0, &event), 8);
    assert_true(s.close_seen);
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[CPH_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";

    cph_ws_accept_key(key, strlen(key), out); /* RFC 6455 section 1.3 */
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    cph_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", 24, out);
    assert_string_not_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(strlen(out), CPH_WS_ACCEPT_LEN);
}

static void test_key_valid(void **state)
{
    (void)state;
    assert_true(cph_ws_key_valid(H2O_STRLIT("dGhlIHNhbXBsZSBub25jZQ==")));
    assert_false(cph_ws_key_valid(H2O_STRLIT("dGhlIHNhbXBsZSBub25jZQ=")));
    assert_false(cph_ws_key_valid(H2O_STRLIT("dGhlIHNhbXBsZSBub25jZQQQ")));
    assert_false(cph_ws_key_valid(H2O_STRLIT("dGhlIHNhbXBsZSBub25j*Q==")));
    assert_false(cph_ws_key_valid(H2O_STRLIT("")));
}

static void test_client_counts(void **state)
{
    (void)state;
    assert_int_equal(cph_ws_client_acquire(7, "ia", 2, 2), 0);
    assert_int_equal(cph_ws_client_acquire(7, "ia", 2, 2), 0);
    assert_int_equal(cph_ws_client_acquire(7, "ia", 2, 2), -1);
    assert_int_equal(cph_ws_client_acquire(8, "ia", 2, 2), 0); /* another route: its own count */
    assert_int_equal(cph_ws_client_acquire(7, "ib", 2, 2), 0); /* another client */
    cph_ws_client_release(7, "ia", 2);
    assert_int_equal(cph_ws_client_acquire(7, "ia", 2, 2), 0);
    assert_int_equal(cph_ws_client_acquire(7, "ia", 2, 2), -1);
    for (int i = 0; i != 2; ++i)
        cph_ws_client_release(7, "ia", 2);
    cph_ws_client_release(8, "ia", 2);
    cph_ws_client_release(7, "ib", 2);
    for (int i = 0; i != 100; ++i) /* 0 = unlimited */
        assert_int_equal(cph_ws_client_acquire(9, "u1", 2, 0), 0);
    for (int i = 0; i != 100; ++i)
        cph_ws_client_release(9, "u1", 2);
    assert_int_equal(cph_ws_client_acquire(9, "u1", 2, 1), 0); /* every slot came back */
    cph_ws_client_release(9, "u1", 2);
}

/* ---------------------------------------------------------------- compile */

/* The snapshot with services, routes and the websocket stage compiled (snap_fixture.h). */
static int build(snapfx_t *f, const char *json, cph_error_t *err)
{
    return snapfx_build(f, json, cph_websocket_compile, err);
}

static void test_compile(void **state)
{
    (void)state;
    snapfx_t f;
    cph_error_t err;

    assert_int_equal(build(&f,
                           "{" SERVICES ",\"routes\":[" ROUTE("a", "/a", ",\"policies\":{\"websocket\":{}}") "," ROUTE(
                               "b", "/b", "") "," ROUTE("c", "/c",
                                                        ",\"policies\":{\"websocket\":{\"idle_timeout_ms\":1000,"
                                                        "\"max_lifetime_ms\":5000,\"max_per_client\":3,\"origins\":["
                                                        "\"https://App.Example.com\",\"*\"],\"max_frame_bytes\":125,"
                                                        "\"close_on_token_expiry\":true}}") "],"
                                                                                            "\"gateway\":{\"websocket\":{"
                                                                                            "\"drain_grace_ms\":0}}}",
                           &err),
                     0);
    const cph_ws_policy_t *a = f.snap.routes[0].websocket, *c = f.snap.routes[2].websocket;
    assert_non_null(a);
    assert_int_equal(a->idle_timeout_ms, 300000);
    assert_int_equal(a->max_lifetime_ms, 0);
    assert_int_equal(a->max_per_client, 0);
    assert_int_equal(a->num_origins, 0);
    assert_int_equal(a->max_frame_bytes, 1048576);
    assert_false(a->close_on_token_expiry);
    assert_null(f.snap.routes[1].websocket);
    assert_int_equal(c->idle_timeout_ms, 1000);
    assert_int_equal(c->max_lifetime_ms, 5000);
    assert_int_equal(c->max_per_client, 3);
    assert_int_equal(c->num_origins, 2);
    assert_memory_equal(c->origins[0].base, "https://app.example.com", c->origins[0].len);
    assert_int_equal(c->max_frame_bytes, 125);
    assert_true(c->close_on_token_expiry);
    assert_int_equal(f.snap.ws_drain_grace_ms, 0);
    snapfx_destroy(&f);

    assert_int_equal(build(&f, "{" SERVICES ",\"routes\":[" ROUTE("a", "/a", "") "]}", &err), 0);
    assert_int_equal(f.snap.ws_drain_grace_ms, 30000);
    snapfx_destroy(&f);
}

static void test_compile_refuses_out_of_range(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"max_frame_bytes\":124}", "/max_frame_bytes"},
        {"{\"idle_timeout_ms\":0}", "/idle_timeout_ms"},
        {"{\"max_per_client\":100001}", "/max_per_client"},
        {"{\"close_on_token_expiry\":1}", "/close_on_token_expiry"},
        {"{\"origins\":\"*\"}", "/origins"},
        {"{\"max_lifetime_ms\":-1}", "/max_lifetime_ms"},
    };
    char json[512];
    snapfx_t f;
    cph_error_t err;

    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        snprintf(json, sizeof(json), "{" SERVICES ",\"routes\":[" ROUTE("a", "/a", ",\"policies\":{\"websocket\":%s}") "]}",
                 bad[i][0]);
        assert_int_equal(build(&f, json, &err), -1);
        snprintf(json, sizeof(json), "/routes/0/policies/websocket%s", bad[i][1]);
        assert_string_equal(err.path, json);
        snapfx_destroy(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_whole_frames),
        cmocka_unit_test(test_scan_byte_by_byte),
        cmocka_unit_test(test_scan_held_header),
        cmocka_unit_test(test_scan_too_big),
        cmocka_unit_test(test_scan_reserved_length_bit),
        cmocka_unit_test(test_scan_protocol_rules),
        cmocka_unit_test(test_scan_stop_at_boundary),
        cmocka_unit_test(test_scan_close_seen),
        cmocka_unit_test(test_close_frame),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_client_counts),
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_compile_refuses_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
