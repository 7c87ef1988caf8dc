/*
 * api_health: the control plane's health summary (GET /api/v1/health), what the data planes say about their upstream
 * targets, and GET /api/v1/health/services.
 *
 * The summary is for an operator or a dashboard probe that holds the admin token: the data planes (connected or
 * remembered, the version each runs and how far behind the latest it is, when it was last heard from) and the
 * integrations (state and reason, never a secret: integrations.c's reasons are our own texts). It is "degraded" when a
 * connected data plane refused the latest snapshot or an integration's last pass failed; it is always answered 200 (the
 * unauthenticated liveness probe is GET /health). Every source is copied under its own lock and then assembled here.
 *
 * Every data plane checks its targets itself (active health checks, passive outlier detection: dataplane/core/health.c
 * and balance.c) and sends the control plane a report over the socket - `{"type": "health", "services": [...]}`, on
 * change, at most once a second and on every (re)connect. dpsession.c keeps the last report of each connected data
 * plane and drops it at disconnect; this file reads the reports and serves them.
 *
 * A report comes from another process and is read as hostile: cph_api_health_sanitize() rebuilds it from the members
 * the contract names (unknown ones are left out, so a newer data plane does not break an older control plane), with
 * every type, enum, length and count checked; anything else refuses the whole report, which the caller then drops
 * (the last good one stays). What is kept is bounded: at most CPH_HEALTH_MAX_TOTAL_TARGETS targets with short strings.
 */
#include <string.h>
#include "controlplane/api_health.h"
#include "controlplane/integrations.h"
#include "proto/log.h"

#define MODULE "cp/api/health"
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define AT_CHARS "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:.+-"
#define AT_MAX 64
#define WEIGHT_MAX 1000000
#define STATUS_MAX 999

static const char *const HEALTH_VALUES[] = {"healthy", "unhealthy", "unchecked", NULL};
static const char *const BREAKER_VALUES[] = {"closed", "open", "half_open", NULL};

/* ---------------------------------------------------------------- members */

static const char *at_key(char *buf, size_t cap, const char *base, const char *key)
{
    snprintf(buf, cap, "%s", base);
    cph_jsonptr_append(buf, cap, key);
    return buf;
}

static const char *at_index(char *buf, size_t cap, const char *base, size_t i)
{
    char num[24];

    snprintf(num, sizeof(num), "%zu", i);
    return at_key(buf, cap, base, num);
}

/* obj[key] as a string of 1..max bytes, no NUL, every byte in chars (NULL: any). NULL with err. */
static const char *get_string(const json_t *obj, const char *base, const char *key, size_t max, const char *chars, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    char p[512];

    if (s == NULL || len == 0 || len > max || strlen(s) != len || (chars != NULL && strspn(s, chars) != len)) {
        cph_error_set(err, "invalid", at_key(p, sizeof(p), base, key), "must be a string of 1 to %zu allowed bytes", max);
        return NULL;
    }
    return s;
}

