/*
 * settings_integrations_test: the Vault and Consul flags of settings.c, with hostile values.
 *
 * - addresses: http(s)://HOST[:PORT][/] only - no user info, path, query, fragment, space, bad port or scheme.
 * - secret files: a regular small file, trimmed, one token of printable ASCII (a CR/LF inside would be a header
 *   injection), a loose mode reported; FIFOs, devices, directories, empty or huge files refused without blocking,
 *   and no message ever holds the file's content or path.
 * - the whole parse: ranges with their bounds, Vault paths and mounts, the datacenter, exactly one Vault auth, no
 *   option without its address, and no message holding a token.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "controlplane/settings.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cph-settings-integ-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/token", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Writes len bytes to the test file with mode. */
static void write_file(const char *content, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

/* ---------------------------------------------------------------- addresses and secrets */

static void test_url(void **state)
{
    static const char *const GOOD[][2] = {
        {"http://127.0.0.1:8200", "http://127.0.0.1:8200"}, {"https://vault.example.com", "https://vault.example.com"},
        {"https://vault:8200/", "https://vault:8200"},      {"http://[::1]:8500", "http://[::1]:8500"},
        {"http://[2001:db8::1]", "http://[2001:db8::1]"},   {"http://consul-1.service:65535", "http://consul-1.service:65535"}};
    static const char *const BAD[] = {"",
                                      "vault:8200",
                                      "ftp://vault",
                                      "HTTP://vault",
                                      "http://",
                                      "http:///",
                                      "http://vault:0",
                                      "http://vault:65536",
                                      "http://vault:",
                                      "http://vault:-1",
                                      "http://vault:80a",
                                      "http://user:pass@vault:8200",
                                      "http://vault:8200/v1",
                                      "http://vault:8200//",
                                      "http://vault?x=1",
                                      "http://vault#f",
                                      "http://va ult",
                                      "http://vault\r\nX-Evil: 1",
                                      "http://-vault",
                                      "http://vault_1",
                                      "http://999.1.1.1",
                                      "http://::1",
                                      "http://[::1",
                                      "http://[::1]x",
                                      "http://[zz]:80",
                                      "http://%76ault"};
    char out[CPH_INTEGRATION_URL_MAX], big[CPH_INTEGRATION_URL_MAX + 8];

    (void)state;
    for (size_t i = 0; i != sizeof(GOOD) / sizeof(GOOD[0]); i++) {
        if (cph_settings_parse_integration_url(GOOD[i][0], out) != 0)
            fail_msg("refused %s", GOOD[i][0]);
        assert_string_equal(out, GOOD[i][1]);
    }
    strcpy(out, "unchanged");
    for (size_t i = 0; i != sizeof(BAD) / sizeof(BAD[0]); i++)
        if (cph_settings_parse_integration_url(BAD[i], out) == 0)
            fail_msg("accepted \"%s\"", BAD[i]);
    assert_string_equal(out, "unchanged");
    assert_int_equal(cph_settings_parse_integration_url(NULL, out), -1);
    /* too long for the settings' buffer, though a valid name */
    strcpy(big, "http://");
    for (size_t i = strlen(big); i + 1 < sizeof(big); i++)
        big[i] = (i % 60) == 0 ? '.' : 'a';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cph_settings_parse_integration_url(big, out), -1);
}

static void test_secret_valid(void **state)
{
    char big[CPH_INTEGRATION_SECRET_MAX + 1];

    (void)state;
    assert_true(cph_settings_secret_valid("s.abcDEF123", 11));
    assert_true(cph_settings_secret_valid("hvs.CAESI-_~!", 13));
    assert_false(cph_settings_secret_valid("", 0));
    assert_false(cph_settings_secret_valid(NULL, 3));
    assert_false(cph_settings_secret_valid("a b", 3));
    assert_false(cph_settings_secret_valid("a\tb", 3));
    assert_false(cph_settings_secret_valid("ab\r\nX-Evil: 1", 14));
    assert_false(cph_settings_secret_valid("a\0b", 3));
    assert_false(cph_settings_secret_valid("caf\xc3\xa9", 5));
    assert_false(cph_settings_secret_valid("del\x7f", 4));
    memset(big, 'k', sizeof(big));
    assert_true(cph_settings_secret_valid(big, CPH_INTEGRATION_SECRET_MAX - 1));
    assert_false(cph_settings_secret_valid(big, CPH_INTEGRATION_SECRET_MAX));
}

