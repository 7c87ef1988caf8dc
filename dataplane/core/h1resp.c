/*
 * h1resp: the framing rules of an upstream HTTP/1.1 response (RFC 9112 section 6), kept apart from the socket code
 * so that hostile responses can be unit-tested byte by byte.
 *
 * picohttpparser splits the head; we decide the body framing: no body for HEAD, 1xx, 204 and 304; chunked when
 * Transfer-Encoding says so; Content-Length when present and consistent; otherwise the body runs until the upstream
 * closes. Anything ambiguous (Content-Length with Transfer-Encoding, two different lengths, a coding we do not
 * implement, an obs-fold line) is an error, as in nginx since 1.21.1: a proxy that guesses is a request-smuggling
 * vector, and the connection is never reused after an error.
 */
#include <string.h>
#include <strings.h>
#include "dataplane/core/h1resp.h"

#define MODULE "dp/core/h1resp"

static int name_is(const struct phr_header *h, const char *lit)
{
    size_t n = strlen(lit);
    return h->name_len == n && strncasecmp(h->name, lit, n) == 0;
}

/* Whether the comma-separated list v contains token (case-insensitive, optional whitespace). */
static int has_token(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;

    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            ++i;
        size_t start = i;
        while (i < len && v[i] != ',')
            ++i;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            --end;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return 1;
    }
    return 0;
}

/* Decimal digits only, at most 18 of them: SIZE_MAX on anything else. */
static size_t parse_length(const char *v, size_t len)
{
    size_t n = 0;

    while (len != 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        --len;
    while (len != 0 && (*v == ' ' || *v == '\t'))
        ++v, --len;
    if (len == 0 || len > 18)
        return SIZE_MAX;
    for (size_t i = 0; i != len; ++i) {
        if (v[i] < '0' || v[i] > '9')
            return SIZE_MAX;
        n = n * 10 + (size_t)(v[i] - '0');
    }
    return n;
}

/* Reads Connection, Content-Length and Transfer-Encoding; -1 on a conflict. */
static int scan_headers(cph_h1resp_t *r, const struct phr_header *headers, size_t num_headers, int *chunked)
{
    *chunked = 0;
    for (size_t i = 0; i != num_headers; ++i) {
        const struct phr_header *h = &headers[i];
        if (h->name == NULL)
            return -1; /* obsolete line folding */
        if (name_is(h, "connection")) {
            if (has_token(h->value, h->value_len, "close"))
                r->keepalive = 0;
        } else if (name_is(h, "content-length")) {
            size_t n = parse_length(h->value, h->value_len);
            if (n == SIZE_MAX || (r->content_length != SIZE_MAX && r->content_length != n))
                return -1;
            r->content_length = n;
        } else if (name_is(h, "transfer-encoding")) {
            const char *v = h->value;
            size_t len = h->value_len;
            while (len != 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                --len;
            while (len != 0 && (*v == ' ' || *v == '\t'))
                ++v, --len;
            if (*chunked || len != 7 || strncasecmp(v, "chunked", 7) != 0)
                return -1;
            *chunked = 1;
        }
    }
    return 0;
}

int cph_h1resp_parse_head(cph_h1resp_t *r, const char *buf, size_t len, int is_head, struct phr_header *headers,
                          size_t *num_headers)
{
    int chunked, ret;

    ret = phr_parse_response(buf, len, &r->minor_version, &r->status, &r->msg, &r->msg_len, headers, num_headers, 0);
    if (ret < 0)
        return ret == -2 && len < CPH_H1RESP_MAX_HEAD ? -2 : -1;
    if ((size_t)ret > CPH_H1RESP_MAX_HEAD)
        return -1; /* complete, but over the cap all the same */
    if (r->status < 100 || r->status > 599 || r->status == 101)
        return -1;
    r->content_length = SIZE_MAX;
    r->keepalive = r->minor_version >= 1;
    memset(&r->chunked, 0, sizeof(r->chunked));
    r->chunked.consume_trailer = 1;
    if (scan_headers(r, headers, *num_headers, &chunked) != 0 || (chunked && r->content_length != SIZE_MAX))
        return -1;
    if (is_head || r->status < 200 || r->status == 204 || r->status == 304) {
        r->framing = CPH_H1RESP_NO_BODY;
    } else if (chunked) {
        r->framing = CPH_H1RESP_CHUNKED;
    } else if (r->content_length != SIZE_MAX) {
        r->framing = CPH_H1RESP_LENGTH;
        r->remaining = r->content_length;
    } else {
        r->framing = CPH_H1RESP_UNTIL_EOF;
        r->keepalive = 0;
    }
    return ret;
}

int cph_h1resp_decode_body(cph_h1resp_t *r, char *buf, size_t *len, size_t *extra)
{
    ssize_t ret;

    *extra = 0;
    switch (r->framing) {
    case CPH_H1RESP_NO_BODY:
        *extra = *len;
        *len = 0;
        return 1;
    case CPH_H1RESP_LENGTH:
        if (*len >= r->remaining) {
            *extra = *len - r->remaining;
            *len = r->remaining;
            r->remaining = 0;
            return 1;
        }
        r->remaining -= *len;
        return 0;
    case CPH_H1RESP_CHUNKED:
        ret = phr_decode_chunked(&r->chunked, buf, len);
        if (ret == -1)
            return -1;
        if (ret == -2)
            return 0;
        *extra = (size_t)ret;
        return 1;
    case CPH_H1RESP_UNTIL_EOF:
        return 0;
    }
    return -1;
}

int cph_h1resp_eof_is_end(const cph_h1resp_t *r)
{
    return r->framing == CPH_H1RESP_UNTIL_EOF;
}
