/*
 * fuzz_headers: the request-header pass of the data plane's first stage (cph_sanitize_headers, filter/sanitize.c) and
 * the trace-context parsers it feeds (core/trace.c), on header lists as h2o hands them over (names lower-case, the
 * well-known ones as h2o tokens, an obs-fold continuation as an empty name).
 *
 * Input: byte 0 picks the identity prefix (even: "x-cephalo-", odd: a custom "x-acme-"); the rest is lines split on
 * '\n', each "name:value" split at its first ':' (no ':': the whole line is the name, the value empty). Names are
 * lower-cased as h2o does.
 *
 * Properties (a violation traps), against an independent reference of the documented rules:
 *   - the verdict: 431 for more than CPH_SANITIZE_MAX_HEADERS headers, a value over CPH_SANITIZE_MAX_VALUE or names and
 *     values over CPH_SANITIZE_MAX_TOTAL bytes up to the first refusal; CPH_SANITIZE_MALFORMED for an empty name; 400
 *     for a name with '_' ; else 0;
 *   - on 0 the kept headers are exactly the input minus the correlation headers and every name that is the prefix
 *     with '_' read as '-', in their order: nothing the gateway writes itself survives, nothing else is lost;
 *   - the correlation values taken out are the last x-request-id, the traceparent when sent exactly once, every
 *     tracestate joined with ','; a traceparent that parses gives a 55-byte "00-<32 hex>-<16 hex>-<2 hex>" when
 *     written again, keeping its trace id.
 */
#include <ctype.h>
#include <stdint.h>
#include "fuzz_util.h"
#include "dataplane/core/trace.h"
#include "dataplane/filter/proxy_head.h"

#define MAX_LINES 400

