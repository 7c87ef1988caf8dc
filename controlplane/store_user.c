/*
 * store_user: the users table and its membership link tables.
 *
 * A user is a member of systems and holds roles and groups of those systems (a role of a system the user is not in
 * would be a grant that can never apply - DESIGN.md §4 step 4 refuses before roles are looked at - so it is refused
 * at write time instead of silently kept). The memberships are written whole on every write and read back as sorted
 * JSON arrays built by SQLite, so a user is one row to the generic plumbing in store.c.
 *
 * The password never reaches this file in clear: cph_store_user_normalize() replaces it by its argon2id hash (see
 * password.c), and no SELECT here that feeds an answer or the audit reads password_hash.
 *
 * An access token states who its user is (superuser flag, system, roles, groups) for its whole life. When that stops
 * being true - the user is disabled or deleted, or one of those changes - the tokens already issued must stop
 * working at once, not at their exp: the write adds a user revocation (store_revocation.c, before = now) in the same
 * transaction, which reaches the data planes with the snapshot of that very write. Other changes (username, email,
 * password, enabling) leave the tokens alone: they do not change what a token grants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "controlplane/store_user.h"
#include "controlplane/ident.h"
#include "controlplane/password.h"
#include "controlplane/store_revocation.h"

#define SELECT_USER                                                                                                                \
    "SELECT u.id, u.username, u.email, u.superuser, u.enabled, "                                                                   \
    "(SELECT json_group_array(c) FROM (SELECT s.code AS c FROM user_systems us JOIN systems s ON s.id = us.system_id "             \
    "WHERE us.user_id = u.id ORDER BY s.code)), "                                                                                  \
    "(SELECT json_group_array(json_object('system', c, 'name', n)) FROM (SELECT s.code AS c, r.name AS n FROM user_roles ur "      \
    "JOIN roles r ON r.id = ur.role_id JOIN systems s ON s.id = r.system_id WHERE ur.user_id = u.id ORDER BY s.code, r.name)), "   \
    "(SELECT json_group_array(json_object('system', c, 'name', n)) FROM (SELECT s.code AS c, g.name AS n FROM user_groups ug "     \
    "JOIN groups g ON g.id = ug.group_id JOIN systems s ON s.id = g.system_id WHERE ug.user_id = u.id ORDER BY s.code, g.name)), " \
    "u.created_at, u.updated_at FROM users u "

const cph_store_ops_t cph_store_user_ops = {
    "user",
    cph_store_user_normalize,
    cph_store_user_list,
    cph_store_user_get,
    cph_store_user_insert,
    cph_store_user_update,
    cph_store_user_delete,
};

/* Every {system} of refs must be listed in systems: {invalid} at /<member>/<i>/system otherwise. */
static int check_member_of(const json_t *systems, const json_t *refs, const char *member, cph_error_t *err)
{
    json_t *ref, *code;
    size_t i, j;
    char path[64];

    json_array_foreach(refs, i, ref)
    {
        json_array_foreach(systems, j, code) if (json_equal(code, json_object_get(ref, "system"))) break;
        if (j == json_array_size(systems)) {
            snprintf(path, sizeof(path), "/%s/%zu/system", member, i);
            return cph_error_set(err, "invalid", path, "the user is not a member of this system (add it to /systems)");
        }
    }
    return 0;
}

/* The members of a user request, validated, as a new object without the password. */
static json_t *check_user(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"username", "email", "password", "superuser", "enabled",
                                          "systems",  "roles", "groups",   NULL};
    json_t *systems = NULL, *roles = NULL, *groups = NULL, *out = NULL, *pw = json_object_get(in, "password");
    const char *username, *email;
    int superuser, enabled;

    if (cph_ident_check_members(in, ALLOWED, err) != 0 ||
        cph_ident_get_string(in, "username", CPH_IDENT_USERNAME, 1, &username, err) != 0 ||
        cph_ident_get_string(in, "email", CPH_IDENT_EMAIL, 0, &email, err) != 0 ||
        cph_ident_get_bool(in, "superuser", 0, &superuser, err) != 0 || cph_ident_get_bool(in, "enabled", 1, &enabled, err) != 0 ||
        cph_ident_get_names(in, "systems", CPH_IDENT_CODE, &systems, err) != 0 ||
        cph_ident_get_refs(in, "roles", &roles, err) != 0 || cph_ident_get_refs(in, "groups", &groups, err) != 0 ||
        check_member_of(systems, roles, "roles", err) != 0 || check_member_of(systems, groups, "groups", err) != 0)
        goto Exit;
    if (pw != NULL && !json_is_string(pw)) {
        cph_error_set(err, "invalid", "/password", "a password must be a string");
        goto Exit;
    }
    out = json_pack("{s:s, s:s?, s:b, s:b, s:O, s:O, s:O}", "username", username, "email", email, "superuser", superuser, "enabled",
                    enabled, "systems", systems, "roles", roles, "groups", groups);
