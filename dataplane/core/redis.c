/*
 * redis: the Redis client of the shared rate-limit backend (docs/dataplane.md "Rate limiting") and of the shared response
 * cache (core/cache_redis.c). Every worker has its own connection, driven by its own event loop: a call is written,
 * read and answered on the thread that made it, with no lock and no thread hop on the way.
 *
 * The connection is an h2o socket; hiredis is only the reply parser (redisReader) and commands are written in RESP by
 * core/redis_script.c. Commands issued while the loop handles its sockets are collected in one buffer and written
 * together at the end of that pass (a zero timeout), so a burst of requests costs one write and Redis reads them as
 * one pipeline. Replies come back in order: the `owed` list holds each command's call until its reply arrives.
 *
 * hiredis 0.14 gives no timeout, so every waiting call has a deadline (an h2o timeout of timeout_ms): when it passes the
 * caller gets CPH_REDIS_TIMEOUT and the late reply, when it comes, only frees the call. A connection that answers
 * nothing for a long while (a peer gone without a reset, a stopped server) is dropped, and a lost one is made again
 * after a jittered backoff (100 ms doubling to 5 s); meanwhile calls are answered CPH_REDIS_UNAVAILABLE at once, so
 * nothing ever hangs. A new connection writes SELECT and SCRIPT LOAD first; calls made while it connects queue behind
 * them. A stack's EVALSHA is kept until its reply so a NOSCRIPT (a flushed script cache) loads the script again and
 * retries once. Every answer, whatever produced it, reaches its callback from the same end-of-pass step: never inside
 * the call that submitted it, never inside another caller's.
 *
 * The config (any thread: cph_redis_configure) is shared under a mutex with a generation number; a worker compares the
 * generation on every call and is also told by a message, so an idle worker drops a connection that is no longer
 * wanted. Host names are resolved on a thread of this module (blocking getaddrinfo: never a worker), again after a
 * failed connect. A command without a worker (the control thread's cache purges) is handed to a worker's loop.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <hiredis/hiredis.h>
#include "proto/log.h"
#include "dataplane/core/redis.h"
#include "dataplane/core/redis_reply.h"
#include "dataplane/core/redis_script.h"

#define MODULE "dp/core/redis"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 2000
#define STALL_MIN_MS 3000 /* no reply at all for this long (and 20 timeouts) while replies are owed: reconnect */
#define DEFAULT_TIMEOUT_MS 50
#define TICK_MS 100  /* how often the connection's own timers (backoff, connect, stall) are looked at */
#define BATCH_MAX 64 /* stacks decided by one script call */

typedef enum en_kind_t {
    KIND_STACK,   /* a rate-limit stack, decided in a batch */
    KIND_BATCH,   /* the EVALSHA of the stacks of one pass */
    KIND_GENERIC, /* cph_redis_command */
    KIND_SELECT,  /* the handshake */
    KIND_LOAD,    /* the handshake's SCRIPT LOAD */
    KIND_RELOAD,  /* SCRIPT LOAD after a NOSCRIPT */
} kind_t;

typedef enum en_conn_state_t {
    CONN_IDLE,       /* no Redis configured, or the client is not running */
    CONN_RESOLVING,  /* waiting for the resolver's address */
    CONN_CONNECTING, /* the socket is connecting */
    CONN_READY,
    CONN_BACKOFF, /* waiting to try again: calls are answered UNAVAILABLE */
} conn_state_t;

typedef struct st_call_t {
    h2o_linklist_t link;          /* rw->owed while Redis owes its reply, or rw->stacks while a stack waits for its batch */
    h2o_linklist_t ready;         /* rw->ready from the answer until the callback runs */
    h2o_timeout_entry_t deadline; /* rw->deadlines while the caller waits */
    struct st_cph_redis_worker_t *rw;
    kind_t kind;
    int waiting;  /* the callback has not run yet (0 from the start for internal and fire-and-forget commands) */
    int answered; /* the answer is decided (it may still be on rw->ready) */
    int retried;  /* NOSCRIPT already re-loaded once (a batch) */
    cph_redis_stack_cb cb;
    cph_redis_reply_cb rcb;
    void *ud;
    cph_redis_status_t status;
    cph_redis_reply_t *reply; /* a generic command's OK answer, owned */
    struct st_call_t *batch;  /* a stack: the batch whose reply holds its answer */
    size_t n;                 /* a stack's limits; a batch's stacks */
    size_t refused;
    cph_ratelimit_result_t *res; /* a stack's n results, keys and specs (copied; after the struct) */
    h2o_iovec_t *keys;
    cph_ratelimit_spec_t *specs;
    struct st_call_t **members; /* a batch's n stacks, in the order of the script's answers (after the struct) */
    char *cmd;                  /* a batch's EVALSHA, kept for a NOSCRIPT retry (after the members) */
    size_t cmd_len;
} call_t;

/* A growable byte buffer: the commands not written yet, and the ones being written. */
typedef struct st_outbuf_t {
    char *bytes;
    size_t size, capacity;
} outbuf_t;

