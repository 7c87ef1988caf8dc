/*
 * persist_test: the data plane's snapshot files (PROTOCOL.md section 6): atomic write with mode 0600 in a 0700
 * directory, the previous file kept, and a boot that trusts nothing it reads: corrupt, truncated, hash-mismatched or
 * schema-invalid files are skipped (current -> prev -> none) and never crash or block.
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
#include "dataplane/core/control.h"
#include "dataplane/core/persist.h"

typedef struct st_fixture_t {
    char dir[256];  /* the state dir (created by the test through cph_persist_ensure_dir) */
    char root[128]; /* mkdtemp root, removed at teardown */
} fixture_t;

static json_t *make_body(const char *route_path)
{
    json_t *b = json_pack("{s:[{s:s, s:[{s:s}]}], s:[{s:s, s:s, s:[s]}]}", "services", "name", "demo", "targets", "url",
                          "http://127.0.0.1:9000", "routes", "name", "demo", "service", "demo", "paths", route_path);
    assert_non_null(b);
    return b;
}

static void write_body(fixture_t *f, const char *route_path, uint64_t version, int keep_prev)
{
    char hash[CPH_HASH_SIZE];
    cph_error_t err;
    json_t *body = make_body(route_path);

    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    assert_int_equal(cph_persist_write(f->dir, "0123456789abcdef0123456789abcdef", version, hash, body, keep_prev, &err), 0);
    json_decref(body);
}

static void path_of(fixture_t *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static void write_raw(fixture_t *f, const char *name, const char *text)
{
    char p[512];
    FILE *fp;

    path_of(f, name, p, sizeof(p));
    assert_non_null(fp = fopen(p, "w"));
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cph_error_t err;

    strcpy(f->root, "/tmp/cph-persist-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof(f->dir), "%s/a/state", f->root);
    assert_int_equal(cph_persist_ensure_dir(f->dir, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void test_write_is_0600_in_0700_dir_and_reads_back(void **state)
{
    fixture_t *f = *state;
    char p[512];
    struct stat st;
    cph_persisted_t out;
    cph_error_t err;
    json_t *expect = make_body("/demo");

    umask(022); /* the mode must not depend on the umask */
    write_body(f, "/demo", 42, 1);
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    path_of(f, CPH_PERSIST_FILE, p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    path_of(f, CPH_PERSIST_TMP, p, sizeof(p));
    assert_int_not_equal(access(p, F_OK), 0); /* no stray temporary file */

    path_of(f, CPH_PERSIST_FILE, p, sizeof(p));
    assert_int_equal(cph_persist_load_file(p, &out, &err), 0);
    assert_int_equal(out.version, 42);
    assert_string_equal(out.epoch, "0123456789abcdef0123456789abcdef");
    assert_true(json_equal(out.body, expect));
    cph_persisted_dispose(&out);
    json_decref(expect);
}

static void test_prev_is_kept_unless_current_is_bad(void **state)
{
    fixture_t *f = *state;
    char cur[512], prev[512];
    cph_persisted_t out;
    cph_error_t err;

    path_of(f, CPH_PERSIST_FILE, cur, sizeof(cur));
    path_of(f, CPH_PERSIST_PREV, prev, sizeof(prev));
    write_body(f, "/one", 1, 1);
    assert_int_not_equal(access(prev, F_OK), 0); /* nothing to keep yet */
    write_body(f, "/two", 2, 1);
    assert_int_equal(cph_persist_load_file(prev, &out, &err), 0);
    assert_int_equal(out.version, 1);
    cph_persisted_dispose(&out);
    assert_int_equal(cph_persist_load_file(cur, &out, &err), 0);
    assert_int_equal(out.version, 2);
    cph_persisted_dispose(&out);

    /* keep_prev = 0 (the current file was bad): prev stays the good version 1 */
    write_body(f, "/three", 3, 0);
    assert_int_equal(cph_persist_load_file(prev, &out, &err), 0);
    assert_int_equal(out.version, 1);
    cph_persisted_dispose(&out);
    assert_int_equal(cph_persist_load_file(cur, &out, &err), 0);
    assert_int_equal(out.version, 3);
    cph_persisted_dispose(&out);
}

static void expect_rejected(fixture_t *f, const char *text, const char *code)
{
    char p[512];
    cph_persisted_t out;
    cph_error_t err;

    write_raw(f, CPH_PERSIST_FILE, text);
    path_of(f, CPH_PERSIST_FILE, p, sizeof(p));
    memset(&err, 0, sizeof(err));
    assert_int_equal(cph_persist_load_file(p, &out, &err), -1);
    assert_null(out.body);
    if (strcmp(err.code, code) != 0)
        fail_msg("'%s': expected %s, got %s (%s)", text, code, err.code, err.msg);
}

static void test_hostile_files_are_rejected(void **state)
{
    fixture_t *f = *state;
    char hash[CPH_HASH_SIZE], text[2048], *bodytext;
    json_t *body = make_body("/demo");

    assert_int_equal(cph_snapshot_hash(body, hash), 0);
    bodytext = json_dumps(body, JSON_COMPACT);

    expect_rejected(f, "", "invalid_json");
    expect_rejected(f, "[]", "invalid");
    expect_rejected(f, "{\"epoch\":\"e\",\"version\":1,\"hash\":", "invalid_json"); /* truncated */
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"epoch\":\"e\",\"version\":1,\"hash\":\"%s\",\"schema\":1,\"body\":%s}", hash,
             bodytext);
    expect_rejected(f, text, "invalid_json"); /* duplicate key */
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"version\":1.5,\"hash\":\"%s\",\"schema\":1,\"body\":%s}", hash, bodytext);
    expect_rejected(f, text, "invalid");
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"version\":-1,\"hash\":\"%s\",\"schema\":1,\"body\":%s}", hash, bodytext);
    expect_rejected(f, text, "invalid");
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"version\":1,\"hash\":\"%s\",\"schema\":2,\"body\":%s}", hash, bodytext);
    expect_rejected(f, text, "invalid");
    snprintf(text, sizeof(text), "{\"epoch\":\"%0100d\",\"version\":1,\"hash\":\"%s\",\"schema\":1,\"body\":%s}", 0, hash,
             bodytext);
    expect_rejected(f, text, "invalid"); /* epoch over 64 bytes */
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"version\":1,\"hash\":\"sha256:%064d\",\"schema\":1,\"body\":%s}", 0, bodytext);
    expect_rejected(f, text, "hash_mismatch");
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"version\":1,\"hash\":\"%s\",\"schema\":1,\"body\":[]}", hash);
    expect_rejected(f, text, "invalid");

    /* the hash matches but the body breaks the schema: the validator has the last word */
    json_t *bad = json_pack("{s:[], s:[{s:s, s:s, s:[s]}]}", "services", "routes", "name", "r", "service", "nope", "paths", "/x");
    char badhash[CPH_HASH_SIZE], *badtext = json_dumps(bad, JSON_COMPACT);
    assert_int_equal(cph_snapshot_hash(bad, badhash), 0);
    snprintf(text, sizeof(text), "{\"epoch\":\"e\",\"version\":1,\"hash\":\"%s\",\"schema\":1,\"body\":%s}", badhash, badtext);
    expect_rejected(f, text, "unknown_service");
    free(badtext);
    json_decref(bad);

    free(bodytext);
    json_decref(body);
}

