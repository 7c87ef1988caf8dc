/*
 * history: what a snapshot version is made of, and going back to it.
 *
 * A snapshot body is built from the rows, so pushing an old body back to the data planes is not a rollback: the next
 * write would rebuild from today's rows and undo it. Instead every snapshots row also keeps "state", the configuration
 * rows it was built from (cph_history_export, called by the write path for every version), and a rollback is an
 * ordinary write (cph_db_write) whose change restores those rows; the write path then builds, validates, stores and
 * publishes the new version as for any other write, so the data planes follow it and the audit records it.
 *
 * Only configuration is exported and restored (TABLES below). Principals and credentials - users, api keys, their
 * links, refresh tokens, revocations, signing keys, Vault secrets - and the admin, audit and bookkeeping tables are
 * never touched, so a rollback never resurrects a revoked key, a deleted user or an old password. That is also why
 * the restore is a diff and not "delete everything, insert the old rows": a user's membership in a role that both
 * versions have must survive, and deleting the role would either be refused (ON DELETE RESTRICT) or, for the links
 * that cascade, silently drop it. So: rows of the state are upserted by id (first freeing their unique names, which
 * two rows may have swapped since), then the rows the state lacks are deleted, children first, all with foreign keys
 * deferred to the commit. A principal that holds something the state lacks is refused up front with a 409 naming
 * both; a final PRAGMA foreign_key_check makes sure nothing dangles.
 *
 * Two columns are not the admin's to roll back: the targets of a service discovered through Consul (what Consul says
 * now wins; the sync thread would rewrite them anyway) and an issuer's fetched keys while its JWKS URL is unchanged.
 *
 * The diff (cph_history_diff) compares two JSON documents - two snapshot bodies, or an audit row's before and after -
 * and matches the items of arrays of named objects by name, so one route inserted in the middle is one change.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/history.h"
#include "proto/log.h"

#define MODULE "cp/history"
#define SQL_MAX 4096
#define COLUMNS_MAX 32
#define DIFF_DEPTH_MAX 64
#define PATH_MAX_LEN 1024

typedef struct st_table_t {
    const char *name;
    int link;                /* a link table: its columns are its key; otherwise the key is "id" */
    const char *placeholder; /* frees the row's unique columns before the upserts, or NULL */
} table_t;

/* Parents first: the export order and the upsert order; deletes run in reverse. */
static const table_t TABLES[] = {
    {"systems", 0, "code = '#rollback#' || id"},
    {"roles", 0, "name = '#rollback#' || id"},
    {"groups", 0, "name = '#rollback#' || id"},
    {"group_roles", 1, NULL},
    {"services", 0, "name = '#rollback#' || id"},
    {"routes", 0, "name = '#rollback#' || id"},
    {"endpoints", 0, "path = '#rollback#' || id"},
    {"endpoint_roles", 1, NULL},
    {"endpoint_groups", 1, NULL},
    {"issuers", 0, "name = '#rollback#' || id, issuer = '#rollback#' || id"},
};
#define NUM_TABLES (sizeof(TABLES) / sizeof(TABLES[0]))

/* Columns that keep today's value on a restored row that exists now (the upsert's DO UPDATE expression). */
static const struct st_keep_t {
    const char *table, *column, *expr;
} KEEP[] = {
    {"services", "targets",
     "CASE WHEN \"services\".consul IS NOT NULL AND excluded.consul IS NOT NULL THEN \"services\".targets ELSE excluded.targets "
     "END"},
    {"issuers", "jwks", "CASE WHEN \"issuers\".jwks_url = excluded.jwks_url THEN \"issuers\".jwks ELSE excluded.jwks END"},
    {"issuers", "fetched_at",
     "CASE WHEN \"issuers\".jwks_url = excluded.jwks_url THEN \"issuers\".fetched_at ELSE excluded.fetched_at END"},
    {"issuers", "last_error",
     "CASE WHEN \"issuers\".jwks_url = excluded.jwks_url THEN \"issuers\".last_error ELSE excluded.last_error END"},
};

/*
 * What a principal may hold that lives in a configuration table: each query finds one holder of a row the state
 * (?1, the state's rows of that table) lacks, as (kind, holder, thing, thing name, its system or NULL).
 */
