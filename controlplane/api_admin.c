/*
 * api_admin: the admin session (/api/v1/admin/{login,logout,me}) and the admin accounts (/api/v1/admin_accounts, owner
 * only - rbac.c enforces it). The admin API tokens are in api_admin_tokens.c, what both share in api_admin_util.c.
 *
 * None of this is configuration: these writes run in their own transaction under the database lock, never bump the
 * version and are audited with cph_admin_audit (entity admin_account / admin_token / admin_session). Passwords are
 * hashed (argon2id, password.h) before the lock is taken; a hash or a token never reaches an answer, a log line or
 * an audit row - a new token is shown once, in its POST answer.
 *
 * An account's password change, disabling, role change or deletion ends its sessions and revokes its tokens
 * (cph_admin_revoke_account). The last enabled owner account cannot be deleted, disabled or demoted (409), so the
 * page always has a way in; the bootstrap token (CEPHALO_ADMIN_TOKEN) stays an owner besides.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "controlplane/api.h"
#include "controlplane/api_admin_util.h"
#include "controlplane/password.h"
#include "proto/log.h"

#define MODULE "cp/api_admin"

/* ---------------------------------------------------------------- shared */

/* A password member: 12..CPH_PASSWORD_MAX bytes, hashed now (before any lock). NULL hash when absent. */
static int hash_password(const json_t *body, int required, char **hash, cph_error_t *err)
{
    const char *pw;

    *hash = NULL;
    if (json_object_get(body, "password") == NULL && !required)
        return 0;
    if (cph_admin_body_string(body, "password", 1, &pw, err) != 0)
        return -1;
    if (strlen(pw) < CPH_ADMIN_PASSWORD_MIN || strlen(pw) > CPH_PASSWORD_MAX)
        return cph_error_set(err, "invalid", "/password", "must be %d..%d bytes", CPH_ADMIN_PASSWORD_MIN, CPH_PASSWORD_MAX);
    return (*hash = cph_password_hash(pw, strlen(pw), "/password", err)) != NULL ? 0 : -1;
}

/* ---------------------------------------------------------------- login, logout, me */

static void client_ip(struct MHD_Connection *conn, char out[64])
{
    const union MHD_ConnectionInfo *ci = conn != NULL ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    snprintf(out, 64, "unknown");
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, 64);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, 64);
}

static void set_cookie(cph_api_req_t *req, const char *value, int expire)
{
    char h[256];

    snprintf(h, sizeof(h), "%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s", CPH_ADMIN_SESSION_COOKIE, value,
             expire ? "; Max-Age=0" : "", cph_admin_cookie_secure() ? "; Secure" : "");
    cph_api_add_header(req, "Set-Cookie", h);
    OPENSSL_cleanse(h, sizeof(h));
}

/* {"name","role","systems"} of p. */
static json_t *who(cph_db_t *db, const cph_admin_principal_t *p)
{
    json_t *o;

    cph_db_lock(db);
    o = json_pack("{s:s, s:s, s:o}", "name", p->name, "role", cph_admin_role_name(p->role), "systems",
                  cph_admin_codes_of_ids(cph_db_handle(db), p->systems, p->nsystems));
    cph_db_unlock(db);
    return o;
}