Exit:
    json_decref(systems);
    json_decref(roles);
    json_decref(groups);
    return out;
}

json_t *cph_store_user_normalize(const json_t *in, cph_error_t *err)
{
    json_t *copy, *out = NULL, *pw;
    char *hash;

    if ((copy = cph_store_writable_copy(in, "user", err)) == NULL)
        return NULL;
    if ((out = check_user(copy, err)) == NULL)
        goto Exit;
    if ((pw = json_object_get(copy, "password")) != NULL) { /* hashed last: no 0.1 s of argon2 for an invalid request */
        if ((hash = cph_password_hash(json_string_value(pw), json_string_length(pw), "/password", err)) == NULL) {
            json_decref(out);
            out = NULL;
            goto Exit;
        }
        json_object_set_new(out, "password_hash", json_string(hash));
        free(hash);
    }
Exit:
    json_decref(copy);
    return out;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:o, s:b, s:b, s:o, s:o, s:o, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "username", (const char *)sqlite3_column_text(st, 1), "email", cph_ident_column_text(st, 2), "superuser",
                     sqlite3_column_int(st, 3) != 0, "enabled", sqlite3_column_int(st, 4) != 0, "systems",
                     cph_store_column_json(st, 5), "roles", cph_store_column_json(st, 6), "groups", cph_store_column_json(st, 7),
                     "created_at", (const char *)sqlite3_column_text(st, 8), "updated_at",
                     (const char *)sqlite3_column_text(st, 9));
}

json_t *cph_store_user_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_USER "ORDER BY u.username", row_to_json, err);
}

json_t *cph_store_user_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_ident_get(db, SELECT_USER "WHERE ", "u.id", "u.username", row_to_json, "user", key, err);
}

/* {conflict} at path when another user (id != self) has value in col (username or email, case-insensitive). */
static int check_taken(cph_db_t *db, const char *sql, const char *value, int64_t self, const char *path, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (value == NULL)
        return 0;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare taken");
    sqlite3_bind_text(st, 1, value, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, self);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return cph_error_set(err, "conflict", path, "another user already has this %s", path + 1);
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "taken");
}

/* Replaces the memberships of user id: systems by code, roles and groups by {system, name}. */
static int write_links(cph_db_t *db, int64_t id, const json_t *user, cph_error_t *err)
{
    static const char *const INSERT[] = {"INSERT INTO user_roles (user_id, role_id) VALUES (?1, ?2)",
                                         "INSERT INTO user_groups (user_id, group_id) VALUES (?1, ?2)"};
    json_t *v;
    size_t i;
    char path[64];
    int64_t sid;

    if (cph_ident_exec_ids(db, "DELETE FROM user_systems WHERE user_id = ?1", id, 0, err) != 0 ||
        cph_ident_exec_ids(db, "DELETE FROM user_roles WHERE user_id = ?1", id, 0, err) != 0 ||
        cph_ident_exec_ids(db, "DELETE FROM user_groups WHERE user_id = ?1", id, 0, err) != 0)
        return -1;
    json_array_foreach(json_object_get(user, "systems"), i, v)
    {
        snprintf(path, sizeof(path), "/systems/%zu", i);
        if (cph_ident_system_id(db, json_string_value(v), path, &sid, err) != 0 ||
            cph_ident_exec_ids(db, "INSERT INTO user_systems (user_id, system_id) VALUES (?1, ?2)", id, sid, err) != 0)
            return -1;
    }
    return cph_ident_link_refs(db, user, id, INSERT, err);
}

