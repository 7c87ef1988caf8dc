/*
 * schema_upstream: the members of a route's "policies" that shape its exchange with the upstream (PROTOCOL.md section
 * 5, "timeouts", "retries", "websocket"): how long each phase may take, which failures are retried and how much retry
 * traffic a service may take, and whether an HTTP/1.1 websocket upgrade is tunnelled. proto/schema_policy.c calls in
 * here for a route's policies, after its other members ("cache" last of those).
 *
 * Every member is optional (an older body still validates; the defaults are the data plane's and PROTOCOL.md's),
 * and as strict as the rest of the schema: unknown members refused, integers range-checked and never reals, lists
 * capped before their elements are read, repeated values refused ("duplicate" at the later one). A websocket origin
 * has the CORS origin's one spelling, since the data plane compares the Origin header with it byte-wise.
 */
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_upstream"

#define TIMEOUT_MS_MAX 3600000 /* connect, first byte, idle */
#define TOTAL_MS_MAX 86400000  /* the whole exchange */
#define RETRY_MAX 5            /* attempts after the first */
#define RETRY_STATUSES_MAX 8   /* retryable upstream statuses */
#define RETRY_MIN_CONCURRENT_MAX 1000
#define WS_IDLE_MS_MAX 86400000      /* one day */
#define WS_LIFETIME_MS_MAX 604800000 /* one week */
#define WS_PER_CLIENT_MAX 100000
#define WS_FRAME_MIN 125 /* the largest control frame */
#define WS_FRAME_MAX 67108864

static const char *const timeouts_members[] = {"connect_ms", "first_byte_ms", "idle_ms", "total_ms", NULL};
static const char *const retries_members[] = {"max", "statuses", "budget_percent", "min_concurrent", NULL};
static const char *const websocket_members[] = {
    "idle_timeout_ms", "max_lifetime_ms", "max_per_client", "origins", "max_frame_bytes", "close_on_token_expiry", NULL};

/* Fetches the optional object member key of pol into *obj and its pointer into at; *obj NULL when absent. */
static int get_object(const json_t *pol, const char *base, const char *key, const json_t **obj, char at[256], cph_error_t *err)
{
    if (cph_schema_get_member(pol, base, key, JSON_OBJECT, 0, obj, err) != 0)
        return -1;
    cph_schema_at_key(at, base, key);
    return 0;
}

static int check_timeouts(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *t;
    char at[256];

    if (get_object(pol, base, "timeouts", &t, at, err) != 0)
        return -1;
    if (t == NULL)
        return 0;
    if (cph_schema_check_members(t, at, timeouts_members, err) != 0 ||
        cph_schema_check_int_member(t, at, "connect_ms", 0, 1, TIMEOUT_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(t, at, "first_byte_ms", 0, 1, TIMEOUT_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(t, at, "idle_ms", 0, 1, TIMEOUT_MS_MAX, err) != 0)
        return -1;
    return cph_schema_check_int_member(t, at, "total_ms", 0, 0, TOTAL_MS_MAX, err);
}

static int check_retries(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *r;
    char at[256];

    if (get_object(pol, base, "retries", &r, at, err) != 0)
        return -1;
    if (r == NULL)
        return 0;
    if (cph_schema_check_members(r, at, retries_members, err) != 0 ||
        cph_schema_check_int_member(r, at, "max", 0, 0, RETRY_MAX, err) != 0 ||
        cph_schema_check_int_list(r, at, "statuses", 0, RETRY_STATUSES_MAX, 500, 599, err) != 0 ||
        cph_schema_check_int_member(r, at, "budget_percent", 0, 0, 100, err) != 0)
        return -1;
    return cph_schema_check_int_member(r, at, "min_concurrent", 0, 0, RETRY_MIN_CONCURRENT_MAX, err);
}

static int check_websocket(const json_t *pol, const char *base, cph_error_t *err)
{
    const json_t *ws, *close;
    char at[256];

    if (get_object(pol, base, "websocket", &ws, at, err) != 0)
        return -1;
    if (ws == NULL)
        return 0;
    if (cph_schema_check_members(ws, at, websocket_members, err) != 0 ||
        cph_schema_check_int_member(ws, at, "idle_timeout_ms", 0, 1, WS_IDLE_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(ws, at, "max_lifetime_ms", 0, 0, WS_LIFETIME_MS_MAX, err) != 0 ||
        cph_schema_check_int_member(ws, at, "max_per_client", 0, 0, WS_PER_CLIENT_MAX, err) != 0 ||
        cph_schema_policy_check_origins(ws, at, "origins", 0, 0, err) != 0 ||
        cph_schema_check_int_member(ws, at, "max_frame_bytes", 0, WS_FRAME_MIN, WS_FRAME_MAX, err) != 0)
        return -1;
    return cph_schema_get_member(ws, at, "close_on_token_expiry", JSON_TRUE, 0, &close, err);
}

int cph_schema_upstream_check_route(const json_t *pol, const char *base, cph_error_t *err)
{
    if (check_timeouts(pol, base, err) != 0 || check_retries(pol, base, err) != 0)
        return -1;
    return check_websocket(pol, base, err);
}
