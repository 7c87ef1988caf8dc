/*
 * h2guard: per-connection stream-reset budget for HTTP/2 (h2guard.h).
 *
 * Frames are read with the 9-byte header of RFC 9113 section 4.1 (24-bit length, type, flags, 31-bit stream id); the
 * guard never decodes a payload and never parses what h2o has not been handed: it counts a frame only once h2o's
 * parser consumed it (a frame h2o reports incomplete comes back whole later).
 */
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include "dataplane/core/h2guard.h"
#include <h2o/http2.h>
#include <h2o/http2_scheduler.h>

#if H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2
#error "h2guard relies on h2o 2.2's h2o_http2_conn_t::_read_expect and its error path in lib/http2/connection.c: re-check"
#endif

/*
 * The head of h2o 2.2.5's struct st_h2o_http2_conn_t (include/h2o/http2_internal.h), up to the one member the guard
 * touches. Debian ships that header without the khash.h it includes, so it cannot be compiled against; the layout is
 * pinned by the version check above and checked at run time by cph_h2guard_attach (sock must be where h2o keeps it).
 */
typedef struct st_h2conn_head_t {
    h2o_conn_t super;
    h2o_socket_t *sock;
    h2o_http2_settings_t peer_settings;
    void *streams;
    struct {
        uint32_t max_open, max_processed;
    } pull_stream_ids;
    struct {
        uint32_t max_open;
    } push_stream_ids;
    struct {
        struct {
            uint32_t open, half_closed, send_body;
        } priority, pull, push;
    } num_streams;
    h2o_http2_scheduler_node_t scheduler;
    int state; /* enum en_h2o_http2_conn_state_t */
    h2o_linklist_t _conns;
    cph_h2_expect_fn _read_expect;
} h2conn_head_t;

/*
 * The rest of h2o 2.2.5's connection, up to _write (where its frames are queued), and its stream up to the request it
 * embeds: what cph_h2guard_reset_stream needs to queue a RST_STREAM the way h2o itself does and to hand the stream to
 * h2o_http2_stream_reset. Each use is checked first against what h2o exports (cph_h2guard_reset_stream).
 */
typedef struct st_hpack_table_t {
    void *entries;
    size_t num_entries, entry_capacity, entry_start_index, hpack_size, hpack_capacity, hpack_max_capacity;
} hpack_table_t;

typedef struct st_window_t {
    ssize_t avail;
} window_t;

typedef struct st_h2conn_t {
    h2conn_head_t head;
    h2o_buffer_t *_http1_req_input;
    hpack_table_t _input_header_table;
    window_t _input_window;
    hpack_table_t _output_header_table;
    h2o_linklist_t _pending_reqs;
    h2o_timeout_entry_t _timeout_entry;
    h2o_buffer_t *_headers_unparsed;
    struct {
        h2o_buffer_t *buf;
        h2o_buffer_t *buf_in_flight;
        h2o_linklist_t streams_to_proceed;
        h2o_timeout_entry_t timeout_entry;
        window_t window;
    } _write;
} h2conn_t;

enum { STREAM_SEND_HEADERS = 4, STREAM_SEND_BODY_IS_FINAL = 6 }; /* h2o_http2_stream_state_t */

typedef struct st_h2stream_t {
    uint32_t stream_id;
    h2o_ostream_t _ostr_final;
    int state; /* h2o_http2_stream_state_t */
    window_t output_window, input_window;
    h2o_http2_priority_t received_priority;
    h2o_buffer_t *_req_body;
    size_t _expected_content_length;
    H2O_VECTOR(h2o_iovec_t) _data;
    h2o_ostream_pull_cb _pull_cb;
    void *_num_streams_slot;
    void *cache_digests;
    union {
        struct {
            uint32_t parent_stream_id;
            unsigned promise_sent : 1;
        } push;
        struct {
            unsigned casper_is_ready : 1;
        } pull;
    } u;
    struct {
        h2o_linklist_t link;
        h2o_http2_scheduler_openref_t scheduler;
    } _refs;
    h2o_send_state_t send_state;
    h2o_req_t req;
} h2stream_t;

/* Exported by libh2o 2.2.5 and declared in its http2_internal.h, which cannot be included (see above). */
struct st_h2o_http2_conn_t;
struct st_h2o_http2_stream_t;
void h2o_http2__encode_rst_stream_frame(h2o_buffer_t **buf, uint32_t stream_id, int errnum);
void h2o_http2_conn_request_write(struct st_h2o_http2_conn_t *conn);
void h2o_http2_stream_reset(struct st_h2o_http2_conn_t *conn, struct st_h2o_http2_stream_t *stream);

#define FRAME_HEADER 9
#define TYPE_HEADERS 1
#define TYPE_RST_STREAM 3

static size_t frame_length(const uint8_t *p)
{
    return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
}

static uint32_t frame_stream(const uint8_t *p)
{
    return ((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]) & 0x7fffffffu;
}

int cph_h2guard_attach(cph_h2guard_t *g, h2o_conn_t *conn, h2o_socket_t *sock, cph_h2_expect_fn outer)
{
    h2conn_head_t *c = (h2conn_head_t *)conn;

    if (g->inner != NULL)
        return 0;
    if (sock == NULL || c->sock != sock || c->_read_expect == NULL)
        return -1;
    if (c->_read_expect != outer) {
        g->inner = c->_read_expect;
        c->_read_expect = outer;
    }
    return 0;
}

