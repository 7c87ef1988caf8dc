/*
 * snapbuild: SQLite rows -> the canonical snapshot body (schema v1, proto/PROTOCOL.md §5).
 */
#ifndef CPH_SNAPBUILD_H
#define CPH_SNAPBUILD_H

#include <jansson.h>
#include "controlplane/db.h"

/**
 * Builds {"services":[...], "routes":[...], "keys"?:[...]} from the rows, each array sorted by name (byte order; the
 * published public signing keys by kid, the member absent when there is none), every optional
 * field written out with its value (defaults explicit), no ids or timestamps. Caller holds the lock. Returns a new
 * reference, or NULL with err {internal}. The same rows always give the same body, whatever order they were
 * inserted in, so the same hash (cph_snapshot_hash).
 */
json_t *cph_snapbuild_body(cph_db_t *db, cph_error_t *err);

#endif
