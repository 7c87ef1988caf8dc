/*
 * store_group: the groups table and group_roles.
 *
 * A group carries roles of its own system; holding the group grants them (DESIGN.md §4, step 6). The role list is
 * written whole on every write (delete the links, insert the new ones) inside the caller's transaction, and read
 * back as one sorted JSON array by SQLite (json_group_array over an ordered subquery), so a group is one row to the
 * generic plumbing in store.c.
 */
#include "controlplane/store_group.h"
#include "controlplane/ident.h"

#define SELECT_GROUP                                                                                                               \
    "SELECT g.id, s.code, g.name, (SELECT json_group_array(n) FROM (SELECT r.name AS n FROM group_roles gr JOIN roles r ON "       \
    "r.id = gr.role_id WHERE gr.group_id = g.id ORDER BY r.name)), g.created_at, g.updated_at "                                    \
    "FROM groups g JOIN systems s ON s.id = g.system_id "

#define HELD_ELSEWHERE                                                                                                             \
    "SELECT (SELECT system_id FROM groups WHERE id = ?1) != ?2 AND (EXISTS (SELECT 1 FROM user_groups WHERE group_id = ?1) OR "    \
    "EXISTS (SELECT 1 FROM api_key_groups WHERE group_id = ?1) OR EXISTS (SELECT 1 FROM endpoint_groups WHERE group_id = ?1))"

const cph_store_ops_t cph_store_group_ops = {
    "group",
    cph_store_group_normalize,
    cph_store_group_list,
    cph_store_group_get,
    cph_store_group_insert,
    cph_store_group_update,
    cph_store_group_delete,
};

json_t *cph_store_group_normalize(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"system", "name", "roles", NULL};
    json_t *copy, *out = NULL, *roles = NULL;
    const char *code, *name;

    if ((copy = cph_store_writable_copy(in, "group", err)) == NULL)
        return NULL;
    if (cph_ident_check_members(copy, ALLOWED, err) == 0 &&
        cph_ident_get_string(copy, "system", CPH_IDENT_CODE, 1, &code, err) == 0 &&
        cph_ident_get_string(copy, "name", CPH_IDENT_NAME, 1, &name, err) == 0 &&
        cph_ident_get_names(copy, "roles", CPH_IDENT_NAME, &roles, err) == 0)
        out = json_pack("{s:s, s:s, s:o}", "system", code, "name", name, "roles", roles);
    json_decref(copy);
    return out;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:o, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "system",
                     (const char *)sqlite3_column_text(st, 1), "name", (const char *)sqlite3_column_text(st, 2), "roles",
                     cph_store_column_json(st, 3), "created_at", (const char *)sqlite3_column_text(st, 4), "updated_at",
                     (const char *)sqlite3_column_text(st, 5));
}

json_t *cph_store_group_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_GROUP "ORDER BY s.code, g.name", row_to_json, err);
}

json_t *cph_store_group_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_ident_get_scoped(db, SELECT_GROUP "WHERE ", "g.id", "s.code", "g.name", row_to_json, "group", key, err);
}

/* Replaces the role links of group id with group.roles, each looked up in system sid. */
static int write_roles(cph_db_t *db, int64_t id, int64_t sid, const json_t *group, cph_error_t *err)
{
    json_t *role;
    size_t i;
    char path[32];
    int64_t rid;

    if (cph_ident_exec_ids(db, "DELETE FROM group_roles WHERE group_id = ?1", id, 0, err) != 0)
        return -1;
    json_array_foreach(json_object_get(group, "roles"), i, role)
    {
        snprintf(path, sizeof(path), "/roles/%zu", i);
        if (cph_ident_scoped_id(db, "roles", sid, json_string_value(role), path, &rid, err) != 0 ||
            cph_ident_exec_ids(db, "INSERT INTO group_roles (group_id, role_id) VALUES (?1, ?2)", id, rid, err) != 0)
            return -1;
    }
    return 0;
}

/* Writes the row (?1 system_id, ?2 name, ?3 now, ?4 id) and its roles; *id is set on insert. */
static int write_group(cph_db_t *db, const char *sql, int64_t *id, const json_t *group, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t sid = 0;
    char now[32];

    if (cph_ident_system_id(db, json_string_value(json_object_get(group, "system")), "/system", &sid, err) != 0)
        return -1;
    if (*id != 0 && cph_ident_refuse(db, HELD_ELSEWHERE, *id, sid, "/system",
                                     "the group is held by users, api keys or endpoint rules: it cannot change system", err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, json_string_value(json_object_get(group, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    if (*id != 0)
        sqlite3_bind_int64(st, 4, *id);
    if (cph_ident_step(db, st, "group", "/name", "the system already has a group with this name", *id != 0, err) != 0)
        return -1;
    if (*id == 0)
        *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return write_roles(db, *id, sid, group, err);
}

int cph_store_group_insert(cph_db_t *db, const json_t *group, int64_t *id, cph_error_t *err)
{
    *id = 0;
    return write_group(db, "INSERT INTO groups (system_id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)", id, group, err);
}

int cph_store_group_update(cph_db_t *db, int64_t id, const json_t *group, cph_error_t *err)
{
    return write_group(db, "UPDATE groups SET system_id = ?1, name = ?2, updated_at = ?3 WHERE id = ?4", &id, group, err);
}

int cph_store_group_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "groups", "group", "the group is held by users, api keys or endpoint rules", id, err);
}
