/*
 * filter/proxy: the terminal stage of a proxy route. It forwards the request to one target of the route's service
 * (chosen by the balancer, core/balance.h) over HTTP/1.1 and streams the answer back.
 *
 * Our own upstream client on h2o's socket layer (h2o_socket_t) and picohttpparser (core/h1resp.c), not
 * h2o_http1client: profiling showed h2o's socket pool exports every idle connection out of the event loop and
 * imports it back for the next request (epoll_ctl DEL + ADD, fcntl, a MSG_PEEK recv: four syscalls of the ~17 a
 * proxied request costs). Here an idle keep-alive connection stays registered, reading: the same callback that
 * would see a response sees the upstream's close (or stray bytes) and drops the connection at once, and the next
 * request just writes to it.
 *
 * An exchange is one or more attempts (filter/proxy_balance.c does the balancer's bookkeeping and the retry rules):
 * credentials (503 credentials_unavailable when the control plane could not resolve the service's, core/credentials.h),
 * admission (503 upstream_overloaded), pick (503 no_healthy_upstream when nothing can be picked), then per attempt
 * connect (route connect_ms; 503 upstream_overloaded when the service's pending connects are full), write (idle_ms),
 * wait for the head (first_byte_ms from the request written) and read the body (idle_ms between reads). total_ms,
 * when set, bounds the whole exchange, retries included.
 *
 * A client that takes nothing of a response for the route's idle_ms while the proxy has stopped reading the upstream
 * for it (256 KiB waiting) loses the response: the upstream connection is closed, and the client's connection too -
 * or, for an HTTP/2 stream held only by its own flow-control window, that stream alone is reset (client_stalled).
 *
 * Failure mapping before the head: 502 upstream_connect_failed when no connection could be made (resolution,
 * connect), 504 upstream_timeout for any timeout, 502 bad_gateway for anything else (early close, malformed head,
 * head over 64 KiB); a retry to another target comes first when the route's policy allows it. Once the head went
 * out an error can only abort the response: the generator ends with an error state, which closes an HTTP/1
 * connection without a terminating chunk and resets an HTTP/2 stream, so the client sees the truncation. A
 * connection is reused only after a complete, well-framed response with no stray bytes and no "Connection: close";
 * one whose response was discarded for a retry is closed.
 *
 * A pooled connection the upstream closed while idle fails the next request before any answer; such a request is
 * retried once on a fresh connection to the same target when it is idempotent, as nginx does (not a retry of the
 * policy: same target, no budget).
 *
 * Response cache (filter/cache.c): only for a route with policies.cache, the final head is offered to
 * cph_cache_capture_begin and, when it may be stored, every decoded body chunk is copied into the capture as it is
 * queued for the client; a complete, well-framed body stores it, anything else (an error, the client leaving, the
 * body passing max_body_bytes) drops it. A route without the policy pays one pointer test per response.
 *
 * Per worker (struct st_cph_proxy_worker_t, filter/proxy_pool.c): pools indexed by the target's stable pool id (they
 * outlive snapshot swaps) and one h2o_timeout_t per distinct timeout. All of it is touched only on the worker's thread. The pools
 * are shared with the buffered sub-requests of filter/fetch.c (aggregate backends, PDF source pages) through cph_proxy_pool_take /
 * cph_proxy_pool_give, so they reuse the same keep-alive connections.
 */
#include <time.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "proto/log.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/credentials.h"
#include "dataplane/core/h1resp.h"
#include "dataplane/core/h2guard.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/fetch.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_balance.h"
#include "dataplane/filter/proxy_head.h"
#include "dataplane/filter/proxy_pool.h"

#define MODULE "dp/filter/proxy"
#define BODY_HIGH_WATER (256 * 1024) /* stop reading the upstream while this much waits for the client */
#define SMALL_REQUEST (64 * 1024)    /* a request written at once: first_byte_ms starts with the write */

/* What the exchange waits for: it picks the timeout and says whether a timeout may be retried. */
enum { PHASE_CONNECT = 0, PHASE_WRITE, PHASE_HEAD, PHASE_BODY };
enum { TIMER_CONNECT = 0, TIMER_FIRST_BYTE, TIMER_IDLE, TIMER_KINDS };

