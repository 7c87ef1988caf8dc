/*
 * http_client_test: the libcurl plumbing the control plane's clients share (controlplane/http_client.c), against a
 * one-shot HTTP server in this process: the answer and status, the header lines sent (a token exactly once, in its
 * header), the methods (GET, POST with and without a body, a custom verb), the size cap whether the answer announces
 * its length or not, a redirect that is not followed, refused protocols, the timeout, the stop flag, a transfer on a
 * multi handle (as sync_consul.c runs it), and the buffer and header-list helpers.
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "controlplane/http_client.h"
#include "http_fixture.h"

static void url_of(const server_t *s, const char *path, char *url, size_t cap)
{
    snprintf(url, cap, "http://127.0.0.1:%d%s", s->port, path);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define OK_ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world"

/* ---------------------------------------------------------------- transfers */

static void test_get_headers(void **state)
{
    struct curl_slist *headers = cph_http_header_add(NULL, "X-Test-Token", "tok-SECRET-42");
    cph_http_opts_t o = {1000, 2000, NULL, NULL};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(64, 1);
    char url[128];
    long status = -1;
    server_t s;

    (void)state;
    headers = cph_http_header_add(headers, "Accept", "application/json");
    o.headers = headers;
    server_start(&s, OK_ANSWER, strlen(OK_ANSWER), 0);
    url_of(&s, "/v1/x", url, sizeof(url));
    assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_OK);
    server_stop(&s);
    cph_http_headers_free(headers);
    assert_int_equal(status, 200);
    assert_int_equal(b.len, 11);
    assert_string_equal(b.data, "hello world");
    assert_non_null(strstr(s.request, "GET /v1/x HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "\r\nX-Test-Token: tok-SECRET-42\r\n"));
    assert_null(strstr(strstr(s.request, "SECRET-42") + 1, "SECRET-42")); /* once: in its header only */
    assert_non_null(strstr(s.request, "\r\nAccept: application/json\r\n"));
    assert_non_null(strstr(s.request, "\r\nUser-Agent: cephalo-controlplane\r\n"));
    cph_http_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 64); /* reusable */
    assert_int_equal(b.wipe, 1);
}

/* One call of method on path with body against a fresh server; the request as the server read it goes into s. */
static void call_once(server_t *s, const char *method, const char *path, const char *body)
{
    cph_http_opts_t o = {1000, 2000, NULL, NULL};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(64, 0);
    char url[128];
    long status;

    server_start(s, OK_ANSWER, strlen(OK_ANSWER), 0);
    url_of(s, path, url, sizeof(url));
    assert_int_equal(cph_http_call(method, url, body, &o, &status, &b), CURLE_OK);
    server_stop(s);
    assert_int_equal(status, 200);
    cph_http_buf_free(&b);
}

static void test_methods(void **state)
{
    server_t s;

    (void)state;
    call_once(&s, "POST", "/login", "{\"a\":1}");
    assert_non_null(strstr(s.request, "POST /login HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(s.request, "\r\n\r\n{\"a\":1}"));
    call_once(&s, "POST", "/renew", NULL); /* a POST without a body still sends one, empty */
    assert_non_null(strstr(s.request, "POST /renew HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "\r\nContent-Length: 0\r\n"));
    call_once(&s, "LIST", "/v1/secret/metadata/", NULL);
    assert_non_null(strstr(s.request, "LIST /v1/secret/metadata/ HTTP/1.1\r\n"));
    assert_null(strstr(s.request, "Content-Length"));
    call_once(&s, "GET", "/v1/x", NULL);
    assert_non_null(strstr(s.request, "GET /v1/x HTTP/1.1\r\n"));
    assert_null(strstr(s.request, "Content-Length"));
}

static void test_size_cap(void **state)
{
    const char *head_cl = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n";
    const char *head_close = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    char *big = malloc(6000), url[128];
    cph_http_opts_t o = {1000, 2000, NULL, NULL};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(1000, 1);
    long status;
    server_t s;

    (void)state;
    for (int announced = 1; announced >= 0; --announced) { /* the length announced, then not: caught while it arrives */
        size_t len = (size_t)sprintf(big, "%s", announced ? head_cl : head_close);
        memset(big + len, 'x', 5000);
        server_start(&s, big, len + 5000, 0);
        url_of(&s, "/big", url, sizeof(url));
        assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_FILESIZE_EXCEEDED);
        server_stop(&s);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
    }
    /* exactly the cap is fine, and growing in pieces keeps every byte */
    size_t len = (size_t)sprintf(big, "%s", head_close);
    for (size_t i = 0; i != 1000; ++i)
        big[len + i] = (char)('a' + i % 26);
    server_start(&s, big, len + 1000, 0);
    url_of(&s, "/cap", url, sizeof(url));
    assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_OK);
    server_stop(&s);
    assert_int_equal(b.len, 1000);
    assert_memory_equal(b.data, big + len, 1000);
    assert_int_equal(b.data[1000], '\0');
    cph_http_buf_free(&b);
    free(big);
}

static void test_refusals(void **state)
{
    const char *redirect = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n";
    cph_http_opts_t o = {1000, 2000, NULL, NULL};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(1000, 0);
    char url[128];
    long status = -1;
    server_t s;

    (void)state;
    assert_int_equal(cph_http_call("GET", "ftp://127.0.0.1/x", NULL, &o, &status, &b), CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(status, 0);
    assert_int_equal(cph_http_call("GET", "file:///etc/passwd", NULL, &o, &status, &b), CURLE_UNSUPPORTED_PROTOCOL);
    assert_null(b.data);
    server_start(&s, redirect, strlen(redirect), 0);
    url_of(&s, "/moved", url, sizeof(url));
    assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_OK);
    server_stop(&s);
    assert_int_equal(status, 302); /* answered as is, not followed */
    cph_http_buf_free(&b);
    /* the server is gone: refused */
    assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_COULDNT_CONNECT);
}

