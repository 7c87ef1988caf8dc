/*
 * schema_policy: the traffic-policy members of a snapshot body (PROTOCOL.md section 5, "policies" to "gateway"): a
 * route's "policies" (rate limits, CORS, security headers, request limits, IP lists, the HTTPS redirect, the response
 * cache), an endpoint rule's "rate_limits" (the same limits, replacing the route's for requests the rule matched) and
 * the top-level "gateway" (client-IP hops, global IP lists and limits, Redis, the login limit, the cache's memory
 * budget and backend, the websocket drain grace). A route's upstream members (timeouts, retries, websocket) are
 * proto/schema_upstream.c's, checked after "cache". proto/schema.c calls in here for a route (after its other members) and for the
 * body (the type of "gateway" after the access members' types, its content last of all); proto/schema_access.c calls in for an
 * endpoint's "rate_limits".
 *
 * Everything is optional, so an older body still validates, and as strict as the rest of the schema: unknown members
 * are refused, integers are range-checked and never reals, every list's cap is checked before its elements. Values
 * the data plane compares byte-wise have one spelling only: a CIDR has its host bits zero and a prefix without a
 * leading zero, a CORS origin is exactly what a browser sends in Origin (lower case, no path, no default port), a
 * header name is a lower-case token, so a rule can never look like it matches something it does not.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_policy"

#define MAX_RATE_LIMITS 8
#define RATE_MAX 1000000000
#define PERIOD_S_MAX 86400
#define BURST_MAX 1000000000
#define MAX_ORIGINS 64
#define MAX_CORS_METHODS 16
#define MAX_CORS_HEADERS 64
#define CORS_MAX_AGE_S_MAX 86400
#define HSTS_MAX_AGE_S_MAX 63072000
#define MAX_BODY_BYTES_MAX 1073741824
#define MAX_CIDRS 1024
#define HEADER_NAME_MAX 64
#define TRUSTED_PROXY_HOPS_MAX 8
#define REDIS_DB_MAX 15
#define REDIS_TIMEOUT_MS_MAX 10000
#define KEY_HEADER_PREFIX "header:"
#define CACHE_TTL_S_MAX 31536000          /* one year: ttl_s and max_ttl_s */
#define CACHE_BODY_BYTES_MAX 67108864     /* a cached response's body */
#define CACHE_MAX_BYTES_MAX 17179869184LL /* gateway.cache.max_bytes: 16 GiB per data plane */
#define WS_DRAIN_GRACE_MS_MAX 3600000     /* gateway.websocket.drain_grace_ms */

static const char *const policies_members[] = {"rate_limits",    "cors",  "security_headers", "limits",  "ip_allow",  "ip_deny",
                                               "https_redirect", "cache", "timeouts",         "retries", "websocket", NULL};
static const char *const rate_limit_members[] = {"name",    "key",      "rate",    "period_s", "burst",
                                                 "backend", "on_error", "headers", NULL};
static const char *const cors_members[] = {"origins", "methods", "headers", "expose_headers", "credentials", "max_age_s", NULL};
static const char *const security_members[] = {"hsts_max_age_s", "hsts_subdomains", "content_type_options",
                                               "frame_options",  "referrer_policy", NULL};
static const char *const limits_members[] = {"max_body_bytes", "max_url_bytes", "max_headers", "max_header_bytes", NULL};
static const char *const gateway_members[] = {"trusted_proxy_hops", "ip_allow",   "ip_deny",     "limits",
                                              "redis",              "login_rate_limit", "cache",  "websocket",
                                              "request_id",         "connections", NULL};