static const struct st_hold_t {
    const char *table;
    const char *sql;
} HOLDS[] = {
    {"systems",
     "SELECT 'user', u.username, 'system', s.code, NULL FROM user_systems l JOIN users u ON u.id = l.user_id "
     "JOIN systems s ON s.id = l.system_id WHERE l.system_id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))"},
    {"systems", "SELECT 'api key', k.name, 'system', s.code, NULL FROM api_keys k JOIN systems s ON s.id = k.system_id "
                "WHERE k.system_id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))"},
    {"roles", "SELECT 'user', u.username, 'role', r.name, s.code FROM user_roles l JOIN users u ON u.id = l.user_id "
              "JOIN roles r ON r.id = l.role_id JOIN systems s ON s.id = r.system_id "
              "WHERE l.role_id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))"},
    {"roles", "SELECT 'api key', k.name, 'role', r.name, s.code FROM api_key_roles l JOIN api_keys k ON k.id = l.api_key_id "
              "JOIN roles r ON r.id = l.role_id JOIN systems s ON s.id = r.system_id "
              "WHERE l.role_id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))"},
    {"groups", "SELECT 'user', u.username, 'group', g.name, s.code FROM user_groups l JOIN users u ON u.id = l.user_id "
               "JOIN groups g ON g.id = l.group_id JOIN systems s ON s.id = g.system_id "
               "WHERE l.group_id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))"},
    {"groups", "SELECT 'api key', k.name, 'group', g.name, s.code FROM api_key_groups l JOIN api_keys k ON k.id = l.api_key_id "
               "JOIN groups g ON g.id = l.group_id JOIN systems s ON s.id = g.system_id "
               "WHERE l.group_id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))"},
};

typedef struct st_columns_t {
    char name[COLUMNS_MAX][64];
    size_t n;
} columns_t;

static int internal(cph_db_t *db, cph_error_t *err, const char *what)
{
    cph_log_error(MODULE, "%s: %s", what, sqlite3_errmsg(cph_db_handle(db)));
    return cph_error_set(err, "internal", "", "internal database error");
}

/* ---------------------------------------------------------------- export */

/* The current columns of table (from the schema, so they are safe to quote into SQL). */
static int table_columns(cph_db_t *db, const char *table, columns_t *cols, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    cols->n = 0;
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare table_info");
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && cols->n < COLUMNS_MAX)
        snprintf(cols->name[cols->n++], sizeof(cols->name[0]), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (cols->n == 0)
        return internal(db, err, "no columns");
    return 0;
}

static json_t *column_value(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer((json_int_t)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    case SQLITE_NULL:
        return json_null();
    default:
        return json_stringn((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
    }
}

/* Every row of t as {"column": value}, by key. */
static json_t *export_table(cph_db_t *db, const table_t *t, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char sql[256];
    json_t *rows = json_array(), *row;
    int rc;

    snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY %s", t->name, t->link ? "1, 2" : "id");
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) {
        json_decref(rows);
        internal(db, err, "prepare export");
        return NULL;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row = json_object();
        for (int i = 0; i < sqlite3_column_count(st); ++i)
            json_object_set_new(row, sqlite3_column_name(st, i), column_value(st, i));
        json_array_append_new(rows, row);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(rows);
        internal(db, err, "export");
        return NULL;
    }
    return rows;
}

char *cph_history_export(cph_db_t *db, cph_error_t *err)
{
    json_t *tables = json_object(), *state, *rows;
    char *text = NULL;

    for (size_t i = 0; i < NUM_TABLES; ++i) {
        if ((rows = export_table(db, &TABLES[i], err)) == NULL)
            goto Exit;
        json_object_set_new(tables, TABLES[i].name, rows);
    }
    state = json_pack("{s:i, s:O}", "format", CPH_HISTORY_STATE_FORMAT, "tables", tables);
    if (state == NULL || (text = cph_json_canonical(state)) == NULL)
        cph_error_set(err, "internal", "", "cannot serialise the configuration state");
    json_decref(state);
Exit:
    json_decref(tables);
    return text;
}

/* ---------------------------------------------------------------- restore */

static int has_column(const columns_t *cols, const char *name)
{
    for (size_t i = 0; i < cols->n; ++i)
        if (strcmp(cols->name[i], name) == 0)
            return 1;
    return 0;
}

static const char *keep_expr(const char *table, const char *column)
{
    for (size_t i = 0; i < sizeof(KEEP) / sizeof(KEEP[0]); ++i)
        if (strcmp(KEEP[i].table, table) == 0 && strcmp(KEEP[i].column, column) == 0)
            return KEEP[i].expr;
    return NULL;
}

__attribute__((format(printf, 2, 3))) static void append(char *sql, const char *fmt, ...)
{
    size_t len = strlen(sql);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql + len, SQL_MAX - len, fmt, ap);
    va_end(ap);
}

