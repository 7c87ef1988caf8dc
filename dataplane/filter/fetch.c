/*
 * filter/fetch: a buffered HTTP/1.1 exchange for stages that need the whole upstream answer before responding
 * (filter/aggregate.c fans out to several backends, filter/pdf_source.c renders a page). Before it, each of them had
 * its own small client with one new connection per call; this is the one they share, and it is the proxy's exchange
 * in everything but streaming:
 *
 * - credentials: a service whose credentials could not be resolved is never called (core/credentials.h);
 * - the balancer through filter/proxy_balance.h: admission (max_requests), pick, the connect slot (max_pending),
 *   retries per the route's policy (connect failures, resets before the head, connect timeouts, listed 5xx statuses;
 *   idempotent methods only, the fetch's method, not the client's), the retry budget, and one outcome per attempt for
 *   the breaker and outlier detection;
 * - the head from cph_proxy_build_head_for (the client's identity, X-Forwarded-*, the service's credentials);
 * - the proxy's per-worker keep-alive pools (cph_proxy_pool_take / give, filter/proxy.c): a clean connection goes back
 *   after a complete, well-framed response, and a pooled connection that fails before any answer is retried once on a
 *   fresh one to the same target when the method is idempotent, as the proxy does;
 * - the route's connect_ms, first_byte_ms (from the request written), idle_ms (between body reads, and while a large
 *   request is written) and total_ms.
 *
 * The response head is core/h1resp.c's; the body (Content-Length, chunked or until EOF) is decoded into a buffer
 * capped at max_body: a declared or decoded length past it ends the fetch as TOO_LARGE with the head, the connection
 * closed. Timers are entries of the worker's shared timeout lists (cph_ws_timeout, core/websocket.h), never a list of
 * the request's own, which could be disposed with the request from inside its own callback.
 */
#include <time.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/credentials.h"
#include "dataplane/core/websocket.h"
#include "dataplane/filter/fetch.h"
#include "dataplane/filter/proxy_balance.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/filter/fetch"
#define SMALL_REQUEST (64 * 1024) /* a request written at once: first_byte_ms starts with the write */

enum { PHASE_CONNECT = 0, PHASE_WRITE, PHASE_HEAD, PHASE_BODY };

struct st_cph_fetch_t {
    cph_fetch_req_t req;
    cph_req_t *r;
    const cph_route_t *route;
    cph_proxy_attempts_t at; /* balancer state (filter/proxy_balance.h) */
    const cph_target_t *target;
    h2o_timeout_entry_t timer;       /* the current phase's timeout */
    h2o_timeout_entry_t total_timer; /* route total_ms, when set */
    h2o_hostinfo_getaddr_req_t *getaddr;
    h2o_socket_t *sock;
    h2o_iovec_t bufs[2]; /* request head, body */
    cph_h1resp_t resp;
    h2o_buffer_t *body;
    struct phr_header *headers; /* the final head's, copied to the request's pool */
    size_t num_headers;
    cph_outcome_t head_outcome;
    int phase;
    int reused;        /* the connection came from the pool */
    int fresh_retried; /* already retried once on a fresh connection to the same target */
    int is_head;       /* the method is HEAD: no body whatever the head says */
    int done;
    uint64_t attempt_ns; /* CLOCK_MONOTONIC when the current exchange began (0: none): added to r->upstream_ns */
};

static void start_attempt(cph_fetch_t *f);
static void connect_new(cph_fetch_t *f);

/* CLOCK_MONOTONIC in ns (vDSO, no syscall): the upstream time of the access log and metrics. */
static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- timers and endings */

static void disarm(h2o_timeout_entry_t *e)
{
    if (h2o_timeout_is_linked(e))
        h2o_timeout_unlink(e);
}

static void arm(cph_fetch_t *f, uint64_t ms)
{
    disarm(&f->timer);
    h2o_timeout_link(f->r->worker->ctx.loop, cph_ws_timeout(f->r->worker, ms), &f->timer);
}

/* Detaches the fetch from its connection, resolution and phase timer; a clean connection goes back to the pool. */
static void release_conn(cph_fetch_t *f, int keep)
{
    if (f->attempt_ns != 0) {
        f->r->upstream_ns += monotonic_ns() - f->attempt_ns;
        f->attempt_ns = 0;
    }
    disarm(&f->timer);
    if (f->getaddr != NULL) {
        h2o_hostinfo_getaddr_cancel(f->getaddr);
        f->getaddr = NULL;
    }
    if (f->sock != NULL) {
        if (keep)
            cph_proxy_pool_give(f->r->worker, f->target, f->sock);
        else
            h2o_socket_close(f->sock);
        f->sock = NULL;
    }
}

