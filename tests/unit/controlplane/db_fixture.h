/*
 * db_fixture: the fresh, migrated control-plane database every store and identity test starts from, in its own
 * temp dir, removed afterwards. Header-only so each test executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_DB_FIXTURE_H
#define CPH_TEST_DB_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>
#include "controlplane/db.h"

typedef struct st_fixture_t {
    char dir[64];
    cph_db_t *db;
} fixture_t;

/* cmocka setup: a new database in /tmp/cph-<tag>-XXXXXX with every migration applied. */
static inline int db_fixture_setup(void **state, const char *tag)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char path[128];
    cph_error_t err;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cph-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(path, sizeof(path), "%s/cephalo.db", fx->dir);
    assert_non_null(fx->db = cph_db_open(path, CEPHALO_MIGRATIONS_DIR, &err));
    *state = fx;
    return 0;
}

static inline int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[128];

    cph_db_close(fx->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* A JSON literal of the test (NUL escapes allowed, duplicate keys not); a typo fails the test, not a crash. */
static inline json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);

    if (v == NULL)
        fail_msg("test JSON does not parse: %s (%s)", jerr.text, text);
    return v;
}

/* Runs SQL the test needs outside the stores (an old schema, a row edited behind the API); a failure fails the test. */
static inline void sql(cph_db_t *db, const char *text)
{
    char *msg = NULL;

    cph_db_lock(db);
    if (sqlite3_exec(cph_db_handle(db), text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("SQL failed: %s (%s)", msg, text);
    cph_db_unlock(db);
}

/* 1 when the database refuses text (a CHECK or a constraint), 0 when it runs. */
static inline int sql_refused(cph_db_t *db, const char *text)
{
    int rc;

    cph_db_lock(db);
    rc = sqlite3_exec(cph_db_handle(db), text, NULL, NULL, NULL);
    cph_db_unlock(db);
    return rc != SQLITE_OK;
}

#endif
