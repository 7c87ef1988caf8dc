/*
 * identity_test: the identity stores (systems, roles, groups, users, api keys) through their normalisation and the
 * real write path - every validation error with its code and JSON-pointer path (wrong types, unknown members,
 * over-long and malformed strings, NUL bytes, duplicates, oversized lists), unknown references, names unique per
 * system, lookups by id / code / "<system>:<name>", the foreign keys that keep things in use (409) and the cascades,
 * argon2id hashing (kept on a PUT without password), the api key's secret (shown once, only its SHA-256 stored),
 * RFC 3339 expiry parsing, endpoint rules and their path patterns, and that no password, hash or key ever reaches
 * the audit table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include <openssl/evp.h>
#include "controlplane/db.h"
#include "controlplane/ident.h"
#include "controlplane/password.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_service.h"
#include "controlplane/store_group.h"
#include "controlplane/store_role.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"

/* ---------------------------------------------------------------- one write through cph_db_write */

typedef struct st_op_t {
    const cph_store_ops_t *ops;
    char op; /* 'c' create, 'u' update (key), 'd' delete (key) */
    const char *key;
    json_t *obj;
    int64_t id;
} op_t;

static int setup(void **state)
{
    cph_error_t err;

    db_fixture_setup(state, "ident-test");
    assert_int_equal(cph_db_ensure_snapshot(((fixture_t *)*state)->db, &err), 0);
    return 0;
}

static int on_op(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    op_t *o = p;
    json_t *cur;
    char idbuf[24];

    change->action = o->op == 'c' ? "create" : o->op == 'u' ? "update" : "delete";
    change->entity_type = o->ops->entity;
    if (o->op != 'c') {
        if ((cur = o->ops->get(db, o->key, err)) == NULL)
            return -1;
        o->id = json_integer_value(json_object_get(cur, "id"));
        change->before = cur;
    }
    if (o->op == 'd')
        return o->ops->remove(db, o->id, err);
    if ((o->op == 'c' ? o->ops->insert(db, o->obj, &o->id, err) : o->ops->update(db, o->id, o->obj, err)) != 0)
        return -1;
    snprintf(idbuf, sizeof(idbuf), "%lld", (long long)o->id);
    change->entity_id = o->id;
    return (change->after = o->ops->get(db, idbuf, err)) != NULL ? 0 : -1;
}

/* Normalises text (which must be valid) and writes it; returns 0/-1 with err; *id (may be NULL) gets the row id. */
static int run(cph_db_t *db, const cph_store_ops_t *ops, char op, const char *key, const char *text, int64_t *id, cph_error_t *err)
{
    op_t o = {ops, op, key, NULL, 0};
    uint64_t version;
    int ret;

    if (text != NULL) {
        json_t *in = parse(text);
        o.obj = ops->normalize(in, err);
        json_decref(in);
        if (o.obj == NULL)
            fail_msg("normalize refused %s: %s at %s", text, err->code, err->path);
    }
    ret = cph_db_write(db, "test", on_op, &o, &version, err);
    json_decref(o.obj);
    if (id != NULL)
        *id = o.id;
    return ret;
}

static void ok(cph_db_t *db, const cph_store_ops_t *ops, char op, const char *key, const char *text)
{
    cph_error_t err;

    if (run(db, ops, op, key, text, NULL, &err) != 0)
        fail_msg("%c %s %s: %s at %s (%s)", op, ops->entity, text != NULL ? text : key, err.code, err.path, err.msg);
}

static void refused(cph_db_t *db, const cph_store_ops_t *ops, char op, const char *key, const char *text, const char *code,
                    const char *path)
{
    cph_error_t err;
    char epoch[33];
    uint64_t before, after;

    cph_db_lock(db);
    assert_int_equal(cph_db_meta(db, epoch, &before), 0);
    cph_db_unlock(db);
    if (run(db, ops, op, key, text, NULL, &err) == 0)
        fail_msg("%c %s %s was accepted", op, ops->entity, text != NULL ? text : key);
    if (strcmp(err.code, code) != 0 || strcmp(err.path, path) != 0)
        fail_msg("%s: want %s at '%s', got %s at '%s' (%s)", text != NULL ? text : key, code, path, err.code, err.path, err.msg);
    cph_db_lock(db);
    assert_int_equal(cph_db_meta(db, epoch, &after), 0);
    cph_db_unlock(db);
    assert_int_equal(before, after); /* a refused write bumps nothing */
}

/* GET key, compact with sorted keys, compared with want (without id, created_at, updated_at). */
static void expect_get(cph_db_t *db, const cph_store_ops_t *ops, const char *key, const char *want)
{
    cph_error_t err;
    json_t *v;
    char *text;

    cph_db_lock(db);
    v = ops->get(db, key, &err);
    cph_db_unlock(db);
    if (v == NULL)
        fail_msg("get %s %s: %s", ops->entity, key, err.code);
    json_object_del(v, "id");
    json_object_del(v, "created_at");
    json_object_del(v, "updated_at");
    text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    if (strcmp(text, want) != 0)
        fail_msg("get %s %s:\n got  %s\n want %s", ops->entity, key, text, want);
    free(text);
    json_decref(v);
}

