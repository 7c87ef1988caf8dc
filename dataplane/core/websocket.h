/*
 * websocket: tunnelling an HTTP/1.1 `Upgrade: websocket` request of a route with policies.websocket to one target of
 * its service, after authentication, authorization and rate limiting (docs/dataplane.md "Websockets").
 *
 * filter/websocket.c does the handshake (checks, target pick, upstream connect and upgrade exchange); this header's
 * tunnel half (core/websocket.c) moves the bytes once both sides switched protocols. Each worker keeps its open
 * tunnels in a list; when it takes a new snapshot, cph_websocket_on_swap re-binds every tunnel to its route in the new
 * snapshot (by the route's stable metric id) or, when the route or its websocket policy is gone, schedules a close
 * after gateway.websocket.drain_grace_ms. Per-client tunnel counts are shared by the DP's workers.
 */
#ifndef CPH_WEBSOCKET_H
#define CPH_WEBSOCKET_H

#include <stdint.h>
#include "dataplane/core/balance.h"
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/worker.h"

/** Route policies.websocket, compiled (compile/websocket.c). */
typedef struct st_cph_ws_policy_t {
    uint64_t idle_timeout_ms;
    uint64_t max_lifetime_ms; /* 0 = none */
    uint32_t max_per_client;  /* 0 = unlimited */
    h2o_iovec_t *origins;     /* lower-case; empty = not checked; "*" = any */
    size_t num_origins;
    uint64_t max_frame_bytes;
    int close_on_token_expiry;
} cph_ws_policy_t;

#define CPH_WS_DEFAULT_IDLE_MS 300000
#define CPH_WS_DEFAULT_MAX_FRAME (1024 * 1024)
#define CPH_WS_DEFAULT_DRAIN_GRACE_MS 30000

/* close codes (RFC 6455 7.4.1) */
#define CPH_WS_CLOSE_GOING_AWAY 1001
#define CPH_WS_CLOSE_PROTOCOL 1002
#define CPH_WS_CLOSE_POLICY 1008
#define CPH_WS_CLOSE_TOO_BIG 1009

/** Per-worker tunnel list; run on the worker thread. */
void cph_websocket_worker_init(cph_worker_t *w);
/** Closes every tunnel of the worker at once, without close frames (shutdown). */
void cph_websocket_worker_dispose(cph_worker_t *w);
/** The worker took `snap`: tunnels keep their route, adopt its new policy, or start the drain grace. */
void cph_websocket_on_swap(cph_worker_t *w, cph_snapshot_t *snap);
/** Open tunnels on this worker (metrics, drain). Any thread (relaxed atomics). */
size_t cph_websocket_count(cph_worker_t *w);

/** Why a tunnel ended (metric cephalo_websocket_closed_total{reason}). */
typedef enum en_cph_ws_closed_reason_t {
    CPH_WS_CLOSED_PEER = 0,      /* the client or the upstream closed (the websocket closing handshake or not) */
    CPH_WS_CLOSED_IDLE,          /* idle_timeout_ms */
    CPH_WS_CLOSED_LIFETIME,      /* max_lifetime_ms */
    CPH_WS_CLOSED_FRAME_TOO_BIG, /* max_frame_bytes: 1009 */
    CPH_WS_CLOSED_PROTOCOL,      /* an invalid frame header: 1002 */
    CPH_WS_CLOSED_TOKEN_EXPIRED, /* close_on_token_expiry: 1008 */
    CPH_WS_CLOSED_ROUTE_REMOVED, /* the route or its policy went away, drain_grace_ms passed */
    CPH_WS_CLOSED_DRAIN,         /* the data plane drains */
    CPH_WS_CLOSED_ERROR,         /* a write failed */
    CPH_WS_CLOSED_REASONS
} cph_ws_closed_reason_t;

/** Tunnels of this worker that ended for reason, since it started. Any thread (relaxed atomics). */
uint64_t cph_websocket_closed(cph_worker_t *w, cph_ws_closed_reason_t reason);
/** The metric label of a reason ("peer", "idle", "lifetime", "frame_too_big", "protocol", "token_expired", ...). */
const char *cph_websocket_closed_reason_name(cph_ws_closed_reason_t reason);
/**
 * The data plane drains (core/server.c start_drain): every tunnel of the worker is closed with 1001 on both sides
 * (at a frame boundary, waiting at most CPH_WS_CLOSE_WAIT_MS for the peers' close replies). Upgrades arriving later
 * are answered 503 shutting_down.
 */
void cph_websocket_drain(cph_worker_t *w);

