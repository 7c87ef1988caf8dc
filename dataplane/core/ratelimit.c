/*
 * ratelimit: the GCRA decision (core/ratelimit.h) and the process-wide table behind `backend: local` limits.
 *
 * The table is 64 shards, each an open-addressing (linear probing) hash table under its own mutex, so two workers
 * contend only when their keys land in the same shard, and then for a few dozen instructions. A slot holds the
 * limit's stable id, the key (inline up to KEY_INLINE bytes, else its SHA-256) and the TAT. The hash is SipHash-1-3
 * with a per-process random key: clients choose key values (header:<name> limits, X-Forwarded-For), and must not be
 * able to build long probe chains.
 *
 * Memory is bounded: a shard grows by doubling up to its cap; a full shard first drops every key whose TAT has passed
 * (a full bucket again: forgetting it changes nothing), at most every SWEEP_NS, and otherwise the new key takes the
 * slot of the key with the smallest TAT among the first PROBE_VICTIMS slots of its probe path. Replacing a slot on the
 * new key's own probe path keeps every other key reachable, so slots are never deleted and no tombstones are needed.
 *
 * A stack of limits (a route's rate_limits) is decided all-or-nothing by cph_ratelimit_local_stack: the shards of its
 * keys are locked together (ascending order, so never a deadlock), every limit is decided, and only when all allow are
 * they charged. No refund is ever needed, so a request refused by its 3rd limit has spent nothing in the first two.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include "proto/log.h"
#include "dataplane/core/ratelimit.h"
#include "dataplane/core/siphash.h"
#include "dataplane/core/sha256.h"

#define MODULE "dp/core/ratelimit"

#define NS_PER_MS UINT64_C(1000000)
#define TAU_CAP (UINT64_C(1) << 62)
#define NOW_CAP (TAU_CAP / NS_PER_MS)
#define NUM_SHARDS 64
_Static_assert(NUM_SHARDS <= 64, "a stack's locked shards are a 64-bit mask");
#define SHARD_SHIFT 58 /* the hash's top 6 bits pick the shard */
#define MIN_CAP 16
#define KEY_INLINE 36
#define PROBE_VICTIMS 16
#define SWEEP_NS (100 * NS_PER_MS)

/* ---------------------------------------------------------------- GCRA */

static uint64_t ceil_ms(uint64_t ns)
{
    return ns / NS_PER_MS + (ns % NS_PER_MS != 0);
}

void cph_gcra(const cph_ratelimit_spec_t *spec, uint64_t now_ms, uint64_t *tat, cph_ratelimit_result_t *res)
{
    uint64_t rate = spec->rate != 0 ? spec->rate : 1, period_ms = spec->period_ms != 0 ? spec->period_ms : 1;
    uint64_t period_ns = period_ms < NOW_CAP ? period_ms * NS_PER_MS : TAU_CAP;
    uint64_t t = (period_ns + rate / 2) / rate, tau, now, base;

    if (t == 0)
        t = 1;
    tau = spec->burst > TAU_CAP / t ? TAU_CAP : spec->burst * t;
    if (t < NS_PER_MS && tau < NS_PER_MS - t)
        tau = NS_PER_MS - t; /* requests are timed to the ms: a ms may hold the 1 ms / T requests the rate allows */
    now = (now_ms < NOW_CAP ? now_ms : NOW_CAP) * NS_PER_MS;
    base = *tat > now ? *tat : now;
    if (base - now > tau) { /* TAT - tau > now: too early */
        *res = (cph_ratelimit_result_t){0, 0, ceil_ms(base - now - tau), ceil_ms(base - now)};
        return;
    }
    *tat = base + t;
    *res = (cph_ratelimit_result_t){1, (tau - (base - now)) / t, 0, ceil_ms(*tat - now)};
}

uint64_t cph_ratelimit_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

