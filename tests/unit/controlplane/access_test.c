/*
 * access_test: the control-plane data of docs/access.md section 1.
 *
 * - migrations/0004_access.sql applies on a database that already has 0001-0003 and rows: existing services are in
 *   no system, routes default to "authenticated", rules are enforced (shadow 0); refresh_tokens has exactly the
 *   contract's columns; a system a service belongs to cannot be deleted.
 * - the new members round-trip through the stores with their defaults, and each has its validation errors: a
 *   service's "system" ({invalid} / {unknown_system} at /system), a route's "default_access", a rule's "shadow".
 * - store_revocation: upserts keep the later time, a bad jti is refused, prune removes exactly what can no longer
 *   match, the snapshot section is sorted (user ids as numbers, jtis as bytes); a write through cph_db_write prunes.
 * - a user update revokes the user's tokens only when it is disabled or its superuser flag, systems, roles or groups
 *   change (not for its username, email, password, re-enabling, or the same lists in another order); a delete
 *   revokes.
 * - snapbuild writes every new section for a small fixture, compared as exact canonical JSON; the auth section
 *   follows the settings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/db.h"
#include "controlplane/settings.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_revocation.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"

static int setup(void **state)
{
    return db_fixture_setup(state, "access-test");
}

/* ---------------------------------------------------------------- helpers (all take the lock themselves) */

static int64_t count(cph_db_t *db, const char *text)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), text, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return n;
}

/* Normalises text with ops; the object, or NULL with err. */

/* Normalises and inserts (op 'c') or updates row id (op 'u'); returns 0/-1 with err. */
static int store(cph_db_t *db, const cph_store_ops_t *ops, char op, int64_t *id, const char *text, cph_error_t *err)
{
    json_t *obj = norm(ops, text, err);
    int ret;

    if (obj == NULL)
        fail_msg("normalize refused %s: %s at %s", text, err->code, err->path);
    cph_db_lock(db);
    ret = op == 'c' ? ops->insert(db, obj, id, err) : ops->update(db, *id, obj, err);
    cph_db_unlock(db);
    json_decref(obj);
    return ret;
}

static int64_t created(cph_db_t *db, const cph_store_ops_t *ops, const char *text)
{
    cph_error_t err;
    int64_t id = 0;

    if (store(db, ops, 'c', &id, text, &err) != 0)
        fail_msg("insert %s: %s at %s (%s)", text, err.code, err.path, err.msg);
    return id;
}

static void store_refused(cph_db_t *db, const cph_store_ops_t *ops, char op, int64_t id, const char *text, const char *code,
                          const char *path)
{
    cph_error_t err;

    if (store(db, ops, op, &id, text, &err) == 0)
        fail_msg("%s was stored", text);
    if (strcmp(err.code, code) != 0 || strcmp(err.path, path) != 0)
        fail_msg("%s: want %s at %s, got %s at %s (%s)", text, code, path, err.code, err.path, err.msg);
}

/* ---------------------------------------------------------------- migration */

