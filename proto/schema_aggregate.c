/*
 * schema_aggregate: an "aggregate" route's configuration (PROTOCOL.md section 5, "aggregate route"): the client path
 * pattern, the deadline, and 1-16 backends, each a service, a method, a path template, where its answer goes and
 * whether the request fails without it.
 *
 * The path template is what a client's values are substituted into, so it is held to the pattern rules: its path
 * part, with every placeholder read as a plain segment, must be canonical (no dot segments, "//", ';', needless
 * escapes), no segment may become a dot segment when its placeholders are empty, and its query part has only RFC 3986
 * query bytes. Every "{name}" must be a parameter of the pattern; "{query.<name>}" takes the client's query
 * parameter. The data plane percent-encodes every substituted value (core/aggregate.c), so a value never adds
 * structure; the template is the only structure there is.
 *
 * Service names are checked after every route (cph_schema_aggregate_check_services), against the body's services.
 */
#include <stdio.h>
#include <string.h>
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_aggregate"
#define DEADLINE_MS_MAX 60000
#define BACKENDS_MAX 16
#define TEMPLATE_MAX 1024
#define QUERY_NAME_MAX 64

static const char *const aggregate_members[] = {"deadline_ms", "on_deadline", "pattern", "backends", NULL};
static const char *const backend_members[] = {"name", "service", "method", "path", "key", "required", NULL};
static const char *const on_deadline_values[] = {"partial", "error", NULL};
static const char *const method_values[] = {"GET", "POST", NULL};

/* The parameter names of a pattern that passed cph_endpoint_pattern_check. */
typedef struct st_params_t {
    const char *name[CPH_ENDPOINT_PATTERN_PARAMS_MAX];
    size_t len[CPH_ENDPOINT_PATTERN_PARAMS_MAX], num;
} params_t;

static void collect_params(const char *pattern, params_t *ps)
{
    const char *p = pattern;

    ps->num = 0;
    while ((p = strchr(p, '{')) != NULL && ps->num != CPH_ENDPOINT_PATTERN_PARAMS_MAX) {
        const char *close = strchr(p, '}');
        if (close == NULL)
            break;
        ps->name[ps->num] = p + 1;
        ps->len[ps->num++] = (size_t)(close - p - 1);
        p = close + 1;
    }
}

static int is_param(const params_t *ps, const char *name, size_t len)
{
    for (size_t i = 0; i != ps->num; ++i)
        if (ps->len[i] == len && memcmp(ps->name[i], name, len) == 0)
            return 1;
    return 0;
}

