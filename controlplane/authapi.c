/*
 * authapi: login, refresh and logout for users, on a libmicrohttpd daemon of its own (not the admin API's: these
 * requests come from anybody through the data planes, the admin API's from operators).
 *
 * One answer for every login failure. Unknown user, wrong password, disabled user, a user outside the system and an
 * unknown system are all 401 invalid_credentials, and every one of them runs exactly one argon2id verify (an
 * unknown user against a dummy hash made at start), so neither the body nor the time tells them apart. The argon2
 * work runs without the database lock.
 *
 * Rate limiting (loginlimit.c) is keyed by the client IP and by the account: the user's id when the name or email
 * exists, else the lower-cased name as given - so alternating username and email does not double the tries. A
 * limited login is answered 429 before any password work.
 *
 * The client IP is the TCP peer, except that a loopback peer (a data plane on this host) may name the client in
 * the LAST X-Forwarded-For element - the one the data plane appended itself.
 *
 * Nothing here logs or echoes a password or a token; answers carry Cache-Control: no-store.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "controlplane/authapi.h"
#include "controlplane/authapi_body.h"
#include "controlplane/httpd.h"
#include "controlplane/password.h"
#include "controlplane/settings.h"
#include "controlplane/signing.h"
#include "controlplane/store.h"
#include "controlplane/store_refresh.h"
#include "controlplane/store_revocation.h"
#include "controlplane/token.h"
#include "proto/log.h"

#define MODULE "cp/authapi"
#define AUTH_UNAVAILABLE_RETRY_S 5 /* Retry-After of a 503 while the signing key is unavailable */
#define USERNAME_MAX CPH_AUTHAPI_USERNAME_MAX
#define EMAIL_MAX CPH_AUTHAPI_EMAIL_MAX
#define SYSTEM_MAX CPH_AUTHAPI_SYSTEM_MAX
#define IP_MAX 64

struct st_cph_authapi_t {
    struct MHD_Daemon *mhd;
    cph_db_t *db;
    cph_loginlimit_t *limit;
    char *dummy_hash;
    _Atomic int64_t last_prune;
};

/* Per-request state, from the headers to the completion callback. */
typedef struct st_ctx_t {
    cph_authapi_t *a;
    struct MHD_Connection *conn;
    cph_authapi_route_t route;
    char *buf;
    size_t len;
    int too_large;
    int answered;
    cph_authapi_body_t body; /* the checked body (its root NULL for an empty logout body) */
    unsigned status;
    json_t *resp; /* NULL with 204 */
    int64_t retry_after;
} ctx_t;

/* What a token is issued for, read from the database. */
typedef struct st_principal_t {
    char username[USERNAME_MAX + 1];
    char system[SYSTEM_MAX + 1];
    int superuser;
    json_t *roles;
    json_t *groups;
    cph_signing_new_t key;
} principal_t;

/* ---------------------------------------------------------------- answers */

static void reply(ctx_t *ctx, unsigned status, json_t *resp)
{
    json_decref(ctx->resp);
    ctx->status = status;
    ctx->resp = resp;
}

