/*
 * api_authz_test: POST /api/v1/authz/explain and GET /api/v1/authz/shadow.
 *
 * The explain core (cph_explain) runs on a snapshot compiled by the data plane's cph_snapshot_build from a body
 * written here (services with systems, routes with default_access and strip_prefix, groups, endpoint rules with a
 * shadow rule, API keys, a signing key): every decision of docs/access.md section 4 is asked for and checked against what the
 * rules say, with the chain. The "user" form reads users from the migrated test database (rows written with SQL).
 * Hostile bodies are refused with a pointer. Over HTTP (a real loopback socket): the routing of the resource, the
 * cached build of the current snapshot, and the shadow answer without data planes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "controlplane/api.h"
#include "controlplane/api_authz.h"
#include "controlplane/signing.h"
#include "controlplane/token.h"
#include "tests/unit/controlplane/api_client.h"
#include "tests/unit/controlplane/db_fixture.h"

#define ADMIN_TOKEN "unit-test-admin-token-0123456789"

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;

    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; ++i)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---------------------------------------------------------------- the snapshot */

typedef struct st_world_t {
    fixture_t fx; /* first: db_fixture's teardown frees it */
    cph_snapshot_t *snap;
    cph_signing_new_t key;
} world_t;

static json_t *api_key(int id, const char *prefix, const char *secret, const char *system, const char *roles, const char *groups,
                       json_int_t expires)
{
    char hex[65], text[512];

    sha256_hex(secret, hex);
    snprintf(text, sizeof(text),
             "{\"id\": %d, \"prefix\": \"%s\", \"secret_sha256\": \"%s\", \"system\": \"%s\", \"roles\": %s, \"groups\": %s,"
             " \"expires_at\": %s}",
             id, prefix, hex, system, roles, groups, expires != 0 ? "1000000000" : "null");
    return parse(text);
}

static json_t *body_with(const cph_signing_new_t *key)
{
    cph_error_t err;
    json_t *body =
        parse("{\"services\": ["
              "  {\"name\": \"orders\", \"targets\": [{\"url\": \"http://127.0.0.1:9000\"}], \"system\": \"shop\"},"
              "  {\"name\": \"open\", \"targets\": [{\"url\": \"http://127.0.0.1:9001\"}], \"system\": null}],"
              " \"routes\": ["
              "  {\"name\": \"r-orders\", \"service\": \"orders\", \"paths\": [\"/orders\"], \"methods\": [\"GET\", \"POST\"]},"
              "  {\"name\": \"r-api\", \"service\": \"orders\", \"paths\": [\"/api\"], \"strip_prefix\": true, \"default_access\": "
              "\"deny\"},"
              "  {\"name\": \"r-open\", \"service\": \"open\", \"paths\": [\"/open\"], \"default_access\": \"public\"},"
              "  {\"name\": \"r-host\", \"service\": \"open\", \"paths\": [\"/h\"], \"hosts\": [\"shop.example\"],"
              "   \"default_access\": \"public\"}],"
              " \"groups\": [{\"system\": \"shop\", \"name\": \"staff\", \"roles\": [\"clerk\"]}],"
              " \"endpoints\": ["
              "  {\"id\": 1, \"service\": \"orders\", \"method\": \"GET\", \"path\": \"/orders/{id}\","
              "   \"roles\": [{\"system\": \"shop\", \"name\": \"reader\"}], \"groups\": []},"
              "  {\"id\": 2, \"service\": \"orders\", \"method\": \"*\", \"path\": \"/orders/public/*\", \"public\": true,"
              "   \"roles\": [], \"groups\": []},"
              "  {\"id\": 3, \"service\": \"orders\", \"method\": \"POST\", \"path\": \"/orders\", \"roles\": [],"
              "   \"groups\": [{\"system\": \"shop\", \"name\": \"staff\"}]},"
              "  {\"id\": 4, \"service\": \"orders\", \"method\": \"GET\", \"path\": \"/orders/*\", \"shadow\": true,"
              "   \"roles\": [{\"system\": \"shop\", \"name\": \"admin\"}], \"groups\": []},"
              "  {\"id\": 5, \"service\": \"orders\", \"method\": \"GET\", \"path\": \"/v1/x\", \"public\": true, \"roles\": [], "
              "\"groups\": []},"
              "  {\"id\": 6, \"service\": \"orders\", \"method\": \"GET\", \"path\": \"/orders/open/{id}\", \"roles\": [], "
              "\"groups\": []}],"
              " \"api_keys\": [], \"revoked\": {\"users\": [], \"tokens\": []}}");
    json_t *keys = json_object_get(body, "api_keys");

    json_array_append_new(keys, api_key(3, "0a1b2c3d3e", "reader-secret", "shop", "[\"reader\"]", "[]", 0));
    json_array_append_new(keys, api_key(4, "0a1b2c3d4e", "staff-secret", "shop", "[]", "[\"staff\"]", 0));
    json_array_append_new(keys, api_key(5, "0a1b2c3d5e", "clerk-secret", "shop", "[\"clerk\"]", "[]", 0));
    json_array_append_new(keys, api_key(6, "0a1b2c3d6e", "writer-secret", "shop", "[\"writer\"]", "[]", 0));
    json_array_append_new(keys, api_key(7, "0a1b2c3d7e", "other-secret", "other", "[\"reader\"]", "[]", 0));
    json_array_append_new(keys, api_key(8, "0a1b2c3d8e", "old-secret", "shop", "[\"reader\"]", "[]", 1));
    if (key != NULL)
        json_object_set_new(body, "keys", json_pack("[o]", cph_signing_jwk(key->alg, key->kid, key->public_pem, &err)));
    return body;
}

