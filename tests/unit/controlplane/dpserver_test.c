/*
 * dpserver_test: the control plane's snapshot server driven by small in-test data planes over real Unix sockets in a
 * mkdtemp directory - hello/welcome/snapshot/ack, matching hellos, nacks remembered across reconnects, latest wins,
 * the same dp_id twice, ping/pong, hostile bytes, heartbeats, a data plane that never reads, ?wait=applied, and the
 * socket file's life cycle. Every wait is a poll() with a timeout or cph_dpserver_wait_applied(), never a sleep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "controlplane/dpserver.h"
#include "controlplane/dpserver_internal.h" /* CPH_DPSERVER_MAX_DISCONNECTED */
#include "dp_fixture.h"

/* ---------------------------------------------------------------- helpers on the server side */

/* Publishes a body distinct per tag; writes its hash to hash_out when non-NULL. */
static void publish(cph_dpserver_t *s, uint64_t version, int tag, char *hash_out)
{
    char name[16], hash[CPH_HASH_SIZE];
    json_t *body;

    snprintf(name, sizeof(name), "svc%d", tag);
    body = json_pack("{s:[{s:s, s:[]}], s:[]}", "services", "name", name, "targets", "routes");
    assert_non_null(body);
    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    cph_dpserver_publish(s, version, hash, body);
    json_decref(body);
    if (hash_out != NULL)
        memcpy(hash_out, hash, CPH_HASH_SIZE);
}

/* The list row of dp_id (a new reference), or NULL. */
static json_t *row_of(cph_dpserver_t *s, const char *id)
{
    return dp_list_find(cph_dpserver_list(s), "id", id);
}

static void assert_status(cph_dpserver_t *s, const char *id, const char *status)
{
    json_t *row = row_of(s, id);

    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "status")), status);
    json_decref(row);
}

/* Waits for version and asserts the outcome. */
static void assert_settles(cph_dpserver_t *s, uint64_t version)
{
    json_t *res = cph_dpserver_wait_applied(s, version, WAIT_MS);

    assert_true(json_is_true(json_object_get(res, "settled")));
    json_decref(res);
}

/* ---------------------------------------------------------------- tests */