static void expect_missing(cph_db_t *db, const cph_store_ops_t *ops, const char *key)
{
    cph_error_t err;
    json_t *v;

    cph_db_lock(db);
    v = ops->get(db, key, &err);
    cph_db_unlock(db);
    assert_null(v);
    assert_string_equal(err.code, "not_found");
}

/* ---------------------------------------------------------------- normalisation */

typedef struct st_bad_t {
    const cph_store_ops_t *ops;
    const char *json;
    const char *code;
    const char *path;
} bad_t;

#define S &cph_store_system_ops
#define R &cph_store_role_ops
#define G &cph_store_group_ops
#define U &cph_store_user_ops
#define K &cph_store_api_key_ops
#define E &cph_store_endpoint_ops
#define PW "\"password\": \"long enough\""

static const bad_t BAD[] = {
    {S, "{\"code\": \"a\", \"name\": \"A\", \"x\": 1}", "unknown_field", "/x"},
    {S, "{\"name\": \"A\"}", "missing_field", "/code"},
    {S, "{\"code\": \"a\"}", "missing_field", "/name"},
    {S, "{\"code\": 5, \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": null, \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"\", \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"Billing\", \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"a b\", \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"a:b\", \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"a\\u0000b\", \"name\": \"A\"}", "invalid", "/code"},
    {S, "{\"code\": \"a\", \"name\": \"line\\nbreak\"}", "invalid", "/name"},
    {S, "{\"code\": \"a\", \"name\": \"\"}", "invalid", "/name"},
    {S, "{\"code\": \"a\", \"name\": [\"A\"]}", "invalid", "/name"},
    {S, "[]", "invalid", ""},
    {R, "{\"system\": \"a\"}", "missing_field", "/name"},
    {R, "{\"system\": \"a\", \"name\": \"has space\"}", "invalid", "/name"},
    {R, "{\"system\": \"a\", \"name\": \"x:y\"}", "invalid", "/name"},
    {R, "{\"system\": \"a\", \"name\": \"r\", \"roles\": []}", "unknown_field", "/roles"},
    {R, "{\"system\": \"A!\", \"name\": \"r\"}", "invalid", "/system"},
    {G, "{\"system\": \"a\", \"name\": \"g\", \"roles\": \"r\"}", "invalid", "/roles"},
    {G, "{\"system\": \"a\", \"name\": \"g\", \"roles\": [\"r\", 1]}", "invalid", "/roles/1"},
    {G, "{\"system\": \"a\", \"name\": \"g\", \"roles\": [\"r\", \"s\", \"r\"]}", "duplicate", "/roles/2"},
    {G, "{\"system\": \"a\", \"name\": \"g\", \"roles\": [{\"system\": \"a\", \"name\": \"r\"}]}", "invalid", "/roles/0"},
    {U, "{" PW "}", "missing_field", "/username"},
    {U, "{\"username\": \"a\", \"password\": 12345678}", "invalid", "/password"},
    {U, "{\"username\": \"a\", \"password\": \"short77\"}", "invalid", "/password"},
    {U, "{\"username\": \"a\", \"password\": \"\"}", "invalid", "/password"},
    {U, "{\"username\": \"a\", \"password\": \"12345678\\u0000\"}", "invalid", "/password"},
    {U, "{\"username\": \"a b\", " PW "}", "invalid", "/username"},
    {U, "{\"username\": \"a\", \"email\": \"no-at\", " PW "}", "invalid", "/email"},
    {U, "{\"username\": \"a\", \"email\": \"@x.io\", " PW "}", "invalid", "/email"},
    {U, "{\"username\": \"a\", \"email\": \"a@\", " PW "}", "invalid", "/email"},
    {U, "{\"username\": \"a\", \"email\": \"a@b@c\", " PW "}", "invalid", "/email"},
    {U, "{\"username\": \"a\", \"email\": \"a b@c\", " PW "}", "invalid", "/email"},
    {U, "{\"username\": \"a\", \"email\": 1, " PW "}", "invalid", "/email"},
    {U, "{\"username\": \"a\", \"superuser\": \"true\", " PW "}", "invalid", "/superuser"},
    {U, "{\"username\": \"a\", \"enabled\": 1, " PW "}", "invalid", "/enabled"},
    {U, "{\"username\": \"a\", \"password_hash\": \"$argon2id$x\", " PW "}", "unknown_field", "/password_hash"},
    {U, "{\"username\": \"a\", \"systems\": [\"s\", \"s\"], " PW "}", "duplicate", "/systems/1"},
    {U, "{\"username\": \"a\", \"systems\": {}, " PW "}", "invalid", "/systems"},
    {U, "{\"username\": \"a\", \"systems\": [\"s\"], \"roles\": [\"r\"], " PW "}", "invalid", "/roles/0"},
    {U, "{\"username\": \"a\", \"systems\": [\"s\"], \"roles\": [{\"system\": \"s\"}], " PW "}", "missing_field", "/roles/0/name"},
    {U, "{\"username\": \"a\", \"systems\": [\"s\"], \"roles\": [{\"system\": \"s\", \"name\": \"r\", \"x\": 1}], " PW "}",
     "unknown_field", "/roles/0/x"},
    {U, "{\"username\": \"a\", \"systems\": [\"s\"], \"roles\": [{\"system\": \"s\", \"name\": 7}], " PW "}", "invalid",
     "/roles/0/name"},
    {U, "{\"username\": \"a\", \"systems\": [\"s\"], \"groups\": [{\"system\": \"t\", \"name\": \"g\"}], " PW "}", "invalid",
     "/groups/0/system"},
    {U,
     "{\"username\": \"a\", \"systems\": [\"s\"], \"groups\": [{\"system\": \"s\", \"name\": \"g\"}, {\"system\": \"s\", "
     "\"name\": \"g\"}], " PW "}",
     "duplicate", "/groups/1"},
    {K, "{\"system\": \"s\", \"name\": \"k\", \"expires_at\": \"tomorrow\"}", "invalid", "/expires_at"},
    {K, "{\"system\": \"s\", \"name\": \"k\", \"expires_at\": 1767225600}", "invalid", "/expires_at"},
    {K, "{\"system\": \"s\", \"name\": \"k\", \"revoked\": \"yes\"}", "invalid", "/revoked"},
    {K, "{\"system\": \"s\", \"name\": \"k\", \"key\": \"abc.def\"}", "unknown_field", "/key"},
    {K, "{\"system\": \"s\", \"name\": \"k\", \"secret_sha256\": \"00\"}", "unknown_field", "/secret_sha256"},
    {K, "{\"system\": \"s\", \"roles\": [\"r\"]}", "missing_field", "/name"},
    {E, "{\"service\": \"s\"}", "missing_field", "/path"},
    {E, "{\"path\": \"/x\"}", "missing_field", "/service"},
    {E, "{\"service\": \"s\", \"path\": 5}", "invalid", "/path"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"method\": \"get\"}", "invalid", "/method"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"method\": \"GET \"}", "invalid", "/method"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"method\": [\"GET\"]}", "invalid", "/method"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"public\": \"yes\"}", "invalid", "/public"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"roles\": [\"r\"]}", "invalid", "/roles/0"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"public\": true, \"groups\": [{\"system\": \"a\", \"name\": \"g\"}]}", "invalid",
     "/groups"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"shadow\": 1}", "invalid", "/shadow"},
    {E, "{\"service\": \"s\", \"path\": \"/x\", \"kind\": \"prefix\"}", "unknown_field", "/kind"},
};