static void add_users(cph_db_t *db)
{
    static const char *const sql[] = {
        "INSERT INTO systems (id, code, name, created_at, updated_at) VALUES (1, 'shop', 'Shop', 'x', 'x'), (2, 'other', 'O', 'x', "
        "'x')",
        "INSERT INTO roles (id, system_id, name, created_at, updated_at) VALUES (1, 1, 'reader', 'x', 'x'), (2, 1, 'clerk', 'x', "
        "'x'),"
        " (3, 2, 'reader', 'x', 'x')",
        "INSERT INTO groups (id, system_id, name, created_at, updated_at) VALUES (1, 1, 'staff', 'x', 'x')",
        "INSERT INTO group_roles (group_id, role_id) VALUES (1, 2)",
        "INSERT INTO users (id, username, password_hash, superuser, enabled, created_at, updated_at) VALUES"
        " (10, 'alice', '$argon2id$x', 0, 1, 'x', 'x'), (11, 'bob', '$argon2id$x', 0, 0, 'x', 'x'),"
        " (12, 'carol', '$argon2id$x', 0, 1, 'x', 'x'), (13, 'root', '$argon2id$x', 1, 1, 'x', 'x'),"
        " (14, 'dave', '$argon2id$x', 0, 1, 'x', 'x')",
        "INSERT INTO user_systems (user_id, system_id) VALUES (10, 1), (11, 1), (12, 2), (14, 1), (14, 2)",
        "INSERT INTO user_roles (user_id, role_id) VALUES (10, 1), (11, 1), (12, 3), (14, 3)",
        "INSERT INTO user_groups (user_id, group_id) VALUES (14, 1)",
    };

    for (size_t i = 0; i != sizeof(sql) / sizeof(sql[0]); ++i)
        assert_int_equal(cph_db_exec(db, sql[i], NULL), 0);
}

static int setup(void **state)
{
    world_t *w = calloc(1, sizeof(*w));
    fixture_t *fx;
    cph_error_t err;
    json_t *body;

    assert_int_equal(db_fixture_setup((void **)&fx, "authz"), 0);
    w->fx = *fx;
    free(fx);
    add_users(w->fx.db);
    assert_int_equal(cph_signing_new("ES256", &w->key, &err), 0);
    body = body_with(&w->key);
    w->snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 7, "sha256:test", "cp", &err);
    if (w->snap == NULL)
        fail_msg("the test body does not build: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world_t *w = *state;
    fixture_t *fx = malloc(sizeof(*fx));

    cph_snapshot_release(w->snap);
    cph_signing_new_clear(&w->key);
    *fx = w->fx;
    free(w);
    *state = fx;
    return teardown(state);
}

