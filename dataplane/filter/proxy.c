/*
 * filter/proxy: the terminal stage of a proxy route. It forwards the request to one target of the route's service
 * (round robin, weighted) over HTTP/1.1 with per-worker keep-alive pools, and streams the answer back.
 *
 * Built on h2o_http1client, the way h2o's own lib/core/proxy.c is, but with our own mapping of failures: h2o answers
 * every upstream failure 502, we answer 502 upstream_connect_failed when no connection could be made, 504
 * upstream_timeout when the service's timeout_ms expires before the response head, 502 bad_gateway for anything else
 * before the head, and once the head went out an error can only abort the response (the client sees a truncation);
 * http1client never returns such a connection to the pool.
 *
 * Per worker (struct st_cph_proxy_worker_t): socket pools indexed by the target's stable pool id (they outlive
 * snapshot swaps), one http1client context + h2o_timeout per distinct timeout_ms, and the round-robin positions
 * indexed by the service's metric id. All of it is touched only on the worker's thread.
 *
 * A pooled connection the upstream closed while idle fails the next request before any answer; such a request is
 * retried once on a fresh connection when it is idempotent, as nginx does.
 */
#include <assert.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "proto/log.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/proxy"
#define POOL_KEEPALIVE_MS 2000

typedef struct st_timeout_ctx_t {
    uint64_t ms;
    h2o_timeout_t timeout;
    h2o_http1client_ctx_t client_ctx;
} timeout_ctx_t;

struct st_cph_proxy_worker_t {
    cph_worker_t *worker;
    h2o_socketpool_t **pools; /* by pool id; NULL until first use */
    size_t num_pools;
    timeout_ctx_t **timeouts;
    size_t num_timeouts;
    uint32_t rr[CPH_STATS_MAX_SERVICES]; /* round-robin position by service metric id */
};

typedef struct st_upstream_t {
    h2o_generator_t super;
    cph_req_t *r;
    h2o_http1client_t *client;
    const cph_target_t *target;
    timeout_ctx_t *tctx;
    h2o_iovec_t bufs[2]; /* request head, body */
    int is_head;
    int reused;  /* the connection came from the pool */
    int retried; /* already retried once on a fresh connection */
    int had_body_error;
    h2o_doublebuffer_t sending;
    h2o_buffer_t *last_content_before_send;
} upstream_t;

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head);

/* ---------------------------------------------------------------- per-worker state */

void cph_proxy_worker_init(cph_worker_t *w)
{
    struct st_cph_proxy_worker_t *pw = h2o_mem_alloc(sizeof(*pw));

    memset(pw, 0, sizeof(*pw));
    pw->worker = w;
    w->proxy = pw;
}

void cph_proxy_worker_dispose(cph_worker_t *w)
{
    struct st_cph_proxy_worker_t *pw = w->proxy;

    if (pw == NULL)
        return;
    for (size_t i = 0; i != pw->num_pools; ++i) {
        if (pw->pools[i] != NULL) {
            h2o_socketpool_dispose(pw->pools[i]);
            free(pw->pools[i]);
        }
    }
    for (size_t i = 0; i != pw->num_timeouts; ++i) {
        h2o_timeout_dispose(w->ctx.loop, &pw->timeouts[i]->timeout);
        free(pw->timeouts[i]);
    }
    free(pw->pools);
    free(pw->timeouts);
    free(pw);
    w->proxy = NULL;
}

static h2o_socketpool_t *get_pool(struct st_cph_proxy_worker_t *pw, const cph_target_t *t)
{
    if (t->pool_id >= pw->num_pools) {
        size_t n = t->pool_id + 16;
        pw->pools = h2o_mem_realloc(pw->pools, sizeof(*pw->pools) * n);
        memset(pw->pools + pw->num_pools, 0, sizeof(*pw->pools) * (n - pw->num_pools));
        pw->num_pools = n;
    }
    if (pw->pools[t->pool_id] == NULL) {
        h2o_socketpool_t *pool = h2o_mem_alloc(sizeof(*pool));
        h2o_socketpool_init_by_hostport(pool, t->host, t->port, 0, SIZE_MAX);
        h2o_socketpool_set_timeout(pool, pw->worker->ctx.loop, POOL_KEEPALIVE_MS);
        pw->pools[t->pool_id] = pool;
    }
    return pw->pools[t->pool_id];
}