static void test_normalize_refuses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); ++i) {
        cph_error_t err;
        json_t *in = parse(BAD[i].json), *out;

        memset(&err, 0, sizeof(err));
        out = BAD[i].ops->normalize(in, &err);
        if (out != NULL)
            fail_msg("accepted: %s", BAD[i].json);
        if (strcmp(err.code, BAD[i].code) != 0 || strcmp(err.path, BAD[i].path) != 0)
            fail_msg("%s: want %s at '%s', got %s at '%s'", BAD[i].json, BAD[i].code, BAD[i].path, err.code, err.path);
        json_decref(in);
    }
}

static void test_normalize_limits(void **state)
{
    cph_error_t err;
    json_t *in, *roles = json_array(), *out;
    char pw[CPH_PASSWORD_MAX + 2];

    (void)state;
    for (int i = 0; i <= CPH_IDENT_LIST_MAX; ++i) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", i);
        json_array_append_new(roles, json_string(name));
    }
    in = json_pack("{s:s, s:s, s:o}", "system", "a", "name", "g", "roles", roles);
    assert_null(cph_store_group_normalize(in, &err));
    assert_string_equal(err.path, "/roles");
    json_array_remove(json_object_get(in, "roles"), 0); /* exactly the maximum is fine */
    assert_non_null(out = cph_store_group_normalize(in, &err));
    json_decref(out);
    json_decref(in);
    memset(pw, 'p', sizeof(pw));
    pw[CPH_PASSWORD_MAX + 1] = '\0'; /* 1025 bytes */
    in = json_pack("{s:s, s:s}", "username", "u", "password", pw);
    assert_null(cph_store_user_normalize(in, &err));
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/password");
    json_decref(in);
    pw[CPH_PASSWORD_MAX] = '\0'; /* 1024 bytes: the maximum */
    in = json_pack("{s:s, s:s}", "username", "u", "password", pw);
    assert_non_null(out = cph_store_user_normalize(in, &err));
    assert_true(cph_password_verify(json_string_value(json_object_get(out, "password_hash")), pw, strlen(pw)));
    assert_null(json_object_get(out, "password"));
    json_decref(out);
    json_decref(in);
}

