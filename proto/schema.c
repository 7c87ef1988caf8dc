/*
 * schema: validation of a snapshot body, schema 1 (PROTOCOL.md section 5).
 *
 * The control plane runs this before it commits an admin write and the data plane runs it again before it
 * compiles, so one function decides what a valid configuration is. It is strict on purpose: unknown members are
 * rejected (a typo must not silently mean "default"), every integer is range-checked, a real number is refused
 * wherever it appears (the canonical hash needs one spelling per number), and target URLs and route paths are
 * parsed here, so the compilers downstream can trust them. The optional "keys" are public JWKs only: every member is
 * named, so private material ("d", "p", ...) cannot pass, and their base64url numbers are checked for size and one
 * spelling. The /auth path prefix belongs to the data plane's built-in routes, so no route may claim it.
 *
 * Errors name the first offending value with a JSON pointer. Values are checked in document order: the top level,
 * then each service (its members in the order of the table in PROTOCOL.md, unknown members first, its "policies"
 * last: proto/schema_service.c), then each route (its "policies" last: proto/schema_policy.c, whose upstream members
 * are proto/schema_upstream.c's), then each key, then the access members (auth, groups, endpoints, api_keys,
 * revoked: proto/schema_access.c), then "gateway" (schema_policy.c) - the other files share the generic checks below
 * through proto/schema_internal.h; a duplicate name points at the later occurrence. A missing member is reported at
 * the pointer it would have.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "proto/log.h"
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema"

#define MAX_SERVICES 4096
#define MAX_ROUTES 16384
#define MAX_TARGETS 256
#define MAX_PATHS 64
#define MAX_PATH_LEN 1024
#define MAX_HOSTS 64
#define MAX_METHODS 16
#define WEIGHT_MAX 1000
#define TIMEOUT_MS_MAX 3600000
#define MAX_KEYS 16
#define EC_COORD_BYTES 32
#define RSA_N_MIN 256           /* 2048 bits */
#define RSA_N_MAX 512           /* 4096 bits */
#define RESERVED_PREFIX "/auth" /* the data plane's built-in routes (PROTOCOL.md section 5) */

static const char *const service_members[] = {"name", "targets", "timeout_ms", "system", "policies", "credentials", NULL};
static const char *const target_members[] = {"url", "weight", NULL};
static const char *const route_members[] = {"name",           "service",  "paths", "hosts", "methods",   "strip_prefix",
                                            "default_access", "policies", "kind",  "pdf",   "aggregate", NULL};
static const char *const body_members[] = {"services",  "routes",   "keys",    "auth",    "groups",
                                           "endpoints", "api_keys", "revoked", "gateway", NULL};
static const char *const access_values[] = {"public", "authenticated", "deny", NULL};
static const char *const key_members[] = {"kid", "alg", "kty", "use", "crv", "x", "y", "n", "e", NULL};
static const char *const ec_key_members[] = {"kid", "alg", "kty", "use", "crv", "x", "y", NULL};
static const char *const rsa_key_members[] = {"kid", "alg", "kty", "use", "n", "e", NULL};
const char *const cph_schema_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", NULL};

/* ---------------------------------------------------------------- syntax of names, hosts and URLs */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A DNS name: 1-253 bytes of dot-separated labels, each 1-63 of letters, digits and '-', not starting or ending in '-'. */
static int valid_dns_name(const char *s, size_t len, int lower_only)
{
    size_t i, label = 0;

    if (len < 1 || len > 253)
        return 0;
    for (i = 0; i != len; ++i) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((is_alnum(c) && !(lower_only && c >= 'A' && c <= 'Z')) || (c == '-' && label != 0)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label != 0 && s[len - 1] != '-';
}

/* A URL host that is not bracketed: all digits and dots means a dotted-quad IPv4 address, anything else a DNS name. */
static int valid_url_host(const char *s, size_t len)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr a4;

    if (len != 0 && strspn(s, "0123456789.") >= len) {
        if (len >= sizeof(buf))
            return 0;
        memcpy(buf, s, len);
        buf[len] = '\0';
        return inet_pton(AF_INET, buf, &a4) == 1;
    }
    return valid_dns_name(s, len, 0);
}

