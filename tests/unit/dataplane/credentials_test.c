/*
 * credentials_test: a service's credentials in the data plane. Compile (compile/credentials.c): the headers and the
 * pre-built block, the error form, no credentials = NULL, and the defensive nacks on bodies the schema never lets
 * through (fed to cph_proxy_compile directly) plus the one rule only the data plane checks (no name under the
 * snapshot's own identity prefix), with messages that never quote a value. The request head (filter/proxy_head.c):
 * the injected headers written exactly once whatever hostile client headers say (same names in any case, repeats,
 * Authorization under strip_credential, Connection naming them, cookies), nothing injected for a service without
 * credentials. The 503 credentials_unavailable of filter/proxy.c and of the websocket upgrade (filter/websocket.c),
 * answered before any upstream work.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "peer_fixture.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/credentials.h"
#include "dataplane/filter/filter.h"
#include "dataplane/filter/proxy_head.h"
#include "send_fixture.h"

#define SECRET "Bearer s3cr3t-VALUE"

/* ---------------------------------------------------------------- snapshots */

static cph_snapshot_t *build_snapshot(const char *text, cph_error_t *err)
{
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = json_loads(text, 0, NULL);
    cph_snapshot_t *s;

    if (body == NULL)
        fail_msg("bad test JSON: %s", text);
    cph_snapshot_hash(body, hash);
    memset(err, 0, sizeof(*err));
    s = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", err);
    json_decref(body);
    return s;
}

static cph_snapshot_t *must_build(const char *text)
{
    cph_error_t err;
    cph_snapshot_t *s = build_snapshot(text, &err);

    if (s == NULL)
        fail_msg("snapshot: %s at %s: %s", err.code, err.path, err.msg);
    return s;
}

#define SVC(name, extra) "{\"name\":\"" name "\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]" extra "}"
#define CRED_HEADERS(elems) ",\"credentials\":{\"source\":\"vault:services/orders@3\",\"headers\":[" elems "]}"
#define CRED_ERROR                                                                                                                 \
    ",\"credentials\":{\"source\":\"vault:services/orders\",\"error\":\"the secret has not been read from Vault yet\"}"
#define H(name, value) "{\"name\":\"" name "\",\"value\":\"" value "\"}"
#define ROUTE(name, service, path, policies)                                                                                       \
    "{\"name\":\"" name "\",\"service\":\"" service "\",\"paths\":[\"" path "\"],\"default_access\":\"public\"" policies "}"

/* clang-format off */
static const char body_text[] =
    "{\"services\":["
        SVC("plain", "") ","
        SVC("orders", CRED_HEADERS(H("authorization", SECRET) "," H("x-api-key", "k-1") ","
                                   H("x-custom-secret", "caf\\u00e9\\tok"))) ","
        SVC("cookies", CRED_HEADERS(H("cookie", "session=s1"))) ","
        SVC("broken", CRED_ERROR) "],"
    "\"routes\":["
        ROUTE("plain", "plain", "/plain", "") ","
        ROUTE("orders", "orders", "/orders", "") ","
        ROUTE("cookies", "cookies", "/cookies", "") ","
        ROUTE("broken", "broken", "/broken", "") ","
        ROUTE("ws", "broken", "/ws", ",\"policies\":{\"websocket\":{}}") "]}";
/* clang-format on */

static cph_snapshot_t *snap;

