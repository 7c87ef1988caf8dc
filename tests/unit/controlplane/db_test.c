/*
 * db_test: opening the database and applying migrations - a fresh database, a re-open that changes nothing, and
 * every refusal (a failing migration rolled back whole, a numbering gap, a changed checksum, an applied migration
 * whose file is gone).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "controlplane/db.h"

typedef struct st_fixture_t {
    char dir[256];
    char mig[300];
    char path[300];
} fixture_t;

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[600];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_non_null(f = fopen(p, "w"));
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 20);

    assert_non_null(f);
    assert_true(fread(buf, 1, (1 << 20) - 1, f) > 0);
    fclose(f);
    return buf;
}

/* Copies the real 0001_init.sql into a private migrations directory. */
static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char src[600];
    char *text;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cph-db-test-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->mig, sizeof(fx->mig), "%s/mig", fx->dir);
    assert_int_equal(mkdir(fx->mig, 0700), 0);
    snprintf(fx->path, sizeof(fx->path), "%s/cephalo.db", fx->dir);
    snprintf(src, sizeof(src), "%s/0001_init.sql", CEPHALO_MIGRATIONS_DIR);
    text = slurp(src);
    write_file(fx->mig, "0001_init.sql", text);
    free(text);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static int64_t count(cph_db_t *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_fresh_then_reopen(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    char epoch[33], epoch2[33];
    uint64_t gen;
    cph_db_t *db = cph_db_open(fx->path, fx->mig, &err);

    assert_non_null(db);
    assert_int_equal(cph_db_meta(db, epoch, &gen), 0);
    assert_int_equal(strlen(epoch), 32);
    assert_int_equal(strspn(epoch, "0123456789abcdef"), 32);
    assert_int_equal(gen, 0);
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 1);
    assert_int_equal(count(db, "PRAGMA foreign_keys"), 1);
    cph_db_close(db);

    /* re-open: nothing re-applied, same epoch */
    assert_non_null(db = cph_db_open(fx->path, fx->mig, &err));
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 1);
    assert_int_equal(cph_db_meta(db, epoch2, &gen), 0);
    assert_string_equal(epoch, epoch2);
    cph_db_close(db);
}

static void test_bad_migration_rolls_back(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    cph_db_t *db;

    /* 0002 creates a table, then fails: the table must not survive, nor the record */
    write_file(fx->mig, "0002_bad.sql", "CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n");
    assert_null(cph_db_open(fx->path, fx->mig, &err));
    assert_string_equal(err.code, "migration");
    assert_null(strstr(err.msg, "no_such_table")); /* no SQL text in the error */
    /* 0001 went in (its own transaction), 0002 did not, not even partly */
    write_file(fx->mig, "0002_bad.sql", "CREATE TABLE good (x INTEGER);\n");
    assert_non_null(db = cph_db_open(fx->path, fx->mig, &err));
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'half'"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'good'"), 1);
    cph_db_close(db);
}

static void test_gap_refused(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;

    write_file(fx->mig, "0003_gap.sql", "CREATE TABLE g (x INTEGER);\n");
    assert_null(cph_db_open(fx->path, fx->mig, &err));
    assert_string_equal(err.code, "migration");
    assert_non_null(strstr(err.msg, "gap"));
}

static void test_changed_checksum_refused(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    cph_db_t *db;

    write_file(fx->mig, "0002_x.sql", "CREATE TABLE x (a INTEGER);\n");
    assert_non_null(db = cph_db_open(fx->path, fx->mig, &err));
    cph_db_close(db);
    write_file(fx->mig, "0002_x.sql", "CREATE TABLE x (a INTEGER, b TEXT);\n");
    assert_null(cph_db_open(fx->path, fx->mig, &err));
    assert_non_null(strstr(err.msg, "changed"));
}

static void test_missing_applied_file_refused(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    cph_db_t *db;
    char p[600];

    write_file(fx->mig, "0002_x.sql", "CREATE TABLE x (a INTEGER);\n");
    assert_non_null(db = cph_db_open(fx->path, fx->mig, &err));
    cph_db_close(db);
    snprintf(p, sizeof(p), "%s/0002_x.sql", fx->mig);
    assert_int_equal(unlink(p), 0);
    assert_null(cph_db_open(fx->path, fx->mig, &err));
    assert_string_equal(err.code, "migration");
}

static void test_no_migrations_refused(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;

    assert_null(cph_db_open(fx->path, "/nonexistent-cephalo-dir", &err));
    assert_null(cph_db_open(fx->path, fx->dir, &err)); /* a directory without NNNN_*.sql */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_then_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_migration_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_checksum_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_applied_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_migrations_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
