/*
 * server: workers, listeners, snapshot swaps and the graceful drain.
 *
 * One h2o_globalconf_t holds one host ("default", any port) with one catch-all path "/". Its first handler only
 * counts the request (it declines, so h2o moves on), its second is the pipeline (core/pipeline.c): h2o's own path
 * registration is first-match and cannot be swapped, so routing lives in the snapshot.
 *
 * Each worker thread runs its own h2o_evloop_t and h2o_context_t and accepts on its own SO_REUSEPORT sockets: the
 * kernel balances connections, no accept lock, and the drain is a per-thread close. The control thread talks to a
 * worker only through h2o_multithread messages (swap, drain, stop); a worker answers with cph_worker_note_t.
 *
 * Drain: h2o 2.2.5 sends GOAWAY to h2 connections on h2o_context_request_shutdown() and stops keep-alive for h1
 * after the current response, but leaves idle h1 connections open. So every accepted socket is tracked here (its
 * on_close hook), every request counted per connection, and idle HTTP/1 sockets are shut down; a worker reports
 * CPH_NOTE_DRAINED when its last connection has closed.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto/log.h"
#include "dataplane/core/balance.h"
#include "dataplane/core/connlimit.h"
#include "dataplane/core/h2guard.h"
#include "dataplane/core/respond.h"
#include "dataplane/core/pipeline.h"
#include "dataplane/core/redis.h"
#include "dataplane/core/server.h"
#include "dataplane/core/websocket.h"
#include "dataplane/compile/edge.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/core/server"

#define MAX_REQUEST_ENTITY (64 * 1024 * 1024) /* 413 above */
#define HTTP1_REQ_TIMEOUT_MS 10000            /* request headers and keep-alive idle */
#define HTTP2_IDLE_TIMEOUT_MS 10000
#define PROXY_IO_TIMEOUT_MS 60000 /* default only: never 0, which fails every request */

typedef struct st_cph_listener_t {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    h2o_accept_ctx_t accept_ctx;
} cph_listener_t;

typedef struct st_cph_conn_track_t {
    h2o_linklist_t link;
    cph_worker_t *worker;
    h2o_socket_t *sock; /* NULL once closed */
    size_t inflight;
    int is_h2;
    cph_conn_protocol_t proto; /* its slot of stats->connections_open (metrics) */
    cph_h2guard_t h2;          /* HTTP/2: the stream-reset budget (core/h2guard.h), attached at its first request */
    int ip_counted;            /* counted in the server's per-address table under ip_key */
    cph_connlimit_key_t ip_key;
} cph_conn_track_t;

typedef struct st_cph_swap_msg_t {
    h2o_multithread_message_t super;
    cph_snapshot_t *snap;
} cph_swap_msg_t;

typedef enum en_cph_signal_kind_t { SIGNAL_DRAIN = 0, SIGNAL_STOP = 1, SIGNAL_ABANDON = 2 } cph_signal_kind_t;

typedef struct st_cph_signal_msg_t {
    h2o_multithread_message_t super;
    cph_signal_kind_t kind;
} cph_signal_msg_t;

/* ---------------------------------------------------------------- addresses and sockets */

int cph_server_parse_addr(const char *hostport, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[256];
    const char *colon = strrchr(hostport, ':'), *h = hostport;
    size_t hlen;
    char *end;

    if (colon == NULL || colon[1] == '\0')
        return -1;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return -1;
    hlen = (size_t)(colon - hostport);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    memset(addr, 0, sizeof(*addr));
    struct sockaddr_in *sin = (void *)addr;
    struct sockaddr_in6 *sin6 = (void *)addr;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
    } else {
        return -1;
    }
    return 0;
}

int cph_server_listen_fd(const char *hostport, int reuseport, cph_error_t *err)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int fd, on = 1;

    if (cph_server_parse_addr(hostport, &addr, &len) != 0) {
        cph_error_set(err, "invalid", "", "bad listen address '%s' (want HOST:PORT, HOST numeric)", hostport);
        return -1;
    }
    if ((fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
        goto Error;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
        goto Error;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
        goto Error;
    if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, SOMAXCONN) != 0)
        goto Error;
    return fd;
