/*
 * target: the registry of per-(service, authority) target state and per-service state (core/target.h).
 *
 * One mutex guards the two maps; it is taken only when a snapshot is compiled (control thread), never per request:
 * compiled targets and services hold their state pointers. Entries are never freed: a gateway sees few distinct
 * (service, target) pairs over its life, and a pointer handed out must stay valid for every in-flight request.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/core/target.h"

#define MODULE "dp/core/target"

typedef struct st_entry_t {
    struct st_entry_t *next;
    void *state;
    char key[]; /* "service\0authority\0" or "service\0" */
} entry_t;

#define NUM_BUCKETS 1024

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static entry_t *targets[NUM_BUCKETS], *services[NUM_BUCKETS];
static _Atomic uint64_t generation;

static size_t hash2(const char *a, const char *b)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *a != '\0'; ++a)
        h = (h ^ (unsigned char)*a) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (; b != NULL && *b != '\0'; ++b)
        h = (h ^ (unsigned char)*b) * 0x100000001b3ull;
    return (size_t)(h % NUM_BUCKETS);
}

/* Finds or creates the entry for (a, b) in table; new states are `size` zeroed bytes. Caller holds the mutex. */
static entry_t *lookup(entry_t **table, const char *a, const char *b, size_t size)
{
    size_t alen = strlen(a), blen = b != NULL ? strlen(b) : 0, bucket = hash2(a, b);
    entry_t *e;

    for (e = table[bucket]; e != NULL; e = e->next)
        if (strcmp(e->key, a) == 0 && (b == NULL || strcmp(e->key + alen + 1, b) == 0))
            return e;
    if ((e = calloc(1, sizeof(*e) + alen + blen + 2)) == NULL || (e->state = calloc(1, size)) == NULL)
        cph_fatal(MODULE, "out of memory");
    memcpy(e->key, a, alen + 1);
    if (b != NULL)
        memcpy(e->key + alen + 1, b, blen + 1);
    e->next = table[bucket];
    table[bucket] = e;
    return e;
}

cph_target_state_t *cph_target_state_get(const char *service, const char *authority)
{
    pthread_mutex_lock(&mutex);
    entry_t *e = lookup(targets, service, authority, sizeof(cph_target_state_t));
    cph_target_state_t *st = e->state;
    st->service = e->key;
    st->authority = e->key + strlen(e->key) + 1;
    pthread_mutex_unlock(&mutex);
    return st;
}

cph_service_state_t *cph_service_state_get(const char *service)
{
    pthread_mutex_lock(&mutex);
    entry_t *e = lookup(services, service, NULL, sizeof(cph_service_state_t));
    cph_service_state_t *st = e->state;
    st->name = e->key;
    pthread_mutex_unlock(&mutex);
    return st;
}

void cph_target_state_changed(void)
{
    atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
}

uint64_t cph_target_generation(void)
{
    return atomic_load_explicit(&generation, memory_order_relaxed);
}
