/*
 * metrics: the control plane's GET /metrics (Prometheus text exposition format 0.0.4), behind the admin bearer token
 * (api.c routes it). The families: cephalo_cp_snapshot_version, cephalo_cp_admin_requests_total{method,status_class},
 * cephalo_cp_dataplanes_connected, cephalo_cp_dataplane_lag_versions{dp_id}, cephalo_cp_snapshot_build_seconds
 * (histogram), cephalo_cp_snapshot_build_last_seconds, cephalo_cp_snapshot_bytes, cephalo_cp_sqlite_busy_retries_total,
 * cephalo_cp_sqlite_busy_failures_total, and the integrations' (integrations.c: cephalo_cp_integration_up, _errors_total,
 * _syncs_total, cephalo_cp_vault_token_expiry_seconds).
 */
#ifndef CPH_METRICS_H
#define CPH_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "controlplane/db.h"
#include "controlplane/dpserver.h"

#define CPH_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/** A growing text buffer the families are appended to. Start it zeroed; buf is NUL-terminated once anything is in. */
typedef struct st_cph_metrics_buf_t {
    char *buf;
    size_t len;
    size_t cap;
} cph_metrics_buf_t;

/** Appends printf-style text to b (grows it; out of memory aborts). */
void cph_metrics_printf(cph_metrics_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends the "# HELP name help" and "# TYPE name type" lines of a family (type "counter" or "gauge"; help one line). */
void cph_metrics_family(cph_metrics_buf_t *b, const char *name, const char *type, const char *help);
/**
 * Appends s as the inside of a quoted label value: backslash, double quote and line feed escaped as the exposition
 * format says (\\, \", \n); every other byte as is (the format's label values are UTF-8; ours come from checked JSON).
 */
void cph_metrics_label_value(cph_metrics_buf_t *b, const char *s);

/**
 * Counts one answer of the admin listener (api.c calls it once per request it answers: /health, /metrics and /api/
 * alike) into cephalo_cp_admin_requests_total{method,status_class}. method is the request's method as sent (GET, HEAD,
 * POST, PUT, DELETE; anything else counts as "other"); status the HTTP status (100-599; anything else counts as 5xx).
 * Thread-safe and lock-free (relaxed atomics); the counters live for the process.
 */
void cph_metrics_count_admin(const char *method, unsigned status);
/** The current count for (method, status class "2xx".."5xx") as rendered - for tests. 0 for an unknown pair. */
uint64_t cph_metrics_admin_count(const char *method, const char *status_class);

/**
 * The whole GET /metrics body: a new NUL-terminated string (free() it) of *len bytes. db may be NULL (no database
 * families: unit tests), else it is read through cph_db_current_snapshot (takes its lock) and cph_db_stats (no lock);
 * dps may be NULL (no data planes: 0 connected), else read through cph_dpserver_summary (copies under its lock). No
 * lock is held while the text is built.
 */
char *cph_metrics_render(cph_db_t *db, cph_dpserver_t *dps, size_t *len);

#endif
