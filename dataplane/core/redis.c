/*
 * redis: the Redis client of the shared rate-limit backend (docs/dataplane.md "Rate limiting") and of the shared response
 * cache (core/cache_redis.c). One I/O thread per process owns the one hiredis asynchronous connection and runs a poll()
 * loop over it and an eventfd; workers never touch hiredis.
 *
 * hiredis 0.14 brings neither a timeout for asynchronous calls nor an adapter for our loop, so both live here: the
 * event hooks (ev.addRead...) only set the flags the loop polls with, and every call carries a deadline in a list
 * kept in deadline order (the poll timeout is the nearest one). An expired call is answered CPH_REDIS_TIMEOUT at once;
 * its hiredis callback, when the reply comes later or the connection dies, finds it answered and frees only the
 * bookkeeping. A connection that answers nothing for a long while (a peer gone without a reset) is dropped.
 *
 * Calls reach the thread through a mutex-protected queue and an eventfd; answers go back to the submitting worker
 * through an h2o_multithread message on a receiver registered per worker, so callbacks run on the worker's loop.
 * While no connection exists (not configured, or waiting out a reconnect backoff), calls are answered
 * CPH_REDIS_UNAVAILABLE at once: nothing ever hangs. A call made while connecting is pipelined behind SELECT and
 * SCRIPT LOAD, and fails with the connection if that fails. Every callback runs exactly once: a worker that goes away
 * first waits (at most its timeout plus a second) for the answers it is owed and runs them itself.
 *
 * Every command is formatted on the submitting thread (redisFormatCommandArgv) and handed to hiredis as it is. A rate
 * limit stack is one EVALSHA of the GCRA script (core/redis_script.c: all or nothing on the server); its formatted
 * command is kept until the answer, so a NOSCRIPT (a flushed script cache) loads the script again and retries once. A
 * generic command's reply is deep-copied on the I/O thread (core/redis_reply.c) so the worker reads it on its own loop.
 * A call without a worker (the control thread's purges) is answered into nothing.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include "proto/log.h"
#include "dataplane/core/redis.h"
#include "dataplane/core/redis_reply.h"
#include "dataplane/core/redis_script.h"

#define MODULE "dp/core/redis"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 2000
#define STALL_MIN_MS 3000 /* no reply at all for this long (and 20 timeouts) while calls wait: reconnect */
#define DEFAULT_TIMEOUT_MS 50

/** Per worker: where its answers go. Freed by whoever drops the last reference (the worker's own, or a call's). */
typedef struct st_cph_redis_worker_t {
    h2o_multithread_receiver_t receiver;
    cph_worker_t *worker;
    size_t refs;         /* under io.mutex: 1 for the worker while registered + 1 per call not yet delivered or dropped */
    int disposing;       /* under io.mutex: answers go to `late`, for cph_redis_worker_dispose to run */
    h2o_linklist_t late; /* under io.mutex: answer_t */
    int disposed;        /* under io.mutex: the worker is gone; answers are dropped */
} cph_redis_worker_t;

typedef struct st_call_t {
    h2o_linklist_t link;    /* io.queue while submitted, then io.deadlines while unanswered in hiredis */
    cph_redis_worker_t *rw; /* NULL: fire-and-forget */
    cph_redis_stack_cb cb;  /* a rate-limit stack of n limits */
    cph_redis_reply_cb rcb; /* a generic command */
    size_t n;
    char *cmd; /* the formatted command: a generic one until it is issued, a stack's until the call is freed (retry) */
    size_t cmd_len;
    void *ud;
    uint64_t submitted_ms;
    uint64_t deadline_ms;
    int answered; /* the worker has (or will get) its answer; a reply now only frees this */
    int retried;  /* NOSCRIPT already re-loaded once */
} call_t;

typedef struct st_answer_t {
    h2o_multithread_message_t super;
    cph_redis_worker_t *rw;
    cph_redis_stack_cb cb;
    cph_redis_reply_cb rcb;
    void *ud;
    cph_redis_status_t status;
    cph_redis_reply_t *reply; /* owned; generic commands */
    size_t refused;
    cph_ratelimit_result_t res[]; /* a stack's n results */
} answer_t;

