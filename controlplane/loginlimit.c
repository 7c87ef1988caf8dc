/*
 * loginlimit: counting failed logins per account and per client IP.
 *
 * Each table is a fixed pool of `capacity` entries allocated once: a hash index (chained through entry indexes)
 * finds a key, and a doubly linked recency list orders the entries so a new key takes the least recently touched
 * one when the pool is full. An entry keeps the times of its last `max` failures in a ring, so "max failures within
 * the window" is exact: the oldest of the ring is the failure that must age out before the next try.
 *
 * Memory is capacity x (64 bytes + 8 x max) per table, whatever an attacker sends. Eviction means a flood of other
 * keys can make the limiter forget an account; the per-IP count makes such a flood itself slow.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "controlplane/loginlimit.h"
#include "proto/log.h"

#define MODULE "cp/loginlimit"
#define NIL UINT32_MAX

typedef struct st_entry_t {
    unsigned char key[32]; /* SHA-256 of the key text */
    uint32_t next;         /* hash chain */
    uint32_t newer, older; /* recency list */
    uint32_t count;        /* failures held in the ring (<= max) */
    uint32_t head;         /* ring index of the oldest failure */
    int used;
} entry_t;

typedef struct st_table_t {
    entry_t *entries;
    int64_t *times; /* capacity x max */
    uint32_t *buckets;
    size_t nbuckets;
    size_t capacity;
    size_t used;
    uint32_t max;
    uint32_t newest, oldest;
} table_t;

struct st_cph_loginlimit_t {
    pthread_mutex_t lock;
    int64_t window_s;
    table_t accounts;
    table_t ips;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL)
        cph_fatal(MODULE, "out of memory");
    return p;
}

/* ---------------------------------------------------------------- tables */

static void table_init(table_t *t, size_t capacity, uint32_t max)
{
    t->capacity = capacity;
    t->max = max;
    for (t->nbuckets = 16; t->nbuckets < capacity; t->nbuckets *= 2)
        ;
    t->entries = xcalloc(capacity, sizeof(*t->entries));
    t->times = xcalloc(capacity * max, sizeof(*t->times));
    t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
    for (size_t i = 0; i < t->nbuckets; ++i)
        t->buckets[i] = NIL;
    t->newest = t->oldest = NIL;
}

static void table_free(table_t *t)
{
    free(t->entries);
    free(t->times);
    free(t->buckets);
}

static size_t bucket_of(const table_t *t, const unsigned char key[32])
{
    size_t h;

    memcpy(&h, key, sizeof(h));
    return h & (t->nbuckets - 1);
}

static void list_unlink(table_t *t, uint32_t i)
{
    entry_t *e = &t->entries[i];

    if (e->newer != NIL)
        t->entries[e->newer].older = e->older;
    else
        t->newest = e->older;
    if (e->older != NIL)
        t->entries[e->older].newer = e->newer;
    else
        t->oldest = e->newer;
}

static void list_push_newest(table_t *t, uint32_t i)
{
    entry_t *e = &t->entries[i];

    e->newer = NIL;
    e->older = t->newest;
    if (t->newest != NIL)
        t->entries[t->newest].newer = i;
    t->newest = i;
    if (t->oldest == NIL)
        t->oldest = i;
}

static void chain_remove(table_t *t, uint32_t i)
{
    uint32_t *p = &t->buckets[bucket_of(t, t->entries[i].key)];

    while (*p != i)
        p = &t->entries[*p].next;
    *p = t->entries[i].next;
}

static uint32_t find(const table_t *t, const unsigned char key[32])
{
    uint32_t i = t->buckets[bucket_of(t, key)];

    while (i != NIL && memcmp(t->entries[i].key, key, 32) != 0)
        i = t->entries[i].next;
    return i;
}

/* The entry of key, made (taking a free slot or evicting the least recently touched) when absent; now the newest. */
static uint32_t touch(table_t *t, const unsigned char key[32])
{
    uint32_t i = find(t, key);
    size_t b;

    if (i != NIL) {
        list_unlink(t, i);
        list_push_newest(t, i);
        return i;
    }
    if (t->used < t->capacity) {
        i = (uint32_t)t->used++;
    } else {
        i = t->oldest;
        list_unlink(t, i);
        chain_remove(t, i);
    }
    memset(&t->entries[i], 0, sizeof(t->entries[i]));
    memcpy(t->entries[i].key, key, 32);
    t->entries[i].used = 1;
    b = bucket_of(t, key);
    t->entries[i].next = t->buckets[b];
    t->buckets[b] = i;
    list_push_newest(t, i);
    return i;
}

