/*
 * http_client: the libcurl plumbing the control plane's outgoing HTTP clients share - the JWKS fetcher
 * (sync_jwks.c), the Vault client (vault.c) and the Consul watches (sync_consul.c). The servers they call are not
 * ours, so every transfer is held the same way: http/https only (https verified), no redirect followed, a connect
 * timeout and a total timeout, an answer capped while it arrives, no signals, and an optional stop flag that aborts
 * a transfer within about a second. Secrets (tokens) travel only in header lines, which are wiped when freed.
 */
#ifndef CPH_HTTP_CLIENT_H
#define CPH_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <curl/curl.h>
#include "proto/proto.h"

/** An answer being received: grows up to max bytes, always NUL-terminated once it holds any byte. */
typedef struct st_cph_http_buf_t {
    char *data; /* malloc'ed, or NULL while empty */
    size_t len;
    size_t max;   /* a transfer that would go past this is aborted (too_big set) */
    int too_big;  /* the answer was over max: data holds only its first bytes */
    int wipe;     /* cph_http_buf_free wipes data first (it may hold a token or a secret) */
    size_t alloc; /* bytes allocated at data (private) */
} cph_http_buf_t;

/** An empty buffer for an answer of at most max bytes; wipe: 1 when the answer may hold a secret. */
#define CPH_HTTP_BUF_INIT(max, wipe)                                                                                               \
    {                                                                                                                              \
        NULL, 0, (max), 0, (wipe), 0                                                                                               \
    }

/** How a transfer is held; the same for every call of one client. */
typedef struct st_cph_http_opts_t {
    long connect_timeout_ms;
    long timeout_ms;            /* the whole transfer, connect included; 0 = none (libcurl's default) */
    atomic_int *stop;           /* NULL, or aborts the transfer once non-zero (CURLE_ABORTED_BY_CALLBACK) */
    struct curl_slist *headers; /* borrowed, may be NULL; must outlive the transfer */
} cph_http_opts_t;

/**
 * Sets the common options on easy handle c for a GET of url whose answer goes into b: http/https only, https peer
 * and host verified, no redirect, the timeouts, the size cap (b->max, also as CURLOPT_MAXFILESIZE_LARGE), NOSIGNAL,
 * the user agent, o->headers and, when o->stop is set, the progress callback that honours it. The caller may set
 * more options afterwards (method, body, private pointer) and runs the transfer itself (easy or multi handle).
 */
void cph_http_setup(CURL *c, const char *url, const cph_http_opts_t *o, cph_http_buf_t *b);

/**
 * One blocking transfer: method ("GET", "POST", or any other verb sent as is, e.g. "LIST") on url with body (NULL =
 * none; a POST without body sends an empty one) set up as cph_http_setup. Returns CURLE_OK with *status the HTTP
 * status and the answer in b (any status: the caller judges it), or the libcurl failure - CURLE_FILESIZE_EXCEEDED
 * for an answer over b->max, CURLE_FAILED_INIT when no handle could be made - with b freed (cph_http_buf_free) and
 * *status whatever arrived (0 = no answer).
 */
CURLcode cph_http_call(const char *method, const char *url, const char *body, const cph_http_opts_t *o, long *status,
                       cph_http_buf_t *b);

/** Frees b's data (wiped first when b->wipe) and empties b; b keeps its max and wipe. */
void cph_http_buf_free(cph_http_buf_t *b);

/**
 * Appends the header line "name: value" to list (NULL starts one) and returns the list; the line's temporary copy is
 * wiped, so a token passed as value lives only in the list, which cph_http_headers_free wipes. Out of memory aborts.
 */
struct curl_slist *cph_http_header_add(struct curl_slist *list, const char *name, const char *value);

/** Wipes every line of list (they may carry a token) and frees it (NULL is fine). */
void cph_http_headers_free(struct curl_slist *list);

/** curl_global_init for a client thread's start; -1 with err {internal} when libcurl cannot start. */
int cph_http_global_init(cph_error_t *err);
/** The matching curl_global_cleanup. */
void cph_http_global_cleanup(void);

#endif
