/*
 * ui_test: controlplane/ui.c through the real admin listener (cph_api_start) over loopback: the page's files with
 * their types and the security headers, and everything that must not be served - parent directories (raw and
 * percent-encoded), dot-files, a symlink out of the directory, a directory, an unknown type, an empty segment, a
 * long path - as JSON 404s; methods other than GET/HEAD as 405 with Allow; no page at all when the directory is off.
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
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include "controlplane/api.h"
#include "controlplane/db.h"
#include "controlplane/ui.h"
#include "tests/unit/controlplane/api_client.h"

typedef struct st_fixture_t {
    char dir[64], page[96];
    cph_db_t *db;
    cph_api_t *api;
    int port;
} fixture_t;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    char path[160], listen[64];
    cph_error_t err;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/cph-ui-test-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->page, sizeof(fx->page), "%s/page", fx->dir);
    assert_int_equal(mkdir(fx->page, 0700), 0);
    write_file(fx->page, "index.html", "<!DOCTYPE html><title>t</title>");
    write_file(fx->page, "app.js", "export const x = 1;");
    write_file(fx->page, ".secret.js", "secret");
    write_file(fx->page, "noext", "x");
    write_file(fx->dir, "outside.js", "outside");
    snprintf(path, sizeof(path), "%s/sub", fx->page);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file(path, "x.css", "body{}");
    snprintf(path, sizeof(path), "%s/dir.js", fx->page);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/leak.js", fx->page);
    assert_int_equal(symlink("../outside.js", path), 0);
    snprintf(path, sizeof(path), "%s/cephalo.db", fx->dir);
    assert_non_null(fx->db = cph_db_open(path, CEPHALO_MIGRATIONS_DIR, &err));
    assert_int_equal(cph_db_ensure_snapshot(fx->db, &err), 0);
    cph_ui_set_dir(fx->page);
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
    cph_ui_set_dir(NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* One request line, Connection: close; returns the whole answer (head and body). */
static char *get(fixture_t *fx, const char *method, const char *target)
{
    char head[1024];

    snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, target);
    return api_client_exchange(fx->port, head, NULL, 0);
}

static void expect(fixture_t *fx, const char *method, const char *target, const char *status, const char *needle)
{
    char *resp = get(fx, method, target);

    if (strncmp(resp, status, strlen(status)) != 0 || (needle != NULL && strstr(resp, needle) == NULL))
        fail_msg("%s %s: want %s with %s, got:\n%s", method, target, status, needle != NULL ? needle : "-", resp);
    free(resp);
}

static void test_serves_the_page(void **state)
{
    fixture_t *fx = *state;
    char *resp = get(fx, "GET", "/");

    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    assert_non_null(strstr(resp, "Content-Type: text/html; charset=utf-8"));
    assert_non_null(strstr(resp, "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self';"));
    assert_non_null(strstr(resp, "frame-ancestors 'none'"));
    assert_non_null(strstr(resp, "X-Content-Type-Options: nosniff"));
    assert_non_null(strstr(resp, "X-Frame-Options: DENY"));
    assert_non_null(strstr(resp, "Cache-Control: no-cache"));
    assert_non_null(strstr(resp, "<title>t</title>"));
    free(resp);
    expect(fx, "GET", "/index.html", "HTTP/1.1 200", "<title>t</title>");
    expect(fx, "GET", "/app.js", "HTTP/1.1 200", "Content-Type: text/javascript");
    expect(fx, "GET", "/app.js?v=2", "HTTP/1.1 200", "export const x");
    expect(fx, "GET", "/sub/x.css", "HTTP/1.1 200", "Content-Type: text/css");
    expect(fx, "HEAD", "/app.js", "HTTP/1.1 200", NULL);
    /* the API is still the API */
    expect(fx, "GET", "/health", "HTTP/1.1 200", "\"ok\"");
    expect(fx, "GET", "/api/v1/services", "HTTP/1.1 401", NULL);
}

static void test_refuses_everything_else(void **state)
{
    static const char *const NOT_FOUND[] = {
        "/../outside.js",
        "/sub/../../outside.js",
        "/%2e%2e/outside.js",
        "/sub/%2E%2E/%2e%2e/outside.js",
        "/.secret.js",
        "/sub/.hidden.css",
        "/leak.js",
        "/dir.js",
        "/noext",
        "//app.js",
        "/sub//x.css",
        "/app.js%00.html",
        "/app%2fjs",
        "/missing.js",
        "/./app.js",
        "/app.js/",
        "/a\\b.js",
        "/%c3%a9.js",
    };
    fixture_t *fx = *state;
    char long_path[400];

    for (size_t i = 0; i != sizeof(NOT_FOUND) / sizeof(NOT_FOUND[0]); ++i)
        expect(fx, "GET", NOT_FOUND[i], "HTTP/1.1 404", "{\"error\":\"not_found\"");
    memset(long_path, 'a', sizeof(long_path) - 4);
    long_path[0] = '/';
    strcpy(long_path + sizeof(long_path) - 4, ".js");
    expect(fx, "GET", long_path, "HTTP/1.1 404", "not_found");
    expect(fx, "POST", "/", "HTTP/1.1 405", "Allow: GET, HEAD");
    expect(fx, "DELETE", "/app.js", "HTTP/1.1 405", "method_not_allowed");
    expect(fx, "GET", "/", "HTTP/1.1 200", NULL); /* and it goes on */
}

static void test_no_directory_no_page(void **state)
{
    fixture_t *fx = *state;

    cph_ui_set_dir(NULL);
    expect(fx, "GET", "/", "HTTP/1.1 404", "not_found");
    cph_ui_set_dir("/nonexistent/cephalo-ui");
    expect(fx, "GET", "/app.js", "HTTP/1.1 404", "not_found");
    cph_ui_set_dir(fx->page);
    expect(fx, "GET", "/app.js", "HTTP/1.1 200", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_serves_the_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_everything_else, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_directory_no_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
