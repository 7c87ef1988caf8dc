/*
 * cache_redis: the response cache's Redis backend (core/cache_redis.h has the key layout). The entries are the ones
 * core/cache.c builds from a response (so every storability, Vary and freshness rule is the memory backend's); this file
 * only moves them in and out of Redis through core/redis.c, never blocking a worker.
 *
 * A value is "CPHC", a format version byte and a kind byte ('E' an entry, 'V' a Vary marker), then fixed-width
 * little-endian integers and length-prefixed byte strings; a reader refuses anything of another version or cut short,
 * which is then a miss (and the next store overwrites it). An entry carries its own host and path, so a hash collision
 * is a miss too. Freshness is the entry's: its Age when stored plus the wall-clock time since, against its freshness;
 * the key's PX is the time it had left when stored, so Redis drops it when it goes stale.
 *
 * A lookup is one EVAL that returns the value and the route's purge records together, so a purged entry is never
 * served (a purge is a single HSET of `at` per prefix: the entries stay until their PX, unreachable). Stores are
 * fire-and-forget after the response completed, at most CPH_CACHE_REDIS_MAX_STORES in flight per process.
 *
 * A purge arrives on the control thread, which has no loop to hear Redis's answer: it is written at once (by a worker:
 * core/redis.c hands it over) and also kept as pending (at most MAX_PENDING_PURGES, the latest `at` per route and
 * prefix). Every lookup on any worker writes the pending purges again, ahead of itself on its own connection, until an
 * OK answer retires them: each worker has its own connection, so only a purge written on the lookup's connection is
 * sure to be in force when the lookup runs. A purge sent while Redis was unreachable is so applied before anything is
 * served from it again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "proto/log.h"
#include "dataplane/core/cache_redis.h"
#include "dataplane/core/redis.h"

#define MODULE "dp/core/cache_redis"
#define KEY_PREFIX "cephalo:cache:v1:{"
#define MAGIC "CPHC"
#define PURGES_TTL_MS "31622400000" /* a year and a day: longer than any entry can live (CPH_CACHE_MAX_TTL_S) */

/* KEYS[1] the value, KEYS[2] the route's purge records: {value, {prefix, at, ...}} or nil. */
static const char LOOKUP_SCRIPT[] = "local v = redis.call('GET', KEYS[1])\n"
                                    "if not v then return false end\n"
                                    "return {v, redis.call('HGETALL', KEYS[2])}\n";

/* KEYS[1] the purge records; ARGV prefix, at_ms, ttl_ms: the latest `at` per prefix wins. */
static const char PURGE_SCRIPT[] = "local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0\n"
                                   "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end\n"
                                   "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                                   "return 0\n";

#define MAX_PENDING_PURGES 64

static _Atomic size_t stores_in_flight;

typedef struct st_pending_purge_t {
    char *route, *prefix;
    uint64_t at_ms;
} pending_purge_t;

static struct {
    pthread_mutex_t mutex;
    pending_purge_t items[MAX_PENDING_PURGES];
    size_t n;
    _Atomic size_t count; /* n, read without the mutex by every lookup */
} pending = {.mutex = PTHREAD_MUTEX_INITIALIZER};

/* ---------------------------------------------------------------- encoding */

typedef struct st_wbuf_t {
    char *buf;
    size_t len, cap;
} wbuf_t;

