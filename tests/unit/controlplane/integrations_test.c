/*
 * integrations_test: the integrations' state table (integrations.c), its JSON and Prometheus views, the ?prefix=
 * check of GET /api/v1/integrations/vault/paths and the integrations resource (api_integrations.c), and the whole
 * GET /metrics body (metrics.c) read back with a strict little parser of the text format.
 *
 * - state machine: disabled -> starting (enable) -> ok / degraded; `since` moves only when the state does;
 *   errors_total counts per reason kind; a reason is "<kind>: <text>", cut and single-line whatever the text holds.
 * - details: merged into the JSON but never over our own members; a non-object is dropped (no leak, no crash).
 * - metrics: no sample of a disabled integration; every reason kind of an enabled one; the token expiry only when known.
 * - hostile prefixes: "..", "//", a leading '/', control bytes, non-ASCII, 257 bytes are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "controlplane/api_integrations.h"
#include "controlplane/integrations.h"
#include "controlplane/metrics.h"
#include "db_fixture.h"

static int reset(void **state)
{
    cph_integration_settings_t s;

    (void)state;
    cph_integrations_reset();
    cph_integration_settings_defaults(&s);
    cph_integration_settings_set(&s);
    return 0;
}

static int db_setup(void **state)
{
    reset(state);
    return db_fixture_setup(state, "integ");
}

static json_t *one(const char *which)
{
    json_t *all = cph_integrations_json(), *o = json_incref(json_object_get(all, which));

    json_decref(all);
    assert_non_null(o);
    return o;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t num(const json_t *o, const char *key)
{
    assert_true(json_is_integer(json_object_get(o, key)));
    return json_integer_value(json_object_get(o, key));
}

/* ---------------------------------------------------------------- state */

static void test_defaults(void **state)
{
    json_t *all = cph_integrations_json(), *v = json_object_get(all, "vault"), *c = json_object_get(all, "consul");

    (void)state;
    assert_int_equal(json_object_size(all), 2);
    assert_string_equal(str(v, "state"), "disabled");
    assert_string_equal(str(c, "state"), "disabled");
    assert_true(json_is_null(json_object_get(v, "reason")));
    assert_true(json_is_null(json_object_get(v, "last_success")));
    assert_non_null(str(v, "since"));
    assert_int_equal(strlen(str(v, "since")), 20); /* 2026-01-01T00:00:00Z */
    assert_int_equal(num(v, "errors_total"), 0);
    assert_int_equal(num(c, "syncs_total"), 0);
    json_decref(all);
}

static void test_transitions(void **state)
{
    json_t *v;
    char since[32];

    (void)state;
    cph_integration_enable(CPH_INTEGRATION_VAULT);
    v = one("vault");
    assert_string_equal(str(v, "state"), "starting");
    json_decref(v);
    v = one("consul");
    assert_string_equal(str(v, "state"), "disabled"); /* the other one is untouched */
    json_decref(v);

    cph_integration_fail(CPH_INTEGRATION_VAULT, CPH_REASON_SEALED, "Vault is sealed");
    v = one("vault");
    assert_string_equal(str(v, "state"), "degraded");
    assert_string_equal(str(v, "reason"), "sealed: Vault is sealed");
    assert_int_equal(num(v, "errors_total"), 1);
    assert_int_equal(num(v, "syncs_total"), 1);
    assert_true(json_is_null(json_object_get(v, "last_success")));
    snprintf(since, sizeof(since), "%s", str(v, "since"));
    json_decref(v);

    sleep(1); /* a second failure in the same state must keep `since`, however late it comes */
    cph_integration_fail(CPH_INTEGRATION_VAULT, CPH_REASON_TIMEOUT, "no answer in 5000 ms");
    v = one("vault");
    assert_string_equal(str(v, "since"), since);
    assert_string_equal(str(v, "reason"), "timeout: no answer in 5000 ms");
    assert_int_equal(num(v, "errors_total"), 2);
    json_decref(v);

    cph_integration_ok(CPH_INTEGRATION_VAULT);
    v = one("vault");
    assert_string_equal(str(v, "state"), "ok");
    assert_true(json_is_null(json_object_get(v, "reason")));
    assert_string_not_equal(str(v, "since"), since);
    assert_non_null(str(v, "last_success"));
    assert_int_equal(num(v, "errors_total"), 2); /* a counter: never goes back */
    assert_int_equal(num(v, "syncs_total"), 3);
    json_decref(v);

    cph_integration_enable(CPH_INTEGRATION_VAULT); /* enabling again does not hide a state */
    v = one("vault");
    assert_string_equal(str(v, "state"), "ok");
    json_decref(v);
    cph_integrations_reset();
    v = one("vault");
    assert_string_equal(str(v, "state"), "disabled");
    assert_int_equal(num(v, "syncs_total"), 0);
    json_decref(v);
}

