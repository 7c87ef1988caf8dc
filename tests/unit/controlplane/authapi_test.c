/*
 * authapi_test: the auth API over real HTTP (a plain socket client against the daemon on an ephemeral loopback
 * port) - login by username and by email with every claim of the token checked, one identical 401 for unknown
 * user / wrong password / disabled user / non-member / unknown system, a superuser into any system, hostile bodies
 * (bad JSON, duplicate keys, wrong types, unknown members, empty password, a body over 16 KiB declared or chunked,
 * a 1 MB username) answered 400 without echoing anything, 404 / 405, the account and IP rate limits (429 with
 * Retry-After, the client IP taken from the last X-Forwarded-For element of a loopback peer), refresh rotation,
 * reuse revoking the family and writing the revocation rows, and logout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/authapi.h"
#include "controlplane/password.h"
#include "controlplane/settings.h"
#include "controlplane/signing.h"
#include "controlplane/token.h"

#define PW "correct horse battery"

typedef struct st_env_t {
    fixture_t *fx;
    cph_authapi_t *api;
    uint16_t port;
} env_t;

static char *shared_hash;

/* ---------------------------------------------------------------- HTTP client */

typedef struct st_resp_t {
    int status;
    char headers[4096];
    char *body;
    json_t *json;
} resp_t;

static void resp_free(resp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may answer and close early: read what it said */
        p += w;
        n -= (size_t)w;
    }
}

static void parse_response(char *buf, size_t len, resp_t *r)
{
    char *end = strstr(buf, "\r\n\r\n");

    assert_non_null(end);
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &r->status), 1);
    snprintf(r->headers, sizeof(r->headers), "%.*s", (int)(end - buf), buf);
    r->body = strndup(end + 4, len - (size_t)(end + 4 - buf));
    r->json = r->body[0] != '\0' ? json_loads(r->body, 0, NULL) : NULL;
}

/* One request on a new connection (Connection: close); raw is the whole request when not NULL. */
static void request(uint16_t port, const char *raw, size_t rawlen, resp_t *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {20, 0};
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(r, 0, sizeof(*r));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    send_all(fd, raw, rawlen);
    shutdown(fd, SHUT_WR);
    while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    parse_response(buf, len, r);
    free(buf);
}

/* POST path with body and extra header lines (each ending in \r\n, or NULL). */
static void post(env_t *e, const char *path, const char *extra, const char *body, resp_t *r)
{
    size_t blen = body != NULL ? strlen(body) : 0, cap = blen + 1024;
    char *raw = malloc(cap);
    int n = snprintf(raw, cap,
                     "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     path, blen, extra != NULL ? extra : "");

    memcpy(raw + n, body != NULL ? body : "", blen);
    request(e->port, raw, (size_t)n + blen, r);
    free(raw);
}

static const char *header(const resp_t *r, const char *name)
{
    static char value[256];
    const char *p = r->headers;
    size_t n = strlen(name);

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *end = strstr(v, "\r\n");
            while (*v == ' ')
                ++v;
            snprintf(value, sizeof(value), "%.*s", end != NULL ? (int)(end - v) : (int)strlen(v), v);
            return value;
        }
    }
    return NULL;
}

static const char *error_of(const resp_t *r)
{
    return json_string_value(json_object_get(r->json, "error"));
}

/* ---------------------------------------------------------------- fixture */

static void exec_sql(cph_db_t *db, const char *text)
{
    cph_error_t err;

    cph_db_lock(db);
    assert_int_equal(cph_db_exec(db, text, &err), 0);
    cph_db_unlock(db);
}

static int64_t scalar(cph_db_t *db, const char *text, const char *arg)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), text, -1, &st, NULL), SQLITE_OK);
    if (arg != NULL)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return v;
}

/*
 * Systems shop (1) and crm (2); role shop:reader, group shop:staff. Users: 1 alice (alice@example.com, member of
 * shop with reader and staff), 2 root (superuser, no systems), 3 eve (disabled member of shop), 4 bob (member of
 * none). All with password PW.
 */