/* Everything but the callback: connection, timers, the balancer's outcome and slots. Returns the body buffer. */
static h2o_buffer_t *finish(cph_fetch_t *f, cph_outcome_t outcome, int keep)
{
    h2o_buffer_t *body = f->body;

    f->done = 1;
    f->body = NULL;
    release_conn(f, keep);
    disarm(&f->total_timer);
    cph_proxy_finish(f->route->service, &f->at, outcome);
    return body;
}

/* The end: the callback last, as it may answer the client and so end the request (and this fetch's memory). */
static void end(cph_fetch_t *f, cph_fetch_error_t error, cph_outcome_t outcome, int keep)
{
    cph_fetch_result_t res = {.error = error};
    h2o_buffer_t *body = finish(f, outcome, keep);

    if (error == CPH_FETCH_OK || error == CPH_FETCH_TOO_LARGE) {
        res.status = f->resp.status;
        res.headers = f->headers;
        res.num_headers = f->num_headers;
    }
    if (error == CPH_FETCH_OK)
        res.body = h2o_iovec_init(body->size != 0 ? body->bytes : "", body->size);
    f->req.cb(f->req.data, &res);
    if (body != NULL)
        h2o_buffer_dispose(&body);
}

void cph_fetch_cancel(cph_fetch_t *f, cph_outcome_t outcome)
{
    h2o_buffer_t *body;

    if (f == NULL || f->done)
        return;
    if ((body = finish(f, outcome, 0)) != NULL)
        h2o_buffer_dispose(&body);
}

/* ---------------------------------------------------------------- failures and retries */

static int idempotent(const cph_fetch_t *f)
{
    uint32_t m = CPH_METHOD_GET | CPH_METHOD_HEAD | CPH_METHOD_PUT | CPH_METHOD_DELETE | CPH_METHOD_OPTIONS | CPH_METHOD_TRACE;

    return (cph_method_from(f->req.method.base, f->req.method.len) & m) != 0;
}

/* Another attempt when the route's policy allows it, judged on the fetch's method (f->at.method): a GET backend of a
 * POST request is idempotent. */
static int try_retry(cph_fetch_t *f, cph_outcome_t outcome, int status)
{
    return cph_proxy_retry(f->r, &f->at, outcome, status, cph_proxy_now_ns());
}

/* The attempt failed before a usable head: another target when the policy allows it (may_retry), else the end. */
static void fail_attempt(cph_fetch_t *f, cph_fetch_error_t error, cph_outcome_t outcome, cph_upstream_error_t counter,
                         int may_retry)
{
    release_conn(f, 0);
    cph_log_warn(MODULE, "upstream %s of service %s: %s", f->target->authority.base, f->route->service->name,
                 error == CPH_FETCH_CONNECT   ? "connect failed"
                 : error == CPH_FETCH_TIMEOUT ? "timeout"
                                              : "bad response");
    cph_proxy_count_error(f->r, counter);
    if (may_retry && try_retry(f, outcome, 0) == 0) {
        start_attempt(f);
        return;
    }
    end(f, error, outcome, 0);
}

/* The connection failed before a complete head: a fresh connection for a stale pooled one, else a failed attempt. */
static void fail_exchange(cph_fetch_t *f)
{
    if (f->reused && !f->fresh_retried && f->sock != NULL && f->sock->input->size == 0 && idempotent(f)) {
        release_conn(f, 0);
        f->fresh_retried = 1;
        connect_new(f);
        return;
    }
    fail_attempt(f, CPH_FETCH_PROTOCOL, CPH_OUTCOME_RESET, CPH_UPSTREAM_ERR_PROTOCOL, 1);
}