static void fail(ctx_t *ctx, unsigned status, const char *code, const char *msg)
{
    reply(ctx, status, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

static enum MHD_Result send_answer(ctx_t *ctx)
{
    struct MHD_Response *r;
    enum MHD_Result ret;
    char *text = NULL, num[24];

    if (ctx->status == 0)
        fail(ctx, 500, "internal", "internal error");
    if (ctx->resp != NULL && (text = json_dumps(ctx->resp, JSON_COMPACT)) == NULL)
        cph_fatal(MODULE, "out of memory");
    r = MHD_create_response_from_buffer(text != NULL ? strlen(text) : 0, text != NULL ? text : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (text != NULL) {
        OPENSSL_cleanse(text, strlen(text)); /* it may hold tokens */
        free(text);
        MHD_add_response_header(r, "Content-Type", "application/json");
    }
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Pragma", "no-cache");
    if (ctx->status == 405)
        MHD_add_response_header(r, "Allow", "POST");
    if (ctx->status == 429 || ctx->status == 503) {
        snprintf(num, sizeof(num), "%lld", (long long)ctx->retry_after);
        MHD_add_response_header(r, "Retry-After", num);
    }
    ret = MHD_queue_response(ctx->conn, ctx->status, r);
    MHD_destroy_response(r);
    ctx->answered = 1;
    return ret;
}

static void reply_tokens(ctx_t *ctx, const cph_token_t *access, const char *refresh)
{
    const cph_auth_settings_t *s = cph_settings_auth();

    reply(ctx, 200,
          json_pack("{s:s, s:s, s:I, s:s, s:I}", "access_token", access->jwt, "token_type", "Bearer", "expires_in",
                    (json_int_t)(access->exp - access->iat), "refresh_token", refresh, "refresh_expires_in",
                    (json_int_t)s->refresh_ttl_s));
}

/* ---------------------------------------------------------------- the client IP */

static int is_loopback(const struct sockaddr *sa)
{
    static const unsigned char MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (memcmp(a->s6_addr, MAPPED, 12) == 0 && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Normalises an IP literal (surrounding blanks allowed) into out; -1 when it is not one. */
static int normalise_ip(const char *s, size_t len, char out[IP_MAX])
{
    char buf[IP_MAX];
    unsigned char addr[16];

    while (len > 0 && (*s == ' ' || *s == '\t'))
        ++s, --len;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        --len;
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1)
        return inet_ntop(AF_INET, addr, out, IP_MAX) != NULL ? 0 : -1;
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return inet_ntop(AF_INET6, addr, out, IP_MAX) != NULL ? 0 : -1;
    return -1;
}

static enum MHD_Result last_xff(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    if (key != NULL && value != NULL && strcasecmp(key, "X-Forwarded-For") == 0)
        *(const char **)cls = value;
    return MHD_YES;
}

static void client_ip(struct MHD_Connection *conn, char out[IP_MAX])
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    const char *xff = NULL, *last;

    snprintf(out, IP_MAX, "unknown");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, IP_MAX);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, IP_MAX);
    if (!is_loopback(sa))
        return;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, last_xff, &xff);
    if (xff == NULL)
        return;
    last = strrchr(xff, ',');
    last = last != NULL ? last + 1 : xff;
    normalise_ip(last, strlen(last), out); /* out keeps the peer when the element is not an address */
}

/* ---------------------------------------------------------------- database reads */

/* A login's account: found or not, and what the decision needs. */
typedef struct st_account_t {
    int found;
    int64_t user_id;
    char *hash;
    int enabled;
    int superuser;
    int64_t system_id; /* 0: unknown system */
    int member;
} account_t;

static int64_t select_id(cph_db_t *db, const char *sql, const char *text, int64_t a, int64_t b)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (text != NULL)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_int64(st, 1, a), sqlite3_bind_int64(st, 2, b);
    if (sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

static void load_account(cph_db_t *db, const char *username, const char *email, const char *system, account_t *acc)
{
    sqlite3_stmt *st = NULL;

    memset(acc, 0, sizeof(*acc));
    cph_db_lock(db);
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           username != NULL ? "SELECT id, password_hash, enabled, superuser FROM users WHERE username = ?1"
                                            : "SELECT id, password_hash, enabled, superuser FROM users WHERE email = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, username != NULL ? username : email, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 1) != NULL) {
            acc->found = 1;
            acc->user_id = sqlite3_column_int64(st, 0);
            acc->hash = strdup((const char *)sqlite3_column_text(st, 1));
            acc->enabled = sqlite3_column_int(st, 2);
            acc->superuser = sqlite3_column_int(st, 3);
        }
    }
    sqlite3_finalize(st);
    acc->system_id = select_id(db, "SELECT id FROM systems WHERE code = ?1", system, 0, 0);
    if (acc->found && acc->system_id > 0)
        acc->member = select_id(db, "SELECT 1 FROM user_systems WHERE user_id = ?1 AND system_id = ?2", NULL, acc->user_id,
                                acc->system_id) == 1;
    cph_db_unlock(db);
}

