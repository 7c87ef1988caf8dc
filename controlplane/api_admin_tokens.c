/*
 * api_admin_tokens: the admin API tokens (/api/v1/admin_tokens). An owner sees and revokes every token, anybody else
 * the tokens of its own account and the one it is using. A new token gets at most its creator's role and systems and
 * an optional expiry; it is shown once, in the POST answer - only its SHA-256 is stored, and it is revoked with its
 * account (cph_admin_revoke_account). Writes are audited (entity admin_token) and never bump the version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "controlplane/api.h"
#include "controlplane/api_admin_util.h"
#include "proto/log.h"

#define MODULE "cp/api_admin_tokens"
#define TOKEN_TTL_MIN_S 60
#define TOKEN_TTL_MAX_S (10LL * 365 * 24 * 3600)

#define TOKEN_COLUMNS                                                                                                              \
    "SELECT t.id, t.name, t.prefix, t.role, a.name, t.created_at, t.last_used_at, "                                                \
    "strftime('%Y-%m-%dT%H:%M:%SZ', t.expires_at, 'unixepoch') FROM admin_tokens t LEFT JOIN admin_accounts a ON a.id = "          \
    "t.account_id "
/* what a principal may see: an owner every token, anybody else its account's tokens and the one it uses */
#define TOKEN_VISIBLE "(?1 = 3 OR (t.account_id = ?2 AND ?2 <> 0) OR t.id = ?3)"

static json_t *text_or_null(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : json_string((const char *)sqlite3_column_text(st, i));
}

static json_t *token_row(sqlite3 *sql, sqlite3_stmt *st)
{
    int64_t id = sqlite3_column_int64(st, 0);

    return json_pack("{s:I, s:s, s:o, s:s, s:o, s:o, s:s, s:o, s:o}", "id", (json_int_t)id, "name",
                     (const char *)sqlite3_column_text(st, 1), "prefix", text_or_null(st, 2), "role",
                     (const char *)sqlite3_column_text(st, 3), "systems", cph_admin_codes_of(sql, CPH_ADMIN_TOKEN_SYSTEMS, id),
                     "account", text_or_null(st, 4), "created_at", (const char *)sqlite3_column_text(st, 5), "last_used_at",
                     text_or_null(st, 6), "expires_at", text_or_null(st, 7));
}

/* The tokens p may see (id 0: all of them, else that one). Lock held. */
static json_t *tokens_json(sqlite3 *sql, const cph_admin_principal_t *p, int64_t id)
{
    sqlite3_stmt *st = NULL;
    json_t *items = json_array();

    if (sqlite3_prepare_v2(sql, TOKEN_COLUMNS "WHERE " TOKEN_VISIBLE " AND (?4 = 0 OR t.id = ?4) ORDER BY t.id", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int(st, 1, (int)p->role);
        sqlite3_bind_int64(st, 2, p->account_id);
        sqlite3_bind_int64(st, 3, p->token_id);
        sqlite3_bind_int64(st, 4, id);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(items, token_row(sql, st));
    }
    sqlite3_finalize(st);
    return items;
}

/* The role and systems a new token of p gets: never more than p holds (403 forbidden). Lock held. */
static int token_scope(cph_api_req_t *req, cph_admin_role_t *role, int64_t *ids, size_t *n, cph_error_t *err)
{
    const cph_admin_principal_t *p = req->principal;

    if (cph_admin_body_role(req->body, 0, role, err) != 0 ||
        cph_admin_body_systems(cph_db_handle(req->db), req->body, ids, n, err) != 0)
        return -1;
    if (*role == 0)
        *role = p->role;
    if (*role > p->role)
        return cph_error_set(err, "forbidden", "/role", "a token cannot have a higher role than its creator (%s)",
                             cph_admin_role_name(p->role));
    if (*n == SIZE_MAX) { /* absent: an editor's own scope */
        *n = 0;
        for (size_t i = 0; p->role == CPH_ADMIN_EDITOR && i < p->nsystems; ++i)
            ids[(*n)++] = p->systems[i];
    }
    for (size_t i = 0; p->role != CPH_ADMIN_OWNER && i < *n; ++i)
        if (!cph_admin_in_scope(p, ids[i]))
            return cph_error_set(err, "forbidden", "/systems", "a token cannot reach systems outside its creator's scope");
    return 0;
}

static int get_expiry(const json_t *body, int64_t *expires_at, cph_error_t *err)
{
    json_t *v = json_object_get(body, "expires_in_s");

    *expires_at = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < TOKEN_TTL_MIN_S || json_integer_value(v) > TOKEN_TTL_MAX_S)
        return cph_error_set(err, "invalid", "/expires_in_s", "must be an integer from %d to %lld", TOKEN_TTL_MIN_S,
                             TOKEN_TTL_MAX_S);
    *expires_at = (int64_t)time(NULL) + json_integer_value(v);
    return 0;
}

