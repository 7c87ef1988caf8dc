/*
 * history_test: the configuration state kept with every version, the rollback that restores it, and the diff.
 *
 * - every write stores the state of its version; the migration gives an upgraded database's current version its state
 *   and leaves the older ones without (not restorable);
 * - a rollback restores the rows (routes, services, endpoint rules and their role links, names swapped since) by id, so
 *   the rebuilt body has the old version's hash, and later writes still work;
 * - it never touches principals: a user keeps a role both versions have, a revoked api key stays revoked, and a user
 *   holding something the old version lacks makes it a conflict that names both and changes nothing;
 * - a Consul-discovered service keeps today's targets; unknown and state-less versions are refused;
 * - the diff matches named array items by name (one insert, one change), and integers parse strictly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/history.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_group.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_role.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"

#define PW "\"password\": \"long enough password\""

static int setup(void **state)
{
    return db_fixture_setup(state, "history-test");
}

static uint64_t current(cph_db_t *db)
{
    char epoch[33];
    uint64_t gen = 0;

    cph_db_lock(db);
    assert_int_equal(cph_db_meta(db, epoch, &gen), 0);
    cph_db_unlock(db);
    return gen;
}

/* One integer (or -1 for NULL / no row) from a SELECT. */
static int64_t scalar(cph_db_t *db, const char *query)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), query, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return v;
}

/* The stored hash of version v (a new string). */
static char *hash_of(cph_db_t *db, uint64_t v)
{
    sqlite3_stmt *st = NULL;
    char *h = NULL;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), "SELECT hash FROM snapshots WHERE version = ?", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)v);
    if (sqlite3_step(st) == SQLITE_ROW)
        h = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    cph_db_unlock(db);
    assert_non_null(h);
    return h;
}

static int rollback(cph_db_t *db, uint64_t v, cph_error_t *err)
{
    cph_history_rollback_t rb = {.version = v};
    uint64_t version;

    memset(err, 0, sizeof(*err));
    return cph_db_write(db, "test", cph_history_rollback_cb, &rb, &version, err);
}

static void rolled_back(cph_db_t *db, uint64_t v)
{
    cph_error_t err;

    if (rollback(db, v, &err) != 0)
        fail_msg("rollback to %llu: %s (%s)", (unsigned long long)v, err.code, err.msg);
}

static void assert_same_hash(cph_db_t *db, uint64_t a, uint64_t b)
{
    char *ha = hash_of(db, a), *hb = hash_of(db, b);

    if (strcmp(ha, hb) != 0)
        fail_msg("versions %llu and %llu differ: %s %s", (unsigned long long)a, (unsigned long long)b, ha, hb);
    free(ha);
    free(hb);
}

static void test_state_stored(void **state)
{
    fixture_t *fx = *state;
    json_t *st;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"a\",\"targets\":[]}");
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM snapshots WHERE state IS NULL"), 0);
    cph_db_lock(fx->db);
    {
        cph_error_t err;
        char *text = cph_history_export(fx->db, &err);
        assert_non_null(text);
        st = parse(text);
        free(text);
    }
    cph_db_unlock(fx->db);
    assert_int_equal(json_integer_value(json_object_get(st, "format")), CPH_HISTORY_STATE_FORMAT);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(st, "tables"), "services"), 0), "name")),
        "a");
    /* principals are never exported */
    assert_null(json_object_get(json_object_get(st, "tables"), "users"));
    assert_null(json_object_get(json_object_get(st, "tables"), "api_keys"));
    json_decref(st);
    /* the state stored with the version is what the export gives now */
    assert_int_equal(scalar(fx->db, "SELECT json_extract(state, '$.tables.services[0].id') = (SELECT id FROM services) "
                                    "FROM snapshots WHERE version = (SELECT generation FROM meta)"),
                     1);
}