static void seed(cph_db_t *db)
{
    sqlite3_stmt *st = NULL;

    exec_sql(db, "INSERT INTO systems (id, code, name, created_at, updated_at) VALUES (1, 'shop', 'Shop', 'x', 'x'), "
                 "(2, 'crm', 'CRM', 'x', 'x');"
                 "INSERT INTO roles (id, system_id, name, created_at, updated_at) VALUES (1, 1, 'reader', 'x', 'x');"
                 "INSERT INTO groups (id, system_id, name, created_at, updated_at) VALUES (1, 1, 'staff', 'x', 'x');");
    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db),
                                        "INSERT INTO users (id, username, email, password_hash, superuser, enabled, created_at, "
                                        "updated_at) VALUES (1, 'alice', 'alice@example.com', ?1, 0, 1, 'x', 'x'), "
                                        "(2, 'root', NULL, ?1, 1, 1, 'x', 'x'), (3, 'eve', NULL, ?1, 0, 0, 'x', 'x'), "
                                        "(4, 'bob', NULL, ?1, 0, 1, 'x', 'x')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, shared_hash, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    exec_sql(db, "INSERT INTO user_systems (user_id, system_id) VALUES (1, 1), (3, 1);"
                 "INSERT INTO user_roles (user_id, role_id) VALUES (1, 1);"
                 "INSERT INTO user_groups (user_id, group_id) VALUES (1, 1);");
}

static int setup(void **state)
{
    env_t *e = calloc(1, sizeof(*e));
    cph_loginlimit_config_t limits = {3, 6, 900, 1024};
    cph_auth_settings_t s;
    cph_error_t err;
    void *fxs;

    cph_settings_auth_defaults(&s);
    cph_settings_set_auth(&s);
    db_fixture_setup(&fxs, "authapi-test");
    e->fx = fxs;
    assert_int_equal(cph_signing_ensure(e->fx->db, &err), 0);
    seed(e->fx->db);
    e->api = cph_authapi_start("127.0.0.1:0", e->fx->db, &limits, &err);
    assert_non_null(e->api);
    e->port = cph_authapi_port(e->api);
    assert_true(e->port > 0);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    env_t *e = *state;
    void *fxs = e->fx;

    cph_authapi_stop(e->api);
    teardown(&fxs);
    free(e);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static void login(env_t *e, const char *who, const char *password, const char *system, const char *ip, resp_t *r)
{
    char body[512], hdr[128] = "";

    snprintf(body, sizeof(body), "{\"%s\": \"%s\", \"password\": \"%s\", \"system\": \"%s\"}",
             strchr(who, '@') ? "email" : "username", who, password, system);
    if (ip != NULL)
        snprintf(hdr, sizeof(hdr), "X-Forwarded-For: %s\r\n", ip);
    post(e, "/auth/login", hdr, body, r);
}

/* The verified jti and the decoded claims of an access token. */
static json_t *claims_of(env_t *e, const char *jwt, char jti[CPH_TOKEN_JTI_MAX + 1])
{
    const char *p = strchr(jwt, '.') + 1, *end = strchr(p, '.');
    char b64[4096];
    unsigned char raw[4096];
    size_t n = (size_t)(end - p), m;
    int64_t exp;
    cph_error_t err;
    int len;

    cph_db_lock(e->fx->db);
    assert_int_equal(cph_token_verify_own(e->fx->db, jwt, (int64_t)time(NULL), jti, &exp, &err), 0);
    cph_db_unlock(e->fx->db);
    for (size_t i = 0; i < n; ++i)
        b64[i] = p[i] == '-' ? '+' : p[i] == '_' ? '/' : p[i];
    for (m = n; m % 4 != 0; ++m)
        b64[m] = '=';
    len = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)m) - (int)(m - n);
    return json_loadb((const char *)raw, (size_t)len, 0, NULL);
}

