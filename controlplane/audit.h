/*
 * audit: one row per admin write (actor, action, entity, before, after, version).
 */
#ifndef CPH_AUDIT_H
#define CPH_AUDIT_H

#include <stdint.h>
#include "controlplane/db.h"

/** Inserts the audit row for change at version; runs inside the write transaction (lock held). Returns 0 or -1. */
int cph_audit_record(cph_db_t *db, const char *actor, const cph_db_change_t *change, uint64_t version, cph_error_t *err);
/** Number of audit rows (for tests and metrics). Takes the lock. Returns -1 on error. */
int64_t cph_audit_count(cph_db_t *db);

#endif
