/*
 * admin_auth_test: the admin principals on a real migrated database - the bootstrap owner, password login (wrong
 * password, unknown or hostile names, disabled accounts, the failure limit), sessions (resolution, CSRF, idle and
 * absolute expiry, forged cookies), role-carrying tokens (scope intersection with their account, expiry,
 * revocation), the Origin rule, the schema's CHECKs, and that no secret reaches the audit table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "controlplane/admin_auth.h"
#include "controlplane/audit.h"
#include "db_fixture.h"

#define PW "correct-horse-battery"

static int setup(void **state)
{
    cph_admin_login_reset();
    return db_fixture_setup(state, "adminauth");
}

static int64_t count(cph_db_t *db, const char *q)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    cph_db_lock(db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(db), q, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cph_db_unlock(db);
    return n;
}

static void bootstrap(cph_db_t *db, const char *user, const char *pw)
{
    char gen[65];
    cph_error_t err = {0};

    assert_int_equal(cph_admin_bootstrap(db, user, pw, gen, &err), 0);
    assert_string_equal(gen, "");
}

static cph_admin_login_t login(cph_db_t *db, const char *name, const char *pw, int64_t now, char cookie[65],
                               cph_admin_principal_t *p)
{
    int64_t wait = 0;
    cph_admin_login_t r = cph_admin_login(db, name, pw, "192.0.2.1", now, cookie, p, &wait);

    assert_true(r == CPH_ADMIN_LOGIN_LIMITED ? wait > 0 : wait == 0);
    return r;
}

static void test_names_and_origin(void **state)
{
    char long_name[70];

    (void)state;
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_true(cph_admin_name_valid("alice"));
    assert_true(cph_admin_name_valid("a.b_c-d@example.org"));
    assert_true(cph_admin_name_valid(long_name + 1));
    assert_false(cph_admin_name_valid(long_name));
    assert_false(cph_admin_name_valid(""));
    assert_false(cph_admin_name_valid(NULL));
    assert_false(cph_admin_name_valid("a'; DROP TABLE admin_accounts; --"));
    assert_false(cph_admin_name_valid("<script>"));
    assert_false(cph_admin_name_valid("a b"));
    assert_true(cph_admin_origin_ok(NULL, "cp:8001"));
    assert_true(cph_admin_origin_ok("http://cp:8001", "cp:8001"));
    assert_true(cph_admin_origin_ok("https://cp:8001", "cp:8001"));
    assert_false(cph_admin_origin_ok("http://evil:8001", "cp:8001"));
    assert_false(cph_admin_origin_ok("http://cp:8001.evil", "cp:8001"));
    assert_false(cph_admin_origin_ok("null", "cp:8001"));
    assert_false(cph_admin_origin_ok("http://cp:8001", NULL));
    assert_false(cph_admin_origin_ok("ftp://cp:8001", "cp:8001"));
}

static void test_schema_checks(void **state)
{
    fixture_t *fx = *state;

    assert_true(sql_refused(fx->db, "INSERT INTO admin_accounts (name, password_hash, role, created_at, updated_at) "
                                    "VALUES ('x', 'h', 'root', 'n', 'n')"));
    assert_true(sql_refused(fx->db, "INSERT INTO admin_accounts (name, password_hash, role, created_at, updated_at) "
                                    "VALUES ('a b', 'h', 'owner', 'n', 'n')"));
    assert_true(sql_refused(fx->db, "INSERT INTO admin_accounts (name, password_hash, role, created_at, updated_at) "
                                    "VALUES ('', 'h', 'owner', 'n', 'n')"));
    /* the bootstrap token keeps working: an old-style row is an owner with no account */
    sql(fx->db, "INSERT INTO admin_tokens (name, sha256, created_at) VALUES ('old', "
                "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'now')");
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_tokens WHERE role = 'owner' AND account_id IS NULL"), 1);
}

