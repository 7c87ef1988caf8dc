/*
 * websocket (core): the tunnel behind an upgraded websocket, its frame-header scanner, the handshake's accept key and
 * the per-client tunnel counts. filter/websocket.c does the handshake and hands a connected upstream over.
 *
 * Bytes move both ways as h2o's own tunnel moves them (read, stop reading, write, consume, read again), so each
 * direction holds at most one read batch and nothing is copied: while a write to one side is pending, the other side
 * is not read. A read buffer that was consumed completely goes back to h2o's recycler, so an idle tunnel holds no
 * buffer. Each direction's frame headers are scanned as they stream (cph_ws_scan, no payload is looked at) for two
 * reasons: a frame that announces more than max_frame_bytes is refused before any byte of it is passed (close 1009),
 * and the gateway can close a tunnel itself (idle, lifetime, token expiry, route removed, drain) by injecting a close
 * frame at a frame boundary of each direction - never inside a frame - masked toward the upstream as a client must.
 * After its close frames the gateway waits at most CPH_WS_CLOSE_WAIT_MS for the peers' close replies, then closes.
 *
 * Timers: the idle timeout is an h2o timeout list per distinct duration (reset on every byte either way); the absolute
 * deadlines (lifetime, token expiry, drain grace after a swap) share one per-worker timer armed for the earliest one;
 * when it fires, the worker's tunnels are scanned once.
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "proto/log.h"
#include "dataplane/core/websocket.h"

#define MODULE "dp/core/websocket"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NEVER UINT64_MAX

/* ---------------------------------------------------------------- frame headers */

/* RFC 6455 section 5: the opcode is defined, a control frame is final with at most 125 bytes, the mask bit as the
 * direction requires (the 7-bit length is enough for the control-frame rule: 126 and 127 announce longer ones). */
static int frame_valid(const cph_ws_stream_t *s, uint8_t b0, uint8_t b1)
{
    uint8_t opcode = b0 & 0x0f;

    if ((opcode >= 3 && opcode <= 7) || opcode >= 0xb)
        return 0;
    if ((opcode & 0x8) != 0 && ((b0 & 0x80) == 0 || (b1 & 0x7f) > 125))
        return 0;
    return s->masked == 0 || (s->masked > 0) == ((b1 & 0x80) != 0);
}

size_t cph_ws_scan(cph_ws_stream_t *s, const uint8_t *buf, size_t len, uint64_t max_frame, int stop_at_boundary, int *event)
{
    size_t pos = 0;

    *event = CPH_WS_SCAN_OK;
    while (pos < len) {
        if (s->remaining != 0) {
            uint64_t n = len - pos < s->remaining ? len - pos : s->remaining;
            pos += (size_t)n;
            s->remaining -= n;
            if (s->remaining == 0 && s->opcode == 8)
                s->close_seen = 1;
            continue;
        }
        if (stop_at_boundary || len - pos < 2)
            break;
        uint64_t plen = buf[pos + 1] & 0x7f;
        size_t hlen = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) + ((buf[pos + 1] & 0x80) ? 4 : 0);
        if (len - pos < hlen)
            break;
        if (!frame_valid(s, buf[pos], buf[pos + 1])) {
            *event = CPH_WS_SCAN_PROTOCOL;
            break;
        }
        if (plen >= 126) {
            size_t n = plen == 126 ? 2 : 8;
            plen = 0;
            for (size_t i = 0; i != n; ++i)
                plen = plen << 8 | buf[pos + 2 + i];
            if (plen >> 63) {
                *event = CPH_WS_SCAN_PROTOCOL;
                break;
            }
        }
        if (plen > max_frame) {
            *event = CPH_WS_SCAN_TOO_BIG;
            break;
        }
        s->opcode = buf[pos] & 0x0f;
        s->remaining = plen;
        pos += hlen;
        if (plen == 0 && s->opcode == 8)
            s->close_seen = 1;
    }
    return pos;
}