static const char *const cache_members[] = {"ttl_s", "max_ttl_s", "max_body_bytes", "share_authenticated", NULL};
static const char *const gateway_cache_members[] = {"max_bytes", "backend", NULL};
static const char *const cache_backend_values[] = {"memory", "redis", NULL};
static const char *const gateway_websocket_members[] = {"drain_grace_ms", NULL};
static const char *const gateway_request_id_members[] = {"trust_incoming", NULL};
static const char *const gateway_connections_members[] = {"max_per_ip", NULL};
static const char *const redis_members[] = {"host", "port", "db", "timeout_ms", NULL};
static const char *const login_members[] = {"rate", "period_s", "burst", NULL};
static const char *const key_values[] = {"ip", "principal", "api_key", "system", "route", NULL};
static const char *const backend_values[] = {"local", "redis", NULL};
static const char *const on_error_values[] = {"open", "closed", NULL};
static const char *const frame_values[] = {"DENY", "SAMEORIGIN", NULL};
static const char *const referrer_values[] = {"no-referrer",
                                              "no-referrer-when-downgrade",
                                              "same-origin",
                                              "origin",
                                              "strict-origin",
                                              "origin-when-cross-origin",
                                              "strict-origin-when-cross-origin",
                                              "unsafe-url",
                                              NULL};

/* ---------------------------------------------------------------- string rules */

/* A header name as the data plane compares it: 1-64 bytes of RFC 9110 token characters, lower case. */
int cph_schema_valid_header_name(const char *s, size_t len)
{
    if (len < 1 || len > HEADER_NAME_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || (s[i] != '\0' && strchr("!#$%&'*+-.^_`|~", s[i]))))
            return 0;
    return 1;
}

/* A rate limit's key: one of key_values, or "header:" and a header name. */
static int valid_limit_key(const char *s, size_t len)
{
    size_t plen = sizeof(KEY_HEADER_PREFIX) - 1;

    if (len > plen && memcmp(s, KEY_HEADER_PREFIX, plen) == 0)
        return cph_schema_valid_header_name(s + plen, len - plen);
    for (size_t i = 0; key_values[i] != NULL; ++i)
        if (strlen(key_values[i]) == len && memcmp(key_values[i], s, len) == 0)
            return 1;
    return 0;
}

/*
 * A host: an IPv6 literal (without brackets) when it holds a ':', else what a target URL takes as HOST (a dotted-quad
 * IPv4 address or a DNS name), which cph_schema_valid_target_url decides on "http://<host>:1".
 */
static int valid_host(const char *s, size_t len)
{
    char buf[272];
    struct in6_addr a6;

    if (len < 1 || len > 253 || memchr(s, '\0', len) != NULL || memchr(s, '/', len) != NULL)
        return 0;
    if (memchr(s, ':', len) != NULL) {
        if (len >= INET6_ADDRSTRLEN)
            return 0;
        memcpy(buf, s, len);
        buf[len] = '\0';
        return inet_pton(AF_INET6, buf, &a6) == 1;
    }
    snprintf(buf, sizeof(buf), "http://%.*s:1", (int)len, s);
    return cph_schema_valid_target_url(buf, strlen(buf));
}

/*
 * A CORS origin exactly as a browser serialises it in Origin: http:// or https://, a lower-case host (DNS name,
 * IPv4, or [IPv6]), an optional port 1-65535 that is not the scheme's default, nothing else (no path, not even "/").
 * The host and port go through cph_schema_valid_target_url, on "http://<host>:<port or 1>".
 */
static int valid_origin(const char *s, size_t len)
{
    const char *rest, *port = NULL, *close;
    size_t rlen, i;
    int https;
    char buf[272];

    https = len > 8 && memcmp(s, "https://", 8) == 0;
    if (len > 255 || (!https && !(len > 7 && memcmp(s, "http://", 7) == 0)))
        return 0;
    rest = s + (https ? 8 : 7), rlen = len - (size_t)(rest - s);
    for (i = 0; i != rlen; ++i)
        if (!((rest[i] >= 'a' && rest[i] <= 'z') || (rest[i] >= '0' && rest[i] <= '9') ||
              (rest[i] != '\0' && strchr(".-:[]", rest[i]))))
            return 0;
    if (rest[0] == '[') {
        if ((close = memchr(rest, ']', rlen)) != NULL && close + 1 < rest + rlen && close[1] == ':')
            port = close + 2;
    } else if ((port = memchr(rest, ':', rlen)) != NULL) {
        ++port;
    }
    if (port != NULL && (size_t)(rest + rlen - port) == (https ? 3 : 2) && memcmp(port, https ? "443" : "80", https ? 3 : 2) == 0)
        return 0;
    snprintf(buf, sizeof(buf), "http://%.*s%s", (int)rlen, rest, port != NULL ? "" : ":1");
    return cph_schema_valid_target_url(buf, strlen(buf)) && buf[strlen(buf) - 1] != '/';
}