static struct {
    pthread_mutex_t mutex;    /* guards the fields up to tid, and every rw's refs, disposing, late, disposed */
    pthread_cond_t late_cond; /* an answer went to a disposing worker's `late` list */
    h2o_linklist_t queue;     /* call_t submitted by workers */
    cph_redis_config_t cfg;
    int cfg_changed;
    int running;
    int stop;
    int efd;
    pthread_t tid;
    /* I/O thread only */
    cph_redis_config_t cur;
    redisAsyncContext *ac;
    int reading, writing, connected;
    int reloading; /* a SCRIPT LOAD after NOSCRIPT is on its way: retries just follow it */
    uint64_t error_logged_ms;
    h2o_linklist_t deadlines;
    size_t inflight; /* commands hiredis holds */
    uint64_t waiting_since_ms, connect_deadline_ms, retry_at_ms;
    unsigned attempts;
    uint32_t rng;
} io = {.mutex = PTHREAD_MUTEX_INITIALIZER, .late_cond = PTHREAD_COND_INITIALIZER, .efd = -1};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- answers (any thread -> the worker) */

static void release_worker_locked(cph_redis_worker_t *rw, int *free_it)
{
    *free_it = --rw->refs == 0;
}

static void answer_free(answer_t *a)
{
    cph_redis_reply_free(a->reply);
    free(a);
}

/* Hands the answer to its worker; reply (owned) goes with it. A call without a worker only frees it. */
static void deliver(const call_t *call, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res,
                    cph_redis_reply_t *reply)
{
    cph_redis_worker_t *rw = call->rw;
    answer_t *a;
    int free_it = 0, dropped;

    if (rw == NULL) {
        cph_redis_reply_free(reply);
        return;
    }
    if ((a = calloc(1, sizeof(*a) + call->n * sizeof(a->res[0]))) == NULL)
        cph_fatal(MODULE, "out of memory");
    a->rw = rw;
    a->cb = call->cb;
    a->rcb = call->rcb;
    a->ud = call->ud;
    a->status = status;
    a->reply = reply;
    a->refused = call->n;
    if (status == CPH_REDIS_OK && res != NULL) {
        a->refused = refused;
        memcpy(a->res, res, call->n * sizeof(a->res[0]));
    }
    pthread_mutex_lock(&io.mutex);
    if ((dropped = rw->disposed) != 0) {
        release_worker_locked(rw, &free_it);
    } else if (rw->disposing) {
        h2o_linklist_insert(&rw->late, &a->super.link);
        pthread_cond_broadcast(&io.late_cond);
    } else {
        h2o_multithread_send_message(&rw->receiver, &a->super);
    }
    pthread_mutex_unlock(&io.mutex);
    if (dropped) /* waited for long enough (cph_redis_worker_dispose) */
        answer_free(a);
    if (free_it)
        free(rw);
}

/* On the worker's loop. */
static void on_answer(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    cph_redis_worker_t *rw = H2O_STRUCT_FROM_MEMBER(cph_redis_worker_t, receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        answer_t *a = H2O_STRUCT_FROM_MEMBER(answer_t, super.link, messages->next);
        h2o_linklist_unlink(&a->super.link);
        if (a->rcb != NULL)
            a->rcb(a->ud, a->status, a->status == CPH_REDIS_OK ? a->reply : NULL);
        else if (a->cb != NULL)
            a->cb(a->ud, a->status, a->refused, a->status == CPH_REDIS_OK ? a->res : NULL);
        answer_free(a);
        int free_it;
        pthread_mutex_lock(&io.mutex);
        release_worker_locked(rw, &free_it);
        pthread_mutex_unlock(&io.mutex);
        assert(!free_it); /* the worker's own reference lasts until dispose */
    }
}

/* ---------------------------------------------------------------- calls on the I/O thread */

