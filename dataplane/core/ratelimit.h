/*
 * ratelimit: the data plane's rate-limit state and the one GCRA decision both backends make.
 *
 * GCRA (the generic cell rate algorithm): a limit of `rate` requests per `period_s` with `burst` has emission
 * interval T = period/rate and tolerance tau = burst * T; a key stores its theoretical arrival time (TAT). A request
 * at `now` is allowed when TAT - tau <= now (then TAT = max(TAT, now) + T), else refused with retry-after
 * TAT - tau - now. One stored number per key, exact under any interleaving when updated atomically.
 *
 * Local state lives in a process-wide table (shared by the workers, sharded with a lock per shard), keyed by the
 * limit's stable id and the request's key value, so it survives snapshot swaps; idle keys are evicted.
 *
 * Units: requests are decided at millisecond times, but the arithmetic is integer nanoseconds, so that a rate of up
 * to 10^9 per second still has an emission interval of at least 1 ns: T = round(period_ns / rate) (exact whenever
 * rate divides period_ns, e.g. 10 per second), tau = burst * T saturated at 2^62 ns (about 146 years). No step
 * overflows for rate <= 10^9, burst <= 10^9, period <= 86400 s and now_ms below 2^62 / 10^6 (the year 2116 on the
 * wall clock; the local table uses a monotonic clock).
 *
 * Because requests are timed to the millisecond, a limit whose T is under 1 ms gets a tolerance of at least
 * 1 ms - T: the 1 ms / T requests its rate allows within one millisecond all pass at the same now_ms (else a rate
 * of 10^6 per second with burst 0 would let one request through per millisecond).
 */
#ifndef CPH_RATELIMIT_H
#define CPH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/** A compiled limit (compile/ratelimit.c). */
typedef struct st_cph_ratelimit_spec_t {
    uint64_t rate;
    uint64_t period_ms;
    uint64_t burst;
} cph_ratelimit_spec_t;

/** A decision: allowed or not, what is left, when to retry and when the limit is whole again (ms). */
typedef struct st_cph_ratelimit_result_t {
    int allowed;
    uint64_t remaining;
    uint64_t retry_after_ms; /* 0 when allowed */
    uint64_t reset_ms;       /* until the bucket is full again */
} cph_ratelimit_result_t;

/**
 * The pure GCRA step: given the stored TAT (in ns on the clock of now_ms; 0 = new key) at now_ms, decides for one
 * request and returns the new TAT in *tat (unchanged when refused). remaining is how many more requests would pass
 * right now; retry_after_ms and reset_ms are rounded up to whole ms. Used by the local table and mirrored by the
 * Redis script. A spec with rate or period 0 is read as 1.
 */
void cph_gcra(const cph_ratelimit_spec_t *spec, uint64_t now_ms, uint64_t *tat, cph_ratelimit_result_t *res);

/**
 * Decides one request for (limit_id, key) in the local table at now_ms (a stack of one). Thread-safe; never blocks
 * beyond one shard lock held for a few instructions.
 */
void cph_ratelimit_local(uint64_t limit_id, const char *key, size_t key_len, const cph_ratelimit_spec_t *spec, uint64_t now_ms,
                         cph_ratelimit_result_t *res);

#define CPH_RATELIMIT_MAX_STACK 16

/** One limit of a stack decided by cph_ratelimit_local_stack: the caller fills the first four members. */
typedef struct st_cph_ratelimit_item_t {
    uint64_t limit_id;
    const char *key; /* any bytes; read during the call only */
    size_t key_len;
    const cph_ratelimit_spec_t *spec;
    cph_ratelimit_result_t res; /* out: the decision of this limit (meaningless after the refusing one) */
} cph_ratelimit_item_t;

/**
 * Decides a stack of n (<= CPH_RATELIMIT_MAX_STACK, else fatal) local limits for one request at now_ms, all or
 * nothing: returns n when every limit allows (each res filled; with charge, every limit is charged one request), else
 * the index of the first refusing limit (its res says when to retry) and no limit of the stack is charged. charge 0 is
 * a dry run (nothing stored: what the decision would be now). Thread-safe: the shard locks of the stack are held
 * together (taken in ascending order) for the few instructions of the decision, so concurrent stacks never see each
 * other half-charged and no refund is ever needed.
 */
size_t cph_ratelimit_local_stack(cph_ratelimit_item_t *items, size_t n, uint64_t now_ms, int charge);

/**
 * The stable table id of a limit: a 64-bit hash of its scope (the route name, "endpoint:<rule id>" or "/auth") and
 * its name. The same limit in the next snapshot gets the same id, so its keys keep their state.
 */
uint64_t cph_ratelimit_limit_id(const char *scope, const char *name);

/** The local table's clock: milliseconds of CLOCK_MONOTONIC (never jumps with the wall clock). */
uint64_t cph_ratelimit_now_ms(void);

/**
 * Empties the local table and bounds it to about max_keys keys (0 = the default, CPH_RATELIMIT_MAX_KEYS). When a
 * shard is full, keys whose TAT has passed are dropped first (they are back to a full bucket: forgetting them changes
 * nothing), then the key closest to a full bucket on the new key's probe path. Not thread-safe against concurrent
 * cph_ratelimit_local calls: boot and tests only.
 */
void cph_ratelimit_local_reset(size_t max_keys);

/** The number of keys the local table holds (tests, diagnostics). Takes every shard lock in turn. */
size_t cph_ratelimit_local_count(void);

#define CPH_RATELIMIT_MAX_KEYS (1u << 20)

#endif
