/*
 * credentials: the headers the data plane adds to every upstream request of a service (PROTOCOL.md section 5,
 * "service credentials"; the control plane resolves them from Vault). Compiled by dataplane/compile/credentials.c
 * into the snapshot's arena, read on the hot path by filter/proxy_head.c (the request head) and filter/proxy.c /
 * filter/websocket.c (the 503 when the control plane could not resolve them). A service without credentials has
 * service->credentials == NULL and pays one pointer test per request.
 *
 * The values are secrets: nothing here or in its users logs them.
 */
#ifndef CPH_CREDENTIALS_H
#define CPH_CREDENTIALS_H

#include "dataplane/core/snapshot.h"

#define CPH_CREDENTIALS_MAX_HEADERS 8

typedef struct st_cph_credential_header_t {
    h2o_iovec_t name;  /* lower-case token, NUL-terminated */
    h2o_iovec_t value; /* as the control plane resolved it, NUL-terminated */
} cph_credential_header_t;

typedef struct st_cph_credentials_t {
    const char *source; /* "vault:<path>@<version>": which secret version is in force (no secret in it) */
    const char *error;  /* NULL = the headers are in force; else why not (no secret in it): the service answers 503 */
    cph_credential_header_t *headers;
    size_t num_headers; /* 1-8 without error, 0 with */
    h2o_iovec_t block;  /* every header as "name: value\r\n", in order: copied as is into the request head */
    int has_cookie;     /* one of the names is "cookie": the client's Cookie lines are not joined and forwarded */
} cph_credentials_t;

/** The 503 answer of a service whose credentials carry an error. */
#define CPH_CREDENTIALS_UNAVAILABLE_CODE "credentials_unavailable"
#define CPH_CREDENTIALS_UNAVAILABLE_MSG "The upstream credentials of the service are not available"

/**
 * body["services"][index]["credentials"] -> svc->credentials (arena memory of snap; NULL when the member is absent).
 * Defensive although the body was validated: a name that is not a lower-case token, one that
 * cph_credentials_header_forbidden refuses or that starts with the snapshot's identity prefix (body auth.header_prefix,
 * default "x-cephalo-", read with '_' as '-'), a value holding a control byte other than tab, a repeated name, or not
 * exactly one of headers and error is a nack {"invalid", "/services/<index>/credentials..."}; messages never quote a
 * value. Returns 0 or -1 with err filled. Called by cph_proxy_compile for each service after the service itself.
 */
int cph_credentials_compile(cph_snapshot_t *snap, cph_service_t *svc, const json_t *body, size_t index, cph_error_t *err);

/** Whether creds (non-NULL) injects a header named name[0..len) (compared without case: the names are lower-case). */
static inline int cph_credentials_injects(const cph_credentials_t *creds, const char *name, size_t len)
{
    for (size_t i = 0; i != creds->num_headers; ++i) {
        const cph_credential_header_t *h = &creds->headers[i];
        if (h->name.len != len)
            continue;
        size_t k = 0;
        while (k != len &&
               (name[k] == h->name.base[k] || (name[k] >= 'A' && name[k] <= 'Z' && (name[k] | 0x20) == h->name.base[k])))
            ++k;
        if (k == len)
            return 1;
    }
    return 0;
}

#endif