static void test_secret_file(void **state)
{
    char out[CPH_INTEGRATION_SECRET_MAX], msg[256], big[CPH_SECRET_FILE_MAX + 10];
    int loose = -1;

    (void)state;
    write_file("  s.TOKENVALUE\r\n\n", 17, 0600);
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), 0);
    assert_string_equal(out, "s.TOKENVALUE");
    assert_int_equal(loose, 0);
    write_file("s.TOKENVALUE", 12, 0400);
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), 0);
    assert_int_equal(loose, 0);
    write_file("s.TOKENVALUE", 12, 0644);
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), 0);
    assert_int_equal(loose, 1);
    write_file("s.TOKENVALUE", 12, 0620);
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), 0);
    assert_int_equal(loose, 1);
    /* a token that does not fit the caller's buffer */
    assert_int_equal(cph_settings_read_secret_file(path, out, 12, &loose, msg, sizeof(msg)), -1);
    assert_int_equal(cph_settings_read_secret_file(path, out, 13, &loose, msg, sizeof(msg)), 0);
    memset(big, 'k', sizeof(big));
    write_file(big, CPH_INTEGRATION_SECRET_MAX - 1, 0600);
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), 0);
    assert_int_equal(strlen(out), CPH_INTEGRATION_SECRET_MAX - 1);
}

