/*
 * store_revocation: the deny list the data planes enforce (migrations/0004_access.sql, table revocations), shipped as
 * the snapshot's "revoked" section (docs/access.md section 1).
 *
 * A user entry refuses that user's tokens issued at or before `before` (a disabled, deleted or changed user); a token
 * entry refuses one access token's jti until its exp (logout, refresh-token reuse). Entries are pruned once no token
 * they could match can still be valid. Every function runs inside a cph_db_write() callback (lock held, transaction
 * open), so the change reaches the data planes with the snapshot of that write.
 */
#ifndef CPH_STORE_REVOCATION_H
#define CPH_STORE_REVOCATION_H

#include <stdint.h>
#include <jansson.h>
#include "controlplane/db.h"

/**
 * Refuses user_id's tokens with iat <= before (unix seconds; keeps the later `before` when there is an entry). The
 * entry has no foreign key: it outlives a deleted user until pruned. -1 err {internal}.
 */
int cph_store_revocation_user(cph_db_t *db, int64_t user_id, int64_t before, cph_error_t *err);
/**
 * The `before` of user_id's entry, or -1 when there is none (or on an error). Caller holds the lock; no transaction
 * needed. The auth API issues tokens with an iat past it, so a login right after a change is never refused.
 */
int64_t cph_store_revocation_user_before(cph_db_t *db, int64_t user_id);
/**
 * Refuses the access token jti (1 to 128 of [A-Za-z0-9_-], else err {invalid}) until exp (unix seconds; keeps the
 * later exp when there is an entry). -1 err {invalid} or {internal}.
 */
int cph_store_revocation_token(cph_db_t *db, const char *jti, int64_t exp, cph_error_t *err);
/**
 * Deletes entries nothing can match any more: user entries with before + CPH_ACCESS_TOKEN_MAX_S + 300 < now, token
 * entries with exp + 300 < now (300 s = the largest leeway). -1 err {internal}.
 */
int cph_store_revocation_prune(cph_db_t *db, int64_t now, cph_error_t *err);
/**
 * {"users": [{"id", "before"}] by id (numerically), "tokens": [{"jti", "exp"}] by jti (byte order)} as a new object,
 * or NULL with err {internal}. A pure function of the rows (snapbuild's "revoked").
 */
json_t *cph_store_revocation_snapshot(cph_db_t *db, cph_error_t *err);

#endif
