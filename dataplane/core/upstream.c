/*
 * upstream: stable pool ids per "host:port".
 *
 * Workers keep their h2o socket pools in an array indexed by this id (filter/proxy.c), so the id of an authority
 * must never change for the life of the process, whatever snapshots come and go. Ids are never freed: the number of
 * distinct upstream authorities a gateway ever sees is small, and an idle pool holds no sockets after its keep-alive
 * timeout.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/core/upstream.h"

#define MODULE "dp/core/upstream"

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static char **slots;   /* open addressing: authority strings */
static uint32_t *ids;  /* id of slots[i] */
static size_t cap;     /* power of two, 0 before the first call */
static uint32_t count; /* ids handed out */

static size_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s != '\0'; ++s)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)h;
}

static void insert(char **s, uint32_t *id, size_t c, char *key, uint32_t value)
{
    size_t i = hash_str(key) & (c - 1);
    while (s[i] != NULL)
        i = (i + 1) & (c - 1);
    s[i] = key;
    id[i] = value;
}

static void grow(void)
{
    size_t ncap = cap == 0 ? 64 : cap * 2;
    char **ns = calloc(ncap, sizeof(*ns));
    uint32_t *ni = calloc(ncap, sizeof(*ni));

    if (ns == NULL || ni == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t i = 0; i != cap; ++i)
        if (slots[i] != NULL)
            insert(ns, ni, ncap, slots[i], ids[i]);
    free(slots);
    free(ids);
    slots = ns;
    ids = ni;
    cap = ncap;
}

uint32_t cph_upstream_pool_id(const char *authority)
{
    uint32_t id;

    pthread_mutex_lock(&mutex);
    if (2 * ((size_t)count + 1) > cap)
        grow();
    for (size_t i = hash_str(authority) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (slots[i] == NULL) {
            char *key = strdup(authority);
            if (key == NULL)
                cph_fatal(MODULE, "out of memory");
            id = ++count;
            slots[i] = key;
            ids[i] = id;
            break;
        }
        if (strcmp(slots[i], authority) == 0) {
            id = ids[i];
            break;
        }
    }
    pthread_mutex_unlock(&mutex);
    return id;
}

uint32_t cph_upstream_num_pools(void)
{
    pthread_mutex_lock(&mutex);
    uint32_t n = count;
    pthread_mutex_unlock(&mutex);
    return n;
}
