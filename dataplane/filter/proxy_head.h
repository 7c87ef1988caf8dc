/*
 * filter/proxy_head: request head building and response header filtering for filter/proxy.c.
 */
#ifndef CPH_FILTER_PROXY_HEAD_H
#define CPH_FILTER_PROXY_HEAD_H

#include "dataplane/core/pipeline.h"

/** Case-insensitive equality of s[0..len) with a lower-case literal (length first: cheap on a mismatch). */
static inline int cph_lc_eq(const char *s, size_t len, const char *lit, size_t litlen)
{
    if (len != litlen)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i], l = lit[i];
        if (c != l && !(l >= 'a' && l <= 'z' && (c | 0x20) == l))
            return 0;
    }
    return 1;
}
#define CPH_LC_EQ(s, len, lit) cph_lc_eq((s), (len), lit, sizeof(lit) - 1)

/**
 * The HTTP/1.1 request head for the upstream (allocated from r->req->pool): method, r->upstream_path, Host =
 * target->authority, the client's end-to-end headers, Content-Length when the request has a body, X-Forwarded-*.
 */
h2o_iovec_t cph_proxy_build_head(cph_req_t *r, const cph_target_t *target);

/**
 * Whether a response header must not reach the client: hop-by-hop, framing and Date (h2o writes its own), Server
 * (ours), or named in the response's Connection header (connection: its value, or empty).
 */
int cph_proxy_drop_response_header(const char *name, size_t len, h2o_iovec_t connection);

#endif
