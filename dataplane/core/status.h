/*
 * status: the data plane's status listener (--status-listen, default 127.0.0.1:9901) on the control thread's loop:
 * /health, /ready, /metrics (Prometheus text, docs/dataplane.md) and /health/services (upstream targets' health).
 */
#ifndef CPH_STATUS_H
#define CPH_STATUS_H

#include "proto/proto.h"
#include "dataplane/core/control.h"

typedef struct st_cph_status_t cph_status_t;

/**
 * Listens on hostport and serves from c->loop: GET /health 200 while the process runs; /ready 200
 * {"status":"ready","version":N} once a snapshot is in force, else 503 {"status":"no_config"}; /metrics sums every
 * worker's counters with relaxed reads; /health/services 200 with cph_health_report of the snapshot in force (405 for
 * a method other than GET/HEAD). Anything else is 404. Returns NULL with err filled when it cannot listen.
 */
cph_status_t *cph_status_start(cph_control_t *c, const char *hostport, cph_error_t *err);
/** Renders the Prometheus exposition into a malloc'd NUL-terminated string (control thread). */
char *cph_status_metrics(cph_control_t *c);
/** Closes the listener and frees everything (control thread). */
void cph_status_stop(cph_status_t *st);

#endif
