/*
 * redis_fixture: a real redis-server for the tests of the Redis backends (cache_redis_test.c, redis_test.c,
 * redis_stack_test.c, ratelimit_redis_test.c), started on a free loopback port in a mkdtemp directory with no
 * persistence, never the system's 6379. The server can be stopped (SIGSTOP), killed and started again on the same port;
 * the teardown kills it and removes the directory. Below the server: commands and INFO counters read on a connection
 * of their own, and a bare data-plane worker for the Redis client (core/redis.c): an h2o event loop with a multithread
 * queue that the test pumps, so answers arrive as they would on a worker. Header-only so each test executable stays one
 * file plus what it tests.
 */
#ifndef CPH_TEST_REDIS_FIXTURE_H
#define CPH_TEST_REDIS_FIXTURE_H

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>
#include "clock_fixture.h"
#include "dataplane/core/redis.h"

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
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that crashes takes its server with it */
        dup2(null, 1);                    /* a crashed test must not leave ctest waiting on the server's copy of its output */
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

/* Stops the server (SIGSTOP): it keeps its connections and answers nothing until redis_fixture_resume. */
static inline void redis_fixture_pause(const redis_fixture_t *rf)
{
    assert_int_equal(kill(rf->pid, SIGSTOP), 0);
}

static inline void redis_fixture_resume(const redis_fixture_t *rf)
{
    assert_int_equal(kill(rf->pid, SIGCONT), 0);
}

/* One command (hiredis format) on a fresh connection; returns its reply, NULL when none came. Free it. */
static inline redisReply *redis_fixture_query(const redis_fixture_t *rf, const char *fmt, ...)
{
    redisContext *c = redis_fixture_connect(rf);
    va_list ap;

    assert_non_null(c);
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* The number after `field` in INFO `section` (e.g. "commandstats", "cmdstat_evalsha:calls="); 0 when INFO leaves it out
 * (a command never called). */
static inline long long redis_fixture_info(const redis_fixture_t *rf, const char *section, const char *field)
{
    redisReply *r = redis_fixture_query(rf, "INFO %s", section);
    long long n = 0;

    assert_true(r != NULL && r->type == REDIS_REPLY_STRING);
    const char *p = strstr(r->str, field);
    if (p != NULL)
        n = atoll(p + strlen(field));
    freeReplyObject(r);
    return n;
}

/* ---------------------------------------------------------------- the Redis client on a bare worker */

/* Gives the zeroed w an event loop and a multithread queue, and registers it with the Redis client. */
static inline void redis_fixture_worker_init(cph_worker_t *w, uint32_t id)
{
    w->id = id;
    w->ctx.loop = h2o_evloop_create();
    w->ctx.queue = h2o_multithread_create_queue(w->ctx.loop);
    cph_redis_worker_init(w);
}

/* Disposes of what redis_fixture_worker_init made (its calls still outstanding are answered first); nothing when it
 * made nothing. */
static inline void redis_fixture_worker_dispose(cph_worker_t *w)
{
    if (w->ctx.loop == NULL)
        return;
    cph_redis_worker_dispose(w);
    h2o_multithread_destroy_queue(w->ctx.queue);
    h2o_evloop_destroy(w->ctx.loop);
    w->ctx.loop = NULL;
}

/* Runs w's loop until *count reaches want (10 s at most); then *count must be want. */
static inline void redis_fixture_pump(cph_worker_t *w, const int *count, int want)
{
    uint64_t end = mono_ms() + 10000;

    while (*count < want && mono_ms() < end)
        h2o_evloop_run(w->ctx.loop, 10);
    assert_int_equal(*count, want);
}

/* Points the Redis client at host:port (an empty host: no Redis), database db, this timeout per call. */
static inline void redis_fixture_configure(const char *host, uint16_t port, int db, uint64_t timeout_ms)
{
    cph_redis_config_t cfg;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.host, sizeof(cfg.host), "%s", host);
    cfg.port = port;
    cfg.db = db;
    cfg.timeout_ms = timeout_ms;
    cph_redis_configure(&cfg);
}

#endif
