/*
 * dp_client: a small in-test data plane talking to a snapshot server over a real Unix socket: connect, send frames,
 * receive with a deadline (every wait is a poll() with a timeout), expect a type, ping. Shared by dp_fixture.h (the
 * snapshot-server tests) and the tests that start their own server.
 */
#ifndef CPH_TEST_DP_CLIENT_H
#define CPH_TEST_DP_CLIENT_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "proto/proto.h"

#ifndef WAIT_MS
#define WAIT_MS 5000
#endif

typedef struct st_dp_t {
    int fd;
    cph_frame_reader_t r;
} dp_t;

static inline uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void dp_connect(dp_t *dp, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    dp->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(dp->fd >= 0);
    assert_int_equal(connect(dp->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cph_frame_reader_init(&dp->r, CPH_FRAME_MAX_DEFAULT);
}

static inline void dp_close(dp_t *dp)
{
    if (dp->fd >= 0)
        close(dp->fd);
    dp->fd = -1;
    cph_frame_reader_dispose(&dp->r);
}

static inline void dp_send_raw(dp_t *dp, const void *data, size_t len)
{
    assert_int_equal(send(dp->fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static inline void dp_send(dp_t *dp, json_t *msg)
{
    cph_error_t err;
    char *buf;
    size_t len;

    assert_int_equal(cph_frame_encode(msg, CPH_FRAME_MAX_DEFAULT, &buf, &len, &err), 0);
    dp_send_raw(dp, buf, len);
    free(buf);
    json_decref(msg);
}

/* 1 and *msg on a frame, 0 when the server closed the connection, -1 on timeout. */
static inline int dp_recv(dp_t *dp, json_t **msg, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    cph_error_t err;
    char buf[65536];

    for (;;) {
        int r = cph_frame_reader_next(&dp->r, msg, &err);
        struct pollfd pfd = {dp->fd, POLLIN, 0};
        uint64_t now = now_ms();
        ssize_t n;
        assert_int_not_equal(r, -1);
        if (r == 1)
            return 1;
        if (poll(&pfd, 1, now < deadline ? (int)(deadline - now) : 0) == 0)
            return -1;
        n = recv(dp->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            assert_true(n == 0 || errno == ECONNRESET);
            return 0;
        }
        cph_frame_reader_feed(&dp->r, buf, (size_t)n);
    }
}

/* Receives the next frame, asserts its type and returns it (caller decrefs). */
static inline json_t *dp_expect(dp_t *dp, const char *type)
{
    json_t *msg = NULL;

    assert_int_equal(dp_recv(dp, &msg, WAIT_MS), 1);
    assert_string_equal(json_string_value(json_object_get(msg, "type")), type);
    return msg;
}

/* Reads until the server closes; returns the code of the error message it sent before (static buffer), or "". */
static inline const char *dp_expect_closed(dp_t *dp)
{
    static char code[64];
    json_t *msg;
    int i, r;

    code[0] = '\0';
    for (i = 0; i != 16; ++i) {
        if ((r = dp_recv(dp, &msg, WAIT_MS)) == 0)
            return code;
        assert_int_equal(r, 1);
        if (strcmp(json_string_value(json_object_get(msg, "type")), "error") == 0)
            snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(msg, "code")));
        json_decref(msg);
    }
    fail_msg("the server did not close the connection");
    return NULL;
}

/* Sends a ping and asserts the very next frame is its pong: nothing else was queued before it. */
static inline void dp_ping(dp_t *dp, uint64_t seq)
{
    json_t *pong;

    dp_send(dp, cph_msg_ping(seq));
    pong = dp_expect(dp, "pong");
    assert_int_equal(json_integer_value(json_object_get(pong, "seq")), seq);
    json_decref(pong);
}

#endif
