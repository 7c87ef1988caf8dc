/*
 * store_revocation: the deny list (table revocations, migrations/0004_access.sql) that travels in every snapshot as
 * "revoked" (docs/access.md section 1).
 *
 * Access tokens are self-contained and short-lived (at most CPH_ACCESS_TOKEN_MAX_S), so nothing on the data plane
 * asks the control plane about a token: to take one back before its exp we ship its jti (one token: logout, a
 * refresh-token replay) or its user with a cut-off time (every token of a user issued at or before it: the user was
 * disabled, deleted, or what the token says about it changed). An entry is only useful while a token it matches could
 * still be accepted, so every write prunes the ones past that point (cph_db_write calls cph_store_revocation_prune):
 * the list stays bounded by the number of revocations of the last CPH_ACCESS_TOKEN_MAX_S + 300 seconds.
 *
 * Upserts keep the later time, so a revocation can only widen: writing an older cut-off or exp never re-admits a
 * token.
 */
#include <stdio.h>
#include <string.h>
#include "controlplane/signing.h"
#include "controlplane/store.h"
#include "controlplane/store_revocation.h"

#define MODULE "cp/store_revocation"
#define LEEWAY_MAX_S 300 /* the largest auth.leeway_s a data plane may apply */

#define UPSERT                                                                                                                     \
    "INSERT INTO revocations (kind, subject, until_or_before, created_at) VALUES (?1, ?2, ?3, ?4) "                                \
    "ON CONFLICT (kind, subject) DO UPDATE SET until_or_before = max(until_or_before, excluded.until_or_before)"

static int upsert(cph_db_t *db, const char *kind, const char *subject, int64_t t, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int ok;

    if (sqlite3_prepare_v2(cph_db_handle(db), UPSERT, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare revocation");
    cph_db_now(now, sizeof(now));
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, t);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : cph_store_internal(db, err, "insert revocation");
}

int cph_store_revocation_user(cph_db_t *db, int64_t user_id, int64_t before, cph_error_t *err)
{
    char subject[24];

    if (user_id < 1)
        return cph_error_set(err, "internal", "", "a revocation needs a user id");
    snprintf(subject, sizeof(subject), "%lld", (long long)user_id);
    return upsert(db, "user", subject, before, err);
}

int64_t cph_store_revocation_user_before(cph_db_t *db, int64_t user_id)
{
    sqlite3_stmt *st = NULL;
    char subject[24];
    int64_t before = -1;

    snprintf(subject, sizeof(subject), "%lld", (long long)user_id);
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT until_or_before FROM revocations WHERE kind = 'user' AND subject = ?1", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        before = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return before;
}

int cph_store_revocation_token(cph_db_t *db, const char *jti, int64_t exp, cph_error_t *err)
{
    size_t len = jti != NULL ? strlen(jti) : 0;

    if (len == 0 || len > 128 || strspn(jti, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != len)
        return cph_error_set(err, "invalid", "", "a jti is 1 to 128 of [A-Za-z0-9_-]");
    return upsert(db, "token", jti, exp, err);
}

int cph_store_revocation_prune(cph_db_t *db, int64_t now, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int ok;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "DELETE FROM revocations WHERE (kind = 'user' AND until_or_before + ?1 < ?3) OR "
                           "(kind = 'token' AND until_or_before + ?2 < ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare prune");
    sqlite3_bind_int64(st, 1, CPH_ACCESS_TOKEN_MAX_S + LEEWAY_MAX_S);
    sqlite3_bind_int64(st, 2, LEEWAY_MAX_S);
    sqlite3_bind_int64(st, 3, now);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : cph_store_internal(db, err, "prune");
}

static json_t *user_row(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:I}", "id", (json_int_t)sqlite3_column_int64(st, 0), "before",
                     (json_int_t)sqlite3_column_int64(st, 1));
}

static json_t *token_row(sqlite3_stmt *st)
{
    return json_pack("{s:s, s:I}", "jti", (const char *)sqlite3_column_text(st, 0), "exp", (json_int_t)sqlite3_column_int64(st, 1));
}

json_t *cph_store_revocation_snapshot(cph_db_t *db, cph_error_t *err)
{
    json_t *users, *tokens;

    /* subject is the decimal id: sorted as a number, the order the snapshot asks for */
    if ((users = cph_store_list(db,
                                "SELECT CAST(subject AS INTEGER), until_or_before FROM revocations WHERE kind = 'user' "
                                "ORDER BY CAST(subject AS INTEGER)",
                                user_row, err)) == NULL)
        return NULL;
    if ((tokens = cph_store_list(db, "SELECT subject, until_or_before FROM revocations WHERE kind = 'token' ORDER BY subject",
                                 token_row, err)) == NULL) {
        json_decref(users);
        return NULL;
    }
    return json_pack("{s:o, s:o}", "users", users, "tokens", tokens);
}