Error:
    cph_error_set(err, "listen_failed", "", "cannot listen on %s: %s", hostport, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

/*
 * SO_REUSEPORT would let a second data plane started by mistake on the same port silently share its traffic. A
 * listening socket without SO_REUSEPORT fails with EADDRINUSE if anyone holds the port, reuseport or not; it is closed
 * right away, before the workers' sockets bind.
 */
static int probe_exclusive(const char *hostport, cph_error_t *err)
{
    int fd = cph_server_listen_fd(hostport, 0, err);

    if (fd == -1)
        return -1;
    close(fd);
    return 0;
}

static SSL_CTX *load_ssl_ctx(const char *cert, const char *key, cph_error_t *err)
{
    SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_server_method());

    if (ssl_ctx == NULL)
        cph_fatal(MODULE, "SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* an idle connection (a websocket tunnel, a keep-alive client) gives its read buffer back, as nginx does */
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (cert == NULL || key == NULL || SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl_ctx) != 1) {
        cph_error_set(err, "tls", "", "cannot load the TLS certificate/key (--tls-cert %s, --tls-key %s)",
                      cert != NULL ? cert : "(unset)", key != NULL ? key : "(unset)");
        SSL_CTX_free(ssl_ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ssl_ctx, h2o_http2_alpn_protocols);
    return ssl_ctx;
}

/* ---------------------------------------------------------------- connection and request tracking */

static void track_maybe_free(cph_conn_track_t *t)
{
    if (t->sock == NULL && t->inflight == 0)
        free(t);
}

static void maybe_report_drained(cph_worker_t *w)
{
    if (!w->draining || w->drained_sent || w->num_conns != 0)
        return;
    w->drained_sent = 1;
    cph_worker_note_t *note = calloc(1, sizeof(*note));
    if (note == NULL)
        cph_fatal(MODULE, "out of memory");
    note->kind = CPH_NOTE_DRAINED;
    note->worker_id = w->id;
    h2o_multithread_send_message(w->server->notify, &note->super);
}

static void on_conn_close(void *data)
{
    cph_conn_track_t *t = data;
    cph_worker_t *w = t->worker;

    h2o_linklist_unlink(&t->link);
    t->sock = NULL;
    if (t->ip_counted)
        cph_connlimit_release(w->server->connlimit, &t->ip_key);
    w->num_conns--;
    cph_counter_add(&w->stats->connections_open[t->proto], (uint64_t)-1); /* a gauge: modulo 2^64 */
    track_maybe_free(t);
    maybe_report_drained(w);
}

static void shutdown_if_idle_h1(cph_conn_track_t *t)
{
    if (t->sock != NULL && t->inflight == 0 && !t->is_h2)
        shutdown(h2o_socket_get_fd(t->sock), SHUT_RDWR); /* h2o reads EOF and closes the connection itself */
}

typedef struct st_cph_req_track_t {
    cph_conn_track_t *conn;
    cph_worker_t *worker;
    h2o_req_t *req;
    h2o_buffer_t *parked_input; /* see keep_polled_begin; NULL when not parked */
} cph_req_track_t;

/*
 * Keeping an HTTP/1 socket registered with epoll while its request runs.
 *
 * h2o 2.2.5's HTTP/1 server stops reading a connection while a request is handled and starts again after the
 * response: for a proxied request those are two loop iterations apart, so its evloop removes the socket from epoll
 * and adds it back, two epoll_ctl calls per request (a tenth of a proxied request's syscalls; nginx has none). h2o
 * stops reading because the h2o_req_t points into sock->input, which a read could move. So, while the request
 * runs, the request's bytes are parked aside, the socket gets an empty input buffer and a read callback that only
 * stops reading (anything the client sends early, or its close, waits in that buffer or in the kernel, exactly as
 * when h2o is not reading). At request dispose - h2o disposes the request right before it resumes reading or closes
 * the socket, in the same call - the parked buffer comes back with anything read meanwhile appended, and reading is
 * stopped again: h2o finds the state it left, and its read_start in the same loop iteration costs no syscall.
 * Plain HTTP/1 only (TLS reads through its own buffers; HTTP/2 never stops reading).
 */
#if H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2
#error "keep_polled_begin/end rely on h2o 2.2's lib/http1.c disposing the request before it consumes sock->input: re-check"
#endif
static void on_read_while_busy(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_socket_read_stop(sock); /* one event is enough: the rest waits, as it would have */
}

static void keep_polled_begin(cph_req_track_t *rt, h2o_req_t *req, h2o_socket_t *sock)
{
    if (rt->conn == NULL || req->version >= 0x200 || sock->ssl != NULL || h2o_socket_is_reading(sock))
        return;
    rt->parked_input = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_socket_read_start(sock, on_read_while_busy);
}

static void keep_polled_end(cph_req_track_t *rt)
{
    h2o_socket_t *sock = rt->conn->sock; /* NULL once closed: then the parked buffer is ours to free */

    if (sock == NULL) {
        h2o_buffer_dispose(&rt->parked_input);
        return;
    }
    if (sock->_cb.read == on_read_while_busy) /* still ours: give h2o back the stopped socket it left */
        h2o_socket_read_stop(sock);
    if (sock->input->size != 0) {
        h2o_iovec_t dst = h2o_buffer_reserve(&rt->parked_input, sock->input->size);
        if (dst.base == NULL)
            cph_fatal(MODULE, "out of memory");
        memcpy(dst.base, sock->input->bytes, sock->input->size);
        rt->parked_input->size += sock->input->size;
    }
    h2o_buffer_dispose(&sock->input);
    sock->input = rt->parked_input;
    rt->parked_input = NULL;
}

/* ---------------------------------------------------------------- HTTP/2 stream-reset budget (core/h2guard.h) */

/* h2o's parser state of every guarded connection: finds the connection's guard through its socket. */
static ssize_t guarded_expect(h2o_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    cph_conn_track_t *t = conn->callbacks->get_socket(conn)->on_close.data; /* set at accept, kept until the close */
    cph_h2guard_t *g = &t->h2;
    uint32_t resets = g->resets;
    int tripped = g->tripped;
    ssize_t ret = cph_h2guard_expect(g, conn, guarded_expect, src, len, err_desc);

    if (g->resets != resets)
        cph_counter_add(&t->worker->stats->http2_resets_received, 1);
    if (g->tripped && !tripped) {
        cph_counter_add(&t->worker->stats->http2_connections_calmed, 1);
        cph_log_warn(MODULE,
                     "HTTP/2 connection closed with ENHANCE_YOUR_CALM: %u of %u streams reset by the client, %u "
                     "ended without a response",
                     g->resets, g->streams, g->abandoned);
    }
    return ret;
}

/*
 * An HTTP/2 request: guards its connection, and answers it at once when its own RST_STREAM is already read - no
 * stage (authentication, rate limits, the upstream) runs for a stream the client has given up. Returns 1 then.
 */
static int h2_stream_guarded(cph_req_track_t *rt, h2o_req_t *req, h2o_socket_t *sock)
{
    static int warned;
    cph_h2guard_t *g = &rt->conn->h2;

    if (g->inner == NULL && cph_h2guard_attach(g, req->conn, sock, guarded_expect) != 0 && !warned) {
        warned = 1; /* once per process: the layout check failed, so this h2o is not the one h2guard.c was built for */
        cph_log_error(MODULE, "HTTP/2 stream-reset guard unavailable: unexpected h2o connection layout");
    }
    if (!cph_h2guard_reset_queued(g, req, sock))
        return 0;
    cph_counter_add(&rt->worker->stats->http2_resets_before_dispatch, 1);
    cph_respond_error(req, 400, "stream_reset", "The client reset the stream");
    return 1;
}

static void on_req_dispose(void *p)
{
    cph_req_track_t *rt = p;

    if (rt->parked_input != NULL)
        keep_polled_end(rt);
    rt->worker->inflight--;
    if (rt->conn != NULL) {
        if (rt->conn->h2.inner != NULL && rt->req->version >= 0x200)
            cph_h2guard_stream_end(&rt->conn->h2, rt->req->res.status != 0);
        rt->conn->inflight--;
        if (rt->worker->draining)
            shutdown_if_idle_h1(rt->conn);
        track_maybe_free(rt->conn);
    }
}

/* First handler of the catch-all path: counts the request until its pool is cleared, then declines. */
static int on_req_track(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    cph_worker_t *w = cph_worker_from_ctx(req->conn->ctx);
    cph_req_track_t *rt = h2o_mem_alloc_shared(&req->pool, sizeof(*rt), on_req_dispose);
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;

    rt->worker = w;
    rt->req = req;
    rt->conn = sock != NULL && sock->on_close.cb == on_conn_close ? sock->on_close.data : NULL;
    rt->parked_input = NULL;
    w->inflight++;
    if (rt->conn != NULL) {
        rt->conn->inflight++;
        if (req->version >= 0x200)
            rt->conn->is_h2 = 1;
        cph_conn_protocol_t proto = req->version >= 0x200 ? CPH_CONN_HTTP2 : CPH_CONN_HTTP1;
        if (rt->conn->proto != proto) { /* its first request, or an h2c upgrade: move it in the gauges */
            cph_counter_add(&w->stats->connections_open[rt->conn->proto], (uint64_t)-1);
            cph_counter_add(&w->stats->connections_open[proto], 1);
            rt->conn->proto = proto;
        }
        if (req->version >= 0x200 && h2_stream_guarded(rt, req, sock))
            return 0;
        keep_polled_begin(rt, req, sock);
    }
    return -1;
}

/* gateway.connections.max_per_ip: 1 when sock's peer already has that many open (it is refused: closed at once). */
static int over_ip_cap(cph_worker_t *w, h2o_socket_t *sock, cph_connlimit_key_t *key, int *counted)
{
    uint32_t max = w->snap != NULL && w->snap->edge != NULL ? w->snap->edge->max_connections_per_ip : 0;
    struct sockaddr_storage ss;

    *counted = 0;
    if (max == 0 || h2o_socket_getpeername(sock, (struct sockaddr *)&ss) == 0)
        return 0;
    if (cph_connlimit_acquire(w->server->connlimit, (struct sockaddr *)&ss, max, key, counted) == 0)
        return 0;
    cph_counter_add(&w->stats->connections_refused_per_ip, 1);
    return 1;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    cph_listener_t *l = listener->data;
    cph_worker_t *w = cph_worker_from_ctx(l->accept_ctx.ctx);
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    /* a bounded batch per wake-up keeps one busy listener from starving the loop */
    for (int i = 0; i < 64 && (sock = h2o_evloop_socket_accept(listener)) != NULL; i++) {
        cph_connlimit_key_t key;
        int counted = 0;
        if (over_ip_cap(w, sock, &key, &counted)) {
            h2o_socket_close(sock);
            continue;
        }
        cph_conn_track_t *t = calloc(1, sizeof(*t));
        if (t == NULL)
            cph_fatal(MODULE, "out of memory");
        t->ip_counted = counted;
        t->ip_key = key;
        t->worker = w;
        t->sock = sock;
        h2o_linklist_insert(&w->conns, &t->link);
        w->num_conns++;
        cph_counter_add(&w->stats->connections_accepted, 1);
        cph_counter_add(&w->stats->connections_open[CPH_CONN_PENDING], 1); /* t->proto: calloc'd PENDING */
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = t;
        h2o_accept(&l->accept_ctx, sock);
    }
}

/* ---------------------------------------------------------------- worker thread */

static void close_listeners(cph_worker_t *w);

/* Runs on the worker thread after a clean stop: everything the thread built, in reverse order. */
static void worker_dispose(cph_worker_t *w)
{
    h2o_evloop_t *loop = w->ctx.loop;

    close_listeners(w);
    cph_websocket_worker_dispose(w);
    cph_proxy_worker_dispose(w);
    cph_redis_worker_dispose(w);
    cph_balance_worker_free(w->balance);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->swap_receiver);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->signal_receiver);
    /* the drain can end before h2o's one-second GOAWAY resend fires; h2o_context_dispose asserts on linked entries */
    if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&w->ctx);
    h2o_evloop_destroy(loop);
    if (w->snap != NULL)
        cph_snapshot_release(w->snap);
    w->snap = NULL;
}

