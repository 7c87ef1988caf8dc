/*
 * store_refresh_test: refresh tokens in the database - token format and hashing (only the SHA-256 is stored),
 * issuing only for users who may log into the system (members, superusers anywhere; not disabled users, not
 * non-members), rotation (the old token used, the new one in the same family), reuse detection (a used token is
 * "reused" and revoking its family writes the family's live access jtis into revocations through a new config
 * version), no new version for a family revoked already, a user disabled after login (invalid_grant and the family
 * revoked), expiry, logout's jti revocation, and pruning.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/unit/controlplane/db_fixture.h"
#include "controlplane/store_refresh.h"

#define NOW 1900000000
#define TTL 1209600

static int64_t scalar(cph_db_t *db, const char *text, const char *arg)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), text, -1, &st, NULL), SQLITE_OK);
    if (arg != NULL)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return v;
}

static uint64_t version(cph_db_t *db)
{
    char epoch[33];
    uint64_t v = 0;

    cph_db_lock(db);
    assert_int_equal(cph_db_meta(db, epoch, &v), 0);
    cph_db_unlock(db);
    return v;
}

/* Users 1 alice (member of shop), 2 root (superuser, no systems), 3 eve (disabled member), 4 bob (member of none). */
static int setup(void **state)
{
    fixture_t *fx;
    cph_error_t err;

    db_fixture_setup(state, "refresh-test");
    fx = *state;
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    sql(fx->db, "INSERT INTO systems (id, code, name, created_at, updated_at) VALUES (1, 'shop', 'Shop', 'x', 'x'), "
                "(2, 'crm', 'CRM', 'x', 'x');"
                "INSERT INTO users (id, username, password_hash, superuser, enabled, created_at, updated_at) VALUES "
                "(1, 'alice', '$argon2id$x', 0, 1, 'x', 'x'), (2, 'root', '$argon2id$x', 1, 1, 'x', 'x'), "
                "(3, 'eve', '$argon2id$x', 0, 0, 'x', 'x'), (4, 'bob', '$argon2id$x', 0, 1, 'x', 'x');"
                "INSERT INTO user_systems (user_id, system_id) VALUES (1, 1), (3, 1);");
    return 0;
}

static void login(cph_db_t *db, int64_t user, int64_t system, const char *jti, char token[44], char family[33])
{
    char sha[65];
    cph_error_t err;

    assert_int_equal(cph_store_refresh_new_token(token, sha), 0);
    assert_int_equal(cph_store_refresh_issue(db, sha, user, system, jti, NOW, TTL, family, &err), 0);
}

/* ---------------------------------------------------------------- tokens */

static void test_token_format(void **state)
{
    char a[44], b[44], sha[65], sha2[65];

    (void)state;
    assert_int_equal(cph_store_refresh_new_token(a, sha), 0);
    assert_int_equal(cph_store_refresh_new_token(b, sha2), 0);
    assert_int_equal(strlen(a), 43);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(sha), 64);
    assert_int_equal(cph_store_refresh_hash(a, sha2), 0);
    assert_string_equal(sha, sha2);
    assert_int_equal(cph_store_refresh_hash("", sha2), -1);
    assert_int_equal(cph_store_refresh_hash(NULL, sha2), -1);
    assert_int_equal(cph_store_refresh_hash("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", sha2), -1);   /* 42 */
    assert_int_equal(cph_store_refresh_hash("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", sha2), -1); /* 44 */
    assert_int_equal(cph_store_refresh_hash("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", sha2), -1);
    assert_int_equal(cph_store_refresh_hash("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", sha2), -1);
}

/* ---------------------------------------------------------------- issuing */

static void test_issue_who_may(void **state)
{
    fixture_t *fx = *state;
    char token[44], family[33], sha[65];
    cph_error_t err;

    login(fx->db, 1, 1, "j1", token, family);
    assert_int_equal(strlen(family), 32);
    assert_int_equal(cph_store_refresh_hash(token, sha), 0);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE token_sha256 = ?1", sha), 1);
    /* the token itself is nowhere */
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE token_sha256 = ?1 OR access_jti = ?1", token), 0);
    login(fx->db, 2, 2, "j2", token, family); /* a superuser into any system */
    cph_store_refresh_new_token(token, sha);
    assert_int_equal(cph_store_refresh_issue(fx->db, sha, 3, 1, "j3", NOW, TTL, family, &err), -1); /* disabled */
    assert_string_equal(err.code, "invalid_grant");
    assert_int_equal(cph_store_refresh_issue(fx->db, sha, 4, 1, "j4", NOW, TTL, family, &err), -1); /* not a member */
    assert_string_equal(err.code, "invalid_grant");
    assert_int_equal(cph_store_refresh_issue(fx->db, sha, 1, 2, "j5", NOW, TTL, family, &err), -1);  /* other system */
    assert_int_equal(cph_store_refresh_issue(fx->db, sha, 99, 1, "j6", NOW, TTL, family, &err), -1); /* no such user */
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens", NULL), 2);
}