static void check_token_answer(const resp_t *r)
{
    assert_int_equal(r->status, 200);
    assert_int_equal(json_object_size(r->json), 5);
    assert_string_equal(json_string_value(json_object_get(r->json, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(r->json, "expires_in")), 300);
    assert_int_equal(json_integer_value(json_object_get(r->json, "refresh_expires_in")), 1209600);
    assert_int_equal(strlen(json_string_value(json_object_get(r->json, "refresh_token"))), 43);
    assert_non_null(json_string_value(json_object_get(r->json, "access_token")));
    assert_string_equal(header(r, "Cache-Control"), "no-store");
}

/* ---------------------------------------------------------------- login */

static void test_login_username_and_claims(void **state)
{
    env_t *e = *state;
    char jti[CPH_TOKEN_JTI_MAX + 1];
    json_t *c;
    resp_t r;

    login(e, "alice", PW, "shop", NULL, &r);
    check_token_answer(&r);
    c = claims_of(e, json_string_value(json_object_get(r.json, "access_token")), jti);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "1");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "alice");
    assert_string_equal(json_string_value(json_object_get(c, "sys")), "shop");
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "cephalo");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "roles"), 0)), "reader");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "groups"), 0)), "staff");
    assert_null(json_object_get(c, "su"));
    assert_int_equal(json_integer_value(json_object_get(c, "exp")) - json_integer_value(json_object_get(c, "iat")), 300);
    /* the refresh row holds this access token's jti, and the token's hash only */
    assert_int_equal(scalar(e->fx->db, "SELECT count(*) FROM refresh_tokens WHERE access_jti = ?1", jti), 1);
    assert_int_equal(scalar(e->fx->db, "SELECT count(*) FROM refresh_tokens WHERE token_sha256 = ?1",
                            json_string_value(json_object_get(r.json, "refresh_token"))),
                     0);
    json_decref(c);
    resp_free(&r);
    login(e, "ALICE@Example.com", PW, "shop", NULL, &r); /* by email, any case */
    check_token_answer(&r);
    resp_free(&r);
}

static void test_login_failures_look_alike(void **state)
{
    env_t *e = *state;
    const char *cases[][3] = {
        {"alice", "wrong password!", "shop"}, /* wrong password */
        {"mallory", PW, "shop"},              /* unknown user */
        {"nobody@example.com", PW, "shop"},   /* unknown email */
        {"alice", PW, "nosuch"},              /* unknown system */
        {"eve", PW, "shop"},                  /* disabled */
        {"bob", PW, "shop"},                  /* not a member */
        {"alice", PW, "crm"},                 /* a member of another system */
        {"alice", "short", "shop"},           /* too short to be anyone's */
    };
    char ip[32], *first = NULL;
    resp_t r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        snprintf(ip, sizeof(ip), "198.51.100.%zu", i + 1);
        login(e, cases[i][0], cases[i][1], cases[i][2], ip, &r);
        assert_int_equal(r.status, 401);
        assert_string_equal(error_of(&r), "invalid_credentials");
        assert_null(strstr(r.body, cases[i][1])); /* nothing echoed */
        if (first == NULL)
            first = strdup(r.body);
        assert_string_equal(r.body, first);
        resp_free(&r);
        if (i == 0) { /* the account limit (3) must not hide the later cases: alice succeeds once in between */
            login(e, "alice", PW, "shop", NULL, &r);
            assert_int_equal(r.status, 200);
            resp_free(&r);
        }
    }
    free(first);
}

static void test_superuser_any_system(void **state)
{
    env_t *e = *state;
    char jti[CPH_TOKEN_JTI_MAX + 1];
    json_t *c;
    resp_t r;

    login(e, "root", PW, "crm", NULL, &r);
    check_token_answer(&r);
    c = claims_of(e, json_string_value(json_object_get(r.json, "access_token")), jti);
    assert_true(json_is_true(json_object_get(c, "su")));
    assert_string_equal(json_string_value(json_object_get(c, "sys")), "crm");
    assert_int_equal(json_array_size(json_object_get(c, "roles")), 0);
    json_decref(c);
    resp_free(&r);
    login(e, "root", PW, "nosuch", NULL, &r); /* but not into a system that does not exist */
    assert_int_equal(r.status, 401);
    resp_free(&r);
}

/* ---------------------------------------------------------------- hostile input */

static void expect_400(env_t *e, const char *path, const char *body)
{
    resp_t r;

    post(e, path, NULL, body, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_of(&r), "invalid");
    assert_non_null(json_object_get(r.json, "message"));
    assert_null(strstr(r.body, "hunter2-secret"));
    resp_free(&r);
}

