/*
 * service_integrations_test: a service's "consul" and "credentials" members through the control plane (issue 7:
 * controlplane/service_integrations.c, store_service.c, snapbuild_credentials.c, migrations/0008_integrations.sql).
 *
 * - hostile admin input for both members is refused with its code at its JSON pointer, and no error text repeats
 *   what was sent;
 * - the template walker: parts in order, malformed templates refused;
 * - the store: absent members stay absent (the old representation), header names lower-cased, GET shows consul and
 *   the discovered targets, the update rule of discovered targets (kept when consul is unchanged, emptied when it
 *   changed, a stale set_discovered is a conflict);
 * - the snapshot: consul never in the body, a service without the members builds the same body as before, credentials
 *   resolve to headers or to the error form (Vault not configured, not read yet, missing key, a value no header can
 *   hold, a ':' in a basic username), basic auth is base64, a new version changes the body;
 * - redaction hides every value and keeps the source; no audit row and no error ever holds a secret value.
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
#include "controlplane/db.h"
#include "controlplane/integrations.h"
#include "controlplane/service_integrations.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_secret.h"
#include "controlplane/store_service.h"

#define SECRET "s3cr3t-VALUE-9f2c"

static int setup(void **state)
{
    cph_integration_settings_t s;

    cph_integration_settings_defaults(&s);
    snprintf(s.vault_addr, sizeof(s.vault_addr), "http://127.0.0.1:8200");
    cph_integration_settings_set(&s);
    return db_fixture_setup(state, "service-integrations-test");
}

static void vault_disabled(void)
{
    cph_integration_settings_t s;

    cph_integration_settings_defaults(&s);
    cph_integration_settings_set(&s);
}

/* ---------------------------------------------------------------- admin input */

static void refused(const char *members, const char *code, const char *path)
{
    char *text;
    json_t *in;
    cph_error_t err;

    assert_true(asprintf(&text, "{\"name\":\"s\",%s}", members) > 0);
    in = parse(text);
    memset(&err, 0, sizeof(err));
    if (cph_store_service_normalize(in, &err) != NULL)
        fail_msg("accepted %s", members);
    assert_error_at(&err, members, code, path);
    if (strstr(err.msg, "HOSTILE") != NULL)
        fail_msg("%s: the error repeats the input: %s", members, err.msg);
    json_decref(in);
    free(text);
}

#define T "\"targets\":[]"
#define H(hdrs) T ",\"credentials\":{\"vault_path\":\"a/b\",\"headers\":" hdrs "}"

static void test_consul_refused(void **state)
{
    (void)state;
    refused(T ",\"consul\":1", "invalid", "/consul");
    refused(T ",\"consul\":[]", "invalid", "/consul");
    refused(T ",\"consul\":\"orders\"", "invalid", "/consul");
    refused(T ",\"consul\":{}", "missing_field", "/consul/service");
    refused(T ",\"consul\":{\"service\":\"\"}", "invalid", "/consul/service");
    refused(T ",\"consul\":{\"service\":\"a b\"}", "invalid", "/consul/service");
    refused(T ",\"consul\":{\"service\":\"HOSTILE/../x\"}", "invalid", "/consul/service");
    refused(T ",\"consul\":{\"service\":\"a\\u0000b\"}", "invalid", "/consul/service");
    refused(T ",\"consul\":{\"service\":1.5}", "invalid", "/consul/service");
    refused(T ",\"consul\":{\"service\":\"o\",\"tag\":\"\"}", "invalid", "/consul/tag");
    refused(T ",\"consul\":{\"service\":\"o\",\"tag\":\"v1?dc=x\"}", "invalid", "/consul/tag");
    refused(T ",\"consul\":{\"service\":\"o\",\"tag\":[\"v1\"]}", "invalid", "/consul/tag");
    refused(T ",\"consul\":{\"service\":\"o\",\"dc\":\"x\"}", "unknown_field", "/consul/dc");
    refused(T ",\"consul\":{\"service\":\"o\",\"a/b~c\":1}", "unknown_field", "/consul/a~1b~0c");
    refused("\"targets\":[{\"url\":\"http://127.0.0.1:1\"}],\"consul\":{\"service\":\"o\"}", "invalid", "/targets");
    refused("\"targets\":{},\"consul\":{\"service\":\"o\"}", "invalid", "/targets");
    {
        char big[300], members[400];
        memset(big, 'a', 129);
        big[129] = '\0';
        snprintf(members, sizeof(members), T ",\"consul\":{\"service\":\"%s\"}", big);
        refused(members, "invalid", "/consul/service");
    }
}