static timeout_ctx_t *get_timeout_ctx(struct st_cph_proxy_worker_t *pw, uint64_t ms)
{
    timeout_ctx_t *t;

    if (ms == 0)
        ms = 1; /* an io_timeout of 0 fails every request */
    for (size_t i = 0; i != pw->num_timeouts; ++i)
        if (pw->timeouts[i]->ms == ms)
            return pw->timeouts[i];
    t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->ms = ms;
    h2o_timeout_init(pw->worker->ctx.loop, &t->timeout, ms);
    t->client_ctx.loop = pw->worker->ctx.loop;
    t->client_ctx.getaddr_receiver = &pw->worker->ctx.receivers.hostinfo_getaddr;
    t->client_ctx.io_timeout = &t->timeout;
    pw->timeouts = h2o_mem_realloc(pw->timeouts, sizeof(*pw->timeouts) * (pw->num_timeouts + 1));
    pw->timeouts[pw->num_timeouts++] = t;
    return t;
}

/* Weighted round robin: position modulo the sum of weights, then the target owning that slot. */
static const cph_target_t *pick_target(struct st_cph_proxy_worker_t *pw, const cph_service_t *svc)
{
    uint32_t id = svc->metric_id < CPH_STATS_MAX_SERVICES ? svc->metric_id : 0;
    uint64_t total = 0, pos;

    for (size_t i = 0; i != svc->num_targets; ++i)
        total += svc->targets[i].weight;
    pos = pw->rr[id]++ % total;
    for (size_t i = 0; i != svc->num_targets; ++i) {
        if (pos < svc->targets[i].weight)
            return &svc->targets[i];
        pos -= svc->targets[i].weight;
    }
    return &svc->targets[0];
}

static void count_error(cph_req_t *r, cph_upstream_error_t kind)
{
    uint32_t id = r->route->service->metric_id;

    if (id >= CPH_STATS_MAX_SERVICES)
        id = 0;
    if (r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->upstream_errors[id][kind], 1);
}

/* ---------------------------------------------------------------- request */

static int name_is(const h2o_iovec_t *name, const char *lit)
{
    return h2o_lcstris(name->base, name->len, lit, strlen(lit));
}

/* Headers the upstream must not receive from the client: hop-by-hop (RFC 7230 6.1), those listed in Connection, and
 * the ones we write ourselves. */
static int drop_request_header(const h2o_header_t *h, h2o_iovec_t connection)
{
    static const char *const drop[] = {"connection",
                                       "keep-alive",
                                       "proxy-connection",
                                       "te",
                                       "trailer",
                                       "upgrade",
                                       "transfer-encoding",
                                       "host",
                                       "content-length",
                                       "expect",
                                       "http2-settings",
                                       "x-forwarded-for",
                                       "x-forwarded-proto",
                                       "x-forwarded-host",
                                       "cookie"};
    for (size_t i = 0; i != sizeof(drop) / sizeof(drop[0]); ++i)
        if (name_is(h->name, drop[i]))
            return 1;
    if (connection.len != 0 && h2o_contains_token(connection.base, connection.len, h->name->base, h->name->len, ','))
        return 1;
    /* never forward a byte that could split the header block */
    return memchr(h->value.base, '\n', h->value.len) != NULL || memchr(h->value.base, '\r', h->value.len) != NULL;
}

/* Every value of the header name, joined with sep (a list header may be split over several lines; HTTP/2 sends one
 * cookie per line, which an HTTP/1.1 upstream must receive as one). */
static h2o_iovec_t join_headers(h2o_mem_pool_t *pool, const h2o_headers_t *headers, const char *name, const char *sep)
{
    h2o_iovec_t out = h2o_iovec_init(NULL, 0);

    for (size_t i = 0; i != headers->size; ++i) {
        h2o_iovec_t v = headers->entries[i].value;
        if (!name_is(headers->entries[i].name, name) || memchr(v.base, '\n', v.len) != NULL || memchr(v.base, '\r', v.len) != NULL)
            continue;
        out = out.base == NULL ? v : h2o_concat(pool, out, h2o_iovec_init(sep, strlen(sep)), v);
    }
    return out;
}

