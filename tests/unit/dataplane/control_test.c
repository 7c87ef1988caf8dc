/*
 * control_test: the apply sequence of PROTOCOL.md section 4 rule 3 against real worker threads: a good snapshot is
 * acked only after every worker swapped and the file is on disk; a bad one (schema, hash, unknown service) is nacked
 * and the old snapshot stays in force whole on every worker; the same body under a new version is acked at once; a
 * snapshot arriving during a swap is applied after it (latest wins); the drain ends the loop cleanly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "dataplane/core/control.h"
#include "dataplane/core/persist.h"

#define MAX_REPLIES 8

typedef struct st_fixture_t {
    char dir[128];
    cph_control_t control;
    cph_server_t server;
    json_t *replies[MAX_REPLIES];
    size_t num_replies;
} fixture_t;

static const char *EPOCH = "0123456789abcdef0123456789abcdef";

static void on_reply(void *data, uint64_t tag, json_t *reply)
{
    fixture_t *f = data;

    assert_int_equal(tag, 77);
    assert_true(f->num_replies < MAX_REPLIES);
    f->replies[f->num_replies++] = json_incref(reply);
}

/* Runs the control loop until n replies arrived; bounded (about 5 s). */
static void wait_replies(fixture_t *f, size_t n)
{
    for (int i = 0; i < 500 && f->num_replies < n; i++)
        h2o_evloop_run(f->control.loop, 10);
    assert_int_equal(f->num_replies, n);
}

static json_t *snapshot_msg(uint64_t version, const char *route_path, const char *service, const char *bad_hash)
{
    char hash[CPH_HASH_SIZE];
    json_t *body = json_pack("{s:[{s:s, s:[]}], s:[{s:s, s:s, s:[s]}]}", "services", "name", "demo", "targets", "routes", "name",
                             "demo", "service", service, "paths", route_path);

    assert_non_null(body);
    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    json_t *msg = cph_msg_snapshot(EPOCH, version, bad_hash != NULL ? bad_hash : hash, body);
    json_decref(body);
    return msg;
}

static void apply(fixture_t *f, json_t *msg)
{
    cph_control_apply(&f->control, msg, on_reply, f, 77);
    json_decref(msg);
}

static void assert_workers_on(fixture_t *f, cph_snapshot_t *snap)
{
    for (unsigned i = 0; i < f->server.num_workers; i++)
        assert_ptr_equal(f->server.workers[i].snap, snap);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cph_server_config_t cfg = {.listen = "127.0.0.1:0", .num_workers = 2};
    cph_error_t err;

    strcpy(f->dir, "/tmp/cph-control-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(cph_control_init(&f->control, f->dir, &err), 0);
    assert_null(cph_control_boot(&f->control));
    assert_int_equal(cph_server_init(&f->server, &cfg, &f->control.notify, &err), 0);
    cph_server_start(&f->server, NULL);
    cph_control_attach(&f->control, &f->server);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[256];

    cph_control_drain(&f->control);
    assert_int_equal(cph_control_run(&f->control), 0); /* no connection: drains at once, not by the timeout */
    cph_server_dispose(&f->server);
    cph_control_dispose(&f->control);
    for (size_t i = 0; i < f->num_replies; i++)
        json_decref(f->replies[i]);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static const char *reply_type(fixture_t *f, size_t i)
{
    return json_string_value(json_object_get(f->replies[i], "type"));
}

static uint64_t on_disk_version(fixture_t *f)
{
    char p[256];
    cph_persisted_t out;
    cph_error_t err;
    uint64_t v;

    snprintf(p, sizeof(p), "%s/%s", f->dir, CPH_PERSIST_FILE);
    if (cph_persist_load_file(p, &out, &err) != 0)
        return 0;
    v = out.version;
    cph_persisted_dispose(&out);
    return v;
}

static void test_good_snapshot_is_swapped_persisted_then_acked(void **state)
{
    fixture_t *f = *state;

    apply(f, snapshot_msg(5, "/a", "demo", NULL));
    assert_int_equal(f->num_replies, 0); /* not before the workers swapped */
    wait_replies(f, 1);
    assert_string_equal(reply_type(f, 0), "ack");
    assert_int_equal(json_integer_value(json_object_get(f->replies[0], "version")), 5);
    assert_true(json_is_true(json_object_get(f->replies[0], "persisted")));
    assert_non_null(f->control.current);
    assert_int_equal(f->control.current->version, 5);
    assert_string_equal(f->control.applied.source, "cp");
    assert_workers_on(f, f->control.current);
    assert_int_equal(on_disk_version(f), 5);
    assert_int_equal(f->control.applies, 1);
}

static void test_bad_snapshots_are_nacked_and_old_stays(void **state)
{
    fixture_t *f = *state;

    apply(f, snapshot_msg(5, "/a", "demo", NULL));
    wait_replies(f, 1);
    cph_snapshot_t *good = f->control.current;

    apply(f, snapshot_msg(6, "/b", "nope", NULL)); /* unknown service */
    apply(f, snapshot_msg(7, "/b", "demo", "sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    json_t *schema2 = snapshot_msg(8, "/b", "demo", NULL);
    json_object_set_new(schema2, "schema", json_integer(2));
    apply(f, schema2);
    wait_replies(f, 4);
    const char *codes[] = {"unknown_service", "hash_mismatch", "invalid"};
    for (size_t i = 1; i < 4; i++) {
        json_t *r = f->replies[i];
        assert_string_equal(reply_type(f, i), "nack");
        assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "code")), codes[i - 1]);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "applied"), "version")), 5);
    }
    assert_string_equal(json_string_value(json_object_get(json_object_get(f->replies[1], "error"), "path")), "/routes/0/service");
    assert_ptr_equal(f->control.current, good);
    assert_workers_on(f, good);
    assert_int_equal(on_disk_version(f), 5);
    assert_int_equal(f->control.nacks, 3);
}

static void test_same_body_new_version_acks_at_once(void **state)
{
    fixture_t *f = *state;

    apply(f, snapshot_msg(5, "/a", "demo", NULL));
    wait_replies(f, 1);
    cph_snapshot_t *snap = f->control.current;
    apply(f, snapshot_msg(9, "/a", "demo", NULL));
    assert_int_equal(f->num_replies, 2); /* synchronous: nothing to compile or swap */
    assert_string_equal(reply_type(f, 1), "ack");
    assert_ptr_equal(f->control.current, snap);
    assert_int_equal(f->control.applied.version, 9);
    assert_int_equal(on_disk_version(f), 9);
}

static void test_snapshot_during_swap_waits_latest_wins(void **state)
{
    fixture_t *f = *state;

    apply(f, snapshot_msg(5, "/a", "demo", NULL));
    apply(f, snapshot_msg(6, "/b", "demo", NULL)); /* queued behind the swap of 5 */
    apply(f, snapshot_msg(7, "/c", "demo", NULL)); /* replaces 6 */
    wait_replies(f, 2);
    assert_int_equal(json_integer_value(json_object_get(f->replies[0], "version")), 5);
    assert_int_equal(json_integer_value(json_object_get(f->replies[1], "version")), 7);
    assert_int_equal(f->control.current->version, 7);
    assert_workers_on(f, f->control.current);
    assert_int_equal(on_disk_version(f), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_snapshot_is_swapped_persisted_then_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_snapshots_are_nacked_and_old_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_body_new_version_acks_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_during_swap_waits_latest_wins, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
