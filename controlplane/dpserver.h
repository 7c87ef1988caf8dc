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
 * The data planes at a glance (GET /api/v1/health, GET /metrics): a new object {"latest_version" (the version published
 * last, 0 before the first), "connected" (count), "dataplanes": [{"id", "connected" (bool), "status" (as in
 * cph_dpserver_list), "version" (what it runs: applied.version), "lag" (versions behind latest_version: latest minus its
 * version when it runs a version of this database's epoch, else latest_version; never below 0), "last_seen" (RFC 3339
 * or null)}]} with one entry per row (connected ones and the remembered disconnected ones) sorted by id. Thread-safe:
 * copies under s->lock, nothing shared with the server.
 */
json_t *cph_dpserver_summary(cph_dpserver_t *s);
/**
 * Sends a purge message (cph_msg_purge(route, prefix) plus "at": at_ms, the control plane's wall clock in ms since the
 * epoch when the purge was asked for; PROTOCOL.md section 3) to every connected data plane: the server thread queues
 * the one encoded frame to each session that has said hello, and this call waits (at most CPH_DPSERVER_PURGE_WAIT_MS)
 * until it has. The server thread also keeps the frame for replay: every data plane that says hello later gets, after
 * its snapshot, each kept purge whose at_ms is less than CPH_DPSERVER_PURGE_KEEP_MS old (at most the last
 * CPH_DPSERVER_PURGE_REPLAY_MAX, oldest first). Returns the number of sessions the frame was queued to now (0 when s is
 * NULL, stopping or the wait timed out - a purge that timed out is not kept either). route and prefix are not checked
 * here (the admin API did). Thread-safe; never call it from the server thread.
 */
size_t cph_dpserver_purge(cph_dpserver_t *s, const char *route, const char *prefix, uint64_t at_ms);

#define CPH_DPSERVER_PURGE_WAIT_MS 2000
#define CPH_DPSERVER_PURGE_KEEP_MS (24ull * 3600 * 1000) /* a cached entry's longest life (max_ttl_s 86400) */
#define CPH_DPSERVER_PURGE_REPLAY_MAX 4096

/**
 * GET /api/v1/health/services: a new array with one object per connected data plane, sorted by dp_id: {"dp_id",
 * "received_at" (RFC 3339 UTC with ms of its last `health` message, null before the first), "services" (that message's
 * services as cph_api_health_sanitize() kept them, [] before the first)}. A data plane's report is dropped when it
 * disconnects. Thread-safe (takes s->lock; the result shares nothing with the server).
 */
json_t *cph_dpserver_health(cph_dpserver_t *s);

/**
 * GET /api/v1/authz/shadow: a new object {"endpoints": [{"id", "would_allow", "would_deny"}]}, the last counts of
 * every connected data plane summed per rule id (saturating at INT64_MAX), sorted by id. Thread-safe (takes s->lock).
 */
json_t *cph_dpserver_shadow_stats(cph_dpserver_t *s);

#endif
