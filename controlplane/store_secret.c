/*
 * store_secret: the vault_secrets table (migrations/0008_integrations.sql) - the last version of every Vault KV v2
 * secret a service's credentials refer to.
 *
 * Why keep secrets in SQLite at all: a control plane restarted while Vault is sealed or unreachable must still build
 * the snapshot its data planes run, or every restart during a Vault outage would break upstream authentication. The
 * database file is 0600 (db.c) and the values leave this module only through cph_store_secret_get, which only the
 * snapshot build calls. Everything else - the audit rows written with a put or a prune, the public list, every error
 * text - carries the path, the version and the key names, never a value.
 */
#include <stdlib.h>
#include <string.h>
#include "controlplane/store.h"
#include "controlplane/store_secret.h"
#include "proto/log.h"

#define MODULE "cp/store_secret"

/* The sorted names of data's members: a new array. */
static json_t *key_names(const json_t *data)
{
    json_t *keys = json_array(), *v;
    const char *key;

    if (keys == NULL)
        cph_fatal(MODULE, "out of memory");
    json_object_foreach((json_t *)data, key, v)
    {
        size_t n = json_array_size(keys), i = 0;
        while (i != n && strcmp(json_string_value(json_array_get(keys, i)), key) < 0)
            ++i;
        if (json_array_insert_new(keys, i, json_string(key)) != 0)
            cph_fatal(MODULE, "out of memory");
    }
    return keys;
}

/* Runs a SELECT whose first column is a string, into a new array of them; NULL with err {internal}. */
static json_t *string_column(cph_db_t *db, const char *sql, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *out;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) {
        cph_store_internal(db, err, "prepare secret paths");
        return NULL;
    }
    if ((out = json_array()) == NULL)
        cph_fatal(MODULE, "out of memory");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(out, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(out);
        cph_store_internal(db, err, "secret paths");
        return NULL;
    }
    return out;
}

#define REFERENCED_PATHS                                                                                                           \
    "SELECT DISTINCT json_extract(credentials, '$.vault_path') AS p FROM services "                                                \
    "WHERE credentials IS NOT NULL AND json_type(credentials, '$.vault_path') = 'text'"

json_t *cph_store_secret_paths(cph_db_t *db, cph_error_t *err)
{
    return string_column(db, REFERENCED_PATHS " ORDER BY p", err);
}

/* {"path","version","keys","fetched_at"} of the row (no values). */
static json_t *public_row(sqlite3_stmt *st)
{
    json_t *data = cph_store_column_json(st, 2), *out;

    out = json_pack("{s:s, s:I, s:o, s:s}", "path", (const char *)sqlite3_column_text(st, 0), "version",
                    (json_int_t)sqlite3_column_int64(st, 1), "keys", key_names(json_is_object(data) ? data : NULL), "fetched_at",
                    (const char *)sqlite3_column_text(st, 3));
    json_decref(data);
    return out;
}

json_t *cph_store_secret_get(cph_db_t *db, const char *path, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *out = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT path, version, data, fetched_at FROM vault_secrets WHERE path = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        cph_store_internal(db, err, "prepare secret");
        return NULL;
    }
    sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 2);
        json_t *data = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL) : NULL;
        if (!json_is_object(data)) {
            json_decref(data);
            data = json_object();
        }
        out = json_pack("{s:s, s:I, s:o, s:s}", "path", (const char *)sqlite3_column_text(st, 0), "version",
                        (json_int_t)sqlite3_column_int64(st, 1), "data", data, "fetched_at",
                        (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        cph_error_set(err, "not_found", "", "the secret has not been read from Vault yet");
    else if (rc != SQLITE_ROW)
        cph_store_internal(db, err, "secret");
    return out;
}

/* {"path","version","keys"} of the stored row at path (for the audit's before), or NULL when there is none. */
static json_t *audit_view(cph_db_t *db, const char *path)
{
    cph_error_t ignored;
    json_t *row = cph_store_secret_get(db, path, &ignored), *out;

    if (row == NULL)
        return NULL;
    out = json_pack("{s:O, s:O, s:o}", "path", json_object_get(row, "path"), "version", json_object_get(row, "version"), "keys",
                    key_names(json_object_get(row, "data")));
    json_decref(row);
    return out;
}

static int all_strings(const json_t *data)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)data, key, v)
    {
        if (!json_is_string(v))
            return 0;
    }
    return 1;
}

int cph_store_secret_put(cph_db_t *db, const char *path, int64_t version, const json_t *data, cph_db_change_t *change,
                         cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];

    if (path == NULL || path[0] == '\0' || strlen(path) > 256 || version < 0)
        return cph_error_set(err, "invalid", "", "a secret needs a path of 1 to 256 bytes and a version >= 0");
    if (!json_is_object(data))
        return cph_error_set(err, "invalid", "", "a secret's data must be an object");
    if (!all_strings(data))
        return cph_error_set(err, "invalid", "", "a secret's values must all be strings");
    change->before = audit_view(db, path);
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "INSERT INTO vault_secrets (path, version, data, fetched_at) VALUES (?1, ?2, ?3, ?4) "
                           "ON CONFLICT(path) DO UPDATE SET version = excluded.version, data = excluded.data, "
                           "fetched_at = excluded.fetched_at",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare secret put");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, version);
    cph_store_bind_json(st, 3, data);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        sqlite3_finalize(st);
        return cph_store_internal(db, err, "secret put");
    }
    sqlite3_finalize(st);
    change->action = change->before != NULL ? "update" : "create";
    change->entity_type = "vault_secret";
    change->entity_id = 0;
    change->entity_name = NULL;
    change->after = json_pack("{s:s, s:I, s:o}", "path", path, "version", (json_int_t)version, "keys", key_names(data));
    return 0;
}

int cph_store_secret_prune(cph_db_t *db, size_t *deleted, cph_db_change_t *change, cph_error_t *err)
{
    json_t *gone = string_column(db, "SELECT path FROM vault_secrets WHERE path NOT IN (" REFERENCED_PATHS ") ORDER BY path", err);

    *deleted = 0;
    if (gone == NULL)
        return -1;
    if (json_array_size(gone) != 0 &&
        cph_db_exec(db, "DELETE FROM vault_secrets WHERE path NOT IN (" REFERENCED_PATHS ")", err) != 0) {
        json_decref(gone);
        return -1;
    }
    *deleted = json_array_size(gone);
    if (*deleted == 0) {
        json_decref(gone);
        return 0;
    }
    change->action = "delete";
    change->entity_type = "vault_secret";
    change->entity_id = 0;
    change->entity_name = NULL;
    change->before = json_pack("{s:o}", "paths", gone);
    return 0;
}

json_t *cph_store_secret_list_public(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, "SELECT path, version, data, fetched_at FROM vault_secrets ORDER BY path", public_row, err);
}
