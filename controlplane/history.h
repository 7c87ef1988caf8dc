/*
 * history: the configuration state kept with every snapshot version, the rollback that restores it, and the JSON diff
 * the audit log and the snapshot history show.
 */
#ifndef CPH_HISTORY_H
#define CPH_HISTORY_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"

/* The state format written by cph_history_export (migrations/0012_snapshot_state.sql writes the same). */
#define CPH_HISTORY_STATE_FORMAT 1
/* A diff stops after this many changes and says so ("truncated": true). */
#define CPH_HISTORY_DIFF_MAX 5000

/**
 * The configuration rows as they are now: {"format": 1, "tables": {"<table>": [{"<column>": value}]}} over systems,
 * roles, groups, group_roles, services, routes, endpoints, endpoint_roles, endpoint_groups and issuers (every column,
 * rows by primary key; principals, credentials, admin and bookkeeping tables are never in it). Caller holds the lock
 * (it runs inside the write). Returns the canonical JSON text (malloc'd), or NULL with err {internal}.
 */
char *cph_history_export(cph_db_t *db, cph_error_t *err);

/**
 * The write callback of a rollback (run it through cph_db_write with a cph_history_rollback_t as ctx): restores the
 * configuration tables to the state stored with version ctx->version, by diff - rows missing from the state are
 * deleted, the others upserted by id, link rows added and removed - with foreign keys deferred, so what a principal
 * (user, api key) holds and the state still has survives. Services discovered through Consul keep today's targets,
 * issuers whose JWKS URL is unchanged their fetched keys. Records the change as action "rollback", entity "snapshot",
 * entity_id the version. err: {not_found} no such version, {not_restorable} a version stored without state,
 * {conflict} a principal holds something the state lacks (the message names both), {internal}.
 */
int cph_history_rollback_cb(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err);

/** The context of cph_history_rollback_cb: the version to restore; the callback fills its hash. */
typedef struct st_cph_history_rollback_t {
    uint64_t version;
    char hash[80]; /* the restored version's snapshot hash */
} cph_history_rollback_t;

/**
 * The changes that turn from into to (either may be NULL: treated as {} when the other is an object, else as null):
 * a new array of {"op": "add"|"remove"|"replace", "path": JSON pointer, "from"?, "to"?}. Objects are compared member by
 * member; an array whose items are all objects with a distinct "name" (else "id", "kid", "prefix", "code") is matched
 * by that member, so one inserted item is one change - the path holds the item's index in to (in from for a remove);
 * other arrays are compared by position. Stops after CPH_HISTORY_DIFF_MAX changes (*truncated set to 1; may be NULL).
 */
json_t *cph_history_diff(const json_t *from, const json_t *to, int *truncated);

/** Parses a decimal integer of 1..18 digits (no sign, no spaces) within [min, max]. Returns 0 or -1. */
int cph_history_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
