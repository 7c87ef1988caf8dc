/*
 * store_issuer: the issuers table - external token issuers (an OIDC provider such as Keycloak or Auth0).
 *
 * What the admin writes (name, iss, JWKS URL, audience, system, claim names, refresh period) goes through the generic
 * admin handler like every other entity; what the JWKS thread learns (the keys, when it fetched them, what went wrong
 * last) is written by it alone: the keys through cph_db_write (they are in the snapshot, so they must bump it), the
 * status through a plain statement (it is not). The keys are stored already converted to the snapshot's key form
 * (sync_jwks.c), so the snapshot carries them as they are; an issuer without keys is left out of the snapshot.
 *
 * The iss may not be the control plane's own (a token would then be verified by two key sets), and iss values are
 * unique (UNIQUE column), so a token's iss always picks at most one issuer.
 */
#include <stdio.h>
#include <string.h>
#include "controlplane/ident.h"
#include "controlplane/settings.h"
#include "controlplane/store_issuer.h"

#define SELECT_ISSUER                                                                                                              \
    "SELECT i.id, i.name, i.issuer, i.jwks_url, i.audience, y.code, i.roles_claim, i.groups_claim, i.refresh_s, "                  \
    "COALESCE(json_array_length(i.jwks), 0), i.fetched_at, i.last_error, i.created_at, i.updated_at FROM issuers i "               \
    "JOIN systems y ON y.id = i.system_id "
#define TEXT_MAX 256
#define ERROR_MAX 256

const cph_store_ops_t cph_store_issuer_ops = {
    "issuer",
    cph_store_issuer_normalize,
    cph_store_issuer_list,
    cph_store_issuer_get,
    cph_store_issuer_insert,
    cph_store_issuer_update,
    cph_store_issuer_delete,
};

static int min_refresh_s = CPH_ISSUER_REFRESH_MIN_S;

void cph_store_issuer_set_min_refresh(int seconds)
{
    min_refresh_s = seconds < 1 ? 1 : seconds > CPH_ISSUER_REFRESH_MIN_S ? CPH_ISSUER_REFRESH_MIN_S : seconds;
}

int cph_store_issuer_min_refresh(void)
{
    return min_refresh_s;
}

/* ---------------------------------------------------------------- normalisation */

/* 1..max bytes of printable ASCII (space allowed unless no_space). */
static int printable(const char *s, size_t len, size_t max, int no_space)
{
    if (len < 1 || len > max || strlen(s) != len)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < (no_space ? 0x21 : 0x20) || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* A string member of 1..max printable bytes into *out (dflt when absent; null only when nullable, *out NULL). */
static int get_text(const json_t *obj, const char *member, int required, int nullable, const char *dflt, const char **out,
                    cph_error_t *err)
{
    const json_t *v = json_object_get(obj, member);
    char path[80];

    snprintf(path, sizeof(path), "/%s", member);
    *out = dflt;
    if (v == NULL)
        return required ? cph_error_set(err, "missing_field", path, "required") : 0;
    if (nullable && json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v) || !printable(json_string_value(v), json_string_length(v), TEXT_MAX, 0))
        return cph_error_set(err, "invalid", path, "must be %s1 to %d printable ASCII characters", nullable ? "null or " : "",
                             TEXT_MAX);
    *out = json_string_value(v);
    return 0;
}

/* http://HOST... or https://HOST...: printable, no space, a non-empty host, at most CPH_ISSUER_URL_MAX bytes. */
static int check_url(const json_t *obj, const char **out, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, "jwks_url");
    const char *s, *host;

    if (v == NULL)
        return cph_error_set(err, "missing_field", "/jwks_url", "required");
    s = json_string_value(v);
    host = s == NULL ? NULL : strncmp(s, "https://", 8) == 0 ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    if (host == NULL || !printable(s, json_string_length(v), CPH_ISSUER_URL_MAX, 1) || host[0] == '\0' || host[0] == '/' ||
        host[0] == ':' || host[0] == '?' || host[0] == '#')
        return cph_error_set(err, "invalid", "/jwks_url", "must be an http:// or https:// URL with a host, at most %d characters",
                             CPH_ISSUER_URL_MAX);
    *out = s;
    return 0;
}

static int check_refresh(const json_t *obj, json_int_t *out, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, "refresh_s");

    *out = CPH_ISSUER_REFRESH_DEFAULT_S;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min_refresh_s || json_integer_value(v) > CPH_ISSUER_REFRESH_MAX_S)
        return cph_error_set(err, "invalid", "/refresh_s", "must be an integer from %d to %d", min_refresh_s,
                             CPH_ISSUER_REFRESH_MAX_S);
    *out = json_integer_value(v);
    return 0;
}

