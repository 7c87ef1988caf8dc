/*
 * h1resp: framing of an upstream HTTP/1.1 response (head and body), on top of picohttpparser as exported by libh2o.
 * No I/O: the upstream client (filter/proxy.c) feeds it the bytes it read, which makes every hostile case testable.
 */
#ifndef CPH_H1RESP_H
#define CPH_H1RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* picohttpparser (libh2o exports the functions, Debian ships no header) */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);
int phr_decode_chunked_is_in_data(struct phr_chunked_decoder *decoder);

#define CPH_H1RESP_MAX_HEADERS 100
#define CPH_H1RESP_MAX_HEAD (64 * 1024) /* a longer head is refused */

typedef enum en_cph_h1resp_framing_t {
    CPH_H1RESP_NO_BODY = 0,   /* HEAD, 1xx, 204, 304 */
    CPH_H1RESP_LENGTH = 1,    /* Content-Length */
    CPH_H1RESP_CHUNKED = 2,   /* Transfer-Encoding: chunked */
    CPH_H1RESP_UNTIL_EOF = 3, /* neither: the body ends when the upstream closes */
} cph_h1resp_framing_t;

typedef struct st_cph_h1resp_t {
    int minor_version;
    int status;
    const char *msg;
    size_t msg_len;
    cph_h1resp_framing_t framing;
    size_t content_length; /* SIZE_MAX unless framing is LENGTH */
    size_t remaining;      /* LENGTH: body bytes still expected */
    int keepalive;         /* the connection may carry another request after this response */
    struct phr_chunked_decoder chunked;
} cph_h1resp_t;

/**
 * Parses a response head at buf[0..len). is_head: the request was HEAD (no body whatever the headers say). headers
 * has room for *num_headers entries; on success *num_headers is the number parsed.
 * Returns the head length (> 0) and fills r and headers (pointers into buf), -2 when more bytes are needed, or -1
 * on a head longer than CPH_H1RESP_MAX_HEAD (complete or not) or a malformed one: bad status line or header, a
 * status outside 100..599, conflicting or invalid Content-Length, a Transfer-Encoding other than chunked, both
 * Content-Length and Transfer-Encoding, too many headers. A 1xx head (other than 101, which is -1: we never upgrade) parses normally; the caller skips it.
 */
int cph_h1resp_parse_head(cph_h1resp_t *r, const char *buf, size_t len, int is_head, struct phr_header *headers,
                          size_t *num_headers);

/**
 * Decodes body bytes in place: on entry buf[0..*len) is what was read, on return buf[0..*len) is payload to forward
 * and *extra is the number of bytes past the end of the body (they spoil the connection: no reuse). Returns 1 when
 * the body is complete, 0 when more is expected, -1 on a malformed chunked encoding. UNTIL_EOF never completes here:
 * the caller ends it on EOF.
 */
int cph_h1resp_decode_body(cph_h1resp_t *r, char *buf, size_t *len, size_t *extra);

/** Whether an EOF from the upstream at this point ends the body cleanly (UNTIL_EOF only). */
int cph_h1resp_eof_is_end(const cph_h1resp_t *r);

#endif
