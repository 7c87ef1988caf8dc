/*
 * store_secret_test: the vault_secrets table (controlplane/store_secret.c, migrations/0008_integrations.sql).
 *
 * - put inserts then replaces, get returns the data, an unknown path is {not_found} with no internals;
 * - the audit view of a put (before/after) and of a prune carries path, version and sorted key names only;
 * - bad input (non-object data, non-string values, empty or huge path, negative version) is refused, nothing stored;
 *   the table's CHECK and triggers refuse the same behind the store's back;
 * - paths lists the distinct vault_path of the services, sorted; prune drops only unreferenced secrets;
 * - list_public never holds a value.
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
#include "controlplane/db.h"
#include "controlplane/store_secret.h"
#include "controlplane/store_service.h"

#define SECRET "v4lue-n0t-f0r-aud1t"

static int setup(void **state)
{
    return db_fixture_setup(state, "store-secret-test");
}

static void assert_json(const json_t *v, const char *want)
{
    char *text = cph_json_canonical(v);

    if (text == NULL || strcmp(text, want) != 0)
        fail_msg("got %s, want %s", text != NULL ? text : "(null)", want);
    free(text);
}

/* A put inside the caller's lock, without a write: the change is checked and released here. */
static int put(cph_db_t *db, const char *path, int64_t version, const char *data, const char *want_before, const char *want_after,
               cph_error_t *err)
{
    cph_db_change_t change = {0};
    json_t *d = parse(data);
    int ret;

    cph_db_lock(db);
    ret = cph_store_secret_put(db, path, version, d, &change, err);
    cph_db_unlock(db);
    json_decref(d);
    if (ret == 0) {
        assert_string_equal(change.entity_type, "vault_secret");
        if (want_before == NULL)
            assert_null(change.before);
        else
            assert_json(change.before, want_before);
        assert_json(change.after, want_after);
        assert_string_equal(change.action, want_before == NULL ? "create" : "update");
    }
    json_decref(change.before);
    json_decref(change.after);
    return ret;
}

static json_t *get(cph_db_t *db, const char *path, cph_error_t *err)
{
    json_t *out;

    cph_db_lock(db);
    out = cph_store_secret_get(db, path, err);
    cph_db_unlock(db);
    if (out != NULL)
        json_object_del(out, "fetched_at");
    return out;
}

static void test_put_get(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *v;

    assert_null(get(fx->db, "a/b", &err));
    assert_string_equal(err.code, "not_found");
    assert_int_equal(put(fx->db, "a/b", 1, "{\"z\":\"" SECRET "\",\"a\":\"x\"}", NULL,
                         "{\"keys\":[\"a\",\"z\"],\"path\":\"a/b\",\"version\":1}", &err),
                     0);
    assert_non_null(v = get(fx->db, "a/b", &err));
    assert_json(v, "{\"data\":{\"a\":\"x\",\"z\":\"" SECRET "\"},\"path\":\"a/b\",\"version\":1}");
    json_decref(v);
    assert_int_equal(put(fx->db, "a/b", 2, "{\"n\":\"" SECRET "\\u0000x\"}",
                         "{\"keys\":[\"a\",\"z\"],\"path\":\"a/b\",\"version\":1}",
                         "{\"keys\":[\"n\"],\"path\":\"a/b\",\"version\":2}", &err),
                     0);
    assert_non_null(v = get(fx->db, "a/b", &err));
    assert_int_equal(json_string_length(json_object_get(json_object_get(v, "data"), "n")), strlen(SECRET) + 2);
    json_decref(v);
    /* an empty secret is a secret */
    assert_int_equal(put(fx->db, "e", 0, "{}", NULL, "{\"keys\":[],\"path\":\"e\",\"version\":0}", &err), 0);
}

static void test_put_refused(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    char big[300];

    memset(big, 'p', 257);
    big[257] = '\0';
    assert_int_equal(put(fx->db, "p", 1, "[]", NULL, NULL, &err), -1);
    assert_int_equal(put(fx->db, "p", 1, "{\"k\":1}", NULL, NULL, &err), -1);
    assert_int_equal(put(fx->db, "p", 1, "{\"k\":\"" SECRET "\",\"n\":null}", NULL, NULL, &err), -1);
    assert_null(strstr(err.msg, SECRET));
    assert_int_equal(put(fx->db, "p", 1, "{\"k\":{\"x\":\"y\"}}", NULL, NULL, &err), -1);
    assert_int_equal(put(fx->db, "", 1, "{}", NULL, NULL, &err), -1);
    assert_int_equal(put(fx->db, big, 1, "{}", NULL, NULL, &err), -1);
    assert_int_equal(put(fx->db, "p", -1, "{}", NULL, NULL, &err), -1);
    assert_string_equal(err.code, "invalid");
    assert_null(get(fx->db, "p", &err));
    /* the table refuses the same behind the store's back */
    assert_true(sql_refused(fx->db, "INSERT INTO vault_secrets VALUES ('q', 1, '{\"k\":[1]}', 't')"));
    assert_true(sql_refused(fx->db, "INSERT INTO vault_secrets VALUES ('q', -1, '{}', 't')"));
    assert_true(sql_refused(fx->db, "INSERT INTO vault_secrets VALUES ('q', 1, 'nope', 't')"));
    assert_true(sql_refused(fx->db, "INSERT INTO vault_secrets VALUES ('', 1, '{}', 't')"));
    sql(fx->db, "INSERT INTO vault_secrets VALUES ('q', 1, '{\"k\":\"v\"}', 't')");
    assert_true(sql_refused(fx->db, "UPDATE vault_secrets SET data = '{\"k\":true}' WHERE path = 'q'"));
}