static void test_hostile_bodies(void **state)
{
    env_t *e = *state;
    const char *bodies[] = {
        "",
        "{",
        "[]",
        "\"x\"",
        "null",
        "{\"username\": \"alice\", \"username\": \"bob\", \"password\": \"hunter2-secret\", \"system\": \"shop\"}",
        "{\"username\": \"alice\", \"password\": 12345678, \"system\": \"shop\"}",
        "{\"username\": null, \"password\": \"hunter2-secret\", \"system\": \"shop\"}",
        "{\"username\": \"alice\", \"password\": \"hunter2-secret\", \"system\": [\"shop\"]}",
        "{\"username\": \"alice\", \"password\": \"hunter2-secret\", \"system\": \"shop\", \"admin\": true}",
        "{\"username\": \"alice\", \"password\": \"\", \"system\": \"shop\"}",
        "{\"username\": \"\", \"password\": \"hunter2-secret\", \"system\": \"shop\"}",
        "{\"username\": \"alice\", \"password\": \"hunter2-secret\"}",
        "{\"password\": \"hunter2-secret\", \"system\": \"shop\"}",
        "{\"username\": \"alice\", \"email\": \"a@x.y\", \"password\": \"hunter2-secret\", \"system\": \"shop\"}",
        "{\"username\": \"al\\u0000ice\", \"password\": \"hunter2-secret\", \"system\": \"shop\"}",
    };
    static const char PAD_HEAD[] = "{\"username\": \"alice\", \"password\": \"hunter2-secret\", \"system\": \"shop\", \"pad\": \"";
    static const char USER_HEAD[] = "{\"password\": \"hunter2-secret\", \"system\": \"shop\", \"username\": \"";
    char *big;
    size_t n;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); ++i)
        expect_400(e, "/auth/login", bodies[i]);
    expect_400(e, "/auth/refresh", "{\"refresh_token\": 5}");
    expect_400(e, "/auth/refresh", "{}");
    expect_400(e, "/auth/refresh", "{\"refresh_token\": \"x\", \"extra\": 1}");
    expect_400(e, "/auth/logout", "{\"refresh_token\": []}");
    expect_400(e, "/auth/logout", "{\"other\": \"x\"}");
    expect_400(e, "/auth/logout", "nope");
    /* over 16 KiB (valid JSON), and a 1 MB username */
    big = malloc(1100000);
    strcpy(big, PAD_HEAD);
    n = strlen(big);
    memset(big + n, 'p', 17000);
    strcpy(big + n + 17000, "\"}");
    expect_400(e, "/auth/login", big);
    strcpy(big, USER_HEAD);
    n = strlen(big);
    memset(big + n, 'u', 1048576);
    strcpy(big + n + 1048576, "\"}");
    expect_400(e, "/auth/login", big);
    /* a username just over the limit (129 bytes) inside a small body */
    strcpy(big, USER_HEAD);
    n = strlen(big);
    memset(big + n, 'u', 129);
    strcpy(big + n + 129, "\"}");
    expect_400(e, "/auth/login", big);
    free(big);
}