static void *stop_soon(void *arg)
{
    usleep(300 * 1000);
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void test_timeout_and_stop(void **state)
{
    pthread_t stopper;
    cph_http_opts_t o = {1000, 400, NULL, NULL};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(1000, 0);
    atomic_int stop;
    int64_t t0;
    char url[128];
    long status;
    server_t s;

    (void)state;
    server_start(&s, NULL, 0, 1500);
    url_of(&s, "/slow", url, sizeof(url));
    t0 = now_ms();
    assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_OPERATION_TIMEDOUT);
    assert_true(now_ms() - t0 < 1400);
    server_stop(&s);

    atomic_init(&stop, 0);
    o.timeout_ms = 10000, o.stop = &stop;
    server_start(&s, NULL, 0, 3000);
    url_of(&s, "/hang", url, sizeof(url));
    assert_int_equal(pthread_create(&stopper, NULL, stop_soon, &stop), 0);
    t0 = now_ms();
    assert_int_equal(cph_http_call("GET", url, NULL, &o, &status, &b), CURLE_ABORTED_BY_CALLBACK);
    assert_true(now_ms() - t0 < 2200); /* 300 ms, then within about a second: not the 10 s timeout */
    assert_null(b.data);
    pthread_join(stopper, NULL);
    server_stop(&s);
}

static void test_multi(void **state)
{
    struct curl_slist *headers = cph_http_header_add(NULL, "X-Consul-Token", "acl-TOKEN");
    cph_http_opts_t o = {1000, 2000, NULL, headers};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(64, 0);
    CURLM *m = curl_multi_init();
    CURL *c = curl_easy_init();
    int running = 1, left;
    CURLMsg *msg;
    CURLcode result = CURLE_RECV_ERROR;
    char url[128];
    server_t s;

    (void)state;
    server_start(&s, OK_ANSWER, strlen(OK_ANSWER), 0);
    url_of(&s, "/v1/health/service/orders", url, sizeof(url));
    cph_http_setup(c, url, &o, &b);
    assert_int_equal(curl_multi_add_handle(m, c), CURLM_OK);
    while (running) {
        curl_multi_poll(m, NULL, 0, 100, NULL);
        curl_multi_perform(m, &running);
    }
    while ((msg = curl_multi_info_read(m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            result = msg->data.result;
    server_stop(&s);
    assert_int_equal(result, CURLE_OK);
    assert_string_equal(b.data, "hello world");
    assert_non_null(strstr(s.request, "\r\nX-Consul-Token: acl-TOKEN\r\n"));
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    cph_http_headers_free(headers);
    cph_http_buf_free(&b);
}

/* ---------------------------------------------------------------- helpers */

static void test_header_list(void **state)
{
    struct curl_slist *l = cph_http_header_add(NULL, "X-Vault-Token", "hvs.ABC");
    cph_error_t err;

    (void)state;
    l = cph_http_header_add(l, "Content-Type", "application/json");
    assert_string_equal(l->data, "X-Vault-Token: hvs.ABC");
    assert_string_equal(l->next->data, "Content-Type: application/json");
    assert_null(l->next->next);
    cph_http_headers_free(l);
    cph_http_headers_free(NULL);
    assert_int_equal(cph_http_global_init(&err), 0);
    cph_http_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_headers), cmocka_unit_test(test_methods),          cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_refusals),    cmocka_unit_test(test_timeout_and_stop), cmocka_unit_test(test_multi),
        cmocka_unit_test(test_header_list),
    };
    int ret;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return ret;
}
