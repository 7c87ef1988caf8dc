/*
 * redis_test: the Redis rate-limit backend (core/redis.c) against a real redis-server that the test starts on a free
 * port (redis_fixture.h: no persistence, in a temporary directory; never the system's 6379). The "workers" are bare
 * h2o event loops with a multithread queue, pumped by the test, so answers arrive exactly as they would on a data plane
 * worker.
 *
 * Every GCRA decision goes through the stack call (cph_redis_gcra_stack), here one limit at a time; stacks of several
 * limits are redis_stack_test.c's. Covers: exact GCRA counts for one key (burst + 1 at once, then refusals, then the
 * refill), two threads on one key (exactly burst + 1 allowed in total), a flushed script cache (NOSCRIPT -> re-load ->
 * answered), a stopped server (SIGSTOP: TIMEOUT within the configured timeout plus margin, no second answer when the
 * late reply comes; SIGCONT: answers again), a killed server (UNAVAILABLE at once; after a restart on the same port the
 * backend reconnects by itself), a change of address (reconnects at once), a server that accepts but never answers
 * (the connection is replaced after the stall limit), a worker disposed with a call outstanding (its callback runs
 * before dispose returns, without waiting for the deadline), a stable number of open descriptors across reconnects, no
 * configuration (UNAVAILABLE) and a stop with a call outstanding (answered UNAVAILABLE, nothing leaks). Generic commands
 * (cph_redis_command): binary-safe arguments, every reply type copied (string with a NUL inside, nil, integer, status, nested
 * array), an error reply is UNAVAILABLE, fire-and-forget without a worker (on this thread's worker, and from a thread that is
 * none), TIMEOUT under SIGSTOP, interleaved with GCRA calls. Fails when redis-server is not installed.
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
#include <cmocka.h>
#include "dataplane/core/redis.h"
#include "redis_fixture.h"

#define TIMEOUT_MS 100
#define DB 3

typedef struct st_answer_t {
    int count;
    cph_redis_status_t status;
    cph_ratelimit_result_t res;
    uint64_t at_ms;
} answer_t;

static struct {
    redis_fixture_t redis;
    cph_worker_t w;
} fx;

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

/* How many SCRIPT LOADs the server has run. */
static long long script_loads(void)
{
    return redis_fixture_info(&fx.redis, "commandstats", "cmdstat_script|load:calls=");
}

/* How many connections the server has accepted so far. */
static long long connections_received(void)
{
    return redis_fixture_info(&fx.redis, "stats", "total_connections_received:");
}

/* ---------------------------------------------------------------- calls */

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
static void gcra(cph_worker_t *w, const char *key, const cph_ratelimit_spec_t *spec, cph_redis_stack_cb cb, answer_t *a)
{
    size_t len = strlen(key);

    cph_redis_gcra_stack(w, 1, &key, &len, &spec, cb, a);
}

static void configure(const char *host, uint16_t port, uint64_t timeout_ms)
{
    redis_fixture_configure(host, port, DB, timeout_ms);
}

/* One call on the main fake worker, waited for. */
static answer_t call(const char *key, uint64_t rate, uint64_t period_ms, uint64_t burst)
{
    cph_ratelimit_spec_t spec = {rate, period_ms, burst};
    answer_t a = {0};

    gcra(&fx.w, key, &spec, on_answer, &a);
    assert_int_equal(a.count, 0); /* never from inside the call */
    redis_fixture_pump(&fx.w, &a.count, 1);
    return a;
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    (void)state;
    redis_fixture_worker_init(&fx.w, 0);
    return redis_fixture_setup(&fx.redis, "redis-test");
}

static int group_teardown(void **state)
{
    (void)state;
    cph_redis_stop();
    redis_fixture_worker_dispose(&fx.w);
    return redis_fixture_teardown(&fx.redis);
}

/* ---------------------------------------------------------------- tests */

static void test_not_started_or_not_configured(void **state)
{
    (void)state;
    answer_t a = call("cph:rl:t:none:k", 5, 1000, 2); /* not started yet */
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);

    cph_redis_start();
    configure("", 0, TIMEOUT_MS);
    a = call("cph:rl:t:none:k", 5, 1000, 2);
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
}