/* A command from a thread without a worker, formatted there and written by a worker. */
typedef struct st_foreign_t {
    h2o_linklist_t link;
    size_t len;
    char cmd[];
} foreign_t;

typedef struct st_cph_redis_worker_t {
    cph_worker_t *worker;
    h2o_loop_t *loop;
    /* under shared.mutex */
    h2o_linklist_t registered; /* shared.workers */
    int ctl_sent;              /* ctl_msg is on its way */
    h2o_linklist_t foreign;    /* foreign_t */
    /* this worker's thread only */
    h2o_multithread_receiver_t ctl_receiver;
    h2o_multithread_message_t ctl_msg;
    uint64_t gen;
    int running;
    cph_redis_config_t cfg;
    conn_state_t state;
    h2o_socket_t *sock;
    redisReader *reader;
    outbuf_t out, sending;
    int writing;
    h2o_linklist_t owed;   /* call_t, in the order written */
    h2o_linklist_t stacks; /* call_t: the stacks submitted in this pass, for its batch */
    h2o_linklist_t ready;  /* call_t whose callbacks are due */
    h2o_timeout_t deadlines;
    h2o_timeout_t zero;
    h2o_timeout_entry_t pass; /* answers the ready calls, then writes `out` */
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick;
    uint64_t retry_at, connect_deadline, progress_at;
    unsigned attempts;
    uint32_t rng;
    int reloading; /* a SCRIPT LOAD after NOSCRIPT is on its way: retries just follow it */
    uint64_t error_logged_at;
} cph_redis_worker_t;

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond; /* the resolver's wake-up */
    int running;
    int stopping;
    cph_redis_config_t cfg;
    _Atomic uint64_t gen; /* written under the mutex whenever cfg or running changes; workers read it on every call */
    /* the resolver's answer for cfg.host:cfg.port */
    int want_resolve;
    int resolved; /* 0 not yet, 1 addr holds it, -1 it failed */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    pthread_t resolver;
    h2o_linklist_t workers; /* cph_redis_worker_t: who gets told, and who writes foreign commands */
    uint64_t foreign_dropped_logged_ms;
} shared = {.mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .workers = {&shared.workers, &shared.workers}};

static __thread cph_redis_worker_t *self; /* this thread's worker, if it is one */

/* ---------------------------------------------------------------- buffers */

static char *outbuf_reserve(outbuf_t *b, size_t n)
{
    if (b->capacity - b->size < n) {
        size_t cap = b->capacity != 0 ? b->capacity : 4096;
        while (cap - b->size < n)
            cap *= 2;
        if ((b->bytes = realloc(b->bytes, cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
        b->capacity = cap;
    }
    return b->bytes + b->size;
}

static void outbuf_append(outbuf_t *b, const char *bytes, size_t n)
{
    memcpy(outbuf_reserve(b, n), bytes, n);
    b->size += n;
}

/* ---------------------------------------------------------------- answers */

static void schedule_pass(cph_redis_worker_t *rw)
{
    if (!h2o_timeout_is_linked(&rw->pass))
        h2o_timeout_link(rw->loop, &rw->zero, &rw->pass);
}

static void call_release(call_t *call)
{
    if (call->waiting || h2o_linklist_is_linked(&call->link) || call->batch != NULL)
        return;
    cph_redis_reply_free(call->reply);
    free(call);
}

/* Decides a call's answer (once: a later one is ignored); the callback runs at the end of the pass. */
static void answer(call_t *call, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res,
                   cph_redis_reply_t *reply)
{
    if (call->answered || !call->waiting) {
        cph_redis_reply_free(reply);
        return;
    }
    call->answered = 1;
    call->status = status;
    call->reply = reply;
    call->refused = call->n;
    if (status == CPH_REDIS_OK && res != NULL) {
        call->refused = refused;
        memcpy(call->res, res, call->n * sizeof(call->res[0]));
    }
    if (h2o_timeout_is_linked(&call->deadline))
        h2o_timeout_unlink(&call->deadline);
    h2o_linklist_insert(&call->rw->ready, &call->ready);
    schedule_pass(call->rw);
}

static void run_ready(cph_redis_worker_t *rw)
{
    while (!h2o_linklist_is_empty(&rw->ready)) {
        call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, ready, rw->ready.next);
        h2o_linklist_unlink(&call->ready);
        call->waiting = 0;
        if (call->kind == KIND_GENERIC)
            call->rcb(call->ud, call->status, call->status == CPH_REDIS_OK ? call->reply : NULL);
        else
            call->cb(call->ud, call->status, call->refused, call->status == CPH_REDIS_OK ? call->res : NULL);
        call_release(call);
    }
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, deadline, entry);

    answer(call, CPH_REDIS_TIMEOUT, 0, NULL, NULL); /* Redis still owes the reply: its arrival frees the call */
}

static void log_error(cph_redis_worker_t *rw, const char *what, const char *detail)
{
    uint64_t now = h2o_now(rw->loop);

    if (now - rw->error_logged_at >= 1000 || rw->error_logged_at == 0) { /* one line a second, not one per request */
        rw->error_logged_at = now;
        cph_log_warn(MODULE, "%s: %s", what, detail);
    }
}

/* ---------------------------------------------------------------- the connection */

static void flush(cph_redis_worker_t *rw);
static void begin_connection(cph_redis_worker_t *rw);
static void settle_batch(call_t *batch, const redisReply *r);
static void build_batches(cph_redis_worker_t *rw);

static uint32_t next_random(cph_redis_worker_t *rw)
{
    rw->rng ^= rw->rng << 13;
    rw->rng ^= rw->rng >> 17;
    rw->rng ^= rw->rng << 5;
    return rw->rng;
}

static void start_tick(cph_redis_worker_t *rw)
{
    if (!h2o_timeout_is_linked(&rw->tick))
        h2o_timeout_link(rw->loop, &rw->tick_timeout, &rw->tick);
}

/* Closes the connection, if any: every call Redis still owes a reply for is answered UNAVAILABLE (or just freed). */
static void disconnect(cph_redis_worker_t *rw)
{
    if (rw->sock != NULL) {
        h2o_socket_close(rw->sock); /* a write in progress is abandoned with it: its callback never runs */
        rw->sock = NULL;
    }
    if (rw->reader != NULL) {
        redisReaderFree(rw->reader);
        rw->reader = NULL;
    }
    rw->out.size = rw->sending.size = 0;
    rw->writing = rw->reloading = 0;
    while (!h2o_linklist_is_empty(&rw->owed)) {
        call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, link, rw->owed.next);
        h2o_linklist_unlink(&call->link);
        if (call->kind == KIND_BATCH) {
            settle_batch(call, NULL);
        } else {
            answer(call, CPH_REDIS_UNAVAILABLE, 0, NULL, NULL);
            call_release(call);
        }
    }
    rw->state = CONN_IDLE;
}