static int bind_value(sqlite3_stmt *st, int idx, const json_t *v)
{
    if (json_is_integer(v))
        return sqlite3_bind_int64(st, idx, (sqlite3_int64)json_integer_value(v));
    if (json_is_string(v))
        return sqlite3_bind_text(st, idx, json_string_value(v), (int)json_string_length(v), SQLITE_STATIC);
    if (json_is_null(v))
        return sqlite3_bind_null(st, idx);
    if (json_is_boolean(v))
        return sqlite3_bind_int(st, idx, json_is_true(v));
    if (json_is_real(v))
        return sqlite3_bind_double(st, idx, json_real_value(v));
    return SQLITE_MISMATCH; /* an object or an array: not something export writes */
}

/* The INSERT ... ON CONFLICT of one state row over the columns both the row and the table have; *n gets their count. */
static int upsert_sql(const table_t *t, const columns_t *cols, const json_t *row, char *sql, const char **names, size_t *n)
{
    const char *k, *expr;
    json_t *v;

    *n = 0;
    json_object_foreach((json_t *)row, k, v)
    {
        if (has_column(cols, k) && *n < COLUMNS_MAX)
            names[(*n)++] = k; /* unknown members (a column since dropped) are left out */
    }
    if (*n == 0 || (!t->link && json_integer_value(json_object_get(row, "id")) <= 0))
        return -1;
    snprintf(sql, SQL_MAX, "INSERT INTO \"%s\" (", t->name);
    for (size_t i = 0; i < *n; ++i)
        append(sql, "%s\"%s\"", i ? ", " : "", names[i]);
    append(sql, ") VALUES (");
    for (size_t i = 0; i < *n; ++i)
        append(sql, "%s?", i ? ", " : "");
    append(sql, ") ON CONFLICT ");
    for (size_t i = 0, first = 1; !t->link && i < *n; ++i) {
        if (strcmp(names[i], "id") == 0)
            continue;
        expr = keep_expr(t->name, names[i]);
        append(sql, "%s\"%s\" = ", first ? "(id) DO UPDATE SET " : ", ", names[i]);
        if (expr != NULL)
            append(sql, "%s", expr);
        else
            append(sql, "excluded.\"%s\"", names[i]);
        first = 0;
    }
    if (t->link || *n == 1)
        append(sql, "DO NOTHING");
    return 0;
}

