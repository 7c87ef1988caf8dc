/*
 * api_test: the admin API's HTTP layer against hostile requests, over a real loopback socket (the data-plane server
 * is absent: dps NULL). Covers what the end-to-end suite cannot easily send: chunked bodies over the cap (counted,
 * answered 413 at the end), a declared Content-Length over the cap (413 before the body), the exact cap, a NUL in a
 * string, non-object bodies, the order of the checks (401 before 404/405), the Allow header, HEAD, bad listen
 * addresses, and that the server still answers afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "controlplane/api.h"
#include "controlplane/db.h"
#include "tests/unit/controlplane/api_client.h"

#define TOKEN "unit-test-admin-token-0123456789"

typedef struct st_fixture_t {
    char dir[64];
    cph_db_t *db;
    cph_api_t *api;
    int port;
} fixture_t;

static void add_token(cph_db_t *db)
{
    unsigned char md[32];
    unsigned int n = 0;
    char sql[256], hex[65];

    EVP_Digest(TOKEN, strlen(TOKEN), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(sql, sizeof(sql), "INSERT INTO admin_tokens (name, sha256, created_at) VALUES ('admin', '%s', 'now')", hex);
    assert_int_equal(cph_db_exec(db, sql, NULL), 0);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char path[128], listen[64];
    cph_error_t err;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cph-api-test-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(path, sizeof(path), "%s/cephalo.db", fx->dir);
    assert_non_null(fx->db = cph_db_open(path, CEPHALO_MIGRATIONS_DIR, &err));
    add_token(fx->db);
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    fx->port = api_client_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", fx->port);
    assert_non_null(fx->api = cph_api_start(listen, fx->db, NULL, &err));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[128];

    cph_api_stop(fx->api);
    cph_db_close(fx->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Sends head then body (may be NULL) to the fixture's API and returns the whole answer. */
static char *exchange(fixture_t *fx, const char *head, const char *body, size_t body_len)
{
    return api_client_exchange(fx->port, head, body, body_len);
}

static char *post(fixture_t *fx, const char *path, const char *body)
{
    char head[512];

    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             path, strlen(body));
    return exchange(fx, head, body, strlen(body));
}

static void assert_answer(char *resp, const char *status_line, const char *needle)
{
    if (strncmp(resp, status_line, strlen(status_line)) != 0 || (needle != NULL && strstr(resp, needle) == NULL))
        fail_msg("want %s with %s, got:\n%s", status_line, needle != NULL ? needle : "-", resp);
    free(resp);
}