/* Answers a call once (a later answer only frees what it brought): a generic reply or a stack's results. */
static void answer_reply(call_t *call, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res,
                         cph_redis_reply_t *reply)
{
    if (call->answered) {
        cph_redis_reply_free(reply);
        return;
    }
    call->answered = 1;
    if (h2o_linklist_is_linked(&call->link))
        h2o_linklist_unlink(&call->link);
    deliver(call, status, refused, res, reply);
}

static void answer_call(call_t *call, cph_redis_status_t status)
{
    answer_reply(call, status, 0, NULL, NULL);
}

static void call_free(call_t *call)
{
    if (call->cmd != NULL)
        redisFreeCommand(call->cmd);
    free(call);
}

static void link_by_deadline(call_t *call)
{
    h2o_linklist_t *pos = io.deadlines.prev;

    /* every call has the same timeout, so the new one almost always goes last */
    while (pos != &io.deadlines && H2O_STRUCT_FROM_MEMBER(call_t, link, pos)->deadline_ms > call->deadline_ms)
        pos = pos->prev;
    h2o_linklist_insert(pos->next, &call->link);
}

/* Issues one hiredis command, counting it for the stall check. Returns 0, or -1 when the context refuses it. */
static int command(redisCallbackFn *fn, void *priv, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = redisvAsyncCommand(io.ac, fn, priv, fmt, ap);
    va_end(ap);
    if (r != REDIS_OK)
        return -1;
    if (io.inflight++ == 0)
        io.waiting_since_ms = now_ms();
    return 0;
}

static void on_reply_progress(void)
{
    io.inflight--;
    io.waiting_since_ms = now_ms();
}

static void on_script_load(redisAsyncContext *ac, void *reply, void *priv);
static int issue(call_t *call);

static void on_gcra_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *r = reply;
    call_t *call = priv;
    cph_ratelimit_result_t res[CPH_RATELIMIT_MAX_STACK];
    size_t refused;

    on_reply_progress();
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !call->retried) {
        /* the script cache was flushed (SCRIPT FLUSH, a restart behind a proxy): load it again, then retry once */
        call->retried = 1;
        if ((io.reloading || command(on_script_load, (void *)2, "SCRIPT LOAD %s", cph_redis_script_text()) == 0) &&
            issue(call) == 0) {
            io.reloading = 1; /* the retry is queued behind the load on the same connection */
            return;
        }
    }
    if (r == NULL) {
        answer_call(call, CPH_REDIS_UNAVAILABLE);
    } else if (cph_redis_script_parse(r, call->n, &refused, res) == 0) {
        answer_reply(call, CPH_REDIS_OK, refused, res, NULL);
    } else {
        uint64_t now = now_ms();
        if (now - io.error_logged_ms >= 1000) { /* one line a second, not one per request */
            io.error_logged_ms = now;
            cph_log_warn(MODULE, "rate-limit script failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        }
        answer_call(call, CPH_REDIS_UNAVAILABLE);
    }
    call_free(call);
}

static void on_generic_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    redisReply *r = reply;
    call_t *call = priv;

    on_reply_progress();
    if (r == NULL) {
        answer_call(call, CPH_REDIS_UNAVAILABLE);
    } else if (cph_redis_reply_has_error(r)) {
        uint64_t now = now_ms();
        if (now - io.error_logged_ms >= 1000) {
            io.error_logged_ms = now;
            cph_log_warn(MODULE, "redis command failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "an error in the reply");
        }
        answer_call(call, CPH_REDIS_UNAVAILABLE);
    } else if (!call->answered) {
        answer_reply(call, CPH_REDIS_OK, 0, NULL, cph_redis_reply_copy(r));
    }
    call_free(call);
}

static int issue(call_t *call)
{
    int r = redisAsyncFormattedCommand(io.ac, call->rcb != NULL ? on_generic_reply : on_gcra_reply, call, call->cmd, call->cmd_len);

    if (call->rcb != NULL) { /* hiredis copied it into its output buffer; a stack keeps it for a NOSCRIPT retry */
        redisFreeCommand(call->cmd);
        call->cmd = NULL;
    }
    if (r != REDIS_OK)
        return -1;
    if (io.inflight++ == 0)
        io.waiting_since_ms = now_ms();
    return 0;
}

/* A worker's call, just taken off the queue. */
static void submit(call_t *call)
{
    if (io.ac == NULL || issue(call) != 0) {
        answer_call(call, CPH_REDIS_UNAVAILABLE);
        call_free(call);
        return;
    }
    call->deadline_ms = call->submitted_ms + (io.cur.timeout_ms != 0 ? io.cur.timeout_ms : DEFAULT_TIMEOUT_MS);
    link_by_deadline(call);
}

static void expire(uint64_t now)
{
    while (!h2o_linklist_is_empty(&io.deadlines)) {
        call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, link, io.deadlines.next);
        if (call->deadline_ms > now)
            break;
        answer_call(call, CPH_REDIS_TIMEOUT); /* hiredis still holds it: its callback frees it */
    }
}

