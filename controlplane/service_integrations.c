/*
 * service_integrations: validation of a service's "consul" and "credentials" members as the admin API receives them,
 * and the template syntax of the credentials' headers.
 *
 * Kept apart from store_service.c because it is the only part of a service that is about other systems (Consul,
 * Vault), and because the snapshot build resolves the same templates with the same walker, so the syntax the admin
 * API accepts is by construction the syntax the build understands.
 *
 * Every refusal names its JSON pointer (/credentials/headers/x-api-key, /consul/tag, ...) and says what the member
 * must be; it never repeats the value sent, which for a template could be a pasted secret. Header names are stored
 * lower-cased, and a name the data plane would refuse to inject (cph_credentials_header_forbidden: hop-by-hop,
 * forwarding and identity headers) is refused here already, so a stored service always builds a valid snapshot.
 */
#include <string.h>
#include "controlplane/service_integrations.h"
#include "controlplane/settings.h"
#include "proto/log.h"

#define MODULE "cp/service_integrations"

static const char *const CONSUL_MEMBERS[] = {"service", "tag", NULL};
static const char *const CREDENTIALS_MEMBERS[] = {"vault_path", "headers", "basic", NULL};
static const char *const BASIC_MEMBERS[] = {"username", "password", NULL};

/* ---------------------------------------------------------------- small rules */

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* 1..max bytes of [A-Za-z0-9._-]. */
static int valid_name(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!name_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Segments of [A-Za-z0-9._-] joined by single '/', none "." or "..", no '/' at either end, 1-256 bytes. */
static int valid_vault_path(const char *s, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > CPH_VAULT_PATH_MAX)
        return 0;
    for (size_t i = 0; i <= len; ++i) {
        if (i < len && s[i] != '/') {
            if (!name_char((unsigned char)s[i]))
                return 0;
            continue;
        }
        if (i == start || (i - start == 1 && s[start] == '.') || (i - start == 2 && s[start] == '.' && s[start + 1] == '.'))
            return 0;
        start = i + 1;
    }
    return 1;
}

/* RFC 9110 token characters. */
static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* Builds base + "/" + escaped token into buf (cph_error_t.path sized). */
static const char *at(char *buf, const char *base, const char *token)
{
    snprintf(buf, sizeof(((cph_error_t *)0)->path), "%s", base);
    cph_jsonptr_append(buf, sizeof(((cph_error_t *)0)->path), token);
    return buf;
}

/* {unknown_field} at the first member of obj not in allowed. */
static int check_members(const json_t *obj, const char *base, const char *const *allowed, cph_error_t *err)
{
    const char *key;
    json_t *v;
    char p[sizeof(err->path)];

    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            ++i;
        if (allowed[i] == NULL)
            return cph_error_set(err, "unknown_field", at(p, base, key), "unknown member");
    }
    return 0;
}

static int wrong_type(cph_error_t *err, const char *path, const json_t *v, const char *want)
{
    return cph_error_set(err, "invalid", path, "must be %s%s", want, json_is_real(v) ? "; real numbers are not allowed" : "");
}

/* ---------------------------------------------------------------- templates */

int cph_service_template_walk(const char *t, size_t len, cph_template_part_cb cb, void *ud, const char **why)
{
    size_t i = 0, lit = 0;

    *why = NULL;
    while (i < len) {
        if (i + 1 < len && t[i] == '}' && t[i + 1] == '}') {
            *why = "has a \"}}\" that closes no placeholder (write {{key}})";
            return -1;
        }
        if (!(i + 1 < len && t[i] == '{' && t[i + 1] == '{')) {
            ++i;
            continue;
        }
        size_t k = i + 2, end = k;
        while (end + 1 < len && !(t[end] == '}' && t[end + 1] == '}'))
            ++end;
        if (end + 1 >= len) {
            *why = "has a placeholder that is not closed with \"}}\"";
            return -1;
        }
        if (!valid_name(t + k, end - k, CPH_CREDENTIALS_KEY_MAX)) {
            *why = "has a placeholder whose key is not 1 to 128 of A-Z a-z 0-9 . _ -";
            return -1;
        }
        if ((i > lit && cb(ud, 0, t + lit, i - lit) != 0) || cb(ud, 1, t + k, end - k) != 0)
            return -1;
        i = lit = end + 2;
    }
    if (len > lit && cb(ud, 0, t + lit, len - lit) != 0)
        return -1;
    return 0;
}

