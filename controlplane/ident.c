/*
 * ident: validation and lookup helpers shared by the identity stores.
 *
 * The identity objects are not part of snapshot schema v1, so proto/ has no validator for them: their rules live
 * here, strict in the same way (unknown members refused, exact types, bounded lengths and lists, NUL refused even
 * when a caller bypasses the admin API's own NUL check), every error pointing at the offending value. The lookups
 * turn the API's codes and names into row ids, each with its own 400 code, so a typo in a role name is a clear
 * "unknown_role at /roles/2" and never a foreign-key failure.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "controlplane/ident.h"

#define MODULE "cp/ident"

int cph_ident_check_members(const json_t *obj, const char *const *allowed, cph_error_t *err)
{
    const char *k;
    json_t *v;
    char path[256];

    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i;
        for (i = 0; allowed[i] != NULL && strcmp(allowed[i], k) != 0; ++i)
            ;
        if (allowed[i] == NULL) {
            path[0] = '\0';
            cph_jsonptr_append(path, sizeof(path), k);
            return cph_error_set(err, "unknown_field", path, "unknown member");
        }
    }
    return 0;
}

static int char_ok(cph_ident_kind_t kind, unsigned char c)
{
    int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    int upper = c >= 'A' && c <= 'Z';

    switch (kind) {
    case CPH_IDENT_CODE:
        return alnum || c == '_' || c == '-';
    case CPH_IDENT_NAME:
        return alnum || upper || c == '_' || c == '-' || c == '.';
    case CPH_IDENT_USERNAME:
        return alnum || upper || strchr("_-.@+", c) != NULL;
    case CPH_IDENT_EMAIL:
        return c > ' ' && c != 0x7f;
    case CPH_IDENT_TEXT:
        return c >= ' ' && c != 0x7f;
    }
    return 0;
}

static const char *const KIND_TEXT[] = {
    "a code must be 1 to 64 of [a-z0-9_-]",
    "a name must be 1 to 64 of [A-Za-z0-9_.-]",
    "a username must be 1 to 128 of [A-Za-z0-9_.@+-]",
    "an email must be 3 to 254 bytes, local@domain, without spaces",
    "a display name must be 1 to 200 bytes without control characters",
};

int cph_ident_check_string(const json_t *v, cph_ident_kind_t kind, const char *path, cph_error_t *err)
{
    static const size_t MAX[] = {64, 64, 128, 254, 200};
    const char *s, *at;
    size_t len;

    if (!json_is_string(v))
        return cph_error_set(err, "invalid", path, "%s", KIND_TEXT[kind]);
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0 || len > MAX[kind] || strlen(s) != len)
        return cph_error_set(err, "invalid", path, "%s", KIND_TEXT[kind]);
    for (size_t i = 0; i < len; ++i)
        if (!char_ok(kind, (unsigned char)s[i]))
            return cph_error_set(err, "invalid", path, "%s", KIND_TEXT[kind]);
    if (kind == CPH_IDENT_EMAIL &&
        (len < 3 || (at = strchr(s, '@')) == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL))
        return cph_error_set(err, "invalid", path, "%s", KIND_TEXT[kind]);
    return 0;
}

static void member_path(char *path, size_t cap, const char *member)
{
    path[0] = '\0';
    cph_jsonptr_append(path, cap, member);
}

int cph_ident_get_string(const json_t *obj, const char *member, cph_ident_kind_t kind, int required, const char **out,
                         cph_error_t *err)
{
    json_t *v = json_object_get(obj, member);
    char path[128];

    member_path(path, sizeof(path), member);
    *out = NULL;
    if (v == NULL || (json_is_null(v) && !required)) {
        if (required)
            return cph_error_set(err, "missing_field", path, "required");
        return 0;
    }
    if (cph_ident_check_string(v, kind, path, err) != 0)
        return -1;
    *out = json_string_value(v);
    return 0;
}

int cph_ident_get_bool(const json_t *obj, const char *member, int dflt, int *out, cph_error_t *err)
{
    json_t *v = json_object_get(obj, member);
    char path[128];

    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) {
        member_path(path, sizeof(path), member);
        return cph_error_set(err, "invalid", path, "must be true or false");
    }
    *out = json_is_true(v);
    return 0;
}

/* The list member as an array (borrowed) or NULL when absent; path receives "/<member>". */
static int get_list(const json_t *obj, const char *member, char *path, size_t cap, json_t **list, cph_error_t *err)
{
    member_path(path, cap, member);
    *list = json_object_get(obj, member);
    if (*list == NULL)
        return 0;
    if (!json_is_array(*list))
        return cph_error_set(err, "invalid", path, "must be an array");
    if (json_array_size(*list) > CPH_IDENT_LIST_MAX)
        return cph_error_set(err, "invalid", path, "at most %d items", CPH_IDENT_LIST_MAX);
    return 0;
}

