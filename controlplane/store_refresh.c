/*
 * store_refresh: refresh tokens, their rotation, reuse detection and family revocation.
 *
 * Rotation is one BEGIN IMMEDIATE transaction: find the presented token, refuse it if unknown or expired, report it
 * as reused if it was used or revoked before, check that its user may still log into its system, mark it used and
 * add its successor - so two concurrent refreshes with one token cannot both win; the loser sees a used token, which
 * is exactly the theft signal (RFC 9700 section 4.14.2), and the family is revoked.
 *
 * The successor's access-token jti is stored before that token is signed (the caller signs after the commit), so a
 * family revoked a moment later already knows every jti it has to refuse.
 *
 * Revoking access tokens is the only thing here that changes the snapshot: it goes through cph_db_write() with
 * cph_store_revocation_token(). Because every such write is a new config version, a revoke that would change nothing
 * (a replayed token of a family revoked already) writes nothing.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "controlplane/signing.h"
#include "controlplane/store.h"
#include "controlplane/store_refresh.h"
#include "controlplane/store_revocation.h"
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "cp/store_refresh"
#define LEEWAY_MAX_S 300   /* the largest leeway a data plane may allow */
#define LIVE_JTIS_MAX 1024 /* access tokens of one family revoked at once (the newest) */

#define SELECT_ROW                                                                                                                 \
    "SELECT id, family, user_id, system_id, access_jti, issued_at, expires_at, used_at, revoked_at FROM refresh_tokens "

/* user U (a parameter) is enabled and a superuser or a member of system S (a parameter) */
#define MAY_LOG_IN(U, S)                                                                                                           \
    "EXISTS (SELECT 1 FROM users u WHERE u.id = " U " AND u.enabled = 1 AND (u.superuser = 1 OR EXISTS "                           \
    "(SELECT 1 FROM user_systems us WHERE us.user_id = u.id AND us.system_id = " S ")))"

/* ---------------------------------------------------------------- tokens */

static void hex(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; ++i)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static void sha256_hex(const char *s, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL);
    hex(md, 32, out);
}

int cph_store_refresh_new_token(char token[CPH_REFRESH_TOKEN_CHARS + 1], char sha[65])
{
    unsigned char raw[CPH_REFRESH_TOKEN_BYTES];
    char b64[CPH_B64URL_ENCODE_CAP(sizeof(raw))]; /* OpenSSL writes 44 characters (one '=') and a NUL */

    _Static_assert(CPH_B64URL_DECODED_LEN(CPH_REFRESH_TOKEN_CHARS) == CPH_REFRESH_TOKEN_BYTES, "token length");
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    cph_b64url_encode(raw, sizeof(raw), b64, sizeof(b64));
    memcpy(token, b64, CPH_REFRESH_TOKEN_CHARS + 1);
    OPENSSL_cleanse(b64, sizeof(b64));
    OPENSSL_cleanse(raw, sizeof(raw));
    sha256_hex(token, CPH_REFRESH_TOKEN_CHARS, sha);
    return 0;
}

int cph_store_refresh_hash(const char *token, char sha[65])
{
    static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    if (token == NULL || strnlen(token, CPH_REFRESH_TOKEN_CHARS + 1) != CPH_REFRESH_TOKEN_CHARS ||
        strspn(token, ALPHABET) != CPH_REFRESH_TOKEN_CHARS)
        return -1;
    sha256_hex(token, CPH_REFRESH_TOKEN_CHARS, sha);
    return 0;
}

/* ---------------------------------------------------------------- rows (lock held) */

static void copy_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