/* ---------------------------------------------------------------- connection */

static void ev_add_read(void *p)
{
    (void)p;
    io.reading = 1;
}

static void ev_del_read(void *p)
{
    (void)p;
    io.reading = 0;
}

static void ev_add_write(void *p)
{
    (void)p;
    io.writing = 1;
}

static void ev_del_write(void *p)
{
    (void)p;
    io.writing = 0;
}

static uint32_t next_random(void)
{
    io.rng ^= io.rng << 13;
    io.rng ^= io.rng >> 17;
    io.rng ^= io.rng << 5;
    return io.rng;
}

static void schedule_retry(void)
{
    unsigned shift = io.attempts < 6 ? io.attempts : 6;
    uint64_t base = (uint64_t)BACKOFF_MIN_MS << shift;

    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    io.attempts++;
    io.retry_at_ms = now_ms() + base / 2 + next_random() % (base / 2 + 1); /* jitter: [base/2, base] */
}

/* hiredis is freeing the context (an error, a failed connect, or our redisAsyncFree): the socket is closed. */
static void ev_cleanup(void *p)
{
    (void)p;
    io.ac = NULL;
    io.reading = io.writing = io.connected = io.reloading = 0;
    io.inflight = 0;
    schedule_retry();
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        cph_log_warn(MODULE, "cannot connect to redis %s:%u: %s", io.cur.host, io.cur.port, ac->errstr);
        return;
    }
    io.connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        cph_log_warn(MODULE, "lost the redis connection to %s:%u: %s", io.cur.host, io.cur.port, ac->errstr);
}

static void on_script_load(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac, (void)priv;
    redisReply *r = reply;

    on_reply_progress();
    if (priv == (void *)2)
        io.reloading = 0;
    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, cph_redis_script_sha()) != 0) {
        cph_log_warn(MODULE, "SCRIPT LOAD failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    if (priv == (void *)1) { /* the one at connect */
        io.attempts = 0;
        cph_log_info(MODULE, "connected to redis %s:%u db %d", io.cur.host, io.cur.port, io.cur.db);
    }
}

static void on_select(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    redisReply *r = reply;

    on_reply_progress();
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        cph_log_warn(MODULE, "SELECT %d failed: %s", io.cur.db, r->str);
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns; the wrong db is no place for counters */
    }
}

static void connect_now(void)
{
    redisAsyncContext *ac = redisAsyncConnect(io.cur.host, io.cur.port);

    io.retry_at_ms = 0;
    if (ac == NULL)
        cph_fatal(MODULE, "out of memory");
    if (ac->err != 0) {
        cph_log_warn(MODULE, "cannot connect to redis %s:%u: %s", io.cur.host, io.cur.port, ac->errstr);
        redisAsyncFree(ac); /* closes the socket, if any; no hooks are set yet */
        schedule_retry();
        return;
    }
    if (ac->c.fd >= 0)
        fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
    io.ac = ac;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    io.connect_deadline_ms = now_ms() + CONNECT_TIMEOUT_MS;
    /* pipelined: calls submitted from now on queue behind these on the same socket */
    if (command(on_select, NULL, "SELECT %d", io.cur.db) != 0 ||
        command(on_script_load, (void *)1, "SCRIPT LOAD %s", cph_redis_script_text()) != 0)
        redisAsyncFree(ac);
}