/* The connection failed (why, for the log): calls owed answers get UNAVAILABLE, the next attempt waits a backoff, and
 * the host is resolved again before it. */
static void fail_connection(cph_redis_worker_t *rw, const char *why)
{
    unsigned shift = rw->attempts < 6 ? rw->attempts : 6;
    uint64_t base = (uint64_t)BACKOFF_MIN_MS << shift;

    if (rw->attempts == 0 || rw->state == CONN_READY)
        cph_log_warn(MODULE, "redis %s:%u: %s", rw->cfg.host, rw->cfg.port, why);
    disconnect(rw);
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    rw->attempts++;
    rw->retry_at = h2o_now(rw->loop) + base / 2 + next_random(rw) % (base / 2 + 1); /* jitter: [base/2, base] */
    rw->state = CONN_BACKOFF;
    start_tick(rw);
    pthread_mutex_lock(&shared.mutex);
    shared.want_resolve = 1; /* the address may have moved (a restarted container) */
    pthread_cond_signal(&shared.cond);
    pthread_mutex_unlock(&shared.mutex);
}

/* Appends a command to `out` and its call to `owed`; the end of the pass writes it. */
static void push(cph_redis_worker_t *rw, call_t *call, const char *cmd, size_t len)
{
    if (h2o_linklist_is_empty(&rw->owed))
        rw->progress_at = h2o_now(rw->loop);
    if (cmd != NULL)
        outbuf_append(&rw->out, cmd, len);
    h2o_linklist_insert(&rw->owed, &call->link);
    if (rw->state == CONN_READY)
        schedule_pass(rw);
}

static call_t *internal_call(cph_redis_worker_t *rw, kind_t kind)
{
    call_t *call = calloc(1, sizeof(*call));

    if (call == NULL)
        cph_fatal(MODULE, "out of memory");
    call->rw = rw;
    call->kind = kind;
    return call;
}

static void push_internal(cph_redis_worker_t *rw, kind_t kind, int argc, const char *const *argv, const size_t *argvlen)
{
    call_t *call = internal_call(rw, kind);
    char *p = outbuf_reserve(&rw->out, cph_redis_resp_bound(argc, argvlen));

    rw->out.size += cph_redis_resp_format(p, argc, argv, argvlen);
    push(rw, call, NULL, 0);
}

static void push_script_load(cph_redis_worker_t *rw, kind_t kind)
{
    const char *argv[] = {"SCRIPT", "LOAD", cph_redis_script_text()};
    const size_t argvlen[] = {6, 4, strlen(argv[2])};

    push_internal(rw, kind, 3, argv, argvlen);
}

static void on_write(h2o_socket_t *sock, const char *err)
{
    cph_redis_worker_t *rw = sock->data;

    rw->writing = 0;
    rw->sending.size = 0;
    if (err != NULL) {
        fail_connection(rw, err);
        return;
    }
    flush(rw);
}

static void flush(cph_redis_worker_t *rw)
{
    outbuf_t swap;

    if (rw->state != CONN_READY || rw->writing || rw->out.size == 0)
        return;
    swap = rw->sending;
    rw->sending = rw->out;
    rw->out = swap;
    rw->writing = 1;
    h2o_iovec_t buf = h2o_iovec_init(rw->sending.bytes, rw->sending.size);
    h2o_socket_write(rw->sock, &buf, 1, on_write);
}