static int setup(void **state)
{
    (void)state;
    snap = must_build(body_text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cph_snapshot_release(snap);
    return 0;
}

static const cph_route_t *route_named(const char *name)
{
    for (size_t i = 0; i != snap->num_routes; ++i)
        if (strcmp(snap->routes[i].name, name) == 0)
            return &snap->routes[i];
    fail_msg("no route %s", name);
    return NULL;
}

/* ---------------------------------------------------------------- compile */

static void test_compile(void **state)
{
    const cph_credentials_t *c;
    static const char block[] = "authorization: " SECRET "\r\nx-api-key: k-1\r\nx-custom-secret: caf\xc3\xa9\tok\r\n";

    (void)state;
    assert_null(route_named("plain")->service->credentials);
    c = route_named("orders")->service->credentials;
    assert_non_null(c);
    assert_null(c->error);
    assert_string_equal(c->source, "vault:services/orders@3");
    assert_int_equal(c->num_headers, 3);
    assert_string_equal(c->headers[0].name.base, "authorization");
    assert_string_equal(c->headers[0].value.base, SECRET);
    assert_int_equal(c->headers[2].value.len, strlen("caf\xc3\xa9\tok"));
    assert_int_equal(c->block.len, sizeof(block) - 1);
    assert_memory_equal(c->block.base, block, sizeof(block) - 1);
    assert_false(c->has_cookie);
    assert_true(cph_credentials_injects(c, H2O_STRLIT("Authorization")));
    assert_true(cph_credentials_injects(c, H2O_STRLIT("X-API-KEY")));
    assert_false(cph_credentials_injects(c, H2O_STRLIT("authorizatio")));
    assert_false(cph_credentials_injects(c, H2O_STRLIT("x-api-keys")));
    assert_true(route_named("cookies")->service->credentials->has_cookie);
    c = route_named("broken")->service->credentials;
    assert_non_null(c);
    assert_string_equal(c->error, "the secret has not been read from Vault yet");
    assert_string_equal(c->source, "vault:services/orders");
    assert_int_equal(c->num_headers, 0);
    assert_int_equal(c->block.len, 0);
}

/* The schema passes names outside x-cephalo-, but the snapshot's own identity prefix is the data plane's to refuse. */
static void test_identity_prefix_of_the_snapshot(void **state)
{
    static const char *const names[] = {"x-gw-user-id", "x-gw-", "x_gw_roles", "x-gw_system"};
    char text[1024];
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        snprintf(text, sizeof(text),
                 "{\"services\":[" SVC("s",
                                       ",\"credentials\":{\"source\":\"v\",\"headers\":[{\"name\":\"ok\",\"value\":\"1\"},"
                                       "{\"name\":\"%s\",\"value\":\"" SECRET "\"}]}") "],\"routes\":[],"
                                                                                       "\"auth\":{\"header_prefix\":\"x-gw-\"}}",
                 names[i]);
        assert_null(build_snapshot(text, &err));
        assert_string_equal(err.code, "invalid");
        assert_string_equal(err.path, "/services/0/credentials/headers/1/name");
        assert_null(strstr(err.msg, "s3cr3t"));
    }
    /* x-cephalo- stays refused whatever the prefix (the schema's fixed rule); another name under no prefix passes */
    assert_null(
        build_snapshot("{\"services\":[" SVC("s", CRED_HEADERS(H("x-cephalo-x", "1"))) "],\"routes\":[],"
                                                                                       "\"auth\":{\"header_prefix\":\"x-gw-\"}}",
                       &err));
    assert_string_equal(err.path, "/services/0/credentials/headers/0/name");
    cph_snapshot_release(
        must_build("{\"services\":[" SVC("s", CRED_HEADERS(H("x-gwx", "1"))) "],\"routes\":[],"
                                                                             "\"auth\":{\"header_prefix\":\"x-gw-\"}}"));
}