static void drop_connection(const char *why)
{
    if (io.ac == NULL)
        return;
    if (why != NULL)
        cph_log_warn(MODULE, "dropping the redis connection to %s:%u: %s", io.cur.host, io.cur.port, why);
    redisAsyncFree(io.ac); /* pending callbacks run with NULL (unanswered calls: UNAVAILABLE), then ev_cleanup */
}

static void apply_config(const cph_redis_config_t *cfg)
{
    int same = strcmp(cfg->host, io.cur.host) == 0 && cfg->port == io.cur.port && cfg->db == io.cur.db;

    io.cur.timeout_ms = cfg->timeout_ms;
    if (same)
        return;
    drop_connection(NULL);
    io.cur = *cfg;
    io.attempts = 0;
    io.retry_at_ms = 0;
    if (io.cur.host[0] != '\0')
        connect_now();
}

/* Reconnects and drops connections on time; returns the poll timeout in ms (-1 = none). */
static int maintain(uint64_t now)
{
    uint64_t next = UINT64_MAX;
    uint64_t stall = io.cur.timeout_ms * 20 > STALL_MIN_MS ? io.cur.timeout_ms * 20 : STALL_MIN_MS;

    if (io.ac == NULL && io.cur.host[0] != '\0' && io.retry_at_ms != 0 && now >= io.retry_at_ms)
        connect_now();
    if (io.ac != NULL && !io.connected && now >= io.connect_deadline_ms)
        drop_connection("connect timeout");
    if (io.ac != NULL && io.inflight != 0 && now - io.waiting_since_ms >= stall)
        drop_connection("no reply");
    if (!h2o_linklist_is_empty(&io.deadlines))
        next = H2O_STRUCT_FROM_MEMBER(call_t, link, io.deadlines.next)->deadline_ms;
    if (io.ac == NULL && io.cur.host[0] != '\0' && io.retry_at_ms != 0 && io.retry_at_ms < next)
        next = io.retry_at_ms;
    if (io.ac != NULL && !io.connected && io.connect_deadline_ms < next)
        next = io.connect_deadline_ms;
    if (io.ac != NULL && io.inflight != 0 && io.waiting_since_ms + stall < next)
        next = io.waiting_since_ms + stall;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
}

/* ---------------------------------------------------------------- the I/O thread */

/* Takes the inbox: the submitted calls, a new config, the stop flag. Returns the stop flag. */
static int take_inbox(h2o_linklist_t *calls, cph_redis_config_t *cfg, int *cfg_changed)
{
    uint64_t n;
    int stop;

    while (read(io.efd, &n, sizeof(n)) == sizeof(n))
        ; /* before taking the queue: a wake-up written after this read is for calls still to come */
    pthread_mutex_lock(&io.mutex);
    h2o_linklist_insert_list(calls, &io.queue);
    if ((*cfg_changed = io.cfg_changed) != 0)
        *cfg = io.cfg;
    io.cfg_changed = 0;
    stop = io.stop;
    if (stop)
        io.running = 0; /* from now on a new call is answered UNAVAILABLE itself */
    pthread_mutex_unlock(&io.mutex);
    return stop;
}

static void poll_once(int timeout)
{
    struct pollfd fds[2] = {{.fd = io.efd, .events = POLLIN}, {.fd = -1}};

    if (io.ac != NULL) {
        fds[1].fd = io.ac->c.fd;
        fds[1].events = (io.reading ? POLLIN : 0) | (io.writing ? POLLOUT : 0);
    }
    if (poll(fds, 2, timeout) <= 0 || fds[1].fd == -1)
        return;
    /* POLLERR/POLLHUP come whatever was asked: let hiredis find the error (a failed connect, a reset) */
    if ((fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
        if (io.reading || !io.writing)
            redisAsyncHandleRead(io.ac);
        else
            redisAsyncHandleWrite(io.ac);
    }
    if (io.ac != NULL && (fds[1].revents & POLLOUT) != 0 && io.writing)
        redisAsyncHandleWrite(io.ac);
}

static void shutdown_io(h2o_linklist_t *calls)
{
    while (!h2o_linklist_is_empty(calls)) {
        call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, link, calls->next);
        h2o_linklist_unlink(&call->link);
        answer_call(call, CPH_REDIS_UNAVAILABLE);
        call_free(call);
    }
    while (!h2o_linklist_is_empty(&io.deadlines))
        answer_call(H2O_STRUCT_FROM_MEMBER(call_t, link, io.deadlines.next), CPH_REDIS_UNAVAILABLE);
    drop_connection(NULL); /* the callbacks free the bookkeeping */
}