static int find_row(cph_db_t *db, const char *sha, cph_refresh_row_t *row, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), SELECT_ROW "WHERE token_sha256 = ?1", -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare refresh token read");
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    memset(row, 0, sizeof(*row));
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row->id = sqlite3_column_int64(st, 0);
        copy_text(st, 1, row->family, sizeof(row->family));
        row->user_id = sqlite3_column_int64(st, 2);
        row->system_id = sqlite3_column_int64(st, 3);
        copy_text(st, 4, row->access_jti, sizeof(row->access_jti));
        row->issued_at = sqlite3_column_int64(st, 5);
        row->expires_at = sqlite3_column_int64(st, 6);
        row->used_at = sqlite3_column_int64(st, 7);
        row->revoked_at = sqlite3_column_int64(st, 8);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return cph_error_set(err, "not_found", "", "no such refresh token");
    return cph_store_internal(db, err, "refresh token read");
}

/* Binds ?1.. from fmt: 't' text (NULL allowed), 'i' int64. */
static int run(cph_db_t *db, const char *sql, const char *fmt, const void *const *args, int *changes, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare refresh token write");
    for (int i = 0; fmt[i] != '\0'; ++i) {
        if (fmt[i] == 't')
            sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_int64(st, i + 1, *(const int64_t *)args[i]);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return cph_store_internal(db, err, "refresh token write");
    if (changes != NULL)
        *changes = sqlite3_changes(cph_db_handle(db));
    return 0;
}

/* 1 when the user may still log into the system, 0 when not, -1 on error. */
static int may_log_in(cph_db_t *db, int64_t user_id, int64_t system_id, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc, yes = 0;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT " MAY_LOG_IN("?1", "?2"), -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare login check");
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, system_id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        yes = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? yes : cph_store_internal(db, err, "login check");
}

static int revoke_rows(cph_db_t *db, const char *family, int64_t now, int *changes, cph_error_t *err)
{
    const void *args[] = {&now, family};

    return run(db, "UPDATE refresh_tokens SET revoked_at = ?1 WHERE family = ?2 AND revoked_at IS NULL", "it", args, changes, err);
}

static int insert_row(cph_db_t *db, const char *family, int64_t user_id, int64_t system_id, const char *sha, const char *jti,
                      int64_t now, int64_t expires, int *changes, cph_error_t *err)
{
    const void *args[] = {family, &user_id, &system_id, sha, jti, &now, &expires};

    return run(db,
               "INSERT INTO refresh_tokens (family, user_id, system_id, token_sha256, access_jti, issued_at, expires_at) "
               "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE " MAY_LOG_IN("?2", "?3"),
               "tiittii", args, changes, err);
}

/* ---------------------------------------------------------------- transactions */

static int begin(cph_db_t *db, cph_error_t *err)
{
    cph_db_lock(db);
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) == 0)
        return 0;
    cph_db_unlock(db);
    return -1;
}

/* Commits when ret == 0 or keep (a refusal that still records something), else rolls back; unlocks; returns ret. */
static int end(cph_db_t *db, int ret, int keep, cph_error_t *err)
{
    cph_error_t cerr;

    if ((ret == 0 || keep) && cph_db_exec(db, "COMMIT", &cerr) != 0) {
        if (ret == 0)
            *err = cerr;
        ret = -1;
    }
    if (sqlite3_get_autocommit(cph_db_handle(db)) == 0)
        sqlite3_exec(cph_db_handle(db), "ROLLBACK", NULL, NULL, NULL);
    cph_db_unlock(db);
    return ret;
}

int cph_store_refresh_issue(cph_db_t *db, const char *sha, int64_t user_id, int64_t system_id, const char *access_jti, int64_t now,
                            int64_t ttl_s, char family[2 * CPH_REFRESH_FAMILY_BYTES + 1], cph_error_t *err)
{
    unsigned char raw[CPH_REFRESH_FAMILY_BYTES];
    int changes = 0, ret;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return cph_error_set(err, "internal", "", "no randomness");
    hex(raw, sizeof(raw), family);
    if (begin(db, err) != 0)
        return -1;
    ret = insert_row(db, family, user_id, system_id, sha, access_jti, now, now + ttl_s, &changes, err);
    if (ret == 0 && changes != 1)
        ret = cph_error_set(err, "invalid_grant", "", "the user may not log into this system");
    return end(db, ret, 0, err);
}

