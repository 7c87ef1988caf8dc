/*
 * dpserver_internal: what dpserver.c (thread, sockets, queues) and dpsession.c (protocol state, status rows) share.
 * Private to those two files.
 *
 * Threads and locks: sessions (cph_dpsession_t) and the purge replay ring belong to the server thread alone. Everything
 * another thread may read - the latest snapshot, the status rows (their health reports included), the stopping flag -
 * is guarded by server->lock; the server thread takes it while it handles a message or pushes a snapshot, never while
 * it sits in poll(). server->changed is broadcast on every ack, nack, hello and disconnect so
 * cph_dpserver_wait_applied() can re-check.
 */
#ifndef CPH_DPSERVER_INTERNAL_H
#define CPH_DPSERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "controlplane/dpserver.h"
#include "controlplane/dptraffic.h"
#include "proto/proto.h"

#define CPH_DPSERVER_QUEUE_MAX 256        /* frames queued to one session before it is dropped as stuck */
#define CPH_DPSERVER_MAX_SESSIONS 4096    /* open connections, hello or not */
#define CPH_DPSERVER_MAX_DISCONNECTED 256 /* remembered rows of data planes that are gone */
#define CPH_DPSERVER_MAX_NACKED 16        /* nacked versions remembered per dp_id */
#define CPH_DPSERVER_HOSTNAME_MAX 255     /* bytes kept of hello.hostname / software */
#define CPH_DPSERVER_ERROR_STR_MAX 1024   /* bytes kept of each string in a nack's error */
#define CPH_DPSERVER_MAX_SHADOW 4096      /* shadow-rule counters kept per data plane (ping "shadow" entries) */

typedef enum en_cph_dpstatus_t {
    CPH_DPSTATUS_SYNCED,
    CPH_DPSTATUS_APPLYING,
    CPH_DPSTATUS_NACKED,
    CPH_DPSTATUS_DISCONNECTED,
} cph_dpstatus_t;

/* An encoded frame shared by every session it is queued to (the snapshot is encoded once per publish). */
typedef struct st_cph_dpframe_t {
    atomic_size_t refcnt;
    size_t len;
    char *data;
} cph_dpframe_t;

typedef struct st_cph_dpqent_t {
    struct st_cph_dpqent_t *next;
    cph_dpframe_t *frame;
} cph_dpqent_t;

typedef struct st_cph_dprow_t cph_dprow_t;

/* One shadow rule's cumulative would-be decisions, as the data plane's last ping reported them (docs/access.md section 4). */
typedef struct st_cph_dpshadow_t {
    int64_t id; /* the endpoint rule's id (>= 1) */
    uint64_t would_allow;
    uint64_t would_deny;
} cph_dpshadow_t;

typedef struct st_cph_dpsession_t {
    struct st_cph_dpsession_t *next;
    int fd;
    int dead;       /* closed at the end of the loop iteration */
    int hello_done; /* welcome sent, row attached */
    cph_frame_reader_t reader;
    cph_dpqent_t *qhead, *qtail;
    size_t qoff; /* bytes of qhead already written */
    size_t qlen;
    uint64_t last_rx_ms; /* monotonic */
    cph_dprow_t *row;
    cph_applied_t has; /* what the data plane runs, as far as this session told us */
    int inflight;      /* a snapshot is sent and not yet acked or nacked */
    uint64_t inflight_version;
    char inflight_hash[CPH_HASH_SIZE];
    uint64_t replay_next, replay_end; /* kept purges [next, end) still to replay to it (server->replay numbers) */
} cph_dpsession_t;

/* One per dp_id, kept after a disconnect (for the admin API and the never-resend-a-nack rule). */
struct st_cph_dprow_t {
    char *id;
    char hostname[CPH_DPSERVER_HOSTNAME_MAX + 1];
    char software[CPH_DPSERVER_HOSTNAME_MAX + 1];
    long pid;
    cph_dpsession_t *session; /* NULL = disconnected */
    uint64_t last_seen_wall_ms;
    uint64_t gone_seq; /* order of disconnects, for evicting the oldest */
    cph_dpstatus_t status;
    cph_applied_t applied;
    uint64_t applied_at_wall_ms;
    json_t *last_error; /* the last nack's error, NULL once acked */
    int answered_any;
    uint64_t answered; /* highest version of our epoch acked, nacked or reported applied */
    uint64_t nacked[CPH_DPSERVER_MAX_NACKED];
    size_t num_nacked, nacked_next;
    cph_dpshadow_t *shadow; /* the connected session's last ping "shadow", sorted by id; NULL when none */
    size_t num_shadow;
    json_t *health;             /* the connected session's last health report (sanitized services), NULL when none */
    cph_dptraffic_t traffic;    /* the connected session's request counters and rates (its pings' "traffic") */
    uint64_t health_at_wall_ms; /* when it arrived */
};

