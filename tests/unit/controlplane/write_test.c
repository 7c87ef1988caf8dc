/*
 * write_test: the write path (cph_db_write) and snapbuild.
 *
 * - snapbuild is deterministic: the same rows inserted in different orders (so with different ids and times) give
 *   the same body and hash; arrays come out sorted by name with every default explicit. The published public
 *   signing keys come out sorted by kid, whichever is active: the same keys rotated in the other order give the
 *   same body, and a rotation changes the snapshot.
 * - a write is atomic: a failing callback, or a change that the snapshot validator refuses, leaves the generation,
 *   the rows, the snapshot history and the audit untouched and does not publish; the validator's path is made
 *   relative to the changed object.
 * - a good write bumps the generation by one, stores the snapshot (its hash recomputes), records one audit row and
 *   calls the commit hook with the same version and hash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "controlplane/audit.h"
#include "controlplane/db.h"
#include "controlplane/signing.h"
#include "controlplane/snapbuild.h"

typedef struct st_fixture_t {
    char dir[64];
    cph_db_t *db;
    int commits;
    uint64_t last_version;
    char last_hash[CPH_HASH_SIZE];
} fixture_t;

static void on_commit(void *ud, uint64_t version, const char *hash, json_t *body)
{
    fixture_t *fx = ud;

    assert_non_null(body);
    fx->commits++;
    fx->last_version = version;
    snprintf(fx->last_hash, sizeof(fx->last_hash), "%s", hash);
}

static cph_db_t *open_db(fixture_t *fx, const char *name)
{
    char path[128];
    cph_error_t err;
    cph_db_t *db;

    snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
    assert_non_null(db = cph_db_open(path, CEPHALO_MIGRATIONS_DIR, &err));
    return db;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cph-write-test-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->db = open_db(fx, "a.db");
    cph_db_set_on_commit(fx->db, on_commit, fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[128];

    cph_db_close(fx->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* A write whose change is raw SQL (so it can also write what the stores would refuse). */
typedef struct st_sql_t {
    const char *sql;
    const char *name; /* entity_name for path translation */
    int fail_after;   /* return -1 after running the SQL */
} sql_t;

static int on_sql(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    sql_t *s = p;

    change->action = "test";
    change->entity_type = "service";
    change->entity_name = s->name;
    change->after = json_pack("{s:s}", "sql", "x");
    if (cph_db_exec(db, s->sql, err) != 0)
        return -1;
    if (s->fail_after)
        return cph_error_set(err, "conflict", "", "refused by the test");
    return 0;
}

#define SVC(name)                                                                                                                  \
    "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at) VALUES ('" name "', '[]', 100, 't', 't');"
#define ROUTE(name, svc)                                                                                                           \
    "INSERT INTO routes (name, service_id, paths, created_at, updated_at) VALUES ('" name "', (SELECT id FROM services WHERE "     \
    "name = '" svc "'), '[\"/" name "\"]', 't', 't');"

static int write_sql(cph_db_t *db, const char *sql, const char *name, int fail_after, cph_error_t *err)
{
    sql_t s = {sql, name, fail_after};
    uint64_t version;

    return cph_db_write(db, "test", on_sql, &s, &version, err);
}

static int64_t count(cph_db_t *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return n;
}

