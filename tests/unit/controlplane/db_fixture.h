/*
 * db_fixture: the fresh, migrated control-plane database every store and identity test starts from, in its own
 * temp dir, removed afterwards, and the writes the tests make through cph_db_write with an entity's store operations
 * (normalised and validated as the admin API writes them). Header-only so each test executable stays one file plus
 * what it tests.
 */
#ifndef CPH_TEST_DB_FIXTURE_H
#define CPH_TEST_DB_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/store.h"

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

/*
 * Copies the migrations numbered from..to (to 0: every later one too) from the source tree into dir, so a test can
 * build a database as an older release left it and then migrate it. Returns how many it copied.
 */
static inline int db_fixture_copy_migrations(const char *dir, int from, int to)
{
    DIR *d = opendir(CEPHALO_MIGRATIONS_DIR);
    struct dirent *e;
    char cmd[1100];
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        int num = atoi(e->d_name);
        size_t len = strlen(e->d_name);
        if (num < from || (to != 0 && num > to) || len < 9 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/'", CEPHALO_MIGRATIONS_DIR, e->d_name, dir);
        assert_int_equal(system(cmd), 0);
        ++n;
    }
    closedir(d);
    return n;
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

/* Fails unless err holds code (NULL: any code) at the JSON pointer path, with a message; input names the case. */
static inline void assert_error_at(const cph_error_t *err, const char *input, const char *code, const char *path)
{
    if ((code != NULL && strcmp(err->code, code) != 0) || strcmp(err->path, path) != 0)
        fail_msg("%.120s: want %s at %s, got %s at %s (%s)", input, code != NULL ? code : "(any)", path, err->code, err->path,
                 err->msg);
    assert_true(strlen(err->msg) > 0);
}

/* ---------------------------------------------------------------- writes through the store operations */

/* ---- normalising and reading back through a store's operations (cph_store_ops_t) */

/* ops->normalize of the JSON text (a new reference, or NULL with err). */
static inline json_t *norm(const cph_store_ops_t *ops, const char *text, cph_error_t *err)
{
    json_t *in = parse(text), *out = ops->normalize(in, err);

    json_decref(in);
    return out;
}

static inline void norm_refused(const cph_store_ops_t *ops, const char *text, const char *code, const char *path)
{
    cph_error_t err;
    json_t *out = norm(ops, text, &err);

    if (out != NULL)
        fail_msg("normalize accepted %s", text);
    if (strcmp(err.code, code) != 0 || strcmp(err.path, path) != 0)
        fail_msg("%s: want %s at %s, got %s at %s (%s)", text, code, path, err.code, err.path, err.msg);
}

/* The stored object by key as canonical JSON without its timestamps (a new string). */
static inline char *stored(cph_db_t *db, const cph_store_ops_t *ops, const char *key)
{
    cph_error_t err;
    json_t *obj;
    char *text;

    cph_db_lock(db);
    obj = ops->get(db, key, &err);
    cph_db_unlock(db);
    if (obj == NULL)
        fail_msg("get %s: %s (%s)", key, err.code, err.msg);
    json_object_del(obj, "created_at");
    json_object_del(obj, "updated_at");
    text = cph_json_canonical(obj);
    json_decref(obj);
    return text;
}

static inline void assert_stored(cph_db_t *db, const cph_store_ops_t *ops, const char *key, const char *want)
{
    char *text = stored(db, ops, key);

    if (strcmp(text, want) != 0)
        fail_msg("%s:\n got %s\nwant %s", key, text, want);
    free(text);
}

typedef struct st_db_write_op_t {
    const cph_store_ops_t *ops;
    const char *text;
    int64_t id; /* 0: insert (gets the id), else update this id */
} db_write_op_t;

static inline int db_fixture_on_write(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    db_write_op_t *op = p;
    json_t *obj = norm(op->ops, op->text, err);
    int ret;

    if (obj == NULL)
        return -1;
    change->action = op->id == 0 ? "create" : "update";
    change->entity_type = op->ops->entity;
    change->entity_name = NULL;
    ret = op->id == 0 ? op->ops->insert(db, obj, &op->id, err) : op->ops->update(db, op->id, obj, err);
    change->after = obj;
    return ret;
}

/* Writes text with ops (insert when id is 0, else update id) in one cph_db_write; returns the id, or 0 with err
 * filled when it is refused. */
static inline int64_t try_written(cph_db_t *db, const cph_store_ops_t *ops, int64_t id, const char *text, cph_error_t *err)
{
    db_write_op_t op = {ops, text, id};
    uint64_t version;

    memset(err, 0, sizeof(*err));
    return cph_db_write(db, "test", db_fixture_on_write, &op, &version, err) == 0 ? op.id : 0;
}

/* try_written() that must succeed; returns the id. */
static inline int64_t written(cph_db_t *db, const cph_store_ops_t *ops, int64_t id, const char *text)
{
    cph_error_t err;
    int64_t ret = try_written(db, ops, id, text, &err);

    if (ret == 0)
        fail_msg("write %s: %s at %s (%s)", text, err.code, err.path, err.msg);
    return ret;
}

#endif
