/*
 * api_admin_util: the body readers, system links and transaction pair of the admin session, account and token
 * handlers (api_admin_util.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/api_admin_util.h"

/* Refuses a member of body not in allowed (NULL-terminated): 400 unknown_field at its path. */
int cph_admin_body_members(const json_t *body, const char *const *allowed, cph_error_t *err)
{
    const char *k;
    json_t *v;
    char path[128];

    json_object_foreach((json_t *)body, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL && !ok; ++i)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            path[0] = '\0';
            cph_jsonptr_append(path, sizeof(path), k);
            return cph_error_set(err, "unknown_field", path, "unknown member");
        }
    }
    return 0;
}

/* body[name] as a string (NULL when absent and !required); -1 with err for a missing or non-string member. */
int cph_admin_body_string(const json_t *body, const char *name, int required, const char **out, cph_error_t *err)
{
    json_t *v = json_object_get(body, name);
    char path[80];

    snprintf(path, sizeof(path), "/%s", name);
    *out = NULL;
    if (v == NULL && !required)
        return 0;
    if (!json_is_string(v))
        return cph_error_set(err, "invalid", path, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* The role member (0 when absent and !required). */
int cph_admin_body_role(const json_t *body, int required, cph_admin_role_t *role, cph_error_t *err)
{
    const char *s;

    *role = 0;
    if (cph_admin_body_string(body, "role", required, &s, err) != 0)
        return -1;
    if (s != NULL && (*role = cph_admin_role_parse(s)) == 0)
        return cph_error_set(err, "invalid", "/role", "must be owner, editor or viewer");
    return 0;
}

/* The system codes of ids, as a JSON array. Lock held. */
json_t *cph_admin_codes_of_ids(sqlite3 *sql, const int64_t *ids, size_t n)
{
    json_t *a = json_array();
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(sql, "SELECT code FROM systems WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return a;
    for (size_t i = 0; i < n; ++i) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ids[i]);
        if (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    return a;
}

/* The codes of the systems linked to id in table (admin_account_systems / admin_token_systems). Lock held. */
json_t *cph_admin_codes_of(sqlite3 *sql, const char *q, int64_t id)
{
    json_t *a = json_array();
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    return a;
}

/*
 * The "systems" member (absent: *n = SIZE_MAX): an array of distinct existing system codes, at most
 * CPH_ADMIN_SYSTEMS_MAX. Lock held. -1 with err {invalid} at the element.
 */
int cph_admin_body_systems(sqlite3 *sql, const json_t *body, int64_t *ids, size_t *n, cph_error_t *err)
{
    json_t *a = json_object_get(body, "systems"), *v;
    sqlite3_stmt *st = NULL;
    size_t i;
    int ret = 0;

    *n = SIZE_MAX;
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > CPH_ADMIN_SYSTEMS_MAX)
        return cph_error_set(err, "invalid", "/systems", "must be an array of at most %d system codes", CPH_ADMIN_SYSTEMS_MAX);
    if (sqlite3_prepare_v2(sql, "SELECT id FROM systems WHERE code = ?1", -1, &st, NULL) != SQLITE_OK)
        return cph_error_set(err, "internal", "", "internal database error");
    *n = 0;
    json_array_foreach(a, i, v)
    {
        char path[48];
        snprintf(path, sizeof(path), "/systems/%zu", i);
        sqlite3_reset(st);
        if (!json_is_string(v) ||
            (sqlite3_bind_text(st, 1, json_string_value(v), -1, SQLITE_TRANSIENT), sqlite3_step(st)) != SQLITE_ROW) {
            ret = cph_error_set(err, "invalid", path, "must be the code of an existing system");
            break;
        }
        ids[*n] = sqlite3_column_int64(st, 0);
        for (size_t j = 0; j < *n && ids[*n] != 0; ++j)
            if (ids[j] == ids[*n])
                ids[*n] = 0; /* a duplicate: dropped */
        if (ids[*n] != 0)
            ++*n;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Replaces the links of id in table (col: account_id / token_id). Lock held. */
int cph_admin_set_systems(sqlite3 *sql, const char *table, const char *col, int64_t id, const int64_t *ids, size_t n)
{
    sqlite3_stmt *st = NULL;
    char q[160];
    int ok;

    snprintf(q, sizeof(q), "DELETE FROM %s WHERE %s = ?1", table, col);
    ok = sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK && sqlite3_bind_int64(st, 1, id) == SQLITE_OK &&
         sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    snprintf(q, sizeof(q), "INSERT INTO %s (%s, system_id) VALUES (?1, ?2)", table, col);
    for (size_t i = 0; ok && i < n; ++i) {
        ok = sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 2, ids[i]);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
        sqlite3_finalize(st);
    }
    return ok ? 0 : -1;
}

int cph_admin_begin(cph_db_t *db, cph_error_t *err)
{
    cph_db_lock(db);
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) == 0)
        return 0;
    cph_db_unlock(db);
    return -1;
}

/* COMMIT when ret is 0, else ROLLBACK; unlocks. Returns ret (or -1 when the commit failed). */
int cph_admin_end(cph_db_t *db, int ret, cph_error_t *err)
{
    if (ret == 0 && cph_db_exec(db, "COMMIT", err) != 0)
        ret = -1;
    if (ret != 0)
        cph_db_exec(db, "ROLLBACK", NULL);
    cph_db_unlock(db);
    return ret;
}

int64_t cph_admin_parse_id(const char *key)
{
    char *end;
    long long v;

    if (key == NULL || key[0] < '1' || key[0] > '9' || strlen(key) > 18)
        return 0;
    v = strtoll(key, &end, 10);
    return *end == '\0' ? (int64_t)v : 0;
}
