/*
 * redis_test: the Redis rate-limit backend (core/redis.c) against a real redis-server that the test starts on a free
 * port (no persistence, in a temporary directory; never the system's 6379). The "workers" are bare h2o event loops
 * with a multithread queue, pumped by the test, so answers arrive exactly as they would on a data plane worker.
 *
 * Every GCRA decision goes through the stack call (cph_redis_gcra_stack), one limit at a time or several. Covers:
 * exact GCRA counts for one key (burst + 1 at once, then refusals, then the refill), two threads on one key
 * (exactly burst + 1 allowed in total), a flushed script cache (NOSCRIPT -> re-load -> answered), a stopped server
 * (SIGSTOP: TIMEOUT within the configured timeout plus margin, no second answer when the late reply comes; SIGCONT:
 * answers again), a killed server (UNAVAILABLE at once; after a restart on the same port the backend reconnects by
 * itself), a change of address (reconnects at once), a server that accepts but never answers (the connection is
 * replaced after the stall limit), a worker disposed with a call outstanding (its callback runs before dispose
 * returns), a stable number of open descriptors across reconnects, no configuration (UNAVAILABLE) and a stop with a
 * call outstanding (answered UNAVAILABLE, nothing leaks). Generic commands (cph_redis_command): binary-safe arguments,
 * every reply type copied (string with a NUL inside, nil, integer, status, nested array), an error reply is
 * UNAVAILABLE, fire-and-forget without a worker, TIMEOUT under SIGSTOP, interleaved with GCRA calls. Stacks: 10/s and
 * 3/s together pass exactly 3 of 10 concurrent calls and leave exactly 7 in the 10/s key (nothing written for a
 * refused call), a flushed script cache under a pipelined stack, the deadline under SIGSTOP, and the previous
 * release's one-key script and the stack script taking turns on one key (one state, one count: a rolling upgrade never
 * over-admits). Fails when redis-server is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include "dataplane/core/redis.h"

#define TIMEOUT_MS 100

typedef struct st_fake_worker_t {
    cph_worker_t w;
    h2o_evloop_t *loop;
} fake_worker_t;

typedef struct st_answer_t {
    int count;
    cph_redis_status_t status;
    cph_ratelimit_result_t res;
    uint64_t at_ms;
} answer_t;

static struct {
    char dir[64];
    uint16_t port;
    pid_t pid;
    fake_worker_t fw;
} fx;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- redis-server */

static uint16_t free_port(void)
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

