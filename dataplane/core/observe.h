/*
 * observe: the per-request metrics recorded when a request ends (docs/dataplane.md "Metrics"): requests by route,
 * method and status class, the request and upstream duration histograms, bytes in and out; and their exposition,
 * with the per-target gauges (breaker, health) and the last snapshot apply's timings.
 */
#ifndef CPH_OBSERVE_H
#define CPH_OBSERVE_H

#include <stddef.h>
#include <stdint.h>
#include "dataplane/core/pipeline.h"
#include "dataplane/core/text.h"

/**
 * Counts r in its worker's stats (r->worker->stats may be NULL in tests: then nothing); now_ns as for the access log
 * (CLOCK_MONOTONIC at the response's end). Worker thread only: relaxed single-writer counters, no lock, no allocation.
 * The total duration runs from h2o's req->timestamps.request_begin_at (a wall-clock timeval, converted with a
 * per-thread offset refreshed once a second) to now_ns; the upstream one is r->upstream_ns, observed when non-zero.
 */
void cph_observe_request_done(cph_req_t *r, uint64_t now_ns);

/** The method class of an HTTP method ("GET" .. "OPTIONS", else OTHER). */
cph_method_class_t cph_observe_method_class(const char *method, size_t len);
/** "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other". */
const char *cph_observe_method_name(cph_method_class_t m);
/** Adds one observation of us microseconds to h (the worker thread that owns h). */
void cph_observe_latency(cph_latency_hist_t *h, uint64_t us);

/**
 * Appends the request families of n workers to t: cephalo_dp_requests_total{route,method,status_class},
 * cephalo_dp_request_duration_seconds{route} and cephalo_dp_upstream_duration_seconds{service} (histograms),
 * cephalo_dp_request_bytes_total / cephalo_dp_response_bytes_total{route} and
 * cephalo_dp_connections_active{protocol}. Any thread (relaxed loads).
 */
void cph_observe_render(cph_text_t *t, cph_worker_stats_t *const *workers, size_t n);
/**
 * Appends cephalo_dp_upstream_target_ejected{service,target} (1 while the breaker is open) and
 * cephalo_dp_upstream_target_healthy{service,target} (0 when active checks mark it unhealthy, else 1) for every
 * target of snap (NULL: the families with no sample). Any thread (the target states are atomics).
 */
void cph_observe_render_targets(cph_text_t *t, const cph_snapshot_t *snap);

/** Records the last snapshot apply (control thread): build = validate + compile, apply = receipt to all swapped. */
void cph_observe_snapshot_applied(uint64_t build_ns, uint64_t apply_ns);
/** Appends cephalo_dp_snapshot_build_seconds and cephalo_dp_snapshot_apply_seconds (0 before the first apply). */
void cph_observe_render_snapshot(cph_text_t *t);

#endif
