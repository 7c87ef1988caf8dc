/*
 * schema_service: a service's "policies" in a snapshot body (PROTOCOL.md section 5, "service policies"): how the data
 * plane spreads requests over the targets (lb), probes them (health_check), ejects failing ones (outlier) and bounds
 * the load it sends (limits). proto/schema.c calls in here for a service, after its other members; the control plane
 * calls cph_schema_validate_service_policies() on a policies object alone.
 *
 * Everything is optional (absent = every default, which is the data plane's business and PROTOCOL.md's to say), as
 * strict as the rest of the schema: unknown members refused, integers range-checked and never reals, lists capped
 * before their elements are read. Two rules span members and use the defaults of the absent ones, so the data plane
 * never has to repair a configuration: a health check's timeout_ms is below its interval_ms, and an outlier's
 * max_ejection_ms is at least its base_ejection_ms; the error is at the later member of the two when it is written,
 * else at the one that is.
 */
#include <string.h>
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_service"

#define HASH_ON_HEADER_PREFIX "header:"
#define HC_PATH_MAX 1024
#define HC_INTERVAL_MS_MIN 100
#define HC_INTERVAL_MS_MAX 3600000
#define HC_INTERVAL_MS_DEFAULT 5000
#define HC_TIMEOUT_MS_MAX 60000
#define HC_TIMEOUT_MS_DEFAULT 1000
#define HC_THRESHOLD_MAX 100
#define HC_MAX_STATUSES 32
#define OUTLIER_FAILURES_MAX 1000
#define OUTLIER_BASE_MS_MAX 3600000
#define OUTLIER_BASE_MS_DEFAULT 30000
#define OUTLIER_MAX_MS_MAX 86400000
#define OUTLIER_MAX_MS_DEFAULT 300000
#define LIMIT_MAX 1000000

static const char *const policies_members[] = {"lb", "health_check", "outlier", "limits", NULL};
static const char *const lb_members[] = {"policy", "hash_on", NULL};
static const char *const lb_values[] = {"round_robin", "least_conn", "random", "consistent_hash", NULL};
static const char *const health_members[] = {
    "path", "interval_ms", "timeout_ms", "healthy_threshold", "unhealthy_threshold", "expected_statuses", NULL};
static const char *const outlier_members[] = {"consecutive_failures", "base_ejection_ms", "max_ejection_ms", "max_ejection_percent",
                                              NULL};
static const char *const limits_members[] = {"max_requests", "max_pending", NULL};

#define LB_CONSISTENT_HASH 3 /* index in lb_values */

/* ---------------------------------------------------------------- string rules */

/* lb.hash_on: "ip", "principal" or "header:" and a header name (the rate-limit key rule). */
static int valid_hash_on(const char *s, size_t len)
{
    size_t plen = sizeof(HASH_ON_HEADER_PREFIX) - 1;

    if (len > plen && memcmp(s, HASH_ON_HEADER_PREFIX, plen) == 0)
        return cph_schema_valid_header_name(s + plen, len - plen);
    return (len == 2 && memcmp(s, "ip", 2) == 0) || (len == 9 && memcmp(s, "principal", 9) == 0);
}

/*
 * A health-check path: '/' then at most 1023 more bytes of printable ASCII, none of them a space, a control byte,
 * non-ASCII or '#' (the data plane writes it as is in "GET <path> HTTP/1.1"; a query is fine).
 */
static int valid_check_path(const char *s, size_t len)
{
    if (len < 1 || len > HC_PATH_MAX || s[0] != '/')
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '#')
            return 0;
    return 1;
}

/* The value of integer member key, or def when it is absent (the member was checked before). */
static json_int_t int_or(const json_t *obj, const char *key, json_int_t def)
{
    const json_t *v = json_object_get(obj, key);

    return v != NULL ? json_integer_value(v) : def;
}

/* ---------------------------------------------------------------- members */

/* lb: the policy, then hash_on (a string with consistent_hash, null or absent otherwise). */
static int check_lb(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *lb, *hash_on;
    char at[256], p[256];
    size_t policy;

    if (cph_schema_get_member(pol, base, "lb", JSON_OBJECT, 0, &lb, err) != 0)
        return -1;
    if (lb == NULL)
        return 0;
    cph_schema_at_key(at, base, "lb");
    if (cph_schema_check_members(lb, at, lb_members, err) != 0 ||
        cph_schema_check_enum_member(lb, at, "policy", 0, lb_values, &policy, err) != 0 ||
        cph_schema_check_string_member(lb, at, "hash_on", 0, 1, valid_hash_on,
                                       "ip, principal or header:<lower-case header name, 1 to 64>", err) != 0)
        return -1;
    hash_on = json_object_get(lb, "hash_on");
    cph_schema_at_key(p, at, "hash_on");
    if (policy == LB_CONSISTENT_HASH && hash_on == NULL)
        return cph_error_set(err, "missing_field", p, "\"hash_on\" is required with the policy consistent_hash");
    if (policy == LB_CONSISTENT_HASH && json_is_null(hash_on))
        return cph_error_set(err, "invalid", p, "\"hash_on\" must be ip, principal or header:<name> with consistent_hash");
    if (policy != LB_CONSISTENT_HASH && json_is_string(hash_on))
        return cph_error_set(err, "invalid", p, "\"hash_on\" must be null or absent unless the policy is consistent_hash");
    return 0;
}

