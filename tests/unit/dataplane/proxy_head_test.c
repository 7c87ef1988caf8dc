/*
 * proxy_head_test: the upstream request head of filter/proxy_head.c built for hand-made requests: the request id and
 * the identity of the principal are written under the prefix, a user and an API key get their own id header, roles
 * and groups are comma-joined, a principal value that could split or blur a header (CR, LF, space, comma, control
 * bytes, empty) is left out, client headers with the prefix (any case, '_' for '-') and X-API-Key never go through,
 * Authorization only when the credential was not an API key, and the head ends with exactly one blank line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "peer_fixture.h"
#include "dataplane/filter/proxy_head.h"

static cph_snapshot_t *snap, *snap_gw; /* defaults; groups and the header prefix "x-gw-" */

static cph_snapshot_t *build_snapshot(const char *text)
{
    char hash[CPH_HASH_SIZE] = "";
    json_t *body = json_loads(text, 0, NULL);
    cph_error_t err;
    cph_snapshot_t *s;

    assert_non_null(body);
    cph_snapshot_hash(body, hash);
    s = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err);
    if (s == NULL)
        fail_msg("snapshot: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    return s;
}

static int setup(void **state)
{
    (void)state;
    snap = build_snapshot("{\"services\":[],\"routes\":[]}");
    snap_gw = build_snapshot("{\"services\":[],\"routes\":[],\"groups\":[{\"system\":\"shop\",\"name\":\"staff\","
                             "\"roles\":[\"clerk\",\"reader\"]}],\"auth\":{\"header_prefix\":\"x-gw-\"}}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cph_snapshot_release(snap);
    cph_snapshot_release(snap_gw);
    return 0;
}

typedef struct st_fixture_t {
    h2o_conn_t conn;
    h2o_req_t req;
    cph_req_t r;
    cph_target_t target;
    char *head; /* NUL-terminated copy of the built head */
} fixture_t;

static void fx_init(fixture_t *f, const char *method)
{
    memset(f, 0, sizeof(*f));
    f->conn.callbacks = &callbacks;
    h2o_mem_init_pool(&f->req.pool);
    f->req.conn = &f->conn;
    f->req.input.method = h2o_iovec_init(method, strlen(method));
    f->req.input.scheme = &H2O_URL_SCHEME_HTTP;
    f->req.input.authority = h2o_iovec_init(H2O_STRLIT("gw.example"));
    f->r.req = &f->req;
    f->r.snap = snap;
    f->r.upstream_path = h2o_iovec_init(H2O_STRLIT("/up?q=1"));
    f->r.request_id = h2o_iovec_init(H2O_STRLIT("00112233445566778899aabbccddeeff"));
    f->target.authority = h2o_iovec_init(H2O_STRLIT("127.0.0.1:9000"));
}

static void fx_add(fixture_t *f, const char *name, const char *value)
{
    h2o_add_header_by_str(&f->req.pool, &f->req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static const char *build(fixture_t *f)
{
    h2o_iovec_t head = cph_proxy_build_head(&f->r, &f->target);

    f->head = h2o_strdup(&f->req.pool, head.base, head.len).base;
    assert_int_equal(strlen(f->head), head.len); /* no NUL byte */
    return f->head;
}

/* The head's lines must be "name: value" with no bare CR or LF, then one empty line at the very end. */
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

static void assert_has(const char *head, const char *line)
{
    if (strstr(head, line) == NULL)
        fail_msg("missing '%s' in:\n%s", line, head);
}

static void assert_lacks(const char *head, const char *text)
{
    if (strcasestr(head, text) != NULL)
        fail_msg("unexpected '%s' in:\n%s", text, head);
}

static void test_anonymous_request_gets_request_id_only(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "GET");
    fx_add(&f, "accept", "*/*");
    fx_add(&f, "authorization", "Bearer abc.def.ghi");
    fx_add(&f, "X-Cephalo-User-Id", "1");
    fx_add(&f, "X_Cephalo_Roles", "admin");
    fx_add(&f, "x-cephalo-request-id", "forged");
    fx_add(&f, "X-API-Key", "0a1b2c3d4e.secret");
    const char *head = build(&f);
    assert_well_formed(head);
    static const char first[] = "GET /up?q=1 HTTP/1.1\r\nhost: 127.0.0.1:9000\r\n";
    assert_memory_equal(head, first, sizeof(first) - 1);
    assert_has(head, "\r\naccept: */*\r\n");
    assert_has(head, "\r\nauthorization: Bearer abc.def.ghi\r\n"); /* a bearer JWT is forwarded */
    assert_has(head, "\r\nx-forwarded-for: 10.1.2.3\r\n");
    assert_has(head, "\r\nx-request-id: 00112233445566778899aabbccddeeff\r\n");
    assert_has(head, "\r\nx-cephalo-request-id: 00112233445566778899aabbccddeeff\r\n\r\n");
    assert_lacks(head, "traceparent"); /* none set on r: none written */
    assert_lacks(head, "forged");
    assert_lacks(head, "user-id");
    assert_lacks(head, "roles");
    assert_lacks(head, "x-api-key");
    assert_lacks(head, "secret");
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_trace_context_goes_upstream(void **state)
{
    (void)state;
    fixture_t f;

    fx_init(&f, "GET");
    f.r.traceparent = h2o_iovec_init(H2O_STRLIT("00-4bf92f3577b34da6a3ce929d0e0e4736-1111222233334444-01"));
    f.r.tracestate = h2o_iovec_init(H2O_STRLIT("congo=t61rcWkgMzE"));
    const char *head = build(&f);
    assert_well_formed(head);
    assert_has(head, "\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-1111222233334444-01\r\n");
    assert_has(head, "\r\ntracestate: congo=t61rcWkgMzE\r\n");
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_api_key_principal(void **state)
{
    (void)state;
    fixture_t f;
    h2o_iovec_t roles[] = {h2o_iovec_init(H2O_STRLIT("reader")), h2o_iovec_init(H2O_STRLIT("writer"))};
    h2o_iovec_t groups[] = {h2o_iovec_init(H2O_STRLIT("staff"))};

    fx_init(&f, "POST");
    fx_add(&f, "Authorization", "ApiKey 0a1b2c3d4e.secret");
    fx_add(&f, "x-api-key", "0a1b2c3d4e.secret");
    f.r.strip_credential = 1;
    f.r.principal = (cph_principal_t){.kind = CPH_PRINCIPAL_API_KEY,
                                      .id = h2o_iovec_init(H2O_STRLIT("3")),
                                      .system = h2o_iovec_init(H2O_STRLIT("shop")),
                                      .roles = roles,
                                      .num_roles = 2,
                                      .groups = groups,
                                      .num_groups = 1};
    const char *head = build(&f);
    assert_well_formed(head);
    assert_has(head, "\r\ncontent-length: 0\r\n");
    assert_has(head, "\r\nx-cephalo-api-key-id: 3\r\n");
    assert_has(head, "\r\nx-cephalo-system: shop\r\n");
    assert_has(head, "\r\nx-cephalo-roles: reader,writer\r\n");
    assert_has(head, "\r\nx-cephalo-groups: staff\r\n");
    assert_lacks(head, "user-id");
    assert_lacks(head, "secret");
    assert_lacks(head, "authorization");
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_user_principal_with_odd_values(void **state)
{
    (void)state;
    fixture_t f;
    /* in byte order, in case the effective roles come back sorted */
    h2o_iovec_t roles[] = {h2o_iovec_init(H2O_STRLIT("")),
                           h2o_iovec_init(H2O_STRLIT(" admin")),
                           h2o_iovec_init(H2O_STRLIT("a,b")),
                           h2o_iovec_init(H2O_STRLIT("also.ok_1")),
                           h2o_iovec_init(H2O_STRLIT("caf\xc3\xa9")),
                           h2o_iovec_init(H2O_STRLIT("ok")),
                           h2o_iovec_init(H2O_STRLIT("x\r\nx-cephalo-roles: admin"))};
    h2o_iovec_t groups[] = {h2o_iovec_init(H2O_STRLIT("bad\x01")), h2o_iovec_init(H2O_STRLIT("g-1"))};

    fx_init(&f, "GET");
    f.r.principal = (cph_principal_t){.kind = CPH_PRINCIPAL_USER,
                                      .id = h2o_iovec_init(H2O_STRLIT("4\r\n2")),
                                      .system = h2o_iovec_init(H2O_STRLIT("sh op")),
                                      .roles = roles,
                                      .num_roles = 7,
                                      .groups = groups,
                                      .num_groups = 2};
    const char *head = build(&f);
    assert_well_formed(head);
    assert_lacks(head, "user-id"); /* the id could split the header: left out */
    assert_lacks(head, "x-cephalo-system");
    assert_has(head, "\r\nx-cephalo-roles: also.ok_1,ok\r\n");
    assert_has(head, "\r\nx-cephalo-groups: g-1\r\n");
    assert_lacks(head, "admin");
    h2o_mem_clear_pool(&f.req.pool);

    fx_init(&f, "GET");
    f.r.principal = (cph_principal_t){
        .kind = CPH_PRINCIPAL_USER, .id = h2o_iovec_init(H2O_STRLIT("42")), .system = h2o_iovec_init(H2O_STRLIT("shop"))};
    head = build(&f);
    assert_has(head, "\r\nx-cephalo-user-id: 42\r\nx-cephalo-system: shop\r\n\r\n"); /* no empty roles / groups */
    h2o_mem_clear_pool(&f.req.pool);
}

static void test_many_long_roles_fit(void **state)
{
    (void)state;
    fixture_t f;
    size_t n = 1024;
    h2o_iovec_t *roles = calloc(n, sizeof(*roles));
    char *names = malloc(n * 65);

    for (size_t i = 0; i != n; ++i) { /* distinct, in order: "r000...0001" */
        snprintf(names + i * 65, 65, "r%063zu", i);
        roles[i] = h2o_iovec_init(names + i * 65, 64);
    }
    fx_init(&f, "GET");
    f.r.principal = (cph_principal_t){.kind = CPH_PRINCIPAL_USER,
                                      .id = h2o_iovec_init(H2O_STRLIT("7")),
                                      .system = h2o_iovec_init(H2O_STRLIT("s")),
                                      .roles = roles,
                                      .num_roles = n};
    const char *head = build(&f);
    assert_well_formed(head);
    const char *line = strstr(head, "x-cephalo-roles: ");
    assert_non_null(line);
    assert_int_equal(strcspn(line, "\r") - strlen("x-cephalo-roles: "), n * 64 + (n - 1));
    h2o_mem_clear_pool(&f.req.pool);
    free(roles);
    free(names);
}

static void test_effective_roles_and_snapshot_prefix(void **state)
{
    (void)state;
    fixture_t f;
    h2o_iovec_t roles[] = {h2o_iovec_init(H2O_STRLIT("reader")), h2o_iovec_init(H2O_STRLIT("writer"))};
    h2o_iovec_t groups[] = {h2o_iovec_init(H2O_STRLIT("staff"))};

    fx_init(&f, "GET");
    f.r.snap = snap_gw;
    fx_add(&f, "X-Gw-Roles", "admin");
    fx_add(&f, "x_gw_system", "root");
    fx_add(&f, "x-cephalo-roles", "not ours under this prefix");
    f.r.principal = (cph_principal_t){.kind = CPH_PRINCIPAL_USER,
                                      .id = h2o_iovec_init(H2O_STRLIT("5")),
                                      .system = h2o_iovec_init(H2O_STRLIT("shop")),
                                      .roles = roles,
                                      .num_roles = 2,
                                      .groups = groups,
                                      .num_groups = 1};
    const char *head = build(&f);
    assert_well_formed(head);
    assert_has(head, "\r\nx-cephalo-roles: not ours under this prefix\r\n");
    assert_has(head, "\r\nx-gw-request-id: 00112233445566778899aabbccddeeff\r\nx-gw-user-id: 5\r\nx-gw-system: shop\r\n");
    /* own roles, then the group's roles not already there */
    assert_has(head, "\r\nx-gw-roles: reader,writer,clerk\r\nx-gw-groups: staff\r\n\r\n");
    assert_lacks(head, "admin");
    assert_lacks(head, "root");
    h2o_mem_clear_pool(&f.req.pool);
}

/* Response headers: hop-by-hop and framing ones go, and so does every header the Connection value names, whatever the
 * case of either side (the upstream's spelling is passed through). */
static void test_response_headers_named_by_connection_are_dropped(void **state)
{
    h2o_iovec_t conn = h2o_iovec_init(H2O_STRLIT(" keep-alive , X-Hop,\tx-Other "));
    h2o_iovec_t none = h2o_iovec_init(NULL, 0);

    (void)state;
    assert_true(cph_proxy_drop_response_header(H2O_STRLIT("X-Hop"), conn));
    assert_true(cph_proxy_drop_response_header(H2O_STRLIT("x-hop"), conn));
    assert_true(cph_proxy_drop_response_header(H2O_STRLIT("X-OTHER"), conn));
    assert_false(cph_proxy_drop_response_header(H2O_STRLIT("X-Hopper"), conn));
    assert_false(cph_proxy_drop_response_header(H2O_STRLIT("X-Ho"), conn));
    assert_false(cph_proxy_drop_response_header(H2O_STRLIT("X-Hop"), none));
    assert_true(cph_proxy_drop_response_header(H2O_STRLIT("Transfer-Encoding"), none));
    assert_true(cph_proxy_drop_response_header(H2O_STRLIT("Keep-Alive"), none));
    assert_false(cph_proxy_drop_response_header(H2O_STRLIT("Content-Type"), none));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anonymous_request_gets_request_id_only),
        cmocka_unit_test(test_trace_context_goes_upstream),
        cmocka_unit_test(test_api_key_principal),
        cmocka_unit_test(test_user_principal_with_odd_values),
        cmocka_unit_test(test_many_long_roles_fit),
        cmocka_unit_test(test_effective_roles_and_snapshot_prefix),
        cmocka_unit_test(test_response_headers_named_by_connection_are_dropped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