/* ---- frame headers (streaming; no payload is copied) ---- */

/** Where a stream of frames is: bytes of the current frame's payload still to pass. */
typedef struct st_cph_ws_stream_t {
    uint64_t remaining; /* payload bytes of the current frame not yet passed; 0 = at a frame boundary */
    uint8_t opcode;     /* of the current (or last) frame */
    int close_seen;     /* a close frame passed completely */
    int masked;         /* RFC 6455 5.1: 1 = every frame must be masked (from the client), -1 = none may be (from the
                           server), 0 = not checked */
} cph_ws_stream_t;

enum { CPH_WS_SCAN_OK = 0, CPH_WS_SCAN_TOO_BIG, CPH_WS_SCAN_PROTOCOL };

/**
 * Scans buf[0..len) continuing the stream s and returns how many of those bytes may be passed on: everything but a
 * trailing incomplete frame header (kept for the next call, which must start with those bytes again), and nothing from
 * a frame header that announces more than max_frame payload bytes (*event CPH_WS_SCAN_TOO_BIG), or that breaks RFC 6455
 * section 5 (*event CPH_WS_SCAN_PROTOCOL): the length's most significant bit set, a reserved opcode, a control frame
 * fragmented or over 125 bytes, a mask bit against s->masked. With stop_at_boundary, scanning also stops at the first frame
 * boundary (the end of the current frame), so a frame of our own can be injected there. s is advanced over the
 * returned bytes only.
 */
size_t cph_ws_scan(cph_ws_stream_t *s, const uint8_t *buf, size_t len, uint64_t max_frame, int stop_at_boundary, int *event);

/** Writes a close frame with code (no reason) into out (8 bytes room): masked when mask is non-NULL. Returns its length. */
size_t cph_ws_close_frame(uint8_t *out, uint16_t code, const uint8_t *mask);

#define CPH_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/** Whether key is a valid Sec-WebSocket-Key: the base64 of 16 bytes (24 characters, "==" at the end). */
int cph_ws_key_valid(const char *key, size_t len);
/** Writes base64(SHA-1(key + the RFC 6455 GUID)) (CPH_WS_ACCEPT_LEN bytes, plus a NUL) into out. */
void cph_ws_accept_key(const char *key, size_t len, char out[CPH_WS_ACCEPT_LEN + 1]);

/* ---- per-client counts (per route and client, shared by the DP's workers) ---- */

/** Takes one tunnel slot of key (bytes) on route metric id `route`; 0, or -1 when `max` are taken already. */
int cph_ws_client_acquire(uint32_t route, const char *key, size_t len, uint32_t max);
/** Gives the slot back. */
void cph_ws_client_release(uint32_t route, const char *key, size_t len);

/* ---- the tunnel, between filter/websocket.c and core/websocket.c ---- */

typedef struct st_cph_ws_tunnel_t cph_ws_tunnel_t;

/** What a finished handshake hands the tunnel; everything in it is owned by the tunnel from then on. */
typedef struct st_cph_ws_handoff_t {
    h2o_socket_t *upstream;   /* connected; its input holds whatever followed the 101 head */
    cph_snapshot_t *snap;     /* a reference, released when the tunnel ends (the pick's service lives in it) */
    const cph_route_t *route; /* in snap */
    cph_pick_t pick;          /* ended (cph_balance_end) when the tunnel ends */
    char client_key[64];      /* per-client slot taken (cph_ws_client_acquire); len 0 = none */
    size_t client_key_len;
    int64_t token_exp; /* the principal's exp (s since epoch), 0 = none */
} cph_ws_handoff_t;

/**
 * A tunnel for an upgrade in progress: called right before h2o_http1_upgrade, with the handoff's ownership. Pass
 * cph_ws_tunnel_upgraded as the upgrade's callback with the returned tunnel: it starts the tunnel on the client socket
 * (or, when the 101 could not be written, releases everything).
 */
cph_ws_tunnel_t *cph_ws_tunnel_new(cph_worker_t *w, cph_ws_handoff_t *handoff);
void cph_ws_tunnel_upgraded(void *tunnel, h2o_socket_t *client, size_t reqsize);
/** Whether cph_websocket_drain ran on w (a new upgrade is refused). */
int cph_websocket_draining(cph_worker_t *w);
/** The worker's timeout list of ms milliseconds (created on first use, kept until the worker ends). */
h2o_timeout_t *cph_ws_timeout(cph_worker_t *w, uint64_t ms);

#define CPH_WS_CLOSE_WAIT_MS 2000 /* after our close frames: how long the peers get to answer before the sockets close */

#endif