json_t *cph_store_issuer_normalize(const json_t *in, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"name",         "issuer",    "jwks_url", "audience",   "system",     "roles_claim",
                                          "groups_claim", "refresh_s", "keys",     "fetched_at", "last_error", NULL};
    const char *name = NULL, *iss = NULL, *url = NULL, *aud = NULL, *system = NULL, *roles = NULL, *groups = NULL;
    json_t *copy, *out = NULL;
    json_int_t refresh;

    if ((copy = cph_store_writable_copy(in, "issuer", err)) == NULL)
        return NULL;
    if (cph_ident_check_members(copy, ALLOWED, err) != 0 ||
        cph_ident_get_string(copy, "name", CPH_IDENT_NAME, 1, &name, err) != 0 ||
        get_text(copy, "issuer", 1, 0, NULL, &iss, err) != 0 || check_url(copy, &url, err) != 0 ||
        get_text(copy, "audience", 0, 1, NULL, &aud, err) != 0 ||
        cph_ident_get_string(copy, "system", CPH_IDENT_CODE, 1, &system, err) != 0 ||
        get_text(copy, "roles_claim", 0, 0, "roles", &roles, err) != 0 ||
        get_text(copy, "groups_claim", 0, 0, "groups", &groups, err) != 0 || check_refresh(copy, &refresh, err) != 0)
        goto Exit;
    if (strcmp(iss, cph_settings_auth()->issuer) == 0) {
        cph_error_set(err, "invalid", "/issuer", "conflict: this is the control plane's own issuer (--jwt-issuer)");
        goto Exit;
    }
    out = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:s, s:I}", "name", name, "issuer", iss, "jwks_url", url, "audience", aud,
                    "system", system, "roles_claim", roles, "groups_claim", groups, "refresh_s", refresh);
    if (aud == NULL)
        json_object_set_new(out, "audience", json_null());
Exit:
    json_decref(copy);
    return out;
}

/* ---------------------------------------------------------------- rows */

static json_t *row_to_json(sqlite3_stmt *st)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:s, s:s}", "id",
                  (json_int_t)sqlite3_column_int64(st, 0), "name", (const char *)sqlite3_column_text(st, 1), "issuer",
                  (const char *)sqlite3_column_text(st, 2), "jwks_url", (const char *)sqlite3_column_text(st, 3), "audience",
                  cph_ident_column_text(st, 4), "system", (const char *)sqlite3_column_text(st, 5), "roles_claim",
                  (const char *)sqlite3_column_text(st, 6), "groups_claim", (const char *)sqlite3_column_text(st, 7), "refresh_s",
                  (json_int_t)sqlite3_column_int64(st, 8), "keys", (json_int_t)sqlite3_column_int64(st, 9), "fetched_at",
                  cph_ident_column_text(st, 10), "last_error", cph_ident_column_text(st, 11), "created_at",
                  (const char *)sqlite3_column_text(st, 12), "updated_at", (const char *)sqlite3_column_text(st, 13));

    return o != NULL ? o : json_object();
}

json_t *cph_store_issuer_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_ISSUER "ORDER BY i.name", row_to_json, err);
}

json_t *cph_store_issuer_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_ident_get(db, SELECT_ISSUER "WHERE ", "i.id", "i.name", row_to_json, "issuer", key, err);
}

/* {conflict} at /name when another issuer (not id) has o's name: SQLite's UNIQUE error does not say which column. */
static int name_taken(cph_db_t *db, const json_t *o, int64_t id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, yes = 0;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT EXISTS (SELECT 1 FROM issuers WHERE name = ?1 AND id <> ?2)", -1, &st,
                           NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare check");
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(o, "name")), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        yes = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return cph_store_internal(db, err, "check");
    return yes ? cph_error_set(err, "conflict", "/name", "an issuer with this name already exists") : 0;
}