/*
 * A CIDR: an IPv4 (a.b.c.d) or IPv6 address as inet_pton reads it (no zone id), then optionally '/' and a prefix
 * length without a leading zero (0-32, 0-128; a bare address is a /32 or /128), and no bit set after the prefix.
 */
static int valid_cidr(const char *s, size_t len)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len, plen = slash != NULL ? len - alen - 1 : 0;
    unsigned char bytes[16];
    char addr[INET6_ADDRSTRLEN];
    unsigned bits, prefix = 0;

    if (alen == 0 || alen >= sizeof(addr) || memchr(s, '\0', len) != NULL)
        return 0;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    bits = memchr(addr, ':', alen) != NULL ? 128 : 32;
    if (inet_pton(bits == 128 ? AF_INET6 : AF_INET, addr, bytes) != 1)
        return 0;
    if (slash == NULL)
        return 1;
    if (plen < 1 || plen > 3 || (plen > 1 && slash[1] == '0'))
        return 0;
    for (size_t i = 1; i <= plen; ++i) {
        if (slash[i] < '0' || slash[i] > '9')
            return 0;
        prefix = prefix * 10 + (unsigned)(slash[i] - '0');
    }
    if (prefix > bits)
        return 0;
    for (unsigned b = prefix; b != bits; ++b)
        if (bytes[b / 8] & (0x80u >> (b % 8)))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- generic pieces */

/* A string member that is null or one of allowed (NULL-terminated). */
static int check_nullable_enum(const json_t *obj, const char *base, const char *key, const char *const *allowed, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    char p[256];
    size_t index;

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return cph_schema_wrong_type(err, cph_schema_at_key(p, base, key), v, "a string or null");
    return cph_schema_check_enum_member(obj, base, key, 0, allowed, &index, err);
}

/* A boolean member, optional. */
static int check_bool_member(const json_t *obj, const char *base, const char *key, cph_error_t *err)
{
    const json_t *v;

    return cph_schema_get_member(obj, base, key, JSON_TRUE, 0, &v, err);
}

/*
 * An optional array member of min to max strings, each passing rule (rule_text in the message) and, when unique,
 * different from every earlier one ("duplicate" at the later element; lists are small or the caller passes 0).
 */
static int check_string_list(const json_t *obj, const char *base, const char *key, size_t min, size_t max, int unique,
                             int (*rule)(const char *s, size_t len), const char *rule_text, cph_error_t *err)
{
    const json_t *list;
    char pa[256], p[256];

    if (cph_schema_get_array(obj, base, key, 0, min, max, &list, err) != 0)
        return -1;
    if (list == NULL)
        return 0;
    cph_schema_at_key(pa, base, key);
    for (size_t i = 0; i != json_array_size(list); ++i) {
        const json_t *v = json_array_get(list, i);
        cph_schema_at_index(p, pa, i);
        if (!json_is_string(v))
            return cph_schema_wrong_type(err, p, v, "a string");
        if (!rule(json_string_value(v), json_string_length(v)))
            return cph_error_set(err, "invalid", p, "must be %s", rule_text);
        for (size_t j = 0; unique && j != i; ++j)
            if (json_string_length(json_array_get(list, j)) == json_string_length(v) &&
                memcmp(json_string_value(json_array_get(list, j)), json_string_value(v), json_string_length(v)) == 0)
                return cph_error_set(err, "duplicate", p, "this value is listed twice");
    }
    return 0;
}