uint64_t cph_ratelimit_limit_id(const char *scope, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over "scope\nname", then a 64-bit finaliser */

    for (const char *s = scope; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    h = (h ^ '\n') * 0x100000001b3ull;
    for (const char *s = name; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33;
    return h;
}

/* ---------------------------------------------------------------- the table */

static uint64_t sip_k0, sip_k1; /* random per process: chosen keys cannot collide on purpose */

typedef struct st_entry_t {
    uint64_t limit_id;
    uint64_t tat; /* ns */
    uint64_t hash;
    uint8_t used;
    uint8_t hashed; /* key holds the SHA-256 of a longer key */
    uint8_t key_len;
    char key[KEY_INLINE + 1];
} entry_t;

typedef struct st_shard_t {
    pthread_mutex_t lock;
    entry_t *slots;
    size_t cap; /* a power of two, 0 before the first insert */
    size_t size;
    uint64_t last_sweep; /* ns */
} shard_t;

/* What a lookup compares: the key as stored (inline bytes, or the digest of a long key). */
typedef struct st_probe_key_t {
    uint64_t limit_id, hash;
    const char *key;
    uint8_t len, hashed;
} probe_key_t;

static shard_t shards[NUM_SHARDS];
static size_t max_cap; /* per shard, a power of two; keys are kept below 3/4 of it */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static size_t cap_for(size_t max_keys)
{
    size_t per_shard = (max_keys != 0 ? max_keys : CPH_RATELIMIT_MAX_KEYS) / NUM_SHARDS, cap = MIN_CAP;

    while (cap / 4 * 3 < per_shard)
        cap *= 2;
    return cap;
}

static void init_once(void)
{
    uint64_t k[2];

    if (RAND_bytes((unsigned char *)k, sizeof(k)) != 1)
        cph_fatal(MODULE, "RAND_bytes failed");
    sip_k0 = k[0], sip_k1 = k[1];
    for (size_t i = 0; i != NUM_SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    max_cap = cap_for(0);
}

static int matches(const entry_t *e, const probe_key_t *k)
{
    return e->hash == k->hash && e->limit_id == k->limit_id && e->key_len == k->len && e->hashed == k->hashed &&
           memcmp(e->key, k->key, k->len) == 0;
}

/* The slot holding k, or the empty slot ending its probe path. A shard always keeps an empty slot. */
static size_t find(const shard_t *s, const probe_key_t *k)
{
    size_t mask = s->cap - 1, i = k->hash & mask;

    while (s->slots[i].used && !matches(&s->slots[i], k))
        i = (i + 1) & mask;
    return i;
}

/* Rebuilds the shard at new_cap without the keys whose TAT has passed. */
static void rebuild(shard_t *s, size_t new_cap, uint64_t now)
{
    entry_t *old = s->slots;
    size_t old_cap = s->cap;

    if ((s->slots = calloc(new_cap, sizeof(*s->slots))) == NULL)
        cph_fatal(MODULE, "out of memory");
    s->cap = new_cap;
    s->size = 0;
    s->last_sweep = now;
    for (size_t i = 0; i != old_cap; i++) {
        if (!old[i].used || old[i].tat <= now)
            continue;
        size_t j = old[i].hash & (new_cap - 1);
        while (s->slots[j].used)
            j = (j + 1) & (new_cap - 1);
        s->slots[j] = old[i];
        s->size++;
    }
    free(old);
}

/*
 * The slot the new key k goes into: an empty one after making room, or a victim on k's probe path; SIZE_MAX (the key
 * is not remembered) only when taking the slot would leave the shard without an empty slot.
 */
static size_t make_room(shard_t *s, const probe_key_t *k, uint64_t now)
{
    if (s->cap == 0) {
        rebuild(s, MIN_CAP < max_cap ? MIN_CAP : max_cap, now);
    } else if (s->size + 1 > s->cap / 4 * 3) {
        if (s->cap < max_cap)
            rebuild(s, s->cap * 2, now);
        else if (now - s->last_sweep >= SWEEP_NS || now < s->last_sweep)
            rebuild(s, s->cap, now);
    }
    if (s->size + 1 <= s->cap / 4 * 3)
        return find(s, k);
    size_t mask = s->cap - 1, i = k->hash & mask, victim = SIZE_MAX;
    for (int n = 0; n != PROBE_VICTIMS && s->slots[i].used; n++, i = (i + 1) & mask)
        if (victim == SIZE_MAX || s->slots[i].tat < s->slots[victim].tat)
            victim = i;
    if (victim != SIZE_MAX)
        return victim;
    return s->size + 2 <= s->cap ? i : SIZE_MAX; /* k's home is empty: take it unless it is the last empty slot */
}

static void store(shard_t *s, size_t i, const probe_key_t *k, uint64_t tat)
{
    entry_t *e = &s->slots[i];

    if (!e->used)
        s->size++;
    *e = (entry_t){.limit_id = k->limit_id, .tat = tat, .hash = k->hash, .used = 1, .hashed = k->hashed, .key_len = k->len};
    memcpy(e->key, k->key, k->len);
}

/* Fills k (and digest, for a key longer than KEY_INLINE) for item. */
static void make_key(const cph_ratelimit_item_t *item, probe_key_t *k, unsigned char *digest)
{
    *k = (probe_key_t){item->limit_id, 0, item->key, (uint8_t)item->key_len, 0};
    if (item->key_len > KEY_INLINE) {
        cph_sha256(item->key, item->key_len, digest);
        *k = (probe_key_t){item->limit_id, 0, (const char *)digest, CPH_SHA256_LEN, 1};
    }
    k->hash = cph_siphash13(sip_k0, sip_k1, &item->limit_id, k->key, k->len);
}

static int same_key(const probe_key_t *a, const probe_key_t *b)
{
    return a->hash == b->hash && a->limit_id == b->limit_id && a->len == b->len && a->hashed == b->hashed &&
           memcmp(a->key, b->key, a->len) == 0;
}

/* The stored TAT of k (0 = not in the table); the shard is locked. */
static uint64_t lookup(const shard_t *s, const probe_key_t *k)
{
    size_t i;

    return s->cap != 0 && s->slots[i = find(s, k)].used ? s->slots[i].tat : 0;
}

/* Stores k's new TAT, making room for a new key; the shard is locked. */
static void commit(shard_t *s, const probe_key_t *k, uint64_t tat, uint64_t now)
{
    size_t i = SIZE_MAX;

    if (s->cap != 0 && s->slots[i = find(s, k)].used) {
        s->slots[i].tat = tat;
        return;
    }
    if ((i = make_room(s, k, now)) != SIZE_MAX)
        store(s, i, k, tat);
}

/*
 * Every shard of the stack is locked at once, in ascending order (so two stacks never wait for each other in a
 * cycle), for the few instructions of deciding all limits and storing all of them: a refusal by any limit leaves
 * every other one untouched, and no concurrent request sees a half-charged stack. The same (limit, key) twice in a
 * stack is decided against its own tentative TAT.
 */
size_t cph_ratelimit_local_stack(cph_ratelimit_item_t *items, size_t n, uint64_t now_ms, int charge)
{
    unsigned char digests[CPH_RATELIMIT_MAX_STACK][CPH_SHA256_LEN];
    probe_key_t keys[CPH_RATELIMIT_MAX_STACK];
    uint64_t tats[CPH_RATELIMIT_MAX_STACK], locked = 0, now = (now_ms < NOW_CAP ? now_ms : NOW_CAP) * NS_PER_MS;
    size_t refused = n;

    if (n > CPH_RATELIMIT_MAX_STACK)
        cph_fatal(MODULE, "a stack of %zu limits (at most %d)", n, CPH_RATELIMIT_MAX_STACK);
    pthread_once(&once, init_once);
    for (size_t i = 0; i != n; i++) {
        make_key(&items[i], &keys[i], digests[i]);
        locked |= UINT64_C(1) << (keys[i].hash >> SHARD_SHIFT);
    }
    for (uint64_t bits = locked; bits != 0; bits &= bits - 1) /* lowest shard first */
        pthread_mutex_lock(&shards[__builtin_ctzll(bits)].lock);
    for (size_t i = 0; i != n && refused == n; i++) {
        size_t j = i;
        while (j != 0 && !same_key(&keys[j - 1], &keys[i]))
            j--;
        tats[i] = j != 0 ? tats[j - 1] : lookup(&shards[keys[i].hash >> SHARD_SHIFT], &keys[i]);
        cph_gcra(items[i].spec, now_ms, &tats[i], &items[i].res);
        if (!items[i].res.allowed)
            refused = i;
    }
    if (refused == n && charge) /* a refused key is never new: a new key always passes */
        for (size_t i = 0; i != n; i++)
            commit(&shards[keys[i].hash >> SHARD_SHIFT], &keys[i], tats[i], now);
    for (uint64_t bits = locked; bits != 0; bits &= bits - 1)
        pthread_mutex_unlock(&shards[__builtin_ctzll(bits)].lock);
    return refused;
}

void cph_ratelimit_local(uint64_t limit_id, const char *key, size_t key_len, const cph_ratelimit_spec_t *spec, uint64_t now_ms,
                         cph_ratelimit_result_t *res)
{
    cph_ratelimit_item_t item = {.limit_id = limit_id, .key = key, .key_len = key_len, .spec = spec};

    cph_ratelimit_local_stack(&item, 1, now_ms, 1);
    *res = item.res;
}

void cph_ratelimit_local_reset(size_t max_keys)
{
    pthread_once(&once, init_once);
    for (size_t i = 0; i != NUM_SHARDS; i++) {
        pthread_mutex_lock(&shards[i].lock);
        free(shards[i].slots);
        shards[i].slots = NULL;
        shards[i].cap = shards[i].size = 0;
        pthread_mutex_unlock(&shards[i].lock);
    }
    max_cap = cap_for(max_keys);
}

size_t cph_ratelimit_local_count(void)
{
    size_t n = 0;

    pthread_once(&once, init_once);
    for (size_t i = 0; i != NUM_SHARDS; i++) {
        pthread_mutex_lock(&shards[i].lock);
        n += shards[i].size;
        pthread_mutex_unlock(&shards[i].lock);
    }
    return n;
}
