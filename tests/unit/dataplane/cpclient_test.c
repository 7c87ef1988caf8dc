/*
 * cpclient_test: the data plane's side of the socket protocol against a scripted control plane on a Unix socket:
 * hello first (with what is applied), welcome, snapshot -> ack, unknown types ignored, pings at heartbeat_ms, and
 * hostile input (a frame header over max_frame, invalid JSON, a snapshot before welcome, a message missing fields)
 * answered with an error and a closed connection, after which the client reconnects with a new hello. Pings carry
 * the shadow-rule counters (docs/access.md section 4): no "shadow" while every counter is zero, then
 * {"<endpoint id>": [would_allow, would_deny]} summed over the workers for the ids with a count, still passing
 * cph_msg_check. After each snapshot answered on a connection the client sends its health report
 * ({"type":"health","services":[...]}), and again when the target generation moved, at most once a second.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>
#include "dataplane/core/control.h"
#include "dataplane/core/cpclient.h"
#include "dataplane/core/stats.h"
#include "dataplane/core/target.h"
#include "clock_fixture.h"

typedef struct st_fixture_t {
    char dir[128];
    char sock_path[160];
    int listen_fd;
    int conn;
    cph_control_t control;
    cph_server_t server;
    cph_cpclient_t *client;
    cph_frame_reader_t reader;
} fixture_t;

static const char *EPOCH = "0123456789abcdef0123456789abcdef";

/* Runs the DP's control loop until fd is readable (or ~5 s pass). */
static int pump_until_readable(fixture_t *f, int fd)
{
    for (int i = 0; i < 500; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1)
            return 1;
        h2o_evloop_run(f->control.loop, 10);
    }
    return 0;
}

static void accept_conn(fixture_t *f)
{
    assert_true(pump_until_readable(f, f->listen_fd));
    f->conn = accept(f->listen_fd, NULL, NULL);
    assert_true(f->conn >= 0);
    cph_frame_reader_dispose(&f->reader);
    cph_frame_reader_init(&f->reader, CPH_FRAME_MAX_DEFAULT);
}

/* The next message from the DP, or NULL when it closed the connection. */
static json_t *recv_msg(fixture_t *f)
{
    char buf[65536];
    cph_error_t err;
    json_t *msg;

    for (;;) {
        int r = cph_frame_reader_next(&f->reader, &msg, &err);
        assert_true(r >= 0);
        if (r == 1)
            return msg;
        assert_true(pump_until_readable(f, f->conn));
        ssize_t n = read(f->conn, buf, sizeof(buf));
        if (n <= 0)
            return NULL;
        cph_frame_reader_feed(&f->reader, buf, (size_t)n);
    }
}

static void send_raw(fixture_t *f, const void *p, size_t len)
{
    assert_int_equal(write(f->conn, p, len), (ssize_t)len);
}

static void send_msg(fixture_t *f, json_t *msg)
{
    char *frame;
    size_t len;
    cph_error_t err;

    assert_int_equal(cph_frame_encode(msg, CPH_FRAME_MAX_DEFAULT, &frame, &len, &err), 0);
    send_raw(f, frame, len);
    free(frame);
    json_decref(msg);
}

static const char *type_of(json_t *msg)
{
    return json_string_value(json_object_get(msg, "type"));
}

/* The next message of the DP, skipping health reports (asynchronous, tested on their own) unless one is wanted. */
static json_t *expect_type(fixture_t *f, const char *type)
{
    json_t *m = recv_msg(f);

    while (m != NULL && strcmp(type, "health") != 0 && strcmp(type_of(m), "health") == 0) {
        json_decref(m);
        m = recv_msg(f);
    }
    assert_non_null(m);
    assert_string_equal(type_of(m), type);
    return m;
}