static int check_cidr_list(const json_t *obj, const char *base, const char *key, cph_error_t *err)
{
    return check_string_list(obj, base, key, 0, MAX_CIDRS, 0, valid_cidr,
                             "a CIDR: a.b.c.d[/0-32] or an IPv6 address[/0-128], with no bit set after the prefix", err);
}

/* ---------------------------------------------------------------- rate limits */

/* One limit's members, in table order (its name's uniqueness is the caller's). */
static int check_rate_limit(const json_t *l, const char *at, cph_error_t *err)
{
    size_t index;

    if (!json_is_object(l))
        return cph_schema_wrong_type(err, at, l, "an object");
    if (cph_schema_check_members(l, at, rate_limit_members, err) != 0 || cph_schema_check_name_member(l, at, "name", err) != 0 ||
        cph_schema_check_string_member(l, at, "key", 1, 0, valid_limit_key,
                                       "ip, principal, api_key, system, route or header:<lower-case header name, 1 to 64>",
                                       err) != 0 ||
        cph_schema_check_int_member(l, at, "rate", 1, 1, RATE_MAX, err) != 0 ||
        cph_schema_check_int_member(l, at, "period_s", 1, 1, PERIOD_S_MAX, err) != 0 ||
        cph_schema_check_int_member(l, at, "burst", 0, 0, BURST_MAX, err) != 0 ||
        cph_schema_check_enum_member(l, at, "backend", 0, backend_values, &index, err) != 0 ||
        cph_schema_check_enum_member(l, at, "on_error", 0, on_error_values, &index, err) != 0)
        return -1;
    return check_bool_member(l, at, "headers", err);
}

int cph_schema_policy_check_rate_limits(const json_t *obj, const char *base, cph_error_t *err)
{
    const json_t *list;
    char pa[256], p[256], pn[256];

    if (cph_schema_get_array(obj, base, "rate_limits", 0, 0, MAX_RATE_LIMITS, &list, err) != 0)
        return -1;
    cph_schema_at_key(pa, base, "rate_limits");
    for (size_t i = 0; list != NULL && i != json_array_size(list); ++i) {
        const json_t *name;
        if (check_rate_limit(json_array_get(list, i), cph_schema_at_index(p, pa, i), err) != 0)
            return -1;
        name = json_object_get(json_array_get(list, i), "name");
        for (size_t j = 0; j != i; ++j)
            if (json_equal(json_object_get(json_array_get(list, j), "name"), (json_t *)name))
                return cph_error_set(err, "duplicate", cph_schema_at_key(pn, p, "name"),
                                     "the limit name \"%s\" is used twice in this list", json_string_value(name));
    }
    return 0;
}

/* ---------------------------------------------------------------- cors, security headers, limits */

static int check_method_name(const char *s, size_t len)
{
    for (size_t i = 0; cph_schema_methods[i] != NULL; ++i)
        if (strlen(cph_schema_methods[i]) == len && memcmp(cph_schema_methods[i], s, len) == 0)
            return 1;
    return 0;
}

/* "*" alone, or exact origins; "*" among other origins is refused at its element. */
static int valid_origin_item(const char *s, size_t len)
{
    return (len == 1 && s[0] == '*') || valid_origin(s, len);
}

int cph_schema_policy_check_origins(const json_t *obj, const char *base, const char *key, int required, size_t min,
                                    cph_error_t *err)
{
    const json_t *origins;
    char pa[256], p[256];

    if (cph_schema_get_array(obj, base, key, required, min, MAX_ORIGINS, &origins, err) != 0 ||
        check_string_list(obj, base, key, min, MAX_ORIGINS, 1, valid_origin_item,
                          "\"*\" or an origin: http(s)://host[:port], lower case, no path, no default port", err) != 0)
        return -1;
    for (size_t i = 0; json_array_size(origins) > 1 && i != json_array_size(origins); ++i)
        if (strcmp(json_string_value(json_array_get(origins, i)), "*") == 0)
            return cph_error_set(err, "invalid", cph_schema_at_index(p, cph_schema_at_key(pa, base, key), i),
                                 "\"*\" must be the only origin");
    return 0;
}