/* The names (column 0) of a query with ?1 = user id, ?2 = system id, as a new array. */
static json_t *select_names(cph_db_t *db, const char *sql, int64_t user_id, int64_t system_id)
{
    sqlite3_stmt *st = NULL;
    json_t *out = json_array();

    if (sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) {
        json_decref(out);
        return NULL;
    }
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, system_id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(out, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    return out;
}

static void principal_clear(principal_t *p)
{
    json_decref(p->roles);
    json_decref(p->groups);
    cph_signing_new_clear(&p->key);
}

/* Reads (one lock) the claims of user_id in system_id and the active signing key. Returns 0 or -1 with err. */
static int load_principal(cph_db_t *db, int64_t user_id, int64_t system_id, principal_t *p, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;

    memset(p, 0, sizeof(*p));
    cph_db_lock(db);
    if (sqlite3_prepare_v2(cph_db_handle(db),
                           "SELECT u.username, u.superuser, s.code FROM users u, systems s WHERE u.id = ?1 AND s.id = ?2", -1, &st,
                           NULL) != SQLITE_OK) {
        cph_store_internal(db, err, "prepare principal read");
        goto Exit;
    }
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, system_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        cph_error_set(err, "invalid_grant", "", "no such user or system");
        goto Exit;
    }
    snprintf(p->username, sizeof(p->username), "%s", (const char *)sqlite3_column_text(st, 0));
    p->superuser = sqlite3_column_int(st, 1);
    snprintf(p->system, sizeof(p->system), "%s", (const char *)sqlite3_column_text(st, 2));
    p->roles = select_names(db,
                            "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id "
                            "WHERE ur.user_id = ?1 AND r.system_id = ?2 ORDER BY r.name",
                            user_id, system_id);
    p->groups = select_names(db,
                             "SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id "
                             "WHERE ug.user_id = ?1 AND g.system_id = ?2 ORDER BY g.name",
                             user_id, system_id);
    if (p->roles == NULL || p->groups == NULL) {
        cph_store_internal(db, err, "principal read");
        goto Exit;
    }
    ret = cph_signing_active(db, &p->key, err);
Exit:
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return ret;
}

/* ---------------------------------------------------------------- issuing */

/*
 * The iat of a token issued now: past the user's revocation, whose `before` refuses every token with iat <= before.
 * A change and a login in the same second (time() is a coarse clock, so even "the next second" by another clock may
 * still read the same) would otherwise give a token the data planes refuse; one second ahead is within any leeway.
 */
static int64_t iat_after_revocation(cph_db_t *db, int64_t user_id, int64_t now)
{
    int64_t before;

    cph_db_lock(db);
    before = cph_store_revocation_user_before(db, user_id);
    cph_db_unlock(db);
    return before >= now ? before + 1 : now;
}

/* Signs the access token for user_id in system_id with jti and answers 200 with it and refresh. */
static void answer_pair(ctx_t *ctx, int64_t user_id, int64_t system_id, const char *jti, const char *refresh, int64_t now)
{
    cph_token_claims_t c = {user_id, NULL, NULL, NULL, NULL, 0};
    cph_token_t access = {0};
    principal_t p;
    cph_error_t err = {0};

    if (load_principal(ctx->a->db, user_id, system_id, &p, &err) != 0) {
        if (strcmp(err.code, "invalid_grant") == 0)
            fail(ctx, 401, ctx->route == CPH_AUTHAPI_LOGIN ? "invalid_credentials" : "invalid_grant",
                 "the login is no longer valid");
        else if (strcmp(err.code, "unavailable") == 0) { /* the signing key lives in Vault, not read since the restart */
            ctx->retry_after = AUTH_UNAVAILABLE_RETRY_S;
            fail(ctx, 503, "unavailable", "tokens cannot be issued right now; try again later");
        } else
            fail(ctx, 500, "internal", "internal error");
        principal_clear(&p);
        return;
    }
    c.username = p.username;
    c.system = p.system;
    c.roles = p.roles;
    c.groups = p.groups;
    c.superuser = p.superuser;
    now = iat_after_revocation(ctx->a->db, user_id, now);
    if (cph_token_issue(&p.key, &c, jti, now, cph_settings_auth()->access_ttl_s, &access, &err) != 0)
        fail(ctx, 500, "internal", "internal error");
    else
        reply_tokens(ctx, &access, refresh);
    cph_token_clear(&access);
    principal_clear(&p);
}