/* Straight to cph_proxy_compile (no schema in front): what the validator should have refused is a nack, never quoted. */
static void test_compile_refuses_what_the_schema_should_have(void **state)
{
    static const struct {
        const char *cred, *path;
    } cases[] = {
        {"1", "/services/0/credentials"},
        {"null", "/services/0/credentials"},
        {"{\"headers\":[" H("a", SECRET) "]}", "/services/0/credentials"},
        {"{\"source\":\"v\"}", "/services/0/credentials"},
        {"{\"source\":\"v\",\"headers\":[" H("a", SECRET) "],\"error\":\"e\"}", "/services/0/credentials"},
        {"{\"source\":\"v\",\"error\":\"\"}", "/services/0/credentials/error"},
        {"{\"source\":\"v\",\"error\":1}", "/services/0/credentials/error"},
        {"{\"source\":\"v\",\"headers\":[]}", "/services/0/credentials/headers"},
        {"{\"source\":\"v\",\"headers\":{}}", "/services/0/credentials/headers"},
        {"{\"source\":\"v\",\"headers\":[" H("a1", "1") "," H("a2", "1") "," H("a3", "1") "," H("a4", "1") "," H("a5", "1") "," H(
             "a6", "1") "," H("a7", "1") "," H("a8", "1") "," H("a9", "1") "]}",
         "/services/0/credentials/headers"},
        {"{\"source\":\"v\",\"headers\":[" H("Authorization", SECRET) "]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[" H("a b", SECRET) "]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[" H("a\\u0000b", SECRET) "]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[" H("host", SECRET) "]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[" H("x_cephalo_user_id", SECRET) "]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[" H("transfer-encoding", SECRET) "]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[{\"value\":\"" SECRET "\"}]}", "/services/0/credentials/headers/0/name"},
        {"{\"source\":\"v\",\"headers\":[" H("a", SECRET) "," H("a", SECRET) "]}", "/services/0/credentials/headers/1/name"},
        {"{\"source\":\"v\",\"headers\":[" H("a", SECRET "\\r\\nx-cephalo-user-id: 1") "]}",
         "/services/0/credentials/headers/0/value"},
        {"{\"source\":\"v\",\"headers\":[" H("a", SECRET "\\n") "]}", "/services/0/credentials/headers/0/value"},
        {"{\"source\":\"v\",\"headers\":[" H("a", SECRET "\\u0000x") "]}", "/services/0/credentials/headers/0/value"},
        {"{\"source\":\"v\",\"headers\":[" H("a", SECRET "\\u007f") "]}", "/services/0/credentials/headers/0/value"},
        {"{\"source\":\"v\",\"headers\":[" H("a", " " SECRET) "]}", "/services/0/credentials/headers/0/value"},
        {"{\"source\":\"v\",\"headers\":[" H("a", "") "]}", "/services/0/credentials/headers/0/value"},
        {"{\"source\":\"v\",\"headers\":[{\"name\":\"a\",\"value\":1}]}", "/services/0/credentials/headers/0/value"},
    };

    (void)state;
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char text[2048];
        cph_snapshot_t s;
        cph_error_t err;
        json_t *body;
        snprintf(text, sizeof(text), "{\"services\":[" SVC("s", ",\"credentials\":%s") "]}", cases[i].cred);
        if ((body = json_loads(text, JSON_ALLOW_NUL, NULL)) == NULL)
            fail_msg("bad test JSON: %s", text);
        memset(&s, 0, sizeof(s));
        memset(&err, 0, sizeof(err));
        cph_arena_init(&s.arena);
        if (cph_proxy_compile(&s, body, &err) != -1)
            fail_msg("case %zu %s: compiled", i, cases[i].cred);
        if (strcmp(err.code, "invalid") != 0 || strcmp(err.path, cases[i].path) != 0)
            fail_msg("case %zu %s: expected invalid at %s, got %s at %s", i, cases[i].cred, cases[i].path, err.code, err.path);
        if (strstr(err.msg, "s3cr3t") != NULL)
            fail_msg("case %zu: the message quotes the value: %s", i, err.msg);
        cph_arena_dispose(&s.arena);
        json_decref(body);
    }
}

/* ---------------------------------------------------------------- request head */

typedef struct st_fixture_t {
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
    cph_worker_t worker;
    char *head;
} fixture_t;

static void fx_init(fixture_t *f, const char *route, const char *method)
{
    memset(f, 0, sizeof(*f));
    f->conn.callbacks = &callbacks;
    h2o_mem_init_pool(&f->req.pool);
    f->req.conn = &f->conn;
    f->req.input.method = h2o_iovec_init(method, strlen(method));
    f->req.input.scheme = &H2O_URL_SCHEME_HTTP;
    f->req.input.authority = h2o_iovec_init(H2O_STRLIT("gw.example"));
    f->req.version = 0x101;
    f->r.req = &f->req;
    f->r.worker = &f->worker;
    f->r.snap = snap;
    f->r.route = route != NULL ? route_named(route) : NULL;
    f->r.upstream_path = h2o_iovec_init(H2O_STRLIT("/up"));
    f->r.request_id = h2o_iovec_init(H2O_STRLIT("00112233445566778899aabbccddeeff"));
    sent_status = 0;
    sent_body[0] = '\0';
}