/* Binds ?1 name .. ?8 refresh_s, ?9 system_id, ?10 now (?11 id) and steps. */
static int write_row(cph_db_t *db, const char *sql, int64_t id, const json_t *o, cph_error_t *err)
{
    static const char *const TEXT[] = {"name", "issuer", "jwks_url", "audience", NULL, "roles_claim", "groups_claim"};
    sqlite3_stmt *st = NULL;
    int64_t sid = 0;
    char now[32];

    if (name_taken(db, o, id, err) != 0 ||
        cph_ident_system_id(db, json_string_value(json_object_get(o, "system")), "/system", &sid, err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    for (int i = 0; i != 7; ++i)
        if (TEXT[i] != NULL)
            cph_ident_bind_text(st, i + 1, json_string_value(json_object_get(o, TEXT[i])));
    sqlite3_bind_int64(st, 8, json_integer_value(json_object_get(o, "refresh_s")));
    sqlite3_bind_int64(st, 9, sid);
    sqlite3_bind_text(st, 10, now, -1, SQLITE_TRANSIENT);
    if (id != 0)
        sqlite3_bind_int64(st, 11, id);
    return cph_ident_step(db, st, "issuer", "/issuer", "an issuer with this iss already exists", id != 0, err);
}

int cph_store_issuer_insert(cph_db_t *db, const json_t *obj, int64_t *id, cph_error_t *err)
{
    if (cph_ident_refuse(db, "SELECT COUNT(*) >= ?1 FROM issuers WHERE ?2 = 0", CPH_ISSUERS_MAX, 0, "",
                         "there are already 16 issuers", err) != 0 ||
        write_row(db,
                  "INSERT INTO issuers (name, issuer, jwks_url, audience, roles_claim, groups_claim, refresh_s, system_id, "
                  "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?6, ?7, ?8, ?9, ?10, ?10)",
                  0, obj, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_store_issuer_update(cph_db_t *db, int64_t id, const json_t *obj, cph_error_t *err)
{
    /* keys fetched for another URL or iss are not this issuer's any more */
    return write_row(db,
                     "UPDATE issuers SET jwks = CASE WHEN issuer = ?2 AND jwks_url = ?3 THEN jwks END, "
                     "fetched_at = CASE WHEN issuer = ?2 AND jwks_url = ?3 THEN fetched_at END, name = ?1, issuer = ?2, "
                     "jwks_url = ?3, audience = ?4, roles_claim = ?6, groups_claim = ?7, refresh_s = ?8, system_id = ?9, "
                     "updated_at = ?10 WHERE id = ?11",
                     id, obj, err);
}

int cph_store_issuer_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "issuers", "issuer", NULL, id, err);
}

/* ---------------------------------------------------------------- the snapshot and the JWKS thread */

static json_t *snapshot_row(sqlite3_stmt *st)
{
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:o}", "name", (const char *)sqlite3_column_text(st, 0), "issuer",
                          (const char *)sqlite3_column_text(st, 1), "audience", cph_ident_column_text(st, 2), "system",
                          (const char *)sqlite3_column_text(st, 3), "roles_claim", (const char *)sqlite3_column_text(st, 4),
                          "groups_claim", (const char *)sqlite3_column_text(st, 5), "keys", cph_store_column_json(st, 6));

    return o != NULL ? o : json_object();
}

json_t *cph_store_issuer_snapshot(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db,
                          "SELECT i.name, i.issuer, i.audience, y.code, i.roles_claim, i.groups_claim, i.jwks FROM issuers i "
                          "JOIN systems y ON y.id = i.system_id WHERE json_array_length(i.jwks) > 0 ORDER BY i.name",
                          snapshot_row, err);
}

static json_t *sync_row(sqlite3_stmt *st)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:I, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                  (const char *)sqlite3_column_text(st, 1), "jwks_url", (const char *)sqlite3_column_text(st, 2), "refresh_s",
                  (json_int_t)sqlite3_column_int64(st, 3), "updated_at", (const char *)sqlite3_column_text(st, 4));

    if (o == NULL)
        return json_object();
    json_object_set_new(o, "jwks", sqlite3_column_type(st, 5) == SQLITE_NULL ? json_null() : cph_store_column_json(st, 5));
    return o;
}

json_t *cph_store_issuer_sync_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, "SELECT id, name, jwks_url, refresh_s, updated_at, jwks FROM issuers ORDER BY id", sync_row, err);
}

int cph_store_issuer_set_keys(cph_db_t *db, int64_t id, const char *jwks_url, const char *updated_at, const json_t *keys,
                              cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "UPDATE issuers SET jwks = ?1, fetched_at = ?2, last_error = NULL WHERE id = ?3 AND jwks_url = ?4 "
                           "AND updated_at = ?5",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare keys");
    cph_db_now(now, sizeof(now));
    cph_store_bind_json(st, 1, keys);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_text(st, 4, jwks_url, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, updated_at, -1, SQLITE_TRANSIENT);
    if (cph_store_step_write(db, st, "issuer", 1, err) != 0)
        return strcmp(err->code, "not_found") == 0 ? cph_error_set(err, "conflict", "", "the issuer changed during the fetch") : -1;
    return 0;
}

int cph_store_issuer_set_status(cph_db_t *db, int64_t id, const char *error, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char now[32], msg[ERROR_MAX + 1];

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           error == NULL ? "UPDATE issuers SET fetched_at = ?1, last_error = NULL WHERE id = ?2"
                                         : "UPDATE issuers SET last_error = ?1 WHERE id = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare status");
    cph_db_now(now, sizeof(now));
    snprintf(msg, sizeof(msg), "%s", error != NULL ? error : now);
    sqlite3_bind_text(st, 1, msg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    return cph_store_step_write(db, st, "issuer", 0, err);
}