/* ---------------------------------------------------------------- helpers */

/* Explains the request (JSON text) and returns the answer; fails the test on an error. */
static json_t *explain(world_t *w, const char *request)
{
    json_t *req = parse(request), *out;
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    out = cph_explain(w->snap, w->fx.db, req, &err);
    if (out == NULL)
        fail_msg("explain %s failed: %s at %s: %s", request, err.code, err.path, err.msg);
    json_decref(req);
    return out;
}

static const char *s(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v != NULL ? v : "(not a string)";
}

static json_int_t i(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* The chain as one string, lines joined by " | ". */
static char *chain_text(const json_t *out)
{
    static char buf[4096];
    const json_t *line;
    size_t k;

    buf[0] = '\0';
    json_array_foreach(json_object_get(out, "chain"), k, line)
    {
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", k != 0 ? " | " : "", json_string_value(line));
    }
    return buf;
}

static void assert_decision(const json_t *out, const char *decision, int status, const char *reason)
{
    if (strcmp(s(out, "decision"), decision) != 0 || i(out, "status") != status ||
        (reason != NULL && strcmp(s(out, "reason"), reason) != 0)) {
        char *text = json_dumps(out, JSON_COMPACT);
        fail_msg("want %s %d %s, got %s", decision, status, reason != NULL ? reason : "-", text);
    }
}

/* Whether the dumped answer contains needle (a secret must never be echoed). */
static int answer_has(const json_t *out, const char *needle)
{
    char *text = json_dumps(out, JSON_COMPACT);
    int found = text != NULL && strstr(text, needle) != NULL;

    free(text);
    return found;
}

static void assert_chain_has(const json_t *out, const char *needle)
{
    if (strstr(chain_text(out), needle) == NULL)
        fail_msg("chain lacks \"%s\": %s", needle, chain_text(out));
}

#define EXPLAIN(w, ...) explain(w, "{" __VA_ARGS__ "}")

/* ---------------------------------------------------------------- decisions */

static void test_rules_and_roles(void **state)
{
    world_t *w = *state;
    json_t *out;

    /* step 2: a rule with requirements and no credential -> 401; the shadow rule's would-be decision is reported */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\"");
    assert_decision(out, "unauthenticated", 401, "no_credential");
    assert_int_equal(i(out, "version"), 7);
    assert_string_equal(s(out, "route"), "r-orders");
    assert_string_equal(s(out, "service"), "orders");
    assert_string_equal(s(out, "service_system"), "shop");
    assert_string_equal(s(out, "upstream_path"), "/orders/7");
    assert_int_equal(i(json_object_get(out, "rule"), "id"), 1);
    assert_string_equal(s(json_object_get(out, "rule"), "kind"), "template");
    assert_string_equal(s(json_object_get(out, "rule"), "path"), "/orders/{id}");
    assert_true(json_is_null(json_object_get(out, "principal")));
    assert_true(json_is_null(json_object_get(out, "credential")));
    assert_int_equal(i(json_object_get(json_object_get(out, "shadow"), "rule"), "id"), 4);
    assert_chain_has(out, "route r-orders (service orders, system shop)");
    assert_chain_has(out, "rule #1 GET /orders/{id}");
    assert_chain_has(out, "shadow rule #4");
    json_decref(out);

    /* step 6 by an own role; the shadow rule (admin) would deny */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"api_key\": \"0a1b2c3d3e.reader-secret\"");
    assert_decision(out, "allow", 200, "role");
    assert_string_equal(s(out, "granted_by"), "role:reader");
    assert_true(json_is_true(json_object_get(json_object_get(out, "credential"), "valid")));
    assert_string_equal(s(json_object_get(out, "principal"), "kind"), "api_key");
    assert_int_equal(i(json_object_get(out, "principal"), "id"), 3);
    assert_string_equal(s(json_object_get(out, "principal"), "system"), "shop");
    assert_string_equal(s(json_object_get(out, "shadow"), "decision"), "forbidden");
    json_decref(out);

    /* step 6 by a group (its roles count as effective roles); another role -> 403 */
    out = EXPLAIN(w, "\"method\": \"POST\", \"path\": \"/orders\", \"api_key\": \"0a1b2c3d4e.staff-secret\"");
    assert_decision(out, "allow", 200, "group");
    assert_string_equal(s(out, "granted_by"), "group:staff");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(out, "principal"), "effective_roles"), 0)),
                        "clerk");
    assert_string_equal(s(json_object_get(out, "rule"), "kind"), "exact");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"POST\", \"path\": \"/orders\", \"api_key\": \"0a1b2c3d5e.clerk-secret\"");
    assert_decision(out, "allow", 200, "role"); /* clerk is a role of the rule's group staff */
    assert_string_equal(s(out, "granted_by"), "role:clerk");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"POST\", \"path\": \"/orders\", \"api_key\": \"0a1b2c3d6e.writer-secret\"");
    assert_decision(out, "forbidden", 403, "no_matching_role_or_group");
    assert_true(json_is_null(json_object_get(out, "granted_by")));
    json_decref(out);

    /* step 4: a key of another system */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"api_key\": \"0a1b2c3d7e.other-secret\"");
    assert_decision(out, "forbidden", 403, "wrong_system");
    json_decref(out);

    /* step 1 (public, prefix) and step 5 (no requirements, with a credential) */
    out = EXPLAIN(w, "\"method\": \"DELETE\", \"path\": \"/orders/public/a/b\"");
    assert_decision(out, "method_not_allowed", 405, NULL); /* the route allows GET, POST only: the router decides first */
    assert_string_equal(s(out, "allow"), "GET, POST");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/public/a/b\"");
    assert_decision(out, "allow", 200, "public_endpoint");
    assert_string_equal(s(json_object_get(out, "rule"), "kind"), "prefix");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/open/9\", \"api_key\": \"0a1b2c3d6e.writer-secret\"");
    assert_decision(out, "allow", 200, "no_requirements");
    json_decref(out);
}

