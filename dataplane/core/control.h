/*
 * control: the data plane's control thread. It owns the snapshot in force, applies new ones (PROTOCOL.md section 4
 * rule 3), persists them, boots from disk, and runs the graceful drain. Its event loop also carries the CP client
 * (core/cpclient.c) and the status listener (core/status.c). Nothing here runs on a worker.
 */
#ifndef CPH_CONTROL_H
#define CPH_CONTROL_H

#include <jansson.h>
#include "proto/proto.h"
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/server.h"
#include "dataplane/core/snapshot.h"

/**
 * Receives the answer to one applied snapshot message: an ack or a nack message (borrowed; the control thread drops
 * it after the call). tag is the value given to cph_control_apply(), so a client can drop answers meant for a
 * connection that is gone.
 */
typedef void (*cph_control_reply_cb)(void *data, uint64_t tag, json_t *reply);

typedef struct st_cph_control_t {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t notify; /* cph_worker_note_t from the workers */
    cph_server_t *server;
    const char *state_dir;
    size_t max_routes;       /* --max-routes: a bigger snapshot is refused; 0 = only the schema's cap */
    cph_snapshot_t *current; /* in force (the control thread's own reference), NULL = no config */
    cph_applied_t applied;
    int file_ok; /* snapshot.json on disk is good, so a new write may keep it as snapshot.prev.json */
    struct {
        cph_snapshot_t *snap; /* being published; NULL when no swap is in flight */
        json_t *body;
        unsigned remaining; /* workers that have not swapped yet */
        uint64_t started_ms;
        cph_control_reply_cb cb;
        void *cbdata;
        uint64_t tag;
    } swap;
    struct {
        json_t *msg; /* a snapshot that arrived during a swap: applied after it (latest wins) */
        cph_control_reply_cb cb;
        void *cbdata;
        uint64_t tag;
    } queued;
    /* metrics (read by the status handlers on this same thread) */
    uint64_t applies;
    uint64_t nacks;
    int cp_connected;
    /* drain */
    int draining;
    unsigned drained;
    uint64_t drain_timeout_ms;
    h2o_timeout_t drain_timeout;
    h2o_timeout_entry_t drain_entry;
    h2o_socket_t *signal_sock;
    int exit; /* 1 = leave the loop */
    int forced;
} cph_control_t;

/** Creates the control loop and its queue and makes sure state_dir exists with mode 0700. Returns 0 or -1 + err. */
int cph_control_init(cph_control_t *c, const char *state_dir, cph_error_t *err);
/**
 * Boots from disk: snapshot.json, else snapshot.prev.json, each only if its hash and body check out and it
 * compiles. A bad file is logged and skipped. Returns the snapshot in force (borrowed) or NULL (no config).
 */
cph_snapshot_t *cph_control_boot(cph_control_t *c);
/** Links the started server, whose notes arrive at c->notify. */
void cph_control_attach(cph_control_t *c, cph_server_t *server);
/**
 * Applies a checked `snapshot` message (cph_msg_check passed): same hash -> ack at once; otherwise hash check ->
 * validate -> compile -> publish to every worker -> wait until all swapped -> persist -> ack. Any failure -> nack and
 * the old snapshot stays in force whole. cb is called exactly once, possibly before this returns.
 */
void cph_control_apply(cph_control_t *c, const json_t *msg, cph_control_reply_cb cb, void *cbdata, uint64_t tag);
/** Blocks SIGTERM/SIGINT in the calling thread (call before any thread starts) and watches them on the loop. */
void cph_control_watch_signals(cph_control_t *c, uint64_t drain_timeout_ms);
/** Starts the graceful drain (SIGTERM/SIGINT do this). */
void cph_control_drain(cph_control_t *c);
/** Runs the loop until the drain has finished; stops the workers. Returns 1 when the drain timed out, else 0. */
int cph_control_run(cph_control_t *c);
/** Frees what init built (after a clean run). */
void cph_control_dispose(cph_control_t *c);

/** Milliseconds of a monotonic clock. */
uint64_t cph_control_now_ms(void);

#endif
