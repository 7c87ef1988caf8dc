/*
 * persist: the data plane's last good snapshot on disk (proto/PROTOCOL.md section 6).
 *
 * <state-dir>/snapshot.json holds {"epoch","version","hash","schema","body"}, mode 0600 in a 0700 directory, since
 * later versions carry credentials. A write never leaves a half-written snapshot.json; the previous one is kept as
 * snapshot.prev.json. Runs on the control thread only: workers never touch the disk.
 */
#ifndef CPH_PERSIST_H
#define CPH_PERSIST_H

#include <stdint.h>
#include <jansson.h>
#include "proto/proto.h"

#define CPH_PERSIST_FILE "snapshot.json"
#define CPH_PERSIST_PREV "snapshot.prev.json"
#define CPH_PERSIST_TMP "snapshot.json.tmp"

/** A snapshot read back from disk: identity plus its body (a reference the caller drops with dispose). */
typedef struct st_cph_persisted_t {
    char epoch[65];
    uint64_t version;
    char hash[CPH_HASH_SIZE];
    json_t *body;
} cph_persisted_t;

/** Creates dir (and missing parents) with mode 0700; an existing dir open to group/others is narrowed to 0700. */
int cph_persist_ensure_dir(const char *dir, cph_error_t *err);

/**
 * Writes the snapshot atomically: snapshot.json.tmp (0600) -> fsync -> when keep_prev, the current snapshot.json
 * becomes snapshot.prev.json (a hard link, so snapshot.json never disappears) -> rename over snapshot.json -> fsync
 * the directory. keep_prev is 0 when the current file is known bad, so a bad file never displaces the good prev.
 * Returns 0, or -1 with err filled; a failure leaves the files as they were (minus a stray .tmp, removed).
 */
int cph_persist_write(const char *dir, const char *epoch, uint64_t version, const char *hash, const json_t *body, int keep_prev,
                      cph_error_t *err);

/**
 * Reads one snapshot file: a JSON object (duplicates rejected, at most 64 MiB) with a string epoch (<= 64 bytes),
 * an integer version, a string hash, schema 1 and an object body whose recomputed hash equals hash and which passes
 * cph_snapshot_validate(). Returns 0 and fills out, or -1 with err filled (nothing to dispose).
 */
int cph_persist_load_file(const char *path, cph_persisted_t *out, cph_error_t *err);

/** Drops the body reference of a loaded snapshot. */
void cph_persisted_dispose(cph_persisted_t *p);

#endif
