/*
 * api_admin: the admin session (/api/v1/admin/{login,logout,me}), the admin accounts (/api/v1/admin_accounts, owner
 * only - rbac.c enforces it) and the admin API tokens (/api/v1/admin_tokens: an owner sees and revokes all, anybody
 * else its own).
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
#include "controlplane/password.h"
#include "proto/log.h"

#define MODULE "cp/api_admin"
#define TOKEN_TTL_MIN_S 60
#define TOKEN_TTL_MAX_S (10LL * 365 * 24 * 3600)

/* ---------------------------------------------------------------- shared */

/* Refuses a member of body not in allowed (NULL-terminated): 400 unknown_field at its path. */
static int check_members(const json_t *body, const char *const *allowed, cph_error_t *err)
{
    const char *k;
    json_t *v;
    char path[128];

    json_object_foreach((json_t *)body, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL && !ok; ++i)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            path[0] = '\0';
            cph_jsonptr_append(path, sizeof(path), k);
            return cph_error_set(err, "unknown_field", path, "unknown member");
        }
    }
    return 0;
}

/* body[name] as a string (NULL when absent and !required); -1 with err for a missing or non-string member. */
static int get_string(const json_t *body, const char *name, int required, const char **out, cph_error_t *err)
{
    json_t *v = json_object_get(body, name);
    char path[80];

    snprintf(path, sizeof(path), "/%s", name);
    *out = NULL;
    if (v == NULL && !required)
        return 0;
    if (!json_is_string(v))
        return cph_error_set(err, "invalid", path, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* A password member: 12..CPH_PASSWORD_MAX bytes, hashed now (before any lock). NULL hash when absent. */
static int hash_password(const json_t *body, int required, char **hash, cph_error_t *err)
{
    const char *pw;

    *hash = NULL;
    if (json_object_get(body, "password") == NULL && !required)
        return 0;
    if (get_string(body, "password", 1, &pw, err) != 0)
        return -1;
    if (strlen(pw) < CPH_ADMIN_PASSWORD_MIN || strlen(pw) > CPH_PASSWORD_MAX)
        return cph_error_set(err, "invalid", "/password", "must be %d..%d bytes", CPH_ADMIN_PASSWORD_MIN, CPH_PASSWORD_MAX);
    return (*hash = cph_password_hash(pw, strlen(pw), "/password", err)) != NULL ? 0 : -1;
}

/* The role member (0 when absent and !required). */
static int get_role(const json_t *body, int required, cph_admin_role_t *role, cph_error_t *err)
{
    const char *s;

    *role = 0;
    if (get_string(body, "role", required, &s, err) != 0)
        return -1;
    if (s != NULL && (*role = cph_admin_role_parse(s)) == 0)
        return cph_error_set(err, "invalid", "/role", "must be owner, editor or viewer");
    return 0;
}

/* The system codes of ids, as a JSON array. Lock held. */
static json_t *codes_of_ids(sqlite3 *sql, const int64_t *ids, size_t n)
{
    json_t *a = json_array();
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(sql, "SELECT code FROM systems WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return a;
    for (size_t i = 0; i < n; ++i) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ids[i]);
        if (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    return a;
}

/* The codes of the systems linked to id in table (admin_account_systems / admin_token_systems). Lock held. */
static json_t *codes_of(sqlite3 *sql, const char *q, int64_t id)
{
    json_t *a = json_array();
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    }
    sqlite3_finalize(st);
    return a;
}

#define ACCOUNT_SYSTEMS                                                                                                            \
    "SELECT s.code FROM admin_account_systems x JOIN systems s ON s.id = x.system_id WHERE x.account_id = ?1 ORDER BY s.code"
#define TOKEN_SYSTEMS                                                                                                              \
    "SELECT s.code FROM admin_token_systems x JOIN systems s ON s.id = x.system_id WHERE x.token_id = ?1 ORDER BY s.code"

/*
 * The "systems" member (absent: *n = SIZE_MAX): an array of distinct existing system codes, at most
 * CPH_ADMIN_SYSTEMS_MAX. Lock held. -1 with err {invalid} at the element.
 */
static int parse_systems(sqlite3 *sql, const json_t *body, int64_t *ids, size_t *n, cph_error_t *err)
{
    json_t *a = json_object_get(body, "systems"), *v;
    sqlite3_stmt *st = NULL;
    size_t i;
    int ret = 0;

    *n = SIZE_MAX;
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > CPH_ADMIN_SYSTEMS_MAX)
        return cph_error_set(err, "invalid", "/systems", "must be an array of at most %d system codes", CPH_ADMIN_SYSTEMS_MAX);
    if (sqlite3_prepare_v2(sql, "SELECT id FROM systems WHERE code = ?1", -1, &st, NULL) != SQLITE_OK)
        return cph_error_set(err, "internal", "", "internal database error");
    *n = 0;
    json_array_foreach(a, i, v)
    {
        char path[48];
        snprintf(path, sizeof(path), "/systems/%zu", i);
        sqlite3_reset(st);
        if (!json_is_string(v) ||
            (sqlite3_bind_text(st, 1, json_string_value(v), -1, SQLITE_TRANSIENT), sqlite3_step(st)) != SQLITE_ROW) {
            ret = cph_error_set(err, "invalid", path, "must be the code of an existing system");
            break;
        }
        ids[*n] = sqlite3_column_int64(st, 0);
        for (size_t j = 0; j < *n && ids[*n] != 0; ++j)
            if (ids[j] == ids[*n])
                ids[*n] = 0; /* a duplicate: dropped */
        if (ids[*n] != 0)
            ++*n;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Replaces the links of id in table (col: account_id / token_id). Lock held. */
static int set_systems(sqlite3 *sql, const char *table, const char *col, int64_t id, const int64_t *ids, size_t n)
{
    sqlite3_stmt *st = NULL;
    char q[160];
    int ok;

    snprintf(q, sizeof(q), "DELETE FROM %s WHERE %s = ?1", table, col);
    ok = sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK && sqlite3_bind_int64(st, 1, id) == SQLITE_OK &&
         sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    snprintf(q, sizeof(q), "INSERT INTO %s (%s, system_id) VALUES (?1, ?2)", table, col);
    for (size_t i = 0; ok && i < n; ++i) {
        ok = sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 2, ids[i]);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
        sqlite3_finalize(st);
    }
    return ok ? 0 : -1;
}

static int begin(cph_db_t *db, cph_error_t *err)
{
    cph_db_lock(db);
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) == 0)
        return 0;
    cph_db_unlock(db);
    return -1;
}

