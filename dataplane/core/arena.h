/*
 * arena: a bump allocator owning every byte of one compiled snapshot, freed in one call.
 */
#ifndef CPH_ARENA_H
#define CPH_ARENA_H

#include <stddef.h>

typedef struct st_cph_arena_chunk_t cph_arena_chunk_t;

typedef struct st_cph_arena_t {
    cph_arena_chunk_t *chunks;
    size_t bytes; /* total handed out, for the snapshot size gauge */
} cph_arena_t;

void cph_arena_init(cph_arena_t *a);
/** Frees every allocation made from the arena. */
void cph_arena_dispose(cph_arena_t *a);
/** Zeroed, 16-byte aligned memory living as long as the arena. Out of memory aborts. */
void *cph_arena_alloc(cph_arena_t *a, size_t sz);
/** A NUL-terminated copy of s[0..len). */
char *cph_arena_strndup(cph_arena_t *a, const char *s, size_t len);
char *cph_arena_strdup(cph_arena_t *a, const char *s);

#endif