int cph_ident_get_names(const json_t *obj, const char *member, cph_ident_kind_t kind, json_t **out, cph_error_t *err)
{
    json_t *list, *item;
    char path[128];
    size_t i, plen;

    *out = NULL;
    if (get_list(obj, member, path, sizeof(path), &list, err) != 0)
        return -1;
    *out = json_array();
    plen = strlen(path);
    json_array_foreach(list, i, item)
    {
        path[plen] = '\0';
        cph_jsonptr_append_index(path, sizeof(path), i);
        if (cph_ident_check_string(item, kind, path, err) != 0)
            goto Error;
        for (size_t j = 0; j < i; ++j)
            if (json_equal(json_array_get(list, j), item)) {
                cph_error_set(err, "duplicate", path, "listed twice");
                goto Error;
            }
        json_array_append(*out, item);
    }
    return 0;
Error:
    json_decref(*out);
    *out = NULL;
    return -1;
}

/* One {"system", "name"} item at path into a new normalised object. */
static json_t *get_ref(const json_t *item, const char *path, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"system", "name", NULL};
    const char *code, *name;
    cph_error_t sub;

    if (!json_is_object(item)) {
        cph_error_set(err, "invalid", path, "must be an object {\"system\", \"name\"}");
        return NULL;
    }
    if (cph_ident_check_members(item, ALLOWED, &sub) != 0 ||
        cph_ident_get_string(item, "system", CPH_IDENT_CODE, 1, &code, &sub) != 0 ||
        cph_ident_get_string(item, "name", CPH_IDENT_NAME, 1, &name, &sub) != 0) {
        *err = sub;
        size_t plen = strlen(path), slen = strlen(sub.path); /* sub.path is relative to the item */
        if (plen + slen < sizeof(err->path)) {
            memcpy(err->path, path, plen);
            memcpy(err->path + plen, sub.path, slen + 1);
        }
        return NULL;
    }
    return json_pack("{s:s, s:s}", "system", code, "name", name);
}

int cph_ident_get_refs(const json_t *obj, const char *member, json_t **out, cph_error_t *err)
{
    json_t *list, *item, *ref;
    char path[128];
    size_t i, plen;

    *out = NULL;
    if (get_list(obj, member, path, sizeof(path), &list, err) != 0)
        return -1;
    *out = json_array();
    plen = strlen(path);
    json_array_foreach(list, i, item)
    {
        path[plen] = '\0';
        cph_jsonptr_append_index(path, sizeof(path), i);
        if ((ref = get_ref(item, path, err)) == NULL)
            goto Error;
        for (size_t j = 0; j < i; ++j)
            if (json_equal(json_array_get(*out, j), ref)) {
                json_decref(ref);
                cph_error_set(err, "duplicate", path, "listed twice");
                goto Error;
            }
        json_array_append_new(*out, ref);
    }
    return 0;
Error:
    json_decref(*out);
    *out = NULL;
    return -1;
}

/* ---------------------------------------------------------------- lookups and writes */