static h2o_iovec_t peer_address(h2o_req_t *req, char *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (void *)&ss);
    size_t n = len != 0 ? h2o_socket_getnumerichost((void *)&ss, len, buf) : SIZE_MAX;

    return n != SIZE_MAX ? h2o_iovec_init(buf, n) : h2o_iovec_init(H2O_STRLIT("unknown"));
}

#define APPEND(s, n) (memcpy(p, (s), (n)), p += (n))
#define APPEND_LIT(s) APPEND(s, sizeof(s) - 1)

/* The request head: method, upstream path, the client's end-to-end headers, Host and X-Forwarded-*. */
static h2o_iovec_t build_head(cph_req_t *r, const cph_target_t *target)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t conn = join_headers(&req->pool, &req->headers, "connection", ","),
                xff = join_headers(&req->pool, &req->headers, "x-forwarded-for", ", "),
                cookie = join_headers(&req->pool, &req->headers, "cookie", "; ");
    char peerbuf[NI_MAXHOST], lenbuf[32];
    h2o_iovec_t peer = peer_address(req, peerbuf), scheme = req->input.scheme->name;
    int has_body = req->entity.base != NULL || cph_method_from(req->input.method.base, req->input.method.len) &
                                                   (CPH_METHOD_POST | CPH_METHOD_PUT | CPH_METHOD_PATCH);
    size_t lenlen = has_body ? (size_t)snprintf(lenbuf, sizeof(lenbuf), "%zu", req->entity.len) : 0;
    size_t cap = req->input.method.len + r->upstream_path.len + target->authority.len + xff.len + peer.len + scheme.len +
                 req->input.authority.len + lenlen + 256;

    for (size_t i = 0; i != req->headers.size; ++i)
        cap += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    char *buf = h2o_mem_alloc_pool(&req->pool, cap), *p = buf;
    APPEND(req->input.method.base, req->input.method.len);
    APPEND_LIT(" ");
    APPEND(r->upstream_path.base, r->upstream_path.len);
    APPEND_LIT(" HTTP/1.1\r\nhost: ");
    APPEND(target->authority.base, target->authority.len);
    APPEND_LIT("\r\nconnection: keep-alive\r\n");
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (drop_request_header(h, conn))
            continue;
        APPEND(h->name->base, h->name->len);
        APPEND_LIT(": ");
        APPEND(h->value.base, h->value.len);
        APPEND_LIT("\r\n");
    }
    if (cookie.len != 0) {
        APPEND_LIT("cookie: ");
        APPEND(cookie.base, cookie.len);
        APPEND_LIT("\r\n");
    }
    if (has_body) {
        APPEND_LIT("content-length: ");
        APPEND(lenbuf, lenlen);
        APPEND_LIT("\r\n");
    }
    APPEND_LIT("x-forwarded-for: ");
    if (xff.len != 0) {
        APPEND(xff.base, xff.len);
        APPEND_LIT(", ");
    }
    APPEND(peer.base, peer.len);
    APPEND_LIT("\r\nx-forwarded-proto: ");
    APPEND(scheme.base, scheme.len);
    APPEND_LIT("\r\nx-forwarded-host: ");
    APPEND(req->input.authority.base, req->input.authority.len);
    APPEND_LIT("\r\n\r\n");
    assert((size_t)(p - buf) <= cap);
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

#undef APPEND
#undef APPEND_LIT

/* ---------------------------------------------------------------- response */

static void fail_before_head(upstream_t *u, int status, const char *code, const char *message, cph_upstream_error_t kind)
{
    cph_log_warn(MODULE, "upstream %s of service %s: %s", u->target->authority.base, u->r->route->service->name, code);
    count_error(u->r, kind);
    cph_respond_error(u->r->req, status, code, message);
}

