/*
 * filter/pdf (private): what filter/pdf.c (the stage, render mode) and filter/pdf_source.c (source mode: the HTML the
 * route's service answers) share. Not included by anything else.
 */
#ifndef CPH_FILTER_PDF_H
#define CPH_FILTER_PDF_H

#include "dataplane/core/pdf.h"
#include "dataplane/core/pipeline.h"

/**
 * Renders html[0..len) (malloc'd: the render's now, whatever happens) for r with page and title (NULL or a C string,
 * copied) through the process' render pool, and answers r: the PDF, 503 busy, 504 timeout or 502.
 */
void cph_pdf_render_start(cph_req_t *r, char *html, size_t len, const cph_pdf_page_t *page, const char *title);

/**
 * Source mode: GET fetches r->upstream_path from a target of the route's service through filter/fetch.h (the proxy's
 * admission, balancer, retries, keep-alive pools, timeouts and head builder: identity headers, credentials), then
 * renders the answer when it is a 2xx text/html page within max_input_bytes, else answers 502 (503 when the service
 * admits nothing or its credentials are unavailable, 504 on a timeout, 405 for another method).
 */
void cph_pdf_source_start(cph_req_t *r);

#endif