static void test_normalize_defaults(void **state)
{
    cph_error_t err;
    json_t *in = parse("{\"id\": 9, \"created_at\": \"x\", \"username\": \"bob\"}"), *out;
    char *text;

    (void)state;
    assert_non_null(out = cph_store_user_normalize(in, &err));
    text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"email\":null,\"enabled\":true,\"groups\":[],\"roles\":[],\"superuser\":false,\"systems\":[],"
                              "\"username\":\"bob\"}");
    free(text);
    json_decref(out);
    json_decref(in);
}

static void test_parse_time(void **state)
{
    static const char *const GOOD[][2] = {
        {"2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000Z"},      {"2026-01-02t03:04:05z", "2026-01-02T03:04:05.000Z"},
        {"2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05.500Z"},    {"2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05.123Z"},
        {"2026-01-02T01:04:05+02:00", "2026-01-01T23:04:05.000Z"}, {"2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000Z"},
        {"2028-02-29T00:00:00Z", "2028-02-29T00:00:00.000Z"},
    };
    static const char *const BADT[] = {"",
                                       "2026-01-02",
                                       "2026-01-02T03:04:05",
                                       "2026-01-02 03:04:05Z",
                                       "2026-02-30T00:00:00Z",
                                       "2027-02-29T00:00:00Z",
                                       "2026-13-01T00:00:00Z",
                                       "2026-00-01T00:00:00Z",
                                       "2026-01-01T24:00:00Z",
                                       "2026-01-01T00:60:00Z",
                                       "2026-01-01T00:00:60Z",
                                       "2026-01-01T00:00:00.Z",
                                       "2026-01-01T00:00:00.1234567890Z",
                                       "2026-01-01T00:00:00+24:00",
                                       "2026-01-01T00:00:00+0200",
                                       "2026-01-01T00:00:00Zjunk",
                                       "1969-12-31T23:59:59Z",
                                       "+2026-01-01T00:00:00Z",
                                       "2026-1-01T00:00:00Z"};
    char out[32];

    (void)state;
    for (size_t i = 0; i < sizeof(GOOD) / sizeof(GOOD[0]); ++i) {
        if (cph_ident_parse_time(GOOD[i][0], out, sizeof(out)) != 0)
            fail_msg("refused %s", GOOD[i][0]);
        assert_string_equal(out, GOOD[i][1]);
    }
    for (size_t i = 0; i < sizeof(BADT) / sizeof(BADT[0]); ++i)
        if (cph_ident_parse_time(BADT[i], out, sizeof(out)) == 0)
            fail_msg("accepted %s", BADT[i]);
}

static void test_endpoint_paths(void **state)
{
    static const char *const GOOD[] = {
        "/",      "/*",       "/exact",    "/v2/",     "/prefix/*", "/items/{id}", "/a/{id}/b/{Other_2}",
        "/a%20b", "/a/~user", "/a/b.json", "/a/{id}/*"};
    static const char *const BADP[] = {
        "",          "x",      "a/b",      "//",     "/a//b", "/a/./b", "/a/../b", "/..",
        "/a/%2e%2e", "/a/%2F", "/a/%7e",   "/a/%7E", "/a;b",  "/a\\b",  "/a\tb",   "/a\x7f",
        "/a*",       "/*/a",   "/a/*/",    "/a/**",  "/{",    "/{}",    "/{1a}",   "/{a-b}",
        "/{a}{b}",   "/x{a}",  "/{a}/{a}", "/%zz",   "/a?b",  "/a#b",   "/a b",    "/{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}"};
    cph_error_t err;
    char big[CPH_ENDPOINT_PATTERN_MAX + 2], many[256] = "";

    (void)state;
    for (size_t i = 0; i < sizeof(GOOD) / sizeof(GOOD[0]); ++i)
        if (cph_endpoint_pattern_check(GOOD[i], "/path", &err) != 0)
            fail_msg("refused %s: %s", GOOD[i], err.msg);
    for (size_t i = 0; i < sizeof(BADP) / sizeof(BADP[0]); ++i) {
        memset(&err, 0, sizeof(err));
        if (cph_endpoint_pattern_check(BADP[i], "/path", &err) == 0)
            fail_msg("accepted %s", BADP[i]);
        assert_string_equal(err.code, "invalid");
        assert_string_equal(err.path, "/path");
    }
    memset(big, 'a', sizeof(big));
    big[0] = '/';
    big[CPH_ENDPOINT_PATTERN_MAX] = '\0'; /* 1024 bytes: the maximum */
    assert_int_equal(cph_endpoint_pattern_check(big, "/path", &err), 0);
    big[CPH_ENDPOINT_PATTERN_MAX] = 'a';
    big[CPH_ENDPOINT_PATTERN_MAX + 1] = '\0';
    assert_int_equal(cph_endpoint_pattern_check(big, "/path", &err), -1);
    for (int i = 0; i <= CPH_ENDPOINT_PATTERN_PARAMS_MAX; ++i)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "/{p%d}", i);
    assert_int_equal(cph_endpoint_pattern_check(many, "/path", &err), -1); /* one parameter too many */
    *strrchr(many, '/') = '\0';
    assert_int_equal(cph_endpoint_pattern_check(many, "/path", &err), 0);
}