static void fx_dispose(fixture_t *f)
{
    h2o_mem_clear_pool(&f->req.pool);
}

static void fx_add(fixture_t *f, const char *name, const char *value)
{
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static const char *build(fixture_t *f)
{
    cph_target_t target = {.authority = h2o_iovec_init(H2O_STRLIT("127.0.0.1:9"))};
    h2o_iovec_t head = cph_proxy_build_head(&f->r, f->r.route != NULL ? &f->r.route->service->targets[0] : &target);

    f->head = h2o_strdup(&f->req.pool, head.base, head.len).base;
    assert_int_equal(strlen(f->head), head.len);
    return f->head;
}

/* Lines starting with name + ':' (any case) in the head. */
static size_t count_lines(const char *head, const char *name)
{
    size_t n = 0, len = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p != NULL && p[2] != '\0'; p = strstr(p + 2, "\r\n"))
        n += strncasecmp(p + 2, name, len) == 0 && p[2 + len] == ':';
    return n;
}

static void assert_line(const char *head, const char *line)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "\r\n%s\r\n", line);
    if (strstr(head, buf) == NULL)
        fail_msg("missing '%s' in:\n%s", line, head);
}

/* Every line "name: value" with CRLF, one blank line at the end, nothing after it. */
static void assert_well_formed(const char *head)
{
    const char *end = strstr(head, "\r\n\r\n");

    assert_non_null(end);
    assert_int_equal(strlen(end), 4);
    for (const char *p = head; p < end; ++p)
        if (*p == '\n')
            assert_int_equal(p[-1], '\r');
        else if (*p == '\r')
            assert_int_equal(p[1], '\n');
}

static void test_head_injects_once_over_hostile_client_headers(void **state)
{
    fixture_t f;

    (void)state;
    fx_init(&f, "orders", "GET");
    fx_add(&f, "authorization", "Bearer client-token");
    fx_add(&f, "Authorization", "Basic Zm9yZ2Vk");
    fx_add(&f, "AUTHORIZATION", "forged-3");
    fx_add(&f, "x-api-key", "client-key");
    fx_add(&f, "X-Custom-Secret", "forged-4");
    fx_add(&f, "x-custom-secret", "forged-5");
    fx_add(&f, "connection", "x-custom-secret, authorization");
    fx_add(&f, "x-custom-secretx", "kept");
    fx_add(&f, "accept", "*/*");
    const char *head = build(&f);
    assert_well_formed(head);
    assert_int_equal(count_lines(head, "authorization"), 1);
    assert_int_equal(count_lines(head, "x-api-key"), 1);
    assert_int_equal(count_lines(head, "x-custom-secret"), 1);
    assert_line(head, "authorization: " SECRET);
    assert_line(head, "x-api-key: k-1");
    assert_line(head, "x-custom-secret: caf\xc3\xa9\tok");
    assert_line(head, "x-custom-secretx: kept");
    assert_line(head, "accept: */*");
    assert_null(strstr(head, "forged"));
    assert_null(strstr(head, "client-"));
    assert_line(head, "x-cephalo-request-id: 00112233445566778899aabbccddeeff");
    fx_dispose(&f);
}

/* An API key credential: the client's Authorization and X-API-Key are stripped, the injected ones are still written. */
static void test_head_strip_credential_keeps_injected_authorization(void **state)
{
    fixture_t f;

    (void)state;
    fx_init(&f, "orders", "POST");
    f.r.strip_credential = 1;
    f.req.entity = h2o_iovec_init(H2O_STRLIT("{}"));
    fx_add(&f, "Authorization", "ApiKey 0a1b2c3d4e.secret");
    fx_add(&f, "X-API-Key", "0a1b2c3d4e.secret");
    const char *head = build(&f);
    assert_well_formed(head);
    assert_int_equal(count_lines(head, "authorization"), 1);
    assert_int_equal(count_lines(head, "x-api-key"), 1);
    assert_line(head, "authorization: " SECRET);
    assert_null(strstr(head, "0a1b2c3d4e"));
    assert_line(head, "content-length: 2");
    fx_dispose(&f);
}

