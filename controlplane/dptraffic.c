/*
 * dptraffic: request and error rates of a data plane from its pings (dptraffic.h).
 *
 * The rates are the counters' growth between a base sample and the newest one, the base moving forward once it is
 * CPH_DPTRAFFIC_WINDOW_MS old: a rate over about ten seconds, steady enough to read on a dashboard, without keeping
 * a history. Until the first window has passed, the rate is over what there is (at least one second).
 */
#include <string.h>
#include "controlplane/dptraffic.h"

static int get_count(const json_t *v, const char *key, uint64_t *out)
{
    const json_t *n = json_object_get(v, key);

    if (!json_is_integer(n) || json_integer_value(n) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(n);
    return 0;
}

static double per_s(uint64_t now, uint64_t base, uint64_t ms)
{
    return now >= base && ms != 0 ? (double)(now - base) * 1000.0 / (double)ms : 0.0;
}

int cph_dptraffic_on_ping(cph_dptraffic_t *t, const json_t *v, uint64_t now_ms)
{
    uint64_t req, c4, c5, ms;

    if (v == NULL)
        return 0;
    if (!json_is_object(v) || get_count(v, "requests", &req) != 0 || get_count(v, "4xx", &c4) != 0 ||
        get_count(v, "5xx", &c5) != 0 || c4 > req || c5 > req)
        return -1;
    if (!t->have || req < t->requests || c4 < t->c4xx || c5 < t->c5xx) { /* the first sample, or a restart */
        memset(t, 0, sizeof(*t));
        t->have = 1;
        t->base_requests = req, t->base_4xx = c4, t->base_5xx = c5, t->base_at_ms = now_ms;
    }
    t->requests = req, t->c4xx = c4, t->c5xx = c5, t->at_ms = now_ms;
    if ((ms = now_ms - t->base_at_ms) >= 1000) {
        t->requests_per_s = per_s(req, t->base_requests, ms);
        t->c4xx_per_s = per_s(c4, t->base_4xx, ms);
        t->c5xx_per_s = per_s(c5, t->base_5xx, ms);
    }
    if (ms >= CPH_DPTRAFFIC_WINDOW_MS) {
        t->base_requests = req, t->base_4xx = c4, t->base_5xx = c5, t->base_at_ms = now_ms;
    }
    return 0;
}

json_t *cph_dptraffic_json(const cph_dptraffic_t *t)
{
    if (!t->have)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f}", "requests_total", (json_int_t)t->requests, "4xx_total",
                     (json_int_t)t->c4xx, "5xx_total", (json_int_t)t->c5xx, "requests_per_s", t->requests_per_s, "4xx_per_s",
                     t->c4xx_per_s, "5xx_per_s", t->c5xx_per_s);
}