/* A purge kept for replay (server thread only): the encoded frame and its "at". */
typedef struct st_cph_dpreplay_t {
    uint64_t at_ms;
    cph_dpframe_t *frame;
} cph_dpreplay_t;

struct st_cph_dpserver_t {
    char *socket_path;
    char epoch[65];
    uint64_t heartbeat_ms;
    int listen_fd;
    int wake_fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* on CLOCK_MONOTONIC */
    /* guarded by lock */
    int stopping;
    cph_dpframe_t *latest;
    struct st_cph_dppurge_t *purges; /* purge requests of other threads, oldest first (dpserver.c) */
    uint64_t latest_version;
    char latest_hash[CPH_HASH_SIZE];
    cph_dprow_t **rows;
    size_t num_rows, cap_rows;
    uint64_t num_disconnects;
    /* server thread only */
    cph_dpsession_t *sessions;
    size_t num_sessions;
    uint64_t accept_paused_until;
    char *rbuf;                        /* READ_CHUNK bytes every session reads into */
    cph_dpreplay_t *replay;            /* CPH_DPSERVER_PURGE_REPLAY_MAX slots; purge number n lives at n % MAX */
    uint64_t replay_first, replay_end; /* the kept purges are numbers [first, end) */
    uint64_t health_log_ms;            /* rate limit of the "bad health report" log line */
    uint64_t health_log_dropped;
};

/* ---- dpserver.c ---- */
uint64_t cph_dpserver_now_ms(void);
uint64_t cph_dpserver_wall_ms(void);
/** Encodes msg into a new shared frame (refcnt 1); NULL with err filled if it is over the frame limit. */
cph_dpframe_t *cph_dpframe_new(const json_t *msg, cph_error_t *err);
void cph_dpframe_release(cph_dpframe_t *f);
/** Queues frame (a reference is taken) and writes what the socket takes now; a queue over the cap kills the session. */
void cph_dpsession_send(cph_dpsession_t *sess, cph_dpframe_t *frame);
/** Queues msg (consumed) and writes what the socket takes now. */
void cph_dpsession_send_msg(cph_dpsession_t *sess, json_t *msg);
/**
 * Starts replaying the kept purges to sess (hello just done, its snapshot queued): every kept purge younger than
 * CPH_DPSERVER_PURGE_KEEP_MS is queued to it in order, a few at a time so its queue stays under half its cap; the
 * rest follows as the socket drains. Server thread.
 */
void cph_dpsession_replay_purges(cph_dpserver_t *s, cph_dpsession_t *sess);
/** Sends an error message best effort and marks the session dead. */
void cph_dpsession_fail(cph_dpsession_t *sess, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- dpsession.c (server thread) ---- */
/** Handles one checked-by-framing message; takes s->lock. msg is borrowed. */
void cph_dpsession_on_message(cph_dpserver_t *s, cph_dpsession_t *sess, json_t *msg);
/** Sends the latest snapshot to sess if it has none in flight and it differs from what it runs. Lock held. */
void cph_dpsession_push_latest(cph_dpserver_t *s, cph_dpsession_t *sess);
/** A session is going away: its row becomes disconnected (unless a newer session took it over). Lock held. */
void cph_dpsession_on_close(cph_dpserver_t *s, cph_dpsession_t *sess);
/** Frees every row. Lock held or no other thread left. */
void cph_dpsession_free_rows(cph_dpserver_t *s);
/**
 * Reads a ping's "shadow" member ({"<id>": [would_allow, would_deny], ...}) into a new array sorted by id (free()
 * it). Hostile input is dropped entry by entry, never trusted: a key that is not a canonical decimal id (1 to 18 digits, no leading
 * zero), a value that is not an array of two non-negative integers; at most CPH_DPSERVER_MAX_SHADOW entries are kept (the first
 * ones in the object). Returns the number kept (0 with *out NULL for none), or -1 when v is not an object.
 */
int cph_dpsession_parse_shadow(const json_t *v, cph_dpshadow_t **out, size_t *num);

#endif