static void test_chunked_over_cap(void **state)
{
    env_t *e = *state;
    size_t cap = 40000, n;
    char *raw = malloc(cap);
    resp_t r;

    n = (size_t)snprintf(raw, cap,
                         "POST /auth/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 9; ++i) { /* 9 x 2000 bytes > 16 KiB */
        n += (size_t)snprintf(raw + n, cap - n, "7d0\r\n");
        memset(raw + n, 'x', 2000);
        n += 2000;
        n += (size_t)snprintf(raw + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(raw + n, cap - n, "0\r\n\r\n");
    request(e->port, raw, n, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_of(&r), "invalid");
    resp_free(&r);
    free(raw);
}

static void test_routes_and_methods(void **state)
{
    env_t *e = *state;
    const char *get = "GET /auth/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    resp_t r;

    post(e, "/auth/nope", NULL, "{}", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(error_of(&r), "not_found");
    resp_free(&r);
    post(e, "/api/v1/users", NULL, "{}", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    request(e->port, get, strlen(get), &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "POST");
    assert_string_equal(error_of(&r), "method_not_allowed");
    resp_free(&r);
}

/* ---------------------------------------------------------------- rate limits */

static void test_account_limit(void **state)
{
    env_t *e = *state;
    resp_t r;

    for (int i = 0; i < 3; ++i) { /* the test limit: 3 per account (from different IPs) */
        char ip[32];
        snprintf(ip, sizeof(ip), "192.0.2.%d", i + 1);
        login(e, "alice", "not the password", "shop", ip, &r);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    login(e, "alice", PW, "shop", "192.0.2.99", &r); /* right password, but limited: no check at all */
    assert_int_equal(r.status, 429);
    assert_string_equal(error_of(&r), "too_many_attempts");
    assert_non_null(header(&r, "Retry-After"));
    assert_true(atoi(header(&r, "Retry-After")) > 800 && atoi(header(&r, "Retry-After")) <= 900);
    resp_free(&r);
    login(e, "alice@example.com", PW, "shop", "192.0.2.98", &r); /* the same account by email */
    assert_int_equal(r.status, 429);
    resp_free(&r);
    login(e, "root", PW, "shop", "192.0.2.1", &r); /* other accounts are not affected */
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_success_clears_account(void **state)
{
    env_t *e = *state;
    char ip[32];
    int k = 0;
    resp_t r;

    /* every login from its own client IP: only the account counts here */
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 2; ++i) {
            snprintf(ip, sizeof(ip), "192.0.2.%d", ++k);
            login(e, "MALLORY", "x-wrong-pass", "shop", ip, &r); /* unknown names count too, lower-cased */
            resp_free(&r);
            snprintf(ip, sizeof(ip), "192.0.2.%d", ++k);
            login(e, "alice", "x-wrong-pass", "shop", ip, &r);
            assert_int_equal(r.status, 401);
            resp_free(&r);
        }
        snprintf(ip, sizeof(ip), "192.0.2.%d", ++k);
        login(e, "alice", PW, "shop", ip, &r);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    snprintf(ip, sizeof(ip), "192.0.2.%d", ++k);
    login(e, "mallory", "x-wrong-pass", "shop", ip, &r); /* 5th for mallory (limit 3) */
    assert_int_equal(r.status, 429);
    resp_free(&r);
}

static void test_ip_limit_from_forwarded_for(void **state)
{
    env_t *e = *state;
    char who[32];
    resp_t r;

    for (int i = 0; i < 6; ++i) { /* the test limit: 6 per IP */
        snprintf(who, sizeof(who), "ghost%d", i);
        login(e, who, "x-wrong-pass", "shop", "10.9.9.9, 203.0.113.9", &r);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    login(e, "alice", PW, "shop", "203.0.113.9", &r); /* the last element is the client */
    assert_int_equal(r.status, 429);
    assert_true(atoi(header(&r, "Retry-After")) >= 1);
    resp_free(&r);
    login(e, "alice", PW, "shop", "203.0.113.9, 203.0.113.10", &r); /* only the last element counts */
    assert_int_equal(r.status, 200);
    resp_free(&r);
    login(e, "alice", PW, "shop", "10.9.9.9", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ---------------------------------------------------------------- refresh and logout */

static void refresh(env_t *e, const char *token, resp_t *r)
{
    char body[256];

    snprintf(body, sizeof(body), "{\"refresh_token\": \"%s\"}", token);
    post(e, "/auth/refresh", NULL, body, r);
}

static void test_refresh_rotation_and_reuse(void **state)
{
    env_t *e = *state;
    char r1[64], r2[64], r3[64], jti1[CPH_TOKEN_JTI_MAX + 1], jti2[CPH_TOKEN_JTI_MAX + 1], ver0[24];
    json_t *c;
    resp_t r;
    int64_t v0;

    login(e, "alice", PW, "shop", NULL, &r);
    snprintf(r1, sizeof(r1), "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    json_decref(claims_of(e, json_string_value(json_object_get(r.json, "access_token")), jti1));
    resp_free(&r);
    refresh(e, r1, &r);
    check_token_answer(&r);
    snprintf(r2, sizeof(r2), "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    assert_string_not_equal(r1, r2);
    c = claims_of(e, json_string_value(json_object_get(r.json, "access_token")), jti2);
    assert_string_not_equal(jti1, jti2);
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "roles"), 0)), "reader");
    json_decref(c);
    resp_free(&r);
    refresh(e, r2, &r);
    check_token_answer(&r);
    snprintf(r3, sizeof(r3), "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    resp_free(&r);
    /* r1 again: reuse -> 401, the whole family revoked, its access tokens written as revocations */
    v0 = scalar(e->fx->db, "SELECT generation FROM meta", NULL);
    snprintf(ver0, sizeof(ver0), "%lld", (long long)v0);
    refresh(e, r1, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(error_of(&r), "invalid_grant");
    resp_free(&r);
    assert_int_equal(scalar(e->fx->db, "SELECT generation FROM meta", NULL), v0 + 1);
    assert_int_equal(scalar(e->fx->db, "SELECT count(*) FROM revocations WHERE kind = 'token' AND subject = ?1", jti2), 1);
    assert_int_equal(scalar(e->fx->db, "SELECT count(*) FROM revocations WHERE kind = 'token' AND subject = ?1", jti1), 1);
    assert_int_equal(scalar(e->fx->db, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL", NULL), 0);
    refresh(e, r3, &r); /* the newest one is dead too */
    assert_int_equal(r.status, 401);
    resp_free(&r);
    assert_int_equal(scalar(e->fx->db, "SELECT generation FROM meta", NULL), v0 + 1); /* replays write nothing */
    refresh(e, "not-a-token", &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(error_of(&r), "invalid_grant");
    resp_free(&r);
    refresh(e, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
}

static void test_refresh_after_disable(void **state)
{
    env_t *e = *state;
    char r1[64];
    resp_t r;

    login(e, "alice", PW, "shop", NULL, &r);
    snprintf(r1, sizeof(r1), "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    resp_free(&r);
    exec_sql(e->fx->db, "UPDATE users SET enabled = 0 WHERE id = 1");
    refresh(e, r1, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(error_of(&r), "invalid_grant");
    resp_free(&r);
}

static void test_logout(void **state)
{
    env_t *e = *state;
    char r1[64], jti[CPH_TOKEN_JTI_MAX + 1], body[128], hdr[1200];
    resp_t r;

    login(e, "alice", PW, "shop", NULL, &r);
    snprintf(r1, sizeof(r1), "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", json_string_value(json_object_get(r.json, "access_token")));
    json_decref(claims_of(e, json_string_value(json_object_get(r.json, "access_token")), jti));
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"refresh_token\": \"%s\"}", r1);
    post(e, "/auth/logout", hdr, body, &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.body, "");
    resp_free(&r);
    assert_int_equal(scalar(e->fx->db, "SELECT count(*) FROM revocations WHERE kind = 'token' AND subject = ?1", jti), 1);
    refresh(e, r1, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    /* nothing to log out, a forged bearer, an empty body: still 204, nothing written */
    int64_t v0 = scalar(e->fx->db, "SELECT generation FROM meta", NULL);
    post(e, "/auth/logout", "Authorization: Bearer eyJhbGciOiJub25lIn0.e30.\r\n", NULL, &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    post(e, "/auth/logout", NULL, "{}", &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    post(e, "/auth/logout", hdr, NULL, &r); /* the same access token again: already refused */
    assert_int_equal(r.status, 204);
    resp_free(&r);
    assert_int_equal(scalar(e->fx->db, "SELECT generation FROM meta", NULL), v0);
}

static void test_logout_bearer_only(void **state)
{
    env_t *e = *state;
    char r1[64], hdr[1200];
    resp_t r;

    login(e, "alice", PW, "shop", NULL, &r);
    snprintf(r1, sizeof(r1), "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", json_string_value(json_object_get(r.json, "access_token")));
    resp_free(&r);
    post(e, "/auth/logout", hdr, NULL, &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    refresh(e, r1, &r); /* the session behind the access token ended too */
    assert_int_equal(r.status, 401);
    resp_free(&r);
}

static int group_setup(void **state)
{
    cph_error_t err;

    (void)state;
    shared_hash = cph_password_hash(PW, strlen(PW), "", &err);
    return shared_hash != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(shared_hash);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_login_username_and_claims, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_login_failures_look_alike, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_superuser_any_system, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bodies, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_chunked_over_cap, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_methods, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_account_limit, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_success_clears_account, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_ip_limit_from_forwarded_for, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotation_and_reuse, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_after_disable, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_logout_bearer_only, setup, env_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