static void maybe_prune(cph_authapi_t *a, int64_t now)
{
    int64_t last = atomic_load(&a->last_prune);
    cph_error_t err;

    if (now - last < CPH_AUTHAPI_PRUNE_EVERY_S || !atomic_compare_exchange_strong(&a->last_prune, &last, now))
        return;
    if (cph_store_refresh_prune(a->db, now, CPH_AUTHAPI_PRUNE_GRACE_S, &err) < 0)
        cph_log_warn(MODULE, "cannot prune refresh tokens: %s", err.msg);
}

/* ---------------------------------------------------------------- login */

/* The limiter's account key: the user id when the account exists, else the lower-cased name as given. */
static void account_key(const account_t *acc, const char *name, char *out, size_t cap)
{
    if (acc->found) {
        snprintf(out, cap, "#%lld", (long long)acc->user_id);
        return;
    }
    snprintf(out, cap, "=%s", name);
    for (char *p = out; *p != '\0'; ++p)
        *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
}

/* Runs the one argon2id verify of a login and decides. 1 = the credentials are good for this system. */
static int verify(cph_authapi_t *a, const account_t *acc, const char *password)
{
    int ok = cph_password_verify(acc->found ? acc->hash : a->dummy_hash, password, strlen(password));

    return ok && acc->found && acc->enabled && acc->system_id > 0 && (acc->member || acc->superuser);
}

static void login_success(ctx_t *ctx, const account_t *acc, int64_t now)
{
    char refresh[CPH_REFRESH_TOKEN_CHARS + 1], sha[65], jti[2 * CPH_TOKEN_JTI_BYTES + 1], family[33];
    cph_error_t err = {0};

    if (cph_store_refresh_new_token(refresh, sha) != 0 || cph_token_new_jti(jti) != 0) {
        fail(ctx, 500, "internal", "internal error");
        return;
    }
    if (cph_store_refresh_issue(ctx->a->db, sha, acc->user_id, acc->system_id, jti, now, cph_settings_auth()->refresh_ttl_s, family,
                                &err) != 0) {
        if (strcmp(err.code, "invalid_grant") == 0)
            fail(ctx, 401, "invalid_credentials", "invalid credentials");
        else
            fail(ctx, 500, "internal", "internal error");
    } else {
        answer_pair(ctx, acc->user_id, acc->system_id, jti, refresh, now);
    }
    OPENSSL_cleanse(refresh, sizeof(refresh));
    maybe_prune(ctx->a, now);
}

static void do_login(ctx_t *ctx)
{
    const char *username = ctx->body.username, *email = ctx->body.email, *password = ctx->body.password, *system = ctx->body.system;
    char ip[IP_MAX], key[EMAIL_MAX + 2];
    int64_t now = (int64_t)time(NULL), wait;
    account_t acc;

    client_ip(ctx->conn, ip);
    load_account(ctx->a->db, username, email, system, &acc);
    account_key(&acc, username != NULL ? username : email, key, sizeof(key));
    if ((wait = cph_loginlimit_check(ctx->a->limit, ip, key, now)) > 0) {
        ctx->retry_after = wait;
        fail(ctx, 429, "too_many_attempts", "too many failed logins: try again later");
    } else if (!verify(ctx->a, &acc, password)) {
        cph_loginlimit_fail(ctx->a->limit, ip, key, now);
        cph_log_info(MODULE, "login failed from %s", ip);
        fail(ctx, 401, "invalid_credentials", "invalid credentials");
    } else {
        cph_loginlimit_success(ctx->a->limit, key);
        login_success(ctx, &acc, now);
    }
    free(acc.hash);
}

/* ---------------------------------------------------------------- refresh and logout */