size_t cph_ws_close_frame(uint8_t *out, uint16_t code, const uint8_t *mask)
{
    uint8_t hi = (uint8_t)(code >> 8), lo = (uint8_t)code;

    out[0] = 0x88; /* FIN + close */
    if (mask == NULL) {
        out[1] = 2;
        out[2] = hi;
        out[3] = lo;
        return 4;
    }
    out[1] = 0x80 | 2;
    memcpy(out + 2, mask, 4);
    out[6] = hi ^ mask[0];
    out[7] = lo ^ mask[1];
    return 8;
}

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int cph_ws_key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (size_t i = 0; i != 22; ++i)
        if (!is_b64(key[i]))
            return 0;
    return 1;
}

void cph_ws_accept_key(const char *key, size_t len, char out[CPH_WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 || EVP_DigestUpdate(ctx, key, len) != 1 ||
        EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        cph_fatal(MODULE, "SHA-1 failed");
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen); /* 28 characters and a NUL */
}

/* ---------------------------------------------------------------- per-client counts */

#define SLOT_BUCKETS 4096

typedef struct st_slot_t {
    struct st_slot_t *next;
    uint32_t route;
    uint32_t count;
    size_t len;
    char key[];
} slot_t;

static pthread_mutex_t slots_mutex = PTHREAD_MUTEX_INITIALIZER;
static slot_t *slots[SLOT_BUCKETS];

static slot_t **find_slot(uint32_t route, const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ull ^ route;

    for (size_t i = 0; i != len; ++i)
        h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
    slot_t **p = &slots[h % SLOT_BUCKETS];
    while (*p != NULL && !((*p)->route == route && (*p)->len == len && memcmp((*p)->key, key, len) == 0))
        p = &(*p)->next;
    return p;
}

int cph_ws_client_acquire(uint32_t route, const char *key, size_t len, uint32_t max)
{
    int ret = 0;

    pthread_mutex_lock(&slots_mutex);
    slot_t **p = find_slot(route, key, len);
    if (*p == NULL) {
        slot_t *s = malloc(sizeof(*s) + len);
        if (s == NULL)
            cph_fatal(MODULE, "out of memory");
        *s = (slot_t){.route = route, .len = len};
        memcpy(s->key, key, len);
        *p = s;
    }
    if (max != 0 && (*p)->count >= max)
        ret = -1;
    else
        (*p)->count++;
    pthread_mutex_unlock(&slots_mutex);
    return ret;
}

void cph_ws_client_release(uint32_t route, const char *key, size_t len)
{
    pthread_mutex_lock(&slots_mutex);
    slot_t **p = find_slot(route, key, len);
    if (*p != NULL && --(*p)->count == 0) {
        slot_t *s = *p;
        *p = s->next;
        free(s);
    }
    pthread_mutex_unlock(&slots_mutex);
}

/* ---------------------------------------------------------------- worker state */

typedef struct st_ws_timeout_t {
    uint64_t ms;
    h2o_timeout_t timeout;
} ws_timeout_t;

struct st_cph_ws_worker_t {
    cph_worker_t *worker;
    h2o_linklist_t tunnels;
    size_t count;
    cph_counter_t open; /* count, for the scraper */
    cph_counter_t closed[CPH_WS_CLOSED_REASONS];
    ws_timeout_t **timeouts;
    size_t num_timeouts;
    h2o_timeout_t deadline_timeout; /* holds one entry at most: its timeout is set to the wait before linking */
    h2o_timeout_entry_t deadline_entry;
    uint64_t armed_for; /* the deadline deadline_entry is linked for, NEVER when unlinked */
    int draining;
};

enum { HALF_FORWARD = 0, HALF_FINISH, HALF_CLOSED };

