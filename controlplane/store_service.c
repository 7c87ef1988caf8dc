/*
 * store_service: the services table.
 *
 * The rows hold services already normalised by cph_store_service_normalize() (validated, defaults filled), so what
 * comes out is exactly what the snapshot needs. targets is a JSON column: a service's targets are always read and
 * written whole, and the snapshot wants them as JSON anyway.
 *
 * A service may belong to a system (system_id, migrations/0004_access.sql; the API speaks its code): the data plane
 * then refuses principals of other systems (docs/access.md section 4 step 4). A system a service belongs to cannot be deleted
 * (ON DELETE RESTRICT), and renaming its code carries the service along.
 *
 * policies (migrations/0007_service_policies.sql) is the service's upstream resilience policy - load balancing,
 * active health checks, outlier detection, limits - an object checked by cph_schema_validate_service_policies() and
 * stored, returned and shipped as it was sent (no default filled in inside it); absent means {} (every default).
 *
 * consul and credentials (migrations/0008_integrations.sql, checked by service_integrations.c) are NULL columns and
 * absent members when unset, so a service without them reads, audits and snapshots exactly as before. A service with
 * consul has its targets written by the Consul sync thread only (cph_store_service_set_discovered); an admin replace
 * keeps them while consul (service and tag) stays the same and empties them when it changes, as they were found for
 * another query. credentials holds templates, never a secret value: the snapshot build resolves them.
 */
#include <stdlib.h>
#include <string.h>
#include "controlplane/store_service.h"
#include "controlplane/service_integrations.h"
#include "controlplane/ident.h"
#include "proto/log.h"

#define MODULE "cp/store_service"

#define SELECT_SERVICE                                                                                                             \
    "SELECT s.id, s.name, s.targets, s.timeout_ms, s.created_at, s.updated_at, y.code, s.policies, s.consul, "                     \
    "s.credentials FROM services s "                                                                                               \
    "LEFT JOIN systems y ON y.id = s.system_id "

const cph_store_ops_t cph_store_service_ops = {
    "service",
    cph_store_service_normalize,
    cph_store_service_list,
    cph_store_service_get,
    cph_store_service_insert,
    cph_store_service_update,
    cph_store_service_delete,
};

/*
 * policies: absent -> a new {}; else an object checked by the shared schema function (errors at /policies/...). A new
 * reference, or NULL with err.
 */
static json_t *get_policies(const json_t *copy, cph_error_t *err)
{
    json_t *v = json_object_get(copy, "policies");

    if (v == NULL) {
        if ((v = json_object()) == NULL)
            cph_fatal(MODULE, "out of memory");
        return v;
    }
    if (!json_is_object(v)) {
        cph_error_set(err, "invalid", "/policies",
                      json_is_real(v) ? "must be an object; real numbers are not allowed" : "must be an object");
        return NULL;
    }
    if (cph_schema_validate_service_policies(v, "/policies", err) != 0)
        return NULL;
    return json_incref(v);
}

/* Adds consul and credentials to out when set (absent otherwise, as before they existed); steals both. */
static void add_integrations(json_t *out, json_t *consul, json_t *credentials)
{
    if ((consul != NULL && json_object_set_new(out, "consul", consul) != 0) ||
        (credentials != NULL && json_object_set_new(out, "credentials", credentials) != 0))
        cph_fatal(MODULE, "out of memory");
}

json_t *cph_store_service_normalize(const json_t *in, cph_error_t *err)
{
    json_t *copy, *out = NULL, *targets, *t, *timeout, *system_v = NULL, *policies = NULL, *consul = NULL, *credentials = NULL;
    const char *system = NULL;
    size_t i;

    if ((copy = cph_store_writable_copy(in, "service", err)) == NULL)
        return NULL;
    /* "system", "policies", "consul" and "credentials" are checked here: the schema validator sees the rest */
    if (cph_ident_get_string(copy, "system", CPH_IDENT_CODE, 0, &system, err) != 0)
        goto Exit;
    system_v = system != NULL ? json_string(system) : json_null();
    json_object_del(copy, "system");
    if ((policies = get_policies(copy, err)) == NULL)
        goto Exit;
    json_object_del(copy, "policies");
    if (cph_service_integrations_normalize(copy, &consul, &credentials, err) != 0)
        goto Exit;
    json_object_del(copy, "consul");
    json_object_del(copy, "credentials");
    if (consul != NULL)
        json_object_set_new(copy, "targets", json_array());
    if (cph_schema_validate_service(copy, err) != 0)
        goto Exit;
    targets = json_array();
    json_array_foreach(json_object_get(copy, "targets"), i, t)
    {
        json_t *w = json_object_get(t, "weight");
        json_array_append_new(targets, json_pack("{s:O, s:I}", "url", json_object_get(t, "url"), "weight",
                                                 w != NULL ? json_integer_value(w) : (json_int_t)1));
    }
    timeout = json_object_get(copy, "timeout_ms");
    out = json_pack("{s:O, s:o, s:I, s:O, s:O}", "name", json_object_get(copy, "name"), "targets", targets, "timeout_ms",
                    timeout != NULL ? json_integer_value(timeout) : (json_int_t)60000, "system", system_v, "policies", policies);
    add_integrations(out, consul, credentials);
    consul = credentials = NULL;
Exit:
    json_decref(consul);
    json_decref(credentials);
    json_decref(policies);
    json_decref(system_v);
    json_decref(copy);
    return out;
}

