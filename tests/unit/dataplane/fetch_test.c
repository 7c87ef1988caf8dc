/*
 * fetch_test: filter/fetch.c's buffered exchange on a real event loop against a scripted upstream on a thread of the
 * test (poll over a listener and its connections: it never blocks on one connection while the gateway opens another).
 * Covered: a Content-Length answer and a chunked one reach the callback whole; two fetches in a row use one upstream
 * connection (the proxy's pool); a body past max_body (declared or decoded) is TOO_LARGE with the head and spoils
 * the connection; a refused connect is CONNECT and counted; a silent upstream is TIMEOUT after first_byte_ms; a
 * cancelled fetch never calls back; the sub-request's method, body and headers are what goes upstream.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "peer_fixture.h"
#include "dataplane/core/websocket.h"
#include "dataplane/filter/fetch.h"
#include "dataplane/filter/filter.h"

/* ---------------------------------------------------------------- scripted upstream */

#define MAX_CONNS 8

typedef struct st_upstream_t {
    int lfd, port;
    const char *const *answers; /* one per request, in order; NULL: hold (never answer) */
    size_t num_answers;
    pthread_t tid;
    int stop_pipe[2];
    /* read after join */
    int accepts, requests;
    char last_head[4096];
} upstream_t;

/* Reads a request head (and a Content-Length body) from a connection: 0, or -1 when it closed. */
static int read_request(upstream_t *u, int fd)
{
    char buf[8192];
    size_t len = 0;
    char *end;

    while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    buf[len] = '\0';
    size_t head = (size_t)(end + 4 - buf), want = 0;
    const char *cl = strcasestr(buf, "content-length: ");
    if (cl != NULL && cl < end)
        want = strtoul(cl + 16, NULL, 10);
    while (len - head < want) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    buf[len] = '\0';
    memcpy(u->last_head, buf, len < sizeof(u->last_head) ? len + 1 : sizeof(u->last_head));
    u->last_head[sizeof(u->last_head) - 1] = '\0';
    return 0;
}

static void *serve(void *arg)
{
    upstream_t *u = arg;
    int conns[MAX_CONNS], nconns = 0;

    for (;;) {
        struct pollfd pfd[MAX_CONNS + 2] = {{.fd = u->lfd, .events = POLLIN}, {.fd = u->stop_pipe[0], .events = POLLIN}};
        for (int i = 0; i != nconns; ++i)
            pfd[i + 2] = (struct pollfd){.fd = conns[i], .events = POLLIN};
        if (poll(pfd, (nfds_t)nconns + 2, 5000) <= 0 || pfd[1].revents != 0)
            break;
        if ((pfd[0].revents & POLLIN) && nconns < MAX_CONNS) {
            conns[nconns++] = accept(u->lfd, NULL, NULL);
            u->accepts++;
        }
        for (int i = 0; i < nconns; ++i) {
            if (pfd[i + 2].revents == 0 || pfd[i + 2].fd != conns[i])
                continue;
            if (read_request(u, conns[i]) != 0) {
                close(conns[i]);
                conns[i--] = conns[--nconns];
                continue;
            }
            const char *answer = (size_t)u->requests < u->num_answers ? u->answers[u->requests] : NULL;
            u->requests++;
            usleep(20 * 1000); /* after the write notification of a fetch started outside the loop: poolable */
            if (answer != NULL && write(conns[i], answer, strlen(answer)) < 0)
                break;
        }
    }
    for (int i = 0; i != nconns; ++i)
        close(conns[i]);
    return NULL;
}

static void upstream_start(upstream_t *u, const char *const *answers, size_t n)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    memset(u, 0, sizeof(*u));
    u->answers = answers;
    u->num_answers = n;
    assert_true((u->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(u->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(u->lfd, 16), 0);
    assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&sin, &len), 0);
    u->port = ntohs(sin.sin_port);
    assert_int_equal(pipe(u->stop_pipe), 0);
    assert_int_equal(pthread_create(&u->tid, NULL, serve, u), 0);
}

static void upstream_stop(upstream_t *u)
{
    assert_int_equal(write(u->stop_pipe[1], "x", 1), 1);
    pthread_join(u->tid, NULL);
    close(u->lfd);
    close(u->stop_pipe[0]);
    close(u->stop_pipe[1]);
}

/* ---------------------------------------------------------------- gateway side */

typedef struct st_fixture_t {
    cph_worker_t w;
    cph_snapshot_t *snap;
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
    /* what the callback saw */
    int called;
    cph_fetch_error_t error;
    int status;
    char body[256];
    char content_type[64];
} fixture_t;