static void test_migration_on_existing_0003(void **state)
{
    fixture_t *fx = *state;
    char mig[128], path[128], *text;
    int later;
    cph_error_t err;
    cph_db_t *db;
    sqlite3_stmt *st = NULL;
    json_t *cols = json_array();

    snprintf(mig, sizeof(mig), "%s/mig", fx->dir);
    snprintf(path, sizeof(path), "%s/old.db", fx->dir);
    assert_int_equal(mkdir(mig, 0700), 0);
    assert_int_equal(db_fixture_copy_migrations(mig, 1, 3), 3);
    assert_non_null(db = cph_db_open(path, mig, &err));
    sql(db, "INSERT INTO systems (code, name, created_at, updated_at) VALUES ('shop', 'Shop', 't', 't');"
            "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at) VALUES ('s', '[]', 100, 't', 't');"
            "INSERT INTO routes (name, service_id, paths, created_at, updated_at) VALUES ('r', 1, '[\"/r\"]', 't', 't');"
            "INSERT INTO endpoints (service_id, method, path, created_at, updated_at) VALUES (1, 'GET', '/x', 't', 't');");
    assert_int_equal(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'revocations'"), 0);
    cph_db_close(db);

    later = db_fixture_copy_migrations(mig, 4, 0); /* 0004 and every later one: the stores read their columns */
    assert_non_null(db = cph_db_open(path, mig, &err));
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 3 + later);
    assert_int_equal(count(db, "SELECT count(*) FROM services WHERE name = 's' AND system_id IS NULL"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM routes WHERE default_access = 'authenticated'"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM endpoints WHERE shadow = 0"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM revocations"), 0);
    /* the stores read the old rows with the new members */
    assert_stored(db, &cph_store_service_ops, "s",
                  "{\"id\":1,\"name\":\"s\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":100}");
    assert_stored(db, &cph_store_route_ops, "r",
                  "{\"default_access\":\"authenticated\",\"hosts\":[],\"id\":1,\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                  "\"paths\":[\"/r\"],"
                  "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false}");
    /* refresh_tokens: exactly the columns store_refresh.c relies on, in order */
    cph_db_lock(db);
    assert_int_equal(
        sqlite3_prepare_v2(cph_db_handle(db), "SELECT name FROM pragma_table_info('refresh_tokens') ORDER BY cid", -1, &st, NULL),
        SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(cols, json_string((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    cph_db_unlock(db);
    text = json_dumps(cols, JSON_COMPACT);
    assert_string_equal(text, "[\"id\",\"family\",\"user_id\",\"system_id\",\"token_sha256\",\"access_jti\",\"issued_at\","
                              "\"expires_at\",\"used_at\",\"revoked_at\"]");
    free(text);
    json_decref(cols);
    /* the CHECKs hold */
    cph_db_lock(db);
    assert_int_not_equal(sqlite3_exec(cph_db_handle(db), "UPDATE routes SET default_access = 'open'", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(cph_db_handle(db), "UPDATE endpoints SET shadow = 2", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(cph_db_handle(db), "INSERT INTO revocations VALUES ('group', '1', 1, 't')", NULL, NULL, NULL),
                         SQLITE_OK);
    cph_db_unlock(db);
    cph_db_close(db);
}

/* ---------------------------------------------------------------- the new members */

static void test_service_system(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    int64_t sys, id, other;

    sys = created(fx->db, &cph_store_system_ops, "{\"code\":\"shop\",\"name\":\"Shop\"}");
    created(fx->db, &cph_store_system_ops, "{\"code\":\"ops\",\"name\":\"Ops\"}");
    norm_refused(&cph_store_service_ops, "{\"name\":\"a\",\"targets\":[],\"system\":\"Shop!\"}", "invalid", "/system");
    norm_refused(&cph_store_service_ops, "{\"name\":\"a\",\"targets\":[],\"system\":7}", "invalid", "/system");
    norm_refused(&cph_store_service_ops, "{\"name\":\"a\",\"targets\":[],\"system\":\"\"}", "invalid", "/system");
    /* the rest still goes through the schema validator */
    norm_refused(&cph_store_service_ops, "{\"name\":\"a\",\"targets\":[],\"system\":\"shop\",\"x\":1}", "unknown_field", "/x");
    store_refused(fx->db, &cph_store_service_ops, 'c', 0, "{\"name\":\"a\",\"targets\":[],\"system\":\"nope\"}", "unknown_system",
                  "/system");
    assert_int_equal(count(fx->db, "SELECT count(*) FROM services"), 0);

    id = created(fx->db, &cph_store_service_ops, "{\"name\":\"a\",\"targets\":[],\"system\":\"shop\"}");
    other = created(fx->db, &cph_store_service_ops, "{\"name\":\"b\",\"targets\":[],\"system\":null}");
    created(fx->db, &cph_store_service_ops, "{\"name\":\"c\",\"targets\":[]}");
    assert_stored(fx->db, &cph_store_service_ops, "a",
                  "{\"id\":1,\"name\":\"a\",\"policies\":{},\"system\":\"shop\",\"targets\":[],\"timeout_ms\":60000}");
    assert_stored(fx->db, &cph_store_service_ops, "b",
                  "{\"id\":2,\"name\":\"b\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":60000}");
    assert_stored(fx->db, &cph_store_service_ops, "c",
                  "{\"id\":3,\"name\":\"c\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":60000}");
    /* update: move, refuse an unknown system, leave */
    assert_int_equal(store(fx->db, &cph_store_service_ops, 'u', &other, "{\"name\":\"b\",\"targets\":[],\"system\":\"ops\"}", &err),
                     0);
    assert_stored(fx->db, &cph_store_service_ops, "b",
                  "{\"id\":2,\"name\":\"b\",\"policies\":{},\"system\":\"ops\",\"targets\":[],\"timeout_ms\":60000}");
    store_refused(fx->db, &cph_store_service_ops, 'u', other, "{\"name\":\"b\",\"targets\":[],\"system\":\"gone\"}",
                  "unknown_system", "/system");
    /* renaming the system's code carries the service along */
    assert_int_equal(store(fx->db, &cph_store_system_ops, 'u', &sys, "{\"code\":\"shop2\",\"name\":\"Shop\"}", &err), 0);
    assert_stored(fx->db, &cph_store_service_ops, "a",
                  "{\"id\":1,\"name\":\"a\",\"policies\":{},\"system\":\"shop2\",\"targets\":[],\"timeout_ms\":60000}");
    /* a system in use by a service cannot be deleted (409); once the service leaves it, it can */
    cph_db_lock(fx->db);
    assert_int_equal(cph_store_system_delete(fx->db, sys, &err), -1);
    assert_string_equal(err.code, "conflict");
    cph_db_unlock(fx->db);
    assert_int_equal(store(fx->db, &cph_store_service_ops, 'u', &id, "{\"name\":\"a\",\"targets\":[]}", &err), 0);
    cph_db_lock(fx->db);
    assert_int_equal(cph_store_system_delete(fx->db, sys, &err), 0);
    cph_db_unlock(fx->db);
}

static void test_route_default_access(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    int64_t id;

    created(fx->db, &cph_store_service_ops, "{\"name\":\"s\",\"targets\":[]}");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"default_access\":\"open\"}",
                 "invalid", "/default_access");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"default_access\":null}", "invalid",
                 "/default_access");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"default_access\":\"Public\"}",
                 "invalid", "/default_access");
    norm_refused(&cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"default_access\":\"deny\",\"y\":1}",
                 "unknown_field", "/y");
    id = created(fx->db, &cph_store_route_ops, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"]}");
    assert_stored(fx->db, &cph_store_route_ops, "r",
                  "{\"default_access\":\"authenticated\",\"hosts\":[],\"id\":1,\"kind\":\"proxy\",\"methods\":[],\"name\":\"r\","
                  "\"paths\":[\"/x\"],"
                  "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false}");
    created(fx->db, &cph_store_route_ops, "{\"name\":\"p\",\"service\":\"s\",\"paths\":[\"/p\"],\"default_access\":\"public\"}");
    assert_stored(
        fx->db, &cph_store_route_ops, "p",
        "{\"default_access\":\"public\",\"hosts\":[],\"id\":2,\"kind\":\"proxy\",\"methods\":[],\"name\":\"p\",\"paths\":[\"/p\"],"
        "\"policies\":{},\"service\":\"s\",\"strip_prefix\":false}");
    assert_int_equal(store(fx->db, &cph_store_route_ops, 'u', &id,
                           "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"],\"default_access\":\"deny\"}", &err),
                     0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM routes WHERE name = 'r' AND default_access = 'deny'"), 1);
    /* a PUT without the member goes back to the default */
    assert_int_equal(store(fx->db, &cph_store_route_ops, 'u', &id, "{\"name\":\"r\",\"service\":\"s\",\"paths\":[\"/x\"]}", &err),
                     0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM routes WHERE name = 'r' AND default_access = 'authenticated'"), 1);
}

static void test_endpoint_shadow(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    int64_t id;

    created(fx->db, &cph_store_service_ops, "{\"name\":\"s\",\"targets\":[]}");
    norm_refused(&cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/a\",\"shadow\":1}", "invalid", "/shadow");
    norm_refused(&cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/a\",\"shadow\":\"true\"}", "invalid", "/shadow");
    id = created(fx->db, &cph_store_endpoint_ops, "{\"service\":\"s\",\"path\":\"/a\"}");
    assert_stored(fx->db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/a\",\"public\":false,\"rate_limits\":null,\"roles\":[],"
                  "\"service\":\"s\",\"shadow\":false}");
    assert_int_equal(store(fx->db, &cph_store_endpoint_ops, 'u', &id, "{\"service\":\"s\",\"path\":\"/a\",\"shadow\":true}", &err),
                     0);
    assert_stored(fx->db, &cph_store_endpoint_ops, "1",
                  "{\"groups\":[],\"id\":1,\"method\":\"*\",\"path\":\"/a\",\"public\":false,\"rate_limits\":null,\"roles\":[],"
                  "\"service\":\"s\",\"shadow\":true}");
    created(fx->db, &cph_store_endpoint_ops,
            "{\"service\":\"s\",\"method\":\"GET\",\"path\":\"/b/*\",\"public\":true,\"shadow\":true}");
    assert_int_equal(count(fx->db, "SELECT count(*) FROM endpoints WHERE shadow = 1"), 2);
    /* a shadow rule is still one rule per (service, method, path) */
    store_refused(fx->db, &cph_store_endpoint_ops, 'c', 0, "{\"service\":\"s\",\"path\":\"/a\",\"shadow\":false}", "conflict",
                  "/path");
}

/* ---------------------------------------------------------------- revocations */

static char *revoked_text(cph_db_t *db)
{
    cph_error_t err;
    json_t *r;
    char *text;

    cph_db_lock(db);
    r = cph_store_revocation_snapshot(db, &err);
    cph_db_unlock(db);
    assert_non_null(r);
    text = cph_json_canonical(r);
    json_decref(r);
    return text;
}

static void assert_revoked(cph_db_t *db, const char *want)
{
    char *text = revoked_text(db);

    assert_string_equal(text, want);
    free(text);
}

static void test_revocations(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    cph_error_t err;
    const int64_t now = 2000000000, max = 900 + 300; /* CPH_ACCESS_TOKEN_MAX_S + the largest leeway */
    char long_jti[130];

    assert_revoked(db, "{\"tokens\":[],\"users\":[]}");
    cph_db_lock(db);
    assert_int_equal(cph_store_revocation_user(db, 10, now - 5, &err), 0);
    assert_int_equal(cph_store_revocation_user(db, 10, now - 50, &err), 0); /* an older cut-off never narrows it */
    assert_int_equal(cph_store_revocation_user(db, 9, now - max, &err), 0);
    assert_int_equal(cph_store_revocation_user(db, 2, now - max - 1, &err), 0);
    assert_int_equal(cph_store_revocation_user_before(db, 10), now - 5); /* what the auth API issues past */
    assert_int_equal(cph_store_revocation_user_before(db, 11), -1);
    assert_int_equal(cph_store_revocation_token(db, "b-_9", now - 300, &err), 0);
    assert_int_equal(cph_store_revocation_token(db, "B", now - 301, &err), 0);
    assert_int_equal(cph_store_revocation_token(db, "a", now + 100, &err), 0);
    assert_int_equal(cph_store_revocation_token(db, "a", now + 50, &err), 0);
    assert_int_equal(cph_store_revocation_token(db, "bad jti", now, &err), -1);
    assert_string_equal(err.code, "invalid");
    assert_int_equal(cph_store_revocation_token(db, "", now, &err), -1);
    memset(long_jti, 'x', 129);
    long_jti[129] = '\0';
    assert_int_equal(cph_store_revocation_token(db, long_jti, now, &err), -1);
    long_jti[128] = '\0';
    assert_int_equal(cph_store_revocation_token(db, long_jti, 1, &err), 0);
    assert_int_equal(cph_store_revocation_user(db, 0, now, &err), -1);
    cph_db_unlock(db);
    /* users by id as a number (2 < 9 < 10), tokens by jti in byte order ("B" < "a" < "b-_9" < "xx...") */
    char *text = revoked_text(db);
    char want[1024];
    snprintf(want, sizeof(want),
             "{\"tokens\":[{\"exp\":%lld,\"jti\":\"B\"},{\"exp\":%lld,\"jti\":\"a\"},{\"exp\":%lld,\"jti\":\"b-_9\"},"
             "{\"exp\":1,\"jti\":\"%s\"}],\"users\":[{\"before\":%lld,\"id\":2},{\"before\":%lld,\"id\":9},{\"before\":%lld,"
             "\"id\":10}]}",
             (long long)(now - 301), (long long)(now + 100), (long long)(now - 300), long_jti, (long long)(now - max - 1),
             (long long)(now - max), (long long)(now - 5));
    assert_string_equal(text, want);
    free(text);
    /* prune at now: the user entry 2 (before + max < now), the token "B" (exp + 300 < now) and the long one go; the
     * entries exactly at the limit stay */
    cph_db_lock(db);
    assert_int_equal(cph_store_revocation_prune(db, now, &err), 0);
    cph_db_unlock(db);
    snprintf(want, sizeof(want),
             "{\"tokens\":[{\"exp\":%lld,\"jti\":\"a\"},{\"exp\":%lld,\"jti\":\"b-_9\"}],\"users\":[{\"before\":%lld,\"id\":9},"
             "{\"before\":%lld,\"id\":10}]}",
             (long long)(now + 100), (long long)(now - 300), (long long)(now - max), (long long)(now - 5));
    assert_revoked(db, want);
    cph_db_lock(db);
    assert_int_equal(cph_store_revocation_prune(db, now + 1, &err), 0);
    cph_db_unlock(db);
    snprintf(want, sizeof(want), "{\"tokens\":[{\"exp\":%lld,\"jti\":\"a\"}],\"users\":[{\"before\":%lld,\"id\":10}]}",
             (long long)(now + 100), (long long)(now - 5));
    assert_revoked(db, want);
}

static int on_nothing(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    (void)db, (void)ctx, (void)err;
    change->action = "test";
    change->entity_type = "snapshot";
    return 0;
}

/* Every write prunes before it builds: an entry past its time leaves the rows and the new snapshot. */
static void test_write_prunes(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    uint64_t version;
    json_t *snap;
    int64_t now = (int64_t)time(NULL);

    cph_db_lock(fx->db);
    assert_int_equal(cph_store_revocation_user(fx->db, 1, now - 100000, &err), 0);
    assert_int_equal(cph_store_revocation_user(fx->db, 2, now, &err), 0);
    assert_int_equal(cph_store_revocation_token(fx->db, "old", now - 100000, &err), 0);
    cph_db_unlock(fx->db);
    if (cph_db_write(fx->db, "test", on_nothing, NULL, &version, &err) != 0)
        fail_msg("write: %s at %s (%s)", err.code, err.path, err.msg);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM revocations"), 1);
    assert_non_null(snap = cph_db_current_snapshot(fx->db, 1));
    assert_int_equal(json_array_size(json_object_get(json_object_get(json_object_get(snap, "body"), "revoked"), "users")), 1);
    assert_int_equal(json_array_size(json_object_get(json_object_get(json_object_get(snap, "body"), "revoked"), "tokens")), 0);
    json_decref(snap);
}

/* ---------------------------------------------------------------- user changes -> revocations */

#define PW "\"password\":\"correct horse\""
#define ALICE "\"username\":\"alice\""

/* Runs an update of user id and says whether it added a revocation (the table is emptied first). */
static int update_revokes(cph_db_t *db, int64_t id, const char *text)
{
    cph_error_t err;
    int64_t t0, t1, before;

    sql(db, "DELETE FROM revocations");
    t0 = (int64_t)time(NULL);
    if (store(db, &cph_store_user_ops, 'u', &id, text, &err) != 0)
        fail_msg("update %s: %s at %s (%s)", text, err.code, err.path, err.msg);
    t1 = (int64_t)time(NULL);
    if (count(db, "SELECT count(*) FROM revocations") == 0)
        return 0;
    assert_int_equal(count(db, "SELECT count(*) FROM revocations WHERE kind = 'user'"), 1);
    before = count(db, "SELECT until_or_before FROM revocations WHERE kind = 'user'");
    assert_true(before >= t0 && before <= t1);
    assert_int_equal(count(db, "SELECT CAST(subject AS INTEGER) FROM revocations"), id);
    return 1;
}

static void test_user_changes_revoke(void **state)
{
    fixture_t *fx = *state;
    cph_db_t *db = fx->db;
    cph_error_t err;
    int64_t id, bob;

    sql(db, "INSERT INTO systems (code, name, created_at, updated_at) VALUES ('shop', 'S', 't', 't'), ('ops', 'O', 't', 't');"
            "INSERT INTO roles (system_id, name, created_at, updated_at) VALUES (1, 'reader', 't', 't'), (1, 'writer', 't', 't');"
            "INSERT INTO groups (system_id, name, created_at, updated_at) VALUES (1, 'staff', 't', 't');");
    bob = created(db, &cph_store_user_ops, "{\"username\":\"bob\"," PW "}");
    id = created(db, &cph_store_user_ops,
                 "{" ALICE ",\"email\":\"a@x\",\"systems\":[\"shop\"],\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"},"
                 "{\"system\":\"shop\",\"name\":\"writer\"}]," PW "}");
    assert_int_equal(count(db, "SELECT count(*) FROM revocations"), 0); /* creating revokes nothing */
#define SAME_LISTS                                                                                                                 \
    "\"systems\":[\"shop\"],\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"},{\"system\":\"shop\",\"name\":\"writer\"}]"
    /* nothing a token says changes: no revocation */
    assert_false(update_revokes(db, id, "{" ALICE ",\"email\":\"a@x\"," SAME_LISTS "}"));
    assert_false(update_revokes(db, id, "{" ALICE ",\"email\":\"new@x\"," SAME_LISTS "}"));
    assert_false(update_revokes(db, id, "{\"username\":\"alice2\",\"email\":\"new@x\"," SAME_LISTS "}"));
    assert_false(update_revokes(db, id, "{" ALICE "," SAME_LISTS ",\"password\":\"another one\"}"));
    assert_false(update_revokes(db, id,
                                "{" ALICE ",\"systems\":[\"shop\"],\"roles\":[{\"system\":\"shop\",\"name\":\"writer\"},"
                                "{\"system\":\"shop\",\"name\":\"reader\"}]}")); /* same roles, other order */
    /* each listed change revokes */
    assert_true(update_revokes(db, id, "{" ALICE "," SAME_LISTS ",\"enabled\":false}"));
    assert_false(update_revokes(db, id, "{" ALICE "," SAME_LISTS ",\"enabled\":false}")); /* still disabled */
    assert_false(update_revokes(db, id, "{" ALICE "," SAME_LISTS "}"));                   /* re-enabled */
    assert_true(update_revokes(db, id, "{" ALICE "," SAME_LISTS ",\"superuser\":true}"));
    assert_true(update_revokes(db, id, "{" ALICE "," SAME_LISTS "}")); /* superuser taken back */
    assert_true(update_revokes(db, id,
                               "{" ALICE ",\"systems\":[\"shop\",\"ops\"],\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"},"
                               "{\"system\":\"shop\",\"name\":\"writer\"}]}"));
    assert_true(update_revokes(db, id, "{" ALICE ",\"systems\":[\"shop\"],\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"}]}"));
    assert_true(update_revokes(db, id,
                               "{" ALICE ",\"systems\":[\"shop\"],\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"}],"
                               "\"groups\":[{\"system\":\"shop\",\"name\":\"staff\"}]}"));
    /* a refused update (unknown group) or one of a missing user changes and revokes nothing */
    sql(db, "DELETE FROM revocations");
    store_refused(db, &cph_store_user_ops, 'u', id,
                  "{" ALICE ",\"systems\":[\"shop\"],\"groups\":[{\"system\":\"shop\",\"name\":\"x\"}]}", "unknown_group",
                  "/groups/0");
    store_refused(db, &cph_store_user_ops, 'u', 999, "{\"username\":\"zed\"}", "not_found", "");
    /* (the refused write's half-done rows are rolled back by cph_db_write in real use; here only the count matters) */
    assert_int_equal(count(db, "SELECT count(*) FROM revocations"), 0);
    /* delete revokes; deleting nobody does not */
    cph_db_lock(db);
    assert_int_equal(cph_store_user_delete(db, 999, &err), -1);
    assert_string_equal(err.code, "not_found");
    cph_db_unlock(db);
    assert_int_equal(count(db, "SELECT count(*) FROM revocations"), 0);
    cph_db_lock(db);
    assert_int_equal(cph_store_user_delete(db, bob, &err), 0);
    cph_db_unlock(db);
    assert_int_equal(count(db, "SELECT count(*) FROM revocations WHERE kind = 'user' AND subject = '1'"), 1);
    assert_true(count(db, "SELECT until_or_before FROM revocations") >= (int64_t)time(NULL) - 2);
}

/* ---------------------------------------------------------------- snapbuild */

#define FIXTURE                                                                                                                    \
    "INSERT INTO systems (code, name, created_at, updated_at) VALUES ('shop', 'S', 't', 't'), ('ops', 'O', 't', 't');"             \
    "INSERT INTO roles (system_id, name, created_at, updated_at) VALUES (1, 'writer', 't', 't'), (1, 'reader', 't', 't'), "        \
    "(2, 'admin', 't', 't');"                                                                                                      \
    "INSERT INTO groups (system_id, name, created_at, updated_at) VALUES (2, 'oncall', 't', 't'), (1, 'staff', 't', 't'), "        \
    "(1, 'empty', 't', 't');"                                                                                                      \
    "INSERT INTO group_roles VALUES (2, 1), (2, 2), (1, 3);"                                                                       \
    "INSERT INTO services (name, targets, timeout_ms, created_at, updated_at, system_id) VALUES "                                  \
    "('orders', '[]', 100, 't', 't', 1), ('health', '[]', 100, 't', 't', NULL);"                                                   \
    "INSERT INTO routes (name, service_id, paths, created_at, updated_at, default_access) VALUES "                                 \
    "('r1', 1, '[\"/orders\"]', 't', 't', 'deny');"                                                                                \
    "INSERT INTO routes (name, service_id, paths, created_at, updated_at) VALUES ('r0', 2, '[\"/health\"]', 't', 't');"            \
    "INSERT INTO endpoints (service_id, method, path, public, shadow, created_at, updated_at) VALUES "                             \
    "(1, 'GET', '/orders/{id}', 0, 0, 't', 't'), (1, '*', '/orders/*', 1, 1, 't', 't'), (2, 'GET', '/health', 1, 0, 't', 't'), "   \
    "(1, '*', '/orders/{id}', 0, 1, 't', 't');"                                                                                    \
    "INSERT INTO endpoint_roles VALUES (1, 2), (4, 1), (4, 3);"                                                                    \
    "INSERT INTO endpoint_groups VALUES (1, 2);"                                                                                   \
    "INSERT INTO api_keys (system_id, name, prefix, secret_sha256, expires_at, revoked, created_at, updated_at) VALUES "           \
    "(1, 'k1', 'bbbbbbbbbb', '" SHA_B "', '2026-11-23T00:00:00.500Z', 0, 't', 't'), "                                              \
    "(2, 'k2', 'aaaaaaaaaa', '" SHA_A "', NULL, 0, 't', 't'), "                                                                    \
    "(1, 'k3', '0000000000', '" SHA_A "', NULL, 1, 't', 't');"                                                                     \
    "INSERT INTO api_key_roles VALUES (1, 1), (1, 2);"                                                                             \
    "INSERT INTO api_key_groups VALUES (1, 2), (3, 2);"                                                                            \
    "INSERT INTO revocations VALUES ('user', '10', 100, 't'), ('user', '2', 50, 't'), ('token', 'b', 7, 't'), "                    \
    "('token', 'A', 9, 't');"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

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

static void assert_section(const json_t *body, const char *member, const char *want)
{
    char *text = cph_json_canonical(json_object_get(body, member));

    if (text == NULL)
        fail_msg("no %s", member);
    if (strcmp(text, want) != 0)
        fail_msg("%s:\n got %s\nwant %s", member, text, want);
    free(text);
}

static void test_snapbuild_sections(void **state)
{
    fixture_t *fx = *state;
    cph_auth_settings_t s;
    json_t *body;

    /* an empty store still writes every section */
    body = build(fx->db);
    assert_section(body, "groups", "[]");
    assert_section(body, "endpoints", "[]");
    assert_section(body, "api_keys", "[]");
    assert_section(body, "revoked", "{\"tokens\":[],\"users\":[]}");
    assert_section(body, "auth",
                   "{\"api\":null,\"audience\":null,\"header_prefix\":\"x-cephalo-\",\"issuer\":\"cephalo\","
                   "\"leeway_s\":30,\"max_token_bytes\":8192}");
    json_decref(body);

    sql(fx->db, FIXTURE);
    body = build(fx->db);
    assert_section(body, "services",
                   "[{\"name\":\"health\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":100},"
                   "{\"name\":\"orders\",\"policies\":{},\"system\":"
                   "\"shop\",\"targets\":[],\"timeout_ms\":100}]");
    assert_section(
        body, "routes",
        "[{\"default_access\":\"authenticated\",\"hosts\":[],\"methods\":[],\"name\":\"r0\",\"paths\":[\"/health\"],"
        "\"policies\":{},\"service\":\"health\",\"strip_prefix\":false},{\"default_access\":\"deny\",\"hosts\":[],\"methods\":[],"
        "\"name\":\"r1\",\"paths\":[\"/orders\"],\"policies\":{},\"service\":\"orders\","
        "\"strip_prefix\":false}]");
    assert_section(body, "groups",
                   "[{\"name\":\"oncall\",\"roles\":[\"admin\"],\"system\":\"ops\"},{\"name\":\"empty\",\"roles\":[],\"system\":"
                   "\"shop\"},{\"name\":\"staff\",\"roles\":[\"reader\",\"writer\"],\"system\":\"shop\"}]");
    /* by service, then path (the prefix rule sorts before the template: '*' < '{'), then method ("*" < "GET") */
    assert_section(
        body, "endpoints",
        "[{\"groups\":[],\"id\":3,\"method\":\"GET\",\"path\":\"/health\",\"public\":true,\"roles\":[],\"service\":"
        "\"health\",\"shadow\":false},"
        "{\"groups\":[],\"id\":2,\"method\":\"*\",\"path\":\"/orders/*\",\"public\":true,\"roles\":[],\"service\":"
        "\"orders\",\"shadow\":true},"
        "{\"groups\":[],\"id\":4,\"method\":\"*\",\"path\":\"/orders/{id}\",\"public\":false,\"roles\":[{\"name\":"
        "\"admin\",\"system\":\"ops\"},{\"name\":\"writer\",\"system\":\"shop\"}],\"service\":\"orders\",\"shadow\":true},"
        "{\"groups\":[{\"name\":\"staff\",\"system\":\"shop\"}],\"id\":1,\"method\":\"GET\",\"path\":\"/orders/{id}\","
        "\"public\":false,\"roles\":[{\"name\":\"reader\",\"system\":\"shop\"}],\"service\":\"orders\",\"shadow\":false}]");
    /* not revoked, by prefix; expires_at in unix seconds (2026-11-23T00:00:00.500Z -> 1795392000) */
    assert_section(body, "api_keys",
                   "[{\"expires_at\":null,\"groups\":[],\"id\":2,\"prefix\":\"aaaaaaaaaa\",\"roles\":[],\"secret_sha256\":\"" SHA_A
                   "\",\"system\":\"ops\"},"
                   "{\"expires_at\":1795392000,\"groups\":[\"staff\"],\"id\":1,\"prefix\":\"bbbbbbbbbb\",\"roles\":[\"reader\","
                   "\"writer\"],\"secret_sha256\":\"" SHA_B "\",\"system\":\"shop\"}]");
    assert_section(body, "revoked",
                   "{\"tokens\":[{\"exp\":9,\"jti\":\"A\"},{\"exp\":7,\"jti\":\"b\"}],\"users\":[{\"before\":50,\"id\":2},"
                   "{\"before\":100,\"id\":10}]}");
    json_decref(body);

    /* the auth section follows the settings: every member, empty strings as null */
    cph_settings_auth_defaults(&s);
    strcpy(s.issuer, "https://id.example");
    strcpy(s.audience, "shop-api");
    strcpy(s.api, "http://127.0.0.1:8002");
    strcpy(s.header_prefix, "x-id-");
    s.leeway_s = 0;
    s.max_token_bytes = 256;
    cph_settings_set_auth(&s);
    body = build(fx->db);
    assert_section(body, "auth",
                   "{\"api\":\"http://127.0.0.1:8002\",\"audience\":\"shop-api\",\"header_prefix\":\"x-id-\","
                   "\"issuer\":\"https://id.example\",\"leeway_s\":0,\"max_token_bytes\":256}");
    json_decref(body);
    cph_settings_auth_defaults(&s);
    cph_settings_set_auth(&s);
}

