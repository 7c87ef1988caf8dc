/*
 * store: the SQL plumbing shared by every store_<entity>.c (see store.h).
 *
 * Entities differ in their columns and their JSON shape, not in how a row is listed, fetched by id or name,
 * written or deleted, nor in how SQLite's errors are mapped to the API's codes. Keeping that here means a new
 * entity is its columns, its row mapping and its normalisation, and nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/store.h"
#include "proto/log.h"

#define MODULE "cp/store"

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

int cph_store_internal(cph_db_t *db, cph_error_t *err, const char *what)
{
    cph_log_error(MODULE, "%s: %s", what, sqlite3_errmsg(cph_db_handle(db)));
    return cph_error_set(err, "internal", "", "internal database error");
}

json_t *cph_store_list(cph_db_t *db, const char *sql, cph_store_row_fn row, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *arr;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) {
        cph_store_internal(db, err, "prepare list");
        return NULL;
    }
    arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row(st));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        cph_store_internal(db, err, "list");
        return NULL;
    }
    return arr;
}

/* One row of "<select><col> = ?" bound to an id (key NULL) or a name. Returns 1 found, 0 none, -1 error. */
static int get_one(cph_db_t *db, const char *select, const char *col, int64_t id, const char *key, cph_store_row_fn row,
                   json_t **out, cph_error_t *err)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof(sql), "%s%s = ?", select, col);
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare get");
    if (key == NULL)
        sqlite3_bind_int64(st, 1, id);
    else
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = row(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "get");
}

json_t *cph_store_get(cph_db_t *db, const char *select, const char *id_col, const char *name_col, cph_store_row_fn row,
                      const char *entity, const char *key, cph_error_t *err)
{
    json_t *out = NULL;
    int64_t id;
    int found;

    if (cph_store_parse_id(key, &id) == 0 && (found = get_one(db, select, id_col, id, NULL, row, &out, err)) != 0)
        return found > 0 ? out : NULL;
    if ((found = get_one(db, select, name_col, 0, key, row, &out, err)) == 0)
        cph_error_set(err, "not_found", "", "no such %s", entity);
    return found > 0 ? out : NULL;
}

int cph_store_step_write(cph_db_t *db, sqlite3_stmt *st, const char *entity, int expect_row, cph_error_t *err)
{
    int rc = sqlite3_step(st), xrc = sqlite3_extended_errcode(cph_db_handle(db));

    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (xrc == SQLITE_CONSTRAINT_UNIQUE)
            return cph_error_set(err, "conflict", "/name", "a %s with this name already exists", entity);
        return cph_store_internal(db, err, "write");
    }
    if (expect_row && sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such %s", entity);
    return 0;
}

int cph_store_delete(cph_db_t *db, const char *table, const char *entity, const char *in_use, int64_t id, cph_error_t *err)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    int rc, xrc;

    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", table);
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare delete");
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    xrc = sqlite3_extended_errcode(cph_db_handle(db));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if ((xrc & 0xff) == SQLITE_CONSTRAINT && in_use != NULL) /* a foreign key of another table refuses it */
            return cph_error_set(err, "conflict", "", "%s", in_use);
        return cph_store_internal(db, err, "delete");
    }
    if (sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such %s", entity);
    return 0;
}

json_t *cph_store_writable_copy(const json_t *in, const char *entity, cph_error_t *err)
{
    json_t *copy;

    if (!json_is_object(in)) {
        cph_error_set(err, "invalid", "", "a %s must be a JSON object", entity);
        return NULL;
    }
    copy = json_deep_copy(in);
    json_object_del(copy, "id");
    json_object_del(copy, "created_at");
    json_object_del(copy, "updated_at");
    return copy;
}

void cph_store_bind_json(sqlite3_stmt *st, int idx, const json_t *v)
{
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;

    sqlite3_bind_text(st, idx, text != NULL ? text : "[]", -1, SQLITE_TRANSIENT);
    free(text);
}

json_t *cph_store_column_json(sqlite3_stmt *st, int col)
{
    json_t *v = json_loads((const char *)sqlite3_column_text(st, col), JSON_REJECT_DUPLICATES, NULL);

    return v != NULL ? v : json_array();
}