static int drop_response_header(const h2o_header_t *h, h2o_iovec_t connection)
{
    static const char *const drop[] = {"connection", "keep-alive",     "proxy-connection",
                                       "te",         "trailer",        "transfer-encoding",
                                       "upgrade",    "content-length", "date" /* h2o writes its own */,
                                       "server" /* ours is "cephalo" */};
    for (size_t i = 0; i != sizeof(drop) / sizeof(drop[0]); ++i)
        if (name_is(h->name, drop[i]))
            return 1;
    return connection.len != 0 && h2o_contains_token(connection.base, connection.len, h->name->base, h->name->len, ',');
}

static void do_send(upstream_t *u)
{
    h2o_iovec_t vec;
    h2o_send_state_t state;

    assert(u->sending.bytes_inflight == 0);
    vec = h2o_doublebuffer_prepare(&u->sending, u->client != NULL ? &u->client->sock->input : &u->last_content_before_send,
                                   u->r->req->preferred_chunk_size);
    if (u->client == NULL && vec.len == u->sending.buf->size && u->last_content_before_send->size == 0) {
        state = u->had_body_error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    } else {
        if (vec.len == 0)
            return;
        state = H2O_SEND_STATE_IN_PROGRESS;
    }
    h2o_send(u->r->req, &vec, vec.len != 0 ? 1 : 0, state);
}

static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    upstream_t *u = (upstream_t *)generator;

    (void)req;
    h2o_doublebuffer_consume(&u->sending);
    do_send(u);
}

static void do_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    upstream_t *u = (upstream_t *)generator;

    (void)req;
    if (u->client != NULL) {
        h2o_http1client_cancel(u->client); /* never back to the pool */
        u->client = NULL;
    }
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    upstream_t *u = client->data;

    if (errstr != NULL) {
        /* the client frees itself after this callback: keep what it read */
        u->last_content_before_send = client->sock->input;
        h2o_buffer_init(&client->sock->input, &h2o_socket_buffer_prototype);
        u->client = NULL;
        if (errstr != h2o_http1client_error_is_eos) {
            int timeout = strcmp(errstr, "I/O timeout") == 0;
            cph_log_warn(MODULE, "upstream %s of service %s: %s after the response head", u->target->authority.base,
                         u->r->route->service->name, errstr);
            count_error(u->r, timeout ? CPH_UPSTREAM_ERR_TIMEOUT : CPH_UPSTREAM_ERR_PROTOCOL);
            u->had_body_error = 1;
        }
    }
    if (u->sending.bytes_inflight == 0)
        do_send(u);
    return 0;
}

/* Copies status and end-to-end headers into the response; -1 on a malformed Content-Length. */
static int copy_head(h2o_req_t *req, int status, h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers)
{
    h2o_iovec_t conn = h2o_iovec_init(NULL, 0);

    for (size_t i = 0; i != num_headers; ++i)
        if (name_is(headers[i].name, "connection"))
            conn = headers[i].value;
    req->res.status = status;
    req->res.reason = h2o_strdup(&req->pool, msg.base, msg.len).base;
    for (size_t i = 0; i != num_headers; ++i) {
        const h2o_header_t *h = &headers[i];
        if (name_is(h->name, "content-length")) {
            size_t len = h2o_strtosize(h->value.base, h->value.len);
            if (len == SIZE_MAX || (req->res.content_length != SIZE_MAX && req->res.content_length != len))
                return -1;
            req->res.content_length = len;
            continue;
        }
        if (drop_response_header(h, conn))
            continue;
        h2o_iovec_t name = h2o_strdup(&req->pool, h->name->base, h->name->len);
        h2o_iovec_t value = h2o_strdup(&req->pool, h->value.base, h->value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, h->orig_name, value.base, value.len);
    }
    return 0;
}

/* ---------------------------------------------------------------- upstream exchange */

