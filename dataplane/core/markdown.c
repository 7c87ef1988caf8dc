/*
 * markdown: the HTML document a PDF render is fed (core/markdown.h).
 *
 * Markdown goes through md4c's md_html (the Debian library, GitHub dialect); nothing here parses Markdown. The
 * document is only assembled: a doctype, a UTF-8 meta (the renderer would otherwise guess Latin-1), the title
 * HTML-escaped, then the client's stylesheet. A stylesheet is text the client controls placed inside a <style>
 * element, so the one sequence that could end that element early, "</style", is rewritten to the CSS-equivalent
 * "<\/style"; whatever else it holds stays CSS (url() fetches hit the renderer's dead proxy like everything else).
 * The JSON form of a request is read here with jansson, as strictly as the snapshot schema reads configuration.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <md4c-html.h>
#include "proto/log.h"
#include "dataplane/core/markdown.h"

#define MODULE "dp/core/markdown"

#define MARGIN_MAX_MM 100

void cph_doc_append(cph_doc_t *d, const char *s, size_t len)
{
    if (d->len + len + 1 > d->cap) {
        size_t cap = d->cap != 0 ? d->cap : 4096;
        while (cap < d->len + len + 1)
            cap *= 2;
        if ((d->base = realloc(d->base, cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
        d->cap = cap;
    }
    if (len != 0)
        memcpy(d->base + d->len, s, len);
    d->len += len;
    d->base[d->len] = '\0';
}

void cph_doc_dispose(cph_doc_t *d)
{
    free(d->base);
    *d = (cph_doc_t){NULL, 0, 0};
}

static void on_md_output(const MD_CHAR *text, MD_SIZE size, void *ud)
{
    cph_doc_append(ud, text, size);
}

int cph_markdown_to_html(const char *md, size_t len, cph_doc_t *out)
{
    if (len > UINT32_MAX)
        return -1;
    return md_html(md, (MD_SIZE)len, on_md_output, out, MD_DIALECT_GITHUB, 0) == 0 ? 0 : -1;
}

void cph_markdown_style(cph_doc_t *out, const char *css, size_t css_len)
{
    size_t start = 0;

    if (css_len == 0)
        return;
    cph_doc_append(out, "<style>\n", 8);
    for (size_t i = 0; i + 7 <= css_len; i++) {
        if (css[i] == '<' && css[i + 1] == '/' && strncasecmp(css + i + 2, "style", 5) == 0) {
            cph_doc_append(out, css + start, i + 1 - start); /* up to and with the '<' */
            cph_doc_append(out, "\\", 1);
            start = i + 1; /* the '/' and the rest follow */
        }
    }
    cph_doc_append(out, css + start, css_len - start);
    cph_doc_append(out, "\n</style>\n", 10);
}

static void append_escaped(cph_doc_t *out, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            cph_doc_append(out, "&amp;", 5);
            break;
        case '<':
            cph_doc_append(out, "&lt;", 4);
            break;
        case '>':
            cph_doc_append(out, "&gt;", 4);
            break;
        case '"':
            cph_doc_append(out, "&quot;", 6);
            break;
        default:
            cph_doc_append(out, s, 1);
        }
    }
}

/* Where the stylesheet goes in client HTML: right after the <head ...> tag, else at the start. */
static size_t head_end(const char *html, size_t len)
{
    for (size_t i = 0; i + 5 <= len; i++) {
        if (html[i] == '<' && strncasecmp(html + i + 1, "head", 4) == 0 &&
            (i + 5 == len || html[i + 5] == '>' || html[i + 5] == ' ' || html[i + 5] == '\t' || html[i + 5] == '\n' ||
             html[i + 5] == '\r')) {
            const char *gt = memchr(html + i, '>', len - i);
            return gt != NULL ? (size_t)(gt - html) + 1 : 0;
        }
    }
    return 0;
}

int cph_markdown_document(int markdown, const char *in, size_t in_len, const char *title, const char *css, size_t css_len,
                          cph_doc_t *out)
{
    if (!markdown) {
        size_t at = css_len != 0 ? head_end(in, in_len) : 0;
        cph_doc_append(out, in, at);
        cph_markdown_style(out, css, css_len);
        cph_doc_append(out, in + at, in_len - at);
        return 0;
    }
    static const char open[] = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>";
    cph_doc_append(out, open, sizeof(open) - 1);
    append_escaped(out, title != NULL ? title : "Document");
    cph_doc_append(out, "</title>\n", 9);
    cph_markdown_style(out, css, css_len);
    cph_doc_append(out, "</head><body>\n", 14);
    if (cph_markdown_to_html(in, in_len, out) != 0) {
        cph_doc_dispose(out);
        return -1;
    }
    cph_doc_append(out, "</body></html>\n", 15);
    return 0;
}

