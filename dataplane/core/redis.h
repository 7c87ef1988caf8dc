/*
 * redis: the data plane's Redis client (the shared rate-limit backend, the shared response cache). Each worker has its
 * own connection on its own event loop: a call is written, read and answered on the worker that made it, so a worker
 * never blocks on Redis and no call crosses a thread. Every call has a deadline (hiredis 0.14 has none): when it
 * passes, the caller gets CPH_REDIS_TIMEOUT and a late reply is dropped. While there is no connection (none
 * configured, or between reconnect attempts: jittered backoff 100 ms .. 5 s) calls are answered UNAVAILABLE at once.
 *
 * A stack of rate limits is decided by one call, all or nothing: cph_gcra's decision (core/ratelimit.h) for every key,
 * run by one Lua script on Redis's clock (TIME, core/redis_script.c); a key holds the TAT in microseconds and expires
 * when the bucket is full again. Any other command goes through cph_redis_command (argv and lengths, binary-safe), whose
 * reply is lent to the callback; a call without a worker is fire-and-forget (the control thread's writes are handed
 * to a worker).
 */
#ifndef CPH_REDIS_H
#define CPH_REDIS_H

#include <stdint.h>
#include "dataplane/core/ratelimit.h"
#include "dataplane/core/worker.h"

typedef enum en_cph_redis_status_t {
    CPH_REDIS_OK = 0,
    CPH_REDIS_TIMEOUT,     /* no answer within timeout_ms */
    CPH_REDIS_UNAVAILABLE, /* not configured, not connected, or an error reply */
} cph_redis_status_t;

/** Where Redis is (body gateway.redis); host empty = none. */
typedef struct st_cph_redis_config_t {
    char host[256];
    uint16_t port;
    int db;
    uint64_t timeout_ms;
} cph_redis_config_t;

/**
 * Called on the submitting worker's thread with a stack's answer. When status is OK, res has the stack's n entries and
 * refused is n when every limit allowed (each res[i] filled, every limit charged one request), else the index of the
 * first refusing limit (res[refused] says when to retry; nothing was charged, the other entries are zero). Otherwise
 * res is NULL and refused is meaningless.
 */
typedef void (*cph_redis_stack_cb)(void *ud, cph_redis_status_t status, size_t refused, const cph_ratelimit_result_t *res);

/** Reply types (the values are hiredis's REDIS_REPLY_*; an error reply never reaches a callback: UNAVAILABLE). */
typedef enum en_cph_redis_reply_type_t {
    CPH_REDIS_REPLY_STRING = 1,
    CPH_REDIS_REPLY_ARRAY = 2,
    CPH_REDIS_REPLY_INTEGER = 3,
    CPH_REDIS_REPLY_NIL = 4,
    CPH_REDIS_REPLY_STATUS = 5,
} cph_redis_reply_type_t;

/** A reply (the callback borrows it: it is freed when the callback returns). */
typedef struct st_cph_redis_reply_t {
    cph_redis_reply_type_t type;
    long long integer; /* INTEGER */
    char *str;         /* STRING, STATUS: len bytes plus a NUL */
    size_t len;
    size_t elements; /* ARRAY */
    struct st_cph_redis_reply_t **element;
} cph_redis_reply_t;

/** Called on the submitting worker's thread: reply non-NULL exactly when status is OK (valid during the call only). */
typedef void (*cph_redis_reply_cb)(void *ud, cph_redis_status_t status, const cph_redis_reply_t *reply);

/**
 * Starts the client (control thread, once, before the workers take traffic) with the config last given to
 * cph_redis_configure, if any, and the thread that resolves host names. Before the start (and after the stop) every
 * call is answered UNAVAILABLE.
 */
void cph_redis_start(void);
/**
 * Stops the client: every worker closes its connection on its own loop, answering the calls it has not answered yet
 * CPH_REDIS_UNAVAILABLE; the resolver thread is joined.
 */
void cph_redis_stop(void);
/**
 * Applies a new config from a snapshot (any thread; may come before cph_redis_start): a changed host, port or db
 * reconnects at once (calls in flight on the old connection: UNAVAILABLE), a changed timeout_ms applies from then on
 * (to the calls already waiting too), an empty host disconnects. Every worker applies it on its own loop, at the
 * latest with its next call. Host names are resolved on the client's own thread (blocking getaddrinfo: never a
 * worker), and again after a failed connect.
 */
void cph_redis_configure(const cph_redis_config_t *cfg);
/**
 * Per-worker setup on the worker thread, after its loop and w->ctx.queue exist: the worker's connection (made at once
 * when Redis is configured) and the receiver the config changes arrive on. One worker per thread.
 */
void cph_redis_worker_init(cph_worker_t *w);
/**
 * Worker thread, before h2o_context_dispose (after the worker's requests have ended): closes the connection; every
 * call this worker made and that is still unanswered gets its callback here, at once, with CPH_REDIS_UNAVAILABLE.
 */
void cph_redis_worker_dispose(cph_worker_t *w);

/**
 * Submits one all-or-nothing GCRA decision for a stack of n limits (1..CPH_RATELIMIT_MAX_STACK, else fatal): limit i
 * has redis key keys[i] (key_lens[i] bytes; the caller builds it: "cph:rl:<scope>:<limit>:<hash>") and spec specs[i];
 * everything is copied before the call returns. One script call on the server: every key is decided, and written only
 * when all allow. cb(ud, ...) runs later on worker w's loop, exactly once (never inside this call nor inside another
 * call of this module), within about timeout_ms: OK with the decisions, TIMEOUT, or UNAVAILABLE (no connection, an
 * error reply, shutdown). ud must stay valid until then (a request that goes away meanwhile must not free it). Worker
 * thread only (w must be this thread's worker).
 */
void cph_redis_gcra_stack(cph_worker_t *w, size_t n, const char *const *keys, const size_t *key_lens,
                          const cph_ratelimit_spec_t *const *specs, cph_redis_stack_cb cb, void *ud);

/**
 * Submits one command (argc arguments, binary-safe: argv[i] is argvlen[i] bytes; copied before the call returns) with
 * the same deadline, connection and reconnect rules as cph_redis_gcra_stack. With a worker w (this thread's), cb(ud, ...)
 * runs later on w's loop exactly once: OK with the reply, TIMEOUT, or UNAVAILABLE (no connection, an error reply -
 * logged at most once a second -, shutdown). With w NULL (any thread) the command is fire-and-forget: cb is never
 * called and its failure only logged; it goes on this thread's worker's connection, or, from a thread that is no
 * worker, is handed to one (dropped when no worker runs).
 */
void cph_redis_command(cph_worker_t *w, int argc, const char *const *argv, const size_t *argvlen, cph_redis_reply_cb cb, void *ud);

#endif