/* One direction: from sock[i] to sock[!i]. */
typedef struct st_half_t {
    cph_ws_stream_t stream;
    size_t pending; /* scanned bytes at the head of the source's input, being written */
    int writing;
    int state; /* HALF_FINISH: forwarding up to the next boundary, then our close frame; HALF_CLOSED: it went */
    int done;  /* the source is finished: EOF, error, or its close frame passed */
    uint8_t frame[8];
    size_t frame_len;
} half_t;

struct st_cph_ws_tunnel_t {
    h2o_linklist_t link;
    struct st_cph_ws_worker_t *ww;
    h2o_socket_t *sock[2]; /* client, upstream */
    half_t half[2];        /* [0] client -> upstream, [1] upstream -> client */
    cph_ws_handoff_t h;
    uint32_t route_id;
    uint64_t idle_ms, max_frame;
    h2o_timeout_t *idle;                                     /* the worker's timeout list of idle_ms */
    uint64_t started_at, lifetime_end, grace_end, token_end; /* ms since the epoch (h2o_now), NEVER = none */
    h2o_timeout_entry_t timer;                               /* idle while open; the close wait once closing or ending */
    int closing;                                             /* our close frames are under way */
    cph_ws_closed_reason_t reason;                           /* why it ends (counted at destroy) */
    int ending;                                              /* one peer left: flush what was read, then close */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

h2o_timeout_t *cph_ws_timeout(cph_worker_t *w, uint64_t ms)
{
    struct st_cph_ws_worker_t *ww = w->websocket;
    ws_timeout_t *t;

    if (ms == 0)
        ms = 1;
    for (size_t i = 0; i != ww->num_timeouts; ++i)
        if (ww->timeouts[i]->ms == ms)
            return &ww->timeouts[i]->timeout;
    t = h2o_mem_alloc(sizeof(*t));
    t->ms = ms;
    h2o_timeout_init(w->ctx.loop, &t->timeout, ms);
    ww->timeouts = h2o_mem_realloc(ww->timeouts, sizeof(*ww->timeouts) * (ww->num_timeouts + 1));
    ww->timeouts[ww->num_timeouts++] = t;
    return &t->timeout;
}

static uint64_t tunnel_deadline(const cph_ws_tunnel_t *t)
{
    uint64_t d = t->lifetime_end < t->grace_end ? t->lifetime_end : t->grace_end;

    return t->token_end < d ? t->token_end : d;
}

static void arm_deadline(struct st_cph_ws_worker_t *ww, uint64_t at)
{
    uint64_t now = h2o_now(ww->worker->ctx.loop);

    if (h2o_timeout_is_linked(&ww->deadline_entry))
        h2o_timeout_unlink(&ww->deadline_entry);
    ww->armed_for = at;
    if (at == NEVER)
        return;
    ww->deadline_timeout.timeout = at > now ? at - now : 1;
    h2o_timeout_link(ww->worker->ctx.loop, &ww->deadline_timeout, &ww->deadline_entry);
}

/* ---------------------------------------------------------------- the tunnel */

static void step(cph_ws_tunnel_t *t);
static void on_read(h2o_socket_t *sock, const char *err);

static void destroy(cph_ws_tunnel_t *t)
{
    if (h2o_timeout_is_linked(&t->timer))
        h2o_timeout_unlink(&t->timer);
    for (int i = 0; i != 2; ++i)
        if (t->sock[i] != NULL)
            h2o_socket_close(t->sock[i]);
    if (h2o_linklist_is_linked(&t->link)) {
        h2o_linklist_unlink(&t->link);
        t->ww->count--;
        atomic_store_explicit(&t->ww->open, t->ww->count, memory_order_relaxed);
        cph_counter_add(&t->ww->closed[t->reason], 1);
    }
    if (t->h.client_key_len != 0)
        cph_ws_client_release(t->route_id, t->h.client_key, t->h.client_key_len);
    cph_balance_end(t->h.route->service, &t->h.pick, CPH_OUTCOME_SUCCESS, mono_ns());
    cph_snapshot_release(t->h.snap);
    free(t);
}

static void reset_timer(cph_ws_tunnel_t *t, h2o_timeout_t *list)
{
    if (h2o_timeout_is_linked(&t->timer))
        h2o_timeout_unlink(&t->timer);
    h2o_timeout_link(t->ww->worker->ctx.loop, list, &t->timer);
}

/* Our close frames go out at the next frame boundary of each direction; the close wait starts. */
static void start_close(cph_ws_tunnel_t *t, cph_ws_closed_reason_t reason, uint16_t to_client, uint16_t to_upstream)
{
    uint8_t mask[4];

    if (t->closing || t->ending)
        return;
    t->closing = 1;
    t->reason = reason;
    if (RAND_bytes(mask, sizeof(mask)) != 1)
        memset(mask, 0x5a, sizeof(mask));
    t->half[0].frame_len = cph_ws_close_frame(t->half[0].frame, to_upstream, mask);
    t->half[1].frame_len = cph_ws_close_frame(t->half[1].frame, to_client, NULL);
    for (int i = 0; i != 2; ++i)
        if (t->half[i].state == HALF_FORWARD)
            t->half[i].state = HALF_FINISH;
    reset_timer(t, cph_ws_timeout(t->ww->worker, CPH_WS_CLOSE_WAIT_MS));
}

static void on_written(h2o_socket_t *sock, const char *err);

static void write_half(cph_ws_tunnel_t *t, int i, const void *bytes, size_t len)
{
    h2o_iovec_t buf = h2o_iovec_init(bytes, len);

    t->half[i].writing = 1;
    h2o_socket_write(t->sock[!i], &buf, 1, on_written);
}

/* Moves what can move in direction i: scanned bytes, our close frame, or (closed) discards the source's input. */
static void pump(cph_ws_tunnel_t *t, int i)
{
    half_t *h = &t->half[i];
    h2o_socket_t *src = t->sock[i];
    int event;

    if (h->writing)
        return;
    if (h->state == HALF_CLOSED) {
        size_t n = cph_ws_scan(&h->stream, (const uint8_t *)src->input->bytes, src->input->size, NEVER, 0, &event);
        h2o_buffer_consume(&src->input, n);
        if (h->stream.close_seen || event != CPH_WS_SCAN_OK)
            h->done = 1;
        return;
    }
    if (h->pending == 0) {
        h->pending = cph_ws_scan(&h->stream, (const uint8_t *)src->input->bytes, src->input->size, t->max_frame,
                                 h->state == HALF_FINISH, &event);
        if (event != CPH_WS_SCAN_OK) {
            uint16_t code = event == CPH_WS_SCAN_TOO_BIG ? CPH_WS_CLOSE_TOO_BIG : CPH_WS_CLOSE_PROTOCOL;
            cph_log_info(MODULE, "route %s: a websocket frame over max_frame_bytes or malformed: closing %u", t->h.route->name,
                         (unsigned)code);
            start_close(t, event == CPH_WS_SCAN_TOO_BIG ? CPH_WS_CLOSED_FRAME_TOO_BIG : CPH_WS_CLOSED_PROTOCOL, code, code);
        }
    }
    if (h->pending != 0) {
        write_half(t, i, src->input->bytes, h->pending);
    } else if (h->state == HALF_FINISH && h->stream.remaining == 0) {
        h->state = HALF_CLOSED;
        write_half(t, i, h->frame, h->frame_len);
    } else if (h->state == HALF_FINISH && h->done) {
        h->state = HALF_CLOSED; /* the source ended inside a frame: no boundary will come */
    }
}

static int finished(const cph_ws_tunnel_t *t)
{
    if (t->ending)
        return !t->half[0].writing && !t->half[1].writing;
    if (!t->closing)
        return 0;
    for (int i = 0; i != 2; ++i)
        if (t->half[i].state != HALF_CLOSED || t->half[i].writing || !t->half[i].done)
            return 0;
    return 1;
}

static void update_reading(cph_ws_tunnel_t *t)
{
    for (int i = 0; i != 2; ++i) {
        h2o_socket_t *src = t->sock[i];
        int want = !t->half[i].writing && !t->half[i].done && !t->ending;
        if (want && !h2o_socket_is_reading(src))
            h2o_socket_read_start(src, on_read);
        else if (!want && h2o_socket_is_reading(src))
            h2o_socket_read_stop(src);
    }
}

/* Runs both directions until nothing moves; may free t. */
static void step(cph_ws_tunnel_t *t)
{
    int closing = t->closing;

    pump(t, 0);
    pump(t, 1);
    if (t->closing != closing) {
        pump(t, 0);
        pump(t, 1);
    }
    if (finished(t)) {
        destroy(t);
        return;
    }
    update_reading(t);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    cph_ws_tunnel_t *t = sock->data;
    int i = sock == t->sock[0] ? 0 : 1;

    if (err != NULL) {
        t->half[i].done = 1;
        h2o_socket_read_stop(sock);
        if (!t->closing) {
            t->ending = 1;
            reset_timer(t, cph_ws_timeout(t->ww->worker, CPH_WS_CLOSE_WAIT_MS));
        }
    } else if (!t->closing && !t->ending) {
        reset_timer(t, t->idle);
    }
    step(t);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    cph_ws_tunnel_t *t = sock->data;
    int i = sock == t->sock[1] ? 0 : 1; /* the direction that writes to sock */
    half_t *h = &t->half[i];

    if (err != NULL) {
        if (!t->closing)
            t->reason = CPH_WS_CLOSED_ERROR;
        destroy(t);
        return;
    }
    h->writing = 0;
    if (h->pending != 0) {
        h2o_buffer_consume(&t->sock[i]->input, h->pending);
        h->pending = 0;
        if (!t->closing && !t->ending) /* a slow reader taking bytes is not idle either */
            reset_timer(t, t->idle);
    }
    step(t);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    cph_ws_tunnel_t *t = H2O_STRUCT_FROM_MEMBER(cph_ws_tunnel_t, timer, entry);

    if (t->closing || t->ending) {
        destroy(t); /* the peers did not finish in time */
        return;
    }
    start_close(t, CPH_WS_CLOSED_IDLE, CPH_WS_CLOSE_GOING_AWAY, CPH_WS_CLOSE_GOING_AWAY);
    step(t);
}

/* The policy values a tunnel follows: at its start, and from the new snapshot after a swap. */
static void adopt_policy(cph_ws_tunnel_t *t, const cph_ws_policy_t *p)
{
    t->max_frame = p->max_frame_bytes;
    t->lifetime_end = p->max_lifetime_ms != 0 ? t->started_at + p->max_lifetime_ms : NEVER;
    t->token_end = p->close_on_token_expiry && t->h.token_exp > 0 ? (uint64_t)t->h.token_exp * 1000 : NEVER;
    if (t->idle_ms != p->idle_timeout_ms) {
        t->idle_ms = p->idle_timeout_ms;
        t->idle = cph_ws_timeout(t->ww->worker, t->idle_ms);
        if (!t->closing && !t->ending && t->sock[0] != NULL)
            reset_timer(t, t->idle);
    }
}

cph_ws_tunnel_t *cph_ws_tunnel_new(cph_worker_t *w, cph_ws_handoff_t *handoff)
{
    cph_ws_tunnel_t *t = h2o_mem_alloc(sizeof(*t));

    memset(t, 0, sizeof(*t));
    t->ww = w->websocket;
    t->h = *handoff;
    t->sock[1] = handoff->upstream;
    t->route_id = handoff->route->metric_id;
    t->timer.cb = on_timer;
    t->grace_end = NEVER;
    return t;
}

void cph_ws_tunnel_upgraded(void *tunnel, h2o_socket_t *client, size_t reqsize)
{
    cph_ws_tunnel_t *t = tunnel;
    struct st_cph_ws_worker_t *ww = t->ww;

    if (client == NULL) { /* the 101 could not be written: h2o closed the client */
        destroy(t);
        return;
    }
    h2o_buffer_consume(&client->input, reqsize); /* the upgrade request; anything after it is the client's first frames */
    t->sock[0] = client;
    t->half[0].stream.masked = 1;  /* client frames are masked */
    t->half[1].stream.masked = -1; /* server frames are not */
    client->data = t;
    t->sock[1]->data = t;
    t->started_at = h2o_now(ww->worker->ctx.loop);
    adopt_policy(t, t->h.route->websocket);
    reset_timer(t, t->idle);
    h2o_linklist_insert(&ww->tunnels, &t->link);
    ww->count++;
    atomic_store_explicit(&ww->open, ww->count, memory_order_relaxed);
    if (tunnel_deadline(t) < ww->armed_for)
        arm_deadline(ww, tunnel_deadline(t));
    if (ww->draining)
        start_close(t, CPH_WS_CLOSED_DRAIN, CPH_WS_CLOSE_GOING_AWAY, CPH_WS_CLOSE_GOING_AWAY);
    step(t);
}

/* ---------------------------------------------------------------- worker entry points */

/* Closes the tunnels whose deadline passed and re-arms for the earliest one left. */
static void on_deadline(h2o_timeout_entry_t *entry)
{
    struct st_cph_ws_worker_t *ww = H2O_STRUCT_FROM_MEMBER(struct st_cph_ws_worker_t, deadline_entry, entry);
    uint64_t now = h2o_now(ww->worker->ctx.loop), next = NEVER;
    h2o_linklist_t *node, *nx;

    ww->armed_for = NEVER;
    for (node = ww->tunnels.next; node != &ww->tunnels; node = nx) {
        cph_ws_tunnel_t *t = H2O_STRUCT_FROM_MEMBER(cph_ws_tunnel_t, link, node);
        nx = node->next;
        if (t->closing || t->ending)
            continue;
        if (now >= t->token_end) {
            start_close(t, CPH_WS_CLOSED_TOKEN_EXPIRED, CPH_WS_CLOSE_POLICY, CPH_WS_CLOSE_GOING_AWAY);
            step(t);
        } else if (now >= tunnel_deadline(t)) {
            start_close(t, now >= t->grace_end ? CPH_WS_CLOSED_ROUTE_REMOVED : CPH_WS_CLOSED_LIFETIME, CPH_WS_CLOSE_GOING_AWAY,
                        CPH_WS_CLOSE_GOING_AWAY);
            step(t);
        } else if (tunnel_deadline(t) < next) {
            next = tunnel_deadline(t);
        }
    }
    arm_deadline(ww, next);
}

void cph_websocket_worker_init(cph_worker_t *w)
{
    struct st_cph_ws_worker_t *ww = h2o_mem_alloc(sizeof(*ww));

    memset(ww, 0, sizeof(*ww));
    ww->worker = w;
    h2o_linklist_init_anchor(&ww->tunnels);
    h2o_timeout_init(w->ctx.loop, &ww->deadline_timeout, 1);
    ww->deadline_entry.cb = on_deadline;
    ww->armed_for = NEVER;
    w->websocket = ww;
}

void cph_websocket_worker_dispose(cph_worker_t *w)
{
    struct st_cph_ws_worker_t *ww = w->websocket;

    if (ww == NULL)
        return;
    while (!h2o_linklist_is_empty(&ww->tunnels))
        destroy(H2O_STRUCT_FROM_MEMBER(cph_ws_tunnel_t, link, ww->tunnels.next));
    if (h2o_timeout_is_linked(&ww->deadline_entry))
        h2o_timeout_unlink(&ww->deadline_entry);
    h2o_timeout_dispose(w->ctx.loop, &ww->deadline_timeout);
    for (size_t i = 0; i != ww->num_timeouts; ++i) {
        h2o_timeout_t *to = &ww->timeouts[i]->timeout;
        while (!h2o_linklist_is_empty(&to->_entries)) /* a handshake cut short by the shutdown */
            h2o_timeout_unlink(H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, to->_entries.next));
        h2o_timeout_dispose(w->ctx.loop, to);
        free(ww->timeouts[i]);
    }
    free(ww->timeouts);
    free(ww);
    w->websocket = NULL;
}