static void test_routes_and_defaults(void **state)
{
    world_t *w = *state;
    json_t *out;

    /* no rule: the route's default_access (authenticated) */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders\"");
    assert_decision(out, "unauthenticated", 401, NULL);
    assert_true(json_is_null(json_object_get(out, "rule")));
    assert_string_equal(s(out, "default_access"), "authenticated");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders\", \"api_key\": \"0a1b2c3d6e.writer-secret\"");
    assert_decision(out, "allow", 200, NULL);
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders\", \"api_key\": \"0a1b2c3d7e.other-secret\"");
    assert_decision(out, "forbidden", 403, "wrong_system");
    json_decref(out);

    /* strip_prefix: the rule matches the upstream path; default deny for the rest; the query is not matched */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/api/v1/x?token=abc\"");
    assert_decision(out, "allow", 200, "public_endpoint");
    assert_string_equal(s(out, "canonical_path"), "/api/v1/x");
    assert_string_equal(s(out, "upstream_path"), "/v1/x");
    assert_int_equal(i(json_object_get(out, "rule"), "id"), 5);
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/api/other\", \"api_key\": \"0a1b2c3d3e.reader-secret\"");
    assert_decision(out, "forbidden", 403, "default_deny");
    assert_string_equal(s(out, "default_access"), "deny");
    json_decref(out);

    /* a service in no system, default public */
    out = EXPLAIN(w, "\"method\": \"PATCH\", \"path\": \"/open/x\"");
    assert_decision(out, "allow", 200, "default_public");
    assert_true(json_is_null(json_object_get(out, "service_system")));
    assert_chain_has(out, "no system");
    json_decref(out);

    /* the host is normalised (case, port) and routes with hosts need it */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/h\", \"host\": \"SHOP.Example:8443\"");
    assert_decision(out, "allow", 200, NULL);
    assert_string_equal(s(out, "route"), "r-host");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/h\"");
    assert_decision(out, "not_found", 404, "no_route");
    assert_true(json_is_null(json_object_get(out, "route")));
    json_decref(out);

    /* canonical path: dot segments and escapes resolved before matching */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/x/../orders/public/%61\"");
    assert_decision(out, "allow", 200, "public_endpoint");
    assert_string_equal(s(out, "canonical_path"), "/orders/public/a");
    assert_chain_has(out, "path /x/../orders/public/%61 -> /orders/public/a");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/a%2Fb\"");
    assert_decision(out, "bad_path", 400, "bad_path");
    json_decref(out);

    /* the reserved /auth prefix */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/auth/.well-known/jwks.json\"");
    assert_decision(out, "allow", 200, "builtin");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/auth/login\"");
    assert_decision(out, "method_not_allowed", 405, "builtin");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/auth/secret\"");
    assert_decision(out, "not_found", 404, "builtin");
    json_decref(out);
}

