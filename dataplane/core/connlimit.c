/*
 * connlimit: per-address connection counts (connlimit.h).
 *
 * Entries live in singly linked chains under their stripe's lock and are freed when their count drops to zero, so
 * the table holds only addresses with open connections: its size follows the connections, not the attackers'
 * address space.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/core/connlimit.h"

#define MODULE "dp/core/connlimit"
#define STRIPES 64
#define BUCKETS_PER_STRIPE 256

typedef struct st_entry_t {
    struct st_entry_t *next;
    cph_connlimit_key_t key;
    uint32_t count;
} entry_t;

typedef struct st_stripe_t {
    pthread_mutex_t lock;
    entry_t *buckets[BUCKETS_PER_STRIPE];
} stripe_t;

struct st_cph_connlimit_t {
    stripe_t stripes[STRIPES];
};

cph_connlimit_t *cph_connlimit_new(void)
{
    cph_connlimit_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t i = 0; i != STRIPES; ++i)
        pthread_mutex_init(&l->stripes[i].lock, NULL);
    return l;
}

void cph_connlimit_free(cph_connlimit_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i != STRIPES; ++i) {
        for (size_t b = 0; b != BUCKETS_PER_STRIPE; ++b) {
            entry_t *e = l->stripes[i].buckets[b];
            while (e != NULL) {
                entry_t *next = e->next;
                free(e);
                e = next;
            }
        }
        pthread_mutex_destroy(&l->stripes[i].lock);
    }
    free(l);
}

/* sa -> 16 bytes; 0, or -1 for a family that is not limited. */
static int key_of(const struct sockaddr *sa, cph_connlimit_key_t *key)
{
    memset(key, 0, sizeof(*key));
    if (sa->sa_family == AF_INET) {
        key->addr[10] = key->addr[11] = 0xff;
        memcpy(key->addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* FNV-1a over the address: the stripe from the low bits, the bucket from the next ones. */
static uint32_t hash_of(const cph_connlimit_key_t *key)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i != sizeof(key->addr); ++i)
        h = (h ^ key->addr[i]) * 16777619u;
    return h;
}

static stripe_t *stripe_of(cph_connlimit_t *l, const cph_connlimit_key_t *key, entry_t ***bucket)
{
    uint32_t h = hash_of(key);
    stripe_t *stripe = &l->stripes[h % STRIPES];

    *bucket = &stripe->buckets[(h / STRIPES) % BUCKETS_PER_STRIPE];
    return stripe;
}

/* The link that points at key's entry (or at the NULL ending its chain). Under the stripe's lock. */
static entry_t **find(entry_t **p, const cph_connlimit_key_t *key)
{
    while (*p != NULL && memcmp((*p)->key.addr, key->addr, sizeof(key->addr)) != 0)
        p = &(*p)->next;
    return p;
}

int cph_connlimit_acquire(cph_connlimit_t *l, const struct sockaddr *sa, uint32_t max, cph_connlimit_key_t *key, int *counted)
{
    entry_t **bucket, **p;
    stripe_t *stripe;
    int ret = 0;

    *counted = 0;
    if (max == 0 || key_of(sa, key) != 0)
        return 0;
    stripe = stripe_of(l, key, &bucket);
    pthread_mutex_lock(&stripe->lock);
    if (*(p = find(bucket, key)) == NULL) {
        if ((*p = calloc(1, sizeof(**p))) == NULL)
            cph_fatal(MODULE, "out of memory");
        (*p)->key = *key;
    }
    if ((*p)->count >= max) {
        ret = -1;
    } else {
        ++(*p)->count;
        *counted = 1;
    }
    pthread_mutex_unlock(&stripe->lock);
    return ret;
}

void cph_connlimit_release(cph_connlimit_t *l, const cph_connlimit_key_t *key)
{
    entry_t **bucket, **p, *gone = NULL;
    stripe_t *stripe = stripe_of(l, key, &bucket);

    pthread_mutex_lock(&stripe->lock);
    if (*(p = find(bucket, key)) != NULL && --(*p)->count == 0) {
        gone = *p;
        *p = gone->next;
    }
    pthread_mutex_unlock(&stripe->lock);
    free(gone);
}

uint32_t cph_connlimit_count(cph_connlimit_t *l, const struct sockaddr *sa)
{
    cph_connlimit_key_t key;
    entry_t **bucket, **p;
    stripe_t *stripe;
    uint32_t n;

    if (key_of(sa, &key) != 0)
        return 0;
    stripe = stripe_of(l, &key, &bucket);
    pthread_mutex_lock(&stripe->lock);
    n = *(p = find(bucket, &key)) != NULL ? (*p)->count : 0;
    pthread_mutex_unlock(&stripe->lock);
    return n;
}