typedef struct st_upstream_t {
    h2o_generator_t super;
    cph_req_t *r;
    struct st_cph_proxy_worker_t *pw;
    const cph_target_t *target;
    cph_pool_t *pool;
    cph_proxy_attempts_t at;              /* balancer state: admission, pick, retries (filter/proxy_balance.h) */
    cph_timeout_ctx_t *tctx[TIMER_KINDS]; /* looked up on first use */
    h2o_timeout_entry_t timer;            /* the current phase's timeout */
    h2o_timeout_entry_t total_timer;      /* route total_ms, when set */
    h2o_hostinfo_getaddr_req_t *getaddr;
    cph_upconn_t *conn;
    h2o_iovec_t bufs[2]; /* request head, body */
    cph_h1resp_t resp;
    cph_outcome_t head_outcome; /* SUCCESS or 5XX, once the head is in */
    int phase;
    int is_head;
    int reused;        /* the connection came from the pool */
    int fresh_retried; /* already retried once on a fresh connection to the same target */
    int head_done;
    int finished; /* nothing more will come from the upstream */
    int paused;   /* reading stopped until the client catches up */
    int had_body_error;
    h2o_buffer_t *body; /* decoded payload not yet handed to h2o */
    h2o_doublebuffer_t sending;
    cph_cache_capture_t *capture; /* copying the response into the cache (filter/cache.c), or NULL */
    uint64_t attempt_ns;          /* CLOCK_MONOTONIC when the current exchange began (0: none): r->upstream_ns */
} upstream_t;

static void start_attempt(upstream_t *u);
static void connect_new(upstream_t *u);

/* CLOCK_MONOTONIC in ns (vDSO, no syscall): the upstream time of the access log and metrics. */
static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- timers and endings */

/* Detaches the exchange from its connection and phase timer; the connection is closed unless keep is set. */
static void release_conn(upstream_t *u, int keep)
{
    if (u->attempt_ns != 0) {
        u->r->upstream_ns += monotonic_ns() - u->attempt_ns;
        u->attempt_ns = 0;
    }
    if (h2o_timeout_is_linked(&u->timer))
        h2o_timeout_unlink(&u->timer);
    if (u->getaddr != NULL) {
        h2o_hostinfo_getaddr_cancel(u->getaddr);
        u->getaddr = NULL;
    }
    if (u->conn != NULL) {
        if (keep)
            cph_upconn_return(u->pw, u->conn);
        else
            cph_upconn_close(u->conn);
        u->conn = NULL;
    }
}

/* (Re)starts the phase timer with the route's timeout of that kind. */
static void arm(upstream_t *u, int kind)
{
    const cph_route_t *route = u->r->route;

    if (u->tctx[kind] == NULL) {
        uint64_t ms = kind == TIMER_CONNECT      ? route->connect_timeout_ms
                      : kind == TIMER_FIRST_BYTE ? route->first_byte_timeout_ms
                                                 : route->idle_timeout_ms;
        u->tctx[kind] = cph_proxy_timeout_ctx(u->pw, ms);
    }
    if (h2o_timeout_is_linked(&u->timer))
        h2o_timeout_unlink(&u->timer);
    h2o_timeout_link(u->pw->worker->ctx.loop, &u->tctx[kind]->timeout, &u->timer);
}

/* The upstream side of the exchange is over: the balancer hears the outcome, the admission slot is returned. */
static void end_exchange(upstream_t *u, cph_outcome_t outcome)
{
    if (h2o_timeout_is_linked(&u->total_timer))
        h2o_timeout_unlink(&u->total_timer);
    cph_proxy_finish(u->r->route->service, &u->at, outcome);
}

/* A failure before the head: how it is answered, counted and judged. */
typedef struct st_failure_t {
    int status;
    const char *code, *message;
    cph_upstream_error_t kind;
    cph_outcome_t outcome;
} failure_t;

static const failure_t CONNECT_FAILED = {502, "upstream_connect_failed", "The gateway could not connect to the upstream",
                                         CPH_UPSTREAM_ERR_CONNECT, CPH_OUTCOME_CONNECT_FAILURE};
