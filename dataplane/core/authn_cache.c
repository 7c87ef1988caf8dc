/*
 * authn_cache: verified bearer tokens per worker thread (see the header for what is cached and when it is dropped).
 *
 * Direct-mapped: the slot comes from the token's last 8 bytes, which are signature bytes - random for a genuine token,
 * and for a crafted one a collision only evicts, because a hit compares the whole token. Each entry is one malloc'd
 * block holding the token and copies of the principal's strings; the thread's table is freed by a pthread key
 * destructor when the thread ends.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/auth.h"
#include "dataplane/core/authn_cache.h"

#define MODULE "dp/core/authn_cache"

typedef struct st_entry_t {
    const cph_snapshot_t *snap; /* identity of the snapshot, with version: an address can be reused after a free */
    uint64_t version;
    h2o_iovec_t token;
    cph_principal_t p; /* views into the same block */
} entry_t;

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void free_table(void *p)
{
    entry_t **table = p;

    for (size_t i = 0; i != CPH_AUTHN_CACHE_SLOTS; ++i)
        free(table[i]);
    free(table);
}

static void make_key(void)
{
    if (pthread_key_create(&key, free_table) != 0)
        cph_fatal(MODULE, "pthread_key_create failed");
}

static entry_t **table(int create)
{
    entry_t **t;

    pthread_once(&once, make_key);
    if ((t = pthread_getspecific(key)) == NULL && create) {
        if ((t = calloc(CPH_AUTHN_CACHE_SLOTS, sizeof(*t))) == NULL)
            cph_fatal(MODULE, "out of memory");
        pthread_setspecific(key, t);
    }
    return t;
}

static size_t slot_of(const char *token, size_t len)
{
    uint64_t h = 0;

    memcpy(&h, token + len - (len < 8 ? len : 8), len < 8 ? len : 8);
    return (size_t)((h * 0x9e3779b97f4a7c15ull) >> 32) % CPH_AUTHN_CACHE_SLOTS;
}

/* ---------------------------------------------------------------- copying a principal */

static size_t names_size(const h2o_iovec_t *v, size_t n)
{
    size_t size = n * sizeof(*v);

    for (size_t i = 0; i != n; ++i)
        size += v[i].len;
    return size;
}

/* Copies src (n bytes) to *cursor and advances it. */
static h2o_iovec_t put_bytes(char **cursor, h2o_iovec_t src)
{
    h2o_iovec_t out = h2o_iovec_init(*cursor, src.len);

    if (src.len != 0)
        memcpy(*cursor, src.base, src.len);
    *cursor += src.len;
    return out;
}

/* Room for n views at *cursor (the block's arrays come first, so they stay aligned). */
static h2o_iovec_t *put_array(char **cursor, size_t n)
{
    h2o_iovec_t *out = (h2o_iovec_t *)*cursor;

    *cursor += n * sizeof(*out);
    return n != 0 ? out : NULL;
}

/* Bytes a deep copy of p needs. */
static size_t principal_size(const cph_principal_t *p)
{
    return names_size(p->roles, p->num_roles) + names_size(p->groups, p->num_groups) + p->id.len + p->name.len + p->system.len +
           p->jti.len;
}

/* A deep copy of src into the block at *cursor (which must be aligned for h2o_iovec_t). */
static void put_principal(char **cursor, const cph_principal_t *src, cph_principal_t *dst)
{
    *dst = *src;
    dst->roles = put_array(cursor, src->num_roles);
    dst->groups = put_array(cursor, src->num_groups);
    for (size_t i = 0; i != src->num_roles; ++i)
        dst->roles[i] = put_bytes(cursor, src->roles[i]);
    for (size_t i = 0; i != src->num_groups; ++i)
        dst->groups[i] = put_bytes(cursor, src->groups[i]);
    dst->id = put_bytes(cursor, src->id);
    dst->name = put_bytes(cursor, src->name);
    dst->system = put_bytes(cursor, src->system);
    dst->jti = put_bytes(cursor, src->jti);
}

/* ---------------------------------------------------------------- entry points */

int cph_authn_cache_get(const cph_snapshot_t *snap, const char *token, size_t len, time_t now, h2o_mem_pool_t *pool,
                        cph_principal_t *out)
{
    entry_t **t = table(0), *e;
    char *block;

    if (t == NULL || len == 0 || (e = t[slot_of(token, len)]) == NULL)
        return 0;
    if (e->snap != snap || e->version != snap->version || !h2o_memis(e->token.base, e->token.len, token, len))
        return 0;
    if (e->p.exp <= (int64_t)now - cph_auth_settings(snap->auth)->leeway_s)
        return 0;
    block = h2o_mem_alloc_pool(pool, principal_size(&e->p));
    put_principal(&block, &e->p, out);
    return 1;
}

void cph_authn_cache_put(const cph_snapshot_t *snap, const char *token, size_t len, const cph_principal_t *p)
{
    entry_t **t = table(1), **slot;
    size_t size = sizeof(entry_t) + principal_size(p) + len;
    entry_t *e;
    char *cursor;

    if (len == 0)
        return;
    slot = &t[slot_of(token, len)];
    if ((e = malloc(size)) == NULL)
        cph_fatal(MODULE, "out of memory");
    cursor = (char *)(e + 1);
    e->snap = snap;
    e->version = snap->version;
    put_principal(&cursor, p, &e->p);
    e->token = put_bytes(&cursor, h2o_iovec_init(token, len));
    free(*slot);
    *slot = e;
}