static void test_bootstrap(void **state)
{
    fixture_t *fx = *state;
    char gen[65], cookie[65];
    cph_admin_principal_t p;
    cph_error_t err = {0};

    assert_int_equal(cph_admin_bootstrap(fx->db, "admin", NULL, gen, &err), 0);
    assert_int_equal(strlen(gen), 24);
    assert_int_equal(login(fx->db, "admin", gen, time(NULL), cookie, &p), CPH_ADMIN_LOGIN_OK);
    assert_int_equal(p.role, CPH_ADMIN_OWNER);
    /* an account exists: nothing generated again */
    assert_int_equal(cph_admin_bootstrap(fx->db, "admin", NULL, gen, &err), 0);
    assert_string_equal(gen, "");
    /* a too short CEPHALO_ADMIN_PASSWORD, a bad user name */
    assert_int_equal(cph_admin_bootstrap(fx->db, "admin", "short", gen, &err), -1);
    assert_int_equal(cph_admin_bootstrap(fx->db, "bad name", PW, gen, &err), -1);
    /* a password sets it (and ends the old session), the same password again changes nothing */
    bootstrap(fx->db, "admin", PW);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_sessions"), 0);
    assert_int_equal(login(fx->db, "admin", PW, time(NULL), cookie, &p), CPH_ADMIN_LOGIN_OK);
    bootstrap(fx->db, "admin", PW);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_sessions"), 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_accounts"), 1);
}

static void test_login_and_session(void **state)
{
    fixture_t *fx = *state;
    char cookie[65], forged[65];
    cph_admin_principal_t p, q;
    int64_t now = time(NULL);

    bootstrap(fx->db, "root", PW);
    assert_int_equal(login(fx->db, "root", PW, now, cookie, &p), CPH_ADMIN_LOGIN_OK);
    assert_int_equal(strlen(cookie), 64);
    assert_int_equal(strlen(p.csrf), 64);
    assert_string_equal(p.actor, "account:root");
    assert_true(p.via_session);
    assert_int_equal(cph_admin_auth_session(fx->db, cookie, now + 5, &q), 1);
    assert_int_equal(q.session_id, p.session_id);
    assert_string_equal(q.csrf, p.csrf);
    assert_int_equal(q.role, CPH_ADMIN_OWNER);
    /* CSRF: the session's token only */
    assert_true(cph_admin_csrf_ok(&q, p.csrf));
    forged[0] = '\0';
    assert_int_equal(cph_admin_random_hex(forged), 0);
    assert_false(cph_admin_csrf_ok(&q, forged));
    assert_false(cph_admin_csrf_ok(&q, NULL));
    assert_false(cph_admin_csrf_ok(&q, ""));
    /* forged and malformed cookies */
    assert_int_equal(cph_admin_auth_session(fx->db, forged, now, &q), 0);
    assert_int_equal(cph_admin_auth_session(fx->db, "' OR 1=1 --", now, &q), 0);
    assert_int_equal(cph_admin_auth_session(fx->db, NULL, now, &q), 0);
    cookie[0] = cookie[0] == 'a' ? 'b' : 'a';
    assert_int_equal(cph_admin_auth_session(fx->db, cookie, now, &q), 0);
    /* the login is audited without the cookie or the password */
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE action = 'login' AND actor = 'account:root'"), 1);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE instr(coalesce(after, ''), '" PW "') > 0"), 0);
    assert_int_equal(count(fx->db, "SELECT last_login_at IS NOT NULL FROM admin_accounts WHERE name = 'root'"), 1);
    /* logout ends it */
    assert_int_equal(cph_admin_logout(fx->db, &p), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_sessions"), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE action = 'logout'"), 1);
}