static cph_snapshot_t *build_snapshot(int port, const char *timeouts)
{
    char text[1024], hash[CPH_HASH_SIZE] = "";
    cph_error_t err;
    cph_snapshot_t *s;

    snprintf(text, sizeof(text),
             "{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:%d\"}]}],"
             "\"routes\":[{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/r\"],\"policies\":{\"timeouts\":%s}}]}",
             port, timeouts);
    json_t *body = json_loads(text, 0, NULL);
    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    s = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    if (s == NULL)
        fail_msg("snapshot: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    return s;
}

static void fx_init(fixture_t *f, int port, const char *timeouts)
{
    memset(f, 0, sizeof(*f));
    f->w.ctx.loop = h2o_evloop_create();
    f->w.stats = calloc(1, sizeof(*f->w.stats));
    f->w.balance = cph_balance_worker_new();
    cph_proxy_worker_init(&f->w);
    cph_websocket_worker_init(&f->w);
    f->snap = build_snapshot(port, timeouts);
    f->conn.callbacks = &callbacks;
    h2o_mem_init_pool(&f->req.pool);
    f->req.conn = &f->conn;
    f->req.input.method = h2o_iovec_init(H2O_STRLIT("POST")); /* the client's: the fetch sends its own */
    f->req.input.scheme = &H2O_URL_SCHEME_HTTP;
    f->req.input.authority = h2o_iovec_init(H2O_STRLIT("gw.example"));
    f->r.req = &f->req;
    f->r.worker = &f->w;
    f->r.snap = f->snap;
    f->r.route = &f->snap->routes[0];
    f->r.upstream_path = h2o_iovec_init(H2O_STRLIT("/up"));
    f->r.request_id = h2o_iovec_init(H2O_STRLIT("00112233445566778899aabbccddeeff"));
}

static void fx_dispose(fixture_t *f)
{
    for (int i = 0; i != 5; ++i) /* let closed sockets be disposed */
        h2o_evloop_run(f->w.ctx.loop, 0);
    cph_proxy_worker_dispose(&f->w);
    cph_websocket_worker_dispose(&f->w);
    h2o_evloop_run(f->w.ctx.loop, 0);
    cph_balance_worker_free(f->w.balance);
    h2o_mem_clear_pool(&f->req.pool);
    cph_snapshot_release(f->snap);
    free(f->w.stats);
    h2o_evloop_destroy(f->w.ctx.loop);
}

static void on_fetched(void *data, const cph_fetch_result_t *res)
{
    fixture_t *f = data;

    f->called++;
    f->error = res->error;
    f->status = res->status;
    snprintf(f->body, sizeof(f->body), "%.*s", (int)res->body.len, res->body.base != NULL ? res->body.base : "");
    for (size_t i = 0; i != res->num_headers; ++i)
        if (res->headers[i].name_len == 12 && strncasecmp(res->headers[i].name, "content-type", 12) == 0)
            snprintf(f->content_type, sizeof(f->content_type), "%.*s", (int)res->headers[i].value_len, res->headers[i].value);
}

static cph_fetch_t *fetch(fixture_t *f, const char *method, size_t max_body)
{
    cph_fetch_req_t freq = {.r = &f->r,
                            .method = h2o_iovec_init(method, strlen(method)),
                            .headers = &f->req.headers,
                            .max_body = max_body,
                            .cb = on_fetched,
                            .data = f};

    f->called = 0;
    return cph_fetch_start(&freq);
}

static void run_until_called(fixture_t *f)
{
    for (int i = 0; i != 500 && !f->called; ++i)
        h2o_evloop_run(f->w.ctx.loop, 10);
    assert_int_equal(f->called, 1);
}

static uint64_t errors(fixture_t *f, cph_upstream_error_t kind)
{
    return cph_counter_read(&f->w.stats->upstream_errors[f->r.route->service->metric_id][kind]);
}

#define DEFAULT_TIMEOUTS "{\"connect_ms\":2000,\"first_byte_ms\":2000,\"idle_ms\":2000}"
#define OK_2 "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
#define CHUNKED                                                                                                                    \
    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

/* ---------------------------------------------------------------- tests */

static void test_two_fetches_share_one_pooled_connection(void **state)
{
    static const char *const answers[] = {OK_2, CHUNKED, OK_2};
    upstream_t u;
    fixture_t f;

    (void)state;
    upstream_start(&u, answers, 3);
    fx_init(&f, u.port, DEFAULT_TIMEOUTS);
    fetch(&f, "GET", 1024);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_OK);
    assert_int_equal(f.status, 200);
    assert_string_equal(f.body, "{}");
    assert_string_equal(f.content_type, "application/json");
    fetch(&f, "GET", 1024);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_OK);
    assert_string_equal(f.body, "hello world");
    assert_string_equal(f.content_type, "text/html");
    fetch(&f, "GET", 1024);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_OK);
    fx_dispose(&f);
    upstream_stop(&u);
    assert_int_equal(u.requests, 3);
    assert_int_equal(u.accepts, 1);
}

