/*
 * store_role: the roles table.
 *
 * Roles are the unit endpoint rules grant. A role is held by groups (group_roles), users (user_roles), api keys
 * (api_key_roles) and endpoint rules (endpoint_roles), all with ON DELETE RESTRICT on the role: deleting a role in
 * use is a 409 that tells the admin to remove it from its holders first, rather than silently widening or narrowing
 * anyone's access.
 */
#include "controlplane/store_role.h"
#include "controlplane/ident.h"

#define SELECT_ROLE "SELECT r.id, s.code, r.name, r.created_at, r.updated_at FROM roles r JOIN systems s ON s.id = r.system_id "

const cph_store_ops_t cph_store_role_ops = {
    "role",
    cph_store_role_normalize,
    cph_store_role_list,
    cph_store_role_get,
    cph_store_role_insert,
    cph_store_role_update,
    cph_store_role_delete,
};

json_t *cph_store_role_normalize(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"system", "name", NULL};
    json_t *copy, *out = NULL;
    const char *code, *name;

    if ((copy = cph_store_writable_copy(in, "role", err)) == NULL)
        return NULL;
    if (cph_ident_check_members(copy, ALLOWED, err) == 0 &&
        cph_ident_get_string(copy, "system", CPH_IDENT_CODE, 1, &code, err) == 0 &&
        cph_ident_get_string(copy, "name", CPH_IDENT_NAME, 1, &name, err) == 0)
        out = json_pack("{s:s, s:s}", "system", code, "name", name);
    json_decref(copy);
    return out;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "system",
                     (const char *)sqlite3_column_text(st, 1), "name", (const char *)sqlite3_column_text(st, 2), "created_at",
                     (const char *)sqlite3_column_text(st, 3), "updated_at", (const char *)sqlite3_column_text(st, 4));
}

json_t *cph_store_role_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_ROLE "ORDER BY s.code, r.name", row_to_json, err);
}

json_t *cph_store_role_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_ident_get_scoped(db, SELECT_ROLE "WHERE ", "r.id", "s.code", "r.name", row_to_json, "role", key, err);
}

/* Binds ?1 system_id, ?2 name, ?3 now (?4 id), then steps. */
static int write_row(cph_db_t *db, const char *sql, int64_t id, const json_t *role, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t sid = 0;
    char now[32];

    if (cph_ident_system_id(db, json_string_value(json_object_get(role, "system")), "/system", &sid, err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, json_string_value(json_object_get(role, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    if (id != 0)
        sqlite3_bind_int64(st, 4, id);
    return cph_ident_step(db, st, "role", "/name", "the system already has a role with this name", id != 0, err);
}

int cph_store_role_insert(cph_db_t *db, const json_t *role, int64_t *id, cph_error_t *err)
{
    if (write_row(db, "INSERT INTO roles (system_id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)", 0, role, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

#define HELD_ELSEWHERE                                                                                                             \
    "SELECT (SELECT system_id FROM roles WHERE id = ?1) != ?2 AND (EXISTS (SELECT 1 FROM group_roles WHERE role_id = ?1) OR "      \
    "EXISTS (SELECT 1 FROM user_roles WHERE role_id = ?1) OR EXISTS (SELECT 1 FROM api_key_roles WHERE role_id = ?1) OR "          \
    "EXISTS (SELECT 1 FROM endpoint_roles WHERE role_id = ?1))"

int cph_store_role_update(cph_db_t *db, int64_t id, const json_t *role, cph_error_t *err)
{
    int64_t sid = 0;

    if (cph_ident_system_id(db, json_string_value(json_object_get(role, "system")), "/system", &sid, err) != 0 ||
        cph_ident_refuse(db, HELD_ELSEWHERE, id, sid, "/system",
                         "the role is held by groups, users, api keys or endpoint rules: it cannot change system", err) != 0)
        return -1;
    return write_row(db, "UPDATE roles SET system_id = ?1, name = ?2, updated_at = ?3 WHERE id = ?4", id, role, err);
}

int cph_store_role_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "roles", "role", "the role is held by groups, users, api keys or endpoint rules", id, err);
}
