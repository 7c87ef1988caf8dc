/*
 * dp_fixture: a snapshot server in a mkdtemp directory, and what its tests' data planes (dp_client.h) say to it: hello,
 * the snapshot they expect, the ack. Shared by dpserver_test.c, dpshadow_test.c and health_report_test.c. Header-only
 * so each test executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_DP_FIXTURE_H
#define CPH_TEST_DP_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "controlplane/dpserver.h"
#include "tests/unit/controlplane/dp_client.h"

#define EPOCH "0123456789abcdef0123456789abcdef"

typedef struct st_fixture_t {
    char dir[64];
    char path[100];
    cph_dpserver_t *s;
} fixture_t;

/* ---------------------------------------------------------------- fixture */

static inline fixture_t *fixture_new(uint64_t heartbeat_ms)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cph_error_t err;

    assert_non_null(f);
    strcpy(f->dir, "/tmp/cph-dpserver-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/run/cp.sock", f->dir);
    f->s = cph_dpserver_start(f->path, EPOCH, heartbeat_ms, &err);
    assert_non_null(f->s);
    return f;
}

static inline int setup(void **state)
{
    *state = fixture_new(1000);
    return 0;
}

static inline int teardown(void **state)
{
    fixture_t *f = *state;
    char run[160];

    if (f->s != NULL)
        cph_dpserver_stop(f->s);
    snprintf(run, sizeof(run), "%s/run", f->dir);
    rmdir(run);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The element of list whose string member `member` is value (a new reference), or NULL; takes list. For the server's
 * per-data-plane lists (cph_dpserver_list, cph_dpserver_health). */
static inline json_t *dp_list_find(json_t *list, const char *member, const char *value)
{
    json_t *row, *found = NULL;
    size_t i;

    json_array_foreach(list, i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, member)), value) == 0)
            found = json_incref(row);
    }
    json_decref(list);
    return found;
}

static inline void dp_hello(dp_t *dp, const char *path, const char *id, const cph_applied_t *applied)
{
    json_t *w;

    dp_connect(dp, path);
    dp_send(dp, cph_msg_hello(id, "host-1", 4242, "test/1", applied));
    w = dp_expect(dp, "welcome");
    assert_string_equal(json_string_value(json_object_get(w, "epoch")), EPOCH);
    json_decref(w);
}

/* Receives a snapshot, checks it is version v and returns its hash (static buffer). */
static inline const char *dp_expect_snapshot(dp_t *dp, uint64_t v)
{
    static char hash[CPH_HASH_SIZE];
    json_t *snap = dp_expect(dp, "snapshot");
    cph_error_t err;

    assert_int_equal(cph_msg_check(snap, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(snap, "version")), v);
    assert_string_equal(json_string_value(json_object_get(snap, "epoch")), EPOCH);
    snprintf(hash, sizeof(hash), "%s", json_string_value(json_object_get(snap, "hash")));
    json_decref(snap);
    return hash;
}

static inline void dp_ack(dp_t *dp, uint64_t v, const char *hash)
{
    dp_send(dp, cph_msg_ack(v, hash, 3, 1));
}

#endif