/* A pooled connection that failed before any answer was most likely closed by the upstream while idle. */
static int should_retry(upstream_t *u, const char *errstr)
{
    uint32_t idempotent =
        CPH_METHOD_GET | CPH_METHOD_HEAD | CPH_METHOD_PUT | CPH_METHOD_DELETE | CPH_METHOD_OPTIONS | CPH_METHOD_TRACE;
    h2o_req_t *req = u->r->req;

    if (!u->reused || u->retried || strcmp(errstr, "I/O timeout") == 0)
        return 0;
    return (cph_method_from(req->input.method.base, req->input.method.len) & idempotent) != 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    upstream_t *u = client->data;
    h2o_req_t *req = u->r->req;

    (void)minor_version, (void)rlen;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        u->client = NULL;
        if (should_retry(u, errstr)) {
            u->retried = 1;
            u->reused = 0;
            h2o_http1client_connect(&u->client, u, &u->tctx->client_ctx, u->target->host, u->target->port, 0, on_connect);
        } else if (strcmp(errstr, "I/O timeout") == 0) {
            fail_before_head(u, 504, "upstream_timeout", "The upstream did not answer in time", CPH_UPSTREAM_ERR_TIMEOUT);
        } else {
            fail_before_head(u, 502, "bad_gateway", "The upstream failed to answer", CPH_UPSTREAM_ERR_PROTOCOL);
        }
        return NULL;
    }
    if (status == 101 || copy_head(req, status, msg, headers, num_headers) != 0) {
        u->client = NULL;
        req->res = (h2o_res_t){.content_length = SIZE_MAX};
        fail_before_head(u, 502, "bad_gateway", "The upstream sent an invalid response", CPH_UPSTREAM_ERR_PROTOCOL);
        return NULL;
    }
    h2o_start_response(req, &u->super);
    if (errstr == h2o_http1client_error_is_eos) {
        u->client = NULL;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    upstream_t *u = client->data;

    if (errstr != NULL) {
        u->client = NULL;
        if (strcmp(errstr, "connection timeout") == 0)
            fail_before_head(u, 504, "upstream_timeout", "The upstream did not accept the connection in time",
                             CPH_UPSTREAM_ERR_TIMEOUT);
        else
            fail_before_head(u, 502, "upstream_connect_failed", "The gateway could not connect to the upstream",
                             CPH_UPSTREAM_ERR_CONNECT);
        return NULL;
    }
    /* a socket handed out by the pool has carried an earlier request */
    u->reused = client->sock != NULL && client->sock->bytes_written != 0;
    *reqbufs = u->bufs;
    *reqbufcnt = u->bufs[1].len != 0 ? 2 : 1;
    *method_is_head = u->is_head;
    return on_head;
}

static void on_upstream_dispose(void *p)
{
    upstream_t *u = p;

    if (u->client != NULL) {
        h2o_http1client_cancel(u->client);
        u->client = NULL;
    }
    h2o_buffer_dispose(&u->last_content_before_send);
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

int cph_proxy_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    const cph_service_t *svc = r->route->service;
    struct st_cph_proxy_worker_t *pw = r->worker->proxy;

    if (svc->num_targets == 0) {
        count_error(r, CPH_UPSTREAM_ERR_NO_TARGET);
        cph_respond_error(req, 503, "no_upstream", "The service has no upstream target");
        return CPH_DONE;
    }
    if (!head_safe(req->input.method) || !head_safe(req->input.authority) ||
        memchr(req->input.method.base, ' ', req->input.method.len)) {
        cph_respond_error(req, 400, "bad_request", "The request cannot be forwarded");
        return CPH_DONE;
    }
    upstream_t *u = h2o_mem_alloc_shared(&req->pool, sizeof(*u), on_upstream_dispose);
    memset(u, 0, sizeof(*u));
    u->super.proceed = do_proceed;
    u->super.stop = do_stop;
    u->r = r;
    u->target = pick_target(pw, svc);
    u->tctx = get_timeout_ctx(pw, svc->timeout_ms);
    u->bufs[0] = build_head(r, u->target);
    u->bufs[1] = req->entity.base != NULL ? req->entity : h2o_iovec_init(NULL, 0);
    u->is_head = cph_method_from(req->input.method.base, req->input.method.len) == CPH_METHOD_HEAD;
    h2o_buffer_init(&u->last_content_before_send, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&u->sending, &h2o_socket_buffer_prototype);
    h2o_http1client_connect_with_pool(&u->client, u, &u->tctx->client_ctx, get_pool(pw, u->target), on_connect);
    return CPH_DONE;
}