static void test_credentials_refused(void **state)
{
    (void)state;
    refused(T ",\"credentials\":\"HOSTILE\"", "invalid", "/credentials");
    refused(T ",\"credentials\":{}", "missing_field", "/credentials/vault_path");
    refused(T ",\"credentials\":{\"vault_path\":\"a\"}", "missing_field", "/credentials/headers");
    refused(T ",\"credentials\":{\"vault_path\":\"a\",\"headers\":{\"x\":\"v\"},\"basic\":{}}", "invalid", "/credentials/basic");
    refused(T ",\"credentials\":{\"vault_path\":\"a\",\"headers\":{\"x\":\"v\"},\"extra\":1}", "unknown_field",
            "/credentials/extra");
    static const char *const bad_paths[] = {"\"\"",    "\"/a\"",        "\"a/\"",    "\"a//b\"",  "\"a/../b\"", "\"./a\"", "\"..\"",
                                            "\"a b\"", "\"a\\u0000b\"", "\"a?x=1\"", "\"a%2fb\"", "1",          "null"};
    for (size_t i = 0; i != sizeof(bad_paths) / sizeof(bad_paths[0]); ++i) {
        char members[200];
        snprintf(members, sizeof(members), T ",\"credentials\":{\"vault_path\":%s,\"headers\":{\"x\":\"v\"}}", bad_paths[i]);
        refused(members, "invalid", "/credentials/vault_path");
    }
    {
        char path[400], members[600];
        memset(path, 'p', 257);
        path[257] = '\0';
        snprintf(members, sizeof(members), T ",\"credentials\":{\"vault_path\":\"%s\",\"headers\":{\"x\":\"v\"}}", path);
        refused(members, "invalid", "/credentials/vault_path");
    }
    /* headers */
    refused(H("{}"), "invalid", "/credentials/headers");
    refused(H("[]"), "invalid", "/credentials/headers");
    refused(H("{\"a\":\"1\",\"b\":\"1\",\"c\":\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":\"1\",\"g\":\"1\",\"h\":\"1\",\"i\":\"1\"}"),
            "invalid", "/credentials/headers");
    refused(H("{\"x y\":\"v\"}"), "invalid", "/credentials/headers/x y");
    refused(H("{\"x:y\":\"v\"}"), "invalid", "/credentials/headers/x:y");
    refused(H("{\"\":\"v\"}"), "invalid", "/credentials/headers/");
    refused(H("{\"Host\":\"v\"}"), "invalid", "/credentials/headers/Host");
    refused(H("{\"content-length\":\"1\"}"), "invalid", "/credentials/headers/content-length");
    refused(H("{\"Transfer-Encoding\":\"chunked\"}"), "invalid", "/credentials/headers/Transfer-Encoding");
    refused(H("{\"X-Cephalo-User\":\"admin\"}"), "invalid", "/credentials/headers/X-Cephalo-User");
    refused(H("{\"x-forwarded-for\":\"1.2.3.4\"}"), "invalid", "/credentials/headers/x-forwarded-for");
    refused(H("{\"connection\":\"close\"}"), "invalid", "/credentials/headers/connection");
    refused(H("{\"X-Key\":\"a\",\"x-key\":\"b\"}"), "duplicate", "/credentials/headers/x-key");
    /* templates */
    refused(H("{\"x\":\"\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":1}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":null}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"HOSTILE\\r\\nx-injected: 1\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"HOSTILE\\u0000\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"HOSTILE\\u00e9\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"HOSTILE\\t\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\" HOSTILE\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"Bearer {{token\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"Bearer {{}}\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"Bearer token}}\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"{{a b}}\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"{{a/b}}\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"{{{a}}\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x\":\"{{\"}"), "invalid", "/credentials/headers/x");
    refused(H("{\"x-a~b\":\"{{\"}"), "invalid", "/credentials/headers/x-a~0b");
    {
        char tmpl[1100], members[1300];
        memset(tmpl, 'a', 1025);
        tmpl[1025] = '\0';
        snprintf(members, sizeof(members), H("{\"x\":\"%s\"}"), tmpl);
        refused(members, "invalid", "/credentials/headers/x");
    }
    /* basic */