static void test_exact_counts(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.redis.port, 1000);
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
    redisContext *c = redis_fixture_connect(&fx.redis);
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
    cph_worker_t w;
    cph_ratelimit_spec_t spec = {1, 3600000, 9};
    uint64_t end = mono_ms() + 10000;

    memset(&w, 0, sizeof(w));
    redis_fixture_worker_init(&w, t->id);
    for (int i = 0; i < PER_THREAD; i++)
        gcra(&w, "cph:rl:t:threads:k", &spec, on_thread_answer, &t->answers[i]);
    for (;;) {
        int n = 0;
        for (int i = 0; i < PER_THREAD; i++)
            n += t->answers[i].count;
        if (n == PER_THREAD || mono_ms() > end)
            break;
        h2o_evloop_run(w.ctx.loop, 10);
    }
    redis_fixture_worker_dispose(&w);
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.redis.port, 1000);
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
    configure("127.0.0.1", fx.redis.port, 1000);
    answer_t a = call("cph:rl:t:noscript:k", 100, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    long long loads = script_loads();
    redis_fixture_command(&fx.redis, "SCRIPT FLUSH");
    /* five calls pipelined: every NOSCRIPT is retried once, behind one SCRIPT LOAD */
    answer_t many[5];
    cph_ratelimit_spec_t spec = {100, 1000, 10};
    int done = 0;
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 5; i++)
        gcra(&fx.w, "cph:rl:t:noscript:k2", &spec, on_answer, &many[i]);
    for (uint64_t end = mono_ms() + 10000; done < 5 && mono_ms() < end;) {
        h2o_evloop_run(fx.w.ctx.loop, 10);
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
    configure("127.0.0.1", fx.redis.port, TIMEOUT_MS);
    answer_t a = call("cph:rl:t:stop:k", 100, 1000, 0); /* the timeout change alone keeps the connection */
    assert_int_equal(a.status, CPH_REDIS_OK);
    int fds = count_fds();

    redis_fixture_pause(&fx.redis);
    uint64_t start = mono_ms();
    a = call("cph:rl:t:stop:k", 100, 1000, 0);
    uint64_t elapsed = a.at_ms - start;
    assert_int_equal(a.status, CPH_REDIS_TIMEOUT);
    assert_true(elapsed >= TIMEOUT_MS - 2);
    assert_true(elapsed <= 10 * TIMEOUT_MS);
    redis_fixture_resume(&fx.redis);
    /* the late reply is dropped: no second answer */
    uint64_t end = mono_ms() + 300;
    while (mono_ms() < end)
        h2o_evloop_run(fx.w.ctx.loop, 10);
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
    configure("127.0.0.1", fx.redis.port, TIMEOUT_MS);
    answer_t a = call_until_ok("cph:rl:t:kill:k");
    assert_int_equal(a.status, CPH_REDIS_OK);
    int fds = count_fds();

    for (int round = 0; round < 3; round++) {
        redis_fixture_kill(&fx.redis);
        sleep_ms(50);
        uint64_t start = mono_ms();
        a = call("cph:rl:t:kill:k", 1000, 1000, 10);
        assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
        assert_true(a.at_ms - start <= 10 * TIMEOUT_MS); /* at once, not after a timeout */
        redis_fixture_start(&fx.redis);
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
    configure("127.0.0.1", redis_fixture_free_port(), TIMEOUT_MS); /* nobody there */
    answer_t a = call("cph:rl:t:addr:k", 10, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
    configure("127.0.0.1", fx.redis.port, TIMEOUT_MS); /* back: connects at once, no backoff wait */
    a = call("cph:rl:t:addr:k", 10, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(count_fds(), fds);
}

/* A server that accepts but never answers (stopped longer than the stall limit, 3 s): the connection is dropped and
 * made again, and works once the server does. */
static void test_stalled_connection_is_replaced(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.redis.port, TIMEOUT_MS);
    answer_t a = call_until_ok("cph:rl:t:stall:k");
    assert_int_equal(a.status, CPH_REDIS_OK);
    long long before = connections_received();
    int fds = count_fds();

    redis_fixture_pause(&fx.redis);
    a = call("cph:rl:t:stall:k", 1000, 1000, 10);
    assert_int_equal(a.status, CPH_REDIS_TIMEOUT);
    for (uint64_t end = mono_ms() + 3500; mono_ms() < end;) /* the worker's loop runs on, as a data plane's does */
        h2o_evloop_run(fx.w.ctx.loop, 10);
    redis_fixture_resume(&fx.redis);
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

/* A worker that goes away with a call outstanding: dispose runs the callback (UNAVAILABLE) before it returns, at once. */
static void *dispose_thread(void *p)
{
    dispose_arg_t *d = p;
    cph_worker_t w;
    cph_ratelimit_spec_t spec = {10, 1000, 0};

    memset(&w, 0, sizeof(w));
    redis_fixture_worker_init(&w, 7);
    gcra(&w, "cph:rl:t:dispose:k", &spec, on_thread_answer, &d->answer);
    uint64_t start = mono_ms();
    d->count_at_dispose = d->answer.count;
    redis_fixture_worker_dispose(&w);
    d->waited_ms = mono_ms() - start;
    return NULL;
}

static void test_dispose_waits_for_answers(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.redis.port, TIMEOUT_MS);
    answer_t a = call_until_ok("cph:rl:t:dispose:k0");
    assert_int_equal(a.status, CPH_REDIS_OK);
    dispose_arg_t d;
    pthread_t tid;

    memset(&d, 0, sizeof(d));
    redis_fixture_pause(&fx.redis);
    assert_int_equal(pthread_create(&tid, NULL, dispose_thread, &d), 0);
    pthread_join(tid, NULL);
    redis_fixture_resume(&fx.redis);
    assert_int_equal(d.count_at_dispose, 0);
    assert_int_equal(d.answer.count, 1);
    assert_int_equal(d.answer.status, CPH_REDIS_UNAVAILABLE);
    assert_true(d.waited_ms < TIMEOUT_MS); /* no wait for the deadline */
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
        redis_fixture_pump(&fx.w, &a.count, 1);
    }
    return a;
}

static void *foreign_thread(void *p)
{
    const char *argv[] = {"SET", "cph:t:foreign", "a\0b"};
    const size_t argvlen[] = {3, 13, 3};

    (void)p;
    cph_redis_command(NULL, 3, argv, argvlen, NULL, NULL);
    return NULL;
}

static void test_generic_command(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.redis.port, TIMEOUT_MS);
    reply_answer_t a = command(&fx.w, "SET", "cph:t:bin", "\\0", NULL);
    for (int i = 0; i < 100 && a.status != CPH_REDIS_OK; i++) { /* the first calls may come while connecting */
        sleep_ms(20);
        a = command(&fx.w, "SET", "cph:t:bin", "\\0", NULL);
    }
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(a.type, CPH_REDIS_REPLY_STATUS);
    assert_string_equal(a.str, "OK");
    a = command(&fx.w, "GET", "cph:t:bin", NULL, NULL);
    assert_int_equal(a.type, CPH_REDIS_REPLY_STRING);
    assert_int_equal(a.len, 3);
    assert_memory_equal(a.str, "a\0b", 3);
    a = command(&fx.w, "GET", "cph:t:none", NULL, NULL);
    assert_int_equal(a.status, CPH_REDIS_OK);
    assert_int_equal(a.type, CPH_REDIS_REPLY_NIL);
    a = command(&fx.w, "INCR", "cph:t:n", NULL, NULL);
    assert_int_equal(a.type, CPH_REDIS_REPLY_INTEGER);
    assert_int_equal(a.integer, 1);
    a = command(&fx.w, "INCR", "cph:t:bin", NULL, NULL); /* an error reply */
    assert_int_equal(a.count, 1);
    assert_int_equal(a.status, CPH_REDIS_UNAVAILABLE);
    a = command(&fx.w, "EVAL", "return {1, {'x', 'y', 'z'}}", "0", NULL);
    assert_int_equal(a.type, CPH_REDIS_REPLY_ARRAY);
    assert_int_equal(a.elements, 2);
    assert_int_equal(a.inner_elements, 3);
    answer_t g = call("cph:rl:t:generic:k", 10, 1000, 0); /* GCRA decisions still work alongside */
    assert_int_equal(g.status, CPH_REDIS_OK);
    assert_true(g.res.allowed);

    a = command(NULL, "SET", "cph:t:faf", "1", NULL); /* no worker: fire-and-forget, never answered */
    for (uint64_t end = mono_ms() + 100; mono_ms() < end;)
        h2o_evloop_run(fx.w.ctx.loop, 10);
    assert_int_equal(a.count, 0);
    a = command(&fx.w, "GET", "cph:t:faf", NULL, NULL);
    assert_string_equal(a.str, "1");
    /* from a thread that is no worker (the control thread's purges): handed to a worker, which writes it */
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, foreign_thread, NULL), 0);
    pthread_join(tid, NULL);
    for (uint64_t end = mono_ms() + 100; mono_ms() < end;)
        h2o_evloop_run(fx.w.ctx.loop, 10);
    a = command(&fx.w, "GET", "cph:t:foreign", NULL, NULL);
    assert_int_equal(a.len, 3);
    assert_memory_equal(a.str, "a\0b", 3);

    redis_fixture_pause(&fx.redis);
    uint64_t t0 = mono_ms();
    a = command(&fx.w, "GET", "cph:t:faf", NULL, NULL);
    assert_int_equal(a.status, CPH_REDIS_TIMEOUT);
    assert_true(mono_ms() - t0 < TIMEOUT_MS + 500);
    redis_fixture_resume(&fx.redis);
    for (int i = 0; i < 100 && a.status != CPH_REDIS_OK; i++) {
        sleep_ms(20);
        a = command(&fx.w, "GET", "cph:t:faf", NULL, NULL);
    }
    assert_int_equal(a.status, CPH_REDIS_OK);
}

static void test_stop_answers_pending(void **state)
{
    (void)state;
    configure("127.0.0.1", fx.redis.port, 5000);
    answer_t a = call("cph:rl:t:shutdown:k", 10, 1000, 0);
    assert_int_equal(a.status, CPH_REDIS_OK);
    cph_ratelimit_spec_t spec = {10, 1000, 0};
    answer_t pending = {0};

    redis_fixture_pause(&fx.redis);
    gcra(&fx.w, "cph:rl:t:shutdown:k", &spec, on_answer, &pending);
    sleep_ms(50);
    cph_redis_stop();
    redis_fixture_pump(&fx.w, &pending.count, 1);
    assert_int_equal(pending.status, CPH_REDIS_UNAVAILABLE);
    redis_fixture_resume(&fx.redis);
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
        cmocka_unit_test(test_stop_answers_pending),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