/* Runs sql bound to (?1 int a, ?2 text s) and reads one id. Returns 1 found, 0 none, -1 error. */
static int lookup_id(cph_db_t *db, const char *sql, int64_t a, const char *s, int64_t *id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare lookup");
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_text(st, 2, s, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "lookup");
}

int cph_ident_system_id(cph_db_t *db, const char *code, const char *path, int64_t *id, cph_error_t *err)
{
    int found = lookup_id(db, "SELECT id FROM systems WHERE code = ?2", 0, code, id, err);

    if (found == 0)
        return cph_error_set(err, "unknown_system", path, "no system with this code exists");
    return found > 0 ? 0 : -1;
}

int cph_ident_scoped_id(cph_db_t *db, const char *table, int64_t system_id, const char *name, const char *path, int64_t *id,
                        cph_error_t *err)
{
    int is_role = strcmp(table, "roles") == 0;
    int found = lookup_id(db,
                          is_role ? "SELECT id FROM roles WHERE system_id = ?1 AND name = ?2"
                                  : "SELECT id FROM groups WHERE system_id = ?1 AND name = ?2",
                          system_id, name, id, err);

    if (found == 0)
        return cph_error_set(err, is_role ? "unknown_role" : "unknown_group", path, "no %s with this name exists in the system",
                             is_role ? "role" : "group");
    return found > 0 ? 0 : -1;
}

int cph_ident_exec_ids(cph_db_t *db, const char *sql, int64_t a, int64_t b, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare link");
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "link");
}

int cph_ident_link_refs(cph_db_t *db, const json_t *obj, int64_t owner, const char *const insert[2], cph_error_t *err)
{
    static const char *const MEMBER[] = {"roles", "groups"};
    json_t *v;
    size_t i;
    char path[64];
    int64_t sid, xid;

    for (int m = 0; m < 2; ++m) {
        json_array_foreach(json_object_get(obj, MEMBER[m]), i, v)
        {
            snprintf(path, sizeof(path), "/%s/%zu", MEMBER[m], i);
            if (cph_ident_system_id(db, json_string_value(json_object_get(v, "system")), path, &sid, err) != 0 ||
                cph_ident_scoped_id(db, MEMBER[m], sid, json_string_value(json_object_get(v, "name")), path, &xid, err) != 0 ||
                cph_ident_exec_ids(db, insert[m], owner, xid, err) != 0)
                return -1;
        }
    }
    return 0;
}

int cph_ident_refuse(cph_db_t *db, const char *sql, int64_t a, int64_t b, const char *path, const char *msg, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, yes = 0;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare check");
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        yes = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return cph_store_internal(db, err, "check");
    return yes ? cph_error_set(err, "conflict", path, "%s", msg) : 0;
}

int cph_ident_step(cph_db_t *db, sqlite3_stmt *st, const char *entity, const char *conflict_path, const char *conflict_msg,
                   int expect_row, cph_error_t *err)
{
    int rc = sqlite3_step(st), xrc = sqlite3_extended_errcode(cph_db_handle(db));

    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (xrc == SQLITE_CONSTRAINT_UNIQUE)
            return cph_error_set(err, "conflict", conflict_path, "%s", conflict_msg);
        return cph_store_internal(db, err, "write");
    }
    if (expect_row && sqlite3_changes(cph_db_handle(db)) == 0)
        return cph_error_set(err, "not_found", "", "no such %s", entity);
    return 0;
}