static void test_hostile_reason(void **state)
{
    char text[600];
    const char *r;
    json_t *c;

    (void)state;
    cph_integration_enable(CPH_INTEGRATION_CONSUL);
    cph_integration_fail(CPH_INTEGRATION_CONSUL, CPH_REASON_FORBIDDEN, "ACL not found\r\n{\"level\":\"fake\"}\x1b[31m\x7f");
    c = one("consul");
    r = str(c, "reason");
    assert_non_null(r);
    assert_string_equal(r, "forbidden: ACL not found  {\"level\":\"fake\"} [31m ");
    json_decref(c);

    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    cph_integration_fail(CPH_INTEGRATION_CONSUL, (cph_integration_reason_t)99, text); /* unknown kind: bad_response */
    c = one("consul");
    r = str(c, "reason");
    assert_int_equal(strncmp(r, "bad_response: xxx", 17), 0);
    assert_int_equal(strlen(r), strlen("bad_response: ") + 200);
    json_decref(c);

    cph_integration_fail(CPH_INTEGRATION_CONSUL, CPH_REASON_UNREACHABLE, NULL);
    c = one("consul");
    assert_string_equal(str(c, "reason"), "unreachable: ");
    json_decref(c);
    cph_integration_fail((cph_integration_t)7, CPH_REASON_UNREACHABLE, "no such integration"); /* ignored */
    assert_string_equal(cph_integration_reason_name(CPH_REASON_SERVER_ERROR), "server_error");
    assert_string_equal(cph_integration_reason_name((cph_integration_reason_t)-1), "unknown");
}

static void test_details(void **state)
{
    json_t *v;

    (void)state;
    cph_integration_enable(CPH_INTEGRATION_VAULT);
    cph_integration_set_details(CPH_INTEGRATION_VAULT, json_pack("{s:s, s:b, s:s, s:i}", "auth", "approle", "token_renewable", 1,
                                                                 "state", "ok", "errors_total", 0));
    cph_integration_fail(CPH_INTEGRATION_VAULT, CPH_REASON_SEALED, "Vault is sealed");
    v = one("vault");
    assert_string_equal(str(v, "auth"), "approle");
    assert_true(json_is_true(json_object_get(v, "token_renewable")));
    assert_string_equal(str(v, "state"), "degraded"); /* details cannot replace our own members */
    assert_int_equal(num(v, "errors_total"), 1);
    json_decref(v);

    cph_integration_set_details(CPH_INTEGRATION_VAULT, json_string("not an object")); /* dropped, not leaked */
    v = one("vault");
    assert_null(json_object_get(v, "auth"));
    json_decref(v);
    cph_integration_set_details(CPH_INTEGRATION_VAULT, json_pack("{s:[]}", "secrets"));
    cph_integration_set_details(CPH_INTEGRATION_VAULT, NULL);
    v = one("vault");
    assert_null(json_object_get(v, "secrets"));
    json_decref(v);
    cph_integration_set_details((cph_integration_t)5, json_object()); /* no such integration: dropped */
}

/* ---------------------------------------------------------------- metrics */

/*
 * A strict reader of the text format 0.0.4 as we write it: every family is "# HELP" then "# TYPE" (counter|gauge),
 * then its samples `name{label="value",...} integer` whose name is the family's. Returns the number of samples and
 * fails the test on anything else.
 */
static int strict_parse(const char *text)
{
    char family[128] = "", line[512];
    int samples = 0, expect_type = 0;

    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        assert_true(p[n] == '\n' && n < sizeof(line)); /* every line ends with \n */
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + 1;
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_false(expect_type);
            assert_int_equal(sscanf(line + 7, "%127[a-z_]", family), 1);
            expect_type = 1;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[16];
            assert_true(expect_type);
            assert_int_equal(sscanf(line + 7, "%127[a-z_] %15s", name, type), 2);
            assert_string_equal(name, family);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
            expect_type = 0;
        } else {
            size_t fl = strlen(family), i;
            assert_false(expect_type);
            assert_true(fl != 0 && strncmp(line, family, fl) == 0 && (line[fl] == ' ' || line[fl] == '{'));
            i = fl;
            if (line[i] == '{') {
                for (++i; line[i] != '}'; i += line[i] == ',') {
                    size_t k = strspn(line + i, "abcdefghijklmnopqrstuvwxyz_");
                    assert_true(k != 0 && line[i + k] == '=' && line[i + k + 1] == '"');
                    i += k + 2;
                    i += strcspn(line + i, "\"\\\n"); /* our label values need no escapes */
                    assert_int_equal(line[i], '"');
                    ++i;
                    assert_true(line[i] == ',' || line[i] == '}');
                }
                ++i;
            }
            assert_int_equal(line[i], ' ');
            assert_true(line[i + 1] != '\0' && strspn(line + i + 1, "0123456789") == strlen(line + i + 1));
            samples++;
        }
    }
    assert_false(expect_type);
    return samples;
}