static void test_socket_file(void **state)
{
    fixture_t *f = *state;
    char run[160];
    struct stat st;

    snprintf(run, sizeof(run), "%s/run", f->dir);
    assert_int_equal(stat(run, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    cph_dpserver_stop(f->s);
    f->s = NULL;
    assert_int_equal(lstat(f->path, &st), -1);
}

static void test_start_refuses(void **state)
{
    fixture_t *f = *state;
    cph_error_t err;
    char other[160];
    int fd;

    /* a live socket belongs to another control plane */
    assert_null(cph_dpserver_start(f->path, EPOCH, 1000, &err));
    assert_non_null(strstr(err.msg, "in use"));
    /* a file that is not a socket is never removed */
    snprintf(other, sizeof(other), "%s/plain", f->dir);
    assert_true((fd = open(other, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    assert_null(cph_dpserver_start(other, EPOCH, 1000, &err));
    assert_non_null(strstr(err.msg, "not a socket"));
    assert_int_equal(unlink(other), 0);
    /* a too long path and an empty epoch */
    memset(other, 'a', sizeof(other) - 1);
    other[sizeof(other) - 1] = '\0';
    assert_null(cph_dpserver_start(other, EPOCH, 1000, &err));
    assert_null(cph_dpserver_start(f->path, "", 1000, &err));
}

static void test_stale_socket_replaced(void **state)
{
    fixture_t *f = *state;
    cph_error_t err;
    dp_t dp;

    /* stop without unlinking is impossible from outside, so make a stale socket by hand */
    cph_dpserver_stop(f->s);
    f->s = NULL;
    {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd); /* the file stays, nobody listens */
    }
    f->s = cph_dpserver_start(f->path, EPOCH, 1000, &err);
    assert_non_null(f->s);
    dp_hello(&dp, f->path, "dp-a", NULL);
    dp_ping(&dp, 1);
    dp_close(&dp);
}

static void test_sync(void **state)
{
    fixture_t *f = *state;
    json_t *w, *snap, *row, *res, *applied;
    char hash[CPH_HASH_SIZE];
    dp_t dp;

    publish(f->s, 1, 1, hash);
    dp_connect(&dp, f->path);
    dp_send(&dp, cph_msg_hello("dp-a", "host-1", 4242, "test/1", NULL));
    w = dp_expect(&dp, "welcome");
    assert_int_equal(json_integer_value(json_object_get(w, "heartbeat_ms")), 1000);
    json_decref(w);
    snap = dp_expect(&dp, "snapshot");
    assert_int_equal(json_integer_value(json_object_get(snap, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(snap, "schema")), CPH_SCHEMA_VERSION);
    assert_string_equal(json_string_value(json_object_get(snap, "hash")), hash);
    {
        char got[CPH_HASH_SIZE];
        assert_int_equal(cph_snapshot_hash(json_object_get(snap, "body"), got), 0);
        assert_string_equal(got, hash);
    }
    json_decref(snap);
    assert_status(f->s, "dp-a", "applying");
    assert_int_equal(cph_dpserver_num_connected(f->s), 1);

    dp_ack(&dp, 1, hash);
    res = cph_dpserver_wait_applied(f->s, 1, WAIT_MS);
    assert_true(json_is_true(json_object_get(res, "settled")));
    assert_int_equal(json_array_size(json_object_get(res, "dataplanes")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res, "dataplanes"), 0), "status")),
                        "synced");
    json_decref(res);

    row = row_of(f->s, "dp-a");
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "hostname")), "host-1");
    assert_int_equal(json_integer_value(json_object_get(row, "pid")), 4242);
    assert_true(json_is_true(json_object_get(row, "connected")));
    assert_string_equal(json_string_value(json_object_get(row, "status")), "synced");
    assert_true(json_is_null(json_object_get(row, "last_error")));
    {
        const char *ls = json_string_value(json_object_get(row, "last_seen"));
        assert_non_null(ls);
        assert_int_equal(strlen(ls), strlen("2026-01-01T00:00:00.000Z"));
        assert_int_equal(ls[strlen(ls) - 1], 'Z');
    }
    applied = json_object_get(row, "applied");
    assert_int_equal(json_integer_value(json_object_get(applied, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(applied, "hash")), hash);
    assert_string_equal(json_string_value(json_object_get(applied, "source")), "cp");
    assert_true(json_is_string(json_object_get(applied, "at")));
    json_decref(row);

    /* an older publish losing a race with a newer one is ignored: the next snapshot is version 3 */
    publish(f->s, 3, 3, hash);
    publish(f->s, 2, 2, NULL);
    assert_string_equal(dp_expect_snapshot(&dp, 3), hash);
    dp_ack(&dp, 3, hash);
    assert_settles(f->s, 3);
    dp_ping(&dp, 9);
    dp_close(&dp);
}

static void test_hello_matching(void **state)
{
    fixture_t *f = *state;
    cph_applied_t a = {EPOCH, 5, "", "disk"};
    json_t *res;
    dp_t dp, other;

    publish(f->s, 5, 5, a.hash);
    dp_hello(&dp, f->path, "dp-a", &a);
    dp_ping(&dp, 1); /* the pong comes first: no snapshot was queued */
    assert_status(f->s, "dp-a", "synced");
    res = cph_dpserver_wait_applied(f->s, 5, 0);
    assert_true(json_is_true(json_object_get(res, "settled")));
    json_decref(res);

    /* the same body under another epoch and version still gets the snapshot, acks it and is synced */
    strcpy(a.epoch, "ffffffffffffffffffffffffffffffff");
    a.version = 77;
    dp_hello(&other, f->path, "dp-b", &a);
    assert_string_equal(dp_expect_snapshot(&other, 5), a.hash);
    dp_ack(&other, 5, a.hash);
    assert_settles(f->s, 5);
    assert_status(f->s, "dp-b", "synced");
    dp_close(&other);
    dp_close(&dp);
}