static void test_credentials(void **state)
{
    world_t *w = *state;
    cph_token_claims_t c = {.user_id = 10, .username = "alice", .system = "shop", .superuser = 0};
    json_t *roles = parse("[\"reader\"]"), *groups = parse("[]"), *out;
    char jti[2 * CPH_TOKEN_JTI_BYTES + 1], req[4096];
    cph_token_t tok = {0};
    cph_error_t err;

    /* an invalid credential is 401 before any rule, even on a public endpoint (step 0); never echoed */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/public/a\", \"api_key\": \"0a1b2c3d3e.wrong-secret\"");
    assert_decision(out, "unauthenticated", 401, "invalid_credential");
    assert_true(json_is_false(json_object_get(json_object_get(out, "credential"), "valid")));
    assert_string_equal(s(json_object_get(out, "credential"), "reason"), "bad_secret");
    assert_true(json_is_null(json_object_get(out, "rule")));
    assert_false(answer_has(out, "wrong-secret"));
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"api_key\": \"0a1b2c3d8e.old-secret\"");
    assert_decision(out, "unauthenticated", 401, "invalid_credential");
    assert_string_equal(s(json_object_get(out, "credential"), "reason"), "expired");
    json_decref(out);

    /* a token the control plane issues, and the same token tampered with */
    c.roles = roles;
    c.groups = groups;
    assert_int_equal(cph_token_new_jti(jti), 0);
    assert_int_equal(cph_token_issue(&w->key, &c, jti, (int64_t)time(NULL), 300, &tok, &err), 0);
    snprintf(req, sizeof(req), "{\"method\": \"GET\", \"path\": \"/orders/7\", \"token\": \"%s\"}", tok.jwt);
    out = explain(w, req);
    assert_decision(out, "allow", 200, "role");
    assert_string_equal(s(json_object_get(out, "principal"), "kind"), "user");
    assert_int_equal(i(json_object_get(out, "principal"), "id"), 10);
    assert_true(json_is_true(json_object_get(json_object_get(out, "credential"), "valid")));
    json_decref(out);
    req[strlen(req) - 10] = req[strlen(req) - 10] == 'A' ? 'B' : 'A'; /* inside the signature */
    out = explain(w, req);
    assert_decision(out, "unauthenticated", 401, "invalid_credential");
    assert_false(answer_has(out, tok.jwt));
    json_decref(out);
    cph_token_clear(&tok);
    json_decref(roles);
    json_decref(groups);
}