static void handshake(fixture_t *f, uint64_t heartbeat_ms)
{
    accept_conn(f);
    json_t *hello = expect_type(f, "hello");
    assert_int_equal(cph_msg_check(hello, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(hello, "dp_id")), "unit-dp");
    assert_string_equal(json_string_value(json_object_get(hello, "software")), CPH_SOFTWARE);
    json_decref(hello);
    send_msg(f, cph_msg_welcome(EPOCH, heartbeat_ms));
}

static void expect_closed_after_error(fixture_t *f)
{
    json_t *m;

    while ((m = recv_msg(f)) != NULL) { /* anything before EOF must be an error */
        assert_string_equal(type_of(m), "error");
        json_decref(m);
    }
    close(f->conn);
    f->conn = -1;
    assert_int_equal(f->control.cp_connected, 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cph_server_config_t cfg = {.listen = "127.0.0.1:0", .num_workers = 1};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cph_error_t err;

    strcpy(f->dir, "/tmp/cph-cpclient-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sock_path, sizeof(f->sock_path), "%s/cp.sock", f->dir);
    strcpy(sa.sun_path, f->sock_path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->listen_fd, 4), 0);
    f->conn = -1;
    cph_frame_reader_init(&f->reader, CPH_FRAME_MAX_DEFAULT);
    assert_int_equal(cph_control_init(&f->control, f->dir, &err), 0);
    cph_control_boot(&f->control);
    assert_int_equal(cph_server_init(&f->server, &cfg, &f->control.notify, &err), 0);
    cph_server_start(&f->server, NULL);
    cph_control_attach(&f->control, &f->server);
    f->client = cph_cpclient_create(&f->control, f->sock_path, "unit-dp");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[256];

    cph_cpclient_destroy(f->client);
    cph_control_drain(&f->control);
    assert_int_equal(cph_control_run(&f->control), 0);
    cph_server_dispose(&f->server);
    cph_control_dispose(&f->control);
    cph_frame_reader_dispose(&f->reader);
    if (f->conn >= 0)
        close(f->conn);
    close(f->listen_fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void test_hello_welcome_snapshot_ack_ping(void **state)
{
    fixture_t *f = *state;
    char hash[CPH_HASH_SIZE];
    json_t *body = json_pack("{s:[], s:[]}", "services", "routes");

    handshake(f, 100);
    send_msg(f, json_pack("{s:s, s:i}", "type", "from_the_future", "x", 1)); /* ignored */
    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    send_msg(f, cph_msg_snapshot(EPOCH, 3, hash, body));
    json_decref(body);
    json_t *ack = expect_type(f, "ack");
    assert_int_equal(json_integer_value(json_object_get(ack, "version")), 3);
    json_decref(ack);
    assert_int_equal(f->control.cp_connected, 1);
    json_t *ping = expect_type(f, "ping"); /* every heartbeat_ms */
    send_msg(f, cph_msg_pong((uint64_t)json_integer_value(json_object_get(ping, "seq"))));
    json_decref(ping);

    /* the CP goes away: the client reconnects and says what it applied */
    close(f->conn);
    f->conn = -1;
    accept_conn(f);
    json_t *hello = expect_type(f, "hello");
    json_t *applied = json_object_get(hello, "applied");
    assert_int_equal(json_integer_value(json_object_get(applied, "version")), 3);
    assert_string_equal(json_string_value(json_object_get(applied, "source")), "cp");
    json_decref(hello);
}

static void test_frame_over_max_is_refused(void **state)
{
    fixture_t *f = *state;
    static const unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff}; /* 4 GiB announced, nothing follows */

    handshake(f, 1000);
    send_raw(f, huge, sizeof(huge));
    expect_closed_after_error(f);
    accept_conn(f); /* backoff, then a fresh session */
    json_decref(expect_type(f, "hello"));
}

static void test_invalid_json_and_bad_messages_close(void **state)
{
    fixture_t *f = *state;

    handshake(f, 1000);
    send_raw(f, "\x00\x00\x00\x05{bad}", 9);
    expect_closed_after_error(f);

    handshake(f, 1000);
    send_msg(f, json_pack("{s:s, s:I}", "type", "snapshot", "version", (json_int_t)1)); /* missing fields */
    expect_closed_after_error(f);

    accept_conn(f); /* a snapshot before welcome */
    json_decref(expect_type(f, "hello"));
    json_t *body = json_pack("{s:[], s:[]}", "services", "routes");
    send_msg(f, cph_msg_snapshot(EPOCH, 1, "sha256:x", body));
    json_decref(body);
    expect_closed_after_error(f);
    assert_null(f->control.current);
}

/* The next ping (pongs it), checked by the protocol checker; caller decrefs. */
static json_t *next_ping(fixture_t *f)
{
    json_t *ping = expect_type(f, "ping");

    assert_int_equal(cph_msg_check(ping, NULL), 0);
    send_msg(f, cph_msg_pong((uint64_t)json_integer_value(json_object_get(ping, "seq"))));
    return ping;
}

static void test_ping_carries_shadow(void **state)
{
    fixture_t *f = *state;
    cph_worker_stats_t *st = f->server.workers[0].stats;
    uint32_t a = cph_stats_endpoint_id(7), b = cph_stats_endpoint_id(9), c = cph_stats_endpoint_id(11);
    json_t *ping, *want;

    assert_true(a != 0 && b != 0 && c != 0);
    handshake(f, 20);
    ping = next_ping(f);
    assert_null(json_object_get(ping, "shadow")); /* nothing counted yet */
    json_decref(ping);
    cph_counter_add(&st->authz_shadow[a][CPH_STATS_SHADOW_ALLOW], 3);
    cph_counter_add(&st->authz_shadow[a][CPH_STATS_SHADOW_DENY], 1);
    cph_counter_add(&st->authz_shadow[b][CPH_STATS_SHADOW_DENY], 2);
    ping = next_ping(f);
    want = json_pack("{s:[i, i], s:[i, i]}", "7", 3, 1, "9", 0, 2); /* 11 has no count: left out */
    if (!json_equal(json_object_get(ping, "shadow"), want))
        fail_msg("ping: %s", json_dumps(ping, JSON_COMPACT));
    json_decref(want);
    json_decref(ping);
    /* cumulative: the next ping has the totals */
    cph_counter_add(&st->authz_shadow[a][CPH_STATS_SHADOW_ALLOW], 1);
    ping = next_ping(f);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(ping, "shadow"), "7"), 0)), 4);
    json_decref(ping);
}

