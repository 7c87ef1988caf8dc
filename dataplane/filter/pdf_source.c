/*
 * filter/pdf_source: source mode of routes of kind "pdf" (PROTOCOL.md section 5, "pdf route"): a GET fetches the
 * request's upstream path from the route's service and the HTML it answers is rendered to PDF (filter/pdf.h).
 *
 * The fetch is one buffered exchange of filter/fetch.c, a proxied exchange as far as the service can tell: the
 * proxy's admission (max_requests), target pick (load balancing, breaker and health), connect slot (max_pending),
 * retries and outcome accounting, its keep-alive pools, the route's timeouts, and the proxy's head builder: the
 * client's end-to-end headers, X-Forwarded-*, the identity headers and the service's credentials, exactly as a proxied
 * request gets them. Content negotiation and conditional headers are not passed on (the gateway needs a whole HTML
 * page) and Accept is text/html.
 *
 * The answer must be a 2xx text/html (or application/xhtml+xml) page of at most the route's max_input_bytes; anything
 * else is 502 with a reason, a timeout 504, no admissible target 503. A client that leaves (the request pool's
 * dispose) cancels the fetch (ABANDONED).
 */
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/router.h"
#include "dataplane/core/credentials.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/fetch.h"
#include "dataplane/filter/pdf.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/filter/pdf_source"

typedef struct st_source_t {
    cph_req_t *r;
    cph_fetch_t *fetch;
} source_t;

static void on_dispose(void *p)
{
    source_t *s = p;

    cph_fetch_cancel(s->fetch, CPH_OUTCOME_ABANDONED);
}

static void too_large(source_t *s)
{
    if (s->r->worker->stats != NULL)
        cph_counter_add(&s->r->worker->stats->pdf_failures[CPH_PDF_FAIL_TOO_LARGE], 1);
    cph_respond_error_r(s->r, 502, "pdf_source_too_large", "The service's page is larger than the route's max_input_bytes");
}

/* Whether the head's Content-Type is an HTML page. */
static int is_html(const struct phr_header *headers, size_t n)
{
    for (size_t i = 0; i != n; i++) {
        if (!CPH_LC_EQ(headers[i].name, headers[i].name_len, "content-type"))
            continue;
        size_t len = 0;
        while (len != headers[i].value_len && headers[i].value[len] != ';' && headers[i].value[len] != ' ')
            len++;
        return CPH_LC_EQ(headers[i].value, len, "text/html") || CPH_LC_EQ(headers[i].value, len, "application/xhtml+xml");
    }
    return 0;
}

/* A fetch that produced no page: the answer the proxy would give for the same failure. */
static void answer_failure(source_t *s, const cph_fetch_result_t *res)
{
    cph_req_t *r = s->r;

    switch (res->error) {
    case CPH_FETCH_CREDENTIALS:
        cph_respond_error_r(r, 503, CPH_CREDENTIALS_UNAVAILABLE_CODE, "The service's credentials are unavailable");
        break;
    case CPH_FETCH_NO_TARGET:
        cph_respond_error_r(r, 503, "no_upstream", "The service has no target");
        break;
    case CPH_FETCH_OVERLOADED: /* counted by the fetch */
        cph_pipeline_add_response_header(r, H2O_STRLIT("retry-after"), H2O_STRLIT("1"));
        cph_respond_error_r(r, 503, "upstream_overloaded", "The service has too many requests in progress");
        break;
    case CPH_FETCH_NO_HEALTHY:
        cph_respond_error_r(r, 503, "no_healthy_upstream", "No target of the service can take the request");
        break;
    case CPH_FETCH_CONNECT:
        cph_respond_error_r(r, 502, "upstream_connect_failed", "The service could not be reached");
        break;
    case CPH_FETCH_TIMEOUT:
        cph_respond_error_r(r, 504, "upstream_timeout", "The service did not answer the page in time");
        break;
    default:
        cph_respond_error_r(r, 502, "bad_gateway", "The service's answer could not be read");
        break;
    }
}

/* The fetch is over: a 2xx HTML page within the cap is rendered, anything else is 502 with a reason. */
static void on_fetched(void *data, const cph_fetch_result_t *res)
{
    source_t *s = data;
    cph_req_t *r = s->r;

    s->fetch = NULL;
    if (res->error != CPH_FETCH_OK && res->error != CPH_FETCH_TOO_LARGE) {
        answer_failure(s, res);
    } else if (res->status < 200 || res->status > 299) {
        cph_respond_error_r(r, 502, "pdf_source_status", "The service did not answer the page with a 2xx status");
    } else if (!is_html(res->headers, res->num_headers)) {
        cph_respond_error_r(r, 502, "pdf_source_not_html", "The service's answer is not text/html");
    } else if (res->error == CPH_FETCH_TOO_LARGE) {
        too_large(s);
    } else {
        char *html = malloc(res->body.len + 1);
        if (html == NULL)
            cph_fatal(MODULE, "out of memory");
        memcpy(html, res->body.base, res->body.len);
        html[res->body.len] = '\0';
        cph_pdf_render_start(r, html, res->body.len, &r->route->pdf->defaults, NULL);
    }
}

/* The client's headers but negotiation, conditions and the body's description; Accept text/html. */
static h2o_headers_t *page_headers(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    h2o_headers_t *mine = h2o_mem_alloc_pool(&req->pool, sizeof(*mine));

    *mine = (h2o_headers_t){NULL, 0, 0};
    h2o_vector_reserve(&req->pool, mine, req->headers.size + 1);
    for (size_t i = 0; i != req->headers.size; ++i) {
        const char *n = req->headers.entries[i].name->base;
        size_t len = req->headers.entries[i].name->len;
        if (CPH_LC_EQ(n, len, "accept") || CPH_LC_EQ(n, len, "accept-encoding") || CPH_LC_EQ(n, len, "range") ||
            CPH_LC_EQ(n, len, "if-range") || (len > 3 && CPH_LC_EQ(n, 3, "if-")) || CPH_LC_EQ(n, len, "content-type") ||
            CPH_LC_EQ(n, len, "content-encoding"))
            continue;
        mine->entries[mine->size++] = req->headers.entries[i];
    }
    h2o_add_header(&req->pool, mine, H2O_TOKEN_ACCEPT, NULL, H2O_STRLIT("text/html"));
    return mine;
}

void cph_pdf_source_start(cph_req_t *r)
{
    source_t *s;
    cph_fetch_req_t freq = {
        .r = r, .method = h2o_iovec_init(H2O_STRLIT("GET")), .max_body = r->route->pdf->max_input_bytes, .cb = on_fetched};

    if (!h2o_memis(r->req->method.base, r->req->method.len, H2O_STRLIT("GET"))) {
        cph_respond_405_r(r, CPH_METHOD_GET);
        return;
    }
    s = h2o_mem_alloc_shared(&r->req->pool, sizeof(*s), on_dispose);
    *s = (source_t){.r = r};
    freq.headers = page_headers(r);
    freq.data = s;
    s->fetch = cph_fetch_start(&freq); /* one that already called back is done: cancelling it is a no-op */
}