/* The checks of a rotation on the old row; -1 with err set when it must not rotate (keep: commit what was done). */
static int check_rotation(cph_db_t *db, const cph_refresh_row_t *row, int64_t now, int *keep, cph_error_t *err)
{
    int ok, changes = 0;

    if (row->used_at != 0 || row->revoked_at != 0)
        return cph_error_set(err, "reused", "", "the refresh token was used before");
    if (row->expires_at <= now)
        return cph_error_set(err, "invalid_grant", "", "the refresh token has expired");
    if ((ok = may_log_in(db, row->user_id, row->system_id, err)) < 0)
        return -1;
    if (!ok) {
        if (revoke_rows(db, row->family, now, &changes, err) != 0)
            return -1;
        *keep = 1;
        return cph_error_set(err, "invalid_grant", "", "the user may no longer log into this system");
    }
    return 0;
}

int cph_store_refresh_rotate(cph_db_t *db, const char *old_sha, const char *new_sha, const char *new_jti, int64_t now,
                             int64_t ttl_s, cph_refresh_row_t *row, cph_error_t *err)
{
    const void *args[2];
    int ret, keep = 0, changes = 0;

    if (begin(db, err) != 0)
        return -1;
    if ((ret = find_row(db, old_sha, row, err)) != 0) {
        if (strcmp(err->code, "not_found") == 0)
            cph_error_set(err, "invalid_grant", "", "unknown refresh token");
        return end(db, -1, 0, err);
    }
    if ((ret = check_rotation(db, row, now, &keep, err)) != 0)
        return end(db, -1, keep, err);
    args[0] = &now;
    args[1] = &row->id;
    if (run(db, "UPDATE refresh_tokens SET used_at = ?1 WHERE id = ?2 AND used_at IS NULL AND revoked_at IS NULL", "ii", args,
            &changes, err) != 0 ||
        changes != 1 ||
        insert_row(db, row->family, row->user_id, row->system_id, new_sha, new_jti, now, now + ttl_s, &changes, err) != 0 ||
        changes != 1) {
        if (err->code[0] == '\0')
            cph_error_set(err, "internal", "", "cannot rotate the refresh token");
        return end(db, -1, 0, err);
    }
    return end(db, 0, 0, err);
}

int cph_store_refresh_find(cph_db_t *db, const char *sha, cph_refresh_row_t *row, cph_error_t *err)
{
    int ret;

    cph_db_lock(db);
    ret = find_row(db, sha, row, err);
    cph_db_unlock(db);
    return ret;
}

int cph_store_refresh_family_of(cph_db_t *db, const char *jti, char family[2 * CPH_REFRESH_FAMILY_BYTES + 1], cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_ERROR;

    cph_db_lock(db);
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT family FROM refresh_tokens WHERE access_jti = ?1 LIMIT 1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, jti, -1, SQLITE_TRANSIENT);
        if ((rc = sqlite3_step(st)) == SQLITE_ROW)
            copy_text(st, 0, family, 2 * CPH_REFRESH_FAMILY_BYTES + 1);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        cph_store_internal(db, err, "refresh family read");
    cph_db_unlock(db);
    if (rc == SQLITE_DONE)
        return cph_error_set(err, "not_found", "", "no such access token");
    return rc == SQLITE_ROW ? 0 : -1;
}

/* ---------------------------------------------------------------- revoking */

typedef struct st_revoke_t {
    const char *family;
    const char *reason;
    int64_t now;
    int open;     /* rows of the family not revoked yet */
    json_t *jtis; /* [[jti, exp]...]: access tokens to refuse */
} revoke_t;