static void test_rollback_restores_rows(void **state)
{
    fixture_t *fx = *state;
    int64_t svc, r1, ep;
    uint64_t v1, v2;

    written(fx->db, &cph_store_system_ops, 0, "{\"code\":\"s\",\"name\":\"S\"}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r1\"}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r2\"}");
    svc = written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"a\",\"targets\":[{\"url\":\"http://127.0.0.1:1\"}]}");
    r1 = written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"r1\",\"service\":\"a\",\"paths\":[\"/one\"]}");
    ep = written(fx->db, &cph_store_endpoint_ops, 0,
                 "{\"service\":\"a\",\"path\":\"/one\",\"roles\":[{\"system\":\"s\",\"name\":\"r1\"}]}");
    v1 = current(fx->db);

    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"r2\",\"service\":\"a\",\"paths\":[\"/two\"]}");
    written(fx->db, &cph_store_route_ops, r1, "{\"name\":\"r1\",\"service\":\"a\",\"paths\":[\"/changed\"]}");
    written(fx->db, &cph_store_endpoint_ops, ep,
            "{\"service\":\"a\",\"path\":\"/one\",\"roles\":[{\"system\":\"s\",\"name\":\"r2\"}]}");
    written(fx->db, &cph_store_service_ops, svc, "{\"name\":\"renamed\",\"targets\":[{\"url\":\"http://127.0.0.1:2\"}]}");
    written(fx->db, &cph_store_endpoint_ops, 0, "{\"service\":\"renamed\",\"path\":\"/new\",\"public\":true}");
    v2 = current(fx->db);

    rolled_back(fx->db, v1);
    assert_int_equal(current(fx->db), v2 + 1);
    assert_same_hash(fx->db, v1, v2 + 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM routes"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM endpoints"), 1);
    assert_int_equal(scalar(fx->db, "SELECT id FROM services WHERE name = 'a'"), svc);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM routes WHERE paths = '[\"/one\"]'"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM endpoint_roles er JOIN roles r ON r.id = er.role_id WHERE r.name = 'r1'"),
                     1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM endpoint_roles"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM audit WHERE action = 'rollback' AND entity_type = 'snapshot'"), 1);
    /* the rolled-back rows are ordinary rows: writes go on, and going forward again works too */
    written(fx->db, &cph_store_route_ops, 0, "{\"name\":\"r3\",\"service\":\"a\",\"paths\":[\"/three\"]}");
    rolled_back(fx->db, v2);
    assert_same_hash(fx->db, v2, current(fx->db));
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM routes"), 2);
}

static void test_swapped_names(void **state)
{
    fixture_t *fx = *state;
    int64_t a, b;
    uint64_t v1;

    a = written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"a\",\"targets\":[]}");
    b = written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"b\",\"targets\":[]}");
    v1 = current(fx->db);
    written(fx->db, &cph_store_service_ops, a, "{\"name\":\"tmp\",\"targets\":[]}");
    written(fx->db, &cph_store_service_ops, b, "{\"name\":\"a\",\"targets\":[]}");
    written(fx->db, &cph_store_service_ops, a, "{\"name\":\"b\",\"targets\":[]}");
    rolled_back(fx->db, v1);
    assert_int_equal(scalar(fx->db, "SELECT id FROM services WHERE name = 'a'"), a);
    assert_int_equal(scalar(fx->db, "SELECT id FROM services WHERE name = 'b'"), b);
    assert_same_hash(fx->db, v1, current(fx->db));
}

