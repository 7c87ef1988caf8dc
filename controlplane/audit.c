/*
 * audit: records every admin write in the audit table, inside the write's own transaction, so a write and its audit
 * row exist together or not at all. before/after are the API representations of the object (JSON text or NULL);
 * they never hold secrets today - when objects gain secrets (Vault paths are fine, credentials are not), redact here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include "controlplane/audit.h"
#include "proto/log.h"

#define MODULE "cp/audit"

static void bind_json(sqlite3_stmt *st, int idx, const json_t *v)
{
    char *text;

    if (v == NULL || (text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        sqlite3_bind_null(st, idx);
        return;
    }
    sqlite3_bind_text(st, idx, text, -1, free);
}

int cph_audit_record(cph_db_t *db, const char *actor, const cph_db_change_t *change, uint64_t version, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(db);
    sqlite3_stmt *st = NULL;
    char now[32], id[24];
    int ok;

    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(sql,
                           "INSERT INTO audit (actor, action, entity_type, entity_id, before, after, version, at) "
                           "VALUES (?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        goto Error;
    sqlite3_bind_text(st, 1, actor != NULL ? actor : "unknown", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, change->action != NULL ? change->action : "unknown", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, change->entity_type != NULL ? change->entity_type : "unknown", -1, SQLITE_STATIC);
    if (change->entity_id != 0) {
        snprintf(id, sizeof(id), "%" PRId64, change->entity_id);
        sqlite3_bind_text(st, 4, id, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(st, 4);
    }
    bind_json(st, 5, change->before);
    bind_json(st, 6, change->after);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)version);
    sqlite3_bind_text(st, 8, now, -1, SQLITE_TRANSIENT);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (ok)
        return 0;
Error:
    cph_log_error(MODULE, "cannot record audit: %s", sqlite3_errmsg(sql));
    return cph_error_set(err, "internal", "", "internal database error");
}

int64_t cph_audit_count(cph_db_t *db)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    cph_db_lock(db);
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT count(*) FROM audit", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return n;
}
