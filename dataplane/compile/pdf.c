/*
 * compile/pdf: routes of kind "pdf" (PROTOCOL.md section 5, "pdf route") -> route->kind = CPH_ROUTE_PDF and
 * route->pdf (core/pdf.h), with the defaults of every absent member filled in.
 *
 * The body was validated before (proto/schema_pdf.c); compile still refuses what it cannot represent (a value out of
 * range, an unknown enum spelling), so a validator gap becomes a NACK rather than a route nobody asked for. Routes
 * are matched to snap->routes by index, as every route compile step does.
 */
#include <stdio.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/pdf.h"

#define MODULE "dp/compile/pdf"

/* Index of the string member key of obj in values (NULL-terminated), dflt when absent; -1 when not one of them. */
static int enum_member(const json_t *obj, const char *key, const char *const *values, int dflt)
{
    const json_t *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v))
        return dflt;
    for (int i = 0; json_is_string(v) && values[i] != NULL; i++)
        if (strcmp(values[i], json_string_value(v)) == 0)
            return i;
    return -1;
}

static int compile_defaults(cph_pdf_page_t *page, const json_t *d, const char *at, cph_error_t *err)
{
    static const char *const orientations[] = {"portrait", "landscape", NULL};
    static const char *const sides[] = {"top", "right", "bottom", "left"};
    const json_t *m = json_object_get(d, "margins_mm");
    int size = enum_member(d, "page_size", cph_pdf_page_size_names, CPH_PDF_A4);
    int orientation = enum_member(d, "orientation", orientations, 0);
    char mat[160];

    if (size < 0 || orientation < 0)
        return cph_error_set(err, "invalid", at, "defaults: unknown page_size or orientation");
    page->size = (uint8_t)size;
    page->landscape = (uint8_t)orientation;
    snprintf(mat, sizeof(mat), "%.140s/margins_mm", at);
    for (size_t i = 0; i != 4; i++) {
        uint64_t mm;
        if (cph_compile_u64(m, sides[i], 0, 100, 10, &mm, mat, err) != 0)
            return -1;
        page->margins_mm[i] = (uint8_t)mm;
    }
    return 0;
}

static int compile_route(cph_snapshot_t *snap, cph_route_t *route, const json_t *obj, size_t i, cph_error_t *err)
{
    static const char *const modes[] = {"render", "source", NULL};
    const json_t *fn = json_object_get(obj, "filename");
    cph_pdf_route_t *p;
    int mode = enum_member(obj, "mode", modes, 0);
    char at[96], dat[128];

    snprintf(at, sizeof(at), "/routes/%zu/pdf", i);
    if (!json_is_object(obj))
        return cph_error_set(err, "invalid", at, "must be an object");
    if (mode < 0)
        return cph_error_set(err, "invalid", at, "mode must be \"render\" or \"source\"");
    if (fn != NULL && !json_is_null(fn) && (!json_is_string(fn) || strpbrk(json_string_value(fn), "\"\\\r\n;") != NULL))
        return cph_error_set(err, "invalid", at, "filename must be a plain file name");
    p = cph_arena_alloc(&snap->arena, sizeof(*p));
    memset(p, 0, sizeof(*p));
    p->source = mode == 1;
    p->filename =
        cph_arena_strdup(&snap->arena, fn != NULL && json_is_string(fn) ? json_string_value(fn) : CPH_PDF_DEFAULT_FILENAME);
    snprintf(dat, sizeof(dat), "%s/defaults", at);
    if (cph_compile_u64(obj, "max_input_bytes", 1, 16u << 20, CPH_PDF_DEFAULT_MAX_INPUT, &p->max_input_bytes, at, err) != 0 ||
        cph_compile_u64(obj, "max_output_bytes", 1024, 64u << 20, CPH_PDF_DEFAULT_MAX_OUTPUT, &p->max_output_bytes, at, err) != 0 ||
        cph_compile_u64(obj, "timeout_ms", 100, 300000, CPH_PDF_DEFAULT_TIMEOUT_MS, &p->timeout_ms, at, err) != 0 ||
        compile_defaults(&p->defaults, json_object_get(obj, "defaults"), dat, err) != 0)
        return -1;
    route->kind = CPH_ROUTE_PDF;
    route->pdf = p;
    return 0;
}

int cph_pdf_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    const json_t *routes = json_object_get(body, "routes");

    for (size_t i = 0; i != snap->num_routes && i < json_array_size(routes); ++i) {
        const json_t *route = json_array_get(routes, i), *kind = json_object_get(route, "kind");
        snap->routes[i].pdf = NULL;
        if (!json_is_string(kind) || strcmp(json_string_value(kind), "pdf") != 0)
            continue;
        if (compile_route(snap, &snap->routes[i], json_object_get(route, "pdf"), i, err) != 0)
            return -1;
    }
    return 0;
}
