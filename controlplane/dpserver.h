/*
 * dpserver: the control plane's side of the snapshot protocol (proto/PROTOCOL.md), on its own thread.
 *
 * Accepts data planes on a Unix socket, one session each, non-blocking writes with one outgoing queue per session.
 * Holds the current snapshot (latest wins, at most one unacknowledged per session, a nacked version is never resent
 * to that data plane), answers pings, marks a session disconnected after 3 missed heartbeats, and keeps a status
 * row per dp_id for the admin API.
 */
#ifndef CPH_DPSERVER_H
#define CPH_DPSERVER_H

#include <stdint.h>
#include <jansson.h>
#include "proto/proto.h"

typedef struct st_cph_dpserver_t cph_dpserver_t;

/**
 * Binds socket_path (an old socket file is replaced; the directory is created 0700), starts the thread.
 * epoch identifies the database; heartbeat_ms is sent in welcome. Returns NULL with err filled.
 */
cph_dpserver_t *cph_dpserver_start(const char *socket_path, const char *epoch, uint64_t heartbeat_ms, cph_error_t *err);
/** Stops the thread, closes every session and removes the socket file. */
void cph_dpserver_stop(cph_dpserver_t *s);
/** Makes (version, hash, body) current and pushes it to every connected data plane. body is incref'd. Thread-safe. */
void cph_dpserver_publish(cph_dpserver_t *s, uint64_t version, const char *hash, json_t *body);
/**
 * Blocks until every connected data plane has acked or nacked `version` or a newer one, or timeout_ms passes.
 * Returns a new JSON object {"settled": bool, "dataplanes": [{"id", "status", "version", "error"?}...]}.
 */
json_t *cph_dpserver_wait_applied(cph_dpserver_t *s, uint64_t version, uint64_t timeout_ms);
/** A new JSON array for GET /api/v1/dataplanes: id, hostname, pid, connected, last_seen, status, applied, last_error. */
json_t *cph_dpserver_list(cph_dpserver_t *s);
/** Number of connected data planes (for metrics). */
size_t cph_dpserver_num_connected(cph_dpserver_t *s);
/**
 * Sends a purge message (cph_msg_purge(route, prefix), PROTOCOL.md section 3) to every connected data plane: the
 * server thread queues the one encoded frame to each session that has said hello, and this call waits (at most
 * CPH_DPSERVER_PURGE_WAIT_MS) until it has. Returns the number of sessions the frame was queued to (0 when s is NULL,
 * stopping or the wait timed out). route and prefix are not checked here (the admin API did). Thread-safe; never call it
 * from the server thread.
 */
size_t cph_dpserver_purge(cph_dpserver_t *s, const char *route, const char *prefix);

#define CPH_DPSERVER_PURGE_WAIT_MS 2000

/**
 * GET /api/v1/authz/shadow: a new object {"endpoints": [{"id", "would_allow", "would_deny"}]}, the last counts of
 * every connected data plane summed per rule id (saturating at INT64_MAX), sorted by id. Thread-safe (takes s->lock).
 */
json_t *cph_dpserver_shadow_stats(cph_dpserver_t *s);

#endif
