/*
 * api_client: the loopback HTTP client of the unit tests that start the admin API on a thread of the test process
 * (api_test.c, api_authz_test.c, ui_test.c): a free port to listen on, and one request per connection
 * (Connection: close) whose whole answer, head and body, comes back as a string. Header-only so each test
 * executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_API_CLIENT_H
#define CPH_TEST_API_CLIENT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A loopback port nothing listens on right now (the kernel's pick, closed again). */
static int api_client_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/*
 * Sends head, then body_len bytes of body (body may be NULL) to 127.0.0.1:port and reads the answer until the server
 * closes (a 10 s timeout bounds every read and write). The server may answer and close before the body is out. The
 * caller frees the answer (at most 64 KiB, NUL-terminated).
 */
static char *api_client_exchange(int port, const char *head, const char *body, size_t body_len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    size_t cap = 65536, len = 0;
    char *out = calloc(1, cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_true(send(fd, head, strlen(head), MSG_NOSIGNAL) > 0);
    for (size_t off = 0; body != NULL && off < body_len; off += (size_t)n)
        if ((n = send(fd, body + off, body_len - off, MSG_NOSIGNAL)) <= 0)
            break;
    while (len < cap - 1 && (n = recv(fd, out + len, cap - 1 - len, 0)) > 0)
        len += (size_t)n;
    close(fd);
    return out;
}

#endif