static void test_principals_untouched(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    int64_t bob;
    uint64_t v1, before;

    written(fx->db, &cph_store_system_ops, 0, "{\"code\":\"s\",\"name\":\"S\"}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r1\"}");
    v1 = current(fx->db);
    bob = written(fx->db, &cph_store_user_ops, 0,
                  "{\"username\":\"bob\"," PW ",\"systems\":[\"s\"],\"roles\":[{\"system\":\"s\",\"name\":\"r1\"}]}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r2\"}");
    rolled_back(fx->db, v1); /* r2 goes (nobody holds it), bob and his r1 stay */
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM roles"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM user_roles"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM users"), 1);

    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r3\"}");
    written(fx->db, &cph_store_user_ops, bob,
            "{\"username\":\"bob\",\"systems\":[\"s\"],\"roles\":[{\"system\":\"s\",\"name\":\"r1\"},{\"system\":\"s\",\"name\":"
            "\"r3\"}]}");
    before = current(fx->db);
    assert_int_equal(rollback(fx->db, v1, &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_non_null(strstr(err.msg, "'bob'"));
    assert_non_null(strstr(err.msg, "'r3'"));
    assert_int_equal(current(fx->db), before);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM roles"), 2);
}

/* A group's roles go back; the users in the group stay in it; a deleted issuer comes back with its id and keys. */
static void test_groups_and_issuers(void **state)
{
    fixture_t *fx = *state;
    int64_t g, iss;
    uint64_t v1;

    written(fx->db, &cph_store_system_ops, 0, "{\"code\":\"s\",\"name\":\"S\"}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r1\"}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r2\"}");
    g = written(fx->db, &cph_store_group_ops, 0, "{\"system\":\"s\",\"name\":\"g\",\"roles\":[\"r1\"]}");
    iss =
        written(fx->db, &cph_store_issuer_ops, 0,
                "{\"name\":\"idp\",\"issuer\":\"https://idp.example\",\"jwks_url\":\"https://idp.example/jwks\",\"system\":\"s\"}");
    sql(fx->db, "UPDATE issuers SET jwks = '[]', fetched_at = 'then'");
    written(fx->db, &cph_store_user_ops, 0,
            "{\"username\":\"ann\"," PW ",\"systems\":[\"s\"],\"groups\":[{\"system\":\"s\",\"name\":\"g\"}]}");
    v1 = current(fx->db);
    written(fx->db, &cph_store_group_ops, g, "{\"system\":\"s\",\"name\":\"g\",\"roles\":[\"r1\",\"r2\"]}");
    sql(fx->db, "UPDATE issuers SET fetched_at = 'now'");
    rolled_back(fx->db, v1); /* nothing changed in the issuer: its fetch time is today's */
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM group_roles"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM user_groups"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM issuers WHERE fetched_at = 'now'"), 1);
    {
        cph_error_t err;
        cph_db_lock(fx->db);
        assert_int_equal(cph_store_issuer_delete(fx->db, iss, &err), 0);
        cph_db_unlock(fx->db);
    }
    rolled_back(fx->db, v1);
    assert_int_equal(scalar(fx->db, "SELECT id FROM issuers WHERE name = 'idp'"), iss);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM issuers WHERE jwks = '[]' AND fetched_at = 'then'"), 1);
    assert_same_hash(fx->db, v1, current(fx->db));
}

static void test_revoked_key_stays_revoked(void **state)
{
    fixture_t *fx = *state;
    int64_t key;
    uint64_t v1, v2;

    written(fx->db, &cph_store_system_ops, 0, "{\"code\":\"s\",\"name\":\"S\"}");
    written(fx->db, &cph_store_role_ops, 0, "{\"system\":\"s\",\"name\":\"r1\"}");
    v1 = current(fx->db);
    key = written(fx->db, &cph_store_api_key_ops, 0, "{\"system\":\"s\",\"name\":\"ci\",\"roles\":[\"r1\"]}");
    v2 = current(fx->db);
    written(fx->db, &cph_store_api_key_ops, key, "{\"system\":\"s\",\"name\":\"ci\",\"roles\":[\"r1\"],\"revoked\":true}");
    rolled_back(fx->db, v2);
    assert_int_equal(scalar(fx->db, "SELECT revoked FROM api_keys"), 1);
    rolled_back(fx->db, v1); /* before the key existed: the key is no configuration, it stays (revoked) */
    assert_int_equal(scalar(fx->db, "SELECT revoked FROM api_keys"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM api_key_roles"), 1);
}

static void test_refused(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    uint64_t v1, before;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"a\",\"targets\":[]}");
    v1 = current(fx->db);
    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"b\",\"targets\":[]}");
    before = current(fx->db);
    assert_int_equal(before, 2);
    assert_int_equal(rollback(fx->db, 999999, &err), -1);
    assert_string_equal(err.code, "not_found");
    sql(fx->db, "UPDATE snapshots SET state = NULL WHERE version = 2");
    assert_int_equal(rollback(fx->db, 2, &err), -1);
    assert_string_equal(err.code, "not_restorable");
    sql(fx->db, "UPDATE snapshots SET state = '{\"format\":1,\"tables\":{\"services\":[]}}' WHERE version = 2");
    assert_int_equal(rollback(fx->db, 2, &err), -1);
    assert_string_equal(err.code, "not_restorable");
    sql(fx->db, "UPDATE snapshots SET state = '{\"format\":99}' WHERE version = 2");
    assert_int_equal(rollback(fx->db, 2, &err), -1);
    assert_string_equal(err.code, "not_restorable");
    assert_int_equal(current(fx->db), before);
    rolled_back(fx->db, v1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM services"), 1);
}

static void test_consul_targets_kept(void **state)
{
    fixture_t *fx = *state;
    int64_t id;
    uint64_t v1;

    id = written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"orders\",\"consul\":{\"service\":\"orders\"}}");
    v1 = current(fx->db);
    /* what the Consul sync writes */
    sql(fx->db, "UPDATE services SET targets = '[{\"url\":\"http://10.0.0.7:80\",\"weight\":1}]' WHERE name = 'orders'");
    written(fx->db, &cph_store_service_ops, id, "{\"name\":\"orders\",\"timeout_ms\":5000,\"consul\":{\"service\":\"orders\"}}");
    rolled_back(fx->db, v1);
    assert_int_equal(scalar(fx->db, "SELECT timeout_ms != 5000 FROM services"), 1);
    assert_int_equal(scalar(fx->db, "SELECT targets LIKE '%10.0.0.7%' FROM services"), 1);
}

/* An upgraded database: versions before 0012 have no state, except the current one (the migration's backfill). */
static void test_migration_backfill(void **state)
{
    fixture_t *fx = *state;
    char mig[128], path[160];
    cph_error_t err;
    cph_db_t *db;
    uint64_t v;

    snprintf(mig, sizeof(mig), "%s/migrations", fx->dir);
    assert_int_equal(mkdir(mig, 0700), 0);
    assert_int_equal(db_fixture_copy_migrations(mig, 1, 11), 11);
    snprintf(path, sizeof(path), "%s/old.db", fx->dir);
    assert_non_null(db = cph_db_open(path, mig, &err));
    sql(db, "INSERT INTO snapshots (version, hash, body, author, created_at) VALUES (1, 'h1', '{}', 't', 't'), "
            "(2, 'h2', '{}', 't', 't'); UPDATE meta SET generation = 2; "
            "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at) VALUES ('old', '[]', 1000, 't', 't')");
    cph_db_close(db);
    assert_int_equal(db_fixture_copy_migrations(mig, 12, 0) >= 1, 1);
    assert_non_null(db = cph_db_open(path, mig, &err));
    assert_int_equal(scalar(db, "SELECT count(*) FROM snapshots WHERE state IS NULL"), 1);
    assert_int_equal(scalar(db, "SELECT json_extract(state, '$.tables.services[0].timeout_ms') FROM snapshots WHERE version = 2"),
                     1000);
    written(db, &cph_store_service_ops, 0, "{\"name\":\"new\",\"targets\":[]}");
    assert_int_equal(rollback(db, 1, &err), -1);
    assert_string_equal(err.code, "not_restorable");
    rolled_back(db, 2);
    assert_int_equal(scalar(db, "SELECT count(*) FROM services WHERE name = 'old'"), 1);
    assert_int_equal(scalar(db, "SELECT count(*) FROM services"), 1);
    v = current(db);
    assert_int_equal(v, 4);
    cph_db_close(db);
}

static void assert_diff(const char *from, const char *to, const char *want)
{
    json_t *a = from != NULL ? parse(from) : NULL, *b = to != NULL ? parse(to) : NULL;
    json_t *d = cph_history_diff(a, b, NULL);
    char *got = cph_json_canonical(d);

    if (strcmp(got, want) != 0)
        fail_msg("diff %s -> %s\n got %s\nwant %s", from, to, got, want);
    free(got);
    json_decref(a);
    json_decref(b);
    json_decref(d);
}

static void test_diff(void **state)
{
    (void)state;
    assert_diff("{\"a\":1}", "{\"a\":1}", "[]");
    assert_diff("{\"a\":1,\"b\":2}", "{\"a\":3,\"c\":4}",
                "[{\"from\":1,\"op\":\"replace\",\"path\":\"/a\",\"to\":3},{\"from\":2,\"op\":\"remove\",\"path\":\"/b\"},"
                "{\"op\":\"add\",\"path\":\"/c\",\"to\":4}]");
    /* one route inserted in the middle is one change, at its index in "to" */
    assert_diff("{\"routes\":[{\"name\":\"a\",\"x\":1},{\"name\":\"c\",\"x\":3}]}",
                "{\"routes\":[{\"name\":\"a\",\"x\":1},{\"name\":\"b\",\"x\":2},{\"name\":\"c\",\"x\":4}]}",
                "[{\"op\":\"add\",\"path\":\"/routes/1\",\"to\":{\"name\":\"b\",\"x\":2}},"
                "{\"from\":3,\"op\":\"replace\",\"path\":\"/routes/2/x\",\"to\":4}]");
    assert_diff("[{\"name\":\"a\"},{\"name\":\"b\"}]", "[{\"name\":\"b\"}]",
                "[{\"from\":{\"name\":\"a\"},\"op\":\"remove\",\"path\":\"/0\"}]");
    /* no distinct names: by position */
    assert_diff("[1,2,3]", "[1,5]",
                "[{\"from\":2,\"op\":\"replace\",\"path\":\"/1\",\"to\":5},{\"from\":3,\"op\":\"remove\",\"path\":\"/2\"}]");
    assert_diff("[{\"name\":\"a\"},{\"name\":\"a\",\"v\":1}]", "[{\"name\":\"a\"}]",
                "[{\"from\":{\"name\":\"a\",\"v\":1},\"op\":\"remove\",\"path\":\"/1\"}]");
    /* endpoints are matched by id */
    assert_diff("[{\"id\":7,\"path\":\"/a\"}]", "[{\"id\":3,\"path\":\"/b\"},{\"id\":7,\"path\":\"/c\"}]",
                "[{\"op\":\"add\",\"path\":\"/0\",\"to\":{\"id\":3,\"path\":\"/b\"}},{\"from\":\"/"
                "a\",\"op\":\"replace\",\"path\":\"/1/path\",\"to\":\"/c\"}]");
    /* a created or deleted object (the audit's NULL before or after) */
    assert_diff(NULL, "{\"name\":\"x\"}", "[{\"op\":\"add\",\"path\":\"/name\",\"to\":\"x\"}]");
    assert_diff("{\"name\":\"x\"}", NULL, "[{\"from\":\"x\",\"op\":\"remove\",\"path\":\"/name\"}]");
    assert_diff(NULL, NULL, "[]");
    assert_diff("{\"a/b~\":1}", "{\"a/b~\":2}", "[{\"from\":1,\"op\":\"replace\",\"path\":\"/a~1b~0\",\"to\":2}]");
    assert_diff("{\"a\":[1]}", "{\"a\":{\"b\":1}}", "[{\"from\":[1],\"op\":\"replace\",\"path\":\"/a\",\"to\":{\"b\":1}}]");
}

static void test_diff_truncated(void **state)
{
    json_t *a = json_array(), *b = json_array(), *d;
    int truncated = 0;

    (void)state;
    for (int i = 0; i < CPH_HISTORY_DIFF_MAX + 10; ++i) {
        json_array_append_new(a, json_integer(i));
        json_array_append_new(b, json_integer(-i - 1));
    }
    d = cph_history_diff(a, b, &truncated);
    assert_int_equal(json_array_size(d), CPH_HISTORY_DIFF_MAX);
    assert_int_equal(truncated, 1);
    json_decref(d);
    d = cph_history_diff(a, a, &truncated);
    assert_int_equal(json_array_size(d), 0);
    assert_int_equal(truncated, 0);
    json_decref(d);
    json_decref(a);
    json_decref(b);
}

static void test_parse_int(void **state)
{
    static const char *const BAD[] = {
        "", "-1", "+1", " 1", "1 ", "1e3", "0x10", "abc", "1;DROP TABLE audit", "1234567890123456789", "99999999999999999999999"};
    int64_t v = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); ++i)
        if (cph_history_parse_int(BAD[i], 0, INT64_MAX, &v) == 0)
            fail_msg("accepted %s", BAD[i]);
    assert_int_equal(cph_history_parse_int(NULL, 0, 10, &v), -1);
    assert_int_equal(cph_history_parse_int("0", 1, 10, &v), -1);
    assert_int_equal(cph_history_parse_int("11", 1, 10, &v), -1);
    assert_int_equal(cph_history_parse_int("10", 1, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(cph_history_parse_int("123456789012345678", 0, INT64_MAX, &v), 0);
    assert_int_equal(v, 123456789012345678LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_restores_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principals_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups_and_issuers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_key_stays_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consul_targets_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_backfill, setup, teardown),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_diff_truncated),
        cmocka_unit_test(test_parse_int),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