static void do_refresh(ctx_t *ctx)
{
    char old_sha[65], sha[65], refresh[CPH_REFRESH_TOKEN_CHARS + 1], jti[2 * CPH_TOKEN_JTI_BYTES + 1];
    const char *presented = ctx->body.refresh_token;
    int64_t now = (int64_t)time(NULL);
    cph_refresh_row_t row;
    cph_error_t err = {0};

    if (cph_store_refresh_hash(presented, old_sha) != 0) {
        fail(ctx, 401, "invalid_grant", "invalid refresh token");
        return;
    }
    if (cph_store_refresh_new_token(refresh, sha) != 0 || cph_token_new_jti(jti) != 0) {
        fail(ctx, 500, "internal", "internal error");
        return;
    }
    if (cph_store_refresh_rotate(ctx->a->db, old_sha, sha, jti, now, cph_settings_auth()->refresh_ttl_s, &row, &err) == 0) {
        answer_pair(ctx, row.user_id, row.system_id, jti, refresh, now);
    } else if (strcmp(err.code, "reused") == 0) {
        cph_log_warn(MODULE, "refresh token reused: revoking its family (user %lld)", (long long)row.user_id);
        if (cph_store_refresh_revoke(ctx->a->db, row.family, NULL, 0, now, "reuse", &err) != 0)
            cph_log_error(MODULE, "cannot revoke a refresh family: %s", err.msg);
        fail(ctx, 401, "invalid_grant", "invalid refresh token");
    } else if (strcmp(err.code, "invalid_grant") == 0) {
        fail(ctx, 401, "invalid_grant", "invalid refresh token");
    } else {
        fail(ctx, 500, "internal", "internal error");
    }
    OPENSSL_cleanse(refresh, sizeof(refresh));
}

/* The access token of "Authorization: Bearer <jwt>" when it is one of ours: jti and exp. Returns 0 or -1. */
static int bearer(ctx_t *ctx, int64_t now, char jti[CPH_TOKEN_JTI_MAX + 1], int64_t *exp)
{
    const char *h = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    cph_error_t err;
    int ret;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return -1;
    for (h += 7; *h == ' '; ++h)
        ;
    cph_db_lock(ctx->a->db);
    ret = cph_token_verify_own(ctx->a->db, h, now, jti, exp, &err);
    cph_db_unlock(ctx->a->db);
    return ret;
}

static void do_logout(ctx_t *ctx)
{
    const char *presented = ctx->body.refresh_token;
    char sha[65], jti[CPH_TOKEN_JTI_MAX + 1], family[33] = "";
    int64_t now = (int64_t)time(NULL), exp = 0;
    int has_jti;
    cph_refresh_row_t row;
    cph_error_t err = {0};

    if (presented != NULL && cph_store_refresh_hash(presented, sha) == 0 &&
        cph_store_refresh_find(ctx->a->db, sha, &row, &err) == 0)
        snprintf(family, sizeof(family), "%s", row.family);
    has_jti = bearer(ctx, now, jti, &exp) == 0;
    if (has_jti && family[0] == '\0' && cph_store_refresh_family_of(ctx->a->db, jti, family, &err) != 0)
        family[0] = '\0';
    if ((family[0] != '\0' || has_jti) && cph_store_refresh_revoke(ctx->a->db, family[0] != '\0' ? family : NULL,
                                                                   has_jti ? jti : NULL, exp, now, "logout", &err) != 0) {
        fail(ctx, 500, "internal", "internal error");
        return;
    }
    reply(ctx, 204, NULL);
}

/* ---------------------------------------------------------------- requests */

/* Routing and the checks that need only the headers. Returns 1 when ctx holds an answer to send now. */
static int on_headers(ctx_t *ctx, const char *url, const char *method)
{
    const char *clen;

    if (strcmp(url, "/auth/login") == 0)
        ctx->route = CPH_AUTHAPI_LOGIN;
    else if (strcmp(url, "/auth/refresh") == 0)
        ctx->route = CPH_AUTHAPI_REFRESH;
    else if (strcmp(url, "/auth/logout") == 0)
        ctx->route = CPH_AUTHAPI_LOGOUT;
    else {
        fail(ctx, 404, "not_found", "no such resource");
        return 1;
    }
    if (strcmp(method, "POST") != 0) {
        fail(ctx, 405, "method_not_allowed", "method not allowed");
        return 1;
    }
    clen = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen != NULL && strtoull(clen, NULL, 10) > CPH_AUTHAPI_BODY_MAX) {
        fail(ctx, 400, "invalid", "the body is over 16 KiB");
        return 1;
    }
    return 0;
}