/* Seconds until key may try again (0: now). */
static int64_t wait_of(const table_t *t, const unsigned char key[32], int64_t now, int64_t window_s)
{
    uint32_t i = find(t, key);
    int64_t oldest, wait;

    if (i == NIL || t->entries[i].count < t->max)
        return 0;
    oldest = t->times[(size_t)i * t->max + t->entries[i].head];
    wait = oldest + window_s - now;
    return wait > 0 ? wait : 0;
}

static void record(table_t *t, const unsigned char key[32], int64_t now)
{
    uint32_t i = touch(t, key);
    entry_t *e = &t->entries[i];
    int64_t *ring = &t->times[(size_t)i * t->max];

    if (e->count < t->max) {
        ring[(e->head + e->count) % t->max] = now;
        ++e->count;
    } else { /* overwrite the oldest */
        ring[e->head] = now;
        e->head = (e->head + 1) % t->max;
    }
}

static void forget(table_t *t, const unsigned char key[32])
{
    uint32_t i = find(t, key), last;

    if (i == NIL)
        return;
    list_unlink(t, i);
    chain_remove(t, i);
    /* keep the pool dense: move the last used slot into the hole */
    last = (uint32_t)--t->used;
    if (last != i) {
        uint32_t *p = &t->buckets[bucket_of(t, t->entries[last].key)];
        entry_t moved = t->entries[last];
        while (*p != last)
            p = &t->entries[*p].next;
        *p = i;
        if (moved.newer != NIL)
            t->entries[moved.newer].older = i;
        else
            t->newest = i;
        if (moved.older != NIL)
            t->entries[moved.older].newer = i;
        else
            t->oldest = i;
        t->entries[i] = moved;
        memcpy(&t->times[(size_t)i * t->max], &t->times[(size_t)last * t->max], t->max * sizeof(*t->times));
    }
    memset(&t->entries[last], 0, sizeof(t->entries[last]));
}

/* ---------------------------------------------------------------- the limiter */

static void digest(const char *text, unsigned char out[32])
{
    unsigned int len = 0;

    EVP_Digest(text, strlen(text), out, &len, EVP_sha256(), NULL);
}

void cph_loginlimit_defaults(cph_loginlimit_config_t *c)
{
    c->account_max = CPH_LOGINLIMIT_ACCOUNT_MAX;
    c->ip_max = CPH_LOGINLIMIT_IP_MAX;
    c->window_s = CPH_LOGINLIMIT_WINDOW_S;
    c->capacity = CPH_LOGINLIMIT_CAPACITY;
}

cph_loginlimit_t *cph_loginlimit_new(const cph_loginlimit_config_t *c)
{
    cph_loginlimit_t *l = xcalloc(1, sizeof(*l));

    if (c->account_max < 1 || c->ip_max < 1 || c->capacity < 1 || c->capacity >= NIL)
        cph_fatal(MODULE, "bad login limiter configuration");
    pthread_mutex_init(&l->lock, NULL);
    l->window_s = c->window_s;
    table_init(&l->accounts, c->capacity, c->account_max);
    table_init(&l->ips, c->capacity, c->ip_max);
    return l;
}

void cph_loginlimit_free(cph_loginlimit_t *l)
{
    if (l == NULL)
        return;
    table_free(&l->accounts);
    table_free(&l->ips);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

int64_t cph_loginlimit_check(cph_loginlimit_t *l, const char *ip, const char *account, int64_t now)
{
    unsigned char k[32];
    int64_t wait = 0, w;

    pthread_mutex_lock(&l->lock);
    if (account != NULL) {
        digest(account, k);
        wait = wait_of(&l->accounts, k, now, l->window_s);
    }
    if (ip != NULL) {
        digest(ip, k);
        if ((w = wait_of(&l->ips, k, now, l->window_s)) > wait)
            wait = w;
    }
    pthread_mutex_unlock(&l->lock);
    return wait;
}

void cph_loginlimit_fail(cph_loginlimit_t *l, const char *ip, const char *account, int64_t now)
{
    unsigned char k[32];

    pthread_mutex_lock(&l->lock);
    if (account != NULL) {
        digest(account, k);
        record(&l->accounts, k, now);
    }
    if (ip != NULL) {
        digest(ip, k);
        record(&l->ips, k, now);
    }
    pthread_mutex_unlock(&l->lock);
}

void cph_loginlimit_success(cph_loginlimit_t *l, const char *account)
{
    unsigned char k[32];

    if (account == NULL)
        return;
    digest(account, k);
    pthread_mutex_lock(&l->lock);
    forget(&l->accounts, k);
    pthread_mutex_unlock(&l->lock);
}

size_t cph_loginlimit_size(cph_loginlimit_t *l)
{
    size_t n;

    pthread_mutex_lock(&l->lock);
    n = l->accounts.used + l->ips.used;
    pthread_mutex_unlock(&l->lock);
    return n;
}
