/*
 * store_service: CRUD on the services table.
 *
 * The rows hold services already normalised by cph_store_service_normalize() (validated, defaults filled), so what
 * comes out is exactly what the snapshot needs. targets is a JSON column: a service's targets are always read and
 * written whole, and the snapshot wants them as JSON anyway. SQL errors are logged here and surface as {internal}
 * with a generic message: nothing of SQLite reaches an API body.
 */
#include <stdlib.h>
#include <string.h>
#include "controlplane/store_service.h"
#include "proto/log.h"

#define MODULE "cp/store/service"

#define COLUMNS "id, name, targets, timeout_ms, created_at, updated_at"

static int internal(cph_db_t *db, cph_error_t *err, const char *what)
{
    cph_log_error(MODULE, "%s: %s", what, sqlite3_errmsg(cph_db_handle(db)));
    return cph_error_set(err, "internal", "", "internal database error");
}

int cph_store_parse_id(const char *key, int64_t *id)
{
    size_t len = strlen(key);

    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; ++i)
        if (key[i] < '0' || key[i] > '9')
            return -1;
    *id = strtoll(key, NULL, 10);
    return 0;
}

json_t *cph_store_service_normalize(const json_t *in, cph_error_t *err)
{
    json_t *copy, *out = NULL, *targets, *t;
    size_t i;

    if (!json_is_object(in)) {
        cph_error_set(err, "invalid", "", "a service must be a JSON object");
        return NULL;
    }
    copy = json_deep_copy(in);
    json_object_del(copy, "id");
    json_object_del(copy, "created_at");
    json_object_del(copy, "updated_at");
    if (cph_schema_validate_service(copy, err) != 0)
        goto Exit;
    targets = json_array();
    json_array_foreach(json_object_get(copy, "targets"), i, t)
    {
        json_t *w = json_object_get(t, "weight");
        json_array_append_new(targets, json_pack("{s:O, s:I}", "url", json_object_get(t, "url"), "weight",
                                                 w != NULL ? json_integer_value(w) : (json_int_t)1));
    }
    out = json_pack("{s:O, s:o, s:I}", "name", json_object_get(copy, "name"), "targets", targets, "timeout_ms",
                    json_object_get(copy, "timeout_ms") != NULL ? json_integer_value(json_object_get(copy, "timeout_ms"))
                                                                : (json_int_t)60000);
Exit:
    json_decref(copy);
    return out;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    json_t *targets = json_loads((const char *)sqlite3_column_text(st, 2), JSON_REJECT_DUPLICATES, NULL);

    if (targets == NULL)
        targets = json_array(); /* the column is CHECKed json_valid: unreachable unless edited by hand */
    return json_pack("{s:I, s:s, s:o, s:I, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                     (const char *)sqlite3_column_text(st, 1), "targets", targets, "timeout_ms",
                     (json_int_t)sqlite3_column_int64(st, 3), "created_at", (const char *)sqlite3_column_text(st, 4), "updated_at",
                     (const char *)sqlite3_column_text(st, 5));
}

json_t *cph_store_service_list(cph_db_t *db, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT " COLUMNS " FROM services ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
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

/* One row by a prepared single-parameter query; bind is done by the caller. */
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

json_t *cph_store_service_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(db);
    sqlite3_stmt *st = NULL;
    json_t *out;
    int64_t id;

    memset(err, 0, sizeof(*err));
    if (cph_store_parse_id(key, &id) == 0) {
        if (sqlite3_prepare_v2(sql, "SELECT " COLUMNS " FROM services WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
            goto Internal;
        sqlite3_bind_int64(st, 1, id);
        if ((out = get_one(db, st, err)) != NULL || err->code[0] != '\0')
            return out;
    }
    if (sqlite3_prepare_v2(sql, "SELECT " COLUMNS " FROM services WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        goto Internal;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if ((out = get_one(db, st, err)) == NULL && err->code[0] == '\0')
        cph_error_set(err, "not_found", "", "no such service");
    return out;
Internal:
    internal(db, err, "prepare get");
    return NULL;
}

/* Binds name, targets, timeout_ms, now to ?1..?4 and steps; maps a UNIQUE violation to {conflict}. */
static int write_row(cph_db_t *db, sqlite3_stmt *st, const json_t *svc, cph_error_t *err)
{
    char now[32];
    char *targets = json_dumps(json_object_get(svc, "targets"), JSON_COMPACT);
    int rc, xrc;

    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(svc, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, targets != NULL ? targets : "[]", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(svc, "timeout_ms")));
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    free(targets);
    rc = sqlite3_step(st);
    xrc = sqlite3_extended_errcode(cph_db_handle(db));
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (xrc == SQLITE_CONSTRAINT_UNIQUE)
        return cph_error_set(err, "conflict", "/name", "a service with this name already exists");
    return internal(db, err, "write");
}

int cph_store_service_insert(cph_db_t *db, const json_t *svc, int64_t *id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                           -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare insert");
    if (write_row(db, st, svc, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_store_service_update(cph_db_t *db, int64_t id, const json_t *svc, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "UPDATE services SET name = ?1, targets = ?2, timeout_ms = ?3, updated_at = ?4 WHERE id = ?5", -1, &st,
                           NULL) != SQLITE_OK)
        return internal(db, err, "prepare update");
    sqlite3_bind_int64(st, 5, id);
    if (write_row(db, st, svc, err) != 0)
        return -1;
    if (sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such service");
    return 0;
}

int cph_store_service_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, xrc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "DELETE FROM services WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare delete");
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    xrc = sqlite3_extended_errcode(cph_db_handle(db));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if ((xrc & 0xff) == SQLITE_CONSTRAINT) /* only the routes.service_id foreign key can refuse it */
            return cph_error_set(err, "conflict", "", "the service is used by routes");
        return internal(db, err, "delete");
    }
    if (sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such service");
    return 0;
}
