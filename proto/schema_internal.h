/*
 * schema_internal: the generic checks of the snapshot schema, shared by proto/schema.c (services, routes, keys),
 * proto/schema_access.c (auth, groups, endpoints, api_keys, revoked), proto/schema_policy.c (route policies,
 * endpoint rate_limits, gateway), proto/schema_service.c (a service's policies) and proto/schema_upstream.c (a
 * route's timeouts, retries and websocket policies). Not part of proto's public API: only these files include it.
 *
 * Conventions of every check: `base` is the JSON pointer of the object holding the member, errors are reported at
 * base + "/" + key (pointer buffers are 256 bytes, like cph_error_t.path), and a check returns 0, or -1 with err
 * filled. "Optional and absent" is never an error.
 */
#ifndef CPH_PROTO_SCHEMA_INTERNAL_H
#define CPH_PROTO_SCHEMA_INTERNAL_H

#include "proto/proto.h"

#define CPH_SCHEMA_NAME_MAX 64 /* names and system codes */

/** "GET" ... "TRACE", NULL: the methods a route or an endpoint rule may name. */
extern const char *const cph_schema_methods[];

/** Writes base + "/" + escaped key into buf (256 bytes) and returns buf. */
const char *cph_schema_at_key(char *buf, const char *base, const char *key);
/** Writes base + "/" + index into buf (256 bytes) and returns buf. */
const char *cph_schema_at_index(char *buf, const char *base, size_t index);
/** Sets err {"invalid", path, "must be <want>, not <type of v>"} (a real number gets its own message); returns -1. */
int cph_schema_wrong_type(cph_error_t *err, const char *path, const json_t *v, const char *want);
/** Rejects ("unknown_field" at the member) the first member of obj whose name is not in allowed (NULL-terminated). */
int cph_schema_check_members(const json_t *obj, const char *base, const char *const *allowed, cph_error_t *err);
/**
 * Fetches member key of JSON type `type` (JSON_TRUE stands for any boolean) into *out; *out is NULL and 0 is returned
 * when it is absent and not required. Absent and required is "missing_field"; another type is "invalid".
 */
int cph_schema_get_member(const json_t *obj, const char *base, const char *key, json_type type, int required, const json_t **out,
                          cph_error_t *err);
/** An integer member (never a real) within [lo, hi]. */
int cph_schema_check_int_member(const json_t *obj, const char *base, const char *key, int required, json_int_t lo, json_int_t hi,
                                cph_error_t *err);
/** An array member of min to max elements into *out (NULL when optional and absent). */
int cph_schema_get_array(const json_t *obj, const char *base, const char *key, int required, size_t min, size_t max,
                         const json_t **out, cph_error_t *err);
/** A string member equal to one of allowed (NULL-terminated); *index gets which one, SIZE_MAX when absent. */
int cph_schema_check_enum_member(const json_t *obj, const char *base, const char *key, int required, const char *const *allowed,
                                 size_t *index, cph_error_t *err);
/**
 * A string member for which rule(s, len) holds (rule_text says what it must be, for the message), or null when
 * nullable. A NUL byte inside the string is for the rule to refuse.
 */
int cph_schema_check_string_member(const json_t *obj, const char *base, const char *key, int required, int nullable,
                                   int (*rule)(const char *s, size_t len), const char *rule_text, cph_error_t *err);
/**
 * An optional array member of min to max integers, each within [lo, hi] and different from every earlier one
 * ("duplicate" at the later element); lists are small (the caller's max bounds the quadratic scan).
 */
int cph_schema_check_int_list(const json_t *obj, const char *base, const char *key, size_t min, size_t max, json_int_t lo,
                              json_int_t hi, cph_error_t *err);
/** A required member holding a name (see cph_schema_valid_name). */
int cph_schema_check_name_member(const json_t *obj, const char *base, const char *key, cph_error_t *err);