static int check_cors(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *cors, *origins, *cred;
    char at[256], p[256];

    if (cph_schema_get_member(pol, base, "cors", JSON_OBJECT, 0, &cors, err) != 0)
        return -1;
    if (cors == NULL)
        return 0;
    cph_schema_at_key(at, base, "cors");
    if (cph_schema_check_members(cors, at, cors_members, err) != 0 ||
        cph_schema_policy_check_origins(cors, at, "origins", 1, 1, err) != 0)
        return -1;
    origins = json_object_get(cors, "origins");
    if (check_string_list(cors, at, "methods", 0, MAX_CORS_METHODS, 1, check_method_name,
                          "one of GET HEAD POST PUT PATCH DELETE OPTIONS CONNECT TRACE", err) != 0 ||
        check_string_list(cors, at, "headers", 0, MAX_CORS_HEADERS, 1, cph_schema_valid_header_name,
                          "a lower-case header name (token), 1 to 64 bytes", err) != 0 ||
        check_string_list(cors, at, "expose_headers", 0, MAX_CORS_HEADERS, 1, cph_schema_valid_header_name,
                          "a lower-case header name (token), 1 to 64 bytes", err) != 0 ||
        cph_schema_get_member(cors, at, "credentials", JSON_TRUE, 0, &cred, err) != 0 ||
        cph_schema_check_int_member(cors, at, "max_age_s", 0, 0, CORS_MAX_AGE_S_MAX, err) != 0)
        return -1;
    if (json_is_true(cred) && strcmp(json_string_value(json_array_get(origins, 0)), "*") == 0)
        return cph_error_set(err, "invalid", cph_schema_at_key(p, at, "credentials"),
                             "\"credentials\" cannot be true when the origins are \"*\"");
    return 0;
}

static int check_security_headers(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *sh;
    char at[256];

    if (cph_schema_get_member(pol, base, "security_headers", JSON_OBJECT, 0, &sh, err) != 0)
        return -1;
    if (sh == NULL)
        return 0;
    cph_schema_at_key(at, base, "security_headers");
    if (cph_schema_check_members(sh, at, security_members, err) != 0 ||
        cph_schema_check_int_member(sh, at, "hsts_max_age_s", 0, 0, HSTS_MAX_AGE_S_MAX, err) != 0 ||
        check_bool_member(sh, at, "hsts_subdomains", err) != 0 || check_bool_member(sh, at, "content_type_options", err) != 0 ||
        check_nullable_enum(sh, at, "frame_options", frame_values, err) != 0)
        return -1;
    return check_nullable_enum(sh, at, "referrer_policy", referrer_values, err);
}

/* A "limits" object (a route's policies and the gateway share it). */
static int check_limits(const json_t *obj, const char *base, cph_error_t *err)
{
    const json_t *lim;
    char at[256];

    if (cph_schema_get_member(obj, base, "limits", JSON_OBJECT, 0, &lim, err) != 0)
        return -1;
    if (lim == NULL)
        return 0;
    cph_schema_at_key(at, base, "limits");
    if (cph_schema_check_members(lim, at, limits_members, err) != 0 ||
        cph_schema_check_int_member(lim, at, "max_body_bytes", 0, 0, MAX_BODY_BYTES_MAX, err) != 0 ||
        cph_schema_check_int_member(lim, at, "max_url_bytes", 0, 256, 65536, err) != 0 ||
        cph_schema_check_int_member(lim, at, "max_headers", 0, 1, 1000, err) != 0)
        return -1;
    return cph_schema_check_int_member(lim, at, "max_header_bytes", 0, 1024, 1048576, err);
}

/* ---------------------------------------------------------------- cache */