static void on_pass(h2o_timeout_entry_t *entry)
{
    cph_redis_worker_t *rw = H2O_STRUCT_FROM_MEMBER(cph_redis_worker_t, pass, entry);

    run_ready(rw);
    build_batches(rw);
    flush(rw);
}

/* Whether any stack of the batch still waits for its answer (else a retry is pointless). */
static int batch_waiting(const call_t *batch)
{
    for (size_t i = 0; i != batch->n; i++)
        if (batch->members[i]->waiting && !batch->members[i]->answered)
            return 1;
    return 0;
}

/* Answers every stack of a batch from the script's reply r (NULL: the connection is gone), then frees the batch. A
 * reply that does not hold exactly one well-formed answer per stack answers them all UNAVAILABLE. */
static void settle_batch(call_t *batch, const redisReply *r)
{
    cph_ratelimit_result_t res[CPH_RATELIMIT_MAX_STACK];
    size_t pos = 0, refused;
    int ok = r != NULL;

    for (size_t i = 0; ok && i != batch->n; i++)
        ok = cph_redis_script_parse(r, &pos, batch->members[i]->n, &refused, res) == 0;
    if (ok && pos != r->elements)
        ok = 0;
    if (r != NULL && !ok)
        log_error(batch->rw, "rate-limit script failed", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    pos = 0;
    for (size_t i = 0; i != batch->n; i++) {
        call_t *call = batch->members[i];
        if (ok && cph_redis_script_parse(r, &pos, call->n, &refused, res) == 0)
            answer(call, CPH_REDIS_OK, refused, res, NULL);
        else
            answer(call, CPH_REDIS_UNAVAILABLE, 0, NULL, NULL);
        call->batch = NULL;
        call_release(call);
    }
    free(batch);
}

/* The stacks submitted in this pass go out as batches of at most BATCH_MAX, or are answered UNAVAILABLE when there is
 * no connection to send them on any more. */
static void build_batches(cph_redis_worker_t *rw)
{
    cph_redis_stack_t views[BATCH_MAX];

    while (!h2o_linklist_is_empty(&rw->stacks)) {
        call_t *members[BATCH_MAX], *batch;
        size_t m = 0, bound;
        while (m != BATCH_MAX && !h2o_linklist_is_empty(&rw->stacks)) {
            call_t *call = H2O_STRUCT_FROM_MEMBER(call_t, link, rw->stacks.next);
            h2o_linklist_unlink(&call->link);
            if (rw->state == CONN_IDLE || rw->state == CONN_BACKOFF || call->answered) {
                answer(call, CPH_REDIS_UNAVAILABLE, 0, NULL, NULL);
                call_release(call);
                continue;
            }
            views[m] = (cph_redis_stack_t){call->n, call->keys, call->specs};
            members[m++] = call;
        }
        if (m == 0)
            break;
        bound = cph_redis_script_bound(views, m);
        if ((batch = malloc(sizeof(*batch) + m * sizeof(members[0]) + bound)) == NULL)
            cph_fatal(MODULE, "out of memory");
        *batch = (call_t){.rw = rw, .kind = KIND_BATCH, .n = m};
        batch->members = (call_t **)(batch + 1);
        batch->cmd = (char *)(batch->members + m);
        batch->cmd_len = cph_redis_script_format(batch->cmd, views, m);
        for (size_t i = 0; i != m; i++) {
            batch->members[i] = members[i];
            members[i]->batch = batch;
        }
        push(rw, batch, batch->cmd, batch->cmd_len);
    }
}

/* One reply, for the oldest call owed one. Returns -1 when it dropped the connection. */
static int on_reply(cph_redis_worker_t *rw, redisReply *r)
{
    call_t *call;

    if (h2o_linklist_is_empty(&rw->owed)) {
        fail_connection(rw, "a reply nobody asked for");
        return -1;
    }
    call = H2O_STRUCT_FROM_MEMBER(call_t, link, rw->owed.next);
    h2o_linklist_unlink(&call->link);
    rw->progress_at = h2o_now(rw->loop);
    switch (call->kind) {
    case KIND_SELECT:
        if (r->type == REDIS_REPLY_ERROR) {
            char why[160];
            snprintf(why, sizeof(why), "SELECT %d failed: %s", rw->cfg.db, r->str); /* the wrong db is no place for counters */
            call_release(call);
            fail_connection(rw, why);
            return -1;
        }
        break;
    case KIND_LOAD:
    case KIND_RELOAD:
        if (call->kind == KIND_RELOAD)
            rw->reloading = 0;
        if (r->type != REDIS_REPLY_STRING || strcmp(r->str, cph_redis_script_sha()) != 0) {
            cph_log_warn(MODULE, "SCRIPT LOAD failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        } else if (call->kind == KIND_LOAD) {
            rw->attempts = 0;
            if (rw->worker->id == 0)
                cph_log_info(MODULE, "connected to redis %s:%u db %d", rw->cfg.host, rw->cfg.port, rw->cfg.db);
        }
        break;
    case KIND_BATCH:
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !call->retried && batch_waiting(call)) {
            /* the script cache was flushed (SCRIPT FLUSH, a restart behind a proxy): load it again, retry once */
            call->retried = 1;
            if (!rw->reloading)
                push_script_load(rw, KIND_RELOAD);
            rw->reloading = 1;
            push(rw, call, call->cmd, call->cmd_len); /* queued behind the load on the same connection */
            return 0;
        }
        settle_batch(call, r);
        return 0;
    case KIND_STACK: /* never owed itself: its batch is */
        break;
    case KIND_GENERIC:
        if (cph_redis_reply_has_error(r)) {
            log_error(rw, "redis command failed", r->type == REDIS_REPLY_ERROR ? r->str : "an error in the reply");
            answer(call, CPH_REDIS_UNAVAILABLE, 0, NULL, NULL);
        } else if (call->waiting && !call->answered) {
            answer(call, CPH_REDIS_OK, 0, NULL, cph_redis_reply_copy(r));
        }
        break;
    }
    call_release(call);
    return 0;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    cph_redis_worker_t *rw = sock->data;
    void *reply;

    if (err != NULL) {
        fail_connection(rw, err);
        return;
    }
    if (redisReaderFeed(rw->reader, sock->input->bytes, sock->input->size) != REDIS_OK) {
        fail_connection(rw, "out of memory reading a reply");
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    for (;;) {
        if (redisReaderGetReply(rw->reader, &reply) != REDIS_OK) {
            fail_connection(rw, "a malformed reply");
            return;
        }
        if (reply == NULL)
            break;
        int dropped = on_reply(rw, reply);
        freeReplyObject(reply);
        if (dropped)
            return;
    }
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    cph_redis_worker_t *rw = sock->data;

    if (err != NULL) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", err);
        fail_connection(rw, why);
        return;
    }
    rw->state = CONN_READY;
    h2o_socket_read_start(sock, on_read);
    schedule_pass(rw); /* what queued while connecting */
}

/* Connects to the resolver's address; without one yet, waits for it (the resolver's message calls this again). */
static void connect_resolved(cph_redis_worker_t *rw)
{
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    int resolved;

    pthread_mutex_lock(&shared.mutex);
    if ((resolved = shared.resolved) == 1) {
        addr = shared.addr;
        addrlen = shared.addrlen;
    }
    pthread_mutex_unlock(&shared.mutex);
    if (resolved == 0)
        return; /* CONN_RESOLVING until the resolver tells us */
    if (resolved < 0) {
        fail_connection(rw, "cannot resolve the host");
        return;
    }
    if ((rw->sock = h2o_socket_connect(rw->loop, (struct sockaddr *)&addr, addrlen, on_connect)) == NULL) {
        fail_connection(rw, strerror(errno));
        return;
    }
    rw->sock->data = rw;
    rw->state = CONN_CONNECTING;
}

/* A new connection: the handshake goes first in `out`, so every call made from now on queues behind it. */
static void begin_connection(cph_redis_worker_t *rw)
{
    char db[16];
    const char *argv[] = {"SELECT", db};
    size_t argvlen[] = {6, 0};

    assert(rw->sock == NULL && h2o_linklist_is_empty(&rw->owed));
    argvlen[1] = (size_t)snprintf(db, sizeof(db), "%d", rw->cfg.db);
    if ((rw->reader = redisReaderCreate()) == NULL)
        cph_fatal(MODULE, "out of memory");
    rw->state = CONN_RESOLVING;
    rw->connect_deadline = h2o_now(rw->loop) + CONNECT_TIMEOUT_MS;
    push_internal(rw, KIND_SELECT, 2, argv, argvlen);
    push_script_load(rw, KIND_LOAD);
    start_tick(rw);
    connect_resolved(rw);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    cph_redis_worker_t *rw = H2O_STRUCT_FROM_MEMBER(cph_redis_worker_t, tick, entry);
    uint64_t now = h2o_now(rw->loop);
    uint64_t timeout = rw->cfg.timeout_ms != 0 ? rw->cfg.timeout_ms : DEFAULT_TIMEOUT_MS;
    uint64_t stall = timeout * 20 > STALL_MIN_MS ? timeout * 20 : STALL_MIN_MS;

    switch (rw->state) {
    case CONN_IDLE:
        return;
    case CONN_BACKOFF:
        if (now >= rw->retry_at)
            begin_connection(rw);
        break;
    case CONN_RESOLVING:
    case CONN_CONNECTING:
        if (now >= rw->connect_deadline)
            fail_connection(rw, "connect timeout");
        break;
    case CONN_READY:
        if (!h2o_linklist_is_empty(&rw->owed) && now - rw->progress_at >= stall)
            fail_connection(rw, "no reply, dropping the connection");
        break;
    }
    if (rw->state != CONN_IDLE)
        start_tick(rw);
}

/* ---------------------------------------------------------------- config */

/* Takes the shared config when its generation moved: a new endpoint (or a stop) drops the connection and, when one is
 * wanted, starts the next at once; a new timeout applies to the calls waiting too. */
static void sync_config(cph_redis_worker_t *rw)
{
    cph_redis_config_t cfg;
    int running;

    pthread_mutex_lock(&shared.mutex);
    rw->gen = atomic_load_explicit(&shared.gen, memory_order_relaxed);
    cfg = shared.cfg;
    running = shared.running;
    pthread_mutex_unlock(&shared.mutex);
    rw->deadlines.timeout = cfg.timeout_ms != 0 ? cfg.timeout_ms : DEFAULT_TIMEOUT_MS;
    rw->cfg.timeout_ms = cfg.timeout_ms;
    if (running == rw->running && strcmp(cfg.host, rw->cfg.host) == 0 && cfg.port == rw->cfg.port && cfg.db == rw->cfg.db)
        return;
    disconnect(rw);
    rw->cfg = cfg;
    rw->running = running;
    rw->attempts = 0;
    if (running && cfg.host[0] != '\0')
        begin_connection(rw);
}

static inline void check_config(cph_redis_worker_t *rw)
{
    if (atomic_load_explicit(&shared.gen, memory_order_acquire) != rw->gen)
        sync_config(rw);
}

/* shared.mutex held: makes every worker look at the config (and its foreign commands) on its loop. */
static void notify_locked(cph_redis_worker_t *rw)
{
    if (!rw->ctl_sent) {
        rw->ctl_sent = 1;
        h2o_multithread_send_message(&rw->ctl_receiver, &rw->ctl_msg);
    }
}

static void notify_all_locked(void)
{
    for (h2o_linklist_t *l = shared.workers.next; l != &shared.workers; l = l->next)
        notify_locked(H2O_STRUCT_FROM_MEMBER(cph_redis_worker_t, registered, l));
}

static void bump_locked(void)
{
    atomic_store_explicit(&shared.gen, atomic_load_explicit(&shared.gen, memory_order_relaxed) + 1, memory_order_release);
    notify_all_locked();
}

static int accepting(cph_redis_worker_t *rw);
static void enqueue(cph_redis_worker_t *rw, call_t *call, const char *cmd, size_t len);

static void on_ctl(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    cph_redis_worker_t *rw = H2O_STRUCT_FROM_MEMBER(cph_redis_worker_t, ctl_receiver, receiver);
    h2o_linklist_t foreign;

    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    h2o_linklist_init_anchor(&foreign);
    pthread_mutex_lock(&shared.mutex);
    rw->ctl_sent = 0;
    h2o_linklist_insert_list(&foreign, &rw->foreign);
    pthread_mutex_unlock(&shared.mutex);
    sync_config(rw);
    if (rw->state == CONN_RESOLVING && rw->sock == NULL)
        connect_resolved(rw); /* the resolver may have answered */
    while (!h2o_linklist_is_empty(&foreign)) {
        foreign_t *f = H2O_STRUCT_FROM_MEMBER(foreign_t, link, foreign.next);
        h2o_linklist_unlink(&f->link);
        if (accepting(rw))
            enqueue(rw, internal_call(rw, KIND_GENERIC), f->cmd, f->len); /* fire-and-forget */
        free(f);
    }
}

/* ---------------------------------------------------------------- the resolver thread */

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr, socklen_t *addrlen)
{
    static const int families[] = {AF_INET, AF_UNSPEC}; /* IPv4 first, as hiredis did: "localhost" is often both */
    char serv[8];
    int err = EAI_FAIL;

    snprintf(serv, sizeof(serv), "%u", port);
    for (size_t i = 0; i != sizeof(families) / sizeof(families[0]); i++) {
        struct addrinfo hints = {.ai_family = families[i], .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
        if ((err = getaddrinfo(host, serv, &hints, &res)) == 0) {
            memcpy(addr, res->ai_addr, res->ai_addrlen);
            *addrlen = res->ai_addrlen;
            freeaddrinfo(res);
            return 0;
        }
    }
    cph_log_warn(MODULE, "cannot resolve redis host %s: %s", host, gai_strerror(err));
    return -1;
}

static void *resolver_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&shared.mutex);
    for (;;) {
        while (!shared.stopping && !shared.want_resolve)
            pthread_cond_wait(&shared.cond, &shared.mutex);
        if (shared.stopping)
            break;
        shared.want_resolve = 0;
        cph_redis_config_t cfg = shared.cfg;
        if (cfg.host[0] == '\0')
            continue;
        pthread_mutex_unlock(&shared.mutex);
        struct sockaddr_storage addr;
        socklen_t addrlen = 0;
        int ok = resolve(cfg.host, cfg.port, &addr, &addrlen) == 0;
        pthread_mutex_lock(&shared.mutex);
        if (strcmp(cfg.host, shared.cfg.host) != 0 || cfg.port != shared.cfg.port)
            continue; /* configured elsewhere meanwhile: that asked for its own resolution */
        if (ok) {
            shared.addr = addr;
            shared.addrlen = addrlen;
            shared.resolved = 1;
        } else if (shared.resolved != 1) {
            shared.resolved = -1; /* a failed re-resolution keeps the last good address */
        }
        notify_all_locked();
    }
    pthread_mutex_unlock(&shared.mutex);
    return NULL;
}