static void do_login(cph_api_req_t *req)
{
    static const char *const ALLOWED[] = {"name", "password", NULL};
    const char *name, *password;
    cph_admin_principal_t p;
    cph_error_t err = {0};
    char ip[64], cookie[65], retry[24];
    int64_t wait = 0;
    json_t *o;

    if (cph_admin_body_members(req->body, ALLOWED, &err) != 0 || cph_admin_body_string(req->body, "name", 1, &name, &err) != 0 ||
        cph_admin_body_string(req->body, "password", 1, &password, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    if (strlen(password) > CPH_PASSWORD_MAX || strlen(name) > 256) {
        cph_api_error(req, 400, "invalid", strlen(name) > 256 ? "/name" : "/password", "too long");
        return;
    }
    client_ip(req->conn, ip);
    switch (cph_admin_login(req->db, name, password, ip, (int64_t)time(NULL), cookie, &p, &wait)) {
    case CPH_ADMIN_LOGIN_OK:
        o = who(req->db, &p);
        json_object_set_new(o, "csrf_token", json_string(p.csrf));
        set_cookie(req, cookie, 0);
        OPENSSL_cleanse(cookie, sizeof(cookie));
        cph_api_reply(req, 200, o);
        break;
    case CPH_ADMIN_LOGIN_LIMITED:
        snprintf(retry, sizeof(retry), "%lld", (long long)wait);
        cph_api_add_header(req, "Retry-After", retry);
        cph_api_error(req, 429, "too_many_attempts", NULL, "too many failed logins: try again later");
        break;
    case CPH_ADMIN_LOGIN_INVALID:
        cph_api_error(req, 401, "invalid_credentials", NULL, "invalid credentials");
        break;
    default:
        cph_api_error(req, 500, "internal", NULL, "internal error");
    }
    OPENSSL_cleanse(&p, sizeof(p));
}

void cph_api_admin(cph_api_req_t *req)
{
    const cph_admin_principal_t *p = req->principal;
    json_t *o;

    if (req->key == NULL) {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
    } else if (strcmp(req->key, "login") == 0 || strcmp(req->key, "logout") == 0) {
        req->allow = CPH_API_POST;
        if (req->method != CPH_API_POST)
            cph_api_error(req, 405, "method_not_allowed", NULL, "method not allowed");
        else if (req->key[3] == 'i')
            do_login(req);
        else if (p == NULL || !p->via_session)
            cph_api_error(req, 400, "invalid", NULL, "logout ends a session; revoke a token with DELETE /api/v1/admin_tokens/{id}");
        else if (cph_admin_logout(req->db, p) != 0)
            cph_api_error(req, 500, "internal", NULL, "internal error");
        else {
            set_cookie(req, "", 1);
            cph_api_reply(req, 200, json_pack("{s:b}", "logged_out", 1));
        }
    } else if (strcmp(req->key, "me") == 0 && p != NULL) {
        req->allow = CPH_API_GET;
        if (req->method != CPH_API_GET) {
            cph_api_error(req, 405, "method_not_allowed", NULL, "method not allowed");
            return;
        }
        o = who(req->db, p);
        json_object_set_new(o, "via", json_string(p->via_session ? "session" : "token"));
        if (p->via_session)
            json_object_set_new(o, "csrf_token", json_string(p->csrf));
        cph_api_reply(req, 200, o);
    } else {
        cph_api_error(req, 404, "not_found", NULL, "no such resource");
    }
}

/* ---------------------------------------------------------------- accounts */

/* One account as the API shows it (never the hash), or NULL. Lock held. */
static json_t *account_json(sqlite3 *sql, int64_t id)
{
    sqlite3_stmt *st = NULL;
    json_t *o = NULL;

    if (sqlite3_prepare_v2(
            sql, "SELECT id, name, role, disabled, created_at, updated_at, last_login_at FROM admin_accounts WHERE id = ?1", -1,
            &st, NULL) == SQLITE_OK &&
        sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        o = json_pack(
            "{s:I, s:s, s:s, s:o, s:b, s:s, s:s, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
            (const char *)sqlite3_column_text(st, 1), "role", (const char *)sqlite3_column_text(st, 2), "systems",
            cph_admin_codes_of(sql, CPH_ADMIN_ACCOUNT_SYSTEMS, id), "disabled", sqlite3_column_int(st, 3), "created_at",
            (const char *)sqlite3_column_text(st, 4), "updated_at", (const char *)sqlite3_column_text(st, 5), "last_login_at",
            sqlite3_column_type(st, 6) == SQLITE_NULL ? json_null() : json_string((const char *)sqlite3_column_text(st, 6)));
    sqlite3_finalize(st);
    return o;
}

/* The account a key names: by numeric id (what the page sends), else by name. 0 when none. Lock held. */
static int64_t find_account(sqlite3 *sql, const char *key)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;

    if (sqlite3_prepare_v2(
            sql,
            "SELECT id, 0 AS k FROM admin_accounts WHERE id = ?2 UNION ALL SELECT id, 1 FROM admin_accounts WHERE name = ?1 "
            "ORDER BY k LIMIT 1",
            -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, cph_admin_parse_id(key));
        if (sqlite3_step(st) == SQLITE_ROW)
            id = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return id;
}

/* 1 when another enabled owner than id exists. Lock held. */
static int other_owner(sqlite3 *sql, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int n = 0;

    if (sqlite3_prepare_v2(sql, "SELECT count(*) FROM admin_accounts WHERE role = 'owner' AND disabled = 0 AND id <> ?1", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n > 0;
}

static void list_accounts(cph_api_req_t *req)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *sql;
    json_t *items = json_array(), *o;

    cph_db_lock(req->db);
    sql = cph_db_handle(req->db);
    if (sqlite3_prepare_v2(sql, "SELECT id FROM admin_accounts ORDER BY name", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            if ((o = account_json(sql, sqlite3_column_int64(st, 0))) != NULL)
                json_array_append_new(items, o);
    sqlite3_finalize(st);
    cph_db_unlock(req->db);
    cph_api_reply(req, 200, json_pack("{s:o}", "data", items));
}

/* The INSERT of a new account and its audit row. Lock held, in a transaction. Sets *id. */
static int insert_account(cph_api_req_t *req, const char *name, const char *hash, cph_admin_role_t role, int64_t *id,
                          cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(req->db);
    sqlite3_stmt *st = NULL;
    int64_t ids[CPH_ADMIN_SYSTEMS_MAX];
    size_t n;
    char now[32];
    int rc = SQLITE_ERROR;
    json_t *after;

    if (cph_admin_body_systems(sql, req->body, ids, &n, err) != 0)
        return -1;
    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(
            sql, "INSERT INTO admin_accounts (name, password_hash, role, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)", -1,
            &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, cph_admin_role_name(role), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT)
        return cph_error_set(err, "conflict", "/name", "an account with this name exists");
    if (rc != SQLITE_DONE)
        return cph_error_set(err, "internal", "", "internal database error");
    *id = sqlite3_last_insert_rowid(sql);
    if (cph_admin_set_systems(sql, "admin_account_systems", "account_id", *id, ids, n == SIZE_MAX ? 0 : n) != 0)
        return cph_error_set(err, "internal", "", "internal database error");
    after = account_json(sql, *id);
    rc = cph_admin_audit(req->db, req->actor, "create", "admin_account", *id, NULL, after, err);
    json_decref(after);
    return rc;
}

static void create_account(cph_api_req_t *req)
{
    static const char *const ALLOWED[] = {"name", "password", "role", "systems", NULL};
    const char *name;
    char *hash = NULL;
    cph_admin_role_t role;
    cph_error_t err = {0};
    int64_t id = 0;
    json_t *o = NULL;

    if (cph_admin_body_members(req->body, ALLOWED, &err) != 0 || cph_admin_body_string(req->body, "name", 1, &name, &err) != 0 ||
        cph_admin_body_role(req->body, 1, &role, &err) != 0)
        goto Fail;
    if (!cph_admin_name_valid(name)) {
        cph_error_set(&err, "invalid", "/name", "must be 1-%d characters of A-Z a-z 0-9 . _ @ -", CPH_ADMIN_NAME_MAX);
        goto Fail;
    }
    if (hash_password(req->body, 1, &hash, &err) != 0 || cph_admin_begin(req->db, &err) != 0)
        goto Fail;
    if (cph_admin_end(req->db, insert_account(req, name, hash, role, &id, &err), &err) != 0)
        goto Fail;
    cph_db_lock(req->db);
    o = account_json(cph_db_handle(req->db), id);
    cph_db_unlock(req->db);
    cph_api_reply(req, 201, o);
    free(hash);
    return;
Fail:
    free(hash);
    cph_api_fail(req, &err);
}

/* What a PUT asks for, parsed before the transaction (the hash) and inside it (systems). */
typedef struct st_account_put_t {
    char *hash;
    cph_admin_role_t role;
    int disabled; /* -1 absent */
} account_put_t;

static int parse_put(cph_api_req_t *req, account_put_t *u, cph_error_t *err)
{
    static const char *const ALLOWED[] = {"name", "password", "role", "systems", "disabled", NULL};
    json_t *d = json_object_get(req->body, "disabled");

    u->disabled = -1;
    if (cph_admin_body_members(req->body, ALLOWED, err) != 0 || cph_admin_body_role(req->body, 0, &u->role, err) != 0)
        return -1;
    if (d != NULL && !json_is_boolean(d))
        return cph_error_set(err, "invalid", "/disabled", "must be a boolean");
    if (d != NULL)
        u->disabled = json_is_true(d);
    return hash_password(req->body, 0, &u->hash, err);
}

/* Applies u to account id (its row before). Lock held, in a transaction. */
static int update_account(cph_api_req_t *req, int64_t id, const account_put_t *u, json_t *before, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(req->db);
    const char *name = json_string_value(json_object_get(before, "name")), *want = NULL;
    cph_admin_role_t old = cph_admin_role_parse(json_string_value(json_object_get(before, "role")));
    int was_enabled = !json_is_true(json_object_get(before, "disabled")), ok;
    int64_t ids[CPH_ADMIN_SYSTEMS_MAX];
    size_t n;
    sqlite3_stmt *st = NULL;
    char now[32];
    json_t *after;

    if (cph_admin_body_string(req->body, "name", 0, &want, err) != 0 || (want != NULL && strcmp(want, name) != 0))
        return cph_error_set(err, "invalid", "/name", "an account cannot be renamed");
    if (cph_admin_body_systems(sql, req->body, ids, &n, err) != 0)
        return -1;
    if (old == CPH_ADMIN_OWNER && was_enabled && ((u->role != 0 && u->role != CPH_ADMIN_OWNER) || u->disabled == 1) &&
        !other_owner(sql, id))
        return cph_error_set(err, "conflict", "", "the last enabled owner cannot be disabled or demoted");
    cph_db_now(now, sizeof(now));
    ok = sqlite3_prepare_v2(sql,
                            "UPDATE admin_accounts SET password_hash = coalesce(?2, password_hash), role = coalesce(?3, role), "
                            "disabled = coalesce(?4, disabled), updated_at = ?5 WHERE id = ?1",
                            -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, id);
        u->hash != NULL ? sqlite3_bind_text(st, 2, u->hash, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, 2);
        u->role != 0 ? sqlite3_bind_text(st, 3, cph_admin_role_name(u->role), -1, SQLITE_STATIC) : sqlite3_bind_null(st, 3);
        u->disabled >= 0 ? sqlite3_bind_int(st, 4, u->disabled) : sqlite3_bind_null(st, 4);
        sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (ok && n != SIZE_MAX)
        ok = cph_admin_set_systems(sql, "admin_account_systems", "account_id", id, ids, n) == 0;
    if (ok && (u->hash != NULL || (u->role != 0 && u->role != old) || u->disabled == 1))
        ok = cph_admin_revoke_account(req->db, id) == 0;
    if (!ok)
        return cph_error_set(err, "internal", "", "internal database error");
    after = account_json(sql, id);
    if (u->hash != NULL)
        json_object_set_new(after, "credentials_changed", json_true());
    ok = cph_admin_audit(req->db, req->actor, "update", "admin_account", id, before, after, err);
    json_decref(after);
    return ok;
}

/* The DELETE of account id (its row before). Lock held, in a transaction. */
static int delete_account(cph_api_req_t *req, int64_t id, json_t *before, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(req->db);
    sqlite3_stmt *st = NULL;
    int ok;

    if (strcmp(json_string_value(json_object_get(before, "role")), "owner") == 0 &&
        !json_is_true(json_object_get(before, "disabled")) && !other_owner(sql, id))
        return cph_error_set(err, "conflict", "", "the last enabled owner cannot be deleted");
    ok = sqlite3_prepare_v2(sql, "DELETE FROM admin_accounts WHERE id = ?1", -1, &st, NULL) == SQLITE_OK &&
         sqlite3_bind_int64(st, 1, id) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok)
        return cph_error_set(err, "internal", "", "internal database error");
    return cph_admin_audit(req->db, req->actor, "delete", "admin_account", id, before, NULL, err);
}

/* GET, PUT or DELETE of one account. */
static void account_item(cph_api_req_t *req)
{
    account_put_t u = {0};
    cph_error_t err = {0};
    json_t *before = NULL, *o = NULL;
    int64_t id;
    int ret;

    if (req->method == CPH_API_PUT && parse_put(req, &u, &err) != 0)
        goto Fail;
    if (cph_admin_begin(req->db, &err) != 0)
        goto Fail;
    ret = 0;
    if ((id = find_account(cph_db_handle(req->db), req->key)) == 0 || (before = account_json(cph_db_handle(req->db), id)) == NULL)
        ret = cph_error_set(&err, "not_found", "", "no such admin account");
    else if (req->method == CPH_API_PUT)
        ret = update_account(req, id, &u, before, &err);
    else if (req->method == CPH_API_DELETE)
        ret = delete_account(req, id, before, &err);
    if (ret == 0 && req->method != CPH_API_DELETE)
        o = account_json(cph_db_handle(req->db), id);
    if (cph_admin_end(req->db, ret, &err) != 0)
        goto Fail;
    if (req->method == CPH_API_DELETE)
        o = json_pack("{s:O}", "deleted", json_object_get(before, "name"));
    cph_api_reply(req, 200, o);
    json_decref(before);
    free(u.hash);
    return;
Fail:
    json_decref(o);
    json_decref(before);
    free(u.hash);
    cph_api_fail(req, &err);
}

void cph_api_admin_accounts(cph_api_req_t *req)
{
    if (req->key == NULL && req->method == CPH_API_GET)
        list_accounts(req);
    else if (req->key == NULL)
        create_account(req);
    else
        account_item(req);
}