#define B(basic) T ",\"credentials\":{\"vault_path\":\"a\",\"basic\":" basic "}"
    refused(B("[]"), "invalid", "/credentials/basic");
    refused(B("{\"username\":\"u\"}"), "missing_field", "/credentials/basic/password");
    refused(B("{\"password\":\"p\"}"), "missing_field", "/credentials/basic/username");
    refused(B("{\"username\":\"u\",\"password\":\"p\",\"realm\":\"r\"}"), "unknown_field", "/credentials/basic/realm");
    refused(B("{\"username\":\"a:{{u}}\",\"password\":\"p\"}"), "invalid", "/credentials/basic/username");
    refused(B("{\"username\":\"{{u}}\",\"password\":\"{{p\"}"), "invalid", "/credentials/basic/password");
    refused(B("{\"username\":\"\",\"password\":\"p\"}"), "invalid", "/credentials/basic/username");
}

/* ---------------------------------------------------------------- templates */

static int collect(void *ud, int is_key, const char *text, size_t len)
{
    char *out = ud;

    snprintf(out + strlen(out), 512 - strlen(out), "%s%.*s|", is_key ? "K:" : "L:", (int)len, text);
    return 0;
}

static int stop_at_key(void *ud, int is_key, const char *text, size_t len)
{
    (void)ud, (void)text, (void)len;
    return is_key ? -1 : 0;
}

static void walked(const char *t, const char *want)
{
    char out[512] = "";
    const char *why = "unset";

    if (cph_service_template_walk(t, strlen(t), collect, out, &why) != 0)
        fail_msg("%s refused: %s", t, why);
    if (strcmp(out, want) != 0)
        fail_msg("%s: got %s want %s", t, out, want);
}

static void test_template_walk(void **state)
{
    static const char *const bad[] = {"{{", "}}", "a}}b", "{{a", "{{a}", "{{}}", "{{a b}}", "{{a}}}}", "x{{{a}}"};
    const char *why;
    char out[512] = "";

    (void)state;
    walked("Bearer {{token}}", "L:Bearer |K:token|");
    walked("{{a}}{{b.c-d_e}}", "K:a|K:b.c-d_e|");
    walked("plain", "L:plain|");
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        out[0] = '\0';
        why = NULL;
        if (cph_service_template_walk(bad[i], strlen(bad[i]), collect, out, &why) == 0 || why == NULL)
            fail_msg("accepted %s", bad[i]);
    }
    walked("{{a}}}", "K:a|L:}|");
    walked("x{y}z", "L:x{y}z|");
    /* a callback's -1 stops the walk without a reason */
    why = "unset";
    assert_int_equal(cph_service_template_walk("a{{k}}b", 7, stop_at_key, NULL, &why), -1);
    assert_null(why);
}

/* ---------------------------------------------------------------- store */

