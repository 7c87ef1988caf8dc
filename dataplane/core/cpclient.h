/*
 * cpclient: the data plane's connection to the control plane (PROTOCOL.md sections 1, 3 and 4), on the control
 * thread's loop. Non-blocking from connect to the last write, so the workers never wait on it and keep serving the
 * snapshot in force while the control plane is away.
 */
#ifndef CPH_CPCLIENT_H
#define CPH_CPCLIENT_H

#include "dataplane/core/control.h"

typedef struct st_cph_cpclient_t cph_cpclient_t;

#define CPH_SOFTWARE "cephalo-dataplane/0.1.0"

/**
 * Creates the client and makes its first connection attempt on the control loop: hello (dp_id, hostname, pid,
 * software, applied) -> welcome -> snapshots applied through cph_control_apply() and answered with ack/nack; ping
 * every heartbeat_ms, reconnect after 3 heartbeats without a pong; reconnect with jittered exponential backoff
 * (100 ms doubling to 5 s, +-25 %). Keeps c->cp_connected up to date. Sends the health report (cph_health_report) as
 * {"type":"health",...} after the first snapshot answered on each connection, then on change at most once a second.
 * Purges are handed to cph_cache_purge_before.
 */
cph_cpclient_t *cph_cpclient_create(cph_control_t *c, const char *socket_path, const char *dp_id);
/** Closes the connection and frees the client (control thread). */
void cph_cpclient_destroy(cph_cpclient_t *cl);

#endif
