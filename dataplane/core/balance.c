/*
 * balance: target choice, passive outlier detection (the per-target breaker), service admission and retry budget
 * (core/balance.h; docs "Upstream resilience").
 *
 * Picking: a target is a candidate unless its bit is set in the request's `tried` bitmap, it is unhealthy by active
 * check (only while the service has a health_check), its breaker is open, or it is half-open with its one probe
 * taken. The policy chooses among the candidates: smooth weighted round robin (nginx's algorithm, per worker),
 * least in-flight per weight (shared atomics, ties broken round robin), power of two weighted random choices, or
 * the service's Maglev table (compile/proxy.c) walked slot by slot past unusable targets, so a key whose target is
 * down always lands on the same substitute. A half-open target is claimed with a CAS on `probing`; losing that race
 * just means choosing again.
 *
 * Breaker: `ejected_until_ns` 0 = closed, now < it = open, else half-open. consecutive_failures failures in a row
 * (a success resets the count) eject the target for base_ejection_ms x ejections, capped at max_ejection_ms, unless
 * that would put more than max_ejection_percent of the service's targets out (counted at ejection time; two workers
 * ejecting at the same instant may overshoot by one). A failed probe ejects again, one step longer; a successful one
 * closes. The multiplier decays by one per clean base_ejection_ms period spent closed since `closed_at_ns`, applied
 * at the next ejection.
 *
 * Per-worker state (round-robin positions, smooth-WRR current weights) is keyed by the service's metric id and reset
 * when the target count or weights change. Its arrays are allocated the first time a worker sees a service or a
 * longer target list, never in the steady state; nothing else allocates and nothing locks.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <openssl/rand.h>
#include "proto/log.h"
#include "dataplane/core/balance.h"
#include "dataplane/core/siphash.h"
#include "dataplane/core/stats.h"

#define MODULE "dp/core/balance"
#define NS_PER_MS 1000000ull

typedef struct st_svc_entry_t {
    uint32_t metric_id;
    uint32_t num_targets;
    uint64_t signature; /* of the weights: a change resets the current weights */
    uint32_t rr;        /* least_conn tie-break position */
    size_t capacity;
    int64_t *current; /* smooth WRR current weight per target */
} svc_entry_t;

struct st_cph_balance_worker_t {
    uint64_t rng; /* xorshift64* state, never 0 */
    svc_entry_t *entries[CPH_STATS_MAX_SERVICES];
};

/* ---------------------------------------------------------------- per-worker state */

cph_balance_worker_t *cph_balance_worker_new(void)
{
    cph_balance_worker_t *bw = calloc(1, sizeof(*bw));
    if (bw == NULL)
        cph_fatal(MODULE, "out of memory");
    if (RAND_bytes((unsigned char *)&bw->rng, sizeof(bw->rng)) != 1)
        cph_fatal(MODULE, "RAND_bytes failed");
    bw->rng |= 1;
    return bw;
}

void cph_balance_worker_free(cph_balance_worker_t *bw)
{
    if (bw == NULL)
        return;
    for (size_t i = 0; i != CPH_STATS_MAX_SERVICES; ++i) {
        if (bw->entries[i] != NULL)
            free(bw->entries[i]->current);
        free(bw->entries[i]);
    }
    free(bw);
}

void cph_balance_worker_seed(cph_balance_worker_t *bw, uint64_t seed)
{
    bw->rng = seed != 0 ? seed : 1;
}

static uint64_t next_random(cph_balance_worker_t *bw)
{
    bw->rng ^= bw->rng >> 12, bw->rng ^= bw->rng << 25, bw->rng ^= bw->rng >> 27;
    return bw->rng * 0x2545f4914f6cdd1dull;
}

uint64_t cph_balance_weights_signature(const cph_service_t *svc)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i != svc->num_targets; ++i)
        h = (h ^ svc->targets[i].weight) * 0x100000001b3ull;
    return h;
}