static void test_missing_and_directory_are_rejected(void **state)
{
    fixture_t *f = *state;
    char p[512];
    cph_persisted_t out;
    cph_error_t err;

    path_of(f, CPH_PERSIST_FILE, p, sizeof(p));
    assert_int_equal(cph_persist_load_file(p, &out, &err), -1);
    assert_string_equal(err.code, "not_found");
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(cph_persist_load_file(p, &out, &err), -1);
    assert_string_not_equal(err.code, "not_found");
    rmdir(p);
}

/* Boot order through the control thread: current, else prev, else no config; a bad file never wins. */
static uint64_t boot_version(fixture_t *f)
{
    cph_control_t c;
    cph_error_t err;
    uint64_t v;

    assert_int_equal(cph_control_init(&c, f->dir, &err), 0);
    cph_snapshot_t *snap = cph_control_boot(&c);
    v = snap != NULL ? snap->version : 0;
    if (snap != NULL) {
        assert_string_equal(snap->source, "disk");
        assert_string_equal(c.applied.source, "disk");
        assert_int_equal(c.applied.version, v);
    } else {
        assert_string_equal(c.applied.source, "none");
    }
    cph_control_dispose(&c);
    return v;
}

static void test_boot_falls_back_to_prev_then_none(void **state)
{
    fixture_t *f = *state;
    char p[512], prev[512];

    assert_int_equal(boot_version(f), 0); /* empty dir */
    write_body(f, "/one", 1, 1);
    write_body(f, "/two", 2, 1);
    assert_int_equal(boot_version(f), 2);

    write_raw(f, CPH_PERSIST_FILE, "{\"epoch\":\"e\",\"vers"); /* a torn current file */
    assert_int_equal(boot_version(f), 1);

    write_raw(f, CPH_PERSIST_PREV, "garbage");
    assert_int_equal(boot_version(f), 0);

    /* only prev, current missing (a crash between the two renames of an older layout) */
    path_of(f, CPH_PERSIST_FILE, p, sizeof(p));
    unlink(p);
    write_body(f, "/five", 5, 0);
    path_of(f, CPH_PERSIST_PREV, prev, sizeof(prev));
    assert_int_equal(rename(p, prev), 0);
    assert_int_equal(boot_version(f), 5);
}

static void test_ensure_dir_narrows_mode(void **state)
{
    fixture_t *f = *state;
    struct stat st;
    cph_error_t err;

    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(cph_persist_ensure_dir(f->dir, &err), 0);
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_is_0600_in_0700_dir_and_reads_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prev_is_kept_unless_current_is_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_files_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_directory_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_falls_back_to_prev_then_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_dir_narrows_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
