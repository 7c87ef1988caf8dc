/*
 * markdown: the HTML document a PDF render is fed (core/pdf.h): Markdown turned into HTML by md4c, a minimal
 * document around it (UTF-8, the title), a client stylesheet made inert as a <style> element, and the JSON form of a
 * render request. Plain C strings in and malloc'd buffers out, so filter/pdf.c needs no JSON library.
 */
#ifndef CPH_MARKDOWN_H
#define CPH_MARKDOWN_H

#include <stddef.h>
#include "dataplane/core/pdf.h"

/** A growable byte buffer (malloc'd; base NULL when empty). */
typedef struct st_cph_doc_t {
    char *base;
    size_t len, cap;
} cph_doc_t;

/** Appends len bytes. */
void cph_doc_append(cph_doc_t *d, const char *s, size_t len);
/** Frees the buffer and empties d. */
void cph_doc_dispose(cph_doc_t *d);

/** Markdown (md4c, GitHub dialect) -> an HTML fragment appended to out. Returns 0, or -1 when md4c fails. */
int cph_markdown_to_html(const char *md, size_t len, cph_doc_t *out);

/**
 * Appends css as a <style> element whose content cannot end it: every "</style" (any case) is written "<\/style"
 * (the same in CSS, inert in HTML). Nothing is appended for an empty css.
 */
void cph_markdown_style(cph_doc_t *out, const char *css, size_t css_len);

/**
 * The document for the renderer. markdown: a minimal HTML document (doctype, UTF-8 meta, the HTML-escaped title or
 * "Document", the stylesheet, the rendered Markdown); else html is used as given, with the stylesheet inserted after
 * its <head> tag when it has one, else in front of it. Returns 0, or -1 (Markdown md4c refused) with out empty.
 */
int cph_markdown_document(int markdown, const char *in, size_t in_len, const char *title, const char *css, size_t css_len,
                          cph_doc_t *out);

/** A render request read from a JSON body (cph_markdown_parse_json). */
typedef struct st_cph_pdf_input_t {
    cph_doc_t doc;       /* the document for the renderer */
    cph_pdf_page_t page; /* the route's defaults with the request's options applied */
    char *title;         /* malloc'd, or NULL */
} cph_pdf_input_t;

/**
 * Reads `{"html": str | "markdown": str, "options": {page_size, orientation, margins_mm {top,right,bottom,left},
 * title, stylesheet}}` (exactly one of html / markdown; unknown members, wrong types, out-of-range values, NUL bytes
 * refused) into in, starting from the page defaults. Returns 0, or -1 with *why set to a constant sentence for a
 * 400 body (in left empty).
 */
int cph_markdown_parse_json(const char *body, size_t len, const cph_pdf_page_t *defaults, cph_pdf_input_t *in, const char **why);
/** Frees what cph_markdown_parse_json or the caller put into in. */
void cph_pdf_input_dispose(cph_pdf_input_t *in);

#endif
