/*
 * store_refresh: the refresh tokens of the auth API (migrations/0004_access.sql, table refresh_tokens) - issuing,
 * rotation with reuse detection, and revoking a token family (docs/access.md section 6).
 *
 * A refresh token is 32 random bytes in base64url (43 characters); only its SHA-256 (64 lower-case hex) is stored.
 * Every token of one login shares a family (32 hex); a refresh uses its token up and adds the next one to the family.
 * Each row also records the jti of the access token issued with it, so revoking a family can revoke the access
 * tokens that may still be live. Times are unix seconds.
 *
 * Every function takes the database lock itself (call it without the lock). Writes that do not change the snapshot
 * run in their own BEGIN IMMEDIATE transaction; revoking access tokens goes through cph_db_write() so the data planes
 * get the new "revoked" entries.
 */
#ifndef CPH_STORE_REFRESH_H
#define CPH_STORE_REFRESH_H

#include <stdint.h>
#include "controlplane/db.h"

#define CPH_REFRESH_TOKEN_BYTES 32
#define CPH_REFRESH_TOKEN_CHARS 43 /* base64url of 32 bytes, unpadded */
#define CPH_REFRESH_FAMILY_BYTES 16

/** One refresh_tokens row (used_at / revoked_at 0 = NULL). */
typedef struct st_cph_refresh_row_t {
    int64_t id;
    char family[2 * CPH_REFRESH_FAMILY_BYTES + 1];
    int64_t user_id;
    int64_t system_id;
    char access_jti[129];
    int64_t issued_at;
    int64_t expires_at;
    int64_t used_at;
    int64_t revoked_at;
} cph_refresh_row_t;

/** A new refresh token (RAND_bytes) into token and its SHA-256 hex into sha. Returns 0 or -1. */
int cph_store_refresh_new_token(char token[CPH_REFRESH_TOKEN_CHARS + 1], char sha[65]);
/**
 * The SHA-256 hex of a presented token into sha. Returns 0, or -1 when token is not 43 base64url characters (no such
 * token can exist: the caller answers invalid_grant without a lookup).
 */
int cph_store_refresh_hash(const char *token, char sha[65]);

/**
 * Login: stores the token whose hash is sha in a new family (written into family) for user_id in system_id, with
 * access_jti, issued now, expiring now + ttl_s - only if the user is enabled and a superuser or a member of the
 * system (checked in the same transaction). err {invalid_grant} otherwise, {internal}. Returns 0 or -1.
 */
int cph_store_refresh_issue(cph_db_t *db, const char *sha, int64_t user_id, int64_t system_id, const char *access_jti, int64_t now,
                            int64_t ttl_s, char family[2 * CPH_REFRESH_FAMILY_BYTES + 1], cph_error_t *err);
/**
 * Refresh, in one transaction: finds the token old_sha; a token that is unknown or expired is err {invalid_grant};
 * one already used or revoked is err {reused} with *row filled (the caller revokes row->family); a user no longer
 * enabled or no longer in the system is err {invalid_grant} and the family is revoked (no snapshot change: a disabled
 * user's tokens are refused through revoked.users). Otherwise marks it used and stores new_sha (with new_jti) in
 * the same family, expiring at now + ttl_s, and fills *row with the OLD row. Returns 0 or -1.
 */
int cph_store_refresh_rotate(cph_db_t *db, const char *old_sha, const char *new_sha, const char *new_jti, int64_t now,
                             int64_t ttl_s, cph_refresh_row_t *row, cph_error_t *err);
/** The row of the token whose hash is sha into *row. err {not_found} or {internal}. Returns 0 or -1. */
int cph_store_refresh_find(cph_db_t *db, const char *sha, cph_refresh_row_t *row, cph_error_t *err);
/** The family of the row whose access_jti is jti into family. err {not_found} or {internal}. Returns 0 or -1. */
int cph_store_refresh_family_of(cph_db_t *db, const char *jti, char family[2 * CPH_REFRESH_FAMILY_BYTES + 1], cph_error_t *err);
/**
 * Revokes family (may be NULL) and the access tokens that may still be live: every access_jti of the family issued
 * after now - CPH_ACCESS_TOKEN_MAX_S - 300, plus jti (may be NULL) when jti_exp > now, each refused until its
 * issue time + CPH_ACCESS_TOKEN_MAX_S (jti: until jti_exp). When there are access tokens to refuse that are not
 * refused yet this is a cph_db_write (actor "auth", audit action "revoke", entity "refresh_family", after =
 * {"reason", "access_tokens"}); when only refresh rows change it is a plain transaction; when nothing changes,
 * nothing is written (a replayed token cannot make new versions). Returns 0 or -1 with err filled.
 */
int cph_store_refresh_revoke(cph_db_t *db, const char *family, const char *jti, int64_t jti_exp, int64_t now, const char *reason,
                             cph_error_t *err);
/** Deletes rows that expired before now - grace_s. Returns the number deleted, or -1 with err {internal}. */
int64_t cph_store_refresh_prune(cph_db_t *db, int64_t now, int64_t grace_s, cph_error_t *err);

#endif