static void service_with_path(cph_db_t *db, const char *name, const char *path)
{
    char text[400];

    snprintf(text, sizeof(text),
             "{\"name\":\"%s\",\"targets\":[],\"credentials\":{\"vault_path\":\"%s\",\"headers\":{\"x-k\":\"{{k}}\"}}}", name,
             path);
    written(db, &cph_store_service_ops, 0, text);
}

static void test_paths_prune_list(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    cph_db_change_t change = {0};
    size_t deleted = 99;
    json_t *v;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"plain\",\"targets\":[]}");
    service_with_path(fx->db, "s1", "z/path");
    service_with_path(fx->db, "s2", "a/path");
    service_with_path(fx->db, "s3", "z/path");
    cph_db_lock(fx->db);
    v = cph_store_secret_paths(fx->db, &err);
    cph_db_unlock(fx->db);
    assert_json(v, "[\"a/path\",\"z/path\"]");
    json_decref(v);
    assert_int_equal(
        put(fx->db, "a/path", 1, "{\"k\":\"" SECRET "\"}", NULL, "{\"keys\":[\"k\"],\"path\":\"a/path\",\"version\":1}", &err), 0);
    assert_int_equal(
        put(fx->db, "gone/1", 4, "{\"k\":\"" SECRET "\"}", NULL, "{\"keys\":[\"k\"],\"path\":\"gone/1\",\"version\":4}", &err), 0);
    assert_int_equal(put(fx->db, "gone/2", 1, "{\"k\":\"x\"}", NULL, "{\"keys\":[\"k\"],\"path\":\"gone/2\",\"version\":1}", &err),
                     0);
    /* the public view: versions and key names, never a value */
    cph_db_lock(fx->db);
    v = cph_store_secret_list_public(fx->db, &err);
    cph_db_unlock(fx->db);
    assert_non_null(v);
    {
        char *text = cph_json_canonical(v);
        assert_null(strstr(text, SECRET));
        assert_non_null(strstr(text, "{\"fetched_at\":"));
        free(text);
    }
    for (size_t i = 0; i != json_array_size(v); ++i)
        json_object_del(json_array_get(v, i), "fetched_at");
    assert_json(v, "[{\"keys\":[\"k\"],\"path\":\"a/path\",\"version\":1},{\"keys\":[\"k\"],\"path\":\"gone/1\",\"version\":4},"
                   "{\"keys\":[\"k\"],\"path\":\"gone/2\",\"version\":1}]");
    json_decref(v);
    /* prune: the unreferenced ones only */
    cph_db_lock(fx->db);
    assert_int_equal(cph_store_secret_prune(fx->db, &deleted, &change, &err), 0);
    cph_db_unlock(fx->db);
    assert_int_equal(deleted, 2);
    assert_string_equal(change.action, "delete");
    assert_json(change.before, "{\"paths\":[\"gone/1\",\"gone/2\"]}");
    json_decref(change.before);
    assert_null(get(fx->db, "gone/1", &err));
    assert_non_null(v = get(fx->db, "a/path", &err));
    json_decref(v);
    /* nothing left to prune: no change filled */
    memset(&change, 0, sizeof(change));
    cph_db_lock(fx->db);
    assert_int_equal(cph_store_secret_prune(fx->db, &deleted, &change, &err), 0);
    cph_db_unlock(fx->db);
    assert_int_equal(deleted, 0);
    assert_null(change.before);
    assert_null(change.action);
}

/* The database file and its WAL side files are private: they hold secrets. */
static void test_db_file_private(void **state)
{
    fixture_t *fx = *state;
    char path[128], cmd[640];
    struct stat sb;
    cph_error_t err;
    cph_db_t *db;

    snprintf(path, sizeof(path), "%s/cephalo.db", fx->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/cephalo.db-wal", fx->dir);
    if (stat(path, &sb) == 0)
        assert_int_equal(sb.st_mode & 077, 0);
    /* an existing world-readable file is narrowed when opened */
    snprintf(path, sizeof(path), "%s/other.db", fx->dir);
    snprintf(cmd, sizeof(cmd), "touch '%s' && chmod 0644 '%s' && touch '%s-wal' && chmod 0666 '%s-wal'", path, path, path, path);
    assert_int_equal(system(cmd), 0);
    assert_non_null(db = cph_db_open(path, CEPHALO_MIGRATIONS_DIR, &err));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(cmd, sizeof(cmd), "%s-wal", path);
    if (stat(cmd, &sb) == 0)
        assert_int_equal(sb.st_mode & 077, 0);
    cph_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_prune_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_file_private, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