/* "[IPv6]" at s (up to end): returns the byte after ']', or NULL. */
static const char *parse_ipv6_literal(const char *s, const char *end)
{
    const char *close = memchr(s, ']', (size_t)(end - s));
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    size_t n;

    if (close == NULL || (n = (size_t)(close - s - 1)) == 0 || n >= sizeof(buf))
        return NULL;
    memcpy(buf, s + 1, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1 ? close + 1 : NULL;
}

/* http://HOST:PORT or http://HOST:PORT/ (PROTOCOL.md section 5), nothing more. */
int cph_schema_valid_target_url(const char *s, size_t len)
{
    const char *p = s + 7, *end = s + len, *host;
    unsigned long port = 0;
    size_t i, digits = 0;

    if (len > 255 || len < 7 || memcmp(s, "http://", 7) != 0)
        return 0;
    for (i = 0; i != len; ++i) /* no NUL, space or control byte can hide behind what inet_pton or a client reads */
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    if (p < end && *p == '[') {
        if ((p = parse_ipv6_literal(p, end)) == NULL)
            return 0;
    } else {
        for (host = p; p < end && *p != ':'; ++p)
            ;
        if (!valid_url_host(host, (size_t)(p - host)))
            return 0;
    }
    if (p == end || *p++ != ':')
        return 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 6; ++p, ++digits)
        port = port * 10 + (unsigned long)(*p - '0');
    if (digits == 0 || digits > 5 || *(p - digits) == '0' || port < 1 || port > 65535) /* p[-digits]: a size_t wraps */
        return 0;
    if (p < end && *p == '/')
        ++p;
    return p == end;
}

/* A route host: a lower-case DNS name, or "*." followed by one. */
static int valid_host_pattern(const char *s, size_t len)
{
    if (len >= 2 && s[0] == '*' && s[1] == '.')
        return valid_dns_name(s + 2, len - 2, 1);
    return valid_dns_name(s, len, 1);
}

/* ---------------------------------------------------------------- pointers and generic checks */

/* The JSON pointer base + "/" + key in buf (256 bytes, like cph_error_t.path). */
const char *cph_schema_at_key(char *buf, const char *base, const char *key)
{
    snprintf(buf, sizeof(((cph_error_t *)0)->path), "%s", base);
    cph_jsonptr_append(buf, sizeof(((cph_error_t *)0)->path), key);
    return buf;
}

const char *cph_schema_at_index(char *buf, const char *base, size_t index)
{
    snprintf(buf, sizeof(((cph_error_t *)0)->path), "%s", base);
    cph_jsonptr_append_index(buf, sizeof(((cph_error_t *)0)->path), index);
    return buf;
}

static const char *type_name(const json_t *v)
{
    if (v == NULL)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

int cph_schema_wrong_type(cph_error_t *err, const char *path, const json_t *v, const char *want)
{
    if (json_is_real(v))
        return cph_error_set(err, "invalid", path, "must be %s; real numbers are not allowed in a snapshot", want);
    return cph_error_set(err, "invalid", path, "must be %s, not %s", want, type_name(v));
}

/* Rejects the first member of obj that is not in allowed. */
int cph_schema_check_members(const json_t *obj, const char *base, const char *const *allowed, cph_error_t *err)
{
    const char *key;
    json_t *v;
    char p[256];

    json_object_foreach((json_t *)obj, key, v)
    {
        const char *const *a;
        for (a = allowed; *a != NULL && strcmp(*a, key) != 0; ++a)
            ;
        if (*a == NULL)
            return cph_error_set(err, "unknown_field", cph_schema_at_key(p, base, key), "unknown member \"%s\"", key);
    }
    return 0;
}

/* Fetches member key of the given JSON type; *out is NULL (and 0 returned) when it is optional and absent. */
int cph_schema_get_member(const json_t *obj, const char *base, const char *key, json_type type, int required, const json_t **out,
                          cph_error_t *err)
{
    static const char *const want[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string", [JSON_INTEGER] = "an integer",
        [JSON_REAL] = "a number",    [JSON_TRUE] = "a boolean", [JSON_FALSE] = "a boolean", [JSON_NULL] = "null"};
    const json_t *v = json_object_get(obj, key);
    char p[256];

    *out = NULL;
    if (v == NULL)
        return required ? cph_error_set(err, "missing_field", cph_schema_at_key(p, base, key), "\"%s\" is required", key) : 0;
    if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v)))
        return cph_schema_wrong_type(err, cph_schema_at_key(p, base, key), v, want[type]);
    *out = v;
    return 0;
}

