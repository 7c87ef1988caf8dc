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
 */
#include "controlplane/store_service.h"
#include "controlplane/ident.h"
#include "proto/log.h"

#define MODULE "cp/store_service"

#define SELECT_SERVICE                                                                                                             \
    "SELECT s.id, s.name, s.targets, s.timeout_ms, s.created_at, s.updated_at, y.code, s.policies FROM services s "                \
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

json_t *cph_store_service_normalize(const json_t *in, cph_error_t *err)
{
    json_t *copy, *out = NULL, *targets, *t, *timeout, *system_v = NULL, *policies = NULL;
    const char *system = NULL;
    size_t i;

    if ((copy = cph_store_writable_copy(in, "service", err)) == NULL)
        return NULL;
    /* "system" and "policies" are checked here: the schema validator sees the rest */
    if (cph_ident_get_string(copy, "system", CPH_IDENT_CODE, 0, &system, err) != 0)
        goto Exit;
    system_v = system != NULL ? json_string(system) : json_null();
    json_object_del(copy, "system");
    if ((policies = get_policies(copy, err)) == NULL)
        goto Exit;
    json_object_del(copy, "policies");
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
Exit:
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

static json_t *row_to_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:o, s:I, s:o, s:o, s:s, s:s}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                     (const char *)sqlite3_column_text(st, 1), "targets", cph_store_column_json(st, 2), "timeout_ms",
                     (json_int_t)sqlite3_column_int64(st, 3), "system", cph_ident_column_text(st, 6), "policies",
                     column_policies(st, 7), "created_at", (const char *)sqlite3_column_text(st, 4), "updated_at",
                     (const char *)sqlite3_column_text(st, 5));
}

json_t *cph_store_service_list(cph_db_t *db, cph_error_t *err)
{
    return cph_store_list(db, SELECT_SERVICE "ORDER BY s.name", row_to_json, err);
}

json_t *cph_store_service_get(cph_db_t *db, const char *key, cph_error_t *err)
{
    return cph_store_get(db, SELECT_SERVICE "WHERE ", "s.id", "s.name", row_to_json, "service", key, err);
}

/* Binds name, targets, timeout_ms, now, system_id (NULL for none), policies to ?1..?6 (?7 id) and steps. */
static int write_row(cph_db_t *db, const char *sql, int64_t id, const json_t *svc, cph_error_t *err)
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
    cph_store_bind_json(st, 2, json_object_get(svc, "targets"));
    sqlite3_bind_int64(st, 3, json_integer_value(json_object_get(svc, "timeout_ms")));
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    if (system != NULL)
        sqlite3_bind_int64(st, 5, sid);
    else
        sqlite3_bind_null(st, 5);
    cph_store_bind_json(st, 6, json_object_get(svc, "policies"));
    if (id != 0)
        sqlite3_bind_int64(st, 7, id);
    return cph_store_step_write(db, st, "service", id != 0, err);
}

int cph_store_service_insert(cph_db_t *db, const json_t *svc, int64_t *id, cph_error_t *err)
{
    if (write_row(db,
                  "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at, system_id, policies) "
                  "VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                  0, svc, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(cph_db_handle(db));
    return 0;
}

int cph_store_service_update(cph_db_t *db, int64_t id, const json_t *svc, cph_error_t *err)
{
    return write_row(db,
                     "UPDATE services SET name = ?1, targets = ?2, timeout_ms = ?3, updated_at = ?4, system_id = ?5, policies = ?6 "
                     "WHERE id = ?7",
                     id, svc, err);
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