static const failure_t RESOLVE_FAILED = {502, "upstream_connect_failed", "The gateway could not resolve the upstream",
                                         CPH_UPSTREAM_ERR_CONNECT, CPH_OUTCOME_CONNECT_FAILURE};
static const failure_t TIMED_OUT = {504, "upstream_timeout", "The upstream did not answer in time", CPH_UPSTREAM_ERR_TIMEOUT,
                                    CPH_OUTCOME_TIMEOUT};
static const failure_t CLOSED = {502, "bad_gateway", "The upstream failed to answer", CPH_UPSTREAM_ERR_PROTOCOL, CPH_OUTCOME_RESET};
static const failure_t INVALID = {502, "bad_gateway", "The upstream sent an invalid response", CPH_UPSTREAM_ERR_PROTOCOL,
                                  CPH_OUTCOME_RESET};

/* Answers the failure and ends the exchange. */
static void answer_failure(upstream_t *u, const failure_t *f)
{
    end_exchange(u, f->outcome);
    cph_respond_error_r(u->r, f->status, f->code, f->message);
}

/* The attempt failed before any byte went to the client: another target when the policy allows it, else the answer.
 * may_retry 0: never (a malformed head, the total deadline). */
static void fail_attempt(upstream_t *u, const failure_t *f, int may_retry)
{
    release_conn(u, 0);
    cph_log_warn(MODULE, "upstream %s of service %s: %s", u->target->authority.base, u->r->route->service->name, f->code);
    cph_proxy_count_error(u->r, f->kind);
    if (may_retry && cph_proxy_retry(u->r, &u->at, f->outcome, 0, cph_proxy_now_ns()) == 0) {
        start_attempt(u);
        return;
    }
    answer_failure(u, f);
}

/* ---------------------------------------------------------------- response */

/* Copies status and end-to-end headers into the response (names lower-cased: HTTP/2 requires it). */
static void copy_head(upstream_t *u, const struct phr_header *headers, size_t num_headers)
{
    h2o_req_t *req = u->r->req;

    req->res.status = u->resp.status;
    req->res.reason = h2o_strdup(&req->pool, u->resp.msg, u->resp.msg_len).base;
    if (u->resp.framing == CPH_H1RESP_LENGTH || (u->resp.framing == CPH_H1RESP_NO_BODY && u->resp.content_length != SIZE_MAX))
        req->res.content_length = u->resp.content_length;
    cph_proxy_add_response_headers(u->r, headers, num_headers);
}

/* Ends the cache capture, if any: complete stores the copied response. */
static void end_capture(upstream_t *u, int complete)
{
    if (u->capture != NULL) {
        cph_cache_capture_end(u->capture, complete);
        u->capture = NULL;
    }
}

static void do_send(upstream_t *u)
{
    h2o_iovec_t vec;
    h2o_send_state_t state;

    if (u->sending.bytes_inflight != 0)
        return;
    vec = h2o_doublebuffer_prepare(&u->sending, &u->body, u->r->req->preferred_chunk_size);
    if (u->finished && vec.len == u->sending.buf->size && u->body->size == 0) {
        state = u->had_body_error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    } else {
        if (vec.len == 0)
            return;
        state = H2O_SEND_STATE_IN_PROGRESS;
    }
    h2o_send(u->r->req, &vec, vec.len != 0 ? 1 : 0, state);
}

static void body_error(upstream_t *u, const char *what, cph_upstream_error_t kind, cph_outcome_t outcome)
{
    cph_log_warn(MODULE, "upstream %s of service %s: %s after the response head", u->target->authority.base,
                 u->r->route->service->name, what);
    cph_proxy_count_error(u->r, kind);
    u->had_body_error = 1;
    u->finished = 1;
    end_capture(u, 0);
    release_conn(u, 0); /* never reused: its framing is lost */
    end_exchange(u, outcome);
}

static void on_body_read(h2o_socket_t *sock, const char *err);