int cph_h2guard_over_budget(const cph_h2guard_t *g)
{
    if (g->streams < CPH_H2GUARD_MIN_STREAMS)
        return 0;
    return (uint64_t)g->resets * 2 > g->streams || (uint64_t)g->abandoned * 2 > g->streams;
}

ssize_t cph_h2guard_expect(cph_h2guard_t *g, h2o_conn_t *conn, cph_h2_expect_fn outer, const uint8_t *src, size_t len,
                           const char **err_desc)
{
    h2conn_head_t *c = (h2conn_head_t *)conn;
    int type = len >= FRAME_HEADER ? src[3] : -1;
    uint32_t stream = len >= FRAME_HEADER ? frame_stream(src) : 0;
    int opens = type == TYPE_HEADERS && stream > g->max_stream; /* not a trailer */
    ssize_t ret;

    if (g->tripped)
        goto Calm;
    g->input = src;
    g->input_len = len;
    ret = g->inner(conn, src, len, err_desc);
    g->input = NULL;
    g->input_len = 0;
    if (c->_read_expect != outer) { /* h2o moved on to another parser state: wrap that one */
        g->inner = c->_read_expect;
        c->_read_expect = outer;
    }
    if (ret <= 0)
        return ret; /* incomplete (counted when it comes back whole), or h2o's own error */
    if (opens) {
        g->max_stream = stream;
        ++g->streams;
    } else if (type == TYPE_RST_STREAM)
        ++g->resets;
    if (!cph_h2guard_over_budget(g))
        return ret;
    g->tripped = 1;
Calm:
    *err_desc = "too many stream resets";
    return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
}

int cph_h2guard_scan(const uint8_t *input, size_t len, uint32_t stream_id)
{
    const uint8_t *p = input, *end = input + len;
    size_t n = 0;

    if (p == NULL || len < FRAME_HEADER)
        return 0;
    p += FRAME_HEADER + frame_length(p); /* the frame being parsed: the HEADERS (or CONTINUATION) of this stream */
    for (; n != CPH_H2GUARD_SCAN_FRAMES && end - p >= FRAME_HEADER; ++n) {
        size_t flen = frame_length(p);
        if (p[3] == TYPE_RST_STREAM && frame_stream(p) == stream_id && flen == 4 && (size_t)(end - p) >= FRAME_HEADER + flen)
            return 1;
        if ((size_t)(end - p) < FRAME_HEADER + flen)
            break;
        p += FRAME_HEADER + flen;
    }
    return 0;
}

/* The stream id h2o logs for req (its own h2o_http2_stream_t::stream_id, read through an exported callback); 0 if none. */
static uint32_t logged_stream_id(h2o_req_t *req)
{
    h2o_iovec_t (*stream_id)(h2o_req_t *) = req->conn->callbacks->log_.http2.stream_id;
    h2o_iovec_t id;
    char buf[16];

    if (stream_id == NULL || (id = stream_id(req)).base == NULL || id.len == 0 || id.len >= sizeof(buf))
        return 0;
    memcpy(buf, id.base, id.len);
    buf[id.len] = '\0';
    return (uint32_t)strtoul(buf, NULL, 10);
}

int cph_h2guard_reset_queued(const cph_h2guard_t *g, h2o_req_t *req, h2o_socket_t *sock)
{
    uint32_t id = logged_stream_id(req);

    if (id == 0)
        return 0;
    if (g->input != NULL)
        return cph_h2guard_scan(g->input, g->input_len, id);
    /* not inside the guard (the connection's first request, dispatched while h2o parsed the very frames that opened
     * the connection): h2o parses straight from the socket's input, so the frame being parsed is at its start */
    return sock != NULL && sock->input != NULL && cph_h2guard_scan((const uint8_t *)sock->input->bytes, sock->input->size, id);
}

void cph_h2guard_stream_end(cph_h2guard_t *g, int responded)
{
    if (!responded)
        ++g->abandoned;
    if (cph_h2guard_over_budget(g))
        g->tripped = 1;
}

int cph_h2guard_reset_stream(h2o_req_t *req)
{
    h2conn_t *c = (h2conn_t *)req->conn;
    h2stream_t *st = H2O_STRUCT_FROM_MEMBER(h2stream_t, req, req);
    uint32_t id;

    /* every layout assumption checked against what h2o exports or set itself: the stream's id as h2o logs it, its
     * ostream as the request's last one, a state that sends, the connection's HPACK tables and write buffer */
    if (req->version < 0x200 || (id = logged_stream_id(req)) == 0 || st->stream_id != id || (id & 1) == 0 ||
        req->_ostr_top != &st->_ostr_final || st->state < STREAM_SEND_HEADERS || st->state > STREAM_SEND_BODY_IS_FINAL ||
        id > c->head.pull_stream_ids.max_open ||
        c->_input_header_table.hpack_max_capacity != H2O_HTTP2_SETTINGS_DEFAULT.header_table_size || c->_write.buf == NULL ||
        c->_write.buf->size > c->_write.buf->capacity)
        return -1;
    h2o_http2__encode_rst_stream_frame(&c->_write.buf, id, -H2O_HTTP2_ERROR_CANCEL);
    h2o_http2_conn_request_write((struct st_h2o_http2_conn_t *)c);
    h2o_http2_stream_reset((struct st_h2o_http2_conn_t *)c, (struct st_h2o_http2_stream_t *)st); /* may dispose req */
    return 0;
}