static void test_store_representation(void **state)
{
    fixture_t *fx = *state;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"plain\",\"targets\":[{\"url\":\"http://127.0.0.1:1\"}]}");
    assert_stored(fx->db, &cph_store_service_ops, "plain",
                  "{\"id\":1,\"name\":\"plain\",\"policies\":{},\"system\":null,\"targets\":[{\"url\":\"http://127.0.0.1:1\","
                  "\"weight\":1}],\"timeout_ms\":60000}");
    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"nulls\",\"targets\":[],\"consul\":null,\"credentials\":null}");
    assert_stored(fx->db, &cph_store_service_ops, "nulls",
                  "{\"id\":2,\"name\":\"nulls\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":60000}");
    written(fx->db, &cph_store_service_ops, 0,
            "{\"name\":\"orders\",\"consul\":{\"service\":\"orders\",\"tag\":\"v1\"},"
            "\"credentials\":{\"vault_path\":\"services/orders\",\"headers\":{\"Authorization\":\"Bearer {{token}}\","
            "\"X-Api-Key\":\"{{api_key}}\"}}}");
    assert_stored(fx->db, &cph_store_service_ops, "orders",
                  "{\"consul\":{\"service\":\"orders\",\"tag\":\"v1\"},\"credentials\":{\"headers\":{\"authorization\":"
                  "\"Bearer {{token}}\",\"x-api-key\":\"{{api_key}}\"},\"vault_path\":\"services/orders\"},\"id\":3,"
                  "\"name\":\"orders\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":60000}");
    /* the columns' CHECKs */
    assert_true(sql_refused(fx->db, "UPDATE services SET consul = '[1]' WHERE id = 1"));
    assert_true(sql_refused(fx->db, "UPDATE services SET credentials = 'x' WHERE id = 1"));
    assert_true(sql_refused(fx->db, "INSERT INTO vault_secrets VALUES ('p', 1, '{\"k\":1}', 't')"));
    assert_true(sql_refused(fx->db, "INSERT INTO vault_secrets VALUES ('p', 1, '[]', 't')"));
}

typedef struct st_discover_t {
    int64_t id;
    const char *consul, *targets;
} discover_t;

static int on_discover(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    discover_t *d = p;
    json_t *consul = parse(d->consul), *targets = parse(d->targets);
    int ret = cph_store_service_set_discovered(db, d->id, consul, targets, change, err);

    json_decref(consul);
    json_decref(targets);
    return ret;
}

static int discover(cph_db_t *db, int64_t id, const char *consul, const char *targets, cph_error_t *err)
{
    discover_t d = {id, consul, targets};
    uint64_t version;

    memset(err, 0, sizeof(*err));
    return cph_db_write(db, "consul", on_discover, &d, &version, err);
}

static char *targets_of(cph_db_t *db, const char *name)
{
    cph_error_t err;
    json_t *svc;
    char *text;

    cph_db_lock(db);
    svc = cph_store_service_get(db, name, &err);
    cph_db_unlock(db);
    assert_non_null(svc);
    text = cph_json_canonical(json_object_get(svc, "targets"));
    json_decref(svc);
    return text;
}

static void assert_targets(cph_db_t *db, const char *name, const char *want)
{
    char *got = targets_of(db, name);

    if (strcmp(got, want) != 0)
        fail_msg("%s targets: got %s want %s", name, got, want);
    free(got);
}