/* The body arrived whole: the connection goes back to the pool when it is clean. */
static void body_complete(upstream_t *u, int keep)
{
    u->finished = 1;
    end_capture(u, 1);
    release_conn(u, keep);
    end_exchange(u, u->head_outcome);
}

/* Moves the decoded body bytes of the socket's input into u->body and hands them to h2o when it is idle. */
static void handle_body(upstream_t *u)
{
    h2o_socket_t *sock = u->conn->sock;
    size_t len = sock->input->size, extra;
    int rc = cph_h1resp_decode_body(&u->resp, sock->input->bytes, &len, &extra);

    if (rc < 0) {
        body_error(u, "malformed chunked encoding", CPH_UPSTREAM_ERR_PROTOCOL, CPH_OUTCOME_RESET);
    } else {
        if (len != 0) {
            h2o_iovec_t dst = h2o_buffer_reserve(&u->body, len);
            memcpy(dst.base, sock->input->bytes, len);
            u->body->size += len;
            if (u->capture != NULL && cph_cache_capture_append(u->capture, sock->input->bytes, len) != 0)
                u->capture = NULL; /* over max_body_bytes: ended, the client still gets everything */
        }
        h2o_buffer_consume(&sock->input, sock->input->size);
        if (rc == 1) {
            body_complete(u, u->resp.keepalive && extra == 0 && !h2o_socket_is_writing(sock));
        } else if (u->body->size > BODY_HIGH_WATER) {
            h2o_socket_read_stop(sock);
            u->paused = 1;
            arm(u, TIMER_IDLE); /* now the client's clock: it must take something within idle_ms (on_timeout) */
        } else {
            h2o_socket_read_start(sock, on_body_read);
            arm(u, TIMER_IDLE);
        }
    }
    do_send(u);
}

static void on_body_read(h2o_socket_t *sock, const char *err)
{
    upstream_t *u = ((cph_upconn_t *)sock->data)->u;

    if (err == NULL) {
        handle_body(u);
        return;
    }
    if (err == h2o_socket_error_closed && cph_h1resp_eof_is_end(&u->resp))
        body_complete(u, 0);
    else
        body_error(u, "connection lost", CPH_UPSTREAM_ERR_PROTOCOL, CPH_OUTCOME_RESET);
    do_send(u);
}

static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    upstream_t *u = (upstream_t *)generator;

    (void)req;
    h2o_doublebuffer_consume(&u->sending);
    if (u->paused && u->conn != NULL) {
        if (u->body->size <= BODY_HIGH_WATER / 2) {
            u->paused = 0;
            h2o_socket_read_start(u->conn->sock, on_body_read);
        }
        arm(u, TIMER_IDLE); /* the client took something: its idle_ms starts again (or the upstream's, resumed) */
    }
    do_send(u);
}

/* The client went away after the head: the connection is never pooled; the target is judged on its head. */
static void do_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    upstream_t *u = (upstream_t *)generator;

    (void)req;
    end_capture(u, 0);
    release_conn(u, 0);
    end_exchange(u, u->head_outcome);
}

/* ---------------------------------------------------------------- upstream exchange */

/* A pooled connection that failed before any answer was most likely closed by the upstream while idle. */
static int stale_pooled(upstream_t *u)
{
    uint32_t idempotent =
        CPH_METHOD_GET | CPH_METHOD_HEAD | CPH_METHOD_PUT | CPH_METHOD_DELETE | CPH_METHOD_OPTIONS | CPH_METHOD_TRACE;
    h2o_req_t *req = u->r->req;

    if (!u->reused || u->fresh_retried || (u->conn != NULL && u->conn->sock->input->size != 0))
        return 0;
    return (cph_method_from(req->input.method.base, req->input.method.len) & idempotent) != 0;
}

/* The connection failed before a complete head: a fresh connection for a stale pooled one, else a failed attempt. */
static void fail_exchange(upstream_t *u)
{
    if (stale_pooled(u)) {
        release_conn(u, 0);
        u->fresh_retried = 1;
        connect_new(u);
        return;
    }
    fail_attempt(u, &CLOSED, 1);
}

