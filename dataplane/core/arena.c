/*
 * arena: the bump allocator behind a compiled snapshot.
 *
 * A snapshot is built once on the control thread, read by every worker and freed when its last reference drops.
 * Allocating all of it from one arena makes that free a single call and keeps the compiled tables close together.
 */
#include <stdlib.h>
#include <string.h>
#include "dataplane/core/arena.h"
#include "proto/log.h"

#define CHUNK_MIN (64 * 1024)

struct st_cph_arena_chunk_t {
    cph_arena_chunk_t *next;
    size_t used;
    size_t cap;
    _Alignas(16) char data[];
};

void cph_arena_init(cph_arena_t *a)
{
    a->chunks = NULL;
    a->bytes = 0;
}

void cph_arena_dispose(cph_arena_t *a)
{
    cph_arena_chunk_t *c, *next;

    for (c = a->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    cph_arena_init(a);
}

void *cph_arena_alloc(cph_arena_t *a, size_t sz)
{
    cph_arena_chunk_t *c = a->chunks;
    size_t need = (sz + 15) & ~(size_t)15;
    void *p;

    if (c == NULL || c->cap - c->used < need) {
        size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;
        if ((c = malloc(sizeof(*c) + cap)) == NULL)
            cph_fatal("arena", "out of memory");
        c->used = 0;
        c->cap = cap;
        c->next = a->chunks;
        a->chunks = c;
    }
    p = c->data + c->used;
    c->used += need;
    a->bytes += need;
    memset(p, 0, sz);
    return p;
}

char *cph_arena_strndup(cph_arena_t *a, const char *s, size_t len)
{
    char *p = cph_arena_alloc(a, len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *cph_arena_strdup(cph_arena_t *a, const char *s)
{
    return cph_arena_strndup(a, s, strlen(s));
}
