/*
 * filter/websocket: the websocket handshake of a route with policies.websocket (docs/dataplane.md "Websockets"). It
 * runs after ratelimit, so the request is authenticated, authorized and counted before anything is upgraded.
 *
 * A request is a handshake when it is an HTTP/1.1 GET whose Connection lists "upgrade" and whose Upgrade lists
 * "websocket" (h2o keeps Upgrade only with Connection: upgrade; without it the request is ordinary HTTP, as is any
 * other method or version, and any request on a route without the policy: the proxy drops Upgrade). HTTP/2 has no
 * upgrade in h2o 2.2.5 (no RFC 8441 extended CONNECT): such requests proceed as ordinary HTTP.
 *
 * Checks, in order: Sec-WebSocket-Key (the base64 of 16 bytes) and Sec-WebSocket-Version present, else 400;
 * version other than 13: 426 with Sec-WebSocket-Version: 13 (RFC 6455 4.4); Origin not listed: 403
 * origin_not_allowed (absent Origin passes: only browsers send it, and they always do); draining: 503 shutting_down;
 * the service's credentials not resolved by the control plane: 503 credentials_unavailable; the route's per-client
 * cap: 429 too_many_websockets; service admission: 503 upstream_overloaded; no target: 503 no_healthy_upstream. Then
 * the upstream gets the request head the proxy would send (proxy_head.c, the service's credential headers included)
 * with "connection: upgrade" and "upgrade: websocket", within the route's connect and first-byte timeouts (504
 * upstream_timeout, 502 upstream_connect_failed). Its answer:
 *   - 101 with Upgrade: websocket and the right Sec-WebSocket-Accept: the client gets 101 with the upstream's headers
 *     (hop-by-hop ones dropped) and core/websocket.c takes both sockets over;
 *   - 101 otherwise, a malformed or truncated head: 502 websocket_upgrade_failed;
 *   - any other complete response with a body of at most RELAY_MAX bytes: relayed as it is (status, headers, body);
 *     a longer or unterminated one: 502 websocket_upgrade_failed.
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "proto/log.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/credentials.h"
#include "dataplane/core/h1resp.h"
#include "dataplane/core/respond.h"
#include "dataplane/core/websocket.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_balance.h"
#include "dataplane/filter/proxy_head.h"
#include <h2o/http1.h> /* after h2o_abi.h: h2o_http1_upgrade */

#define MODULE "dp/filter/websocket"
#define RELAY_MAX (64 * 1024) /* body of a non-101 answer relayed to the client */

typedef struct st_handshake_t {
    cph_req_t *r;
    cph_pick_t pick;
    int picked, admitted, connecting, relaying;
    h2o_socket_t *sock;
    h2o_hostinfo_getaddr_req_t *getaddr;
    h2o_timeout_entry_t timer;
    h2o_iovec_t head;
    char accept[CPH_WS_ACCEPT_LEN + 1];
    char client_key[64];
    size_t client_key_len; /* a per-client slot is held when non-zero */
    cph_h1resp_t resp;
    h2o_buffer_t *body; /* a relayed answer's decoded body */
} handshake_t;

/* ---------------------------------------------------------------- bookkeeping */

/* Gives back everything the handshake still holds; the outcome judges the picked target. */
static void release(handshake_t *hs, cph_outcome_t outcome)
{
    const cph_service_t *svc = hs->r->route->service;

    if (h2o_timeout_is_linked(&hs->timer))
        h2o_timeout_unlink(&hs->timer);
    if (hs->getaddr != NULL) {
        h2o_hostinfo_getaddr_cancel(hs->getaddr);
        hs->getaddr = NULL;
    }
    if (hs->sock != NULL) {
        h2o_socket_close(hs->sock);
        hs->sock = NULL;
    }
    if (hs->connecting) {
        cph_balance_connect_end(svc);
        hs->connecting = 0;
    }
    if (hs->picked) {
        cph_balance_end(svc, &hs->pick, outcome, cph_proxy_now_ns());
        hs->picked = 0;
    }
    if (hs->admitted) {
        cph_balance_release(svc);
        hs->admitted = 0;
    }
    if (hs->client_key_len != 0) {
        cph_ws_client_release(hs->r->route->metric_id, hs->client_key, hs->client_key_len);
        hs->client_key_len = 0;
    }
}