static int upsert_row(cph_db_t *db, const table_t *t, const columns_t *cols, const json_t *row, cph_error_t *err)
{
    char sql[SQL_MAX];
    const char *names[COLUMNS_MAX];
    sqlite3_stmt *st = NULL;
    size_t n;
    int rc;

    if (!json_is_object(row) || upsert_sql(t, cols, row, sql, names, &n) != 0)
        return cph_error_set(err, "not_restorable", "", "the stored state of this version is damaged (%s)", t->name);
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare restore");
    for (size_t i = 0; i < n; ++i) {
        if (bind_value(st, (int)i + 1, json_object_get(row, names[i])) != SQLITE_OK) {
            sqlite3_finalize(st);
            return cph_error_set(err, "not_restorable", "", "the stored state of this version is damaged (%s)", t->name);
        }
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return cph_error_set(err, "conflict", "", "a %s row of the version cannot be restored next to today's rows", t->name);
    return internal(db, err, "restore");
}

/* Deletes the rows of t the state's rows (JSON text) lack. */
static int delete_missing(cph_db_t *db, const table_t *t, const columns_t *cols, const char *rows, cph_error_t *err)
{
    char sql[SQL_MAX];
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof(sql), "DELETE FROM \"%s\" WHERE ", t->name);
    if (!t->link) {
        append(sql, "id NOT IN (SELECT json_extract(value, '$.id') FROM json_each(?1))");
    } else {
        append(sql, "NOT EXISTS (SELECT 1 FROM json_each(?1) j WHERE 1");
        for (size_t i = 0; i < cols->n; ++i)
            append(sql, " AND json_extract(j.value, '$.%s') = \"%s\".\"%s\"", cols->name[i], t->name, cols->name[i]);
        append(sql, ")");
    }
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare delete");
    sqlite3_bind_text(st, 1, rows, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return cph_error_set(err, "conflict", "", "a %s row that the version lacks is still in use", t->name);
    return internal(db, err, "delete");
}

/* A principal holding a row of a configuration table that the state lacks: {conflict} naming both. */
static int check_holders(cph_db_t *db, const json_t *tables, uint64_t version, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char *rows;
    int rc = SQLITE_DONE;

    for (size_t i = 0; i < sizeof(HOLDS) / sizeof(HOLDS[0]) && rc == SQLITE_DONE; ++i) {
        if ((rows = json_dumps(json_object_get(tables, HOLDS[i].table), JSON_COMPACT)) == NULL)
            cph_fatal(MODULE, "out of memory");
        if (sqlite3_prepare_v2(cph_db_handle(db), HOLDS[i].sql, -1, &st, NULL) != SQLITE_OK) {
            free(rows);
            return internal(db, err, "prepare holders");
        }
        sqlite3_bind_text(st, 1, rows, -1, free);
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *sys = (const char *)sqlite3_column_text(st, 4);
            char in[100] = "";
            if (sys != NULL)
                snprintf(in, sizeof(in), " of system '%.64s'", sys);
            cph_error_set(err, "conflict", "",
                          "%s '%.64s' holds %s '%.64s'%s, which version %" PRIu64 " does not have: remove it from the %s first",
                          sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), sqlite3_column_text(st, 2),
                          sqlite3_column_text(st, 3), in, version, sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_ROW)
        return -1;
    return rc == SQLITE_DONE ? 0 : internal(db, err, "holders");
}

/* Whatever still dangles after the restore (the deferred foreign keys, checked before the commit would). */
static int check_foreign_keys(cph_db_t *db, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
        return internal(db, err, "prepare foreign_key_check");
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cph_error_set(err, "conflict", "", "after the rollback a %.64s row would refer to a missing %.64s row",
                      sqlite3_column_text(st, 0), sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return -1;
    return rc == SQLITE_DONE ? 0 : internal(db, err, "foreign_key_check");
}

/* Placeholders, then upserts parents first, then deletes children first. */
static int restore_tables(cph_db_t *db, const json_t *tables, cph_error_t *err)
{
    columns_t *cols = calloc(NUM_TABLES, sizeof(*cols));
    char sql[256], *texts[NUM_TABLES] = {NULL};
    json_t *row;
    size_t i, j;
    int ret = -1;

    if (cols == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i < NUM_TABLES; ++i)
        if (table_columns(db, TABLES[i].name, &cols[i], err) != 0)
            goto Exit;
    for (i = 0; i < NUM_TABLES; ++i) {
        if (TABLES[i].placeholder == NULL)
            continue;
        snprintf(sql, sizeof(sql), "UPDATE \"%s\" SET %s", TABLES[i].name, TABLES[i].placeholder);
        if (cph_db_exec(db, sql, err) != 0)
            goto Exit;
    }
    for (i = 0; i < NUM_TABLES; ++i) {
        json_array_foreach(json_object_get(tables, TABLES[i].name), j, row)
        {
            if (upsert_row(db, &TABLES[i], &cols[i], row, err) != 0)
                goto Exit;
        }
    }
    for (i = NUM_TABLES; i-- > 0;) {
        if ((texts[i] = json_dumps(json_object_get(tables, TABLES[i].name), JSON_COMPACT)) == NULL)
            cph_fatal(MODULE, "out of memory");
        if (delete_missing(db, &TABLES[i], &cols[i], texts[i], err) != 0)
            goto Exit;
    }
    ret = 0;
Exit:
    for (i = 0; i < NUM_TABLES; ++i)
        free(texts[i]);
    free(cols);
    return ret;
}

/* The state stored with version (a new object) and its hash. NULL with err. */
static json_t *load_state(cph_db_t *db, cph_history_rollback_t *rb, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *state = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT hash, state FROM snapshots WHERE version = ?1", -1, &st, NULL) != SQLITE_OK) {
        internal(db, err, "prepare state");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)rb->version);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(rb->hash, sizeof(rb->hash), "%s", (const char *)sqlite3_column_text(st, 0));
        if (sqlite3_column_type(st, 1) == SQLITE_NULL)
            cph_error_set(err, "not_restorable", "", "version %" PRIu64 " was stored without its configuration rows", rb->version);
        else if ((state = json_loads((const char *)sqlite3_column_text(st, 1), JSON_REJECT_DUPLICATES, NULL)) == NULL ||
                 json_integer_value(json_object_get(state, "format")) != CPH_HISTORY_STATE_FORMAT ||
                 !json_is_object(json_object_get(state, "tables"))) {
            json_decref(state);
            state = NULL;
            cph_error_set(err, "not_restorable", "", "the stored state of version %" PRIu64 " cannot be read", rb->version);
        }
    } else if (rc == SQLITE_DONE) {
        cph_error_set(err, "not_found", "", "no such version");
    } else {
        internal(db, err, "state");
    }
    sqlite3_finalize(st);
    return state;
}