static void test_discovered_targets(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    json_t *list;
    char *text;
    int64_t id = written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"orders\",\"consul\":{\"service\":\"orders\"}}");
    const char *two = "[{\"url\":\"http://10.0.0.2:80\",\"weight\":3},{\"url\":\"http://10.0.0.1:80\"}]";
    const char *sorted = "[{\"url\":\"http://10.0.0.1:80\",\"weight\":1},{\"url\":\"http://10.0.0.2:80\",\"weight\":3}]";

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"static\",\"targets\":[{\"url\":\"http://127.0.0.1:1\"}]}");
    assert_int_equal(discover(fx->db, id, "{\"service\":\"orders\"}", two, &err), 0);
    assert_targets(fx->db, "orders", sorted);
    /* the list the sync thread reads */
    cph_db_lock(fx->db);
    list = cph_store_service_consul_list(fx->db, &err);
    cph_db_unlock(fx->db);
    assert_non_null(list);
    text = cph_json_canonical(list);
    assert_string_equal(text, "[{\"consul\":{\"service\":\"orders\"},\"id\":1,\"name\":\"orders\",\"targets\":[{\"url\":"
                              "\"http://10.0.0.1:80\",\"weight\":1},{\"url\":\"http://10.0.0.2:80\",\"weight\":3}]}]");
    free(text);
    json_decref(list);
    /* a replace with the same consul keeps the discovered targets, with another one empties them */
    written(fx->db, &cph_store_service_ops, id, "{\"name\":\"orders\",\"timeout_ms\":5000,\"consul\":{\"service\":\"orders\"}}");
    assert_targets(fx->db, "orders", sorted);
    written(fx->db, &cph_store_service_ops, id, "{\"name\":\"orders\",\"consul\":{\"service\":\"orders\",\"tag\":\"v2\"}}");
    assert_targets(fx->db, "orders", "[]");
    /* the thread's stale view: conflict, nothing written */
    assert_int_equal(discover(fx->db, id, "{\"service\":\"orders\"}", two, &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_targets(fx->db, "orders", "[]");
    /* a static service is never the thread's; an unknown id is not found */
    assert_int_equal(discover(fx->db, 2, "{\"service\":\"orders\"}", two, &err), -1);
    assert_string_equal(err.code, "conflict");
    assert_int_equal(discover(fx->db, 99, "{\"service\":\"orders\"}", two, &err), -1);
    assert_string_equal(err.code, "not_found");
    /* bad targets from the thread: refused at their pointer, nothing written */
    assert_int_equal(discover(fx->db, id, "{\"service\":\"orders\",\"tag\":\"v2\"}", "[{\"url\":\"ftp://x\"}]", &err), -1);
    assert_string_equal(err.path, "/targets/0/url");
    assert_int_equal(discover(fx->db, id, "{\"service\":\"orders\",\"tag\":\"v2\"}", "{}", &err), -1);
    assert_targets(fx->db, "orders", "[]");
    /* back to static targets: the admin's own again */
    written(fx->db, &cph_store_service_ops, id, "{\"name\":\"orders\",\"targets\":[{\"url\":\"http://127.0.0.1:2\"}]}");
    assert_targets(fx->db, "orders", "[{\"url\":\"http://127.0.0.1:2\",\"weight\":1}]");
    assert_int_equal(discover(fx->db, id, "{\"service\":\"orders\"}", two, &err), -1);
}

/* ---------------------------------------------------------------- snapshot */

typedef struct st_secret_op_t {
    const char *path, *data;
    int64_t version;
} secret_op_t;

static int on_secret(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    secret_op_t *op = p;
    json_t *data = parse(op->data);
    int ret = cph_store_secret_put(db, op->path, op->version, data, change, err);

    json_decref(data);
    return ret;
}

static void put_secret(cph_db_t *db, const char *path, int64_t version, const char *data)
{
    secret_op_t op = {path, data, version};
    uint64_t v;
    cph_error_t err;

    if (cph_db_write(db, "vault", on_secret, &op, &v, &err) != 0)
        fail_msg("secret put: %s (%s)", err.code, err.msg);
}

/* The current body's service name as canonical JSON (a new string). */
static char *service_in_body(cph_db_t *db, const char *name, int redact)
{
    json_t *snap = cph_db_current_snapshot(db, 1), *body, *svc;
    char *text = NULL;
    size_t i;

    assert_non_null(snap);
    body = redact ? cph_snapbuild_redact(json_object_get(snap, "body")) : json_incref(json_object_get(snap, "body"));
    json_array_foreach(json_object_get(body, "services"), i, svc)
    {
        if (strcmp(json_string_value(json_object_get(svc, "name")), name) == 0)
            text = cph_json_canonical(svc);
    }
    json_decref(body);
    json_decref(snap);
    assert_non_null(text);
    return text;
}

static void assert_body_service(cph_db_t *db, const char *name, int redact, const char *want)
{
    char *got = service_in_body(db, name, redact);

    if (strcmp(got, want) != 0)
        fail_msg("%s in the body:\n got %s\nwant %s", name, got, want);
    free(got);
}

#define SVC_HEAD "{\"credentials\":{"
#define SVC_TAIL "},\"name\":\"orders\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":60000}"

static void test_snapshot_plain_unchanged(void **state)
{
    fixture_t *fx = *state;

    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"plain\",\"targets\":[{\"url\":\"http://127.0.0.1:1\"}]}");
    assert_body_service(fx->db, "plain", 0,
                        "{\"name\":\"plain\",\"policies\":{},\"system\":null,\"targets\":[{\"url\":\"http://127.0.0.1:1\","
                        "\"weight\":1}],\"timeout_ms\":60000}");
    /* consul is the control plane's business: not in the body */
    written(fx->db, &cph_store_service_ops, 0, "{\"name\":\"orders\",\"consul\":{\"service\":\"orders\"}}");
    assert_body_service(fx->db, "orders", 0,
                        "{\"name\":\"orders\",\"policies\":{},\"system\":null,\"targets\":[],\"timeout_ms\":60000}");
}