static redisContext *sync_connect(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", fx.port, tv);

    if (c != NULL && c->err != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static void start_redis(void)
{
    char port[8], log[128];

    snprintf(port, sizeof(port), "%u", fx.port);
    snprintf(log, sizeof(log), "%s/redis.log", fx.dir);
    fx.pid = fork();
    assert_true(fx.pid >= 0);
    if (fx.pid == 0) {
        for (int fd = 3; fd < 1024; fd++) /* no copy of our sockets may outlive us in the server */
            close(fd);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
               fx.dir, "--logfile", log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* up to 5 s */
        redisContext *c = sync_connect();
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
    fail_msg("redis-server did not start on port %u", fx.port);
}

static void kill_redis(void)
{
    if (fx.pid <= 0)
        return;
    kill(fx.pid, SIGCONT);
    kill(fx.pid, SIGKILL);
    waitpid(fx.pid, NULL, 0);
    fx.pid = 0;
}

static long long script_loads(void)
{
    redisContext *c = sync_connect();
    redisReply *r;
    long long n = 0;

    assert_non_null(c);
    r = redisCommand(c, "INFO commandstats");
    assert_true(r != NULL && r->type == REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "cmdstat_script|load:calls=");
    if (p != NULL)
        n = atoll(p + strlen("cmdstat_script|load:calls="));
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static long long connections_received(void)
{
    redisContext *c = sync_connect();
    redisReply *r;
    long long n = -1;

    assert_non_null(c);
    r = redisCommand(c, "INFO stats");
    assert_true(r != NULL && r->type == REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "total_connections_received:");
    if (p != NULL)
        n = atoll(p + strlen("total_connections_received:"));
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static void redis_command(const char *cmd)
{
    redisContext *c = sync_connect();

    assert_non_null(c);
    redisReply *r = redisCommand(c, cmd);
    assert_true(r != NULL && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

/* ---------------------------------------------------------------- fake workers */

static void fake_worker_init(fake_worker_t *fw, uint32_t id)
{
    memset(fw, 0, sizeof(*fw));
    fw->loop = h2o_evloop_create();
    fw->w.id = id;
    fw->w.ctx.loop = fw->loop;
    fw->w.ctx.queue = h2o_multithread_create_queue(fw->loop);
    cph_redis_worker_init(&fw->w);
}

static void fake_worker_dispose(fake_worker_t *fw)
{
    cph_redis_worker_dispose(&fw->w);
    h2o_multithread_destroy_queue(fw->w.ctx.queue);
    h2o_evloop_destroy(fw->loop);
}

static void on_answer(void *ud, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res)
{
    answer_t *a = ud;

    a->count++;
    a->status = status;
    a->at_ms = mono_ms();
    if (status == CPH_REDIS_OK) {
        assert_non_null(res);
        a->res = res[0];
        assert_int_equal(refused, a->res.allowed ? 1 : 0); /* a stack of one */
    } else {
        assert_null(res);
    }
}

/* One limit: a stack of one. */
static void gcra(fake_worker_t *fw, const char *key, const cph_ratelimit_spec_t *spec, cph_redis_stack_cb cb, answer_t *a)
{
    size_t len = strlen(key);

    cph_redis_gcra_stack(&fw->w, 1, &key, &len, &spec, cb, a);
}

static void pump_until(fake_worker_t *fw, const int *count, int want)
{
    uint64_t end = mono_ms() + 10000;

    while (*count < want && mono_ms() < end)
        h2o_evloop_run(fw->loop, 10);
    assert_int_equal(*count, want);
}

static void configure(const char *host, uint16_t port, uint64_t timeout_ms)
{
    cph_redis_config_t cfg;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.host, sizeof(cfg.host), "%s", host);
    cfg.port = port;
    cfg.db = 3;
    cfg.timeout_ms = timeout_ms;
    cph_redis_configure(&cfg);
}

/* One call on the main fake worker, waited for. */
static answer_t call(const char *key, uint64_t rate, uint64_t period_ms, uint64_t burst)
{
    cph_ratelimit_spec_t spec = {rate, period_ms, burst};
    answer_t a = {0};

    gcra(&fx.fw, key, &spec, on_answer, &a);
    assert_int_equal(a.count, 0); /* never from inside the call */
    pump_until(&fx.fw, &a.count, 1);
    return a;
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    (void)state;
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server is not installed (scripts/deps.sh installs it)\n");
        return -1;
    }
    fake_worker_init(&fx.fw, 0);
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/cph-redis-test-XXXXXX");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    fx.port = free_port();
    start_redis();
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    cph_redis_stop();
    if (fx.fw.loop != NULL) /* NULL when the setup failed */
        fake_worker_dispose(&fx.fw);
    kill_redis();
    if (fx.dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", fx.dir);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_not_started_or_not_configured(void **state)
{
    (void)state;
    answer_t a = call("cph:rl:t:none:k", 5, 1000, 2); /* no I/O thread yet */
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);

    cph_redis_start();
    configure("", 0, TIMEOUT_MS);
    a = call("cph:rl:t:none:k", 5, 1000, 2);
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
}

static void test_exact_counts(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, 1000);
    /* 5 per second, burst 2: T = 200 ms, a fresh key allows 3 at once */
    for (uint64_t i = 0; i < 3; i++) {
        answer_t a = call("cph:rl:t:counts:k", 5, 1000, 2);
        assert_int_equal(a.status, CPH_REDIS_OK);
        assert_int_equal(a.res.allowed, 1);
        assert_int_equal(a.res.remaining, 2 - i);
        assert_int_equal(a.res.retry_after_ms, 0);
    }
    answer_t a = call("cph:rl:t:counts:k", 5, 1000, 2);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(a.res.allowed, 0);
    assert_int_equal(a.res.remaining, 0);
    assert_true(a.res.retry_after_ms > 0 && a.res.retry_after_ms <= 200);
    assert_true(a.res.reset_ms > 400 && a.res.reset_ms <= 600);
    /* another key is its own bucket */
    a = call("cph:rl:t:counts:other", 5, 1000, 2);
    assert_int_equal(a.res.allowed, 1);
    /* 250 ms later exactly one more has dripped in */
    sleep_ms(250);
    a = call("cph:rl:t:counts:k", 5, 1000, 2);
    assert_int_equal(a.res.allowed, 1);
    a = call("cph:rl:t:counts:k", 5, 1000, 2);
    assert_int_equal(a.res.allowed, 0);
    /* the highest rate (T = 1 ns) is an answer, not an error (an expiry of 0 ms would be one) */
    for (int i = 0; i < 3; i++) {
        a = call("cph:rl:t:counts:max", 1000000000, 1000, 0);
        assert_int_equal(a.status, CPH_REDIS_OK);
        assert_int_equal(a.res.allowed, 1);
    }
    /* the key expires with its bucket (PEXPIRE to the reset time) */
    redisContext *c = sync_connect();
    redisReply *r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(c, "PTTL cph:rl:t:counts:k");
    assert_true(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer <= 600);
    freeReplyObject(r);
    redisFree(c);
}

#define PER_THREAD 20

typedef struct st_thread_arg_t {
    uint32_t id;
    answer_t answers[PER_THREAD];
} thread_arg_t;

/* cmocka's assertions are for the main thread only */
static void on_thread_answer(void *ud, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res)
{
    answer_t *a = ud;

    (void)refused;
    a->count++;
    a->status = status;
    if (res != NULL)
        a->res = res[0];
}

static void *thread_main(void *p)
{
    thread_arg_t *t = p;
    fake_worker_t fw;
    cph_ratelimit_spec_t spec = {1, 3600000, 9};
    uint64_t end = mono_ms() + 10000;

    fake_worker_init(&fw, t->id);
    for (int i = 0; i < PER_THREAD; i++)
        gcra(&fw, "cph:rl:t:threads:k", &spec, on_thread_answer, &t->answers[i]);
    for (;;) {
        int n = 0;
        for (int i = 0; i < PER_THREAD; i++)
            n += t->answers[i].count;
        if (n == PER_THREAD || mono_ms() > end)
            break;
        h2o_evloop_run(fw.loop, 10);
    }
    fake_worker_dispose(&fw);
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, 1000);
    thread_arg_t args[2];
    pthread_t tids[2];
    int allowed = 0;

    memset(args, 0, sizeof(args));
    for (int i = 0; i < 2; i++) {
        args[i].id = (uint32_t)i + 1;
        assert_int_equal(pthread_create(&tids[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < PER_THREAD; j++) {
            assert_int_equal(args[i].answers[j].count, 1);
            assert_int_equal(args[i].answers[j].status, CPH_REDIS_OK);
            allowed += args[i].answers[j].res.allowed;
        }
    }
    assert_int_equal(allowed, 10); /* burst 9 + 1, however the two interleaved */
}

static void test_noscript_reloads(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, 1000);
    answer_t a = call("cph:rl:t:noscript:k", 100, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    long long loads = script_loads();
    redis_command("SCRIPT FLUSH");
    /* five calls pipelined: every NOSCRIPT is retried once, behind one SCRIPT LOAD */
    answer_t many[5];
    cph_ratelimit_spec_t spec = {100, 1000, 10};
    int done = 0;
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 5; i++)
        gcra(&fx.fw, "cph:rl:t:noscript:k2", &spec, on_answer, &many[i]);
    for (uint64_t end = mono_ms() + 10000; done < 5 && mono_ms() < end;) {
        h2o_evloop_run(fx.fw.loop, 10);
        done = 0;
        for (int i = 0; i < 5; i++)
            done += many[i].count;
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(many[i].count, 1);
        assert_int_equal(many[i].status, CPH_REDIS_OK);
        assert_int_equal(many[i].res.allowed, 1);
    }
    assert_int_equal(script_loads(), loads + 1); /* NOSCRIPT -> SCRIPT LOAD -> the retried EVALSHAs */
    a = call("cph:rl:t:noscript:k3", 100, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(script_loads(), loads + 1);
}

static void test_stopped_server_times_out(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, TIMEOUT_MS);
    answer_t a = call("cph:rl:t:stop:k", 100, 1000, 0); /* the timeout change alone keeps the connection */
    assert_int_equal(a.status, CPH_REDIS_OK);
    int fds = count_fds();

    assert_int_equal(kill(fx.pid, SIGSTOP), 0);
    uint64_t start = mono_ms();
    a = call("cph:rl:t:stop:k", 100, 1000, 0);
    uint64_t elapsed = a.at_ms - start;
    assert_int_equal(a.status, CPH_REDIS_TIMEOUT);
    assert_true(elapsed >= TIMEOUT_MS - 2);
    assert_true(elapsed <= 10 * TIMEOUT_MS);
    assert_int_equal(kill(fx.pid, SIGCONT), 0);
    /* the late reply is dropped: no second answer */
    uint64_t end = mono_ms() + 300;
    while (mono_ms() < end)
        h2o_evloop_run(fx.fw.loop, 10);
    assert_int_equal(a.count, 1);
    a = call("cph:rl:t:stop:k", 100, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(count_fds(), fds);
}

/* Calls until one is answered OK (the backoff reaches at most 5 s between attempts). */
static answer_t call_until_ok(const char *key)
{
    answer_t a = {0};
    uint64_t end = mono_ms() + 15000;

    while (mono_ms() < end) {
        a = call(key, 1000, 1000, 10);
        if (a.status == CPH_REDIS_OK)
            break;
        sleep_ms(50);
    }
    return a;
}

static void test_killed_server_reconnects(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, TIMEOUT_MS);
    answer_t a = call_until_ok("cph:rl:t:kill:k");
    assert_int_equal(a.status, CPH_REDIS_OK);
    int fds = count_fds();

    for (int round = 0; round < 3; round++) {
        kill_redis();
        sleep_ms(50);
        uint64_t start = mono_ms();
        a = call("cph:rl:t:kill:k", 1000, 1000, 10);
        assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
        assert_true(a.at_ms - start <= 10 * TIMEOUT_MS); /* at once, not after a timeout */
        start_redis();
        a = call_until_ok("cph:rl:t:kill:k");
        assert_int_equal(a.status, CPH_REDIS_OK);
        assert_int_equal(a.res.allowed, 1); /* a new server, a new bucket: the script was loaded again */
        assert_int_equal(count_fds(), fds);
    }
}

static void test_address_change(void **state)
{
    (void)state;
    int fds = count_fds();
    configure("127.0.0.1", free_port(), TIMEOUT_MS); /* nobody there */
    answer_t a = call("cph:rl:t:addr:k", 10, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
    configure("127.0.0.1", fx.port, TIMEOUT_MS); /* back: connects at once, no backoff wait */
    a = call("cph:rl:t:addr:k", 10, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(count_fds(), fds);
}

/* A server that accepts but never answers (stopped longer than the stall limit, 3 s): the connection is dropped and
 * made again, and works once the server does. */
static void test_stalled_connection_is_replaced(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, TIMEOUT_MS);
    answer_t a = call_until_ok("cph:rl:t:stall:k");
    assert_int_equal(a.status, CPH_REDIS_OK);
    long long before = connections_received();
    int fds = count_fds();

    assert_int_equal(kill(fx.pid, SIGSTOP), 0);
    a = call("cph:rl:t:stall:k", 1000, 1000, 10);
    assert_int_equal(a.status, CPH_REDIS_TIMEOUT);
    sleep_ms(3500);
    assert_int_equal(kill(fx.pid, SIGCONT), 0);
    a = call_until_ok("cph:rl:t:stall:k");
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_true(connections_received() >= before + 2); /* this INFO's own connection + at least one reconnect */
    assert_int_equal(count_fds(), fds);
}

typedef struct st_dispose_arg_t {
    answer_t answer;
    int count_at_dispose;
    uint64_t waited_ms;
} dispose_arg_t;

/* A worker that goes away with a call outstanding: dispose runs the callback (TIMEOUT) before it returns. */
static void *dispose_thread(void *p)
{
    dispose_arg_t *d = p;
    fake_worker_t fw;
    cph_ratelimit_spec_t spec = {10, 1000, 0};

    fake_worker_init(&fw, 7);
    gcra(&fw, "cph:rl:t:dispose:k", &spec, on_thread_answer, &d->answer);
    uint64_t start = mono_ms();
    d->count_at_dispose = d->answer.count;
    fake_worker_dispose(&fw);
    d->waited_ms = mono_ms() - start;
    return NULL;
}

static void test_dispose_waits_for_answers(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, TIMEOUT_MS);
    answer_t a = call_until_ok("cph:rl:t:dispose:k0");
    assert_int_equal(a.status, CPH_REDIS_OK);
    dispose_arg_t d;
    pthread_t tid;

    memset(&d, 0, sizeof(d));
    assert_int_equal(kill(fx.pid, SIGSTOP), 0);
    assert_int_equal(pthread_create(&tid, NULL, dispose_thread, &d), 0);
    pthread_join(tid, NULL);
    assert_int_equal(kill(fx.pid, SIGCONT), 0);
    assert_int_equal(d.count_at_dispose, 0);
    assert_int_equal(d.answer.count, 1);
    assert_int_equal(d.answer.status, CPH_REDIS_TIMEOUT);
    assert_true(d.waited_ms <= 10 * TIMEOUT_MS);
}

typedef struct st_reply_answer_t {
    int count;
    cph_redis_status_t status;
    cph_redis_reply_type_t type;
    long long integer;
    char str[64];
    size_t len, elements, inner_elements;
} reply_answer_t;

static void on_reply(void *ud, cph_redis_status_t status, const cph_redis_reply_t *reply)
{
    reply_answer_t *a = ud;

    a->count++;
    a->status = status;
    if (status != CPH_REDIS_OK) {
        assert_null(reply);
        return;
    }
    assert_non_null(reply);
    a->type = reply->type;
    a->integer = reply->integer;
    a->elements = reply->elements;
    if (reply->str != NULL) {
        assert_true(reply->len < sizeof(a->str));
        memcpy(a->str, reply->str, reply->len);
        assert_int_equal(reply->str[reply->len], '\0');
        a->len = reply->len;
    }
    if (reply->elements > 1 && reply->element[1]->type == CPH_REDIS_REPLY_ARRAY)
        a->inner_elements = reply->element[1]->elements;
}

/* One generic command of up to 6 NUL-terminated arguments (a "\\0" argument: a 3-byte value with a NUL inside). */
static reply_answer_t command(cph_worker_t *w, const char *a0, const char *a1, const char *a2, const char *a3)
{
    const char *argv[4] = {a0, a1, a2, a3};
    size_t argvlen[4];
    int argc = 0;
    reply_answer_t a = {0};

    for (; argc < 4 && argv[argc] != NULL; argc++)
        argvlen[argc] = strcmp(argv[argc], "\\0") == 0 ? 3 : strlen(argv[argc]);
    for (int i = 0; i < argc; i++)
        if (argvlen[i] == 3 && strcmp(argv[i], "\\0") == 0)
            argv[i] = "a\0b";
    cph_redis_command(w, argc, argv, argvlen, on_reply, &a);
    if (w != NULL) {
        assert_int_equal(a.count, 0); /* never from inside the call */
        pump_until(&fx.fw, &a.count, 1);
    }
    return a;
}

static void test_generic_command(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, TIMEOUT_MS);
    reply_answer_t a = command(&fx.fw.w, "SET", "cph:t:bin", "\\0", NULL);
    for (int i = 0; i < 100 && a.status != CPH_REDIS_OK; i++) { /* the first calls may come while connecting */
        sleep_ms(20);
        a = command(&fx.fw.w, "SET", "cph:t:bin", "\\0", NULL);
    }
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(a.type, CPH_REDIS_REPLY_STATUS);
    assert_string_equal(a.str, "OK");
    a = command(&fx.fw.w, "GET", "cph:t:bin", NULL, NULL);
    assert_int_equal(a.type, CPH_REDIS_REPLY_STRING);
    assert_int_equal(a.len, 3);
    assert_memory_equal(a.str, "a\0b", 3);
    a = command(&fx.fw.w, "GET", "cph:t:none", NULL, NULL);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(a.type, CPH_REDIS_REPLY_NIL);
    a = command(&fx.fw.w, "INCR", "cph:t:n", NULL, NULL);
    assert_int_equal(a.type, CPH_REDIS_REPLY_INTEGER);
    assert_int_equal(a.integer, 1);
    a = command(&fx.fw.w, "INCR", "cph:t:bin", NULL, NULL); /* an error reply */
    assert_int_equal(a.count, 1);
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
    a = command(&fx.fw.w, "EVAL", "return {1, {'x', 'y', 'z'}}", "0", NULL);
    assert_int_equal(a.type, CPH_REDIS_REPLY_ARRAY);
    assert_int_equal(a.elements, 2);
    assert_int_equal(a.inner_elements, 3);
    answer_t g = call("cph:rl:t:generic:k", 10, 1000, 0); /* GCRA decisions still work alongside */
    assert_int_equal(g.status, CPH_REDIS_OK);
    assert_true(g.res.allowed);

    a = command(NULL, "SET", "cph:t:faf", "1", NULL); /* no worker: fire-and-forget, never answered */
    sleep_ms(100);
    assert_int_equal(a.count, 0);
    a = command(&fx.fw.w, "GET", "cph:t:faf", NULL, NULL);
    assert_string_equal(a.str, "1");

    assert_int_equal(kill(fx.pid, SIGSTOP), 0);
    uint64_t t0 = mono_ms();
    a = command(&fx.fw.w, "GET", "cph:t:faf", NULL, NULL);
    assert_int_equal(a.status, CPH_REDIS_TIMEOUT);
    assert_true(mono_ms() - t0 < TIMEOUT_MS + 500);
    assert_int_equal(kill(fx.pid, SIGCONT), 0);
    for (int i = 0; i < 100 && a.status != CPH_REDIS_OK; i++) {
        sleep_ms(20);
        a = command(&fx.fw.w, "GET", "cph:t:faf", NULL, NULL);
    }
    assert_int_equal(a.status, CPH_REDIS_OK);
}

/* ---------------------------------------------------------------- stacks */

typedef struct st_stack_answer_t {
    int count;
    size_t n;
    cph_redis_status_t status;
    size_t refused;
    cph_ratelimit_result_t res[4];
    uint64_t at_ms;
} stack_answer_t;

static void on_stack_answer(void *ud, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res)
{
    stack_answer_t *a = ud;

    a->count++;
    a->status = status;
    a->refused = refused;
    a->at_ms = mono_ms();
    if (status == CPH_REDIS_OK)
        memcpy(a->res, res, a->n * sizeof(*res));
    else
        assert_null(res);
}

/* Submits `calls` stacks of the n limits (keys[i], specs[i]) at once (pipelined), then waits for every answer. */
static void stacks(size_t n, const char *const *keys, const cph_ratelimit_spec_t *const *specs, stack_answer_t *out, int calls)
{
    size_t lens[4];
    int done = 0;

    for (size_t i = 0; i != n; i++)
        lens[i] = strlen(keys[i]);
    memset(out, 0, calls * sizeof(*out));
    for (int c = 0; c != calls; c++) {
        out[c].n = n;
        cph_redis_gcra_stack(&fx.fw.w, n, keys, lens, specs, on_stack_answer, &out[c]);
    }
    for (uint64_t end = mono_ms() + 10000; done < calls && mono_ms() < end;) {
        h2o_evloop_run(fx.fw.loop, 10);
        done = 0;
        for (int c = 0; c != calls; c++)
            done += out[c].count;
    }
    for (int c = 0; c != calls; c++)
        assert_int_equal(out[c].count, 1);
}

/* 10/s (burst 9) and 3/s (burst 2) stacked: of 10 concurrent requests 3 pass, and the 7 refused by the 3/s limit left
 * the 10/s key untouched: exactly 7 more pass on it alone. The calls are pipelined: all of it takes a few ms, far
 * below the 100 ms the 10/s limit needs to drip one request back in. */
static void test_stack_all_or_nothing(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t ten = {10, 1000, 9}, three = {3, 1000, 2};
    const char *keys[2] = {"cph:rl:t:stack:ten", "cph:rl:t:stack:three"};
    const cph_ratelimit_spec_t *specs[2] = {&ten, &three};
    stack_answer_t a[10];
    int allowed = 0;

    configure("127.0.0.1", fx.port, 1000);
    answer_t warm = call_until_ok("cph:rl:t:stack:warm"); /* connected: the pipelined calls below all go out at once */
    assert_int_equal(warm.status, CPH_REDIS_OK);
    stacks(2, keys, specs, a, 10);
    for (int c = 0; c != 10; c++) {
        assert_int_equal(a[c].status, CPH_REDIS_OK);
        if (a[c].refused == 2) {
            assert_true(a[c].res[0].allowed && a[c].res[1].allowed);
            assert_int_equal(a[c].res[0].remaining, (uint64_t)(9 - allowed)); /* 9, 8, 7 left in the 10/s limit */
            assert_int_equal(a[c].res[1].remaining, (uint64_t)(2 - allowed)); /* 2, 1, 0 in the 3/s one */
            assert_true(a[c].res[1].reset_ms > 0 && a[c].res[1].reset_ms <= 1000);
            allowed++;
        } else {
            assert_int_equal(a[c].refused, 1); /* the 3/s limit refused */
            assert_false(a[c].res[1].allowed);
            assert_true(a[c].res[1].retry_after_ms > 0 && a[c].res[1].retry_after_ms <= 334);
            assert_true(a[c].res[1].reset_ms >= a[c].res[1].retry_after_ms);
            assert_false(a[c].res[0].allowed); /* not decided for the caller: zero */
            assert_int_equal(a[c].res[0].remaining, 0);
        }
    }
    assert_int_equal(allowed, 3);
    /* the 10/s limit alone: exactly 7 left */
    stacks(1, keys, specs, a, 8);
    for (int c = 0; c != 8; c++) {
        assert_int_equal(a[c].status, CPH_REDIS_OK);
        assert_int_equal(a[c].refused, c < 7 ? 1 : 0);
        if (c < 7)
            assert_int_equal(a[c].res[0].remaining, (uint64_t)(6 - c));
    }
}

/* SCRIPT FLUSH, then stacks pipelined: every NOSCRIPT is retried once behind one SCRIPT LOAD, and the decisions are
 * as exact as before (burst 4 of one key: 5 pass, one is refused; the second key is untouched by the refusal). */
static void test_stack_noscript_reloads(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t wide = {1, 3600000, 99}, narrow = {1, 3600000, 4};
    const char *keys[2] = {"cph:rl:t:stacknoscript:wide", "cph:rl:t:stacknoscript:narrow"};
    const cph_ratelimit_spec_t *specs[2] = {&wide, &narrow};
    stack_answer_t a[6];
    int allowed = 0;

    configure("127.0.0.1", fx.port, 1000);
    answer_t warm = call_until_ok("cph:rl:t:stacknoscript:warm");
    assert_int_equal(warm.status, CPH_REDIS_OK);
    long long loads = script_loads();
    redis_command("SCRIPT FLUSH");
    stacks(2, keys, specs, a, 6);
    for (int c = 0; c != 6; c++) {
        assert_int_equal(a[c].status, CPH_REDIS_OK);
        allowed += a[c].refused == 2;
        if (a[c].refused != 2)
            assert_int_equal(a[c].refused, 1);
    }
    assert_int_equal(allowed, 5);
    assert_int_equal(script_loads(), loads + 1);
    stacks(1, keys, specs, a, 1); /* the wide key was charged 5 times, not 6 */
    assert_int_equal(a[0].refused, 1);
    assert_int_equal(a[0].res[0].remaining, 100 - 6); /* 100 at once, the 6th charge */
}

static void test_stack_stopped_server_times_out(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t s1 = {100, 1000, 0}, s2 = {1000, 1000, 10};
    const char *keys[2] = {"cph:rl:t:stackstop:a", "cph:rl:t:stackstop:b"};
    const cph_ratelimit_spec_t *specs[2] = {&s1, &s2};
    stack_answer_t a[1];

    configure("127.0.0.1", fx.port, TIMEOUT_MS);
    answer_t warm = call_until_ok("cph:rl:t:stackstop:warm");
    assert_int_equal(warm.status, CPH_REDIS_OK);
    assert_int_equal(kill(fx.pid, SIGSTOP), 0);
    uint64_t start = mono_ms();
    stacks(2, keys, specs, a, 1);
    assert_int_equal(a[0].status, CPH_REDIS_TIMEOUT);
    assert_true(a[0].at_ms - start >= TIMEOUT_MS - 2);
    assert_true(a[0].at_ms - start <= 10 * TIMEOUT_MS);
    assert_int_equal(kill(fx.pid, SIGCONT), 0);
    uint64_t end = mono_ms() + 300; /* the late reply is dropped: no second answer */
    while (mono_ms() < end)
        h2o_evloop_run(fx.fw.loop, 10);
    assert_int_equal(a[0].count, 1);
}

/* The one-key script of the release before stacks, verbatim: data planes of both releases share a Redis during a
 * rolling upgrade. */
static const char OLD_SCRIPT[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
                                 "local t = redis.call('TIME')\n"
                                 "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                 "local T = tonumber(ARGV[1]) * 1000 / tonumber(ARGV[2])\n"
                                 "local tau = tonumber(ARGV[3]) * T\n"
                                 "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
                                 "if tat < now then tat = now end\n"
                                 "if tat - tau > now then\n"
                                 "  return {0, 0, math.ceil((tat - tau - now) / 1000), math.ceil((tat - now) / 1000)}\n"
                                 "end\n"
                                 "tat = tat + T\n"
                                 "local px = math.ceil((tat - now) / 1000)\n"
                                 "if px < 1 then px = 1 end\n"
                                 "redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', string.format('%.0f', px))\n"
                                 "return {1, math.floor((now + tau - tat) / T) + 1, 0, math.ceil((tat - now) / 1000)}\n";

/* The old script and the stack script take turns on one key (1 per hour, burst 9): one count of 10, remaining going
 * down by one at every step whichever script took it, the same refusal from both, and the same expiry. */
static void test_stack_and_old_script_share_a_key(void **state)
{
    (void)state;
    const cph_ratelimit_spec_t spec = {1, 3600000, 9};
    const char *key = "cph:rl:t:upgrade:k";
    const cph_ratelimit_spec_t *specs[1] = {&spec};
    redisContext *c = sync_connect();
    int allowed = 0;

    configure("127.0.0.1", fx.port, 1000);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    for (int i = 0; i != 14; i++) {
        cph_ratelimit_result_t res;
        if (i % 2 == 0) {
            redisReply *r = redisCommand(c, "EVAL %s 1 %s 3600000 1 9", OLD_SCRIPT, key);
            assert_true(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
            res = (cph_ratelimit_result_t){(int)r->element[0]->integer, (uint64_t)r->element[1]->integer,
                                           (uint64_t)r->element[2]->integer, (uint64_t)r->element[3]->integer};
            freeReplyObject(r);
        } else {
            stack_answer_t a[1];
            stacks(1, &key, specs, a, 1);
            assert_int_equal(a[0].status, CPH_REDIS_OK);
            res = a[0].res[0];
        }
        if (i < 10) {
            assert_true(res.allowed);
            assert_int_equal(res.remaining, (uint64_t)(9 - i));
            allowed++;
        } else {
            assert_false(res.allowed);
            assert_true(res.retry_after_ms > 3590000 && res.retry_after_ms <= 3600000);
            assert_true(res.reset_ms > 10 * 3600000 - 10000 && res.reset_ms <= 10 * 3600000);
        }
        redisReply *r = redisCommand(c, "PTTL %s", key);
        assert_true(r != NULL && r->type == REDIS_REPLY_INTEGER);
        assert_true(r->integer > (long long)(i < 10 ? i + 1 : 10) * 3600000 - 10000);
        assert_true(r->integer <= (long long)(i < 10 ? i + 1 : 10) * 3600000);
        freeReplyObject(r);
    }
    assert_int_equal(allowed, 10);
    redisFree(c);
}

static void test_stop_answers_pending(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.port, 5000);
    answer_t a = call("cph:rl:t:shutdown:k", 10, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    cph_ratelimit_spec_t spec = {10, 1000, 0};
    answer_t pending = {0};

    assert_int_equal(kill(fx.pid, SIGSTOP), 0);
    gcra(&fx.fw, "cph:rl:t:shutdown:k", &spec, on_answer, &pending);
    sleep_ms(50);
    cph_redis_stop();
    pump_until(&fx.fw, &pending.count, 1);
    assert_int_equal(pending.status, CPH_REDIS_UNAVAILABLE);
    assert_int_equal(kill(fx.pid, SIGCONT), 0);
    a = call("cph:rl:t:shutdown:k", 10, 1000, 0); /* stopped: answered at once */
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_started_or_not_configured),
        cmocka_unit_test(test_exact_counts),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_noscript_reloads),
        cmocka_unit_test(test_stopped_server_times_out),
        cmocka_unit_test(test_killed_server_reconnects),
        cmocka_unit_test(test_address_change),
        cmocka_unit_test(test_dispose_waits_for_answers),
        cmocka_unit_test(test_stalled_connection_is_replaced),
        cmocka_unit_test(test_generic_command),
        cmocka_unit_test(test_stack_all_or_nothing),
        cmocka_unit_test(test_stack_noscript_reloads),
        cmocka_unit_test(test_stack_stopped_server_times_out),
        cmocka_unit_test(test_stack_and_old_script_share_a_key),
        cmocka_unit_test(test_stop_answers_pending),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
