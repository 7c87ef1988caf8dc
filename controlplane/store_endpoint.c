/*
 * store_endpoint: the endpoint rules and their role and group links.
 *
 * A rule says who may call a method (or "*") on a path pattern of a service (DESIGN.md §4): public, or holders of
 * the listed roles or groups. The data plane will compile these into its rule table and pick the most specific
 * pattern (exact > template > prefix, longer > shorter), so a pattern must mean exactly one thing: it is checked
 * strictly here, and its literal parts must already be in the canonical form the data plane matches requests in
 * (cph_path_canonicalize), so that "/a/../admin" or "/a%2fb" can never be written as a rule that looks like it
 * protects something it does not.
 *
 * Roles and groups are always {"system", "name"} (a service's system is optional, and a superuser's rule may name
 * another system's roles). A rule belongs to its service (ON DELETE CASCADE); the roles and groups it lists stay while
 * it lists them (RESTRICT).
 *
 * A shadow rule (migrations/0004_access.sql) is evaluated and counted by the data planes but never enforced: a new or
 * stricter rule can be watched on real traffic (GET /api/v1/authz/shadow) before it is switched on.
 *
 * rate_limits (migrations/0006_policies.sql) is a rule's own list of rate limits, which replaces its route's for the
 * requests the rule matched: null (absent; SQL NULL) inherits the route's, [] means none. Its items follow the same
 * schema as a route's policies.rate_limits, and are checked with that very code (get_rate_limits), so that an error
 * points into the rule as sent (/rate_limits/0/rate) rather than into the snapshot body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/store_endpoint.h"
#include "controlplane/store_service.h"
#include "controlplane/ident.h"
#include "proto/log.h"

#define MODULE "cp/store_endpoint"

#define SELECT_ENDPOINT                                                                                                            \
    "SELECT e.id, s.name, e.method, e.path, e.public, "                                                                            \
    "(SELECT json_group_array(json_object('system', c, 'name', n)) FROM (SELECT y.code AS c, r.name AS n FROM endpoint_roles er "  \
    "JOIN roles r ON r.id = er.role_id JOIN systems y ON y.id = r.system_id WHERE er.endpoint_id = e.id ORDER BY y.code, "         \
    "r.name)), "                                                                                                                   \
    "(SELECT json_group_array(json_object('system', c, 'name', n)) FROM (SELECT y.code AS c, g.name AS n FROM endpoint_groups eg " \
    "JOIN groups g ON g.id = eg.group_id JOIN systems y ON y.id = g.system_id WHERE eg.endpoint_id = e.id ORDER BY y.code, "       \
    "g.name)), "                                                                                                                   \
    "e.created_at, e.updated_at, e.shadow, e.rate_limits FROM endpoints e JOIN services s ON s.id = e.service_id "

const cph_store_ops_t cph_store_endpoint_ops = {
    "endpoint",
    cph_store_endpoint_normalize,
    cph_store_endpoint_list,
    cph_store_endpoint_get,
    cph_store_endpoint_insert,
    cph_store_endpoint_update,
    cph_store_endpoint_delete,
};

static const char *const METHODS[] = {"*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", NULL};

static int get_method(const json_t *in, const char **out, cph_error_t *err)
{
    json_t *v = json_object_get(in, "method");

    *out = "*";
    if (v == NULL)
        return 0;
    for (size_t i = 0; json_is_string(v) && METHODS[i] != NULL; ++i)
        if (strcmp(json_string_value(v), METHODS[i]) == 0 && json_string_length(v) == strlen(METHODS[i])) {
            *out = METHODS[i];
            return 0;
        }
    return cph_error_set(err, "invalid", "/method", "must be \"*\" or one of GET HEAD POST PUT PATCH DELETE OPTIONS CONNECT TRACE");
}

/*
 * rate_limits: absent or null -> null (inherit the route's); an array is checked as the rate_limits of a route's
 * policies by cph_schema_validate_route on a stand-in route, its error path moved from /policies/rate_limits to
 * /rate_limits. *out gets a new reference.
 */
static int get_rate_limits(const json_t *in, json_t **out, cph_error_t *err)
{
    static const char INNER[] = "/policies/rate_limits", DROP[] = "/policies";
    json_t *v = json_object_get(in, "rate_limits"), *route;
    int ret;

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        *out = json_null();
        return 0;
    }
    if (!json_is_array(v))
        return cph_error_set(err, "invalid", "/rate_limits", "must be an array of rate limits or null");
    route = json_pack("{s:s, s:s, s:[s], s:{s:O}}", "name", "endpoint", "service", "endpoint", "paths", "/", "policies",
                      "rate_limits", v);
    if (route == NULL)
        cph_fatal(MODULE, "out of memory");
    if ((ret = cph_schema_validate_route(route, err)) != 0 && strncmp(err->path, INNER, sizeof(INNER) - 1) == 0)
        memmove(err->path, err->path + sizeof(DROP) - 1, strlen(err->path + sizeof(DROP) - 1) + 1);
    json_decref(route);
    if (ret == 0)
        *out = json_incref(v);
    return ret;
}