static void add_listener(cph_worker_t *w, int fd, SSL_CTX *ssl_ctx)
{
    cph_listener_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        cph_fatal(MODULE, "out of memory");
    l->accept_ctx.ctx = &w->ctx;
    l->accept_ctx.hosts = w->server->globalconf.hosts;
    l->accept_ctx.ssl_ctx = ssl_ctx;
    l->sock = h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    h2o_linklist_insert(&w->listeners, &l->link);
    h2o_socket_read_start(l->sock, on_accept);
}

static void close_listeners(cph_worker_t *w)
{
    while (!h2o_linklist_is_empty(&w->listeners)) {
        cph_listener_t *l = H2O_STRUCT_FROM_MEMBER(cph_listener_t, link, w->listeners.next);
        h2o_linklist_unlink(&l->link);
        h2o_socket_read_stop(l->sock);
        h2o_socket_close(l->sock);
        free(l);
    }
}

static void on_swap(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    cph_worker_t *w = H2O_STRUCT_FROM_MEMBER(cph_worker_t, swap_receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        cph_swap_msg_t *msg = H2O_STRUCT_FROM_MEMBER(cph_swap_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        cph_snapshot_t *old = w->snap;
        w->snap = msg->snap; /* the reference taken for this worker by cph_server_publish() */
        cph_websocket_on_swap(w, w->snap);
        if (old != NULL)
            cph_snapshot_release(old);
        cph_worker_note_t *note = calloc(1, sizeof(*note));
        if (note == NULL)
            cph_fatal(MODULE, "out of memory");
        note->kind = CPH_NOTE_SWAPPED;
        note->worker_id = w->id;
        note->snap = msg->snap;
        h2o_multithread_send_message(w->server->notify, &note->super);
        free(msg);
    }
}

static void start_drain(cph_worker_t *w)
{
    h2o_linklist_t *node, *next;

    if (w->draining)
        return;
    w->draining = 1;
    close_listeners(w);
    h2o_context_request_shutdown(&w->ctx);
    cph_websocket_drain(w);
    for (node = w->conns.next; node != &w->conns; node = next) {
        next = node->next;
        shutdown_if_idle_h1(H2O_STRUCT_FROM_MEMBER(cph_conn_track_t, link, node));
    }
    maybe_report_drained(w);
}

static void on_signal(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    cph_worker_t *w = H2O_STRUCT_FROM_MEMBER(cph_worker_t, signal_receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        cph_signal_msg_t *msg = H2O_STRUCT_FROM_MEMBER(cph_signal_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->kind == SIGNAL_DRAIN)
            start_drain(w);
        else
            w->stop = msg->kind;
        free(msg);
    }
}

static void *worker_main(void *arg)
{
    cph_worker_t *w = arg;
    cph_server_t *s = w->server;

    h2o_context_init(&w->ctx, h2o_evloop_create(), &s->globalconf);
    h2o_multithread_register_receiver(w->ctx.queue, &w->swap_receiver, on_swap);
    h2o_multithread_register_receiver(w->ctx.queue, &w->signal_receiver, on_signal);
    w->balance = cph_balance_worker_new();
    cph_proxy_worker_init(w);
    cph_redis_worker_init(w);
    cph_websocket_worker_init(w);
    for (int i = 0; i < 2; i++)
        if (s->fds[w->id * 2 + i] != -1)
            add_listener(w, s->fds[w->id * 2 + i], i == 1 ? s->ssl_ctx : NULL);

    pthread_mutex_lock(&s->mutex);
    s->num_started++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mutex);

    while (!w->stop)
        h2o_evloop_run(w->ctx.loop, INT32_MAX);
    if (w->stop == SIGNAL_STOP)
        worker_dispose(w);
    return NULL;
}
/* ---------------------------------------------------------------- server */