static void test_nack(void **state)
{
    fixture_t *f = *state;
    cph_error_t e = {"invalid", "/routes/0/paths/0", "not canonical"};
    cph_applied_t none = {"", 0, "", "none"};
    char h1[CPH_HASH_SIZE], h2[CPH_HASH_SIZE];
    json_t *res, *row, *le;
    dp_t dp;

    publish(f->s, 1, 1, h1);
    dp_hello(&dp, f->path, "dp-a", NULL);
    assert_string_equal(dp_expect_snapshot(&dp, 1), h1);
    dp_send(&dp, cph_msg_nack(1, h1, &none, &e));
    res = cph_dpserver_wait_applied(f->s, 1, WAIT_MS);
    assert_true(json_is_true(json_object_get(res, "settled")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res, "dataplanes"), 0), "status")),
                        "nacked");
    le = json_object_get(json_array_get(json_object_get(res, "dataplanes"), 0), "error");
    assert_string_equal(json_string_value(json_object_get(le, "code")), "invalid");
    json_decref(res);
    row = row_of(f->s, "dp-a");
    le = json_object_get(row, "last_error");
    assert_string_equal(json_string_value(json_object_get(le, "path")), "/routes/0/paths/0");
    assert_string_equal(json_string_value(json_object_get(le, "message")), "not canonical");
    json_decref(row);

    /* reconnect: version 1 is never sent again to dp-a */
    dp_close(&dp);
    dp_hello(&dp, f->path, "dp-a", NULL);
    dp_ping(&dp, 2);
    assert_status(f->s, "dp-a", "nacked");
    assert_settles(f->s, 1);

    /* a newer version is sent, and its ack clears the error */
    publish(f->s, 2, 2, h2);
    assert_string_equal(dp_expect_snapshot(&dp, 2), h2);
    dp_ack(&dp, 2, h2);
    assert_settles(f->s, 2);
    row = row_of(f->s, "dp-a");
    assert_string_equal(json_string_value(json_object_get(row, "status")), "synced");
    assert_true(json_is_null(json_object_get(row, "last_error")));
    json_decref(row);
    dp_close(&dp);
}

static void test_latest_wins(void **state)
{
    fixture_t *f = *state;
    char h1[CPH_HASH_SIZE], h3[CPH_HASH_SIZE];
    json_t *res;
    dp_t dp;

    publish(f->s, 1, 1, h1);
    dp_hello(&dp, f->path, "dp-a", NULL);
    assert_string_equal(dp_expect_snapshot(&dp, 1), h1);
    publish(f->s, 2, 2, NULL);
    publish(f->s, 3, 3, h3);
    dp_ping(&dp, 1); /* nothing is sent while version 1 is unacknowledged */
    res = cph_dpserver_wait_applied(f->s, 3, 50);
    assert_false(json_is_true(json_object_get(res, "settled")));
    json_decref(res);
    dp_ack(&dp, 1, h1);
    assert_string_equal(dp_expect_snapshot(&dp, 3), h3); /* version 2 is skipped */
    dp_ack(&dp, 3, h3);
    assert_settles(f->s, 3);
    dp_ping(&dp, 2);
    dp_close(&dp);
}

static void test_same_id_twice(void **state)
{
    fixture_t *f = *state;
    json_t *list;
    dp_t a, b;

    dp_hello(&a, f->path, "dp-a", NULL);
    dp_hello(&b, f->path, "dp-a", NULL);
    assert_string_equal(dp_expect_closed(&a), "replaced");
    dp_ping(&b, 7);
    list = cph_dpserver_list(f->s);
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_is_true(json_object_get(json_array_get(list, 0), "connected")));
    json_decref(list);
    assert_int_equal(cph_dpserver_num_connected(f->s), 1);
    dp_close(&a);
    dp_close(&b);
}