/* ---------------------------------------------------------------- public */

void cph_redis_start(void)
{
    pthread_mutex_lock(&shared.mutex);
    assert(!shared.running);
    shared.running = 1;
    shared.stopping = 0;
    shared.want_resolve = 1;
    bump_locked();
    pthread_mutex_unlock(&shared.mutex);
    if (pthread_create(&shared.resolver, NULL, resolver_main, NULL) != 0)
        cph_fatal(MODULE, "cannot start the redis resolver thread");
}

void cph_redis_stop(void)
{
    pthread_mutex_lock(&shared.mutex);
    if (!shared.running) {
        pthread_mutex_unlock(&shared.mutex);
        return;
    }
    shared.running = 0;
    shared.stopping = 1;
    bump_locked();
    pthread_cond_signal(&shared.cond);
    pthread_mutex_unlock(&shared.mutex);
    pthread_join(shared.resolver, NULL);
}

void cph_redis_configure(const cph_redis_config_t *cfg)
{
    pthread_mutex_lock(&shared.mutex);
    if (strncmp(cfg->host, shared.cfg.host, sizeof(shared.cfg.host)) != 0 || cfg->port != shared.cfg.port) {
        shared.resolved = 0;
        shared.want_resolve = 1;
        pthread_cond_signal(&shared.cond);
    }
    shared.cfg = *cfg;
    shared.cfg.host[sizeof(shared.cfg.host) - 1] = '\0';
    bump_locked();
    pthread_mutex_unlock(&shared.mutex);
}