static void test_session_expiry(void **state)
{
    fixture_t *fx = *state;
    char c1[65], c2[65];
    cph_admin_principal_t p;
    int64_t now = time(NULL);

    bootstrap(fx->db, "root", PW);
    assert_int_equal(login(fx->db, "root", PW, now, c1, &p), CPH_ADMIN_LOGIN_OK);
    assert_int_equal(login(fx->db, "root", PW, now, c2, &p), CPH_ADMIN_LOGIN_OK);
    /* idle: a use just before the idle limit keeps it alive, a gap of the limit ends it (and deletes the row) */
    assert_int_equal(cph_admin_auth_session(fx->db, c1, now + CPH_ADMIN_SESSION_IDLE_S - 1, &p), 1);
    assert_int_equal(cph_admin_auth_session(fx->db, c2, now + CPH_ADMIN_SESSION_IDLE_S, &p), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_sessions"), 1);
    /* absolute: even a session in constant use ends after the TTL */
    for (int64_t t = now + CPH_ADMIN_SESSION_IDLE_S; t < now + CPH_ADMIN_SESSION_TTL_S; t += CPH_ADMIN_SESSION_IDLE_S - 60)
        assert_int_equal(cph_admin_auth_session(fx->db, c1, t, &p), 1);
    assert_int_equal(cph_admin_auth_session(fx->db, c1, now + CPH_ADMIN_SESSION_TTL_S, &p), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_sessions"), 0);
}

static void test_login_failures(void **state)
{
    fixture_t *fx = *state;
    char cookie[65], big[2000];
    cph_admin_principal_t p;
    int64_t now = time(NULL);

    bootstrap(fx->db, "root", PW);
    assert_int_equal(login(fx->db, "nobody", PW, now, cookie, &p), CPH_ADMIN_LOGIN_INVALID);
    assert_int_equal(login(fx->db, "root'--", PW, now, cookie, &p), CPH_ADMIN_LOGIN_INVALID);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(login(fx->db, big, PW, now, cookie, &p), CPH_ADMIN_LOGIN_INVALID);
    assert_int_equal(login(fx->db, "root", "", now, cookie, &p), CPH_ADMIN_LOGIN_INVALID);
    /* a disabled account with the right password: the same answer */
    sql(fx->db, "UPDATE admin_accounts SET disabled = 1 WHERE name = 'root'");
    assert_int_equal(login(fx->db, "root", PW, now, cookie, &p), CPH_ADMIN_LOGIN_INVALID);
    sql(fx->db, "UPDATE admin_accounts SET disabled = 0 WHERE name = 'root'");
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_sessions"), 0);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE action = 'login_failed' AND actor = 'anonymous'"), 5);
    /* a hostile name is not stored in the audit row */
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE instr(after, 'root''--') > 0"), 0);
    /* root has two failures (disabled, empty password); three more reach the per-name limit of 5 */
    for (int i = 0; i < 3; ++i)
        assert_int_equal(login(fx->db, "Root", "wrong-password-123", now, cookie, &p), CPH_ADMIN_LOGIN_INVALID);
    assert_int_equal(login(fx->db, "root", PW, now, cookie, &p), CPH_ADMIN_LOGIN_LIMITED);
    /* after the window the right password works again */
    assert_int_equal(login(fx->db, "root", PW, now + 16 * 60, cookie, &p), CPH_ADMIN_LOGIN_OK);
}

/* Adds a token row (its sha256 of token) with role, account (0: none) and expiry (0: none). Returns its id. */
static int64_t add_token(cph_db_t *db, const char *name, const char *token, const char *role, int64_t account, int64_t expires)
{
    char sha[65], q[512];

    cph_admin_sha256_hex(token, strlen(token), sha);
    snprintf(q, sizeof(q),
             "INSERT INTO admin_tokens (name, sha256, created_at, role, account_id, expires_at) "
             "VALUES ('%s', '%s', 'now', '%s', nullif(%lld, 0), nullif(%lld, 0))",
             name, sha, role, (long long)account, (long long)expires);
    sql(db, q);
    return count(db, "SELECT max(id) FROM admin_tokens");
}

