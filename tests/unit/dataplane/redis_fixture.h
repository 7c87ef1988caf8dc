/*
 * redis_fixture: a real redis-server for the tests of the Redis backends (cache_redis_test.c; redis_test.c can use it
 * the same way), started on a free loopback port in a mkdtemp directory with no persistence, never the system's 6379.
 * The server can be stopped (SIGSTOP), killed and started again on the same port; the teardown kills it and removes
 * the directory. Header-only so each test executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_REDIS_FIXTURE_H
#define CPH_TEST_REDIS_FIXTURE_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include "clock_fixture.h"

typedef struct st_redis_fixture_t {
    char dir[64];
    uint16_t port;
    pid_t pid; /* 0: not running */
} redis_fixture_t;

/* A loopback TCP port nobody listens on right now. */
static inline uint16_t redis_fixture_free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* A blocking connection to the server (1 s timeout), or NULL when it does not answer. */
static inline redisContext *redis_fixture_connect(const redis_fixture_t *rf)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", rf->port, tv);

    if (c != NULL && c->err != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Runs one command on a fresh connection; a failure or an error reply fails the test. */
static inline void redis_fixture_command(const redis_fixture_t *rf, const char *cmd)
{
    redisContext *c = redis_fixture_connect(rf);

    assert_non_null(c);
    redisReply *r = redisCommand(c, cmd);
    assert_true(r != NULL && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

/* Starts redis-server on rf->port in rf->dir and waits (up to 5 s) until it answers PING. */
static inline void redis_fixture_start(redis_fixture_t *rf)
{
    char port[8], log[128];

    snprintf(port, sizeof(port), "%u", rf->port);
    snprintf(log, sizeof(log), "%s/redis.log", rf->dir);
    rf->pid = fork();
    assert_true(rf->pid >= 0);
    if (rf->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1); /* a crashed test must not leave ctest waiting on the server's copy of its output */
        dup2(null, 2);
        for (int fd = 3; fd < 1024; fd++) /* no copy of our sockets may outlive us in the server */
            close(fd);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               rf->dir, "--logfile", log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        redisContext *c = redis_fixture_connect(rf);
        if (c != NULL) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        }
        sleep_ms(10);
    }
    fail_msg("redis-server did not start on port %u", rf->port);
}

/* Kills the server (stopped or not) and reaps it; nothing when it is not running. */
static inline void redis_fixture_kill(redis_fixture_t *rf)
{
    if (rf->pid <= 0)
        return;
    kill(rf->pid, SIGCONT);
    kill(rf->pid, SIGKILL);
    waitpid(rf->pid, NULL, 0);
    rf->pid = 0;
}

/* cmocka group setup part: a temp dir /tmp/cph-<tag>-XXXXXX, a free port, a running server. -1 without redis-server. */
static inline int redis_fixture_setup(redis_fixture_t *rf, const char *tag)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server is not installed (scripts/deps.sh installs it)\n");
        return -1;
    }
    snprintf(rf->dir, sizeof(rf->dir), "/tmp/cph-%s-XXXXXX", tag);
    if (mkdtemp(rf->dir) == NULL) {
        rf->dir[0] = '\0';
        return -1;
    }
    rf->port = redis_fixture_free_port();
    redis_fixture_start(rf);
    return 0;
}

/* cmocka group teardown part: kills the server and removes its directory (safe after a failed setup). */
static inline int redis_fixture_teardown(redis_fixture_t *rf)
{
    char cmd[128];

    redis_fixture_kill(rf);
    if (rf->dir[0] == '\0')
        return 0;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", rf->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