static void on_dispose(void *p)
{
    handshake_t *hs = p;

    release(hs, CPH_OUTCOME_ABANDONED);
    if (hs->body != NULL)
        h2o_buffer_dispose(&hs->body);
}

static void fail(handshake_t *hs, cph_outcome_t outcome, int status, const char *code, const char *message)
{
    cph_log_warn(MODULE, "websocket upstream %s of route %s: %s", hs->pick.target != NULL ? hs->pick.target->authority.base : "-",
                 hs->r->route->name, code);
    release(hs, outcome);
    if (hs->relaying) /* the relayed answer's head was copied already: the error replaces it */
        hs->r->req->res.headers = (h2o_headers_t){NULL, 0, 0};
    cph_respond_error_r(hs->r, status, code, message);
}

static void start_timer(handshake_t *hs, uint64_t ms)
{
    if (h2o_timeout_is_linked(&hs->timer))
        h2o_timeout_unlink(&hs->timer);
    h2o_timeout_link(hs->r->worker->ctx.loop, cph_ws_timeout(hs->r->worker, ms), &hs->timer);
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    handshake_t *hs = H2O_STRUCT_FROM_MEMBER(handshake_t, timer, entry);

    fail(hs, CPH_OUTCOME_TIMEOUT, 504, "upstream_timeout", "The upstream did not answer in time");
}

/* ---------------------------------------------------------------- the upstream's answer */

static void copy_headers(handshake_t *hs, const struct phr_header *headers, size_t num_headers)
{
    cph_proxy_add_response_headers(hs->r, headers, num_headers);
}

static const struct phr_header *find(const struct phr_header *headers, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i != n; ++i)
        if (cph_lc_eq(headers[i].name, headers[i].name_len, name, len))
            return &headers[i];
    return NULL;
}

/* The 101 checked: the tunnel gets both sockets, the client its 101. */
static void upgrade(handshake_t *hs, const struct phr_header *headers, size_t num_headers, size_t head_len)
{
    cph_req_t *r = hs->r;
    const struct phr_header *up = find(headers, num_headers, H2O_STRLIT("upgrade")),
                            *acc = find(headers, num_headers, H2O_STRLIT("sec-websocket-accept"));

    if (h2o_socket_is_writing(hs->sock) || up == NULL ||
        !h2o_contains_token(up->value, up->value_len, H2O_STRLIT("websocket"), ',') || acc == NULL ||
        acc->value_len != CPH_WS_ACCEPT_LEN || memcmp(acc->value, hs->accept, CPH_WS_ACCEPT_LEN) != 0) {
        fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream did not accept the websocket");
        return;
    }
    r->req->res.status = 101;
    r->req->res.reason = "Switching Protocols";
    copy_headers(hs, headers, num_headers);
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_buffer_consume(&hs->sock->input, head_len);
    h2o_socket_read_stop(hs->sock);
    h2o_timeout_unlink(&hs->timer);

    cph_ws_handoff_t handoff = {
        .upstream = hs->sock, .snap = r->snap, .route = r->route, .pick = hs->pick, .client_key_len = hs->client_key_len};
    memcpy(handoff.client_key, hs->client_key, hs->client_key_len);
    handoff.token_exp = r->principal.kind != CPH_PRINCIPAL_NONE ? r->principal.exp : 0;
    cph_snapshot_retain(r->snap);
    hs->sock = NULL, hs->picked = 0, hs->client_key_len = 0; /* the tunnel owns them now */
    release(hs, CPH_OUTCOME_SUCCESS);                        /* the connect slot and the admission */
    h2o_http1_upgrade(r->req, NULL, 0, cph_ws_tunnel_upgraded, cph_ws_tunnel_new(r->worker, &handoff));
}

static void on_relay_read(h2o_socket_t *sock, const char *err);