/* The same rows inserted in another order (other ids for groups and roles, same names) give the same body. */
static void test_snapbuild_access_deterministic(void **state)
{
    fixture_t *fx = *state;
    char path[128], *a, *b;
    cph_error_t err;
    cph_db_t *other;
    json_t *ba, *bb;

    snprintf(path, sizeof(path), "%s/other.db", fx->dir);
    assert_non_null(other = cph_db_open(path, CEPHALO_MIGRATIONS_DIR, &err));
    sql(fx->db, "INSERT INTO systems (code, name, created_at, updated_at) VALUES ('shop', 'S', 't', 't');"
                "INSERT INTO roles (system_id, name, created_at, updated_at) VALUES (1, 'b', 't', 't'), (1, 'a', 't', 't');"
                "INSERT INTO groups (system_id, name, created_at, updated_at) VALUES (1, 'g', 't', 't');"
                "INSERT INTO group_roles VALUES (1, 1), (1, 2);");
    sql(other, "INSERT INTO systems (code, name, created_at, updated_at) VALUES ('x', 'X', 't', 't'), ('shop', 'S', 't', 't');"
               "DELETE FROM systems WHERE code = 'x';"
               "INSERT INTO roles (system_id, name, created_at, updated_at) VALUES (2, 'a', 't', 't'), (2, 'b', 't', 't');"
               "INSERT INTO groups (system_id, name, created_at, updated_at) VALUES (2, 'g', 't', 't');"
               "INSERT INTO group_roles VALUES (1, 2), (1, 1);");
    ba = build(fx->db);
    bb = build(other);
    a = cph_json_canonical(ba);
    b = cph_json_canonical(bb);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\"roles\":[\"a\",\"b\"]"));
    free(a);
    free(b);
    json_decref(ba);
    json_decref(bb);
    cph_db_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_on_existing_0003, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_system, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_default_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_shadow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_prunes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_changes_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapbuild_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapbuild_access_deterministic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