static char *metrics_text(void)
{
    cph_metrics_buf_t b = {0};

    cph_integrations_metrics(&b);
    assert_non_null(b.buf);
    assert_int_equal(strlen(b.buf), b.len);
    return b.buf;
}

static void test_metrics_disabled(void **state)
{
    char *t = metrics_text();

    (void)state;
    assert_int_equal(strict_parse(t), 0); /* families announced, no sample */
    assert_non_null(strstr(t, "# TYPE cephalo_cp_integration_up gauge\n"));
    assert_non_null(strstr(t, "# TYPE cephalo_cp_integration_errors_total counter\n"));
    free(t);
}

static void test_metrics_enabled(void **state)
{
    char *t;

    (void)state;
    cph_integration_enable(CPH_INTEGRATION_VAULT);
    cph_integration_fail(CPH_INTEGRATION_VAULT, CPH_REASON_SEALED, "sealed");
    cph_integration_fail(CPH_INTEGRATION_VAULT, CPH_REASON_SEALED, "sealed");
    cph_integration_ok(CPH_INTEGRATION_VAULT);
    t = metrics_text();
    assert_int_equal(strict_parse(t), 1 + CPH_REASON_COUNT + 1); /* up, errors by kind, syncs; no expiry yet */
    assert_non_null(strstr(t, "\ncephalo_cp_integration_up{integration=\"vault\"} 1\n"));
    assert_non_null(strstr(t, "\ncephalo_cp_integration_errors_total{integration=\"vault\",reason=\"sealed\"} 2\n"));
    assert_non_null(strstr(t, "\ncephalo_cp_integration_errors_total{integration=\"vault\",reason=\"timeout\"} 0\n"));
    assert_non_null(strstr(t, "\ncephalo_cp_integration_syncs_total{integration=\"vault\"} 3\n"));
    assert_null(strstr(t, "consul\""));
    assert_null(strstr(t, "\ncephalo_cp_vault_token_expiry_seconds "));
    free(t);

    cph_integration_set_token_expiry(CPH_INTEGRATION_VAULT, 1900000000);
    cph_integration_enable(CPH_INTEGRATION_CONSUL);
    t = metrics_text();
    assert_int_equal(strict_parse(t), 2 * (1 + CPH_REASON_COUNT + 1) + 1);
    assert_non_null(strstr(t, "\ncephalo_cp_vault_token_expiry_seconds 1900000000\n"));
    assert_non_null(strstr(t, "\ncephalo_cp_integration_up{integration=\"consul\"} 0\n")); /* starting */
    free(t);
    cph_integration_set_token_expiry(CPH_INTEGRATION_VAULT, -5); /* nonsense: unknown */
    t = metrics_text();
    assert_null(strstr(t, "\ncephalo_cp_vault_token_expiry_seconds "));
    free(t);
}

static void test_metrics_render(void **state)
{
    fixture_t *fx = *state;
    char *t;
    size_t len = 0;

    cph_integrations_reset();
    t = cph_metrics_render(fx->db, NULL, &len);
    assert_int_equal(strlen(t), len);
    /* the whole body also has a histogram and decimal values, which strict_parse does not read: metrics_test.c and
     * tests/e2e/35_cp_metrics.py parse it strictly; here only the integrations' part */
    assert_non_null(strstr(t, "\ncephalo_cp_snapshot_version 0\n")); /* a fresh database has no snapshot yet */
    assert_non_null(strstr(t, "\ncephalo_cp_dataplanes_connected 0\n"));
    free(t);
}

static void test_metrics_buf_grows(void **state)
{
    cph_metrics_buf_t b = {0};

    (void)state;
    for (int i = 0; i != 2000; i++)
        cph_metrics_printf(&b, "line %d %s\n", i, "0123456789012345678901234567890123456789");
    assert_int_equal(strlen(b.buf), b.len);
    assert_non_null(strstr(b.buf, "line 1999 0123"));
    free(b.buf);
}

/* ---------------------------------------------------------------- the API */