/* A final head with a status the route retries on: discard it (closing the connection) and try another target. */
static int retry_on_status(upstream_t *u)
{
    if (u->r->route->num_retry_statuses == 0 ||
        cph_proxy_retry(u->r, &u->at, CPH_OUTCOME_5XX, u->resp.status, cph_proxy_now_ns()) != 0)
        return 0;
    cph_log_info(MODULE, "upstream %s of service %s answered %d: retried", u->target->authority.base, u->r->route->service->name,
                 u->resp.status);
    release_conn(u, 0);
    start_attempt(u);
    return 1;
}

static void on_head_read(h2o_socket_t *sock, const char *err)
{
    upstream_t *u = ((cph_upconn_t *)sock->data)->u;
    struct phr_header headers[CPH_H1RESP_MAX_HEADERS];
    size_t num_headers;
    int ret;

    if (err != NULL) {
        fail_exchange(u);
        return;
    }
    for (;;) {
        num_headers = CPH_H1RESP_MAX_HEADERS;
        ret = cph_h1resp_parse_head(&u->resp, sock->input->bytes, sock->input->size, u->is_head, headers, &num_headers);
        if (ret == -2)
            return;
        if (ret < 0) {
            fail_attempt(u, &INVALID, 0);
            return;
        }
        if (u->resp.status >= 200)
            break;
        h2o_buffer_consume(&sock->input, (size_t)ret); /* an interim 1xx: the final head follows */
    }
    u->head_outcome = u->resp.status >= 500 ? CPH_OUTCOME_5XX : CPH_OUTCOME_SUCCESS;
    if (u->resp.status >= 500 && retry_on_status(u))
        return;
    copy_head(u, headers, num_headers);
    if (u->r->route->cache != NULL) /* the headers point into the input: read them before it is consumed */
        u->capture = cph_cache_capture_begin(u->r, u->resp.status, u->resp.msg, u->resp.msg_len, headers, num_headers);
    h2o_buffer_consume(&sock->input, (size_t)ret);
    u->head_done = 1;
    u->phase = PHASE_BODY;
    h2o_start_response(u->r->req, &u->super);
    handle_body(u);
}

static void on_write_done(h2o_socket_t *sock, const char *err)
{
    upstream_t *u = ((cph_upconn_t *)sock->data)->u;

    if (u == NULL)
        return;
    if (err != NULL) {
        if (!u->head_done)
            fail_exchange(u);
        return;
    }
    if (u->phase == PHASE_WRITE) { /* the request is out: first_byte_ms runs from now */
        u->phase = PHASE_HEAD;
        arm(u, TIMER_FIRST_BYTE);
    }
}

/* A request up to SMALL_REQUEST bytes leaves in one write, within the loop iteration: first_byte_ms runs from the
 * write call and one timer relink per request is saved. A larger body is timed by idle_ms until it is out. */
static void send_request(upstream_t *u)
{
    if (u->bufs[0].len + u->bufs[1].len <= SMALL_REQUEST) {
        u->phase = PHASE_HEAD;
        arm(u, TIMER_FIRST_BYTE);
    } else {
        u->phase = PHASE_WRITE;
        arm(u, TIMER_IDLE);
    }
    h2o_socket_write(u->conn->sock, u->bufs, u->bufs[1].len != 0 ? 2 : 1, on_write_done);
    h2o_socket_read_start(u->conn->sock, on_head_read);
}

/*
 * The client took nothing of the response for idle_ms while the upstream was paused for it: the upstream connection
 * is closed (not the upstream's fault: no error counted, its verdict is its head's), and the client's connection is
 * shut down when its socket is the one stuck (HTTP/1, or an HTTP/2 connection whose writes do not drain), so h2o ends
 * the request. An HTTP/2 stream stalled only by its own flow-control window (the connection drains; the client never
 * opens that stream's window) is reset alone with RST_STREAM(CANCEL), its siblings untouched (cph_h2guard_reset_stream,
 * which may dispose the request and u with it: it comes last).
 */