/* One row of "<select><where>" with ?1 = id (text1 NULL) or ?1 = text1 (length len1) and ?2 = text2. 1 found, 0, -1. */
static int get_row(cph_db_t *db, const char *select, const char *where, int64_t id, const char *text1, size_t len1,
                   const char *text2, cph_store_row_fn row, json_t **out, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char sql[2048];
    int rc;

    snprintf(sql, sizeof(sql), "%s%s", select, where);
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare get");
    if (text1 == NULL)
        sqlite3_bind_int64(st, 1, id);
    else
        sqlite3_bind_text(st, 1, text1, (int)len1, SQLITE_TRANSIENT);
    if (text2 != NULL)
        sqlite3_bind_text(st, 2, text2, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *out = row(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : cph_store_internal(db, err, "get");
}

json_t *cph_ident_get(cph_db_t *db, const char *select, const char *id_col, const char *name_col, cph_store_row_fn row,
                      const char *entity, const char *key, cph_error_t *err)
{
    json_t *out = NULL;
    char where[128];
    int64_t id;
    int found = 0;

    snprintf(where, sizeof(where), "%s = ?1", id_col);
    if (cph_store_parse_id(key, &id) == 0 && (found = get_row(db, select, where, id, NULL, 0, NULL, row, &out, err)) != 0)
        return out;
    snprintf(where, sizeof(where), "%s = ?1", name_col);
    if (found == 0 && (found = get_row(db, select, where, 0, key, strlen(key), NULL, row, &out, err)) == 0)
        cph_error_set(err, "not_found", "", "no such %s", entity);
    return out;
}

json_t *cph_ident_get_scoped(cph_db_t *db, const char *select, const char *id_col, const char *code_col, const char *name_col,
                             cph_store_row_fn row, const char *entity, const char *key, cph_error_t *err)
{
    const char *colon = strchr(key, ':');
    json_t *out = NULL;
    char where[128];
    int64_t id;
    int found;

    if (colon == NULL && cph_store_parse_id(key, &id) == 0) {
        snprintf(where, sizeof(where), "%s = ?1", id_col);
        found = get_row(db, select, where, id, NULL, 0, NULL, row, &out, err);
    } else if (colon != NULL) {
        snprintf(where, sizeof(where), "%s = ?1 AND %s = ?2", code_col, name_col);
        found = get_row(db, select, where, 0, key, (size_t)(colon - key), colon + 1, row, &out, err);
    } else {
        found = 0;
    }
    if (found == 0)
        cph_error_set(err, "not_found", "", "no such %s (address it by id or as <system>:<name>)", entity);
    return out;
}

void cph_ident_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s != NULL)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, idx);
}

json_t *cph_ident_column_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);

    return s != NULL ? json_string(s) : json_null();
}

/* ---------------------------------------------------------------- times */

/* n digits of s as a number, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int cph_ident_parse_time(const char *s, char *out, size_t cap)
{
    struct tm tm = {0}, back;
    int Y = digits(s, 4), M, D, h, m, sec, ms = 0, off = 0;
    const char *p;
    time_t t;

    if (strlen(s) < 20 || Y < 1970 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return -1;
    M = digits(s + 5, 2), D = digits(s + 8, 2), h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (M < 1 || M > 12 || D < 1 || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59)
        return -1;
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        for (++p; *p >= '0' && *p <= '9'; ++p, ++n)
            if (n < 3)
                ms = ms * 10 + (*p - '0');
        if (n == 0 || n > 9)
            return -1;
        for (; n < 3; ++n)
            ms *= 10;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' && digits(p + 1, 2) >= 0 && digits(p + 1, 2) <= 23 &&
               digits(p + 4, 2) >= 0 && digits(p + 4, 2) <= 59) {
        off = (digits(p + 1, 2) * 60 + digits(p + 4, 2)) * 60 * (*p == '-' ? -1 : 1);
    } else {
        return -1;
    }
    tm.tm_year = Y - 1900, tm.tm_mon = M - 1, tm.tm_mday = D, tm.tm_hour = h, tm.tm_min = m, tm.tm_sec = sec;
    t = timegm(&tm);
    if (gmtime_r(&t, &back) == NULL || back.tm_mday != D || back.tm_mon != M - 1) /* 2026-02-30 normalises: refused */
        return -1;
    t -= off;
    if (gmtime_r(&t, &back) == NULL || back.tm_year + 1900 < 1970 || back.tm_year + 1900 > 9999)
        return -1;
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", back.tm_year + 1900, back.tm_mon + 1, back.tm_mday, back.tm_hour,
             back.tm_min, back.tm_sec, ms);
    return 0;
}
