/*
 * filter/pdf: the stage of routes of kind "pdf" (PROTOCOL.md section 5, "pdf route"; docs/dataplane.md "PDF
 * routes"). It runs after the route's policies (edge limits, authn, authz, rate limits) and answers every request of
 * such a route itself; requests of other routes pass on untouched (one test of route->kind).
 *
 * Render mode: POST with a text/html, text/markdown or application/json body (core/markdown.h builds the document),
 * rendered by a child of the process' render pool (core/pdf.h) off the event loop; 405 / 413 / 415 / 400 before any
 * render, 503 + Retry-After when the pool and its queue are full, 504 when the render timed out, 502 when it failed.
 * The job is tied to the request: a request whose pool is cleared (an HTTP/2 reset, a closed connection) cancels it,
 * and the job's tick asks whether the client's socket is still open (an HTTP/1 client that hung up is seen by its EOF,
 * since h2o reads nothing while a request runs), so nobody's render keeps a slot for a client that left.
 * Source mode (GET: render the HTML the route's service answers) is filter/pdf_source.c's.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include "proto/log.h"
#include "dataplane/core/markdown.h"
#include "dataplane/core/pdf.h"
#include "dataplane/core/respond.h"
#include "dataplane/compile/router.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/pdf.h"

#define MODULE "dp/filter/pdf"

typedef struct st_pdf_state_t {
    cph_req_t *r;
    cph_pdf_job_t *job; /* NULL once done or cancelled */
} pdf_state_t;

typedef enum en_body_type_t { BODY_OTHER = 0, BODY_HTML, BODY_MARKDOWN, BODY_JSON } body_type_t;

/* The media type of Content-Type, parameters (charset) ignored. */
static body_type_t body_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    h2o_iovec_t v;
    size_t len;

    if (i == -1)
        return BODY_OTHER;
    v = req->headers.entries[i].value;
    for (len = 0; len != v.len && v.base[len] != ';'; len++)
        ;
    while (len != 0 && (v.base[len - 1] == ' ' || v.base[len - 1] == '\t'))
        len--;
    if (h2o_lcstris(v.base, len, H2O_STRLIT("text/html")))
        return BODY_HTML;
    if (h2o_lcstris(v.base, len, H2O_STRLIT("text/markdown")))
        return BODY_MARKDOWN;
    if (h2o_lcstris(v.base, len, H2O_STRLIT("application/json")))
        return BODY_JSON;
    return BODY_OTHER;
}

static void on_state_dispose(void *p)
{
    pdf_state_t *st = p;

    if (st->job != NULL)
        cph_pdf_job_cancel(st->job);
    st->job = NULL;
}