static int count_part(void *ud, int is_key, const char *text, size_t len)
{
    (void)is_key, (void)text, (void)len, (void)ud;
    return 0;
}

/*
 * A template string at path: 1-1024 bytes of printable ASCII and space, well-formed placeholders; a header's template
 * (in_header) may not begin or end with a space, which no header value can.
 */
static int check_template(const json_t *v, const char *path, int in_header, cph_error_t *err)
{
    const char *s = json_string_value(v), *why;
    size_t len = json_string_length(v);

    if (!json_is_string(v))
        return wrong_type(err, path, v, "a template string");
    if (len == 0 || len > CPH_CREDENTIALS_TEMPLATE_MAX)
        return cph_error_set(err, "invalid", path, "must be 1 to %d bytes", CPH_CREDENTIALS_TEMPLATE_MAX);
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return cph_error_set(err, "invalid", path, "must hold printable ASCII characters and spaces only");
    if (in_header && (s[0] == ' ' || s[len - 1] == ' '))
        return cph_error_set(err, "invalid", path, "must not begin or end with a space");
    if (cph_service_template_walk(s, len, count_part, NULL, &why) != 0)
        return cph_error_set(err, "invalid", path, "%s", why);
    return 0;
}

/* ---------------------------------------------------------------- consul */

/* A name member (service, tag) of the consul object: required or optional. */
static int consul_name(const json_t *obj, const char *key, int required, json_t *out, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    char p[sizeof(err->path)];

    at(p, "/consul", key);
    if (v == NULL || (!required && json_is_null(v))) {
        if (required)
            return cph_error_set(err, "missing_field", p, "is required");
        return 0;
    }
    if (!json_is_string(v))
        return wrong_type(err, p, v, "a string");
    if (!valid_name(json_string_value(v), json_string_length(v), CPH_CONSUL_NAME_MAX))
        return cph_error_set(err, "invalid", p, "must be 1 to %d of A-Z a-z 0-9 . _ -", CPH_CONSUL_NAME_MAX);
    json_object_set(out, key, (json_t *)v);
    return 0;
}

