/*
 * frame: the length-prefixed framing of the CP <-> DP socket (PROTOCOL.md section 1).
 *
 * A frame is a u32 big-endian length N followed by exactly N bytes holding one JSON object with a string "type".
 * The peer is not trusted: N is compared with max_frame before the reader ever sizes a buffer after it (the buffer
 * only grows with bytes that really arrived), N = 0 is refused, and the payload is parsed by jansson with duplicate
 * keys rejected and the end-of-input check on, so trailing bytes after the object are an error too.
 *
 * The reader is incremental: bytes are fed as the socket yields them, frames are extracted as they complete, the
 * consumed prefix is dropped at once and a buffer left large by one big frame is shrunk back, so a long-lived
 * connection holds at most one frame plus one read.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "proto/frame"

/* A reader keeps at least this much once it has grown, and shrinks back to it after a large frame. */
#define READER_KEEP (64 * 1024)

static void put_u32be(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t get_u32be(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | (uint32_t)u[3];
}

/* Where json_dump_callback() writes a frame: the header is reserved up front, the payload is capped as it grows. */
typedef struct st_encode_buf_t {
    char *buf;
    size_t len, cap, max_payload;
    int too_large;
} encode_buf_t;

static int encode_append(const char *data, size_t size, void *ctx)
{
    encode_buf_t *e = ctx;

    if (size > e->max_payload - (e->len - CPH_FRAME_HEADER_SIZE)) {
        e->too_large = 1; /* stop serialising now rather than build an oversize payload first */
        return -1;
    }
    if (e->len + size > e->cap) {
        size_t cap = e->cap * 2 > e->len + size ? e->cap * 2 : e->len + size;
        char *p = realloc(e->buf, cap);
        if (p == NULL)
            cph_fatal(MODULE, "out of memory");
        e->buf = p;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, data, size);
    e->len += size;
    return 0;
}

int cph_frame_encode(const json_t *msg, size_t max_frame, char **out, size_t *outlen, cph_error_t *err)
{
    encode_buf_t e = {NULL, CPH_FRAME_HEADER_SIZE, 0, max_frame < UINT32_MAX ? max_frame : UINT32_MAX, 0};

    *out = NULL;
    *outlen = 0;
    if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "type")))
        return cph_error_set(err, "bad_frame", "", "a message must be an object with a string \"type\"");
    e.cap = 256;
    if ((e.buf = malloc(e.cap)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (json_dump_callback(msg, encode_append, &e, JSON_COMPACT) != 0) {
        free(e.buf);
        if (e.too_large)
            return cph_error_set(err, "frame_too_large", "", "the message is over the limit of %zu bytes", e.max_payload);
        return cph_error_set(err, "bad_frame", "", "the message cannot be serialised");
    }
    put_u32be(e.buf, (uint32_t)(e.len - CPH_FRAME_HEADER_SIZE));
    *out = e.buf;
    *outlen = e.len;
    return 0;
}

void cph_frame_reader_init(cph_frame_reader_t *r, size_t max_frame)
{
    r->buf = NULL;
    r->len = 0;
    r->cap = 0;
    r->max_frame = max_frame;
}

void cph_frame_reader_dispose(cph_frame_reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
    r->cap = 0;
}

static void reader_resize(cph_frame_reader_t *r, size_t cap)
{
    char *p = realloc(r->buf, cap);
    if (p == NULL)
        cph_fatal(MODULE, "out of memory");
    r->buf = p;
    r->cap = cap;
}

void cph_frame_reader_feed(cph_frame_reader_t *r, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (len > SIZE_MAX - r->len)
        cph_fatal(MODULE, "frame reader overflow");
    if (r->len + len > r->cap) {
        size_t cap = r->cap < 4096 ? 4096 : r->cap;
        while (cap < r->len + len)
            cap = cap > SIZE_MAX / 2 ? r->len + len : cap * 2;
        reader_resize(r, cap);
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
}

/* Drops the first n bytes; gives memory back when a large frame has left the buffer mostly empty. */
static void reader_consume(cph_frame_reader_t *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
    if (r->cap > READER_KEEP && r->len < r->cap / 4)
        reader_resize(r, r->len > READER_KEEP ? r->len : READER_KEEP);
}

/* Copies jansson's message without its " near '...'" tail, which would echo payload bytes into logs. */
static void parse_error(cph_error_t *err, const json_error_t *jerr)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    char *near;

    memcpy(text, jerr->text, sizeof(text));
    text[sizeof(text) - 1] = '\0';
    if ((near = strstr(text, " near ")) != NULL)
        *near = '\0';
    cph_error_set(err, "invalid_json", "", "invalid JSON at byte %d: %s", jerr->position, text);
}

int cph_frame_reader_next(cph_frame_reader_t *r, json_t **msg, cph_error_t *err)
{
    json_error_t jerr;
    json_t *v;
    uint32_t n;

    *msg = NULL;
    if (r->len < CPH_FRAME_HEADER_SIZE)
        return 0;
    n = get_u32be(r->buf);
    if (n == 0)
        return cph_error_set(err, "bad_frame", "", "a frame of length 0");
    if (n > r->max_frame)
        return cph_error_set(err, "frame_too_large", "", "a frame of %" PRIu32 " bytes, the limit is %zu", n, r->max_frame);
    if (r->len - CPH_FRAME_HEADER_SIZE < n)
        return 0;
    if ((v = json_loadb(r->buf + CPH_FRAME_HEADER_SIZE, n, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        parse_error(err, &jerr);
        return -1;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return cph_error_set(err, "bad_frame", "", "a frame must hold a JSON object");
    }
    if (!json_is_string(json_object_get(v, "type"))) {
        json_decref(v);
        return cph_error_set(err, "bad_frame", "/type", "a frame must have a string \"type\"");
    }
    reader_consume(r, CPH_FRAME_HEADER_SIZE + (size_t)n);
    *msg = v;
    return 1;
}