static void test_prefix(void **state)
{
    static const char *const GOOD[] = {"", "services", "services/", "services/orders", "a.b/c-d/e_f/", "..a/b..", "x/.y"};
    static const char *const BAD[] = {"/",          "/services", "services//orders",
                                      "services//", "..",        "../x",
                                      "a/../b",     "a/./b",     ".",
                                      "./",         "a b",       "a\tb",
                                      "a\nb",       "a%2fb",     "a?b",
                                      "a#b",        "é",         "a\\b",
                                      "services/.."};
    char big[CPH_VAULT_PREFIX_MAX + 2];
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i != sizeof(GOOD) / sizeof(GOOD[0]); i++)
        if (cph_api_integrations_check_prefix(GOOD[i], &err) != 0)
            fail_msg("refused \"%s\": %s", GOOD[i], err.msg);
    assert_int_equal(cph_api_integrations_check_prefix(NULL, &err), 0);
    for (size_t i = 0; i != sizeof(BAD) / sizeof(BAD[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (cph_api_integrations_check_prefix(BAD[i], &err) == 0)
            fail_msg("accepted \"%s\"", BAD[i]);
        assert_string_equal(err.code, "invalid");
        if (strlen(BAD[i]) > 2)
            assert_null(strstr(err.msg, BAD[i])); /* the message does not repeat the prefix */
    }
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0'; /* 257 bytes */
    assert_int_equal(cph_api_integrations_check_prefix(big, &err), -1);
    big[CPH_VAULT_PREFIX_MAX] = '\0';
    assert_int_equal(cph_api_integrations_check_prefix(big, &err), 0);
}

static json_t *call(fixture_t *fx, const char *key, unsigned *status)
{
    cph_api_req_t req = {.db = fx->db, .method = CPH_API_GET, .key = key, .actor = "token:admin"};
    json_t *resp;

    cph_api_integrations(&req);
    *status = req.status;
    resp = req.resp;
    assert_non_null(resp);
    return resp;
}

static void test_resource(void **state)
{
    fixture_t *fx = *state;
    cph_integration_settings_t s;
    unsigned status = 0;
    json_t *r;

    r = call(fx, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(str(json_object_get(r, "vault"), "state"), "disabled");
    assert_null(json_object_get(json_object_get(r, "vault"), "addr"));
    assert_null(json_object_get(json_object_get(r, "vault"), "secrets"));
    json_decref(r);
    r = call(fx, "consul", &status);
    assert_int_equal(status, 200);
    assert_string_equal(str(r, "state"), "disabled");
    json_decref(r);
    r = call(fx, "nope", &status);
    assert_int_equal(status, 404);
    json_decref(r);
    r = call(fx, "vault/nope", &status);
    assert_int_equal(status, 404);
    json_decref(r);
    r = call(fx, "vault/paths", &status); /* no Vault: 503, nothing asked */
    assert_int_equal(status, 503);
    assert_string_equal(str(r, "error"), "unavailable");
    json_decref(r);

    /* enabled: the settings in force (no credential) and the stored secrets' public view */
    cph_integration_settings_defaults(&s);
    strcpy(s.vault_addr, "https://vault.example:8200");
    strcpy(s.vault_token, "s.SECRET-TOKEN-VALUE");
    strcpy(s.consul_addr, "http://127.0.0.1:8500");
    strcpy(s.consul_token, "CONSUL-SECRET");
    cph_integration_settings_set(&s);
    cph_integration_enable(CPH_INTEGRATION_VAULT);
    r = call(fx, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(str(json_object_get(r, "vault"), "addr"), "https://vault.example:8200");
    assert_string_equal(str(json_object_get(r, "vault"), "auth"), "token");
    assert_true(json_is_array(json_object_get(json_object_get(r, "vault"), "secrets")));
    assert_true(json_is_true(json_object_get(json_object_get(r, "consul"), "acl_token")));
    {
        char *text = json_dumps(r, 0);
        assert_null(strstr(text, "SECRET"));
        free(text);
    }
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, reset),          cmocka_unit_test_setup(test_transitions, reset),
        cmocka_unit_test_setup(test_hostile_reason, reset),    cmocka_unit_test_setup(test_details, reset),
        cmocka_unit_test_setup(test_metrics_disabled, reset),  cmocka_unit_test_setup(test_metrics_enabled, reset),
        cmocka_unit_test_setup(test_metrics_buf_grows, reset), cmocka_unit_test_setup(test_prefix, reset),
    };
    const struct CMUnitTest db_tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_render, db_setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource, db_setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    failed += cmocka_run_group_tests(db_tests, NULL, NULL);
    cph_integrations_reset();
    return failed;
}