int cph_schema_check_int_member(const json_t *obj, const char *base, const char *key, int required, json_int_t lo, json_int_t hi,
                                cph_error_t *err)
{
    const json_t *v;
    char p[256];

    if (cph_schema_get_member(obj, base, key, JSON_INTEGER, required, &v, err) != 0)
        return -1;
    if (v != NULL && (json_integer_value(v) < lo || json_integer_value(v) > hi))
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key),
                             "\"%s\" must be between %" JSON_INTEGER_FORMAT " and %" JSON_INTEGER_FORMAT, key, lo, hi);
    return 0;
}

/* An array member of at most max elements (at least min when present); *out NULL when optional and absent. */
int cph_schema_get_array(const json_t *obj, const char *base, const char *key, int required, size_t min, size_t max,
                         const json_t **out, cph_error_t *err)
{
    char p[256];

    if (cph_schema_get_member(obj, base, key, JSON_ARRAY, required, out, err) != 0)
        return -1;
    if (*out != NULL && (json_array_size(*out) < min || json_array_size(*out) > max))
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key), "\"%s\" must hold %zu to %zu elements, not %zu", key,
                             min, max, json_array_size(*out));
    return 0;
}

int cph_schema_check_int_list(const json_t *obj, const char *base, const char *key, size_t min, size_t max, json_int_t lo,
                              json_int_t hi, cph_error_t *err)
{
    const json_t *list;
    char pa[256], p[256];

    if (cph_schema_get_array(obj, base, key, 0, min, max, &list, err) != 0)
        return -1;
    cph_schema_at_key(pa, base, key);
    for (size_t i = 0; list != NULL && i != json_array_size(list); ++i) {
        const json_t *v = json_array_get(list, i);
        cph_schema_at_index(p, pa, i);
        if (!json_is_integer(v))
            return cph_schema_wrong_type(err, p, v, "an integer");
        if (json_integer_value(v) < lo || json_integer_value(v) > hi)
            return cph_error_set(err, "invalid", p, "must be between %" JSON_INTEGER_FORMAT " and %" JSON_INTEGER_FORMAT, lo, hi);
        for (size_t j = 0; j != i; ++j)
            if (json_integer_value(json_array_get(list, j)) == json_integer_value(v))
                return cph_error_set(err, "duplicate", p, "this value is listed twice");
    }
    return 0;
}

int cph_schema_valid_name(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > CPH_SCHEMA_NAME_MAX)
        return 0;
    for (i = 0; i != len; ++i)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

int cph_schema_valid_code(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > CPH_SCHEMA_NAME_MAX)
        return 0;
    for (i = 0; i != len; ++i)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

int cph_schema_check_string_member(const json_t *obj, const char *base, const char *key, int required, int nullable,
                                   int (*rule)(const char *s, size_t len), const char *rule_text, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    char p[256];

    if (v == NULL)
        return required ? cph_error_set(err, "missing_field", cph_schema_at_key(p, base, key), "\"%s\" is required", key) : 0;
    if (nullable && json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return cph_schema_wrong_type(err, cph_schema_at_key(p, base, key), v, nullable ? "a string or null" : "a string");
    if (!rule(json_string_value(v), json_string_length(v)))
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key), "\"%s\" must be %s", key, rule_text);
    return 0;
}

/* A required member holding a name (1-64 chars of [A-Za-z0-9._-]). */
int cph_schema_check_name_member(const json_t *obj, const char *base, const char *key, cph_error_t *err)
{
    const json_t *v;
    char p[256];

    if (cph_schema_get_member(obj, base, key, JSON_STRING, 1, &v, err) != 0)
        return -1;
    if (!cph_schema_valid_name(json_string_value(v), json_string_length(v)))
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key),
                             "\"%s\" must be 1 to 64 characters of A-Z a-z 0-9 . _ -", key);
    return 0;
}