static void put(wbuf_t *w, const void *p, size_t len)
{
    if (w->len + len > w->cap) {
        w->cap = (w->len + len) * 2 + 64;
        if ((w->buf = realloc(w->buf, w->cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    if (len != 0)
        memcpy(w->buf + w->len, p, len);
    w->len += len;
}

static void put_int(wbuf_t *w, uint64_t v, size_t width)
{
    unsigned char b[8];

    for (size_t i = 0; i != width; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, width);
}

static void put_str(wbuf_t *w, h2o_iovec_t s)
{
    put_int(w, s.len, 4);
    put(w, s.base, s.len);
}

static void put_head(wbuf_t *w, char kind)
{
    put(w, MAGIC, 4);
    put_int(w, CPH_CACHE_REDIS_FORMAT, 1);
    put(w, &kind, 1);
}

size_t cph_cache_redis_encode(const cph_cache_entry_t *e, char **out)
{
    wbuf_t w = {NULL, 0, 0};

    put_head(&w, 'E');
    put_int(&w, e->stored_wall_ms, 8);
    put_int(&w, e->age_s, 8);
    put_int(&w, e->freshness_s, 8);
    put_int(&w, e->shared_ok != 0, 1);
    put_int(&w, (uint64_t)e->status, 2);
    put_str(&w, e->host);
    put_str(&w, e->path);
    put_str(&w, e->vary);
    put_str(&w, e->vary_values);
    put_str(&w, e->reason);
    put_int(&w, e->num_headers, 4);
    for (size_t i = 0; i != e->num_headers; i++) {
        put_str(&w, e->headers[i].name);
        put_str(&w, e->headers[i].value);
    }
    put_str(&w, h2o_iovec_init(e->body, e->body_len));
    *out = w.buf;
    return w.len;
}

size_t cph_cache_redis_encode_vary(h2o_iovec_t host, h2o_iovec_t path, h2o_iovec_t vary, uint64_t stored_wall_ms, char **out)
{
    wbuf_t w = {NULL, 0, 0};

    put_head(&w, 'V');
    put_int(&w, stored_wall_ms, 8);
    put_str(&w, host);
    put_str(&w, path);
    put_str(&w, vary);
    *out = w.buf;
    return w.len;
}

/* ---------------------------------------------------------------- decoding */

typedef struct st_rbuf_t {
    const unsigned char *p;
    size_t left;
    int bad;
} rbuf_t;

static uint64_t get_int(rbuf_t *r, size_t width)
{
    uint64_t v = 0;

    if (r->bad || r->left < width) {
        r->bad = 1;
        return 0;
    }
    for (size_t i = 0; i != width; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += width;
    r->left -= width;
    return v;
}

/* A malloc'd, NUL-terminated copy of the next string (empty and NULL-free when the buffer is bad). */
static h2o_iovec_t get_str(rbuf_t *r)
{
    size_t len = (size_t)get_int(r, 4);
    char *s;

    if (r->bad || r->left < len) {
        r->bad = 1;
        len = 0;
    }
    if ((s = malloc(len + 1)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (len != 0)
        memcpy(s, r->p, len);
    s[len] = '\0';
    r->p += len;
    r->left -= len;
    return h2o_iovec_init(s, len);
}

static void decode_headers(rbuf_t *r, cph_cache_entry_t *e)
{
    size_t n = (size_t)get_int(r, 4);

    if (r->bad || n > r->left / 8) { /* each header takes at least two lengths */
        r->bad = 1;
        n = 0;
    }
    if ((e->headers = calloc(n + 1, sizeof(*e->headers))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (e->num_headers = 0; e->num_headers != n; e->num_headers++) {
        cph_cache_header_t *h = &e->headers[e->num_headers];
        h->name = get_str(r);
        h->value = get_str(r);
        if (h2o_memis(h->name.base, h->name.len, H2O_STRLIT("etag")))
            e->etag = h->value;
    }
}

static cph_cache_entry_t *decode_entry(rbuf_t *r)
{
    cph_cache_entry_t *e = calloc(1, sizeof(*e));

    if (e == NULL)
        cph_fatal(MODULE, "out of memory");
    atomic_init(&e->refcnt, 1);
    e->stored_wall_ms = get_int(r, 8);
    e->age_s = get_int(r, 8);
    e->freshness_s = get_int(r, 8);
    e->shared_ok = get_int(r, 1) != 0;
    e->status = (int)get_int(r, 2);
    e->host = get_str(r);
    e->path = get_str(r);
    e->vary = get_str(r);
    e->vary_values = get_str(r);
    e->reason = get_str(r);
    decode_headers(r, e);
    h2o_iovec_t body = get_str(r);
    e->body = body.base;
    e->body_len = e->body_cap = body.len;
    if (r->bad || r->left != 0) {
        cph_cache_entry_release(e);
        return NULL;
    }
    return e;
}

cph_cache_entry_t *cph_cache_redis_decode(const char *buf, size_t len, h2o_iovec_t *vary)
{
    rbuf_t r = {(const unsigned char *)buf, len, 0};

    *vary = h2o_iovec_init(NULL, 0);
    if (len < 6 || memcmp(buf, MAGIC, 4) != 0 || buf[4] != CPH_CACHE_REDIS_FORMAT)
        return NULL;
    r.p += 6, r.left -= 6;
    if (buf[5] == 'E')
        return decode_entry(&r);
    if (buf[5] != 'V')
        return NULL;
    get_int(&r, 8);
    h2o_iovec_t host = get_str(&r), path = get_str(&r), names = get_str(&r);
    free(host.base);
    free(path.base);
    if (r.bad || r.left != 0 || names.len == 0) {
        free(names.base);
        return NULL;
    }
    *vary = names;
    return NULL;
}

/* ---------------------------------------------------------------- keys */

static h2o_iovec_t make_key(const char *route, const char *suffix, size_t suffix_len)
{
    size_t rlen = strlen(route), len = sizeof(KEY_PREFIX) - 1 + rlen + 2 + suffix_len;
    char *k = malloc(len + 1);

    if (k == NULL)
        cph_fatal(MODULE, "out of memory");
    snprintf(k, len + 1, "%s%s}:%.*s", KEY_PREFIX, route, (int)suffix_len, suffix);
    return h2o_iovec_init(k, len);
}

h2o_iovec_t cph_cache_redis_key(const char *route, h2o_iovec_t host, h2o_iovec_t path, h2o_iovec_t vary, h2o_iovec_t vary_values)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    char h[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        cph_fatal(MODULE, "SHA-256 unavailable");
    EVP_DigestUpdate(ctx, host.base, host.len);
    EVP_DigestUpdate(ctx, "", 1);
    EVP_DigestUpdate(ctx, path.base, path.len);
    if (vary.len != 0) {
        EVP_DigestUpdate(ctx, "", 1);
        EVP_DigestUpdate(ctx, vary.base, vary.len);
        EVP_DigestUpdate(ctx, "", 1);
        EVP_DigestUpdate(ctx, vary_values.base, vary_values.len);
    }
    EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    for (size_t i = 0; i != 16; i++) {
        h[2 * i] = hex[md[i] >> 4];
        h[2 * i + 1] = hex[md[i] & 15];
    }
    return make_key(route, h, sizeof(h));
}

/* ---------------------------------------------------------------- lookup */

typedef struct st_lookup_t {
    cph_cache_redis_cb cb;
    void *ud;
    h2o_iovec_t host, path; /* copies: what the value must be for */
} lookup_t;

/* Whether a purge record (prefix -> at) covers e: its path starts with the prefix and it was stored before at. */
static int purged(const cph_cache_entry_t *e, const cph_redis_reply_t *records)
{
    for (size_t i = 0; records != NULL && records->type == CPH_REDIS_REPLY_ARRAY && i + 1 < records->elements; i += 2) {
        const cph_redis_reply_t *prefix = records->element[i], *at = records->element[i + 1];
        if (prefix->type != CPH_REDIS_REPLY_STRING || at->type != CPH_REDIS_REPLY_STRING)
            continue;
        if (e->path.len >= prefix->len && memcmp(e->path.base, prefix->str, prefix->len) == 0 &&
            e->stored_wall_ms < strtoull(at->str, NULL, 10))
            return 1;
    }
    return 0;
}

/* The answer to a lookup: what the reply holds for lk's host and path. */
static cph_cache_redis_result_t read_answer(const lookup_t *lk, const cph_redis_reply_t *reply, cph_cache_entry_t **entry,
                                            uint64_t *age_s, h2o_iovec_t *vary)
{
    cph_cache_entry_t *e;
    uint64_t now = cph_cache_wall_ms();

    if (reply->type != CPH_REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != CPH_REDIS_REPLY_STRING)
        return CPH_CACHE_REDIS_MISS; /* nil: nothing stored */
    if ((e = cph_cache_redis_decode(reply->element[0]->str, reply->element[0]->len, vary)) == NULL)
        return vary->len != 0 ? CPH_CACHE_REDIS_VARY : CPH_CACHE_REDIS_MISS;
    *age_s = e->age_s + (now > e->stored_wall_ms ? now - e->stored_wall_ms : 0) / 1000;
    if (!h2o_memis(e->host.base, e->host.len, lk->host.base, lk->host.len) ||
        !h2o_memis(e->path.base, e->path.len, lk->path.base, lk->path.len) || *age_s >= e->freshness_s ||
        purged(e, reply->element[1])) {
        cph_cache_entry_release(e);
        return CPH_CACHE_REDIS_MISS;
    }
    *entry = e;
    return CPH_CACHE_REDIS_HIT;
}

static void on_lookup(void *ud, cph_redis_status_t status, const cph_redis_reply_t *reply)
{
    lookup_t *lk = ud;
    cph_cache_entry_t *e = NULL;
    uint64_t age_s = 0;
    h2o_iovec_t vary = {NULL, 0};
    cph_cache_redis_result_t res = status == CPH_REDIS_OK ? read_answer(lk, reply, &e, &age_s, &vary) : CPH_CACHE_REDIS_ERROR;

    lk->cb(lk->ud, res, e, age_s, vary);
    free(vary.base);
    free(lk->host.base);
    free(lk->path.base);
    free(lk);
}

static h2o_iovec_t dup_iov(h2o_iovec_t v)
{
    char *p = malloc(v.len + 1);

    if (p == NULL)
        cph_fatal(MODULE, "out of memory");
    if (v.len != 0)
        memcpy(p, v.base, v.len);
    p[v.len] = '\0';
    return h2o_iovec_init(p, v.len);
}

static void flush_pending_purges(cph_worker_t *w);

void cph_cache_redis_lookup(cph_worker_t *w, const char *route, h2o_iovec_t host, h2o_iovec_t path, h2o_iovec_t vary,
                            h2o_iovec_t vary_values, cph_cache_redis_cb cb, void *ud)
{
    lookup_t *lk = malloc(sizeof(*lk));
    h2o_iovec_t key = cph_cache_redis_key(route, host, path, vary, vary_values), purges = make_key(route, H2O_STRLIT("purges"));
    const char *argv[] = {"EVAL", LOOKUP_SCRIPT, "2", key.base, purges.base};
    size_t argvlen[] = {4, sizeof(LOOKUP_SCRIPT) - 1, 1, key.len, purges.len};

    if (lk == NULL)
        cph_fatal(MODULE, "out of memory");
    *lk = (lookup_t){cb, ud, dup_iov(host), dup_iov(path)};
    flush_pending_purges(w); /* ahead of the lookup on the same connection */
    cph_redis_command(w, 5, argv, argvlen, on_lookup, lk);
    free(key.base);
    free(purges.base);
}

/* ---------------------------------------------------------------- store and purge */

static void on_stored(void *ud, cph_redis_status_t status, const cph_redis_reply_t *reply)
{
    (void)ud, (void)reply;
    if (status != CPH_REDIS_OK)
        cph_log_debug(MODULE, "a response was not stored in redis (%s)", status == CPH_REDIS_TIMEOUT ? "timeout" : "unavailable");
    atomic_fetch_sub_explicit(&stores_in_flight, 1, memory_order_relaxed);
}

/* SET key value PX ms; with w the answer comes back to on_stored, without it nothing does. */
static void set_px(cph_worker_t *w, h2o_iovec_t key, const char *value, size_t value_len, uint64_t px)
{
    char ms[24];
    int n = snprintf(ms, sizeof(ms), "%llu", (unsigned long long)px);
    const char *argv[] = {"SET", key.base, value, "PX", ms};
    size_t argvlen[] = {3, key.len, value_len, 2, (size_t)n};

    cph_redis_command(w, 5, argv, argvlen, w != NULL ? on_stored : NULL, NULL);
}

int cph_cache_redis_store(cph_worker_t *w, const char *route, cph_cache_entry_t *e, uint64_t max_ttl_s)
{
    char *value;
    size_t len;

    if (e->stored_wall_ms == 0)
        e->stored_wall_ms = cph_cache_wall_ms();
    if (e->age_s >= e->freshness_s)
        return -1; /* already stale: it would never be served */
    if (atomic_fetch_add_explicit(&stores_in_flight, 1, memory_order_relaxed) >= CPH_CACHE_REDIS_MAX_STORES) {
        atomic_fetch_sub_explicit(&stores_in_flight, 1, memory_order_relaxed);
        return -1;
    }
    if (e->vary.len != 0) {
        h2o_iovec_t key = cph_cache_redis_key(route, e->host, e->path, h2o_iovec_init(NULL, 0), h2o_iovec_init(NULL, 0));
        len = cph_cache_redis_encode_vary(e->host, e->path, e->vary, e->stored_wall_ms, &value);
        set_px(NULL, key, value, len, max_ttl_s * 1000); /* outlives every variant */
        free(value);
        free(key.base);
    }
    h2o_iovec_t key = cph_cache_redis_key(route, e->host, e->path, e->vary, e->vary_values);
    len = cph_cache_redis_encode(e, &value);
    set_px(w, key, value, len, (e->freshness_s - e->age_s) * 1000);
    free(value);
    free(key.base);
    return 0;
}

/* Writes one purge record; with w, cb(ud, ...) hears the answer on w's loop. */
static void send_purge(cph_worker_t *w, const char *route, const char *prefix, uint64_t at_ms, cph_redis_reply_cb cb, void *ud)
{
    h2o_iovec_t key = make_key(route, H2O_STRLIT("purges"));
    char at[24];
    int n = snprintf(at, sizeof(at), "%llu", (unsigned long long)at_ms);
    const char *argv[] = {"EVAL", PURGE_SCRIPT, "1", key.base, prefix, at, PURGES_TTL_MS};
    size_t argvlen[] = {4, sizeof(PURGE_SCRIPT) - 1, 1, key.len, strlen(prefix), (size_t)n, sizeof(PURGES_TTL_MS) - 1};

    cph_redis_command(w, 7, argv, argvlen, cb, ud);
    free(key.base);
}

/* The pending purge of route + prefix, or NULL. pending.mutex held. */
static pending_purge_t *find_pending(const char *route, const char *prefix)
{
    for (size_t i = 0; i != pending.n; i++)
        if (strcmp(pending.items[i].route, route) == 0 && strcmp(pending.items[i].prefix, prefix) == 0)
            return &pending.items[i];
    return NULL;
}

/* pending.mutex held. */
static void remove_pending(pending_purge_t *p)
{
    free(p->route);
    free(p->prefix);
    memmove(p, p + 1, (size_t)(&pending.items[pending.n] - (p + 1)) * sizeof(*p));
    atomic_store_explicit(&pending.count, --pending.n, memory_order_relaxed);
}

static void remember_purge(const char *route, const char *prefix, uint64_t at_ms)
{
    pending_purge_t *p;

    pthread_mutex_lock(&pending.mutex);
    if ((p = find_pending(route, prefix)) != NULL) {
        if (at_ms > p->at_ms)
            p->at_ms = at_ms;
    } else {
        if (pending.n == MAX_PENDING_PURGES) {
            cph_log_warn(MODULE, "too many purges not yet confirmed by redis: the oldest one is only sent once");
            remove_pending(&pending.items[0]);
        }
        p = &pending.items[pending.n];
        if ((p->route = strdup(route)) == NULL || (p->prefix = strdup(prefix)) == NULL)
            cph_fatal(MODULE, "out of memory");
        p->at_ms = at_ms;
        atomic_store_explicit(&pending.count, ++pending.n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pending.mutex);
}

/* A worker's write of a pending purge was answered: an OK retires it (unless a later `at` came meanwhile). */
static void on_purge_written(void *ud, cph_redis_status_t status, const cph_redis_reply_t *reply)
{
    pending_purge_t *sent = ud, *p;

    (void)reply;
    pthread_mutex_lock(&pending.mutex);
    if ((p = find_pending(sent->route, sent->prefix)) != NULL) {
        if (status == CPH_REDIS_OK && p->at_ms <= sent->at_ms)
            remove_pending(p); /* else the next lookup writes it again */
    }
    pthread_mutex_unlock(&pending.mutex);
    free(sent->route);
    free(sent->prefix);
    free(sent);
}

static void flush_pending_purges(cph_worker_t *w)
{
    if (atomic_load_explicit(&pending.count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&pending.mutex);
    for (size_t i = 0; i != pending.n; i++) {
        pending_purge_t *p = &pending.items[i], *sent;
        if ((sent = malloc(sizeof(*sent))) == NULL || (sent->route = strdup(p->route)) == NULL ||
            (sent->prefix = strdup(p->prefix)) == NULL)
            cph_fatal(MODULE, "out of memory");
        sent->at_ms = p->at_ms;
        send_purge(w, p->route, p->prefix, p->at_ms, on_purge_written, sent); /* answered later, never inside */
    }
    pthread_mutex_unlock(&pending.mutex);
}

void cph_cache_redis_purge(const char *route, const char *prefix, uint64_t at_ms)
{
    if (prefix == NULL)
        prefix = "";
    remember_purge(route, prefix, at_ms);
    send_purge(NULL, route, prefix, at_ms, NULL, NULL);
}

size_t cph_cache_redis_pending_purges(void)
{
    return atomic_load_explicit(&pending.count, memory_order_relaxed);
}

size_t cph_cache_redis_stores_in_flight(void)
{
    return atomic_load_explicit(&stores_in_flight, memory_order_relaxed);
}