void cph_redis_worker_init(cph_worker_t *w)
{
    cph_redis_worker_t *rw = calloc(1, sizeof(*rw));

    if (rw == NULL)
        cph_fatal(MODULE, "out of memory");
    rw->worker = w;
    rw->loop = w->ctx.loop;
    rw->rng = (uint32_t)(uintptr_t)rw ^ (w->id + 1) * 0x9e3779b9u;
    if (rw->rng == 0)
        rw->rng = 1;
    h2o_linklist_init_anchor(&rw->foreign);
    h2o_linklist_init_anchor(&rw->owed);
    h2o_linklist_init_anchor(&rw->stacks);
    h2o_linklist_init_anchor(&rw->ready);
    h2o_timeout_init(rw->loop, &rw->deadlines, DEFAULT_TIMEOUT_MS);
    h2o_timeout_init(rw->loop, &rw->zero, 0);
    h2o_timeout_init(rw->loop, &rw->tick_timeout, TICK_MS);
    rw->pass.cb = on_pass;
    rw->tick.cb = on_tick;
    h2o_multithread_register_receiver(w->ctx.queue, &rw->ctl_receiver, on_ctl);
    pthread_mutex_lock(&shared.mutex);
    h2o_linklist_insert(&shared.workers, &rw->registered);
    pthread_mutex_unlock(&shared.mutex);
    w->redis = rw;
    self = rw;
    sync_config(rw);
}