/* policies.cache: the route's response-cache policy (absent = no caching); no cross-member rule (max_ttl_s caps ttl_s). */
static int check_cache(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *cache;
    char at[256];

    if (cph_schema_get_member(pol, base, "cache", JSON_OBJECT, 0, &cache, err) != 0)
        return -1;
    if (cache == NULL)
        return 0;
    cph_schema_at_key(at, base, "cache");
    if (cph_schema_check_members(cache, at, cache_members, err) != 0 ||
        cph_schema_check_int_member(cache, at, "ttl_s", 0, 0, CACHE_TTL_S_MAX, err) != 0 ||
        cph_schema_check_int_member(cache, at, "max_ttl_s", 0, 1, CACHE_TTL_S_MAX, err) != 0 ||
        cph_schema_check_int_member(cache, at, "max_body_bytes", 0, 1, CACHE_BODY_BYTES_MAX, err) != 0)
        return -1;
    return check_bool_member(cache, at, "share_authenticated", err);
}

/*
 * gateway.cache: the memory budget of one data plane's cache (0 = off) and where entries live; "redis" needs
 * gateway.redis (checked before, so its value is known to be valid here).
 */
static int check_gateway_cache(const json_t *gw, cph_error_t *err)
{
    const json_t *cache, *redis = json_object_get(gw, "redis");
    const char *at = "/gateway/cache";
    size_t backend;

    if (cph_schema_get_member(gw, "/gateway", "cache", JSON_OBJECT, 0, &cache, err) != 0)
        return -1;
    if (cache == NULL)
        return 0;
    if (cph_schema_check_members(cache, at, gateway_cache_members, err) != 0 ||
        cph_schema_check_int_member(cache, at, "max_bytes", 0, 0, CACHE_MAX_BYTES_MAX, err) != 0 ||
        cph_schema_check_enum_member(cache, at, "backend", 0, cache_backend_values, &backend, err) != 0)
        return -1;
    if (backend == 1 && (redis == NULL || json_is_null(redis)))
        return cph_error_set(err, "invalid", "/gateway/cache/backend", "\"backend\" \"redis\" needs a non-null gateway.redis");
    return 0;
}

/* gateway.websocket: how long a tunnel outlives its route (or its route's websocket policy) after a swap. */
static int check_gateway_websocket(const json_t *gw, cph_error_t *err)
{
    const json_t *ws;
    const char *at = "/gateway/websocket";

    if (cph_schema_get_member(gw, "/gateway", "websocket", JSON_OBJECT, 0, &ws, err) != 0)
        return -1;
    if (ws == NULL)
        return 0;
    if (cph_schema_check_members(ws, at, gateway_websocket_members, err) != 0)
        return -1;
    return cph_schema_check_int_member(ws, at, "drain_grace_ms", 0, 0, WS_DRAIN_GRACE_MS_MAX, err);
}

/* gateway.request_id: {"trust_incoming": bool} (optional, default false). */
static int check_gateway_request_id(const json_t *gw, cph_error_t *err)
{
    const json_t *rid, *trust;
    const char *at = "/gateway/request_id";

    if (cph_schema_get_member(gw, "/gateway", "request_id", JSON_OBJECT, 0, &rid, err) != 0)
        return -1;
    if (rid == NULL)
        return 0;
    if (cph_schema_check_members(rid, at, gateway_request_id_members, err) != 0)
        return -1;
    return cph_schema_get_member(rid, at, "trust_incoming", JSON_TRUE, 0, &trust, err);
}

/* gateway.connections: {"max_per_ip": 0..1000000} (optional, 0 or absent = no cap). */
static int check_gateway_connections(const json_t *gw, cph_error_t *err)
{
    const json_t *c;
    const char *at = "/gateway/connections";

    if (cph_schema_get_member(gw, "/gateway", "connections", JSON_OBJECT, 0, &c, err) != 0)
        return -1;
    if (c == NULL)
        return 0;
    if (cph_schema_check_members(c, at, gateway_connections_members, err) != 0)
        return -1;
    return cph_schema_check_int_member(c, at, "max_per_ip", 0, 0, CPH_MAX_CONNECTIONS_PER_IP, err);
}

/* ---------------------------------------------------------------- route policies */