static int unreserved(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static int hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A byte of a query part written raw: unreserved, sub-delims, ':', '@', '/', '?' (RFC 3986 3.4); '%' is checked apart. */
static int query_byte(char c)
{
    return unreserved(c) || (c != '\0' && strchr("!$&'()*+,;=:@/?", c) != NULL);
}

/* Checks a placeholder's name (between the braces) against the pattern's parameters. */
static int check_placeholder(const char *name, size_t len, const params_t *ps, const char *at, cph_error_t *err)
{
    if (len > 6 && memcmp(name, "query.", 6) == 0) {
        if (len - 6 > QUERY_NAME_MAX)
            return cph_error_set(err, "invalid", at, "a query parameter name has at most %d bytes", QUERY_NAME_MAX);
        for (size_t i = 6; i != len; ++i)
            if (!unreserved(name[i]))
                return cph_error_set(err, "invalid", at, "a query parameter name is made of A-Z a-z 0-9 - . _ ~");
        return 0;
    }
    if (!is_param(ps, name, len))
        return cph_error_set(err, "invalid", at, "the placeholder {%.*s} is not a parameter of the pattern (nor {query.<name>})",
                             (int)(len > 64 ? 64 : len), name);
    return 0;
}

/* No segment of the path part may be "." or ".." once its placeholders are substituted by nothing. */
static int check_dot_segments(const char *sub_empty, size_t len, const char *at, cph_error_t *err)
{
    const char *p = sub_empty, *end = sub_empty + len;

    while (p < end) {
        const char *seg = p + 1, *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t seg_len = (size_t)((slash != NULL ? slash : end) - seg);
        if ((seg_len == 1 && seg[0] == '.') || (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
            return cph_error_set(err, "invalid", at, "a segment of the path template could become a dot segment");
        p = seg + seg_len;
    }
    return 0;
}

/* The path part (before '?') of a template: canonical with placeholders read as "p", and no dot segment when every
 * query placeholder is empty (a pattern parameter is never empty, nor raw dots: core/aggregate.c encodes those). */
static int check_path_part(const char *s, size_t len, const char *at, cph_error_t *err)
{
    char as_p[TEMPLATE_MAX + 1], as_empty[TEMPLATE_MAX + 1], canon[3 * TEMPLATE_MAX + 1];
    size_t np = 0, ne = 0, clen = 0;

    for (size_t i = 0; i != len; ++i) {
        if (s[i] == '{') {
            const char *close = memchr(s + i, '}', len - i);
            if (len - i < 7 || memcmp(s + i + 1, "query.", 6) != 0)
                as_empty[ne++] = 'p';
            as_p[np++] = 'p';
            i = (size_t)(close - s);
            continue;
        }
        as_p[np++] = as_empty[ne++] = s[i];
    }
    as_p[np] = as_empty[ne] = '\0';
    if (cph_path_canonicalize(as_p, np, canon, &clen) != 0 || clen != np || memcmp(canon, as_p, np) != 0)
        return cph_error_set(err, "invalid", at,
                             "the path template is not canonical (dot segments, '//', ';', needless or encoded '/' escapes, "
                             "control bytes)");
    return check_dot_segments(as_empty, ne, at, err);
}

/* The query part (after the first '?', placeholders excluded): RFC 3986 query bytes and well-formed escapes. */
static int check_query_part(const char *s, size_t len, const char *at, cph_error_t *err)
{
    for (size_t i = 0; i != len; ++i) {
        if (s[i] == '{') {
            i = (size_t)((const char *)memchr(s + i, '}', len - i) - s);
        } else if (s[i] == '%') {
            if (i + 2 >= len || !hex(s[i + 1]) || !hex(s[i + 2]))
                return cph_error_set(err, "invalid", at, "a '%%' in the path template must start an escape %%XX");
            i += 2;
        } else if (!query_byte(s[i])) {
            return cph_error_set(err, "invalid", at,
                                 "the query part of the path template has a byte RFC 3986 does not allow there");
        }
    }
    return 0;
}

/* Braces pair up, placeholders are known; returns the offset of the first literal '?' (len when none) in *qpos. */
static int check_braces(const char *s, size_t len, const params_t *ps, size_t *qpos, const char *at, cph_error_t *err)
{
    *qpos = len;
    for (size_t i = 0; i != len; ++i) {
        if (s[i] == '}')
            return cph_error_set(err, "invalid", at, "a '}' in the path template closes no placeholder");
        if (s[i] == '?' && *qpos == len)
            *qpos = i;
        if (s[i] != '{')
            continue;
        const char *close = memchr(s + i + 1, '}', len - i - 1), *open = memchr(s + i + 1, '{', len - i - 1);
        if (close == NULL || (open != NULL && open < close) || close == s + i + 1)
            return cph_error_set(err, "invalid", at, "a placeholder in the path template is '{name}' or '{query.<name>}'");
        if (check_placeholder(s + i + 1, (size_t)(close - s - i - 1), ps, at, err) != 0)
            return -1;
        i = (size_t)(close - s);
    }
    return 0;
}

static int check_template(const json_t *backend, const char *base, const params_t *ps, cph_error_t *err)
{
    const json_t *v;
    const char *s;
    size_t len, qpos;
    char at[256];

    if (cph_schema_get_member(backend, base, "path", JSON_STRING, 1, &v, err) != 0)
        return -1;
    cph_schema_at_key(at, base, "path");
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0 || len > TEMPLATE_MAX || s[0] != '/' || strlen(s) != len)
        return cph_error_set(err, "invalid", at, "a path template starts with '/' and has at most %d bytes", TEMPLATE_MAX);
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '#')
            return cph_error_set(err, "invalid", at, "a path template is visible ASCII without '#'");
    if (check_braces(s, len, ps, &qpos, at, err) != 0 || check_path_part(s, qpos, at, err) != 0)
        return -1;
    return qpos == len ? 0 : check_query_part(s + qpos + 1, len - qpos - 1, at, err);
}

/* "key": 1-64 bytes of a name, not "_errors" (the gateway's own member). */
static int valid_key(const char *s, size_t len)
{
    return cph_schema_valid_name(s, len) && !(len == 7 && memcmp(s, "_errors", 7) == 0);
}

/* A later element of backends whose member key has the same string value as element i's: "duplicate". */
static int check_unique(const json_t *backends, size_t i, const char *key, const char *base, cph_error_t *err)
{
    const json_t *v = json_object_get(json_array_get(backends, i), key);
    char p[256];

    if (!json_is_string(v))
        return 0;
    for (size_t j = 0; j != i; ++j) {
        const json_t *w = json_object_get(json_array_get(backends, j), key);
        if (json_is_string(w) && json_equal((json_t *)v, (json_t *)w))
            return cph_error_set(err, "duplicate", cph_schema_at_key(p, base, key), "another backend has the same %s", key);
    }
    return 0;
}

static int check_backend(const json_t *backends, size_t i, const char *base, const params_t *ps, cph_error_t *err)
{
    const json_t *b = json_array_get(backends, i), *req;
    size_t method;

    if (!json_is_object(b))
        return cph_schema_wrong_type(err, base, b, "an object");
    if (cph_schema_check_members(b, base, backend_members, err) != 0 || cph_schema_check_name_member(b, base, "name", err) != 0 ||
        check_unique(backends, i, "name", base, err) != 0 || cph_schema_check_name_member(b, base, "service", err) != 0 ||
        cph_schema_check_enum_member(b, base, "method", 0, method_values, &method, err) != 0 ||
        check_template(b, base, ps, err) != 0)
        return -1;
    if (cph_schema_check_string_member(b, base, "key", 0, 0, valid_key, "1 to 64 of A-Z a-z 0-9 . _ -, not \"_errors\"", err) !=
            0 ||
        check_unique(backends, i, "key", base, err) != 0)
        return -1;
    return cph_schema_get_member(b, base, "required", JSON_TRUE, 0, &req, err);
}

int cph_schema_aggregate_check(const json_t *aggregate, const char *base, cph_error_t *err)
{
    const json_t *pattern, *backends;
    size_t on_deadline;
    params_t ps;
    char at[256], bat[256];

    if (cph_schema_check_members(aggregate, base, aggregate_members, err) != 0 ||
        cph_schema_check_int_member(aggregate, base, "deadline_ms", 0, 1, DEADLINE_MS_MAX, err) != 0 ||
        cph_schema_check_enum_member(aggregate, base, "on_deadline", 0, on_deadline_values, &on_deadline, err) != 0 ||
        cph_schema_get_member(aggregate, base, "pattern", JSON_STRING, 1, &pattern, err) != 0)
        return -1;
    cph_schema_at_key(at, base, "pattern");
    if (strlen(json_string_value(pattern)) != json_string_length(pattern))
        return cph_error_set(err, "invalid", at, "a path pattern has no NUL byte");
    if (cph_endpoint_pattern_check(json_string_value(pattern), at, err) != 0)
        return -1;
    collect_params(json_string_value(pattern), &ps);
    if (cph_schema_get_array(aggregate, base, "backends", 1, 1, BACKENDS_MAX, &backends, err) != 0)
        return -1;
    cph_schema_at_key(at, base, "backends");
    for (size_t i = 0; i != json_array_size(backends); ++i)
        if (check_backend(backends, i, cph_schema_at_index(bat, at, i), &ps, err) != 0)
            return -1;
    return 0;
}

int cph_schema_aggregate_check_services(const json_t *routes, const json_t *services, cph_error_t *err)
{
    char at[256];

    for (size_t i = 0; i != json_array_size(routes); ++i) {
        const json_t *backends = json_object_get(json_object_get(json_array_get(routes, i), "aggregate"), "backends");
        for (size_t j = 0; j != json_array_size(backends); ++j) {
            const json_t *svc = json_object_get(json_array_get(backends, j), "service");
            if (json_is_string(svc) && json_object_get(services, json_string_value(svc)) != NULL)
                continue;
            snprintf(at, sizeof(at), "/routes/%zu/aggregate/backends/%zu/service", i, j);
            return cph_error_set(err, "unknown_service", at, "the backend names a service that is not defined");
        }
    }
    return 0;
}