static void test_snapbuild_deterministic(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *other = open_db(fx, "b.db");
    cph_error_t err;
    json_t *a, *b;
    char ha[CPH_HASH_SIZE], hb[CPH_HASH_SIZE], *text;

    assert_int_equal(write_sql(fx->db, SVC("c") SVC("a") SVC("b") ROUTE("r2", "a") ROUTE("r1", "c"), NULL, 0, &err), 0);
    assert_int_equal(write_sql(other, SVC("x") "DELETE FROM services WHERE name = 'x';", NULL, 0, &err), 0); /* shift ids */
    assert_int_equal(write_sql(other, SVC("b") SVC("a") ROUTE("r1", "b"), NULL, 0, &err), 0);
    assert_int_equal(write_sql(other,
                               SVC("c") ROUTE("r2", "a") "UPDATE routes SET service_id = (SELECT id FROM services WHERE "
                                                         "name = 'c') WHERE name = 'r1';",
                               NULL, 0, &err),
                     0);
    cph_db_lock(fx->db);
    a = cph_snapbuild_body(fx->db, &err);
    cph_db_unlock(fx->db);
    cph_db_lock(other);
    b = cph_snapbuild_body(other, &err);
    cph_db_unlock(other);
    assert_int_equal(cph_snapshot_hash(a, ha), 0);
    assert_int_equal(cph_snapshot_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    text = cph_json_canonical(a);
    assert_string_equal(
        text, "{\"api_keys\":[],\"auth\":{\"api\":null,\"audience\":null,\"header_prefix\":\"x-cephalo-\","
              "\"issuer\":\"cephalo\",\"leeway_s\":30,\"max_token_bytes\":8192},\"endpoints\":[],"
              "\"gateway\":{\"cache\":{\"max_bytes\":67108864},\"connections\":{\"max_per_ip\":0},"
              "\"ip_allow\":[],\"ip_deny\":[],\"limits\":{\"max_body_bytes\":10485760,"
              "\"max_header_bytes\":65536,\"max_headers\":100,\"max_url_bytes\":8192},\"login_rate_limit\":"
              "{\"burst\":5,\"period_s\":60,\"rate\":10},\"redis\":null,\"request_id\":{\"trust_incoming\":false},\"trusted_proxy_hops\":0},\"groups\":[],"
              "\"revoked\":{\"tokens\":[],\"users\":[]},"
              "\"routes\":[{\"default_access\":\"authenticated\",\"hosts\":[],\"methods\":[],\"name\":\"r1\","
              "\"paths\":[\"/r1\"],\"policies\":{},\"service\":\"c\",\"strip_prefix\":false},{\"default_access\":\"authenticated\","
              "\"hosts\":[],\"methods\":[],\"name\":\"r2\",\"paths\":[\"/r2\"],\"policies\":{},\"service\":\"a\","
              "\"strip_prefix\":false}],\"services\":[{\"name\":\"a\",\"policies\":{},\"system\":null,\"targets\":[],"
              "\"timeout_ms\":100},{\"name\":\"b\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":100},"
              "{\"name\":\"c\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":100}]}");
    free(text);
    json_decref(a);
    json_decref(b);
    cph_db_close(other);
}

static int on_rotate(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    return cph_signing_rotate(db, p, time(NULL), change, err);
}

static json_t *build(cph_db_t *db)
{
    cph_error_t err;
    json_t *body;

    cph_db_lock(db);
    body = cph_snapbuild_body(db, &err);
    cph_db_unlock(db);
    if (body == NULL)
        fail_msg("snapbuild: %s %s", err.code, err.msg);
    return body;
}

static void test_snapbuild_keys(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *other = open_db(fx, "b.db");
    cph_signing_new_t k1, k2;
    cph_error_t err;
    uint64_t version;
    json_t *a, *b, *keys;
    char h0[CPH_HASH_SIZE], ha[CPH_HASH_SIZE], hb[CPH_HASH_SIZE], *text;
    const char *lo, *hi;

    a = build(fx->db);
    assert_null(json_object_get(a, "keys")); /* no key yet: the member is absent */
    assert_int_equal(cph_snapshot_hash(a, h0), 0);
    json_decref(a);
    assert_int_equal(cph_signing_new("ES256", &k1, &err), 0);
    assert_int_equal(cph_signing_new("RS256", &k2, &err), 0);
    /* a: k1 then k2 (k2 active); other: k2 then k1 (k1 active) */
    assert_int_equal(cph_db_write(fx->db, "test", on_rotate, &k1, &version, &err), 0);
    assert_int_equal(cph_db_write(fx->db, "test", on_rotate, &k2, &version, &err), 0);
    assert_int_equal(cph_db_write(other, "test", on_rotate, &k2, &version, &err), 0);
    assert_int_equal(cph_db_write(other, "test", on_rotate, &k1, &version, &err), 0);
    a = build(fx->db);
    b = build(other);
    assert_int_equal(cph_snapshot_hash(a, ha), 0);
    assert_int_equal(cph_snapshot_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, h0);
    assert_int_equal(cph_snapshot_validate(a, &err), 0);
    keys = json_object_get(a, "keys");
    assert_int_equal(json_array_size(keys), 2);
    lo = strcmp(k1.kid, k2.kid) < 0 ? k1.kid : k2.kid;
    hi = lo == k1.kid ? k2.kid : k1.kid;
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), lo);
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 1), "kid")), hi);
    /* public members only, and the stored snapshot is this body */
    text = cph_json_canonical(keys);
    assert_null(strstr(text, "\"d\""));
    assert_null(strstr(text, "PRIVATE"));
    free(text);
    json_decref(b);
    b = cph_db_current_snapshot(fx->db, 1);
    assert_non_null(b);
    assert_true(json_equal(json_object_get(b, "body"), a));
    json_decref(a);
    json_decref(b);
    cph_signing_new_clear(&k1);
    cph_signing_new_clear(&k2);
    cph_db_close(other);
}

