/*
 * http_fixture: a one-shot HTTP server on a thread of the test process, for the unit tests of the control plane's
 * HTTP clients (http_client_test.c, vault_test.c): it accepts one connection, keeps the request it read (head and a
 * Content-Length body) in request, and writes a canned raw answer - or, with answer NULL, holds the connection for
 * hang_ms and closes it, for the clients' timeouts. Header-only so each test executable stays one file plus what it
 * tests.
 */
#ifndef CPH_TEST_HTTP_FIXTURE_H
#define CPH_TEST_HTTP_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct st_server_t {
    int fd;
    int port;
    const char *answer; /* the raw HTTP answer; NULL = hang for hang_ms, then close */
    size_t answer_len;
    int hang_ms;
    char request[8192];
    pthread_t thread;
} server_t;

/* The request's body length from its Content-Length header (0 when absent). */
static size_t content_length(const char *head)
{
    const char *cl = strstr(head, "\r\nContent-Length: ");

    return cl != NULL ? (size_t)strtoul(cl + 18, NULL, 10) : 0;
}

static void read_request(server_t *s, int c)
{
    size_t len = 0;
    ssize_t n;
    char *end;

    while (len < sizeof(s->request) - 1 && (n = read(c, s->request + len, sizeof(s->request) - 1 - len)) > 0) {
        len += (size_t)n;
        s->request[len] = '\0';
        if ((end = strstr(s->request, "\r\n\r\n")) != NULL && len - (size_t)(end + 4 - s->request) >= content_length(s->request))
            break;
    }
}

static void *serve(void *arg)
{
    server_t *s = arg;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    ssize_t n;
    int c;

    if (poll(&p, 1, 5000) != 1 || (c = accept(s->fd, NULL, NULL)) < 0) /* a client that never connected */
        return NULL;
    read_request(s, c);
    if (s->answer != NULL) {
        for (size_t off = 0; off < s->answer_len && (n = send(c, s->answer + off, s->answer_len - off, MSG_NOSIGNAL)) > 0;)
            off += (size_t)n;
    } else {
        usleep((useconds_t)s->hang_ms * 1000);
    }
    close(c);
    return NULL;
}

static void server_start(server_t *s, const char *answer, size_t len, int hang_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    memset(s->request, 0, sizeof(s->request));
    s->answer = answer, s->answer_len = len, s->hang_ms = hang_ms;
    assert_true((s->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server_t *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

#endif