void cph_redis_worker_dispose(cph_worker_t *w)
{
    cph_redis_worker_t *rw = w->redis;
    h2o_linklist_t foreign;

    assert(rw != NULL && rw->worker == w);
    h2o_linklist_init_anchor(&foreign);
    pthread_mutex_lock(&shared.mutex);
    h2o_linklist_unlink(&rw->registered); /* nobody sends to it from now on */
    h2o_linklist_insert_list(&foreign, &rw->foreign);
    pthread_mutex_unlock(&shared.mutex);
    while (!h2o_linklist_is_empty(&foreign)) { /* not written: a purge is also kept pending by core/cache_redis.c */
        foreign_t *f = H2O_STRUCT_FROM_MEMBER(foreign_t, link, foreign.next);
        h2o_linklist_unlink(&f->link);
        free(f);
    }
    while (!h2o_linklist_is_empty(&rw->ctl_receiver._messages))
        h2o_linklist_unlink(rw->ctl_receiver._messages.next);
    h2o_multithread_unregister_receiver(w->ctx.queue, &rw->ctl_receiver);
    disconnect(rw);    /* every call still owed an answer gets UNAVAILABLE, here on this thread */
    build_batches(rw); /* the stacks of the pass cut short: UNAVAILABLE too */
    run_ready(rw);
    if (h2o_timeout_is_linked(&rw->pass))
        h2o_timeout_unlink(&rw->pass);
    if (h2o_timeout_is_linked(&rw->tick))
        h2o_timeout_unlink(&rw->tick);
    h2o_timeout_dispose(rw->loop, &rw->deadlines);
    h2o_timeout_dispose(rw->loop, &rw->zero);
    h2o_timeout_dispose(rw->loop, &rw->tick_timeout);
    free(rw->out.bytes);
    free(rw->sending.bytes);
    free(rw);
    w->redis = NULL;
    self = NULL;
}