/* The policies column; {} should it ever not parse (the column's CHECK makes that impossible). */
static json_t *column_policies(sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    json_t *v = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;

    if (json_is_object(v))
        return v;
    json_decref(v);
    return json_object();
}

/* A nullable JSON object column (consul, credentials): a new object, or NULL when NULL (or, hand-edited, not an object). */
static json_t *column_object_or_null(sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    json_t *v = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;

    if (json_is_object(v))
        return v;
    json_decref(v);
    return NULL;
}

static json_t *row_to_json(sqlite3_stmt *st)
{
    json_t *out = json_pack("{s:I, s:s, s:o, s:I, s:o, s:o, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                            (const char *)sqlite3_column_text(st, 1), "targets", cph_store_column_json(st, 2), "timeout_ms",
                            (json_int_t)sqlite3_column_int64(st, 3), "system", cph_ident_column_text(st, 6), "policies",
                            column_policies(st, 7), "created_at", (const char *)sqlite3_column_text(st, 4), "updated_at",
                            (const char *)sqlite3_column_text(st, 5));

    if (out == NULL)
        cph_fatal(MODULE, "out of memory");
    add_integrations(out, column_object_or_null(st, 8), column_object_or_null(st, 9));
    return out;
}

json_t *cph_store_service_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_SERVICE "ORDER BY s.name", row_to_json, err);
}

json_t *cph_store_service_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_store_get(db, SELECT_SERVICE "WHERE ", "s.id", "s.name", row_to_json, "service", key, err);
}

/* Binds v (an object) as JSON text to idx, or NULL when v is NULL. */
static void bind_object_or_null(sqlite3_stmt *st, int idx, const json_t *v)
{
    if (v != NULL)
        cph_store_bind_json(st, idx, v);
    else
        sqlite3_bind_null(st, idx);
}

/*
 * Binds name, targets, timeout_ms, now, system_id (NULL for none), policies, consul, credentials to ?1..?8 (?9 id) and
 * steps; targets are the caller's (the stored discovered ones on a replace that keeps them).
 */
static int write_row(cph_db_t *db, const char *sql, int64_t id, const json_t *svc, const json_t *targets, cph_error_t *err)
{
    const char *system = json_string_value(json_object_get(svc, "system"));
    sqlite3_stmt *st = NULL;
    int64_t sid = 0;
    char now[32];

    if (system != NULL && cph_ident_system_id(db, system, "/system", &sid, err) != 0)
        return -1;
    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare write");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(svc, "name")), -1, SQLITE_TRANSIENT);
    cph_store_bind_json(st, 2, targets);
    sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(svc, "timeout_ms")));
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    if (system != NULL)
        sqlite3_bind_int64(st, 5, sid);
    else
        sqlite3_bind_null(st, 5);
    cph_store_bind_json(st, 6, json_object_get(svc, "policies"));
    bind_object_or_null(st, 7, json_object_get(svc, "consul"));
    bind_object_or_null(st, 8, json_object_get(svc, "credentials"));
    if (id != 0)
        sqlite3_bind_int64(st, 9, id);
    return cph_store_step_write(db, st, "service", id != 0, err);
}