/* A failure after the head: never retried, the connection never reused. */
static void fail_body(cph_fetch_t *f, cph_fetch_error_t error, cph_outcome_t outcome, cph_upstream_error_t counter)
{
    cph_log_warn(MODULE, "upstream %s of service %s: %s after the response head", f->target->authority.base,
                 f->route->service->name, error == CPH_FETCH_TIMEOUT ? "timeout" : "bad body");
    cph_proxy_count_error(f->r, counter);
    end(f, error, outcome, 0);
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    cph_fetch_t *f = H2O_STRUCT_FROM_MEMBER(cph_fetch_t, timer, entry);

    if (f->phase == PHASE_BODY)
        fail_body(f, CPH_FETCH_TIMEOUT, CPH_OUTCOME_TIMEOUT, CPH_UPSTREAM_ERR_TIMEOUT);
    else /* retried only while connecting (proxy_balance.c) */
        fail_attempt(f, CPH_FETCH_TIMEOUT, CPH_OUTCOME_TIMEOUT, CPH_UPSTREAM_ERR_TIMEOUT, 1);
}

static void on_total_timeout(h2o_timeout_entry_t *entry)
{
    cph_fetch_t *f = H2O_STRUCT_FROM_MEMBER(cph_fetch_t, total_timer, entry);

    if (f->phase == PHASE_BODY)
        fail_body(f, CPH_FETCH_TIMEOUT, f->head_outcome, CPH_UPSTREAM_ERR_TIMEOUT);
    else
        fail_attempt(f, CPH_FETCH_TIMEOUT, CPH_OUTCOME_TIMEOUT, CPH_UPSTREAM_ERR_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- response */

/* Moves decoded body bytes from the socket's input into f->body, within max_body. */
static void handle_body(cph_fetch_t *f)
{
    h2o_socket_t *sock = f->sock;
    size_t len = sock->input->size, extra;
    int rc = cph_h1resp_decode_body(&f->resp, sock->input->bytes, &len, &extra);

    if (rc < 0) {
        fail_body(f, CPH_FETCH_PROTOCOL, CPH_OUTCOME_RESET, CPH_UPSTREAM_ERR_PROTOCOL);
        return;
    }
    if (f->body->size + len > f->req.max_body) {
        end(f, CPH_FETCH_TOO_LARGE, f->head_outcome, 0);
        return;
    }
    if (len != 0) {
        h2o_iovec_t dst = h2o_buffer_reserve(&f->body, len);
        memcpy(dst.base, sock->input->bytes, len);
        f->body->size += len;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (rc == 1)
        end(f, CPH_FETCH_OK, f->head_outcome, f->resp.keepalive && extra == 0 && !h2o_socket_is_writing(sock));
    else
        arm(f, f->route->idle_timeout_ms);
}

static void on_body_read(h2o_socket_t *sock, const char *err)
{
    cph_fetch_t *f = sock->data;

    if (err == NULL)
        handle_body(f);
    else if (err == h2o_socket_error_closed && cph_h1resp_eof_is_end(&f->resp))
        end(f, CPH_FETCH_OK, f->head_outcome, 0);
    else
        fail_body(f, CPH_FETCH_PROTOCOL, CPH_OUTCOME_RESET, CPH_UPSTREAM_ERR_PROTOCOL);
}

/* The final head's headers point into the socket's input: copied before it is consumed. */
static void copy_headers(cph_fetch_t *f, const struct phr_header *headers, size_t n)
{
    h2o_mem_pool_t *pool = &f->r->req->pool;

    f->headers = h2o_mem_alloc_pool(pool, sizeof(*f->headers) * (n != 0 ? n : 1));
    for (size_t i = 0; i != n; ++i) {
        f->headers[i].name = h2o_strdup(pool, headers[i].name, headers[i].name_len).base;
        f->headers[i].name_len = headers[i].name_len;
        f->headers[i].value = h2o_strdup(pool, headers[i].value, headers[i].value_len).base;
        f->headers[i].value_len = headers[i].value_len;
    }
    f->num_headers = n;
}

/* A final head: retried when its status is listed by the route, refused early when its length passes max_body. */
static void on_head(cph_fetch_t *f, size_t head_len, const struct phr_header *headers, size_t num_headers)
{
    f->head_outcome = f->resp.status >= 500 ? CPH_OUTCOME_5XX : CPH_OUTCOME_SUCCESS;
    if (f->resp.status >= 500 && f->route->num_retry_statuses != 0 && try_retry(f, CPH_OUTCOME_5XX, f->resp.status) == 0) {
        cph_log_info(MODULE, "upstream %s of service %s answered %d: retried", f->target->authority.base, f->route->service->name,
                     f->resp.status);
        release_conn(f, 0);
        start_attempt(f);
        return;
    }
    copy_headers(f, headers, num_headers);
    f->phase = PHASE_BODY;
    if (f->resp.framing == CPH_H1RESP_LENGTH && f->resp.content_length > f->req.max_body) {
        end(f, CPH_FETCH_TOO_LARGE, f->head_outcome, 0);
        return;
    }
    h2o_buffer_consume(&f->sock->input, head_len);
    h2o_socket_read_start(f->sock, on_body_read);
    handle_body(f);
}

static void on_head_read(h2o_socket_t *sock, const char *err)
{
    cph_fetch_t *f = sock->data;
    struct phr_header headers[CPH_H1RESP_MAX_HEADERS];
    size_t num_headers;
    int ret;

    if (err != NULL) {
        fail_exchange(f);
        return;
    }
    for (;;) {
        num_headers = CPH_H1RESP_MAX_HEADERS;
        ret = cph_h1resp_parse_head(&f->resp, sock->input->bytes, sock->input->size, f->is_head, headers, &num_headers);
        if (ret == -2)
            return;
        if (ret < 0) {
            fail_attempt(f, CPH_FETCH_PROTOCOL, CPH_OUTCOME_RESET, CPH_UPSTREAM_ERR_PROTOCOL, 0);
            return;
        }
        if (f->resp.status >= 200)
            break;
        h2o_buffer_consume(&sock->input, (size_t)ret); /* an interim 1xx: the final head follows */
    }
    on_head(f, (size_t)ret, headers, num_headers);
}

/* ---------------------------------------------------------------- request */

static void on_write_done(h2o_socket_t *sock, const char *err)
{
    cph_fetch_t *f = sock->data;

    if (err != NULL) {
        if (f->phase != PHASE_BODY)
            fail_exchange(f);
        return;
    }
    if (f->phase == PHASE_WRITE) { /* the request is out: first_byte_ms runs from now */
        f->phase = PHASE_HEAD;
        arm(f, f->route->first_byte_timeout_ms);
    }
}

static void send_request(cph_fetch_t *f)
{
    if (f->bufs[0].len + f->bufs[1].len <= SMALL_REQUEST) {
        f->phase = PHASE_HEAD;
        arm(f, f->route->first_byte_timeout_ms);
    } else {
        f->phase = PHASE_WRITE;
        arm(f, f->route->idle_timeout_ms);
    }
    f->sock->data = f;
    h2o_socket_write(f->sock, f->bufs, f->bufs[1].len != 0 ? 2 : 1, on_write_done);
    h2o_socket_read_start(f->sock, on_head_read);
}

static void connect_done(cph_fetch_t *f)
{
    if (f->at.connecting) {
        f->at.connecting = 0;
        cph_balance_connect_end(f->route->service);
    }
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    cph_fetch_t *f = sock->data;

    connect_done(f);
    if (err != NULL) {
        fail_attempt(f, CPH_FETCH_CONNECT, CPH_OUTCOME_CONNECT_FAILURE, CPH_UPSTREAM_ERR_CONNECT, 1);
        return;
    }
    send_request(f);
}

static void do_connect(cph_fetch_t *f, const struct sockaddr *addr, socklen_t addrlen)
{
    if ((f->sock = h2o_socket_connect(f->r->worker->ctx.loop, (struct sockaddr *)addr, addrlen, on_connect)) == NULL) {
        connect_done(f);
        fail_attempt(f, CPH_FETCH_CONNECT, CPH_OUTCOME_CONNECT_FAILURE, CPH_UPSTREAM_ERR_CONNECT, 1);
        return;
    }
    f->sock->data = f;
}

static void on_getaddr(h2o_hostinfo_getaddr_req_t *req, const char *errstr, struct addrinfo *res, void *data)
{
    cph_fetch_t *f = data;

    (void)req;
    f->getaddr = NULL;
    if (errstr != NULL) {
        connect_done(f);
        fail_attempt(f, CPH_FETCH_CONNECT, CPH_OUTCOME_CONNECT_FAILURE, CPH_UPSTREAM_ERR_CONNECT, 1);
        return;
    }
    struct addrinfo *ai = h2o_hostinfo_select_one(res);
    do_connect(f, ai->ai_addr, ai->ai_addrlen);
}

/* A new connection within the service's max_pending; the connect timer covers resolution and connect. */
static void connect_new(cph_fetch_t *f)
{
    if (f->attempt_ns == 0) /* a fresh connection after a stale pooled one: a new exchange */
        f->attempt_ns = monotonic_ns();
    const struct sockaddr *addr;
    socklen_t addrlen;
    char port[8];
    int n;

    if (cph_balance_connect_begin(f->route->service) != 0) {
        cph_proxy_count_error(f->r, CPH_UPSTREAM_ERR_OVERLOADED);
        end(f, CPH_FETCH_OVERLOADED, CPH_OUTCOME_ABANDONED, 0); /* no judgement: the target was never tried */
        return;
    }
    f->at.connecting = 1;
    f->reused = 0;
    f->phase = PHASE_CONNECT;
    arm(f, f->route->connect_timeout_ms);
    if ((addr = cph_proxy_pool_addr(f->r->worker, f->target, &addrlen)) != NULL) {
        do_connect(f, addr, addrlen);
        return;
    }
    n = snprintf(port, sizeof(port), "%u", (unsigned)f->target->port);
    f->getaddr =
        h2o_hostinfo_getaddr(&f->r->worker->ctx.receivers.hostinfo_getaddr, f->target->host, h2o_iovec_init(port, (size_t)n),
                             AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP, AI_ADDRCONFIG | AI_NUMERICSERV, on_getaddr, f);
}

/* One attempt on the picked target: a pooled connection when there is one, else a new one. */
static void start_attempt(cph_fetch_t *f)
{
    f->target = f->at.pick.target;
    f->r->target = f->target;
    f->attempt_ns = monotonic_ns();
    f->bufs[0] = cph_proxy_build_head_for(f->r, f->target, f->req.method, f->req.body, f->req.headers);
    f->resp = (cph_h1resp_t){0};
    if (f->body->size != 0) /* never for the shared empty prototype */
        h2o_buffer_consume(&f->body, f->body->size);
    f->fresh_retried = 0;
    if ((f->sock = cph_proxy_pool_take(f->r->worker, f->target)) == NULL) {
        connect_new(f);
        return;
    }
    f->reused = 1;
    send_request(f);
}

/* ---------------------------------------------------------------- start */

cph_fetch_t *cph_fetch_start(const cph_fetch_req_t *freq)
{
    cph_req_t *r = freq->r;
    const cph_service_t *svc = r->route->service;
    cph_fetch_t *f = h2o_mem_alloc_pool(&r->req->pool, sizeof(*f));

    *f = (cph_fetch_t){.req = *freq, .r = r, .route = r->route};
    f->at.method = freq->method;
    f->timer.cb = on_timeout;
    f->total_timer.cb = on_total_timeout;
    f->bufs[1] = freq->body.base != NULL ? freq->body : h2o_iovec_init(NULL, 0);
    f->is_head = cph_method_from(freq->method.base, freq->method.len) == CPH_METHOD_HEAD;
    h2o_buffer_init(&f->body, &h2o_socket_buffer_prototype);
    if (svc->credentials != NULL && svc->credentials->error != NULL) { /* never reach the upstream without them */
        end(f, CPH_FETCH_CREDENTIALS, CPH_OUTCOME_ABANDONED, 0);
        return f;
    }
    if (svc->num_targets == 0) {
        cph_proxy_count_error(r, CPH_UPSTREAM_ERR_NO_TARGET);
        end(f, CPH_FETCH_NO_TARGET, CPH_OUTCOME_ABANDONED, 0);
        return f;
    }
    if (cph_balance_admit(svc) != 0) {
        cph_proxy_count_error(r, CPH_UPSTREAM_ERR_OVERLOADED);
        end(f, CPH_FETCH_OVERLOADED, CPH_OUTCOME_ABANDONED, 0);
        return f;
    }
    f->at.admitted = 1;
    if (cph_proxy_pick(r, &f->at, cph_proxy_now_ns()) != 0) {
        cph_proxy_count_error(r, CPH_UPSTREAM_ERR_NO_HEALTHY);
        end(f, CPH_FETCH_NO_HEALTHY, CPH_OUTCOME_ABANDONED, 0);
        return f;
    }
    if (f->route->total_timeout_ms != 0)
        h2o_timeout_link(r->worker->ctx.loop, cph_ws_timeout(r->worker, f->route->total_timeout_ms), &f->total_timer);
    start_attempt(f);
    return f;
}