/* Whether the client still holds its connection: EOF on its socket means it hung up. */
static int client_alive(void *ud)
{
    pdf_state_t *st = ud;
    h2o_conn_t *conn = st->r->req->conn;
    h2o_socket_t *sock = conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
    char c;
    ssize_t n;

    if (sock == NULL)
        return 1;
    n = recv(h2o_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

static void send_pdf(cph_req_t *r, h2o_iovec_t pdf)
{
    h2o_req_t *req = r->req;
    const char *filename = r->route->pdf->filename;
    h2o_iovec_t disposition = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("attachment; filename=\"")),
                                         h2o_iovec_init(filename, strlen(filename)), h2o_iovec_init(H2O_STRLIT("\"")));

    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = pdf.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT("cephalo"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/pdf"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL, disposition.base, disposition.len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    cph_pipeline_response_headers(r);
    h2o_send_inline(req, pdf.base, pdf.len);
}

static void on_done(void *ud, cph_pdf_result_t result, h2o_iovec_t pdf, uint64_t render_us)
{
    pdf_state_t *st = ud;
    cph_req_t *r = st->r;
    cph_worker_stats_t *stats = r->worker->stats;

    st->job = NULL;
    if (stats != NULL && result != CPH_PDF_CANCELLED) {
        cph_stats_pdf_observe(stats, render_us);
        if (result == CPH_PDF_OK && r->route->metric_id < CPH_STATS_MAX_ROUTES)
            cph_counter_add(&stats->pdf_renders[r->route->metric_id], 1);
        else if (result < CPH_PDF_FAIL_REASONS)
            cph_counter_add(&stats->pdf_failures[result], 1);
    }
    switch (result) {
    case CPH_PDF_OK:
        send_pdf(r, pdf);
        break;
    case CPH_PDF_FAIL_TIMEOUT:
        cph_respond_error_r(r, 504, "pdf_timeout", "The PDF render took longer than the route allows");
        break;
    case CPH_PDF_FAIL_TOO_LARGE:
        cph_respond_error_r(r, 502, "pdf_too_large", "The rendered PDF is larger than the route allows");
        break;
    case CPH_PDF_CANCELLED: /* nobody reads this */
        cph_respond_error_r(r, 503, "pdf_cancelled", "The client went away");
        break;
    default:
        cph_respond_error_r(r, 502, "pdf_failed", "The PDF could not be rendered");
        break;
    }
}

static void respond_busy(cph_req_t *r)
{
    if (r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->pdf_failures[CPH_PDF_FAIL_BUSY], 1);
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    cph_respond_error_r(r, 503, "pdf_busy", "Every PDF renderer is busy and the queue is full; retry later");
}

void cph_pdf_render_start(cph_req_t *r, char *html, size_t len, const cph_pdf_page_t *page, const char *title)
{
    const cph_pdf_route_t *cfg = r->route->pdf;
    pdf_state_t *st = h2o_mem_alloc_shared(&r->req->pool, sizeof(*st), on_state_dispose);
    cph_pdf_spec_t spec = {.page = *page,
                           .title = title,
                           .max_output_bytes = cfg->max_output_bytes,
                           .timeout_ms = cfg->timeout_ms,
                           .on_done = on_done,
                           .alive = client_alive,
                           .ud = st};

    *st = (pdf_state_t){.r = r};
    st->job = cph_pdf_job_create(r->worker->ctx.loop, &spec, html, len);
    if (cph_pdf_job_submit(st->job) != 0) {
        cph_pdf_job_cancel(st->job);
        st->job = NULL;
        respond_busy(r);
    }
}

static int render_mode(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    const cph_pdf_route_t *cfg = r->route->pdf;
    body_type_t type;
    cph_pdf_input_t in = {.page = cfg->defaults};
    const char *why = NULL;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        cph_respond_405_r(r, CPH_METHOD_POST);
        return CPH_DONE;
    }
    if (req->entity.len > cfg->max_input_bytes) {
        cph_respond_error_r(r, 413, "payload_too_large", "The document is larger than the route's max_input_bytes");
        return CPH_DONE;
    }
    if ((type = body_type(req)) == BODY_OTHER) {
        cph_respond_error_r(r, 415, "unsupported_media_type", "Send text/html, text/markdown or application/json");
        return CPH_DONE;
    }
    if (type == BODY_JSON) {
        if (cph_markdown_parse_json(req->entity.base, req->entity.len, &cfg->defaults, &in, &why) != 0) {
            cph_respond_error_r(r, 400, "invalid_request", why);
            return CPH_DONE;
        }
    } else if (cph_markdown_document(type == BODY_MARKDOWN, req->entity.base != NULL ? req->entity.base : "", req->entity.len, NULL,
                                     NULL, 0, &in.doc) != 0) {
        cph_respond_error_r(r, 400, "invalid_request", "The Markdown could not be converted");
        return CPH_DONE;
    }
    cph_pdf_render_start(r, in.doc.base, in.doc.len, &in.page, in.title);
    in.doc = (cph_doc_t){NULL, 0, 0}; /* the job's now */
    cph_pdf_input_dispose(&in);
    return CPH_DONE;
}

int cph_pdf_on_req(cph_req_t *r)
{
    if (r->route == NULL || r->route->kind != CPH_ROUTE_PDF || r->route->pdf == NULL)
        return CPH_NEXT;
    if (r->route->pdf->source) {
        cph_pdf_source_start(r);
        return CPH_DONE;
    }
    return render_mode(r);
}
