/*
 * server: the h2o side of the data plane: one globalconf (one host, one catch-all path whose handler is the
 * pipeline), N worker threads with one event loop and one h2o context each, the client listeners (HTTP/1.1 + h2c,
 * and TLS with ALPN h2 / http/1.1), snapshot publication to the workers and the graceful drain.
 *
 * Every worker owns one SO_REUSEPORT listening socket per address, so the kernel spreads connections over the
 * workers and no accept lock or thundering herd exists; a worker closes its own sockets during the drain.
 */
#ifndef CPH_SERVER_H
#define CPH_SERVER_H

#include <sys/socket.h>
#include <openssl/ssl.h>
#include "proto/proto.h"
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/worker.h"

typedef struct st_cph_server_config_t {
    const char *listen;     /* "HOST:PORT": HTTP/1.1 and h2c */
    const char *listen_tls; /* "HOST:PORT" or NULL: TLS with ALPN h2, http/1.1 */
    const char *tls_cert;   /* PEM chain, required with listen_tls */
    const char *tls_key;    /* PEM key, required with listen_tls */
    unsigned num_workers;
} cph_server_config_t;

/** A note from a worker to the control thread (sent to cph_server_t.notify). */
typedef enum en_cph_worker_note_kind_t {
    CPH_NOTE_SWAPPED, /* the worker now serves note->snap */
    CPH_NOTE_DRAINED, /* draining, and the worker has no connection left */
} cph_worker_note_kind_t;

typedef struct st_cph_worker_note_t {
    h2o_multithread_message_t super;
    cph_worker_note_kind_t kind;
    uint32_t worker_id;
    cph_snapshot_t *snap; /* CPH_NOTE_SWAPPED: the snapshot swapped in (borrowed, for matching only) */
} cph_worker_note_t;

typedef struct st_cph_server_t {
    h2o_globalconf_t globalconf;
    cph_server_config_t config;
    SSL_CTX *ssl_ctx;
    cph_worker_t *workers; /* num_workers of them */
    unsigned num_workers;
    int *fds; /* per worker: [plain, tls] listening sockets (-1 when unused), owned by the worker once started */
    h2o_multithread_receiver_t *notify; /* the control thread's receiver for cph_worker_note_t */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    unsigned num_started;
    struct st_cph_connlimit_t *connlimit; /* open connections per peer address, shared by the workers */
} cph_server_t;

/**
 * Builds the globalconf, opens every listening socket (SO_REUSEPORT, one per worker and address) and loads the TLS
 * certificate (port 0 gives every worker its own ephemeral port: tests only). First checks that nobody holds the
 * port, since SO_REUSEPORT would otherwise let a second data plane share it silently. No thread is started. notify
 * receives the workers' notes. Returns 0, or -1 with err filled (a bad address, a port in use, an unreadable
 * certificate).
 */
int cph_server_init(cph_server_t *s, const cph_server_config_t *config, h2o_multithread_receiver_t *notify, cph_error_t *err);
/**
 * Starts the worker threads, each serving initial (may be NULL: no config yet; each worker takes its own reference),
 * and returns once every worker is accepting.
 */
void cph_server_start(cph_server_t *s, cph_snapshot_t *initial);
/** Control thread: sends snap to every worker (one reference each); each answers a CPH_NOTE_SWAPPED note. */
void cph_server_publish(cph_server_t *s, cph_snapshot_t *snap);
/**
 * Control thread: starts the graceful drain: every worker closes its listeners, asks h2o to shut down (GOAWAY for
 * h2, no more keep-alive for h1), closes idle HTTP/1 connections and sends CPH_NOTE_DRAINED once it holds no
 * connection.
 */
void cph_server_drain(cph_server_t *s);
/**
 * Control thread: stops every worker's event loop and joins the threads. With force (drain timeout), requests still in
 * flight are abandoned and nothing is freed: the caller exits the process right after.
 */
void cph_server_stop(cph_server_t *s, int force);
/** Frees what cph_server_init and cph_server_start built (after a non-forced stop). */
void cph_server_dispose(cph_server_t *s);

/** Parses "HOST:PORT" or "[V6]:PORT" (numeric host, or "localhost") into addr. Returns 0 or -1. */
int cph_server_parse_addr(const char *hostport, struct sockaddr_storage *addr, socklen_t *len);
/** A non-blocking listening TCP socket on hostport (SO_REUSEADDR, and SO_REUSEPORT when reuseport). -1 + err. */
int cph_server_listen_fd(const char *hostport, int reuseport, cph_error_t *err);

#endif