static void test_password(void **state)
{
    cph_error_t err;
    char *h1, *h2;

    (void)state;
    assert_non_null(h1 = cph_password_hash("correct horse", 13, "/password", &err));
    assert_non_null(h2 = cph_password_hash("correct horse", 13, "/password", &err));
    assert_int_equal(strncmp(h1, "$argon2id$v=19$m=65536,t=3,p=1$", 31), 0);
    assert_string_not_equal(h1, h2); /* fresh salt every time */
    assert_true(cph_password_verify(h1, "correct horse", 13));
    assert_false(cph_password_verify(h1, "correct horsf", 13));
    assert_false(cph_password_verify(h1, "correct hors", 12));
    assert_false(cph_password_verify("$argon2i$v=19$m=65536,t=3,p=1$AAAA$AAAA", "correct horse", 13));
    assert_false(cph_password_verify("garbage", "correct horse", 13));
    assert_null(cph_password_hash("1234567", 7, "/password", &err));
    assert_null(cph_password_hash("1234\0"
                                  "5678",
                                  9, "/p", &err));
    assert_string_equal(err.path, "/p");
    free(h1);
    free(h2);
}

/* ---------------------------------------------------------------- the stores */

static void seed(cph_db_t *db)
{
    ok(db, S, 'c', NULL, "{\"code\": \"billing\", \"name\": \"Billing\"}");
    ok(db, S, 'c', NULL, "{\"code\": \"hr\", \"name\": \"Human resources\"}");
    ok(db, R, 'c', NULL, "{\"system\": \"billing\", \"name\": \"reader\"}");
    ok(db, R, 'c', NULL, "{\"system\": \"billing\", \"name\": \"admin\"}");
    ok(db, R, 'c', NULL, "{\"system\": \"hr\", \"name\": \"reader\"}"); /* same name, other system */
    ok(db, G, 'c', NULL, "{\"system\": \"billing\", \"name\": \"ops\", \"roles\": [\"reader\", \"admin\"]}");
}

static void test_systems(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;

    seed(db);
    expect_get(db, S, "billing", "{\"code\":\"billing\",\"name\":\"Billing\"}");
    expect_get(db, S, "1", "{\"code\":\"billing\",\"name\":\"Billing\"}");
    refused(db, S, 'c', NULL, "{\"code\": \"billing\", \"name\": \"Again\"}", "conflict", "/code");
    refused(db, S, 'u', "hr", "{\"code\": \"billing\", \"name\": \"HR\"}", "conflict", "/code");
    refused(db, S, 'u', "nope", "{\"code\": \"nope\", \"name\": \"N\"}", "not_found", "");
    /* renaming the code carries the roles and groups along (they hold the id) */
    ok(db, S, 'u', "billing", "{\"code\": \"bill\", \"name\": \"Billing\"}");
    expect_missing(db, S, "billing");
    expect_get(db, G, "bill:ops", "{\"name\":\"ops\",\"roles\":[\"admin\",\"reader\"],\"system\":\"bill\"}");
    /* in use by roles and groups: 409, still there */
    refused(db, S, 'd', "bill", NULL, "conflict", "");
    refused(db, S, 'd', "nope", NULL, "not_found", "");
    ok(db, S, 'c', NULL, "{\"code\": \"empty\", \"name\": \"Unused\"}");
    ok(db, S, 'd', "empty", NULL);
    expect_missing(db, S, "empty");
}

static void test_roles_and_groups(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    cph_error_t err;
    json_t *list;

    seed(db);
    refused(db, R, 'c', NULL, "{\"system\": \"nope\", \"name\": \"r\"}", "unknown_system", "/system");
    refused(db, R, 'c', NULL, "{\"system\": \"billing\", \"name\": \"reader\"}", "conflict", "/name");
    expect_get(db, R, "hr:reader", "{\"name\":\"reader\",\"system\":\"hr\"}");
    expect_missing(db, R, "reader"); /* a name alone is ambiguous: addressed as <system>:<name> */
    expect_missing(db, R, "hr:nope");
    expect_missing(db, R, "nope:reader");
    expect_missing(db, R, ":");
    cph_db_lock(db);
    list = cph_store_role_list(db, &err);
    cph_db_unlock(db);
    assert_int_equal(json_array_size(list), 3); /* billing:admin, billing:reader, hr:reader */
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")), "admin");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "system")), "hr");
    json_decref(list);
    /* a group's roles are of its own system */
    refused(db, G, 'c', NULL, "{\"system\": \"hr\", \"name\": \"g\", \"roles\": [\"reader\", \"admin\"]}", "unknown_role",
            "/roles/1");
    refused(db, G, 'c', NULL, "{\"system\": \"nope\", \"name\": \"g\"}", "unknown_system", "/system");
    refused(db, G, 'c', NULL, "{\"system\": \"billing\", \"name\": \"ops\"}", "conflict", "/name");
    ok(db, G, 'c', NULL, "{\"system\": \"hr\", \"name\": \"ops\"}");
    expect_get(db, G, "hr:ops", "{\"name\":\"ops\",\"roles\":[],\"system\":\"hr\"}");
    /* a role held by a group cannot be deleted nor moved to another system; renaming follows */
    refused(db, R, 'd', "billing:admin", NULL, "conflict", "");
    refused(db, R, 'u', "billing:admin", "{\"system\": \"hr\", \"name\": \"admin\"}", "conflict", "/system");
    ok(db, R, 'u', "billing:admin", "{\"system\": \"billing\", \"name\": \"root\"}");
    expect_get(db, G, "billing:ops", "{\"name\":\"ops\",\"roles\":[\"reader\",\"root\"],\"system\":\"billing\"}");
    /* replacing the group's roles frees the role; deleting the group cascades its links */
    ok(db, G, 'u', "billing:ops", "{\"system\": \"billing\", \"name\": \"ops\", \"roles\": [\"reader\"]}");
    ok(db, R, 'd', "billing:root", NULL);
    refused(db, R, 'd', "billing:reader", NULL, "conflict", "");
    ok(db, G, 'd', "billing:ops", NULL);
    ok(db, R, 'd', "billing:reader", NULL);
    expect_missing(db, G, "billing:ops");
}