/* Collects (lock held) how many rows of the family are open and, when some are, the live access jtis. */
static int survey(cph_db_t *db, revoke_t *r, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t since = r->now - CPH_ACCESS_TOKEN_MAX_S - LEEWAY_MAX_S;
    int rc;

    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT access_jti, issued_at, revoked_at IS NULL FROM refresh_tokens WHERE family = ?1 "
                           "ORDER BY id DESC LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return cph_store_internal(db, err, "prepare refresh family read");
    sqlite3_bind_text(st, 1, r->family, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, LIVE_JTIS_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *jti = (const char *)sqlite3_column_text(st, 0);
        r->open += sqlite3_column_int(st, 2);
        if (jti != NULL && sqlite3_column_int64(st, 1) > since)
            json_array_append_new(r->jtis,
                                  json_pack("[s, I]", jti, (json_int_t)(sqlite3_column_int64(st, 1) + CPH_ACCESS_TOKEN_MAX_S)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return cph_store_internal(db, err, "refresh family read");
    if (r->open == 0)
        json_array_clear(r->jtis); /* revoked before, with its access tokens */
    return 0;
}

static int on_revoke(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    revoke_t *r = ctx;
    json_t *item;
    size_t i;
    int changes = 0;

    if (r->family != NULL && revoke_rows(db, r->family, r->now, &changes, err) != 0)
        return -1;
    json_array_foreach(r->jtis, i, item)
    {
        if (cph_store_revocation_token(db, json_string_value(json_array_get(item, 0)),
                                       (int64_t)json_integer_value(json_array_get(item, 1)), err) != 0)
            return -1;
    }
    change->action = "revoke";
    change->entity_type = "refresh_family";
    change->after = json_pack("{s:s, s:I}", "reason", r->reason, "access_tokens", (json_int_t)json_array_size(r->jtis));
    return 0;
}

/* 1 when jti belongs to a row revoked before (its refusal was written then). */
static int jti_done(cph_db_t *db, const char *jti)
{
    sqlite3_stmt *st = NULL;
    int done = 0;

    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT 1 FROM refresh_tokens WHERE access_jti = ?1 AND revoked_at IS NOT NULL", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, jti, -1, SQLITE_TRANSIENT);
        done = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return done;
}

static int listed(const json_t *jtis, const char *jti)
{
    const json_t *item;
    size_t i;

    json_array_foreach(jtis, i, item)
    {
        if (strcmp(json_string_value(json_array_get(item, 0)), jti) == 0)
            return 1;
    }
    return 0;
}

int cph_store_refresh_revoke(cph_db_t *db, const char *family, const char *jti, int64_t jti_exp, int64_t now, const char *reason,
                             cph_error_t *err)
{
    revoke_t r = {family, reason, now, 0, json_array()};
    uint64_t version = 0;
    int ret = 0, changes = 0;

    cph_db_lock(db);
    if (family != NULL)
        ret = survey(db, &r, err);
    if (ret == 0 && jti != NULL && jti_exp > now && !jti_done(db, jti) && !listed(r.jtis, jti))
        json_array_append_new(r.jtis, json_pack("[s, I]", jti, (json_int_t)jti_exp));
    cph_db_unlock(db);
    if (ret != 0)
        goto Exit;
    if (json_array_size(r.jtis) > 0) {
        ret = cph_db_write(db, "auth", on_revoke, &r, &version, err);
    } else if (r.open > 0 && (ret = begin(db, err)) == 0) {
        ret = end(db, revoke_rows(db, family, now, &changes, err), 0, err);
    }
Exit:
    json_decref(r.jtis);
    return ret;
}

int64_t cph_store_refresh_prune(cph_db_t *db, int64_t now, int64_t grace_s, cph_error_t *err)
{
    int64_t before = now - grace_s;
    const void *args[] = {&before};
    int changes = 0, ret;

    cph_db_lock(db);
    ret = run(db, "DELETE FROM refresh_tokens WHERE expires_at < ?1", "i", args, &changes, err);
    cph_db_unlock(db);
    return ret == 0 ? changes : -1;
}
