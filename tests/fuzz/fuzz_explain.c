/*
 * fuzz_explain: the body of POST /api/v1/authz/explain (cph_explain, controlplane/api_authz.c) on a fixed snapshot and
 * database: the request's checks, then the data plane's own stages on it - path canonicalisation, the reserved /auth
 * prefix, the router, authentication of a token / an API key / a stored user, authorization with its trace.
 *
 * Input: the request body, parsed as api.c parses admin bodies (duplicate keys refused).
 *
 * Properties (a violation traps):
 *   - a refusal has a well-formed error (code, NUL-terminated fields, a JSON pointer): it becomes the 400/404 body;
 *   - an answer is an object whose "decision" is one of the documented words, "status" agrees with it (allow 200,
 *     unauthenticated 401, forbidden 403, or the router's own 400/404/405 before any decision), and "chain" is an array
 *     of strings (the human explanation);
 *   - explain is a pure function of (snapshot, database, request): the same request explained twice gives equal answers.
 */
#include <stdint.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "fuzz_util.h"
#include "controlplane/api_authz.h"
#include "controlplane/db.h"

static cph_snapshot_t *snap;
static cph_db_t *db;
static char dir[] = "/tmp/cph-fuzz-explain-XXXXXX";

static const char BODY[] =
    "{\"services\": ["
    "  {\"name\": \"orders\", \"targets\": [{\"url\": \"http://127.0.0.1:9000\"}], \"system\": \"shop\"},"
    "  {\"name\": \"open\", \"targets\": [{\"url\": \"http://127.0.0.1:9001\"}], \"system\": null}],"
    " \"routes\": ["
    "  {\"name\": \"r-orders\", \"service\": \"orders\", \"paths\": [\"/orders\"], \"methods\": [\"GET\", \"POST\"]},"
    "  {\"name\": \"r-api\", \"service\": \"orders\", \"paths\": [\"/api\"], \"strip_prefix\": true, \"default_access\": \"deny\"},"
    "  {\"name\": \"r-open\", \"service\": \"open\", \"paths\": [\"/open\"], \"default_access\": \"public\"},"
    "  {\"name\": \"r-host\", \"service\": \"open\", \"paths\": [\"/h\"], \"hosts\": [\"shop.example\"], \"default_access\": "
    "\"public\"}],"
    " \"groups\": [{\"system\": \"shop\", \"name\": \"staff\", \"roles\": [\"clerk\"]}],"
    " \"endpoints\": ["
    "  {\"id\": 1, \"service\": \"orders\", \"method\": \"GET\", \"path\": \"/orders/{id}\","
    "   \"roles\": [{\"system\": \"shop\", \"name\": \"reader\"}], \"groups\": []},"
    "  {\"id\": 2, \"service\": \"orders\", \"method\": \"*\", \"path\": \"/orders/public/*\", \"public\": true, \"roles\": [], "
    "\"groups\": []},"
    "  {\"id\": 3, \"service\": \"orders\", \"method\": \"POST\", \"path\": \"/orders\", \"roles\": [],"
    "   \"groups\": [{\"system\": \"shop\", \"name\": \"staff\"}]},"
    "  {\"id\": 4, \"service\": \"orders\", \"method\": \"GET\", \"path\": \"/orders/*\", \"shadow\": true,"
    "   \"roles\": [{\"system\": \"shop\", \"name\": \"admin\"}], \"groups\": []}],"
    " \"api_keys\": [{\"id\": 3, \"prefix\": \"0a1b2c3d3e\", \"secret_sha256\": \"%s\", \"system\": \"shop\","
    "   \"roles\": [\"reader\"], \"groups\": [], \"expires_at\": null}],"
    " \"revoked\": {\"users\": [], \"tokens\": []}}";

