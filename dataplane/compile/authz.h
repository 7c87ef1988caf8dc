/*
 * authz: the compiled endpoint rules of one snapshot and the one decision function (shared/DESIGN.md section 4,
 * docs/access.md section 4) that filter/authz.c runs per request and the control plane's explain API runs
 * with a trace. Built by cph_authz_compile (compile/compile.h) from body "groups" and "endpoints".
 *
 * Per service the rules are kept most specific first (exact > template > prefix, ...), enforced and shadow rules
 * apart, so the first rule that matches is the best one. The decision is pure: no allocation, no I/O, safe from any
 * thread.
 */
#ifndef CPH_COMPILE_AUTHZ_H
#define CPH_COMPILE_AUTHZ_H

#include <stdint.h>
#include "dataplane/core/principal.h"
#include "dataplane/core/snapshot.h"

typedef enum en_cph_authz_decision_t {
    CPH_AUTHZ_ALLOW = 0,
    CPH_AUTHZ_UNAUTHENTICATED, /* 401: a credential is needed */
    CPH_AUTHZ_FORBIDDEN        /* 403: the principal may not */
} cph_authz_decision_t;

typedef enum en_cph_pattern_kind_t { CPH_PATTERN_EXACT = 0, CPH_PATTERN_TEMPLATE, CPH_PATTERN_PREFIX } cph_pattern_kind_t;

/** One compiled endpoint rule (read-only; the allowed sets are private to compile/authz.c). */
typedef struct st_cph_authz_rule_t {
    int64_t id;          /* the control plane's rule id (body endpoints[].id) */
    uint32_t stat_id;    /* stable index of the rule's shadow counters (cph_stats_endpoint_id) */
    const char *method;  /* "*" or the method name */
    uint32_t method_bit; /* CPH_METHOD_* (compile/router.h); 0 = any method */
    const char *pattern; /* as configured: "/orders/{id}" */
    cph_pattern_kind_t kind;
    int is_public;
    int shadow;
    const struct st_cph_authz_rule_private_t *priv;
} cph_authz_rule_t;

/** Why a decision came out as it did: what explain shows, what the authz metrics count. */
typedef struct st_cph_authz_trace_t {
    const cph_authz_rule_t *rule;        /* the enforced rule that decided, or NULL: the route's default_access decided */
    const char *reason;                  /* static code: "public_endpoint", "no_credential", "superuser", "wrong_system",
                                            "no_requirements", "group", "role", "no_matching_role_or_group", "default_public",
                                            "default_authenticated", "default_deny" */
    h2o_iovec_t granted_by;              /* the group or role name that allowed ("group" / "role"), else empty */
    const cph_authz_rule_t *shadow_rule; /* the best shadow rule that matched, or NULL */
    cph_authz_decision_t shadow_decision;
    const char *shadow_reason;
    h2o_iovec_t shadow_granted_by;
} cph_authz_trace_t;

/**
 * Decides a request matched to route (the rules of route->service), with method bit `method` (CPH_METHOD_*), the
 * upstream path (after strip_prefix, canonical, without the query) and the principal (kind NONE when no credential).
 * Fills trace (when non-NULL) with the chain, including the shadow rule's would-be decision; shadow rules are only
 * looked at when trace is non-NULL. A NULL principal is read as kind NONE. Pure: no allocation, any thread.
 */
cph_authz_decision_t cph_authz_decide(const cph_snapshot_t *snap, const cph_route_t *route, uint32_t method, const char *path,
                                      size_t path_len, const cph_principal_t *principal, cph_authz_trace_t *trace);

/**
 * Whether rule's pattern matches path (for the tests and explain), bytes compared as they are (no decoding). Exact:
 * equal; template: "{x}" matches one non-empty segment, literal segments match exactly, and a template ending in
 * "/ *" also matches anything below its last segment; prefix "/a/ *" (without the space) matches "/a", "/a/" and
 * everything below, never "/ab"; "/ *" matches every path.
 */
int cph_authz_pattern_match(const cph_authz_rule_t *rule, const char *path, size_t path_len);

/**
 * The effective roles of a principal (own roles U roles of its groups, in its system), for explain and the identity
 * headers: calls cb once per distinct role, own roles first (in the principal's order), then the groups' roles. The
 * names point into the principal or the snapshot's arena. No allocation.
 */
void cph_authz_effective_roles(const cph_snapshot_t *snap, const cph_principal_t *principal,
                               void (*cb)(void *ud, const char *role, size_t len), void *ud);

/** The compiled rule with control-plane id `id`, or NULL (a linear scan: explain and tests, not the hot path). */
const cph_authz_rule_t *cph_authz_rule_by_id(const cph_snapshot_t *snap, int64_t id);

#endif