/* An injected cookie replaces the client's (which are otherwise joined into one line). */
static void test_head_injected_cookie_replaces_the_clients(void **state)
{
    fixture_t f;

    (void)state;
    fx_init(&f, "cookies", "GET");
    fx_add(&f, "cookie", "a=1");
    fx_add(&f, "Cookie", "session=forged");
    const char *head = build(&f);
    assert_well_formed(head);
    assert_int_equal(count_lines(head, "cookie"), 1);
    assert_line(head, "cookie: session=s1");
    assert_null(strstr(head, "a=1"));
    assert_null(strstr(head, "forged"));
    fx_dispose(&f);
    /* without credentials the client's cookies still go, joined */
    fx_init(&f, "plain", "GET");
    fx_add(&f, "cookie", "a=1");
    fx_add(&f, "cookie", "b=2");
    head = build(&f);
    assert_line(head, "cookie: a=1; b=2");
    fx_dispose(&f);
}

/* No credentials (a service without, or no route at all): the client's headers go as before, nothing is added. */
static void test_head_without_credentials_is_unchanged(void **state)
{
    fixture_t f;
    const char *head;

    (void)state;
    for (int i = 0; i != 2; ++i) {
        fx_init(&f, i == 0 ? "plain" : NULL, "GET");
        fx_add(&f, "authorization", "Bearer client-token");
        fx_add(&f, "x-custom-secret", "client-value");
        head = build(&f);
        assert_well_formed(head);
        assert_line(head, "authorization: Bearer client-token");
        assert_line(head, "x-custom-secret: client-value");
        assert_null(strstr(head, "s3cr3t"));
        assert_int_equal(count_lines(head, "x-api-key"), 0);
        fx_dispose(&f);
    }
}

/* ---------------------------------------------------------------- 503 credentials_unavailable */

static void assert_unavailable(void)
{
    assert_int_equal(sent_status, 503);
    assert_non_null(strstr(sent_body, "\"error\":\"credentials_unavailable\""));
    assert_non_null(strstr(sent_body, "\"request_id\":\"00112233445566778899aabbccddeeff\""));
    assert_null(strstr(sent_body, "Vault")); /* the control plane's reason stays in the snapshot */
}

static void test_proxy_answers_503_before_the_upstream(void **state)
{
    fixture_t f;

    (void)state;
    fx_init(&f, "broken", "GET"); /* f.worker has no proxy state: reaching for the upstream would crash */
    assert_int_equal(cph_proxy_on_req(&f.r), CPH_DONE);
    assert_unavailable();
    fx_dispose(&f);
}

static void test_websocket_upgrade_answers_503(void **state)
{
    fixture_t f;

    (void)state;
    fx_init(&f, "ws", "GET");
    f.req.upgrade = h2o_iovec_init(H2O_STRLIT("websocket"));
    fx_add(&f, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    fx_add(&f, "sec-websocket-version", "13");
    assert_int_equal(cph_websocket_on_req(&f.r), CPH_DONE);
    assert_unavailable();
    fx_dispose(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile),
        cmocka_unit_test(test_identity_prefix_of_the_snapshot),
        cmocka_unit_test(test_compile_refuses_what_the_schema_should_have),
        cmocka_unit_test(test_head_injects_once_over_hostile_client_headers),
        cmocka_unit_test(test_head_strip_credential_keeps_injected_authorization),
        cmocka_unit_test(test_head_injected_cookie_replaces_the_clients),
        cmocka_unit_test(test_head_without_credentials_is_unchanged),
        cmocka_unit_test(test_proxy_answers_503_before_the_upstream),
        cmocka_unit_test(test_websocket_upgrade_answers_503),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