/* ---------------------------------------------------------------- rotation and reuse */

static void test_rotate_then_reuse_revokes_family(void **state)
{
    fixture_t *fx = *state;
    char t1[44], t2[44], family[33], sha1[65], sha2[65], sha3[65], t3[44];
    cph_refresh_row_t row;
    cph_error_t err;
    uint64_t v0;

    login(fx->db, 1, 1, "jti-one", t1, family);
    cph_store_refresh_hash(t1, sha1);
    cph_store_refresh_new_token(t2, sha2);
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, sha2, "jti-two", NOW + 10, TTL, &row, &err), 0);
    assert_string_equal(row.family, family);
    assert_int_equal(row.user_id, 1);
    assert_int_equal(row.system_id, 1);
    assert_int_equal(scalar(fx->db, "SELECT used_at FROM refresh_tokens WHERE token_sha256 = ?1", sha1), NOW + 10);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE family = ?1", family), 2);
    /* presenting t1 again: reused, nothing rotated */
    cph_store_refresh_new_token(t3, sha3);
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, sha3, "jti-three", NOW + 20, TTL, &row, &err), -1);
    assert_string_equal(err.code, "reused");
    assert_string_equal(row.family, family);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE family = ?1", family), 2);
    /* revoking the family: both rows, both access jtis refused, in a new version */
    v0 = version(fx->db);
    assert_int_equal(cph_store_refresh_revoke(fx->db, row.family, NULL, 0, NOW + 20, "reuse", &err), 0);
    assert_int_equal(version(fx->db), v0 + 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE family = ?1 AND revoked_at IS NULL", family), 0);
    assert_int_equal(scalar(fx->db, "SELECT until_or_before FROM revocations WHERE kind = 'token' AND subject = ?1", "jti-two"),
                     NOW + 10 + 900);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM revocations WHERE kind = 'token' AND subject = ?1", "jti-one"), 1);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM audit WHERE action = 'revoke' AND entity_type = 'refresh_family'", NULL),
                     1);
    /* the newest token of the family is dead too */
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha2, sha3, "jti-three", NOW + 30, TTL, &row, &err), -1);
    assert_string_equal(err.code, "reused");
    /* revoking again changes nothing and writes no version (replays cannot flood the history) */
    assert_int_equal(cph_store_refresh_revoke(fx->db, row.family, NULL, 0, NOW + 30, "reuse", &err), 0);
    assert_int_equal(version(fx->db), v0 + 1);
}

static void test_concurrent_use_is_reuse(void **state)
{
    fixture_t *fx = *state;
    char t1[44], family[33], sha1[65], a[44], sha_a[65], b[44], sha_b[65];
    cph_refresh_row_t row;
    cph_error_t err;

    login(fx->db, 1, 1, "j1", t1, family);
    cph_store_refresh_hash(t1, sha1);
    cph_store_refresh_new_token(a, sha_a);
    cph_store_refresh_new_token(b, sha_b);
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, sha_a, "ja", NOW + 1, TTL, &row, &err), 0);
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, sha_b, "jb", NOW + 1, TTL, &row, &err), -1);
    assert_string_equal(err.code, "reused");
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE token_sha256 = ?1", sha_b), 0);
}

