/*
 * store_system: the systems table.
 *
 * A system is a code (the stable identifier tokens and rules will carry) and a display name. Everything scoped by a
 * system refers to it by id with ON DELETE RESTRICT (migrations/0002_identity.sql), so a system in use cannot be
 * deleted and renaming its code carries every reference along.
 */
#include "controlplane/store_system.h"
#include "controlplane/ident.h"

#define SELECT_SYSTEM "SELECT id, code, name, created_at, updated_at FROM systems "

const cph_store_ops_t cph_store_system_ops = {
    "system",
    cph_store_system_normalize,
    cph_store_system_list,
    cph_store_system_get,
    cph_store_system_insert,
    cph_store_system_update,
    cph_store_system_delete,
};

json_t *cph_store_system_normalize(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"code", "name", NULL};
    json_t *copy, *out = NULL;
    const char *code, *name;

    if ((copy = cph_store_writable_copy(in, "system", err)) == NULL)
        return NULL;
    if (cph_ident_check_members(copy, ALLOWED, err) == 0 &&
        cph_ident_get_string(copy, "code", CPH_IDENT_CODE, 1, &code, err) == 0 &&
        cph_ident_get_string(copy, "name", CPH_IDENT_TEXT, 1, &name, err) == 0)
        out = json_pack("{s:s, s:s}", "code", code, "name", name);
    json_decref(copy);
    return out;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "code",
                     (const char *)sqlite3_column_text(st, 1), "name", (const char *)sqlite3_column_text(st, 2), "created_at",
                     (const char *)sqlite3_column_text(st, 3), "updated_at", (const char *)sqlite3_column_text(st, 4));
}

json_t *cph_store_system_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_SYSTEM "ORDER BY code", row_to_json, err);
}

json_t *cph_store_system_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_store_get(db, SELECT_SYSTEM "WHERE ", "id", "code", row_to_json, "system", key, err);
}

/* Binds ?1 code, ?2 name, ?3 now (?4 id), then steps. */
static int write_row(cph_db_t *db, const char *sql, int64_t id, const json_t *sys, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(sys, "code")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, json_string_value(json_object_get(sys, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    if (id != 0)
        sqlite3_bind_int64(st, 4, id);
    return cph_ident_step(db, st, "system", "/code", "a system with this code already exists", id != 0, err);
}

int cph_store_system_insert(cph_db_t *db, const json_t *sys, int64_t *id, cph_error_t *err)
{
    if (write_row(db, "INSERT INTO systems (code, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)", 0, sys, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_store_system_update(cph_db_t *db, int64_t id, const json_t *sys, cph_error_t *err)
{
    return write_row(db, "UPDATE systems SET code = ?1, name = ?2, updated_at = ?3 WHERE id = ?4", id, sys, err);
}

int cph_store_system_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "systems", "system", "the system is used by services, roles, groups, api keys or users", id, err);
}
