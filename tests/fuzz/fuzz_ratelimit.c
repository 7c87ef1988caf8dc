/*
 * fuzz_ratelimit: the rate-limit policy parser - the schema's check of a rate_limits list and of
 * gateway.login_rate_limit (proto/schema_policy.c, through cph_snapshot_validate) and the data plane's compile of the
 * same members (compile/ratelimit.c) - and the GCRA arithmetic (core/ratelimit.c) the compiled numbers feed.
 *
 * Input: byte 0 picks the placement (modulo 4); the rest is
 *   0: a route's policies.rate_limits   1: an endpoint rule's rate_limits   2: gateway.login_rate_limit
 *      (JSON text put into a fixed body), or
 *   3: raw bytes: a limit spec (rate, period, burst within the documented bounds) then request times, for cph_gcra
 *      alone.
 *
 * Properties (a violation traps):
 *   - a body the validator accepts compiles (a limit the control plane stores but every data plane nacks would stall
 *     every rollout), and every refusal has a well-formed error;
 *   - GCRA, for every compiled limit and every fuzzed spec: a refusal leaves the state alone and says to retry after
 *     at least 1 ms; an allowed request has no retry-after; a request made exactly retry_after_ms later is allowed
 *     (Retry-After never lies); the reported remaining never exceeds what a fresh key starts with; at reset_ms after an
 *     allowed request (with nothing in between) the key is whole again.
 */
#include <stdint.h>
#include "fuzz_util.h"
#include "dataplane/compile/compile.h"
#include "dataplane/compile/ratelimit.h"

#define START_MS 1000000000ull

/* ---------------------------------------------------------------- GCRA */

typedef struct st_gcra_t {
    const cph_ratelimit_spec_t *spec;
    uint64_t tat;
    uint64_t full; /* remaining reported by a fresh key's first request */
} gcra_t;

static void gcra_init(gcra_t *g, const cph_ratelimit_spec_t *spec)
{
    uint64_t tat = 0;
    cph_ratelimit_result_t res;

    g->spec = spec, g->tat = 0;
    cph_gcra(spec, START_MS, &tat, &res);
    FUZZ_CHECK(res.allowed);
    g->full = res.remaining;
}

static void gcra_step(gcra_t *g, uint64_t now)
{
    uint64_t before = g->tat, probe;
    cph_ratelimit_result_t res, res2;

    cph_gcra(g->spec, now, &g->tat, &res);
    FUZZ_CHECK(res.remaining <= g->full);
    if (!res.allowed) {
        FUZZ_CHECK(g->tat == before && res.retry_after_ms >= 1 && res.reset_ms >= res.retry_after_ms);
        probe = g->tat;
        cph_gcra(g->spec, now + res.retry_after_ms, &probe, &res2);
        FUZZ_CHECK(res2.allowed); /* Retry-After is honest */
        return;
    }
    FUZZ_CHECK(res.retry_after_ms == 0 && g->tat > before);
    probe = g->tat;
    cph_gcra(g->spec, now + res.reset_ms, &probe, &res2);
    FUZZ_CHECK(res2.allowed && res2.remaining == g->full); /* whole again at reset */
}

/* Requests at times from data: each byte a gap (0 = same ms; 255 = a long pause), at most 64 requests. */
static void gcra_run(const cph_ratelimit_spec_t *spec, const uint8_t *data, size_t size)
{
    gcra_t g;
    uint64_t now = START_MS;

    gcra_init(&g, spec);
    for (size_t i = 0; i != 64; ++i) {
        uint8_t b = i < size ? data[i] : 0;
        now += b == 255 ? spec->period_ms * 3 : b < 128 ? 0 : (uint64_t)(b - 127);
        gcra_step(&g, now);
    }
}

/* A big-endian u32 from the front of *data (the caller checked that 4 bytes are there). */
static uint64_t take_u32(const uint8_t **data, size_t *size)
{
    uint64_t v = (uint64_t)(*data)[0] << 24 | (uint64_t)(*data)[1] << 16 | (uint64_t)(*data)[2] << 8 | (*data)[3];

    *data += 4, *size -= 4;
    return v;
}

static void raw_spec(const uint8_t *data, size_t size)
{
    cph_ratelimit_spec_t spec;
    size_t n = size;

    if (size < 12)
        return;
    spec.rate = 1 + take_u32(&data, &n) % 1000000000u;
    spec.period_ms = (1 + take_u32(&data, &n) % 86400u) * 1000;
    spec.burst = take_u32(&data, &n) % 1000000001u;
    gcra_run(&spec, data, n);
}

/* ---------------------------------------------------------------- policy */

static void policy(int where, const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL), *body;
    cph_snapshot_t snap;
    cph_error_t err;
    int valid;

    if (v == NULL)
        return;
    body = json_pack("{s:[{s:s, s:[{s:s}]}], s:[{s:s, s:s, s:[s], s:{}}]}", "services", "name", "s", "targets", "url",
                     "http://127.0.0.1:9", "routes", "name", "r", "service", "s", "paths", "/r", "policies");
    if (where == 0)
        json_object_set(json_object_get(json_array_get(json_object_get(body, "routes"), 0), "policies"), "rate_limits", v);
    else if (where == 1)
        json_object_set_new(
            body, "endpoints",
            json_pack("[{s:i, s:s, s:s, s:s, s:O}]", "id", 7, "service", "s", "method", "*", "path", "/*", "rate_limits", v));
    else
        json_object_set_new(body, "gateway", json_pack("{s:O}", "login_rate_limit", v));
    memset(&err, 0, sizeof(err));
    valid = cph_snapshot_validate(body, &err) == 0;
    if (!valid) {
        FUZZ_CHECK(fuzz_error_ok(&err));
        goto Exit;
    }
    memset(&snap, 0, sizeof(snap));
    cph_arena_init(&snap.arena);
    FUZZ_CHECK(cph_proxy_compile(&snap, body, &err) == 0 && cph_router_compile(&snap, body, &err) == 0);
    if (cph_ratelimit_compile(&snap, body, &err) != 0) {
        fprintf(stderr, "fuzz: validated but not compiled: %s at %s: %s\n", err.code, err.path, err.msg);
        FUZZ_CHECK(0);
    }
    const cph_rl_set_t *sets[] = {snap.routes[0].rate_limits, snap.ratelimit->num_rules ? snap.ratelimit->rules[0].set : NULL,
                                  cph_rl_login(&snap)};
    for (size_t s = 0; s != 3; ++s)
        for (size_t i = 0; sets[s] != NULL && i != sets[s]->num_limits; ++i)
            gcra_run(&sets[s]->limits[i].spec, data, size < 16 ? size : 16);
    cph_arena_dispose(&snap.arena);
Exit:
    json_decref(body);
    json_decref(v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int where;

    if (size < 1)
        return 0;
    where = data[0] % 4;
    if (where == 3)
        raw_spec(data + 1, size - 1);
    else
        policy(where, data + 1, size - 1);
    return 0;
}