/* ---------------------------------------------------------------- service */

static int check_target(const json_t *t, const char *base, cph_error_t *err)
{
    const json_t *url;
    char p[256];

    if (!json_is_object(t))
        return cph_schema_wrong_type(err, base, t, "an object");
    if (cph_schema_check_members(t, base, target_members, err) != 0 ||
        cph_schema_get_member(t, base, "url", JSON_STRING, 1, &url, err) != 0)
        return -1;
    if (!cph_schema_valid_target_url(json_string_value(url), json_string_length(url)))
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, "url"),
                             "\"url\" must be http://HOST:PORT with an IPv4 address, [IPv6] or DNS name and a port 1-65535, "
                             "nothing else, at most 255 characters");
    return cph_schema_check_int_member(t, base, "weight", 0, 1, WEIGHT_MAX, err);
}

static int validate_service_at(const json_t *svc, const char *base, cph_error_t *err)
{
    const json_t *targets;
    char p[256], pt[256];
    size_t i;

    if (!json_is_object(svc))
        return cph_schema_wrong_type(err, base, svc, "an object");
    if (cph_schema_check_members(svc, base, service_members, err) != 0 ||
        cph_schema_check_name_member(svc, base, "name", err) != 0 ||
        cph_schema_get_array(svc, base, "targets", 1, 0, MAX_TARGETS, &targets, err) != 0)
        return -1;
    cph_schema_at_key(pt, base, "targets");
    for (i = 0; i != json_array_size(targets); ++i)
        if (check_target(json_array_get(targets, i), cph_schema_at_index(p, pt, i), err) != 0)
            return -1;
    if (cph_schema_check_int_member(svc, base, "timeout_ms", 0, 1, TIMEOUT_MS_MAX, err) != 0 ||
        cph_schema_check_string_member(svc, base, "system", 0, 1, cph_schema_valid_code,
                                       "null or a system code: 1 to 64 of a-z 0-9 _ -", err) != 0)
        return -1;
    if (cph_schema_service_check_policies(svc, base, err) != 0)
        return -1;
    return cph_schema_service_check_credentials(svc, base, err);
}

int cph_schema_validate_service(const json_t *service, cph_error_t *err)
{
    return validate_service_at(service, "", err);
}

/* ---------------------------------------------------------------- route */

/* Is the string s (len bytes) equal to element j < i of array a? Used for small arrays (<= 64). */
static int seen_before(const json_t *a, size_t i, const char *s, size_t len)
{
    size_t j;

    for (j = 0; j != i; ++j) {
        const json_t *o = json_array_get(a, j);
        if (json_string_length(o) == len && memcmp(json_string_value(o), s, len) == 0)
            return 1;
    }
    return 0;
}

static int check_path(const json_t *paths, size_t i, const char *at, cph_error_t *err)
{
    const json_t *v = json_array_get(paths, i);
    char canon[3 * MAX_PATH_LEN + 1];
    size_t len, outlen;

    if (!json_is_string(v))
        return cph_schema_wrong_type(err, at, v, "a string");
    len = json_string_length(v);
    if (len < 1 || len > MAX_PATH_LEN || json_string_value(v)[0] != '/')
        return cph_error_set(err, "invalid", at, "a path must start with '/' and be at most %d bytes", MAX_PATH_LEN);
    if (cph_path_canonicalize(json_string_value(v), len, canon, &outlen) != 0)
        return cph_error_set(err, "invalid", at, "the path is not a valid request path");
    if (outlen != len || memcmp(canon, json_string_value(v), len) != 0)
        return cph_error_set(err, "invalid", at, "the path is not canonical; write it as \"%.200s\"", canon);
    if (len >= sizeof(RESERVED_PREFIX) - 1 && memcmp(json_string_value(v), RESERVED_PREFIX, sizeof(RESERVED_PREFIX) - 1) == 0 &&
        (len == sizeof(RESERVED_PREFIX) - 1 || json_string_value(v)[sizeof(RESERVED_PREFIX) - 1] == '/'))
        return cph_error_set(err, "invalid", at, "the path prefix /auth is reserved for the gateway's built-in routes");
    if (seen_before(paths, i, json_string_value(v), len))
        return cph_error_set(err, "duplicate", at, "the path is listed twice in this route");
    return 0;
}