static void test_ping_pong(void **state)
{
    fixture_t *f = *state;
    dp_t dp;

    dp_hello(&dp, f->path, "dp-a", NULL);
    dp_ping(&dp, 0);
    dp_ping(&dp, 42);
    dp_ping(&dp, (uint64_t)INT64_MAX);
    dp_close(&dp);
}

/* Opens a connection, sends raw bytes and expects an error with code, then the close. */
static void expect_refused(const char *path, const void *bytes, size_t len, const char *code)
{
    dp_t dp;

    dp_connect(&dp, path);
    dp_send_raw(&dp, bytes, len);
    assert_string_equal(dp_expect_closed(&dp), code);
    dp_close(&dp);
}

static void expect_refused_msg(const char *path, json_t *first, json_t *second, const char *code)
{
    dp_t dp;

    dp_connect(&dp, path);
    dp_send(&dp, first);
    if (second != NULL)
        dp_send(&dp, second);
    assert_string_equal(dp_expect_closed(&dp), code);
    dp_close(&dp);
}

static void test_hostile_input(void **state)
{
    fixture_t *f = *state;
    static const char garbage[] = "\x00\x00\x00\x05xxxxx";
    static const char oversize[] = "\xff\xff\xff\xff{\"type\":\"hello\"}";
    static const char zero[] = "\x00\x00\x00\x00";
    static const char array[] = "\x00\x00\x00\x02[]";
    json_t *no_id = cph_msg_hello("x", "h", 1, "s", NULL);
    dp_t dp;

    expect_refused(f->path, garbage, sizeof(garbage) - 1, "invalid_json");
    expect_refused(f->path, oversize, sizeof(oversize) - 1, "frame_too_large");
    expect_refused(f->path, zero, sizeof(zero) - 1, "bad_frame");
    expect_refused(f->path, array, sizeof(array) - 1, "bad_frame");
    expect_refused_msg(f->path, cph_msg_ping(1), NULL, "unexpected");
    expect_refused_msg(f->path, cph_msg_ack(1, "sha256:00", 1, 1), NULL, "unexpected");
    json_object_del(no_id, "dp_id");
    expect_refused_msg(f->path, no_id, NULL, "missing_field");
    expect_refused_msg(f->path,
                       json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:s, s:i, s:s, s:s}}", "type", "hello", "dp_id", "d", "hostname",
                                 "h", "pid", -1, "software", "s", "applied", "epoch", "", "version", 0, "hash", "", "source",
                                 "none"),
                       NULL, "invalid");
    expect_refused_msg(f->path, cph_msg_hello("dp-x", "h", 1, "s", NULL), cph_msg_hello("dp-x", "h", 1, "s", NULL), "unexpected");
    /* an ack for a snapshot never sent */
    expect_refused_msg(f->path, cph_msg_hello("dp-y", "h", 1, "s", NULL), cph_msg_ack(9, "sha256:00", 1, 1), "unexpected");
    expect_refused_msg(f->path, cph_msg_hello("dp-z", "h", 1, "s", NULL), cph_msg_welcome(EPOCH, 1), "unexpected");

    /* the server still serves: an unknown type is ignored even before hello */
    dp_connect(&dp, f->path);
    dp_send(&dp, json_pack("{s:s, s:i}", "type", "future", "x", 1));
    dp_send(&dp, cph_msg_hello("dp-ok", "h", 1, "s", NULL));
    json_decref(dp_expect(&dp, "welcome"));
    dp_send(&dp, json_pack("{s:s}", "type", "another_future"));
    dp_ping(&dp, 3);
    dp_close(&dp);
}