static void test_users(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    cph_error_t err;
    char *h1, *h2;
    int64_t id;

    seed(db);
    ok(db, U, 'c', NULL,
       "{\"username\": \"alice\", \"email\": \"Alice@Example.com\", \"password\": \"correct horse\", \"systems\": [\"hr\", "
       "\"billing\"], \"roles\": [{\"system\": \"hr\", \"name\": \"reader\"}], \"groups\": [{\"system\": \"billing\", \"name\": "
       "\"ops\"}]}");
    expect_get(
        db, U, "alice",
        "{\"email\":\"Alice@Example.com\",\"enabled\":true,\"groups\":[{\"name\":\"ops\",\"system\":\"billing\"}],\"roles\":[{"
        "\"name\":\"reader\",\"system\":\"hr\"}],\"superuser\":false,\"systems\":[\"billing\",\"hr\"],\"username\":\"alice\"}");
    refused(db, U, 'c', NULL, "{\"username\": \"bob\"}", "missing_field", "/password");
    refused(db, U, 'c', NULL, "{\"username\": \"ALICE\", \"password\": \"12345678\"}", "conflict", "/username");
    refused(db, U, 'c', NULL, "{\"username\": \"bob\", \"email\": \"alice@example.COM\", \"password\": \"12345678\"}", "conflict",
            "/email");
    refused(db, U, 'c', NULL, "{\"username\": \"bob\", \"systems\": [\"hr\", \"nope\"], \"password\": \"12345678\"}",
            "unknown_system", "/systems/1");
    refused(db, U, 'c', NULL,
            "{\"username\": \"bob\", \"systems\": [\"hr\"], \"roles\": [{\"system\": \"hr\", \"name\": \"admin\"}], \"password\": "
            "\"12345678\"}",
            "unknown_role", "/roles/0");
    refused(db, U, 'c', NULL,
            "{\"username\": \"bob\", \"systems\": [\"hr\"], \"groups\": [{\"system\": \"hr\", \"name\": \"ops\"}], \"password\": "
            "\"12345678\"}",
            "unknown_group", "/groups/0");
    /* a PUT without a password keeps the hash; with one, replaces it */
    assert_int_equal(run(db, U, 'u', "alice", "{\"username\": \"alice\", \"superuser\": true, \"enabled\": false}", &id, &err), 0);
    expect_get(
        db, U, "alice",
        "{\"email\":null,\"enabled\":false,\"groups\":[],\"roles\":[],\"superuser\":true,\"systems\":[],\"username\":\"alice\"}");
    cph_db_lock(db);
    h1 = cph_store_user_password_hash(db, id);
    cph_db_unlock(db);
    assert_true(cph_password_verify(h1, "correct horse", 13));
    ok(db, U, 'u', "alice", "{\"username\": \"alice\", \"password\": \"battery staple\"}");
    cph_db_lock(db);
    h2 = cph_store_user_password_hash(db, id);
    cph_db_unlock(db);
    assert_false(cph_password_verify(h2, "correct horse", 13));
    assert_true(cph_password_verify(h2, "battery staple", 14));
    free(h1);
    free(h2);
    refused(db, U, 'u', "nobody", "{\"username\": \"nobody\"}", "not_found", "");
    /* memberships hold their role and group; deleting the user cascades them */
    ok(db, U, 'u', "alice",
       "{\"username\": \"alice\", \"systems\": [\"billing\"], \"roles\": [{\"system\": \"billing\", \"name\": \"admin\"}], "
       "\"groups\": [{\"system\": \"billing\", \"name\": \"ops\"}]}");
    ok(db, G, 'u', "billing:ops", "{\"system\": \"billing\", \"name\": \"ops\"}");
    refused(db, G, 'd', "billing:ops", NULL, "conflict", "");
    refused(db, G, 'u', "billing:ops", "{\"system\": \"hr\", \"name\": \"ops\"}", "conflict", "/system");
    refused(db, R, 'd', "billing:admin", NULL, "conflict", "");
    ok(db, U, 'd', "alice", NULL);
    expect_missing(db, U, "alice");
    ok(db, G, 'd', "billing:ops", NULL);
    ok(db, R, 'd', "billing:admin", NULL);
}