/* The tunnel's route in snap: same metric id (ids past the stats cap fold into 0: then by name). */
static const cph_route_t *find_route(const cph_snapshot_t *snap, const cph_route_t **by_id, const cph_ws_tunnel_t *t)
{
    if (t->route_id != 0 && t->route_id < CPH_STATS_MAX_ROUTES)
        return by_id[t->route_id];
    for (size_t i = 0; i != snap->num_routes; ++i)
        if (snap->routes[i].metric_id == t->route_id && strcmp(snap->routes[i].name, t->h.route->name) == 0)
            return &snap->routes[i];
    return NULL;
}

void cph_websocket_on_swap(cph_worker_t *w, cph_snapshot_t *snap)
{
    struct st_cph_ws_worker_t *ww = w->websocket;
    uint64_t now, next = NEVER;
    h2o_linklist_t *node;

    if (ww == NULL || ww->count == 0)
        return;
    now = h2o_now(w->ctx.loop);
    const cph_route_t **by_id = calloc(CPH_STATS_MAX_ROUTES, sizeof(*by_id));
    if (by_id == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t i = 0; i != snap->num_routes; ++i)
        if (snap->routes[i].metric_id < CPH_STATS_MAX_ROUTES)
            by_id[snap->routes[i].metric_id] = &snap->routes[i];
    for (node = ww->tunnels.next; node != &ww->tunnels; node = node->next) {
        cph_ws_tunnel_t *t = H2O_STRUCT_FROM_MEMBER(cph_ws_tunnel_t, link, node);
        const cph_route_t *route = find_route(snap, by_id, t);
        if (route != NULL && route->websocket != NULL) {
            adopt_policy(t, route->websocket);
            t->grace_end = NEVER;
        } else if (t->grace_end == NEVER) {
            t->grace_end = now + snap->ws_drain_grace_ms;
        }
        if (!t->closing && !t->ending && tunnel_deadline(t) < next)
            next = tunnel_deadline(t);
    }
    free(by_id);
    arm_deadline(ww, next);
}

