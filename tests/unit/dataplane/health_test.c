/*
 * health_test: the active health checker (core/health.c) against real sockets. A tiny HTTP server thread per target
 * answers a chosen status, hangs, or closes at once; the tests configure hand-built snapshots and watch the targets'
 * atomics: thresholds in both directions, timeouts, connection errors, unexpected statuses, the request the checker
 * sends, a huge body cut and the status still judged, state kept across a reconfiguration, checks stopping for a removed target, a
 * prompt stop with a check in flight, and the report's shape.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "dataplane/core/health.h"
#include "dataplane/core/target.h"
#include "clock_fixture.h"

enum { MODE_STATUS = 0, MODE_HANG, MODE_CLOSE, MODE_BIG };

typedef struct st_server_t {
    int fd;
    uint16_t port;
    pthread_t thread;
    _Atomic int stop, mode, status, requests;
    int hung[64];
    size_t num_hung;
    pthread_mutex_t mutex;
    char last_head[1024];
} server_t;

/* Reads a request head (bounded wait); returns its length or -1. */
static int read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;

    while (len + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            return -1;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return (int)len;
    }
    return -1;
}

static void serve_one(server_t *s, int c)
{
    char head[1024], resp[256];
    int mode = s->mode;

    if (mode == MODE_CLOSE) {
        s->requests++;
        close(c);
        return;
    }
    if (read_head(c, head, sizeof(head)) < 0) {
        close(c);
        return;
    }
    pthread_mutex_lock(&s->mutex);
    snprintf(s->last_head, sizeof(s->last_head), "%s", head);
    pthread_mutex_unlock(&s->mutex);
    s->requests++;
    if (mode == MODE_HANG && s->num_hung < 64) {
        s->hung[s->num_hung++] = c;
        return;
    }
    if (mode == MODE_BIG) { /* 4 MiB announced and sent as long as the reader reads */
        static char chunk[65536];
        int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 4194304\r\n\r\n", s->status);
        if (send(c, resp, (size_t)n, MSG_NOSIGNAL) == n)
            for (int i = 0; i < 64 && send(c, chunk, sizeof(chunk), MSG_NOSIGNAL) > 0; i++)
                ;
        close(c);
        return;
    }
    int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", s->status);
    if (write(c, resp, (size_t)n) != n)
        fprintf(stderr, "short write\n");
    close(c);
}

static void *serve(void *arg)
{
    server_t *s = arg;

    while (!s->stop) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c >= 0)
            serve_one(s, c);
    }
    return NULL;
}