static void test_user_form(void **state)
{
    world_t *w = *state;
    json_t *out, *p;

    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"alice\"");
    assert_decision(out, "allow", 200, "role");
    p = json_object_get(out, "principal");
    assert_string_equal(s(p, "kind"), "user");
    assert_int_equal(i(p, "id"), 10);
    assert_string_equal(s(p, "system"), "shop"); /* the service's system */
    assert_true(json_is_null(json_object_get(out, "credential")));
    json_decref(out);
    /* by id, and a user whose roles in shop come from a group only */
    out = EXPLAIN(w, "\"method\": \"POST\", \"path\": \"/orders\", \"user\": \"14\"");
    assert_decision(out, "allow", 200, "group");
    p = json_object_get(out, "principal");
    assert_string_equal(s(p, "name"), "dave");
    assert_int_equal(json_array_size(json_object_get(p, "roles")), 0); /* dave's own role is in "other" */
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "groups"), 0)), "staff");
    json_decref(out);
    /* the same user logged in to another system -> step 4 */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"dave\", \"system\": \"other\"");
    assert_decision(out, "forbidden", 403, "wrong_system");
    json_decref(out);
    /* disabled, or not a member of the system: explained without a credential */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"bob\"");
    assert_decision(out, "unauthenticated", 401, "no_credential");
    assert_true(json_is_null(json_object_get(out, "principal")));
    assert_chain_has(out, "bob is disabled");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"carol\"");
    assert_decision(out, "unauthenticated", 401, "no_credential");
    assert_chain_has(out, "not a member of system shop");
    json_decref(out);
    /* a superuser is a member of every system and passes step 3 */
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"root\"");
    assert_decision(out, "allow", 200, "superuser");
    assert_true(json_is_true(json_object_get(json_object_get(out, "principal"), "superuser")));
    json_decref(out);
}

/* ---------------------------------------------------------------- hostile bodies */

static void assert_refused(world_t *w, cph_db_t *db, const char *request, const char *code, const char *path)
{
    json_t *req = json_loads(request, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *out;
    cph_error_t err;

    assert_non_null(req);
    memset(&err, 0, sizeof(err));
    out = cph_explain(w->snap, db, req, &err);
    if (out != NULL)
        fail_msg("%s was explained: %s", request, json_dumps(out, JSON_COMPACT));
    if (strcmp(err.code, code) != 0 || strcmp(err.path, path) != 0)
        fail_msg("%s: want %s at %s, got %s at %s (%s)", request, code, path, err.code, err.path, err.msg);
    json_decref(req);
}

static void test_hostile_bodies(void **state)
{
    world_t *w = *state;
    char big[10000];

    assert_refused(w, w->fx.db, "[]", "invalid", "");
    assert_refused(w, w->fx.db, "\"GET /\"", "invalid", "");
    assert_refused(w, w->fx.db, "{\"path\": \"/\"}", "missing_field", "/method");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\"}", "missing_field", "/path");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"foo\": 1}", "unknown_field", "/foo");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"a/b~\": 1}", "unknown_field", "/a~1b~0");
    assert_refused(w, w->fx.db, "{\"method\": 5, \"path\": \"/\"}", "invalid", "/method");
    assert_refused(w, w->fx.db, "{\"method\": \"G T\", \"path\": \"/\"}", "invalid", "/method");
    assert_refused(w, w->fx.db, "{\"method\": \"\", \"path\": \"/\"}", "invalid", "/method");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"orders\"}", "invalid", "/path");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": null}", "invalid", "/path");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": [\"/\"]}", "invalid", "/path");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/a\\u0000b\"}", "invalid", "/path");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"host\": true}", "invalid", "/host");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"token\": \"a\", \"api_key\": \"b\"}", "invalid",
                   "/api_key");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"alice\", \"token\": \"a\"}", "invalid",
                   "/user");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"api_key\": \"\"}", "invalid", "/api_key");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"system\": \"shop\"}", "invalid", "/system");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"alice\", \"system\": \"Shop!\"}", "invalid",
                   "/system");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"nobody\"}", "not_found", "/user");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"alice\", \"system\": \"nope\"}",
                   "unknown_system", "/system");
    assert_refused(w, w->fx.db, "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"alice\", \"system\": \"1\"}", "unknown_system",
                   "/system"); /* "1" is the id of shop, not a code */
    assert_refused(w, NULL, "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"alice\"}", "invalid", "/user");
    /* sizes */
    snprintf(big, sizeof(big), "{\"method\": \"GET\", \"path\": \"/%09000d\"}", 0);
    assert_refused(w, w->fx.db, big, "invalid", "/path");
    snprintf(big, sizeof(big), "{\"method\": \"GET\", \"path\": \"/\", \"host\": \"%0300d\"}", 0);
    assert_refused(w, w->fx.db, big, "invalid", "/host");
    snprintf(big, sizeof(big), "{\"method\": \"%040d\", \"path\": \"/\"}", 0);
    assert_refused(w, w->fx.db, big, "invalid", "/method");
}