/* health_check: null or absent = no active checks; the members in table order, then timeout_ms < interval_ms. */
static int check_health(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *hc = json_object_get(pol, "health_check");
    char at[256], p[256];

    cph_schema_at_key(at, base, "health_check");
    if (hc == NULL || json_is_null(hc))
        return 0;
    if (!json_is_object(hc))
        return cph_schema_wrong_type(err, at, hc, "an object or null");
    if (cph_schema_check_members(hc, at, health_members, err) != 0 ||
        cph_schema_check_string_member(hc, at, "path", 1, 0, valid_check_path,
                                       "'/' then at most 1023 bytes of printable ASCII, no space, control byte or '#'", err) != 0 ||
        cph_schema_check_int_member(hc, at, "interval_ms", 0, HC_INTERVAL_MS_MIN, HC_INTERVAL_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(hc, at, "timeout_ms", 0, 1, HC_TIMEOUT_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(hc, at, "healthy_threshold", 0, 1, HC_THRESHOLD_MAX, err) != 0 ||
        cph_schema_check_int_member(hc, at, "unhealthy_threshold", 0, 1, HC_THRESHOLD_MAX, err) != 0 ||
        cph_schema_check_int_list(hc, at, "expected_statuses", 1, HC_MAX_STATUSES, 100, 599, err) != 0)
        return -1;
    if (int_or(hc, "timeout_ms", HC_TIMEOUT_MS_DEFAULT) >= int_or(hc, "interval_ms", HC_INTERVAL_MS_DEFAULT))
        return cph_error_set(err, "invalid",
                             cph_schema_at_key(p, at, json_object_get(hc, "timeout_ms") != NULL ? "timeout_ms" : "interval_ms"),
                             "\"timeout_ms\" (default %d) must be less than \"interval_ms\" (default %d)", HC_TIMEOUT_MS_DEFAULT,
                             HC_INTERVAL_MS_DEFAULT);
    return 0;
}

/* outlier: the members in table order, then max_ejection_ms >= base_ejection_ms. */
static int check_outlier(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *o;
    char at[256], p[256];

    if (cph_schema_get_member(pol, base, "outlier", JSON_OBJECT, 0, &o, err) != 0)
        return -1;
    if (o == NULL)
        return 0;
    cph_schema_at_key(at, base, "outlier");
    if (cph_schema_check_members(o, at, outlier_members, err) != 0 ||
        cph_schema_check_int_member(o, at, "consecutive_failures", 0, 0, OUTLIER_FAILURES_MAX, err) != 0 ||
        cph_schema_check_int_member(o, at, "base_ejection_ms", 0, 1, OUTLIER_BASE_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(o, at, "max_ejection_ms", 0, 1, OUTLIER_MAX_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(o, at, "max_ejection_percent", 0, 0, 100, err) != 0)
        return -1;
    if (int_or(o, "max_ejection_ms", OUTLIER_MAX_MS_DEFAULT) < int_or(o, "base_ejection_ms", OUTLIER_BASE_MS_DEFAULT))
        return cph_error_set(
            err, "invalid",
            cph_schema_at_key(p, at, json_object_get(o, "max_ejection_ms") != NULL ? "max_ejection_ms" : "base_ejection_ms"),
            "\"max_ejection_ms\" (default %d) must be at least \"base_ejection_ms\" (default %d)", OUTLIER_MAX_MS_DEFAULT,
            OUTLIER_BASE_MS_DEFAULT);
    return 0;
}

static int check_limits(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *lim;
    char at[256];

    if (cph_schema_get_member(pol, base, "limits", JSON_OBJECT, 0, &lim, err) != 0)
        return -1;
    if (lim == NULL)
        return 0;
    cph_schema_at_key(at, base, "limits");
    if (cph_schema_check_members(lim, at, limits_members, err) != 0 ||
        cph_schema_check_int_member(lim, at, "max_requests", 0, 1, LIMIT_MAX, err) != 0)
        return -1;
    return cph_schema_check_int_member(lim, at, "max_pending", 0, 1, LIMIT_MAX, err);
}

/* ---------------------------------------------------------------- entry points */

/* A policies object (known to be an object) at the pointer at. */
static int check_policies(const json_t *pol, const char *at, cph_error_t *err)
{
    if (cph_schema_check_members(pol, at, policies_members, err) != 0 || check_lb(pol, at, err) != 0 ||
        check_health(pol, at, err) != 0 || check_outlier(pol, at, err) != 0)
        return -1;
    return check_limits(pol, at, err);
}

int cph_schema_service_check_policies(const json_t *service, const char *base, cph_error_t *err)
{
    const json_t *pol;
    char at[256];

    if (cph_schema_get_member(service, base, "policies", JSON_OBJECT, 0, &pol, err) != 0)
        return -1;
    if (pol == NULL)
        return 0;
    return check_policies(pol, cph_schema_at_key(at, base, "policies"), err);
}

int cph_schema_validate_service_policies(const json_t *policies, const char *at_prefix, cph_error_t *err)
{
    const char *at = at_prefix != NULL ? at_prefix : "";

    if (!json_is_object(policies))
        return cph_schema_wrong_type(err, at, policies, "an object");
    return check_policies(policies, at, err);
}
