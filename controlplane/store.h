/*
 * store: what every store_<entity>.c shares.
 *
 * Each entity exposes the same six operations (cph_store_ops_t) so that one generic admin handler (api_crud.c) can
 * serve its collection and items; the SQL plumbing they all repeat (list, get by id or name, step a write, delete)
 * lives here once. Every function runs with the database lock held (inside cph_db_write() or between
 * cph_db_lock()/cph_db_unlock()), except the pure JSON helpers.
 */
#ifndef CPH_STORE_H
#define CPH_STORE_H

#include <stdint.h>
#include <jansson.h>
#include <sqlite3.h>
#include "controlplane/db.h"

/** One entity's CRUD, as the admin API drives it. err codes: not_found, conflict, internal, or proto's 400 codes. */
typedef struct st_cph_store_ops_t {
    const char *entity; /* "service": audit entity type, member name of the answer, "no such service" */
    /** A request object -> a new normalised object (read-only members dropped, validated, defaults filled). */
    json_t *(*normalize)(const json_t *in, cph_error_t *err);
    /** Every row, sorted by name, as a new array. */
    json_t *(*list)(cph_db_t *db, cph_error_t *err);
    /** One row by key: an all-digit key is tried as an id first, then any key as a name. */
    json_t *(*get)(cph_db_t *db, const char *key, cph_error_t *err);
    int (*insert)(cph_db_t *db, const json_t *obj, int64_t *id, cph_error_t *err);
    int (*update)(cph_db_t *db, int64_t id, const json_t *obj, cph_error_t *err);
    int (*remove)(cph_db_t *db, int64_t id, cph_error_t *err);
} cph_store_ops_t;

/** Turns a row of a prepared SELECT into a new JSON object. */
typedef json_t *(*cph_store_row_fn)(sqlite3_stmt *st);

/** Parses an all-digit key (1..18 digits) into *id. Returns 0 or -1. */
int cph_store_parse_id(const char *key, int64_t *id);
/** Logs SQLite's message for what and fills err {internal} with a generic text: SQL never reaches an API body. */
int cph_store_internal(cph_db_t *db, cph_error_t *err, const char *what);
/** Runs a parameterless SELECT and maps every row. NULL with err {internal}. */
json_t *cph_store_list(cph_db_t *db, const char *sql, cph_store_row_fn row, cph_error_t *err);
/**
 * Looks a row up by key with select (a SELECT ending in "WHERE ", completed here with "<id_col> = ?" and
 * "<name_col> = ?"). NULL with err {not_found} ("no such <entity>") or {internal}.
 */
json_t *cph_store_get(cph_db_t *db, const char *select, const char *id_col, const char *name_col, cph_store_row_fn row,
                      const char *entity, const char *key, cph_error_t *err);
/**
 * Steps a bound INSERT/UPDATE and finalizes it. A UNIQUE violation is {conflict} at /name; with expect_row, an
 * UPDATE that changed nothing is {not_found}.
 */
int cph_store_step_write(cph_db_t *db, sqlite3_stmt *st, const char *entity, int expect_row, cph_error_t *err);
/** DELETE FROM table WHERE id = ?. A foreign-key refusal is {conflict} with in_use; no row is {not_found}. */
int cph_store_delete(cph_db_t *db, const char *table, const char *entity, const char *in_use, int64_t id, cph_error_t *err);

/** A deep copy of a request object without id, created_at and updated_at; NULL with err {invalid} if not an object. */
json_t *cph_store_writable_copy(const json_t *in, const char *entity, cph_error_t *err);
/** Binds v serialised compactly ("[]" when NULL). */
void cph_store_bind_json(sqlite3_stmt *st, int idx, const json_t *v);
/** Parses a JSON column; the columns are CHECKed json_valid, so [] stands in only for a hand-edited database. */
json_t *cph_store_column_json(sqlite3_stmt *st, int col);

#endif
