/*
 * filter/sanitize: the first stage. It replaces the raw request path with its canonical form
 * (cph_path_canonicalize: decoded once, dot segments resolved, slashes merged) and keeps the raw query apart, so the
 * router and the upstream see exactly the same path; a path the normaliser refuses is answered 400 bad_path.
 *
 * Later: header caps, stripping spoofed internal headers, the request id.
 */
#include <string.h>
#include "proto/proto.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/sanitize"

int cph_sanitize_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    size_t path_len = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len, outlen;
    char *out = h2o_mem_alloc_pool(&req->pool, 3 * path_len + 1);

    if (cph_path_canonicalize(req->input.path.base, path_len, out, &outlen) != 0) {
        cph_respond_error(req, 400, "bad_path", "The request path is not acceptable");
        return CPH_DONE;
    }
    r->path = h2o_iovec_init(out, outlen);
    r->query = h2o_iovec_init(req->input.path.base + path_len, req->input.path.len - path_len);
    /* the query goes to the upstream as is: no byte that could end the request line (HTTP/2 :path is not checked
     * as strictly as an HTTP/1 request line) */
    for (size_t i = 0; i != r->query.len; ++i) {
        unsigned char c = (unsigned char)r->query.base[i];
        if (c <= 0x20 || c == 0x7f) {
            cph_respond_error(req, 400, "bad_request", "The query string is not acceptable");
            return CPH_DONE;
        }
    }
    return CPH_NEXT;
}