static void client_stalled(upstream_t *u)
{
    h2o_req_t *req = u->r->req;
    h2o_socket_t *cs = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;

    cph_log_info(MODULE, "client of route %s took nothing for idle_ms: response cut", u->r->route->name);
    u->had_body_error = 1;
    u->finished = 1;
    end_capture(u, 0);
    release_conn(u, 0);
    end_exchange(u, u->head_outcome);
    if (cs != NULL && (req->version < 0x200 || h2o_socket_is_writing(cs)))
        shutdown(h2o_socket_get_fd(cs), SHUT_RDWR); /* h2o sees the error and closes it, disposing the request */
    else if (req->version >= 0x200 && cph_h2guard_reset_stream(req) != 0)
        cph_log_warn(MODULE, "an HTTP/2 stream stalled by its window could not be reset: it ends at its next proceed");
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    upstream_t *u = H2O_STRUCT_FROM_MEMBER(upstream_t, timer, entry);

    if (u->paused) {
        client_stalled(u);
    } else if (u->phase != PHASE_BODY) {
        fail_attempt(u, &TIMED_OUT, 1); /* retried only while connecting (proxy_balance.c) */
    } else {
        body_error(u, "I/O timeout", CPH_UPSTREAM_ERR_TIMEOUT, CPH_OUTCOME_TIMEOUT);
        do_send(u);
    }
}

/* route total_ms: 504 before the head, a truncated response after it. */
static void on_total_timeout(h2o_timeout_entry_t *entry)
{
    upstream_t *u = H2O_STRUCT_FROM_MEMBER(upstream_t, total_timer, entry);

    if (!u->head_done) {
        fail_attempt(u, &TIMED_OUT, 0);
    } else if (!u->finished) {
        body_error(u, "total deadline passed", CPH_UPSTREAM_ERR_TIMEOUT, u->head_outcome);
        do_send(u);
    }
}

static void connect_done(upstream_t *u)
{
    if (u->at.connecting) {
        u->at.connecting = 0;
        cph_balance_connect_end(u->r->route->service);
    }
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    upstream_t *u = ((cph_upconn_t *)sock->data)->u;

    connect_done(u);
    if (err != NULL) {
        fail_attempt(u, &CONNECT_FAILED, 1);
        return;
    }
    send_request(u);
}

static void do_connect(upstream_t *u, struct sockaddr *addr, socklen_t addrlen)
{
    h2o_socket_t *sock = h2o_socket_connect(u->pw->worker->ctx.loop, addr, addrlen, on_connect);

    if (sock == NULL) {
        connect_done(u);
        fail_attempt(u, &CONNECT_FAILED, 1);
        return;
    }
    u->conn = cph_upconn_new(u->pool, sock);
    u->conn->u = u;
}

static void on_getaddr(h2o_hostinfo_getaddr_req_t *req, const char *errstr, struct addrinfo *res, void *data)
{
    upstream_t *u = data;

    (void)req;
    u->getaddr = NULL;
    if (errstr != NULL) {
        connect_done(u);
        fail_attempt(u, &RESOLVE_FAILED, 1);
        return;
    }
    struct addrinfo *ai = h2o_hostinfo_select_one(res);
    do_connect(u, ai->ai_addr, ai->ai_addrlen);
}

/* A new connection, within the service's max_pending; the connect timer covers resolution and connect. */
static void connect_new(upstream_t *u)
{
    if (u->attempt_ns == 0) /* a fresh connection after a stale pooled one: a new exchange */
        u->attempt_ns = monotonic_ns();
    if (cph_balance_connect_begin(u->r->route->service) != 0) {
        end_exchange(u, CPH_OUTCOME_ABANDONED); /* no judgement: the target was never tried */
        cph_proxy_respond_overloaded(u->r);
        return;
    }
    u->at.connecting = 1;
    u->reused = 0;
    u->phase = PHASE_CONNECT;
    arm(u, TIMER_CONNECT);
    if (u->pool->addrlen != 0) {
        do_connect(u, (struct sockaddr *)&u->pool->addr, u->pool->addrlen);
        return;
    }
    char port[8];
    int n = snprintf(port, sizeof(port), "%u", (unsigned)u->target->port);
    u->getaddr =
        h2o_hostinfo_getaddr(&u->pw->worker->ctx.receivers.hostinfo_getaddr, u->target->host, h2o_iovec_init(port, (size_t)n),
                             AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP, AI_ADDRCONFIG | AI_NUMERICSERV, on_getaddr, u);
}