/* Writes the row (?1 username, ?2 email, ?3 password_hash or NULL, ?4 superuser, ?5 enabled, ?6 now, ?7 id), then links. */
static int write_user(cph_db_t *db, const char *sql, int64_t *id, const json_t *user, cph_error_t *err)
{
    const char *username = json_string_value(json_object_get(user, "username"));
    const char *email = json_string_value(json_object_get(user, "email"));
    sqlite3_stmt *st = NULL;
    char now[32];

    if (check_taken(db, "SELECT 1 FROM users WHERE username = ?1 AND id != ?2", username, *id, "/username", err) != 0 ||
        check_taken(db, "SELECT 1 FROM users WHERE email = ?1 AND id != ?2", email, *id, "/email", err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, username, -1, SQLITE_TRANSIENT);
    cph_ident_bind_text(st, 2, email);
    cph_ident_bind_text(st, 3, json_string_value(json_object_get(user, "password_hash")));
    sqlite3_bind_int(st, 4, json_is_true(json_object_get(user, "superuser")));
    sqlite3_bind_int(st, 5, json_is_true(json_object_get(user, "enabled")));
    sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
    if (*id != 0)
        sqlite3_bind_int64(st, 7, *id);
    if (cph_ident_step(db, st, "user", "/username", "another user already has this username", *id != 0, err) != 0)
        return -1;
    if (*id == 0)
        *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return write_links(db, *id, user, err);
}

int cph_store_user_insert(cph_db_t *db, const json_t *user, int64_t *id, cph_error_t *err)
{
    if (json_object_get(user, "password_hash") == NULL)
        return cph_error_set(err, "missing_field", "/password", "a new user needs a password");
    *id = 0;
    return write_user(db,
                      "INSERT INTO users (username, email, password_hash, superuser, enabled, created_at, updated_at) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                      id, user, err);
}

/* User id as stored (the API representation), or NULL with err {not_found} / {internal}. */
static json_t *get_by_id(cph_db_t *db, int64_t id, cph_error_t *err)
{
    char key[24];

    snprintf(key, sizeof(key), "%lld", (long long)id);
    return cph_ident_get(db, SELECT_USER "WHERE ", "u.id", "u.id", row_to_json, "user", key, err);
}

/* Whether going from old to new changes what the user's tokens say or allow (the lists are sorted by SQLite). */
static int grants_changed(const json_t *before, const json_t *after)
{
    static const char *const MEMBERS[] = {"superuser", "systems", "roles", "groups"};

    if (json_is_true(json_object_get(before, "enabled")) && !json_is_true(json_object_get(after, "enabled")))
        return 1;
    for (size_t i = 0; i < sizeof(MEMBERS) / sizeof(MEMBERS[0]); ++i)
        if (!json_equal(json_object_get(before, MEMBERS[i]), json_object_get(after, MEMBERS[i])))
            return 1;
    return 0;
}

int cph_store_user_update(cph_db_t *db, int64_t id, const json_t *user, cph_error_t *err)
{
    json_t *before, *after = NULL;
    int ret = -1;

    if ((before = get_by_id(db, id, err)) == NULL)
        return -1;
    if (write_user(db,
                   "UPDATE users SET username = ?1, email = ?2, password_hash = coalesce(?3, password_hash), superuser = ?4, "
                   "enabled = ?5, updated_at = ?6 WHERE id = ?7",
                   &id, user, err) != 0 ||
        (after = get_by_id(db, id, err)) == NULL)
        goto Exit;
    if (grants_changed(before, after) && cph_store_revocation_user(db, id, (int64_t)time(NULL), err) != 0)
        goto Exit;
    ret = 0;
Exit:
    json_decref(before);
    json_decref(after);
    return ret;
}

int cph_store_user_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    if (cph_store_delete(db, "users", "user", NULL, id, err) != 0)
        return -1;
    return cph_store_revocation_user(db, id, (int64_t)time(NULL), err);
}

char *cph_store_user_password_hash(cph_db_t *db, int64_t id)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT password_hash FROM users WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}
