/*
 * dptraffic: request and error rates of a data plane from its pings (dptraffic.h).
 *
 * A ring of the last samples; the rate is measured from the oldest one still inside the window to the newest, so it
 * covers about ten seconds, moves smoothly, and keeps no more history than the ring.
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

static const cph_dptraffic_sample_t *sample(const cph_dptraffic_t *t, unsigned age) /* 0 = the newest */
{
    return &t->samples[(t->next + CPH_DPTRAFFIC_SAMPLES - 1 - age) % CPH_DPTRAFFIC_SAMPLES];
}

static double per_s(uint64_t now, uint64_t then, uint64_t ms)
{
    return (double)(now - then) * 1000.0 / (double)ms;
}

int cph_dptraffic_on_ping(cph_dptraffic_t *t, const json_t *v, uint64_t now_ms)
{
    cph_dptraffic_sample_t s = {.at_ms = now_ms};
    const cph_dptraffic_sample_t *last, *base = NULL;

    if (v == NULL)
        return 0;
    if (!json_is_object(v) || get_count(v, "requests", &s.requests) != 0 || get_count(v, "4xx", &s.c4xx) != 0 ||
        get_count(v, "5xx", &s.c5xx) != 0 || s.c4xx > s.requests || s.c5xx > s.requests)
        return -1;
    last = t->count != 0 ? sample(t, 0) : NULL;
    if (last != NULL && (s.requests < last->requests || s.c4xx < last->c4xx || s.c5xx < last->c5xx || now_ms < last->at_ms))
        memset(t, 0, sizeof(*t)); /* the data plane restarted: its counters began again */
    t->samples[t->next] = s;
    t->next = (t->next + 1) % CPH_DPTRAFFIC_SAMPLES;
    if (t->count < CPH_DPTRAFFIC_SAMPLES)
        ++t->count;
    for (unsigned age = t->count - 1; age != 0 && base == NULL; --age)
        if (now_ms - sample(t, age)->at_ms <= CPH_DPTRAFFIC_WINDOW_MS)
            base = sample(t, age);
    if (base == NULL || now_ms - base->at_ms < 1000) { /* one sample, or all within a second: no rate yet */
        t->requests_per_s = t->c4xx_per_s = t->c5xx_per_s = 0;
        return 0;
    }
    t->requests_per_s = per_s(s.requests, base->requests, now_ms - base->at_ms);
    t->c4xx_per_s = per_s(s.c4xx, base->c4xx, now_ms - base->at_ms);
    t->c5xx_per_s = per_s(s.c5xx, base->c5xx, now_ms - base->at_ms);
    return 0;
}

json_t *cph_dptraffic_json(const cph_dptraffic_t *t)
{
    const cph_dptraffic_sample_t *s;

    if (t->count == 0)
        return json_null();
    s = sample(t, 0);
    return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f}", "requests_total", (json_int_t)s->requests, "4xx_total", (json_int_t)s->c4xx,
                     "5xx_total", (json_int_t)s->c5xx, "requests_per_s", t->requests_per_s, "4xx_per_s", t->c4xx_per_s, "5xx_per_s",
                     t->c5xx_per_s);
}