json_t *cph_store_endpoint_normalize(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"service", "method", "path", "public", "shadow", "roles", "groups", "rate_limits", NULL};
    json_t *copy, *out = NULL, *roles = NULL, *groups = NULL, *limits = NULL, *path;
    const char *service, *method;
    int public, shadow;

    if ((copy = cph_store_writable_copy(in, "endpoint", err)) == NULL)
        return NULL;
    path = json_object_get(copy, "path");
    if (cph_ident_check_members(copy, ALLOWED, err) != 0 ||
        cph_ident_get_string(copy, "service", CPH_IDENT_NAME, 1, &service, err) != 0 || get_method(copy, &method, err) != 0 ||
        cph_ident_get_bool(copy, "public", 0, &public, err) != 0 || cph_ident_get_bool(copy, "shadow", 0, &shadow, err) != 0 ||
        cph_ident_get_refs(copy, "roles", &roles, err) != 0 || cph_ident_get_refs(copy, "groups", &groups, err) != 0 ||
        get_rate_limits(copy, &limits, err) != 0)
        goto Exit;
    if (path == NULL) {
        cph_error_set(err, "missing_field", "/path", "required");
        goto Exit;
    }
    if (!json_is_string(path) || strlen(json_string_value(path)) != json_string_length(path)) {
        cph_error_set(err, "invalid", "/path", "must be a path pattern string");
        goto Exit;
    }
    if (cph_endpoint_pattern_check(json_string_value(path), "/path", err) != 0)
        goto Exit;
    if (public && (json_array_size(roles) != 0 || json_array_size(groups) != 0)) {
        cph_error_set(err, "invalid", json_array_size(roles) != 0 ? "/roles" : "/groups",
                      "a public endpoint lists no roles or groups");
        goto Exit;
    }
    out = json_pack("{s:s, s:s, s:O, s:b, s:b, s:O, s:O, s:O}", "service", service, "method", method, "path", path, "public",
                    public, "shadow", shadow, "roles", roles, "groups", groups, "rate_limits", limits);
Exit:
    json_decref(limits);
    json_decref(roles);
    json_decref(groups);
    json_decref(copy);
    return out;
}

/* The rate_limits column: SQL NULL (inherit) is JSON null. */
static json_t *column_limits(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null() : cph_store_column_json(st, col);
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "service", (const char *)sqlite3_column_text(st, 1), "method", (const char *)sqlite3_column_text(st, 2),
                     "path", (const char *)sqlite3_column_text(st, 3), "public", sqlite3_column_int(st, 4) != 0, "shadow",
                     sqlite3_column_int(st, 9) != 0, "roles", cph_store_column_json(st, 5), "groups", cph_store_column_json(st, 6),
                     "rate_limits", column_limits(st, 10), "created_at", (const char *)sqlite3_column_text(st, 7), "updated_at",
                     (const char *)sqlite3_column_text(st, 8));
}

json_t *cph_store_endpoint_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_ENDPOINT "ORDER BY s.name, e.path, e.method, e.id", row_to_json, err);
}

json_t *cph_store_endpoint_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    int64_t id;

    if (cph_store_parse_id(key, &id) != 0) {
        cph_error_set(err, "not_found", "", "no such endpoint (endpoints are addressed by id)");
        return NULL;
    }
    return cph_ident_get(db, SELECT_ENDPOINT "WHERE ", "e.id", "e.id", row_to_json, "endpoint", key, err);
}

/* Replaces the role and group links of rule id: {system, name} looked up. */
static int write_links(cph_db_t *db, int64_t id, const json_t *ep, cph_error_t *err)
{
    static const char *const INSERT[] = {"INSERT INTO endpoint_roles (endpoint_id, role_id) VALUES (?1, ?2)",
                                         "INSERT INTO endpoint_groups (endpoint_id, group_id) VALUES (?1, ?2)"};

    if (cph_ident_exec_ids(db, "DELETE FROM endpoint_roles WHERE endpoint_id = ?1", id, 0, err) != 0 ||
        cph_ident_exec_ids(db, "DELETE FROM endpoint_groups WHERE endpoint_id = ?1", id, 0, err) != 0)
        return -1;
    return cph_ident_link_refs(db, ep, id, INSERT, err);
}

/* Writes the row (?1 service_id, ?2 method, ?3 path, ?4 public, ?5 now, ?6 shadow, ?7 rate_limits, ?8 id), then links. */
static int write_endpoint(cph_db_t *db, const char *sql, int64_t *id, const json_t *ep, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t svc = 0;
    char now[32];

    if (cph_store_service_id(db, json_string_value(json_object_get(ep, "service")), "/service", &svc, err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_int64(st, 1, svc);
    sqlite3_bind_text(st, 2, json_string_value(json_object_get(ep, "method")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, json_string_value(json_object_get(ep, "path")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, json_is_true(json_object_get(ep, "public")));
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, json_is_true(json_object_get(ep, "shadow")));
    if (json_is_array(json_object_get(ep, "rate_limits")))
        cph_store_bind_json(st, 7, json_object_get(ep, "rate_limits"));
    else
        sqlite3_bind_null(st, 7);
    if (*id != 0)
        sqlite3_bind_int64(st, 8, *id);
    if (cph_ident_step(db, st, "endpoint", "/path", "the service already has a rule for this method and path", *id != 0, err) != 0)
        return -1;
    if (*id == 0)
        *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return write_links(db, *id, ep, err);
}

int cph_store_endpoint_insert(cph_db_t *db, const json_t *ep, int64_t *id, cph_error_t *err)
{
    *id = 0;
    return write_endpoint(db,
                          "INSERT INTO endpoints (service_id, method, path, public, created_at, updated_at, shadow, rate_limits) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                          id, ep, err);
}

int cph_store_endpoint_update(cph_db_t *db, int64_t id, const json_t *ep, cph_error_t *err)
{
    return write_endpoint(
        db,
        "UPDATE endpoints SET service_id = ?1, method = ?2, path = ?3, public = ?4, updated_at = ?5, shadow = ?6, rate_limits = ?7 "
        "WHERE id = ?8",
        &id, ep, err);
}

int cph_store_endpoint_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "endpoints", "endpoint", NULL, id, err);
}