/* A non-101 answer: its body is collected (at most RELAY_MAX bytes), then sent as it is. */
static void relay_body(handshake_t *hs)
{
    h2o_socket_t *sock = hs->sock;
    size_t len = sock->input->size, extra;
    int rc = cph_h1resp_decode_body(&hs->resp, sock->input->bytes, &len, &extra);

    if (rc < 0 || hs->body->size + len > RELAY_MAX) {
        fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream refused the websocket unreadably");
        return;
    }
    if (len != 0) { /* an empty input has no bytes pointer (memcpy from NULL is undefined even for 0 bytes) */
        h2o_iovec_t dst = h2o_buffer_reserve(&hs->body, len);
        memcpy(dst.base, sock->input->bytes, len);
        hs->body->size += len;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    if (rc == 0) {
        h2o_socket_read_start(sock, on_relay_read);
        return;
    }
    release(hs, hs->resp.status >= 500 ? CPH_OUTCOME_5XX : CPH_OUTCOME_SUCCESS);
    hs->r->req->res.content_length = hs->body->size;
    h2o_send_inline(hs->r->req, hs->body->bytes, hs->body->size);
}

static void on_relay_read(h2o_socket_t *sock, const char *err)
{
    handshake_t *hs = sock->data;

    if (err != NULL) {
        if (err == h2o_socket_error_closed && cph_h1resp_eof_is_end(&hs->resp)) {
            release(hs, hs->resp.status >= 500 ? CPH_OUTCOME_5XX : CPH_OUTCOME_SUCCESS);
            hs->r->req->res.content_length = hs->body->size;
            h2o_send_inline(hs->r->req, hs->body->bytes, hs->body->size);
        } else {
            fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream's answer was cut short");
        }
        return;
    }
    relay_body(hs);
}

static void relay(handshake_t *hs)
{
    struct phr_header headers[CPH_H1RESP_MAX_HEADERS];
    size_t num_headers = CPH_H1RESP_MAX_HEADERS;
    h2o_socket_t *sock = hs->sock;
    int ret = cph_h1resp_parse_head(&hs->resp, sock->input->bytes, sock->input->size, 0, headers, &num_headers);

    if (ret < 0) {
        fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream sent an invalid response");
        return;
    }
    hs->r->req->res.status = hs->resp.status;
    hs->r->req->res.reason = h2o_strdup(&hs->r->req->pool, hs->resp.msg, hs->resp.msg_len).base;
    copy_headers(hs, headers, num_headers);
    h2o_buffer_consume(&sock->input, (size_t)ret);
    hs->relaying = 1;
    h2o_buffer_init(&hs->body, &h2o_socket_buffer_prototype);
    relay_body(hs);
}

static void on_head_read(h2o_socket_t *sock, const char *err)
{
    handshake_t *hs = sock->data;
    struct phr_header headers[CPH_H1RESP_MAX_HEADERS];

    if (err != NULL) {
        fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream closed the connection");
        return;
    }
    for (;;) {
        size_t num_headers = CPH_H1RESP_MAX_HEADERS, msg_len;
        int minor, status, ret;
        const char *msg;
        ret = phr_parse_response(sock->input->bytes, sock->input->size, &minor, &status, &msg, &msg_len, headers, &num_headers, 0);
        if (ret == -2 && sock->input->size <= CPH_H1RESP_MAX_HEAD)
            return;
        if (ret < 0) {
            fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream sent an invalid response");
            return;
        }
        if (status == 101) {
            upgrade(hs, headers, num_headers, (size_t)ret);
            return;
        }
        if (status >= 200 || status < 100)
            break;
        h2o_buffer_consume(&sock->input, (size_t)ret); /* an interim 1xx: the final head follows */
    }
    relay(hs);
}

/* ---------------------------------------------------------------- connecting */

static void on_written(h2o_socket_t *sock, const char *err)
{
    handshake_t *hs = sock->data;

    if (err != NULL && !hs->relaying)
        fail(hs, CPH_OUTCOME_RESET, 502, "websocket_upgrade_failed", "The upstream closed the connection");
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    handshake_t *hs = sock->data;

    cph_balance_connect_end(hs->r->route->service);
    hs->connecting = 0;
    if (err != NULL) {
        fail(hs, CPH_OUTCOME_CONNECT_FAILURE, 502, "upstream_connect_failed", "The gateway could not connect to the upstream");
        return;
    }
    start_timer(hs, hs->r->route->first_byte_timeout_ms);
    h2o_socket_write(sock, &hs->head, 1, on_written);
    h2o_socket_read_start(sock, on_head_read);
}

static void do_connect(handshake_t *hs, struct sockaddr *addr, socklen_t len)
{
    if ((hs->sock = h2o_socket_connect(hs->r->worker->ctx.loop, addr, len, on_connect)) == NULL) {
        fail(hs, CPH_OUTCOME_CONNECT_FAILURE, 502, "upstream_connect_failed", "The gateway could not connect to the upstream");
        return;
    }
    hs->sock->data = hs;
}

static void on_getaddr(h2o_hostinfo_getaddr_req_t *req, const char *errstr, struct addrinfo *res, void *data)
{
    handshake_t *hs = data;

    (void)req;
    hs->getaddr = NULL;
    if (errstr != NULL) {
        fail(hs, CPH_OUTCOME_CONNECT_FAILURE, 502, "upstream_connect_failed", "The gateway could not resolve the upstream");
        return;
    }
    struct addrinfo *ai = h2o_hostinfo_select_one(res);
    do_connect(hs, ai->ai_addr, ai->ai_addrlen);
}

static void connect_upstream(handshake_t *hs)
{
    const cph_target_t *t = hs->pick.target;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *res;
    char port[8];

    start_timer(hs, hs->r->route->connect_timeout_ms);
    snprintf(port, sizeof(port), "%u", (unsigned)t->port);
    if (getaddrinfo(t->host.base, port, &hints, &res) == 0) { /* numeric: no lookup, never blocks */
        do_connect(hs, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
        return;
    }
    hs->getaddr = h2o_hostinfo_getaddr(&hs->r->worker->ctx.receivers.hostinfo_getaddr, t->host, h2o_iovec_init(port, strlen(port)),
                                       AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP, AI_ADDRCONFIG | AI_NUMERICSERV, on_getaddr, hs);
}

/* The request head the proxy sends, with the upgrade instead of keep-alive (the builder drops the client's). */
static h2o_iovec_t upgrade_head(cph_req_t *r, const cph_target_t *target)
{
    static const char ka[] = "\r\nconnection: keep-alive\r\n", up[] = "\r\nconnection: upgrade\r\nupgrade: websocket\r\n";
    h2o_iovec_t head = cph_proxy_build_head(r, target);
    const char *at = memmem(head.base, head.len, ka, sizeof(ka) - 1);

    if (at == NULL)
        cph_fatal(MODULE, "the proxy's request head has no keep-alive line");
    size_t before = (size_t)(at - head.base), after = head.len - before - (sizeof(ka) - 1);
    return h2o_concat(&r->req->pool, h2o_iovec_init(head.base, before), h2o_iovec_init(up, sizeof(up) - 1),
                      h2o_iovec_init(at + sizeof(ka) - 1, after));
}

/* ---------------------------------------------------------------- the stage */

static const h2o_header_t *header(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    return i >= 0 ? &req->headers.entries[i] : NULL;
}

static int origin_allowed(const cph_ws_policy_t *p, const h2o_header_t *origin)
{
    if (p->num_origins == 0 || origin == NULL)
        return 1;
    for (size_t i = 0; i != p->num_origins; ++i)
        if ((p->origins[i].len == 1 && p->origins[i].base[0] == '*') ||
            cph_lc_eq(origin->value.base, origin->value.len, p->origins[i].base, p->origins[i].len))
            return 1;
    return 0;
}

/* The per-client key: the principal when authenticated (kind and id), else the client address (/64 for IPv6). */
static size_t client_key(cph_req_t *r, char *out, size_t cap)
{
    const cph_principal_t *p = &r->principal;
    struct sockaddr_storage ss;

    if (p->kind != CPH_PRINCIPAL_NONE && p->id.len != 0 && p->id.len < cap - 1) {
        out[0] = p->kind == CPH_PRINCIPAL_API_KEY ? 'k' : 'u';
        memcpy(out + 1, p->id.base, p->id.len);
        return p->id.len + 1;
    }
    out[0] = 'i';
    if (cph_client_ip(r, &ss) != 0)
        return 1;
    return 1 + cph_client_ip_key(&ss, out + 1);
}

/* RFC 6455 4.2.1: 0 when the handshake is well-formed, else answered (400 or 426). */
static int check_handshake(cph_req_t *r, const h2o_header_t **key)
{
    const h2o_header_t *version = header(r->req, H2O_STRLIT("sec-websocket-version"));

    *key = header(r->req, H2O_STRLIT("sec-websocket-key"));
    if (*key == NULL || !cph_ws_key_valid((*key)->value.base, (*key)->value.len) || version == NULL) {
        cph_respond_error_r(r, 400, "bad_request", "Invalid websocket handshake (Sec-WebSocket-Key, Sec-WebSocket-Version)");
        return -1;
    }
    if (!h2o_memis(version->value.base, version->value.len, H2O_STRLIT("13"))) {
        cph_pipeline_add_response_header(r, H2O_STRLIT("sec-websocket-version"), H2O_STRLIT("13"));
        cph_respond_error_r(r, 426, "websocket_version_unsupported", "Only websocket version 13 is supported");
        return -1;
    }
    return 0;
}

/* Origin, drain, credentials, per-client cap, admission, target: 0 with hs holding what it took, or answered. */
static int admit(cph_req_t *r, handshake_t *hs)
{
    const cph_ws_policy_t *p = r->route->websocket;

    if (!origin_allowed(p, header(r->req, H2O_STRLIT("origin")))) {
        cph_respond_error_r(r, 403, "origin_not_allowed", "The Origin may not open websockets on this route");
        return -1;
    }
    if (cph_websocket_draining(r->worker)) {
        cph_respond_error_r(r, 503, "shutting_down", "The gateway is shutting down");
        return -1;
    }
    if (r->route->service->credentials != NULL && r->route->service->credentials->error != NULL) {
        cph_respond_error_r(r, 503, CPH_CREDENTIALS_UNAVAILABLE_CODE, CPH_CREDENTIALS_UNAVAILABLE_MSG);
        return -1;
    }
    if (p->max_per_client != 0) {
        size_t len = client_key(r, hs->client_key, sizeof(hs->client_key));
        if (cph_ws_client_acquire(r->route->metric_id, hs->client_key, len, p->max_per_client) != 0) {
            cph_respond_error_r(r, 429, "too_many_websockets", "Too many open websockets for this client");
            return -1;
        }
        hs->client_key_len = len;
    }
    if (cph_balance_admit(r->route->service) != 0) {
        release(hs, CPH_OUTCOME_ABANDONED);
        cph_proxy_respond_overloaded(r);
        return -1;
    }
    hs->admitted = 1;
    if (cph_balance_pick(r->worker->balance, r->route->service, cph_proxy_hash_key(r), NULL, cph_proxy_now_ns(), &hs->pick) != 0) {
        release(hs, CPH_OUTCOME_ABANDONED);
        cph_respond_error_r(r, 503, "no_healthy_upstream", "No upstream target of the service can take the request");
        return -1;
    }
    hs->picked = 1;
    if (cph_balance_connect_begin(r->route->service) != 0) {
        release(hs, CPH_OUTCOME_ABANDONED);
        cph_proxy_respond_overloaded(r);
        return -1;
    }
    hs->connecting = 1;
    return 0;
}

int cph_websocket_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    const h2o_header_t *key;

    if (r->route == NULL || r->route->websocket == NULL || req->version != 0x101 || req->upgrade.base == NULL ||
        !h2o_contains_token(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket"), ',') ||
        !h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("GET")))
        return CPH_NEXT;
    if (check_handshake(r, &key) != 0)
        return CPH_DONE;
    handshake_t *hs = h2o_mem_alloc_shared(&req->pool, sizeof(*hs), on_dispose);
    memset(hs, 0, sizeof(*hs));
    hs->r = r;
    hs->timer.cb = on_timeout;
    if (admit(r, hs) != 0)
        return CPH_DONE;
    cph_ws_accept_key(key->value.base, key->value.len, hs->accept);
    hs->head = upgrade_head(r, hs->pick.target);
    connect_upstream(hs);
    return CPH_DONE;
}