static void *io_main(void *arg)
{
    (void)arg;
    h2o_linklist_t calls;
    cph_redis_config_t cfg;
    int cfg_changed, timeout;

    h2o_linklist_init_anchor(&calls);
    for (;;) {
        int stop = take_inbox(&calls, &cfg, &cfg_changed);
        if (stop)
            break;
        if (cfg_changed)
            apply_config(&cfg);
        while (!h2o_linklist_is_empty(&calls)) {
            call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, link, calls.next);
            h2o_linklist_unlink(&call->link);
            submit(call);
        }
        uint64_t now = now_ms();
        expire(now);
        timeout = maintain(now);
        poll_once(timeout);
        expire(now_ms());
    }
    shutdown_io(&calls);
    return NULL;
}

/* ---------------------------------------------------------------- public */

void cph_redis_start(void)
{
    pthread_mutex_lock(&io.mutex);
    assert(!io.running);
    if ((io.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
        cph_fatal(MODULE, "eventfd failed: %s", strerror(errno));
    h2o_linklist_init_anchor(&io.queue);
    h2o_linklist_init_anchor(&io.deadlines);
    memset(&io.cur, 0, sizeof(io.cur));
    io.attempts = 0;
    io.retry_at_ms = 0;
    io.inflight = 0;
    io.reading = io.writing = io.connected = io.reloading = 0;
    io.rng = (uint32_t)now_ms() ^ (uint32_t)getpid() ^ 0x9e3779b9u;
    if (io.rng == 0)
        io.rng = 1;
    io.cfg_changed = 1; /* whatever was configured before the start */
    io.stop = 0;
    io.running = 1;
    pthread_mutex_unlock(&io.mutex);
    if (pthread_create(&io.tid, NULL, io_main, NULL) != 0)
        cph_fatal(MODULE, "cannot start the redis thread");
}

static void wake_locked(void)
{
    uint64_t one = 1;

    if (io.efd != -1 && write(io.efd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
        cph_fatal(MODULE, "eventfd write failed: %s", strerror(errno));
}

void cph_redis_stop(void)
{
    pthread_mutex_lock(&io.mutex);
    if (!io.running) {
        pthread_mutex_unlock(&io.mutex);
        return;
    }
    io.stop = 1;
    wake_locked();
    pthread_mutex_unlock(&io.mutex);
    pthread_join(io.tid, NULL);
    pthread_mutex_lock(&io.mutex);
    close(io.efd);
    io.efd = -1;
    pthread_mutex_unlock(&io.mutex);
}

void cph_redis_configure(const cph_redis_config_t *cfg)
{
    pthread_mutex_lock(&io.mutex);
    io.cfg = *cfg;
    io.cfg.host[sizeof(io.cfg.host) - 1] = '\0';
    io.cfg_changed = 1;
    if (io.running)
        wake_locked();
    pthread_mutex_unlock(&io.mutex);
}

void cph_redis_worker_init(cph_worker_t *w)
{
    cph_redis_worker_t *rw = calloc(1, sizeof(*rw));

    if (rw == NULL)
        cph_fatal(MODULE, "out of memory");
    rw->worker = w;
    rw->refs = 1;
    h2o_linklist_init_anchor(&rw->late);
    h2o_multithread_register_receiver(w->ctx.queue, &rw->receiver, on_answer);
    w->redis = rw;
}

/* Runs the answers that arrive in rw->late until none is outstanding or the wait is over. io.mutex held. */
static void run_late_answers_locked(cph_redis_worker_t *rw, uint64_t wait_ms)
{
    struct timespec until;
    h2o_linklist_t batch;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    h2o_linklist_init_anchor(&batch);
    for (;;) {
        h2o_linklist_insert_list(&batch, &rw->late);
        pthread_mutex_unlock(&io.mutex);
        on_answer(&rw->receiver, &batch);
        pthread_mutex_lock(&io.mutex);
        if (rw->refs == 1 || (h2o_linklist_is_empty(&rw->late) && pthread_cond_timedwait(&io.late_cond, &io.mutex, &until) != 0 &&
                              h2o_linklist_is_empty(&rw->late)))
            break;
    }
}

void cph_redis_worker_dispose(cph_worker_t *w)
{
    cph_redis_worker_t *rw = w->redis;
    uint64_t wait_ms;
    int free_it;

    assert(rw != NULL && rw->worker == w);
    pthread_mutex_lock(&io.mutex);
    rw->disposing = 1; /* no message is sent from now on, so only this thread still touches the receiver's messages */
    wait_ms = (io.cfg.timeout_ms != 0 ? io.cfg.timeout_ms : DEFAULT_TIMEOUT_MS) + 1000;
    pthread_mutex_unlock(&io.mutex);
    on_answer(&rw->receiver, &rw->receiver._messages); /* answers already sent still reach their callers */
    h2o_multithread_unregister_receiver(w->ctx.queue, &rw->receiver);
    w->redis = NULL;
    pthread_mutex_lock(&io.mutex);
    /* every call is answered by its deadline (or at once when the I/O thread is down): wait for them, bounded */
    if (rw->refs > 1)
        run_late_answers_locked(rw, wait_ms);
    rw->disposed = 1;
    release_worker_locked(rw, &free_it);
    pthread_mutex_unlock(&io.mutex);
    if (free_it)
        free(rw);
}

/* Queues a call for the I/O thread; when it is not running, answers UNAVAILABLE (still through the worker's queue:
 * the callback never runs inside the submitting call). */
static void enqueue(call_t *call)
{
    int running;

    call->submitted_ms = now_ms();
    pthread_mutex_lock(&io.mutex);
    if (call->rw != NULL)
        call->rw->refs++;
    if ((running = io.running) != 0) {
        if (h2o_linklist_is_empty(&io.queue))
            wake_locked();
        h2o_linklist_insert(&io.queue, &call->link);
    }
    pthread_mutex_unlock(&io.mutex);
    if (!running) {
        deliver(call, CPH_REDIS_UNAVAILABLE, 0, NULL, NULL);
        call_free(call);
    }
}

void cph_redis_gcra_stack(cph_worker_t *w, size_t n, const char *const *keys, const size_t *key_lens,
                          const cph_ratelimit_spec_t *const *specs, cph_redis_stack_cb cb, void *ud)
{
    cph_redis_worker_t *rw = w->redis;
    call_t *call = calloc(1, sizeof(*call));

    assert(rw != NULL && rw->worker == w);
    if (call == NULL)
        cph_fatal(MODULE, "out of memory");
    call->rw = rw;
    call->cb = cb;
    call->ud = ud;
    call->n = n;
    call->cmd_len = cph_redis_script_format(&call->cmd, n, keys, key_lens, specs);
    enqueue(call);
}

static void ignore_reply(void *ud, cph_redis_status_t status, const cph_redis_reply_t *reply)
{
    (void)ud, (void)status, (void)reply;
}

void cph_redis_command(cph_worker_t *w, int argc, const char *const *argv, const size_t *argvlen, cph_redis_reply_cb cb, void *ud)
{
    call_t *call = calloc(1, sizeof(*call));
    int len;

    if (call == NULL)
        cph_fatal(MODULE, "out of memory");
    if (w != NULL) {
        call->rw = w->redis;
        assert(call->rw != NULL && call->rw->worker == w);
    }
    call->rcb = w != NULL && cb != NULL ? cb : ignore_reply;
    call->ud = ud;
    if ((len = redisFormatCommandArgv(&call->cmd, argc, (const char **)argv, argvlen)) < 0)
        cph_fatal(MODULE, "out of memory");
    call->cmd_len = (size_t)len;
    enqueue(call);
}
