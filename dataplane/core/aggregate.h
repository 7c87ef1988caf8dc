/*
 * aggregate: the compiled configuration of a route of kind "aggregate" (PROTOCOL.md section 5, "aggregate route") and
 * the pieces of its request that need no I/O: the client path's pattern, the backends' path templates with their
 * percent-encoded substitution, and the merge of the backends' JSON answers. filter/aggregate.c runs the backend
 * calls; compile/aggregate.c builds this from the snapshot body. No jansson in this header: filter/ includes it.
 */
#ifndef CPH_CORE_AGGREGATE_H
#define CPH_CORE_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>
#include "dataplane/core/arena.h"
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/snapshot.h"

#define CPH_AGGREGATE_MAX_BACKENDS 16
#define CPH_AGGREGATE_MAX_PARAMS 16                /* "{name}" segments of a pattern (CPH_ENDPOINT_PATTERN_PARAMS_MAX) */
#define CPH_AGGREGATE_BODY_MAX (1024 * 1024)       /* one backend's answer; more is a failure "too_large" */
#define CPH_AGGREGATE_MERGED_MAX (8 * 1024 * 1024) /* the merged answer; more is 502 aggregate_too_large */

/** The client path pattern: endpoint pattern rules ("/a/{id}", a final "*" segment matching anything below). */
typedef struct st_cph_aggregate_pattern_t {
    h2o_iovec_t *segs; /* literal segment text, or the parameter's name without braces */
    uint8_t *is_param; /* per segment */
    size_t num_segs;
    int tail;                                     /* ends in a "*" segment */
    h2o_iovec_t params[CPH_AGGREGATE_MAX_PARAMS]; /* names, in pattern order */
    size_t num_params;
} cph_aggregate_pattern_t;

typedef enum en_cph_aggregate_part_kind_t {
    CPH_AGGREGATE_LITERAL = 0, /* text as configured */
    CPH_AGGREGATE_PARAM,       /* a pattern parameter: param is its index */
    CPH_AGGREGATE_QUERY        /* "{query.<name>}": text is the name */
} cph_aggregate_part_kind_t;

typedef struct st_cph_aggregate_part_t {
    cph_aggregate_part_kind_t kind;
    h2o_iovec_t text;
    size_t param;
    int in_query; /* after the template's '?': dots need no protection there */
} cph_aggregate_part_t;

/** A backend path template: "/users/{user_id}?limit={query.limit}". */
typedef struct st_cph_aggregate_template_t {
    cph_aggregate_part_t *parts;
    size_t num_parts;
} cph_aggregate_template_t;

typedef struct st_cph_aggregate_backend_t {
    const char *name;
    const char *key; /* where its object goes; NULL = its members are merged into the top level */
    int required;
    int post; /* method POST (the client's body is forwarded), else GET */
    cph_aggregate_template_t path;
    /* The aggregate route as a proxy route of this backend's service: the service, its timeouts (first_byte and idle
     * default to the service's timeout_ms unless the route's policies.timeouts set them), the route's connect timeout
     * and retries. What the balancer, the breaker and the head builder read (filter/proxy_balance.h, proxy_head.h). */
    cph_route_t route;
} cph_aggregate_backend_t;

typedef struct st_cph_aggregate_route_t {
    uint64_t deadline_ms;
    int on_deadline_error; /* "error": any backend still running at the deadline -> 504; else "partial" */
    cph_aggregate_pattern_t pattern;
    cph_aggregate_backend_t *backends;
    size_t num_backends;
} cph_aggregate_route_t;

/**
 * Parses a pattern (already valid per cph_endpoint_pattern_check) into out, from arena a. Returns 0, -1 on a pattern
 * it cannot read (a compile error, not a crash).
 */
int cph_aggregate_pattern_parse(cph_arena_t *a, const char *pattern, cph_aggregate_pattern_t *out);