static void test_unknown_expired_disabled(void **state)
{
    fixture_t *fx = *state;
    char t1[44], family[33], sha1[65], n[44], shan[65];
    cph_refresh_row_t row;
    cph_error_t err;
    uint64_t v0;

    cph_store_refresh_new_token(n, shan);
    assert_int_equal(cph_store_refresh_rotate(fx->db, shan, shan, "j", NOW, TTL, &row, &err), -1);
    assert_string_equal(err.code, "invalid_grant");
    /* expired */
    login(fx->db, 1, 1, "j1", t1, family);
    cph_store_refresh_hash(t1, sha1);
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, shan, "j2", NOW + TTL, TTL, &row, &err), -1);
    assert_string_equal(err.code, "invalid_grant");
    assert_int_equal(scalar(fx->db, "SELECT used_at IS NULL FROM refresh_tokens WHERE token_sha256 = ?1", sha1), 1);
    /* the user is disabled after login: invalid_grant, the family revoked, no new version */
    v0 = version(fx->db);
    sql(fx->db, "UPDATE users SET enabled = 0 WHERE id = 1");
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, shan, "j2", NOW + 5, TTL, &row, &err), -1);
    assert_string_equal(err.code, "invalid_grant");
    assert_int_equal(scalar(fx->db, "SELECT revoked_at FROM refresh_tokens WHERE token_sha256 = ?1", sha1), NOW + 5);
    assert_int_equal(version(fx->db), v0);
    /* and leaving the system does the same */
    sql(fx->db, "UPDATE users SET enabled = 1 WHERE id = 1");
    login(fx->db, 1, 1, "j3", t1, family);
    cph_store_refresh_hash(t1, sha1);
    sql(fx->db, "DELETE FROM user_systems WHERE user_id = 1");
    assert_int_equal(cph_store_refresh_rotate(fx->db, sha1, shan, "j4", NOW + 5, TTL, &row, &err), -1);
    assert_string_equal(err.code, "invalid_grant");
}

/* ---------------------------------------------------------------- logout and pruning */

static void test_logout_revocations(void **state)
{
    fixture_t *fx = *state;
    char t1[44], family[33], sha1[65], found[33];
    cph_refresh_row_t row;
    cph_error_t err;
    uint64_t v0 = version(fx->db);

    login(fx->db, 1, 1, "acc1", t1, family);
    cph_store_refresh_hash(t1, sha1);
    assert_int_equal(cph_store_refresh_find(fx->db, sha1, &row, &err), 0);
    assert_string_equal(row.access_jti, "acc1");
    assert_int_equal(cph_store_refresh_family_of(fx->db, "acc1", found, &err), 0);
    assert_string_equal(found, family);
    assert_int_equal(cph_store_refresh_family_of(fx->db, "nope", found, &err), -1);
    assert_string_equal(err.code, "not_found");
    /* a jti outside any family (and one already expired, which needs nothing) */
    assert_int_equal(cph_store_refresh_revoke(fx->db, NULL, "lonely", NOW + 100, NOW, "logout", &err), 0);
    assert_int_equal(version(fx->db), v0 + 1);
    assert_int_equal(scalar(fx->db, "SELECT until_or_before FROM revocations WHERE subject = 'lonely'", NULL), NOW + 100);
    assert_int_equal(cph_store_refresh_revoke(fx->db, NULL, "old", NOW - 1, NOW, "logout", &err), 0);
    assert_int_equal(version(fx->db), v0 + 1);
    /* the family and its jti together, the jti not written twice */
    assert_int_equal(cph_store_refresh_revoke(fx->db, family, "acc1", NOW + 300, NOW, "logout", &err), 0);
    assert_int_equal(version(fx->db), v0 + 2);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM revocations WHERE subject = 'acc1'", NULL), 1);
    /* logging out again: nothing to do */
    assert_int_equal(cph_store_refresh_revoke(fx->db, family, "acc1", NOW + 300, NOW, "logout", &err), 0);
    assert_int_equal(version(fx->db), v0 + 2);
}

static void test_old_family_revoked_without_version(void **state)
{
    fixture_t *fx = *state;
    char t1[44], family[33];
    cph_error_t err;
    uint64_t v0 = version(fx->db);

    login(fx->db, 1, 1, "ancient", t1, family);
    /* its access token is long dead: only the refresh rows change, in a plain transaction */
    assert_int_equal(cph_store_refresh_revoke(fx->db, family, NULL, 0, NOW + 5000, "reuse", &err), 0);
    assert_int_equal(version(fx->db), v0);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL", NULL), 0);
}

static void test_prune(void **state)
{
    fixture_t *fx = *state;
    char t1[44], family[33];
    cph_error_t err;

    login(fx->db, 1, 1, "a", t1, family);
    login(fx->db, 2, 1, "b", t1, family);
    assert_int_equal(cph_store_refresh_prune(fx->db, NOW + TTL, 0, &err), 0);
    assert_int_equal(cph_store_refresh_prune(fx->db, NOW + TTL + 10, 5, &err), 2);
    assert_int_equal(scalar(fx->db, "SELECT count(*) FROM refresh_tokens", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_format),
        cmocka_unit_test_setup_teardown(test_issue_who_may, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_then_reuse_revokes_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_use_is_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_expired_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_revocations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_family_revoked_without_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