static void test_good_write(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *snap;
    char epoch[33], hash[CPH_HASH_SIZE];
    uint64_t gen0, gen1;

    cph_db_lock(fx->db);
    assert_int_equal(cph_db_meta(fx->db, epoch, &gen0), 0);
    cph_db_unlock(fx->db);
    assert_int_equal(write_sql(fx->db, SVC("a"), "a", 0, &err), 0);
    cph_db_lock(fx->db);
    assert_int_equal(cph_db_meta(fx->db, epoch, &gen1), 0);
    cph_db_unlock(fx->db);
    assert_int_equal(gen1, gen0 + 1);
    assert_int_equal(fx->commits, 1);
    assert_int_equal(fx->last_version, gen1);
    assert_int_equal(cph_audit_count(fx->db), 1);
    assert_int_equal(
        count(fx->db, "SELECT count(*) FROM audit WHERE version = (SELECT generation FROM meta) AND after IS NOT NULL"), 1);
    assert_non_null(snap = cph_db_current_snapshot(fx->db, 1));
    assert_int_equal(json_integer_value(json_object_get(snap, "version")), gen1);
    assert_int_equal(cph_snapshot_hash(json_object_get(snap, "body"), hash), 0);
    assert_string_equal(hash, json_string_value(json_object_get(snap, "hash")));
    assert_string_equal(hash, fx->last_hash);
    json_decref(snap);
}

static void assert_unchanged(fixture_t *fx, uint64_t gen, int64_t audit, int64_t services, int64_t snapshots)
{
    char epoch[33];
    uint64_t now;

    cph_db_lock(fx->db);
    assert_int_equal(cph_db_meta(fx->db, epoch, &now), 0);
    cph_db_unlock(fx->db);
    assert_int_equal(now, gen);
    assert_int_equal(cph_audit_count(fx->db), audit);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM services"), services);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM snapshots"), snapshots);
}

static void test_failed_writes_change_nothing(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;

    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    assert_int_equal(write_sql(fx->db, SVC("a"), "a", 0, &err), 0);
    assert_int_equal(fx->commits, 2);
    /* the callback fails after changing rows */
    assert_int_equal(write_sql(fx->db, SVC("b"), "b", 1, &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_unchanged(fx, 2, 2, 1, 2);
    /* the rows are fine for SQLite but the snapshot validator refuses them: the path points into the object */
    assert_int_equal(write_sql(fx->db, SVC("bad name!"), "bad name!", 0, &err), -1);
    assert_string_equal(err.code, "invalid");
    assert_string_equal(err.path, "/name");
    assert_unchanged(fx, 2, 2, 1, 2);
    assert_int_equal(
        write_sql(fx->db, "UPDATE services SET targets = '[{\"url\":\"ftp://x:1\",\"weight\":1}]' WHERE name = 'a';", "a", 0, &err),
        -1);
    assert_string_equal(err.path, "/targets/0/url");
    assert_unchanged(fx, 2, 2, 1, 2);
    /* an error in another object keeps its full pointer */
    assert_int_equal(write_sql(fx->db, SVC("0bad!"), "a", 0, &err), -1);
    assert_string_equal(err.path, "/services/0/name");
    /* SQL failure */
    assert_int_equal(write_sql(fx->db, "INSERT INTO nowhere VALUES (1);", "a", 0, &err), -1);
    assert_string_equal(err.code, "internal");
    assert_null(strstr(err.msg, "nowhere"));
    assert_unchanged(fx, 2, 2, 1, 2);
    assert_int_equal(fx->commits, 2);
    /* and the next good write still works */
    assert_int_equal(write_sql(fx->db, SVC("b"), "b", 0, &err), 0);
    assert_unchanged(fx, 3, 3, 2, 3);
}

static void test_ensure_snapshot_once(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *snap;

    assert_null(cph_db_current_snapshot(fx->db, 0));
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    assert_int_equal(fx->commits, 1);
    assert_non_null(snap = cph_db_current_snapshot(fx->db, 1));
    assert_int_equal(json_integer_value(json_object_get(snap, "version")), 1);
    /* services, routes, gateway and the five access sections (no signing key in this store, so no "keys") */
    assert_int_equal(json_object_size(json_object_get(snap, "body")), 8);
    json_decref(snap);
}

/* Rows that build a different body than the current snapshot (a new release, a key whose time is up) get a new
 * version at start, once. */
static void test_ensure_snapshot_rebuilds_a_stale_one(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *snap;

    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    cph_db_lock(fx->db);
    assert_int_equal(cph_db_exec(fx->db, SVC("behind-the-write-path"), &err), 0); /* no version, no snapshot */
    cph_db_unlock(fx->db);
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    assert_int_equal(fx->commits, 2);
    assert_non_null(snap = cph_db_current_snapshot(fx->db, 1));
    assert_int_equal(json_integer_value(json_object_get(snap, "version")), 2);
    assert_int_equal(json_array_size(json_object_get(json_object_get(snap, "body"), "services")), 1);
    json_decref(snap);
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0); /* now fresh: nothing to write */
    assert_int_equal(fx->commits, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapbuild_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapbuild_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_writes_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_snapshot_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_snapshot_rebuilds_a_stale_one, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