static void test_snapshot_resolution(void **state)
{
    fixture_t *fx = *state;
    cph_error_t err;
    int64_t id = written(fx->db, &cph_store_service_ops, 0,
                         "{\"name\":\"orders\",\"targets\":[],\"credentials\":{\"vault_path\":\"services/orders\",\"headers\":"
                         "{\"X-Api-Key\":\"{{api_key}}\",\"Authorization\":\"Bearer {{token}}\"}}}");

    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD
                        "\"error\":\"the secret has not been read from Vault yet\",\"source\":\"vault:services/orders\"" SVC_TAIL);
    put_secret(fx->db, "services/orders", 3, "{\"token\":\"" SECRET "\",\"api_key\":\"k\",\"unused\":\"u\"}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"headers\":[{\"name\":\"authorization\",\"value\":\"Bearer " SECRET
                                 "\"},{\"name\":\"x-api-key\","
                                 "\"value\":\"k\"}],\"source\":\"vault:services/orders@3\"" SVC_TAIL);
    assert_body_service(fx->db, "orders", 1,
                        SVC_HEAD "\"headers\":[{\"name\":\"authorization\",\"value\":\"(redacted)\"},{\"name\":\"x-api-key\","
                                 "\"value\":\"(redacted)\"}],\"source\":\"vault:services/orders@3\"" SVC_TAIL);
    /* a new version with the same values still changes the body (source) */
    put_secret(fx->db, "services/orders", 4, "{\"token\":\"" SECRET "\",\"api_key\":\"k\"}");
    assert_body_service(fx->db, "orders", 1,
                        SVC_HEAD "\"headers\":[{\"name\":\"authorization\",\"value\":\"(redacted)\"},{\"name\":\"x-api-key\","
                                 "\"value\":\"(redacted)\"}],\"source\":\"vault:services/orders@4\"" SVC_TAIL);
    /* a missing key, a value no header can carry, an empty value: the error form, never the value */
    put_secret(fx->db, "services/orders", 5, "{\"token\":\"" SECRET "\"}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD
                        "\"error\":\"the secret has no key \\\"api_key\\\"\",\"source\":\"vault:services/orders@5\"" SVC_TAIL);
    put_secret(fx->db, "services/orders", 6, "{\"token\":\"" SECRET "\\r\\nx-evil: 1\",\"api_key\":\"k\"}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"error\":\"the value of key \\\"token\\\" cannot be sent in a header\",\"source\":"
                                 "\"vault:services/orders@6\"" SVC_TAIL);
    put_secret(fx->db, "services/orders", 7, "{\"token\":\"" SECRET "\\u0000\",\"api_key\":\"k\"}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"error\":\"the value of key \\\"token\\\" cannot be sent in a header\",\"source\":"
                                 "\"vault:services/orders@7\"" SVC_TAIL);
    put_secret(fx->db, "services/orders", 8, "{\"token\":\"" SECRET "\",\"api_key\":\"\"}");
    {
        char *got = service_in_body(fx->db, "orders", 0);
        assert_non_null(strstr(got, "\"error\":\"the value of header \\\"x-api-key\\\" built from the secret is empty"));
        assert_null(strstr(got, SECRET));
        free(got);
    }
    /* Vault not configured: the error form, whatever is stored */
    vault_disabled();
    written(fx->db, &cph_store_service_ops, id,
            "{\"name\":\"orders\",\"targets\":[],\"credentials\":{\"vault_path\":\"services/orders\",\"headers\":"
            "{\"x-api-key\":\"{{api_key}}\"}}}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"error\":\"Vault is not configured\",\"source\":\"vault:services/orders\"" SVC_TAIL);
    (void)err;
}

