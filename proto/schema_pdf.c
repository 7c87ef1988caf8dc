/*
 * schema_pdf: a "pdf" route's configuration (PROTOCOL.md section 5, "pdf route"): whether the route renders the
 * client's HTML / Markdown ("render") or the HTML its service answers ("source"), the attachment's file name, the
 * input / output / time caps of one render, and the page defaults a request's options start from.
 *
 * Every member is optional (the defaults are the data plane's, compile/pdf.c) and as strict as the rest of the
 * schema: unknown members refused, integers range-checked and never reals, enums spelled exactly. The file name goes
 * into a Content-Disposition header between quotes, so it is held to [A-Za-z0-9._-] and must end in ".pdf".
 */
#include <string.h>
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_pdf"

#define FILENAME_MAX_LEN 128
#define INPUT_MIN 1
#define INPUT_MAX (16 * 1024 * 1024)
#define OUTPUT_MIN 1024
#define OUTPUT_MAX (64 * 1024 * 1024)
#define TIMEOUT_MIN_MS 100
#define TIMEOUT_MAX_MS 300000
#define MARGIN_MAX_MM 100

static const char *const pdf_members[] = {"mode",     "filename", "max_input_bytes", "max_output_bytes", "timeout_ms",
                                          "defaults", NULL};
static const char *const defaults_members[] = {"page_size", "orientation", "margins_mm", NULL};
static const char *const margins_members[] = {"top", "right", "bottom", "left", NULL};
static const char *const mode_values[] = {"render", "source", NULL};
static const char *const page_size_values[] = {"A3", "A4", "A5", "Letter", "Legal", NULL};
static const char *const orientation_values[] = {"portrait", "landscape", NULL};

/* 1-128 of [A-Za-z0-9._-] ending in ".pdf" (and something before it). */
static int valid_filename(const char *s, size_t len)
{
    if (len < 5 || len > FILENAME_MAX_LEN || memcmp(s + len - 4, ".pdf", 4) != 0)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The margins object {"top","right","bottom","left"}, each an integer 0-100 (millimetres). */
static int check_margins(const json_t *obj, const char *base, cph_error_t *err)
{
    const json_t *m;
    char at[256];

    if (cph_schema_get_member(obj, base, "margins_mm", JSON_OBJECT, 0, &m, err) != 0)
        return -1;
    if (m == NULL)
        return 0;
    cph_schema_at_key(at, base, "margins_mm");
    if (cph_schema_check_members(m, at, margins_members, err) != 0)
        return -1;
    for (size_t i = 0; margins_members[i] != NULL; ++i)
        if (cph_schema_check_int_member(m, at, margins_members[i], 0, 0, MARGIN_MAX_MM, err) != 0)
            return -1;
    return 0;
}

static int check_defaults(const json_t *pdf, const char *base, cph_error_t *err)
{
    const json_t *d;
    size_t index;
    char at[256];

    if (cph_schema_get_member(pdf, base, "defaults", JSON_OBJECT, 0, &d, err) != 0)
        return -1;
    if (d == NULL)
        return 0;
    cph_schema_at_key(at, base, "defaults");
    if (cph_schema_check_members(d, at, defaults_members, err) != 0 ||
        cph_schema_check_enum_member(d, at, "page_size", 0, page_size_values, &index, err) != 0 ||
        cph_schema_check_enum_member(d, at, "orientation", 0, orientation_values, &index, err) != 0)
        return -1;
    return check_margins(d, at, err);
}

int cph_schema_pdf_check(const json_t *pdf, const char *base, cph_error_t *err)
{
    size_t mode;

    if (cph_schema_check_members(pdf, base, pdf_members, err) != 0 ||
        cph_schema_check_enum_member(pdf, base, "mode", 0, mode_values, &mode, err) != 0 ||
        cph_schema_check_string_member(pdf, base, "filename", 0, 0, valid_filename,
                                       "a file name: 1 to 128 of A-Z a-z 0-9 . _ - ending in \".pdf\"", err) != 0 ||
        cph_schema_check_int_member(pdf, base, "max_input_bytes", 0, INPUT_MIN, INPUT_MAX, err) != 0 ||
        cph_schema_check_int_member(pdf, base, "max_output_bytes", 0, OUTPUT_MIN, OUTPUT_MAX, err) != 0 ||
        cph_schema_check_int_member(pdf, base, "timeout_ms", 0, TIMEOUT_MIN_MS, TIMEOUT_MAX_MS, err) != 0)
        return -1;
    return check_defaults(pdf, base, err);
}
