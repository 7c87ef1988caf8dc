/*
 * store_route: the routes table.
 *
 * A route refers to its service by id (foreign key, ON DELETE RESTRICT), so renaming a service carries its routes
 * along and a service in use cannot disappear under them; the API speaks service names, which are resolved here on
 * every write. paths, hosts and methods are JSON columns, read and written whole like a service's targets.
 *
 * default_access (migrations/0004_access.sql) is what the data plane decides for a request of the route that no
 * endpoint rule of its service matches (docs/access.md section 4): "authenticated" unless the admin says otherwise, so adding a
 * route never opens anything by accident.
 *
 * policies (migrations/0006_policies.sql) is the route's traffic policy object - rate limits, CORS, security headers,
 * size limits, IP lists, the HTTPS redirect (proto/PROTOCOL.md section 5) - validated by the snapshot schema like the
 * rest of the route and stored whole as JSON; absent is {} (no policy).
 *
 * kind (migrations/0009_route_kinds.sql) is "proxy" (absent means that), "pdf" or "aggregate"; a pdf or aggregate
 * route carries its configuration object under the member of the same name, stored in kind_config. The API object
 * always says its kind; the snapshot body leaves "kind" out for a proxy route (snapbuild.c), so routes written before
 * kinds existed keep their body and hash.
 */
#include <string.h>
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "proto/log.h"

#define MODULE "cp/store_route"

#define SELECT_ROUTE                                                                                                               \
    "SELECT r.id, r.name, s.name, r.paths, r.hosts, r.methods, r.strip_prefix, r.created_at, r.updated_at, r.default_access, "     \
    "r.policies, r.kind, r.kind_config "                                                                                           \
    "FROM routes r JOIN services s ON s.id = r.service_id "

const cph_store_ops_t cph_store_route_ops = {
    "route",
    cph_store_route_normalize,
    cph_store_route_list,
    cph_store_route_get,
    cph_store_route_insert,
    cph_store_route_update,
    cph_store_route_delete,
};

static json_t *or_empty(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return v != NULL ? json_incref(v) : json_array();
}

/* default_access: absent -> "authenticated"; else one of ACCESS ({invalid} at /default_access). */
static int get_access(const json_t *in, const char **out, cph_error_t *err)
{
    static const char *const ACCESS[] = {"public", "authenticated", "deny", NULL};
    json_t *v = json_object_get(in, "default_access");

    *out = "authenticated";
    if (v == NULL)
        return 0;
    for (size_t i = 0; json_is_string(v) && ACCESS[i] != NULL; ++i)
        if (strcmp(json_string_value(v), ACCESS[i]) == 0 && json_string_length(v) == strlen(ACCESS[i])) {
            *out = ACCESS[i];
            return 0;
        }
    return cph_error_set(err, "invalid", "/default_access", "must be \"public\", \"authenticated\" or \"deny\"");
}

/* policies: absent -> {} (set into copy, so the schema validator always sees it); else an object ({invalid} at /policies). */
static int get_policies(json_t *copy, cph_error_t *err)
{
    json_t *v = json_object_get(copy, "policies");

    if (v == NULL) {
        if (json_object_set_new(copy, "policies", json_object()) != 0)
            cph_fatal(MODULE, "out of memory");
        return 0;
    }
    if (!json_is_object(v))
        return cph_error_set(err, "invalid", "/policies", "must be an object");
    return 0;
}

/* kind and its configuration object into out (the schema has checked them): "kind" always, "pdf"/"aggregate" when set. */
static void set_kind(json_t *out, const json_t *copy)
{
    const char *kind = json_string_value(json_object_get(copy, "kind"));

    if (kind == NULL)
        kind = "proxy";
    if (json_object_set_new(out, "kind", json_string(kind)) != 0 ||
        (strcmp(kind, "proxy") != 0 && json_object_set(out, kind, json_object_get(copy, kind)) != 0))
        cph_fatal(MODULE, "out of memory");
}

json_t *cph_store_route_normalize(const json_t *in, cph_error_t *err)
{
    json_t *copy, *out = NULL, *strip;
    const char *access;

    if ((copy = cph_store_writable_copy(in, "route", err)) == NULL)
        return NULL;
    /* default_access is checked here: the schema validator sees the rest (policies included) */
    if (get_access(copy, &access, err) != 0 || get_policies(copy, err) != 0)
        goto Exit;
    json_object_del(copy, "default_access");
    if (cph_schema_validate_route(copy, err) != 0)
        goto Exit;
    strip = json_object_get(copy, "strip_prefix");
    out = json_pack("{s:O, s:O, s:O, s:o, s:o, s:b, s:s, s:O}", "name", json_object_get(copy, "name"), "service",
                    json_object_get(copy, "service"), "paths", json_object_get(copy, "paths"), "hosts", or_empty(copy, "hosts"),
                    "methods", or_empty(copy, "methods"), "strip_prefix", strip != NULL && json_is_true(strip), "default_access",
                    access, "policies", json_object_get(copy, "policies"));
    if (out != NULL)
        set_kind(out, copy);
Exit:
    json_decref(copy);
    return out;
}