static int check_host(const json_t *v, const char *at, cph_error_t *err)
{
    if (!json_is_string(v))
        return cph_schema_wrong_type(err, at, v, "a string");
    if (!valid_host_pattern(json_string_value(v), json_string_length(v)))
        return cph_error_set(err, "invalid", at, "a host must be a lower-case DNS name or *.suffix, without a port");
    return 0;
}

static int check_method(const json_t *a, size_t i, const char *at, cph_error_t *err)
{
    const json_t *v = json_array_get(a, i);
    const char *const *m;

    if (!json_is_string(v))
        return cph_schema_wrong_type(err, at, v, "a string");
    for (m = cph_schema_methods; *m != NULL; ++m)
        if (json_string_length(v) == strlen(*m) && strcmp(json_string_value(v), *m) == 0)
            break;
    if (*m == NULL)
        return cph_error_set(err, "invalid", at, "a method must be one of GET HEAD POST PUT PATCH DELETE OPTIONS CONNECT TRACE");
    if (seen_before(a, i, json_string_value(v), json_string_length(v)))
        return cph_error_set(err, "duplicate", at, "the method is listed twice in this route");
    return 0;
}

static int check_route_lists(const json_t *route, const char *base, cph_error_t *err)
{
    const json_t *paths, *hosts, *ms;
    char p[256], pa[256];
    size_t i;

    if (cph_schema_get_array(route, base, "paths", 1, 1, MAX_PATHS, &paths, err) != 0)
        return -1;
    cph_schema_at_key(pa, base, "paths");
    for (i = 0; i != json_array_size(paths); ++i)
        if (check_path(paths, i, cph_schema_at_index(p, pa, i), err) != 0)
            return -1;
    if (cph_schema_get_array(route, base, "hosts", 0, 0, MAX_HOSTS, &hosts, err) != 0)
        return -1;
    cph_schema_at_key(pa, base, "hosts");
    for (i = 0; hosts != NULL && i != json_array_size(hosts); ++i)
        if (check_host(json_array_get(hosts, i), cph_schema_at_index(p, pa, i), err) != 0)
            return -1;
    if (cph_schema_get_array(route, base, "methods", 0, 0, MAX_METHODS, &ms, err) != 0)
        return -1;
    cph_schema_at_key(pa, base, "methods");
    for (i = 0; ms != NULL && i != json_array_size(ms); ++i)
        if (check_method(ms, i, cph_schema_at_index(p, pa, i), err) != 0)
            return -1;
    return 0;
}

static int validate_route_at(const json_t *route, const char *base, cph_error_t *err)
{
    const json_t *strip;
    size_t access;

    if (!json_is_object(route))
        return cph_schema_wrong_type(err, base, route, "an object");
    if (cph_schema_check_members(route, base, route_members, err) != 0 ||
        cph_schema_check_name_member(route, base, "name", err) != 0 ||
        cph_schema_check_name_member(route, base, "service", err) != 0 || check_route_lists(route, base, err) != 0)
        return -1;
    if (cph_schema_get_member(route, base, "strip_prefix", JSON_TRUE, 0, &strip, err) != 0 ||
        cph_schema_check_enum_member(route, base, "default_access", 0, access_values, &access, err) != 0)
        return -1;
    if (cph_schema_policy_check_route(route, base, err) != 0)
        return -1;
    return cph_schema_route_check_kind(route, base, err);
}

int cph_schema_validate_route(const json_t *route, cph_error_t *err)
{
    return validate_route_at(route, "", err);
}

/* ---------------------------------------------------------------- keys (public JWKs) */

/*
 * A required member in strict unpadded base64url (cph_b64url_decode: one spelling per number) whose decoded length is
 * within [lo, hi <= RSA_N_MAX] bytes; out gets the bytes.
 */
