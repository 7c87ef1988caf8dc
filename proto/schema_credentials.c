/*
 * schema_credentials: a service's "credentials" in a snapshot body (PROTOCOL.md section 5, "service credentials"),
 * and the one list of header names the gateway refuses to inject (cph_credentials_header_forbidden), which the
 * control plane's admin validation shares.
 *
 * The control plane resolves a service's credential templates from Vault and sends the result: the headers the data
 * plane adds to every upstream request of the service, or, when they could not be resolved, an error, on which the
 * data plane answers 503 rather than reach the upstream without them. The data plane writes the names and values
 * into the request head byte for byte, so what passes here must not be able to split or smuggle a header: names are
 * lower-case tokens, values refuse CR, LF, NUL and every other control byte but tab, and no name may be one the
 * gateway writes or removes itself (framing, hop-by-hop, forwarding, the request id, the identity prefix).
 *
 * Values are secrets: no error message here quotes one (nor a name that failed its syntax check); pointers name the
 * element by its index.
 */
#include <string.h>
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_credentials"

#define SOURCE_MAX 300
#define ERROR_MAX 256
#define MAX_HEADERS 8
#define VALUE_MAX 8192
#define IDENTITY_PREFIX "x-cephalo-"

static const char *const credentials_members[] = {"source", "headers", "error", NULL};
static const char *const header_members[] = {"name", "value", NULL};

/* Written or removed by the gateway itself (RFC 9110 7.6.1 hop-by-hop, framing, forwarding, request id). */
static const char *const forbidden_names[] = {"host",
                                              "content-length",
                                              "transfer-encoding",
                                              "connection",
                                              "keep-alive",
                                              "proxy-connection",
                                              "te",
                                              "trailer",
                                              "upgrade",
                                              "expect",
                                              "http2-settings",
                                              "forwarded",
                                              "x-forwarded-for",
                                              "x-forwarded-proto",
                                              "x-forwarded-host",
                                              "x-request-id",
                                              NULL};

/* ---------------------------------------------------------------- header names */

/* A name byte as upstream frameworks read it: case folded, '_' as '-' (CGI maps both to the same variable). */
static char fold(char c)
{
    return c == '_' ? '-' : (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* Whether the first n bytes of s fold to lit (lower case, n <= strlen(lit) is the caller's business). */
static int folds_to(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (fold(s[i]) != lit[i])
            return 0;
    return 1;
}

int cph_credentials_header_forbidden(const char *name, size_t len)
{
    size_t plen = sizeof(IDENTITY_PREFIX) - 1;

    if (len != 0 && name[0] == ':')
        return 1;
    if (len >= plen && folds_to(name, IDENTITY_PREFIX, plen))
        return 1;
    for (const char *const *f = forbidden_names; *f != NULL; ++f)
        if (strlen(*f) == len && folds_to(name, *f, len))
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- string rules */

/* 1 to max bytes of printable ASCII (space to '~'). */
static int valid_printable(const char *s, size_t len, size_t max)
{
    if (len < 1 || len > max)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int valid_source(const char *s, size_t len)
{
    return valid_printable(s, len, SOURCE_MAX);
}

static int valid_error(const char *s, size_t len)
{
    return valid_printable(s, len, ERROR_MAX);
}

/*
 * A header value the data plane writes as is: 1-8192 bytes, each a tab, printable ASCII or a byte >= 0x80 (RFC 9110
 * field-vchar / obs-text, SP and HTAB), not starting or ending with a space or tab (a parser would strip them).
 */
static int valid_value(const char *s, size_t len)
{
    if (len < 1 || len > VALUE_MAX || s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t')
        return 0;
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- members */

/* headers[i] at the pointer at: its members, then name (syntax, then not forbidden), then value. */
static int check_header(const json_t *h, const char *at, cph_error_t *err)
{
    const json_t *name;
    char p[256];

    if (!json_is_object(h))
        return cph_schema_wrong_type(err, at, h, "an object");
    if (cph_schema_check_members(h, at, header_members, err) != 0 ||
        cph_schema_get_member(h, at, "name", JSON_STRING, 1, &name, err) != 0)
        return -1;
    cph_schema_at_key(p, at, "name");
    if (!cph_schema_valid_header_name(json_string_value(name), json_string_length(name)))
        return cph_error_set(err, "invalid", p, "\"name\" must be a lower-case header name (token), 1 to 64 bytes");
    if (cph_credentials_header_forbidden(json_string_value(name), json_string_length(name)))
        return cph_error_set(err, "invalid", p,
                             "\"%s\" is a header the gateway writes or removes itself; it cannot carry credentials",
                             json_string_value(name));
    return cph_schema_check_string_member(
        h, at, "value", 1, 0, valid_value,
        "1 to 8192 bytes of printable ASCII, tab or non-ASCII, no other control byte, no leading or trailing space or tab", err);
}

/* headers: 1-8 elements, each valid, then its name unique ("duplicate" at the later "name"). */
static int check_headers(const json_t *cred, const char *at, const json_t **headers, cph_error_t *err)
{
    char pa[256], pe[256], p[256];

    if (cph_schema_get_array(cred, at, "headers", 0, 1, MAX_HEADERS, headers, err) != 0)
        return -1;
    cph_schema_at_key(pa, at, "headers");
    for (size_t i = 0; *headers != NULL && i != json_array_size(*headers); ++i) {
        const json_t *name = json_object_get(json_array_get(*headers, i), "name");
        if (check_header(json_array_get(*headers, i), cph_schema_at_index(pe, pa, i), err) != 0)
            return -1;
        for (size_t j = 0; j != i; ++j)
            if (json_equal(name, json_object_get(json_array_get(*headers, j), "name")))
                return cph_error_set(err, "duplicate", cph_schema_at_key(p, pe, "name"), "the header \"%s\" is listed twice",
                                     json_string_value(name));
    }
    return 0;
}

/* A credentials object at the pointer at: unknown members, source, headers, error, then exactly one of the last two. */
static int check_credentials(const json_t *cred, const char *at, cph_error_t *err)
{
    const json_t *headers;
    char p[256];

    if (!json_is_object(cred))
        return cph_schema_wrong_type(err, at, cred, "an object");
    if (cph_schema_check_members(cred, at, credentials_members, err) != 0 ||
        cph_schema_check_string_member(cred, at, "source", 1, 0, valid_source, "1 to 300 bytes of printable ASCII", err) != 0 ||
        check_headers(cred, at, &headers, err) != 0 ||
        cph_schema_check_string_member(cred, at, "error", 0, 0, valid_error, "1 to 256 bytes of printable ASCII", err) != 0)
        return -1;
    if (headers != NULL && json_object_get(cred, "error") != NULL)
        return cph_error_set(err, "invalid", cph_schema_at_key(p, at, "error"),
                             "\"error\" and \"headers\" exclude each other: credentials are resolved or not");
    if (headers == NULL && json_object_get(cred, "error") == NULL)
        return cph_error_set(err, "missing_field", cph_schema_at_key(p, at, "headers"),
                             "one of \"headers\" and \"error\" is required");
    return 0;
}

/* ---------------------------------------------------------------- entry point */

int cph_schema_service_check_credentials(const json_t *service, const char *base, cph_error_t *err)
{
    const json_t *cred = json_object_get(service, "credentials");
    char at[256];

    if (cred == NULL)
        return 0;
    return check_credentials(cred, cph_schema_at_key(at, base, "credentials"), err);
}