/* The next health report; pings on the way are answered. */
static json_t *next_health(fixture_t *f)
{
    json_t *m;

    while ((m = recv_msg(f)) != NULL && strcmp(type_of(m), "health") != 0) {
        assert_string_equal(type_of(m), "ping");
        send_msg(f, cph_msg_pong((uint64_t)json_integer_value(json_object_get(m, "seq"))));
        json_decref(m);
    }
    assert_non_null(m);
    return m;
}

static void test_health_report_after_snapshot_and_on_change(void **state)
{
    fixture_t *f = *state;
    char hash[CPH_HASH_SIZE];
    json_t *body = json_pack("{s:[], s:[]}", "services", "routes"), *m;

    handshake(f, 200);
    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    send_msg(f, cph_msg_snapshot(EPOCH, 5, hash, body));
    json_decref(body);
    json_decref(expect_type(f, "ack"));
    m = next_health(f); /* right after the snapshot was answered */
    uint64_t first = mono_ms();
    assert_true(json_is_array(json_object_get(m, "services")));
    assert_int_equal(json_array_size(json_object_get(m, "services")), 0);
    json_decref(m);
    cph_target_state_changed(); /* a target changed: reported again, but not sooner than a second after the last */
    m = next_health(f);
    assert_true(mono_ms() - first >= 900);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_welcome_snapshot_ack_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_over_max_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_json_and_bad_messages_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_carries_shadow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_report_after_snapshot_and_on_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
