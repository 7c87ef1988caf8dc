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

int cph_h2guard_reset_queued(const cph_h2guard_t *g, h2o_req_t *req)
{
    h2o_iovec_t (*stream_id)(h2o_req_t *) = req->conn->callbacks->log_.http2.stream_id;
    h2o_iovec_t id;
    char buf[16];

    if (g->input == NULL || stream_id == NULL || (id = stream_id(req)).base == NULL || id.len == 0 || id.len >= sizeof(buf))
        return 0;
    memcpy(buf, id.base, id.len); /* h2o's log callback: the stream id in decimal */
    buf[id.len] = '\0';
    return cph_h2guard_scan(g->input, g->input_len, (uint32_t)strtoul(buf, NULL, 10));
}

void cph_h2guard_stream_end(cph_h2guard_t *g, int responded)
{
    if (!responded)
        ++g->abandoned;
    if (cph_h2guard_over_budget(g))
        g->tripped = 1;
}
