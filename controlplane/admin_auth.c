/*
 * admin_auth: who is calling the admin API (admin_auth.h) - the admin tokens, the account sessions, the password
 * login and the bootstrap owner account.
 *
 * Secrets are stored hashed: a token or session cookie as its sha256 hex, a password as argon2id (password.h). A
 * presented token is compared against every stored hash in constant time (as api.c always did); a session cookie is
 * looked up by its hash (the hash of 256 random bits: an index lookup leaks nothing useful). A session dies 12 h after
 * its login or 30 min after its last use, whichever comes first, and with any revocation of its account.
 *
 * The login runs one argon2id verify for every attempt that is not rate-limited - against a dummy hash made once
 * when the name is unknown - so the answer and its time do not tell an unknown name from a wrong password or a
 * disabled account. The verify runs without the database lock. The failure limiter (loginlimit.h) and the dummy hash
 * are process-wide: one admin API per process.
 *
 * Admin writes are not configuration, so they never bump the version; cph_admin_audit writes their audit row at
 * the current generation, with before/after that never hold a hash or a token.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "controlplane/admin_auth.h"
#include "controlplane/audit.h"
#include "controlplane/loginlimit.h"
#include "controlplane/password.h"
#include "proto/log.h"

#define MODULE "cp/admin_auth"

static atomic_int cookie_secure = 1;

cph_admin_role_t cph_admin_role_parse(const char *name)
{
    if (name == NULL)
        return 0;
    return strcmp(name, "owner") == 0    ? CPH_ADMIN_OWNER
           : strcmp(name, "editor") == 0 ? CPH_ADMIN_EDITOR
           : strcmp(name, "viewer") == 0 ? CPH_ADMIN_VIEWER
                                         : 0;
}

const char *cph_admin_role_name(cph_admin_role_t role)
{
    return role == CPH_ADMIN_OWNER ? "owner" : role == CPH_ADMIN_EDITOR ? "editor" : "viewer";
}

int cph_admin_in_scope(const cph_admin_principal_t *p, int64_t system_id)
{
    if (p->role == CPH_ADMIN_OWNER)
        return 1;
    if (p->role != CPH_ADMIN_EDITOR)
        return 0;
    for (size_t i = 0; i < p->nsystems; ++i)
        if (p->systems[i] == system_id)
            return 1;
    return 0;
}

void cph_admin_set_cookie_secure(int on)
{
    atomic_store(&cookie_secure, on ? 1 : 0);
}

int cph_admin_cookie_secure(void)
{
    return atomic_load(&cookie_secure);
}

int cph_admin_name_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;

    return n >= 1 && n <= CPH_ADMIN_NAME_MAX &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-") == n;
}

void cph_admin_sha256_hex(const char *s, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; ++i)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int cph_admin_random_hex(char out[65])
{
    unsigned char raw[32];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    for (int i = 0; i < 32; ++i)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

static int is_hex64(const char *s)
{
    return s != NULL && strlen(s) == CPH_ADMIN_TOKEN_HEX && strspn(s, "0123456789abcdef") == CPH_ADMIN_TOKEN_HEX;
}

/* ---------------------------------------------------------------- principals */