/* Whether a call can be queued now (else it is answered UNAVAILABLE: no connection, and none being made). */
static int accepting(cph_redis_worker_t *rw)
{
    check_config(rw);
    return rw->state != CONN_IDLE && rw->state != CONN_BACKOFF;
}

/* Answers a call UNAVAILABLE, at the end of the pass like any answer. */
static void refuse(call_t *call)
{
    answer(call, CPH_REDIS_UNAVAILABLE, 0, NULL, NULL);
    call_release(call);
}

/* Queues a call whose command is written (cmd: len bytes), or already is in `out` (cmd NULL). */
static void enqueue(cph_redis_worker_t *rw, call_t *call, const char *cmd, size_t len)
{
    if (call->waiting)
        h2o_timeout_link(rw->loop, &rw->deadlines, &call->deadline);
    push(rw, call, cmd, len);
}

void cph_redis_gcra_stack(cph_worker_t *w, size_t n, const char *const *keys, const size_t *key_lens,
                          const cph_ratelimit_spec_t *const *specs, cph_redis_stack_cb cb, void *ud)
{
    cph_redis_worker_t *rw = w->redis;
    size_t size = sizeof(call_t) + n * (sizeof(cph_ratelimit_result_t) + sizeof(h2o_iovec_t) + sizeof(cph_ratelimit_spec_t));
    call_t *call;
    char *bytes;

    assert(rw != NULL && rw->worker == w);
    if (n == 0 || n > CPH_RATELIMIT_MAX_STACK)
        cph_fatal(MODULE, "a stack of %zu limits", n);
    for (size_t i = 0; i != n; i++)
        size += key_lens[i];
    if ((call = malloc(size)) == NULL)
        cph_fatal(MODULE, "out of memory");
    *call = (call_t){.rw = rw, .kind = KIND_STACK, .waiting = 1, .cb = cb, .ud = ud, .n = n};
    call->deadline.cb = on_deadline;
    call->res = (cph_ratelimit_result_t *)(call + 1);
    call->keys = (h2o_iovec_t *)(call->res + n);
    call->specs = (cph_ratelimit_spec_t *)(call->keys + n);
    bytes = (char *)(call->specs + n);
    for (size_t i = 0; i != n; i++) {
        memcpy(bytes, keys[i], key_lens[i]);
        call->keys[i] = h2o_iovec_init(bytes, key_lens[i]);
        bytes += key_lens[i];
        call->specs[i] = *specs[i];
    }
    if (!accepting(rw)) {
        refuse(call);
        return;
    }
    h2o_timeout_link(rw->loop, &rw->deadlines, &call->deadline);
    h2o_linklist_insert(&rw->stacks, &call->link); /* into this pass's batch */
    schedule_pass(rw);
}

/* A command from a thread with no worker: handed to one (round robin), or dropped when none runs. */
static void hand_over(int argc, const char *const *argv, const size_t *argvlen)
{
    size_t bound = cph_redis_resp_bound(argc, argvlen);
    foreign_t *f = malloc(sizeof(*f) + bound);

    if (f == NULL)
        cph_fatal(MODULE, "out of memory");
    f->link = (h2o_linklist_t){NULL, NULL};
    f->len = cph_redis_resp_format(f->cmd, argc, argv, argvlen);
    pthread_mutex_lock(&shared.mutex);
    if (h2o_linklist_is_empty(&shared.workers) || !shared.running) {
        pthread_mutex_unlock(&shared.mutex);
        free(f);
        return;
    }
    h2o_linklist_t *first = shared.workers.next;
    cph_redis_worker_t *rw = H2O_STRUCT_FROM_MEMBER(cph_redis_worker_t, registered, first);
    h2o_linklist_unlink(first); /* the next one takes the next command */
    h2o_linklist_insert(&shared.workers, first);
    h2o_linklist_insert(&rw->foreign, &f->link);
    notify_locked(rw);
    pthread_mutex_unlock(&shared.mutex);
}

void cph_redis_command(cph_worker_t *w, int argc, const char *const *argv, const size_t *argvlen, cph_redis_reply_cb cb, void *ud)
{
    cph_redis_worker_t *rw = w != NULL ? w->redis : self;
    call_t *call;

    if (rw == NULL) {
        hand_over(argc, argv, argvlen);
        return;
    }
    assert(w == NULL || rw->worker == w);
    call = internal_call(rw, KIND_GENERIC);
    if (w != NULL && cb != NULL) {
        call->waiting = 1;
        call->rcb = cb;
        call->ud = ud;
        call->deadline.cb = on_deadline;
    }
    if (!accepting(rw)) {
        refuse(call);
        return;
    }
    char *p = outbuf_reserve(&rw->out, cph_redis_resp_bound(argc, argvlen));
    rw->out.size += cph_redis_resp_format(p, argc, argv, argvlen);
    enqueue(rw, call, NULL, 0);
}