static void test_method_body_and_headers_are_the_fetch_own(void **state)
{
    static const char *const answers[] = {OK_2};
    upstream_t u;
    fixture_t f;
    h2o_headers_t mine = {NULL, 0, 0};

    (void)state;
    upstream_start(&u, answers, 1);
    fx_init(&f, u.port, DEFAULT_TIMEOUTS);
    h2o_add_header_by_str(&f.req.pool, &f.req.headers, H2O_STRLIT("x-client-only"), 1, NULL, H2O_STRLIT("1"));
    h2o_add_header_by_str(&f.req.pool, &mine, H2O_STRLIT("accept"), 1, NULL, H2O_STRLIT("application/json"));
    cph_fetch_req_t freq = {.r = &f.r,
                            .method = h2o_iovec_init(H2O_STRLIT("PUT")),
                            .headers = &mine,
                            .body = h2o_iovec_init(H2O_STRLIT("abc")),
                            .max_body = 64,
                            .cb = on_fetched,
                            .data = &f};
    cph_fetch_start(&freq);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_OK);
    assert_int_equal(f.req.input.method.len, 4); /* the client's request is untouched */
    fx_dispose(&f);
    upstream_stop(&u);
    assert_true(strncmp(u.last_head, "PUT /up HTTP/1.1\r\n", 18) == 0);
    assert_non_null(strstr(u.last_head, "accept: application/json\r\n"));
    assert_non_null(strstr(u.last_head, "content-length: 3\r\n"));
    assert_null(strstr(u.last_head, "x-client-only"));
    assert_non_null(strstr(u.last_head, "x-cephalo-request-id: 00112233445566778899aabbccddeeff\r\n"));
    assert_true(strlen(u.last_head) >= 3 && strcmp(u.last_head + strlen(u.last_head) - 3, "abc") == 0);
}

static void test_body_over_max_is_too_large_and_not_pooled(void **state)
{
    static const char *const answers[] = {CHUNKED, "HTTP/1.1 404 Not Found\r\ncontent-length: 100\r\n\r\n", OK_2};
    upstream_t u;
    fixture_t f;

    (void)state;
    upstream_start(&u, answers, 3);
    fx_init(&f, u.port, DEFAULT_TIMEOUTS);
    fetch(&f, "GET", 8); /* decoded past the cap */
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_TOO_LARGE);
    assert_int_equal(f.status, 200);
    assert_string_equal(f.content_type, "text/html");
    assert_string_equal(f.body, "");
    fetch(&f, "GET", 8); /* declared past the cap: decided at the head */
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_TOO_LARGE);
    assert_int_equal(f.status, 404);
    fetch(&f, "GET", 8);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_OK);
    fx_dispose(&f);
    upstream_stop(&u);
    assert_int_equal(u.accepts, 3); /* each spoiled connection was closed */
}

static void test_refused_connect_is_counted(void **state)
{
    upstream_t u;
    fixture_t f;

    (void)state;
    upstream_start(&u, NULL, 0);
    int port = u.port;
    upstream_stop(&u); /* nobody listens there any more */
    fx_init(&f, port, DEFAULT_TIMEOUTS);
    fetch(&f, "GET", 64);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_CONNECT);
    assert_int_equal(f.status, 0);
    assert_int_equal(errors(&f, CPH_UPSTREAM_ERR_CONNECT), 1);
    fx_dispose(&f);
}

static void test_silent_upstream_times_out_and_cancel_never_calls_back(void **state)
{
    static const char *const answers[] = {NULL, NULL};
    upstream_t u;
    fixture_t f;
    cph_fetch_t *pending;

    (void)state;
    upstream_start(&u, answers, 2);
    fx_init(&f, u.port, "{\"connect_ms\":2000,\"first_byte_ms\":100,\"idle_ms\":2000}");
    fetch(&f, "GET", 64);
    run_until_called(&f);
    assert_int_equal(f.error, CPH_FETCH_TIMEOUT);
    assert_int_equal(errors(&f, CPH_UPSTREAM_ERR_TIMEOUT), 1);
    pending = fetch(&f, "GET", 64);
    for (int i = 0; i != 5; ++i)
        h2o_evloop_run(f.w.ctx.loop, 10);
    cph_fetch_cancel(pending, CPH_OUTCOME_ABANDONED);
    cph_fetch_cancel(pending, CPH_OUTCOME_ABANDONED); /* idempotent */
    for (int i = 0; i != 20; ++i)
        h2o_evloop_run(f.w.ctx.loop, 10);
    assert_int_equal(f.called, 0);
    fx_dispose(&f);
    upstream_stop(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_fetches_share_one_pooled_connection),
        cmocka_unit_test(test_method_body_and_headers_are_the_fetch_own),
        cmocka_unit_test(test_body_over_max_is_too_large_and_not_pooled),
        cmocka_unit_test(test_refused_connect_is_counted),
        cmocka_unit_test(test_silent_upstream_times_out_and_cancel_never_calls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