typedef struct st_line_t {
    const char *name, *value;
    size_t name_len, value_len;
} line_t;

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (!(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* The prefix test, written again: lower-case compare with '_' as '-'. */
static int ref_has_prefix(const line_t *l, const char *prefix)
{
    size_t n = strlen(prefix);

    if (l->name_len < n)
        return 0;
    for (size_t i = 0; i != n; ++i) {
        char c = (char)tolower((unsigned char)l->name[i]);
        if ((c == '_' ? '-' : c) != prefix[i])
            return 0;
    }
    return 1;
}

static int ref_is(const line_t *l, const char *name)
{
    return l->name_len == strlen(name) && memcmp(l->name, name, l->name_len) == 0;
}

/* The reference verdict for lines[0..n). */
static int ref_verdict(const line_t *lines, size_t n)
{
    size_t total = 0;

    if (n > CPH_SANITIZE_MAX_HEADERS)
        return 431;
    for (size_t i = 0; i != n; ++i) {
        if (lines[i].value_len > CPH_SANITIZE_MAX_VALUE ||
            (total += lines[i].name_len + lines[i].value_len) > CPH_SANITIZE_MAX_TOTAL)
            return 431;
        if (lines[i].name_len == 0)
            return CPH_SANITIZE_MALFORMED;
        if (memchr(lines[i].name, '_', lines[i].name_len) != NULL)
            return 400;
    }
    return 0;
}

static size_t split(char *text, size_t len, line_t *lines)
{
    size_t n = 0;
    char *p = text, *end = text + len;

    while (p <= end && n != MAX_LINES) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *line_end = nl != NULL ? nl : end, *colon;
        colon = memchr(p, ':', (size_t)(line_end - p));
        lines[n].name = p;
        lines[n].name_len = (size_t)((colon != NULL ? colon : line_end) - p);
        lines[n].value = colon != NULL ? colon + 1 : line_end;
        lines[n].value_len = (size_t)(line_end - lines[n].value);
        for (size_t i = 0; i != lines[n].name_len; ++i)
            p[i] = (char)tolower((unsigned char)p[i]);
        ++n;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return n;
}

static void check_trace(const cph_trace_in_t *in)
{
    char trace_id[CPH_TRACE_ID_HEX], flags[2], parent[CPH_TRACEPARENT_LEN];

    if (in->traceparent.len != 0 && cph_trace_parse(in->traceparent.base, in->traceparent.len, trace_id, flags) == 0) {
        FUZZ_CHECK(is_hex(trace_id, CPH_TRACE_ID_HEX) && is_hex(flags, 2));
        cph_trace_write_parent(parent, trace_id, flags);
        FUZZ_CHECK(CPH_TRACEPARENT_LEN == 55 && memcmp(parent, "00-", 3) == 0 && memcmp(parent + 3, trace_id, 32) == 0 &&
                   parent[35] == '-' && is_hex(parent + 36, 16) && parent[52] == '-' && memcmp(parent + 53, flags, 2) == 0);
    }
    if (cph_trace_state_valid(in->tracestate.base, in->tracestate.len))
        for (size_t i = 0; i != in->tracestate.len; ++i)
            FUZZ_CHECK(in->tracestate.base[i] >= 0x20 && in->tracestate.base[i] <= 0x7e);
    if (cph_trace_request_id_valid(in->request_id.base, in->request_id.len))
        FUZZ_CHECK(in->request_id.len >= 1 && in->request_id.len <= CPH_REQUEST_ID_MAX &&
                   memchr(in->request_id.base, '\r', in->request_id.len) == NULL &&
                   memchr(in->request_id.base, '\n', in->request_id.len) == NULL);
}

/* On verdict 0: what was kept and what was taken out, against the reference. */
static void check_kept(const line_t *lines, size_t n, const h2o_headers_t *headers, const char *prefix, const cph_trace_in_t *in)
{
    size_t k = 0, parents = 0, states = 0;
    const line_t *last_id = NULL, *parent = NULL;

    for (size_t i = 0; i != n; ++i) {
        const line_t *l = &lines[i];
        if (ref_is(l, "x-request-id")) {
            last_id = l;
        } else if (ref_is(l, "traceparent")) {
            parent = ++parents == 1 ? l : NULL;
        } else if (ref_is(l, "tracestate")) {
            ++states;
        } else if (!ref_has_prefix(l, prefix)) {
            FUZZ_CHECK(k < headers->size);
            FUZZ_CHECK(headers->entries[k].name->len == l->name_len &&
                       memcmp(headers->entries[k].name->base, l->name, l->name_len) == 0);
            FUZZ_CHECK(headers->entries[k].value.len == l->value_len &&
                       memcmp(headers->entries[k].value.base, l->value, l->value_len) == 0);
            ++k;
        }
    }
    FUZZ_CHECK(k == headers->size);
    FUZZ_CHECK(in->num_traceparent == parents);
    FUZZ_CHECK(last_id == NULL ? in->request_id.len == 0 : in->request_id.base == last_id->value || last_id->value_len == 0);
    FUZZ_CHECK(parent == NULL ? in->traceparent.len == 0 : in->traceparent.base == parent->value || parent->value_len == 0);
    FUZZ_CHECK(states != 0 || in->tracestate.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static line_t lines[MAX_LINES];
    const char *prefix;
    h2o_mem_pool_t pool;
    h2o_headers_t headers = {NULL, 0, 0};
    cph_trace_in_t in;
    char *text;
    size_t n;
    int verdict;

    if (size == 0)
        return 0;
    fuzz_quiet();
    prefix = data[0] % 2 == 0 ? "x-cephalo-" : "x-acme-";
    h2o_mem_init_pool(&pool);
    text = h2o_mem_alloc_pool(&pool, size);
    memcpy(text, data + 1, size - 1);
    n = split(text, size - 1, lines);
    for (size_t i = 0; i != n; ++i)
        h2o_add_header_by_str(&pool, &headers, lines[i].name, lines[i].name_len, 1, NULL, lines[i].value, lines[i].value_len);
    in = (cph_trace_in_t){.pool = &pool};
    verdict = cph_sanitize_headers(&headers, h2o_iovec_init(prefix, strlen(prefix)), &in);
    FUZZ_CHECK(verdict == ref_verdict(lines, n));
    if (verdict == 0) {
        check_kept(lines, n, &headers, prefix, &in);
        check_trace(&in);
    }
    h2o_mem_clear_pool(&pool);
    return 0;
}