static json_t *normalize_consul(const json_t *v, const json_t *targets, cph_error_t *err)
{
    json_t *out;

    if (!json_is_object(v)) {
        wrong_type(err, "/consul", v, "an object {\"service\", \"tag\"?} or null");
        return NULL;
    }
    if (check_members(v, "/consul", CONSUL_MEMBERS, err) != 0)
        return NULL;
    if ((out = json_object()) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (consul_name(v, "service", 1, out, err) != 0 || consul_name(v, "tag", 0, out, err) != 0)
        goto Error;
    if (targets != NULL && !(json_is_array(targets) && json_array_size(targets) == 0)) {
        cph_error_set(err, "invalid", "/targets", "a service discovered through Consul takes its targets from Consul");
        goto Error;
    }
    return out;
Error:
    json_decref(out);
    return NULL;
}

/* ---------------------------------------------------------------- credentials */

/*
 * Whether a lower-case header name falls under the identity header prefix the data planes are configured with
 * (--header-prefix, '_' read as '-'): the data plane strips those from clients and writes its own, and its compiler
 * refuses a snapshot that would inject one. cph_credentials_header_forbidden covers the default prefix only.
 */
static int under_identity_prefix(const char *name, size_t len)
{
    const char *prefix = cph_settings_auth()->header_prefix;
    size_t plen = strlen(prefix);

    if (len < plen)
        return 0;
    for (size_t i = 0; i != plen; ++i)
        if ((name[i] == '_' ? '-' : name[i]) != prefix[i])
            return 0;
    return 1;
}

/* The headers object: 1-8 token names (lower-cased, allowed for injection, unique) -> header templates. */
static json_t *normalize_headers(const json_t *v, cph_error_t *err)
{
    json_t *out, *tmpl;
    const char *name;
    char p[sizeof(err->path)], lower[65];

    if (!json_is_object(v) || json_object_size(v) == 0 || json_object_size(v) > CPH_CREDENTIALS_HEADERS_MAX) {
        cph_error_set(err, "invalid", "/credentials/headers", "must be an object of 1 to %d header names -> templates",
                      CPH_CREDENTIALS_HEADERS_MAX);
        return NULL;
    }
    if ((out = json_object()) == NULL)
        cph_fatal(MODULE, "out of memory");
    json_object_foreach((json_t *)v, name, tmpl)
    {
        size_t len = strlen(name), i;
        at(p, "/credentials/headers", name);
        for (i = 0; i != len && len <= 64 && token_char((unsigned char)name[i]); ++i)
            lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
        if (len == 0 || len > 64 || i != len) {
            cph_error_set(err, "invalid", p, "a header name must be 1 to 64 token characters (RFC 9110)");
            goto Error;
        }
        lower[len] = '\0';
        if (cph_credentials_header_forbidden(lower, len) || under_identity_prefix(lower, len)) {
            cph_error_set(err, "invalid", p, "this header cannot be injected (hop-by-hop, forwarding or gateway identity header)");
            goto Error;
        }
        if (json_object_get(out, lower) != NULL) {
            cph_error_set(err, "duplicate", p, "the header is named twice (names are case-insensitive)");
            goto Error;
        }
        if (check_template(tmpl, p, 1, err) != 0)
            goto Error;
        json_object_set(out, lower, tmpl);
    }
    return out;
Error:
    json_decref(out);
    return NULL;
}

/* The basic object: {"username": template without ':', "password": template}. */
static json_t *normalize_basic(const json_t *v, cph_error_t *err)
{
    const json_t *user = json_object_get(v, "username"), *pass = json_object_get(v, "password");

    if (!json_is_object(v)) {
        wrong_type(err, "/credentials/basic", v, "an object {\"username\", \"password\"}");
        return NULL;
    }
    if (check_members(v, "/credentials/basic", BASIC_MEMBERS, err) != 0)
        return NULL;
    if (user == NULL || pass == NULL) {
        cph_error_set(err, "missing_field", user == NULL ? "/credentials/basic/username" : "/credentials/basic/password",
                      "is required");
        return NULL;
    }
    if (check_template(user, "/credentials/basic/username", 0, err) != 0 ||
        check_template(pass, "/credentials/basic/password", 0, err) != 0)
        return NULL;
    if (memchr(json_string_value(user), ':', json_string_length(user)) != NULL) {
        cph_error_set(err, "invalid", "/credentials/basic/username", "must not contain ':' (basic authentication)");
        return NULL;
    }
    return json_pack("{s:O, s:O}", "username", user, "password", pass);
}

static json_t *normalize_credentials(const json_t *v, cph_error_t *err)
{
    const json_t *path = json_object_get(v, "vault_path"), *headers, *basic;
    json_t *inner;

    if (!json_is_object(v)) {
        wrong_type(err, "/credentials", v, "an object {\"vault_path\", \"headers\" | \"basic\"} or null");
        return NULL;
    }
    if (check_members(v, "/credentials", CREDENTIALS_MEMBERS, err) != 0)
        return NULL;
    if (path == NULL) {
        cph_error_set(err, "missing_field", "/credentials/vault_path", "is required");
        return NULL;
    }
    if (!json_is_string(path) || !valid_vault_path(json_string_value(path), json_string_length(path))) {
        cph_error_set(err, "invalid", "/credentials/vault_path",
                      "must be 1 to 256 bytes: segments of A-Z a-z 0-9 . _ - separated by single '/', no '.' or '..' segment, "
                      "no '/' at either end");
        return NULL;
    }
    headers = json_object_get(v, "headers");
    basic = json_object_get(v, "basic");
    if ((headers == NULL) == (basic == NULL)) {
        cph_error_set(err, headers == NULL ? "missing_field" : "invalid",
                      headers == NULL ? "/credentials/headers" : "/credentials/basic",
                      "exactly one of \"headers\" and \"basic\" is required");
        return NULL;
    }
    if ((inner = headers != NULL ? normalize_headers(headers, err) : normalize_basic(basic, err)) == NULL)
        return NULL;
    return json_pack("{s:O, s:o}", "vault_path", path, headers != NULL ? "headers" : "basic", inner);
}

int cph_service_integrations_normalize(const json_t *in, json_t **consul, json_t **credentials, cph_error_t *err)
{
    const json_t *c = json_object_get(in, "consul"), *k = json_object_get(in, "credentials");

    *consul = *credentials = NULL;
    if (c != NULL && !json_is_null(c) && (*consul = normalize_consul(c, json_object_get(in, "targets"), err)) == NULL)
        return -1;
    if (k != NULL && !json_is_null(k) && (*credentials = normalize_credentials(k, err)) == NULL) {
        json_decref(*consul);
        *consul = NULL;
        return -1;
    }
    return 0;
}