/* COMMIT when ret is 0, else ROLLBACK; unlocks. Returns ret (or -1 when the commit failed). */
static int end(cph_db_t *db, int ret, cph_error_t *err)
{
    if (ret == 0 && cph_db_exec(db, "COMMIT", err) != 0)
        ret = -1;
    if (ret != 0)
        cph_db_exec(db, "ROLLBACK", NULL);
    cph_db_unlock(db);
    return ret;
}

static int64_t parse_id(const char *key)
{
    char *end;
    long long v;

    if (key == NULL || key[0] < '1' || key[0] > '9' || strlen(key) > 18)
        return 0;
    v = strtoll(key, &end, 10);
    return *end == '\0' ? (int64_t)v : 0;
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
                  codes_of_ids(cph_db_handle(db), p->systems, p->nsystems));
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

    if (check_members(req->body, ALLOWED, &err) != 0 || get_string(req->body, "name", 1, &name, &err) != 0 ||
        get_string(req->body, "password", 1, &password, &err) != 0) {
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
            codes_of(sql, ACCOUNT_SYSTEMS, id), "disabled", sqlite3_column_int(st, 3), "created_at",
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
        sqlite3_bind_int64(st, 2, parse_id(key));
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

    if (parse_systems(sql, req->body, ids, &n, err) != 0)
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
    if (set_systems(sql, "admin_account_systems", "account_id", *id, ids, n == SIZE_MAX ? 0 : n) != 0)
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

    if (check_members(req->body, ALLOWED, &err) != 0 || get_string(req->body, "name", 1, &name, &err) != 0 ||
        get_role(req->body, 1, &role, &err) != 0)
        goto Fail;
    if (!cph_admin_name_valid(name)) {
        cph_error_set(&err, "invalid", "/name", "must be 1-%d characters of A-Z a-z 0-9 . _ @ -", CPH_ADMIN_NAME_MAX);
        goto Fail;
    }
    if (hash_password(req->body, 1, &hash, &err) != 0 || begin(req->db, &err) != 0)
        goto Fail;
    if (end(req->db, insert_account(req, name, hash, role, &id, &err), &err) != 0)
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
    if (check_members(req->body, ALLOWED, err) != 0 || get_role(req->body, 0, &u->role, err) != 0)
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

    if (get_string(req->body, "name", 0, &want, err) != 0 || (want != NULL && strcmp(want, name) != 0))
        return cph_error_set(err, "invalid", "/name", "an account cannot be renamed");
    if (parse_systems(sql, req->body, ids, &n, err) != 0)
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
        ok = set_systems(sql, "admin_account_systems", "account_id", id, ids, n) == 0;
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
    if (begin(req->db, &err) != 0)
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
    if (end(req->db, ret, &err) != 0)
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

/* ---------------------------------------------------------------- tokens */

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
                     (const char *)sqlite3_column_text(st, 3), "systems", codes_of(sql, TOKEN_SYSTEMS, id), "account",
                     text_or_null(st, 4), "created_at", (const char *)sqlite3_column_text(st, 5), "last_used_at",
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

    if (get_role(req->body, 0, role, err) != 0 || parse_systems(cph_db_handle(req->db), req->body, ids, n, err) != 0)
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
    if (rc != SQLITE_DONE || set_systems(sql, "admin_token_systems", "token_id", *id = sqlite3_last_insert_rowid(sql), ids, n) != 0)
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

    if (check_members(req->body, ALLOWED, &err) != 0 || get_string(req->body, "name", 1, &name, &err) != 0)
        goto Fail;
    if (!cph_admin_name_valid(name)) {
        cph_error_set(&err, "invalid", "/name", "must be 1-%d characters of A-Z a-z 0-9 . _ @ -", CPH_ADMIN_NAME_MAX);
        goto Fail;
    }
    if (cph_admin_random_hex(token) != 0) {
        cph_error_set(&err, "internal", "", "no randomness");
        goto Fail;
    }
    if (begin(req->db, &err) != 0)
        goto Fail;
    if ((ret = insert_token(req, name, token, &id, &err)) == 0) {
        items = tokens_json(cph_db_handle(req->db), &(cph_admin_principal_t){.role = CPH_ADMIN_OWNER}, id);
        ret = cph_admin_audit(req->db, req->actor, "create", "admin_token", id, NULL, json_array_get(items, 0), &err);
    }
    if (end(req->db, ret, &err) != 0)
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
    int64_t id = parse_id(req->key);
    cph_error_t err = {0};
    sqlite3_stmt *st = NULL;
    json_t *items, *before;
    int ret = 0;

    if (begin(req->db, &err) != 0) {
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
    if (end(req->db, ret, &err) != 0)
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