static void init_globalconf(cph_server_t *s)
{
    h2o_config_init(&s->globalconf);
    /* no server_name: h2o's HTTP/1 writer would sprintf it into every response (a few percent of a proxied request's
     * instructions); our answers carry "server: cephalo" as an ordinary header (filter/proxy.c, core/respond.c) */
    s->globalconf.server_name = h2o_iovec_init(NULL, 0);
    s->globalconf.max_request_entity_size = MAX_REQUEST_ENTITY;
    s->globalconf.http1.req_timeout = HTTP1_REQ_TIMEOUT_MS;
    s->globalconf.http2.idle_timeout = HTTP2_IDLE_TIMEOUT_MS;
    s->globalconf.proxy.io_timeout = PROXY_IO_TIMEOUT_MS;
    s->globalconf.http2.graceful_shutdown_timeout = 0; /* our drain deadline bounds it */

    h2o_hostconf_t *host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *track = h2o_create_handler(path, sizeof(*track));
    track->on_req = on_req_track;
    cph_pipeline_register(path);
}

int cph_server_init(cph_server_t *s, const cph_server_config_t *config, h2o_multithread_receiver_t *notify, cph_error_t *err)
{
    memset(s, 0, sizeof(*s));
    s->config = *config;
    s->notify = notify;
    s->num_workers = config->num_workers != 0 ? config->num_workers : 1;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->connlimit = cph_connlimit_new();
    if ((s->fds = malloc(sizeof(*s->fds) * 2 * s->num_workers)) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (unsigned i = 0; i < 2 * s->num_workers; i++)
        s->fds[i] = -1;
    if (config->listen_tls != NULL && (s->ssl_ctx = load_ssl_ctx(config->tls_cert, config->tls_key, err)) == NULL)
        goto Error;
    if (probe_exclusive(config->listen, err) != 0 || (config->listen_tls != NULL && probe_exclusive(config->listen_tls, err) != 0))
        goto Error;
    for (unsigned i = 0; i < s->num_workers; i++) {
        if ((s->fds[i * 2] = cph_server_listen_fd(config->listen, 1, err)) == -1)
            goto Error;
        if (config->listen_tls != NULL && (s->fds[i * 2 + 1] = cph_server_listen_fd(config->listen_tls, 1, err)) == -1)
            goto Error;
    }
    init_globalconf(s);
    if ((s->workers = calloc(s->num_workers, sizeof(*s->workers))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (unsigned i = 0; i < s->num_workers; i++) {
        cph_worker_t *w = &s->workers[i];
        w->id = i;
        w->server = s;
        h2o_linklist_init_anchor(&w->listeners);
        h2o_linklist_init_anchor(&w->conns);
        if ((w->stats = calloc(1, sizeof(*w->stats))) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    return 0;
Error:
    for (unsigned i = 0; i < 2 * s->num_workers; i++)
        if (s->fds[i] != -1)
            close(s->fds[i]);
    free(s->fds);
    s->fds = NULL;
    if (s->ssl_ctx != NULL)
        SSL_CTX_free(s->ssl_ctx);
    s->ssl_ctx = NULL;
    return -1;
}

void cph_server_start(cph_server_t *s, cph_snapshot_t *initial)
{
    for (unsigned i = 0; i < s->num_workers; i++) {
        if (initial != NULL) {
            cph_snapshot_retain(initial);
            s->workers[i].snap = initial;
        }
        h2o_multithread_create_thread(&s->workers[i].tid, NULL, worker_main, &s->workers[i]);
    }
    pthread_mutex_lock(&s->mutex);
    while (s->num_started < s->num_workers)
        pthread_cond_wait(&s->cond, &s->mutex);
    pthread_mutex_unlock(&s->mutex);
}

void cph_server_publish(cph_server_t *s, cph_snapshot_t *snap)
{
    /* h2o buffers a request body before our handler runs and checks this cap while reading (HTTP/1 Content-Length and
     * chunks, HTTP/2 DATA frames): the largest body any route of the snapshot accepts, so a bigger one is refused
     * before it is read; filter/edge.c then applies each route's own limit. Workers read it on every request. */
    if (snap->edge != NULL && snap->edge->max_body_any != 0)
        __atomic_store_n(&s->globalconf.max_request_entity_size, (size_t)snap->edge->max_body_any, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < s->num_workers; i++) {
        cph_swap_msg_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL)
            cph_fatal(MODULE, "out of memory");
        cph_snapshot_retain(snap);
        msg->snap = snap;
        h2o_multithread_send_message(&s->workers[i].swap_receiver, &msg->super);
    }
}

static void send_signal(cph_server_t *s, cph_signal_kind_t kind)
{
    for (unsigned i = 0; i < s->num_workers; i++) {
        cph_signal_msg_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL)
            cph_fatal(MODULE, "out of memory");
        msg->kind = kind;
        h2o_multithread_send_message(&s->workers[i].signal_receiver, &msg->super);
    }
}

void cph_server_drain(cph_server_t *s)
{
    send_signal(s, SIGNAL_DRAIN);
}

void cph_server_stop(cph_server_t *s, int force)
{
    send_signal(s, force ? SIGNAL_ABANDON : SIGNAL_STOP);
    for (unsigned i = 0; i < s->num_workers; i++)
        pthread_join(s->workers[i].tid, NULL);
}

void cph_server_dispose(cph_server_t *s)
{
    if (s->num_started == 0) /* never started: the listening sockets were not handed to any worker */
        for (unsigned i = 0; i < 2 * s->num_workers; i++)
            if (s->fds[i] != -1)
                close(s->fds[i]);
    for (unsigned i = 0; i < s->num_workers; i++)
        free(s->workers[i].stats);
    free(s->workers);
    free(s->fds);
    h2o_config_dispose(&s->globalconf);
    if (s->ssl_ctx != NULL)
        SSL_CTX_free(s->ssl_ctx);
    pthread_mutex_destroy(&s->mutex);
    pthread_cond_destroy(&s->cond);
    cph_connlimit_free(s->connlimit);
}