int cph_history_rollback_cb(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    cph_history_rollback_t *rb = ctx;
    json_t *state, *tables;
    char epoch[33];
    uint64_t current = 0;
    int ret = -1;

    if ((state = load_state(db, rb, err)) == NULL)
        return -1;
    tables = json_object_get(state, "tables");
    for (size_t i = 0; i < NUM_TABLES; ++i) {
        if (!json_is_array(json_object_get(tables, TABLES[i].name))) {
            cph_error_set(err, "not_restorable", "", "the stored state of version %" PRIu64 " lacks %s", rb->version,
                          TABLES[i].name);
            goto Exit;
        }
    }
    if (cph_db_meta(db, epoch, &current) != 0) {
        internal(db, err, "meta");
        goto Exit;
    }
    if (check_holders(db, tables, rb->version, err) != 0 || cph_db_exec(db, "PRAGMA defer_foreign_keys = ON", err) != 0 ||
        restore_tables(db, tables, err) != 0 || check_foreign_keys(db, err) != 0)
        goto Exit;
    change->action = "rollback";
    change->entity_type = "snapshot";
    change->entity_id = (int64_t)rb->version;
    change->before = json_pack("{s:I}", "version", (json_int_t)current);
    change->after = json_pack("{s:I, s:s}", "version", (json_int_t)rb->version, "hash", rb->hash);
    ret = 0;
Exit:
    json_decref(state);
    return ret;
}

/* ---------------------------------------------------------------- diff */

typedef struct st_diff_t {
    json_t *out;
    int truncated;
} diff_t;

static void emit(diff_t *d, const char *op, const char *path, const json_t *from, const json_t *to)
{
    json_t *c;

    if (json_array_size(d->out) >= CPH_HISTORY_DIFF_MAX) {
        d->truncated = 1;
        return;
    }
    c = json_pack("{s:s, s:s}", "op", op, "path", path);
    if (from != NULL)
        json_object_set(c, "from", (json_t *)from);
    if (to != NULL)
        json_object_set(c, "to", (json_t *)to);
    json_array_append_new(d->out, c);
}

static void diff_value(diff_t *d, const json_t *a, const json_t *b, char *path, int depth);