/* The stored prefix and SHA-256 of api key id. */
static void stored_key(cph_db_t *db, int64_t id, char prefix[16], char sha[65])
{
    sqlite3_stmt *st = NULL;

    cph_db_lock(db);
    assert_int_equal(
        sqlite3_prepare_v2(cph_db_handle(db), "SELECT prefix, secret_sha256 FROM api_keys WHERE id = ?", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(prefix, 16, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(sha, 65, "%s", (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    cph_db_unlock(db);
}

static void test_api_keys(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    cph_error_t err;
    json_t *in, *k;
    op_t o = {K, 'c', NULL, NULL, 0};
    uint64_t version;
    const char *key, *dot;
    char prefix[16], sha[65], prefix2[16], sha2[65], hex[65], want[512];
    unsigned char md[32];
    unsigned int n = 0;

    seed(db);
    in = parse("{\"system\": \"billing\", \"name\": \"ci\", \"roles\": [\"reader\"], \"groups\": [\"ops\"], \"expires_at\": "
               "\"2030-01-02T03:04:05+02:00\"}");
    assert_non_null(k = o.obj = cph_store_api_key_normalize(in, &err));
    assert_int_equal(cph_db_write(db, "test", on_op, &o, &version, &err), 0);
    key = json_string_value(json_object_get(k, "key"));
    assert_non_null(key);
    dot = strchr(key, '.');
    assert_non_null(dot);
    assert_int_equal(dot - key, CPH_API_KEY_PREFIX_LEN);
    assert_int_equal(strlen(dot + 1), 43); /* 32 bytes, unpadded base64url */
    assert_int_equal(strspn(dot + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    stored_key(db, o.id, prefix, sha);
    assert_int_equal(strncmp(prefix, key, CPH_API_KEY_PREFIX_LEN), 0);
    assert_int_equal(strlen(prefix), CPH_API_KEY_PREFIX_LEN);
    EVP_Digest(dot + 1, strlen(dot + 1), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(sha, hex);
    snprintf(
        want, sizeof(want),
        "{\"expires_at\":\"2030-01-02T01:04:05.000Z\",\"groups\":[\"ops\"],\"name\":\"ci\",\"prefix\":\"%s\",\"revoked\":false,"
        "\"roles\":[\"reader\"],\"system\":\"billing\"}",
        prefix);
    expect_get(db, K, "billing:ci", want); /* no key, no hash */
    json_decref(k);
    json_decref(in);
    /* an update changes everything but the secret */
    ok(db, K, 'u', "billing:ci", "{\"system\": \"billing\", \"name\": \"ci\", \"revoked\": true}");
    stored_key(db, o.id, prefix2, sha2);
    assert_string_equal(prefix, prefix2);
    assert_string_equal(sha, sha2);
    snprintf(want, sizeof(want),
             "{\"expires_at\":null,\"groups\":[],\"name\":\"ci\",\"prefix\":\"%s\",\"revoked\":true,\"roles\":[],\"system\":"
             "\"billing\"}",
             prefix);
    expect_get(db, K, "billing:ci", want);
    refused(db, K, 'c', NULL, "{\"system\": \"billing\", \"name\": \"ci\"}", "conflict", "/name");
    refused(db, K, 'c', NULL, "{\"system\": \"nope\", \"name\": \"x\"}", "unknown_system", "/system");
    refused(db, K, 'c', NULL, "{\"system\": \"hr\", \"name\": \"x\", \"roles\": [\"reader\", \"admin\"]}", "unknown_role",
            "/roles/1");
    refused(db, K, 'c', NULL, "{\"system\": \"hr\", \"name\": \"x\", \"groups\": [\"ops\"]}", "unknown_group", "/groups/0");
    /* a key holds its roles and groups; deleting it cascades */
    ok(db, K, 'c', NULL, "{\"system\": \"hr\", \"name\": \"x\", \"roles\": [\"reader\"]}");
    refused(db, R, 'd', "hr:reader", NULL, "conflict", "");
    ok(db, K, 'd', "hr:x", NULL);
    ok(db, R, 'd', "hr:reader", NULL);
    ok(db, K, 'd', "billing:ci", NULL);
    expect_missing(db, K, "billing:ci");
}

static void test_endpoints(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    int64_t id;
    cph_error_t err;
    char key[24];

    seed(db);
    ok(db, &cph_store_service_ops, 'c', NULL, "{\"name\": \"svc\", \"targets\": [{\"url\": \"http://127.0.0.1:9\"}]}");
    refused(db, E, 'c', NULL, "{\"service\": \"nope\", \"path\": \"/x\"}", "unknown_service", "/service");
    refused(db, E, 'c', NULL, "{\"service\": \"svc\", \"path\": \"/x\", \"roles\": [{\"system\": \"nope\", \"name\": \"r\"}]}",
            "unknown_system", "/roles/0");
    refused(db, E, 'c', NULL,
            "{\"service\": \"svc\", \"path\": \"/x\", \"roles\": [{\"system\": \"billing\", \"name\": \"reader\"}, {\"system\": "
            "\"hr\", \"name\": \"admin\"}]}",
            "unknown_role", "/roles/1");
    refused(db, E, 'c', NULL, "{\"service\": \"svc\", \"path\": \"/x\", \"groups\": [{\"system\": \"hr\", \"name\": \"ops\"}]}",
            "unknown_group", "/groups/0");
    assert_int_equal(run(db, E, 'c', NULL,
                         "{\"service\": \"svc\", \"path\": \"/items/{id}\", \"roles\": [{\"system\": \"hr\", \"name\": "
                         "\"reader\"}, {\"system\": \"billing\", \"name\": \"admin\"}], \"groups\": [{\"system\": \"billing\", "
                         "\"name\": \"ops\"}]}",
                         &id, &err),
                     0);
    snprintf(key, sizeof(key), "%lld", (long long)id);
    expect_get(db, E, key,
               "{\"groups\":[{\"name\":\"ops\",\"system\":\"billing\"}],\"method\":\"*\",\"path\":\"/items/{id}\",\"public\":false,"
               "\"rate_limits\":null,\"roles\":[{\"name\":\"admin\",\"system\":\"billing\"},{\"name\":\"reader\",\"system\":"
               "\"hr\"}],\"service\":\"svc\",\"shadow\":false}");
    expect_missing(db, E, "svc");
    /* one rule per (service, method, path); another method is another rule */
    refused(db, E, 'c', NULL, "{\"service\": \"svc\", \"path\": \"/items/{id}\"}", "conflict", "/path");
    ok(db, E, 'c', NULL, "{\"service\": \"svc\", \"path\": \"/items/{id}\", \"method\": \"GET\", \"public\": true}");
    /* listed roles and groups stay while listed; the rule goes with its service */
    refused(db, R, 'd', "hr:reader", NULL, "conflict", "");
    refused(db, G, 'd', "billing:ops", NULL, "conflict", "");
    refused(db, R, 'u', "hr:reader", "{\"system\": \"billing\", \"name\": \"other\"}", "conflict", "/system");
    ok(db, E, 'u', key, "{\"service\": \"svc\", \"path\": \"/items/{id}\", \"method\": \"*\"}");
    ok(db, R, 'd', "hr:reader", NULL);
    ok(db, E, 'u', key,
       "{\"service\": \"svc\", \"path\": \"/items/*\", \"groups\": [{\"system\": \"billing\", \"name\": \"ops\"}]}");
    ok(db, &cph_store_service_ops, 'd', "svc", NULL);
    expect_missing(db, E, key);
    ok(db, G, 'd', "billing:ops", NULL);
}

/* No audit row holds a password, an argon2 hash, an api key or its hash. */
static void test_audit_has_no_secrets(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    cph_error_t err;
    json_t *in, *k;
    op_t o = {K, 'c', NULL, NULL, 0};
    uint64_t version;
    sqlite3_stmt *st = NULL;
    char prefix[16], sha[65], secret[64];
    int rows = 0;

    seed(db);
    ok(db, U, 'c', NULL, "{\"username\": \"alice\", \"password\": \"sekrit-password\"}");
    ok(db, U, 'u', "alice", "{\"username\": \"alice\", \"password\": \"other-sekrit\"}");
    in = parse("{\"system\": \"billing\", \"name\": \"ci\"}");
    assert_non_null(k = o.obj = cph_store_api_key_normalize(in, &err));
    assert_int_equal(cph_db_write(db, "test", on_op, &o, &version, &err), 0);
    snprintf(secret, sizeof(secret), "%s", strchr(json_string_value(json_object_get(k, "key")), '.') + 1);
    stored_key(db, o.id, prefix, sha);
    ok(db, K, 'u', "billing:ci", "{\"system\": \"billing\", \"name\": \"ci\", \"revoked\": true}");
    ok(db, U, 'd', "alice", NULL);
    ok(db, K, 'd', "billing:ci", NULL);
    cph_db_lock(db);
    assert_int_equal(
        sqlite3_prepare_v2(cph_db_handle(db), "SELECT coalesce(before, '') || coalesce(after, '') FROM audit", -1, &st, NULL),
        SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        ++rows;
        assert_null(strstr(text, "sekrit"));
        assert_null(strstr(text, "argon2"));
        assert_null(strstr(text, "password"));
        assert_null(strstr(text, secret));
        assert_null(strstr(text, sha));
        assert_null(strstr(text, "\"key\""));
    }
    sqlite3_finalize(st);
    cph_db_unlock(db);
    assert_true(rows >= 11);
    json_decref(k);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_refuses),
        cmocka_unit_test(test_normalize_limits),
        cmocka_unit_test(test_normalize_defaults),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_endpoint_paths),
        cmocka_unit_test_setup_teardown(test_systems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles_and_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_has_no_secrets, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