/* The policies column; {} should it ever not parse (the column's CHECK makes that impossible). */
static json_t *column_policies(sqlite3_stmt *st, int col)
{
    json_t *v = json_loads((const char *)sqlite3_column_text(st, col), JSON_REJECT_DUPLICATES, NULL);

    if (json_is_object(v))
        return v;
    json_decref(v);
    return json_object();
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    const char *kind = (const char *)sqlite3_column_text(st, 11);
    json_t *out =
        json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:b, s:s, s:o, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                  (const char *)sqlite3_column_text(st, 1), "service", (const char *)sqlite3_column_text(st, 2), "paths",
                  cph_store_column_json(st, 3), "hosts", cph_store_column_json(st, 4), "methods", cph_store_column_json(st, 5),
                  "strip_prefix", sqlite3_column_int(st, 6) != 0, "default_access", (const char *)sqlite3_column_text(st, 9),
                  "policies", column_policies(st, 10), "created_at", (const char *)sqlite3_column_text(st, 7), "updated_at",
                  (const char *)sqlite3_column_text(st, 8));

    if (out == NULL || json_object_set_new(out, "kind", json_string(kind != NULL ? kind : "proxy")) != 0)
        cph_fatal(MODULE, "out of memory");
    if (kind != NULL && strcmp(kind, "proxy") != 0 && json_object_set_new(out, kind, column_policies(st, 12)) != 0)
        cph_fatal(MODULE, "out of memory");
    return out;
}

json_t *cph_store_route_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_ROUTE "ORDER BY r.name", row_to_json, err);
}

json_t *cph_store_route_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_store_get(db, SELECT_ROUTE "WHERE ", "r.id", "r.name", row_to_json, "route", key, err);
}

/* Binds ?1 name, ?2 service_id, ?3 paths, ?4 hosts, ?5 methods, ?6 strip_prefix, ?7 now, ?8 default_access, ?9 policies,
 * ?10 kind, ?11 kind_config (NULL for a proxy route) (?12 id), then steps. */
static int write_row(cph_db_t *db, const char *sql, int64_t id, const json_t *route, cph_error_t *err)
{
    const char *kind = json_string_value(json_object_get(route, "kind"));
    sqlite3_stmt *st = NULL;
    char now[32];
    int64_t sid = 0;

    if (kind == NULL)
        kind = "proxy";
    if (cph_store_service_id(db, json_string_value(json_object_get(route, "service")), "/service", &sid, err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(route, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, sid);
    cph_store_bind_json(st, 3, json_object_get(route, "paths"));
    cph_store_bind_json(st, 4, json_object_get(route, "hosts"));
    cph_store_bind_json(st, 5, json_object_get(route, "methods"));
    sqlite3_bind_int(st, 6, json_is_true(json_object_get(route, "strip_prefix")));
    sqlite3_bind_text(st, 7, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, json_string_value(json_object_get(route, "default_access")), -1, SQLITE_TRANSIENT);
    cph_store_bind_json(st, 9, json_object_get(route, "policies"));
    sqlite3_bind_text(st, 10, kind, -1, SQLITE_TRANSIENT);
    if (strcmp(kind, "proxy") != 0)
        cph_store_bind_json(st, 11, json_object_get(route, kind));
    else
        sqlite3_bind_null(st, 11);
    if (id != 0)
        sqlite3_bind_int64(st, 12, id);
    return cph_store_step_write(db, st, "route", id != 0, err);
}

int cph_store_route_insert(cph_db_t *db, const json_t *route, int64_t *id, cph_error_t *err)
{
    if (write_row(db,
                  "INSERT INTO routes (name, service_id, paths, hosts, methods, strip_prefix, created_at, updated_at, "
                  "default_access, policies, kind, kind_config) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)",
                  0, route, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_store_route_update(cph_db_t *db, int64_t id, const json_t *route, cph_error_t *err)
{
    return write_row(db,
                     "UPDATE routes SET name = ?1, service_id = ?2, paths = ?3, hosts = ?4, methods = ?5, strip_prefix = ?6, "
                     "updated_at = ?7, default_access = ?8, policies = ?9, kind = ?10, kind_config = ?11 WHERE id = ?12",
                     id, route, err);
}

int cph_store_route_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "routes", "route", NULL, id, err);
}