/* The member's value of item as a string (a string, or an integer printed), or NULL. */
static const char *item_key(const json_t *item, const char *member, char buf[32])
{
    json_t *v = json_object_get(item, member);

    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

/* Every item of arr an object with a distinct key member: an index object key -> position (new), else NULL. */
static json_t *index_by(const json_t *arr, const char *member)
{
    json_t *idx = json_object(), *item;
    const char *k;
    char buf[32];
    size_t i;

    json_array_foreach(arr, i, item)
    {
        if ((k = item_key(item, member, buf)) == NULL || json_object_get(idx, k) != NULL) {
            json_decref(idx);
            return NULL;
        }
        json_object_set_new(idx, k, json_integer((json_int_t)i));
    }
    return idx;
}

static void diff_named(diff_t *d, const json_t *a, const json_t *b, const char *member, json_t *ia, json_t *ib, char *path,
                       int depth)
{
    size_t len = strlen(path), i;
    const char *k;
    json_t *item, *pos;
    char buf[32];

    json_array_foreach(b, i, item)
    {
        k = item_key(item, member, buf);
        cph_jsonptr_append_index(path, PATH_MAX_LEN, i);
        if ((pos = json_object_get(ia, k)) != NULL)
            diff_value(d, json_array_get(a, (size_t)json_integer_value(pos)), item, path, depth + 1);
        else
            emit(d, "add", path, NULL, item);
        path[len] = '\0';
    }
    json_array_foreach(a, i, item)
    {
        if (json_object_get(ib, item_key(item, member, buf)) != NULL)
            continue;
        cph_jsonptr_append_index(path, PATH_MAX_LEN, i);
        emit(d, "remove", path, item, NULL);
        path[len] = '\0';
    }
}

static void diff_array(diff_t *d, const json_t *a, const json_t *b, char *path, int depth)
{
    static const char *const KEYS[] = {"name", "id", "kid", "prefix", "code"};
    size_t len = strlen(path), na = json_array_size(a), nb = json_array_size(b), i;
    json_t *ia, *ib;

    for (size_t k = 0; k < sizeof(KEYS) / sizeof(KEYS[0]) && (na | nb) != 0; ++k) {
        ia = index_by(a, KEYS[k]);
        ib = ia != NULL ? index_by(b, KEYS[k]) : NULL;
        if (ia != NULL && ib != NULL)
            diff_named(d, a, b, KEYS[k], ia, ib, path, depth);
        json_decref(ia);
        json_decref(ib);
        if (ia != NULL && ib != NULL)
            return;
    }
    for (i = 0; i < na || i < nb; ++i) {
        cph_jsonptr_append_index(path, PATH_MAX_LEN, i);
        if (i < na && i < nb)
            diff_value(d, json_array_get(a, i), json_array_get(b, i), path, depth + 1);
        else if (i < nb)
            emit(d, "add", path, NULL, json_array_get(b, i));
        else
            emit(d, "remove", path, json_array_get(a, i), NULL);
        path[len] = '\0';
    }
}

static void diff_object(diff_t *d, const json_t *a, const json_t *b, char *path, int depth)
{
    size_t len = strlen(path);
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)a, k, v)
    {
        cph_jsonptr_append(path, PATH_MAX_LEN, k);
        if (json_object_get(b, k) == NULL)
            emit(d, "remove", path, v, NULL);
        else
            diff_value(d, v, json_object_get(b, k), path, depth + 1);
        path[len] = '\0';
    }
    json_object_foreach((json_t *)b, k, v)
    {
        if (json_object_get(a, k) != NULL)
            continue;
        cph_jsonptr_append(path, PATH_MAX_LEN, k);
        emit(d, "add", path, NULL, v);
        path[len] = '\0';
    }
}

static void diff_value(diff_t *d, const json_t *a, const json_t *b, char *path, int depth)
{
    if (d->truncated || json_equal((json_t *)a, (json_t *)b))
        return;
    if (depth < DIFF_DEPTH_MAX && json_is_object(a) && json_is_object(b))
        diff_object(d, a, b, path, depth);
    else if (depth < DIFF_DEPTH_MAX && json_is_array(a) && json_is_array(b))
        diff_array(d, a, b, path, depth);
    else
        emit(d, "replace", path, a, b);
}

json_t *cph_history_diff(const json_t *from, const json_t *to, int *truncated)
{
    diff_t d = {json_array(), 0};
    json_t *empty = json_object(), *null = json_null();
    char path[PATH_MAX_LEN] = "";

    if (from == NULL)
        from = json_is_object(to) ? empty : null;
    if (to == NULL)
        to = json_is_object(from) ? empty : null;
    if (d.out == NULL || empty == NULL)
        cph_fatal(MODULE, "out of memory");
    diff_value(&d, from, to, path, 0);
    if (truncated != NULL)
        *truncated = d.truncated;
    json_decref(empty);
    return d.out;
}

int cph_history_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    size_t i;

    if (s == NULL || s[0] == '\0')
        return -1;
    for (i = 0; s[i] != '\0'; ++i) {
        if (i == 18 || s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}
