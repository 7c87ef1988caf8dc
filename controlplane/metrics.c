/*
 * metrics: the control plane's GET /metrics body in the Prometheus text format 0.0.4.
 *
 * The control plane keeps few numbers of its own, so the body is built on each scrape from the sources that already
 * hold them: the current snapshot's version (db.c), the data planes connected now (dpserver.c) and the integrations'
 * table (integrations.c). No label value comes from a user: every label here is one of our own fixed names, so
 * nothing needs escaping. Admin authentication is api.c's, as for every /api/ path - a scrape configuration holds the
 * admin token as a bearer credential.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/integrations.h"
#include "controlplane/metrics.h"
#include "proto/log.h"

#define MODULE "cp/metrics"

void cph_metrics_printf(cph_metrics_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->buf != NULL ? b->buf + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            cph_fatal(MODULE, "vsnprintf failed");
        if (b->buf != NULL && (size_t)n < b->cap - b->len)
            break;
        b->cap = (b->cap + (size_t)n + 1) * 2;
        if ((b->buf = realloc(b->buf, b->cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    b->len += (size_t)n;
}

void cph_metrics_family(cph_metrics_buf_t *b, const char *name, const char *type, const char *help)
{
    cph_metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *cph_metrics_render(cph_db_t *db, cph_dpserver_t *dps, size_t *len)
{
    cph_metrics_buf_t b = {0};
    json_t *snap = cph_db_current_snapshot(db, 0);

    cph_metrics_family(&b, "cephalo_cp_snapshot_version", "gauge", "The current configuration version (0 before the first).");
    cph_metrics_printf(&b, "cephalo_cp_snapshot_version %lld\n",
                       snap != NULL ? (long long)json_integer_value(json_object_get(snap, "version")) : 0LL);
    json_decref(snap);
    cph_metrics_family(&b, "cephalo_cp_dataplanes_connected", "gauge", "Data planes connected to the socket now.");
    cph_metrics_printf(&b, "cephalo_cp_dataplanes_connected %zu\n", dps != NULL ? cph_dpserver_num_connected(dps) : (size_t)0);
    cph_integrations_metrics(&b);
    *len = b.len;
    return b.buf;
}