/* obj[key] as an integer in [0, max] (or null when nullable: *out -1). 0, or -1 with err. */
static int get_int(const json_t *obj, const char *base, const char *key, json_int_t max, int nullable, json_int_t *out,
                   cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    char p[512];

    if (nullable && json_is_null(v)) {
        *out = -1;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return cph_error_set(err, "invalid", at_key(p, sizeof(p), base, key), "must be an integer 0..%lld%s", (long long)max,
                             nullable ? " or null" : "");
    *out = json_integer_value(v);
    return 0;
}

/* obj[key] as one of values. NULL with err. */
static const char *get_enum(const json_t *obj, const char *base, const char *key, const char *const *values, cph_error_t *err)
{
    const char *s = json_string_value(json_object_get(obj, key));
    char p[512];

    for (size_t i = 0; s != NULL && values[i] != NULL; ++i)
        if (strcmp(s, values[i]) == 0 && json_string_length(json_object_get(obj, key)) == strlen(values[i]))
            return values[i];
    cph_error_set(err, "invalid", at_key(p, sizeof(p), base, key), "must be one of the documented values");
    return NULL;
}

/* JSON null, or the first CPH_HEALTH_ERROR_MAX bytes of a string cut on a UTF-8 boundary (and at a NUL). */
static json_t *short_error(const json_t *v, const char *base, cph_error_t *err)
{
    char buf[CPH_HEALTH_ERROR_MAX + 1], p[512];
    const char *s = json_string_value(v);
    size_t len;

    if (json_is_null(v))
        return json_null();
    if (s == NULL) {
        cph_error_set(err, "invalid", at_key(p, sizeof(p), base, "error"), "must be a string or null");
        return NULL;
    }
    len = strlen(s) < CPH_HEALTH_ERROR_MAX ? strlen(s) : CPH_HEALTH_ERROR_MAX;
    while (len > 0 && len < strlen(s) && ((unsigned char)s[len] & 0xC0) == 0x80)
        --len;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return json_string(buf);
}

/* ---------------------------------------------------------------- report */

static json_t *nullable_int(json_int_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

/* A target's last_check: absent or null -> null. A new reference, or NULL with err. */
static json_t *sanitize_check(const json_t *c, const char *base, cph_error_t *err)
{
    json_int_t status, duration;
    const char *at;
    json_t *error, *out;
    char p[512];

    if (c == NULL || json_is_null(c))
        return json_null();
    if (!json_is_object(c)) {
        cph_error_set(err, "invalid", base, "must be an object or null");
        return NULL;
    }
    if ((at = get_string(c, base, "at", AT_MAX, AT_CHARS, err)) == NULL ||
        get_int(c, base, "status", STATUS_MAX, 1, &status, err) != 0 ||
        get_int(c, base, "duration_ms", INT64_MAX, 1, &duration, err) != 0)
        return NULL;
    if (json_object_get(c, "error") == NULL) {
        cph_error_set(err, "invalid", at_key(p, sizeof(p), base, "error"), "is required");
        return NULL;
    }
    if ((error = short_error(json_object_get(c, "error"), base, err)) == NULL)
        return NULL;
    if ((out = json_pack("{s:s, s:o, s:o, s:o}", "at", at, "status", nullable_int(status), "error", error, "duration_ms",
                         nullable_int(duration))) == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

static json_t *sanitize_target(const json_t *t, const char *base, cph_error_t *err)
{
    json_int_t weight, active, ejections;
    const char *url, *health, *breaker;
    json_t *check, *out;
    char p[512];

    if (!json_is_object(t)) {
        cph_error_set(err, "invalid", base, "must be an object");
        return NULL;
    }
    if ((url = get_string(t, base, "url", CPH_HEALTH_URL_MAX, NULL, err)) == NULL ||
        get_int(t, base, "weight", WEIGHT_MAX, 0, &weight, err) != 0 ||
        (health = get_enum(t, base, "health", HEALTH_VALUES, err)) == NULL ||
        (breaker = get_enum(t, base, "breaker", BREAKER_VALUES, err)) == NULL ||
        get_int(t, base, "active", INT64_MAX, 0, &active, err) != 0 ||
        get_int(t, base, "ejections", INT64_MAX, 0, &ejections, err) != 0)
        return NULL;
    for (const char *c = url; *c != '\0'; ++c)
        if (*c <= 0x20 || *c >= 0x7f) {
            cph_error_set(err, "invalid", at_key(p, sizeof(p), base, "url"), "must be printable ASCII");
            return NULL;
        }
    if ((check = sanitize_check(json_object_get(t, "last_check"), at_key(p, sizeof(p), base, "last_check"), err)) == NULL)
        return NULL;
    if ((out = json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:o}", "url", url, "weight", weight, "health", health, "breaker", breaker,
                         "active", active, "ejections", ejections, "last_check", check)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

static json_t *sanitize_service(const json_t *svc, const char *base, size_t *total, cph_error_t *err)
{
    const json_t *targets = json_object_get(svc, "targets"), *hc = json_object_get(svc, "health_check");
    const char *name;
    json_t *list, *t, *out;
    char p[512], pt[512];
    size_t i;

    if (!json_is_object(svc)) {
        cph_error_set(err, "invalid", base, "must be an object");
        return NULL;
    }
    if ((name = get_string(svc, base, "name", 64, NAME_CHARS, err)) == NULL)
        return NULL;
    if (!json_is_boolean(hc)) {
        cph_error_set(err, "invalid", at_key(p, sizeof(p), base, "health_check"), "must be a boolean");
        return NULL;
    }
    at_key(pt, sizeof(pt), base, "targets");
    if (!json_is_array(targets) || json_array_size(targets) > CPH_HEALTH_MAX_TARGETS ||
        (*total += json_array_size(targets)) > CPH_HEALTH_MAX_TOTAL_TARGETS) {
        cph_error_set(err, "invalid", pt, "must be an array of at most %d targets (%d in the whole report)", CPH_HEALTH_MAX_TARGETS,
                      CPH_HEALTH_MAX_TOTAL_TARGETS);
        return NULL;
    }
    if ((list = json_array()) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != json_array_size(targets); ++i) {
        if ((t = sanitize_target(json_array_get(targets, i), at_index(p, sizeof(p), pt, i), err)) == NULL) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, t);
    }
    if ((out = json_pack("{s:s, s:b, s:o}", "name", name, "health_check", json_is_true(hc), "targets", list)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

json_t *cph_api_health_sanitize(const json_t *services, cph_error_t *err)
{
    json_t *out, *svc;
    size_t i, total = 0;
    char p[64];

    if (!json_is_array(services) || json_array_size(services) > CPH_HEALTH_MAX_SERVICES) {
        cph_error_set(err, "invalid", "/services", "must be an array of at most %d services", CPH_HEALTH_MAX_SERVICES);
        return NULL;
    }
    if ((out = json_array()) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != json_array_size(services); ++i) {
        if ((svc = sanitize_service(json_array_get(services, i), at_index(p, sizeof(p), "/services", i), &total, err)) == NULL) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, svc);
    }
    return out;
}

/* ---------------------------------------------------------------- the resource */

/* Keeps, in every data plane's entry of list (ours), only the services called name. */
static void filter_service(json_t *list, const char *name)
{
    json_t *dp, *services, *kept, *svc;
    size_t i, j;

    json_array_foreach(list, i, dp)
    {
        services = json_object_get(dp, "services");
        if ((kept = json_array()) == NULL)
            cph_fatal(MODULE, "out of memory");
        json_array_foreach(services, j, svc)
        {
            if (strcmp(json_string_value(json_object_get(svc, "name")), name) == 0)
                json_array_append(kept, svc);
        }
        json_object_set_new(dp, "services", kept);
    }
}

/* The integrations' part of the summary; a degraded one adds a problem. */
static json_t *summary_integrations(json_t *problems)
{
    json_t *all = cph_integrations_json(), *out = json_object(), *one, *v;
    const char *name;
    char line[512];

    if (all == NULL || out == NULL)
        cph_fatal(MODULE, "out of memory");
    json_object_foreach(all, name, one)
    {
        v = json_pack("{s:O, s:O, s:O, s:O}", "state", json_object_get(one, "state"), "reason", json_object_get(one, "reason"),
                      "since", json_object_get(one, "since"), "last_success", json_object_get(one, "last_success"));
        if (v == NULL)
            cph_fatal(MODULE, "out of memory");
        if (strcmp(json_string_value(json_object_get(one, "state")), "degraded") == 0) {
            snprintf(line, sizeof(line), "integration %s is degraded: %s", name,
                     json_is_string(json_object_get(one, "reason")) ? json_string_value(json_object_get(one, "reason")) : "");
            json_array_append_new(problems, json_string(line));
        }
        json_object_set_new(out, name, v);
    }
    json_decref(all);
    return out;
}

/* The data planes' part of the summary; a connected data plane that nacked adds a problem. */
static json_t *summary_dataplanes(cph_dpserver_t *dps, json_t *problems)
{
    json_t *sum = dps != NULL ? cph_dpserver_summary(dps)
                              : json_pack("{s:i, s:i, s:[]}", "latest_version", 0, "connected", 0, "dataplanes"),
           *dp;
    json_int_t max_lag = 0, lag;
    char line[300];
    size_t i;

    if (sum == NULL)
        cph_fatal(MODULE, "out of memory");
    json_array_foreach(json_object_get(sum, "dataplanes"), i, dp)
    {
        if (!json_is_true(json_object_get(dp, "connected")))
            continue;
        if ((lag = json_integer_value(json_object_get(dp, "lag"))) > max_lag)
            max_lag = lag;
        if (strcmp(json_string_value(json_object_get(dp, "status")), "nacked") == 0) {
            snprintf(line, sizeof(line), "data plane %s refused version %lld", json_string_value(json_object_get(dp, "id")),
                     (long long)json_integer_value(json_object_get(sum, "latest_version")));
            json_array_append_new(problems, json_string(line));
        }
    }
    json_object_set_new(sum, "max_lag", json_integer(max_lag));
    json_object_set(sum, "items", json_object_get(sum, "dataplanes"));
    json_object_del(sum, "dataplanes");
    return sum;
}

json_t *cph_api_health_summary(cph_db_t *db, cph_dpserver_t *dps)
{
    json_t *problems = json_array(), *snap = db != NULL ? cph_db_current_snapshot(db, 0) : NULL, *dataplanes, *integrations, *out;
    json_int_t version = snap != NULL ? json_integer_value(json_object_get(snap, "version")) : 0;

    if (problems == NULL)
        cph_fatal(MODULE, "out of memory");
    json_decref(snap);
    dataplanes = summary_dataplanes(dps, problems);
    integrations = summary_integrations(problems);
    out = json_pack("{s:s, s:o, s:I, s:o, s:o}", "status", json_array_size(problems) == 0 ? "ok" : "degraded", "problems", problems,
                    "version", version, "dataplanes", dataplanes, "integrations", integrations);
    if (out == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

void cph_api_health(cph_api_req_t *req)
{
    const char *service;
    json_t *list;

    if (req->key == NULL) {
        cph_api_reply(req, 200, cph_api_health_summary(req->db, req->dps));
        return;
    }
    if (strcmp(req->key, "services") != 0) {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    list = req->dps != NULL ? cph_dpserver_health(req->dps) : json_array();
    if (list == NULL)
        cph_fatal(MODULE, "out of memory");
    if ((service = cph_api_query(req, "service")) != NULL)
        filter_service(list, service);
    cph_api_reply(req, 200, json_pack("{s:o}", "dataplanes", list));
}