static const char *const USERS[] = {
    "INSERT INTO systems (id, code, name, created_at, updated_at) VALUES (1, 'shop', 'Shop', 'x', 'x'), (2, 'other', 'O', 'x', "
    "'x')",
    "INSERT INTO roles (id, system_id, name, created_at, updated_at) VALUES (1, 1, 'reader', 'x', 'x'), (2, 1, 'clerk', 'x', 'x')",
    "INSERT INTO groups (id, system_id, name, created_at, updated_at) VALUES (1, 1, 'staff', 'x', 'x')",
    "INSERT INTO group_roles (group_id, role_id) VALUES (1, 2)",
    "INSERT INTO users (id, username, password_hash, superuser, enabled, created_at, updated_at) VALUES"
    " (10, 'alice', '$argon2id$x', 0, 1, 'x', 'x'), (11, 'bob', '$argon2id$x', 0, 0, 'x', 'x'),"
    " (13, 'root', '$argon2id$x', 1, 1, 'x', 'x'), (14, 'dave', '$argon2id$x', 0, 1, 'x', 'x')",
    "INSERT INTO user_systems (user_id, system_id) VALUES (10, 1), (11, 1), (14, 1), (14, 2)",
    "INSERT INTO user_roles (user_id, role_id) VALUES (10, 1), (11, 1)",
    "INSERT INTO user_groups (user_id, group_id) VALUES (14, 1)",
};

static void cleanup(void)
{
    char cmd[96];

    cph_api_authz_cache_clear();
    cph_snapshot_release(snap);
    cph_db_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz setup: cannot remove %s\n", dir);
}

static void setup(void)
{
    const char *src = getenv("CEPHALO_SOURCE_DIR");
    char migrations[512], path[96], hex[65], *text;
    unsigned char md[32];
    unsigned n = 0;
    cph_error_t err;

    FUZZ_SETUP(src != NULL, "CEPHALO_SOURCE_DIR is not set (ctest and scripts/fuzz.sh set it)");
    FUZZ_SETUP(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(migrations, sizeof(migrations), "%s/migrations", src);
    snprintf(path, sizeof(path), "%s/cephalo.db", dir);
    FUZZ_SETUP((db = cph_db_open(path, migrations, &err)) != NULL, "cannot open the database: %s", err.msg);
    for (size_t i = 0; i != sizeof(USERS) / sizeof(USERS[0]); ++i)
        FUZZ_SETUP(cph_db_exec(db, USERS[i], &err) == 0, "fixture row: %s", err.msg);
    EVP_Digest("reader-secret", 13, md, &n, EVP_sha256(), NULL);
    for (int i = 0; i != 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    FUZZ_SETUP((text = malloc(sizeof(BODY) + 64)) != NULL, "out of memory");
    snprintf(text, sizeof(BODY) + 64, BODY, hex);
    snap = fuzz_snapshot(text);
    free(text);
    atexit(cleanup);
}

static int decision_ok(const json_t *out)
{
    const char *d = json_string_value(json_object_get(out, "decision"));
    json_t *chain = json_object_get(out, "chain"), *line;
    json_int_t status = json_integer_value(json_object_get(out, "status"));
    size_t i;

    if (d == NULL || !json_is_integer(json_object_get(out, "status")) || !json_is_array(chain))
        return 0;
    json_array_foreach(chain, i, line)
    {
        if (!json_is_string(line))
            return 0;
    }
    if (strcmp(d, "allow") == 0)
        return status == 200;
    if (strcmp(d, "unauthenticated") == 0)
        return status == 401;
    if (strcmp(d, "forbidden") == 0)
        return status == 403;
    return status == 400 || status == 404 || status == 405; /* the router or the path stopped it first */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *request, *out, *again;
    cph_error_t err;

    if (snap == NULL) {
        fuzz_quiet();
        setup();
    }
    if ((request = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return 0;
    memset(&err, 0, sizeof(err));
    out = cph_explain(snap, db, request, &err);
    if (out == NULL) {
        if (fuzz_verbose())
            fprintf(stderr, "refused: %s at %s: %s\n", err.code, err.path, err.msg);
        FUZZ_CHECK(fuzz_error_ok(&err));
    } else {
        if (fuzz_verbose())
            fprintf(stderr, "%s %lld\n", json_string_value(json_object_get(out, "decision")),
                    (long long)json_integer_value(json_object_get(out, "status")));
        FUZZ_CHECK(json_is_object(out) && decision_ok(out));
        again = cph_explain(snap, db, request, &err);
        FUZZ_CHECK(again != NULL && json_equal(out, again));
        json_decref(again);
        json_decref(out);
    }
    json_decref(request);
    return 0;
}