static void test_health_and_auth_order(void **state)
{
    fixture_t *fx = *state;

    assert_answer(exchange(fx, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0), "HTTP/1.1 200",
                  "{\"status\":\"ok\"}");
    assert_answer(exchange(fx, "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0), "HTTP/1.1 200", NULL);
    /* no token: 401 even for unknown /api paths and wrong methods */
    assert_answer(exchange(fx, "PATCH /api/v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0), "HTTP/1.1 401",
                  "WWW-Authenticate: Bearer");
    assert_answer(exchange(fx,
                           "GET /api/v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "x\r\n"
                           "Connection: close\r\n\r\n",
                           NULL, 0),
                  "HTTP/1.1 401", "\"unauthorized\"");
    assert_answer(exchange(fx,
                           "GET /api/v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " TOKEN "\r\n"
                           "Connection: close\r\n\r\n",
                           NULL, 0),
                  "HTTP/1.1 401", NULL);
    assert_answer(exchange(fx, "GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0), "HTTP/1.1 404",
                  "\"not_found\"");
    assert_answer(exchange(fx,
                           "DELETE /api/v1/snapshot HTTP/1.1\r\nHost: x\r\nAuthorization: bearer " TOKEN "\r\n"
                           "Connection: close\r\n\r\n",
                           NULL, 0),
                  "HTTP/1.1 405", "Allow: GET");
}

static void test_bodies(void **state)
{
    fixture_t *fx = *state;

    assert_answer(post(fx, "/api/v1/services", "{\"name\":\"a\",\"targets\":[]}"), "HTTP/1.1 201", "\"version\":2");
    assert_answer(post(fx, "/api/v1/services", "{\"name\":\"a\",\"targets\":[]}"), "HTTP/1.1 409", "\"conflict\"");
    /* a digit-only name that is also another object's id: the answer shows the object just created */
    assert_answer(post(fx, "/api/v1/services", "{\"name\":\"1\",\"targets\":[]}"), "HTTP/1.1 201", "\"name\":\"1\"");
    assert_answer(post(fx, "/api/v1/services", ""), "HTTP/1.1 400", "\"bad_json\"");
    assert_answer(post(fx, "/api/v1/services", "{\"a\":1,\"a\":2}"), "HTTP/1.1 400", "\"bad_json\"");
    assert_answer(post(fx, "/api/v1/services", "{} {}"), "HTTP/1.1 400", "\"bad_json\"");
    assert_answer(post(fx, "/api/v1/services", "[1]"), "HTTP/1.1 400", "\"invalid\"");
    assert_answer(post(fx, "/api/v1/services", "{\"name\":\"a\\u0000b\",\"targets\":[]}"), "HTTP/1.1 400", "\"path\":\"/name\"");
    assert_answer(post(fx, "/api/v1/services", "{\"name\":\"b\",\"targets\":[{\"url\":\"http://h:1\",\"x\":\"\\u0000\"}]}"),
                  "HTTP/1.1 400", "\"path\":\"/targets/0/x\"");
    assert_answer(post(fx, "/api/v1/routes", "{\"name\":\"r\",\"service\":\"nope\",\"paths\":[\"/x\"]}"), "HTTP/1.1 400",
                  "\"path\":\"/service\"");
    assert_answer(exchange(fx,
                           "POST /api/v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\n"
                           "Content-Type: text/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
                           "{}", 2),
                  "HTTP/1.1 415", "\"unsupported_media_type\"");
    /* still up and nothing half-written: two services, version 3 */
    assert_answer(
        exchange(fx, "GET /api/v1/snapshot HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\nConnection: close\r\n\r\n",
                 NULL, 0),
        "HTTP/1.1 200", "\"version\":3");
}

/* A body of n bytes: spaces then {} - valid JSON of exactly n bytes. */
static char *padded(size_t n)
{
    char *b = malloc(n + 1);

    memset(b, ' ', n);
    memcpy(b + n - 2, "{}", 2);
    b[n] = '\0';
    return b;
}

static void test_body_cap(void **state)
{
    fixture_t *fx = *state;
    char head[512], chunk_head[32], *body = padded(CPH_API_BODY_MAX), *big = padded(CPH_API_BODY_MAX + 1);
    const char *base = "POST /api/v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\n"
                       "Content-Type: application/json\r\nConnection: close\r\n";

    /* exactly the cap is read and parsed (then refused by the schema), one byte more is 413 */
    snprintf(head, sizeof(head), "%sContent-Length: %d\r\n\r\n", base, CPH_API_BODY_MAX);
    assert_answer(exchange(fx, head, body, CPH_API_BODY_MAX), "HTTP/1.1 400", "\"missing_field\"");
    snprintf(head, sizeof(head), "%sContent-Length: %d\r\n\r\n", base, CPH_API_BODY_MAX + 1);
    assert_answer(exchange(fx, head, big, CPH_API_BODY_MAX + 1), "HTTP/1.1 413", "\"payload_too_large\"");
    snprintf(head, sizeof(head), "%sContent-Length: 99999999999999999999\r\n\r\n", base);
    assert_answer(exchange(fx, head, NULL, 0), "HTTP/1.1 413", NULL);
    /* chunked: one chunk of cap + 1 bytes, counted and dropped */
    snprintf(head, sizeof(head), "%sTransfer-Encoding: chunked\r\n\r\n", base);
    snprintf(chunk_head, sizeof(chunk_head), "%x\r\n", CPH_API_BODY_MAX + 1);
    {
        size_t n = strlen(chunk_head) + CPH_API_BODY_MAX + 1 + 7;
        char *msg = malloc(n + 1);
        snprintf(msg, n + 1, "%s%s\r\n0\r\n\r\n", chunk_head, big);
        assert_answer(exchange(fx, head, msg, n), "HTTP/1.1 413", "\"payload_too_large\"");
        free(msg);
    }
    free(body);
    free(big);
    assert_answer(exchange(fx, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0), "HTTP/1.1 200", NULL);
}

static void test_bad_listen(void **state)
{
    static const char *const BAD[] = {
        "", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:8x", "256.0.0.1:80", "[::1:80", "example.com:80"};
    cph_error_t err;

    (void)state;
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); ++i) {
        cph_api_t *api = cph_api_start(BAD[i], NULL, NULL, &err);
        if (api != NULL)
            fail_msg("listen %s accepted", BAD[i]);
        assert_string_equal(err.code, "invalid");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_and_auth_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test(test_bad_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