static int check_b64_member(const json_t *jwk, const char *base, const char *key, size_t lo, size_t hi,
                            unsigned char out[RSA_N_MAX], long *n, cph_error_t *err)
{
    const json_t *v;
    char p[256];

    if (cph_schema_get_member(jwk, base, key, JSON_STRING, 1, &v, err) != 0)
        return -1;
    *n = cph_b64url_decode(json_string_value(v), json_string_length(v), out, hi);
    if (*n < (long)lo || out[0] == 0)
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key),
                             "\"%s\" must be unpadded base64url of %zu to %zu bytes without a leading zero byte", key, lo, hi);
    return 0;
}

int cph_schema_check_enum_member(const json_t *obj, const char *base, const char *key, int required, const char *const *allowed,
                                 size_t *index, cph_error_t *err)
{
    const json_t *v;
    char p[256], list[160] = "";
    size_t n = 0;

    *index = SIZE_MAX;
    if (cph_schema_get_member(obj, base, key, JSON_STRING, required, &v, err) != 0)
        return -1;
    if (v == NULL)
        return 0;
    for (*index = 0; allowed[*index] != NULL; ++*index) {
        if (strlen(allowed[*index]) == json_string_length(v) && strcmp(allowed[*index], json_string_value(v)) == 0)
            return 0;
        if (n < sizeof(list))
            n += (size_t)snprintf(list + n, sizeof(list) - n, " %s", allowed[*index]);
    }
    *index = SIZE_MAX;
    return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key), "\"%s\" must be one of:%s", key, list);
}

static int check_ec_key(const json_t *jwk, const char *base, cph_error_t *err)
{
    static const char *const crvs[] = {"P-256", NULL};
    size_t i;
    char p[256];

    if (cph_schema_check_members(jwk, base, ec_key_members, err) != 0 ||
        cph_schema_check_enum_member(jwk, base, "crv", 1, crvs, &i, err) != 0)
        return -1;
    /* coordinates are fixed-width: a leading zero byte is legal there, so check_b64_member's rule does not apply */
    for (i = 0; i != 2; ++i) {
        const json_t *v;
        const char *key = i == 0 ? "x" : "y";
        if (cph_schema_get_member(jwk, base, key, JSON_STRING, 1, &v, err) != 0)
            return -1;
        if (cph_b64url_decode(json_string_value(v), json_string_length(v), NULL, EC_COORD_BYTES) != EC_COORD_BYTES)
            return cph_error_set(err, "invalid", cph_schema_at_key(p, base, key),
                                 "\"%s\" must be unpadded base64url of exactly %d bytes", key, EC_COORD_BYTES);
    }
    return 0;
}

static int check_rsa_key(const json_t *jwk, const char *base, cph_error_t *err)
{
    unsigned char num[RSA_N_MAX];
    long n;
    char p[256];
    uint32_t e = 0;

    if (cph_schema_check_members(jwk, base, rsa_key_members, err) != 0 ||
        check_b64_member(jwk, base, "n", RSA_N_MIN, RSA_N_MAX, num, &n, err) != 0 ||
        check_b64_member(jwk, base, "e", 1, 4, num, &n, err) != 0)
        return -1;
    for (long i = 0; i != n; ++i)
        e = (e << 8) | num[i];
    if (e < 3 || e % 2 == 0)
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, "e"), "\"e\" must be an odd public exponent of at least 3");
    return 0;
}

/* One public JWK as the control plane's JWKS has it; kids are checked for uniqueness by the caller. */
static int check_key(const json_t *jwk, const char *base, cph_error_t *err)
{
    static const char *const algs[] = {"ES256", "RS256", NULL}, *const ktys[] = {"EC", "RSA", NULL}, *const uses[] = {"sig", NULL};
    size_t alg, kty, use;
    char p[256];

    if (!json_is_object(jwk))
        return cph_schema_wrong_type(err, base, jwk, "an object");
    if (cph_schema_check_members(jwk, base, key_members, err) != 0 || cph_schema_check_name_member(jwk, base, "kid", err) != 0 ||
        cph_schema_check_enum_member(jwk, base, "alg", 1, algs, &alg, err) != 0 ||
        cph_schema_check_enum_member(jwk, base, "kty", 1, ktys, &kty, err) != 0 ||
        cph_schema_check_enum_member(jwk, base, "use", 1, uses, &use, err) != 0)
        return -1;
    if (alg != kty) /* ES256 goes with EC, RS256 with RSA: the index of one is the index of the other */
        return cph_error_set(err, "invalid", cph_schema_at_key(p, base, "kty"), "\"kty\" does not match \"alg\"");
    return kty == 0 ? check_ec_key(jwk, base, err) : check_rsa_key(jwk, base, err);
}

