/*
 * rbac: may this principal make this admin API call? One table over every routed resource and method (read by the
 * table-driven test), and per resource a resolver that finds the systems a write touches - the stored object's and
 * the body's - so an editor can neither change nor move an object out of, or into, a system it does not hold.
 */
#ifndef CPH_RBAC_H
#define CPH_RBAC_H

#include <stddef.h>
#include <jansson.h>
#include "controlplane/admin_auth.h"
#include "controlplane/db.h"

/** What a (resource, collection|item, method) needs. */
typedef enum en_cph_rbac_rule_t {
    CPH_RBAC_NONE = 0,   /* no row: refused for everyone (a route added without a rule) */
    CPH_RBAC_ANY = 1,    /* every authenticated admin (the handler restricts further, e.g. to its own tokens) */
    CPH_RBAC_VIEW = 2,   /* viewer and up: reads, and tools that write nothing */
    CPH_RBAC_SCOPED = 3, /* owner, or an editor when every system the write touches is in its scope */
    CPH_RBAC_OWNER = 4,  /* owner only */
} cph_rbac_rule_t;

/** One row of the permission table, for the table-driven test. */
typedef struct st_cph_rbac_rule_info_t {
    const char *resource; /* as routed: "services", "admin_tokens", ... */
    int item;             /* 0: the collection (/api/v1/<resource>), 1: an item (/api/v1/<resource>/<key>) */
    int methods;          /* CPH_API_* bits the row covers */
    const char *key;      /* an item row for this key only ("vault/paths"), NULL: any key */
    cph_rbac_rule_t rule;
} cph_rbac_rule_info_t;

/** The permission table: fills *n and returns a static array (rows are tried in order, the first match wins). */
const cph_rbac_rule_info_t *cph_rbac_rules(size_t *n);

/** The rule for method (one CPH_API_* bit) on resource, with key NULL for the collection; CPH_RBAC_NONE when none. */
cph_rbac_rule_t cph_rbac_rule(const char *resource, const char *key, int method);

/**
 * Checks principal p calling method (CPH_API_*) on /api/v1/<resource>[/<key>] with body (POST/PUT, else NULL).
 * Returns 0 when allowed, or -1 with err {forbidden} (403; msg says what role or system is missing, never anything
 * the principal may not read) or {not_found}/{internal} from a lookup, or a 400 code (unknown_system, unknown_service,
 * invalid) when the body names a system or service that does not resolve. Takes the database lock itself for lookups.
 * An owner, and any rule but SCOPED, needs no lookup at all.
 */
int cph_rbac_check(cph_db_t *db, const cph_admin_principal_t *p, const char *resource, const char *key, int method,
                   const json_t *body, cph_error_t *err);

/**
 * cph_rbac_check for a caller that already holds the database lock (inside a cph_db_write callback, so the rows the
 * check reads are the rows the write changes: no owner's write can move the object in between).
 */
int cph_rbac_check_locked(cph_db_t *db, const cph_admin_principal_t *p, const char *resource, const char *key, int method,
                          const json_t *body, cph_error_t *err);

#endif
