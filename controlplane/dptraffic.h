/*
 * dptraffic: a data plane's request and error rates, from the cumulative counters its pings carry ("traffic":
 * {"requests", "4xx", "5xx"}, proto/PROTOCOL.md), for GET /api/v1/dataplanes and the admin page's dashboard. No
 * scraping: the control plane does not know the data planes' status listeners, but it hears from each every second.
 */
#ifndef CPH_DPTRAFFIC_H
#define CPH_DPTRAFFIC_H

#include <stdint.h>
#include <jansson.h>

#define CPH_DPTRAFFIC_WINDOW_MS 10000 /* rates are over the samples of about this long */
#define CPH_DPTRAFFIC_SAMPLES 16      /* kept per data plane: a ping a second fills the window */

typedef struct st_cph_dptraffic_sample_t {
    uint64_t requests, c4xx, c5xx; /* cumulative since the data plane started */
    uint64_t at_ms;                /* when it arrived (monotonic) */
} cph_dptraffic_sample_t;

/** One session's counters: zeroed = nothing heard yet. */
typedef struct st_cph_dptraffic_t {
    cph_dptraffic_sample_t samples[CPH_DPTRAFFIC_SAMPLES]; /* a ring, the newest at (next - 1) */
    unsigned next, count;
    double requests_per_s, c4xx_per_s, c5xx_per_s;
} cph_dptraffic_t;

/**
 * Takes a ping's "traffic" member (may be NULL: an older data plane, nothing changes). Untrusted: anything but an
 * object of non-negative integers with 4xx and 5xx not above requests is ignored (returns -1); counters going
 * backwards (the data plane restarted) start anew. The rates are the growth from the oldest sample still within
 * CPH_DPTRAFFIC_WINDOW_MS to the newest, once they are a second apart: after a burst they decay over the window.
 */
int cph_dptraffic_on_ping(cph_dptraffic_t *t, const json_t *v, uint64_t now_ms);
/** {"requests_total","4xx_total","5xx_total","requests_per_s","4xx_per_s","5xx_per_s"}, or null when nothing arrived. */
json_t *cph_dptraffic_json(const cph_dptraffic_t *t);

#endif