/* Every key of the optional "keys" array, kids unique (a repeated kid is reported at the later one). */
static int check_keys(const json_t *keys, cph_error_t *err)
{
    json_t *kids;
    char p[256], pk[256];
    size_t i;
    int ret = -1;

    if (keys == NULL)
        return 0;
    if ((kids = json_object()) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != json_array_size(keys); ++i) {
        const char *kid;
        if (check_key(json_array_get(keys, i), cph_schema_at_index(p, "/keys", i), err) != 0)
            goto Exit;
        kid = json_string_value(json_object_get(json_array_get(keys, i), "kid"));
        if (json_object_get(kids, kid) != NULL) {
            cph_error_set(err, "duplicate", cph_schema_at_key(pk, p, "kid"), "the kid \"%s\" is used twice", kid);
            goto Exit;
        }
        if (json_object_set_new(kids, kid, json_true()) != 0)
            cph_fatal(MODULE, "out of memory");
    }
    ret = 0;
Exit:
    json_decref(kids);
    return ret;
}

/* ---------------------------------------------------------------- body */

/* Validates every element of list with fn and rejects a repeated name; names (a json object used as a set) gets them all. */
static int check_list(const json_t *list, const char *base, int (*fn)(const json_t *, const char *, cph_error_t *), json_t *names,
                      const json_t *services, cph_error_t *err)
{
    char p[256], pn[256];
    size_t i;

    for (i = 0; i != json_array_size(list); ++i) {
        const json_t *item = json_array_get(list, i);
        const char *name;
        cph_schema_at_index(p, base, i);
        if (fn(item, p, err) != 0)
            return -1;
        name = json_string_value(json_object_get(item, "name"));
        if (json_object_get(names, name) != NULL)
            return cph_error_set(err, "duplicate", cph_schema_at_key(pn, p, "name"), "the name \"%s\" is used twice", name);
        if (json_object_set_new(names, name, json_true()) != 0)
            cph_fatal(MODULE, "out of memory");
        if (services != NULL && json_object_get(services, json_string_value(json_object_get(item, "service"))) == NULL)
            return cph_error_set(err, "unknown_service", cph_schema_at_key(pn, p, "service"), "no service is named \"%s\"",
                                 json_string_value(json_object_get(item, "service")));
    }
    return 0;
}

int cph_snapshot_validate(const json_t *body, cph_error_t *err)
{
    const json_t *services, *routes, *keys;
    json_t *service_names, *route_names;
    int ret = -1;

    if (!json_is_object(body))
        return cph_schema_wrong_type(err, "", body, "an object");
    if (cph_schema_check_members(body, "", body_members, err) != 0 ||
        cph_schema_get_array(body, "", "services", 1, 0, MAX_SERVICES, &services, err) != 0 ||
        cph_schema_get_array(body, "", "routes", 1, 0, MAX_ROUTES, &routes, err) != 0 ||
        cph_schema_get_array(body, "", "keys", 0, 0, MAX_KEYS, &keys, err) != 0 || cph_schema_access_check_top(body, err) != 0 ||
        cph_schema_policy_check_gateway_top(body, err) != 0)
        return -1;
    if ((service_names = json_object()) == NULL || (route_names = json_object()) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (check_list(services, "/services", validate_service_at, service_names, NULL, err) != 0 ||
        check_list(routes, "/routes", validate_route_at, route_names, service_names, err) != 0 ||
        cph_schema_aggregate_check_services(routes, service_names, err) != 0 || check_keys(keys, err) != 0 ||
        cph_schema_access_check(body, service_names, err) != 0 || cph_schema_policy_check_gateway(body, err) != 0)
        goto Exit;
    ret = 0;
Exit:
    json_decref(service_names);
    json_decref(route_names);
    return ret;
}