static void test_secret_file_hostile(void **state)
{
    static const struct {
        const char *content;
        size_t len;
    } BAD[] = {{"", 0},
               {" \r\n\t\n", 5},
               {"TOPSECRET1 TOPSECRET2", 21},
               {"TOPSECRET1\nTOPSECRET2", 21},
               {"TOPSECRET1\r\nX-Evil: 1", 21},
               {"TOPSECRET1\0TOPSECRET2", 21},
               {"TOPSECRET\x01", 10},
               {"TOPSECRET\xc3\xa9", 11}};
    char out[CPH_INTEGRATION_SECRET_MAX], msg[256], big[CPH_SECRET_FILE_MAX + 10];
    int loose;

    (void)state;
    for (size_t i = 0; i != sizeof(BAD) / sizeof(BAD[0]); i++) {
        write_file(BAD[i].content, BAD[i].len, 0600);
        msg[0] = '\0';
        if (cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)) == 0)
            fail_msg("accepted case %zu", i);
        assert_true(msg[0] != '\0');
        assert_null(strstr(msg, "TOPSECRET"));
        assert_null(strstr(msg, dir));
    }
    memset(big, 'k', sizeof(big));
    write_file(big, CPH_INTEGRATION_SECRET_MAX, 0600); /* one byte over the token cap */
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    write_file(big, sizeof(big), 0600); /* over the file cap */
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    /* not regular files: refused at once (a FIFO with no writer would block a plain open or read) */
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(cph_settings_read_secret_file(path, out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    assert_int_equal(cph_settings_read_secret_file(dir, out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    assert_int_equal(cph_settings_read_secret_file("/dev/zero", out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    assert_int_equal(cph_settings_read_secret_file("/nonexistent/token", out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    assert_null(strstr(msg, "nonexistent"));
    assert_int_equal(cph_settings_read_secret_file("", out, sizeof(out), &loose, msg, sizeof(msg)), -1);
    assert_int_equal(cph_settings_read_secret_file(NULL, out, sizeof(out), &loose, msg, sizeof(msg)), -1);
}

/* ---------------------------------------------------------------- the whole parse */

static cph_integration_settings_t s;
static char msg[512];

static int parse(const cph_integration_args_t *a)
{
    msg[0] = '\0';
    return cph_settings_parse_integrations(a, &s, msg, sizeof(msg));
}

/* a refused: the message is one line, names `flag` when given, and never holds a token. */
static void refused(const cph_integration_args_t *a, const char *flag)
{
    if (parse(a) == 0)
        fail_msg("accepted (expected a refusal naming %s)", flag != NULL ? flag : "-");
    assert_true(msg[0] != '\0');
    assert_null(strchr(msg, '\n'));
    if (flag != NULL && strstr(msg, flag) == NULL)
        fail_msg("\"%s\" does not name %s", msg, flag);
    assert_null(strstr(msg, "TOPSECRET"));
    cph_settings_integrations_wipe(&s);
}

static void test_disabled(void **state)
{
    cph_integration_args_t a = {0};

    (void)state;
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.vault_addr, "");
    assert_string_equal(s.consul_addr, "");
    assert_string_equal(s.vault_kv_mount, "secret");
    assert_int_equal(s.vault_poll_s, 30);
    assert_int_equal(s.vault_timeout_ms, 5000);
    assert_int_equal(s.consul_wait_s, 60);
    /* an option without its address is a mistake, not something to ignore */
    refused(&(cph_integration_args_t){.vault_token = "TOPSECRET"}, "CEPHALO_VAULT_TOKEN");
    refused(&(cph_integration_args_t){.vault_token_file = path}, "--vault-addr");
    refused(&(cph_integration_args_t){.vault_poll_s = "10"}, "--vault-poll-s");
    refused(&(cph_integration_args_t){.vault_signing_path = "jwt"}, "--vault-signing-path");
    refused(&(cph_integration_args_t){.consul_token = "TOPSECRET"}, "--consul-addr");
    refused(&(cph_integration_args_t){.consul_datacenter = "dc1"}, "--consul-datacenter");
}

static void test_vault(void **state)
{
    cph_integration_args_t a = {.vault_addr = "https://vault:8200/",
                                .vault_token = "s.TOPSECRET",
                                .vault_kv_mount = "kv/apps",
                                .vault_poll_s = "3600",
                                .vault_timeout_ms = "100",
                                .vault_signing_path = "cephalo/jwt"};

    (void)state;
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.vault_addr, "https://vault:8200");
    assert_string_equal(s.vault_token, "s.TOPSECRET");
    assert_string_equal(s.vault_kv_mount, "kv/apps");
    assert_string_equal(s.vault_signing_path, "cephalo/jwt");
    assert_int_equal(s.vault_poll_s, 3600);
    assert_int_equal(s.vault_timeout_ms, 100);
    cph_settings_integrations_wipe(&s);
    assert_string_equal(s.vault_token, "");

    write_file("ROLE-SECRET-ID\n", 15, 0600);
    a = (cph_integration_args_t){.vault_addr = "http://127.0.0.1:8200", .vault_role_id = "role-1", .vault_secret_id_file = path};
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.vault_role_id, "role-1");
    assert_string_equal(s.vault_secret_id, "ROLE-SECRET-ID");
    assert_string_equal(s.vault_token, "");

    write_file("s.FROMFILE", 10, 0644); /* loose: accepted with a warning */
    a = (cph_integration_args_t){.vault_addr = "http://127.0.0.1:8200", .vault_token_file = path};
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.vault_token, "s.FROMFILE");
    cph_settings_integrations_wipe(&s);
}

static void test_vault_hostile(void **state)
{
    static const char *const POLL[] = {"0", "3601", "-1", "+5", " 5", "5 ", "5s", "", "1e3", "0x10", "99999999999"};
    static const char *const TIMEOUT[] = {"99", "60001", "-100", "5000ms", ""};
    static const char *const PATHS[] = {"", "/jwt", "jwt/", "a//b", "..", "a/../b", "./a", "a b", "a\nb", "a%2fb", "\xc3\xa9"};
    const cph_integration_args_t base = {.vault_addr = "http://127.0.0.1:8200", .vault_token = "TOPSECRET"};
    cph_integration_args_t a;
    char big[300];

    (void)state;
    for (size_t i = 0; i != sizeof(POLL) / sizeof(POLL[0]); i++)
        a = base, a.vault_poll_s = POLL[i], refused(&a, "--vault-poll-s");
    for (size_t i = 0; i != sizeof(TIMEOUT) / sizeof(TIMEOUT[0]); i++)
        a = base, a.vault_timeout_ms = TIMEOUT[i], refused(&a, "--vault-timeout-ms");
    for (size_t i = 0; i != sizeof(PATHS) / sizeof(PATHS[0]); i++) {
        a = base, a.vault_signing_path = PATHS[i], refused(&a, "--vault-signing-path");
        a = base, a.vault_kv_mount = PATHS[i], refused(&a, "--vault-kv-mount");
    }
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[129] = '\0'; /* 129 bytes: one over the mount's cap */
    a = base, a.vault_kv_mount = big, refused(&a, "--vault-kv-mount");
    big[128] = '\0';
    a = base, a.vault_kv_mount = big;
    assert_int_equal(parse(&a), 0);
    memset(big, 'p', sizeof(big) - 1);
    big[257] = '\0';
    a = base, a.vault_signing_path = big, refused(&a, "--vault-signing-path");
    a = base, a.vault_addr = "http://TOPSECRET@vault", refused(&a, "--vault-addr");
    a = base, a.vault_addr = "", refused(&a, "--vault-addr");
    /* the token itself */
    a = base, a.vault_token = "TOPSECRET\r\nX-Evil: 1", refused(&a, "CEPHALO_VAULT_TOKEN");
    a = base, a.vault_token = "TOPSECRET with space", refused(&a, "CEPHALO_VAULT_TOKEN");
    a = base, a.vault_role_id = "TOPSECRET\n", a.vault_token = NULL, a.vault_secret_id_file = path;
    write_file("x", 1, 0600);
    refused(&a, "--vault-role-id");
    /* exactly one auth */
    a = base, a.vault_token = NULL, refused(&a, "--vault-token-file");
    a = base, a.vault_token_file = path, refused(&a, "CEPHALO_VAULT_TOKEN");
    a = base, a.vault_role_id = "role", a.vault_secret_id_file = path, refused(&a, "AppRole");
    a = base, a.vault_token = NULL, a.vault_role_id = "role", refused(&a, "--vault-secret-id-file");
    a = base, a.vault_token = NULL, a.vault_secret_id_file = path, refused(&a, "--vault-role-id");
    write_file("TOPSECRET1 TOPSECRET2", 21, 0600);
    a = base, a.vault_token = NULL, a.vault_token_file = path, refused(&a, "--vault-token-file");
    a = base, a.vault_token = NULL, a.vault_token_file = "/nonexistent", refused(&a, "--vault-token-file");
}

static void test_consul(void **state)
{
    static const char *const WAIT[] = {"0", "601", "-1", "60s", ""};
    static const char *const DC[] = {"", "dc 1", "dc/1", "dc\n1", "dc?x=1", "dc&token=x", "\xc3\xa9"};
    const cph_integration_args_t base = {.consul_addr = "http://127.0.0.1:8500"};
    cph_integration_args_t a = {.consul_addr = "https://consul:8501", .consul_wait_s = "600", .consul_datacenter = "eu-west_1.a"};
    char big[200];

    (void)state;
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.consul_addr, "https://consul:8501");
    assert_int_equal(s.consul_wait_s, 600);
    assert_string_equal(s.consul_datacenter, "eu-west_1.a");
    assert_string_equal(s.consul_token, "");
    assert_string_equal(s.vault_addr, ""); /* Consul alone */
    write_file("CONSUL-ACL\n", 11, 0600);
    a = base, a.consul_token_file = path;
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.consul_token, "CONSUL-ACL");
    a = base, a.consul_token = "CONSUL-ENV";
    assert_int_equal(parse(&a), 0);
    assert_string_equal(s.consul_token, "CONSUL-ENV");
    cph_settings_integrations_wipe(&s);

    for (size_t i = 0; i != sizeof(WAIT) / sizeof(WAIT[0]); i++)
        a = base, a.consul_wait_s = WAIT[i], refused(&a, "--consul-wait-s");
    for (size_t i = 0; i != sizeof(DC) / sizeof(DC[0]); i++)
        a = base, a.consul_datacenter = DC[i], refused(&a, "--consul-datacenter");
    memset(big, 'd', sizeof(big) - 1);
    big[129] = '\0';
    a = base, a.consul_datacenter = big, refused(&a, "--consul-datacenter");
    a = base, a.consul_addr = "consul:8500", refused(&a, "--consul-addr");
    a = base, a.consul_token = "TOPSECRET\r\nX: y", refused(&a, "CEPHALO_CONSUL_TOKEN");
    a = base, a.consul_token = "TOPSECRET", a.consul_token_file = path, refused(&a, "--consul-token-file");
    write_file("", 0, 0600);
    a = base, a.consul_token_file = path, refused(&a, "--consul-token-file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),           cmocka_unit_test(test_secret_valid),
        cmocka_unit_test(test_secret_file),   cmocka_unit_test(test_secret_file_hostile),
        cmocka_unit_test(test_disabled),      cmocka_unit_test(test_vault),
        cmocka_unit_test(test_vault_hostile), cmocka_unit_test(test_consul),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