static void test_wait_applied(void **state)
{
    fixture_t *f = *state;
    uint64_t t0;
    json_t *res;
    dp_t dp;

    /* no connected data plane: settled at once */
    res = cph_dpserver_wait_applied(f->s, 7, WAIT_MS);
    assert_true(json_is_true(json_object_get(res, "settled")));
    assert_int_equal(json_array_size(json_object_get(res, "dataplanes")), 0);
    json_decref(res);

    publish(f->s, 1, 1, NULL);
    dp_hello(&dp, f->path, "dp-silent", NULL);
    dp_expect_snapshot(&dp, 1); /* and never answers */
    t0 = now_ms();
    res = cph_dpserver_wait_applied(f->s, 1, 200);
    assert_true(now_ms() - t0 >= 190);
    assert_true(json_is_false(json_object_get(res, "settled")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(res, "dataplanes"), 0), "status")),
                        "applying");
    json_decref(res);

    /* a data plane that disconnects stops counting */
    dp_close(&dp);
    assert_settles(f->s, 1);
    assert_status(f->s, "dp-silent", "disconnected");
}

static void test_disconnect(void **state)
{
    fixture_t *f = *state;
    json_t *row;
    dp_t dp;

    dp_hello(&dp, f->path, "dp-a", NULL);
    assert_status(f->s, "dp-a", "synced");
    dp_close(&dp);
    assert_settles(f->s, 1000); /* settles when the only data plane is gone */
    row = row_of(f->s, "dp-a");
    assert_string_equal(json_string_value(json_object_get(row, "status")), "disconnected");
    assert_true(json_is_false(json_object_get(row, "connected")));
    assert_string_equal(json_string_value(json_object_get(row, "hostname")), "host-1");
    json_decref(row);
    assert_int_equal(cph_dpserver_num_connected(f->s), 0);
}

static void test_heartbeat(void **state)
{
    fixture_t *f = *state;
    uint64_t t0;
    cph_error_t err;
    dp_t dp, quiet;
    json_t *msg;
    int i;

    cph_dpserver_stop(f->s);
    assert_non_null(f->s = cph_dpserver_start(f->path, EPOCH, 100, &err));
    dp_hello(&dp, f->path, "dp-hb", NULL);
    dp_connect(&quiet, f->path); /* never says hello */
    t0 = now_ms();
    /* a data plane that keeps pinging stays connected well past 3 heartbeats */
    for (i = 0; i != 20; ++i) {
        poll(NULL, 0, 40); /* not a synchronisation: the pace of a data plane's pings (well below 3 x 100 ms) */
        dp_ping(&dp, (uint64_t)i);
    }
    assert_true(now_ms() - t0 >= 800);
    assert_int_equal(dp_recv(&quiet, &msg, 0), 0); /* already closed */
    assert_status(f->s, "dp-hb", "synced");
    /* then silence: closed after ~300 ms */
    t0 = now_ms();
    assert_int_equal(dp_recv(&dp, &msg, WAIT_MS), 0);
    assert_true(now_ms() - t0 >= 250);
    assert_settles(f->s, 1);
    assert_status(f->s, "dp-hb", "disconnected");
    dp_close(&dp);
    dp_close(&quiet);
}