/** A name: 1-64 bytes of [A-Za-z0-9._-]. */
int cph_schema_valid_name(const char *s, size_t len);
/** A system code: 1-64 bytes of [a-z0-9_-]. */
int cph_schema_valid_code(const char *s, size_t len);
/** A target URL: http://HOST:PORT or http://HOST:PORT/ (PROTOCOL.md section 5), at most 255 bytes. */
int cph_schema_valid_target_url(const char *s, size_t len);

/** A header name: 1-64 bytes of RFC 9110 token characters in lower case (CORS lists, "header:<name>" keys). */
int cph_schema_valid_header_name(const char *s, size_t len);

/** The top-level access members' types and caps (auth, groups, endpoints, api_keys, revoked), in that order. */
int cph_schema_access_check_top(const json_t *body, cph_error_t *err);
/**
 * Every element of the access members, in the same order; services is the set (an object) of the body's service
 * names, which every endpoint's service must be one of. Runs after cph_schema_access_check_top() succeeded.
 */
int cph_schema_access_check(const json_t *body, const json_t *services, cph_error_t *err);

/**
 * The optional "rate_limits" member of obj (a route's policies, an endpoint rule): 0-8 limits, each checked in table
 * order (PROTOCOL.md section 5, "rate limit"), names unique within the list ("duplicate" at the later "name").
 */
int cph_schema_policy_check_rate_limits(const json_t *obj, const char *base, cph_error_t *err);
/**
 * An array member of origins (PROTOCOL.md section 5, "origin"), min to 64 of them, unique ("duplicate" at the later
 * element), or the single value "*" ("*" among other origins is "invalid" at the "*"); shared by CORS and websocket.
 */
int cph_schema_policy_check_origins(const json_t *obj, const char *base, const char *key, int required, size_t min,
                                    cph_error_t *err);
/** The optional "policies" member of the route at base (run after the route's other members). */
int cph_schema_policy_check_route(const json_t *route, const char *base, cph_error_t *err);
/** The type of the optional top-level "gateway" (an object), checked after the access members' types and caps. */
int cph_schema_policy_check_gateway_top(const json_t *body, cph_error_t *err);
/** The content of "gateway", checked last of the body (after "revoked"); runs after cph_schema_policy_check_gateway_top(). */
int cph_schema_policy_check_gateway(const json_t *body, cph_error_t *err);

/**
 * The upstream members of a route's policies object pol (at base): "timeouts", "retries", "websocket", in that order
 * (proto/schema_upstream.c; run after the other policies members).
 */
int cph_schema_upstream_check_route(const json_t *pol, const char *base, cph_error_t *err);
/** The optional "policies" member of the service at base (proto/schema_service.c; run after its other members). */
int cph_schema_service_check_policies(const json_t *service, const char *base, cph_error_t *err);

/**
 * The optional "credentials" member of the service at base (proto/schema_credentials.c; PROTOCOL.md section 5,
 * "service credentials"; run after its policies).
 */
int cph_schema_service_check_credentials(const json_t *service, const char *base, cph_error_t *err);

/**
 * The route kind members of the route at base (proto/schema_kind.c; PROTOCOL.md section 5, "route kinds"): "kind"
 * ("proxy" default, "pdf", "aggregate"), and the one configuration object its kind requires ("pdf" or "aggregate";
 * the other kinds' objects are refused). Run after the route's policies.
 */
int cph_schema_route_check_kind(const json_t *route, const char *base, cph_error_t *err);
/** A "pdf" route configuration object at base (proto/schema_pdf.c). */
int cph_schema_pdf_check(const json_t *pdf, const char *base, cph_error_t *err);
/** An "aggregate" route configuration object at base (proto/schema_aggregate.c); service names are checked later. */
int cph_schema_aggregate_check(const json_t *aggregate, const char *base, cph_error_t *err);
/**
 * Every aggregate route's backends name a service of the body (services: the set of names), else "unknown_service" at
 * /routes/N/aggregate/backends/M/service. Runs after every route was checked.
 */
int cph_schema_aggregate_check_services(const json_t *routes, const json_t *services, cph_error_t *err);

#endif