void cph_websocket_drain(cph_worker_t *w)
{
    struct st_cph_ws_worker_t *ww = w->websocket;
    h2o_linklist_t *node, *nx;

    if (ww == NULL)
        return;
    ww->draining = 1;
    for (node = ww->tunnels.next; node != &ww->tunnels; node = nx) {
        cph_ws_tunnel_t *t = H2O_STRUCT_FROM_MEMBER(cph_ws_tunnel_t, link, node);
        nx = node->next;
        start_close(t, CPH_WS_CLOSED_DRAIN, CPH_WS_CLOSE_GOING_AWAY, CPH_WS_CLOSE_GOING_AWAY);
        step(t);
    }
}

int cph_websocket_draining(cph_worker_t *w)
{
    return w->websocket != NULL && (w->websocket->draining || w->draining);
}

size_t cph_websocket_count(cph_worker_t *w)
{
    return w->websocket != NULL ? (size_t)atomic_load_explicit(&w->websocket->open, memory_order_relaxed) : 0;
}

uint64_t cph_websocket_closed(cph_worker_t *w, cph_ws_closed_reason_t reason)
{
    return w->websocket != NULL ? atomic_load_explicit(&w->websocket->closed[reason], memory_order_relaxed) : 0;
}

const char *cph_websocket_closed_reason_name(cph_ws_closed_reason_t reason)
{
    static const char *const names[CPH_WS_CLOSED_REASONS] = {
        "peer", "idle", "lifetime", "frame_too_big", "protocol", "token_expired", "route_removed", "drain", "error"};
    return names[reason];
}