/* Control bytes and bad UTF-8 sequences in the path go to bad_path, and an odd host to 404, never a crash. */
static void test_odd_values(void **state)
{
    world_t *w = *state;
    json_t *out;

    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/\\u0001\"");
    assert_decision(out, "bad_path", 400, "bad_path");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/%ff%fe\"");
    assert_int_equal(json_array_size(json_object_get(out, "chain")) > 0, 1);
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/h\", \"host\": \"\"");
    assert_decision(out, "not_found", 404, "no_route");
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"BREW\", \"path\": \"/open/pot\"");
    assert_decision(out, "allow", 200, "default_public"); /* any method: r-open allows every method */
    json_decref(out);
    out = EXPLAIN(w, "\"method\": \"GET\", \"path\": \"/orders/7\", \"token\": \"a.b.c\"");
    assert_decision(out, "unauthenticated", 401, "invalid_credential");
    json_decref(out);
}

/* ---------------------------------------------------------------- over HTTP */

typedef struct st_http_t {
    fixture_t fx;
    cph_api_t *api;
    int port;
} http_t;

static int http_setup(void **state)
{
    http_t *h = calloc(1, sizeof(*h));
    fixture_t *fx;
    cph_error_t err;
    char sql[256], hex[65], listen[64];

    assert_int_equal(db_fixture_setup((void **)&fx, "authz-http"), 0);
    h->fx = *fx;
    free(fx);
    sha256_hex(ADMIN_TOKEN, hex);
    snprintf(sql, sizeof(sql), "INSERT INTO admin_tokens (name, sha256, created_at) VALUES ('admin', '%s', 'now')", hex);
    assert_int_equal(cph_db_exec(h->fx.db, sql, NULL), 0);
    assert_int_equal(cph_db_ensure_snapshot(h->fx.db, &err), 0);
    h->port = api_client_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", h->port);
    assert_non_null(h->api = cph_api_start(listen, h->fx.db, NULL, &err));
    *state = h;
    return 0;
}

static int http_teardown(void **state)
{
    http_t *h = *state;
    fixture_t *fx = malloc(sizeof(*fx));

    cph_api_stop(h->api);
    cph_api_authz_cache_clear();
    *fx = h->fx;
    free(h);
    *state = fx;
    return teardown(state);
}