static void test_tokens(void **state)
{
    fixture_t *fx = *state;
    cph_admin_principal_t p;
    int64_t now = time(NULL), acc, t1, t2;

    sql(fx->db, "INSERT INTO systems (id, code, name, created_at, updated_at) VALUES (1, 'a', 'A', 'n', 'n'), "
                "(2, 'b', 'B', 'n', 'n'), (3, 'c', 'C', 'n', 'n')");
    sql(fx->db,
        "INSERT INTO admin_accounts (name, password_hash, role, created_at, updated_at) VALUES ('ed', 'x', 'editor', 'n', 'n')");
    acc = count(fx->db, "SELECT id FROM admin_accounts WHERE name = 'ed'");
    sql(fx->db, "INSERT INTO admin_account_systems VALUES (1, 1), (1, 2)");
    /* an owner-role token of an editor account is an editor, scoped to what both hold */
    t1 = add_token(fx->db, "t1", "token-one-0123456789", "owner", acc, 0);
    sql(fx->db, "INSERT INTO admin_token_systems SELECT id, 2 FROM admin_tokens WHERE name = 't1'");
    sql(fx->db, "INSERT INTO admin_token_systems SELECT id, 3 FROM admin_tokens WHERE name = 't1'");
    assert_int_equal(cph_admin_auth_token(fx->db, "token-one-0123456789", now, &p), 1);
    assert_int_equal(p.role, CPH_ADMIN_EDITOR);
    assert_int_equal(p.token_id, t1);
    assert_int_equal(p.account_id, acc);
    assert_int_equal(p.nsystems, 1);
    assert_int_equal(p.systems[0], 2);
    assert_string_equal(p.actor, "token:t1");
    assert_string_equal(p.name, "ed");
    assert_false(p.via_session);
    assert_true(cph_admin_in_scope(&p, 2));
    assert_false(cph_admin_in_scope(&p, 3));
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_tokens WHERE last_used_at IS NOT NULL"), 1);
    /* wrong, empty, oversize tokens */
    assert_int_equal(cph_admin_auth_token(fx->db, "token-one-012345678", now, &p), 0);
    assert_int_equal(cph_admin_auth_token(fx->db, "", now, &p), 0);
    /* expiry */
    t2 = add_token(fx->db, "t2", "token-two-0123456789", "viewer", 0, now + 10);
    assert_int_equal(cph_admin_auth_token(fx->db, "token-two-0123456789", now + 9, &p), 1);
    assert_int_equal(p.token_id, t2);
    assert_int_equal(p.role, CPH_ADMIN_VIEWER);
    assert_int_equal(cph_admin_auth_token(fx->db, "token-two-0123456789", now + 10, &p), 0);
    /* a disabled account's token does not work; revoking the account deletes its tokens */
    sql(fx->db, "UPDATE admin_accounts SET disabled = 1 WHERE name = 'ed'");
    assert_int_equal(cph_admin_auth_token(fx->db, "token-one-0123456789", now, &p), 0);
    cph_db_lock(fx->db);
    assert_int_equal(cph_admin_revoke_account(fx->db, acc), 0);
    cph_db_unlock(fx->db);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_tokens"), 1);
    /* deleting a system drops it from every scope */
    sql(fx->db, "DELETE FROM systems WHERE id = 2");
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_account_systems"), 1);
}

static void test_bootstrap_token(void **state)
{
    fixture_t *fx = *state;
    cph_admin_principal_t p;
    cph_error_t err = {0};
    char gen[65];

    /* a fresh database: one generated token, printed by main.c, working as an owner */
    assert_int_equal(cph_admin_bootstrap_token(fx->db, NULL, gen, &err), 0);
    assert_int_equal(strlen(gen), 64);
    assert_int_equal(cph_admin_auth_token(fx->db, gen, time(NULL), &p), 1);
    assert_int_equal(p.role, CPH_ADMIN_OWNER);
    assert_int_equal(cph_admin_bootstrap_token(fx->db, NULL, gen, &err), 0);
    assert_string_equal(gen, "");
    /* CEPHALO_ADMIN_TOKEN replaces it, and a row named "admin" that became a viewer token is an owner again */
    sql(fx->db, "UPDATE admin_tokens SET role = 'viewer', expires_at = 1 WHERE name = 'admin'");
    assert_int_equal(cph_admin_bootstrap_token(fx->db, "env-token-0123456789", gen, &err), 0);
    assert_string_equal(gen, "");
    assert_int_equal(cph_admin_auth_token(fx->db, "env-token-0123456789", time(NULL), &p), 1);
    assert_int_equal(p.role, CPH_ADMIN_OWNER);
    assert_string_equal(p.actor, "token:admin");
    assert_int_equal(count(fx->db, "SELECT count(*) FROM admin_tokens"), 1);
}

static void test_audit_version(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err = {0};
    json_t *after = json_pack("{s:s}", "name", "x");

    cph_db_lock(fx->db);
    assert_int_equal(cph_admin_audit(fx->db, "account:x", "create", "admin_account", 7, NULL, after, &err), 0);
    cph_db_unlock(fx->db);
    json_decref(after);
    assert_int_equal(count(fx->db, "SELECT count(*) FROM audit WHERE entity_type = 'admin_account' AND entity_id = '7' AND "
                                   "version = (SELECT generation FROM meta WHERE id = 1)"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_origin),
        cmocka_unit_test_setup_teardown(test_schema_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_and_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_version, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