/* Appends the system ids q (two int64 parameters) selects to p->systems. */
static void load_systems(sqlite3 *sql, const char *q, int64_t a, int64_t b, cph_admin_principal_t *p)
{
    sqlite3_stmt *st = NULL;

    p->nsystems = 0;
    if (sqlite3_prepare_v2(sql, q, -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, a);
    sqlite3_bind_int64(st, 2, b);
    while (sqlite3_step(st) == SQLITE_ROW && p->nsystems < CPH_ADMIN_SYSTEMS_MAX)
        p->systems[p->nsystems++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);

    return s != NULL ? s : "";
}

/* The matching token row of cph_admin_auth_token. */
typedef struct st_token_row_t {
    int found;
    int64_t id, account_id, expires_at;
    int has_expiry, account_disabled;
    char name[72], account_name[72];
    cph_admin_role_t role, account_role;
} token_row_t;

static void find_token(sqlite3 *sql, const char *want, token_row_t *t)
{
    sqlite3_stmt *st = NULL;

    memset(t, 0, sizeof(*t));
    if (sqlite3_prepare_v2(sql,
                           "SELECT t.id, t.name, t.sha256, t.role, coalesce(t.account_id, 0), t.expires_at, a.name, a.role, "
                           "coalesce(a.disabled, 0) FROM admin_tokens t LEFT JOIN admin_accounts a ON a.id = t.account_id",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *stored = col(st, 2);
        if (strlen(stored) != 64 || CRYPTO_memcmp(stored, want, 64) != 0 || t->found)
            continue; /* no early exit: every row costs the same */
        t->found = 1;
        t->id = sqlite3_column_int64(st, 0);
        snprintf(t->name, sizeof(t->name), "%s", col(st, 1));
        t->role = cph_admin_role_parse(col(st, 3));
        t->account_id = sqlite3_column_int64(st, 4);
        t->has_expiry = sqlite3_column_type(st, 5) != SQLITE_NULL;
        t->expires_at = sqlite3_column_int64(st, 5);
        snprintf(t->account_name, sizeof(t->account_name), "%s", col(st, 6));
        t->account_role = cph_admin_role_parse(col(st, 7));
        t->account_disabled = sqlite3_column_int(st, 8);
    }
    sqlite3_finalize(st);
}

static void touch_token(sqlite3 *sql, int64_t id)
{
    sqlite3_stmt *st = NULL;
    char now[32];

    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(sql,
                           "UPDATE admin_tokens SET last_used_at = ?1 WHERE id = ?2 AND "
                           "(last_used_at IS NULL OR substr(last_used_at, 1, 16) <> substr(?1, 1, 16))",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, id);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
}

int cph_admin_auth_token(cph_db_t *db, const char *token, int64_t now, cph_admin_principal_t *p)
{
    sqlite3 *sql;
    token_row_t t;
    char want[65];
    int ok = 0;

    if (token == NULL || token[0] == '\0' || strlen(token) > 4096)
        return 0;
    cph_admin_sha256_hex(token, strlen(token), want);
    cph_db_lock(db);
    sql = cph_db_handle(db);
    find_token(sql, want, &t);
    if (!t.found || t.role == 0 || (t.has_expiry && now >= t.expires_at) || t.account_disabled ||
        (t.account_id != 0 && t.account_role == 0))
        goto Exit;
    memset(p, 0, sizeof(*p));
    snprintf(p->actor, sizeof(p->actor), "token:%s", t.name);
    snprintf(p->name, sizeof(p->name), "%s", t.account_id != 0 ? t.account_name : t.name);
    p->account_id = t.account_id;
    p->token_id = t.id;
    p->role = t.account_id != 0 && t.account_role < t.role ? t.account_role : t.role;
    if (p->role == CPH_ADMIN_EDITOR)
        load_systems(sql,
                     t.account_id != 0 && t.account_role == CPH_ADMIN_EDITOR
                         ? "SELECT system_id FROM admin_token_systems WHERE token_id = ?1 AND system_id IN "
                           "(SELECT system_id FROM admin_account_systems WHERE account_id = ?2) ORDER BY system_id"
                         : "SELECT system_id FROM admin_token_systems WHERE token_id = ?1 AND ?2 = ?2 ORDER BY system_id",
                     t.id, t.account_id, p);
    touch_token(sql, t.id);
    ok = 1;
Exit:
    cph_db_unlock(db);
    return ok;
}

/* Fills p for a session of account (id, name, role text) - its systems as an editor. */
static void fill_session(sqlite3 *sql, int64_t account_id, const char *name, const char *role, cph_admin_principal_t *p)
{
    p->account_id = account_id;
    p->via_session = 1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->actor, sizeof(p->actor), "account:%s", name);
    p->role = cph_admin_role_parse(role);
    if (p->role == CPH_ADMIN_EDITOR)
        load_systems(sql, "SELECT system_id FROM admin_account_systems WHERE account_id = ?1 AND ?2 = ?2 ORDER BY system_id",
                     account_id, 0, p);
}

/* Runs q (no result rows) with two int64 parameters. Returns 0 or -1. */
static int session_exec(sqlite3 *sql, const char *q, int64_t a, int64_t b)
{
    sqlite3_stmt *st = NULL;
    int ok = 0;

    if (sqlite3_prepare_v2(sql, q, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

int cph_admin_auth_session(cph_db_t *db, const char *cookie, int64_t now, cph_admin_principal_t *p)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *sql;
    char want[65];
    int ok = 0;

    if (!is_hex64(cookie))
        return 0;
    cph_admin_sha256_hex(cookie, strlen(cookie), want);
    cph_db_lock(db);
    sql = cph_db_handle(db);
    if (sqlite3_prepare_v2(sql,
                           "SELECT s.id, s.account_id, s.csrf, s.expires_at, s.last_seen_at, a.name, a.role, a.disabled "
                           "FROM admin_sessions s JOIN admin_accounts a ON a.id = s.account_id WHERE s.sha256 = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        goto Exit;
    sqlite3_bind_text(st, 1, want, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW)
        goto Exit;
    if (now >= sqlite3_column_int64(st, 3) || now >= sqlite3_column_int64(st, 4) + CPH_ADMIN_SESSION_IDLE_S ||
        sqlite3_column_int(st, 7) != 0) {
        session_exec(sql, "DELETE FROM admin_sessions WHERE id = ?1 AND ?2 = ?2", sqlite3_column_int64(st, 0), 0);
        goto Exit;
    }
    memset(p, 0, sizeof(*p));
    p->session_id = sqlite3_column_int64(st, 0);
    snprintf(p->csrf, sizeof(p->csrf), "%s", col(st, 2));
    fill_session(sql, sqlite3_column_int64(st, 1), col(st, 5), col(st, 6), p);
    if (sqlite3_column_int64(st, 4) != now)
        session_exec(sql, "UPDATE admin_sessions SET last_seen_at = ?2 WHERE id = ?1", p->session_id, now);
    ok = p->role != 0;
Exit:
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return ok;
}

int cph_admin_csrf_ok(const cph_admin_principal_t *p, const char *header)
{
    if (p == NULL || !p->via_session || header == NULL || strlen(header) != CPH_ADMIN_TOKEN_HEX ||
        strlen(p->csrf) != CPH_ADMIN_TOKEN_HEX)
        return 0;
    return CRYPTO_memcmp(header, p->csrf, CPH_ADMIN_TOKEN_HEX) == 0;
}

int cph_admin_origin_ok(const char *origin, const char *host)
{
    const char *rest;

    if (origin == NULL)
        return 1;
    if (host == NULL || host[0] == '\0')
        return 0;
    if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else
        return 0;
    return strcasecmp(rest, host) == 0;
}

/* ---------------------------------------------------------------- audit, revocation */

int cph_admin_audit(cph_db_t *db, const char *actor, const char *action, const char *entity_type, int64_t entity_id,
                    const json_t *before, const json_t *after, cph_error_t *err)
{
    cph_db_change_t change = {
        .action = action, .entity_type = entity_type, .entity_id = entity_id, .before = (json_t *)before, .after = (json_t *)after};
    char epoch[33];
    uint64_t generation = 0;

    if (cph_db_meta(db, epoch, &generation) != 0)
        return cph_error_set(err, "internal", "", "internal database error");
    return cph_audit_record(db, actor, &change, generation, err);
}

int cph_admin_revoke_account(cph_db_t *db, int64_t account_id)
{
    sqlite3 *sql = cph_db_handle(db);

    if (session_exec(sql, "DELETE FROM admin_sessions WHERE account_id = ?1 AND ?2 = ?2", account_id, 0) != 0 ||
        session_exec(sql, "DELETE FROM admin_tokens WHERE account_id = ?1 AND ?2 = ?2", account_id, 0) != 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- login */

static pthread_once_t login_once = PTHREAD_ONCE_INIT;
static cph_loginlimit_t *login_limit;
static char *dummy_hash;

static void login_init(void)
{
    cph_loginlimit_config_t c;
    cph_error_t err = {0};
    char pw[65];

    cph_loginlimit_defaults(&c);
    login_limit = cph_loginlimit_new(&c);
    if (cph_admin_random_hex(pw) == 0)
        dummy_hash = cph_password_hash(pw, strlen(pw), "", &err);
    OPENSSL_cleanse(pw, sizeof(pw));
    if (dummy_hash == NULL)
        cph_log_error(MODULE, "cannot make the dummy password hash: admin logins will fail");
}

void cph_admin_login_reset(void)
{
    cph_loginlimit_config_t c;

    pthread_once(&login_once, login_init);
    cph_loginlimit_defaults(&c);
    cph_loginlimit_free(login_limit);
    login_limit = cph_loginlimit_new(&c);
}

/* The stored account a login names. */
typedef struct st_login_account_t {
    int found, disabled;
    int64_t id;
    char *hash;
    char role[16];
} login_account_t;

static void load_login_account(cph_db_t *db, const char *name, login_account_t *acc)
{
    sqlite3_stmt *st = NULL;

    memset(acc, 0, sizeof(*acc));
    if (!cph_admin_name_valid(name))
        return;
    cph_db_lock(db);
    if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT id, password_hash, disabled, role FROM admin_accounts WHERE name = ?1", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            acc->found = 1;
            acc->id = sqlite3_column_int64(st, 0);
            acc->hash = strdup(col(st, 1));
            acc->disabled = sqlite3_column_int(st, 2);
            snprintf(acc->role, sizeof(acc->role), "%s", col(st, 3));
        }
    }
    sqlite3_finalize(st);
    cph_db_unlock(db);
}

static void audit_failed(cph_db_t *db, const char *name, const char *ip)
{
    json_t *after = json_pack("{s:o, s:s}", "name", cph_admin_name_valid(name) ? json_string(name) : json_null(), "ip", ip);
    cph_error_t err = {0};

    cph_db_lock(db);
    if (cph_admin_audit(db, "anonymous", "login_failed", "admin_session", 0, NULL, after, &err) != 0)
        cph_log_warn(MODULE, "cannot audit a failed admin login");
    cph_db_unlock(db);
    json_decref(after);
}

/* The session row of a successful login, its last_login_at and audit row, in one transaction. Lock held. */
static int start_session(cph_db_t *db, const login_account_t *acc, const char *name, const char *ip, int64_t now, const char *sha,
                         const char *csrf, cph_admin_principal_t *p)
{
    sqlite3 *sql = cph_db_handle(db);
    sqlite3_stmt *st = NULL;
    cph_error_t err = {0};
    json_t *after = NULL;
    char at[32];
    int ok = 0;

    cph_db_now(at, sizeof(at));
    if (cph_db_exec(db, "BEGIN IMMEDIATE", &err) != 0)
        return -1;
    if (sqlite3_prepare_v2(sql,
                           "INSERT INTO admin_sessions (sha256, account_id, csrf, created_at, expires_at, last_seen_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
                           -1, &st, NULL) != SQLITE_OK)
        goto Exit;
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, acc->id);
    sqlite3_bind_text(st, 3, csrf, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, now + CPH_ADMIN_SESSION_TTL_S);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto Exit;
    memset(p, 0, sizeof(*p));
    p->session_id = sqlite3_last_insert_rowid(sql);
    snprintf(p->csrf, sizeof(p->csrf), "%s", csrf);
    fill_session(sql, acc->id, name, acc->role, p);
    after = json_pack("{s:s, s:s}", "account", name, "ip", ip);
    ok = session_exec(sql, "DELETE FROM admin_sessions WHERE expires_at <= ?1 OR last_seen_at + ?2 <= ?1", now,
                      CPH_ADMIN_SESSION_IDLE_S) == 0 &&
         session_exec(sql,
                      "UPDATE admin_accounts SET last_login_at = strftime('%Y-%m-%dT%H:%M:%fZ', ?2, 'unixepoch') "
                      "WHERE id = ?1",
                      acc->id, now) == 0 &&
         cph_admin_audit(db, p->actor, "login", "admin_session", p->session_id, NULL, after, &err) == 0 &&
         cph_db_exec(db, "COMMIT", &err) == 0;
Exit:
    sqlite3_finalize(st);
    json_decref(after);
    if (!ok)
        cph_db_exec(db, "ROLLBACK", NULL);
    return ok ? 0 : -1;
}

cph_admin_login_t cph_admin_login(cph_db_t *db, const char *name, const char *password, const char *ip, int64_t now,
                                  char cookie[65], cph_admin_principal_t *p, int64_t *retry_after)
{
    login_account_t acc;
    char key[CPH_ADMIN_NAME_MAX + 2], csrf[65], sha[65];
    cph_admin_login_t ret = CPH_ADMIN_LOGIN_INVALID;
    int ok;

    pthread_once(&login_once, login_init);
    snprintf(key, sizeof(key), "=%s", name);
    for (char *c = key; *c != '\0'; ++c)
        *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
    if ((*retry_after = cph_loginlimit_check(login_limit, ip, key, now)) > 0)
        return CPH_ADMIN_LOGIN_LIMITED;
    load_login_account(db, name, &acc);
    if (!acc.found && dummy_hash == NULL)
        return CPH_ADMIN_LOGIN_ERROR;
    ok = cph_password_verify(acc.found ? acc.hash : dummy_hash, password, strlen(password));
    if (!ok || !acc.found || acc.disabled) {
        cph_loginlimit_fail(login_limit, ip, key, now);
        cph_log_info(MODULE, "admin login failed from %s", ip);
        audit_failed(db, name, ip);
        goto Exit;
    }
    cph_loginlimit_success(login_limit, key);
    ret = CPH_ADMIN_LOGIN_ERROR;
    if (cph_admin_random_hex(cookie) != 0 || cph_admin_random_hex(csrf) != 0)
        goto Exit;
    cph_admin_sha256_hex(cookie, strlen(cookie), sha);
    cph_db_lock(db);
    if (start_session(db, &acc, name, ip, now, sha, csrf, p) == 0)
        ret = CPH_ADMIN_LOGIN_OK;
    cph_db_unlock(db);
Exit:
    if (ret != CPH_ADMIN_LOGIN_OK)
        OPENSSL_cleanse(cookie, 65);
    OPENSSL_cleanse(csrf, sizeof(csrf));
    free(acc.hash);
    return ret;
}

int cph_admin_logout(cph_db_t *db, const cph_admin_principal_t *p)
{
    json_t *before = json_pack("{s:s}", "account", p->name);
    cph_error_t err = {0};
    int ret;

    cph_db_lock(db);
    ret = session_exec(cph_db_handle(db), "DELETE FROM admin_sessions WHERE id = ?1 AND ?2 = ?2", p->session_id, 0);
    if (ret == 0)
        ret = cph_admin_audit(db, p->actor, "logout", "admin_session", p->session_id, before, NULL, &err);
    cph_db_unlock(db);
    json_decref(before);
    return ret;
}

/* ---------------------------------------------------------------- bootstrap */

/* Stores token's sha256 as the owner token "admin" (replace: over an existing one, which becomes owner again). */
static int store_admin_token(cph_db_t *db, const char *token, int replace)
{
    sqlite3_stmt *st = NULL;
    char sha[65], now[32];
    int ok;

    cph_admin_sha256_hex(token, strlen(token), sha);
    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           replace
                               ? "INSERT INTO admin_tokens (name, sha256, created_at) VALUES ('admin', ?1, ?2) "
                                 "ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, role = 'owner', account_id = NULL, "
                                 "expires_at = NULL, prefix = NULL WHERE sha256 <> excluded.sha256 OR role <> 'owner' OR "
                                 "account_id IS NOT NULL OR expires_at IS NOT NULL"
                               : "INSERT INTO admin_tokens (name, sha256, created_at) VALUES ('admin', ?1, ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

int cph_admin_bootstrap_token(cph_db_t *db, const char *token, char generated[65], cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int has = 0, ret;

    generated[0] = '\0';
    cph_db_lock(db);
    if (token != NULL) {
        ret = store_admin_token(db, token, 1);
    } else {
        if (sqlite3_prepare_v2(cph_db_handle(db), "SELECT 1 FROM admin_tokens WHERE name = 'admin'", -1, &st, NULL) == SQLITE_OK)
            has = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        ret = has ? 0 : cph_admin_random_hex(generated) != 0 ? -1 : store_admin_token(db, generated, 0);
        if (ret != 0) {
            OPENSSL_cleanse(generated, 65);
            generated[0] = '\0';
        }
    }
    cph_db_unlock(db);
    return ret != 0 ? cph_error_set(err, "internal", "", "cannot store the admin token") : 0;
}

/* Creates or updates account user as an enabled owner with the argon2id hash. Lock held. */
static int upsert_owner(cph_db_t *db, const char *user, const char *hash, cph_error_t *err)
{
    sqlite3 *sql = cph_db_handle(db);
    sqlite3_stmt *st = NULL;
    json_t *after = NULL;
    char now[32];
    int64_t id;
    int ok;

    cph_db_now(now, sizeof(now));
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) != 0)
        return -1;
    ok = sqlite3_prepare_v2(sql,
                            "INSERT INTO admin_accounts (name, password_hash, role, disabled, created_at, updated_at) "
                            "VALUES (?1, ?2, 'owner', 0, ?3, ?3) ON CONFLICT (name) DO UPDATE SET password_hash = "
                            "excluded.password_hash, role = 'owner', disabled = 0, updated_at = excluded.updated_at "
                            "RETURNING id",
                            -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(st) == SQLITE_ROW;
    }
    id = ok ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    after = json_pack("{s:s, s:s, s:b}", "name", user, "role", "owner", "credentials_changed", 1);
    ok = ok && cph_admin_revoke_account(db, id) == 0 &&
         cph_admin_audit(db, "bootstrap", "update", "admin_account", id, NULL, after, err) == 0 &&
         cph_db_exec(db, "COMMIT", err) == 0;
    json_decref(after);
    if (!ok) {
        cph_db_exec(db, "ROLLBACK", NULL);
        return cph_error_set(err, "internal", "", "cannot store the admin account");
    }
    return 0;
}

/* 1 when user exists as an enabled owner whose password is password: nothing to do. Lock held. */
static int owner_current(cph_db_t *db, const char *user, const char *password, int *any)
{
    sqlite3_stmt *st = NULL;
    int cur = 0;

    *any = 0;
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT (SELECT count(*) FROM admin_accounts), password_hash, role, disabled "
                           "FROM (SELECT 1) LEFT JOIN admin_accounts ON name = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *any = sqlite3_column_int(st, 0) > 0;
        cur = password != NULL && sqlite3_column_type(st, 1) != SQLITE_NULL && strcmp(col(st, 2), "owner") == 0 &&
              sqlite3_column_int(st, 3) == 0 && cph_password_verify(col(st, 1), password, strlen(password));
    }
    sqlite3_finalize(st);
    return cur;
}

int cph_admin_bootstrap(cph_db_t *db, const char *user, const char *password, char generated[65], cph_error_t *err)
{
    char *hash = NULL;
    int any, ret = 0;

    generated[0] = '\0';
    if (!cph_admin_name_valid(user))
        return cph_error_set(err, "invalid", "", "CEPHALO_ADMIN_USER must be 1-64 of [A-Za-z0-9._@-]");
    if (password != NULL && (strlen(password) < CPH_ADMIN_PASSWORD_MIN || strlen(password) > CPH_PASSWORD_MAX))
        return cph_error_set(err, "invalid", "", "CEPHALO_ADMIN_PASSWORD must be %d..%d bytes", CPH_ADMIN_PASSWORD_MIN,
                             CPH_PASSWORD_MAX);
    cph_db_lock(db);
    if (owner_current(db, user, password, &any) || (password == NULL && any))
        goto Exit;
    if (password == NULL) {
        if (cph_admin_random_hex(generated) != 0) {
            ret = cph_error_set(err, "internal", "", "no randomness");
            goto Exit;
        }
        generated[24] = '\0'; /* 96 bits */
    }
    if ((hash = cph_password_hash(password != NULL ? password : generated, strlen(password != NULL ? password : generated), "",
                                  err)) == NULL ||
        upsert_owner(db, user, hash, err) != 0) {
        OPENSSL_cleanse(generated, 65);
        generated[0] = '\0';
        ret = -1;
    }
Exit:
    cph_db_unlock(db);
    free(hash);
    return ret;
}
