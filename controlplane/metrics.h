/*
 * metrics: the control plane's GET /metrics (Prometheus text exposition format 0.0.4), behind the admin bearer token
 * (api.c routes it). The families: cephalo_cp_snapshot_version, cephalo_cp_dataplanes_connected, and the integrations'
 * (integrations.c: cephalo_cp_integration_up, _errors_total, _syncs_total, cephalo_cp_vault_token_expiry_seconds).
 */
#ifndef CPH_METRICS_H
#define CPH_METRICS_H

#include <stddef.h>
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
 * The whole GET /metrics body: a new NUL-terminated string (free() it) of *len bytes. db is read through
 * cph_db_current_snapshot (takes its lock); dps may be NULL (no data planes: 0 connected).
 */
char *cph_metrics_render(cph_db_t *db, cph_dpserver_t *dps, size_t *len);

#endif
