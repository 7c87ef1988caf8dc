/*
 * compile/credentials: a service's "credentials" (PROTOCOL.md section 5, "service credentials") -> the immutable
 * cph_credentials_t of core/credentials.h, in the snapshot's arena. The request path then only copies one pre-built
 * block ("name: value\r\n" for every header) into the upstream head and compares the client's header names with at
 * most eight lower-case names, so a service with credentials costs one memcpy and a few length tests per request, and
 * one without costs a NULL test.
 *
 * The body was validated (proto/schema_credentials.c). What could split a header or impersonate the gateway is
 * checked again anyway (a validator bug becomes a nack, not a smuggled header), plus one rule the schema cannot know
 * about a service alone: no name under the snapshot's own identity prefix (auth.header_prefix), which
 * filter/proxy_head.c strips from the client and writes itself. Values are secrets: no message quotes one.
 */
#include <stdio.h>
#include <string.h>
#include "proto/proto.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/credentials.h"

#define MODULE "dp/compile/credentials"
#define DEFAULT_IDENTITY_PREFIX "x-cephalo-"

static int cred_error(cph_error_t *err, size_t index, const char *sub, const char *msg)
{
    char at[160];

    snprintf(at, sizeof(at), "/services/%zu/credentials%s", index, sub);
    return cph_error_set(err, "invalid", at, "%s", msg);
}

/* A lower-case RFC 9110 token of 1-64 bytes. */
static int name_ok(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || (s[i] != '\0' && strchr("!#$%&'*+-.^_`|~", s[i]))))
            return 0;
    return 1;
}

/* 1-8192 bytes, no control byte but tab (no CR, LF, NUL: nothing that ends the line), no padding. */
static int value_ok(const char *s, size_t len)
{
    if (len < 1 || len > 8192 || s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t')
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return 0;
    return 1;
}

/* body auth.header_prefix, or the default: the names filter/proxy_head.c owns. */
static const char *identity_prefix(const json_t *body)
{
    const json_t *p = json_object_get(json_object_get(body, "auth"), "header_prefix");

    return json_is_string(p) && json_string_length(p) != 0 ? json_string_value(p) : DEFAULT_IDENTITY_PREFIX;
}

/* Whether name starts with prefix (lower-case) when read lower-cased with '_' as '-' (cph_proxy_has_prefix's rule). */
static int under_prefix(const char *name, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);

    if (len < plen)
        return 0;
    for (size_t i = 0; i != plen; ++i) {
        char c = name[i] == '_' ? '-' : (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] | 0x20) : name[i];
        if (c != prefix[i])
            return 0;
    }
    return 1;
}

/* headers[k] -> creds->headers[k]; 0 or -1 (a nack at the element, never quoting the value). */
static int compile_header(cph_snapshot_t *snap, cph_credentials_t *creds, const json_t *h, size_t k, const char *prefix,
                          size_t index, cph_error_t *err)
{
    const json_t *name = json_object_get(h, "name"), *value = json_object_get(h, "value");
    char sub[64];

    snprintf(sub, sizeof(sub), "/headers/%zu/name", k);
    if (!json_is_string(name) || !name_ok(json_string_value(name), json_string_length(name)) ||
        cph_credentials_header_forbidden(json_string_value(name), json_string_length(name)) ||
        under_prefix(json_string_value(name), json_string_length(name), prefix))
        return cred_error(err, index, sub, "a header the gateway may not inject (syntax, hop-by-hop, forwarding or identity)");
    if (cph_credentials_injects(creds, json_string_value(name), json_string_length(name)))
        return cred_error(err, index, sub, "the header is listed twice");
    snprintf(sub, sizeof(sub), "/headers/%zu/value", k);
    if (!json_is_string(value) || !value_ok(json_string_value(value), json_string_length(value)))
        return cred_error(err, index, sub, "the value cannot be sent in a header");
    cph_credential_header_t *out = &creds->headers[creds->num_headers++];
    out->name = h2o_iovec_init(cph_arena_strndup(&snap->arena, json_string_value(name), json_string_length(name)),
                               json_string_length(name));
    out->value = h2o_iovec_init(cph_arena_strndup(&snap->arena, json_string_value(value), json_string_length(value)),
                                json_string_length(value));
    creds->has_cookie |= out->name.len == 6 && memcmp(out->name.base, "cookie", 6) == 0;
    return 0;
}

/* Every "name: value\r\n" in one arena buffer, so the request path copies a single iovec. */
static void build_block(cph_snapshot_t *snap, cph_credentials_t *creds)
{
    size_t len = 0;
    char *p;

    for (size_t k = 0; k != creds->num_headers; ++k)
        len += creds->headers[k].name.len + creds->headers[k].value.len + 4;
    p = cph_arena_alloc(&snap->arena, len + 1);
    creds->block = h2o_iovec_init(p, len);
    for (size_t k = 0; k != creds->num_headers; ++k) {
        const cph_credential_header_t *h = &creds->headers[k];
        memcpy(p, h->name.base, h->name.len), p += h->name.len;
        *p++ = ':', *p++ = ' ';
        memcpy(p, h->value.base, h->value.len), p += h->value.len;
        *p++ = '\r', *p++ = '\n';
    }
}

int cph_credentials_compile(cph_snapshot_t *snap, cph_service_t *svc, const json_t *body, size_t index, cph_error_t *err)
{
    const json_t *obj = json_object_get(json_array_get(json_object_get(body, "services"), index), "credentials");
    const json_t *source, *headers, *error;
    cph_credentials_t *creds;

    svc->credentials = NULL;
    if (obj == NULL)
        return 0;
    source = json_object_get(obj, "source"), headers = json_object_get(obj, "headers"), error = json_object_get(obj, "error");
    if (!json_is_object(obj) || !json_is_string(source))
        return cred_error(err, index, "", "must be an object with a \"source\"");
    if ((headers != NULL) == (error != NULL))
        return cred_error(err, index, "", "must hold exactly one of \"headers\" and \"error\"");
    creds = cph_arena_alloc(&snap->arena, sizeof(*creds));
    creds->source = cph_arena_strndup(&snap->arena, json_string_value(source), json_string_length(source));
    if (error != NULL) {
        if (!json_is_string(error) || json_string_length(error) == 0 ||
            strlen(json_string_value(error)) != json_string_length(error))
            return cred_error(err, index, "/error", "must be a non-empty string");
        creds->error = cph_arena_strndup(&snap->arena, json_string_value(error), json_string_length(error));
        svc->credentials = creds;
        return 0;
    }
    if (!json_is_array(headers) || json_array_size(headers) < 1 || json_array_size(headers) > CPH_CREDENTIALS_MAX_HEADERS)
        return cred_error(err, index, "/headers", "must hold 1 to 8 headers");
    creds->headers = cph_arena_alloc(&snap->arena, sizeof(*creds->headers) * json_array_size(headers));
    for (size_t k = 0; k != json_array_size(headers); ++k)
        if (compile_header(snap, creds, json_array_get(headers, k), k, identity_prefix(body), index, err) != 0)
            return -1;
    build_block(snap, creds);
    svc->credentials = creds;
    return 0;
}