static void test_slow_reader_dropped(void **state)
{
    fixture_t *f = *state;
    char *ping;
    size_t len, sent = 0;
    cph_error_t err;
    json_t *p = cph_msg_ping(123456789);
    int dropped = 0, ok_started = 0;
    dp_t slow, ok;

    assert_int_equal(cph_frame_encode(p, CPH_FRAME_MAX_DEFAULT, &ping, &len, &err), 0);
    json_decref(p);
    dp_hello(&slow, f->path, "dp-slow", NULL);
    fcntl(slow.fd, F_SETFL, O_NONBLOCK);
    /* pings, never reading the pongs: the server's queue for it fills and it is dropped */
    while (!dropped && sent < 2000000) {
        ssize_t n = send(slow.fd, ping, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len) {
            ++sent;
        } else if (n >= 0) {
            assert_int_equal(fcntl(slow.fd, F_SETFL, 0), 0); /* finish the partial frame blocking */
            if (send(slow.fd, ping + n, len - (size_t)n, MSG_NOSIGNAL) < 0)
                dropped = 1;
            fcntl(slow.fd, F_SETFL, O_NONBLOCK);
        } else if (errno == EAGAIN) {
            struct pollfd pfd = {slow.fd, POLLOUT, 0};
            assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
        } else {
            assert_true(errno == EPIPE || errno == ECONNRESET);
            dropped = 1;
        }
        /* another data plane is served meanwhile */
        if (sent == 50 && !ok_started) {
            ok_started = 1;
            dp_hello(&ok, f->path, "dp-ok", NULL);
            dp_ping(&ok, 1);
        }
    }
    assert_true(dropped);
    assert_true(ok_started);
    dp_ping(&ok, 2);
    dp_close(&ok);
    dp_close(&slow);
    free(ping);
}

/* A snapshot far larger than a socket buffer: partial writes and POLLOUT, one encoded frame shared by two sessions. */
static void test_large_snapshot(void **state)
{
    fixture_t *f = *state;
    size_t big = 8 * 1024 * 1024;
    char *blob = malloc(big + 1), hash[CPH_HASH_SIZE];
    json_t *body, *snap;
    dp_t a, b;

    assert_non_null(blob);
    memset(blob, 'x', big);
    blob[big] = '\0';
    body = json_pack("{s:[], s:[], s:s}", "services", "routes", "blob", blob);
    assert_non_null(body);
    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    dp_hello(&a, f->path, "dp-a", NULL);
    dp_hello(&b, f->path, "dp-b", NULL);
    cph_dpserver_publish(f->s, 1, hash, body);
    json_decref(body); /* the server holds what it needs */
    free(blob);
    /* b reads first while a's bytes wait in its queue */
    snap = dp_expect(&b, "snapshot");
    assert_int_equal(json_string_length(json_object_get(json_object_get(snap, "body"), "blob")), big);
    json_decref(snap);
    snap = dp_expect(&a, "snapshot");
    assert_string_equal(json_string_value(json_object_get(snap, "hash")), hash);
    assert_int_equal(json_string_length(json_object_get(json_object_get(snap, "body"), "blob")), big);
    json_decref(snap);
    dp_ack(&a, 1, hash);
    dp_ack(&b, 1, hash);
    assert_settles(f->s, 1);
    assert_status(f->s, "dp-a", "synced");
    assert_status(f->s, "dp-b", "synced");
    dp_close(&a);
    dp_close(&b);
}

/* Rows of gone data planes are capped; the longest gone are forgotten first. */
static void test_row_cap(void **state)
{
    fixture_t *f = *state;
    size_t total = CPH_DPSERVER_MAX_DISCONNECTED + 20, i;
    json_t *list, *row;
    char id[32];
    dp_t dp;

    for (i = 0; i != total; ++i) {
        snprintf(id, sizeof(id), "dp-%03zu", i);
        dp_hello(&dp, f->path, id, NULL);
        dp_close(&dp);
        assert_settles(f->s, 1000); /* its disconnect is processed: disconnects happen in this order */
    }
    list = cph_dpserver_list(f->s);
    assert_int_equal(json_array_size(list), CPH_DPSERVER_MAX_DISCONNECTED);
    json_decref(list);
    for (i = 0; i != total; ++i) {
        snprintf(id, sizeof(id), "dp-%03zu", i);
        row = row_of(f->s, id);
        if (i < 20) {
            assert_null(row);
        } else {
            assert_non_null(row);
            assert_string_equal(json_string_value(json_object_get(row, "status")), "disconnected");
        }
        json_decref(row);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_id_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