/* One attempt on the picked target: a pooled connection when there is one, else a new one. */
static void start_attempt(upstream_t *u)
{
    u->target = u->at.pick.target;
    u->r->target = u->target;
    u->attempt_ns = monotonic_ns();
    u->pool = cph_proxy_pool_get(u->pw, u->target);
    u->bufs[0] = cph_proxy_build_head(u->r, u->target);
    u->fresh_retried = 0;
    cph_upconn_t *c = cph_pool_pop(u->pool);
    if (c == NULL) {
        connect_new(u);
        return;
    }
    c->u = u;
    u->conn = c;
    u->reused = 1;
    send_request(u);
}

static void on_upstream_dispose(void *p)
{
    upstream_t *u = p;

    end_capture(u, 0);
    release_conn(u, 0);
    end_exchange(u, u->head_done ? u->head_outcome : CPH_OUTCOME_ABANDONED); /* before the head: the client left */
    h2o_buffer_dispose(&u->body);
    h2o_doublebuffer_dispose(&u->sending);
}

/* Method and authority end up in the request head: refuse anything that could split it. */
static int head_safe(h2o_iovec_t v)
{
    for (size_t i = 0; i != v.len; ++i)
        if ((unsigned char)v.base[i] < 0x20 || v.base[i] == 0x7f)
            return 0;
    return 1;
}

static upstream_t *new_upstream(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    upstream_t *u = h2o_mem_alloc_shared(&req->pool, sizeof(*u), on_upstream_dispose);

    memset(u, 0, sizeof(*u));
    u->super.proceed = do_proceed;
    u->super.stop = do_stop;
    u->r = r;
    u->pw = r->worker->proxy;
    u->timer.cb = on_timeout;
    u->total_timer.cb = on_total_timeout;
    u->bufs[1] = req->entity.base != NULL ? req->entity : h2o_iovec_init(NULL, 0);
    u->is_head = cph_method_from(req->input.method.base, req->input.method.len) == CPH_METHOD_HEAD;
    h2o_buffer_init(&u->body, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&u->sending, &h2o_socket_buffer_prototype);
    return u;
}

int cph_proxy_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    const cph_service_t *svc = r->route->service;
    upstream_t *u;

    if (svc->credentials != NULL && svc->credentials->error != NULL) { /* never reach the upstream without them */
        cph_respond_error_r(r, 503, CPH_CREDENTIALS_UNAVAILABLE_CODE, CPH_CREDENTIALS_UNAVAILABLE_MSG);
        return CPH_DONE;
    }
    if (svc->num_targets == 0) {
        cph_proxy_count_error(r, CPH_UPSTREAM_ERR_NO_TARGET);
        cph_respond_error_r(r, 503, "no_upstream", "The service has no upstream target");
        return CPH_DONE;
    }
    if (!head_safe(req->input.method) || !head_safe(req->input.authority) ||
        memchr(req->input.method.base, ' ', req->input.method.len)) {
        cph_respond_error_r(r, 400, "bad_request", "The request cannot be forwarded");
        return CPH_DONE;
    }
    u = new_upstream(r);
    if (cph_proxy_admit(r, &u->at) != 0)
        return CPH_DONE;
    if (cph_proxy_pick(r, &u->at, cph_proxy_now_ns()) != 0) {
        cph_proxy_count_error(r, CPH_UPSTREAM_ERR_NO_HEALTHY);
        end_exchange(u, CPH_OUTCOME_ABANDONED);
        cph_respond_error_r(r, 503, "no_healthy_upstream", "No target of the service can take the request");
        return CPH_DONE;
    }
    if (r->route->total_timeout_ms != 0)
        h2o_timeout_link(u->pw->worker->ctx.loop, &cph_proxy_timeout_ctx(u->pw, r->route->total_timeout_ms)->timeout,
                         &u->total_timer);
    start_attempt(u);
    return CPH_DONE;
}