static void on_body(ctx_t *ctx, const char *data, size_t len)
{
    if (ctx->too_large || len > CPH_AUTHAPI_BODY_MAX - ctx->len) {
        ctx->too_large = 1; /* count and drop: never buffer past the cap */
        return;
    }
    if (ctx->buf == NULL && (ctx->buf = malloc(CPH_AUTHAPI_BODY_MAX)) == NULL)
        cph_fatal(MODULE, "out of memory");
    memcpy(ctx->buf + ctx->len, data, len);
    ctx->len += len;
}

static void on_complete(ctx_t *ctx)
{
    char msg[CPH_AUTHAPI_MSG_MAX];

    if (ctx->too_large) {
        fail(ctx, 400, "invalid", "the body is over 16 KiB");
        return;
    }
    if (cph_authapi_body_read(ctx->route, ctx->buf, ctx->len, &ctx->body, msg) != 0) {
        fail(ctx, 400, "invalid", msg);
        return;
    }
    if (ctx->route == CPH_AUTHAPI_LOGIN)
        do_login(ctx);
    else if (ctx->route == CPH_AUTHAPI_REFRESH)
        do_refresh(ctx);
    else
        do_logout(ctx);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    ctx_t *ctx = *con_cls;

    (void)version;
    if (ctx == NULL) {
        if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
            cph_fatal(MODULE, "out of memory");
        *con_cls = ctx;
        ctx->a = cls;
        ctx->conn = conn;
        if (on_headers(ctx, url, method))
            return send_answer(ctx);
        return MHD_YES;
    }
    if (ctx->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        on_body(ctx, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    on_complete(ctx);
    return send_answer(ctx);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    ctx_t *ctx = *con_cls;

    (void)cls, (void)conn, (void)toe;
    if (ctx == NULL)
        return;
    if (ctx->buf != NULL)
        OPENSSL_cleanse(ctx->buf, ctx->len); /* it held a password or a token */
    free(ctx->buf);
    cph_authapi_body_clear(&ctx->body);
    json_decref(ctx->resp);
    free(ctx);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- the daemon */

/* A hash of a random password nobody knows: what an unknown user's login is verified against. */
static char *make_dummy_hash(cph_error_t *err)
{
    unsigned char raw[16];
    char pw[33];
    char *hash;

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        cph_error_set(err, "internal", "", "no randomness");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(raw); ++i)
        snprintf(pw + 2 * i, 3, "%02x", raw[i]);
    hash = cph_password_hash(pw, strlen(pw), "", err);
    OPENSSL_cleanse(pw, sizeof(pw));
    return hash;
}

cph_authapi_t *cph_authapi_start(const char *listen, cph_db_t *db, const cph_loginlimit_config_t *limits, cph_error_t *err)
{
    cph_loginlimit_config_t defaults;
    cph_authapi_t *a;

    if ((a = calloc(1, sizeof(*a))) == NULL)
        cph_fatal(MODULE, "out of memory");
    a->db = db;
    if ((a->dummy_hash = make_dummy_hash(err)) == NULL) {
        free(a);
        return NULL;
    }
    cph_loginlimit_defaults(&defaults);
    a->limit = cph_loginlimit_new(limits != NULL ? limits : &defaults);
    if ((a->mhd = cph_httpd_start(listen, "auth", on_request, a, on_completed, CPH_AUTHAPI_CONNECTIONS_MAX,
                                  CPH_AUTHAPI_CONNECTION_TIMEOUT_S, err)) == NULL) {
        cph_authapi_stop(a);
        return NULL;
    }
    return a;
}

uint16_t cph_authapi_port(const cph_authapi_t *a)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);

    return info != NULL ? info->port : 0;
}

void cph_authapi_stop(cph_authapi_t *a)
{
    if (a == NULL)
        return;
    if (a->mhd != NULL)
        MHD_stop_daemon(a->mhd);
    cph_loginlimit_free(a->limit);
    free(a->dummy_hash);
    free(a);
}