static server_t *server_start(int status)
{
    server_t *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    assert_non_null(s);
    s->status = status;
    pthread_mutex_init(&s->mutex, NULL);
    assert_true((s->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->fd, 64), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
    return s;
}

static void server_stop(server_t *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    for (size_t i = 0; i != s->num_hung; i++)
        close(s->hung[i]);
    close(s->fd);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

/* ---------------------------------------------------------------- hand-built snapshots */

typedef struct st_fixture_t {
    cph_snapshot_t snap;
    cph_service_t services[2];
    cph_target_t targets[2][4];
    char urls[2][4][64], auths[2][4][64];
    cph_health_check_t hc;
    uint16_t expected[4];
} fixture_t;

/* One service `name` with the given ports as targets, checked with hc (NULL: no checks). */
static fixture_t *snap_new(const char *name, const uint16_t *ports, size_t n, const cph_health_check_t *hc)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    if (hc != NULL) {
        f->hc = *hc;
        memcpy(f->expected, hc->expected_statuses, hc->num_expected_statuses * sizeof(uint16_t));
        f->hc.expected_statuses = f->expected;
    }
    f->snap.services = f->services;
    f->snap.num_services = 1;
    f->services[0].name = name;
    f->services[0].targets = f->targets[0];
    f->services[0].num_targets = n;
    f->services[0].health_check = hc != NULL ? &f->hc : NULL;
    for (size_t i = 0; i != n; i++) {
        cph_target_t *t = &f->targets[0][i];
        snprintf(f->urls[0][i], sizeof(f->urls[0][i]), "http://127.0.0.1:%u", ports[i]);
        int alen = snprintf(f->auths[0][i], sizeof(f->auths[0][i]), "127.0.0.1:%u", ports[i]);
        t->url = f->urls[0][i];
        t->authority = h2o_iovec_init(f->auths[0][i], (size_t)alen);
        t->weight = 1;
        t->index = (uint32_t)i;
        t->state = cph_target_state_get(name, f->auths[0][i]);
    }
    return f;
}

static int health_of(const cph_target_t *t)
{
    return atomic_load(&t->state->health);
}

/* Polls until the target's health is `want` (deadline ms); returns 1 when it got there. */
static int wait_health(const cph_target_t *t, int want, uint64_t deadline_ms)
{
    uint64_t end = mono_ms() + deadline_ms;

    while (mono_ms() < end) {
        if (health_of(t) == want)
            return 1;
        usleep(5000);
    }
    return health_of(t) == want;
}

static int wait_checked(const cph_target_t *t, uint64_t deadline_ms)
{
    uint64_t end = mono_ms() + deadline_ms;

    while (mono_ms() < end && atomic_load(&t->state->last_check_ms) == 0)
        usleep(5000);
    return atomic_load(&t->state->last_check_ms) != 0;
}

static const uint16_t ok200[] = {200};

static cph_health_check_t make_hc(uint64_t interval, uint64_t timeout, uint32_t healthy, uint32_t unhealthy)
{
    cph_health_check_t hc = {.path = "/healthz",
                             .interval_ms = interval,
                             .timeout_ms = timeout,
                             .healthy_threshold = healthy,
                             .unhealthy_threshold = unhealthy,
                             .expected_statuses = (uint16_t *)ok200,
                             .num_expected_statuses = 1};
    return hc;
}

/* ---------------------------------------------------------------- tests */

static void test_thresholds_and_request(void **state)
{
    (void)state;
    server_t *s = server_start(200);
    cph_health_check_t hc = make_hc(100, 80, 2, 3);
    fixture_t *f = snap_new("thr", &s->port, 1, &hc);
    const cph_target_t *t = &f->targets[0][0];
    uint64_t gen;
    int seen_partial = 0;

    cph_health_configure(&f->snap);
    cph_health_start();
    assert_true(wait_checked(t, 3000));
    assert_int_equal(health_of(t), CPH_HEALTH_HEALTHY); /* healthy until proven otherwise, and proven healthy */
    assert_int_equal(atomic_load(&t->state->last_check_status), 200);
    assert_int_equal(atomic_load(&t->state->last_check_error), CPH_CHECK_OK);
    pthread_mutex_lock(&s->mutex);
    assert_non_null(strstr(s->last_head, "GET /healthz HTTP/1.1\r\n"));
    assert_non_null(strstr(s->last_head, "User-Agent: cephalo-health/1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%u\r\n", s->port);
    assert_non_null(strstr(s->last_head, host));
    pthread_mutex_unlock(&s->mutex);

    /* 3 consecutive failures, no fewer, make it unhealthy */
    gen = cph_target_generation();
    s->status = 503;
    uint64_t end = mono_ms() + 5000;
    while (mono_ms() < end) {
        uint32_t before = atomic_load(&t->state->check_failures);
        int h = health_of(t);
        uint32_t after = atomic_load(&t->state->check_failures);
        if (h == CPH_HEALTH_UNHEALTHY)
            break;
        assert_int_equal(h, CPH_HEALTH_HEALTHY);
        if (before == 2 && after == 2)
            seen_partial = 1; /* two failures in a row and still healthy */
        usleep(2000);
    }
    assert_int_equal(health_of(t), CPH_HEALTH_UNHEALTHY);
    assert_true(seen_partial);
    assert_true(atomic_load(&t->state->check_failures) >= 3);
    assert_int_equal(atomic_load(&t->state->last_check_error), CPH_CHECK_ERR_STATUS);
    assert_int_equal(atomic_load(&t->state->last_check_status), 503);
    assert_true(cph_target_generation() > gen);

    /* 2 consecutive successes make it healthy again */
    gen = cph_target_generation();
    s->status = 200;
    assert_true(wait_health(t, CPH_HEALTH_HEALTHY, 5000));
    assert_true(atomic_load(&t->state->check_successes) >= 2);
    assert_true(cph_target_generation() > gen);
    cph_health_stop();
    server_stop(s);
    free(f);
}

static void test_timeout_close_refused_and_unexpected(void **state)
{
    (void)state;
    server_t *hang = server_start(200), *closer = server_start(200), *other = server_start(200);
    uint16_t ports[4] = {hang->port, closer->port, other->port, 0};
    cph_health_check_t hc = make_hc(300, 100, 1, 1);
    static const uint16_t only204[] = {204};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    /* a port nobody listens on: bound, then closed */
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    ports[3] = ntohs(sa.sin_port);
    close(fd);
    hang->mode = MODE_HANG;
    closer->mode = MODE_CLOSE;
    hc.expected_statuses = (uint16_t *)only204;
    fixture_t *f = snap_new("errs", ports, 4, &hc);
    cph_health_start();
    cph_health_configure(&f->snap);
    for (int i = 0; i != 4; i++)
        assert_true(wait_health(&f->targets[0][i], CPH_HEALTH_UNHEALTHY, 3000));
    assert_int_equal(atomic_load(&f->targets[0][0].state->last_check_error), CPH_CHECK_ERR_TIMEOUT);
    assert_true(atomic_load(&f->targets[0][0].state->last_check_duration_ms) >= 90);
    assert_int_equal(atomic_load(&f->targets[0][1].state->last_check_error), CPH_CHECK_ERR_PROTOCOL);
    assert_int_equal(atomic_load(&f->targets[0][2].state->last_check_error), CPH_CHECK_ERR_STATUS);
    assert_int_equal(atomic_load(&f->targets[0][2].state->last_check_status), 200);
    assert_int_equal(atomic_load(&f->targets[0][3].state->last_check_error), CPH_CHECK_ERR_CONNECT);
    assert_int_equal(atomic_load(&f->targets[0][3].state->last_check_status), 0);
    cph_health_stop();
    server_stop(hang);
    server_stop(closer);
    server_stop(other);
    free(f);
}

static void test_state_survives_reconfigure_and_removal_stops(void **state)
{
    (void)state;
    server_t *a = server_start(500), *b = server_start(200);
    cph_health_check_t hc = make_hc(100, 80, 2, 1);
    fixture_t *f1 = snap_new("keep", &a->port, 1, &hc);

    cph_health_start();
    cph_health_configure(&f1->snap);
    assert_true(wait_health(&f1->targets[0][0], CPH_HEALTH_UNHEALTHY, 3000));

    /* a new snapshot (new compiled objects) with the same target plus a new one: the first stays unhealthy */
    uint16_t ports[2] = {a->port, b->port};
    fixture_t *f2 = snap_new("keep", ports, 2, &hc);
    assert_ptr_equal(f2->targets[0][0].state, f1->targets[0][0].state);
    cph_health_configure(&f2->snap);
    free(f1);
    assert_true(wait_checked(&f2->targets[0][1], 3000));
    assert_int_equal(health_of(&f2->targets[0][1]), CPH_HEALTH_HEALTHY);
    uint64_t end = mono_ms() + 400;
    while (mono_ms() < end) {
        assert_int_equal(health_of(&f2->targets[0][0]), CPH_HEALTH_UNHEALTHY);
        usleep(5000);
    }

    /* the service drops its health_check: both unchecked, and no more requests reach them */
    fixture_t *f3 = snap_new("keep", ports, 2, NULL);
    cph_health_configure(&f3->snap);
    assert_true(wait_health(&f3->targets[0][0], CPH_HEALTH_UNCHECKED, 3000));
    assert_true(wait_health(&f3->targets[0][1], CPH_HEALTH_UNCHECKED, 3000));
    usleep(150 * 1000); /* a check in flight at the switch may still land */
    int ra = a->requests, rb = b->requests;
    usleep(500 * 1000); /* five intervals: proving an absence needs a wait */
    assert_int_equal(a->requests, ra);
    assert_int_equal(b->requests, rb);

    /* the report of a service without checks */
    json_t *r = cph_health_report(&f3->snap);
    json_t *t0 = json_array_get(json_object_get(json_array_get(json_object_get(r, "services"), 0), "targets"), 0);
    assert_true(json_is_false(json_object_get(json_array_get(json_object_get(r, "services"), 0), "health_check")));
    assert_string_equal(json_string_value(json_object_get(t0, "health")), "unchecked");
    assert_true(json_is_null(json_object_get(t0, "last_check")));
    json_decref(r);
    cph_health_stop();
    server_stop(a);
    server_stop(b);
    free(f2);
    free(f3);
}

static void test_big_body_is_cut_and_judged(void **state)
{
    (void)state;
    server_t *s = server_start(200);
    cph_health_check_t hc = make_hc(100, 2000, 1, 1);
    s->mode = MODE_BIG;
    fixture_t *f = snap_new("big", &s->port, 1, &hc);
    const cph_target_t *t = &f->targets[0][0];

    cph_health_start();
    cph_health_configure(&f->snap);
    assert_true(wait_checked(t, 3000));
    assert_int_equal(atomic_load(&t->state->last_check_error), CPH_CHECK_OK);
    assert_int_equal(atomic_load(&t->state->last_check_status), 200);
    assert_int_equal(health_of(t), CPH_HEALTH_HEALTHY);
    s->status = 500; /* the same cut body with a failing status: unhealthy */
    assert_true(wait_health(t, CPH_HEALTH_UNHEALTHY, 3000));
    assert_int_equal(atomic_load(&t->state->last_check_error), CPH_CHECK_ERR_STATUS);
    cph_health_stop();
    server_stop(s);
    free(f);
}

static void test_stop_is_prompt_with_a_check_in_flight(void **state)
{
    (void)state;
    server_t *s = server_start(200);
    cph_health_check_t hc = make_hc(60000, 30000, 1, 1);
    s->mode = MODE_HANG;
    fixture_t *f = snap_new("stop", &s->port, 1, &hc);

    cph_health_start();
    cph_health_configure(&f->snap);
    uint64_t end = mono_ms() + 3000;
    while (mono_ms() < end && s->requests == 0)
        usleep(5000);
    assert_int_equal(s->requests, 1); /* the check hangs on the server now */
    uint64_t t0 = mono_ms();
    cph_health_stop();
    assert_true(mono_ms() - t0 < 500);
    /* a second start/stop cycle works (the configuration is gone with the stop) */
    cph_health_start();
    cph_health_stop();
    server_stop(s);
    free(f);
}

static void test_report_shape(void **state)
{
    (void)state;
    server_t *s = server_start(200);
    cph_health_check_t hc = make_hc(100, 80, 1, 1);
    fixture_t *f = snap_new("shape", &s->port, 1, &hc);

    cph_health_start();
    cph_health_configure(&f->snap);
    assert_true(wait_checked(&f->targets[0][0], 3000));
    json_t *r = cph_health_report(&f->snap), *svc = json_array_get(json_object_get(r, "services"), 0);
    json_t *t = json_array_get(json_object_get(svc, "targets"), 0), *lc = json_object_get(t, "last_check");
    assert_string_equal(json_string_value(json_object_get(svc, "name")), "shape");
    assert_true(json_is_true(json_object_get(svc, "health_check")));
    assert_string_equal(json_string_value(json_object_get(t, "url")), f->urls[0][0]);
    assert_int_equal(json_integer_value(json_object_get(t, "weight")), 1);
    assert_string_equal(json_string_value(json_object_get(t, "health")), "healthy");
    assert_string_equal(json_string_value(json_object_get(t, "breaker")), "closed");
    assert_true(json_is_integer(json_object_get(t, "active")));
    assert_true(json_is_integer(json_object_get(t, "ejections")));
    assert_int_equal(json_integer_value(json_object_get(lc, "status")), 200);
    assert_true(json_is_null(json_object_get(lc, "error")));
    assert_true(json_is_integer(json_object_get(lc, "duration_ms")));
    const char *at = json_string_value(json_object_get(lc, "at"));
    assert_non_null(at);
    assert_int_equal(strlen(at), strlen("2026-01-01T00:00:00.000Z"));
    assert_int_equal(at[10], 'T');
    assert_int_equal(at[23], 'Z');
    json_decref(r);
    r = cph_health_report(NULL);
    assert_int_equal(json_array_size(json_object_get(r, "services")), 0);
    json_decref(r);
    cph_health_stop();
    server_stop(s);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds_and_request),
        cmocka_unit_test(test_timeout_close_refused_and_unexpected),
        cmocka_unit_test(test_state_survives_reconfigure_and_removal_stops),
        cmocka_unit_test(test_big_body_is_cut_and_judged),
        cmocka_unit_test(test_stop_is_prompt_with_a_check_in_flight),
        cmocka_unit_test(test_report_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
