/*
 * h2guard: the HTTP/2 rapid-reset defence h2o 2.2.5 does not have (CVE-2023-44487, and the server-induced variant).
 *
 * h2o parses a connection's input with one function pointer, h2o_http2_conn_t::_read_expect, called once per frame;
 * a negative return makes h2o itself send GOAWAY with that error and close the connection. The guard wraps that
 * pointer (and re-wraps whenever h2o moves it, e.g. to its CONTINUATION state), counts per connection the streams
 * opened, the client's RST_STREAM frames, and the dispatched streams that ended before any response (reset by
 * either side); past the budget it answers ENHANCE_YOUR_CALM, so h2o sends GOAWAY and closes.
 *
 * While h2o dispatches a new stream, the frames it has read but not parsed yet are still in the socket's input: a
 * RST_STREAM for the same stream already there means the client gave up on it before the gateway started, and the
 * stream is answered at once without any authentication, rate-limit or upstream work (core/server.c).
 */
#ifndef CPH_H2GUARD_H
#define CPH_H2GUARD_H

#include <stdint.h>
#include <sys/types.h>
#include "dataplane/core/h2o_abi.h"

#define CPH_H2GUARD_MIN_STREAMS 100 /* no verdict on a connection before it has opened this many streams */
#define CPH_H2GUARD_SCAN_FRAMES 256 /* how many unparsed frames a new stream looks through for its own reset */

/* h2o's parser state function, h2o_http2_conn_t::_read_expect (the connection passed as its h2o_conn_t). */
typedef ssize_t (*cph_h2_expect_fn)(h2o_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

/** One connection's guard, embedded in the server's per-connection state (zeroed = not attached). */
typedef struct st_cph_h2guard_t {
    cph_h2_expect_fn inner; /* h2o's parser state the guard wraps; NULL = not attached */
    const uint8_t *input;   /* during inner: the frame h2o is parsing and everything after it */
    size_t input_len;
    uint32_t max_stream; /* the highest stream id a HEADERS frame opened (a lower one is a trailer) */
    uint32_t streams;    /* HEADERS frames that opened a stream */
    uint32_t resets;     /* RST_STREAM frames the client sent */
    uint32_t abandoned;  /* dispatched streams that ended before their response started */
    int tripped;         /* the budget is spent: the next frame closes the connection */
} cph_h2guard_t;

/**
 * Wraps the parser of conn (an HTTP/2 connection whose socket is sock) with outer: a function (core/server.c) that
 * finds g from conn and calls cph_h2guard_expect. Does nothing when g is already attached. Returns 0, or -1 when
 * conn does not look like h2o 2.2's HTTP/2 connection (its socket is not where it should be): no guard then.
 */
int cph_h2guard_attach(cph_h2guard_t *g, h2o_conn_t *conn, h2o_socket_t *sock, cph_h2_expect_fn outer);
/**
 * What outer does for one frame: runs h2o's parser on it, counts it once consumed, re-wraps a parser state h2o
 * installed meanwhile, and returns H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM (err_desc "too many stream resets") instead
 * when the connection is over budget; else what h2o returned.
 */
ssize_t cph_h2guard_expect(cph_h2guard_t *g, h2o_conn_t *conn, cph_h2_expect_fn outer, const uint8_t *src, size_t len,
                           const char **err_desc);
/**
 * While h2o dispatches req (an HTTP/2 request on sock; called from a request handler): 1 when the input after the
 * frame being parsed already holds a RST_STREAM for req's stream (at most CPH_H2GUARD_SCAN_FRAMES frames are looked
 * at). The input is the guard's while it wraps h2o's parser, else sock's unparsed input - a connection's first
 * request is dispatched while h2o parses the frames that opened it, before anything could attach the guard, and a
 * flood that reconnects after every GOAWAY would otherwise get one upstream request per connection.
 */
int cph_h2guard_reset_queued(const cph_h2guard_t *g, h2o_req_t *req, h2o_socket_t *sock);
/** The frame scan of cph_h2guard_reset_queued over input[0..len) for stream_id (for tests). */
int cph_h2guard_scan(const uint8_t *input, size_t len, uint32_t stream_id);
/** A dispatched stream ended; responded is 0 when no response had started (it was reset or abandoned). */
void cph_h2guard_stream_end(cph_h2guard_t *g, int responded);
/**
 * Resets req's HTTP/2 stream from the gateway's side, as h2o does for its own stream errors: RST_STREAM(CANCEL) is
 * queued on the connection and h2o_http2_stream_reset closes the stream, which may dispose req (and its pool) before
 * this returns - the caller must not touch either afterwards. The other streams of the connection go on. For a
 * stream stalled by its own flow-control window (filter/proxy.c): nothing else ever ends it. Returns 0, or -1 without
 * doing anything when req is not an HTTP/2 stream in a sending state or h2o's layout does not check out.
 */
int cph_h2guard_reset_stream(h2o_req_t *req);
/**
 * The budget: once CPH_H2GUARD_MIN_STREAMS streams were opened, more than half of them reset by the client, or more
 * than half of them ended without a response, is over it. Pure.
 */
int cph_h2guard_over_budget(const cph_h2guard_t *g);

#endif