int cph_schema_policy_check_route(const json_t *route, const char *base, cph_error_t *err)
{
    const json_t *pol, *redirect;
    char at[256];

    if (cph_schema_get_member(route, base, "policies", JSON_OBJECT, 0, &pol, err) != 0)
        return -1;
    if (pol == NULL)
        return 0;
    cph_schema_at_key(at, base, "policies");
    if (cph_schema_check_members(pol, at, policies_members, err) != 0 || cph_schema_policy_check_rate_limits(pol, at, err) != 0 ||
        check_cors(pol, at, err) != 0 || check_security_headers(pol, at, err) != 0 || check_limits(pol, at, err) != 0 ||
        check_cidr_list(pol, at, "ip_allow", err) != 0 || check_cidr_list(pol, at, "ip_deny", err) != 0)
        return -1;
    if (cph_schema_get_member(pol, at, "https_redirect", JSON_TRUE, 0, &redirect, err) != 0 || check_cache(pol, at, err) != 0)
        return -1;
    return cph_schema_upstream_check_route(pol, at, err);
}

/* ---------------------------------------------------------------- gateway */

/* gateway.redis: null, or an object with a host and optional port, db and timeout_ms. */
static int check_redis(const json_t *gw, cph_error_t *err)
{
    const json_t *r = json_object_get(gw, "redis");
    const char *at = "/gateway/redis";

    if (r == NULL || json_is_null(r))
        return 0;
    if (!json_is_object(r))
        return cph_schema_wrong_type(err, at, r, "an object or null");
    if (cph_schema_check_members(r, at, redis_members, err) != 0 ||
        cph_schema_check_string_member(r, at, "host", 1, 0, valid_host, "an IPv4 or IPv6 literal (no brackets) or a DNS name",
                                       err) != 0 ||
        cph_schema_check_int_member(r, at, "port", 0, 1, 65535, err) != 0 ||
        cph_schema_check_int_member(r, at, "db", 0, 0, REDIS_DB_MAX, err) != 0)
        return -1;
    return cph_schema_check_int_member(r, at, "timeout_ms", 0, 1, REDIS_TIMEOUT_MS_MAX, err);
}

static int check_login_rate_limit(const json_t *gw, cph_error_t *err)
{
    const json_t *l;
    const char *at = "/gateway/login_rate_limit";

    if (cph_schema_get_member(gw, "/gateway", "login_rate_limit", JSON_OBJECT, 0, &l, err) != 0)
        return -1;
    if (l == NULL)
        return 0;
    if (cph_schema_check_members(l, at, login_members, err) != 0 ||
        cph_schema_check_int_member(l, at, "rate", 0, 1, RATE_MAX, err) != 0 ||
        cph_schema_check_int_member(l, at, "period_s", 0, 1, PERIOD_S_MAX, err) != 0)
        return -1;
    return cph_schema_check_int_member(l, at, "burst", 0, 0, BURST_MAX, err);
}

int cph_schema_policy_check_gateway_top(const json_t *body, cph_error_t *err)
{
    const json_t *gw;

    return cph_schema_get_member(body, "", "gateway", JSON_OBJECT, 0, &gw, err);
}

int cph_schema_policy_check_gateway(const json_t *body, cph_error_t *err)
{
    const json_t *gw = json_object_get(body, "gateway");
    const char *at = "/gateway";

    if (gw == NULL)
        return 0;
    if (cph_schema_check_members(gw, at, gateway_members, err) != 0 ||
        cph_schema_check_int_member(gw, at, "trusted_proxy_hops", 0, 0, TRUSTED_PROXY_HOPS_MAX, err) != 0 ||
        check_cidr_list(gw, at, "ip_allow", err) != 0 || check_cidr_list(gw, at, "ip_deny", err) != 0 ||
        check_limits(gw, at, err) != 0 || check_redis(gw, err) != 0 || check_login_rate_limit(gw, err) != 0 ||
        check_gateway_cache(gw, err) != 0 || check_gateway_request_id(gw, err) != 0 ||
        check_gateway_connections(gw, err) != 0)
        return -1;
    return check_gateway_websocket(gw, err);
}