static void test_snapshot_basic(void **state)
{
    fixture_t *fx = *state;
    int64_t id = written(fx->db, &cph_store_service_ops, 0,
                         "{\"name\":\"orders\",\"targets\":[],\"credentials\":{\"vault_path\":\"svc\",\"basic\":"
                         "{\"username\":\"{{user}}\",\"password\":\"pre-{{pass}}\"}}}");

    put_secret(fx->db, "svc", 1, "{\"user\":\"Aladdin\",\"pass\":\"open sesame\"}");
    /* base64("Aladdin:pre-open sesame") */
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"headers\":[{\"name\":\"authorization\",\"value\":\"Basic QWxhZGRpbjpwcmUtb3BlbiBzZXNhbWU=\"}],"
                                 "\"source\":\"vault:svc@1\"" SVC_TAIL);
    put_secret(fx->db, "svc", 2, "{\"user\":\"a:b\",\"pass\":\"p\"}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"error\":\"the basic authentication username built from the secret contains ':'\","
                                 "\"source\":\"vault:svc@2\"" SVC_TAIL);
    put_secret(fx->db, "svc", 3, "{\"user\":\"u\"}");
    assert_body_service(fx->db, "orders", 0,
                        SVC_HEAD "\"error\":\"the secret has no key \\\"pass\\\"\",\"source\":\"vault:svc@3\"" SVC_TAIL);
    (void)id;
}

/* Neither audit rows nor snapshots' admin views hold a secret value; the history keeps it (the data planes need it). */
static void test_no_secret_in_audit(void **state)
{
    fixture_t *fx = *state;
    sqlite3_stmt *st;
    int n;

    written(fx->db, &cph_store_service_ops, 0,
            "{\"name\":\"orders\",\"targets\":[],\"credentials\":{\"vault_path\":\"p\",\"headers\":{\"x-k\":\"{{k}}\"}}}");
    put_secret(fx->db, "p", 1, "{\"k\":\"" SECRET "\"}");
    put_secret(fx->db, "p", 2, "{\"k\":\"" SECRET "2\"}");
    cph_db_lock(fx->db);
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(fx->db),
                                        "SELECT count(*) FROM audit WHERE coalesce(before, '') LIKE '%s3cr3t%' OR "
                                        "coalesce(after, '') LIKE '%s3cr3t%'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_prepare_v2(cph_db_handle(fx->db),
                           "SELECT count(*) FROM audit WHERE entity_type = 'vault_secret' AND after LIKE '%\"keys\":[\"k\"]%'", -1,
                           &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    cph_db_unlock(fx->db);
    assert_int_equal(n, 0);
    {
        char *got = service_in_body(fx->db, "orders", 1);
        assert_null(strstr(got, "s3cr3t"));
        free(got);
        got = service_in_body(fx->db, "orders", 0);
        assert_non_null(strstr(got, SECRET "2"));
        free(got);
    }
}

static void test_redact_hostile(void **state)
{
    json_t *in = parse("{\"services\":[{\"name\":\"a\",\"credentials\":{\"source\":\"s\",\"headers\":[1,{\"name\":\"x\"},"
                       "{\"name\":\"y\",\"value\":\"v\"}]}},{\"name\":\"b\",\"credentials\":\"x\"},7],\"routes\":[]}"),
           *out;
    char *text;

    (void)state;
    out = cph_snapbuild_redact(in);
    text = cph_json_canonical(out);
    assert_string_equal(text,
                        "{\"routes\":[],\"services\":[{\"credentials\":{\"headers\":[1,{\"name\":\"x\"},{\"name\":\"y\",\"value\":"
                        "\"(redacted)\"}],\"source\":\"s\"},\"name\":\"a\"},{\"credentials\":\"x\",\"name\":\"b\"},7]}");
    free(text);
    /* the input is left alone */
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(
                json_object_get(json_object_get(json_array_get(json_object_get(in, "services"), 0), "credentials"), "headers"), 2),
            "value")),
        "v");
    json_decref(out);
    json_decref(in);
    in = json_object();
    out = cph_snapbuild_redact(in);
    assert_int_equal(json_object_size(out), 0);
    json_decref(out);
    json_decref(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consul_refused),
        cmocka_unit_test(test_credentials_refused),
        cmocka_unit_test(test_template_walk),
        cmocka_unit_test_setup_teardown(test_store_representation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovered_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_plain_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_resolution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_in_audit, setup, teardown),
        cmocka_unit_test(test_redact_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