/* The worker's entry for svc, reset when the service's shape changed since the last pick. */
static svc_entry_t *entry_of(cph_balance_worker_t *bw, const cph_service_t *svc)
{
    uint32_t id = svc->metric_id < CPH_STATS_MAX_SERVICES ? svc->metric_id : 0;
    svc_entry_t *e = bw->entries[id];
    uint64_t sig = svc->weights_signature;

    if (e == NULL && (e = bw->entries[id] = calloc(1, sizeof(*e))) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (e->current != NULL && e->metric_id == svc->metric_id && e->num_targets == svc->num_targets && e->signature == sig)
        return e;
    if (e->capacity < svc->num_targets) {
        free(e->current);
        e->capacity = svc->num_targets < 8 ? 8 : svc->num_targets;
        if ((e->current = malloc(sizeof(*e->current) * e->capacity)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    memset(e->current, 0, sizeof(*e->current) * e->capacity);
    e->metric_id = svc->metric_id;
    e->num_targets = (uint32_t)svc->num_targets;
    e->signature = sig;
    e->rr = 0;
    return e;
}

/* ---------------------------------------------------------------- candidates */

static int detection_on(const cph_service_t *svc)
{
    return svc->outlier_consecutive_failures != 0;
}

static int breaker_of(const cph_target_state_t *st, uint64_t now_ns)
{
    uint64_t until = atomic_load_explicit(&st->ejected_until_ns, memory_order_acquire);
    return until == 0 ? CPH_BREAKER_CLOSED : now_ns < until ? CPH_BREAKER_OPEN : CPH_BREAKER_HALF_OPEN;
}

int cph_balance_breaker_state(const cph_target_state_t *st, uint64_t now_ns)
{
    return breaker_of(st, now_ns);
}

/* 1 when target i may be chosen now (a half-open one only while its probe is free). */
static int usable(const cph_service_t *svc, size_t i, const uint64_t *tried, uint64_t now_ns)
{
    const cph_target_state_t *st = svc->targets[i].state;

    if (tried != NULL && (tried[i / 64] >> (i % 64) & 1) != 0)
        return 0;
    if (svc->health_check != NULL && atomic_load_explicit(&st->health, memory_order_relaxed) == CPH_HEALTH_UNHEALTHY)
        return 0;
    if (!detection_on(svc))
        return 1;
    switch (breaker_of(st, now_ns)) {
    case CPH_BREAKER_CLOSED:
        return 1;
    case CPH_BREAKER_HALF_OPEN:
        return atomic_load_explicit(&st->probing, memory_order_relaxed) == 0;
    default:
        return 0;
    }
}

/* Takes target i for the request: 0 (with *probe set when it is the half-open target's probe) or -1 (lost a race). */
static int claim(const cph_service_t *svc, size_t i, uint64_t now_ns, int *probe)
{
    cph_target_state_t *st = svc->targets[i].state;
    int expected = 0;

    *probe = 0;
    if (!detection_on(svc))
        return 0;
    switch (breaker_of(st, now_ns)) {
    case CPH_BREAKER_CLOSED:
        return 0;
    case CPH_BREAKER_HALF_OPEN:
        if (!atomic_compare_exchange_strong_explicit(&st->probing, &expected, 1, memory_order_acq_rel, memory_order_relaxed))
            return -1;
        *probe = 1;
        return 0;
    default:
        return -1;
    }
}

/* ---------------------------------------------------------------- policies */

/* Smooth weighted round robin (nginx): every candidate gains its weight, the largest wins and pays the total. */
static ssize_t pick_swrr(cph_balance_worker_t *bw, const cph_service_t *svc, const uint64_t *tried, uint64_t now_ns)
{
    svc_entry_t *e = entry_of(bw, svc);
    int64_t total = 0;
    ssize_t best = -1;

    for (size_t i = 0; i != svc->num_targets; ++i) {
        if (!usable(svc, i, tried, now_ns))
            continue;
        e->current[i] += svc->targets[i].weight;
        total += svc->targets[i].weight;
        if (best < 0 || e->current[i] > e->current[best])
            best = (ssize_t)i;
    }
    if (best >= 0)
        e->current[best] -= total;
    return best;
}

/* 1 when a has fewer requests in flight per weight than b. */
static int lighter(const cph_target_t *a, const cph_target_t *b)
{
    uint64_t aa = atomic_load_explicit(&a->state->active, memory_order_relaxed);
    uint64_t ba = atomic_load_explicit(&b->state->active, memory_order_relaxed);
    return aa * b->weight < ba * a->weight;
}

/* Fewest in flight per weight; the scan starts one further each time, so equals take turns. */
static ssize_t pick_least(cph_balance_worker_t *bw, const cph_service_t *svc, const uint64_t *tried, uint64_t now_ns)
{
    svc_entry_t *e = entry_of(bw, svc);
    size_t n = svc->num_targets, start = e->rr++ % n;
    ssize_t best = -1;

    for (size_t k = 0; k != n; ++k) {
        size_t i = (start + k) % n;
        if (usable(svc, i, tried, now_ns) && (best < 0 || lighter(&svc->targets[i], &svc->targets[best])))
            best = (ssize_t)i;
    }
    return best;
}

/* One candidate at random by weight, `excluded` left out (-1: none); total is the candidates' weight sum. */
static ssize_t weighted_draw(cph_balance_worker_t *bw, const cph_service_t *svc, const uint64_t *tried, uint64_t now_ns,
                             uint64_t total, ssize_t excluded)
{
    ssize_t last = -1;
    uint64_t r;

    if (excluded >= 0)
        total -= svc->targets[excluded].weight;
    if (total == 0)
        return -1;
    r = next_random(bw) % total;
    for (size_t i = 0; i != svc->num_targets; ++i) {
        if ((ssize_t)i == excluded || !usable(svc, i, tried, now_ns))
            continue;
        if (r < svc->targets[i].weight)
            return (ssize_t)i;
        r -= svc->targets[i].weight;
        last = (ssize_t)i;
    }
    return last; /* a candidate went out since the sum was taken (another worker's ejection) */
}

/* Power of two choices: two distinct weighted draws, the one with fewer in flight per weight wins (first on a tie). */
static ssize_t pick_p2c(cph_balance_worker_t *bw, const cph_service_t *svc, const uint64_t *tried, uint64_t now_ns)
{
    uint64_t total = 0;
    ssize_t a, b;

    for (size_t i = 0; i != svc->num_targets; ++i)
        if (usable(svc, i, tried, now_ns))
            total += svc->targets[i].weight;
    if ((a = weighted_draw(bw, svc, tried, now_ns, total, -1)) < 0)
        return -1;
    if ((b = weighted_draw(bw, svc, tried, now_ns, total, a)) < 0)
        return a;
    return lighter(&svc->targets[b], &svc->targets[a]) ? b : a;
}

/* The key's Maglev slot, then the following slots until one names a usable target. */
static ssize_t pick_hash(const cph_service_t *svc, uint64_t hash, const uint64_t *tried, uint64_t now_ns)
{
    size_t m = svc->maglev_size, slot;
    int any = 0;

    if (svc->maglev == NULL || m == 0)
        return -1;
    for (size_t i = 0; i != svc->num_targets && !any; ++i)
        any = usable(svc, i, tried, now_ns);
    if (!any)
        return -1;
    slot = (size_t)(hash % m);
    for (size_t k = 0; k != m; ++k, slot = slot + 1 == m ? 0 : slot + 1) {
        uint32_t i = svc->maglev[slot];
        if (i < svc->num_targets && usable(svc, i, tried, now_ns))
            return (ssize_t)i;
    }
    return -1;
}

static ssize_t choose(cph_balance_worker_t *bw, const cph_service_t *svc, uint64_t hash, const uint64_t *tried, uint64_t now_ns)
{
    if (svc->num_targets == 1) /* every policy picks the one target when it is usable */
        return usable(svc, 0, tried, now_ns) ? 0 : -1;
    switch (svc->lb) {
    case CPH_LB_LEAST_CONN:
        return pick_least(bw, svc, tried, now_ns);
    case CPH_LB_RANDOM:
        return pick_p2c(bw, svc, tried, now_ns);
    case CPH_LB_CONSISTENT_HASH:
        return pick_hash(svc, hash, tried, now_ns);
    default:
        return pick_swrr(bw, svc, tried, now_ns);
    }
}

int cph_balance_pick(cph_balance_worker_t *bw, const cph_service_t *svc, uint64_t hash, const uint64_t *tried, uint64_t now_ns,
                     cph_pick_t *out)
{
    /* each lost probe race leaves that target's probe taken, so it is not chosen again: at most n + 1 rounds */
    for (size_t round = 0; svc->num_targets != 0 && round <= svc->num_targets; ++round) {
        ssize_t i = choose(bw, svc, hash, tried, now_ns);
        int probe;
        if (i < 0)
            return -1;
        if (claim(svc, (size_t)i, now_ns, &probe) == 0) {
            atomic_fetch_add_explicit(&svc->targets[i].state->active, 1, memory_order_relaxed);
            out->target = &svc->targets[i];
            out->probe = probe;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- consistent-hash key */

/*
 * SipHash-1-3 (core/siphash.h) under a fixed key, unlike the rate-limit table's random one: every data plane (and
 * every restart) must send a given key to the same target, and a chosen key can only steer its own requests, so there
 * is nothing to randomise against.
 */
static const uint64_t SIP_K0 = 0x63657068616c6f21ull, SIP_K1 = 0x6d61676c65762d31ull;

uint64_t cph_balance_hash(const void *key, size_t len)
{
    return cph_siphash13(SIP_K0, SIP_K1, NULL, key, len);
}

/* ---------------------------------------------------------------- outcomes and the breaker */

/* Ejections by service metric id, for cephalo_upstream_ejections_total: process-wide, so removing a target never
 * makes the counter go down. */
static cph_counter_t ejections_by_service[CPH_STATS_MAX_SERVICES];

static void count_ejection(const cph_service_t *svc, cph_target_state_t *st)
{
    atomic_fetch_add_explicit(&st->ejections_total, 1, memory_order_relaxed);
    cph_counter_add(&ejections_by_service[svc->metric_id < CPH_STATS_MAX_SERVICES ? svc->metric_id : 0], 1);
}

uint64_t cph_balance_ejections(uint32_t service_metric_id)
{
    return service_metric_id < CPH_STATS_MAX_SERVICES ? cph_counter_read(&ejections_by_service[service_metric_id]) : 0;
}

static uint64_t ejection_ns(const cph_service_t *svc, uint32_t ejections)
{
    uint64_t ms = svc->outlier_base_ejection_ms * ejections;
    if (ms > svc->outlier_max_ejection_ms || ms / ejections != svc->outlier_base_ejection_ms)
        ms = svc->outlier_max_ejection_ms;
    return ms * NS_PER_MS;
}

/* 1 when one more ejected target would put the service past max_ejection_percent. */
static int share_exceeded(const cph_service_t *svc)
{
    uint64_t out = 1;
    for (size_t i = 0; i != svc->num_targets; ++i)
        out += atomic_load_explicit(&svc->targets[i].state->ejected_until_ns, memory_order_relaxed) != 0;
    return out * 100 > (uint64_t)svc->outlier_max_ejection_percent * svc->num_targets;
}

/* The ejection multiplier after the clean time since the last close (one step per base period). */
static uint32_t decayed_ejections(const cph_service_t *svc, cph_target_state_t *st, uint64_t now_ns)
{
    uint32_t ejections = atomic_load_explicit(&st->ejections, memory_order_relaxed);
    uint64_t closed_at = atomic_load_explicit(&st->closed_at_ns, memory_order_relaxed), periods;

    if (closed_at == 0 || ejections == 0 || svc->outlier_base_ejection_ms == 0)
        return ejections;
    periods = now_ns > closed_at ? (now_ns - closed_at) / (svc->outlier_base_ejection_ms * NS_PER_MS) : 0;
    return periods >= ejections ? 0 : ejections - (uint32_t)periods;
}

/* CLOSED -> OPEN after the consecutive failures, unless the share is exceeded or another worker did it first. */
static void eject(const cph_service_t *svc, cph_target_state_t *st, uint64_t now_ns)
{
    uint64_t expected = 0;
    uint32_t ejections;

    if (share_exceeded(svc))
        return;
    ejections = decayed_ejections(svc, st, now_ns) + 1;
    if (!atomic_compare_exchange_strong_explicit(&st->ejected_until_ns, &expected, now_ns + ejection_ns(svc, ejections),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    atomic_store_explicit(&st->ejections, ejections, memory_order_relaxed);
    atomic_store_explicit(&st->probing, 0, memory_order_release);
    atomic_store_explicit(&st->consecutive_failures, 0, memory_order_relaxed);
    count_ejection(svc, st);
    cph_target_state_changed();
}

/* The probe's verdict: HALF_OPEN -> CLOSED on success, -> OPEN for one step longer on failure. */
static void judge_probe(const cph_service_t *svc, cph_target_state_t *st, int failed, uint64_t now_ns)
{
    if (failed) {
        uint32_t ejections = atomic_load_explicit(&st->ejections, memory_order_relaxed) + 1;
        atomic_store_explicit(&st->ejections, ejections, memory_order_relaxed);
        atomic_store_explicit(&st->ejected_until_ns, now_ns + ejection_ns(svc, ejections), memory_order_release);
        count_ejection(svc, st);
        atomic_store_explicit(&st->probing, 0, memory_order_release);
    } else {
        atomic_store_explicit(&st->consecutive_failures, 0, memory_order_relaxed);
        atomic_store_explicit(&st->ejected_until_ns, 0, memory_order_release);
        atomic_store_explicit(&st->closed_at_ns, now_ns, memory_order_relaxed);
        atomic_store_explicit(&st->probing, 0, memory_order_release);
    }
    cph_target_state_changed();
}

void cph_balance_end(const cph_service_t *svc, const cph_pick_t *pick, cph_outcome_t outcome, uint64_t now_ns)
{
    cph_target_state_t *st = pick->target->state;
    int failed = outcome != CPH_OUTCOME_SUCCESS;
    uint64_t until;

    atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
    if (outcome == CPH_OUTCOME_ABANDONED) {
        if (pick->probe)
            atomic_store_explicit(&st->probing, 0, memory_order_release); /* no verdict: the next request probes */
        return;
    }
    if (!detection_on(svc)) {
        /* detection was switched off while the target was out: it is simply closed again */
        until = atomic_load_explicit(&st->ejected_until_ns, memory_order_relaxed);
        if (until != 0 && atomic_compare_exchange_strong(&st->ejected_until_ns, &until, 0))
            cph_target_state_changed();
        return;
    }
    if (pick->probe) {
        judge_probe(svc, st, failed, now_ns);
    } else if (breaker_of(st, now_ns) != CPH_BREAKER_CLOSED) {
        return; /* began before the ejection: already judged */
    } else if (!failed) {
        if (atomic_load_explicit(&st->consecutive_failures, memory_order_relaxed) != 0)
            atomic_store_explicit(&st->consecutive_failures, 0, memory_order_relaxed);
    } else if (atomic_fetch_add_explicit(&st->consecutive_failures, 1, memory_order_relaxed) + 1 >=
               svc->outlier_consecutive_failures) {
        eject(svc, st, now_ns);
    }
}

/* ---------------------------------------------------------------- admission and retry budget */

/* Takes one unit of *counter while it stays <= max: 0, or -1 with nothing taken. */
static int take(_Atomic uint32_t *counter, uint32_t max)
{
    uint32_t cur = atomic_load_explicit(counter, memory_order_relaxed);

    do {
        if (cur >= max)
            return -1;
    } while (!atomic_compare_exchange_weak_explicit(counter, &cur, cur + 1, memory_order_relaxed, memory_order_relaxed));
    return 0;
}

int cph_balance_admit(const cph_service_t *svc)
{
    return take(&svc->state->active_requests, svc->max_requests);
}

void cph_balance_release(const cph_service_t *svc)
{
    atomic_fetch_sub_explicit(&svc->state->active_requests, 1, memory_order_relaxed);
}

int cph_balance_connect_begin(const cph_service_t *svc)
{
    return take(&svc->state->pending_connects, svc->max_pending);
}

void cph_balance_connect_end(const cph_service_t *svc)
{
    atomic_fetch_sub_explicit(&svc->state->pending_connects, 1, memory_order_relaxed);
}

int cph_balance_retry_begin(const cph_service_t *svc, uint32_t budget_percent, uint32_t min_concurrent)
{
    uint64_t active = atomic_load_explicit(&svc->state->active_requests, memory_order_relaxed);
    uint64_t allowed = active * budget_percent / 100;

    if (allowed < min_concurrent)
        allowed = min_concurrent;
    return take(&svc->state->active_retries, allowed > UINT32_MAX ? UINT32_MAX : (uint32_t)allowed);
}

void cph_balance_retry_end(const cph_service_t *svc)
{
    atomic_fetch_sub_explicit(&svc->state->active_retries, 1, memory_order_relaxed);
}