/* ---------------------------------------------------------------- the JSON form of a request */

static int only_members(const json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL)
            return 0;
    }
    return 1;
}

/* A string member without NUL bytes of 1..max bytes (0 = no upper bound); absent is fine (*out NULL). */
static int get_string(const json_t *obj, const char *key, size_t max, const char **out, size_t *len)
{
    const json_t *v = json_object_get(obj, key);

    *out = NULL;
    *len = 0;
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || (max != 0 && json_string_length(v) > max) ||
        memchr(json_string_value(v), '\0', json_string_length(v)) != NULL)
        return -1;
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int get_enum(const json_t *obj, const char *key, const char *const *values, uint8_t *out)
{
    const json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return 0;
    for (uint8_t i = 0; json_is_string(v) && values[i] != NULL; i++) {
        if (strcmp(values[i], json_string_value(v)) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

static int apply_margins(const json_t *m, cph_pdf_page_t *page)
{
    static const char *const sides[] = {"top", "right", "bottom", "left", NULL};

    if (m == NULL)
        return 0;
    if (!json_is_object(m) || !only_members(m, sides))
        return -1;
    for (size_t i = 0; i != 4; i++) {
        const json_t *v = json_object_get(m, sides[i]);
        if (v == NULL)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MARGIN_MAX_MM)
            return -1;
        page->margins_mm[i] = (uint8_t)json_integer_value(v);
    }
    return 0;
}

/* options -> page, title, stylesheet; -1 with *why. */
static int read_options(const json_t *opts, cph_pdf_input_t *in, const char **css, size_t *css_len, const char **why)
{
    static const char *const members[] = {"page_size", "orientation", "margins_mm", "title", "stylesheet", NULL};
    static const char *const orientations[] = {"portrait", "landscape", NULL};
    const char *title;
    size_t title_len;

    *css = NULL;
    *css_len = 0;
    if (opts == NULL)
        return 0;
    if (!json_is_object(opts) || !only_members(opts, members))
        return *why = "\"options\" must be an object of page_size, orientation, margins_mm, title, stylesheet", -1;
    if (get_enum(opts, "page_size", cph_pdf_page_size_names, &in->page.size) != 0)
        return *why = "\"options.page_size\" must be one of A3, A4, A5, Letter, Legal", -1;
    if (get_enum(opts, "orientation", orientations, &in->page.landscape) != 0)
        return *why = "\"options.orientation\" must be \"portrait\" or \"landscape\"", -1;
    if (apply_margins(json_object_get(opts, "margins_mm"), &in->page) != 0)
        return *why = "\"options.margins_mm\" must be an object of top, right, bottom, left: integers 0 to 100", -1;
    if (get_string(opts, "title", CPH_PDF_TITLE_MAX, &title, &title_len) != 0 || (title != NULL && title_len == 0))
        return *why = "\"options.title\" must be a string of 1 to 256 bytes", -1;
    if (get_string(opts, "stylesheet", CPH_PDF_STYLESHEET_MAX, css, css_len) != 0)
        return *why = "\"options.stylesheet\" must be a string of at most 65536 bytes", -1;
    if (title != NULL && (in->title = strdup(title)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return 0;
}

int cph_markdown_parse_json(const char *body, size_t len, const cph_pdf_page_t *defaults, cph_pdf_input_t *in, const char **why)
{
    static const char *const members[] = {"html", "markdown", "options", NULL};
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *html, *md, *css;
    size_t html_len, md_len, css_len;
    int ret = -1;

    *in = (cph_pdf_input_t){.page = *defaults};
    if (root == NULL || !json_is_object(root)) {
        *why = "The body must be a JSON object";
        goto Exit;
    }
    if (!only_members(root, members)) {
        *why = "The body may hold \"html\" or \"markdown\", and \"options\"";
        goto Exit;
    }
    if (get_string(root, "html", 0, &html, &html_len) != 0 || get_string(root, "markdown", 0, &md, &md_len) != 0 ||
        (html == NULL) == (md == NULL)) {
        *why = "The body needs exactly one of \"html\" and \"markdown\", a string without NUL bytes";
        goto Exit;
    }
    if (read_options(json_object_get(root, "options"), in, &css, &css_len, why) != 0)
        goto Exit;
    if (cph_markdown_document(md != NULL, md != NULL ? md : html, md != NULL ? md_len : html_len, in->title, css, css_len,
                              &in->doc) != 0) {
        *why = "The Markdown could not be converted";
        goto Exit;
    }
    ret = 0;
Exit:
    if (ret != 0)
        cph_pdf_input_dispose(in);
    json_decref(root);
    return ret;
}

void cph_pdf_input_dispose(cph_pdf_input_t *in)
{
    cph_doc_dispose(&in->doc);
    free(in->title);
    in->title = NULL;
}