static char *request(http_t *h, const char *method, const char *path, const char *body)
{
    char head[512];

    snprintf(head, sizeof(head),
             "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " ADMIN_TOKEN "\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             method, path, body != NULL ? strlen(body) : 0);
    return api_client_exchange(h->port, head, body, body != NULL ? strlen(body) : 0);
}

static void assert_http(char *resp, const char *status_line, const char *needle)
{
    if (strncmp(resp, status_line, strlen(status_line)) != 0 || (needle != NULL && strstr(resp, needle) == NULL))
        fail_msg("want %s with %s, got:\n%s", status_line, needle != NULL ? needle : "-", resp);
    free(resp);
}

static void test_http(void **state)
{
    http_t *h = *state;

    /* the bootstrap snapshot has no routes: 404, twice (the second from the cached build) */
    for (int k = 0; k != 2; ++k)
        assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"GET\", \"path\": \"/x/../y\"}"), "HTTP/1.1 200",
                    "\"decision\":\"not_found\"");
    assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"GET\", \"path\": \"/\", \"nope\": 1}"), "HTTP/1.1 400",
                "\"path\":\"/nope\"");
    assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"GET\", \"path\": \"/\", \"user\": \"ghost\"}"),
                "HTTP/1.1 404", "\"path\":\"/user\"");
    assert_http(request(h, "GET", "/api/v1/authz/explain", NULL), "HTTP/1.1 405", NULL);
    assert_http(request(h, "GET", "/api/v1/authz/shadow", NULL), "HTTP/1.1 200", "{\"endpoints\":[]}");
    assert_http(request(h, "POST", "/api/v1/authz/shadow", "{}"), "HTTP/1.1 405", NULL);
    assert_http(request(h, "GET", "/api/v1/authz/other", NULL), "HTTP/1.1 404", NULL);
    assert_http(request(h, "GET", "/api/v1/authz", NULL), "HTTP/1.1 405", NULL);
}

/* Rows written through the admin API itself reach explain through snapbuild; a new version replaces the cached build. */
static void test_http_end_to_end(void **state)
{
    http_t *h = *state;

    assert_http(request(h, "POST", "/api/v1/systems", "{\"code\": \"shop\", \"name\": \"Shop\"}"), "HTTP/1.1 201", NULL);
    assert_http(request(h, "POST", "/api/v1/roles", "{\"system\": \"shop\", \"name\": \"reader\"}"), "HTTP/1.1 201", NULL);
    assert_http(request(h, "POST", "/api/v1/services",
                        "{\"name\": \"orders\", \"targets\": [{\"url\": \"http://127.0.0.1:9000\"}], \"system\": \"shop\"}"),
                "HTTP/1.1 201", NULL);
    assert_http(request(h, "POST", "/api/v1/routes", "{\"name\": \"r-orders\", \"service\": \"orders\", \"paths\": [\"/orders\"]}"),
                "HTTP/1.1 201", NULL);
    assert_http(request(h, "POST", "/api/v1/users",
                        "{\"username\": \"alice\", \"password\": \"correct horse\", \"systems\": [\"shop\"],"
                        " \"roles\": [{\"system\": \"shop\", \"name\": \"reader\"}]}"),
                "HTTP/1.1 201", NULL);
    /* no rule yet: the route's default (authenticated) lets alice in */
    assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"alice\"}"),
                "HTTP/1.1 200", "\"default_access\":\"authenticated\"");
    assert_http(request(h, "POST", "/api/v1/endpoints",
                        "{\"service\": \"orders\", \"method\": \"GET\", \"path\": \"/orders/{id}\","
                        " \"roles\": [{\"system\": \"shop\", \"name\": \"reader\"}]}"),
                "HTTP/1.1 201", NULL);
    assert_http(request(h, "POST", "/api/v1/endpoints",
                        "{\"service\": \"orders\", \"method\": \"*\", \"path\": \"/orders/*\", \"shadow\": true,"
                        " \"roles\": [{\"system\": \"shop\", \"name\": \"reader\"}]}"),
                "HTTP/1.1 201", NULL);
    /* the new version is built: the rule decides, the shadow rule is reported */
    assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"GET\", \"path\": \"/orders/7\", \"user\": \"alice\"}"),
                "HTTP/1.1 200", "\"granted_by\":\"role:reader\"");
    assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"GET\", \"path\": \"/orders/7\"}"), "HTTP/1.1 200",
                "\"decision\":\"unauthenticated\"");
    assert_http(request(h, "POST", "/api/v1/authz/explain", "{\"method\": \"POST\", \"path\": \"/orders/7\", \"user\": \"alice\"}"),
                "HTTP/1.1 200", "\"shadow\":{\"rule\":{");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rules_and_roles, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_defaults, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_credentials, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_user_form, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bodies, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_odd_values, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_http, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_http_end_to_end, http_setup, http_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
