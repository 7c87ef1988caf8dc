/*
 * store_route: CRUD on the routes table.
 *
 * A route refers to its service by id (foreign key, ON DELETE RESTRICT), so renaming a service carries its routes
 * along and a service in use cannot disappear under them; the API speaks service names, which are resolved here on
 * every write. paths, hosts and methods are JSON columns, read and written whole like a service's targets.
 */
#include <stdlib.h>
#include <string.h>
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "proto/log.h"

#define MODULE "cp/store/route"

#define SELECT_ROUTE                                                                                                               \
    "SELECT r.id, r.name, s.name, r.paths, r.hosts, r.methods, r.strip_prefix, r.created_at, r.updated_at "                        \
    "FROM routes r JOIN services s ON s.id = r.service_id "

static int internal(cph_db_t *db, cph_error_t *err, const char *what)
{
    cph_log_error(MODULE, "%s: %s", what, sqlite3_errmsg(cph_db_handle(db)));
    return cph_error_set(err, "internal", "", "internal database error");
}

static json_t *or_empty(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return v != NULL ? json_incref(v) : json_array();
}

json_t *cph_store_route_normalize(const json_t *in, cph_error_t *err)
{
    json_t *copy, *out = NULL, *strip;

    if (!json_is_object(in)) {
        cph_error_set(err, "invalid", "", "a route must be a JSON object");
        return NULL;
    }
    copy = json_deep_copy(in);
    json_object_del(copy, "id");
    json_object_del(copy, "created_at");
    json_object_del(copy, "updated_at");
    if (cph_schema_validate_route(copy, err) != 0)
        goto Exit;
    strip = json_object_get(copy, "strip_prefix");
    out = json_pack("{s:O, s:O, s:O, s:o, s:o, s:b}", "name", json_object_get(copy, "name"), "service",
                    json_object_get(copy, "service"), "paths", json_object_get(copy, "paths"), "hosts", or_empty(copy, "hosts"),
                    "methods", or_empty(copy, "methods"), "strip_prefix", strip != NULL && json_is_true(strip));
Exit:
    json_decref(copy);
    return out;
}

static json_t *load_array(const unsigned char *text)
{
    json_t *v = json_loads((const char *)text, JSON_REJECT_DUPLICATES, NULL);

    return v != NULL ? v : json_array(); /* CHECKed json_valid: unreachable unless edited by hand */
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:b, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                     (const char *)sqlite3_column_text(st, 1), "service", (const char *)sqlite3_column_text(st, 2), "paths",
                     load_array(sqlite3_column_text(st, 3)), "hosts", load_array(sqlite3_column_text(st, 4)), "methods",
                     load_array(sqlite3_column_text(st, 5)), "strip_prefix", sqlite3_column_int(st, 6) != 0, "created_at",
                     (const char *)sqlite3_column_text(st, 7), "updated_at", (const char *)sqlite3_column_text(st, 8));
}

json_t *cph_store_route_list(cph_db_t *db, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), SELECT_ROUTE "ORDER BY r.name", -1, &st, NULL) != SQLITE_OK) {
        internal(db, err, "prepare list");
        return NULL;
    }
    arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row_to_json(st));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        internal(db, err, "list");
        return NULL;
    }
    return arr;
}

static json_t *get_one(cph_db_t *db, sqlite3_stmt *st, cph_error_t *err)
{
    json_t *out = NULL;
    int rc = sqlite3_step(st);

    if (rc == SQLITE_ROW)
        out = row_to_json(st);
    else if (rc != SQLITE_DONE)
        internal(db, err, "get");
    sqlite3_finalize(st);
    return out;
}

json_t *cph_store_route_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(db);
    sqlite3_stmt *st = NULL;
    json_t *out;
    int64_t id;

    memset(err, 0, sizeof(*err));
    if (cph_store_parse_id(key, &id) == 0) {
        if (sqlite3_prepare_v2(sql, SELECT_ROUTE "WHERE r.id = ?", -1, &st, NULL) != SQLITE_OK)
            goto Internal;
        sqlite3_bind_int64(st, 1, id);
        if ((out = get_one(db, st, err)) != NULL || err->code[0] != '\0')
            return out;
    }
    if (sqlite3_prepare_v2(sql, SELECT_ROUTE "WHERE r.name = ?", -1, &st, NULL) != SQLITE_OK)
        goto Internal;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if ((out = get_one(db, st, err)) == NULL && err->code[0] == '\0')
        cph_error_set(err, "not_found", "", "no such route");
    return out;
Internal:
    internal(db, err, "prepare get");
    return NULL;
}

/* The id of the service named by route.service (by name only: the API speaks names). */
static int service_id(cph_db_t *db, const json_t *route, int64_t *id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT id FROM services WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare service lookup");
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(route, "service")), -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return cph_error_set(err, "unknown_service", "/service", "no service with this name exists");
    return internal(db, err, "service lookup");
}

static void bind_array(sqlite3_stmt *st, int idx, const json_t *route, const char *key)
{
    char *text = json_dumps(json_object_get(route, key), JSON_COMPACT);

    sqlite3_bind_text(st, idx, text != NULL ? text : "[]", -1, SQLITE_TRANSIENT);
    free(text);
}

/* Binds ?1 name, ?2 service_id, ?3 paths, ?4 hosts, ?5 methods, ?6 strip_prefix, ?7 now, then steps. */
static int write_row(cph_db_t *db, sqlite3_stmt *st, const json_t *route, cph_error_t *err)
{
    char now[32];
    int64_t sid = 0;
    int rc, xrc;

    if (service_id(db, route, &sid, err) != 0) {
        sqlite3_finalize(st);
        return -1;
    }
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(route, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, sid);
    bind_array(st, 3, route, "paths");
    bind_array(st, 4, route, "hosts");
    bind_array(st, 5, route, "methods");
    sqlite3_bind_int(st, 6, json_is_true(json_object_get(route, "strip_prefix")));
    sqlite3_bind_text(st, 7, now, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    xrc = sqlite3_extended_errcode(cph_db_handle(db));
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (xrc == SQLITE_CONSTRAINT_UNIQUE)
        return cph_error_set(err, "conflict", "/name", "a route with this name already exists");
    return internal(db, err, "write");
}

int cph_store_route_insert(cph_db_t *db, const json_t *route, int64_t *id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "INSERT INTO routes (name, service_id, paths, hosts, methods, strip_prefix, created_at, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                           -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare insert");
    if (write_row(db, st, route, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_store_route_update(cph_db_t *db, int64_t id, const json_t *route, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "UPDATE routes SET name = ?1, service_id = ?2, paths = ?3, hosts = ?4, methods = ?5, "
                           "strip_prefix = ?6, updated_at = ?7 WHERE id = ?8",
                           -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare update");
    sqlite3_bind_int64(st, 8, id);
    if (write_row(db, st, route, err) != 0)
        return -1;
    if (sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such route");
    return 0;
}

int cph_store_route_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "DELETE FROM routes WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare delete");
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return internal(db, err, "delete");
    if (sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such route");
    return 0;
}