/**
 * Matches a canonical request path (no query) against p. On a match returns 1 and sets values[i] (room for
 * p->num_params) to the raw segment of parameter i, pointing into path; else 0. A parameter matches one non-empty
 * segment; a "*" tail matches the rest (nothing or "/..."), as endpoint rules do.
 */
int cph_aggregate_pattern_match(const cph_aggregate_pattern_t *p, const char *path, size_t len, h2o_iovec_t *values);

/**
 * Parses a backend path template against pattern p into out, from arena a: literals, "{name}" (a parameter of p) and
 * "{query.<name>}". Returns 0, -1 (an unknown parameter, a stray brace, not starting with '/').
 */
int cph_aggregate_template_parse(cph_arena_t *a, const char *tmpl, const cph_aggregate_pattern_t *p, cph_aggregate_template_t *out);

/**
 * The value of query parameter name in query (raw, with or without its leading '?'): the first "name=value" pair
 * whose raw name equals name; value percent-decoded and '+' read as a space, in pool. Absent: empty.
 */
h2o_iovec_t cph_aggregate_query_value(h2o_mem_pool_t *pool, h2o_iovec_t query, h2o_iovec_t name);

/**
 * The backend path of t (in pool): literals as they are, each parameter value percent-decoded once (a canonical path
 * segment keeps its escapes) then percent-encoded with only RFC 3986 unreserved bytes kept raw, so no value adds a
 * '/', '?', '#', '&', '=', a space or a line break; in the path part a value made only of dots has them encoded too
 * (never a "." or ".." segment). params: the pattern's raw values (cph_aggregate_pattern_match); query: the client's
 * raw query ('?' included or empty). A missing query parameter substitutes "".
 */
h2o_iovec_t cph_aggregate_substitute(h2o_mem_pool_t *pool, const cph_aggregate_template_t *t, const h2o_iovec_t *params,
                                     h2o_iovec_t query);

/* ---------------------------------------------------------------- merge */

/** The answers of one aggregate request, backend by backend (jansson inside; freed by cph_aggregate_merge_free). */
typedef struct st_cph_aggregate_merge_t cph_aggregate_merge_t;

/** An empty merge for the backends of cfg (which must outlive it). Out of memory aborts. */
cph_aggregate_merge_t *cph_aggregate_merge_new(const cph_aggregate_route_t *cfg);
/** Frees m and every body it holds; NULL is fine. */
void cph_aggregate_merge_free(cph_aggregate_merge_t *m);
/** Records backend i's 2xx body: 0 when it is a JSON object, -1 (nothing recorded) otherwise. */
int cph_aggregate_merge_set(cph_aggregate_merge_t *m, size_t i, const char *body, size_t len);
/** Records backend i as failed: status its HTTP status (0 = none, null in the body), kind a constant ("timeout"...). */
void cph_aggregate_merge_fail(cph_aggregate_merge_t *m, size_t i, int status, const char *kind);

/**
 * The merged answer, in backend order: a backend with a key puts its object under it, one without merges its members
 * into the top level; on a clash the later backend wins. Failed optional backends appear as
 * "_errors": {"<name>": {"status": <int or null>, "error": "<kind>"}} (set last: it replaces a backend's "_errors").
 * A backend neither set nor failed is left out. Returns a malloc'd compact JSON text (*len bytes), or NULL when it
 * would be longer than max.
 */
char *cph_aggregate_merge_build(const cph_aggregate_merge_t *m, size_t max, size_t *len);

/**
 * The 502 / 504 body naming a backend, in pool: {"error":code,"message":message,"backend":backend,"status":<int or
 * null>,"reason":reason[,"request_id":...]}. status 0 = null; reason may be NULL (left out).
 */
h2o_iovec_t cph_aggregate_error_body(h2o_mem_pool_t *pool, const char *code, const char *message, const char *backend, int status,
                                     const char *reason, h2o_iovec_t request_id);

#endif