/* Inserts the token (sha of token) for the body's name. Lock held, in a transaction. Sets *id. */
static int insert_token(cph_api_req_t *req, const char *name, const char *token, int64_t *id, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(req->db);
    sqlite3_stmt *st = NULL;
    cph_admin_role_t role;
    int64_t ids[CPH_ADMIN_SYSTEMS_MAX], expires;
    size_t n;
    char sha[65], prefix[9], now[32];
    int rc = SQLITE_ERROR;

    if (token_scope(req, &role, ids, &n, err) != 0 || get_expiry(req->body, &expires, err) != 0)
        return -1;
    cph_admin_sha256_hex(token, strlen(token), sha);
    snprintf(prefix, sizeof(prefix), "%.8s", token);
    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(sql,
                           "INSERT INTO admin_tokens (name, sha256, created_at, role, account_id, prefix, expires_at) "
                           "VALUES (?1, ?2, ?3, ?4, nullif(?5, 0), ?6, nullif(?7, 0))",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, cph_admin_role_name(role), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, req->principal->account_id);
        sqlite3_bind_text(st, 6, prefix, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 7, expires);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT)
        return cph_error_set(err, "conflict", "/name", "a token with this name exists");
    if (rc != SQLITE_DONE ||
        cph_admin_set_systems(sql, "admin_token_systems", "token_id", *id = sqlite3_last_insert_rowid(sql), ids, n) != 0)
        return cph_error_set(err, "internal", "", "internal database error");
    return 0;
}

static void create_token(cph_api_req_t *req)
{
    static const char *const ALLOWED[] = {"name", "role", "systems", "expires_in_s", NULL};
    const char *name;
    char token[65];
    cph_error_t err = {0};
    json_t *items = NULL, *o = NULL;
    int64_t id = 0;
    int ret;

    if (cph_admin_body_members(req->body, ALLOWED, &err) != 0 || cph_admin_body_string(req->body, "name", 1, &name, &err) != 0)
        goto Fail;
    if (!cph_admin_name_valid(name)) {
        cph_error_set(&err, "invalid", "/name", "must be 1-%d characters of A-Z a-z 0-9 . _ @ -", CPH_ADMIN_NAME_MAX);
        goto Fail;
    }
    if (cph_admin_random_hex(token) != 0) {
        cph_error_set(&err, "internal", "", "no randomness");
        goto Fail;
    }
    if (cph_admin_begin(req->db, &err) != 0)
        goto Fail;
    if ((ret = insert_token(req, name, token, &id, &err)) == 0) {
        items = tokens_json(cph_db_handle(req->db), &(cph_admin_principal_t){.role = CPH_ADMIN_OWNER}, id);
        ret = cph_admin_audit(req->db, req->actor, "create", "admin_token", id, NULL, json_array_get(items, 0), &err);
    }
    if (cph_admin_end(req->db, ret, &err) != 0)
        goto Fail;
    o = json_incref(json_array_get(items, 0));
    json_object_set_new(o, "token", json_string(token));
    cph_api_reply(req, 201, o);
    json_decref(items);
    OPENSSL_cleanse(token, sizeof(token));
    return;
Fail:
    json_decref(items);
    OPENSSL_cleanse(token, sizeof(token));
    cph_api_fail(req, &err);
}

/* GET or DELETE of one token p may see (anything else: 404). */
static void token_item(cph_api_req_t *req)
{
    int64_t id = cph_admin_parse_id(req->key);
    cph_error_t err = {0};
    sqlite3_stmt *st = NULL;
    json_t *items, *before;
    int ret = 0;

    if (cph_admin_begin(req->db, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    items = id != 0 ? tokens_json(cph_db_handle(req->db), req->principal, id) : json_array();
    if ((before = json_array_get(items, 0)) == NULL)
        ret = cph_error_set(&err, "not_found", "", "no such admin token");
    else if (req->method == CPH_API_DELETE) {
        if (sqlite3_prepare_v2(cph_db_handle(req->db), "DELETE FROM admin_tokens WHERE id = ?1", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_int64(st, 1, id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
            ret = cph_error_set(&err, "internal", "", "internal database error");
        sqlite3_finalize(st);
        if (ret == 0)
            ret = cph_admin_audit(req->db, req->actor, "delete", "admin_token", id, before, NULL, &err);
    }
    if (cph_admin_end(req->db, ret, &err) != 0)
        cph_api_fail(req, &err);
    else if (req->method == CPH_API_DELETE)
        cph_api_reply(req, 200, json_pack("{s:O}", "deleted", json_object_get(before, "name")));
    else
        cph_api_reply(req, 200, json_incref(before));
    json_decref(items);
}

void cph_api_admin_tokens(cph_api_req_t *req)
{
    json_t *items;

    if (req->principal == NULL) {
        cph_api_error(req, 401, "unauthorized", NULL, "a valid admin bearer token or session is required");
    } else if (req->key == NULL && req->method == CPH_API_GET) {
        cph_db_lock(req->db);
        items = tokens_json(cph_db_handle(req->db), req->principal, 0);
        cph_db_unlock(req->db);
        cph_api_reply(req, 200, json_pack("{s:o}", "data", items));
    } else if (req->key == NULL) {
        create_token(req);
    } else {
        token_item(req);
    }
}