int cph_store_service_insert(cph_db_t *db, const json_t *svc, int64_t *id, cph_error_t *err)
{
    if (write_row(db,
                  "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at, system_id, policies, consul, "
                  "credentials) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8)",
                  0, svc, json_object_get(svc, "targets"), err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

/*
 * The targets a replace of service id with svc writes: svc's own without consul; with consul, the stored (discovered)
 * ones when the stored consul equals svc's, else [] (they were found for another query). A new reference, or NULL
 * with err {internal}.
 */
static json_t *replace_targets(cph_db_t *db, int64_t id, const json_t *svc, cph_error_t *err)
{
    const json_t *consul = json_object_get(svc, "consul");
    sqlite3_stmt *st = NULL;
    json_t *stored = NULL, *targets = NULL;
    int rc;

    if (consul == NULL)
        return json_incref(json_object_get(svc, "targets"));
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT consul, targets FROM services WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        cph_store_internal(db, err, "prepare service targets");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        stored = column_object_or_null(st, 0);
        if (stored != NULL && json_equal(stored, (json_t *)consul))
            targets = cph_store_column_json(st, 1);
    }
    sqlite3_finalize(st);
    json_decref(stored);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(targets);
        cph_store_internal(db, err, "service targets");
        return NULL;
    }
    return targets != NULL ? targets : json_array();
}

int cph_store_service_update(cph_db_t *db, int64_t id, const json_t *svc, cph_error_t *err)
{
    json_t *targets = replace_targets(db, id, svc, err);
    int ret;

    if (targets == NULL)
        return -1;
    ret = write_row(db,
                    "UPDATE services SET name = ?1, targets = ?2, timeout_ms = ?3, updated_at = ?4, system_id = ?5, policies = ?6, "
                    "consul = ?7, credentials = ?8 WHERE id = ?9",
                    id, svc, targets, err);
    json_decref(targets);
    return ret;
}

int cph_store_service_delete(cph_db_t *db, int64_t id, cph_error_t *err)
{
    return cph_store_delete(db, "services", "service", "the service is used by routes", id, err);
}

int cph_store_service_id(cph_db_t *db, const char *name, const char *path, int64_t *id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT id FROM services WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare service lookup");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return cph_error_set(err, "unknown_service", path, "no service with this name exists");
    return cph_store_internal(db, err, "service lookup");
}

/* ---------------------------------------------------------------- services discovered through Consul */

static json_t *consul_row(sqlite3_stmt *st)
{
    json_t *consul = column_object_or_null(st, 2);

    return json_pack("{s:I, s:s, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                     (const char *)sqlite3_column_text(st, 1), "consul", consul != NULL ? consul : json_object(), "targets",
                     cph_store_column_json(st, 3));
}

json_t *cph_store_service_consul_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, "SELECT id, name, consul, targets FROM services WHERE consul IS NOT NULL ORDER BY name", consul_row,
                          err);
}

static int by_url(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "url")),
                  json_string_value(json_object_get(*(json_t *const *)b, "url")));
}

/*
 * targets as the store keeps them: [{"url", "weight"}] (weight 1 when absent) sorted by url, checked with the
 * snapshot schema under the service's name (errors at /targets/...). A new array, or NULL with err.
 */
static json_t *discovered_targets(const char *name, const json_t *targets, cph_error_t *err)
{
    json_t *out = NULL, *probe, *t;
    json_t **sorted;
    size_t i, n = json_array_size(targets);

    if (!json_is_array(targets)) {
        cph_error_set(err, "invalid", "/targets", "must be an array");
        return NULL;
    }
    if ((probe = json_pack("{s:s, s:O}", "name", name, "targets", targets)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (cph_schema_validate_service(probe, err) != 0)
        goto Exit;
    if ((sorted = calloc(n + 1, sizeof(*sorted))) == NULL || (out = json_array()) == NULL)
        cph_fatal(MODULE, "out of memory");
    json_array_foreach(targets, i, t)
    {
        json_t *w = json_object_get(t, "weight");
        sorted[i] =
            json_pack("{s:O, s:I}", "url", json_object_get(t, "url"), "weight", w != NULL ? json_integer_value(w) : (json_int_t)1);
    }
    qsort(sorted, n, sizeof(*sorted), by_url);
    for (i = 0; i != n; ++i)
        json_array_append_new(out, sorted[i]);
    free(sorted);
Exit:
    json_decref(probe);
    return out;
}

int cph_store_service_set_discovered(cph_db_t *db, int64_t id, const json_t *consul, const json_t *targets, cph_db_change_t *change,
                                     cph_error_t *err)
{
    json_t *before, *sorted = NULL;
    sqlite3_stmt *st = NULL;
    char key[24], now[32];
    int ret = -1;

    snprintf(key, sizeof(key), "%lld", (long long)id);
    if ((before = cph_store_service_get(db, key, err)) == NULL)
        return -1;
    if (!json_equal(json_object_get(before, "consul"), (json_t *)consul)) {
        cph_error_set(err, "conflict", "/consul", "the service's consul member changed meanwhile");
        goto Exit;
    }
    if ((sorted = discovered_targets(json_string_value(json_object_get(before, "name")), targets, err)) == NULL)
        goto Exit;
    if (sqlite3_prepare_v2(cph_db_handle(db), "UPDATE services SET targets = ?1, updated_at = ?2 WHERE id = ?3", -1, &st, NULL) !=
        SQLITE_OK) {
        cph_store_internal(db, err, "prepare discovered targets");
        goto Exit;
    }
    cph_db_now(now, sizeof(now));
    cph_store_bind_json(st, 1, sorted);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, id);
    if (cph_store_step_write(db, st, "service", 1, err) != 0 || (change->after = cph_store_service_get(db, key, err)) == NULL)
        goto Exit;
    change->action = "update";
    change->entity_type = "service";
    change->entity_id = id;
    change->entity_name = json_string_value(json_object_get(change->after, "name"));
    change->before = before;
    before = NULL;
    ret = 0;
Exit:
    json_decref(before);
    json_decref(sorted);
    return ret;
}
